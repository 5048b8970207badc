//! Files of several layers: a zip of Shapefiles loads them all into its dataset, each feature
//! reported with its layer; any multi-layer file can instead load each layer into a dataset
//! of its own, from the command line or an upload.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use geoflow::api::ApiConfig;
use serde_json::Value;
use support::app::{assert_problem, reply, spawn_app, with_token, TOKEN};

fn ogr2ogr(args: &[&str]) {
    let out = Command::new("ogr2ogr").args(args).output().expect("ogr2ogr runs");
    assert!(out.status.success(), "ogr2ogr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A GeoPackage with two feature tables, `Places` (5 points) and `roads` (3 in UTM 31N).
fn two_table_geopackage(dir: &Path) -> PathBuf {
    let places = dir.join("places.geojson");
    std::fs::write(&places, support::collection(5, 1)).unwrap();
    let gpkg = dir.join("two.gpkg");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ogr2ogr(&["-f", "GPKG", "-nln", "Places", &s(&gpkg), &s(&places)]);
    let roads = dir.join("roads.geojson");
    std::fs::write(&roads, ROADS).unwrap();
    ogr2ogr(&["-f", "GPKG", "-update", "-nln", "roads", "-t_srs", "EPSG:32631", &s(&gpkg), &s(&roads)]);
    gpkg
}

const ROADS: &str = r#"{"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"road":"A1"},"geometry":{"type":"LineString","coordinates":[[2,48],[2.1,48.1]]}},
    {"type":"Feature","properties":{"road":"A2"},"geometry":{"type":"LineString","coordinates":[[2.2,48.2],[2.3,48.3]]}},
    {"type":"Feature","properties":{"road":"A3"},"geometry":{"type":"LineString","coordinates":[[2.4,48.4],[2.5,48.5]]}}
]}"#;

/// A zip of two Shapefiles: `lakes` (its second polygon a bow-tie) and `rivers`.
fn two_shapefile_zip(dir: &Path) -> Vec<u8> {
    let folder = dir.join("shp");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, text) in [("lakes", LAKES), ("rivers", ROADS)] {
        let input = dir.join(format!("{name}.geojson"));
        std::fs::write(&input, text).unwrap();
        let out = folder.join(format!("{name}.shp"));
        ogr2ogr(&["-f", "ESRI Shapefile", out.to_str().unwrap(), input.to_str().unwrap()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        writer.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        std::io::Write::write_all(&mut writer, &std::fs::read(path).unwrap()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

const LAKES: &str = r#"{"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"lake":"round"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}},
    {"type":"Feature","properties":{"lake":"bowtie"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}
]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_of_several_shapefiles_loads_them_all_with_each_problem_named_by_its_layer() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = spawn_app(with_token()).await;
    let zipped = two_shapefile_zip(app.dir.path());
    let up = app.upload("/v1/datasets/water/uploads?name=water.zip", "application/zip", zipped).await;
    assert_eq!(up.status, 202, "{}", up.body);
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!((result["features_read"].as_u64(), result["features_loaded"].as_u64()), (Some(5), Some(4)), "{job}");
    let error = &result["errors"][0];
    assert_eq!((&error["layer"], &error["index"]), (&Value::from("lakes"), &Value::from(1)), "{job}");
    let layers: Vec<(&str, u64)> = result["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["features"].as_u64().unwrap()))
        .collect();
    assert_eq!(layers, vec![("lakes", 2), ("rivers", 3)], "{job}");
    let dataset = app.get("/v1/datasets/water").await;
    assert_eq!(dataset.body["dataset"]["feature_count"], 4, "{}", dataset.body);
    assert_eq!(dataset.body["sources"].as_array().unwrap().len(), 1, "one object, one source: {}", dataset.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_can_load_each_layer_into_a_dataset_of_its_own() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = spawn_app(with_token()).await;
    let gpkg = std::fs::read(two_table_geopackage(app.dir.path())).unwrap();

    // Without a choice, a GeoPackage of several tables is refused with their names.
    let up =
        app.upload("/v1/datasets/city/uploads?name=city.gpkg", "application/geopackage+sqlite3", gpkg.clone()).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("\"Places\"") && error.contains("layers_as_datasets"), "{job}");

    let send = |path: &str, body: Vec<u8>| {
        let request = app
            .http
            .post(app.url(path))
            .bearer_auth(TOKEN)
            .header("content-type", "application/geopackage+sqlite3")
            .header("idempotency-key", "split-1");
        async move { reply(request.body(body).send().await.unwrap()).await }
    };
    let up = send("/v1/datasets/city/uploads?name=city.gpkg&layers_as_datasets=true", gpkg.clone()).await;
    assert_eq!(up.status, 202, "{}", up.body);
    let jobs = up.body["jobs"].as_array().unwrap().clone();
    let datasets: Vec<&str> = jobs.iter().map(|j| j["dataset"].as_str().unwrap()).collect();
    assert_eq!(datasets, vec!["city_places", "city_roads"]);
    let today = time::OffsetDateTime::now_utc().date();
    for (job, (dataset, features)) in jobs.iter().zip([("city_places", 5), ("city_roads", 3)]) {
        assert_eq!(job["source"], format!("raw/{dataset}/{today}/city.gpkg"));
        let done = app.finished(job["id"].as_str().unwrap()).await;
        assert_eq!(
            (&done["status"], done["result"]["features_loaded"].as_u64()),
            (&Value::from("succeeded"), Some(features)),
            "{done}"
        );
        let loaded = app.get(&format!("/v1/datasets/{dataset}")).await;
        assert_eq!(loaded.body["dataset"]["feature_count"], features, "{}", loaded.body);
    }
    // The roads were in UTM: transformed like any other load.
    let road = app.get("/v1/datasets/city_roads").await;
    let bbox = &road.body["dataset"]["bbox"];
    assert!((bbox["min_x"].as_f64().unwrap() - 2.0).abs() < 1e-6, "{}", road.body);

    // A retry with the same key answers the same jobs.
    let again = send("/v1/datasets/city/uploads?name=city.gpkg&layers_as_datasets=true", gpkg.clone()).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let ids = |body: &Value| body["jobs"].as_array().unwrap().iter().map(|j| j["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again.body), ids(&up.body));

    // Each layer's dataset keeps its mode: asking for another is a conflict, as for one file.
    let other = app
        .upload(
            "/v1/datasets/city/uploads?name=city.gpkg&layers_as_datasets=true&mode=append",
            "application/octet-stream",
            gpkg.clone(),
        )
        .await;
    assert_problem(&other, 409, "mode-conflict");
    assert!(other.body["detail"].as_str().unwrap().contains("city_places"), "{}", other.body);

    // A layer and every layer at once, or a file of one layer, are refused before loading.
    let both = app
        .upload("/v1/datasets/city/uploads?layer=roads&layers_as_datasets=true", "application/octet-stream", gpkg)
        .await;
    assert_problem(&both, 400, "invalid-parameter");
    let single = app
        .upload("/v1/datasets/one/uploads?layers_as_datasets=true", "application/geo+json", support::collection(2, 1))
        .await;
    assert_problem(&single, 400, "invalid-body");
    assert!(single.body["detail"].as_str().unwrap().contains("single layer"), "{}", single.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_loads_each_layer_into_a_dataset_of_its_own() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = spawn_app(ApiConfig::default()).await;
    let gpkg = two_table_geopackage(app.dir.path());
    let run = |file: &std::path::Path| {
        support::geoflow()
            .args(["ingest", "--dataset", "town", "--no-progress", "--json", "--layers-as-datasets", "--database"])
            .arg(app.dir.path().join("geoflow.gpkg"))
            .arg(file)
            .output()
            .unwrap()
    };
    let out = run(&gpkg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let summaries: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let loaded: Vec<(&str, &str, u64)> = summaries
        .iter()
        .map(|s| (s["dataset"].as_str().unwrap(), s["layer"].as_str().unwrap(), s["features_loaded"].as_u64().unwrap()))
        .collect();
    assert_eq!(loaded, vec![("town_places", "Places", 5), ("town_roads", "roads", 3)]);
    // A file that cannot be read fails, as a single load does; one of a single layer is refused.
    assert_eq!(run(&app.dir.path().join("missing.gpkg")).status.code(), Some(1));
    let single = app.dir.path().join("one.geojson");
    std::fs::write(&single, support::collection(2, 1)).unwrap();
    let refused = run(&single);
    assert_eq!(refused.status.code(), Some(3), "{}", String::from_utf8_lossy(&refused.stderr));
    for (dataset, features) in [("town_places", 5), ("town_roads", 3)] {
        let got = app.get(&format!("/v1/datasets/{dataset}")).await;
        assert_eq!(got.body["dataset"]["feature_count"], features, "{}", got.body);
    }
}
