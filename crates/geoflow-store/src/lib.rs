//! Spatial stores: where loaded features and the catalog of datasets, sources and loads live.
//!
//! Every backend implements [`Store`]. A load is driven by [`LoadMessage`]s on a channel so
//! that parsing runs on other threads while the store writes, and so that a load ends either
//! in one commit or in nothing at all.

pub mod clock;
mod error;
pub mod features;
pub mod filter;
pub mod gpkg;
pub mod layout;
pub mod memory;
pub mod postgis;
pub mod protocol;
pub mod report;
pub mod tiles;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use tokio::sync::mpsc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorClass, StoreError};
pub use features::{FeatureQuery, FeatureStream, SortKey, SortValue, StoredFeature, TemporalFilter};
pub use filter::{Filter, FilterError, FilterLang};
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::report::{FeatureIssue, LoadCounts, Policy, ProblemCode};
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::{FieldType, Schema, SchemaPolicy};
use geoflow_core::served_crs::ServedCrs;
pub use layout::SchemaChange;
pub use tiles::{EncodedTile, TileId, TileMatrixSet};

/// Which content a source holds: identical content is never loaded twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceVersion {
    /// Hex SHA-256 of the source bytes.
    pub content_hash: String,
    pub bytes: u64,
    /// The storage's version id or ETag of the object the source was loaded from; `None` for
    /// local files and stdin. Lets a redelivered event be recognised before the object is read.
    pub object_version: Option<String>,
}

/// Everything a store needs to know before the first row arrives.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub dataset: DatasetName,
    /// The source key (a file name or storage key); a load replaces this source's rows only.
    pub source: String,
    pub version: SourceVersion,
    /// Property schema of this source; [`Row::properties`] index its fields.
    pub schema: Schema,
    pub policy: Policy,
    /// Where the source comes from in storage: asked under the dataset's lock, before commit,
    /// whether it still holds the version read ([`protocol`]). `None` for files loaded
    /// directly, which have no object to be superseded by.
    pub origin: Option<protocol::Origin>,
    /// Whether the load may change the types of the dataset's existing columns.
    pub schema_policy: SchemaPolicy,
    /// The geometry type asked for the dataset's geometry column.
    pub geometry_type: GeometryType,
    /// The mode a dataset created by this load gets; an existing dataset keeps its own.
    pub mode: DatasetMode,
    /// In [`DatasetMode::Upsert`], what keys the features (the reader refused features
    /// without one). The dataset's key, if it exists: a load whose rows were read for another
    /// fails, to be read again ([`StoreError::SettingsChanged`]).
    pub key: FeatureKey,
    /// When storage last modified the object: in a dataset in [`DatasetMode::Replace`], an
    /// object older than the one it holds changes nothing. `None` for files loaded directly,
    /// which count as modified when they load.
    pub modified: Option<OffsetDateTime>,
    /// Load even when the source already holds this content under the same settings.
    pub force: bool,
    /// How the source was read, where that changes its features (its CRS, the layer, CSV
    /// columns): part of the settings a reload compares. Empty for the defaults.
    pub read_settings: String,
}

/// The end state of a load, as the reader saw it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResult {
    pub counts: LoadCounts,
    /// The first problems found (capped); `issue_total` counts them all.
    pub issues: Vec<FeatureIssue>,
    pub issue_total: u64,
    /// Why the source failed, when it did.
    pub error: Option<String>,
    /// Extent of the loaded features.
    pub bbox: Option<Bbox>,
    /// Every problem counted by its code (`issues` keeps only the first ones).
    #[serde(default)]
    pub problem_counts: BTreeMap<ProblemCode, u64>,
    /// What the loaded features are, for the daily reports.
    #[serde(default)]
    pub loaded: LoadedMeasures,
    /// What the load changed in the dataset table's layout (set by the store as it commits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<SchemaChange>,
}

/// Totals over the features a load stores, recorded with the load so that a report on a past
/// day adds up the same however its rows were replaced since.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadedMeasures {
    /// Features by geometry type (`"null"` for features without geometry).
    pub geometry_types: BTreeMap<String, u64>,
    /// Geodesic area of the areal features, m².
    pub area_m2: f64,
    /// Geodesic length of the lineal features, m.
    pub length_m: f64,
}

impl LoadedMeasures {
    pub fn add(&mut self, row: &Row) {
        let kind = row.geometry.as_ref().map_or("null", |g| g.kind.name());
        match self.geometry_types.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.geometry_types.insert(kind.to_string(), 1);
            }
        }
        self.area_m2 += row.measures.area_m2.unwrap_or(0.0);
        self.length_m += row.measures.length_m.unwrap_or(0.0);
    }
}

/// What the ingest pipeline sends to [`Store::load`].
#[derive(Debug)]
pub enum LoadMessage {
    Rows(Vec<Row>),
    /// Every row was sent: replace the source's rows and commit.
    Commit(LoadResult),
    /// The source failed: roll back and record the failed load.
    Abort(LoadResult),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LoadOutcome {
    /// The source's rows were replaced.
    Loaded {
        load_id: i64,
        table: String,
        replaced_rows: u64,
        /// What the load changed in the table's layout.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        schema_changes: Vec<SchemaChange>,
        /// In upsert mode, the features not stored: a newer object holds their key, or a later
        /// feature of the same object has it.
        #[serde(default, skip_serializing_if = "is_zero")]
        superseded_features: u64,
    },
    /// The source already holds this content: nothing changed.
    Unchanged { load_id: i64, table: String },
    /// Rolled back; the previous rows of the source are untouched.
    Failed { load_id: i64, table: String },
    /// Storage no longer holds the version read: rolled back, nothing changed.
    Superseded { load_id: i64, table: String, reason: String },
}

/// What a removal removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// Whether the catalog listed the source.
    pub catalogued: bool,
    /// Rows removed.
    pub rows: u64,
    /// The columns dropped because no row has a value in them any more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<SchemaChange>,
    /// The dataset's mode (`None` when there is no such dataset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DatasetMode>,
    /// In upsert mode, the rows the deleted object's source keeps ([`RemovalCause`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kept_rows: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a source is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalCause {
    /// Its object was deleted from storage.
    ObjectDeleted,
    /// Someone asked (`geoflow sources rm`, the API).
    Request,
}

/// What dropping a dataset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetDrop {
    /// Sources the dataset held: each is recorded in the load history as removed.
    pub sources: u64,
    /// Rows those sources held.
    pub rows: u64,
}

/// How a load ended, as the catalog records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStatus {
    Loaded,
    Unchanged,
    Failed,
    Superseded,
}

impl LoadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Loaded => "loaded",
            LoadStatus::Unchanged => "unchanged",
            LoadStatus::Failed => "failed",
            LoadStatus::Superseded => "superseded",
        }
    }
}

/// The catalog's view of one loaded source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceRecord {
    pub dataset: DatasetName,
    pub source: String,
    pub version: SourceVersion,
    pub feature_count: u64,
    pub load_id: i64,
    /// RFC 3339 UTC.
    pub loaded_at: String,
    /// What, besides the content, decided the stored rows (policy, mode): the same content
    /// loaded again under other settings is loaded, not skipped. `None` if not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
}

/// One property column of a dataset table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ColumnInfo {
    /// The original property key.
    pub key: String,
    /// The sanitised column name.
    pub column: String,
    pub ty: FieldType,
    /// Whether the property is a member of the overflow column's JSON rather than a column of
    /// its own (a dataset with more keys than a table has room for).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
}

/// The catalog's view of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetInfo {
    pub name: DatasetName,
    pub table: String,
    pub feature_count: u64,
    pub bbox: Option<Bbox>,
    pub sources: u64,
    pub columns: Vec<ColumnInfo>,
    /// How a new object changes the dataset.
    pub mode: DatasetMode,
    /// In upsert mode, the property that keys the features; none: the Feature `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_property: Option<String>,
    /// The type of its geometry column: `MultiPolygon`, `PointZ`, `Geometry` (any kind), or
    /// `Geometry (2D and 3D)`.
    #[serde(default)]
    pub geometry_type: String,
    /// The properties that place its features in time, which `datetime` filters on; `None`:
    /// the load time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<Temporal>,
    /// Bumped by every load that changes the dataset (for cache validators).
    pub version: i64,
    pub updated_at: String,
}

/// The properties of a dataset that place each feature in time: an instant or a day (`start`
/// alone), or an interval from `start` to `end`, either of which a feature may leave null for
/// an open end. Each is a date or date-time property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Temporal {
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

impl Temporal {
    /// The property keys, `start` first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.start.as_str()).chain(self.end.as_deref())
    }
}

/// What a job does with its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobAction {
    Load,
    Remove,
    /// A dataset dropped (its source is `*`: every one).
    Drop,
}

impl JobAction {
    pub fn as_str(self) -> &'static str {
        match self {
            JobAction::Load => "load",
            JobAction::Remove => "remove",
            JobAction::Drop => "drop",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<JobAction> {
        [JobAction::Load, JobAction::Remove, JobAction::Drop].into_iter().find(|a| a.as_str() == s)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    /// The source already held this content (or this object version): nothing was done.
    SkippedDuplicate,
    /// Storage held a newer state of the object than the event's by the time the job would
    /// have committed (an overwrite or delete raced it): nothing was done, the newer state's
    /// own job applies it.
    Superseded,
}

impl JobStatus {
    const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::SkippedDuplicate,
        JobStatus::Superseded,
    ];

    /// The same text as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::SkippedDuplicate => "skipped-duplicate",
            JobStatus::Superseded => "superseded",
        }
    }

    /// Whether the job is over (its `finished_at` is set).
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::SkippedDuplicate | JobStatus::Superseded)
    }

    pub(crate) fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A job to create: one unit of work from one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Chosen by the caller and unique (derived from the queue message, say), so that a
    /// redelivered event finds its job again.
    pub id: String,
    pub dataset: DatasetName,
    pub source: String,
    pub action: JobAction,
    pub object_version: Option<String>,
}

/// A job as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    pub id: String,
    pub dataset: DatasetName,
    pub source: String,
    pub action: JobAction,
    pub status: JobStatus,
    pub object_version: Option<String>,
    /// Times the job went to [`JobStatus::Running`].
    pub attempts: u32,
    /// The load (success or recorded failure) that finished the job.
    pub load_id: Option<i64>,
    /// Why the job failed, or the last transient error while it is retried.
    pub error: Option<String>,
    /// A summary written by the worker; the store keeps it as given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
    /// RFC 3339 UTC, like every catalog timestamp.
    pub created_at: String,
    pub updated_at: String,
    /// The first time the job went to [`JobStatus::Running`].
    pub started_at: Option<String>,
    /// When the job reached a final status.
    pub finished_at: Option<String>,
}

/// Changes to a job; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobUpdate {
    /// [`JobStatus::Running`] counts an attempt (and sets `started_at` the first time); a
    /// final status sets `finished_at`; any other status clears it.
    pub status: Option<JobStatus>,
    pub load_id: Option<i64>,
    /// `Some(None)` clears the error.
    pub error: Option<Option<String>>,
    pub result: Option<serde_json::Value>,
}

/// A [`JobUpdate`] as the values of one SQL `UPDATE`: each store computes the new state from
/// the stored one in a single statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JobUpdateParams<'a> {
    pub status: Option<&'static str>,
    /// Counts an attempt.
    pub running: bool,
    /// `Some(true)` sets `finished_at`, `Some(false)` clears it.
    pub finished: Option<bool>,
    pub set_error: bool,
    pub error: Option<&'a str>,
    /// The result as JSON text.
    pub result: Option<String>,
}

impl JobUpdate {
    pub(crate) fn params(&self) -> Result<JobUpdateParams<'_>, StoreError> {
        let result = self
            .result
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::db("encoding the job result", e))?;
        Ok(JobUpdateParams {
            status: self.status.map(JobStatus::as_str),
            running: self.status == Some(JobStatus::Running),
            finished: self.status.map(JobStatus::is_final),
            set_error: self.error.is_some(),
            error: self.error.as_ref().and_then(|e| e.as_deref()),
            result,
        })
    }
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobQuery {
    pub dataset: Option<DatasetName>,
    pub status: Option<JobStatus>,
    /// At most this many jobs; 0 means [`JobQuery::DEFAULT_LIMIT`], and more than
    /// [`JobQuery::MAX_LIMIT`] means that.
    pub limit: usize,
    /// A job id: only jobs created strictly before it (by `(created_at, id)`) are listed,
    /// so the last id of one page is the cursor of the next.
    pub before: Option<String>,
    /// An RFC 3339 timestamp: only jobs created at or after it are listed.
    pub since: Option<String>,
    /// An RFC 3339 timestamp: only jobs created strictly before it are listed (with
    /// [`JobQuery::since`], a half-open window that tiles without overlap).
    pub until: Option<String>,
}

impl JobQuery {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    /// The limit the stores apply.
    pub fn effective_limit(&self) -> usize {
        match self.limit {
            0 => JobQuery::DEFAULT_LIMIT,
            n => n.min(JobQuery::MAX_LIMIT),
        }
    }

    /// [`JobQuery::since`] and [`JobQuery::until`] as UTC instants, each rounded up to
    /// `precision`, the resolution `created_at` is stored at: a stored time `t` (a multiple
    /// of it) satisfies `bound <= t` and `t < bound` exactly when it does against the
    /// rounded bound, so each store can compare in its own resolution without an off-by-one.
    pub(crate) fn time_bounds(
        &self,
        precision: Duration,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StoreError> {
        let bound =
            |name: &str, value: &Option<String>| value.as_deref().map(|v| parse_bound(name, v, precision)).transpose();
        Ok((bound("since", &self.since)?, bound("until", &self.until)?))
    }
}

/// One time bound of a [`JobQuery`], named `name` in errors.
fn parse_bound(name: &str, value: &str, precision: Duration) -> Result<OffsetDateTime, StoreError> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        StoreError::Invalid(format!(
            "{name} {value:?} is not an RFC 3339 timestamp (such as 2026-01-31T12:00:00Z): {e}"
        ))
    })?;
    // Only an instant past the end of year 9999 UTC falls outside the range: no job is that
    // late, so the last instant in range selects the same jobs.
    let last = PrimitiveDateTime::new(Date::MAX, Time::MAX).assume_utc();
    let t = t.checked_to_offset(UtcOffset::UTC).unwrap_or(last);
    let step = precision.whole_nanoseconds().max(1);
    let rest = i128::from(t.nanosecond()) % step;
    if rest == 0 {
        return Ok(t);
    }
    Ok(t.checked_add(Duration::nanoseconds_i128(step - rest)).unwrap_or(last))
}

/// The verdict of [`Store::check_ready`] on a catalog at migration step `at` (0: none yet)
/// for a build whose last step is `latest`.
pub(crate) fn check_catalog_step(location: &str, at: i64, latest: i64) -> Result<(), StoreError> {
    let reason = match at.cmp(&latest) {
        std::cmp::Ordering::Equal => return Ok(()),
        std::cmp::Ordering::Less => {
            format!("the catalog is at step {at}, this build needs step {latest}: run `geoflow migrate`")
        }
        std::cmp::Ordering::Greater => {
            format!("the catalog is at step {at}, newer than this build knows (step {latest}): upgrade geoflow")
        }
    };
    Err(StoreError::Incompatible { location: location.to_string(), reason })
}

/// Sender half given to the ingest pipeline; the store holds the receiver.
pub type LoadSender = mpsc::Sender<LoadMessage>;
pub type LoadReceiver = mpsc::Receiver<LoadMessage>;

/// The catalog: where the store lives, its migrations, and what it holds of datasets and sources.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Where the store lives, safe to log (no secrets).
    fn location(&self) -> String;

    /// Creates or upgrades the catalog. Safe to run concurrently and repeatedly.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// One cheap round trip proving that the database answers and that the catalog is at the
    /// last migration step this build knows, for readiness probes: this does not migrate, so
    /// a catalog behind (or ahead of) this build is [`StoreError::Incompatible`], saying what to
    /// run.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// The current version of a source, if it is loaded.
    async fn source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError>;

    /// Every loaded source of a dataset, by source key (bytewise, the same in every store);
    /// empty for an unknown dataset.
    async fn sources(&self, dataset: &DatasetName) -> Result<Vec<SourceRecord>, StoreError>;

    /// [`Store::source`], read under the dataset's lock: a load that already passed its last
    /// check against storage has committed by then. What lets "this version is loaded" be
    /// relied on to skip an event.
    async fn settled_source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError>;

    /// Every dataset, by name.
    async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError>;

    /// One dataset; `None` when there is no such dataset.
    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetInfo>, StoreError>;
}

/// Loads and removals of sources: the writes, under the load protocol ([`protocol`]).
#[async_trait]
pub trait Loads: Send + Sync {
    /// Replaces the rows of `plan.source` with the rows received, in one transaction that
    /// commits on [`LoadMessage::Commit`] and rolls back on [`LoadMessage::Abort`] or when the
    /// channel closes first. Returns [`LoadOutcome::Unchanged`] at once (dropping the
    /// receiver, so the sender can stop) when the source already holds this content
    /// (`plan.version.content_hash`), whatever its object version; the catalog then records
    /// `plan.version.object_version` as the version the source comes from, touching no row.
    async fn load(&self, plan: LoadPlan, rows: LoadReceiver) -> Result<LoadOutcome, StoreError>;

    /// Records a load that failed before any row was sent.
    async fn record_failure(&self, plan: &LoadPlan, result: &LoadResult) -> Result<i64, StoreError>;

    /// Removes a source's rows and its catalog entry in one transaction. With an `origin`,
    /// asks it under the dataset's lock whether the object is still gone, and removes nothing
    /// if not ([`StoreError::Superseded`]). In [`DatasetMode::Upsert`] the deletion of an
    /// object ([`RemovalCause::ObjectDeleted`]) changes nothing; a request removes the rows
    /// the source still holds.
    async fn remove_source(
        &self,
        dataset: &DatasetName,
        source: &str,
        origin: Option<&protocol::Origin>,
        cause: RemovalCause,
    ) -> Result<Removal, StoreError>;

    /// Sets how new objects change a dataset, under the dataset's lock (between loads); its
    /// rows stay as they are until the next object arrives. `None` when there is no such
    /// dataset.
    async fn set_mode(
        &self,
        dataset: &DatasetName,
        mode: DatasetMode,
        key: &FeatureKey,
    ) -> Result<Option<DatasetInfo>, StoreError>;

    /// Drops a dataset: its table and its catalog entries (the dataset, its columns and its
    /// sources), in one transaction under the dataset's lock, so that a load or removal of it
    /// runs wholly before or wholly after. Every source it held is recorded in the load history
    /// as removed, as [`Loads::remove_source`] records one, so that reports of the day add up.
    /// `None` when there is no such dataset. A load that waited for the lock then finds no
    /// dataset and creates it anew, as a first load does.
    async fn drop_dataset(&self, dataset: &DatasetName) -> Result<Option<DatasetDrop>, StoreError>;

    /// Declares the properties that place the dataset's features in time (`None`: the load
    /// time). Each must be a date or date-time property of the dataset
    /// ([`StoreError::Invalid`] otherwise). `None` when there is no such dataset.
    async fn set_temporal(
        &self,
        dataset: &DatasetName,
        temporal: Option<&Temporal>,
    ) -> Result<Option<DatasetInfo>, StoreError>;
}

/// The jobs catalog: one unit of work per event, with its status history.
#[async_trait]
pub trait Jobs: Send + Sync {
    /// Creates the job if no job has this id, else returns the existing one unchanged
    /// (redelivered events reuse their job).
    async fn upsert_job(&self, job: &NewJob) -> Result<Job, StoreError>;

    /// Applies `update` (see [`JobUpdate`]) and returns the job as it now is;
    /// [`StoreError::NotFound`] when no job has this id.
    async fn update_job(&self, id: &str, update: JobUpdate) -> Result<Job, StoreError>;

    async fn job(&self, id: &str) -> Result<Option<Job>, StoreError>;

    /// Jobs newest first (`created_at` then `id`, descending), filtered and paginated by
    /// [`JobQuery::before`]; [`StoreError::Invalid`] when that cursor names no job or a time
    /// bound is not RFC 3339.
    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError>;
}

/// Stored features read back, for the OGC API – Features.
#[async_trait]
pub trait FeatureReads: Send + Sync {
    /// The features of a dataset that match `query`, in `fid` order;
    /// [`StoreError::NotFound`] for an unknown dataset.
    async fn features(&self, dataset: &DatasetName, query: &FeatureQuery) -> Result<FeatureStream, StoreError>;

    /// One feature by its `fid`, its geometry in `crs` (`None`: WGS84 longitude/latitude as
    /// stored); `None` when the dataset has no such feature, [`StoreError::NotFound`] when
    /// there is no such dataset.
    async fn feature(
        &self,
        dataset: &DatasetName,
        fid: i64,
        crs: Option<&ServedCrs>,
    ) -> Result<Option<StoredFeature>, StoreError>;

    /// [`features`](Self::features) of a dataset as the catalog just described it: a store
    /// whose reads need the dataset's table and columns takes them from `info` rather than
    /// reading them again (a round trip less per page), and reads them afresh should they have
    /// changed since.
    async fn described_features(&self, info: &DatasetInfo, query: &FeatureQuery) -> Result<FeatureStream, StoreError> {
        self.features(&info.name, query).await
    }

    /// The EPSG codes of `codes` this store cannot transform geometries to (PostGIS: those its
    /// `spatial_ref_sys` lacks), checked when the API starts.
    async fn missing_crs(&self, codes: &[u32]) -> Result<Vec<u32>, StoreError> {
        let _ = codes;
        Ok(Vec::new())
    }

    /// The first and last instants of a dataset's features in time: of its `temporal`
    /// properties (the start of the earliest, the end of the latest; an open end that no
    /// feature bounds is `None`), or of their load times when `None`. RFC 3339 UTC text;
    /// `(None, None)` for an empty dataset, [`StoreError::NotFound`] for an unknown one.
    async fn time_extent(&self, dataset: &DatasetName, temporal: Option<&Temporal>) -> Result<TimeExtent, StoreError>;
}

/// The first and last instants of a dataset in time ([`FeatureReads::time_extent`]).
pub type TimeExtent = (Option<String>, Option<String>);

/// Vector tiles of the stored features.
#[async_trait]
pub trait Tiles: Send + Sync {
    /// The Mapbox Vector Tile `tile` of a dataset (see [`tiles`] for what it holds) with the
    /// count of features thinning left out of it; empty when no feature is in the tile, `None`
    /// when there is no such dataset.
    async fn tile(&self, dataset: &DatasetName, tile: TileId) -> Result<Option<EncodedTile>, StoreError>;
}

/// What the pipeline did, from the catalog's history, for the daily reports.
#[async_trait]
pub trait ActivityLog: Send + Sync {
    /// What the pipeline did in `window` and how the datasets stood at its end, computed
    /// from the catalog's history (see [`report`]).
    async fn activity(&self, window: report::Window) -> Result<report::WindowActivity, StoreError>;
}

/// A spatial store with its catalog: every role, as one backend provides them. Code that needs
/// one role takes that role (`Arc<dyn Jobs>`, say), so that a test can give it a fake.
pub trait Store: Catalog + Loads + Jobs + FeatureReads + Tiles + ActivityLog {}

impl<T: Catalog + Loads + Jobs + FeatureReads + Tiles + ActivityLog + ?Sized> Store for T {}

/// The role traits, to call their methods on any store.
pub mod prelude {
    pub use crate::{ActivityLog, Catalog, FeatureReads, Jobs, Loads, Store, Tiles};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(since: &str, until: &str, precision: Duration) -> Result<(String, String), StoreError> {
        let query = JobQuery { since: Some(since.into()), until: Some(until.into()), ..JobQuery::default() };
        let (since, until) = query.time_bounds(precision)?;
        let text = |t: Option<OffsetDateTime>| t.map(|t| t.format(&Rfc3339).unwrap()).unwrap_or_default();
        Ok((text(since), text(until)))
    }

    #[test]
    fn time_bounds_are_utc_rounded_up_to_the_stored_precision() {
        let ms = Duration::MILLISECOND;
        assert_eq!(
            bounds("2026-01-31T14:00:00+02:00", "2026-01-31T12:00:00.0001Z", ms).unwrap(),
            ("2026-01-31T12:00:00Z".into(), "2026-01-31T12:00:00.001Z".into())
        );
        // Rounding up, not down: a job stored at .123 is not at or after .1231.
        assert_eq!(
            bounds("2026-01-31T12:00:00.1231Z", "2026-01-31T12:00:00.999999999Z", ms).unwrap(),
            ("2026-01-31T12:00:00.124Z".into(), "2026-01-31T12:00:01Z".into())
        );
        assert_eq!(
            bounds("2026-01-31T12:00:00.1230001Z", "2026-01-31T12:00:00.123Z", Duration::MICROSECOND).unwrap(),
            ("2026-01-31T12:00:00.123001Z".into(), "2026-01-31T12:00:00.123Z".into())
        );
        // Past year 9999 in UTC: the last instant in range.
        let (_, until) = bounds("0000-01-01T00:00:00Z", "9999-12-31T23:30:00-01:00", ms).unwrap();
        assert_eq!(until, "9999-12-31T23:59:59.999999999Z");
        assert_eq!(JobQuery::default().time_bounds(ms).unwrap(), (None, None));
    }

    #[test]
    fn bad_time_bounds_name_their_parameter() {
        for (since, until, named) in
            [("yesterday", "2026-01-01T00:00:00Z", "since"), ("2026-01-01T00:00:00Z", "2026-01-01 00:00", "until")]
        {
            let err = bounds(since, until, Duration::MILLISECOND).unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
            assert!(err.to_string().starts_with(named), "{err}");
        }
    }

    #[test]
    fn catalog_steps_are_checked() {
        assert!(check_catalog_step("here", 3, 3).is_ok());
        let behind = check_catalog_step("here", 2, 3).unwrap_err().to_string();
        assert!(behind.contains("at step 2, this build needs step 3: run `geoflow migrate`"), "{behind}");
        let ahead = check_catalog_step("here", 4, 3).unwrap_err().to_string();
        assert!(ahead.contains("newer than this build knows (step 3)"), "{ahead}");
    }
}
