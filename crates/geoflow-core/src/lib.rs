//! geoflow's core: streaming GeoJSON reading, validation, repair, derived measures, WKB
//! encoding and property schema inference. Pure: no IO beyond `std::io::Read`, no async.

pub mod dataset;
pub mod report;
pub mod row;
pub mod schema;
pub mod value;
