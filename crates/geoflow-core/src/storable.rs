//! Text that valid GeoJSON may hold but no store keeps as given.
//!
//! JSON allows `\u0000` and unpaired surrogate escapes such as `\ud800` in strings.
//! PostgreSQL's `text` and `jsonb` refuse a NUL character and `jsonb` an unpaired surrogate;
//! SQLite keeps them, but GDAL and QGIS cut text at a NUL. So a property key or value holding
//! either is a problem of its feature, governed by the validation policy like an invalid
//! geometry: skipped and reported, rejected, or (policy `repair`) stored with each such
//! character replaced by U+FFFD and reported as repaired. Never a failure of the whole file.

use std::borrow::Cow;

use crate::value::PropValue;

/// What a [`storable`] check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unstorable {
    Nul,
    LoneSurrogate,
}

impl Unstorable {
    pub fn describe(self) -> &'static str {
        match self {
            Unstorable::Nul => "a NUL character (\\u0000)",
            Unstorable::LoneSurrogate => "an unpaired UTF-16 surrogate escape",
        }
    }
}

/// Whether a property key can be stored as given.
pub fn check_key(key: &str) -> Option<Unstorable> {
    key.contains('\0').then_some(Unstorable::Nul)
}

/// Whether a property value can be stored as given.
pub fn check_value(value: &PropValue) -> Option<Unstorable> {
    match value {
        PropValue::Text(s) => s.contains('\0').then_some(Unstorable::Nul),
        PropValue::Json(json) => check_json_escapes(json),
        _ => None,
    }
}

/// The key with each NUL replaced by U+FFFD (both passes name the repaired key alike).
pub fn storable_key(key: &str) -> Cow<'_, str> {
    if key.contains('\0') {
        Cow::Owned(key.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(key)
    }
}

/// The value with each unstorable character replaced by U+FFFD.
pub fn storable_value(value: PropValue) -> PropValue {
    match value {
        PropValue::Text(s) if s.contains('\0') => PropValue::Text(s.replace('\0', "\u{FFFD}")),
        PropValue::Json(json) if check_json_escapes(&json).is_some() => PropValue::Json(replace_json_escapes(&json)),
        v => v,
    }
}

/// The first unstorable `\u` escape in JSON text (escaped backslashes are skipped).
fn check_json_escapes(json: &str) -> Option<Unstorable> {
    let mut found = None;
    walk_escapes(json, |escape| {
        found = found.or(escape.unstorable);
    });
    found
}

fn replace_json_escapes(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut last = 0;
    walk_escapes(json, |escape| {
        if escape.unstorable.is_some() {
            out.push_str(&json[last..escape.start]);
            out.push_str("\\ufffd");
            last = escape.start + 6;
        }
    });
    out.push_str(&json[last..]);
    out
}

struct Escape {
    /// Byte offset of the backslash of a `\uXXXX` escape.
    start: usize,
    unstorable: Option<Unstorable>,
}

/// Calls `seen` for each `\uXXXX` escape in JSON text, judging each on its own: a NUL, a
/// high surrogate not followed by a low one, or a low surrogate not after a high one.
fn walk_escapes(json: &str, mut seen: impl FnMut(Escape)) {
    let b = json.as_bytes();
    let hex = |at: usize| -> Option<u16> {
        let digits = b.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let unicode_escape = |at: usize| -> Option<u16> {
        if b.get(at) == Some(&b'\\') && b.get(at + 1) == Some(&b'u') {
            hex(at + 2)
        } else {
            None
        }
    };
    let mut i = 0;
    let mut after_high = false;
    while i < b.len() {
        if b[i] != b'\\' {
            after_high = false;
            i += 1;
            continue;
        }
        let Some(unit) = unicode_escape(i) else {
            // `\\`, `\"`, `\n`…: two bytes.
            after_high = false;
            i += 2;
            continue;
        };
        let unstorable = match unit {
            0 => Some(Unstorable::Nul),
            0xD800..=0xDBFF => {
                let paired = unicode_escape(i + 6).is_some_and(|next| (0xDC00..=0xDFFF).contains(&next));
                (!paired).then_some(Unstorable::LoneSurrogate)
            }
            0xDC00..=0xDFFF if !after_high => Some(Unstorable::LoneSurrogate),
            _ => None,
        };
        after_high = (0xD800..=0xDBFF).contains(&unit) && unstorable.is_none();
        seen(Escape { start: i, unstorable });
        i += 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> PropValue {
        PropValue::Json(s.into())
    }

    #[test]
    fn nul_and_unpaired_surrogates_are_found() {
        assert_eq!(check_value(&PropValue::Text("a\0b".into())), Some(Unstorable::Nul));
        assert_eq!(check_value(&PropValue::Text("a\u{FFFD}b".into())), None);
        assert_eq!(check_value(&json(r#"["\u0000"]"#)), Some(Unstorable::Nul));
        assert_eq!(check_value(&json(r#""\ud800""#)), Some(Unstorable::LoneSurrogate));
        assert_eq!(check_value(&json(r#""\udc00x""#)), Some(Unstorable::LoneSurrogate));
        assert_eq!(check_value(&json(r#""\ud800\u0041""#)), Some(Unstorable::LoneSurrogate));
        // A pair is one character; an escaped backslash is not an escape.
        assert_eq!(check_value(&json(r#""\ud83d\ude00""#)), None);
        assert_eq!(check_value(&json(r#"{"a":"\\u0000"}"#)), None);
        assert_eq!(check_value(&json(r#"{"a":"\\\u0000"}"#)), Some(Unstorable::Nul));
        assert_eq!(check_key("na\0me"), Some(Unstorable::Nul));
        assert_eq!(check_key("name"), None);
    }

    #[test]
    fn repairs_replace_each_unstorable_character() {
        assert_eq!(storable_value(PropValue::Text("a\0b\0".into())), PropValue::Text("a\u{FFFD}b\u{FFFD}".into()));
        assert_eq!(
            storable_value(json(r#"["\u0000","\ud800","\ud83d\ude00","\\u0000"]"#)),
            json(r#"["\ufffd","\ufffd","\ud83d\ude00","\\u0000"]"#)
        );
        assert_eq!(storable_key("a\0"), "a\u{FFFD}");
        let repaired = storable_value(json(r#""\udc00\ud800""#));
        assert_eq!(check_value(&repaired), None, "{repaired:?}");
    }
}
