//! Well-known text (OGC Simple Features WKT, as GDAL, PostGIS and QGIS write it) to [`Geom`].
//!
//! Reads POINT, LINESTRING, POLYGON, their MULTI kinds and GEOMETRYCOLLECTION, with Z, M or
//! ZM (`POINT Z (…)`, `POINTZ (…)`, or undeclared and told by the count of numbers), `EMPTY`,
//! and the EWKT `SRID=n;` prefix. M values are dropped (the model has none); Z is kept.
//! Collections nest no deeper than GeoJSON's limit, so no text can exhaust the stack, and the
//! parser works on bytes without building tokens, in one pass.

use geoflow_core::feature::MAX_COLLECTION_DEPTH;
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::row::GeometryKind;

/// A parsed WKT: the EWKT SRID, if given, and the geometry (`None` for `POINT EMPTY` and
/// empty collections of nothing, which the model cannot hold as a geometry).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wkt {
    pub srid: Option<u32>,
    pub geometry: Option<Geom>,
}

/// Parses one WKT (or EWKT) text; the error says what was expected where.
pub(crate) fn parse(text: &str) -> Result<Wkt, String> {
    let mut parser = Parser { s: text.as_bytes(), i: 0 };
    let srid = parser.srid()?;
    let geometry = parser.tagged(0)?;
    parser.skip_ws();
    if parser.i < parser.s.len() {
        return Err(parser.expected("the end of the text"));
    }
    Ok::<Wkt, String>(Wkt { srid, geometry })
}

const KINDS: &[(&str, GeometryKind)] = &[
    // Longest first: `POINT` is a prefix of nothing else, but `MULTIPOINT` must not be read as
    // something shorter when a Z/M suffix is glued on.
    ("GEOMETRYCOLLECTION", GeometryKind::GeometryCollection),
    ("MULTILINESTRING", GeometryKind::MultiLineString),
    ("MULTIPOLYGON", GeometryKind::MultiPolygon),
    ("MULTIPOINT", GeometryKind::MultiPoint),
    ("LINESTRING", GeometryKind::LineString),
    ("POLYGON", GeometryKind::Polygon),
    ("POINT", GeometryKind::Point),
];

/// Which numbers a position holds, as declared (`None`: told by each position's count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dims {
    Xy,
    Xyz,
    Xym,
    Xyzm,
}

impl Dims {
    fn from_suffix(suffix: &str) -> Option<Option<Dims>> {
        match suffix {
            "" => Some(None),
            "Z" => Some(Some(Dims::Xyz)),
            "M" => Some(Some(Dims::Xym)),
            "ZM" => Some(Some(Dims::Xyzm)),
            _ => None,
        }
    }

    fn count(self) -> usize {
        match self {
            Dims::Xy => 2,
            Dims::Xyz | Dims::Xym => 3,
            Dims::Xyzm => 4,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expected(&self, what: &str) -> String {
        match self.s.get(self.i) {
            None => format!("expected {what} at the end of the text"),
            Some(_) => {
                let rest = String::from_utf8_lossy(&self.s[self.i..(self.i + 12).min(self.s.len())]).into_owned();
                format!("expected {what} at character {}, found {rest:?}", self.i + 1)
            }
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        match self.eat(byte) {
            true => Ok(()),
            false => Err(self.expected(&format!("'{}'", byte as char))),
        }
    }

    /// An ASCII word (letters only), upper-cased; empty when none is here.
    fn word(&mut self) -> String {
        self.skip_ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_alphabetic) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_uppercase()
    }

    /// The EWKT `SRID=n;` prefix.
    fn srid(&mut self) -> Result<Option<u32>, String> {
        let start = self.i;
        if self.word() != "SRID" {
            self.i = start;
            return Ok(None);
        }
        self.expect(b'=')?;
        self.skip_ws();
        let digits = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        let srid = std::str::from_utf8(&self.s[digits..self.i])
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| self.expected("an SRID number"))?;
        self.expect(b';')?;
        Ok(Some(srid))
    }

    /// A geometry with its type name: `POINT Z (1 2 3)`, `LINESTRING EMPTY`, ….
    fn tagged(&mut self, depth: usize) -> Result<Option<Geom>, String> {
        let at = self.i;
        let word = self.word();
        let (kind, mut dims) = KINDS
            .iter()
            .find_map(|(name, kind)| {
                let suffix = word.strip_prefix(name)?;
                Dims::from_suffix(suffix).map(|dims| (*kind, dims))
            })
            .ok_or_else(|| {
                self.i = at;
                self.expected("a geometry type (POINT, LINESTRING, POLYGON, MULTI…, GEOMETRYCOLLECTION)")
            })?;
        let after_type = self.i;
        match self.word().as_str() {
            "" => {}
            "EMPTY" => return Ok(empty(kind)),
            word => match Dims::from_suffix(word) {
                Some(declared @ Some(_)) if dims.is_none() => dims = declared,
                _ => {
                    self.i = after_type;
                    return Err(self.expected("Z, M, ZM, EMPTY or '('"));
                }
            },
        }
        let after_dims = self.i;
        if self.word() == "EMPTY" {
            return Ok(empty(kind));
        }
        self.i = after_dims;
        let geom = match kind {
            GeometryKind::Point => Geom::Point(self.bracketed(|p| p.position(dims))?),
            GeometryKind::LineString => Geom::LineString(self.positions(dims)?),
            GeometryKind::Polygon => Geom::Polygon(self.list(|p| p.positions(dims))?),
            GeometryKind::MultiPoint => Geom::MultiPoint(self.multi_point(dims)?),
            GeometryKind::MultiLineString => Geom::MultiLineString(self.list(|p| p.positions(dims))?),
            GeometryKind::MultiPolygon => Geom::MultiPolygon(self.list(|p| p.list(|p| p.positions(dims)))?),
            GeometryKind::GeometryCollection => {
                if depth >= MAX_COLLECTION_DEPTH {
                    return Err(format!("GEOMETRYCOLLECTIONs nest deeper than {MAX_COLLECTION_DEPTH} levels"));
                }
                let members = self.list(|p| p.tagged(depth + 1))?;
                Geom::GeometryCollection(members.into_iter().flatten().collect())
            }
        };
        Ok(Some(geom))
    }

    fn bracketed<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.expect(b'(')?;
        let value = item(self)?;
        self.expect(b')')?;
        Ok(value)
    }

    /// `(item, item, …)`, at least one item.
    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            items.push(item(self)?);
            if !self.eat(b',') {
                break;
            }
        }
        self.expect(b')')?;
        Ok(items)
    }

    /// `(x y, x y, …)`, or `EMPTY` for a member of a multi geometry.
    fn positions(&mut self, dims: Option<Dims>) -> Result<Vec<Pos>, String> {
        let at = self.i;
        if self.word() == "EMPTY" {
            return Ok(Vec::new());
        }
        self.i = at;
        self.list(|p| p.position(dims))
    }

    /// `MULTIPOINT ((1 2), (3 4))` or the older `MULTIPOINT (1 2, 3 4)`; empty members are left out.
    fn multi_point(&mut self, dims: Option<Dims>) -> Result<Vec<Pos>, String> {
        let points = self.list(|p| match p.peek() {
            Some(b'(') => p.bracketed(|p| p.position(dims)).map(Some),
            _ => {
                let at = p.i;
                if p.word() == "EMPTY" {
                    return Ok(None);
                }
                p.i = at;
                p.position(dims).map(Some)
            }
        })?;
        Ok(points.into_iter().flatten().collect())
    }

    /// `x y [z [m]]`: M is dropped, Z kept.
    fn position(&mut self, dims: Option<Dims>) -> Result<Pos, String> {
        let mut numbers = [0.0; 4];
        let mut count = 0;
        while count < 4 {
            match self.peek() {
                Some(b'0'..=b'9' | b'-' | b'+' | b'.') => {
                    numbers[count] = self.number()?;
                    count += 1;
                }
                _ => break,
            }
        }
        let dims = match (dims, count) {
            (Some(d), n) if d.count() == n => d,
            (None, 2) => Dims::Xy,
            (None, 3) => Dims::Xyz,
            (None, 4) => Dims::Xyzm,
            (Some(d), n) if n >= 2 => {
                return Err(format!("a position has {n} numbers where its type declares {}", d.count()));
            }
            _ => return Err(self.expected("a position of 2 to 4 numbers")),
        };
        let z = match dims {
            Dims::Xyz | Dims::Xyzm => numbers[2],
            Dims::Xy | Dims::Xym => f64::NAN,
        };
        Ok(Pos { x: numbers[0], y: numbers[1], z })
    }

    fn number(&mut self) -> Result<f64, String> {
        self.skip_ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')) {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            Ok(_) => Err(format!("the number {text} is out of range")),
            Err(_) => {
                self.i = start;
                Err(self.expected("a number"))
            }
        }
    }
}

/// The geometry of `kind` with nothing in it.
fn empty(kind: GeometryKind) -> Option<Geom> {
    match kind {
        GeometryKind::Point => None,
        GeometryKind::LineString => Some(Geom::LineString(Vec::new())),
        GeometryKind::Polygon => Some(Geom::Polygon(Vec::new())),
        GeometryKind::MultiPoint => Some(Geom::MultiPoint(Vec::new())),
        GeometryKind::MultiLineString => Some(Geom::MultiLineString(Vec::new())),
        GeometryKind::MultiPolygon => Some(Geom::MultiPolygon(Vec::new())),
        GeometryKind::GeometryCollection => Some(Geom::GeometryCollection(Vec::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(text: &str) -> Geom {
        match parse(text) {
            Ok(Wkt { geometry: Some(g), .. }) => g,
            other => panic!("{text}: {other:?}"),
        }
    }

    /// Equality that takes an absent Z (NaN) as equal to itself.
    macro_rules! same {
        ($a:expr, $b:expr) => {
            assert_eq!(format!("{:?}", $a), format!("{:?}", $b))
        };
    }

    fn xyz(x: f64, y: f64, z: f64) -> Pos {
        Pos { x, y, z }
    }

    #[test]
    fn every_kind_and_dimension() {
        same!(geom("POINT (1 2)"), Geom::Point(Pos::xy(1.0, 2.0)));
        same!(geom(" point(1.5 -2e1) "), Geom::Point(Pos::xy(1.5, -20.0)));
        same!(geom("POINT Z (1 2 3)"), Geom::Point(xyz(1.0, 2.0, 3.0)));
        same!(geom("POINTZ(1 2 3)"), Geom::Point(xyz(1.0, 2.0, 3.0)));
        same!(geom("POINT (1 2 3)"), Geom::Point(xyz(1.0, 2.0, 3.0)));
        same!(geom("POINT M (1 2 9)"), Geom::Point(Pos::xy(1.0, 2.0)));
        same!(geom("POINT ZM (1 2 3 9)"), Geom::Point(xyz(1.0, 2.0, 3.0)));
        same!(geom("POINT (1 2 3 9)"), Geom::Point(xyz(1.0, 2.0, 3.0)));
        same!(geom("LINESTRING (0 0, 1 1)"), Geom::LineString(vec![Pos::xy(0.0, 0.0), Pos::xy(1.0, 1.0)]));
        let ring = vec![Pos::xy(0.0, 0.0), Pos::xy(1.0, 0.0), Pos::xy(1.0, 1.0), Pos::xy(0.0, 0.0)];
        same!(geom("POLYGON ((0 0,1 0,1 1,0 0))"), Geom::Polygon(vec![ring.clone()]));
        same!(
            geom("MULTIPOLYGON (((0 0,1 0,1 1,0 0)),((0 0,1 0,1 1,0 0),(0 0,1 0,1 1,0 0)))"),
            Geom::MultiPolygon(vec![vec![ring.clone()], vec![ring.clone(), ring.clone()]])
        );
        same!(geom("MULTIPOINT ((1 2), (3 4))"), geom("MULTIPOINT (1 2, 3 4)"));
        same!(geom("MULTIPOINT (1 2, EMPTY)"), Geom::MultiPoint(vec![Pos::xy(1.0, 2.0)]));
        same!(
            geom("MULTILINESTRING Z ((0 0 1, 1 1 2), EMPTY)"),
            Geom::MultiLineString(vec![vec![xyz(0.0, 0.0, 1.0), xyz(1.0, 1.0, 2.0)], vec![]])
        );
        same!(
            geom("GEOMETRYCOLLECTION (POINT (1 2), POINT EMPTY, LINESTRING EMPTY)"),
            Geom::GeometryCollection(vec![Geom::Point(Pos::xy(1.0, 2.0)), Geom::LineString(vec![])])
        );
        same!(geom("POLYGON EMPTY"), Geom::Polygon(vec![]));
        same!(geom("GEOMETRYCOLLECTION Z EMPTY"), Geom::GeometryCollection(vec![]));
        same!(parse("POINT EMPTY"), Ok::<Wkt, String>(Wkt { srid: None, geometry: None }));
    }

    #[test]
    fn ewkt_srid() {
        same!(
            parse("SRID=3857;POINT(1 2)"),
            Ok::<Wkt, String>(Wkt { srid: Some(3857), geometry: Some(Geom::Point(Pos::xy(1.0, 2.0))) })
        );
        assert!(parse("SRID=x;POINT(1 2)").is_err());
    }

    #[test]
    fn broken_text_says_what_was_expected() {
        let cases = [
            ("", "a geometry type"),
            ("POINT", "'('"),
            ("POINT (1)", "2 to 4 numbers"),
            ("POINT (1 2", "')' at the end"),
            ("POINT (1 2) x", "the end of the text"),
            ("POINT Z (1 2)", "declares 3"),
            ("POINT (1 1e999)", "out of range"),
            ("POINT (1 --2)", "a number"),
            ("CIRCLE (1 2)", "a geometry type"),
            ("POINT Q (1 2)", "Z, M, ZM"),
            ("POLYGON ((0 0, 1 1)", "')'"),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Err(why) => assert!(why.contains(expected), "{text}: {why}"),
                Ok(w) => panic!("{text}: {w:?}"),
            }
        }
    }

    #[test]
    fn deep_collections_are_refused_without_recursing_far() {
        let deep = "GEOMETRYCOLLECTION(".repeat(100_000);
        assert!(parse(&deep).unwrap_err().contains("nest deeper"));
    }
}
