//! FlatGeobuf, read front to back: the header (geometry type, columns, CRS), the spatial
//! index skipped, then one size-prefixed feature at a time.
//!
//! The `flatgeobuf` crate gives the flatbuffer tables and their verifiers; the framing, the
//! geometries and the properties are read here, every offset and count checked, because its
//! own readers index into untrusted buffers and would panic on a corrupt file. A feature
//! whose bytes are corrupt but whose size prefix holds is a per-feature problem and reading
//! goes on; a file that ends early or whose header is corrupt is a file error.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flatgeobuf::{size_prefixed_root_as_feature, size_prefixed_root_as_header, ColumnType, GeometryType};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::{minify_json, PropValue};

use crate::geopackage::base64;
use crate::read_up_to;
use crate::{file_crs, malformed, CrsTransform, DecodedFeature, FeatureSource, RawFeature, ReadError};
use crate::{ReadOptions, SourceInfo};

const FORMAT: &str = "FlatGeobuf";
const MAGIC_LEN: usize = 8;
/// The largest header the format allows (as its reference reader).
const MAX_HEADER_BYTES: u32 = 10 << 20;
/// Bytes of one node of the packed R-tree: a box of four doubles and an offset.
const INDEX_NODE_BYTES: u64 = 40;
/// Geometry collections nested deeper than this are refused.
const MAX_DEPTH: usize = 64;

pub(crate) fn open<'a>(
    stream: Box<dyn Read + Send + 'a>,
    path: Option<&Path>,
    options: &ReadOptions,
    given_crs: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let mut reader: Box<dyn Read + Send + 'a> = match path {
        Some(path) => Box::new(BufReader::with_capacity(1 << 16, File::open(path)?)),
        None => Box::new(BufReader::with_capacity(1 << 16, stream)),
    };
    let header = read_header(&mut reader)?;
    let transform = match given_crs {
        Some(given) => given,
        None => {
            file_crs(None, header.crs.as_deref()).map_err(|e| crate::in_context(e, "the CRS of the FlatGeobuf file"))?
        }
    };
    skip_index(&mut reader, header.features_count, header.index_node_size)?;
    Ok(Box::new(FlatGeobufSource {
        reader,
        columns: header.columns,
        geometry_type: header.geometry_type,
        features_count: header.features_count,
        transform,
        max_feature_bytes: options.limits.max_feature_bytes,
        buf: Vec::new(),
        next_index: 0,
        done: false,
    }))
}

/// What the header says, owned.
struct Header {
    geometry_type: GeometryType,
    columns: Vec<(String, ColumnType)>,
    /// 0 when the writer did not know.
    features_count: u64,
    index_node_size: u16,
    crs: Option<String>,
}

fn read_header(reader: &mut impl Read) -> Result<Header, ReadError> {
    let mut magic = [0; MAGIC_LEN];
    read_exact_or(reader, &mut magic, "the file ends inside its magic bytes")?;
    if &magic[..3] != b"fgb" || &magic[4..7] != b"fgb" {
        return Err(malformed(FORMAT, "the file does not start with the FlatGeobuf magic bytes"));
    }
    let mut size = [0; 4];
    read_exact_or(reader, &mut size, "the file ends before its header")?;
    let header_len = u32::from_le_bytes(size);
    if !(8..=MAX_HEADER_BYTES).contains(&header_len) {
        return Err(malformed(
            FORMAT,
            format!("header size {header_len} is not between 8 and {MAX_HEADER_BYTES} bytes"),
        ));
    }
    let mut buf = size.to_vec();
    reader.take(u64::from(header_len)).read_to_end(&mut buf)?;
    if buf.len() < 4 + header_len as usize {
        return Err(malformed(FORMAT, "the file ends inside its header"));
    }
    let header =
        size_prefixed_root_as_header(&buf).map_err(|e| malformed(FORMAT, format!("the header is corrupt: {e}")))?;
    let columns = header
        .columns()
        .map(|columns| columns.iter().map(|c| (c.name().to_string(), c.type_())).collect())
        .unwrap_or_default();
    let crs = header.crs().and_then(|crs| {
        let org = crs.org().filter(|o| !o.trim().is_empty()).unwrap_or("EPSG");
        let wkt = crs.wkt().filter(|w| !w.trim().is_empty());
        if crs.code() > 0 && org.eq_ignore_ascii_case("EPSG") {
            Some(format!("EPSG:{}", crs.code()))
        } else if let Some(wkt) = wkt {
            Some(wkt.to_string())
        } else if crs.code() > 0 {
            Some(format!("{org}:{}", crs.code()))
        } else {
            crs.code_string().filter(|c| !c.trim().is_empty()).map(|c| format!("{org}:{c}"))
        }
    });
    Ok(Header {
        geometry_type: header.geometry_type(),
        columns,
        features_count: header.features_count(),
        index_node_size: header.index_node_size(),
        crs,
    })
}

fn read_exact_or(reader: &mut impl Read, buf: &mut [u8], why: &str) -> Result<(), ReadError> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => malformed(FORMAT, why),
        _ => ReadError::Io(e),
    })
}

/// Reads past the packed R-tree, if the file has one: features are read in file order.
fn skip_index(reader: &mut impl Read, features_count: u64, node_size: u16) -> Result<(), ReadError> {
    let Some(len) = index_len(features_count, node_size) else {
        return Err(malformed(FORMAT, format!("a spatial index of {features_count} features cannot exist")));
    };
    let skipped = io::copy(&mut reader.take(len), &mut io::sink())?;
    if skipped < len {
        return Err(malformed(FORMAT, "the file ends inside its spatial index"));
    }
    Ok(())
}

/// The bytes of a packed R-tree of `count` items and `node_size` children a node; `None`
/// when that overflows.
fn index_len(count: u64, node_size: u16) -> Option<u64> {
    if node_size == 0 || count == 0 {
        return Some(0);
    }
    let node_size = u64::from(node_size.max(2));
    let (mut level, mut nodes) = (count, count);
    // Levels up to the root, which sits above even a single item.
    loop {
        level = level.div_ceil(node_size);
        nodes = nodes.checked_add(level)?;
        if level == 1 {
            break;
        }
    }
    nodes.checked_mul(INDEX_NODE_BYTES)
}

pub(crate) struct FlatGeobufSource<'a> {
    reader: Box<dyn Read + Send + 'a>,
    columns: Vec<(String, ColumnType)>,
    geometry_type: GeometryType,
    features_count: u64,
    transform: CrsTransform,
    max_feature_bytes: usize,
    /// The feature at hand, with its size prefix.
    buf: Vec<u8>,
    next_index: u64,
    done: bool,
}

impl FlatGeobufSource<'_> {
    /// The next feature; `None` at the end of the file.
    fn read_feature(&mut self) -> Result<Option<RawFeature>, ReadError> {
        let index = self.next_index;
        if self.features_count > 0 && index >= self.features_count {
            return Ok(None);
        }
        let mut size = [0; 4];
        match read_up_to(&mut self.reader, &mut size)? {
            0 if self.features_count == 0 => return Ok(None),
            0 => {
                return Err(malformed(
                    FORMAT,
                    format!("the file ends after {index} of the {} features its header counts", self.features_count),
                ))
            }
            4 => {}
            _ => return Err(malformed(FORMAT, format!("the file ends inside the size of feature {index}"))),
        }
        self.next_index += 1;
        let len = u32::from_le_bytes(size);
        if len as usize > self.max_feature_bytes {
            let skipped = io::copy(&mut (&mut self.reader).take(u64::from(len)), &mut io::sink())?;
            if skipped < u64::from(len) {
                return Err(malformed(FORMAT, format!("the file ends inside feature {index}")));
            }
            let problem = Problem::new(
                ProblemCode::TooLarge,
                format!("the feature takes {len} bytes, more than the limit of {}", self.max_feature_bytes),
            );
            return Ok(Some(self.decoded(index, DecodedFeature { problems: vec![problem], ..Default::default() })));
        }
        self.buf.clear();
        self.buf.extend_from_slice(&size);
        // Grows with what is read, not with what the prefix claims.
        (&mut self.reader).take(u64::from(len)).read_to_end(&mut self.buf)?;
        if self.buf.len() < 4 + len as usize {
            return Err(malformed(FORMAT, format!("the file ends inside feature {index}")));
        }
        let feature = match decode_feature(&self.buf, self.geometry_type, &self.columns) {
            Ok(feature) => feature,
            Err(why) => DecodedFeature {
                problems: vec![Problem::new(ProblemCode::MalformedFile, format!("the feature is unreadable: {why}"))],
                ..Default::default()
            },
        };
        Ok(Some(self.decoded(index, feature)))
    }

    fn decoded(&self, index: u64, feature: DecodedFeature) -> RawFeature {
        RawFeature::decoded(index, feature, self.transform.clone())
    }
}

/// One size-prefixed feature table: its geometry and properties.
fn decode_feature(
    buf: &[u8],
    geometry_type: GeometryType,
    header_columns: &[(String, ColumnType)],
) -> Result<DecodedFeature, String> {
    let feature = size_prefixed_root_as_feature(buf).map_err(|e| format!("its flatbuffer is corrupt: {e}"))?;
    // A feature may carry columns of its own, overriding the header's.
    let own_columns: Option<Vec<(String, ColumnType)>> =
        feature.columns().map(|columns| columns.iter().map(|c| (c.name().to_string(), c.type_())).collect());
    let columns = own_columns.as_deref().unwrap_or(header_columns);
    let properties = match feature.properties() {
        Some(bytes) => read_properties(bytes.bytes(), columns).map_err(|why| format!("its properties: {why}"))?,
        None => columns.iter().map(|(name, _)| (name.clone(), PropValue::Null)).collect(),
    };
    let geometry = match feature.geometry() {
        Some(g) => read_geometry(&g, geometry_type, 0).map_err(|why| format!("its geometry: {why}"))?,
        None => None,
    };
    Ok(DecodedFeature { id: PropValue::Null, geometry, properties, problems: Vec::new() })
}

/// The properties buffer: (column index as u16, value) pairs; columns not in it are null.
fn read_properties(bytes: &[u8], columns: &[(String, ColumnType)]) -> Result<Vec<(String, PropValue)>, String> {
    let mut values = vec![PropValue::Null; columns.len()];
    let mut cursor = Bytes { bytes, pos: 0 };
    // Some writers leave one trailing byte after the last value.
    while cursor.left() > 1 {
        let column = cursor.u16()? as usize;
        let (name, kind) = columns.get(column).ok_or_else(|| format!("column {column} is not in the header"))?;
        let value = match *kind {
            ColumnType::Byte => PropValue::Int(i64::from(cursor.array::<1>()?[0] as i8)),
            ColumnType::UByte => PropValue::Int(i64::from(cursor.array::<1>()?[0])),
            ColumnType::Bool => PropValue::Bool(cursor.array::<1>()?[0] != 0),
            ColumnType::Short => PropValue::Int(i64::from(i16::from_le_bytes(cursor.array()?))),
            ColumnType::UShort => PropValue::Int(i64::from(cursor.u16()?)),
            ColumnType::Int => PropValue::Int(i64::from(i32::from_le_bytes(cursor.array()?))),
            ColumnType::UInt => PropValue::Int(i64::from(cursor.u32()?)),
            ColumnType::Long => PropValue::Int(i64::from_le_bytes(cursor.array()?)),
            ColumnType::ULong => {
                let n = u64::from_le_bytes(cursor.array()?);
                // Beyond i64: the exact number as JSON text.
                i64::try_from(n).map_or_else(|_| PropValue::Json(n.to_string()), PropValue::Int)
            }
            ColumnType::Float => PropValue::Real(f64::from(f32::from_le_bytes(cursor.array()?))),
            ColumnType::Double => PropValue::Real(f64::from_le_bytes(cursor.array()?)),
            ColumnType::String | ColumnType::DateTime => PropValue::Text(cursor.text(name)?.to_string()),
            ColumnType::Json => {
                let text = cursor.text(name)?;
                // Kept as text when it is not JSON after all.
                match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                    Ok(_) => PropValue::Json(minify_json(text)),
                    Err(_) => PropValue::Text(text.to_string()),
                }
            }
            ColumnType::Binary => {
                let len = cursor.u32()? as usize;
                PropValue::Text(base64(cursor.slice(len)?))
            }
            other => return Err(format!("column {name:?} has unknown type {}", other.0)),
        };
        values[column] = value;
    }
    Ok(columns.iter().map(|(name, _)| name.clone()).zip(values).collect())
}

/// A bounds-checked reader of little-endian values.
struct Bytes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn slice(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("a value at byte {} runs past the end", self.pos))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let slice = self.slice(N)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, String> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_le_bytes)
    }

    fn text(&mut self, column: &str) -> Result<&'a str, String> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.slice(len)?).map_err(|_| format!("column {column:?} holds text that is not UTF-8"))
    }
}

/// A FlatGeobuf geometry: positions in `xy` (and `z`), split by `ends` into rings or lines,
/// members in `parts`. An empty point is no geometry.
fn read_geometry(g: &flatgeobuf::Geometry<'_>, declared: GeometryType, depth: usize) -> Result<Option<Geom>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("geometries nested more than {MAX_DEPTH} deep"));
    }
    let kind = if declared == GeometryType::Unknown { g.type_() } else { declared };
    let members = |want: GeometryType| -> Result<Vec<Geom>, String> {
        let Some(parts) = g.parts() else { return Ok(Vec::new()) };
        let mut members = Vec::with_capacity(parts.len());
        for part in parts.iter() {
            members.extend(read_geometry(&part, want, depth + 1)?);
        }
        Ok(members)
    };
    Ok(Some(match kind {
        GeometryType::Point => match positions(g)?.as_slice() {
            [] => return Ok(None),
            [p] if p.x.is_nan() && p.y.is_nan() => return Ok(None),
            [p] => Geom::Point(*p),
            more => return Err(format!("a point with {} positions", more.len())),
        },
        GeometryType::MultiPoint => Geom::MultiPoint(positions(g)?),
        GeometryType::LineString => Geom::LineString(positions(g)?),
        GeometryType::Polygon => Geom::Polygon(split(g)?),
        GeometryType::MultiLineString => Geom::MultiLineString(split(g)?),
        GeometryType::MultiPolygon => Geom::MultiPolygon(
            members(GeometryType::Polygon)?
                .into_iter()
                .map(|m| match m {
                    Geom::Polygon(rings) => rings,
                    _ => Vec::new(),
                })
                .collect(),
        ),
        GeometryType::GeometryCollection => Geom::GeometryCollection(members(GeometryType::Unknown)?),
        GeometryType::Unknown => return Err("a geometry of unknown type".to_string()),
        other => {
            return Err(format!("geometry type {} is not read", other.variant_name().unwrap_or("(unknown)")));
        }
    }))
}

/// All positions of `g`, with z when it has them.
fn positions(g: &flatgeobuf::Geometry<'_>) -> Result<Vec<Pos>, String> {
    let Some(xy) = g.xy() else { return Ok(Vec::new()) };
    if xy.len() % 2 != 0 {
        return Err(format!("{} ordinates do not make x, y pairs", xy.len()));
    }
    let count = xy.len() / 2;
    let z = g.z().filter(|z| !z.is_empty());
    if let Some(z) = &z {
        if z.len() != count {
            return Err(format!("{} z values for {count} positions", z.len()));
        }
    }
    let mut out = Vec::with_capacity(count);
    let mut ordinates = xy.iter();
    let mut zs = z.map(|z| z.iter());
    while let (Some(x), Some(y)) = (ordinates.next(), ordinates.next()) {
        let z = zs.as_mut().and_then(Iterator::next).unwrap_or(f64::NAN);
        out.push(Pos { x, y, z });
    }
    Ok(out)
}

/// The positions of `g` cut at its `ends` (rings of a polygon, lines of a multi-line).
fn split(g: &flatgeobuf::Geometry<'_>) -> Result<Vec<Vec<Pos>>, String> {
    let mut all = positions(g)?;
    let Some(ends) = g.ends().filter(|e| !e.is_empty()) else {
        return Ok(if all.is_empty() { Vec::new() } else { vec![all] });
    };
    let mut parts = Vec::with_capacity(ends.len());
    let mut start = 0;
    for end in ends.iter() {
        let end = end as usize;
        if end < start || end > all.len() {
            return Err(format!("part end {end} is outside positions {start}..{}", all.len()));
        }
        parts.push(all[start..end].to_vec());
        start = end;
    }
    if start != all.len() {
        return Err(format!("{} positions after the last part end", all.len() - start));
    }
    all.clear();
    Ok(parts)
}

impl Iterator for FlatGeobufSource<'_> {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.read_feature().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

impl FeatureSource for FlatGeobufSource<'_> {
    fn info(&self) -> SourceInfo {
        SourceInfo::read(FORMAT, None, &self.transform, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sizes_as_the_reference_reader() {
        for (count, node_size) in [(1, 16), (2, 16), (16, 16), (17, 16), (179, 16), (1000, 2), (100_000, 16)] {
            assert_eq!(
                index_len(count, node_size),
                Some(flatgeobuf::packed_r_tree::PackedRTree::index_size(count as usize, node_size) as u64),
                "{count} {node_size}"
            );
        }
        assert_eq!(index_len(5, 0), Some(0));
        assert_eq!(index_len(u64::MAX, 16), None);
    }

    #[test]
    fn properties_are_bounds_checked() {
        let columns = vec![("a".to_string(), ColumnType::Int), ("s".to_string(), ColumnType::String)];
        let mut ok = vec![0, 0];
        ok.extend_from_slice(&7i32.to_le_bytes());
        ok.extend_from_slice(&[1, 0, 2, 0, 0, 0, b'h', b'i']);
        assert_eq!(
            read_properties(&ok, &columns),
            Ok(vec![("a".to_string(), PropValue::Int(7)), ("s".to_string(), PropValue::Text("hi".into()))])
        );
        for cut in 2..ok.len() - 1 {
            // Cut after the first value (or one byte into the next): the second is left out.
            let whole_values = cut == 6 || cut == 7;
            assert_eq!(read_properties(&ok[..cut], &columns).is_ok(), whole_values, "{cut}");
        }
        assert!(read_properties(&[5, 0, 0, 0], &columns).is_err());
    }
}
