use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use geoflow::api::{self, AppState};
use geoflow::cli::{ApiArgs, Cli, Command, IngestArgs, WorkerArgs};
use geoflow::config::{DatabaseUrl, QueueUrl};
use geoflow::ingest::{ingest, IngestRequest, IngestSummary, Input, Progress, Status};
use geoflow::storage::StorageUrl;
use geoflow::telemetry;
use geoflow::worker::inbox::Inbox;
use geoflow::worker::{Worker, WorkerOptions};
use geoflow_core::reader::ReaderOptions;

/// Exit status for input that was rejected (retrying will not help).
const EXIT_REJECTED: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Ingest(args) => run_ingest(args).await,
        Command::Worker(args) => run_worker(args).await,
        Command::Api(args) => run_api(args).await,
        Command::Healthcheck { listen } => {
            Ok(if api::healthcheck(&listen).await? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Migrate(db) => {
            let store = DatabaseUrl::parse(&db.url)?.open().await?;
            store.migrate().await?;
            eprintln!("catalog of {} is up to date", store.location());
            Ok(ExitCode::SUCCESS)
        }
        Command::Datasets { db, json } => {
            let store = DatabaseUrl::parse(&db.url)?.open().await?;
            let datasets = store.datasets().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&datasets)?);
            } else {
                println!("{:<32} {:>12} {:>8}  extent", "dataset", "features", "sources");
                for d in datasets {
                    let extent =
                        d.bbox.map_or("-".to_string(), |b| format!("{} {} {} {}", b.min_x, b.min_y, b.max_x, b.max_y));
                    println!("{:<32} {:>12} {:>8}  {extent}", d.name.as_str(), d.feature_count, d.sources);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let storage = StorageUrl::parse(&args.storage)?.open()?;
    let visibility = Duration::from_secs(args.visibility_timeout.max(1));
    let queue = QueueUrl::parse(&args.queue)?.open(visibility, args.max_receive_count.max(1)).await?;
    let options = WorkerOptions {
        concurrency: args.concurrency.max(1),
        visibility,
        grace: Duration::from_secs(args.grace_period),
        retry_delay: Duration::from_secs(args.retry_delay),
        policy: args.on_invalid,
        spool_dir: args.spool_dir.unwrap_or_else(std::env::temp_dir),
        ..WorkerOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let inbox = storage.local_root().map(|root| {
        let inbox = Inbox::new(args.inbox.clone(), root.to_path_buf(), queue.clone());
        tokio::spawn(inbox.run(Duration::from_secs(1), stopped(stop_rx.clone())))
    });
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let health = match &args.listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
            let app = api::health_router(AppState { store: store.clone(), storage: storage.clone() });
            let shutdown = stopped(stop_rx.clone());
            Some(tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(shutdown).await }))
        }
        None => None,
    };
    tracing::info!(store = %store.location(), storage = %args.storage, concurrency = options.concurrency, "worker started");
    let worker = Worker { queue, store, storage, options };
    worker.run(stopped(stop_rx)).await?;
    if let Some(inbox) = inbox {
        let _ = inbox.await;
    }
    if let Some(health) = health {
        let _ = health.await;
    }
    tracing::info!("worker stopped");
    Ok(ExitCode::SUCCESS)
}

async fn run_api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let storage = StorageUrl::parse(&args.storage)?.open()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(listen = %listener.local_addr()?, store = %store.location(), "API started");
    axum::serve(listener, api::router(AppState { store, storage })).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("API stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (what container runtimes send) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run_ingest(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let mut req = IngestRequest::new(Input::from_arg(&args.path), args.dataset);
    req.source = args.source;
    req.policy = args.on_invalid;
    req.reader = ReaderOptions { max_feature_bytes: args.max_feature_bytes, ..ReaderOptions::default() };
    req.max_issues = args.max_errors;
    if let Some(w) = args.workers {
        req.workers = w.max(1);
    }
    let progress = Arc::new(Progress::default());
    let bar = (!args.no_progress && !args.json && std::io::stderr().is_terminal())
        .then(|| spawn_progress_bar(progress.clone()));
    let summary = ingest(store, req, progress).await?;
    if let Some((bar, task)) = bar {
        task.abort();
        bar.finish_and_clear();
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(match summary.status {
        Status::Loaded | Status::Unchanged => ExitCode::SUCCESS,
        Status::Rejected => ExitCode::from(EXIT_REJECTED),
        Status::Failed => ExitCode::FAILURE,
    })
}

fn spawn_progress_bar(progress: Arc<Progress>) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>7} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            b.set_length(progress.total_bytes.load(Ordering::Relaxed));
            b.set_position(progress.bytes.load(Ordering::Relaxed));
            let pass = progress.pass.load(Ordering::Relaxed);
            b.set_prefix(if pass == 2 { "loading" } else { "scanning" });
            if pass == 2 {
                let n = progress.features.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!("{n} features, {rate:.0} features/s"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (bar, task)
}

fn print_summary(s: &IngestSummary) {
    let secs = s.duration_ms as f64 / 1000.0;
    match s.status {
        Status::Unchanged => println!("{} → {}: unchanged (this content is already loaded)", s.source, s.dataset),
        Status::Loaded => println!(
            "{} → {}: loaded {} of {} features ({} invalid: {} repaired, {} skipped) in {secs:.2} s",
            s.source, s.dataset, s.features_loaded, s.features_read, s.invalid, s.repaired, s.skipped
        ),
        Status::Rejected | Status::Failed => println!(
            "{} → {}: {} — nothing was changed: {}",
            s.source,
            s.dataset,
            if s.status == Status::Rejected { "rejected" } else { "failed" },
            s.error.as_deref().unwrap_or("unknown error")
        ),
    }
    for issue in &s.errors {
        let id = issue.id.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default();
        println!("  feature {}{id}: {} [{}, {:?}]", issue.index, issue.reason, issue.code, issue.action);
    }
    if s.issue_total > s.errors.len() as u64 {
        println!("  … and {} more", s.issue_total - s.errors.len() as u64);
    }
}
