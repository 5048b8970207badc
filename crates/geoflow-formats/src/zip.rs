//! A zip archive: one or more Shapefiles (each a `.shp`, `.shx` and `.dbf`, with an optional
//! `.prj` and `.cpg`, in any folder of the archive), or a single file of another format
//! geoflow reads. What is read is unpacked to the scratch folder first (Shapefiles need
//! random access), and removed when the source is dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::zip::result::ZipError;
use ::zip::ZipArchive;

use crate::detect::{self, Detected, Format};
use crate::shapefile::{ShapefileFiles, ShapefileSource};
use crate::{
    file_crs, malformed, unsupported, CrsTransform, FeatureSource, LayerRead, RawFeature, ReadError, ReadOptions,
    SourceInfo,
};

/// Most bytes one archive member may unpack to: Shapefile offsets stop at 8 GiB, and a
/// member claiming more is a zip bomb rather than data.
const MAX_UNPACKED: u64 = 8 << 30;
/// Most bytes of a `.prj` or `.cpg` read.
const MAX_SIDECAR: u64 = 1 << 20;
/// Members named in an error about what an archive holds.
const LISTED: usize = 10;

type Archive = ZipArchive<BufReader<File>>;

/// A member of the archive that may be data.
#[derive(Debug, Clone)]
struct Member {
    index: usize,
    /// Its path in the archive.
    name: String,
    /// The folder part of `name` (with its trailing `/`, empty at the top).
    folder: String,
    /// The file name without its extension.
    stem: String,
    /// The extension, lower-cased, without its dot.
    extension: String,
    size: u64,
}

/// One Shapefile in the archive: its `.shp` and the members beside it.
#[derive(Debug, Clone)]
struct Layer {
    /// The name to choose it by: the .shp's base name (with its folder, should two folders
    /// hold Shapefiles of the same name).
    name: String,
    shp: Member,
    siblings: Vec<Member>,
}

impl Layer {
    fn sibling(&self, extension: &str) -> Option<&Member> {
        self.siblings.iter().find(|m| m.extension == extension)
    }
}

/// Opens the zip archive at `path`: the Shapefile the layer option names, its only one, or
/// all of them in turn (a layer cut into parts to stay under the format's 2 GB limit, or
/// layers meant to load together).
pub(crate) fn open(
    path: &Path,
    options: &ReadOptions,
    given_crs: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'static>, ReadError> {
    let mut archive = ZipArchive::new(BufReader::new(File::open(path)?)).map_err(zip_error)?;
    let members = members(&archive)?;
    let mut layers = layers(&members);
    if layers.is_empty() {
        return open_single(&mut archive, &members, options);
    }
    if let Some(wanted) = options.layer.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        let layer = choose(&layers, wanted)?.clone();
        return open_layer(&mut archive, &layer, options, given_crs);
    }
    // Every Shapefile is checked before any feature is read: nothing half-loaded.
    layers.iter().try_for_each(check_complete)?;
    if layers.len() == 1 {
        return open_layer(&mut archive, &layers[0], options, given_crs);
    }
    layers.reverse();
    Ok(Box::new(AllLayers {
        archive,
        options: options.clone(),
        given_crs,
        to_open: layers,
        current: None,
        read: Vec::new(),
        notes: Vec::new(),
    }))
}

/// The Shapefiles of the archive at `path` (empty when it holds none).
pub(crate) fn layer_names(path: &Path) -> Result<Vec<String>, ReadError> {
    let archive = ZipArchive::new(BufReader::new(File::open(path)?)).map_err(zip_error)?;
    Ok(layers(&members(&archive)?).into_iter().map(|layer| layer.name).collect())
}

/// Writes a zip holding only the Shapefile `wanted` of the archive at `path` (its members
/// copied as they are compressed) to `out`.
pub(crate) fn extract_layer(path: &Path, wanted: &str, out: &Path) -> Result<(), ReadError> {
    let mut archive = ZipArchive::new(BufReader::new(File::open(path)?)).map_err(zip_error)?;
    let layers = layers(&members(&archive)?);
    let layer = choose(&layers, wanted)?;
    check_complete(layer)?;
    let mut writer = ::zip::ZipWriter::new(io::BufWriter::new(File::create(out)?));
    let write_error = |e: ZipError| ReadError::Io(io::Error::other(format!("writing layer {wanted:?}: {e}")));
    for member in std::iter::once(&layer.shp).chain(&layer.siblings) {
        let entry = archive.by_index_raw(member.index).map_err(zip_error)?;
        writer.raw_copy_file(entry).map_err(write_error)?;
    }
    writer.finish().map_err(write_error)?.flush()?;
    Ok(())
}

/// A Shapefile needs its `.shx` and `.dbf` beside its `.shp`.
fn check_complete(layer: &Layer) -> Result<(), ReadError> {
    let base = &layer.shp.stem;
    let missing: Vec<String> =
        ["shx", "dbf"].iter().filter(|e| layer.sibling(e).is_none()).map(|e| format!("{base}.{e}")).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(malformed(
        "Shapefile",
        format!(
            "{}.shp has no {} beside it (a Shapefile needs its .shp, .shx and .dbf in one folder)",
            layer.shp.name.strip_suffix(".shp").unwrap_or(base),
            missing.join(" or ")
        ),
    ))
}

/// Unpacks one Shapefile to the scratch folder and opens it.
fn open_layer(
    archive: &mut Archive,
    layer: &Layer,
    options: &ReadOptions,
    given_crs: Option<CrsTransform>,
) -> Result<Box<dyn FeatureSource + 'static>, ReadError> {
    check_complete(layer)?;
    let base = layer.shp.stem.clone();
    let dir = tempfile::Builder::new().prefix("geoflow-unpack-").tempdir_in(options.scratch())?;
    // Unpacked under fixed names: no name from the archive becomes a path on disk.
    let unpack = |archive: &mut Archive, extension: &str| -> Result<PathBuf, ReadError> {
        let target = dir.path().join(format!("layer.{extension}"));
        match layer.sibling(extension).or((extension == "shp").then_some(&layer.shp)) {
            Some(member) => extract(archive, member, &mut File::create(&target)?)?,
            None => return Err(malformed("Shapefile", format!("{base}.{extension} is missing"))),
        }
        Ok(target)
    };
    let shp = unpack(archive, "shp")?;
    let shx = unpack(archive, "shx")?;
    let dbf = unpack(archive, "dbf")?;
    let prj = layer.sibling("prj").map(|m| read_text(archive, m)).transpose()?;
    let cpg = layer.sibling("cpg").map(|m| read_text(archive, m)).transpose()?;
    let prj = prj.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let transform =
        file_crs(given_crs, prj).map_err(|e| crate::in_context(e, &format!("the CRS of {}", layer.shp.name)))?;
    let files = ShapefileFiles { layer: &layer.name, shp: &shp, shx: &shx, dbf: &dbf, cpg: cpg.as_deref() };
    let source = ShapefileSource::open(&files, transform, options.limits.max_feature_bytes)?;
    Ok(Box::new(Unpacked { source: Box::new(source), _dir: Some(dir), _file: None, format_prefix: None }))
}

/// Every Shapefile of an archive, one after the other, each unpacked only while it is read.
/// Features keep their index in their own layer and carry the layer's name for reports.
struct AllLayers {
    archive: Archive,
    options: ReadOptions,
    given_crs: Option<CrsTransform>,
    /// The layers still to read, the next one last.
    to_open: Vec<Layer>,
    current: Option<(Arc<str>, Box<dyn FeatureSource + 'static>, u64)>,
    read: Vec<LayerRead>,
    notes: Vec<String>,
}

impl AllLayers {
    /// Records what the layer being read gave.
    fn close_current(&mut self) {
        if let Some((name, source, features)) = self.current.take() {
            let info = source.info();
            for note in info.notes {
                if !self.notes.contains(&note) {
                    self.notes.push(note);
                }
            }
            self.read.push(LayerRead { name: name.to_string(), features, source_crs: info.source_crs });
        }
    }
}

impl Iterator for AllLayers {
    type Item = Result<RawFeature, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((name, source, features)) = &mut self.current {
                match source.next() {
                    Some(Ok(mut raw)) => {
                        *features += 1;
                        raw.layer = Some(name.clone());
                        return Some(Ok(raw));
                    }
                    Some(Err(e)) => {
                        let e = crate::in_context(e, &format!("layer {name:?}"));
                        self.to_open.clear();
                        return Some(Err(e));
                    }
                    None => self.close_current(),
                }
            }
            let layer = self.to_open.pop()?;
            match open_layer(&mut self.archive, &layer, &self.options, self.given_crs.clone()) {
                Ok(source) => self.current = Some((Arc::from(layer.name.as_str()), source, 0)),
                Err(e) => {
                    self.to_open.clear();
                    return Some(Err(crate::in_context(e, &format!("layer {:?}", layer.name))));
                }
            }
        }
    }
}

impl FeatureSource for AllLayers {
    fn info(&self) -> SourceInfo {
        let mut layers = self.read.clone();
        if let Some((name, source, features)) = &self.current {
            layers.push(LayerRead {
                name: name.to_string(),
                features: *features,
                source_crs: source.info().source_crs,
            });
        }
        // One CRS for the whole source when every layer read had the same.
        let mut crs: Vec<&Option<String>> = layers.iter().map(|l| &l.source_crs).collect();
        crs.dedup();
        let source_crs = match crs.as_slice() {
            [one] => (*one).clone(),
            _ => None,
        };
        SourceInfo { format: "Shapefile".to_string(), layer: None, layers, source_crs, notes: self.notes.clone() }
    }
}

/// The members of the archive that may be data: files, not folders, outside `__MACOSX/`
/// and not hidden.
fn members(archive: &Archive) -> Result<Vec<Member>, ReadError> {
    let metadata = archive.metadata();
    let mut members = Vec::new();
    for index in 0..metadata.len() {
        let entry = metadata.entry(index).map_err(zip_error)?;
        if entry.is_dir() {
            continue;
        }
        let name = String::from_utf8_lossy(entry.name_raw()).replace('\\', "/");
        let (folder, file_name) = match name.rfind('/') {
            Some(at) => (&name[..=at], &name[at + 1..]),
            None => ("", name.as_str()),
        };
        let hidden = file_name.is_empty()
            || file_name.starts_with('.')
            || folder.split('/').any(|part| part.starts_with('.') && part != "." && part != ".." || part == "__MACOSX");
        if hidden {
            continue;
        }
        let (stem, extension) = match file_name.rfind('.') {
            Some(at) if at > 0 => (&file_name[..at], file_name[at + 1..].to_ascii_lowercase()),
            _ => (file_name, String::new()),
        };
        members.push(Member {
            index,
            folder: folder.to_string(),
            stem: stem.to_string(),
            extension,
            size: entry.size(),
            name: name.clone(),
        });
    }
    Ok(members)
}

/// The Shapefiles in the archive, in the archive's order.
fn layers(members: &[Member]) -> Vec<Layer> {
    let mut layers: Vec<Layer> = members
        .iter()
        .filter(|m| m.extension == "shp")
        .map(|shp| Layer {
            name: shp.stem.clone(),
            shp: shp.clone(),
            siblings: members
                .iter()
                .filter(|m| m.index != shp.index && m.folder == shp.folder && m.stem.eq_ignore_ascii_case(&shp.stem))
                .cloned()
                .collect(),
        })
        .collect();
    // Two folders with a Shapefile of the same name: each is named with its folder.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for layer in &layers {
        *seen.entry(layer.name.to_lowercase()).or_default() += 1;
    }
    for layer in &mut layers {
        if seen.get(&layer.name.to_lowercase()).is_some_and(|&n| n > 1) {
            layer.name = format!("{}{}", layer.shp.folder, layer.shp.stem);
        }
    }
    layers
}

/// The Shapefile the layer option names.
fn choose<'l>(layers: &'l [Layer], wanted: &str) -> Result<&'l Layer, ReadError> {
    let names = || layers.iter().map(|l| format!("{:?}", l.name)).collect::<Vec<_>>().join(", ");
    let wanted = strip_suffix_ignore_case(wanted, ".shp");
    layers.iter().find(|l| l.name.eq_ignore_ascii_case(wanted)).ok_or_else(|| {
        ReadError::Unreadable(geoflow_core::report::Problem::new(
            geoflow_core::report::ProblemCode::UnsupportedFormat,
            format!("the zip archive holds no Shapefile named {wanted:?}: its layers are {}", names()),
        ))
    })
}

fn strip_suffix_ignore_case<'s>(text: &'s str, suffix: &str) -> &'s str {
    match text.len().checked_sub(suffix.len()) {
        Some(at) if text.is_char_boundary(at) && text[at..].eq_ignore_ascii_case(suffix) => &text[..at],
        _ => text,
    }
}

/// An archive without a Shapefile: its one member, if that is a file geoflow reads.
fn open_single(
    archive: &mut Archive,
    members: &[Member],
    options: &ReadOptions,
) -> Result<Box<dyn FeatureSource + 'static>, ReadError> {
    if members.iter().any(|m| m.extension == "kml") {
        return Err(unsupported(
            "a KMZ (zipped KML) file",
            "convert it first, e.g. ogr2ogr -f GeoJSON out.geojson in.kmz",
        ));
    }
    if members.iter().any(|m| m.name.eq_ignore_ascii_case("xl/workbook.xml")) {
        return Err(unsupported("an Excel workbook", "save the sheet as CSV"));
    }
    let [member] = members else {
        let mut listed: Vec<&str> = members.iter().take(LISTED).map(|m| m.name.as_str()).collect();
        if members.len() > LISTED {
            listed.push("...");
        }
        let holds = match members.len() {
            0 => "nothing but folders and hidden files".to_string(),
            _ => listed.join(", "),
        };
        return Err(unsupported(
            "a zip archive holding no vector data",
            &format!(
                "zip a Shapefile (its .shp, .shx and .dbf) or a single GeoJSON, GeoPackage, FlatGeobuf, GeoParquet or \
                 CSV file; this archive holds {holds}"
            ),
        ));
    };
    let mut head = Vec::with_capacity(detect::HEAD_LEN);
    {
        let entry = archive.by_index(member.index).map_err(zip_error)?;
        entry.take(detect::HEAD_LEN as u64).read_to_end(&mut head).map_err(|e| member_error(e, &member.name))?;
    }
    match detect::detect(&head) {
        Detected::Unsupported { what, advice } => Err(unsupported(&format!("a zip archive holding {what}"), advice)),
        Detected::Format(Format::Zip) => {
            Err(unsupported("a zip archive inside a zip archive", "unpack the outer archive and load the inner one"))
        }
        Detected::Format(_) => {
            let mut file = tempfile::Builder::new().prefix("geoflow-unpack-").tempfile_in(options.scratch())?;
            extract(archive, member, file.as_file_mut())?;
            let source = crate::open_file(file.path(), options)?;
            Ok(Box::new(Unpacked { source, _dir: None, _file: Some(file), format_prefix: Some("zip") }))
        }
    }
}

/// Copies a member's bytes into `out`.
fn extract(archive: &mut Archive, member: &Member, out: &mut File) -> Result<(), ReadError> {
    if member.size > MAX_UNPACKED {
        return Err(malformed(
            "zip",
            format!(
                "{} would unpack to {} bytes, more than geoflow unpacks ({MAX_UNPACKED})",
                member.name, member.size
            ),
        ));
    }
    let entry = archive.by_index(member.index).map_err(zip_error)?;
    let mut writer = io::BufWriter::new(out);
    // The declared size bounds what is unpacked, whatever the compressed data says.
    let copied = io::copy(&mut entry.take(MAX_UNPACKED + 1), &mut writer).map_err(|e| member_error(e, &member.name))?;
    if copied > MAX_UNPACKED {
        return Err(malformed("zip", format!("{} unpacks to more than {MAX_UNPACKED} bytes", member.name)));
    }
    writer.flush()?;
    Ok(())
}

/// A small text member (`.prj`, `.cpg`).
fn read_text(archive: &mut Archive, member: &Member) -> Result<String, ReadError> {
    let entry = archive.by_index(member.index).map_err(zip_error)?;
    let mut bytes = Vec::new();
    entry.take(MAX_SIDECAR).read_to_end(&mut bytes).map_err(|e| member_error(e, &member.name))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn zip_error(e: ZipError) -> ReadError {
    match e {
        ZipError::Io(io) => member_error(io, "its directory"),
        ZipError::UnsupportedArchive(what) if what.to_lowercase().contains("password") => {
            unsupported("an encrypted zip archive", "zip the files again without a password")
        }
        ZipError::UnsupportedArchive(what) => {
            unsupported(&format!("a zip archive using a feature geoflow does not read ({what})"), "zip the files again")
        }
        ZipError::CompressionMethodNotSupported(method) => unsupported(
            &format!("a zip archive compressed with method {method}, not deflate"),
            "zip the files again with standard (deflate) compression",
        ),
        ZipError::InvalidPassword => unsupported("an encrypted zip archive", "zip the files again without a password"),
        other => malformed("zip", other),
    }
}

/// An error reading `what` from the archive: corrupt compressed data or a checksum mismatch
/// is the file's fault.
fn member_error(e: io::Error, what: &str) -> ReadError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            malformed("zip", format!("{what} is corrupt or truncated: {e}"))
        }
        io::ErrorKind::Unsupported => unsupported(
            &format!("a zip archive using a feature geoflow does not read ({e})"),
            "zip the files again with standard (deflate) compression",
        ),
        _ => ReadError::Io(e),
    }
}

/// A source read from files unpacked from the archive, which go when it does.
struct Unpacked {
    source: Box<dyn FeatureSource + 'static>,
    _dir: Option<tempfile::TempDir>,
    _file: Option<tempfile::NamedTempFile>,
    /// Said before the inner format's name (`zip GeoJSON`); a Shapefile is zipped by nature.
    format_prefix: Option<&'static str>,
}

impl Iterator for Unpacked {
    type Item = Result<RawFeature, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.source.next()
    }
}

impl FeatureSource for Unpacked {
    fn info(&self) -> SourceInfo {
        let mut info = self.source.info();
        if let Some(prefix) = self.format_prefix {
            info.format = format!("{prefix} {}", info.format);
        }
        info
    }
}
