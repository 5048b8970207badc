//! CQL2 filters (OGC API – Features Part 3): text or JSON parsed by the `cql2` crate, then
//! translated into a [`Filter`] checked against a dataset's properties, which each store
//! renders as SQL with every value a bound parameter (the crate's own SQL output splices
//! literals into the text, so it is not used).
//!
//! What a filter may say, and what it means on both stores:
//! - comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`), `LIKE`, `BETWEEN`, `IN` and `IS NULL` of a
//!   property with literals of its type: text with strings (ordered by code point), numbers
//!   with numbers, booleans with booleans, dates with `DATE(…)` (or a `YYYY-MM-DD` string) and
//!   date-times with `TIMESTAMP(…)` (or an RFC 3339 string), to the millisecond they are
//!   stored with;
//! - `AND`, `OR`, `NOT`, the literals `true` / `false`, and a boolean property alone (`capital`
//!   for `capital = true`);
//! - the spatial functions `S_INTERSECTS`, `S_DISJOINT`, `S_EQUALS`, `S_TOUCHES`, `S_WITHIN`,
//!   `S_CONTAINS`, `S_OVERLAPS`, `S_CROSSES` of the feature geometry (the property
//!   [`GEOMETRY_PROPERTY`]) with a WKT, GeoJSON or `BBOX` literal, in any CRS features are
//!   served in (`filter-crs`): a literal in a projected CRS has its segments densified before
//!   it is brought to longitude/latitude, so that it keeps its shape;
//! - comparisons of two properties of one type (numbers with numbers whatever their width);
//! - every temporal function of CQL2 (`T_AFTER`, `T_BEFORE`, `T_CONTAINS`, `T_DISJOINT`,
//!   `T_DURING`, `T_EQUALS`, `T_FINISHEDBY`, `T_FINISHES`, `T_INTERSECTS`, `T_MEETS`,
//!   `T_METBY`, `T_OVERLAPPEDBY`, `T_OVERLAPS`, `T_STARTEDBY`, `T_STARTS`) on date or
//!   date-time properties: each operand an instant (a property or a literal) or an `INTERVAL`
//!   whose ends are properties, literals or `'..'` (open). An instant is the interval that
//!   starts and ends at it, so every function applies to instants as well; an open start lies
//!   before every instant and an open end after.
//!
//! A property without one type (mixed or nested values, the overflow properties) can only be
//! tested with `IS NULL`, which also holds for a JSON `null`. Comparisons follow SQL: a
//! property without a value satisfies neither a comparison nor its `NOT`.

use geo::{Geometry, Intersects, MapCoordsInPlace, Relate, Validation};
use geoflow_core::geometry::Pos;
use geoflow_core::schema::FieldType;
use geoflow_core::served_crs::ServedCrs;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

/// The name a filter gives the feature geometry.
pub const GEOMETRY_PROPERTY: &str = "geometry";

/// Longest filter text taken: a URL holds no more anyway, and it bounds the parser's work.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;

/// Deepest nesting of brackets taken, so that no filter can exhaust the parser's stack, nor
/// its SQL the depth SQLite parses (1000 levels).
const MAX_NESTING: usize = 32;

/// Most conditions (comparisons, spatial tests…) in one filter: each binds parameters, and
/// SQLite takes at most 32 766 of them.
pub const MAX_TERMS: usize = 1000;

/// The stack the parser runs on: its recursion follows operators as well as brackets, and
/// a long chain of `NOT`s within [`MAX_FILTER_BYTES`] must not overflow it.
const PARSER_STACK_BYTES: usize = 32 << 20;

/// The encodings of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterLang {
    Text,
    Json,
}

impl FilterLang {
    /// The names a request may give (`filter-lang`); `cql-text` is the draft standard's name,
    /// which GDAL 3.6 sends.
    pub const NAMES: [&'static str; 3] = ["cql2-text", "cql2-json", "cql-text"];

    pub fn from_name(name: &str) -> Option<FilterLang> {
        match name {
            "cql2-text" | "cql-text" => Some(FilterLang::Text),
            "cql2-json" => Some(FilterLang::Json),
            _ => None,
        }
    }
}

/// Segments of a projected geometry literal are cut into this many pieces (at most) across
/// its envelope before the literal is brought to longitude/latitude.
const DENSIFY_STEPS: f64 = 64.0;

/// A filter checked against a dataset's properties.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Constant(bool),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// The property `key` compared with a literal of its type.
    Compare {
        key: String,
        op: Comparison,
        value: Literal,
    },
    /// A text property matching a CQL2 pattern: `%` any characters, `_` one, `\` escapes.
    Like {
        key: String,
        pattern: String,
    },
    /// A text property with its case and/or accents folded away (CQL2 `CASEI`, `ACCENTI`),
    /// compared with a literal or matched against a pattern, folded alike when wrapped alike.
    Insensitive {
        key: String,
        fold: Fold,
        test: TextTest,
    },
    IsNull {
        key: String,
    },
    /// Two properties compared (their types checked by [`check_comparable`]).
    CompareProperties {
        left: String,
        op: Comparison,
        right: String,
    },
    /// The feature geometry in `relation` to a geometry (WGS84 longitude/latitude).
    Spatial {
        relation: Relation,
        geometry: Geometry<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    pub fn sql(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    fn from_op(op: &str) -> Option<Comparison> {
        Some(match op {
            "=" => Comparison::Eq,
            "<>" => Comparison::Ne,
            "<" => Comparison::Lt,
            "<=" => Comparison::Le,
            ">" => Comparison::Gt,
            ">=" => Comparison::Ge,
            _ => return None,
        })
    }

    /// Whether `a op b` holds for operands ordered as `ordering` says (`a` against `b`).
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Eq => ordering == Equal,
            Comparison::Ne => ordering != Equal,
            Comparison::Lt => ordering == Less,
            Comparison::Le => ordering != Greater,
            Comparison::Gt => ordering == Greater,
            Comparison::Ge => ordering != Less,
        }
    }

    /// The comparison with its operands swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> Comparison {
        match self {
            Comparison::Lt => Comparison::Gt,
            Comparison::Le => Comparison::Ge,
            Comparison::Gt => Comparison::Lt,
            Comparison::Ge => Comparison::Le,
            same => same,
        }
    }
}

/// A literal of a property's type.
/// What [`Filter::Insensitive`] folds away before it compares: case (`CASEI`), accents
/// (`ACCENTI`), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fold {
    pub case: bool,
    pub accents: bool,
}

impl Fold {
    pub const NONE: Fold = Fold { case: false, accents: false };

    /// `text` folded: accents first, as the marks Unicode decomposition (NFD) separates from
    /// their letters in the Combining Diacritical Marks block (U+0300–U+036F) dropped, then
    /// case, by Unicode's full lowercase mapping (as ICU's root locale lowers). Each store
    /// folds its values the same way (see their filter modules).
    pub fn apply(self, text: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        let unaccented: std::borrow::Cow<'_, str> = if self.accents {
            text.nfd().filter(|c| !COMBINING_ACCENTS.contains(c)).collect::<String>().into()
        } else {
            text.into()
        };
        if self.case {
            unaccented.to_lowercase()
        } else {
            unaccented.into_owned()
        }
    }
}

/// The marks [`Fold`] drops with `accents`.
pub const COMBINING_ACCENTS: std::ops::RangeInclusive<char> = '\u{300}'..='\u{36f}';

/// What [`Filter::Insensitive`] tests its folded property with: a comparison with a literal,
/// or a CQL2 `LIKE` pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum TextTest {
    Compare(Comparison, String),
    Like(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Date(Date),
    /// Always a whole number of milliseconds, as date-times are stored.
    Timestamp(OffsetDateTime),
}

impl Literal {
    /// A number as an `i64` when it is one exactly, so that integer columns compare exactly.
    pub fn as_integer(f: f64) -> Option<i64> {
        // 2^63 is the first double beyond i64.
        (f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
            .then_some(f as i64)
    }

    fn describe(&self) -> &'static str {
        match self {
            Literal::Text(_) => "a string",
            Literal::Number(_) => "a number",
            Literal::Bool(_) => "a boolean",
            Literal::Date(_) => "a date",
            Literal::Timestamp(_) => "a timestamp",
        }
    }
}

/// The spatial relations of the DE-9IM that CQL2 names, as PostGIS and `geo` decide them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Intersects,
    Disjoint,
    Equals,
    Touches,
    Within,
    Contains,
    Overlaps,
    Crosses,
}

impl Relation {
    pub const ALL: [Relation; 8] = [
        Relation::Intersects,
        Relation::Disjoint,
        Relation::Equals,
        Relation::Touches,
        Relation::Within,
        Relation::Contains,
        Relation::Overlaps,
        Relation::Crosses,
    ];

    /// The relation's name (`s_` and this in CQL2, `ST_` and this in PostGIS).
    pub fn name(self) -> &'static str {
        match self {
            Relation::Intersects => "intersects",
            Relation::Disjoint => "disjoint",
            Relation::Equals => "equals",
            Relation::Touches => "touches",
            Relation::Within => "within",
            Relation::Contains => "contains",
            Relation::Overlaps => "overlaps",
            Relation::Crosses => "crosses",
        }
    }

    pub fn from_name(name: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The relation with its operands swapped.
    fn converse(self) -> Relation {
        match self {
            Relation::Within => Relation::Contains,
            Relation::Contains => Relation::Within,
            same => same,
        }
    }

    /// Whether `a` and `b` must share a point, so that their envelopes must overlap (an index
    /// on envelopes can then find the candidates).
    pub fn needs_contact(self) -> bool {
        self != Relation::Disjoint
    }

    /// Whether `a` stands in this relation to `b`.
    pub fn holds(self, a: &Geometry<f64>, b: &Geometry<f64>) -> bool {
        if self == Relation::Intersects {
            return a.intersects(b);
        }
        let matrix = a.relate(b);
        match self {
            Relation::Intersects => matrix.is_intersects(),
            Relation::Disjoint => matrix.is_disjoint(),
            Relation::Equals => matrix.is_equal_topo(),
            Relation::Touches => matrix.is_touches(),
            Relation::Within => matrix.is_within(),
            Relation::Contains => matrix.is_contains(),
            Relation::Overlaps => matrix.is_overlaps(),
            Relation::Crosses => matrix.is_crosses(),
        }
    }
}

/// Why a filter is refused: always the client's fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("is not valid {lang}: {reason}")]
    Syntax { lang: &'static str, reason: String },
    #[error("is longer than {MAX_FILTER_BYTES} bytes")]
    TooLong,
    #[error("nests brackets deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("has more than {MAX_TERMS} conditions")]
    TooLarge,
    #[error("names no property {0:?} of the collection (its queryables list them)")]
    UnknownProperty(String),
    #[error("compares property {key:?} ({holds}) with {given}")]
    Mismatch { key: String, holds: &'static str, given: String },
    #[error("tests property {0:?}, which has no one type (mixed or nested values), with more than IS NULL")]
    Untyped(String),
    #[error("uses {0}, which is not supported")]
    Unsupported(String),
    #[error("has {0}")]
    Invalid(String),
}

/// What a type's values are called in messages.
fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "booleans",
        FieldType::Integer | FieldType::WideInteger | FieldType::Real => "numbers",
        FieldType::Date => "dates",
        FieldType::DateTime => "date-times",
        FieldType::Text => "strings",
        FieldType::Json | FieldType::Null => "values of no one type",
    }
}

/// Whether a literal may be compared with a property of type `ty`: the one rule both the
/// translation and each store's rendering apply (a store's layout may have changed since).
pub fn check_literal(key: &str, ty: FieldType, value: &Literal) -> Result<(), FilterError> {
    let fits = match ty {
        FieldType::Json | FieldType::Null => return Err(FilterError::Untyped(key.to_string())),
        FieldType::Text => matches!(value, Literal::Text(_)),
        FieldType::Integer | FieldType::WideInteger | FieldType::Real => matches!(value, Literal::Number(_)),
        FieldType::Boolean => matches!(value, Literal::Bool(_)),
        FieldType::Date => matches!(value, Literal::Date(_)),
        FieldType::DateTime => matches!(value, Literal::Timestamp(_)),
    };
    if matches!(value, Literal::Text(t) if t.contains('\0')) {
        return Err(nul_text());
    }
    if fits {
        Ok(())
    } else {
        Err(FilterError::Mismatch { key: key.to_string(), holds: type_name(ty), given: value.describe().to_string() })
    }
}

/// No stored text holds a NUL (PostgreSQL refuses one): a literal with one is the client's
/// mistake, said before the database would refuse it.
fn nul_text() -> FilterError {
    FilterError::Invalid("a string with a NUL character, which no stored value holds".into())
}

/// Whether two properties may be compared: the same type, or numbers of any width.
pub fn check_comparable(left: (&str, FieldType), right: (&str, FieldType)) -> Result<(), FilterError> {
    let numeric = |ty| matches!(ty, FieldType::Integer | FieldType::WideInteger | FieldType::Real);
    for (key, ty) in [left, right] {
        if matches!(ty, FieldType::Json | FieldType::Null) {
            return Err(FilterError::Untyped(key.to_string()));
        }
    }
    if left.1 == right.1 || (numeric(left.1) && numeric(right.1)) {
        Ok(())
    } else {
        Err(FilterError::Mismatch {
            key: left.0.to_string(),
            holds: type_name(left.1),
            given: format!("the property {:?} ({})", right.0, type_name(right.1)),
        })
    }
}

/// Whether `LIKE` applies to a property of type `ty`.
pub fn check_like(key: &str, ty: FieldType) -> Result<(), FilterError> {
    match ty {
        FieldType::Text => Ok(()),
        FieldType::Json | FieldType::Null => Err(FilterError::Untyped(key.to_string())),
        _ => Err(FilterError::Mismatch { key: key.to_string(), holds: type_name(ty), given: "a LIKE pattern".into() }),
    }
}

/// A timestamp as date-times are stored: UTC to the millisecond (`2024-01-02T03:04:05.006Z`).
pub fn timestamp_text(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&format).unwrap_or_default()
}

/// A date as dates are stored (`2024-01-02`).
pub fn date_text(d: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    d.format(&format).unwrap_or_default()
}

/// `pattern` (CQL2 `LIKE`) as a SQLite `GLOB` pattern, which is case-sensitive as `LIKE` is in
/// PostgreSQL: `%` → `*`, `_` → `?`, escaped and GLOB-special characters in brackets.
pub fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '%' => {
                out.push('*');
                continue;
            }
            '_' => {
                out.push('?');
                continue;
            }
            // A trailing escape was refused when the filter was read; alone it is itself.
            '\\' => chars.next().unwrap_or('\\'),
            c => c,
        };
        match literal {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(literal);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

impl Filter {
    /// Parses `text` and checks it against the properties `type_of` knows (by original key);
    /// geometry literals are in `crs`.
    pub fn parse(
        text: &str,
        lang: FilterLang,
        crs: &ServedCrs,
        type_of: &(dyn Fn(&str) -> Option<FieldType> + Sync),
    ) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(FilterError::TooLong);
        }
        if nesting(text, lang) > MAX_NESTING {
            return Err(FilterError::TooDeep);
        }
        let translator = Translator { type_of, crs };
        let lang_name = match lang {
            FilterLang::Text => "cql2-text",
            FilterLang::Json => "cql2-json",
        };
        let text = match lang {
            FilterLang::Text => rewrite_ilike(text)?,
            FilterLang::Json => std::borrow::Cow::Borrowed(text),
        };
        let text = text.as_ref();
        // The parser recurses and its grammar code asserts what it expects: it runs on a
        // thread with a stack of its own, and a panic is a refused filter, not a failed request.
        std::thread::scope(|scope| {
            let parse = std::thread::Builder::new()
                .name("cql2-parse".into())
                .stack_size(PARSER_STACK_BYTES)
                .spawn_scoped(scope, || {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let expr = match lang {
                            FilterLang::Text => cql2::parse_text(text).map_err(|e| e.to_string()),
                            FilterLang::Json => cql2::parse_json(text).map_err(|e| e.to_string()),
                        }
                        .map_err(|reason| FilterError::Syntax { lang: lang_name, reason })?;
                        let filter = translator.predicate(expr)?;
                        if filter.terms() > MAX_TERMS {
                            return Err(FilterError::TooLarge);
                        }
                        Ok(filter)
                    }))
                });
            match parse.map(|handle| handle.join()) {
                Ok(Ok(Ok(result))) => result,
                Ok(_) => Err(FilterError::Syntax { lang: lang_name, reason: "the parser failed on it".into() }),
                Err(e) => {
                    Err(FilterError::Syntax { lang: lang_name, reason: format!("the parser could not start: {e}") })
                }
            }
        })
    }

    /// The conditions the filter holds (its leaves).
    pub fn terms(&self) -> usize {
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().map(Filter::terms).sum(),
            Filter::Not(inner) => inner.terms(),
            _ => 1,
        }
    }

    /// Every property key the filter names.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        self.visit_keys(&mut keys);
        keys
    }

    fn visit_keys<'a>(&'a self, keys: &mut Vec<&'a str>) {
        match self {
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| p.visit_keys(keys)),
            Filter::Not(inner) => inner.visit_keys(keys),
            Filter::Compare { key, .. }
            | Filter::Like { key, .. }
            | Filter::Insensitive { key, .. }
            | Filter::IsNull { key } => keys.push(key),
            Filter::CompareProperties { left, right, .. } => keys.extend([left.as_str(), right.as_str()]),
            Filter::Constant(_) | Filter::Spatial { .. } => {}
        }
    }
}

/// A token of CQL2 text, as far as [`rewrite_ilike`] needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Word,
    QuotedName,
    String,
    Other,
}

/// The tokens of CQL2 text (blanks left out), with their byte ranges.
fn tokens(text: &str) -> Vec<(Token, std::ops::Range<usize>)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let token = match b[i] {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            quote @ (b'\'' | b'"') => {
                i += 1;
                // A doubled quote is one quote character inside.
                while i < b.len() {
                    if b[i] == quote && b.get(i + 1) != Some(&quote) {
                        i += 1;
                        break;
                    }
                    i += if b[i] == quote { 2 } else { 1 };
                }
                if quote == b'"' {
                    Token::QuotedName
                } else {
                    Token::String
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b':' | b'.') || b[i] >= 0x80)
                {
                    i += 1;
                }
                Token::Word
            }
            _ => {
                i += 1;
                Token::Other
            }
        };
        out.push((token, start..i));
    }
    out
}

/// `text` with each `property [NOT] ILIKE 'pattern'` as CQL2 writes it, `CASEI(property)
/// [NOT] LIKE CASEI('pattern')`. ILIKE is no CQL2 keyword, yet clients send it: GDAL
/// translates its own case-insensitive LIKE so.
fn rewrite_ilike(text: &str) -> Result<std::borrow::Cow<'_, str>, FilterError> {
    let tokens = tokens(text);
    let is_word =
        |i: usize, word: &str| tokens[i].0 == Token::Word && text[tokens[i].1.clone()].eq_ignore_ascii_case(word);
    let refuse = || FilterError::Syntax {
        lang: "cql2-text",
        reason: "ILIKE takes a property on its left and a string on its right; \
                 otherwise write CASEI(…) LIKE CASEI(…)"
            .into(),
    };
    let mut edits = Vec::new();
    for i in (0..tokens.len()).filter(|&i| is_word(i, "ilike")) {
        let pattern = tokens.get(i + 1).filter(|(t, _)| *t == Token::String).ok_or_else(refuse)?;
        let mut left = i.checked_sub(1).ok_or_else(refuse)?;
        if is_word(left, "not") {
            left = left.checked_sub(1).ok_or_else(refuse)?;
        }
        let (token, property) = &tokens[left];
        if !matches!(token, Token::Word | Token::QuotedName) {
            return Err(refuse());
        }
        edits.push((property.clone(), format!("CASEI({})", &text[property.clone()])));
        edits.push((tokens[i].1.clone(), "LIKE".to_string()));
        edits.push((pattern.1.clone(), format!("CASEI({})", &text[pattern.1.clone()])));
    }
    if edits.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 12 * edits.len());
    let mut at = 0;
    for (range, replacement) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    Ok(std::borrow::Cow::Owned(out))
}

/// `parts` joined by `op` (`AND`, `OR`) as a balanced tree, so that a long list adds a few
/// levels to the SQL's depth rather than one per part.
pub fn balanced(mut parts: Vec<String>, op: &str) -> String {
    if parts.len() == 1 {
        // Each part is delimited already (a call, brackets, or NOT of one).
        return parts.remove(0);
    }
    if parts.len() <= 2 {
        return format!("({})", parts.join(&format!(" {op} ")));
    }
    let right = parts.split_off(parts.len() / 2);
    format!("({} {op} {})", balanced(parts, op), balanced(right, op))
}

/// The deepest nesting of brackets outside string literals (JSON strings escape with `\`,
/// CQL2 text strings by doubling their quote, which toggles twice).
fn nesting(text: &str, lang: FilterLang) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && lang == FilterLang::Json {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' => quote = Some('"'),
            '\'' if lang == FilterLang::Text => quote = Some('\''),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `parts` all holding, with constants folded away.
fn all(parts: Vec<Filter>) -> Filter {
    if parts.contains(&Filter::Constant(false)) {
        return Filter::Constant(false);
    }
    let mut parts = distinct(parts.into_iter().filter(|p| *p != Filter::Constant(true)));
    match parts.len() {
        0 => Filter::Constant(true),
        1 => parts.remove(0),
        _ => Filter::And(parts),
    }
}

/// Any of `parts` holding, with constants folded away.
fn any(parts: Vec<Filter>) -> Filter {
    if parts.contains(&Filter::Constant(true)) {
        return Filter::Constant(true);
    }
    let mut parts = distinct(parts.into_iter().filter(|p| *p != Filter::Constant(false)));
    match parts.len() {
        0 => Filter::Constant(false),
        1 => parts.remove(0),
        _ => Filter::Or(parts),
    }
}

/// `parts` without repeats, in their order.
fn distinct(parts: impl Iterator<Item = Filter>) -> Vec<Filter> {
    let mut unique: Vec<Filter> = Vec::new();
    for part in parts {
        if !unique.contains(&part) {
            unique.push(part);
        }
    }
    unique
}

/// `NOT` of a filter; a double negation cancels, so chains of `NOT` stay shallow.
fn negate(f: Filter) -> Filter {
    match f {
        Filter::Not(inner) => *inner,
        Filter::Constant(b) => Filter::Constant(!b),
        f => Filter::Not(Box::new(f)),
    }
}

/// What an expression is, in messages.
fn describe(e: &cql2::Expr) -> String {
    use cql2::Expr;
    match e {
        Expr::Operation { op, .. } => format!("the operation {op:?}"),
        Expr::Interval { .. } => "an interval".into(),
        Expr::Timestamp { .. } => "a timestamp".into(),
        Expr::Date { .. } => "a date".into(),
        Expr::Property { property } => format!("the property {property:?}"),
        Expr::BBox { .. } => "a bbox".into(),
        Expr::Float(_) => "a number".into(),
        Expr::Literal(_) => "a string".into(),
        Expr::Bool(_) => "a boolean".into(),
        Expr::Array(_) => "an array".into(),
        Expr::Geometry(_) => "a geometry".into(),
        Expr::Null => "null".into(),
    }
}

/// Translates the parser's expressions, checking each property against the dataset.
struct Translator<'a> {
    type_of: &'a (dyn Fn(&str) -> Option<FieldType> + Sync),
    /// The CRS of geometry literals.
    crs: &'a ServedCrs,
}

impl Translator<'_> {
    fn predicate(&self, e: cql2::Expr) -> Result<Filter, FilterError> {
        use cql2::Expr;
        match e {
            Expr::Bool(b) => Ok(Filter::Constant(b)),
            // A boolean property alone holds when it is true.
            Expr::Property { property } if (self.type_of)(&property) == Some(FieldType::Boolean) => {
                Ok(Filter::Compare { key: property, op: Comparison::Eq, value: Literal::Bool(true) })
            }
            Expr::Operation { op, args } => self.operation(&op, args.into_iter().map(|a| *a).collect()),
            other => Err(FilterError::Invalid(format!("{} where a condition belongs", describe(&other)))),
        }
    }

    fn operation(&self, op: &str, args: Vec<cql2::Expr>) -> Result<Filter, FilterError> {
        match op {
            "and" => Ok(Filter::And(args.into_iter().map(|a| self.predicate(a)).collect::<Result<_, _>>()?)),
            "or" => Ok(Filter::Or(args.into_iter().map(|a| self.predicate(a)).collect::<Result<_, _>>()?)),
            "not" => {
                let [inner] = exactly(op, args)?;
                Ok(negate(self.predicate(inner)?))
            }
            "like" => self.like(args),
            "between" => {
                let [value, low, high] = exactly(op, args)?;
                let key = self.property(value, op)?;
                Ok(Filter::And(vec![
                    self.compare(&key, Comparison::Ge, low)?,
                    self.compare(&key, Comparison::Le, high)?,
                ]))
            }
            "in" => {
                let [value, list] = exactly(op, args)?;
                let cql2::Expr::Array(items) = list else {
                    return Err(FilterError::Invalid(format!("IN with {} instead of a list", describe(&list))));
                };
                if is_folded(&value) {
                    let alternatives = items.into_iter().map(|i| self.insensitive(Comparison::Eq, value.clone(), *i));
                    return Ok(Filter::Or(alternatives.collect::<Result<_, _>>()?));
                }
                let key = self.property(value, op)?;
                let alternatives = items.into_iter().map(|i| self.compare(&key, Comparison::Eq, *i));
                Ok(Filter::Or(alternatives.collect::<Result<_, _>>()?))
            }
            "isNull" => {
                let [value] = exactly(op, args)?;
                let key = self.property(value, op)?;
                Ok(Filter::IsNull { key })
            }
            op => {
                if let Some(comparison) = Comparison::from_op(op) {
                    return self.comparison(comparison, args);
                }
                if let Some(relation) = op.strip_prefix("s_").and_then(Relation::from_name) {
                    return self.spatial(relation, args);
                }
                if let Some(temporal) = op.strip_prefix("t_") {
                    // CQL2 JSON spells some in camel case (`t_metBy`), the text parser does not.
                    return self.temporal(&temporal.to_ascii_lowercase(), args);
                }
                Err(FilterError::Unsupported(format!("the operator {op:?}")))
            }
        }
    }

    /// The key of a property operand, which the dataset must have.
    fn property(&self, e: cql2::Expr, op: &str) -> Result<String, FilterError> {
        match e {
            cql2::Expr::Property { property } => {
                (self.type_of)(&property).ok_or(FilterError::UnknownProperty(property.clone()))?;
                Ok(property)
            }
            other => Err(FilterError::Unsupported(format!("{op} of {} rather than of a property", describe(&other)))),
        }
    }

    fn comparison(&self, op: Comparison, args: Vec<cql2::Expr>) -> Result<Filter, FilterError> {
        use cql2::Expr;
        let [a, b] = exactly(op.sql(), args)?;
        if is_folded(&a) || is_folded(&b) {
            return self.insensitive(op, a, b);
        }
        match (a, b) {
            (a @ Expr::Property { .. }, b @ Expr::Property { .. }) => {
                let (left, right) = (self.property(a, op.sql())?, self.property(b, op.sql())?);
                check_comparable((&left, self.type_of(&left)?), (&right, self.type_of(&right)?))?;
                Ok(Filter::CompareProperties { left, op, right })
            }
            (p @ Expr::Property { .. }, value) => {
                let key = self.property(p, op.sql())?;
                self.compare(&key, op, value)
            }
            (value, p @ Expr::Property { .. }) => {
                let key = self.property(p, op.sql())?;
                self.compare(&key, op.flipped(), value)
            }
            _ => Err(FilterError::Unsupported("a comparison without a property".into())),
        }
    }

    fn compare(&self, key: &str, op: Comparison, value: cql2::Expr) -> Result<Filter, FilterError> {
        let value = self.literal(key, value)?;
        Ok(Filter::Compare { key: key.to_string(), op, value })
    }

    fn type_of(&self, key: &str) -> Result<FieldType, FilterError> {
        (self.type_of)(key).ok_or_else(|| FilterError::UnknownProperty(key.to_string()))
    }

    /// A literal for the property `key`, of its type: strings stand for dates and date-times
    /// where the property holds them (clients such as GDAL send them so).
    fn literal(&self, key: &str, e: cql2::Expr) -> Result<Literal, FilterError> {
        use cql2::Expr;
        let ty = self.type_of(key)?;
        let literal = match e {
            Expr::Literal(s) if ty == FieldType::Date => Literal::Date(parse_date(&s)?),
            Expr::Literal(s) if ty == FieldType::DateTime => Literal::Timestamp(parse_timestamp(&s)?),
            Expr::Literal(s) => Literal::Text(s),
            Expr::Float(f) if f.is_finite() => Literal::Number(f),
            Expr::Bool(b) => Literal::Bool(b),
            Expr::Date { date } => match *date {
                Expr::Literal(s) => Literal::Date(parse_date(&s)?),
                other => return Err(FilterError::Invalid(format!("DATE of {}", describe(&other)))),
            },
            Expr::Timestamp { timestamp } => match *timestamp {
                Expr::Literal(s) => Literal::Timestamp(parse_timestamp(&s)?),
                other => return Err(FilterError::Invalid(format!("TIMESTAMP of {}", describe(&other)))),
            },
            other => {
                return Err(FilterError::Mismatch {
                    key: key.to_string(),
                    holds: type_name(ty),
                    given: describe(&other),
                })
            }
        };
        check_literal(key, ty, &literal)?;
        Ok(literal)
    }

    fn like(&self, args: Vec<cql2::Expr>) -> Result<Filter, FilterError> {
        let [value, pattern] = exactly("like", args)?;
        if is_folded(&value) || is_folded(&pattern) {
            let (key, fold) = self.folded_property(value, "LIKE")?;
            let pattern = check_pattern(self.folded_literal(pattern, "LIKE")?)?;
            return Ok(Filter::Insensitive { key, fold, test: TextTest::Like(pattern) });
        }
        let key = self.property(value, "LIKE")?;
        check_like(&key, self.type_of(&key)?)?;
        let cql2::Expr::Literal(pattern) = pattern else {
            return Err(FilterError::Invalid(format!("LIKE with {} as its pattern", describe(&pattern))));
        };
        Ok(Filter::Like { key, pattern: check_pattern(pattern)? })
    }

    /// A comparison of a property and a literal of which one or both are wrapped in `CASEI`
    /// or `ACCENTI`.
    fn insensitive(&self, op: Comparison, a: cql2::Expr, b: cql2::Expr) -> Result<Filter, FilterError> {
        let (property, literal, op) = if is_property(&b) { (b, a, op.flipped()) } else { (a, b, op) };
        let (key, fold) = self.folded_property(property, op.sql())?;
        let value = self.folded_literal(literal, op.sql())?;
        Ok(Filter::Insensitive { key, fold, test: TextTest::Compare(op, value) })
    }

    /// A text property under any `CASEI` and `ACCENTI` wrapped round it, and what they fold.
    fn folded_property(&self, e: cql2::Expr, context: &str) -> Result<(String, Fold), FilterError> {
        match unwrapped(e)? {
            (cql2::Expr::Property { property }, fold) => {
                let ty = self.type_of(&property)?;
                if ty != FieldType::Text {
                    let given = if fold == Fold::NONE { context.to_string() } else { "CASEI or ACCENTI".into() };
                    return Err(FilterError::Mismatch { key: property, holds: type_name(ty), given });
                }
                Ok((property, fold))
            }
            (other, _) => Err(not_text(context, &other)),
        }
    }

    /// A string literal as the `CASEI` and `ACCENTI` wrapped round it fold it.
    fn folded_literal(&self, e: cql2::Expr, context: &str) -> Result<String, FilterError> {
        match unwrapped(e)? {
            (cql2::Expr::Literal(text), _) if text.contains('\0') => Err(nul_text()),
            (cql2::Expr::Literal(text), fold) => Ok(fold.apply(&text)),
            (other, _) => Err(not_text(context, &other)),
        }
    }

    fn spatial(&self, relation: Relation, args: Vec<cql2::Expr>) -> Result<Filter, FilterError> {
        use cql2::Expr;
        let [a, b] = exactly(relation.name(), args)?;
        let is_geometry = |e: &Expr| matches!(e, Expr::Property { property } if property == GEOMETRY_PROPERTY);
        let (relation, literal) = match (a, b) {
            (a, b) if is_geometry(&a) => (relation, b),
            (a, b) if is_geometry(&b) => (relation.converse(), a),
            _ => {
                return Err(FilterError::Unsupported(format!(
                    "S_{} without the feature geometry (the property {GEOMETRY_PROPERTY:?}) as an operand",
                    relation.name().to_uppercase()
                )))
            }
        };
        if !matches!(literal, Expr::Geometry(_) | Expr::BBox { .. }) {
            return Err(FilterError::Unsupported(format!(
                "S_{} with {} rather than a geometry literal",
                relation.name().to_uppercase(),
                describe(&literal)
            )));
        }
        let geometry = Geometry::try_from(literal)
            .map_err(|e| FilterError::Invalid(format!("a geometry literal that cannot be read: {e}")))?;
        check_finite(&geometry)?;
        let geometry = to_wgs84(geometry, self.crs)?;
        check_geometry(&geometry)?;
        Ok(Filter::Spatial { relation, geometry })
    }

    fn temporal(&self, name: &str, args: Vec<cql2::Expr>) -> Result<Filter, FilterError> {
        let function = || format!("T_{}", name.to_uppercase());
        let alternatives = temporal_rule(name).ok_or_else(|| FilterError::Unsupported(function()))?;
        let [a, b] = exactly(name, args)?;
        // Every property named must hold instants of one kind; literals are read as that kind.
        let mut keys = Vec::new();
        temporal_properties(&a, &mut keys);
        temporal_properties(&b, &mut keys);
        let Some(first) = keys.first().cloned() else {
            return Err(FilterError::Unsupported(format!("{} without a property", function())));
        };
        let first_type = self.type_of(&first)?;
        for key in &keys {
            let ty = self.type_of(key)?;
            if !matches!(ty, FieldType::Date | FieldType::DateTime) || ty != first_type {
                let given = if ty == first_type || !matches!(first_type, FieldType::Date | FieldType::DateTime) {
                    format!("the temporal function {}", function())
                } else {
                    format!("the property {first:?} ({}) in {}", type_name(first_type), function())
                };
                return Err(FilterError::Mismatch { key: key.clone(), holds: type_name(ty), given });
            }
        }
        relate(alternatives, &self.period(&first, a)?, &self.period(&first, b)?)
    }

    /// A temporal operand as the interval it stands for, literals read as `context` holds them.
    fn period(&self, context: &str, e: cql2::Expr) -> Result<Period, FilterError> {
        match e {
            cql2::Expr::Interval { interval } => {
                let [start, end] = exactly("INTERVAL", interval.into_iter().map(|b| *b).collect())?;
                let period = Period { start: self.end(context, start)?, end: self.end(context, end)? };
                if let (End::Value(s), End::Value(e)) = (&period.start, &period.end) {
                    if literal_order(s, e) == Some(std::cmp::Ordering::Greater) {
                        return Err(FilterError::Invalid("an interval that ends before it starts".into()));
                    }
                }
                Ok(period)
            }
            instant => {
                let at = match self.end(context, instant)? {
                    End::Open => return Err(FilterError::Invalid("'..' outside an interval".into())),
                    at => at,
                };
                Ok(Period { start: at.clone(), end: at })
            }
        }
    }

    /// One end of an interval, or an instant.
    fn end(&self, context: &str, e: cql2::Expr) -> Result<End, FilterError> {
        match e {
            cql2::Expr::Literal(s) if s == ".." => Ok(End::Open),
            cql2::Expr::Property { property } => Ok(End::Property(property)),
            e => self.literal(context, e).map(End::Value),
        }
    }
}

/// One end of a temporal operand.
#[derive(Debug, Clone)]
enum End {
    /// `'..'`: before every instant as a start, after every instant as an end.
    Open,
    Property(String),
    Value(Literal),
}

/// A temporal operand: an interval, or an instant as the interval from it to it.
struct Period {
    start: End,
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Start,
    End,
}

impl Period {
    /// The end `which`, with what an open end stands for.
    fn bound(&self, which: Which) -> Bound<'_> {
        match (which, if which == Which::Start { &self.start } else { &self.end }) {
            (Which::Start, End::Open) => Bound::Infinite(std::cmp::Ordering::Less),
            (Which::End, End::Open) => Bound::Infinite(std::cmp::Ordering::Greater),
            (_, End::Property(key)) => Bound::Property(key),
            (_, End::Value(value)) => Bound::Value(value),
        }
    }
}

/// An end as compared: a property's value, a literal, or beyond every instant (`Less` before
/// all of them, `Greater` after).
#[derive(Clone, Copy)]
enum Bound<'a> {
    Infinite(std::cmp::Ordering),
    Property(&'a str),
    Value(&'a Literal),
}

/// Whether `a` and `b` stand in the relation `alternatives` define, constants folded away.
fn relate(alternatives: &[&[EndComparison]], a: &Period, b: &Period) -> Result<Filter, FilterError> {
    let conditions = alternatives.iter().map(|conditions| {
        let parts = conditions.iter().map(|(x, op, y)| compare_ends(a.bound(*x), *op, b.bound(*y)));
        parts.collect::<Result<Vec<_>, _>>().map(all)
    });
    Ok(any(conditions.collect::<Result<_, _>>()?))
}

/// `x op y` for two ends: a condition on the properties, or a constant where no property is
/// involved. A property against an open end is compared with itself (`p = p` or `p <> p`), so
/// that, as every comparison in SQL, it is unknown where the property has no value, and so is
/// its `NOT`.
fn compare_ends(x: Bound<'_>, op: Comparison, y: Bound<'_>) -> Result<Filter, FilterError> {
    let itself = |key: &str, op| Filter::CompareProperties { left: key.into(), op, right: key.into() };
    Ok(match (x, y) {
        (Bound::Infinite(a), Bound::Infinite(b)) => Filter::Constant(op.holds(a.cmp(&b))),
        (Bound::Infinite(a), finite) | (finite, Bound::Infinite(a)) => {
            // The infinite end's side against any instant, as `x op y` sees it.
            let ordering = if matches!(x, Bound::Infinite(_)) { a } else { a.reverse() };
            let holds = op.holds(ordering);
            match finite {
                Bound::Property(key) => itself(key, if holds { Comparison::Eq } else { Comparison::Ne }),
                _ => Filter::Constant(holds),
            }
        }
        (Bound::Property(left), Bound::Property(right)) => {
            Filter::CompareProperties { left: left.into(), op, right: right.into() }
        }
        (Bound::Property(key), Bound::Value(value)) => Filter::Compare { key: key.into(), op, value: value.clone() },
        (Bound::Value(value), Bound::Property(key)) => {
            Filter::Compare { key: key.into(), op: op.flipped(), value: value.clone() }
        }
        (Bound::Value(a), Bound::Value(b)) => match literal_order(a, b) {
            Some(ordering) => Filter::Constant(op.holds(ordering)),
            None => return Err(FilterError::Invalid("instants of different kinds compared".into())),
        },
    })
}

/// How two literals of one temporal kind are ordered.
fn literal_order(a: &Literal, b: &Literal) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Literal::Date(a), Literal::Date(b)) => Some(a.cmp(b)),
        (Literal::Timestamp(a), Literal::Timestamp(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// The properties a temporal operand names, as an instant or as the ends of an interval.
fn temporal_properties(e: &cql2::Expr, keys: &mut Vec<String>) {
    match e {
        cql2::Expr::Property { property } => keys.push(property.clone()),
        cql2::Expr::Interval { interval } => interval.iter().for_each(|end| temporal_properties(end, keys)),
        _ => {}
    }
}

/// An end of the first operand compared with an end of the second.
type EndComparison = (Which, Comparison, Which);

/// What a temporal function means, in Allen's interval algebra as CQL2 defines it: any of
/// the alternatives, each every one of its comparisons of an end of the first operand with
/// an end of the second.
fn temporal_rule(name: &str) -> Option<&'static [&'static [EndComparison]]> {
    use Comparison::*;
    use Which::{End as E, Start as S};
    Some(match name {
        "after" => &[&[(S, Gt, E)]],
        "before" => &[&[(E, Lt, S)]],
        "contains" => &[&[(S, Lt, S), (E, Gt, E)]],
        "disjoint" => &[&[(E, Lt, S)], &[(S, Gt, E)]],
        "during" => &[&[(S, Gt, S), (E, Lt, E)]],
        "equals" => &[&[(S, Eq, S), (E, Eq, E)]],
        "finishedby" => &[&[(S, Lt, S), (E, Eq, E)]],
        "finishes" => &[&[(S, Gt, S), (E, Eq, E)]],
        "intersects" => &[&[(S, Le, E), (E, Ge, S)]],
        "meets" => &[&[(E, Eq, S)]],
        "metby" => &[&[(S, Eq, E)]],
        "overlappedby" => &[&[(S, Gt, S), (S, Lt, E), (E, Gt, E)]],
        "overlaps" => &[&[(S, Lt, S), (E, Gt, S), (E, Lt, E)]],
        "startedby" => &[&[(S, Eq, S), (E, Gt, E)]],
        "starts" => &[&[(S, Eq, S), (E, Lt, E)]],
        _ => return None,
    })
}

/// Whether an operand is wrapped in `CASEI` or `ACCENTI`.
fn is_folded(e: &cql2::Expr) -> bool {
    matches!(e, cql2::Expr::Operation { op, .. } if folding(op, Fold::NONE).is_some())
}

/// Whether an operand is a property, perhaps wrapped in `CASEI` or `ACCENTI`.
fn is_property(mut e: &cql2::Expr) -> bool {
    while let cql2::Expr::Operation { op, args } = e {
        match args.as_slice() {
            [inner] if folding(op, Fold::NONE).is_some() => e = inner.as_ref(),
            _ => return false,
        }
    }
    matches!(e, cql2::Expr::Property { .. })
}

/// The operand inside any `CASEI` and `ACCENTI` wrapped round it, and what they fold.
fn unwrapped(mut e: cql2::Expr) -> Result<(cql2::Expr, Fold), FilterError> {
    let mut fold = Fold::NONE;
    while let cql2::Expr::Operation { op, args } = &mut e {
        let Some(more) = folding(op, fold) else { break };
        let op = std::mem::take(op);
        let [inner] = exactly(&op, std::mem::take(args).into_iter().map(|a| *a).collect())?;
        (e, fold) = (inner, more);
    }
    Ok((e, fold))
}

/// `fold` with what the function `op` folds added; `None` when `op` folds nothing.
fn folding(op: &str, fold: Fold) -> Option<Fold> {
    match op {
        "casei" => Some(Fold { case: true, ..fold }),
        "accenti" => Some(Fold { accents: true, ..fold }),
        _ => None,
    }
}

/// The refusal of an insensitive comparison whose operand is neither a property nor a string.
fn not_text(context: &str, e: &cql2::Expr) -> FilterError {
    FilterError::Unsupported(format!(
        "a case- or accent-insensitive {context} of {} rather than of a property and a string",
        describe(e)
    ))
}

/// A CQL2 `LIKE` pattern the stores can take: no NUL, no lone escape at its end (which
/// PostgreSQL refuses).
fn check_pattern(pattern: String) -> Result<String, FilterError> {
    if pattern.contains('\0') {
        return Err(nul_text());
    }
    let trailing = pattern.chars().rev().take_while(|c| *c == '\\').count();
    if trailing % 2 == 1 {
        return Err(FilterError::Invalid(format!("the LIKE pattern {pattern:?}, which ends in a lone escape (\\)")));
    }
    Ok(pattern)
}

/// The arguments of an operator that takes `N`.
fn exactly<const N: usize>(op: &str, args: Vec<cql2::Expr>) -> Result<[cql2::Expr; N], FilterError> {
    let given = args.len();
    args.try_into().map_err(|_| FilterError::Invalid(format!("{op} with {given} operand(s) instead of {N}")))
}

fn parse_date(s: &str) -> Result<Date, FilterError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format).map_err(|_| FilterError::Invalid(format!("the date {s:?}, which is not YYYY-MM-DD")))
}

fn parse_timestamp(s: &str) -> Result<OffsetDateTime, FilterError> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| FilterError::Invalid(format!("the timestamp {s:?}, which is not an RFC 3339 date-time")))?;
    if t.nanosecond() % 1_000_000 != 0 {
        return Err(FilterError::Invalid(format!(
            "the timestamp {s:?}, finer than the milliseconds date-times are stored with"
        )));
    }
    Ok(t)
}

fn check_finite(g: &Geometry<f64>) -> Result<(), FilterError> {
    use geo::CoordsIter;
    if g.coords_iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
        return Err(FilterError::Invalid("a geometry literal with a coordinate that is not a finite number".into()));
    }
    if g.coords_count() == 0 {
        return Err(FilterError::Invalid("an empty geometry literal".into()));
    }
    Ok(())
}

/// A literal in `crs` as WGS84 longitude/latitude, as features are stored.
fn to_wgs84(mut g: Geometry<f64>, crs: &ServedCrs) -> Result<Geometry<f64>, FilterError> {
    if crs.is_stored_crs() {
        return Ok(g);
    }
    if crs.projects() {
        use geo::BoundingRect;
        let extent = g.bounding_rect().map_or(0.0, |r| r.width().max(r.height()));
        if extent > 0.0 {
            g = densified(g, extent / DENSIFY_STEPS);
        }
    }
    // All positions go through the CRS in one call (PROJ works per call, and a densified
    // literal has thousands): gathered and written back by the same walk, so in one order.
    // (The fallible mapping recurses without bound on geometry collections.)
    let gathered = std::cell::RefCell::new(Vec::new());
    g.map_coords_in_place(|c| {
        gathered.borrow_mut().push(Pos::xy(c.x, c.y));
        c
    });
    let mut positions = gathered.into_inner();
    crs.to_wgs84(&mut positions)
        .map_err(|e| FilterError::Invalid(format!("a geometry literal outside what {} can express: {e}", crs.uri())))?;
    let next = std::cell::Cell::new(0);
    g.map_coords_in_place(|_| {
        let pos = positions[next.get()];
        next.set(next.get() + 1);
        geo::coord! { x: pos.x, y: pos.y }
    });
    check_finite(&g)?;
    Ok(g)
}

/// `g` with no segment longer than `step`.
fn densified(g: Geometry<f64>, step: f64) -> Geometry<f64> {
    use geo::{Densify, Euclidean};
    match g {
        Geometry::Line(l) => Euclidean.densify(&l, step).into(),
        Geometry::LineString(l) => Euclidean.densify(&l, step).into(),
        Geometry::MultiLineString(m) => Euclidean.densify(&m, step).into(),
        Geometry::Polygon(p) => Euclidean.densify(&p, step).into(),
        Geometry::MultiPolygon(m) => Euclidean.densify(&m, step).into(),
        Geometry::Rect(r) => Euclidean.densify(&r, step).into(),
        Geometry::Triangle(t) => Euclidean.densify(&t, step).into(),
        Geometry::GeometryCollection(c) => {
            Geometry::GeometryCollection(c.into_iter().map(|g| densified(g, step)).collect())
        }
        points @ (Geometry::Point(_) | Geometry::MultiPoint(_)) => points,
    }
}

/// A geometry literal both stores can test: with valid rings (GEOS fails on some invalid
/// ones, and the result would depend on the store).
fn check_geometry(g: &Geometry<f64>) -> Result<(), FilterError> {
    g.check_validation().map_err(|e| FilterError::Invalid(format!("a geometry literal that is not valid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::served_crs::{CrsId, CrsUnit};

    fn types(key: &str) -> Option<FieldType> {
        Some(match key {
            "name" => FieldType::Text,
            "pop" => FieldType::Integer,
            "area" => FieldType::Real,
            "ok" => FieldType::Boolean,
            "day" => FieldType::Date,
            "at" => FieldType::DateTime,
            "tags" => FieldType::Json,
            _ => return None,
        })
    }

    fn text(s: &str) -> Result<Filter, FilterError> {
        Filter::parse(s, FilterLang::Text, &ServedCrs::crs84(), &types)
    }

    fn cmp(key: &str, op: Comparison, value: Literal) -> Filter {
        Filter::Compare { key: key.into(), op, value }
    }

    #[test]
    fn comparisons_take_literals_of_the_property_type() {
        assert_eq!(text("pop > 5").unwrap(), cmp("pop", Comparison::Gt, Literal::Number(5.0)));
        assert_eq!(text("5 > pop").unwrap(), cmp("pop", Comparison::Lt, Literal::Number(5.0)));
        assert_eq!(
            text("name = 'it''s' AND NOT ok = true").unwrap(),
            Filter::And(vec![
                cmp("name", Comparison::Eq, Literal::Text("it's".into())),
                Filter::Not(Box::new(cmp("ok", Comparison::Eq, Literal::Bool(true)))),
            ])
        );
        assert_eq!(
            text("day >= DATE('2024-01-02')").unwrap(),
            cmp("day", Comparison::Ge, Literal::Date(time::macros::date!(2024 - 01 - 02)))
        );
        assert_eq!(
            text("at < '2024-01-02T03:04:05Z'").unwrap(),
            cmp("at", Comparison::Lt, Literal::Timestamp(time::macros::datetime!(2024-01-02 03:04:05 UTC)))
        );
        assert!(matches!(text("pop = 'x'"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("name = 'a\u{0}b'"), Err(FilterError::Invalid(m)) if m.contains("NUL")));
        assert!(matches!(text("name LIKE '\u{0}%'"), Err(FilterError::Invalid(m)) if m.contains("NUL")));
        assert!(matches!(text("name = 5"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("tags = 'x'"), Err(FilterError::Untyped(_))));
        assert_eq!(text("tags IS NULL").unwrap(), Filter::IsNull { key: "tags".into() });
        assert_eq!(text("nope = 1"), Err(FilterError::UnknownProperty("nope".into())));
        assert!(matches!(text("at = TIMESTAMP('2024-01-02T03:04:05.0001Z')"), Err(FilterError::Invalid(_))));
        assert_eq!(
            text("pop < area").unwrap(),
            Filter::CompareProperties { left: "pop".into(), op: Comparison::Lt, right: "area".into() }
        );
        assert!(matches!(text("pop = name"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("tags = name"), Err(FilterError::Untyped(_))));
    }

    #[test]
    fn advanced_comparisons_become_basic_ones() {
        assert_eq!(
            text("pop BETWEEN 1 AND 2").unwrap(),
            Filter::And(vec![
                cmp("pop", Comparison::Ge, Literal::Number(1.0)),
                cmp("pop", Comparison::Le, Literal::Number(2.0))
            ])
        );
        assert_eq!(
            text("name IN ('a', 'b')").unwrap(),
            Filter::Or(vec![
                cmp("name", Comparison::Eq, Literal::Text("a".into())),
                cmp("name", Comparison::Eq, Literal::Text("b".into()))
            ])
        );
        assert_eq!(text("name LIKE 'S%'").unwrap(), Filter::Like { key: "name".into(), pattern: "S%".into() });
        assert!(matches!(text(r"name LIKE 'S\'"), Err(FilterError::Invalid(_))));
        assert!(matches!(text("pop LIKE '1%'"), Err(FilterError::Mismatch { .. })));
        assert_eq!(text("NOT NOT pop = 1").unwrap(), cmp("pop", Comparison::Eq, Literal::Number(1.0)));
    }

    #[test]
    fn casei_and_accenti_fold_the_property_and_the_literal() {
        let insensitive =
            |case, accents, test| Filter::Insensitive { key: "name".into(), fold: Fold { case, accents }, test };
        assert_eq!(
            text("CASEI(name) = CASEI('ÉCOLE')").unwrap(),
            insensitive(true, false, TextTest::Compare(Comparison::Eq, "école".into()))
        );
        assert_eq!(
            text("CASEI(ACCENTI(name)) LIKE ACCENTI(CASEI('Éco%'))").unwrap(),
            insensitive(true, true, TextTest::Like("eco%".into()))
        );
        // A literal left unwrapped is compared as it is.
        assert_eq!(
            text("'Ab' < CASEI(name)").unwrap(),
            insensitive(true, false, TextTest::Compare(Comparison::Gt, "Ab".into()))
        );
        assert_eq!(
            text("ACCENTI(name) IN ('Zoë', ACCENTI('Zoë'))").unwrap(),
            Filter::Or(vec![
                insensitive(false, true, TextTest::Compare(Comparison::Eq, "Zoë".into())),
                insensitive(false, true, TextTest::Compare(Comparison::Eq, "Zoe".into())),
            ])
        );
        let json = r#"{"op":"=","args":[{"op":"casei","args":[{"property":"name"}]},{"op":"casei","args":["X"]}]}"#;
        assert_eq!(
            Filter::parse(json, FilterLang::Json, &ServedCrs::crs84(), &types).unwrap(),
            insensitive(true, false, TextTest::Compare(Comparison::Eq, "x".into()))
        );
        assert!(matches!(text("CASEI(pop) = 'a'"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("CASEI(name) = CASEI(name)"), Err(FilterError::Unsupported(_))));
        assert!(matches!(text("CASEI(name) LIKE CASEI('a\\')"), Err(FilterError::Invalid(_))));
        assert!(matches!(text("CASEI(name, name) = 'a'"), Err(FilterError::Invalid(_))));
    }

    #[test]
    fn ilike_is_read_as_casei_like() {
        let like = Filter::Insensitive {
            key: "name".into(),
            fold: Fold { case: true, accents: false },
            test: TextTest::Like("ab%".into()),
        };
        assert_eq!(text("name ILIKE 'AB%'").unwrap(), like);
        assert_eq!(text("\"name\" ilike 'AB%'").unwrap(), like);
        assert_eq!(text("name NOT ILIKE 'AB%'").unwrap(), negate(like));
        assert_eq!(
            rewrite_ilike("a ILIKE 'x' AND \"b c\" NOT ILIKE 'It''s' OR d = 'ILIKE'").unwrap(),
            "CASEI(a) LIKE CASEI('x') AND CASEI(\"b c\") NOT LIKE CASEI('It''s') OR d = 'ILIKE'"
        );
        assert_eq!(rewrite_ilike("nameILIKE = 'a'").unwrap(), "nameILIKE = 'a'");
        for refused in ["ILIKE 'a'", "name ILIKE", "name ILIKE pop", "lower(name) ILIKE 'a'", "'a' ILIKE 'b'"] {
            assert!(matches!(text(refused), Err(FilterError::Syntax { .. })), "{refused}");
        }
    }

    #[test]
    fn folding_drops_accents_then_lowers() {
        let both = Fold { case: true, accents: true };
        assert_eq!(both.apply("ÉCOLE Saint-Étienne"), "ecole saint-etienne");
        assert_eq!(Fold { case: false, accents: true }.apply("Zoë Ångström"), "Zoe Angstrom");
        assert_eq!(Fold { case: true, accents: false }.apply("ÉCOLE"), "école");
        // A final sigma, as ICU's root locale lowers it.
        assert_eq!(Fold { case: true, accents: false }.apply("ΟΔΟΣ ΩΜΕΓΑ"), "οδος ωμεγα");
        assert_eq!(Fold::NONE.apply("Ä"), "Ä");
        // Marks outside the block are kept: they make other letters, not accented ones.
        assert_eq!(Fold { case: false, accents: true }.apply("\u{915}\u{93f}"), "\u{915}\u{93f}");
    }

    #[test]
    fn spatial_functions_take_the_geometry_and_a_literal() {
        let f = text("S_WITHIN(POINT(1 2), geometry)").unwrap();
        assert_eq!(f, Filter::Spatial { relation: Relation::Contains, geometry: geo::point!(x: 1.0, y: 2.0).into() });
        let lat_lon = ServedCrs::new(CrsId::Epsg(4326), true, CrsUnit::Degrees, None);
        let swapped = Filter::parse("S_INTERSECTS(geometry, POINT(1 2))", FilterLang::Text, &lat_lon, &types);
        assert_eq!(
            swapped.unwrap(),
            Filter::Spatial { relation: Relation::Intersects, geometry: geo::point!(x: 2.0, y: 1.0).into() }
        );
        let json = r#"{"op":"s_intersects","args":[{"property":"geometry"},{"bbox":[0,0,1,1]}]}"#;
        assert!(matches!(
            Filter::parse(json, FilterLang::Json, &ServedCrs::crs84(), &types).unwrap(),
            Filter::Spatial { relation: Relation::Intersects, .. }
        ));
        assert!(matches!(text("S_INTERSECTS(name, POINT(1 2))"), Err(FilterError::Unsupported(_))));
        let bowtie = "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))";
        assert!(matches!(text(bowtie), Err(FilterError::Invalid(_))));
    }

    #[test]
    fn temporal_functions_on_instants_become_comparisons() {
        let at = |s: &str| Literal::Timestamp(OffsetDateTime::parse(s, &Rfc3339).unwrap());
        assert_eq!(
            text("T_AFTER(at, TIMESTAMP('2024-01-02T00:00:00Z'))").unwrap(),
            cmp("at", Comparison::Gt, at("2024-01-02T00:00:00Z"))
        );
        assert_eq!(
            text("T_INTERSECTS(at, INTERVAL('2024-01-02T00:00:00Z', '..'))").unwrap(),
            Filter::And(vec![
                Filter::CompareProperties { left: "at".into(), op: Comparison::Eq, right: "at".into() },
                cmp("at", Comparison::Ge, at("2024-01-02T00:00:00Z")),
            ])
        );
        assert_eq!(
            text("T_BEFORE(INTERVAL('2024-01-02T00:00:00Z', '2024-01-03T00:00:00Z'), at)").unwrap(),
            cmp("at", Comparison::Gt, at("2024-01-03T00:00:00Z"))
        );
        // An instant meets an interval that starts at it.
        assert_eq!(
            text("T_MEETS(at, INTERVAL('2024-01-02T00:00:00Z', '..'))").unwrap(),
            cmp("at", Comparison::Eq, at("2024-01-02T00:00:00Z"))
        );
        // An interval with an open start is during no instant, nor is its NOT known where the
        // property has no value.
        assert_eq!(
            text("T_DURING(INTERVAL('..', '2024-01-02T00:00:00Z'), at)").unwrap(),
            Filter::And(vec![
                Filter::CompareProperties { left: "at".into(), op: Comparison::Ne, right: "at".into() },
                cmp("at", Comparison::Gt, at("2024-01-02T00:00:00Z")),
            ])
        );
        assert!(matches!(text("T_AFTER(pop, TIMESTAMP('2024-01-02T00:00:00Z'))"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("T_AFTER(at, day)"), Err(FilterError::Mismatch { .. })));
        assert!(matches!(text("T_AFTER(at, '..')"), Err(FilterError::Invalid(_))));
        assert!(matches!(
            text("T_AFTER(TIMESTAMP('2024-01-02T00:00:00Z'), TIMESTAMP('2024-01-01T00:00:00Z'))"),
            Err(FilterError::Unsupported(_))
        ));
    }

    #[test]
    fn temporal_functions_relate_intervals_of_properties() {
        let types = |key: &str| match key {
            "from" | "to" | "at" => Some(FieldType::DateTime),
            _ => None,
        };
        let parse = |s: &str| Filter::parse(s, FilterLang::Text, &ServedCrs::crs84(), &types);
        let props =
            |left: &str, op, right: &str| Filter::CompareProperties { left: left.into(), op, right: right.into() };
        let at = |s: &str| Literal::Timestamp(OffsetDateTime::parse(s, &Rfc3339).unwrap());
        assert_eq!(
            parse("T_DURING(INTERVAL(from, to), INTERVAL('2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z'))").unwrap(),
            Filter::And(vec![
                cmp("from", Comparison::Gt, at("2024-01-01T00:00:00Z")),
                cmp("to", Comparison::Lt, at("2024-02-01T00:00:00Z")),
            ])
        );
        assert_eq!(
            parse("T_OVERLAPS(INTERVAL(from, to), INTERVAL(at, '..'))").unwrap(),
            Filter::And(vec![
                props("from", Comparison::Lt, "at"),
                props("to", Comparison::Gt, "at"),
                props("to", Comparison::Eq, "to"),
            ])
        );
        let json = r#"{"op":"t_metBy","args":[{"interval":[{"property":"from"},{"property":"to"}]},{"interval":["2023-01-01T00:00:00Z","2024-01-01T00:00:00Z"]}]}"#;
        assert_eq!(
            Filter::parse(json, FilterLang::Json, &ServedCrs::crs84(), &types).unwrap(),
            cmp("from", Comparison::Eq, at("2024-01-01T00:00:00Z"))
        );
        assert!(matches!(
            parse("T_DURING(at, INTERVAL('2024-02-01T00:00:00Z', '2024-01-01T00:00:00Z'))"),
            Err(FilterError::Invalid(_))
        ));
        assert_eq!(parse("from < to").unwrap(), props("from", Comparison::Lt, "to"));
    }

    /// Every temporal function against Allen's definitions, evaluated over instants and
    /// intervals of small whole numbers, open ends included.
    #[test]
    fn temporal_functions_follow_the_interval_algebra() {
        // Ends as numbers: -100 and 100 stand for open ends.
        let holds = |name: &str, a: (i64, i64), b: (i64, i64)| -> bool {
            match name {
                "after" => a.0 > b.1,
                "before" => a.1 < b.0,
                "contains" => a.0 < b.0 && a.1 > b.1,
                "disjoint" => a.1 < b.0 || a.0 > b.1,
                "during" => a.0 > b.0 && a.1 < b.1,
                "equals" => a == b,
                "finishedby" => a.0 < b.0 && a.1 == b.1,
                "finishes" => a.0 > b.0 && a.1 == b.1,
                "intersects" => a.0 <= b.1 && a.1 >= b.0,
                "meets" => a.1 == b.0,
                "metby" => a.0 == b.1,
                "overlappedby" => a.0 > b.0 && a.0 < b.1 && a.1 > b.1,
                "overlaps" => a.0 < b.0 && a.1 > b.0 && a.1 < b.1,
                "startedby" => a.0 == b.0 && a.1 > b.1,
                "starts" => a.0 == b.0 && a.1 < b.1,
                _ => unreachable!(),
            }
        };
        let names = [
            "after",
            "before",
            "contains",
            "disjoint",
            "during",
            "equals",
            "finishedby",
            "finishes",
            "intersects",
            "meets",
            "metby",
            "overlappedby",
            "overlaps",
            "startedby",
            "starts",
        ];
        let literal = |n: i64| Literal::Date(time::macros::date!(2024 - 01 - 01) + time::Duration::days(n));
        let end = |n: i64| if n.abs() == 100 { End::Open } else { End::Value(literal(n)) };
        let mut periods = Vec::new();
        for s in [-100, 0, 1, 2, 3] {
            for e in [0, 1, 2, 3, 100] {
                if s <= e {
                    periods.push((s, e));
                }
            }
        }
        // A property `p` holding the value `v`: the folded filter evaluated for it.
        fn eval(f: &Filter, v: i64, literal: &dyn Fn(i64) -> Literal) -> bool {
            match f {
                Filter::Constant(b) => *b,
                Filter::And(parts) => parts.iter().all(|p| eval(p, v, literal)),
                Filter::Or(parts) => parts.iter().any(|p| eval(p, v, literal)),
                Filter::Not(inner) => !eval(inner, v, literal),
                Filter::IsNull { .. } => false,
                Filter::Compare { op, value, .. } => op.holds(literal_order(&literal(v), value).unwrap()),
                // The one property against itself.
                Filter::CompareProperties { op, .. } => op.holds(std::cmp::Ordering::Equal),
                other => panic!("{other:?}"),
            }
        }
        for name in names {
            let rule = temporal_rule(name).unwrap();
            for &a in &periods {
                for &b in &periods {
                    let pa = Period { start: end(a.0), end: end(a.1) };
                    let pb = Period { start: end(b.0), end: end(b.1) };
                    let folded = relate(rule, &pa, &pb).unwrap();
                    assert_eq!(folded, Filter::Constant(holds(name, a, b)), "T_{name}({a:?}, {b:?})");
                }
                // The first operand a property instant `v`, the second an interval.
                for v in 0..=3 {
                    let pa = Period { start: End::Property("p".into()), end: End::Property("p".into()) };
                    let pb = Period { start: end(a.0), end: end(a.1) };
                    let folded = relate(rule, &pa, &pb).unwrap();
                    assert_eq!(eval(&folded, v, &literal), holds(name, (v, v), a), "T_{name}(p = {v}, {a:?})");
                }
            }
        }
    }

    #[test]
    fn garbage_is_refused_without_a_panic() {
        let deep = format!("{}pop = 1{}", "(".repeat(100), ")".repeat(100));
        let long = format!("{}true", "pop = 1 AND ".repeat(MAX_TERMS));
        assert_eq!(text(&long), Err(FilterError::TooLarge));
        assert_eq!(balanced(vec!["(a)".into()], "AND"), "(a)");
        assert_eq!(
            balanced(["a", "b", "c", "d", "e"].map(String::from).to_vec(), "OR"),
            "((a OR b) OR (c OR (d OR e)))"
        );
        assert_eq!(text(&deep), Err(FilterError::TooDeep));
        let nots = format!("{}pop = 1", "NOT ".repeat(3000));
        assert!(text(&nots).is_ok());
        assert_eq!(text(&"x".repeat(MAX_FILTER_BYTES + 1)), Err(FilterError::TooLong));
        for s in
            ["", "(", "pop >", "pop = = 1", "'", "S_INTERSECTS(geometry, POINT(1))", "1 + 2 = pop", "CASEI(pop) = 'a'"]
        {
            assert!(text(s).is_err(), "{s}");
        }
        for s in ["", "{", "[]", r#"{"op":"=","args":[{"property":"pop"}]}"#, r#"{"op":"nope","args":[]}"#] {
            assert!(Filter::parse(s, FilterLang::Json, &ServedCrs::crs84(), &types).is_err(), "{s}");
        }
    }

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("S%"), "S*");
        assert_eq!(like_to_glob("a_b"), "a?b");
        assert_eq!(like_to_glob(r"100\%*[x]?"), "100%[*][[]x][?]");
        assert_eq!(like_to_glob(r"\_\\"), r"_\");
    }

    #[test]
    fn relations_decide_as_the_de9im_does() {
        let square: Geometry<f64> =
            geo::Rect::new(geo::coord! { x: 0.0, y: 0.0 }, geo::coord! { x: 2.0, y: 2.0 }).into();
        let inside: Geometry<f64> = geo::point!(x: 1.0, y: 1.0).into();
        let edge: Geometry<f64> = geo::point!(x: 0.0, y: 1.0).into();
        assert!(Relation::Within.holds(&inside, &square));
        assert!(Relation::Contains.holds(&square, &inside));
        assert!(Relation::Touches.holds(&edge, &square));
        assert!(!Relation::Within.holds(&edge, &square));
        assert!(Relation::Intersects.holds(&edge, &square));
        assert!(!Relation::Disjoint.holds(&edge, &square));
    }
}
