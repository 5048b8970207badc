"""Reference coordinates for the served-CRS tests: WGS84 points spread over each CRS's area of
use, and the same points in that CRS in its authority's axis order (latitude first for
EPSG:4326), by pyproj on the PROJ geoflow links. Printed as JSON."""
import json
import math
import sys

from pyproj import CRS, Transformer

out = []
for code in sys.argv[1:]:
    crs = CRS.from_epsg(int(code))
    area = crs.area_of_use
    west, south, east, north = area.west, area.south, area.east, area.north
    if east < west:  # across the antimeridian
        east += 360
    # Authority axis order on both sides: EPSG:4326 takes latitude first.
    to_crs = Transformer.from_crs("EPSG:4326", crs)
    points = []
    steps = 5
    for i in range(steps + 1):
        for j in range(steps + 1):
            # Inset from the edges, where some projections (Web Mercator at 85 degrees) end.
            lon = west + (east - west) * (0.02 + 0.96 * i / steps)
            lat = south + (north - south) * (0.02 + 0.96 * j / steps)
            lon = ((lon + 180) % 360) - 180
            a, b = to_crs.transform(lat, lon)
            if math.isfinite(a) and math.isfinite(b):
                points.append([lon, lat, a, b])
    out.append({"code": int(code), "geographic": crs.is_geographic, "points": points})
json.dump({"proj": __import__("pyproj").proj_version_str, "crs": out}, sys.stdout)
