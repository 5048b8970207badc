//! Server version checks and versioned, idempotent catalog migrations, each run under a
//! transaction-scoped advisory lock so that concurrent migrators apply every step once.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::{Ctx, PostgisStore};
use crate::StoreError;

/// Oldest PostgreSQL supported (`server_version_num`).
pub const MIN_POSTGRES: i32 = 130000;
/// Oldest PostGIS supported (major, minor).
pub const MIN_POSTGIS: (u32, u32) = (3, 1);

/// Advisory lock key of migrations ("geoflow" in ASCII).
const MIGRATION_LOCK: i64 = 0x67_656f_666c_6f77;

/// Applied in order, each once; a step is never edited after release (databases created by
/// it exist), later changes are new steps.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("sql/catalog.sql")),
    (2, include_str!("sql/jobs.sql")),
    (3, include_str!("sql/reports.sql")),
    (4, include_str!("sql/source_rows.sql")),
    (5, include_str!("sql/superseded.sql")),
    (6, include_str!("sql/overflow.sql")),
    (7, include_str!("sql/modes.sql")),
    (8, include_str!("sql/schema_changes.sql")),
    (9, include_str!("sql/upsert.sql")),
    (10, include_str!("sql/temporal.sql")),
];

/// The step a catalog of this build is at once migrated.
pub(crate) const LATEST_STEP: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Checks a server's versions: `server_version_num` and the PostGIS version text (`None`
/// when PostGIS is not available). The error names what was found and what is required.
pub fn check_versions(server_version_num: i32, postgis: Option<&str>) -> Result<(), String> {
    check_postgres(server_version_num)?;
    let required = format!("{}.{}", MIN_POSTGIS.0, MIN_POSTGIS.1);
    let Some(postgis) = postgis else {
        return Err(format!(
            "PostGIS is not installed (PostgreSQL {}): geoflow requires PostGIS {required} or later",
            version_text(server_version_num)
        ));
    };
    let mut parts = postgis.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if (major, minor) < MIN_POSTGIS {
        return Err(format!("PostGIS {postgis} is too old: geoflow requires PostGIS {required} or later"));
    }
    Ok(())
}

fn check_postgres(server_version_num: i32) -> Result<(), String> {
    if server_version_num < MIN_POSTGRES {
        return Err(format!(
            "PostgreSQL {} is too old: geoflow requires PostgreSQL {} or later",
            version_text(server_version_num),
            MIN_POSTGRES / 10000
        ));
    }
    Ok(())
}

fn version_text(num: i32) -> String {
    if num >= 100000 {
        format!("{}.{}", num / 10000, num % 10000)
    } else {
        format!("{}.{}.{}", num / 10000, (num / 100) % 100, num % 100)
    }
}

pub async fn run(store: &PostgisStore) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let incompatible = |reason: String| StoreError::Incompatible { location: store.location.clone(), reason };

    let server: i32 = client
        .query_one("SELECT current_setting('server_version_num')::integer", &[])
        .await
        .ctx(store, "reading the server version")?
        .get(0);
    // Checked before anything else runs: older servers lack what the migrations use.
    check_postgres(server).map_err(incompatible)?;

    let tx = client.transaction().await.ctx(store, "starting the migration")?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.ctx(store, "locking the migrations")?;
    let installed: Option<String> = tx
        .query_opt("SELECT extversion FROM pg_extension WHERE extname = 'postgis'", &[])
        .await
        .ctx(store, "reading the PostGIS version")?
        .map(|r| r.get(0));
    let installed = match installed {
        Some(v) => Some(v),
        None => {
            let available: Option<String> = tx
                .query_opt("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'", &[])
                .await
                .ctx(store, "reading the PostGIS version")?
                .and_then(|r| r.get(0));
            if available.is_some() {
                tx.batch_execute("CREATE EXTENSION IF NOT EXISTS postgis").await.ctx(store, "creating PostGIS")?;
            }
            available
        }
    };
    check_versions(server, installed.as_deref()).map_err(incompatible)?;

    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS geoflow;
         CREATE TABLE IF NOT EXISTS geoflow.migrations (
           version integer PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await
    .ctx(store, "creating the migrations table")?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM geoflow.migrations ORDER BY version", &[])
        .await
        .ctx(store, "reading applied migrations")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let latest = LATEST_STEP;
    if let Some(&newest) = applied.iter().max().filter(|&&v| v > latest) {
        return Err(incompatible(format!(
            "the catalog is at version {newest}, newer than this geoflow knows ({latest})"
        )));
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.ctx(store, &format!("applying migration {version}"))?;
        tx.execute("INSERT INTO geoflow.migrations (version) VALUES ($1)", &[version])
            .await
            .ctx(store, "recording a migration")?;
        tracing::info!(version, location = %store.location, "applied catalog migration");
    }
    tx.commit().await.ctx(store, "committing the migration")?;
    Ok(())
}

/// The last migration step applied to the catalog (0: none, not even the table that records
/// them), in one round trip: the simple query protocol needs no separate prepare.
pub(crate) async fn applied_step(store: &PostgisStore, client: &Client) -> Result<i64, StoreError> {
    let messages = match client.simple_query("SELECT coalesce(max(version), 0) FROM geoflow.migrations").await {
        Ok(messages) => messages,
        Err(e) if e.code().is_some_and(|c| *c == SqlState::UNDEFINED_TABLE || *c == SqlState::INVALID_SCHEMA_NAME) => {
            return Ok(0);
        }
        Err(e) => return Err(store.db_error("reading applied migrations", &e)),
    };
    let value = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    value.and_then(|v| v.parse().ok()).ok_or_else(|| StoreError::Incompatible {
        location: store.location.clone(),
        reason: format!("unreadable migration record {value:?} in geoflow.migrations"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert!(check_versions(150004, Some("3.3.2")).is_ok());
        assert!(check_versions(130000, Some("3.1.0")).is_ok());
        let e = check_versions(120011, Some("3.3.2")).unwrap_err();
        assert!(e.contains("PostgreSQL 12.11") && e.contains("13"), "{e}");
        let e = check_versions(150004, Some("3.0.5")).unwrap_err();
        assert!(e.contains("PostGIS 3.0.5") && e.contains("3.1"), "{e}");
        let e = check_versions(90624, None).unwrap_err();
        assert!(e.contains("9.6.24"), "{e}");
        let e = check_versions(150004, None).unwrap_err();
        assert!(e.contains("not installed") && e.contains("3.1"), "{e}");
    }
}
