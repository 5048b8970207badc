//! `POST /v1/datasets/{dataset}/uploads`: the body streams straight into object storage under
//! `raw/<dataset>/<date>/<name>`, then a load is queued and its job answered. Memory stays at
//! a few parts whatever the size.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::report::Policy;
use geoflow_core::schema::SchemaPolicy;
use geoflow_store::{DatasetInfo, Job, JobAction, NewJob};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::problem::{Problem, ProblemBody};
use super::AppState;
use crate::events::{notification, EventKind, JobTag};
use crate::ingest::{layer_datasets, parse_delimiter, ReadChoices};
use crate::storage::{PutStreamError, Storage, UPLOAD_JOB_METADATA};

/// Media types taken as a GeoJSON body as it is.
/// Content types of bodies stored as they are: the worker tells the format from the content.
const RAW_TYPES: [&str; 18] = [
    "application/geo+json",
    "application/json",
    "application/geo+json-seq",
    "application/x-ndjson",
    "application/octet-stream",
    "text/plain",
    "application/zip",
    "application/x-zip-compressed",
    "application/geopackage+sqlite3",
    "application/x-sqlite3",
    "application/vnd.sqlite3",
    "application/flatgeobuf",
    "application/vnd.apache.parquet",
    "application/x-parquet",
    "text/csv",
    "application/gzip",
    "application/x-gzip",
    "text/tab-separated-values",
];

/// Content types of formats geoflow does not read, and what to send instead.
const REFUSED_TYPES: [(&str, &str); 10] = [
    ("application/vnd.google-earth.kml+xml", "a KML document"),
    ("application/vnd.google-earth.kmz", "a KMZ (zipped KML)"),
    ("application/gpx+xml", "a GPX document"),
    ("application/gml+xml", "a GML document"),
    ("application/pdf", "a PDF document"),
    ("application/vnd.ms-excel", "an Excel workbook"),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "an Excel workbook"),
    ("image/tiff", "a raster image"),
    ("image/png", "a raster image"),
    ("image/jpeg", "a raster image"),
];

/// Room for a multipart body's boundaries and part headers beyond the upload limit.
const MULTIPART_OVERHEAD: u64 = 64 << 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// File name of the object (default: the multipart part's file name, else `<job>.geojson`).
    /// Uploading the same name again on the same day replaces that source's rows.
    name: Option<String>,
    /// What to do with invalid features: `skip` them (default), `reject` the whole source, or
    /// `repair` them.
    #[param(value_type = Option<Policy>)]
    on_invalid: Option<String>,
    /// What the load may do to the types of the dataset's existing columns: `widen` them, or
    /// reject the load (`strict`). New columns are added either way. Default: the worker's
    /// `GEOFLOW_SCHEMA_POLICY`.
    #[param(value_type = Option<SchemaPolicy>)]
    schema_policy: Option<String>,
    /// The geometry column's type for a dataset this upload creates: `auto` (the data's one
    /// geometry type; a single type and its Multi type together become the Multi type),
    /// `promote-multi`, `any` (a generic column), or a type (`point`, `linestring`, `polygon`,
    /// `multipoint`, `multilinestring`, `multipolygon`, `geometrycollection`). An existing typed
    /// column widens to a generic one when a load does not fit it. Default: the worker's
    /// `GEOFLOW_GEOMETRY_TYPE`.
    #[param(value_type = Option<String>, example = "auto")]
    geometry_type: Option<String>,
    /// How new objects change the dataset, for a dataset this upload creates: `replace` (the
    /// dataset is its newest upload), `append` (each file name is a source of its own),
    /// `upsert` (features keyed by `key`, the newest upload winning each key). An
    /// existing dataset keeps its mode (change it with `PATCH /v1/datasets/{dataset}`): asking
    /// for another one is a conflict. Default: the service's setting (`replace`).
    #[param(value_type = Option<DatasetMode>)]
    mode: Option<String>,
    /// With `mode=upsert`, the property that keys the features of a dataset this upload
    /// creates; without it, the GeoJSON Feature `id`. A feature without a key is invalid.
    key: Option<String>,
    /// Load even if the source already holds this content under the same settings.
    force: Option<bool>,
    /// The CRS of a file that carries none (CSV, a Shapefile without `.prj`), overriding what
    /// the file says: an EPSG code (`EPSG:27700`), a URN, WKT or PROJJSON. Coordinates are
    /// transformed to WGS84 longitude/latitude.
    #[param(example = "EPSG:27700")]
    source_crs: Option<String>,
    /// The layer to read from a file with several: a Shapefile of a zip (its base name) or a
    /// GeoPackage table.
    layer: Option<String>,
    /// CSV: the column holding WKT geometries (default: `wkt`, `geometry`, `geom`, `the_geom`,
    /// `wkt_geom` or `shape`).
    csv_geometry: Option<String>,
    /// CSV: the column holding longitudes or eastings (default: `lon`, `lng`, `long`,
    /// `longitude`, `x`, `easting` or `point_x`).
    csv_x: Option<String>,
    /// CSV: the column holding latitudes or northings (default: `lat`, `latitude`, `y`,
    /// `northing` or `point_y`).
    csv_y: Option<String>,
    /// CSV: the field delimiter, one punctuation character or `tab` (default: sniffed).
    csv_delimiter: Option<String>,
    /// Load each layer of a file with several (the feature tables of a GeoPackage, the
    /// Shapefiles of a zip) into a dataset of its own, `<dataset>_<layer>`: each layer is
    /// stored as a file of its own under its dataset, with a job of its own, and the answer
    /// lists the jobs.
    layers_as_datasets: Option<bool>,
}

/// An optional query parameter of a type parsed from its text: 400 naming the parameter when it
/// does not parse.
fn parameter<T: std::str::FromStr<Err = String>>(name: &str, value: &Option<String>) -> Result<Option<T>, Problem> {
    value
        .as_deref()
        .map(|v| v.parse::<T>().map_err(|e| Problem::bad_request("invalid-parameter", format!("{name}: {e}"))))
        .transpose()
}

/// A multipart upload: the first part with a file name is the GeoJSON.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

#[utoipa::path(
    post,
    path = "/v1/datasets/{dataset}/uploads",
    tag = "uploads",
    params(
        ("dataset" = String, Path, description = "Dataset to load into", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        UploadParams,
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (per dataset) answer the first upload's job instead of uploading again"),
    ),
    request_body(
        description = "GeoJSON: a FeatureCollection, a Feature, a Geometry, GeoJSON Text Sequences or newline-delimited GeoJSON; raw or as a multipart file part",
        content(
            (String = "application/geo+json"),
            (String = "application/json"),
            (String = "application/geo+json-seq"),
            (String = "application/x-ndjson"),
            (UploadForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 202, description = "Stored; the load is queued: its job, or with layers_as_datasets the job of each layer", body = UploadAccepted,
            headers(("Location" = String, description = "The job's URL (one object stored)"))),
        (status = 400, description = "Bad dataset name, file name, option or body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "A bearer token is needed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The dataset exists in another mode than the one asked for", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the upload limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not a GeoJSON or multipart body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Storage, queue or database unavailable; retry", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn upload(
    State(state): State<AppState>,
    Path(dataset): Path<String>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let dataset =
        DatasetName::new(&dataset).map_err(|e| Problem::bad_request("invalid-dataset", format!("dataset: {e}")))?;
    let policy = parameter::<Policy>("on_invalid", &params.on_invalid)?.unwrap_or(state.config.default_policy);
    let schema_policy = parameter::<SchemaPolicy>("schema_policy", &params.schema_policy)?;
    let geometry_type = parameter::<GeometryType>("geometry_type", &params.geometry_type)?;
    let mode = parameter::<DatasetMode>("mode", &params.mode)?;
    let read = read_choices(&params)?;
    if params.key.is_some() && mode != Some(DatasetMode::Upsert) {
        return Err(Problem::bad_request("invalid-parameter", "key: a key is given with mode=upsert, which it keys"));
    }
    if let Some(asked) = mode {
        refuse_other_mode(&state, &dataset, asked, &FeatureKey::from_property(params.key.clone())).await?;
    }
    let kind = body_kind(&headers)?;
    let limit = state.config.max_upload_bytes;
    if let Some(length) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) {
        if length > limit && !matches!(kind, BodyKind::Multipart(_)) {
            return Err(too_large(limit));
        }
    }
    let idempotency_key = match headers.get("idempotency-key") {
        Some(key) => Some(key.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
            Problem::bad_request("invalid-header", "Idempotency-Key: 1 to 255 visible ASCII characters")
        })?),
        None => None,
    };
    let split = params.layers_as_datasets.unwrap_or(false);
    if split && read.layer.is_some() {
        return Err(Problem::bad_request(
            "invalid-parameter",
            "layer: a layer is chosen, or every layer loads into a dataset of its own (layers_as_datasets), not both",
        ));
    }
    let job_id = match idempotency_key {
        Some(key) => idempotent_job_id(&dataset, key),
        None => uuid::Uuid::new_v4().to_string(),
    };
    if let (Some(_), false) = (idempotency_key, split) {
        if let Some(job) = state.jobs.job(&job_id).await.map_err(|e| Problem::store("database", e))? {
            return Ok(replayed(accepted(job)));
        }
    }
    let tag = JobTag {
        job: job_id.clone(),
        on_invalid: policy,
        schema_policy,
        geometry_type,
        mode,
        key: params.key.clone(),
        force: params.force.unwrap_or(false),
        read,
    };
    let upload = Upload { state: &state, dataset: &dataset, tag, idempotency_key, limit };

    let stream = body.into_data_stream();
    match kind {
        BodyKind::Raw => {
            let name = file_name(params.name.as_deref(), None, &job_id)?;
            if split {
                upload.each_layer(&name, stream).await
            } else {
                upload.one(&name, stream).await
            }
        }
        BodyKind::Multipart(boundary) => {
            // The whole body counts towards the limit, parts skipped included.
            let whole = multer::SizeLimit::new().whole_stream(limit.saturating_add(MULTIPART_OVERHEAD));
            let mut form =
                multer::Multipart::with_constraints(stream, boundary, multer::Constraints::new().size_limit(whole));
            let field = loop {
                match form.next_field().await {
                    Ok(Some(field)) if field.file_name().is_some() || field.name() == Some("file") => break field,
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        return Err(Problem::bad_request("invalid-body", "the multipart body has no file part"));
                    }
                    Err(e) => return Err(multipart_problem(e, limit)),
                }
            };
            let name = file_name(params.name.as_deref(), field.file_name(), &job_id)?;
            let field = field.map_err(|e| e.to_string());
            if split {
                upload.each_layer(&name, field).await
            } else {
                upload.one(&name, field).await
            }
        }
    }
}

/// An upload being stored and queued.
struct Upload<'a> {
    state: &'a AppState,
    dataset: &'a DatasetName,
    /// The choices of the upload, with the job of its (first) object.
    tag: JobTag,
    idempotency_key: Option<&'a str>,
    limit: u64,
}

impl Upload<'_> {
    /// Stores the body as one object of the dataset and queues its load.
    async fn one<S, B, E>(&self, name: &str, body: S) -> Result<Response, Problem>
    where
        S: futures_util::Stream<Item = Result<B, E>>,
        B: Into<Bytes>,
        E: std::fmt::Display,
    {
        let key = upload_key(&self.state.storage, self.dataset, name);
        let metadata = [(UPLOAD_JOB_METADATA, self.tag.job.clone())];
        let (put, size) = self
            .state
            .storage
            .put_stream(&key, body, self.limit, &metadata)
            .await
            .map_err(|e| stored(e, self.limit))?;
        let job = self.queue(self.dataset, key, size, put, &self.tag).await?;
        Ok(accepted(job))
    }

    /// Spools the body, then stores each of its layers as a file of its own under the dataset
    /// named after it, and queues each load.
    async fn each_layer<S, B, E>(&self, name: &str, body: S) -> Result<Response, Problem>
    where
        S: futures_util::Stream<Item = Result<B, E>>,
        B: Into<Bytes>,
        E: std::fmt::Display,
    {
        let spooled = spool(body, self.limit).await?;
        let path = spooled.path().to_path_buf();
        let layers = tokio::task::spawn_blocking(move || geoflow_formats::layers(&path))
            .await
            .map_err(|e| Problem::internal("layer listing", e))?
            .map_err(|e| unreadable(name, e))?;
        let datasets = layer_datasets(self.dataset, &layers)
            .map_err(|why| Problem::bad_request("invalid-body", format!("{name}: {why}")))?;
        let job_of = |dataset: &DatasetName| match self.idempotency_key {
            Some(key) => idempotent_job_id(dataset, key),
            None => uuid::Uuid::new_v4().to_string(),
        };
        if let Some(asked) = self.tag.mode {
            let asked_key = FeatureKey::from_property(self.tag.key.clone());
            for (_, dataset) in &datasets {
                refuse_other_mode(self.state, dataset, asked, &asked_key).await?;
            }
        }
        let jobs: Vec<(String, DatasetName, String)> =
            datasets.into_iter().map(|(layer, dataset)| (layer, dataset.clone(), job_of(&dataset))).collect();
        if self.idempotency_key.is_some() {
            let mut found = Vec::new();
            for (_, _, id) in &jobs {
                match self.state.jobs.job(id).await.map_err(|e| Problem::store("database", e))? {
                    Some(job) => found.push(job),
                    None => break,
                }
            }
            if found.len() == jobs.len() {
                return Ok(replayed(layers_accepted(found)));
            }
        }
        let mut queued = Vec::with_capacity(jobs.len());
        for (layer, dataset, job) in jobs {
            let part = tempfile::Builder::new()
                .prefix("geoflow-layer-")
                .tempfile()
                .map_err(|e| Problem::unavailable("scratch disk", e))?;
            let (whole, out) = (spooled.path().to_path_buf(), part.path().to_path_buf());
            let wanted = layer.clone();
            tokio::task::spawn_blocking(move || geoflow_formats::extract_layer(&whole, &wanted, &out))
                .await
                .map_err(|e| Problem::internal("layer split", e))?
                .map_err(|e| unreadable(name, e))?;
            let key = upload_key(&self.state.storage, &dataset, name);
            let metadata = [(UPLOAD_JOB_METADATA, job.clone())];
            let file = tokio::fs::File::open(part.path()).await.map_err(|e| Problem::unavailable("scratch disk", e))?;
            let (put, size) = self
                .state
                .storage
                .put_stream(&key, file_chunks(file), u64::MAX, &metadata)
                .await
                .map_err(|e| stored(e, self.limit))?;
            let tag = JobTag { job, ..self.tag.clone() };
            queued.push(self.queue(&dataset, key, size, put, &tag).await?);
            tracing::info!(%layer, %dataset, "layer stored as a dataset of its own");
        }
        Ok(layers_accepted(queued))
    }

    /// Queues the load of a stored object and records its job.
    async fn queue(
        &self,
        dataset: &DatasetName,
        key: String,
        size: u64,
        put: object_store::PutResult,
        tag: &JobTag,
    ) -> Result<Job, Problem> {
        // Queued before the job is recorded: should this process die in between, the worker
        // records the job itself, and a retry with the same Idempotency-Key finds it.
        let message = notification(EventKind::Created, &key, size, Some(tag));
        self.state.queue.send(&message).await.map_err(|e| Problem::unavailable("queue", e))?;
        let object_version = put.version.or(put.e_tag);
        let new = NewJob {
            id: tag.job.clone(),
            dataset: dataset.clone(),
            source: key,
            action: JobAction::Load,
            object_version,
        };
        let job = self.state.jobs.upsert_job(&new).await.map_err(|e| Problem::store("database", e))?;
        tracing::info!(job = %job.id, dataset = %job.dataset, key = %job.source, bytes = size, "upload stored and queued");
        Ok(job)
    }
}

/// What an accepted upload answers.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum UploadAccepted {
    /// The job of the one object stored.
    Job(Box<Job>),
    /// The job of each layer, with `layers_as_datasets`.
    Layers(LayerJobs),
}

/// The jobs of an upload whose layers became datasets.
#[derive(Debug, Serialize, ToSchema)]
pub struct LayerJobs {
    /// One job per layer, each loading its own dataset.
    pub jobs: Vec<Job>,
}

/// `202 Accepted` with the job of each layer.
fn layers_accepted(jobs: Vec<Job>) -> Response {
    (StatusCode::ACCEPTED, Json(LayerJobs { jobs })).into_response()
}

/// An answer given before, to a retry with the same Idempotency-Key.
fn replayed(mut response: Response) -> Response {
    response.headers_mut().insert(HeaderName::from_static("idempotent-replayed"), HeaderValue::from_static("true"));
    response
}

/// A file whose layers cannot be listed or split: the file's fault, or the disk's.
fn unreadable(name: &str, e: geoflow_formats::ReadError) -> Problem {
    match e {
        geoflow_formats::ReadError::Io(e) => Problem::unavailable("scratch disk", format!("splitting {name}: {e}")),
        e => Problem::bad_request("invalid-body", format!("{name}: {e}")),
    }
}

/// Writes the body to a temporary file, within the upload limit.
async fn spool<S, B, E>(body: S, limit: u64) -> Result<tempfile::NamedTempFile, Problem>
where
    S: futures_util::Stream<Item = Result<B, E>>,
    B: Into<Bytes>,
    E: std::fmt::Display,
{
    use tokio::io::AsyncWriteExt;
    let spooled = tempfile::Builder::new()
        .prefix("geoflow-upload-")
        .tempfile()
        .map_err(|e| Problem::unavailable("scratch disk", e))?;
    let mut file = tokio::fs::File::from_std(spooled.reopen().map_err(|e| Problem::unavailable("scratch disk", e))?);
    let mut body = std::pin::pin!(body);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk: Bytes = chunk.map_err(|e| stored(PutStreamError::Body(e.to_string()), limit))?.into();
        size += chunk.len() as u64;
        if size > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(|e| Problem::unavailable("scratch disk", e))?;
    }
    if size == 0 {
        return Err(stored(PutStreamError::Empty, limit));
    }
    file.flush().await.map_err(|e| Problem::unavailable("scratch disk", e))?;
    Ok(spooled)
}

/// A file as a stream of chunks.
fn file_chunks(file: tokio::fs::File) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 1 << 20];
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        chunk.truncate(n);
        Ok(Some((Bytes::from(chunk), file)))
    })
}

/// `409` when `dataset` exists in another mode (or upsert key) than the one asked for: a mode
/// is changed on purpose, with `PATCH`.
async fn refuse_other_mode(
    state: &AppState,
    dataset: &DatasetName,
    asked: DatasetMode,
    asked_key: &FeatureKey,
) -> Result<(), Problem> {
    let existing = state.catalog.dataset(dataset).await.map_err(|e| Problem::store("database", e))?;
    let differs = |d: &DatasetInfo| {
        d.mode != asked || (asked == DatasetMode::Upsert && d.key_property.as_deref() != asked_key.property())
    };
    let Some(existing) = existing.filter(differs) else { return Ok(()) };
    let keyed = |mode: DatasetMode, key: Option<&str>| match (mode, key) {
        (DatasetMode::Upsert, Some(property)) => format!("upsert mode keyed by property {property:?}"),
        (DatasetMode::Upsert, None) => "upsert mode keyed by the Feature id".to_string(),
        (mode, _) => format!("{mode} mode"),
    };
    Err(Problem::new(
        StatusCode::CONFLICT,
        "mode-conflict",
        format!(
            "dataset {dataset} is in {}, not {}: change its mode with PATCH /v1/datasets/{dataset} first, or upload \
             without a mode",
            keyed(existing.mode, existing.key_property.as_deref()),
            keyed(asked, asked_key.property()),
        ),
    ))
}

/// `202 Accepted` with the job and its URL.
pub fn accepted(job: Job) -> Response {
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

enum BodyKind {
    Raw,
    Multipart(String),
}

/// The body's kind from its `Content-Type`; none is taken as raw GeoJSON (`curl -T`).
fn body_kind(headers: &HeaderMap) -> Result<BodyKind, Problem> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(BodyKind::Raw) };
    let text = value.to_str().unwrap_or_default();
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "multipart/form-data" {
        return multer::parse_boundary(text)
            .map(BodyKind::Multipart)
            .map_err(|e| Problem::bad_request("invalid-header", format!("Content-Type: {e}")));
    }
    if RAW_TYPES.contains(&essence.as_str()) {
        return Ok(BodyKind::Raw);
    }
    const READ: &str = "geoflow reads GeoJSON, zipped Shapefiles, GeoPackage, FlatGeobuf, GeoParquet and CSV, \
                        each also gzipped";
    if let Some((_, what)) = REFUSED_TYPES.iter().find(|(t, _)| *t == essence) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!(
                "Content-Type {essence:?} is {what}, which geoflow does not read: {READ}. Convert it first \
                 (e.g. ogr2ogr -f GPKG out.gpkg in.kml)"
            ),
        ));
    }
    Err(Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        format!(
            "Content-Type {essence:?} is not accepted: {READ} (the format is told from the content). Send the file \
             as one of {} or as a multipart/form-data file part (curl: --data-binary @file -H 'Content-Type: \
             application/octet-stream', or -F file=@file)",
            RAW_TYPES.join(", ")
        ),
    ))
}

/// How the upload asks its file to be read; a CRS is checked now, so that a misspelt one is
/// refused before anything is stored.
fn read_choices(params: &UploadParams) -> Result<ReadChoices, Problem> {
    let csv_delimiter = params
        .csv_delimiter
        .as_deref()
        .map(parse_delimiter)
        .transpose()
        .map_err(|e| Problem::bad_request("invalid-parameter", format!("csv_delimiter: {e}")))?;
    if let Some(crs) = &params.source_crs {
        geoflow_formats::resolve_crs(crs)
            .map_err(|e| Problem::bad_request("invalid-parameter", format!("source_crs: {e}")))?;
    }
    Ok(ReadChoices {
        source_crs: params.source_crs.clone(),
        layer: params.layer.clone(),
        csv_geometry: params.csv_geometry.clone(),
        csv_x: params.csv_x.clone(),
        csv_y: params.csv_y.clone(),
        csv_delimiter,
    })
}

/// The longest file name a local folder holds (and well within S3's key length).
const MAX_STORED_NAME: usize = 255;

/// The object's file name: the one asked for, else the multipart part's, else the job's.
/// Only the last path segment of a client's name is kept.
fn file_name(asked: Option<&str>, part: Option<&str>, job_id: &str) -> Result<String, Problem> {
    let Some(given) = asked.or(part) else { return Ok(format!("{job_id}.geojson")) };
    let name = given.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    let bad = |why: &str| Problem::bad_request("invalid-parameter", format!("name {given:?}: {why}"));
    if name.is_empty() || name == "." || name == ".." {
        return Err(bad("a file name is needed"));
    }
    if name.len() > 200 {
        return Err(bad("longer than 200 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    // What a query string's undecodable bytes became.
    if name.contains(char::REPLACEMENT_CHARACTER) {
        return Err(bad("not valid UTF-8"));
    }
    // Storage escapes characters such as `%`, `#` and `?` in keys (three bytes each), and a
    // file name in a local folder holds 255 bytes at most.
    let stored = object_store::path::PathPart::from(name).as_ref().len();
    if stored > MAX_STORED_NAME {
        return Err(bad(&format!(
            "{stored} bytes once escaped for storage, more than {MAX_STORED_NAME}: \
             shorten it or use fewer characters that storage escapes, such as % # ?"
        )));
    }
    Ok(name.to_string())
}

/// `[prefix/]raw/<dataset>/<UTC date>/<name>`.
fn upload_key(storage: &Storage, dataset: &DatasetName, name: &str) -> String {
    let date = time::OffsetDateTime::from(SystemTime::now()).date();
    storage.key(&format!("raw/{}/{date}/{name}", dataset.as_str()))
}

/// Retries of one upload share a job: its id is derived from the dataset and the key.
fn idempotent_job_id(dataset: &DatasetName, key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(dataset.as_str());
    hash.update([0]);
    hash.update(key);
    let digest = hash.finalize();
    format!("upload-{}", digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn too_large(limit: u64) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", format!("uploads are limited to {limit} bytes"))
}

fn stored(e: PutStreamError, limit: u64) -> Problem {
    match e {
        PutStreamError::TooLarge { .. } => too_large(limit),
        PutStreamError::Empty => Problem::bad_request("invalid-body", "the upload is empty"),
        PutStreamError::Body(reason) => Problem::bad_request("invalid-body", format!("reading the body: {reason}")),
        PutStreamError::Storage(e) => Problem::storage(e),
    }
}

fn multipart_problem(e: multer::Error, limit: u64) -> Problem {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => too_large(limit),
        e => Problem::bad_request("invalid-body", format!("multipart body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_their_last_segment_only() {
        assert_eq!(file_name(Some("roads.geojson"), Some("x"), "j").unwrap(), "roads.geojson");
        assert_eq!(file_name(None, Some("C:\\data\\parks 2.geojson"), "j").unwrap(), "parks 2.geojson");
        assert_eq!(file_name(Some("../../etc/passwd"), None, "j").unwrap(), "passwd");
        // 100 bytes as given, 300 once each `%` is escaped: refused before anything is written.
        let escaped = file_name(Some(&"%".repeat(100)), None, "j").unwrap_err();
        assert_eq!(escaped.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(escaped.to_string().contains("300 bytes once escaped"), "{escaped}");
        assert!(file_name(Some(&"%".repeat(85)), None, "j").is_ok());
        assert_eq!(file_name(None, None, "j1").unwrap(), "j1.geojson");
        for bad in ["", "a/..", "dir/", "a\u{7}b", &"x".repeat(201)] {
            assert!(file_name(Some(bad), None, "j").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn idempotency_keys_are_scoped_to_the_dataset() {
        let roads = DatasetName::new("roads").unwrap();
        let parks = DatasetName::new("parks").unwrap();
        assert_eq!(idempotent_job_id(&roads, "k1"), idempotent_job_id(&roads, "k1"));
        assert_ne!(idempotent_job_id(&roads, "k1"), idempotent_job_id(&parks, "k1"));
        assert_ne!(idempotent_job_id(&roads, "k1"), idempotent_job_id(&roads, "k2"));
    }

    #[test]
    fn content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(v).unwrap());
            body_kind(&h)
        };
        assert!(matches!(with("application/geo+json; charset=utf-8"), Ok(BodyKind::Raw)));
        assert!(matches!(with("multipart/form-data; boundary=abc"), Ok(BodyKind::Multipart(b)) if b == "abc"));
        assert_eq!(
            with("application/x-www-form-urlencoded").err().unwrap().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(with("multipart/form-data").err().unwrap().status(), StatusCode::BAD_REQUEST);
        assert!(matches!(body_kind(&HeaderMap::new()), Ok(BodyKind::Raw)));
    }
}
