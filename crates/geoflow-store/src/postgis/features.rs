//! Reading features back as GeoJSON: one statement per page, the JSON of each feature built
//! by the server, rows streamed to the caller as they arrive.
//!
//! The statement text depends only on the dataset's layout and the shape of the query (which
//! filters, on which columns); every value, property keys included, is a parameter — bar the
//! limit of an unfiltered page (see [`page_select`]). So the text is the key of the
//! connection's statement cache, and a page costs one round trip once a connection has seen
//! its shape, given the layout the caller read from the catalog (two without: the layout, then
//! the rows).
//!
//! Except with a bbox: whether the spatial index or the primary key (in `fid` order, up to the
//! limit) is the better path depends on how much of the table the box covers, and a cached
//! statement soon runs a generic plan that cannot know (PostgreSQL switches after five
//! executions). For a box covering the whole of a 20 000-row grid that plan read every row,
//! 23 ms instead of 0.1 ms, and it grows with the table. So a bbox query is planned for its
//! values each time, in one round trip (parse, bind and execute of the unnamed statement),
//! as is a query filtering on several properties, whose shapes are too many to cache.
//!
//! A forward bbox page first reads a window of rows in `fid` order (see [`window_select`]),
//! whose plan does not depend on the box and is cached; only when the window holds fewer
//! than `limit` matches does the rest of the page take the statement planned for its values.

use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Object;
use futures_util::{stream, StreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, RowStream};

use time::{Duration, OffsetDateTime};

use geoflow_core::dataset::DatasetName;
use geoflow_core::row::Bbox;
use geoflow_core::schema::FieldType;
use geoflow_core::served_crs::ServedCrs;

use super::table::{datetime_text, qualified, quote_ident};
use super::{Ctx, PostgisStore};
use crate::features::{
    keyset_condition, parse_date, parse_datetime, second_run, sort_columns, sort_order, Placeholder, Runs, SortColumn,
    SortValue,
};
use crate::layout::{parse_type, Column, OVERFLOW_COLUMN};
use crate::{DatasetInfo, FeatureQuery, FeatureStream, StoreError, StoredFeature, TemporalFilter};

const FEATURES_SQL: &str = include_str!("sql/features.sql");
const FEATURE_LAYOUT_SQL: &str = include_str!("sql/feature_layout.sql");
const LAYOUT_STAMP_SQL: &str = include_str!("sql/layout_stamp.sql");
const MISSING_CRS_SQL: &str = include_str!("sql/missing_crs.sql");

/// PostgreSQL refuses function calls with more arguments than this (`FUNC_MAX_ARGS`).
const MAX_FUNCTION_ARGS: usize = 100;

/// Statements a connection keeps before its cache is emptied: layouts change with loads, and
/// the texts of old ones linger.
const MAX_CACHED_STATEMENTS: usize = 512;

type Param = Box<dyn ToSql + Sync + Send>;

/// A dataset table as reading it needs.
pub(super) struct Table {
    pub(super) name: String,
    pub(super) columns: Vec<Column>,
}

impl Table {
    /// The table as the catalog described it.
    pub(super) fn of(info: &DatasetInfo) -> Table {
        let columns = info
            .columns
            .iter()
            .map(|c| Column { key: c.key.clone(), name: c.column.clone(), ty: c.ty, overflow: c.overflow })
            .collect();
        Table { name: info.table.clone(), columns }
    }
}

/// The statement of a read and its parameters.
pub(super) struct Select {
    sql: String,
    /// What the statement selects as the geometry's GeoJSON.
    geometry: String,
    pub(super) params: Vec<(Param, Type)>,
    /// Whether the statement is prepared once per connection and cached, rather than planned
    /// for its values each time (see the module documentation).
    cache: bool,
    /// The types of the sort values selected after the properties, one per sort key.
    sort_types: Vec<FieldType>,
}

impl Select {
    /// The statement with the property members of every feature (those `query` shows), and
    /// their keys as the first parameters.
    pub(super) fn new(table: &Table, query: &FeatureQuery) -> Select {
        let mut select =
            // Each choice of properties is a statement of its own: requests could fill the cache.
            Select { sql: String::new(), geometry: String::new(), params: Vec::with_capacity(table.columns.len() + 8), cache: query.fields.is_none(), sort_types: Vec::new() };
        select.geometry = match &query.crs {
            _ if query.skip_geometry => "NULL::text".to_string(),
            Some(crs) => select.geometry_in(crs),
            None => "ST_AsGeoJSON(geom, 30, 0)".to_string(),
        };
        let mut members = Vec::with_capacity(table.columns.len());
        for c in table.columns.iter().filter(|c| query.shows(&c.key)) {
            let key = select.bind(Box::new(json_key(&c.key)), Type::TEXT);
            let column = column_expr(&mut select, c);
            members.push(format!("{key} || coalesce({}, 'null')", value_json(&column, c.ty)));
        }
        select.sql = join_members(members);
        select
    }

    /// The GeoJSON of the geometry in `crs`: transformed by the CRS's SRID (a parameter, so
    /// that one cached statement serves every CRS), its axes swapped where the authority lists
    /// north first, with as many decimals as the CRS keeps (all for degrees).
    fn geometry_in(&mut self, crs: &ServedCrs) -> String {
        let mut geometry = "geom".to_string();
        if let (true, Some(code)) = (crs.projects(), crs.epsg()) {
            let srid = self.bind(Box::new(i32::try_from(code).unwrap_or(i32::MAX)), Type::INT4);
            geometry = format!("ST_Transform({geometry}, {srid})");
        }
        if crs.north_first() {
            geometry = format!("ST_FlipCoordinates({geometry})");
        }
        let decimals = crs.decimals().map_or(30, u32::from);
        format!("ST_AsGeoJSON({geometry}, {decimals}, 0)")
    }

    /// Adds a parameter and returns its placeholder, cast to its type (so that a prepared
    /// statement infers the type the unprepared one is given).
    pub(super) fn bind(&mut self, param: Param, ty: Type) -> String {
        let cast = match ty {
            Type::BOOL => "boolean",
            Type::INT8 => "bigint",
            Type::INT4 => "integer",
            Type::FLOAT8 => "double precision",
            Type::TIMESTAMPTZ => "timestamptz",
            Type::DATE => "date",
            _ => "text",
        };
        self.params.push((param, ty));
        format!("${}::{cast}", self.params.len())
    }
}

/// The key as a JSON string followed by the colon of its member.
fn json_key(key: &str) -> String {
    let mut out = serde_json::Value::String(key.to_string()).to_string();
    out.push(':');
    out
}

/// A property's stored value: its column, or its member of the overflow column (jsonb).
pub(super) fn column_expr(select: &mut Select, c: &Column) -> String {
    if c.overflow {
        let key = select.bind(Box::new(c.key.clone()), Type::TEXT);
        format!("({} -> {key})", quote_ident(OVERFLOW_COLUMN))
    } else {
        quote_ident(&c.name)
    }
}

/// The JSON text of a column's value, NULL when the value is (the member then says `null`): dates and date-times as the
/// text they were loaded from, doubles always with a point or an exponent (`1.0`, not `1`:
/// readers that tell integers from reals must see a real), everything else as `to_json`
/// writes it (exact for bigint and jsonb).
fn value_json(column: &str, ty: FieldType) -> String {
    match ty {
        FieldType::Date => format!("to_json(to_char({column}, 'YYYY-MM-DD'))::text"),
        FieldType::DateTime => format!("to_json({})::text", datetime_text(column)),
        // Integral doubles below 1e15 print as plain digits; larger ones with an exponent,
        // NaN and infinities as strings.
        FieldType::Real => format!(
            "CASE WHEN {column} = trunc({column}) AND abs({column}) < 1e15 THEN {column}::text || '.0' \
             ELSE to_json({column})::text END"
        ),
        _ => format!("to_json({column})::text"),
    }
}

/// The members joined with commas, skipping NULLs: `concat_ws` nested so that no call has
/// more than [`MAX_FUNCTION_ARGS`] arguments.
fn join_members(members: Vec<String>) -> String {
    let per_call = MAX_FUNCTION_ARGS - 1;
    if members.is_empty() {
        return "''".to_string();
    }
    if members.len() <= per_call {
        return format!("concat_ws(',', {})", members.join(", "));
    }
    // An inner call with no member gives '', which must not add a comma.
    let groups = members.chunks(per_call).map(|g| format!("nullif({}, '')", join_members(g.to_vec()))).collect();
    join_members(groups)
}

/// The condition that a column equals a filter value compared as text, as the value's JSON
/// text reads: values that cannot be the text of any value of the column bind NULL, which
/// matches nothing.
fn property_condition(select: &mut Select, c: &Column, value: &str) -> String {
    let column = column_expr(select, c);
    match c.ty {
        FieldType::Text | FieldType::Null => {
            format!("{column} = {}", select.bind(Box::new(value.to_string()), Type::TEXT))
        }
        FieldType::Boolean => {
            let b = match value {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            };
            format!("{column} = {}", select.bind(Box::new(b), Type::BOOL))
        }
        FieldType::Integer | FieldType::WideInteger => {
            // The canonical text only: `007` or `+7` is not how 7 reads.
            let i = value.parse::<i64>().ok().filter(|i| i.to_string() == value);
            format!("{column} = {}", select.bind(Box::new(i), Type::INT8))
        }
        FieldType::Real => {
            // By value, so that 1 finds 1.0: JSON number syntax, then Rust's exact parsing
            // (serde_json's may be off by an ulp).
            let f = serde_json::from_str::<serde_json::Number>(value).ok().and_then(|_| value.parse::<f64>().ok());
            format!("{column} = {}", select.bind(Box::new(f), Type::FLOAT8))
        }
        FieldType::Date => {
            let p = select.bind(Box::new(value.to_string()), Type::TEXT);
            format!("to_char({column}, 'YYYY-MM-DD') = {p}")
        }
        FieldType::DateTime => {
            let p = select.bind(Box::new(value.to_string()), Type::TEXT);
            format!("{} = {p}", datetime_text(&column))
        }
        FieldType::Json => {
            // Scalars by their text (a string by its characters); objects and arrays by
            // value, as jsonb keeps neither their key order nor their spacing. The server
            // parses the text (exactly, unlike serde_json's floats) once it is known to be
            // JSON that jsonb takes.
            let nested = serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .filter(|v| (v.is_object() || v.is_array()) && !has_nul(v))
                .map(|_| value.to_string());
            let text = select.bind(Box::new(value.to_string()), Type::TEXT);
            let nested = select.bind(Box::new(nested), Type::TEXT);
            format!("({column} #>> '{{}}' = {text} OR {column} = {nested}::jsonb)")
        }
    }
}

/// Whether a JSON value holds U+0000, which jsonb refuses (so no stored value has it).
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The box as the envelope of `ST_MakeEnvelope`.
fn envelope(min_x: &str, min_y: &str, max_x: &str, max_y: &str) -> String {
    format!("ST_MakeEnvelope({min_x}, {min_y}, {max_x}, {max_y}, 4326)")
}

/// Geometries intersecting the box; `&&` first so that the GIST index answers.
fn bbox_condition(select: &mut Select, b: &Bbox) -> Result<String, StoreError> {
    if ![b.min_x, b.min_y, b.max_x, b.max_y].iter().all(|v| v.is_finite()) {
        return Err(StoreError::Invalid(format!(
            "bbox {},{},{},{} is not four finite numbers",
            b.min_x, b.min_y, b.max_x, b.max_y
        )));
    }
    let min_x = select.bind(Box::new(b.min_x), Type::FLOAT8);
    let min_y = select.bind(Box::new(b.min_y), Type::FLOAT8);
    let max_x = select.bind(Box::new(b.max_x), Type::FLOAT8);
    let max_y = select.bind(Box::new(b.max_y), Type::FLOAT8);
    let hits = |e: String| format!("(geom && {e} AND ST_Intersects(geom, {e}))");
    Ok(if b.min_x > b.max_x {
        // Across the antimeridian: the part east of min_x and the part west of max_x.
        format!(
            "({} OR {})",
            hits(envelope(&min_x, &min_y, "180", &max_y)),
            hits(envelope("-180", &min_y, &max_x, &max_y))
        )
    } else {
        hits(envelope(&min_x, &min_y, &max_x, &max_y))
    })
}

/// `t` rounded up or down to the microseconds a timestamptz keeps (the client library would
/// truncate): a bound between two stored instants must not let in the one outside the
/// closed interval.
fn to_micros(t: OffsetDateTime, up: bool) -> OffsetDateTime {
    let rest = i64::from(t.nanosecond() % 1000);
    let down = t - Duration::nanoseconds(rest);
    if up && rest != 0 {
        down.checked_add(Duration::MICROSECOND).unwrap_or(down)
    } else {
        down
    }
}

/// The condition that a feature's time meets the filter's interval: its start no later than
/// the interval's end, its end no earlier than the interval's start (see [`TemporalFilter`]).
fn temporal_condition(
    select: &mut Select,
    dataset: &DatasetName,
    table: &Table,
    t: &TemporalFilter,
) -> Result<String, StoreError> {
    let (start, end) = crate::layout::temporal_columns(&table.columns, dataset.as_str(), &t.properties)?;
    // `column` compared with an instant: a date column with the instant's UTC day (a day
    // starts no later than an instant on or after it, ends no earlier than one on or before).
    let mut compare = |c: &Column, op: &str, at: OffsetDateTime, lower: bool| {
        let name = quote_ident(&c.name);
        if c.ty == FieldType::Date {
            let day = at.checked_to_offset(time::UtcOffset::UTC).unwrap_or(at).date();
            format!("{name} {op} {}", select.bind(Box::new(day), Type::DATE))
        } else {
            format!("{name} {op} {}", select.bind(Box::new(to_micros(at, lower)), Type::TIMESTAMPTZ))
        }
    };
    let mut parts = Vec::new();
    match end {
        None => {
            parts.push(format!("{} IS NOT NULL", quote_ident(&start.name)));
            if let Some(to) = t.to {
                parts.push(compare(start, "<=", to, false));
            }
            if let Some(from) = t.from {
                parts.push(compare(start, ">=", from, true));
            }
        }
        Some(end) => {
            let (s, e) = (quote_ident(&start.name), quote_ident(&end.name));
            parts.push(format!("({s} IS NOT NULL OR {e} IS NOT NULL)"));
            if let Some(to) = t.to {
                parts.push(format!("({s} IS NULL OR {})", compare(start, "<=", to, false)));
            }
            if let Some(from) = t.from {
                parts.push(format!("({e} IS NULL OR {})", compare(end, ">=", from, true)));
            }
        }
    }
    Ok(format!("({})", parts.join(" AND ")))
}

/// The instants of a date or date-time column as timestamptz: a date's day starts at its
/// midnight (UTC) and ends at the next.
fn instant(c: &Column, end: bool) -> String {
    let name = quote_ident(&c.name);
    match (c.ty, end) {
        (FieldType::Date, false) => format!("({name}::timestamp AT TIME ZONE 'UTC')"),
        (FieldType::Date, true) => format!("(({name} + 1)::timestamp AT TIME ZONE 'UTC')"),
        _ => name,
    }
}

pub async fn time_extent(
    store: &PostgisStore,
    dataset: &DatasetName,
    temporal: Option<&crate::Temporal>,
) -> Result<crate::TimeExtent, StoreError> {
    let client = store.client().await?;
    let table = table(store, &client, dataset).await?;
    let (first, last) = match temporal {
        None => ("min(gf_loaded_at)".to_string(), "max(gf_loaded_at)".to_string()),
        Some(t) => {
            let (start, end) = crate::layout::temporal_columns(&table.columns, dataset.as_str(), t)?;
            match end {
                None => (format!("min({})", instant(start, false)), format!("max({})", instant(start, true))),
                Some(end) => {
                    let (s, e) = (quote_ident(&start.name), quote_ident(&end.name));
                    // An open end that some feature leaves open stays open.
                    (
                        format!(
                            "CASE WHEN bool_or({s} IS NULL AND {e} IS NOT NULL) THEN NULL ELSE min({}) END",
                            instant(start, false)
                        ),
                        format!(
                            "CASE WHEN bool_or({e} IS NULL AND {s} IS NOT NULL) THEN NULL ELSE max({}) END",
                            instant(end, true)
                        ),
                    )
                }
            }
        }
    };
    let sql = format!(
        "SELECT {}, {} FROM {}",
        datetime_text(&format!("({first})")),
        datetime_text(&format!("({last})")),
        qualified(&table.name)
    );
    let row = client.query_one(&sql, &[]).await.ctx(store, "reading the dataset's extent in time")?;
    Ok((row.get(0), row.get(1)))
}

/// Rows a forward bbox page reads in `fid` order before it asks the spatial index, per feature
/// of the page (see [`window_select`]).
const WINDOW_ROWS_PER_FEATURE: usize = 100;

/// At most this many rows in a window, whatever the limit.
const MAX_WINDOW_ROWS: usize = 100_000;

/// The conditions of `query`, with its parameters bound in `select`.
fn conditions(
    select: &mut Select,
    dataset: &DatasetName,
    table: &Table,
    query: &FeatureQuery,
) -> Result<Vec<String>, StoreError> {
    let mut conditions = Vec::new();
    if let Some(b) = &query.bbox {
        conditions.push(bbox_condition(select, b)?);
        select.cache = false;
    }
    if let Some((from, to)) = query.loaded {
        if let Some(from) = from {
            let from = select.bind(Box::new(to_micros(from, true)), Type::TIMESTAMPTZ);
            conditions.push(format!("gf_loaded_at >= {from}"));
        }
        if let Some(to) = to {
            let to = select.bind(Box::new(to_micros(to, false)), Type::TIMESTAMPTZ);
            conditions.push(format!("gf_loaded_at <= {to}"));
        }
    }
    if let Some(t) = &query.temporal {
        conditions.push(temporal_condition(select, dataset, table, t)?);
    }
    for (key, value) in &query.properties {
        let column = table
            .columns
            .iter()
            .find(|c| &c.key == key)
            .ok_or_else(|| StoreError::Invalid(format!("dataset {} has no property {key:?}", dataset.as_str())))?;
        conditions.push(property_condition(select, column, value));
    }
    // Each combination of filtered columns is a statement of its own: caching them all would
    // let requests fill the cache.
    if query.properties.len() > 1 {
        select.cache = false;
    }
    if let Some(filter) = &query.filter {
        conditions.push(super::filter::condition(select, table, filter)?);
        // Filters have shapes without number, and their best plan depends on their values
        // (a spatial literal covers a few rows or all of them), as a bbox's does.
        select.cache = false;
    }
    Ok(conditions)
}

/// The statement of `features(dataset, query)`: of a sorted page whose rows make two runs
/// (see [`second_run`]), that of the first.
fn features_select(dataset: &DatasetName, table: &Table, query: &FeatureQuery) -> Result<Select, StoreError> {
    page_select(dataset, table, query, None)
}

/// The statement of the second run of a sorted page's rows, when they make two: read once the
/// first ran out before the page was full (`query.limit` is what is left of it), it starts at
/// the run's beginning.
fn second_run_select(dataset: &DatasetName, table: &Table, query: &FeatureQuery) -> Result<Option<Select>, StoreError> {
    let sort = sort_columns(dataset.as_str(), &table.columns, query)?;
    match second_run(&sort, query.before.is_some(), sort_expr) {
        Some(run) => page_select(dataset, table, query, Some(run)).map(Some),
        None => Ok(None),
    }
}

/// The statement of a page: from the cursor, or, given `second_run`'s condition, the rows of
/// that run.
fn page_select(
    dataset: &DatasetName,
    table: &Table,
    query: &FeatureQuery,
    second_run: Option<String>,
) -> Result<Select, StoreError> {
    let mut select = Select::new(table, query);
    let mut conditions = conditions(&mut select, dataset, table, query)?;
    let unfiltered = conditions.is_empty();
    let sort = sort_columns(dataset.as_str(), &table.columns, query)?;
    // A page before a cursor is read backwards from it; the caller puts it back in order.
    let backwards = query.before.is_some();
    match (second_run, query.after.or(query.before)) {
        (Some(run), _) => conditions.push(run),
        (None, Some(fid)) => conditions.push(keyset(&mut select, &sort, fid, backwards)?),
        (None, None) => {}
    }
    // Orders on several keys are too many shapes to cache.
    if sort.len() > 1 {
        select.cache = false;
    }
    // An unfiltered page has one best plan wherever its cursor is: its limit written in the
    // text lets PostgreSQL settle on the statement's generic plan rather than plan every page
    // (against a LIMIT parameter, which it costs as a tenth of the table, it never does).
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let limit = if unfiltered && select.cache { limit.to_string() } else { select.bind(Box::new(limit), Type::INT8) };
    let order = format!("ORDER BY {} LIMIT {limit}", sort_order(&sort, backwards, sort_expr));
    // Each feature's sort values follow its properties: the cursor of a page after it.
    let mut selected = std::mem::take(&mut select.sql);
    for k in &sort {
        selected.push_str(", ");
        selected.push_str(&sort_value_text(&quote_ident(&k.column.name), k.column.ty));
        select.sort_types.push(k.column.ty);
    }
    select.sql = statement(&qualified(&table.name), &select.geometry, &selected, &conditions, &order);
    Ok(select)
}

/// A sort key's column as it compares: text by code point (the `"C"` collation, as SQLite's
/// `BINARY` compares), whatever the database's default collation.
fn sort_expr(k: &SortColumn) -> String {
    let column = quote_ident(&k.column.name);
    match k.column.ty {
        FieldType::Text => format!("{column} COLLATE \"C\""),
        _ => column,
    }
}

/// The condition that a row comes after the cursor's feature in reading order (see
/// [`keyset_condition`]), with the cursor's values as parameters: of the first run only, each
/// run being one index range where an index serves the first key.
fn keyset(select: &mut Select, sort: &[SortColumn], fid: i64, backwards: bool) -> Result<String, StoreError> {
    keyset_condition(sort, fid, backwards, Runs::First, &sort_expr, &mut |placeholder| match placeholder {
        Placeholder::Fid(fid) => Ok(select.bind(Box::new(fid), Type::INT8)),
        Placeholder::Value(v, ty) => bind_sort_value(select, v, ty),
    })
}

/// A cursor's sort value as a parameter of the column's type.
fn bind_sort_value(select: &mut Select, value: &SortValue, ty: FieldType) -> Result<String, StoreError> {
    let unfit = || StoreError::Invalid(format!("the cursor value {value:?} is not a {} value", ty.name()));
    Ok(match (value, ty) {
        (SortValue::Bool(b), _) => select.bind(Box::new(*b), Type::BOOL),
        (SortValue::Int(i), _) => select.bind(Box::new(*i), Type::INT8),
        (SortValue::Real(f), _) => select.bind(Box::new(*f), Type::FLOAT8),
        (SortValue::Text(s), FieldType::Date) => select.bind(Box::new(parse_date(s).ok_or_else(unfit)?), Type::DATE),
        (SortValue::Text(s), FieldType::DateTime) => {
            select.bind(Box::new(parse_datetime(s).ok_or_else(unfit)?), Type::TIMESTAMPTZ)
        }
        (SortValue::Text(s), _) => select.bind(Box::new(s.clone()), Type::TEXT),
        (SortValue::Null, _) => return Err(unfit()),
    })
}

/// A sort value as the statement selects it: dates and date-times as the text features show.
fn sort_value_text(column: &str, ty: FieldType) -> String {
    match ty {
        FieldType::Date => format!("to_char({column}, 'YYYY-MM-DD')"),
        FieldType::DateTime => datetime_text(column),
        _ => column.to_string(),
    }
}

/// The sort values of a row, selected after its properties (from column 3).
fn sort_values(store: &PostgisStore, row: &Row, types: &[FieldType]) -> Result<Vec<SortValue>, StoreError> {
    let context = "reading sort values";
    types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let at = 3 + i;
            Ok(match ty {
                FieldType::Boolean => row.try_get::<_, Option<bool>>(at).ctx(store, context)?.map(SortValue::Bool),
                FieldType::Integer | FieldType::WideInteger => {
                    row.try_get::<_, Option<i64>>(at).ctx(store, context)?.map(SortValue::Int)
                }
                FieldType::Real => row.try_get::<_, Option<f64>>(at).ctx(store, context)?.map(SortValue::Real),
                _ => row.try_get::<_, Option<String>>(at).ctx(store, context)?.map(SortValue::Text),
            }
            .unwrap_or(SortValue::Null))
        })
        .collect()
}

/// For a forward page with a bbox: its features among the next rows after the cursor in `fid`
/// order (the window), read through the primary key. Where the box holds a few percent of the
/// table or more, the window holds the page, and costs that many row checks instead of
/// fetching and sorting every match by `fid` (100 ms for 22 000 matches of 1M rows). A
/// window with fewer than `limit` matches was read whole, so the rest of the page is the
/// matches after its last one ([`features`] then runs [`features_select`] from there).
///
/// Nothing in its plan depends on the box, so unlike [`features_select`] it is cached (bar
/// several property filters). The window's rows are sorted out by their stored extent
/// columns, plain doubles, without reading a geometry (a fifth more pages per second than
/// `geom &&` on 1M polygons); that pre-filter sits in a subquery of its own so that the
/// planner costs `ST_Intersects` (declared 10 000 × an operator) for the rows that pass it,
/// not for the whole window: otherwise the estimate passes `jit_above_cost` and JIT compiling
/// costs more than the page.
fn window_select(dataset: &DatasetName, table: &Table, query: &FeatureQuery) -> Result<Option<Select>, StoreError> {
    let Some(b) = &query.bbox else { return Ok(None) };
    // The window holds rows in `fid` order: a sorted page or one read backwards does not.
    if query.before.is_some() || !query.sort.is_empty() {
        return Ok(None);
    }
    let mut select = Select::new(table, query);
    // The box's parameters come first in `conditions`.
    let first = select.params.len();
    let conditions = conditions(&mut select, dataset, table, query)?;
    select.cache = query.fields.is_none() && query.properties.len() <= 1 && query.filter.is_none();
    let cursor = match query.after {
        Some(after) => format!("fid > {}", select.bind(Box::new(after), Type::INT8)),
        None => "true".to_string(),
    };
    // As an unfiltered page's (see `page_select`), the limits of a cached window are written
    // in its text, so that PostgreSQL settles on its generic plan instead of planning each box.
    let mut limit_of = |n: usize| {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if select.cache {
            n.to_string()
        } else {
            select.bind(Box::new(n), Type::INT8)
        }
    };
    let rows = limit_of(query.limit.saturating_mul(WINDOW_ROWS_PER_FEATURE).min(MAX_WINDOW_ROWS));
    let limit = limit_of(query.limit);
    // The stored extent columns (plain doubles, never smaller than the geometry's extent)
    // sort out the window's rows without reading a geometry; the exact test follows.
    let p = |i: usize| format!("${}::double precision", first + i);
    let (west, south, east, north) = (p(1), p(2), p(3), p(4));
    let across_x = if b.min_x > b.max_x {
        // Across the antimeridian: east of min_x or west of max_x.
        format!("(gf_max_x >= {west} OR gf_min_x <= {east})")
    } else {
        format!("gf_max_x >= {west} AND gf_min_x <= {east}")
    };
    let coarse = format!("{across_x} AND gf_max_y >= {south} AND gf_min_y <= {north}");
    let from = format!(
        "(SELECT * FROM (SELECT * FROM {} WHERE {cursor} ORDER BY fid LIMIT {rows}) AS w\n      \
         WHERE {coarse} ORDER BY fid OFFSET 0) AS c",
        qualified(&table.name)
    );
    let order = format!("ORDER BY fid LIMIT {limit}");
    select.sql = statement(&from, &select.geometry, &select.sql, &conditions, &order);
    Ok(Some(select))
}

/// The statement of `feature(dataset, fid, crs)`.
fn feature_select(table: &Table, fid: i64, crs: Option<&ServedCrs>) -> Select {
    let mut select = Select::new(table, &FeatureQuery { crs: crs.cloned(), ..FeatureQuery::default() });
    let condition = format!("fid = {}", select.bind(Box::new(fid), Type::INT8));
    select.sql = statement(&qualified(&table.name), &select.geometry, &select.sql, &[condition], "");
    select
}

/// [`FEATURES_SQL`] filled in.
fn statement(from: &str, geometry: &str, properties: &str, conditions: &[String], order: &str) -> String {
    let conditions = if conditions.is_empty() { "true".to_string() } else { conditions.join("\n  AND ") };
    fill(
        FEATURES_SQL,
        &[
            ("geometry", geometry),
            ("properties", properties),
            ("table", from),
            ("conditions", conditions.as_str()),
            ("order", order),
        ],
    )
}

/// `template` with each `{name}` of `values` replaced, in one pass, so that no inserted text
/// is read as a placeholder; other braces are kept.
pub(super) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let name = rest[start..].find('}').map(|end| &rest[start + 1..start + end]);
        let Some((name, value)) = name.and_then(|n| values.iter().find(|(k, _)| *k == n)) else {
            out.push_str(&rest[..=start]);
            rest = &rest[start + 1..];
            continue;
        };
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + name.len() + 2..];
    }
    out.push_str(rest);
    out
}

/// The table of `dataset`; [`StoreError::NotFound`] when there is no such dataset.
pub(super) async fn table(store: &PostgisStore, client: &Object, dataset: &DatasetName) -> Result<Table, StoreError> {
    stamped_table(store, client, dataset).await.map(|(table, _)| table)
}

/// The table of `dataset` and the stamp of the catalog it was read from.
async fn stamped_table(
    store: &PostgisStore,
    client: &Object,
    dataset: &DatasetName,
) -> Result<(Table, LayoutStamp), StoreError> {
    let context = "reading the dataset catalog";
    let statement = client.prepare_cached(FEATURE_LAYOUT_SQL).await.ctx(store, context)?;
    let rows = client.query(&statement, &[&dataset.as_str()]).await.ctx(store, context)?;
    let Some(first) = rows.first() else {
        return Err(StoreError::NotFound { what: "dataset", id: dataset.as_str().to_string() });
    };
    let mut table = Table { name: first.try_get(0).ctx(store, context)?, columns: Vec::with_capacity(rows.len()) };
    let stamp =
        LayoutStamp { version: first.try_get(5).ctx(store, context)?, changed: first.try_get(6).ctx(store, context)? };
    for r in &rows {
        let key: Option<String> = r.try_get(1).ctx(store, context)?;
        let name: Option<String> = r.try_get(2).ctx(store, context)?;
        let ty: Option<&str> = r.try_get(3).ctx(store, context)?;
        let overflow: Option<bool> = r.try_get(4).ctx(store, context)?;
        if let (Some(key), Some(name), Some(ty)) = (key, name, ty) {
            table.columns.push(Column { key, name, ty: parse_type(ty)?, overflow: overflow.unwrap_or(false) });
        }
    }
    Ok((table, stamp))
}

/// When a dataset's layout was read: its version and last change then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LayoutStamp {
    version: i64,
    changed: String,
}

/// Layouts read for single features, by dataset: an item costs one round trip, its stamp
/// checked in the same one (see [`feature`]).
#[derive(Default)]
pub(super) struct LayoutCache(std::sync::Mutex<std::collections::HashMap<DatasetName, (LayoutStamp, Arc<Table>)>>);

/// Datasets whose layouts the cache keeps before it is emptied.
const MAX_CACHED_LAYOUTS: usize = 1024;

impl LayoutCache {
    fn get(&self, dataset: &DatasetName) -> Option<(LayoutStamp, Arc<Table>)> {
        self.0.lock().ok()?.get(dataset).cloned()
    }

    fn put(&self, dataset: &DatasetName, stamp: LayoutStamp, table: Arc<Table>) {
        if let Ok(mut layouts) = self.0.lock() {
            if layouts.len() >= MAX_CACHED_LAYOUTS {
                layouts.clear();
            }
            layouts.insert(dataset.clone(), (stamp, table));
        }
    }
}

/// The rows of a select, as the server sends them.
async fn rows(store: &PostgisStore, client: &Object, select: &Select) -> Result<RowStream, StoreError> {
    server_rows(client, select).await.ctx(store, "reading features")
}

async fn server_rows(client: &Object, select: &Select) -> Result<RowStream, tokio_postgres::Error> {
    if !select.cache {
        let params = select.params.iter().map(|(p, ty)| (&**p as &(dyn ToSql + Sync), ty.clone()));
        return client.query_typed_raw(&select.sql, params).await;
    }
    let statement = prepare_cached_raw(client, &select.sql).await?;
    let params = select.params.iter().map(|(p, _)| &**p as &(dyn ToSql + Sync));
    client.query_raw(&statement, params).await
}

/// The rows of the first select that `build` makes of the dataset's table: of `described`,
/// the table as the caller read it from the catalog, unless the server finds it gone or
/// changed since (a dataset removed, a column dropped or retyped by a load), when they are
/// those of the table as it is now. Without `described`, the table as it is now.
async fn first_rows<T>(
    store: &PostgisStore,
    client: &Object,
    dataset: &DatasetName,
    described: Option<Table>,
    build: impl Fn(&Table) -> Result<(Select, T), StoreError>,
) -> Result<(Table, RowStream, Select, T), StoreError> {
    if let Some(table) = described {
        let (select, then) = build(&table)?;
        match server_rows(client, &select).await {
            Ok(rows) => return Ok((table, rows, select, then)),
            Err(e) if stale_layout(&e) => {}
            Err(e) => return Err(e).ctx(store, "reading features"),
        }
    }
    let table = table(store, client, dataset).await?;
    let (select, then) = build(&table)?;
    let rows = rows(store, client, &select).await?;
    Ok((table, rows, select, then))
}

/// `sql` prepared once per connection, the cache emptied first when it is full.
pub(super) async fn prepare_cached(
    store: &PostgisStore,
    client: &Object,
    sql: &str,
    context: &str,
) -> Result<tokio_postgres::Statement, StoreError> {
    prepare_cached_raw(client, sql).await.ctx(store, context)
}

async fn prepare_cached_raw(client: &Object, sql: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if client.statement_cache.size() >= MAX_CACHED_STATEMENTS {
        client.statement_cache.clear();
    }
    client.prepare_cached(sql).await
}

/// The feature of a row: its GeoJSON text from the parts the server wrote.
fn stored(store: &PostgisStore, row: &Row, sort_types: &[FieldType]) -> Result<StoredFeature, StoreError> {
    let context = "reading features";
    let fid: i64 = row.try_get(0).ctx(store, context)?;
    let geometry: Option<&str> = row.try_get(1).ctx(store, context)?;
    let properties: &str = row.try_get(2).ctx(store, context)?;
    let mut json = String::with_capacity(64 + geometry.map_or(4, str::len) + properties.len());
    json.push_str(r#"{"type":"Feature","id":"#);
    json.push_str(&fid.to_string());
    json.push_str(r#","geometry":"#);
    match geometry {
        Some(g) => push_geometry(&mut json, g),
        None => json.push_str("null"),
    }
    json.push_str(r#","properties":{"#);
    json.push_str(properties);
    json.push_str("}}");
    Ok(StoredFeature { fid, json, sort_values: sort_values(store, row, sort_types)? })
}

/// Appends the GeoJSON geometry that ST_AsGeoJSON wrote, with integral coordinates as `1.0`
/// rather than `1` (they are doubles). Only coordinates are numbers in its text, and a
/// number without a point or an exponent is an integral one: a copy and a scan, no parsing.
fn push_geometry(out: &mut String, g: &str) {
    let b = g.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !matches!(b[i], b'[' | b',') {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        if b.get(j) == Some(&b'-') {
            j += 1;
        }
        let digits = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > digits && matches!(b.get(j), Some(b',' | b']')) {
            out.push_str(&g[copied..j]);
            out.push_str(".0");
            copied = j;
        }
        i = j.max(start);
    }
    out.push_str(&g[copied..]);
}

/// The features of `dataset` that match `query`, of its table as `described` (see
/// [`first_rows`]) or as it is now.
pub async fn features(
    store: &PostgisStore,
    dataset: &DatasetName,
    described: Option<Table>,
    query: &FeatureQuery,
) -> Result<FeatureStream, StoreError> {
    let client = store.client().await?;
    let (table, rows, select, then) = first_rows(store, &client, dataset, described, |table| {
        Ok(match window_select(dataset, table, query)? {
            Some(window) => (window, Some(Then::AfterWindow(query.clone()))),
            None => (features_select(dataset, table, query)?, Some(Then::SecondRun(query.clone()))),
        })
    })
    .await?;
    let rows = Box::pin(rows);
    let sort_types = select.sort_types;
    let reader = Reader {
        rows,
        store: store.clone(),
        client,
        dataset: dataset.clone(),
        table,
        then,
        sent: 0,
        last: None,
        sort_types,
    };
    Ok(stream::unfold(Some(reader), Reader::next).boxed())
}

/// The feature `fid` of `dataset`. With the dataset's layout cached, the row is read with it
/// and the catalog's stamp in the same round trip (two statements sent together); the row
/// stands if the stamp is the one the layout was read at, else the layout is read afresh
/// first, as it is the first time.
pub async fn feature(
    store: &PostgisStore,
    dataset: &DatasetName,
    fid: i64,
    crs: Option<&ServedCrs>,
) -> Result<Option<StoredFeature>, StoreError> {
    let context = "reading a feature";
    let client = store.client().await?;
    if let Some((stamp, table)) = store.layouts.get(dataset) {
        let select = feature_select(&table, fid, crs);
        let check = prepare_cached(store, &client, LAYOUT_STAMP_SQL, context).await?;
        let name = dataset.as_str();
        let params: [&(dyn ToSql + Sync); 1] = [&name];
        let (now, rows) = tokio::join!(client.query_opt(&check, &params), server_rows(&client, &select));
        let now = now.ctx(store, context)?;
        let now = now.map(|row| LayoutStamp { version: row.get(0), changed: row.get(1) });
        match (now, rows) {
            (None, _) => return Err(StoreError::NotFound { what: "dataset", id: dataset.as_str().to_string() }),
            (Some(now), Ok(rows)) if now == stamp => return first_feature(store, rows).await,
            (_, Err(e)) if !stale_layout(&e) => return Err(e).ctx(store, context),
            _ => {}
        }
    }
    let (table, stamp) = stamped_table(store, &client, dataset).await?;
    let table = Arc::new(table);
    store.layouts.put(dataset, stamp, Arc::clone(&table));
    let select = feature_select(&table, fid, crs);
    first_feature(store, rows(store, &client, &select).await?).await
}

/// Whether the server refused a statement for naming objects that are not there or not of
/// the type it says (SQLSTATE class 42): so it does when the layout it was made from is older
/// than the table, whose columns a load dropped or retyped since.
fn stale_layout(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("42"))
}

/// The feature of the first of `rows`, if any.
async fn first_feature(store: &PostgisStore, rows: RowStream) -> Result<Option<StoredFeature>, StoreError> {
    let mut rows = Box::pin(rows);
    match rows.next().await {
        Some(row) => stored(store, &row.ctx(store, "reading a feature")?, &[]).map(Some),
        None => Ok(None),
    }
}

/// The codes of `codes` that `spatial_ref_sys` has no EPSG entry for: `ST_Transform` could
/// not reach them.
pub async fn missing_crs(store: &PostgisStore, codes: &[u32]) -> Result<Vec<u32>, StoreError> {
    let context = "reading spatial_ref_sys";
    let client = store.client().await?;
    let codes: Vec<i32> = codes.iter().map(|&c| i32::try_from(c).unwrap_or(i32::MAX)).collect();
    let rows = client.query(MISSING_CRS_SQL, &[&codes]).await.ctx(store, context)?;
    rows.iter().map(|r| r.try_get::<_, i32>(0).map(|c| c.unsigned_abs()).ctx(store, context)).collect()
}

/// The plans PostgreSQL chooses for `features(dataset, query)` planned for the query's values,
/// as `EXPLAIN` prints them: for finding out why a page is slow. A forward bbox page has two,
/// the window's and then that of the rest of the page had the window no match; so has a
/// sorted page whose rows make two runs, one per run.
pub async fn explain(store: &PostgisStore, dataset: &DatasetName, query: &FeatureQuery) -> Result<String, StoreError> {
    let context = "explaining the features query";
    let client = store.client().await?;
    let table = table(store, &client, dataset).await?;
    let mut plan = String::new();
    let selects = window_select(dataset, &table, query)?
        .into_iter()
        .chain([features_select(dataset, &table, query)?])
        .chain(second_run_select(dataset, &table, query)?);
    for select in selects {
        let params: Vec<_> = select.params.iter().map(|(p, ty)| (&**p as &(dyn ToSql + Sync), ty.clone())).collect();
        let rows = client.query_typed(&format!("EXPLAIN {}", select.sql), &params).await.ctx(store, context)?;
        for r in rows {
            plan.push_str(r.try_get(0).ctx(store, context)?);
            plan.push('\n');
        }
    }
    Ok(plan)
}

/// What a page reads after its first statement, should that leave the page short.
enum Then {
    /// A page read from a window first: the rest of it comes from the matches after the last
    /// one sent, when the window had fewer than `limit`.
    AfterWindow(FeatureQuery),
    /// A sorted page whose rows make two runs: the second (see [`second_run`]).
    SecondRun(FeatureQuery),
}

/// Rows as the server sends them, holding their pooled connection until the stream ends or
/// is dropped (so that no other query is queued behind an unread page).
struct Reader {
    rows: Pin<Box<RowStream>>,
    store: PostgisStore,
    client: Object,
    dataset: DatasetName,
    table: Table,
    /// What to read when the rows run out before the page is full.
    then: Option<Then>,
    sent: usize,
    last: Option<i64>,
    /// The types of the sort values each row carries after its properties.
    sort_types: Vec<FieldType>,
}

impl Reader {
    /// The next feature and the reader after it; `None` as the state after an error.
    async fn next(reader: Option<Reader>) -> Option<(Result<StoredFeature, StoreError>, Option<Reader>)> {
        let mut r = reader?;
        loop {
            match r.rows.next().await {
                Some(row) => {
                    let feature =
                        row.ctx(&r.store, "reading features").and_then(|row| stored(&r.store, &row, &r.sort_types));
                    return match feature {
                        Ok(f) => {
                            r.sent += 1;
                            r.last = Some(f.fid);
                            Some((Ok(f), Some(r)))
                        }
                        Err(e) => Some((Err(e), None)),
                    };
                }
                None => {
                    let next = match r.then.take()? {
                        Then::AfterWindow(mut rest) => {
                            if r.sent >= rest.limit {
                                return None;
                            }
                            // Rows of the window after its last match did not match either.
                            rest.limit -= r.sent;
                            rest.after = r.last.or(rest.after);
                            features_select(&r.dataset, &r.table, &rest)
                        }
                        Then::SecondRun(mut query) => {
                            if r.sent >= query.limit {
                                return None;
                            }
                            query.limit -= r.sent;
                            match second_run_select(&r.dataset, &r.table, &query) {
                                Ok(Some(select)) => Ok(select),
                                Ok(None) => return None,
                                Err(e) => Err(e),
                            }
                        }
                    };
                    let next = match next {
                        Ok(select) => rows(&r.store, &r.client, &select).await,
                        Err(e) => Err(e),
                    };
                    match next {
                        Ok(next) => r.rows = Box::pin(next),
                        Err(e) => return Some((Err(e), None)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::SortKey;

    fn column(key: &str, ty: FieldType) -> Column {
        Column { key: key.into(), name: key.to_ascii_lowercase(), ty, overflow: false }
    }

    #[test]
    fn members_stay_under_the_argument_limit() {
        assert_eq!(join_members(vec![]), "''");
        assert_eq!(join_members(vec!["a".into(), "b".into()]), "concat_ws(',', a, b)");
        for n in [99, 100, 150, 1600, 20_000] {
            let sql = join_members((0..n).map(|i| format!("m{i}")).collect());
            // Every call's argument list, the separator included.
            for call in sql.split("concat_ws(").skip(1) {
                let mut depth = 0;
                let mut args = 1;
                for ch in call.chars() {
                    match ch {
                        '(' => depth += 1,
                        ')' if depth == 0 => break,
                        ')' => depth -= 1,
                        ',' if depth == 0 => args += 1,
                        _ => {}
                    }
                }
                // The separator literal ',' holds a comma too.
                assert!(args - 1 <= MAX_FUNCTION_ARGS, "{n} members: a call with {} arguments", args - 1);
            }
            assert!((0..n).all(|i| sql.contains(&format!("m{i},")) || sql.contains(&format!("m{i})"))));
        }
    }

    #[test]
    fn keys_and_values_are_parameters() {
        let hostile = "it's \"x\"; DROP TABLE t; --";
        let table = Table { name: "t".into(), columns: vec![column(hostile, FieldType::Json)] };
        let name = DatasetName::new("t").unwrap();
        let query = FeatureQuery {
            properties: vec![(hostile.into(), "' OR 1=1 --".into())],
            after: Some(7),
            limit: 10,
            ..FeatureQuery::default()
        };
        let select = features_select(&name, &table, &query).unwrap();
        assert!(!select.sql.contains("DROP") && !select.sql.contains("OR 1=1"), "{}", select.sql);
        assert_eq!(select.params.len(), 5, "key, text, nested, after, limit");
        assert!(select.sql.contains("ORDER BY fid LIMIT $5::bigint"), "{}", select.sql);
        assert!(select.cache, "one property filter is cached");
        let unknown = FeatureQuery { properties: vec![("nope".into(), "x".into())], ..query };
        assert!(matches!(features_select(&name, &table, &unknown), Err(StoreError::Invalid(m)) if m.contains("nope")));
    }

    #[test]
    fn an_unfiltered_page_writes_its_limit_so_that_its_plan_is_kept() {
        let table = Table { name: "t".into(), columns: vec![column("a", FieldType::Text)] };
        let name = DatasetName::new("t").unwrap();
        let page = FeatureQuery { after: Some(7), limit: 11, ..FeatureQuery::default() };
        let select = features_select(&name, &table, &page).unwrap();
        assert!(select.sql.ends_with("ORDER BY fid LIMIT 11\n"), "{}", select.sql);
        assert_eq!(select.params.len(), 2, "key, cursor");
        assert!(select.cache);
        // A filtered page's plan depends on its values: planned for them, its limit included.
        let filtered = FeatureQuery { properties: vec![("a".into(), "x".into())], ..page };
        let select = features_select(&name, &table, &filtered).unwrap();
        assert!(select.sql.ends_with("ORDER BY fid LIMIT $4::bigint\n"), "{}", select.sql);
    }

    #[test]
    fn sorted_pages_compare_positions_through_parameters() {
        let hostile = "it's \"x\"; DROP TABLE t; --";
        let table = Table {
            name: "t".into(),
            columns: vec![column(hostile, FieldType::Text), column("n", FieldType::Integer)],
        };
        let name = DatasetName::new("t").unwrap();
        let query = FeatureQuery {
            sort: vec![
                SortKey { key: hostile.into(), descending: false },
                SortKey { key: "n".into(), descending: true },
            ],
            after: Some(7),
            position: vec![SortValue::Text("' OR 1=1 --".into()), SortValue::Null],
            limit: 10,
            ..FeatureQuery::default()
        };
        let select = features_select(&name, &table, &query).unwrap();
        assert!(!select.sql.contains("DROP") && !select.sql.contains("OR 1=1"), "{}", select.sql);
        assert!(
            select.sql.contains(
                r#"ORDER BY "it's ""x""; drop table t; --" COLLATE "C" ASC NULLS LAST, "n" DESC NULLS FIRST, fid LIMIT"#
            ),
            "{}",
            select.sql
        );
        // The first key's run of values: bounded from the cursor's value; NULLs come after.
        assert!(select.sql.contains(r#" COLLATE "C" >= $"#), "{}", select.sql);
        assert!(!select.cache, "orders on several keys are not cached");
        let second = second_run_select(&name, &table, &query).unwrap().unwrap();
        assert!(second.sql.contains(r#" COLLATE "C" IS NULL"#), "{}", second.sql);
        let json = Table { name: "t".into(), columns: vec![column("j", FieldType::Json)] };
        let by_json =
            FeatureQuery { sort: vec![SortKey { key: "j".into(), descending: false }], ..FeatureQuery::default() };
        assert!(matches!(features_select(&name, &json, &by_json), Err(StoreError::Invalid(m)) if m.contains("\"j\"")));
    }

    #[test]
    fn loaded_bounds_round_inwards_to_microseconds() {
        let t = time::macros::datetime!(2026-01-31 12:00:00.000_001_500 UTC);
        assert_eq!(to_micros(t, true), time::macros::datetime!(2026-01-31 12:00:00.000_002 UTC));
        assert_eq!(to_micros(t, false), time::macros::datetime!(2026-01-31 12:00:00.000_001 UTC));
        let before_1970 = time::macros::datetime!(1969-12-31 23:59:59.999_999_500 UTC);
        assert_eq!(to_micros(before_1970, false), time::macros::datetime!(1969-12-31 23:59:59.999_999 UTC));
        let exact = time::macros::datetime!(2026-01-31 12:00:00.000_007 +02:00);
        assert_eq!((to_micros(exact, true), to_micros(exact, false)), (exact, exact));
    }

    #[test]
    fn keys_are_json_strings() {
        assert_eq!(json_key("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\":");
    }

    #[test]
    fn the_antimeridian_splits_the_box() {
        let table = Table { name: "t".into(), columns: vec![] };
        let name = DatasetName::new("t").unwrap();
        let bbox = |min_x, max_x| FeatureQuery {
            bbox: Some(Bbox { min_x, min_y: 0.0, max_x, max_y: 1.0 }),
            ..FeatureQuery::default()
        };
        let across = features_select(&name, &table, &bbox(170.0, -170.0)).unwrap().sql;
        assert!(across.contains(", 180, ") && across.contains("(-180, "), "{across}");
        let within = features_select(&name, &table, &bbox(-170.0, 170.0)).unwrap().sql;
        assert!(!within.contains("180"), "{within}");
        assert!(matches!(features_select(&name, &table, &bbox(f64::NAN, 1.0)), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn a_projection_selects_only_its_properties_and_may_leave_the_geometry_out() {
        let table =
            Table { name: "t".into(), columns: vec![column("a", FieldType::Text), column("b", FieldType::Integer)] };
        let name = DatasetName::new("t").unwrap();
        let query = FeatureQuery {
            fields: Some(vec!["b".into()]),
            skip_geometry: true,
            properties: vec![("a".into(), "x".into())],
            limit: 10,
            ..FeatureQuery::default()
        };
        let select = features_select(&name, &table, &query).unwrap();
        assert!(select.sql.contains("SELECT fid, NULL::text, "), "{}", select.sql);
        assert!(!select.sql.contains("ST_AsGeoJSON(geom"), "{}", select.sql);
        // One member (b's), yet the filter on a still applies; not cached, as projections vary.
        assert_eq!(select.sql.matches("coalesce(").count(), 1, "{}", select.sql);
        assert!(select.sql.contains(r#""a""#), "{}", select.sql);
        assert!(!select.cache);
    }

    #[test]
    fn forward_bbox_pages_read_a_window_first() {
        let table = Table { name: "t".into(), columns: vec![column("k", FieldType::Text)] };
        let name = DatasetName::new("t").unwrap();
        let query = FeatureQuery {
            bbox: Some(Bbox { min_x: 170.0, min_y: 0.0, max_x: -170.0, max_y: 1.0 }),
            properties: vec![("k".into(), "v".into())],
            after: Some(7),
            limit: 10,
            ..FeatureQuery::default()
        };
        let window = window_select(&name, &table, &query).unwrap().unwrap();
        // Key, box, property value, cursor; the limits are written in the cached statement.
        assert_eq!(window.params.len(), 7, "{}", window.sql);
        assert!(window.cache, "{}", window.sql);
        let rows = format!("WHERE fid > $7::bigint ORDER BY fid LIMIT {}) AS w", 10 * WINDOW_ROWS_PER_FEATURE);
        assert!(window.sql.contains(&rows), "{}", window.sql);
        // Across the antimeridian: the stored extents first, then the exact test on both parts.
        let coarse = "WHERE (gf_max_x >= $2::double precision OR gf_min_x <= $4::double precision) \
                      AND gf_max_y >= $3::double precision AND gf_min_y <= $5::double precision";
        assert!(window.sql.contains(coarse), "{}", window.sql);
        assert!(
            window.sql.contains("ST_Intersects(geom, ST_MakeEnvelope(-180, $3::double precision"),
            "{}",
            window.sql
        );
        assert!(window.sql.ends_with("ORDER BY fid LIMIT 10\n"), "{}", window.sql);
        // With several property filters, not cached, the limits are parameters.
        let two =
            FeatureQuery { properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())], ..query.clone() };
        let window = window_select(&name, &table, &two).unwrap().unwrap();
        assert!(!window.cache && window.sql.ends_with("ORDER BY fid LIMIT $10::bigint\n"), "{}", window.sql);
        let before = FeatureQuery { before: Some(9), ..query.clone() };
        assert!(window_select(&name, &table, &before).unwrap().is_none());
        let unboxed = FeatureQuery { bbox: None, ..query };
        assert!(window_select(&name, &table, &unboxed).unwrap().is_none());
    }

    #[test]
    fn geometries_in_another_crs_are_transformed_by_a_bound_srid() {
        use geoflow_core::geometry::Pos;
        use geoflow_core::served_crs::{CrsId, CrsUnit, Projection};
        #[derive(Debug)]
        struct Unused;
        impl Projection for Unused {
            fn wgs84_to_crs(&self, _: &mut [Pos]) -> Result<(), String> {
                unreachable!("PostGIS transforms")
            }
            fn to_wgs84(&self, _: &mut [Pos]) -> Result<(), String> {
                unreachable!("PostGIS transforms")
            }
        }
        let table = Table { name: "t".into(), columns: vec![column("k", FieldType::Text)] };
        let name = DatasetName::new("t").unwrap();
        let in_crs = |crs| FeatureQuery { crs: Some(crs), limit: 10, ..FeatureQuery::default() };
        let lat_lon = ServedCrs::new(CrsId::Epsg(4326), true, CrsUnit::Degrees, None);
        let select = features_select(&name, &table, &in_crs(lat_lon)).unwrap();
        assert!(select.sql.contains("SELECT fid, ST_AsGeoJSON(ST_FlipCoordinates(geom), 30, 0), "), "{}", select.sql);
        let laea = ServedCrs::new(CrsId::Epsg(3035), true, CrsUnit::Linear, Some(std::sync::Arc::new(Unused)));
        let select = features_select(&name, &table, &in_crs(laea)).unwrap();
        // The SRID is the first parameter: one cached statement for every CRS.
        assert!(
            select.sql.contains("ST_AsGeoJSON(ST_FlipCoordinates(ST_Transform(geom, $1::integer)), 4, 0)"),
            "{}",
            select.sql
        );
        assert!(select.cache);
    }

    #[test]
    fn placeholders_are_filled_once() {
        let table = Table { name: "{order}".into(), columns: vec![] };
        let sql = statement(
            &qualified(&table.name),
            "ST_AsGeoJSON(geom, 30, 0)",
            "''",
            &["x = '{table}'".into()],
            "ORDER BY fid",
        );
        assert!(sql.contains("FROM \"datasets\".\"{order}\""), "{sql}");
        assert!(sql.contains("x = '{table}'") && sql.contains("ORDER BY fid"), "{sql}");
        assert!(sql.contains("ST_AsGeoJSON(geom, 30, 0), ''"), "{sql}");
    }

    #[test]
    fn integral_coordinates_read_as_doubles() {
        let marked = |g: &str| {
            let mut out = String::new();
            push_geometry(&mut out, g);
            out
        };
        assert_eq!(marked(r#"{"type":"Point","coordinates":[1,0.5]}"#), r#"{"type":"Point","coordinates":[1.0,0.5]}"#);
        assert_eq!(
            marked(
                r#"{"type":"GeometryCollection","geometries":[{"type":"LineString","coordinates":[[0,-1e+20],[-3,0.5],[1e-9,-70]]}]}"#
            ),
            r#"{"type":"GeometryCollection","geometries":[{"type":"LineString","coordinates":[[0.0,-1e+20],[-3.0,0.5],[1e-9,-70.0]]}]}"#
        );
        assert_eq!(marked(r#"{"type":"Point","coordinates":[]}"#), r#"{"type":"Point","coordinates":[]}"#);
        assert_eq!(
            marked(r#"{"type":"Point","coordinates":[12.25,-0.125,3]}"#),
            r#"{"type":"Point","coordinates":[12.25,-0.125,3.0]}"#
        );
    }
}
