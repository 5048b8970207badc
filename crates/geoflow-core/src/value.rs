//! Property values as they travel from a GeoJSON feature to a store column, without loss.

use std::fmt::Write as _;

/// One property value, classified so that storing it never changes it.
///
/// Numbers that neither `i64` nor `f64` hold exactly (integers beyond 64 bits, decimals with
/// more digits than a double keeps) are carried as [`PropValue::Json`] with their exact text.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PropValue {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    /// A string; [`ValueKind`] tells whether it is a date or a date-time.
    Text(String),
    /// Compact JSON text: nested objects and arrays, and numbers kept as exact text.
    Json(String),
}

/// The type a single value asks of its column; see [`crate::schema::FieldType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Null,
    Bool,
    /// An integer that a double also holds exactly (|i| <= 2^53).
    Int,
    /// An integer beyond 2^53: exact as `i64`, not as `f64`.
    WideInt,
    Real,
    Date,
    DateTime,
    Text,
    Json,
}

/// Largest integer magnitude an `f64` represents exactly.
pub const F64_EXACT_INT: i64 = 1 << 53;

impl PropValue {
    pub fn kind(&self) -> ValueKind {
        match self {
            PropValue::Null => ValueKind::Null,
            PropValue::Bool(_) => ValueKind::Bool,
            PropValue::Int(i) if i.unsigned_abs() <= F64_EXACT_INT as u64 => ValueKind::Int,
            PropValue::Int(_) => ValueKind::WideInt,
            PropValue::Real(_) => ValueKind::Real,
            PropValue::Text(s) if is_date(s) => ValueKind::Date,
            PropValue::Text(s) if is_datetime(s) => ValueKind::DateTime,
            PropValue::Text(_) => ValueKind::Text,
            PropValue::Json(_) => ValueKind::Json,
        }
    }

    /// Classifies one raw JSON value (as found in a feature's `properties`).
    /// `raw` must be valid JSON, as serde_json's `RawValue` guarantees.
    pub fn from_raw_json(raw: &str) -> PropValue {
        let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        match raw.as_bytes().first() {
            None | Some(b'n') => PropValue::Null,
            Some(b't') => PropValue::Bool(true),
            Some(b'f') => PropValue::Bool(false),
            Some(b'"') => match serde_json::from_str::<String>(raw) {
                Ok(s) => PropValue::Text(s),
                Err(_) => PropValue::Json(minify_json(raw)),
            },
            Some(b'{') | Some(b'[') => PropValue::Json(minify_json(raw)),
            Some(_) => classify_number(raw),
        }
    }

    /// The value converted for a column of type `field`: lossless by construction of the
    /// widening rules in [`crate::schema::FieldType::join`].
    pub fn for_column(&self, field: crate::schema::FieldType) -> PropValue {
        use crate::schema::FieldType as F;
        match (field, self) {
            (_, PropValue::Null) => PropValue::Null,
            (F::Json, v) => PropValue::Json(v.to_json_text()),
            (F::Real, PropValue::Int(i)) => PropValue::Real(*i as f64),
            (_, v) => v.clone(),
        }
    }

    /// The value as JSON text (what a JSON column stores).
    pub fn to_json_text(&self) -> String {
        match self {
            PropValue::Null => "null".into(),
            PropValue::Bool(b) => b.to_string(),
            PropValue::Int(i) => i.to_string(),
            PropValue::Real(f) => format_f64(*f),
            PropValue::Text(s) => serde_json::to_string(s).expect("strings serialise"),
            PropValue::Json(j) => j.clone(),
        }
    }

    /// The value as a `serde_json::Value`, for output. Exact numbers stay exact only through
    /// [`PropValue::to_json_text`]; this form is for display and tests.
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::from_str(&self.to_json_text()).unwrap_or(serde_json::Value::Null)
    }
}

/// Shortest text that parses back to the same double (`1.0` stays `1.0`).
pub fn format_f64(f: f64) -> String {
    if f.is_finite() {
        ryu::Buffer::new().format_finite(f).to_string()
    } else {
        "null".into()
    }
}

fn classify_number(raw: &str) -> PropValue {
    let is_integer = !raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if is_integer {
        if let Ok(i) = raw.parse::<i64>() {
            return PropValue::Int(i);
        }
        return PropValue::Json(raw.to_string());
    }
    match raw.parse::<f64>() {
        // A decimal of at most 15 significant digits (f64::DIGITS) in the normal range is the
        // only such decimal that parses to its double, so the double gives it back exactly.
        Ok(f) if f.is_normal() && significant_digits(raw) <= f64::DIGITS as usize => PropValue::Real(f),
        Ok(f) if f.is_finite() && same_decimal(raw, &format_f64(f)) => PropValue::Real(f),
        _ => PropValue::Json(raw.to_string()),
    }
}

/// The significant digits of a decimal literal's mantissa (leading and trailing zeros aside).
fn significant_digits(raw: &str) -> usize {
    let mantissa = raw.split(['e', 'E']).next().unwrap_or(raw);
    let digits = || mantissa.bytes().filter(u8::is_ascii_digit);
    let leading = digits().take_while(|&d| d == b'0').count();
    let trailing = digits().rev().take_while(|&d| d == b'0').count();
    digits().count().saturating_sub(leading + trailing)
}

/// Whether two decimal literals denote the same number (compares digits and exponent).
fn same_decimal(a: &str, b: &str) -> bool {
    normalise_decimal(a) == normalise_decimal(b)
}

/// (negative, significant digits without leading/trailing zeros, decimal exponent).
fn normalise_decimal(s: &str) -> Option<(bool, String, i64)> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(p) => (&s[..p], s[p + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = String::with_capacity(int_part.len() + frac_part.len());
    digits.push_str(int_part);
    digits.push_str(frac_part);
    // value = 0.digits * 10^(exp + len(int_part))
    let leading = digits.len() - digits.trim_start_matches('0').len();
    let point = exp.saturating_add(int_part.len() as i64).saturating_sub(leading as i64);
    let digits = digits.trim_start_matches('0').trim_end_matches('0').to_string();
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, digits, point))
}

/// `YYYY-MM-DD` with a plausible month and day.
pub fn is_date(s: &str) -> bool {
    date_bytes(s.as_bytes())
}

fn date_bytes(b: &[u8]) -> bool {
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(&b[0..4])
        && digits(&b[5..7])
        && digits(&b[8..10])
        && (1..=12).contains(&num(&b[5..7]))
        && (1..=31).contains(&num(&b[8..10]))
}

/// A UTC date-time in the one form GeoPackage defines, `YYYY-MM-DDTHH:MM:SS.SSSZ`.
/// Other spellings (no milliseconds, offsets) stay text, so that no value is rewritten.
pub fn is_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && date_bytes(&b[..10])
        && b[10] == b'T'
        && digits(&b[11..13])
        && b[13] == b':'
        && digits(&b[14..16])
        && b[16] == b':'
        && digits(&b[17..19])
        && b[19] == b'.'
        && digits(&b[20..23])
        && b[23] == b'Z'
        && num(&b[11..13]) <= 23
        && num(&b[14..16]) <= 59
        && num(&b[17..19]) <= 60
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// Removes insignificant whitespace from valid JSON text, leaving strings and numbers as they are.
pub fn minify_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Renders a feature id for reports: strings as they are, numbers as their text.
pub fn display_id(id: &PropValue) -> Option<String> {
    match id {
        PropValue::Null => None,
        PropValue::Text(s) => Some(s.clone()),
        other => {
            let mut s = String::new();
            let _ = write!(s, "{}", other.to_json_text());
            Some(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_kept_exactly() {
        assert_eq!(PropValue::from_raw_json("9007199254740993"), PropValue::Int(9007199254740993));
        assert_eq!(PropValue::from_raw_json("9007199254740993").kind(), ValueKind::WideInt);
        assert_eq!(PropValue::from_raw_json("-12"), PropValue::Int(-12));
        assert_eq!(
            PropValue::from_raw_json("123456789012345678901234567890"),
            PropValue::Json("123456789012345678901234567890".into())
        );
        assert_eq!(PropValue::from_raw_json("1.5"), PropValue::Real(1.5));
        assert_eq!(PropValue::from_raw_json("1.50"), PropValue::Real(1.5));
        assert_eq!(PropValue::from_raw_json("1e3"), PropValue::Real(1000.0));
        assert_eq!(PropValue::from_raw_json("0e9223372036854775807"), PropValue::Real(0.0));
        assert_eq!(PropValue::from_raw_json("0.0e-9223372036854775808"), PropValue::Real(0.0));
        assert_eq!(PropValue::from_raw_json("0.1"), PropValue::Real(0.1));
        assert_eq!(
            PropValue::from_raw_json("0.12345678901234567890123"),
            PropValue::Json("0.12345678901234567890123".into())
        );
        // 15 significant digits are always exact; beyond, only a double's own shortest text.
        assert_eq!(PropValue::from_raw_json("-0.00123456789012345e-5"), PropValue::Real(-0.00123456789012345e-5));
        assert_eq!(
            PropValue::from_raw_json("0.1000000000000000055511151231257827"),
            PropValue::Json("0.1000000000000000055511151231257827".into())
        );
        assert_eq!(PropValue::from_raw_json("0.30000000000000004"), PropValue::Real(0.30000000000000004));
        assert_eq!(PropValue::from_raw_json("0.3000000000000000"), PropValue::Real(0.3));
        assert_eq!(PropValue::from_raw_json("1e-400"), PropValue::Json("1e-400".into()));
        // Subnormal: only the double's own shortest text is exact.
        assert_eq!(PropValue::from_raw_json("4.9e-324"), PropValue::Json("4.9e-324".into()));
        assert_eq!(PropValue::from_raw_json("5e-324"), PropValue::Real(5e-324));
        assert_eq!(PropValue::from_raw_json("-0.0"), PropValue::Real(-0.0));
        assert_eq!(
            (significant_digits("-001.2300e7"), significant_digits("0.000"), significant_digits("10")),
            (3, 0, 1)
        );
    }

    #[test]
    fn strings_dates_and_nested_values() {
        assert_eq!(PropValue::from_raw_json(r#""a\"b""#), PropValue::Text("a\"b".into()));
        assert_eq!(PropValue::from_raw_json(r#""2024-02-29""#).kind(), ValueKind::Date);
        assert_eq!(PropValue::from_raw_json(r#""2022-11-16T09:29:13.250Z""#).kind(), ValueKind::DateTime);
        assert_eq!(PropValue::from_raw_json(r#""2022-11-16T09:29:13Z""#).kind(), ValueKind::Text);
        assert_eq!(PropValue::from_raw_json(r#""2022-11-16T09:29:13.5+02:00""#).kind(), ValueKind::Text);
        assert_eq!(PropValue::from_raw_json(r#""2022-13-16""#).kind(), ValueKind::Text);
        assert_eq!(PropValue::from_raw_json(r#""Rosario – Islas Malvinas Int'l""#).kind(), ValueKind::Text);
        assert_eq!(
            PropValue::from_raw_json("{ \"a\" : [1, 2, \"x y\"] }"),
            PropValue::Json(r#"{"a":[1,2,"x y"]}"#.into())
        );
        assert_eq!(PropValue::from_raw_json("null"), PropValue::Null);
        assert_eq!(PropValue::from_raw_json("true"), PropValue::Bool(true));
    }

    #[test]
    fn json_text_round_trips() {
        assert_eq!(PropValue::Real(1.0).to_json_text(), "1.0");
        assert_eq!(PropValue::Text("é\"".into()).to_json_text(), "\"é\\\"\"");
        assert_eq!(PropValue::Int(-5).to_json_text(), "-5");
    }
}
