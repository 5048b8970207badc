//! Dataset tables: column types, the key → column mapping, creation and lossless widening.

use tokio_postgres::GenericClient;

use geoflow_core::dataset::DatasetMode;
use geoflow_core::geometry_type::{Dim, GeometryColumn};
use geoflow_core::row::GeometryKind;
use geoflow_core::schema::FieldType;

use super::{Ctx, PostgisStore, DATASET_SCHEMA};
use crate::layout::{parse_type, Column, ColumnDrop, Layout, Resolution, GEOMETRY_COLUMN, OVERFLOW_COLUMN};
use crate::StoreError;

const FEATURE_TABLE_SQL: &str = include_str!("sql/feature_table.sql");
const FEATURE_TABLE_KEYS_SQL: &str = include_str!("sql/feature_table_keys.sql");

/// `"name"`, with embedded quotes doubled: an identifier PostgreSQL takes literally, whatever
/// it contains.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `datasets."name"`.
pub fn qualified(table: &str) -> String {
    format!("{}.{}", quote_ident(DATASET_SCHEMA), quote_ident(table))
}

/// The PostgreSQL type of a field type's column.
pub fn pg_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "boolean",
        FieldType::Integer | FieldType::WideInteger => "bigint",
        FieldType::Real => "double precision",
        FieldType::Date => "date",
        FieldType::DateTime => "timestamptz",
        FieldType::Text | FieldType::Null => "text",
        FieldType::Json => "jsonb",
    }
}

/// The PostGIS type of a geometry column: `geometry(MultiPolygon,4326)`, `geometry(PointZ,4326)`,
/// `geometry(Geometry,4326)`; a column of 2D and 3D geometries has no type modifier (a
/// modifier fixes the dimension) and keeps its SRID by the table's check constraint.
pub fn pg_geometry_type(g: GeometryColumn) -> String {
    let z = match g.dim {
        Dim::Mixed => return "geometry".into(),
        Dim::Xyz => "Z",
        Dim::Xy => "",
    };
    format!("geometry({}{z},4326)", g.kind.map_or("Geometry", GeometryKind::name))
}

/// The geometry column type [`pg_geometry_type`] wrote, from `format_type` of the column: a
/// column without a type modifier (every table created before geometry columns were typed)
/// is generic, of any dimension.
pub fn parse_pg_geometry_type(formatted: &str) -> GeometryColumn {
    let untyped = GeometryColumn::generic(Dim::Mixed);
    let Some(inner) = formatted.strip_prefix("geometry(").and_then(|t| t.strip_suffix(')')) else { return untyped };
    let name = inner.split(',').next().unwrap_or_default();
    let (name, dim) = match name.strip_suffix('Z') {
        Some(n) => (n, Dim::Xyz),
        None => (name, Dim::Xy),
    };
    match GeometryColumn::kind_of_ogc_name(name) {
        Some(kind) => GeometryColumn::new(kind, dim),
        None => untyped,
    }
}

/// The text form the core gives date-times (`YYYY-MM-DDTHH:MM:SS.SSSZ`), in SQL.
pub(crate) fn datetime_text(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

/// The `USING` expression that converts a column of type `old` to `new` keeping every value
/// exactly, or `None` when the column type stays.
fn conversion(column: &str, old: FieldType, new: FieldType) -> Option<String> {
    use FieldType::*;
    if pg_type(old) == pg_type(new) {
        return None;
    }
    let c = quote_ident(column);
    Some(match (old, new) {
        // Only nulls were stored.
        (Null, _) => "NULL".to_string(),
        (_, Json) => match old {
            DateTime => format!("to_jsonb({})", datetime_text(&c)),
            Date => format!("to_jsonb(to_char({c}, 'YYYY-MM-DD'))"),
            _ => format!("to_jsonb({c})"),
        },
        (Date, Text) => format!("to_char({c}, 'YYYY-MM-DD')"),
        (DateTime, Text) => datetime_text(&c),
        // Integers widen to reals only within ±2^53, where doubles are exact.
        (_, Real) => format!("{c}::double precision"),
        (_, ty) => format!("{c}::{}", pg_type(ty)),
    })
}

/// Reads the layout of `dataset` from the catalog; `None` when the dataset is unknown.
pub async fn read_layout(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &str,
) -> Result<Option<Layout>, StoreError> {
    let Some(row) = client
        .query_opt("SELECT table_name, id_type FROM geoflow.datasets WHERE name = $1", &[&dataset])
        .await
        .ctx(store, "reading the dataset catalog")?
    else {
        return Ok(None);
    };
    let table: String = row.get(0);
    let id_type = parse_type(row.get(1))?;
    let formatted: Option<String> = client
        .query_one(
            "SELECT (SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                     WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)",
            &[&qualified(&table), &GEOMETRY_COLUMN],
        )
        .await
        .ctx(store, "reading the geometry column's type")?
        .get(0);
    let geometry = parse_pg_geometry_type(formatted.as_deref().unwrap_or("geometry"));
    let rows = client
        .query(
            "SELECT key, column_name, field_type, overflow FROM geoflow.columns WHERE dataset = $1 ORDER BY ordinal",
            &[&dataset],
        )
        .await
        .ctx(store, "reading the column catalog")?;
    let mut columns = Vec::with_capacity(rows.len());
    for r in rows {
        columns.push(Column { key: r.get(0), name: r.get(1), ty: parse_type(r.get(2))?, overflow: r.get(3) });
    }
    Ok(Some(Layout { table, id_type, geometry, columns }))
}

/// Brings the table to the new layout (creates it, or adds columns and widens types) and
/// records the layout in the catalog. Returns whether the table was created; a table
/// created with `with_indexes` false has neither its primary key nor its spatial index yet
/// (see [`create_keys_and_indexes`]).
pub async fn apply_resolution(
    r: &Resolution,
    store: &PostgisStore,
    tx: &impl GenericClient,
    dataset: &str,
    mode: DatasetMode,
    with_indexes: bool,
) -> Result<bool, StoreError> {
    let table = qualified(&r.new.table);
    let created = match &r.old {
        None => {
            create_table(store, tx, (dataset, mode), &r.new, with_indexes).await?;
            true
        }
        Some(old) => {
            let mut clauses = Vec::new();
            for c in r.new.columns[old.columns.len()..].iter().filter(|c| !c.overflow) {
                clauses.push(format!("ADD COLUMN {} {}", quote_ident(&c.name), pg_type(c.ty)));
            }
            if r.adds_overflow() {
                clauses.push(format!("ADD COLUMN {} jsonb", quote_ident(OVERFLOW_COLUMN)));
            }
            if old.geometry != r.new.geometry {
                clauses.push(geometry_retype(r.new.geometry));
            }
            if let Some(using) = conversion("feature_id", old.id_type, r.new.id_type) {
                clauses.push(format!("ALTER COLUMN feature_id TYPE {} USING {using}", pg_type(r.new.id_type)));
            }
            for (o, n) in old.columns.iter().zip(&r.new.columns).filter(|(o, _)| !o.overflow) {
                if let Some(using) = conversion(&n.name, o.ty, n.ty) {
                    clauses.push(format!("ALTER COLUMN {} TYPE {} USING {using}", quote_ident(&n.name), pg_type(n.ty)));
                }
            }
            if !clauses.is_empty() {
                // One statement: a table rewrite, if any, happens once.
                tx.batch_execute(&format!("ALTER TABLE {table} {}", clauses.join(", ")))
                    .await
                    .ctx(store, "evolving the dataset table")?;
            }
            false
        }
    };
    write_catalog(r, store, tx, dataset).await?;
    Ok(created)
}

/// The `ALTER TABLE` clause that widens the geometry column to `to`. Every stored geometry
/// fits the wider type, so only the type modifier changes; the SRID check and the spatial
/// index stay (PostgreSQL rebuilds the index with the table when it rewrites it).
pub fn geometry_retype(to: GeometryColumn) -> String {
    format!("ALTER COLUMN {} TYPE {}", quote_ident(GEOMETRY_COLUMN), pg_geometry_type(to))
}

/// Whether any row has a value in `column` (for an overflow property, a member under its key
/// in the overflow column).
pub async fn column_in_use(
    store: &PostgisStore,
    tx: &impl GenericClient,
    layout: &Layout,
    column: &Column,
) -> Result<bool, StoreError> {
    let t = qualified(&layout.table);
    let row = if column.overflow {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE jsonb_exists({}, $1))", quote_ident(OVERFLOW_COLUMN));
        tx.query_one(&sql, &[&column.key]).await
    } else {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE {} IS NOT NULL)", quote_ident(&column.name));
        tx.query_one(&sql, &[]).await
    };
    Ok(row.ctx(store, "looking for values in a column")?.get(0))
}

/// Drops columns from the table and their keys from the catalog, numbering the remaining
/// keys afresh in column order.
pub async fn drop_columns(
    store: &PostgisStore,
    tx: &impl GenericClient,
    dataset: &str,
    drop: &ColumnDrop,
) -> Result<(), StoreError> {
    if !drop.columns.is_empty() {
        let clauses: Vec<String> = drop.columns.iter().map(|c| format!("DROP COLUMN {}", quote_ident(c))).collect();
        tx.batch_execute(&format!("ALTER TABLE {} {}", qualified(&drop.table), clauses.join(", ")))
            .await
            .ctx(store, "dropping unused columns")?;
    }
    tx.execute("DELETE FROM geoflow.columns WHERE dataset = $1 AND key = ANY($2)", &[&dataset, &drop.keys])
        .await
        .ctx(store, "forgetting dropped columns")?;
    // Out of the way first: ordinals are unique.
    tx.execute("UPDATE geoflow.columns SET ordinal = -1 - ordinal WHERE dataset = $1", &[&dataset])
        .await
        .ctx(store, "renumbering columns")?;
    let renumber = tx
        .prepare("UPDATE geoflow.columns SET ordinal = $3 WHERE dataset = $1 AND key = $2")
        .await
        .ctx(store, "renumbering columns")?;
    for (i, key) in drop.remaining.iter().enumerate() {
        tx.execute(&renumber, &[&dataset, key, &(i as i32)]).await.ctx(store, "renumbering columns")?;
    }
    Ok(())
}

async fn write_catalog(
    r: &Resolution,
    store: &PostgisStore,
    tx: &impl GenericClient,
    dataset: &str,
) -> Result<(), StoreError> {
    let old_columns = r.old.as_ref().map_or(&[][..], |o| &o.columns[..]);
    if r.old.as_ref().map(|o| o.id_type) != Some(r.new.id_type) {
        tx.execute("UPDATE geoflow.datasets SET id_type = $2 WHERE name = $1", &[&dataset, &r.new.id_type.name()])
            .await
            .ctx(store, "recording the id type")?;
    }
    let upsert = tx
        .prepare(
            "INSERT INTO geoflow.columns (dataset, ordinal, key, column_name, field_type, overflow)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (dataset, key) DO UPDATE SET field_type = excluded.field_type",
        )
        .await
        .ctx(store, "recording columns")?;
    for (i, c) in r.new.columns.iter().enumerate() {
        if old_columns.get(i) == Some(c) {
            continue;
        }
        let ordinal = i as i32;
        tx.execute(&upsert, &[&dataset, &ordinal, &c.key, &c.name, &c.ty.name(), &c.overflow])
            .await
            .ctx(store, "recording columns")?;
    }
    Ok(())
}

async fn create_table(
    store: &PostgisStore,
    tx: &impl GenericClient,
    (dataset, mode): (&str, DatasetMode),
    layout: &Layout,
    with_indexes: bool,
) -> Result<(), StoreError> {
    // Large geometries are compressed in the row: lz4 (PostgreSQL 14 and later, when built
    // with it) costs a fraction of the default pglz, on the way in and on every read.
    let (exists, lz4): (bool, bool) = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL,
                    coalesce((SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'), false)",
            &[&qualified(&layout.table)],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .ctx(store, "checking the table name")?;
    if exists {
        return Err(StoreError::Conflict(format!(
            "schema {DATASET_SCHEMA} already holds a table or index named {:?} that geoflow does not manage",
            layout.table
        )));
    }
    let mut columns = String::new();
    for c in layout.columns.iter().filter(|c| !c.overflow) {
        columns.push_str(",\n  ");
        columns.push_str(&quote_ident(&c.name));
        columns.push(' ');
        columns.push_str(pg_type(c.ty));
    }
    if layout.columns.iter().any(|c| c.overflow) {
        columns.push_str(&format!(",\n  {} jsonb", quote_ident(OVERFLOW_COLUMN)));
    }
    let sql = FEATURE_TABLE_SQL
        .replace("{table}", &qualified(&layout.table))
        .replace("{id_type}", pg_type(layout.id_type))
        .replace("{geometry_type}", &pg_geometry_type(layout.geometry))
        .replace("{geometry_compression}", if lz4 { " COMPRESSION lz4" } else { "" })
        .replace("{columns}", &columns);
    tx.batch_execute(&sql).await.ctx(store, "creating the dataset table")?;
    if with_indexes {
        create_keys_and_indexes(store, tx, &layout.table).await?;
    }
    tx.execute(
        "INSERT INTO geoflow.datasets (name, table_name, id_type, mode) VALUES ($1, $2, 'null', $3)",
        &[&dataset, &layout.table, &mode.as_str()],
    )
    .await
    .ctx(store, "registering the dataset")?;
    Ok(())
}

/// Adds the primary key and the spatial index to a table created without them.
pub async fn create_keys_and_indexes(
    store: &PostgisStore,
    tx: &impl GenericClient,
    table: &str,
) -> Result<(), StoreError> {
    tx.batch_execute(&FEATURE_TABLE_KEYS_SQL.replace("{table}", &qualified(table)))
        .await
        .ctx(store, "creating the primary key and indexes")?;
    create_spatial_index(store, tx, table).await
}

/// Creates the GIST index on `geom` (PostgreSQL names it, avoiding any name in use).
pub async fn create_spatial_index(
    store: &PostgisStore,
    tx: &impl GenericClient,
    table: &str,
) -> Result<(), StoreError> {
    tx.batch_execute(&format!("CREATE INDEX ON {} USING gist (geom)", qualified(table)))
        .await
        .ctx(store, "creating the spatial index")
}

/// Drops the GIST indexes of the table; returns whether there was one.
pub async fn drop_spatial_index(
    store: &PostgisStore,
    tx: &impl GenericClient,
    table: &str,
) -> Result<bool, StoreError> {
    let rows = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_am am ON am.oid = c.relam
             WHERE i.indrelid = to_regclass($1) AND am.amname = 'gist'",
            &[&qualified(table)],
        )
        .await
        .ctx(store, "finding the spatial index")?;
    for r in &rows {
        let name: String = r.get(0);
        tx.batch_execute(&format!("DROP INDEX {name}")).await.ctx(store, "dropping the spatial index")?;
    }
    Ok(!rows.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("roads"), "\"roads\"");
        assert_eq!(quote_ident("a\"; DROP TABLE x; --"), "\"a\"\"; DROP TABLE x; --\"");
        assert_eq!(qualified("t"), "\"datasets\".\"t\"");
    }

    #[test]
    fn geometry_types_round_trip_through_their_postgis_names() {
        use GeometryKind::*;
        for (g, pg) in [
            (GeometryColumn::new(Some(MultiPolygon), Dim::Xy), "geometry(MultiPolygon,4326)"),
            (GeometryColumn::new(Some(Point), Dim::Xyz), "geometry(PointZ,4326)"),
            (GeometryColumn::generic(Dim::Xy), "geometry(Geometry,4326)"),
            (GeometryColumn::generic(Dim::Xyz), "geometry(GeometryZ,4326)"),
            (GeometryColumn::generic(Dim::Mixed), "geometry"),
        ] {
            assert_eq!(pg_geometry_type(g), pg);
            assert_eq!(parse_pg_geometry_type(pg), g);
        }
    }

    #[test]
    fn conversions_keep_values() {
        use FieldType::*;
        assert_eq!(conversion("a", Integer, WideInteger), None);
        assert_eq!(conversion("a", Null, Text), None);
        assert_eq!(conversion("a", Null, Integer).as_deref(), Some("NULL"));
        assert_eq!(conversion("a", Integer, Real).as_deref(), Some("\"a\"::double precision"));
        assert_eq!(conversion("a", Integer, Json).as_deref(), Some("to_jsonb(\"a\")"));
        assert!(conversion("a", DateTime, Text).unwrap().contains("HH24:MI:SS.MS"));
    }
}
