//! GeoPackage geometry blobs: encoding, header parsing, the envelope of their WKB, and the
//! `ST_*` SQL functions that the R-tree triggers call.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use geoflow_core::row::EncodedGeometry;
use geoflow_core::wkb::{self, Reason, Visitor, WkbError};

/// The SRS every geometry is stored in (WGS 84 lon/lat).
pub const SRS_ID: i32 = 4326;

/// Flags byte: little-endian header, envelope `[minx, maxx, miny, maxy]`.
const FLAGS_ENVELOPE_XY_LE: u8 = (1 << 1) | 1;
/// Flags byte: little-endian header, empty geometry, no envelope.
const FLAGS_EMPTY_LE: u8 = (1 << 4) | 1;

/// `[min_x, max_x, min_y, max_y]`, the order GeoPackage headers use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    pub min_x: f64,
    pub max_x: f64,
    pub min_y: f64,
    pub max_y: f64,
}

impl Envelope {
    fn of_point(x: f64, y: f64) -> Envelope {
        Envelope { min_x: x, max_x: x, min_y: y, max_y: y }
    }

    fn expand(env: &mut Option<Envelope>, x: f64, y: f64) {
        if x.is_nan() || y.is_nan() {
            return;
        }
        match env {
            Some(e) => {
                e.min_x = e.min_x.min(x);
                e.max_x = e.max_x.max(x);
                e.min_y = e.min_y.min(y);
                e.max_y = e.max_y.max(y);
            }
            None => *env = Some(Envelope::of_point(x, y)),
        }
    }
}

/// Writes the GeoPackage binary form of `geom` into `buf` (cleared first): the standard
/// header with SRS 4326, the XY envelope (or the empty flag), then the ISO WKB verbatim.
pub fn encode_into(buf: &mut Vec<u8>, geom: &EncodedGeometry) {
    buf.clear();
    buf.reserve(8 + 32 + geom.wkb.len());
    buf.extend_from_slice(b"GP");
    buf.push(0);
    match geom.bbox {
        Some(b) => {
            buf.push(FLAGS_ENVELOPE_XY_LE);
            buf.extend_from_slice(&SRS_ID.to_le_bytes());
            for v in [b.min_x, b.max_x, b.min_y, b.max_y] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        None => {
            buf.push(FLAGS_EMPTY_LE);
            buf.extend_from_slice(&SRS_ID.to_le_bytes());
        }
    }
    buf.extend_from_slice(&geom.wkb);
}

/// The parts of a GeoPackage geometry header the SQL functions need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header<'a> {
    pub empty: bool,
    pub envelope: Option<Envelope>,
    pub wkb: &'a [u8],
}

/// Parses a GeoPackage binary header; `None` when the blob is not one.
pub fn parse_header(blob: &[u8]) -> Option<Header<'_>> {
    if blob.len() < 8 || &blob[..2] != b"GP" {
        return None;
    }
    let flags = blob[3];
    let little = flags & 1 == 1;
    let envelope_len = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        _ => return None,
    };
    let header_len = 8 + envelope_len;
    if blob.len() < header_len {
        return None;
    }
    let envelope = if envelope_len == 0 {
        None
    } else {
        let d = |i: usize| read_f64(&blob[8 + 8 * i..16 + 8 * i], little);
        Some(Envelope { min_x: d(0), max_x: d(1), min_y: d(2), max_y: d(3) })
    };
    Some(Header { empty: (flags >> 4) & 1 == 1, envelope, wkb: &blob[header_len..] })
}

fn read_f64(b: &[u8], little: bool) -> f64 {
    let a: [u8; 8] = b.try_into().expect("8 bytes");
    if little {
        f64::from_le_bytes(a)
    } else {
        f64::from_be_bytes(a)
    }
}

/// The XY envelope of a WKB geometry: `Ok(None)` when it has no coordinates (empty), an
/// error when the bytes are not a well-formed WKB geometry (see [`wkb::walk`]).
pub fn wkb_envelope(wkb: &[u8]) -> Result<Option<Envelope>, WkbError> {
    let mut extent = Extent(None);
    wkb::walk(wkb, &mut extent)?;
    Ok(extent.0)
}

/// The envelope of the positions so far; NaN positions (as in `POINT EMPTY`) are left out.
struct Extent(Option<Envelope>);

impl Visitor for Extent {
    fn position(&mut self, _: u32, x: f64, y: f64, _: Option<f64>) -> Result<(), Reason> {
        Envelope::expand(&mut self.0, x, y);
        Ok(())
    }
}

/// `ST_IsEmpty(geom)`: 1 when empty, 0 when not, NULL for NULL or a blob that is not a
/// GeoPackage geometry.
pub fn st_is_empty(value: ValueRef<'_>) -> Option<bool> {
    let ValueRef::Blob(blob) = value else {
        return None;
    };
    let header = parse_header(blob)?;
    if header.empty {
        return Some(true);
    }
    if header.envelope.is_some() {
        return Some(false);
    }
    wkb_envelope(header.wkb).ok().map(|e| e.is_none())
}

/// The envelope `ST_MinX` and friends read: the header's, else one computed from the WKB.
pub fn st_envelope(value: ValueRef<'_>) -> Option<Envelope> {
    let ValueRef::Blob(blob) = value else {
        return None;
    };
    let header = parse_header(blob)?;
    if let Some(env) = header.envelope {
        return Some(env);
    }
    if header.empty {
        return None;
    }
    wkb_envelope(header.wkb).ok().flatten()
}

/// Registers `ST_IsEmpty`, `ST_MinX`, `ST_MaxX`, `ST_MinY` and `ST_MaxY`, which the R-tree
/// triggers of the GeoPackage spatial index call.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function("ST_IsEmpty", 1, flags, |ctx| Ok(st_is_empty(ctx.get_raw(0))))?;
    conn.create_scalar_function("ST_MinX", 1, flags, |ctx| Ok(st_envelope(ctx.get_raw(0)).map(|e| e.min_x)))?;
    conn.create_scalar_function("ST_MaxX", 1, flags, |ctx| Ok(st_envelope(ctx.get_raw(0)).map(|e| e.max_x)))?;
    conn.create_scalar_function("ST_MinY", 1, flags, |ctx| Ok(st_envelope(ctx.get_raw(0)).map(|e| e.min_y)))?;
    conn.create_scalar_function("ST_MaxY", 1, flags, |ctx| Ok(st_envelope(ctx.get_raw(0)).map(|e| e.max_y)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geoflow_core::row::{Bbox, GeometryKind};

    fn le_point(x: f64, y: f64) -> Vec<u8> {
        let mut w = vec![1];
        w.extend_from_slice(&1u32.to_le_bytes());
        w.extend_from_slice(&x.to_le_bytes());
        w.extend_from_slice(&y.to_le_bytes());
        w
    }

    fn be_linestring_z(points: &[(f64, f64, f64)]) -> Vec<u8> {
        let mut w = vec![0];
        w.extend_from_slice(&1002u32.to_be_bytes());
        w.extend_from_slice(&(points.len() as u32).to_be_bytes());
        for (x, y, z) in points {
            for v in [x, y, z] {
                w.extend_from_slice(&v.to_be_bytes());
            }
        }
        w
    }

    fn polygon(rings: &[&[(f64, f64)]]) -> Vec<u8> {
        let mut w = vec![1];
        w.extend_from_slice(&3u32.to_le_bytes());
        w.extend_from_slice(&(rings.len() as u32).to_le_bytes());
        for ring in rings {
            w.extend_from_slice(&(ring.len() as u32).to_le_bytes());
            for (x, y) in ring.iter() {
                w.extend_from_slice(&x.to_le_bytes());
                w.extend_from_slice(&y.to_le_bytes());
            }
        }
        w
    }

    fn collection(code: u32, members: &[Vec<u8>]) -> Vec<u8> {
        let mut w = vec![1];
        w.extend_from_slice(&code.to_le_bytes());
        w.extend_from_slice(&(members.len() as u32).to_le_bytes());
        for m in members {
            w.extend_from_slice(m);
        }
        w
    }

    #[test]
    fn envelopes_of_all_types() {
        assert_eq!(
            wkb_envelope(&le_point(1.0, 2.0)),
            Ok(Some(Envelope { min_x: 1.0, max_x: 1.0, min_y: 2.0, max_y: 2.0 }))
        );
        let line = be_linestring_z(&[(-1.0, 5.0, 9.0), (3.0, -2.0, 100.0)]);
        assert_eq!(wkb_envelope(&line), Ok(Some(Envelope { min_x: -1.0, max_x: 3.0, min_y: -2.0, max_y: 5.0 })));
        let poly = polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 0.0)]]);
        assert_eq!(wkb_envelope(&poly), Ok(Some(Envelope { min_x: 0.0, max_x: 4.0, min_y: 0.0, max_y: 3.0 })));
        let mp = collection(4, &[le_point(1.0, 1.0), le_point(-3.0, 7.0)]);
        assert_eq!(wkb_envelope(&mp), Ok(Some(Envelope { min_x: -3.0, max_x: 1.0, min_y: 1.0, max_y: 7.0 })));
        let mpoly = collection(6, std::slice::from_ref(&poly));
        assert_eq!(wkb_envelope(&mpoly).unwrap().unwrap().max_x, 4.0);
        let gc = collection(7, &[le_point(10.0, 10.0), line, collection(5, &[])]);
        assert_eq!(wkb_envelope(&gc), Ok(Some(Envelope { min_x: -1.0, max_x: 10.0, min_y: -2.0, max_y: 10.0 })));
        assert_eq!(wkb_envelope(&collection(7, &[])), Ok(None));
        assert_eq!(wkb_envelope(&le_point(f64::NAN, f64::NAN)), Ok(None));
    }

    #[test]
    fn corrupt_wkb_is_an_error_not_a_panic() {
        let poly = polygon(&[&[(0.0, 0.0), (4.0, 0.0), (4.0, 3.0), (0.0, 0.0)]]);
        for cut in 0..poly.len() {
            assert!(wkb_envelope(&poly[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = vec![1];
        huge.extend_from_slice(&2u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(wkb_envelope(&huge), Err(WkbError { offset: 5, reason: Reason::CountTooLarge(u32::MAX) }));
        let mut bad_type = le_point(0.0, 0.0);
        bad_type[1] = 99;
        assert_eq!(wkb_envelope(&bad_type), Err(WkbError { offset: 1, reason: Reason::TypeCode(99) }));
        assert_eq!(wkb_envelope(&[7, 1, 0, 0, 0]), Err(WkbError { offset: 0, reason: Reason::ByteOrder(7) }));
        // Deeply nested collections stop at the depth limit.
        let mut nested = collection(7, &[]);
        for _ in 0..100 {
            nested = collection(7, &[nested]);
        }
        assert_eq!(wkb_envelope(&nested).map_err(|e| e.reason), Err(Reason::TooDeep));
        // Every prefix and every single-byte corruption of a valid blob is handled.
        let gc = collection(7, &[le_point(1.0, 2.0), poly]);
        for i in 0..gc.len() {
            for b in [0u8, 1, 0xff] {
                let mut g = gc.clone();
                g[i] = b;
                let _ = wkb_envelope(&g);
            }
        }
    }

    #[test]
    fn blobs_round_trip_through_the_sql_functions() {
        let geom = EncodedGeometry {
            kind: GeometryKind::Point,
            has_z: false,
            bbox: Some(Bbox::of_point(3.5, -1.25)),
            wkb: le_point(3.5, -1.25),
        };
        let mut buf = Vec::new();
        encode_into(&mut buf, &geom);
        assert_eq!(&buf[..4], &[b'G', b'P', 0, 0b11]);
        assert_eq!(buf.len(), 8 + 32 + 21);
        let h = parse_header(&buf).unwrap();
        assert!(!h.empty);
        assert_eq!(h.wkb, &geom.wkb[..]);
        assert_eq!(st_is_empty(ValueRef::Blob(&buf)), Some(false));
        assert_eq!(st_envelope(ValueRef::Blob(&buf)).unwrap().min_y, -1.25);

        let empty = EncodedGeometry {
            kind: GeometryKind::GeometryCollection,
            has_z: false,
            bbox: None,
            wkb: collection(7, &[]),
        };
        encode_into(&mut buf, &empty);
        assert_eq!(buf[3], 0b1_0001);
        assert_eq!(st_is_empty(ValueRef::Blob(&buf)), Some(true));
        assert_eq!(st_envelope(ValueRef::Blob(&buf)), None);

        // No envelope in the header: computed from the WKB.
        let mut bare = b"GP\0\x01".to_vec();
        bare.extend_from_slice(&4326i32.to_le_bytes());
        bare.extend_from_slice(&be_linestring_z(&[(1.0, 2.0, 3.0), (5.0, 6.0, 7.0)]));
        assert_eq!(st_is_empty(ValueRef::Blob(&bare)), Some(false));
        assert_eq!(st_envelope(ValueRef::Blob(&bare)).unwrap().max_x, 5.0);
        bare.truncate(bare.len() - 3);
        assert_eq!(st_is_empty(ValueRef::Blob(&bare)), None);
        assert_eq!(st_envelope(ValueRef::Blob(&bare)), None);

        assert_eq!(st_is_empty(ValueRef::Null), None);
        assert_eq!(st_is_empty(ValueRef::Blob(b"XP\0\x01\0\0\0\0")), None);
        assert_eq!(st_is_empty(ValueRef::Blob(b"GP\0\x0f\0\0\0\0")), None);
        assert_eq!(st_envelope(ValueRef::Blob(b"GP\0\x03\0\0\0\0\0")), None);
    }
}
