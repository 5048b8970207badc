//! Where things live: resolved from flags and `GEOFLOW_*` environment variables.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue, SqsQueue};
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::{FeatureReads, Store};

use crate::api::crs::{self, CrsList};

/// The embedded default: a GeoPackage under `./geoflow-data`.
pub const DEFAULT_DATABASE: &str = "./geoflow-data/geoflow.gpkg";

/// The embedded default queue: an SQLite file of its own beside the GeoPackage.
pub const DEFAULT_QUEUE: &str = "./geoflow-data/queue.sqlite";

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
            return Ok(DatabaseUrl::Postgres(with_credentials(
                url,
                std::env::var("GEOFLOW_DATABASE_USER").ok(),
                std::env::var("GEOFLOW_DATABASE_PASSWORD").ok(),
            )));
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

/// Puts a user and password into a `postgres://` URL that has none. Secrets managers hand the
/// credentials over separately (RDS keeps them as a JSON secret that ECS injects key by key),
/// and they may hold any character, so they are percent-encoded.
fn with_credentials(url: &str, user: Option<String>, password: Option<String>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if rest[..authority_end].contains('@') || (user.is_none() && password.is_none()) {
        return url.to_string();
    }
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let mut credentials = user.as_deref().map(encode).unwrap_or_default();
    if let Some(p) = &password {
        credentials.push(':');
        credentials.push_str(&encode(p));
    }
    format!("{scheme}://{credentials}@{rest}")
}

/// The EPSG codes of `GEOFLOW_EXTRA_CRS` (`2056`, `EPSG:2056` or the URI), each one PROJ can
/// serve features in: anything else stops the start.
pub fn extra_crs(values: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut codes = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        let code = crs::parse_epsg(value)
            .with_context(|| format!("GEOFLOW_EXTRA_CRS: {value:?} is not an EPSG code (such as 2056 or EPSG:2056)"))?;
        codes.push(code);
    }
    crs::check_servable(&codes).context("GEOFLOW_EXTRA_CRS")?;
    Ok(codes)
}

/// Fails when the store cannot transform geometries to every served CRS (a PostGIS database
/// whose `spatial_ref_sys` lacks one).
pub async fn check_store_serves(store: &dyn FeatureReads, served: &CrsList) -> anyhow::Result<()> {
    let missing = store.missing_crs(&served.epsg_codes()).await.context("checking the served CRSs")?;
    if !missing.is_empty() {
        let codes: Vec<String> = missing.iter().map(|c| format!("EPSG:{c}")).collect();
        bail!(
            "the database's spatial_ref_sys has no entry for {}: add them (PostGIS's spatial_ref_sys.sql) or leave \
             them out of GEOFLOW_EXTRA_CRS",
            codes.join(", ")
        );
    }
    Ok(())
}

/// A parsed `GEOFLOW_QUEUE_URL`: an SQS queue URL, or the path of an embedded queue file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueUrl {
    Sqs(String),
    Embedded(PathBuf),
}

impl QueueUrl {
    pub fn parse(url: &str) -> anyhow::Result<QueueUrl> {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(QueueUrl::Sqs(url.to_string()));
        }
        if url.contains("://") && !url.starts_with("file://") {
            bail!("unsupported queue URL {url:?}: expected an SQS queue URL (https://sqs.…) or a file path");
        }
        Ok(QueueUrl::Embedded(PathBuf::from(url.strip_prefix("file://").unwrap_or(url))))
    }

    /// Opens the queue. `visibility` is the embedded queue's visibility timeout and
    /// `max_receive_count` its dead-letter threshold (an SQS queue has both in its own
    /// configuration: attributes and redrive policy).
    pub async fn open(
        &self,
        visibility: std::time::Duration,
        max_receive_count: u32,
    ) -> anyhow::Result<Arc<dyn Queue>> {
        match self {
            QueueUrl::Sqs(url) => Ok(Arc::new(SqsQueue::from_env(url.clone()).await)),
            QueueUrl::Embedded(path) => {
                let options = EmbeddedOptions {
                    visibility_timeout: visibility,
                    max_receive_count: Some(max_receive_count),
                    ..EmbeddedOptions::default()
                };
                let queue = EmbeddedQueue::open(path.clone(), options)
                    .await
                    .with_context(|| format!("opening the queue {}", path.display()))?;
                Ok(Arc::new(queue))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_added_to_urls_without_them() {
        let (u, p) = (Some("geoflow".to_string()), Some("p@ss/w:rd".to_string()));
        assert_eq!(
            with_credentials("postgres://db.example:5432/geoflow?sslmode=require", u.clone(), p.clone()),
            "postgres://geoflow:p%40ss%2Fw%3Ard@db.example:5432/geoflow?sslmode=require"
        );
        assert_eq!(with_credentials("postgres://a:b@h/db", u, p), "postgres://a:b@h/db");
        assert_eq!(with_credentials("postgres://h/db", None, None), "postgres://h/db");
    }

    #[test]
    fn queue_urls() {
        let sqs = "https://sqs.eu-central-1.amazonaws.com/123456789012/geoflow-ingest";
        assert_eq!(QueueUrl::parse(sqs).unwrap(), QueueUrl::Sqs(sqs.into()));
        assert_eq!(QueueUrl::parse("./q.sqlite").unwrap(), QueueUrl::Embedded("./q.sqlite".into()));
        assert!(QueueUrl::parse("amqp://x").is_err());
    }

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
