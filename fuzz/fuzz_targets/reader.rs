//! Arbitrary bytes through the whole path a load takes: framing (with the default limits, with
//! small ones, and in one-byte reads), the schema pass, and processing under every policy.
//! Besides panics, it checks what must hold whatever the input:
//! - feature indices are consecutive from 0, and a feature with a fault carries no text;
//! - reading in tiny pieces frames the input exactly as reading it at once;
//! - a stored row's geometry is well-formed WKB (little-endian, of the stated kind and
//!   dimension) with finite ordinates, and its index is the feature's;
//! - its measures are finite and not negative, and a polygon's area is no more than that of
//!   its lon/lat extent;
//! - an issue's index is the feature's, and its action is the one the policy calls for.

#![no_main]

use std::io::{self, Read};

use geoflow_core::process::{observe_schema, Processed, Processor};
use geoflow_core::reader::{GeoJsonReader, RawFeature, ReaderOptions};
use geoflow_core::report::{Action, Policy};
use geoflow_core::row::{EncodedGeometry, GeometryKind, Row};
use geoflow_core::schema::SchemaBuilder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raws = frame(data, ReaderOptions::default());
    let trickled = frame(OneByte(data), ReaderOptions::default());
    assert_eq!(summary(&raws), summary(&trickled), "reading in one-byte pieces changed the framing");
    process_all(&raws.0);
    let small = frame(data, ReaderOptions { max_feature_bytes: 256, max_depth: 4 });
    process_all(&small.0);
});

/// A reader that hands out one byte per call.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// The features read before the first error, and the error's text.
fn frame<R: Read>(src: R, opts: ReaderOptions) -> (Vec<RawFeature>, Option<String>) {
    let mut raws = Vec::new();
    let mut reader = GeoJsonReader::new(src, opts);
    while let Some(item) = reader.next() {
        match item {
            Ok(raw) => {
                assert_eq!(raw.index, raws.len() as u64, "feature indices must be consecutive from 0");
                assert!(raw.fault.is_none() || raw.bytes.is_empty(), "a feature with a fault has text");
                raws.push(raw);
            }
            Err(e) => {
                assert!(reader.next().is_none(), "the reader went on after an error");
                return (raws, Some(e.to_string()));
            }
        }
    }
    (raws, None)
}

type Summary = (Vec<(u64, u64, Vec<u8>, Option<String>)>, Option<String>);

fn summary((raws, error): &(Vec<RawFeature>, Option<String>)) -> Summary {
    let features =
        raws.iter().map(|r| (r.index, r.offset, r.bytes.clone(), r.fault.as_ref().map(|p| p.to_string()))).collect();
    (features, error.clone())
}

fn process_all(raws: &[RawFeature]) {
    let mut schema = SchemaBuilder::default();
    raws.iter().for_each(|r| observe_schema(r, &mut schema));
    let schema = schema.finish();
    for policy in [Policy::Skip, Policy::Reject, Policy::Repair] {
        let processor = Processor::new(&schema, policy);
        for raw in raws {
            match processor.process(raw) {
                Processed::Row(row, issue) => {
                    assert_eq!(row.index, raw.index);
                    if let Some(g) = &row.geometry {
                        check_wkb(g);
                    }
                    check_measures(&row);
                    if let Some(issue) = issue {
                        assert_eq!((policy, issue.action, issue.index), (Policy::Repair, Action::Repaired, raw.index));
                    }
                }
                Processed::Invalid(issue) => {
                    assert_eq!(issue.index, raw.index);
                    let want = if policy == Policy::Reject { Action::Rejected } else { Action::Skipped };
                    assert_eq!(issue.action, want);
                }
            }
        }
    }
}

fn check_measures(row: &Row) {
    let m = row.measures;
    for v in [m.area_m2, m.length_m].into_iter().flatten() {
        assert!(v.is_finite() && v >= 0.0, "measure {v}");
    }
    // A valid (so non-overlapping) polygon covers no more than its lon/lat extent.
    if let (Some(area), Some(g)) = (m.area_m2, &row.geometry) {
        if let (GeometryKind::Polygon | GeometryKind::MultiPolygon, Some(b)) = (g.kind, g.bbox) {
            const AUTHALIC_RADIUS_M: f64 = 6_371_007.2;
            let extent = AUTHALIC_RADIUS_M.powi(2)
                * (b.max_x - b.min_x).to_radians()
                * (b.max_y.to_radians().sin() - b.min_y.to_radians().sin());
            assert!(area <= extent * 1.02 + 1.0, "area {area} m² over the {extent} m² of its extent {b:?}");
        }
    }
}

/// Little-endian ISO WKB of the stated kind and dimension, with finite ordinates, and
/// nothing after it.
fn check_wkb(g: &EncodedGeometry) {
    assert!(g.wkb.len() >= 5 && g.wkb[0] == 1, "WKB must start with a little-endian byte order mark");
    let mut at = 0;
    geometry(&g.wkb, &mut at, Some(g.kind.wkb_code()), g.has_z, 0);
    assert_eq!(at, g.wkb.len(), "bytes after the WKB geometry");
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> &'a [u8] {
    let s = b.get(*at..*at + n).expect("WKB ends early");
    *at += n;
    s
}

fn u32_at(b: &[u8], at: &mut usize) -> u32 {
    u32::from_le_bytes(take(b, at, 4).try_into().unwrap())
}

fn positions(b: &[u8], at: &mut usize, n: u32, z: bool) {
    for _ in 0..n {
        for _ in 0..if z { 3 } else { 2 } {
            let v = f64::from_le_bytes(take(b, at, 8).try_into().unwrap());
            assert!(v.is_finite(), "a stored geometry has a non-finite ordinate");
        }
    }
}

fn geometry(b: &[u8], at: &mut usize, want: Option<u32>, z: bool, depth: usize) {
    assert!(depth <= 16, "WKB nested too deeply");
    assert_eq!(take(b, at, 1), [1], "WKB byte order");
    let code = u32_at(b, at);
    assert_eq!((code / 1000 == 1, code / 1000 <= 1), (z, true), "WKB Z flag");
    let base = code % 1000;
    if let Some(want) = want {
        assert_eq!(base, want, "WKB geometry type");
    }
    match base {
        1 => positions(b, at, 1, z),
        2 => {
            let n = u32_at(b, at);
            positions(b, at, n, z);
        }
        3 => {
            for _ in 0..u32_at(b, at) {
                let n = u32_at(b, at);
                positions(b, at, n, z);
            }
        }
        4..=7 => {
            let part = [Some(1), Some(2), Some(3), None][(base - 4) as usize];
            for _ in 0..u32_at(b, at) {
                geometry(b, at, part, z, depth + 1);
            }
        }
        other => panic!("unknown WKB geometry type {other}"),
    }
}
