//! Reads and writes of the catalog tables (`geoflow_*`) and of the GeoPackage extent.

use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::row::Bbox;

use super::table::{quote, read_layout};
use super::{to_rfc3339, Ctx};
use crate::LoadStatus;
use crate::{
    ColumnInfo, DatasetInfo, LoadPlan, LoadResult, SchemaChange, SourceRecord, SourceVersion, StoreError, Temporal,
};

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Inserts a `geoflow_loads` row and returns its id.
pub fn insert_load(
    conn: &Connection,
    plan: &LoadPlan,
    status: LoadStatus,
    (started_at, finished_at): (OffsetDateTime, OffsetDateTime),
    result: &LoadResult,
) -> Result<i64, StoreError> {
    let started_text = to_rfc3339(started_at)?;
    conn.prepare_cached(
        "INSERT INTO geoflow_loads (dataset, source_key, content_hash, bytes, policy, status, started_at, finished_at,
           object_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            plan.dataset.as_str(),
            plan.source,
            plan.version.content_hash,
            to_i64(plan.version.bytes),
            plan.policy.as_str(),
            status.as_str(),
            started_text,
            plan.version.object_version,
        ])
    })
    .ctx("recording the load")?;
    let id = conn.last_insert_rowid();
    finish_load(conn, id, status, (started_at, finished_at), result)?;
    Ok(id)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::db("encoding the load's report", e))
}

/// Whole milliseconds from `start` to `end`, rounded (never negative).
fn duration_ms(start: OffsetDateTime, end: OffsetDateTime) -> i64 {
    let micros = (end - start).whole_microseconds().max(0);
    i64::try_from((micros + 500) / 1000).unwrap_or(i64::MAX)
}

/// Records that a source left its dataset, with the rows it took along.
pub fn record_removal(
    conn: &Connection,
    dataset: &DatasetName,
    source: &str,
    rows: u64,
    at: OffsetDateTime,
    changes: &[SchemaChange],
) -> Result<(), StoreError> {
    let at = to_rfc3339(at)?;
    let changes = to_json(&changes)?;
    conn.prepare_cached(
        "INSERT INTO geoflow_removals (dataset, source_key, removed_rows, removed_at, schema_changes_json)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![dataset.as_str(), source, to_i64(rows), at, changes]))
    .ctx("recording the removal")?;
    Ok(())
}

/// Rewrites a `geoflow_loads` row with the final state of its load.
pub fn finish_load(
    conn: &Connection,
    id: i64,
    status: LoadStatus,
    (started_at, finished_at): (OffsetDateTime, OffsetDateTime),
    result: &LoadResult,
) -> Result<(), StoreError> {
    let issues = to_json(&result.issues)?;
    let problems = to_json(&result.problem_counts)?;
    let geometry_types = to_json(&result.loaded.geometry_types)?;
    let schema_changes = to_json(&result.schema_changes)?;
    let finished_text = to_rfc3339(finished_at)?;
    let c = &result.counts;
    let b = result.bbox;
    conn.prepare_cached(
        "UPDATE geoflow_loads SET status = ?2, finished_at = ?3, features_read = ?4, features_loaded = ?5, invalid = ?6,
           repaired = ?7, skipped = ?8, issue_total = ?9, issues_json = ?10, error = ?11,
           min_x = ?12, min_y = ?13, max_x = ?14, max_y = ?15, duration_ms = ?16, problem_counts_json = ?17,
           geometry_types_json = ?18, area_m2 = ?19, length_m = ?20, schema_changes_json = ?21
         WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            status.as_str(),
            finished_text,
            to_i64(c.features_read),
            to_i64(c.features_loaded),
            to_i64(c.invalid),
            to_i64(c.repaired),
            to_i64(c.skipped),
            to_i64(result.issue_total),
            issues,
            result.error,
            b.map(|b| b.min_x),
            b.map(|b| b.min_y),
            b.map(|b| b.max_x),
            b.map(|b| b.max_y),
            duration_ms(started_at, finished_at),
            problems,
            geometry_types,
            result.loaded.area_m2,
            result.loaded.length_m,
            schema_changes,
        ])
    })
    .ctx("recording the load")?;
    Ok(())
}

/// The columns [`record_of`] reads, after which `source_key` may follow.
const SOURCE_COLUMNS: &str = "content_hash, bytes, feature_count, load_id, loaded_at, object_version, settings";

fn record_of(dataset: &DatasetName, source: String, r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRecord> {
    Ok(SourceRecord {
        dataset: dataset.clone(),
        source,
        version: SourceVersion {
            content_hash: r.get(0)?,
            bytes: r.get::<_, i64>(1)?.max(0) as u64,
            object_version: r.get(5)?,
        },
        feature_count: r.get::<_, i64>(2)?.max(0) as u64,
        load_id: r.get(3)?,
        loaded_at: r.get(4)?,
        settings: r.get(6)?,
    })
}

pub fn source_record(
    conn: &Connection,
    dataset: &DatasetName,
    source: &str,
) -> Result<Option<SourceRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {SOURCE_COLUMNS} FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2"))
        .and_then(|mut s| {
            s.query_row(params![dataset.as_str(), source], |r| record_of(dataset, source.to_string(), r)).optional()
        })
        .ctx("reading the source catalog")
}

/// Every source of the dataset, by key (SQLite compares TEXT bytewise).
pub fn source_records(conn: &Connection, dataset: &DatasetName) -> Result<Vec<SourceRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {SOURCE_COLUMNS}, source_key FROM geoflow_sources WHERE dataset = ?1 ORDER BY source_key"
    ))
    .and_then(|mut s| {
        s.query_map(params![dataset.as_str()], |r| record_of(dataset, r.get(7)?, r))?.collect::<Result<Vec<_>, _>>()
    })
    .ctx("listing the sources of a dataset")
}

pub fn upsert_source(
    conn: &Connection,
    plan: &LoadPlan,
    feature_count: u64,
    (load_id, loaded_at, settings): (i64, &str, &str),
) -> Result<(), StoreError> {
    let modified = plan.modified.map(super::to_rfc3339).transpose()?;
    conn.prepare_cached(
        "INSERT INTO geoflow_sources (dataset, source_key, content_hash, bytes, feature_count, load_id, loaded_at,
           object_version, settings, modified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (dataset, source_key) DO UPDATE SET content_hash = excluded.content_hash, bytes = excluded.bytes,
           feature_count = excluded.feature_count, load_id = excluded.load_id, loaded_at = excluded.loaded_at,
           object_version = excluded.object_version, settings = excluded.settings, modified = excluded.modified",
    )
    .and_then(|mut s| {
        s.execute(params![
            plan.dataset.as_str(),
            plan.source,
            plan.version.content_hash,
            to_i64(plan.version.bytes),
            to_i64(feature_count),
            load_id,
            loaded_at,
            plan.version.object_version,
            settings,
            modified,
        ])
    })
    .ctx("recording the source")?;
    Ok(())
}

/// Records the object version a source's unchanged content now comes from, so that a later
/// event for that version is recognised without reading the object. Rows, load id and dataset
/// version stay as they are: the content did not change.
pub fn set_object_version(conn: &Connection, plan: &LoadPlan) -> Result<(), StoreError> {
    let modified = plan.modified.map(super::to_rfc3339).transpose()?;
    conn.prepare_cached(
        "UPDATE geoflow_sources SET object_version = ?3, modified = coalesce(?4, modified)
         WHERE dataset = ?1 AND source_key = ?2 AND (object_version IS NOT ?3 OR modified IS NOT coalesce(?4, modified))",
    )
    .and_then(|mut s| s.execute(params![plan.dataset.as_str(), plan.source, plan.version.object_version, modified]))
    .ctx("recording the source's object version")?;
    Ok(())
}

/// Records a change to the dataset: bumps its version and recomputes the GeoPackage extent.
pub fn touch_dataset(conn: &Connection, dataset: &str, table: &str, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE geoflow_datasets SET version = version + 1, updated_at = ?2 WHERE name = ?1",
        params![dataset, now],
    )
    .ctx("bumping the dataset version")?;
    let extent = table_extent(conn, table)?;
    conn.execute(
        "UPDATE gpkg_contents SET min_x = ?2, min_y = ?3, max_x = ?4, max_y = ?5, last_change = ?6 WHERE table_name = ?1",
        params![table, extent.map(|b| b.min_x), extent.map(|b| b.min_y), extent.map(|b| b.max_x), extent.map(|b| b.max_y), now],
    )
    .ctx("updating the extent in gpkg_contents")?;
    Ok(())
}

/// The exact extent of the table's geometries, from the per-row bbox columns.
pub fn table_extent(conn: &Connection, table: &str) -> Result<Option<Bbox>, StoreError> {
    let sql = format!("SELECT min(gf_min_x), min(gf_min_y), max(gf_max_x), max(gf_max_y) FROM {}", quote(table));
    let row: (Option<f64>, Option<f64>, Option<f64>, Option<f64>) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).ctx("computing the extent")?;
    Ok(match row {
        (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bbox { min_x, min_y, max_x, max_y }),
        _ => None,
    })
}

/// A dataset mode as the catalog spells it.
pub fn parse_mode(mode: &str) -> Result<DatasetMode, StoreError> {
    mode.parse().map_err(|reason| StoreError::Incompatible { location: "catalog".into(), reason })
}

/// Sets a dataset's mode (and key); `false` when there is no such dataset.
pub fn set_mode(
    conn: &Connection,
    dataset: &DatasetName,
    mode: DatasetMode,
    key: &FeatureKey,
) -> Result<bool, StoreError> {
    let key_property = (mode == DatasetMode::Upsert).then(|| key.property()).flatten();
    let before: Option<(String, Option<String>, String)> = conn
        .query_row(
            "SELECT mode, key_property, table_name FROM geoflow_datasets WHERE name = ?1",
            [dataset.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .ctx("reading the dataset's mode")?;
    let Some((old_mode, old_key, table)) = before else { return Ok(false) };
    conn.execute(
        "UPDATE geoflow_datasets SET mode = ?2, key_property = ?3 WHERE name = ?1",
        params![dataset.as_str(), mode.as_str(), key_property],
    )
    .ctx("setting the dataset's mode")?;
    if old_mode != DatasetMode::Upsert.as_str() || old_key.as_deref() != key_property {
        // The index of another key would only slow loads down; an upsert load indexes its own.
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote(&super::load::key_index_name(&table))))
            .ctx("dropping the index of the dataset's former key")?;
    }
    Ok(true)
}

/// Declares the properties that place a dataset's features in time, after checking them
/// against its columns; `false` when there is no such dataset.
pub fn set_temporal(
    conn: &Connection,
    dataset: &DatasetName,
    temporal: Option<&Temporal>,
    now: &str,
) -> Result<bool, StoreError> {
    let Some(layout) = read_layout(conn, dataset.as_str())? else { return Ok(false) };
    if let Some(temporal) = temporal {
        let columns: Vec<_> = layout.columns.into_iter().map(|c| (c.key, c.ty)).collect();
        crate::layout::check_temporal(dataset, &columns, temporal)?;
    }
    let updated = conn
        .execute(
            // A new version: `datetime` pages and the temporal extent change with it.
            "UPDATE geoflow_datasets SET temporal_start = ?2, temporal_end = ?3, version = version + 1, updated_at = ?4
             WHERE name = ?1",
            params![dataset.as_str(), temporal.map(|t| t.start.as_str()), temporal.and_then(|t| t.end.as_deref()), now],
        )
        .ctx("declaring the dataset's time")?;
    Ok(updated == 1)
}

/// Every dataset, or only `name`. Feature counts come from the sources' counts, so that
/// listing never scans a dataset table.
pub fn datasets(conn: &Connection, name: Option<&DatasetName>) -> Result<Vec<DatasetInfo>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.name, d.version, d.updated_at, c.min_x, c.min_y, c.max_x, c.max_y,
               (SELECT count(*) FROM geoflow_sources s WHERE s.dataset = d.name),
               (SELECT coalesce(sum(feature_count), 0) FROM geoflow_sources s WHERE s.dataset = d.name), d.mode,
               d.key_property, d.temporal_start, d.temporal_end
             FROM geoflow_datasets d LEFT JOIN gpkg_contents c ON c.table_name = d.table_name
             WHERE ?1 IS NULL OR d.name = ?1
             ORDER BY d.name",
        )
        .ctx("listing datasets")?;
    let rows = stmt
        .query_map([name.map(DatasetName::as_str)], |r| {
            let extent = match (r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?) {
                (Some(min_x), Some(min_y), Some(max_x), Some(max_y)) => Some(Bbox { min_x, min_y, max_x, max_y }),
                _ => None,
            };
            let counts = (r.get::<_, i64>(7)?, r.get::<_, i64>(8)?);
            let named = (r.get::<_, String>(0)?, (r.get::<_, String>(9)?, r.get::<_, Option<String>>(10)?));
            let (start, end) = (r.get::<_, Option<String>>(11)?, r.get::<_, Option<String>>(12)?);
            let temporal = start.map(|start| Temporal { start, end });
            Ok((named, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, extent, counts, temporal))
        })
        .ctx("listing datasets")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("listing datasets")?;
    let mut out = Vec::with_capacity(rows.len());
    for ((name, (mode, key_property)), version, updated_at, bbox, (sources, feature_count), temporal) in rows {
        let dataset = DatasetName::new(&name)
            .map_err(|e| StoreError::Incompatible { location: "catalog".into(), reason: e.to_string() })?;
        let Some(layout) = read_layout(conn, &name)? else {
            continue;
        };
        out.push(DatasetInfo {
            name: dataset,
            table: layout.table,
            feature_count: feature_count.max(0) as u64,
            bbox,
            sources: sources.max(0) as u64,
            columns: layout
                .columns
                .into_iter()
                .map(|c| ColumnInfo { key: c.key, column: c.name, ty: c.ty, overflow: c.overflow })
                .collect(),
            mode: parse_mode(&mode)?,
            key_property,
            temporal,
            geometry_type: layout.geometry.to_string(),
            version,
            updated_at,
        });
    }
    Ok(out)
}
