//! How a dataset's properties map onto table columns, for every store: the persistent
//! key → column mapping, and how a load's schema extends and widens it.

use std::collections::HashMap;

use geoflow_core::schema::{ColumnNamer, FieldType, Schema};

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

/// One property column of a dataset table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub key: String,
    pub name: String,
    pub ty: FieldType,
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
    /// their column type with [`FieldType::join`], new keys get new distinct column names.
    pub fn new(table: &str, old: Option<Layout>, schema: &Schema) -> Resolution {
        let mut new = old.clone().unwrap_or_else(|| Layout {
            table: table.to_string(),
            id_type: FieldType::Null,
            columns: Vec::new(),
        });
        new.id_type = new.id_type.join(schema.id_type);
        let mut namer = ColumnNamer::new(SYSTEM_COLUMNS);
        let mut by_key: HashMap<String, usize> = HashMap::with_capacity(new.columns.len() + schema.fields.len());
        for (i, c) in new.columns.iter().enumerate() {
            namer.reserve(&c.name);
            by_key.insert(c.key.clone(), i);
        }
        let mut field_columns = Vec::with_capacity(schema.fields.len());
        for field in &schema.fields {
            let i = match by_key.get(&field.key) {
                Some(&i) => {
                    let c = &mut new.columns[i];
                    c.ty = c.ty.join(field.ty);
                    i
                }
                None => {
                    let name = namer.name_for(&field.key);
                    new.columns.push(Column { key: field.key.clone(), name, ty: field.ty });
                    by_key.insert(field.key.clone(), new.columns.len() - 1);
                    new.columns.len() - 1
                }
            };
            field_columns.push(i);
        }
        Resolution { old, new, field_columns }
    }

    /// Refuses a table wider than the store can create (`max_columns` in all, system columns
    /// included): the dataset's properties are the input's, so this is bad input, reported
    /// before anything is written rather than as the database's failure.
    pub fn check_width(&self, max_columns: usize) -> Result<(), StoreError> {
        let columns = SYSTEM_COLUMNS.len() + self.new.columns.len();
        if columns <= max_columns {
            return Ok(());
        }
        Err(StoreError::Invalid(format!(
            "dataset {} would have {} distinct property keys, more than the {} columns a table of this store holds",
            self.new.table,
            self.new.columns.len(),
            max_columns - SYSTEM_COLUMNS.len()
        )))
    }
}
