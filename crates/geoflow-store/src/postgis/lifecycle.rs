//! Dropping a dataset: its table and its catalog entries, in one transaction under the
//! dataset's lock.

use geoflow_core::dataset::DatasetName;

use super::load::lock_dataset;
use super::table::qualified;
use super::{Ctx, PostgisStore};
use crate::{DatasetDrop, StoreError};

/// See [`crate::Loads::drop_dataset`].
pub async fn drop_dataset(store: &PostgisStore, dataset: &DatasetName) -> Result<Option<DatasetDrop>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await.ctx(store, "starting the transaction")?;
    lock_dataset(store, &*tx, dataset.as_str()).await?;
    let table: Option<String> = tx
        .query_opt("SELECT table_name FROM geoflow.datasets WHERE name = $1", &[&dataset.as_str()])
        .await
        .ctx(store, "reading the dataset catalog")?
        .map(|r| r.get(0));
    let Some(table) = table else {
        // Dropping the transaction rolls it back.
        return Ok(None);
    };
    // Every source leaves the dataset as a removal of it would: the row catalog::record_removal
    // writes, one per source.
    let removed = tx
        .query(
            "WITH gone AS (DELETE FROM geoflow.sources WHERE dataset = $1 RETURNING source_key, feature_count)
             INSERT INTO geoflow.removals (dataset, source_key, removed_rows, removed_at)
             SELECT $1, source_key, feature_count, $2 FROM gone
             RETURNING removed_rows",
            &[&dataset.as_str(), &store.now()],
        )
        .await
        .ctx(store, "recording the removal of the dataset's sources")?;
    let rows = removed.iter().map(|r| r.get::<_, i64>(0).max(0) as u64).sum();
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", qualified(&table)))
        .await
        .ctx(store, "dropping the dataset table")?;
    // Its columns go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM geoflow.datasets WHERE name = $1", &[&dataset.as_str()])
        .await
        .ctx(store, "removing the dataset from the catalog")?;
    tx.commit().await.ctx(store, "committing")?;
    Ok(Some(DatasetDrop { sources: removed.len() as u64, rows }))
}
