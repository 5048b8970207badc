//! Daily reports: what the pipeline did on one UTC day, computed by the store from its
//! catalog and written whole to `reports/<YYYY-MM-DD>.json` in object storage.
//!
//! A report is a pure function of the catalog's history and the date, `generated_at` aside:
//! running it again for a past day (reprocessing) replaces the object with the same numbers.
//! It is computed before anything is written, and written in one PUT, so a run that fails
//! leaves the previous report as it was and readers never see half a report.

pub mod schedule;

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use geoflow_store::report::{Window, WindowActivity};
use geoflow_store::Store;

use crate::storage::Storage;

/// Version of the report's layout; `docs/report.schema.json` describes it.
pub const SCHEMA_VERSION: u32 = 1;

/// Folder of the reports in object storage.
pub const FOLDER: &str = "reports";

/// `YYYY-MM-DD`.
const DATE_FORMAT: &[time::format_description::FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// The span of catalog time a report covers, RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportWindow {
    /// The day's first instant (included).
    pub start: String,
    /// The next day's first instant (excluded).
    pub end: String,
}

/// A daily report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub schema_version: u32,
    /// The UTC day, `YYYY-MM-DD`.
    pub date: String,
    pub window: ReportWindow,
    /// When this report was computed (the only part that changes when it is recomputed).
    pub generated_at: String,
    #[serde(flatten)]
    pub activity: WindowActivity,
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<Date, String> {
    Date::parse(text, DATE_FORMAT).map_err(|_| format!("{text:?} is not a date of the form YYYY-MM-DD"))
}

pub fn format_date(date: Date) -> String {
    date.format(DATE_FORMAT).expect("dates format as YYYY-MM-DD")
}

/// The day a report runs for by default: yesterday, UTC.
pub fn yesterday(now: OffsetDateTime) -> Date {
    let today = now.to_offset(time::UtcOffset::UTC).date();
    today.previous_day().unwrap_or(today)
}

/// The key of a day's report.
pub fn key(storage: &Storage, date: Date) -> String {
    storage.key(&format!("{FOLDER}/{}.json", format_date(date)))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC instants format as RFC 3339")
}

/// Computes the report of `date` (the UTC day) from the store's catalog.
pub async fn compute(store: &dyn Store, date: Date, now: OffsetDateTime) -> anyhow::Result<Report> {
    let start = date.midnight().assume_utc();
    let window = Window { start, end: start + time::Duration::DAY };
    let activity = store
        .activity(window)
        .await
        .with_context(|| format!("computing the report of {} from {}", format_date(date), store.location()))?;
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        date: format_date(date),
        window: ReportWindow { start: rfc3339(window.start), end: rfc3339(window.end) },
        generated_at: rfc3339(now.to_offset(time::UtcOffset::UTC)),
        activity,
    })
}

/// Computes the report of `date` and writes it, replacing any earlier one. Returns the
/// report and its key.
pub async fn publish(
    store: &dyn Store,
    storage: &Storage,
    date: Date,
    now: OffsetDateTime,
) -> anyhow::Result<(Report, String)> {
    let written = write(store, storage, date, now).await;
    crate::metrics::report_run(written.is_ok());
    written
}

async fn write(
    store: &dyn Store,
    storage: &Storage,
    date: Date,
    now: OffsetDateTime,
) -> anyhow::Result<(Report, String)> {
    let report = compute(store, date, now).await?;
    let mut body = serde_json::to_vec_pretty(&report).context("encoding the report")?;
    body.push(b'\n');
    let key = key(storage, date);
    storage
        .put_whole(&key, Bytes::from(body), "application/json")
        .await
        .with_context(|| format!("writing the report to {key}"))?;
    Ok((report, key))
}

/// The days that have a report, newest first.
pub async fn dates(storage: &Storage) -> anyhow::Result<Vec<Date>> {
    let keys = storage.list_keys(FOLDER).await.context("listing the reports")?;
    let mut dates: Vec<Date> = keys
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.strip_suffix(".json"))
        .filter_map(|d| parse_date(d).ok())
        .collect();
    dates.sort_unstable_by(|a, b| b.cmp(a));
    Ok(dates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(format_date(parse_date("2026-03-10").unwrap()), "2026-03-10");
        for bad in ["2026-3-10", "2026-02-30", "20260310", "2026-03-10T00:00:00Z", "", "yesterday"] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_day_is_yesterday_in_utc() {
        assert_eq!(format_date(yesterday(datetime!(2026-03-01 00:00 UTC))), "2026-02-28");
        // 01:00 on the 1st at UTC+2 is still the 28th in UTC.
        assert_eq!(format_date(yesterday(datetime!(2026-03-01 01:00 +2))), "2026-02-27");
    }
}
