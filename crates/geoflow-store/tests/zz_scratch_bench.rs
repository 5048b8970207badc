use std::time::Instant;
use futures_util::TryStreamExt;
use geoflow_core::dataset::DatasetName;
use geoflow_core::row::Bbox;
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::{FeatureQuery, Store};
use tokio_postgres::NoTls;
mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bench() {
    let db = geoflow_testkit::postgis_database().await.unwrap();
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let at = |i: u64| (-179.1 + (i % 200) as f64 * 1.8, -84.15 + (i / 200) as f64 * 1.7);
    let fields: Vec<(String, FieldType)> = (0..10).map(|k| (format!("prop{k}"), if k % 2 == 0 { FieldType::Text } else { FieldType::Real })).collect();
    let f: Vec<(&str, FieldType)> = fields.iter().map(|(k, t)| (k.as_str(), *t)).collect();
    let rows: Vec<_> = (0..20_000)
        .map(|i| {
            let (x, y) = at(i);
            row(i, PropValue::Int(i as i64), Some(point(x, y)), (0..10).map(|k| (k, if k % 2 == 0 { PropValue::Text(format!("n{i}-{k}")) } else { PropValue::Real(i as f64 * 0.37) })).collect())
        })
        .collect();
    commit(&store, plan("grid", "g.geojson", "h1", schema(&f, FieldType::Integer)), rows).await;
    client.batch_execute("ANALYZE datasets.grid").await.unwrap();
    let grid = DatasetName::new("grid").unwrap();
    let boxed = |min_x, min_y, max_x, max_y| FeatureQuery { bbox: Some(Bbox { min_x, min_y, max_x, max_y }), limit: 100, ..FeatureQuery::default() };
    let cases = [
        ("bbox 40x40 (~500 hits) page 100", boxed(0.0, 0.0, 40.0, 40.0)),
        ("bbox world page 100", boxed(-180.0, -90.0, 180.0, 90.0)),
        ("bbox antimeridian page 100", boxed(150.0, -50.0, -150.0, 50.0)),
        ("bbox 40x40 deep after", FeatureQuery { after: Some(15000), ..boxed(0.0, 0.0, 40.0, 40.0) }),
        ("no filter page 100", FeatureQuery { limit: 100, ..FeatureQuery::default() }),
        ("deep page 100", FeatureQuery { limit: 100, after: Some(19_000), ..FeatureQuery::default() }),
        ("property filter", FeatureQuery { limit: 100, properties: vec![("prop0".into(), "n19999-0".into())], ..FeatureQuery::default() }),
    ];
    for (name, q) in &cases {
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..300 {
            let t = Instant::now();
            let v: Vec<_> = store.features(&grid, q).await.unwrap().try_collect().await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            n = v.len();
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name}: {n} features, median {:.3} ms, p90 {:.3} ms, first {:.3}", times[150], times[270], times[0]);
        println!("{}", store.explain_features(&grid, q).await.unwrap());
    }
    // Concurrency: 16 tasks x 200 bbox pages.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let grid = grid.clone();
        let q = cases[0].1.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let v: Vec<_> = store.features(&grid, &q).await.unwrap().try_collect().await.unwrap();
                assert_eq!(v.len(), 100);
            }
        }));
    }
    for t in tasks { t.await.unwrap(); }
    println!("concurrent: {:.0} pages/s", 3200.0 / t.elapsed().as_secs_f64());
}
