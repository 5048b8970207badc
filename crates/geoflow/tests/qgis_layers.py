"""Opens vector layers with QGIS, headless, as a user opening them in QGIS Desktop would.

Reads a JSON list of {"name", "provider", "uri"} on stdin and prints one JSON object per
layer on stdout: {"name", "valid", "type", "count", "error"}, where "type" is QGIS's display
string of the layer's WKB type (QgsWkbTypes.displayString), as QGIS shows it in its layer
properties. Run with QT_QPA_PLATFORM=offscreen.
"""

import json
import os
import sys

from qgis.core import QgsApplication, QgsVectorLayer, QgsWkbTypes


def main():
    layers = json.load(sys.stdin)
    app = QgsApplication([], False)
    app.initQgis()
    for spec in layers:
        layer = QgsVectorLayer(spec["uri"], spec["name"], spec["provider"])
        result = {"name": spec["name"], "valid": layer.isValid()}
        if layer.isValid():
            result["type"] = QgsWkbTypes.displayString(layer.wkbType())
            result["count"] = layer.featureCount()
        else:
            result["error"] = layer.error().summary() if layer.error() else ""
        print(json.dumps(result), flush=True)
        del layer
    return app


if __name__ == "__main__":
    main()
    # QGIS 3.22 may crash tearing its providers down at exit; every answer is out by now.
    sys.stdout.flush()
    os._exit(0)
