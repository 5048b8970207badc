//! An in-memory jobs catalog: the [`Jobs`] role without a database, keeping the same contract
//! as the stores (the store contract tests run against it too). The API's tests use it to
//! answer as a store would, and to make a store fail with any class of error on demand.

use std::sync::Mutex;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::{Clock, Job, JobQuery, JobStatus, JobUpdate, Jobs, NewJob, StoreError, SystemClock};

/// Jobs held in memory, with an error to answer the next call with, when a test sets one.
#[derive(Debug, Default)]
pub struct MemoryJobs {
    jobs: Mutex<Vec<Job>>,
    next_error: Mutex<Option<StoreError>>,
}

impl MemoryJobs {
    pub fn new() -> MemoryJobs {
        MemoryJobs::default()
    }

    /// The next call (of any method) fails with `error`; the ones after it work again.
    pub fn fail_next(&self, error: StoreError) {
        *lock(&self.next_error) = Some(error);
    }

    fn check(&self) -> Result<(), StoreError> {
        match lock(&self.next_error).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now, at the millisecond precision the stores keep.
fn now() -> Result<String, StoreError> {
    crate::gpkg::to_rfc3339(SystemClock.now())
}

fn instant(text: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Internal(format!("a stored time {text:?} does not parse: {e}")))
}

#[async_trait]
impl Jobs for MemoryJobs {
    async fn upsert_job(&self, job: &NewJob) -> Result<Job, StoreError> {
        self.check()?;
        let mut jobs = lock(&self.jobs);
        if let Some(existing) = jobs.iter().find(|j| j.id == job.id) {
            return Ok(existing.clone());
        }
        let at = now()?;
        let created = Job {
            id: job.id.clone(),
            dataset: job.dataset.clone(),
            source: job.source.clone(),
            action: job.action,
            status: JobStatus::Queued,
            object_version: job.object_version.clone(),
            attempts: 0,
            load_id: None,
            error: None,
            result: None,
            created_at: at.clone(),
            updated_at: at,
            started_at: None,
            finished_at: None,
        };
        jobs.push(created.clone());
        Ok(created)
    }

    async fn update_job(&self, id: &str, update: JobUpdate) -> Result<Job, StoreError> {
        self.check()?;
        let params = update.params()?;
        let mut jobs = lock(&self.jobs);
        let job = jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| StoreError::NotFound { what: "job", id: id.to_string() })?;
        let at = now()?;
        if let Some(status) = update.status {
            job.status = status;
        }
        if params.running {
            job.attempts += 1;
            job.started_at.get_or_insert_with(|| at.clone());
        }
        match params.finished {
            Some(true) => job.finished_at = Some(at.clone()),
            Some(false) => job.finished_at = None,
            None => {}
        }
        if let Some(load_id) = update.load_id {
            job.load_id = Some(load_id);
        }
        if let Some(error) = update.error {
            job.error = error;
        }
        if let Some(result) = update.result {
            job.result = Some(result);
        }
        job.updated_at = at;
        Ok(job.clone())
    }

    async fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        self.check()?;
        Ok(lock(&self.jobs).iter().find(|j| j.id == id).cloned())
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Vec<Job>, StoreError> {
        self.check()?;
        let (since, until) = query.time_bounds(Duration::MILLISECOND)?;
        let jobs = lock(&self.jobs);
        let key = |j: &Job| instant(&j.created_at).map(|t| (t, j.id.clone()));
        let before = match &query.before {
            None => None,
            Some(cursor) => match jobs.iter().find(|j| &j.id == cursor) {
                Some(j) => Some(key(j)?),
                None => return Err(StoreError::Invalid(format!("the cursor {cursor:?} names no job"))),
            },
        };
        let mut listed = Vec::new();
        for job in jobs.iter() {
            let (created, id) = key(job)?;
            let keep = query.dataset.as_ref().is_none_or(|d| *d == job.dataset)
                && query.status.is_none_or(|s| s == job.status)
                && since.is_none_or(|t| created >= t)
                && until.is_none_or(|t| created < t)
                && before.as_ref().is_none_or(|b| (created, id) < *b);
            if keep {
                listed.push((created, job.clone()));
            }
        }
        listed.sort_by(|(a, ja), (b, jb)| (b, &jb.id).cmp(&(a, &ja.id)));
        Ok(listed.into_iter().take(query.effective_limit()).map(|(_, j)| j).collect())
    }
}
