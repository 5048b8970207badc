//! A fast proof of validity for the common case: polygons whose rings neither cross nor touch.
//!
//! `geo`'s validation compares every pair of segments, which dominates ingest time for
//! polygons of a few hundred vertices. Here segments are swept in x order and only pairs with
//! overlapping boxes are tested exactly, so clean polygons are proven valid in near-linear
//! time. Anything unusual — a touch, a spike, a hole outside its shell, nested parts — is not
//! decided here: the caller falls back to the full validation, which also explains the problem.

use geo::line_intersection::{line_intersection, LineIntersection};
use geo::{Coord, Line, MultiPolygon, Polygon};

struct Seg {
    line: Line<f64>,
    min_x: f64,
    max_x: f64,
    min_y: f64,
    max_y: f64,
    ring: usize,
    index: usize,
}

/// A ring without consecutive repeated points (repeats are valid; they make zero-length segments).
fn dedup(ring: &geo::LineString<f64>) -> Vec<Coord<f64>> {
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
    for c in &ring.0 {
        if out.last() != Some(c) {
            out.push(*c);
        }
    }
    out
}

/// `true` when the polygons are certainly OGC-valid; `false` means "not proven".
pub fn proven_valid(polygons: &[&Polygon<f64>]) -> bool {
    let mut rings: Vec<Vec<Coord<f64>>> = Vec::new();
    // (first ring, number of rings) of each polygon
    let mut spans = Vec::with_capacity(polygons.len());
    for p in polygons {
        let first = rings.len();
        for r in std::iter::once(p.exterior()).chain(p.interiors()) {
            let r = dedup(r);
            // A closed ring needs three distinct points.
            if r.len() < 4 || r.first() != r.last() {
                return false;
            }
            rings.push(r);
        }
        spans.push((first, rings.len() - first));
    }
    if !no_crossings(&rings) {
        return false;
    }
    // No boundaries meet, so each ring lies wholly inside or outside every other ring and
    // one vertex tells which.
    let inside = |a: usize, b: usize| point_in_ring(rings[a][0], &rings[b]);
    for (i, &(first, n)) in spans.iter().enumerate() {
        for hole in first + 1..first + n {
            if !inside(hole, first) || (first + 1..first + n).any(|other| other != hole && inside(hole, other)) {
                return false;
            }
        }
        for (j, &(other, m)) in spans.iter().enumerate() {
            if i != j && inside(first, other) && !(other + 1..other + m).any(|h| inside(first, h)) {
                return false;
            }
        }
    }
    true
}

pub fn proven_valid_multi(mp: &MultiPolygon<f64>) -> bool {
    proven_valid(&mp.0.iter().collect::<Vec<_>>())
}

/// No two segments meet, except neighbours in a ring at their shared vertex.
fn no_crossings(rings: &[Vec<Coord<f64>>]) -> bool {
    let mut segs: Vec<Seg> = Vec::with_capacity(rings.iter().map(|r| r.len()).sum());
    for (ring, r) in rings.iter().enumerate() {
        for (index, w) in r.windows(2).enumerate() {
            let line = Line::new(w[0], w[1]);
            segs.push(Seg {
                line,
                min_x: w[0].x.min(w[1].x),
                max_x: w[0].x.max(w[1].x),
                min_y: w[0].y.min(w[1].y),
                max_y: w[0].y.max(w[1].y),
                ring,
                index,
            });
        }
    }
    segs.sort_unstable_by(|a, b| a.min_x.total_cmp(&b.min_x));
    for (i, s) in segs.iter().enumerate() {
        for t in &segs[i + 1..] {
            if t.min_x > s.max_x {
                break;
            }
            if t.min_y > s.max_y || t.max_y < s.min_y {
                continue;
            }
            let Some(hit) = line_intersection(s.line, t.line) else { continue };
            let n = rings[s.ring].len() - 1;
            let neighbours = s.ring == t.ring && {
                let (a, b) = (s.index.min(t.index), s.index.max(t.index));
                b == a + 1 || (a == 0 && b == n - 1)
            };
            if !neighbours {
                return false;
            }
            // Neighbours share exactly one vertex; a collinear overlap is a spike.
            if matches!(hit, LineIntersection::Collinear { .. }) || n < 3 {
                return false;
            }
        }
    }
    true
}

/// Crossing-number test; `p` is known not to lie on the ring.
fn point_in_ring(p: Coord<f64>, ring: &[Coord<f64>]) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.y > p.y) != (b.y > p.y) {
            let x = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y);
            if p.x < x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{polygon, Validation};

    #[test]
    fn agrees_with_full_validation_where_it_decides() {
        let square = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)];
        let with_hole = polygon!(
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [[(x: 2., y: 2.), (x: 2., y: 4.), (x: 4., y: 4.), (x: 4., y: 2.), (x: 2., y: 2.)]],
        );
        let bowtie = polygon![(x: 0., y: 0.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 1.), (x: 0., y: 0.)];
        let hole_outside = polygon!(
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [[(x: 20., y: 2.), (x: 20., y: 4.), (x: 24., y: 4.), (x: 20., y: 2.)]],
        );
        let spike = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 15., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 0.)];
        let repeated = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 0.)];
        for (p, valid) in [(&square, true), (&with_hole, true), (&repeated, true), (&bowtie, false), (&hole_outside, false), (&spike, false)] {
            assert_eq!(p.is_valid(), valid, "{p:?}");
            let proven = proven_valid(&[p]);
            assert!(!proven || valid, "proved an invalid polygon valid: {p:?}");
            assert_eq!(proven, valid, "{p:?}");
        }
        let far = polygon![(x: 20., y: 0.), (x: 30., y: 0.), (x: 30., y: 10.), (x: 20., y: 0.)];
        let inside = polygon![(x: 1., y: 1.), (x: 2., y: 1.), (x: 2., y: 2.), (x: 1., y: 1.)];
        let island = polygon![(x: 2.5, y: 2.5), (x: 3., y: 2.5), (x: 3., y: 3.), (x: 2.5, y: 2.5)];
        assert!(proven_valid(&[&square, &far]));
        assert!(!proven_valid(&[&square, &inside]));
        assert!(!proven_valid(&[&square, &square]));
        assert!(proven_valid(&[&with_hole, &island]), "an island in a lake is valid");
        assert!(MultiPolygon(vec![with_hole.clone(), island.clone()]).is_valid());
    }
}
