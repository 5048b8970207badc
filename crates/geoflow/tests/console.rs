//! The web console (`/console`) of a real `geoflow serve` with a token and private reads: its
//! files are served to anyone with their content types and caching, and a headless Chromium
//! driven by Playwright (tests/console/e2e.py) uses every view — token prompt, upload with
//! progress, datasets, live jobs with the validation report, reports, and the map drawn from
//! vector tiles with a feature inspector. Screenshots of each view are kept in
//! `$CARGO_TARGET_DIR/console-screenshots/`.
//!
//! Needs Chromium (`apt-get install chromium`; `GEOFLOW_CHROMIUM` to use another) and Python
//! with Playwright (`python3 -m venv /var/tmp/geoflow-playwright-venv &&
//! /var/tmp/geoflow-playwright-venv/bin/pip install playwright`; `GEOFLOW_PLAYWRIGHT_PYTHON`
//! names another); without them the browser test says so and skips, unless
//! `GEOFLOW_REQUIRE_TOOLS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::server::Server;

const TOKEN: &str = "console-e2e-token-0123456789abcdef";

/// `geoflow serve` with a token and private reads.
async fn start(dir: &Path) -> Server {
    let env = [
        ("GEOFLOW_API_TOKENS", TOKEN),
        ("GEOFLOW_API_PRIVATE_READS", "true"),
        // The test writes the day's report itself, while the page watches.
        ("GEOFLOW_REPORT_AT", "off"),
    ];
    Server::start_with(dir, &["serve"], &env, Stdio::inherit()).await
}

/// The console's files need no token, even when reads are private; the API still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_files_are_public_with_types_and_caching() {
    let dir = support::scratch();
    let server = start(dir.path()).await;
    let get = |path: &str| reqwest::get(server.url(path));

    for path in ["/console", "/console/"] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(page.headers()["cache-control"], "no-cache");
        assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
        let html = page.text().await.unwrap();
        assert!(html.contains("/console/app.js") && !html.contains("https://"), "{html}");
    }
    let expect = [
        ("/console/app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/console/views/map.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/console/console.css", "text/css; charset=utf-8", "no-cache"),
        ("/console/favicon.svg", "image/svg+xml", "no-cache"),
        ("/console/vendor/maplibre-gl/maplibre-gl.mjs", "text/javascript; charset=utf-8", "public, max-age=86400"),
        // MapLibre asks for its worker beside itself, with its version as a query.
        (
            "/console/vendor/maplibre-gl/maplibre-gl-worker.mjs?v=6.17.0",
            "text/javascript; charset=utf-8",
            "public, max-age=86400",
        ),
        ("/console/vendor/maplibre-gl/maplibre-gl.css", "text/css; charset=utf-8", "public, max-age=86400"),
    ];
    for (path, content_type, cache) in expect {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], content_type, "{path}");
        assert_eq!(r.headers()["cache-control"], cache, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        let etag = r.headers()["etag"].clone();
        let again = reqwest::Client::new().get(server.url(path)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let missing = get("/console/nope.js").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    assert_eq!(get("/v1/datasets").await.unwrap().status(), 401, "reads stay private");
}

/// Where screenshots are kept after the test: `$CARGO_TARGET_DIR/console-screenshots`, else
/// `target/console-screenshots` beside the test binary.
fn kept_screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        // …/target/debug/geoflow
        Path::new(env!("CARGO_BIN_EXE_geoflow")).ancestors().nth(2).unwrap().to_path_buf()
    });
    target.join("console-screenshots")
}

/// Skips (with the reason printed) or, under `GEOFLOW_REQUIRE_TOOLS=1`, fails.
fn missing(what: &str) {
    if std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("GEOFLOW_REQUIRE_TOOLS=1 but {what}");
    }
    eprintln!("skipped: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_works_in_a_headless_browser() {
    let chromium = std::env::var("GEOFLOW_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return missing(&format!("Chromium is not installed at {chromium} (apt-get install chromium)"));
    }
    let python = std::env::var("GEOFLOW_PLAYWRIGHT_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/geoflow-playwright-venv/bin/python".into());
    let usable = Command::new(&python)
        .args(["-c", "import playwright.sync_api"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        return missing(&format!("Playwright for Python is not installed at {python} (set GEOFLOW_PLAYWRIGHT_PYTHON)"));
    }
    let Some(shared) = support::shared_dir() else { return };
    let countries = shared.join("data/naturalearth/ne_110m_admin_0_countries.geojson");
    assert!(countries.is_file(), "missing {}", countries.display());

    let dir = support::scratch();
    let server = start(dir.path()).await;
    let shots = dir.path().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/e2e.py");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script)
        .env("GEOFLOW_URL", server.url(""))
        .env("GEOFLOW_TOKEN", TOKEN)
        .env("GEOFLOW_UPLOAD_FILE", &countries)
        .env("GEOFLOW_SCREENSHOTS", &shots)
        .env("GEOFLOW_CHROMIUM", &chromium)
        .env("GEOFLOW_BIN", env!("CARGO_BIN_EXE_geoflow"))
        .env("GEOFLOW_DATA", dir.path().join("geoflow-data"))
        .kill_on_drop(true);
    let run = tokio::time::timeout(Duration::from_secs(600), cmd.output()).await;

    // The screenshots outlive the temporary directory, whatever the outcome.
    let keep = kept_screenshots();
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::create_dir_all(&keep).unwrap();
    let mut kept = Vec::new();
    for entry in std::fs::read_dir(&shots).unwrap().flatten() {
        std::fs::copy(entry.path(), keep.join(entry.file_name())).unwrap();
        kept.push(entry.file_name().to_string_lossy().into_owned());
    }
    kept.sort();
    eprintln!("screenshots in {}: {}", keep.display(), kept.join(", "));

    let out = run.expect("the browser test finished within 10 minutes").expect("python runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "the console's browser test failed:\n{stdout}{stderr}");
    for view in ["01-token", "02-upload", "03-datasets", "05-jobs", "06-reports", "07-map"] {
        assert!(kept.iter().any(|k| k == &format!("{view}.png")), "no screenshot of {view}: {kept:?}");
    }
}
