//! Overwrites and deletes racing in-flight loads, for any deployment: the test says how to
//! write and delete objects and announce what S3 would not; this module picks the moments,
//! remembers what storage ends up holding, and checks that the dataset holds exactly that.

use std::future::Future;
use std::time::{Duration, Instant};

use geoflow_core::dataset::DatasetName;
use geoflow_store::{FeatureQuery, JobQuery, JobStatus, Store};

/// What races the load of a large first version of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// A small version replaces it.
    Overwrite,
    /// The object is deleted.
    Delete,
    /// The object is deleted, then a small version written.
    DeleteThenRecreate,
    /// Three small versions in quick succession.
    ThreeOverwrites,
}

impl Case {
    pub const ALL: [Case; 4] = [Case::Overwrite, Case::Delete, Case::DeleteThenRecreate, Case::ThreeOverwrites];

    pub fn dataset(self) -> &'static str {
        match self {
            Case::Overwrite => "race_overwrite",
            Case::Delete => "race_delete",
            Case::DeleteThenRecreate => "race_recreate",
            Case::ThreeOverwrites => "race_three",
        }
    }
}

/// Features of the large first version of each object: its load is the one raced.
pub fn large_features() -> usize {
    std::env::var("GEOFLOW_RACE_FEATURES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000)
}

/// Trials of each case.
pub fn trials() -> usize {
    std::env::var("GEOFLOW_RACE_TRIALS").ok().and_then(|n| n.parse().ok()).unwrap_or(20)
}

/// A small, seeded generator (xorshift64*): the seed is printed, so a failing run repeats.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("GEOFLOW_RACE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("race trials: GEOFLOW_RACE_SEED={seed}");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// One change to storage, done by the test's deployment.
pub enum Change {
    /// Writes the object (and announces it, where storage does not).
    Put { key: String, body: String },
    /// Deletes the object and announces it.
    Delete { key: String },
}

/// The key of one trial's object, and what storage holds under it at the end (the number of
/// features of the version left there, or nothing).
pub struct Trial {
    pub dataset: String,
    pub key: String,
    pub expected: Option<u64>,
}

/// Runs every trial of every case, one after the other (each trial's changes race its own
/// load, and the next trial starts while they are still being worked on). `apply` does each
/// change to storage.
pub async fn run_trials<F, Fut>(store: &dyn Store, window: Duration, apply: F) -> Vec<Trial>
where
    F: Fn(Change) -> Fut,
    Fut: Future<Output = ()>,
{
    let large = crate::support::collection(large_features(), 0);
    let mut rng = Rng::from_env();
    let mut done = Vec::new();
    for case in Case::ALL {
        for n in 0..trials() {
            done.push(run_trial(store, case, n, &large, &mut rng, window, &apply).await);
        }
    }
    done
}

/// Runs one trial: writes the large version, waits until its load runs plus a random part of
/// `window`, then makes the case's changes.
async fn run_trial<F, Fut>(
    store: &dyn Store,
    case: Case,
    n: usize,
    large: &str,
    rng: &mut Rng,
    window: Duration,
    apply: &F,
) -> Trial
where
    F: Fn(Change) -> Fut,
    Fut: Future<Output = ()>,
{
    let dataset = case.dataset().to_string();
    let key = format!("raw/{dataset}/2026-12-06/trial {n}.geojson");
    apply(Change::Put { key: key.clone(), body: large.to_string() }).await;
    wait_until_running(store, &key).await;
    tokio::time::sleep(Duration::from_millis(rng.below(window.as_millis() as u64))).await;
    // Each small version has its own size, so that the one stored names itself.
    let small = |v: usize| (v, crate::support::collection(500 + v, n * 10 + v));
    let expected = match case {
        Case::Overwrite => {
            let (v, body) = small(1);
            apply(Change::Put { key: key.clone(), body }).await;
            Some(500 + v as u64)
        }
        Case::Delete => {
            apply(Change::Delete { key: key.clone() }).await;
            None
        }
        Case::DeleteThenRecreate => {
            apply(Change::Delete { key: key.clone() }).await;
            tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
            let (v, body) = small(2);
            apply(Change::Put { key: key.clone(), body }).await;
            Some(500 + v as u64)
        }
        Case::ThreeOverwrites => {
            for v in 3..6 {
                let (_, body) = small(v);
                apply(Change::Put { key: key.clone(), body }).await;
                tokio::time::sleep(Duration::from_millis(rng.below(50))).await;
            }
            Some(505)
        }
    };
    Trial { dataset, key, expected }
}

/// Waits until a job of `key` has started (or already finished).
async fn wait_until_running(store: &dyn Store, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = store.jobs(&JobQuery { limit: 50, ..JobQuery::default() }).await.unwrap();
        if jobs.iter().any(|j| j.source == key && j.status != JobStatus::Queued) {
            return;
        }
        assert!(Instant::now() < deadline, "the load of {key} never started: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every trial's dataset holds exactly what storage holds: each object's features once, in
/// the catalog and in the table, and nothing of deleted or overwritten versions.
pub async fn assert_store_equals_storage(store: &dyn Store, trials: &[Trial]) {
    let mut datasets: Vec<&str> = trials.iter().map(|t| t.dataset.as_str()).collect();
    datasets.dedup();
    for dataset in datasets {
        let name = DatasetName::new(dataset).unwrap();
        let mut expected_total = 0;
        for trial in trials.iter().filter(|t| t.dataset == dataset) {
            let stored = store.source(&name, &trial.key).await.unwrap().map(|s| s.feature_count);
            assert_eq!(stored, trial.expected, "{}: the catalog against storage", trial.key);
            expected_total += trial.expected.unwrap_or(0);
        }
        let catalogued = store.dataset(&name).await.unwrap().map_or(0, |d| d.feature_count);
        assert_eq!(catalogued, expected_total, "{dataset}: the catalog's count against storage");
        let query = FeatureQuery { limit: usize::MAX, ..FeatureQuery::default() };
        let rows = match store.features(&name, &query).await {
            Ok(stream) => futures_util::TryStreamExt::try_collect::<Vec<_>>(stream).await.unwrap().len() as u64,
            Err(_) => 0,
        };
        assert_eq!(rows, expected_total, "{dataset}: the table's rows against storage");
    }
}
