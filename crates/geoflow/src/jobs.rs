//! The jobs of loads: how a load's end is recorded on its job. One rule for every job that
//! loads, the worker's (one per storage event) and those of direct loads (`geoflow ingest`).

use std::sync::Arc;

use geoflow_core::dataset::DatasetName;
use geoflow_store::{Job, JobAction, JobStatus, JobUpdate, Jobs, Loads, NewJob, RemovalCause, Store, StoreError};

use crate::ingest::{ingest, IngestRequest, IngestSummary, Progress, Status};

/// The final status of the job of a load that ended with `status`.
pub fn job_status(status: Status) -> JobStatus {
    match status {
        Status::Loaded => JobStatus::Succeeded,
        Status::Unchanged => JobStatus::SkippedDuplicate,
        Status::Superseded => JobStatus::Superseded,
        Status::Rejected | Status::Failed => JobStatus::Failed,
    }
}

/// The update that finishes the job of a load: its final status, its load, its error, and the
/// summary (the validation report) as its result. A superseded load is no error: its reason
/// is in the summary.
pub fn finished_load(summary: &IngestSummary) -> JobUpdate {
    let status = job_status(summary.status);
    let error = if status == JobStatus::Superseded { None } else { summary.error.clone() };
    JobUpdate {
        status: Some(status),
        load_id: summary.load_id,
        error: Some(error),
        result: Some(serde_json::to_value(summary).unwrap_or_default()),
    }
}

/// A new job for a change someone asked for (not a storage event's, whose job id the event
/// gives): a fresh id, no object version.
pub fn requested(dataset: &DatasetName, source: &str, action: JobAction) -> NewJob {
    let id = uuid::Uuid::new_v4().to_string();
    NewJob { id, dataset: dataset.clone(), source: source.to_string(), action, object_version: None }
}

/// The removal of a source that no storage event brings (asked through the API or the CLI)
/// recorded as the job `new`: it runs while the rows go, and ends with how many went, or with
/// the error.
pub async fn remove_as_job(jobs: &dyn Jobs, loads: &dyn Loads, new: &NewJob) -> Result<Job, StoreError> {
    jobs.upsert_job(new).await?;
    let running = JobUpdate { status: Some(JobStatus::Running), ..JobUpdate::default() };
    jobs.update_job(&new.id, running).await?;
    let done = match loads.remove_source(&new.dataset, &new.source, None, RemovalCause::Request).await {
        Ok(removal) => JobUpdate {
            status: Some(JobStatus::Succeeded),
            result: Some(serde_json::json!({ "removed_rows": removal.rows, "schema_changes": removal.schema_changes })),
            ..JobUpdate::default()
        },
        Err(e) => {
            let failed =
                JobUpdate { status: Some(JobStatus::Failed), error: Some(Some(e.to_string())), ..JobUpdate::default() };
            if let Err(record) = jobs.update_job(&new.id, failed).await {
                tracing::warn!(job = %new.id, error = %record, "could not record the failed removal");
            }
            return Err(e);
        }
    };
    jobs.update_job(&new.id, done).await
}

/// A direct load (of a file or stdin) recorded as a job `job_id`, so that it is listed with
/// the jobs of uploads and storage events: the job runs while the load does and ends as the
/// worker ends the job of an event. Errors only when the store refuses the job or the load
/// could not even be recorded; a job that could not be finished is logged.
pub async fn ingest_as_job(
    store: Arc<dyn Store>,
    job_id: String,
    request: IngestRequest,
    progress: Arc<Progress>,
) -> anyhow::Result<(Job, IngestSummary)> {
    let new = NewJob {
        id: job_id,
        dataset: request.dataset.clone(),
        source: request.source_key(),
        action: JobAction::Load,
        object_version: request.object_version.clone(),
    };
    store.upsert_job(&new).await?;
    let running = JobUpdate { status: Some(JobStatus::Running), ..JobUpdate::default() };
    let job = store.update_job(&new.id, running).await?;
    let end = ingest(store.clone(), request, progress).await;
    let update = match &end {
        Ok(summary) => finished_load(summary),
        Err(e) => {
            JobUpdate { status: Some(JobStatus::Failed), error: Some(Some(format!("{e:#}"))), ..JobUpdate::default() }
        }
    };
    let job = match store.update_job(&new.id, update).await {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(job = %new.id, error = %e, "could not record the end of the load's job");
            job
        }
    };
    Ok((job, end?))
}
