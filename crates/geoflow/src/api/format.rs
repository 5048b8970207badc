//! Which representation a client gets: `?f=` first, else the best match of its `Accept`
//! header (RFC 9110 quality values), else GeoJSON.

use axum::http::{header, HeaderMap};

use super::problem::Problem;

/// A representation of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// JSON: GeoJSON for features.
    Json,
    Html,
    /// Features as CSV, the geometry as WKT in the first column (as `ogr2ogr -lco GEOMETRY=AS_WKT`
    /// writes it, so that GDAL and QGIS read the geometry back).
    Csv,
    /// Features as GeoJSON Text Sequences (RFC 8142): one record per feature.
    GeoJsonSeq,
}

/// What every resource offers.
pub(super) const DOCUMENT_FORMATS: &[Format] = &[Format::Json, Format::Html];
/// What feature pages offer.
pub(super) const ITEMS_FORMATS: &[Format] = &[Format::Json, Format::Html, Format::Csv, Format::GeoJsonSeq];

impl Format {
    /// The `f` value naming it (the first is the one links use).
    fn names(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["json", "geojson"],
            Format::Html => &["html"],
            Format::Csv => &["csv"],
            Format::GeoJsonSeq => &["geojsonseq"],
        }
    }

    /// The media types it answers in `Accept`.
    fn media_types(self) -> &'static [&'static str] {
        match self {
            Format::Json => &["application/geo+json", "application/json"],
            Format::Html => &["text/html", "application/xhtml+xml"],
            Format::Csv => &["text/csv"],
            Format::GeoJsonSeq => &["application/geo+json-seq"],
        }
    }

    /// Its `f` value.
    pub(super) fn name(self) -> &'static str {
        self.names()[0]
    }

    /// The representation of `offered` a request asks for; the first offered when it names none.
    pub(super) fn negotiate(f: Option<&str>, headers: &HeaderMap, offered: &[Format]) -> Result<Format, Problem> {
        if let Some(f) = f {
            return offered.iter().copied().find(|format| format.names().contains(&f)).ok_or_else(|| {
                let names: Vec<&str> = offered.iter().map(|format| format.name()).collect();
                Problem::bad_request("invalid-parameter", format!("f={f:?}: expected {}", names.join(", ")))
            });
        }
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(preferred(accept, offered).unwrap_or(offered[0]))
    }
}

/// The offered format an `Accept` header prefers: the highest quality; at equal quality a media
/// type named exactly beats a wildcard, and then the one named first wins. `None` when the header
/// names none of them (or only wildcards).
fn preferred(accept: &str, offered: &[Format]) -> Option<Format> {
    // (quality, exact, position in the header) of the best range matching each format.
    let mut best: Option<(f32, bool, std::cmp::Reverse<usize>, Format)> = None;
    for (position, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if quality <= 0.0 || media == "*/*" {
            continue;
        }
        for &format in offered {
            let exact = format.media_types().contains(&media.as_str());
            let wildcard = media
                .strip_suffix("/*")
                .is_some_and(|kind| format.media_types().iter().any(|m| m.split('/').next() == Some(kind)));
            if !exact && !wildcard {
                continue;
            }
            let candidate = (quality, exact, std::cmp::Reverse(position), format);
            if best.is_none_or(|b| (candidate.0, candidate.1, candidate.2) > (b.0, b.1, b.2)) {
                best = Some(candidate);
            }
        }
    }
    best.map(|b| b.3)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(accept: &str, offered: &[Format]) -> Format {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        Format::negotiate(None, &h, offered).unwrap()
    }

    #[test]
    fn accept_headers_choose_by_quality_then_exactness_then_order() {
        assert_eq!(with("text/html,application/xhtml+xml,*/*;q=0.8", DOCUMENT_FORMATS), Format::Html);
        assert_eq!(with("application/geo+json", DOCUMENT_FORMATS), Format::Json);
        assert_eq!(with("application/json, text/html", DOCUMENT_FORMATS), Format::Json);
        assert_eq!(with("*/*", DOCUMENT_FORMATS), Format::Json);
        assert_eq!(with("application/xml", DOCUMENT_FORMATS), Format::Json, "nothing offered: the default");
        assert_eq!(with("text/html;q=0.5, application/json", DOCUMENT_FORMATS), Format::Json);
        assert_eq!(with("text/*, application/json;q=0.9", DOCUMENT_FORMATS), Format::Html);
        assert_eq!(with("application/geo+json-seq", ITEMS_FORMATS), Format::GeoJsonSeq, "not JSON for containing json");
        assert_eq!(with("application/geo+json-seq", DOCUMENT_FORMATS), Format::Json);
        assert_eq!(with("text/csv", ITEMS_FORMATS), Format::Csv);
        assert_eq!(with("text/*", ITEMS_FORMATS), Format::Html, "a wildcard takes the first offered of its kind");
        assert_eq!(with("text/csv;q=0, text/html", ITEMS_FORMATS), Format::Html);
    }

    #[test]
    fn f_names_an_offered_format() {
        let f = |name: &str, offered: &[Format]| Format::negotiate(Some(name), &HeaderMap::new(), offered);
        assert_eq!(f("html", DOCUMENT_FORMATS).unwrap(), Format::Html);
        assert_eq!(f("geojson", DOCUMENT_FORMATS).unwrap(), Format::Json);
        assert_eq!(f("csv", ITEMS_FORMATS).unwrap(), Format::Csv);
        assert_eq!(f("geojsonseq", ITEMS_FORMATS).unwrap(), Format::GeoJsonSeq);
        assert!(f("csv", DOCUMENT_FORMATS).is_err(), "offered by feature pages only");
        assert!(f("xml", ITEMS_FORMATS).is_err());
    }
}
