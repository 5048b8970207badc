//! The harness gives each test a fresh database with PostGIS.

#[tokio::test]
async fn fresh_databases_have_postgis() {
    let Some(a) = geoflow_testkit::postgis_database().await else { return };
    let Some(b) = geoflow_testkit::postgis_database().await else { return };
    assert_ne!(a.name(), b.name());
    let (client, conn) = tokio_postgres::connect(a.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let version: String = client.query_one("SELECT postgis_lib_version()", &[]).await.unwrap().get(0);
    assert!(version.starts_with('3'), "{version}");
    client.batch_execute("CREATE TABLE t (g geometry)").await.unwrap();
    let (client_b, conn_b) = tokio_postgres::connect(b.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn_b);
    let n: i64 = client_b
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 't'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "databases are independent");
}
