"""Reference coordinates for the CRS accuracy test: points spread over each CRS's area of use,
projected from WGS84 and back with pyproj (the same PROJ geoflow links), printed as JSON."""
import json
import sys

from pyproj import CRS, Transformer

out = []
for code in sys.argv[1:]:
    crs = CRS.from_user_input(code)
    area = crs.area_of_use
    west, south, east, north = area.west, area.south, area.east, area.north
    if east < west:  # across the antimeridian
        east += 360
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    points = []
    steps = 6
    for i in range(steps + 1):
        for j in range(steps + 1):
            # Inset from the edges, where some projections (Web Mercator at ±85°) end.
            lon = west + (east - west) * (0.02 + 0.96 * i / steps)
            lat = south + (north - south) * (0.02 + 0.96 * j / steps)
            lon = ((lon + 180) % 360) - 180
            x, y = to_crs.transform(lon, lat)
            if not (abs(x) < 1e15 and abs(y) < 1e15):
                continue
            ref_lon, ref_lat = to_wgs84.transform(x, y)
            if abs(ref_lon) <= 180 and abs(ref_lat) <= 90:
                points.append([x, y, ref_lon, ref_lat])
    out.append({"crs": code, "name": crs.name, "points": points})
json.dump({"proj": __import__("pyproj").proj_version_str, "crs": out}, sys.stdout)
