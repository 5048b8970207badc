//! One feature from raw text to a stored row or a report line, under a validation policy.

use crate::dataset::FeatureKey;
use crate::feature::{parse_feature, skim_feature, ParsedFeature, Parts};
use crate::geometry::check_geometry;
use crate::geometry_type::GeometryType;
use crate::reader::{DecodedFeature, RawFeature};
use crate::repair::repair;
use crate::report::{Action, FeatureIssue, Policy, Problem, ProblemCode};
use crate::row::Row;
use crate::schema::{Schema, SchemaBuilder};
use crate::storable::{self, storable_key};
use crate::validate::{ogc_problems, to_geo};
use crate::value::{display_id, PropValue};
use crate::{measure, wkb};

/// The fate of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// Store this row; the issue is set when the geometry was repaired.
    Row(Row, Option<FeatureIssue>),
    /// Do not store; skipped or (policy `reject`) fails the source.
    Invalid(FeatureIssue),
}

/// Turns raw features into rows for one source's [`Schema`].
#[derive(Debug, Clone)]
pub struct Processor {
    policy: Policy,
    /// The geometry type asked for: features of a kind it does not take are invalid.
    geometry_type: GeometryType,
    /// Column of each key; keys are hashed for every property of every feature, so with a
    /// fast hasher (still randomly seeded: the keys are untrusted).
    fields: foldhash::HashMap<String, usize>,
    /// In a keyed dataset, what each row must have a value for.
    key: Option<KeyField>,
}

/// Where a row's key is: its Feature `id`, or a property (`None`: no feature has it).
#[derive(Debug, Clone)]
enum KeyField {
    FeatureId,
    Property { name: String, field: Option<usize> },
}

impl Processor {
    pub fn new(schema: &Schema, policy: Policy) -> Processor {
        let fields = schema.fields.iter().enumerate().map(|(i, f)| (f.key.clone(), i)).collect();
        Processor { policy, geometry_type: GeometryType::Auto, fields, key: None }
    }

    /// Under [`GeometryType::Exactly`], features of other kinds are invalid (except the single
    /// kind of a requested Multi kind).
    pub fn with_geometry_type(mut self, geometry_type: GeometryType) -> Processor {
        self.geometry_type = geometry_type;
        self
    }

    /// Rows must have a value for `key` (a dataset in upsert mode): a feature without one is
    /// invalid ([`ProblemCode::MissingKey`]), and no repair gives it one.
    pub fn keyed_by(mut self, key: &FeatureKey) -> Processor {
        self.key = Some(match key {
            FeatureKey::FeatureId => KeyField::FeatureId,
            FeatureKey::Property(name) => {
                KeyField::Property { name: name.clone(), field: self.fields.get(name.as_str()).copied() }
            }
        });
        self
    }

    /// Why `row` has no usable key, if it has none.
    fn missing_key(&self, row: &Row) -> Option<Problem> {
        let (value, what) = match self.key.as_ref()? {
            KeyField::FeatureId => (Some(&row.id), "the Feature id".to_string()),
            KeyField::Property { name, field } => {
                let value = field.and_then(|f| row.properties.iter().find(|(i, _)| *i == f)).map(|(_, v)| v);
                (value, format!("property {name:?}"))
            }
        };
        let lacks = match value {
            None | Some(PropValue::Null) => "has no value",
            Some(PropValue::Bool(_)) => "is a boolean",
            Some(PropValue::Json(j)) if j.starts_with('{') => "is an object",
            Some(PropValue::Json(j)) if j.starts_with('[') => "is an array",
            Some(_) => return None,
        };
        let message =
            format!("the dataset is keyed by {what}, which {lacks} in this feature: a key is a string or a number");
        Some(Problem::new(ProblemCode::MissingKey, message))
    }

    pub fn process(&self, raw: RawFeature) -> Processed {
        let index = raw.index;
        let layer = raw.layer.clone();
        // The geometry algorithms are third-party code: should one of them panic on some
        // input, that feature is reported as invalid instead of ending the load.
        let mut processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process_unguarded(raw)))
            .unwrap_or_else(|_| {
                let problem = Problem::new(
                    ProblemCode::InvalidGeometry,
                    "the geometry could not be validated (internal error in a geometry algorithm)",
                );
                Processed::Invalid(self.issue(index, None, &[problem], self.refusal(), None))
            });
        if let Some(layer) = layer {
            match &mut processed {
                Processed::Row(_, Some(issue)) | Processed::Invalid(issue) => issue.layer = Some(layer.to_string()),
                Processed::Row(_, None) => {}
            }
        }
        processed
    }

    fn process_unguarded(&self, raw: RawFeature) -> Processed {
        if let Some(fault) = &raw.fault {
            return Processed::Invalid(self.issue(raw.index, None, std::slice::from_ref(fault), self.refusal(), None));
        }
        let mut properties = Vec::new();
        let mut unstorable = None;
        let mut take = |key: &str, value: PropValue| {
            if let Some(&i) = self.fields.get(storable_key(key).as_ref()) {
                match storable::check_key(key).or_else(|| storable::check_value(&value)) {
                    None => properties.push((i, value)),
                    Some(what) => {
                        unstorable.get_or_insert_with(|| {
                            Problem::new(
                                ProblemCode::UnstorableText,
                                format!("property {key:?} holds {}, which no store keeps as text", what.describe()),
                            )
                        });
                        properties.push((i, storable::storable_value(value)));
                    }
                }
            }
        };
        let parsed = match raw.decoded {
            None => parse_feature(&raw.bytes, &raw.transform, Parts::All, take),
            Some(decoded) => {
                let DecodedFeature { id, geometry, properties, mut problems } = *decoded;
                for (key, value) in properties {
                    take(&key, value);
                }
                let geometry = geometry
                    .and_then(|mut g| check_geometry(&mut g, "geometry", &raw.transform, &mut problems).then_some(g));
                ParsedFeature { id, geometry, problems }
            }
        };
        let id = display_id(&parsed.id);
        let text_repair = match (unstorable, self.policy) {
            (None, _) => None,
            (Some(problem), Policy::Repair) => Some(problem),
            (Some(problem), _) => {
                return Processed::Invalid(self.issue(raw.index, id, &[problem], self.refusal(), None));
            }
        };
        let mut problems = parsed.problems;
        let mut geometry = parsed.geometry;
        let mut geo = geometry.as_ref().map(to_geo);
        if problems.is_empty() {
            if let (Some(g), Some(as_geo)) = (&geometry, &geo) {
                problems = ogc_problems(g, as_geo);
            }
        }
        let mut repaired = None;
        if !problems.is_empty() {
            let fixed = match (self.policy, geometry.take()) {
                (Policy::Repair, Some(g)) => repair(g, &problems),
                (Policy::Repair, None) => Err("there is no geometry to repair".to_string()),
                _ => return Processed::Invalid(self.issue(raw.index, id, &problems, self.refusal(), None)),
            };
            match fixed {
                Ok((g, note)) => {
                    geo = Some(to_geo(&g));
                    geometry = Some(g);
                    repaired = Some(self.issue(raw.index, id.clone(), &problems, Action::Repaired, Some(&note)));
                }
                Err(why) => {
                    return Processed::Invalid(self.issue(raw.index, id, &problems, Action::Skipped, Some(&why)))
                }
            }
        }
        if let Some(g) = geometry.as_ref().filter(|g| !self.geometry_type.accepts(g.kind())) {
            let problem = Problem::new(
                ProblemCode::GeometryType,
                format!(
                    "the geometry is a {}, and the dataset's geometry type is {}",
                    g.kind().name(),
                    self.geometry_type
                ),
            );
            let (action, note) = match self.policy {
                Policy::Repair => (Action::Skipped, Some("a geometry of another type cannot be repaired")),
                _ => (self.refusal(), None),
            };
            return Processed::Invalid(self.issue(raw.index, id, &[problem], action, note));
        }
        let measures = match (&geometry, &geo) {
            (Some(g), Some(as_geo)) => measure::measures(g, as_geo),
            _ => Default::default(),
        };
        if let Some(problem) = text_repair {
            let note = "each such character is stored as U+FFFD";
            repaired = Some(match repaired {
                None => self.issue(raw.index, id, &[problem], Action::Repaired, Some(note)),
                Some(mut issue) => {
                    issue.reason = format!("{}; {}; repaired: {note}", issue.reason, problem.message);
                    issue
                }
            });
        }
        let row =
            Row { index: raw.index, id: parsed.id, geometry: geometry.as_ref().map(wkb::encode), measures, properties };
        if let Some(problem) = self.missing_key(&row) {
            let id = display_id(&row.id);
            return Processed::Invalid(self.issue(raw.index, id, &[problem], self.refusal(), None));
        }
        Processed::Row(row, repaired)
    }

    /// What happens to an invalid feature that is not repaired.
    fn refusal(&self) -> Action {
        match self.policy {
            Policy::Reject => Action::Rejected,
            Policy::Skip | Policy::Repair => Action::Skipped,
        }
    }

    fn issue(
        &self,
        index: u64,
        id: Option<String>,
        problems: &[Problem],
        action: Action,
        note: Option<&str>,
    ) -> FeatureIssue {
        let mut reason = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
        if let Some(note) = note {
            let verb = if action == Action::Repaired { "repaired" } else { "not repaired" };
            reason = format!("{reason}; {verb}: {note}");
        }
        FeatureIssue { index, layer: None, id, code: problems[0].code, reason, action }
    }
}

/// The schema pass: records the property keys and value types (and the id type) of one feature.
pub fn observe_schema(raw: &RawFeature, schema: &mut SchemaBuilder) {
    if raw.fault.is_some() {
        return;
    }
    if let Some(decoded) = &raw.decoded {
        for (key, value) in &decoded.properties {
            schema.observe(&storable_key(key), storable::storable_value(value.clone()).kind());
        }
        schema.observe_id(decoded.id.kind());
        if let Some(g) = &decoded.geometry {
            schema.observe_geometry(g.kind(), Some(g.has_z()));
        }
        return;
    }
    let (id, shape) = skim_feature(&raw.bytes, &mut |key, value| {
        // Under the name the load pass stores it by (see [`crate::storable`]).
        schema.observe(&storable_key(key), storable::storable_value(value).kind())
    });
    schema.observe_id(id.kind());
    if let Some((kind, has_z)) = shape {
        schema.observe_geometry(kind, has_z);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{GeoJsonReader, ReaderOptions};
    use crate::value::PropValue;

    /// The features of `input` and the schema the schema pass finds in them.
    fn read(input: &str) -> (Vec<RawFeature>, Schema) {
        let raws: Vec<RawFeature> =
            GeoJsonReader::new(input.as_bytes(), ReaderOptions::default()).collect::<Result<_, _>>().unwrap();
        let mut schema = SchemaBuilder::default();
        raws.iter().for_each(|r| observe_schema(r, &mut schema));
        (raws, schema.finish())
    }

    fn run(input: &str, policy: Policy) -> Vec<Processed> {
        let (raws, schema) = read(input);
        let p = Processor::new(&schema, policy);
        raws.iter().map(|r| p.process(r.clone())).collect()
    }

    const MIXED: &str = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","id":7,"properties":{"name":"ok","big":9007199254740993},"geometry":{"type":"Point","coordinates":[1,2]}},
        {"type":"Feature","id":"b","properties":{"name":"bowtie"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}},
        {"type":"Feature","properties":{"name":"far"},"geometry":{"type":"Point","coordinates":[500,2]}}
    ]}"#;

    #[test]
    fn a_keyed_dataset_refuses_features_without_a_key() {
        let input = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":1,"properties":{"code":"a"},"geometry":null},
            {"type":"Feature","properties":{"code":"b"},"geometry":null},
            {"type":"Feature","id":3,"properties":{"code":null},"geometry":null},
            {"type":"Feature","id":4,"properties":{"code":{"x":1}},"geometry":null},
            {"type":"Feature","id":5,"properties":{"code":17},"geometry":null}
        ]}"#;
        let (raws, schema) = read(input);
        let verdicts = |key: FeatureKey, policy| -> Vec<Option<Action>> {
            let p = Processor::new(&schema, policy).keyed_by(&key);
            raws.iter()
                .map(|r| match p.process(r.clone()) {
                    Processed::Row(..) => None,
                    Processed::Invalid(issue) => {
                        assert_eq!(issue.code, ProblemCode::MissingKey, "{issue:?}");
                        assert!(issue.reason.contains("keyed by"), "{}", issue.reason);
                        Some(issue.action)
                    }
                })
                .collect()
        };
        let skipped = Some(Action::Skipped);
        assert_eq!(verdicts(FeatureKey::FeatureId, Policy::Skip), [None, skipped, None, None, None]);
        assert_eq!(
            verdicts(FeatureKey::Property("code".into()), Policy::Repair),
            [None, None, skipped, skipped, None],
            "no repair gives a feature a key"
        );
        assert_eq!(verdicts(FeatureKey::Property("code".into()), Policy::Reject)[2], Some(Action::Rejected));
        let none = verdicts(FeatureKey::Property("absent".into()), Policy::Skip);
        assert!(none.iter().all(|v| *v == skipped), "{none:?}");
    }

    #[test]
    fn skip_reports_each_invalid_feature() {
        let out = run(MIXED, Policy::Skip);
        let Processed::Row(row, None) = &out[0] else { panic!("{:?}", out[0]) };
        assert_eq!(row.id, PropValue::Int(7));
        assert_eq!(row.properties, vec![(0, PropValue::Text("ok".into())), (1, PropValue::Int(9007199254740993))]);
        let Processed::Invalid(issue) = &out[1] else { panic!() };
        assert_eq!(
            (issue.index, issue.id.as_deref(), issue.code, issue.action),
            (1, Some("b"), ProblemCode::SelfIntersection, Action::Skipped)
        );
        let Processed::Invalid(issue) = &out[2] else { panic!() };
        assert_eq!(issue.code, ProblemCode::OutOfRange);
        assert!(issue.reason.contains("500"), "{}", issue.reason);
    }

    #[test]
    fn repair_fixes_what_it_can() {
        let out = run(MIXED, Policy::Repair);
        let Processed::Row(row, Some(issue)) = &out[1] else { panic!("{:?}", out[1]) };
        assert_eq!(issue.action, Action::Repaired);
        assert_eq!(row.geometry.as_ref().unwrap().kind, crate::row::GeometryKind::MultiPolygon);
        let Processed::Invalid(issue) = &out[2] else { panic!() };
        assert_eq!(issue.action, Action::Skipped);
        assert!(issue.reason.contains("not repaired"), "{}", issue.reason);
    }

    #[test]
    fn unstorable_text_is_a_feature_problem_under_the_policy() {
        let input = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"a\u0000b"},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Feature","properties":{"name":"ok","tags":["\ud800"]},"geometry":null},
            {"type":"Feature","properties":{"na\u0000me":1},"geometry":null},
            {"type":"Feature","properties":{"name":"fine"},"geometry":null}
        ]}"#;
        let skipped = run(input, Policy::Skip);
        for (n, out) in skipped.iter().take(3).enumerate() {
            let Processed::Invalid(issue) = out else { panic!("{n}: {out:?}") };
            assert_eq!(
                (issue.index, issue.code, issue.action),
                (n as u64, ProblemCode::UnstorableText, Action::Skipped)
            );
        }
        assert!(
            matches!(&skipped[0], Processed::Invalid(i) if i.reason.contains("\"name\"") && i.reason.contains("NUL"))
        );
        assert!(matches!(&skipped[1], Processed::Invalid(i) if i.reason.contains("surrogate")));
        assert!(matches!(&skipped[3], Processed::Row(_, None)));
        assert!(matches!(&run(input, Policy::Reject)[0], Processed::Invalid(i) if i.action == Action::Rejected));

        let repaired = run(input, Policy::Repair);
        let Processed::Row(row, Some(issue)) = &repaired[0] else { panic!("{:?}", repaired[0]) };
        assert_eq!((issue.code, issue.action), (ProblemCode::UnstorableText, Action::Repaired));
        assert!(row.properties.iter().any(|(_, v)| *v == PropValue::Text("a\u{FFFD}b".into())), "{row:?}");
        let Processed::Row(row, Some(_)) = &repaired[1] else { panic!("{:?}", repaired[1]) };
        assert!(row.properties.iter().any(|(_, v)| *v == PropValue::Json(r#"["\ufffd"]"#.into())), "{row:?}");
        let Processed::Row(row, Some(_)) = &repaired[2] else { panic!("{:?}", repaired[2]) };
        assert_eq!(row.properties.len(), 1, "the key is stored repaired: {row:?}");
    }

    #[test]
    fn reject_marks_invalid_features_rejected() {
        let out = run(MIXED, Policy::Reject);
        assert!(matches!(&out[1], Processed::Invalid(i) if i.action == Action::Rejected));
    }

    #[test]
    fn a_requested_geometry_type_refuses_other_kinds_but_takes_single_parts_of_multi() {
        let input = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},
            {"type":"Feature","properties":{},"geometry":null}
        ]}"#;
        let (raws, schema) = read(input);
        assert_eq!(
            schema.geometry,
            crate::geometry_type::GeometryKinds::of(
                &[crate::row::GeometryKind::Polygon, crate::row::GeometryKind::Point],
                false
            )
        );
        let request = GeometryType::Exactly(crate::row::GeometryKind::MultiPolygon);
        for policy in [Policy::Skip, Policy::Repair, Policy::Reject] {
            let p = Processor::new(&schema, policy).with_geometry_type(request);
            let out: Vec<Processed> = raws.iter().map(|r| p.process(r.clone())).collect();
            assert!(matches!(&out[0], Processed::Row(..)), "{:?}", out[0]);
            let Processed::Invalid(issue) = &out[1] else { panic!("{:?}", out[1]) };
            assert_eq!(issue.code, ProblemCode::GeometryType);
            assert!(issue.reason.contains("Point") && issue.reason.contains("multipolygon"), "{}", issue.reason);
            let expected = if policy == Policy::Reject { Action::Rejected } else { Action::Skipped };
            assert_eq!(issue.action, expected);
            assert!(matches!(&out[2], Processed::Row(r, None) if r.geometry.is_none()));
        }
    }
}
