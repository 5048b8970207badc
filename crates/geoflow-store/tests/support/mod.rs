//! Builders shared by the store tests: geometries as ISO WKB, plans, rows and loads.
#![allow(dead_code)]

use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_core::report::{Action, FeatureIssue, LoadCounts, Policy, ProblemCode};
use geoflow_core::row::{Bbox, EncodedGeometry, GeometryKind, Measures, Row};
use geoflow_core::schema::{Field, FieldType, Schema};
use geoflow_core::value::PropValue;
use geoflow_store::{LoadMessage, LoadOutcome, LoadPlan, LoadResult, LoadedMeasures, SourceVersion, Store, StoreError};

// ---------------------------------------------------------------------------------------
// Geometries as ISO WKB, little-endian, built by hand.

pub fn wkb_header(code: u32) -> Vec<u8> {
    let mut w = vec![1];
    w.extend_from_slice(&code.to_le_bytes());
    w
}

pub fn push_xy(w: &mut Vec<u8>, x: f64, y: f64) {
    w.extend_from_slice(&x.to_le_bytes());
    w.extend_from_slice(&y.to_le_bytes());
}

pub fn point(x: f64, y: f64) -> EncodedGeometry {
    let mut wkb = wkb_header(1);
    push_xy(&mut wkb, x, y);
    EncodedGeometry { kind: GeometryKind::Point, has_z: false, bbox: Some(Bbox::of_point(x, y)), wkb }
}

pub fn point_z(x: f64, y: f64, z: f64) -> EncodedGeometry {
    let mut wkb = wkb_header(1001);
    push_xy(&mut wkb, x, y);
    wkb.extend_from_slice(&z.to_le_bytes());
    EncodedGeometry { kind: GeometryKind::Point, has_z: true, bbox: Some(Bbox::of_point(x, y)), wkb }
}

/// `MULTIPOINT Z` of the given points: nested geometries carry ISO Z codes too.
pub fn multipoint_z(points: &[(f64, f64, f64)]) -> EncodedGeometry {
    let mut wkb = wkb_header(1004);
    wkb.extend_from_slice(&(points.len() as u32).to_le_bytes());
    let mut bbox = Bbox::of_point(points[0].0, points[0].1);
    for &(x, y, z) in points {
        wkb.extend_from_slice(&wkb_header(1001));
        push_xy(&mut wkb, x, y);
        wkb.extend_from_slice(&z.to_le_bytes());
        bbox.expand(x, y);
    }
    EncodedGeometry { kind: GeometryKind::MultiPoint, has_z: true, bbox: Some(bbox), wkb }
}

/// A closed ring from `points` (the first point is repeated at the end).
pub fn polygon(points: &[(f64, f64)]) -> EncodedGeometry {
    let mut wkb = wkb_header(3);
    wkb.extend_from_slice(&1u32.to_le_bytes());
    wkb.extend_from_slice(&(points.len() as u32 + 1).to_le_bytes());
    let mut bbox = Bbox::of_point(points[0].0, points[0].1);
    for &(x, y) in points.iter().chain(std::iter::once(&points[0])) {
        push_xy(&mut wkb, x, y);
        bbox.expand(x, y);
    }
    EncodedGeometry { kind: GeometryKind::Polygon, has_z: false, bbox: Some(bbox), wkb }
}

pub fn square(x: f64, y: f64, size: f64) -> EncodedGeometry {
    polygon(&[(x, y), (x + size, y), (x + size, y + size), (x, y + size)])
}

/// `POINT EMPTY` in ISO WKB: NaN coordinates.
pub fn empty_point() -> EncodedGeometry {
    let mut wkb = wkb_header(1);
    push_xy(&mut wkb, f64::NAN, f64::NAN);
    EncodedGeometry { kind: GeometryKind::Point, has_z: false, bbox: None, wkb }
}

/// `LINESTRING EMPTY`: no points.
pub fn empty_line() -> EncodedGeometry {
    let mut wkb = wkb_header(2);
    wkb.extend_from_slice(&0u32.to_le_bytes());
    EncodedGeometry { kind: GeometryKind::LineString, has_z: false, bbox: None, wkb }
}

// ---------------------------------------------------------------------------------------
// Plans, rows and loads.

pub fn schema(fields: &[(&str, FieldType)], id_type: FieldType) -> Schema {
    let fields = fields.iter().map(|(k, ty)| Field { key: k.to_string(), ty: *ty }).collect();
    Schema { fields, id_type, ..Default::default() }
}

pub fn plan(dataset: &str, source: &str, hash: &str, schema: Schema) -> LoadPlan {
    LoadPlan {
        dataset: DatasetName::new(dataset).unwrap(),
        source: source.into(),
        version: SourceVersion { content_hash: hash.into(), bytes: 1234, object_version: None },
        schema,
        policy: Policy::Skip,
        origin: None,
        schema_policy: Default::default(),
        geometry_type: Default::default(),
        mode: DatasetMode::Append,
        key: geoflow_core::dataset::FeatureKey::FeatureId,
        modified: None,
        force: false,
        read_settings: String::new(),
    }
}

pub fn row(index: u64, id: PropValue, geometry: Option<EncodedGeometry>, properties: Vec<(usize, PropValue)>) -> Row {
    let vertices = geometry.as_ref().map_or(0, |g| (g.wkb.len() as u32).saturating_sub(9) / 16);
    Row {
        index,
        id,
        geometry,
        measures: Measures { area_m2: Some(10.0 + index as f64), length_m: None, vertices },
        properties,
    }
}

pub fn result_for(rows: &[Row]) -> LoadResult {
    let n = rows.len() as u64;
    let bbox = rows.iter().filter_map(|r| r.geometry.as_ref()?.bbox).reduce(Bbox::union);
    LoadResult {
        counts: LoadCounts { features_read: n + 1, features_loaded: n, invalid: 1, repaired: 0, skipped: 1 },
        issues: vec![FeatureIssue {
            index: n,
            layer: None,
            id: Some("bad".into()),
            code: ProblemCode::UnclosedRing,
            reason: "ring not closed".into(),
            action: Action::Skipped,
        }],
        issue_total: 1,
        error: None,
        bbox,
        problem_counts: [(ProblemCode::UnclosedRing, 1)].into(),
        loaded: {
            let mut measures = LoadedMeasures::default();
            rows.iter().for_each(|r| measures.add(r));
            measures
        },
        schema_changes: Vec::new(),
    }
}

pub enum Ending {
    Commit,
    Abort(&'static str),
    Drop,
}

/// Sends `rows` in batches of 2 and ends the load as asked.
pub async fn run_load<S: Store + Clone + 'static>(
    store: &S,
    plan: LoadPlan,
    rows: Vec<Row>,
    ending: Ending,
) -> Result<LoadOutcome, StoreError> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let load = tokio::spawn({
        let store = store.clone();
        async move { store.load(plan, rx).await }
    });
    let result = result_for(&rows);
    for batch in rows.chunks(2) {
        if tx.send(LoadMessage::Rows(batch.to_vec())).await.is_err() {
            break;
        }
    }
    match ending {
        Ending::Commit => {
            let _ = tx.send(LoadMessage::Commit(result)).await;
        }
        Ending::Abort(error) => {
            let _ = tx.send(LoadMessage::Abort(LoadResult { error: Some(error.into()), ..result })).await;
        }
        Ending::Drop => drop(tx),
    }
    load.await.unwrap()
}

pub async fn commit<S: Store + Clone + 'static>(store: &S, plan: LoadPlan, rows: Vec<Row>) -> LoadOutcome {
    run_load(store, plan, rows, Ending::Commit).await.unwrap()
}

// ---------------------------------------------------------------------------------------
// A small dataset of two sources used by several tests.

pub fn roads_schema() -> Schema {
    schema(
        &[
            ("name", FieldType::Text),
            ("lanes", FieldType::Integer),
            ("oneway", FieldType::Boolean),
            ("tags", FieldType::Json),
        ],
        FieldType::Integer,
    )
}

pub fn roads_a() -> Vec<Row> {
    vec![
        row(
            0,
            PropValue::Int(1),
            Some(square(1.0, 2.0, 1.0)),
            vec![(0, PropValue::Text("Main".into())), (1, PropValue::Int(2))],
        ),
        row(
            1,
            PropValue::Int(2),
            Some(point(3.0, 4.0)),
            vec![(2, PropValue::Bool(true)), (3, PropValue::Json(r#"{"a":[1,2]}"#.into()))],
        ),
        row(2, PropValue::Int(3), Some(point_z(2.5, 3.5, 100.0)), vec![(0, PropValue::Text("Ünïcode \"q\"".into()))]),
    ]
}

pub fn roads_b() -> Vec<Row> {
    vec![
        row(0, PropValue::Int(10), Some(square(-5.0, -6.0, 2.0)), vec![(1, PropValue::Int(4))]),
        row(1, PropValue::Null, None, vec![(0, PropValue::Text("no geometry".into()))]),
    ]
}
