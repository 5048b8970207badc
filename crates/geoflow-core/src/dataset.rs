//! Dataset names: untrusted input that ends up naming tables.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A dataset name matching `^[a-z][a-z0-9_]{0,62}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetName(String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid dataset name {0:?}: use 1 to 63 characters a-z, 0-9 and _, starting with a letter")]
pub struct InvalidDatasetName(pub String);

impl DatasetName {
    pub fn new(name: &str) -> Result<DatasetName, InvalidDatasetName> {
        let b = name.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_');
        if ok {
            Ok(DatasetName(name.to_string()))
        } else {
            Err(InvalidDatasetName(name.to_string()))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(DatasetName::new("roads").is_ok());
        assert!(DatasetName::new("a1_b").is_ok());
        assert!(DatasetName::new(&"a".repeat(63)).is_ok());
        for bad in ["", "1a", "Roads", "a-b", "a b", "_a", &"a".repeat(64), "a;drop"] {
            assert!(DatasetName::new(bad).is_err(), "{bad}");
        }
    }
}
