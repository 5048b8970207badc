-- The EPSG codes of the list that ST_Transform cannot reach: no spatial_ref_sys entry under
-- that SRID for that EPSG code.
SELECT code
FROM unnest($1::integer[]) AS code
WHERE NOT EXISTS (
  SELECT 1 FROM spatial_ref_sys s WHERE s.srid = code AND upper(s.auth_name) = 'EPSG' AND s.auth_srid = code
)
ORDER BY code
