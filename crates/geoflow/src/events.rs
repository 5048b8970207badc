//! Storage events: what a queue message asks the worker to do.
//!
//! Messages are S3 event notifications (event version 2.x), as S3 sends them to SQS directly
//! or wrapped in an SNS envelope. The embedded deployment writes the same format for its
//! uploads and its inbox, so there is one parser. Keys arrive form-URL-encoded (`+` is a
//! space). The dataset is read from the key: `[prefix/]raw/<dataset>/…`.

use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::report::Policy;
use geoflow_core::schema::SchemaPolicy;
use serde::{Deserialize, Serialize};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `ObjectCreated:*`: load the object.
    Created,
    /// `ObjectRemoved:*`: remove the source's rows.
    Removed,
}

/// One event record: an object key and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub kind: EventKind,
    /// The key, decoded, relative to the bucket.
    pub key: String,
    pub dataset: DatasetName,
    pub version_id: Option<String>,
    /// Set when the object came through the.tag API, which chose the job and its options.
    pub tag: Option<JobTag>,
}

/// The job the API answered a request with, and the options it asked for. Travels in the
/// `geoflow` member of the event record (S3's format leaves room for it); native S3 events
/// have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTag {
    /// The job the upload answered with.
    pub job: String,
    pub on_invalid: Policy,
    /// What the load may do to existing column types; the worker's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_policy: Option<SchemaPolicy>,
    /// The geometry type asked for the dataset's geometry column; the worker's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry_type: Option<GeometryType>,
    /// The mode asked for a dataset the upload creates; `None`: the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<DatasetMode>,
    /// In upsert mode, the property that keys the features of a dataset the upload creates
    /// (`None`: the worker's default, and without one the Feature `id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Load even if the source already holds this content under the same settings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// How to read the source (its CRS, the layer, CSV columns); the worker's defaults where
    /// it chooses nothing.
    #[serde(flatten)]
    pub read: crate::ingest::ReadChoices,
}

/// A message that cannot be turned into events. Retrying cannot fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadMessage(pub String);

/// The events of one message body; empty for messages that ask for nothing (`s3:TestEvent`,
/// event kinds other than created/removed).
pub fn parse(body: &str, prefix: &str) -> Result<Vec<Result<ObjectEvent, BadMessage>>, BadMessage> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| BadMessage(format!("the message is not JSON: {e}")))?;
    // An SNS envelope carries the S3 notification as a JSON string in `Message`.
    if value.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
        let inner = value
            .get("Message")
            .and_then(|m| m.as_str())
            .ok_or_else(|| BadMessage("an SNS notification without a Message string".into()))?;
        return parse(inner, prefix);
    }
    if value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let notification: Notification = serde_json::from_value(value)
        .map_err(|e| BadMessage(format!("the message is not an S3 event notification: {e}")))?;
    Ok(notification.records.into_iter().filter_map(|r| record(r, prefix)).collect())
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventVersion")]
    event_version: String,
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
    geoflow: Option<JobTag>,
}

#[derive(Deserialize)]
struct S3Entity {
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
}

fn record(r: Record, prefix: &str) -> Option<Result<ObjectEvent, BadMessage>> {
    let kind = match r.event_name.split(':').next() {
        Some("ObjectCreated") => EventKind::Created,
        Some("ObjectRemoved") => EventKind::Removed,
        // Restores, replication, lifecycle transitions… change no content we hold.
        _ => return None,
    };
    Some(event(kind, r, prefix))
}

fn event(kind: EventKind, r: Record, prefix: &str) -> Result<ObjectEvent, BadMessage> {
    if r.event_version.split('.').next() != Some("2") {
        return Err(BadMessage(format!("unsupported S3 event version {:?} (2.x is understood)", r.event_version)));
    }
    let key = decode_key(&r.s3.object.key)?;
    let dataset = dataset_of(&key, prefix)?;
    let version_id = r.s3.object.version_id.filter(|v| !v.is_empty() && v != "null");
    Ok(ObjectEvent { kind, key, dataset, version_id, tag: r.geoflow })
}

/// S3 event keys are form-URL-encoded: `+` is a space and `%2B` a plus sign.
pub fn decode_key(raw: &str) -> Result<String, BadMessage> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| BadMessage(format!("the object key {raw:?} is not UTF-8 once decoded")))
}

/// The dataset of a key laid out as `[prefix/]raw/<dataset>/<anything>`.
pub fn dataset_of(key: &str, prefix: &str) -> Result<DatasetName, BadMessage> {
    let outside = || {
        BadMessage(format!(
            "the object key {key:?} is outside the.tag layout {}raw/<dataset>/<name>",
            if prefix.is_empty() { String::new() } else { format!("{prefix}/") }
        ))
    };
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix).and_then(|k| k.strip_prefix('/')).ok_or_else(outside)?
    };
    let mut parts = rest.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("raw"), Some(dataset), Some(name)) if !name.is_empty() && !name.ends_with('/') => {
            DatasetName::new(dataset)
                .map_err(|e| BadMessage(format!("the object key {key:?} names an invalid dataset: {e}")))
        }
        _ => Err(outside()),
    }
}

/// An event notification body in S3's format, for storage that has no notifications of its
/// own (the local folder) and for requests to the API.
pub fn notification(kind: EventKind, key: &str, size: u64, tag: Option<&JobTag>) -> String {
    let name = match kind {
        EventKind::Created => "ObjectCreated:Put",
        EventKind::Removed => "ObjectRemoved:Delete",
    };
    let encoded = percent_encoding::utf8_percent_encode(key, KEY_ENCODE).to_string();
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "geoflow:local",
            "eventName": name,
            "eventTime": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "s3": { "s3SchemaVersion": "1.0", "bucket": { "name": "local" },
                    "object": { "key": encoded, "size": size } },
            "geoflow": tag,
        }]
    })
    .to_string()
}

/// Everything but unreserved characters and `/` is escaped, as S3 does.
const KEY_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_body(name: &str, key: &str, version: Option<&str>) -> String {
        let mut object =
            serde_json::json!({ "key": key, "size": 42, "eTag": "abc", "sequencer": "0055AED6DCD90281E5" });
        if let Some(v) = version {
            object["versionId"] = v.into();
        }
        serde_json::json!({ "Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": name,
            "s3": { "s3SchemaVersion": "1.0", "bucket": { "name": "b" }, "object": object }
        }]})
        .to_string()
    }

    fn one(body: &str) -> Result<ObjectEvent, BadMessage> {
        let mut events = parse(body, "").unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn created_and_removed_events_name_their_dataset() {
        let e = one(&s3_body("ObjectCreated:Put", "raw/roads/2026-01-02/a+b%2Bc.geojson", Some("v1"))).unwrap();
        assert_eq!(e.kind, EventKind::Created);
        assert_eq!(e.key, "raw/roads/2026-01-02/a b+c.geojson");
        assert_eq!(e.dataset.as_str(), "roads");
        assert_eq!(e.version_id.as_deref(), Some("v1"));
        let e = one(&s3_body("ObjectRemoved:DeleteMarkerCreated", "raw%2Froads%2Fx.geojson", None)).unwrap();
        assert_eq!((e.kind, e.key.as_str(), e.version_id), (EventKind::Removed, "raw/roads/x.geojson", None));
    }

    #[test]
    fn test_events_and_other_kinds_ask_for_nothing() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00.000Z","Bucket":"b"}"#;
        assert_eq!(parse(test, "").unwrap(), vec![]);
        assert_eq!(parse(&s3_body("ObjectRestore:Completed", "raw/a/b", None), "").unwrap(), vec![]);
    }

    #[test]
    fn sns_envelopes_are_unwrapped() {
        let inner = s3_body("ObjectCreated:CompleteMultipartUpload", "raw/parks/p.geojson", None);
        let sns = serde_json::json!({ "Type": "Notification", "MessageId": "m", "Message": inner }).to_string();
        assert_eq!(one(&sns).unwrap().dataset.as_str(), "parks");
    }

    #[test]
    fn keys_outside_the_layout_and_bad_messages_are_permanent_errors() {
        for key in ["incoming/x.geojson", "raw/roads", "raw/roads/", "raw/Roads/x.geojson", "raw/1abc/x"] {
            let err = one(&s3_body("ObjectCreated:Put", key, None)).unwrap_err();
            assert!(err.0.contains(&format!("{key:?}")) || err.0.contains("dataset"), "{key}: {err}");
        }
        assert!(parse("not json", "").unwrap_err().0.contains("not JSON"));
        assert!(parse(r#"{"hello":1}"#, "").unwrap_err().0.contains("not an S3 event"));
        let v3 = s3_body("ObjectCreated:Put", "raw/a/b", None).replace("\"2.1\"", "\"3.0\"");
        assert!(one(&v3).unwrap_err().0.contains("event version"));
        assert!(one(&s3_body("ObjectCreated:Put", "raw/a/%FF", None)).unwrap_err().0.contains("UTF-8"));
    }

    #[test]
    fn a_prefix_is_part_of_the_layout() {
        let e = parse(&s3_body("ObjectCreated:Put", "team%2Fraw%2Froads%2Fr.json", None), "team").unwrap();
        assert_eq!(e[0].as_ref().unwrap().dataset.as_str(), "roads");
        assert!(parse(&s3_body("ObjectCreated:Put", "raw/roads/r.json", None), "team").unwrap()[0].is_err());
    }

    #[test]
    fn local_notifications_round_trip() {
        let body = notification(EventKind::Created, "raw/roads/2026-01-01/a b+c%.geojson", 7, None);
        let e = one(&body).unwrap();
        assert_eq!(e.key, "raw/roads/2026-01-01/a b+c%.geojson");
        assert_eq!(e.tag, None);
        let tag = JobTag {
            job: "j1".into(),
            on_invalid: Policy::Reject,
            mode: None,
            key: None,
            force: false,
            schema_policy: Some(SchemaPolicy::Strict),
            geometry_type: Some(GeometryType::PromoteMulti),
            read: crate::ingest::ReadChoices {
                source_crs: Some("EPSG:27700".into()),
                csv_delimiter: Some(';'),
                ..Default::default()
            },
        };
        let e = one(&notification(EventKind::Created, "raw/roads/x.geojson", 7, Some(&tag))).unwrap();
        assert_eq!(e.tag, Some(tag));
    }
}
