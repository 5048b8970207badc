//! geoflow: event-driven GeoJSON ingestion into PostGIS and GeoPackage.
//!
//! The binary's wiring: configuration, telemetry, and the ingest pipeline that connects the
//! pure core (`geoflow-core`) to a spatial store (`geoflow-store`).

pub mod api;
pub mod cli;
pub mod config;
pub mod events;
pub mod ingest;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod reports;
pub mod storage;
pub mod telemetry;
pub mod worker;
