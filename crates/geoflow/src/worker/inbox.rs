//! The embedded deployment's bucket notifications: a watched inbox folder.
//!
//! A file dropped at `inbox/<dataset>/<name>` is moved into the object folder at
//! `raw/<dataset>/<YYYY-MM-DD>/<name>` and an `ObjectCreated` event for it is enqueued — what
//! S3 and its notifications do in production. A file is taken only once it is complete:
//!
//! - names starting with `.` or ending in `.part` or `.tmp` are never taken, so the safe way to
//!   drop a file is to write it under such a name and rename it into place when it is whole;
//! - any other file is taken once its size and modification time have not changed for the
//!   settle time ([`DEFAULT_SETTLE`] unless configured), so a writer that pauses for less than
//!   that is not cut off.
//!
//! Folders whose names are not dataset names, and files at the inbox's top level, are never
//! taken: each is logged once at WARN with the reason.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use geoflow_core::dataset::DatasetName;
use geoflow_queue::Queue;

use crate::events::{notification, EventKind};

/// How long a file's size and modification time must stay unchanged before it is taken,
/// unless configured otherwise.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// Watches one inbox folder.
#[derive(Debug)]
pub struct Inbox {
    pub dir: PathBuf,
    /// The local object folder that uploads move into (same filesystem: a rename).
    pub objects: PathBuf,
    pub queue: Arc<dyn Queue>,
    /// How long a file must stay unchanged before it is taken.
    pub settle: Duration,
    watch: Watch,
}

impl Inbox {
    pub fn new(dir: PathBuf, objects: PathBuf, queue: Arc<dyn Queue>) -> Inbox {
        Inbox { dir, objects, queue, settle: DEFAULT_SETTLE, watch: Watch::default() }
    }

    /// The same inbox with another settle time.
    pub fn with_settle(self, settle: Duration) -> Inbox {
        Inbox { settle, ..self }
    }

    /// What the inbox holds and never takes, each with the reason (as logged once).
    pub fn ignored(&self) -> Vec<(PathBuf, String)> {
        let mut ignored: Vec<_> = self.watch.warned.iter().map(|(p, r)| (p.clone(), r.clone())).collect();
        ignored.sort();
        ignored
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

    /// One scan: moves and announces every file that has been unchanged for the settle time.
    /// Returns the keys announced.
    pub async fn scan(&mut self) -> anyhow::Result<Vec<String>> {
        let (dir, mut watch, settle) = (self.dir.clone(), std::mem::take(&mut self.watch), self.settle);
        let (ready, watch) = tokio::task::spawn_blocking(move || {
            let ready = watch.scan(&dir, Instant::now(), settle);
            (ready, watch)
        })
        .await?;
        self.watch = watch;
        let mut announced = Vec::new();
        for (path, dataset, name, size) in ready? {
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

type Ready = Vec<(PathBuf, DatasetName, String, u64)>;

/// A file as one scan found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    size: u64,
    modified: SystemTime,
}

/// What the scans remember between them.
#[derive(Debug, Default)]
struct Watch {
    /// Each candidate file's state, and since when it has been in that state.
    files: HashMap<PathBuf, (FileState, Instant)>,
    /// What is never taken and was logged, with the reason: logged again only after it has
    /// gone and come back.
    warned: HashMap<PathBuf, String>,
}

impl Watch {
    /// The files unchanged for `settle` at `now`; remembers the state of the others.
    fn scan(&mut self, dir: &Path, now: Instant, settle: Duration) -> std::io::Result<Ready> {
        let mut ready = Vec::new();
        let mut files = HashMap::new();
        let mut present = HashSet::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.files.clear();
                self.warned.clear();
                return Ok(ready);
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let folder = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() {
                if !folder.starts_with('.') {
                    let reason = "a file at the top of the inbox: put it in a folder named after its dataset";
                    self.warn_once(&path, reason.into(), &mut present);
                }
                continue;
            }
            let dataset = match DatasetName::new(&folder) {
                Ok(dataset) => dataset,
                Err(e) => {
                    let reason = format!("the folder's name is not a dataset name ({e}): its files are not taken");
                    self.warn_once(&path, reason, &mut present);
                    continue;
                }
            };
            for file in std::fs::read_dir(&path)? {
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
                let state = FileState { size: meta.len(), modified: meta.modified()? };
                let path = file.path();
                let since = match self.files.get(&path) {
                    Some(&(before, since)) if before == state => since,
                    _ => now,
                };
                // Seen in this state at an earlier scan, at least the settle time ago.
                if since < now && now.duration_since(since) >= settle {
                    ready.push((path, dataset.clone(), name, state.size));
                } else {
                    files.insert(path, (state, since));
                }
            }
        }
        self.files = files;
        self.warned.retain(|path, _| present.contains(path));
        Ok(ready)
    }

    fn warn_once(&mut self, path: &Path, reason: String, present: &mut HashSet<PathBuf>) {
        present.insert(path.to_path_buf());
        if !self.warned.contains_key(path) {
            tracing::warn!(path = %path.display(), reason, "inbox entry ignored");
            self.warned.insert(path.to_path_buf(), reason);
        }
    }
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn taken(ready: &Ready) -> Vec<(String, u64)> {
        ready.iter().map(|(_, d, name, size)| (format!("{d}/{name}"), *size)).collect()
    }

    #[test]
    fn a_writer_pausing_for_less_than_the_settle_time_is_not_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("roads")).unwrap();
        let path = dir.path().join("roads/slow.geojson");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"{\"type\":\"FeatureCollection\",").unwrap();
        file.flush().unwrap();

        let (mut watch, settle, t0) = (Watch::default(), Duration::from_secs(5), Instant::now());
        let scan = |watch: &mut Watch, after: u64| watch.scan(dir.path(), t0 + Duration::from_secs(after), settle);
        // The writer pauses for three scans a second apart: the file is unchanged, but not
        // for long enough.
        for second in 0..4 {
            assert!(scan(&mut watch, second).unwrap().is_empty(), "taken after {second} s");
        }
        file.write_all(b"\"features\":[]}").unwrap();
        file.flush().unwrap();
        drop(file);
        let whole = std::fs::metadata(&path).unwrap().len();
        // The change starts the settle time again.
        assert!(scan(&mut watch, 5).unwrap().is_empty());
        assert!(scan(&mut watch, 9).unwrap().is_empty());
        assert_eq!(taken(&scan(&mut watch, 10).unwrap()), [("roads/slow.geojson".to_string(), whole)]);
    }

    #[test]
    fn a_part_file_is_taken_once_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("roads")).unwrap();
        std::fs::write(dir.path().join("roads/a.geojson.part"), "{").unwrap();
        std::fs::write(dir.path().join("roads/b.tmp"), "{").unwrap();
        std::fs::write(dir.path().join("roads/.hidden"), "{").unwrap();
        let (mut watch, settle, t0) = (Watch::default(), Duration::from_secs(2), Instant::now());
        for second in [0, 10, 20] {
            let ready = watch.scan(dir.path(), t0 + Duration::from_secs(second), settle).unwrap();
            assert!(ready.is_empty(), "{ready:?}");
        }
        std::fs::rename(dir.path().join("roads/a.geojson.part"), dir.path().join("roads/a.geojson")).unwrap();
        assert!(watch.scan(dir.path(), t0 + Duration::from_secs(21), settle).unwrap().is_empty());
        let ready = watch.scan(dir.path(), t0 + Duration::from_secs(23), settle).unwrap();
        assert_eq!(taken(&ready), [("roads/a.geojson".to_string(), 1)]);
    }

    #[test]
    fn a_zero_settle_time_takes_a_file_unchanged_between_two_scans() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("roads")).unwrap();
        std::fs::write(dir.path().join("roads/a.geojson"), "{}").unwrap();
        let (mut watch, t0) = (Watch::default(), Instant::now());
        assert!(watch.scan(dir.path(), t0, Duration::ZERO).unwrap().is_empty());
        let ready = watch.scan(dir.path(), t0 + Duration::from_millis(1), Duration::ZERO).unwrap();
        assert_eq!(ready.len(), 1);
    }

    #[test]
    fn entries_never_taken_are_warned_about_once() {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["Roads", "roads"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
        }
        std::fs::write(dir.path().join("Roads/a.geojson"), "{}").unwrap();
        std::fs::write(dir.path().join("stray.geojson"), "{}").unwrap();
        let (mut watch, t0) = (Watch::default(), Instant::now());
        let (logs, ()) = crate::telemetry::capture(|| {
            for second in 0..3 {
                watch.scan(dir.path(), t0 + Duration::from_secs(second), Duration::ZERO).unwrap();
            }
        });
        let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("inbox entry ignored")).collect();
        assert_eq!(warnings.len(), 2, "{logs}");
        assert!(warnings.iter().all(|l| l.contains("WARN")), "{logs}");
        assert!(warnings.iter().any(|l| l.contains("Roads") && l.contains("not a dataset name")), "{logs}");
        assert!(warnings.iter().any(|l| l.contains("stray.geojson") && l.contains("top of the inbox")), "{logs}");
        let mut ignored: Vec<PathBuf> = watch.warned.keys().cloned().collect();
        ignored.sort();
        assert_eq!(ignored, [dir.path().join("Roads"), dir.path().join("stray.geojson")]);

        // Gone and back: warned about again.
        std::fs::remove_file(dir.path().join("stray.geojson")).unwrap();
        watch.scan(dir.path(), t0 + Duration::from_secs(4), Duration::ZERO).unwrap();
        assert_eq!(watch.warned.len(), 1);
        std::fs::write(dir.path().join("stray.geojson"), "{}").unwrap();
        let (logs, ()) = crate::telemetry::capture(|| {
            watch.scan(dir.path(), t0 + Duration::from_secs(5), Duration::ZERO).unwrap();
        });
        assert_eq!(logs.lines().filter(|l| l.contains("inbox entry ignored")).count(), 1, "{logs}");
    }
}
