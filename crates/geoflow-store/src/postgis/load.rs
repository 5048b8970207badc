//! The PostGIS store's I/O for the load protocol ([`crate::protocol`]): one transaction per
//! load that replaces a source's rows with a binary `COPY`.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use deadpool_postgres::Object;
use futures_util::SinkExt;
use time::OffsetDateTime;
use tokio_postgres::{CopyInSink, GenericClient};

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::row::Row;

use super::catalog;
use super::copy::{pg_timestamp, RowEncoder, COPY_SYSTEM_COLUMNS};
use super::table::{self, qualified, quote_ident};
use super::{Ctx, PostgisStore};
use crate::layout::{
    json_key, Column, ColumnDrop, FieldSlot, GeometryRequest, KeyLocation, Layout, Resolution, SchemaChange,
    OVERFLOW_COLUMN,
};
use crate::protocol::{self, Catalogued, Committed, KeyedRows, LoadSession, ObjectOrder, Origin, Prepared, RowScope};
use crate::{LoadOutcome, LoadPlan, LoadReceiver, LoadResult, LoadStatus, Removal, RemovalCause, StoreError};
use geoflow_core::geometry_type::GeometryColumn;

/// Bytes of COPY data sent at a time.
const SEND_BUFFER: usize = 1 << 20;
/// Loads of at least this many rows refresh the planner statistics of the table.
const ANALYZE_AFTER: u64 = 10_000;
/// The statistics target of that refresh: PostgreSQL's default before 8.4, a sample of 3,000
/// rows where the default takes 30,000 and five times as long. The rows count at commit as
/// changes, so autovacuum analyzes the table again with the full target shortly after.
const LOAD_STATISTICS_TARGET: u32 = 10;

/// Memory for building indexes after a bulk load, on the server.
const INDEX_BUILD_MEMORY: &str = "256MB";

/// PostgreSQL's MaxHeapAttributeNumber: no table has more columns.
const MAX_COLUMNS: usize = 1600;
/// The columns a dataset table is given at most; properties beyond go to the overflow column.
/// A row must fit a page (8,160 bytes), and a property value may take 18 bytes of it (a
/// TOAST pointer, or a double and its alignment): 400 property columns leave room for the
/// system columns and the row header whatever the values.
const OWN_COLUMNS: usize = crate::layout::SYSTEM_COLUMNS.len() + 1 + 400;

pub async fn run(store: &PostgisStore, plan: LoadPlan, rx: LoadReceiver) -> Result<LoadOutcome, StoreError> {
    let mut session = PgSession::open(store).await?;
    protocol::run_load(&mut session, &plan, &*store.clock, rx).await
}

/// Removes a source's rows and its catalog entry (see [`protocol::run_removal`]).
pub async fn remove_source(
    store: &PostgisStore,
    dataset: &DatasetName,
    source: &str,
    origin: Option<&Origin>,
    cause: RemovalCause,
) -> Result<Removal, StoreError> {
    let mut session = PgSession::open(store).await?;
    protocol::run_removal(&mut session, &*store.clock, dataset, source, origin, cause).await
}

/// Serialises the loads (and removals) of one dataset across connections and processes.
pub(super) async fn lock_dataset(
    store: &PostgisStore,
    tx: &impl GenericClient,
    dataset: &str,
) -> Result<(), StoreError> {
    let key = format!("geoflow.dataset:{dataset}");
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&key])
        .await
        .ctx(store, "locking the dataset")?;
    Ok(())
}

/// One connection's part in a load or removal. The transaction is begun and ended by hand so
/// that the session owns its connection; a session dropped inside a transaction closes the
/// connection instead of pooling it.
struct PgSession<'s> {
    store: &'s PostgisStore,
    /// `None` once closed after a failure, until a fresh one is taken.
    client: Option<Object>,
    in_transaction: bool,
    /// Where the source's current rows are, read with its content hash (or its removal).
    current_rows: Option<SourceRows>,
    /// In upsert mode, the source's earlier rows stay where no row of the load replaces them.
    keeps_earlier_rows: bool,
    copy: Option<Copy>,
}

/// A COPY in flight and what the load does after it.
struct Copy {
    sink: Pin<Box<CopyInSink<Bytes>>>,
    /// The `COPY` statement (a load that widens its geometry column starts it again).
    statement: String,
    /// Rows copied by the COPY statements before the current one.
    copied_before: u64,
    buf: BytesMut,
    encoder: RowEncoder,
    table: String,
    first_fid: i64,
    /// The table was created by this load (keys and indexes come after the COPY).
    created: bool,
    /// The spatial index is built after the COPY.
    build_index_after: bool,
    t0: Instant,
    prepared: Duration,
    /// Rows copied and the fids they took, once the COPY is finished.
    stored: Option<(u64, SourceRows)>,
}

impl<'s> PgSession<'s> {
    async fn open(store: &'s PostgisStore) -> Result<PgSession<'s>, StoreError> {
        let client = store.client().await?;
        Ok(PgSession {
            store,
            client: Some(client),
            in_transaction: false,
            current_rows: None,
            keeps_earlier_rows: false,
            copy: None,
        })
    }

    fn client(&self) -> Result<&tokio_postgres::Client, StoreError> {
        self.client
            .as_deref()
            .map(|c| &**c)
            .ok_or_else(|| StoreError::Internal("the load's connection is closed".into()))
    }

    /// Closes the connection: after a failed statement mid-protocol (a COPY refused at its
    /// start, say) its state is not to be trusted, so it must not go back to the pool.
    fn close(&mut self) {
        self.copy = None;
        self.in_transaction = false;
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

impl Drop for PgSession<'_> {
    fn drop(&mut self) {
        if self.in_transaction {
            self.close();
        }
    }
}

impl LoadSession for PgSession<'_> {
    async fn begin(&mut self, dataset: &DatasetName) -> Result<(), StoreError> {
        let store = self.store;
        self.client()?.batch_execute("BEGIN").await.ctx(store, "starting the transaction")?;
        self.in_transaction = true;
        lock_dataset(store, self.client()?, dataset.as_str()).await
    }

    async fn dataset_mode(&mut self, dataset: &DatasetName) -> Result<Option<(DatasetMode, FeatureKey)>, StoreError> {
        let mode: Option<(String, Option<String>)> = self
            .client()?
            .query_opt("SELECT mode, key_property FROM geoflow.datasets WHERE name = $1", &[&dataset.as_str()])
            .await
            .ctx(self.store, "reading the dataset's mode")?
            .map(|r| (r.get(0), r.get(1)));
        mode.map(|(m, key)| Ok((catalog::parse_mode(self.store, &m)?, FeatureKey::from_property(key)))).transpose()
    }

    async fn newest_source(&mut self, dataset: &DatasetName) -> Result<Option<ObjectOrder>, StoreError> {
        let newest = self
            .client()?
            .query_opt(
                "SELECT source_key, coalesce(modified, loaded_at) AS at FROM geoflow.sources WHERE dataset = $1
                 ORDER BY at DESC, source_key COLLATE \"C\" DESC LIMIT 1",
                &[&dataset.as_str()],
            )
            .await
            .ctx(self.store, "reading the dataset's newest source")?;
        Ok(newest.map(|r| ObjectOrder { key: r.get(0), modified: r.get(1) }))
    }

    async fn catalogued(&mut self, plan: &LoadPlan) -> Result<Option<Catalogued>, StoreError> {
        let current: Option<(Catalogued, SourceRows)> = self
            .client()?
            .query_opt(
                "SELECT content_hash, settings, min_fid, max_fid, feature_count FROM geoflow.sources
                 WHERE dataset = $1 AND source_key = $2",
                &[&plan.dataset.as_str(), &plan.source],
            )
            .await
            .ctx(self.store, "reading the source catalog")?
            .map(|r| {
                let rows = r.get::<_, i64>(4).max(0) as u64;
                let catalogued = Catalogued { content_hash: r.get(0), settings: r.get(1), rows };
                (catalogued, SourceRows::from_columns(r.get(2), r.get(3)))
            });
        self.current_rows = current.as_ref().map(|(_, rows)| *rows);
        Ok(current.map(|(catalogued, _)| catalogued))
    }

    async fn keep_source(&mut self, plan: &LoadPlan) -> Result<(), StoreError> {
        catalog::set_object_version(self.store, self.client()?, plan).await
    }

    async fn prepare(
        &mut self,
        plan: &LoadPlan,
        started_at: OffsetDateTime,
        mode: DatasetMode,
        scope: RowScope,
    ) -> Result<Prepared, StoreError> {
        self.keeps_earlier_rows = scope == RowScope::Keys && self.current_rows.is_some();
        let (store, tx) = (self.store, self.client()?);
        let dataset = plan.dataset.as_str();
        let t0 = Instant::now();
        let old = table::read_layout(store, tx, dataset).await?;
        let request = GeometryRequest::new(plan.geometry_type, plan.policy);
        let resolution = Resolution::new(dataset, old, &plan.schema, request, OWN_COLUMNS);
        resolution.check_width(MAX_COLUMNS)?;
        let changes = resolution.changes();
        let t = qualified(&resolution.new.table);
        let was_empty = match &resolution.old {
            None => true,
            Some(_) => tx
                .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {t})"), &[])
                .await
                .ctx(store, "reading the dataset table")?
                .get(0),
        };
        // Into an empty table, building the spatial index once after the COPY beats
        // maintaining it row by row; a table created by this load gets its primary key and
        // other index after the COPY too.
        let build_index_after = was_empty && store.defer_spatial_index;
        let created = table::apply_resolution(&resolution, store, tx, dataset, mode, !build_index_after).await?;
        if build_index_after && !created {
            table::drop_spatial_index(store, tx, &resolution.new.table).await?;
        }
        if created && mode == DatasetMode::Upsert {
            catalog::set_mode(store, tx, &plan.dataset, mode, &plan.key).await?;
        }

        // The row is rewritten at commit; its id is needed now for gf_load_id.
        let times = (started_at, started_at);
        let load_id = catalog::insert_load(store, tx, plan, LoadStatus::Loaded, times, &LoadResult::default()).await?;
        let replaced_rows = match (was_empty, scope, self.current_rows) {
            (true, _, _) => 0,
            (false, RowScope::Dataset, _) => {
                tx.execute(&format!("DELETE FROM {t}"), &[]).await.ctx(store, "emptying the dataset")?
            }
            (false, RowScope::Keys, _) => 0,
            (false, RowScope::Source, Some(rows)) => {
                delete_source_rows(store, tx, &resolution.new.table, &plan.source, rows).await?
            }
            (false, RowScope::Source, None) => 0,
        };
        let prepared = t0.elapsed();

        // The property columns this load writes, each once, in the COPY column list.
        let layout = &resolution.new;
        let mut slot_of_column: Vec<Option<usize>> = vec![None; layout.columns.len()];
        let mut column_list: Vec<String> = COPY_SYSTEM_COLUMNS.iter().map(|c| quote_ident(c)).collect();
        let mut slots = 0;
        let mut fields = Vec::with_capacity(resolution.field_columns.len());
        let mut overflow_slot = None;
        for &c in &resolution.field_columns {
            let column = &layout.columns[c];
            let mut next_slot = |name: &str| {
                column_list.push(quote_ident(name));
                slots += 1;
                slots - 1
            };
            if column.overflow {
                overflow_slot.get_or_insert_with(|| next_slot(OVERFLOW_COLUMN));
                fields.push(FieldSlot::Overflow(json_key(&column.key)));
            } else {
                let slot = *slot_of_column[c].get_or_insert_with(|| next_slot(&column.name));
                fields.push(FieldSlot::Column(slot, column.ty));
            }
        }
        let fields = (fields, overflow_slot);
        let encoder = RowEncoder::new(fields, slots, layout.id_type, &plan.source, load_id, pg_timestamp(started_at));
        // Every fid this COPY takes is above the sequence's last value now.
        let first_fid = last_fid(store, tx, &layout.table).await? + 1;
        let copy = format!("COPY {t} ({}) FROM STDIN (FORMAT binary)", column_list.join(", "));
        let sink = Box::pin(tx.copy_in::<_, Bytes>(&copy).await.ctx(store, "starting the COPY")?);
        let mut buf = BytesMut::with_capacity(SEND_BUFFER + (SEND_BUFFER >> 2));
        RowEncoder::header(&mut buf);
        let geometry = (resolution.new.geometry, resolution.old.as_ref().map(|o| o.geometry));
        self.copy = Some(Copy {
            sink,
            statement: copy,
            copied_before: 0,
            buf,
            encoder,
            table: layout.table.clone(),
            first_fid,
            created,
            build_index_after,
            t0,
            prepared,
            stored: None,
        });
        Ok(Prepared { load_id, replaced_rows, changes, superseded: 0, geometry: geometry.0, old_geometry: geometry.1 })
    }

    async fn forget_other_sources(
        &mut self,
        plan: &LoadPlan,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let (store, tx) = (self.store, self.client()?);
        let others = tx
            .query(
                "DELETE FROM geoflow.sources WHERE dataset = $1 AND source_key <> $2 RETURNING source_key, feature_count",
                &[&plan.dataset.as_str(), &plan.source],
            )
            .await
            .ctx(store, "removing the dataset's other sources")?;
        let others: Vec<(String, u64)> = others.iter().map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64)).collect();
        for (other, rows) in &others {
            catalog::record_removal(store, tx, &plan.dataset, other, *rows, at, &[]).await?;
        }
        Ok(others)
    }

    async fn widen_geometry(&mut self, to: GeometryColumn) -> Result<(), StoreError> {
        let store = self.store;
        let client = self.client.as_deref().map(|c| &**c);
        let (Some(tx), Some(copy)) = (client, self.copy.as_mut()) else {
            return Err(StoreError::Internal("no COPY to widen the geometry column of".into()));
        };
        // A table cannot change while a COPY into it is open: end it, widen, start another.
        RowEncoder::trailer(&mut copy.buf);
        copy.sink.send(copy.buf.split().freeze()).await.ctx(store, "copying rows")?;
        copy.copied_before += copy.sink.as_mut().finish().await.ctx(store, "finishing the COPY")?;
        let alter = format!("ALTER TABLE {} {}", qualified(&copy.table), table::geometry_retype(to));
        tx.batch_execute(&alter).await.ctx(store, "widening the geometry column")?;
        copy.sink = Box::pin(tx.copy_in::<_, Bytes>(&copy.statement).await.ctx(store, "starting the COPY")?);
        RowEncoder::header(&mut copy.buf);
        Ok(())
    }

    async fn write(&mut self, rows: &[Row]) -> Result<(), StoreError> {
        let store = self.store;
        let copy = self.copy.as_mut().ok_or_else(|| StoreError::Internal("rows sent before the COPY".into()))?;
        for row in rows {
            copy.encoder.encode(&mut copy.buf, row)?;
            if copy.buf.len() >= SEND_BUFFER {
                copy.sink.send(copy.buf.split().freeze()).await.ctx(store, "copying rows")?;
            }
        }
        Ok(())
    }

    async fn finish_rows(&mut self, plan: &LoadPlan) -> Result<u64, StoreError> {
        let store = self.store;
        let client = self.client.as_deref().map(|c| &**c);
        let (Some(tx), Some(copy)) = (client, self.copy.as_mut()) else {
            return Err(StoreError::Internal("no COPY to finish".into()));
        };
        RowEncoder::trailer(&mut copy.buf);
        copy.sink.send(copy.buf.split().freeze()).await.ctx(store, "copying rows")?;
        let copied = copy.copied_before + copy.sink.as_mut().finish().await.ctx(store, "finishing the COPY")?;
        let rows = SourceRows::Fids(copy.first_fid, last_fid(store, tx, &copy.table).await?);
        copy.stored = Some((copied, rows));
        let copy_done = copy.t0.elapsed();

        let t = qualified(&copy.table);
        if copy.build_index_after {
            // Index builds sort in memory when they can: 256 MB (for this transaction only)
            // builds the spatial index of 1M rows about a fifth faster than the 64 MB default.
            tx.batch_execute(&format!("SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
                .await
                .ctx(store, "sizing the index build")?;
            if copy.created {
                table::create_keys_and_indexes(store, tx, &copy.table).await?;
            } else {
                table::create_spatial_index(store, tx, &copy.table).await?;
            }
        }
        if copy.created || copied >= ANALYZE_AFTER {
            tx.batch_execute(&format!("SET LOCAL default_statistics_target = {LOAD_STATISTICS_TARGET}; ANALYZE {t}"))
                .await
                .ctx(store, "analyzing the dataset table")?;
        }
        tracing::debug!(
            dataset = %plan.dataset,
            source = %plan.source,
            copied,
            prepare_ms = copy.prepared.as_millis() as u64,
            copy_ms = (copy_done - copy.prepared).as_millis() as u64,
            total_ms = copy.t0.elapsed().as_millis() as u64,
            "rows stored"
        );
        Ok(copied)
    }

    async fn resolve_keys(
        &mut self,
        plan: &LoadPlan,
        key: &FeatureKey,
        this: &ObjectOrder,
    ) -> Result<KeyedRows, StoreError> {
        let (store, tx) = (self.store, self.client()?);
        let copy = self.copy.as_ref().ok_or_else(|| StoreError::Internal("no COPY to key".into()))?;
        let Some((_, SourceRows::Fids(first, last))) = copy.stored else {
            return Err(StoreError::Internal("the COPY is not finished".into()));
        };
        let Some(layout) = table::read_layout(store, tx, plan.dataset.as_str()).await? else {
            return Ok(KeyedRows::default());
        };
        // No feature of the load has the key property when it has no column: then the load
        // stored no row.
        let Some(key) = KeyColumn::find(&layout, key) else { return Ok(KeyedRows::default()) };
        key.ensure_index(store, tx, &layout.table).await?;
        let t = qualified(&layout.table);
        let (k_m, k_o) = (key.of("m"), key.of("o"));
        // Of the load's rows of one key, the last feature's stays.
        let duplicates = tx
            .execute(
                &format!(
                    "DELETE FROM {t} d USING (
                       SELECT fid, row_number() OVER (PARTITION BY {k} ORDER BY gf_feature_index DESC) AS n
                       FROM {t} m WHERE fid BETWEEN $1 AND $2) r
                     WHERE d.fid = r.fid AND r.n > 1",
                    k = key.of("m")
                ),
                &[&first, &last],
            )
            .await
            .ctx(store, "keeping the last feature of each key")?;
        // A row of the load whose key a newer object's row holds leaves.
        let older = tx
            .execute(
                &format!(
                    "DELETE FROM {t} m WHERE m.fid BETWEEN $1 AND $2 AND EXISTS (
                       SELECT 1 FROM {t} o JOIN geoflow.sources s ON s.dataset = $3 AND s.source_key = o.gf_source
                       WHERE {k_o} = {k_m} AND o.fid NOT BETWEEN $1 AND $2 AND o.gf_source <> $4
                         AND (coalesce(s.modified, s.loaded_at) > $5
                              OR (coalesce(s.modified, s.loaded_at) = $5 AND s.source_key COLLATE \"C\" > $4 COLLATE \"C\")))"
                ),
                &[&first, &last, &plan.dataset.as_str(), &plan.source, &this.modified],
            )
            .await
            .ctx(store, "keeping the newest object's row of each key")?;
        // The rows the load's rows now hold the keys of leave, by the source that held them.
        let displaced = tx
            .query(
                &format!(
                    "WITH gone AS (
                       DELETE FROM {t} o USING {t} m
                       WHERE m.fid BETWEEN $1 AND $2 AND o.fid NOT BETWEEN $1 AND $2 AND {k_o} = {k_m}
                       RETURNING o.gf_source)
                     SELECT gf_source, count(*) FROM gone GROUP BY gf_source"
                ),
                &[&first, &last],
            )
            .await
            .ctx(store, "replacing the rows of the load's keys")?;
        let displaced = displaced.iter().map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64)).collect();
        Ok(KeyedRows { superseded: duplicates + older, displaced })
    }

    async fn release_rows(&mut self, dataset: &DatasetName, displaced: &[(String, u64)]) -> Result<(), StoreError> {
        let sources: Vec<&str> = displaced.iter().map(|(source, _)| source.as_str()).collect();
        recount_sources(self.store, self.client()?, dataset, &sources).await
    }

    async fn record_committed(&mut self, plan: &LoadPlan, load: &Committed<'_>) -> Result<(), StoreError> {
        let (store, tx) = (self.store, self.client()?);
        let copy = self.copy.as_ref().ok_or_else(|| StoreError::Internal("no COPY to record".into()))?;
        let (_, fids) = copy.stored.ok_or_else(|| StoreError::Internal("the COPY is not finished".into()))?;
        // Earlier rows of the source that stay lie below this load's fids.
        let fids = match (self.keeps_earlier_rows, self.current_rows, fids) {
            (false, _, fids) => fids,
            (true, Some(SourceRows::Fids(earlier, _)), SourceRows::Fids(first, last)) => {
                SourceRows::Fids(earlier.min(first), last)
            }
            (true, _, _) => SourceRows::Unrecorded,
        };
        let rows = (load.source_rows, fids);
        let recorded = (load.load_id, load.started_at, load.settings);
        catalog::upsert_source(store, tx, plan, rows, copy.encoder.bbox, recorded).await?;
        if load.keyed {
            recount_sources(store, tx, &plan.dataset, &[plan.source.as_str()]).await?;
        }
        let counts = (load.replaced_rows, load.stored_rows);
        catalog::finish_load(store, tx, load.load_id, load.finished_at, load.result, counts).await?;
        catalog::touch_dataset(store, tx, plan.dataset.as_str(), load.finished_at).await
    }

    async fn record_load(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
    ) -> Result<i64, StoreError> {
        catalog::insert_load(self.store, self.client()?, plan, status, times, result).await
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        let store = self.store;
        self.client()?.batch_execute("COMMIT").await.ctx(store, "committing")?;
        self.in_transaction = false;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<(), StoreError> {
        // Dropping the sink aborts a COPY in flight.
        self.copy = None;
        let store = self.store;
        let rolled_back = self.client()?.batch_execute("ROLLBACK").await.ctx(store, "rolling back");
        match rolled_back {
            Ok(()) => self.in_transaction = false,
            Err(_) => self.close(),
        }
        rolled_back
    }

    async fn record_apart(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
        after_failure: bool,
    ) -> Result<i64, StoreError> {
        if after_failure || self.client.is_none() {
            // Closing the connection rolls its transaction back.
            self.close();
            self.client = Some(self.store.client().await?);
        }
        catalog::insert_load(self.store, self.client()?, plan, status, times, result).await
    }

    async fn catalogued_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError> {
        let rows = self
            .client()?
            .query_opt(
                "SELECT feature_count FROM geoflow.sources WHERE dataset = $1 AND source_key = $2",
                &[&dataset.as_str(), &source],
            )
            .await
            .ctx(self.store, "reading the source catalog")?;
        Ok(rows.map(|r| r.get::<_, i64>(0).max(0) as u64))
    }

    async fn forget_source(&mut self, dataset: &DatasetName, source: &str) -> Result<bool, StoreError> {
        self.current_rows = self
            .client()?
            .query_opt(
                "DELETE FROM geoflow.sources WHERE dataset = $1 AND source_key = $2 RETURNING min_fid, max_fid",
                &[&dataset.as_str(), &source],
            )
            .await
            .ctx(self.store, "removing the source")?
            .map(|r| SourceRows::from_columns(r.get(0), r.get(1)));
        Ok(self.current_rows.is_some())
    }

    async fn delete_source_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError> {
        let (store, tx) = (self.store, self.client()?);
        let Some(layout) = table::read_layout(store, tx, dataset.as_str()).await? else { return Ok(None) };
        let rows = self.current_rows.unwrap_or(SourceRows::Unrecorded);
        Ok(Some(delete_source_rows(store, tx, &layout.table, source, rows).await?))
    }

    async fn record_removal(
        &mut self,
        dataset: &DatasetName,
        source: &str,
        rows: u64,
        at: OffsetDateTime,
        changes: &[SchemaChange],
    ) -> Result<(), StoreError> {
        let (store, tx) = (self.store, self.client()?);
        catalog::record_removal(store, tx, dataset, source, rows, at, changes).await?;
        catalog::touch_dataset(store, tx, dataset.as_str(), at).await
    }

    async fn layout(&mut self, dataset: &DatasetName) -> Result<Option<Layout>, StoreError> {
        table::read_layout(self.store, self.client()?, dataset.as_str()).await
    }

    async fn column_in_use(&mut self, layout: &Layout, column: &Column) -> Result<bool, StoreError> {
        table::column_in_use(self.store, self.client()?, layout, column).await
    }

    async fn drop_columns(&mut self, dataset: &DatasetName, drop: &ColumnDrop) -> Result<(), StoreError> {
        table::drop_columns(self.store, self.client()?, dataset.as_str(), drop).await
    }
}

/// The catalog entry of a source, read under the dataset's lock: no load of the dataset is
/// between its final check and its commit meanwhile.
pub async fn settled_source(
    store: &PostgisStore,
    dataset: &DatasetName,
    source: &str,
) -> Result<Option<crate::SourceRecord>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.ctx(store, "starting a transaction")?;
    lock_dataset(store, &*tx, dataset.as_str()).await?;
    let record = catalog::source_record(store, &*tx, dataset, source).await?;
    tx.commit().await.ctx(store, "reading the source catalog")?;
    Ok(record)
}

/// Sets a dataset's mode under its lock, between loads: `false` when there is no such dataset.
pub async fn set_mode(
    store: &PostgisStore,
    dataset: &DatasetName,
    mode: DatasetMode,
    key: &FeatureKey,
) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.ctx(store, "starting a transaction")?;
    lock_dataset(store, &*tx, dataset.as_str()).await?;
    let found = catalog::set_mode(store, &*tx, dataset, mode, key).await?;
    tx.commit().await.ctx(store, "setting the dataset's mode")?;
    Ok(found)
}

/// Declares a dataset's time under its lock, between loads (which may change its columns'
/// types): `false` when there is no such dataset.
pub async fn set_temporal(
    store: &PostgisStore,
    dataset: &DatasetName,
    temporal: Option<&crate::Temporal>,
) -> Result<bool, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.ctx(store, "starting a transaction")?;
    lock_dataset(store, &*tx, dataset.as_str()).await?;
    let found = catalog::set_temporal(store, &*tx, dataset, temporal, store.clock.now()).await?;
    tx.commit().await.ctx(store, "declaring the dataset's time")?;
    Ok(found)
}

/// Sets the catalogued count and extent of these sources to those of their rows.
async fn recount_sources(
    store: &PostgisStore,
    tx: &impl GenericClient,
    dataset: &DatasetName,
    sources: &[&str],
) -> Result<(), StoreError> {
    if sources.is_empty() {
        return Ok(());
    }
    let Some(layout) = table::read_layout(store, tx, dataset.as_str()).await? else { return Ok(()) };
    tx.execute(
        &format!(
            "UPDATE geoflow.sources s SET feature_count = r.n, min_x = r.min_x, min_y = r.min_y, max_x = r.max_x,
               max_y = r.max_y
             FROM (SELECT k.key, count(t.fid) AS n, min(t.gf_min_x) AS min_x, min(t.gf_min_y) AS min_y,
                     max(t.gf_max_x) AS max_x, max(t.gf_max_y) AS max_y
                   FROM unnest($2::text[]) AS k(key) LEFT JOIN {} t ON t.gf_source = k.key GROUP BY k.key) r
             WHERE s.dataset = $1 AND s.source_key = r.key",
            qualified(&layout.table)
        ),
        &[&dataset.as_str(), &sources],
    )
    .await
    .ctx(store, "counting the rows each source holds")?;
    Ok(())
}

/// Where a row's key is stored.
enum KeyColumn {
    /// A column (quoted).
    Column(String),
    /// A member of the overflow column (its key as an SQL literal).
    Member(String),
}

impl KeyColumn {
    fn find(layout: &Layout, key: &FeatureKey) -> Option<KeyColumn> {
        Some(match layout.key_location(key)? {
            KeyLocation::Column(name) => KeyColumn::Column(quote_ident(name)),
            KeyLocation::Member(key) => KeyColumn::Member(format!("'{}'", key.replace('\'', "''"))),
        })
    }

    /// The key of the row named `row`.
    fn of(&self, row: &str) -> String {
        match self {
            KeyColumn::Column(column) => format!("{row}.{column}"),
            KeyColumn::Member(member) => format!("({row}.{} -> {member})", quote_ident(OVERFLOW_COLUMN)),
        }
    }

    /// Indexes the key, once: each key of a load is looked up among the table's rows.
    async fn ensure_index(&self, store: &PostgisStore, tx: &impl GenericClient, table: &str) -> Result<(), StoreError> {
        let expr = match self {
            KeyColumn::Column(column) => column.clone(),
            KeyColumn::Member(member) => format!("({} -> {member})", quote_ident(OVERFLOW_COLUMN)),
        };
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} (({expr}))",
            quote_ident(&key_index_name(table)),
            qualified(table)
        );
        tx.batch_execute(&sql).await.ctx(store, "indexing the dataset's key")
    }
}

/// The name of a table's key index: no dataset's table takes it, as no dataset name ends in
/// `_gf_key` ([`geoflow_core::dataset::RESERVED_SUFFIXES`]), and a long table name is cut to
/// leave room for the suffix with a hash (FNV-1a) of the whole name.
pub(super) fn key_index_name(table: &str) -> String {
    const SUFFIX: &str = "_gf_key";
    if table.len() + SUFFIX.len() <= 63 {
        return format!("{table}{SUFFIX}");
    }
    let hash = table.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let cut = table.char_indices().nth(40).map_or(table.len(), |(i, _)| i);
    format!("{}_{hash:08x}{SUFFIX}", &table[..cut])
}

/// Where a source's rows are in its dataset table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRows {
    /// Within this range of `fid` (empty when first > last), which its latest load wrote.
    Fids(i64, i64),
    /// Not recorded (loaded before the catalog kept ranges): found by `gf_source`.
    Unrecorded,
}

impl SourceRows {
    fn from_columns(min_fid: Option<i64>, max_fid: Option<i64>) -> SourceRows {
        match (min_fid, max_fid) {
            (Some(first), Some(last)) => SourceRows::Fids(first, last),
            _ => SourceRows::Unrecorded,
        }
    }
}

/// The last `fid` the table's identity sequence handed out (0 before the first). Loads into a
/// dataset take turns, so the fids a COPY takes lie between this before and after it.
async fn last_fid(store: &PostgisStore, tx: &impl GenericClient, table: &str) -> Result<i64, StoreError> {
    tx.query_one(
        "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, 'fid')::regclass), 0)",
        &[&qualified(table)],
    )
    .await
    .map(|r| r.get(0))
    .ctx(store, "reading the table's fid sequence")
}

/// Deletes the rows of a source; the range of fids goes through the primary key, and
/// `gf_source` keeps rows of any other source in that range untouched.
async fn delete_source_rows(
    store: &PostgisStore,
    tx: &impl GenericClient,
    table: &str,
    source: &str,
    rows: SourceRows,
) -> Result<u64, StoreError> {
    let t = qualified(table);
    let deleted = match rows {
        SourceRows::Fids(first, last) => {
            tx.execute(
                &format!("DELETE FROM {t} WHERE fid BETWEEN $2 AND $3 AND gf_source = $1"),
                &[&source, &first, &last],
            )
            .await
        }
        SourceRows::Unrecorded => tx.execute(&format!("DELETE FROM {t} WHERE gf_source = $1"), &[&source]).await,
    };
    deleted.ctx(store, "deleting the source's rows")
}
