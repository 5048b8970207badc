//! The `COPY … FROM STDIN (FORMAT binary)` encoding of rows, written straight into a buffer.
//!
//! Layout: a header, then per row a field count (int16) and per field its length (int32,
//! -1 for NULL) and bytes in the type's binary receive format, then a trailer (int16 -1).

use bytes::{BufMut, BytesMut};

use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::FieldType;
use geoflow_core::value::PropValue;

use crate::layout::{route_properties, FieldSlot, OverflowObject};
use crate::StoreError;

/// SRID every geometry is stored with.
pub const SRID: u32 = 4326;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// EWKB flag: an SRID follows the type word.
const EWKB_SRID_FLAG: u32 = 0x2000_0000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Encodes rows of one load into COPY binary format.
pub struct RowEncoder {
    fields: Vec<FieldSlot>,
    /// The position of the overflow column among the property columns, when the COPY has it.
    overflow_slot: Option<usize>,
    overflow: OverflowObject,
    id_type: FieldType,
    property_columns: usize,
    source: String,
    load_id: i64,
    /// Microseconds since 2000-01-01 UTC.
    loaded_at: i64,
    /// Per property column: the row number that last wrote it (to find the NULLs).
    values: Vec<Option<(FieldType, usize)>>,
    pub rows: u64,
    pub bbox: Option<Bbox>,
}

/// Columns written before the property columns, in COPY order: all system columns but the
/// generated `fid`.
pub const COPY_SYSTEM_COLUMNS: &[&str] = crate::layout::SYSTEM_COLUMNS.split_at(1).1;

impl RowEncoder {
    /// `fields`: per schema field, the index of its COPY property column and that column's
    /// type. `loaded_at`: microseconds since 2000-01-01 UTC.
    pub fn new(
        (fields, overflow_slot): (Vec<FieldSlot>, Option<usize>),
        property_columns: usize,
        id_type: FieldType,
        source: &str,
        load_id: i64,
        loaded_at: i64,
    ) -> RowEncoder {
        RowEncoder {
            fields,
            overflow_slot,
            overflow: OverflowObject::default(),
            id_type,
            property_columns,
            source: source.to_string(),
            load_id,
            loaded_at,
            values: vec![None; property_columns],
            rows: 0,
            bbox: None,
        }
    }

    pub fn header(buf: &mut BytesMut) {
        buf.put_slice(HEADER);
        buf.put_i32(0);
        buf.put_i32(0);
    }

    pub fn trailer(buf: &mut BytesMut) {
        buf.put_i16(-1);
    }

    /// Appends one row.
    pub fn encode(&mut self, buf: &mut BytesMut, row: &Row) -> Result<(), StoreError> {
        // Resolve the property values first: a bad row leaves the buffer as it was.
        self.values.iter_mut().for_each(|v| *v = None);
        let values = &mut self.values;
        route_properties(&self.fields, row, &mut self.overflow, |column, ty, n| {
            values[column] = Some((ty, n));
            Ok(())
        })?;
        let overflow = self.overflow.finish();

        let count = COPY_SYSTEM_COLUMNS.len() + self.property_columns;
        buf.reserve(256 + row.geometry.as_ref().map_or(0, |g| g.wkb.len()));
        buf.put_i16(count as i16);
        let bbox = row.geometry.as_ref().and_then(|g| g.bbox);
        match &row.geometry {
            Some(g) => put_ewkb(buf, &g.wkb),
            None => put_null(buf),
        }
        put_value(buf, &row.id, self.id_type, row.index)?;
        put_text(buf, &self.source);
        put_i64(buf, self.load_id);
        put_i64(buf, self.loaded_at);
        put_i64(buf, i64::try_from(row.index).unwrap_or(i64::MAX));
        match &row.geometry {
            Some(g) => put_text(buf, g.kind.name()),
            None => put_null(buf),
        }
        put_f64_opt(buf, row.measures.area_m2);
        put_f64_opt(buf, row.measures.length_m);
        match &row.geometry {
            Some(_) => {
                buf.put_i32(4);
                buf.put_i32(i32::try_from(row.measures.vertices).unwrap_or(i32::MAX));
            }
            None => put_null(buf),
        }
        put_f64_opt(buf, bbox.map(|b| b.min_x));
        put_f64_opt(buf, bbox.map(|b| b.min_y));
        put_f64_opt(buf, bbox.map(|b| b.max_x));
        put_f64_opt(buf, bbox.map(|b| b.max_y));
        for slot in 0..self.property_columns {
            match (self.values[slot], overflow) {
                (Some((ty, n)), _) => put_value(buf, &row.properties[n].1, ty, row.index)?,
                (None, Some(object)) if self.overflow_slot == Some(slot) => put_jsonb(buf, object),
                (None, _) => put_null(buf),
            }
        }
        self.rows += 1;
        self.bbox = Bbox::merge(self.bbox, bbox);
        Ok(())
    }
}

fn put_null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

fn put_i64(buf: &mut BytesMut, v: i64) {
    buf.put_i32(8);
    buf.put_i64(v);
}

fn put_f64(buf: &mut BytesMut, v: f64) {
    buf.put_i32(8);
    buf.put_f64(v);
}

fn put_f64_opt(buf: &mut BytesMut, v: Option<f64>) {
    match v {
        Some(v) => put_f64(buf, v),
        None => put_null(buf),
    }
}

fn put_text(buf: &mut BytesMut, s: &str) {
    buf.put_i32(s.len() as i32);
    buf.put_slice(s.as_bytes());
}

fn put_jsonb(buf: &mut BytesMut, json: &str) {
    buf.put_i32(json.len() as i32 + 1);
    buf.put_u8(1);
    buf.put_slice(json.as_bytes());
}

/// The geometry as EWKB: the ISO WKB with the SRID flag set on the outer type word and the
/// SRID after it. PostGIS reads ISO Z type codes (1000 + code) with the SRID flag, and in
/// nested geometries, as they are.
fn put_ewkb(buf: &mut BytesMut, wkb: &[u8]) {
    if wkb.len() < 5 {
        // Not WKB: let the server reject it with its own message.
        buf.put_i32(wkb.len() as i32);
        buf.put_slice(wkb);
        return;
    }
    buf.put_i32(wkb.len() as i32 + 4);
    let little = wkb[0] == 1;
    let word = [wkb[1], wkb[2], wkb[3], wkb[4]];
    let ty = if little { u32::from_le_bytes(word) } else { u32::from_be_bytes(word) };
    buf.put_u8(wkb[0]);
    if little {
        buf.put_u32_le(ty | EWKB_SRID_FLAG);
        buf.put_u32_le(SRID);
    } else {
        buf.put_u32(ty | EWKB_SRID_FLAG);
        buf.put_u32(SRID);
    }
    buf.put_slice(&wkb[5..]);
}

/// Writes `value` as stored in a column of type `ty` (what `value.for_column(ty)` gives).
fn put_value(buf: &mut BytesMut, value: &PropValue, ty: FieldType, row: u64) -> Result<(), StoreError> {
    let mismatch = || {
        StoreError::Internal(format!(
            "row {row}: value {} does not fit a column of type {}",
            value.to_json_text(),
            ty.name()
        ))
    };
    match (ty, value) {
        (_, PropValue::Null) => put_null(buf),
        (FieldType::Json, PropValue::Json(j)) => put_jsonb(buf, j),
        (FieldType::Json, v) => put_jsonb(buf, &v.to_json_text()),
        (FieldType::Boolean, PropValue::Bool(b)) => {
            buf.put_i32(1);
            buf.put_u8(u8::from(*b));
        }
        (FieldType::Integer | FieldType::WideInteger, PropValue::Int(i)) => put_i64(buf, *i),
        (FieldType::Real, PropValue::Int(i)) => put_f64(buf, *i as f64),
        (FieldType::Real, PropValue::Real(f)) => put_f64(buf, *f),
        (FieldType::Date, PropValue::Text(s)) => {
            let days = parse_date(s.as_bytes()).ok_or_else(mismatch)?;
            buf.put_i32(4);
            buf.put_i32((days - PG_EPOCH_DAYS) as i32);
        }
        (FieldType::DateTime, PropValue::Text(s)) => put_i64(buf, parse_datetime(s).ok_or_else(mismatch)?),
        (FieldType::Text | FieldType::Null, PropValue::Text(s)) => put_text(buf, s),
        (FieldType::Text | FieldType::Null, v) => put_text(buf, &v.to_json_text()),
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn num(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`.
fn parse_date(b: &[u8]) -> Option<i64> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since 2000-01-01 UTC of `YYYY-MM-DDTHH:MM:SS.SSSZ`.
fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let days = parse_date(&b[..10])? - PG_EPOCH_DAYS;
    let (h, mi, sec, ms) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?, num(&b[20..23])?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days * MICROS_PER_DAY + ((h * 60 + mi) * 60 + sec) * 1_000_000 + ms * 1000)
}

/// Microseconds since 2000-01-01 UTC of a time.
pub fn pg_timestamp(t: time::OffsetDateTime) -> i64 {
    let micros = t.unix_timestamp_nanos() / 1000;
    micros as i64 - PG_EPOCH_DAYS * MICROS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_the_postgres_epoch() {
        assert_eq!(parse_date(b"2000-01-01"), Some(PG_EPOCH_DAYS));
        assert_eq!(parse_date(b"1970-01-01"), Some(0));
        assert_eq!(parse_date(b"2024-02-29"), Some(19_782));
        assert_eq!(parse_date(b"2023-02-29"), None);
        assert_eq!(parse_datetime("2000-01-01T00:00:01.250Z"), Some(1_250_000));
        assert_eq!(parse_datetime("1999-12-31T23:59:59.000Z"), Some(-1_000_000));
        assert_eq!(parse_datetime("2000-01-01T00:00:01Z"), None);
    }

    #[test]
    fn ewkb_carries_the_srid() {
        let mut wkb = vec![1];
        wkb.extend_from_slice(&1001u32.to_le_bytes());
        wkb.extend_from_slice(&[0; 24]);
        let mut buf = BytesMut::new();
        put_ewkb(&mut buf, &wkb);
        assert_eq!(&buf[..4], &(wkb.len() as i32 + 4).to_be_bytes());
        assert_eq!(buf[4], 1);
        assert_eq!(&buf[5..9], &(1001u32 | EWKB_SRID_FLAG).to_le_bytes());
        assert_eq!(&buf[9..13], &4326u32.to_le_bytes());
        assert_eq!(buf.len(), 4 + wkb.len() + 4);
    }
}
