//! The embedded deployment's bucket notifications: a watched inbox folder.
//!
//! A file dropped at `inbox/<dataset>/<name>` is moved into the object folder at
//! `raw/<dataset>/<YYYY-MM-DD>/<name>` and an `ObjectCreated` event for it is enqueued — what
//! S3 and its notifications do in production. A file is taken once it has stopped changing
//! between two scans, so one still being copied in is left alone; names starting with `.` or
//! ending in `.part`/`.tmp` are never taken.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use geoflow_core::dataset::DatasetName;
use geoflow_queue::Queue;

use crate::events::{notification, EventKind};

/// Watches one inbox folder.
#[derive(Debug)]
pub struct Inbox {
    pub dir: PathBuf,
    /// The local object folder that uploads move into (same filesystem: a rename).
    pub objects: PathBuf,
    pub queue: Arc<dyn Queue>,
    /// Size and modification time of each candidate at the previous scan.
    seen: std::collections::HashMap<PathBuf, (u64, SystemTime)>,
}

impl Inbox {
    pub fn new(dir: PathBuf, objects: PathBuf, queue: Arc<dyn Queue>) -> Inbox {
        Inbox { dir, objects, queue, seen: Default::default() }
    }

    /// Scans every `interval` until `shutdown` completes.
    pub async fn run(mut self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.scan().await {
                tracing::warn!(inbox = %self.dir.display(), error = format!("{e:#}"), "inbox scan failed");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One scan: moves and announces every file that has been still since the last scan.
    /// Returns the keys announced.
    pub async fn scan(&mut self) -> anyhow::Result<Vec<String>> {
        let (dir, seen) = (self.dir.clone(), std::mem::take(&mut self.seen));
        let (ready, still_changing) = tokio::task::spawn_blocking(move || candidates(&dir, &seen)).await??;
        self.seen = still_changing;
        let mut announced = Vec::new();
        for (path, dataset, name, size) in ready {
            let key = format!("raw/{dataset}/{}/{name}", today());
            let target = self.objects.join(&key);
            let from = path.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::create_dir_all(target.parent().expect("a key has folders"))?;
                std::fs::rename(&from, &target)?;
                // Stamped as S3 stamps an upload: when it arrived, not when it was written
                // (what orders the objects of a dataset in replace mode).
                std::fs::File::options().write(true).open(&target)?.set_modified(SystemTime::now())
            })
            .await?
            .with_context(|| format!("moving {} into the object folder", path.display()))?;
            self.queue.send(&notification(EventKind::Created, &key, size, None)).await?;
            tracing::info!(%key, bytes = size, "inbox file taken");
            announced.push(key);
        }
        Ok(announced)
    }
}

type Seen = std::collections::HashMap<PathBuf, (u64, SystemTime)>;
type Ready = Vec<(PathBuf, DatasetName, String, u64)>;

/// Files unchanged since the previous scan (ready), and the state of the others.
fn candidates(dir: &Path, previous: &Seen) -> std::io::Result<(Ready, Seen)> {
    let mut ready = Vec::new();
    let mut seen = Seen::new();
    let datasets = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((ready, seen)),
        Err(e) => return Err(e),
    };
    for dataset_dir in datasets {
        let dataset_dir = dataset_dir?;
        let folder = dataset_dir.file_name().to_string_lossy().into_owned();
        let Ok(dataset) = DatasetName::new(&folder) else {
            tracing::debug!(folder, "inbox folder is not a dataset name: ignored");
            continue;
        };
        if !dataset_dir.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(dataset_dir.path())? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.starts_with('.')
                || name.ends_with(".part")
                || name.ends_with(".tmp")
                || !file.file_type()?.is_file()
            {
                continue;
            }
            let meta = file.metadata()?;
            let state = (meta.len(), meta.modified()?);
            let path = file.path();
            if previous.get(&path) == Some(&state) {
                ready.push((path, dataset.clone(), name, state.0));
            } else {
                seen.insert(path, state);
            }
        }
    }
    Ok((ready, seen))
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}
