//! `GET /v1/datasets`, `GET`, `PATCH` and `DELETE /v1/datasets/{dataset}`, and
//! `DELETE /v1/datasets/{dataset}/sources/{source}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_store::{DatasetInfo, Job, JobAction, JobQuery, SourceRecord, Temporal};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{Problem, ProblemBody};
use super::uploads::accepted;
use super::AppState;
use crate::events::{dataset_of, notification, EventKind, JobTag};
use crate::lifecycle::{self, DropError};

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    pub datasets: Vec<DatasetInfo>,
}

#[utoipa::path(
    get,
    path = "/v1/datasets",
    tag = "datasets",
    responses(
        (status = 200, description = "Every dataset with its feature count, extent and columns", body = DatasetList),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn datasets(State(state): State<AppState>) -> Result<Json<DatasetList>, Problem> {
    let datasets = state.catalog.datasets().await.map_err(|e| Problem::store("database", e))?;
    Ok(Json(DatasetList { datasets }))
}

/// A dataset with its sources and its most recent job.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetDetail {
    /// What the dataset list says of it: feature count, extent, columns, version.
    pub dataset: DatasetInfo,
    /// Every loaded source, by key.
    pub sources: Vec<SourceRecord>,
    /// The most recent job of the dataset, whatever its outcome.
    pub last_job: Option<Job>,
}

#[utoipa::path(
    get,
    path = "/v1/datasets/{dataset}",
    tag = "datasets",
    params(("dataset" = String, Path, description = "Dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The dataset: feature count, extent, schema, sources and last job", body = DatasetDetail),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn dataset(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<DatasetDetail>, Problem> {
    let unknown = || Problem::not_found(format!("no dataset {name:?}"));
    let Ok(name) = DatasetName::new(&name) else { return Err(unknown()) };
    let db = |e| Problem::store("database", e);
    let Some(dataset) = state.catalog.dataset(&name).await.map_err(db)? else { return Err(unknown()) };
    let sources = state.catalog.sources(&name).await.map_err(db)?;
    let last = JobQuery { dataset: Some(name), limit: 1, ..JobQuery::default() };
    let last_job = state.jobs.jobs(&last).await.map_err(db)?.into_iter().next();
    Ok(Json(DatasetDetail { dataset, sources, last_job }))
}

/// What `PATCH /v1/datasets/{dataset}` changes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetChange {
    /// How new objects change the dataset from now on; its rows stay as they are until the
    /// next object arrives.
    pub mode: Option<DatasetMode>,
    /// With `"mode": "upsert"`, the property that keys the features; without it, the GeoJSON
    /// Feature `id`.
    pub key: Option<String>,
    /// The date or date-time properties that place the features in time, which the OGC API's
    /// `datetime` filters and temporal extent follow: `{"start": "observed"}`, or an interval
    /// `{"start": "valid_from", "end": "valid_to"}`; `null` for the load time again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Temporal>)]
    pub temporal: Option<Option<Temporal>>,
}

/// A member that is present, even as `null` (`Some(None)`), told from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Temporal>>, D::Error> {
    Option::<Temporal>::deserialize(d).map(Some)
}

#[utoipa::path(
    patch,
    path = "/v1/datasets/{dataset}",
    tag = "datasets",
    params(("dataset" = String, Path, description = "Dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    request_body(content = DatasetChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The dataset as it now is", body = DatasetInfo),
        (status = 400, description = "A bad parameter or body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "A bearer token is needed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn change_dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DatasetInfo>, Problem> {
    let unknown = || Problem::not_found(format!("no dataset {name:?}"));
    let Ok(dataset) = DatasetName::new(&name) else { return Err(unknown()) };
    // Parsed as an object first: serde would take a struct's fields from an array too.
    let change = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
        .and_then(|object| serde_json::from_value::<DatasetChange>(serde_json::Value::Object(object)))
        .map_err(|e| {
            Problem::bad_request(
                "invalid-body",
                format!("the body must be a JSON object such as {{\"mode\": \"replace\"}}: {e}"),
            )
        })?;
    let db = |e| Problem::store("database", e);
    let info = match (change.mode, change.key) {
        (Some(DatasetMode::Upsert), key) => {
            state.loads.set_mode(&dataset, DatasetMode::Upsert, &FeatureKey::from_property(key)).await.map_err(db)?
        }
        (Some(mode), None) => state.loads.set_mode(&dataset, mode, &FeatureKey::FeatureId).await.map_err(db)?,
        (_, Some(_)) => {
            return Err(Problem::bad_request(
                "invalid-body",
                "a key is given with \"mode\": \"upsert\", which it keys",
            ));
        }
        (None, None) => state.catalog.dataset(&dataset).await.map_err(db)?,
    };
    let info = match (info, change.temporal) {
        (Some(_), Some(temporal)) => state.loads.set_temporal(&dataset, temporal.as_ref()).await.map_err(db)?,
        (info, _) => info,
    };
    let info = info.ok_or_else(unknown)?;
    tracing::info!(dataset = %info.name, mode = %info.mode, "dataset changed");
    Ok(Json(info))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropParams {
    /// Also delete the dataset's objects in storage (every key under `raw/<dataset>/`), so
    /// that nothing loads them again. Without it they stay: a later event for one of them
    /// loads it into a new dataset of the same name.
    #[serde(default)]
    objects: bool,
}

#[utoipa::path(
    delete,
    path = "/v1/datasets/{dataset}",
    tag = "datasets",
    params(
        ("dataset" = String, Path, description = "Dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        DropParams,
    ),
    responses(
        (status = 204, description = "The dataset is dropped: its table, its sources and columns in the catalog (and, with objects=true, its objects in storage). Its loads and jobs stay in the history."),
        (status = 400, description = "A bad dataset name or parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "A bearer token is needed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset (and, with objects=true, no object of it either)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Storage or database unavailable; retry", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn drop_dataset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<DropParams>,
) -> Result<StatusCode, Problem> {
    let dataset =
        DatasetName::new(&name).map_err(|e| Problem::bad_request("invalid-dataset", format!("dataset: {e}")))?;
    let storage = params.objects.then_some(&state.storage);
    let store = (&*state.catalog, &*state.loads, &*state.jobs);
    let dropped = match lifecycle::drop_dataset_as_job(store, storage, &dataset).await {
        Ok(dropped) => dropped,
        Err(DropError::Store(e)) => return Err(Problem::store("database", e)),
        Err(DropError::Storage(e)) => return Err(Problem::storage(e)),
    };
    if !dropped.found() {
        return Err(Problem::not_found(format!("no dataset {name:?}")));
    }
    tracing::info!(
        %dataset,
        sources = dropped.dataset.map_or(0, |d| d.sources),
        rows = dropped.dataset.map_or(0, |d| d.rows),
        objects = dropped.objects.unwrap_or(0),
        "dataset dropped"
    );
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/v1/datasets/{dataset}/sources/{source}",
    tag = "datasets",
    params(
        ("dataset" = String, Path, description = "Dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        ("source" = String, Path, description = "Source key, URL-encoded", example = "raw/roads/2026-01-02/roads.geojson"),
    ),
    responses(
        (status = 200, description = "A source not kept in object storage: its rows are removed", body = Job),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 202, description = "The object is deleted and the removal of its rows queued", body = Job,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 401, description = "A bearer token is needed", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such dataset or source", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Storage, queue or database unavailable; retry", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_source(
    State(state): State<AppState>,
    Path((name, source)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let unknown = || Problem::not_found(format!("dataset {name:?} has no source {source:?}"));
    let Ok(dataset) = DatasetName::new(&name) else { return Err(unknown()) };
    let db = |e| Problem::store("database", e);
    if state.catalog.source(&dataset, &source).await.map_err(db)?.is_none() {
        return Err(unknown());
    }
    let new = crate::jobs::requested(&dataset, &source, JobAction::Remove);
    if dataset_of(&source, &state.storage.prefix).is_ok_and(|d| d == dataset) {
        // The dataset mirrors storage: delete the object, and let the worker remove its rows
        // in line with any load of the same key still in flight.
        match state.storage.store.delete(&ObjectPath::from(source.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Problem::storage(e)),
        }
        let tag = JobTag {
            job: new.id.clone(),
            on_invalid: state.config.default_policy,
            mode: None,
            key: None,
            force: false,
            schema_policy: None,
            geometry_type: None,
            read: Default::default(),
        };
        state
            .queue
            .send(&notification(EventKind::Removed, &source, 0, Some(&tag)))
            .await
            .map_err(|e| Problem::unavailable("queue", e))?;
        let job = state.jobs.upsert_job(&new).await.map_err(db)?;
        tracing::info!(job = %job.id, dataset = %job.dataset, key = %job.source, "source deletion queued");
        return Ok(accepted(job));
    }
    // Loaded from outside object storage (`geoflow ingest` of a local file): nothing else
    // can bring it back, so its rows go now.
    let job = crate::jobs::remove_as_job(&*state.jobs, &*state.loads, &new).await.map_err(db)?;
    tracing::info!(job = %job.id, dataset = %job.dataset, key = %job.source, "source removed");
    Ok(Json(job).into_response())
}
