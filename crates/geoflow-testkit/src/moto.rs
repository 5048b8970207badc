//! A moto server (AWS APIs in one local process: S3, SQS, …) for tests.
//!
//! The first call of [`moto_server`] in a test process starts `moto_server` on a free port of
//! 127.0.0.1; later calls share it. It is killed when the process exits, or by a watchdog
//! when the process dies without running its exit handlers. Tests keep out of each other's
//! way by giving their buckets and queues unique names ([`unique_name`]).
//!
//! The binary is `GEOFLOW_MOTO_SERVER`, else `moto_server` on `PATH`, else
//! [`DEFAULT_MOTO_SERVER`] (`python3 -m venv /var/tmp/geoflow-venv &&
//! /var/tmp/geoflow-venv/bin/pip install 'moto[server]' boto3` installs it there). When it is
//! missing, [`moto_server`] prints `skipped: <reason>` and returns `None`, unless tools are
//! required (`CI=true` or `GEOFLOW_REQUIRE_TOOLS=1`), in which case it panics.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

use crate::{free_port, skip};

/// Environment variable naming the `moto_server` executable.
pub const MOTO_SERVER_ENV: &str = "GEOFLOW_MOTO_SERVER";

/// Where the CI script installs moto.
pub const DEFAULT_MOTO_SERVER: &str = "/var/tmp/geoflow-venv/bin/moto_server";

/// The region the server is addressed in.
pub const REGION: &str = "us-east-1";

/// The running moto server of this test process.
#[derive(Debug, Clone)]
pub struct MotoServer {
    endpoint_url: String,
}

impl MotoServer {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// An AWS SDK configuration pointing at this server: region `us-east-1` and fixed test
    /// credentials (moto accepts any). For S3 clients also set `force_path_style(true)`.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint_url)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "geoflow-testkit",
            ))
            .load()
            .await
    }

    /// An SQS client for this server.
    pub async fn sqs_client(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    /// Creates a queue named `name` with a dead-letter queue `<name>-dlq`: the main queue has
    /// the given visibility timeout and a redrive policy moving a message to the dead-letter
    /// queue once it was received more than `max_receive_count` times. Returns the URLs of the
    /// queue and of its dead-letter queue. Panics when moto refuses (a broken test setup).
    pub async fn create_queue_with_dlq(
        &self,
        name: &str,
        visibility_timeout: Duration,
        max_receive_count: u32,
    ) -> SqsQueueUrls {
        let client = self.sqs_client().await;
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating queue {name}-dlq on moto: {e:?}"));
        let dlq_url = dlq.queue_url.unwrap_or_default();
        let attributes = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("reading the ARN of {name}-dlq on moto: {e:?}"));
        let dlq_arn = attributes
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_else(|| panic!("moto gave no ARN for {name}-dlq"));
        let redrive = format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#);
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_timeout.as_secs().to_string())
            .attributes(QueueAttributeName::RedrivePolicy, redrive)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating queue {name} on moto: {e:?}"));
        SqsQueueUrls { queue_url: queue.queue_url.unwrap_or_default(), dlq_url }
    }
}

/// URLs of a queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct SqsQueueUrls {
    pub queue_url: String,
    pub dlq_url: String,
}

/// A name no other test of any process uses: `<prefix>-<pid>-<n>` (valid for queues and
/// buckets as long as `prefix` is lowercase).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The moto server of this test process, started on first use; `None` (after printing why)
/// when moto is not installed.
pub async fn moto_server() -> Option<MotoServer> {
    static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();
    // Starting blocks for a second or two: keep it off the test's runtime threads.
    let result = SERVER.get_or_init(|| {
        std::thread::spawn(start).join().unwrap_or_else(|_| Err("starting moto_server panicked".to_string()))
    });
    match result {
        Ok(server) => Some(server.clone()),
        Err(reason) => skip(reason),
    }
}

/// The `moto_server` executable to run.
fn find_binary() -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    };
    if let Some(path) = std::env::var_os(MOTO_SERVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if executable(&path) {
            Ok(path)
        } else {
            Err(format!("{MOTO_SERVER_ENV}={} is not an executable file", path.display()))
        };
    }
    if let Some(found) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("moto_server"))
        .find(|p| executable(p))
    {
        return Ok(found);
    }
    let default = PathBuf::from(DEFAULT_MOTO_SERVER);
    if executable(&default) {
        return Ok(default);
    }
    Err(format!(
        "moto_server not found (set {MOTO_SERVER_ENV}, put it on PATH, or run: python3 -m venv /var/tmp/geoflow-venv \
         && /var/tmp/geoflow-venv/bin/pip install 'moto[server]' boto3)"
    ))
}

/// The server process, killed at exit.
static CHILD: Mutex<Option<Child>> = Mutex::new(None);

extern "C" fn kill_at_exit() {
    let child = match CHILD.lock() {
        Ok(mut c) => c.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Kills the server also when the test process dies without running its exit handlers.
fn spawn_watchdog(server_pid: u32) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        kill -9 "$2" 2>/dev/null
    "#;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("geoflow-testkit-moto-watchdog")
        .arg(std::process::id().to_string())
        .arg(server_pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("no watchdog for moto_server ({e}): it is stopped at normal exit only");
    }
}

fn start() -> Result<MotoServer, String> {
    let binary = find_binary()?;
    let log = tempfile::Builder::new()
        .prefix("geoflow-moto-")
        .suffix(".log")
        .tempfile()
        .map_err(|e| format!("cannot create a log file for moto_server: {e}"))?;
    let mut last_error = String::new();
    // A port found free may be taken before moto binds it: try a few.
    for _ in 0..5 {
        let port = free_port()?;
        let log_file = log.reopen().map_err(|e| format!("cannot open the moto_server log: {e}"))?;
        let stderr = log_file.try_clone().map_err(|e| format!("cannot open the moto_server log: {e}"))?;
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        let outcome = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(format!("moto_server exited with {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break Err("moto_server did not listen within 60 s".to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match outcome {
            Ok(()) => {
                let pid = child.id();
                *CHILD.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
                // SAFETY: registers a plain extern "C" function.
                unsafe { libc::atexit(kill_at_exit) };
                spawn_watchdog(pid);
                return Ok(MotoServer { endpoint_url: format!("http://{addr}") });
            }
            Err(e) => {
                let output = std::fs::read_to_string(log.path()).unwrap_or_default();
                last_error = format!("{e}: {}", output.trim());
            }
        }
    }
    Err(format!("cannot start moto_server: {last_error}"))
}
