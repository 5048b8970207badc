//! Property schema inference with lossless widening, and safe column names.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::geometry_type::GeometryKinds;
use crate::row::GeometryKind;
use crate::value::ValueKind;

/// The type of a property column. Widening ([`FieldType::join`]) never loses a value:
/// integers become reals only while every integer is exact as a double, and values of
/// types that do not meet (a string and a number, say) are all kept as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FieldType {
    /// Only nulls seen so far.
    #[default]
    Null,
    Boolean,
    /// 64-bit integers, all within ±2^53 (so they may still widen to [`FieldType::Real`]).
    Integer,
    /// 64-bit integers, some beyond ±2^53: widening with reals goes to JSON.
    WideInteger,
    Real,
    Date,
    DateTime,
    Text,
    Json,
}

impl FieldType {
    pub fn of(kind: ValueKind) -> FieldType {
        match kind {
            ValueKind::Null => FieldType::Null,
            ValueKind::Bool => FieldType::Boolean,
            ValueKind::Int => FieldType::Integer,
            ValueKind::WideInt => FieldType::WideInteger,
            ValueKind::Real => FieldType::Real,
            ValueKind::Date => FieldType::Date,
            ValueKind::DateTime => FieldType::DateTime,
            ValueKind::Text => FieldType::Text,
            ValueKind::Json => FieldType::Json,
        }
    }

    /// The narrowest type that holds every value of both.
    pub fn join(self, other: FieldType) -> FieldType {
        use FieldType::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Integer, WideInteger) | (WideInteger, Integer) => WideInteger,
            (Integer, Real) | (Real, Integer) => Real,
            (Date, DateTime) | (DateTime, Date) => Text,
            (Date | DateTime, Text) | (Text, Date | DateTime) => Text,
            _ => Json,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Null => "null",
            FieldType::Boolean => "boolean",
            FieldType::Integer => "integer",
            FieldType::WideInteger => "wide_integer",
            FieldType::Real => "real",
            FieldType::Date => "date",
            FieldType::DateTime => "date_time",
            FieldType::Text => "text",
            FieldType::Json => "json",
        }
    }

    /// The type named `name` (as [`FieldType::name`] spells it).
    pub fn from_name(name: &str) -> Option<FieldType> {
        use FieldType::*;
        [Null, Boolean, Integer, WideInteger, Real, Date, DateTime, Text, Json].into_iter().find(|t| t.name() == name)
    }

    pub fn is_integer(self) -> bool {
        matches!(self, FieldType::Integer | FieldType::WideInteger)
    }
}

/// A property key and the type its values need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub key: String,
    pub ty: FieldType,
}

/// The property schema of one source: keys in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub fields: Vec<Field>,
    /// The type the feature `id` member needs (`Null` when no feature has one).
    pub id_type: FieldType,
    /// The kinds of the geometries, and their dimensions.
    #[serde(default)]
    pub geometry: GeometryKinds,
}

impl Schema {
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.key == key)
    }
}

/// What a load may do to the types of a dataset's existing columns (`--schema-policy`).
/// New keys get new columns under either policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SchemaPolicy {
    /// Widen a column's type to hold the new values ([`FieldType::join`]), and report it.
    #[default]
    Widen,
    /// Reject a load that would change the type of an existing column.
    Strict,
}

impl SchemaPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaPolicy::Widen => "widen",
            SchemaPolicy::Strict => "strict",
        }
    }
}

impl std::str::FromStr for SchemaPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "widen" => Ok(SchemaPolicy::Widen),
            "strict" => Ok(SchemaPolicy::Strict),
            other => Err(format!("unknown schema policy {other:?}: use widen or strict")),
        }
    }
}

/// Builds a [`Schema`] one feature at a time.
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    schema: Schema,
    index: foldhash::HashMap<String, usize>,
}

impl SchemaBuilder {
    pub fn observe(&mut self, key: &str, kind: ValueKind) {
        self.observe_type(key, FieldType::of(kind));
    }

    fn observe_type(&mut self, key: &str, ty: FieldType) {
        match self.index.get(key) {
            Some(&i) => {
                let f = &mut self.schema.fields[i];
                f.ty = f.ty.join(ty);
            }
            None => {
                self.index.insert(key.to_string(), self.schema.fields.len());
                self.schema.fields.push(Field { key: key.to_string(), ty });
            }
        }
    }

    pub fn observe_id(&mut self, kind: ValueKind) {
        self.schema.id_type = self.schema.id_type.join(FieldType::of(kind));
    }

    /// Records a geometry's kind and whether it has Z (`None`: not known, e.g. empty).
    pub fn observe_geometry(&mut self, kind: GeometryKind, has_z: Option<bool>) {
        self.schema.geometry.observe(kind, has_z);
    }

    /// Adds what another builder saw after what this one saw (keys keep their first-seen order).
    pub fn merge(&mut self, other: SchemaBuilder) {
        for f in other.schema.fields {
            self.observe_type(&f.key, f.ty);
        }
        self.schema.id_type = self.schema.id_type.join(other.schema.id_type);
        self.schema.geometry.merge(other.schema.geometry);
    }

    /// Field index of `key`, if seen.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn finish(self) -> Schema {
        self.schema
    }
}

/// Longest column name PostgreSQL keeps (bytes); SQLite has no limit but we use one rule.
pub const MAX_COLUMN_NAME: usize = 63;

/// Turns untrusted property keys into safe, distinct SQL column names
/// (`[a-z_][a-z0-9_]*`, at most 63 bytes), distinct also under case folding.
#[derive(Debug, Clone, Default)]
pub struct ColumnNamer {
    taken: HashSet<String>,
}

impl ColumnNamer {
    /// A namer that will never hand out any of `reserved` (system columns, columns in use).
    pub fn new<'a>(reserved: impl IntoIterator<Item = &'a str>) -> Self {
        ColumnNamer { taken: reserved.into_iter().map(|s| s.to_ascii_lowercase()).collect() }
    }

    /// Reserves an existing column name.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_ascii_lowercase());
    }

    /// A new column name for `key`, distinct from every name handed out or reserved.
    pub fn name_for(&mut self, key: &str) -> String {
        let base = sanitise(key);
        let mut candidate = base.clone();
        let mut n = 2u32;
        while self.taken.contains(&candidate) {
            let suffix = format!("_{n}");
            candidate = format!("{}{}", truncate(&base, MAX_COLUMN_NAME - suffix.len()), suffix);
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

/// Lower-cases, maps anything outside `[a-z0-9_]` to `_`, prefixes a leading digit, and
/// shortens long keys with a hash of the whole key so that two long keys stay apart.
pub fn sanitise(key: &str) -> String {
    let mut s: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.is_empty() || s.as_bytes()[0].is_ascii_digit() {
        s.insert(0, 'p');
        if s.len() > 1 && s.as_bytes()[1] != b'_' {
            s.insert(1, '_');
        }
    }
    if s.len() > MAX_COLUMN_NAME {
        let hash = format!("_{:08x}", fnv1a(key.as_bytes()) as u32);
        s = format!("{}{}", truncate(&s, MAX_COLUMN_NAME - hash.len()), hash);
    }
    s
}

fn truncate(s: &str, max: usize) -> &str {
    // Sanitised names are ASCII, so any byte index is a char boundary.
    &s[..s.len().min(max)]
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_lossless() {
        use FieldType::*;
        assert_eq!(Integer.join(Real), Real);
        assert_eq!(WideInteger.join(Real), Json);
        assert_eq!(Integer.join(WideInteger), WideInteger);
        assert_eq!(Text.join(Integer), Json);
        assert_eq!(Null.join(Boolean), Boolean);
        assert_eq!(Date.join(DateTime), Text);
        assert_eq!(Boolean.join(Integer), Json);
        assert_eq!(Json.join(Null), Json);
    }

    #[test]
    fn merging_keeps_first_seen_order_and_widens() {
        let mut a = SchemaBuilder::default();
        a.observe("b", ValueKind::Int);
        let mut b = SchemaBuilder::default();
        b.observe("a", ValueKind::Text);
        b.observe("b", ValueKind::Real);
        b.observe_id(ValueKind::Text);
        a.merge(b);
        let s = a.finish();
        assert_eq!(
            s.fields.iter().map(|f| (f.key.as_str(), f.ty)).collect::<Vec<_>>(),
            vec![("b", FieldType::Real), ("a", FieldType::Text)]
        );
        assert_eq!(s.id_type, FieldType::Text);
    }

    #[test]
    fn column_names_are_safe_and_distinct() {
        let mut n = ColumnNamer::new(["fid", "geom"]);
        assert_eq!(n.name_for("Name"), "name");
        assert_eq!(n.name_for("name"), "name_2");
        assert_eq!(n.name_for("NAME"), "name_3");
        assert_eq!(n.name_for("fid"), "fid_2");
        assert_eq!(n.name_for("2nd floor"), "p_2nd_floor");
        assert_eq!(n.name_for("\"; DROP TABLE x; --"), "___drop_table_x____");
        assert_eq!(n.name_for(""), "p");
        let long_a = "a".repeat(100);
        let long_b = format!("{}b", "a".repeat(99));
        let (a, b) = (n.name_for(&long_a), n.name_for(&long_b));
        assert!(a.len() <= MAX_COLUMN_NAME && b.len() <= MAX_COLUMN_NAME);
        assert_ne!(a, b);
    }
}
