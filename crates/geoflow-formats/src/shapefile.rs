//! One Shapefile (its .shp, .shx and .dbf unpacked to a scratch folder), read feature by
//! feature: the .shx gives where each shape is, the .shp its geometry (decoded by the
//! `shapefile` crate) and the .dbf its attributes.
//!
//! Features come in record order. A record the .dbf marks deleted is not read, as GDAL does
//! not read it, and every feature keeps its record number as its index, which is GDAL's FID:
//! a report's "feature 12" is the feature `ogrinfo` and QGIS show as FID 12.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use ::shapefile::{ReadableShape, Shape};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::PropValue;

use crate::dbf::{DbfReader, DbfRecord, TextEncoding};
use crate::{malformed, CrsTransform, DecodedFeature, FeatureSource, RawFeature, ReadError, SourceInfo};

const FORMAT: &str = "Shapefile";
/// The .shp and .shx headers.
const MAIN_HEADER_LEN: u64 = 100;
const INDEX_ENTRY_LEN: u64 = 8;
const RECORD_HEADER_LEN: u64 = 8;
const MULTIPATCH: &str = "it is a MultiPatch (a 3D surface), which geoflow does not read";
/// Read-ahead of the .shp and .shx: a few dozen typical records per read.
const READ_AHEAD: usize = 64 << 10;

/// The files of one Shapefile, on disk.
pub(crate) struct ShapefileFiles<'a> {
    /// The layer's name (the .shp's base name).
    pub layer: &'a str,
    pub shp: &'a Path,
    pub shx: &'a Path,
    pub dbf: &'a Path,
    /// The .cpg's text, if there is one.
    pub cpg: Option<&'a str>,
}

pub(crate) struct ShapefileSource {
    layer: String,
    shp: BufReader<File>,
    /// Where `shp` is, to seek only when a shape is not where the last one ended.
    shp_pos: u64,
    shp_len: u64,
    shx: BufReader<File>,
    dbf: DbfReader,
    /// The current record's content, reused from record to record.
    content: Vec<u8>,
    /// Features to read: the longer of the .shp and the .dbf.
    count: u64,
    shapes: u64,
    next: u64,
    max_feature_bytes: usize,
    transform: CrsTransform,
    notes: Vec<String>,
    done: bool,
}

impl ShapefileSource {
    pub(crate) fn open(
        files: &ShapefileFiles<'_>,
        transform: CrsTransform,
        max_feature_bytes: usize,
    ) -> Result<ShapefileSource, ReadError> {
        let layer = files.layer;
        let mut notes = Vec::new();
        let encoding = match files.cpg {
            None => None,
            Some(cpg) => {
                let encoding = TextEncoding::from_cpg(cpg);
                if encoding.is_none() {
                    notes.push(format!(
                        "{layer}.cpg names the code page {:?}, which geoflow does not know: the language driver in \
                         {layer}.dbf is used instead",
                        cpg.trim()
                    ));
                }
                encoding
            }
        };
        let dbf = DbfReader::open(files.dbf, &format!("{layer}.dbf"), encoding)?;
        notes.extend(dbf.notes().iter().cloned());

        let shp_file = File::open(files.shp)?;
        let shp_len = shp_file.metadata()?.len();
        let mut shp = BufReader::with_capacity(READ_AHEAD, shp_file);
        let header = ::shapefile::header::Header::read_from(&mut shp).map_err(|e| match e {
            ::shapefile::Error::InvalidFileCode(_) => malformed(FORMAT, format!("{layer}.shp is not a Shapefile .shp")),
            ::shapefile::Error::InvalidShapeType(code) => {
                malformed(FORMAT, format!("{layer}.shp declares shape type {code}, which is not a Shapefile type"))
            }
            _ => malformed(FORMAT, format!("{layer}.shp is too short to hold a Shapefile header")),
        })?;
        if header.shape_type == ::shapefile::ShapeType::Multipatch {
            notes.push(format!("{layer}.shp holds MultiPatch shapes (3D surfaces), which geoflow does not read"));
        }

        let shx_file = File::open(files.shx)?;
        let shx_len = shx_file.metadata()?.len();
        let mut shx = BufReader::with_capacity(READ_AHEAD, shx_file);
        let shx_header = ::shapefile::header::Header::read_from(&mut shx)
            .map_err(|_| malformed(FORMAT, format!("{layer}.shx is not a Shapefile index")))?;
        let declared = (u64::try_from(shx_header.file_length).unwrap_or(0) * 2).saturating_sub(MAIN_HEADER_LEN);
        let present = shx_len.saturating_sub(MAIN_HEADER_LEN);
        if present < declared {
            return Err(malformed(
                FORMAT,
                format!(
                    "{layer}.shx is truncated: it says it is {} bytes long and is {shx_len}",
                    declared + MAIN_HEADER_LEN
                ),
            ));
        }
        let shapes = declared / INDEX_ENTRY_LEN;
        let records = dbf.len();
        if records != shapes {
            notes.push(format!(
                "{layer}.shp holds {shapes} shapes and {layer}.dbf {records} records: features past the end of either \
                 have no {}",
                if records < shapes { "attributes" } else { "geometry" }
            ));
        }
        Ok(ShapefileSource {
            layer: layer.to_string(),
            shp,
            shp_pos: MAIN_HEADER_LEN,
            shp_len,
            shx,
            dbf,
            content: Vec::new(),
            count: shapes.max(records),
            shapes,
            next: 0,
            max_feature_bytes,
            transform,
            notes,
            done: false,
        })
    }

    /// The feature at `index`, `None` when its record is deleted.
    fn read(&mut self, index: u64) -> Result<Option<RawFeature>, ReadError> {
        let properties = match self.dbf.read(index)? {
            DbfRecord::Deleted => {
                self.skip_shape(index)?;
                return Ok(None);
            }
            DbfRecord::Values(values) => values,
        };
        let mut problems = Vec::new();
        let geometry = if index < self.shapes {
            match self.read_shape(index)? {
                Ok(geometry) => geometry,
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            }
        } else {
            None
        };
        let feature = DecodedFeature { id: PropValue::Null, geometry, properties, problems };
        Ok(Some(RawFeature::decoded(index, feature, self.transform.clone())))
    }

    /// Keeps the .shx in step past a deleted record.
    fn skip_shape(&mut self, index: u64) -> Result<(), ReadError> {
        if index < self.shapes {
            self.index_entry(index)?;
        }
        Ok(())
    }

    /// The .shx entry of shape `index`: the offset and length of its record in the .shp.
    fn index_entry(&mut self, index: u64) -> Result<(u64, u64), ReadError> {
        let mut entry = [0u8; INDEX_ENTRY_LEN as usize];
        self.shx.read_exact(&mut entry).map_err(|e| self.truncated("shx", index, e))?;
        let offset = u64::from(u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]])) * 2;
        let length = u64::from(u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]])) * 2;
        Ok((offset, length))
    }

    /// Shape `index`'s geometry, or what is wrong with its record. A .shp cut short fails
    /// the whole source.
    fn read_shape(&mut self, index: u64) -> Result<Result<Option<Geom>, Problem>, ReadError> {
        let (offset, length) = self.index_entry(index)?;
        let corrupt = |why: String| Err(Problem::new(ProblemCode::MalformedFile, format!("shape {index}: {why}")));
        if length > self.max_feature_bytes as u64 {
            return Ok(Err(Problem::new(
                ProblemCode::TooLarge,
                format!("shape {index} takes {length} bytes, more than the {} a feature may", self.max_feature_bytes),
            )));
        }
        if offset < MAIN_HEADER_LEN {
            return Ok(corrupt(format!("the .shx places it at byte {offset}, inside the file header")));
        }
        let content_start = offset + RECORD_HEADER_LEN;
        if content_start + length > self.shp_len {
            return Err(malformed(
                FORMAT,
                format!(
                    "{}.shp is truncated: shape {index} would end at byte {}, past its end",
                    self.layer,
                    content_start + length
                ),
            ));
        }
        if content_start != self.shp_pos {
            // Records follow each other, with only a record header between them: a skip
            // forward keeps what is buffered, where an absolute seek would drop it.
            match content_start.checked_sub(self.shp_pos).and_then(|skip| i64::try_from(skip).ok()) {
                Some(skip) => self.shp.seek_relative(skip)?,
                None => {
                    self.shp.seek(SeekFrom::Start(content_start))?;
                }
            }
        }
        let mut content = std::mem::take(&mut self.content);
        content.clear();
        content.resize(length as usize, 0);
        let read = self.shp.read_exact(&mut content);
        if read.is_ok() {
            self.shp_pos = content_start + length;
        }
        let decoded = read.map(|()| decode_shape(&content));
        self.content = content;
        Ok(decoded
            .map_err(|e| self.truncated("shp", index, e))?
            .map_err(|why| Problem::new(ProblemCode::MalformedFile, format!("shape {index}: {why}"))))
    }

    fn truncated(&self, extension: &str, index: u64, e: io::Error) -> ReadError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                malformed(FORMAT, format!("{}.{extension} is truncated before shape {index}", self.layer))
            }
            _ => ReadError::Io(e),
        }
    }
}

impl Iterator for ShapefileSource {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done && self.next < self.count {
            let index = self.next;
            self.next += 1;
            match self.read(index) {
                Ok(Some(feature)) => return Some(Ok(feature)),
                Ok(None) => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl FeatureSource for ShapefileSource {
    fn info(&self) -> SourceInfo {
        let mut info = SourceInfo::read(FORMAT, Some(&self.layer), &self.transform, &self.notes);
        if self.dbf.encoding() != TextEncoding::Undeclared {
            info.notes.push(format!("{}.dbf text read as {}", self.layer, self.dbf.encoding().name()));
        }
        info
    }
}

/// A shape record's content (after its record header) as a geometry; `None` for a null or
/// empty shape.
fn decode_shape(content: &[u8]) -> Result<Option<Geom>, String> {
    check_counts(content)?;
    // 2D lines and polygons, the usual shapes, are read straight from the bytes: the shapefile
    // crate reads them the same way but through a vector of its own per part.
    match content.get(..4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])) {
        Some(POLYLINE) => return Ok(lines(xy_parts(content).into_iter())),
        Some(POLYGON) => return Ok(polygons(xy_parts(content).into_iter())),
        _ => {}
    }
    decode_with_crate(content)
}

/// A record whose counts `check_counts` accepted, decoded by the shapefile crate.
fn decode_with_crate(content: &[u8]) -> Result<Option<Geom>, String> {
    let length = i32::try_from(content.len()).map_err(|_| "the record is too long".to_string())?;
    let shape = Shape::read_from(&mut Cursor::new(content), length).map_err(describe)?;
    Ok(match shape {
        Shape::NullShape => None,
        Shape::Point(p) => point(Pos::xy(p.x, p.y)),
        Shape::PointM(p) => point(Pos::xy(p.x, p.y)),
        Shape::PointZ(p) => point(Pos { x: p.x, y: p.y, z: p.z }),
        Shape::Multipoint(m) => multipoint(m.into_inner().into_iter().map(|p| Pos::xy(p.x, p.y)).collect()),
        Shape::MultipointM(m) => multipoint(m.into_inner().into_iter().map(|p| Pos::xy(p.x, p.y)).collect()),
        Shape::MultipointZ(m) => {
            multipoint(m.into_inner().into_iter().map(|p| Pos { x: p.x, y: p.y, z: p.z }).collect())
        }
        Shape::Polyline(l) => {
            lines(l.into_inner().into_iter().map(|part| part.into_iter().map(|p| Pos::xy(p.x, p.y)).collect()))
        }
        Shape::PolylineM(l) => {
            lines(l.into_inner().into_iter().map(|part| part.into_iter().map(|p| Pos::xy(p.x, p.y)).collect()))
        }
        Shape::PolylineZ(l) => lines(
            l.into_inner().into_iter().map(|part| part.into_iter().map(|p| Pos { x: p.x, y: p.y, z: p.z }).collect()),
        ),
        Shape::Polygon(p) => polygons(
            p.into_inner().into_iter().map(|r| r.into_inner().into_iter().map(|p| Pos::xy(p.x, p.y)).collect()),
        ),
        Shape::PolygonM(p) => polygons(
            p.into_inner().into_iter().map(|r| r.into_inner().into_iter().map(|p| Pos::xy(p.x, p.y)).collect()),
        ),
        Shape::PolygonZ(p) => polygons(
            p.into_inner()
                .into_iter()
                .map(|r| r.into_inner().into_iter().map(|p| Pos { x: p.x, y: p.y, z: p.z }).collect()),
        ),
        Shape::Multipatch(_) => return Err(MULTIPATCH.to_string()),
    })
}

const POLYLINE: i32 = 3;
const POLYGON: i32 = 5;

/// The parts of a 2D Polyline or Polygon record whose counts `check_counts` accepted, as the
/// shapefile crate reads them: part `k` takes the next `start[k + 1] - start[k]` points (the
/// last one up to the point count).
fn xy_parts(content: &[u8]) -> Vec<Vec<Pos>> {
    let i32_at = |at: usize| content.get(at..at + 4).map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let as_count = |n: i32| usize::try_from(n).unwrap_or(0);
    let (parts, points) = (as_count(i32_at(36)), as_count(i32_at(40)));
    let starts_at = 44;
    let mut xy = content.get(starts_at + 4 * parts..).unwrap_or_default().chunks_exact(16).map(|b| {
        let f64_at = |at: usize| {
            f64::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]])
        };
        Pos::xy(f64_at(0), f64_at(8))
    });
    (0..parts)
        .map(|part| {
            let start = as_count(i32_at(starts_at + 4 * part));
            let end = if part + 1 < parts { as_count(i32_at(starts_at + 4 * (part + 1))) } else { points };
            xy.by_ref().take(end.saturating_sub(start)).collect()
        })
        .collect()
}

/// Checks the part and point counts a record declares against its length before they are
/// decoded, so that no count a corrupt record declares makes a large allocation.
fn check_counts(content: &[u8]) -> Result<(), String> {
    let i32_at = |at: usize| content.get(at..at + 4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let Some(shape_type) = i32_at(0) else {
        return Err("the record is shorter than its shape type".to_string());
    };
    let multipart = match shape_type {
        3 | 5 | 13 | 15 | 23 | 25 => true,
        8 | 18 | 28 => false,
        31 => return Err(MULTIPATCH.to_string()),
        // Points and the null shape are short; other types are refused when decoded.
        _ => return Ok(()),
    };
    let counts_at = 36;
    let (parts, points, fixed) = if multipart {
        let (Some(parts), Some(points)) = (i32_at(counts_at), i32_at(counts_at + 4)) else {
            return Err("the record ends before its part and point counts".to_string());
        };
        (parts, points, counts_at + 8)
    } else {
        let Some(points) = i32_at(counts_at) else {
            return Err("the record ends before its point count".to_string());
        };
        (0, points, counts_at + 4)
    };
    let (Ok(parts), Ok(points)) = (usize::try_from(parts), usize::try_from(points)) else {
        return Err(format!("it declares {parts} parts and {points} points"));
    };
    // Z and M values may be left out (M always is optional): the x and y alone must fit.
    let needed = fixed as u64 + 4 * parts as u64 + 16 * points as u64;
    if needed > content.len() as u64 {
        return Err(format!(
            "it declares {parts} parts and {points} points, more than its {} bytes hold",
            content.len()
        ));
    }
    let mut previous = 0;
    for part in 0..parts {
        let start = i32_at(fixed + 4 * part).unwrap_or(-1);
        match usize::try_from(start) {
            Ok(start) if start >= previous && start <= points => previous = start,
            _ => return Err(format!("part {part} starts at point {start}, outside its {points} points")),
        }
    }
    Ok(())
}

fn describe(e: ::shapefile::Error) -> String {
    match e {
        ::shapefile::Error::IoError(_) => "the record ends before its points do".to_string(),
        ::shapefile::Error::InvalidShapeType(code) => format!("shape type {code} is not a Shapefile type"),
        ::shapefile::Error::InvalidShapeRecordSize => "its length does not match its points".to_string(),
        other => other.to_string(),
    }
}

fn point(p: Pos) -> Option<Geom> {
    // ESRI writes an empty point as NaN coordinates.
    (p.x.is_finite() && p.y.is_finite()).then_some(Geom::Point(p))
}

fn multipoint(points: Vec<Pos>) -> Option<Geom> {
    (!points.is_empty()).then_some(Geom::MultiPoint(points))
}

fn lines(parts: impl Iterator<Item = Vec<Pos>>) -> Option<Geom> {
    let mut parts: Vec<Vec<Pos>> = parts.filter(|p| !p.is_empty()).collect();
    match parts.len() {
        0 => None,
        1 => parts.pop().map(Geom::LineString),
        _ => Some(Geom::MultiLineString(parts)),
    }
}

/// Rings into polygons as GDAL groups them: clockwise rings are outer rings, each
/// counter-clockwise ring is a hole of the smallest outer ring that contains it, and a
/// counter-clockwise ring inside none is an outer ring of its own.
fn polygons(rings: impl Iterator<Item = Vec<Pos>>) -> Option<Geom> {
    let mut rings: Vec<Vec<Pos>> = rings.filter(|r| !r.is_empty()).collect();
    // One ring is one polygon, whichever way it turns.
    if rings.len() == 1 {
        return rings.pop().map(|ring| Geom::Polygon(vec![ring]));
    }
    let areas: Vec<f64> = rings.iter().map(|r| signed_area(r)).collect();
    // Shoelace area is negative for clockwise rings; a flat ring counts as outer.
    let outer: Vec<bool> = areas.iter().map(|&a| a <= 0.0).collect();
    let outers: Vec<usize> = (0..rings.len()).filter(|&i| outer[i]).collect();
    // The outer ring each ring belongs to (itself, for an outer ring or an orphan hole).
    let owner: Vec<usize> = (0..rings.len())
        .map(|i| {
            if outer[i] {
                return i;
            }
            if outers.len() == 1 {
                return outers[0];
            }
            outers
                .iter()
                .copied()
                .filter(|&o| contains(&rings[o], &rings[i]))
                .min_by(|&a, &b| areas[a].abs().total_cmp(&areas[b].abs()))
                .unwrap_or(i)
        })
        .collect();
    // Polygons in the order of their outer rings, each outer ring first, then its holes.
    let mut rings: Vec<Option<Vec<Pos>>> = rings.into_iter().map(Some).collect();
    let mut polygons: Vec<Vec<Vec<Pos>>> = Vec::new();
    for i in (0..rings.len()).filter(|&i| owner[i] == i) {
        let mut polygon: Vec<Vec<Pos>> = rings[i].take().into_iter().collect();
        for hole in (0..rings.len()).filter(|&h| owner[h] == i) {
            polygon.extend(rings[hole].take());
        }
        polygons.push(polygon);
    }
    match polygons.len() {
        0 => None,
        1 => polygons.pop().map(Geom::Polygon),
        _ => Some(Geom::MultiPolygon(polygons)),
    }
}

/// The shoelace area: positive for counter-clockwise rings.
fn signed_area(ring: &[Pos]) -> f64 {
    let sum: f64 = ring.windows(2).map(|w| w[0].x * w[1].y - w[1].x * w[0].y).sum();
    sum / 2.0
}

/// Whether `hole` lies inside `ring` (tested at its first vertex, and its second should the
/// first be on the ring's edge).
fn contains(ring: &[Pos], hole: &[Pos]) -> bool {
    hole.iter().take(2).map(|p| inside(ring, p)).find(|r| r.is_some()).flatten().unwrap_or(false)
}

/// Ray casting: `Some(inside)`, `None` on the boundary.
fn inside(ring: &[Pos], p: &Pos) -> Option<bool> {
    let mut crossings = false;
    for w in ring.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let cross = (b.x - a.x) * (p.y - a.y) - (p.x - a.x) * (b.y - a.y);
        let within_x = p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x);
        let within_y = p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y);
        if cross == 0.0 && within_x && within_y {
            return None;
        }
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            crossings = !crossings;
        }
    }
    Some(crossings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions with z 0 (NaN, for 2D, never compares equal).
    fn ring(points: &[(f64, f64)]) -> Vec<Pos> {
        points.iter().map(|&(x, y)| Pos { x, y, z: 0.0 }).collect()
    }

    /// A clockwise square from (x, y), `size` wide.
    fn outer(x: f64, y: f64, size: f64) -> Vec<Pos> {
        ring(&[(x, y), (x, y + size), (x + size, y + size), (x + size, y), (x, y)])
    }

    fn hole(x: f64, y: f64, size: f64) -> Vec<Pos> {
        outer(x, y, size).into_iter().rev().collect()
    }

    #[test]
    fn holes_go_to_the_outer_ring_that_contains_them() {
        let one = polygons([outer(0.0, 0.0, 10.0), hole(1.0, 1.0, 2.0)].into_iter());
        assert_eq!(one, Some(Geom::Polygon(vec![outer(0.0, 0.0, 10.0), hole(1.0, 1.0, 2.0)])));

        // Two islands, the hole listed first belongs to the second; a hole inside a hole's
        // island (a lake on an island in a lake) goes to the smallest outer ring around it.
        let rings = [
            hole(21.0, 1.0, 2.0),
            outer(0.0, 0.0, 10.0),
            outer(20.0, 0.0, 10.0),
            outer(2.0, 2.0, 5.0),
            hole(3.0, 3.0, 1.0),
        ];
        let expected = Geom::MultiPolygon(vec![
            vec![outer(0.0, 0.0, 10.0)],
            vec![outer(20.0, 0.0, 10.0), hole(21.0, 1.0, 2.0)],
            vec![outer(2.0, 2.0, 5.0), hole(3.0, 3.0, 1.0)],
        ]);
        assert_eq!(polygons(rings.into_iter()), Some(expected));

        // A counter-clockwise ring inside no outer ring is a polygon of its own.
        let orphan = polygons([outer(0.0, 0.0, 1.0), outer(5.0, 5.0, 1.0), hole(50.0, 50.0, 1.0)].into_iter());
        assert!(matches!(orphan, Some(Geom::MultiPolygon(ref p)) if p.len() == 3), "{orphan:?}");
        assert_eq!(polygons(std::iter::empty()), None);
    }

    #[test]
    fn lines_and_points_by_their_parts() {
        assert_eq!(
            lines([ring(&[(0.0, 0.0), (1.0, 1.0)])].into_iter()),
            Some(Geom::LineString(ring(&[(0.0, 0.0), (1.0, 1.0)])))
        );
        assert!(matches!(
            lines([ring(&[(0.0, 0.0)]), ring(&[(1.0, 1.0)])].into_iter()),
            Some(Geom::MultiLineString(_))
        ));
        assert_eq!(point(Pos::xy(f64::NAN, 1.0)), None);
        assert_eq!(multipoint(Vec::new()), None);
    }

    fn record(shape_type: i32, body: &[u8]) -> Vec<u8> {
        let mut bytes = shape_type.to_le_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn records_are_decoded_or_refused_without_large_allocations() {
        assert_eq!(decode_shape(&record(0, &[])), Ok(None));
        let mut point_z = Vec::new();
        for v in [1.0f64, 2.0, 3.0, 0.0] {
            point_z.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(decode_shape(&record(11, &point_z)), Ok(Some(Geom::Point(Pos { x: 1.0, y: 2.0, z: 3.0 }))));

        // A polyline claiming two billion points in 60 bytes.
        let mut huge = vec![0u8; 32];
        huge.extend_from_slice(&1i32.to_le_bytes());
        huge.extend_from_slice(&i32::MAX.to_le_bytes());
        huge.extend_from_slice(&0i32.to_le_bytes());
        let error = decode_shape(&record(3, &huge)).unwrap_err();
        assert!(error.contains("more than its"), "{error}");

        // A part starting past the points.
        let mut bad_part = vec![0u8; 32];
        bad_part.extend_from_slice(&1i32.to_le_bytes());
        bad_part.extend_from_slice(&1i32.to_le_bytes());
        bad_part.extend_from_slice(&5i32.to_le_bytes());
        bad_part.extend_from_slice(&[0u8; 16]);
        assert!(decode_shape(&record(5, &bad_part)).unwrap_err().contains("part 0"));

        let multipatch = decode_shape(&record(31, &[0u8; 40]));
        assert!(multipatch.is_err());
        assert!(decode_shape(&record(77, &[])).unwrap_err().contains("77"));
        assert!(decode_shape(&[1, 0]).is_err());
    }

    /// A 2D Polyline or Polygon record: its part starts, then its points.
    fn multipart(shape_type: i32, starts: &[i32], points: &[(f64, f64)]) -> Vec<u8> {
        let mut body = vec![0u8; 32];
        body.extend_from_slice(&i32::try_from(starts.len()).unwrap().to_le_bytes());
        body.extend_from_slice(&i32::try_from(points.len()).unwrap().to_le_bytes());
        for start in starts {
            body.extend_from_slice(&start.to_le_bytes());
        }
        for (x, y) in points {
            body.extend_from_slice(&x.to_le_bytes());
            body.extend_from_slice(&y.to_le_bytes());
        }
        record(shape_type, &body)
    }

    #[test]
    fn lines_and_polygons_read_from_the_bytes_as_the_shapefile_crate_reads_them() {
        let square = [(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (10.0, 0.0), (0.0, 0.0)];
        let hole = [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0), (1.0, 1.0)];
        let island = [(20.0, 0.0), (20.0, 5.0), (25.0, 5.0), (25.0, 0.0), (20.0, 0.0)];
        let all: Vec<(f64, f64)> = square.iter().chain(&hole).chain(&island).copied().collect();
        // Each case: the part starts, then the points.
        type Case<'a> = (&'a [i32], &'a [(f64, f64)]);
        let cases: Vec<Case> = vec![
            (&[0], &square),
            (&[0, 5], &all[..10]),
            (&[0, 5, 10], &all),
            (&[0, 10, 10], &all),
            // A first part starting past 0, a part with no points, no parts at all.
            (&[2, 5], &all[..10]),
            (&[0, 0, 5], &all[..10]),
            (&[], &square),
        ];
        for shape_type in [POLYLINE, POLYGON] {
            for (starts, points) in &cases {
                // Compared as text: a 2D position's z is NaN, which equals nothing.
                let mut content = multipart(shape_type, starts, points);
                let expected = format!("{:?}", decode_with_crate(&content));
                assert_eq!(format!("{:?}", decode_shape(&content)), expected, "type {shape_type}, parts {starts:?}");
                // Trailing bytes past the points are ignored alike.
                content.extend_from_slice(&[0u8; 12]);
                assert_eq!(format!("{:?}", decode_shape(&content)), expected, "type {shape_type}, parts {starts:?}");
            }
        }
    }
}
