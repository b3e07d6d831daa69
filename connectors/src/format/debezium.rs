//! `FORMAT DEBEZIUM ENCODE JSON`: Debezium's change events, with the
//! `schema`/`payload` envelope (Kafka Connect's `schemas.enable`) or
//! without. `op` `c` (create) and `r` (snapshot read) put `after`; `u`
//! (update) deletes `before` when it is there (the key may have changed)
//! and puts `after`; `d` deletes `before`. A record with no payload (the
//! tombstone Debezium sends after a delete) is skipped. With the envelope,
//! `org.apache.kafka.connect.data.Decimal` fields (base64 of the unscaled
//! value) are read with the scale the schema gives.

use std::collections::HashMap;

use base64::Engine as _;
use datafusion::arrow::datatypes::SchemaRef;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::cell::{readers, Cell, ColumnReader};
use super::json::{field, object, Object};
use super::{Decoded, DecodedBuilder, Decoder, Format, RawRecord};
use crate::Result;

pub struct DebeziumJson {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
}

impl DebeziumJson {
    pub fn new(schema: SchemaRef) -> Result<DebeziumJson> {
        Ok(DebeziumJson {
            readers: readers(&schema)?,
            schema,
        })
    }
}

impl Format for DebeziumJson {
    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(DebeziumDecoder {
            schema: self.schema.clone(),
            readers: self.readers.clone(),
        })
    }
}

struct DebeziumDecoder {
    schema: SchemaRef,
    readers: Vec<ColumnReader>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(default)]
    op: Option<String>,
}

#[derive(Deserialize)]
struct SchemaField {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    parameters: Option<HashMap<String, String>>,
    #[serde(default)]
    fields: Option<Vec<SchemaField>>,
}

/// Decimal fields' scales by column name, from the envelope's schema of
/// `after` (or `before`).
fn decimal_scales(schema: Option<&RawValue>) -> HashMap<String, i32> {
    let mut out = HashMap::new();
    let Some(s) = schema.and_then(|s| serde_json::from_str::<SchemaField>(s.get()).ok()) else {
        return out;
    };
    for part in s.fields.unwrap_or_default() {
        if !matches!(part.field.as_deref(), Some("after") | Some("before")) {
            continue;
        }
        for f in part.fields.unwrap_or_default() {
            if f.name.as_deref() == Some("org.apache.kafka.connect.data.Decimal") {
                let scale = f
                    .parameters
                    .as_ref()
                    .and_then(|p| p.get("scale"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if let Some(name) = f.field {
                    out.insert(name, scale);
                }
            }
        }
    }
    out
}

impl DebeziumDecoder {
    fn image(
        &self,
        raw: Option<&RawValue>,
        scales: &HashMap<String, i32>,
        what: &str,
    ) -> std::result::Result<Vec<Cell>, String> {
        let raw = raw
            .filter(|r| r.get().trim() != "null")
            .ok_or_else(|| format!("a change without \"{what}\""))?;
        let obj: Object<'_> = object(raw.get().as_bytes())?;
        self.readers
            .iter()
            .map(|r| {
                let v = field(&obj, &r.name);
                match (scales.get(&r.name), v) {
                    (Some(scale), Some(v)) if v.get().trim_start().starts_with('"') => {
                        connect_decimal(r, v, *scale)
                    }
                    _ => r.from_json(v),
                }
            })
            .collect()
    }
}

/// Kafka Connect's Decimal: base64 of the big-endian two's-complement
/// unscaled value, at `scale`; read as text, then as the column's numeric.
fn connect_decimal(
    r: &ColumnReader,
    v: &RawValue,
    scale: i32,
) -> std::result::Result<Cell, String> {
    let text: String = serde_json::from_str(v.get()).map_err(|e| e.to_string())?;
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) else {
        // Not base64: Debezium's `decimal.handling.mode = string`.
        return r.from_text(Some(&text));
    };
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!(
            "column \"{}\": a Decimal of {} bytes",
            r.name,
            bytes.len()
        ));
    }
    let mut buf = if bytes[0] & 0x80 != 0 {
        [0xffu8; 16]
    } else {
        [0u8; 16]
    };
    buf[16 - bytes.len()..].copy_from_slice(&bytes);
    let unscaled = i128::from_be_bytes(buf);
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    let text = if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    };
    r.from_text(Some(&text))
}

impl Decoder for DebeziumDecoder {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<Decoded> {
        let mut out = DecodedBuilder::new(self.schema.clone(), true);
        for (i, r) in records.iter().enumerate() {
            let Some(payload) = r.payload.filter(|p| !p.is_empty()) else {
                continue;
            };
            let result = (|| -> std::result::Result<Vec<(Vec<Cell>, bool)>, String> {
                let env: Envelope<'_> =
                    serde_json::from_slice(payload).map_err(|e| format!("malformed JSON: {e}"))?;
                let (change, scales) = match (env.schema, env.payload) {
                    (Some(schema), Some(p)) => (p, decimal_scales(Some(schema))),
                    _ => (
                        serde_json::from_slice::<&RawValue>(payload)
                            .map_err(|e| format!("malformed JSON: {e}"))?,
                        HashMap::new(),
                    ),
                };
                if change.get().trim() == "null" {
                    return Ok(Vec::new());
                }
                let c: Change<'_> = serde_json::from_str(change.get())
                    .map_err(|e| format!("not a Debezium change event: {e}"))?;
                match c.op.as_deref() {
                    Some("c") | Some("r") => {
                        Ok(vec![(self.image(c.after, &scales, "after")?, false)])
                    }
                    Some("u") => {
                        let mut out = Vec::new();
                        if c.before.is_some_and(|b| b.get().trim() != "null") {
                            out.push((self.image(c.before, &scales, "before")?, true));
                        }
                        out.push((self.image(c.after, &scales, "after")?, false));
                        Ok(out)
                    }
                    Some("d") => Ok(vec![(self.image(c.before, &scales, "before")?, true)]),
                    Some(other) => Err(format!("unknown Debezium op \"{other}\"")),
                    None => Err("a Debezium change without \"op\"".into()),
                }
            })();
            out.record(i, result);
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
    fn debezium_ops_with_and_without_the_envelope() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("price", DataType::Decimal128(10, 2), true),
        ]));
        let f = DebeziumJson::new(schema).unwrap();
        let mut d = f.decoder();
        // 12.34 = 1234 = 0x04d2 -> "BNI="
        let env = r#"{"schema": {"type": "struct", "fields": [{"field": "before", "fields": []},
            {"field": "after", "fields": [{"field": "price", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}]}]},
            "payload": {"before": null, "after": {"id": 1, "price": "BNI="}, "op": "c"}}"#;
        let recs = [
            env.to_string(),
            r#"{"before": {"id": 1, "price": 1}, "after": {"id": 1, "price": 2.5}, "op": "u"}"#
                .into(),
            r#"{"before": {"id": 1}, "after": null, "op": "d"}"#.into(),
            r#"{"before": null, "after": {"id": 2}, "op": "r"}"#.into(),
            r#"{"after": {"id": 3}, "op": "x"}"#.into(),
            r#"{"before": null, "after": null, "op": "d"}"#.into(),
        ];
        let mut records: Vec<RawRecord> = recs
            .iter()
            .map(|r| RawRecord {
                key: None,
                payload: Some(r.as_bytes()),
            })
            .collect();
        records.push(RawRecord {
            key: Some(b"1"),
            payload: None,
        });
        let out = d.decode(&records).unwrap();
        assert_eq!(out.deletes, Some(vec![false, true, false, true, false]));
        assert_eq!(out.record_of_row, vec![0, 1, 1, 2, 3]);
        assert_eq!(
            out.errors.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![4, 5]
        );
        let prices = out
            .rows
            .column(1)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
            .unwrap();
        assert_eq!(prices.value(0), 1234);
        assert_eq!(prices.value(2), 250);
    }
}
