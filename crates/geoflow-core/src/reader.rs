//! Streaming framing of GeoJSON input into one raw text per feature.
//!
//! Handles a FeatureCollection of any size (features are cut out of the `features` array one
//! at a time, so memory does not grow with the file), GeoJSON Text Sequences (RFC 8142,
//! `\x1e`-separated), newline-delimited GeoJSON, a single Feature and a bare Geometry. The
//! format is told from the content. Framing only tracks strings and brackets — it never
//! recurses, so no input can overflow the stack — and each feature text is then parsed on its
//! own (see [`crate::feature`]), possibly on another thread.

use std::io::{self, Read};

use serde_json::value::RawValue;

use std::sync::Arc;

use crate::crs::{parse_crs, BuiltinCrs, CrsResolver, CrsTransform};
use crate::geometry::Geom;
use crate::report::{Problem, ProblemCode};
use crate::scan::{self, RS};
use crate::value::PropValue;

/// Limits on untrusted input.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Largest feature (or top-level member) kept in memory, in bytes.
    pub max_feature_bytes: usize,
    /// Deepest nesting of arrays and objects inside one feature.
    pub max_depth: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions { max_feature_bytes: 128 << 20, max_depth: 64 }
    }
}

/// One feature as a reader gives it: its JSON text cut from a GeoJSON input, or the parts a
/// reader of another format decoded.
#[derive(Debug, Clone)]
pub struct RawFeature {
    /// 0-based position in the source (in its layer, for a format with several).
    pub index: u64,
    /// Byte offset of the text in the input (0 for a decoded feature).
    pub offset: u64,
    /// The feature's GeoJSON text (empty for a decoded feature).
    pub bytes: Vec<u8>,
    /// A feature decoded from another format (Shapefile, GeoPackage, …).
    pub decoded: Option<Box<DecodedFeature>>,
    /// A problem found while framing (too large, too deep, truncated); `bytes` is then empty
    /// or partial and must not be parsed.
    pub fault: Option<Problem>,
    /// How to bring this feature's positions to WGS84 (from a top-level `crs` member).
    pub transform: CrsTransform,
    /// The layer the feature comes from, when one source reads several (a zip of
    /// Shapefiles): reports name it beside the feature's index in it.
    pub layer: Option<Arc<str>>,
}

/// A feature decoded from a format other than GeoJSON: the parts a GeoJSON feature's text
/// gives, with its geometry still in the source's CRS.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedFeature {
    pub id: PropValue,
    pub geometry: Option<Geom>,
    /// Property keys and values in the source's column order.
    pub properties: Vec<(String, PropValue)>,
    /// What the reader found wrong with this feature (a geometry it could not decode, say).
    pub problems: Vec<Problem>,
}

impl RawFeature {
    /// A feature a reader of another format decoded; `transform` brings its positions to WGS84.
    pub fn decoded(index: u64, feature: DecodedFeature, transform: CrsTransform) -> RawFeature {
        RawFeature {
            index,
            offset: 0,
            bytes: Vec::new(),
            decoded: Some(Box::new(feature)),
            fault: None,
            transform,
            layer: None,
        }
    }

    /// A feature that could not be read at all: `fault` says why.
    pub fn faulty(index: u64, fault: Problem) -> RawFeature {
        RawFeature {
            index,
            offset: 0,
            bytes: Vec::new(),
            decoded: None,
            fault: Some(fault),
            transform: CrsTransform::Identity,
            layer: None,
        }
    }
}

/// A problem that ends the reading of the whole source.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the input: {0}")]
    Io(#[from] io::Error),
    #[error("at byte {offset}: {problem}")]
    Invalid { offset: u64, problem: Problem },
    /// A file that is not of a format read, or is corrupt where no byte offset helps.
    #[error("{0}")]
    Unreadable(Problem),
}

impl ReadError {
    pub fn code(&self) -> Option<ProblemCode> {
        match self {
            ReadError::Io(_) => None,
            ReadError::Invalid { problem, .. } | ReadError::Unreadable(problem) => Some(problem.code),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The first JSON text (may stream a FeatureCollection).
    First,
    /// RFC 8142: texts after record separators; resynchronise at the next separator.
    RecordSeparated,
    /// More texts followed the first: newline-delimited or concatenated GeoJSON.
    Lines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Members { need_comma: bool },
    Features { first: bool },
    AfterText,
    Done,
}

/// Members of the top-level object seen so far.
#[derive(Debug, Default)]
struct TopLevel {
    offset: u64,
    members: Vec<(String, Box<RawValue>)>,
    keys: std::collections::HashSet<String>,
    has_features: bool,
}

impl TopLevel {
    fn get(&self, key: &str) -> Option<&RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    fn type_name(&self) -> Option<Result<String, ()>> {
        self.get("type").map(|v| serde_json::from_str::<String>(v.get()).map_err(|_| ()))
    }
}

/// Outcome of cutting one value out of the input.
struct Cut {
    too_large: bool,
    depth: usize,
    /// The value ended early (end of input, or a separator in a text sequence).
    truncated: Option<&'static str>,
}

const BUF_SIZE: usize = 1 << 20;

/// Bytes that change the framing state inside a container.
/// Iterator over the raw features of one GeoJSON input.
pub struct GeoJsonReader<R> {
    src: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Input bytes before `buf[0]`.
    consumed: u64,
    eof: bool,
    state: State,
    mode: Mode,
    top: TopLevel,
    next_index: u64,
    transform: CrsTransform,
    /// Resolves a top-level `crs` member.
    resolver: Arc<dyn CrsResolver>,
    /// Whether the source's CRS was given from outside: it then governs, whatever a `crs`
    /// member says.
    given_crs: bool,
    opts: ReaderOptions,
}

impl<R: Read> GeoJsonReader<R> {
    pub fn new(src: R, opts: ReaderOptions) -> Self {
        GeoJsonReader {
            src,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            end: 0,
            consumed: 0,
            eof: false,
            state: State::Start,
            mode: Mode::First,
            top: TopLevel::default(),
            next_index: 0,
            transform: CrsTransform::Identity,
            resolver: Arc::new(BuiltinCrs),
            given_crs: false,
            opts,
        }
    }

    /// Resolves `crs` members with `resolver` (by default only WGS84 and Web Mercator are
    /// known).
    pub fn with_resolver(mut self, resolver: Arc<dyn CrsResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// The CRS of the source, whatever its `crs` member says (as ogr2ogr's `-s_srs`).
    pub fn with_source_crs(mut self, transform: CrsTransform) -> Self {
        self.given_crs = true;
        self.transform = transform;
        self
    }

    /// The CRS the features are being transformed from, once known.
    pub fn crs(&self) -> &CrsTransform {
        &self.transform
    }

    /// The underlying reader (for example to finish a hash over everything read).
    pub fn into_inner(self) -> R {
        self.src
    }

    /// Bytes of input consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.consumed + self.pos as u64
    }

    fn refill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.consumed += self.end as u64;
        self.pos = 0;
        self.end = 0;
        loop {
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.end && !self.refill()? {
            return Ok(None);
        }
        Ok(Some(self.buf[self.pos]))
    }

    /// Skips JSON whitespace (and record separators when `rs` is set).
    fn skip_ws(&mut self, rs: bool) -> io::Result<Option<u8>> {
        loop {
            let Some(c) = self.peek()? else { return Ok(None) };
            match c {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                RS if rs => self.pos += 1,
                _ => return Ok(Some(c)),
            }
        }
    }

    fn invalid(&self, code: ProblemCode, message: impl Into<String>) -> ReadError {
        ReadError::Invalid { offset: self.bytes_read(), problem: Problem::new(code, message) }
    }

    fn syntax(&self, message: impl Into<String>) -> ReadError {
        self.invalid(ProblemCode::JsonSyntax, message)
    }

    fn expect(&mut self, want: u8, context: &str) -> Result<(), ReadError> {
        match self.skip_ws(false)? {
            Some(c) if c == want => {
                self.pos += 1;
                Ok(())
            }
            Some(c) => Err(self.syntax(format!("expected '{}' {context}, found {}", want as char, describe(c)))),
            None => Err(self.syntax(format!("unexpected end of input: expected '{}' {context}", want as char))),
        }
    }

    /// Cuts the JSON value starting at the current position into `out` (up to `limit` bytes).
    fn cut_value(&mut self, out: &mut Vec<u8>, limit: usize) -> io::Result<Cut> {
        let mut cut = Cut { too_large: false, depth: 0, truncated: None };
        let mut depth = 0usize;
        let mut seg = self.pos;
        let mut in_string = false;
        let mut escaped = false;
        let mut scalar = false;
        let flush = |out: &mut Vec<u8>, bytes: &[u8], cut: &mut Cut| {
            if cut.too_large {
                return;
            }
            if out.len() + bytes.len() > limit {
                cut.too_large = true;
                *out = Vec::new();
            } else {
                out.extend_from_slice(bytes);
            }
        };
        loop {
            if self.pos == self.end {
                flush(out, &self.buf[seg..self.end], &mut cut);
                if !self.refill()? {
                    if !(scalar && depth == 0) {
                        cut.truncated = Some("unexpected end of input inside a value");
                    }
                    return Ok(cut);
                }
                seg = 0;
            }
            if in_string {
                if escaped {
                    escaped = false;
                    self.pos += 1;
                    continue;
                }
                let hay = &self.buf[self.pos..self.end];
                // In a sequence a raw newline (or record separator) cannot be inside a JSON
                // string: the text ended early, and the next one starts there.
                let hit = match self.mode {
                    Mode::Lines => memchr::memchr3(b'"', b'\\', b'\n', hay),
                    Mode::RecordSeparated => memchr::memchr3(b'"', b'\\', RS, hay),
                    Mode::First => memchr::memchr2(b'"', b'\\', hay),
                };
                match hit {
                    None => self.pos = self.end,
                    Some(i) => {
                        let c = hay[i];
                        self.pos += i + 1;
                        match c {
                            b'\\' => escaped = true,
                            b'"' => {
                                in_string = false;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {
                                self.pos -= 1;
                                cut.truncated = Some("the text ends inside a string");
                                break;
                            }
                        }
                    }
                }
                continue;
            }
            if depth > 0 {
                // Inside an array or object only quotes, brackets and separators matter.
                let after = if self.pos > 0 { self.buf[self.pos - 1] } else { 0 };
                let (i, at) = scan::next_structural(&self.buf[self.pos..self.end], after, depth, self.opts.max_depth);
                self.pos += i;
                depth = at;
                if self.pos == self.end {
                    continue;
                }
            }
            let c = self.buf[self.pos];
            match c {
                b'"' if !scalar => in_string = true,
                b'{' | b'[' if !scalar => {
                    depth += 1;
                    cut.depth = cut.depth.max(depth);
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        break;
                    }
                }
                RS if self.mode == Mode::RecordSeparated => {
                    cut.truncated = Some("record separator inside a value");
                    break;
                }
                b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => break,
                _ if depth == 0 => scalar = true,
                _ => {}
            }
            self.pos += 1;
        }
        flush(out, &self.buf[seg..self.pos], &mut cut);
        Ok(cut)
    }

    fn raw_feature(&mut self, offset: u64, bytes: Vec<u8>, cut: &Cut) -> RawFeature {
        let fault = if cut.too_large {
            Some(Problem::new(
                ProblemCode::TooLarge,
                format!("feature larger than the {} byte limit", self.opts.max_feature_bytes),
            ))
        } else if let Some(why) = cut.truncated {
            Some(Problem::new(ProblemCode::JsonSyntax, format!("malformed JSON text: {why}")))
        } else if cut.depth > self.opts.max_depth {
            Some(Problem::new(
                ProblemCode::TooDeep,
                format!("nesting depth {} exceeds the limit of {}", cut.depth, self.opts.max_depth),
            ))
        } else {
            None
        };
        let index = self.next_index;
        self.next_index += 1;
        let bytes = if fault.is_some() { Vec::new() } else { bytes };
        RawFeature { index, offset, bytes, decoded: None, fault, transform: self.transform.clone(), layer: None }
    }

    fn step(&mut self) -> Result<Option<RawFeature>, ReadError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    if self.peek()? == Some(0xEF) {
                        self.skip_bom()?;
                    }
                    match self.skip_ws(false)? {
                        None => return Err(self.invalid(ProblemCode::JsonSyntax, "empty input: no GeoJSON text")),
                        Some(RS) => {
                            self.mode = Mode::RecordSeparated;
                            self.state = State::AfterText;
                        }
                        Some(b'{') => {
                            self.pos += 1;
                            self.top = TopLevel { offset: self.bytes_read() - 1, ..TopLevel::default() };
                            self.state = State::Members { need_comma: false };
                        }
                        Some(c) => {
                            return Err(self.invalid(
                                ProblemCode::NotAnObject,
                                format!("the root of a GeoJSON text must be an object, found {}", describe(c)),
                            ))
                        }
                    }
                }
                State::Members { need_comma } => {
                    match self.skip_ws(false)? {
                        Some(b'}') => {
                            self.pos += 1;
                            self.state = State::AfterText;
                            if let Some(f) = self.finish_top_level()? {
                                return Ok(Some(f));
                            }
                            continue;
                        }
                        None => {
                            return Err(self
                                .syntax("unexpected end of input inside the top-level object: the file is truncated"))
                        }
                        _ => {}
                    }
                    if need_comma {
                        self.expect(b',', "between members")?;
                    }
                    self.member()?;
                }
                State::Features { first } => {
                    match self.skip_ws(false)? {
                        Some(b']') if first => {
                            self.pos += 1;
                            self.state = State::Members { need_comma: true };
                            continue;
                        }
                        Some(b']') => {
                            self.pos += 1;
                            self.state = State::Members { need_comma: true };
                            continue;
                        }
                        None => return Err(self.syntax("unexpected end of input: the features array is not closed")),
                        _ => {}
                    }
                    if !first {
                        self.expect(b',', "between features")?;
                        if self.skip_ws(false)? == Some(b']') {
                            return Err(self.syntax("trailing comma in the features array"));
                        }
                    }
                    let offset = self.bytes_read();
                    let mut bytes = Vec::new();
                    let cut = self.cut_value(&mut bytes, self.opts.max_feature_bytes)?;
                    if cut.truncated.is_some() {
                        return Err(self.syntax("unexpected end of input inside a feature: the file is truncated"));
                    }
                    if bytes.is_empty() && !cut.too_large {
                        return Err(self.syntax("expected a feature in the features array"));
                    }
                    self.state = State::Features { first: false };
                    return Ok(Some(self.raw_feature(offset, bytes, &cut)));
                }
                State::AfterText => {
                    let rs = self.mode == Mode::RecordSeparated;
                    let Some(_) = self.skip_ws(rs)? else {
                        self.state = State::Done;
                        return Ok(None);
                    };
                    if self.mode == Mode::First {
                        self.mode = Mode::Lines;
                    }
                    let offset = self.bytes_read();
                    let mut bytes = Vec::new();
                    let cut = self.cut_value(&mut bytes, self.opts.max_feature_bytes)?;
                    if cut.truncated.is_some() {
                        self.resync()?;
                    } else if bytes.is_empty() && !cut.too_large {
                        // A stray delimiter: take it as a one-byte malformed text.
                        self.pos += 1;
                        let feature = self.raw_feature(
                            offset,
                            Vec::new(),
                            &Cut { truncated: Some("unexpected character between texts"), ..cut },
                        );
                        return Ok(Some(feature));
                    }
                    return Ok(Some(self.raw_feature(offset, bytes, &cut)));
                }
            }
        }
    }

    fn skip_bom(&mut self) -> io::Result<()> {
        for want in [0xEF, 0xBB, 0xBF] {
            if self.peek()? == Some(want) {
                self.pos += 1;
            }
        }
        Ok(())
    }

    /// Skips to the start of the next text after a malformed one.
    fn resync(&mut self) -> io::Result<()> {
        let stop = if self.mode == Mode::RecordSeparated { RS } else { b'\n' };
        while let Some(c) = self.peek()? {
            if c == stop {
                return Ok(());
            }
            self.pos += 1;
        }
        Ok(())
    }

    /// Reads one member of the top-level object; a `features` array switches to streaming.
    fn member(&mut self) -> Result<(), ReadError> {
        if self.skip_ws(false)? != Some(b'"') {
            return Err(self.syntax("expected a member name in double quotes"));
        }
        let mut raw_key = Vec::new();
        let cut = self.cut_value(&mut raw_key, 64 << 10)?;
        if cut.too_large || cut.truncated.is_some() {
            return Err(self.syntax("member name too long or not terminated"));
        }
        let key: String = serde_json::from_slice(&raw_key).map_err(|e| self.syntax(format!("bad member name: {e}")))?;
        self.expect(b':', "after a member name")?;
        if !self.top.keys.insert(key.clone()) {
            return Err(self.invalid(
                ProblemCode::DuplicateMember,
                format!("member {key:?} appears more than once in the top-level object, which makes it ambiguous"),
            ));
        }
        let value_start = self.skip_ws(false)?;
        if key == "features" && value_start == Some(b'[') && !self.top.has_features && self.mode == Mode::First {
            self.pos += 1;
            if let Some(Ok(ty)) = self.top.type_name() {
                if ty != "FeatureCollection" {
                    return Err(self.type_error(&ty));
                }
            }
            self.top.has_features = true;
            self.state = State::Features { first: true };
            return Ok(());
        }
        let mut raw = Vec::new();
        // Small members (type, crs, bbox) always fit; a single Feature's geometry obeys the limit.
        let cut = self.cut_value(&mut raw, self.opts.max_feature_bytes.max(64 << 10))?;
        if cut.too_large {
            return Err(
                self.invalid(ProblemCode::TooLarge, format!("member {key:?} is larger than the feature size limit"))
            );
        }
        if cut.truncated.is_some() {
            return Err(self.syntax(format!("unexpected end of input inside member {key:?}: the file is truncated")));
        }
        if raw.is_empty() {
            return Err(self.syntax(format!("expected a value for member {key:?}")));
        }
        let text = String::from_utf8(raw).map_err(|_| self.syntax(format!("member {key:?} is not valid UTF-8")))?;
        let value =
            RawValue::from_string(text).map_err(|e| self.syntax(format!("malformed value of member {key:?}: {e}")))?;
        if key == "crs" && !self.given_crs {
            let transform = parse_crs(value.get(), &*self.resolver)
                .map_err(|p| ReadError::Invalid { offset: self.top.offset, problem: p })?;
            if self.top.has_features && transform != CrsTransform::Identity {
                return Err(self.invalid(
                    ProblemCode::UnsupportedCrs,
                    "a crs member after the features cannot be applied while streaming: put it before \"features\" or reproject to WGS84",
                ));
            }
            self.transform = transform;
        }
        if key == "type" && self.top.has_features {
            match serde_json::from_str::<String>(value.get()) {
                Ok(ty) if ty == "FeatureCollection" => {}
                Ok(ty) => return Err(self.type_error(&ty)),
                Err(_) => return Err(self.invalid(ProblemCode::InvalidType, "\"type\" member must be a string")),
            }
        }
        // After the features only the members checked at the end are kept.
        if !self.top.has_features || matches!(key.as_str(), "type" | "bbox") {
            self.top.members.push((key, value));
        }
        self.state = State::Members { need_comma: true };
        Ok(())
    }

    fn type_error(&self, ty: &str) -> ReadError {
        let hint = if ty.eq_ignore_ascii_case("FeatureCollection") { " (types are case-sensitive)" } else { "" };
        self.invalid(
            ProblemCode::InvalidType,
            format!("expected type \"FeatureCollection\" for an object with a features array, found {ty:?}{hint}"),
        )
    }

    /// Checks a finished top-level object; a single Feature or Geometry becomes feature 0.
    fn finish_top_level(&mut self) -> Result<Option<RawFeature>, ReadError> {
        let top = std::mem::take(&mut self.top);
        let at = |problem: Problem| ReadError::Invalid { offset: top.offset, problem };
        if top.has_features {
            match top.type_name() {
                None => {
                    return Err(at(Problem::new(
                        ProblemCode::MissingType,
                        "the FeatureCollection has no \"type\" member",
                    )))
                }
                Some(Err(())) => {
                    return Err(at(Problem::new(ProblemCode::InvalidType, "\"type\" member must be a string")))
                }
                Some(Ok(_)) => {}
            }
            for forbidden in ["coordinates", "geometries", "geometry", "properties"] {
                if top.keys.contains(forbidden) {
                    return Err(at(Problem::new(
                        ProblemCode::ForbiddenMember,
                        format!("a FeatureCollection must not have a {forbidden:?} member (RFC 7946 §7.1)"),
                    )));
                }
            }
            if let Some(bbox) = top.get("bbox") {
                crate::feature::check_bbox(bbox.get()).map_err(&at)?;
            }
            return Ok(None);
        }
        if let Some(features) = top.get("features") {
            if top.type_name() == Some(Ok("FeatureCollection".into())) || top.get("type").is_none() {
                return Err(at(Problem::new(
                    ProblemCode::InvalidType,
                    format!("\"features\" member must be an array, found {}", json_kind(features.get())),
                )));
            }
        }
        if top.type_name() == Some(Ok("FeatureCollection".into())) {
            return Err(at(Problem::new(
                ProblemCode::MissingMember,
                "the FeatureCollection has no \"features\" member",
            )));
        }
        // A single Feature or Geometry: rebuild its text from the members.
        let mut text = String::from("{");
        for (i, (k, v)) in top.members.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(k).expect("strings serialise"));
            text.push(':');
            text.push_str(v.get());
        }
        text.push('}');
        let cut = Cut { too_large: text.len() > self.opts.max_feature_bytes, depth: 0, truncated: None };
        // A `crs` member of a single object was resolved as a top-level member: the feature
        // parser then leaves it alone.
        Ok(Some(self.raw_feature(top.offset, text.into_bytes(), &cut)))
    }
}

impl<R: Read> Iterator for GeoJsonReader<R> {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => None,
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

fn describe(c: u8) -> String {
    match c {
        b'[' => "an array".into(),
        b'"' => "a string".into(),
        b'-' | b'0'..=b'9' => "a number".into(),
        b't' | b'f' => "a boolean".into(),
        b'n' => "null".into(),
        c if c.is_ascii_graphic() => format!("'{}'", c as char),
        c => format!("byte 0x{c:02x}"),
    }
}

/// The JSON kind of a raw value, for messages.
pub fn json_kind(raw: &str) -> &'static str {
    match raw.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't') | Some(b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Vec<RawFeature>, Option<ReadError>) {
        let mut out = Vec::new();
        for item in GeoJsonReader::new(input, ReaderOptions::default()) {
            match item {
                Ok(f) => out.push(f),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn texts(fs: &[RawFeature]) -> Vec<String> {
        fs.iter().map(|f| String::from_utf8(f.bytes.clone()).unwrap()).collect()
    }

    #[test]
    fn feature_collection_streams_features() {
        let input = br#"{"type":"FeatureCollection","features":[{"type":"Feature","a":"]}"},
            {"type":"Feature","b":[1,{"c":2}]} ],"name":"x"}"#;
        let (fs, err) = read_all(input);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(texts(&fs), vec![r#"{"type":"Feature","a":"]}"}"#, r#"{"type":"Feature","b":[1,{"c":2}]}"#]);
        assert_eq!(fs[1].index, 1);
    }

    #[test]
    fn sequences_and_single_objects() {
        let (fs, err) = read_all(b"\x1e{\"type\":\"Point\"}\n\x1e{\"a\":\"tr\n\x1e{\"a\":1}\n");
        assert!(err.is_none());
        assert_eq!(texts(&fs), vec!["{\"type\":\"Point\"}", "", "{\"a\":1}"]);
        assert_eq!(fs[1].fault.as_ref().unwrap().code, ProblemCode::JsonSyntax);
        let (fs, err) = read_all(b"{\"type\":\"Feature\"}\n{\"type\":\"Feature\",\"id\":2}\n\n");
        assert!(err.is_none());
        assert_eq!(fs.len(), 2);
        let (fs, _) = read_all(b"\xef\xbb\xbf {\"type\": \"Point\", \"coordinates\": [1, 2]}");
        assert_eq!(texts(&fs), vec![r#"{"type":"Point","coordinates":[1, 2]}"#]);
    }

    #[test]
    fn malformed_lines_are_faults_not_fatal() {
        let (fs, err) = read_all(b"{\"type\":\"Feature\"}\n{\"type\":\"Fea\n{\"type\":\"Feature\"}\n");
        assert!(err.is_none(), "{err:?}");
        assert_eq!(fs.len(), 3);
        assert!(fs[1].fault.is_some());
        assert!(fs[2].fault.is_none());
    }

    #[test]
    fn fatal_structure_errors() {
        for (input, code) in [
            (&b"\"just a string\""[..], ProblemCode::NotAnObject),
            (b"[1,2]", ProblemCode::NotAnObject),
            (b"", ProblemCode::JsonSyntax),
            (b"{\"type\":\"featurecollection\",\"features\":[]}", ProblemCode::InvalidType),
            (b"{\"type\":\"FeatureCollection\"}", ProblemCode::MissingMember),
            (b"{\"type\":\"FeatureCollection\",\"features\":{}}", ProblemCode::InvalidType),
            (b"{\"type\":\"FeatureCollection\",\"features\":[{}", ProblemCode::JsonSyntax),
            (b"{\"type\":\"FeatureCollection\",\"features\":[],\"properties\":{}}", ProblemCode::ForbiddenMember),
            (b"{\"features\":[], \"type\":\"FeatureCollection\", \"bbox\":[1,2,3]}", ProblemCode::InvalidBbox),
            (b"{\"type\":\"FeatureCollection\" \"features\":[]}", ProblemCode::JsonSyntax),
            (b"{\"type\":\"FeatureCollection\",\"type\":\"Feature\",\"features\":[]}", ProblemCode::DuplicateMember),
        ] {
            let (_, err) = read_all(input);
            let err = err.unwrap_or_else(|| panic!("no error for {}", String::from_utf8_lossy(input)));
            assert_eq!(err.code(), Some(code), "{err} for {}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn limits_give_faults() {
        let deep =
            format!("{{\"type\":\"FeatureCollection\",\"features\":[{}{}]}}", "[".repeat(100_000), "]".repeat(100_000));
        let (fs, err) = read_all(deep.as_bytes());
        assert!(err.is_none());
        assert_eq!(fs[0].fault.as_ref().unwrap().code, ProblemCode::TooDeep);
        let opts = ReaderOptions { max_feature_bytes: 10, ..ReaderOptions::default() };
        let big = b"{\"type\":\"FeatureCollection\",\"features\":[{\"a\":\"0123456789\"},{}]}";
        let fs: Vec<_> = GeoJsonReader::new(&big[..], opts).collect::<Result<_, _>>().unwrap();
        assert_eq!(fs[0].fault.as_ref().unwrap().code, ProblemCode::TooLarge);
        assert!(fs[1].fault.is_none());
    }

    #[test]
    fn crs_before_features_sets_the_transform() {
        let input =
            br#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:3857"}},"features":[{}]}"#;
        let (fs, err) = read_all(input);
        assert!(err.is_none());
        assert_eq!(fs[0].transform, CrsTransform::WebMercator);
        let bad =
            br#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:2056"}},"features":[{}]}"#;
        assert_eq!(read_all(bad).1.unwrap().code(), Some(ProblemCode::UnsupportedCrs));
    }

    #[test]
    fn small_buffers_do_not_change_the_result() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(3);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let input = br#"{"type":"FeatureCollection","features":[{"a":"x\"]y"},{"b":[[1,2],[3,4]]}]}"#;
        let fs: Vec<_> =
            GeoJsonReader::new(Trickle(input), ReaderOptions::default()).collect::<Result<_, _>>().unwrap();
        assert_eq!(texts(&fs), vec![r#"{"a":"x\"]y"}"#, r#"{"b":[[1,2],[3,4]]}"#]);
    }
}
