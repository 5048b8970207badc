//! The attribute table of a Shapefile: a dBASE (.dbf) file, read one record at a time, its
//! values typed and its text decoded as GDAL does.
//!
//! Decoded here rather than through a general dBASE reader so that numbers keep their exact
//! type (an `N` field without decimals is an integer, even past 2^53), so that the null
//! markers GDAL honours (`****`, blanks, `?`, `00000000`) read as nulls, and so that the code
//! page a `.cpg` file names is applied to field names and values alike.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use geoflow_core::value::PropValue;

use crate::read_up_to;
use crate::{malformed, ReadError};

const FORMAT: &str = "Shapefile";
/// Size of the table header, and of each field descriptor after it.
const HEADER_LEN: usize = 32;
const DESCRIPTOR_LEN: usize = 32;
/// Ends the field descriptors.
const DESCRIPTORS_END: u8 = 0x0d;
const DELETED: u8 = b'*';

/// How the text of a table is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextEncoding {
    /// Nothing says: UTF-8 where the bytes are valid UTF-8 (as GDAL passes them through),
    /// ISO-8859-1 otherwise.
    Undeclared,
    Utf8,
    /// ISO-8859-1 proper (each byte its own code point), which GDAL uses for LDID 87.
    Latin1,
    Encoding(&'static encoding_rs::Encoding),
    /// A DOS code page (437, 850, ...), decoded with `yore`.
    Oem(u16),
}

impl TextEncoding {
    /// The encoding a `.cpg` file names, as GDAL reads it (`UTF-8`, `1252`, `CP1251`,
    /// `ANSI 1251`, `ISO-8859-1`, `88591`, `LDID/87`, or any WHATWG label).
    pub(crate) fn from_cpg(text: &str) -> Option<TextEncoding> {
        let name = text.trim_start_matches('\u{feff}').trim().to_ascii_uppercase();
        if name.is_empty() {
            return None;
        }
        if matches!(name.as_str(), "UTF-8" | "UTF8" | "65001") {
            return Some(TextEncoding::Utf8);
        }
        if let Some(ldid) = name.strip_prefix("LDID/") {
            return ldid.trim().parse::<u8>().ok().and_then(TextEncoding::from_ldid);
        }
        if let Some(at) = name.find("8859") {
            let part = name[at + 4..].trim_start_matches(['-', '_', ' ']);
            return match part.parse::<u8>().ok()? {
                1 => Some(TextEncoding::Latin1),
                n => encoding_rs::Encoding::for_label(format!("iso-8859-{n}").as_bytes()).map(TextEncoding::Encoding),
            };
        }
        if name == "LATIN1" {
            return Some(TextEncoding::Latin1);
        }
        let number = ["ANSI", "CP", "WINDOWS", "IBM", "OEM"]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .unwrap_or(&name)
            .trim_start_matches(['-', '_', ' ']);
        if let Ok(code_page) = number.parse::<u16>() {
            return TextEncoding::from_code_page(code_page);
        }
        encoding_rs::Encoding::for_label(name.as_bytes()).map(TextEncoding::Encoding)
    }

    /// The encoding a dBASE language driver id (header byte 29) stands for, after GDAL's
    /// table; 0 says nothing.
    pub(crate) fn from_ldid(ldid: u8) -> Option<TextEncoding> {
        let code_page = match ldid {
            0 => return Some(TextEncoding::Undeclared),
            87 => return Some(TextEncoding::Latin1),
            1 | 11 | 13 | 15 | 17 | 21 | 24 | 25 | 27 => 437,
            2 | 10 | 14 | 16 | 18 | 20 | 22 | 26 | 29 | 37 | 55 => 850,
            3 | 88 | 89 => 1252,
            4 => 10000,
            8 | 23 | 102 => 865,
            19 | 123 => 932,
            28 | 108 => 863,
            31 | 34 | 35 | 64 | 100 | 135 => 852,
            36 => 860,
            38 | 101 => 866,
            77 | 122 => 936,
            78 | 121 => 949,
            79 | 120 => 950,
            80 | 124 => 874,
            103 => 861,
            106 | 134 => 737,
            107 | 136 => 857,
            150 => 10007,
            151 => 10029,
            200 => 1250,
            201 => 1251,
            202 => 1254,
            203 => 1253,
            204 => 1257,
            _ => return None,
        };
        TextEncoding::from_code_page(code_page)
    }

    fn from_code_page(code_page: u16) -> Option<TextEncoding> {
        match code_page {
            65001 => Some(TextEncoding::Utf8),
            28591 => Some(TextEncoding::Latin1),
            437 | 737 | 850 | 852 | 855 | 857 | 860 | 861 | 862 | 863 | 865 | 869 => Some(TextEncoding::Oem(code_page)),
            _ => codepage::to_encoding(code_page).map(TextEncoding::Encoding),
        }
    }

    pub(crate) fn name(self) -> String {
        match self {
            TextEncoding::Undeclared => "UTF-8, or ISO-8859-1 where not valid UTF-8".to_string(),
            TextEncoding::Utf8 => "UTF-8".to_string(),
            TextEncoding::Latin1 => "ISO-8859-1".to_string(),
            TextEncoding::Encoding(e) => e.name().to_string(),
            TextEncoding::Oem(cp) => format!("CP{cp}"),
        }
    }

    /// Text from `bytes`; undecodable bytes become U+FFFD.
    pub(crate) fn decode(self, bytes: &[u8]) -> String {
        match self {
            TextEncoding::Undeclared => match std::str::from_utf8(bytes) {
                Ok(text) => text.to_string(),
                Err(_) => latin1(bytes),
            },
            TextEncoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            TextEncoding::Latin1 => latin1(bytes),
            TextEncoding::Encoding(encoding) => encoding.decode_without_bom_handling(bytes).0.into_owned(),
            TextEncoding::Oem(code_page) => oem(code_page, bytes),
        }
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn oem(code_page: u16, bytes: &[u8]) -> String {
    use yore::code_pages::*;
    use yore::CodePage;
    fn decode_in(code_page: u16, bytes: &[u8]) -> Result<Cow<'_, str>, yore::DecodeError> {
        match code_page {
            437 => CodePage::decode(&CP437, bytes),
            737 => CodePage::decode(&CP737, bytes),
            850 => CodePage::decode(&CP850, bytes),
            852 => CodePage::decode(&CP852, bytes),
            855 => CodePage::decode(&CP855, bytes),
            857 => CodePage::decode(&CP857, bytes),
            860 => CodePage::decode(&CP860, bytes),
            861 => CodePage::decode(&CP861, bytes),
            862 => CodePage::decode(&CP862, bytes),
            863 => CodePage::decode(&CP863, bytes),
            865 => CodePage::decode(&CP865, bytes),
            _ => CodePage::decode(&CP869, bytes),
        }
    }
    let decode = |bytes| decode_in(code_page, bytes);
    match decode(bytes) {
        Ok(text) => text.into_owned(),
        // A byte the code page leaves undefined: decode the rest around it.
        Err(_) => bytes
            .iter()
            .map(|b| decode(std::slice::from_ref(b)).map_or('\u{fffd}'.into(), |c| c.into_owned()))
            .collect(),
    }
}

/// One column of the table.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: FieldKind,
    /// Byte offset in the record (after the deletion flag).
    offset: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Text,
    /// `N` without decimals (integers, as GDAL reads widths up to 18), `N` with decimals
    /// and `F` are reals.
    Number {
        integer: bool,
    },
    Logical,
    Date,
    /// A memo, binary or unknown field: not read.
    Skipped,
}

/// A record of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DbfRecord {
    /// Marked deleted: GDAL does not read it.
    Deleted,
    Values(Vec<(String, PropValue)>),
}

/// A .dbf file open for reading, record by record.
pub(crate) struct DbfReader {
    file: BufReader<File>,
    /// The file's name, for messages.
    name: String,
    fields: Vec<Field>,
    header_len: u64,
    record_len: usize,
    records: u64,
    /// The record `file` is positioned at.
    next: u64,
    encoding: TextEncoding,
    buf: Vec<u8>,
    /// What the load report should say (fields not read).
    notes: Vec<String>,
}

impl DbfReader {
    /// Opens the table at `path`; `encoding` (from a `.cpg`) overrides its language driver.
    pub(crate) fn open(path: &Path, name: &str, encoding: Option<TextEncoding>) -> Result<DbfReader, ReadError> {
        let file = File::open(path)?;
        let file_len = file.metadata()?.len();
        // Records are read one after the other: read ahead many at a time.
        let mut file = BufReader::with_capacity(64 << 10, file);
        let bad = |why: String| malformed(FORMAT, format!("{name}: {why}"));
        let mut header = [0u8; HEADER_LEN];
        read_fully(&mut file, &mut header).map_err(|_| bad("the table header is truncated".to_string()))?;
        let records = u64::from(u32::from_le_bytes([header[4], header[5], header[6], header[7]]));
        let header_len = usize::from(u16::from_le_bytes([header[8], header[9]]));
        let record_len = usize::from(u16::from_le_bytes([header[10], header[11]]));
        let mut notes = Vec::new();
        let encoding = match encoding {
            Some(e) => e,
            None => TextEncoding::from_ldid(header[29]).unwrap_or_else(|| {
                notes.push(format!(
                    "{name} names language driver {}, which geoflow does not know: its text is read as UTF-8, or \
                     ISO-8859-1 where not valid UTF-8",
                    header[29]
                ));
                TextEncoding::Undeclared
            }),
        };
        if header_len < HEADER_LEN + 1 {
            return Err(bad(format!("the header length {header_len} is too short")));
        }
        // The descriptors, up to the terminator (which some writers omit before the header end).
        let mut descriptors = vec![0u8; header_len - HEADER_LEN];
        let got = read_up_to(&mut file, &mut descriptors)?;
        if got < descriptors.len() {
            return Err(bad("the file ends inside the table header".to_string()));
        }
        let mut fields = Vec::new();
        let mut offset = 1;
        for descriptor in descriptors.chunks_exact(DESCRIPTOR_LEN) {
            if descriptor[0] == DESCRIPTORS_END {
                break;
            }
            let raw_name = &descriptor[..11];
            let raw_name = &raw_name[..raw_name.iter().position(|&b| b == 0).unwrap_or(raw_name.len())];
            let field_name = encoding.decode(raw_name).trim().to_string();
            let len = usize::from(descriptor[16]);
            let decimals = descriptor[17];
            let kind = match descriptor[11].to_ascii_uppercase() {
                b'C' => FieldKind::Text,
                b'N' => FieldKind::Number { integer: decimals == 0 && len <= 18 },
                b'F' => FieldKind::Number { integer: false },
                b'L' => FieldKind::Logical,
                b'D' => FieldKind::Date,
                other => {
                    let what = match other {
                        b'M' => "a memo field (its text is in a .dbt file)".to_string(),
                        _ => format!("of dBASE type {:?}", char::from(other)),
                    };
                    notes.push(format!("field {field_name:?} of {name} is {what}, which geoflow does not read"));
                    FieldKind::Skipped
                }
            };
            fields.push(Field { name: field_name, kind, offset, len });
            offset += len;
        }
        if offset > record_len {
            return Err(bad(format!("its fields take {offset} bytes, more than its {record_len}-byte records")));
        }
        let data_len = file_len.saturating_sub(header_len as u64);
        let whole_records = data_len / record_len as u64;
        if whole_records < records {
            notes.push(format!(
                "{name} says it holds {records} records, but only {whole_records} are in the file: it was cut short"
            ));
        }
        Ok(DbfReader {
            file,
            name: name.to_string(),
            fields,
            header_len: header_len as u64,
            record_len,
            records: records.min(whole_records),
            next: 0,
            encoding,
            buf: vec![0; record_len],
            notes,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.records
    }

    pub(crate) fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    pub(crate) fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The record at `index` (records are read in order; any other index seeks).
    pub(crate) fn read(&mut self, index: u64) -> Result<DbfRecord, ReadError> {
        if index >= self.records {
            return Ok(DbfRecord::Values(Vec::new()));
        }
        if index != self.next {
            self.file.seek(SeekFrom::Start(self.header_len + index * self.record_len as u64))?;
        }
        read_fully(&mut self.file, &mut self.buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => malformed(FORMAT, format!("{} is truncated at record {index}", self.name)),
            _ => ReadError::Io(e),
        })?;
        self.next = index + 1;
        if self.buf.first() == Some(&DELETED) {
            return Ok(DbfRecord::Deleted);
        }
        let mut values = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            if field.kind == FieldKind::Skipped {
                continue;
            }
            let raw = self.buf.get(field.offset..field.offset + field.len).unwrap_or_default();
            values.push((field.name.clone(), value(field.kind, raw, self.encoding)));
        }
        Ok(DbfRecord::Values(values))
    }
}

/// A field's value, typed, with GDAL's null markers read as nulls.
fn value(kind: FieldKind, raw: &[u8], encoding: TextEncoding) -> PropValue {
    // Values end at a NUL, as C strings do in the dBASE libraries.
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    match kind {
        FieldKind::Text | FieldKind::Skipped => {
            let end = raw.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
            match &raw[..end] {
                [] => PropValue::Null,
                text => PropValue::Text(encoding.decode(text)),
            }
        }
        FieldKind::Number { integer } => {
            let text = String::from_utf8_lossy(raw);
            let text = text.trim();
            if text.is_empty() || text.starts_with('*') {
                return PropValue::Null;
            }
            if integer {
                if let Ok(i) = text.parse::<i64>() {
                    return PropValue::Int(i);
                }
            }
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => PropValue::Real(f),
                Ok(_) => PropValue::Null,
                // Not a number: kept as written rather than lost.
                Err(_) => PropValue::Text(text.to_string()),
            }
        }
        FieldKind::Logical => match raw.iter().find(|&&b| b != b' ') {
            Some(b'T' | b't' | b'Y' | b'y') => PropValue::Bool(true),
            Some(b'F' | b'f' | b'N' | b'n') => PropValue::Bool(false),
            _ => PropValue::Null,
        },
        FieldKind::Date => {
            let text = String::from_utf8_lossy(raw);
            let text = text.trim();
            if text.is_empty() || text == "0" || text.starts_with("00000000") {
                return PropValue::Null;
            }
            let digits = text.as_bytes();
            if digits.len() == 8 && digits.iter().all(u8::is_ascii_digit) {
                PropValue::Text(format!("{}-{}-{}", &text[..4], &text[4..6], &text[6..8]))
            } else {
                PropValue::Text(text.to_string())
            }
        }
    }
}

/// Fills `buf`, or fails with `UnexpectedEof`.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    reader.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_with_gdal_null_markers() {
        let utf8 = TextEncoding::Utf8;
        let int = FieldKind::Number { integer: true };
        let real = FieldKind::Number { integer: false };
        assert_eq!(value(int, b"   123456789012345678", utf8), PropValue::Int(123456789012345678));
        assert_eq!(value(int, b"  -42", utf8), PropValue::Int(-42));
        assert_eq!(value(int, b"*****", utf8), PropValue::Null);
        assert_eq!(value(int, b"     ", utf8), PropValue::Null);
        assert_eq!(value(real, b"  1.50", utf8), PropValue::Real(1.5));
        assert_eq!(value(real, b"1.5e3", utf8), PropValue::Real(1500.0));
        assert_eq!(value(real, b"abc", utf8), PropValue::Text("abc".into()));
        assert_eq!(value(FieldKind::Logical, b"T", utf8), PropValue::Bool(true));
        assert_eq!(value(FieldKind::Logical, b"n", utf8), PropValue::Bool(false));
        assert_eq!(value(FieldKind::Logical, b"?", utf8), PropValue::Null);
        assert_eq!(value(FieldKind::Date, b"20240501", utf8), PropValue::Text("2024-05-01".into()));
        assert_eq!(value(FieldKind::Date, b"00000000", utf8), PropValue::Null);
        assert_eq!(value(FieldKind::Date, b"        ", utf8), PropValue::Null);
        assert_eq!(value(FieldKind::Text, b"  caf\xc3\xa9  ", utf8), PropValue::Text("  caf\u{e9}".into()));
        assert_eq!(value(FieldKind::Text, b"     ", utf8), PropValue::Null);
        assert_eq!(value(FieldKind::Text, b"ab\0\0\0", utf8), PropValue::Text("ab".into()));
    }

    #[test]
    fn code_pages_by_cpg_and_language_driver() {
        assert_eq!(TextEncoding::from_cpg("UTF-8\r\n"), Some(TextEncoding::Utf8));
        assert_eq!(TextEncoding::from_cpg("ISO-8859-1"), Some(TextEncoding::Latin1));
        assert_eq!(TextEncoding::from_cpg("88591"), Some(TextEncoding::Latin1));
        assert_eq!(TextEncoding::from_cpg("1252"), Some(TextEncoding::Encoding(encoding_rs::WINDOWS_1252)));
        assert_eq!(TextEncoding::from_cpg("ANSI 1251"), Some(TextEncoding::Encoding(encoding_rs::WINDOWS_1251)));
        assert_eq!(TextEncoding::from_cpg("866"), Some(TextEncoding::Encoding(encoding_rs::IBM866)));
        assert_eq!(TextEncoding::from_cpg("CP850"), Some(TextEncoding::Oem(850)));
        assert_eq!(TextEncoding::from_cpg("Big5"), Some(TextEncoding::Encoding(encoding_rs::BIG5)));
        assert_eq!(TextEncoding::from_cpg("LDID/87"), Some(TextEncoding::Latin1));
        assert_eq!(TextEncoding::from_cpg("nonsense"), None);
        assert_eq!(TextEncoding::from_ldid(0x57), Some(TextEncoding::Latin1));
        assert_eq!(TextEncoding::from_ldid(0xc9), Some(TextEncoding::Encoding(encoding_rs::WINDOWS_1251)));
        assert_eq!(TextEncoding::Latin1.decode(b"S\xe3o Paulo \x80"), "S\u{e3}o Paulo \u{80}");
        assert_eq!(TextEncoding::Oem(850).decode(b"Z\x81rich"), "Z\u{fc}rich");
        assert_eq!(TextEncoding::Undeclared.decode(b"K\xf6ln"), "K\u{f6}ln");
        assert_eq!(TextEncoding::Undeclared.decode("K\u{f6}ln".as_bytes()), "K\u{f6}ln");
    }
}
