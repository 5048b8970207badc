//! Reading features back, for the OGC API – Features: a dataset's rows as GeoJSON, filtered
//! and paged by key so that a page deep in a large table costs what the first one does.

use futures_util::stream::BoxStream;
use geoflow_core::row::Bbox;
use geoflow_core::schema::FieldType;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::layout::Column;
use crate::StoreError;

/// Which features of a dataset to read. They come in `fid` order, or in the order of `sort`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureQuery {
    /// Only features whose geometry intersects this box (WGS84 degrees; `min_x > max_x`
    /// crosses the antimeridian). The same set as PostGIS's
    /// `ST_Intersects(geom, ST_MakeEnvelope(…, 4326))`.
    pub bbox: Option<Bbox>,
    /// Only features loaded within this closed interval (the lineage timestamp
    /// `gf_loaded_at`); an open end is `None`.
    pub loaded: Option<(Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    /// Only features whose time (see [`TemporalFilter`]) meets this closed interval.
    pub temporal: Option<TemporalFilter>,
    /// Only features whose property `key` (the original key) has exactly this value, compared
    /// as text: a string by its characters, a number or boolean by its JSON text, nested
    /// JSON by its compact text. [`StoreError::Invalid`] for a key the dataset does not have.
    pub properties: Vec<(String, String)>,
    /// Only features after the one with this `fid` (the cursor of the next page): with `sort`,
    /// after its position in that order, which `position` gives.
    pub after: Option<i64>,
    /// Only features before the one with this `fid`, and of those the *last* `limit` (still
    /// in order): the page before the one that starts at this feature.
    pub before: Option<i64>,
    /// The order of the features, by these properties in turn, ties broken by `fid`
    /// (ascending); empty for `fid` order. See [`SortKey`].
    pub sort: Vec<SortKey>,
    /// With `sort` and a cursor (`after` or `before`): the sort values of the cursor's
    /// feature, one per key, as [`StoredFeature::sort_values`] gave them.
    pub position: Vec<SortValue>,
    /// At most this many features.
    pub limit: usize,
    /// Only these properties in each feature (by original key, in the dataset's column
    /// order); `None` for all of them. Filters may still name any property.
    pub fields: Option<Vec<String>>,
    /// Leave every feature's geometry out (`"geometry": null`).
    pub skip_geometry: bool,
}

/// Features whose declared time meets a closed interval (an open end is `None`). A date
/// property stands for its whole (UTC) day; a feature's `start` alone is its instant or day,
/// with an `end` it is the interval between them, a null end open. A feature with neither
/// is nowhere in time and never matches.
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalFilter {
    pub properties: crate::Temporal,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
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
    /// Its values of the query's sort keys (empty without `sort`): what a cursor after or
    /// before it holds.
    pub sort_values: Vec<SortValue>,
}

/// One key of a sort order. The order is total and the same in every store:
/// - NULL sorts after every value (last ascending, first descending, as PostgreSQL sorts);
/// - text by its Unicode code points (UTF-8 bytes: SQLite's `BINARY`, PostgreSQL's `"C"`
///   collation), not by a locale; dates and date-times by their instant, numbers by value,
///   `false` before `true`;
/// - features equal on every key by `fid`, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The property (its original key). It must be [`sortable`].
    pub key: String,
    pub descending: bool,
}

/// Whether a property of this type can be a sort key: scalar columns only. JSON values
/// (nested, mixed or overflow properties) have no order both stores share.
pub fn sortable(ty: FieldType) -> bool {
    !matches!(ty, FieldType::Json | FieldType::Null)
}

/// A feature's value of one sort key, as a cursor holds it. Dates and date-times are the
/// text features show (`2024-01-02`, `2024-01-02T03:04:05.000Z`).
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Text(String),
}

impl SortValue {
    /// Whether this can be a value of a property of type `ty`: anything else (a tampered or
    /// stale cursor) is refused before it reaches a statement.
    pub fn fits(&self, ty: FieldType) -> bool {
        match (self, ty) {
            (SortValue::Null, _) => true,
            (SortValue::Bool(_), FieldType::Boolean) => true,
            (SortValue::Int(_), FieldType::Integer | FieldType::WideInteger) => true,
            (SortValue::Real(f), FieldType::Real) => f.is_finite(),
            // No stored text holds a NUL (PostgreSQL refuses one).
            (SortValue::Text(s), FieldType::Text) => !s.contains('\0'),
            (SortValue::Text(s), FieldType::Date) => parse_date(s).is_some(),
            (SortValue::Text(s), FieldType::DateTime) => parse_datetime(s).is_some(),
            _ => false,
        }
    }
}

/// A date as features show it.
pub(crate) fn parse_date(s: &str) -> Option<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// A date-time as features show it (RFC 3339).
pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// One key of a query's order, resolved against the dataset's columns.
#[derive(Debug)]
pub(crate) struct SortColumn<'a> {
    pub column: &'a Column,
    pub descending: bool,
    /// The cursor's value of this key, when the query has a cursor.
    pub position: Option<&'a SortValue>,
}

/// The sort keys of `query` as columns of `columns`, each checked: a key the dataset does not
/// have or cannot sort by, or a cursor whose values do not fit, is [`StoreError::Invalid`].
pub(crate) fn sort_columns<'a>(
    dataset: &str,
    columns: &'a [Column],
    query: &'a FeatureQuery,
) -> Result<Vec<SortColumn<'a>>, StoreError> {
    let cursor = query.after.is_some() || query.before.is_some();
    if cursor && !query.sort.is_empty() && query.position.len() != query.sort.len() {
        return Err(StoreError::Invalid(format!(
            "the cursor holds {} sort values where the order has {} keys",
            query.position.len(),
            query.sort.len()
        )));
    }
    query
        .sort
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let column = columns
                .iter()
                .find(|c| c.key == k.key)
                .ok_or_else(|| StoreError::Invalid(format!("dataset {dataset} has no property {:?}", k.key)))?;
            if column.overflow || !sortable(column.ty) {
                return Err(StoreError::Invalid(format!("property {:?} of {dataset} cannot be sorted by", k.key)));
            }
            let position = if cursor { query.position.get(i) } else { None };
            if position.is_some_and(|v| !v.fits(column.ty)) {
                return Err(StoreError::Invalid(format!("the cursor's value of {:?} is not one of its values", k.key)));
            }
            Ok(SortColumn { column, descending: k.descending, position })
        })
        .collect()
}

/// Features as a store reads them: a page is never held in memory whole.
pub type FeatureStream = BoxStream<'static, Result<StoredFeature, StoreError>>;

/// The `ORDER BY` list of a sorted page: the keys (each written by `expr`), then `fid`; every
/// direction reversed to read backwards. NULL sorts after every value, spelled out for stores
/// whose default differs (SQLite's puts it first).
pub(crate) fn sort_order(sort: &[SortColumn], backwards: bool, expr: impl Fn(&SortColumn) -> String) -> String {
    let mut order: Vec<String> = sort
        .iter()
        .map(|k| {
            let direction = if k.descending != backwards { "DESC NULLS FIRST" } else { "ASC NULLS LAST" };
            format!("{} {direction}", expr(k))
        })
        .collect();
    order.push(if backwards { "fid DESC" } else { "fid" }.to_string());
    order.join(", ")
}

/// A value a keyset condition compares with, for the store to bind as a parameter.
pub(crate) enum Placeholder<'a> {
    Fid(i64),
    Value(&'a SortValue, FieldType),
}

/// The rows after a cursor (in reading order) may make two runs on the first key: when it
/// reads ascending from a value, the values after it and then every NULL; when it reads
/// descending from NULL, the NULLs after it and then every value. Each run alone is an index
/// range (the condition of both is not). This is the condition of the second run, when
/// there is one: read after the first, it needs no cursor.
pub(crate) fn second_run(sort: &[SortColumn], backwards: bool, expr: impl Fn(&SortColumn) -> String) -> Option<String> {
    let first = sort.first()?;
    let ascending = first.descending == backwards;
    match (first.position?, ascending) {
        (SortValue::Null, false) => Some(format!("{} IS NOT NULL", expr(first))),
        (SortValue::Null, true) | (_, false) => None,
        (_, true) => Some(format!("{} IS NULL", expr(first))),
    }
}

/// Which runs of the rows after a cursor a keyset condition selects (see [`second_run`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runs {
    Both,
    First,
}

/// The condition that a row comes after the cursor's feature in reading order (before it when
/// reading backwards), the one place where both stores compare positions: the expanded form of
/// `(k1, …, kn, fid) > (v1, …, vn, f)`, which, unlike a row comparison, takes a direction per
/// key and NULLs (after every value). `expr` writes a key's column; `bind` returns the
/// placeholder of a value and is called in the order the placeholders appear in the text.
pub(crate) fn keyset_condition(
    sort: &[SortColumn],
    fid: i64,
    backwards: bool,
    runs: Runs,
    expr: &dyn Fn(&SortColumn) -> String,
    bind: &mut dyn FnMut(Placeholder) -> Result<String, StoreError>,
) -> Result<String, StoreError> {
    let Some((first, rest)) = sort.split_first() else {
        let op = if backwards { "<" } else { ">" };
        return Ok(format!("fid {op} {}", bind(Placeholder::Fid(fid))?));
    };
    let c = expr(first);
    let ascending = first.descending == backwards;
    let value = first.position.unwrap_or(&SortValue::Null);
    let mut placeholder = || bind(Placeholder::Value(value, first.column.ty));
    let first_run = runs == Runs::First;
    // Later keys compare only among rows level on this one: all of them.
    let then = |bind: &mut dyn FnMut(Placeholder) -> Result<String, StoreError>| {
        keyset_condition(rest, fid, backwards, Runs::Both, expr, bind)
    };
    Ok(match (value, ascending) {
        // NULL comes last: only NULLs are level with it, nothing is past it.
        (SortValue::Null, true) => format!("({c} IS NULL AND {})", then(bind)?),
        (SortValue::Null, false) if first_run => format!("({c} IS NULL AND {})", then(bind)?),
        (SortValue::Null, false) => format!("({c} IS NOT NULL OR ({c} IS NULL AND {}))", then(bind)?),
        // The values after this one; the bound, said outright, starts an index scan there.
        (_, true) if first_run => {
            let (bound, later, level) = (placeholder()?, placeholder()?, placeholder()?);
            format!("({c} >= {bound} AND ({c} > {later} OR ({c} = {level} AND {})))", then(bind)?)
        }
        (_, true) => {
            let (later, level) = (placeholder()?, placeholder()?);
            format!("({c} > {later} OR {c} IS NULL OR ({c} = {level} AND {}))", then(bind)?)
        }
        (_, false) => {
            // NULLs came first: every row still to come has a value, at most this one.
            let (bound, later, level) = (placeholder()?, placeholder()?, placeholder()?);
            format!("({c} <= {bound} AND ({c} < {later} OR ({c} = {level} AND {})))", then(bind)?)
        }
    })
}

/// A page read backwards (in reverse order, for [`FeatureQuery::before`]) put back in order.
/// Such a page is held whole: it has at most `limit` features.
pub(crate) async fn in_order(stream: FeatureStream) -> Result<FeatureStream, StoreError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut page: Vec<StoredFeature> = stream.try_collect().await?;
    page.reverse();
    Ok(futures_util::stream::iter(page.into_iter().map(Ok)).boxed())
}
