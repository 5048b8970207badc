//! Reading features back, for the OGC API – Features: a dataset's rows as GeoJSON, filtered
//! and paged by key so that a page deep in a large table costs what the first one does.

use futures_util::stream::BoxStream;
use geoflow_core::row::Bbox;
use geoflow_core::served_crs::ServedCrs;
use time::OffsetDateTime;

use crate::StoreError;

/// Which features of a dataset to read. They come in `fid` order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureQuery {
    /// Only features whose geometry intersects this box (WGS84 degrees; `min_x > max_x`
    /// crosses the antimeridian). The same set as PostGIS's
    /// `ST_Intersects(geom, ST_MakeEnvelope(…, 4326))`.
    pub bbox: Option<Bbox>,
    /// Only features loaded within this closed interval (the lineage timestamp
    /// `gf_loaded_at`); an open end is `None`.
    pub loaded: Option<(Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    /// Only features whose property `key` (the original key) has exactly this value, compared
    /// as text: a string by its characters, a number or boolean by its JSON text, nested
    /// JSON by its compact text. [`StoreError::Invalid`] for a key the dataset does not have.
    pub properties: Vec<(String, String)>,
    /// Only features whose `fid` is greater (the cursor of the next page).
    pub after: Option<i64>,
    /// Only features whose `fid` is smaller, and of those the *last* `limit` (still in `fid`
    /// order): the page before the one that starts at this `fid`.
    pub before: Option<i64>,
    /// At most this many features.
    pub limit: usize,
    /// Only these properties in each feature (by original key, in the dataset's column
    /// order); `None` for all of them. Filters may still name any property.
    pub fields: Option<Vec<String>>,
    /// Leave every feature's geometry out (`"geometry": null`).
    pub skip_geometry: bool,
    /// The CRS of the geometries written; `None` for WGS84 longitude/latitude as stored.
    /// Filters are in WGS84 whatever this is.
    pub crs: Option<ServedCrs>,
}

impl FeatureQuery {
    /// Whether a feature shows the property `key`.
    pub fn shows(&self, key: &str) -> bool {
        self.fields.as_ref().is_none_or(|fields| fields.iter().any(|f| f == key))
    }
}

/// One stored feature.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFeature {
    /// The row key: unique in its dataset and stable while its source is not reloaded.
    pub fid: i64,
    /// The feature as one GeoJSON Feature object: `"id"` is the `fid`, `"geometry"` the
    /// stored geometry (null when it has none), `"properties"` every column of the dataset
    /// under its original key, in column order, with its original value (integers beyond
    /// 2^53, nested objects and text all as they were loaded) or `null`: every feature names
    /// every property, so that clients that take a layer's fields from its first features
    /// (GDAL, QGIS) see them all.
    pub json: String,
}

/// Features as a store reads them: a page is never held in memory whole.
pub type FeatureStream = BoxStream<'static, Result<StoredFeature, StoreError>>;

/// A page read backwards (`fid` descending, for [`FeatureQuery::before`]) put back in `fid`
/// order. Such a page is held whole: it has at most `limit` features.
pub(crate) async fn in_fid_order(stream: FeatureStream) -> Result<FeatureStream, StoreError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut page: Vec<StoredFeature> = stream.try_collect().await?;
    page.reverse();
    Ok(futures_util::stream::iter(page.into_iter().map(Ok)).boxed())
}
