//! A fast validity check for polygons, decisive in the common cases.
//!
//! `geo`'s validation relates every pair of segments (and of rings, and of polygons), which
//! dominates ingest time for polygons of a few hundred vertices and explodes on thousands of
//! parts. Here segments are swept in x order and only pairs with overlapping boxes are tested
//! exactly; ring containment is answered through an R-tree of ring boxes. A proper crossing
//! or a shared stretch of boundary is certainly invalid, and rings that never meet are valid
//! once nesting is right. Only rings touching at single points — valid or not depending on
//! how they touch — are left to the full validation.

use std::borrow::Cow;

use geo::kernels::RobustKernel;
use geo::line_intersection::{line_intersection, LineIntersection};
use geo::{Coord, Line, Polygon};
use geo::{Kernel, Orientation};
use rstar::{RTree, RTreeObject, AABB};

use crate::report::ProblemCode;

/// The outcome of the fast check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Valid,
    Invalid(ProblemCode, String),
    /// Rings touch at points: the full validation decides.
    Unsure,
}

struct Seg {
    line: Line<f64>,
    min_x: f64,
    max_x: f64,
    min_y: f64,
    max_y: f64,
    ring: usize,
    index: usize,
}

struct Ring<'a> {
    coords: Cow<'a, [Coord<f64>]>,
    polygon: usize,
    /// 0 for an exterior ring, 1.. for holes.
    role: usize,
}

impl Ring<'_> {
    fn name(&self) -> String {
        match self.role {
            0 => format!("the exterior ring of polygon {}", self.polygon),
            h => format!("hole {} of polygon {}", h - 1, self.polygon),
        }
    }
}

struct RingBox {
    ring: usize,
    envelope: AABB<[f64; 2]>,
}

impl RTreeObject for RingBox {
    type Envelope = AABB<[f64; 2]>;
    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// A ring without consecutive repeated points (repeats are valid; they make zero-length
/// segments); borrowed when it has none, as most rings.
fn dedup(ring: &geo::LineString<f64>) -> Cow<'_, [Coord<f64>]> {
    if ring.0.windows(2).all(|w| w[0] != w[1]) {
        return Cow::Borrowed(&ring.0);
    }
    let mut out: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
    for c in &ring.0 {
        if out.last() != Some(c) {
            out.push(*c);
        }
    }
    Cow::Owned(out)
}

/// Checks the polygons of one Polygon or MultiPolygon.
pub fn check(polygons: &[&Polygon<f64>]) -> Verdict {
    let mut rings: Vec<Ring> = Vec::new();
    for (polygon, p) in polygons.iter().enumerate() {
        for (role, r) in std::iter::once(p.exterior()).chain(p.interiors()).enumerate() {
            let coords = dedup(r);
            if coords.len() < 4 || coords.first() != coords.last() {
                // Fewer than three distinct points: leave the wording to the full validation.
                return Verdict::Unsure;
            }
            rings.push(Ring { coords, polygon, role });
        }
    }
    if let Some(v) = crossings(&rings) {
        return v;
    }
    containment(&rings)
}

/// `Some` verdict when two segments meet other than as neighbours in a ring.
fn crossings(rings: &[Ring]) -> Option<Verdict> {
    let mut segs: Vec<Seg> = Vec::with_capacity(rings.iter().map(|r| r.coords.len()).sum());
    for (ring, r) in rings.iter().enumerate() {
        for (index, w) in r.coords.windows(2).enumerate() {
            segs.push(Seg {
                line: Line::new(w[0], w[1]),
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
    let mut unsure = false;
    for (i, s) in segs.iter().enumerate() {
        for t in &segs[i + 1..] {
            if t.min_x > s.max_x {
                break;
            }
            if t.min_y > s.max_y || t.max_y < s.min_y {
                continue;
            }
            let n = rings[s.ring].coords.len() - 1;
            let neighbours = s.ring == t.ring && {
                let (a, b) = (s.index.min(t.index), s.index.max(t.index));
                b == a + 1 || (a == 0 && b == n - 1)
            };
            // Neighbours share one vertex; unless they are collinear, that is all they share.
            let off_line = |p| RobustKernel::orient2d(s.line.start, s.line.end, p) != Orientation::Collinear;
            if neighbours && (off_line(t.line.start) || off_line(t.line.end)) {
                continue;
            }
            let Some(hit) = line_intersection(s.line, t.line) else { continue };
            let (code, what) = match hit {
                // Neighbours share their common vertex and nothing else.
                LineIntersection::SinglePoint { .. } if neighbours => continue,
                LineIntersection::SinglePoint { is_proper: false, .. } => {
                    unsure = true;
                    continue;
                }
                LineIntersection::SinglePoint { intersection, .. } => {
                    (crossing_code(s, t), format!("cross at ({}, {})", intersection.x, intersection.y))
                }
                LineIntersection::Collinear { intersection } => (
                    crossing_code(s, t),
                    format!(
                        "overlap along the segment ({}, {})–({}, {})",
                        intersection.start.x, intersection.start.y, intersection.end.x, intersection.end.y
                    ),
                ),
            };
            let who = if s.ring == t.ring {
                format!("segments of {}", rings[s.ring].name())
            } else {
                format!("{} and {}", rings[s.ring].name(), rings[t.ring].name())
            };
            return Some(Verdict::Invalid(code, format!("geometry is not OGC-valid: {who} {what}")));
        }
    }
    unsure.then_some(Verdict::Unsure)
}

fn crossing_code(s: &Seg, t: &Seg) -> ProblemCode {
    if s.ring == t.ring {
        ProblemCode::SelfIntersection
    } else {
        ProblemCode::RingsIntersect
    }
}

/// With no boundaries meeting, each ring lies wholly inside or outside every other: one
/// vertex tells which. Holes must lie in their own shell and in no other hole; a polygon may
/// lie inside another only within one of its holes.
fn containment(rings: &[Ring]) -> Verdict {
    if rings.len() == 1 {
        // A lone shell: nothing to nest.
        return Verdict::Valid;
    }
    let boxes: Vec<RingBox> = rings
        .iter()
        .enumerate()
        .map(|(ring, r)| {
            let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
            for c in r.coords.iter() {
                (lo[0], lo[1], hi[0], hi[1]) = (lo[0].min(c.x), lo[1].min(c.y), hi[0].max(c.x), hi[1].max(c.y));
            }
            RingBox { ring, envelope: AABB::from_corners(lo, hi) }
        })
        .collect();
    let tree = RTree::bulk_load(boxes);
    let shell_of = |polygon: usize| {
        rings.iter().position(|r| r.polygon == polygon && r.role == 0).expect("every polygon has a shell")
    };
    for (i, r) in rings.iter().enumerate() {
        let p = r.coords[0];
        let around: Vec<usize> = tree
            .locate_in_envelope_intersecting(&AABB::from_point([p.x, p.y]))
            .map(|b| b.ring)
            .filter(|&j| j != i && point_in_ring(p, &rings[j].coords))
            .collect();
        let invalid = |code, msg: String| Verdict::Invalid(code, format!("geometry is not OGC-valid: {msg}"));
        if r.role > 0 {
            if !around.contains(&shell_of(r.polygon)) {
                return invalid(ProblemCode::HoleOutsideShell, format!("{} is not inside its exterior ring", r.name()));
            }
            if let Some(&j) = around.iter().find(|&&j| rings[j].polygon == r.polygon && rings[j].role > 0) {
                return invalid(ProblemCode::HoleOutsideShell, format!("{} lies inside {}", r.name(), rings[j].name()));
            }
        } else {
            // Inside another polygon's shell but in none of its holes: the polygons overlap.
            for &j in &around {
                let q = &rings[j];
                if q.role == 0 && !around.iter().any(|&h| rings[h].polygon == q.polygon && rings[h].role > 0) {
                    return invalid(
                        ProblemCode::RingsIntersect,
                        format!("polygon {} lies inside polygon {}", r.polygon, q.polygon),
                    );
                }
            }
        }
    }
    Verdict::Valid
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
    use geo::{polygon, MultiPolygon, Validation};

    fn verdict(ps: &[&Polygon<f64>]) -> Verdict {
        check(ps)
    }

    #[test]
    fn agrees_with_full_validation() {
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
        let nested_holes = polygon!(
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [
                [(x: 1., y: 1.), (x: 1., y: 9.), (x: 9., y: 9.), (x: 9., y: 1.), (x: 1., y: 1.)],
                [(x: 2., y: 2.), (x: 2., y: 4.), (x: 4., y: 4.), (x: 4., y: 2.), (x: 2., y: 2.)],
            ],
        );
        let spike = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 15., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 0.)];
        let repeated = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 0.)];
        let touching_hole = polygon!(
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [[(x: 0., y: 5.), (x: 2., y: 4.), (x: 2., y: 6.), (x: 0., y: 5.)]],
        );
        // The closing segment runs back along the first: neighbours across the ring's end.
        let closing_spike = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 5., y: 0.), (x: 0., y: 0.)];
        for p in [
            &square,
            &with_hole,
            &repeated,
            &bowtie,
            &hole_outside,
            &nested_holes,
            &spike,
            &touching_hole,
            &closing_spike,
        ] {
            match verdict(&[p]) {
                Verdict::Valid => assert!(p.is_valid(), "called valid: {p:?}"),
                Verdict::Invalid(_, why) => assert!(!p.is_valid(), "called invalid ({why}): {p:?}"),
                Verdict::Unsure => {}
            }
        }
        assert_eq!(verdict(&[&square]), Verdict::Valid);
        assert!(matches!(verdict(&[&bowtie]), Verdict::Invalid(ProblemCode::SelfIntersection, _)));
        assert!(matches!(verdict(&[&hole_outside]), Verdict::Invalid(ProblemCode::HoleOutsideShell, _)));
        assert!(matches!(verdict(&[&nested_holes]), Verdict::Invalid(ProblemCode::HoleOutsideShell, _)));
        assert!(matches!(verdict(&[&spike]), Verdict::Invalid(ProblemCode::SelfIntersection, _)));
        assert_eq!(verdict(&[&touching_hole]), Verdict::Unsure);
        assert_ne!(verdict(&[&closing_spike]), Verdict::Valid);
        let far = polygon![(x: 20., y: 0.), (x: 30., y: 0.), (x: 30., y: 10.), (x: 20., y: 0.)];
        let inside = polygon![(x: 1., y: 1.), (x: 2., y: 1.), (x: 2., y: 2.), (x: 1., y: 1.)];
        let island = polygon![(x: 2.5, y: 2.5), (x: 3., y: 2.5), (x: 3., y: 3.), (x: 2.5, y: 2.5)];
        assert_eq!(verdict(&[&square, &far]), Verdict::Valid);
        assert!(matches!(verdict(&[&square, &inside]), Verdict::Invalid(ProblemCode::RingsIntersect, _)));
        assert!(matches!(verdict(&[&inside, &square]), Verdict::Invalid(ProblemCode::RingsIntersect, _)));
        assert!(matches!(verdict(&[&square, &square]), Verdict::Invalid(ProblemCode::RingsIntersect, _)));
        assert_eq!(verdict(&[&with_hole, &island]), Verdict::Valid, "an island in a lake is valid");
        assert!(MultiPolygon(vec![with_hole.clone(), island.clone()]).is_valid());
    }
}
