//! Sorting (OGC API – Features Part 8): the `sortby` parameter, each collection's sortables,
//! and the cursors of sorted pages.
//!
//! A page in `fid` order is keyed by a fid. A sorted page is keyed by the sort values of a
//! feature and its fid, so that every page, however deep, starts where the last one ended
//! (one index range scan where an index serves the first key). Such a cursor is an opaque
//! token: URL-safe base64 of `{"s":"name,-pop","v":[…],"f":fid}`, each value typed by its
//! property (reals as text, which reads back exactly). A token that does not decode, was made
//! for another order or holds a value its property cannot have is refused (400).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use geoflow_core::schema::FieldType;
use geoflow_store::features::sortable;
use geoflow_store::{DatasetInfo, SortKey, SortValue};
use serde_json::{json, Value};

/// The conformance class of sorting.
pub(super) const SORTING: &str = "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting";

/// The link relation of a collection's sortables.
pub(super) const SORTABLES_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/sortables";

/// The most keys a `sortby` may name: each adds a term to every cursor condition.
const MAX_SORT_KEYS: usize = 8;

/// Why a `sortby` or a sorted cursor is refused, for the 400's detail.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(super) enum SortError {
    #[error("sortby={0:?}: names no property")]
    Empty(String),
    #[error("sortby: at most {MAX_SORT_KEYS} properties")]
    TooMany,
    #[error("sortby: {dataset} has no property {key:?} (see its sortables)")]
    Unknown { dataset: String, key: String },
    #[error("sortby: property {0:?} holds JSON values (nested, or of mixed types), which have no order")]
    Unsortable(String),
    #[error("sortby: property {0:?} is named twice")]
    Repeated(String),
    #[error("{param}={token:?} is not a cursor of ours")]
    Malformed { param: &'static str, token: String },
    #[error("{param}: the cursor was made for another sortby; follow the links of a page of this order")]
    OtherOrder { param: &'static str },
}

/// The keys of `sortby=name,-pop` (a `+` or no sign ascending, `-` descending). A `+` sent
/// unencoded arrives as a space, which is trimmed.
pub(super) fn parse_sortby(value: &str, d: &DatasetInfo) -> Result<Vec<SortKey>, SortError> {
    let mut keys: Vec<SortKey> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let (key, descending) = match item.strip_prefix('-') {
            Some(key) => (key, true),
            None => (item.strip_prefix('+').unwrap_or(item), false),
        };
        let column = d
            .columns
            .iter()
            .find(|c| c.key == key)
            .ok_or_else(|| SortError::Unknown { dataset: d.name.as_str().to_string(), key: key.to_string() })?;
        if !sortable(column.ty) {
            return Err(SortError::Unsortable(key.to_string()));
        }
        if keys.iter().any(|k| k.key == key) {
            return Err(SortError::Repeated(key.to_string()));
        }
        keys.push(SortKey { key: key.to_string(), descending });
    }
    if keys.is_empty() {
        return Err(SortError::Empty(value.to_string()));
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(SortError::TooMany);
    }
    Ok(keys)
}

/// The order as a cursor records it: `name,-pop`.
fn order_text(sort: &[SortKey]) -> String {
    let keys: Vec<String> = sort.iter().map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.key)).collect();
    keys.join(",")
}

/// The cursor of the feature `fid` whose sort values are `values`.
pub(super) fn encode_cursor(sort: &[SortKey], values: &[SortValue], fid: i64) -> String {
    let values: Vec<Value> = values
        .iter()
        .map(|v| match v {
            SortValue::Null => Value::Null,
            SortValue::Bool(b) => json!(b),
            SortValue::Int(i) => json!(i),
            // Rust writes the shortest text that reads back as the same double.
            SortValue::Real(f) => json!(f.to_string()),
            SortValue::Text(s) => json!(s),
        })
        .collect();
    URL_SAFE_NO_PAD.encode(json!({ "s": order_text(sort), "v": values, "f": fid }).to_string())
}

/// The fid and sort values of a cursor of a page in the order `sort` of `d`'s features.
pub(super) fn decode_cursor(
    param: &'static str,
    token: &str,
    sort: &[SortKey],
    d: &DatasetInfo,
) -> Result<(i64, Vec<SortValue>), SortError> {
    let malformed = || SortError::Malformed { param, token: token.to_string() };
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| malformed())?;
    let cursor: Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if cursor["s"].as_str().ok_or_else(malformed)? != order_text(sort) {
        return Err(SortError::OtherOrder { param });
    }
    let fid = cursor["f"].as_i64().ok_or_else(malformed)?;
    let values = cursor["v"].as_array().filter(|v| v.len() == sort.len()).ok_or_else(malformed)?;
    let typed = sort.iter().zip(values).map(|(k, v)| {
        let ty = d.columns.iter().find(|c| c.key == k.key).map_or(FieldType::Json, |c| c.ty);
        sort_value(v, ty).filter(|v| v.fits(ty))
    });
    let values = typed.collect::<Option<Vec<_>>>().ok_or_else(malformed)?;
    Ok((fid, values))
}

/// A cursor's JSON value as the sort value of a property of type `ty`.
fn sort_value(v: &Value, ty: FieldType) -> Option<SortValue> {
    Some(match (v, ty) {
        (Value::Null, _) => SortValue::Null,
        (Value::Bool(b), FieldType::Boolean) => SortValue::Bool(*b),
        (Value::Number(n), FieldType::Integer | FieldType::WideInteger) => SortValue::Int(n.as_i64()?),
        (Value::String(s), FieldType::Real) => SortValue::Real(s.parse().ok()?),
        (Value::String(s), FieldType::Text | FieldType::Date | FieldType::DateTime) => SortValue::Text(s.clone()),
        _ => return None,
    })
}

/// The sortables of a collection: the properties `sortby` takes, as a JSON Schema.
pub(super) fn sortables_schema(base: &str, d: &DatasetInfo) -> Value {
    let mut properties = super::features::property_schemas(d);
    properties.retain(|key, _| d.columns.iter().any(|c| &c.key == key && sortable(c.ty)));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{base}/collections/{}/sortables", d.name.as_str()),
        "title": d.name.as_str(),
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::dataset::{DatasetMode, DatasetName};
    use geoflow_store::ColumnInfo;

    fn dataset() -> DatasetInfo {
        let column = |key: &str, ty| ColumnInfo { key: key.into(), column: key.into(), ty, overflow: false };
        DatasetInfo {
            name: DatasetName::new("places").unwrap(),
            table: "places".into(),
            feature_count: 0,
            bbox: None,
            sources: 0,
            columns: vec![
                column("name", FieldType::Text),
                column("pop", FieldType::WideInteger),
                column("score", FieldType::Real),
                column("day", FieldType::Date),
                column("nested", FieldType::Json),
            ],
            mode: DatasetMode::Append,
            key_property: None,
            temporal: None,
            geometry_type: "Geometry".into(),
            version: 0,
            updated_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn sortby_names_sortable_properties_once() {
        let d = dataset();
        let keys = parse_sortby(" name,-pop,+score", &d).unwrap();
        assert_eq!(order_text(&keys), "name,-pop,score");
        assert_eq!(parse_sortby(" day", &d).unwrap()[0], SortKey { key: "day".into(), descending: false });
        assert!(matches!(parse_sortby("nope", &d), Err(SortError::Unknown { key, .. }) if key == "nope"));
        assert_eq!(parse_sortby("nested", &d), Err(SortError::Unsortable("nested".into())));
        assert_eq!(parse_sortby("name,-name", &d), Err(SortError::Repeated("name".into())));
        assert_eq!(parse_sortby(" , ", &d), Err(SortError::Empty(" , ".into())));
    }

    #[test]
    fn cursors_read_back_exactly_and_refuse_what_does_not_fit() {
        let d = dataset();
        let sort = parse_sortby("name,-pop,score,day", &d).unwrap();
        let values = vec![
            SortValue::Text("Zürich \"x\"".into()),
            SortValue::Int(9_007_199_254_740_993),
            SortValue::Real(0.1 + 0.2),
            SortValue::Null,
        ];
        let token = encode_cursor(&sort, &values, 42);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        assert_eq!(decode_cursor("cursor", &token, &sort, &d).unwrap(), (42, values.clone()));
        let other = parse_sortby("name", &d).unwrap();
        assert_eq!(decode_cursor("cursor", &token, &other, &d), Err(SortError::OtherOrder { param: "cursor" }));
        let forged =
            |v: Value| URL_SAFE_NO_PAD.encode(json!({ "s": "name,-pop,score,day", "v": v, "f": 1 }).to_string());
        for bad in [
            forged(json!(["a", 1, "1.5"])),
            forged(json!(["a", "1", "1.5", null])),
            forged(json!(["a", 1, 1.5, null])),
            forged(json!(["a", 1, "NaN", null])),
            forged(json!(["a", 1, "1.5", "2024-02-30"])),
            forged(json!(["a\u{0}", 1, "1.5", null])),
            "%%%".to_string(),
            URL_SAFE_NO_PAD.encode("[1,2]"),
            "17".to_string(),
        ] {
            assert!(matches!(decode_cursor("before", &bad, &sort, &d), Err(SortError::Malformed { .. })), "{bad}");
        }
    }
}
