//! Arbitrary bytes as a file of any format: told by content, opened and read to the end by
//! `geoflow_formats::open` (zip, GeoPackage, FlatGeobuf, GeoParquet, CSV, gzip, GeoJSON), its
//! layers listed and the first split off, every feature read processed as a load would. The first
//! byte picks a format's magic to prepend, so that every reader sees mostly-garbage files of its
//! own. Besides panics, it checks that:
//! - a file-level error names what is wrong (a non-empty message);
//! - feature indices never go backwards within a source;
//! - every stored row's geometry is within WGS84 ranges.

#![no_main]

use std::io::Write;

use geoflow_core::process::{observe_schema, Processed, Processor};
use geoflow_core::report::Policy;
use geoflow_core::schema::SchemaBuilder;
use geoflow_formats::{open, ReadOptions};
use libfuzzer_sys::fuzz_target;

const MAGICS: &[&[u8]] = &[
    b"",
    b"PK\x03\x04",
    b"SQLite format 3\0",
    b"fgb\x03fgb\x01",
    b"PAR1",
    b"\x1f\x8b\x08\0\0\0\0\0\0\xff",
    b"x,y\n",
    b"{\"type\":\"FeatureCollection\",\"features\":[",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(MAGICS[usize::from(pick) % MAGICS.len()]).expect("written");
    file.write_all(rest).expect("written");
    let path = file.path().to_path_buf();
    // Listing and splitting layers read the same untrusted file.
    if let Ok(layers) = geoflow_formats::layers(&path) {
        if let Some(first) = layers.first() {
            let out = tempfile::NamedTempFile::new().expect("a temporary file");
            if let Err(e) = geoflow_formats::extract_layer(&path, first, out.path()) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    let options = ReadOptions { scratch_dir: Some(std::env::temp_dir()), ..ReadOptions::default() };
    let mut stream = std::fs::File::open(&path).expect("reopened");
    let source = match open(&mut stream, &path, &options) {
        Ok(source) => source,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut raws = Vec::new();
    let mut last = None;
    for raw in source.take(10_000) {
        match raw {
            Ok(raw) => {
                if let Some(last) = last {
                    assert!(raw.index >= last, "index {} after {last}", raw.index);
                }
                last = Some(raw.index);
                raws.push(raw);
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                break;
            }
        }
    }
    let mut schema = SchemaBuilder::default();
    raws.iter().for_each(|raw| observe_schema(raw, &mut schema));
    let processor = Processor::new(&schema.finish(), Policy::Repair);
    for raw in raws {
        if let Processed::Row(row, _) = processor.process(raw) {
            if let Some(b) = row.geometry.and_then(|g| g.bbox) {
                let inside = b.min_x >= -180.000001 && b.max_x <= 180.000001 && b.min_y >= -90.000001 && b.max_y <= 90.000001;
                assert!(inside, "a stored geometry outside WGS84: {b:?}");
            }
        }
    }
});
