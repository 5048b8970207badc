//! Reads and writes of `geoflow_jobs`.
//!
//! Job writes take SQLite's write lock like any other write, so while a load holds it (for
//! the whole load: one transaction) they wait, up to [`super::BUSY_TIMEOUT`], and then fail
//! with a transient [`StoreError::Database`] ("database is locked"). They cannot deadlock: a
//! job write holds no lock while it waits, and a load never waits for a job write. Reads
//! (`job`, `jobs`, and `upsert_job` of a job that exists) never wait: WAL readers see the
//! last commit.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use geoflow_core::dataset::DatasetName;

use super::{to_rfc3339, Ctx};
use crate::{Job, JobAction, JobQuery, JobStatus, JobUpdate, JobUpdateParams, NewJob, StoreError};

const COLUMNS: &str = "id, dataset, source_key, action, status, object_version, attempts, load_id, error, result_json,
   created_at, updated_at, started_at, finished_at";

fn corrupt(reason: String) -> StoreError {
    StoreError::Incompatible { location: "geoflow_jobs".into(), reason }
}

/// The raw columns of a row, checked once the statement is done.
struct Raw {
    id: String,
    dataset: String,
    source: String,
    action: String,
    status: String,
    object_version: Option<String>,
    attempts: i64,
    load_id: Option<i64>,
    error: Option<String>,
    result: Option<String>,
    created_at: String,
    updated_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: r.get(0)?,
        dataset: r.get(1)?,
        source: r.get(2)?,
        action: r.get(3)?,
        status: r.get(4)?,
        object_version: r.get(5)?,
        attempts: r.get(6)?,
        load_id: r.get(7)?,
        error: r.get(8)?,
        result: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

impl Raw {
    fn into_job(self) -> Result<Job, StoreError> {
        let dataset = DatasetName::new(&self.dataset).map_err(|e| corrupt(format!("job {:?}: {e}", self.id)))?;
        let action = JobAction::parse(&self.action)
            .ok_or_else(|| corrupt(format!("job {:?} has action {:?}", self.id, self.action)))?;
        let status = JobStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("job {:?} has status {:?}", self.id, self.status)))?;
        let result = match self.result {
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| corrupt(format!("job {:?} has a bad result: {e}", self.id)))?,
            ),
            None => None,
        };
        Ok(Job {
            id: self.id,
            dataset,
            source: self.source,
            action,
            status,
            object_version: self.object_version,
            attempts: u32::try_from(self.attempts.max(0)).unwrap_or(u32::MAX),
            load_id: self.load_id,
            error: self.error,
            result,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
        })
    }
}

pub fn job(conn: &Connection, id: &str) -> Result<Option<Job>, StoreError> {
    let raw = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM geoflow_jobs WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], raw).optional())
        .ctx("reading a job")?;
    raw.map(Raw::into_job).transpose()
}

pub fn upsert(conn: &mut Connection, new: &NewJob, now: &str) -> Result<Job, StoreError> {
    // A redelivered event finds its job without taking the write lock (which a load may hold).
    if let Some(existing) = job(conn, &new.id)? {
        return Ok(existing);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("creating a job")?;
    tx.prepare_cached(
        "INSERT INTO geoflow_jobs (id, dataset, source_key, action, status, object_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
         ON CONFLICT (id) DO NOTHING",
    )
    .and_then(|mut s| {
        s.execute(params![
            new.id,
            new.dataset.as_str(),
            new.source,
            new.action.as_str(),
            JobStatus::Queued.as_str(),
            new.object_version,
            now,
        ])
    })
    .ctx("creating a job")?;
    let created = job(&tx, &new.id)?.ok_or_else(|| StoreError::NotFound { what: "job", id: new.id.clone() })?;
    tx.commit().ctx("creating a job")?;
    Ok(created)
}

pub fn update(conn: &mut Connection, id: &str, update: &JobUpdate, now: &str) -> Result<Job, StoreError> {
    let JobUpdateParams { status, running, finished, set_error, error, result } = update.params()?;
    // One statement computes the new state from the stored one, so concurrent updates of a
    // job never lose an attempt; IMMEDIATE takes the write lock up front (waiting on the
    // busy timeout) rather than failing to upgrade a read.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("updating a job")?;
    let raw = tx
        .prepare_cached(&format!(
            "UPDATE geoflow_jobs SET
               status = coalesce(?2, status),
               attempts = attempts + ?3,
               started_at = CASE WHEN ?3 THEN coalesce(started_at, ?9) ELSE started_at END,
               finished_at = CASE ?4 WHEN 1 THEN ?9 WHEN 0 THEN NULL ELSE finished_at END,
               load_id = coalesce(?5, load_id),
               error = CASE WHEN ?6 THEN ?7 ELSE error END,
               result_json = coalesce(?8, result_json),
               updated_at = ?9
             WHERE id = ?1
             RETURNING {COLUMNS}"
        ))
        .and_then(|mut s| {
            s.query_row(params![id, status, running, finished, update.load_id, set_error, error, result, now], raw)
                .optional()
        })
        .ctx("updating a job")?;
    let Some(raw) = raw else {
        return Err(StoreError::NotFound { what: "job", id: id.to_string() });
    };
    tx.commit().ctx("updating a job")?;
    raw.into_job()
}

pub fn list(conn: &Connection, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
    // `created_at` is text of millisecond precision: the bounds become the same text, so that
    // they compare as the times they stand for.
    let (since, until) = query.time_bounds(time::Duration::MILLISECOND)?;
    let since = since.map(to_rfc3339).transpose()?;
    let until = until.map(to_rfc3339).transpose()?;
    if let Some(before) = &query.before {
        let known: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM geoflow_jobs WHERE id = ?1)", [before], |r| r.get(0))
            .ctx("listing jobs")?;
        if !known {
            return Err(StoreError::Invalid(format!("the cursor {before:?} names no job")));
        }
    }
    let limit = i64::try_from(query.effective_limit()).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM geoflow_jobs
             WHERE (?1 IS NULL OR dataset = ?1) AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR (created_at, id) < (SELECT created_at, id FROM geoflow_jobs WHERE id = ?3))
               AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)
             ORDER BY created_at DESC, id DESC
             LIMIT ?4"
        ))
        .ctx("listing jobs")?;
    let rows = stmt
        .query_map(
            params![
                query.dataset.as_ref().map(DatasetName::as_str),
                query.status.map(JobStatus::as_str),
                query.before,
                limit,
                since,
                until
            ],
            raw,
        )
        .ctx("listing jobs")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("listing jobs")?;
    rows.into_iter().map(Raw::into_job).collect()
}
