//! The `repair` policy: close rings and rebuild invalid polygons, then prove the result valid.

use geo::MakeValid;

use crate::geometry::Geom;
use crate::report::Problem;
use crate::validate::{from_geo_multipolygon, ogc_problems, to_geo};

/// A repaired geometry and a note of what changed, or why it could not be repaired.
pub fn repair(geom: Geom, problems: &[Problem]) -> Result<(Geom, String), String> {
    if let Some(p) = problems.iter().find(|p| !p.code.repairable()) {
        return Err(format!("{} cannot be repaired", p.code));
    }
    let had_z = geom.has_z();
    let mut notes = Vec::new();
    let mut geom = geom;
    let closed = close_rings(&mut geom);
    if closed > 0 {
        notes.push(format!("closed {closed} ring{}", if closed == 1 { "" } else { "s" }));
    }
    let geom = make_valid(geom, &mut notes)?;
    let remaining = ogc_problems(&geom, &to_geo(&geom));
    if let Some(p) = remaining.first() {
        return Err(format!("the repaired geometry is still invalid: {}", p.message));
    }
    let mut geom = geom;
    if had_z && !geom.has_z() {
        notes.push("dropped Z from the rebuilt polygons".into());
    } else if had_z && has_2d_positions(&geom) {
        // Rebuilt parts are 2D: the whole geometry goes 2D so its dimensions stay consistent.
        geom.drop_z();
        notes.push("dropped Z (rebuilt polygons are 2D)".into());
    }
    Ok((geom, notes.join(", ")))
}

fn has_2d_positions(geom: &Geom) -> bool {
    let mut found = false;
    geom.for_each_pos(&mut |p| found |= !p.has_z());
    found
}

fn close_rings(geom: &mut Geom) -> usize {
    let close = |r: &mut Vec<crate::geometry::Pos>| {
        if r.len() > 1 && !r[0].same(&r[r.len() - 1]) {
            r.push(r[0]);
            1
        } else {
            0
        }
    };
    match geom {
        Geom::Polygon(rs) => rs.iter_mut().map(close).sum(),
        Geom::MultiPolygon(ps) => ps.iter_mut().flatten().map(close).sum(),
        Geom::GeometryCollection(gs) => gs.iter_mut().map(close_rings).sum(),
        _ => 0,
    }
}

/// Rebuilds invalid polygons with the triangulation-based `MakeValid` of the `geo` crate.
fn make_valid(geom: Geom, notes: &mut Vec<String>) -> Result<Geom, String> {
    let as_geo = to_geo(&geom);
    if ogc_problems(&geom, &as_geo).is_empty() {
        return Ok(geom);
    }
    let rebuilt = match (&geom, &as_geo) {
        (Geom::Polygon(_), geo::Geometry::Polygon(p)) => p.make_valid(),
        (Geom::MultiPolygon(_), geo::Geometry::MultiPolygon(mp)) => mp.make_valid(),
        (Geom::GeometryCollection(_), _) => {
            let Geom::GeometryCollection(parts) = geom else { unreachable!() };
            let parts = parts.into_iter().map(|g| make_valid(g, notes)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Geom::GeometryCollection(parts));
        }
        _ => return Err(format!("a {} with this problem cannot be repaired", geom.kind().name())),
    };
    let mp = rebuilt.map_err(|e| format!("polygon repair failed: {e}"))?;
    if mp.0.is_empty() {
        return Err("the polygon has no area left once made valid".into());
    }
    notes.push(format!(
        "rebuilt as a valid {} of {} part{}",
        if mp.0.len() == 1 { "Polygon" } else { "MultiPolygon" },
        mp.0.len(),
        if mp.0.len() == 1 { "" } else { "s" }
    ));
    Ok(from_geo_multipolygon(&mp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Pos;
    use crate::report::ProblemCode;

    fn ring(pts: &[(f64, f64)]) -> Vec<Pos> {
        pts.iter().map(|&(x, y)| Pos::xy(x, y)).collect()
    }

    #[test]
    fn bowtie_becomes_two_valid_polygons() {
        let bowtie = Geom::Polygon(vec![ring(&[(0., 0.), (1., 1.), (1., 0.), (0., 1.), (0., 0.)])]);
        let problems = ogc_problems(&bowtie, &to_geo(&bowtie));
        let (fixed, note) = repair(bowtie, &problems).unwrap();
        assert!(matches!(&fixed, Geom::MultiPolygon(ps) if ps.len() == 2), "{fixed:?}");
        assert!(ogc_problems(&fixed, &to_geo(&fixed)).is_empty());
        assert!(note.contains("MultiPolygon of 2 parts"), "{note}");
    }

    #[test]
    fn unclosed_ring_is_closed() {
        let open = Geom::Polygon(vec![ring(&[(0., 0.), (1., 0.), (1., 1.), (0., 1.)])]);
        let problems = vec![Problem::new(ProblemCode::UnclosedRing, "x")];
        let (fixed, note) = repair(open, &problems).unwrap();
        assert_eq!(fixed.vertex_count(), 5);
        assert_eq!(note, "closed 1 ring");
    }

    #[test]
    fn out_of_range_is_not_repairable() {
        let p = Geom::Point(Pos::xy(200., 0.));
        assert!(repair(p, &[Problem::new(ProblemCode::OutOfRange, "x")]).is_err());
    }
}
