//! Reading a dataset's features back as GeoJSON text, written straight from each row: the
//! GeoPackage binary geometry is decoded here and property values are written from their
//! stored form by their column type, so no feature passes through an intermediate model.
//!
//! Reads run on pooled connections of their own. The file is in WAL mode, so a read sees the
//! last commit and neither waits for a load in progress nor holds one up. A page is read in
//! one read transaction (the catalog and the rows from one snapshot) on a blocking thread
//! that sends features over a small channel: a page is never held in memory whole, and the
//! thread stops when the receiver is dropped.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use geo::{coord, Intersects, Rect};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row, Rows};
use time::{Duration, OffsetDateTime, UtcOffset};
use tokio::sync::{mpsc, oneshot};

use geoflow_core::dataset::DatasetName;
use geoflow_core::geometry::Pos;
use geoflow_core::row::{Bbox, GeometryKind};
use geoflow_core::schema::FieldType;
use geoflow_core::served_crs::ServedCrs;
use geoflow_core::value::{PropValue, F64_EXACT_INT};
use geoflow_core::wkb::{self, Header, Part, Reason, Visitor, WkbError};

use super::geometry::{parse_header, Envelope};
use super::rtree::rtree_name;
use super::table::{column_expr, quote, read_layout, PropertyColumns, PropertyValue};
use super::{to_rfc3339, Ctx, BUSY_TIMEOUT};
use crate::features::{keyset_condition, sort_columns, sort_order, Placeholder, Runs, SortColumn, SortValue};
use crate::layout::Layout;
use crate::{FeatureQuery, FeatureStream, StoreError, StoredFeature};

/// Features buffered between the reading thread and the consumer: enough to keep both busy,
/// small enough that a slow client holds little memory.
const CHANNEL_CAPACITY: usize = 16;

/// Idle read connections kept for reuse (more are opened when more requests read at once).
const MAX_IDLE_READERS: usize = 8;

/// Idle read connections, so that a request does not pay for opening one and parsing the
/// schema (a dataset table may have hundreds of columns).
#[derive(Default)]
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle = self.idle.lock().map_or(0, |v| v.len());
        f.debug_struct("Readers").field("idle", &idle).finish()
    }
}

impl Readers {
    pub(super) fn take(self: &Arc<Self>, path: &Path) -> Result<Reader, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(path)?,
        };
        Ok(Reader { conn: Some(conn), pool: Arc::clone(self) })
    }
}

/// A pooled connection, given back when dropped unless a transaction was left open.
pub(super) struct Reader {
    conn: Option<Connection>,
    pool: Arc<Readers>,
}

impl Reader {
    pub(super) fn conn(&self) -> Result<&Connection, StoreError> {
        self.conn.as_ref().ok_or_else(|| StoreError::Internal("the read connection was given back".into()))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(Connection::is_autocommit) {
            let mut idle = self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

/// A connection that only reads. Opened read-write (with `query_only`) rather than read-only:
/// a read-only connection cannot create the WAL index when no other connection has it open.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_error =
        |e: rusqlite::Error| StoreError::Open { location: path.display().to_string(), reason: e.to_string() };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    conn.execute_batch("PRAGMA query_only = ON").map_err(open_error)?;
    // Overflow properties are read through `gf_member`.
    super::table::register_functions(&conn).map_err(open_error)?;
    // Spatial filters are decided through `gf_relate`.
    super::filter::register_functions(&conn).map_err(open_error)?;
    Ok(conn)
}

/// The features of `dataset` matching `query`, as a stream fed by a blocking thread.
/// Unknown datasets and property keys are errors of this call, not of the stream.
pub(crate) async fn stream(
    path: Arc<PathBuf>,
    readers: Arc<Readers>,
    dataset: DatasetName,
    query: FeatureQuery,
) -> Result<FeatureStream, StoreError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let task = tokio::task::spawn_blocking(move || serve(&path, &readers, &dataset, &query, ready_tx, &tx));
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(match task.await {
                Err(e) => StoreError::db("reading features", e),
                Ok(()) => StoreError::db("reading features", NoAnswer),
            })
        }
    }
    let stream = futures_util::stream::unfold((rx, Some(task)), |(mut rx, task)| async move {
        if let Some(item) = rx.recv().await {
            return Some((item, (rx, task)));
        }
        // The thread is done; had it panicked, the page would otherwise look complete.
        match task?.await {
            Ok(()) => None,
            Err(e) => Some((Err(StoreError::db("reading features", e)), (rx, None))),
        }
    });
    Ok(stream.boxed())
}

#[derive(Debug, thiserror::Error)]
#[error("the reading thread ended without an answer")]
struct NoAnswer;

/// Runs on the blocking thread: answers `ready` once the query is checked, then sends the
/// features; an error after `ready` is the last item of the stream.
fn serve(
    path: &Path,
    readers: &Arc<Readers>,
    dataset: &DatasetName,
    query: &FeatureQuery,
    ready: oneshot::Sender<Result<(), StoreError>>,
    tx: &mpsc::Sender<Result<StoredFeature, StoreError>>,
) {
    let mut ready = Some(ready);
    let result = readers.take(path).and_then(|reader| send_page(path, reader.conn()?, dataset, query, &mut ready, tx));
    if let Err(e) = result {
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Err(e));
            }
            None => {
                let _ = tx.blocking_send(Err(e));
            }
        }
    }
}

fn send_page(
    path: &Path,
    conn: &Connection,
    dataset: &DatasetName,
    query: &FeatureQuery,
    ready: &mut Option<oneshot::Sender<Result<(), StoreError>>>,
    tx: &mpsc::Sender<Result<StoredFeature, StoreError>>,
) -> Result<(), StoreError> {
    const CONTEXT: &str = "reading features";
    // One snapshot for the catalog and the rows: a load that widens the table meanwhile
    // cannot change the columns under the statement.
    let snapshot = conn.unchecked_transaction().ctx(CONTEXT)?;
    let layout = dataset_layout(&snapshot, dataset)?;
    let select = Select::new(&layout, query)?;
    if let Some(ready) = ready.take() {
        if ready.send(Ok(())).is_err() {
            return Ok(());
        }
    }
    let Some(select) = select else {
        return Ok(());
    };
    let mut page = Page { writer: FeatureWriter::new(path, &layout, query), tx, sent: 0, after: query.after };
    // A page before a cursor is read backwards in one statement (the caller puts it back in
    // order); a sorted page is read in its order, not in fid order.
    if query.before.is_none() && select.keyset.is_none() && covers_most_of(&snapshot, &layout.table, &select.boxes)? {
        // Most rows match: reading in fid order finds a page sooner than collecting every
        // candidate from the R-tree would. Should the rows be sparse after all, the budget
        // runs out and the R-tree takes over from the last fid read.
        let budget = select.limit.saturating_mul(SCAN_ROWS_PER_FEATURE);
        let (sql, params) = select.sql(false, page.after);
        let mut stmt = snapshot.prepare(&sql).ctx(CONTEXT)?;
        let mut rows = stmt.query(params_from_iter(&params)).ctx(CONTEXT)?;
        if page.pump(&mut rows, &select, Some(budget))? == Pump::Done {
            return Ok(());
        }
    }
    let (sql, params) = select.sql(true, page.after);
    let mut stmt = snapshot.prepare(&sql).ctx(CONTEXT)?;
    let mut rows = stmt.query(params_from_iter(&params)).ctx(CONTEXT)?;
    page.pump(&mut rows, &select, None)?;
    Ok(())
}

/// Rows read in fid order per feature of the page, at most, before the R-tree takes over.
const SCAN_ROWS_PER_FEATURE: usize = 10;

/// The share of the dataset's extent above which a bbox is read in fid order first.
const DENSE_COVERAGE: f64 = 0.5;

/// Whether `boxes` cover most of the table's extent (as `gpkg_contents` records it).
fn covers_most_of(conn: &Connection, table: &str, boxes: &[Rect<f64>]) -> Result<bool, StoreError> {
    if boxes.is_empty() {
        return Ok(false);
    }
    let extent: Option<[Option<f64>; 4]> = conn
        .prepare_cached("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?1")
        .and_then(|mut s| s.query_row([table], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?])).optional())
        .ctx("reading the dataset extent")?;
    let Some([Some(min_x), Some(min_y), Some(max_x), Some(max_y)]) = extent else {
        return Ok(false);
    };
    // The share of [lo, hi] within [min, max]; a degenerate extent is in or out.
    let share = |lo: f64, hi: f64, min: f64, max: f64| {
        if max > min {
            ((hi.min(max) - lo.max(min)) / (max - min)).max(0.0)
        } else if lo <= min && min <= hi {
            1.0
        } else {
            0.0
        }
    };
    let covered: f64 = boxes
        .iter()
        .map(|r| share(r.min().x, r.max().x, min_x, max_x) * share(r.min().y, r.max().y, min_y, max_y))
        .sum();
    Ok(covered >= DENSE_COVERAGE)
}

/// A page being sent.
struct Page<'a> {
    writer: FeatureWriter<'a>,
    tx: &'a mpsc::Sender<Result<StoredFeature, StoreError>>,
    sent: usize,
    /// The last fid read.
    after: Option<i64>,
}

#[derive(Debug, PartialEq)]
enum Pump {
    /// The page is full, the rows ran out, or the consumer is gone.
    Done,
    /// `budget` rows were read without filling the page.
    OutOfBudget,
}

impl Page<'_> {
    /// Sends the matching rows of `rows` until the page is full or `budget` rows were read.
    fn pump(&mut self, rows: &mut Rows<'_>, select: &Select, budget: Option<usize>) -> Result<Pump, StoreError> {
        const CONTEXT: &str = "reading features";
        let mut read = 0;
        while self.sent < select.limit {
            if budget.is_some_and(|b| read >= b) {
                return Ok(Pump::OutOfBudget);
            }
            let Some(row) = rows.next().ctx(CONTEXT)? else {
                break;
            };
            read += 1;
            let fid: i64 = row.get(0).ctx(CONTEXT)?;
            self.after = Some(fid);
            let geom = row.get_ref(1).ctx(CONTEXT)?;
            if !select.boxes.is_empty() && !self.writer.intersects(fid, geom, &select.boxes)? {
                continue;
            }
            let json = self.writer.feature(fid, row)?;
            let sort_values = select.sort_values(row)?;
            if self.tx.blocking_send(Ok(StoredFeature { fid, json, sort_values })).is_err() {
                // The consumer is gone: stop reading.
                break;
            }
            self.sent += 1;
        }
        Ok(Pump::Done)
    }
}

/// One feature by fid.
pub(crate) fn one(
    path: &Path,
    readers: &Arc<Readers>,
    dataset: &DatasetName,
    fid: i64,
    crs: Option<ServedCrs>,
) -> Result<Option<StoredFeature>, StoreError> {
    const CONTEXT: &str = "reading a feature";
    let reader = readers.take(path)?;
    let snapshot = reader.conn()?.unchecked_transaction().ctx(CONTEXT)?;
    let layout = dataset_layout(&snapshot, dataset)?;
    let sql = format!("SELECT {} FROM {} WHERE fid = ?1", select_list(&layout), quote(&layout.table));
    let mut stmt = snapshot.prepare_cached(&sql).ctx(CONTEXT)?;
    let mut rows = stmt.query([fid]).ctx(CONTEXT)?;
    let Some(row) = rows.next().ctx(CONTEXT)? else {
        return Ok(None);
    };
    let json = FeatureWriter::new(path, &layout, &FeatureQuery { crs, ..FeatureQuery::default() }).feature(fid, row)?;
    Ok(Some(StoredFeature { fid, json, sort_values: Vec::new() }))
}

fn dataset_layout(conn: &Connection, dataset: &DatasetName) -> Result<Layout, StoreError> {
    read_layout(conn, dataset.as_str())?
        .ok_or_else(|| StoreError::NotFound { what: "dataset", id: dataset.as_str().to_string() })
}

/// `fid, geom` and the properties (what [`FeatureWriter`] reads).
fn select_list(layout: &Layout) -> String {
    format!("fid, geom{}", PropertyColumns::new(layout, 2).0)
}

/// The statement of a query, with every input value a bound parameter.
struct Select {
    /// `fid, geom, properties…` of the table.
    head: String,
    /// The conditions besides the bbox and the cursor, and their parameters.
    conditions: Vec<String>,
    params: Vec<Value>,
    /// The R-tree condition of the bbox, and its parameters.
    candidates: Option<(String, Vec<Value>)>,
    /// The exact boxes the candidates are tested against; empty when there is no bbox.
    boxes: Vec<Rect<f64>>,
    limit: usize,
    /// Read backwards from this fid: the page before it.
    before: Option<i64>,
    /// The `ORDER BY` list.
    order: String,
    /// Of a sorted page: the condition of the rows after (or before) the cursor and its
    /// parameters, which replace the fid cursor's; `None` without a cursor. A sorted page is
    /// read in one statement, never continued from a fid.
    keyset: Option<(String, Vec<Value>)>,
    /// Where each sort value is in a row, and its type.
    sort_at: Vec<(usize, FieldType)>,
}

impl Select {
    /// `None` when no feature can match (an impossible value, an empty interval, no limit).
    fn new(layout: &Layout, query: &FeatureQuery) -> Result<Option<Select>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        let mut possible = true;
        let sort = sort_columns(&layout.table, &layout.columns, query)?;
        let backwards = query.before.is_some();
        let (order, keyset) = if sort.is_empty() {
            ((if backwards { "fid DESC" } else { "fid" }).to_string(), None)
        } else {
            let mut values = Vec::new();
            let keyset = match query.after.or(query.before) {
                Some(fid) => {
                    let condition =
                        keyset_condition(&sort, fid, backwards, Runs::Both, &sort_expr, &mut |placeholder| {
                            values.push(match placeholder {
                                Placeholder::Fid(fid) => Value::Integer(fid),
                                Placeholder::Value(v, _) => sort_value(v),
                            });
                            Ok("?".to_string())
                        })?;
                    Some((condition, values))
                }
                // The first page: an always-true keyset keeps the page off the fid-order path.
                None => Some(("1".to_string(), values)),
            };
            (sort_order(&sort, backwards, sort_expr), keyset)
        };
        let columns = PropertyColumns::new(layout, 2).1;
        let sort_at = sort
            .iter()
            .map(|k| {
                let index = layout.columns.iter().position(|c| c.key == k.column.key);
                let at = index.and_then(|i| columns.position(i));
                at.map(|at| (at, k.column.ty))
                    .ok_or_else(|| StoreError::Internal(format!("sort key {:?} is not a column", k.column.key)))
            })
            .collect::<Result<Vec<_>, _>>()?;

        // Every key is checked before anything else decides that nothing matches.
        for (key, value) in &query.properties {
            let column =
                layout.columns.iter().find(|c| c.key == *key).ok_or_else(|| {
                    StoreError::Invalid(format!("dataset {:?} has no property {key:?}", layout.table))
                })?;
            let c = column_expr(column);
            match equality(column.ty, value) {
                None => possible = false,
                Some(Equality::Stored(v)) => {
                    conditions.push(format!("{c} = ?"));
                    params.push(v);
                }
                Some(Equality::Json { string, other }) => {
                    // A JSON string matches by its characters, anything else by its text.
                    conditions.push(format!("({c} = ? OR ({c} = ? AND substr({c}, 1, 1) <> '\"'))"));
                    params.push(Value::Text(string));
                    params.push(Value::Text(other));
                }
            }
        }

        if let Some(filter) = &query.filter {
            conditions.push(super::filter::condition(layout, filter, &mut params)?);
        }

        if let Some((from, to)) = query.loaded {
            for (bound, lower) in [(from, true), (to, false)] {
                match bound.map(|t| loaded_edge(t, lower)).transpose()? {
                    None | Some(Edge::Unbounded) => {}
                    Some(Edge::Empty) => possible = false,
                    Some(Edge::At(text)) => {
                        conditions.push(format!("gf_loaded_at {} ?", if lower { ">=" } else { "<=" }));
                        params.push(Value::Text(text));
                    }
                }
            }
        }

        if let Some(t) = &query.temporal {
            match temporal_condition(layout, t)? {
                Some((condition, values)) => {
                    conditions.push(condition);
                    params.extend(values);
                }
                None => possible = false,
            }
        }

        let mut boxes = Vec::new();
        let mut candidates = None;
        if let Some(b) = query.bbox {
            boxes = query_boxes(&b);
            if boxes.is_empty() {
                possible = false;
            }
            let rtree = quote(&rtree_name(&layout.table));
            let selects: Vec<String> = boxes
                .iter()
                .map(|_| format!("SELECT id FROM {rtree} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?"))
                .collect();
            let values = boxes.iter().flat_map(|r| [r.max().x, r.min().x, r.max().y, r.min().y].map(Value::Real));
            // SQLite walks the IN list in order: candidates come in fid order, unsorted.
            candidates = Some((format!("fid IN ({})", selects.join(" UNION ALL ")), values.collect()));
        }

        if !possible || query.limit == 0 {
            return Ok(None);
        }
        let head = format!("SELECT {} FROM {}", select_list(layout), quote(&layout.table));
        Ok(Some(Select {
            head,
            conditions,
            params,
            candidates,
            boxes,
            limit: query.limit,
            before: query.before,
            order,
            keyset,
            sort_at,
        }))
    }

    /// The sort values of a row of this statement.
    fn sort_values(&self, row: &Row<'_>) -> Result<Vec<SortValue>, StoreError> {
        self.sort_at
            .iter()
            .map(|&(at, ty)| {
                Ok(match row.get_ref(at).ctx("reading sort values")? {
                    ValueRef::Null => SortValue::Null,
                    ValueRef::Integer(i) if ty == FieldType::Boolean => SortValue::Bool(i != 0),
                    ValueRef::Integer(i) if ty == FieldType::Real => SortValue::Real(i as f64),
                    ValueRef::Integer(i) => SortValue::Int(i),
                    ValueRef::Real(f) => SortValue::Real(f),
                    ValueRef::Text(t) | ValueRef::Blob(t) => SortValue::Text(String::from_utf8_lossy(t).into_owned()),
                })
            })
            .collect()
    }

    /// The statement for the rows after `after`, with the R-tree candidates or without.
    fn sql(&self, rtree: bool, after: Option<i64>) -> (String, Vec<Value>) {
        let mut conditions: Vec<&str> = self.conditions.iter().map(String::as_str).collect();
        let mut params = self.params.clone();
        if let Some((condition, values)) = self.candidates.as_ref().filter(|_| rtree) {
            conditions.push(condition);
            params.extend(values.iter().cloned());
        }
        if let Some((condition, values)) = &self.keyset {
            conditions.push(condition);
            params.extend(values.iter().cloned());
        } else {
            if let Some(after) = after {
                conditions.push("fid > ?");
                params.push(Value::Integer(after));
            }
            if let Some(before) = self.before {
                conditions.push("fid < ?");
                params.push(Value::Integer(before));
            }
        }
        let mut sql = self.head.clone();
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(&self.order);
        if self.boxes.is_empty() {
            // With a bbox some rows fail the exact test: the reader stops at the limit.
            sql.push_str(" LIMIT ?");
            params.push(Value::Integer(i64::try_from(self.limit).unwrap_or(i64::MAX)));
        }
        (sql, params)
    }
}

/// A sort key's column as it compares: text by its bytes (code points), as PostgreSQL's `"C"`
/// collation compares.
fn sort_expr(k: &SortColumn) -> String {
    match k.column.ty {
        FieldType::Text => format!("{} COLLATE BINARY", quote(&k.column.name)),
        _ => quote(&k.column.name),
    }
}

/// A cursor's sort value as SQLite stores it (dates and date-times as their text).
fn sort_value(v: &SortValue) -> Value {
    match v {
        SortValue::Null => Value::Null,
        SortValue::Bool(b) => Value::Integer(i64::from(*b)),
        SortValue::Int(i) => Value::Integer(*i),
        SortValue::Real(f) => Value::Real(*f),
        SortValue::Text(s) => Value::Text(s.clone()),
    }
}

/// The boxes a bbox stands for: two across the antimeridian (`min_x > max_x`), none when a
/// bound is NaN. The y bounds may come in either order, as in PostGIS's `ST_MakeEnvelope`.
fn query_boxes(b: &Bbox) -> Vec<Rect<f64>> {
    if [b.min_x, b.min_y, b.max_x, b.max_y].iter().any(|v| v.is_nan()) {
        return Vec::new();
    }
    let (min_y, max_y) = (b.min_y.min(b.max_y), b.min_y.max(b.max_y));
    let spans = if b.min_x > b.max_x { vec![(b.min_x, 180.0), (-180.0, b.max_x)] } else { vec![(b.min_x, b.max_x)] };
    spans
        .into_iter()
        .filter(|(lo, hi)| lo <= hi)
        .map(|(lo, hi)| Rect::new(coord! { x: lo, y: min_y }, coord! { x: hi, y: max_y }))
        .collect()
}

/// How a property filter value compares with the stored values of its column.
enum Equality {
    /// Equal to this stored value.
    Stored(Value),
    /// A JSON column: the value as a JSON string, or as the stored JSON text of a non-string.
    Json { string: String, other: String },
}

/// The stored value equal to the filter `value` for a column of type `ty`, compared as the
/// features are written: strings by their characters, booleans as `true`/`false`, numbers
/// by their JSON value. `None` when no stored value can be equal.
fn equality(ty: FieldType, value: &str) -> Option<Equality> {
    let stored = match ty {
        FieldType::Null => return None,
        FieldType::Boolean => match value {
            "true" => Value::Integer(1),
            "false" => Value::Integer(0),
            _ => return None,
        },
        FieldType::Integer | FieldType::WideInteger => match json_number(value)? {
            PropValue::Int(i) => Value::Integer(i),
            _ => return None,
        },
        // The loader keeps a real by its value ("1.50" is stored as 1.5, an integer as its
        // double), so the value is what compares.
        FieldType::Real => match json_number(value)? {
            PropValue::Int(i) if i.unsigned_abs() <= F64_EXACT_INT as u64 => Value::Real(i as f64),
            PropValue::Real(f) => Value::Real(f),
            _ => return None,
        },
        FieldType::Date | FieldType::DateTime | FieldType::Text => Value::Text(value.to_string()),
        FieldType::Json => {
            let string = serde_json::to_string(value).ok()?;
            return Some(Equality::Json { string, other: value.to_string() });
        }
    };
    Some(Equality::Stored(stored))
}

/// `value` as the loader classifies a number, when it is a JSON number's text exactly.
fn json_number(value: &str) -> Option<PropValue> {
    let b = value.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    (i == b.len()).then(|| PropValue::from_raw_json(value))
}

enum Edge {
    Unbounded,
    Empty,
    At(String),
}

/// One end of the closed `loaded` interval as text comparable with `gf_loaded_at`, which is
/// stored to the millisecond: a lower bound rounds up, an upper bound down (the format
/// truncates), so that the text comparison is exact.
fn loaded_edge(t: OffsetDateTime, lower: bool) -> Result<Edge, StoreError> {
    let too_late = if lower { Edge::Empty } else { Edge::Unbounded };
    let too_early = if lower { Edge::Unbounded } else { Edge::Empty };
    let Some(mut utc) = t.checked_to_offset(UtcOffset::UTC) else {
        return Ok(if t.year() > 0 { too_late } else { too_early });
    };
    let rest = utc.nanosecond() % 1_000_000;
    if lower && rest != 0 {
        match utc.checked_add(Duration::nanoseconds(i64::from(1_000_000 - rest))) {
            Some(up) => utc = up,
            None => return Ok(too_late),
        }
    }
    Ok(match utc.year() {
        i32::MIN..=-1 => too_early,
        10_000.. => too_late,
        _ => Edge::At(to_rfc3339(utc)?),
    })
}

/// One end of an interval as text comparable with a date or date-time column: a date column
/// compares with the instant's UTC day (a day starts no later than an instant on or after it,
/// and ends no earlier than one on or before it).
fn temporal_edge(ty: FieldType, t: OffsetDateTime, lower: bool) -> Result<Edge, StoreError> {
    if ty != FieldType::Date {
        return loaded_edge(t, lower);
    }
    let (too_early, too_late) = if lower { (Edge::Unbounded, Edge::Empty) } else { (Edge::Empty, Edge::Unbounded) };
    let Some(utc) = t.checked_to_offset(UtcOffset::UTC) else {
        return Ok(if t.year() > 0 { too_late } else { too_early });
    };
    Ok(match utc.year() {
        i32::MIN..=-1 => too_early,
        10_000.. => too_late,
        _ => Edge::At(to_rfc3339(utc)?[..10].to_string()),
    })
}

/// The condition that a feature's time meets the filter's interval (its start no later than
/// the interval's end, its end no earlier than its start), and its parameters; `None` when no
/// feature can.
fn temporal_condition(layout: &Layout, t: &crate::TemporalFilter) -> Result<Option<(String, Vec<Value>)>, StoreError> {
    let (start, end) = crate::layout::temporal_columns(&layout.columns, &layout.table, &t.properties)?;
    let mut parts = Vec::new();
    let mut values = Vec::new();
    // `column op edge`: `None` when it always holds, `Some(None)` when it never does.
    let mut compare = |c: &crate::layout::Column, op: &str, at: Option<OffsetDateTime>, lower: bool| {
        let Some(at) = at else { return Ok::<_, StoreError>(None) };
        Ok(match temporal_edge(c.ty, at, lower)? {
            Edge::Unbounded => None,
            Edge::Empty => Some(None),
            Edge::At(text) => {
                values.push(Value::Text(text));
                Some(Some(format!("{} {op} ?", column_expr(c))))
            }
        })
    };
    let (before_end, after_start) = match end {
        None => {
            parts.push(format!("{} IS NOT NULL", column_expr(start)));
            (compare(start, "<=", t.to, false)?, compare(start, ">=", t.from, true)?)
        }
        Some(end) => {
            parts.push(format!("({} IS NOT NULL OR {} IS NOT NULL)", column_expr(start), column_expr(end)));
            (compare(start, "<=", t.to, false)?, compare(end, ">=", t.from, true)?)
        }
    };
    // With an interval, a null end is open: it meets any bound on its side.
    for (comparison, c) in [(before_end, start), (after_start, end.unwrap_or(start))] {
        let open = end.map(|_| format!("{} IS NULL", column_expr(c)));
        match (comparison, open) {
            (None, _) => {}
            (Some(None), None) => return Ok(None),
            (Some(None), Some(open)) => parts.push(open),
            (Some(Some(test)), None) => parts.push(test),
            (Some(Some(test)), Some(open)) => parts.push(format!("({open} OR {test})")),
        }
    }
    Ok(Some((format!("({})", parts.join(" AND ")), values)))
}

/// The start or end instant of a date or date-time column's values as RFC 3339 text: a date's
/// day starts at its midnight (UTC) and ends at the next.
fn instant_text(ty: FieldType, value: Option<String>, end: bool) -> Result<Option<String>, StoreError> {
    let Some(value) = value else { return Ok(None) };
    if ty != FieldType::Date {
        return Ok(Some(value));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(&value, &format).map_err(|e| StoreError::db("reading a stored date", e))?;
    let day = if end { day.next_day().unwrap_or(day) } else { day };
    to_rfc3339(day.midnight().assume_utc()).map(Some)
}

pub(crate) fn time_extent(
    path: &Path,
    readers: &Arc<Readers>,
    dataset: &DatasetName,
    temporal: Option<&crate::Temporal>,
) -> Result<crate::TimeExtent, StoreError> {
    const CONTEXT: &str = "reading a dataset's extent in time";
    let reader = readers.take(path)?;
    let snapshot = reader.conn()?.unchecked_transaction().ctx(CONTEXT)?;
    let layout = dataset_layout(&snapshot, dataset)?;
    let table = quote(&layout.table);
    let Some(t) = temporal else {
        let sql = format!("SELECT min(gf_loaded_at), max(gf_loaded_at) FROM {table}");
        return snapshot.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?))).ctx(CONTEXT);
    };
    let (start, end) = crate::layout::temporal_columns(&layout.columns, dataset.as_str(), t)?;
    let (s, e) = (column_expr(start), column_expr(end.unwrap_or(start)));
    // An open end that some feature leaves open stays open.
    let sql = match end {
        None => format!("SELECT min({s}), max({s}), 0, 0 FROM {table}"),
        Some(_) => format!(
            "SELECT min({s}), max({e}), max({s} IS NULL AND {e} IS NOT NULL), max({e} IS NULL AND {s} IS NOT NULL) \
             FROM {table}"
        ),
    };
    let (first, last, open_start, open_end): (Option<String>, Option<String>, Option<bool>, Option<bool>) =
        snapshot.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).ctx(CONTEXT)?;
    let first = if open_start == Some(true) { None } else { instant_text(start.ty, first, false)? };
    let last = if open_end == Some(true) { None } else { instant_text(end.unwrap_or(start).ty, last, true)? };
    Ok((first, last))
}

/// Writes features of one dataset table as GeoJSON text.
struct FeatureWriter<'a> {
    path: &'a Path,
    table: &'a str,
    /// Per property: `"key":` (escaped), the column type, and whether features show it.
    properties: Vec<(String, FieldType, bool)>,
    columns: PropertyColumns,
    skip_geometry: bool,
    /// The CRS geometries are written in; `None` as stored.
    crs: Option<ServedCrs>,
}

impl<'a> FeatureWriter<'a> {
    /// Writes what `query` shows of each feature.
    fn new(path: &'a Path, layout: &'a Layout, query: &FeatureQuery) -> FeatureWriter<'a> {
        let properties = layout
            .columns
            .iter()
            .map(|c| {
                let mut key = String::with_capacity(c.key.len() + 3);
                write_string(&mut key, &c.key);
                key.push(':');
                (key, c.ty, query.shows(&c.key))
            })
            .collect();
        FeatureWriter {
            path,
            table: &layout.table,
            properties,
            columns: PropertyColumns::new(layout, 2).1,
            skip_geometry: query.skip_geometry,
            crs: query.crs.clone().filter(|c| !c.is_stored_crs()),
        }
    }

    fn corrupt(&self, fid: i64, what: &str) -> StoreError {
        StoreError::Incompatible {
            location: self.path.display().to_string(),
            reason: format!("feature {fid} of table {:?} {what}", self.table),
        }
    }

    fn malformed(&self, fid: i64, e: WkbError) -> StoreError {
        self.corrupt(fid, &format!("has a geometry that is not well-formed WKB ({e})"))
    }

    /// The row (`fid, geom, properties…`) as one GeoJSON Feature.
    fn feature(&self, fid: i64, row: &Row<'_>) -> Result<String, StoreError> {
        const CONTEXT: &str = "reading a feature's columns";
        let mut out = String::with_capacity(256);
        let _ = write!(out, r#"{{"type":"Feature","id":{fid},"geometry":"#);
        match row.get_ref(1).ctx(CONTEXT)? {
            _ if self.skip_geometry => out.push_str("null"),
            ValueRef::Null => out.push_str("null"),
            ValueRef::Blob(blob) => {
                let wkb = parse_header(blob)
                    .ok_or_else(|| self.corrupt(fid, "has a geometry without a GeoPackage header"))?
                    .wkb;
                write_geojson_in(wkb, &mut out, self.crs.as_ref()).map_err(|e| match e {
                    GeometryError::Wkb(e) => self.malformed(fid, e),
                    GeometryError::Transform(why) => StoreError::Invalid(format!(
                        "feature {fid} cannot be given in {}: its coordinates {why}",
                        self.crs.as_ref().map_or_else(String::new, ServedCrs::uri)
                    )),
                })?;
            }
            _ => return Err(self.corrupt(fid, "has a geometry that is not a blob")),
        }
        out.push_str(r#","properties":{"#);
        let mut written = 0;
        self.columns.each(row, |i, value| {
            let (key, ty, shown) = &self.properties[i];
            if !shown {
                return Ok(());
            }
            if written > 0 {
                out.push(',');
            }
            written += 1;
            out.push_str(key);
            match value {
                PropertyValue::Stored(value) => write_value(&mut out, *ty, value),
                PropertyValue::Member(Some(json)) => out.push_str(json.get()),
                PropertyValue::Member(None) => out.push_str("null"),
            }
            Ok(())
        })?;
        out.push_str("}}");
        Ok(out)
    }

    /// Whether the stored geometry intersects one of `boxes` (exactly, as PostGIS's
    /// `ST_Intersects` decides); the header envelope settles most candidates alone.
    fn intersects(&self, fid: i64, geom: ValueRef<'_>, boxes: &[Rect<f64>]) -> Result<bool, StoreError> {
        let ValueRef::Blob(blob) = geom else {
            return Ok(false);
        };
        let header =
            parse_header(blob).ok_or_else(|| self.corrupt(fid, "has a geometry without a GeoPackage header"))?;
        if header.empty {
            return Ok(false);
        }
        if let Some(env) = header.envelope.filter(|e| !e.min_x.is_nan()) {
            let overlaps: Vec<&Rect<f64>> = boxes.iter().filter(|r| overlaps(r, &env)).collect();
            if overlaps.is_empty() {
                return Ok(false);
            }
            if overlaps.iter().any(|r| contains(r, &env)) {
                return Ok(true);
            }
        }
        let geometry = to_geo(header.wkb).map_err(|e| self.malformed(fid, e))?;
        Ok(boxes.iter().any(|r| geometry.intersects(r)))
    }
}

fn overlaps(r: &Rect<f64>, e: &Envelope) -> bool {
    e.min_x <= r.max().x && e.max_x >= r.min().x && e.min_y <= r.max().y && e.max_y >= r.min().y
}

fn contains(r: &Rect<f64>, e: &Envelope) -> bool {
    e.min_x >= r.min().x && e.max_x <= r.max().x && e.min_y >= r.min().y && e.max_y <= r.max().y
}

/// A stored property value as JSON, by its column type (see how the loader stores each).
fn write_value(out: &mut String, ty: FieldType, value: ValueRef<'_>) {
    match (ty, value) {
        (_, ValueRef::Null) => out.push_str("null"),
        (FieldType::Boolean, ValueRef::Integer(i)) => out.push_str(if i != 0 { "true" } else { "false" }),
        // REAL affinity reads back as real; should an integer appear, it is still a real.
        (FieldType::Real, ValueRef::Integer(i)) => write_f64(out, i as f64),
        (FieldType::Json, ValueRef::Text(t)) => match std::str::from_utf8(t) {
            // Stored JSON text is written as is: exact numbers and nested values unchanged.
            Ok(s) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => out.push_str(s),
            _ => write_string(out, &String::from_utf8_lossy(t)),
        },
        (_, ValueRef::Integer(i)) => {
            let _ = write!(out, "{i}");
        }
        (_, ValueRef::Real(f)) => write_f64(out, f),
        (_, ValueRef::Text(t) | ValueRef::Blob(t)) => write_string(out, &String::from_utf8_lossy(t)),
    }
}

/// The shortest text that reads back as the same double (`1.0` stays `1.0`, as the core
/// writes reals); JSON has no NaN or infinity.
fn write_f64(out: &mut String, f: f64) {
    if f.is_finite() {
        out.push_str(ryu::Buffer::new().format_finite(f));
    } else {
        out.push_str("null");
    }
}

/// `s` as a JSON string.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Only ASCII bytes are escaped: `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes a WKB geometry as a GeoJSON geometry object.
#[cfg(test)]
fn write_geojson(wkb: &[u8], out: &mut String) -> Result<(), WkbError> {
    write_geojson_in(wkb, out, None).map_err(|e| match e {
        GeometryError::Wkb(e) => e,
        GeometryError::Transform(_) => unreachable!("no CRS, no transformation"),
    })
}

/// Why a stored geometry could not be written.
enum GeometryError {
    Wkb(WkbError),
    /// Its positions cannot be transformed to the CRS asked for.
    Transform(String),
}

/// Writes a WKB geometry as a GeoJSON geometry object in `crs` (`None`: as stored).
fn write_geojson_in(wkb: &[u8], out: &mut String, crs: Option<&ServedCrs>) -> Result<(), GeometryError> {
    let mut writer = GeoJsonWriter { out, in_point: false, crs, pending: Vec::new(), commas: Vec::new(), failed: None };
    match wkb::walk(wkb, &mut writer) {
        Ok(_) => Ok(()),
        Err(e) => Err(match writer.failed.take() {
            Some(why) => GeometryError::Transform(why),
            None => GeometryError::Wkb(e),
        }),
    }
}

/// Writes GeoJSON as the WKB is read: coordinates exact (the shortest text that reads back as
/// the same double), Z kept, M dropped (GeoJSON has none). Refuses what GeoJSON cannot say:
/// non-finite coordinates, and members of a multi-geometry of another kind.
///
/// In another CRS, the positions of each run (a line, a ring, a point) are held until the run
/// ends and transformed together, in one call to PROJ.
struct GeoJsonWriter<'a> {
    out: &'a mut String,
    /// Whether the position at hand is a point's, where NaN ordinates mean `POINT EMPTY`.
    in_point: bool,
    crs: Option<&'a ServedCrs>,
    /// Positions read and not yet written (only with a CRS), and whether a comma goes before each.
    pending: Vec<Pos>,
    commas: Vec<bool>,
    /// Why the positions could not be transformed.
    failed: Option<String>,
}

impl GeoJsonWriter<'_> {
    fn write_position(&mut self, comma: bool, x: f64, y: f64, z: Option<f64>) {
        if comma {
            self.out.push(',');
        }
        let mut buf = ryu::Buffer::new();
        self.out.push('[');
        self.out.push_str(buf.format_finite(x));
        self.out.push(',');
        self.out.push_str(buf.format_finite(y));
        if let Some(z) = z {
            self.out.push(',');
            self.out.push_str(buf.format_finite(z));
        }
        self.out.push(']');
    }

    /// Transforms and writes the positions held.
    fn flush(&mut self) -> Result<(), Reason> {
        let Some(crs) = self.crs.filter(|_| !self.pending.is_empty()) else { return Ok(()) };
        let mut positions = std::mem::take(&mut self.pending);
        let transformed = crs.wgs84_to_crs(&mut positions).and_then(|()| {
            match positions.iter().all(|p| p.x.is_finite() && p.y.is_finite()) {
                true => Ok(()),
                false => Err("leave the CRS's domain".to_string()),
            }
        });
        if let Err(why) = transformed {
            self.failed = Some(why);
            return Err(Reason::Refused("cannot be transformed"));
        }
        let commas = std::mem::take(&mut self.commas);
        for (p, comma) in positions.iter().zip(commas) {
            self.write_position(comma, p.x, p.y, p.has_z().then_some(p.z));
        }
        Ok(())
    }
}

impl Visitor for GeoJsonWriter<'_> {
    fn begin(&mut self, h: &Header, part: Part, _: u32) -> Result<(), Reason> {
        self.flush()?;
        // A member of a multi-geometry is its coordinates only; any other is an object.
        let member_of_multi = part.required_kind();
        if let (Some(required), Some(parent)) = (member_of_multi, part.parent) {
            if h.kind != required {
                return Err(Reason::MemberKind { parent, member: h.kind });
            }
        }
        if part.index > 0 {
            self.out.push(',');
        }
        if member_of_multi.is_none() {
            let _ = write!(self.out, r#"{{"type":"{}","#, h.kind.name());
            self.out.push_str(if h.kind == GeometryKind::GeometryCollection {
                r#""geometries":"#
            } else {
                r#""coordinates":"#
            });
        }
        self.in_point = h.kind == GeometryKind::Point;
        if !self.in_point {
            self.out.push('[');
        }
        Ok(())
    }

    fn begin_ring(&mut self, index: u32, _: u32) -> Result<(), Reason> {
        self.flush()?;
        if index > 0 {
            self.out.push(',');
        }
        self.out.push('[');
        Ok(())
    }

    fn position(&mut self, index: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
        if self.in_point && x.is_nan() && y.is_nan() {
            self.out.push_str("[]");
            return Ok(());
        }
        if !(x.is_finite() && y.is_finite() && z.is_none_or(f64::is_finite)) {
            return Err(Reason::NonFinite);
        }
        if self.crs.is_some() {
            self.pending.push(Pos { x, y, z: z.unwrap_or(f64::NAN) });
            self.commas.push(index > 0);
            return Ok(());
        }
        self.write_position(index > 0, x, y, z);
        Ok(())
    }

    fn end_ring(&mut self) -> Result<(), Reason> {
        self.flush()?;
        self.out.push(']');
        Ok(())
    }

    fn end(&mut self, h: &Header, part: Part) -> Result<(), Reason> {
        self.flush()?;
        if h.kind != GeometryKind::Point {
            self.out.push(']');
        }
        if part.required_kind().is_none() {
            self.out.push('}');
        }
        Ok(())
    }
}

/// The geometry in two dimensions, for the exact intersection test. Multi-geometries
/// become collections: a collection intersects what one of its members intersects.
pub(super) fn to_geo(wkb: &[u8]) -> Result<geo::Geometry<f64>, WkbError> {
    let mut builder = GeoBuilder::default();
    wkb::walk(wkb, &mut builder)?;
    Ok(builder.done.unwrap_or_else(|| geo::Geometry::GeometryCollection(geo::GeometryCollection::default())))
}

/// Builds a [`geo::Geometry`] as the WKB is read. Takes any member in any multi-geometry and
/// any coordinates: the intersection test copes with what the loader never writes.
#[derive(Default)]
struct GeoBuilder {
    /// The geometries begun and not yet ended, the innermost last.
    open: Vec<Building>,
    /// The positions of the line string or ring at hand.
    coords: Vec<geo::Coord<f64>>,
    done: Option<geo::Geometry<f64>>,
}

enum Building {
    /// `None` while empty (NaN ordinates).
    Point(Option<geo::Coord<f64>>),
    LineString,
    Polygon(Vec<geo::LineString<f64>>),
    Collection(Vec<geo::Geometry<f64>>),
}

impl Visitor for GeoBuilder {
    fn begin(&mut self, h: &Header, _: Part, len: u32) -> Result<(), Reason> {
        // `len` fits the bytes left: the capacities are bounded by the input.
        let len = len as usize;
        self.open.push(match h.kind {
            GeometryKind::Point => Building::Point(None),
            GeometryKind::LineString => {
                self.coords = Vec::with_capacity(len);
                Building::LineString
            }
            GeometryKind::Polygon => Building::Polygon(Vec::with_capacity(len)),
            _ => Building::Collection(Vec::with_capacity(len)),
        });
        Ok(())
    }

    fn begin_ring(&mut self, _: u32, len: u32) -> Result<(), Reason> {
        self.coords = Vec::with_capacity(len as usize);
        Ok(())
    }

    fn position(&mut self, _: u32, x: f64, y: f64, _: Option<f64>) -> Result<(), Reason> {
        match self.open.last_mut() {
            Some(Building::Point(point)) => {
                if !(x.is_nan() || y.is_nan()) {
                    *point = Some(coord! { x: x, y: y });
                }
            }
            _ => self.coords.push(coord! { x: x, y: y }),
        }
        Ok(())
    }

    fn end_ring(&mut self) -> Result<(), Reason> {
        if let Some(Building::Polygon(rings)) = self.open.last_mut() {
            rings.push(geo::LineString::new(std::mem::take(&mut self.coords)));
        }
        Ok(())
    }

    fn end(&mut self, _: &Header, _: Part) -> Result<(), Reason> {
        let geometry = match self.open.pop() {
            Some(Building::Point(Some(c))) => geo::Geometry::Point(c.into()),
            Some(Building::Point(None)) | None => geo::Geometry::GeometryCollection(geo::GeometryCollection::default()),
            Some(Building::LineString) => {
                geo::Geometry::LineString(geo::LineString::new(std::mem::take(&mut self.coords)))
            }
            Some(Building::Polygon(rings)) => {
                let mut rings = rings.into_iter();
                let exterior = rings.next().unwrap_or_else(|| geo::LineString::new(Vec::new()));
                geo::Geometry::Polygon(geo::Polygon::new(exterior, rings.collect()))
            }
            Some(Building::Collection(members)) => {
                geo::Geometry::GeometryCollection(geo::GeometryCollection::new_from(members))
            }
        };
        match self.open.last_mut() {
            Some(Building::Collection(members)) => members.push(geometry),
            _ => self.done = Some(geometry),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geojson(wkb: &[u8]) -> Option<String> {
        let mut out = String::new();
        write_geojson(wkb, &mut out).ok().map(|()| out)
    }

    fn head(little: bool, code: u32) -> Vec<u8> {
        let mut w = vec![u8::from(little)];
        w.extend_from_slice(&if little { code.to_le_bytes() } else { code.to_be_bytes() });
        w
    }

    fn f(w: &mut Vec<u8>, little: bool, vs: &[f64]) {
        for v in vs {
            w.extend_from_slice(&if little { v.to_le_bytes() } else { v.to_be_bytes() });
        }
    }

    fn n(w: &mut Vec<u8>, little: bool, n: u32) {
        w.extend_from_slice(&if little { n.to_le_bytes() } else { n.to_be_bytes() });
    }

    #[test]
    fn wkb_becomes_geojson_with_exact_coordinates() {
        let mut p = head(true, 1);
        f(&mut p, true, &[1.0, 0.5]);
        assert_eq!(geojson(&p).unwrap(), r#"{"type":"Point","coordinates":[1.0,0.5]}"#);

        let mut pz = head(false, 1001);
        f(&mut pz, false, &[0.1, -2.5e-10, 100.0]);
        assert_eq!(geojson(&pz).unwrap(), r#"{"type":"Point","coordinates":[0.1,-2.5e-10,100.0]}"#);

        // M is dropped, Z kept.
        let mut lzm = head(true, 3002);
        n(&mut lzm, true, 2);
        f(&mut lzm, true, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(geojson(&lzm).unwrap(), r#"{"type":"LineString","coordinates":[[1.0,2.0,3.0],[5.0,6.0,7.0]]}"#);

        let mut poly = head(true, 3);
        n(&mut poly, true, 1);
        n(&mut poly, true, 4);
        f(&mut poly, true, &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(
            geojson(&poly).unwrap(),
            r#"{"type":"Polygon","coordinates":[[[0.0,0.0],[1.0,0.0],[0.0,1.0],[0.0,0.0]]]}"#
        );

        let mut mpoly = head(true, 6);
        n(&mut mpoly, true, 2);
        mpoly.extend_from_slice(&poly);
        mpoly.extend_from_slice(&poly);
        let text = geojson(&mpoly).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "MultiPolygon");
        assert_eq!(v["coordinates"].as_array().unwrap().len(), 2);

        let mut gc = head(true, 7);
        n(&mut gc, true, 2);
        gc.extend_from_slice(&p);
        let mut empty = head(true, 6);
        n(&mut empty, true, 0);
        gc.extend_from_slice(&empty);
        assert_eq!(
            geojson(&gc).unwrap(),
            r#"{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1.0,0.5]},{"type":"MultiPolygon","coordinates":[]}]}"#
        );

        let mut empty_point = head(true, 1);
        f(&mut empty_point, true, &[f64::NAN, f64::NAN]);
        assert_eq!(geojson(&empty_point).unwrap(), r#"{"type":"Point","coordinates":[]}"#);

        // JSON has no NaN or infinity: only a point's NaN pair (empty) is written.
        let mut half = head(true, 1);
        f(&mut half, true, &[f64::NAN, 1.0]);
        let mut inf_z = head(true, 1002);
        n(&mut inf_z, true, 1);
        f(&mut inf_z, true, &[0.0, 0.0, f64::INFINITY]);
        for wkb in [half, inf_z] {
            assert_eq!(write_geojson(&wkb, &mut String::new()).map_err(|e| e.reason), Err(Reason::NonFinite));
        }
    }

    #[test]
    fn wkb_becomes_a_geo_geometry() {
        let mut p = head(true, 1);
        f(&mut p, true, &[1.0, 0.5]);
        assert_eq!(to_geo(&p).unwrap(), geo::Geometry::Point(geo::Point::new(1.0, 0.5)));
        let mut empty = head(false, 1);
        f(&mut empty, false, &[f64::NAN, f64::NAN]);
        let none = geo::Geometry::GeometryCollection(geo::GeometryCollection::default());
        assert_eq!(to_geo(&empty).unwrap(), none);

        let mut poly = head(true, 1003);
        n(&mut poly, true, 2);
        n(&mut poly, true, 4);
        f(&mut poly, true, &[0.0, 0.0, 9.0, 4.0, 0.0, 9.0, 0.0, 4.0, 9.0, 0.0, 0.0, 9.0]);
        n(&mut poly, true, 0);
        let square = geo::LineString::from(vec![(0.0, 0.0), (4.0, 0.0), (0.0, 4.0), (0.0, 0.0)]);
        let polygon = geo::Geometry::Polygon(geo::Polygon::new(square.clone(), vec![geo::LineString::new(vec![])]));
        assert_eq!(to_geo(&poly).unwrap(), polygon);

        // Multi-geometries become collections, nested ones too.
        let mut gc = head(true, 7);
        n(&mut gc, true, 2);
        let mut mpoly = head(true, 6);
        n(&mut mpoly, true, 1);
        mpoly.extend_from_slice(&poly);
        gc.extend_from_slice(&mpoly);
        gc.extend_from_slice(&p);
        let want = geo::Geometry::GeometryCollection(geo::GeometryCollection::new_from(vec![
            geo::Geometry::GeometryCollection(geo::GeometryCollection::new_from(vec![polygon])),
            geo::Geometry::Point(geo::Point::new(1.0, 0.5)),
        ]));
        assert_eq!(to_geo(&gc).unwrap(), want);

        let mut no_rings = head(true, 3);
        n(&mut no_rings, true, 0);
        let empty_polygon = geo::Polygon::new(geo::LineString::new(vec![]), vec![]);
        assert_eq!(to_geo(&no_rings).unwrap(), geo::Geometry::Polygon(empty_polygon));
    }

    #[test]
    fn corrupt_wkb_is_refused_not_a_panic() {
        let mut poly = head(true, 3);
        n(&mut poly, true, 1);
        n(&mut poly, true, 4);
        f(&mut poly, true, &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        for cut in 0..poly.len() {
            assert!(geojson(&poly[..cut]).is_none(), "cut at {cut}");
            assert!(to_geo(&poly[..cut]).is_err(), "cut at {cut}");
        }
        let mut mp = head(true, 4);
        n(&mut mp, true, 1);
        mp.extend_from_slice(&poly);
        let polygon_in_multipoint =
            Reason::MemberKind { parent: GeometryKind::MultiPoint, member: GeometryKind::Polygon };
        assert_eq!(
            write_geojson(&mp, &mut String::new()).map_err(|e| (e.offset, e.reason)),
            Err((9, polygon_in_multipoint))
        );
        // The intersection test takes it.
        assert!(to_geo(&mp).is_ok());
        for i in 0..mp.len() {
            for b in [0u8, 1, 0xff] {
                let mut g = mp.clone();
                g[i] = b;
                let _ = geojson(&g);
                let _ = to_geo(&g);
            }
        }
    }

    #[test]
    fn strings_and_values_are_escaped_and_exact() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\n\u{1}é–");
        assert_eq!(out, r#""a\"b\\c\n\u0001é–""#);
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), "a\"b\\c\n\u{1}é–");
        let value = |ty, v| {
            let mut out = String::new();
            write_value(&mut out, ty, v);
            out
        };
        assert_eq!(value(FieldType::Boolean, ValueRef::Integer(0)), "false");
        assert_eq!(value(FieldType::Real, ValueRef::Real(1.0)), "1.0");
        assert_eq!(value(FieldType::Real, ValueRef::Real(0.1)), "0.1");
        assert_eq!(value(FieldType::WideInteger, ValueRef::Integer(i64::MIN)), "-9223372036854775808");
        assert_eq!(value(FieldType::Json, ValueRef::Text(b"{\"a\":1.50}")), "{\"a\":1.50}");
        assert_eq!(value(FieldType::Json, ValueRef::Text(b"{bad")), "\"{bad\"");
        assert_eq!(value(FieldType::Date, ValueRef::Text(b"2024-01-02")), "\"2024-01-02\"");
    }

    #[test]
    fn filter_values_compare_as_written() {
        let stored = |ty, v| match equality(ty, v) {
            Some(Equality::Stored(v)) => Some(v),
            _ => None,
        };
        assert_eq!(stored(FieldType::Boolean, "true"), Some(Value::Integer(1)));
        assert_eq!(stored(FieldType::Boolean, "1"), None);
        assert_eq!(stored(FieldType::WideInteger, "9007199254740993"), Some(Value::Integer(9_007_199_254_740_993)));
        assert_eq!(stored(FieldType::Integer, "007"), None);
        assert_eq!(stored(FieldType::Integer, " 7"), None);
        assert_eq!(stored(FieldType::Integer, "7.5"), None);
        assert_eq!(stored(FieldType::Real, "1.5"), Some(Value::Real(1.5)));
        assert_eq!(stored(FieldType::Real, "1"), Some(Value::Real(1.0)));
        assert_eq!(stored(FieldType::Real, "1."), None);
        assert_eq!(stored(FieldType::Real, "0.1000000000000000000001"), None, "not a double's value");
        assert_eq!(stored(FieldType::Text, "' OR 1=1 --"), Some(Value::Text("' OR 1=1 --".into())));
        assert!(equality(FieldType::Null, "x").is_none());
    }

    #[test]
    fn loaded_bounds_round_to_the_stored_milliseconds() {
        let t = time::macros::datetime!(2026-01-31 12:00:00.123_000_001 +02:00);
        let at = |e| match e {
            Edge::At(s) => s,
            Edge::Unbounded => "unbounded".into(),
            Edge::Empty => "empty".into(),
        };
        assert_eq!(at(loaded_edge(t, true).unwrap()), "2026-01-31T10:00:00.124Z");
        assert_eq!(at(loaded_edge(t, false).unwrap()), "2026-01-31T10:00:00.123Z");
        let late = time::macros::datetime!(9999-12-31 23:59:59.9995 -01:00);
        assert_eq!(at(loaded_edge(late, true).unwrap()), "empty");
        assert_eq!(at(loaded_edge(late, false).unwrap()), "unbounded");
    }

    #[test]
    fn boxes_split_at_the_antimeridian() {
        let b = Bbox { min_x: 160.0, min_y: 20.0, max_x: -170.0, max_y: 0.0 };
        let boxes = query_boxes(&b);
        assert_eq!(boxes.len(), 2);
        assert_eq!((boxes[0].min().x, boxes[0].max().x, boxes[0].min().y, boxes[0].max().y), (160.0, 180.0, 0.0, 20.0));
        assert_eq!((boxes[1].min().x, boxes[1].max().x), (-180.0, -170.0));
        assert!(query_boxes(&Bbox { min_x: f64::NAN, ..b }).is_empty());
    }
}
