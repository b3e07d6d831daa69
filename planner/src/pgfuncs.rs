//! Everyday PostgreSQL functions DataFusion lacks: `pg_typeof`, `format`,
//! `age`, `justify_hours` / `justify_days` / `justify_interval`,
//! `regexp_matches` (a set-returning function: in a select list it is
//! `unnest` of [`REGEXP_MATCHES_LIST`]), `mode() WITHIN GROUP (ORDER BY
//! x)` (the aggregate [`Mode`]), and the names `variance` and
//! `gen_random_uuid` for DataFusion's `var_samp` and `uuid`.

use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, IntervalMonthDayNanoArray, ListArray, StringArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit,
    TimeUnit,
};
use datafusion::common::{Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use crate::types::SqlType;
use crate::PlannerError;

/// `regexp_matches(…)` in a select list is `unnest` of this list.
pub const REGEXP_MATCHES_LIST: &str = "regexp_matches_list";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PgTypeof,
    Format,
    Age,
    JustifyHours,
    JustifyDays,
    JustifyInterval,
    RegexpMatches,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgFn {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

fn udf(name: &'static str, kind: Kind, volatility: Volatility) -> ScalarUDF {
    ScalarUDF::from(PgFn {
        name,
        kind,
        signature: Signature::variadic_any(volatility),
    })
}

pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        udf("pg_typeof", Kind::PgTypeof, Volatility::Immutable),
        udf("format", Kind::Format, Volatility::Immutable),
        // age(t) reads the clock.
        udf("age", Kind::Age, Volatility::Stable),
        udf("justify_hours", Kind::JustifyHours, Volatility::Immutable),
        udf("justify_days", Kind::JustifyDays, Volatility::Immutable),
        udf(
            "justify_interval",
            Kind::JustifyInterval,
            Volatility::Immutable,
        ),
        udf(
            REGEXP_MATCHES_LIST,
            Kind::RegexpMatches,
            Volatility::Immutable,
        ),
    ]
}

/// `variance` and `gen_random_uuid`: PostgreSQL's names for DataFusion's
/// functions.
pub fn aliases(ctx: &datafusion::prelude::SessionContext) {
    let state = ctx.state();
    if let Some(var) = state.aggregate_functions().get("var_samp") {
        let aliased = var.as_ref().clone().with_aliases(["variance"]);
        ctx.register_udaf(aliased);
    }
    if let Some(uuid) = state.scalar_functions().get("uuid") {
        let aliased = uuid.as_ref().clone().with_aliases(["gen_random_uuid"]);
        ctx.register_udf(aliased);
    }
}

fn interval() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

fn external(e: PlannerError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ScalarUDFImpl for PgFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::PgTypeof | Kind::Format => DataType::Utf8,
            Kind::Age | Kind::JustifyHours | Kind::JustifyDays | Kind::JustifyInterval => {
                interval()
            }
            Kind::RegexpMatches => DataType::List(Arc::new(Field::new(
                "item",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ))),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let out: ArrayRef = match self.kind {
            Kind::PgTypeof => {
                let name = args
                    .arg_fields
                    .first()
                    .map(type_name)
                    .unwrap_or_else(|| "unknown".into());
                Arc::new(StringArray::from(vec![Some(name); rows]))
            }
            Kind::Format => format(&arrays, rows)?,
            Kind::Age => age(&arrays, rows)?,
            Kind::JustifyHours | Kind::JustifyDays | Kind::JustifyInterval => {
                let ivs = cast(&arrays[0], &interval())?;
                let ivs = ivs.as_primitive::<IntervalMonthDayNanoType>();
                let out: IntervalMonthDayNanoArray = ivs
                    .iter()
                    .map(|v| v.map(|v| justify(v, self.kind)))
                    .collect();
                Arc::new(out)
            }
            Kind::RegexpMatches => regexp_matches(&arrays, rows)?,
        };
        crate::functions::columnar(out, scalar)
    }
}

/// PostgreSQL's name of a field's type (`integer`, `text`, `jsonb`, …).
fn type_name(f: &FieldRef) -> String {
    match f.data_type() {
        DataType::Null => return "unknown".into(),
        DataType::Utf8View | DataType::LargeUtf8 => return "text".into(),
        _ => {}
    }
    match SqlType::from_field(f) {
        Some(SqlType::Numeric { .. }) => "numeric".into(),
        Some(SqlType::Varchar(_)) => "character varying".into(),
        Some(t) => t.pg_name(),
        None => match f.data_type() {
            DataType::Interval(_) => "interval".into(),
            DataType::Timestamp(_, None) => "timestamp without time zone".into(),
            DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
            DataType::Time64(_) => "time without time zone".into(),
            DataType::List(inner) => format!("{}[]", type_name(inner)),
            other => other.to_string().to_ascii_lowercase(),
        },
    }
}

/// The text of row `row` as `format`'s `%s` shows it (PostgreSQL's output
/// form for booleans; DataFusion's cast to text for the rest).
fn text_at(a: &ArrayRef, row: usize) -> Result<Option<String>> {
    if a.data_type() == &DataType::Null || a.is_null(row) {
        return Ok(None);
    }
    if let DataType::Boolean = a.data_type() {
        return Ok(Some(
            if a.as_boolean().value(row) { "t" } else { "f" }.into(),
        ));
    }
    let one = a.slice(row, 1);
    let text = cast(&one, &DataType::Utf8)?;
    Ok(Some(text.as_string::<i32>().value(0).to_string()))
}

fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// PostgreSQL's `format(fmt, args…)`: `%s`, `%I`, `%L`, `%%`, positions
/// `%n$s`, and widths `%10s` / `%-10s`.
fn format(arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let bad = |m: &str| external(PlannerError::InvalidParameterValue(m.to_string()));
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        let Some(fmt) = arrays.first().map(|a| text_at(a, r)).transpose()?.flatten() else {
            out.push(None);
            continue;
        };
        let mut s = String::new();
        let mut next_arg = 1usize;
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                s.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                s.push('%');
                continue;
            }
            // %[n$][-][width]type
            let mut spec = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || d == '$' || d == '-' {
                    spec.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            let kind = chars
                .next()
                .ok_or_else(|| bad("unterminated format() type specifier"))?;
            let (position, rest) = match spec.split_once('$') {
                Some((n, rest)) => (
                    Some(
                        n.parse::<usize>()
                            .map_err(|_| bad("invalid format() position"))?,
                    ),
                    rest.to_string(),
                ),
                None => (None, spec),
            };
            let left = rest.starts_with('-');
            let width: usize = rest.trim_start_matches('-').parse().unwrap_or(0);
            let i = match position {
                Some(n) => {
                    next_arg = n + 1;
                    n
                }
                None => {
                    next_arg += 1;
                    next_arg - 1
                }
            };
            let arg = arrays
                .get(i)
                .ok_or_else(|| bad("too few arguments for format()"))?;
            let value = text_at(arg, r)?;
            let piece =
                match kind {
                    's' => value.unwrap_or_default(),
                    'I' => quote_ident(&value.ok_or_else(|| {
                        bad("null values cannot be formatted as an SQL identifier")
                    })?),
                    'L' => value
                        .map(|v| quote_literal(&v))
                        .unwrap_or_else(|| "NULL".into()),
                    other => {
                        return Err(bad(&format!(
                            "unrecognized format() type specifier \"{other}\""
                        )))
                    }
                };
            let pad = width.saturating_sub(piece.chars().count());
            if left {
                s.push_str(&piece);
                s.extend(std::iter::repeat_n(' ', pad));
            } else {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(&piece);
            }
        }
        out.push(Some(s));
    }
    Ok(Arc::new(StringArray::from(out)))
}

fn timestamp_at(a: &ArrayRef, row: usize) -> Result<Option<NaiveDateTime>> {
    if a.is_null(row) {
        return Ok(None);
    }
    let micros = cast(
        &a.slice(row, 1),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?;
    let v = micros
        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
        .value(0);
    Ok(chrono::DateTime::from_timestamp_micros(v).map(|d| d.naive_utc()))
}

fn days_in_month(year: i32, month: u32) -> i64 {
    let first = chrono::NaiveDate::from_ymd_opt(year, month, 1).expect("a month");
    let next = if month == 12 {
        chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("a month");
    (next - first).num_days()
}

/// PostgreSQL's `age(a, b)`: years, months and days between the two, as
/// the calendar counts them (`timestamp_age`).
fn age_of(a: NaiveDateTime, b: NaiveDateTime) -> IntervalMonthDayNano {
    let (hi, lo, negate) = if a >= b { (a, b, false) } else { (b, a, true) };
    let fields = |t: NaiveDateTime| {
        [
            t.year() as i64,
            t.month() as i64,
            t.day() as i64,
            t.hour() as i64,
            t.minute() as i64,
            t.second() as i64,
            t.nanosecond() as i64 / 1000,
        ]
    };
    let (h, l) = (fields(hi), fields(lo));
    // year, month, day, hour, minute, second, microsecond: each field
    // that went negative borrows one of the field before it (a day borrows
    // the days of the earlier timestamp's month).
    let mut d: Vec<i64> = h.iter().zip(&l).map(|(x, y)| x - y).collect();
    let month_days = days_in_month(lo.year(), lo.month());
    let bases = [12, month_days, 24, 60, 60, 1_000_000];
    for i in (1..d.len()).rev() {
        if d[i] < 0 {
            d[i] += bases[i - 1];
            d[i - 1] -= 1;
        }
    }
    let [year, mon, day, hour, min, sec, usec] = [d[0], d[1], d[2], d[3], d[4], d[5], d[6]];
    let sign = if negate { -1 } else { 1 };
    let micros = ((hour * 60 + min) * 60 + sec) * 1_000_000 + usec;
    IntervalMonthDayNano::new(
        (sign * (year * 12 + mon)) as i32,
        (sign * day) as i32,
        sign * micros * 1000,
    )
}

fn age(arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    let mut out = Vec::with_capacity(rows);
    for r in 0..rows {
        let (a, b) = match arrays {
            [b] => (Some(midnight), timestamp_at(b, r)?),
            [a, b] => (timestamp_at(a, r)?, timestamp_at(b, r)?),
            _ => {
                return Err(external(PlannerError::UndefinedFunction(
                    "function age takes one or two timestamps".into(),
                )))
            }
        };
        out.push(match (a, b) {
            (Some(a), Some(b)) => Some(age_of(a, b)),
            _ => None,
        });
    }
    Ok(Arc::new(
        out.into_iter().collect::<IntervalMonthDayNanoArray>(),
    ))
}

/// `justify_hours` (24 hours a day), `justify_days` (30 days a month), or
/// both with PostgreSQL's sign alignment (`justify_interval`).
fn justify(v: IntervalMonthDayNano, kind: Kind) -> IntervalMonthDayNano {
    const DAY: i64 = 86_400_000_000_000;
    let (mut months, mut days, mut nanos) = (v.months as i64, v.days as i64, v.nanoseconds);
    if matches!(kind, Kind::JustifyHours | Kind::JustifyInterval) {
        days += nanos / DAY;
        nanos %= DAY;
    }
    if matches!(kind, Kind::JustifyDays | Kind::JustifyInterval) {
        months += days / 30;
        days %= 30;
    }
    if kind == Kind::JustifyInterval {
        if months > 0 && (days < 0 || (days == 0 && nanos < 0)) {
            days += 30;
            months -= 1;
        } else if months < 0 && (days > 0 || (days == 0 && nanos > 0)) {
            days -= 30;
            months += 1;
        }
        if days > 0 && nanos < 0 {
            nanos += DAY;
            days -= 1;
        } else if days < 0 && nanos > 0 {
            nanos -= DAY;
            days += 1;
        }
    } else if kind == Kind::JustifyHours {
        if days > 0 && nanos < 0 {
            nanos += DAY;
            days -= 1;
        } else if days < 0 && nanos > 0 {
            nanos -= DAY;
            days += 1;
        }
    }
    IntervalMonthDayNano::new(months as i32, days as i32, nanos)
}

/// `regexp_matches(text, pattern [, flags])` as a list of matches, each the
/// list of its capture groups (or of the whole match when there are none).
/// Without the `g` flag only the first match; `i` ignores case.
fn regexp_matches(arrays: &[ArrayRef], rows: usize) -> Result<ArrayRef> {
    if !(2..=3).contains(&arrays.len()) {
        return Err(external(PlannerError::UndefinedFunction(
            "function regexp_matches takes a text, a pattern and optional flags".into(),
        )));
    }
    let mut outer = vec![0i32];
    let mut inner = vec![0i32];
    let mut values: Vec<Option<String>> = Vec::new();
    let mut valid = Vec::with_capacity(rows);
    for r in 0..rows {
        let text = text_at(&arrays[0], r)?;
        let pattern = text_at(&arrays[1], r)?;
        let flags = match arrays.get(2) {
            Some(a) => text_at(a, r)?.unwrap_or_default(),
            None => String::new(),
        };
        let (Some(text), Some(pattern)) = (text, pattern) else {
            valid.push(false);
            outer.push(*outer.last().expect("start"));
            continue;
        };
        if let Some(bad) = flags
            .chars()
            .find(|c| !matches!(c, 'g' | 'i' | 'c' | 'n' | 's' | 'm'))
        {
            return Err(external(PlannerError::InvalidParameterValue(format!(
                "invalid regular expression option: \"{bad}\""
            ))));
        }
        let case = if flags.contains('i') && !flags.contains('c') {
            "(?i)"
        } else {
            ""
        };
        let re = regex::Regex::new(&format!("{case}{pattern}")).map_err(|e| {
            external(PlannerError::InvalidParameterValue(format!(
                "invalid regular expression: {e}"
            )))
        })?;
        valid.push(true);
        let mut count = 0;
        for caps in re.captures_iter(&text) {
            if re.captures_len() > 1 {
                values.extend(
                    caps.iter()
                        .skip(1)
                        .map(|m| m.map(|m| m.as_str().to_string())),
                );
            } else {
                values.push(caps.get(0).map(|m| m.as_str().to_string()));
            }
            inner.push(values.len() as i32);
            count += 1;
            if !flags.contains('g') {
                break;
            }
        }
        outer.push(outer.last().expect("start") + count);
    }
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let matches = ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(inner.into()),
        Arc::new(StringArray::from(values)),
        None,
    )?;
    let list = ListArray::try_new(
        Arc::new(Field::new("item", DataType::List(item), true)),
        OffsetBuffer::new(outer.into()),
        Arc::new(matches),
        Some(valid.into()),
    )?;
    Ok(Arc::new(list))
}

/// `mode() WITHIN GROUP (ORDER BY x)`: the most frequent non-NULL value,
/// the smallest of those tied.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mode {
    signature: Signature,
}

impl Mode {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(Mode {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for Mode {
    fn name(&self) -> &str {
        "mode"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.input_fields[0].data_type().clone();
        Ok(vec![Arc::new(Field::new(
            "values",
            DataType::List(Arc::new(Field::new("item", t, true))),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ModeAccumulator {
            data_type: args.return_field.data_type().clone(),
            values: Vec::new(),
        }))
    }
}

#[derive(Debug)]
struct ModeAccumulator {
    data_type: DataType,
    values: Vec<ScalarValue>,
}

impl Accumulator for ModeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let a = &values[0];
        for i in 0..a.len() {
            if a.is_valid(i) {
                self.values.push(ScalarValue::try_from_array(a, i)?);
            }
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                self.update_batch(&[lists.value(i)])?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = ScalarValue::new_list_nullable(&self.values, &self.data_type);
        Ok(vec![ScalarValue::List(list)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut sorted = self.values.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let mut best: Option<(&ScalarValue, usize)> = None;
        let mut i = 0;
        while i < sorted.len() {
            let mut j = i;
            while j < sorted.len() && sorted[j] == sorted[i] {
                j += 1;
            }
            if best.is_none_or(|(_, n)| j - i > n) {
                best = Some((&sorted[i], j - i));
            }
            i = j;
        }
        match best {
            Some((v, _)) => Ok(v.clone()),
            None => ScalarValue::try_from(&self.data_type),
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.iter().map(|v| v.size()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn age_counts_the_calendar() {
        let a = age_of(ts("2024-03-01 00:00:00"), ts("2024-01-31 12:00:00"));
        // 2024-01-31 12:00 → 2024-03-01 00:00 is `1 mon 12:00:00` in
        // PostgreSQL 15 (the day borrows January's 31 days).
        assert_eq!(
            (a.months, a.days, a.nanoseconds),
            (1, 0, 12 * 3_600_000_000_000)
        );
        let b = age_of(ts("2023-01-01 00:00:00"), ts("2024-01-01 00:00:00"));
        assert_eq!((b.months, b.days, b.nanoseconds), (-12, 0, 0));
    }

    #[test]
    fn justify_like_postgres() {
        let d = |m, days, h: i64| IntervalMonthDayNano::new(m, days, h * 3_600_000_000_000);
        assert_eq!(justify(d(0, 0, 27), Kind::JustifyHours), d(0, 1, 3));
        assert_eq!(justify(d(0, 35, 0), Kind::JustifyDays), d(1, 5, 0));
        assert_eq!(justify(d(1, 0, -1), Kind::JustifyInterval), d(0, 29, 23));
    }
}
