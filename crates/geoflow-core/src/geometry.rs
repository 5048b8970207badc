//! The geometry model (positions keep their Z), the coordinates parser and RFC 7946 checks.

use crate::crs::CrsTransform;
use crate::report::{Problem, ProblemCode};
use crate::row::{Bbox, GeometryKind};

/// A position: longitude, latitude and an optional height (`z` is NaN when absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pos {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

impl Pos {
    pub fn xy(x: f64, y: f64) -> Pos {
        Pos { x, y, z: f64::NAN }
    }

    pub fn has_z(&self) -> bool {
        !self.z.is_nan()
    }

    pub fn same(&self, other: &Pos) -> bool {
        self.x == other.x && self.y == other.y && (self.z == other.z || (self.z.is_nan() && other.z.is_nan()))
    }
}

pub type Ring = Vec<Pos>;

/// A GeoJSON geometry. Empty coordinate arrays give empty geometries.
#[derive(Debug, Clone, PartialEq)]
pub enum Geom {
    Point(Pos),
    MultiPoint(Vec<Pos>),
    LineString(Vec<Pos>),
    MultiLineString(Vec<Vec<Pos>>),
    Polygon(Vec<Ring>),
    MultiPolygon(Vec<Vec<Ring>>),
    GeometryCollection(Vec<Geom>),
}

impl Geom {
    pub fn kind(&self) -> GeometryKind {
        match self {
            Geom::Point(_) => GeometryKind::Point,
            Geom::MultiPoint(_) => GeometryKind::MultiPoint,
            Geom::LineString(_) => GeometryKind::LineString,
            Geom::MultiLineString(_) => GeometryKind::MultiLineString,
            Geom::Polygon(_) => GeometryKind::Polygon,
            Geom::MultiPolygon(_) => GeometryKind::MultiPolygon,
            Geom::GeometryCollection(_) => GeometryKind::GeometryCollection,
        }
    }

    /// Calls `f` on every position, in WKB order.
    pub fn for_each_pos(&self, f: &mut impl FnMut(&Pos)) {
        match self {
            Geom::Point(p) => f(p),
            Geom::MultiPoint(ps) | Geom::LineString(ps) => ps.iter().for_each(f),
            Geom::MultiLineString(ls) | Geom::Polygon(ls) => ls.iter().flatten().for_each(f),
            Geom::MultiPolygon(ps) => ps.iter().flatten().flatten().for_each(f),
            Geom::GeometryCollection(gs) => gs.iter().for_each(|g| g.for_each_pos(f)),
        }
    }

    /// Calls `f` on every position, in WKB order, to change it.
    pub fn for_each_pos_mut(&mut self, f: &mut impl FnMut(&mut Pos)) {
        match self {
            Geom::Point(p) => f(p),
            Geom::MultiPoint(ps) | Geom::LineString(ps) => ps.iter_mut().for_each(f),
            Geom::MultiLineString(ls) | Geom::Polygon(ls) => ls.iter_mut().flatten().for_each(f),
            Geom::MultiPolygon(ps) => ps.iter_mut().flatten().flatten().for_each(f),
            Geom::GeometryCollection(gs) => gs.iter_mut().for_each(|g| g.for_each_pos_mut(f)),
        }
    }

    /// Calls `f` on each run of positions stored together (a point, a line, a ring), in WKB
    /// order, to change them.
    pub fn for_each_slice_mut(&mut self, f: &mut impl FnMut(&mut [Pos])) {
        match self {
            Geom::Point(p) => f(std::slice::from_mut(p)),
            Geom::MultiPoint(ps) | Geom::LineString(ps) => f(ps),
            Geom::MultiLineString(ls) | Geom::Polygon(ls) => ls.iter_mut().for_each(|l| f(l)),
            Geom::MultiPolygon(ps) => ps.iter_mut().flatten().for_each(|l| f(l)),
            Geom::GeometryCollection(gs) => gs.iter_mut().for_each(|g| g.for_each_slice_mut(f)),
        }
    }

    /// Makes every position 2D.
    pub fn drop_z(&mut self) {
        self.for_each_pos_mut(&mut |p| p.z = f64::NAN);
    }

    pub fn vertex_count(&self) -> u32 {
        let mut n = 0u32;
        self.for_each_pos(&mut |_| n = n.saturating_add(1));
        n
    }

    pub fn bbox(&self) -> Option<Bbox> {
        let mut bbox: Option<Bbox> = None;
        self.for_each_pos(&mut |p| match &mut bbox {
            Some(b) => b.expand(p.x, p.y),
            None => bbox = Some(Bbox::of_point(p.x, p.y)),
        });
        bbox
    }

    pub fn has_z(&self) -> bool {
        let mut z = false;
        self.for_each_pos(&mut |p| z |= p.has_z());
        z
    }
}

/// Parses and checks the `coordinates` of a geometry of type `kind` (not a collection).
///
/// `raw` is the text of the `coordinates` member; its JSON syntax is checked here, as it is
/// read (the member was cut out by its brackets only). Problems are appended to
/// `problems` with `path` (e.g. `geometry.coordinates`) in their messages; a geometry is
/// returned whenever the nesting fits the type, even if some checks failed, so that `repair`
/// has something to work on.
pub fn parse_coordinates(
    raw: &[u8],
    kind: GeometryKind,
    path: &str,
    transform: &CrsTransform,
    problems: &mut Vec<Problem>,
) -> Option<Geom> {
    let p = &mut CoordParser {
        s: raw,
        i: 0,
        path,
        stack: Vec::with_capacity(4),
        problems,
        reported: Vec::new(),
        failed: false,
    };
    let geom = match kind {
        GeometryKind::Point => {
            p.skip_ws();
            let pos = p.position();
            pos.map(Geom::Point)
        }
        GeometryKind::MultiPoint => p.positions().map(Geom::MultiPoint),
        GeometryKind::LineString => p.positions().map(Geom::LineString),
        GeometryKind::MultiLineString => p.list(|p| p.positions()).map(Geom::MultiLineString),
        GeometryKind::Polygon => p.list(|p| p.positions()).map(Geom::Polygon),
        GeometryKind::MultiPolygon => p.list(|p| p.list(|p| p.positions())).map(Geom::MultiPolygon),
        GeometryKind::GeometryCollection => unreachable!("collections have no coordinates"),
    };
    p.skip_ws();
    if p.i < p.s.len() {
        p.syntax("unexpected text after the coordinates");
    }
    if p.failed {
        return None;
    }
    let mut geom = geom?;
    check_structure(&geom, path, problems);
    if let Err(problem) = transform.apply_to(&mut geom) {
        problems.push(problem);
        return None;
    }
    check_dimensions_and_range(&geom, path, problems);
    Some(geom)
}

/// Cap on problems reported per check, so one huge broken geometry gives a readable report.
const MAX_PROBLEMS_PER_CHECK: usize = 5;

struct CoordParser<'a, 'p> {
    s: &'a [u8],
    i: usize,
    path: &'a str,
    stack: Vec<usize>,
    problems: &'p mut Vec<Problem>,
    /// Problems seen per code (reports beyond the cap are counted, not kept).
    reported: Vec<(ProblemCode, usize)>,
    /// Set when the nesting does not fit the type: no geometry is built.
    failed: bool,
}

impl CoordParser<'_, '_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn here(&self) -> String {
        let mut s = format!("{}.coordinates", self.path);
        for i in &self.stack {
            s.push_str(&format!("[{i}]"));
        }
        s
    }

    fn report(&mut self, code: ProblemCode, message: String) {
        let seen = match self.reported.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => n,
            None => {
                self.reported.push((code, 0));
                &mut self.reported.last_mut().expect("just pushed").1
            }
        };
        *seen += 1;
        if *seen <= MAX_PROBLEMS_PER_CHECK {
            self.problems.push(Problem::new(code, message));
        }
    }

    /// Skips one JSON value (valid JSON is guaranteed).
    fn skip_value(&mut self) {
        self.skip_ws();
        let mut depth = 0usize;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'"' => {
                    self.i += 1;
                    while let Some(&c) = self.s.get(self.i) {
                        self.i += 1;
                        match c {
                            b'\\' => self.i += 1,
                            b'"' => break,
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        return;
                    }
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return;
                    }
                }
                b',' if depth == 0 => return,
                _ => {}
            }
            self.i += 1;
        }
    }

    fn kind_here(&self) -> &'static str {
        match self.s.get(self.i) {
            Some(b'[') => "an array",
            Some(b'{') => "an object",
            Some(b'"') => "a string",
            Some(b't') | Some(b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        }
    }

    /// A JSON syntax error: reported, and the rest of the text is given up (nothing after it
    /// can be read reliably).
    fn syntax(&mut self, what: &str) {
        let message = format!("malformed JSON in {}: {what} at byte {}", self.here(), self.i);
        self.report(ProblemCode::JsonSyntax, message);
        self.failed = true;
        self.i = self.s.len();
    }

    /// Moves to the next element of the current array (`first`: just after its `[`); `false`
    /// at its end. Elements are separated by exactly one comma.
    fn next_element(&mut self, first: bool) -> bool {
        self.skip_ws();
        match self.s.get(self.i) {
            Some(b']') => {
                self.i += 1;
                return false;
            }
            Some(b',') if !first => {
                self.i += 1;
                self.skip_ws();
            }
            None => {
                self.syntax("unterminated array");
                return false;
            }
            Some(_) if !first => {
                self.syntax("expected ',' or ']'");
                return false;
            }
            Some(_) => {}
        }
        match self.s.get(self.i) {
            Some(b']' | b',') | None => {
                self.syntax("expected a value");
                false
            }
            Some(_) => true,
        }
    }

    /// `[ item, item, … ]` where each item is parsed by `item`.
    fn list<T>(&mut self, item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        self.list_into(&mut out, item).then_some(out)
    }

    /// `[ position, … ]`, gathered in a buffer the thread keeps, so that the list is allocated
    /// once, at its size, rather than grown.
    fn positions(&mut self) -> Option<Vec<Pos>> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<Pos>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut scratch = SCRATCH.take();
        scratch.clear();
        let out = self.list_into(&mut scratch, |p| p.position()).then(|| scratch.to_vec());
        // A huge line is not kept alive by the thread.
        if scratch.capacity() <= 1 << 16 {
            SCRATCH.set(scratch);
        }
        out
    }

    /// Appends the items of `[ item, item, … ]` to `out`; `false` when the value is not an array.
    fn list_into<T>(&mut self, out: &mut Vec<T>, mut item: impl FnMut(&mut Self) -> Option<T>) -> bool {
        self.skip_ws();
        if self.s.get(self.i) != Some(&b'[') {
            let msg = format!("{} must be an array, found {}", self.here(), self.kind_here());
            self.report(ProblemCode::InvalidCoordinates, msg);
            self.failed = true;
            self.skip_value();
            return false;
        }
        self.i += 1;
        let mut idx = 0;
        while self.next_element(idx == 0) {
            self.stack.push(idx);
            if let Some(v) = item(self) {
                out.push(v);
            }
            self.stack.pop();
            idx += 1;
        }
        true
    }

    /// `[x, y]` or `[x, y, z]`.
    fn position(&mut self) -> Option<Pos> {
        self.skip_ws();
        if self.s.get(self.i) != Some(&b'[') {
            let found = self.kind_here();
            let msg = if found == "a number" {
                format!("{}: a number was found where a position (an array of numbers) was expected: the coordinates are not nested deeply enough for this type", self.here())
            } else {
                format!("{} must be a position (an array of 2 or 3 numbers), found {found}", self.here())
            };
            self.report(ProblemCode::InvalidCoordinates, msg);
            self.failed = true;
            self.skip_value();
            return None;
        }
        self.i += 1;
        let mut nums = [0f64; 3];
        let mut n = 0usize;
        let mut bad = false;
        let mut nested = false;
        while self.next_element(n == 0) {
            match self.s[self.i] {
                b'-' | b'0'..=b'9' => {
                    let (end, v) = number(self.s, self.i);
                    self.i = end;
                    let Some(v) = v else {
                        self.syntax("invalid number");
                        return None;
                    };
                    // `+ 0.0` turns -0 into 0: the same coordinate, and one less corner case
                    // for the geometry algorithms.
                    let v = v + 0.0;
                    if !v.is_finite() {
                        let msg = format!("{}[{n}] is not a finite number", self.here());
                        self.report(ProblemCode::NonFiniteCoordinate, msg);
                        bad = true;
                    }
                    if n < 3 {
                        nums[n] = v;
                    }
                    n += 1;
                }
                _ => {
                    let found = self.kind_here();
                    let msg = if found == "an array" {
                        format!("{}[{n}]: an array was found where a number was expected: the coordinates are nested too deeply for this type", self.here())
                    } else {
                        format!("{}[{n}]: each element of a position must be a number, found {found}", self.here())
                    };
                    let code = if found == "an array" {
                        ProblemCode::InvalidCoordinates
                    } else {
                        ProblemCode::InvalidPosition
                    };
                    self.report(code, msg);
                    if found == "an array" {
                        self.failed = true;
                        nested = true;
                    }
                    bad = true;
                    self.skip_value();
                    n += 1;
                }
            }
        }
        if !nested && !(2..=3).contains(&n) {
            let msg = format!(
                "{} has {n} element{}: a position must have 2 or 3 numbers",
                self.here(),
                if n == 1 { "" } else { "s" }
            );
            self.report(ProblemCode::InvalidPosition, msg);
            bad = true;
        }
        if bad {
            self.failed = true;
            return None;
        }
        Some(Pos { x: nums[0], y: nums[1], z: if n == 3 { nums[2] } else { f64::NAN } })
    }
}

/// Powers of ten that are exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The number starting at `s[start]`: its end, and its value (`None` if the text there is
/// not a JSON number). Coordinates are mostly plain decimals with at most 15 significant digits:
/// for those, the digits as an integer divided by an exact power of ten is the correctly
/// rounded value (both operands are exact and IEEE division rounds correctly); everything
/// else goes to the standard parser.
fn number(s: &[u8], start: usize) -> (usize, Option<f64>) {
    // Digits accumulate with wrapping arithmetic: past 15 digits the standard parser decides.
    let digits = |mut i: usize, significand: &mut u64| {
        while let Some(&d @ b'0'..=b'9') = s.get(i) {
            *significand = significand.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            i += 1;
        }
        i
    };
    let negative = s.get(start) == Some(&b'-');
    let int_start = start + usize::from(negative);
    let mut significand = 0u64;
    let int_end = digits(int_start, &mut significand);
    let int_digits = int_end - int_start;
    // JSON: at least one integer digit, and no leading zero.
    let mut valid = int_digits > 0 && !(int_digits > 1 && s[int_start] == b'0');
    let mut end = int_end;
    let mut decimals = 0;
    if s.get(end) == Some(&b'.') {
        end = digits(end + 1, &mut significand);
        decimals = end - int_end - 1;
        valid &= decimals > 0;
    }
    let mut exponent = false;
    if let Some(b'e' | b'E') = s.get(end) {
        exponent = true;
        end += 1;
        if let Some(b'+' | b'-') = s.get(end) {
            end += 1;
        }
        let exp_start = end;
        end = digits(end, &mut 0);
        valid &= end > exp_start;
    }
    // Whatever else looks like part of the number makes it malformed.
    while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = s.get(end) {
        valid = false;
        end += 1;
    }
    if !valid {
        return (end, None);
    }
    if !exponent && int_digits + decimals <= 15 {
        let v = significand as f64 / EXACT_POWERS_OF_TEN[decimals];
        return (end, Some(if negative { -v } else { v }));
    }
    // SAFETY: the loops above took only ASCII bytes, which are valid UTF-8.
    let text = unsafe { std::str::from_utf8_unchecked(&s[start..end]) };
    (end, text.parse::<f64>().ok())
}

/// The checks that [`parse_coordinates`] makes, for a geometry decoded from a binary or text
/// format other than GeoJSON: finite numbers, RFC 7946 counts, then — once `transform` has
/// brought it to WGS84 — one dimension and lon/lat ranges. Problems are appended to
/// `problems` (with `path`, e.g. `geometry`); `false` when the positions could not be
/// transformed, so that nothing of it is usable.
pub fn check_geometry(geom: &mut Geom, path: &str, transform: &CrsTransform, problems: &mut Vec<Problem>) -> bool {
    if let Geom::GeometryCollection(members) = geom {
        let mut usable = true;
        for (i, member) in members.iter_mut().enumerate() {
            usable &= check_geometry(member, &format!("{path}.geometries[{i}]"), transform, problems);
        }
        return usable;
    }
    let mut non_finite = None;
    geom.for_each_pos(&mut |p| {
        if !p.x.is_finite() || !p.y.is_finite() || p.z.is_infinite() {
            non_finite.get_or_insert(*p);
        }
    });
    if let Some(p) = non_finite {
        problems.push(Problem::new(
            ProblemCode::NonFiniteCoordinate,
            format!("{path}: a position holds a number that is not finite: ({}, {})", p.x, p.y),
        ));
        return false;
    }
    check_structure(geom, path, problems);
    if let Err(problem) = transform.apply_to(geom) {
        problems.push(problem);
        return false;
    }
    check_dimensions_and_range(geom, path, problems);
    true
}

/// RFC 7946 counts: LineStrings of 2+ positions, closed rings of 4+ positions.
fn check_structure(geom: &Geom, path: &str, problems: &mut Vec<Problem>) {
    let at = |idx: &[usize]| {
        let mut s = format!("{path}.coordinates");
        for i in idx {
            s.push_str(&format!("[{i}]"));
        }
        s
    };
    let line = |ps: &[Pos], idx: &[usize], problems: &mut Vec<Problem>| {
        if ps.len() == 1 {
            problems.push(Problem::new(
                ProblemCode::TooFewPositions,
                format!("{}: a LineString needs two or more positions, found 1", at(idx)),
            ));
        }
    };
    let ring = |r: &[Pos], idx: &[usize], problems: &mut Vec<Problem>| {
        let closed = r.len() > 1 && r[0].same(&r[r.len() - 1]);
        // An unclosed ring is judged by its length once closed, so `repair` can close it.
        let len = if closed || r.is_empty() { r.len() } else { r.len() + 1 };
        if len < 4 {
            problems.push(Problem::new(
                ProblemCode::RingTooShort,
                format!("{}: a linear ring needs four or more positions, found {}", at(idx), r.len()),
            ));
        }
        if !closed && r.len() > 1 {
            problems.push(Problem::new(
                ProblemCode::UnclosedRing,
                format!("{}: the first and last positions of a linear ring must be the same", at(idx)),
            ));
        }
    };
    match geom {
        Geom::Point(_) | Geom::MultiPoint(_) | Geom::GeometryCollection(_) => {}
        Geom::LineString(ps) => line(ps, &[], problems),
        Geom::MultiLineString(ls) => ls.iter().enumerate().for_each(|(i, l)| line(l, &[i], problems)),
        Geom::Polygon(rs) => rs.iter().enumerate().for_each(|(i, r)| ring(r, &[i], problems)),
        Geom::MultiPolygon(ps) => ps
            .iter()
            .enumerate()
            .for_each(|(i, rs)| rs.iter().enumerate().for_each(|(j, r)| ring(r, &[i, j], problems))),
    }
}

/// Longitude and latitude limits, with 1e-9° (0.1 mm) of slack for the rounding noise that
/// reprojection leaves at the antimeridian and the poles (e.g. 180.00000000000014 in Natural
/// Earth). Such positions are accepted as they are.
const LON_LIMIT: f64 = 180.0 + 1e-9;
const LAT_LIMIT: f64 = 90.0 + 1e-9;

/// Consistent dimensions and WGS84 ranges (lon −180..180, lat −90..90).
fn check_dimensions_and_range(geom: &Geom, path: &str, problems: &mut Vec<Problem>) {
    let (mut with_z, mut without_z, mut out_of_range) = (0usize, 0usize, 0usize);
    let mut first_bad: Option<Pos> = None;
    geom.for_each_pos(&mut |p| {
        if p.has_z() {
            with_z += 1;
        } else {
            without_z += 1;
        }
        if !(-LON_LIMIT..=LON_LIMIT).contains(&p.x) || !(-LAT_LIMIT..=LAT_LIMIT).contains(&p.y) {
            out_of_range += 1;
            first_bad.get_or_insert(*p);
        }
    });
    if with_z > 0 && without_z > 0 {
        problems.push(Problem::new(
            ProblemCode::MixedDimensions,
            format!("{path}: {with_z} positions have a third number and {without_z} do not"),
        ));
    }
    if let Some(p) = first_bad {
        problems.push(Problem::new(
            ProblemCode::OutOfRange,
            format!(
                "{path}: {out_of_range} position{} outside WGS84 longitude −180..180 / latitude −90..90, first ({}, {})",
                if out_of_range == 1 { " is" } else { "s are" },
                p.x,
                p.y
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str, kind: GeometryKind) -> (Option<Geom>, Vec<ProblemCode>) {
        let mut problems = Vec::new();
        let g = parse_coordinates(raw.as_bytes(), kind, "geometry", &CrsTransform::Identity, &mut problems);
        (g, problems.iter().map(|p| p.code).collect())
    }

    #[test]
    fn numbers_parse_exactly_as_the_standard_parser() {
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "1",
            "-1.5",
            "180",
            "-179.999999999999",
            "0.1",
            "0.30000000000000004",
            "123456789012345",
            "1234567890123456",
            "12345678901234567890123",
            "9007199254740993",
            "1e3",
            "-2.5E-3",
            "4.35e+2",
            "0.000000000000000000000001",
            "1.7976931348623157e308",
            "5e-324",
            "24.695181",
            "-8.745019",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A deterministic spread of coordinates at every precision from 0 to 17 decimals.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for decimals in 0..=17 {
            for _ in 0..500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = (x % 360_000_000_000) as f64 / 1e9 - 180.0;
                texts.push(format!("{v:.decimals$}"));
            }
        }
        for text in &texts {
            let (end, v) = number(text.as_bytes(), 0);
            assert_eq!(end, text.len(), "{text}");
            assert_eq!(v.map(f64::to_bits), Some(text.parse::<f64>().unwrap().to_bits()), "{text}");
        }
        assert_eq!(number(b"1.5,2", 0), (3, Some(1.5)));
        assert_eq!(number(b"-]", 0), (1, None));
        assert_eq!(number(b"1.2.3]", 0), (5, None));
        for bad in ["01", "-01.5", "1.", ".5", "1e", "1e+", "1.5e3.2", "--1", "1-"] {
            assert_eq!(number(bad.as_bytes(), 0), (bad.len(), None), "{bad}");
        }
    }

    #[test]
    fn valid_coordinates() {
        let (g, p) = parse("[1.5, -2, 3]", GeometryKind::Point);
        assert!(p.is_empty());
        assert_eq!(g, Some(Geom::Point(Pos { x: 1.5, y: -2.0, z: 3.0 })));
        let (g, p) = parse("[[[0,0],[1,0],[1,1],[0,0]]]", GeometryKind::Polygon);
        assert!(p.is_empty());
        assert_eq!(g.unwrap().vertex_count(), 4);
        let (g, p) = parse("[]", GeometryKind::MultiPolygon);
        assert!(p.is_empty());
        assert_eq!(g, Some(Geom::MultiPolygon(vec![])));
    }

    #[test]
    fn problems_are_collected() {
        assert_eq!(parse("[1]", GeometryKind::Point).1, vec![ProblemCode::InvalidPosition]);
        assert_eq!(parse("[1, \"2\"]", GeometryKind::Point).1, vec![ProblemCode::InvalidPosition]);
        assert_eq!(parse("[1, 2, 3, 4]", GeometryKind::Point).1, vec![ProblemCode::InvalidPosition]);
        assert_eq!(parse("[[1,2]]", GeometryKind::Point).1, vec![ProblemCode::InvalidCoordinates]);
        assert_eq!(
            parse("[1, 2]", GeometryKind::MultiPoint).1,
            vec![ProblemCode::InvalidCoordinates, ProblemCode::InvalidCoordinates]
        );
        assert_eq!(parse("[[1,2]]", GeometryKind::LineString).1, vec![ProblemCode::TooFewPositions]);
        assert_eq!(parse("[1e999, 2]", GeometryKind::Point).1, vec![ProblemCode::NonFiniteCoordinate]);
        let (g, p) = parse("[[[0,0],[1,0],[1,1],[0,1]]]", GeometryKind::Polygon);
        assert_eq!(p, vec![ProblemCode::UnclosedRing]);
        assert!(g.is_some(), "an unclosed ring still yields a geometry to repair");
        assert_eq!(parse("[[[0,0],[1,1],[0,0]]]", GeometryKind::Polygon).1, vec![ProblemCode::RingTooShort]);
        assert_eq!(
            parse("[[[0,0],[1,1]]]", GeometryKind::Polygon).1,
            vec![ProblemCode::RingTooShort, ProblemCode::UnclosedRing]
        );
        assert_eq!(parse("[[0,0],[1,1,1]]", GeometryKind::LineString).1, vec![ProblemCode::MixedDimensions]);
        assert_eq!(parse("[181, 0]", GeometryKind::Point).1, vec![ProblemCode::OutOfRange]);
        assert_eq!(parse("[0, -90.5]", GeometryKind::Point).1, vec![ProblemCode::OutOfRange]);
        assert_eq!(parse("[180.00000000000014, 90]", GeometryKind::Point).1, vec![]);
        assert_eq!(parse("[180.000001, 0]", GeometryKind::Point).1, vec![ProblemCode::OutOfRange]);
    }

    #[test]
    fn web_mercator_is_transformed_before_range_checks() {
        let mut problems = Vec::new();
        let g = parse_coordinates(
            b"[1491681.2, 6891041.7]",
            GeometryKind::Point,
            "geometry",
            &CrsTransform::WebMercator,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let Some(Geom::Point(p)) = g else { panic!() };
        assert!((p.x - 13.4).abs() < 1e-5 && (p.y - 52.5).abs() < 1e-5);
    }
}
