//! A PostgreSQL/PostGIS server for tests, and a fresh database for each test.
//!
//! The first call of [`postgis_database`] in a test process starts a throwaway cluster
//! (`initdb` + `pg_ctl start` in a temporary directory, listening on a free port of
//! 127.0.0.1, with durability turned off) and prepares a template database that already has
//! PostGIS. Every call then creates a new database from that template. The cluster is stopped
//! (`pg_ctl stop -m immediate`) and its directory removed when the process exits.
//!
//! With `GEOFLOW_TEST_DATABASE_URL` set, that server is used instead: fresh databases are
//! created on it (and dropped again when the [`TestDatabase`] is dropped).
//!
//! When the server binaries or PostGIS are missing, [`postgis_database`] prints
//! `skipped: <reason>` and returns `None`, unless `CI=true` or `GEOFLOW_REQUIRE_TOOLS=1`,
//! in which case it panics with the reason.
//!
//! [`moto_server`] does the same for a moto server (S3, SQS and other AWS APIs): see [`moto`].

pub mod moto;

pub use moto::{moto_server, unique_name, MotoServer};

use std::ffi::CString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio_postgres::NoTls;

/// Name of the template database that has PostGIS installed.
pub const TEMPLATE_DATABASE: &str = "geoflow_test_template";

/// Environment variable naming an existing server to use instead of a throwaway cluster.
pub const DATABASE_URL_ENV: &str = "GEOFLOW_TEST_DATABASE_URL";

/// A database created for one test.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    drop_on_exit: bool,
    tls_ca: Option<PathBuf>,
}

impl TestDatabase {
    /// `postgres://…` URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PEM file of the CA that signed the server's certificate (issued to `localhost`),
    /// when the server speaks TLS: true of the throwaway cluster where `openssl` is installed.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// URL of the maintenance database of the same server.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.drop_on_exit {
            return;
        }
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        // Drop may run inside a runtime: do the work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let client = connect(&admin).await.ok()?;
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&name))).await.ok()
            })
        })
        .join();
    }
}

/// Whether missing tools must fail the tests instead of skipping them.
pub fn require_tools() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("GEOFLOW_REQUIRE_TOOLS").is_ok_and(|v| v == "1" || v == "true")
}

/// Reports a missing tool: returns `None` after printing `skipped: <reason>`, or panics
/// when tools are required.
pub fn skip<T>(reason: &str) -> Option<T> {
    if require_tools() {
        panic!("required test tool missing: {reason}");
    }
    eprintln!("skipped: {reason}");
    println!("skipped: {reason}");
    None
}

/// A fresh database with PostGIS, or `None` (after printing why) when no server is available.
pub async fn postgis_database() -> Option<TestDatabase> {
    let server = match server() {
        Ok(s) => s,
        Err(reason) => return skip(reason),
    };
    let name = format!("geoflow_test_{}_{}", std::process::id(), NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    let admin = connect(&server.admin_url).await.unwrap_or_else(|e| panic!("connecting to the test server: {e}"));
    // CREATE DATABASE … TEMPLATE fails while another session is connected to the template
    // (another test process preparing it): retry a while.
    let sql = format!("CREATE DATABASE {} TEMPLATE {}", quote(&name), quote(TEMPLATE_DATABASE));
    let mut attempt = 0;
    loop {
        match admin.batch_execute(&sql).await {
            Ok(()) => break,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating test database {name}: {e}"),
        }
    }
    Some(TestDatabase {
        url: server.url_for(&name),
        admin_url: server.admin_url.clone(),
        name,
        drop_on_exit: server.external,
        tls_ca: server.tls_ca.clone(),
    })
}

static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

/// The server tests use, prepared once per process.
#[derive(Debug)]
struct Server {
    /// URL of the maintenance database (`postgres`).
    admin_url: String,
    external: bool,
    tls_ca: Option<PathBuf>,
}

impl Server {
    fn url_for(&self, database: &str) -> String {
        replace_database(&self.admin_url, database)
    }
}

fn server() -> Result<&'static Server, &'static str> {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            // Preparing needs async IO; run it on a runtime of its own so that it works from
            // any test runtime (and without blocking one that has a single thread).
            std::thread::spawn(|| {
                let server = match std::env::var(DATABASE_URL_ENV) {
                    Ok(url) if !url.is_empty() => {
                        Server { admin_url: replace_database(&url, "postgres"), external: true, tls_ca: None }
                    }
                    _ => start_cluster()?,
                };
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build a runtime: {e}"))?;
                rt.block_on(prepare_template(&server.admin_url))?;
                Ok(server)
            })
            .join()
            .unwrap_or_else(|_| Err("preparing the test server panicked".to_string()))
        })
        .as_ref()
        .map_err(String::as_str)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Creates the template database with PostGIS unless it exists.
async fn prepare_template(admin_url: &str) -> Result<(), String> {
    let admin = connect(admin_url).await.map_err(|e| format!("cannot connect to the test server: {e}"))?;
    let available = admin
        .query_opt("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'", &[])
        .await
        .map_err(|e| format!("cannot query the test server: {e}"))?
        .is_some();
    if !available {
        return Err("PostGIS is not installed on the test server (install postgresql-15-postgis-3)".into());
    }
    // Serialise template creation across test processes sharing a server.
    admin.batch_execute("SELECT pg_advisory_lock(7428190315)").await.map_err(|e| e.to_string())?;
    let result = async {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&TEMPLATE_DATABASE])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if exists {
            return Ok(());
        }
        let building = format!("{TEMPLATE_DATABASE}_building");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&building)))
            .await
            .map_err(|e| e.to_string())?;
        admin.batch_execute(&format!("CREATE DATABASE {}", quote(&building))).await.map_err(|e| e.to_string())?;
        {
            let db = connect(&replace_database(admin_url, &building)).await.map_err(|e| e.to_string())?;
            db.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis")
                .await
                .map_err(|e| format!("cannot create the PostGIS extension: {e}"))?;
        }
        // The connection closes asynchronously; renaming waits for it to go.
        for attempt in 0.. {
            let sql = format!(
                "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} WITH IS_TEMPLATE true",
                quote(&building),
                quote(TEMPLATE_DATABASE),
                quote(TEMPLATE_DATABASE)
            );
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("cannot finish the template database: {e}")),
            }
        }
        Ok::<(), String>(())
    }
    .await;
    let _ = admin.batch_execute("SELECT pg_advisory_unlock(7428190315)").await;
    result
}

/// `"name"` with embedded quotes doubled.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The URL with its database (path) replaced.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// The running throwaway cluster, stopped at process exit.
struct Cluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    /// Removed at exit (after the server stops).
    root: PathBuf,
    as_postgres: bool,
}

static CLUSTER: Mutex<Option<Cluster>> = Mutex::new(None);

extern "C" fn stop_cluster_at_exit() {
    let cluster = match CLUSTER.lock() {
        Ok(mut c) => c.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(c) = cluster {
        let data = c.data.display().to_string();
        let _ = run(&c.pg_ctl, &["stop", "-D", &data, "-m", "immediate", "-w"], c.as_postgres);
        let _ = std::fs::remove_dir_all(&c.root);
    }
}

/// Stops the cluster also when the test process dies without running its exit handlers
/// (killed by a signal): a shell polls the process and stops the server once it is gone.
fn spawn_watchdog(pg_ctl: &Path, data: &Path, root: &Path, as_postgres: bool) {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 1; done
        if [ "$5" = 1 ]; then
            runuser -u postgres -- "$2" stop -D "$3" -m immediate -w >/dev/null 2>&1
        else
            "$2" stop -D "$3" -m immediate -w >/dev/null 2>&1
        fi
        rm -rf "$4"
    "#;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("geoflow-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(pg_ctl)
        .arg(data)
        .arg(root)
        .arg(if as_postgres { "1" } else { "0" })
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("no watchdog for the test server ({e}): it is stopped at normal exit only");
    }
}

/// The directory with `initdb` and `pg_ctl`: `GEOFLOW_PG_BIN`, `pg_config --bindir`, or the
/// newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("GEOFLOW_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| has_tools(d));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d): &(u32, PathBuf)| has_tools(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

fn run(program: &Path, args: &[&str], as_postgres: bool) -> std::io::Result<Output> {
    if as_postgres {
        Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(program).args(args).output()
    } else {
        Command::new(program).args(args).output()
    }
}

fn describe(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

/// Uid and gid of the `postgres` system user.
fn postgres_user() -> Option<(libc::uid_t, libc::gid_t)> {
    let name = CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; it is read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: checked non-null above.
    let pw = unsafe { &*pw };
    Some((pw.pw_uid, pw.pw_gid))
}

fn chown(path: &Path, uid: libc::uid_t, gid: libc::gid_t) -> Result<(), String> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
        return Err(format!("cannot chown {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes a CA and a server certificate for `localhost` signed by it (with `openssl`), puts
/// the server's in the data directory, and returns the CA's PEM file.
fn certificates(root: &Path, data: &Path, as_postgres: bool) -> Result<PathBuf, String> {
    let dir = root.join("tls");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let openssl = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("openssl {} failed: {}", args[0], describe(&out)))
        }
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3",
        "-subj",
        "/CN=geoflow test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n")
        .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ])?;
    for file in ["server.pem", "server.key"] {
        let target = data.join(file);
        std::fs::copy(dir.join(file), &target).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if as_postgres {
            let (uid, gid) = postgres_user().ok_or("no postgres user")?;
            chown(&target, uid, gid)?;
        }
    }
    Ok(dir.join("ca.pem"))
}

fn start_cluster() -> Result<Server, String> {
    let bin = find_bin_dir().ok_or("PostgreSQL server binaries (initdb, pg_ctl) not found")?;
    // SAFETY: geteuid has no preconditions.
    let as_postgres = unsafe { libc::geteuid() } == 0;
    let root = tempfile::Builder::new()
        .prefix("geoflow-pg-")
        .tempdir()
        .map_err(|e| format!("cannot create a temp dir: {e}"))?
        .keep();
    let data = root.join("data");
    let socket_dir = root.join("socket");
    std::fs::create_dir_all(&socket_dir).map_err(|e| format!("cannot create {}: {e}", socket_dir.display()))?;
    if as_postgres {
        let (uid, gid) = postgres_user().ok_or("running as root and there is no postgres user to run initdb as")?;
        chown(&root, uid, gid)?;
        chown(&socket_dir, uid, gid)?;
    }
    let data_s = data.display().to_string();
    let out = run(
        &bin.join("initdb"),
        &["-D", &data_s, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
        as_postgres,
    )
    .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&root);
        return Err(format!("initdb failed: {}", describe(&out)));
    }
    let tls_ca = match certificates(&root, &data, as_postgres) {
        Ok(ca) => Some(ca),
        Err(reason) => {
            eprintln!("the test server runs without TLS: {reason}");
            None
        }
    };
    let tls_options =
        if tls_ca.is_some() { " -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key" } else { "" };
    let pg_ctl = bin.join("pg_ctl");
    let log = root.join("server.log").display().to_string();
    let mut last_error = String::new();
    for _ in 0..5 {
        let port = free_port()?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB \
             -c max_wal_size=2GB{tls_options}",
            socket_dir.display()
        );
        let out = run(&pg_ctl, &["start", "-D", &data_s, "-l", &log, "-w", "-t", "60", "-o", &options], as_postgres)
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() {
            *CLUSTER.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Cluster { pg_ctl: pg_ctl.clone(), data: data.clone(), root: root.clone(), as_postgres });
            // SAFETY: registers a plain extern "C" function.
            unsafe { libc::atexit(stop_cluster_at_exit) };
            spawn_watchdog(&pg_ctl, &data, &root, as_postgres);
            return Ok(Server {
                admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                external: false,
                tls_ca,
            });
        }
        last_error =
            format!("{}\n{}", describe(&out), std::fs::read_to_string(root.join("server.log")).unwrap_or_default());
        // A failed start may leave a server half up: make sure it is gone before retrying.
        let _ = run(&pg_ctl, &["stop", "-D", &data_s, "-m", "immediate", "-w"], as_postgres);
    }
    let _ = std::fs::remove_dir_all(&root);
    Err(format!("pg_ctl start failed: {last_error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_in_urls_is_replaced() {
        assert_eq!(replace_database("postgres://u:p@h:5/a", "b"), "postgres://u:p@h:5/b");
        assert_eq!(replace_database("postgres://h", "b"), "postgres://h/b");
        assert_eq!(replace_database("postgres://h/a?sslmode=disable", "b"), "postgres://h/b?sslmode=disable");
    }
}
