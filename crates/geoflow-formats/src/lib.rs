//! The vector formats geoflow reads, told by content (never by file name), and any source CRS
//! brought to WGS84 through PROJ.
//!
//! Every reader gives the same thing: [`RawFeature`]s in source order, each either GeoJSON
//! text or a [`DecodedFeature`] whose geometry is still in the source CRS, with the
//! [`CrsTransform`] that brings it to WGS84. Validation, repair, schema inference and loading
//! are the same for all of them (see `geoflow_core::process`). Streaming formats (GeoJSON,
//! CSV, and either gzipped) are read as they arrive; formats that need random access (zip,
//! GeoPackage, Parquet) are read from the file the source is spooled to, and what they
//! unpack goes to a scratch folder on disk, never into memory.

pub mod crs;
mod csv;
mod dbf;
pub mod detect;
mod flatgeobuf;
mod geojson;
mod geopackage;
mod geoparquet;
mod shapefile;
mod wkt;
mod zip;

use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use geoflow_core::crs::CrsResolver;
pub use geoflow_core::crs::CrsTransform;
pub use geoflow_core::reader::{DecodedFeature, RawFeature, ReadError, ReaderOptions};
use geoflow_core::report::{Problem, ProblemCode};

pub use crate::crs::ProjResolver;
pub use crate::detect::{detect, Detected, Format};

/// How to read a source, beyond its bytes.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Limits on untrusted input.
    pub limits: ReaderOptions,
    /// The source's CRS, overriding what the file says (for files that carry none).
    pub source_crs: Option<String>,
    /// The layer to read from a file with several (a zip of Shapefiles, a GeoPackage).
    pub layer: Option<String>,
    pub csv: CsvOptions,
    /// Where archives are unpacked while they are read (the system's temporary folder when
    /// `None`).
    pub scratch_dir: Option<PathBuf>,
}

impl ReadOptions {
    /// What changes the features read from the same bytes, for the no-op check of a reload.
    pub fn settings(&self) -> String {
        let mut parts = Vec::new();
        if let Some(crs) = &self.source_crs {
            parts.push(format!("source_crs={crs}"));
        }
        if let Some(layer) = &self.layer {
            parts.push(format!("layer={layer}"));
        }
        parts.extend(self.csv.settings());
        parts.join(";")
    }

    fn scratch(&self) -> PathBuf {
        self.scratch_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

/// Where CSV keeps its geometry, when its column names do not tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// The column holding WKT geometries.
    pub geometry_column: Option<String>,
    /// The columns holding longitude (x) and latitude (y).
    pub x_column: Option<String>,
    pub y_column: Option<String>,
    /// The field delimiter (sniffed when `None`).
    pub delimiter: Option<u8>,
}

impl CsvOptions {
    fn settings(&self) -> Vec<String> {
        let mut parts = Vec::new();
        if let Some(c) = &self.geometry_column {
            parts.push(format!("csv_geometry={c}"));
        }
        if let Some(c) = &self.x_column {
            parts.push(format!("csv_x={c}"));
        }
        if let Some(c) = &self.y_column {
            parts.push(format!("csv_y={c}"));
        }
        if let Some(d) = self.delimiter {
            parts.push(format!("csv_delimiter={}", d as char));
        }
        parts
    }
}

/// What a load report says about the source as read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The format read, as [`Format::name`] spells it (`Shapefile` for a zipped Shapefile,
    /// with `gzip` noted before the format inside it); empty when the file could not be read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub format: String,
    /// The layer read, in a format with several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Each layer read, when one source loads several (a zip of Shapefiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerRead>,
    /// The CRS the coordinates were transformed from (`None`: they were WGS84 already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_crs: Option<String>,
    /// What the reader wants the report to say (a less accurate transformation used, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl SourceInfo {
    /// What a reader of one layer read: its format, layer, the CRS it transforms from (with
    /// PROJ's notes on it) and the reader's own notes.
    pub(crate) fn read(format: &str, layer: Option<&str>, transform: &CrsTransform, notes: &[String]) -> SourceInfo {
        let (source_crs, mut crs_notes) = crs_info(transform);
        crs_notes.extend(notes.iter().cloned());
        SourceInfo {
            format: format.to_string(),
            layer: layer.map(str::to_string),
            layers: Vec::new(),
            source_crs,
            notes: crs_notes,
        }
    }
}

/// One layer of a source that loads several.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerRead {
    pub name: String,
    /// Features read from it.
    pub features: u64,
    /// The CRS its coordinates were transformed from (`None`: WGS84 already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_crs: Option<String>,
}

/// A source being read: its features in order.
pub trait FeatureSource: Iterator<Item = Result<RawFeature, ReadError>> + Send {
    /// The format, layer and CRS read (the CRS of a GeoJSON source is known once its `crs`
    /// member, if any, has been read).
    fn info(&self) -> SourceInfo;
}

/// Opens a source whose bytes are both `stream` (read from its first byte) and the file at
/// `path` (for formats that need random access). Streaming formats read only `stream`; the
/// others read the file and leave `stream` alone.
pub fn open<'a>(
    stream: &'a mut (dyn Read + Send),
    path: &Path,
    options: &ReadOptions,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let (head, stream) = peek(stream)?;
    match detect(&head) {
        Detected::Unsupported { what, advice } => Err(unsupported(what, advice)),
        Detected::Format(Format::Gzip) => {
            let gunzipped = flate2::read::MultiGzDecoder::new(stream);
            open_gunzipped(Box::new(gunzipped), options)
        }
        Detected::Format(format) => open_format(format, Box::new(stream), Some(path), options),
    }
}

/// The layers of the file at `path` that can load on their own: the Shapefiles of a zip, the
/// feature tables of a GeoPackage. Empty for a file of another format (one layer, unnamed).
pub fn layers(path: &Path) -> Result<Vec<String>, ReadError> {
    match format_of(path)? {
        Format::Zip => zip::layer_names(path),
        Format::GeoPackage => geopackage::layer_names(path),
        _ => Ok(Vec::new()),
    }
}

/// Writes a file of the same format holding only `layer` of the file at `path` to `out`:
/// a zip of that Shapefile, or a GeoPackage of that table. Each then loads, is replaced and
/// is removed on its own.
pub fn extract_layer(path: &Path, layer: &str, out: &Path) -> Result<(), ReadError> {
    match format_of(path)? {
        Format::Zip => zip::extract_layer(path, layer, out),
        Format::GeoPackage => geopackage::extract_layer(path, layer, out),
        Format::Gzip => Err(unsupported(
            "a gzipped file, whose layers geoflow does not split",
            "decompress it first, or load it with the layer option",
        )),
        other => Err(ReadError::Unreadable(Problem::new(
            ProblemCode::UnsupportedFormat,
            format!("the file is a {} file, which has one layer: load it without splitting it", other.name()),
        ))),
    }
}

/// The format of the file at `path`, by its first bytes.
fn format_of(path: &Path) -> Result<Format, ReadError> {
    let mut head = Vec::with_capacity(detect::HEAD_LEN);
    std::fs::File::open(path)?.take(detect::HEAD_LEN as u64).read_to_end(&mut head)?;
    match detect(&head) {
        Detected::Unsupported { what, advice } => Err(unsupported(what, advice)),
        Detected::Format(format) => Ok(format),
    }
}

/// Opens the file at `path` (one unpacked from an archive) by its content.
pub(crate) fn open_file(path: &Path, options: &ReadOptions) -> Result<Box<dyn FeatureSource + 'static>, ReadError> {
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(detect::HEAD_LEN);
    (&mut file).take(detect::HEAD_LEN as u64).read_to_end(&mut head)?;
    file.rewind()?;
    let stream = io::BufReader::new(file);
    match detect(&head) {
        Detected::Unsupported { what, advice } => Err(unsupported(what, advice)),
        Detected::Format(Format::Gzip) => open_gunzipped(Box::new(flate2::read::MultiGzDecoder::new(stream)), options),
        Detected::Format(format) => open_format(format, Box::new(stream), Some(path), options),
    }
}

/// The first bytes of `stream`, and a reader that still gives them.
fn peek<'a>(stream: &'a mut (dyn Read + Send)) -> io::Result<(Vec<u8>, impl Read + Send + 'a)> {
    let mut head = Vec::with_capacity(detect::HEAD_LEN);
    (&mut *stream).take(detect::HEAD_LEN as u64).read_to_end(&mut head)?;
    Ok((head.clone(), io::Cursor::new(head).chain(stream)))
}

/// A gzipped source: streaming formats are read through the decompressor, the others are
/// decompressed to the scratch folder first.
fn open_gunzipped<'a>(
    mut gunzipped: Box<dyn Read + Send + 'a>,
    options: &ReadOptions,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let mut head = Vec::with_capacity(detect::HEAD_LEN);
    gunzipped.by_ref().take(detect::HEAD_LEN as u64).read_to_end(&mut head).map_err(gzip_error)?;
    let format = match detect(&head) {
        Detected::Unsupported { what, advice } => return Err(unsupported(what, advice)),
        Detected::Format(Format::Gzip) => {
            return Err(unsupported("gzip inside gzip", "compress the file once"));
        }
        Detected::Format(format) => format,
    };
    let stream: Box<dyn Read + Send + 'a> = Box::new(GzipErrors(io::Cursor::new(head).chain(gunzipped)));
    let inner = if is_streamed(format) {
        open_format(format, stream, None, options)?
    } else {
        let spool = spool(stream, options)?;
        let source = open_format(format, Box::new(io::empty()), Some(spool.path()), options)?;
        Box::new(Spooled { source, _spool: spool })
    };
    Ok(Box::new(Gzipped(inner)))
}

/// Formats read as they arrive, without random access.
fn is_streamed(format: Format) -> bool {
    matches!(format, Format::GeoJson | Format::Csv)
}

fn open_format<'a>(
    format: Format,
    stream: Box<dyn Read + Send + 'a>,
    path: Option<&Path>,
    options: &ReadOptions,
) -> Result<Box<dyn FeatureSource + 'a>, ReadError> {
    let source_crs = given_crs(options)?;
    match format {
        Format::GeoJson => Ok(Box::new(geojson::GeoJsonSource::new(stream, options, source_crs))),
        Format::Gzip => unreachable!("gzip is opened by `open`"),
        Format::GeoPackage => match path {
            Some(path) => geopackage::open(path, options, source_crs),
            None => Err(unsupported("a GeoPackage without a file", "load it from a file")),
        },
        Format::FlatGeobuf => flatgeobuf::open(stream, path, options, source_crs),
        Format::Zip => match path {
            Some(path) => zip::open(path, options, source_crs),
            None => Err(ReadError::Io(io::Error::other("a zip archive is read from a file"))),
        },
        Format::GeoParquet => match path {
            Some(path) => geoparquet::open(path, options, source_crs),
            None => Err(malformed("GeoParquet", "it can only be read from a file")),
        },
        Format::Csv => csv::open(stream, options, source_crs),
    }
}

/// The CRS given with the source (`--source-crs`), resolved.
fn given_crs(options: &ReadOptions) -> Result<Option<CrsTransform>, ReadError> {
    options.source_crs.as_deref().map(resolve_crs).transpose()
}

/// Resolves a CRS a file names (a `.prj`, a GeoPackage's `gpkg_spatial_ref_sys` entry,
/// GeoParquet PROJJSON): an unknown one fails the whole source.
pub fn resolve_crs(definition: &str) -> Result<CrsTransform, ReadError> {
    ProjResolver.resolve(definition).map_err(ReadError::Unreadable)
}

/// The transform for a file's own CRS, unless the options gave one.
pub fn file_crs(given: Option<CrsTransform>, found: Option<&str>) -> Result<CrsTransform, ReadError> {
    match (given, found) {
        (Some(given), _) => Ok(given),
        (None, Some(found)) => resolve_crs(found),
        (None, None) => Ok(CrsTransform::Identity),
    }
}

/// A file's error with what it concerns put first (`the CRS of GeoPackage layer "roads": …`).
pub(crate) fn in_context(e: ReadError, context: &str) -> ReadError {
    match e {
        ReadError::Unreadable(problem) => {
            ReadError::Unreadable(Problem::new(problem.code, format!("{context}: {}", problem.message)))
        }
        other => other,
    }
}

/// The report's name of a CRS transform, and its notes.
pub fn crs_info(transform: &CrsTransform) -> (Option<String>, Vec<String>) {
    (transform.source_name(), crs::notes(transform))
}

/// A file geoflow does not read: what it is and what to do.
pub fn unsupported(what: &str, advice: &str) -> ReadError {
    ReadError::Unreadable(Problem::new(
        ProblemCode::UnsupportedFormat,
        format!(
            "the file is {what}, which geoflow does not read: {advice} (geoflow reads GeoJSON, zipped Shapefiles, \
             GeoPackage, FlatGeobuf, GeoParquet and CSV, each also gzipped)"
        ),
    ))
}

/// A file of a format geoflow reads that is broken: which format, and what is wrong.
pub fn malformed(format: &str, why: impl std::fmt::Display) -> ReadError {
    ReadError::Unreadable(Problem::new(ProblemCode::MalformedFile, format!("the {format} file is unreadable: {why}")))
}

/// Reads into `buf` until it is full or the input ends; how many bytes were read.
pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Copies `stream` to a new file in the scratch folder.
fn spool(mut stream: impl Read, options: &ReadOptions) -> Result<tempfile::NamedTempFile, ReadError> {
    let mut file = tempfile::Builder::new().prefix("geoflow-unpack-").tempfile_in(options.scratch())?;
    // Corrupt gzip data is the file's fault; a full disk is not.
    io::copy(&mut stream, &mut file).map_err(gzip_error)?;
    Ok(file)
}

/// A source read from a spooled copy, which goes when the source does.
struct Spooled<'a> {
    source: Box<dyn FeatureSource + 'a>,
    _spool: tempfile::NamedTempFile,
}

impl Iterator for Spooled<'_> {
    type Item = Result<RawFeature, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.source.next()
    }
}

impl FeatureSource for Spooled<'_> {
    fn info(&self) -> SourceInfo {
        self.source.info()
    }
}

/// A source inside gzip: its info says so.
struct Gzipped<'a>(Box<dyn FeatureSource + 'a>);

impl Iterator for Gzipped<'_> {
    type Item = Result<RawFeature, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl FeatureSource for Gzipped<'_> {
    fn info(&self) -> SourceInfo {
        let mut info = self.0.info();
        info.format = format!("gzip {}", info.format);
        info
    }
}

/// Corrupt gzip data is the file's fault, not an IO fault: its errors become
/// [`ProblemCode::MalformedFile`] problems (carried as `InvalidData`).
struct GzipErrors<R>(R);

impl<R: Read> Read for GzipErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                io::Error::new(io::ErrorKind::InvalidData, GzipCorrupt(e.to_string()))
            }
            _ => e,
        })
    }
}

/// The marker of a corrupt gzip stream inside an `io::Error`.
#[derive(Debug)]
pub struct GzipCorrupt(pub String);

impl std::fmt::Display for GzipCorrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the gzip data is corrupt or truncated: {}", self.0)
    }
}

impl std::error::Error for GzipCorrupt {}

fn gzip_error(e: io::Error) -> ReadError {
    if e.get_ref().is_some_and(|inner| inner.is::<GzipCorrupt>())
        || matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof)
    {
        malformed("gzip", e)
    } else {
        ReadError::Io(e)
    }
}

/// Turns a read error of a streaming reader into the file's fault when it came from corrupt
/// gzip data.
pub fn classify(e: ReadError) -> ReadError {
    match e {
        ReadError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<GzipCorrupt>()) => gzip_error(io),
        other => other,
    }
}
