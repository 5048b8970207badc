//! Delimited text (CSV) with a WKT column or x/y columns, read as it streams in, one row at
//! a time.
//!
//! **Layout.** The first row names the columns. The delimiter is the one given, or the most
//! frequent of `,` `;` tab `|` outside quotes in that first row. A UTF-8 byte order mark is
//! skipped. Rows whose number of fields differs from the header's are reported one by one
//! (a feature without geometry and a problem), never as the whole file's fault.
//!
//! **Geometry.** The column given (WKT or EWKT, see [`crate::wkt`]), the x/y columns given,
//! or else the first column whose name (case-insensitive) is one of `wkt`, `geometry`,
//! `geom`, `the_geom`, `wkt_geom`, `shape`, else the first pair of `lon`/`lat`,
//! `lng`/`lat`, `long`/`lat`, `longitude`/`latitude`, `x`/`y`, `easting`/`northing`,
//! `point_x`/`point_y`. The geometry columns are not properties. Empty cells give a feature
//! without geometry. CSV carries no CRS: `--source-crs` gives one (EWKT SRIDs are then not
//! looked at), else the EWKT `SRID=n;` of the first WKT geometry read, else WGS84
//! longitude/latitude. A later geometry that names another SRID is reported (one CRS per
//! file); one that names none is in the file's CRS.
//!
//! **Property types.** CSV has only text, so each cell is typed by its text, one value at a
//! time (the schema widens a column whose values differ), and only when the type gives the
//! same text back — nothing is lost:
//! - an empty cell is null (CSV cannot tell an empty string from a missing value);
//! - `true`/`false`, in any case, are booleans;
//! - an integer without leading zeros (`0`, `-12`; not `007`, `+5` or `-0`) that fits 64
//!   bits is an integer;
//! - a decimal or exponent number is a real only when the shortest text of its double is
//!   the text itself (`1.5`, `0.25`, `1e21`); `1.10`, `1e400`, `1.0E5` stay text, since a
//!   double would print them differently;
//! - everything else is text, dates included (the schema tells ISO dates by their text).
//!
//! Text that is not UTF-8 is read as is: a cell that is not valid UTF-8 is reported for
//! that feature (naming the column), its bad bytes shown as U+FFFD.
//!
//! Memory stays bounded: one row is held at a time, and a row larger than the feature size
//! limit (an unclosed quote swallowing the file, say) fails the file.

use std::io::{self, Cursor, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::csv::{ByteRecord, ErrorKind, ReaderBuilder};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::{format_f64, PropValue};

use crate::{
    classify, file_crs, malformed, resolve_crs, wkt, CrsTransform, DecodedFeature, FeatureSource, RawFeature,
    ReadError, ReadOptions, SourceInfo,
};

const FORMAT: &str = "CSV";

/// Column names that hold WKT, in order of preference.
const WKT_NAMES: &[&str] = &["wkt", "geometry", "geom", "the_geom", "wkt_geom", "shape"];

/// Column name pairs that hold x (longitude, easting) and y, in order of preference.
const XY_NAMES: &[(&str, &str)] = &[
    ("lon", "lat"),
    ("lng", "lat"),
    ("long", "lat"),
    ("longitude", "latitude"),
    ("x", "y"),
    ("easting", "northing"),
    ("point_x", "point_y"),
];

/// Delimiters sniffed from the header row.
const DELIMITERS: &[u8] = b",;\t|";

/// Most bytes read to find the end of the header row (for sniffing the delimiter).
const HEADER_SNIFF_LEN: usize = 1 << 20;

/// The SRID of WGS84 longitude/latitude, what WKT without one is in.
const WGS84_SRID: u32 = 4326;

/// Longest cell text quoted in a message.
const QUOTED_LEN: usize = 60;

/// Opens a CSV stream; `given` is the CRS the options name, if any.
pub(crate) fn open<'a>(
    mut stream: Box<dyn Read + Send + 'a>,
    options: &ReadOptions,
    given: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let mut head = read_header_row(&mut stream).map_err(|e| classify(e.into()))?;
    if head.starts_with(b"\xef\xbb\xbf") {
        head.drain(..3);
    }
    let delimiter = options.csv.delimiter.unwrap_or_else(|| sniff_delimiter(&head));
    let budget = Arc::new(RowBudget::new(options.limits.max_feature_bytes));
    let bounded = Bounded { inner: Cursor::new(head).chain(stream), read: 0, budget: Arc::clone(&budget) };
    let mut reader = ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        // Rows of the wrong length come back as errors, reported per feature.
        .flexible(false)
        .from_reader(bounded);
    let header = match reader.byte_headers() {
        Ok(header) => header.clone(),
        Err(e) => return Err(csv_error(e, &budget)),
    };
    budget.row_starts_at(reader.position().byte());
    let (columns, notes) = column_names(&header);
    let geometry = find_geometry(&columns, options)?;
    let properties =
        columns.iter().enumerate().filter(|(i, _)| !geometry.uses(*i)).map(|(i, name)| (i, name.clone())).collect();
    let given_crs = given.is_some();
    let transform = file_crs(given, None)?;
    Ok(Box::new(CsvSource {
        reader,
        record: ByteRecord::new(),
        budget,
        columns,
        geometry,
        properties,
        notes,
        transform,
        given_crs,
        file_srid: None,
        srid_pending: false,
        next_index: 0,
        done: false,
    }))
}

/// Reads from `stream` until the header row has ended (a line break outside quotes), the
/// sniffing length is reached or the stream ends; the bytes read are all returned.
fn read_header_row(stream: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut quoted = false;
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(head),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let start = head.len();
        head.extend_from_slice(&chunk[..n]);
        for &b in &head[start..] {
            match b {
                b'"' => quoted = !quoted,
                b'\n' | b'\r' if !quoted => return Ok(head),
                _ => {}
            }
        }
        if head.len() >= HEADER_SNIFF_LEN {
            return Ok(head);
        }
    }
}

/// The most frequent delimiter outside quotes in the header row (`,` when none is there).
fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    // The first of equally frequent ones wins: `,` before `;` before tab before `|`.
    let (best, count) = counts.iter().enumerate().fold((0, 0), |best, (i, &c)| if c > best.1 { (i, c) } else { best });
    if count == 0 {
        b','
    } else {
        DELIMITERS[best]
    }
}

/// The header's column names: unnamed columns are `field_N` (1-based, as GDAL names them) and
/// a repeated name gets `_2`, `_3`…, so that every property key is distinct. The notes say
/// what was renamed.
fn column_names(header: &ByteRecord) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    let mut notes = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let given = String::from_utf8_lossy(raw).into_owned();
        let mut name = if given.trim().is_empty() { format!("field_{}", i + 1) } else { given.clone() };
        if names.contains(&name) {
            let base = name.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = format!("{base}_{n}");
                n += 1;
            }
        }
        if name != given {
            notes.push(format!("CSV column {} ({given:?}) is read as property {name:?}", i + 1));
        }
        names.push(name);
    }
    (names, notes)
}

/// Where each row's geometry is.
#[derive(Debug, Clone, Copy)]
enum GeometryColumns {
    Wkt(usize),
    Xy { x: usize, y: usize },
}

impl GeometryColumns {
    fn uses(self, column: usize) -> bool {
        match self {
            GeometryColumns::Wkt(c) => c == column,
            GeometryColumns::Xy { x, y } => x == column || y == column,
        }
    }
}

fn find_geometry(columns: &[String], options: &ReadOptions) -> Result<GeometryColumns, ReadError> {
    // An exact match first, then one ignoring case and surrounding blanks.
    let named = |wanted: &str| {
        columns.iter().position(|c| c == wanted).or_else(|| {
            let wanted = wanted.trim().to_lowercase();
            columns.iter().position(|c| c.trim().to_lowercase() == wanted)
        })
    };
    let missing = |what: &str, name: &str| {
        malformed(FORMAT, format!("there is no {what} column {name:?}: the columns are {}", list_columns(columns)))
    };
    let csv = &options.csv;
    if let Some(name) = &csv.geometry_column {
        return named(name).map(GeometryColumns::Wkt).ok_or_else(|| missing("WKT geometry", name));
    }
    match (&csv.x_column, &csv.y_column) {
        (Some(x), Some(y)) => {
            let x = named(x).ok_or_else(|| missing("x", x))?;
            let y = named(y).ok_or_else(|| missing("y", y))?;
            return Ok(GeometryColumns::Xy { x, y });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(malformed(FORMAT, "name both the x and the y column (--csv-x and --csv-y)"));
        }
        (None, None) => {}
    }
    let by_name = |wanted: &str| columns.iter().position(|c| c.trim().eq_ignore_ascii_case(wanted));
    if let Some(column) = WKT_NAMES.iter().find_map(|name| by_name(name)) {
        return Ok(GeometryColumns::Wkt(column));
    }
    if let Some((x, y)) = XY_NAMES.iter().find_map(|(x, y)| Some((by_name(x)?, by_name(y)?))) {
        return Ok(GeometryColumns::Xy { x, y });
    }
    Err(malformed(
        FORMAT,
        format!(
            "no geometry column: name a WKT column, or the x/y columns, with --csv-geometry, or --csv-x and \
             --csv-y (?csv_geometry=, or ?csv_x= and ?csv_y=); the columns are {}",
            list_columns(columns)
        ),
    ))
}

fn list_columns(columns: &[String]) -> String {
    const SHOWN: usize = 30;
    let mut list = columns.iter().take(SHOWN).map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    if columns.len() > SHOWN {
        list.push_str(&format!(" and {} more", columns.len() - SHOWN));
    }
    if list.is_empty() {
        list = "none".to_string();
    }
    list
}

struct CsvSource<'a> {
    reader: ::csv::Reader<Bounded<'a>>,
    record: ByteRecord,
    budget: Arc<RowBudget>,
    columns: Vec<String>,
    geometry: GeometryColumns,
    /// Property columns: index and name.
    properties: Vec<(usize, String)>,
    notes: Vec<String>,
    transform: CrsTransform,
    /// Whether the options named the CRS: EWKT SRIDs are then not looked at.
    given_crs: bool,
    /// The first geometry's EWKT SRID (`Some(None)`: it had none), once one was read.
    file_srid: Option<Option<u32>>,
    /// The file's SRID was just found: its CRS is still to be resolved.
    srid_pending: bool,
    next_index: u64,
    done: bool,
}

impl Iterator for CsvSource<'_> {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let index = self.next_index;
        let read = self.reader.read_byte_record(&mut self.record);
        self.budget.row_starts_at(self.reader.position().byte());
        let feature = match read {
            Ok(false) => {
                self.done = true;
                return None;
            }
            Ok(true) => self.decode(),
            Err(e) => match e.kind() {
                ErrorKind::UnequalLengths { expected_len, len, .. } => {
                    let problem = Problem::new(
                        ProblemCode::MalformedFile,
                        format!("the CSV row has {len} fields where the header has {expected_len}"),
                    );
                    DecodedFeature { problems: vec![problem], ..Default::default() }
                }
                _ => {
                    self.done = true;
                    return Some(Err(csv_error(e, &self.budget)));
                }
            },
        };
        self.next_index += 1;
        Some(match self.settle_srid() {
            Ok(()) => Ok(RawFeature::decoded(index, feature, self.transform.clone())),
            Err(e) => {
                self.done = true;
                Err(e)
            }
        })
    }
}

impl FeatureSource for CsvSource<'_> {
    fn info(&self) -> SourceInfo {
        SourceInfo::read(FORMAT, None, &self.transform, &self.notes)
    }
}

impl CsvSource<'_> {
    fn decode(&mut self) -> DecodedFeature {
        let mut problems = Vec::new();
        let geometry = match self.geometry {
            GeometryColumns::Wkt(column) => self.wkt(column, &mut problems),
            GeometryColumns::Xy { x, y } => self.xy(x, y, &mut problems),
        };
        let properties = self
            .properties
            .iter()
            .map(|(column, name)| {
                let cell = self.record.get(*column).unwrap_or_default();
                let value = match std::str::from_utf8(cell) {
                    Ok(text) => typed(text),
                    Err(_) => {
                        problems.push(Problem::new(
                            ProblemCode::UnstorableText,
                            format!("CSV column {name:?} holds text that is not UTF-8 (save the file as UTF-8)"),
                        ));
                        PropValue::Text(String::from_utf8_lossy(cell).into_owned())
                    }
                };
                (name.clone(), value)
            })
            .collect();
        DecodedFeature { id: PropValue::Null, geometry, properties, problems }
    }

    fn wkt(&mut self, column: usize, problems: &mut Vec<Problem>) -> Option<Geom> {
        let text = cell_text(&self.record, &self.columns, column, problems)?;
        if text.is_empty() {
            return None;
        }
        let parsed = match wkt::parse(text) {
            Ok(parsed) => parsed,
            Err(why) => {
                problems.push(invalid(&self.columns[column], text, &format!("is not WKT ({why})")));
                return None;
            }
        };
        if self.given_crs || parsed.geometry.is_none() {
            return parsed.geometry;
        }
        let srid = parsed.srid.filter(|&s| s != 0);
        match self.file_srid {
            None => {
                self.file_srid = Some(srid);
                self.srid_pending = srid.is_some();
            }
            Some(file) => {
                let file = file.unwrap_or(WGS84_SRID);
                if let Some(srid) = srid.filter(|&s| s != file) {
                    problems.push(Problem::new(
                        ProblemCode::UnsupportedCrs,
                        format!(
                            "CSV column {:?} gives SRID={srid}, and the file's geometries are in SRID={file}: \
                             one CRS per file",
                            self.columns[column]
                        ),
                    ));
                    return None;
                }
            }
        }
        parsed.geometry
    }

    fn xy(&self, x: usize, y: usize, problems: &mut Vec<Problem>) -> Option<Geom> {
        let x_text = cell_text(&self.record, &self.columns, x, problems)?;
        let y_text = cell_text(&self.record, &self.columns, y, problems)?;
        match (x_text.is_empty(), y_text.is_empty()) {
            (true, true) => return None,
            (true, false) | (false, true) => {
                let (empty, other) = if x_text.is_empty() { (x, y) } else { (y, x) };
                problems.push(Problem::new(
                    ProblemCode::InvalidCoordinates,
                    format!(
                        "CSV column {:?} is empty and column {:?} is not: a position needs both",
                        self.columns[empty], self.columns[other]
                    ),
                ));
                return None;
            }
            (false, false) => {}
        }
        let coordinate = |column: usize, text: &str, problems: &mut Vec<Problem>| match parse_coordinate(text) {
            Some(n) => Some(n),
            None => {
                problems.push(invalid(&self.columns[column], text, "is not a finite number"));
                None
            }
        };
        let x_value = coordinate(x, x_text, problems);
        let y_value = coordinate(y, y_text, problems);
        Some(Geom::Point(Pos::xy(x_value?, y_value?)))
    }

    /// The first geometry's EWKT SRID is the file's CRS; one PROJ does not know fails the
    /// file, as any CRS a file names does.
    fn settle_srid(&mut self) -> Result<(), ReadError> {
        if let (true, Some(Some(srid))) = (std::mem::take(&mut self.srid_pending), self.file_srid) {
            self.transform = resolve_crs(&format!("EPSG:{srid}")).map_err(|e| {
                malformed(FORMAT, format!("the first geometry's EWKT SRID={srid} is a CRS that cannot be used: {e}"))
            })?;
        }
        Ok(())
    }
}

/// The trimmed text of a geometry cell (`None`: not UTF-8, reported).
fn cell_text<'r>(
    record: &'r ByteRecord,
    columns: &[String],
    column: usize,
    problems: &mut Vec<Problem>,
) -> Option<&'r str> {
    let cell = record.get(column).unwrap_or_default();
    match std::str::from_utf8(cell) {
        Ok(text) => Some(text.trim()),
        Err(_) => {
            problems.push(invalid(&columns[column], &String::from_utf8_lossy(cell), "is not UTF-8 text"));
            None
        }
    }
}

/// A coordinate cell: a decimal number, finite.
fn parse_coordinate(text: &str) -> Option<f64> {
    let numeric = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
    text.parse::<f64>().ok().filter(|n| numeric && n.is_finite())
}

fn invalid(column: &str, text: &str, what: &str) -> Problem {
    Problem::new(ProblemCode::InvalidCoordinates, format!("CSV column {column:?} holds {:?}, which {what}", clip(text)))
}

/// `text` cut to a readable length, at a character boundary.
fn clip(text: &str) -> String {
    match text.char_indices().nth(QUOTED_LEN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A property cell typed by its text, losslessly (see the module docs).
pub(crate) fn typed(text: &str) -> PropValue {
    if text.is_empty() {
        return PropValue::Null;
    }
    if text.eq_ignore_ascii_case("true") {
        return PropValue::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return PropValue::Bool(false);
    }
    let bytes = text.as_bytes();
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let is_integer = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
        && text != "-0";
    if is_integer {
        return match text.parse::<i64>() {
            Ok(i) => PropValue::Int(i),
            Err(_) => PropValue::Text(text.to_string()),
        };
    }
    let numeric = bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'));
    if numeric {
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() && format_f64(f) == text {
                return PropValue::Real(f);
            }
        }
    }
    PropValue::Text(text.to_string())
}

/// The bytes one row may take, shared by the reader (which counts what it reads) and the
/// source (which moves the start of the row).
#[derive(Debug)]
struct RowBudget {
    max_row_bytes: u64,
    /// No byte beyond this offset may be read before the current row ends.
    limit: AtomicU64,
}

impl RowBudget {
    fn new(max_row_bytes: usize) -> RowBudget {
        let max_row_bytes = max_row_bytes as u64;
        RowBudget { max_row_bytes, limit: AtomicU64::new(max_row_bytes) }
    }

    fn row_starts_at(&self, offset: u64) {
        self.limit.store(offset.saturating_add(self.max_row_bytes), Ordering::Relaxed);
    }
}

/// The stream, failing once one row has taken more bytes than the budget allows.
struct Bounded<'a> {
    inner: io::Chain<Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>,
    read: u64,
    budget: Arc<RowBudget>,
}

/// The marker of a row larger than the limit inside an `io::Error`.
#[derive(Debug)]
struct RowTooLarge(u64);

impl std::fmt::Display for RowTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a row is larger than {} bytes (an unclosed quote?)", self.0)
    }
}

impl std::error::Error for RowTooLarge {}

impl Read for Bounded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The reader buffers ahead, so allow one buffer beyond the limit before failing.
        let limit = self.budget.limit.load(Ordering::Relaxed).saturating_add(buf.len() as u64);
        if self.read >= limit {
            return Err(io::Error::other(RowTooLarge(self.budget.max_row_bytes)));
        }
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A reading fault that ends the file.
fn csv_error(e: ::csv::Error, budget: &RowBudget) -> ReadError {
    if !e.is_io_error() {
        return malformed(FORMAT, e);
    }
    match e.into_kind() {
        ErrorKind::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<RowTooLarge>()) => {
            malformed(FORMAT, RowTooLarge(budget.max_row_bytes))
        }
        ErrorKind::Io(io) => classify(ReadError::Io(io)),
        other => malformed(FORMAT, format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_typed_only_when_nothing_is_lost() {
        let cases = [
            ("", PropValue::Null),
            ("0", PropValue::Int(0)),
            ("-12", PropValue::Int(-12)),
            ("9223372036854775807", PropValue::Int(i64::MAX)),
            ("9223372036854775808", PropValue::Text("9223372036854775808".into())),
            ("007", PropValue::Text("007".into())),
            ("+5", PropValue::Text("+5".into())),
            ("-0", PropValue::Text("-0".into())),
            ("1.5", PropValue::Real(1.5)),
            ("-0.25", PropValue::Real(-0.25)),
            ("100.0", PropValue::Real(100.0)),
            ("1e21", PropValue::Real(1e21)),
            ("1.10", PropValue::Text("1.10".into())),
            ("1e400", PropValue::Text("1e400".into())),
            ("1.0E5", PropValue::Text("1.0E5".into())),
            ("0.1000000000000000055", PropValue::Text("0.1000000000000000055".into())),
            (".5", PropValue::Text(".5".into())),
            ("NaN", PropValue::Text("NaN".into())),
            ("inf", PropValue::Text("inf".into())),
            ("TRUE", PropValue::Bool(true)),
            ("false", PropValue::Bool(false)),
            ("2024-05-01", PropValue::Text("2024-05-01".into())),
            (" 12", PropValue::Text(" 12".into())),
            ("02134", PropValue::Text("02134".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(typed(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_delimiter_is_the_most_frequent_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2;3;4;5"), b',');
        assert_eq!(sniff_delimiter(b"a;b;\"c,d,e\"\n"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\tc,d"), b'\t');
        assert_eq!(sniff_delimiter(b"a|b"), b'|');
        assert_eq!(sniff_delimiter(b"wkt"), b',');
    }

    #[test]
    fn columns_get_distinct_names() {
        let header = ByteRecord::from(vec!["a", "", "a", "a_2"]);
        let (names, notes) = column_names(&header);
        assert_eq!(names, ["a", "field_2", "a_2", "a_2_2"]);
        assert_eq!(notes.len(), 3);
    }
}
