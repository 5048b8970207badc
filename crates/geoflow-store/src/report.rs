//! What the pipeline did in a window of time (a UTC day for the daily reports), as every
//! store computes it in SQL over its catalog: the loads finished in the window (with the
//! totals each load recorded), the jobs that ended in it, the sources removed in it, and each
//! dataset's state at the window's end.
//!
//! Everything is read from history the catalog keeps, never from the dataset tables as they
//! are now, so a report on a past day comes out the same however often it is recomputed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use geoflow_core::row::Bbox;

use crate::layout::SchemaChange;

/// Failed jobs a report lists at most (`failed_jobs_total` counts them all).
pub const MAX_FAILED_JOBS: usize = 1000;

/// The half-open window `[start, end)` of catalog time a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// Loads by how they ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoadOutcomes {
    /// Loads that replaced a source's rows.
    pub succeeded: u64,
    /// Loads that failed (rolled back: the source's previous rows stayed).
    pub failed: u64,
    /// Sources whose content was already loaded, and redelivered events of an object
    /// version already loaded: nothing was done.
    pub skipped_duplicate: u64,
}

/// Features of the loads that read their source (succeeded and failed loads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureTotals {
    pub read: u64,
    /// Stored by succeeded loads.
    pub loaded: u64,
    pub invalid: u64,
    pub repaired: u64,
    pub skipped: u64,
}

/// Load durations, milliseconds; percentiles by nearest rank.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    pub p50: u64,
    pub p95: u64,
    pub max: u64,
}

/// What happened in the window, over one dataset or all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    pub loads: LoadOutcomes,
    pub sources_removed: u64,
    pub features: FeatureTotals,
    /// Invalid features by problem code.
    pub invalid_reasons: BTreeMap<String, u64>,
    /// Features stored by succeeded loads, by geometry type (`null`: no geometry).
    pub geometry_types: BTreeMap<String, u64>,
    /// Geodesic area of the areal features stored, m².
    pub area_m2: f64,
    /// Geodesic length of the lineal features stored, m.
    pub length_m: f64,
    /// `[min_x, min_y, max_x, max_y]` (degrees) of the features stored; `null` when none were.
    pub extent: Option<[f64; 4]>,
    /// Source bytes processed by every load.
    pub bytes: u64,
    /// `null` when no load finished.
    pub duration_ms: Option<Durations>,
}

/// A dataset as it stood at the window's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetState {
    pub sources: u64,
    pub feature_count: u64,
}

/// Every dataset as they stood at the window's end.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogState {
    /// Datasets holding at least one source.
    pub datasets: u64,
    pub sources: u64,
    pub feature_count: u64,
}

/// One dataset's activity and end state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetActivity {
    pub dataset: String,
    #[serde(flatten)]
    pub activity: Activity,
    pub end_of_day: DatasetState,
    /// What the window's loads and removals changed in the dataset table's layout, in the
    /// order they committed.
    #[serde(default)]
    pub schema_changes: Vec<ReportedChange>,
}

/// A change to a dataset table's layout, with the load or removal that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportedChange {
    /// The source loaded or removed.
    pub source: String,
    /// When the load or removal committed, RFC 3339 UTC.
    pub at: String,
    #[serde(flatten)]
    pub change: SchemaChange,
}

/// A job that failed in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailedJob {
    pub job: String,
    pub dataset: String,
    pub source: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    pub error: Option<String>,
}

/// Everything a daily report says, as a store computes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowActivity {
    pub totals: Activity,
    pub end_of_day: CatalogState,
    /// Datasets with activity in the window or sources at its end, by name.
    pub datasets: Vec<DatasetActivity>,
    /// The first [`MAX_FAILED_JOBS`] jobs that failed, in the order they failed.
    pub failed_jobs: Vec<FailedJob>,
    pub failed_jobs_total: u64,
}

/// One row of a store's aggregate over the window's loads: a dataset's, or (`dataset`
/// `None`) all of them.
#[derive(Debug, Default)]
pub(crate) struct LoadAggregate {
    pub dataset: Option<String>,
    pub loads: LoadOutcomes,
    pub features: FeatureTotals,
    pub area_m2: f64,
    pub length_m: f64,
    pub extent: Option<Bbox>,
    pub bytes: u64,
    pub duration_ms: Option<Durations>,
}

/// The rows a store's queries return, before they are put together.
#[derive(Debug, Default)]
pub(crate) struct ActivityRows {
    pub loads: Vec<LoadAggregate>,
    /// `(dataset, problem code, features)`.
    pub invalid_reasons: Vec<(String, String, u64)>,
    /// `(dataset, geometry type, features)`.
    pub geometry_types: Vec<(String, String, u64)>,
    /// `(dataset, jobs)`: jobs skipped as duplicates without a load of their own.
    pub skipped_jobs: Vec<(String, u64)>,
    /// `(dataset, sources removed)`.
    pub removals: Vec<(String, u64)>,
    /// `(dataset, sources, features)` at the window's end, for datasets holding sources then.
    pub states: Vec<(String, u64, u64)>,
    pub failed_jobs: Vec<FailedJob>,
    pub failed_jobs_total: u64,
    /// `(dataset, source, at, changes as a JSON array)`, in commit order.
    pub schema_changes: Vec<(String, String, String, String)>,
}

pub(crate) fn non_negative(n: i64) -> u64 {
    n.max(0) as u64
}

impl Activity {
    fn take_loads(&mut self, a: LoadAggregate) {
        self.loads.succeeded += a.loads.succeeded;
        self.loads.failed += a.loads.failed;
        self.loads.skipped_duplicate += a.loads.skipped_duplicate;
        self.features = a.features;
        self.area_m2 = a.area_m2;
        self.length_m = a.length_m;
        self.extent = a.extent.map(|b| [b.min_x, b.min_y, b.max_x, b.max_y]);
        self.bytes = a.bytes;
        self.duration_ms = a.duration_ms;
    }
}

impl ActivityRows {
    /// Puts the rows together. Counts that add up across datasets are added here; what does
    /// not (duration percentiles, sums of floating-point measures, extents) comes from the
    /// store's all-datasets row.
    pub(crate) fn assemble(self) -> WindowActivity {
        let mut datasets: BTreeMap<String, DatasetActivity> = BTreeMap::new();
        fn entry<'a>(datasets: &'a mut BTreeMap<String, DatasetActivity>, name: &str) -> &'a mut DatasetActivity {
            datasets
                .entry(name.to_string())
                .or_insert_with(|| DatasetActivity { dataset: name.to_string(), ..DatasetActivity::default() })
        }
        let mut totals = Activity::default();
        for aggregate in self.loads {
            match aggregate.dataset.clone() {
                Some(name) => entry(&mut datasets, &name).activity.take_loads(aggregate),
                None => totals.take_loads(aggregate),
            }
        }
        for (name, code, n) in self.invalid_reasons {
            *entry(&mut datasets, &name).activity.invalid_reasons.entry(code.clone()).or_default() += n;
            *totals.invalid_reasons.entry(code).or_default() += n;
        }
        for (name, kind, n) in self.geometry_types {
            *entry(&mut datasets, &name).activity.geometry_types.entry(kind.clone()).or_default() += n;
            *totals.geometry_types.entry(kind).or_default() += n;
        }
        for (name, n) in self.skipped_jobs {
            entry(&mut datasets, &name).activity.loads.skipped_duplicate += n;
            totals.loads.skipped_duplicate += n;
        }
        for (name, n) in self.removals {
            entry(&mut datasets, &name).activity.sources_removed += n;
            totals.sources_removed += n;
        }
        for (name, source, at, changes) in self.schema_changes {
            // Written by this build from the same type: a value it cannot read is left out.
            let changes: Vec<SchemaChange> = serde_json::from_str(&changes).unwrap_or_default();
            let reported =
                changes.into_iter().map(|change| ReportedChange { source: source.clone(), at: at.clone(), change });
            entry(&mut datasets, &name).schema_changes.extend(reported);
        }
        let mut end_of_day = CatalogState::default();
        let mut held: BTreeSet<String> = BTreeSet::new();
        for (name, sources, features) in self.states {
            entry(&mut datasets, &name).end_of_day = DatasetState { sources, feature_count: features };
            if sources > 0 {
                held.insert(name);
                end_of_day.datasets += 1;
            }
            end_of_day.sources += sources;
            end_of_day.feature_count += features;
        }
        // A dataset all of whose sources went before the window, and which saw nothing in
        // it, is not part of the day.
        let quiet = Activity::default();
        let datasets = datasets
            .into_values()
            .filter(|d| held.contains(&d.dataset) || d.activity != quiet || !d.schema_changes.is_empty())
            .collect::<Vec<_>>();
        WindowActivity {
            totals,
            end_of_day,
            datasets,
            failed_jobs: self.failed_jobs,
            failed_jobs_total: self.failed_jobs_total,
        }
    }
}
