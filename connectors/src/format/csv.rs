//! `FORMAT PLAIN ENCODE CSV (without_header = 'true' | 'false', delimiter =
//! ',')`: each line of a record is a row, its fields the declared columns
//! in order, read as PostgreSQL reads text (`COPY … CSV`: an empty
//! unquoted field is NULL, `""` inside quotes is a quote). Missing
//! trailing fields are NULL. Unless `without_header = 'true'`, a line
//! whose fields are the column names is a header and is skipped.

use datafusion::arrow::datatypes::SchemaRef;

use super::cell::{readers, Cell, ColumnReader};
use super::{Decoded, DecodedBuilder, Decoder, Format, RawRecord};
use crate::Result;

pub struct PlainCsv {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
    without_header: bool,
    delimiter: u8,
}

impl PlainCsv {
    pub fn new(schema: SchemaRef, without_header: bool, delimiter: u8) -> Result<PlainCsv> {
        Ok(PlainCsv {
            readers: readers(&schema)?,
            schema,
            without_header,
            delimiter,
        })
    }
}

impl Format for PlainCsv {
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(CsvDecoder {
            schema: self.schema.clone(),
            readers: self.readers.clone(),
            without_header: self.without_header,
            delimiter: self.delimiter,
        })
    }
}

struct CsvDecoder {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
    without_header: bool,
    delimiter: u8,
}

/// The fields of one CSV line (`None`: NULL), or an error for an
/// unterminated quote.
pub fn fields(line: &str, delimiter: u8) -> std::result::Result<Vec<Option<String>>, String> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        if i < bytes.len() && bytes[i] == b'"' {
            let mut value = Vec::new();
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err("unterminated quoted field".into()),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        value.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b) => {
                        value.push(*b);
                        i += 1;
                    }
                }
            }
            out.push(Some(String::from_utf8_lossy(&value).into_owned()));
            match bytes.get(i) {
                None => break,
                Some(b) if *b == delimiter => i += 1,
                Some(_) => return Err("text after a closing quote".into()),
            }
        } else {
            let end = bytes[i..]
                .iter()
                .position(|b| *b == delimiter)
                .map_or(bytes.len(), |p| i + p);
            let raw = &line[i..end];
            out.push((!raw.is_empty()).then(|| raw.to_string()));
            if end >= bytes.len() {
                break;
            }
            i = end + 1;
        }
    }
    Ok(out)
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<Decoded> {
        let mut out = DecodedBuilder::new(self.schema.clone(), false);
        for (i, r) in records.iter().enumerate() {
            let Some(payload) = r.payload.filter(|p| !p.is_empty()) else {
                continue;
            };
            let result = (|| -> std::result::Result<Vec<Vec<Cell>>, String> {
                let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
                let mut out = Vec::new();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let f = fields(line.trim_end_matches('\r'), self.delimiter)?;
                    let header = !self.without_header
                        && f.len() == self.readers.len()
                        && f.iter().zip(&self.readers).all(|(v, r)| {
                            v.as_deref()
                                .is_some_and(|v| v.trim().eq_ignore_ascii_case(&r.name))
                        });
                    if header {
                        continue;
                    }
                    let cells = self
                        .readers
                        .iter()
                        .enumerate()
                        .map(|(c, reader)| reader.from_text(f.get(c).and_then(|v| v.as_deref())))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    out.push(cells);
                }
                Ok(out)
            })();
            out.record(
                i,
                result.map(|lines| lines.into_iter().map(|c| (c, false)).collect()),
            );
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn csv_fields_headers_and_errors() {
        assert_eq!(
            fields(r#"1,"a,""b""",,x"#, b',').unwrap(),
            vec![
                Some("1".into()),
                Some("a,\"b\"".into()),
                None,
                Some("x".into())
            ]
        );
        assert!(fields(r#"1,"a"#, b',').is_err());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let f = PlainCsv::new(schema, false, b';').unwrap();
        let mut d = f.decoder();
        let recs = ["id;name", "1;a\n2;b", "x;c", "3"];
        let records: Vec<RawRecord> = recs
            .iter()
            .map(|r| RawRecord {
                key: None,
                payload: Some(r.as_bytes()),
            })
            .collect();
        let out = d.decode(&records).unwrap();
        assert_eq!(out.record_of_row, vec![1, 1, 3]);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.errors[0].0, 2);
        assert_eq!(out.rows.num_rows(), 3);
    }
}
