//! GeoJSON, GeoJSON Text Sequences and newline-delimited GeoJSON, as they stream in (see
//! `geoflow_core::reader`), with any CRS a legacy `crs` member names resolved by PROJ.

use std::io::Read;
use std::sync::Arc;

use geoflow_core::reader::GeoJsonReader;

use crate::SourceInfo;
use crate::{classify, CrsTransform, FeatureSource, ProjResolver, RawFeature, ReadError, ReadOptions};

pub(crate) struct GeoJsonSource<R> {
    reader: GeoJsonReader<R>,
}

impl<R: Read> GeoJsonSource<R> {
    pub(crate) fn new(stream: R, options: &ReadOptions, source_crs: Option<CrsTransform>) -> Self {
        let mut reader = GeoJsonReader::new(stream, options.limits).with_resolver(Arc::new(ProjResolver));
        if let Some(crs) = source_crs {
            reader = reader.with_source_crs(crs);
        }
        GeoJsonSource { reader }
    }
}

impl<R: Read> Iterator for GeoJsonSource<R> {
    type Item = Result<RawFeature, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|r| r.map_err(classify))
    }
}

impl<R: Read + Send> FeatureSource for GeoJsonSource<R> {
    fn info(&self) -> SourceInfo {
        SourceInfo::read("GeoJSON", None, self.reader.crs(), &[])
    }
}
