//! WKB: [`encode`] writes ISO WKB (little-endian; Z types are the 2D code + 1000), and
//! [`walk`] reads any WKB geometry back, whoever wrote it.
//!
//! The reader takes ISO type codes (XY, Z = +1000, M = +2000, ZM = +3000) and the EWKB flag
//! bits (Z, M, SRID), in either byte order. Stored geometries are untrusted input: every read
//! is bounds-checked, every count is checked against the bytes left before it is used (so a
//! consumer that sizes a buffer by a count never allocates more than the input could fill),
//! nesting stops at [`MAX_DEPTH`], and nothing panics. Consumers are [`Visitor`]s, called for
//! each geometry, ring and position in document order; the recursion and the limits are here
//! only.

use crate::geometry::{Geom, Pos};
use crate::row::{EncodedGeometry, GeometryKind};

/// Encodes a geometry; `has_z` follows the positions (validated to be consistent).
pub fn encode(geom: &Geom) -> EncodedGeometry {
    let has_z = geom.has_z();
    let mut wkb = Vec::with_capacity(9 + geom.vertex_count() as usize * if has_z { 24 } else { 16 });
    write(&mut wkb, geom, has_z);
    EncodedGeometry { kind: geom.kind(), has_z, bbox: geom.bbox(), wkb }
}

fn header(out: &mut Vec<u8>, geom: &Geom, has_z: bool) {
    out.push(1);
    let code = geom.kind().wkb_code() + if has_z { 1000 } else { 0 };
    out.extend_from_slice(&code.to_le_bytes());
}

fn count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn pos(out: &mut Vec<u8>, p: &Pos, has_z: bool) {
    out.extend_from_slice(&p.x.to_le_bytes());
    out.extend_from_slice(&p.y.to_le_bytes());
    if has_z {
        out.extend_from_slice(&p.z.to_le_bytes());
    }
}

fn points(out: &mut Vec<u8>, ps: &[Pos], has_z: bool) {
    count(out, ps.len());
    ps.iter().for_each(|p| pos(out, p, has_z));
}

fn rings(out: &mut Vec<u8>, rs: &[Vec<Pos>], has_z: bool) {
    count(out, rs.len());
    rs.iter().for_each(|r| points(out, r, has_z));
}

fn write(out: &mut Vec<u8>, geom: &Geom, has_z: bool) {
    header(out, geom, has_z);
    match geom {
        Geom::Point(p) => pos(out, p, has_z),
        Geom::LineString(ps) => points(out, ps, has_z),
        Geom::Polygon(rs) => rings(out, rs, has_z),
        Geom::MultiPoint(ps) => {
            count(out, ps.len());
            for p in ps {
                write(out, &Geom::Point(*p), has_z);
            }
        }
        Geom::MultiLineString(ls) => {
            count(out, ls.len());
            for l in ls {
                header(out, &Geom::LineString(Vec::new()), has_z);
                points(out, l, has_z);
            }
        }
        Geom::MultiPolygon(ps) => {
            count(out, ps.len());
            for rs in ps {
                header(out, &Geom::Polygon(Vec::new()), has_z);
                rings(out, rs, has_z);
            }
        }
        Geom::GeometryCollection(gs) => {
            count(out, gs.len());
            gs.iter().for_each(|g| write(out, g, has_z));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading.

/// The deepest a geometry may sit: the top geometry is at depth 0, each member one deeper
/// than its container. Deeper input is refused as corrupt (it would only exhaust the stack).
pub const MAX_DEPTH: u32 = 64;

const EWKB_Z: u32 = 0x8000_0000;
const EWKB_M: u32 = 0x4000_0000;
const EWKB_SRID: u32 = 0x2000_0000;
/// The type word without the EWKB flag bits.
const TYPE_MASK: u32 = 0x0FFF_FFFF;

/// Bytes of a count.
const COUNT_LEN: usize = 4;
/// The smallest member of a multi-geometry or collection: a 5-byte header and a count.
const MIN_MEMBER_LEN: usize = 9;

/// Why bytes are not a WKB geometry (or not one the consumer takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("the input ends early")]
    Truncated,
    #[error("byte order mark {0}, not 0 or 1")]
    ByteOrder(u8),
    #[error("unknown geometry type code {0}")]
    TypeCode(u32),
    #[error("count {0} needs more bytes than are left")]
    CountTooLarge(u32),
    #[error("geometries nested more than {MAX_DEPTH} deep")]
    TooDeep,
    #[error("a coordinate is not finite")]
    NonFinite,
    #[error("a {} holding a {}", parent.name(), member.name())]
    MemberKind { parent: GeometryKind, member: GeometryKind },
    /// A consumer's own rule.
    #[error("{0}")]
    Refused(&'static str),
}

/// Malformed WKB: the reason, and the byte offset of the value it concerns (a header, a
/// count, a position), from the start of the WKB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at byte {offset}")]
pub struct WkbError {
    pub offset: usize,
    pub reason: Reason,
}

/// The type and layout of one geometry, as its header gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: GeometryKind,
    pub has_z: bool,
    /// M values are read past: [`Visitor::position`] does not get them.
    pub has_m: bool,
    /// EWKB's SRID, when the SRID flag is set.
    pub srid: Option<u32>,
    pub little_endian: bool,
    /// The type word as written: ISO code and any EWKB flags.
    pub code: u32,
}

impl Header {
    /// Bytes of one position.
    pub fn position_len(&self) -> usize {
        8 * (2 + usize::from(self.has_z) + usize::from(self.has_m))
    }
}

/// Where a geometry sits in the one being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The kind of the geometry this one is a member of; `None` for the top geometry.
    pub parent: Option<GeometryKind>,
    /// Its index among the parent's members (0 for the top geometry).
    pub index: u32,
    /// 0 for the top geometry, one more per level of membership (at most [`MAX_DEPTH`]).
    pub depth: u32,
}

impl Part {
    /// The kind ISO WKB requires of this member: a `MultiPoint` holds points, and so on.
    /// `None` at the top and in a collection, where any kind goes.
    pub fn required_kind(&self) -> Option<GeometryKind> {
        match self.parent? {
            GeometryKind::MultiPoint => Some(GeometryKind::Point),
            GeometryKind::MultiLineString => Some(GeometryKind::LineString),
            GeometryKind::MultiPolygon => Some(GeometryKind::Polygon),
            _ => None,
        }
    }
}

/// A consumer of [`walk`]. Calls come in document order: `begin`, then the geometry's
/// positions (a point's one, a line string's), its rings (`begin_ring`, the positions,
/// `end_ring`) or its members (each from its own `begin` to its `end`), then `end`.
///
/// An error refuses the input: the walk stops and reports it with the offset of the value
/// at hand. A consumer keeps no depth or count checks of its own: the walker has done them
/// before each call (`len` fits the bytes left).
pub trait Visitor {
    /// A geometry begins. `len` counts its positions (1 for a point), rings or members.
    fn begin(&mut self, _header: &Header, _part: Part, _len: u32) -> Result<(), Reason> {
        Ok(())
    }

    /// A polygon's ring of `len` positions begins; `index` 0 is the exterior.
    fn begin_ring(&mut self, _index: u32, _len: u32) -> Result<(), Reason> {
        Ok(())
    }

    /// The position `index` of the point, line string or ring at hand (M left out). An
    /// empty point (`POINT EMPTY`) is written with NaN ordinates.
    fn position(&mut self, index: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason>;

    fn end_ring(&mut self) -> Result<(), Reason> {
        Ok(())
    }

    fn end(&mut self, _header: &Header, _part: Part) -> Result<(), Reason> {
        Ok(())
    }
}

/// Builds a [`Geom`] from the calls of [`walk`].
#[derive(Default)]
struct GeomBuilder {
    stack: Vec<Frame>,
    ring: Vec<Pos>,
    done: Option<Geom>,
}

enum Frame {
    Positions(GeometryKind, Vec<Pos>),
    Rings(Vec<Vec<Pos>>),
    Members(GeometryKind, Vec<Geom>),
}

impl Visitor for GeomBuilder {
    fn begin(&mut self, h: &Header, _: Part, _: u32) -> Result<(), Reason> {
        self.stack.push(match h.kind {
            GeometryKind::Point | GeometryKind::LineString => Frame::Positions(h.kind, Vec::new()),
            GeometryKind::Polygon => Frame::Rings(Vec::new()),
            kind => Frame::Members(kind, Vec::new()),
        });
        Ok(())
    }

    fn begin_ring(&mut self, _: u32, _: u32) -> Result<(), Reason> {
        self.ring.clear();
        Ok(())
    }

    fn position(&mut self, _: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
        let p = Pos { x, y, z: z.unwrap_or(f64::NAN) };
        match self.stack.last_mut() {
            Some(Frame::Positions(_, ps)) => ps.push(p),
            _ => self.ring.push(p),
        }
        Ok(())
    }

    fn end_ring(&mut self) -> Result<(), Reason> {
        if let Some(Frame::Rings(rings)) = self.stack.last_mut() {
            rings.push(std::mem::take(&mut self.ring));
        }
        Ok(())
    }

    fn end(&mut self, _: &Header, _: Part) -> Result<(), Reason> {
        let points = |gs: Vec<Geom>| gs.into_iter().map(|g| if let Geom::Point(p) = g { p } else { panic!() });
        let lines = |gs: Vec<Geom>| gs.into_iter().map(|g| if let Geom::LineString(l) = g { l } else { panic!() });
        let polys = |gs: Vec<Geom>| gs.into_iter().map(|g| if let Geom::Polygon(r) = g { r } else { panic!() });
        let geom = match self.stack.pop().expect("a begun geometry") {
            Frame::Positions(GeometryKind::Point, ps) => Geom::Point(ps[0]),
            Frame::Positions(_, ps) => Geom::LineString(ps),
            Frame::Rings(rings) => Geom::Polygon(rings),
            // An empty point (NaN ordinates) in a multipoint is left out.
            Frame::Members(GeometryKind::MultiPoint, gs) => {
                Geom::MultiPoint(points(gs).filter(|p| !(p.x.is_nan() && p.y.is_nan())).collect())
            }
            Frame::Members(GeometryKind::MultiLineString, gs) => Geom::MultiLineString(lines(gs).collect()),
            Frame::Members(GeometryKind::MultiPolygon, gs) => Geom::MultiPolygon(polys(gs).collect()),
            Frame::Members(_, gs) => Geom::GeometryCollection(gs),
        };
        match self.stack.last_mut() {
            Some(Frame::Members(_, gs)) => gs.push(geom),
            _ => self.done = Some(geom),
        }
        Ok(())
    }
}

/// Decodes the WKB geometry at the start of `wkb` (ISO or extended WKB, as [`walk`] reads
/// it; M values are left out). An empty point is no geometry (`None`).
pub fn decode(wkb: &[u8]) -> Result<Option<Geom>, WkbError> {
    let mut builder = GeomBuilder::default();
    walk(wkb, &mut builder)?;
    Ok(match builder.done {
        Some(Geom::Point(p)) if p.x.is_nan() && p.y.is_nan() => None,
        done => done,
    })
}

/// Reads the WKB geometry at the start of `wkb`, calling `visitor` as it goes. Returns the
/// bytes the geometry took; what follows them is not read.
pub fn walk<V: Visitor + ?Sized>(wkb: &[u8], visitor: &mut V) -> Result<usize, WkbError> {
    let mut cursor = Cursor { buf: wkb, pos: 0 };
    cursor.geometry(visitor, Part { parent: None, index: 0, depth: 0 })?;
    Ok(cursor.pos)
}

/// A bounds-checked position in the input.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], WkbError> {
        let bytes = self
            .buf
            .get(self.pos..)
            .and_then(<[u8]>::first_chunk::<N>)
            .ok_or(WkbError { offset: self.pos, reason: Reason::Truncated })?;
        self.pos += N;
        Ok(*bytes)
    }

    fn u32(&mut self, little: bool) -> Result<u32, WkbError> {
        let b = self.take::<4>()?;
        Ok(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }

    fn f64(&mut self, little: bool) -> Result<f64, WkbError> {
        let b = self.take::<8>()?;
        Ok(if little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    }

    /// A count of items of at least `item_len` bytes each, refused unless they fit what is left.
    fn count(&mut self, little: bool, item_len: usize) -> Result<u32, WkbError> {
        let offset = self.pos;
        let n = self.u32(little)?;
        match usize::try_from(n).ok().and_then(|n| n.checked_mul(item_len)) {
            Some(len) if len <= self.left() => Ok(n),
            _ => Err(WkbError { offset, reason: Reason::CountTooLarge(n) }),
        }
    }

    fn header(&mut self) -> Result<Header, WkbError> {
        let start = self.pos;
        let little_endian = match self.take::<1>()? {
            [0] => false,
            [1] => true,
            [mark] => return Err(WkbError { offset: start, reason: Reason::ByteOrder(mark) }),
        };
        let code = self.u32(little_endian)?;
        let bad_code = WkbError { offset: start + 1, reason: Reason::TypeCode(code) };
        let iso = code & TYPE_MASK;
        let (ewkb_z, ewkb_m) = (code & EWKB_Z != 0, code & EWKB_M != 0);
        let (has_z, has_m) = match iso / 1000 {
            0 => (ewkb_z, ewkb_m),
            1 => (true, ewkb_m),
            2 => (ewkb_z, true),
            3 => (true, true),
            _ => return Err(bad_code),
        };
        let kind = GeometryKind::from_wkb_code(iso % 1000).ok_or(bad_code)?;
        let srid = if code & EWKB_SRID != 0 { Some(self.u32(little_endian)?) } else { None };
        Ok(Header { kind, has_z, has_m, srid, little_endian, code })
    }

    fn position<V: Visitor + ?Sized>(&mut self, h: &Header, index: u32, visitor: &mut V) -> Result<(), WkbError> {
        let offset = self.pos;
        let little = h.little_endian;
        let (x, y) = (self.f64(little)?, self.f64(little)?);
        let z = if h.has_z { Some(self.f64(little)?) } else { None };
        if h.has_m {
            self.f64(little)?;
        }
        visitor.position(index, x, y, z).map_err(|reason| WkbError { offset, reason })
    }

    fn positions<V: Visitor + ?Sized>(&mut self, h: &Header, n: u32, visitor: &mut V) -> Result<(), WkbError> {
        (0..n).try_for_each(|i| self.position(h, i, visitor))
    }

    /// The one place that recurses, so the one place that limits the depth.
    fn geometry<V: Visitor + ?Sized>(&mut self, visitor: &mut V, part: Part) -> Result<(), WkbError> {
        let start = self.pos;
        if part.depth > MAX_DEPTH {
            return Err(WkbError { offset: start, reason: Reason::TooDeep });
        }
        let h = self.header()?;
        let at = |offset: usize| move |reason: Reason| WkbError { offset, reason };
        match h.kind {
            GeometryKind::Point => {
                visitor.begin(&h, part, 1).map_err(at(start))?;
                self.position(&h, 0, visitor)?;
            }
            GeometryKind::LineString => {
                let n = self.count(h.little_endian, h.position_len())?;
                visitor.begin(&h, part, n).map_err(at(start))?;
                self.positions(&h, n, visitor)?;
            }
            GeometryKind::Polygon => {
                let rings = self.count(h.little_endian, COUNT_LEN)?;
                visitor.begin(&h, part, rings).map_err(at(start))?;
                for ring in 0..rings {
                    let ring_start = self.pos;
                    let n = self.count(h.little_endian, h.position_len())?;
                    visitor.begin_ring(ring, n).map_err(at(ring_start))?;
                    self.positions(&h, n, visitor)?;
                    visitor.end_ring().map_err(at(self.pos))?;
                }
            }
            GeometryKind::MultiPoint
            | GeometryKind::MultiLineString
            | GeometryKind::MultiPolygon
            | GeometryKind::GeometryCollection => {
                let n = self.count(h.little_endian, MIN_MEMBER_LEN)?;
                visitor.begin(&h, part, n).map_err(at(start))?;
                for index in 0..n {
                    self.geometry(visitor, Part { parent: Some(h.kind), index, depth: part.depth + 1 })?;
                }
            }
        }
        visitor.end(&h, part).map_err(at(self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WKB written by hand, in either byte order.
    struct Writer {
        little: bool,
        bytes: Vec<u8>,
    }

    impl Writer {
        fn new(little: bool) -> Writer {
            Writer { little, bytes: Vec::new() }
        }

        fn head(mut self, code: u32) -> Writer {
            self.bytes.push(u8::from(self.little));
            self.u32(code)
        }

        fn u32(mut self, v: u32) -> Writer {
            self.bytes.extend_from_slice(&if self.little { v.to_le_bytes() } else { v.to_be_bytes() });
            self
        }

        fn f64s(mut self, vs: &[f64]) -> Writer {
            for v in vs {
                self.bytes.extend_from_slice(&if self.little { v.to_le_bytes() } else { v.to_be_bytes() });
            }
            self
        }

        fn raw(mut self, bytes: &[u8]) -> Writer {
            self.bytes.extend_from_slice(bytes);
            self
        }
    }

    /// The [`Geom`] back (Z is NaN where the WKB has none), and the bytes it took.
    fn rebuild(wkb: &[u8]) -> Result<(usize, Geom), WkbError> {
        let mut r = GeomBuilder::default();
        let len = walk(wkb, &mut r)?;
        Ok((len, r.done.expect("a geometry")))
    }

    /// Every call, as text.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl Visitor for Log {
        fn begin(&mut self, h: &Header, part: Part, len: u32) -> Result<(), Reason> {
            let Part { parent, index, depth } = part;
            let (z, m, srid) = (h.has_z, h.has_m, h.srid);
            self.0.push(format!(
                "begin {:?} z={z} m={m} srid={srid:?} len={len} in {parent:?}#{index} at {depth}",
                h.kind
            ));
            Ok(())
        }

        fn begin_ring(&mut self, index: u32, len: u32) -> Result<(), Reason> {
            self.0.push(format!("ring #{index} len={len}"));
            Ok(())
        }

        fn position(&mut self, index: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
            self.0.push(format!("#{index} {x} {y} {z:?}"));
            Ok(())
        }

        fn end_ring(&mut self) -> Result<(), Reason> {
            self.0.push("end ring".into());
            Ok(())
        }

        fn end(&mut self, h: &Header, _: Part) -> Result<(), Reason> {
            self.0.push(format!("end {:?}", h.kind));
            Ok(())
        }
    }

    fn log(wkb: &[u8]) -> Result<Vec<String>, WkbError> {
        let mut log = Log::default();
        walk(wkb, &mut log).map(|_| log.0)
    }

    /// Refuses non-finite coordinates, as a consumer that needs them finite does.
    struct Finite;

    impl Visitor for Finite {
        fn position(&mut self, _: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
            if x.is_finite() && y.is_finite() && z.is_none_or(f64::is_finite) {
                Ok(())
            } else {
                Err(Reason::NonFinite)
            }
        }
    }

    fn err(wkb: &[u8]) -> WkbError {
        walk(wkb, &mut Log::default()).expect_err("malformed")
    }

    /// `depth` collections around an empty one: the innermost sits at `depth`.
    fn nested(depth: u32) -> Vec<u8> {
        let mut w = Writer::new(true).head(7).u32(0).bytes;
        for _ in 0..depth {
            w = Writer::new(true).head(7).u32(1).raw(&w).bytes;
        }
        w
    }

    fn samples() -> Vec<Geom> {
        let p = |x: f64, y: f64| Pos::xy(x, y);
        let pz = |x: f64, y: f64, z: f64| Pos { x, y, z };
        let square = vec![p(0., 0.), p(4., 0.), p(4., 4.), p(0., 0.)];
        let hole = vec![p(1., 1.), p(2., 1.), p(1., 2.), p(1., 1.)];
        vec![
            Geom::Point(p(1.5, -2.25)),
            Geom::Point(pz(1., 2., 3.)),
            Geom::LineString(vec![pz(0., 0., 5.), pz(1., 1., 6.)]),
            Geom::LineString(vec![]),
            Geom::Polygon(vec![square.clone(), hole.clone()]),
            Geom::MultiPoint(vec![p(1., 2.), p(3., 4.)]),
            Geom::MultiLineString(vec![vec![p(0., 0.), p(1., 1.)], vec![]]),
            Geom::MultiPolygon(vec![vec![square.clone(), hole], vec![square.clone()]]),
            Geom::MultiPolygon(vec![]),
            Geom::GeometryCollection(vec![
                Geom::Point(p(-180., 90.)),
                Geom::GeometryCollection(vec![Geom::Polygon(vec![square]), Geom::GeometryCollection(vec![])]),
                Geom::MultiPoint(vec![]),
            ]),
        ]
    }

    #[test]
    fn reads_back_what_encode_writes() {
        for geom in samples() {
            let wkb = encode(&geom).wkb;
            let (len, back) = rebuild(&wkb).unwrap_or_else(|e| panic!("{geom:?}: {e}"));
            assert_eq!(len, wkb.len(), "{geom:?}");
            // NaN Z compares unequal: compare the text.
            assert_eq!(format!("{back:?}"), format!("{geom:?}"));
        }
    }

    #[test]
    fn both_byte_orders_read_alike() {
        let polygon =
            |little| Writer::new(little).head(1003).u32(1).u32(3).f64s(&[0., 0., 9., 1., 0., 8., 0., 1., 7.]).bytes;
        let (le, be) = (polygon(true), polygon(false));
        assert_ne!(le, be);
        assert_eq!(log(&le).unwrap(), log(&be).unwrap());
        let (len, geom) = rebuild(&be).unwrap();
        assert_eq!(len, be.len());
        let want = Geom::Polygon(vec![vec![
            Pos { x: 0., y: 0., z: 9. },
            Pos { x: 1., y: 0., z: 8. },
            Pos { x: 0., y: 1., z: 7. },
        ]]);
        assert_eq!(geom, want);
        // A big-endian member of a little-endian collection.
        let point = Writer::new(false).head(1).f64s(&[1., 2.]).bytes;
        let gc = Writer::new(true).head(7).u32(1).raw(&point).bytes;
        assert_eq!(
            format!("{:?}", rebuild(&gc).unwrap().1),
            format!("{:?}", Geom::GeometryCollection(vec![Geom::Point(Pos::xy(1., 2.))]))
        );
    }

    #[test]
    fn ewkb_flags_and_srid() {
        let point = Writer::new(false).head(1 | EWKB_Z | EWKB_SRID).u32(4326).f64s(&[1., 2., 3.]).bytes;
        assert_eq!(
            log(&point).unwrap(),
            ["begin Point z=true m=false srid=Some(4326) len=1 in None#0 at 0", "#0 1 2 Some(3.0)", "end Point"]
        );
        let line = Writer::new(true).head(2 | EWKB_M).u32(2).f64s(&[1., 2., 99., 3., 4., 99.]).bytes;
        assert_eq!(log(&line).unwrap()[1..3], ["#0 1 2 None", "#1 3 4 None"]);
        let zm = Writer::new(true).head(1 | EWKB_Z | EWKB_M | EWKB_SRID).u32(3857).f64s(&[1., 2., 3., 4.]).bytes;
        assert_eq!(walk(&zm, &mut Log::default()), Ok(zm.len()));
        assert_eq!(log(&zm).unwrap()[1], "#0 1 2 Some(3.0)");
        // The SRID of a member is read past too.
        let gc = Writer::new(true).head(7 | EWKB_SRID).u32(4326).u32(1).raw(&point).bytes;
        assert_eq!(rebuild(&gc).unwrap().0, gc.len());
        // The flags and an ISO code together.
        let both = Writer::new(true).head(1001 | EWKB_Z).f64s(&[1., 2., 3.]).bytes;
        assert_eq!(log(&both).unwrap()[1], "#0 1 2 Some(3.0)");
    }

    #[test]
    fn m_is_read_past() {
        let zm = Writer::new(true).head(3002).u32(2).f64s(&[1., 2., 3., 4., 5., 6., 7., 8.]).bytes;
        assert_eq!(
            log(&zm).unwrap(),
            [
                "begin LineString z=true m=true srid=None len=2 in None#0 at 0",
                "#0 1 2 Some(3.0)",
                "#1 5 6 Some(7.0)",
                "end LineString"
            ]
        );
        let m = Writer::new(false).head(2001).f64s(&[1., 2., 3.]).bytes;
        assert_eq!(log(&m).unwrap()[1], "#0 1 2 None");
        assert_eq!(walk(&m, &mut Log::default()), Ok(29));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut inputs: Vec<Vec<u8>> = samples().iter().map(|g| encode(g).wkb).collect();
        inputs.push(Writer::new(false).head(3002 | EWKB_SRID).u32(4326).u32(2).f64s(&[1.; 8]).bytes);
        inputs.push(nested(3));
        for wkb in inputs {
            assert!(walk(&wkb, &mut Log::default()).is_ok());
            for cut in 0..wkb.len() {
                let e = err(&wkb[..cut]);
                assert!(matches!(e.reason, Reason::Truncated | Reason::CountTooLarge(_)), "{wkb:?} cut at {cut}: {e}");
                assert!(e.offset <= cut, "{wkb:?} cut at {cut}: {e}");
            }
        }
        assert_eq!(err(&[]), WkbError { offset: 0, reason: Reason::Truncated });
        assert_eq!(err(&[1, 1, 0, 0, 0, 0]), WkbError { offset: 5, reason: Reason::Truncated });
    }

    #[test]
    fn counts_must_fit_the_bytes_left() {
        let huge = Writer::new(true).head(2).u32(u32::MAX).bytes;
        assert_eq!(err(&huge), WkbError { offset: 5, reason: Reason::CountTooLarge(u32::MAX) });
        let rings = Writer::new(false).head(3).u32(u32::MAX / 2).bytes;
        assert_eq!(err(&rings), WkbError { offset: 5, reason: Reason::CountTooLarge(u32::MAX / 2) });
        let ring = Writer::new(true).head(3).u32(1).u32(1 << 28).f64s(&[0.; 4]).bytes;
        assert_eq!(err(&ring), WkbError { offset: 9, reason: Reason::CountTooLarge(1 << 28) });
        let members = Writer::new(true).head(7).u32(2).raw(&nested(0)).bytes;
        assert_eq!(err(&members), WkbError { offset: 5, reason: Reason::CountTooLarge(2) });
        // One position more than the bytes hold, and exactly as many (Z: 24 bytes each).
        let short = Writer::new(true).head(1002).u32(2).f64s(&[0.; 5]).bytes;
        assert_eq!(err(&short), WkbError { offset: 5, reason: Reason::CountTooLarge(2) });
        let exact = Writer::new(true).head(1002).u32(2).f64s(&[0.; 6]).bytes;
        assert_eq!(walk(&exact, &mut Log::default()), Ok(exact.len()));
    }

    #[test]
    fn bad_headers_are_named() {
        assert_eq!(err(&[2, 1, 0, 0, 0]), WkbError { offset: 0, reason: Reason::ByteOrder(2) });
        for code in [0, 8, 999, 1000, 4001, 1008, EWKB_SRID] {
            let wkb = Writer::new(true).head(code).f64s(&[0., 0.]).bytes;
            assert_eq!(err(&wkb), WkbError { offset: 1, reason: Reason::TypeCode(code) }, "{code}");
        }
        // In a member: the member's offset.
        let gc = Writer::new(true).head(7).u32(1).raw(&[9, 1, 0, 0, 0, 0, 0, 0, 0]).bytes;
        assert_eq!(err(&gc), WkbError { offset: 9, reason: Reason::ByteOrder(9) });
        assert_eq!(err(&gc).to_string(), "byte order mark 9, not 0 or 1 at byte 9");
    }

    #[test]
    fn nesting_stops_at_the_limit() {
        let deepest = nested(MAX_DEPTH);
        assert_eq!(walk(&deepest, &mut Log::default()), Ok(deepest.len()));
        let log = log(&deepest).unwrap();
        assert!(log[MAX_DEPTH as usize].ends_with(&format!("at {MAX_DEPTH}")), "{log:?}");
        let too_deep = nested(MAX_DEPTH + 1);
        assert_eq!(err(&too_deep), WkbError { offset: 9 * (MAX_DEPTH as usize + 1), reason: Reason::TooDeep });
        // Members of a multi-geometry are one level deeper too.
        let mut at_limit = Writer::new(true).head(4).u32(1).head(1).f64s(&[0., 0.]).bytes;
        for _ in 0..MAX_DEPTH {
            at_limit = Writer::new(true).head(7).u32(1).raw(&at_limit).bytes;
        }
        assert_eq!(err(&at_limit).reason, Reason::TooDeep);
        let very_deep: Vec<u8> = (0..100_000).flat_map(|_| [1, 7, 0, 0, 0, 1, 0, 0, 0]).collect();
        assert_eq!(err(&very_deep).reason, Reason::TooDeep);
    }

    #[test]
    fn refusals_carry_the_offset() {
        let line = Writer::new(true).head(2).u32(2).f64s(&[0., 0., f64::INFINITY, 1.]).bytes;
        assert_eq!(walk(&line, &mut Finite), Err(WkbError { offset: 25, reason: Reason::NonFinite }));
        let z = Writer::new(false).head(1001).f64s(&[0., 0., f64::NAN]).bytes;
        assert_eq!(walk(&z, &mut Finite), Err(WkbError { offset: 5, reason: Reason::NonFinite }));
        // What follows the geometry is left alone.
        let trailing = Writer::new(true).head(1).f64s(&[1., 2.]).raw(&[0xff; 3]).bytes;
        assert_eq!(walk(&trailing, &mut Finite), Ok(21));
        let kind = |parent, member| Reason::MemberKind { parent, member };
        assert_eq!(kind(GeometryKind::MultiPoint, GeometryKind::Polygon).to_string(), "a MultiPoint holding a Polygon");
    }

    #[test]
    fn point_and_polygon_bytes() {
        let e = encode(&Geom::Point(Pos::xy(1.0, 2.0)));
        let mut want = vec![1u8, 1, 0, 0, 0];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&2.0f64.to_le_bytes());
        assert_eq!(e.wkb, want);
        let z = encode(&Geom::LineString(vec![Pos { x: 0., y: 0., z: 5. }, Pos { x: 1., y: 1., z: 6. }]));
        assert!(z.has_z);
        assert_eq!(&z.wkb[1..5], &1002u32.to_le_bytes());
        assert_eq!(z.wkb.len(), 9 + 2 * 24);
        let empty = encode(&Geom::MultiPolygon(vec![]));
        assert_eq!(empty.bbox, None);
        assert_eq!(empty.wkb, vec![1, 6, 0, 0, 0, 0, 0, 0, 0]);
    }
}
