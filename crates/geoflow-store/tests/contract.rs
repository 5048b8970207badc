//! One contract, every store: the semantics of DESIGN §3 checked through the `Store` trait
//! against the GeoPackage store and the PostGIS store alike. Store-specific details (file
//! format, SQL types, locks, TLS) have their own tests beside this one.

use std::sync::Arc;

use geoflow_core::dataset::DatasetName;
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::{LoadCounts, Policy};
use geoflow_core::row::{Measures, Row};
use geoflow_core::schema::{Field, FieldType, Schema};
use geoflow_core::value::PropValue;
use geoflow_core::wkb;
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::{LoadMessage, LoadOutcome, LoadPlan, LoadResult, SourceVersion, Store, StoreError};

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
        version: SourceVersion { content_hash: hash.into(), bytes: 1 },
        schema: Schema {
            fields: fields.iter().map(|(k, t)| Field { key: (*k).into(), ty: *t }).collect(),
            id_type: FieldType::Integer,
        },
        policy: Policy::Skip,
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
    assert!(matches!(dropped, Err(StoreError::Interrupted { .. })), "{dropped:?}");
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
    assert_eq!(s.remove_source(&name("wide"), "one").await.unwrap(), 1);
    assert_eq!(count(s, "wide").await, 2);
    assert!(s.source(&name("wide"), "one").await.unwrap().is_none());

    // Datasets load side by side.
    let (p, q) = (plan("left", "l", "l1", &[]), plan("right", "r", "r1", &[]));
    let rows = |n: u64| (0..n).map(|i| row(i, i as f64 / 100.0, vec![])).collect::<Vec<_>>();
    let (l, r) = tokio::join!(commit(s, p, rows(500)), commit(s, q, rows(700)));
    assert!(matches!((l, r), (LoadOutcome::Loaded { .. }, LoadOutcome::Loaded { .. })));
    assert_eq!((count(s, "left").await, count(s, "right").await), (500, 700));
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
