-- Features as the parts of their GeoJSON text, which the client joins as they stream in: the
-- fid, the geometry and the comma-joined `"key":value` members of the non-null properties
-- (keys are parameters, JSON-encoded by the client). Text rather than json_build_object,
-- which takes at most 100 arguments and whose jsonb cousin reorders keys.
-- ST_AsGeoJSON's precision counts decimals, not significant digits: a double it prints in
-- fixed notation (1e-8 <= |x| < 1e15) may need 24 of them, so 15 would round. It prints the
-- shortest text that reads back as the same double, so 30 costs nothing; options 0 leave out
-- "bbox" and "crs". The geometry is that call, or NULL when it is left out.
SELECT fid, {geometry}, {properties}
FROM {table}
WHERE {conditions}
{order}
