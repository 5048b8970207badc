//! How a dataset's properties map onto table columns, for every store: the persistent
//! key → column mapping, and how a load's schema extends and widens it.

use std::collections::HashMap;

use geoflow_core::dataset::FeatureKey;
use geoflow_core::geometry_type::{Fit, GeometryColumn, GeometryType};
use geoflow_core::report::Policy;
use geoflow_core::row::Row;
use geoflow_core::schema::{ColumnNamer, FieldType, Schema, SchemaPolicy};
use geoflow_core::value::PropValue;
use serde::{Deserialize, Serialize};

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

/// The geometry column of every dataset table.
pub const GEOMETRY_COLUMN: &str = "geom";

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
    /// The type of the geometry column ([`GEOMETRY_COLUMN`]).
    pub geometry: GeometryColumn,
    /// In ordinal order (the table's column order).
    pub columns: Vec<Column>,
}

/// Where a dataset table keeps the key of its rows ([`FeatureKey`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation<'a> {
    /// A column, by name.
    Column(&'a str),
    /// A member of the overflow column, by key.
    Member(&'a str),
}

impl Layout {
    /// Where the table keeps `key`; `None` for a property no row has had (no column).
    pub fn key_location(&self, key: &FeatureKey) -> Option<KeyLocation<'_>> {
        match key {
            FeatureKey::FeatureId => Some(KeyLocation::Column(FEATURE_ID_COLUMN)),
            FeatureKey::Property(name) => self.columns.iter().find(|c| &c.key == name).map(|c| match c.overflow {
                true => KeyLocation::Member(&c.key),
                false => KeyLocation::Column(&c.name),
            }),
        }
    }
}

/// Checks that `temporal` names date or date-time properties of a dataset with these columns
/// (key and type), two different ones for an interval.
pub fn check_temporal(
    dataset: &geoflow_core::dataset::DatasetName,
    columns: &[(String, FieldType)],
    temporal: &crate::Temporal,
) -> Result<(), StoreError> {
    if temporal.end.as_deref() == Some(temporal.start.as_str()) {
        return Err(StoreError::Invalid(format!(
            "the start and end of an interval are two properties, not {:?} twice",
            temporal.start
        )));
    }
    for key in temporal.keys() {
        match columns.iter().find(|(k, _)| k == key) {
            Some((_, FieldType::Date | FieldType::DateTime)) => {}
            Some((_, ty)) => {
                return Err(StoreError::Invalid(format!(
                    "property {key:?} of {} holds {} values, not dates or date-times (YYYY-MM-DD or \
                     YYYY-MM-DDTHH:MM:SS.sssZ)",
                    dataset.as_str(),
                    ty.name()
                )))
            }
            None => return Err(StoreError::Invalid(format!("dataset {} has no property {key:?}", dataset.as_str()))),
        }
    }
    Ok(())
}

/// The columns of a dataset's declared time (`start`, and `end` for an interval), which must
/// still be date or date-time ones: a load may have widened one to text since it was declared.
/// `dataset` names the dataset in the error.
pub fn temporal_columns<'a>(
    columns: &'a [Column],
    dataset: &str,
    temporal: &crate::Temporal,
) -> Result<(&'a Column, Option<&'a Column>), StoreError> {
    let column = |key: &str| {
        let c = columns.iter().find(|c| c.key == key);
        c.filter(|c| matches!(c.ty, FieldType::Date | FieldType::DateTime) && !c.overflow).ok_or_else(|| {
            StoreError::Invalid(format!(
                "property {key:?}, which places the features of {dataset} in time, no longer holds dates: declare \
                 another"
            ))
        })
    };
    Ok((column(&temporal.start)?, temporal.end.as_deref().map(column).transpose()?))
}

/// A field type as the catalog spells it.
pub fn parse_type(name: &str) -> Result<FieldType, StoreError> {
    FieldType::from_name(name).ok_or_else(|| StoreError::Incompatible {
        location: "catalog".into(),
        reason: format!("unknown field type {name:?} in the catalog"),
    })
}

/// The geometry type a load asks for, and whether its invalid features are repaired (a
/// repaired polygon may come out a MultiPolygon).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeometryRequest {
    pub ty: GeometryType,
    pub repair: bool,
}

impl GeometryRequest {
    pub fn new(ty: GeometryType, policy: Policy) -> GeometryRequest {
        GeometryRequest { ty, repair: policy == Policy::Repair }
    }
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
    ///
    /// The geometry column of a new table gets the type the load's geometry kinds and its
    /// request decide ([`GeometryColumn::decide`]); an existing one keeps its type while the
    /// load's rows fit it (single geometries promoted to its Multi kind), and widens to the
    /// generic type otherwise ([`GeometryColumn::widen`]).
    pub fn new(
        table: &str,
        old: Option<Layout>,
        schema: &Schema,
        geometry: GeometryRequest,
        max_columns: usize,
    ) -> Resolution {
        let kinds = geometry.ty.stored_kinds(schema.geometry, geometry.repair);
        let mut new = old.clone().unwrap_or_else(|| Layout {
            table: table.to_string(),
            id_type: FieldType::Null,
            geometry: GeometryColumn::decide(kinds, geometry.ty),
            columns: Vec::new(),
        });
        new.id_type = new.id_type.join(schema.id_type);
        new.geometry = new.geometry.widen(kinds, geometry.ty);
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

/// One change a load or removal made to a dataset table's layout, as the load summary, the
/// load history and the daily report list it. An overflow property (a member of
/// [`OVERFLOW_COLUMN`]) counts as a column: its `column` is [`OVERFLOW_COLUMN`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SchemaChange {
    /// A new property key got a column.
    Added { column: String, key: String, to: FieldType },
    /// A column's type widened to hold new values ([`FieldType::join`]).
    Widened { column: String, key: String, from: FieldType, to: FieldType },
    /// No row has a value in the column any more: it was dropped.
    Dropped { column: String, key: String, from: FieldType },
    /// The geometry column's type widened to hold geometries of other kinds or dimensions
    /// (`MultiPolygon` to `Geometry`, say).
    GeometryWidened { column: String, from: String, to: String },
}

impl SchemaChange {
    fn dropped(c: &Column) -> SchemaChange {
        SchemaChange::Dropped { column: c.name.clone(), key: c.key.clone(), from: c.ty }
    }

    /// The geometry column widened from `from` to `to`.
    pub fn geometry_widened(from: GeometryColumn, to: GeometryColumn) -> SchemaChange {
        SchemaChange::GeometryWidened { column: GEOMETRY_COLUMN.into(), from: from.to_string(), to: to.to_string() }
    }
}

impl Resolution {
    /// What this load changes in the table's layout: the geometry column's type, if it
    /// widens, then the columns it adds (every column, for the load that creates the table)
    /// and the types it widens, in column order.
    pub fn changes(&self) -> Vec<SchemaChange> {
        let old = self.old.as_ref().map_or(&[][..], |o| &o.columns[..]);
        let mut changes = Vec::new();
        if let Some(o) = self.old.as_ref().filter(|o| o.geometry != self.new.geometry) {
            changes.push(SchemaChange::geometry_widened(o.geometry, self.new.geometry));
        }
        for (i, c) in self.new.columns.iter().enumerate() {
            let (column, key) = (c.name.clone(), c.key.clone());
            match old.get(i) {
                None => changes.push(SchemaChange::Added { column, key, to: c.ty }),
                Some(o) if o.ty != c.ty => changes.push(SchemaChange::Widened { column, key, from: o.ty, to: c.ty }),
                Some(_) => {}
            }
        }
        if let Some(old) = self.old.as_ref().filter(|o| o.id_type != self.new.id_type) {
            let (column, key) = (FEATURE_ID_COLUMN.to_string(), FEATURE_ID_KEY.to_string());
            changes.push(SchemaChange::Widened { column, key, from: old.id_type, to: self.new.id_type });
        }
        changes
    }
}

/// The column of the Feature `id` member, reported under the key [`FEATURE_ID_KEY`].
pub const FEATURE_ID_COLUMN: &str = "feature_id";
pub const FEATURE_ID_KEY: &str = "id";

/// A column type that a load under [`SchemaPolicy::Strict`] may not change.
#[derive(Debug, Clone)]
struct Guarded {
    /// The field of the load's schema whose values go to the column; `None` for the Feature
    /// `id` ([`FEATURE_ID_COLUMN`], which no property column is named).
    field: Option<usize>,
    column: String,
    key: String,
    from: FieldType,
    to: FieldType,
}

/// Holds a load under [`SchemaPolicy::Strict`] to the column types the table has: the first
/// row with a value its column's type cannot hold rejects the load, naming the feature.
#[derive(Debug, Clone, Default)]
pub struct TypeGuard {
    guarded: Vec<Guarded>,
    /// The geometry column's type before the load, and after, when the load widens it.
    geometry: Option<(GeometryColumn, GeometryColumn)>,
}

impl TypeGuard {
    /// The guard of a load of `schema` under `policy` that makes `changes`: nothing to guard
    /// under [`SchemaPolicy::Widen`]. A column that so far held only nulls takes its first
    /// type under either policy: no stored value changes.
    pub fn new(policy: SchemaPolicy, schema: &Schema, changes: &[SchemaChange]) -> TypeGuard {
        TypeGuard::with_geometry(policy, schema, changes, None)
    }

    /// [`TypeGuard::new`], also holding the load to the geometry column's type `old` when it
    /// would widen to `new` (`geometry`: `Some((old, new))` for a table that existed).
    pub fn with_geometry(
        policy: SchemaPolicy,
        schema: &Schema,
        changes: &[SchemaChange],
        geometry: Option<(GeometryColumn, GeometryColumn)>,
    ) -> TypeGuard {
        if policy == SchemaPolicy::Widen {
            return TypeGuard::default();
        }
        let geometry = geometry.filter(|(old, new)| old != new);
        let guarded = changes
            .iter()
            .filter_map(|change| match change {
                SchemaChange::Widened { column, key, from, to } if *from != FieldType::Null => Some(Guarded {
                    field: match column.as_str() {
                        FEATURE_ID_COLUMN => None,
                        _ => Some(schema.index_of(key)?),
                    },
                    column: column.clone(),
                    key: key.clone(),
                    from: *from,
                    to: *to,
                }),
                _ => None,
            })
            .collect();
        TypeGuard { guarded, geometry }
    }

    /// Rejects the load at the first row (in source order) with a value that does not fit its
    /// column's type.
    pub fn check(&self, rows: &[Row]) -> Result<(), StoreError> {
        if let Some((old, new)) = self.geometry {
            for row in rows {
                if let Some(g) = row.geometry.as_ref().filter(|g| old.fit(g) == Fit::Misfit) {
                    let kind = if g.has_z { format!("{}Z", g.kind.name()) } else { g.kind.name().to_string() };
                    return Err(geometry_rejection(&format!("feature {} has a {kind} geometry", row.index), old, new));
                }
            }
        }
        if self.guarded.is_empty() {
            return Ok(());
        }
        for row in rows {
            let id = std::iter::once((None, &row.id));
            for (field, value) in id.chain(row.properties.iter().map(|(field, value)| (Some(*field), value))) {
                let Some(g) = self.guarded.iter().find(|g| g.field == field) else { continue };
                let ty = FieldType::of(value.kind());
                if g.from.join(ty) != g.from {
                    return Err(self.reject(g, &format!("feature {} has a {} value", row.index, ty.name())));
                }
            }
        }
        Ok(())
    }

    /// Rejects the load if a change remains guarded once every row passed [`TypeGuard::check`]:
    /// the value that needs it is in a feature that was not stored (skipped as invalid).
    pub fn finish(&self) -> Result<(), StoreError> {
        if let Some((old, new)) = self.geometry {
            return Err(geometry_rejection("a feature that was not stored has a geometry of another type", old, new));
        }
        match self.guarded.first() {
            None => Ok(()),
            Some(g) => Err(self.reject(g, "a feature that was not stored has a value of another type")),
        }
    }

    fn reject(&self, g: &Guarded, which: &str) -> StoreError {
        StoreError::Invalid(format!(
            "schema policy strict: {which} for key {:?}, which would change column {:?} from {} to {}",
            g.key,
            g.column,
            g.from.name(),
            g.to.name()
        ))
    }
}

/// Why a load under [`SchemaPolicy::Strict`] is rejected for the geometry column.
pub fn geometry_rejection(which: &str, from: GeometryColumn, to: GeometryColumn) -> StoreError {
    StoreError::Invalid(format!(
        "schema policy strict: {which}, which would change column {GEOMETRY_COLUMN:?} from {from} to {to}"
    ))
}

/// The property columns that may have lost their last value when rows left the table: those
/// whose keys the rows coming in (`incoming`: a load's schema; `None` for a removal) do not
/// have.
pub fn drop_candidates(layout: &Layout, incoming: Option<&Schema>) -> Vec<Column> {
    let kept = |c: &Column| incoming.is_some_and(|s| s.index_of(&c.key).is_some());
    layout.columns.iter().filter(|c| !kept(c)).cloned().collect()
}

/// What dropping unused property columns does to a table and its catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDrop {
    pub table: String,
    /// Table columns to drop: own columns, and [`OVERFLOW_COLUMN`] when its last key goes.
    pub columns: Vec<String>,
    /// Keys to forget in the catalog.
    pub keys: Vec<String>,
    /// The keys that stay, in column order (the catalog numbers them afresh from 0).
    pub remaining: Vec<String>,
}

impl Layout {
    /// How to drop `unused` (columns of this layout) from the table and the catalog.
    pub fn drop_columns(&self, unused: &[Column]) -> ColumnDrop {
        let gone = |c: &Column| unused.iter().any(|u| u.key == c.key);
        let mut columns: Vec<String> = unused.iter().filter(|c| !c.overflow).map(|c| c.name.clone()).collect();
        let overflow_stays = self.columns.iter().any(|c| c.overflow && !gone(c));
        if unused.iter().any(|c| c.overflow) && !overflow_stays {
            columns.push(OVERFLOW_COLUMN.to_string());
        }
        ColumnDrop {
            table: self.table.clone(),
            columns,
            keys: unused.iter().map(|c| c.key.clone()).collect(),
            remaining: self.columns.iter().filter(|c| !gone(c)).map(|c| c.key.clone()).collect(),
        }
    }
}

/// The changes that dropping `unused` reports.
pub fn dropped(unused: &[Column]) -> Vec<SchemaChange> {
    unused.iter().map(SchemaChange::dropped).collect()
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
    use geoflow_core::geometry_type::{Dim, GeometryKinds};
    use geoflow_core::row::GeometryKind;
    use geoflow_core::schema::Field;

    fn schema(keys: &[&str]) -> Schema {
        let fields = keys.iter().map(|k| Field { key: k.to_string(), ty: FieldType::Integer }).collect();
        Schema { fields, id_type: FieldType::Null, ..Default::default() }
    }

    /// A store of `own` property columns at most.
    fn limit(own: usize) -> usize {
        SYSTEM_COLUMNS.len() + 1 + own
    }

    #[test]
    fn keys_beyond_the_store_limit_overflow_and_keep_their_place() {
        let first =
            Resolution::new("t", None, &schema(&["a", "b", "c", "gf_overflow"]), GeometryRequest::default(), limit(2));
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
        let second = Resolution::new(
            "t",
            Some(first.new.clone()),
            &schema(&["c", "d", "a"]),
            GeometryRequest::default(),
            limit(3),
        );
        assert_eq!(second.field_columns, [2, 4, 0]);
        assert_eq!((second.new.columns[4].name.as_str(), second.new.columns[4].overflow), ("d", false));
        assert!(!second.adds_overflow());
    }

    #[test]
    fn a_property_column_named_like_the_overflow_column_is_never_handed_out() {
        let r = Resolution::new("t", None, &schema(&["gf_overflow"]), GeometryRequest::default(), limit(5));
        assert_ne!(r.new.columns[0].name, OVERFLOW_COLUMN);
        assert!(!r.new.columns[0].overflow);
    }

    #[test]
    fn an_old_table_without_room_for_the_overflow_column_refuses_more_keys() {
        let full = Layout {
            table: "t".into(),
            id_type: FieldType::Null,
            geometry: GeometryColumn::generic(Dim::Xy),
            columns: vec![Column { key: "a".into(), name: "a".into(), ty: FieldType::Integer, overflow: false }],
        };
        // One property column fills a store of one column more than the system columns.
        let r = Resolution::new("t", Some(full), &schema(&["b"]), GeometryRequest::default(), SYSTEM_COLUMNS.len() + 1);
        assert!(r.new.columns[1].overflow);
        assert!(
            matches!(r.check_width(SYSTEM_COLUMNS.len() + 1), Err(StoreError::Invalid(m)) if m.contains("gf_overflow"))
        );
    }

    fn typed(fields: &[(&str, FieldType)]) -> Schema {
        let fields = fields.iter().map(|(k, ty)| Field { key: k.to_string(), ty: *ty }).collect();
        Schema { fields, id_type: FieldType::Null, ..Default::default() }
    }

    fn row(index: u64, properties: Vec<(usize, PropValue)>) -> Row {
        Row { index, id: PropValue::Null, geometry: None, measures: Default::default(), properties }
    }

    #[test]
    fn changes_list_added_columns_and_widened_types() {
        let first =
            Resolution::new("t", None, &typed(&[("pop", FieldType::Integer)]), GeometryRequest::default(), limit(1));
        assert_eq!(
            first.changes(),
            [SchemaChange::Added { column: "pop".into(), key: "pop".into(), to: FieldType::Integer }]
        );
        let schema = typed(&[("name", FieldType::Text), ("pop", FieldType::Text), ("x", FieldType::Real)]);
        let second = Resolution::new("t", Some(first.new.clone()), &schema, GeometryRequest::default(), limit(2));
        assert_eq!(
            second.changes(),
            [
                SchemaChange::Widened {
                    column: "pop".into(),
                    key: "pop".into(),
                    from: FieldType::Integer,
                    to: FieldType::Json
                },
                SchemaChange::Added { column: "name".into(), key: "name".into(), to: FieldType::Text },
                SchemaChange::Added { column: OVERFLOW_COLUMN.into(), key: "x".into(), to: FieldType::Json },
            ]
        );
        let json = serde_json::to_value(&second.changes()[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"change": "widened", "column": "pop", "key": "pop", "from": "integer", "to": "json"})
        );
        // The same schema again changes nothing.
        assert!(Resolution::new("t", Some(second.new.clone()), &schema, GeometryRequest::default(), limit(2))
            .changes()
            .is_empty());
    }

    #[test]
    fn a_strict_load_is_rejected_at_the_first_value_its_column_cannot_hold() {
        let first = Resolution::new(
            "t",
            None,
            &typed(&[("a", FieldType::Text), ("pop", FieldType::Integer)]),
            GeometryRequest::default(),
            limit(5),
        );
        let schema = typed(&[("pop", FieldType::Json), ("new", FieldType::Real)]);
        let second = Resolution::new("t", Some(first.new.clone()), &schema, GeometryRequest::default(), limit(5));
        assert!(TypeGuard::new(SchemaPolicy::Widen, &schema, &second.changes()).finish().is_ok());

        let guard = TypeGuard::new(SchemaPolicy::Strict, &schema, &second.changes());
        // New columns are allowed; values that fit pass.
        guard.check(&[row(0, vec![(0, PropValue::Int(3)), (1, PropValue::Real(1.5))])]).unwrap();
        let err = guard
            .check(&[row(1, vec![(0, PropValue::Null)]), row(2, vec![(0, PropValue::Text("many".into()))])])
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        let text = err.to_string();
        for part in ["feature 2", "\"pop\"", "integer", "json", "text value"] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        // No row showed it: the feature was not stored, the load is rejected all the same.
        assert!(guard.finish().is_err());

        // A column that held only nulls takes its first type.
        let nulls = Resolution::new("t", None, &typed(&[("n", FieldType::Null)]), GeometryRequest::default(), limit(5));
        let schema = typed(&[("n", FieldType::Integer)]);
        let typed_now = Resolution::new("t", Some(nulls.new), &schema, GeometryRequest::default(), limit(5));
        assert_eq!(typed_now.changes().len(), 1);
        assert!(TypeGuard::new(SchemaPolicy::Strict, &schema, &typed_now.changes()).finish().is_ok());
    }

    #[test]
    fn a_feature_id_type_change_is_reported_and_guarded() {
        let with_id = |ty| Schema { id_type: ty, ..typed(&[("id", FieldType::Integer)]) };
        let first = Resolution::new("t", None, &with_id(FieldType::Integer), GeometryRequest::default(), limit(5));
        let second = Resolution::new(
            "t",
            Some(first.new.clone()),
            &with_id(FieldType::Text),
            GeometryRequest::default(),
            limit(5),
        );
        let widened = SchemaChange::Widened {
            column: FEATURE_ID_COLUMN.into(),
            key: FEATURE_ID_KEY.into(),
            from: FieldType::Integer,
            to: FieldType::Json,
        };
        assert_eq!(second.changes(), [widened]);
        // Under strict, the first feature whose id the column cannot hold rejects the load; the
        // property that happens to be named "id" is not the Feature id.
        let guard = TypeGuard::new(SchemaPolicy::Strict, &with_id(FieldType::Text), &second.changes());
        let mut keyed = row(0, vec![(0, PropValue::Int(1))]);
        keyed.id = PropValue::Int(7);
        guard.check(&[keyed.clone()]).unwrap();
        keyed.id = PropValue::Text("a7".into());
        let err = guard.check(&[keyed]).unwrap_err().to_string();
        assert!(err.contains("feature 0") && err.contains("feature_id"), "{err}");
    }

    #[test]
    fn dropping_the_last_overflow_key_drops_the_overflow_column() {
        let r = Resolution::new("t", None, &schema(&["a", "b", "c", "d"]), GeometryRequest::default(), limit(2));
        let layout = r.new;
        assert_eq!(drop_candidates(&layout, Some(&schema(&["a", "c"]))).len(), 2);
        assert_eq!(drop_candidates(&layout, None).len(), 4);

        let c = layout.columns[2].clone();
        let one = layout.drop_columns(std::slice::from_ref(&c));
        assert!(one.columns.is_empty(), "{one:?}");
        assert_eq!(
            (one.keys.clone(), one.remaining.clone()),
            (vec!["c".to_string()], vec!["a".into(), "b".into(), "d".into()])
        );

        let both = layout.drop_columns(&[layout.columns[0].clone(), c, layout.columns[3].clone()]);
        assert_eq!(both.columns, ["a", OVERFLOW_COLUMN]);
        assert_eq!(both.remaining, ["b"]);
        assert_eq!(
            dropped(&layout.columns[..1]),
            [SchemaChange::Dropped { column: "a".into(), key: "a".into(), from: FieldType::Integer }]
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

    fn with_kinds(kinds: &[GeometryKind], z: bool) -> Schema {
        Schema { geometry: GeometryKinds::of(kinds, z), ..Schema::default() }
    }

    fn geometry_row(index: u64, kind: GeometryKind) -> Row {
        Row { geometry: Some(geoflow_core::geometry_type::empty_geometry(kind, false)), ..row(index, vec![]) }
    }

    #[test]
    fn the_geometry_column_is_typed_and_widens_as_a_reported_change() {
        use GeometryKind::*;
        let auto = GeometryRequest::default();
        let first = Resolution::new("t", None, &with_kinds(&[Polygon, MultiPolygon], false), auto, limit(1));
        assert_eq!(first.new.geometry, GeometryColumn::new(Some(MultiPolygon), Dim::Xy));
        assert!(first.changes().is_empty(), "a new table reports its property columns only");

        // Polygons fit a MultiPolygon column: nothing changes.
        let polygons = Resolution::new("t", Some(first.new.clone()), &with_kinds(&[Polygon], false), auto, limit(1));
        assert_eq!(polygons.new.geometry, first.new.geometry);
        assert!(polygons.changes().is_empty());
        // Nor do null geometries only.
        let nulls = Resolution::new("t", Some(first.new.clone()), &Schema::default(), auto, limit(1));
        assert!(nulls.changes().is_empty());

        // Points do not: the column becomes generic, and the load reports it.
        let points = Resolution::new("t", Some(first.new.clone()), &with_kinds(&[Point], false), auto, limit(1));
        assert_eq!(points.new.geometry, GeometryColumn::generic(Dim::Xy));
        let change =
            SchemaChange::GeometryWidened { column: "geom".into(), from: "MultiPolygon".into(), to: "Geometry".into() };
        assert_eq!(points.changes(), std::slice::from_ref(&change));
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            serde_json::json!({"change": "geometry_widened", "column": "geom", "from": "MultiPolygon", "to": "Geometry"})
        );

        // `any` asks for a generic column; repair makes a polygon layer MultiPolygon.
        let any = GeometryRequest { ty: GeometryType::Any, repair: false };
        let widened = Resolution::new("t", Some(first.new.clone()), &with_kinds(&[Polygon], false), any, limit(1));
        assert_eq!(widened.new.geometry, GeometryColumn::generic(Dim::Xy));
        let repair = GeometryRequest::new(GeometryType::Auto, Policy::Repair);
        let repaired = Resolution::new("t", None, &with_kinds(&[Polygon], false), repair, limit(1));
        assert_eq!(repaired.new.geometry, GeometryColumn::new(Some(MultiPolygon), Dim::Xy));
        // Z.
        let z = Resolution::new("t", None, &with_kinds(&[Point], true), auto, limit(1));
        assert_eq!(z.new.geometry.to_string(), "PointZ");
        // An empty dataset gets a generic column.
        let empty = Resolution::new("t", None, &Schema::default(), auto, limit(1));
        assert_eq!(empty.new.geometry, GeometryColumn::generic(Dim::Xy));
    }

    #[test]
    fn a_strict_load_that_would_widen_the_geometry_column_is_rejected() {
        use GeometryKind::*;
        let old = GeometryColumn::new(Some(MultiPolygon), Dim::Xy);
        let new = GeometryColumn::generic(Dim::Xy);
        let schema = with_kinds(&[Polygon, Point], false);
        assert!(TypeGuard::with_geometry(SchemaPolicy::Widen, &schema, &[], Some((old, new))).finish().is_ok());
        let guard = TypeGuard::with_geometry(SchemaPolicy::Strict, &schema, &[], Some((old, new)));
        // A polygon fits (as a MultiPolygon of one part); the point does not.
        guard.check(&[geometry_row(0, Polygon), row(1, vec![])]).unwrap();
        let err = guard.check(&[geometry_row(2, MultiPolygon), geometry_row(3, Point)]).unwrap_err();
        let text = err.to_string();
        for part in ["strict", "feature 3", "Point geometry", "\"geom\"", "MultiPolygon", "Geometry"] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        assert!(guard.finish().is_err());
        // Nothing to guard when the column keeps its type.
        assert!(TypeGuard::with_geometry(SchemaPolicy::Strict, &schema, &[], Some((old, old))).finish().is_ok());
    }
}
