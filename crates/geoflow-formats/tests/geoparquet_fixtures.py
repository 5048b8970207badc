"""Writes the GeoParquet files the geoparquet tests read (needs pyarrow, shapely and pyproj).

    python geoparquet_fixtures.py types OUT.parquet
    python geoparquet_fixtures.py small OUT.parquet
    python geoparquet_fixtures.py variants OUT_DIR
    python geoparquet_fixtures.py convert IN.geojson OUT.parquet [--native] [--crs EPSG:n]
    python geoparquet_fixtures.py large OUT.parquet ROWS
"""

import datetime
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS, Transformer

def geo_metadata(encoding, types, crs="absent", edges=None, covering=None, extra=None):
    column = {"encoding": encoding, "geometry_types": types}
    if crs != "absent":
        column["crs"] = crs
    if edges:
        column["edges"] = edges
    if covering:
        column["covering"] = covering
    columns = {"geometry": column}
    columns.update(extra or {})
    return {b"geo": json.dumps({"version": "1.1.0", "primary_column": "geometry", "columns": columns}).encode()}


def write(table, out, metadata, **kwargs):
    schema = table.schema.with_metadata(metadata) if metadata else table.schema
    pq.write_table(table.cast(schema), out, **kwargs)


def types(out, rows=10_000, row_group_size=3_000, compression="zstd"):
    """Every property type the reader maps, WKB points in EPSG:32633, a bad WKB value at row 5,
    nulls at every row i % 7 == 3, and several row groups."""
    null = lambda i: i % 7 == 3  # noqa: E731

    def col(f, typ):
        return pa.array([None if null(i) else f(i) for i in range(rows)], type=typ)

    def geometry(i):
        if i == 5:
            return b"\x01\x01\x00\x00\x00garbage"
        return shapely.to_wkb(shapely.Point(500_000.0 + i, 5_000_000.0 + i))

    colours = pa.array(["red", "green", "blue"])
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array([None if null(i) else i % 3 for i in range(rows)], type=pa.int32()), colours
    )
    epoch = datetime.date(1970, 1, 1)
    table = pa.table(
        {
            "geometry": col(geometry, pa.binary()),
            "i8": col(lambda i: -(i % 128), pa.int8()),
            "i16": col(lambda i: i, pa.int16()),
            "i32": col(lambda i: -i, pa.int32()),
            "i64": col(lambda i: (1 << 62) + i, pa.int64()),
            "u8": col(lambda i: i % 256, pa.uint8()),
            "u16": col(lambda i: i, pa.uint16()),
            "u32": col(lambda i: 4_000_000_000 + i, pa.uint32()),
            "u64": col(lambda i: (1 << 64) - 1 - i, pa.uint64()),
            "f16": col(lambda i: 0.5 + (i % 4), pa.float16()),
            "f32": col(lambda i: i + 0.1, pa.float32()),
            "f64": col(lambda i: i / 3, pa.float64()),
            "flag": col(lambda i: i % 2 == 0, pa.bool_()),
            "name": col(lambda i: f"name {i} \u00fc", pa.string()),
            "large_name": col(lambda i: f"large {i}", pa.large_string()),
            "blob": col(lambda i: bytes([i % 256, 0xFF]), pa.binary()),
            "day": col(lambda i: epoch + datetime.timedelta(days=i), pa.date32()),
            "at_utc": col(lambda i: 1_714_564_800_000 + i, pa.timestamp("ms", tz="UTC")),
            "at_berlin": col(lambda i: 1_714_564_800 + i, pa.timestamp("s", tz="Europe/Berlin")),
            "at_naive": col(lambda i: 1_714_564_800_000_000 + i, pa.timestamp("us")),
            "clock": col(lambda i: 45_296_789 + i, pa.time32("ms")),
            "clock_us": col(lambda i: 45_296_000_001 + i, pa.time64("us")),
            "price": col(lambda i: decimal.Decimal(i) + decimal.Decimal("0.125"), pa.decimal128(12, 3)),
            "huge": col(lambda i: decimal.Decimal(10**30 + i), pa.decimal256(40, 5)),
            "list": col(lambda i: [i, i + 1], pa.list_(pa.int32())),
            "record": col(lambda i: {"a": i, "b": "x"}, pa.struct([("a", pa.int32()), ("b", pa.string())])),
            "mapping": col(lambda i: [("k", i)], pa.map_(pa.string(), pa.int32())),
            "colour": dictionary,
            "nothing": pa.nulls(rows),
        }
    )
    crs = CRS.from_epsg(32633).to_json_dict()
    write(table, out, geo_metadata("WKB", ["Point"], crs=crs), row_group_size=row_group_size, compression=compression)


def ragged(geoms, interleave=False):
    """The GeoArrow-native encoding and array of shapely geometries of one family (None:
    null): points as struct<x, y[, z]>, or as fixed_size_list<double> when `interleave`."""
    import numpy

    present = [g for g in geoms if g is not None]
    kind, coords, offsets = shapely.to_ragged_array(present, include_z=bool(any(shapely.has_z(present))))
    dims = coords.shape[1]
    names = ["x", "y", "z"][:dims]
    if interleave:
        child = pa.field("".join(names), pa.float64(), nullable=False)
        points = pa.FixedSizeListArray.from_arrays(pa.array(numpy.ravel(coords)), type=pa.list_(child, dims))
    else:
        points = pa.StructArray.from_arrays([pa.array(coords[:, d]) for d in range(dims)], names=names)
    array = points
    for level in offsets:
        array = pa.ListArray.from_arrays(pa.array(level, type=pa.int32()), array)
    # Nulls: the present rows taken into place.
    indices, n = [], 0
    for g in geoms:
        indices.append(None if g is None else n)
        n += g is not None
    array = array.take(pa.array(indices, type=pa.int64()))
    return ENCODINGS[shapely.GeometryType(kind).name], array


ENCODINGS = {
    "POINT": "point",
    "LINESTRING": "linestring",
    "POLYGON": "polygon",
    "MULTIPOINT": "multipoint",
    "MULTILINESTRING": "multilinestring",
    "MULTIPOLYGON": "multipolygon",
}


def variants(out_dir):
    """Small files for each native encoding, the metadata cases and files without GeoParquet
    metadata."""
    cases = {
        "point": [shapely.Point(1, 2), None, shapely.Point(3, 4)],
        "point_z": [shapely.Point(1, 2, 3), shapely.Point(4, 5, 6)],
        "linestring": [shapely.LineString([(0, 0), (1, 1), (2, 0)]), None, shapely.LineString([(5, 5), (6, 6)])],
        "polygon": [
            shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 0)], [[(1, 1), (2, 1), (2, 2), (1, 1)]]),
            shapely.Polygon([(10, 10), (11, 10), (11, 11), (10, 10)]),
        ],
        "multipoint": [shapely.MultiPoint([(0, 0), (1, 1)]), shapely.MultiPoint([(2, 2)])],
        "multilinestring": [shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3), (4, 4)]])],
        "multipolygon": [
            shapely.MultiPolygon([shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)]),
                                  shapely.Polygon([(5, 5), (6, 5), (6, 6), (5, 5)])]),
            None,
        ],
    }
    for name, geoms in cases.items():
        encoding, array = ragged(geoms)
        labels = pa.array([f"{name} {i}" for i in range(len(geoms))])
        table = pa.table({"label": labels, "geometry": array})
        write(table, f"{out_dir}/{name}.parquet", geo_metadata(encoding, []))
        if name in ("point", "point_z", "multipolygon"):
            encoding, array = ragged(geoms, interleave=True)
            table = pa.table({"label": labels, "geometry": array})
            write(table, f"{out_dir}/{name}_interleaved.parquet", geo_metadata(encoding, []))

    wkb = pa.array([shapely.to_wkb(shapely.Point(1, 2)), shapely.to_wkb(shapely.Point(3, 4))])
    labels = pa.array(["a", "b"])
    # crs null (unknown) and spherical edges; a bounding-box covering column; a second
    # geometry column.
    bbox = pa.StructArray.from_arrays([pa.array([1.0, 3.0]), pa.array([2.0, 4.0]), pa.array([1.0, 3.0]),
                                       pa.array([2.0, 4.0])], names=["xmin", "ymin", "xmax", "ymax"])
    covering = {"bbox": {k: ["bbox", k] for k in ["xmin", "ymin", "xmax", "ymax"]}}
    extra = {"centroid": {"encoding": "WKB", "geometry_types": ["Point"]}}
    table = pa.table({"label": labels, "geometry": wkb, "bbox": bbox, "centroid": wkb})
    write(table, f"{out_dir}/crs_null.parquet",
          geo_metadata("WKB", ["Point"], crs=None, edges="spherical", covering=covering, extra=extra))
    # No GeoParquet metadata: a WKB column named geometry, and no geometry column at all.
    write(pa.table({"label": labels, "geometry": wkb}), f"{out_dir}/no_geo_wkb.parquet", None)
    write(pa.table({"label": labels, "value": pa.array([1, 2])}), f"{out_dir}/plain.parquet", None)
    # An encoding the metadata names but the column does not have.
    write(pa.table({"label": labels, "geometry": wkb}), f"{out_dir}/wrong_encoding.parquet",
          geo_metadata("point", ["Point"]))


def convert(source, out, native=False, crs=None):
    """A GeoJSON FeatureCollection as GeoParquet: WKB (or native, when the geometry types
    allow) geometries, one column per property with the type pyarrow gives its values."""
    with open(source, encoding="utf-8") as f:
        collection = json.load(f)
    features = collection["features"]
    geoms = [shapely.geometry.shape(f["geometry"]) if f.get("geometry") else None for f in features]
    metadata_crs = "absent"
    if crs:
        transformer = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        geoms = [None if g is None else shapely.transform(g, lambda c: _project(transformer, c)) for g in geoms]
        metadata_crs = CRS.from_user_input(crs).to_json_dict()
    keys = []
    for f in features:
        for k in (f.get("properties") or {}):
            if k not in keys:
                keys.append(k)
    columns = {}
    for k in keys:
        values = [(f.get("properties") or {}).get(k) for f in features]
        try:
            columns[k] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[k] = pa.array([None if v is None else json.dumps(v) for v in values])
    types = sorted({g.geom_type for g in geoms if g is not None})
    if native:
        encoding, array = ragged(geoms)
    else:
        encoding, array = "WKB", pa.array([None if g is None else shapely.to_wkb(g) for g in geoms], pa.binary())
    columns["geometry"] = array
    table = pa.table(columns)
    compression = ["snappy", "zstd", "gzip", "lz4", "brotli", "none"][len(features) % 6]
    write(table, out, geo_metadata(encoding, types, crs=metadata_crs), row_group_size=100, compression=compression)


def _project(transformer, coords):
    import numpy

    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    return numpy.column_stack([x, y])


def large(out, rows):
    """Many rows of 32-vertex lines and some text, written a row group at a time."""
    import numpy

    rows = int(rows)
    chunk = 100_000
    schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("geometry", pa.binary())])
    schema = schema.with_metadata(geo_metadata("WKB", ["LineString"]))
    rng = numpy.random.default_rng(1)
    with pq.ParquetWriter(out, schema, compression="snappy") as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            coords = rng.uniform(-10, 10, size=(n, 32, 2))
            lines = shapely.linestrings(coords)
            table = pa.table(
                {
                    "id": pa.array(numpy.arange(start, start + n)),
                    "name": pa.array([f"line {i}" for i in range(start, start + n)]),
                    "geometry": pa.array(shapely.to_wkb(lines), pa.binary()),
                },
                schema=schema,
            )
            writer.write_table(table)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "types":
        types(*args)
    elif command == "small":
        # The committed tests/data/geoparquet/small.parquet: the bad-input tests' seed.
        types(*args, rows=24, row_group_size=10, compression="snappy")
    elif command == "variants":
        variants(*args)
    elif command == "convert":
        native = "--native" in args
        crs = args[args.index("--crs") + 1] if "--crs" in args else None
        convert(args[0], args[1], native=native, crs=crs)
    elif command == "large":
        large(*args)
    else:
        sys.exit(f"unknown command {command}")
