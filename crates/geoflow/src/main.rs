use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use geoflow::api::{self, ApiConfig, AppState, Tokens};
use geoflow::cli::{
    ApiArgs, BackendArgs, Cli, Command, DatasetsArgs, DatasetsCommand, DropArgs, HttpArgs, IngestArgs, JobsCommand,
    ReportArgs, ReportTime, ServeArgs, SourcesCommand, WorkArgs, WorkerArgs,
};
use geoflow::config::{self, DatabaseUrl, QueueUrl};
use geoflow::ingest::{self, IngestRequest, IngestSummary, Input, Progress, Status};
use geoflow::storage::{Storage, StorageUrl};
use geoflow::telemetry;
use geoflow::worker::inbox::Inbox;
use geoflow::worker::{Worker, WorkerOptions};
use geoflow::{jobs, lifecycle, reports};
use geoflow_core::dataset::{DatasetMode, FeatureKey};
use geoflow_core::reader::ReaderOptions;
use geoflow_core::report::Policy;
use geoflow_queue::Queue;
use geoflow_store::{Job, JobAction, JobQuery, Store};

/// Loads allocate and free small buffers at a high rate on every thread; mimalloc's per-thread
/// heaps take about a tenth of a load's CPU time that the system allocator spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for input that was rejected (retrying will not help).
const EXIT_REJECTED: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Worker(_) | Command::Api(_) | Command::Serve(_)) {
        // A command whose output is piped into `head` ends quietly when the reader leaves, as
        // `cat` does, rather than panicking in `println!` on the broken pipe. (Services keep
        // the default of ignoring it: their logs must never stop them.)
        // SAFETY: at start-up, before any other thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    telemetry::init();
    geoflow::metrics::install();
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
        Command::Serve(args) => run_serve(args).await,
        Command::Healthcheck { listen } => {
            Ok(if api::healthcheck(&listen).await? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Migrate(db) => {
            let store = DatabaseUrl::parse(&db.url)?.open().await?;
            store.migrate().await?;
            eprintln!("catalog of {} is up to date", store.location());
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => run_report(args).await,
        Command::Datasets(args) => run_datasets(args).await,
        Command::Sources { command } => run_sources(command).await,
        Command::Jobs { command } => run_jobs(command).await,
    }
}

async fn run_datasets(args: DatasetsArgs) -> anyhow::Result<ExitCode> {
    let list = match args.command {
        None => args.list,
        Some(DatasetsCommand::List(list)) => list,
        Some(DatasetsCommand::Drop(drop)) => return run_drop(drop).await,
    };
    let store = DatabaseUrl::parse(&list.db.url)?.open().await?;
    let datasets = store.datasets().await?;
    if list.json {
        println!("{}", serde_json::to_string_pretty(&datasets)?);
    } else {
        println!("{:<32} {:>12} {:>8}  {:<20}  extent", "dataset", "features", "sources", "geometry");
        for d in datasets {
            let extent = d.bbox.map_or("-".to_string(), |b| format!("{} {} {} {}", b.min_x, b.min_y, b.max_x, b.max_y));
            let geometry = &d.geometry_type;
            println!("{:<32} {:>12} {:>8}  {geometry:<20}  {extent}", d.name.as_str(), d.feature_count, d.sources);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_drop(args: DropArgs) -> anyhow::Result<ExitCode> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let storage = if args.objects { Some(StorageUrl::parse(&args.storage)?.open()?) } else { None };
    let dropped = lifecycle::drop_dataset_as_job((&*store, &*store, &*store), storage.as_ref(), &args.dataset).await?;
    if !dropped.found() {
        eprintln!("error: no dataset {:?}", args.dataset.as_str());
        return Ok(ExitCode::FAILURE);
    }
    match dropped.dataset {
        Some(d) => eprintln!("dropped dataset {}: {} sources, {} features", args.dataset, d.sources, d.rows),
        None => eprintln!("no dataset {} in the catalog", args.dataset),
    }
    if let Some(n) = dropped.objects {
        eprintln!("deleted {n} objects under {}/", lifecycle::objects_folder(&args.dataset));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_sources(command: SourcesCommand) -> anyhow::Result<ExitCode> {
    match command {
        SourcesCommand::List { dataset, list } => {
            let store = DatabaseUrl::parse(&list.db.url)?.open().await?;
            let sources = store.sources(&dataset).await?;
            if list.json {
                println!("{}", serde_json::to_string_pretty(&sources)?);
                return Ok(ExitCode::SUCCESS);
            }
            if sources.is_empty() && store.dataset(&dataset).await?.is_none() {
                eprintln!("error: no dataset {:?}", dataset.as_str());
                return Ok(ExitCode::FAILURE);
            }
            println!("{:<56} {:>10} {:<24}  {:<12} version", "source", "features", "loaded at", "content");
            for s in sources {
                let hash = s.version.content_hash.get(..12).unwrap_or(&s.version.content_hash);
                let version = s.version.object_version.as_deref().unwrap_or("-");
                println!("{:<56} {:>10} {:<24}  {hash:<12} {version}", s.source, s.feature_count, s.loaded_at);
            }
            Ok(ExitCode::SUCCESS)
        }
        SourcesCommand::Rm { dataset, source, db } => {
            let store = DatabaseUrl::parse(&db.url)?.open().await?;
            if store.source(&dataset, &source).await?.is_none() {
                eprintln!("error: dataset {:?} has no source {source:?}", dataset.as_str());
                return Ok(ExitCode::FAILURE);
            }
            // Recorded as a job, so that it is listed with the jobs of uploads and events.
            let new = jobs::requested(&dataset, &source, JobAction::Remove);
            let job = jobs::remove_as_job(&*store, &*store, &new).await?;
            let removed = job.result.as_ref().and_then(|r| r["removed_rows"].as_u64()).unwrap_or(0);
            eprintln!("removed source {source} from {dataset}: {removed} features (job {})", job.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_jobs(command: JobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        JobsCommand::List(args) => {
            let store = DatabaseUrl::parse(&args.list.db.url)?.open().await?;
            let query = JobQuery {
                dataset: args.dataset,
                status: args.status,
                limit: args.limit.max(1),
                ..JobQuery::default()
            };
            let jobs = store.jobs(&query).await?;
            if args.list.json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<36} {:<17} {:<6} {:<24} {:<24} source", "job", "status", "action", "dataset", "created at");
            for j in jobs {
                println!(
                    "{:<36} {:<17} {:<6} {:<24} {:<24} {}",
                    j.id,
                    j.status.as_str(),
                    j.action.as_str(),
                    j.dataset.as_str(),
                    j.created_at,
                    j.source
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { id, list } => {
            let store = DatabaseUrl::parse(&list.db.url)?.open().await?;
            let Some(job) = store.job(&id).await? else {
                eprintln!("error: no job {id:?}");
                return Ok(ExitCode::FAILURE);
            };
            if list.json {
                println!("{}", serde_json::to_string_pretty(&job)?);
            } else {
                print_job(&job)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_job(job: &Job) -> anyhow::Result<()> {
    println!("job       {}", job.id);
    println!("status    {} (attempts: {})", job.status.as_str(), job.attempts);
    println!("action    {} {} → {}", job.action.as_str(), job.source, job.dataset);
    if let Some(version) = &job.object_version {
        println!("version   {version}");
    }
    println!("created   {}", job.created_at);
    if let Some(t) = &job.started_at {
        println!("started   {t}");
    }
    if let Some(t) = &job.finished_at {
        println!("finished  {t}");
    }
    if let Some(load) = job.load_id {
        println!("load      {load}");
    }
    if let Some(error) = &job.error {
        println!("error     {error}");
    }
    match job.result.as_ref().map(|r| serde_json::from_value::<IngestSummary>(r.clone())) {
        // The report of a load, as `geoflow ingest` prints it.
        Some(Ok(summary)) => print_summary(&summary),
        Some(Err(_)) => println!("result    {}", serde_json::to_string_pretty(job.result.as_ref().unwrap())?),
        None => {}
    }
    Ok(())
}

/// The store, object storage and queue the services work with.
struct Backends {
    store: Arc<dyn Store>,
    storage: Storage,
    queue: Arc<dyn Queue>,
    visibility: Duration,
    policy: Policy,
    mode: DatasetMode,
    key: FeatureKey,
}

async fn open_backends(args: &BackendArgs) -> anyhow::Result<Backends> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let storage = StorageUrl::parse(&args.storage)?.open()?;
    let visibility = Duration::from_secs(args.visibility_timeout.max(1));
    let queue = QueueUrl::parse(&args.queue)?.open(visibility, args.max_receive_count.max(1)).await?;
    let key = FeatureKey::from_property(args.key.clone());
    Ok(Backends { store, storage, queue, visibility, policy: args.on_invalid, mode: args.mode, key })
}

fn api_config(http: &HttpArgs, listen: &str, policy: Policy) -> anyhow::Result<ApiConfig> {
    let tokens = Tokens::load(http.api_tokens.as_deref(), http.api_tokens_file.as_deref())?;
    if tokens.is_empty() {
        if http.private_reads {
            anyhow::bail!("private reads need at least one API token (GEOFLOW_API_TOKENS or GEOFLOW_API_TOKENS_FILE)");
        }
        let local = listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
        if !local {
            tracing::warn!(%listen, "no API tokens are configured: anyone who can reach this address may upload and delete");
        }
    }
    let extra_crs = config::extra_crs(&http.extra_crs)?;
    Ok(ApiConfig {
        extra_crs,
        tokens,
        private_reads: http.private_reads,
        max_upload_bytes: http.max_upload_bytes,
        request_timeout: Duration::from_secs(http.request_timeout.max(1)),
        max_concurrent_requests: http.max_concurrent_requests.max(1),
        cors_origins: http.cors_origins.clone(),
        default_policy: policy,
        max_items_limit: http.max_items_limit.max(1),
    })
}

fn worker(backends: &Backends, work: &WorkArgs) -> Worker {
    let options = WorkerOptions {
        concurrency: work.concurrency.max(1),
        visibility: backends.visibility,
        grace: Duration::from_secs(work.grace_period),
        retry_delay: Duration::from_secs(work.retry_delay),
        policy: backends.policy,
        schema_policy: work.schema_policy,
        geometry_type: work.geometry_type,
        read: work.read.clone(),
        mode: backends.mode,
        key: backends.key.clone(),
        spool_dir: work.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
        ..WorkerOptions::default()
    };
    Worker { queue: backends.queue.clone(), store: backends.store.clone(), storage: backends.storage.clone(), options }
}

/// A stop signal every part of a service waits on.
#[derive(Clone)]
struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Fires on SIGTERM or SIGINT.
    fn on_signal() -> Stop {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        Stop(rx)
    }

    fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Serves `app` on `listen` until `stop`, then lets the requests in flight finish.
async fn serve_http(listen: &str, app: axum::Router, stop: &Stop) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(listen = %listener.local_addr()?, "HTTP listening");
    let shutdown = stop.wait();
    Ok(tokio::spawn(async move {
        if let Err(e) = api::serve(listener, app, shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }))
}

/// The worker with, for a local storage folder, its inbox watcher, until `stop`.
async fn run_worker_until(backends: &Backends, work: &WorkArgs, stop: &Stop) -> anyhow::Result<()> {
    let inbox = backends.storage.local_root().map(|root| {
        let inbox =
            Inbox::new(work.inbox.clone(), root.to_path_buf(), backends.queue.clone()).with_settle(work.inbox_settle);
        tokio::spawn(inbox.run(Duration::from_secs(1), stop.wait()))
    });
    let worker = worker(backends, work);
    tracing::info!(store = %backends.store.location(), concurrency = worker.options.concurrency, "worker started");
    worker.run(stop.wait()).await?;
    if let Some(inbox) = inbox {
        let _ = inbox.await;
    }
    tracing::info!("worker stopped");
    Ok(())
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let backends = open_backends(&args.backends).await?;
    let stop = Stop::on_signal();
    let health = match &args.listen {
        Some(listen) => {
            let state = AppState::new(
                backends.store.clone(),
                backends.storage.clone(),
                backends.queue.clone(),
                ApiConfig::default(),
            );
            Some(serve_http(listen, api::health_router(state), &stop).await?)
        }
        None => None,
    };
    run_worker_until(&backends, &args.work, &stop).await?;
    if let Some(health) = health {
        let _ = health.await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the backends and serves the API on them until `stop`.
async fn start_api(args: &ApiArgs, stop: &Stop) -> anyhow::Result<(Backends, tokio::task::JoinHandle<()>)> {
    let backends = open_backends(&args.backends).await?;
    let config = api_config(&args.http, &args.listen, backends.policy)?;
    let state = AppState::new(backends.store.clone(), backends.storage.clone(), backends.queue.clone(), config);
    config::check_store_serves(&*backends.store, &state.crs).await?;
    let http = serve_http(&args.listen, api::router(state), stop).await?;
    Ok((backends, http))
}

async fn run_api(args: ApiArgs) -> anyhow::Result<ExitCode> {
    let stop = Stop::on_signal();
    let (backends, http) = start_api(&args, &stop).await?;
    tracing::info!(store = %backends.store.location(), storage = %args.backends.storage, "API started");
    http.await?;
    tracing::info!("API stopped");
    Ok(ExitCode::SUCCESS)
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let stop = Stop::on_signal();
    let (backends, http) = start_api(&args.api, &stop).await?;
    eprintln!(
        "geoflow {} serving http://{} (API docs at /docs); data in {}",
        env!("CARGO_PKG_VERSION"),
        args.api.listen,
        backends.store.location()
    );
    let reports = match args.report_at {
        ReportTime::Daily(at) => {
            let (store, storage) = (backends.store.clone(), backends.storage.clone());
            Some(tokio::spawn(reports::schedule::run(store, storage, at, stop.wait())))
        }
        ReportTime::Off => None,
    };
    run_worker_until(&backends, &args.work, &stop).await?;
    let _ = http.await;
    if let Some(reports) = reports {
        let _ = reports.await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let store = DatabaseUrl::parse(&args.db.url)?.open().await?;
    let storage = StorageUrl::parse(&args.storage)?.open()?;
    let now = time::OffsetDateTime::now_utc();
    let date = args.date.unwrap_or_else(|| reports::yesterday(now));
    let (report, key) = reports::publish(&*store, &storage, date, now).await?;
    let t = &report.activity.totals;
    eprintln!(
        "report of {} written to {key}: {} loads succeeded, {} failed, {} skipped as duplicates; {} features loaded",
        report.date, t.loads.succeeded, t.loads.failed, t.loads.skipped_duplicate, t.features.loaded
    );
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
    let mut req = IngestRequest::new(Input::from_arg(&args.path), args.dataset.clone());
    req.source = args.source.clone();
    req.policy = args.on_invalid;
    req.schema_policy = args.schema_policy;
    req.geometry_type = args.geometry_type;
    req.mode = args.mode;
    req.key = FeatureKey::from_property(args.key.clone());
    req.force = args.force;
    req.read.limits = ReaderOptions { max_feature_bytes: args.max_feature_bytes, ..ReaderOptions::default() };
    args.read.apply(&mut req.read);
    req.max_issues = args.max_errors;
    if let Some(w) = args.workers {
        req.workers = w.max(1);
    }
    let requests = if args.layers_as_datasets {
        match layer_requests(&req) {
            Ok(requests) => requests,
            Err((code, why)) => {
                eprintln!("error: {}: {why}", args.path.display());
                return Ok(code);
            }
        }
    } else {
        vec![req]
    };
    let mut worst = ExitCode::SUCCESS;
    for req in requests {
        let progress = Arc::new(Progress::default());
        let bar = (!args.no_progress && !args.json && std::io::stderr().is_terminal())
            .then(|| spawn_progress_bar(progress.clone()));
        // Recorded as a job, so that it is listed with the jobs of uploads and events.
        let job_id = uuid::Uuid::new_v4().to_string();
        let (job, summary) = jobs::ingest_as_job(store.clone(), job_id, req, progress).await?;
        if let Some((bar, task)) = bar {
            task.abort();
            bar.finish_and_clear();
        }
        if args.json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            print_summary(&summary);
            println!("job {} ({}): geoflow jobs show {}", job.id, job.status.as_str(), job.id);
        }
        match summary.status {
            Status::Loaded | Status::Unchanged | Status::Superseded => {}
            Status::Rejected if worst == ExitCode::SUCCESS => worst = ExitCode::from(EXIT_REJECTED),
            Status::Rejected => {}
            Status::Failed => worst = ExitCode::FAILURE,
        }
    }
    Ok(worst)
}

/// One request per layer of the file `req` reads, each into the dataset named after it.
/// A file that cannot be read is a failure (exit 1), as in a single load; one whose layers
/// cannot be split is the input's fault (rejected).
fn layer_requests(req: &IngestRequest) -> Result<Vec<IngestRequest>, (ExitCode, String)> {
    let rejected = |why: String| (ExitCode::from(EXIT_REJECTED), why);
    let Input::Path(path) = &req.input else {
        return Err(rejected("a file's layers are split from a file, not from standard input".to_string()));
    };
    let layers = geoflow_formats::layers(path).map_err(|e| match e {
        geoflow_formats::ReadError::Io(io) => (ExitCode::FAILURE, format!("cannot read it: {io}")),
        other => rejected(other.to_string()),
    })?;
    let datasets = ingest::layer_datasets(&req.dataset, &layers).map_err(rejected)?;
    Ok(datasets
        .into_iter()
        .map(|(layer, dataset)| {
            let mut one = req.clone();
            one.dataset = dataset;
            one.read.layer = Some(layer);
            one
        })
        .collect())
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
        Status::Superseded => println!(
            "{} → {}: superseded — nothing was changed: {}",
            s.source,
            s.dataset,
            s.error.as_deref().unwrap_or("a newer version is in storage")
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
        println!("  {}: {} [{}, {:?}]", issue.which(), issue.reason, issue.code, issue.action);
    }
    if s.issue_total > s.errors.len() as u64 {
        println!("  … and {} more", s.issue_total - s.errors.len() as u64);
    }
}
