//! Dropping a dataset: its feature table with its R-tree, its GeoPackage registrations and
//! its catalog entries, in one transaction under the write lock (the dataset's lock).

use std::path::Path;

use rusqlite::{params, TransactionBehavior};

use geoflow_core::dataset::DatasetName;

use super::rtree::rtree_name;
use super::table::{quote, read_layout};
use super::{catalog, open_connection, Ctx};
use crate::{Clock, DatasetDrop, StoreError};

/// See [`crate::Loads::drop_dataset`]. Blocks: runs on a blocking thread.
pub fn drop_dataset(path: &Path, clock: &dyn Clock, dataset: &DatasetName) -> Result<Option<DatasetDrop>, StoreError> {
    let mut conn = open_connection(path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting the transaction")?;
    let Some(layout) = read_layout(&tx, dataset.as_str())? else {
        return Ok(None);
    };
    let sources: Vec<(String, i64)> = tx
        .prepare("SELECT source_key, feature_count FROM geoflow_sources WHERE dataset = ?1 ORDER BY source_key")
        .and_then(|mut s| s.query_map([dataset.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .ctx("listing the sources of a dataset")?;
    // Every source leaves the dataset as a removal of it would.
    let at = clock.now();
    let mut rows = 0u64;
    for (source, n) in &sources {
        let n = (*n).max(0) as u64;
        catalog::record_removal(&tx, dataset, source, n, at, &[])?;
        rows += n;
    }
    let table = &layout.table;
    // The table's triggers and indexes go with it; then its R-tree.
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
        quote(table),
        quote(&rtree_name(table))
    ))
    .ctx("dropping the feature table")?;
    for sql in [
        "DELETE FROM gpkg_extensions WHERE table_name = ?1",
        "DELETE FROM gpkg_data_columns WHERE table_name = ?1",
        "DELETE FROM gpkg_geometry_columns WHERE table_name = ?1",
        "DELETE FROM gpkg_contents WHERE table_name = ?1",
    ] {
        tx.execute(sql, params![table]).ctx("removing the table's GeoPackage registrations")?;
    }
    for sql in [
        "DELETE FROM geoflow_sources WHERE dataset = ?1",
        "DELETE FROM geoflow_columns WHERE dataset = ?1",
        "DELETE FROM geoflow_datasets WHERE name = ?1",
    ] {
        tx.execute(sql, params![dataset.as_str()]).ctx("removing the dataset from the catalog")?;
    }
    tx.commit().ctx("committing")?;
    Ok(Some(DatasetDrop { sources: sources.len() as u64, rows }))
}
