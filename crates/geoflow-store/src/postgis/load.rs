//! One load: a single transaction that replaces a source's rows with a binary `COPY`,
//! committed on [`LoadMessage::Commit`] and rolled back on anything else.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use time::OffsetDateTime;
use tokio_postgres::{GenericClient, Transaction};

use geoflow_core::dataset::DatasetName;

use super::catalog;
use super::copy::{pg_timestamp, RowEncoder, COPY_SYSTEM_COLUMNS};
use super::table::{self, qualified, quote_ident};
use super::{Ctx, PostgisStore};
use crate::layout::Resolution;
use crate::protocol::{self, judge_load, judge_removal, Origin, Verdict, INTERRUPTED};
use crate::{LoadMessage, LoadOutcome, LoadPlan, LoadReceiver, LoadResult, LoadStatus, Removal, StoreError};

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

/// Serialises the loads (and removals) of one dataset across connections and processes.
async fn lock_dataset(store: &PostgisStore, tx: &impl GenericClient, dataset: &str) -> Result<(), StoreError> {
    let key = format!("geoflow.dataset:{dataset}");
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &[&key])
        .await
        .ctx(store, "locking the dataset")?;
    Ok(())
}

enum End {
    Commit {
        load_id: i64,
        replaced_rows: u64,
    },
    Unchanged,
    Abort(LoadResult),
    Closed,
    /// Storage moved on while this load ran: roll back, record why.
    Superseded(LoadResult),
}

pub async fn run(store: &PostgisStore, plan: LoadPlan, mut rx: LoadReceiver) -> Result<LoadOutcome, StoreError> {
    let started_at = store.now();
    let table_name = plan.dataset.as_str().to_string();
    let mut client = store.client().await?;

    let failure = {
        let tx = client.transaction().await.ctx(store, "starting the load transaction")?;
        match session(store, &tx, &plan, started_at, &mut rx).await {
            Ok(End::Commit { load_id, replaced_rows }) => match tx.commit().await {
                Ok(()) => return Ok(LoadOutcome::Loaded { load_id, table: table_name, replaced_rows }),
                Err(e) => Err(store.db_error("committing the load", &e)),
            },
            Ok(End::Unchanged) => {
                // Dropping the receiver tells the sender at once that no rows are needed.
                drop(rx);
                let times = (started_at, store.now());
                let load_id =
                    catalog::insert_load(store, &*tx, &plan, LoadStatus::Unchanged, times, &LoadResult::default())
                        .await?;
                tx.commit().await.ctx(store, "recording an unchanged load")?;
                return Ok(LoadOutcome::Unchanged { load_id, table: table_name });
            }
            Ok(End::Abort(result)) => {
                tx.rollback().await.ctx(store, "rolling back the load")?;
                Ok(result)
            }
            Ok(End::Superseded(result)) => {
                drop(rx);
                tx.rollback().await.ctx(store, "rolling back the load")?;
                let times = (started_at, store.now());
                let load_id =
                    catalog::insert_load(store, &**client, &plan, LoadStatus::Superseded, times, &result).await?;
                let reason = result.error.unwrap_or_default();
                return Ok(LoadOutcome::Superseded { load_id, table: table_name, reason });
            }
            Ok(End::Closed) => {
                tx.rollback().await.ctx(store, "rolling back the load")?;
                let result = LoadResult { error: Some(INTERRUPTED.into()), ..LoadResult::default() };
                let times = (started_at, store.now());
                let load_id = catalog::insert_load(store, &**client, &plan, LoadStatus::Failed, times, &result).await?;
                let error = StoreError::Interrupted { dataset: table_name, source_key: plan.source.clone() };
                return Err(StoreError::Recorded { load_id, error: Box::new(error) });
            }
            Err(e) => {
                // Dropping the transaction rolls it back.
                drop(tx);
                Err(e)
            }
        }
    };
    match failure {
        Ok(result) => {
            let times = (started_at, store.now());
            let load_id = catalog::insert_load(store, &**client, &plan, LoadStatus::Failed, times, &result).await?;
            Ok(LoadOutcome::Failed { load_id, table: table_name })
        }
        Err(error) => {
            // Rolled back: record why, if the database lets us (on a connection that is
            // surely usable).
            let result = LoadResult { error: Some(error.to_string()), ..LoadResult::default() };
            let times = (started_at, store.now());
            // After a failed statement mid-protocol (a COPY refused at its start, say), the
            // connection's state is not to be trusted: close it rather than pool it.
            drop(deadpool_postgres::Object::take(client));
            let recorded = match store.client().await {
                Ok(c) => catalog::insert_load(store, &**c, &plan, LoadStatus::Failed, times, &result).await,
                Err(e) => Err(e),
            };
            match recorded {
                Ok(load_id) => Err(StoreError::Recorded { load_id, error: Box::new(error) }),
                Err(record_error) => {
                    tracing::warn!(error = %record_error, "could not record the failed load");
                    Err(error)
                }
            }
        }
    }
}

async fn session(
    store: &PostgisStore,
    tx: &Transaction<'_>,
    plan: &LoadPlan,
    started_at: OffsetDateTime,
    rx: &mut LoadReceiver,
) -> Result<End, StoreError> {
    let dataset = plan.dataset.as_str();
    lock_dataset(store, tx, dataset).await?;
    let current: Option<(String, SourceRows)> = tx
        .query_opt(
            "SELECT content_hash, min_fid, max_fid FROM geoflow.sources WHERE dataset = $1 AND source_key = $2",
            &[&dataset, &plan.source],
        )
        .await
        .ctx(store, "reading the source catalog")?
        .map(|r| (r.get(0), SourceRows::from_columns(r.get(1), r.get(2))));
    if current.as_ref().map(|(hash, _)| hash.as_str()) == Some(plan.version.content_hash.as_str()) {
        if let Verdict::Superseded(why) = protocol::check(plan.origin.as_ref(), |now| judge_load(plan, now)).await? {
            return Ok(End::Superseded(LoadResult { error: Some(why), ..LoadResult::default() }));
        }
        catalog::set_object_version(store, tx, plan).await?;
        return Ok(End::Unchanged);
    }

    let t0 = Instant::now();
    let old = table::read_layout(store, tx, dataset).await?;
    let resolution = Resolution::new(dataset, old, &plan.schema);
    // PostgreSQL's MaxHeapAttributeNumber.
    resolution.check_width(1600)?;
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
    let created = table::apply_resolution(&resolution, store, tx, dataset, !build_index_after).await?;
    if build_index_after && !created {
        table::drop_spatial_index(store, tx, &resolution.new.table).await?;
    }

    // The row is rewritten at commit; its id is needed now for gf_load_id.
    let load_id =
        catalog::insert_load(store, tx, plan, LoadStatus::Loaded, (started_at, started_at), &LoadResult::default())
            .await?;
    let replaced_rows = match (was_empty, current) {
        (false, Some((_, rows))) => delete_source_rows(store, tx, &resolution.new.table, &plan.source, rows).await?,
        _ => 0,
    };
    let prepared = t0.elapsed();

    // The property columns this load writes, each once, in the COPY column list.
    let layout = &resolution.new;
    let mut slot_of_column: Vec<Option<usize>> = vec![None; layout.columns.len()];
    let mut column_list: Vec<String> = COPY_SYSTEM_COLUMNS.iter().map(|c| quote_ident(c)).collect();
    let mut slots = 0;
    let mut fields = Vec::with_capacity(resolution.field_columns.len());
    for &c in &resolution.field_columns {
        let slot = *slot_of_column[c].get_or_insert_with(|| {
            column_list.push(quote_ident(&layout.columns[c].name));
            slots += 1;
            slots - 1
        });
        fields.push((slot, layout.columns[c].ty));
    }
    let mut encoder = RowEncoder::new(fields, slots, layout.id_type, &plan.source, load_id, pg_timestamp(started_at));
    // Every fid this COPY takes is above the sequence's last value now.
    let first_fid = last_fid(store, tx, &layout.table).await? + 1;
    let copy = format!("COPY {t} ({}) FROM STDIN (FORMAT binary)", column_list.join(", "));
    let sink = tx.copy_in::<_, Bytes>(&copy).await.ctx(store, "starting the COPY")?;
    futures_util::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(SEND_BUFFER + (SEND_BUFFER >> 2));
    RowEncoder::header(&mut buf);
    let result = loop {
        match rx.recv().await {
            Some(LoadMessage::Rows(batch)) => {
                for row in &batch {
                    encoder.encode(&mut buf, row)?;
                    if buf.len() >= SEND_BUFFER {
                        sink.send(buf.split().freeze()).await.ctx(store, "copying rows")?;
                    }
                }
            }
            Some(LoadMessage::Commit(result)) => break result,
            // Leaving drops the sink, which aborts the COPY; the caller rolls back.
            Some(LoadMessage::Abort(result)) => return Ok(End::Abort(result)),
            None => return Ok(End::Closed),
        }
    };
    RowEncoder::trailer(&mut buf);
    sink.send(buf.split().freeze()).await.ctx(store, "copying rows")?;
    let copied = sink.as_mut().finish().await.ctx(store, "finishing the COPY")?;
    let rows = SourceRows::Fids(first_fid, last_fid(store, tx, &layout.table).await?);
    let copy_done = t0.elapsed();

    if build_index_after {
        // Index builds sort in memory when they can: 256 MB (for this transaction only) builds
        // the spatial index of 1M rows about a fifth faster than the 64 MB default.
        tx.batch_execute(&format!("SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'"))
            .await
            .ctx(store, "sizing the index build")?;
    }
    if created && build_index_after {
        table::create_keys_and_indexes(store, tx, &layout.table).await?;
    } else if build_index_after {
        table::create_spatial_index(store, tx, &layout.table).await?;
    }
    if created || copied >= ANALYZE_AFTER {
        tx.batch_execute(&format!("SET LOCAL default_statistics_target = {LOAD_STATISTICS_TARGET}; ANALYZE {t}"))
            .await
            .ctx(store, "analyzing the dataset table")?;
    }
    if copied != result.counts.features_loaded {
        tracing::warn!(
            dataset,
            source = %plan.source,
            copied,
            reported = result.counts.features_loaded,
            "rows stored differ from the features the reader reports as loaded"
        );
    }
    // Last, just before commit: the rows are of the version storage still holds.
    if let Verdict::Superseded(why) = protocol::check(plan.origin.as_ref(), |now| judge_load(plan, now)).await? {
        return Ok(End::Superseded(LoadResult { error: Some(why), ..result }));
    }
    catalog::upsert_source(store, tx, plan, (copied, rows), encoder.bbox, load_id, started_at).await?;
    let finished_at = store.now();
    catalog::finish_load(store, tx, load_id, finished_at, &result, (replaced_rows, copied)).await?;
    catalog::touch_dataset(store, tx, dataset, finished_at).await?;
    tracing::debug!(
        dataset,
        source = %plan.source,
        copied,
        replaced_rows,
        prepare_ms = prepared.as_millis() as u64,
        copy_ms = (copy_done - prepared).as_millis() as u64,
        total_ms = t0.elapsed().as_millis() as u64,
        "load ready to commit"
    );
    Ok(End::Commit { load_id, replaced_rows })
}

/// Removes a source's rows and its catalog entry in one transaction, unless `origin` says the
/// object exists again (then [`StoreError::Superseded`]).
pub async fn remove_source(
    store: &PostgisStore,
    dataset: &DatasetName,
    source: &str,
    origin: Option<&Origin>,
) -> Result<Removal, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.ctx(store, "starting a transaction")?;
    let name = dataset.as_str();
    lock_dataset(store, &*tx, name).await?;
    if let Verdict::Superseded(reason) = protocol::check(origin, judge_removal).await? {
        return Err(StoreError::Superseded { dataset: name.to_string(), source_key: source.to_string(), reason });
    }
    let catalogued: Option<SourceRows> = tx
        .query_opt(
            "DELETE FROM geoflow.sources WHERE dataset = $1 AND source_key = $2 RETURNING min_fid, max_fid",
            &[&name, &source],
        )
        .await
        .ctx(store, "removing the source")?
        .map(|r| SourceRows::from_columns(r.get(0), r.get(1)));
    let had_source = catalogued.is_some();
    let mut removed = 0;
    if let Some(layout) = table::read_layout(store, &*tx, name).await? {
        let rows = catalogued.unwrap_or(SourceRows::Unrecorded);
        removed = delete_source_rows(store, &*tx, &layout.table, source, rows).await?;
        if had_source || removed > 0 {
            let at = store.now();
            catalog::record_removal(store, &*tx, dataset, source, removed, at).await?;
            catalog::touch_dataset(store, &*tx, name, at).await?;
        }
    }
    tx.commit().await.ctx(store, "committing the removal")?;
    Ok(Removal { catalogued: had_source, rows: removed })
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
