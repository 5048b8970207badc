//! The type of a dataset's geometry column: the geometry kinds a source has (gathered by the
//! schema pass), the type a load asks for (`--geometry-type`), the column type they decide,
//! how a column widens, and how a row's geometry is made to fit its column.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::row::{EncodedGeometry, GeometryKind};

const ALL_KINDS: [GeometryKind; 7] = [
    GeometryKind::Point,
    GeometryKind::LineString,
    GeometryKind::Polygon,
    GeometryKind::MultiPoint,
    GeometryKind::MultiLineString,
    GeometryKind::MultiPolygon,
    GeometryKind::GeometryCollection,
];

fn bit(kind: GeometryKind) -> u8 {
    1 << (kind.wkb_code() - 1)
}

/// The Multi kind that holds parts of a single kind (`Polygon` → `MultiPolygon`); `None` for
/// a Multi kind or a collection.
pub fn multi_of(kind: GeometryKind) -> Option<GeometryKind> {
    match kind {
        GeometryKind::Point => Some(GeometryKind::MultiPoint),
        GeometryKind::LineString => Some(GeometryKind::MultiLineString),
        GeometryKind::Polygon => Some(GeometryKind::MultiPolygon),
        _ => None,
    }
}

/// The single kind whose geometries a Multi kind holds (`MultiPolygon` → `Polygon`).
pub fn single_of(kind: GeometryKind) -> Option<GeometryKind> {
    ALL_KINDS.into_iter().find(|k| multi_of(*k) == Some(kind))
}

/// The geometry kinds of a source, and whether its geometries are 2D, 3D or both. Null
/// geometries count for nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeometryKinds {
    /// One bit per kind (bit `wkb_code - 1`).
    kinds: u8,
    /// Some geometry has positions of 2 numbers.
    xy: bool,
    /// Some geometry has positions of 3 numbers.
    z: bool,
}

impl GeometryKinds {
    pub fn of(kinds: &[GeometryKind], has_z: bool) -> GeometryKinds {
        let mut k = GeometryKinds::default();
        for kind in kinds {
            k.observe(*kind, Some(has_z));
        }
        k
    }

    /// Records a geometry of `kind`; `has_z` is `None` when its dimension is not known (an
    /// empty geometry has none).
    pub fn observe(&mut self, kind: GeometryKind, has_z: Option<bool>) {
        self.kinds |= bit(kind);
        match has_z {
            Some(true) => self.z = true,
            Some(false) => self.xy = true,
            None => {}
        }
    }

    pub fn merge(&mut self, other: GeometryKinds) {
        self.kinds |= other.kinds;
        self.xy |= other.xy;
        self.z |= other.z;
    }

    pub fn contains(&self, kind: GeometryKind) -> bool {
        self.kinds & bit(kind) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.kinds == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = GeometryKind> + '_ {
        ALL_KINDS.into_iter().filter(|k| self.contains(*k))
    }

    /// The dimension of the geometries: [`Dim::Mixed`] when 2D and 3D geometries mix, 2D when
    /// nothing is known.
    pub fn dim(&self) -> Dim {
        match (self.xy, self.z) {
            (true, true) => Dim::Mixed,
            (false, true) => Dim::Xyz,
            _ => Dim::Xy,
        }
    }

    fn with(mut self, kind: GeometryKind) -> GeometryKinds {
        self.kinds |= bit(kind);
        self
    }

    fn only(mut self, keep: impl Fn(GeometryKind) -> bool) -> GeometryKinds {
        for k in ALL_KINDS {
            if !keep(k) {
                self.kinds &= !bit(k);
            }
        }
        self
    }
}

/// The geometry type a load asks for its dataset's column (`--geometry-type`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum GeometryType {
    /// The one kind the data has; a single kind and its Multi kind together become the Multi
    /// kind; anything else is a generic column.
    #[default]
    Auto,
    /// As `Auto`, but a single kind becomes its Multi kind too (ogr2ogr's `PROMOTE_TO_MULTI`).
    PromoteMulti,
    /// A generic column: any kind.
    Any,
    /// This kind: features of other kinds are invalid, except the single kind of a requested
    /// Multi kind, which is stored as a Multi geometry of one part.
    Exactly(GeometryKind),
}

impl GeometryType {
    pub fn as_str(self) -> &'static str {
        match self {
            GeometryType::Auto => "auto",
            GeometryType::PromoteMulti => "promote-multi",
            GeometryType::Any => "any",
            GeometryType::Exactly(k) => match k {
                GeometryKind::Point => "point",
                GeometryKind::LineString => "linestring",
                GeometryKind::Polygon => "polygon",
                GeometryKind::MultiPoint => "multipoint",
                GeometryKind::MultiLineString => "multilinestring",
                GeometryKind::MultiPolygon => "multipolygon",
                GeometryKind::GeometryCollection => "geometrycollection",
            },
        }
    }

    /// Every value, as [`GeometryType::as_str`] spells it.
    pub const NAMES: [&'static str; 10] = [
        "auto",
        "promote-multi",
        "any",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    ];

    /// Whether a geometry of `kind` is stored under this request: every kind is, except under
    /// [`GeometryType::Exactly`], which takes its kind and, for a Multi kind, its single kind.
    pub fn accepts(self, kind: GeometryKind) -> bool {
        match self {
            GeometryType::Exactly(k) => kind == k || multi_of(kind) == Some(k),
            _ => true,
        }
    }

    /// The kinds a load's rows will have, from the kinds its schema pass saw. `repair`: under
    /// `--on-invalid repair` a polygon may be rebuilt as a MultiPolygon.
    pub fn stored_kinds(self, seen: GeometryKinds, repair: bool) -> GeometryKinds {
        let mut kinds = seen.only(|k| self.accepts(k));
        if repair && kinds.contains(GeometryKind::Polygon) && self.accepts(GeometryKind::MultiPolygon) {
            kinds = kinds.with(GeometryKind::MultiPolygon);
        }
        kinds
    }
}

impl fmt::Display for GeometryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GeometryType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "auto" => GeometryType::Auto,
            "promote-multi" | "promote_to_multi" => GeometryType::PromoteMulti,
            "any" | "geometry" => GeometryType::Any,
            other => match ALL_KINDS.into_iter().find(|k| GeometryType::Exactly(*k).as_str() == other) {
                Some(k) => GeometryType::Exactly(k),
                None => {
                    return Err(format!("unknown geometry type {s:?}: use one of {}", GeometryType::NAMES.join(", ")))
                }
            },
        })
    }
}

impl From<GeometryType> for String {
    fn from(t: GeometryType) -> String {
        t.as_str().to_string()
    }
}

impl TryFrom<String> for GeometryType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The coordinate dimension of a geometry column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dim {
    /// 2D positions only.
    Xy,
    /// Every geometry has Z.
    Xyz,
    /// 2D and 3D geometries (a column only a generic type can be).
    Mixed,
}

impl Dim {
    fn join(self, other: Dim) -> Dim {
        if self == other {
            self
        } else {
            Dim::Mixed
        }
    }

    fn holds(self, has_z: bool) -> bool {
        match self {
            Dim::Xy => !has_z,
            Dim::Xyz => has_z,
            Dim::Mixed => true,
        }
    }
}

/// The type of a dataset's geometry column: a kind (`None`: generic, any kind) and a
/// dimension. A column with 2D and 3D geometries is always generic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeometryColumn {
    pub kind: Option<GeometryKind>,
    pub dim: Dim,
}

/// How a row's geometry fits its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// As it is.
    Fits,
    /// Once written as the column's kind: a single geometry as a Multi geometry of one part,
    /// or an empty geometry as an empty one of the column's kind and dimension.
    Converted,
    /// Not at all: the column must widen.
    Misfit,
}

impl GeometryColumn {
    /// The generic column of a dimension.
    pub const fn generic(dim: Dim) -> GeometryColumn {
        GeometryColumn { kind: None, dim }
    }

    /// A column of this kind and dimension ([`Dim::Mixed`] makes it generic).
    pub fn new(kind: Option<GeometryKind>, dim: Dim) -> GeometryColumn {
        GeometryColumn { kind: if dim == Dim::Mixed { None } else { kind }, dim }
    }

    /// The column a new table gets for rows of `kinds` (see [`GeometryType::stored_kinds`])
    /// under `request`.
    pub fn decide(kinds: GeometryKinds, request: GeometryType) -> GeometryColumn {
        let dim = kinds.dim();
        let kind = match request {
            GeometryType::Any => None,
            GeometryType::Exactly(k) => Some(k),
            GeometryType::Auto | GeometryType::PromoteMulti => {
                let mut present = kinds.iter();
                match (present.next(), present.next(), present.next()) {
                    (Some(one), None, _) if request == GeometryType::PromoteMulti => Some(multi_of(one).unwrap_or(one)),
                    (Some(one), None, _) => Some(one),
                    // A single kind and its Multi kind (iterated in WKB code order).
                    (Some(a), Some(b), None) if multi_of(a) == Some(b) => Some(b),
                    _ => None,
                }
            }
        };
        GeometryColumn::new(kind, dim)
    }

    /// Whether rows of `kinds` fit this column (with promotion to its Multi kind), and a
    /// generic column is not asked for.
    pub fn holds(&self, kinds: GeometryKinds, request: GeometryType) -> bool {
        if request == GeometryType::Any && self.kind.is_some() {
            return false;
        }
        let dim_fits = match kinds.dim() {
            _ if kinds.is_empty() => true,
            Dim::Mixed => self.dim == Dim::Mixed,
            d => self.dim == d || self.dim == Dim::Mixed,
        };
        dim_fits && kinds.iter().all(|k| self.holds_kind(k))
    }

    fn holds_kind(&self, kind: GeometryKind) -> bool {
        match self.kind {
            None => true,
            Some(c) => c == kind || multi_of(kind) == Some(c),
        }
    }

    /// The column this one becomes to hold rows of `kinds` as well: itself when they fit,
    /// else the generic column (of a mixed dimension when the dimensions differ).
    pub fn widen(self, kinds: GeometryKinds, request: GeometryType) -> GeometryColumn {
        if self.holds(kinds, request) {
            return self;
        }
        let dim = if kinds.is_empty() { self.dim } else { self.dim.join(kinds.dim()) };
        GeometryColumn::generic(dim)
    }

    /// The column this one becomes to hold one more geometry.
    pub fn widen_for(self, g: &EncodedGeometry) -> GeometryColumn {
        match self.fit(g) {
            Fit::Fits | Fit::Converted => self,
            Fit::Misfit => {
                let dim = if self.dim.holds(g.has_z) || g.bbox.is_none() { self.dim } else { Dim::Mixed };
                GeometryColumn::generic(dim)
            }
        }
    }

    /// How a geometry fits this column.
    pub fn fit(&self, g: &EncodedGeometry) -> Fit {
        let empty = g.bbox.is_none();
        let dim_fits = self.dim.holds(g.has_z);
        match self.kind {
            None if dim_fits => Fit::Fits,
            // An empty geometry has no positions to give it a dimension.
            None if empty => Fit::Converted,
            None => Fit::Misfit,
            Some(k) if k == g.kind && dim_fits => Fit::Fits,
            Some(k) if (k == g.kind || multi_of(g.kind) == Some(k)) && (dim_fits || empty) => Fit::Converted,
            Some(_) => Fit::Misfit,
        }
    }

    /// Writes `g` as this column holds it ([`Fit::Converted`]); `false` when it does not fit.
    pub fn convert(&self, g: &mut EncodedGeometry) -> bool {
        match self.fit(g) {
            Fit::Fits => true,
            Fit::Misfit => false,
            Fit::Converted if g.bbox.is_none() => {
                let has_z = match self.dim {
                    Dim::Xyz => true,
                    Dim::Xy => false,
                    Dim::Mixed => g.has_z,
                };
                let kind = self.kind.unwrap_or(g.kind);
                *g = empty_geometry(kind, has_z);
                true
            }
            Fit::Converted => {
                let kind = self.kind.expect("a single geometry converts only to a Multi kind");
                let code = kind.wkb_code() + if g.has_z { 1000 } else { 0 };
                let mut wkb = Vec::with_capacity(9 + g.wkb.len());
                wkb.push(1);
                wkb.extend_from_slice(&code.to_le_bytes());
                wkb.extend_from_slice(&1u32.to_le_bytes());
                wkb.extend_from_slice(&g.wkb);
                g.wkb = wkb;
                g.kind = kind;
                true
            }
        }
    }

    /// The type's name as OGC spells it in GeoPackage (`MULTIPOLYGON`, `GEOMETRY`).
    pub fn ogc_name(&self) -> &'static str {
        match self.kind {
            None => "GEOMETRY",
            Some(GeometryKind::Point) => "POINT",
            Some(GeometryKind::LineString) => "LINESTRING",
            Some(GeometryKind::Polygon) => "POLYGON",
            Some(GeometryKind::MultiPoint) => "MULTIPOINT",
            Some(GeometryKind::MultiLineString) => "MULTILINESTRING",
            Some(GeometryKind::MultiPolygon) => "MULTIPOLYGON",
            Some(GeometryKind::GeometryCollection) => "GEOMETRYCOLLECTION",
        }
    }

    /// The kind of an OGC type name (any case; `GEOMETRY` is generic); `None` for an unknown
    /// name.
    pub fn kind_of_ogc_name(name: &str) -> Option<Option<GeometryKind>> {
        let upper = name.to_ascii_uppercase();
        if upper == "GEOMETRY" {
            return Some(None);
        }
        ALL_KINDS.into_iter().find(|k| GeometryColumn::new(Some(*k), Dim::Xy).ogc_name() == upper).map(Some)
    }
}

impl fmt::Display for GeometryColumn {
    /// `MultiPolygon`, `PointZ`, `Geometry`, `Geometry (2D and 3D)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.map_or("Geometry", GeometryKind::name))?;
        match self.dim {
            Dim::Xy => Ok(()),
            Dim::Xyz => f.write_str("Z"),
            Dim::Mixed => f.write_str(" (2D and 3D)"),
        }
    }
}

/// The WKB of an empty geometry (a point's ordinates are NaN).
pub fn empty_geometry(kind: GeometryKind, has_z: bool) -> EncodedGeometry {
    let mut wkb = vec![1];
    wkb.extend_from_slice(&(kind.wkb_code() + if has_z { 1000 } else { 0 }).to_le_bytes());
    if kind == GeometryKind::Point {
        for _ in 0..if has_z { 3 } else { 2 } {
            wkb.extend_from_slice(&f64::NAN.to_le_bytes());
        }
    } else {
        wkb.extend_from_slice(&0u32.to_le_bytes());
    }
    EncodedGeometry { kind, has_z, bbox: None, wkb }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{Geom, Pos};
    use crate::wkb;
    use GeometryKind::*;

    fn col(kind: Option<GeometryKind>, dim: Dim) -> GeometryColumn {
        GeometryColumn::new(kind, dim)
    }

    fn auto(kinds: &[GeometryKind], z: bool) -> GeometryColumn {
        GeometryColumn::decide(GeometryKinds::of(kinds, z), GeometryType::Auto)
    }

    #[test]
    fn auto_takes_the_one_kind_and_promotes_single_and_multi_mixes() {
        assert_eq!(auto(&[Point], false), col(Some(Point), Dim::Xy));
        assert_eq!(auto(&[Polygon, MultiPolygon], false), col(Some(MultiPolygon), Dim::Xy));
        assert_eq!(auto(&[LineString, MultiLineString], false), col(Some(MultiLineString), Dim::Xy));
        assert_eq!(auto(&[Point, MultiPoint], false), col(Some(MultiPoint), Dim::Xy));
        assert_eq!(auto(&[Point, Polygon], false), col(None, Dim::Xy));
        assert_eq!(auto(&[Polygon, MultiLineString], false), col(None, Dim::Xy));
        assert_eq!(auto(&[GeometryCollection], false), col(Some(GeometryCollection), Dim::Xy));
        assert_eq!(auto(&[MultiPolygon], true), col(Some(MultiPolygon), Dim::Xyz));
        assert_eq!(auto(&[MultiPolygon], true).to_string(), "MultiPolygonZ");
        // An empty dataset (or only null geometries): a generic 2D column.
        assert_eq!(auto(&[], false), col(None, Dim::Xy));
        // 2D and 3D geometries: generic, whatever the kinds.
        let mut mixed = GeometryKinds::of(&[Point], true);
        mixed.merge(GeometryKinds::of(&[Point], false));
        assert_eq!(GeometryColumn::decide(mixed, GeometryType::Auto), col(None, Dim::Mixed));
    }

    #[test]
    fn requests_other_than_auto() {
        let polygons = GeometryKinds::of(&[Polygon], false);
        assert_eq!(GeometryColumn::decide(polygons, GeometryType::PromoteMulti), col(Some(MultiPolygon), Dim::Xy));
        assert_eq!(GeometryColumn::decide(polygons, GeometryType::Any), col(None, Dim::Xy));
        let request = GeometryType::Exactly(MultiPolygon);
        let mixed = GeometryKinds::of(&[Point, Polygon], false);
        assert_eq!(request.stored_kinds(mixed, false), polygons);
        assert_eq!(
            GeometryColumn::decide(request.stored_kinds(mixed, false), request),
            col(Some(MultiPolygon), Dim::Xy)
        );
        assert!(!GeometryType::Exactly(Polygon).accepts(MultiPolygon));
        // Under repair a polygon may come out a MultiPolygon: the column is ready for it.
        let repaired = GeometryType::Auto.stored_kinds(polygons, true);
        assert_eq!(GeometryColumn::decide(repaired, GeometryType::Auto), col(Some(MultiPolygon), Dim::Xy));
        for name in GeometryType::NAMES {
            assert_eq!(name.parse::<GeometryType>().unwrap().as_str(), name);
        }
        assert!("polygonz".parse::<GeometryType>().is_err());
    }

    #[test]
    fn a_column_widens_to_generic_when_rows_do_not_fit() {
        let mp = col(Some(MultiPolygon), Dim::Xy);
        let auto = GeometryType::Auto;
        assert_eq!(mp.widen(GeometryKinds::of(&[Polygon], false), auto), mp);
        assert_eq!(mp.widen(GeometryKinds::default(), auto), mp);
        assert_eq!(mp.widen(GeometryKinds::of(&[Point], false), auto), col(None, Dim::Xy));
        assert_eq!(mp.widen(GeometryKinds::of(&[MultiPolygon], true), auto), col(None, Dim::Mixed));
        assert_eq!(mp.widen(GeometryKinds::of(&[Polygon], false), GeometryType::Any), col(None, Dim::Xy));
        let generic = col(None, Dim::Xy);
        assert_eq!(generic.widen(GeometryKinds::of(&[Point, Polygon], false), auto), generic);
        assert_eq!(col(Some(Point), Dim::Xyz).widen(GeometryKinds::of(&[LineString], true), auto), col(None, Dim::Xyz));
    }

    #[test]
    fn rows_are_promoted_to_the_columns_multi_kind() {
        let square = Geom::Polygon(vec![vec![Pos::xy(0., 0.), Pos::xy(1., 0.), Pos::xy(1., 1.), Pos::xy(0., 0.)]]);
        let mut g = wkb::encode(&square);
        let mp = col(Some(MultiPolygon), Dim::Xy);
        assert_eq!(mp.fit(&g), Fit::Converted);
        assert!(mp.convert(&mut g));
        let expected = wkb::encode(&Geom::MultiPolygon(vec![match square {
            Geom::Polygon(rs) => rs,
            _ => unreachable!(),
        }]));
        assert_eq!(g, expected);
        assert_eq!(mp.fit(&g), Fit::Fits);

        let point = wkb::encode(&Geom::Point(Pos::xy(1., 2.)));
        assert_eq!(mp.fit(&point), Fit::Misfit);
        assert_eq!(mp.widen_for(&point), col(None, Dim::Xy));
        let z = wkb::encode(&Geom::Point(Pos { x: 1., y: 2., z: 3. }));
        assert_eq!(col(Some(Point), Dim::Xy).fit(&z), Fit::Misfit);
        assert_eq!(col(Some(Point), Dim::Xy).widen_for(&z), col(None, Dim::Mixed));
        assert_eq!(col(None, Dim::Mixed).fit(&z), Fit::Fits);

        // An empty geometry takes the column's kind and dimension.
        let mut empty = wkb::encode(&Geom::Polygon(vec![]));
        let mpz = col(Some(MultiPolygon), Dim::Xyz);
        assert!(mpz.convert(&mut empty));
        assert_eq!((empty.kind, empty.has_z, empty.wkb.len()), (MultiPolygon, true, 9));
        assert_eq!(&empty.wkb[1..5], &1006u32.to_le_bytes());
    }

    #[test]
    fn ogc_names_round_trip() {
        for k in ALL_KINDS {
            assert_eq!(GeometryColumn::kind_of_ogc_name(col(Some(k), Dim::Xy).ogc_name()), Some(Some(k)));
        }
        assert_eq!(GeometryColumn::kind_of_ogc_name("Geometry"), Some(None));
        assert_eq!(GeometryColumn::kind_of_ogc_name("CURVE"), None);
    }
}
