//! PostgreSQL's input forms of `timestamp`, `timestamptz`, `date` and
//! `time`, in one place: casts (`'2024-01-01 10:00'::timestamp`, typed
//! literals, the implicit casts of comparisons and INSERT), and COPY.
//!
//! Arrow's parser wants seconds and knows no `infinity`, month names or
//! zone names. PostgreSQL takes ISO dates (`2024-01-02`, `20240102`,
//! `2024/01/02`), `MM/DD/YYYY` (its default DateStyle, MDY), month names
//! (`January 8, 1999`, `8 Jan 1999`, `1999-Jan-08`), a space or `T` before
//! the time, times with or without seconds and fractions, `AM`/`PM`, a zone
//! (`Z`, `+02`, `+05:30`, `-0800`, `UTC`, `PST`, `Europe/Oslo`), `BC`, and
//! the special values `infinity`, `-infinity`, `epoch`, `now`, `today`,
//! `tomorrow`, `yesterday` (and `allballs` for a time).
//!
//! A `timestamp` ignores a zone, as PostgreSQL's does; a `timestamptz`
//! without one is in the session's zone, UTC. `infinity` is stored as the
//! largest value of the type (`-infinity` the smallest), which orders
//! after (before) every other value and prints as `infinity`.

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{BinaryExpr, Cast, ScalarFunction};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use regex::Regex;

use crate::PlannerError;

/// The type a text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Timestamp,
    TimestampTz,
    Date,
    Time,
}

impl Kind {
    fn pg_name(self) -> &'static str {
        match self {
            Kind::Timestamp => "timestamp",
            Kind::TimestampTz => "timestamp with time zone",
            Kind::Date => "date",
            Kind::Time => "time",
        }
    }

    /// The Arrow type this module produces for the kind.
    pub fn arrow(self) -> DataType {
        match self {
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            Kind::Date => DataType::Date32,
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }

    /// The kind a cast to `t` reads text as, if it is one of these.
    pub fn of(t: &DataType) -> Option<Kind> {
        match t {
            DataType::Timestamp(_, None) => Some(Kind::Timestamp),
            DataType::Timestamp(_, Some(_)) => Some(Kind::TimestampTz),
            DataType::Date32 | DataType::Date64 => Some(Kind::Date),
            DataType::Time64(_) | DataType::Time32(_) => Some(Kind::Time),
            _ => None,
        }
    }
}

/// Why a text is not a value of the kind.
#[derive(Debug, Clone, PartialEq)]
pub enum InputError {
    /// 22007: not a date/time at all.
    Syntax(String),
    /// 22008: a field out of range (`2024-13-01`, `25:00`).
    OutOfRange(String),
}

impl From<InputError> for PlannerError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Syntax(m) => PlannerError::InvalidDatetime(m),
            InputError::OutOfRange(m) => PlannerError::DatetimeOutOfRange(m),
        }
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    let date = [
        r"(?P<y1>\d{4,})-(?P<m1>\d{1,2})-(?P<d1>\d{1,2})",
        r"(?P<y2>\d{4})/(?P<m2>\d{1,2})/(?P<d2>\d{1,2})",
        r"(?P<m3>\d{1,2})[/-](?P<d3>\d{1,2})[/-](?P<y3>\d{4}|\d{2})",
        r"(?P<y4>\d{4})(?P<m4>\d{2})(?P<d4>\d{2})",
        r"(?P<mn5>[a-z]{3,9})\.?[\s-](?P<d5>\d{1,2})(?:st|nd|rd|th)?,?[\s-](?P<y5>\d{4})",
        r"(?P<d6>\d{1,2})[\s-](?P<mn6>[a-z]{3,9})\.?[\s-](?P<y6>\d{4})",
        r"(?P<y7>\d{4})-(?P<mn7>[a-z]{3,9})-(?P<d7>\d{1,2})",
    ]
    .join("|");
    let time = r"(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?P<f>\.\d*)?)?|(?P<ch>\d{2})(?P<cmi>\d{2})(?:(?P<cs>\d{2})(?P<cf>\.\d*)?)?";
    let zone = r"z|[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?|[a-z][a-z0-9_/+-]*";
    Regex::new(&format!(
        r"(?ix)^\s*
        (?:(?P<date>{date}))?
        (?:(?P<sep>\s+|\s*t\s*)?(?P<time>{time}))?
        (?:\s*(?P<ampm>(?:am|pm)\b|a\.m\.|p\.m\.))?
        (?:\s*(?P<zone>{zone}))??
        (?:\s+(?P<era>bc|ad))?
        \s*$"
    ))
    .expect("the date/time pattern compiles")
});

/// The number of a month written as its name or an abbreviation.
pub fn month_number(name: &str) -> Option<u32> {
    month(name)
}

fn month(name: &str) -> Option<u32> {
    let n = name.to_ascii_lowercase();
    let months = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    months
        .iter()
        .position(|m| n.len() >= 3 && m.starts_with(&n))
        .or((n == "sept").then_some(8))
        .map(|i| i as u32 + 1)
}

/// The fixed offsets of the zone abbreviations PostgreSQL users write most,
/// in seconds east of UTC (PostgreSQL's `pg_timezone_abbrevs`).
fn abbreviation(name: &str) -> Option<i32> {
    let hours = |h: f64| Some((h * 3600.0) as i32);
    match name.to_ascii_uppercase().as_str() {
        "Z" | "UTC" | "GMT" | "UT" | "ZULU" => Some(0),
        "EST" => hours(-5.0),
        "EDT" => hours(-4.0),
        "CST" => hours(-6.0),
        "CDT" => hours(-5.0),
        "MST" => hours(-7.0),
        "MDT" => hours(-6.0),
        "PST" => hours(-8.0),
        "PDT" => hours(-7.0),
        "AKST" => hours(-9.0),
        "AKDT" => hours(-8.0),
        "HST" => hours(-10.0),
        "WET" => Some(0),
        "WEST" | "BST" | "CET" | "MET" => hours(1.0),
        "CEST" | "MEST" | "EET" => hours(2.0),
        "EEST" | "MSK" => hours(3.0),
        "IST" => hours(2.0),
        "JST" | "KST" => hours(9.0),
        "AEST" => hours(10.0),
        "AEDT" => hours(11.0),
        "NZST" => hours(12.0),
        "NZDT" => hours(13.0),
        _ => None,
    }
}

/// A zone name as the tz database spells it, tried as written and with
/// each part capitalized (`europe/oslo` → `Europe/Oslo`).
fn named_zone(name: &str) -> Option<chrono_tz::Tz> {
    if let Ok(tz) = chrono_tz::Tz::from_str(name) {
        return Some(tz);
    }
    let capitalized: String = name
        .split('/')
        .map(|part| {
            part.split('_')
                .map(|w| {
                    let mut c = w.chars();
                    match c.next() {
                        Some(f) => {
                            f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
                        }
                        None => String::new(),
                    }
                })
                .collect::<Vec<_>>()
                .join("_")
        })
        .collect::<Vec<_>>()
        .join("/");
    chrono_tz::Tz::from_str(&capitalized).ok()
}

enum Zone {
    Fixed(i32),
    Named(chrono_tz::Tz),
}

fn parse_zone(text: &str) -> Option<Zone> {
    if let Some(rest) = text.strip_prefix(['+', '-']) {
        let sign = if text.starts_with('-') { -1 } else { 1 };
        let digits: String = rest.chars().filter(|c| c.is_ascii_digit()).collect();
        let (h, m, s) = match (rest.contains(':'), digits.len()) {
            (true, _) => {
                let mut parts = rest.split(':').map(|p| p.parse::<i32>().ok());
                (
                    parts.next()??,
                    parts.next().flatten().unwrap_or(0),
                    parts.next().flatten().unwrap_or(0),
                )
            }
            (false, 1 | 2) => (digits.parse().ok()?, 0, 0),
            (false, 4) => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
            (false, 6) => (
                digits[..2].parse().ok()?,
                digits[2..4].parse().ok()?,
                digits[4..].parse().ok()?,
            ),
            _ => return None,
        };
        if h > 15 || m > 59 || s > 59 {
            return None;
        }
        return Some(Zone::Fixed(sign * (h * 3600 + m * 60 + s)));
    }
    abbreviation(text)
        .map(Zone::Fixed)
        .or_else(|| named_zone(text).map(Zone::Named))
}

/// Microseconds of a fraction written as `.ddd…`, rounded.
fn fraction_micros(f: &str) -> i64 {
    let digits = f.trim_start_matches('.');
    let mut micros: i64 = 0;
    for (i, c) in digits.chars().take(6).enumerate() {
        micros += (c as i64 - '0' as i64) * 10_i64.pow(5 - i as u32);
    }
    if digits.chars().nth(6).is_some_and(|c| c >= '5') {
        micros += 1;
    }
    micros
}

/// Reads `text` as a value of `kind`: microseconds since the epoch for the
/// timestamps, days since the epoch for a date, microseconds since
/// midnight for a time.
pub fn parse(text: &str, kind: Kind) -> Result<i64, InputError> {
    let syntax = || {
        InputError::Syntax(format!(
            "invalid input syntax for type {}: \"{text}\"",
            kind.pg_name()
        ))
    };
    let range =
        || InputError::OutOfRange(format!("date/time field value out of range: \"{text}\""));
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let today = || Utc::now().date_naive();
    let special = match lower.as_str() {
        "infinity" | "+infinity" if kind != Kind::Time => Some(i64::MAX),
        "-infinity" if kind != Kind::Time => Some(i64::MIN),
        "epoch" if kind != Kind::Time => Some(0),
        "allballs" if kind == Kind::Time => Some(0),
        "now" => {
            let now = Utc::now();
            Some(match kind {
                Kind::Time => now
                    .time()
                    .signed_duration_since(NaiveTime::MIN)
                    .num_microseconds()
                    .unwrap_or(0),
                _ => now.timestamp_micros(),
            })
        }
        "today" if kind != Kind::Time => Some(midnight(today())),
        "tomorrow" if kind != Kind::Time => Some(midnight(today() + Duration::days(1))),
        "yesterday" if kind != Kind::Time => Some(midnight(today() - Duration::days(1))),
        _ => None,
    };
    if let Some(v) = special {
        return Ok(match kind {
            Kind::Date => match v {
                i64::MAX => i32::MAX as i64,
                i64::MIN => i32::MIN as i64,
                v => v.div_euclid(MICROS_PER_DAY),
            },
            _ => v,
        });
    }
    let c = PATTERN.captures(trimmed).ok_or_else(syntax)?;
    let get = |name: &str| c.name(name).map(|m| m.as_str());
    let num = |name: &str| get(name).map(|s| s.parse::<i64>().map_err(|_| range()));
    // A group its alternative of the pattern always has.
    let req = |name: &str| num(name).unwrap_or_else(|| Err(syntax()));

    // The date.
    let date = if get("date").is_some() {
        let (y, m, d) = if let Some(y) = num("y1") {
            (y?, req("m1")?, req("d1")?)
        } else if let Some(y) = num("y2") {
            (y?, req("m2")?, req("d2")?)
        } else if let Some(y) = get("y3") {
            let mut year: i64 = y.parse().map_err(|_| range())?;
            if y.len() == 2 {
                year += if year < 70 { 2000 } else { 1900 };
            }
            (year, req("m3")?, req("d3")?)
        } else if let Some(y) = num("y4") {
            (y?, req("m4")?, req("d4")?)
        } else {
            let (mn, d, y) = if get("mn5").is_some() {
                ("mn5", "d5", "y5")
            } else if get("mn6").is_some() {
                ("mn6", "d6", "y6")
            } else {
                ("mn7", "d7", "y7")
            };
            let m = get(mn).and_then(month).ok_or_else(syntax)?;
            (req(y)?, m as i64, req(d)?)
        };
        let year = match get("era").map(|e| e.to_ascii_lowercase()) {
            Some(e) if e == "bc" => {
                if y == 0 {
                    return Err(range());
                }
                1 - y
            }
            _ => y,
        };
        let date = NaiveDate::from_ymd_opt(
            i32::try_from(year).map_err(|_| range())?,
            u32::try_from(m).map_err(|_| range())?,
            u32::try_from(d).map_err(|_| range())?,
        )
        .ok_or_else(range)?;
        Some(date)
    } else {
        None
    };
    let glued = date.is_some() && get("time").is_some() && get("sep").is_none();
    if date.is_none() && kind != Kind::Time || glued {
        return Err(syntax());
    }
    if get("date").is_none() && get("era").is_some() {
        return Err(syntax());
    }

    // The time of day, in microseconds (24:00:00 allowed, as PostgreSQL).
    let time = match get("time") {
        None if kind == Kind::Time => return Err(syntax()),
        None => {
            if get("ampm").is_some() {
                return Err(syntax());
            }
            0
        }
        Some(_) => {
            let (h, mi, s, f) = if get("h").is_some() {
                (
                    req("h")?,
                    req("mi")?,
                    num("s").transpose()?.unwrap_or(0),
                    get("f"),
                )
            } else {
                (
                    req("ch")?,
                    req("cmi")?,
                    num("cs").transpose()?.unwrap_or(0),
                    get("cf"),
                )
            };
            let mut h = h;
            if let Some(ampm) = get("ampm") {
                if !(1..=12).contains(&h) {
                    return Err(range());
                }
                let pm = ampm.to_ascii_lowercase().starts_with('p');
                h = match (h, pm) {
                    (12, false) => 0,
                    (12, true) => 12,
                    (h, true) => h + 12,
                    (h, false) => h,
                };
            }
            let micros = f.map(fraction_micros).unwrap_or(0);
            if mi > 59 || s > 60 || h > 24 || (h == 24 && (mi > 0 || s > 0 || micros > 0)) {
                return Err(range());
            }
            ((h * 60 + mi) * 60 + s) * 1_000_000 + micros
        }
    };
    if kind == Kind::Time {
        if get("zone").is_some_and(|z| parse_zone(z).is_none()) {
            return Err(syntax());
        }
        return Ok(time);
    }
    let date = date.expect("checked above");
    if kind == Kind::Date {
        if get("zone").is_some_and(|z| parse_zone(z).is_none()) {
            return Err(syntax());
        }
        return Ok(date
            .signed_duration_since(DateTime::UNIX_EPOCH.date_naive())
            .num_days());
    }
    let local = midnight(date).checked_add(time).ok_or_else(range)?;
    let zone = match get("zone") {
        Some(z) => Some(parse_zone(z).ok_or_else(syntax)?),
        None => None,
    };
    Ok(match (kind, zone) {
        (Kind::TimestampTz, Some(Zone::Fixed(offset))) => local - offset as i64 * 1_000_000,
        (Kind::TimestampTz, Some(Zone::Named(tz))) => {
            let naive = DateTime::from_timestamp_micros(local)
                .ok_or_else(range)?
                .naive_utc();
            let offset = tz
                .offset_from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    tz.offset_from_local_datetime(&(naive + Duration::hours(1)))
                        .earliest()
                })
                .ok_or_else(range)?
                .fix()
                .local_minus_utc();
            local - offset as i64 * 1_000_000
        }
        _ => local,
    })
}

fn midnight(d: NaiveDate) -> i64 {
    NaiveDateTime::from(d).and_utc().timestamp_micros()
}

/// The year of day `days` (days since the epoch).
#[cfg(test)]
fn year_of(days: i64) -> i32 {
    use chrono::Datelike;
    (DateTime::UNIX_EPOCH.date_naive() + Duration::days(days)).year()
}

/// Reads a column of text as `kind` (NULLs stay NULL).
pub fn parse_array(texts: &StringArray, kind: Kind) -> Result<ArrayRef, InputError> {
    let values = texts
        .iter()
        .map(|t| t.map(|t| parse(t, kind)).transpose())
        .collect::<Result<Vec<Option<i64>>, _>>()?;
    Ok(match kind {
        Kind::Timestamp => Arc::new(TimestampMicrosecondArray::from(values)),
        Kind::TimestampTz => {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("+00:00"))
        }
        Kind::Date => Arc::new(Date32Array::from(
            values
                .into_iter()
                .map(|v| v.map(|d| d.clamp(i32::MIN as i64, i32::MAX as i64) as i32))
                .collect::<Vec<_>>(),
        )),
        Kind::Time => Arc::new(Time64MicrosecondArray::from(values)),
    })
}

/// `timestamp_in(text)` and its kin: what a cast of text to a date/time
/// type becomes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DatetimeIn {
    kind: Kind,
    name: &'static str,
    signature: Signature,
}

impl DatetimeIn {
    pub fn udf(kind: Kind) -> ScalarUDF {
        let name = match kind {
            Kind::Timestamp => "timestamp_in",
            Kind::TimestampTz => "timestamptz_in",
            Kind::Date => "date_in",
            Kind::Time => "time_in",
        };
        ScalarUDF::from(DatetimeIn {
            kind,
            name,
            // `now`, `today` read the clock; the other inputs do not.
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for DatetimeIn {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.kind.arrow())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let array = args.args[0].to_array(args.number_rows.max(1))?;
        let array = cast(&array, &DataType::Utf8)?;
        let texts = array
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to Utf8");
        let out = parse_array(texts, self.kind)
            .map_err(|e| DataFusionError::External(Box::new(PlannerError::from(e))))?;
        crate::functions::columnar(out, scalar)
    }
}

/// The analyzer rule that reads casts of text to a date/time type with
/// [`parse`] (after type coercion, so the casts it adds are read too).
#[derive(Debug, Default)]
pub struct DatetimeInput;

impl AnalyzerRule for DatetimeInput {
    fn name(&self) -> &str {
        "freshet_datetime_input"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let udfs: Vec<Arc<ScalarUDF>> =
            [Kind::Timestamp, Kind::TimestampTz, Kind::Date, Kind::Time]
                .into_iter()
                .map(|k| Arc::new(DatetimeIn::udf(k)))
                .collect();
        plan.transform_up_with_subqueries(|node| {
            let schema = match node.inputs().as_slice() {
                [] => node.schema().as_ref().clone(),
                inputs => merge_schema(inputs),
            };
            node.map_expressions(|e| e.transform_up(|e| read_text(e, &schema, &udfs)))
        })
        .map(|t| t.data)
    }
}

/// `inner` when `e` is a cast of a microsecond timestamp to nanoseconds.
fn widened_micros(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    match e {
        Expr::Cast(Cast { expr, field })
            if matches!(
                field.data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            ) && matches!(
                expr.get_type(schema),
                Ok(DataType::Timestamp(TimeUnit::Microsecond, _))
            ) =>
        {
            Some(expr.as_ref().clone())
        }
        _ => None,
    }
}

fn read_text(e: Expr, schema: &DFSchema, udfs: &[Arc<ScalarUDF>]) -> DfResult<Transformed<Expr>> {
    // A comparison of text with a timestamp is coerced to nanoseconds on
    // both sides, which `infinity` (and years outside 1677..2262) do not
    // fit: compare the microseconds.
    if let Expr::BinaryExpr(b) = &e {
        if b.op.supports_propagation() {
            if let (Some(l), Some(r)) = (
                widened_micros(&b.left, schema),
                widened_micros(&b.right, schema),
            ) {
                if l.get_type(schema)? == r.get_type(schema)? {
                    return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(l),
                        b.op,
                        Box::new(r),
                    ))));
                }
            }
        }
        return Ok(Transformed::no(e));
    }
    let Expr::Cast(Cast { expr, field }) = e else {
        return Ok(Transformed::no(e));
    };
    let text = matches!(
        expr.get_type(schema),
        Ok(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
    );
    let Some(kind) = Kind::of(field.data_type()).filter(|_| text) else {
        return Ok(Transformed::no(Expr::Cast(Cast { expr, field })));
    };
    let i = kind as usize;
    let arg = match expr.get_type(schema)? {
        DataType::Utf8 => *expr,
        _ => Expr::Cast(Cast::new(expr, DataType::Utf8)),
    };
    let read = Expr::ScalarFunction(ScalarFunction::new_udf(udfs[i].clone(), vec![arg]));
    Ok(Transformed::yes(if field.data_type() == &kind.arrow() {
        read
    } else {
        Expr::Cast(Cast {
            expr: Box::new(read),
            field,
        })
    }))
}

/// The rule, for the analyzer's list.
pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(DatetimeInput)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> String {
        let v = parse(s, Kind::Timestamp).unwrap();
        DateTime::from_timestamp_micros(v)
            .unwrap()
            .naive_utc()
            .to_string()
    }

    fn tstz(s: &str) -> String {
        let v = parse(s, Kind::TimestampTz).unwrap();
        DateTime::from_timestamp_micros(v)
            .unwrap()
            .naive_utc()
            .to_string()
    }

    #[test]
    fn timestamps_in_postgres_forms() {
        for (input, want) in [
            ("2024-01-01 10:00", "2024-01-01 10:00:00"),
            ("2024-01-01T10:00", "2024-01-01 10:00:00"),
            ("2020-04-15 12:02:03.5", "2020-04-15 12:02:03.500"),
            ("2024-01-01", "2024-01-01 00:00:00"),
            ("20240102 101112", "2024-01-02 10:11:12"),
            ("20240102T101112", "2024-01-02 10:11:12"),
            ("1/8/1999 4:05 PM", "1999-01-08 16:05:00"),
            ("January 8, 1999 12:00 am", "1999-01-08 00:00:00"),
            ("8 Jan 1999", "1999-01-08 00:00:00"),
            ("1999-Jan-08 04:05:06", "1999-01-08 04:05:06"),
            ("2024-01-01 10:00:00+02", "2024-01-01 10:00:00"),
            ("2024-01-01 24:00", "2024-01-02 00:00:00"),
            ("  2024-02-29 23:59:59.9999999 ", "2024-03-01 00:00:00"),
            ("0044-03-15 BC", "-0043-03-15 00:00:00"),
        ] {
            assert_eq!(ts(input), want, "{input}");
        }
        assert_eq!(parse("infinity", Kind::Timestamp), Ok(i64::MAX));
        assert_eq!(parse("-INFINITY", Kind::Timestamp), Ok(i64::MIN));
        assert_eq!(parse("epoch", Kind::Timestamp), Ok(0));
    }

    #[test]
    fn zones_move_a_timestamptz() {
        for (input, want) in [
            ("2024-01-01 10:00+02", "2024-01-01 08:00:00"),
            ("2024-01-01 10:00:00-08:00", "2024-01-01 18:00:00"),
            ("2024-01-01T10:00:00Z", "2024-01-01 10:00:00"),
            ("2024-01-01 10:00 +0530", "2024-01-01 04:30:00"),
            ("2024-01-01 10:00 PST", "2024-01-01 18:00:00"),
            ("2024-07-01 10:00 Europe/Oslo", "2024-07-01 08:00:00"),
            ("2024-01-01 10:00 europe/oslo", "2024-01-01 09:00:00"),
            ("2024-01-01 10:00 UTC", "2024-01-01 10:00:00"),
            ("2024-01-01 10:00 America/New_York", "2024-01-01 15:00:00"),
        ] {
            assert_eq!(tstz(input), want, "{input}");
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse("1970-01-02", Kind::Date), Ok(1));
        assert_eq!(parse("1970-01-02 23:00", Kind::Date), Ok(1));
        assert_eq!(parse("infinity", Kind::Date), Ok(i32::MAX as i64));
        assert_eq!(parse("10:00", Kind::Time), Ok(36_000_000_000));
        assert_eq!(parse("10:00:01.25 pm", Kind::Time), Ok(79_201_250_000));
        assert_eq!(parse("2024-01-01 00:00:02", Kind::Time), Ok(2_000_000));
        assert_eq!(parse("allballs", Kind::Time), Ok(0));
        assert_eq!(year_of(parse("02/29/2000", Kind::Date).unwrap()), 2000);
    }

    #[test]
    fn bad_input_is_named() {
        for bad in [
            "",
            "abc",
            "2024-01-01 10",
            "10:00",
            "2024-01-01 10:00 Nowhere/Zone",
            "2024-01-01 13:00 pm",
        ] {
            let e = parse(bad, Kind::Timestamp).unwrap_err();
            assert!(
                matches!(e, InputError::Syntax(_) | InputError::OutOfRange(_)),
                "{bad}: {e:?}"
            );
        }
        for bad in [
            "2024-13-01",
            "2024-02-30",
            "2024-01-01 25:00",
            "2024-01-01 10:60",
        ] {
            assert!(
                matches!(parse(bad, Kind::Timestamp), Err(InputError::OutOfRange(_))),
                "{bad}"
            );
        }
        assert!(
            matches!(parse("abc", Kind::Timestamp), Err(InputError::Syntax(m)) if m == "invalid input syntax for type timestamp: \"abc\"")
        );
    }
}
