"""Reads an OGC API - Features collection with QGIS's OAPIF provider, headless, with a subset
string (the filter a QGIS user sets on a layer), through a relay that records the requests.

Usage: qgis_subset.py BASE_URL COLLECTION SUBSET [WEST,SOUTH,EAST,NORTH]. With an extent, the
layer restricts its requests to the box asked for (`restrictToRequestBBOX`) and the features are
requested within it, as a map canvas does. Prints one JSON object on stdout: {"version",
"valid", "count" (the layer's feature count), "names" (the "name" of each feature read),
"items" (the items requests, path and query)}. Run with QT_QPA_PLATFORM=offscreen.
"""

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qgis.core import Qgis, QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer

TARGET, COLLECTION, SUBSET = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
EXTENT = [float(v) for v in sys.argv[4].split(",")] if len(sys.argv) > 4 else None
SEEN = []


class Relay(BaseHTTPRequestHandler):
    """Forwards each GET to the server, keeping the Host so that links lead back here."""

    def do_GET(self):
        SEEN.append(self.path)
        headers = {"Accept": self.headers.get("Accept", "*/*"), "Host": self.headers["Host"]}
        try:
            with urllib.request.urlopen(urllib.request.Request(TARGET + self.path, headers=headers)) as r:
                body, status, kind = r.read(), r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            body, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    relay = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    app = QgsApplication([], False)
    app.initQgis()
    uri = f"url='http://127.0.0.1:{relay.server_port}/' typename='{COLLECTION}'"
    if EXTENT:
        uri += " restrictToRequestBBOX='1'"
    layer = QgsVectorLayer(uri, COLLECTION, "OAPIF")
    valid = layer.isValid() and (not SUBSET or layer.setSubsetString(SUBSET))
    request = QgsFeatureRequest()
    if EXTENT:
        request.setFilterRect(QgsRectangle(*EXTENT))
    names = [f["name"] for f in layer.getFeatures(request)] if valid else []
    count = layer.featureCount() if valid and not EXTENT else None
    items = [p for p in SEEN if "/items" in p]
    print(json.dumps({"version": Qgis.QGIS_VERSION, "valid": valid, "count": count, "names": names, "items": items}))
    return app


if __name__ == "__main__":
    main()
    # QGIS 3.22 may crash tearing its providers down at exit; the answer is out by now.
    sys.stdout.flush()
    os._exit(0)
