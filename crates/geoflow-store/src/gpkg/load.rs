//! One load: a single IMMEDIATE transaction that replaces a source's rows, committed on
//! [`LoadMessage::Commit`] and rolled back on anything else.

use std::path::Path;
use std::time::Instant;

use rusqlite::{params, Connection, OptionalExtension, Statement, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use geoflow_core::dataset::DatasetName;
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;

use super::catalog;
use super::geometry;
use super::rtree;
use super::table::{self, quote};
use super::{open_connection, to_rfc3339, Ctx};
use crate::layout::Resolution;
use crate::protocol::{self, judge_load, judge_removal, Origin, Verdict, INTERRUPTED};
use crate::{Clock, LoadMessage, LoadOutcome, LoadPlan, LoadReceiver, LoadResult, LoadStatus, Removal, StoreError};

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

/// Runs a whole load on the calling (blocking) thread.
/// `max_entries`: R-tree entries held in memory at most (see [`rtree::MAX_ENTRIES_IN_MEMORY`]).
pub fn run(
    path: &Path,
    clock: &dyn Clock,
    plan: LoadPlan,
    mut rx: LoadReceiver,
    (fill, max_entries): (RtreeFill, usize),
) -> Result<LoadOutcome, StoreError> {
    let started_at = clock.now();
    let table_name = plan.dataset.as_str().to_string();
    let mut conn = open_connection(path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting the load transaction")?;

    let error = match session(&tx, &plan, (started_at, clock), &mut rx, fill, max_entries) {
        Ok(End::Commit { load_id, replaced_rows }) => match tx.commit() {
            Ok(()) => return Ok(LoadOutcome::Loaded { load_id, table: table_name, replaced_rows }),
            Err(e) => StoreError::db("committing the load", e),
        },
        Ok(End::Unchanged) => {
            let load_id = catalog::insert_load(
                &tx,
                &plan,
                LoadStatus::Unchanged,
                (started_at, clock.now()),
                &LoadResult::default(),
            )?;
            tx.commit().ctx("recording an unchanged load")?;
            // Dropping the receiver tells the sender at once that no rows are needed.
            return Ok(LoadOutcome::Unchanged { load_id, table: table_name });
        }
        Ok(End::Abort(result)) => {
            tx.rollback().ctx("rolling back the load")?;
            let load_id = record_failed(&mut conn, &plan, (started_at, clock.now()), &result)?;
            return Ok(LoadOutcome::Failed { load_id, table: table_name });
        }
        Ok(End::Superseded(result)) => {
            drop(rx);
            tx.rollback().ctx("rolling back the load")?;
            let times = (started_at, clock.now());
            let load_id = record_load(&mut conn, &plan, LoadStatus::Superseded, times, &result)?;
            let reason = result.error.unwrap_or_default();
            return Ok(LoadOutcome::Superseded { load_id, table: table_name, reason });
        }
        Ok(End::Closed) => {
            tx.rollback().ctx("rolling back the load")?;
            let result = LoadResult { error: Some(INTERRUPTED.into()), ..LoadResult::default() };
            let load_id = record_failed(&mut conn, &plan, (started_at, clock.now()), &result)?;
            let error = StoreError::Interrupted { dataset: table_name, source_key: plan.source.clone() };
            return Err(StoreError::Recorded { load_id, error: Box::new(error) });
        }
        Err(e) => {
            drop(tx);
            e
        }
    };
    // Rolled back: record why, if the database lets us.
    let result = LoadResult { error: Some(error.to_string()), ..LoadResult::default() };
    match record_failed(&mut conn, &plan, (started_at, clock.now()), &result) {
        Ok(load_id) => Err(StoreError::Recorded { load_id, error: Box::new(error) }),
        Err(record_error) => {
            tracing::warn!(error = %record_error, "could not record the failed load");
            Err(error)
        }
    }
}

/// Removes a source's rows and its catalog entry in one transaction, unless `origin` says the
/// object exists again (then [`StoreError::Superseded`]).
pub fn remove_source(
    path: &Path,
    clock: &dyn Clock,
    dataset: &DatasetName,
    source: &str,
    origin: Option<&Origin>,
    fill: RtreeFill,
) -> Result<Removal, StoreError> {
    let mut conn = open_connection(path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting a transaction")?;
    if let Verdict::Superseded(reason) = protocol::check_blocking(origin, judge_removal)? {
        let (dataset, source_key) = (dataset.to_string(), source.to_string());
        return Err(StoreError::Superseded { dataset, source_key, reason });
    }
    let had_source = tx
        .execute(
            "DELETE FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2",
            params![dataset.as_str(), source],
        )
        .ctx("removing the source")?
        > 0;
    let mut removed = 0u64;
    if let Some(layout) = table::read_layout(&tx, dataset.as_str())? {
        let table = &layout.table;
        removed = if fill == RtreeFill::Deferred {
            table::suspend_rtree_triggers(&tx, table)?;
            let mut changes = rtree::Changes::default();
            let removed = delete_source_rows(&tx, table, source, Some(&mut changes))?;
            rtree::apply(&tx, table, changes, rtree::MAX_ENTRIES_IN_MEMORY)?;
            table::restore_rtree_triggers(&tx, table)?;
            removed
        } else {
            delete_source_rows(&tx, table, source, None)?
        };
        if had_source || removed > 0 {
            let at = clock.now();
            catalog::record_removal(&tx, dataset, source, removed, at)?;
            catalog::touch_dataset(&tx, dataset.as_str(), table, &to_rfc3339(at)?)?;
        }
    }
    tx.commit().ctx("committing the removal")?;
    Ok(Removal { catalogued: had_source, rows: removed })
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

fn session(
    tx: &Transaction<'_>,
    plan: &LoadPlan,
    (started, clock): (OffsetDateTime, &dyn Clock),
    rx: &mut LoadReceiver,
    fill: RtreeFill,
    max_entries: usize,
) -> Result<End, StoreError> {
    let dataset = plan.dataset.as_str();
    let current_hash: Option<String> = tx
        .query_row(
            "SELECT content_hash FROM geoflow_sources WHERE dataset = ?1 AND source_key = ?2",
            params![dataset, plan.source],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading the source catalog")?;
    if current_hash.as_deref() == Some(plan.version.content_hash.as_str()) {
        if let Verdict::Superseded(why) = protocol::check_blocking(plan.origin.as_ref(), |now| judge_load(plan, now))? {
            return Ok(End::Superseded(LoadResult { error: Some(why), ..LoadResult::default() }));
        }
        catalog::set_object_version(tx, plan)?;
        return Ok(End::Unchanged);
    }

    let t0 = Instant::now();
    let started_at = &to_rfc3339(started)?;
    let old = table::read_layout(tx, dataset)?;
    let resolution = Resolution::new(dataset, old, &plan.schema);
    // SQLite's SQLITE_MAX_COLUMN as built into the bundled library.
    resolution.check_width(2000)?;
    table::apply_resolution(&resolution, tx, dataset, started_at)?;
    let table = resolution.new.table.clone();

    // The row is rewritten at commit; its id is needed now for gf_load_id.
    let load_id = catalog::insert_load(tx, plan, LoadStatus::Loaded, (started, started), &LoadResult::default())?;

    let deferred = fill == RtreeFill::Deferred;
    if deferred {
        table::suspend_rtree_triggers(tx, &table)?;
    }
    let mut changes = rtree::Changes::default();
    let replaced_rows = delete_source_rows(tx, &table, &plan.source, deferred.then_some(&mut changes))?;
    let prepared = t0.elapsed();

    let mut inserter = Inserter::new(tx, &resolution, plan, load_id, started_at)?;
    let result = loop {
        match rx.blocking_recv() {
            Some(LoadMessage::Rows(batch)) => {
                for row in &batch {
                    let entry = inserter.insert(row)?;
                    if let (true, Some(e)) = (deferred, entry) {
                        changes.inserted.push(e);
                    }
                }
                if deferred && changes.inserted.len() >= max_entries {
                    // Memory stays bounded on any load: apply what is pending and go on.
                    rtree::apply(tx, &table, std::mem::take(&mut changes), max_entries)?;
                }
            }
            Some(LoadMessage::Commit(result)) => break result,
            Some(LoadMessage::Abort(result)) => return Ok(End::Abort(result)),
            None => return Ok(End::Closed),
        }
    };
    let inserted = inserter.inserted;
    drop(inserter);
    if deferred {
        let t = Instant::now();
        rtree::apply(tx, &table, changes, max_entries)?;
        table::restore_rtree_triggers(tx, &table)?;
        tracing::debug!(dataset, ms = t.elapsed().as_millis() as u64, "R-tree updated");
    }

    if inserted != result.counts.features_loaded {
        tracing::warn!(
            dataset,
            source = %plan.source,
            inserted,
            reported = result.counts.features_loaded,
            "rows stored differ from the features the reader reports as loaded"
        );
    }
    // Last, just before commit: the rows are of the version storage still holds.
    if let Verdict::Superseded(why) = protocol::check_blocking(plan.origin.as_ref(), |now| judge_load(plan, now))? {
        return Ok(End::Superseded(LoadResult { error: Some(why), ..result }));
    }
    let finished = clock.now();
    catalog::upsert_source(tx, plan, inserted, load_id, started_at)?;
    catalog::finish_load(tx, load_id, LoadStatus::Loaded, (started, finished), &result)?;
    catalog::touch_dataset(tx, dataset, &table, &to_rfc3339(finished)?)?;
    tracing::debug!(
        dataset,
        source = %plan.source,
        inserted,
        replaced_rows,
        prepare_ms = prepared.as_millis() as u64,
        total_ms = t0.elapsed().as_millis() as u64,
        "load ready to commit"
    );
    Ok(End::Commit { load_id, replaced_rows })
}

/// Deletes the rows a source loaded before. With the R-tree triggers suspended (`changes`
/// given), the fids whose R-tree entries must go are collected, and a source that holds
/// every row of the table empties it in one step.
fn delete_source_rows(
    tx: &Transaction<'_>,
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

/// Inserts rows with one prepared statement; the per-load values are bound once.
struct Inserter<'c> {
    insert: Statement<'c>,
    conn: &'c Connection,
    id_type: FieldType,
    /// Per schema field: its statement parameter and the column type values convert to.
    fields: Vec<(usize, FieldType)>,
    /// Per statement property parameter: the row number that last bound it.
    bound_in: Vec<u64>,
    blob: Vec<u8>,
    inserted: u64,
}

impl<'c> Inserter<'c> {
    fn new(
        tx: &'c Transaction<'_>,
        resolution: &Resolution,
        plan: &LoadPlan,
        load_id: i64,
        loaded_at: &str,
    ) -> Result<Inserter<'c>, StoreError> {
        let layout = &resolution.new;
        // Distinct columns of this load's fields, each one statement parameter.
        let mut params_of_column: Vec<Option<usize>> = vec![None; layout.columns.len()];
        let mut column_list = String::from(
            "geom, feature_id, gf_source, gf_load_id, gf_loaded_at, gf_feature_index, gf_geometry_type, \
             gf_area_m2, gf_length_m, gf_vertices, gf_min_x, gf_min_y, gf_max_x, gf_max_y",
        );
        let mut next = P_FIRST_PROPERTY;
        let mut fields = Vec::with_capacity(resolution.field_columns.len());
        for &c in &resolution.field_columns {
            let p = *params_of_column[c].get_or_insert_with(|| {
                column_list.push_str(", ");
                column_list.push_str(&quote(&layout.columns[c].name));
                next += 1;
                next - 1
            });
            fields.push((p, layout.columns[c].ty));
        }
        let placeholders: Vec<String> = (1..next).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO {} ({column_list}) VALUES ({})", quote(&layout.table), placeholders.join(", "));
        let mut insert = tx.prepare(&sql).ctx("preparing the insert")?;
        insert.raw_bind_parameter(P_SOURCE, &plan.source).ctx("binding")?;
        insert.raw_bind_parameter(P_LOAD_ID, load_id).ctx("binding")?;
        insert.raw_bind_parameter(P_LOADED_AT, loaded_at).ctx("binding")?;
        Ok(Inserter {
            insert,
            conn: tx,
            id_type: layout.id_type,
            fields,
            bound_in: vec![0; next - P_FIRST_PROPERTY],
            blob: Vec::with_capacity(4096),
            inserted: 0,
        })
    }

    /// Inserts one row; returns its R-tree entry (none for empty and null geometries).
    fn insert(&mut self, row: &Row) -> Result<Option<rtree::Entry>, StoreError> {
        let s = &mut self.insert;
        let stamp = self.inserted + 1;
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
        bind_value(s, P_FEATURE_ID, &row.id, self.id_type)?;
        s.raw_bind_parameter(P_INDEX, i64::try_from(row.index).unwrap_or(i64::MAX)).ctx("binding")?;
        s.raw_bind_parameter(P_AREA, row.measures.area_m2).ctx("binding")?;
        s.raw_bind_parameter(P_LENGTH, row.measures.length_m).ctx("binding")?;
        s.raw_bind_parameter(P_MIN_X, bbox.map(|b| b.min_x)).ctx("binding")?;
        s.raw_bind_parameter(P_MIN_Y, bbox.map(|b| b.min_y)).ctx("binding")?;
        s.raw_bind_parameter(P_MAX_X, bbox.map(|b| b.max_x)).ctx("binding")?;
        s.raw_bind_parameter(P_MAX_Y, bbox.map(|b| b.max_y)).ctx("binding")?;

        for (field, value) in &row.properties {
            let Some(&(p, ty)) = self.fields.get(*field) else {
                return Err(StoreError::Internal(format!(
                    "row {} refers to property field {field}, but the schema has {} fields",
                    row.index,
                    self.fields.len()
                )));
            };
            bind_value(s, p, value, ty)?;
            self.bound_in[p - P_FIRST_PROPERTY] = stamp;
        }
        for (i, b) in self.bound_in.iter().enumerate() {
            if *b != stamp {
                s.raw_bind_parameter(P_FIRST_PROPERTY + i, rusqlite::types::Null).ctx("binding")?;
            }
        }
        s.raw_execute().ctx("inserting a feature")?;

        self.inserted = stamp;
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
