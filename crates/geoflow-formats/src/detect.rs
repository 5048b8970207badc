//! Telling a file's format from its first bytes, never from its name.

use serde::{Deserialize, Serialize};

/// A format geoflow reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// GeoJSON, GeoJSON Text Sequences and newline-delimited GeoJSON.
    GeoJson,
    /// A zip archive: zipped Shapefiles.
    Zip,
    GeoPackage,
    FlatGeobuf,
    /// Apache Parquet with GeoParquet metadata.
    GeoParquet,
    /// Delimited text with a WKT column or longitude/latitude columns.
    Csv,
    /// gzip around one of the others.
    Gzip,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::GeoJson => "GeoJSON",
            Format::Zip => "zip",
            Format::GeoPackage => "GeoPackage",
            Format::FlatGeobuf => "FlatGeobuf",
            Format::GeoParquet => "GeoParquet",
            Format::Csv => "CSV",
            Format::Gzip => "gzip",
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    Format(Format),
    /// A file geoflow does not read: what it is, and what to do about it.
    Unsupported {
        what: &'static str,
        advice: &'static str,
    },
}

/// Bytes [`detect`] wants to see (fewer at the end of a short file).
pub const HEAD_LEN: usize = 4096;

const SHAPEFILE_CODE: [u8; 4] = [0x00, 0x00, 0x27, 0x0a];
const FLATGEOBUF_MAGIC: [u8; 3] = *b"fgb";
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// Tells the format of a file from its first bytes (up to [`HEAD_LEN`]).
pub fn detect(head: &[u8]) -> Detected {
    let unsupported = |what, advice| Detected::Unsupported { what, advice };
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0x1f, 0x8b]) {
        return Detected::Format(Format::Gzip);
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        return Detected::Format(Format::Zip);
    }
    if starts(SQLITE_MAGIC) {
        return Detected::Format(Format::GeoPackage);
    }
    if head.len() >= 8 && head[..3] == FLATGEOBUF_MAGIC && head[4..7] == FLATGEOBUF_MAGIC {
        return Detected::Format(Format::FlatGeobuf);
    }
    if starts(b"PAR1") {
        return Detected::Format(Format::GeoParquet);
    }
    if starts(&SHAPEFILE_CODE) {
        return unsupported(
            "a Shapefile .shp (or .shx) on its own",
            "put the .shp, .shx, .dbf and .prj files in one .zip and load that",
        );
    }
    let binary: &[(&[u8], &str, &str)] = &[
        (b"%PDF", "a PDF document", "export the features from it as GeoJSON or a GeoPackage"),
        (b"\x89PNG", "a PNG image", "geoflow loads vector features, not rasters"),
        (b"\xff\xd8\xff", "a JPEG image", "geoflow loads vector features, not rasters"),
        (b"GIF8", "a GIF image", "geoflow loads vector features, not rasters"),
        (b"II*\0", "a TIFF (or GeoTIFF) image", "geoflow loads vector features, not rasters"),
        (b"MM\0*", "a TIFF (or GeoTIFF) image", "geoflow loads vector features, not rasters"),
        (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "repack it as a .zip"),
        (b"Rar!", "a RAR archive", "repack it as a .zip"),
        (b"BZh", "a bzip2-compressed file", "compress it with gzip or zip instead"),
        (b"\xfd7zXZ\0", "an xz-compressed file", "compress it with gzip or zip instead"),
        (b"\x28\xb5\x2f\xfd", "a Zstandard-compressed file", "compress it with gzip or zip instead"),
        (b"\xd0\xcf\x11\xe0", "a Microsoft Office document", "save the table as CSV"),
        (b"\xff\xfe", "text in UTF-16", "save it as UTF-8"),
        (b"\xfe\xff", "text in UTF-16", "save it as UTF-8"),
    ];
    if let Some((_, what, advice)) = binary.iter().find(|(magic, _, _)| starts(magic)) {
        return unsupported(what, advice);
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let first = text.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    match first.map(|i| &text[i..]) {
        // An empty file: the GeoJSON reader says so.
        None => Detected::Format(Format::GeoJson),
        Some([b'{' | b'[' | 0x1e, ..]) => Detected::Format(Format::GeoJson),
        Some(rest @ [b'<', ..]) => {
            let lower: Vec<u8> = rest.iter().take(1024).map(u8::to_ascii_lowercase).collect();
            let has = |s: &str| lower.windows(s.len()).any(|w| w == s.as_bytes());
            if has("<kml") {
                unsupported("a KML document", "convert it first, e.g. ogr2ogr -f GeoJSON out.geojson in.kml")
            } else if has("<gpx") {
                unsupported("a GPX document", "convert it first, e.g. ogr2ogr -f GeoJSON out.geojson in.gpx")
            } else if has("gml") || has("wfs:") {
                unsupported("a GML document", "convert it first, e.g. ogr2ogr -f GeoJSON out.geojson in.gml")
            } else if has("<html") || has("<!doctype html") {
                unsupported("an HTML page", "check the URL or upload the data file itself")
            } else {
                unsupported("an XML document", "export the features as GeoJSON, a GeoPackage or CSV")
            }
        }
        Some(rest) if looks_like_text(rest) => Detected::Format(Format::Csv),
        Some(_) => unsupported(
            "binary data of a format geoflow does not recognise",
            "load GeoJSON, a zipped Shapefile, a GeoPackage, FlatGeobuf, GeoParquet or CSV",
        ),
    }
}

/// Text (UTF-8, no control characters but tabs and line breaks) in the head: a cut
/// multi-byte character at its end does not count against it. Text in a legacy 8-bit
/// encoding (Latin-1, Windows-1252) counts too when it has no ASCII control characters: a CSV
/// reader reads it as is and reports the cells that are not UTF-8.
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => {
            return head.iter().all(|&b| (b >= 0x20 && b != 0x7f) || matches!(b, b'\t' | b'\r' | b'\n'));
        }
    };
    !valid.is_empty() && valid.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_their_first_bytes() {
        let cases: &[(&[u8], Format)] = &[
            (b"{\"type\":\"FeatureCollection\"", Format::GeoJson),
            (b"\xef\xbb\xbf  \n{", Format::GeoJson),
            (b"\x1e{\"type\"", Format::GeoJson),
            (b"", Format::GeoJson),
            (b"\x1f\x8b\x08\0", Format::Gzip),
            (b"PK\x03\x04\x14\0", Format::Zip),
            (b"SQLite format 3\0\x10\0", Format::GeoPackage),
            (b"fgb\x03fgb\x01\0\0", Format::FlatGeobuf),
            (b"PAR1\x15\x04", Format::GeoParquet),
            (b"name,lon,lat\nA,1,2\n", Format::Csv),
            (b"WKT;name\n\"POINT (1 2)\";caf\xc3", Format::Csv),
            (b"lon,lat,name\n1,2,caf\xe9 cr\xe8me\n", Format::Csv),
        ];
        for (head, format) in cases {
            assert_eq!(detect(head), Detected::Format(*format), "{head:?}");
        }
    }

    #[test]
    fn known_formats_that_are_not_read_are_named() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x00\x00\x27\x0a\0\0\0\0", "Shapefile .shp"),
            (b"<?xml version=\"1.0\"?>\n<kml xmlns=", "KML"),
            (b"<?xml version=\"1.0\"?><gpx version", "GPX"),
            (b"<wfs:FeatureCollection", "GML"),
            (b"%PDF-1.7", "PDF"),
            (b"II*\0\x08\0", "TIFF"),
            (b"\x00\x01\x02\x03\xff", "binary data"),
        ];
        for (head, name) in cases {
            match detect(head) {
                Detected::Unsupported { what, .. } => assert!(what.contains(name), "{what} for {head:?}"),
                other => panic!("{other:?} for {head:?}"),
            }
        }
    }
}
