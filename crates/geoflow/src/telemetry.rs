//! Logs to stderr: human-readable by default, JSON with `GEOFLOW_LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `GEOFLOW_LOG` (or `RUST_LOG`) sets the filter; the default
/// is `info`, without the database driver's notices (`CREATE … IF NOT EXISTS` raises them).
pub fn init() {
    let filter = std::env::var("GEOFLOW_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,tokio_postgres=warn"));
    let json = std::env::var("GEOFLOW_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
