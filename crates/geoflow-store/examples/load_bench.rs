//! Measures a store alone: rows are built before the clock starts.
//!
//! `cargo run --release -p geoflow-store --example load_bench -- [ROWS] [DATABASE] [OPTION] [SMALL]`
//!
//! Loads ROWS rows into an empty dataset (first round), then replaces them (second round);
//! with SMALL, a second source of SMALL rows twice into the same dataset. DATABASE is a
//! `.gpkg` path or a `postgres://` URL; `gpkg` (the default) uses a temporary GeoPackage and
//! `postgis` a throwaway cluster from geoflow-testkit. OPTION: `trigger` fills the GeoPackage
//! R-tree by its triggers instead of once per load; `maintained` keeps the PostGIS spatial
//! index during the COPY instead of building it after.

use std::sync::Arc;
use std::time::Instant;

use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_core::report::{LoadCounts, Policy};
use geoflow_core::row::{Bbox, EncodedGeometry, GeometryKind, Measures, Row};
use geoflow_core::schema::{Field, FieldType, Schema};
use geoflow_core::value::PropValue;
use geoflow_store::gpkg::{GeoPackageStore, RtreeFill};
use geoflow_store::postgis::PostgisStore;
use geoflow_store::{LoadMessage, LoadPlan, LoadResult, SourceVersion, Store};

const BATCH: usize = 1024;

fn polygon(x: f64, y: f64) -> EncodedGeometry {
    let ring = [(x, y), (x + 0.01, y), (x + 0.01, y + 0.01), (x + 0.005, y + 0.015), (x, y + 0.01), (x, y)];
    let mut wkb = vec![1];
    wkb.extend_from_slice(&3u32.to_le_bytes());
    wkb.extend_from_slice(&1u32.to_le_bytes());
    wkb.extend_from_slice(&(ring.len() as u32).to_le_bytes());
    for (px, py) in ring {
        wkb.extend_from_slice(&px.to_le_bytes());
        wkb.extend_from_slice(&py.to_le_bytes());
    }
    EncodedGeometry {
        kind: GeometryKind::Polygon,
        has_z: false,
        bbox: Some(Bbox { min_x: x, min_y: y, max_x: x + 0.01, max_y: y + 0.015 }),
        wkb,
    }
}

fn rows(n: usize) -> Vec<Vec<Row>> {
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for i in 0..n {
        let (x, y) = (-10.0 + (i % 2000) as f64 * 0.01, 40.0 + (i / 2000) as f64 * 0.01);
        batch.push(Row {
            index: i as u64,
            id: PropValue::Int(i as i64),
            geometry: Some(polygon(x, y)),
            measures: Measures { area_m2: Some(1.2e6 + i as f64), length_m: None, vertices: 6 },
            properties: vec![
                (0, PropValue::Text(format!("feature {i}"))),
                (1, PropValue::Int((i * 7) as i64)),
                (2, PropValue::Real(i as f64 * 0.5)),
                (3, PropValue::Bool(i % 2 == 0)),
                (4, PropValue::Text("2024-05-01".into())),
                (5, PropValue::Text(["residential", "primary", "secondary"][i % 3].into())),
            ],
        });
        if batch.len() == BATCH {
            batches.push(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// Loads `n` rows as `source` with content `hash`; returns the seconds taken.
async fn load(store: &Arc<dyn Store>, schema: &Schema, source: &str, hash: String, n: usize) -> f64 {
    let batches = rows(n);
    let plan = LoadPlan {
        dataset: DatasetName::new("bench").unwrap(),
        source: source.into(),
        version: SourceVersion { content_hash: hash, bytes: 1, object_version: None },
        schema: schema.clone(),
        policy: Policy::Skip,
        origin: None,
        schema_policy: Default::default(),
        geometry_type: Default::default(),
        mode: DatasetMode::Append,
        key: geoflow_core::dataset::FeatureKey::FeatureId,
        modified: None,
        force: false,
        read_settings: String::new(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let start = Instant::now();
    let loading = tokio::spawn({
        let store = store.clone();
        async move { store.load(plan, rx).await }
    });
    for b in batches {
        tx.send(LoadMessage::Rows(b)).await.unwrap();
    }
    let counts = LoadCounts { features_read: n as u64, features_loaded: n as u64, ..LoadCounts::default() };
    tx.send(LoadMessage::Commit(LoadResult { counts, ..LoadResult::default() })).await.unwrap();
    loading.await.unwrap().unwrap();
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let database = args.get(2).map_or("gpkg", String::as_str);
    let option = args.get(3).map(String::as_str);
    let dir = tempfile::tempdir().unwrap();
    let _cluster;
    let store: Arc<dyn Store> = if database == "postgis" || database.starts_with("postgres") {
        let url = if database == "postgis" {
            _cluster = geoflow_testkit::postgis_database().await.expect("a PostGIS server for the benchmark");
            _cluster.url().to_string()
        } else {
            database.to_string()
        };
        let store = PostgisStore::connect(&url).await.unwrap();
        Arc::new(store.with_deferred_spatial_index(option != Some("maintained")))
    } else {
        let path = if database == "gpkg" { dir.path().join("bench.gpkg") } else { database.into() };
        let _ = std::fs::remove_file(&path);
        let fill = if option == Some("trigger") { RtreeFill::Trigger } else { RtreeFill::Deferred };
        Arc::new(GeoPackageStore::open(&path).unwrap().with_rtree_fill(fill))
    };
    let schema = Schema {
        fields: [
            ("name", FieldType::Text),
            ("lanes", FieldType::Integer),
            ("width", FieldType::Real),
            ("oneway", FieldType::Boolean),
            ("surveyed", FieldType::Date),
            ("class", FieldType::Text),
        ]
        .into_iter()
        .map(|(k, ty)| Field { key: k.into(), ty })
        .collect(),
        id_type: FieldType::Integer,
        ..Default::default()
    };
    println!("{} {}", store.location(), option.unwrap_or("default"));
    for round in 0..2 {
        let secs = load(&store, &schema, "roads.geojson", format!("hash-{round}"), n).await;
        println!("round {round}: {n} rows in {secs:.3} s = {:.0} rows/s", n as f64 / secs);
    }
    if let Some(small) = args.get(4).and_then(|s| s.parse::<usize>().ok()) {
        for round in 0..2 {
            let secs = load(&store, &schema, "small.geojson", format!("small-{round}"), small).await;
            println!("small round {round}: {small} rows in {secs:.3} s");
        }
    }
}
