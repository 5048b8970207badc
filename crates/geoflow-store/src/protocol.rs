//! The load protocol's decisions, made once for every store.
//!
//! A dataset must hold what storage holds *now*. Loads and removals of one dataset take turns
//! under the dataset's lock, and each one, under that lock and just before it commits, asks
//! storage what its object is now ([`ObjectProbe`]). It commits only if that is still the
//! version it read (a load) or still nothing (a removal); otherwise it ends
//! [`Verdict::Superseded`] and changes nothing. Whatever order events arrive in, the job of
//! the last change to a key reads storage after that change, and no other change to the key
//! can commit after it without reading the same state: so the dataset ends equal to storage.
//!
//! Backends provide the I/O (the lock, the transaction, the rows) as a [`LoadSession`]; the
//! sequence and every decision live here, in [`run_load`] and [`run_removal`]: when a load is
//! a no-op, when it is superseded, how each ending is recorded, and which counts the catalog
//! keeps.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry_type::{Fit, GeometryColumn, GeometryType};
use geoflow_core::report::Policy;
use geoflow_core::row::Row;
use time::OffsetDateTime;

use crate::layout::{self, Column, ColumnDrop, Layout, SchemaChange, TypeGuard};
use crate::{
    Clock, LoadMessage, LoadOutcome, LoadPlan, LoadReceiver, LoadResult, LoadStatus, Removal, RemovalCause, StoreError,
};

/// What storage holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// An object, with its version id (or, in storage without versions, its ETag).
    Present {
        version: Option<String>,
    },
    Absent,
}

/// Reads the current state of the object a load or removal comes from. Stores call it under
/// the dataset's lock, just before they commit.
#[async_trait]
pub trait ObjectProbe: Send + Sync + fmt::Debug {
    async fn state(&self) -> Result<ObjectState, StoreError>;
}

/// A probe shared by a plan and its clones.
pub type Origin = Arc<dyn ObjectProbe>;

/// What a load or removal may do once it knows what storage holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Storage still holds what this change reflects: commit.
    Current,
    /// Storage has moved on: change nothing. The reason says to what.
    Superseded(String),
}

/// A load of `plan` may commit only while storage holds the version it read.
pub fn judge_load(plan: &LoadPlan, now: &ObjectState) -> Verdict {
    let read = plan.version.object_version.as_deref();
    match now {
        ObjectState::Present { version } if version.as_deref() == read => Verdict::Current,
        ObjectState::Present { version } => Verdict::Superseded(format!(
            "the object was overwritten while it loaded (loaded version {}, now {})",
            read.unwrap_or("unknown"),
            version.as_deref().unwrap_or("unknown")
        )),
        ObjectState::Absent => Verdict::Superseded("the object was deleted while it loaded".into()),
    }
}

/// A removal may commit only while the object is still gone.
pub fn judge_removal(now: &ObjectState) -> Verdict {
    match now {
        ObjectState::Absent => Verdict::Current,
        ObjectState::Present { .. } => {
            Verdict::Superseded("the object exists again: its creation event loads it".into())
        }
    }
}

/// Asks `origin` (if the change has one: direct loads of a file have none) for its verdict.
pub async fn check(
    origin: Option<&Origin>,
    judge: impl FnOnce(&ObjectState) -> Verdict,
) -> Result<Verdict, StoreError> {
    match origin {
        None => Ok(Verdict::Current),
        Some(probe) => Ok(judge(&probe.state().await?)),
    }
}

/// What, besides its content, decides the rows a load stores: loading the same content again
/// under other settings is a load, not a no-op. As the catalog records it with each source.
/// `read` says how the source was read (empty for the defaults, which settings recorded before
/// it was part of them were read with).
pub fn load_settings(
    policy: Policy,
    mode: DatasetMode,
    key: &FeatureKey,
    geometry: GeometryType,
    read: &str,
) -> String {
    let (policy, geometry) = (policy.as_str(), geometry.as_str());
    let settings = match mode {
        DatasetMode::Upsert => format!("policy={policy};mode=upsert;key={};geometry={geometry}", key.setting()),
        _ => format!("policy={policy};mode={};geometry={geometry}", mode.as_str()),
    };
    match read {
        "" => settings,
        read => format!("{settings};{read}"),
    }
}

/// Settings as [`load_settings`] writes them now: those recorded before the geometry type was
/// part of them were loaded as `auto` asks (an untyped column, which `auto` keeps).
fn current_settings(recorded: Option<String>) -> Option<String> {
    recorded.map(|s| if s.contains(";geometry=") { s } else { format!("{s};geometry=auto") })
}

/// Whether settings recorded with a source (`None` before settings were recorded) are `now`.
pub fn same_settings(recorded: Option<&str>, now: &str) -> bool {
    current_settings(recorded.map(str::to_string)).as_deref() == Some(now)
}

/// Whether rows prepared for `plan` (keyed by `plan.key` if its mode is upsert) fit a dataset
/// whose catalog says `mode` and `key`: rows of an upsert load have their key checked by the
/// reader, so a dataset keyed otherwise needs the load read again.
pub fn check_keying(plan: &LoadPlan, mode: DatasetMode, key: &FeatureKey) -> Result<(), StoreError> {
    if mode != DatasetMode::Upsert || (plan.mode == DatasetMode::Upsert && plan.key == *key) {
        return Ok(());
    }
    Err(StoreError::SettingsChanged {
        dataset: plan.dataset.to_string(),
        reason: format!("the dataset became keyed by {key} while this load read its features"),
    })
}

/// Where an object stands among the objects of a dataset in [`DatasetMode::Replace`]: by when
/// storage last modified it, then by key. Storage orders the versions of one key itself
/// ([`ObjectProbe`]); this orders different keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectOrder {
    pub modified: OffsetDateTime,
    pub key: String,
}

/// A load of `plan` into a dataset in [`DatasetMode::Replace`] that holds `newest` changes
/// nothing if `newest` is a newer object (of another key: the probe judges versions of one).
pub fn judge_replacement(plan: &LoadPlan, started_at: OffsetDateTime, newest: Option<&ObjectOrder>) -> Verdict {
    let Some(newest) = newest.filter(|n| n.key != plan.source) else { return Verdict::Current };
    let this = ObjectOrder { modified: plan.modified.unwrap_or(started_at), key: plan.source.clone() };
    if this < *newest {
        let at = newest.modified.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        return Verdict::Superseded(format!(
            "the dataset holds a newer object, {} (modified {at}): in replace mode the newest object wins",
            newest.key
        ));
    }
    Verdict::Current
}

/// Which rows a load replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowScope {
    /// The rows of its own source ([`DatasetMode::Append`]).
    Source,
    /// Every row of the dataset, and every other source leaves it ([`DatasetMode::Replace`]).
    Dataset,
    /// None up front: once its rows are in, [`LoadSession::resolve_keys`] settles each key
    /// ([`DatasetMode::Upsert`]).
    Keys,
}

impl RowScope {
    fn of(mode: DatasetMode) -> RowScope {
        match mode {
            DatasetMode::Replace => RowScope::Dataset,
            DatasetMode::Append => RowScope::Source,
            DatasetMode::Upsert => RowScope::Keys,
        }
    }
}

/// What the catalog holds for a source, to decide whether loading it again is a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Catalogued {
    pub content_hash: String,
    pub settings: Option<String>,
    /// The rows the source holds.
    pub rows: u64,
}

/// How [`LoadSession::resolve_keys`] settled the keys of a load's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyedRows {
    /// Rows of this load that were not kept: a later feature of the load has the same key, or
    /// a newer object holds it.
    pub superseded: u64,
    /// The rows of other loads this load's rows replaced, by the source that held them.
    pub displaced: Vec<(String, u64)>,
}

/// Why a load ended without its rows, as the catalog records it.
pub const INTERRUPTED: &str = "interrupted before commit";

/// What [`LoadSession::prepare`] set up.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The load's id in the history (its row is rewritten at commit).
    pub load_id: i64,
    /// The rows of the source's previous version, now deleted.
    pub replaced_rows: u64,
    /// What fitting the table to the plan's schema changed ([`crate::layout::Resolution::changes`]).
    pub changes: Vec<SchemaChange>,
    /// The load's rows not kept ([`KeyedRows::superseded`]), known once they are in.
    pub superseded: u64,
    /// The geometry column's type now.
    pub geometry: GeometryColumn,
    /// Its type before this load; `None` when the load created the table.
    pub old_geometry: Option<GeometryColumn>,
}

/// A load about to commit, as the catalog records it.
#[derive(Debug)]
pub(crate) struct Committed<'a> {
    pub load_id: i64,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub replaced_rows: u64,
    /// The rows this load stored.
    pub stored_rows: u64,
    /// The rows the source holds now: its `feature_count` in the catalog (in upsert mode, its
    /// earlier rows of keys this load did not bring stay its own).
    pub source_rows: u64,
    /// The source's rows are not only this load's (upsert mode): a store that keeps an extent
    /// per source takes it from the rows.
    pub keyed: bool,
    pub result: &'a LoadResult,
    /// [`load_settings`] of the load, recorded with the source.
    pub settings: &'a str,
}

/// The I/O one store provides for loads and removals of one dataset. A session holds one
/// connection; [`run_load`] and [`run_removal`] decide what it does, and when.
///
/// The GeoPackage store's methods block: it runs the whole session on a blocking thread.
#[allow(async_fn_in_trait)]
pub(crate) trait LoadSession {
    /// Starts a transaction and takes the dataset's lock: changes of one dataset take turns.
    async fn begin(&mut self, dataset: &DatasetName) -> Result<(), StoreError>;
    /// The dataset's mode, with its key (which only upsert mode uses); `None` when the dataset
    /// does not exist yet.
    async fn dataset_mode(&mut self, dataset: &DatasetName) -> Result<Option<(DatasetMode, FeatureKey)>, StoreError>;
    /// The newest object among the dataset's sources (a source loaded before objects were
    /// ordered counts as modified when it loaded).
    async fn newest_source(&mut self, dataset: &DatasetName) -> Result<Option<ObjectOrder>, StoreError>;
    /// What the catalog holds for the plan's source.
    async fn catalogued(&mut self, plan: &LoadPlan) -> Result<Option<Catalogued>, StoreError>;
    /// Records that the source's unchanged content now comes from the plan's object version.
    async fn keep_source(&mut self, plan: &LoadPlan) -> Result<(), StoreError>;
    /// Fits the dataset table to the plan's schema (creating the dataset in `mode` if need
    /// be), records the load as begun and deletes the rows it replaces: the source's, with
    /// [`RowScope::Dataset`] every row (after [`LoadSession::forget_other_sources`]), with
    /// [`RowScope::Keys`] none (the key is indexed for [`LoadSession::resolve_keys`]).
    async fn prepare(
        &mut self,
        plan: &LoadPlan,
        started_at: OffsetDateTime,
        mode: DatasetMode,
        scope: RowScope,
    ) -> Result<Prepared, StoreError>;
    /// Deletes the catalog entries of the dataset's sources other than the plan's, before
    /// [`LoadSession::prepare`], recording each in the load history as removed `at`: their
    /// keys and the rows each held.
    async fn forget_other_sources(
        &mut self,
        plan: &LoadPlan,
        at: OffsetDateTime,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    async fn write(&mut self, rows: &[Row]) -> Result<(), StoreError>;
    /// Widens the geometry column to `to` in the middle of the load: the rows written so far
    /// stay, and the rows written after may be of the wider type.
    async fn widen_geometry(&mut self, to: GeometryColumn) -> Result<(), StoreError>;
    /// Completes the rows (and their indexes): how many were stored.
    async fn finish_rows(&mut self, plan: &LoadPlan) -> Result<u64, StoreError>;
    /// In a dataset keyed by `key`, leaves one row per key among this load's rows and the
    /// table's: of this load's rows of one key, the last feature's; between it and the rows
    /// of other loads, the row of the newest object by [`ObjectOrder`] (`this` is the load's
    /// own; a row of the plan's source is always older, storage ordering versions of a key).
    async fn resolve_keys(
        &mut self,
        plan: &LoadPlan,
        key: &FeatureKey,
        this: &ObjectOrder,
    ) -> Result<KeyedRows, StoreError>;
    /// Takes `rows` off what the catalog holds of these sources, their rows having been
    /// replaced: their counts, and the extents a store keeps per source.
    async fn release_rows(&mut self, dataset: &DatasetName, displaced: &[(String, u64)]) -> Result<(), StoreError>;
    /// The catalog of a load about to commit: its source, its load record, its dataset.
    async fn record_committed(&mut self, plan: &LoadPlan, load: &Committed<'_>) -> Result<(), StoreError>;
    /// Records a load in the open transaction.
    async fn record_load(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
    ) -> Result<i64, StoreError>;
    async fn commit(&mut self) -> Result<(), StoreError>;
    /// Rolls back, abandoning any rows in flight.
    async fn rollback(&mut self) -> Result<(), StoreError>;
    /// Records a load that changed nothing in a transaction of its own, once the session's
    /// transaction is over. `after_failure`: a statement of that transaction failed, so its
    /// connection may be out of step and is not to be trusted (a store ends it or replaces it).
    async fn record_apart(
        &mut self,
        plan: &LoadPlan,
        status: LoadStatus,
        times: (OffsetDateTime, OffsetDateTime),
        result: &LoadResult,
        after_failure: bool,
    ) -> Result<i64, StoreError>;
    /// The rows the catalog counts for a source; `None` when it is not catalogued.
    async fn catalogued_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError>;
    /// Deletes the source's catalog entry: whether there was one.
    async fn forget_source(&mut self, dataset: &DatasetName, source: &str) -> Result<bool, StoreError>;
    /// Deletes the source's rows: how many (`None` when the dataset has no table).
    async fn delete_source_rows(&mut self, dataset: &DatasetName, source: &str) -> Result<Option<u64>, StoreError>;
    /// Records a removal in the load history and the dataset's version.
    async fn record_removal(
        &mut self,
        dataset: &DatasetName,
        source: &str,
        rows: u64,
        at: OffsetDateTime,
        changes: &[SchemaChange],
    ) -> Result<(), StoreError>;
    /// The dataset table's layout as the open transaction sees it; `None` without a table.
    async fn layout(&mut self, dataset: &DatasetName) -> Result<Option<Layout>, StoreError>;
    /// Whether any row of the table has a value for the column (or, for an overflow column,
    /// a member under its key).
    async fn column_in_use(&mut self, layout: &Layout, column: &Column) -> Result<bool, StoreError>;
    /// Drops columns from the table and forgets their keys in the catalog.
    async fn drop_columns(&mut self, dataset: &DatasetName, drop: &ColumnDrop) -> Result<(), StoreError>;
}

/// How the sequence of a load ended, before its transaction does.
enum End {
    Commit(Prepared),
    Unchanged,
    /// The reader failed the source.
    Abort(LoadResult),
    /// The sender went away: the ingest was cancelled or crashed.
    Closed,
    Superseded(LoadResult),
}

/// Runs one load: in one transaction, the source's rows are replaced by those `rx` brings and
/// committed on [`LoadMessage::Commit`]; anything else rolls back. Every ending is recorded
/// in the load history.
pub(crate) async fn run_load<S: LoadSession>(
    s: &mut S,
    plan: &LoadPlan,
    clock: &dyn Clock,
    mut rx: LoadReceiver,
) -> Result<LoadOutcome, StoreError> {
    let started_at = clock.now();
    let table = plan.dataset.as_str().to_string();
    let sequence = load_sequence(s, plan, clock, started_at, &mut rx).await;
    // Dropping the receiver tells the sender at once that no more rows are needed.
    drop(rx);
    let failure = match sequence {
        Ok(End::Commit(p)) => match s.commit().await {
            Ok(()) => {
                let (load_id, replaced_rows, schema_changes) = (p.load_id, p.replaced_rows, p.changes);
                let superseded_features = p.superseded;
                return Ok(LoadOutcome::Loaded { load_id, table, replaced_rows, schema_changes, superseded_features });
            }
            Err(e) => e,
        },
        Ok(End::Unchanged) => {
            let times = (started_at, clock.now());
            let load_id = s.record_load(plan, LoadStatus::Unchanged, times, &LoadResult::default()).await?;
            s.commit().await?;
            return Ok(LoadOutcome::Unchanged { load_id, table });
        }
        Ok(End::Abort(result)) => {
            s.rollback().await?;
            let load_id = s.record_apart(plan, LoadStatus::Failed, (started_at, clock.now()), &result, false).await?;
            return Ok(LoadOutcome::Failed { load_id, table });
        }
        Ok(End::Superseded(result)) => {
            s.rollback().await?;
            let times = (started_at, clock.now());
            let load_id = s.record_apart(plan, LoadStatus::Superseded, times, &result, false).await?;
            let reason = result.error.unwrap_or_default();
            return Ok(LoadOutcome::Superseded { load_id, table, reason });
        }
        Ok(End::Closed) => {
            s.rollback().await?;
            let result = LoadResult { error: Some(INTERRUPTED.into()), ..LoadResult::default() };
            let load_id = s.record_apart(plan, LoadStatus::Failed, (started_at, clock.now()), &result, false).await?;
            let error = StoreError::Interrupted { dataset: table, source_key: plan.source.clone() };
            return Err(StoreError::Recorded { load_id, error: Box::new(error) });
        }
        Err(e) => e,
    };
    // Nothing was committed: record why, if the database lets us.
    let result = LoadResult { error: Some(failure.to_string()), ..LoadResult::default() };
    match s.record_apart(plan, LoadStatus::Failed, (started_at, clock.now()), &result, true).await {
        Ok(load_id) => Err(StoreError::Recorded { load_id, error: Box::new(failure) }),
        Err(record_error) => {
            tracing::warn!(error = %record_error, "could not record the failed load");
            Err(failure)
        }
    }
}

async fn load_sequence<S: LoadSession>(
    s: &mut S,
    plan: &LoadPlan,
    clock: &dyn Clock,
    started_at: OffsetDateTime,
    rx: &mut LoadReceiver,
) -> Result<End, StoreError> {
    s.begin(&plan.dataset).await?;
    let (mode, key) = s.dataset_mode(&plan.dataset).await?.unwrap_or_else(|| (plan.mode, plan.key.clone()));
    check_keying(plan, mode, &key)?;
    if mode == DatasetMode::Replace {
        // Before any row is read: a late event of an older object costs nothing.
        let newest = s.newest_source(&plan.dataset).await?;
        if let Verdict::Superseded(why) = judge_replacement(plan, started_at, newest.as_ref()) {
            return Ok(End::Superseded(LoadResult { error: Some(why), ..LoadResult::default() }));
        }
    }
    let settings = load_settings(plan.policy, mode, &key, plan.geometry_type, &plan.read_settings);
    let catalogued = s.catalogued(plan).await?;
    let unchanged = catalogued.as_ref().is_some_and(|c| {
        c.content_hash == plan.version.content_hash && same_settings(c.settings.as_deref(), &settings)
    });
    if !plan.force && unchanged {
        // The content is there already, but a newer version of the object may be on its way.
        if let Verdict::Superseded(why) = check(plan.origin.as_ref(), |now| judge_load(plan, now)).await? {
            return Ok(End::Superseded(LoadResult { error: Some(why), ..LoadResult::default() }));
        }
        s.keep_source(plan).await?;
        return Ok(End::Unchanged);
    }

    let scope = RowScope::of(mode);
    let mut others_rows = 0;
    if scope == RowScope::Dataset {
        // The other sources leave the dataset, each recorded as a removal; of the rows the
        // load deletes, the rest are this source's.
        others_rows = s.forget_other_sources(plan, started_at).await?.iter().map(|(_, rows)| rows).sum();
    }
    let mut prepared = s.prepare(plan, started_at, mode, scope).await?;
    prepared.replaced_rows = prepared.replaced_rows.saturating_sub(others_rows);
    let geometry = prepared.old_geometry.map(|old| (old, prepared.geometry));
    let guard = TypeGuard::with_geometry(plan.schema_policy, &plan.schema, &prepared.changes, geometry);
    let mut result = loop {
        match rx.recv().await {
            Some(LoadMessage::Rows(mut batch)) => {
                guard.check(&batch)?;
                fit_geometries(s, plan, &mut prepared, &mut batch).await?;
                s.write(&batch).await?
            }
            Some(LoadMessage::Commit(result)) => break result,
            Some(LoadMessage::Abort(result)) => return Ok(End::Abort(result)),
            None => return Ok(End::Closed),
        }
    };
    guard.finish()?;
    let copied = s.finish_rows(plan).await?;
    let (stored_rows, source_rows) = match scope {
        RowScope::Keys => settle_keys(s, plan, &key, started_at, catalogued.as_ref(), &mut prepared, copied).await?,
        RowScope::Source | RowScope::Dataset => (copied, copied),
    };
    if stored_rows + prepared.superseded != result.counts.features_loaded {
        tracing::warn!(
            dataset = %plan.dataset,
            source = %plan.source,
            stored_rows,
            reported = result.counts.features_loaded,
            "rows stored differ from the features the reader reports as loaded"
        );
    }
    if prepared.replaced_rows > 0 {
        prepared.changes.extend(drop_unused_columns(s, &plan.dataset, Some(&plan.schema)).await?);
    }
    result.schema_changes = prepared.changes.clone();
    // Last, just before commit: the rows are of the version storage still holds.
    if let Verdict::Superseded(why) = check(plan.origin.as_ref(), |now| judge_load(plan, now)).await? {
        return Ok(End::Superseded(LoadResult { error: Some(why), ..result }));
    }
    let load = Committed {
        load_id: prepared.load_id,
        started_at,
        finished_at: clock.now(),
        replaced_rows: prepared.replaced_rows,
        stored_rows,
        source_rows,
        keyed: scope == RowScope::Keys,
        result: &result,
        settings: &settings,
    };
    s.record_committed(plan, &load).await?;
    Ok(End::Commit(prepared))
}

/// Makes every row's geometry fit the geometry column, once for every store: a single
/// geometry goes into a Multi column as a Multi geometry of one part, an empty one takes the
/// column's kind. A geometry that does not fit at all (the schema pass cannot foresee every
/// repair) widens the column before its row is written, as a reported change, unless the
/// load is strict and the column existed before it: then the load is rejected.
async fn fit_geometries<S: LoadSession>(
    s: &mut S,
    plan: &LoadPlan,
    prepared: &mut Prepared,
    batch: &mut [Row],
) -> Result<(), StoreError> {
    for row in batch {
        let Some(g) = row.geometry.as_mut() else { continue };
        let column = prepared.geometry;
        if column.fit(g) == Fit::Misfit {
            let wider = column.widen_for(g);
            if plan.schema_policy == geoflow_core::schema::SchemaPolicy::Strict && prepared.old_geometry.is_some() {
                let which = format!("feature {} has a {} geometry", row.index, g.kind.name());
                return Err(layout::geometry_rejection(&which, column, wider));
            }
            tracing::debug!(dataset = %plan.dataset, from = %column, to = %wider, feature = row.index, "widening the geometry column");
            s.widen_geometry(wider).await?;
            record_geometry_change(&mut prepared.changes, column, wider);
            prepared.geometry = wider;
        }
        prepared.geometry.convert(g);
    }
    Ok(())
}

/// Records that the geometry column widened from `from` to `to`, merged with any widening
/// already recorded.
fn record_geometry_change(changes: &mut Vec<SchemaChange>, from: GeometryColumn, to: GeometryColumn) {
    let earlier = changes.iter().position(|c| matches!(c, SchemaChange::GeometryWidened { .. }));
    match earlier {
        Some(i) => {
            if let SchemaChange::GeometryWidened { to: recorded, .. } = &mut changes[i] {
                *recorded = to.to_string();
            }
        }
        None => changes.insert(0, SchemaChange::geometry_widened(from, to)),
    }
}

/// Settles the keys of the `copied` rows of an upsert load ([`LoadSession::resolve_keys`], as
/// the object `plan.source` modified then, or when the load started) and takes the rows they
/// replaced off their sources. Returns the rows the load stored and the rows its source holds
/// now: its earlier rows of keys the load did not bring stay its own.
async fn settle_keys<S: LoadSession>(
    s: &mut S,
    plan: &LoadPlan,
    key: &FeatureKey,
    started_at: OffsetDateTime,
    catalogued: Option<&Catalogued>,
    prepared: &mut Prepared,
    copied: u64,
) -> Result<(u64, u64), StoreError> {
    let this = ObjectOrder { modified: plan.modified.unwrap_or(started_at), key: plan.source.clone() };
    let keyed = s.resolve_keys(plan, key, &this).await?;
    let stored = copied.saturating_sub(keyed.superseded);
    prepared.superseded = keyed.superseded;
    prepared.replaced_rows = keyed.displaced.iter().map(|(_, n)| n).sum();
    let (own, others): (Vec<_>, Vec<_>) = keyed.displaced.into_iter().partition(|(source, _)| *source == plan.source);
    s.release_rows(&plan.dataset, &others).await?;
    let own: u64 = own.iter().map(|(_, n)| n).sum();
    Ok((stored, catalogued.map_or(0, |c| c.rows).saturating_sub(own) + stored))
}

/// Removes a source's rows and its catalog entry in one transaction, unless `origin` says the
/// object exists again (then [`StoreError::Superseded`], and nothing changes).
pub(crate) async fn run_removal<S: LoadSession>(
    s: &mut S,
    clock: &dyn Clock,
    dataset: &DatasetName,
    source: &str,
    origin: Option<&Origin>,
    cause: RemovalCause,
) -> Result<Removal, StoreError> {
    s.begin(dataset).await?;
    let removal = async {
        if let Verdict::Superseded(reason) = check(origin, judge_removal).await? {
            let (dataset, source_key) = (dataset.to_string(), source.to_string());
            return Err(StoreError::Superseded { dataset, source_key, reason });
        }
        let mode = s.dataset_mode(dataset).await?.map(|(mode, _)| mode);
        if mode == Some(DatasetMode::Upsert) && cause == RemovalCause::ObjectDeleted {
            // The dataset is what its objects brought, key by key: the features stay, and so
            // does the source, whose order still decides its keys against late objects.
            let catalogued = s.catalogued_rows(dataset, source).await?;
            return Ok(Removal {
                catalogued: catalogued.is_some(),
                rows: 0,
                schema_changes: Vec::new(),
                mode,
                kept_rows: catalogued.unwrap_or(0),
            });
        }
        let catalogued = s.forget_source(dataset, source).await?;
        let rows = s.delete_source_rows(dataset, source).await?;
        let mut schema_changes = Vec::new();
        if rows.is_some_and(|rows| rows > 0) {
            schema_changes = drop_unused_columns(s, dataset, None).await?;
        }
        if let Some(rows) = rows.filter(|&rows| catalogued || rows > 0) {
            s.record_removal(dataset, source, rows, clock.now(), &schema_changes).await?;
        }
        Ok(Removal { catalogued, rows: rows.unwrap_or(0), schema_changes, mode, kept_rows: 0 })
    }
    .await;
    match removal {
        Ok(removal) => {
            s.commit().await?;
            Ok(removal)
        }
        Err(e) => {
            if let Err(rollback) = s.rollback().await {
                tracing::debug!(error = %rollback, "rolling back a removal that failed");
            }
            Err(e)
        }
    }
}

/// Drops the property columns no row has a value in any more, among those that rows leaving
/// the table may have emptied ([`layout::drop_candidates`]; `incoming`: the schema of the
/// rows a load brings in, `None` for a removal). Returns what was dropped.
async fn drop_unused_columns<S: LoadSession>(
    s: &mut S,
    dataset: &DatasetName,
    incoming: Option<&geoflow_core::schema::Schema>,
) -> Result<Vec<SchemaChange>, StoreError> {
    let Some(layout) = s.layout(dataset).await? else { return Ok(Vec::new()) };
    let mut unused = Vec::new();
    for column in layout::drop_candidates(&layout, incoming) {
        if !s.column_in_use(&layout, &column).await? {
            unused.push(column);
        }
    }
    if !unused.is_empty() {
        s.drop_columns(dataset, &layout.drop_columns(&unused)).await?;
    }
    Ok(layout::dropped(&unused))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceVersion;
    use geoflow_core::schema::Schema;

    fn plan(version: Option<&str>) -> LoadPlan {
        LoadPlan {
            dataset: DatasetName::new("roads").unwrap(),
            source: "raw/roads/a.geojson".into(),
            version: SourceVersion { content_hash: "h".into(), bytes: 1, object_version: version.map(String::from) },
            schema: Schema::default(),
            policy: Policy::Skip,
            origin: None,
            schema_policy: Default::default(),
            geometry_type: Default::default(),
            mode: DatasetMode::Replace,
            key: geoflow_core::dataset::FeatureKey::FeatureId,
            modified: None,
            force: false,
            read_settings: String::new(),
        }
    }

    fn present(v: &str) -> ObjectState {
        ObjectState::Present { version: Some(v.into()) }
    }

    #[test]
    fn a_load_commits_only_the_version_storage_holds() {
        assert_eq!(judge_load(&plan(Some("v1")), &present("v1")), Verdict::Current);
        assert!(matches!(judge_load(&plan(Some("v1")), &present("v2")), Verdict::Superseded(r) if r.contains("v2")));
        assert!(
            matches!(judge_load(&plan(Some("v1")), &ObjectState::Absent), Verdict::Superseded(r) if r.contains("deleted"))
        );
    }

    #[test]
    fn in_replace_mode_an_older_object_changes_nothing() {
        let at = |s: i64| OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s);
        let newest = |key: &str, s| ObjectOrder { modified: at(s), key: key.into() };
        let mut p = plan(Some("v1"));
        p.modified = Some(at(100));
        assert_eq!(judge_replacement(&p, at(500), None), Verdict::Current);
        assert_eq!(judge_replacement(&p, at(500), Some(&newest("raw/roads/0.geojson", 99))), Verdict::Current);
        assert!(matches!(
            judge_replacement(&p, at(500), Some(&newest("raw/roads/b.geojson", 101))),
            Verdict::Superseded(r) if r.contains("raw/roads/b.geojson")
        ));
        // The same second: the key decides, the same way everywhere.
        assert_eq!(judge_replacement(&p, at(500), Some(&newest("raw/roads/0.geojson", 100))), Verdict::Current);
        assert!(matches!(
            judge_replacement(&p, at(500), Some(&newest("raw/roads/b.geojson", 100))),
            Verdict::Superseded(_)
        ));
        // Versions of one key are storage's to order.
        assert_eq!(judge_replacement(&p, at(500), Some(&newest("raw/roads/a.geojson", 900))), Verdict::Current);
        // A file loaded directly counts as modified when it loads.
        p.modified = None;
        assert_eq!(judge_replacement(&p, at(500), Some(&newest("raw/roads/b.geojson", 400))), Verdict::Current);
    }

    #[test]
    fn a_removal_commits_only_while_the_object_is_gone() {
        assert_eq!(judge_removal(&ObjectState::Absent), Verdict::Current);
        assert!(matches!(judge_removal(&present("v3")), Verdict::Superseded(_)));
    }
}
