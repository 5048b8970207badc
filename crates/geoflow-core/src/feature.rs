//! Parsing one feature's JSON text: RFC 7946 structure, id, properties and geometry.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::crs::{parse_crs, BuiltinCrs, CrsTransform};
use crate::geometry::{parse_coordinates, Geom};
use crate::reader::json_kind;
use crate::report::{Problem, ProblemCode};
use crate::row::GeometryKind;
use crate::scan;
use crate::value::PropValue;

/// Deepest nesting of GeometryCollections accepted.
pub const MAX_COLLECTION_DEPTH: usize = 8;

/// A parsed feature. `problems` lists every problem found; `geometry` is present whenever
/// its coordinates could be read, even if invalid (for `repair`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFeature {
    pub id: PropValue,
    /// `None` for `"geometry": null` (or a geometry that could not be read: see `problems`).
    pub geometry: Option<Geom>,
    pub problems: Vec<Problem>,
}

/// What to parse: the schema pass needs only properties and ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    All,
    /// Properties and id only, without checking anything else: the other members are skipped
    /// by their brackets, not parsed (the load pass checks them).
    PropertiesOnly,
}

/// Members of a JSON object: key and raw JSON text of the value.
type Members<'a> = Vec<(Cow<'a, str>, &'a str)>;

/// Parses a feature (or a bare geometry, which becomes a feature without properties) and
/// hands each property to `on_property` in document order.
pub fn parse_feature(
    text: &[u8],
    transform: &CrsTransform,
    parts: Parts,
    on_property: impl FnMut(&str, PropValue),
) -> ParsedFeature {
    parse_feature_reading(text, transform, parts, on_property, true)
}

/// [`parse_feature`]; `in_place` tries the plain geometry path first (tests compare the two).
fn parse_feature_reading(
    text: &[u8],
    transform: &CrsTransform,
    parts: Parts,
    mut on_property: impl FnMut(&str, PropValue),
    in_place: bool,
) -> ParsedFeature {
    if parts == Parts::PropertiesOnly {
        let id = skim(text, &mut on_property);
        return ParsedFeature { id, geometry: None, problems: Vec::new() };
    }
    let mut out = ParsedFeature { id: PropValue::Null, geometry: None, problems: Vec::new() };
    // Checked once here, so that no member is checked again when it is cut out.
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            out.problems
                .push(Problem::new(ProblemCode::JsonSyntax, format!("malformed JSON: invalid UTF-8 at byte {at}")));
            return out;
        }
    };
    // Most features end with a plain geometry; reading it in place spares two bracket scans
    // over its coordinates. Anything else takes the general path, as if this was not tried.
    let plain = if in_place { members_and_plain_geometry(text, transform) } else { None };
    let (members, plain_geometry) = match plain {
        Some((members, geometry)) => (members, Some(geometry)),
        None => match checked_members(text, FEATURE_CHECKED_LATER, None) {
            Ok((members, _)) => (members, None),
            Err(p) => {
                out.problems.push(p);
                return out;
            }
        },
    };
    let ty = match type_member(&members, "feature") {
        Ok(ty) => ty,
        Err(p) => {
            out.problems.push(p);
            return out;
        }
    };
    if let Some(kind) = GeometryKind::from_name(&ty) {
        // A bare geometry.
        if parts == Parts::All {
            out.geometry = geometry_from_members(&members, kind, "geometry", transform, 0, &mut out.problems);
        }
        return out;
    }
    if ty != "Feature" {
        out.problems.push(unknown_type(&ty, "Feature or a geometry type"));
        return out;
    }
    duplicates(&members, "feature", &mut out.problems);
    forbidden(&members, "a Feature", &["coordinates", "geometries", "features"], &mut out.problems);
    let own = own_crs(&members, transform, &mut out.problems);
    let transform = own.as_ref().unwrap_or(transform);
    if let Some(bbox) = member(&members, "bbox") {
        if let Err(p) = check_bbox(bbox) {
            out.problems.push(p);
        }
    }
    if let Some(id) = member(&members, "id") {
        match json_kind(id) {
            "a string" | "a number" => out.id = PropValue::from_raw_json(id),
            other => out.problems.push(Problem::new(
                ProblemCode::InvalidId,
                format!("the feature \"id\" must be a string or a number, found {other}"),
            )),
        }
    }
    match member(&members, "properties") {
        None => out.problems.push(Problem::new(
            ProblemCode::MissingMember,
            "a Feature must have a \"properties\" member (null is allowed)",
        )),
        Some(p) => match json_kind(p) {
            "null" => {}
            "an object" => match object_members(p) {
                Ok(props) => {
                    duplicates(&props, "properties", &mut out.problems);
                    for (k, v) in props {
                        on_property(&k, PropValue::from_raw_json(v));
                    }
                }
                Err(p) => out.problems.push(p),
            },
            other => out.problems.push(Problem::new(
                ProblemCode::InvalidProperties,
                format!("\"properties\" must be an object or null, found {other}"),
            )),
        },
    }
    match member(&members, "geometry") {
        None => out.problems.push(Problem::new(
            ProblemCode::MissingMember,
            "a Feature must have a \"geometry\" member (null is allowed)",
        )),
        Some(g) if parts == Parts::All => match json_kind(g) {
            "null" => {}
            "an object" => {
                out.geometry = plain_geometry.or_else(|| parse_geometry(g, "geometry", transform, 0, &mut out.problems))
            }
            other => out.problems.push(Problem::new(
                ProblemCode::NotAnObject,
                format!("\"geometry\" must be an object or null, found {other}"),
            )),
        },
        Some(_) => {}
    }
    out
}

/// The CRS of a `crs` member of a feature or geometry, when the source did not set one
/// (legacy GeoJSON). Only WGS84 and Web Mercator are known this deep: a source-wide CRS is
/// resolved by the reader, and then governs its members.
fn own_crs(members: &Members<'_>, transform: &CrsTransform, problems: &mut Vec<Problem>) -> Option<CrsTransform> {
    let crs = member(members, "crs")?;
    if *transform != CrsTransform::Identity {
        return None;
    }
    parse_crs(crs, &BuiltinCrs).map_err(|p| problems.push(p)).ok()
}

/// Feature members whose values the readers of `geometry`, `properties` and coordinates check.
const FEATURE_CHECKED_LATER: &[&str] = &["geometry", "properties", "type", "coordinates"];

/// The members of a feature whose last member is a plain geometry without a `crs` beside it,
/// and that geometry, read in place; `None` for any other feature.
fn members_and_plain_geometry<'a>(text: &'a str, transform: &CrsTransform) -> Option<(Members<'a>, Geom)> {
    let (members, tail) = checked_members(text, FEATURE_CHECKED_LATER, Some("geometry")).ok()?;
    if member(&members, "crs").is_some() {
        return None;
    }
    let geometry = parse_plain_geometry(tail?, transform)?;
    Some((members, geometry))
}

/// The id and properties of a feature text; members are cut out by brackets only.
fn skim(text: &[u8], on_property: &mut impl FnMut(&str, PropValue)) -> PropValue {
    skim_feature(text, on_property).0
}

/// The kind of a geometry and whether it has Z (`None` when that is not known: an empty
/// geometry, or an unusual one), as the schema pass reads it.
pub type GeometryShape = (GeometryKind, Option<bool>);

/// The id, properties and geometry shape of a feature text (or of a bare geometry), for the
/// schema pass: members are cut out by brackets only, and of the geometry only its `type` and
/// its first position are read ([`geometry_shape`]). Nothing is checked: the load pass does.
pub fn skim_feature(text: &[u8], on_property: &mut impl FnMut(&str, PropValue)) -> (PropValue, Option<GeometryShape>) {
    let mut id = PropValue::Null;
    let mut shape = None;
    let Ok(text) = std::str::from_utf8(text) else { return (id, shape) };
    let Ok((members, _)) = strict_members(text, None) else {
        return (id, shape);
    };
    for (key, value) in members {
        match (key.as_ref(), value.as_bytes().first()) {
            ("type", Some(b'"')) if GeometryKind::from_name(value.trim_matches('"')).is_some() => {
                // A bare geometry.
                shape = geometry_shape(text, 0);
            }
            ("geometry", Some(b'{')) => shape = geometry_shape(value, 0),
            ("id", Some(b'"' | b'-' | b'0'..=b'9')) => id = PropValue::from_raw_json(value),
            ("properties", Some(b'{')) => {
                if let Ok(props) = object_members(value) {
                    for (k, v) in props {
                        on_property(&k, PropValue::from_raw_json(v));
                    }
                }
            }
            _ => {}
        }
    }
    (id, shape)
}

fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while matches!(t.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The kind and dimension of the geometry object `text` starts with, reading as little of it
/// as it can: its `type`, and the first position of its `coordinates` (or of its first member,
/// for a collection). Members before those are skipped by their brackets. `None` when the
/// object is not a geometry this can read; the load pass reports why.
fn geometry_shape(text: &str, depth: usize) -> Option<GeometryShape> {
    let t = text.as_bytes();
    let mut i = skip_ws(t, 0);
    if t.get(i) != Some(&b'{') || depth > MAX_COLLECTION_DEPTH {
        return None;
    }
    i = skip_ws(t, i + 1);
    let (mut kind, mut has_z, mut dim_read) = (None, None, false);
    while t.get(i) == Some(&b'"') {
        let key_end = skip_value(t, i)?;
        let key = &t[i + 1..key_end - 1];
        i = skip_ws(t, key_end);
        if t.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(t, i + 1);
        match key {
            b"type" => {
                let end = skip_value(t, i)?;
                kind = Some(GeometryKind::from_name(text.get(i + 1..end.checked_sub(1)?)?)?);
                i = end;
            }
            b"coordinates" | b"geometries" if !dim_read => {
                has_z = if key == b"coordinates" {
                    first_position_has_z(&t[i..])
                } else {
                    // The first member of the collection.
                    let first = skip_ws(t, i + 1);
                    geometry_shape(text.get(first..)?, depth + 1).and_then(|(_, z)| z)
                };
                dim_read = true;
                if kind.is_some() {
                    break;
                }
                i = skip_value(t, i)?;
            }
            _ => i = skip_value(t, i)?,
        }
        if kind.is_some() && dim_read {
            break;
        }
        i = skip_ws(t, i);
        match t.get(i) {
            Some(b',') => i = skip_ws(t, i + 1),
            _ => break,
        }
    }
    Some((kind?, has_z))
}

/// Whether the first position of a `coordinates` array has a third number: `None` when it
/// has no position (or it is not readable).
fn first_position_has_z(t: &[u8]) -> Option<bool> {
    let mut depth = 0usize;
    let mut i = 0;
    // Down to the first number, past empty arrays.
    loop {
        match *t.get(i)? {
            b'[' => depth += 1,
            b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return None;
                }
            }
            b'-' | b'0'..=b'9' => break,
            b',' | b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => return None,
        }
        i += 1;
    }
    let end = i + memchr::memchr(b']', &t[i..])?;
    let numbers = 1 + memchr::memchr_iter(b',', &t[i..end]).count();
    Some(numbers == 3)
}

/// The members of a JSON object, its syntax checked: the object's own structure here, the
/// object and array values of the members named in `checked_later` by whoever reads them
/// (the coordinates parser, serde for properties), and every other value here. Most of a feature's bytes are
/// its coordinates, so they are scanned once for their brackets and parsed once.
///
/// With `open_tail`, an object value of that member is taken to run to the object's end and
/// returned unchecked as well: the caller must prove it is one value, or read the members
/// again without `open_tail`.
fn checked_members<'a>(
    text: &'a str,
    checked_later: &[&str],
    open_tail: Option<&str>,
) -> Result<(Members<'a>, Option<&'a str>), Problem> {
    let (members, tail) = strict_members(text, open_tail)?;
    for (key, value) in &members {
        // Scalars are cut out up to the next delimiter (`nul` as much as `null`): check them all.
        let container = matches!(value.as_bytes().first(), Some(b'{' | b'['));
        if !(container && checked_later.contains(&key.as_ref())) {
            if let Err(e) = serde_json::from_str::<de::IgnoredAny>(value) {
                return Err(Problem::new(ProblemCode::JsonSyntax, format!("malformed JSON in member {key:?}: {e}")));
            }
        }
    }
    Ok((members, tail))
}

/// The members of an object as (key, raw value): braces, member names, colons and commas are
/// checked; values are cut out by their brackets. An object value of the member `open_tail`
/// is cut out up to the object's closing brace instead, unscanned, and also returned apart.
fn strict_members<'a>(s: &'a str, open_tail: Option<&str>) -> Result<(Members<'a>, Option<&'a str>), Problem> {
    let t = s.as_bytes();
    let syntax =
        |at: usize, what: &str| Problem::new(ProblemCode::JsonSyntax, format!("malformed JSON: {what} at byte {at}"));
    let ws = |mut i: usize| {
        while matches!(t.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if t.get(i) != Some(&b'{') {
        let kind = if i == t.len() { "nothing" } else { json_kind(s) };
        return Err(Problem::new(ProblemCode::NotAnObject, format!("expected a JSON object, found {kind}")));
    }
    i = ws(i + 1);
    let mut out = Vec::new();
    if t.get(i) == Some(&b'}') {
        return match ws(i + 1) {
            end if end == t.len() => Ok((out, None)),
            end => Err(syntax(end, "unexpected text after the object")),
        };
    }
    loop {
        if t.get(i) != Some(&b'"') {
            return Err(syntax(i, "expected a member name"));
        }
        let end = skip_value(t, i).ok_or_else(|| syntax(i, "unterminated string"))?;
        let inner = &s[i + 1..end - 1];
        let key = if inner.bytes().any(|b| b == b'\\' || b < 0x20) {
            let decoded = serde_json::from_str::<String>(&s[i..end]).map_err(|e| syntax(i, &e.to_string()))?;
            Cow::Owned(decoded)
        } else {
            Cow::Borrowed(inner)
        };
        i = ws(end);
        if t.get(i) != Some(&b':') {
            return Err(syntax(i, "expected ':'"));
        }
        i = ws(i + 1);
        if matches!(t.get(i), None | Some(b',' | b'}' | b']' | b':')) {
            return Err(syntax(i, "expected a value"));
        }
        if t[i] == b'{' && open_tail.is_some_and(|k| k == key.as_ref()) {
            // The object's last byte; a brace there is a character boundary.
            let closing = s.trim_end_matches([' ', '\t', '\n', '\r']).len() - 1;
            if t[closing] == b'}' {
                let value = s[i..closing].trim_end_matches([' ', '\t', '\n', '\r']);
                if value.ends_with('}') {
                    out.push((key, value));
                    return Ok((out, Some(value)));
                }
            }
        }
        let value_end = skip_value(t, i).ok_or_else(|| syntax(i, "unterminated value"))?;
        out.push((key, &s[i..value_end]));
        i = ws(value_end);
        match t.get(i) {
            Some(b',') => i = ws(i + 1),
            Some(b'}') => {
                return match ws(i + 1) {
                    end if end == t.len() => Ok((out, None)),
                    end => Err(syntax(end, "unexpected text after the object")),
                };
            }
            _ => return Err(syntax(i, "expected ',' or '}'")),
        }
    }
}

/// The end of the JSON value starting at `i`, by quotes and brackets only.
fn skip_value(t: &[u8], i: usize) -> Option<usize> {
    let skip_string = |mut j: usize| loop {
        j += memchr::memchr2(b'"', b'\\', t.get(j..)?)?;
        if t[j] == b'\\' {
            j += 2;
        } else {
            return Some(j + 1);
        }
    };
    match t.get(i)? {
        b'"' => skip_string(i + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                if depth == 0 {
                    j += t.get(j..)?.iter().position(|&c| scan::STRUCTURAL[c as usize])?;
                } else {
                    let (k, at) = scan::next_structural(t.get(j..)?, t[j - 1], depth, usize::MAX);
                    (j, depth) = (j + k, at);
                    t.get(j)?;
                }
                match t[j] {
                    b'"' => {
                        j = skip_string(j + 1)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let n = t[i..].iter().position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            Some(i + n.unwrap_or(t.len() - i))
        }
    }
}

/// A geometry written `{"type": "<Kind>", "coordinates": […]}` and nothing else, with sound
/// coordinates, read in place. `None` for anything else, and for any problem: the general path
/// then reads it and reports.
fn parse_plain_geometry(raw: &str, transform: &CrsTransform) -> Option<Geom> {
    let inner = raw.strip_suffix('}')?.trim_end_matches([' ', '\t', '\n', '\r']);
    let t = inner.as_bytes();
    let mut i = 0;
    let token = |i: &mut usize, token: &[u8]| {
        while matches!(t.get(*i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            *i += 1;
        }
        let found = t.get(*i..*i + token.len()) == Some(token);
        if found {
            *i += token.len();
        }
        found
    };
    if !(token(&mut i, b"{") && token(&mut i, b"\"type\"") && token(&mut i, b":") && token(&mut i, b"\"")) {
        return None;
    }
    let name_end = i + memchr::memchr(b'"', &t[i..])?;
    let kind = GeometryKind::from_name(&inner[i..name_end]).filter(|k| *k != GeometryKind::GeometryCollection)?;
    i = name_end + 1;
    if !(token(&mut i, b",") && token(&mut i, b"\"coordinates\"") && token(&mut i, b":")) {
        return None;
    }
    let coordinates = inner[i..].trim_start_matches([' ', '\t', '\n', '\r']);
    if !(coordinates.starts_with('[') && coordinates.ends_with(']')) {
        return None;
    }
    // Text after the array's end (other members) is a problem like any other.
    let mut problems = Vec::new();
    let geometry = parse_coordinates(coordinates.as_bytes(), kind, "geometry", transform, &mut problems)?;
    problems.is_empty().then_some(geometry)
}

/// `raw` is a JSON object cut out by its brackets; its syntax is checked as it is read.
fn parse_geometry(
    raw: &str,
    path: &str,
    transform: &CrsTransform,
    depth: usize,
    problems: &mut Vec<Problem>,
) -> Option<Geom> {
    let members = match checked_members(raw, &["coordinates", "geometries", "type"], None) {
        Ok((m, _)) => m,
        Err(p) => {
            problems.push(p.at(path));
            return None;
        }
    };
    let ty = match type_member(&members, path) {
        Ok(ty) => ty,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    let Some(kind) = GeometryKind::from_name(&ty) else {
        problems.push(unknown_type(&ty, "a geometry type").at(path));
        return None;
    };
    geometry_from_members(&members, kind, path, transform, depth, problems)
}

fn geometry_from_members(
    members: &Members<'_>,
    kind: GeometryKind,
    path: &str,
    transform: &CrsTransform,
    depth: usize,
    problems: &mut Vec<Problem>,
) -> Option<Geom> {
    duplicates(members, path, problems);
    forbidden(members, &format!("a geometry ({path})"), &["properties", "geometry", "features"], problems);
    if let Some(bbox) = member(members, "bbox") {
        if let Err(p) = check_bbox(bbox) {
            problems.push(p.at(path));
        }
    }
    let own = own_crs(members, transform, problems);
    let transform = own.as_ref().unwrap_or(transform);
    if kind == GeometryKind::GeometryCollection {
        if depth >= MAX_COLLECTION_DEPTH {
            problems.push(Problem::new(
                ProblemCode::TooDeep,
                format!("{path}: GeometryCollections nested more than {MAX_COLLECTION_DEPTH} deep"),
            ));
            return None;
        }
        let Some(geoms) = member(members, "geometries") else {
            problems.push(Problem::new(
                ProblemCode::MissingMember,
                format!("{path}: a GeometryCollection needs a \"geometries\" member"),
            ));
            return None;
        };
        let items: Vec<&RawValue> = match serde_json::from_str(geoms) {
            Ok(items) => items,
            Err(_) => {
                problems.push(Problem::new(
                    ProblemCode::InvalidCoordinates,
                    format!("{path}.geometries must be an array, found {}", json_kind(geoms)),
                ));
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}.geometries[{i}]");
            if json_kind(item.get()) != "an object" {
                problems.push(Problem::new(
                    ProblemCode::NotAnObject,
                    format!(
                        "{item_path}: the geometries of a GeometryCollection must be geometry objects, found {}",
                        json_kind(item.get())
                    ),
                ));
                complete = false;
                continue;
            }
            match parse_geometry(item.get(), &item_path, transform, depth + 1, problems) {
                Some(g) => out.push(g),
                None => complete = false,
            }
        }
        let collection = Geom::GeometryCollection(out);
        let (mut with_z, mut without_z) = (0usize, 0usize);
        collection.for_each_pos(&mut |p| if p.has_z() { with_z += 1 } else { without_z += 1 });
        if with_z > 0 && without_z > 0 {
            problems.push(Problem::new(
                ProblemCode::MixedDimensions,
                format!("{path}: {with_z} positions of the collection have a third number and {without_z} do not"),
            ));
        }
        return complete.then_some(collection);
    }
    let Some(coords) = member(members, "coordinates") else {
        problems.push(Problem::new(
            ProblemCode::MissingMember,
            format!("{path}: a {} needs a \"coordinates\" member", kind.name()),
        ));
        return None;
    };
    parse_coordinates(coords.as_bytes(), kind, path, transform, problems)
}

impl Problem {
    fn at(mut self, path: &str) -> Problem {
        self.message = format!("{path}: {}", self.message);
        self
    }
}

fn member<'a>(members: &Members<'a>, key: &str) -> Option<&'a str> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn type_member<'a>(members: &Members<'a>, what: &str) -> Result<Cow<'a, str>, Problem> {
    let invalid = |t: &str| {
        Problem::new(ProblemCode::InvalidType, format!("{what}: \"type\" must be a string, found {}", json_kind(t)))
    };
    match member(members, "type") {
        None => Err(Problem::new(ProblemCode::MissingType, format!("{what}: the \"type\" member is missing"))),
        // Borrowed unless it has escapes.
        Some(t) => match serde_json::from_str::<&str>(t) {
            Ok(borrowed) => Ok(Cow::Borrowed(borrowed)),
            Err(_) => serde_json::from_str::<String>(t).map(Cow::Owned).map_err(|_| invalid(t)),
        },
    }
}

fn unknown_type(ty: &str, expected: &str) -> Problem {
    let known = [
        "Feature",
        "FeatureCollection",
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    ];
    let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(ty)) {
        Some(k) if *k != ty => format!(" (types are case-sensitive: did you mean {k:?}?)"),
        _ => String::new(),
    };
    Problem::new(ProblemCode::InvalidType, format!("unknown type {ty:?}, expected {expected}{hint}"))
}

fn duplicates(members: &Members<'_>, what: &str, problems: &mut Vec<Problem>) {
    // Most objects are small: comparing pairs beats hashing every key of every feature.
    const PAIRWISE_UP_TO: usize = 32;
    let mut seen = std::collections::HashSet::new();
    if members.len() > PAIRWISE_UP_TO {
        seen.reserve(members.len());
    }
    let mut reported = std::collections::HashSet::new();
    for (i, (k, _)) in members.iter().enumerate() {
        let repeated = if members.len() <= PAIRWISE_UP_TO {
            members[..i].iter().any(|(earlier, _)| earlier == k)
        } else {
            !seen.insert(k.as_ref())
        };
        if repeated && reported.insert(k.as_ref()) {
            problems.push(Problem::new(
                ProblemCode::DuplicateMember,
                format!("{what}: member {k:?} appears more than once"),
            ));
        }
    }
}

fn forbidden(members: &Members<'_>, what: &str, names: &[&str], problems: &mut Vec<Problem>) {
    for name in names {
        if member(members, name).is_some() {
            problems.push(Problem::new(
                ProblemCode::ForbiddenMember,
                format!("{what} must not have a {name:?} member (RFC 7946 §7.1)"),
            ));
        }
    }
}

/// A `bbox` must be an array of 4 or 6 numbers.
pub fn check_bbox(raw: &str) -> Result<(), Problem> {
    let bad = |why: String| Problem::new(ProblemCode::InvalidBbox, format!("bbox {why}"));
    let items: Vec<&RawValue> =
        serde_json::from_str(raw).map_err(|_| bad(format!("must be an array of numbers, found {}", json_kind(raw))))?;
    if items.iter().any(|v| json_kind(v.get()) != "a number") {
        return Err(bad("must contain only numbers".into()));
    }
    if items.len() != 4 && items.len() != 6 {
        return Err(bad(format!("must have 4 (2D) or 6 (3D) numbers, found {}", items.len())));
    }
    Ok(())
}

/// The members of a JSON object, in order, borrowing where possible.
fn object_members(text: &str) -> Result<Members<'_>, Problem> {
    let first = text.bytes().find(|c| !c.is_ascii_whitespace());
    if first != Some(b'{') {
        let kind = match first {
            None => "nothing",
            Some(_) => json_kind(text),
        };
        return Err(Problem::new(ProblemCode::NotAnObject, format!("expected a JSON object, found {kind}")));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = de
        .deserialize_map(MembersVisitor)
        .and_then(|m| de.end().map(|_| m))
        .map_err(|e| Problem::new(ProblemCode::JsonSyntax, format!("malformed JSON: {e}")))?;
    Ok(members)
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            out.push((key.0, value.get()));
        }
        Ok(out)
    }
}

/// A map key that borrows from the input unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (ParsedFeature, Vec<(String, PropValue)>) {
        let mut props = Vec::new();
        let f =
            parse_feature(text.as_bytes(), &CrsTransform::Identity, Parts::All, |k, v| props.push((k.to_string(), v)));
        (f, props)
    }

    fn codes(f: &ParsedFeature) -> Vec<ProblemCode> {
        f.problems.iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_valid_feature() {
        let (f, props) = parse(
            r#"{"type":"Feature","id":"a\"1","properties":{"n":1,"s\u00e9":"x","o":{"k":[1]}},"geometry":{"type":"Point","coordinates":[1,2]}}"#,
        );
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.id, PropValue::Text("a\"1".into()));
        assert_eq!(props[1], ("sé".to_string(), PropValue::Text("x".into())));
        assert_eq!(props[2].1, PropValue::Json(r#"{"k":[1]}"#.into()));
        assert!(matches!(f.geometry, Some(Geom::Point(_))));
    }

    #[test]
    fn null_geometry_and_bare_geometry() {
        let (f, _) = parse(r#"{"type":"Feature","properties":null,"geometry":null}"#);
        assert!(f.problems.is_empty());
        assert_eq!(f.geometry, None);
        let (f, _) = parse(r#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#);
        assert!(f.problems.is_empty());
        assert!(matches!(f.geometry, Some(Geom::LineString(_))));
    }

    #[test]
    fn every_problem_is_collected() {
        let (f, _) = parse(
            r#"{"type":"Feature","id":[1],"properties":[],"features":[],"geometry":{"type":"Point","coordinates":[1]}}"#,
        );
        assert_eq!(
            codes(&f),
            vec![
                ProblemCode::ForbiddenMember,
                ProblemCode::InvalidId,
                ProblemCode::InvalidProperties,
                ProblemCode::InvalidPosition
            ]
        );
        let (f, _) = parse(r#"{"type":"feature","properties":{},"geometry":null}"#);
        assert_eq!(codes(&f), vec![ProblemCode::InvalidType]);
        assert!(f.problems[0].message.contains("case-sensitive"));
        let (f, _) = parse(r#"{"type":"Feature","type":"Feature","properties":{}}"#);
        assert_eq!(codes(&f), vec![ProblemCode::DuplicateMember, ProblemCode::MissingMember]);
        // A syntax error inside one member leaves the others readable.
        let (f, _) = parse(r#"{"type": "Feature", "properties": {"a": 1,}}"#);
        assert_eq!(codes(&f), vec![ProblemCode::JsonSyntax, ProblemCode::MissingMember]);
        for broken in [
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1,,2]}}"#,
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1 2]}}"#,
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[01,2]}}"#,
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1,2,]}}"#,
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1,2]x}}"#,
            r#"{"type":"Feature","properties":null,"geometry":{"type":"Point","coordinates":[1,2],"x":tru}}"#,
            r#"{"type":"Feature","properties":nul,"geometry":null}"#,
            r#"{"type":"Feature","properties":null,"geometry":null,}"#,
            r#"{"type":"Feature","properties":null "geometry":null}"#,
            r#"{"type":"Feature","id":12a,"properties":null,"geometry":null}"#,
            r#"{"type":"Feature","properties":null,"geometry":null} x"#,
        ] {
            let (f, _) = parse(broken);
            assert!(codes(&f).contains(&ProblemCode::JsonSyntax), "{broken}: {:?}", f.problems);
        }
        let (f, _) = parse("[1,2]");
        assert_eq!(codes(&f), vec![ProblemCode::NotAnObject]);
    }

    #[test]
    fn plain_geometries_read_in_place_exactly_as_by_the_general_path() {
        let features = [
            r#"{"type":"Feature","properties":{"a":1},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}"#,
            r#"{ "type" : "Feature" , "id" : 3 , "properties" : null , "geometry" : { "type" : "LineString" , "coordinates" : [ [1,2] , [3,4] ] } }  "#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]},"bbox":[1,2,1,2]}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2],"bbox":[1,2,1,2]}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]},"x":{"type":"Point","coordinates":[3]}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]},"geometry":{"type":"Point","coordinates":[3,4]}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"MultiPoint","coordinates":[[1,2]]},"s":"]}"}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"coordinates":[1,2],"type":"Point"}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Poi\u006et","coordinates":[1,2]}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[500,2]}}"#,
            r#"{"type":"Feature","crs":{"type":"name","properties":{"name":"EPSG:3857"}},"properties":{},"geometry":{"type":"Point","coordinates":[100000,200000]}}"#,
            r#"{"type":"Feature","properties":{},"geometry":{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]}]}}"#,
            r#"{"type":"Point","coordinates":[1,2],"geometry":{"type":"Point","coordinates":[1,2]}}"#,
            "{\"type\":\"Feature\",\"properties\":{},\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,2]} é",
        ];
        let read = |text: &[u8], in_place: bool| {
            let mut props = Vec::new();
            let f = parse_feature_reading(
                text,
                &CrsTransform::Identity,
                Parts::All,
                |k, v| props.push((k.to_string(), v)),
                in_place,
            );
            (f, props)
        };
        for feature in features {
            // Each text, and each text with one byte removed or doubled.
            let mut variants = vec![feature.as_bytes().to_vec()];
            for i in 0..feature.len() {
                let mut removed = feature.as_bytes().to_vec();
                removed.remove(i);
                let mut doubled = feature.as_bytes().to_vec();
                doubled.insert(i, feature.as_bytes()[i]);
                variants.extend([removed, doubled]);
            }
            for text in variants {
                // Compared as text: a missing z is NaN, which equals nothing.
                let (fast, general) = (format!("{:?}", read(&text, true)), format!("{:?}", read(&text, false)));
                assert_eq!(fast, general, "{}", String::from_utf8_lossy(&text));
            }
        }
        // The common form does take the plain path.
        assert!(members_and_plain_geometry(features[0], &CrsTransform::Identity).is_some());
    }

    #[test]
    fn invalid_utf8_is_reported_where_it_is() {
        let f = parse_feature(b"{\"type\":\"Feature\xff\"}", &CrsTransform::Identity, Parts::All, |_, _| {});
        assert_eq!(f.problems.len(), 1);
        assert_eq!(f.problems[0].message, "malformed JSON: invalid UTF-8 at byte 16");
    }

    #[test]
    fn the_schema_pass_skims_ids_and_properties() {
        let text = r#"{"geometry":{"type":"Point","coordinates":[1,[2,"]"]]},"id":"a\"b","properties":{"k\u00e9":[1],"n":2},"type":"Feature"}"#;
        let mut props = Vec::new();
        let f = parse_feature(text.as_bytes(), &CrsTransform::Identity, Parts::PropertiesOnly, |k, v| {
            props.push((k.to_string(), v))
        });
        assert_eq!(f.id, PropValue::Text("a\"b".into()));
        assert_eq!(
            props,
            vec![("ké".to_string(), PropValue::Json("[1]".into())), ("n".to_string(), PropValue::Int(2))]
        );
        for broken in ["", "[]", "{\"id\":", "{\"properties\":{\"a\":1}", "{\"a\" 1}", r#"{"a":"\"}"#] {
            parse_feature(broken.as_bytes(), &CrsTransform::Identity, Parts::PropertiesOnly, |_, _| {});
        }
    }

    #[test]
    fn collections() {
        let (f, _) =
            parse(r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[0,0]},false]}"#);
        assert_eq!(codes(&f), vec![ProblemCode::NotAnObject]);
        let mut deep = String::new();
        for _ in 0..20 {
            deep.push_str(r#"{"type":"GeometryCollection","geometries":["#);
        }
        deep.push_str(&"]}".repeat(20));
        let (f, _) = parse(&deep);
        assert_eq!(codes(&f), vec![ProblemCode::TooDeep]);
    }

    #[test]
    fn feature_crs_is_applied_or_rejected() {
        let (f, _) = parse(
            r#"{"type":"Feature","crs":{"type":"name","properties":{"name":"EPSG:27700"}},"properties":{},"geometry":null}"#,
        );
        assert_eq!(codes(&f), vec![ProblemCode::UnsupportedCrs]);
    }

    #[test]
    fn the_schema_pass_reads_the_geometry_type_and_first_position() {
        let shape = |text: &str| skim_feature(text.as_bytes(), &mut |_, _| {}).1;
        use GeometryKind::*;
        let f = |g: &str| format!(r#"{{"type":"Feature","properties":{{"a":1}},"geometry":{g}}}"#);
        assert_eq!(shape(&f(r#"{"type":"Point","coordinates":[1,2]}"#)), Some((Point, Some(false))));
        assert_eq!(
            shape(&f(r#"{ "type" : "Polygon", "coordinates" : [ [ [1, 2, 3], [4,5,6]]]}"#)),
            Some((Polygon, Some(true)))
        );
        // Members in another order, empty parts first, a bbox in between.
        assert_eq!(
            shape(&f(r#"{"coordinates":[[],[[[1.5,-2e3]]]],"bbox":[0,0,1,1],"type":"MultiPolygon"}"#)),
            Some((MultiPolygon, Some(false)))
        );
        assert_eq!(shape(&f(r#"{"type":"LineString","coordinates":[]}"#)), Some((LineString, None)));
        assert_eq!(
            shape(&f(r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2,3]}]}"#)),
            Some((GeometryCollection, Some(true)))
        );
        assert_eq!(shape(&f("null")), None);
        assert_eq!(shape(&f(r#"{"type":"Curve","coordinates":[1,2]}"#)), None);
        // A bare geometry.
        assert_eq!(shape(r#"{"type":"MultiPoint","coordinates":[[1,2]]}"#), Some((MultiPoint, Some(false))));
        // Broken text reads as nothing, never panics.
        for cut in 0..60 {
            let text = f(r#"{"type":"Polygon","coordinates":[[[1,2],[3,4]]]}"#);
            let _ = shape(&text[..cut.min(text.len())]);
            let _ = geometry_shape(&r#"{"type":"Polygon","coordinates":[[[1,2],[3,4]]]}"#[..cut.min(48)], 0);
        }
    }
}
