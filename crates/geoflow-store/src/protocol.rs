//! The load protocol's decisions, made once for every store.
//!
//! A dataset must hold what storage holds *now*. Loads and removals of one dataset take turns
//! under the dataset's lock, and each one, under that lock and just before it commits, asks
//! storage what its object is now ([`ObjectProbe`]). It commits only if that is still the
//! version it read (a load) or still nothing (a removal); otherwise it ends
//! [`Verdict::Superseded`] and changes nothing. Whatever order events arrive in, the job of
//! the last change to a key reads storage after that change, and no other change to the key
//! can commit after it without reading the same state: so the dataset ends equal to storage.
//!
//! Backends provide the I/O (the lock, the transaction, the rows); the decisions live here.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{LoadPlan, StoreError};

/// What storage holds under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// An object, with its version id (or, in storage without versions, its ETag).
    Present {
        version: Option<String>,
    },
    Absent,
}

/// Reads the current state of the object a load or removal comes from. Stores call it under
/// the dataset's lock, just before they commit.
#[async_trait]
pub trait ObjectProbe: Send + Sync + fmt::Debug {
    async fn state(&self) -> Result<ObjectState, StoreError>;
}

/// A probe shared by a plan and its clones.
pub type Origin = Arc<dyn ObjectProbe>;

/// What a load or removal may do once it knows what storage holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Storage still holds what this change reflects: commit.
    Current,
    /// Storage has moved on: change nothing. The reason says to what.
    Superseded(String),
}

/// A load of `plan` may commit only while storage holds the version it read.
pub fn judge_load(plan: &LoadPlan, now: &ObjectState) -> Verdict {
    let read = plan.version.object_version.as_deref();
    match now {
        ObjectState::Present { version } if version.as_deref() == read => Verdict::Current,
        ObjectState::Present { version } => Verdict::Superseded(format!(
            "the object was overwritten while it loaded (loaded version {}, now {})",
            read.unwrap_or("unknown"),
            version.as_deref().unwrap_or("unknown")
        )),
        ObjectState::Absent => Verdict::Superseded("the object was deleted while it loaded".into()),
    }
}

/// A removal may commit only while the object is still gone.
pub fn judge_removal(now: &ObjectState) -> Verdict {
    match now {
        ObjectState::Absent => Verdict::Current,
        ObjectState::Present { .. } => {
            Verdict::Superseded("the object exists again: its creation event loads it".into())
        }
    }
}

/// Asks `origin` (if the change has one: direct loads of a file have none) for its verdict.
pub async fn check(
    origin: Option<&Origin>,
    judge: impl FnOnce(&ObjectState) -> Verdict,
) -> Result<Verdict, StoreError> {
    match origin {
        None => Ok(Verdict::Current),
        Some(probe) => Ok(judge(&probe.state().await?)),
    }
}

/// [`check`] from a blocking thread of the runtime (the GeoPackage store's loads run there).
pub fn check_blocking(
    origin: Option<&Origin>,
    judge: impl FnOnce(&ObjectState) -> Verdict,
) -> Result<Verdict, StoreError> {
    match origin {
        None => Ok(Verdict::Current),
        Some(probe) => {
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|e| StoreError::Internal(format!("probing the object outside a runtime: {e}")))?;
            Ok(judge(&handle.block_on(probe.state())?))
        }
    }
}

/// Why a load ended without its rows, as the catalog records it.
pub const INTERRUPTED: &str = "interrupted before commit";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceVersion;
    use geoflow_core::dataset::DatasetName;
    use geoflow_core::report::Policy;
    use geoflow_core::schema::Schema;

    fn plan(version: Option<&str>) -> LoadPlan {
        LoadPlan {
            dataset: DatasetName::new("roads").unwrap(),
            source: "raw/roads/a.geojson".into(),
            version: SourceVersion { content_hash: "h".into(), bytes: 1, object_version: version.map(String::from) },
            schema: Schema::default(),
            policy: Policy::Skip,
            origin: None,
        }
    }

    fn present(v: &str) -> ObjectState {
        ObjectState::Present { version: Some(v.into()) }
    }

    #[test]
    fn a_load_commits_only_the_version_storage_holds() {
        assert_eq!(judge_load(&plan(Some("v1")), &present("v1")), Verdict::Current);
        assert!(matches!(judge_load(&plan(Some("v1")), &present("v2")), Verdict::Superseded(r) if r.contains("v2")));
        assert!(
            matches!(judge_load(&plan(Some("v1")), &ObjectState::Absent), Verdict::Superseded(r) if r.contains("deleted"))
        );
    }

    #[test]
    fn a_removal_commits_only_while_the_object_is_gone() {
        assert_eq!(judge_removal(&ObjectState::Absent), Verdict::Current);
        assert!(matches!(judge_removal(&present("v3")), Verdict::Superseded(_)));
    }
}
