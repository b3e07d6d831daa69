//! `to_char(timestamp | timestamptz | date, template)` with PostgreSQL's
//! template patterns (DataFusion's `to_char` takes chrono's `%Y-%m`, so
//! `to_char(ts, 'YYYY-MM')` answered the text `YYYY-MM`).
//!
//! Patterns: `HH HH12 HH24 MI SS MS US FF1`…`FF6 SSSS SSSSS AM PM A.M. P.M.`
//! (and lower case), `Y,YYY YYYY YYY YY Y IYYY IYY IY I BC AD B.C. A.D.`,
//! `MONTH Month month MON Mon mon MM DAY Day day DY Dy dy DDD IDDD DD D ID
//! W WW IW CC J Q RM rm TZ tz OF`; the `FM` prefix (no padding), `TH`/`th`
//! suffix (ordinals), `FX` and `TM` prefixes (accepted, no effect);
//! `"quoted text"` and `\` escapes are copied. Anything else is copied as
//! it is, as in PostgreSQL (patterns match inside words too: the `i` of
//! `literal` is `I`, the ISO year's last digit). Sessions run in UTC, so
//! `TZ` is `UTC` (empty for a timestamp without time zone).
//!
//! Numbers (`to_char(1234.5, '9G999D9')`): crate::to_char_num.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::PlannerError;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToChar {
    signature: Signature,
}

impl ToChar {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(ToChar {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

fn not_supported(what: String) -> DataFusionError {
    DataFusionError::External(Box::new(PlannerError::NotSupported(what)))
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [value, template] = args else {
            return exec_err!("to_char takes a value and a template");
        };
        let value = match value {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Date32 | DataType::Date64 => DataType::Date32,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                // An unknown-typed literal: PostgreSQL asks for a cast too.
                return Err(DataFusionError::External(Box::new(
                    PlannerError::UndefinedFunction(
                        "function to_char(unknown, unknown) is not unique".into(),
                    ),
                )));
            }
            DataType::Int16 | DataType::Int32 | DataType::Int64 => value.clone(),
            DataType::Int8 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
                DataType::Int64
            }
            DataType::Decimal128(_, _) => value.clone(),
            DataType::Float32 | DataType::Float64 => value.clone(),
            t if t.is_numeric() => DataType::Float64,
            other => {
                return Err(not_supported(format!("to_char of {other}")));
            }
        };
        let template = match template {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                DataType::Utf8
            }
            other => return exec_err!("to_char template must be text, not {other}"),
        };
        Ok(vec![value, template])
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let (values, templates) = (&arrays[0], arrays[1].as_string::<i32>());
        if values.data_type().is_numeric() {
            let out: ArrayRef = Arc::new(numbers(values, templates)?);
            return crate::functions::columnar(out, scalar);
        }
        let with_tz = matches!(values.data_type(), DataType::Timestamp(_, Some(_)));
        let mut out = StringBuilder::with_capacity(values.len(), values.len() * 16);
        let mut parsed: Option<(String, Vec<Item>)> = None;
        for i in 0..values.len() {
            if values.is_null(i) || templates.is_null(i) {
                out.append_null();
                continue;
            }
            let text = templates.value(i);
            if parsed.as_ref().is_none_or(|(t, _)| t != text) {
                parsed = Some((text.to_string(), parse(text)));
            }
            let items = &parsed.as_ref().expect("just parsed").1;
            let at = match values.data_type() {
                DataType::Date32 => {
                    let days = values.as_primitive::<Date32Type>().value(i);
                    DateTime::from_timestamp(days as i64 * 86_400, 0).map(|d| d.naive_utc())
                }
                _ => {
                    let micros = values.as_primitive::<TimestampMicrosecondType>().value(i);
                    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
                }
            };
            let Some(at) = at else {
                return exec_err!("timestamp out of range");
            };
            out.append_value(format(items, &at, with_tz));
        }
        let out: ArrayRef = Arc::new(out.finish());
        crate::functions::columnar(out, scalar)
    }
}

/// `to_char` of numbers (crate::to_char_num), row by row.
fn numbers(
    values: &ArrayRef,
    templates: &datafusion::arrow::array::StringArray,
) -> Result<datafusion::arrow::array::StringArray> {
    use crate::to_char_num::Number;
    use datafusion::arrow::datatypes::{
        Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    };
    let number = |i: usize| -> Result<Number> {
        Ok(match values.data_type() {
            DataType::Int16 => Number::Decimal {
                digits: values.as_primitive::<Int16Type>().value(i) as i128,
                scale: 0,
            },
            DataType::Int32 => Number::Decimal {
                digits: values.as_primitive::<Int32Type>().value(i) as i128,
                scale: 0,
            },
            DataType::Int64 => Number::Decimal {
                digits: values.as_primitive::<Int64Type>().value(i) as i128,
                scale: 0,
            },
            DataType::Decimal128(_, s) => Number::Decimal {
                digits: values.as_primitive::<Decimal128Type>().value(i),
                scale: *s as i32,
            },
            DataType::Float32 => {
                Number::Float(values.as_primitive::<Float32Type>().value(i) as f64)
            }
            DataType::Float64 => Number::Float(values.as_primitive::<Float64Type>().value(i)),
            other => return exec_err!("to_char of {other}"),
        })
    };
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 12);
    for i in 0..values.len() {
        if values.is_null(i) || templates.is_null(i) {
            out.append_null();
            continue;
        }
        let text = crate::to_char_num::format(number(i)?, templates.value(i))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        out.append_value(text);
    }
    Ok(out.finish())
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Field {
        pattern: Pattern,
        fill: bool,
        ordinal: Option<bool>, // Some(upper case)
    },
}

/// A template pattern. Text patterns carry their letter case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    Hour24,
    Hour12,
    Minute,
    Second,
    Millis,
    Micros,
    Fraction(u8),
    SecondsOfDay,
    Meridiem { dots: bool, case: Case },
    YearComma,
    Year(u8),
    IsoYear(u8),
    Era { dots: bool, case: Case },
    MonthName(Case),
    MonthAbbrev(Case),
    Month,
    DayName(Case),
    DayAbbrev(Case),
    DayOfYear,
    IsoDayOfYear,
    Day,
    DayOfWeek,
    IsoDayOfWeek,
    WeekOfMonth,
    WeekOfYear,
    IsoWeek,
    Century,
    Julian,
    Quarter,
    Roman(Case),
    TimeZone(Case),
    Offset,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Upper,
    Capital,
    Lower,
}

/// The patterns, longest first where one is a prefix of another. `true`:
/// matched in any letter case (the numeric ones, as PostgreSQL does).
fn patterns() -> Vec<(&'static str, bool, Pattern)> {
    use Case::*;
    use Pattern::*;
    vec![
        ("HH24", true, Hour24),
        ("HH12", true, Hour12),
        ("HH", true, Hour12),
        ("MI", true, Minute),
        ("SSSSS", true, SecondsOfDay),
        ("SSSS", true, SecondsOfDay),
        ("SS", true, Second),
        ("MS", true, Millis),
        ("US", true, Micros),
        ("FF1", true, Fraction(1)),
        ("FF2", true, Fraction(2)),
        ("FF3", true, Fraction(3)),
        ("FF4", true, Fraction(4)),
        ("FF5", true, Fraction(5)),
        ("FF6", true, Fraction(6)),
        (
            "A.M.",
            false,
            Meridiem {
                dots: true,
                case: Upper,
            },
        ),
        (
            "P.M.",
            false,
            Meridiem {
                dots: true,
                case: Upper,
            },
        ),
        (
            "a.m.",
            false,
            Meridiem {
                dots: true,
                case: Lower,
            },
        ),
        (
            "p.m.",
            false,
            Meridiem {
                dots: true,
                case: Lower,
            },
        ),
        (
            "AM",
            false,
            Meridiem {
                dots: false,
                case: Upper,
            },
        ),
        (
            "PM",
            false,
            Meridiem {
                dots: false,
                case: Upper,
            },
        ),
        (
            "am",
            false,
            Meridiem {
                dots: false,
                case: Lower,
            },
        ),
        (
            "pm",
            false,
            Meridiem {
                dots: false,
                case: Lower,
            },
        ),
        ("Y,YYY", true, YearComma),
        ("YYYY", true, Year(4)),
        ("YYY", true, Year(3)),
        ("YY", true, Year(2)),
        ("Y", true, Year(1)),
        ("IYYY", true, IsoYear(4)),
        ("IYY", true, IsoYear(3)),
        ("IY", true, IsoYear(2)),
        ("IDDD", true, IsoDayOfYear),
        ("ID", true, IsoDayOfWeek),
        ("IW", true, IsoWeek),
        ("I", true, IsoYear(1)),
        (
            "B.C.",
            false,
            Era {
                dots: true,
                case: Upper,
            },
        ),
        (
            "A.D.",
            false,
            Era {
                dots: true,
                case: Upper,
            },
        ),
        (
            "b.c.",
            false,
            Era {
                dots: true,
                case: Lower,
            },
        ),
        (
            "a.d.",
            false,
            Era {
                dots: true,
                case: Lower,
            },
        ),
        (
            "BC",
            false,
            Era {
                dots: false,
                case: Upper,
            },
        ),
        (
            "AD",
            false,
            Era {
                dots: false,
                case: Upper,
            },
        ),
        (
            "bc",
            false,
            Era {
                dots: false,
                case: Lower,
            },
        ),
        (
            "ad",
            false,
            Era {
                dots: false,
                case: Lower,
            },
        ),
        ("MONTH", false, MonthName(Upper)),
        ("Month", false, MonthName(Capital)),
        ("month", false, MonthName(Lower)),
        ("MON", false, MonthAbbrev(Upper)),
        ("Mon", false, MonthAbbrev(Capital)),
        ("mon", false, MonthAbbrev(Lower)),
        ("MM", true, Month),
        ("DAY", false, DayName(Upper)),
        ("Day", false, DayName(Capital)),
        ("day", false, DayName(Lower)),
        ("DY", false, DayAbbrev(Upper)),
        ("Dy", false, DayAbbrev(Capital)),
        ("dy", false, DayAbbrev(Lower)),
        ("DDD", true, DayOfYear),
        ("DD", true, Day),
        ("D", true, DayOfWeek),
        ("WW", true, WeekOfYear),
        ("W", true, WeekOfMonth),
        ("CC", true, Century),
        ("J", true, Julian),
        ("Q", true, Quarter),
        ("RM", false, Roman(Upper)),
        ("rm", false, Roman(Lower)),
        ("TZ", false, TimeZone(Upper)),
        ("tz", false, TimeZone(Lower)),
        ("OF", true, Offset),
    ]
}

fn starts_with(s: &str, p: &str, any_case: bool) -> bool {
    s.len() >= p.len()
        && s.is_char_boundary(p.len())
        && if any_case {
            s[..p.len()].eq_ignore_ascii_case(p)
        } else {
            &s[..p.len()] == p
        }
}

/// The template as literals and fields.
fn parse(template: &str) -> Vec<Item> {
    let table = patterns();
    let mut items = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        // Prefixes.
        let mut fill = false;
        let mut after = rest;
        loop {
            if starts_with(after, "FM", true) {
                fill = true;
                after = &after[2..];
            } else if starts_with(after, "FX", true) || starts_with(after, "TM", true) {
                after = &after[2..];
            } else {
                break;
            }
        }
        if let Some((p, _, pattern)) = table.iter().find(|(p, any, _)| starts_with(after, p, *any))
        {
            if !literal.is_empty() {
                items.push(Item::Literal(std::mem::take(&mut literal)));
            }
            after = &after[p.len()..];
            let ordinal = if after.starts_with("TH") {
                after = &after[2..];
                Some(true)
            } else if after.starts_with("th") {
                after = &after[2..];
                Some(false)
            } else {
                None
            };
            items.push(Item::Field {
                pattern: *pattern,
                fill,
                ordinal,
            });
            rest = after;
            continue;
        }
        if after.len() != rest.len() {
            // A lone prefix: PostgreSQL drops it.
            rest = after;
            continue;
        }
        let mut chars = rest.chars();
        let c = chars.next().expect("rest is not empty");
        match c {
            '"' => {
                // Quoted text, with \" inside.
                let mut s = chars.as_str();
                while let Some(ch) = s.chars().next() {
                    s = &s[ch.len_utf8()..];
                    match ch {
                        '"' => break,
                        '\\' => {
                            if let Some(next) = s.chars().next() {
                                literal.push(next);
                                s = &s[next.len_utf8()..];
                            }
                        }
                        ch => literal.push(ch),
                    }
                }
                rest = s;
            }
            '\\' => {
                let s = chars.as_str();
                match s.chars().next() {
                    Some(next) => {
                        literal.push(next);
                        rest = &s[next.len_utf8()..];
                    }
                    None => {
                        literal.push('\\');
                        rest = s;
                    }
                }
            }
            c => {
                literal.push(c);
                rest = chars.as_str();
            }
        }
    }
    if !literal.is_empty() {
        items.push(Item::Literal(literal));
    }
    items
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ROMAN: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

fn cased(s: &str, case: Case) -> String {
    match case {
        Case::Upper => s.to_uppercase(),
        Case::Capital => s.to_string(),
        Case::Lower => s.to_lowercase(),
    }
}

pub(crate) fn ordinal_suffix(n: i64, upper: bool) -> &'static str {
    let s = match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    };
    match (upper, s) {
        (false, s) => s,
        (true, "st") => "ST",
        (true, "nd") => "ND",
        (true, "rd") => "RD",
        (true, _) => "TH",
    }
}

/// `n` zero-padded to `width` digits (a minus sign first), unless `fill`.
fn number(n: i64, width: usize, fill: bool) -> String {
    if fill {
        n.to_string()
    } else if n < 0 {
        format!("-{:0width$}", -n, width = width)
    } else {
        format!("{n:0width$}")
    }
}

fn format(items: &[Item], at: &NaiveDateTime, with_tz: bool) -> String {
    use Pattern::*;
    let mut out = String::new();
    for item in items {
        let (pattern, fill, ordinal) = match item {
            Item::Literal(s) => {
                out.push_str(s);
                continue;
            }
            Item::Field {
                pattern,
                fill,
                ordinal,
            } => (*pattern, *fill, *ordinal),
        };
        let year = at.year() as i64;
        // Years before 1 AD: PostgreSQL counts 1 BC, 2 BC … (no year 0).
        let year_ce = if year <= 0 { 1 - year } else { year };
        let hour12 = match at.hour() % 12 {
            0 => 12,
            h => h as i64,
        };
        let (text, n): (String, Option<i64>) = match pattern {
            Hour24 => (number(at.hour() as i64, 2, fill), Some(at.hour() as i64)),
            Hour12 => (number(hour12, 2, fill), Some(hour12)),
            Minute => (
                number(at.minute() as i64, 2, fill),
                Some(at.minute() as i64),
            ),
            Second => (
                number(at.second() as i64, 2, fill),
                Some(at.second() as i64),
            ),
            Millis => {
                let ms = (at.nanosecond() / 1_000_000) as i64;
                (number(ms, 3, fill), Some(ms))
            }
            Micros => {
                let us = (at.nanosecond() / 1_000) as i64;
                (number(us, 6, fill), Some(us))
            }
            Fraction(d) => {
                let us = (at.nanosecond() / 1_000) as i64;
                let v = us / 10i64.pow(6 - d as u32);
                (number(v, d as usize, false), Some(v))
            }
            SecondsOfDay => {
                let s = at.num_seconds_from_midnight() as i64;
                (s.to_string(), Some(s))
            }
            Meridiem { dots, case } => {
                let pm = at.hour() >= 12;
                let s = match (pm, dots) {
                    (false, false) => "AM",
                    (true, false) => "PM",
                    (false, true) => "A.M.",
                    (true, true) => "P.M.",
                };
                (cased(s, case), None)
            }
            YearComma => {
                let s = number(year_ce, 4, fill);
                let split = s.len() - 3;
                (format!("{},{}", &s[..split], &s[split..]), Some(year_ce))
            }
            Year(d) => {
                let v = if d == 4 {
                    year_ce
                } else {
                    year_ce % 10i64.pow(d as u32)
                };
                (number(v, d as usize, fill), Some(v))
            }
            IsoYear(d) => {
                let iy = at.iso_week().year() as i64;
                let v = if d == 4 { iy } else { iy % 10i64.pow(d as u32) };
                (number(v, d as usize, fill), Some(v))
            }
            Era { dots, case } => {
                let s = match (year > 0, dots) {
                    (true, false) => "AD",
                    (false, false) => "BC",
                    (true, true) => "A.D.",
                    (false, true) => "B.C.",
                };
                (cased(s, case), None)
            }
            MonthName(case) => {
                let name = cased(MONTHS[at.month0() as usize], case);
                let s = if fill { name } else { format!("{name:<9}") };
                (s, None)
            }
            MonthAbbrev(case) => (cased(&MONTHS[at.month0() as usize][..3], case), None),
            Month => (number(at.month() as i64, 2, fill), Some(at.month() as i64)),
            DayName(case) => {
                let d = at.weekday().num_days_from_sunday() as usize;
                let name = cased(DAYS[d], case);
                let s = if fill { name } else { format!("{name:<9}") };
                (s, None)
            }
            DayAbbrev(case) => {
                let d = at.weekday().num_days_from_sunday() as usize;
                (cased(&DAYS[d][..3], case), None)
            }
            DayOfYear => (
                number(at.ordinal() as i64, 3, fill),
                Some(at.ordinal() as i64),
            ),
            IsoDayOfYear => {
                let w = at.iso_week().week() as i64;
                let v = (w - 1) * 7 + at.weekday().number_from_monday() as i64;
                (number(v, 3, fill), Some(v))
            }
            Day => (number(at.day() as i64, 2, fill), Some(at.day() as i64)),
            DayOfWeek => {
                let v = at.weekday().number_from_sunday() as i64;
                (v.to_string(), Some(v))
            }
            IsoDayOfWeek => {
                let v = at.weekday().number_from_monday() as i64;
                (v.to_string(), Some(v))
            }
            WeekOfMonth => {
                let v = (at.day() as i64 - 1) / 7 + 1;
                (v.to_string(), Some(v))
            }
            WeekOfYear => {
                let v = (at.ordinal() as i64 - 1) / 7 + 1;
                (number(v, 2, fill), Some(v))
            }
            IsoWeek => {
                let v = at.iso_week().week() as i64;
                (number(v, 2, fill), Some(v))
            }
            Century => {
                let c = if year > 0 {
                    (year - 1) / 100 + 1
                } else {
                    -((-year) / 100 + 1)
                };
                (number(c, 2, fill), Some(c))
            }
            Julian => {
                // Days since 4714-11-24 BC (proleptic Gregorian).
                let j = at.date().num_days_from_ce() as i64 + 1_721_425;
                (j.to_string(), Some(j))
            }
            Quarter => {
                let q = (at.month0() as i64) / 3 + 1;
                (q.to_string(), Some(q))
            }
            Roman(case) => {
                let r = ROMAN[at.month0() as usize];
                let s = cased(
                    r,
                    if case == Case::Lower {
                        Case::Lower
                    } else {
                        Case::Upper
                    },
                );
                (if fill { s } else { format!("{s:<4}") }, None)
            }
            TimeZone(case) => {
                let s = if with_tz { "UTC" } else { "" };
                (cased(s, case), None)
            }
            Offset => ("+00".to_string(), None),
        };
        out.push_str(&text);
        if let (Some(upper), Some(n)) = (ordinal, n) {
            out.push_str(ordinal_suffix(n, upper));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_micro_opt(h, mi, s, us)
            .unwrap()
    }

    fn fmt(t: &str, when: &NaiveDateTime) -> String {
        format(&parse(t), when, false)
    }

    /// Each expected value is what PostgreSQL 15 prints.
    #[test]
    fn templates_as_postgres() {
        let t = at(2024, 3, 5, 14, 7, 9, 123_456);
        let cases = [
            ("YYYY-MM", "2024-03"),
            ("YYYY-MM-DD HH24:MI:SS", "2024-03-05 14:07:09"),
            ("yyyy-mm-dd hh24:mi:ss", "2024-03-05 14:07:09"),
            ("HH12:MI AM", "02:07 PM"),
            ("FMHH12:MI am", "2:07 pm"),
            ("MS US FF2", "123 123456 12"),
            ("Month DD, YYYY", "March     05, 2024"),
            ("FMMonth FMDDth, YYYY", "March 5th, 2024"),
            ("MONTH|Mon|mon|MON", "MARCH    |Mar|mar|MAR"),
            ("Day Dy DY day", "Tuesday   Tue TUE tuesday  "),
            ("FMDay", "Tuesday"),
            ("D ID DDD IDDD", "3 2 065 065"),
            ("Q CC J", "1 21 2460375"),
            ("IYYY-IW WW W", "2024-10 10 1"),
            ("RM rm FMRM", "III  iii  III"),
            ("Y,YYY YYY YY Y", "2,024 024 24 4"),
            ("\"Quarter\" Q, \"YYYY\"", "Quarter 1, YYYY"),
            ("DDth DDTH", "05th 05TH"),
            ("SSSS", "50829"),
            ("AD A.D. bc", "AD A.D. ad"),
            // Patterns match inside words, as in PostgreSQL.
            ("%Y literal %", "%4 l4teral %"),
            ("TZ OF", " +00"),
            ("FMYYYY FMMM FMSS", "2024 3 9"),
        ];
        for (template, want) in cases {
            assert_eq!(fmt(template, &t), want, "{template}");
        }
        assert_eq!(fmt("HH12 AM", &at(2024, 1, 1, 0, 0, 0, 0)), "12 AM");
        assert_eq!(fmt("DDth", &at(2024, 1, 11, 0, 0, 0, 0)), "11th");
        assert_eq!(fmt("FMDDth", &at(2024, 1, 22, 0, 0, 0, 0)), "22nd");
        assert_eq!(fmt("IYYY-IW", &at(2021, 1, 1, 0, 0, 0, 0)), "2020-53");
        let tz = format(&parse("TZ tz OF"), &at(2024, 1, 1, 10, 0, 0, 0), true);
        assert_eq!(tz, "UTC utc +00");
    }
}

/// `to_timestamp(text, template)` (a timestamptz) and `to_date(text,
/// template)`: the text read by PostgreSQL's template patterns (year,
/// month by number or name, day, day of year, hours 12/24 with AM/PM,
/// minutes, seconds, fractions, BC). `to_timestamp(seconds)` is the epoch
/// form. Other patterns (ISO weeks, Julian days, time zones, …) are refused
/// with 0A000 naming them. Separators in the template match any
/// separator in the text, and spaces before a number are skipped, as in
/// PostgreSQL's default (non-FX) mode.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToTimestamp {
    date: bool,
    signature: Signature,
}

impl ToTimestamp {
    pub fn udf(date: bool) -> ScalarUDF {
        ScalarUDF::from(ToTimestamp {
            date,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

fn bad_input(m: String) -> DataFusionError {
    DataFusionError::External(Box::new(PlannerError::InvalidDatetime(m)))
}

/// Reads one of two markers (`P.M.`/`A.M.`, `B.C.`/`A.D.`), with or
/// without dots, in any case: whether it was the first.
fn marker(rest: &mut &str, first: &str, second: &str) -> Option<bool> {
    let t = rest.trim_start();
    let head = t.get(..4.min(t.len()))?.to_ascii_uppercase();
    let undotted = |m: &str| m.replace('.', "");
    for (m, is_first) in [(first, true), (second, false)] {
        for form in [m.to_string(), undotted(m)] {
            if head.starts_with(&form) {
                *rest = &t[form.len()..];
                return Some(is_first);
            }
        }
    }
    None
}

/// Reads `text` by `items`: the microseconds since the epoch it names.
fn read(items: &[Item], text: &str) -> Result<i64> {
    let bad = |why: &str| {
        bad_input(format!(
            "invalid value for template \"{why}\" in \"{text}\""
        ))
    };
    let mut rest = text;
    // PostgreSQL's year without a year pattern is 1 BC (year 0).
    let (mut year, mut month, mut day) = (0i64, 1i64, 1i64);
    let mut day_of_year: Option<i64> = None;
    let (mut hour, mut minute, mut second, mut micros) = (0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut bc = false;
    let digits = |rest: &mut &str, max: usize| -> Option<(i64, usize)> {
        *rest = rest.trim_start();
        let (neg, body) = match rest.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, *rest),
        };
        let n = body
            .chars()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        let v: i64 = body[..n].parse().ok()?;
        *rest = &body[n..];
        Some((if neg { -v } else { v }, n))
    };
    let name = |rest: &mut &str| -> String {
        *rest = rest.trim_start();
        let n = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let word = rest[..n].to_string();
        *rest = &rest[n..];
        word
    };
    for item in items {
        match item {
            Item::Literal(lit) => {
                for c in lit.chars() {
                    match rest.chars().next() {
                        Some(r) if r == c => rest = &rest[r.len_utf8()..],
                        Some(r) if !c.is_alphanumeric() && !r.is_alphanumeric() => {
                            rest = &rest[r.len_utf8()..]
                        }
                        _ if c.is_whitespace() => {}
                        _ => {}
                    }
                }
            }
            Item::Field {
                pattern, ordinal, ..
            } => {
                use Pattern::*;
                match pattern {
                    Year(w) => {
                        let (v, n) = digits(&mut rest, *w as usize).ok_or_else(|| bad("YYYY"))?;
                        year = match (*w, n) {
                            (2, 1..=2) | (1, 1) if v < 70 => 2000 + v,
                            (2, 1..=2) | (1, 1) => 1900 + v,
                            (3, 1..=3) => 2000 + v,
                            _ => v,
                        };
                    }
                    YearComma => {
                        let (a, _) = digits(&mut rest, 3).ok_or_else(|| bad("Y,YYY"))?;
                        rest = rest.strip_prefix(',').unwrap_or(rest);
                        let (b, _) = digits(&mut rest, 3).ok_or_else(|| bad("Y,YYY"))?;
                        year = a * 1000 + b;
                    }
                    Month => month = digits(&mut rest, 2).ok_or_else(|| bad("MM"))?.0,
                    MonthName(_) | MonthAbbrev(_) => {
                        let word = name(&mut rest);
                        month = crate::datetime_in::month_number(&word)
                            .ok_or_else(|| bad("Month"))? as i64;
                    }
                    Day => day = digits(&mut rest, 2).ok_or_else(|| bad("DD"))?.0,
                    DayOfYear => {
                        day_of_year = Some(digits(&mut rest, 3).ok_or_else(|| bad("DDD"))?.0)
                    }
                    DayName(_) | DayAbbrev(_) => {
                        name(&mut rest);
                    }
                    DayOfWeek | IsoDayOfWeek => {
                        digits(&mut rest, 1).ok_or_else(|| bad("D"))?;
                    }
                    Hour24 => hour = digits(&mut rest, 2).ok_or_else(|| bad("HH24"))?.0,
                    Hour12 => hour = digits(&mut rest, 2).ok_or_else(|| bad("HH12"))?.0,
                    Minute => minute = digits(&mut rest, 2).ok_or_else(|| bad("MI"))?.0,
                    Second => second = digits(&mut rest, 2).ok_or_else(|| bad("SS"))?.0,
                    SecondsOfDay => {
                        let (v, _) = digits(&mut rest, 5).ok_or_else(|| bad("SSSS"))?;
                        hour = v / 3600;
                        minute = v / 60 % 60;
                        second = v % 60;
                    }
                    Millis | Micros | Fraction(_) => {
                        let width = match pattern {
                            Millis => 3,
                            Micros => 6,
                            Fraction(n) => *n as usize,
                            _ => unreachable!("matched above"),
                        };
                        let (v, n) = digits(&mut rest, width).ok_or_else(|| bad("MS"))?;
                        // The digits are the fraction of the second.
                        micros = v * 10i64.pow(6 - n as u32);
                    }
                    Meridiem { .. } => {
                        pm = Some(marker(&mut rest, "P.M.", "A.M.").ok_or_else(|| bad("AM"))?)
                    }
                    Era { .. } => {
                        bc = marker(&mut rest, "B.C.", "A.D.").ok_or_else(|| bad("BC"))?
                    }
                    other => {
                        return Err(not_supported(format!(
                            "the template pattern {other:?} in to_timestamp/to_date"
                        )))
                    }
                }
                if ordinal.is_some() {
                    let t = rest.trim_start();
                    let n = t
                        .chars()
                        .take(2)
                        .take_while(|c| c.is_ascii_alphabetic())
                        .count();
                    rest = &t[n..];
                }
            }
        }
    }
    if let Some(is_pm) = pm {
        if !(1..=12).contains(&hour) {
            return Err(bad_input(format!(
                "hour \"{hour}\" is invalid for the 12-hour clock in \"{text}\""
            )));
        }
        hour = match (hour, is_pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    if bc {
        year = 1 - year;
    }
    let out_of_range = || {
        DataFusionError::External(Box::new(PlannerError::DatetimeOutOfRange(format!(
            "date/time field value out of range: \"{text}\""
        ))))
    };
    let date = match day_of_year {
        Some(d) => chrono::NaiveDate::from_yo_opt(year as i32, d as u32),
        None => chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32),
    }
    .ok_or_else(out_of_range)?;
    if hour > 24 || minute > 59 || second > 60 {
        return Err(out_of_range());
    }
    let midnight = NaiveDateTime::from(date).and_utc().timestamp_micros();
    Ok(midnight + ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        if self.date {
            "to_date"
        } else {
            "to_timestamp"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        match args {
            [n] if !self.date && (n.is_numeric() || n == &DataType::Null) => {
                Ok(vec![DataType::Float64])
            }
            [_, _] => Ok(vec![DataType::Utf8, DataType::Utf8]),
            _ => Err(DataFusionError::External(Box::new(
                PlannerError::UndefinedFunction(format!(
                    "function {}({}) does not exist",
                    self.name(),
                    args.iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ))),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(if self.date {
            DataType::Date32
        } else {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Date32Array, TimestampMicrosecondArray};
        use datafusion::arrow::datatypes::Float64Type;
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let values: Vec<Option<i64>> = if arrays.len() == 1 {
            arrays[0]
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(|s| (s * 1e6).round() as i64))
                .collect()
        } else {
            let (texts, templates) = (arrays[0].as_string::<i32>(), arrays[1].as_string::<i32>());
            let mut parsed: Option<(String, Vec<Item>)> = None;
            let mut out = Vec::with_capacity(texts.len());
            for i in 0..texts.len() {
                if texts.is_null(i) || templates.is_null(i) {
                    out.push(None);
                    continue;
                }
                let template = templates.value(i);
                if parsed.as_ref().is_none_or(|(t, _)| t != template) {
                    parsed = Some((template.to_string(), parse(template)));
                }
                let items = &parsed.as_ref().expect("just parsed").1;
                out.push(Some(read(items, texts.value(i))?));
            }
            out
        };
        let out: ArrayRef = if self.date {
            Arc::new(Date32Array::from(
                values
                    .into_iter()
                    .map(|v| v.map(|m| m.div_euclid(86_400_000_000) as i32))
                    .collect::<Vec<_>>(),
            ))
        } else {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("+00:00"))
        };
        crate::functions::columnar(out, scalar)
    }
}
