//! The daily report inside `geoflow serve`: at a set UTC time of day, the previous day's
//! report is written. (In AWS, EventBridge Scheduler runs `geoflow report` as a task instead.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::{OffsetDateTime, Time};

use geoflow_store::Store;

use super::{format_date, key, publish, yesterday};
use crate::storage::Storage;

/// How long a failed run waits before it tries again (until the day's next run is due).
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// The first instant after `now` whose UTC time of day is `at`.
pub fn next_run(now: OffsetDateTime, at: Time) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    let today = now.date().with_time(at).assume_utc();
    if today > now {
        today
    } else {
        today + time::Duration::DAY
    }
}

/// Whether a run was due since `at` today and its report is not there: a process that was
/// down at report time writes it when it starts.
async fn missed(storage: &Storage, now: OffsetDateTime, at: Time) -> bool {
    let now = now.to_offset(time::UtcOffset::UTC);
    if now.time() < at {
        return false;
    }
    match storage.head(&key(storage, yesterday(now))).await {
        Ok(found) => found.is_none(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether yesterday's report exists: writing it");
            true
        }
    }
}

/// Writes the previous day's report daily at `at` (UTC) until `stop`.
pub async fn run(store: Arc<dyn Store>, storage: Storage, at: Time, stop: impl Future<Output = ()>) {
    let work = async {
        let mut due = missed(&storage, OffsetDateTime::now_utc(), at).await;
        loop {
            if !due {
                let wait = next_run(OffsetDateTime::now_utc(), at) - OffsetDateTime::now_utc();
                tokio::time::sleep(wait.try_into().unwrap_or(Duration::ZERO)).await;
            }
            let now = OffsetDateTime::now_utc();
            let date = yesterday(now);
            match publish(&*store, &storage, date, now).await {
                Ok((_, key)) => {
                    tracing::info!(date = %format_date(date), %key, "daily report written");
                    due = false;
                }
                Err(e) => {
                    tracing::error!(date = %format_date(date), error = %format!("{e:#}"), "daily report failed");
                    let retry = OffsetDateTime::now_utc() + RETRY_AFTER;
                    // Retry until the next run is due, which covers the same need.
                    due = retry < next_run(now, at);
                    if due {
                        tokio::time::sleep(RETRY_AFTER).await;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = stop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, time};

    #[test]
    fn the_next_run_is_today_or_tomorrow() {
        assert_eq!(next_run(datetime!(2026-03-10 00:10 UTC), time!(00:15)), datetime!(2026-03-10 00:15 UTC));
        assert_eq!(next_run(datetime!(2026-03-10 00:15 UTC), time!(00:15)), datetime!(2026-03-11 00:15 UTC));
        assert_eq!(next_run(datetime!(2026-12-31 23:00 UTC), time!(00:15)), datetime!(2027-01-01 00:15 UTC));
        // Other offsets count in UTC.
        assert_eq!(next_run(datetime!(2026-03-10 01:00 +2), time!(00:15)), datetime!(2026-03-10 00:15 UTC));
    }
}
