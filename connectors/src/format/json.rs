//! `ENCODE JSON`: one JSON object per record onto the declared columns by
//! name (an exact match first, then one ignoring case). A missing field is
//! NULL, fields no column names are ignored, strings and numbers are read
//! as the column's type (see [`super::cell`]), and a jsonb column takes
//! any value.
//!
//! `FORMAT PLAIN`: every object is a row to insert; an empty record is
//! skipped. `FORMAT UPSERT`: rows are put by primary key, and a record
//! with no payload (a Kafka tombstone) deletes the key its Kafka key names
//! — a JSON object with the key columns, or the bare value of a one-column
//! key. Key columns missing from a payload come from the Kafka key too.

use std::borrow::Cow;
use std::collections::HashMap;

use datafusion::arrow::datatypes::SchemaRef;
use serde_json::value::RawValue;

use super::cell::{readers, Cell, ColumnReader};
use super::{Decoded, DecodedBuilder, Decoder, Format, RawRecord};
use crate::Result;

/// A JSON object's fields, borrowed from the record.
pub type Object<'a> = HashMap<Cow<'a, str>, &'a RawValue>;

/// Parses a JSON object.
pub fn object(bytes: &[u8]) -> std::result::Result<Object<'_>, String> {
    serde_json::from_slice::<Object<'_>>(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("not a JSON object: {e}"),
        _ => format!("malformed JSON: {e}"),
    })
}

/// A field by column name: exactly, or else ignoring case.
pub fn field<'a>(obj: &Object<'a>, name: &str) -> Option<&'a RawValue> {
    if let Some(v) = obj.get(name) {
        return Some(*v);
    }
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// One object's cells, in column order.
pub fn row(readers: &[ColumnReader], obj: &Object<'_>) -> std::result::Result<Vec<Cell>, String> {
    readers
        .iter()
        .map(|r| r.from_json(field(obj, &r.name)))
        .collect()
}

pub struct PlainJson {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
}

impl PlainJson {
    pub fn new(schema: SchemaRef) -> Result<PlainJson> {
        Ok(PlainJson {
            readers: readers(&schema)?,
            schema,
        })
    }
}

impl Format for PlainJson {
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(PlainJsonDecoder {
            schema: self.schema.clone(),
            readers: self.readers.clone(),
        })
    }
}

struct PlainJsonDecoder {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
}

impl Decoder for PlainJsonDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<Decoded> {
        let mut out = DecodedBuilder::new(self.schema.clone(), false);
        for (i, r) in records.iter().enumerate() {
            let Some(payload) = r.payload.filter(|p| !p.is_empty()) else {
                continue;
            };
            out.record(
                i,
                object(payload)
                    .and_then(|o| row(&self.readers, &o))
                    .map(|cells| vec![(cells, false)]),
            );
        }
        out.finish()
    }
}

pub struct UpsertJson {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
    key: Vec<usize>,
}

impl UpsertJson {
    /// `key`: the primary key's columns among `schema`'s (none when the key
    /// is an `INCLUDE KEY` column the transport adds).
    pub fn new(schema: SchemaRef, key: Vec<usize>) -> Result<UpsertJson> {
        Ok(UpsertJson {
            readers: readers(&schema)?,
            schema,
            key,
        })
    }
}

impl Format for UpsertJson {
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(UpsertJsonDecoder {
            schema: self.schema.clone(),
            readers: self.readers.clone(),
            key: self.key.clone(),
        })
    }
}

struct UpsertJsonDecoder {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
    key: Vec<usize>,
}

impl UpsertJsonDecoder {
    /// The key columns' cells from a Kafka key.
    fn key_cells(&self, key: Option<&[u8]>) -> std::result::Result<Vec<(usize, Cell)>, String> {
        if self.key.is_empty() {
            return Ok(Vec::new());
        }
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or("a record without a key")?;
        if let Ok(obj) = serde_json::from_slice::<Object<'_>>(key) {
            return self
                .key
                .iter()
                .map(|&c| {
                    let r = &self.readers[c];
                    match field(&obj, &r.name) {
                        Some(v) => r.from_json(Some(v)).map(|cell| (c, cell)),
                        None => Err(format!("the key has no field \"{}\"", r.name)),
                    }
                })
                .collect();
        }
        let [c] = self.key[..] else {
            return Err("the key is not a JSON object with the key columns".into());
        };
        let r = &self.readers[c];
        let cell = match serde_json::from_slice::<&RawValue>(key) {
            Ok(v) => r.from_json(Some(v))?,
            Err(_) => r.from_text(Some(&String::from_utf8_lossy(key)))?,
        };
        Ok(vec![(c, cell)])
    }
}

impl Decoder for UpsertJsonDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<Decoded> {
        let mut out = DecodedBuilder::new(self.schema.clone(), true);
        for (i, r) in records.iter().enumerate() {
            let result = (|| -> std::result::Result<(Vec<Cell>, bool), String> {
                match r.payload.filter(|p| !p.is_empty()) {
                    None => {
                        let mut cells = vec![Cell::Null; self.readers.len()];
                        for (c, v) in self.key_cells(r.key)? {
                            cells[c] = v;
                        }
                        Ok((cells, true))
                    }
                    Some(p) => {
                        let obj = object(p)?;
                        let missing: Vec<usize> = self
                            .key
                            .iter()
                            .copied()
                            .filter(|&c| field(&obj, &self.readers[c].name).is_none())
                            .collect();
                        let mut cells = Vec::with_capacity(self.readers.len());
                        let from_key = if missing.is_empty() {
                            Vec::new()
                        } else {
                            self.key_cells(r.key)?
                        };
                        for (c, reader) in self.readers.iter().enumerate() {
                            match from_key
                                .iter()
                                .find(|(k, _)| *k == c && missing.contains(k))
                            {
                                Some((_, v)) => cells.push(v.clone()),
                                None => cells.push(reader.from_json(field(&obj, &reader.name))?),
                            }
                        }
                        Ok((cells, false))
                    }
                }
            })();
            out.record(i, result.map(|row| vec![row]));
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::collections::HashMap as Map;
    use std::sync::Arc;

    pub(crate) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new("doc", DataType::Utf8, true)
                .with_metadata(Map::from([("pg_type".to_string(), "jsonb".to_string())])),
            Field::new("tags", DataType::new_list(DataType::Utf8, true), true),
        ]))
    }

    fn rec(payload: &str) -> RawRecord<'_> {
        RawRecord {
            key: None,
            payload: Some(payload.as_bytes()),
        }
    }

    fn show(d: &Decoded) -> Vec<String> {
        let s =
            datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&d.rows))
                .unwrap()
                .to_string();
        s.lines()
            .skip(3)
            .filter(|l| !l.starts_with('+'))
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn plain_json_reads_fields_by_name_and_keeps_bad_records_apart() {
        let f = PlainJson::new(schema()).unwrap();
        let mut d = f.decoder();
        let recs = [
            r#"{"id": 1, "name": "a", "amount": 12.345, "at": "2024-01-01T00:00:00Z", "doc": {"x": [1, 2]}, "tags": ["p", "q"], "extra": true}"#,
            r#"{"ID": "2", "amount": "7"}"#,
            r#"{"id": 3.5}"#,
            r#"not json"#,
            r#"[1, 2]"#,
            r#"{"name": "no id"}"#,
            r#"{"id": 4, "at": 1704067200000}"#,
            "",
        ];
        let records: Vec<RawRecord> = recs.iter().map(|r| rec(r)).collect();
        let out = d.decode(&records).unwrap();
        assert_eq!(out.record_of_row, vec![0, 1, 6]);
        assert_eq!(
            out.errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![2, 3, 4, 5]
        );
        assert!(out.errors[3].1.contains("not-null"), "{:?}", out.errors);
        assert!(
            out.errors[1].1.contains("malformed JSON"),
            "{:?}",
            out.errors
        );
        assert!(
            out.errors[2].1.contains("not a JSON object"),
            "{:?}",
            out.errors
        );
        assert_eq!(
            show(&out),
            vec![
                r#"1 a 12.35 2024-01-01T00:00:00Z {"x": [1, 2]} [p, q]"#.to_string(),
                "2 7.00".to_string(),
                "4 2024-01-01T00:00:00Z".to_string(),
            ]
        );
    }

    #[test]
    fn upsert_json_deletes_on_tombstones_and_takes_keys_from_the_kafka_key() {
        let f = UpsertJson::new(schema(), vec![0]).unwrap();
        let mut d = f.decoder();
        let records = [
            RawRecord {
                key: Some(b"{\"id\": 5}"),
                payload: Some(br#"{"name": "five"}"#),
            },
            RawRecord {
                key: Some(b"5"),
                payload: None,
            },
            RawRecord {
                key: Some(b"6"),
                payload: Some(br#"{"id": 6, "name": "six"}"#),
            },
            RawRecord {
                key: None,
                payload: None,
            },
        ];
        let out = d.decode(&records).unwrap();
        assert_eq!(out.deletes, Some(vec![false, true, false]));
        assert_eq!(out.record_of_row, vec![0, 1, 2]);
        assert_eq!(out.errors.len(), 1);
        assert_eq!(show(&out), vec!["5 five", "5", "6 six"]);
    }
}
