//! Spatial stores: where loaded features and the catalog of datasets, sources and loads live.
//!
//! Every backend implements [`Store`]. A load is driven by [`LoadMessage`]s on a channel so
//! that parsing runs on other threads while the store writes, and so that a load ends either
//! in one commit or in nothing at all.

pub mod gpkg;
pub mod layout;
pub mod postgis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use geoflow_core::dataset::DatasetName;
use geoflow_core::report::{FeatureIssue, LoadCounts, Policy};
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::{FieldType, Schema};

/// Which content a source holds: identical content is never loaded twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceVersion {
    /// Hex SHA-256 of the source bytes.
    pub content_hash: String,
    pub bytes: u64,
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
    Loaded { load_id: i64, table: String, replaced_rows: u64 },
    /// The source already holds this content: nothing changed.
    Unchanged { load_id: i64, table: String },
    /// Rolled back; the previous rows of the source are untouched.
    Failed { load_id: i64, table: String },
}

/// How a load ended, as the catalog records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStatus {
    Loaded,
    Unchanged,
    Failed,
}

impl LoadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStatus::Loaded => "loaded",
            LoadStatus::Unchanged => "unchanged",
            LoadStatus::Failed => "failed",
        }
    }
}

/// The catalog's view of one loaded source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub dataset: DatasetName,
    pub source: String,
    pub version: SourceVersion,
    pub feature_count: u64,
    pub load_id: i64,
    /// RFC 3339 UTC.
    pub loaded_at: String,
}

/// One property column of a dataset table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// The original property key.
    pub key: String,
    /// The sanitised column name.
    pub column: String,
    pub ty: FieldType,
}

/// The catalog's view of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: DatasetName,
    pub table: String,
    pub feature_count: u64,
    pub bbox: Option<Bbox>,
    pub sources: u64,
    pub columns: Vec<ColumnInfo>,
    /// Bumped by every load that changes the dataset (for cache validators).
    pub version: i64,
    pub updated_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("the store at {location} is not usable: {reason}")]
    Incompatible { location: String, reason: String },
    #[error("database error while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the load of {dataset}/{source_key} ended without a commit or abort")]
    Interrupted { dataset: String, source_key: String },
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    pub fn db(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Database { context: context.into(), source: Box::new(source) }
    }

    /// Infrastructure faults are worth retrying; bad requests are not.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Database { .. } | StoreError::Open { .. } | StoreError::Interrupted { .. })
    }
}

/// Sender half given to the ingest pipeline; the store holds the receiver.
pub type LoadSender = mpsc::Sender<LoadMessage>;
pub type LoadReceiver = mpsc::Receiver<LoadMessage>;

/// A spatial store with its catalog.
#[async_trait]
pub trait Store: Send + Sync {
    /// Where the store lives, safe to log (no secrets).
    fn location(&self) -> String;

    /// Creates or upgrades the catalog. Safe to run concurrently and repeatedly.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The current version of a source, if it is loaded.
    async fn source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError>;

    /// Replaces the rows of `plan.source` with the rows received, in one transaction that
    /// commits on [`LoadMessage::Commit`] and rolls back on [`LoadMessage::Abort`] or when the
    /// channel closes first. Returns [`LoadOutcome::Unchanged`] at once (dropping the
    /// receiver, so the sender can stop) when the source already holds `plan.version`.
    async fn load(&self, plan: LoadPlan, rows: LoadReceiver) -> Result<LoadOutcome, StoreError>;

    /// Records a load that failed before any row was sent.
    async fn record_failure(&self, plan: &LoadPlan, result: &LoadResult) -> Result<i64, StoreError>;

    /// Removes a source's rows (the object was deleted). Returns the rows removed.
    async fn remove_source(&self, dataset: &DatasetName, source: &str) -> Result<u64, StoreError>;

    async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError>;
}
