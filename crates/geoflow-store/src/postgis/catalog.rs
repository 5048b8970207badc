//! Reads and writes of the catalog tables in schema `geoflow`.

use std::sync::LazyLock;

use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Row};

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::row::Bbox;

use deadpool_postgres::Object;

use super::load::SourceRows;
use super::table::quote_ident;
use super::{Ctx, PostgisStore};
use crate::layout::parse_type;
use crate::LoadStatus;
use crate::{
    ColumnInfo, DatasetInfo, LoadPlan, LoadResult, SchemaChange, SourceRecord, SourceVersion, StoreError, Temporal,
};

/// A timestamptz rendered as `YYYY-MM-DDTHH:MM:SS.SSSZ` (UTC), in SQL.
pub const RFC3339: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'";

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn bbox_parts(b: Option<Bbox>) -> [Option<f64>; 4] {
    [b.map(|b| b.min_x), b.map(|b| b.min_y), b.map(|b| b.max_x), b.map(|b| b.max_y)]
}

fn bbox_of(parts: [Option<f64>; 4]) -> Option<Bbox> {
    match parts {
        [Some(min_x), Some(min_y), Some(max_x), Some(max_y)] => Some(Bbox { min_x, min_y, max_x, max_y }),
        _ => None,
    }
}

fn issues_json(result: &LoadResult) -> Result<String, StoreError> {
    to_json(&result.issues)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::db("encoding the load's report", e))
}

/// Inserts a `geoflow.loads` row and returns its id.
pub async fn insert_load(
    store: &PostgisStore,
    client: &impl GenericClient,
    plan: &LoadPlan,
    status: LoadStatus,
    (started_at, finished_at): (OffsetDateTime, OffsetDateTime),
    result: &LoadResult,
) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "INSERT INTO geoflow.loads (dataset, source_key, content_hash, bytes, policy, status, started_at, finished_at,
               object_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
             RETURNING id",
            &[
                &plan.dataset.as_str(),
                &plan.source,
                &plan.version.content_hash,
                &to_i64(plan.version.bytes),
                &plan.policy.as_str(),
                &status.as_str(),
                &started_at,
                &plan.version.object_version,
            ],
        )
        .await
        .ctx(store, "recording the load")?;
    let id = row.get(0);
    finish_load(store, client, id, finished_at, result, (0, 0)).await?;
    Ok(id)
}

/// Rewrites a `geoflow.loads` row with the final state of its load.
/// `rows`: the rows the load replaced and stored.
pub async fn finish_load(
    store: &PostgisStore,
    client: &impl GenericClient,
    id: i64,
    finished_at: OffsetDateTime,
    result: &LoadResult,
    (replaced_rows, stored_rows): (u64, u64),
) -> Result<(), StoreError> {
    let issues = issues_json(result)?;
    let problems = to_json(&result.problem_counts)?;
    let geometry_types = to_json(&result.loaded.geometry_types)?;
    let schema_changes = to_json(&result.schema_changes)?;
    let c = &result.counts;
    let [min_x, min_y, max_x, max_y] = bbox_parts(result.bbox);
    client
        .execute(
            "UPDATE geoflow.loads SET finished_at = $16,
               duration_ms = greatest(0, round(extract(epoch FROM $16 - started_at) * 1000))::bigint,
               features_read = $2, features_loaded = $3, invalid = $4, repaired = $5, skipped = $6, issue_total = $7,
               issues = $8::text::jsonb, error = $9, min_x = $10, min_y = $11, max_x = $12, max_y = $13,
               replaced_rows = $14, stored_rows = $15, problem_counts = $17::text::jsonb,
               geometry_types = $18::text::jsonb, area_m2 = $19, length_m = $20,
               schema_changes = $21::text::jsonb
             WHERE id = $1",
            &[
                &id,
                &to_i64(c.features_read),
                &to_i64(c.features_loaded),
                &to_i64(c.invalid),
                &to_i64(c.repaired),
                &to_i64(c.skipped),
                &to_i64(result.issue_total),
                &issues,
                &result.error,
                &min_x,
                &min_y,
                &max_x,
                &max_y,
                &to_i64(replaced_rows),
                &to_i64(stored_rows),
                &finished_at,
                &problems,
                &geometry_types,
                &result.loaded.area_m2,
                &result.loaded.length_m,
                &schema_changes,
            ],
        )
        .await
        .ctx(store, "recording the load")?;
    Ok(())
}

/// The columns [`record_of`] reads, after which `source_key` may follow.
fn source_columns() -> String {
    format!(
        "content_hash, bytes, feature_count, load_id, to_char(loaded_at AT TIME ZONE 'UTC', {RFC3339}), object_version,
         settings"
    )
}

fn record_of(dataset: &DatasetName, source: String, r: &Row) -> SourceRecord {
    SourceRecord {
        dataset: dataset.clone(),
        source,
        version: SourceVersion {
            content_hash: r.get(0),
            bytes: r.get::<_, i64>(1).max(0) as u64,
            object_version: r.get(5),
        },
        feature_count: r.get::<_, i64>(2).max(0) as u64,
        load_id: r.get(3),
        loaded_at: r.get(4),
        settings: r.get(6),
    }
}

pub async fn source_record(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &DatasetName,
    source: &str,
) -> Result<Option<SourceRecord>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {} FROM geoflow.sources WHERE dataset = $1 AND source_key = $2", source_columns()),
            &[&dataset.as_str(), &source],
        )
        .await
        .ctx(store, "reading the source catalog")?;
    Ok(row.map(|r| record_of(dataset, source.to_string(), &r)))
}

/// Every source of the dataset, by key compared bytewise (`COLLATE "C"`), as SQLite compares
/// TEXT: the order must not depend on the database's locale.
pub async fn source_records(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &DatasetName,
) -> Result<Vec<SourceRecord>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, source_key FROM geoflow.sources WHERE dataset = $1 ORDER BY source_key COLLATE \"C\"",
                source_columns()
            ),
            &[&dataset.as_str()],
        )
        .await
        .ctx(store, "listing the sources of a dataset")?;
    Ok(rows.iter().map(|r| record_of(dataset, r.get(7), r)).collect())
}

/// Records the source's new version, rows and extent.
pub async fn upsert_source(
    store: &PostgisStore,
    client: &impl GenericClient,
    plan: &LoadPlan,
    (rows, fids): (u64, SourceRows),
    bbox: Option<Bbox>,
    (load_id, loaded_at, settings): (i64, OffsetDateTime, &str),
) -> Result<(), StoreError> {
    let [min_x, min_y, max_x, max_y] = bbox_parts(bbox);
    let (min_fid, max_fid) = match fids {
        SourceRows::Fids(first, last) => (Some(first), Some(last)),
        SourceRows::Unrecorded => (None, None),
    };
    client
        .execute(
            "INSERT INTO geoflow.sources (dataset, source_key, content_hash, bytes, feature_count,
               min_x, min_y, max_x, max_y, load_id, loaded_at, object_version, min_fid, max_fid, settings, modified)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (dataset, source_key) DO UPDATE SET content_hash = excluded.content_hash,
               bytes = excluded.bytes, feature_count = excluded.feature_count, min_x = excluded.min_x,
               min_y = excluded.min_y, max_x = excluded.max_x, max_y = excluded.max_y,
               load_id = excluded.load_id, loaded_at = excluded.loaded_at, object_version = excluded.object_version,
               min_fid = excluded.min_fid, max_fid = excluded.max_fid, settings = excluded.settings,
               modified = excluded.modified",
            &[
                &plan.dataset.as_str(),
                &plan.source,
                &plan.version.content_hash,
                &to_i64(plan.version.bytes),
                &to_i64(rows),
                &min_x,
                &min_y,
                &max_x,
                &max_y,
                &load_id,
                &loaded_at,
                &plan.version.object_version,
                &min_fid,
                &max_fid,
                &settings,
                &plan.modified,
            ],
        )
        .await
        .ctx(store, "recording the source")?;
    Ok(())
}

/// Records the object version a source's unchanged content now comes from, so that a later
/// event for that version is recognised without reading the object. Rows, load id and dataset
/// version stay as they are: the content did not change.
pub async fn set_object_version(
    store: &PostgisStore,
    client: &impl GenericClient,
    plan: &LoadPlan,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE geoflow.sources SET object_version = $3, modified = coalesce($4, modified)
             WHERE dataset = $1 AND source_key = $2
               AND (object_version IS DISTINCT FROM $3 OR modified IS DISTINCT FROM coalesce($4, modified))",
            &[&plan.dataset.as_str(), &plan.source, &plan.version.object_version, &plan.modified],
        )
        .await
        .ctx(store, "recording the source's object version")?;
    Ok(())
}

/// Records that a source left its dataset, with the rows it took along.
pub async fn record_removal(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &DatasetName,
    source: &str,
    rows: u64,
    at: OffsetDateTime,
    changes: &[SchemaChange],
) -> Result<(), StoreError> {
    let changes = to_json(&changes)?;
    client
        .execute(
            "INSERT INTO geoflow.removals (dataset, source_key, removed_rows, removed_at, schema_changes)
             VALUES ($1, $2, $3, $4, $5::text::jsonb)",
            &[&dataset.as_str(), &source, &to_i64(rows), &at, &changes],
        )
        .await
        .ctx(store, "recording the removal")?;
    Ok(())
}

/// Records a change to the dataset's rows: bumps its version and sets its feature count and
/// extent from its sources' (cheap: one row per source).
pub async fn touch_dataset(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE geoflow.datasets d SET version = d.version + 1, updated_at = $2,
               feature_count = s.n, min_x = s.min_x, min_y = s.min_y, max_x = s.max_x, max_y = s.max_y
             FROM (SELECT coalesce(sum(feature_count), 0)::bigint AS n, min(min_x) AS min_x, min(min_y) AS min_y,
                     max(max_x) AS max_x, max(max_y) AS max_y
                   FROM geoflow.sources WHERE dataset = $1) s
             WHERE d.name = $1",
            &[&dataset, &at],
        )
        .await
        .ctx(store, "updating the dataset")?;
    Ok(())
}

/// The statement listing every dataset, and the one reading a single dataset by name.
static DATASETS_SQL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let template = include_str!("sql/datasets.sql");
    [
        super::features::fill(template, &[("filter", "")]),
        super::features::fill(template, &[("filter", "WHERE d.name = $1")]),
    ]
});

/// Every dataset, or only `name`: one prepared statement, so that listing collections costs
/// one round trip however many datasets and columns there are.
pub async fn datasets(
    store: &PostgisStore,
    client: &Object,
    name: Option<&DatasetName>,
) -> Result<Vec<DatasetInfo>, StoreError> {
    let context = "listing datasets";
    let rows = match name {
        None => {
            let statement = client.prepare_cached(&DATASETS_SQL[0]).await.ctx(store, context)?;
            client.query(&statement, &[]).await
        }
        Some(name) => {
            let statement = client.prepare_cached(&DATASETS_SQL[1]).await.ctx(store, context)?;
            client.query(&statement, &[&name.as_str()]).await
        }
    }
    .ctx(store, context)?;
    rows.iter().map(|r| dataset_of(store, r)).collect()
}

fn dataset_of(store: &PostgisStore, r: &Row) -> Result<DatasetInfo, StoreError> {
    let name: String = r.get(0);
    let name = DatasetName::new(&name)
        .map_err(|e| StoreError::Incompatible { location: store.location.clone(), reason: e.to_string() })?;
    let keys: Vec<String> = r.get(10);
    let column_names: Vec<String> = r.get(11);
    let types: Vec<&str> = r.get(12);
    let overflow: Vec<bool> = r.get(18);
    let columns = keys
        .into_iter()
        .zip(column_names)
        .zip(types)
        .zip(overflow)
        .map(|(((key, column), ty), overflow)| Ok(ColumnInfo { key, column, ty: parse_type(ty)?, overflow }))
        .collect::<Result<_, StoreError>>()?;
    Ok(DatasetInfo {
        name,
        table: r.get(8),
        feature_count: r.get::<_, i64>(3).max(0) as u64,
        bbox: bbox_of([r.get(4), r.get(5), r.get(6), r.get(7)]),
        sources: r.get::<_, i64>(9).max(0) as u64,
        columns,
        mode: parse_mode(store, r.get(13))?,
        key_property: r.get(14),
        temporal: r.get::<_, Option<String>>(16).map(|start| Temporal { start, end: r.get(17) }),
        geometry_type: super::table::parse_pg_geometry_type(r.get::<_, Option<&str>>(15).unwrap_or("geometry"))
            .to_string(),
        version: r.get(1),
        updated_at: r.get(2),
    })
}

/// A dataset mode as the catalog spells it.
pub fn parse_mode(store: &PostgisStore, mode: &str) -> Result<DatasetMode, StoreError> {
    mode.parse().map_err(|reason| StoreError::Incompatible { location: store.location.clone(), reason })
}

/// Sets a dataset's mode; `false` when there is no such dataset.
pub async fn set_mode(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &DatasetName,
    mode: DatasetMode,
    key: &FeatureKey,
) -> Result<bool, StoreError> {
    let key_property = (mode == DatasetMode::Upsert).then(|| key.property()).flatten();
    let updated = client
        .query_opt(
            "UPDATE geoflow.datasets d SET mode = $2, key_property = $3 FROM geoflow.datasets old
             WHERE d.name = $1 AND old.name = d.name
             RETURNING old.mode = 'upsert' AND old.key_property IS NOT DISTINCT FROM $3, d.table_name",
            &[&dataset.as_str(), &mode.as_str(), &key_property],
        )
        .await
        .ctx(store, "setting the dataset's mode")?;
    let Some(updated) = updated else { return Ok(false) };
    let (same_key, table): (bool, String) = (updated.get(0), updated.get(1));
    if !same_key {
        // The index of another key would only slow loads down; an upsert load indexes its own.
        let index = quote_ident(&super::load::key_index_name(&table));
        client
            .batch_execute(&format!("DROP INDEX IF EXISTS {}.{index}", quote_ident(super::DATASET_SCHEMA)))
            .await
            .ctx(store, "dropping the index of the dataset's former key")?;
    }
    Ok(true)
}

/// Declares the properties that place a dataset's features in time, after checking them
/// against its columns; `false` when there is no such dataset.
pub async fn set_temporal(
    store: &PostgisStore,
    client: &impl GenericClient,
    dataset: &DatasetName,
    temporal: Option<&Temporal>,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let context = "declaring the dataset's time";
    let exists = client
        .query_opt("SELECT 1 FROM geoflow.datasets WHERE name = $1", &[&dataset.as_str()])
        .await
        .ctx(store, context)?;
    if exists.is_none() {
        return Ok(false);
    }
    if let Some(temporal) = temporal {
        let rows = client
            .query("SELECT key, field_type FROM geoflow.columns WHERE dataset = $1", &[&dataset.as_str()])
            .await
            .ctx(store, context)?;
        let columns =
            rows.iter().map(|r| Ok((r.get::<_, String>(0), parse_type(r.get(1))?))).collect::<Result<Vec<_>, _>>()?;
        crate::layout::check_temporal(dataset, &columns, temporal)?;
    }
    let updated = client
        .execute(
            // A new version: `datetime` pages and the temporal extent change with it.
            "UPDATE geoflow.datasets SET temporal_start = $2, temporal_end = $3, version = version + 1, updated_at = $4
             WHERE name = $1",
            &[&dataset.as_str(), &temporal.map(|t| t.start.as_str()), &temporal.and_then(|t| t.end.as_deref()), &at],
        )
        .await
        .ctx(store, context)?;
    Ok(updated == 1)
}
