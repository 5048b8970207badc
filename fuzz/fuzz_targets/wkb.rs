//! Arbitrary bytes through the WKB reader that reads stored geometries back. Besides panics,
//! it checks what must hold whatever the input:
//! - no geometry is reported deeper than `MAX_DEPTH`, and an error's offset is within the input;
//! - a geometry read has balanced calls, took at least 16 bytes per position and no more
//!   bytes than there are, and reads the same from exactly the bytes it took;
//! - the WKB that `encode` writes reads back whole.

#![no_main]

use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::wkb::{self, Header, Part, Reason, Visitor, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut calls = Calls::default();
    match wkb::walk(data, &mut calls) {
        Ok(len) => {
            assert!(len <= data.len(), "{len} bytes read of {}", data.len());
            assert_eq!(calls.open, 0, "a geometry begun and not ended");
            assert!(calls.positions * 16 <= len, "{} positions in {len} bytes", calls.positions);
            assert_eq!(wkb::walk(&data[..len], &mut Calls::default()), Ok(len), "read differently from its own bytes");
        }
        Err(e) => assert!(e.offset <= data.len(), "{e}, past the {} bytes", data.len()),
    }
    assert!(calls.deepest <= MAX_DEPTH, "a geometry at depth {}", calls.deepest);

    // The input's first bytes as ordinates of a line string, written and read back.
    let ordinates: Vec<f64> =
        data.chunks_exact(8).take(64).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
    let line = Geom::LineString(ordinates.chunks_exact(2).map(|p| Pos::xy(p[0], p[1])).collect());
    let written = wkb::encode(&line).wkb;
    assert_eq!(wkb::walk(&written, &mut Calls::default()), Ok(written.len()), "encode's output does not read back");
});

/// Counts the reader's calls.
#[derive(Default)]
struct Calls {
    open: i64,
    deepest: u32,
    positions: usize,
}

impl Visitor for Calls {
    fn begin(&mut self, _: &Header, part: Part, _: u32) -> Result<(), Reason> {
        self.open += 1;
        self.deepest = self.deepest.max(part.depth);
        Ok(())
    }

    fn position(&mut self, _: u32, _: f64, _: f64, _: Option<f64>) -> Result<(), Reason> {
        self.positions += 1;
        Ok(())
    }

    fn end(&mut self, _: &Header, _: Part) -> Result<(), Reason> {
        self.open -= 1;
        Ok(())
    }
}
