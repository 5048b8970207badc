//! Any text that serde_json accepts (what the reader hands on) through the feature parser and
//! the property value classifier. Besides panics, it checks that a geometry parsed without
//! problems has finite WGS84 positions and that a real value is finite.

#![no_main]

use geoflow_core::crs::CrsTransform;
use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

const FIELD_TYPES: [FieldType; 9] = [
    FieldType::Null,
    FieldType::Boolean,
    FieldType::Integer,
    FieldType::WideInteger,
    FieldType::Real,
    FieldType::Date,
    FieldType::DateTime,
    FieldType::Text,
    FieldType::Json,
];

fuzz_target!(|text: &str| {
    if serde_json::from_str::<&RawValue>(text).is_err() {
        return;
    }
    for (parts, transform) in [
        (Parts::All, CrsTransform::Identity),
        (Parts::PropertiesOnly, CrsTransform::Identity),
        (Parts::All, CrsTransform::WebMercator),
    ] {
        let parsed = parse_feature(text.as_bytes(), transform, parts, |_, value| check_value(&value));
        check_value(&parsed.id);
        if let (Some(g), true) = (&parsed.geometry, parsed.problems.is_empty()) {
            g.for_each_pos(&mut |p| {
                assert!(p.x.is_finite() && p.y.is_finite() && !p.z.is_infinite(), "non-finite position {p:?}");
                assert!(p.x.abs() <= 180.0 + 1e-6 && p.y.abs() <= 90.0 + 1e-6, "position out of range {p:?}");
            });
        }
    }
    check_value(&PropValue::from_raw_json(text));
});

fn check_value(value: &PropValue) {
    if let PropValue::Real(f) = value {
        assert!(f.is_finite(), "Real({f})");
    }
    value.kind();
    value.to_json_text();
    for t in FIELD_TYPES {
        value.for_column(t);
    }
}
