//! Arrow batches → Postgres wire rows (text or binary), and COPY TO output.
//!
//! Encoding of each Arrow type is `arrow-pg`'s; Freshet adds `jsonb` (stored
//! as Utf8 and marked in field metadata), which is sent as type `jsonb`.

use std::error::Error;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Schema, SchemaRef};
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::{stream, Stream, StreamExt};
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo};
use pgwire::api::Type;
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

use freshet_planner::copy::{CopyFormat, CopyOptions};
use freshet_planner::types::PG_TYPE_KEY;
use freshet_planner::PlannerError;

use crate::errors::pg_error;

fn is_jsonb(schema: &Schema, i: usize) -> bool {
    let f = schema.field(i);
    *f.data_type() == DataType::Utf8
        && f.metadata()
            .get(PG_TYPE_KEY)
            .map(|t| t == "jsonb")
            .unwrap_or(false)
}

/// The Postgres type of an Arrow field: its declared type when Freshet
/// marked one (`jsonb`, `varchar`), else arrow-pg's mapping.
pub fn field_type(f: &datafusion::arrow::datatypes::Field) -> Type {
    let utf8 = *f.data_type() == DataType::Utf8;
    match f.metadata().get(PG_TYPE_KEY).map(String::as_str) {
        Some("jsonb") if utf8 => Type::JSONB,
        Some("varchar") if utf8 => Type::VARCHAR,
        _ => arrow_pg::datatypes::into_pg_type(f.data_type()).unwrap_or(Type::TEXT),
    }
}

/// RowDescription fields for `schema` in `format`.
pub fn fields(
    schema: &SchemaRef,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields =
        arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, Some(options.clone()))?;
    for (i, f) in fields.iter_mut().enumerate() {
        if let Some((name, _)) = f.name().split_once(freshet_planner::UNIQUE_SUFFIX) {
            *f = FieldInfo::new(
                name.to_string(),
                None,
                None,
                f.datatype().clone(),
                f.format(),
            )
            .with_format_options(options.clone());
        }
        if schema.field(i).metadata().contains_key(PG_TYPE_KEY) {
            *f = FieldInfo::new(
                f.name().to_string(),
                None,
                None,
                field_type(schema.field(i)),
                f.format(),
            )
            .with_format_options(options.clone());
        }
    }
    Ok(fields)
}

/// A jsonb value already in canonical text form.
#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float32Array, Float64Array, TimestampMicrosecondArray};

    #[test]
    fn text_matches_postgres() {
        let f: ArrayRef = Arc::new(Float64Array::from(vec![
            1e20,
            1.5,
            100000.0,
            1e-5,
            0.0001,
            f64::NEG_INFINITY,
        ]));
        let got: Vec<String> = (0..6).map(|i| pg_text(&f, i).unwrap()).collect();
        assert_eq!(
            got,
            ["1e+20", "1.5", "100000", "1e-05", "0.0001", "-Infinity"]
        );
        assert_eq!(
            interval_text(14, 3, 14_706_789_000),
            "1 year 2 mons 3 days 04:05:06.789"
        );
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(0, -1, 7_200_000_000), "-1 days +02:00:00");
        assert_eq!(interval_text(0, 0, 36 * 3_600_000_000), "36:00:00");
        let mut b = BytesMut::new();
        Numeric {
            unscaled: 0,
            scale: 4,
        }
        .to_sql(&Type::NUMERIC, &mut b)
        .unwrap();
        assert_eq!(&b[..], &[0, 0, 0, 0, 0, 0, 0, 4]);
        let mut b = BytesMut::new();
        Numeric {
            unscaled: -123456789,
            scale: 4,
        }
        .to_sql(&Type::NUMERIC, &mut b)
        .unwrap();
        // -12345.6789 = -(1 2345 . 6789): 3 digits, weight 1.
        assert_eq!(
            &b[..],
            &[0, 3, 0, 1, 0x40, 0, 0, 4, 0, 1, 0x09, 0x29, 0x1a, 0x85]
        );
        let f: ArrayRef = Arc::new(Float32Array::from(vec![1234567.0f32, 0.1]));
        assert_eq!(pg_text(&f, 0).unwrap(), "1.234567e+06");
        assert_eq!(pg_text(&f, 1).unwrap(), "0.1");
        let t: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![1_500_000i64]).with_timezone("+00:00"));
        assert_eq!(pg_text(&t, 0).unwrap(), "1970-01-01 00:00:01.5+00");
    }
}

/// SQL NULL of any type (arrow-pg encodes some null values as zero).
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _ty: &Type,
        _out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    postgres_types::to_sql_checked!();
}

impl ToSqlText for Null {
    fn to_sql_text(
        &self,
        _ty: &Type,
        _out: &mut BytesMut,
        _o: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
}

#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1); // jsonb binary format version
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
    postgres_types::to_sql_checked!();
}

impl ToSqlText for Jsonb<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// Postgres' text form of a float: shortest round-trip digits, exponent
/// notation outside `1e-4 ..= 1e{digits}` with at least two exponent digits.
fn float_text(
    exp_form: String,
    plain: String,
    is_nan: bool,
    is_inf: bool,
    negative: bool,
    digits: i32,
) -> String {
    if is_nan {
        return "NaN".into();
    }
    if is_inf {
        return if negative {
            "-Infinity".into()
        } else {
            "Infinity".into()
        };
    }
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= digits {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        plain
    }
}

fn fraction(micros: i64) -> String {
    if micros == 0 {
        return String::new();
    }
    let s = format!(".{micros:06}");
    s.trim_end_matches('0').to_string()
}

/// Postgres' interval output (IntervalStyle `postgres`):
/// `1 year 2 mons 3 days 04:05:06.5`, `-1 days +02:00:00`, `00:00:00`.
fn interval_text(months: i32, days: i32, micros: i64) -> String {
    let mut parts = Vec::new();
    let unit = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let (years, mons) = (months / 12, months % 12);
    if years != 0 {
        parts.push(unit(years as i64, "year", "years"));
    }
    if mons != 0 {
        parts.push(unit(mons as i64, "mon", "mons"));
    }
    if days != 0 {
        parts.push(unit(days as i64, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let neg = micros < 0;
        let m = micros.unsigned_abs();
        let secs = m / 1_000_000;
        let frac = fraction((m % 1_000_000) as i64);
        // A time part after a negative date part carries an explicit sign.
        let sign = if neg {
            "-"
        } else if (months < 0 || days < 0) && !parts.is_empty() {
            "+"
        } else {
            ""
        };
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{frac}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        ));
    }
    parts.join(" ")
}

/// An interval as Postgres sends it: binary `i64 micros, i32 days,
/// i32 months`; text in the `postgres` IntervalStyle.
#[derive(Debug)]
struct PgInterval {
    months: i32,
    days: i32,
    micros: i64,
}

impl ToSql for PgInterval {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    postgres_types::to_sql_checked!();
}

impl ToSqlText for PgInterval {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _o: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(interval_text(self.months, self.days, self.micros).as_bytes());
        Ok(IsNull::No)
    }
}

/// Intervals and durations (timestamp differences, with whole days split
/// off as Postgres does) as [`PgInterval`].
fn pg_interval(col: &ArrayRef, row: usize) -> Option<PgInterval> {
    use datafusion::arrow::datatypes::*;
    match col.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = col.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Some(PgInterval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds / 1000,
            })
        }
        DataType::Duration(unit) => {
            let micros = match unit {
                TimeUnit::Second => col
                    .as_primitive::<DurationSecondType>()
                    .value(row)
                    .checked_mul(1_000_000)?,
                TimeUnit::Millisecond => col
                    .as_primitive::<DurationMillisecondType>()
                    .value(row)
                    .checked_mul(1000)?,
                TimeUnit::Microsecond => col.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => {
                    col.as_primitive::<DurationNanosecondType>().value(row) / 1000
                }
            };
            let day = 86_400_000_000i64;
            Some(PgInterval {
                months: 0,
                days: (micros / day) as i32,
                micros: micros % day,
            })
        }
        _ => None,
    }
}

/// Postgres' binary `numeric`: base-10000 digits with weight, sign and
/// display scale, so clients see the column's scale (`0.0000`).
#[derive(Debug)]
struct Numeric {
    unscaled: i128,
    scale: i8,
}

impl ToSql for Numeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let scale = self.scale.max(0) as u32;
        let neg = self.unscaled < 0;
        let abs = self.unscaled.unsigned_abs();
        let int_part = abs / 10u128.pow(scale);
        let frac_part = abs % 10u128.pow(scale);
        // Integer digits in base 10000, most significant first.
        let mut int_groups = Vec::new();
        let mut n = int_part;
        while n > 0 {
            int_groups.push((n % 10000) as i16);
            n /= 10000;
        }
        int_groups.reverse();
        // Fraction digits padded to a multiple of 4.
        let frac_groups_len = scale.div_ceil(4);
        let frac_padded = frac_part * 10u128.pow(frac_groups_len * 4 - scale);
        let mut frac_groups = vec![0i16; frac_groups_len as usize];
        let mut f = frac_padded;
        for g in frac_groups.iter_mut().rev() {
            *g = (f % 10000) as i16;
            f /= 10000;
        }
        let mut digits: Vec<i16> = int_groups
            .iter()
            .chain(frac_groups.iter())
            .copied()
            .collect();
        let mut weight = int_groups.len() as i16 - 1;
        // Strip leading and trailing zero groups (Postgres stores none).
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        out.put_i16(digits.len() as i16);
        out.put_i16(weight);
        out.put_u16(if neg && !digits.is_empty() { 0x4000 } else { 0 });
        out.put_u16(scale as u16);
        for d in digits {
            out.put_i16(d);
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
    postgres_types::to_sql_checked!();
}

/// `infinity` / `-infinity` of a timestamp (stored as the largest /
/// smallest microsecond) or a date (the largest / smallest day), and the
/// time `24:00:00`, which arrow-pg's chrono conversion cannot encode.
/// PostgreSQL's binary forms of them are the same numbers.
#[derive(Debug)]
enum Infinity {
    Timestamp(bool),
    Date(bool),
    Midnight24,
}

impl Infinity {
    fn of(col: &ArrayRef, row: usize) -> Option<Infinity> {
        use datafusion::arrow::datatypes::*;
        match col.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                match col.as_primitive::<TimestampMicrosecondType>().value(row) {
                    i64::MAX => Some(Infinity::Timestamp(true)),
                    i64::MIN => Some(Infinity::Timestamp(false)),
                    _ => None,
                }
            }
            DataType::Date32 => match col.as_primitive::<Date32Type>().value(row) {
                i32::MAX => Some(Infinity::Date(true)),
                i32::MIN => Some(Infinity::Date(false)),
                _ => None,
            },
            DataType::Time64(TimeUnit::Microsecond) => {
                (col.as_primitive::<Time64MicrosecondType>().value(row) == 86_400_000_000)
                    .then_some(Infinity::Midnight24)
            }
            DataType::Time64(TimeUnit::Nanosecond) => {
                (col.as_primitive::<Time64NanosecondType>().value(row) == 86_400_000_000_000)
                    .then_some(Infinity::Midnight24)
            }
            _ => None,
        }
    }
}

impl ToSql for Infinity {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Infinity::Timestamp(up) => out.put_i64(if *up { i64::MAX } else { i64::MIN }),
            Infinity::Date(up) => out.put_i32(if *up { i32::MAX } else { i32::MIN }),
            Infinity::Midnight24 => out.put_i64(86_400_000_000),
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        [Type::TIMESTAMP, Type::TIMESTAMPTZ, Type::DATE, Type::TIME].contains(ty)
    }
    postgres_types::to_sql_checked!();
}

impl ToSqlText for Infinity {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _o: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(match self {
            Infinity::Timestamp(true) | Infinity::Date(true) => b"infinity",
            Infinity::Timestamp(false) | Infinity::Date(false) => b"-infinity",
            Infinity::Midnight24 => b"24:00:00",
        });
        Ok(IsNull::No)
    }
}

impl ToSqlText for Numeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _o: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let scale = self.scale.max(0) as u32;
        let abs = self.unscaled.unsigned_abs();
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let p = 10u128.pow(scale);
        let s = if scale == 0 {
            format!("{sign}{abs}")
        } else {
            format!(
                "{sign}{}.{:0width$}",
                abs / p,
                abs % p,
                width = scale as usize
            )
        };
        out.put_slice(s.as_bytes());
        Ok(IsNull::No)
    }
}

/// The Postgres text form of a value where arrow-pg's differs from it
/// (float exponents, timestamp and time fractions, the `+00` offset).
fn pg_text(col: &ArrayRef, row: usize) -> Option<String> {
    use datafusion::arrow::datatypes::*;
    if col.is_null(row) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Float64 => {
            let v = col.as_primitive::<Float64Type>().value(row);
            float_text(
                format!("{v:e}"),
                format!("{v}"),
                v.is_nan(),
                v.is_infinite(),
                v < 0.0,
                15,
            )
        }
        DataType::Float32 => {
            let v = col.as_primitive::<Float32Type>().value(row);
            float_text(
                format!("{v:e}"),
                format!("{v}"),
                v.is_nan(),
                v.is_infinite(),
                v < 0.0,
                6,
            )
        }
        DataType::Timestamp(unit, tz) => {
            let raw = match unit {
                TimeUnit::Second => col
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000)?,
                TimeUnit::Millisecond => col
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1000)?,
                TimeUnit::Microsecond => col.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => {
                    col.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                }
            };
            let dt = chrono::DateTime::from_timestamp_micros(raw)?.naive_utc();
            let micros = raw.rem_euclid(1_000_000);
            let mut s = dt.format("%Y-%m-%d %H:%M:%S").to_string() + &fraction(micros);
            if tz.is_some() {
                s.push_str("+00");
            }
            s
        }
        DataType::Time64(unit) => {
            let micros = match unit {
                TimeUnit::Nanosecond => {
                    col.as_primitive::<Time64NanosecondType>().value(row) / 1000
                }
                _ => col.as_primitive::<Time64MicrosecondType>().value(row),
            };
            let secs = micros.div_euclid(1_000_000);
            format!(
                "{:02}:{:02}:{:02}{}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                fraction(micros.rem_euclid(1_000_000))
            )
        }
        _ => return None,
    })
}

fn encode_batch(batch: &RecordBatch, fields: &Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    let schema = batch.schema();
    let jsonb: Vec<bool> = (0..batch.num_columns())
        .map(|i| is_jsonb(&schema, i))
        .collect();
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut result = Ok(());
        for c in 0..batch.num_columns() {
            let col = batch.column(c);
            let pg_field = &fields[c];
            let text = pg_field.format() == pgwire::api::results::FieldFormat::Text;
            result = if col.is_null(r) {
                encoder.encode_field_with_type_and_format(
                    &Null,
                    pg_field.datatype(),
                    pg_field.format(),
                    pg_field.format_options(),
                )
            } else if let Some(v) = pg_interval(col, r) {
                encoder.encode_field_with_type_and_format(
                    &v,
                    &Type::INTERVAL,
                    pg_field.format(),
                    pg_field.format_options(),
                )
            } else if let Some(v) = Infinity::of(col, r) {
                encoder.encode_field_with_type_and_format(
                    &v,
                    pg_field.datatype(),
                    pg_field.format(),
                    pg_field.format_options(),
                )
            } else if let DataType::Decimal128(_, scale) = col.data_type() {
                let v = Numeric {
                    unscaled: col.as_primitive::<Decimal128Type>().value(r),
                    scale: *scale,
                };
                encoder.encode_field_with_type_and_format(
                    &v,
                    pg_field.datatype(),
                    pg_field.format(),
                    pg_field.format_options(),
                )
            } else if text && !jsonb[c] && pg_text(col, r).is_some() {
                let v = pg_text(col, r).unwrap_or_default();
                encoder.encode_field_with_type_and_format(
                    &v,
                    pg_field.datatype(),
                    pg_field.format(),
                    pg_field.format_options(),
                )
            } else if jsonb[c] {
                if col.is_null(r) {
                    encoder.encode_field_with_type_and_format(
                        &None::<i32>,
                        pg_field.datatype(),
                        pg_field.format(),
                        pg_field.format_options(),
                    )
                } else {
                    let s = col.as_string::<i32>().value(r);
                    encoder.encode_field_with_type_and_format(
                        &Jsonb(s),
                        pg_field.datatype(),
                        pg_field.format(),
                        pg_field.format_options(),
                    )
                }
            } else {
                arrow_pg::encoder::encode_value(&mut encoder, col, r, schema.field(c), pg_field)
            };
            if result.is_err() {
                break;
            }
        }
        rows.push(result.map(|_| encoder.take_row()));
    }
    rows
}

/// DataRows for already-computed batches.
pub fn rows_of(
    batches: Vec<RecordBatch>,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    stream::iter(batches).flat_map(move |b| stream::iter(encode_batch(&b, &fields)))
}

/// DataRows for a stream of batches, with errors mapped to SQLSTATEs.
pub fn rows_of_stream(
    first: Option<RecordBatch>,
    rest: SendableRecordBatchStream,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let first = stream::iter(first.map(Ok));
    first.chain(rest).flat_map(move |b| match b {
        Ok(b) => stream::iter(encode_batch(&b, &fields)),
        Err(e) => stream::iter(vec![Err(pg_error(&PlannerError::DataFusion(e)))]),
    })
}

/// CopyData messages for COPY TO STDOUT.
///
/// Values are rendered exactly as in a text-format query result, then
/// escaped (text format) or quoted (CSV) by Postgres' COPY rules.
pub fn copy_out(
    schema: SchemaRef,
    mut batches: SendableRecordBatchStream,
    options: CopyOptions,
) -> PgWireResult<impl Stream<Item = PgWireResult<CopyData>> + Send + 'static> {
    let text_fields = Arc::new(fields(
        &schema,
        &Format::UnifiedText,
        Arc::new(FormatOptions::default()),
    )?);
    let delim = options.delimiter.to_string();
    // pgwire counts CopyData messages for the `COPY n` tag: one per row, the
    // CSV header travelling with the first.
    let mut header = (options.header && options.format == CopyFormat::Csv).then(|| {
        let names: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| csv_quote(f.name(), &options))
            .collect();
        format!("{}\n", names.join(&delim))
    });
    let body = async_stream(move |tx| async move {
        while let Some(batch) = batches.next().await {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(pg_error(&PlannerError::DataFusion(e)))).await;
                    return;
                }
            };
            for row in encode_batch(&batch, &text_fields) {
                let row = match row {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let mut out = BytesMut::new();
                if let Some(h) = header.take() {
                    out.put_slice(h.as_bytes());
                }
                let mut data: &[u8] = &row.data;
                for i in 0..row.field_count {
                    if i > 0 {
                        out.put_slice(delim.as_bytes());
                    }
                    let len = i32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                    data = &data[4..];
                    if len < 0 {
                        out.put_slice(options.null.as_bytes());
                        continue;
                    }
                    let value = String::from_utf8_lossy(&data[..len as usize]);
                    data = &data[len as usize..];
                    match options.format {
                        CopyFormat::Text => {
                            out.put_slice(text_escape(&value, options.delimiter).as_bytes())
                        }
                        CopyFormat::Csv => out.put_slice(csv_quote(&value, &options).as_bytes()),
                    }
                }
                out.put_u8(b'\n');
                if tx.send(Ok(CopyData::new(out.freeze()))).await.is_err() {
                    return;
                }
            }
        }
        // A header-only COPY of an empty result.
        if let Some(h) = header.take() {
            let _ = tx.send(Ok(CopyData::new(h.into()))).await;
        }
    });
    Ok(body)
}

/// Escapes a value for COPY's text format.
fn text_escape(s: &str, delim: char) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c == delim => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Quotes a CSV value when Postgres would: it equals the NULL string,
/// contains the delimiter, quote, CR or LF, or is `\.`.
fn csv_quote(s: &str, o: &CopyOptions) -> String {
    let needs = s == o.null
        || s == "\\."
        || s.contains(o.delimiter)
        || s.contains(o.quote)
        || s.contains('\n')
        || s.contains('\r');
    if !needs {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push(o.quote);
    for c in s.chars() {
        if c == o.quote || c == o.escape {
            out.push(o.escape);
        }
        out.push(c);
    }
    out.push(o.quote);
    out
}

/// A stream fed by an async producer through a small channel.
fn async_stream<T, F, Fut>(f: F) -> impl Stream<Item = T> + Send + 'static
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    stream::poll_fn(move |cx| rx.poll_recv(cx))
}
