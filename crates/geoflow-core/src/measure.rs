//! Derived measures: geodesic area and length on the WGS84 ellipsoid, vertex count.
//!
//! Exact geodesic computations (GeographicLib, through `geo`) cost an inverse geodesic
//! problem per edge. Most features are small, and for those closed forms on the ellipsoid
//! are as good (checked by the tests below): area through the Lambert azimuthal equal-area
//! projection of the ellipsoid centred on the feature, length through the local radii of
//! curvature at each segment's mid-latitude. They agree with GeographicLib within 1 ppm — far below what 6-decimal coordinates
//! (±0.1 m) can resolve. Larger features take the exact path.

use geo::orient::{Direction, Orient};
use geo::{Coord, Geodesic, GeodesicArea, Length, LineString, Polygon};

use crate::geometry::Geom;
use crate::row::Measures;

/// Features (areas) or segments (lengths) spanning less than this, in degrees, use the
/// closed forms.
const SMALL_AREA_DEG: f64 = 0.2;
const SMALL_SEGMENT_DEG: f64 = 0.05;

// WGS84
const A: f64 = 6_378_137.0;
const F: f64 = 1.0 / 298.257_223_563;
const E2: f64 = F * (2.0 - F);

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
        geo::Geometry::Polygon(p) => add(&mut m.area_m2, polygon_area(p)),
        geo::Geometry::MultiPolygon(mp) => add(&mut m.area_m2, mp.0.iter().map(polygon_area).sum()),
        geo::Geometry::LineString(l) => add(&mut m.length_m, line_length(l)),
        geo::Geometry::MultiLineString(ml) => add(&mut m.length_m, ml.0.iter().map(line_length).sum()),
        geo::Geometry::GeometryCollection(gc) => gc.0.iter().for_each(|g| accumulate(g, m)),
        _ => {}
    }
}

/// Geodesic area of a polygon (holes subtracted), m².
pub fn polygon_area(p: &Polygon<f64>) -> f64 {
    let (mut min, mut max) = (Coord { x: f64::MAX, y: f64::MAX }, Coord { x: f64::MIN, y: f64::MIN });
    for c in p.exterior().0.iter() {
        (min.x, min.y, max.x, max.y) = (min.x.min(c.x), min.y.min(c.y), max.x.max(c.x), max.y.max(c.y));
    }
    if p.exterior().0.is_empty() {
        return 0.0;
    }
    if max.x - min.x > SMALL_AREA_DEG || max.y - min.y > SMALL_AREA_DEG {
        // GeographicLib's polygon area expects counter-clockwise shells and clockwise holes;
        // RFC 7946 does not require a winding, so orient first.
        return p.orient(Direction::Default).geodesic_area_unsigned();
    }
    let projection = EqualArea::centred_at((min.x + max.x) / 2.0, (min.y + max.y) / 2.0);
    let ring_area = |r: &LineString<f64>| {
        let mut points = r.0.iter().map(|c| projection.project(c.x, c.y));
        let Some(mut previous) = points.next() else { return 0.0 };
        let mut twice = 0.0;
        for p in points {
            twice += previous.0 * p.1 - p.0 * previous.1;
            previous = p;
        }
        (twice / 2.0).abs()
    };
    let holes: f64 = p.interiors().iter().map(ring_area).sum();
    (ring_area(p.exterior()) - holes).max(0.0)
}

/// Lambert azimuthal equal-area projection of the WGS84 ellipsoid (through the authalic
/// sphere), centred on a feature so that distortion there is negligible.
struct EqualArea {
    lon0: f64,
    lat0: f64,
    sin_phi0: f64,
    cos_phi0: f64,
    sin_beta0: f64,
    cos_beta0: f64,
    qp: f64,
    rq: f64,
}

impl EqualArea {
    fn centred_at(lon0_deg: f64, lat0_deg: f64) -> EqualArea {
        let qp = q(1.0);
        let (sin_phi0, cos_phi0) = lat0_deg.to_radians().sin_cos();
        let beta0 = (q(sin_phi0) / qp).clamp(-1.0, 1.0).asin();
        EqualArea {
            lon0: lon0_deg,
            lat0: lat0_deg,
            sin_phi0,
            cos_phi0,
            sin_beta0: beta0.sin(),
            cos_beta0: beta0.cos(),
            qp,
            rq: A * (qp / 2.0).sqrt(),
        }
    }

    /// Metres on the projection plane. Vertices near the centre take their sines from short
    /// series around it rather than from the trigonometric functions, which cost most here.
    fn project(&self, lon_deg: f64, lat_deg: f64) -> (f64, f64) {
        let sin_phi = match near_sin_cos((lat_deg - self.lat0).to_radians()) {
            Some((sin_d, cos_d)) => self.sin_phi0 * cos_d + self.cos_phi0 * sin_d,
            None => lat_deg.to_radians().sin(),
        };
        let sin_beta = (q(sin_phi) / self.qp).clamp(-1.0, 1.0);
        let cos_beta = (1.0 - sin_beta * sin_beta).sqrt();
        let dl = (lon_deg - self.lon0).to_radians();
        let (sin_dl, cos_dl) = near_sin_cos(dl).unwrap_or_else(|| dl.sin_cos());
        let k = (2.0 / (1.0 + self.sin_beta0 * sin_beta + self.cos_beta0 * cos_beta * cos_dl)).sqrt();
        (
            self.rq * k * cos_beta * sin_dl,
            self.rq * k * (self.cos_beta0 * sin_beta - self.sin_beta0 * cos_beta * cos_dl),
        )
    }
}

/// Sine and cosine of an angle of at most 0.01 rad (0.57°), from their Taylor series: the
/// first omitted terms are below 1e-20 of the result there.
fn near_sin_cos(a: f64) -> Option<(f64, f64)> {
    if a.abs() > 0.01 {
        return None;
    }
    let a2 = a * a;
    let sin = a * (1.0 - a2 * (1.0 / 6.0) * (1.0 - a2 * (1.0 / 20.0) * (1.0 - a2 * (1.0 / 42.0))));
    let cos = 1.0 - a2 * 0.5 * (1.0 - a2 * (1.0 / 12.0) * (1.0 - a2 * (1.0 / 30.0)));
    Some((sin, cos))
}

/// The authalic function q(φ) of the WGS84 ellipsoid, from sin φ:
/// (1 − e²)·(s / (1 − e²s²) + atanh(e·s) / e). With x = e·s, atanh(x)/x = Σ x²ᵏ/(2k + 1), and
/// x² ≤ e² < 0.0067, so nine terms reach full precision at every latitude.
fn q(sin_phi: f64) -> f64 {
    const INVERSE_ODDS: [f64; 8] =
        [1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0];
    let x2 = E2 * sin_phi * sin_phi;
    let atanh_over_x = INVERSE_ODDS.iter().fold(1.0 / 17.0, |acc, c| acc * x2 + c);
    (1.0 - E2) * sin_phi * (1.0 / (1.0 - x2) + atanh_over_x)
}

/// Geodesic length of a line, m.
pub fn line_length(l: &LineString<f64>) -> f64 {
    l.0.windows(2).map(|w| segment_length(w[0], w[1])).sum()
}

fn segment_length(a: Coord<f64>, b: Coord<f64>) -> f64 {
    let (dlon, dlat) = (b.x - a.x, b.y - a.y);
    if dlon.abs() > SMALL_SEGMENT_DEG || dlat.abs() > SMALL_SEGMENT_DEG {
        return Geodesic.length(&LineString(vec![a, b]));
    }
    let (s, c) = ((a.y + b.y) / 2.0).to_radians().sin_cos();
    let w = 1.0 - E2 * s * s;
    let meridional = A * (1.0 - E2) / (w * w.sqrt());
    let prime_vertical = A / w.sqrt();
    // Both legs are under 6 km: no overflow for `hypot` to guard against.
    let (north, east) = (meridional * dlat.to_radians(), prime_vertical * c * dlon.to_radians());
    (north * north + east * east).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Pos;
    use crate::validate::to_geo;

    #[test]
    fn one_degree_cell_at_the_equator() {
        let ring: Vec<Pos> =
            [(0., 0.), (1., 0.), (1., 1.), (0., 1.), (0., 0.)].iter().map(|&(x, y)| Pos::xy(x, y)).collect();
        let g = Geom::Polygon(vec![ring]);
        let m = measures(&g, &to_geo(&g));
        // 1°×1° at the equator on WGS84: 12,308,778,361 m² (GeographicLib).
        assert!((m.area_m2.unwrap() - 12_308_778_361.0).abs() < 1e4, "{:?}", m.area_m2);
        assert_eq!(m.length_m, None);
        assert_eq!(m.vertices, 5);
        let l = Geom::LineString(vec![Pos::xy(0., 0.), Pos::xy(1., 0.)]);
        let m = measures(&l, &to_geo(&l));
        // Winding does not matter (RFC 7946 §3.1.6): a clockwise 10°×10° square has the same area.
        let ccw: Vec<Pos> =
            [(0., 0.), (10., 0.), (10., 10.), (0., 10.), (0., 0.)].iter().map(|&(x, y)| Pos::xy(x, y)).collect();
        let cw: Vec<Pos> = ccw.iter().rev().copied().collect();
        let (a, b) = (Geom::Polygon(vec![ccw]), Geom::Polygon(vec![cw]));
        let (area_a, area_b) = (measures(&a, &to_geo(&a)).area_m2.unwrap(), measures(&b, &to_geo(&b)).area_m2.unwrap());
        assert!((area_a - area_b).abs() < 1.0 && area_a > 1.2e12 && area_a < 1.3e12, "{area_a} {area_b}");
        // One degree of longitude along the equator: 111,319.49 m.
        assert!((m.length_m.unwrap() - 111_319.49).abs() < 0.01, "{:?}", m.length_m);
    }

    /// Deterministic pseudo-random numbers in [0, 1).
    fn lcg(state: &mut u64) -> f64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn series_match_the_functions_they_replace() {
        let e = E2.sqrt();
        for i in 0..=2000 {
            let s = -1.0 + i as f64 / 1000.0;
            let exact = (1.0 - E2) * (s / (1.0 - E2 * s * s) + (e * s).atanh() / e);
            assert!((q(s) - exact).abs() <= 4.0 * f64::EPSILON * exact.abs(), "q({s})");
            let a = (i as f64 - 1000.0) * 1e-5;
            let (sin, cos) = near_sin_cos(a).expect("within the series' range");
            assert!((sin - a.sin()).abs() <= f64::EPSILON * a.abs() && (cos - a.cos()).abs() <= f64::EPSILON, "{a}");
        }
        assert_eq!(near_sin_cos(0.011), None);
    }

    #[test]
    fn closed_forms_agree_with_geographiclib() {
        let mut seed = 7;
        for _ in 0..2000 {
            let (cx, cy) = (lcg(&mut seed) * 360.0 - 180.0, lcg(&mut seed) * 170.0 - 85.0);
            let r = SMALL_AREA_DEG / 2.0 * lcg(&mut seed).max(0.01);
            let n = 3 + (lcg(&mut seed) * 60.0) as usize;
            let mut pts: Vec<Coord<f64>> = (0..n)
                .map(|i| {
                    let t = i as f64 / n as f64 * std::f64::consts::TAU;
                    let rr = r * (0.6 + 0.4 * lcg(&mut seed));
                    Coord { x: cx + rr * t.cos(), y: cy + rr * t.sin() }
                })
                .collect();
            pts.push(pts[0]);
            let poly = Polygon::new(LineString(pts.clone()), vec![]);
            let (fast, exact) = (polygon_area(&poly), poly.geodesic_area_unsigned());
            assert!(((fast - exact) / exact).abs() < 1e-6, "area {fast} vs {exact} at ({cx}, {cy}) r={r}");
            for w in pts.windows(2) {
                let (a, b) = (w[0], w[1]);
                let (fast, exact) = (segment_length(a, b), Geodesic.length(&LineString(vec![a, b])));
                assert!((fast - exact).abs() <= 1e-6 * exact + 1e-6, "length {fast} vs {exact} for {a:?} {b:?}");
            }
        }
    }
}
