//! A `geoflow` server process for tests that run the binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A server process, killed if the test ends without stopping it.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Runs `geoflow <args> --listen <free port>` in `dir` and waits until it is ready.
    pub async fn start(dir: &std::path::Path, args: &[&str]) -> Server {
        Server::start_with(dir, args, &[], Stdio::inherit()).await
    }

    pub async fn start_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd: Command = super::geoflow();
        let child = cmd
            .args(args)
            .args(["--listen", &addr])
            .current_dir(dir)
            // The embedded defaults and no tokens, whatever the caller's environment, unless given.
            .env_remove("GEOFLOW_STORAGE_URL")
            .env_remove("GEOFLOW_QUEUE_URL")
            .env_remove("GEOFLOW_API_TOKENS")
            .env_remove("GEOFLOW_API_TOKENS_FILE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("geoflow starts");
        let server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(server.url("/readyz")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "geoflow did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn json(&self, path: &str) -> Value {
        reqwest::get(self.url(path)).await.unwrap().json::<Value>().await.unwrap()
    }

    /// Polls a job until it is final.
    pub async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.json(&format!("/v1/jobs/{id}")).await;
            if job["finished_at"].is_string() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Peak and current resident memory, in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap()
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// SIGTERM, as a container runtime stops it; the exit status.
    pub fn terminate(mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "geoflow did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
