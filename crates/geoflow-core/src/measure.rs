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
        // RFC 7946 does not require a winding, so orient first. A ring valid in the plane can
        // leave its shell along long geodesic edges, so that its hole covers more of the
        // ellipsoid than its shell: such a polygon covers nothing, as on the closed-form path.
        return p.orient(Direction::Default).geodesic_area_unsigned().max(0.0);
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
///
/// Near the centre — every vertex of a small feature — no trigonometric function is needed:
/// sin β (β the authalic latitude) is a polynomial in the latitude difference whose
/// coefficients are worked out once per feature, the longitude difference takes its sine and
/// cosine from their series, and the scale factor from a series in the angular distance.
/// The terms left out are below 1e-17 there (a tenth of a nanometre on the ground);
/// [`EqualArea::project_exactly`] covers the rest.
struct EqualArea {
    lon0: f64,
    lat0: f64,
    sin_beta0: f64,
    cos_beta0: f64,
    /// sin β − sin β0 = Σ c[k]·dᵏ⁺¹, d the latitude difference in radians.
    sin_beta_series: [f64; 5],
    qp: f64,
    rq: f64,
}

/// Latitude and longitude differences (radians) up to which [`EqualArea::project`] uses its
/// series: 0.23°, beyond the 0.1° that a vertex of a small feature lies from its centre.
const SERIES_RANGE: f64 = 0.004;
/// Latitudes (degrees) beyond which it does not: near a pole cos β = √(1 − sin²β) magnifies
/// the last bit of sin β into centimetres.
const SERIES_MAX_LATITUDE: f64 = 89.0;

impl EqualArea {
    fn centred_at(lon0_deg: f64, lat0_deg: f64) -> EqualArea {
        let qp = q(1.0);
        let (s0, c0) = lat0_deg.to_radians().sin_cos();
        let sin_beta0 = (q(s0) / qp).clamp(-1.0, 1.0);
        // The Taylor coefficients q⁽ᵏ⁾(s0)/k!, k = 1..5, from q'(s) = 2(1 − e²)/(1 − e²s²)².
        let (x2, u) = (E2 * s0 * s0, 1.0 - E2 * s0 * s0);
        let (c, c2) = (8.0 * (1.0 - E2) * E2, 8.0 * (1.0 - E2) * E2 * E2);
        let q1 = 2.0 * (1.0 - E2) / (u * u);
        let q2 = c * s0 / u.powi(3) / 2.0;
        let q3 = c * (1.0 + 5.0 * x2) / u.powi(4) / 6.0;
        let q4 = c2 * s0 * (18.0 + 30.0 * x2) / u.powi(5) / 24.0;
        let q5 = c2 * (18.0 + 252.0 * x2 + 210.0 * x2 * x2) / u.powi(6) / 120.0;
        // sin(φ0 + d) − s0 = Σ a_k·dᵏ.
        let (a1, a2, a3, a4, a5) = (c0, -s0 / 2.0, -c0 / 6.0, s0 / 24.0, c0 / 120.0);
        // q(s0 + Δs) − q(s0) composed with Δs(d), by powers of d.
        let b = [
            q1 * a1,
            q1 * a2 + q2 * a1 * a1,
            q1 * a3 + 2.0 * q2 * a1 * a2 + q3 * a1.powi(3),
            q1 * a4 + q2 * (a2 * a2 + 2.0 * a1 * a3) + 3.0 * q3 * a1 * a1 * a2 + q4 * a1.powi(4),
            q1 * a5
                + q2 * (2.0 * a1 * a4 + 2.0 * a2 * a3)
                + q3 * (3.0 * a1 * a1 * a3 + 3.0 * a1 * a2 * a2)
                + 4.0 * q4 * a1.powi(3) * a2
                + q5 * a1.powi(5),
        ];
        EqualArea {
            lon0: lon0_deg,
            lat0: lat0_deg,
            sin_beta0,
            cos_beta0: (1.0 - sin_beta0 * sin_beta0).sqrt(),
            sin_beta_series: b.map(|b| b / qp),
            qp,
            rq: A * (qp / 2.0).sqrt(),
        }
    }

    /// Metres on the projection plane.
    fn project(&self, lon_deg: f64, lat_deg: f64) -> (f64, f64) {
        let d = (lat_deg - self.lat0).to_radians();
        let dl = (lon_deg - self.lon0).to_radians();
        if d.abs() > SERIES_RANGE || dl.abs() > SERIES_RANGE || self.lat0.abs() > SERIES_MAX_LATITUDE {
            return self.project_exactly(lon_deg, lat_deg);
        }
        let [b1, b2, b3, b4, b5] = self.sin_beta_series;
        let sin_beta = (self.sin_beta0 + d * (b1 + d * (b2 + d * (b3 + d * (b4 + d * b5))))).clamp(-1.0, 1.0);
        let cos_beta = (1.0 - sin_beta * sin_beta).sqrt();
        let dl2 = dl * dl;
        let sin_dl = dl * (1.0 - dl2 * (1.0 / 6.0) * (1.0 - dl2 * (1.0 / 20.0) * (1.0 - dl2 * (1.0 / 42.0))));
        let cos_dl = 1.0 - dl2 * 0.5 * (1.0 - dl2 * (1.0 / 12.0) * (1.0 - dl2 * (1.0 / 30.0)));
        // k = sqrt(2 / (1 + cos ψ)) = (1 − w)^(−1/2) with w = (1 − cos ψ)/2 < 1e-5.
        let w = (1.0 - (self.sin_beta0 * sin_beta + self.cos_beta0 * cos_beta * cos_dl)) / 2.0;
        let k = 1.0 + w * (0.5 + w * (0.375 + w * 0.3125));
        self.plane(k, sin_beta, cos_beta, sin_dl, cos_dl)
    }

    /// The projection through the trigonometric functions themselves.
    fn project_exactly(&self, lon_deg: f64, lat_deg: f64) -> (f64, f64) {
        let sin_beta = (q(lat_deg.to_radians().sin()) / self.qp).clamp(-1.0, 1.0);
        let cos_beta = (1.0 - sin_beta * sin_beta).sqrt();
        let (sin_dl, cos_dl) = (lon_deg - self.lon0).to_radians().sin_cos();
        let k = (2.0 / (1.0 + self.sin_beta0 * sin_beta + self.cos_beta0 * cos_beta * cos_dl)).sqrt();
        self.plane(k, sin_beta, cos_beta, sin_dl, cos_dl)
    }

    fn plane(&self, k: f64, sin_beta: f64, cos_beta: f64, sin_dl: f64, cos_dl: f64) -> (f64, f64) {
        (
            self.rq * k * cos_beta * sin_dl,
            self.rq * k * (self.cos_beta0 * sin_beta - self.sin_beta0 * cos_beta * cos_dl),
        )
    }
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
    fn the_series_projection_matches_the_trigonometric_one() {
        let e = E2.sqrt();
        for i in 0..=2000 {
            let s = -1.0 + i as f64 / 1000.0;
            let exact = (1.0 - E2) * (s / (1.0 - E2 * s * s) + (e * s).atanh() / e);
            assert!((q(s) - exact).abs() <= 4.0 * f64::EPSILON * exact.abs(), "q({s})");
        }
        let mut seed = 11;
        for _ in 0..20_000 {
            let (lon0, lat0) = (lcg(&mut seed) * 360.0 - 180.0, lcg(&mut seed) * 180.0 - 90.0);
            let p = EqualArea::centred_at(lon0, lat0);
            // Up to the edge of the series' range, and a little beyond it.
            let reach = SERIES_RANGE.to_degrees() * 1.2;
            let lon = lon0 + (lcg(&mut seed) * 2.0 - 1.0) * reach;
            let lat = (lat0 + (lcg(&mut seed) * 2.0 - 1.0) * reach).clamp(-90.0, 90.0);
            let (fast, exact) = (p.project(lon, lat), p.project_exactly(lon, lat));
            // Metres: a micrometre would be far finer than any coordinate.
            assert!(
                (fast.0 - exact.0).abs() < 1e-6 && (fast.1 - exact.1).abs() < 1e-6,
                "{fast:?} {exact:?} at ({lon0}, {lat0}) → ({lon}, {lat})"
            );
        }
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
