//! GeoParquet 1.0 and 1.1: Apache Parquet with a `geo` key in its key-value metadata naming
//! the geometry columns, their encoding and their CRS.
//!
//! Row groups are read one after the other, in batches of [`BATCH_ROWS`] rows, so memory is
//! bounded by one row group's column chunks and one batch whatever the file's size. The
//! primary geometry column is decoded from WKB or from the native GeoArrow layouts (points as
//! `struct<x, y[, z]>` or interleaved `fixed_size_list<double>[2|3]`, lines, polygons and the
//! multi-types as one more list level each); every other column becomes a property of its own
//! type, losslessly:
//!
//! - integers are `Int` (an unsigned 64-bit value beyond `i64::MAX` is its exact number text,
//!   as `Json`); floats are `Real`, a 32- or 16-bit one by its shortest decimal text rather than
//!   its widened binary value; NaN and infinities, which no JSON number holds, are null;
//! - dates are `YYYY-MM-DD`; timestamps RFC 3339 with the fractional digits of their unit,
//!   ending in `Z` when they have a time zone (an Arrow timestamp with a zone is a UTC instant)
//!   and in nothing when they are naive; times of day `HH:MM:SS[.fff]`; durations ISO 8601
//!   (`PT…S`);
//! - decimals are their exact number text (`Json`); binary values lowercase hex text;
//! - lists, structs and maps are compact JSON (`Json`), dictionaries their values.
//!
//! Columns of a type none of these covers (intervals, unions, run-end encoded arrays) are
//! left out, and the report says which. The bounding-box covering column of GeoParquet 1.1 is
//! derived from the geometry and left out too; further geometry columns are kept as
//! properties (WKB as hex text).
//!
//! A Parquet file without GeoParquet metadata is read when it has a binary column named
//! `geometry`, `geom`, `wkb` or `wkb_geometry`: its values are taken as WKB in WGS84 (or the
//! given CRS), and the report says so. Any other Parquet file is refused.
//!
//! Spherical edges are read as planar (straight lines in longitude/latitude), as everything
//! geoflow stores is; the report says so.

use std::fs::File;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use geoflow_core::geometry::{Geom, Pos, Ring};
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::PropValue;
use geoflow_core::wkb;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use serde_json::Value;

use crate::{file_crs, malformed, unsupported, CrsTransform, DecodedFeature, FeatureSource};
use crate::{RawFeature, ReadError, ReadOptions, SourceInfo};

const FORMAT: &str = "GeoParquet";

/// Rows decoded at a time: large enough to amortise the decoder's per-batch work, small
/// enough that a batch of wide rows stays a few megabytes.
pub(crate) const BATCH_ROWS: usize = 4096;

/// Names a binary column may have to be read as WKB in a file without GeoParquet metadata.
const WKB_COLUMN_NAMES: [&str; 4] = ["geometry", "geom", "wkb", "wkb_geometry"];

/// How the geometry column stores its geometries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Wkb,
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
}

impl Encoding {
    fn parse(name: &str) -> Option<Encoding> {
        Some(match name.to_ascii_lowercase().as_str() {
            "wkb" => Encoding::Wkb,
            "point" => Encoding::Point,
            "linestring" => Encoding::LineString,
            "polygon" => Encoding::Polygon,
            "multipoint" => Encoding::MultiPoint,
            "multilinestring" => Encoding::MultiLineString,
            "multipolygon" => Encoding::MultiPolygon,
            _ => return None,
        })
    }

    /// List levels around the points in the native layout.
    fn list_levels(self) -> usize {
        match self {
            Encoding::Wkb | Encoding::Point => 0,
            Encoding::LineString | Encoding::MultiPoint => 1,
            Encoding::Polygon | Encoding::MultiLineString => 2,
            Encoding::MultiPolygon => 3,
        }
    }
}

/// What the `geo` metadata says about the primary geometry column.
struct GeometryColumn {
    /// The column's position in the file's schema, then in a batch.
    index: usize,
    name: String,
    encoding: Encoding,
}

pub(crate) fn open<'a>(
    path: &Path,
    options: &ReadOptions,
    given_crs: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let file = File::open(path)?;
    // The decoder is third-party code reading untrusted bytes: should it panic on some
    // corruption, the file is reported as unreadable instead of ending the load.
    let builder = catch_unwind(AssertUnwindSafe(|| ParquetRecordBatchReaderBuilder::try_new(file)))
        .map_err(|_| malformed(FORMAT, "its footer is corrupt"))?
        .map_err(|e| malformed(FORMAT, e))?;
    let geo = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|entry| entry.key == "geo"))
        .map(|entry| entry.value.clone().unwrap_or_default());
    let schema = builder.schema().clone();
    let mut notes = Vec::new();
    let (geometry, crs_definition, skipped) = match geo {
        Some(text) => read_geo_metadata(&text, &schema, &mut notes)?,
        None => (wkb_column_by_name(&schema, &mut notes)?, None, Vec::new()),
    };
    let had_crs = crs_definition.is_some() || given_crs.is_some();
    let transform = file_crs(given_crs, crs_definition.as_deref()).map_err(|e| match e {
        ReadError::Unreadable(mut problem) => {
            problem.message = format!("the GeoParquet file's {}", problem.message);
            ReadError::Unreadable(problem)
        }
        other => other,
    })?;
    if crs_definition.is_none() && !had_crs && notes.iter().any(|n| n.contains("unknown")) {
        notes.push("the coordinates are taken as WGS84 longitude/latitude".to_string());
    }

    let mut properties = Vec::new();
    for (index, field) in schema.fields().iter().enumerate() {
        if index == geometry.index || skipped.contains(field.name()) {
            continue;
        }
        match unreadable_type(field.data_type(), options.limits.max_depth) {
            None => properties.push((index, field.name().clone())),
            Some(why) => notes.push(format!("the column {:?} is left out: {why}", field.name())),
        }
    }
    // Only the columns read are decoded: a batch holds them in the file's order.
    let mut read_columns: Vec<usize> = properties.iter().map(|(index, _)| *index).collect();
    read_columns.push(geometry.index);
    read_columns.sort_unstable();
    let position = |index: usize| read_columns.binary_search(&index).unwrap_or_default();
    let mask = ProjectionMask::roots(builder.parquet_schema(), read_columns.iter().copied());
    let geometry = GeometryColumn { index: position(geometry.index), ..geometry };
    let properties = properties.into_iter().map(|(index, name)| (position(index), name)).collect();
    let reader = builder.with_projection(mask).with_batch_size(BATCH_ROWS).build().map_err(|e| malformed(FORMAT, e))?;
    Ok(Box::new(GeoParquetSource {
        reader: Some(reader),
        batch: None,
        row: 0,
        next_index: 0,
        geometry,
        properties,
        transform,
        notes,
    }))
}

/// The primary geometry column, its CRS definition (PROJJSON text) and the columns left out,
/// from the `geo` metadata.
fn read_geo_metadata(
    text: &str,
    schema: &Schema,
    notes: &mut Vec<String>,
) -> Result<(GeometryColumn, Option<String>, Vec<String>), ReadError> {
    let bad = |why: String| malformed(FORMAT, format!("its \"geo\" metadata {why}"));
    let geo: Value = serde_json::from_str(text).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let primary =
        geo.get("primary_column").and_then(Value::as_str).ok_or_else(|| bad("names no primary_column".to_string()))?;
    let columns = geo.get("columns").and_then(Value::as_object).ok_or_else(|| bad("has no columns object".into()))?;
    let column = columns
        .get(primary)
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("does not describe the primary column {primary:?}")))?;
    let encoding_name = column.get("encoding").and_then(Value::as_str).unwrap_or("WKB");
    let encoding = Encoding::parse(encoding_name).ok_or_else(|| {
        unsupported(
            &format!("a GeoParquet file whose geometries are encoded as {encoding_name:?}"),
            "write it with the WKB encoding",
        )
    })?;
    let index = schema.index_of(primary).map_err(|_| bad(format!("names a column {primary:?} the file lacks")))?;
    check_geometry_type(primary, encoding, schema.field(index))?;

    // Absent: OGC:CRS84. Null: unknown. An object: PROJJSON. A string is not in the
    // specification, but some writers put a definition there.
    let crs = match column.get("crs") {
        None => None,
        Some(Value::Null) => {
            notes.push(format!("the file says the CRS of {primary:?} is unknown"));
            None
        }
        Some(Value::String(definition)) => Some(definition.clone()),
        Some(projjson @ Value::Object(_)) => Some(projjson.to_string()),
        Some(other) => return Err(bad(format!("gives a crs that is neither PROJJSON nor null: {other}"))),
    };
    if column.get("edges").and_then(Value::as_str) == Some("spherical") {
        notes.push(format!(
            "the edges of {primary:?} are spherical in the file and are read as planar (straight in \
             longitude/latitude)"
        ));
    }
    // The GeoParquet 1.1 bounding-box covering: derived from the geometry, not data of its own.
    let mut skipped = Vec::new();
    if let Some(bbox) = column.get("covering").and_then(|c| c.get("bbox")).and_then(Value::as_object) {
        let covering_columns = bbox.values().filter_map(|path| path.get(0).and_then(Value::as_str)).map(str::to_string);
        for name in covering_columns {
            if name != primary && !skipped.contains(&name) {
                skipped.push(name);
            }
        }
    }
    for other in columns.keys().filter(|name| *name != primary && schema.index_of(name).is_ok()) {
        notes.push(format!("the further geometry column {other:?} is kept as a property, as stored"));
    }
    Ok((GeometryColumn { index, name: primary.to_string(), encoding }, crs, skipped))
}

/// A binary column with a geometry's name, in a Parquet file without GeoParquet metadata.
fn wkb_column_by_name(schema: &Schema, notes: &mut Vec<String>) -> Result<GeometryColumn, ReadError> {
    let found =
        schema.fields().iter().enumerate().find(|(_, f)| {
            WKB_COLUMN_NAMES.contains(&f.name().to_ascii_lowercase().as_str()) && is_binary(f.data_type())
        });
    let Some((index, field)) = found else {
        return Err(unsupported(
            "a Parquet file without GeoParquet metadata",
            "write it as GeoParquet (GeoPandas' to_parquet, ogr2ogr -f Parquet, or DuckDB's spatial extension), \
             or name its WKB column \"geometry\"",
        ));
    };
    notes.push(format!(
        "the file has no GeoParquet metadata: its binary column {:?} is read as WKB geometries, in WGS84 \
         longitude/latitude unless a source CRS is given",
        field.name()
    ));
    Ok(GeometryColumn { index, name: field.name().clone(), encoding: Encoding::Wkb })
}

fn is_binary(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

/// Checks that the column's Arrow type is the layout its encoding calls for.
fn check_geometry_type(name: &str, encoding: Encoding, field: &Field) -> Result<(), ReadError> {
    let wrong = || {
        malformed(
            FORMAT,
            format!(
                "its geometry column {name:?} is said to be encoded as {encoding:?} but holds {}",
                field.data_type()
            ),
        )
    };
    if encoding == Encoding::Wkb {
        return if is_binary(field.data_type()) { Ok(()) } else { Err(wrong()) };
    }
    let mut data_type = field.data_type();
    for _ in 0..encoding.list_levels() {
        data_type = match data_type {
            DataType::List(child) | DataType::LargeList(child) => child.data_type(),
            _ => return Err(wrong()),
        };
    }
    let is_point = match data_type {
        DataType::Struct(fields) => fields.len() >= 2 && fields.iter().all(|f| f.data_type() == &DataType::Float64),
        DataType::FixedSizeList(child, 2..=4) => child.data_type() == &DataType::Float64,
        _ => false,
    };
    if is_point {
        Ok(())
    } else {
        Err(wrong())
    }
}

/// Why a column of this type is not read (`None`: it is).
fn unreadable_type(data_type: &DataType, depth_left: usize) -> Option<String> {
    use DataType as D;
    if depth_left == 0 {
        return Some("its values are nested too deep".to_string());
    }
    match data_type {
        D::Null
        | D::Boolean
        | D::Int8
        | D::Int16
        | D::Int32
        | D::Int64
        | D::UInt8
        | D::UInt16
        | D::UInt32
        | D::UInt64
        | D::Float16
        | D::Float32
        | D::Float64
        | D::Utf8
        | D::LargeUtf8
        | D::Utf8View
        | D::Binary
        | D::LargeBinary
        | D::BinaryView
        | D::FixedSizeBinary(_)
        | D::Date32
        | D::Date64
        | D::Time32(_)
        | D::Time64(_)
        | D::Timestamp(_, _)
        | D::Duration(_)
        | D::Decimal32(_, _)
        | D::Decimal64(_, _)
        | D::Decimal128(_, _)
        | D::Decimal256(_, _) => None,
        D::List(child) | D::LargeList(child) | D::FixedSizeList(child, _) => {
            unreadable_type(child.data_type(), depth_left - 1)
        }
        D::Struct(fields) => fields.iter().find_map(|f| unreadable_type(f.data_type(), depth_left - 1)),
        D::Map(entries, _) => unreadable_type(entries.data_type(), depth_left - 1),
        D::Dictionary(_, values) => unreadable_type(values, depth_left - 1),
        other => Some(format!("geoflow does not read values of the type {other}")),
    }
}

struct GeoParquetSource {
    /// `None` once every row has been read or the file proved corrupt.
    reader: Option<ParquetRecordBatchReader>,
    batch: Option<RecordBatch>,
    /// The next row of `batch`.
    row: usize,
    /// The next row of the file.
    next_index: u64,
    geometry: GeometryColumn,
    /// Position in a batch and name of each property, in the file's order.
    properties: Vec<(usize, String)>,
    transform: CrsTransform,
    notes: Vec<String>,
}

impl GeoParquetSource {
    fn feature(&self, batch: &RecordBatch, row: usize, index: u64) -> RawFeature {
        let mut problems = Vec::new();
        let geometry = match geometry_at(self.geometry.encoding, batch.column(self.geometry.index), row) {
            Ok(geometry) => geometry,
            Err(why) => {
                problems.push(Problem::new(
                    ProblemCode::InvalidCoordinates,
                    format!("the geometry in column {:?} cannot be read: {why}", self.geometry.name),
                ));
                None
            }
        };
        let properties = self
            .properties
            .iter()
            .map(|(column, name)| (name.clone(), prop_value(batch.column(*column).as_ref(), row)))
            .collect();
        let feature = DecodedFeature { id: PropValue::Null, geometry, properties, problems };
        RawFeature::decoded(index, feature, self.transform.clone())
    }
}

impl Iterator for GeoParquetSource {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(batch) = &self.batch {
                if self.row < batch.num_rows() {
                    let feature = self.feature(batch, self.row, self.next_index);
                    self.row += 1;
                    self.next_index += 1;
                    return Some(Ok(feature));
                }
            }
            self.batch = None;
            let reader = self.reader.as_mut()?;
            match catch_unwind(AssertUnwindSafe(|| reader.next())) {
                Ok(Some(Ok(batch))) => {
                    self.batch = Some(batch);
                    self.row = 0;
                }
                Ok(None) => {
                    self.reader = None;
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.reader = None;
                    return Some(Err(malformed(FORMAT, format!("after row {}: {e}", self.next_index))));
                }
                Err(_) => {
                    self.reader = None;
                    let why = format!("after row {}: a data page is corrupt", self.next_index);
                    return Some(Err(malformed(FORMAT, why)));
                }
            }
        }
    }
}

impl FeatureSource for GeoParquetSource {
    fn info(&self) -> SourceInfo {
        SourceInfo::read(FORMAT, None, &self.transform, &self.notes)
    }
}

// Geometries.

/// The geometry of `row` (`None`: null, or an empty point).
fn geometry_at(encoding: Encoding, column: &ArrayRef, row: usize) -> Result<Option<Geom>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    let geometry = match encoding {
        Encoding::Wkb => {
            let bytes = binary_value(column.as_ref(), row).ok_or("the column holds no binary values")?;
            return wkb::decode(bytes).map_err(|e| format!("malformed WKB: {e}"));
        }
        Encoding::Point => {
            let p = point(column.as_ref(), row)?;
            if p.x.is_nan() && p.y.is_nan() {
                return Ok(None);
            }
            Geom::Point(p)
        }
        Encoding::LineString => Geom::LineString(positions(column.as_ref(), row)?),
        Encoding::MultiPoint => Geom::MultiPoint(positions(column.as_ref(), row)?),
        Encoding::Polygon => Geom::Polygon(rings(column.as_ref(), row)?),
        Encoding::MultiLineString => Geom::MultiLineString(rings(column.as_ref(), row)?),
        Encoding::MultiPolygon => Geom::MultiPolygon(polygons(column.as_ref(), row)?),
    };
    Ok(Some(geometry))
}

fn binary_value(array: &dyn Array, row: usize) -> Option<&[u8]> {
    if let Some(a) = array.as_binary_opt::<i32>() {
        Some(a.value(row))
    } else if let Some(a) = array.as_binary_opt::<i64>() {
        Some(a.value(row))
    } else if let Some(a) = array.as_binary_view_opt() {
        Some(a.value(row))
    } else {
        array.as_fixed_size_binary_opt().map(|a| a.value(row))
    }
}

/// The members of list `row`: the child array and the range of its elements.
fn list_members(array: &dyn Array, row: usize) -> Result<(&ArrayRef, Range<usize>), String> {
    if row >= array.len() || array.is_null(row) {
        return Err("a part is null".to_string());
    }
    let (values, start, end) = if let Some(list) = array.as_list_opt::<i32>() {
        let offsets = list.value_offsets();
        (list.values(), offsets[row] as usize, offsets[row + 1] as usize)
    } else if let Some(list) = array.as_list_opt::<i64>() {
        let offsets = list.value_offsets();
        (list.values(), offsets[row] as usize, offsets[row + 1] as usize)
    } else {
        return Err(format!("a list was expected, not {}", array.data_type()));
    };
    if start > end || end > values.len() {
        return Err("a list's offsets are out of bounds".to_string());
    }
    Ok((values, start..end))
}

fn positions(array: &dyn Array, row: usize) -> Result<Vec<Pos>, String> {
    let (points, range) = list_members(array, row)?;
    range.map(|i| point(points.as_ref(), i)).collect()
}

fn rings(array: &dyn Array, row: usize) -> Result<Vec<Ring>, String> {
    let (lines, range) = list_members(array, row)?;
    range.map(|i| positions(lines.as_ref(), i)).collect()
}

fn polygons(array: &dyn Array, row: usize) -> Result<Vec<Vec<Ring>>, String> {
    let (polygons, range) = list_members(array, row)?;
    range.map(|i| rings(polygons.as_ref(), i)).collect()
}

/// Point `i` of a separated (`struct<x, y[, z][, m]>`) or interleaved
/// (`fixed_size_list<double>[2|3|4]`) point array. M values are left out.
fn point(array: &dyn Array, i: usize) -> Result<Pos, String> {
    if i >= array.len() || array.is_null(i) {
        return Err("a position is null".to_string());
    }
    let coordinate = |values: Option<&dyn Array>, at: usize| -> Result<f64, String> {
        let values = values.and_then(|v| v.as_primitive_opt::<Float64Type>()).ok_or("a coordinate is missing")?;
        if at >= values.len() || values.is_null(at) {
            return Err("a coordinate is null".to_string());
        }
        Ok(values.value(at))
    };
    if let Some(points) = array.as_struct_opt() {
        let axis = |name: &str| points.column_by_name(name).map(|c| c.as_ref());
        let (x, y) = (axis("x").or(points.columns().first().map(|c| c.as_ref())), axis("y"));
        let y = y.or(points.columns().get(1).map(|c| c.as_ref()));
        let mut pos = Pos::xy(coordinate(x, i)?, coordinate(y, i)?);
        if let Some(z) = axis("z") {
            pos.z = coordinate(Some(z), i)?;
        }
        return Ok(pos);
    }
    if let Some(points) = array.as_fixed_size_list_opt() {
        let dimensions = points.value_length().max(0) as usize;
        let start = points.value_offset_at(i);
        let values = Some(points.values().as_ref());
        let mut pos = Pos::xy(coordinate(values, start)?, coordinate(values, start + 1)?);
        // The child's name tells xyz from xym; xyzm has its z third as well.
        let third_is_m = matches!(points.data_type(), DataType::FixedSizeList(child, 3) if child.name() == "xym");
        if dimensions >= 3 && !third_is_m {
            pos.z = coordinate(values, start + 2)?;
        }
        return Ok(pos);
    }
    Err(format!("positions were expected, not {}", array.data_type()))
}

// Properties.

fn primitive<T: ArrowPrimitiveType>(array: &dyn Array, i: usize) -> Option<T::Native> {
    array.as_primitive_opt::<T>().map(|a| a.value(i))
}

/// The value at `i`, of its own type (see the module documentation).
fn prop_value(array: &dyn Array, i: usize) -> PropValue {
    use DataType as D;
    if i >= array.len() || array.data_type() == &D::Null || array.is_null(i) {
        return PropValue::Null;
    }
    let int = |v: Option<i64>| v.map_or(PropValue::Null, PropValue::Int);
    let text = |v: Option<String>| v.map_or(PropValue::Null, PropValue::Text);
    match array.data_type() {
        D::Boolean => array.as_boolean_opt().map_or(PropValue::Null, |a| PropValue::Bool(a.value(i))),
        D::Int8 => int(primitive::<Int8Type>(array, i).map(i64::from)),
        D::Int16 => int(primitive::<Int16Type>(array, i).map(i64::from)),
        D::Int32 => int(primitive::<Int32Type>(array, i).map(i64::from)),
        D::Int64 => int(primitive::<Int64Type>(array, i)),
        D::UInt8 => int(primitive::<UInt8Type>(array, i).map(i64::from)),
        D::UInt16 => int(primitive::<UInt16Type>(array, i).map(i64::from)),
        D::UInt32 => int(primitive::<UInt32Type>(array, i).map(i64::from)),
        D::UInt64 => match primitive::<UInt64Type>(array, i) {
            Some(v) => i64::try_from(v).map_or_else(|_| PropValue::Json(v.to_string()), PropValue::Int),
            None => PropValue::Null,
        },
        // The shortest text of the narrow value, not the noise of its widened binary value.
        D::Float16 => real(primitive::<Float16Type>(array, i).and_then(|v| v.to_string().parse().ok())),
        D::Float32 => real(primitive::<Float32Type>(array, i).and_then(|v| v.to_string().parse().ok())),
        D::Float64 => real(primitive::<Float64Type>(array, i)),
        D::Utf8 => text(array.as_string_opt::<i32>().map(|a| a.value(i).to_string())),
        D::LargeUtf8 => text(array.as_string_opt::<i64>().map(|a| a.value(i).to_string())),
        D::Utf8View => text(array.as_string_view_opt().map(|a| a.value(i).to_string())),
        D::Binary | D::LargeBinary | D::BinaryView | D::FixedSizeBinary(_) => text(binary_value(array, i).map(hex)),
        D::Date32 => text(primitive::<Date32Type>(array, i).map(|days| date_text(i64::from(days)))),
        D::Date64 => text(primitive::<Date64Type>(array, i).map(|ms| date_text(ms.div_euclid(86_400_000)))),
        D::Timestamp(unit, zone) => {
            let value = match unit {
                TimeUnit::Second => primitive::<TimestampSecondType>(array, i),
                TimeUnit::Millisecond => primitive::<TimestampMillisecondType>(array, i),
                TimeUnit::Microsecond => primitive::<TimestampMicrosecondType>(array, i),
                TimeUnit::Nanosecond => primitive::<TimestampNanosecondType>(array, i),
            };
            text(value.map(|v| timestamp_text(v, *unit, zone.is_some())))
        }
        D::Time32(unit) => {
            let value = match unit {
                TimeUnit::Second => primitive::<Time32SecondType>(array, i),
                _ => primitive::<Time32MillisecondType>(array, i),
            };
            text(value.map(|v| time_text(i64::from(v), *unit)))
        }
        D::Time64(unit) => {
            let value = match unit {
                TimeUnit::Nanosecond => primitive::<Time64NanosecondType>(array, i),
                _ => primitive::<Time64MicrosecondType>(array, i),
            };
            text(value.map(|v| time_text(v, *unit)))
        }
        D::Duration(unit) => {
            let value = match unit {
                TimeUnit::Second => primitive::<DurationSecondType>(array, i),
                TimeUnit::Millisecond => primitive::<DurationMillisecondType>(array, i),
                TimeUnit::Microsecond => primitive::<DurationMicrosecondType>(array, i),
                TimeUnit::Nanosecond => primitive::<DurationNanosecondType>(array, i),
            };
            text(value.map(|v| duration_text(v, *unit)))
        }
        D::Decimal32(_, _) => decimal(array.as_primitive_opt::<Decimal32Type>().map(|a| a.value_as_string(i))),
        D::Decimal64(_, _) => decimal(array.as_primitive_opt::<Decimal64Type>().map(|a| a.value_as_string(i))),
        D::Decimal128(_, _) => decimal(array.as_primitive_opt::<Decimal128Type>().map(|a| a.value_as_string(i))),
        D::Decimal256(_, _) => decimal(array.as_primitive_opt::<Decimal256Type>().map(|a| a.value_as_string(i))),
        D::Dictionary(_, _) => match array.as_any_dictionary_opt() {
            Some(dictionary) => match key_at(dictionary.keys(), i) {
                Some(key) => prop_value(dictionary.values().as_ref(), key),
                None => PropValue::Null,
            },
            None => PropValue::Null,
        },
        D::List(_) | D::LargeList(_) | D::FixedSizeList(_, _) | D::Struct(_) | D::Map(_, _) => {
            let mut json = String::new();
            write_json(array, i, &mut json);
            PropValue::Json(json)
        }
        _ => PropValue::Null,
    }
}

fn real(v: Option<f64>) -> PropValue {
    v.filter(|v| v.is_finite()).map_or(PropValue::Null, PropValue::Real)
}

/// A decimal's exact text, as a JSON number (`Json`), which a double might not hold.
fn decimal(text: Option<String>) -> PropValue {
    text.map_or(PropValue::Null, PropValue::Json)
}

/// A dictionary key as an index into its values.
fn key_at(keys: &dyn Array, i: usize) -> Option<usize> {
    use DataType as D;
    if keys.is_null(i) {
        return None;
    }
    let key: i64 = match keys.data_type() {
        D::Int8 => primitive::<Int8Type>(keys, i)?.into(),
        D::Int16 => primitive::<Int16Type>(keys, i)?.into(),
        D::Int32 => primitive::<Int32Type>(keys, i)?.into(),
        D::Int64 => primitive::<Int64Type>(keys, i)?,
        D::UInt8 => primitive::<UInt8Type>(keys, i)?.into(),
        D::UInt16 => primitive::<UInt16Type>(keys, i)?.into(),
        D::UInt32 => primitive::<UInt32Type>(keys, i)?.into(),
        D::UInt64 => i64::try_from(primitive::<UInt64Type>(keys, i)?).ok()?,
        _ => return None,
    };
    usize::try_from(key).ok()
}

/// The value at `i` as compact JSON text; nesting is bounded by the checks of
/// [`unreadable_type`].
fn write_json(array: &dyn Array, i: usize, out: &mut String) {
    use DataType as D;
    if i >= array.len() || array.data_type() == &D::Null || array.is_null(i) {
        out.push_str("null");
        return;
    }
    let items = |out: &mut String, values: &dyn Array, range: Range<usize>| {
        out.push('[');
        for (n, j) in range.enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_json(values, j, out);
        }
        out.push(']');
    };
    match array.data_type() {
        D::List(_) | D::LargeList(_) => match list_members(array, i) {
            Ok((values, range)) => items(out, values.as_ref(), range),
            Err(_) => out.push_str("null"),
        },
        D::FixedSizeList(_, _) => match array.as_fixed_size_list_opt() {
            Some(list) => {
                let start = list.value_offset_at(i);
                let end = (start + list.value_length().max(0) as usize).min(list.values().len());
                items(out, list.values().as_ref(), start..end.max(start));
            }
            None => out.push_str("null"),
        },
        D::Struct(_) => match array.as_struct_opt() {
            Some(fields) => {
                out.push('{');
                for (n, (name, column)) in fields.column_names().iter().zip(fields.columns()).enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&PropValue::Text(name.to_string()).to_json_text());
                    out.push(':');
                    write_json(column.as_ref(), i, out);
                }
                out.push('}');
            }
            None => out.push_str("null"),
        },
        D::Map(_, _) => match array.as_map_opt() {
            Some(map) => {
                let offsets = map.value_offsets();
                let (start, end) = (offsets[i].max(0) as usize, offsets[i + 1].max(0) as usize);
                let (keys, values) = (map.keys(), map.values());
                out.push('{');
                for (n, j) in (start..end.min(keys.len()).min(values.len())).enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    // Keys are JSON object member names: text keys as they are, others as
                    // their JSON text.
                    let key = match prop_value(keys.as_ref(), j) {
                        PropValue::Text(s) => s,
                        other => other.to_json_text(),
                    };
                    out.push_str(&PropValue::Text(key).to_json_text());
                    out.push(':');
                    write_json(values.as_ref(), j, out);
                }
                out.push('}');
            }
            None => out.push_str("null"),
        },
        D::Dictionary(_, _) => match array.as_any_dictionary_opt() {
            Some(dictionary) => match key_at(dictionary.keys(), i) {
                Some(key) => write_json(dictionary.values().as_ref(), key, out),
                None => out.push_str("null"),
            },
            None => out.push_str("null"),
        },
        _ => out.push_str(&prop_value(array, i).to_json_text()),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(DIGITS[usize::from(b >> 4)] as char);
        text.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    text
}

/// Year, month and day of a day count from 1970-01-01 in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`), for any `i64` the units here give.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn date_text(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Units per second and the fractional digits that show them.
fn unit_scale(unit: TimeUnit) -> (i64, usize) {
    match unit {
        TimeUnit::Second => (1, 0),
        TimeUnit::Millisecond => (1_000, 3),
        TimeUnit::Microsecond => (1_000_000, 6),
        TimeUnit::Nanosecond => (1_000_000_000, 9),
    }
}

/// `HH:MM:SS` and the fraction of the unit, from units since midnight (or any epoch's
/// midnight).
fn clock_text(units: i64, unit: TimeUnit) -> String {
    let (per_second, digits) = unit_scale(unit);
    let seconds = units.div_euclid(per_second).rem_euclid(86_400);
    let fraction = units.rem_euclid(per_second);
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if digits > 0 {
        text.push_str(&format!(".{fraction:0digits$}"));
    }
    text
}

fn time_text(units: i64, unit: TimeUnit) -> String {
    clock_text(units, unit)
}

fn timestamp_text(units: i64, unit: TimeUnit, utc: bool) -> String {
    let (per_second, _) = unit_scale(unit);
    let days = units.div_euclid(per_second).div_euclid(86_400);
    let zone = if utc { "Z" } else { "" };
    format!("{}T{}{zone}", date_text(days), clock_text(units, unit))
}

fn duration_text(units: i64, unit: TimeUnit) -> String {
    let (per_second, digits) = unit_scale(unit);
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    let per_second = per_second as u64;
    let (seconds, fraction) = (magnitude / per_second, magnitude % per_second);
    if digits == 0 {
        format!("{sign}PT{seconds}S")
    } else {
        format!("{sign}PT{seconds}.{fraction:0digits$}S")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(date_text(19_844), "2024-05-01");
        assert_eq!(date_text(-719_468), "0000-03-01");
        assert_eq!(timestamp_text(1_714_564_800_000, TimeUnit::Millisecond, true), "2024-05-01T12:00:00.000Z");
        assert_eq!(timestamp_text(1_714_564_800, TimeUnit::Second, false), "2024-05-01T12:00:00");
        assert_eq!(timestamp_text(-1, TimeUnit::Microsecond, true), "1969-12-31T23:59:59.999999Z");
        assert_eq!(time_text(45_296_789, TimeUnit::Millisecond), "12:34:56.789");
        assert_eq!(time_text(45_296, TimeUnit::Second), "12:34:56");
        assert_eq!(duration_text(-1_500, TimeUnit::Millisecond), "-PT1.500S");
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        // Extreme values still give text, never a panic.
        let _ = timestamp_text(i64::MIN, TimeUnit::Second, true);
        let _ = timestamp_text(i64::MAX, TimeUnit::Nanosecond, false);
        let _ = date_text(i64::from(i32::MIN));
    }
}
