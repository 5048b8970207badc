-- GeoPackage R-tree spatial index extension (gpkg_rtree_index, Annex F.3).
CREATE VIRTUAL TABLE {rtree} USING rtree(id, minx, maxx, miny, maxy);
