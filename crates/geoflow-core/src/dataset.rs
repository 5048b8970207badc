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
/// The suffixes of the index names the stores give a table (indexes share the table
/// namespace in SQLite and in a PostgreSQL schema).
pub const RESERVED_SUFFIXES: [&str; 2] = ["_gf_source", "_gf_key"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidDatasetName {
    #[error("invalid dataset name {0:?}: use 1 to 63 characters a-z, 0-9 and _, starting with a letter")]
    Malformed(String),
    #[error("dataset name {0:?} is reserved: names may not start with geoflow_, gpkg_, sqlite_, rtree_ or pg_, nor end with _gf_source or _gf_key")]
    Reserved(String),
}

impl DatasetName {
    /// The longest name, in bytes (PostgreSQL's identifier limit).
    pub const MAX_LEN: usize = 63;

    pub fn new(name: &str) -> Result<DatasetName, InvalidDatasetName> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= Self::MAX_LEN
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if !ok {
            return Err(InvalidDatasetName::Malformed(name.to_string()));
        }
        if RESERVED_PREFIXES.iter().any(|p| name.starts_with(p)) || RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
        {
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
    /// Features are keyed ([`FeatureKey`]): an object inserts the features of new keys and
    /// replaces those of keys the dataset holds, the newest object winning each key. Deleting
    /// an object changes no feature.
    Upsert,
}

impl DatasetMode {
    pub const ALL: [DatasetMode; 3] = [DatasetMode::Replace, DatasetMode::Append, DatasetMode::Upsert];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetMode::Replace => "replace",
            DatasetMode::Append => "append",
            DatasetMode::Upsert => "upsert",
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
            .ok_or_else(|| format!("unknown dataset mode {s:?}: use replace, append or upsert"))
    }
}

/// What identifies a feature across the objects of a dataset in [`DatasetMode::Upsert`]
/// (`--key`): the GeoJSON Feature `id`, or the value of a named property.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum FeatureKey {
    #[default]
    FeatureId,
    Property(String),
}

impl FeatureKey {
    /// The key a `--key` value names: a property, or with no value the Feature `id`.
    pub fn from_property(property: Option<String>) -> FeatureKey {
        property.map_or(FeatureKey::FeatureId, FeatureKey::Property)
    }

    /// The property named, `None` for the Feature `id`: as the catalog and the API keep it.
    pub fn property(&self) -> Option<&str> {
        match self {
            FeatureKey::FeatureId => None,
            FeatureKey::Property(name) => Some(name),
        }
    }

    /// As settings compare it: `id`, or `property:<name>`.
    pub fn setting(&self) -> String {
        match self {
            FeatureKey::FeatureId => "id".into(),
            FeatureKey::Property(name) => format!("property:{name}"),
        }
    }
}

impl fmt::Display for FeatureKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureKey::FeatureId => f.write_str("the Feature id"),
            FeatureKey::Property(name) => write!(f, "property {name:?}"),
        }
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
        for reserved in [
            "geoflow_jobs",
            "gpkg_contents",
            "sqlite_master",
            "rtree_x_geom",
            "pg_class",
            "roads_gf_source",
            "roads_gf_key",
        ] {
            let err = DatasetName::new(reserved).unwrap_err();
            assert!(matches!(err, InvalidDatasetName::Reserved(_)), "{reserved}");
            assert!(err.to_string().contains("reserved"), "{err}");
        }
        assert!(DatasetName::new("geoflow").is_ok() && DatasetName::new("roads_gf").is_ok());
    }
}
