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
use geoflow_core::wkb::{self, Header, Part, Reason, Visitor};
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
/// nothing after it: checked as the WKB reader walks it.
fn check_wkb(g: &EncodedGeometry) {
    let mut written = Written { kind: g.kind, has_z: g.has_z };
    let len = wkb::walk(&g.wkb, &mut written).unwrap_or_else(|e| panic!("stored WKB: {e}"));
    assert_eq!(len, g.wkb.len(), "bytes after the WKB geometry");
}

/// What the writer must have written.
struct Written {
    kind: GeometryKind,
    has_z: bool,
}

impl Visitor for Written {
    fn begin(&mut self, h: &Header, part: Part, _: u32) -> Result<(), Reason> {
        assert!(part.depth <= 16, "WKB nested too deeply");
        assert!(h.little_endian, "WKB byte order");
        assert_eq!(h.code, h.kind.wkb_code() + if self.has_z { 1000 } else { 0 }, "WKB type code (ISO, Z as stated)");
        let want = if part.parent.is_none() { Some(self.kind) } else { part.required_kind() };
        if let Some(want) = want {
            assert_eq!(h.kind, want, "WKB geometry type");
        }
        Ok(())
    }

    fn position(&mut self, _: u32, x: f64, y: f64, z: Option<f64>) -> Result<(), Reason> {
        assert!(
            x.is_finite() && y.is_finite() && z.is_none_or(f64::is_finite),
            "a stored geometry has a non-finite ordinate"
        );
        Ok(())
    }
}
