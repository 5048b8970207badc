//! The ingest pipeline: one source into one dataset, exactly once.
//!
//! Two passes over the source. The schema pass hashes the bytes and infers the property
//! schema, so the store can shape its table before the first row. The load pass runs on
//! several threads — one frames features, workers parse, validate, repair, measure and encode
//! them, a collector keeps their order and applies the policy — while the store writes rows
//! in one transaction that commits only when everything was read.

mod input;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::process::{observe_schema, Processed, Processor};
use geoflow_core::reader::{RawFeature, ReadError};
use geoflow_core::report::{Action, FeatureIssue, LoadCounts, Policy};
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::{Schema, SchemaBuilder, SchemaPolicy};
use geoflow_formats::{ReadOptions, SourceInfo};
use geoflow_store::protocol::Origin;
use geoflow_store::{ErrorClass, LoadMessage, LoadOutcome, LoadPlan, LoadResult, SchemaChange, SourceVersion, Store};

pub use input::{Fingerprint, Input, Rereadable};

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub input: Input,
    pub dataset: DatasetName,
    /// Source key; defaults to the file name.
    pub source: Option<String>,
    /// The storage's version id or ETag of the object being loaded.
    pub object_version: Option<String>,
    /// The object in storage, asked before commit whether it still holds `object_version`.
    pub origin: Option<Origin>,
    pub policy: Policy,
    /// What the load may do to the types of the dataset's existing columns.
    pub schema_policy: SchemaPolicy,
    /// The type asked for the dataset's geometry column.
    pub geometry_type: GeometryType,
    /// The mode a dataset created by this load gets; an existing dataset keeps its own.
    pub mode: DatasetMode,
    /// What keys the features in upsert mode, if the load creates the dataset.
    pub key: FeatureKey,
    /// When storage last modified the object (`None` for a file loaded directly).
    pub modified: Option<OffsetDateTime>,
    /// Load even if the source already holds this content under the same settings.
    pub force: bool,
    /// How to read the source: limits, its CRS, the layer, CSV columns.
    pub read: ReadOptions,
    /// Threads that parse and encode features.
    pub workers: usize,
    /// Most problems kept in the report (all are counted).
    pub max_issues: usize,
}

impl IngestRequest {
    pub fn new(input: Input, dataset: DatasetName) -> IngestRequest {
        IngestRequest {
            input,
            dataset,
            source: None,
            object_version: None,
            origin: None,
            policy: Policy::Skip,
            schema_policy: SchemaPolicy::Widen,
            geometry_type: GeometryType::Auto,
            mode: DatasetMode::default(),
            key: FeatureKey::FeatureId,
            modified: None,
            force: false,
            read: ReadOptions::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_issues: 100,
        }
    }

    /// The source key the load replaces: the one given, else the file name.
    pub fn source_key(&self) -> String {
        self.source.clone().unwrap_or_else(|| self.input.default_source())
    }
}

/// How to read sources, as a request or the configuration chooses: the parts of
/// [`ReadOptions`] that a user picks. Unset choices fall back to the configuration's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct ReadChoices {
    /// The CRS of sources that carry none (CSV, a Shapefile without .prj, GeoJSON without a
    /// crs member), as an EPSG code (EPSG:27700), a URN, WKT or PROJJSON. It overrides what
    /// a file says, as ogr2ogr's -s_srs does. Coordinates are transformed to WGS84 lon/lat.
    #[arg(long, env = "GEOFLOW_SOURCE_CRS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_crs: Option<String>,
    /// The layer to read from a file with several: a Shapefile of a zip (by its base name) or
    /// a GeoPackage table.
    #[arg(long, env = "GEOFLOW_LAYER")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The CSV column holding WKT geometries (default: one named wkt, geometry, geom,
    /// the_geom, wkt_geom or shape).
    #[arg(long, env = "GEOFLOW_CSV_GEOMETRY")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_geometry: Option<String>,
    /// The CSV column holding longitudes or eastings (default: lon, lng, long, longitude, x,
    /// easting or point_x).
    #[arg(long, env = "GEOFLOW_CSV_X")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_x: Option<String>,
    /// The CSV column holding latitudes or northings (default: lat, latitude, y, northing or
    /// point_y).
    #[arg(long, env = "GEOFLOW_CSV_Y")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_y: Option<String>,
    /// The CSV field delimiter (default: sniffed from the header among , ; tab and |).
    #[arg(long, env = "GEOFLOW_CSV_DELIMITER", value_parser = parse_delimiter)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_delimiter: Option<char>,
}

/// The dataset each layer loads into when a file's layers become datasets of their own:
/// `<dataset>_<layer>`, the layer's name lower-cased with anything but letters, digits and
/// `_` made `_`. Refused when the file has no layers to split, or two layers would share a
/// dataset.
pub fn layer_datasets(dataset: &DatasetName, layers: &[String]) -> Result<Vec<(String, DatasetName)>, String> {
    if layers.is_empty() {
        return Err("the file has a single layer: load it without splitting it into datasets".to_string());
    }
    let mut datasets: Vec<(String, DatasetName)> = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut part = String::new();
        for c in layer.chars().flat_map(char::to_lowercase) {
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '_' };
            if !(c == '_' && (part.is_empty() || part.ends_with('_'))) {
                part.push(c);
            }
        }
        let part = part.trim_end_matches('_');
        if part.is_empty() {
            return Err(format!("layer {layer:?} has no letter or digit to name a dataset after"));
        }
        let mut name = format!("{dataset}_{part}");
        name.truncate(DatasetName::MAX_LEN);
        let name = DatasetName::new(name.trim_end_matches('_'))
            .map_err(|e| format!("layer {layer:?} cannot name a dataset: {e}"))?;
        if let Some((other, _)) = datasets.iter().find(|(_, d)| *d == name) {
            return Err(format!(
                "layers {other:?} and {layer:?} would both load into dataset {name}: rename one, or load each with \
                 the layer option"
            ));
        }
        datasets.push((layer.clone(), name));
    }
    Ok(datasets)
}

/// One ASCII character, or `tab`.
pub fn parse_delimiter(s: &str) -> Result<char, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok('\t'),
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '"' => Ok(c),
                _ => Err(format!("a CSV delimiter is one punctuation character or `tab`, not {s:?}")),
            }
        }
    }
}

impl ReadChoices {
    /// These choices, with `defaults` where they make none.
    pub fn or(&self, defaults: &ReadChoices) -> ReadChoices {
        let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
        ReadChoices {
            source_crs: pick(&self.source_crs, &defaults.source_crs),
            layer: pick(&self.layer, &defaults.layer),
            csv_geometry: pick(&self.csv_geometry, &defaults.csv_geometry),
            csv_x: pick(&self.csv_x, &defaults.csv_x),
            csv_y: pick(&self.csv_y, &defaults.csv_y),
            csv_delimiter: self.csv_delimiter.or(defaults.csv_delimiter),
        }
    }

    /// Sets the chosen parts of `read`.
    pub fn apply(&self, read: &mut ReadOptions) {
        read.source_crs = self.source_crs.clone();
        read.layer = self.layer.clone();
        read.csv.geometry_column = self.csv_geometry.clone();
        read.csv.x_column = self.csv_x.clone();
        read.csv.y_column = self.csv_y.clone();
        read.csv.delimiter = self.csv_delimiter.map(|c| c as u8);
    }
}

/// How a load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The source's rows were replaced (some features may have been skipped).
    Loaded,
    /// The source already held this content.
    Unchanged,
    /// Bad input: the policy rejected it or it is not readable GeoJSON. Retrying will not help.
    Rejected,
    /// Something else went wrong (IO, database). The previous rows are intact;
    /// `error_class` says whether trying again may help.
    Failed,
    /// Storage no longer held the version read by the time it would have committed (the
    /// object was overwritten or deleted meanwhile): nothing changed.
    Superseded,
}

/// The outcome of one ingest, as printed by `geoflow ingest --json` and kept as the result of
/// its job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestSummary {
    pub dataset: String,
    pub table: Option<String>,
    pub source: String,
    pub status: Status,
    /// The format, layer and CRS read.
    #[serde(flatten)]
    pub input: SourceInfo,
    pub features_read: u64,
    pub features_loaded: u64,
    pub invalid: u64,
    pub repaired: u64,
    pub skipped: u64,
    /// The first problems (see `issue_total` for the count).
    pub errors: Vec<FeatureIssue>,
    pub issue_total: u64,
    /// Why the source was rejected or failed.
    pub error: Option<String>,
    /// Whose fault the error is, and whether a retry may help.
    pub error_class: Option<ErrorClass>,
    pub load_id: Option<i64>,
    pub content_hash: Option<String>,
    pub bytes: u64,
    pub bbox: Option<Bbox>,
    pub replaced_rows: u64,
    /// In upsert mode, the features read but not stored: a newer object holds their key, or a
    /// later feature of the file has it (`features_loaded` counts those stored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub superseded_features: u64,
    /// What the load changed in the dataset table's layout: columns added, types widened,
    /// columns dropped because no row has a value in them any more.
    pub schema_changes: Vec<SchemaChange>,
    pub duration_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl IngestSummary {
    fn new(req: &IngestRequest, source: &str) -> IngestSummary {
        IngestSummary {
            dataset: req.dataset.to_string(),
            table: None,
            source: source.to_string(),
            status: Status::Failed,
            input: SourceInfo::default(),
            features_read: 0,
            features_loaded: 0,
            invalid: 0,
            repaired: 0,
            skipped: 0,
            errors: Vec::new(),
            issue_total: 0,
            error: None,
            error_class: None,
            load_id: None,
            content_hash: None,
            bytes: 0,
            bbox: None,
            replaced_rows: 0,
            superseded_features: 0,
            schema_changes: Vec::new(),
            duration_ms: 0,
        }
    }

    fn absorb(&mut self, result: &LoadResult) {
        let c = result.counts;
        (self.features_read, self.features_loaded, self.invalid, self.repaired, self.skipped) =
            (c.features_read, c.features_loaded, c.invalid, c.repaired, c.skipped);
        self.errors = result.issues.clone();
        self.issue_total = result.issue_total;
        self.error = result.error.clone();
        self.bbox = result.bbox;
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read in the current pass.
    pub bytes: Arc<AtomicU64>,
    /// Size of the source, once known.
    pub total_bytes: AtomicU64,
    /// Features processed in the load pass.
    pub features: AtomicU64,
    /// 1 during the schema pass, 2 during the load pass.
    pub pass: AtomicU64,
}

/// Loads one source. Errors of the input or the store end up in the summary (status
/// `rejected` or `failed`); `Err` is returned only when not even that could be recorded.
pub async fn ingest(
    store: Arc<dyn Store>,
    req: IngestRequest,
    progress: Arc<Progress>,
) -> anyhow::Result<IngestSummary> {
    let started = Instant::now();
    let source = req.source_key();
    let mut summary = IngestSummary::new(&req, &source);

    let input = req.input.clone();
    let opened = tokio::task::spawn_blocking(move || Rereadable::open(&input)).await?;
    let data = match opened {
        Ok(d) => Arc::new(d),
        Err(e) => {
            summary.error = Some(format!("cannot read {source}: {e}"));
            summary.error_class = Some(ErrorClass::Unavailable);
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
    };
    progress.total_bytes.store(data.len, Ordering::Relaxed);

    // Pass 1: hash and schema.
    progress.pass.store(1, Ordering::Relaxed);
    let (d, opts, workers, counter) = (data.clone(), req.read.clone(), req.workers, progress.bytes.clone());
    let scanned = tokio::task::spawn_blocking(move || schema_pass(&d, &opts, workers, &counter)).await?;
    // An existing dataset's mode and key are the ones its rows are read for (the store checks
    // them again under the dataset's lock); a failure to read them is the store's to report.
    let (mode, key) = match store.dataset(&req.dataset).await {
        Ok(Some(dataset)) => (dataset.mode, FeatureKey::from_property(dataset.key_property)),
        _ => (req.mode, req.key.clone()),
    };
    let mut plan = LoadPlan {
        dataset: req.dataset.clone(),
        source: source.clone(),
        version: SourceVersion {
            content_hash: String::new(),
            bytes: data.len,
            object_version: req.object_version.clone(),
        },
        schema: Schema::default(),
        policy: req.policy,
        origin: req.origin.clone(),
        schema_policy: req.schema_policy,
        geometry_type: req.geometry_type,
        mode,
        key,
        modified: req.modified,
        force: req.force,
        read_settings: req.read.settings(),
    };
    let scanned_fingerprint = match scanned {
        Ok(scan) => {
            plan.version.content_hash = scan.hash;
            plan.version.bytes = scan.bytes;
            plan.schema = scan.schema;
            summary.input = scan.input;
            scan.fingerprint
        }
        Err(e) => {
            let (status, class) = if matches!(e, ReadError::Io(_)) {
                (Status::Failed, ErrorClass::Unavailable)
            } else {
                (Status::Rejected, ErrorClass::BadInput)
            };
            (summary.status, summary.error_class) = (status, Some(class));
            let result = LoadResult { error: Some(format!("{source}: {e}")), ..LoadResult::default() };
            summary.absorb(&result);
            summary.load_id = Some(store.record_failure(&plan, &result).await?);
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
    };
    summary.content_hash = Some(plan.version.content_hash.clone());
    summary.bytes = plan.version.bytes;
    tracing::debug!(source = %source, fields = plan.schema.fields.len(), ms = started.elapsed().as_millis() as u64, "schema pass done");

    // Pass 2: load.
    progress.pass.store(2, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::mpsc::channel::<LoadMessage>(4);
    let load = {
        let (store, plan) = (store.clone(), plan.clone());
        tokio::spawn(async move { store.load(plan, rx).await })
    };
    let (d, mut req2, progress2, expected) = (data.clone(), req.clone(), progress.clone(), scanned_fingerprint);
    (req2.mode, req2.key) = (plan.mode, plan.key.clone());
    let schema = plan.schema.clone();
    let source2 = source.clone();
    let fed =
        tokio::task::spawn_blocking(move || load_pass(&d, &req2, &source2, &schema, expected, &progress2, tx)).await?;
    tracing::debug!(source = %source, ms = started.elapsed().as_millis() as u64, "all rows sent");
    let outcome = load.await?;
    summary.absorb(&fed.result);
    summary.status = fed.status;
    summary.input = fed.input.clone();
    match outcome {
        Ok(LoadOutcome::Loaded { load_id, table, replaced_rows, schema_changes, superseded_features }) => {
            summary.load_id = Some(load_id);
            summary.table = Some(table);
            summary.replaced_rows = replaced_rows;
            summary.superseded_features = superseded_features;
            summary.features_loaded = summary.features_loaded.saturating_sub(superseded_features);
            summary.schema_changes = schema_changes;
        }
        Ok(LoadOutcome::Unchanged { load_id, table }) => {
            // The store found this content already loaded and stopped reading rows.
            summary = IngestSummary {
                status: Status::Unchanged,
                load_id: Some(load_id),
                table: Some(table),
                ..IngestSummary::new(&req, &source)
            };
            summary.content_hash = Some(plan.version.content_hash.clone());
            summary.bytes = plan.version.bytes;
            summary.input = fed.input.clone();
        }
        Ok(LoadOutcome::Failed { load_id, table }) => {
            summary.load_id = Some(load_id);
            summary.table = Some(table);
            summary.error_class = Some(fed.class);
        }
        Ok(LoadOutcome::Superseded { load_id, table, reason }) => {
            summary.status = Status::Superseded;
            summary.load_id = Some(load_id);
            summary.table = Some(table);
            summary.error = Some(reason);
            summary.error_class = Some(ErrorClass::Superseded);
        }
        Err(e) => {
            summary.load_id = e.recorded_load();
            let class = e.class();
            // A value the store cannot hold is the input's fault, like unreadable GeoJSON.
            summary.status = if class == ErrorClass::BadInput { Status::Rejected } else { Status::Failed };
            summary.error = Some(format!("{source}: {e}"));
            summary.error_class = Some(class);
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

struct SchemaScan {
    schema: Schema,
    hash: String,
    bytes: u64,
    /// What the load pass must read again.
    fingerprint: Fingerprint,
    input: SourceInfo,
}

fn schema_pass(
    data: &Rereadable,
    opts: &ReadOptions,
    workers: usize,
    counter: &Arc<AtomicU64>,
) -> Result<SchemaScan, ReadError> {
    let mut schema = SchemaBuilder::default();
    let observe = |raws: Vec<RawFeature>| {
        let mut part = SchemaBuilder::default();
        raws.iter().for_each(|raw| observe_schema(raw, &mut part));
        part
    };
    let (framed, digest) = std::thread::scope(|s| {
        let digest = s.spawn(|| data.digest());
        let framed = in_parallel(data, opts, workers, counter, observe, |part| {
            schema.merge(part);
            true
        });
        (framed, digest.join().expect("the hashing thread does not panic"))
    });
    // Nothing stops this pass early, so it read everything.
    let (fingerprint, input) = framed?;
    let fingerprint =
        fingerprint.ok_or_else(|| ReadError::Io(std::io::Error::other("the source was not read to its end")))?;
    let (hash, bytes) = digest?;
    Ok(SchemaScan { schema: schema.finish(), hash, bytes, fingerprint, input })
}

/// Features per batch handed between threads, and the byte budget of one batch.
const BATCH_FEATURES: usize = 1024;
const BATCH_BYTES: usize = 4 << 20;

/// Reads a source once: one thread reads it (in whatever format) into batches of raw
/// features, `workers` threads `map` the batches, and `reduce` receives the results on the
/// calling thread in source order; it returns `false` to stop early. Memory is bounded by the
/// channel capacities. Returns the fingerprint of the bytes read, unless stopped early, and
/// what was read.
fn in_parallel<T: Send>(
    data: &Rereadable,
    opts: &ReadOptions,
    workers: usize,
    bytes: &Arc<AtomicU64>,
    map: impl Fn(Vec<RawFeature>) -> T + Sync,
    mut reduce: impl FnMut(T) -> bool,
) -> Result<(Option<Fingerprint>, SourceInfo), ReadError> {
    let workers = workers.max(1);
    let stop = AtomicBool::new(false);
    let (batch_tx, batch_rx) = bounded::<(u64, Vec<RawFeature>)>(workers * 2);
    let (done_tx, done_rx) = bounded::<(u64, T)>(workers * 2);
    std::thread::scope(|s| {
        let framing = std::thread::Builder::new()
            .name("geoflow-frame".into())
            .spawn_scoped(s, || frame(data, opts, bytes, &stop, batch_tx))
            .expect("spawn the framing thread");
        for i in 0..workers {
            let (batch_rx, done_tx, map) = (batch_rx.clone(), done_tx.clone(), &map);
            std::thread::Builder::new()
                .name(format!("geoflow-work-{i}"))
                .spawn_scoped(s, move || {
                    for (seq, raws) in batch_rx {
                        if done_tx.send((seq, map(raws))).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawn a worker thread");
        }
        drop((batch_rx, done_tx));
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut going = true;
        // Keep receiving after a stop so that the workers can finish.
        for (seq, out) in done_rx {
            if !going {
                continue;
            }
            pending.insert(seq, out);
            while let Some(out) = pending.remove(&next) {
                next += 1;
                if !reduce(out) {
                    going = false;
                    stop.store(true, Ordering::Relaxed);
                    pending.clear();
                    break;
                }
            }
        }
        framing.join().expect("the framing thread does not panic")
    })
}

/// Reads the source into batches of raw features; returns the fingerprint of all its bytes,
/// unless stopped early, and what was read.
fn frame(
    data: &Rereadable,
    opts: &ReadOptions,
    bytes: &Arc<AtomicU64>,
    stop: &AtomicBool,
    out: Sender<(u64, Vec<RawFeature>)>,
) -> Result<(Option<Fingerprint>, SourceInfo), ReadError> {
    let mut stream = data.reader(bytes.clone())?;
    let (sent_all, input) = {
        let mut source = geoflow_formats::open(&mut stream, &data.path, opts)?;
        let sent_all = send_batches(&mut *source, stop, &out)?;
        (sent_all, source.info())
    };
    // Formats read from the file rather than the stream leave it all to the fingerprint.
    let fingerprint = if sent_all { Some(stream.finish()?) } else { None };
    Ok((fingerprint, input))
}

/// Sends the features of `source` in batches; `false` when the receiver stopped listening.
fn send_batches(
    source: &mut dyn geoflow_formats::FeatureSource,
    stop: &AtomicBool,
    out: &Sender<(u64, Vec<RawFeature>)>,
) -> Result<bool, ReadError> {
    let mut batch = Vec::with_capacity(BATCH_FEATURES);
    let mut batch_bytes = 0usize;
    let mut seq = 0u64;
    for raw in source {
        let raw = raw?;
        // A decoded feature weighs about as much as its text would.
        batch_bytes += raw.bytes.len().max(64);
        batch.push(raw);
        if batch.len() >= BATCH_FEATURES || batch_bytes >= BATCH_BYTES {
            if stop.load(Ordering::Relaxed) || out.send((seq, std::mem::take(&mut batch))).is_err() {
                return Ok(false);
            }
            seq += 1;
            batch_bytes = 0;
        }
    }
    Ok(batch.is_empty() || out.send((seq, batch)).is_ok())
}

/// One batch after processing.
struct Done {
    rows: Vec<Row>,
    issues: Vec<FeatureIssue>,
    read: u64,
}

fn process_batch(processor: &Processor, raws: Vec<RawFeature>) -> Done {
    let mut done = Done { rows: Vec::with_capacity(raws.len()), issues: Vec::new(), read: raws.len() as u64 };
    for raw in raws {
        match processor.process(raw) {
            Processed::Row(row, issue) => {
                done.rows.push(row);
                done.issues.extend(issue);
            }
            Processed::Invalid(issue) => done.issues.push(issue),
        }
    }
    done
}

struct Fed {
    status: Status,
    /// What was read.
    input: SourceInfo,
    /// The class of the reader's failure, when it failed.
    class: ErrorClass,
    result: LoadResult,
}

/// Runs the load pass and feeds the store; returns what the reader saw.
fn load_pass(
    data: &Rereadable,
    req: &IngestRequest,
    source: &str,
    schema: &Schema,
    expected: Fingerprint,
    progress: &Progress,
    tx: tokio::sync::mpsc::Sender<LoadMessage>,
) -> Fed {
    let processor = Processor::new(schema, req.policy).with_geometry_type(req.geometry_type);
    let processor = match req.mode {
        DatasetMode::Upsert => processor.keyed_by(&req.key),
        _ => processor,
    };
    let mut fed = Fed {
        status: Status::Loaded,
        input: SourceInfo::default(),
        class: ErrorClass::BadInput,
        result: LoadResult::default(),
    };
    let framed = in_parallel(
        data,
        &req.read,
        req.workers,
        &progress.bytes,
        |raws| process_batch(&processor, raws),
        |done| {
            progress.features.fetch_add(done.read, Ordering::Relaxed);
            take_batch(&mut fed, done, req, source, &tx)
        },
    );
    if let Ok((_, input)) = &framed {
        fed.input = input.clone();
    }
    if fed.status == Status::Loaded {
        let failure = match framed {
            Err(ReadError::Io(e)) => Some((Status::Failed, format!("{source}: cannot read {}: {e}", data.name))),
            Err(e) => Some((Status::Rejected, format!("{source}: {e}"))),
            Ok((read, _)) if read != Some(expected) => Some((
                Status::Failed,
                format!("{source}: {} changed while it was being loaded; load it again", data.name),
            )),
            Ok(_) => None,
        };
        if let Some((status, why)) = failure {
            fed.status = status;
            if status == Status::Failed {
                fed.class = ErrorClass::Unavailable;
            }
            fed.result.error = Some(why);
        }
    }
    let message = if fed.status == Status::Loaded {
        LoadMessage::Commit(fed.result.clone())
    } else {
        LoadMessage::Abort(fed.result.clone())
    };
    // A closed channel means the store already finished (unchanged source, or its own error).
    let _ = tx.blocking_send(message);
    fed
}

/// Counts one processed batch, applies the policy, and sends its rows to the store.
/// Returns `false` when the load cannot go on.
fn take_batch(
    fed: &mut Fed,
    done: Done,
    req: &IngestRequest,
    source: &str,
    tx: &tokio::sync::mpsc::Sender<LoadMessage>,
) -> bool {
    let r = &mut fed.result;
    let counts: &mut LoadCounts = &mut r.counts;
    counts.features_read += done.read;
    counts.features_loaded += done.rows.len() as u64;
    for issue in done.issues {
        counts.invalid += 1;
        match issue.action {
            Action::Repaired => counts.repaired += 1,
            Action::Skipped => counts.skipped += 1,
            Action::Rejected => {}
        }
        r.issue_total += 1;
        *r.problem_counts.entry(issue.code).or_default() += 1;
        let rejected = issue.action == Action::Rejected;
        if rejected {
            r.error =
                Some(format!("{source}: {} is invalid and the policy is reject: {}", issue.which(), issue.reason));
        }
        if r.issues.len() < req.max_issues {
            r.issues.push(issue);
        }
        if rejected {
            fed.status = Status::Rejected;
            return false;
        }
    }
    for row in &done.rows {
        if let Some(g) = &row.geometry {
            r.bbox = Bbox::merge(r.bbox, g.bbox);
        }
        r.loaded.add(row);
    }
    if !done.rows.is_empty() && tx.blocking_send(LoadMessage::Rows(done.rows)).is_err() {
        // The store stopped listening (unchanged content, or its own failure).
        fed.status = Status::Failed;
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(dataset: &str, layers: &[&str]) -> Result<Vec<String>, String> {
        let layers: Vec<String> = layers.iter().map(|l| l.to_string()).collect();
        let datasets = layer_datasets(&DatasetName::new(dataset).unwrap(), &layers)?;
        Ok(datasets.into_iter().map(|(_, d)| d.as_str().to_string()).collect())
    }

    #[test]
    fn layers_name_their_datasets_after_themselves() {
        assert_eq!(
            named("city", &["Roads & Rails", "Ünïcode", "2024"]).unwrap(),
            ["city_roads_rails", "city_n_code", "city_2024"]
        );
        // Too long for a name: cut at the limit.
        let long = named("city", &["x".repeat(100).as_str()]).unwrap();
        assert_eq!(long[0].len(), DatasetName::MAX_LEN);
        let clash = named("city", &["roads", "Roads"]).unwrap_err();
        assert!(clash.contains("\"roads\"") && clash.contains("\"Roads\"") && clash.contains("city_roads"), "{clash}");
        assert!(named("city", &["---"]).unwrap_err().contains("no letter or digit"));
        assert!(named("city", &[]).unwrap_err().contains("single layer"));
    }
}
