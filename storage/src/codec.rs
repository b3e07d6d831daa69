//! Row encoding: turning Arrow rows into RocksDB keys and values and back.
//!
//! A value is `null bitmap (ceil(n/8) bytes) | field*` where each non-null
//! field is written in column order: fixed-width types little-endian,
//! variable-width ones as `u32 length | bytes`. The column types come from the
//! relation's schema, so nothing but the data itself is stored.
//!
//! A key is `table id | memcomparable(key columns)` (see [`crate::keys`]).
//! Key columns are never null (primary keys are `NOT NULL`).

use std::sync::Arc;

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, SchemaRef,
    Time64MicrosecondType, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use serde::Serializer as _;

use crate::{keys, Result, StorageError};

/// The physical kinds of column storage knows how to encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Decimal,
    Utf8,
    Binary,
    Date32,
    Time64,
    Timestamp,
    Interval,
    /// Any other Arrow type (lists, unsigned integers, …): one value in
    /// Arrow's row format, which is self-describing given the type and
    /// order-preserving, so it also works inside keys.
    Other,
}

impl Kind {
    fn of(dt: &DataType) -> Result<Kind> {
        Ok(match dt {
            DataType::Boolean => Kind::Bool,
            DataType::Int16 => Kind::I16,
            DataType::Int32 => Kind::I32,
            DataType::Int64 => Kind::I64,
            DataType::Float32 => Kind::F32,
            DataType::Float64 => Kind::F64,
            DataType::Decimal128(_, _) => Kind::Decimal,
            DataType::Utf8 => Kind::Utf8,
            DataType::Binary => Kind::Binary,
            DataType::Date32 => Kind::Date32,
            DataType::Time64(TimeUnit::Microsecond) => Kind::Time64,
            DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::Timestamp,
            DataType::Interval(IntervalUnit::MonthDayNano) => Kind::Interval,
            _ => Kind::Other,
        })
    }
}

/// Encodes rows of one relation schema to keys/values and decodes values back
/// into Arrow batches.
#[derive(Debug, Clone)]
pub struct RowCodec {
    schema: SchemaRef,
    kinds: Vec<Kind>,
    /// Per column of kind [`Kind::Other`], its row-format converter.
    others: Vec<Option<Arc<RowConverter>>>,
    /// The schemas of the projections decoded so far (a codec sees a few,
    /// each many times: one per state lookup).
    projected: Arc<std::sync::Mutex<Vec<Projection>>>,
}

/// A projection (the columns wanted) and its schema.
type Projection = (Vec<usize>, SchemaRef);

impl RowCodec {
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let kinds = schema
            .fields()
            .iter()
            .map(|f| Kind::of(f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let others = schema
            .fields()
            .iter()
            .zip(&kinds)
            .map(|(f, k)| {
                (*k == Kind::Other)
                    .then(|| RowConverter::new(vec![SortField::new(f.data_type().clone())]))
                    .transpose()
                    .map(|c| c.map(Arc::new))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            schema,
            kinds,
            others,
            projected: Default::default(),
        })
    }

    /// The schema of the columns `wanted`, in that order.
    fn projected_schema(&self, wanted: &[usize]) -> Result<SchemaRef> {
        if wanted.len() == self.kinds.len() && wanted.iter().enumerate().all(|(i, &c)| i == c) {
            return Ok(self.schema.clone());
        }
        let mut cache = self.projected.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = cache.iter().find(|(w, _)| w == wanted) {
            return Ok(s.clone());
        }
        let s = Arc::new(self.schema.project(wanted)?);
        // Bounded: projections come from operator code, not from data.
        if cache.len() < 64 {
            cache.push((wanted.to_vec(), s.clone()));
        }
        Ok(s)
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Encodes every row of `batch` (which must have this codec's schema) as
    /// `(key, value)`, keyed by the columns `key_cols` under `table_id`.
    pub fn encode_rows(
        &self,
        table_id: u32,
        batch: &RecordBatch,
        key_cols: &[usize],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let cols = batch.columns();
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let key = self.encode_key_of(table_id, cols, key_cols, row)?;
            let mut value = Vec::with_capacity(64);
            self.encode_value(cols, row, &mut value)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Encodes only the keys of the rows of `batch`.
    pub fn encode_keys(
        &self,
        table_id: u32,
        batch: &RecordBatch,
        key_cols: &[usize],
    ) -> Result<Vec<Vec<u8>>> {
        (0..batch.num_rows())
            .map(|row| self.encode_key_of(table_id, batch.columns(), key_cols, row))
            .collect()
    }

    /// The key of row `row` of the columns `cols` (laid out as this codec's
    /// schema, at least up to the last of `key_cols`; no batch needed).
    pub fn encode_key(
        &self,
        table_id: u32,
        cols: &[ArrayRef],
        key_cols: &[usize],
        row: usize,
    ) -> Result<Vec<u8>> {
        for &c in key_cols {
            let (a, f) = (cols.get(c), self.schema.fields().get(c));
            match (a, f) {
                (Some(a), Some(f)) if a.data_type() == f.data_type() && row < a.len() => {}
                _ => {
                    return Err(StorageError::Corrupt(format!(
                        "key column {c}: {:?} row {row} for {:?}",
                        a.map(|a| a.data_type()),
                        f.map(|f| f.data_type())
                    )))
                }
            }
        }
        self.encode_key_of(table_id, cols, key_cols, row)
    }

    fn encode_key_of(
        &self,
        table_id: u32,
        cols: &[ArrayRef],
        key_cols: &[usize],
        row: usize,
    ) -> Result<Vec<u8>> {
        let mut ser = memcomparable::Serializer::new(keys::table_prefix(table_id).to_vec());
        for &c in key_cols {
            let a = cols[c].as_ref();
            // Nullable key columns (state tables keyed by whole rows) carry a
            // flag byte, NULL first; primary keys are NOT NULL and have none.
            if self.schema.field(c).is_nullable() {
                let present = !a.is_null(row);
                ser.serialize_u8(present as u8)
                    .map_err(|e| StorageError::Corrupt(format!("key encoding: {e}")))?;
                if !present {
                    continue;
                }
            }
            if let Some(conv) = &self.others[c] {
                let bytes = other_bytes(conv, &cols[c], row)?;
                ser.serialize_bytes(&bytes)
                    .map_err(|e| StorageError::Corrupt(format!("key encoding: {e}")))?;
                continue;
            }
            encode_key_datum(&mut ser, self.kinds[c], a, row)?;
        }
        Ok(ser.into_inner())
    }

    fn encode_value(&self, cols: &[ArrayRef], row: usize, buf: &mut Vec<u8>) -> Result<()> {
        let n = cols.len();
        let bitmap_at = buf.len();
        buf.resize(bitmap_at + n.div_ceil(8), 0);
        for (i, (col, kind)) in cols.iter().zip(&self.kinds).enumerate() {
            if col.is_null(row) {
                buf[bitmap_at + i / 8] |= 1 << (i % 8);
                continue;
            }
            let a = col.as_ref();
            match kind {
                Kind::Bool => buf.push(a.as_boolean().value(row) as u8),
                Kind::I16 => {
                    buf.extend_from_slice(&a.as_primitive::<Int16Type>().value(row).to_le_bytes())
                }
                Kind::I32 => {
                    buf.extend_from_slice(&a.as_primitive::<Int32Type>().value(row).to_le_bytes())
                }
                Kind::I64 => {
                    buf.extend_from_slice(&a.as_primitive::<Int64Type>().value(row).to_le_bytes())
                }
                Kind::F32 => {
                    buf.extend_from_slice(&a.as_primitive::<Float32Type>().value(row).to_le_bytes())
                }
                Kind::F64 => {
                    buf.extend_from_slice(&a.as_primitive::<Float64Type>().value(row).to_le_bytes())
                }
                Kind::Decimal => buf.extend_from_slice(
                    &a.as_primitive::<Decimal128Type>().value(row).to_le_bytes(),
                ),
                Kind::Date32 => {
                    buf.extend_from_slice(&a.as_primitive::<Date32Type>().value(row).to_le_bytes())
                }
                Kind::Time64 => buf.extend_from_slice(
                    &a.as_primitive::<Time64MicrosecondType>()
                        .value(row)
                        .to_le_bytes(),
                ),
                Kind::Timestamp => buf.extend_from_slice(
                    &a.as_primitive::<TimestampMicrosecondType>()
                        .value(row)
                        .to_le_bytes(),
                ),
                Kind::Interval => {
                    let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
                    buf.extend_from_slice(&v.months.to_le_bytes());
                    buf.extend_from_slice(&v.days.to_le_bytes());
                    buf.extend_from_slice(&v.nanoseconds.to_le_bytes());
                }
                Kind::Utf8 => put_var(buf, a.as_string::<i32>().value(row).as_bytes()),
                Kind::Binary => put_var(buf, a.as_binary::<i32>().value(row)),
                Kind::Other => {
                    let conv = self.others[i]
                        .as_ref()
                        .expect("converter of an Other column");
                    put_var(buf, &other_bytes(conv, col, row)?);
                }
            }
        }
        Ok(())
    }

    /// Encodes row `row` of `cols` (this codec's columns) as a value.
    pub(crate) fn encode_value_of(&self, cols: &[ArrayRef], row: usize) -> Result<Vec<u8>> {
        let mut value = Vec::with_capacity(64);
        self.encode_value(cols, row, &mut value)?;
        Ok(value)
    }

    /// Encodes one row given as values (one per column of this codec's
    /// schema, cast to the column's type where they differ) as a value:
    /// the same bytes as [`RowCodec::encode_rows`] writes for that row,
    /// without building arrays for a single row.
    pub fn encode_scalars(&self, row: &[ScalarValue]) -> Result<Vec<u8>> {
        let n = self.kinds.len();
        if row.len() != n {
            return Err(StorageError::Corrupt(format!(
                "{} values for a row of {n} columns",
                row.len()
            )));
        }
        let mut buf = Vec::with_capacity(64);
        buf.resize(n.div_ceil(8), 0);
        for (i, (v, kind)) in row.iter().zip(&self.kinds).enumerate() {
            if v.is_null() {
                buf[i / 8] |= 1 << (i % 8);
                continue;
            }
            let dt = self.schema.field(i).data_type();
            let cast;
            let v = if v.data_type() == *dt {
                v
            } else {
                cast = v.cast_to(dt).map_err(|e| {
                    StorageError::Corrupt(format!("value {v} for a {dt} column: {e}"))
                })?;
                &cast
            };
            let mismatch = || StorageError::Corrupt(format!("value {v} for a {dt} column"));
            match (kind, v) {
                (Kind::Bool, ScalarValue::Boolean(Some(b))) => buf.push(*b as u8),
                (Kind::I16, ScalarValue::Int16(Some(x))) => buf.extend_from_slice(&x.to_le_bytes()),
                (Kind::I32, ScalarValue::Int32(Some(x))) => buf.extend_from_slice(&x.to_le_bytes()),
                (Kind::I64, ScalarValue::Int64(Some(x))) => buf.extend_from_slice(&x.to_le_bytes()),
                (Kind::F32, ScalarValue::Float32(Some(x))) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::F64, ScalarValue::Float64(Some(x))) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::Decimal, ScalarValue::Decimal128(Some(x), _, _)) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::Date32, ScalarValue::Date32(Some(x))) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::Time64, ScalarValue::Time64Microsecond(Some(x))) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::Timestamp, ScalarValue::TimestampMicrosecond(Some(x), _)) => {
                    buf.extend_from_slice(&x.to_le_bytes())
                }
                (Kind::Interval, ScalarValue::IntervalMonthDayNano(Some(x))) => {
                    buf.extend_from_slice(&x.months.to_le_bytes());
                    buf.extend_from_slice(&x.days.to_le_bytes());
                    buf.extend_from_slice(&x.nanoseconds.to_le_bytes());
                }
                (Kind::Utf8, ScalarValue::Utf8(Some(x))) => put_var(&mut buf, x.as_bytes()),
                (Kind::Binary, ScalarValue::Binary(Some(x))) => put_var(&mut buf, x),
                (Kind::Other, v) => {
                    let conv = self.others[i]
                        .as_ref()
                        .expect("converter of an Other column");
                    let a = v
                        .to_array()
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
                    put_var(&mut buf, &other_bytes(conv, &a, 0)?);
                }
                _ => return Err(mismatch()),
            }
        }
        Ok(buf)
    }

    /// Columns `from..` of an encoded value as values (typed NULLs
    /// included): one row read without building arrays.
    pub fn decode_scalars(&self, value: &[u8], from: usize) -> Result<Vec<ScalarValue>> {
        let n = self.kinds.len();
        let mut cur = Cursor { buf: value, pos: 0 };
        let bitmap = cur.take(n.div_ceil(8))?;
        let mut out = Vec::with_capacity(n.saturating_sub(from));
        for (i, kind) in self.kinds.iter().enumerate() {
            let is_null = bitmap[i / 8] & (1 << (i % 8)) != 0;
            if i < from {
                if !is_null {
                    cur.skip(*kind)?;
                }
                continue;
            }
            let dt = self.schema.field(i).data_type();
            if is_null {
                out.push(
                    ScalarValue::try_from(dt).map_err(|e| StorageError::Corrupt(e.to_string()))?,
                );
                continue;
            }
            out.push(match kind {
                Kind::Bool => ScalarValue::Boolean(Some(cur.fixed::<1>()?[0] != 0)),
                Kind::I16 => ScalarValue::Int16(Some(i16::from_le_bytes(cur.fixed()?))),
                Kind::I32 => ScalarValue::Int32(Some(i32::from_le_bytes(cur.fixed()?))),
                Kind::I64 => ScalarValue::Int64(Some(i64::from_le_bytes(cur.fixed()?))),
                Kind::F32 => ScalarValue::Float32(Some(f32::from_le_bytes(cur.fixed()?))),
                Kind::F64 => ScalarValue::Float64(Some(f64::from_le_bytes(cur.fixed()?))),
                Kind::Decimal => {
                    let DataType::Decimal128(p, s) = dt else {
                        return Err(StorageError::Corrupt(format!("decimal kind for {dt}")));
                    };
                    ScalarValue::Decimal128(Some(i128::from_le_bytes(cur.fixed()?)), *p, *s)
                }
                Kind::Date32 => ScalarValue::Date32(Some(i32::from_le_bytes(cur.fixed()?))),
                Kind::Time64 => {
                    ScalarValue::Time64Microsecond(Some(i64::from_le_bytes(cur.fixed()?)))
                }
                Kind::Timestamp => {
                    let DataType::Timestamp(_, tz) = dt else {
                        return Err(StorageError::Corrupt(format!("timestamp kind for {dt}")));
                    };
                    ScalarValue::TimestampMicrosecond(
                        Some(i64::from_le_bytes(cur.fixed()?)),
                        tz.clone(),
                    )
                }
                Kind::Interval => {
                    let months = i32::from_le_bytes(cur.fixed()?);
                    let days = i32::from_le_bytes(cur.fixed()?);
                    let nanoseconds = i64::from_le_bytes(cur.fixed()?);
                    ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano {
                        months,
                        days,
                        nanoseconds,
                    }))
                }
                Kind::Utf8 => {
                    let text = std::str::from_utf8(cur.var()?)
                        .map_err(|_| StorageError::Corrupt("invalid utf-8".into()))?;
                    ScalarValue::Utf8(Some(text.to_string()))
                }
                Kind::Binary => ScalarValue::Binary(Some(cur.var()?.to_vec())),
                Kind::Other => {
                    let conv = self.others[i]
                        .as_ref()
                        .expect("converter of an Other column");
                    let bytes = cur.var()?;
                    let rows = conv.convert_rows([conv.parser().parse(bytes)])?;
                    ScalarValue::try_from_array(&rows[0], 0)
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?
                }
            });
        }
        Ok(out)
    }

    /// Column `col` of an encoded value, if it is an Int64 (`None`: NULL),
    /// read in place: no batch is built for one number.
    pub fn read_i64(&self, value: &[u8], col: usize) -> Result<Option<i64>> {
        if self.kinds.get(col) != Some(&Kind::I64) {
            return Err(StorageError::Corrupt(format!(
                "column {col} is not an Int64"
            )));
        }
        let n = self.kinds.len();
        let mut cur = Cursor { buf: value, pos: 0 };
        let bitmap = cur.take(n.div_ceil(8))?;
        let is_null = |i: usize| bitmap[i / 8] & (1 << (i % 8)) != 0;
        for (i, kind) in self.kinds[..col].iter().enumerate() {
            if !is_null(i) {
                cur.skip(*kind)?;
            }
        }
        if is_null(col) {
            return Ok(None);
        }
        Ok(Some(i64::from_le_bytes(cur.fixed::<8>()?)))
    }

    /// Decodes encoded values into one batch. `projection` selects (and
    /// orders) the output columns; `None` means all of them.
    pub fn decode<'a>(
        &self,
        values: impl IntoIterator<Item = &'a [u8]>,
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        // Size the builders by what is decoded (often one value: a state
        // lookup), not by a fixed guess that costs big allocations.
        let values = values.into_iter();
        let mut decoder = self.decoder(projection, values.size_hint().0.clamp(1, 1024));
        for v in values {
            decoder.push(v)?;
        }
        decoder.finish()
    }

    /// A streaming decoder: push values one by one, then finish into a batch.
    pub fn decoder(&self, projection: Option<&[usize]>, capacity: usize) -> Decoder<'_> {
        let n = self.kinds.len();
        let wanted: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..n).collect(),
        };
        // slot[i] = position of column i in the output, if it is wanted.
        let mut slot = vec![None; n];
        for (out, &c) in wanted.iter().enumerate() {
            slot[c] = Some(out);
        }
        let builders = wanted
            .iter()
            .map(|&c| match &self.others[c] {
                Some(conv) => Builder::Other(conv.clone(), Vec::with_capacity(capacity)),
                None => Builder::new(self.kinds[c], capacity),
            })
            .collect();
        Decoder {
            codec: self,
            wanted,
            slot,
            builders,
            rows: 0,
        }
    }
}

/// One value of an [`Kind::Other`] column in Arrow's row format.
fn other_bytes(conv: &RowConverter, col: &ArrayRef, row: usize) -> Result<Vec<u8>> {
    let rows = conv.convert_columns(&[col.slice(row, 1)])?;
    Ok(rows.row(0).as_ref().to_vec())
}

fn put_var(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

fn encode_key_datum(
    ser: &mut memcomparable::Serializer<Vec<u8>>,
    kind: Kind,
    a: &dyn Array,
    row: usize,
) -> Result<()> {
    if a.is_null(row) {
        return Err(StorageError::Corrupt("null in a key column".into()));
    }
    let r = match kind {
        Kind::Bool => ser.serialize_bool(a.as_boolean().value(row)),
        Kind::I16 => ser.serialize_i16(a.as_primitive::<Int16Type>().value(row)),
        Kind::I32 => ser.serialize_i32(a.as_primitive::<Int32Type>().value(row)),
        Kind::I64 => ser.serialize_i64(a.as_primitive::<Int64Type>().value(row)),
        Kind::F32 => ser.serialize_f32(a.as_primitive::<Float32Type>().value(row)),
        Kind::F64 => ser.serialize_f64(a.as_primitive::<Float64Type>().value(row)),
        // One column has one scale, so ordering the unscaled i128 orders values.
        Kind::Decimal => ser.serialize_i128(a.as_primitive::<Decimal128Type>().value(row)),
        Kind::Date32 => ser.serialize_i32(a.as_primitive::<Date32Type>().value(row)),
        Kind::Time64 => ser.serialize_i64(a.as_primitive::<Time64MicrosecondType>().value(row)),
        Kind::Timestamp => {
            ser.serialize_i64(a.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        Kind::Interval => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
            ser.serialize_i32(v.months)
                .and_then(|_| ser.serialize_i32(v.days))
                .and_then(|_| ser.serialize_i64(v.nanoseconds))
        }
        Kind::Utf8 => ser.serialize_str(a.as_string::<i32>().value(row)),
        Kind::Binary => ser.serialize_bytes(a.as_binary::<i32>().value(row)),
        Kind::Other => unreachable!("Other key columns are encoded by the caller"),
    };
    r.map_err(|e| StorageError::Corrupt(format!("key encoding: {e}")))
}

enum Builder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    /// Row-format values (`None`: null) of a [`Kind::Other`] column.
    Other(Arc<RowConverter>, Vec<Option<Vec<u8>>>),
}

impl Builder {
    fn new(kind: Kind, cap: usize) -> Builder {
        match kind {
            Kind::Bool => Builder::Bool(BooleanBuilder::with_capacity(cap)),
            Kind::I16 => Builder::I16(Int16Builder::with_capacity(cap)),
            Kind::I32 => Builder::I32(Int32Builder::with_capacity(cap)),
            Kind::I64 => Builder::I64(Int64Builder::with_capacity(cap)),
            Kind::F32 => Builder::F32(Float32Builder::with_capacity(cap)),
            Kind::F64 => Builder::F64(Float64Builder::with_capacity(cap)),
            Kind::Decimal => Builder::Decimal(Decimal128Builder::with_capacity(cap)),
            Kind::Utf8 => Builder::Utf8(StringBuilder::with_capacity(cap, cap * 16)),
            Kind::Binary => Builder::Binary(BinaryBuilder::with_capacity(cap, cap * 16)),
            Kind::Date32 => Builder::Date32(Date32Builder::with_capacity(cap)),
            Kind::Time64 => Builder::Time64(Time64MicrosecondBuilder::with_capacity(cap)),
            Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(cap)),
            Kind::Interval => Builder::Interval(IntervalMonthDayNanoBuilder::with_capacity(cap)),
            Kind::Other => unreachable!("Other builders are made with their converter"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::I16(b) => b.append_null(),
            Builder::I32(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::F32(b) => b.append_null(),
            Builder::F64(b) => b.append_null(),
            Builder::Decimal(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Date32(b) => b.append_null(),
            Builder::Time64(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Interval(b) => b.append_null(),
            Builder::Other(_, v) => v.push(None),
        }
    }

    fn finish(&mut self, dt: &DataType) -> Result<ArrayRef> {
        Ok(match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::I16(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::F32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Decimal(b) => match dt {
                DataType::Decimal128(p, s) => {
                    Arc::new(b.finish().with_precision_and_scale(*p, *s)?)
                }
                _ => Arc::new(b.finish()),
            },
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Date32(b) => Arc::new(b.finish()),
            Builder::Time64(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => match dt {
                DataType::Timestamp(_, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
                _ => Arc::new(b.finish()),
            },
            Builder::Interval(b) => Arc::new(b.finish()),
            Builder::Other(conv, values) => {
                let values = std::mem::take(values);
                // Nulls are rebuilt as the row form of a null value.
                let null = conv.convert_columns(&[new_null_array(dt, 1)])?;
                let parser = conv.parser();
                let rows: Vec<_> = values
                    .iter()
                    .map(|v| match v {
                        Some(b) => parser.parse(b),
                        None => null.row(0),
                    })
                    .collect();
                conv.convert_rows(rows)?.remove(0)
            }
        })
    }
}

/// Decodes values pushed one at a time into Arrow columns.
pub struct Decoder<'a> {
    codec: &'a RowCodec,
    wanted: Vec<usize>,
    slot: Vec<Option<usize>>,
    builders: Vec<Builder>,
    rows: usize,
}

struct Cursor<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Cursor<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        let end = self.pos + n;
        if end > self.buf.len() {
            return Err(StorageError::Corrupt("row value too short".into()));
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn var(&mut self) -> Result<&'b [u8]> {
        let n = u32::from_le_bytes(self.fixed::<4>()?) as usize;
        self.take(n)
    }
    /// Moves past one non-null field of `kind`.
    fn skip(&mut self, kind: Kind) -> Result<()> {
        match kind {
            Kind::Bool => self.take(1)?,
            Kind::I16 => self.take(2)?,
            Kind::I32 | Kind::F32 | Kind::Date32 => self.take(4)?,
            Kind::I64 | Kind::F64 | Kind::Time64 | Kind::Timestamp => self.take(8)?,
            Kind::Decimal | Kind::Interval => self.take(16)?,
            Kind::Utf8 | Kind::Binary | Kind::Other => self.var()?,
        };
        Ok(())
    }
}

impl Decoder<'_> {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn push(&mut self, value: &[u8]) -> Result<()> {
        let n = self.codec.kinds.len();
        let bitmap_len = n.div_ceil(8);
        let mut cur = Cursor { buf: value, pos: 0 };
        let bitmap = cur.take(bitmap_len)?;
        for (i, kind) in self.codec.kinds.iter().enumerate() {
            let is_null = bitmap[i / 8] & (1 << (i % 8)) != 0;
            let slot = self.slot[i];
            if is_null {
                if let Some(s) = slot {
                    self.builders[s].append_null();
                }
                continue;
            }
            let Some(s) = slot else {
                cur.skip(*kind)?;
                continue;
            };
            macro_rules! fixed {
                ($n:literal, $ty:ty, $variant:ident) => {{
                    let v = <$ty>::from_le_bytes(cur.fixed::<$n>()?);
                    if let Builder::$variant(b) = &mut self.builders[s] {
                        b.append_value(v);
                    }
                }};
            }
            match kind {
                Kind::Bool => {
                    let v = cur.fixed::<1>()?[0] != 0;
                    if let Builder::Bool(b) = &mut self.builders[s] {
                        b.append_value(v);
                    }
                }
                Kind::I16 => fixed!(2, i16, I16),
                Kind::I32 => fixed!(4, i32, I32),
                Kind::I64 => fixed!(8, i64, I64),
                Kind::F32 => fixed!(4, f32, F32),
                Kind::F64 => fixed!(8, f64, F64),
                Kind::Decimal => fixed!(16, i128, Decimal),
                Kind::Date32 => fixed!(4, i32, Date32),
                Kind::Time64 => fixed!(8, i64, Time64),
                Kind::Timestamp => fixed!(8, i64, Timestamp),
                Kind::Interval => {
                    let months = i32::from_le_bytes(cur.fixed::<4>()?);
                    let days = i32::from_le_bytes(cur.fixed::<4>()?);
                    let nanoseconds = i64::from_le_bytes(cur.fixed::<8>()?);
                    if let Builder::Interval(b) = &mut self.builders[s] {
                        b.append_value(IntervalMonthDayNano {
                            months,
                            days,
                            nanoseconds,
                        });
                    }
                }
                Kind::Utf8 => {
                    let bytes = cur.var()?;
                    if let Builder::Utf8(b) = &mut self.builders[s] {
                        let text = std::str::from_utf8(bytes)
                            .map_err(|_| StorageError::Corrupt("invalid utf-8".into()))?;
                        b.append_value(text);
                    }
                }
                Kind::Binary => {
                    let bytes = cur.var()?;
                    if let Builder::Binary(b) = &mut self.builders[s] {
                        b.append_value(bytes);
                    }
                }
                Kind::Other => {
                    let bytes = cur.var()?;
                    if let Builder::Other(_, v) = &mut self.builders[s] {
                        v.push(Some(bytes.to_vec()));
                    }
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Builds the batch of everything pushed so far and resets the decoder.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let schema = self.codec.projected_schema(&self.wanted)?;
        let cols = self
            .builders
            .iter_mut()
            .zip(schema.fields())
            .map(|(b, f)| b.finish(f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        let rows = std::mem::take(&mut self.rows);
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(schema, cols, &options)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn roundtrip_with_nulls_and_projection() {
        let codec = RowCodec::new(schema()).unwrap();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(vec![3, -1, 2])),
                Arc::new(StringArray::from(vec![Some("c"), None, Some("")])),
            ],
        )
        .unwrap();
        let rows = codec.encode_rows(7, &batch, &[0]).unwrap();
        let back = codec
            .decode(rows.iter().map(|(_, v)| v.as_slice()), None)
            .unwrap();
        assert_eq!(back, batch);
        let names = codec
            .decode(rows.iter().map(|(_, v)| v.as_slice()), Some(&[1]))
            .unwrap();
        assert_eq!(names.column(0).as_ref(), batch.column(1).as_ref());
    }

    #[test]
    fn scalar_rows_match_batch_rows() {
        // Every kind, NULLs in every column, an Other (UInt64, a list).
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()));
        let list = DataType::new_list(DataType::Int32, true);
        let fields = vec![
            Field::new("b", DataType::Boolean, true),
            Field::new("i16", DataType::Int16, true),
            Field::new("i32", DataType::Int32, true),
            Field::new("i64", DataType::Int64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new("f64", DataType::Float64, true),
            Field::new("d", DataType::Decimal128(12, 3), true),
            Field::new("s", DataType::Utf8, true),
            Field::new("bin", DataType::Binary, true),
            Field::new("date", DataType::Date32, true),
            Field::new("time", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("ts", ts.clone(), true),
            Field::new("iv", DataType::Interval(IntervalUnit::MonthDayNano), true),
            Field::new("u", DataType::UInt64, true),
            Field::new("l", list.clone(), true),
        ];
        let schema = Arc::new(Schema::new(fields));
        let full = vec![
            ScalarValue::Boolean(Some(true)),
            ScalarValue::Int16(Some(-7)),
            ScalarValue::Int32(Some(1 << 20)),
            ScalarValue::Int64(Some(-(1 << 40))),
            ScalarValue::Float32(Some(1.5)),
            ScalarValue::Float64(Some(-2.25)),
            ScalarValue::Decimal128(Some(12345), 12, 3),
            ScalarValue::Utf8(Some("héllo".into())),
            ScalarValue::Binary(Some(vec![0, 255, 1])),
            ScalarValue::Date32(Some(19000)),
            ScalarValue::Time64Microsecond(Some(3_600_000_000)),
            ScalarValue::TimestampMicrosecond(Some(1_700_000_000_000_000), Some("+00:00".into())),
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, 2, 3))),
            ScalarValue::UInt64(Some(u64::MAX)),
            ScalarValue::try_from_array(
                &ScalarValue::iter_to_array([ScalarValue::List(ScalarValue::new_list_nullable(
                    &[ScalarValue::Int32(Some(4)), ScalarValue::Int32(None)],
                    &DataType::Int32,
                ))])
                .unwrap(),
                0,
            )
            .unwrap(),
        ];
        let nulls: Vec<ScalarValue> = schema
            .fields()
            .iter()
            .map(|f| ScalarValue::try_from(f.data_type()).unwrap())
            .collect();
        let codec = RowCodec::new(schema.clone()).unwrap();
        let cols: Vec<ArrayRef> = (0..full.len())
            .map(|c| ScalarValue::iter_to_array([full[c].clone(), nulls[c].clone()]).unwrap())
            .collect();
        let batch = RecordBatch::try_new(schema, cols).unwrap();
        let rows = codec.encode_rows(1, &batch, &[]).unwrap();
        for (r, row) in [&full, &nulls].into_iter().enumerate() {
            // Same bytes as the batch path, and back to the same values.
            let value = codec.encode_scalars(row).unwrap();
            assert_eq!(value, rows[r].1, "row {r}");
            assert_eq!(&codec.decode_scalars(&value, 0).unwrap(), row, "row {r}");
            assert_eq!(
                codec.decode_scalars(&value, 13).unwrap(),
                row[13..],
                "row {r}"
            );
        }
        // Values of another type are cast to the column's; wrong ones fail.
        let mut cast = full.clone();
        cast[3] = ScalarValue::Int32(Some(5));
        let back = codec
            .decode_scalars(&codec.encode_scalars(&cast).unwrap(), 3)
            .unwrap();
        assert_eq!(back[0], ScalarValue::Int64(Some(5)));
        let mut wrong = full.clone();
        wrong[3] = ScalarValue::Utf8(Some("x".into()));
        assert!(codec.encode_scalars(&wrong).is_err());
        assert!(codec.encode_scalars(&full[1..]).is_err());
        assert!(codec.decode_scalars(&rows[0].1[..10], 0).is_err());
    }

    #[test]
    fn key_from_columns_matches_batch_keys_and_checks_types() {
        let codec = RowCodec::new(schema()).unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![3, -1]));
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                ids.clone(),
                Arc::new(StringArray::from(vec![Some("c"), None])),
            ],
        )
        .unwrap();
        // Only the key columns are needed, no batch.
        let keys = codec.encode_keys(7, &batch, &[0]).unwrap();
        assert_eq!(
            codec
                .encode_key(7, std::slice::from_ref(&ids), &[0], 1)
                .unwrap(),
            keys[1]
        );
        // A column of the wrong type, a missing column or row: errors.
        let wrong: ArrayRef = Arc::new(StringArray::from(vec!["3"]));
        assert!(codec.encode_key(7, &[wrong], &[0], 0).is_err());
        assert!(codec
            .encode_key(7, std::slice::from_ref(&ids), &[0, 1], 0)
            .is_err());
        assert!(codec.encode_key(7, &[ids], &[0], 2).is_err());
    }

    #[test]
    fn nullable_key_columns_sort_nulls_first() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let codec = RowCodec::new(schema.clone()).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![Some(-3), None, Some(5)]))],
        )
        .unwrap();
        let keys = codec.encode_keys(2, &batch, &[0]).unwrap();
        assert!(keys[1] < keys[0] && keys[0] < keys[2]);
    }

    #[test]
    fn keys_sort_like_sql() {
        let codec = RowCodec::new(schema()).unwrap();
        let ids = vec![i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(StringArray::from(vec![None::<&str>; 7])),
            ],
        )
        .unwrap();
        let keys = codec.encode_keys(1, &batch, &[0]).unwrap();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(keys.iter().all(|k| k.starts_with(&keys::table_prefix(1))));
    }
}

#[cfg(test)]
mod other_kind_tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, ListArray, UInt64Array};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema};

    #[test]
    fn lists_and_unsigned_roundtrip_in_values_and_keys() {
        let list = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None, Some(3)]),
            None,
            Some(vec![]),
        ]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("l", list.data_type().clone(), true),
            Field::new("u", DataType::UInt64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(list),
                Arc::new(UInt64Array::from(vec![Some(7), None, Some(u64::MAX)])),
            ],
        )
        .unwrap();
        let codec = RowCodec::new(schema).unwrap();
        let rows = codec.encode_rows(9, &batch, &[1, 2]).unwrap();
        let back = codec
            .decode(rows.iter().map(|(_, v)| v.as_slice()), None)
            .unwrap();
        assert_eq!(back, batch);
        // Keys of distinct rows differ (nulls included).
        let mut keys: Vec<_> = rows.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn read_i64_in_place_matches_decode() {
        use datafusion::arrow::array::{
            BooleanArray, Decimal128Array, Int64Array, ListArray, StringArray,
        };
        use datafusion::arrow::datatypes::Int32Type;
        let list_type = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("d", DataType::Decimal128(20, 2), true),
            Field::new("l", list_type, true),
            Field::new("n", DataType::Int64, true),
            Field::new("after", DataType::Utf8, true),
        ]));
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ]);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("abc"), None, Some("")])),
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-1)])
                        .with_precision_and_scale(20, 2)
                        .unwrap(),
                ),
                Arc::new(list),
                Arc::new(Int64Array::from(vec![Some(-7), Some(i64::MAX), None])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
            ],
        )
        .unwrap();
        let codec = RowCodec::new(schema).unwrap();
        let rows = codec.encode_rows(3, &batch, &[]).unwrap();
        let got: Vec<Option<i64>> = rows
            .iter()
            .map(|(_, v)| codec.read_i64(v, 4).unwrap())
            .collect();
        assert_eq!(got, vec![Some(-7), Some(i64::MAX), None]);
        // Not an Int64 column: an error, not a misread.
        assert!(codec.read_i64(&rows[0].1, 0).is_err());
        // A value cut short: an error, not a panic.
        assert!(codec.read_i64(&rows[0].1[..3], 4).is_err());
    }
}
