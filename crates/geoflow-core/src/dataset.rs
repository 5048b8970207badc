//! Dataset names: untrusted input that ends up naming tables.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A dataset name matching `^[a-z][a-z0-9_]{0,62}$`, other than the names the stores keep for
/// themselves (see [`RESERVED_PREFIXES`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetName(String);

/// Table names the stores use themselves, or that SQLite, GeoPackage and PostgreSQL keep for
/// their own tables and indexes: a dataset's table must never collide with one of them.
pub const RESERVED_PREFIXES: [&str; 5] = ["geoflow_", "gpkg_", "sqlite_", "rtree_", "pg_"];
/// The suffix of an index name the GeoPackage store gives each table (indexes share the table
/// namespace in SQLite).
pub const RESERVED_SUFFIX: &str = "_gf_source";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidDatasetName {
    #[error("invalid dataset name {0:?}: use 1 to 63 characters a-z, 0-9 and _, starting with a letter")]
    Malformed(String),
    #[error("dataset name {0:?} is reserved: names may not start with geoflow_, gpkg_, sqlite_, rtree_ or pg_, nor end with _gf_source")]
    Reserved(String),
}

impl DatasetName {
    pub fn new(name: &str) -> Result<DatasetName, InvalidDatasetName> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if !ok {
            return Err(InvalidDatasetName::Malformed(name.to_string()));
        }
        if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || name.ends_with(RESERVED_SUFFIX) {
            return Err(InvalidDatasetName::Reserved(name.to_string()));
        }
        Ok(DatasetName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = InvalidDatasetName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DatasetName::new(&s)
    }
}

impl From<DatasetName> for String {
    fn from(d: DatasetName) -> String {
        d.0
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for DatasetName {
    type Err = InvalidDatasetName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetName::new(s)
    }
}

/// How a new object changes its dataset (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DatasetMode {
    /// The dataset is its newest object: each new object replaces the whole content.
    #[default]
    Replace,
    /// Each object is a source of the dataset: an object replaces its own rows only, and its
    /// removal removes them.
    Append,
}

impl DatasetMode {
    pub const ALL: [DatasetMode; 2] = [DatasetMode::Replace, DatasetMode::Append];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetMode::Replace => "replace",
            DatasetMode::Append => "append",
        }
    }
}

impl fmt::Display for DatasetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DatasetMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown dataset mode {s:?}: use replace or append"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(DatasetName::new("roads").is_ok());
        assert!(DatasetName::new("a1_b").is_ok());
        assert!(DatasetName::new(&"a".repeat(63)).is_ok());
        for bad in ["", "1a", "Roads", "a-b", "a b", "_a", &"a".repeat(64), "a;drop"] {
            assert!(matches!(DatasetName::new(bad), Err(InvalidDatasetName::Malformed(_))), "{bad}");
        }
        for reserved in
            ["geoflow_jobs", "gpkg_contents", "sqlite_master", "rtree_x_geom", "pg_class", "roads_gf_source"]
        {
            let err = DatasetName::new(reserved).unwrap_err();
            assert!(matches!(err, InvalidDatasetName::Reserved(_)), "{reserved}");
            assert!(err.to_string().contains("reserved"), "{err}");
        }
        assert!(DatasetName::new("geoflow").is_ok() && DatasetName::new("roads_gf").is_ok());
    }
}
