//! How a dataset's properties map onto table columns, for every store: the persistent
//! key → column mapping, and how a load's schema extends and widens it.

use std::collections::HashMap;

use geoflow_core::row::Row;
use geoflow_core::schema::{ColumnNamer, FieldType, Schema};
use geoflow_core::value::PropValue;

use crate::StoreError;

/// Columns every dataset table has, in order, before the property columns.
pub const SYSTEM_COLUMNS: [&str; 15] = [
    "fid",
    "geom",
    "feature_id",
    "gf_source",
    "gf_load_id",
    "gf_loaded_at",
    "gf_feature_index",
    "gf_geometry_type",
    "gf_area_m2",
    "gf_length_m",
    "gf_vertices",
    "gf_min_x",
    "gf_min_y",
    "gf_max_x",
    "gf_max_y",
];

/// The JSON column that holds, under their original keys, the properties of a dataset beyond
/// the columns its store's tables can have. It exists once a dataset has such a property.
pub const OVERFLOW_COLUMN: &str = "gf_overflow";

/// One property of a dataset table: a column of its own, or a member of [`OVERFLOW_COLUMN`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub key: String,
    /// The column's name; [`OVERFLOW_COLUMN`] for an overflow property.
    pub name: String,
    /// How values are stored: always JSON for an overflow property.
    pub ty: FieldType,
    /// Stored in [`OVERFLOW_COLUMN`], as the member `key` of its object.
    pub overflow: bool,
}

impl Column {
    pub fn overflow(key: &str) -> Column {
        Column { key: key.to_string(), name: OVERFLOW_COLUMN.to_string(), ty: FieldType::Json, overflow: true }
    }
}

/// A dataset table as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub table: String,
    pub id_type: FieldType,
    /// In ordinal order (the table's column order).
    pub columns: Vec<Column>,
}

/// A field type as the catalog spells it.
pub fn parse_type(name: &str) -> Result<FieldType, StoreError> {
    FieldType::from_name(name).ok_or_else(|| StoreError::Incompatible {
        location: "catalog".into(),
        reason: format!("unknown field type {name:?} in the catalog"),
    })
}

/// How a load's schema maps onto the dataset table, and what the table needs first.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub old: Option<Layout>,
    pub new: Layout,
    /// For each field of the load's schema, the index of its column in `new.columns`.
    pub field_columns: Vec<usize>,
}

impl Resolution {
    /// Maps `schema` onto `old` (the current layout, if the table exists): known keys widen
    /// their column type with [`FieldType::join`], new keys get new distinct column names —
    /// while the table stays within `max_columns` (the store's limit, system columns
    /// included, with room for [`OVERFLOW_COLUMN`]); keys beyond go to that column. A key
    /// keeps its place once it has one.
    pub fn new(table: &str, old: Option<Layout>, schema: &Schema, max_columns: usize) -> Resolution {
        let mut new = old.clone().unwrap_or_else(|| Layout {
            table: table.to_string(),
            id_type: FieldType::Null,
            columns: Vec::new(),
        });
        new.id_type = new.id_type.join(schema.id_type);
        let mut namer = ColumnNamer::new(SYSTEM_COLUMNS.into_iter().chain([OVERFLOW_COLUMN]));
        let mut by_key: HashMap<String, usize> = HashMap::with_capacity(new.columns.len() + schema.fields.len());
        for (i, c) in new.columns.iter().enumerate() {
            namer.reserve(&c.name);
            by_key.insert(c.key.clone(), i);
        }
        let room = max_columns.saturating_sub(SYSTEM_COLUMNS.len() + 1);
        let mut own_columns = new.columns.iter().filter(|c| !c.overflow).count();
        let mut field_columns = Vec::with_capacity(schema.fields.len());
        for field in &schema.fields {
            let i = match by_key.get(&field.key) {
                Some(&i) => {
                    let c = &mut new.columns[i];
                    c.ty = c.ty.join(field.ty);
                    i
                }
                None => {
                    let column = if own_columns < room {
                        own_columns += 1;
                        Column {
                            key: field.key.clone(),
                            name: namer.name_for(&field.key),
                            ty: field.ty,
                            overflow: false,
                        }
                    } else {
                        Column::overflow(&field.key)
                    };
                    new.columns.push(column);
                    by_key.insert(field.key.clone(), new.columns.len() - 1);
                    new.columns.len() - 1
                }
            };
            field_columns.push(i);
        }
        Resolution { old, new, field_columns }
    }

    /// Whether this load gives the table its [`OVERFLOW_COLUMN`].
    pub fn adds_overflow(&self) -> bool {
        let has = |l: &Layout| l.columns.iter().any(|c| c.overflow);
        has(&self.new) && !self.old.as_ref().is_some_and(has)
    }

    /// Refuses a table wider than the store can create (`max_columns` in all, system columns
    /// included) — possible only for a table made before properties could overflow, with a
    /// property column named like the overflow column or no room left for it.
    pub fn check_width(&self, max_columns: usize) -> Result<(), StoreError> {
        let own = self.new.columns.iter().filter(|c| !c.overflow).count();
        let overflow = self.new.columns.len() > own;
        let clash = overflow && self.new.columns.iter().any(|c| !c.overflow && c.name == OVERFLOW_COLUMN);
        if SYSTEM_COLUMNS.len() + own + usize::from(overflow) <= max_columns && !clash {
            return Ok(());
        }
        Err(StoreError::Invalid(format!(
            "dataset {} has {own} property columns and cannot take the column {OVERFLOW_COLUMN} for its {} further \
             property keys: load them into a new dataset",
            self.new.table,
            self.new.columns.len() - own
        )))
    }
}

/// Where a load writes a schema field's values.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldSlot {
    /// A column of its own: its position among the statement's property columns, and its type.
    Column(usize, FieldType),
    /// A member of the row's [`OverflowObject`], under this key (as a JSON string).
    Overflow(String),
}

/// Sends each property of `row` where `fields` say: a column's to `column` (its position, its
/// type, its index in `row.properties`), an overflow one into `overflow` (started afresh).
pub fn route_properties(
    fields: &[FieldSlot],
    row: &Row,
    overflow: &mut OverflowObject,
    mut column: impl FnMut(usize, FieldType, usize) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    overflow.clear();
    for (n, (field, value)) in row.properties.iter().enumerate() {
        match fields.get(*field) {
            Some(&FieldSlot::Column(at, ty)) => column(at, ty, n)?,
            Some(FieldSlot::Overflow(key)) => {
                if *value != PropValue::Null {
                    overflow.push(key, &value.to_json_text());
                }
            }
            None => {
                return Err(StoreError::Internal(format!(
                    "row {} refers to property field {field}, but the schema has {} fields",
                    row.index,
                    fields.len()
                )))
            }
        }
    }
    Ok(())
}

/// The value of [`OVERFLOW_COLUMN`] in one row: a JSON object of the row's overflow
/// properties under their original keys (null values left out).
#[derive(Debug, Default)]
pub struct OverflowObject {
    text: String,
}

impl OverflowObject {
    /// Starts a new row's object.
    pub fn clear(&mut self) {
        self.text.clear();
    }

    /// Adds a member; `key_json` is the key as a JSON string, `value_json` the value's JSON text.
    pub fn push(&mut self, key_json: &str, value_json: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        self.text.push_str(key_json);
        self.text.push(':');
        self.text.push_str(value_json);
    }

    /// The object's text, `None` when the row has no overflow value.
    pub fn finish(&mut self) -> Option<&str> {
        if self.text.is_empty() {
            return None;
        }
        self.text.push('}');
        Some(&self.text)
    }
}

/// A key as a JSON string.
pub fn json_key(key: &str) -> String {
    serde_json::Value::String(key.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::schema::Field;

    fn schema(keys: &[&str]) -> Schema {
        let fields = keys.iter().map(|k| Field { key: k.to_string(), ty: FieldType::Integer }).collect();
        Schema { fields, id_type: FieldType::Null }
    }

    /// A store of `own` property columns at most.
    fn limit(own: usize) -> usize {
        SYSTEM_COLUMNS.len() + 1 + own
    }

    #[test]
    fn keys_beyond_the_store_limit_overflow_and_keep_their_place() {
        let first = Resolution::new("t", None, &schema(&["a", "b", "c", "gf_overflow"]), limit(2));
        let places: Vec<(&str, &str, bool)> =
            first.new.columns.iter().map(|c| (c.key.as_str(), c.name.as_str(), c.overflow)).collect();
        assert_eq!(
            places,
            [
                ("a", "a", false),
                ("b", "b", false),
                ("c", OVERFLOW_COLUMN, true),
                ("gf_overflow", OVERFLOW_COLUMN, true)
            ]
        );
        assert!(first.new.columns[2..].iter().all(|c| c.ty == FieldType::Json));
        assert!(first.adds_overflow());
        first.check_width(limit(2)).unwrap();

        // A later load with room to spare (a wider limit) keeps every key where it is.
        let second = Resolution::new("t", Some(first.new.clone()), &schema(&["c", "d", "a"]), limit(3));
        assert_eq!(second.field_columns, [2, 4, 0]);
        assert_eq!((second.new.columns[4].name.as_str(), second.new.columns[4].overflow), ("d", false));
        assert!(!second.adds_overflow());
    }

    #[test]
    fn a_property_column_named_like_the_overflow_column_is_never_handed_out() {
        let r = Resolution::new("t", None, &schema(&["gf_overflow"]), limit(5));
        assert_ne!(r.new.columns[0].name, OVERFLOW_COLUMN);
        assert!(!r.new.columns[0].overflow);
    }

    #[test]
    fn an_old_table_without_room_for_the_overflow_column_refuses_more_keys() {
        let full = Layout {
            table: "t".into(),
            id_type: FieldType::Null,
            columns: vec![Column { key: "a".into(), name: "a".into(), ty: FieldType::Integer, overflow: false }],
        };
        // One property column fills a store of one column more than the system columns.
        let r = Resolution::new("t", Some(full), &schema(&["b"]), SYSTEM_COLUMNS.len() + 1);
        assert!(r.new.columns[1].overflow);
        assert!(
            matches!(r.check_width(SYSTEM_COLUMNS.len() + 1), Err(StoreError::Invalid(m)) if m.contains("gf_overflow"))
        );
    }

    #[test]
    fn the_overflow_object_leaves_out_rows_without_values() {
        let mut o = OverflowObject::default();
        assert_eq!(o.finish(), None);
        o.clear();
        o.push(&json_key("a\"b"), "1");
        o.push(&json_key("c"), "[1,2]");
        assert_eq!(o.finish(), Some(r#"{"a\"b":1,"c":[1,2]}"#));
        o.clear();
        assert_eq!(o.finish(), None);
    }
}
