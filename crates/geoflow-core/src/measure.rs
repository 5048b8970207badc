//! Derived measures: geodesic area and length on the WGS84 ellipsoid, vertex count.

use geo::{Geodesic, GeodesicArea, Length};

use crate::geometry::Geom;
use crate::row::Measures;

/// Area (m²) of areal geometries, length (m) of lineal ones, and the vertex count.
/// A GeometryCollection sums the measures of its parts.
pub fn measures(geom: &Geom, geo: &geo::Geometry<f64>) -> Measures {
    let mut m = Measures { area_m2: None, length_m: None, vertices: geom.vertex_count() };
    accumulate(geo, &mut m);
    m
}

fn accumulate(geo: &geo::Geometry<f64>, m: &mut Measures) {
    let add = |slot: &mut Option<f64>, v: f64| *slot = Some(slot.unwrap_or(0.0) + v);
    match geo {
        geo::Geometry::Polygon(p) => add(&mut m.area_m2, p.geodesic_area_unsigned()),
        geo::Geometry::MultiPolygon(mp) => add(&mut m.area_m2, mp.0.iter().map(|p| p.geodesic_area_unsigned()).sum()),
        geo::Geometry::LineString(l) => add(&mut m.length_m, Geodesic.length(l)),
        geo::Geometry::MultiLineString(ml) => add(&mut m.length_m, ml.0.iter().map(|l| Geodesic.length(l)).sum()),
        geo::Geometry::GeometryCollection(gc) => gc.0.iter().for_each(|g| accumulate(g, m)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Pos;
    use crate::validate::to_geo;

    #[test]
    fn one_degree_cell_at_the_equator() {
        let ring: Vec<Pos> = [(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)].iter().map(|&(x, y)| Pos::xy(x, y)).collect();
        let g = Geom::Polygon(vec![ring]);
        let m = measures(&g, &to_geo(&g));
        // 1°×1° at the equator on WGS84: 12,308,778,361 m² (GeographicLib).
        assert!((m.area_m2.unwrap() - 12_308_778_361.0).abs() < 1e4, "{:?}", m.area_m2);
        assert_eq!(m.length_m, None);
        assert_eq!(m.vertices, 5);
        let l = Geom::LineString(vec![Pos::xy(0., 0.), Pos::xy(1., 0.)]);
        let m = measures(&l, &to_geo(&l));
        // One degree of longitude along the equator: 111,319.49 m.
        assert!((m.length_m.unwrap() - 111_319.49).abs() < 0.01, "{:?}", m.length_m);
    }
}
