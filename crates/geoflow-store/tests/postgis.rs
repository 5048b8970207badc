//! The PostGIS store against a real PostgreSQL/PostGIS server (a fresh database per test from
//! `geoflow-testkit`): loads through the `Store` trait, checks through SQL and, where
//! installed, GDAL's `ogrinfo`.

use geoflow_store::prelude::*;
use std::process::Command;
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio_postgres::{Client, NoTls};

use geoflow_core::dataset::DatasetName;
use geoflow_core::row::Bbox;
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;
use geoflow_store::postgis::{check_versions, redact, PostgisStore};
use geoflow_store::{
    FeatureQuery, JobAction, JobStatus, JobUpdate, LoadMessage, LoadOutcome, LoadResult, NewJob, SortKey, StoreError,
};
use geoflow_testkit::{postgis_database, TestDatabase};

mod support;
use support::*;

async fn setup() -> Option<(TestDatabase, PostgisStore, Client)> {
    let db = postgis_database().await?;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    Some((db, store, client))
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// One text column per row of `sql`.
async fn texts(client: &Client, sql: &str) -> Vec<Option<String>> {
    client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

// ---------------------------------------------------------------------------------------
// GDAL: skipped with a printed reason when missing, unless GEOFLOW_REQUIRE_TOOLS=1.

const OGRINFO: &str = "ogrinfo";

/// `Feature Count` and `Extent` of `ogrinfo -so PG:"…" datasets.<table>`.
fn ogr_summary(url: &str, table: &str) -> Option<(u64, Option<[f64; 4]>)> {
    // GDAL takes libpq's key=value form.
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let conn = format!(
        "PG:host={host} port={} user={} dbname={}",
        config.get_ports()[0],
        config.get_user().unwrap(),
        config.get_dbname().unwrap()
    );
    let out = match Command::new(OGRINFO).arg("-so").arg(conn).arg(format!("datasets.{table}")).output() {
        Ok(out) => out,
        Err(e) => return geoflow_testkit::skip(&format!("ogrinfo cannot run: {e}")),
    };
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ogrinfo failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("ERROR"), "ogrinfo complained:\n{stderr}");
    let count =
        stdout.lines().find_map(|l| l.strip_prefix("Feature Count: ")).expect("feature count").trim().parse().unwrap();
    let extent = stdout.lines().find_map(|l| l.strip_prefix("Extent: ")).map(|e| {
        let nums: Vec<f64> = e.split(['(', ')', ',', ' ']).filter_map(|s| s.parse().ok()).collect();
        assert_eq!(nums.len(), 4, "{e}");
        [nums[0], nums[1], nums[2], nums[3]]
    });
    assert!(stdout.contains("EPSG") || stdout.contains("WGS 84"), "SRS reported:\n{stdout}");
    Some((count, extent))
}

#[tokio::test]
async fn two_sources_load_into_one_dataset() {
    let Some((db, store, client)) = setup().await else { return };
    let a = commit(&store, plan("roads", "a.geojson", "h-a", roads_schema()), roads_a()).await;
    let LoadOutcome::Loaded { load_id: load_a, table, replaced_rows, .. } = a else { panic!("{a:?}") };
    assert_eq!((table.as_str(), replaced_rows), ("roads", 0));
    let b = commit(&store, plan("roads", "b.geojson", "h-b", roads_schema()), roads_b()).await;
    assert!(matches!(b, LoadOutcome::Loaded { replaced_rows: 0, .. }), "{b:?}");

    assert_eq!(count(&client, "SELECT count(*) FROM datasets.roads").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM datasets.roads WHERE gf_source = 'a.geojson'").await, 3);
    let rows = texts(
        &client,
        "SELECT concat_ws('|', feature_id, gf_source, gf_feature_index, gf_geometry_type, name, lanes, oneway, tags::text,
           ST_AsText(geom), ST_SRID(geom), gf_vertices, gf_area_m2)
         FROM datasets.roads ORDER BY fid",
    )
    .await;
    let rows: Vec<String> = rows.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        rows,
        [
            "1|a.geojson|0|Polygon|Main|2|POLYGON((1 2,2 2,2 3,1 3,1 2))|4326|5|10",
            "2|a.geojson|1|Point|t|{\"a\": [1, 2]}|POINT(3 4)|4326|0|11",
            "3|a.geojson|2|Point|Ünïcode \"q\"|POINT Z (2.5 3.5 100)|4326|1|12",
            "10|b.geojson|0|Polygon|4|POLYGON((-5 -6,-3 -6,-3 -4,-5 -4,-5 -6))|4326|5|10",
            "b.geojson|1|no geometry|11",
        ]
    );
    let load_ids =
        texts(&client, "SELECT DISTINCT gf_load_id::text FROM datasets.roads WHERE gf_source = 'a.geojson'").await;
    assert_eq!(load_ids, [Some(load_a.to_string())]);
    let types = texts(
        &client,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'datasets.roads'::regclass AND attname IN ('geom', 'feature_id', 'name', 'lanes', 'oneway', 'tags', 'gf_loaded_at')
         ORDER BY attnum",
    )
    .await;
    let types: Vec<String> = types.into_iter().map(Option::unwrap).collect();
    assert_eq!(types, ["geometry", "bigint", "timestamp with time zone", "text", "bigint", "boolean", "jsonb"]);
    let indexes =
        texts(&client, "SELECT indexdef FROM pg_indexes WHERE schemaname = 'datasets' ORDER BY indexname").await;
    assert!(indexes.iter().flatten().any(|d| d.contains("USING gist (geom)")), "{indexes:?}");
    assert_eq!(indexes.len(), 2, "a source's rows are found by their fid range, not an index: {indexes:?}");
    assert!(indexes.iter().flatten().any(|d| d.contains("UNIQUE INDEX") && d.contains("btree (fid)")), "{indexes:?}");
    // The load that created the table analyzed it: the planner has statistics from the commit on.
    let analyzed = "SELECT count(*) FROM pg_stats WHERE schemaname = 'datasets' AND tablename = 'roads' AND attname IN ('geom', 'name')";
    assert_eq!(count(&client, analyzed).await, 2);

    let datasets = store.datasets().await.unwrap();
    assert_eq!(datasets.len(), 1);
    let d = &datasets[0];
    assert_eq!((d.name.as_str(), d.table.as_str(), d.feature_count, d.sources, d.version), ("roads", "roads", 5, 2, 2));
    assert_eq!(d.bbox, Some(Bbox { min_x: -5.0, min_y: -6.0, max_x: 3.0, max_y: 4.0 }));
    let columns: Vec<(&str, &str, FieldType)> =
        d.columns.iter().map(|c| (c.key.as_str(), c.column.as_str(), c.ty)).collect();
    assert_eq!(
        columns,
        [
            ("name", "name", FieldType::Text),
            ("lanes", "lanes", FieldType::Integer),
            ("oneway", "oneway", FieldType::Boolean),
            ("tags", "tags", FieldType::Json)
        ]
    );
    assert!(d.updated_at.ends_with('Z') && d.updated_at.len() == 24, "{}", d.updated_at);

    let source = store.source(&DatasetName::new("roads").unwrap(), "a.geojson").await.unwrap().unwrap();
    assert_eq!((source.version.content_hash.as_str(), source.version.bytes, source.feature_count), ("h-a", 1234, 3));
    assert_eq!(source.load_id, load_a);
    assert!(store.source(&DatasetName::new("roads").unwrap(), "c.geojson").await.unwrap().is_none());

    let load = client
        .query_one(
            "SELECT status, features_read, features_loaded, skipped, issues->0->>'reason', stored_rows, finished_at >= started_at
             FROM geoflow.loads WHERE id = $1",
            &[&load_a],
        )
        .await
        .unwrap();
    assert_eq!(load.get::<_, String>(0), "loaded");
    assert_eq!((load.get::<_, i64>(1), load.get::<_, i64>(2), load.get::<_, i64>(3)), (4, 3, 1));
    assert_eq!(load.get::<_, String>(4), "ring not closed");
    assert_eq!(load.get::<_, i64>(5), 3);
    assert!(load.get::<_, bool>(6));

    if let Some((n, extent)) = ogr_summary(db.url(), "roads") {
        assert_eq!(n, 5);
        assert_eq!(extent, Some([-5.0, -6.0, 3.0, 4.0]));
    }

    // Removing a source removes its rows and updates the catalog.
    assert_eq!(
        store
            .remove_source(&DatasetName::new("roads").unwrap(), "b.geojson", None, geoflow_store::RemovalCause::Request)
            .await
            .unwrap()
            .rows,
        2
    );
    let d = &store.datasets().await.unwrap()[0];
    assert_eq!((d.feature_count, d.sources, d.version), (3, 1, 3));
    assert_eq!(d.bbox, Some(Bbox { min_x: 1.0, min_y: 2.0, max_x: 3.0, max_y: 4.0 }));
    assert_eq!(
        store
            .remove_source(&DatasetName::new("roads").unwrap(), "b.geojson", None, geoflow_store::RemovalCause::Request)
            .await
            .unwrap()
            .rows,
        0
    );
    assert_eq!(
        store
            .remove_source(
                &DatasetName::new("nothing").unwrap(),
                "b.geojson",
                None,
                geoflow_store::RemovalCause::Request
            )
            .await
            .unwrap()
            .rows,
        0
    );
    assert_eq!(store.datasets().await.unwrap()[0].version, 3);
}

#[tokio::test]
async fn a_dropped_dataset_leaves_no_table_and_no_catalog_rows() {
    let Some((_db, store, client)) = setup().await else { return };
    commit(&store, plan("roads", "a.geojson", "ha1", roads_schema()), roads_a()).await;
    commit(&store, plan("roads", "b.geojson", "hb1", roads_schema()), roads_b()).await;
    let dropped = store.drop_dataset(&DatasetName::new("roads").unwrap()).await.unwrap();
    assert_eq!(dropped.map(|d| (d.sources, d.rows)), Some((2, 5)));
    for sql in [
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets'",
        "SELECT count(*) FROM geoflow.datasets",
        "SELECT count(*) FROM geoflow.columns",
        "SELECT count(*) FROM geoflow.sources",
    ] {
        assert_eq!(count(&client, sql).await, 0, "{sql}");
    }
    assert_eq!(count(&client, "SELECT count(*) FROM geoflow.removals WHERE dataset = 'roads'").await, 2);
    assert_eq!(
        count(&client, "SELECT sum(removed_rows)::bigint FROM geoflow.removals WHERE dataset = 'roads'").await,
        5
    );
    commit(&store, plan("roads", "b.geojson", "hb1", roads_schema()), roads_b()).await;
    assert_eq!(count(&client, "SELECT count(*) FROM datasets.roads").await, 2);
}

#[tokio::test]
async fn reloading_the_same_content_changes_nothing() {
    let Some((_db, store, client)) = setup().await else { return };
    commit(&store, plan("roads", "a.geojson", "h-a", roads_schema()), roads_a()).await;
    let before = texts(&client, "SELECT fid || ':' || gf_load_id FROM datasets.roads ORDER BY fid").await;

    // The store answers before any row is sent and drops the receiver.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let outcome = store.load(plan("roads", "a.geojson", "h-a", roads_schema()), rx).await.unwrap();
    assert!(matches!(outcome, LoadOutcome::Unchanged { .. }), "{outcome:?}");
    assert!(tx.send(LoadMessage::Rows(vec![])).await.is_err(), "receiver dropped");

    assert_eq!(texts(&client, "SELECT fid || ':' || gf_load_id FROM datasets.roads ORDER BY fid").await, before);
    assert_eq!(store.datasets().await.unwrap()[0].version, 1);
    let statuses = texts(&client, "SELECT status FROM geoflow.loads ORDER BY id").await;
    assert_eq!(statuses, [Some("loaded".to_string()), Some("unchanged".to_string())]);
}

#[tokio::test]
async fn a_new_version_replaces_only_its_source() {
    let Some((_db, store, client)) = setup().await else { return };
    commit(&store, plan("roads", "a.geojson", "h-a", roads_schema()), roads_a()).await;
    commit(&store, plan("roads", "b.geojson", "h-b", roads_schema()), roads_b()).await;
    let b_before =
        texts(&client, "SELECT fid::text FROM datasets.roads WHERE gf_source = 'b.geojson' ORDER BY fid").await;

    let new_a = vec![row(0, PropValue::Int(7), Some(point(9.0, 9.0)), vec![(0, PropValue::Text("New".into()))])];
    let outcome = commit(&store, plan("roads", "a.geojson", "h-a2", roads_schema()), new_a).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 3, .. }), "{outcome:?}");

    assert_eq!(
        texts(&client, "SELECT name FROM datasets.roads WHERE gf_source = 'a.geojson'").await,
        [Some("New".to_string())]
    );
    assert_eq!(
        texts(&client, "SELECT fid::text FROM datasets.roads WHERE gf_source = 'b.geojson' ORDER BY fid").await,
        b_before
    );
    let d = &store.datasets().await.unwrap()[0];
    assert_eq!((d.feature_count, d.version), (3, 3));
    assert_eq!(d.bbox, Some(Bbox { min_x: -5.0, min_y: -6.0, max_x: 9.0, max_y: 9.0 }));
    let source = store.source(&DatasetName::new("roads").unwrap(), "a.geojson").await.unwrap().unwrap();
    assert_eq!((source.version.content_hash.as_str(), source.feature_count), ("h-a2", 1));
}

#[tokio::test]
async fn sources_are_replaced_and_removed_by_their_fid_ranges() {
    let Some((_db, store, client)) = setup().await else { return };
    let ranges = || {
        texts(
            &client,
            "SELECT source_key || ' ' || min_fid || '-' || max_fid FROM geoflow.sources WHERE dataset = 'roads'
             ORDER BY source_key",
        )
    };
    commit(&store, plan("roads", "a.geojson", "h-a", roads_schema()), roads_a()).await;
    commit(&store, plan("roads", "b.geojson", "h-b", roads_schema()), roads_b()).await;
    assert_eq!(ranges().await, [Some("a.geojson 1-3".into()), Some("b.geojson 4-5".into())]);

    // A row of another source inside a's range (written by hand) outlives a's replacement.
    client
        .batch_execute(
            "UPDATE datasets.roads SET gf_source = 'c.geojson' WHERE fid = 2;
             INSERT INTO geoflow.sources (dataset, source_key, content_hash, bytes, feature_count, load_id, loaded_at)
             SELECT dataset, 'c.geojson', 'h-c', 1, 1, load_id, loaded_at FROM geoflow.sources
             WHERE source_key = 'a.geojson'",
        )
        .await
        .unwrap();
    let new_a = vec![row(0, PropValue::Int(7), Some(point(9.0, 9.0)), vec![(0, PropValue::Text("New".into()))])];
    let outcome = commit(&store, plan("roads", "a.geojson", "h-a2", roads_schema()), new_a).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 2, .. }), "{outcome:?}");
    assert_eq!(ranges().await[0], Some("a.geojson 6-6".into()));
    assert_eq!(texts(&client, "SELECT gf_source FROM datasets.roads WHERE fid = 2").await, [Some("c.geojson".into())]);

    // A source loaded before ranges were kept is found by gf_source.
    client.batch_execute("UPDATE geoflow.sources SET min_fid = NULL, max_fid = NULL").await.unwrap();
    let outcome = commit(&store, plan("roads", "b.geojson", "h-b2", roads_schema()), roads_b()).await;
    assert!(matches!(outcome, LoadOutcome::Loaded { replaced_rows: 2, .. }), "{outcome:?}");
    assert_eq!(ranges().await[1], Some("b.geojson 7-8".into()));
    let name = DatasetName::new("roads").unwrap();
    assert_eq!(
        store.remove_source(&name, "c.geojson", None, geoflow_store::RemovalCause::Request).await.unwrap().rows,
        1
    );
    assert_eq!(
        store.remove_source(&name, "a.geojson", None, geoflow_store::RemovalCause::Request).await.unwrap().rows,
        1
    );
    assert_eq!(
        store.remove_source(&name, "b.geojson", None, geoflow_store::RemovalCause::Request).await.unwrap().rows,
        2
    );
    assert_eq!(count(&client, "SELECT count(*) FROM datasets.roads").await, 0);
}

#[tokio::test]
async fn abort_and_a_dropped_sender_leave_the_previous_rows() {
    let Some((_db, store, client)) = setup().await else { return };
    commit(&store, plan("roads", "a.geojson", "h-a", roads_schema()), roads_a()).await;
    let before = texts(&client, "SELECT fid || ':' || name FROM datasets.roads ORDER BY fid").await;

    let replacement = vec![row(0, PropValue::Int(7), Some(point(9.0, 9.0)), vec![]); 5];
    let aborted = run_load(
        &store,
        plan("roads", "a.geojson", "h-a2", roads_schema()),
        replacement.clone(),
        Ending::Abort("bad input"),
    )
    .await
    .unwrap();
    let LoadOutcome::Failed { load_id, .. } = aborted else { panic!("{aborted:?}") };
    let failed = client
        .query_one("SELECT status, error, content_hash FROM geoflow.loads WHERE id = $1", &[&load_id])
        .await
        .unwrap();
    assert_eq!(
        (failed.get::<_, String>(0), failed.get::<_, Option<String>>(1), failed.get::<_, String>(2)),
        ("failed".into(), Some("bad input".into()), "h-a2".into())
    );

    let dropped =
        run_load(&store, plan("roads", "a.geojson", "h-a3", roads_schema()), replacement.clone(), Ending::Drop).await;
    assert!(matches!(dropped.as_ref().map_err(StoreError::root), Err(StoreError::Interrupted { .. })), "{dropped:?}");
    assert!(dropped.unwrap_err().is_transient());

    // A load into a new dataset that fails leaves no table behind.
    let lost =
        run_load(&store, plan("fresh", "x.geojson", "h-x", roads_schema()), replacement, Ending::Abort("no")).await;
    assert!(matches!(lost, Ok(LoadOutcome::Failed { .. })), "{lost:?}");

    assert_eq!(texts(&client, "SELECT fid || ':' || name FROM datasets.roads ORDER BY fid").await, before);
    assert_eq!(count(&client, "SELECT count(*) FROM geoflow.loads WHERE status = 'failed'").await, 3);
    assert_eq!(
        texts(&client, "SELECT error FROM geoflow.loads WHERE content_hash = 'h-a3'").await,
        [Some("interrupted before commit".to_string())]
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM pg_tables WHERE schemaname = 'datasets' AND tablename = 'fresh'").await,
        0
    );
    let source = store.source(&DatasetName::new("roads").unwrap(), "a.geojson").await.unwrap().unwrap();
    assert_eq!(source.version.content_hash, "h-a");
    let datasets = store.datasets().await.unwrap();
    assert_eq!(datasets.len(), 1);
    assert_eq!((datasets[0].version, datasets[0].feature_count), (1, 3));

    // record_failure before any row.
    let id = store
        .record_failure(
            &plan("roads", "c.geojson", "h-c", roads_schema()),
            &LoadResult { error: Some("unreadable".into()), ..LoadResult::default() },
        )
        .await
        .unwrap();
    let status: String =
        client.query_one("SELECT status FROM geoflow.loads WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(status, "failed");

    // A row naming a field outside the schema fails the load and changes nothing.
    let bad = vec![row(0, PropValue::Null, None, vec![(99, PropValue::Int(1))])];
    let err =
        run_load(&store, plan("roads", "a.geojson", "h-a4", roads_schema()), bad, Ending::Commit).await.unwrap_err();
    assert!(err.to_string().contains("property field 99"), "{err}");
    assert_eq!(texts(&client, "SELECT fid || ':' || name FROM datasets.roads ORDER BY fid").await, before);
}

#[tokio::test]
async fn widening_keeps_every_stored_value() {
    let Some((_db, store, client)) = setup().await else { return };
    let first = schema(
        &[
            ("n", FieldType::Integer),
            ("r", FieldType::Integer),
            ("big", FieldType::WideInteger),
            ("d", FieldType::Date),
            ("t", FieldType::DateTime),
            ("huge", FieldType::Json),
            ("late", FieldType::Null),
        ],
        FieldType::Integer,
    );
    let rows = vec![
        row(
            0,
            PropValue::Int(1),
            Some(point(0.0, 0.0)),
            vec![
                (0, PropValue::Int(1)),
                (1, PropValue::Int(7)),
                (2, PropValue::Int(9007199254740993)),
                (3, PropValue::Text("2024-02-29".into())),
                (4, PropValue::Text("2022-11-16T09:29:13.250Z".into())),
                (5, PropValue::Json("123456789012345678901234567890".into())),
                (6, PropValue::Null),
            ],
        ),
        row(1, PropValue::Int(2), Some(point(1.0, 1.0)), vec![(0, PropValue::Int(-2)), (1, PropValue::Int(1 << 53))]),
    ];
    commit(&store, plan("w", "one.geojson", "h1", first), rows).await;
    assert_eq!(
        texts(
            &client,
            "SELECT concat_ws('|', n, r, big, d, t AT TIME ZONE 'UTC', huge::text) FROM datasets.w ORDER BY fid"
        )
        .await,
        [
            Some("1|7|9007199254740993|2024-02-29|2022-11-16 09:29:13.25|123456789012345678901234567890".to_string()),
            Some("-2|9007199254740992".to_string())
        ]
    );

    let second = schema(
        &[
            ("n", FieldType::Text),
            ("r", FieldType::Real),
            ("big", FieldType::Real),
            ("d", FieldType::DateTime),
            ("t", FieldType::Text),
            ("huge", FieldType::Integer),
            ("late", FieldType::Integer),
        ],
        FieldType::Text,
    );
    let rows = vec![row(
        0,
        PropValue::Text("x-1".into()),
        Some(point(2.0, 2.0)),
        vec![
            (0, PropValue::Text("x".into())),
            (1, PropValue::Real(0.5)),
            (2, PropValue::Real(1.5)),
            (3, PropValue::Text("2021-01-01T00:00:00.000Z".into())),
            (4, PropValue::Text("free text".into())),
            (5, PropValue::Int(5)),
            (6, PropValue::Int(6)),
        ],
    )];
    commit(&store, plan("w", "two.geojson", "h2", second), rows).await;

    let types = texts(
        &client,
        "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'datasets.w'::regclass AND attname IN ('feature_id', 'n', 'r', 'big', 'd', 't', 'huge', 'late')
         ORDER BY attnum",
    )
    .await;
    let types: Vec<String> = types.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        types,
        [
            "feature_id jsonb",
            "n jsonb",
            "r double precision",
            "big jsonb",
            "d text",
            "t text",
            "huge jsonb",
            "late bigint"
        ]
    );
    let values = texts(
        &client,
        "SELECT concat_ws('|', feature_id::text, n::text, r, big::text, d, t, huge::text, late) FROM datasets.w ORDER BY fid",
    )
    .await;
    assert_eq!(
        values,
        [
            Some(
                "1|1|7|9007199254740993|2024-02-29|2022-11-16T09:29:13.250Z|123456789012345678901234567890".to_string()
            ),
            Some("2|-2|9.007199254740992e+15".to_string()),
            Some("\"x-1\"|\"x\"|0.5|1.5|2021-01-01T00:00:00.000Z|free text|5|6".to_string()),
        ]
    );
    // The catalog keeps the widened types.
    let d = &store.datasets().await.unwrap()[0];
    let tys: Vec<FieldType> = d.columns.iter().map(|c| c.ty).collect();
    use FieldType::*;
    assert_eq!(tys, [Json, Real, Json, Text, Text, Json, Integer]);
}

#[tokio::test]
async fn hostile_keys_and_values_load_and_leave_the_catalog_intact() {
    let Some((_db, store, client)) = setup().await else { return };
    let long = "k".repeat(200);
    let keys = [
        "\"; DROP TABLE geoflow.sources; --",
        "it's",
        "semi;colon",
        long.as_str(),
        "Name",
        "name",
        "名前",
        "fid",
        "geom",
        "",
    ];
    let fields: Vec<(&str, FieldType)> = keys.iter().map(|k| (*k, FieldType::Text)).collect();
    let values = [
        "'); DROP TABLE geoflow.sources; --",
        "\"; DROP TABLE geoflow.datasets; --",
        "a\\b\0".trim_end_matches('\0'),
        "x",
        "upper",
        "lower",
        "値 ✓",
        "f",
        "g",
        "empty key",
    ];
    let props: Vec<(usize, PropValue)> =
        values.iter().enumerate().map(|(i, v)| (i, PropValue::Text(v.to_string()))).collect();
    let source = "raw/evil/'; DROP TABLE geoflow.loads; --.geojson";
    let outcome = commit(
        &store,
        plan("evil", source, "h'; --", schema(&fields, FieldType::Text)),
        vec![row(0, PropValue::Text("'; --".into()), Some(point(1.0, 1.0)), props)],
    )
    .await;
    assert!(matches!(outcome, LoadOutcome::Loaded { .. }), "{outcome:?}");

    let d = &store.datasets().await.unwrap()[0];
    assert_eq!(d.columns.len(), keys.len());
    let mut names: Vec<String> = d.columns.iter().map(|c| c.column.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), keys.len(), "distinct column names: {:?}", d.columns);
    for (c, key) in d.columns.iter().zip(keys) {
        assert_eq!(c.key, key);
        assert!(c.column.len() <= 63, "{}", c.column);
        let value: Option<String> = client
            .query_one(
                &format!("SELECT {}::text FROM datasets.evil", geoflow_store::postgis::quote_ident(&c.column)),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let i = keys.iter().position(|k| *k == key).unwrap();
        assert_eq!(value.as_deref(), Some(values[i]), "column {} of key {key:?}", c.column);
    }
    for table in ["sources", "datasets", "loads", "columns", "migrations"] {
        assert_eq!(
            count(
                &client,
                &format!("SELECT count(*) FROM pg_tables WHERE schemaname = 'geoflow' AND tablename = '{table}'")
            )
            .await,
            1,
            "{table}"
        );
    }
    let record = store.source(&DatasetName::new("evil").unwrap(), source).await.unwrap().unwrap();
    assert_eq!(record.version.content_hash, "h'; --");
    assert_eq!(
        texts(&client, "SELECT feature_id || '|' || gf_source FROM datasets.evil").await,
        [Some(format!("'; --|{source}"))]
    );
}

#[tokio::test]
async fn z_empty_and_null_geometries_round_trip() {
    let Some((_db, store, client)) = setup().await else { return };
    let rows = vec![
        row(0, PropValue::Null, Some(point_z(1.5, 2.5, 300.25)), vec![]),
        row(1, PropValue::Null, Some(empty_point()), vec![]),
        row(2, PropValue::Null, None, vec![]),
        row(3, PropValue::Null, Some(multipoint_z(&[(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)])), vec![]),
        row(4, PropValue::Null, Some(empty_line()), vec![]),
    ];
    commit(&store, plan("geoms", "g.geojson", "h", schema(&[], FieldType::Null)), rows).await;
    let out = texts(
        &client,
        "SELECT coalesce(ST_AsText(geom), 'NULL') || '|' || coalesce(CASE WHEN ST_GeometryType(geom) = 'ST_Point' THEN ST_Z(geom)::text END, '-') || '|' ||
           coalesce(ST_SRID(geom)::text, '-') || '|' || coalesce(gf_geometry_type, '-') || '|' || coalesce(gf_min_x::text, '-')
         FROM datasets.geoms ORDER BY fid",
    )
    .await;
    assert_eq!(
        out,
        [
            Some("POINT Z (1.5 2.5 300.25)|300.25|4326|Point|1.5".to_string()),
            Some("POINT EMPTY|-|4326|Point|-".to_string()),
            Some("NULL|-|-|-|-".to_string()),
            Some("MULTIPOINT Z ((1 2 3),(4 5 6))|-|4326|MultiPoint|1".to_string()),
            Some("LINESTRING EMPTY|-|4326|LineString|-".to_string()),
        ]
    );
    let d = &store.datasets().await.unwrap()[0];
    assert_eq!(d.feature_count, 5);
    assert_eq!(d.bbox, Some(Bbox { min_x: 1.0, min_y: 2.0, max_x: 4.0, max_y: 5.0 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_serialise_per_dataset_and_run_in_parallel_across_datasets() {
    let Some((_db, store, client)) = setup().await else { return };
    // A first load into "one" holds its dataset lock until it commits.
    let (tx_one, rx_one) = tokio::sync::mpsc::channel(4);
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.load(plan("one", "a.geojson", "h1", roads_schema()), rx_one).await }
    });
    tx_one.send(LoadMessage::Rows(roads_a())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another dataset loads meanwhile.
    let other = tokio::time::timeout(
        Duration::from_secs(20),
        commit(&store, plan("two", "a.geojson", "h1", roads_schema()), roads_a()),
    )
    .await
    .expect("a load into another dataset does not wait");
    assert!(matches!(other, LoadOutcome::Loaded { .. }));

    // A second load into "one" waits for the first.
    let second = tokio::spawn({
        let store = store.clone();
        async move { commit(&store, plan("one", "b.geojson", "h2", roads_schema()), roads_b()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second load waits for the dataset lock");
    tx_one.send(LoadMessage::Commit(result_for(&roads_a()))).await.unwrap();
    assert!(matches!(first.await.unwrap().unwrap(), LoadOutcome::Loaded { .. }));
    let second = tokio::time::timeout(Duration::from_secs(20), second).await.unwrap().unwrap();
    assert!(matches!(second, LoadOutcome::Loaded { .. }), "{second:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM datasets.one").await, 5);
    assert_eq!(count(&client, "SELECT count(*) FROM datasets.two").await, 3);

    // Many loads at once into two datasets all land.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let dataset = if i % 2 == 0 { "one" } else { "two" };
        tasks.push(tokio::spawn(async move {
            commit(&store, plan(dataset, &format!("s{i}.geojson"), "h", roads_schema()), roads_b()).await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), LoadOutcome::Loaded { .. }));
    }
    let infos = store.datasets().await.unwrap();
    let counts: Vec<(String, u64, u64)> =
        infos.iter().map(|d| (d.name.to_string(), d.feature_count, d.sources)).collect();
    assert_eq!(counts, [("one".to_string(), 13, 6), ("two".to_string(), 11, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_idempotent_and_safe_to_race() {
    let Some((db, store, client)) = setup().await else { return };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url().to_string();
        tasks.push(tokio::spawn(async move { PostgisStore::connect(&url).await.map(|_| ()) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    store.migrate().await.unwrap();
    assert_eq!(count(&client, "SELECT count(*) FROM geoflow.migrations").await, 10);
}

#[test]
fn versions_below_the_minimum_are_refused_with_both_versions_named() {
    let e = check_versions(120011, Some("3.3.2")).unwrap_err();
    assert!(e.contains("PostgreSQL 12.11") && e.contains("PostgreSQL 13"), "{e}");
    let e = check_versions(150004, Some("3.0.5")).unwrap_err();
    assert!(e.contains("PostGIS 3.0.5") && e.contains("PostGIS 3.1"), "{e}");
    assert!(check_versions(150004, Some("3.3.2 r1")).is_ok());
}

#[tokio::test]
async fn the_server_passes_the_version_check() {
    let Some((_db, _store, client)) = setup().await else { return };
    let num: String = client.query_one("SHOW server_version_num", &[]).await.unwrap().get(0);
    let postgis: String =
        client.query_one("SELECT extversion FROM pg_extension WHERE extname = 'postgis'", &[]).await.unwrap().get(0);
    check_versions(num.parse().unwrap(), Some(&postgis)).unwrap();
}

#[tokio::test]
async fn passwords_never_appear_in_locations_or_errors() {
    assert_eq!(
        redact("postgres://geo:hunter2@db:5432/gis?sslmode=disable"),
        "postgres://geo@db:5432/gis?sslmode=disable"
    );
    // Nothing listens on port 1.
    let url = "postgres://geo:hunter2secret@127.0.0.1:1/gis?sslmode=disable&connect_timeout=2";
    let err = PostgisStore::connect(url).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2secret"), "{text}");
    assert!(text.contains("geo@127.0.0.1:1"), "{text}");
    let err = PostgisStore::connect("host=127.0.0.1 port=1 user=geo password=hunter2secret sslmode=disable")
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2secret"), "{text}");

    let Some(db) = postgis_database().await else { return };
    // Trust authentication ignores the password; it must not show anywhere all the same.
    let with_password = db.url().replacen("postgres@", "postgres:hunter2secret@", 1);
    assert_ne!(with_password, db.url());
    let store = PostgisStore::connect(&with_password).await.unwrap();
    assert!(!store.location().contains("hunter2secret"), "{}", store.location());
    assert!(!format!("{store:?}").contains("hunter2secret"));
    let bad = vec![row(0, PropValue::Null, None, vec![(5, PropValue::Int(1))])];
    let err = run_load(&store, plan("x", "hunter2secret.geojson", "h", roads_schema()), bad, Ending::Commit)
        .await
        .unwrap_err();
    assert!(!format!("{err}").replace("hunter2secret.geojson", "").contains("hunter2secret"));
}

/// TLS modes against the test server, which speaks TLS with a certificate for `localhost`
/// signed by a CA of its own (or against `GEOFLOW_TEST_TLS_URL`, a server with a
/// certificate for `localhost` signed by the CA in the PEM file `GEOFLOW_TEST_TLS_CA`).
#[tokio::test]
async fn tls_modes_are_honoured() {
    let _db;
    let (url, ca) = match (std::env::var("GEOFLOW_TEST_TLS_URL"), std::env::var("GEOFLOW_TEST_TLS_CA")) {
        (Ok(url), Ok(ca)) => (url, ca),
        _ => {
            let Some(db) = postgis_database().await else { return };
            let Some(ca) = db.tls_ca().map(|p| p.display().to_string()) else {
                if std::env::var_os(geoflow_testkit::DATABASE_URL_ENV).is_some() {
                    // A server of the caller's: its TLS setup is unknown.
                    eprintln!("skipped: set GEOFLOW_TEST_TLS_URL and GEOFLOW_TEST_TLS_CA to test TLS");
                } else {
                    geoflow_testkit::skip::<()>("the test server has no TLS certificate (is openssl installed?)");
                }
                return;
            };
            let url = db.url().to_string();
            _db = db;
            (url, ca)
        }
    };
    let with = |u: &str, q: &str| format!("{u}{}{q}", if u.contains('?') { '&' } else { '?' });
    let localhost = url.replace("127.0.0.1", "localhost");
    let ip = url.replace("localhost", "127.0.0.1");
    // Encrypted, no certificate check.
    for mode in ["prefer", "require"] {
        let store = PostgisStore::connect(&with(&ip, &format!("sslmode={mode}"))).await.unwrap();
        let client = store.pool().get().await.unwrap();
        let ssl: bool =
            client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
        assert!(ssl, "sslmode={mode} encrypts");
    }
    // The CA signed the certificate: verify-ca accepts it under any name, verify-full only
    // for the name it was issued to.
    PostgisStore::connect(&with(&ip, &format!("sslmode=verify-ca&sslrootcert={ca}"))).await.unwrap();
    PostgisStore::connect(&with(&localhost, &format!("sslmode=verify-full&sslrootcert={ca}"))).await.unwrap();
    let err = PostgisStore::connect(&with(&ip, &format!("sslmode=verify-full&sslrootcert={ca}"))).await.unwrap_err();
    assert!(err.to_string().contains("TLS") || err.to_string().contains("certificate"), "{err}");
    // Without the CA (public roots only) the certificate is not trusted.
    let err = PostgisStore::connect(&with(&localhost, "sslmode=verify-full")).await.unwrap_err();
    assert!(err.to_string().contains("certificate") || err.to_string().contains("TLS"), "{err}");
    eprintln!("untrusted: {err}");
    // sslmode=disable talks plain TCP.
    let store = PostgisStore::connect(&with(&ip, "sslmode=disable")).await.unwrap();
    let client = store.pool().get().await.unwrap();
    let ssl: bool =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0);
    assert!(!ssl);
}

#[tokio::test]
async fn indexes_are_the_same_however_a_load_fills_them() {
    let Some((db, store, client)) = setup().await else { return };
    let maintained = PostgisStore::connect(db.url()).await.unwrap().with_deferred_spatial_index(false);
    let index_defs = |table: &'static str| {
        let client = &client;
        async move {
            texts(
                client,
                &format!(
                    "SELECT regexp_replace(indexdef, 'INDEX \\S+ ON', 'INDEX ON') FROM pg_indexes
                     WHERE schemaname = 'datasets' AND tablename = '{table}' ORDER BY 1"
                ),
            )
            .await
        }
    };
    commit(&store, plan("deferred", "a.geojson", "h1", roads_schema()), roads_a()).await;
    commit(&maintained, plan("kept", "a.geojson", "h1", roads_schema()), roads_a()).await;
    let expected = index_defs("deferred").await;
    // The primary key and the spatial index: sources are found by their fid ranges.
    assert_eq!(expected.len(), 2, "{expected:?}");
    assert!(expected.iter().flatten().all(|d| !d.contains("gf_source")), "{expected:?}");
    assert_eq!(
        index_defs("kept").await,
        expected.iter().map(|d| d.as_ref().map(|d| d.replace("deferred", "kept"))).collect::<Vec<_>>()
    );

    // A table emptied by removing its only source is refilled with the index rebuilt.
    let name = DatasetName::new("deferred").unwrap();
    assert_eq!(
        store.remove_source(&name, "a.geojson", None, geoflow_store::RemovalCause::Request).await.unwrap().rows,
        3
    );
    assert_eq!(store.datasets().await.unwrap()[0].feature_count, 0);
    commit(&store, plan("deferred", "b.geojson", "h2", roads_schema()), roads_b()).await;
    assert_eq!(index_defs("deferred").await, expected);
    assert_eq!(
        count(&client, "SELECT count(*) FROM datasets.deferred WHERE geom && ST_MakeEnvelope(-6, -7, 0, 0, 4326)")
            .await,
        1
    );
    let d = store.datasets().await.unwrap().into_iter().find(|d| d.name == name).unwrap();
    assert_eq!((d.feature_count, d.sources), (2, 1));
    assert_eq!(d.bbox, Some(Bbox { min_x: -5.0, min_y: -6.0, max_x: -3.0, max_y: -4.0 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_writes_do_not_wait_for_loads() {
    let Some((_db, store, client)) = setup().await else { return };
    let new = NewJob {
        id: "job-b".into(),
        dataset: DatasetName::new("roads").unwrap(),
        source: "b.geojson".into(),
        action: JobAction::Load,
        object_version: Some("etag".into()),
    };
    store.upsert_job(&new).await.unwrap();

    // A load of the same dataset, started and not committed, holds the dataset's lock.
    let (tx_a, rx_a) = tokio::sync::mpsc::channel(4);
    let load_a = tokio::spawn({
        let store = store.clone();
        async move { store.load(plan("roads", "a.geojson", "ha", roads_schema()), rx_a).await }
    });
    tx_a.send(LoadMessage::Rows(roads_a())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let quick = Duration::from_secs(5);
    let running = tokio::time::timeout(
        quick,
        store.update_job("job-b", JobUpdate { status: Some(JobStatus::Running), ..JobUpdate::default() }),
    )
    .await
    .expect("a job update does not wait for a load")
    .unwrap();
    assert_eq!(running.attempts, 1);
    let other = NewJob { id: "job-c".into(), ..new };
    tokio::time::timeout(quick, store.upsert_job(&other)).await.expect("nor does a new job").unwrap();
    assert!(!load_a.is_finished());

    tx_a.send(LoadMessage::Commit(result_for(&roads_a()))).await.unwrap();
    assert!(matches!(load_a.await.unwrap().unwrap(), LoadOutcome::Loaded { .. }));
    assert_eq!(count(&client, "SELECT count(*) FROM geoflow.jobs").await, 2);
    let result_type = texts(&client, "SELECT data_type FROM information_schema.columns WHERE table_schema = 'geoflow' AND table_name = 'jobs' AND column_name = 'result'").await;
    assert_eq!(result_type, [Some("jsonb".to_string())]);
}

/// The features of a query, as (fid, GeoJSON text).
async fn read_features(store: &PostgisStore, dataset: &str, query: FeatureQuery) -> Vec<(i64, String)> {
    let stream = store.features(&DatasetName::new(dataset).unwrap(), &query).await.unwrap();
    let features: Vec<_> = stream.try_collect().await.unwrap();
    features.into_iter().map(|f| (f.fid, f.json)).collect()
}

/// The coordinates of a GeoJSON point, read exactly (not through serde_json's float parser).
fn point_coordinates(json: &str) -> Vec<f64> {
    let start = json.find(r#""coordinates":["#).expect("coordinates") + 15;
    let end = start + json[start..].find(']').unwrap();
    json[start..end].split(',').map(|n| n.parse().unwrap_or_else(|e| panic!("{n}: {e}"))).collect()
}

#[tokio::test]
async fn features_with_150_properties_read_back_as_loaded() {
    let Some((_db, store, _client)) = setup().await else { return };
    // More properties than json_build_object (or any function) takes arguments.
    let types = [
        FieldType::Text,
        FieldType::Integer,
        FieldType::WideInteger,
        FieldType::Real,
        FieldType::Boolean,
        FieldType::Json,
        FieldType::Date,
        FieldType::DateTime,
    ];
    let keys: Vec<String> = (0..150).map(|i| format!("p{i:03} \"ü\"")).collect();
    let fields: Vec<(&str, FieldType)> = keys.iter().enumerate().map(|(i, k)| (k.as_str(), types[i % 8])).collect();
    let value = |i: usize| match types[i % 8] {
        FieldType::Text => PropValue::Text(format!("v{i} \"quoted\" \\ ü")),
        FieldType::Integer => PropValue::Int(i as i64 * 1000 - 7),
        FieldType::WideInteger => PropValue::Int(9_007_199_254_740_993 + i as i64),
        FieldType::Real => PropValue::Real([0.1 + 0.2, 3.0, -1.5e-300, 1e300, 179.99999999999997][i % 5]),
        FieldType::Boolean => PropValue::Bool(i % 3 != 1),
        FieldType::Json => PropValue::Json(format!(r#"{{"z":[1,2.50,"x{i}"],"a":null,"m":{{"n":-0.125}}}}"#)),
        FieldType::Date => PropValue::Text("2024-02-29".into()),
        _ => PropValue::Text(format!("2024-02-29T23:59:{:02}.{i:03}Z", i % 60)),
    };
    let (x, y) = (0.1 + 0.2, 1.000_000_000_000_000_2e-8);
    let rows = vec![
        row(0, PropValue::Int(1), Some(point(x, y)), (0..150).map(|i| (i, value(i))).collect()),
        row(1, PropValue::Int(2), Some(point(-180.0, 90.0)), (0..150).step_by(2).map(|i| (i, value(i))).collect()),
        row(2, PropValue::Int(3), None, vec![]),
    ];
    commit(&store, plan("wide150", "w.geojson", "h1", schema(&fields, FieldType::Integer)), rows).await;

    let all = FeatureQuery { limit: 10, ..FeatureQuery::default() };
    let features = read_features(&store, "wide150", all.clone()).await;
    assert_eq!(features.len(), 3);
    for (n, (fid, json)) in features.iter().enumerate() {
        let f: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(f["id"], *fid);
        // Every property is named; those the row leaves out are null.
        let expected: serde_json::Map<String, serde_json::Value> = (0..150)
            .map(|i| {
                let present = n == 0 || (n == 1 && i % 2 == 0);
                let v = if present {
                    serde_json::from_str(&value(i).to_json_text()).unwrap()
                } else {
                    serde_json::Value::Null
                };
                (keys[i].clone(), v)
            })
            .collect();
        assert_eq!(f["properties"], serde_json::Value::Object(expected), "feature {n}");
        // In table order, and numbers as they were written: big integers exact, doubles as
        // doubles.
        let at: Vec<usize> = (0..150).filter_map(|i| json.find(&format!(r#""p{i:03} \"ü\"":"#))).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "keys out of order: {json}");
        if n == 0 {
            assert!(json.contains(r#":9007199254740995,"#), "{json}");
            assert!(json.contains(r#":3.0,"#) && json.contains(r#":0.30000000000000004,"#), "{json}");
            assert!(json.contains(r#""2024-02-29T23:59:07.007Z""#) && json.contains(r#""2024-02-29""#), "{json}");
        }
    }
    assert_eq!(point_coordinates(&features[0].1), [x, y], "{}", features[0].1);
    assert!(features[1].1.contains(r#""coordinates":[-180.0,90.0]"#), "{}", features[1].1);
    assert!(features[2].1.contains(r#""geometry":null,"properties":{"p000 \"ü\"":null,"#), "{}", features[2].1);

    // Filters on the last columns (parameters numbered past the 150 keys), compared as text.
    let (first, second) = (features[0].0, features[1].0);
    let json141 = r#"{"m":{"n":-0.125},"a":null,"z":[1,2.5,"x141"]}"#;
    for (i, text, expected) in [
        (143, "2024-02-29T23:59:23.143Z", vec![first]),
        (142, "2024-02-29", vec![first, second]),
        (148, "false", vec![first, second]),
        (148, "no", vec![]),
        (146, "9007199254741139", vec![first, second]),
        (146, "9007199254740993", vec![]),
        (147, "-1.5e-300", vec![first]),
        (147, "0.30000000000000004", vec![]),
        (131, "3", vec![first]),
        (131, "3.0", vec![first]),
        (141, json141, vec![first]),
        (141, r#"{"m":{"n":-0.125}}"#, vec![]),
        (136, "v136 \"quoted\" \\ ü", vec![first, second]),
    ] {
        let query = FeatureQuery { properties: vec![(keys[i].clone(), text.into())], ..all.clone() };
        let fids: Vec<i64> = read_features(&store, "wide150", query).await.into_iter().map(|f| f.0).collect();
        assert_eq!(fids, expected, "{} = {text}", keys[i]);
    }
    let one = store.feature(&DatasetName::new("wide150").unwrap(), first, None).await.unwrap().unwrap();
    assert_eq!(one.json, features[0].1);

    // A table without rows reads as no features.
    assert_eq!(
        store
            .remove_source(
                &DatasetName::new("wide150").unwrap(),
                "w.geojson",
                None,
                geoflow_store::RemovalCause::Request
            )
            .await
            .unwrap()
            .rows,
        3
    );
    assert!(read_features(&store, "wide150", all).await.is_empty());
}

#[tokio::test]
async fn deep_pages_and_boxes_use_the_indexes() {
    let Some((_db, store, client)) = setup().await else { return };
    // 20 000 points on a 200 × 100 grid over the world.
    let at = |i: u64| (-179.1 + (i % 200) as f64 * 1.8, -84.15 + (i / 200) as f64 * 1.7);
    let rows: Vec<_> = (0..20_000)
        .map(|i| {
            let (x, y) = at(i);
            row(i, PropValue::Int(i as i64), Some(point(x, y)), vec![(0, PropValue::Text(format!("n{i}")))])
        })
        .collect();
    commit(&store, plan("grid", "g.geojson", "h1", schema(&[("name", FieldType::Text)], FieldType::Integer)), rows)
        .await;
    client.batch_execute("ANALYZE datasets.grid").await.unwrap();
    let grid = DatasetName::new("grid").unwrap();
    let first: i64 = client.query_one("SELECT min(fid) FROM datasets.grid", &[]).await.unwrap().get(0);

    // A deep page walks the primary key from the cursor.
    let deep = FeatureQuery { after: Some(first + 19_000), limit: 10, ..FeatureQuery::default() };
    let plan_text = store.explain_features(&grid, &deep).await.unwrap();
    assert!(plan_text.contains("Index Scan using grid_pkey"), "{plan_text}");
    let page = read_features(&store, "grid", deep).await;
    assert_eq!(page.iter().map(|f| f.0).collect::<Vec<_>>(), (first + 19_001..first + 19_011).collect::<Vec<_>>());

    // A small box asks the spatial index, across the antimeridian too.
    let boxed = |min_x, min_y, max_x, max_y| FeatureQuery {
        bbox: Some(Bbox { min_x, min_y, max_x, max_y }),
        limit: 100,
        ..FeatureQuery::default()
    };
    let inside = |b: &FeatureQuery| {
        let b = b.bbox.unwrap();
        let in_x =
            |x: f64| if b.min_x > b.max_x { x >= b.min_x || x <= b.max_x } else { (b.min_x..=b.max_x).contains(&x) };
        (0..20_000).filter(|&i| in_x(at(i).0) && (b.min_y..=b.max_y).contains(&at(i).1)).count()
    };
    for query in [boxed(10.0, 10.0, 20.0, 20.0), boxed(170.0, -5.0, -170.0, 5.0)] {
        let plan_text = store.explain_features(&grid, &query).await.unwrap();
        assert!(plan_text.contains("grid_geom_idx"), "{plan_text}");
        let expected = inside(&query);
        assert!(expected > 10 && expected < 100, "{expected}");
        assert_eq!(read_features(&store, "grid", query).await.len(), expected);
    }
}

#[tokio::test]
async fn bbox_pages_are_exact_whether_the_window_or_the_spatial_index_answers() {
    let Some((_db, store, client)) = setup().await else { return };
    // 5 000 points on a 100 × 50 grid, in row order: row i at (i % 100, i / 100), so a box's
    // matches sit where its rows are in fid order.
    let rows: Vec<_> = (0..5_000)
        .map(|i| {
            let (x, y) = ((i % 100) as f64, (i / 100) as f64);
            row(i, PropValue::Int(i as i64), Some(point(x, y)), vec![(0, PropValue::Text(format!("n{i}")))])
        })
        .collect();
    commit(&store, plan("win", "w.geojson", "h1", schema(&[("name", FieldType::Text)], FieldType::Integer)), rows)
        .await;
    client.batch_execute("ANALYZE datasets.win").await.unwrap();
    let win = DatasetName::new("win").unwrap();
    let boxed = |min_x, min_y, max_x, max_y, limit, after| FeatureQuery {
        bbox: Some(Bbox { min_x, min_y, max_x, max_y }),
        limit,
        after,
        ..FeatureQuery::default()
    };
    // Pages of 10 read windows of 1 000 rows (rows 0..999 from the start).
    let dense = boxed(-0.5, -0.5, 49.5, 49.5, 10, None);
    let plan_text = store.explain_features(&win, &dense).await.unwrap();
    assert!(plan_text.contains("Index Scan using win_pkey"), "{plan_text}");
    for (name, b) in [
        // Half of every window matches: the window holds the page.
        ("dense", dense),
        // Rows 2 000 and on only: no window match, the spatial index answers.
        ("sparse", boxed(9.5, 19.5, 12.5, 29.5, 10, None)),
        // Rows 900..904 at the end of the first window, then 1 000..1 004 after it.
        ("straddling", boxed(-0.5, 8.5, 4.5, 10.5, 10, None)),
        // Four short runs of rows 100 apart: pages from cursors inside windows straddle them.
        ("straddling runs", boxed(-0.5, 8.5, 4.5, 12.5, 10, None)),
    ] {
        let bbox = b.bbox.unwrap();
        let expected: Vec<i64> = client
            .query(
                "SELECT fid FROM datasets.win WHERE ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326)) \
                 ORDER BY fid",
                &[&bbox.min_x, &bbox.min_y, &bbox.max_x, &bbox.max_y],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(expected.len() >= 10, "{name}: {}", expected.len());
        for limit in [1, 3, 4, 10, 100] {
            // Every page from the first, each after the last fid of the one before.
            let mut read = Vec::new();
            let mut after = None;
            loop {
                let page = read_features(&store, "win", FeatureQuery { limit, after, ..b.clone() }).await;
                assert!(page.len() <= limit, "{name}, limit {limit}");
                let Some(last) = page.last() else { break };
                after = Some(last.0);
                let short = page.len() < limit;
                read.extend(page.into_iter().map(|f| f.0));
                if short {
                    break;
                }
            }
            assert_eq!(read, expected, "{name}, pages of {limit}");
        }
        // The features themselves are those of a single-feature read.
        let page = read_features(&store, "win", b.clone()).await;
        let one = store.feature(&win, page[0].0, None).await.unwrap().unwrap();
        assert_eq!(one.json, page[0].1, "{name}");
    }
}

/// The geometry column as PostGIS's `geometry_columns` reports it: (type, dimension, SRID).
async fn geometry_column(client: &Client, table: &str) -> (String, i32, i32) {
    let r = client
        .query_one(
            "SELECT type, coord_dimension, srid FROM geometry_columns
             WHERE f_table_schema = 'datasets' AND f_table_name = $1 AND f_geometry_column = 'geom'",
            &[&table],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn typed_geometry_columns_widen_keeping_their_index_and_srid_check() {
    use geoflow_core::geometry_type::GeometryKinds;
    use geoflow_core::row::GeometryKind::{MultiPolygon, Point, Polygon};
    let Some((db, store, client)) = setup().await else { return };
    let typed = |dataset: &str, source: &str, hash: &str, kinds: &[geoflow_core::row::GeometryKind]| {
        let mut p = plan(dataset, source, hash, schema(&[], FieldType::Null));
        p.schema.geometry = GeometryKinds::of(kinds, false);
        p
    };
    let rows =
        vec![row(0, PropValue::Null, Some(square(0.0, 0.0, 1.0)), vec![]), row(1, PropValue::Null, None, vec![])];
    commit(&store, typed("parcels", "a", "h1", &[Polygon, MultiPolygon]), rows).await;
    assert_eq!(geometry_column(&client, "parcels").await, ("MULTIPOLYGON".into(), 2, 4326));
    let types = texts(&client, "SELECT ST_GeometryType(geom) FROM datasets.parcels ORDER BY fid").await;
    assert_eq!(types, [Some("ST_MultiPolygon".to_string()), None]);
    let indexes = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'datasets' AND tablename = 'parcels'";
    assert_eq!(count(&client, indexes).await, 2);

    // Widening: geometry(Geometry,4326), the same indexes, the SRID check still in force.
    let outcome = commit(
        &store,
        typed("parcels", "b", "h2", &[Point]),
        vec![row(0, PropValue::Null, Some(point(3.0, 3.0)), vec![])],
    )
    .await;
    let LoadOutcome::Loaded { schema_changes, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(schema_changes.len(), 1, "{schema_changes:?}");
    assert_eq!(geometry_column(&client, "parcels").await, ("GEOMETRY".into(), 2, 4326));
    assert_eq!(count(&client, indexes).await, 2);
    assert_eq!(
        count(&client, "SELECT count(*) FROM datasets.parcels WHERE geom && ST_MakeEnvelope(2, 2, 4, 4, 4326)").await,
        1
    );
    let wrong_srid = client
        .batch_execute(
            "INSERT INTO datasets.parcels (geom, gf_source, gf_load_id, gf_loaded_at, gf_feature_index)
             VALUES (ST_SetSRID(ST_MakePoint(1, 1), 3857), 'x', 0, now(), 0)",
        )
        .await;
    assert!(wrong_srid.is_err(), "the SRID is still enforced");
    if let Some((n, _)) = ogr_summary(db.url(), "parcels") {
        assert_eq!(n, 3);
    }

    // A table made before geometry columns were typed has no type modifier: it keeps it, and
    // takes any geometry, 2D or 3D.
    commit(&store, plan("legacy", "a", "l1", schema(&[], FieldType::Null)), vec![]).await;
    client.batch_execute("ALTER TABLE datasets.legacy ALTER COLUMN geom TYPE geometry").await.unwrap();
    let mut p = plan("legacy", "b", "l2", schema(&[], FieldType::Null));
    p.schema.geometry = GeometryKinds::of(&[Point], true);
    let outcome = commit(&store, p, vec![row(0, PropValue::Null, Some(point_z(1.0, 2.0, 3.0)), vec![])]).await;
    let LoadOutcome::Loaded { schema_changes, .. } = outcome else { panic!("{outcome:?}") };
    assert!(schema_changes.is_empty(), "{schema_changes:?}");
    let formatted = texts(
        &client,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'datasets.legacy'::regclass AND attname = 'geom'",
    )
    .await;
    assert_eq!(formatted, [Some("geometry".to_string())]);
    let legacy = store.dataset(&DatasetName::new("legacy").unwrap()).await.unwrap().unwrap();
    assert_eq!(legacy.geometry_type, "Geometry (2D and 3D)");
}

/// The median time of `n` reads of `query`.
async fn median_read(store: &PostgisStore, dataset: &str, query: &FeatureQuery, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = std::time::Instant::now();
        read_features(store, dataset, query.clone()).await;
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test]
async fn sorted_pages_at_any_depth_are_index_scans_given_an_index() {
    let Some((_db, store, client)) = setup().await else { return };
    // 100 000 names with ties (1000 distinct) and a tenth of them NULL.
    let rows: Vec<_> = (0..100_000u64)
        .map(|i| {
            let name =
                if i % 10 == 3 { PropValue::Null } else { PropValue::Text(format!("n{:04}", (i * 7919) % 1000)) };
            row(i, PropValue::Int(i as i64), Some(point(0.0, 0.0)), vec![(0, name)])
        })
        .collect();
    let schema = schema(&[("name", FieldType::Text)], FieldType::Integer);
    commit(&store, plan("sorted", "s.geojson", "h1", schema), rows).await;
    client.batch_execute("ANALYZE datasets.sorted").await.unwrap();
    let sorted = DatasetName::new("sorted").unwrap();
    let by = |descending| vec![SortKey { key: "name".into(), descending }];
    let first = |descending| FeatureQuery { sort: by(descending), limit: 100, ..FeatureQuery::default() };
    // The cursor of a feature deep in each order: the 90 000th.
    let (deep_asc, deep_desc) = (deep_cursor(&store, first(false)).await, deep_cursor(&store, first(true)).await);
    let unindexed = [
        median_read(&store, "sorted", &first(false), 5).await,
        median_read(&store, "sorted", &deep_asc, 5).await,
        median_read(&store, "sorted", &deep_desc, 5).await,
    ];
    let indexing = std::time::Instant::now();
    client.batch_execute(r#"CREATE INDEX sorted_name ON datasets.sorted (name COLLATE "C", fid)"#).await.unwrap();
    let indexing = indexing.elapsed();
    client.batch_execute("ANALYZE datasets.sorted").await.unwrap();
    for query in [first(false), first(true), deep_asc.clone(), deep_desc.clone()] {
        let plan_text = store.explain_features(&sorted, &query).await.unwrap();
        println!("{plan_text}");
        assert!(plan_text.contains("Index Scan") && plan_text.contains("sorted_name"), "{plan_text}");
        assert!(!plan_text.contains("Seq Scan"), "{plan_text}");
    }
    let indexed = [
        median_read(&store, "sorted", &first(false), 9).await,
        median_read(&store, "sorted", &deep_asc, 9).await,
        median_read(&store, "sorted", &deep_desc, 9).await,
    ];
    println!(
        "100-feature pages of 100 000 sorted by name (first, deep ascending, deep descending): without an index \
         {unindexed:?}, with one {indexed:?} (built in {indexing:?})"
    );
}

/// `query` from the 90 000th feature of its order on.
async fn deep_cursor(store: &PostgisStore, query: FeatureQuery) -> FeatureQuery {
    let page = read_sorted_page(store, &FeatureQuery { limit: 90_000, ..query.clone() }).await;
    let last = page.last().unwrap().clone();
    FeatureQuery { after: Some(last.fid), position: last.sort_values, ..query }
}

async fn read_sorted_page(store: &PostgisStore, query: &FeatureQuery) -> Vec<geoflow_store::StoredFeature> {
    let stream = store.features(&DatasetName::new("sorted").unwrap(), query).await.unwrap();
    stream.try_collect().await.unwrap()
}

#[tokio::test]
async fn served_crs_missing_from_spatial_ref_sys_are_named() {
    let Some((_db, store, client)) = setup().await else { return };
    use geoflow_store::FeatureReads;
    assert_eq!(store.missing_crs(&[4326, 3857, 32601, 32760, 2056, 27700]).await.unwrap(), Vec::<u32>::new());
    client.execute("DELETE FROM spatial_ref_sys WHERE srid = 2056", &[]).await.unwrap();
    assert_eq!(store.missing_crs(&[4326, 2056, 999_999]).await.unwrap(), vec![2056, 999_999]);
}
