//! Logs to stderr: human-readable by default, JSON with `GEOFLOW_LOG_FORMAT=json`.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people reading a terminal.
    Human,
    /// One JSON object per line for log shippers: the event's fields at the top level, and the
    /// enclosing spans' fields (`request_id`, `message_id`, `job_id`) on every line.
    Json,
}

impl LogFormat {
    /// `json` (in any case) selects JSON; anything else, or no setting, the human format.
    pub fn from_setting(setting: Option<&str>) -> LogFormat {
        match setting {
            Some(s) if s.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Human,
        }
    }
}

/// Installs the global subscriber. `GEOFLOW_LOG` (or `RUST_LOG`) sets the filter; the default
/// is `info`, without the database driver's notices (`CREATE … IF NOT EXISTS` raises them).
pub fn init() {
    let filter = std::env::var("GEOFLOW_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,tokio_postgres=warn"));
    let format = LogFormat::from_setting(std::env::var("GEOFLOW_LOG_FORMAT").ok().as_deref());
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => {
            Box::new(builder.json().flatten_event(true).with_current_span(true).with_span_list(true).finish())
        }
    }
}

/// Runs `f` with its log lines (human format, `info` and above) captured: what they read, and
/// what `f` returned.
#[cfg(test)]
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (String, T) {
    let out = tests::Captured::default();
    let writer = out.clone();
    let subscriber = subscriber(LogFormat::Human, EnvFilter::new("info"), move || writer.clone());
    let value = tracing::subscriber::with_default(subscriber, f);
    let bytes = out.0.lock().unwrap().clone();
    (String::from_utf8(bytes).unwrap(), value)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn json_only_when_asked_for() {
        assert_eq!(LogFormat::from_setting(Some("json")), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("JSON")), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(None), LogFormat::Human);
        assert_eq!(LogFormat::from_setting(Some("")), LogFormat::Human);
        assert_eq!(LogFormat::from_setting(Some("text")), LogFormat::Human);
        assert_eq!(LogFormat::from_setting(Some("jsonl")), LogFormat::Human);
    }

    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_in_request_span(format: LogFormat) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(format, EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", request_id = "req-1", route = "/v1/jobs");
            let job = request.in_scope(|| tracing::info_span!("job", job_id = "job-7"));
            job.in_scope(|| tracing::info!(status = 200, "request finished"));
        });
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_carry_event_and_span_fields() {
        let out = log_in_request_span(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["message"], "request finished");
        assert_eq!(line["status"], 200);
        assert_eq!(line["span"]["job_id"], "job-7");
        assert_eq!(line["spans"][0]["request_id"], "req-1");
        assert_eq!(line["spans"][0]["route"], "/v1/jobs");
    }

    #[test]
    fn human_lines_are_not_json() {
        let out = log_in_request_span(LogFormat::Human);
        assert!(serde_json::from_str::<serde_json::Value>(out.trim()).is_err(), "{out}");
        assert!(out.contains("request finished") && out.contains("req-1"), "{out}");
    }
}
