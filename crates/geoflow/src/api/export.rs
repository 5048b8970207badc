//! Feature pages as CSV and as GeoJSON Text Sequences, written as the store reads them: the
//! formats spreadsheets, `jq` and stream processors take without holding a whole collection.
//!
//! Both hold exactly what the GeoJSON page holds: each feature's id, its properties (those asked
//! for, in the collection's column order) and its geometry. A sequence has no place for paging
//! links, nor has CSV: their neighbours are reached with `offset`, or with the `next` links of
//! the same page as GeoJSON.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use geoflow_store::{StoreError, StoredFeature};
use geozero::ToWkt;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The media type of GeoJSON Text Sequences (RFC 8142).
pub(super) const GEOJSON_SEQ: &str = "application/geo+json-seq";
pub(super) const CSV: &str = "text/csv; charset=utf-8";

/// Bytes gathered before they are sent: large enough for few writes, small enough to stream.
const CHUNK: usize = 64 << 10;

/// How features are written in one of these formats.
pub(super) trait Encoder: Send + 'static {
    /// What comes before the first feature.
    fn head(&mut self, _out: &mut Vec<u8>) {}
    fn feature(&mut self, feature: &StoredFeature, out: &mut Vec<u8>) -> Result<(), String>;
}

/// RFC 8142: each feature is a record, the record separator (0x1E), its JSON text and a line
/// feed. GDAL's GeoJSONSeq driver and `jq --seq` read it.
pub(super) struct Sequence;

impl Encoder for Sequence {
    fn feature(&mut self, feature: &StoredFeature, out: &mut Vec<u8>) -> Result<(), String> {
        out.push(0x1e);
        out.extend_from_slice(feature.json.as_bytes());
        out.push(b'\n');
        Ok(())
    }
}

/// A header row (`WKT`, `id`, then the properties), then one row per feature: the geometry as
/// WKT (empty when it has none), strings by their characters, numbers and booleans as JSON writes
/// them, nested values as their JSON text, `null` as an empty field.
pub(super) struct Csv {
    keys: Vec<String>,
    geometry: bool,
}

impl Csv {
    /// The columns: the geometry unless left out, then `keys`.
    pub(super) fn new(keys: Vec<String>, geometry: bool) -> Csv {
        Csv { keys, geometry }
    }

    fn write_row<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a [u8]>) -> Result<(), String> {
        let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
        writer.write_record(fields).and_then(|()| writer.flush().map_err(csv::Error::from)).map_err(|e| e.to_string())
    }
}

/// A stored feature, its members kept as their text.
#[derive(Deserialize)]
struct FeatureText<'a> {
    #[serde(borrow)]
    geometry: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: std::collections::HashMap<String, &'a RawValue>,
}

impl Encoder for Csv {
    fn head(&mut self, out: &mut Vec<u8>) {
        let geometry = self.geometry.then_some("WKT".as_bytes());
        let names = geometry.into_iter().chain(["id".as_bytes()]).chain(self.keys.iter().map(|k| k.as_bytes()));
        // Writing to memory cannot fail.
        let _ = Csv::write_row(out, names);
    }

    fn feature(&mut self, feature: &StoredFeature, out: &mut Vec<u8>) -> Result<(), String> {
        let parsed: FeatureText =
            serde_json::from_str(&feature.json).map_err(|e| format!("feature {}: {e}", feature.fid))?;
        let wkt = match (self.geometry, parsed.geometry) {
            (true, Some(g)) if g.get() != "null" => {
                Some(geozero::geojson::GeoJson(g.get()).to_wkt().map_err(|e| format!("feature {}: {e}", feature.fid))?)
            }
            (true, _) => Some(String::new()),
            (false, _) => None,
        };
        let id = feature.fid.to_string();
        let values: Vec<String> =
            self.keys.iter().map(|k| parsed.properties.get(k).map_or_else(String::new, |v| field(v))).collect();
        let fields = wkt.iter().map(|w| w.as_bytes()).chain([id.as_bytes()]).chain(values.iter().map(|v| v.as_bytes()));
        Csv::write_row(out, fields)
    }
}

/// A property value as a CSV field.
fn field(value: &RawValue) -> String {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text).unwrap_or_default(),
        _ if text == "null" => String::new(),
        _ => text.to_string(),
    }
}

/// A page's body: `encoder`'s head, then at most `limit` features, sent in chunks as the store
/// reads them. A failure mid-way cuts the body, so that no client takes a partial page whole.
pub(super) fn body<S>(features: S, limit: usize, mut encoder: impl Encoder) -> Body
where
    S: Stream<Item = Result<StoredFeature, StoreError>> + Send + Unpin + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut features = features.take(limit);
        let mut chunk = Vec::with_capacity(CHUNK);
        encoder.head(&mut chunk);
        while let Some(feature) = features.next().await {
            let written = feature.map_err(|e| e.to_string()).and_then(|f| encoder.feature(&f, &mut chunk));
            if let Err(e) = written {
                tracing::error!(error = %e, "writing features failed mid-response");
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
            if chunk.len() >= CHUNK && tx.send(Ok(Bytes::from(std::mem::take(&mut chunk)))).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Ok(Bytes::from(chunk))).await;
    });
    Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(fid: i64, json: &str) -> StoredFeature {
        StoredFeature { fid, json: json.to_string(), sort_values: Vec::new() }
    }

    #[test]
    fn csv_rows_quote_what_needs_it_and_keep_number_text() {
        let mut csv = Csv::new(vec!["name".into(), "pop".into(), "tags".into(), "gone".into(), "ok".into()], true);
        let mut out = Vec::new();
        csv.head(&mut out);
        let json = r#"{"type":"Feature","id":7,"geometry":{"type":"Point","coordinates":[-9.14,38.7]},"properties":{"name":"Lisboa, \"capital\"","pop":5000000000,"tags":{"a": [1, 2.5]},"gone":null,"ok":true}}"#;
        csv.feature(&feature(7, json), &mut out).unwrap();
        let none = r#"{"type":"Feature","id":8,"geometry":null,"properties":{"name":"x\ny","pop":1.5,"tags":null,"gone":null,"ok":false}}"#;
        csv.feature(&feature(8, none), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "WKT,id,name,pop,tags,gone,ok\r\n\
             POINT(-9.14 38.7),7,\"Lisboa, \"\"capital\"\"\",5000000000,\"{\"\"a\"\": [1, 2.5]}\",,true\r\n\
             ,8,\"x\ny\",1.5,,,false\r\n"
        );
    }

    #[test]
    fn csv_without_geometry_has_no_wkt_column() {
        let mut csv = Csv::new(vec!["name".into()], false);
        let mut out = Vec::new();
        csv.head(&mut out);
        csv.feature(&feature(1, r#"{"type":"Feature","id":1,"geometry":null,"properties":{"name":"a"}}"#), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id,name\r\n1,a\r\n");
    }

    #[test]
    fn sequences_are_rfc_8142_records() {
        let mut out = Vec::new();
        Sequence.feature(&feature(1, r#"{"type":"Feature"}"#), &mut out).unwrap();
        assert_eq!(out, b"\x1e{\"type\":\"Feature\"}\n");
    }
}
