//! Typed round-trips through tokio-postgres for every supported type, in
//! binary format (extended protocol: binary parameters and binary results)
//! and in text format (simple protocol), plus statement description
//! (parameter and column types), prepare_typed, portal suspension and
//! SQLSTATE codes of common user errors.

mod common;

use std::error::Error as StdError;
use std::fmt::Debug;
use std::str::FromStr;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use common::*;
use rust_decimal::Decimal;
use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, FromSql, FromSqlOwned, IsNull, ToSql, Type};
use tokio_postgres::Client;

/// Postgres `interval` in its binary layout (tokio-postgres has no built-in type).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    months: i32,
    days: i32,
    micros: i64,
}

const fn iv(months: i32, days: i32, micros: i64) -> Interval {
    Interval {
        months,
        days,
        micros,
    }
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        if raw.len() != 16 {
            return Err(format!("interval must be 16 bytes, got {}", raw.len()).into());
        }
        Ok(Interval {
            micros: i64::from_be_bytes(raw[0..8].try_into().unwrap()),
            days: i32::from_be_bytes(raw[8..12].try_into().unwrap()),
            months: i32::from_be_bytes(raw[12..16].try_into().unwrap()),
        })
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_i64(self.micros);
        out.put_i32(self.days);
        out.put_i32(self.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

fn exact_text(expected: &str, got: &str) -> bool {
    expected == got
}

/// Round-trip `values` through a one-column table of `sql_type`:
/// binary in / binary out, binary in / text out, text in / binary out.
#[allow(clippy::too_many_arguments)]
async fn round_trip<T>(
    client: &Client,
    table: &str,
    sql_type: &str,
    ty: Type,
    values: &[Option<T>],
    texts: &[Option<&str>],
    same: impl Fn(&T, &T) -> bool,
    text_same: impl Fn(&str, &str) -> bool,
) where
    T: ToSql + Sync + FromSqlOwned + Debug,
{
    assert_eq!(
        values.len(),
        texts.len(),
        "test bug: values and texts differ in length"
    );
    let eq_opt = |a: &Option<T>, b: &Option<T>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(a, b),
        _ => false,
    };

    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int8 PRIMARY KEY, v {sql_type})"
        ))
        .await
        .unwrap_or_else(|e| panic!("CREATE TABLE with {sql_type}: {e:?}"));

    // Binary parameters; their types are inferred from the target columns.
    let ins = client
        .prepare(&format!("INSERT INTO {table} (id, v) VALUES ($1, $2)"))
        .await
        .unwrap();
    assert_eq!(
        ins.params(),
        &[Type::INT8, ty.clone()],
        "{sql_type}: INSERT parameter types"
    );
    for (i, v) in values.iter().enumerate() {
        let id = i as i64;
        let n = client
            .execute(&ins, &[&id, v])
            .await
            .unwrap_or_else(|e| panic!("{sql_type}: insert {v:?}: {e:?}"));
        assert_eq!(n, 1);
    }

    // Binary results.
    let sel = client
        .prepare(&format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .unwrap();
    assert_eq!(sel.columns()[0].name(), "id");
    assert_eq!(sel.columns()[1].name(), "v");
    assert_eq!(
        sel.columns()[1].type_(),
        &ty,
        "{sql_type}: result column type"
    );
    let rows = client.query(&sel, &[]).await.unwrap();
    assert_eq!(rows.len(), values.len(), "{sql_type}: row count");
    for (i, (row, expected)) in rows.iter().zip(values).enumerate() {
        assert_eq!(row.get::<_, i64>(0), i as i64);
        let got: Option<T> = row
            .try_get(1)
            .unwrap_or_else(|e| panic!("{sql_type}: decode binary value #{i}: {e:?}"));
        assert!(
            eq_opt(expected, &got),
            "{sql_type}: binary round trip #{i}: sent {expected:?}, got back {got:?}"
        );
    }

    // Text results (simple protocol).
    let text_rows = simple_rows(client, &format!("SELECT v FROM {table} ORDER BY id")).await;
    assert_eq!(text_rows.len(), texts.len(), "{sql_type}: text row count");
    for (i, (row, expected)) in text_rows.iter().zip(texts).enumerate() {
        let got = row[0].as_deref();
        let ok = match (expected, got) {
            (None, None) => true,
            (Some(e), Some(g)) => text_same(e, g),
            _ => false,
        };
        assert!(
            ok,
            "{sql_type}: text output #{i}: expected {expected:?}, got {got:?}"
        );
    }

    // Text input (literals in a simple query), read back in binary.
    let by_id = client
        .prepare(&format!("SELECT v FROM {table} WHERE id = $1"))
        .await
        .unwrap();
    assert_eq!(by_id.params(), &[Type::INT8]);
    for (i, (text, expected)) in texts.iter().zip(values).enumerate() {
        let id = 1000 + i as i64;
        let lit = match text {
            Some(t) => format!("CAST({} AS {sql_type})", sql_str(t)),
            None => "NULL".to_string(),
        };
        let n = simple_exec(
            client,
            &format!("INSERT INTO {table} (id, v) VALUES ({id}, {lit})"),
        )
        .await;
        assert_eq!(n, 1);
        let row = client.query_one(&by_id, &[&id]).await.unwrap();
        let got: Option<T> = row.try_get(0).unwrap_or_else(|e| {
            panic!("{sql_type}: decode value parsed from text {text:?}: {e:?}")
        });
        assert!(
            eq_opt(expected, &got),
            "{sql_type}: text literal {text:?} read back as {got:?}, expected {expected:?}"
        );
    }
}

#[tokio::test]
async fn bool_and_integers() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    round_trip(
        &c,
        "t_bool",
        "bool",
        Type::BOOL,
        &[Some(true), Some(false), None],
        &[Some("t"), Some("f"), None],
        |a, b| a == b,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_int2",
        "int2",
        Type::INT2,
        &[Some(0i16), Some(i16::MIN), Some(i16::MAX), Some(-1), None],
        &[Some("0"), Some("-32768"), Some("32767"), Some("-1"), None],
        |a, b| a == b,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_int4",
        "int4",
        Type::INT4,
        &[Some(0i32), Some(i32::MIN), Some(i32::MAX), Some(42), None],
        &[
            Some("0"),
            Some("-2147483648"),
            Some("2147483647"),
            Some("42"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_int8",
        "int8",
        Type::INT8,
        &[
            Some(0i64),
            Some(i64::MIN),
            Some(i64::MAX),
            Some(1 << 40),
            None,
        ],
        &[
            Some("0"),
            Some("-9223372036854775808"),
            Some("9223372036854775807"),
            Some("1099511627776"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
}

#[tokio::test]
async fn floats() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    let same32 = |a: &f32, b: &f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let same64 = |a: &f64, b: &f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    // Text forms are what PostgreSQL 15 prints (shortest exact, extra_float_digits = 1).
    round_trip(
        &c,
        "t_float4",
        "float4",
        Type::FLOAT4,
        &[
            Some(0.0f32),
            Some(1.5),
            Some(-0.25),
            Some(f32::MAX),
            Some(f32::INFINITY),
            Some(f32::NEG_INFINITY),
            Some(f32::NAN),
            None,
        ],
        &[
            Some("0"),
            Some("1.5"),
            Some("-0.25"),
            Some("3.4028235e+38"),
            Some("Infinity"),
            Some("-Infinity"),
            Some("NaN"),
            None,
        ],
        same32,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_float8",
        "float8",
        Type::FLOAT8,
        &[
            Some(0.0f64),
            Some(0.1),
            Some(-2.5),
            Some(1e20),
            Some(f64::MAX),
            Some(f64::MIN_POSITIVE),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(f64::NAN),
            None,
        ],
        &[
            Some("0"),
            Some("0.1"),
            Some("-2.5"),
            Some("1e+20"),
            Some("1.7976931348623157e+308"),
            Some("2.2250738585072014e-308"),
            Some("Infinity"),
            Some("-Infinity"),
            Some("NaN"),
            None,
        ],
        same64,
        exact_text,
    )
    .await;
}

#[tokio::test]
async fn numeric_with_scale() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    let d = |s: &str| Decimal::from_str(s).unwrap();
    // numeric(20,4) values come back with scale 4, as Postgres pads them.
    round_trip(
        &c,
        "t_numeric",
        "numeric(20,4)",
        Type::NUMERIC,
        &[
            Some(d("0")),
            Some(d("1.5")),
            Some(d("12345.6789")),
            Some(d("-99999999.9999")),
            Some(d("1234567890123456.7891")),
            Some(d("0.0001")),
            Some(d("-0.5")),
            None,
        ],
        &[
            Some("0.0000"),
            Some("1.5000"),
            Some("12345.6789"),
            Some("-99999999.9999"),
            Some("1234567890123456.7891"),
            Some("0.0001"),
            Some("-0.5000"),
            None,
        ],
        |expected, got| expected == got && got.scale() == 4,
        exact_text,
    )
    .await;

    // Values with more fraction digits are rounded (half away from zero) to the scale.
    c.batch_execute("CREATE TABLE t_round (id int8 PRIMARY KEY, v numeric(10,2))")
        .await
        .unwrap();
    let ins = c
        .prepare("INSERT INTO t_round VALUES ($1, $2)")
        .await
        .unwrap();
    for (id, v) in [(1i64, "1.234"), (2, "1.235"), (3, "-1.235"), (4, "7")] {
        c.execute(&ins, &[&id, &d(v)]).await.unwrap();
    }
    let rows = simple_rows(&c, "SELECT v FROM t_round ORDER BY id").await;
    let got: Vec<_> = rows.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(got, vec!["1.23", "1.24", "-1.24", "7.00"]);

    // A value that does not fit numeric(10,2) is an error (22003), not a silent wrap.
    let err = c
        .execute(&ins, &[&5i64, &d("123456789.5")])
        .await
        .expect_err("123456789.5 does not fit numeric(10,2)");
    assert_eq!(
        err.code(),
        Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE),
        "{err:?}"
    );
    let n: i64 = c
        .query_one("SELECT count(*) FROM t_round", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

#[tokio::test]
async fn text_and_varchar() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    let long = "x".repeat(10_000);
    let tricky = "quote ' double \" backslash \\ tab \t newline \n end";
    let unicode = "héllo wörld ✓ 日本語 🦀";
    round_trip(
        &c,
        "t_text",
        "text",
        Type::TEXT,
        &[
            Some(String::new()),
            Some("hello".to_string()),
            Some(unicode.to_string()),
            Some(tricky.to_string()),
            Some(long.clone()),
            Some("NULL".to_string()),
            None,
        ],
        &[
            Some(""),
            Some("hello"),
            Some(unicode),
            Some(tricky),
            Some(long.as_str()),
            Some("NULL"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_varchar",
        "varchar(50)",
        Type::VARCHAR,
        &[
            Some(String::new()),
            Some("abc".to_string()),
            Some("ünïcødé 🦀".to_string()),
            None,
        ],
        &[Some(""), Some("abc"), Some("ünïcødé 🦀"), None],
        |a, b| a == b,
        exact_text,
    )
    .await;
}

#[tokio::test]
async fn bytea() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    let all: Vec<u8> = (0..=255u8).collect();
    let all_hex: String = std::iter::once("\\x".to_string())
        .chain(all.iter().map(|b| format!("{b:02x}")))
        .collect();
    round_trip(
        &c,
        "t_bytea",
        "bytea",
        Type::BYTEA,
        &[
            Some(vec![]),
            Some(vec![0u8, 1, 2, 255, 0]),
            Some(all.clone()),
            None,
        ],
        &[
            Some("\\x"),
            Some("\\x000102ff00"),
            Some(all_hex.as_str()),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn time(h: u32, mi: u32, s: u32, us: u32) -> NaiveTime {
    NaiveTime::from_hms_micro_opt(h, mi, s, us).unwrap()
}

fn ts(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> NaiveDateTime {
    date(y, m, d).and_time(time(h, mi, s, us))
}

/// Parse Postgres' timestamptz text (`2000-01-01 00:00:00.5+05:30`) to an instant.
fn parse_tstz(s: &str) -> Option<DateTime<Utc>> {
    let idx = s.get(10..)?.rfind(['+', '-'])? + 10;
    let (dt, off) = s.split_at(idx);
    let naive = NaiveDateTime::parse_from_str(dt, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let sign: i64 = if off.starts_with('-') { -1 } else { 1 };
    let parts: Vec<i64> = off[1..]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let secs = parts.first()? * 3600 + parts.get(1).unwrap_or(&0) * 60 + parts.get(2).unwrap_or(&0);
    Some(Utc.from_utc_datetime(&(naive - chrono::Duration::seconds(sign * secs))))
}

#[tokio::test]
async fn dates_and_times() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    round_trip(
        &c,
        "t_date",
        "date",
        Type::DATE,
        &[
            Some(date(2024, 2, 29)),
            Some(date(1969, 12, 31)),
            Some(date(1970, 1, 1)),
            Some(date(2000, 1, 1)),
            Some(date(1, 1, 1)),
            Some(date(9999, 12, 31)),
            Some(date(1900, 3, 1)),
            None,
        ],
        &[
            Some("2024-02-29"),
            Some("1969-12-31"),
            Some("1970-01-01"),
            Some("2000-01-01"),
            Some("0001-01-01"),
            Some("9999-12-31"),
            Some("1900-03-01"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
    round_trip(
        &c,
        "t_time",
        "time",
        Type::TIME,
        &[
            Some(time(0, 0, 0, 0)),
            Some(time(12, 34, 56, 500_000)),
            Some(time(23, 59, 59, 999_999)),
            Some(time(0, 0, 0, 1)),
            None,
        ],
        &[
            Some("00:00:00"),
            Some("12:34:56.5"),
            Some("23:59:59.999999"),
            Some("00:00:00.000001"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
    let stamps = [
        ts(1969, 7, 20, 20, 17, 40, 0),
        ts(1900, 1, 1, 0, 0, 0, 1),
        ts(1960, 6, 15, 12, 0, 0, 123_456),
        ts(1970, 1, 1, 0, 0, 0, 0),
        ts(2000, 1, 1, 0, 0, 0, 0),
        ts(2038, 1, 19, 3, 14, 8, 0),
        ts(1, 1, 1, 0, 0, 0, 0),
        ts(9999, 12, 31, 23, 59, 59, 999_999),
    ];
    let stamp_texts = [
        "1969-07-20 20:17:40",
        "1900-01-01 00:00:00.000001",
        "1960-06-15 12:00:00.123456",
        "1970-01-01 00:00:00",
        "2000-01-01 00:00:00",
        "2038-01-19 03:14:08",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
    ];
    let mut values: Vec<Option<NaiveDateTime>> = stamps.iter().copied().map(Some).collect();
    values.push(None);
    let mut texts: Vec<Option<&str>> = stamp_texts.iter().copied().map(Some).collect();
    texts.push(None);
    round_trip(
        &c,
        "t_timestamp",
        "timestamp",
        Type::TIMESTAMP,
        &values,
        &texts,
        |a, b| a == b,
        exact_text,
    )
    .await;

    // timestamptz: the instant must survive; the text form is in the session
    // time zone, so it is compared as an instant (with its +HH offset).
    let mut values: Vec<Option<DateTime<Utc>>> = stamps
        .iter()
        .map(|t| Some(Utc.from_utc_datetime(t)))
        .collect();
    values.push(None);
    let tz_texts: Vec<String> = stamp_texts.iter().map(|t| format!("{t}+00")).collect();
    let mut texts: Vec<Option<&str>> = tz_texts.iter().map(|s| Some(s.as_str())).collect();
    texts.push(None);
    round_trip(
        &c,
        "t_timestamptz",
        "timestamptz",
        Type::TIMESTAMPTZ,
        &values,
        &texts,
        |a, b| a == b,
        |expected, got| match (parse_tstz(expected), parse_tstz(got)) {
            (Some(e), Some(g)) => e == g,
            _ => false,
        },
    )
    .await;
}

#[tokio::test]
async fn intervals() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    round_trip(
        &c,
        "t_interval",
        "interval",
        Type::INTERVAL,
        &[
            Some(iv(14, 3, 4 * 3_600_000_000 + 5 * 60_000_000 + 6_789_000)),
            Some(iv(-1, -2, -1_000_000)),
            Some(iv(0, 0, 0)),
            Some(iv(0, 0, 1)),
            Some(iv(0, 0, 100 * 3_600_000_000)),
            Some(iv(-36, 0, 0)),
            Some(iv(0, 1, -1_000_000)),
            None,
        ],
        &[
            Some("1 year 2 mons 3 days 04:05:06.789"),
            Some("-1 mons -2 days -00:00:01"),
            Some("00:00:00"),
            Some("00:00:00.000001"),
            Some("100:00:00"),
            Some("-3 years"),
            Some("1 day -00:00:01"),
            None,
        ],
        |a, b| a == b,
        exact_text,
    )
    .await;
}

#[tokio::test]
async fn jsonb() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    let values = [
        Some(json!({"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}})),
        Some(json!({})),
        Some(json!([1, "two", 3.5])),
        Some(json!("just a string")),
        Some(json!({"ünï": "🦀", "nested": {"deep": [[]]}})),
        Some(serde_json::Value::Null), // JSON null, not SQL NULL
        Some(json!({"big": 9007199254740993i64, "neg": -0.5, "esc": "q\"\\\n"})),
        None,
    ];
    // Postgres' canonical jsonb text; compared as JSON values, not as bytes.
    let texts = [
        Some(r#"{"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}}"#),
        Some("{}"),
        Some(r#"[1, "two", 3.5]"#),
        Some(r#""just a string""#),
        Some(r#"{"ünï": "🦀", "nested": {"deep": [[]]}}"#),
        Some("null"),
        Some(r#"{"big": 9007199254740993, "esc": "q\"\\\n", "neg": -0.5}"#),
        None,
    ];
    round_trip(
        &c,
        "t_jsonb",
        "jsonb",
        Type::JSONB,
        &values,
        &texts,
        |a, b| a == b,
        |expected, got| {
            let e: serde_json::Value = serde_json::from_str(expected).unwrap();
            match serde_json::from_str::<serde_json::Value>(got) {
                Ok(g) => e == g,
                Err(_) => false,
            }
        },
    )
    .await;
}

const ALL_TYPES_DDL: &str = "CREATE TABLE all_types (
    id int8 PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(12,3),
    t text, vc varchar(20), by bytea, d date, tm time, ts timestamp, tstz timestamptz,
    iv interval, j jsonb
)";

fn all_types_expected() -> Vec<(&'static str, Type)> {
    vec![
        ("id", Type::INT8),
        ("b", Type::BOOL),
        ("i2", Type::INT2),
        ("i4", Type::INT4),
        ("i8", Type::INT8),
        ("f4", Type::FLOAT4),
        ("f8", Type::FLOAT8),
        ("n", Type::NUMERIC),
        ("t", Type::TEXT),
        ("vc", Type::VARCHAR),
        ("by", Type::BYTEA),
        ("d", Type::DATE),
        ("tm", Type::TIME),
        ("ts", Type::TIMESTAMP),
        ("tstz", Type::TIMESTAMPTZ),
        ("iv", Type::INTERVAL),
        ("j", Type::JSONB),
    ]
}

#[tokio::test]
async fn all_types_in_one_row_and_all_nulls() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute(ALL_TYPES_DDL).await.unwrap();

    let expected = all_types_expected();
    let placeholders: Vec<String> = (1..=expected.len()).map(|i| format!("${i}")).collect();
    let ins = c
        .prepare(&format!(
            "INSERT INTO all_types VALUES ({})",
            placeholders.join(", ")
        ))
        .await
        .unwrap();
    let want: Vec<Type> = expected.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(
        ins.params(),
        want.as_slice(),
        "INSERT parameter types for every column"
    );

    let n = Decimal::from_str("-123456789.125").unwrap();
    let when = ts(1955, 11, 5, 6, 15, 0, 250_000);
    let tstz = Utc.from_utc_datetime(&ts(1999, 12, 31, 23, 59, 59, 999_999));
    let j = json!({"k": [1, 2, {"x": null}]});
    c.execute(
        &ins,
        &[
            &1i64,
            &true,
            &-2i16,
            &-4i32,
            &-8i64,
            &-1.25f32,
            &6.5e-7f64,
            &n,
            &"text ✓",
            &"vc",
            &vec![0xdeu8, 0xad, 0xbe, 0xef],
            &date(1955, 11, 5),
            &time(6, 15, 0, 250_000),
            &when,
            &tstz,
            &iv(1, -1, 1),
            &j,
        ],
    )
    .await
    .unwrap();
    // All NULLs except the key.
    c.execute("INSERT INTO all_types (id) VALUES ($1)", &[&2i64])
        .await
        .unwrap();

    let sel = c
        .prepare("SELECT * FROM all_types ORDER BY id")
        .await
        .unwrap();
    let got: Vec<(String, Type)> = sel
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.type_().clone()))
        .collect();
    let want: Vec<(String, Type)> = expected
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    assert_eq!(got, want, "result column names and types of SELECT *");

    let rows = c.query(&sel, &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.get::<_, i64>("id"), 1);
    assert!(r.get::<_, bool>("b"));
    assert_eq!(r.get::<_, i16>("i2"), -2);
    assert_eq!(r.get::<_, i32>("i4"), -4);
    assert_eq!(r.get::<_, i64>("i8"), -8);
    assert_eq!(r.get::<_, f32>("f4"), -1.25);
    assert_eq!(r.get::<_, f64>("f8"), 6.5e-7);
    let got_n: Decimal = r.get("n");
    assert_eq!(got_n, n);
    assert_eq!(got_n.scale(), 3);
    assert_eq!(r.get::<_, String>("t"), "text ✓");
    assert_eq!(r.get::<_, String>("vc"), "vc");
    assert_eq!(r.get::<_, Vec<u8>>("by"), vec![0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(r.get::<_, NaiveDate>("d"), date(1955, 11, 5));
    assert_eq!(r.get::<_, NaiveTime>("tm"), time(6, 15, 0, 250_000));
    assert_eq!(r.get::<_, NaiveDateTime>("ts"), when);
    assert_eq!(r.get::<_, DateTime<Utc>>("tstz"), tstz);
    assert_eq!(r.get::<_, Interval>("iv"), iv(1, -1, 1));
    assert_eq!(r.get::<_, serde_json::Value>("j"), j);

    let r = &rows[1];
    assert_eq!(r.get::<_, i64>("id"), 2);
    assert_eq!(r.get::<_, Option<bool>>("b"), None);
    assert_eq!(r.get::<_, Option<i16>>("i2"), None);
    assert_eq!(r.get::<_, Option<i32>>("i4"), None);
    assert_eq!(r.get::<_, Option<i64>>("i8"), None);
    assert_eq!(r.get::<_, Option<f32>>("f4"), None);
    assert_eq!(r.get::<_, Option<f64>>("f8"), None);
    assert_eq!(r.get::<_, Option<Decimal>>("n"), None);
    assert_eq!(r.get::<_, Option<String>>("t"), None);
    assert_eq!(r.get::<_, Option<String>>("vc"), None);
    assert_eq!(r.get::<_, Option<Vec<u8>>>("by"), None);
    assert_eq!(r.get::<_, Option<NaiveDate>>("d"), None);
    assert_eq!(r.get::<_, Option<NaiveTime>>("tm"), None);
    assert_eq!(r.get::<_, Option<NaiveDateTime>>("ts"), None);
    assert_eq!(r.get::<_, Option<DateTime<Utc>>>("tstz"), None);
    assert_eq!(r.get::<_, Option<Interval>>("iv"), None);
    assert_eq!(r.get::<_, Option<serde_json::Value>>("j"), None);

    // Text format of the same two rows.
    let text = simple_rows(&c, "SELECT * FROM all_types ORDER BY id").await;
    assert_eq!(text.len(), 2);
    let row1: Vec<Option<&str>> = text[0].iter().map(|v| v.as_deref()).collect();
    assert_eq!(
        &row1[..14],
        &[
            Some("1"),
            Some("t"),
            Some("-2"),
            Some("-4"),
            Some("-8"),
            Some("-1.25"),
            Some("6.5e-07"),
            Some("-123456789.125"),
            Some("text ✓"),
            Some("vc"),
            Some("\\xdeadbeef"),
            Some("1955-11-05"),
            Some("06:15:00.25"),
            Some("1955-11-05 06:15:00.25"),
        ][..]
    );
    assert_eq!(
        parse_tstz(row1[14].unwrap()),
        Some(tstz),
        "tstz text {:?}",
        row1[14]
    );
    assert_eq!(row1[15], Some("1 mon -1 days +00:00:00.000001"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(row1[16].unwrap()).unwrap(),
        j
    );
    assert_eq!(text[1][0].as_deref(), Some("2"));
    assert!(
        text[1][1..].iter().all(Option::is_none),
        "row 2 should be NULL: {:?}",
        text[1]
    );

    // Aggregate result types.
    let st = c
        .prepare("SELECT count(*) AS n FROM all_types")
        .await
        .unwrap();
    assert_eq!(st.columns()[0].type_(), &Type::INT8);
    assert_eq!(st.columns()[0].name(), "n");
    let n: i64 = c.query_one(&st, &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn parameter_types_are_inferred() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE people (id int8 PRIMARY KEY, name text NOT NULL, age int4, score float8, born date)",
    )
    .await
    .unwrap();

    let st = c
        .prepare("SELECT * FROM people WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::INT8]);
    let cols: Vec<(&str, &Type)> = st.columns().iter().map(|c| (c.name(), c.type_())).collect();
    assert_eq!(
        cols,
        vec![
            ("id", &Type::INT8),
            ("name", &Type::TEXT),
            ("age", &Type::INT4),
            ("score", &Type::FLOAT8),
            ("born", &Type::DATE)
        ]
    );

    let ins = c
        .prepare("INSERT INTO people (id, name, age, score, born) VALUES ($1, $2, $3, $4, $5)")
        .await
        .unwrap();
    assert_eq!(
        ins.params(),
        &[Type::INT8, Type::TEXT, Type::INT4, Type::FLOAT8, Type::DATE]
    );
    assert!(
        ins.columns().is_empty(),
        "INSERT without RETURNING has no result columns"
    );
    for i in 1..=10i64 {
        let name = format!("p{i}");
        let age = 20 + i as i32;
        let score = i as f64 / 4.0;
        let born = date(1990, 1, i as u32);
        c.execute(&ins, &[&i, &name, &age, &score, &born])
            .await
            .unwrap();
    }

    let row = c.query_one(&st, &[&7i64]).await.unwrap();
    assert_eq!(row.get::<_, String>("name"), "p7");
    assert_eq!(row.get::<_, Option<i32>>("age"), Some(27));

    let st = c
        .prepare("SELECT name FROM people WHERE age > $1 AND score < $2 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::INT4, Type::FLOAT8]);
    let names: Vec<String> = c
        .query(&st, &[&24i32, &2.0f64])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, vec!["p5", "p6", "p7"]);

    let st = c
        .prepare("UPDATE people SET name = $1 WHERE id = $2")
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::TEXT, Type::INT8]);
    assert_eq!(c.execute(&st, &[&"renamed", &3i64]).await.unwrap(), 1);

    let st = c
        .prepare("DELETE FROM people WHERE born < $1")
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::DATE]);
    assert_eq!(c.execute(&st, &[&date(1990, 1, 3)]).await.unwrap(), 2);

    let st = c
        .prepare("SELECT id FROM people WHERE name = $1 OR id IN ($2, $3) ORDER BY id")
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::TEXT, Type::INT8, Type::INT8]);
    let ids: Vec<i64> = c
        .query(&st, &[&"renamed", &9i64, &1i64])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3, 9], "id 1 was deleted");
}

#[tokio::test]
async fn prepare_typed_uses_declared_types() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE pt (id int8 PRIMARY KEY, name text, age int4)")
        .await
        .unwrap();

    let ins = c
        .prepare_typed(
            "INSERT INTO pt (id, name, age) VALUES ($1, $2, $3)",
            &[Type::INT8, Type::TEXT, Type::INT4],
        )
        .await
        .unwrap();
    assert_eq!(ins.params(), &[Type::INT8, Type::TEXT, Type::INT4]);
    for i in 1..=5i64 {
        c.execute(&ins, &[&i, &format!("n{i}"), &(i as i32 * 10)])
            .await
            .unwrap();
    }

    // A declared type different from the column's (int8 parameter vs int4 column) is honoured.
    let st = c
        .prepare_typed(
            "SELECT id FROM pt WHERE age >= $1 ORDER BY id",
            &[Type::INT8],
        )
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::INT8]);
    let ids: Vec<i64> = c
        .query(&st, &[&30i64])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![3, 4, 5]);

    // Fewer declared types than parameters: the rest are inferred.
    let st = c
        .prepare_typed(
            "SELECT name FROM pt WHERE id = $1 AND age = $2",
            &[Type::INT8],
        )
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::INT8, Type::INT4]);
    let r = c.query_one(&st, &[&2i64, &20i32]).await.unwrap();
    assert_eq!(r.get::<_, String>(0), "n2");

    // A declared text parameter compared with a text column.
    let st = c
        .prepare_typed("SELECT id FROM pt WHERE name = $1", &[Type::TEXT])
        .await
        .unwrap();
    assert_eq!(st.params(), &[Type::TEXT]);
    let r = c.query_one(&st, &[&"n4"]).await.unwrap();
    assert_eq!(r.get::<_, i64>(0), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_suspension_returns_batches() {
    let server = Server::start(FRESHET_BIN);
    let mut c = server.connect().await;
    c.batch_execute("CREATE TABLE seq (id int8 PRIMARY KEY, label text)")
        .await
        .unwrap();
    let values: Vec<String> = (1..=35).map(|i| format!("({i}, 'row {i}')")).collect();
    assert_eq!(
        simple_exec(&c, &format!("INSERT INTO seq VALUES {}", values.join(", "))).await,
        35
    );

    let tx = c.transaction().await.unwrap();

    let portal = tx
        .bind("SELECT id, label FROM seq ORDER BY id", &[])
        .await
        .unwrap();
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 10).await.unwrap();
        sizes.push(rows.len());
        for r in &rows {
            let id: i64 = r.get(0);
            assert_eq!(r.get::<_, String>(1), format!("row {id}"));
            ids.push(id);
        }
        if rows.len() < 10 || sizes.len() > 10 {
            break;
        }
    }
    assert_eq!(
        sizes,
        vec![10, 10, 10, 5],
        "batch sizes of a 35-row portal fetched 10 at a time"
    );
    assert_eq!(ids, (1..=35).collect::<Vec<i64>>());
    // An exhausted portal returns no more rows.
    assert!(tx.query_portal(&portal, 10).await.unwrap().is_empty());

    // With a parameter, and an exact multiple of the batch size.
    let portal = tx
        .bind("SELECT id FROM seq WHERE id > $1 ORDER BY id", &[&15i64])
        .await
        .unwrap();
    let b1: Vec<i64> = tx
        .query_portal(&portal, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let b2: Vec<i64> = tx
        .query_portal(&portal, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let b3 = tx.query_portal(&portal, 10).await.unwrap();
    assert_eq!(b1, (16..=25).collect::<Vec<i64>>());
    assert_eq!(b2, (26..=35).collect::<Vec<i64>>());
    assert!(
        b3.is_empty(),
        "third batch of 20 rows should be empty, got {}",
        b3.len()
    );

    // Two portals open at once, fetched alternately.
    let p1 = tx
        .bind("SELECT id FROM seq WHERE id <= $1 ORDER BY id", &[&12i64])
        .await
        .unwrap();
    let p2 = tx
        .bind(
            "SELECT id FROM seq WHERE id > $1 ORDER BY id DESC",
            &[&30i64],
        )
        .await
        .unwrap();
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    for _ in 0..4 {
        got1.extend(
            tx.query_portal(&p1, 3)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0)),
        );
        got2.extend(
            tx.query_portal(&p2, 2)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, i64>(0)),
        );
    }
    assert_eq!(got1, (1..=12).collect::<Vec<i64>>());
    assert_eq!(got2, vec![35, 34, 33, 32, 31]);

    tx.commit().await.unwrap();
    // The session is usable after the transaction.
    assert_eq!(simple_scalar(&c, "SELECT 1").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn errors_have_sqlstates_and_keep_the_session_usable() {
    let server = Server::start(FRESHET_BIN);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE e (id int8 PRIMARY KEY, n int4)")
        .await
        .unwrap();

    let err = c
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    assert_eq!(c.query_one("SELECT 1", &[]).await.unwrap().len(), 1);

    let err = c.simple_query("SELEC 1").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR), "{err:?}");
    assert_eq!(simple_scalar(&c, "SELECT 1").await.as_deref(), Some("1"));

    let err = c.prepare("SELECT FROM WHERE").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR), "{err:?}");

    let err = c
        .simple_query("INSERT INTO e VALUES ('abc', 1)")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{err:?}"
    );

    let err = c
        .query("SELECT CAST('12x' AS int4)", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_TEXT_REPRESENTATION),
        "{err:?}"
    );

    let err = c
        .simple_query("SELECT no_such_column FROM e")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_COLUMN), "{err:?}");

    // Errors inside an extended-protocol pipeline do not poison later statements.
    c.execute("INSERT INTO e VALUES ($1, $2)", &[&1i64, &10i32])
        .await
        .unwrap();
    let err = c
        .execute("INSERT INTO e VALUES ($1, $2)", &[&1i64, &11i32])
        .await
        .expect_err("duplicate primary key");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
    let r = c
        .query_one("SELECT n FROM e WHERE id = $1", &[&1i64])
        .await
        .unwrap();
    assert_eq!(
        r.get::<_, Option<i32>>(0),
        Some(10),
        "the failed insert must not overwrite the row"
    );

    let err = c
        .simple_query("CREATE TABLE e (id int8 PRIMARY KEY)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DUPLICATE_TABLE), "{err:?}");
    assert_eq!(
        simple_scalar(&c, "SELECT count(*) FROM e").await.as_deref(),
        Some("1")
    );
}
