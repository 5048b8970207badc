//! One contract, every store: the semantics of DESIGN §3 checked through the `Store` trait
//! against the GeoPackage store and the PostGIS store alike. Store-specific details (file
//! format, SQL types, locks, TLS) have their own tests beside this one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt;
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::geometry_type::{GeometryKinds, GeometryType};
use geoflow_core::report::{LoadCounts, Policy, ProblemCode};
use geoflow_core::row::GeometryKind;
use geoflow_core::row::{Bbox, Measures, Row};
use geoflow_core::schema::{Field, FieldType, Schema, SchemaPolicy};
use geoflow_core::value::PropValue;
use geoflow_core::wkb;
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::memory::MemoryJobs;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::prelude::*;
use geoflow_store::protocol::{ObjectProbe, ObjectState, Origin};
use geoflow_store::report::{
    Activity, CatalogState, DatasetActivity, DatasetState, Durations, FailedJob, FeatureTotals, LoadOutcomes, Window,
    WindowActivity,
};
use geoflow_store::{
    ErrorClass, FeatureQuery, Filter, FilterLang, Job, JobAction, JobQuery, JobStatus, JobUpdate, LoadMessage,
    LoadOutcome, LoadPlan, LoadResult, LoadedMeasures, ManualClock, NewJob, RemovalCause, SchemaChange, SortKey,
    SortValue, SourceVersion, Store, StoreError, Temporal, TemporalFilter, TileId, TileMatrixSet,
};
use rusqlite::Connection;
use time::format_description::well_known::Rfc3339;
use time::macros::offset;
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::NoTls;

fn name(s: &str) -> DatasetName {
    DatasetName::new(s).unwrap()
}

fn row(index: u64, x: f64, props: Vec<(usize, PropValue)>) -> Row {
    let g = Geom::Point(Pos::xy(x, x / 2.0));
    Row {
        index,
        id: PropValue::Int(index as i64),
        geometry: Some(wkb::encode(&g)),
        measures: Measures::default(),
        properties: props,
    }
}

fn plan(dataset: &str, source: &str, hash: &str, fields: &[(&str, FieldType)]) -> LoadPlan {
    LoadPlan {
        dataset: name(dataset),
        source: source.into(),
        version: SourceVersion { content_hash: hash.into(), bytes: 1, object_version: None },
        schema: Schema {
            fields: fields.iter().map(|(k, t)| Field { key: (*k).into(), ty: *t }).collect(),
            id_type: FieldType::Integer,
            ..Default::default()
        },
        policy: Policy::Skip,
        origin: None,
        schema_policy: Default::default(),
        geometry_type: Default::default(),
        mode: DatasetMode::Append,
        key: FeatureKey::FeatureId,
        modified: None,
        force: false,
        read_settings: String::new(),
    }
}

fn result(loaded: u64) -> LoadResult {
    LoadResult {
        counts: LoadCounts { features_read: loaded, features_loaded: loaded, ..LoadCounts::default() },
        ..LoadResult::default()
    }
}

/// Sends `rows` then `end` through a load, as the ingest pipeline does.
async fn load(
    store: &dyn Store,
    plan: LoadPlan,
    rows: Vec<Row>,
    end: Option<LoadMessage>,
) -> Result<LoadOutcome, StoreError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let feeding = tokio::spawn(async move {
        if !rows.is_empty() {
            let _ = tx.send(LoadMessage::Rows(rows)).await;
        }
        if let Some(end) = end {
            let _ = tx.send(end).await;
        }
    });
    let outcome = store.load(plan, rx).await;
    feeding.await.unwrap();
    outcome
}

async fn commit(store: &dyn Store, plan: LoadPlan, rows: Vec<Row>) -> LoadOutcome {
    let n = rows.len() as u64;
    load(store, plan, rows, Some(LoadMessage::Commit(result(n)))).await.unwrap()
}

async fn count(store: &dyn Store, dataset: &str) -> u64 {
    store.datasets().await.unwrap().into_iter().find(|d| d.name.as_str() == dataset).map_or(0, |d| d.feature_count)
}

async fn contract(store: Arc<dyn Store>) {
    let s = &*store;
    let text = |v: &str| PropValue::Text(v.into());
    s.check_ready().await.expect("a store is ready once opened (and so migrated)");

    // Two sources of one dataset; identical content again is a no-op.
    let a = || plan("roads", "a.geojson", "hash-a1", &[("name", FieldType::Text)]);
    assert!(matches!(
        commit(s, a(), vec![row(0, 1.0, vec![(0, text("x"))]), row(1, 2.0, vec![])]).await,
        LoadOutcome::Loaded { .. }
    ));
    let b = plan("roads", "b.geojson", "hash-b1", &[("name", FieldType::Text)]);
    commit(s, b, vec![row(0, 3.0, vec![(0, text("y"))])]).await;
    assert_eq!(count(s, "roads").await, 3);
    assert!(matches!(commit(s, a(), vec![row(0, 9.0, vec![])]).await, LoadOutcome::Unchanged { .. }));
    assert_eq!(count(s, "roads").await, 3);
    let rec = s.source(&name("roads"), "a.geojson").await.unwrap().expect("source recorded");
    assert_eq!((rec.version.content_hash.as_str(), rec.feature_count), ("hash-a1", 2));

    // A new version replaces its own source's rows only.
    let a2 = plan("roads", "a.geojson", "hash-a2", &[("name", FieldType::Text)]);
    match commit(s, a2, vec![row(0, 1.0, vec![]), row(1, 2.0, vec![]), row(2, 4.0, vec![])]).await {
        LoadOutcome::Loaded { replaced_rows, .. } => assert_eq!(replaced_rows, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(s, "roads").await, 4);

    // Abort, and a sender that goes away, leave the previous rows and change nothing.
    let a3 = || plan("roads", "a.geojson", "hash-a3", &[("extra", FieldType::Integer)]);
    let aborted = load(
        s,
        a3(),
        vec![row(0, 5.0, vec![(0, PropValue::Int(1))])],
        Some(LoadMessage::Abort(LoadResult { error: Some("bad input".into()), ..LoadResult::default() })),
    )
    .await;
    assert!(matches!(aborted, Ok(LoadOutcome::Failed { .. })), "{aborted:?}");
    let dropped = load(s, a3(), vec![row(0, 5.0, vec![])], None).await;
    assert!(matches!(dropped.as_ref().map_err(StoreError::root), Err(StoreError::Interrupted { .. })), "{dropped:?}");
    assert!(dropped.unwrap_err().recorded_load().is_some(), "the interrupted load is in the history");
    assert_eq!(count(s, "roads").await, 4);
    assert_eq!(s.source(&name("roads"), "a.geojson").await.unwrap().unwrap().version.content_hash, "hash-a2");
    let roads = s.datasets().await.unwrap().into_iter().find(|d| d.name.as_str() == "roads").unwrap();
    assert!(roads.columns.iter().all(|c| c.key != "extra"), "a rolled-back load adds no column");

    // Types widen across sources without loss; keys that differ only in case stay apart;
    // hostile keys are just keys.
    let hostile = "\"; DROP TABLE roads; --";
    let long = "k".repeat(200);
    let keys: Vec<(&str, FieldType)> = vec![
        ("n", FieldType::Integer),
        ("Name", FieldType::Text),
        ("name", FieldType::Text),
        (hostile, FieldType::Text),
        (&long, FieldType::Text),
        ("名前", FieldType::Text),
    ];
    let props =
        |i: i64| (0..keys.len()).map(|k| (k, if k == 0 { PropValue::Int(i) } else { text("v'; --") })).collect();
    commit(s, plan("wide", "one", "w1", &keys), vec![row(0, 1.0, props(9007199254740993))]).await;
    commit(s, plan("wide", "two", "w2", &[("n", FieldType::Text)]), vec![row(0, 2.0, vec![(0, text("seven"))])]).await;
    let wide = s.datasets().await.unwrap().into_iter().find(|d| d.name.as_str() == "wide").unwrap();
    assert_eq!(s.dataset(&name("wide")).await.unwrap().as_ref(), Some(&wide), "one dataset reads as the list has it");
    assert_eq!(s.dataset(&name("nosuch")).await.unwrap(), None);
    let col = |key: &str| wide.columns.iter().find(|c| c.key == key).unwrap_or_else(|| panic!("column for {key:?}"));
    assert_eq!(col("n").ty, FieldType::Json);
    assert_ne!(col("Name").column.to_ascii_lowercase(), col("name").column.to_ascii_lowercase());
    assert!(col(hostile).column.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    assert!(col(&long).column.len() <= 63);
    col("名前");
    assert_eq!(wide.feature_count, 2);
    assert!(s.datasets().await.unwrap().iter().any(|d| d.name.as_str() == "roads"), "the catalog is intact");

    // Rows without geometry, and removing a source.
    commit(s, plan("wide", "three", "w3", &[]), vec![Row { geometry: None, ..row(0, 0.0, vec![]) }]).await;
    assert_eq!(count(s, "wide").await, 3);
    assert_eq!(s.remove_source(&name("wide"), "one", None, RemovalCause::Request).await.unwrap().rows, 1);
    assert_eq!(count(s, "wide").await, 2);
    assert!(s.source(&name("wide"), "one").await.unwrap().is_none());

    // Datasets load side by side.
    let (p, q) = (plan("left", "l", "l1", &[]), plan("right", "r", "r1", &[]));
    let rows = |n: u64| (0..n).map(|i| row(i, i as f64 / 100.0, vec![])).collect::<Vec<_>>();
    let (l, r) = tokio::join!(commit(s, p, rows(500)), commit(s, q, rows(700)));
    assert!(matches!((l, r), (LoadOutcome::Loaded { .. }, LoadOutcome::Loaded { .. })));
    assert_eq!((count(s, "left").await, count(s, "right").await), (500, 700));

    assert_catalog_matches_table(s, "roads").await;
    assert_catalog_matches_table(s, "wide").await;
    object_versions(s).await;
    supersession(s).await;
    replace_mode(s).await;
    upsert_mode(s).await;
    mode_changes(s).await;
    overflow(s).await;
    schema_changes(s).await;
    geometry_types(s).await;
    source_listing(s).await;
    dropping(s).await;
    feature_reads(s).await;
    temporal_reads(s).await;
    filters(s).await;
    let jobs: Arc<dyn Jobs> = store.clone();
    jobs_contract(&jobs).await;
    assert!(
        s.datasets().await.unwrap().iter().any(|d| d.name.as_str() == "roads"),
        "hostile job ids left the catalog intact"
    );
    job_listing(s).await;
    job_window(s).await;
    job_update_during_a_load(&store).await;
}

/// A catalog created before object versions and jobs existed, holding one source, after the
/// store has opened (and so migrated) it.
async fn upgraded(s: &dyn Store) {
    let (roads, key) = (name("roads"), "raw/roads/2025-12-31/a.geojson");
    let rec = s.source(&roads, key).await.unwrap().expect("the source survives the upgrade");
    assert_eq!(
        (rec.version.content_hash.as_str(), rec.version.bytes, rec.version.object_version.as_deref()),
        ("old-hash", 10, None)
    );
    assert_eq!((rec.feature_count, rec.load_id), (5, 1));
    s.migrate().await.unwrap();

    // Its content is still known, and now also the version it comes from.
    let outcome = commit(s, versioned("roads", key, "old-hash", "v7"), vec![row(0, 1.0, vec![])]).await;
    assert!(matches!(outcome, LoadOutcome::Unchanged { .. }), "{outcome:?}");
    let rec = s.source(&roads, key).await.unwrap().unwrap();
    assert_eq!((rec.version.object_version.as_deref(), rec.load_id), (Some("v7"), 1));

    let job = s.upsert_job(&new_job("after-upgrade", "roads", key)).await.unwrap();
    assert_eq!(s.jobs(&JobQuery::default()).await.unwrap(), vec![job]);
}

#[tokio::test(flavor = "multi_thread")]
async fn geopackage_catalog_upgrades_from_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.gpkg");
    {
        // Migrations 1 and 2 as the previous release applied them.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE geoflow_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            .unwrap();
        for (version, sql) in
            [(1, include_str!("../src/gpkg/sql/geopackage.sql")), (2, include_str!("../src/gpkg/sql/catalog.sql"))]
        {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO geoflow_migrations VALUES (?1, '2025-12-31T00:00:00.000Z')", [version]).unwrap();
        }
        conn.execute_batch(
            "PRAGMA application_id = 1196444487; PRAGMA user_version = 10300;
             INSERT INTO geoflow_sources (dataset, source_key, content_hash, bytes, feature_count, load_id, loaded_at)
             VALUES ('roads', 'raw/roads/2025-12-31/a.geojson', 'old-hash', 10, 5, 1, '2025-12-31T00:00:00.000Z');
             INSERT INTO geoflow_loads (dataset, source_key, content_hash, bytes, policy, status, started_at, finished_at)
             VALUES ('roads', 'raw/roads/2025-12-31/a.geojson', 'old-hash', 10, 'skip', 'loaded',
                     '2025-12-31T00:00:00.000Z', '2025-12-31T00:00:00.000Z');",
        )
        .unwrap();
    }
    let store = GeoPackageStore::open(&path).unwrap();
    upgraded(&store).await;
    let conn = Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM geoflow_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgis_catalog_upgrades_from_version_1() {
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    // Migration 1 as the previous release applied it.
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS postgis;
             CREATE SCHEMA geoflow;
             CREATE TABLE geoflow.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());",
        )
        .await
        .unwrap();
    client.batch_execute(include_str!("../src/postgis/sql/catalog.sql")).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO geoflow.migrations (version) VALUES (1);
             INSERT INTO geoflow.datasets (name, table_name) VALUES ('roads', 'roads');
             INSERT INTO geoflow.sources (dataset, source_key, content_hash, bytes, feature_count, load_id, loaded_at)
             VALUES ('roads', 'raw/roads/2025-12-31/a.geojson', 'old-hash', 10, 5, 1, '2025-12-31T00:00:00Z');",
        )
        .await
        .unwrap();
    let store = PostgisStore::connect(db.url()).await.unwrap();
    upgraded(&store).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM geoflow.migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn job_statuses_read_as_they_serialise() {
    for (st, text) in [
        (JobStatus::Queued, "queued"),
        (JobStatus::Running, "running"),
        (JobStatus::Succeeded, "succeeded"),
        (JobStatus::Failed, "failed"),
        (JobStatus::SkippedDuplicate, "skipped-duplicate"),
        (JobStatus::Superseded, "superseded"),
    ] {
        assert_eq!(st.as_str(), text);
        assert_eq!(serde_json::to_value(st).unwrap(), serde_json::json!(text));
        assert_eq!(st.is_final(), !matches!(st, JobStatus::Queued | JobStatus::Running));
    }
    assert_eq!(serde_json::to_value(JobAction::Remove).unwrap(), serde_json::json!("remove"));
    assert_eq!(serde_json::to_value(JobAction::Drop).unwrap(), serde_json::json!("drop"));
    let limit = |limit| JobQuery { limit, ..JobQuery::default() }.effective_limit();
    assert_eq!((limit(0), limit(1), limit(1000), limit(5000)), (100, 1, 1000, 1000));
}

/// `plan` of an object at a given storage version.
fn versioned(dataset: &str, source: &str, hash: &str, object_version: &str) -> LoadPlan {
    let mut p = plan(dataset, source, hash, &[]);
    p.version.object_version = Some(object_version.into());
    p
}

async fn object_versions(s: &dyn Store) {
    let (ds, key) = (name("objects"), "raw/objects/2026-01-01/a.geojson");
    commit(s, versioned("objects", key, "ov-h1", "v1"), vec![row(0, 1.0, vec![])]).await;
    let rec = s.source(&ds, key).await.unwrap().unwrap();
    assert_eq!(rec.version.object_version.as_deref(), Some("v1"));
    let (load_id, loaded_at) = (rec.load_id, rec.loaded_at.clone());

    // The same content from a new object version changes no row, but the catalog remembers
    // the version it now comes from.
    let before = dataset_version(s, "objects").await;
    let outcome = commit(s, versioned("objects", key, "ov-h1", "v2"), vec![row(0, 9.0, vec![])]).await;
    assert!(matches!(outcome, LoadOutcome::Unchanged { .. }), "{outcome:?}");
    let rec = s.source(&ds, key).await.unwrap().unwrap();
    assert_eq!(rec.version.object_version.as_deref(), Some("v2"));
    assert_eq!((rec.load_id, rec.loaded_at, rec.feature_count), (load_id, loaded_at, 1));
    assert_eq!(dataset_version(s, "objects").await, before, "no row changed");

    // A local file (no object version) of new content clears it; hostile versions are text.
    commit(s, plan("objects", key, "ov-h2", &[]), vec![row(0, 2.0, vec![])]).await;
    assert_eq!(s.source(&ds, key).await.unwrap().unwrap().version.object_version, None);
    let hostile = "\"'; DROP TABLE sources; -- 名前";
    commit(s, versioned("objects", key, "ov-h3", hostile), vec![row(0, 3.0, vec![])]).await;
    assert_eq!(s.source(&ds, key).await.unwrap().unwrap().version.object_version.as_deref(), Some(hostile));
}

/// What a test says storage holds under one key, asked by loads and removals before commit.
#[derive(Debug)]
struct ScriptedObject(std::sync::Mutex<ObjectState>);

impl ScriptedObject {
    fn new(state: ObjectState) -> Arc<ScriptedObject> {
        Arc::new(ScriptedObject(std::sync::Mutex::new(state)))
    }

    fn set(&self, state: ObjectState) {
        *self.0.lock().unwrap() = state;
    }
}

#[async_trait::async_trait]
impl ObjectProbe for ScriptedObject {
    async fn state(&self) -> Result<ObjectState, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn present(version: &str) -> ObjectState {
    ObjectState::Present { version: Some(version.into()) }
}

/// The catalog's count and extent of a dataset are those of its rows.
async fn assert_catalog_matches_table(s: &dyn Store, dataset: &str) {
    let rows = match read(s, dataset, all()).await {
        Err(StoreError::NotFound { .. }) => Vec::new(),
        rows => rows.unwrap(),
    };
    let info = s.dataset(&name(dataset)).await.unwrap();
    let (count, bbox) = info.map_or((0, None), |d| (d.feature_count, d.bbox));
    assert_eq!(count, rows.len() as u64, "{dataset}: catalog count against the table");
    let mut extent: Option<Bbox> = None;
    for (_, f) in &rows {
        let Some(c) = f["geometry"]["coordinates"].as_array() else { continue };
        let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
        let point = Bbox { min_x: x, min_y: y, max_x: x, max_y: y };
        extent = Bbox::merge(extent, Some(point));
    }
    assert_eq!(bbox, extent, "{dataset}: catalog extent against the table");
}

/// A load or removal commits only while storage holds what it reflects.
async fn supersession(s: &dyn Store) {
    let (ds, key) = (name("raced"), "raw/raced/2026-01-01/a.geojson");
    let object = ScriptedObject::new(present("v2"));
    let origin: Origin = object.clone();
    let from =
        |hash: &str, version: &str| LoadPlan { origin: Some(origin.clone()), ..versioned("raced", key, hash, version) };
    let rows = |n: u64| (0..n).map(|i| row(i, i as f64, vec![])).collect::<Vec<_>>();

    // v1 finishes loading after v2 was written: it stores nothing.
    let outcome = commit(s, from("r-h1", "v1"), rows(3)).await;
    assert!(matches!(&outcome, LoadOutcome::Superseded { reason, .. } if reason.contains("v2")), "{outcome:?}");
    assert!(s.source(&ds, key).await.unwrap().is_none());
    assert_catalog_matches_table(s, "raced").await;

    // v2 loads; the same content labelled with the older version is superseded, not a no-op.
    assert!(matches!(commit(s, from("r-h2", "v2"), rows(2)).await, LoadOutcome::Loaded { .. }));
    let stale = commit(s, from("r-h2", "v1"), rows(2)).await;
    assert!(matches!(stale, LoadOutcome::Superseded { .. }), "{stale:?}");
    assert_eq!(s.source(&ds, key).await.unwrap().unwrap().version.object_version.as_deref(), Some("v2"));
    let settled = s.settled_source(&ds, key).await.unwrap().unwrap();
    assert_eq!(settled, s.source(&ds, key).await.unwrap().unwrap(), "read under the lock, the same record");

    // A removal while the object exists removes nothing.
    let err = s.remove_source(&ds, key, Some(&origin), RemovalCause::ObjectDeleted).await.unwrap_err();
    assert!(matches!(err, StoreError::Superseded { .. }) && !err.is_transient(), "{err:?}");
    assert_eq!(count(s, "raced").await, 2);

    // Deleted: the removal commits, and a late load of the deleted version is superseded.
    object.set(ObjectState::Absent);
    let removal = s.remove_source(&ds, key, Some(&origin), RemovalCause::ObjectDeleted).await.unwrap();
    assert_eq!((removal.catalogued, removal.rows), (true, 2));
    let late = commit(s, from("r-h3", "v2"), rows(4)).await;
    assert!(matches!(&late, LoadOutcome::Superseded { reason, .. } if reason.contains("deleted")), "{late:?}");
    assert_eq!(count(s, "raced").await, 0);
    assert_catalog_matches_table(s, "raced").await;

    // Nothing stored and nothing to remove: the removal says so.
    let nothing = s.remove_source(&ds, key, Some(&origin), RemovalCause::ObjectDeleted).await.unwrap();
    assert_eq!((nothing.catalogued, nothing.rows), (false, 0));
}

/// `plan` of an object in a dataset in replace mode, modified at second `at`.
fn replacing(dataset: &str, source: &str, hash: &str, at: i64) -> LoadPlan {
    let mut p = plan(dataset, source, hash, &[]);
    p.mode = DatasetMode::Replace;
    p.modified = Some(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(1_700_000_000 + at));
    p
}

fn points(n: u64) -> Vec<Row> {
    (0..n).map(|i| row(i, i as f64, vec![])).collect()
}

async fn source_keys(s: &dyn Store, dataset: &str) -> Vec<String> {
    s.sources(&name(dataset)).await.unwrap().into_iter().map(|r| r.source).collect()
}

/// In replace mode the dataset is its newest object, whatever order the loads come in.
async fn replace_mode(s: &dyn Store) {
    let (a, b) = ("raw/layer/2026-01-01/a.geojson", "raw/layer/2026-01-02/b.geojson");
    assert!(matches!(commit(s, replacing("layer", a, "l-a", 10), points(3)).await, LoadOutcome::Loaded { .. }));
    assert_eq!(s.dataset(&name("layer")).await.unwrap().unwrap().mode, DatasetMode::Replace);

    // A newer object replaces the whole dataset; the one before leaves it, as a removal.
    let outcome = commit(s, replacing("layer", b, "l-b", 20), points(2)).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 0, .. }), "{outcome:?}");
    assert_eq!((count(s, "layer").await, source_keys(s, "layer").await), (2, vec![b.to_string()]));
    assert_catalog_matches_table(s, "layer").await;

    // A late event of the older object (changed content, even) changes nothing.
    let late = commit(s, replacing("layer", a, "l-a2", 10), points(5)).await;
    assert!(matches!(&late, LoadOutcome::Superseded { reason, .. } if reason.contains(b)), "{late:?}");
    assert_eq!((count(s, "layer").await, source_keys(s, "layer").await), (2, vec![b.to_string()]));

    // The same object again is a no-op, unless forced or loaded under other settings.
    assert!(matches!(commit(s, replacing("layer", b, "l-b", 20), points(2)).await, LoadOutcome::Unchanged { .. }));
    let forced = LoadPlan { force: true, ..replacing("layer", b, "l-b", 20) };
    assert!(matches!(commit(s, forced, points(2)).await, LoadOutcome::Loaded { replaced_rows: 2, .. }));
    let repaired = LoadPlan { policy: Policy::Repair, ..replacing("layer", b, "l-b", 20) };
    assert!(matches!(commit(s, repaired.clone(), points(2)).await, LoadOutcome::Loaded { replaced_rows: 2, .. }));
    assert!(matches!(commit(s, repaired, points(2)).await, LoadOutcome::Unchanged { .. }));
    let record = s.source(&name("layer"), b).await.unwrap().unwrap();
    assert_eq!(record.settings.as_deref(), Some("policy=repair;mode=replace;geometry=auto"));

    // Within one second the key decides, the same way in every store.
    let c = "raw/layer/2026-01-02/c.geojson";
    assert!(matches!(commit(s, replacing("layer", c, "l-c", 20), points(4)).await, LoadOutcome::Loaded { .. }));
    let earlier_key = commit(s, replacing("layer", "raw/layer/2026-01-02/0.geojson", "l-0", 20), points(1)).await;
    assert!(matches!(earlier_key, LoadOutcome::Superseded { .. }), "{earlier_key:?}");
    assert_eq!(count(s, "layer").await, 4);

    // A file loaded directly is as new as its load.
    let direct = LoadPlan { modified: None, ..replacing("layer", "roads.geojson", "l-d", 0) };
    assert!(matches!(commit(s, direct, points(1)).await, LoadOutcome::Loaded { .. }));
    assert_eq!(source_keys(s, "layer").await, vec!["roads.geojson".to_string()]);

    // Removing an object the dataset does not hold changes nothing; removing the one it
    // holds empties it.
    let other = s.remove_source(&name("layer"), c, None, RemovalCause::Request).await.unwrap();
    assert_eq!((other.catalogued, other.rows, count(s, "layer").await), (false, 0, 1));
    let held = s.remove_source(&name("layer"), "roads.geojson", None, RemovalCause::Request).await.unwrap();
    assert_eq!((held.catalogued, held.rows, count(s, "layer").await), (true, 1, 0));
    assert_catalog_matches_table(s, "layer").await;
}

/// `plan` of an object in a dataset in upsert mode keyed by `key`, modified at second `at`.
fn upserting(dataset: &str, source: &str, hash: &str, at: i64, key: &FeatureKey) -> LoadPlan {
    let mut p = replacing(dataset, source, hash, at);
    p.schema.fields = vec![Field { key: "code".into(), ty: FieldType::Text }];
    (p.mode, p.key) = (DatasetMode::Upsert, key.clone());
    p
}

/// The features of an upsert load: (id, code, x), the code as property 0.
fn keyed_rows(features: &[(i64, &str, f64)]) -> Vec<Row> {
    let rows = features.iter().enumerate().map(|(index, &(id, code, x))| {
        let mut r = row(index as u64, x, vec![(0, PropValue::Text(code.into()))]);
        r.id = PropValue::Int(id);
        r
    });
    rows.collect()
}

/// The dataset's features as (code, x), sorted (reads give the row's fid as the id).
async fn codes(s: &dyn Store, dataset: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = read(s, dataset, all())
        .await
        .unwrap()
        .into_iter()
        .map(|(_, f)| {
            let code = f["properties"]["code"].as_str().unwrap().to_string();
            (code, f["geometry"]["coordinates"][0].as_f64().unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn expected(features: &[(&str, f64)]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = features.iter().map(|&(c, x)| (c.to_string(), x)).collect();
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

async fn feature_counts(s: &dyn Store, dataset: &str) -> Vec<(String, u64)> {
    s.sources(&name(dataset)).await.unwrap().into_iter().map(|r| (r.source, r.feature_count)).collect()
}

/// In upsert mode each key holds the feature of the newest object that has it, whatever order
/// the loads come in; deleting an object leaves its features.
async fn upsert_mode(s: &dyn Store) {
    let (id, ds) = (FeatureKey::FeatureId, "plots");
    let (a, b, c, d) = ("raw/plots/a.geojson", "raw/plots/b.geojson", "raw/plots/c.geojson", "raw/plots/d.geojson");
    let outcome =
        commit(s, upserting(ds, a, "u-a", 10, &id), keyed_rows(&[(1, "a", 1.0), (2, "a", 2.0), (3, "a", 3.0)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 0, superseded_features: 0, .. }), "{outcome:?}");
    let info = s.dataset(&name(ds)).await.unwrap().unwrap();
    assert_eq!((info.mode, info.key_property), (DatasetMode::Upsert, None));

    // A newer object inserts its new keys and replaces the ones the dataset holds.
    let outcome = commit(s, upserting(ds, b, "u-b", 20, &id), keyed_rows(&[(3, "b", 30.0), (4, "b", 40.0)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 1, superseded_features: 0, .. }), "{outcome:?}");
    // An object older than b but newer than a, arriving late: it wins a's keys, not b's.
    let outcome =
        commit(s, upserting(ds, c, "u-c", 15, &id), keyed_rows(&[(2, "c", 20.0), (3, "c", 3.5), (5, "c", 50.0)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 1, superseded_features: 1, .. }), "{outcome:?}");
    // The last feature of a key within one object wins.
    let outcome = commit(s, upserting(ds, d, "u-d", 30, &id), keyed_rows(&[(6, "d1", 6.0), (6, "d2", 6.5)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 0, superseded_features: 1, .. }), "{outcome:?}");
    let want = expected(&[("a", 1.0), ("c", 20.0), ("b", 30.0), ("b", 40.0), ("c", 50.0), ("d2", 6.5)]);
    assert_eq!(codes(s, ds).await, want);
    let counts = vec![(a.to_string(), 1), (b.to_string(), 2), (c.to_string(), 2), (d.to_string(), 1)];
    assert_eq!(feature_counts(s, ds).await, counts);
    assert_catalog_matches_table(s, ds).await;
    // The spatial index holds the rows that stay, and only those.
    let window = Bbox { min_x: 5.0, min_y: 0.0, max_x: 35.0, max_y: 20.0 };
    let found = read(s, ds, FeatureQuery { bbox: Some(window), ..all() }).await.unwrap();
    let mut xs: Vec<f64> = found.iter().map(|(_, f)| f["geometry"]["coordinates"][0].as_f64().unwrap()).collect();
    xs.sort_by(f64::total_cmp);
    assert_eq!(xs, vec![6.5, 20.0, 30.0]);

    // The same object again is a no-op; a new version of an object replaces the keys it has
    // (even those a newer object took: its own versions are storage's to order), and its
    // earlier features of keys it no longer has stay.
    let again = commit(s, upserting(ds, c, "u-c", 15, &id), keyed_rows(&[(2, "c", 20.0)])).await;
    assert!(matches!(again, LoadOutcome::Unchanged { .. }), "{again:?}");
    let outcome = commit(s, upserting(ds, a, "u-a2", 40, &id), keyed_rows(&[(1, "a2", 1.5), (2, "a2", 2.5)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 2, superseded_features: 0, .. }), "{outcome:?}");
    let record = s.source(&name(ds), a).await.unwrap().unwrap();
    assert_eq!(record.settings.as_deref(), Some("policy=skip;mode=upsert;key=id;geometry=auto"));
    let want = expected(&[("a2", 1.5), ("a2", 2.5), ("b", 30.0), ("b", 40.0), ("c", 50.0), ("d2", 6.5)]);
    assert_eq!(codes(s, ds).await, want);
    assert_catalog_matches_table(s, ds).await;

    // Deleting an object leaves its features and its source; an operator's removal of a
    // source removes the features it holds.
    let kept = s.remove_source(&name(ds), b, None, RemovalCause::ObjectDeleted).await.unwrap();
    assert_eq!((kept.catalogued, kept.rows, kept.kept_rows, kept.mode), (true, 0, 2, Some(DatasetMode::Upsert)));
    assert_eq!(count(s, ds).await, 6);
    let removed = s.remove_source(&name(ds), b, None, RemovalCause::Request).await.unwrap();
    assert_eq!((removed.catalogued, removed.rows), (true, 2));
    assert_eq!(codes(s, ds).await, expected(&[("a2", 1.5), ("a2", 2.5), ("c", 50.0), ("d2", 6.5)]));
    assert_catalog_matches_table(s, ds).await;

    // Keyed by a property: the key of each feature is its code.
    let code = FeatureKey::Property("code".into());
    let (m1, m2) = ("raw/meters/1.geojson", "raw/meters/2.geojson");
    commit(s, upserting("meters", m1, "m-1", 10, &code), keyed_rows(&[(1, "x", 1.0), (2, "y", 2.0)])).await;
    let outcome =
        commit(s, upserting("meters", m2, "m-2", 20, &code), keyed_rows(&[(7, "y", 7.0), (8, "z", 8.0)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 1, .. }), "{outcome:?}");
    assert_eq!(codes(s, "meters").await, expected(&[("x", 1.0), ("y", 7.0), ("z", 8.0)]));
    assert_eq!(s.dataset(&name("meters")).await.unwrap().unwrap().key_property.as_deref(), Some("code"));

    // Rows read for another key than the dataset's are read again.
    let err = load(
        s,
        upserting("meters", m2, "m-3", 30, &id),
        keyed_rows(&[(9, "w", 9.0)]),
        Some(LoadMessage::Commit(result(1))),
    )
    .await
    .unwrap_err();
    assert!(matches!(err.root(), StoreError::SettingsChanged { .. }) && err.is_transient(), "{err:?}");
    assert_eq!(count(s, "meters").await, 3);

    // An append dataset turned upsert: the next object replaces every row of its keys.
    for (n, key) in ["raw/stock/1.geojson", "raw/stock/2.geojson"].into_iter().enumerate() {
        let p = LoadPlan { mode: DatasetMode::Append, ..upserting("stock", key, &format!("s-{n}"), 10, &code) };
        commit(s, p, keyed_rows(&[(1, "same", n as f64)])).await;
    }
    assert_eq!(count(s, "stock").await, 2);
    let info = s.set_mode(&name("stock"), DatasetMode::Upsert, &code).await.unwrap().unwrap();
    assert_eq!((info.mode, info.key_property.as_deref()), (DatasetMode::Upsert, Some("code")));
    let outcome =
        commit(s, upserting("stock", "raw/stock/3.geojson", "s-3", 20, &code), keyed_rows(&[(1, "same", 3.0)])).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 2, .. }), "{outcome:?}");
    assert_eq!(count(s, "stock").await, 1);
    assert_catalog_matches_table(s, "stock").await;
}

/// A dataset's mode is kept in the catalog and can change; the next object follows it.
async fn mode_changes(s: &dyn Store) {
    let keys = ["raw/mixed/2026-01-01/a.geojson", "raw/mixed/2026-01-01/b.geojson"];
    for (n, key) in keys.iter().enumerate() {
        let p = plan("mixed", key, &format!("m-{n}"), &[]);
        assert!(matches!(commit(s, p, points(2)).await, LoadOutcome::Loaded { .. }));
    }
    assert_eq!(count(s, "mixed").await, 4, "append mode: each object is a source");
    assert!(s.set_mode(&name("nothing_here"), DatasetMode::Replace, &FeatureKey::FeatureId).await.unwrap().is_none());
    let info = s.set_mode(&name("mixed"), DatasetMode::Replace, &FeatureKey::FeatureId).await.unwrap().unwrap();
    assert_eq!((info.mode, info.feature_count), (DatasetMode::Replace, 4), "rows stay until the next object");

    // A plan asking for another mode does not change an existing dataset's; the same content
    // under the new mode is loaded, and replaces every source.
    let same = plan("mixed", keys[0], "m-0", &[]);
    let outcome = commit(s, same, points(2)).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 2, .. }), "{outcome:?}");
    assert_eq!((count(s, "mixed").await, source_keys(s, "mixed").await), (2, vec![keys[0].to_string()]));
    assert_catalog_matches_table(s, "mixed").await;
}

/// Listing a dataset's sources: loaded ones only, by key (bytewise) whatever the load order.
/// More property keys than a table of either store can have columns for: those beyond are
/// kept, under their original keys, in the dataset's overflow column, and read, filtered and
/// tiled like the others.
async fn overflow(s: &dyn Store) {
    const KEYS: usize = 2_100;
    let text = |v: &str| PropValue::Text(v.into());
    let hostile = "it's \"x\" \\ '; DROP TABLE t; --";
    let key = |i: usize| if i == 2_050 { hostile.to_string() } else { format!("k{i:04}") };
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let typed = |i: usize| match if i == KEYS - 1 { 2 } else { i % 4 } {
        0 => FieldType::Integer,
        1 => FieldType::Real,
        2 => FieldType::Text,
        _ => FieldType::Json,
    };
    let fields: Vec<(&str, FieldType)> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), typed(i))).collect();
    // The last key holds text, like every fourth.
    let value = |i: usize| match if i == KEYS - 1 { 2 } else { i % 4 } {
        0 => PropValue::Int(9_007_199_254_740_993 + i as i64),
        1 => PropValue::Real(i as f64 + 0.5),
        2 => text(&format!("v{i}'; --")),
        _ => PropValue::Json(format!(r#"{{"n":[{i},1.50]}}"#)),
    };
    let full = row(0, 1.0, (0..KEYS).map(|i| (i, value(i))).collect());
    let sparse = row(1, 2.0, vec![(KEYS - 1, value(KEYS - 1)), (3, value(3))]);
    let outcome = commit(s, plan("many", "one", "m1", &fields), vec![full, sparse]).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { .. }), "{outcome:?}");

    let info = s.dataset(&name("many")).await.unwrap().unwrap();
    assert_eq!(info.columns.len(), KEYS, "every key is listed");
    let overflowed: Vec<_> = info.columns.iter().filter(|c| c.column == "gf_overflow").collect();
    assert!(!overflowed.is_empty() && overflowed.iter().all(|c| c.ty == FieldType::Json), "{overflowed:?}");
    assert_eq!(info.columns.last().unwrap().key, key(KEYS - 1));

    let features = read(s, "many", all()).await.unwrap();
    assert_eq!(features.len(), 2);
    let (properties, sparse) = (&features[0].1["properties"], &features[1].1["properties"]);
    assert_eq!(properties.as_object().unwrap().len(), KEYS, "every feature names every key");
    for i in [0, 1, 2, 3, 1_999, 2_000, 2_050, 2_051, KEYS - 1] {
        let expected: serde_json::Value = serde_json::from_str(&value(i).to_json_text()).unwrap();
        assert_eq!(properties[key(i).as_str()], expected, "key {}", key(i));
    }
    // Exact beyond doubles, and as written: the JSON text of the stored values.
    let raw = s.features(&name("many"), &all()).await.unwrap().try_collect::<Vec<_>>().await.unwrap();
    assert!(raw[0].json.contains(&format!("\"{}\":9007199254742993", key(2_000))), "{}", &raw[0].json[..200]);
    assert_eq!(sparse[key(KEYS - 1).as_str()], serde_json::json!(format!("v{}'; --", KEYS - 1)));
    assert_eq!(sparse[key(2_000).as_str()], serde_json::Value::Null);

    // Filters on overflow keys: strings by their characters, numbers by their text.
    let filtered = |key: String, value: String| FeatureQuery { properties: vec![(key, value)], ..all() };
    let fids = |features: Vec<(i64, serde_json::Value)>| features.into_iter().map(|(f, _)| f).collect::<Vec<_>>();
    let (first, second) = (features[0].0, features[1].0);
    let last = format!("v{}'; --", KEYS - 1);
    assert_eq!(fids(read(s, "many", filtered(key(KEYS - 1), last)).await.unwrap()), [first, second]);
    assert_eq!(fids(read(s, "many", filtered(key(2_050), format!("v{}'; --", 2_050))).await.unwrap()), [first]);
    assert_eq!(fids(read(s, "many", filtered(key(2_000), "9007199254742993".into())).await.unwrap()), [first]);
    assert_eq!(fids(read(s, "many", filtered(key(2_000), "1".into())).await.unwrap()), Vec::<i64>::new());
    assert!(matches!(read(s, "many", filtered("k9999".into(), "1".into())).await, Err(StoreError::Invalid(_))));

    // Tiles carry overflow properties too (MVT keeps keys and string values as plain text).
    let tile = s.tile(&name("many"), TileId::new(TileMatrixSet::WebMercatorQuad, 0, 0, 0).unwrap()).await.unwrap();
    let tile = tile.unwrap().bytes;
    let holds = |needle: &str| tile.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(holds(&key(KEYS - 1)) && holds(&format!("v{}'; --", KEYS - 1)), "the tile lacks an overflow property");

    // A later source adds keys and widens types; the catalog still counts what the table holds.
    let last_key = key(KEYS - 1);
    let more = [(last_key.as_str(), FieldType::Integer), ("k9000", FieldType::Boolean), ("k0000", FieldType::Text)];
    let row2 = row(0, 3.0, vec![(0, PropValue::Int(7)), (1, PropValue::Bool(true)), (2, text("x"))]);
    commit(s, plan("many", "two", "m2", &more), vec![row2]).await;
    let filtered_more = read(s, "many", filtered("k9000".into(), "true".into())).await.unwrap();
    assert_eq!(filtered_more.len(), 1);
    assert_eq!(filtered_more[0].1["properties"][key(KEYS - 1).as_str()], serde_json::json!(7));
    assert_catalog_matches_table(s, "many").await;
    let removal = s.remove_source(&name("many"), "one", None, RemovalCause::Request).await.unwrap();
    assert_eq!(removal.rows, 2);
    assert_catalog_matches_table(s, "many").await;
    // Every key but the three of source "two" lost its last value: own columns and overflow
    // keys are dropped alike, and the overflow column with its last key.
    assert_eq!(removal.schema_changes.len(), KEYS + 1 - 3, "{:?}", &removal.schema_changes[..3]);
    assert!(removal.schema_changes.iter().all(|c| matches!(c, SchemaChange::Dropped { .. })));
    let dropped_overflow = |k: &str| {
        removal.schema_changes.contains(&SchemaChange::Dropped {
            column: "gf_overflow".into(),
            key: k.into(),
            from: FieldType::Json,
        })
    };
    assert!(dropped_overflow(hostile));
    let info = s.dataset(&name("many")).await.unwrap().unwrap();
    let keys: Vec<&str> = info.columns.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["k0000", last_key.as_str(), "k9000"]);
    let features = read(s, "many", all()).await.unwrap();
    assert_eq!(features[0].1["properties"], serde_json::json!({"k0000": "x", last_key.as_str(): 7, "k9000": true}));
    // The table takes new keys again, in columns of their own.
    let again = plan("many", "three", "m3", &[("k0001", FieldType::Real)]);
    commit(s, again, vec![row(0, 4.0, vec![(0, PropValue::Real(0.5))])]).await;
    assert_catalog_matches_table(s, "many").await;
    let keys: Vec<String> =
        s.dataset(&name("many")).await.unwrap().unwrap().columns.into_iter().map(|c| c.key).collect();
    assert_eq!(keys, ["k0000", last_key.as_str(), "k9000", "k0001"]);
}

/// Every change a load or removal makes to a table's layout is reported; a strict load may add
/// columns but not change a type; a column goes with the last row that has a value in it.
async fn schema_changes(s: &dyn Store) {
    let ds = "evolving";
    let (int, text) = (PropValue::Int, |v: &str| PropValue::Text(v.into()));
    let added = |k: &str, to: FieldType| SchemaChange::Added { column: k.into(), key: k.into(), to };
    let loaded = |outcome: LoadOutcome| match outcome {
        LoadOutcome::Loaded { schema_changes, .. } => schema_changes,
        other => panic!("{other:?}"),
    };
    let columns = |info: Option<geoflow_store::DatasetInfo>| {
        info.unwrap().columns.into_iter().map(|c| (c.key, c.ty)).collect::<Vec<_>>()
    };

    let one = plan(ds, "one", "e1", &[("pop", FieldType::Integer), ("name", FieldType::Text)]);
    let changes = loaded(commit(s, one, vec![row(0, 1.0, vec![(0, int(5)), (1, text("a"))])]).await);
    assert_eq!(changes, [added("pop", FieldType::Integer), added("name", FieldType::Text)]);

    // Strict: a value of another type rejects the load, naming the feature; nothing changes.
    let strict = |source: &str, hash: &str, fields: &[(&str, FieldType)]| LoadPlan {
        schema_policy: SchemaPolicy::Strict,
        ..plan(ds, source, hash, fields)
    };
    let fields = [("pop", FieldType::Text), ("extra", FieldType::Real)];
    let rows = vec![
        row(0, 2.0, vec![(0, int(3)), (1, PropValue::Real(1.5))]),
        row(1, 3.0, vec![(0, PropValue::Null)]),
        row(2, 4.0, vec![(0, text("many"))]),
    ];
    let err = load(s, strict("two", "e2", &fields), rows, Some(LoadMessage::Commit(result(3)))).await.unwrap_err();
    assert_eq!(err.class(), geoflow_store::ErrorClass::BadInput, "{err}");
    let message = err.to_string();
    for part in ["feature 2", "\"pop\"", "integer", "json"] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(err.recorded_load().is_some(), "the rejected load is in the history");
    assert_eq!(
        columns(s.dataset(&name(ds)).await.unwrap()),
        [("pop".into(), FieldType::Integer), ("name".into(), FieldType::Text)]
    );
    assert_eq!(count(s, ds).await, 1);

    // Strict allows new columns.
    let fields = [("pop", FieldType::Integer), ("extra", FieldType::Real)];
    let rows = vec![row(0, 2.0, vec![(0, int(3)), (1, PropValue::Real(1.5))])];
    let changes = loaded(commit(s, strict("two", "e2b", &fields), rows).await);
    assert_eq!(changes, [added("extra", FieldType::Real)]);

    // Widen (the default): the type widens and the change is reported.
    let three = plan(ds, "three", "e3", &[("pop", FieldType::Text), ("tmp", FieldType::Boolean)]);
    let changes =
        loaded(commit(s, three, vec![row(0, 5.0, vec![(0, text("many")), (1, PropValue::Bool(true))])]).await);
    let widened = SchemaChange::Widened {
        column: "pop".into(),
        key: "pop".into(),
        from: FieldType::Integer,
        to: FieldType::Json,
    };
    assert_eq!(changes, [widened, added("tmp", FieldType::Boolean)]);

    // A new version of a source without a key drops the column its old rows alone used.
    let described = s.dataset(&name(ds)).await.unwrap().unwrap();
    let three = plan(ds, "three", "e3b", &[("pop", FieldType::Integer)]);
    let changes = loaded(commit(s, three, vec![row(0, 5.0, vec![(0, int(8))])]).await);
    assert_eq!(changes, [SchemaChange::Dropped { column: "tmp".into(), key: "tmp".into(), from: FieldType::Boolean }]);
    // A read of the dataset as described before reads the table as it is now.
    assert_eq!(read_described(s, &described, all()).await.unwrap(), read(s, ds, all()).await.unwrap());

    // Removing the last source with a key drops its column.
    let removal = s.remove_source(&name(ds), "two", None, RemovalCause::Request).await.unwrap();
    assert_eq!(
        removal.schema_changes,
        [SchemaChange::Dropped { column: "extra".into(), key: "extra".into(), from: FieldType::Real }]
    );
    assert_eq!(
        columns(s.dataset(&name(ds)).await.unwrap()),
        [("pop".into(), FieldType::Json), ("name".into(), FieldType::Text)]
    );
    let features = read(s, ds, all()).await.unwrap();
    assert!(features
        .iter()
        .all(|(_, f)| f["properties"].get("extra").is_none() && f["properties"].get("tmp").is_none()));
    assert_catalog_matches_table(s, ds).await;

    // A key comes back: a new column, reported as added.
    let before = read(s, ds, all()).await.unwrap();
    let (first, _) = before[0];
    assert!(s.feature(&name(ds), first, None).await.unwrap().is_some());
    let four = plan(ds, "four", "e4", &[("extra", FieldType::Text)]);
    let changes = loaded(commit(s, four, vec![row(0, 6.0, vec![(0, text("back"))])]).await);
    assert_eq!(changes, [added("extra", FieldType::Text)]);
    let (last, feature) = read(s, ds, all()).await.unwrap().pop().unwrap();
    assert_eq!(feature["properties"]["extra"], "back");
    // A single feature read after a load is read with the layout it made.
    let one = s.feature(&name(ds), last, None).await.unwrap().unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&one.json).unwrap(), feature);

    // The load history keeps every change, and the day's report lists them in commit order.
    let now = OffsetDateTime::now_utc();
    let day = Window { start: now - time::Duration::DAY, end: now + time::Duration::DAY };
    let activity = s.activity(day).await.unwrap();
    let evolving = activity.datasets.iter().find(|d| d.dataset == ds).expect("the dataset is in the report");
    let reported: Vec<(&str, &str, &str)> = evolving
        .schema_changes
        .iter()
        .map(|r| {
            let (kind, key) = match &r.change {
                SchemaChange::Added { key, .. } => ("added", key),
                SchemaChange::Widened { key, .. } => ("widened", key),
                SchemaChange::Dropped { key, .. } => ("dropped", key),
                SchemaChange::GeometryWidened { column, .. } => ("geometry_widened", column),
            };
            (r.source.as_str(), kind, key.as_str())
        })
        .collect();
    assert_eq!(
        reported,
        [
            ("one", "added", "pop"),
            ("one", "added", "name"),
            ("two", "added", "extra"),
            ("three", "widened", "pop"),
            ("three", "added", "tmp"),
            ("three", "dropped", "tmp"),
            ("two", "dropped", "extra"),
            ("four", "added", "extra"),
        ]
    );
    assert!(evolving.schema_changes.iter().all(|r| r.at.ends_with('Z')), "{:?}", evolving.schema_changes);
}

fn shaped(index: u64, g: Geom) -> Row {
    Row { geometry: Some(wkb::encode(&g)), ..row(index, 0.0, vec![]) }
}

fn square(x: f64) -> Vec<Vec<Pos>> {
    vec![vec![Pos::xy(x, 0.0), Pos::xy(x + 1.0, 0.0), Pos::xy(x + 1.0, 1.0), Pos::xy(x, 0.0)]]
}

/// A plan whose schema pass saw geometries of `kinds` (2D).
fn typed_plan(dataset: &str, source: &str, hash: &str, kinds: &[GeometryKind]) -> LoadPlan {
    let mut plan = plan(dataset, source, hash, &[]);
    plan.schema.geometry = GeometryKinds::of(kinds, false);
    plan
}

async fn geometry_type(s: &dyn Store, dataset: &str) -> String {
    s.dataset(&name(dataset)).await.unwrap().expect("the dataset exists").geometry_type
}

async fn stored_types(s: &dyn Store, dataset: &str) -> Vec<String> {
    let features = read(s, dataset, all()).await.unwrap();
    features.iter().map(|(_, f)| f["geometry"]["type"].as_str().unwrap_or("null").to_string()).collect()
}

/// Typed geometry columns: the type the load's kinds decide, single geometries promoted to the
/// column's Multi kind, widening as a reported change, strict loads held to the type.
async fn geometry_types(s: &dyn Store) {
    use GeometryKind::*;
    let ds = "parcels";
    let outcome = commit(
        s,
        typed_plan(ds, "one", "g1", &[Polygon, MultiPolygon]),
        vec![
            shaped(0, Geom::Polygon(square(0.0))),
            shaped(1, Geom::MultiPolygon(vec![square(2.0), square(4.0)])),
            Row { geometry: None, ..row(2, 0.0, vec![]) },
            shaped(3, Geom::Polygon(Vec::new())),
        ],
    )
    .await;
    let LoadOutcome::Loaded { schema_changes, .. } = outcome else { panic!("{outcome:?}") };
    assert!(schema_changes.is_empty(), "{schema_changes:?}");
    assert_eq!(geometry_type(s, ds).await, "MultiPolygon");
    // The polygon (and the empty polygon) are stored as MultiPolygons; a null geometry stays null.
    assert_eq!(stored_types(s, ds).await, ["MultiPolygon", "MultiPolygon", "null", "MultiPolygon"]);

    // Strict: a load that does not fit is rejected at its first misfit, and nothing changes.
    let strict = LoadPlan { schema_policy: SchemaPolicy::Strict, ..typed_plan(ds, "two", "g2", &[Polygon, Point]) };
    let rows = vec![shaped(0, Geom::Polygon(square(6.0))), shaped(1, Geom::Point(Pos::xy(1.0, 1.0)))];
    let err = load(s, strict, rows, Some(LoadMessage::Commit(result(2)))).await.unwrap_err();
    assert_eq!(err.class(), geoflow_store::ErrorClass::BadInput, "{err}");
    let message = err.to_string();
    for part in ["strict", "feature 1", "Point", "\"geom\"", "MultiPolygon", "Geometry"] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert_eq!(geometry_type(s, ds).await, "MultiPolygon");
    assert_eq!(count(s, ds).await, 4);
    // Strict loads that fit go in, promoted.
    let strict = LoadPlan { schema_policy: SchemaPolicy::Strict, ..typed_plan(ds, "two", "g2b", &[Polygon]) };
    let LoadOutcome::Loaded { schema_changes, .. } =
        commit(s, strict, vec![shaped(0, Geom::Polygon(square(6.0)))]).await
    else {
        panic!("a polygon fits a MultiPolygon column")
    };
    assert!(schema_changes.is_empty(), "{schema_changes:?}");

    // Widen (the default): the column becomes generic, and the load says so.
    let points = typed_plan(ds, "three", "g3", &[Point]);
    let outcome = commit(s, points, vec![shaped(0, Geom::Point(Pos::xy(1.0, 1.0)))]).await;
    let LoadOutcome::Loaded { schema_changes, .. } = outcome else { panic!("{outcome:?}") };
    let widened =
        SchemaChange::GeometryWidened { column: "geom".into(), from: "MultiPolygon".into(), to: "Geometry".into() };
    assert_eq!(schema_changes, [widened]);
    assert_eq!(geometry_type(s, ds).await, "Geometry");
    assert_eq!(count(s, ds).await, 6);
    let mut types = stored_types(s, ds).await;
    types.sort();
    assert_eq!(types, ["MultiPolygon", "MultiPolygon", "MultiPolygon", "MultiPolygon", "Point", "null"]);

    // A row the schema pass did not foresee (a repair makes a MultiPolygon of a polygon, say)
    // widens the column in the middle of the load instead of failing it.
    let ds = "repaired";
    let outcome = commit(
        s,
        typed_plan(ds, "one", "r1", &[Polygon]),
        vec![shaped(0, Geom::Polygon(square(0.0))), shaped(1, Geom::MultiPolygon(vec![square(2.0), square(4.0)]))],
    )
    .await;
    let LoadOutcome::Loaded { schema_changes, .. } = outcome else { panic!("{outcome:?}") };
    let widened =
        SchemaChange::GeometryWidened { column: "geom".into(), from: "Polygon".into(), to: "Geometry".into() };
    assert_eq!(schema_changes, [widened]);
    assert_eq!(geometry_type(s, ds).await, "Geometry");
    assert_eq!(stored_types(s, ds).await, ["Polygon", "MultiPolygon"]);
    // Under strict, a table that existed keeps its type: such a row rejects the load.
    let strict = LoadPlan { schema_policy: SchemaPolicy::Strict, ..typed_plan("typed", "one", "t1", &[Point]) };
    commit(s, strict.clone(), vec![shaped(0, Geom::Point(Pos::xy(1.0, 1.0)))]).await;
    assert_eq!(geometry_type(s, "typed").await, "Point");
    let again = LoadPlan { source: "two".into(), ..strict };
    let rows = vec![shaped(0, Geom::Point(Pos::xy(1.0, 1.0))), shaped(1, Geom::MultiPoint(vec![Pos::xy(1.0, 1.0)]))];
    let err = load(s, again, rows, Some(LoadMessage::Commit(result(2)))).await.unwrap_err();
    assert!(err.to_string().contains("feature 1 has a MultiPoint geometry"), "{err}");
    assert_eq!((geometry_type(s, "typed").await, count(s, "typed").await), ("Point".to_string(), 1));

    // Z, the requested types, and the column of an empty dataset.
    let z = LoadPlan {
        schema: Schema { geometry: GeometryKinds::of(&[LineString], true), ..Schema::default() },
        ..plan("heights", "one", "z1", &[])
    };
    let line = Geom::LineString(vec![Pos { x: 0.0, y: 0.0, z: 1.0 }, Pos { x: 1.0, y: 1.0, z: 2.0 }]);
    commit(s, z, vec![shaped(0, line)]).await;
    assert_eq!(geometry_type(s, "heights").await, "LineStringZ");
    let promoted = LoadPlan { geometry_type: GeometryType::PromoteMulti, ..typed_plan("multi", "one", "m1", &[Point]) };
    commit(s, promoted, vec![shaped(0, Geom::Point(Pos::xy(1.0, 1.0)))]).await;
    assert_eq!(geometry_type(s, "multi").await, "MultiPoint");
    assert_eq!(stored_types(s, "multi").await, ["MultiPoint"]);
    let any = LoadPlan { geometry_type: GeometryType::Any, ..typed_plan("multi", "two", "m2", &[Point]) };
    let LoadOutcome::Loaded { schema_changes, .. } = commit(s, any, vec![]).await else { panic!() };
    assert_eq!(
        schema_changes,
        [SchemaChange::GeometryWidened { column: "geom".into(), from: "MultiPoint".into(), to: "Geometry".into() }]
    );
    commit(s, plan("nothing", "one", "n1", &[]), vec![]).await;
    assert_eq!(geometry_type(s, "nothing").await, "Geometry");
}

async fn source_listing(s: &dyn Store) {
    let ds = name("listed");
    commit(s, versioned("listed", "b.geojson", "lb-h1", "v9"), vec![row(0, 1.0, vec![])]).await;
    commit(s, plan("listed", "a.geojson", "la-h1", &[]), vec![row(0, 2.0, vec![]), row(1, 3.0, vec![])]).await;
    commit(s, plan("listed", "Z.geojson", "lz-h1", &[]), vec![row(0, 4.0, vec![])]).await;
    let abort = LoadMessage::Abort(LoadResult { error: Some("bad input".into()), ..LoadResult::default() });
    let failed = load(s, plan("listed", "c.geojson", "lc-h1", &[]), vec![row(0, 5.0, vec![])], Some(abort)).await;
    assert!(matches!(failed, Ok(LoadOutcome::Failed { .. })), "{failed:?}");

    let listed = s.sources(&ds).await.unwrap();
    let summary: Vec<(&str, &str, u64, Option<&str>)> = listed
        .iter()
        .map(|r| {
            (r.source.as_str(), r.version.content_hash.as_str(), r.feature_count, r.version.object_version.as_deref())
        })
        .collect();
    assert_eq!(
        summary,
        [("Z.geojson", "lz-h1", 1, None), ("a.geojson", "la-h1", 2, None), ("b.geojson", "lb-h1", 1, Some("v9"))]
    );
    for rec in &listed {
        assert_eq!(rec.dataset, ds);
        assert_eq!(s.source(&ds, &rec.source).await.unwrap().as_ref(), Some(rec), "as source() reads it");
    }

    assert_eq!(s.remove_source(&ds, "a.geojson", None, RemovalCause::Request).await.unwrap().rows, 2);
    let left: Vec<String> = s.sources(&ds).await.unwrap().into_iter().map(|r| r.source).collect();
    assert_eq!(left, ["Z.geojson", "b.geojson"]);
    assert!(s.sources(&name("listed_none")).await.unwrap().is_empty(), "an unknown dataset has no sources");
}

/// Dropping a dataset takes its table and catalog entries, records each source as removed,
/// waits for a load in progress, and leaves the name free for a later load.
async fn dropping(s: &dyn Store) {
    let ds = name("dropped");
    commit(
        s,
        plan("dropped", "a", "da-h1", &[("name", FieldType::Text)]),
        vec![row(0, 1.0, vec![]), row(1, 2.0, vec![])],
    )
    .await;
    commit(s, plan("dropped", "b", "db-h1", &[]), vec![row(0, 3.0, vec![])]).await;
    let described = s.dataset(&ds).await.unwrap().unwrap();
    assert_eq!(read_described(s, &described, all()).await.unwrap(), read(s, "dropped", all()).await.unwrap());
    let today = OffsetDateTime::now_utc().date();
    let removed_before = s.activity(window(today)).await.unwrap().totals.sources_removed;

    let dropped = s.drop_dataset(&ds).await.unwrap();
    assert_eq!(dropped, Some(geoflow_store::DatasetDrop { sources: 2, rows: 3 }));
    assert_eq!(s.dataset(&ds).await.unwrap(), None);
    assert!(s.datasets().await.unwrap().iter().all(|d| d.name != ds));
    assert!(s.sources(&ds).await.unwrap().is_empty());
    assert!(s.source(&ds, "a").await.unwrap().is_none());
    let reads = read(s, "dropped", all()).await;
    assert!(matches!(reads.as_ref().map_err(StoreError::root), Err(StoreError::NotFound { .. })), "{reads:?}");
    assert!(matches!(s.feature(&ds, 1, None).await.map_err(|e| e.class()), Err(ErrorClass::NotFound)));
    let reads = read_described(s, &described, all()).await;
    assert!(matches!(reads.as_ref().map_err(StoreError::root), Err(StoreError::NotFound { .. })), "{reads:?}");
    for tms in TileMatrixSet::ALL {
        assert_eq!(s.tile(&ds, TileId::new(tms, 0, 0, 0).unwrap()).await.unwrap(), None);
    }
    assert_eq!(s.drop_dataset(&ds).await.unwrap(), None, "nothing left to drop");
    assert_eq!(s.drop_dataset(&name("never_there")).await.unwrap(), None);
    // The day's report sees both sources leave, and no dataset holding them at its end.
    let report = s.activity(window(today)).await.unwrap();
    assert_eq!(report.totals.sources_removed, removed_before + 2);
    let state = report.datasets.iter().find(|d| d.dataset == "dropped").expect("the dataset had activity today");
    assert_eq!((state.end_of_day.sources, state.end_of_day.feature_count), (0, 0));
    assert!(s.datasets().await.unwrap().iter().any(|d| d.name.as_str() == "roads"), "other datasets stay");

    // A load of the same name starts the dataset afresh, with the columns of its own schema.
    commit(
        s,
        plan("dropped", "c", "dc-h1", &[("other", FieldType::Integer)]),
        vec![row(0, 4.0, vec![(0, PropValue::Int(1))])],
    )
    .await;
    let again = s.dataset(&ds).await.unwrap().expect("recreated");
    assert_eq!((again.feature_count, again.sources), (1, 1));
    let keys: Vec<&str> = again.columns.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["other"]);
    assert_eq!(read(s, "dropped", all()).await.unwrap().len(), 1);
    assert_catalog_matches_table(s, "dropped").await;

    // A drop waits for a load in progress (the dataset's lock) and then drops what it stored.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let loading = s.load(plan("dropped", "d", "dd-h1", &[]), rx);
    let feeding = async {
        tx.send(LoadMessage::Rows(vec![row(0, 5.0, vec![])])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        tx.send(LoadMessage::Commit(result(1))).await.unwrap();
    };
    let dropping = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.drop_dataset(&ds).await
    };
    let (loaded, (), dropped) = tokio::join!(loading, feeding, dropping);
    assert!(matches!(loaded, Ok(LoadOutcome::Loaded { .. })), "{loaded:?}");
    assert_eq!(dropped.unwrap(), Some(geoflow_store::DatasetDrop { sources: 2, rows: 2 }), "the load came first");
    assert_eq!(s.dataset(&ds).await.unwrap(), None);
}

async fn dataset_version(s: &dyn Store, dataset: &str) -> i64 {
    s.datasets().await.unwrap().into_iter().find(|d| d.name.as_str() == dataset).map(|d| d.version).unwrap()
}

fn new_job(id: &str, dataset: &str, source: &str) -> NewJob {
    NewJob {
        id: id.into(),
        dataset: name(dataset),
        source: source.into(),
        action: JobAction::Load,
        object_version: Some("etag-1".into()),
    }
}

fn status(status: JobStatus) -> JobUpdate {
    JobUpdate { status: Some(status), ..JobUpdate::default() }
}

async fn list(s: &dyn Jobs, query: JobQuery) -> Vec<String> {
    s.jobs(&query).await.unwrap().into_iter().map(|j| j.id).collect()
}

async fn jobs_contract(store: &Arc<dyn Jobs>) {
    let s = &**store;
    // Created queued; a second upsert (a redelivered event) returns the first unchanged.
    let first = s.upsert_job(&new_job("job-1", "parcels", "raw/parcels/a.geojson")).await.unwrap();
    assert_eq!((first.status, first.attempts, first.action), (JobStatus::Queued, 0, JobAction::Load));
    assert_eq!((first.load_id, &first.error, &first.result), (None, &None, &None));
    assert_eq!((&first.started_at, &first.finished_at), (&None, &None));
    assert_eq!(first.object_version.as_deref(), Some("etag-1"));
    assert_eq!(first.created_at, first.updated_at);
    let drop = NewJob { action: JobAction::Drop, ..new_job("job-drop", "gone", "*") };
    assert_eq!(s.upsert_job(&drop).await.unwrap().action, JobAction::Drop);
    let mut other = new_job("job-1", "roads", "elsewhere");
    other.action = JobAction::Remove;
    other.object_version = None;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(s.upsert_job(&other).await.unwrap(), first);
    assert_eq!(s.job("job-1").await.unwrap(), Some(first.clone()));

    // Queued → Running → Succeeded.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let running = s.update_job("job-1", status(JobStatus::Running)).await.unwrap();
    assert_eq!((running.status, running.attempts), (JobStatus::Running, 1));
    let started = running.started_at.clone().expect("started_at set");
    assert!(running.finished_at.is_none());
    assert!(running.updated_at > first.updated_at, "{} > {}", running.updated_at, first.updated_at);
    assert_eq!(running.created_at, first.created_at);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let summary = serde_json::json!({
        "features_loaded": 3, "skipped": 0, "errors": [{"index": 0, "id": null, "reason": "it's \"bad\"; --"}],
        "nested": {"a": [1.5, true, null, "名前"]}
    });
    let done = s
        .update_job(
            "job-1",
            JobUpdate {
                status: Some(JobStatus::Succeeded),
                load_id: Some(42),
                result: Some(summary.clone()),
                ..JobUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((done.status, done.attempts, done.load_id), (JobStatus::Succeeded, 1, Some(42)));
    assert_eq!(done.started_at.as_deref(), Some(started.as_str()));
    let finished = done.finished_at.clone().expect("finished_at set");
    assert!(finished >= started);
    assert_eq!(done.result.as_ref(), Some(&summary));
    assert_eq!(s.job("job-1").await.unwrap(), Some(done.clone()));
    // An update that names no field only touches updated_at.
    let touched = s.update_job("job-1", JobUpdate::default()).await.unwrap();
    assert_eq!(Job { updated_at: done.updated_at.clone(), ..touched }, done);

    // Running twice counts two attempts and keeps the first start; errors are set and cleared.
    s.upsert_job(&new_job("job-2", "parcels", "raw/parcels/b.geojson")).await.unwrap();
    let one = s.update_job("job-2", status(JobStatus::Running)).await.unwrap();
    let failed = s
        .update_job("job-2", JobUpdate { error: Some(Some("connection reset".into())), ..status(JobStatus::Queued) })
        .await
        .unwrap();
    assert_eq!((failed.status, failed.error.as_deref()), (JobStatus::Queued, Some("connection reset")));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let two = s.update_job("job-2", status(JobStatus::Running)).await.unwrap();
    assert_eq!(two.attempts, 2);
    assert_eq!(two.started_at, one.started_at);
    assert_eq!(two.error.as_deref(), Some("connection reset"), "an update without an error keeps it");
    let cleared = s.update_job("job-2", JobUpdate { error: Some(None), ..JobUpdate::default() }).await.unwrap();
    assert_eq!((cleared.error, cleared.status, cleared.attempts), (None, JobStatus::Running, 2));
    let gave_up = s
        .update_job("job-2", JobUpdate { error: Some(Some("bad input".into())), ..status(JobStatus::Failed) })
        .await
        .unwrap();
    assert_eq!((gave_up.status, gave_up.error.as_deref()), (JobStatus::Failed, Some("bad input")));
    assert!(gave_up.finished_at.is_some());

    // Unknown ids.
    assert_eq!(s.job("no-such-job").await.unwrap(), None);
    let err = s.update_job("no-such-job", status(JobStatus::Running)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(s.job("no-such-job").await.unwrap().is_none(), "an update creates nothing");

    // Hostile ids, sources and errors are just text.
    let hostile = [
        "'; DROP TABLE geoflow_jobs; --".to_string(),
        "\"; DROP TABLE geoflow.jobs; --".to_string(),
        "it's a \"quoted\" \\ id".to_string(),
        "名前/ünïcödé/🚀".to_string(),
        "j".repeat(200),
    ];
    for id in &hostile {
        let created = s.upsert_job(&new_job(id, "hostile", id)).await.unwrap();
        assert_eq!((&created.id, &created.source), (id, id));
        let updated =
            s.update_job(id, JobUpdate { error: Some(Some(id.clone())), ..status(JobStatus::Failed) }).await.unwrap();
        assert_eq!(updated.error.as_ref(), Some(id));
        assert_eq!(s.job(id).await.unwrap(), Some(updated));
    }
    assert_eq!(list(s, JobQuery { dataset: Some(name("hostile")), ..JobQuery::default() }).await.len(), hostile.len());
    assert_eq!(s.job("job-1").await.unwrap().unwrap().status, JobStatus::Succeeded);

    // Concurrent writers: no update is lost, none fails.
    s.upsert_job(&new_job("busy", "parcels", "busy")).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let own = format!("busy-{i}");
                store.upsert_job(&new_job(&own, "busy", &own)).await.unwrap();
                store.update_job(&own, status(JobStatus::Running)).await.unwrap();
                store.update_job("busy", status(JobStatus::Running)).await.unwrap();
                store.update_job(&own, status(JobStatus::SkippedDuplicate)).await.unwrap();
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(s.job("busy").await.unwrap().unwrap().attempts, 8);
    s.update_job("busy", status(JobStatus::Succeeded)).await.unwrap();
    let statuses: Vec<JobStatus> = s
        .jobs(&JobQuery { dataset: Some(name("busy")), ..JobQuery::default() })
        .await
        .unwrap()
        .iter()
        .map(|j| j.status)
        .collect();
    assert_eq!(statuses, vec![JobStatus::SkippedDuplicate; 8]);
}

/// Listing: newest first, filters, limits and a cursor that visits every job once.
async fn job_listing(s: &dyn Jobs) {
    let mut created = Vec::new();
    for i in 0..12 {
        let dataset = if i % 3 == 0 { "listing_a" } else { "listing_b" };
        // Apart in time, so that creation order is the listing order whatever the clock's
        // resolution; ids are deliberately not in creation order.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let id = format!("{}-{i}", 99 - i);
        s.upsert_job(&new_job(&id, dataset, "s")).await.unwrap();
        created.push(id);
    }
    for id in created.iter().step_by(4) {
        s.update_job(id, status(JobStatus::Running)).await.unwrap();
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let all = list(s, JobQuery::default()).await;
    assert_eq!(&all[..12], &newest_first[..], "the newest jobs come first");
    let every = all.len();

    let only_a = list(s, JobQuery { dataset: Some(name("listing_a")), ..JobQuery::default() }).await;
    let expected: Vec<String> =
        newest_first.iter().filter(|id| created.iter().position(|c| c == *id).unwrap() % 3 == 0).cloned().collect();
    assert_eq!(only_a, expected);
    let running = list(s, JobQuery { status: Some(JobStatus::Running), ..JobQuery::default() }).await;
    assert_eq!(running, vec![created[8].clone(), created[4].clone(), created[0].clone()]);
    let both =
        list(s, JobQuery { dataset: Some(name("listing_b")), status: Some(JobStatus::Running), ..JobQuery::default() })
            .await;
    assert_eq!(both, vec![created[8].clone(), created[4].clone()]);
    assert_eq!(list(s, JobQuery { limit: 2, ..JobQuery::default() }).await, newest_first[..2].to_vec());
    assert_eq!(list(s, JobQuery { limit: 0, ..JobQuery::default() }).await.len(), every.min(100));
    assert!(list(s, JobQuery { dataset: Some(name("listing_none")), ..JobQuery::default() }).await.is_empty());

    // Pages of 5 cover every job exactly once, in order.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = list(s, JobQuery { limit: 5, before: before.clone(), ..JobQuery::default() }).await;
        assert!(page.len() <= 5);
        let Some(last) = page.last().cloned() else { break };
        paged.extend(page);
        before = Some(last);
    }
    assert_eq!(paged, all);
    assert_eq!(paged.iter().collect::<HashSet<_>>().len(), every);
    // The cursor combines with filters.
    let page =
        list(s, JobQuery { dataset: Some(name("listing_a")), before: Some(created[9].clone()), ..JobQuery::default() })
            .await;
    assert_eq!(page, vec![created[6].clone(), created[3].clone(), created[0].clone()]);
    let err = s.jobs(&JobQuery { before: Some("no-such-job".into()), ..JobQuery::default() }).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

/// Time windows: `since <= created_at < until`, whatever offset the bounds are written in.
async fn job_window(s: &dyn Jobs) {
    let mut created = Vec::new();
    for i in 0..3 {
        // Apart in time, so that each job has a created_at of its own at millisecond precision.
        tokio::time::sleep(Duration::from_millis(3)).await;
        created.push(s.upsert_job(&new_job(&format!("window-{i}"), "window", "s")).await.unwrap());
    }
    let at = |i: usize| Some(created[i].created_at.clone());
    let id = |i: usize| created[i].id.clone();
    let window = |since: Option<String>, until: Option<String>| JobQuery {
        dataset: Some(name("window")),
        since,
        until,
        ..JobQuery::default()
    };
    assert_eq!(list(s, window(at(1), None)).await, [id(2), id(1)], "since is inclusive");
    assert_eq!(list(s, window(None, at(1))).await, [id(0)], "until is exclusive");
    assert_eq!(list(s, window(at(0), at(2))).await, [id(1), id(0)]);
    assert!(list(s, window(at(1), at(1))).await.is_empty());
    assert!(list(s, window(at(2), at(0))).await.is_empty());
    let wide = window(Some("1970-01-01T00:00:00Z".into()), Some("9999-12-31T23:59:59.999999999Z".into()));
    assert_eq!(list(s, wide).await, [id(2), id(1), id(0)]);

    // The same instants in other offsets select the same jobs.
    let shifted = |i: usize, offset: UtcOffset| {
        let t = OffsetDateTime::parse(&created[i].created_at, &Rfc3339).unwrap();
        Some(t.to_offset(offset).format(&Rfc3339).unwrap())
    };
    let (east, west) = (offset!(+05:30), offset!(-08:00));
    assert_eq!(list(s, window(shifted(1, east), None)).await, [id(2), id(1)]);
    assert_eq!(list(s, window(shifted(0, west), shifted(2, east))).await, [id(1), id(0)]);
    // With the cursor and the status filter.
    let paged = JobQuery { before: Some(id(2)), ..window(at(0), None) };
    assert_eq!(list(s, paged).await, [id(1), id(0)]);
    assert!(list(s, JobQuery { status: Some(JobStatus::Running), ..window(at(0), None) }).await.is_empty());

    // Bad bounds are refused, naming the parameter.
    for (since, until, named) in [
        (Some("yesterday"), None, "since"),
        (Some("2026-01-01T00:00:00"), None, "since"),
        (Some("2026-01-01"), None, "since"),
        (None, Some("2026-13-01T00:00:00Z"), "until"),
        (at(0).as_deref(), Some(""), "until"),
    ] {
        let query = window(since.map(String::from), until.map(String::from));
        let err = s.jobs(&query).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(text.starts_with(named) && text.contains("RFC 3339"), "{text}");
    }
}

/// A job update while a load of another dataset is in flight neither deadlocks nor fails.
async fn job_update_during_a_load(store: &Arc<dyn Store>) {
    let s = &**store;
    s.upsert_job(&new_job("during-load", "inflight_jobs", "j")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let loading = {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.load(plan("inflight", "x", "x1", &[]), rx).await })
    };
    tx.send(LoadMessage::Rows(vec![row(0, 1.0, vec![])])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let updating = {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.update_job("during-load", status(JobStatus::Running)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send(LoadMessage::Commit(result(1))).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), loading).await.expect("the load finishes");
    assert!(matches!(outcome.unwrap().unwrap(), LoadOutcome::Loaded { .. }));
    let job = tokio::time::timeout(Duration::from_secs(20), updating).await.expect("the update finishes");
    assert_eq!(job.unwrap().unwrap().attempts, 1);
}

/// A catalog `at` a step before the `needs` of this build is not ready, and says what to run,
/// until `migrate` brings it up to date.
async fn behind_until_migrated(s: &dyn Store, at: i64, needs: i64) {
    let err = s.check_ready().await.unwrap_err();
    assert!(matches!(err, StoreError::Incompatible { .. }), "{err:?}");
    assert!(!err.is_transient(), "only migrating helps");
    let text = err.to_string();
    assert!(text.contains(&format!("at step {at},")), "{text}");
    assert!(text.contains(&format!("needs step {needs}")) && text.contains("run `geoflow migrate`"), "{text}");
    s.migrate().await.unwrap();
    s.check_ready().await.unwrap();
    // The steps really ran: jobs (the latest step of both stores) work.
    s.upsert_job(&new_job(&format!("after-step-{at}"), "ready", "s")).await.unwrap();
}

/// A catalog ahead of this build is not ready either.
async fn ahead(s: &dyn Store, at: i64) {
    let err = s.check_ready().await.unwrap_err();
    assert!(matches!(err, StoreError::Incompatible { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("at step {at}, newer than this build knows")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn geopackage_readiness_follows_the_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready.gpkg");
    let store = GeoPackageStore::open(&path).unwrap();
    store.check_ready().await.unwrap();
    let sql = |batch: &str| Connection::open(&path).unwrap().execute_batch(batch).unwrap();

    // Steps 10, 9, 8, 7, 6, 5 and 4 undone: the catalog of an earlier release (the wider checks of
    // steps 5 and 9 stay: they rebuild those tables again).
    sql("ALTER TABLE geoflow_datasets DROP COLUMN temporal_end;
         ALTER TABLE geoflow_datasets DROP COLUMN temporal_start;
         ALTER TABLE geoflow_datasets DROP COLUMN key_property;
         ALTER TABLE geoflow_loads DROP COLUMN schema_changes_json;
         ALTER TABLE geoflow_datasets DROP COLUMN mode;
         ALTER TABLE geoflow_sources DROP COLUMN settings;
         ALTER TABLE geoflow_sources DROP COLUMN modified;
         ALTER TABLE geoflow_columns DROP COLUMN overflow;
         DROP TABLE geoflow_removals;
         DROP INDEX geoflow_loads_finished_at;
         DROP INDEX geoflow_jobs_finished_at;
         ALTER TABLE geoflow_loads DROP COLUMN duration_ms;
         ALTER TABLE geoflow_loads DROP COLUMN problem_counts_json;
         ALTER TABLE geoflow_loads DROP COLUMN geometry_types_json;
         ALTER TABLE geoflow_loads DROP COLUMN area_m2;
         ALTER TABLE geoflow_loads DROP COLUMN length_m;
         DELETE FROM geoflow_migrations WHERE version IN (4, 5, 6, 7, 8, 9, 10);");
    behind_until_migrated(&store, 3, 10).await;

    // A step from a later release.
    sql("INSERT INTO geoflow_migrations VALUES (99, '2099-01-01T00:00:00.000Z')");
    ahead(&store, 99).await;
    sql("DELETE FROM geoflow_migrations WHERE version = 99");
    store.check_ready().await.unwrap();

    // Nothing migrated: an empty database where the GeoPackage was.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::write(&path, b"").unwrap();
    behind_until_migrated(&store, 0, 10).await;

    // No file at all: the probe fails (transiently: a volume may not be mounted yet) and
    // creates nothing.
    let missing = GeoPackageStore::open(dir.path().join("missing.gpkg")).unwrap();
    std::fs::remove_file(missing.path()).unwrap();
    let err = missing.check_ready().await.unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }) && err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!missing.path().exists(), "the probe left a file behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgis_readiness_follows_the_migrations() {
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let store = PostgisStore::connect(db.url()).await.unwrap();
    store.check_ready().await.unwrap();
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);

    // Steps 10, 9, 8, 7, 6, 5, 4 and 3 undone: the catalog of an earlier release.
    client
        .batch_execute(
            "ALTER TABLE geoflow.datasets DROP COLUMN temporal_start, DROP COLUMN temporal_end;
             ALTER TABLE geoflow.datasets DROP COLUMN key_property;
             ALTER TABLE geoflow.loads DROP COLUMN schema_changes;
             ALTER TABLE geoflow.datasets DROP COLUMN mode;
             ALTER TABLE geoflow.sources DROP COLUMN settings, DROP COLUMN modified;
             DROP INDEX geoflow.columns_dataset_column_name_key;
             ALTER TABLE geoflow.columns DROP COLUMN overflow,
               ADD CONSTRAINT columns_dataset_column_name_key UNIQUE (dataset, column_name);
             ALTER TABLE geoflow.sources DROP COLUMN min_fid, DROP COLUMN max_fid;
             DROP TABLE geoflow.removals;
             DROP INDEX geoflow.loads_finished_at, geoflow.jobs_finished_at;
             ALTER TABLE geoflow.loads DROP COLUMN problem_counts, DROP COLUMN geometry_types, DROP COLUMN area_m2,
               DROP COLUMN length_m;
             ALTER TABLE geoflow.loads DROP CONSTRAINT loads_status_check,
               ADD CONSTRAINT loads_status_check CHECK (status IN ('loaded', 'unchanged', 'failed'));
             DELETE FROM geoflow.migrations WHERE version IN (3, 4, 5, 6, 7, 8, 9, 10);",
        )
        .await
        .unwrap();
    behind_until_migrated(&store, 2, 10).await;

    // A step from a later release.
    client.batch_execute("INSERT INTO geoflow.migrations (version) VALUES (99)").await.unwrap();
    ahead(&store, 99).await;
    client.batch_execute("DELETE FROM geoflow.migrations WHERE version = 99").await.unwrap();
    store.check_ready().await.unwrap();

    // Nothing migrated: a database without the catalog schema.
    client.batch_execute("DROP SCHEMA geoflow CASCADE").await.unwrap();
    behind_until_migrated(&store, 0, 10).await;
}

/// The in-memory jobs catalog the API's tests use keeps the jobs contract of the stores.
#[tokio::test(flavor = "multi_thread")]
async fn memory_jobs_keep_the_jobs_contract() {
    let jobs: Arc<dyn Jobs> = Arc::new(MemoryJobs::new());
    jobs_contract(&jobs).await;
    job_listing(&*jobs).await;
    job_window(&*jobs).await;
}

/// A feature as a sorted read gives it: fid, properties, sort values.
type Sorted = (i64, serde_json::Value, Vec<SortValue>);

async fn read_sorted(s: &dyn Store, dataset: &str, query: &FeatureQuery) -> Result<Vec<Sorted>, StoreError> {
    let stream = s.features(&name(dataset), query).await?;
    let features: Vec<_> = stream.try_collect().await?;
    Ok(features
        .into_iter()
        .map(|f| {
            let json: serde_json::Value = serde_json::from_str(&f.json).unwrap();
            (f.fid, json["properties"].clone(), f.sort_values)
        })
        .collect())
}

/// Two property values as the sort order compares them, worked out here apart from either
/// store: NULL after every value, text by code point, numbers by value, false before true.
fn compare_values(a: &serde_json::Value, b: &serde_json::Value) -> std::cmp::Ordering {
    use serde_json::Value::*;
    use std::cmp::Ordering;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Greater,
        (_, Null) => Ordering::Less,
        (String(a), String(b)) => a.cmp(b),
        (Bool(a), Bool(b)) => a.cmp(b),
        (Number(a), Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a.as_f64().unwrap().partial_cmp(&b.as_f64().unwrap()).unwrap(),
        },
        _ => panic!("values of one property differ in type: {a} {b}"),
    }
}

fn sort_keys(spec: &[&str]) -> Vec<SortKey> {
    spec.iter()
        .map(|k| match k.strip_prefix('-') {
            Some(key) => SortKey { key: key.into(), descending: true },
            None => SortKey { key: (*k).into(), descending: false },
        })
        .collect()
}

/// The fids of `every` in the order of `sort`, ties by fid.
fn sorted_fids(every: &[Sorted], sort: &[SortKey]) -> Vec<i64> {
    let mut order: Vec<&Sorted> = every.iter().collect();
    order.sort_by(|a, b| {
        sort.iter()
            .map(|k| {
                let o = compare_values(&a.1[&k.key], &b.1[&k.key]);
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.0.cmp(&b.0))
    });
    order.into_iter().map(|f| f.0).collect()
}

/// Every page of `query` in the order of `sort`, forward by `after` cursors and then backward
/// by `before` cursors from the last feature: both walks must give `expected`.
async fn walk_pages(s: &dyn Store, dataset: &str, query: &FeatureQuery, sort: &[SortKey], expected: &[i64]) {
    let sorted = FeatureQuery { sort: sort.to_vec(), ..query.clone() };
    let mut forward: Vec<Sorted> = Vec::new();
    loop {
        let cursor = forward.last().map(|f| FeatureQuery { after: Some(f.0), position: f.2.clone(), ..sorted.clone() });
        let page = read_sorted(s, dataset, cursor.as_ref().unwrap_or(&sorted)).await.unwrap();
        assert!(page.len() <= query.limit);
        if page.is_empty() {
            break;
        }
        forward.extend(page);
        assert!(forward.len() <= expected.len(), "{sort:?}: more features than there are");
    }
    let fids: Vec<i64> = forward.iter().map(|f| f.0).collect();
    assert_eq!(fids, expected, "forward under {sort:?}");
    let Some(last) = forward.last() else { return };
    let mut backward = vec![last.0];
    let mut first = last.clone();
    loop {
        let before = FeatureQuery { before: Some(first.0), position: first.2.clone(), ..sorted.clone() };
        let page = read_sorted(s, dataset, &before).await.unwrap();
        assert!(page.len() <= query.limit);
        let Some(head) = page.first() else { break };
        first = head.clone();
        backward.splice(0..0, page.iter().map(|f| f.0));
        assert!(backward.len() <= expected.len(), "{sort:?}: more features than there are backwards");
    }
    assert_eq!(backward, expected, "backward under {sort:?}");
}

/// `sort`: pages in the order of properties, with ties and NULLs, text by code point, the same
/// in every store; keyset cursors carry the sort values, forward and backward.
async fn sorted_reads(s: &dyn Store) {
    let fields = [
        ("name", FieldType::Text),
        ("pop", FieldType::WideInteger),
        ("score", FieldType::Real),
        ("flag", FieldType::Boolean),
        ("day", FieldType::Date),
        ("at", FieldType::DateTime),
        ("nested", FieldType::Json),
    ];
    let text = |v: &str| PropValue::Text(v.into());
    let names = ["Apple", "apple", "Zürich", "éclair", "b", "B", "", "Ab", "ab", "a b", "日本", "z"];
    let pops = [-3, 0, 5, 100, 9_007_199_254_740_993, i64::MIN];
    let scores = [-1.5, 0.0, 2.25, 1e20, 0.1, -0.0];
    let days = ["2024-01-02", "1999-12-31", "2024-02-29"];
    let ats = ["2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05.001Z", "1970-01-01T00:00:00.000Z"];
    let mut seed = 7u64;
    let mut pick = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n as u64) as usize
    };
    let rows: Vec<Row> = (0..60)
        .map(|i| {
            let mut props = Vec::new();
            // Each property is NULL now and then (the last choice).
            if let Some(v) = names.get(pick(names.len() + 2)) {
                props.push((0, text(v)));
            }
            if let Some(v) = pops.get(pick(pops.len() + 1)) {
                props.push((1, PropValue::Int(*v)));
            }
            if let Some(v) = scores.get(pick(scores.len() + 1)) {
                props.push((2, PropValue::Real(*v)));
            }
            if let Some(v) = [false, true].get(pick(3)) {
                props.push((3, PropValue::Bool(*v)));
            }
            if let Some(v) = days.get(pick(days.len() + 1)) {
                props.push((4, text(v)));
            }
            if let Some(v) = ats.get(pick(ats.len() + 1)) {
                props.push((5, text(v)));
            }
            props.push((6, PropValue::Json(format!(r#"{{"i":{i}}}"#))));
            row(i, (i % 10) as f64, props)
        })
        .collect();
    commit(s, plan("ranked", "r.geojson", "hash-r1", &fields), rows).await;

    let every = read_sorted(s, "ranked", &all()).await.unwrap();
    assert_eq!(every.len(), 60);
    assert!(every.iter().all(|f| f.2.is_empty()), "no sort, no sort values");
    let specs: [&[&str]; 10] = [
        &["name"],
        &["-name"],
        &["pop"],
        &["-pop", "name"],
        &["flag", "-score"],
        &["score"],
        &["day", "-at"],
        &["-at"],
        &["-flag", "-day", "name", "pop"],
        &["fid_is_no_property"][..0],
    ];
    for spec in specs {
        let sort = sort_keys(spec);
        let expected = sorted_fids(&every, &sort);
        for limit in [1, 4, 7, 100] {
            walk_pages(s, "ranked", &FeatureQuery { limit, ..FeatureQuery::default() }, &sort, &expected).await;
        }
    }

    // Filters and a bbox still apply; the bbox window (fid order) is not taken.
    let sort = sort_keys(&["-name", "score"]);
    let expected = sorted_fids(&every, &sort);
    let flagged: Vec<Sorted> = every.iter().filter(|f| f.1["flag"] == true).cloned().collect();
    let query = FeatureQuery { properties: vec![("flag".into(), "true".into())], limit: 3, ..FeatureQuery::default() };
    walk_pages(s, "ranked", &query, &sort, &sorted_fids(&flagged, &sort)).await;
    // Rows lie at x = 0..9 (y = x / 2): the box holds those with x <= 8.
    let boxed: Vec<i64> = expected.iter().copied().filter(|fid| (fid - every[0].0) % 10 != 9).collect();
    let bbox = Bbox { min_x: -1.0, min_y: -1.0, max_x: 8.5, max_y: 5.0 };
    walk_pages(s, "ranked", &FeatureQuery { bbox: Some(bbox), limit: 4, ..FeatureQuery::default() }, &sort, &boxed)
        .await;

    // Sort values are what the features show (dates as their text).
    let by_at = read_sorted(s, "ranked", &FeatureQuery { sort: sort_keys(&["at", "day"]), ..all() }).await.unwrap();
    for (_, props, values) in &by_at {
        for (value, key) in values.iter().zip(["at", "day"]) {
            match value {
                SortValue::Text(t) => assert_eq!(props[key], *t),
                SortValue::Null => assert!(props[key].is_null()),
                other => panic!("{other:?}"),
            }
        }
    }

    // What cannot be sorted by, and cursors that do not fit, are refused.
    let refused = |query: FeatureQuery| async move {
        match s.features(&name("ranked"), &query).await {
            Err(StoreError::Invalid(reason)) => reason,
            Ok(_) => panic!("{query:?} was read"),
            Err(e) => panic!("{query:?}: {e}"),
        }
    };
    assert!(refused(FeatureQuery { sort: sort_keys(&["nested"]), ..all() }).await.contains("nested"));
    assert!(refused(FeatureQuery { sort: sort_keys(&["nope"]), ..all() }).await.contains("nope"));
    let cursor =
        |position: Vec<SortValue>| FeatureQuery { sort: sort_keys(&["pop"]), after: Some(1), position, ..all() };
    refused(cursor(vec![])).await;
    refused(cursor(vec![SortValue::Text("5".into())])).await;
    refused(cursor(vec![SortValue::Real(5.0)])).await;
    let dated = |v: &str| FeatureQuery {
        sort: sort_keys(&["day"]),
        before: Some(1),
        position: vec![SortValue::Text(v.into())],
        ..all()
    };
    refused(dated("2024-02-30")).await;
    refused(dated("0000-00-00")).await;
    let named = FeatureQuery {
        sort: sort_keys(&["name"]),
        after: Some(1),
        position: vec![SortValue::Text("a\0b".into())],
        ..all()
    };
    refused(named).await;
    // A cursor that fits but names no stored feature still pages from its position.
    let between =
        FeatureQuery { sort: sort_keys(&["pop"]), after: Some(i64::MAX), position: vec![SortValue::Int(4)], ..all() };
    let pop_order = sorted_fids(&every, &sort_keys(&["pop"]));
    let from_five: Vec<i64> = read_sorted(s, "ranked", &between).await.unwrap().iter().map(|f| f.0).collect();
    let skipped = pop_order
        .iter()
        .take_while(|fid| every.iter().any(|f| f.0 == **fid && f.1["pop"].as_i64().is_some_and(|p| p <= 4)))
        .count();
    assert_eq!(from_five, pop_order[skipped..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn geopackage_store_sorts_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = GeoPackageStore::open(dir.path().join("sorted.gpkg")).unwrap();
    sorted_reads(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgis_store_sorts_pages() {
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let store = PostgisStore::connect(db.url()).await.unwrap();
    sorted_reads(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn geopackage_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = GeoPackageStore::open(dir.path().join("contract.gpkg")).unwrap();
    contract(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgis_store_keeps_the_contract() {
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let store = PostgisStore::connect(db.url()).await.unwrap();
    contract(Arc::new(store)).await;
}

async fn read(s: &dyn Store, dataset: &str, query: FeatureQuery) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
    let stream = s.features(&name(dataset), &query).await?;
    let features: Vec<_> = stream.try_collect().await?;
    Ok(features
        .into_iter()
        .map(|f| (f.fid, serde_json::from_str(&f.json).unwrap_or_else(|e| panic!("not JSON ({e}): {}", f.json))))
        .collect())
}

/// The features of a dataset as the catalog described it in `info` (perhaps some time ago).
async fn read_described(
    s: &dyn Store,
    info: &geoflow_store::DatasetInfo,
    query: FeatureQuery,
) -> Result<Vec<(i64, serde_json::Value)>, StoreError> {
    let features: Vec<_> = s.described_features(info, &query).await?.try_collect().await?;
    Ok(features.into_iter().map(|f| (f.fid, serde_json::from_str(&f.json).unwrap())).collect())
}

fn all() -> FeatureQuery {
    FeatureQuery { limit: 1000, ..FeatureQuery::default() }
}

/// `datetime` on declared date and date-time properties: instants, days and intervals with open
/// ends, the same features from every store, and the extent in time they span.
async fn temporal_reads(s: &dyn Store) {
    let text = |v: &str| PropValue::Text(v.into());
    let fields = [
        ("day", FieldType::Date),
        ("at", FieldType::DateTime),
        ("from", FieldType::Date),
        ("until", FieldType::DateTime),
        ("name", FieldType::Text),
    ];
    let rows = vec![
        row(
            0,
            1.0,
            vec![
                (0, text("2026-01-01")),
                (1, text("2026-01-01T10:00:00.000Z")),
                (2, text("2026-01-01")),
                (3, text("2026-01-05T00:00:00.000Z")),
            ],
        ),
        row(1, 2.0, vec![(0, text("2026-01-03")), (1, text("2026-01-03T23:59:59.999Z")), (2, text("2026-01-04"))]),
        row(2, 3.0, vec![(3, text("2026-01-02T00:00:00.000Z"))]),
        row(3, 4.0, vec![(0, text("2026-02-01")), (1, text("2026-02-01T00:00:00.000Z")), (4, text("x"))]),
    ];
    commit(s, plan("events", "e.geojson", "hash-e1", &fields), rows).await;
    let events = name("events");
    let t = |v: &str| OffsetDateTime::parse(v, &Rfc3339).unwrap();
    let declare = |start: &str, end: Option<&str>| Temporal { start: start.into(), end: end.map(Into::into) };
    let matching = |temporal: &Temporal, from: Option<&str>, to: Option<&str>| FeatureQuery {
        temporal: Some(TemporalFilter { properties: temporal.clone(), from: from.map(t), to: to.map(t) }),
        ..all()
    };
    let first_fid = read(s, "events", all()).await.unwrap()[0].0;
    let fids = |wanted: &[i64]| wanted.iter().map(|i| first_fid + i).collect::<Vec<_>>();

    // A day: the whole day, and nothing outside it.
    let day = declare("day", None);
    let version = dataset_version(s, "events").await;
    let info = s.set_temporal(&events, Some(&day)).await.unwrap().unwrap();
    assert_eq!(info.temporal.as_ref(), Some(&day));
    assert!(dataset_version(s, "events").await > version, "a declaration is a new version");
    for (from, to, want) in [
        (Some("2026-01-03T12:00:00Z"), Some("2026-01-03T12:00:00Z"), vec![1]),
        (Some("2026-01-01T12:00:00Z"), Some("2026-01-02T00:00:00Z"), vec![0]),
        (None, Some("2026-01-31T00:00:00Z"), vec![0, 1]),
        (Some("2026-01-04T00:00:00Z"), None, vec![3]),
        (Some("2026-01-02T00:00:00+05:00"), Some("2026-01-02T10:00:00+05:00"), vec![0]),
    ] {
        let got: Vec<i64> = read(s, "events", matching(&day, from, to)).await.unwrap().iter().map(|f| f.0).collect();
        assert_eq!(got, fids(&want), "day {from:?}..{to:?}");
    }

    // An instant, to the millisecond stored: bounds between two milliseconds are exact.
    let at = declare("at", None);
    s.set_temporal(&events, Some(&at)).await.unwrap().unwrap();
    for (from, to, want) in [
        (Some("2026-01-03T23:59:59.999Z"), Some("2026-01-03T23:59:59.999Z"), vec![1]),
        (Some("2026-01-01T10:00:00Z"), Some("2026-01-03T23:59:59.998Z"), vec![0]),
        (Some("2026-01-03T23:59:59.9985Z"), None, vec![1, 3]),
        (Some("2026-01-03T23:59:59.9991Z"), None, vec![3]),
        (None, Some("2026-01-01T09:59:59.9999Z"), vec![]),
    ] {
        let got: Vec<i64> = read(s, "events", matching(&at, from, to)).await.unwrap().iter().map(|f| f.0).collect();
        assert_eq!(got, fids(&want), "at {from:?}..{to:?}");
    }

    // An interval of a date and a date-time, each end open where a feature leaves it null; a
    // feature with neither is nowhere in time.
    let span = declare("from", Some("until"));
    s.set_temporal(&events, Some(&span)).await.unwrap().unwrap();
    for (from, to, want) in [
        (Some("2026-01-03T00:00:00Z"), Some("2026-01-03T12:00:00Z"), vec![0]),
        (None, Some("2026-01-01T06:00:00Z"), vec![0, 2]),
        (Some("2026-03-01T00:00:00Z"), None, vec![1]),
        (Some("2026-01-02T00:00:00Z"), Some("2026-01-02T00:00:00Z"), vec![0, 2]),
    ] {
        let got: Vec<i64> = read(s, "events", matching(&span, from, to)).await.unwrap().iter().map(|f| f.0).collect();
        assert_eq!(got, fids(&want), "span {from:?}..{to:?}");
    }

    // Extents in time: a day ends at the next midnight; an end some feature leaves open is open.
    let extent = |t: &Temporal| {
        let (t, events) = (t.clone(), events.clone());
        async move { s.time_extent(&events, Some(&t)).await.unwrap() }
    };
    let some = |v: &str| Some(v.to_string());
    assert_eq!(extent(&day).await, (some("2026-01-01T00:00:00.000Z"), some("2026-02-02T00:00:00.000Z")));
    assert_eq!(extent(&at).await, (some("2026-01-01T10:00:00.000Z"), some("2026-02-01T00:00:00.000Z")));
    assert_eq!(extent(&span).await, (None, None));
    let loaded = s.time_extent(&events, None).await.unwrap();
    assert!(loaded.0.is_some() && loaded.0 == loaded.1, "one load: {loaded:?}");
    assert!(matches!(s.time_extent(&name("no_such"), None).await, Err(StoreError::NotFound { .. })));

    // Only date and date-time properties of the dataset, two different ones for an interval.
    for bad in [declare("name", None), declare("nope", None), declare("day", Some("day")), declare("day", Some("name"))]
    {
        let e = s.set_temporal(&events, Some(&bad)).await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadInput, "{bad:?}: {e}");
    }
    assert_eq!(s.dataset(&events).await.unwrap().unwrap().temporal.as_ref(), Some(&span), "a refusal changes nothing");
    assert!(s.set_temporal(&name("no_such"), Some(&day)).await.unwrap().is_none());
    let cleared = s.set_temporal(&events, None).await.unwrap().unwrap();
    assert_eq!(cleared.temporal, None);
}

/// Features read back as GeoJSON: values as loaded, filters, keyset pages.
async fn feature_reads(s: &dyn Store) {
    let hostile = "it's \"x\"; DROP TABLE places; --";
    let fields = [
        ("name", FieldType::Text),
        ("flag", FieldType::Boolean),
        ("score", FieldType::Real),
        ("big", FieldType::WideInteger),
        ("nested", FieldType::Json),
        (hostile, FieldType::Text),
    ];
    let at = |index: u64, g: Option<Geom>, props: Vec<(usize, PropValue)>| Row {
        index,
        id: PropValue::Text(format!("original-{index}")),
        geometry: g.as_ref().map(wkb::encode),
        measures: Measures::default(),
        properties: props,
    };
    let square =
        vec![Pos::xy(-5.0, -5.0), Pos::xy(5.0, -5.0), Pos::xy(5.0, 5.0), Pos::xy(-5.0, 5.0), Pos::xy(-5.0, -5.0)];
    let rows = vec![
        at(
            0,
            Some(Geom::Point(Pos::xy(1.0, 0.5))),
            vec![(0, PropValue::Text("a".into())), (1, PropValue::Bool(true)), (2, PropValue::Real(1.5))],
        ),
        at(
            1,
            Some(Geom::Point(Pos::xy(10.0, 5.0))),
            vec![
                (0, PropValue::Text("b".into())),
                (3, PropValue::Int(9_007_199_254_740_993)),
                (4, PropValue::Json(r#"{"k":[1,2.50,"x"]}"#.into())),
                (5, PropValue::Text("O'Brien".into())),
            ],
        ),
        at(2, Some(Geom::Polygon(vec![square])), vec![(0, PropValue::Text("square".into()))]),
        at(3, Some(Geom::Point(Pos::xy(170.0, 10.0))), vec![(0, PropValue::Null)]),
        at(4, None, vec![]),
    ];
    let mut p = plan("places", "p.geojson", "hash-p1", &[]);
    p.schema.fields = fields.iter().map(|(k, t)| Field { key: (*k).into(), ty: *t }).collect();
    p.schema.id_type = FieldType::Text;
    commit(s, p, rows).await;

    let every = read(s, "places", all()).await.unwrap();
    assert_eq!(every.len(), 5);
    assert!(every.windows(2).all(|w| w[0].0 < w[1].0), "fid order");
    for (fid, f) in &every {
        assert_eq!(f["type"], "Feature");
        assert_eq!(f["id"], *fid, "{f}");
    }
    let props = |i: usize| every[i].1["properties"].clone();
    let nulls =
        serde_json::json!({ "name": null, "flag": null, "score": null, "big": null, "nested": null, hostile: null });
    let with = |values: serde_json::Value| {
        let mut all = nulls.clone();
        all.as_object_mut().unwrap().extend(values.as_object().unwrap().clone());
        all
    };
    assert_eq!(props(0), with(serde_json::json!({ "name": "a", "flag": true, "score": 1.5 })));
    assert_eq!(
        props(1),
        with(
            serde_json::json!({ "name": "b", "big": 9_007_199_254_740_993u64, "nested": { "k": [1, 2.5, "x"] }, hostile: "O'Brien" })
        )
    );
    assert_eq!(props(3), nulls, "every property is named, null or not");
    assert_eq!(every[0].1["geometry"], serde_json::json!({ "type": "Point", "coordinates": [1.0, 0.5] }));
    assert_eq!(every[2].1["geometry"]["type"], "Polygon");
    assert_eq!(every[2].1["geometry"]["coordinates"][0].as_array().unwrap().len(), 5);
    assert!(every[4].1["geometry"].is_null());
    let fids = |v: &[(i64, serde_json::Value)]| v.iter().map(|f| f.0).collect::<Vec<_>>();
    let fid = |i: usize| every[i].0;

    // Keyset pages walk the whole dataset once.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = read(s, "places", FeatureQuery { limit: 2, after, ..FeatureQuery::default() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|f| f.0);
        walked.extend(fids(&page));
    }
    assert_eq!(walked, fids(&every));
    // And backwards: the page before a fid is the last features before it, in fid order.
    let before = |fid, limit| FeatureQuery { limit, before: Some(fid), ..FeatureQuery::default() };
    assert_eq!(fids(&read(s, "places", before(fid(3), 2)).await.unwrap()), [fid(1), fid(2)]);
    assert_eq!(fids(&read(s, "places", before(fid(1), 2)).await.unwrap()), [fid(0)]);
    let boxed_before =
        FeatureQuery { bbox: Some(Bbox { min_x: 0.0, min_y: 0.0, max_x: 2.0, max_y: 1.0 }), ..before(fid(4), 5) };
    assert_eq!(fids(&read(s, "places", boxed_before).await.unwrap()), [fid(0), fid(2)]);

    // Boxes select what intersects them, across the antimeridian too.
    let bbox = |min_x, min_y, max_x, max_y| FeatureQuery { bbox: Some(Bbox { min_x, min_y, max_x, max_y }), ..all() };
    assert_eq!(fids(&read(s, "places", bbox(0.0, 0.0, 2.0, 1.0)).await.unwrap()), [fid(0), fid(2)]);
    assert_eq!(fids(&read(s, "places", bbox(5.0, 5.0, 10.0, 6.0)).await.unwrap()), [fid(1), fid(2)], "edges touch");
    assert_eq!(fids(&read(s, "places", bbox(20.0, 20.0, 30.0, 30.0)).await.unwrap()), Vec::<i64>::new());
    assert_eq!(fids(&read(s, "places", bbox(160.0, 0.0, -170.0, 20.0)).await.unwrap()), [fid(3)]);

    // Property equality, compared as text.
    let having = |key: &str, value: &str| FeatureQuery { properties: vec![(key.into(), value.into())], ..all() };
    assert_eq!(fids(&read(s, "places", having("name", "b")).await.unwrap()), [fid(1)]);
    assert_eq!(fids(&read(s, "places", having("flag", "true")).await.unwrap()), [fid(0)]);
    assert_eq!(fids(&read(s, "places", having("score", "1.5")).await.unwrap()), [fid(0)]);
    assert_eq!(fids(&read(s, "places", having("big", "9007199254740993")).await.unwrap()), [fid(1)]);
    assert_eq!(fids(&read(s, "places", having(hostile, "O'Brien")).await.unwrap()), [fid(1)]);
    assert_eq!(fids(&read(s, "places", having("name", "' OR 1=1 --")).await.unwrap()), Vec::<i64>::new());
    let both = FeatureQuery {
        properties: vec![("name".into(), "a".into()), ("flag".into(), "true".into())],
        ..bbox(0.0, 0.0, 2.0, 1.0)
    };
    assert_eq!(fids(&read(s, "places", both).await.unwrap()), [fid(0)]);
    assert!(matches!(read(s, "places", having("nope", "x")).await, Err(StoreError::Invalid(_))));

    // The lineage timestamp.
    let now = OffsetDateTime::now_utc();
    let hour = time::Duration::hours(1);
    let loaded = |from, to| FeatureQuery { loaded: Some((from, to)), ..all() };
    assert_eq!(read(s, "places", loaded(Some(now - hour), Some(now + hour))).await.unwrap().len(), 5);
    assert_eq!(read(s, "places", loaded(Some(now - hour), None)).await.unwrap().len(), 5);
    assert_eq!(read(s, "places", loaded(None, Some(now - hour))).await.unwrap().len(), 0);

    // One feature by fid.
    let one = s.feature(&name("places"), fid(1), None).await.unwrap().expect("found by fid");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&one.json).unwrap(), every[1].1);
    assert!(s.feature(&name("places"), fid(4) + 1000, None).await.unwrap().is_none());
    assert!(matches!(s.feature(&name("nowhere"), 1, None).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(read(s, "nowhere", all()).await, Err(StoreError::NotFound { .. })));
}

/// CQL2 filters select the same features on every store: comparisons by type (text by code
/// point, LIKE case-sensitive), dates and date-times, IS NULL, the spatial relations, with a
/// bbox, a property filter and pages.
async fn filters(s: &dyn Store) {
    let fields = [
        ("name", FieldType::Text),
        ("pop", FieldType::Integer),
        ("area", FieldType::Real),
        ("capital", FieldType::Boolean),
        ("founded", FieldType::Date),
        ("seen", FieldType::DateTime),
        ("tags", FieldType::Json),
    ];
    let city =
        |index: u64, g: Option<Geom>, name: &str, pop: i64, area: f64, capital: bool, founded: &str, seen: &str| Row {
            index,
            id: PropValue::Int(index as i64),
            geometry: g.as_ref().map(wkb::encode),
            measures: Measures::default(),
            properties: vec![
                (0, PropValue::Text(name.into())),
                (1, PropValue::Int(pop)),
                (2, PropValue::Real(area)),
                (3, PropValue::Bool(capital)),
                (4, PropValue::Text(founded.into())),
                (5, PropValue::Text(seen.into())),
            ],
        };
    let point = |x, y| Some(Geom::Point(Pos::xy(x, y)));
    let square =
        vec![Pos::xy(0.0, 40.0), Pos::xy(4.0, 40.0), Pos::xy(4.0, 44.0), Pos::xy(0.0, 44.0), Pos::xy(0.0, 40.0)];
    let mut lisbon =
        city(0, point(-9.14, 38.72), "Lisbon", 545_000, 100.05, true, "1147-10-25", "2024-01-02T03:04:05.000Z");
    lisbon.properties.push((6, PropValue::Json(r#"{"a":1}"#.into())));
    let rows = vec![
        lisbon,
        city(1, point(-5.98, 37.39), "Sevilla", 684_000, 140.8, false, "0712-01-01", "2023-06-01T00:00:00.000Z"),
        city(2, point(-8.61, 41.15), "Porto", 231_000, 41.42, false, "0868-01-01", "2024-01-01T00:00:00.000Z"),
        city(3, point(-8.89, 38.52), "Setúbal", 123_000, 230.3, false, "1249-01-01", "2022-12-31T23:59:59.999Z"),
        city(4, point(-3.70, 40.42), "Madrid", 3_300_000, 604.3, true, "0865-01-01", "2025-05-05T05:05:05.005Z"),
        Row {
            index: 5,
            id: PropValue::Int(5),
            geometry: Some(wkb::encode(&Geom::Polygon(vec![square]))),
            measures: Measures::default(),
            properties: vec![(0, PropValue::Text("zone".into()))],
        },
        Row { index: 6, id: PropValue::Int(6), geometry: None, measures: Measures::default(), properties: vec![] },
    ];
    let mut p = plan("cities", "c.geojson", "hash-c1", &[]);
    p.schema.fields = fields.iter().map(|(k, t)| Field { key: (*k).into(), ty: *t }).collect();
    commit(s, p, rows).await;
    let info = s.datasets().await.unwrap().into_iter().find(|d| d.name.as_str() == "cities").unwrap();
    let types = move |key: &str| info.columns.iter().find(|c| c.key == key).map(|c| c.ty);
    let parse =
        |lang, text: &str| Filter::parse(text, lang, &geoflow_core::served_crs::ServedCrs::crs84(), &types).unwrap();
    let names = |features: Vec<(i64, serde_json::Value)>| {
        features
            .iter()
            .map(|(_, f)| f["properties"]["name"].as_str().unwrap_or("(none)").to_string())
            .collect::<Vec<_>>()
    };
    let cases: &[(&str, &[&str])] = &[
        ("pop > 500000", &["Lisbon", "Sevilla", "Madrid"]),
        ("pop > 500000 AND name LIKE 'S%'", &["Sevilla"]),
        ("name LIKE 's%'", &[]),
        ("name LIKE 'S_t%'", &["Setúbal"]),
        ("name NOT LIKE '%o%'", &["Sevilla", "Setúbal", "Madrid"]),
        // Code point order: every capital letter sorts before "a".
        ("name < 'a'", &["Lisbon", "Sevilla", "Porto", "Setúbal", "Madrid"]),
        ("capital = true", &["Lisbon", "Madrid"]),
        ("NOT capital", &["Sevilla", "Porto", "Setúbal"]),
        ("area BETWEEN 40 AND 100.05", &["Lisbon", "Porto"]),
        ("pop IN (231000, 3300000, 7)", &["Porto", "Madrid"]),
        ("name IS NULL", &["(none)"]),
        ("tags IS NULL AND pop IS NOT NULL", &["Sevilla", "Porto", "Setúbal", "Madrid"]),
        ("founded < DATE('0868-01-01')", &["Sevilla", "Madrid"]),
        ("founded = '1147-10-25'", &["Lisbon"]),
        ("seen >= TIMESTAMP('2024-01-01T00:00:00Z')", &["Lisbon", "Porto", "Madrid"]),
        ("seen = TIMESTAMP('2025-05-05T05:05:05.005Z')", &["Madrid"]),
        ("T_BEFORE(seen, TIMESTAMP('2023-01-01T00:00:00Z'))", &["Setúbal"]),
        ("T_INTERSECTS(seen, INTERVAL('2023-01-01T00:00:00Z', '2024-01-01T00:00:00Z'))", &["Sevilla", "Porto"]),
        ("T_DISJOINT(seen, INTERVAL('..', '2024-01-01T00:00:00Z'))", &["Lisbon", "Madrid"]),
        ("T_DURING(seen, INTERVAL('2023-01-01T00:00:00Z', '2024-01-02T03:04:05Z'))", &["Sevilla", "Porto"]),
        ("T_MEETS(seen, INTERVAL('2024-01-02T03:04:05Z', '..'))", &["Lisbon"]),
        ("T_STARTS(INTERVAL(founded, founded), INTERVAL('1147-10-25', '2000-01-01'))", &["Lisbon"]),
        ("T_CONTAINS(INTERVAL('0800-01-01', '..'), founded)", &["Lisbon", "Porto", "Setúbal", "Madrid"]),
        // Features without a value satisfy neither a temporal function nor its NOT.
        ("NOT T_INTERSECTS(seen, INTERVAL('..', '..'))", &[]),
        ("NOT T_AFTER(seen, INTERVAL('..', '2024-01-01T00:00:00Z'))", &["Sevilla", "Porto", "Setúbal"]),
        // Two properties compared: numbers of different widths, text by code point.
        ("pop > area AND area > 100", &["Lisbon", "Sevilla", "Setúbal", "Madrid"]),
        ("pop <= area", &[]),
        ("name <> name", &[]),
        ("S_INTERSECTS(geometry, BBOX(-10, 36, -5, 42))", &["Lisbon", "Sevilla", "Porto", "Setúbal"]),
        ("S_WITHIN(geometry, POLYGON((-10 36, -5 36, -5 39, -10 39, -10 36)))", &["Lisbon", "Sevilla", "Setúbal"]),
        ("S_CONTAINS(geometry, POINT(2 42))", &["zone"]),
        ("S_TOUCHES(geometry, POINT(0 42))", &["zone"]),
        ("S_DISJOINT(geometry, BBOX(-10, 36, -5, 42))", &["Madrid", "zone"]),
        ("NOT S_INTERSECTS(geometry, BBOX(-10, 36, -5, 42))", &["Madrid", "zone"]),
        ("S_EQUALS(geometry, POINT(-3.7 40.42))", &["Madrid"]),
        ("S_CROSSES(geometry, LINESTRING(-1 42, 5 42))", &["zone"]),
        ("S_OVERLAPS(geometry, POLYGON((3 43, 5 43, 5 45, 3 45, 3 43)))", &["zone"]),
        ("S_INTERSECTS(geometry, POINT(2 42)) OR name = 'Porto'", &["Porto", "zone"]),
        ("true AND NOT false", &["Lisbon", "Sevilla", "Porto", "Setúbal", "Madrid", "zone", "(none)"]),
    ];
    for (text, expected) in cases {
        let query = FeatureQuery { filter: Some(parse(FilterLang::Text, text)), ..all() };
        let got = names(read(s, "cities", query).await.unwrap_or_else(|e| panic!("{text}: {e}")));
        assert_eq!(got, *expected, "{text}");
    }
    let json = r#"{"op":"and","args":[{"op":">","args":[{"property":"pop"},500000]},{"op":"like","args":[{"property":"name"},"S%"]}]}"#;
    let query = FeatureQuery { filter: Some(parse(FilterLang::Json, json)), ..all() };
    assert_eq!(names(read(s, "cities", query).await.unwrap()), ["Sevilla"]);

    // With a bbox, a property filter and pages, forward and back.
    let filter = Some(parse(FilterLang::Text, "pop < 1000000"));
    let boxed = FeatureQuery {
        filter: filter.clone(),
        bbox: Some(Bbox { min_x: -10.0, min_y: 36.0, max_x: -5.0, max_y: 42.0 }),
        properties: vec![("capital".into(), "false".into())],
        ..all()
    };
    assert_eq!(names(read(s, "cities", boxed).await.unwrap()), ["Sevilla", "Porto", "Setúbal"]);
    let first =
        read(s, "cities", FeatureQuery { filter: filter.clone(), limit: 2, ..FeatureQuery::default() }).await.unwrap();
    assert_eq!(names(first.clone()), ["Lisbon", "Sevilla"]);
    let after = first.last().map(|f| f.0);
    let second = read(s, "cities", FeatureQuery { filter: filter.clone(), limit: 2, after, ..FeatureQuery::default() });
    let second = second.await.unwrap();
    assert_eq!(names(second.clone()), ["Porto", "Setúbal"]);
    let back = FeatureQuery { filter, limit: 5, before: second.first().map(|f| f.0), ..FeatureQuery::default() };
    assert_eq!(names(read(s, "cities", back).await.unwrap()), ["Lisbon", "Sevilla"]);

    // A filter checked against another dataset's properties names what this one lacks.
    let elsewhere = FeatureQuery { filter: Some(parse(FilterLang::Text, "pop > 1")), ..all() };
    assert!(matches!(read(s, "places", elsewhere).await, Err(StoreError::Invalid(m)) if m.contains("pop")));
}

/// A load's result as the reader would report it, with the totals the reports add up.
fn reported(
    counts: (u64, u64, u64, u64, u64),
    problems: &[(ProblemCode, u64)],
    kinds: &[(&str, u64)],
    (area_m2, length_m): (f64, f64),
    bbox: [f64; 4],
) -> LoadResult {
    let (features_read, features_loaded, invalid, repaired, skipped) = counts;
    LoadResult {
        counts: LoadCounts { features_read, features_loaded, invalid, repaired, skipped },
        problem_counts: problems.iter().copied().collect(),
        loaded: LoadedMeasures {
            geometry_types: kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            area_m2,
            length_m,
        },
        bbox: Some(Bbox { min_x: bbox[0], min_y: bbox[1], max_x: bbox[2], max_y: bbox[3] }),
        ..LoadResult::default()
    }
}

fn sized(mut plan: LoadPlan, bytes: u64) -> LoadPlan {
    plan.version.bytes = bytes;
    plan
}

fn day() -> time::Date {
    time::macros::date!(2026 - 03 - 10)
}

fn window(date: time::Date) -> Window {
    let start = date.midnight().assume_utc();
    Window { start, end: start + time::Duration::DAY }
}

/// Activity around one day, each step at a chosen time on the store's clock: loads that
/// finish on the day (one started the day before), an unchanged reload, a failed load, a
/// removal, jobs that fail or are skipped, and activity on the days either side.
async fn report_activity(s: &dyn Store, clock: &ManualClock) {
    use time::macros::time;
    use time::Duration as D;
    let at = |date: time::Date, t: time::Time, step_ms: i64| {
        clock.set(date.with_time(t).assume_utc(), D::milliseconds(step_ms))
    };
    let (before, d, after) = (day().previous_day().unwrap(), day(), day().next_day().unwrap());
    let points = |n: u64| (0..n).map(|i| row(i, i as f64, vec![])).collect::<Vec<_>>();
    let send = |p: LoadPlan, n: u64, end: LoadResult| async move {
        load(s, p, points(n), Some(LoadMessage::Commit(end))).await.unwrap()
    };

    at(before, time!(10:00), 500);
    send(
        sized(plan("lakes", "l", "h-l", &[]), 10),
        1,
        reported((1, 1, 0, 0, 0), &[], &[("Point", 1)], (0.0, 0.0), [5.0, 5.0, 5.0, 5.0]),
    )
    .await;
    at(before, time!(23:59:58), 4000);
    let a = || sized(plan("roads", "a", "h-a", &[]), 100);
    let loaded_a =
        send(a(), 2, reported((2, 2, 0, 0, 0), &[], &[("Point", 2)], (0.0, 0.0), [0.0, 0.0, 1.0, 1.0])).await;
    at(d, time!(08:00), 1000);
    let b = reported(
        (4, 3, 2, 1, 1),
        &[(ProblemCode::SelfIntersection, 1), (ProblemCode::UnclosedRing, 1)],
        &[("Polygon", 2), ("Point", 1)],
        (100.5, 0.0),
        [2.0, -1.0, 3.0, 5.0],
    );
    send(sized(plan("roads", "b", "h-b", &[]), 200), 3, b).await;
    at(d, time!(09:00), 2000);
    let unchanged_a = send(a(), 2, result(2)).await;
    at(d, time!(10:00), 3000);
    let rejected = LoadResult {
        error: Some("x: feature 3 is invalid and the policy is reject".into()),
        ..reported((5, 0, 1, 0, 0), &[(ProblemCode::TooFewPositions, 1)], &[], (0.0, 0.0), [0.0; 4])
    };
    let x = load(s, sized(plan("rivers", "x", "h-x", &[]), 50), vec![], Some(LoadMessage::Abort(rejected))).await;
    assert!(matches!(x, Ok(LoadOutcome::Failed { .. })), "{x:?}");
    at(d, time!(11:00), 0);
    let y = reported((4, 4, 0, 0, 0), &[], &[("LineString", 4)], (0.0, 12.25), [-10.0, -10.0, -9.0, -9.0]);
    send(sized(plan("rivers", "y", "h-y", &[]), 70), 4, y).await;
    at(d, time!(12:00), 0);
    assert_eq!(s.remove_source(&name("roads"), "b", None, RemovalCause::Request).await.unwrap().rows, 3);
    at(d, time!(13:00), 0);
    s.upsert_job(&new_job("j1", "roads", "b")).await.unwrap();
    s.update_job("j1", status(JobStatus::Running)).await.unwrap();
    let failure = JobUpdate { error: Some(Some("boom".into())), ..status(JobStatus::Failed) };
    s.update_job("j1", failure.clone()).await.unwrap();
    // A job whose content was already loaded points at its `unchanged` load (counted once, as
    // that load); one whose object version was already loaded points at the earlier load.
    let (LoadOutcome::Loaded { load_id: earlier, .. }, LoadOutcome::Unchanged { load_id: unchanged, .. }) =
        (loaded_a, unchanged_a)
    else {
        panic!("roads/a loads, then is unchanged");
    };
    at(d, time!(14:00), 0);
    for (job, load_id) in [("j2", unchanged), ("j4", earlier)] {
        s.upsert_job(&new_job(job, "roads", "a")).await.unwrap();
        let skipped = JobUpdate { load_id: Some(load_id), ..status(JobStatus::SkippedDuplicate) };
        s.update_job(job, skipped).await.unwrap();
    }
    at(after, time!(00:00), 1000);
    send(sized(plan("roads", "c", "h-c", &[]), 5), 1, result(1)).await;
    s.upsert_job(&new_job("j3", "roads", "c")).await.unwrap();
    s.update_job("j3", failure).await.unwrap();
}

fn expected_report() -> WindowActivity {
    let outcomes = |succeeded, failed, skipped_duplicate| LoadOutcomes { succeeded, failed, skipped_duplicate };
    let features =
        |read, loaded, invalid, repaired, skipped| FeatureTotals { read, loaded, invalid, repaired, skipped };
    let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    let durations = |p50, p95, max| Some(Durations { p50, p95, max });
    let roads = Activity {
        loads: outcomes(2, 0, 2),
        sources_removed: 1,
        features: features(6, 5, 2, 1, 1),
        invalid_reasons: counts(&[("self-intersection", 1), ("unclosed-ring", 1)]),
        geometry_types: counts(&[("Point", 3), ("Polygon", 2)]),
        area_m2: 100.5,
        length_m: 0.0,
        extent: Some([0.0, -1.0, 3.0, 5.0]),
        bytes: 400,
        // 4000 (started the day before), 1000, 2000 (unchanged).
        duration_ms: durations(2000, 4000, 4000),
    };
    let rivers = Activity {
        loads: outcomes(1, 1, 0),
        sources_removed: 0,
        features: features(9, 4, 1, 0, 0),
        invalid_reasons: counts(&[("too-few-positions", 1)]),
        geometry_types: counts(&[("LineString", 4)]),
        area_m2: 0.0,
        length_m: 12.25,
        extent: Some([-10.0, -10.0, -9.0, -9.0]),
        bytes: 120,
        duration_ms: durations(0, 3000, 3000),
    };
    let totals = Activity {
        loads: outcomes(3, 1, 2),
        sources_removed: 1,
        features: features(15, 9, 3, 1, 1),
        invalid_reasons: counts(&[("self-intersection", 1), ("too-few-positions", 1), ("unclosed-ring", 1)]),
        geometry_types: counts(&[("LineString", 4), ("Point", 3), ("Polygon", 2)]),
        area_m2: 100.5,
        length_m: 12.25,
        extent: Some([-10.0, -10.0, 3.0, 5.0]),
        bytes: 520,
        duration_ms: durations(2000, 4000, 4000),
    };
    let state = |sources, feature_count| DatasetState { sources, feature_count };
    let dataset = |name: &str, activity, end_of_day| DatasetActivity {
        dataset: name.into(),
        activity,
        end_of_day,
        schema_changes: Vec::new(),
    };
    WindowActivity {
        totals,
        end_of_day: CatalogState { datasets: 3, sources: 3, feature_count: 7 },
        datasets: vec![
            // No activity on the day, but it holds a source at its end.
            dataset("lakes", Activity::default(), state(1, 1)),
            dataset("rivers", rivers, state(1, 4)),
            dataset("roads", roads, state(1, 2)),
        ],
        failed_jobs: vec![FailedJob {
            job: "j1".into(),
            dataset: "roads".into(),
            source: "b".into(),
            finished_at: "2026-03-10T13:00:00.000Z".into(),
            error: Some("boom".into()),
        }],
        failed_jobs_total: 1,
    }
}

async fn report_contract(s: &dyn Store, clock: &ManualClock) -> WindowActivity {
    report_activity(s, clock).await;
    let report = s.activity(window(day())).await.unwrap();
    assert_eq!(report, expected_report());
    assert_eq!(s.activity(window(day())).await.unwrap(), report, "recomputing gives the same report");

    // The day before saw one load finish; a day without activity or data is all zeros.
    let before = s.activity(window(day().previous_day().unwrap())).await.unwrap();
    assert_eq!((before.totals.loads.succeeded, before.end_of_day.feature_count), (1, 1));
    let empty = s.activity(window(time::macros::date!(2026 - 01 - 01))).await.unwrap();
    assert_eq!(empty, WindowActivity::default());
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn both_stores_report_a_day_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::UNIX_EPOCH));
    let gpkg = GeoPackageStore::open(dir.path().join("report.gpkg")).unwrap().with_clock(clock.clone());
    let from_gpkg = report_contract(&gpkg, &clock).await;
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let postgis = PostgisStore::connect(db.url()).await.unwrap().with_clock(clock.clone());
    assert_eq!(report_contract(&postgis, &clock).await, from_gpkg);
}
