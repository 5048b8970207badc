//! Reads and writes of `geoflow.jobs`.
//!
//! Job statements are single-row and autocommitted: they take no dataset lock, so they run
//! while loads are in progress, and concurrent updates of one job queue on its row lock.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use geoflow_core::dataset::DatasetName;

use super::catalog::RFC3339;
use super::{Ctx, PostgisStore};
use crate::{Job, JobAction, JobQuery, JobStatus, JobUpdate, JobUpdateParams, NewJob, StoreError};

/// The columns [`job_of`] reads, timestamps rendered as RFC 3339 UTC.
fn columns() -> String {
    let ts = |c: &str| format!("to_char({c} AT TIME ZONE 'UTC', {RFC3339})");
    format!(
        "id, dataset, source_key, action, status, object_version, attempts, load_id, error, result::text, {}, {}, {}, {}",
        ts("created_at"),
        ts("updated_at"),
        ts("started_at"),
        ts("finished_at")
    )
}

fn job_of(store: &PostgisStore, r: &Row) -> Result<Job, StoreError> {
    let id: String = r.get(0);
    let corrupt = |reason: String| StoreError::Incompatible { location: store.location.clone(), reason };
    let dataset: String = r.get(1);
    let dataset = DatasetName::new(&dataset).map_err(|e| corrupt(format!("job {id:?}: {e}")))?;
    let action: String = r.get(3);
    let action = JobAction::parse(&action).ok_or_else(|| corrupt(format!("job {id:?} has action {action:?}")))?;
    let status: String = r.get(4);
    let status = JobStatus::parse(&status).ok_or_else(|| corrupt(format!("job {id:?} has status {status:?}")))?;
    let result = match r.get::<_, Option<String>>(9) {
        Some(text) => {
            Some(serde_json::from_str(&text).map_err(|e| corrupt(format!("job {id:?} has a bad result: {e}")))?)
        }
        None => None,
    };
    Ok(Job {
        dataset,
        source: r.get(2),
        action,
        status,
        object_version: r.get(5),
        attempts: u32::try_from(r.get::<_, i32>(6).max(0)).unwrap_or(0),
        load_id: r.get(7),
        error: r.get(8),
        result,
        created_at: r.get(10),
        updated_at: r.get(11),
        started_at: r.get(12),
        finished_at: r.get(13),
        id,
    })
}

pub async fn job(store: &PostgisStore, client: &impl GenericClient, id: &str) -> Result<Option<Job>, StoreError> {
    let row = client
        .query_opt(&format!("SELECT {} FROM geoflow.jobs WHERE id = $1", columns()), &[&id])
        .await
        .ctx(store, "reading a job")?;
    row.map(|r| job_of(store, &r)).transpose()
}

pub async fn upsert(store: &PostgisStore, client: &impl GenericClient, new: &NewJob) -> Result<Job, StoreError> {
    let inserted = client
        .query_opt(
            &format!(
                "INSERT INTO geoflow.jobs (id, dataset, source_key, action, status, object_version, created_at,
                   updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING {}",
                columns()
            ),
            &[
                &new.id,
                &new.dataset.as_str(),
                &new.source,
                &new.action.as_str(),
                &JobStatus::Queued.as_str(),
                &new.object_version,
                &store.now(),
            ],
        )
        .await
        .ctx(store, "creating a job")?;
    if let Some(r) = inserted {
        return job_of(store, &r);
    }
    // The job existed (a conflicting insert waits for the other's commit, so it is visible
    // to this next statement).
    job(store, client, &new.id).await?.ok_or_else(|| StoreError::NotFound { what: "job", id: new.id.clone() })
}

pub async fn update(
    store: &PostgisStore,
    client: &impl GenericClient,
    id: &str,
    update: &JobUpdate,
) -> Result<Job, StoreError> {
    let JobUpdateParams { status, running, finished, set_error, error, result } = update.params()?;
    // One statement computes the new state from the stored one under the row lock, so
    // concurrent updates of a job never lose an attempt.
    let row = client
        .query_opt(
            &format!(
                "UPDATE geoflow.jobs SET
                   status = coalesce($2::text, status),
                   attempts = attempts + CASE WHEN $3::boolean THEN 1 ELSE 0 END,
                   started_at = CASE WHEN $3::boolean THEN coalesce(started_at, $9) ELSE started_at END,
                   finished_at = CASE $4::boolean WHEN true THEN $9 WHEN false THEN NULL
                                 ELSE finished_at END,
                   load_id = coalesce($5::bigint, load_id),
                   error = CASE WHEN $6::boolean THEN $7::text ELSE error END,
                   result = coalesce($8::text::jsonb, result),
                   updated_at = $9
                 WHERE id = $1
                 RETURNING {}",
                columns()
            ),
            &[&id, &status, &running, &finished, &update.load_id, &set_error, &error, &result, &store.now()],
        )
        .await
        .ctx(store, "updating a job")?;
    match row {
        Some(r) => job_of(store, &r),
        None => Err(StoreError::NotFound { what: "job", id: id.to_string() }),
    }
}

pub async fn list(store: &PostgisStore, client: &impl GenericClient, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
    let dataset = query.dataset.as_ref().map(DatasetName::as_str);
    let status = query.status.map(JobStatus::as_str);
    let limit = i64::try_from(query.effective_limit()).unwrap_or(i64::MAX);
    // timestamptz holds microseconds (and the driver would truncate finer bounds).
    let (since, until) = query.time_bounds(time::Duration::MICROSECOND)?;
    // Conditions are fixed text, chosen by which filters are present, so that each query
    // shape can use its index; values are always parameters.
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&limit];
    if let Some(dataset) = &dataset {
        params.push(dataset);
        conditions.push(format!("dataset = ${}", params.len()));
    }
    if let Some(status) = &status {
        params.push(status);
        conditions.push(format!("status = ${}", params.len()));
    }
    if let Some(before) = &query.before {
        let cursor =
            client.query_opt("SELECT 1 FROM geoflow.jobs WHERE id = $1", &[before]).await.ctx(store, "listing jobs")?;
        if cursor.is_none() {
            return Err(StoreError::Invalid(format!("the cursor {before:?} names no job")));
        }
        params.push(before);
        let p = params.len();
        conditions.push(format!("(created_at, id) < (SELECT created_at, id FROM geoflow.jobs WHERE id = ${p})"));
    }
    if let Some(since) = &since {
        params.push(since);
        conditions.push(format!("created_at >= ${}", params.len()));
    }
    if let Some(until) = &until {
        params.push(until);
        conditions.push(format!("created_at < ${}", params.len()));
    }
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let rows = client
        .query(
            &format!("SELECT {} FROM geoflow.jobs {filter} ORDER BY created_at DESC, id DESC LIMIT $1", columns()),
            &params,
        )
        .await
        .ctx(store, "listing jobs")?;
    rows.iter().map(|r| job_of(store, r)).collect()
}
