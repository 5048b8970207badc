//! The PostGIS store: a table per dataset in schema `datasets`, the catalog in schema
//! `geoflow`.
//!
//! Connections come from a pool. A load is one transaction on one connection: it takes an
//! advisory lock keyed on the dataset (loads of one dataset queue, loads of different
//! datasets run side by side), evolves the table, deletes the source's previous rows, streams
//! the new rows with binary `COPY`, and updates the catalog (source, load, and the dataset's
//! version, feature count and extent) before it commits. A process killed at any point leaves
//! the previous rows as they were.

mod catalog;
mod connection;
mod copy;
mod features;
mod filter;
mod jobs;
mod lifecycle;
mod load;
mod migrate;
mod report;
mod table;
mod tiles;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::served_crs::ServedCrs;

use crate::prelude::*;
use crate::protocol::Origin;
use crate::report::{Window, WindowActivity};
use crate::{
    Clock, DatasetDrop, DatasetInfo, FeatureQuery, FeatureStream, Job, JobQuery, JobUpdate, LoadOutcome, LoadPlan,
    LoadReceiver, LoadResult, NewJob, Removal, RemovalCause, SourceRecord, StoreError, StoredFeature, SystemClock,
    Temporal, TimeExtent,
};

pub use connection::{redact, SslMode};
pub use migrate::{check_versions, MIN_POSTGIS, MIN_POSTGRES};
pub use table::quote_ident;

/// Schema of the catalog tables.
pub const CATALOG_SCHEMA: &str = "geoflow";
/// Schema of the dataset tables.
pub const DATASET_SCHEMA: &str = "datasets";

/// Connections kept by the pool.
const POOL_SIZE: usize = 16;

/// A PostgreSQL database with PostGIS holding datasets and their catalog.
#[derive(Clone)]
pub struct PostgisStore {
    pool: Pool,
    /// The connection string without its password.
    location: String,
    /// The password, scrubbed from every error message.
    secret: Option<String>,
    /// Whether a load into an empty table builds the spatial index after its COPY instead
    /// of maintaining it during the COPY.
    defer_spatial_index: bool,
    clock: Arc<dyn Clock>,
    /// Dataset layouts single-feature reads have read, each checked as it is used.
    layouts: Arc<features::LayoutCache>,
}

impl std::fmt::Debug for PostgisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgisStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl PostgisStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` connection
    /// string; `sslmode` may be `disable`, `prefer`, `require`, `verify-ca` or `verify-full`,
    /// with `sslrootcert` naming a PEM CA bundle), checks the server versions and creates or
    /// upgrades the catalog.
    pub async fn connect(url: &str) -> Result<PostgisStore, StoreError> {
        let settings = connection::Settings::parse(url)?;
        let location = settings.location.clone();
        let secret = settings.password.clone();
        let pool = connection::pool(settings, POOL_SIZE)?;
        let store = PostgisStore {
            pool,
            location,
            secret,
            defer_spatial_index: true,
            clock: Arc::new(SystemClock),
            layouts: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The same store, building the spatial index of a table that a load finds empty after
    /// the load's COPY (`true`, the default) or maintaining it during the COPY (`false`).
    /// The end state is the same.
    pub fn with_deferred_spatial_index(mut self, deferred: bool) -> PostgisStore {
        self.defer_spatial_index = deferred;
        self
    }

    /// The same store, reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> PostgisStore {
        self.clock = clock;
        self
    }

    pub(crate) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// The connection pool (for queries of the datasets).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The plan PostgreSQL chooses for [`Store::features`] with these arguments, as `EXPLAIN`
    /// prints it: for finding out why a page is slow.
    pub async fn explain_features(&self, dataset: &DatasetName, query: &FeatureQuery) -> Result<String, StoreError> {
        features::explain(self, dataset, query).await
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Open {
            location: self.location.clone(),
            reason: self.scrub(&connection::describe_error(&e)),
        })
    }

    /// A database error, with the password scrubbed from its text.
    pub(crate) fn db_error(&self, context: &str, e: &(dyn std::error::Error + 'static)) -> StoreError {
        StoreError::classified(context, class_of(e), Message(self.scrub(&connection::describe_error(e))))
    }

    fn scrub(&self, text: &str) -> String {
        // The client library never prints the password; this guards against any other path.
        // Very short passwords are left alone: replacing them would garble every message.
        match self.secret.as_deref().filter(|s| s.len() >= 4) {
            Some(secret) => text.replace(secret, "********"),
            None => text.to_string(),
        }
    }
}

/// The class of a client error: by its SQLSTATE when the server sent one; a connection that
/// failed or closed without one is a passing fault.
fn class_of(e: &(dyn std::error::Error + 'static)) -> crate::ErrorClass {
    match e.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.code()) {
        Some(state) => crate::error::class_of_sqlstate(state.code()),
        None => crate::ErrorClass::Unavailable,
    }
}

/// An error message (already scrubbed of secrets).
#[derive(Debug)]
pub(crate) struct Message(pub String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Adds what was being done to a database error, scrubbing secrets.
pub(crate) trait Ctx<T> {
    fn ctx(self, store: &PostgisStore, context: &str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, store: &PostgisStore, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| store.db_error(context, &e))
    }
}

#[async_trait]
impl Catalog for PostgisStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(self).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let at = migrate::applied_step(self, &client).await?;
        crate::check_catalog_step(&self.location, at, i64::from(migrate::LATEST_STEP))
    }

    async fn source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError> {
        let client = self.client().await?;
        catalog::source_record(self, &**client, dataset, source).await
    }

    async fn sources(&self, dataset: &DatasetName) -> Result<Vec<SourceRecord>, StoreError> {
        let client = self.client().await?;
        catalog::source_records(self, &**client, dataset).await
    }

    async fn settled_source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError> {
        load::settled_source(self, dataset, source).await
    }

    async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError> {
        let client = self.client().await?;
        catalog::datasets(self, &client, None).await
    }

    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetInfo>, StoreError> {
        let client = self.client().await?;
        Ok(catalog::datasets(self, &client, Some(name)).await?.pop())
    }
}

#[async_trait]
impl Loads for PostgisStore {
    async fn load(&self, plan: LoadPlan, rows: LoadReceiver) -> Result<LoadOutcome, StoreError> {
        load::run(self, plan, rows).await
    }

    async fn record_failure(&self, plan: &LoadPlan, result: &LoadResult) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let now = self.now();
        catalog::insert_load(self, &**client, plan, crate::LoadStatus::Failed, (now, now), result).await
    }

    async fn remove_source(
        &self,
        dataset: &DatasetName,
        source: &str,
        origin: Option<&Origin>,
        cause: RemovalCause,
    ) -> Result<Removal, StoreError> {
        load::remove_source(self, dataset, source, origin, cause).await
    }

    async fn set_mode(
        &self,
        dataset: &DatasetName,
        mode: DatasetMode,
        key: &FeatureKey,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        if !load::set_mode(self, dataset, mode, key).await? {
            return Ok(None);
        }
        self.dataset(dataset).await
    }

    async fn drop_dataset(&self, dataset: &DatasetName) -> Result<Option<DatasetDrop>, StoreError> {
        lifecycle::drop_dataset(self, dataset).await
    }

    async fn set_temporal(
        &self,
        dataset: &DatasetName,
        temporal: Option<&Temporal>,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        if !load::set_temporal(self, dataset, temporal).await? {
            return Ok(None);
        }
        self.dataset(dataset).await
    }
}

#[async_trait]
impl Jobs for PostgisStore {
    async fn upsert_job(&self, job: &NewJob) -> Result<Job, StoreError> {
        let client = self.client().await?;
        jobs::upsert(self, &**client, job).await
    }

    async fn update_job(&self, id: &str, update: JobUpdate) -> Result<Job, StoreError> {
        let client = self.client().await?;
        jobs::update(self, &**client, id, &update).await
    }

    async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        jobs::job(self, &**client, id).await
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        jobs::list(self, &**client, query).await
    }
}

#[async_trait]
impl FeatureReads for PostgisStore {
    async fn features(&self, dataset: &DatasetName, query: &FeatureQuery) -> Result<FeatureStream, StoreError> {
        let stream = features::features(self, dataset, None, query).await?;
        match query.before {
            Some(_) => crate::features::in_order(stream).await,
            None => Ok(stream),
        }
    }

    async fn described_features(&self, info: &DatasetInfo, query: &FeatureQuery) -> Result<FeatureStream, StoreError> {
        let stream = features::features(self, &info.name, Some(features::Table::of(info)), query).await?;
        match query.before {
            Some(_) => crate::features::in_order(stream).await,
            None => Ok(stream),
        }
    }

    async fn feature(
        &self,
        dataset: &DatasetName,
        fid: i64,
        crs: Option<&ServedCrs>,
    ) -> Result<Option<StoredFeature>, StoreError> {
        features::feature(self, dataset, fid, crs).await
    }

    async fn missing_crs(&self, codes: &[u32]) -> Result<Vec<u32>, StoreError> {
        features::missing_crs(self, codes).await
    }

    async fn time_extent(&self, dataset: &DatasetName, temporal: Option<&Temporal>) -> Result<TimeExtent, StoreError> {
        features::time_extent(self, dataset, temporal).await
    }
}

#[async_trait]
impl Tiles for PostgisStore {
    async fn tile(&self, dataset: &DatasetName, tile: crate::TileId) -> Result<Option<crate::EncodedTile>, StoreError> {
        tiles::tile(self, dataset, tile).await
    }
}

#[async_trait]
impl ActivityLog for PostgisStore {
    async fn activity(&self, window: Window) -> Result<WindowActivity, StoreError> {
        report::activity(self, window).await
    }
}
