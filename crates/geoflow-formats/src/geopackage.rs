//! GeoPackage: an SQLite database whose feature tables are listed in `gpkg_contents` and
//! `gpkg_geometry_columns`, geometries stored as GeoPackage binary (a short header, then WKB).
//!
//! The database is opened read-only and immutable, so nothing (no journal, no WAL file) is
//! written next to it. Rows are read a page at a time, in the order of the table's integer
//! primary key, so memory stays bounded whatever the table's size.

use std::collections::VecDeque;
use std::path::Path;

use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::PropValue;
use geoflow_core::wkb;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{file_crs, malformed, unsupported, CrsTransform, DecodedFeature, FeatureSource, RawFeature};
use crate::{ReadError, ReadOptions, SourceInfo};

const FORMAT: &str = "GeoPackage";
/// Rows read per query.
const PAGE_ROWS: usize = 1000;
/// A page ends early once its geometry and attribute bytes pass this, so a table of huge
/// geometries does not fill memory a thousand at a time.
const PAGE_BYTES: usize = 32 << 20;

pub(crate) fn open<'a>(
    path: &Path,
    options: &ReadOptions,
    given_crs: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let conn = connect(path)?;
    let layer = pick_layer(&conn, options.layer.as_deref())?;
    let transform = match given_crs {
        Some(given) => given,
        None => file_crs(None, layer_crs(&conn, &layer)?.as_deref())
            .map_err(|e| crate::in_context(e, &format!("the CRS of GeoPackage layer {:?}", layer.table)))?,
    };
    let columns = table_columns(&conn, &layer)?;
    Ok(Box::new(GeoPackageSource {
        conn,
        query: columns.query,
        attributes: columns.attributes,
        geometry_at: columns.geometry_at,
        layer: layer.table,
        transform,
        page: VecDeque::new(),
        after_fid: None,
        next_index: 0,
        done: false,
    }))
}

/// Opens the file read-only; `immutable=1` keeps SQLite from writing or locking anything
/// beside it.
fn connect(path: &Path) -> Result<Connection, ReadError> {
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags).map_err(sqlite_error)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name IN ('gpkg_contents', 'gpkg_geometry_columns')",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite_error)?;
    if tables < 2 {
        return Err(unsupported(
            "an SQLite database that is not a GeoPackage",
            "it has no gpkg_contents and gpkg_geometry_columns tables; export the layer as a GeoPackage or GeoJSON",
        ));
    }
    Ok(conn)
}

/// The path as an SQLite URI path: characters that mean something in a URI escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Any SQLite error reading a file: a corrupt or truncated database, or not a database.
fn sqlite_error(e: rusqlite::Error) -> ReadError {
    malformed(FORMAT, e)
}

/// A table to read: a feature table (with its geometry column) or an attribute table.
struct Layer {
    table: String,
    geometry_column: Option<String>,
    srs_id: Option<i64>,
}

/// The feature tables of the GeoPackage at `path`, in name order.
pub(crate) fn layer_names(path: &Path) -> Result<Vec<String>, ReadError> {
    let (features, _) = tables(&connect(path)?)?;
    Ok(features.into_iter().map(|layer| layer.table).collect())
}

/// Writes a GeoPackage holding only the table `wanted` of the one at `path` to `out` (an
/// empty file): its declaration and rows, its `gpkg_contents` and `gpkg_geometry_columns`
/// entries and the CRS table, so that it reads — here and in any GeoPackage reader — as that
/// layer alone. The spatial index is left out: it is rebuilt by whatever loads the layer.
pub(crate) fn extract_layer(path: &Path, wanted: &str, out: &Path) -> Result<(), ReadError> {
    let layer = pick_layer(&connect(path)?, Some(wanted))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let write_error =
        |e: rusqlite::Error| ReadError::Io(std::io::Error::other(format!("writing layer {wanted:?}: {e}")));
    let dst = Connection::open_with_flags(out, flags).map_err(write_error)?;
    // GeoPackage 1.3's application id ("GPKG") and version.
    dst.execute_batch("PRAGMA application_id = 1196444487; PRAGMA user_version = 10300; PRAGMA journal_mode = OFF;")
        .map_err(write_error)?;
    dst.execute("ATTACH DATABASE ?1 AS src", [format!("file:{}?immutable=1", uri_path(path))]).map_err(sqlite_error)?;
    let mut declared = vec!["gpkg_spatial_ref_sys", "gpkg_contents", layer.table.as_str()];
    if layer.geometry_column.is_some() {
        declared.insert(2, "gpkg_geometry_columns");
    }
    let tx = dst.unchecked_transaction().map_err(write_error)?;
    for table in declared {
        let sql: String = tx
            .query_row("SELECT sql FROM src.sqlite_master WHERE type = 'table' AND name = ?1", [table], |row| {
                row.get(0)
            })
            .optional()
            .map_err(sqlite_error)?
            .ok_or_else(|| malformed(FORMAT, format!("the table {table:?} is not declared")))?;
        tx.execute_batch(&sql).map_err(sqlite_error)?;
    }
    let table = quote(&layer.table);
    tx.execute("INSERT INTO main.gpkg_spatial_ref_sys SELECT * FROM src.gpkg_spatial_ref_sys", [])
        .map_err(sqlite_error)?;
    tx.execute("INSERT INTO main.gpkg_contents SELECT * FROM src.gpkg_contents WHERE table_name = ?1", [&layer.table])
        .map_err(sqlite_error)?;
    if layer.geometry_column.is_some() {
        tx.execute(
            "INSERT INTO main.gpkg_geometry_columns SELECT * FROM src.gpkg_geometry_columns WHERE table_name = ?1",
            [&layer.table],
        )
        .map_err(sqlite_error)?;
    }
    tx.execute(&format!("INSERT INTO main.{table} SELECT * FROM src.{table}"), []).map_err(sqlite_error)?;
    tx.commit().map_err(write_error)?;
    dst.execute("DETACH DATABASE src", []).map_err(write_error)?;
    Ok(())
}

/// The feature tables and the attribute tables, each in name order.
fn tables(conn: &Connection) -> Result<(Vec<Layer>, Vec<Layer>), ReadError> {
    let mut statement = conn
        .prepare(
            "SELECT c.table_name, lower(c.data_type), g.column_name, g.srs_id FROM gpkg_contents c \
             LEFT JOIN gpkg_geometry_columns g ON g.table_name = c.table_name \
             WHERE lower(c.data_type) IN ('features', 'attributes', 'aspatial') ORDER BY c.table_name",
        )
        .map_err(sqlite_error)?;
    let rows = statement
        .query_map([], |row| {
            let data_type: String = row.get(1)?;
            let geometry_column: Option<String> = row.get(2)?;
            Ok((
                data_type == "features" && geometry_column.is_some(),
                Layer { table: row.get(0)?, geometry_column, srs_id: row.get(3)? },
            ))
        })
        .map_err(sqlite_error)?;
    let mut features = Vec::new();
    let mut attributes = Vec::new();
    for row in rows {
        let (is_features, layer) = row.map_err(sqlite_error)?;
        if is_features {
            features.push(layer);
        } else {
            attributes.push(Layer { geometry_column: None, srs_id: None, ..layer });
        }
    }
    Ok((features, attributes))
}

/// The feature tables, or the one the layer option names (attribute tables too).
fn pick_layer(conn: &Connection, wanted: Option<&str>) -> Result<Layer, ReadError> {
    let (mut features, mut attributes) = tables(conn)?;
    let names = |layers: &[Layer]| layers.iter().map(|l| format!("{:?}", l.table)).collect::<Vec<_>>().join(", ");
    if let Some(wanted) = wanted {
        let position = |exact: bool| {
            let matches = |l: &Layer| if exact { l.table == wanted } else { l.table.eq_ignore_ascii_case(wanted) };
            features
                .iter()
                .position(matches)
                .map(|i| (true, i))
                .or_else(|| attributes.iter().position(matches).map(|i| (false, i)))
        };
        return match position(true).or_else(|| position(false)) {
            Some((true, i)) => Ok(features.swap_remove(i)),
            Some((false, i)) => Ok(attributes.swap_remove(i)),
            None => Err(layer_problem(format!(
                "the GeoPackage has no layer {wanted:?}; its feature layers are: {}",
                if features.is_empty() { "none".to_string() } else { names(&features) }
            ))),
        };
    }
    match features.len() {
        1 => Ok(features.swap_remove(0)),
        0 if attributes.is_empty() => {
            Err(unsupported("a GeoPackage without feature tables", "it holds no vector features (tiles only?)"))
        }
        0 => Err(layer_problem(format!(
            "the GeoPackage has no feature layer, only attribute tables ({}); pick one with the layer option to \
             read it without geometry",
            names(&attributes)
        ))),
        _ => Err(layer_problem(format!(
            "the GeoPackage holds {} feature layers ({}); pick one with the layer option, or load each into a \
             dataset of its own (--layers-as-datasets, or ?layers_as_datasets=true on upload)",
            features.len(),
            names(&features)
        ))),
    }
}

fn layer_problem(message: String) -> ReadError {
    ReadError::Unreadable(Problem::new(ProblemCode::UnsupportedFormat, message))
}

/// The layer's CRS as PROJ reads it: `EPSG:n` for an EPSG entry, else the entry's WKT;
/// `None` for the undefined systems (-1, 0) and for attribute tables.
fn layer_crs(conn: &Connection, layer: &Layer) -> Result<Option<String>, ReadError> {
    let Some(srs_id) = layer.srs_id.filter(|_| layer.geometry_column.is_some()) else {
        return Ok(None);
    };
    match srs_id {
        -1 | 0 => return Ok(None),
        4326 => return Ok(Some("EPSG:4326".to_string())),
        _ => {}
    }
    let entry = conn
        .query_row(
            "SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?1",
            [srs_id],
            |row| {
                Ok((row.get::<_, Option<String>>(0)?, row.get::<_, Option<i64>>(1)?, row.get::<_, Option<String>>(2)?))
            },
        )
        .optional()
        .map_err(sqlite_error)?;
    match entry {
        Some((Some(org), Some(code), _)) if org.eq_ignore_ascii_case("EPSG") && code > 0 => {
            Ok(Some(format!("EPSG:{code}")))
        }
        Some((_, _, Some(wkt))) if !wkt.trim().is_empty() && !wkt.trim().eq_ignore_ascii_case("undefined") => {
            Ok(Some(wkt))
        }
        Some(_) => {
            Err(malformed(FORMAT, format!("srs_id {srs_id} of layer {:?} has no usable definition", layer.table)))
        }
        None => Err(malformed(
            FORMAT,
            format!("layer {:?} names srs_id {srs_id}, which gpkg_spatial_ref_sys does not define", layer.table),
        )),
    }
}

/// How a column's values become properties, from its declared type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ColumnKind {
    Int,
    Bool,
    Real,
    Text,
    Blob,
    /// Any other declared type: go by each stored value's own type.
    Stored,
}

impl ColumnKind {
    fn from_declared(declared: &str) -> ColumnKind {
        // `TEXT(20)`, `VARCHAR(8)`: the size does not change the kind.
        let base = declared.split('(').next().unwrap_or("").trim().to_ascii_uppercase();
        match base.as_str() {
            "INTEGER" | "INT" | "MEDIUMINT" | "SMALLINT" | "TINYINT" | "BIGINT" => ColumnKind::Int,
            "BOOLEAN" => ColumnKind::Bool,
            "REAL" | "DOUBLE" | "FLOAT" => ColumnKind::Real,
            "TEXT" | "DATE" | "DATETIME" => ColumnKind::Text,
            "BLOB" => ColumnKind::Blob,
            _ => ColumnKind::Stored,
        }
    }
}

struct TableColumns {
    /// `SELECT fid, geometry?, attributes… FROM table WHERE fid > ?1 ORDER BY fid LIMIT n`
    /// (the first page has `fid > -inf`, see [`GeoPackageSource::read_page`]).
    query: String,
    attributes: Vec<(String, ColumnKind)>,
    /// Index of the geometry column in the query's results.
    geometry_at: Option<usize>,
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_columns(conn: &Connection, layer: &Layer) -> Result<TableColumns, ReadError> {
    let mut statement = conn.prepare(&format!("PRAGMA table_info({})", quote(&layer.table))).map_err(sqlite_error)?;
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?, row.get::<_, i64>(5)?)))
        .map_err(sqlite_error)?;
    let mut key = None;
    let mut key_columns = 0;
    let mut attributes = Vec::new();
    let mut found_geometry = false;
    for row in rows {
        let (name, declared, pk) = row.map_err(sqlite_error)?;
        let declared = declared.unwrap_or_default();
        if pk > 0 {
            key_columns += 1;
            if declared.eq_ignore_ascii_case("INTEGER") {
                key = Some(name.clone());
                continue;
            }
        }
        if layer.geometry_column.as_deref().is_some_and(|g| g.eq_ignore_ascii_case(&name)) {
            found_geometry = true;
            continue;
        }
        attributes.push((name, ColumnKind::from_declared(&declared)));
    }
    if attributes.is_empty() && !found_geometry && key.is_none() {
        return Err(malformed(FORMAT, format!("the table {:?} of gpkg_contents does not exist", layer.table)));
    }
    if layer.geometry_column.is_some() && !found_geometry {
        return Err(malformed(
            FORMAT,
            format!("the table {:?} has no column {:?}", layer.table, layer.geometry_column.as_deref().unwrap_or("")),
        ));
    }
    // A composite key is no row order: read by rowid then.
    let key = match key {
        Some(key) if key_columns == 1 => quote(&key),
        _ => "rowid".to_string(),
    };
    let mut selected = vec![key.clone()];
    let geometry_at = layer.geometry_column.as_deref().map(|g| {
        selected.push(quote(g));
        1
    });
    selected.extend(attributes.iter().map(|(name, _)| quote(name)));
    let query = format!(
        "SELECT {} FROM {} WHERE {key} > ?1 ORDER BY {key} LIMIT {PAGE_ROWS}",
        selected.join(", "),
        quote(&layer.table)
    );
    Ok(TableColumns { query, attributes, geometry_at })
}

pub(crate) struct GeoPackageSource {
    conn: Connection,
    query: String,
    attributes: Vec<(String, ColumnKind)>,
    geometry_at: Option<usize>,
    layer: String,
    transform: CrsTransform,
    page: VecDeque<RawFeature>,
    /// The last fid read (`None` before the first page).
    after_fid: Option<i64>,
    next_index: u64,
    done: bool,
}

impl GeoPackageSource {
    /// Reads the next rows into `page`; none left ends the source.
    fn read_page(&mut self) -> Result<(), ReadError> {
        let mut statement = self.conn.prepare_cached(&self.query).map_err(sqlite_error)?;
        let mut rows = statement.query([self.after_fid.unwrap_or(i64::MIN)]).map_err(sqlite_error)?;
        let mut bytes = 0;
        let mut read = 0;
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            let fid = match row.get_ref(0).map_err(sqlite_error)? {
                ValueRef::Integer(fid) => fid,
                other => {
                    return Err(malformed(
                        FORMAT,
                        format!("a row of {:?} has a {} primary key, not an integer", self.layer, other.data_type()),
                    ))
                }
            };
            let mut feature = DecodedFeature { id: PropValue::Int(fid), ..DecodedFeature::default() };
            if let Some(at) = self.geometry_at {
                let value = row.get_ref(at).map_err(sqlite_error)?;
                bytes += value_len(value);
                match decode_geometry(value) {
                    Ok(geometry) => feature.geometry = geometry,
                    Err(why) => feature.problems.push(Problem::new(
                        ProblemCode::InvalidCoordinates,
                        format!("the geometry of the row with fid {fid} is unreadable: {why}"),
                    )),
                }
            }
            let first_attribute = 1 + usize::from(self.geometry_at.is_some());
            for (i, (name, kind)) in self.attributes.iter().enumerate() {
                let value = row.get_ref(first_attribute + i).map_err(sqlite_error)?;
                bytes += value_len(value);
                feature.properties.push((name.clone(), property(*kind, value)));
            }
            self.page.push_back(RawFeature::decoded(self.next_index, feature, self.transform.clone()));
            self.next_index += 1;
            self.after_fid = Some(fid);
            read += 1;
            if bytes > PAGE_BYTES {
                break;
            }
        }
        // A short page is the last one, unless it was cut short for its size.
        if read == 0 || (read < PAGE_ROWS && bytes <= PAGE_BYTES) {
            self.done = true;
        }
        Ok(())
    }
}

fn value_len(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
        _ => 8,
    }
}

/// A column value as a property: by the declared type where the stored value fits it, else
/// by the stored value's own type (SQLite keeps any value in any column).
fn property(kind: ColumnKind, value: ValueRef<'_>) -> PropValue {
    match (kind, value) {
        (_, ValueRef::Null) => PropValue::Null,
        (ColumnKind::Bool, ValueRef::Integer(i @ (0 | 1))) => PropValue::Bool(i == 1),
        (ColumnKind::Real, ValueRef::Integer(i)) => PropValue::Real(i as f64),
        (_, ValueRef::Integer(i)) => PropValue::Int(i),
        (_, ValueRef::Real(r)) => PropValue::Real(r),
        (_, ValueRef::Text(t)) => PropValue::Text(String::from_utf8_lossy(t).into_owned()),
        (_, ValueRef::Blob(b)) => PropValue::Text(base64(b)),
    }
}

/// Binary values as base64 text (standard alphabet, padded), as GDAL writes them to GeoJSON.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A GeoPackage geometry blob: `GP`, version, flags, srs_id, an optional envelope, then WKB.
/// An empty geometry (the flag, or `POINT EMPTY`) is none.
fn decode_geometry(value: ValueRef<'_>) -> Result<Option<geoflow_core::geometry::Geom>, String> {
    let blob = match value {
        ValueRef::Null => return Ok(None),
        ValueRef::Blob(blob) => blob,
        other => return Err(format!("it is {}, not a GeoPackage geometry blob", other.data_type())),
    };
    let header: &[u8; 8] = blob.first_chunk().ok_or("the blob is shorter than a GeoPackage geometry header")?;
    if &header[..2] != b"GP" {
        return Err("the blob does not start with the GeoPackage magic \"GP\"".to_string());
    }
    let flags = header[3];
    let envelope_len = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        other => return Err(format!("envelope indicator {other} is not 0 to 4")),
    };
    if flags & 0b1_0000 != 0 {
        return Ok(None);
    }
    let wkb = blob.get(8 + envelope_len..).ok_or("the blob ends inside its envelope")?;
    wkb::decode(wkb).map_err(|e| format!("its WKB is malformed: {e}"))
}

impl Iterator for GeoPackageSource {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            if let Err(e) = self.read_page() {
                self.done = true;
                self.page.clear();
                return Some(Err(e));
            }
        }
        self.page.pop_front().map(Ok)
    }
}

impl FeatureSource for GeoPackageSource {
    fn info(&self) -> SourceInfo {
        SourceInfo::read(FORMAT, Some(&self.layer), &self.transform, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn geometry_blobs() {
        let point = wkb::encode(&geoflow_core::geometry::Geom::Point(geoflow_core::geometry::Pos::xy(1.0, 2.0))).wkb;
        let mut blob = b"GP\0\x01\xe6\x10\0\0".to_vec();
        blob.extend_from_slice(&point);
        assert!(matches!(decode_geometry(ValueRef::Blob(&blob)), Ok(Some(_))));
        // An envelope (indicator 1: 32 bytes) before the WKB.
        let mut with_envelope = b"GP\0\x03\xe6\x10\0\0".to_vec();
        with_envelope.extend_from_slice(&[0; 32]);
        with_envelope.extend_from_slice(&point);
        // NaN z: compared as text.
        let text = |blob: &[u8]| format!("{:?}", decode_geometry(ValueRef::Blob(blob)));
        assert_eq!(text(&with_envelope), text(&blob));
        assert_eq!(decode_geometry(ValueRef::Blob(b"GP\0\x11\0\0\0\0")), Ok(None));
        for bad in [&b"GP"[..], b"XX\0\x01\0\0\0\0", b"GP\0\x0f\0\0\0\0", b"GP\0\x03\0\0\0\0\0"] {
            assert!(decode_geometry(ValueRef::Blob(bad)).is_err(), "{bad:?}");
        }
        assert!(decode_geometry(ValueRef::Text(b"POINT(1 2)")).is_err());
    }

    #[test]
    fn uri_paths_are_escaped() {
        assert_eq!(uri_path(Path::new("/tmp/a b?c#d%.gpkg")), "/tmp/a%20b%3Fc%23d%25.gpkg");
    }
}
