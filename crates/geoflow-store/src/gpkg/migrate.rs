//! Versioned, idempotent migrations, run inside `BEGIN IMMEDIATE` so that two processes
//! migrating at once apply each step exactly once.

use std::path::Path;

use rusqlite::{params, Connection, TransactionBehavior};

use super::{open_connection, to_rfc3339, Ctx};
use crate::StoreError;

/// `PRAGMA application_id` of a GeoPackage: "GPKG".
pub const APPLICATION_ID: i32 = 0x4750_4B47;

/// `PRAGMA user_version` written: GeoPackage 1.3 (10300).
///
/// The tables, the R-tree trigger set (insert, update1..update4, delete) and the extension
/// rows are those GDAL writes and validates; GDAL 3.6 warns on opening a file that claims
/// 1.4 (10400), so a file that claims it would not open cleanly everywhere. A file already
/// claiming a later version keeps its value.
pub const USER_VERSION: i32 = 10300;

/// Page size of new files. Large pages cut the per-page work of bulk inserts (and the WAL
/// frames written); R-tree nodes stay at SQLite's 51-cell limit whatever the page size.
pub const PAGE_SIZE: i64 = 32768;

/// Applied in order, each once; a step is never edited after release (files created by it
/// exist), later changes are new steps.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sql/geopackage.sql")),
    (2, include_str!("sql/catalog.sql")),
    (3, include_str!("sql/jobs.sql")),
    (4, include_str!("sql/reports.sql")),
    (5, include_str!("sql/superseded.sql")),
    (6, include_str!("sql/overflow.sql")),
    (7, include_str!("sql/modes.sql")),
    (8, include_str!("sql/schema_changes.sql")),
    (9, include_str!("sql/upsert.sql")),
    (10, include_str!("sql/temporal.sql")),
];

/// The step a catalog of this build is at once migrated.
pub(crate) const LATEST_STEP: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Changing the journal mode needs the file to itself and does not wait on the busy timeout:
/// when another connection (a racing migration, say) holds it, retry until the timeout.
fn switch_to_wal(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + super::BUSY_TIMEOUT;
    loop {
        let mode: String =
            conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).ctx("reading the journal mode")?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(());
        }
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(StoreError::db("switching to WAL", e)),
        }
    }
}

pub fn run(path: &Path) -> Result<(), StoreError> {
    let location = path.display().to_string();
    let mut conn = open_connection(path)?;
    check_application_id(&conn, &location)?;
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0)).ctx("reading the page count")?;
    if pages == 0 {
        // Only possible before the first table exists (and before WAL).
        conn.pragma_update(None, "page_size", PAGE_SIZE).ctx("setting the page size")?;
    }
    switch_to_wal(&conn)?;

    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting the migration")?;
    // Checked again under the write lock: another process may have created the file meanwhile.
    check_application_id(&tx, &location)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS geoflow_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .ctx("creating the migrations table")?;
    let applied: Vec<i64> = tx
        .prepare("SELECT version FROM geoflow_migrations ORDER BY version")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .ctx("reading applied migrations")?;
    let latest = LATEST_STEP;
    if let Some(&newest) = applied.iter().max().filter(|&&v| v > latest) {
        return Err(StoreError::Incompatible {
            location,
            reason: format!("the catalog is at version {newest}, newer than this geoflow knows ({latest})"),
        });
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.execute_batch(sql).ctx(&format!("applying migration {version}"))?;
        tx.execute(
            "INSERT INTO geoflow_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, to_rfc3339(time::OffsetDateTime::now_utc())?],
        )
        .ctx("recording a migration")?;
        tracing::info!(version, location = %location, "applied catalog migration");
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).ctx("setting the application id")?;
    let user_version: i32 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).ctx("reading user_version")?;
    if user_version < USER_VERSION {
        tx.pragma_update(None, "user_version", USER_VERSION).ctx("setting user_version")?;
    }
    tx.commit().ctx("committing the migration")?;
    Ok(())
}

/// The last migration step applied to the catalog on `conn` (0: none, not even the table
/// that records them), read without writing anything.
pub(crate) fn applied_step(conn: &Connection) -> Result<i64, StoreError> {
    let recorded: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'geoflow_migrations')",
            [],
            |r| r.get(0),
        )
        .ctx("reading the schema")?;
    if !recorded {
        return Ok(0);
    }
    conn.query_row("SELECT coalesce(max(version), 0) FROM geoflow_migrations", [], |r| r.get(0))
        .ctx("reading applied migrations")
}

/// A file that is not a GeoPackage (another SQLite database) is refused rather than changed.
fn check_application_id(conn: &Connection, location: &str) -> Result<(), StoreError> {
    let incompatible = |reason: String| StoreError::Incompatible { location: location.to_string(), reason };
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| StoreError::Open { location: location.to_string(), reason: e.to_string() })?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    if id != 0 {
        return Err(incompatible(format!("application_id is {id:#x}, not a GeoPackage")));
    }
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| StoreError::Open { location: location.to_string(), reason: e.to_string() })?;
    let migrated: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'geoflow_migrations'", [], |r| r.get(0))
        .ctx("reading the schema")?;
    if objects > 0 && migrated == 0 {
        return Err(incompatible("an SQLite database that is not a GeoPackage".into()));
    }
    Ok(())
}
