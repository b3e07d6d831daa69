//! Formats (DESIGN.md, "Sources, the scheduler, and exactly once"): raw
//! records in, rows of the declared columns out. A format knows nothing of
//! where records come from: it gets each record's key and payload, and
//! returns the rows, which of them delete their key (an upsert tombstone,
//! a Debezium delete), which record each row came from (for `INCLUDE`
//! columns), and the records it could not read, each with its error — a
//! bad record never fails the records around it.
//!
//! - `FORMAT PLAIN ENCODE JSON`: one object per record onto the columns by
//!   name ([`json`]);
//! - `FORMAT UPSERT ENCODE JSON`: the same, keyed by the Kafka key; an empty
//!   payload deletes the key;
//! - `FORMAT DEBEZIUM ENCODE JSON`: Debezium's change events, with or
//!   without the `schema`/`payload` envelope ([`debezium`]);
//! - `FORMAT PLAIN ENCODE CSV (without_header, delimiter)` ([`csv`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::error::{invalid, ConnectorError};
use crate::Result;

pub mod cell;
pub mod csv;
pub mod debezium;
pub mod json;

/// One record as a transport read it.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// What a format made of a batch of records.
#[derive(Debug)]
pub struct Decoded {
    /// Rows of the format's schema.
    pub rows: RecordBatch,
    /// Per row, whether it deletes its key; `None` when every row inserts.
    pub deletes: Option<Vec<bool>>,
    /// Per row, the index of the record it came from.
    pub record_of_row: Vec<usize>,
    /// Records that could not be read: (record index, error).
    pub errors: Vec<(usize, String)>,
}

/// Builds a [`Decoded`] record by record: every format's decode loop.
pub(crate) struct DecodedBuilder {
    rows: cell::RowsBuilder,
    deletes: Option<Vec<bool>>,
    record_of_row: Vec<usize>,
    errors: Vec<(usize, String)>,
}

impl DecodedBuilder {
    /// `with_deletes`: the format can delete keys (UPSERT, DEBEZIUM).
    pub(crate) fn new(schema: SchemaRef, with_deletes: bool) -> Self {
        DecodedBuilder {
            rows: cell::RowsBuilder::new(schema),
            deletes: with_deletes.then(Vec::new),
            record_of_row: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Record `record`'s rows (each with whether it deletes), or its error.
    pub(crate) fn record(
        &mut self,
        record: usize,
        rows: std::result::Result<Vec<(Vec<cell::Cell>, bool)>, String>,
    ) {
        match rows {
            Ok(rows) => {
                for (cells, delete) in rows {
                    self.rows.push(cells);
                    if let Some(d) = &mut self.deletes {
                        d.push(delete);
                    }
                    self.record_of_row.push(record);
                }
            }
            Err(e) => self.errors.push((record, e)),
        }
    }

    pub(crate) fn finish(self) -> Result<Decoded> {
        Ok(Decoded {
            rows: self.rows.finish()?,
            deletes: self.deletes,
            record_of_row: self.record_of_row,
            errors: self.errors,
        })
    }
}

/// A format's reader for one split (it may keep state between batches).
pub trait Decoder: Send {
    fn decode(&mut self, records: &[RawRecord<'_>]) -> Result<Decoded>;
}

/// A configured format.
pub trait Format: Send + Sync {
    fn decoder(&self) -> Box<dyn Decoder>;
}

/// `FORMAT format ENCODE encode (options)` for rows of `schema`, keyed by
/// `key` (indexes into `schema`; UPSERT and DEBEZIUM need one).
pub fn open(
    format: &str,
    encode: &str,
    mut options: BTreeMap<String, String>,
    schema: SchemaRef,
    key: &[usize],
) -> Result<Arc<dyn Format>> {
    let needs_key = |what: &str| -> Result<()> {
        if key.is_empty() {
            return Err(invalid(format!(
                "FORMAT {what} needs a table with a primary key (CREATE TABLE … PRIMARY KEY (…))"
            )));
        }
        Ok(())
    };
    let f: Arc<dyn Format> = match (format, encode) {
        ("plain", "json") => Arc::new(json::PlainJson::new(schema)?),
        ("upsert", "json") => {
            needs_key("UPSERT")?;
            Arc::new(json::UpsertJson::new(schema, key.to_vec())?)
        }
        ("debezium", "json") => {
            needs_key("DEBEZIUM")?;
            Arc::new(debezium::DebeziumJson::new(schema)?)
        }
        ("plain", "csv") => {
            let without_header = match options.remove("without_header").as_deref() {
                None => false,
                Some(v) => parse_bool(v).ok_or_else(|| {
                    invalid(format!(
                        "invalid value \"{v}\" for option \"without_header\""
                    ))
                })?,
            };
            let delimiter = match options.remove("delimiter").as_deref() {
                None => b',',
                Some(d) if d.len() == 1 => d.as_bytes()[0],
                Some("\\t") => b'\t',
                Some(d) => {
                    return Err(invalid(format!(
                        "invalid value \"{d}\" for option \"delimiter\" (one character)"
                    )))
                }
            };
            Arc::new(csv::PlainCsv::new(schema, without_header, delimiter)?)
        }
        (f, e) => {
            return Err(ConnectorError::NotSupported(format!(
                "FORMAT {} ENCODE {}",
                f.to_uppercase(),
                e.to_uppercase()
            )))
        }
    };
    if let Some(k) = options.keys().next() {
        return Err(invalid(format!(
            "unknown option \"{k}\" for ENCODE {}",
            encode.to_uppercase()
        )));
    }
    Ok(f)
}

pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}
