//! geoflow's core: streaming GeoJSON reading, validation, repair, derived measures, WKB
//! encoding and property schema inference. Pure: no IO beyond `std::io::Read`, no async.

pub mod crs;
pub mod dataset;
pub mod feature;
pub mod geometry;
pub mod geometry_type;
pub mod measure;
pub mod process;
pub mod reader;
pub mod repair;
pub mod report;
pub mod row;
mod scan;
pub mod schema;
pub mod served_crs;
mod simple_rings;
pub mod storable;
pub mod validate;
pub mod value;
pub mod wkb;
