//! ISO WKB (little-endian; Z types are the 2D code + 1000).

use crate::geometry::{Geom, Pos};
use crate::row::EncodedGeometry;

/// Encodes a geometry; `has_z` follows the positions (validated to be consistent).
pub fn encode(geom: &Geom) -> EncodedGeometry {
    let has_z = geom.has_z();
    let mut wkb = Vec::with_capacity(9 + geom.vertex_count() as usize * if has_z { 24 } else { 16 });
    write(&mut wkb, geom, has_z);
    EncodedGeometry { kind: geom.kind(), has_z, bbox: geom.bbox(), wkb }
}

fn header(out: &mut Vec<u8>, geom: &Geom, has_z: bool) {
    out.push(1);
    let code = geom.kind().wkb_code() + if has_z { 1000 } else { 0 };
    out.extend_from_slice(&code.to_le_bytes());
}

fn count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn pos(out: &mut Vec<u8>, p: &Pos, has_z: bool) {
    out.extend_from_slice(&p.x.to_le_bytes());
    out.extend_from_slice(&p.y.to_le_bytes());
    if has_z {
        out.extend_from_slice(&p.z.to_le_bytes());
    }
}

fn points(out: &mut Vec<u8>, ps: &[Pos], has_z: bool) {
    count(out, ps.len());
    ps.iter().for_each(|p| pos(out, p, has_z));
}

fn rings(out: &mut Vec<u8>, rs: &[Vec<Pos>], has_z: bool) {
    count(out, rs.len());
    rs.iter().for_each(|r| points(out, r, has_z));
}

fn write(out: &mut Vec<u8>, geom: &Geom, has_z: bool) {
    header(out, geom, has_z);
    match geom {
        Geom::Point(p) => pos(out, p, has_z),
        Geom::LineString(ps) => points(out, ps, has_z),
        Geom::Polygon(rs) => rings(out, rs, has_z),
        Geom::MultiPoint(ps) => {
            count(out, ps.len());
            for p in ps {
                write(out, &Geom::Point(*p), has_z);
            }
        }
        Geom::MultiLineString(ls) => {
            count(out, ls.len());
            for l in ls {
                header(out, &Geom::LineString(Vec::new()), has_z);
                points(out, l, has_z);
            }
        }
        Geom::MultiPolygon(ps) => {
            count(out, ps.len());
            for rs in ps {
                header(out, &Geom::Polygon(Vec::new()), has_z);
                rings(out, rs, has_z);
            }
        }
        Geom::GeometryCollection(gs) => {
            count(out, gs.len());
            gs.iter().for_each(|g| write(out, g, has_z));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_and_polygon_bytes() {
        let e = encode(&Geom::Point(Pos::xy(1.0, 2.0)));
        let mut want = vec![1u8, 1, 0, 0, 0];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&2.0f64.to_le_bytes());
        assert_eq!(e.wkb, want);
        let z = encode(&Geom::LineString(vec![Pos { x: 0., y: 0., z: 5. }, Pos { x: 1., y: 1., z: 6. }]));
        assert!(z.has_z);
        assert_eq!(&z.wkb[1..5], &1002u32.to_le_bytes());
        assert_eq!(z.wkb.len(), 9 + 2 * 24);
        let empty = encode(&Geom::MultiPolygon(vec![]));
        assert_eq!(empty.bbox, None);
        assert_eq!(empty.wkb, vec![1, 6, 0, 0, 0, 0, 0, 0, 0]);
    }
}
