//! Dropping a dataset, and with it (when asked) its objects in storage: one sequence for the
//! API (`DELETE /v1/datasets/{dataset}`) and the CLI (`geoflow datasets drop`).
//!
//! The table and catalog go first, under the dataset's lock; the objects after. Deleting the
//! objects first would let their removal events race the drop. In this order the removal
//! events of the deleted objects (S3 notifications; a local folder sends none) find nothing to
//! remove and end as skipped duplicates. A load that waited for the lock while the drop ran
//! creates the dataset anew from its object; if that object is one of those deleted, its rows
//! are removed here, as its removal event would.

use std::collections::HashSet;
use std::sync::Arc;

use geoflow_core::dataset::DatasetName;
use geoflow_store::protocol::Origin;
use geoflow_store::{
    Catalog, DatasetDrop, ErrorClass, JobAction, JobStatus, JobUpdate, Jobs, Loads, RemovalCause, StoreError,
};

use crate::storage::{Storage, StoredObject};

/// What a drop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// What the store dropped; `None` when it had no such dataset.
    pub dataset: Option<DatasetDrop>,
    /// Objects deleted from storage, when that was asked for.
    pub objects: Option<usize>,
}

impl Dropped {
    /// Whether there was anything to drop.
    pub fn found(&self) -> bool {
        self.dataset.is_some() || self.objects.is_some_and(|n| n > 0)
    }
}

/// Why a drop stopped. The store's part is done (or not) as one transaction; objects deleted
/// before a storage error stay deleted, and asking again finishes the job.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("deleting the dataset's objects: {0}")]
    Storage(#[from] object_store::Error),
}

/// The folder of a dataset's objects under the storage's prefix.
pub fn objects_folder(dataset: &DatasetName) -> String {
    format!("raw/{dataset}")
}

/// The key a drop's job names as its source: every source of the dataset.
pub const EVERY_SOURCE: &str = "*";

/// Drops `dataset` as [`drop_dataset`] does, recorded as a job (action `drop`) when there was
/// anything to drop, or when the drop failed: listed with the loads and removals.
pub async fn drop_dataset_as_job(
    store: (&dyn Catalog, &dyn Loads, &dyn Jobs),
    storage: Option<&Storage>,
    dataset: &DatasetName,
) -> Result<Dropped, DropError> {
    let (catalog, loads, jobs) = store;
    let dropped = drop_dataset(catalog, loads, storage, dataset).await;
    let end = match &dropped {
        Ok(d) if !d.found() => return dropped,
        Ok(d) => JobUpdate {
            status: Some(JobStatus::Succeeded),
            result: Some(serde_json::json!({
                "sources": d.dataset.map_or(0, |d| d.sources),
                "removed_rows": d.dataset.map_or(0, |d| d.rows),
                "deleted_objects": d.objects,
            })),
            ..JobUpdate::default()
        },
        Err(e) => {
            JobUpdate { status: Some(JobStatus::Failed), error: Some(Some(e.to_string())), ..JobUpdate::default() }
        }
    };
    let new = crate::jobs::requested(dataset, EVERY_SOURCE, JobAction::Drop);
    let recorded = async {
        jobs.upsert_job(&new).await?;
        jobs.update_job(&new.id, end).await
    };
    if let Err(e) = recorded.await {
        // The drop is done (or failed) either way: only its record is missing.
        tracing::warn!(%dataset, error = %e, "could not record the dataset's drop as a job");
    }
    dropped
}

/// Drops `dataset` from the store and, with `storage`, deletes its objects (every key under
/// `raw/<dataset>/`) afterwards.
pub async fn drop_dataset(
    catalog: &dyn Catalog,
    loads: &dyn Loads,
    storage: Option<&Storage>,
    dataset: &DatasetName,
) -> Result<Dropped, DropError> {
    let dropped = loads.drop_dataset(dataset).await?;
    let Some(storage) = storage else { return Ok(Dropped { dataset: dropped, objects: None }) };
    let deleted = storage.delete_under(&objects_folder(dataset)).await?;
    remove_loaded_again(catalog, loads, storage, dataset, &deleted).await?;
    Ok(Dropped { dataset: dropped, objects: Some(deleted.len()) })
}

/// Removes the sources of `deleted` objects that a load brought back between the drop and
/// their deletion. Each removal asks storage that its object is still gone.
async fn remove_loaded_again(
    catalog: &dyn Catalog,
    loads: &dyn Loads,
    storage: &Storage,
    dataset: &DatasetName,
    deleted: &[String],
) -> Result<(), StoreError> {
    if deleted.is_empty() {
        return Ok(());
    }
    let deleted: HashSet<&str> = deleted.iter().map(String::as_str).collect();
    for source in catalog.sources(dataset).await?.into_iter().filter(|s| deleted.contains(s.source.as_str())) {
        let origin: Origin = Arc::new(StoredObject::new(storage.clone(), source.source.clone()));
        match loads.remove_source(dataset, &source.source, Some(&origin), RemovalCause::Request).await {
            Ok(_) => {}
            // Written again meanwhile: its own event loads it.
            Err(e) if e.class() == ErrorClass::Superseded => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
