//! Where things live: resolved from flags and `GEOFLOW_*` environment variables.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::Store;

/// The embedded default: a GeoPackage under `./geoflow-data`.
pub const DEFAULT_DATABASE: &str = "./geoflow-data/geoflow.gpkg";

/// A parsed `GEOFLOW_DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    GeoPackage(PathBuf),
    /// A `postgres://` or `postgresql://` connection string (it may hold a password).
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::GeoPackage(p) => f.debug_tuple("GeoPackage").field(p).finish(),
            DatabaseUrl::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> anyhow::Result<DatabaseUrl> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_string()));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if !lower.ends_with(".gpkg") {
            bail!("unsupported database {url:?}: expected postgres://… or a path to a GeoPackage file ending in .gpkg");
        }
        Ok(DatabaseUrl::GeoPackage(PathBuf::from(path)))
    }

    /// Opens (creating and migrating if needed) the store.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        match self {
            DatabaseUrl::GeoPackage(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || GeoPackageStore::open(&path))
                    .await?
                    .context("opening the GeoPackage store")?;
                Ok(Arc::new(store))
            }
            DatabaseUrl::Postgres(url) => {
                Ok(Arc::new(PostgisStore::connect(url).await.context("connecting to PostGIS")?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(DatabaseUrl::parse("x/y.gpkg").unwrap(), DatabaseUrl::GeoPackage("x/y.gpkg".into()));
        assert_eq!(DatabaseUrl::parse("file:///a/b.GPKG").unwrap(), DatabaseUrl::GeoPackage("/a/b.GPKG".into()));
        assert!(DatabaseUrl::parse("x.sqlite").is_err());
        let pg = DatabaseUrl::parse("postgres://u:secret@h/db").unwrap();
        assert_eq!(pg, DatabaseUrl::Postgres("postgres://u:secret@h/db".into()));
        assert!(!format!("{pg:?}").contains("secret"));
    }
}
