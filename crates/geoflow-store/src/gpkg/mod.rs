//! The GeoPackage store: one `.gpkg` file holding a feature table per dataset (with the
//! GeoPackage R-tree spatial index) and the catalog in `geoflow_*` tables beside them.
//!
//! The file is a GeoPackage that GDAL and QGIS open as is. The catalog tables are not
//! registered in `gpkg_contents`, and the file declares GDAL's `gdal_aspatial` extension so
//! that GDAL lists only registered tables: clients see the datasets alone.
//!
//! All database work runs on tokio's blocking pool, one short-lived connection per call
//! (feature reads excepted: they reuse pooled read connections, see the `features` module). A
//! load is a single `BEGIN IMMEDIATE` transaction: SQLite's write lock serialises writers,
//! and a process killed at any point leaves the previous rows as they were. Every other
//! write (job updates included) waits for a load in progress, up to [`BUSY_TIMEOUT`], and
//! then fails with a transient error (the `jobs` module says more).

mod catalog;
mod features;
mod geometry;
mod jobs;
mod lifecycle;
mod load;
mod migrate;
mod report;
mod rtree;
mod table;
mod tiles;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};

use crate::prelude::*;
use crate::protocol::Origin;
use crate::report::{Window, WindowActivity};
use crate::{
    Clock, DatasetDrop, DatasetInfo, FeatureQuery, FeatureStream, Job, JobQuery, JobUpdate, LoadOutcome, LoadPlan,
    LoadReceiver, LoadResult, NewJob, Removal, RemovalCause, SourceRecord, StoreError, StoredFeature, SystemClock,
    Temporal, TimeExtent,
};

pub use load::RtreeFill;
pub use migrate::{APPLICATION_ID, USER_VERSION};

/// How long a connection waits for another writer before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Page cache per connection (KiB). In WAL mode a load that outgrows it spills pages to the
/// WAL, which costs little; a larger cache measured no faster and only raises peak memory.
const CACHE_SIZE_KIB: i64 = 32 * 1024;

/// A GeoPackage file holding datasets and their catalog.
#[derive(Debug, Clone)]
pub struct GeoPackageStore {
    path: Arc<PathBuf>,
    rtree_fill: RtreeFill,
    /// R-tree entries a load holds in memory at most.
    rtree_max_entries: usize,
    /// Connections that read features, shared by clones.
    readers: Arc<features::Readers>,
    clock: Arc<dyn Clock>,
}

impl GeoPackageStore {
    /// Opens the GeoPackage at `path`, creating its parent directories and the file when
    /// missing, and creates or upgrades the GeoPackage tables and the catalog.
    pub fn open(path: impl AsRef<Path>) -> Result<GeoPackageStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                location: path.display().to_string(),
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let store = GeoPackageStore {
            path: Arc::new(path),
            rtree_fill: RtreeFill::Deferred,
            rtree_max_entries: rtree::MAX_ENTRIES_IN_MEMORY,
            readers: Arc::default(),
            clock: Arc::new(SystemClock),
        };
        migrate::run(&store.path)?;
        Ok(store)
    }

    /// The same store, reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> GeoPackageStore {
        self.clock = clock;
        self
    }

    /// The same store, filling the R-tree of loads the given way (the end state is the same).
    pub fn with_rtree_fill(mut self, fill: RtreeFill) -> GeoPackageStore {
        self.rtree_fill = fill;
        self
    }

    /// The same store, holding at most `entries` R-tree entries of a load in memory (24 bytes
    /// each) before writing them to the index.
    pub fn with_rtree_memory(mut self, entries: usize) -> GeoPackageStore {
        self.rtree_max_entries = entries.max(1);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn blocking<T, F>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    {
        let path = Arc::clone(&self.path);
        tokio::task::spawn_blocking(move || f(&path)).await.map_err(|e| StoreError::db(what, e))?
    }
}

#[async_trait]
impl Catalog for GeoPackageStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.blocking("migrating the store", migrate::run).await
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.blocking("checking readiness", |path| {
            let conn = open_existing(path)?;
            let at = migrate::applied_step(&conn)?;
            crate::check_catalog_step(&path.display().to_string(), at, migrate::LATEST_STEP)
        })
        .await
    }

    async fn source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError> {
        let (dataset, source) = (dataset.clone(), source.to_string());
        self.blocking("reading a source", move |path| {
            let conn = open_connection(path)?;
            catalog::source_record(&conn, &dataset, &source)
        })
        .await
    }

    async fn sources(&self, dataset: &DatasetName) -> Result<Vec<SourceRecord>, StoreError> {
        let dataset = dataset.clone();
        self.blocking("listing sources", move |path| {
            let conn = open_connection(path)?;
            catalog::source_records(&conn, &dataset)
        })
        .await
    }

    async fn settled_source(&self, dataset: &DatasetName, source: &str) -> Result<Option<SourceRecord>, StoreError> {
        let (dataset, source) = (dataset.clone(), source.to_string());
        self.blocking("reading a source", move |path| {
            let mut conn = open_connection(path)?;
            // The write lock: no load is between its final check and its commit meanwhile.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).ctx("locking")?;
            let record = catalog::source_record(&tx, &dataset, &source)?;
            tx.commit().ctx("reading the source catalog")?;
            Ok(record)
        })
        .await
    }

    async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError> {
        self.blocking("listing datasets", |path| {
            let conn = open_connection(path)?;
            catalog::datasets(&conn, None)
        })
        .await
    }

    async fn dataset(&self, name: &DatasetName) -> Result<Option<DatasetInfo>, StoreError> {
        let name = name.clone();
        self.blocking("reading a dataset", move |path| {
            let conn = open_connection(path)?;
            Ok(catalog::datasets(&conn, Some(&name))?.pop())
        })
        .await
    }
}

#[async_trait]
impl Loads for GeoPackageStore {
    async fn load(&self, plan: LoadPlan, rows: LoadReceiver) -> Result<LoadOutcome, StoreError> {
        let (fill, max_entries, clock) = (self.rtree_fill, self.rtree_max_entries, Arc::clone(&self.clock));
        self.blocking("loading", move |path| load::run(path, &*clock, plan, rows, (fill, max_entries))).await
    }

    async fn record_failure(&self, plan: &LoadPlan, result: &LoadResult) -> Result<i64, StoreError> {
        let (plan, result) = (plan.clone(), result.clone());
        let now = self.clock.now();
        self.blocking("recording a failure", move |path| {
            let mut conn = open_connection(path)?;
            load::record_failed(&mut conn, &plan, (now, now), &result)
        })
        .await
    }

    async fn remove_source(
        &self,
        dataset: &DatasetName,
        source: &str,
        origin: Option<&Origin>,
        cause: RemovalCause,
    ) -> Result<Removal, StoreError> {
        let (dataset, source, origin) = (dataset.clone(), source.to_string(), origin.cloned());
        let (fill, clock) = (self.rtree_fill, Arc::clone(&self.clock));
        self.blocking("removing a source", move |path| {
            load::remove_source(path, &*clock, (&dataset, &source), origin.as_ref(), cause, fill)
        })
        .await
    }

    async fn set_temporal(
        &self,
        dataset: &DatasetName,
        temporal: Option<&Temporal>,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        let (name, temporal_owned) = (dataset.clone(), temporal.cloned());
        let now = to_rfc3339(self.clock.now())?;
        let found = self
            .blocking("declaring a dataset's time", move |path| {
                // The write lock: between loads of the dataset, which may change its columns.
                let mut conn = open_connection(path)?;
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .ctx("starting a transaction")?;
                let found = catalog::set_temporal(&tx, &name, temporal_owned.as_ref(), &now)?;
                tx.commit().ctx("declaring the dataset's time")?;
                Ok(found)
            })
            .await?;
        if !found {
            return Ok(None);
        }
        self.dataset(dataset).await
    }

    async fn set_mode(
        &self,
        dataset: &DatasetName,
        mode: DatasetMode,
        key: &FeatureKey,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        let (name, key) = (dataset.clone(), key.clone());
        let found = self
            .blocking("setting a dataset's mode", move |path| {
                // The write lock: between loads of the dataset.
                let mut conn = open_connection(path)?;
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .ctx("starting a transaction")?;
                let found = catalog::set_mode(&tx, &name, mode, &key)?;
                tx.commit().ctx("setting the dataset's mode")?;
                Ok(found)
            })
            .await?;
        if !found {
            return Ok(None);
        }
        self.dataset(dataset).await
    }

    async fn drop_dataset(&self, dataset: &DatasetName) -> Result<Option<DatasetDrop>, StoreError> {
        let (dataset, clock) = (dataset.clone(), Arc::clone(&self.clock));
        self.blocking("dropping a dataset", move |path| lifecycle::drop_dataset(path, &*clock, &dataset)).await
    }
}

#[async_trait]
impl Jobs for GeoPackageStore {
    async fn upsert_job(&self, job: &NewJob) -> Result<Job, StoreError> {
        let (job, now) = (job.clone(), to_rfc3339(self.clock.now())?);
        self.blocking("creating a job", move |path| {
            let mut conn = open_connection(path)?;
            jobs::upsert(&mut conn, &job, &now)
        })
        .await
    }

    async fn update_job(&self, id: &str, update: JobUpdate) -> Result<Job, StoreError> {
        let (id, now) = (id.to_string(), to_rfc3339(self.clock.now())?);
        self.blocking("updating a job", move |path| {
            let mut conn = open_connection(path)?;
            jobs::update(&mut conn, &id, &update, &now)
        })
        .await
    }

    async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let id = id.to_string();
        self.blocking("reading a job", move |path| {
            let conn = open_connection(path)?;
            jobs::job(&conn, &id)
        })
        .await
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        let query = query.clone();
        self.blocking("listing jobs", move |path| {
            let conn = open_connection(path)?;
            jobs::list(&conn, &query)
        })
        .await
    }
}

#[async_trait]
impl FeatureReads for GeoPackageStore {
    async fn features(&self, dataset: &DatasetName, query: &FeatureQuery) -> Result<FeatureStream, StoreError> {
        let stream =
            features::stream(Arc::clone(&self.path), Arc::clone(&self.readers), dataset.clone(), query.clone()).await?;
        match query.before {
            Some(_) => crate::features::in_order(stream).await,
            None => Ok(stream),
        }
    }

    async fn feature(&self, dataset: &DatasetName, fid: i64) -> Result<Option<StoredFeature>, StoreError> {
        let (dataset, readers) = (dataset.clone(), Arc::clone(&self.readers));
        self.blocking("reading a feature", move |path| features::one(path, &readers, &dataset, fid)).await
    }

    async fn time_extent(&self, dataset: &DatasetName, temporal: Option<&Temporal>) -> Result<TimeExtent, StoreError> {
        let (dataset, readers, temporal) = (dataset.clone(), Arc::clone(&self.readers), temporal.cloned());
        self.blocking("reading a dataset's extent in time", move |path| {
            features::time_extent(path, &readers, &dataset, temporal.as_ref())
        })
        .await
    }
}

#[async_trait]
impl Tiles for GeoPackageStore {
    async fn tile(&self, dataset: &DatasetName, tile: crate::TileId) -> Result<Option<Vec<u8>>, StoreError> {
        let (dataset, readers) = (dataset.clone(), Arc::clone(&self.readers));
        self.blocking("encoding a vector tile", move |path| tiles::tile(path, &readers, &dataset, tile)).await
    }
}

#[async_trait]
impl ActivityLog for GeoPackageStore {
    async fn activity(&self, window: Window) -> Result<WindowActivity, StoreError> {
        self.blocking("computing the report", move |path| {
            let conn = open_connection(path)?;
            report::activity(&conn, window)
        })
        .await
    }
}

/// Registers on `conn` the SQL functions the GeoPackage R-tree triggers call (`ST_IsEmpty`,
/// `ST_MinX`, `ST_MaxX`, `ST_MinY`, `ST_MaxY`): any connection that writes feature tables of
/// the file needs them.
pub fn register_sql_functions(conn: &Connection) -> rusqlite::Result<()> {
    geometry::register_functions(conn)
}

/// Opens a connection configured the way every store connection is: busy timeout,
/// durability level, page cache, and the SQL functions the schema's triggers call.
pub(crate) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let open_error =
        |e: rusqlite::Error| StoreError::Open { location: path.display().to_string(), reason: e.to_string() };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    // FULL: a commit is on disk before the load is reported (and its message acknowledged);
    // with one transaction per load that is one fsync per load.
    conn.execute_batch(&format!("PRAGMA synchronous = FULL; PRAGMA cache_size = -{CACHE_SIZE_KIB};"))
        .map_err(open_error)?;
    geometry::register_functions(&conn).map_err(open_error)?;
    table::register_functions(&conn).map_err(open_error)?;
    Ok(conn)
}

/// A connection to the file as it is, for the readiness probe: unlike [`open_connection`] it
/// never creates the file, so probing a wrong path leaves no empty database behind.
fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |reason: String| StoreError::Open { location: path.display().to_string(), reason };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| open_error(if path.exists() { e.to_string() } else { "the file does not exist".into() }))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| open_error(e.to_string()))?;
    Ok(conn)
}

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A UTC instant as `YYYY-MM-DDTHH:MM:SS.SSSZ` (the GeoPackage DATETIME form), so that
/// catalog timestamps compare as text.
pub(crate) fn to_rfc3339(t: OffsetDateTime) -> Result<String, StoreError> {
    t.format(RFC3339_MILLIS).map_err(|e| StoreError::Internal(format!("cannot write the time {t} as RFC 3339: {e}")))
}

/// Adds what was being done to a rusqlite error.
pub(crate) trait Ctx<T> {
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::classified(context, class_of(&e), e))
    }
}

/// The class of an SQLite error, from its result code.
fn class_of(e: &rusqlite::Error) -> crate::ErrorClass {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        // Another writer, a full disk, an IO error, no memory: these pass.
        Some(C::DatabaseBusy | C::DatabaseLocked | C::SystemIoFailure | C::DiskFull | C::OutOfMemory) => {
            crate::ErrorClass::Unavailable
        }
        Some(C::CannotOpen) => crate::ErrorClass::Unavailable,
        // A value or row the file cannot hold as given.
        Some(C::TooBig | C::ConstraintViolation | C::TypeMismatch) => crate::ErrorClass::BadInput,
        // A damaged file, or a table altered underneath geoflow.
        Some(_) => crate::ErrorClass::Internal,
        // Not from SQLite itself: a column that does not convert, say.
        None => crate::ErrorClass::Internal,
    }
}
