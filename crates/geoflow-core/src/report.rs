//! Problems found in input, and the per-source summary of a load.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a feature (or a whole source) is invalid. Serialised in kebab-case; stable, since
/// reports and metrics group by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemCode {
    /// The text is not JSON.
    JsonSyntax,
    /// Nesting deeper than the configured limit.
    TooDeep,
    /// One feature larger than the configured limit.
    TooLarge,
    /// A GeoJSON object that is not a JSON object.
    NotAnObject,
    /// `type` missing.
    MissingType,
    /// `type` not a string, or not a GeoJSON type (types are case-sensitive).
    InvalidType,
    /// The same member twice in one object.
    DuplicateMember,
    /// A member RFC 7946 §7.1 forbids on this type (e.g. `coordinates` on a Feature).
    ForbiddenMember,
    /// A required member is missing (`geometry`, `properties`, `coordinates`, `geometries`, `features`).
    MissingMember,
    /// `id` not a string or number.
    InvalidId,
    /// `properties` not an object or null.
    InvalidProperties,
    /// `bbox` not an array of 4 or 6 numbers.
    InvalidBbox,
    /// `coordinates` nested wrongly for the geometry type, or holding something other than numbers.
    InvalidCoordinates,
    /// A position with fewer than 2 or more than 3 numbers.
    InvalidPosition,
    /// NaN or infinite coordinate (e.g. `1e999`).
    NonFiniteCoordinate,
    /// Positions of 2 and 3 numbers mixed in one geometry.
    MixedDimensions,
    /// Longitude outside −180..180 or latitude outside −90..90.
    OutOfRange,
    /// A LineString with fewer than 2 positions.
    TooFewPositions,
    /// A linear ring with fewer than 4 positions.
    RingTooShort,
    /// A linear ring whose last position differs from its first.
    UnclosedRing,
    /// A linear ring or line with fewer distinct points than its type needs.
    Degenerate,
    /// A ring that crosses or touches itself.
    SelfIntersection,
    /// A hole not inside its shell.
    HoleOutsideShell,
    /// Rings (or polygons of a MultiPolygon) that intersect.
    RingsIntersect,
    /// Any other OGC Simple Features validity failure.
    InvalidGeometry,
    /// A legacy `crs` member naming a CRS that cannot be transformed to WGS84.
    UnsupportedCrs,
    /// A property key or value holding text no store keeps as given: a NUL character or an
    /// unpaired UTF-16 surrogate escape.
    UnstorableText,
    /// In a dataset keyed by a Feature `id` or a property ([`crate::dataset::FeatureKey`]), a
    /// feature without a key: none, null, or an object, array or boolean.
    MissingKey,
    /// A geometry of another kind than the dataset's requested geometry type.
    GeometryType,
    /// Positions that cannot be transformed from the source CRS to WGS84 (outside the
    /// projection's domain).
    CrsTransform,
    /// A file in a format geoflow does not read, or an archive holding no vector data.
    UnsupportedFormat,
    /// A file of a format geoflow reads that is corrupt, truncated or incomplete.
    MalformedFile,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        // Kept in step with the serde names by the test below.
        match self {
            ProblemCode::JsonSyntax => "json-syntax",
            ProblemCode::TooDeep => "too-deep",
            ProblemCode::TooLarge => "too-large",
            ProblemCode::NotAnObject => "not-an-object",
            ProblemCode::MissingType => "missing-type",
            ProblemCode::InvalidType => "invalid-type",
            ProblemCode::DuplicateMember => "duplicate-member",
            ProblemCode::ForbiddenMember => "forbidden-member",
            ProblemCode::MissingMember => "missing-member",
            ProblemCode::InvalidId => "invalid-id",
            ProblemCode::InvalidProperties => "invalid-properties",
            ProblemCode::InvalidBbox => "invalid-bbox",
            ProblemCode::InvalidCoordinates => "invalid-coordinates",
            ProblemCode::InvalidPosition => "invalid-position",
            ProblemCode::NonFiniteCoordinate => "non-finite-coordinate",
            ProblemCode::MixedDimensions => "mixed-dimensions",
            ProblemCode::OutOfRange => "out-of-range",
            ProblemCode::TooFewPositions => "too-few-positions",
            ProblemCode::RingTooShort => "ring-too-short",
            ProblemCode::UnclosedRing => "unclosed-ring",
            ProblemCode::Degenerate => "degenerate",
            ProblemCode::SelfIntersection => "self-intersection",
            ProblemCode::HoleOutsideShell => "hole-outside-shell",
            ProblemCode::RingsIntersect => "rings-intersect",
            ProblemCode::InvalidGeometry => "invalid-geometry",
            ProblemCode::UnsupportedCrs => "unsupported-crs",
            ProblemCode::UnstorableText => "unstorable-text",
            ProblemCode::MissingKey => "missing-key",
            ProblemCode::GeometryType => "geometry-type",
            ProblemCode::CrsTransform => "crs-transform",
            ProblemCode::UnsupportedFormat => "unsupported-format",
            ProblemCode::MalformedFile => "malformed-file",
        }
    }

    /// Whether `repair` can fix this kind of problem (all others are skipped).
    pub fn repairable(self) -> bool {
        matches!(
            self,
            ProblemCode::UnclosedRing
                | ProblemCode::SelfIntersection
                | ProblemCode::HoleOutsideShell
                | ProblemCode::RingsIntersect
                | ProblemCode::Degenerate
                | ProblemCode::InvalidGeometry
        )
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, with a readable message that says where (`geometry.coordinates[0][3]`) and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub code: ProblemCode,
    pub message: String,
}

impl Problem {
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Problem {
        Problem { code, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What the validation policy did with an invalid feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not stored (policy `skip`, or `repair` that could not produce a valid geometry).
    Skipped,
    /// Stored with a repaired geometry.
    Repaired,
    /// Made the whole source fail (policy `reject`).
    Rejected,
}

/// A report line: which feature, what was wrong, what was done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureIssue {
    /// 0-based position in the source (in its layer, when the source has several).
    pub index: u64,
    /// The layer of a source that loads several (a zip of Shapefiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// The feature's `id` member, if it had one.
    pub id: Option<String>,
    pub code: ProblemCode,
    pub reason: String,
    pub action: Action,
}

impl FeatureIssue {
    /// Which feature, as a report line says it: `feature 12 (id a)`, with its layer when the
    /// source has several (`feature 3 of layer "lakes"`).
    pub fn which(&self) -> String {
        let mut which = format!("feature {}", self.index);
        if let Some(layer) = &self.layer {
            which.push_str(&format!(" of layer {layer:?}"));
        }
        if let Some(id) = &self.id {
            which.push_str(&format!(" (id {id})"));
        }
        which
    }
}

/// How to treat invalid features (`--on-invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Policy {
    /// Store the valid features; report each invalid one.
    #[default]
    Skip,
    /// Fail the whole source on any invalid feature.
    Reject,
    /// Store a valid repaired geometry and report what changed; skip what cannot be repaired.
    Repair,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Skip => "skip",
            Policy::Reject => "reject",
            Policy::Repair => "repair",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Policy::Skip),
            "reject" => Ok(Policy::Reject),
            "repair" => Ok(Policy::Repair),
            other => Err(format!("unknown policy {other:?}: use skip, reject or repair")),
        }
    }
}

/// Counts for one source load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadCounts {
    pub features_read: u64,
    pub features_loaded: u64,
    /// Features with at least one problem (repaired, skipped or rejected).
    pub invalid: u64,
    pub repaired: u64,
    pub skipped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_serde_names() {
        for code in
            [ProblemCode::JsonSyntax, ProblemCode::UnclosedRing, ProblemCode::UnsupportedCrs, ProblemCode::OutOfRange]
        {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::Value::String(code.as_str().into()));
        }
    }
}
