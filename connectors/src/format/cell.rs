//! Values on their way from a record to a column: each column has a
//! [`ColumnReader`] that turns a JSON value or a text field into a [`Cell`]
//! of the column's type (or says why it cannot), and [`RowsBuilder`] turns
//! accepted rows into Arrow arrays. A record's cells are all read before
//! any is kept, so a record that fails in its third column leaves no trace.

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, RecordBatchOptions, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use serde_json::value::RawValue;

use crate::error::ConnectorError;
use crate::Result;

/// One value of a column's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A decimal's unscaled value at the column's scale.
    Dec(i128),
    Text(String),
    Bytes(Vec<u8>),
    /// Microseconds since the epoch (timestamps) or since midnight (time).
    Micros(i64),
    Days(i32),
    List(Vec<Cell>),
}

/// Reads values into one column.
#[derive(Debug, Clone)]
pub struct ColumnReader {
    pub name: String,
    ty: DataType,
    nullable: bool,
    /// A jsonb column: any JSON value, kept as its text.
    jsonb: bool,
}

/// The readers of `schema`'s columns; a column type no format reads is an
/// error at CREATE.
pub fn readers(schema: &SchemaRef) -> Result<Vec<ColumnReader>> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnReader::new(f.as_ref()))
        .collect()
}

fn supported(ty: &DataType) -> bool {
    match ty {
        DataType::Boolean
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(_, _)
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32
        | DataType::Time64(TimeUnit::Microsecond)
        | DataType::Timestamp(TimeUnit::Microsecond, _) => true,
        DataType::List(f) => supported(f.data_type()),
        _ => false,
    }
}

impl ColumnReader {
    pub fn new(f: &Field) -> Result<ColumnReader> {
        if !supported(f.data_type()) {
            return Err(ConnectorError::NotSupported(format!(
                "reading column \"{}\" of type {} from records",
                f.name(),
                f.data_type()
            )));
        }
        Ok(ColumnReader {
            name: f.name().clone(),
            ty: f.data_type().clone(),
            nullable: f.is_nullable(),
            jsonb: f.metadata().values().any(|v| v == "jsonb"),
        })
    }

    fn element(&self) -> Option<ColumnReader> {
        match &self.ty {
            DataType::List(f) => Some(ColumnReader {
                name: self.name.clone(),
                ty: f.data_type().clone(),
                nullable: true,
                jsonb: false,
            }),
            _ => None,
        }
    }

    pub fn null(&self) -> std::result::Result<Cell, String> {
        if self.nullable {
            Ok(Cell::Null)
        } else {
            Err(format!(
                "null value in column \"{}\" violates not-null constraint",
                self.name
            ))
        }
    }

    /// A JSON value (absent: NULL) as this column's cell.
    pub fn from_json(&self, raw: Option<&RawValue>) -> std::result::Result<Cell, String> {
        let Some(raw) = raw else {
            return self.null();
        };
        let t = raw.get().trim();
        if t == "null" {
            return self.null();
        }
        if self.jsonb {
            return Ok(Cell::Text(t.to_string()));
        }
        let quoted = t.starts_with('"');
        let text = if quoted {
            serde_json::from_str::<String>(t)
                .map_err(|e| format!("column \"{}\": {e}", self.name))?
        } else {
            t.to_string()
        };
        let bad = || {
            format!(
                "column \"{}\" of type {}: cannot read {t}",
                self.name, self.ty
            )
        };
        match &self.ty {
            DataType::List(_) => {
                let elem = self.element().ok_or_else(bad)?;
                if !t.starts_with('[') {
                    return Err(bad());
                }
                let items: Vec<&RawValue> = serde_json::from_str(t).map_err(|_| bad())?;
                Ok(Cell::List(
                    items
                        .into_iter()
                        .map(|i| elem.from_json(Some(i)))
                        .collect::<std::result::Result<_, _>>()?,
                ))
            }
            DataType::Utf8 => Ok(Cell::Text(text)),
            DataType::Binary if quoted => {
                let bytes = match text.strip_prefix("\\x") {
                    Some(hex) => decode_hex(hex).ok_or_else(bad)?,
                    None => base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|_| bad())?,
                };
                Ok(Cell::Bytes(bytes))
            }
            DataType::Binary => Err(bad()),
            // Numbers for timestamps: since the epoch, in seconds,
            // milliseconds, microseconds or nanoseconds by their magnitude
            // (as RisingWave guesses); for dates: days since the epoch, for
            // times microseconds since midnight (Debezium's defaults).
            DataType::Timestamp(_, _) if !quoted => {
                let v: i64 = t.parse().map_err(|_| bad())?;
                Ok(Cell::Micros(epoch_micros(v).ok_or_else(bad)?))
            }
            DataType::Date32 if !quoted => Ok(Cell::Days(t.parse().map_err(|_| bad())?)),
            DataType::Time64(_) if !quoted => Ok(Cell::Micros(t.parse().map_err(|_| bad())?)),
            DataType::Boolean if !quoted => match t {
                "true" => Ok(Cell::Bool(true)),
                "false" => Ok(Cell::Bool(false)),
                _ => self.from_text(Some(&text)),
            },
            _ if !quoted && (t.starts_with('{') || t.starts_with('[')) => Err(bad()),
            _ => self.from_text(Some(&text)),
        }
    }

    /// A field's text (as PostgreSQL reads it) as this column's cell.
    pub fn from_text(&self, text: Option<&str>) -> std::result::Result<Cell, String> {
        let Some(text) = text else {
            return self.null();
        };
        let s = text.trim();
        let bad = || {
            format!(
                "column \"{}\" of type {}: invalid input \"{text}\"",
                self.name, self.ty
            )
        };
        Ok(match &self.ty {
            DataType::Boolean => Cell::Bool(super::parse_bool(s).ok_or_else(bad)?),
            DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let v: i64 = match s.parse::<i64>() {
                    Ok(v) => v,
                    Err(_) => {
                        let f: f64 = s.parse().map_err(|_| bad())?;
                        if f.fract() != 0.0 || !f.is_finite() || f.abs() > 9.2e18 {
                            return Err(bad());
                        }
                        f as i64
                    }
                };
                let (lo, hi) = match self.ty {
                    DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
                    DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
                    _ => (i64::MIN, i64::MAX),
                };
                if v < lo || v > hi {
                    return Err(format!(
                        "column \"{}\": value {s} is out of range for type {}",
                        self.name, self.ty
                    ));
                }
                Cell::Int(v)
            }
            DataType::Float32 | DataType::Float64 => {
                Cell::Float(match s.to_ascii_lowercase().as_str() {
                    "nan" => f64::NAN,
                    "infinity" | "inf" => f64::INFINITY,
                    "-infinity" | "-inf" => f64::NEG_INFINITY,
                    _ => s.parse().map_err(|_| bad())?,
                })
            }
            DataType::Decimal128(p, sc) => Cell::Dec(decimal(s, *p, *sc).ok_or_else(|| {
                format!(
                    "column \"{}\": \"{text}\" is not a numeric({p},{sc})",
                    self.name
                )
            })?),
            DataType::Utf8 => Cell::Text(text.to_string()),
            DataType::Binary => Cell::Bytes(match s.strip_prefix("\\x") {
                Some(hex) => decode_hex(hex).ok_or_else(bad)?,
                None => text.as_bytes().to_vec(),
            }),
            DataType::Date32 => {
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
                Cell::Days(
                    (d - NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(bad)?).num_days() as i32,
                )
            }
            DataType::Time64(_) => {
                let t = NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
                    .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
                    .map_err(|_| bad())?;
                let midnight = NaiveTime::from_hms_opt(0, 0, 0).ok_or_else(bad)?;
                Cell::Micros((t - midnight).num_microseconds().ok_or_else(bad)?)
            }
            DataType::Timestamp(_, tz) => Cell::Micros(timestamp(s, tz.is_some()).ok_or_else(bad)?),
            DataType::List(_) => return Err(bad()),
            _ => return Err(bad()),
        })
    }
}

/// A number of seconds, milliseconds, microseconds or nanoseconds since
/// the epoch (told apart by magnitude) as microseconds.
pub fn epoch_micros(v: i64) -> Option<i64> {
    let a = v.unsigned_abs();
    if a < 100_000_000_000 {
        v.checked_mul(1_000_000)
    } else if a < 100_000_000_000_000 {
        v.checked_mul(1000)
    } else if a < 100_000_000_000_000_000 {
        Some(v)
    } else {
        Some(v / 1000)
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `s` as an unscaled decimal at `scale` (rounded half away from zero, as
/// PostgreSQL's numeric input), if it fits `precision`.
pub fn decimal(s: &str, precision: u8, scale: i8) -> Option<i128> {
    let scale = scale.max(0) as usize;
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    // Exponents: through f64's text would lose digits; shift instead.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut digits: String = format!("{int}{frac}");
    let mut point = int.len() as i32 + exp;
    if point < 0 {
        digits = format!("{}{digits}", "0".repeat((-point) as usize));
        point = 0;
    }
    while (digits.len() as i32) < point {
        digits.push('0');
    }
    let point = point as usize;
    let keep = point + scale;
    let mut unscaled: i128 = 0;
    let all: Vec<u8> = digits.bytes().collect();
    for i in 0..keep {
        let d = all.get(i).map(|b| (b - b'0') as i128).unwrap_or(0);
        unscaled = unscaled.checked_mul(10)?.checked_add(d)?;
    }
    if all.get(keep).is_some_and(|b| *b >= b'5') {
        unscaled += 1;
    }
    let limit = 10i128.checked_pow(precision as u32)?;
    if unscaled >= limit {
        return None;
    }
    Some(if neg { -unscaled } else { unscaled })
}

/// A timestamp's text as microseconds since the epoch: with a zone it is
/// converted to UTC for `timestamptz` and its local time kept for
/// `timestamp` (PostgreSQL ignores the zone there).
pub fn timestamp(s: &str, with_zone: bool) -> Option<i64> {
    let s = s.trim();
    let zoned = DateTime::parse_from_rfc3339(s)
        .ok()
        .or_else(|| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z").ok());
    if let Some(d) = zoned {
        return Some(if with_zone {
            d.timestamp_micros()
        } else {
            d.naive_local().and_utc().timestamp_micros()
        });
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_micros())
}

/// Accepted rows, column by column.
pub struct RowsBuilder {
    schema: SchemaRef,
    columns: Vec<Vec<Cell>>,
    rows: usize,
}

impl RowsBuilder {
    pub fn new(schema: SchemaRef) -> Self {
        let n = schema.fields().len();
        RowsBuilder {
            schema,
            columns: vec![Vec::new(); n],
            rows: 0,
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        for (c, v) in self.columns.iter_mut().zip(row) {
            c.push(v);
        }
        self.rows += 1;
    }

    pub fn finish(self) -> Result<RecordBatch> {
        let arrays = self
            .schema
            .fields()
            .iter()
            .zip(self.columns)
            .map(|(f, cells)| array(f.data_type(), cells))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.schema,
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )?)
    }
}

/// Cells of one type as an array.
pub fn array(ty: &DataType, cells: Vec<Cell>) -> Result<ArrayRef> {
    macro_rules! prim {
        ($arr:ty, $pat:pat => $v:expr) => {
            Arc::new(
                cells
                    .into_iter()
                    .map(|c| match c {
                        $pat => Some($v),
                        _ => None,
                    })
                    .collect::<$arr>(),
            ) as ArrayRef
        };
    }
    Ok(match ty {
        DataType::Boolean => prim!(BooleanArray, Cell::Bool(b) => b),
        DataType::Int16 => prim!(Int16Array, Cell::Int(i) => i as i16),
        DataType::Int32 => prim!(Int32Array, Cell::Int(i) => i as i32),
        DataType::Int64 => prim!(Int64Array, Cell::Int(i) => i),
        DataType::Float32 => prim!(Float32Array, Cell::Float(f) => f as f32),
        DataType::Float64 => prim!(Float64Array, Cell::Float(f) => f),
        DataType::Decimal128(p, s) => Arc::new(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Dec(d) => Some(d),
                    _ => None,
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(*p, *s)?,
        ),
        DataType::Utf8 => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        DataType::Binary => Arc::new(
            cells
                .iter()
                .map(|c| match c {
                    Cell::Bytes(b) => Some(b.as_slice()),
                    _ => None,
                })
                .collect::<BinaryArray>(),
        ),
        DataType::Date32 => prim!(Date32Array, Cell::Days(d) => d),
        DataType::Time64(_) => prim!(Time64MicrosecondArray, Cell::Micros(m) => m),
        DataType::Timestamp(_, tz) => Arc::new(
            cells
                .into_iter()
                .map(|c| match c {
                    Cell::Micros(m) => Some(m),
                    _ => None,
                })
                .collect::<TimestampMicrosecondArray>()
                .with_timezone_opt(tz.clone()),
        ),
        DataType::List(f) => {
            let mut offsets = vec![0i32];
            let mut valid = Vec::with_capacity(cells.len());
            let mut values = Vec::new();
            for c in cells {
                match c {
                    Cell::List(items) => {
                        values.extend(items);
                        valid.push(true);
                    }
                    _ => valid.push(false),
                }
                offsets.push(values.len() as i32);
            }
            let values = array(f.data_type(), values)?;
            Arc::new(ListArray::try_new(
                f.clone(),
                OffsetBuffer::new(offsets.into()),
                values,
                Some(NullBuffer::from(valid)),
            )?)
        }
        other => {
            return Err(ConnectorError::NotSupported(format!(
                "reading columns of type {other} from records"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_and_check_precision() {
        assert_eq!(decimal("1.005", 10, 2), Some(101));
        assert_eq!(decimal("-1.004", 10, 2), Some(-100));
        assert_eq!(decimal("12", 4, 2), Some(1200));
        assert_eq!(decimal("123", 4, 2), None);
        assert_eq!(decimal("1.5e2", 10, 0), Some(150));
        assert_eq!(decimal("2.5E-1", 10, 2), Some(25));
        assert_eq!(decimal("abc", 10, 2), None);
        assert_eq!(decimal(".5", 10, 1), Some(5));
    }

    #[test]
    fn timestamps_in_postgres_forms() {
        let utc = |s| timestamp(s, true).unwrap();
        assert_eq!(utc("2024-01-01 00:00:00"), 1_704_067_200_000_000);
        assert_eq!(utc("2024-01-01T02:00:00+02:00"), 1_704_067_200_000_000);
        assert_eq!(
            timestamp("2024-01-01T02:00:00+02:00", false),
            Some(1_704_074_400_000_000)
        );
        assert_eq!(utc("2024-01-01"), 1_704_067_200_000_000);
        assert_eq!(timestamp("yesterday", true), None);
    }
}
