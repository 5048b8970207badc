//! The GeoPackage store's I/O for the load protocol ([`crate::protocol`]): one IMMEDIATE
//! transaction per load that replaces a source's rows.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Statement, TransactionBehavior};
use time::OffsetDateTime;

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;

use super::catalog;
use super::geometry;
use super::rtree;
use super::table::{self, quote};
use super::{open_connection, to_rfc3339, Ctx};
use crate::layout::{
    json_key, route_properties, Column, ColumnDrop, FieldSlot, GeometryRequest, KeyLocation, Layout, OverflowObject,
    Resolution, SchemaChange, OVERFLOW_COLUMN,
};
use crate::protocol::{self, Catalogued, Committed, KeyedRows, LoadSession, ObjectOrder, Origin, Prepared, RowScope};
use crate::{Clock, LoadOutcome, LoadPlan, LoadReceiver, LoadResult, LoadStatus, Removal, RemovalCause, StoreError};
use geoflow_core::geometry_type::GeometryColumn;

/// How the R-tree is filled during a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtreeFill {
    /// The spec's insert trigger computes each entry from the geometry blob.
    Trigger,
    /// The insert and delete triggers are suspended for the load: the store collects the
    /// entries (from each row's bbox, the values the trigger reads from the blob header) and
    /// the deleted fids, applies them in one step before commit ([`super::rtree`]) and
    /// recreates the triggers in the same transaction.
    Deferred,
}

/// SQLite's SQLITE_MAX_COLUMN as built into the bundled library.
const MAX_COLUMNS: usize = 2000;

/// Runs a whole load on the calling (blocking) thread of the runtime.
/// `max_entries`: R-tree entries held in memory at most (see [`rtree::MAX_ENTRIES_IN_MEMORY`]).
pub fn run(
    path: &Path,
    clock: &dyn Clock,
    plan: LoadPlan,
    rx: LoadReceiver,
    (fill, max_entries): (RtreeFill, usize),
) -> Result<LoadOutcome, StoreError> {
    let mut session = GpkgSession::open(path, fill, max_entries)?;
    runtime()?.block_on(protocol::run_load(&mut session, &plan, clock, rx))
}

/// Removes a source's rows and its catalog entry (see [`protocol::run_removal`]), on the
/// calling (blocking) thread of the runtime.
pub fn remove_source(
    path: &Path,
    clock: &dyn Clock,
    (dataset, source): (&DatasetName, &str),
    origin: Option<&Origin>,
    cause: RemovalCause,
    fill: RtreeFill,
) -> Result<Removal, StoreError> {
    let mut session = GpkgSession::open(path, fill, rtree::MAX_ENTRIES_IN_MEMORY)?;
    runtime()?.block_on(protocol::run_removal(&mut session, clock, dataset, source, origin, cause))
}

/// The runtime whose blocking thread this is: the protocol waits on it for rows and for the
/// storage probe.
fn runtime() -> Result<tokio::runtime::Handle, StoreError> {
    tokio::runtime::Handle::try_current()
        .map_err(|e| StoreError::Internal(format!("a GeoPackage load runs on a blocking thread of the runtime: {e}")))
}

/// Records a failed load in its own short transaction.
pub fn record_failed(
    conn: &mut Connection,
    plan: &LoadPlan,
    times: (OffsetDateTime, OffsetDateTime),
    result: &LoadResult,
) -> Result<i64, StoreError> {
    record_load(conn, plan, LoadStatus::Failed, times, result)
}

/// Records a load that changed nothing in its own short transaction.
fn record_load(
    conn: &mut Connection,
    plan: &LoadPlan,
    status: LoadStatus,
    times: (OffsetDateTime, OffsetDateTime),
    result: &LoadResult,
) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("recording a load")?;
    let id = catalog::insert_load(&tx, plan, status, times, result)?;
    tx.commit().ctx("recording a load")?;
    Ok(id)
}

/// One connection's part in a load or removal. Its methods block (the session runs on a
/// blocking thread). The transaction is begun and ended by hand so that the session owns its
/// connection; SQLite takes the write lock at `BEGIN IMMEDIATE`, which is the dataset's lock.
struct GpkgSession {
    conn: Connection,
    fill: RtreeFill,
    max_entries: usize,
    rows: Option<Rows>,
    /// The table a removal deleted rows from.
    removed_from: Option<String>,
}

/// The rows of a load in flight.
struct Rows {
    table: String,
    /// The fid of the load's first row: its rows are those from there on.
    first_fid: i64,
    source: String,
    /// The insert statement and how the schema's fields bind to it.
    insert: InsertShape,
    load_id: i64,
    /// RFC 3339, as the rows and catalog record it.
    started_at: String,
    /// R-tree changes pending, with the triggers suspended.
    changes: Option<rtree::Changes>,
    inserted: u64,
    t0: Instant,
    prepared: std::time::Duration,
}

impl GpkgSession {
    fn open(path: &Path, fill: RtreeFill, max_entries: usize) -> Result<GpkgSession, StoreError> {
        Ok(GpkgSession { conn: open_connection(path)?, fill, max_entries, rows: None, removed_from: None })
    }

    /// Ends the transaction, if one is open, without keeping anything.
    fn end_transaction(&mut self) -> Result<(), StoreError> {
        self.rows = None;
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").ctx("rolling back")?;
        }
        Ok(())
    }

    fn remove_rows(&mut self, table: &str, source: &str) -> Result<u64, StoreError> {
        if self.fill == RtreeFill::Trigger {
            return delete_source_rows(&self.conn, table, source, None);
        }
        table::suspend_rtree_triggers(&self.conn, table)?;
        let mut changes = rtree::Changes::default();
        let removed = delete_source_rows(&self.conn, table, source, Some(&mut changes))?;
        rtree::apply(&self.conn, table, changes, self.max_entries)?;
        table::restore_rtree_triggers(&self.conn, table)?;
        Ok(removed)
    }
}

impl LoadSession for GpkgSession {
    async fn begin(&mut self, _dataset: &DatasetName) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").ctx("starting the transaction")
    }

    async fn dataset_mode(&mut self, dataset: &DatasetName) -> Result<Option<(DatasetMode, FeatureKey)>, StoreError> {
        let mode: Option<(String, Option<String>)> = self
            .conn
            .query_row("SELECT mode, key_property FROM geoflow_datasets WHERE name = ?1", [dataset.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .ctx("reading the dataset's mode")?;
        mode.map(|(m, key)| Ok((catalog::parse_mode(&m)?, FeatureKey::from_property(key)))).transpose()
    }

    async fn newest_source(&mut self, dataset: &DatasetName) -> Result<Option<ObjectOrder>, StoreError> {
        // Catalog times are fixed-width RFC 3339 UTC text: they sort as the times do.
        let newest: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT source_key, coalesce(modified, loaded_at) AS at FROM geoflow_sources WHERE dataset = ?1
                 ORDER BY at DESC, source_key DESC LIMIT 1",
                [dataset.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ctx("reading the dataset's newest source")?;
        newest
            .map(|(key, at)| {
                let modified =
                    OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).map_err(|e| {
                        StoreError::Incompatible { location: "catalog".into(), reason: format!("{at:?}: {e}") }
                    })?;
                Ok(ObjectOrder { modified, key })
            })
            .transpose()
    }

    async fn catalogued(&mut self, plan: &LoadPlan) -> Result<Option<Catalogued>, StoreError> {
        self.conn
            .query_row(
                "SELECT content_hash, settings, feature_count FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2",
                params![plan.dataset.as_str(), plan.source],
                |r| {
                    let rows = r.get::<_, i64>(2)?.max(0) as u64;
                    Ok(Catalogued { content_hash: r.get(0)?, settings: r.get(1)?, rows })
                },
            )
            .optional()
            .ctx("reading the source catalog")
    }

    async fn keep_source(&mut self, plan: &LoadPlan) -> Result<(), StoreError> {
        catalog::set_object_version(&self.conn, plan)
    }

    async fn prepare(
        &mut self,
        plan: &LoadPlan,
        started: OffsetDateTime,
        mode: DatasetMode,
        scope: RowScope,
    ) -> Result<Prepared, StoreError> {
        let (tx, dataset) = (&self.conn, plan.dataset.as_str());
        let t0 = Instant::now();
        let started_at = to_rfc3339(started)?;
        let old = table::read_layout(tx, dataset)?;
        let request = GeometryRequest::new(plan.geometry_type, plan.policy);
        let resolution = Resolution::new(dataset, old, &plan.schema, request, MAX_COLUMNS);
        resolution.check_width(MAX_COLUMNS)?;
        let schema_changes = resolution.changes();
        let created = resolution.old.is_none();
        table::apply_resolution(&resolution, tx, (dataset, mode), &started_at)?;
        let table = resolution.new.table.clone();

        // The row is rewritten at commit; its id is needed now for gf_load_id.
        let load_id = catalog::insert_load(tx, plan, LoadStatus::Loaded, (started, started), &LoadResult::default())?;

        let mut changes = (self.fill == RtreeFill::Deferred).then(rtree::Changes::default);
        if changes.is_some() {
            table::suspend_rtree_triggers(tx, &table)?;
        }
        let replaced_rows = match scope {
            RowScope::Source => delete_source_rows(tx, &table, &plan.source, changes.as_mut())?,
            RowScope::Dataset => delete_all_rows(tx, &table, changes.as_mut())?,
            RowScope::Keys => 0,
        };
        if created && mode == DatasetMode::Upsert {
            catalog::set_mode(tx, &plan.dataset, mode, &plan.key)?;
        }
        // The load's rows take fids above every row's now.
        let first_fid: i64 = tx
            .query_row(&format!("SELECT coalesce(max(fid), 0) + 1 FROM {}", quote(&table)), [], |r| r.get(0))
            .ctx("reading the table's last fid")?;
        let insert = InsertShape::new(&resolution);
        let geometry = resolution.new.geometry;
        let old_geometry = resolution.old.as_ref().map(|o| o.geometry);
        self.rows = Some(Rows {
            table,
            first_fid,
            source: plan.source.clone(),
            insert,
            load_id,
            started_at,
            changes,
            inserted: 0,
            t0,
            prepared: t0.elapsed(),
        });
        Ok(Prepared { load_id, replaced_rows, changes: schema_changes, superseded: 0, geometry, old_geometry })
    }

    async fn forget_other_sources(
        &mut self,
        plan: &LoadPlan,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let others: Vec<(String, u64)> = self
            .conn
            .prepare(
                "DELETE FROM geoflow_sources WHERE dataset = ?1 AND source_key <> ?2 RETURNING source_key, feature_count",
            )
            .and_then(|mut s| {
                s.query_map(params![plan.dataset.as_str(), plan.source], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })?
                .collect()
            })
            .ctx("removing the dataset's other sources")?;
        for (other, rows) in &others {
            catalog::record_removal(&self.conn, &plan.dataset, other, *rows, at, &[])?;
        }
        Ok(others)
    }

    async fn widen_geometry(&mut self, to: GeometryColumn) -> Result<(), StoreError> {
        let Some(rows) = self.rows.as_ref() else {
            return Err(StoreError::Internal("no load to widen the geometry column of".into()));
        };
        table::set_geometry_type(&self.conn, &rows.table, to)
    }

    async fn write(&mut self, batch: &[Row]) -> Result<(), StoreError> {
        let max_entries = self.max_entries;
        let Some(rows) = self.rows.as_mut() else {
            return Err(StoreError::Internal("rows sent before the load was prepared".into()));
        };
        let conn = &self.conn;
        let mut inserter = Inserter::new(conn, &rows.insert, (&rows.source, rows.load_id, &rows.started_at))?;
        for row in batch {
            let entry = inserter.insert(row, rows.inserted + 1)?;
            rows.inserted += 1;
            if let (Some(changes), Some(e)) = (rows.changes.as_mut(), entry) {
                changes.inserted.push(e);
            }
        }
        drop(inserter);
        if let Some(changes) = rows.changes.as_mut().filter(|c| c.inserted.len() >= max_entries) {
            // Memory stays bounded on any load: apply what is pending and go on.
            rtree::apply(conn, &rows.table, std::mem::take(changes), max_entries)?;
        }
        Ok(())
    }

    async fn finish_rows(&mut self, plan: &LoadPlan) -> Result<u64, StoreError> {
        let max_entries = self.max_entries;
        let conn = &self.conn;
        let Some(rows) = self.rows.as_mut() else {
            return Err(StoreError::Internal("no rows to finish".into()));
        };
        if let Some(changes) = rows.changes.take() {
            let t = Instant::now();
            rtree::apply(conn, &rows.table, changes, max_entries)?;
            table::restore_rtree_triggers(conn, &rows.table)?;
            tracing::debug!(dataset = %plan.dataset, ms = t.elapsed().as_millis() as u64, "R-tree updated");
        }
        tracing::debug!(
            dataset = %plan.dataset,
            source = %plan.source,
            inserted = rows.inserted,
            prepare_ms = rows.prepared.as_millis() as u64,
            total_ms = rows.t0.elapsed().as_millis() as u64,
            "rows stored"
        );
        Ok(rows.inserted)
    }

    async fn resolve_keys(
        &mut self,
        plan: &LoadPlan,
        key: &FeatureKey,
        this: &ObjectOrder,
    ) -> Result<KeyedRows, StoreError> {
        let (conn, Some(rows)) = (&self.conn, self.rows.as_ref()) else {
            return Err(StoreError::Internal("no rows to key".into()));
        };
        let Some(layout) = table::read_layout(conn, plan.dataset.as_str())? else { return Ok(KeyedRows::default()) };
        // No feature of the load has the key property when it has no column: then the load
        // stored no row.
        let Some(key) = KeyColumn::find(&layout, key) else { return Ok(KeyedRows::default()) };
        let t = quote(&layout.table);
        if let KeyColumn::Column(column) = &key {
            let index = quote(&key_index_name(&layout.table));
            conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {index} ON {t} ({column})"))
                .ctx("indexing the dataset's key")?;
        }
        let (k_m, k_o) = (key.of("m"), key.of("o"));
        let mut deleted_fids = Vec::new();
        let mut delete = |sql: &str, params: &[&dyn rusqlite::ToSql], what: &str| -> Result<Vec<String>, StoreError> {
            let mut stmt = conn.prepare(sql).ctx(what)?;
            let mut found = stmt.query(params).ctx(what)?;
            let mut sources = Vec::new();
            while let Some(r) = found.next().ctx(what)? {
                if r.get::<_, bool>(1).ctx(what)? {
                    deleted_fids.push(r.get::<_, i64>(0).ctx(what)?);
                }
                sources.push(r.get(2).ctx(what)?);
            }
            Ok(sources)
        };
        // Of the load's rows of one key, the last feature's stays.
        let duplicates = delete(
            &format!(
                "DELETE FROM {t} WHERE fid IN (
                   SELECT fid FROM (
                     SELECT m.fid, row_number() OVER (PARTITION BY {k_m} ORDER BY m.gf_feature_index DESC) AS n
                     FROM {t} m WHERE m.fid >= ?1)
                   WHERE n > 1)
                 RETURNING fid, geom IS NOT NULL, gf_source"
            ),
            &[&rows.first_fid],
            "keeping the last feature of each key",
        )?;
        // A row of the load whose key a newer object's row holds leaves. Catalog times are
        // fixed-width RFC 3339 UTC text: they sort as the times do.
        let older = delete(
            &format!(
                "DELETE FROM {t} AS m WHERE m.fid >= ?1 AND EXISTS (
                   SELECT 1 FROM {t} o JOIN geoflow_sources s ON s.dataset = ?2 AND s.source_key = o.gf_source
                   WHERE {k_o} = {k_m} AND o.fid < ?1 AND o.gf_source <> ?3
                     AND (coalesce(s.modified, s.loaded_at) > ?4
                          OR (coalesce(s.modified, s.loaded_at) = ?4 AND s.source_key > ?3)))
                 RETURNING fid, geom IS NOT NULL, gf_source"
            ),
            &[&rows.first_fid, &plan.dataset.as_str(), &plan.source, &to_rfc3339(this.modified)?],
            "keeping the newest object's row of each key",
        )?;
        // The rows the load's rows now hold the keys of leave, by the source that held them.
        let gone = delete(
            &format!(
                "DELETE FROM {t} AS o WHERE o.fid < ?1 AND EXISTS (SELECT 1 FROM {t} m WHERE m.fid >= ?1 AND {k_m} = {k_o})
                 RETURNING fid, geom IS NOT NULL, gf_source"
            ),
            &[&rows.first_fid],
            "replacing the rows of the load's keys",
        )?;
        let mut displaced: Vec<(String, u64)> = Vec::new();
        for source in gone {
            match displaced.iter_mut().find(|(s, _)| *s == source) {
                Some((_, n)) => *n += 1,
                None => displaced.push((source, 1)),
            }
        }
        let rows = self.rows.as_mut().ok_or_else(|| StoreError::Internal("no rows to key".into()))?;
        if let Some(changes) = rows.changes.as_mut() {
            // The entries of the load's own rows that left may still be pending, or applied
            // already (a large load applies them as it goes): both are taken back.
            let left: std::collections::HashSet<i64> = deleted_fids.iter().copied().collect();
            changes.inserted.retain(|e| !left.contains(&e.id));
            changes.deleted.extend(deleted_fids);
        }
        Ok(KeyedRows { superseded: (duplicates.len() + older.len()) as u64, displaced })
    }

    async fn release_rows(&mut self, dataset: &DatasetName, displaced: &[(String, u64)]) -> Result<(), StoreError> {
        let mut update = self
            .conn
            .prepare_cached(
                "UPDATE geoflow_sources SET feature_count = max(feature_count - ?3, 0) WHERE dataset = ?1 AND source_key = ?2",
            )
            .ctx("counting the rows each source holds")?;
        for (source, rows) in displaced {
            let rows = i64::try_from(*rows).unwrap_or(i64::MAX);
            update.execute(params![dataset.as_str(), source, rows]).ctx("counting the rows each source holds")?;
        }
        Ok(())
    }

    async fn record_committed(&mut self, plan: &LoadPlan, load: &Committed<'_>) -> Result<(), StoreError> {
        let (conn, Some(rows)) = (&self.conn, self.rows.as_ref()) else {
            return Err(StoreError::Internal("no rows to record".into()));
        };
        catalog::upsert_source(conn, plan, load.source_rows, (load.load_id, &rows.started_at, load.settings))?;
        let times = (load.started_at, load.finished_at);
        catalog::finish_load(conn, load.load_id, LoadStatus::Loaded, times, load.result)?;
        catalog::touch_dataset(conn, plan.dataset.as_str(), &rows.table, &to_rfc3339(load.finished_at)?)
    }

    async fn record_load(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
    ) -> Result<i64, StoreError> {
        catalog::insert_load(&self.conn, plan, status, times, result)
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        self.rows = None;
        self.conn.execute_batch("COMMIT").ctx("committing")
    }

    async fn rollback(&mut self) -> Result<(), StoreError> {
        self.end_transaction()
    }

    async fn record_apart(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
        _after_failure: bool,
    ) -> Result<i64, StoreError> {
        // A failed statement leaves an SQLite connection usable: end its transaction.
        self.end_transaction()?;
        record_load(&mut self.conn, plan, status, times, result)
    }

    async fn catalogued_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError> {
        self.conn
            .query_row(
                "SELECT feature_count FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2",
                params![dataset.as_str(), source],
                |r| Ok(r.get::<_, i64>(0)?.max(0) as u64),
            )
            .optional()
            .ctx("reading the source catalog")
    }

    async fn forget_source(&mut self, dataset: &DatasetName, source: &str) -> Result<bool, StoreError> {
        let deleted = self
            .conn
            .execute(
                "DELETE FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2",
                params![dataset.as_str(), source],
            )
            .ctx("removing the source")?;
        Ok(deleted > 0)
    }

    async fn delete_source_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError> {
        let Some(layout) = table::read_layout(&self.conn, dataset.as_str())? else { return Ok(None) };
        let removed = self.remove_rows(&layout.table, source)?;
        self.removed_from = Some(layout.table);
        Ok(Some(removed))
    }

    async fn record_removal(
        &mut self,
        dataset: &DatasetName,
        source: &str,
        rows: u64,
        at: OffsetDateTime,
        changes: &[SchemaChange],
    ) -> Result<(), StoreError> {
        let Some(table) = self.removed_from.as_deref() else {
            return Err(StoreError::Internal("a removal recorded before its rows were deleted".into()));
        };
        catalog::record_removal(&self.conn, dataset, source, rows, at, changes)?;
        catalog::touch_dataset(&self.conn, dataset.as_str(), table, &to_rfc3339(at)?)
    }

    async fn layout(&mut self, dataset: &DatasetName) -> Result<Option<Layout>, StoreError> {
        table::read_layout(&self.conn, dataset.as_str())
    }

    async fn column_in_use(&mut self, layout: &Layout, column: &Column) -> Result<bool, StoreError> {
        table::column_in_use(&self.conn, layout, column)
    }

    async fn drop_columns(&mut self, dataset: &DatasetName, drop: &ColumnDrop) -> Result<(), StoreError> {
        table::drop_columns(&self.conn, dataset.as_str(), drop)
    }
}

/// Deletes the rows a source loaded before. With the R-tree triggers suspended (`changes`
/// given), the fids whose R-tree entries must go are collected, and a source that holds
/// every row of the table empties it in one step.
fn delete_source_rows(
    tx: &Connection,
    table: &str,
    source: &str,
    changes: Option<&mut rtree::Changes>,
) -> Result<u64, StoreError> {
    const CONTEXT: &str = "deleting the source's previous rows";
    let t = quote(table);
    let Some(changes) = changes else {
        return Ok(tx.execute(&format!("DELETE FROM {t} WHERE gf_source = ?1"), [source]).ctx(CONTEXT)? as u64);
    };
    let others: bool = tx
        .query_row(
            &format!("SELECT EXISTS (SELECT 1 FROM {t} WHERE gf_source < ?1) OR EXISTS (SELECT 1 FROM {t} WHERE gf_source > ?1)"),
            [source],
            |r| r.get(0),
        )
        .ctx(CONTEXT)?;
    if !others {
        // Without triggers and without a WHERE clause SQLite clears the table's pages at once.
        let n = tx.execute(&format!("DELETE FROM {t}"), []).ctx(CONTEXT)?;
        changes.cleared = true;
        return Ok(n as u64);
    }
    let mut delete =
        tx.prepare(&format!("DELETE FROM {t} WHERE gf_source = ?1 RETURNING fid, geom IS NOT NULL")).ctx(CONTEXT)?;
    let mut rows = delete.query([source]).ctx(CONTEXT)?;
    let mut n = 0u64;
    while let Some(r) = rows.next().ctx(CONTEXT)? {
        n += 1;
        if r.get::<_, bool>(1).ctx(CONTEXT)? {
            changes.deleted.push(r.get(0).ctx(CONTEXT)?);
        }
    }
    Ok(n)
}

/// Deletes every row of the table. With the R-tree triggers suspended (`changes` given), the
/// R-tree is cleared in one step with them.
fn delete_all_rows(tx: &Connection, table: &str, changes: Option<&mut rtree::Changes>) -> Result<u64, StoreError> {
    let n = tx.execute(&format!("DELETE FROM {}", quote(table)), []).ctx("emptying the dataset")?;
    if let Some(changes) = changes {
        changes.cleared = true;
    }
    Ok(n as u64)
}

/// Where a row's key is stored.
enum KeyColumn {
    /// A column (quoted), indexed.
    Column(String),
    /// A member of the overflow column (its key, as an SQL string's content). It is read by a
    /// function of geoflow's own connections, which no index may use: other programs write the
    /// file too.
    Member(String),
}

impl KeyColumn {
    fn find(layout: &Layout, key: &FeatureKey) -> Option<KeyColumn> {
        Some(match layout.key_location(key)? {
            KeyLocation::Column(name) => KeyColumn::Column(quote(name)),
            KeyLocation::Member(key) => KeyColumn::Member(key.replace('\'', "''")),
        })
    }

    /// The key of the row named `row`.
    fn of(&self, row: &str) -> String {
        match self {
            KeyColumn::Column(column) => format!("{row}.{column}"),
            KeyColumn::Member(member) => format!("gf_member({row}.{}, '{member}')", quote(OVERFLOW_COLUMN)),
        }
    }
}

/// The name of a table's key index: no dataset's table takes it, as no dataset name ends in
/// `_gf_key` ([`geoflow_core::dataset::RESERVED_SUFFIXES`]).
pub(super) fn key_index_name(table: &str) -> String {
    format!("{table}{}", geoflow_core::dataset::RESERVED_SUFFIXES[1])
}

/// Parameter positions of the insert statement.
const P_GEOM: usize = 1;
const P_FEATURE_ID: usize = 2;
const P_SOURCE: usize = 3;
const P_LOAD_ID: usize = 4;
const P_LOADED_AT: usize = 5;
const P_INDEX: usize = 6;
const P_GEOMETRY_TYPE: usize = 7;
const P_AREA: usize = 8;
const P_LENGTH: usize = 9;
const P_VERTICES: usize = 10;
const P_MIN_X: usize = 11;
const P_MIN_Y: usize = 12;
const P_MAX_X: usize = 13;
const P_MAX_Y: usize = 14;
const P_FIRST_PROPERTY: usize = 15;

/// The insert statement of a load and where each schema field binds in it.
struct InsertShape {
    sql: String,
    id_type: FieldType,
    /// Per schema field: its statement parameter and the column type values convert to, or
    /// its key in the overflow object.
    fields: Vec<FieldSlot>,
    /// The statement parameter of the overflow column, when the load writes it.
    overflow_param: Option<usize>,
    /// Property parameters of the statement.
    property_params: usize,
}

impl InsertShape {
    fn new(resolution: &Resolution) -> InsertShape {
        let layout = &resolution.new;
        // Distinct columns of this load's fields, each one statement parameter.
        let mut params_of_column: Vec<Option<usize>> = vec![None; layout.columns.len()];
        let mut column_list = String::from(
            "geom, feature_id, gf_source, gf_load_id, gf_loaded_at, gf_feature_index, gf_geometry_type, \
             gf_area_m2, gf_length_m, gf_vertices, gf_min_x, gf_min_y, gf_max_x, gf_max_y",
        );
        let mut next = P_FIRST_PROPERTY;
        let mut fields = Vec::with_capacity(resolution.field_columns.len());
        let mut overflow_param = None;
        for &c in &resolution.field_columns {
            let column = &layout.columns[c];
            let mut next_param = |name: &str| {
                column_list.push_str(", ");
                column_list.push_str(&quote(name));
                next += 1;
                next - 1
            };
            if column.overflow {
                overflow_param.get_or_insert_with(|| next_param(OVERFLOW_COLUMN));
                fields.push(FieldSlot::Overflow(json_key(&column.key)));
            } else {
                let p = *params_of_column[c].get_or_insert_with(|| next_param(&column.name));
                fields.push(FieldSlot::Column(p, column.ty));
            }
        }
        let placeholders: Vec<String> = (1..next).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO {} ({column_list}) VALUES ({})", quote(&layout.table), placeholders.join(", "));
        InsertShape { sql, id_type: layout.id_type, fields, overflow_param, property_params: next - P_FIRST_PROPERTY }
    }
}

/// Inserts a batch of rows with the load's statement (prepared once per connection, from the
/// statement cache); the per-load values are bound once per batch.
struct Inserter<'c> {
    insert: CachedStatement<'c>,
    conn: &'c Connection,
    shape: &'c InsertShape,
    /// Per statement property parameter: the row number that last bound it.
    bound_in: Vec<u64>,
    blob: Vec<u8>,
    overflow: OverflowObject,
}

impl<'c> Inserter<'c> {
    fn new(conn: &'c Connection, shape: &'c InsertShape, load: (&str, i64, &str)) -> Result<Inserter<'c>, StoreError> {
        let (source, load_id, loaded_at) = load;
        let mut insert = conn.prepare_cached(&shape.sql).ctx("preparing the insert")?;
        insert.raw_bind_parameter(P_SOURCE, source).ctx("binding")?;
        insert.raw_bind_parameter(P_LOAD_ID, load_id).ctx("binding")?;
        insert.raw_bind_parameter(P_LOADED_AT, loaded_at).ctx("binding")?;
        Ok(Inserter {
            insert,
            conn,
            shape,
            bound_in: vec![0; shape.property_params],
            blob: Vec::with_capacity(4096),
            overflow: OverflowObject::default(),
        })
    }

    /// Inserts one row, the `stamp`th of the load; returns its R-tree entry (none for empty
    /// and null geometries).
    fn insert(&mut self, row: &Row, stamp: u64) -> Result<Option<rtree::Entry>, StoreError> {
        let s = &mut self.insert;
        let bbox: Option<Bbox> = row.geometry.as_ref().and_then(|g| g.bbox);
        match &row.geometry {
            Some(g) => {
                geometry::encode_into(&mut self.blob, g);
                s.raw_bind_parameter(P_GEOM, &self.blob[..]).ctx("binding the geometry")?;
                s.raw_bind_parameter(P_GEOMETRY_TYPE, g.kind.name()).ctx("binding")?;
                s.raw_bind_parameter(P_VERTICES, i64::from(row.measures.vertices)).ctx("binding")?;
            }
            None => {
                s.raw_bind_parameter(P_GEOM, rusqlite::types::Null).ctx("binding the geometry")?;
                s.raw_bind_parameter(P_GEOMETRY_TYPE, rusqlite::types::Null).ctx("binding")?;
                s.raw_bind_parameter(P_VERTICES, rusqlite::types::Null).ctx("binding")?;
            }
        }
        bind_value(s, P_FEATURE_ID, &row.id, self.shape.id_type)?;
        s.raw_bind_parameter(P_INDEX, i64::try_from(row.index).unwrap_or(i64::MAX)).ctx("binding")?;
        s.raw_bind_parameter(P_AREA, row.measures.area_m2).ctx("binding")?;
        s.raw_bind_parameter(P_LENGTH, row.measures.length_m).ctx("binding")?;
        s.raw_bind_parameter(P_MIN_X, bbox.map(|b| b.min_x)).ctx("binding")?;
        s.raw_bind_parameter(P_MIN_Y, bbox.map(|b| b.min_y)).ctx("binding")?;
        s.raw_bind_parameter(P_MAX_X, bbox.map(|b| b.max_x)).ctx("binding")?;
        s.raw_bind_parameter(P_MAX_Y, bbox.map(|b| b.max_y)).ctx("binding")?;

        let bound_in = &mut self.bound_in;
        route_properties(&self.shape.fields, row, &mut self.overflow, |p, ty, n| {
            bind_value(s, p, &row.properties[n].1, ty)?;
            bound_in[p - P_FIRST_PROPERTY] = stamp;
            Ok(())
        })?;
        if let (Some(p), Some(object)) = (self.shape.overflow_param, self.overflow.finish()) {
            s.raw_bind_parameter(p, object).ctx("binding the overflow properties")?;
            self.bound_in[p - P_FIRST_PROPERTY] = stamp;
        }
        for (i, b) in self.bound_in.iter().enumerate() {
            if *b != stamp {
                s.raw_bind_parameter(P_FIRST_PROPERTY + i, rusqlite::types::Null).ctx("binding")?;
            }
        }
        s.raw_execute().ctx("inserting a feature")?;
        Ok(bbox.map(|b| rtree::Entry::new(self.conn.last_insert_rowid(), &b)))
    }
}

/// Binds `value` as stored in a column of type `ty`: exactly `value.for_column(ty)`, without
/// allocating when the conversion is the identity.
fn bind_value(s: &mut Statement<'_>, p: usize, value: &PropValue, ty: FieldType) -> Result<(), StoreError> {
    let r = match (ty, value) {
        (_, PropValue::Null) => s.raw_bind_parameter(p, rusqlite::types::Null),
        (FieldType::Json, PropValue::Json(j)) => s.raw_bind_parameter(p, j.as_str()),
        (FieldType::Json, v) => match v.for_column(FieldType::Json) {
            PropValue::Json(j) | PropValue::Text(j) => s.raw_bind_parameter(p, j),
            other => return bind_value(s, p, &other, FieldType::Text),
        },
        (FieldType::Real, PropValue::Int(i)) => s.raw_bind_parameter(p, *i as f64),
        (_, PropValue::Bool(b)) => s.raw_bind_parameter(p, i64::from(*b)),
        (_, PropValue::Int(i)) => s.raw_bind_parameter(p, *i),
        (_, PropValue::Real(f)) => s.raw_bind_parameter(p, *f),
        (_, PropValue::Text(t)) | (_, PropValue::Json(t)) => s.raw_bind_parameter(p, t.as_str()),
    };
    r.ctx("binding a property")
}
