//! Prometheus metrics: every name, label and bucket in one place, and the process-wide recorder
//! that `GET /metrics` renders. Call [`install`] at startup: anything recorded before it is lost.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use geoflow_store::{JobAction, JobStatus};
use metrics::{counter, gauge, histogram, Gauge, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS_TOTAL: &str = "geoflow_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "geoflow_http_request_duration_seconds";
pub const JOBS_TOTAL: &str = "geoflow_jobs_total";
pub const FEATURES_LOADED_TOTAL: &str = "geoflow_features_loaded_total";
pub const LOAD_DURATION_SECONDS: &str = "geoflow_load_duration_seconds";
pub const QUEUE_RECEIVE_LAG_SECONDS: &str = "geoflow_queue_receive_lag_seconds";
pub const LOADS_IN_FLIGHT: &str = "geoflow_loads_in_flight";
pub const REPORTS_TOTAL: &str = "geoflow_reports_total";

/// API calls are catalog reads: milliseconds normally, seconds when the database struggles.
const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Loads range from a small file in well under a second to a large one taking most of an hour.
const LOAD_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];
/// Sub-second when keeping up; minutes to hours with a backlog, retries (up to 15 min apart) or
/// a dead-letter redrive.
const LAG_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

/// Without buckets a histogram renders as a summary, which cannot be aggregated across workers.
const HISTOGRAMS: [(&str, &[f64]); 3] = [
    (HTTP_REQUEST_DURATION_SECONDS, HTTP_BUCKETS),
    (LOAD_DURATION_SECONDS, LOAD_BUCKETS),
    (QUEUE_RECEIVE_LAG_SECONDS, LAG_BUCKETS),
];

/// How often histogram samples are folded into their buckets: without it, a process nobody
/// scrapes keeps every sample in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder on the first call; later calls (and other tests in the same
/// process) get the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = builder().unwrap_or_else(|e| {
            tracing::error!(error = %e, "histogram buckets rejected: histograms render as summaries");
            PrometheusBuilder::new()
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
            return handle;
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no metrics upkeep thread: histograms are folded only on scrapes");
        }
        handle
    })
}

/// The Prometheus text exposition of everything recorded so far.
pub fn render() -> String {
    install().render()
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    HISTOGRAMS.into_iter().try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets)
    })
}

/// `# HELP` lines, so that a scrape explains itself.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS_TOTAL, Unit::Count, "HTTP requests answered, by method, route and status.");
    describe_histogram!(HTTP_REQUEST_DURATION_SECONDS, Unit::Seconds, "Time to answer an HTTP request.");
    describe_counter!(JOBS_TOTAL, Unit::Count, "Jobs finished, by action and outcome.");
    describe_counter!(FEATURES_LOADED_TOTAL, Unit::Count, "Features written by successful loads, by dataset.");
    describe_histogram!(LOAD_DURATION_SECONDS, Unit::Seconds, "Time to bring a dataset in line with one object.");
    describe_histogram!(QUEUE_RECEIVE_LAG_SECONDS, Unit::Seconds, "Time from a message's sending to this receipt.");
    describe_gauge!(LOADS_IN_FLIGHT, Unit::Count, "Queue messages being handled now.");
    describe_counter!(REPORTS_TOTAL, Unit::Count, "Daily report runs, by outcome (written or failed).");
}

/// Methods outside the standard set share one label value, so that clients cannot invent series.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];
    KNOWN.into_iter().find(|known| *known == method).unwrap_or("other")
}

/// One answered HTTP request. `route` must be a route pattern, never a raw path.
pub fn http_request(method: &'static str, route: String, status: u16, took: Duration) {
    counter!(HTTP_REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route).record(took.as_secs_f64());
}

/// One job reaching its final status after `took` of work.
pub fn job_finished(action: JobAction, outcome: JobStatus, took: Duration) {
    counter!(JOBS_TOTAL, "action" => action.as_str(), "outcome" => outcome.as_str()).increment(1);
    histogram!(LOAD_DURATION_SECONDS, "action" => action.as_str()).record(took.as_secs_f64());
}

pub fn features_loaded(dataset: &str, count: u64) {
    counter!(FEATURES_LOADED_TOTAL, "dataset" => dataset.to_string()).increment(count);
}

/// One receipt of a message sent at `sent_at` (when the queue says). A sender clock ahead of
/// ours counts as no lag.
pub fn message_received(sent_at: Option<SystemTime>) {
    if let Some(sent_at) = sent_at {
        let lag = SystemTime::now().duration_since(sent_at).unwrap_or_default();
        histogram!(QUEUE_RECEIVE_LAG_SECONDS).record(lag.as_secs_f64());
    }
}

/// One daily report run, written or failed.
pub fn report_run(written: bool) {
    counter!(REPORTS_TOTAL, "outcome" => if written { "written" } else { "failed" }).increment(1);
}

/// Counts a message in `geoflow_loads_in_flight` until dropped, so that early returns and
/// panics count it out too.
#[must_use = "the message counts as in flight only while this guard lives"]
pub struct InFlight(Gauge);

impl InFlight {
    pub fn start() -> InFlight {
        let gauge = gauge!(LOADS_IN_FLIGHT);
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent() {
        assert!(std::ptr::eq(install(), install()));
    }

    #[test]
    fn buckets_are_accepted() {
        assert!(builder().is_ok());
    }

    #[test]
    fn worker_metrics_render_with_buckets() {
        install();
        job_finished(JobAction::Remove, JobStatus::SkippedDuplicate, Duration::from_millis(30));
        features_loaded("metrics_test", 7);
        message_received(Some(SystemTime::now() - Duration::from_secs(2)));
        drop(InFlight::start());
        let text = render();
        assert!(text.contains(r#"geoflow_jobs_total{action="remove",outcome="skipped-duplicate"}"#), "{text}");
        assert!(text.contains(r#"geoflow_features_loaded_total{dataset="metrics_test"} 7"#), "{text}");
        assert!(text.contains(r#"geoflow_load_duration_seconds_bucket{action="remove",le="0.1"}"#), "{text}");
        assert!(text.contains(r#"geoflow_queue_receive_lag_seconds_bucket{le="2.5"}"#), "{text}");
        assert!(text.contains("geoflow_loads_in_flight"), "{text}");
        assert!(text.contains("# HELP geoflow_jobs_total"), "{text}");
    }

    #[test]
    fn odd_methods_share_a_label() {
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("BREW"), "other");
    }
}
