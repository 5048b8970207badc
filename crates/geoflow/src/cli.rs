//! Command-line interface. Every option can also come from a `GEOFLOW_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::report::Policy;
use geoflow_core::schema::SchemaPolicy;
use geoflow_store::JobStatus;

use crate::config::{DEFAULT_DATABASE, DEFAULT_QUEUE};
use crate::ingest::ReadChoices;
use crate::storage::DEFAULT_STORAGE;

#[derive(Debug, Parser)]
#[command(name = "geoflow", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("GEOFLOW_REVISION"), ")"), about = "Event-driven ingestion of vector data (GeoJSON, Shapefile, GeoPackage, FlatGeobuf, GeoParquet, CSV) into PostGIS and GeoPackage", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load one GeoJSON source (file or `-` for stdin) into a dataset.
    ///
    /// Reads a FeatureCollection of any size, GeoJSON Text Sequences (RFC 8142),
    /// newline-delimited GeoJSON, a single Feature or a bare Geometry. The source's previous
    /// rows are replaced in one transaction; loading identical content again changes nothing.
    ///
    /// Exit status: 0 loaded or unchanged, 3 rejected (invalid input), 1 failed.
    Ingest(IngestArgs),
    /// Create or upgrade the catalog schema.
    Migrate(DatabaseArgs),
    /// Consume storage events from the queue and load each object into its dataset.
    ///
    /// Objects live under `raw/<dataset>/…`; an ObjectCreated event loads the object, an
    /// ObjectRemoved event removes its rows. Duplicate, late and out-of-order events change
    /// nothing. With a local storage folder, files dropped into the inbox
    /// (`<inbox>/<dataset>/<name>`) are taken as uploads. SIGTERM or SIGINT stops receiving and
    /// lets loads in flight finish within the grace period.
    Worker(WorkerArgs),
    /// Run everything in one process: the HTTP API, the worker and the inbox watcher.
    ///
    /// With no configuration it needs no services: the store, the queue and the objects live
    /// under ./geoflow-data, and the API listens on 127.0.0.1:8080. SIGTERM or SIGINT stops
    /// it after the requests and loads in flight.
    Serve(ServeArgs),
    /// Serve the HTTP API: uploads, jobs, datasets, health, metrics and the OpenAPI document
    /// (/openapi.json, browsable at /docs). SIGTERM or SIGINT stops it after the requests in
    /// flight.
    Api(ApiArgs),
    /// Exit 0 if the service listening on GEOFLOW_LISTEN answers ready, 1 otherwise (for a
    /// container HEALTHCHECK).
    Healthcheck {
        /// Address the service listens on.
        #[arg(long, env = "GEOFLOW_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: String,
    },
    /// Write the daily report of one UTC day to `reports/<YYYY-MM-DD>.json` in object storage.
    ///
    /// The report is computed from the catalog's history, so running it again for a past day
    /// (reprocessing) gives the same numbers; it replaces the earlier report in one write, and
    /// a run that fails leaves it untouched.
    Report(ReportArgs),
    /// List datasets (the default) or drop one.
    Datasets(DatasetsArgs),
    /// List the sources of a dataset or remove one.
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// List jobs (uploads, storage events and direct loads) or show one with its report.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
}

/// `geoflow datasets`: bare, it lists them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DatasetsArgs {
    #[command(subcommand)]
    pub command: Option<DatasetsCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// List datasets with their feature counts, sources and extents.
    List(ListArgs),
    /// Drop a dataset: its table, its sources and columns in the catalog (its loads and jobs
    /// stay in the history), in one transaction that waits for a load of it in progress.
    ///
    /// Its objects in storage stay unless `--objects` is given: an event for one of them
    /// loads it into a new dataset of the same name.
    Drop(DropArgs),
}

/// Where a listing reads from and how it prints.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DropArgs {
    /// The dataset to drop.
    #[arg(value_parser = parse_dataset)]
    pub dataset: DatasetName,
    /// Also delete the dataset's objects in storage (every key under `raw/<dataset>/`), after
    /// the dataset is dropped.
    #[arg(long)]
    pub objects: bool,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Object storage (read with `--objects` only): `s3://bucket[/prefix]` or a folder.
    #[arg(long = "storage", env = "GEOFLOW_STORAGE_URL", default_value = DEFAULT_STORAGE)]
    pub storage: String,
}

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// List the loaded sources of a dataset: key, features, content hash, object version.
    List {
        #[arg(value_parser = parse_dataset)]
        dataset: DatasetName,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Remove one source's rows and its catalog entry, in one transaction.
    ///
    /// Its object in storage, if it has one, stays: an event for it loads it again (the API's
    /// DELETE /v1/datasets/{dataset}/sources/{source} deletes the object too).
    Rm {
        #[arg(value_parser = parse_dataset)]
        dataset: DatasetName,
        /// The source key, as `sources list` prints it.
        source: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List(JobsListArgs),
    /// Show one job with its result: the validation report of a load.
    Show {
        /// The job's id.
        id: String,
        #[command(flatten)]
        list: ListArgs,
    },
}

#[derive(Debug, Args)]
pub struct JobsListArgs {
    /// Only the jobs of this dataset.
    #[arg(long, value_parser = parse_dataset)]
    pub dataset: Option<DatasetName>,
    /// Only jobs with this status: queued, running, succeeded, failed, skipped-duplicate or
    /// superseded.
    #[arg(long, value_parser = parse_job_status)]
    pub status: Option<JobStatus>,
    /// At most this many jobs (at most 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Spatial store: a PostgreSQL URL (postgres://user@host/db?sslmode=require) or a path to a
    /// GeoPackage file (.gpkg).
    #[arg(long = "database", env = "GEOFLOW_DATABASE_URL", default_value = DEFAULT_DATABASE, hide_env_values = true)]
    pub url: String,
}

/// Where the API listens by default: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Where the services find their backends.
#[derive(Debug, Args)]
pub struct BackendArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Object storage: s3://bucket[/prefix] (credentials and endpoint from the standard AWS
    /// environment) or a folder.
    #[arg(long = "storage", env = "GEOFLOW_STORAGE_URL", default_value = DEFAULT_STORAGE)]
    pub storage: String,
    /// Queue: an SQS queue URL, or the path of the embedded queue file.
    #[arg(long = "queue", env = "GEOFLOW_QUEUE_URL", default_value = DEFAULT_QUEUE)]
    pub queue: String,
    /// Seconds a received message stays hidden from other workers (renewed while it loads).
    #[arg(long, default_value_t = 60, env = "GEOFLOW_VISIBILITY_TIMEOUT")]
    pub visibility_timeout: u64,
    /// Receives of one message before the embedded queue dead-letters it (an SQS queue's
    /// redrive policy decides there).
    #[arg(long, default_value_t = 5, env = "GEOFLOW_MAX_RECEIVE_COUNT")]
    pub max_receive_count: u32,
    /// What to do with invalid features when an upload or event asks for nothing else: skip
    /// them, reject the whole source, or repair them.
    #[arg(long, default_value = "skip", env = "GEOFLOW_ON_INVALID", value_parser = parse_policy)]
    pub on_invalid: Policy,
    /// How new objects change a dataset they create (one that exists keeps its mode): replace
    /// (the dataset is its newest object), append (each object is a source of its own) or
    /// upsert (features keyed by --key, the newest object winning each key).
    #[arg(long = "mode", default_value = "replace", env = "GEOFLOW_DATASET_MODE", value_parser = parse_mode)]
    pub mode: DatasetMode,
    /// In upsert mode, the property that keys the features of a dataset the object creates;
    /// without it, the GeoJSON Feature `id`.
    #[arg(long = "key", env = "GEOFLOW_UPSERT_KEY", value_name = "PROPERTY")]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub backends: BackendArgs,
    /// Address to listen on (0.0.0.0:8080 in a container).
    #[arg(long, env = "GEOFLOW_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// How the API guards itself.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Bearer tokens accepted for writes (uploads, deletions), comma-separated. With none
    /// configured (here or in the tokens file), writes are open to anyone who can connect.
    #[arg(long, env = "GEOFLOW_API_TOKENS", hide_env_values = true)]
    pub api_tokens: Option<String>,
    /// File with one bearer token per line (`#` comments), e.g. a mounted secret.
    #[arg(long, env = "GEOFLOW_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,
    /// Reads need a bearer token too.
    #[arg(long, env = "GEOFLOW_API_PRIVATE_READS")]
    pub private_reads: bool,
    /// Largest upload accepted, in bytes (413 beyond).
    #[arg(long, default_value_t = 5 << 30, env = "GEOFLOW_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: u64,
    /// Seconds a request other than an upload may take.
    #[arg(long, default_value_t = 30, env = "GEOFLOW_REQUEST_TIMEOUT")]
    pub request_timeout: u64,
    /// Requests served at once; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 512, env = "GEOFLOW_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: usize,
    /// Largest page of features the OGC API serves (`limit` beyond it is capped).
    #[arg(long, default_value_t = 10_000, env = "GEOFLOW_MAX_ITEMS_LIMIT")]
    pub max_items_limit: usize,
    /// Origins allowed to call the API from a browser (CORS), comma-separated; `*` for any.
    #[arg(long, env = "GEOFLOW_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// EPSG codes the OGC API serves features in besides CRS84, EPSG:4326, EPSG:3857 and the
    /// WGS 84 UTM zones, comma-separated (`2056,EPSG:27700`). A code PROJ cannot serve is
    /// refused at start-up.
    #[arg(long, env = "GEOFLOW_EXTRA_CRS", value_delimiter = ',')]
    pub extra_crs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub backends: BackendArgs,
    /// Address to serve /healthz and /readyz on, for container health checks; none when unset.
    #[arg(long, env = "GEOFLOW_LISTEN")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub work: WorkArgs,
}

/// The API's settings and the worker's, for one process running both.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// UTC time of day (HH:MM) to write the previous day's report, or `off`. A report missed
    /// while the process was down is written when it starts.
    #[arg(long, env = "GEOFLOW_REPORT_AT", default_value = "00:15", value_parser = parse_report_time)]
    pub report_at: ReportTime,
}

/// When `geoflow serve` writes the daily report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTime {
    Daily(time::Time),
    Off,
}

/// Where a report is computed from and written to, and for which day.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Object storage: `s3://bucket[/prefix]` or a folder.
    #[arg(long = "storage", env = "GEOFLOW_STORAGE_URL", default_value = DEFAULT_STORAGE)]
    pub storage: String,
    /// The UTC day to report, YYYY-MM-DD (default: yesterday).
    #[arg(long, env = "RUN_DATE", value_parser = parse_date)]
    pub date: Option<time::Date>,
}

/// How the worker runs.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Loads in flight at once.
    #[arg(long, default_value_t = 2, env = "GEOFLOW_WORKER_CONCURRENCY")]
    pub concurrency: usize,
    /// Seconds in-flight loads may take to finish after SIGTERM before they are abandoned.
    #[arg(long, default_value_t = 60, env = "GEOFLOW_GRACE_PERIOD")]
    pub grace_period: u64,
    /// Seconds before the first retry after a transient failure (doubled on each retry).
    #[arg(long, default_value_t = 5, env = "GEOFLOW_RETRY_DELAY")]
    pub retry_delay: u64,
    /// Inbox folder watched for uploads when storage is a local folder.
    #[arg(long, env = "GEOFLOW_INBOX", default_value = "./geoflow-data/inbox")]
    pub inbox: PathBuf,
    /// Seconds an inbox file's size and modification time must stay unchanged before it is
    /// taken (names ending in .part or .tmp are never taken: rename a file into place when
    /// it is whole).
    #[arg(long, default_value = "5", env = "GEOFLOW_INBOX_SETTLE", value_parser = parse_seconds)]
    pub inbox_settle: std::time::Duration,
    /// Folder where objects from remote storage are spooled while they load.
    #[arg(long, env = "GEOFLOW_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// What a load may do to the types of existing columns when its upload asks for nothing
    /// else: widen them, or reject the load (strict). New columns are added either way.
    #[arg(long, default_value = "widen", env = "GEOFLOW_SCHEMA_POLICY", value_parser = parse_schema_policy)]
    pub schema_policy: SchemaPolicy,
    /// The geometry column's type of loads whose upload asks for none: auto (the one geometry type
    /// of the data, with Polygon and MultiPolygon — or LineString and MultiLineString, Point and
    /// MultiPoint — together promoted to the Multi type), promote-multi (always the Multi type),
    /// any (a generic column), or a type: point, linestring, polygon, multipoint,
    /// multilinestring, multipolygon, geometrycollection (features of another type are invalid,
    /// except single geometries of a requested Multi type). An existing typed column widens to a
    /// generic one when a load does not fit it.
    #[arg(long, default_value = "auto", env = "GEOFLOW_GEOMETRY_TYPE", value_parser = parse_geometry_type)]
    pub geometry_type: GeometryType,
    /// How to read sources whose upload asks for nothing else.
    #[command(flatten)]
    pub read: ReadChoices,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// File to load (GeoJSON, a zipped Shapefile, GeoPackage, FlatGeobuf, GeoParquet or CSV,
    /// each also gzipped: told by content), or `-` to read stdin.
    pub path: PathBuf,
    /// Dataset to load into (a-z, 0-9 and _, starting with a letter; at most 63 characters).
    #[arg(long, value_parser = parse_dataset)]
    pub dataset: DatasetName,
    /// Source key: loading a source replaces this source's rows only. Default: the file name.
    #[arg(long)]
    pub source: Option<String>,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// What to do with invalid features: skip them, reject the whole source, or repair them.
    #[arg(long, default_value = "skip", env = "GEOFLOW_ON_INVALID", value_parser = parse_policy)]
    pub on_invalid: Policy,
    /// What the load may do to the types of existing columns: widen them, or reject the load
    /// (strict). New columns are added either way.
    #[arg(long, default_value = "widen", env = "GEOFLOW_SCHEMA_POLICY", value_parser = parse_schema_policy)]
    pub schema_policy: SchemaPolicy,
    /// The geometry column's type for a dataset the load creates: auto (the one geometry type
    /// of the data, with Polygon and MultiPolygon — or LineString and MultiLineString, Point and
    /// MultiPoint — together promoted to the Multi type), promote-multi (always the Multi type),
    /// any (a generic column), or a type: point, linestring, polygon, multipoint,
    /// multilinestring, multipolygon, geometrycollection (features of another type are invalid,
    /// except single geometries of a requested Multi type). An existing typed column widens to a
    /// generic one when a load does not fit it.
    #[arg(long, default_value = "auto", env = "GEOFLOW_GEOMETRY_TYPE", value_parser = parse_geometry_type)]
    pub geometry_type: GeometryType,
    /// How the load changes the dataset, if it creates it (one that exists keeps its mode):
    /// replace (the dataset is this file's content), append (the file is a source of its own,
    /// beside the others) or upsert (features keyed by --key: new keys are added, the keys the
    /// dataset holds replaced, the newest file winning each key).
    #[arg(long, default_value = "replace", env = "GEOFLOW_DATASET_MODE", value_parser = parse_mode)]
    pub mode: DatasetMode,
    /// In upsert mode, the property that keys the features (if the load creates the dataset);
    /// without it, the GeoJSON Feature `id`. A feature without a key is invalid.
    #[arg(long, env = "GEOFLOW_UPSERT_KEY", value_name = "PROPERTY")]
    pub key: Option<String>,
    /// Load even if the source already holds this content under the same settings.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON summary object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Largest single feature accepted, in bytes.
    #[arg(long, default_value_t = 128 << 20, env = "GEOFLOW_MAX_FEATURE_BYTES")]
    pub max_feature_bytes: usize,
    /// Parsing threads (default: one per core).
    #[arg(long, env = "GEOFLOW_WORKERS")]
    pub workers: Option<usize>,
    /// How many problems the summary lists (all are counted).
    #[arg(long, default_value_t = 20)]
    pub max_errors: usize,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Load each layer of a file with several (the feature tables of a GeoPackage, the
    /// Shapefiles of a zip) into a dataset of its own, named `<dataset>_<layer>`; with
    /// --json, one summary per line.
    #[arg(long, conflicts_with = "layer")]
    pub layers_as_datasets: bool,
    #[command(flatten)]
    pub read: ReadChoices,
}

fn parse_dataset(s: &str) -> Result<DatasetName, String> {
    DatasetName::new(s).map_err(|e| e.to_string())
}

fn parse_job_status(s: &str) -> Result<JobStatus, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!("{s:?} is not a job status: queued, running, succeeded, failed, skipped-duplicate or superseded")
    })
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    s.parse()
}

fn parse_schema_policy(s: &str) -> Result<SchemaPolicy, String> {
    s.parse()
}

fn parse_geometry_type(s: &str) -> Result<GeometryType, String> {
    s.parse()
}

fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| std::time::Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds (such as 5 or 0.5)"))
}

fn parse_mode(s: &str) -> Result<DatasetMode, String> {
    s.parse()
}

fn parse_date(s: &str) -> Result<time::Date, String> {
    crate::reports::parse_date(s)
}

fn parse_report_time(s: &str) -> Result<ReportTime, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(ReportTime::Off);
    }
    let format = time::macros::format_description!("[hour]:[minute]");
    time::Time::parse(s, format)
        .map(ReportTime::Daily)
        .map_err(|_| format!("{s:?} is not a time of day of the form HH:MM (UTC), or off"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("5"), Ok(std::time::Duration::from_secs(5)));
        assert_eq!(parse_seconds("0.25"), Ok(std::time::Duration::from_millis(250)));
        for bad in ["-1", "soon", "", "NaN"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bare_datasets_lists_and_subcommands_take_their_own_arguments() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let Command::Datasets(d) = parse(&["geoflow", "datasets", "--json"]).unwrap().command else { panic!() };
        assert!(d.command.is_none() && d.list.json);
        let Command::Datasets(d) = parse(&["geoflow", "datasets", "drop", "roads", "--objects"]).unwrap().command
        else {
            panic!()
        };
        assert!(matches!(d.command, Some(DatasetsCommand::Drop(DropArgs { objects: true, .. }))));
        assert!(parse(&["geoflow", "datasets", "drop", "Bad-Name"]).is_err());
        let Command::Jobs { command: JobsCommand::List(j) } =
            parse(&["geoflow", "jobs", "list", "--status", "skipped-duplicate", "--limit", "5"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((j.status, j.limit), (Some(JobStatus::SkippedDuplicate), 5));
        assert!(parse(&["geoflow", "jobs", "list", "--status", "done"]).is_err());
    }

    #[test]
    fn report_times_parse() {
        assert_eq!(parse_report_time("00:15"), Ok(ReportTime::Daily(time::macros::time!(00:15))));
        assert_eq!(parse_report_time("OFF"), Ok(ReportTime::Off));
        for bad in ["24:00", "7", "07:5", "noon", ""] {
            assert!(parse_report_time(bad).is_err(), "{bad}");
        }
    }
}
