//! Dataset feature tables: declared types, the key → column mapping, creation, lossless
//! widening (in place or by rebuilding the table) and the R-tree index DDL.

use std::borrow::Cow;
use std::collections::HashMap;

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

use geoflow_core::dataset::DatasetMode;
use geoflow_core::geometry_type::{Dim, GeometryColumn};
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;
use serde_json::value::RawValue;

use super::geometry::SRS_ID;
use super::rtree::rtree_name;
use super::Ctx;
use crate::layout::{parse_type, Column, ColumnDrop, Layout, Resolution, GEOMETRY_COLUMN, OVERFLOW_COLUMN};
use crate::StoreError;

const FEATURE_TABLE_SQL: &str = include_str!("sql/feature_table.sql");
const RTREE_SQL: &str = include_str!("sql/rtree.sql");
const RTREE_INSERT_TRIGGER_SQL: &str = include_str!("sql/rtree_insert_trigger.sql");
const RTREE_UPDATE_TRIGGERS_SQL: &str = include_str!("sql/rtree_update_triggers.sql");
const RTREE_DELETE_TRIGGER_SQL: &str = include_str!("sql/rtree_delete_trigger.sql");

pub const RTREE_EXTENSION_DEFINITION: &str = "http://www.geopackage.org/spec/#extension_rtree";
pub const JSON_MIME_TYPE: &str = "application/json";

/// Suffix of the per-table source index (indexes share the table namespace); dataset names
/// ending with it are refused by [`DatasetName`](geoflow_core::dataset::DatasetName).
const SOURCE_INDEX_SUFFIX: &str = geoflow_core::dataset::RESERVED_SUFFIXES[0];

/// `"name"`, with embedded quotes doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLite/GeoPackage column type a field type is declared with.
pub fn declared_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "BOOLEAN",
        FieldType::Integer | FieldType::WideInteger => "INTEGER",
        FieldType::Real => "REAL",
        FieldType::Date => "DATE",
        FieldType::DateTime => "DATETIME",
        FieldType::Text | FieldType::Json | FieldType::Null => "TEXT",
    }
}

fn field_type_code(ty: FieldType) -> i64 {
    use FieldType::*;
    match ty {
        Null => 0,
        Boolean => 1,
        Integer => 2,
        WideInteger => 3,
        Real => 4,
        Date => 5,
        DateTime => 6,
        Text => 7,
        Json => 8,
    }
}

fn field_type_from_code(code: i64) -> Option<FieldType> {
    use FieldType::*;
    [Null, Boolean, Integer, WideInteger, Real, Date, DateTime, Text, Json]
        .into_iter()
        .find(|t| field_type_code(*t) == code)
}

/// Whether values stored for `old` must be rewritten to be values of `new`.
fn needs_conversion(old: FieldType, new: FieldType) -> bool {
    use FieldType::*;
    !(old == new
        || old == Null
        || (old.is_integer() && new.is_integer())
        || (matches!(old, Date | DateTime) && new == Text))
}

/// Reads a stored value back as the property value it was, given its column's type.
pub fn stored_value(v: ValueRef<'_>, ty: FieldType) -> PropValue {
    match v {
        ValueRef::Null => PropValue::Null,
        ValueRef::Integer(i) => match ty {
            FieldType::Boolean => PropValue::Bool(i != 0),
            FieldType::Real => PropValue::Real(i as f64),
            _ => PropValue::Int(i),
        },
        ValueRef::Real(f) => PropValue::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let s = String::from_utf8_lossy(t).into_owned();
            if ty == FieldType::Json {
                PropValue::Json(s)
            } else {
                PropValue::Text(s)
            }
        }
    }
}

/// The SQLite value a property value is stored as.
pub fn sql_value(v: PropValue) -> Value {
    match v {
        PropValue::Null => Value::Null,
        PropValue::Bool(b) => Value::Integer(i64::from(b)),
        PropValue::Int(i) => Value::Integer(i),
        PropValue::Real(f) => Value::Real(f),
        PropValue::Text(s) | PropValue::Json(s) => Value::Text(s),
    }
}

/// Whether the table has the overflow column.
pub fn has_overflow(layout: &Layout) -> bool {
    layout.columns.iter().any(|c| c.overflow)
}

/// A property's stored value in SQL: its column, or its member of the overflow column as
/// JSON text (`gf_member`).
pub fn column_expr(c: &Column) -> String {
    if c.overflow {
        format!("gf_member({}, '{}')", quote(OVERFLOW_COLUMN), c.key.replace('\'', "''"))
    } else {
        quote(&c.name)
    }
}

/// A stored property value of one row, as [`PropertyColumns::each`] hands it out.
pub enum PropertyValue<'a> {
    /// The value of the property's own column.
    Stored(ValueRef<'a>),
    /// The JSON text of its member of the overflow column; `None` when the row has none.
    Member(Option<&'a RawValue>),
}

/// Where a select holds the properties of a layout: its own columns, then the overflow
/// column once (a result set has at most as many columns as a table, so overflow properties
/// are never selected one by one).
pub struct PropertyColumns {
    /// Per layout column: its position in the result, or its key in the overflow object.
    slots: Vec<Result<usize, String>>,
    overflow_at: Option<usize>,
}

impl PropertyColumns {
    /// The select list (each item preceded by a comma) of `layout`'s properties, starting at
    /// result position `first`.
    pub fn new(layout: &Layout, first: usize) -> (String, PropertyColumns) {
        let mut list = String::new();
        let mut next = first;
        let slots = layout
            .columns
            .iter()
            .map(|c| {
                if c.overflow {
                    return Err(c.key.clone());
                }
                list.push_str(", ");
                list.push_str(&quote(&c.name));
                next += 1;
                Ok(next - 1)
            })
            .collect();
        let overflow_at = has_overflow(layout).then(|| {
            list.push_str(", ");
            list.push_str(&quote(OVERFLOW_COLUMN));
            next
        });
        (list, PropertyColumns { slots, overflow_at })
    }

    /// Where the value of the layout's column `index` is in a row; `None` for an overflow
    /// property (a member of the overflow column).
    pub fn position(&self, index: usize) -> Option<usize> {
        self.slots.get(index)?.as_ref().ok().copied()
    }

    /// Calls `f` with each layout column's index and value in the row, in layout order.
    pub fn each(
        &self,
        row: &rusqlite::Row<'_>,
        mut f: impl FnMut(usize, PropertyValue<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "reading a feature's properties";
        let corrupt = |e: &dyn std::fmt::Display| StoreError::Incompatible {
            location: "a feature table".into(),
            reason: format!("a value of {OVERFLOW_COLUMN} is not a JSON object: {e}"),
        };
        let object = match self.overflow_at {
            Some(at) => row.get_ref(at).ctx(CONTEXT)?.as_str_or_null().map_err(|e| corrupt(&e))?,
            None => None,
        };
        let members: HashMap<Cow<'_, str>, &RawValue> = match object {
            Some(text) => serde_json::from_str(text).map_err(|e| corrupt(&e))?,
            None => HashMap::new(),
        };
        for (i, slot) in self.slots.iter().enumerate() {
            let value = match slot {
                Ok(at) => PropertyValue::Stored(row.get_ref(*at).ctx(CONTEXT)?),
                Err(key) => PropertyValue::Member(members.get(key.as_str()).copied()),
            };
            f(i, value)?;
        }
        Ok(())
    }
}

/// The JSON text of member `key` of the JSON object `object`; `None` when it has none.
fn json_member(object: &str, key: &str) -> Option<String> {
    let members: HashMap<Cow<'_, str>, &RawValue> = serde_json::from_str(object).ok()?;
    members.get(key).map(|v| v.get().to_string())
}

/// Registers `gf_widen(value, old_type, new_type)`, the lossless conversion of a stored value
/// to a wider column type, done in Rust with the core's rules (SQLite's own casts are lossy),
/// and `gf_member(object, key)`, the JSON text of a member of a JSON object (SQLite's JSON
/// paths cannot name every key, and its functions rewrite numbers).
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("gf_member", 2, flags, |ctx| {
        let (Ok(Some(object)), Ok(key)) = (ctx.get::<Option<String>>(0), ctx.get::<String>(1)) else {
            return Ok(None);
        };
        Ok(json_member(&object, &key))
    })?;
    conn.create_scalar_function("gf_widen", 3, flags, |ctx| {
        let old = ctx.get::<i64>(1).ok().and_then(field_type_from_code);
        let new = ctx.get::<i64>(2).ok().and_then(field_type_from_code);
        let (Some(old), Some(new)) = (old, new) else {
            return Err(rusqlite::Error::UserFunctionError("gf_widen: unknown field type code".into()));
        };
        Ok(sql_value(stored_value(ctx.get_raw(0), old).for_column(new)))
    })
}

/// Reads the layout of `dataset` from the catalog; `None` when the dataset is unknown.
pub fn read_layout(conn: &Connection, dataset: &str) -> Result<Option<Layout>, StoreError> {
    let row = conn
        .prepare_cached("SELECT table_name, id_type FROM geoflow_datasets WHERE name = ?1")
        .and_then(|mut s| s.query_row([dataset], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).optional())
        .ctx("reading the dataset catalog")?;
    let Some((table, id_type)) = row else {
        return Ok(None);
    };
    let id_type = parse_type(&id_type)?;
    let geometry = geometry_column(conn, &table)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, column_name, field_type, overflow FROM geoflow_columns WHERE dataset = ?1 ORDER BY ordinal",
        )
        .ctx("reading the column catalog")?;
    let rows = stmt
        .query_map([dataset], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, bool>(3)?))
        })
        .ctx("reading the column catalog")?;
    let mut columns = Vec::new();
    for row in rows {
        let (key, name, ty, overflow) = row.ctx("reading the column catalog")?;
        columns.push(Column { key, name, ty: parse_type(&ty)?, overflow });
    }
    Ok(Some(Layout { table, id_type, geometry, columns }))
}

/// `gpkg_geometry_columns.z` of a dimension: prohibited, mandatory, optional.
fn z_flag(dim: Dim) -> i64 {
    match dim {
        Dim::Xy => 0,
        Dim::Xyz => 1,
        Dim::Mixed => 2,
    }
}

/// The type of a table's geometry column, as `gpkg_geometry_columns` records it. Tables
/// created before geometry columns were typed are `GEOMETRY` with Z optional: generic.
fn geometry_column(conn: &Connection, table: &str) -> Result<GeometryColumn, StoreError> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT geometry_type_name, z FROM gpkg_geometry_columns WHERE table_name = ?1 AND column_name = ?2",
        )
        .and_then(|mut s| s.query_row([table, GEOMETRY_COLUMN], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .ctx("reading the geometry column's type")?;
    let Some((name, z)) = row else { return Ok(GeometryColumn::generic(Dim::Mixed)) };
    let dim = match z {
        0 => Dim::Xy,
        1 => Dim::Xyz,
        _ => Dim::Mixed,
    };
    let kind = GeometryColumn::kind_of_ogc_name(&name).ok_or_else(|| StoreError::Incompatible {
        location: "gpkg_geometry_columns".into(),
        reason: format!("geometry type {name:?} of table {table:?} is not one geoflow writes"),
    })?;
    Ok(GeometryColumn::new(kind, dim))
}

/// Records a new geometry column type for a table whose stored geometries all fit it: in
/// `gpkg_geometry_columns`, and as the column's declared type (which the GeoPackage requires
/// to be the type's name). SQLite cannot change a declared type in place, and a declared type
/// changes no stored value (geometries are blobs, which no type affinity converts), so the
/// table's definition is edited as SQLite documents for such changes: in the schema table,
/// with the schema version bumped so that every connection reads it again.
pub fn set_geometry_type(tx: &Connection, table: &str, to: GeometryColumn) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE gpkg_geometry_columns SET geometry_type_name = ?3, z = ?4 WHERE table_name = ?1 AND column_name = ?2",
        params![table, GEOMETRY_COLUMN, to.ogc_name(), z_flag(to.dim)],
    )
    .ctx("recording the geometry column's type")?;
    let sql: String = tx
        .query_row("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
        .ctx("reading the table's definition")?;
    let Some(declared) = redeclare_geometry(&sql, to.ogc_name()) else {
        return Err(StoreError::Incompatible {
            location: format!("table {table:?}"),
            reason: "its definition has no geometry column geoflow can retype".into(),
        });
    };
    if declared == sql {
        return Ok(());
    }
    let version: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0)).ctx("reading the schema version")?;
    tx.execute_batch("PRAGMA writable_schema = ON").ctx("retyping the geometry column")?;
    let updated =
        tx.execute("UPDATE sqlite_master SET sql = ?2 WHERE type = 'table' AND name = ?1", params![table, declared]);
    tx.execute_batch(&format!("PRAGMA writable_schema = OFF; PRAGMA schema_version = {}", version + 1))
        .ctx("retyping the geometry column")?;
    updated.ctx("retyping the geometry column")?;
    Ok(())
}

/// The table definition `sql` with the geometry column declared as `type_name`: the column
/// is defined on a line of its own (`\n  geom GEOMETRY,`) in every table geoflow creates.
fn redeclare_geometry(sql: &str, type_name: &str) -> Option<String> {
    let start = sql.find("\n  geom ")? + "\n  geom ".len();
    let end = start + sql[start..].find(',')?;
    let declared = &sql[start..end];
    if !declared.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    Some(format!("{}{type_name}{}", &sql[..start], &sql[end..]))
}

/// Whether a declared column type changes, which SQLite can only do by rebuilding.
pub fn needs_rebuild(r: &Resolution) -> bool {
    let Some(old) = &r.old else { return false };
    declared_type(old.id_type) != declared_type(r.new.id_type)
        || old
            .columns
            .iter()
            .zip(&r.new.columns)
            .any(|(o, n)| !o.overflow && declared_type(o.ty) != declared_type(n.ty))
}

/// Brings the table to the new layout: creates it, or rebuilds it, or adds columns and
/// converts values in place. Updates the catalog's column mapping and gpkg_data_columns.
pub fn apply_resolution(
    r: &Resolution,
    tx: &Connection,
    (dataset, mode): (&str, DatasetMode),
    now: &str,
) -> Result<(), StoreError> {
    let table = &r.new.table;
    match &r.old {
        None => create_dataset(tx, (dataset, mode), &r.new, now)?,
        Some(old) if needs_rebuild(r) => rebuild(tx, old, &r.new)?,
        Some(old) => {
            for c in r.new.columns[old.columns.len()..].iter().filter(|c| !c.overflow) {
                let sql = format!("ALTER TABLE {} ADD COLUMN {} {}", quote(table), quote(&c.name), declared_type(c.ty));
                tx.execute_batch(&sql).ctx("adding a column")?;
            }
            if r.adds_overflow() {
                let sql = format!("ALTER TABLE {} ADD COLUMN {} TEXT", quote(table), quote(OVERFLOW_COLUMN));
                tx.execute_batch(&sql).ctx("adding the overflow column")?;
            }
            let mut conversions: Vec<(&str, FieldType, FieldType)> = Vec::new();
            if needs_conversion(old.id_type, r.new.id_type) {
                conversions.push(("feature_id", old.id_type, r.new.id_type));
            }
            for (o, n) in old.columns.iter().zip(&r.new.columns).filter(|(o, _)| !o.overflow) {
                if needs_conversion(o.ty, n.ty) {
                    conversions.push((&n.name, o.ty, n.ty));
                }
            }
            for (name, from, to) in conversions {
                let c = quote(name);
                let sql = format!(
                    "UPDATE {} SET {c} = gf_widen({c}, {}, {}) WHERE {c} IS NOT NULL",
                    quote(table),
                    field_type_code(from),
                    field_type_code(to)
                );
                tx.execute_batch(&sql).ctx("widening a column")?;
            }
        }
    }
    if let Some(old) = r.old.as_ref().filter(|o| o.geometry != r.new.geometry) {
        tracing::debug!(table, from = %old.geometry, to = %r.new.geometry, "widening the geometry column");
        set_geometry_type(tx, table, r.new.geometry)?;
    }
    write_catalog(r, tx, dataset)
}

/// Whether any row has a value in `column` (for an overflow property, a member under its key
/// in the overflow column).
pub fn column_in_use(tx: &Connection, layout: &Layout, column: &Column) -> Result<bool, StoreError> {
    let t = quote(&layout.table);
    if column.overflow {
        let o = quote(OVERFLOW_COLUMN);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE {o} IS NOT NULL
               AND EXISTS (SELECT 1 FROM json_each({t}.{o}) WHERE json_each.key = ?1))"
        );
        tx.query_row(&sql, [&column.key], |r| r.get(0)).ctx("looking for values in a column")
    } else {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE {} IS NOT NULL)", quote(&column.name));
        tx.query_row(&sql, [], |r| r.get(0)).ctx("looking for values in a column")
    }
}

/// Drops columns from the table, gpkg_data_columns and the catalog, numbering the remaining
/// keys afresh in column order.
pub fn drop_columns(tx: &Connection, dataset: &str, drop: &ColumnDrop) -> Result<(), StoreError> {
    for column in &drop.columns {
        let sql = format!("ALTER TABLE {} DROP COLUMN {}", quote(&drop.table), quote(column));
        tx.execute_batch(&sql).ctx("dropping an unused column")?;
        tx.execute(
            "DELETE FROM gpkg_data_columns WHERE table_name = ?1 AND column_name = ?2",
            params![drop.table, column],
        )
        .ctx("dropping an unused column")?;
    }
    for key in &drop.keys {
        tx.execute("DELETE FROM geoflow_columns WHERE dataset = ?1 AND key = ?2", params![dataset, key])
            .ctx("forgetting dropped columns")?;
    }
    // Out of the way first: ordinals are unique.
    tx.execute("UPDATE geoflow_columns SET ordinal = -1 - ordinal WHERE dataset = ?1", [dataset])
        .ctx("renumbering columns")?;
    let mut renumber = tx
        .prepare_cached("UPDATE geoflow_columns SET ordinal = ?3 WHERE dataset = ?1 AND key = ?2")
        .ctx("renumbering columns")?;
    for (i, key) in drop.remaining.iter().enumerate() {
        renumber.execute(params![dataset, key, i as i64]).ctx("renumbering columns")?;
    }
    Ok(())
}

fn write_catalog(r: &Resolution, tx: &Connection, dataset: &str) -> Result<(), StoreError> {
    let old_columns = r.old.as_ref().map_or(&[][..], |o| &o.columns[..]);
    let old_id = r.old.as_ref().map(|o| o.id_type);
    let table = &r.new.table;
    if old_id != Some(r.new.id_type) {
        tx.execute("UPDATE geoflow_datasets SET id_type = ?2 WHERE name = ?1", params![dataset, r.new.id_type.name()])
            .ctx("recording the id type")?;
        upsert_data_column(tx, table, "feature_id", "id", r.new.id_type)?;
    }
    let mut upsert_column = tx
        .prepare_cached(
            "INSERT INTO geoflow_columns (dataset, ordinal, key, column_name, field_type, overflow)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (dataset, key) DO UPDATE SET field_type = excluded.field_type",
        )
        .ctx("recording columns")?;
    for (i, c) in r.new.columns.iter().enumerate() {
        if old_columns.get(i) == Some(c) {
            continue;
        }
        let row = params![dataset, i as i64, c.key, c.name, c.ty.name(), c.overflow];
        upsert_column.execute(row).ctx("recording columns")?;
        if !c.overflow {
            upsert_data_column(tx, table, &c.name, &c.key, c.ty)?;
        }
    }
    if r.adds_overflow() {
        upsert_data_column(tx, table, OVERFLOW_COLUMN, OVERFLOW_COLUMN, FieldType::Json)?;
    }
    Ok(())
}

fn upsert_data_column(
    tx: &Connection,
    table: &str,
    column: &str,
    title: &str,
    ty: FieldType,
) -> Result<(), StoreError> {
    let mime = (ty == FieldType::Json).then_some(JSON_MIME_TYPE);
    tx.prepare_cached(
        "INSERT INTO gpkg_data_columns (table_name, column_name, name, title, description, mime_type, constraint_name)
         VALUES (?1, ?2, NULL, ?3, NULL, ?4, NULL)
         ON CONFLICT (table_name, column_name) DO UPDATE SET title = excluded.title, mime_type = excluded.mime_type",
    )
    .and_then(|mut s| s.execute(params![table, column, title, mime]))
    .ctx("recording gpkg_data_columns")?;
    Ok(())
}

fn create_table_sql(name: &str, layout: &Layout) -> String {
    let mut columns = String::new();
    for c in layout.columns.iter().filter(|c| !c.overflow) {
        columns.push_str(",\n  ");
        columns.push_str(&quote(&c.name));
        columns.push(' ');
        columns.push_str(declared_type(c.ty));
    }
    if has_overflow(layout) {
        columns.push_str(&format!(",\n  {} TEXT", quote(OVERFLOW_COLUMN)));
    }
    FEATURE_TABLE_SQL
        .replace("{table}", &quote(name))
        .replace("{geometry_type}", layout.geometry.ogc_name())
        .replace("{id_type}", declared_type(layout.id_type))
        .replace("{columns}", &columns)
}

fn fill_rtree_template(sql: &str, table: &str) -> String {
    let rtree = rtree_name(table);
    let mut out = sql.replace("{table}", &quote(table)).replace("{rtree}", &quote(&rtree));
    for t in ["insert", "update1", "update2", "update3", "update4", "delete"] {
        out = out.replace(&format!("{{trigger_{t}}}"), &quote(&format!("{rtree}_{t}")));
    }
    out
}

/// The index on `gf_source` and the R-tree triggers: what a table needs beside its rows.
fn create_table_dependents(tx: &Connection, table: &str) -> Result<(), StoreError> {
    let index =
        format!("CREATE INDEX {} ON {}(gf_source)", quote(&format!("{table}{SOURCE_INDEX_SUFFIX}")), quote(table));
    tx.execute_batch(&index).ctx("creating the source index")?;
    for sql in [RTREE_INSERT_TRIGGER_SQL, RTREE_UPDATE_TRIGGERS_SQL, RTREE_DELETE_TRIGGER_SQL] {
        tx.execute_batch(&fill_rtree_template(sql, table)).ctx("creating the R-tree triggers")?;
    }
    Ok(())
}

/// Drops the R-tree insert and delete triggers, so that a load can maintain the R-tree
/// itself ([`super::rtree`]).
pub fn suspend_rtree_triggers(tx: &Connection, table: &str) -> Result<(), StoreError> {
    let rtree = rtree_name(table);
    let sql = format!(
        "DROP TRIGGER {}; DROP TRIGGER {};",
        quote(&format!("{rtree}_insert")),
        quote(&format!("{rtree}_delete"))
    );
    tx.execute_batch(&sql).ctx("suspending the R-tree triggers")
}

/// Recreates the triggers [`suspend_rtree_triggers`] dropped, exactly as they were.
pub fn restore_rtree_triggers(tx: &Connection, table: &str) -> Result<(), StoreError> {
    tx.execute_batch(&fill_rtree_template(RTREE_INSERT_TRIGGER_SQL, table)).ctx("restoring the R-tree triggers")?;
    tx.execute_batch(&fill_rtree_template(RTREE_DELETE_TRIGGER_SQL, table)).ctx("restoring the R-tree triggers")
}

fn create_dataset(
    tx: &Connection,
    (dataset, mode): (&str, DatasetMode),
    layout: &Layout,
    now: &str,
) -> Result<(), StoreError> {
    let table = &layout.table;
    let exists: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?1))", [table], |r| r.get(0))
        .ctx("checking the table name")?;
    if exists {
        return Err(StoreError::Conflict(format!(
            "the GeoPackage already holds a table or index named {table:?} that geoflow does not manage"
        )));
    }
    tx.execute_batch(&create_table_sql(table, layout)).ctx("creating the feature table")?;
    tx.execute_batch(&RTREE_SQL.replace("{rtree}", &quote(&rtree_name(table)))).ctx("creating the R-tree")?;
    create_table_dependents(tx, table)?;
    tx.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change, srs_id)
         VALUES (?1, 'features', ?2, '', ?3, ?4)",
        params![table, dataset, now, SRS_ID],
    )
    .ctx("registering the table in gpkg_contents")?;
    tx.execute(
        "INSERT INTO gpkg_geometry_columns (table_name, column_name, geometry_type_name, srs_id, z, m)
         VALUES (?1, 'geom', ?2, ?3, ?4, 0)",
        params![table, layout.geometry.ogc_name(), SRS_ID, z_flag(layout.geometry.dim)],
    )
    .ctx("registering the geometry column")?;
    tx.execute(
        "INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope)
         VALUES (?1, 'geom', 'gpkg_rtree_index', ?2, 'write-only')",
        params![table, RTREE_EXTENSION_DEFINITION],
    )
    .ctx("registering the spatial index")?;
    tx.execute(
        "INSERT INTO geoflow_datasets (name, table_name, id_type, version, created_at, updated_at, mode)
         VALUES (?1, ?2, 'null', 0, ?3, ?3, ?4)",
        params![dataset, table, now, mode.as_str()],
    )
    .ctx("registering the dataset")?;
    Ok(())
}

/// Rebuilds the table with new declared types, keeping every fid (so the R-tree stays valid)
/// and converting each stored value losslessly with `gf_widen`.
fn rebuild(tx: &Connection, old: &Layout, new: &Layout) -> Result<(), StoreError> {
    let table = &old.table;
    let scratch = format!("geoflow_rebuild_{table}");
    tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote(&scratch))).ctx("rebuilding the table")?;
    tx.execute_batch(&create_table_sql(&scratch, new)).ctx("rebuilding the table")?;

    let widen = |name: &str, from: FieldType, to: FieldType| {
        if needs_conversion(from, to) {
            format!("gf_widen({}, {}, {})", quote(name), field_type_code(from), field_type_code(to))
        } else {
            quote(name)
        }
    };
    let mut targets: Vec<String> = crate::layout::SYSTEM_COLUMNS.iter().map(|c| quote(c)).collect();
    let mut sources: Vec<String> = crate::layout::SYSTEM_COLUMNS
        .iter()
        .map(|c| if *c == "feature_id" { widen(c, old.id_type, new.id_type) } else { quote(c) })
        .collect();
    for (o, n) in old.columns.iter().zip(&new.columns).filter(|(o, _)| !o.overflow) {
        targets.push(quote(&n.name));
        sources.push(widen(&o.name, o.ty, n.ty));
    }
    if has_overflow(old) {
        targets.push(quote(OVERFLOW_COLUMN));
        sources.push(quote(OVERFLOW_COLUMN));
    }
    let copy = format!(
        "INSERT INTO {} ({}) SELECT {} FROM {} ORDER BY fid",
        quote(&scratch),
        targets.join(", "),
        sources.join(", "),
        quote(table)
    );
    tx.execute_batch(&copy).ctx("copying rows into the rebuilt table")?;

    let sequence: Option<i64> = tx
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [table], |r| r.get(0))
        .optional()
        .ctx("reading the fid sequence")?;
    tx.execute_batch(&format!("DROP TABLE {}", quote(table))).ctx("dropping the old table")?;
    tx.execute_batch(&format!("ALTER TABLE {} RENAME TO {}", quote(&scratch), quote(table)))
        .ctx("renaming the rebuilt table")?;
    if let Some(seq) = sequence {
        // AUTOINCREMENT never reuses a fid: keep the old high-water mark.
        let current: Option<i64> = tx
            .query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [table], |r| r.get(0))
            .optional()
            .ctx("reading the fid sequence")?;
        tx.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [table]).ctx("restoring the fid sequence")?;
        tx.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
            params![table, seq.max(current.unwrap_or(0))],
        )
        .ctx("restoring the fid sequence")?;
    }
    create_table_dependents(tx, table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::schema::Field;

    #[test]
    fn stored_values_widen_like_the_core_does() {
        let cases = [
            (PropValue::Int(9007199254740993), FieldType::WideInteger, FieldType::Json),
            (PropValue::Int(7), FieldType::Integer, FieldType::Real),
            (PropValue::Bool(true), FieldType::Boolean, FieldType::Json),
            (PropValue::Real(0.1), FieldType::Real, FieldType::Json),
            (PropValue::Text("a\"b".into()), FieldType::Text, FieldType::Json),
            (PropValue::Text("2024-01-02".into()), FieldType::Date, FieldType::Text),
            (PropValue::Json("[1,2]".into()), FieldType::Json, FieldType::Json),
        ];
        for (value, from, to) in cases {
            let stored = sql_value(value.for_column(from));
            let back = stored_value(ValueRef::from(&stored), from);
            assert_eq!(back, value.for_column(from));
            assert_eq!(sql_value(back.for_column(to)), sql_value(value.for_column(to)), "{value:?} {from:?}->{to:?}");
        }
    }

    #[test]
    fn resolution_names_and_widens() {
        use geoflow_core::schema::Schema;
        let schema = |fields: &[(&str, FieldType)]| Schema {
            fields: fields.iter().map(|(k, t)| Field { key: k.to_string(), ty: *t }).collect(),
            id_type: FieldType::Null,
            ..Default::default()
        };
        let first = Resolution::new(
            "t",
            None,
            &schema(&[("Name", FieldType::Text), ("fid", FieldType::Integer)]),
            Default::default(),
            2000,
        );
        assert!(!needs_rebuild(&first));
        let names: Vec<_> = first.new.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["name", "fid_2"]);
        let second = Resolution::new(
            "t",
            Some(first.new.clone()),
            &schema(&[("name", FieldType::Text), ("Name", FieldType::Integer)]),
            Default::default(),
            2000,
        );
        assert_eq!(second.field_columns, vec![2, 0]);
        assert_eq!(second.new.columns[2].name, "name_2");
        assert_eq!(second.new.columns[0].ty, FieldType::Json);
        assert!(!needs_rebuild(&second), "TEXT stays TEXT");
        let third =
            Resolution::new("t", Some(first.new), &schema(&[("fid", FieldType::Real)]), Default::default(), 2000);
        assert!(needs_rebuild(&third));
    }
}
