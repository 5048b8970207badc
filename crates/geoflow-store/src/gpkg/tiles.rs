//! Vector tiles from a GeoPackage, encoded here (see [`crate::tiles`] for the rules, which
//! the PostGIS store follows with `ST_AsMVT`): candidates from the R-tree by the buffered
//! tile's box, each geometry projected to pixels of the tile (in the CRS of its tile matrix
//! set: WebMercator or plain degrees) as its WKB is read,
//! clipped to the buffered tile, simplified (Douglas–Peucker), snapped to the integer grid,
//! ring orientation fixed as the MVT spec asks, and encoded with the MVT geometry commands.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use geozero::mvt::tile::{Feature, GeomType, Layer, Value};
use geozero::mvt::{Message, Tile};
use rusqlite::types::ValueRef;

use geoflow_core::dataset::DatasetName;
use geoflow_core::row::GeometryKind;
use geoflow_core::schema::FieldType;
use geoflow_core::wkb::{self, Header, Part, Reason, Visitor, WkbError};

use super::features::Readers;
use super::geometry::parse_header;
use super::rtree::rtree_name;
use super::table::{quote, read_layout, PropertyColumns, PropertyValue};
use super::Ctx;
use crate::layout::Layout;
use crate::tiles::{Detail, EncodedTile, TileId, TileMatrixSet, BUFFER, DETAILS, EXTENT, TILE_BUDGET_BYTES};
use crate::StoreError;

type Pt = (f64, f64);

/// A geometry in tile pixels (y down), flattened into its parts.
#[derive(Debug, Default, Clone)]
struct Shape {
    points: Vec<Pt>,
    lines: Vec<Vec<Pt>>,
    /// Each polygon's rings, the exterior first.
    polygons: Vec<Vec<Vec<Pt>>>,
}

/// From lon/lat degrees to pixels of one tile.
#[derive(Debug, Clone, Copy)]
struct Projection {
    tms: TileMatrixSet,
    min_x: f64,
    max_y: f64,
    scale: f64,
}

impl Projection {
    fn new(tile: TileId) -> Projection {
        let [min_x, _, _, max_y] = tile.bounds();
        Projection { tms: tile.tms, min_x, max_y, scale: f64::from(EXTENT) / tile.side() }
    }

    fn pixel(&self, lon: f64, lat: f64) -> Pt {
        let (x, y) = self.tms.project(lon, lat);
        ((x - self.min_x) * self.scale, (self.max_y - y) * self.scale)
    }
}

/// The WKB geometry as a [`Shape`] in the tile's pixels.
fn read_shape(wkb: &[u8], projection: Projection) -> Result<Shape, WkbError> {
    let mut builder = ShapeBuilder { shape: Shape::default(), projection, in_point: false, part: Vec::new() };
    wkb::walk(wkb, &mut builder)?;
    Ok(builder.shape)
}

/// Flattens the geometry into a [`Shape`] as the WKB is read, projecting each position;
/// positions that are not finite are left out.
struct ShapeBuilder {
    shape: Shape,
    projection: Projection,
    /// Whether the position at hand is a point's.
    in_point: bool,
    /// The line string or ring at hand.
    part: Vec<Pt>,
}

impl Visitor for ShapeBuilder {
    fn begin(&mut self, h: &Header, _: Part, len: u32) -> Result<(), Reason> {
        self.in_point = h.kind == GeometryKind::Point;
        // `len` fits the bytes left: the capacities are bounded by the input.
        match h.kind {
            GeometryKind::LineString => self.part = Vec::with_capacity(len as usize),
            GeometryKind::Polygon => self.shape.polygons.push(Vec::with_capacity(len as usize)),
            _ => {}
        }
        Ok(())
    }

    fn begin_ring(&mut self, _: u32, len: u32) -> Result<(), Reason> {
        self.part = Vec::with_capacity(len as usize);
        Ok(())
    }

    fn position(&mut self, _: u32, x: f64, y: f64, _: Option<f64>) -> Result<(), Reason> {
        if x.is_finite() && y.is_finite() {
            let p = self.projection.pixel(x, y);
            if self.in_point {
                self.shape.points.push(p);
            } else {
                self.part.push(p);
            }
        }
        Ok(())
    }

    fn end_ring(&mut self) -> Result<(), Reason> {
        if let Some(rings) = self.shape.polygons.last_mut() {
            rings.push(std::mem::take(&mut self.part));
        }
        Ok(())
    }

    fn end(&mut self, h: &Header, _: Part) -> Result<(), Reason> {
        if h.kind == GeometryKind::LineString {
            self.shape.lines.push(std::mem::take(&mut self.part));
        }
        Ok(())
    }
}

/// The buffered tile in pixels: `[lo, hi]` on both axes.
#[derive(Debug, Clone, Copy)]
struct Square {
    lo: f64,
    hi: f64,
}

impl Square {
    fn buffered() -> Square {
        Square { lo: -f64::from(BUFFER), hi: f64::from(EXTENT + BUFFER) }
    }

    fn contains(&self, p: Pt) -> bool {
        (self.lo..=self.hi).contains(&p.0) && (self.lo..=self.hi).contains(&p.1)
    }

    /// The parts of a line inside the square (Liang–Barsky on each segment).
    fn clip_line(&self, line: &[Pt]) -> Vec<Vec<Pt>> {
        let mut runs = Vec::new();
        let mut run: Vec<Pt> = Vec::new();
        for w in line.windows(2) {
            let (a, b) = (w[0], w[1]);
            match self.clip_segment(a, b) {
                Some((p, q)) => {
                    if run.last() != Some(&p) {
                        if run.len() >= 2 {
                            runs.push(std::mem::take(&mut run));
                        }
                        run.clear();
                        run.push(p);
                    }
                    run.push(q);
                    if q != b {
                        runs.push(std::mem::take(&mut run));
                    }
                }
                None => {
                    if run.len() >= 2 {
                        runs.push(std::mem::take(&mut run));
                    }
                    run.clear();
                }
            }
        }
        if run.len() >= 2 {
            runs.push(run);
        }
        if line.len() == 1 && self.contains(line[0]) {
            runs.push(vec![line[0], line[0]]);
        }
        runs
    }

    fn clip_segment(&self, a: Pt, b: Pt) -> Option<(Pt, Pt)> {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [(-dx, a.0 - self.lo), (dx, self.hi - a.0), (-dy, a.1 - self.lo), (dy, self.hi - a.1)] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    t0 = t0.max(r);
                } else {
                    t1 = t1.min(r);
                }
                if t0 > t1 {
                    return None;
                }
            }
        }
        let at = |t: f64| {
            if t == 0.0 {
                a
            } else if t == 1.0 {
                b
            } else {
                (a.0 + t * dx, a.1 + t * dy)
            }
        };
        Some((at(t0), at(t1)))
    }

    /// A ring cut to the square (Sutherland–Hodgman), open (no repeated closing point).
    fn clip_ring(&self, ring: &[Pt]) -> Vec<Pt> {
        let mut out: Vec<Pt> = ring.to_vec();
        if out.len() > 1 && out.first() == out.last() {
            out.pop();
        }
        for edge in 0..4 {
            if out.is_empty() {
                break;
            }
            let inside = |p: Pt| match edge {
                0 => p.0 >= self.lo,
                1 => p.0 <= self.hi,
                2 => p.1 >= self.lo,
                _ => p.1 <= self.hi,
            };
            let cross = |a: Pt, b: Pt| {
                let t = match edge {
                    0 => (self.lo - a.0) / (b.0 - a.0),
                    1 => (self.hi - a.0) / (b.0 - a.0),
                    2 => (self.lo - a.1) / (b.1 - a.1),
                    _ => (self.hi - a.1) / (b.1 - a.1),
                };
                let p = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                // Exactly on the edge, whatever the rounding.
                match edge {
                    0 => (self.lo, p.1),
                    1 => (self.hi, p.1),
                    2 => (p.0, self.lo),
                    _ => (p.0, self.hi),
                }
            };
            let input = std::mem::take(&mut out);
            let mut prev = input[input.len() - 1];
            for &p in &input {
                match (inside(prev), inside(p)) {
                    (true, true) => out.push(p),
                    (true, false) => out.push(cross(prev, p)),
                    (false, true) => {
                        out.push(cross(prev, p));
                        out.push(p);
                    }
                    (false, false) => {}
                }
                prev = p;
            }
        }
        out
    }
}

/// Twice the signed area of an open ring, positive when clockwise on screen (y down).
fn area2(ring: &[Pt]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum()
}

fn area2_i(ring: &[(i32, i32)]) -> i64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i64::from(a.0) * i64::from(b.1) - i64::from(b.0) * i64::from(a.1)
        })
        .sum()
}

/// Douglas–Peucker with tolerance `tol` (pixels); the ends are kept.
fn simplify(line: &[Pt], tol: f64) -> Vec<Pt> {
    if line.len() <= 2 || tol <= 0.0 {
        return line.to_vec();
    }
    let mut keep = vec![false; line.len()];
    keep[0] = true;
    keep[line.len() - 1] = true;
    let mut stack = vec![(0, line.len() - 1)];
    let tol2 = tol * tol;
    while let Some((first, last)) = stack.pop() {
        let (a, b) = (line[first], line[last]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let (mut far, mut far_d2) = (0, 0.0);
        for (i, &p) in line.iter().enumerate().take(last).skip(first + 1) {
            let d2 = if len2 == 0.0 {
                (p.0 - a.0).powi(2) + (p.1 - a.1).powi(2)
            } else {
                let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0);
                (p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)
            };
            if d2 > far_d2 {
                (far, far_d2) = (i, d2);
            }
        }
        if far_d2 > tol2 {
            keep[far] = true;
            stack.push((first, far));
            stack.push((far, last));
        }
    }
    line.iter().zip(keep).filter(|(_, k)| *k).map(|(p, _)| *p).collect()
}

/// Points on the integer grid, consecutive repeats removed.
fn snap(points: &[Pt]) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = Vec::with_capacity(points.len());
    for p in points {
        let q = (p.0.round() as i32, p.1.round() as i32);
        if out.last() != Some(&q) {
            out.push(q);
        }
    }
    out
}

/// A geometry ready to encode, in integer tile coordinates.
#[derive(Debug, Clone, PartialEq)]
enum TileGeometry {
    Points(Vec<(i32, i32)>),
    Lines(Vec<Vec<(i32, i32)>>),
    /// Rings oriented for MVT (exteriors clockwise on screen), each open.
    Polygons(Vec<Vec<(i32, i32)>>),
}

impl TileGeometry {
    /// The corner of the geometry's box with the smallest coordinates: where thinning files it
    /// (PostGIS reads the same corner from the geometry's stored box).
    fn anchor(&self) -> Option<(i32, i32)> {
        let parts = match self {
            TileGeometry::Points(p) => std::slice::from_ref(p),
            TileGeometry::Lines(l) | TileGeometry::Polygons(l) => l.as_slice(),
        };
        parts.iter().flatten().copied().reduce(|(ax, ay), (x, y)| (ax.min(x), ay.min(y)))
    }

    /// The MVT geometry type and command stream.
    fn encode(&self) -> (GeomType, Vec<u32>) {
        fn command(id: u32, count: usize) -> u32 {
            (id & 0x7) | ((count as u32) << 3)
        }
        fn zigzag(v: i32) -> u32 {
            ((v << 1) ^ (v >> 31)) as u32
        }
        let mut out = Vec::new();
        let mut cursor = (0i32, 0i32);
        let mut to = |out: &mut Vec<u32>, p: (i32, i32)| {
            out.push(zigzag(p.0 - cursor.0));
            out.push(zigzag(p.1 - cursor.1));
            cursor = p;
        };
        match self {
            TileGeometry::Points(points) => {
                out.push(command(1, points.len()));
                for &p in points {
                    to(&mut out, p);
                }
                (GeomType::Point, out)
            }
            TileGeometry::Lines(lines) | TileGeometry::Polygons(lines) => {
                let polygon = matches!(self, TileGeometry::Polygons(_));
                for line in lines {
                    out.push(command(1, 1));
                    to(&mut out, line[0]);
                    out.push(command(2, line.len() - 1));
                    for &p in &line[1..] {
                        to(&mut out, p);
                    }
                    if polygon {
                        out.push(command(7, 1));
                    }
                }
                (if polygon { GeomType::Polygon } else { GeomType::Linestring }, out)
            }
        }
    }
}

/// The shape as a tile geometry at this detail: `None` when nothing of it is in the buffered
/// tile. What is in it but vanishes on the grid becomes a one-pixel polygon or line there.
fn shape_geometry(shape: &Shape, tol: f64) -> Option<TileGeometry> {
    let square = Square::buffered();
    // Polygons.
    let mut rings_out = Vec::new();
    let mut polygon_anchor = None;
    for polygon in &shape.polygons {
        let Some(exterior) = polygon.first() else { continue };
        let clipped_ext = square.clip_ring(exterior);
        let ext_area = area2(&clipped_ext).abs();
        if ext_area <= 0.0 {
            continue;
        }
        let holes: Vec<Vec<Pt>> = polygon[1..].iter().map(|h| square.clip_ring(h)).collect();
        let holes_area: f64 = holes.iter().map(|h| area2(h).abs()).sum();
        if ext_area - holes_area <= ext_area * 1e-12 {
            // The buffered tile lies in a hole.
            continue;
        }
        polygon_anchor = polygon_anchor.or_else(|| clipped_ext.first().copied());
        let ring = |r: &[Pt], exterior: bool| -> Option<Vec<(i32, i32)>> {
            let mut closed = r.to_vec();
            closed.push(r[0]);
            let mut s = snap(&simplify(&closed, tol));
            if s.len() > 1 && s.first() == s.last() {
                s.pop();
            }
            if s.len() < 3 {
                return None;
            }
            let a = area2_i(&s);
            if a == 0 {
                return None;
            }
            if (a > 0) != exterior {
                s.reverse();
            }
            Some(s)
        };
        let Some(ext) = ring(&clipped_ext, true) else { continue };
        rings_out.push(ext);
        for h in holes.iter().filter(|h| h.len() >= 3) {
            rings_out.extend(ring(h, false));
        }
    }
    if !rings_out.is_empty() {
        return Some(TileGeometry::Polygons(rings_out));
    }
    // Lines.
    let mut lines_out = Vec::new();
    let mut line_anchor = None;
    for line in &shape.lines {
        for run in square.clip_line(line) {
            line_anchor = line_anchor.or_else(|| run.first().copied());
            let s = snap(&simplify(&run, tol));
            if s.len() >= 2 {
                lines_out.push(s);
            }
        }
    }
    if !lines_out.is_empty() {
        return Some(TileGeometry::Lines(lines_out));
    }
    // Points.
    let mut points: Vec<(i32, i32)> = Vec::new();
    for p in shape.points.iter().filter(|p| square.contains(**p)) {
        let q = (p.0.round() as i32, p.1.round() as i32);
        if !points.contains(&q) {
            points.push(q);
        }
    }
    if !points.is_empty() {
        return Some(TileGeometry::Points(points));
    }
    let snap_in = |p: Pt| {
        let lim = |v: f64| v.round().clamp(square.lo, square.hi - 2.0) as i32;
        (lim(p.0), lim(p.1))
    };
    if let Some(p) = polygon_anchor {
        let (x, y) = snap_in(p);
        return Some(TileGeometry::Polygons(vec![vec![(x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1)]]));
    }
    if let Some(p) = line_anchor {
        let (x, y) = snap_in(p);
        return Some(TileGeometry::Lines(vec![vec![(x, y), (x + 2, y)]]));
    }
    None
}

/// A property value as the tile carries it.
#[derive(Debug, Clone, PartialEq)]
enum Prop {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// The value of a stored property (see how the loader stores each type); `None` for null.
fn prop(ty: FieldType, v: ValueRef<'_>) -> Option<Prop> {
    Some(match (ty, v) {
        (_, ValueRef::Null) => return None,
        (FieldType::Boolean, ValueRef::Integer(i)) => Prop::Bool(i != 0),
        (FieldType::Real, ValueRef::Integer(i)) => Prop::Double(i as f64),
        (_, ValueRef::Integer(i)) => Prop::Int(i),
        (_, ValueRef::Real(f)) => Prop::Double(f),
        (FieldType::Json, ValueRef::Text(t)) => {
            let text = String::from_utf8_lossy(t);
            // A string as its characters, any other JSON value as its text.
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::String(s)) => Prop::Str(s),
                _ => Prop::Str(text.into_owned()),
            }
        }
        (_, ValueRef::Text(t) | ValueRef::Blob(t)) => Prop::Str(String::from_utf8_lossy(t).into_owned()),
    })
}

/// The value of an overflow property, as PostGIS's `ST_AsMVT` spreads a jsonb object:
/// strings, booleans, integral numbers as integers and others as doubles; nested values and
/// nulls are left out.
fn member_prop(json: &serde_json::value::RawValue) -> Option<Prop> {
    Some(match serde_json::from_str::<serde_json::Value>(json.get()).ok()? {
        serde_json::Value::String(s) => Prop::Str(s),
        serde_json::Value::Bool(b) => Prop::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Prop::Int(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => Prop::Int(f as i64),
            (None, Some(f)) => Prop::Double(f),
            (None, None) => return None,
        },
        _ => return None,
    })
}

/// A feature read from the table: its fid, shape and non-null properties by column index.
struct Row {
    fid: i64,
    shape: Shape,
    props: Vec<(usize, Prop)>,
}

/// The layer's value table, each distinct value once.
#[derive(Default)]
struct Values {
    values: Vec<Value>,
    index: HashMap<(u8, Vec<u8>), u32>,
}

impl Values {
    fn index_of(&mut self, p: &Prop) -> u32 {
        let key = match p {
            Prop::Str(s) => (0, s.as_bytes().to_vec()),
            Prop::Int(i) => (1, i.to_le_bytes().to_vec()),
            Prop::Double(f) => (2, f.to_bits().to_le_bytes().to_vec()),
            Prop::Bool(b) => (3, vec![u8::from(*b)]),
        };
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let value = match p {
            Prop::Str(s) => Value { string_value: Some(s.clone()), ..Value::default() },
            Prop::Int(i) => Value { int_value: Some(*i), ..Value::default() },
            Prop::Double(f) => Value { double_value: Some(*f), ..Value::default() },
            Prop::Bool(b) => Value { bool_value: Some(*b), ..Value::default() },
        };
        let i = self.values.len() as u32;
        self.values.push(value);
        self.index.insert(key, i);
        i
    }
}

/// The tile at one detail; empty when no feature is in it.
fn encode(name: &str, layout: &Layout, rows: &[Row], detail: Detail) -> EncodedTile {
    let mut in_tile: u64 = 0;
    let mut features = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut key_index: HashMap<usize, u32> = HashMap::new();
    let mut values = Values::default();
    let mut taken = std::collections::HashSet::new();
    for row in rows {
        let Some(geometry) = shape_geometry(&row.shape, detail.simplify_px) else { continue };
        in_tile += 1;
        if let (Some(cell), Some((x, y))) = (detail.thin_px, geometry.anchor()) {
            let key = ((f64::from(x) / cell).floor() as i64, (f64::from(y) / cell).floor() as i64);
            if !taken.insert(key) {
                continue;
            }
        }
        let (ty, commands) = geometry.encode();
        let mut tags = Vec::with_capacity(row.props.len() * 2);
        for (column, value) in &row.props {
            let k = *key_index.entry(*column).or_insert_with(|| {
                keys.push(layout.columns[*column].key.clone());
                keys.len() as u32 - 1
            });
            tags.push(k);
            tags.push(values.index_of(value));
        }
        features.push(Feature { id: u64::try_from(row.fid).ok(), tags, r#type: Some(ty as i32), geometry: commands });
    }
    let omitted = in_tile - features.len() as u64;
    if features.is_empty() {
        return EncodedTile { bytes: Vec::new(), omitted };
    }
    let layer =
        Layer { version: 2, name: name.to_string(), features, keys, values: values.values, extent: Some(EXTENT) };
    EncodedTile { bytes: Tile { layers: vec![layer] }.encode_to_vec(), omitted }
}

/// The tile `tile` of `dataset` (empty when no feature is in it); `None` when there is no
/// such dataset.
pub(crate) fn tile(
    path: &Path,
    readers: &Arc<Readers>,
    dataset: &DatasetName,
    tile: TileId,
) -> Result<Option<EncodedTile>, StoreError> {
    const CONTEXT: &str = "reading features for a vector tile";
    let reader = readers.take(path)?;
    let snapshot = reader.conn()?.unchecked_transaction().ctx(CONTEXT)?;
    let Some(layout) = read_layout(&snapshot, dataset.as_str())? else { return Ok(None) };
    let [west, south, east, north] = tile.bounds_lonlat(f64::from(BUFFER));
    let (properties, property_columns) = PropertyColumns::new(&layout, 2);
    let columns = format!("fid, geom{properties}");
    let sql = format!(
        "SELECT {columns} FROM {} WHERE fid IN (SELECT id FROM {} WHERE minx <= ?1 AND maxx >= ?2 AND miny <= ?3 \
         AND maxy >= ?4) ORDER BY fid",
        quote(&layout.table),
        quote(&rtree_name(&layout.table))
    );
    let projection = Projection::new(tile);
    let corrupt = |fid: i64, what: &str| StoreError::Incompatible {
        location: path.display().to_string(),
        reason: format!("feature {fid} of table {:?} {what}", layout.table),
    };
    let mut stmt = snapshot.prepare(&sql).ctx(CONTEXT)?;
    let mut found = stmt.query(rusqlite::params![east, west, north, south]).ctx(CONTEXT)?;
    let mut rows = Vec::new();
    while let Some(r) = found.next().ctx(CONTEXT)? {
        let fid: i64 = r.get(0).ctx(CONTEXT)?;
        let ValueRef::Blob(blob) = r.get_ref(1).ctx(CONTEXT)? else { continue };
        let header = parse_header(blob).ok_or_else(|| corrupt(fid, "has a geometry without a GeoPackage header"))?;
        if header.empty {
            continue;
        }
        let shape = read_shape(header.wkb, projection)
            .map_err(|e| corrupt(fid, &format!("has a geometry that is not well-formed WKB ({e})")))?;
        let mut props = Vec::new();
        property_columns.each(r, |i, value| {
            let p = match value {
                PropertyValue::Stored(v) => prop(layout.columns[i].ty, v),
                PropertyValue::Member(json) => json.and_then(member_prop),
            };
            props.extend(p.map(|p| (i, p)));
            Ok(())
        })?;
        rows.push(Row { fid, shape, props });
    }
    let mut encoded = EncodedTile::default();
    for (i, detail) in DETAILS.iter().enumerate() {
        encoded = encode(dataset.as_str(), &layout, &rows, *detail);
        let bytes = encoded.bytes.len();
        if bytes <= TILE_BUDGET_BYTES {
            break;
        }
        if i + 1 == DETAILS.len() {
            tracing::warn!(dataset = dataset.as_str(), %tile, bytes, "tile over budget at the coarsest detail");
        }
    }
    Ok(Some(encoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wkb_is_flattened_into_pixels() {
        let mut wkb = vec![1];
        let n = |w: &mut Vec<u8>, v: u32| w.extend_from_slice(&v.to_le_bytes());
        let f = |w: &mut Vec<u8>, vs: &[f64]| vs.iter().for_each(|v| w.extend_from_slice(&v.to_le_bytes()));
        n(&mut wkb, 7);
        n(&mut wkb, 3);
        // A point, a line string with a NaN position, a polygon of one ring (M read past).
        wkb.push(1);
        n(&mut wkb, 1);
        f(&mut wkb, &[0.0, 0.0]);
        wkb.push(1);
        n(&mut wkb, 2);
        n(&mut wkb, 3);
        f(&mut wkb, &[0.0, 0.0, f64::NAN, 1.0, 1.0, 1.0]);
        wkb.push(1);
        n(&mut wkb, 2003);
        n(&mut wkb, 1);
        n(&mut wkb, 3);
        f(&mut wkb, &[0.0, 0.0, 9.0, 1.0, 0.0, 9.0, 0.0, 1.0, 9.0]);
        let projection = Projection::new(TileId::new(TileMatrixSet::WebMercatorQuad, 0, 0, 0).unwrap());
        let shape = read_shape(&wkb, projection).unwrap();
        assert_eq!(shape.points, vec![projection.pixel(0.0, 0.0)]);
        assert_eq!(shape.lines, vec![vec![projection.pixel(0.0, 0.0), projection.pixel(1.0, 1.0)]]);
        assert_eq!(shape.polygons.len(), 1);
        assert_eq!(shape.polygons[0][0].len(), 3);
        for cut in 0..wkb.len() {
            assert!(read_shape(&wkb[..cut], projection).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn lines_are_cut_to_the_buffered_tile() {
        let s = Square { lo: 0.0, hi: 10.0 };
        assert_eq!(s.clip_line(&[(-5.0, 5.0), (15.0, 5.0)]), vec![vec![(0.0, 5.0), (10.0, 5.0)]]);
        assert_eq!(
            s.clip_line(&[(1.0, 1.0), (20.0, 1.0), (20.0, 2.0), (2.0, 2.0)]),
            vec![vec![(1.0, 1.0), (10.0, 1.0)], vec![(10.0, 2.0), (2.0, 2.0)]]
        );
        assert!(s.clip_line(&[(11.0, 1.0), (20.0, 1.0)]).is_empty());
    }

    #[test]
    fn rings_are_cut_and_oriented() {
        let s = Square { lo: 0.0, hi: 10.0 };
        let ring = s.clip_ring(&[(-5.0, -5.0), (15.0, -5.0), (15.0, 15.0), (-5.0, 15.0), (-5.0, -5.0)]);
        assert_eq!(ring.len(), 4);
        assert_eq!(area2(&ring).abs(), 200.0);
        // Counter-clockwise on screen in, clockwise out.
        let shape = Shape {
            polygons: vec![vec![vec![(1.0, 1.0), (1.0, 9.0), (9.0, 9.0), (9.0, 1.0), (1.0, 1.0)]]],
            ..Shape::default()
        };
        let Some(TileGeometry::Polygons(rings)) = shape_geometry(&shape, 1.0) else { panic!() };
        assert!(area2_i(&rings[0]) > 0, "{rings:?}");
    }

    #[test]
    fn tiny_features_keep_a_pixel() {
        let shape =
            Shape { polygons: vec![vec![vec![(5.1, 5.1), (5.2, 5.1), (5.2, 5.2), (5.1, 5.1)]]], ..Shape::default() };
        let Some(TileGeometry::Polygons(rings)) = shape_geometry(&shape, 1.0) else { panic!() };
        assert_eq!(rings, vec![vec![(5, 5), (6, 5), (6, 6), (5, 6)]]);
        let line = Shape { lines: vec![vec![(7.1, 7.1), (7.2, 7.2)]], ..Shape::default() };
        assert_eq!(shape_geometry(&line, 1.0), Some(TileGeometry::Lines(vec![vec![(7, 7), (9, 7)]])));
        let outside =
            Shape { points: vec![(-100.0, 5.0)], lines: vec![vec![(-100.0, 0.0), (-90.0, 0.0)]], ..Shape::default() };
        assert_eq!(shape_geometry(&outside, 1.0), None);
    }

    #[test]
    fn commands_follow_the_spec() {
        // The examples of the MVT 2.1 spec, section 4.3.5.
        assert_eq!(TileGeometry::Points(vec![(25, 17)]).encode().1, vec![9, 50, 34]);
        assert_eq!(
            TileGeometry::Lines(vec![vec![(2, 2), (2, 10), (10, 10)]]).encode().1,
            vec![9, 4, 4, 18, 0, 16, 16, 0]
        );
        assert_eq!(
            TileGeometry::Polygons(vec![vec![(3, 6), (8, 12), (20, 34)]]).encode().1,
            vec![9, 6, 12, 18, 10, 12, 24, 44, 15]
        );
    }

    #[test]
    fn simplification_keeps_the_ends() {
        let line: Vec<Pt> = (0..100).map(|i| (f64::from(i), if i % 2 == 0 { 0.0 } else { 0.1 })).collect();
        assert_eq!(simplify(&line, 1.0), vec![(0.0, 0.0), (99.0, 0.1)]);
        assert_eq!(simplify(&line, 0.0).len(), 100);
    }
}
