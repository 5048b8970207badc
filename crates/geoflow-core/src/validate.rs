//! OGC Simple Features validity, by way of the `geo` crate's validation.

use geo::algorithm::validation::{
    InvalidGeometry, InvalidGeometryCollection, InvalidLineString, InvalidMultiLineString, InvalidMultiPolygon,
    InvalidPolygon, Validation,
};

use crate::geometry::{Geom, Pos};
use crate::report::{Problem, ProblemCode};

/// Every OGC validity problem of a geometry that already passed the RFC 7946 checks.
/// Points and MultiPoints are always valid once their coordinates are finite.
pub fn ogc_problems(geom: &Geom, geo: &geo::Geometry<f64>) -> Vec<Problem> {
    use crate::simple_rings::{check, Verdict};
    let verdict = match geo {
        geo::Geometry::Point(_) | geo::Geometry::MultiPoint(_) => Verdict::Valid,
        geo::Geometry::Polygon(p) => check(&[p]),
        geo::Geometry::MultiPolygon(mp) => check(&mp.0.iter().collect::<Vec<_>>()),
        _ => Verdict::Unsure,
    };
    match verdict {
        Verdict::Valid => return Vec::new(),
        Verdict::Invalid(code, message) => return vec![Problem::new(code, message)],
        Verdict::Unsure => {}
    }
    if matches!(geom, Geom::Point(_) | Geom::MultiPoint(_)) {
        return Vec::new();
    }
    geo.validation_errors()
        .into_iter()
        .map(|e| Problem::new(code_of(&e), format!("geometry is not OGC-valid: {e}")))
        .collect()
}

fn code_of(e: &InvalidGeometry) -> ProblemCode {
    match e {
        InvalidGeometry::InvalidPolygon(p) => polygon_code(p),
        InvalidGeometry::InvalidMultiPolygon(InvalidMultiPolygon::InvalidPolygon(_, p)) => polygon_code(p),
        InvalidGeometry::InvalidMultiPolygon(_) => ProblemCode::RingsIntersect,
        InvalidGeometry::InvalidLineString(InvalidLineString::TooFewPoints)
        | InvalidGeometry::InvalidMultiLineString(InvalidMultiLineString::InvalidLineString(
            _,
            InvalidLineString::TooFewPoints,
        )) => ProblemCode::Degenerate,
        InvalidGeometry::InvalidGeometryCollection(InvalidGeometryCollection::InvalidGeometry(_, inner)) => {
            code_of(inner)
        }
        _ => ProblemCode::InvalidGeometry,
    }
}

fn polygon_code(p: &InvalidPolygon) -> ProblemCode {
    match p {
        InvalidPolygon::TooFewPointsInRing(_) => ProblemCode::Degenerate,
        InvalidPolygon::SelfIntersection(_) => ProblemCode::SelfIntersection,
        InvalidPolygon::InteriorRingNotContainedInExteriorRing(_) => ProblemCode::HoleOutsideShell,
        InvalidPolygon::IntersectingRingsOnALine(..) | InvalidPolygon::IntersectingRingsOnAnArea(..) => {
            ProblemCode::RingsIntersect
        }
        InvalidPolygon::NonFiniteCoord(..) => ProblemCode::NonFiniteCoordinate,
    }
}

fn coord(p: &Pos) -> geo::Coord<f64> {
    geo::Coord { x: p.x, y: p.y }
}

fn line(ps: &[Pos]) -> geo::LineString<f64> {
    geo::LineString(ps.iter().map(coord).collect())
}

fn polygon(rings: &[Vec<Pos>]) -> geo::Polygon<f64> {
    match rings.split_first() {
        None => geo::Polygon::new(geo::LineString(Vec::new()), Vec::new()),
        Some((outer, inner)) => geo::Polygon::new(line(outer), inner.iter().map(|r| line(r)).collect()),
    }
}

/// The 2D `geo` form of a geometry (Z is not used by validity, repair or measures).
pub fn to_geo(geom: &Geom) -> geo::Geometry<f64> {
    match geom {
        Geom::Point(p) => geo::Geometry::Point(geo::Point(coord(p))),
        Geom::MultiPoint(ps) => {
            geo::Geometry::MultiPoint(geo::MultiPoint(ps.iter().map(|p| geo::Point(coord(p))).collect()))
        }
        Geom::LineString(ps) => geo::Geometry::LineString(line(ps)),
        Geom::MultiLineString(ls) => {
            geo::Geometry::MultiLineString(geo::MultiLineString(ls.iter().map(|l| line(l)).collect()))
        }
        Geom::Polygon(rs) => geo::Geometry::Polygon(polygon(rs)),
        Geom::MultiPolygon(ps) => {
            geo::Geometry::MultiPolygon(geo::MultiPolygon(ps.iter().map(|p| polygon(p)).collect()))
        }
        Geom::GeometryCollection(gs) => {
            geo::Geometry::GeometryCollection(geo::GeometryCollection(gs.iter().map(to_geo).collect()))
        }
    }
}

fn from_line(l: &geo::LineString<f64>) -> Vec<Pos> {
    l.0.iter().map(|c| Pos::xy(c.x, c.y)).collect()
}

fn from_polygon(p: &geo::Polygon<f64>) -> Vec<Vec<Pos>> {
    std::iter::once(p.exterior()).chain(p.interiors()).map(from_line).collect()
}

/// A Polygon when there is one part, else a MultiPolygon.
pub fn from_geo_multipolygon(mp: &geo::MultiPolygon<f64>) -> Geom {
    match mp.0.as_slice() {
        [one] => Geom::Polygon(from_polygon(one)),
        many => Geom::MultiPolygon(many.iter().map(from_polygon).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(geom: Geom) -> Vec<ProblemCode> {
        ogc_problems(&geom, &to_geo(&geom)).iter().map(|p| p.code).collect()
    }

    fn ring(pts: &[(f64, f64)]) -> Vec<Pos> {
        pts.iter().map(|&(x, y)| Pos::xy(x, y)).collect()
    }

    #[test]
    fn ogc_validity() {
        let square = ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)]);
        assert!(problems(Geom::Polygon(vec![square.clone()])).is_empty());
        // Winding order is not an error (RFC 7946 §3.1.6).
        let mut cw = square.clone();
        cw.reverse();
        assert!(problems(Geom::Polygon(vec![cw])).is_empty());
        let bowtie = ring(&[(0., 0.), (1., 1.), (1., 0.), (0., 1.), (0., 0.)]);
        assert_eq!(problems(Geom::Polygon(vec![bowtie])), vec![ProblemCode::SelfIntersection]);
        let hole_outside = ring(&[(5., 5.), (6., 5.), (6., 6.), (5., 5.)]);
        assert_eq!(problems(Geom::Polygon(vec![square.clone(), hole_outside])), vec![ProblemCode::HoleOutsideShell]);
        assert_eq!(problems(Geom::LineString(ring(&[(1., 1.), (1., 1.)]))), vec![ProblemCode::Degenerate]);
        let overlapping = problems(Geom::MultiPolygon(vec![vec![square.clone()], vec![square]]));
        assert!(
            !overlapping.is_empty() && overlapping.iter().all(|c| *c == ProblemCode::RingsIntersect),
            "{overlapping:?}"
        );
    }
}
