//! Freshet's test kit: the SQL logic test runner, the test-server harness and
//! the seeded random number generator, shared by the integration tests of
//! `freshet-server` (slt files, the IVM oracle, crash tests) and by
//! `freshet-bench`.
//!
//! The `.slt` files under `sqllogictest/slt/<feature>/` are the contract of
//! Freshet's SQL surface. They are plain [sqllogictest] files (`statement ok`,
//! `statement error <regex>`, `query ITR rowsort`, `----`), so the
//! `sqllogictest` CLI can run them too. `server/tests/slt.rs` runs every file
//! against a fresh `freshet` process over the real wire protocol, once with
//! the simple query protocol and once with the extended (prepared
//! statement) protocol.
//!
//! The pieces:
//!
//! * [`harness::Server`]: starts the real `freshet` binary on a free
//!   loopback port with a fresh, temporary data directory; kills it
//!   (SIGKILL) or stops it (SIGTERM), restarts it on the same directory.
//! * [`rng::Rng`]: SplitMix64, seeded, the same sequence on every machine.
//! * [`SimpleProtocolDb`] and [`ExtendedProtocolDb`]: [`sqllogictest::AsyncDB`]
//!   implementations on `tokio-postgres`. Both print values the same way, as
//!   Postgres' text output format with two sqllogictest conventions:
//!   SQL `NULL` prints as `NULL` and the empty string as `(empty)`. The
//!   simple protocol gets text from the server; the extended protocol gets
//!   binary values and [`binary_to_text`] renders them as Postgres would
//!   (`t`/`f`, `\x…` bytea, `2024-01-02 03:04:05+00` timestamptz, intervals
//!   like `1 day 02:00:00`, …), so one `.slt` file passes under both.
//! * [`run_slt_file`]: runs one file with a chosen [`Protocol`]. `onlyif
//!   freshet` / `skipif freshet` select records by engine ([`ENGINE_NAME`],
//!   or another name through [`RunOptions`]); `onlyif simple` / `onlyif
//!   extended` by protocol.
//!
//! Column type letters in `query` records are not checked (sqllogictest's
//! `default_column_validator`): write `I` for integers, `R` for
//! floats/numerics and `T` for everything else, as documentation.
//!
//! [sqllogictest]: https://www.sqlite.org/sqllogictest/doc/trunk/about.wiki

pub mod broker;
pub mod harness;
pub mod rng;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, MakeConnection, Runner};
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long [`connect`] waits for the server to finish the startup exchange.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection string for a server at `addr` (database `freshet`, user
/// `freshet`, no password).
pub fn connection_string_for(addr: SocketAddr) -> String {
    format!(
        "host={} port={} user=freshet dbname=freshet",
        addr.ip(),
        addr.port()
    )
}

/// Connects with tokio-postgres (no TLS) and spawns the connection task on
/// the current runtime. Gives up after [`CONNECT_TIMEOUT`] (a server that
/// accepts the socket but never answers the startup message would
/// otherwise hang the caller).
pub async fn connect(conn_str: &str) -> Result<(Client, tokio::task::JoinHandle<()>), SqlError> {
    let (client, connection) =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(conn_str, NoTls)).await
        {
            Ok(result) => result?,
            Err(_) => {
                return Err(SqlError::Harness(format!(
                    "no answer to the startup message within {CONNECT_TIMEOUT:?} ({conn_str})"
                )))
            }
        };
    let handle = tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    Ok((client, handle))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// The error of the sqllogictest databases. Its `Display` is what
/// `statement error <regex>` is matched against:
/// `db error: ERROR: <message> (SQLSTATE <code>)`, then `DETAIL:` and `HINT:`
/// lines if the server sent them. Regexes in `.slt` files should match the
/// message only, so that other runners (the `sqllogictest` CLI) agree.
#[derive(Debug)]
pub enum SqlError {
    /// An error from tokio-postgres (from the server or the connection).
    Postgres(tokio_postgres::Error),
    /// A failure inside the harness (a value it could not render, a closed
    /// connection).
    Harness(String),
}

impl SqlError {
    /// The SQLSTATE code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SqlError::Postgres(e) => e.code().map(|c| c.code()),
            SqlError::Harness(_) => None,
        }
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlError::Postgres(e) => {
                if let Some(db) = e.as_db_error() {
                    write!(
                        f,
                        "db error: {}: {} (SQLSTATE {})",
                        db.severity(),
                        db.message(),
                        db.code().code()
                    )?;
                    if let Some(detail) = db.detail() {
                        write!(f, "\nDETAIL: {detail}")?;
                    }
                    if let Some(hint) = db.hint() {
                        write!(f, "\nHINT: {hint}")?;
                    }
                    Ok(())
                } else {
                    write!(f, "{e}")?;
                    let mut source = std::error::Error::source(e);
                    while let Some(s) = source {
                        write!(f, ": {s}")?;
                        source = s.source();
                    }
                    Ok(())
                }
            }
            SqlError::Harness(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for SqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SqlError::Postgres(e) => Some(e),
            SqlError::Harness(_) => None,
        }
    }
}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> Self {
        SqlError::Postgres(e)
    }
}

// ---------------------------------------------------------------------------
// sqllogictest databases
// ---------------------------------------------------------------------------

/// Which wire protocol a test run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `Query` messages (tokio-postgres `simple_query`): text results.
    Simple,
    /// `Parse`/`Describe`/`Bind`/`Execute` (tokio-postgres `prepare`,
    /// `query`, `execute`): binary results converted to text here.
    Extended,
}

impl Protocol {
    /// Both protocols, simple first.
    pub const ALL: [Protocol; 2] = [Protocol::Simple, Protocol::Extended];

    /// `simple` or `extended`; also added as a sqllogictest label, so
    /// `onlyif simple` / `skipif extended` work in `.slt` files.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The engine name both databases report (for `onlyif freshet`).
pub const ENGINE_NAME: &str = "freshet";

/// Renders a text value the sqllogictest way: `NULL` for SQL NULL,
/// `(empty)` for the empty string.
fn slt_value(v: Option<&str>) -> String {
    match v {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(s) => s.to_string(),
    }
}

/// Runs `sql` with the simple query protocol and collects its output.
/// Several statements separated by `;` are allowed; the rows of all of them
/// are returned together.
pub async fn simple_query_output(
    client: &Client,
    sql: &str,
) -> Result<DBOutput<DefaultColumnType>, SqlError> {
    let messages = client.simple_query(sql).await?;
    let mut columns: Option<usize> = None;
    let mut rows = Vec::new();
    let mut count = 0;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = Some(columns.unwrap_or(0).max(cols.len()));
            }
            SimpleQueryMessage::Row(row) => {
                columns = Some(columns.unwrap_or(0).max(row.len()));
                let mut out = Vec::with_capacity(row.len());
                for i in 0..row.len() {
                    out.push(slt_value(row.try_get(i)?));
                }
                rows.push(out);
            }
            SimpleQueryMessage::CommandComplete(n) => count = n,
            _ => {}
        }
    }
    match columns {
        // The simple protocol carries no column types.
        Some(n) => Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; n],
            rows,
        }),
        None => Ok(DBOutput::StatementComplete(count)),
    }
}

/// Runs `sql` with the extended query protocol: prepare (Parse + Describe),
/// then `execute` if the statement returns no columns, else `query`, with
/// every value decoded from binary by its Postgres type and rendered as
/// Postgres' text output ([`binary_to_text`]).
///
/// A statement with a result column type the harness cannot render (see
/// [`is_decodable`]) is prepared, then run with the simple protocol
/// instead, and a note is printed.
pub async fn extended_query_output(
    client: &Client,
    sql: &str,
) -> Result<DBOutput<DefaultColumnType>, SqlError> {
    let statement = client.prepare(sql).await?;
    let columns = statement.columns();
    if columns.is_empty() {
        let count = client.execute(&statement, &[]).await?;
        return Ok(DBOutput::StatementComplete(count));
    }
    if let Some(col) = columns.iter().find(|c| !is_decodable(c.type_())) {
        eprintln!(
            "note: column {:?} has type {} which the harness does not decode; \
             running this statement with the simple protocol",
            col.name(),
            col.type_()
        );
        return simple_query_output(client, sql).await;
    }
    let types = columns
        .iter()
        .map(|c| slt_column_type(c.type_()))
        .collect::<Vec<_>>();
    let rows = client.query(&statement, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            let value: PgText = row.try_get(i).map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                SqlError::Harness(format!(
                    "harness could not decode column {} ({}): {e}: {cause}",
                    row.columns()[i].name(),
                    row.columns()[i].type_()
                ))
            })?;
            values.push(slt_value(value.0.as_deref()));
        }
        out.push(values);
    }
    Ok(DBOutput::Rows { types, rows: out })
}

/// The sqllogictest column type letter for a Postgres type.
pub fn slt_column_type(ty: &Type) -> DefaultColumnType {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

/// A client connection shared by the two databases: the client, and the
/// task driving its socket.
struct Connection {
    client: Option<Client>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Connection {
    async fn open(conn_str: &str) -> Result<Connection, SqlError> {
        let (client, task) = connect(conn_str).await?;
        Ok(Connection {
            client: Some(client),
            task: Some(task),
        })
    }

    fn client(&self) -> Result<&Client, SqlError> {
        self.client
            .as_ref()
            .ok_or_else(|| SqlError::Harness("the connection was shut down".into()))
    }

    /// Drops the client (which sends `Terminate`) and waits a little for
    /// the connection task to finish.
    async fn close(&mut self) {
        self.client.take();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// A sqllogictest database on the simple query protocol.
pub struct SimpleProtocolDb {
    conn: Connection,
    engine_name: String,
}

impl SimpleProtocolDb {
    /// Connects; the engine name is [`ENGINE_NAME`].
    pub async fn connect(conn_str: &str) -> Result<Self, SqlError> {
        Self::connect_as(conn_str, ENGINE_NAME).await
    }

    /// Connects, reporting `engine_name` to `onlyif` / `skipif` records.
    pub async fn connect_as(conn_str: &str, engine_name: &str) -> Result<Self, SqlError> {
        Ok(SimpleProtocolDb {
            conn: Connection::open(conn_str).await?,
            engine_name: engine_name.to_string(),
        })
    }

    /// The underlying client (`None` after `shutdown`).
    pub fn client(&self) -> Option<&Client> {
        self.conn.client.as_ref()
    }
}

#[async_trait]
impl AsyncDB for SimpleProtocolDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        simple_query_output(self.conn.client()?, sql).await
    }

    async fn shutdown(&mut self) {
        self.conn.close().await;
    }

    fn engine_name(&self) -> &str {
        &self.engine_name
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    async fn run_command(command: std::process::Command) -> std::io::Result<std::process::Output> {
        tokio::process::Command::from(command).output().await
    }
}

/// A sqllogictest database on the extended query protocol.
pub struct ExtendedProtocolDb {
    conn: Connection,
    engine_name: String,
}

impl ExtendedProtocolDb {
    /// Connects; the engine name is [`ENGINE_NAME`].
    pub async fn connect(conn_str: &str) -> Result<Self, SqlError> {
        Self::connect_as(conn_str, ENGINE_NAME).await
    }

    /// Connects, reporting `engine_name` to `onlyif` / `skipif` records.
    pub async fn connect_as(conn_str: &str, engine_name: &str) -> Result<Self, SqlError> {
        Ok(ExtendedProtocolDb {
            conn: Connection::open(conn_str).await?,
            engine_name: engine_name.to_string(),
        })
    }

    /// The underlying client (`None` after `shutdown`).
    pub fn client(&self) -> Option<&Client> {
        self.conn.client.as_ref()
    }
}

#[async_trait]
impl AsyncDB for ExtendedProtocolDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        extended_query_output(self.conn.client()?, sql).await
    }

    async fn shutdown(&mut self) {
        self.conn.close().await;
    }

    fn engine_name(&self) -> &str {
        &self.engine_name
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    async fn run_command(command: std::process::Command) -> std::io::Result<std::process::Output> {
        tokio::process::Command::from(command).output().await
    }
}

// ---------------------------------------------------------------------------
// Running files
// ---------------------------------------------------------------------------

/// What [`run_slt_file`] does with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Check the file's expectations.
    Check,
    /// Rewrite the file's expected results with the actual output
    /// (sqllogictest's `--override`). Review the diff before committing.
    Complete,
}

/// How [`run_slt_file`] runs a file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Check or rewrite the file.
    pub mode: Mode,
    /// The engine name `onlyif` / `skipif` records see: [`ENGINE_NAME`]
    /// normally, `postgres` to check the expectations against PostgreSQL.
    pub engine_name: String,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mode: Mode::Check,
            engine_name: ENGINE_NAME.to_string(),
        }
    }
}

/// Runs one `.slt` file against the server at `conn_str` with `protocol`.
/// Each `connection` name in the file gets its own connection. The
/// protocol's name (`simple` / `extended`) is added as a label. Returns the
/// runner's failure message (uncoloured) on failure.
pub async fn run_slt_file(
    path: &Path,
    protocol: Protocol,
    conn_str: &str,
    options: &RunOptions,
) -> Result<(), String> {
    let conn_str = conn_str.to_string();
    let engine = options.engine_name.clone();
    match protocol {
        Protocol::Simple => {
            let runner = Runner::new(move || {
                let (conn_str, engine) = (conn_str.clone(), engine.clone());
                async move { SimpleProtocolDb::connect_as(&conn_str, &engine).await }
            });
            drive(runner, path, protocol, options.mode).await
        }
        Protocol::Extended => {
            let runner = Runner::new(move || {
                let (conn_str, engine) = (conn_str.clone(), engine.clone());
                async move { ExtendedProtocolDb::connect_as(&conn_str, &engine).await }
            });
            drive(runner, path, protocol, options.mode).await
        }
    }
}

async fn drive<D, M>(
    mut runner: Runner<D, M>,
    path: &Path,
    protocol: Protocol,
    mode: Mode,
) -> Result<(), String>
where
    D: AsyncDB<ColumnType = DefaultColumnType>,
    M: MakeConnection<Conn = D>,
{
    runner.add_label(protocol.name());
    runner.with_column_validator(sqllogictest::default_column_validator);
    let result = match mode {
        Mode::Check => runner
            .run_file_async(path)
            .await
            .map_err(|e| e.display(false).to_string()),
        Mode::Complete => runner
            .update_test_file(
                path,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            )
            .await
            .map_err(|e| e.to_string()),
    };
    runner.shutdown_async().await;
    result
}

// ---------------------------------------------------------------------------
// Binary values → Postgres text output
// ---------------------------------------------------------------------------

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A value of any type, rendered as Postgres' text output; `None` for NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgText(pub Option<String>);

impl<'a> FromSql<'a> for PgText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        binary_to_text(ty, raw).map(|s| PgText(Some(s)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgText(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether [`binary_to_text`] can render values of `ty`.
pub fn is_decodable(ty: &Type) -> bool {
    match *ty {
        Type::BOOL
        | Type::INT2
        | Type::INT4
        | Type::INT8
        | Type::OID
        | Type::FLOAT4
        | Type::FLOAT8
        | Type::NUMERIC
        | Type::TEXT
        | Type::VARCHAR
        | Type::BPCHAR
        | Type::NAME
        | Type::UNKNOWN
        | Type::CHAR
        | Type::BYTEA
        | Type::DATE
        | Type::TIME
        | Type::TIMESTAMP
        | Type::TIMESTAMPTZ
        | Type::INTERVAL
        | Type::JSON
        | Type::JSONB
        | Type::UUID => true,
        _ => match ty.kind() {
            Kind::Array(elem) => is_decodable(elem),
            _ => false,
        },
    }
}

/// Renders one binary-format value of type `ty` as Postgres' text output
/// format (as `psql` or the simple protocol would show it, with the default
/// `DateStyle = ISO, MDY`, `IntervalStyle = postgres`,
/// `extra_float_digits = 1`; timestamptz is shown in UTC).
pub fn binary_to_text(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
    // `infinity` and `-infinity` are the extremes of the binary forms.
    if *ty == Type::TIME && raw == 86_400_000_000_i64.to_be_bytes() {
        return Ok("24:00:00".into());
    }
    match (ty, raw.len()) {
        (&Type::TIMESTAMP | &Type::TIMESTAMPTZ, 8) | (&Type::DATE, 4) => {
            let (max, min) = match raw.len() {
                8 => (
                    i64::from_be_bytes(raw.try_into()?) == i64::MAX,
                    i64::from_be_bytes(raw.try_into()?) == i64::MIN,
                ),
                _ => (
                    i32::from_be_bytes(raw.try_into()?) == i32::MAX,
                    i32::from_be_bytes(raw.try_into()?) == i32::MIN,
                ),
            };
            if max {
                return Ok("infinity".into());
            }
            if min {
                return Ok("-infinity".into());
            }
        }
        _ => {}
    }
    Ok(match *ty {
        Type::BOOL => (if bool::from_sql(ty, raw)? { "t" } else { "f" }).to_string(),
        Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
        Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
        Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
        Type::OID => u32::from_sql(ty, raw)?.to_string(),
        Type::FLOAT4 => format_float4(f32::from_sql(ty, raw)?),
        Type::FLOAT8 => format_float8(f64::from_sql(ty, raw)?),
        Type::NUMERIC => match rust_decimal::Decimal::from_sql(ty, raw) {
            Ok(d) => d.to_string(),
            // NaN, ±Infinity and values beyond rust_decimal's 28 digits.
            Err(_) => numeric_binary_to_text(raw)?,
        },
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            <&str as FromSql>::from_sql(ty, raw)?.to_string()
        }
        Type::CHAR => raw.iter().map(|&b| b as char).collect(),
        Type::BYTEA => {
            let mut s = String::with_capacity(2 + raw.len() * 2);
            s.push_str("\\x");
            for b in raw {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        Type::DATE => NaiveDate::from_sql(ty, raw)?.format("%Y-%m-%d").to_string(),
        Type::TIME => {
            let t = NaiveTime::from_sql(ty, raw)?;
            format!(
                "{}{}",
                t.format("%H:%M:%S"),
                fraction(t.format("%6f").to_string())
            )
        }
        Type::TIMESTAMP => {
            let ts = NaiveDateTime::from_sql(ty, raw)?;
            format!(
                "{}{}",
                ts.format("%Y-%m-%d %H:%M:%S"),
                fraction(ts.format("%6f").to_string())
            )
        }
        Type::TIMESTAMPTZ => {
            let ts = DateTime::<Utc>::from_sql(ty, raw)?;
            format!(
                "{}{}+00",
                ts.format("%Y-%m-%d %H:%M:%S"),
                fraction(ts.format("%6f").to_string())
            )
        }
        Type::INTERVAL => interval_binary_to_text(raw)?,
        Type::JSON => <&str as FromSql>::from_sql(&Type::TEXT, raw)?.to_string(),
        Type::JSONB => {
            let value = serde_json::Value::from_sql(ty, raw)?;
            let mut s = String::new();
            format_jsonb(&value, &mut s);
            s
        }
        Type::UUID => {
            if raw.len() != 16 {
                return Err(format!("uuid of {} bytes", raw.len()).into());
            }
            let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
        _ => match ty.kind() {
            Kind::Array(elem) => array_binary_to_text(elem, raw)?,
            _ => return Err(format!("no text conversion for type {ty}").into()),
        },
    })
}

/// `.` + fractional second digits without trailing zeros, or nothing.
fn fraction(micros6: String) -> String {
    let trimmed = micros6.trim_end_matches('0');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(".{trimmed}")
    }
}

/// float8 as Postgres prints it with `extra_float_digits = 1` (the
/// default since PG 12): the shortest exact representation, in exponent form
/// below 1e-4 and from 1e15 on.
pub fn format_float8(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    format_shortest(&format!("{v:e}"), 15)
}

/// float4 as Postgres prints it (exponent form below 1e-4 and from 1e6 on).
pub fn format_float4(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    format_shortest(&format!("{v:e}"), 6)
}

/// Turns Rust's shortest `{:e}` output (`-1.25e-7`, `3e0`) into Postgres'
/// layout: fixed notation when `-4 <= exponent < max_fixed_exp`, else
/// `d.ddde±XX`.
fn format_shortest(sci: &str, max_fixed_exp: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if digits == "0" {
        out.push('0');
        return out;
    }
    let n = digits.len() as i32;
    if (-4..max_fixed_exp).contains(&exp) {
        if exp >= 0 {
            if n <= exp + 1 {
                out.push_str(&digits);
                out.push_str(&"0".repeat((exp + 1 - n) as usize));
            } else {
                out.push_str(&digits[..(exp + 1) as usize]);
                out.push('.');
                out.push_str(&digits[(exp + 1) as usize..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

/// Decodes Postgres' binary numeric (used when rust_decimal cannot hold the
/// value): ndigits, weight, sign, dscale, then base-10000 digits.
fn numeric_binary_to_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() < 8 {
        return Err("numeric value too short".into());
    }
    let u16_at = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
    let ndigits = u16_at(0) as usize;
    let weight = u16_at(2) as i16 as i32;
    let sign = u16_at(4);
    let dscale = u16_at(6) as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    if raw.len() < 8 + 2 * ndigits {
        return Err("numeric value truncated".into());
    }
    let digit = |i: i32| -> u16 {
        if i >= 0 && (i as usize) < ndigits {
            u16_at(8 + 2 * i as usize)
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

/// Decodes a binary interval (microseconds i64, days i32, months i32) and
/// prints it in `IntervalStyle = postgres`, as `EncodeInterval` does:
/// `1 year 2 mons -3 days +04:05:06.5`.
pub fn interval_binary_to_text(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err(format!("interval of {} bytes", raw.len()).into());
    }
    let micros = i64::from_be_bytes(raw[0..8].try_into().unwrap());
    let days = i32::from_be_bytes(raw[8..12].try_into().unwrap());
    let months = i32::from_be_bytes(raw[12..16].try_into().unwrap());
    Ok(format_interval(months, days, micros))
}

/// Formats an interval like Postgres' `IntervalStyle = postgres`.
pub fn format_interval(months: i32, days: i32, micros: i64) -> String {
    fn add_part(
        out: &mut String,
        value: i64,
        unit: &str,
        is_zero: &mut bool,
        is_before: &mut bool,
    ) {
        if value == 0 {
            return;
        }
        if !*is_zero {
            out.push(' ');
        }
        if *is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        // Each nonzero field sets is_before for (only) the next one.
        *is_before = value < 0;
        *is_zero = false;
    }
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    add_part(
        &mut out,
        (months / 12) as i64,
        "year",
        &mut is_zero,
        &mut is_before,
    );
    add_part(
        &mut out,
        (months % 12) as i64,
        "mon",
        &mut is_zero,
        &mut is_before,
    );
    add_part(&mut out, days as i64, "day", &mut is_zero, &mut is_before);

    const USECS_PER_SEC: i64 = 1_000_000;
    const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
    const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
    let hour = micros / USECS_PER_HOUR;
    let rest = micros - hour * USECS_PER_HOUR;
    let min = rest / USECS_PER_MINUTE;
    let rest = rest - min * USECS_PER_MINUTE;
    let sec = rest / USECS_PER_SEC;
    let fsec = rest - sec * USECS_PER_SEC;
    if is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0 {
        let minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
        if !is_zero {
            out.push(' ');
        }
        if minus {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        out.push_str(&format!(
            "{:02}:{:02}:{:02}",
            hour.abs(),
            min.abs(),
            sec.abs()
        ));
        if fsec != 0 {
            out.push_str(&fraction(format!("{:06}", fsec.abs())));
        }
    }
    out
}

/// Prints a jsonb value the way Postgres' `jsonb_out` does: `", "` and
/// `": "` separators, object keys ordered by length, then bytes.
pub fn format_jsonb(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_jsonb(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push_str(": ");
                format_jsonb(&map[key.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// Decodes a binary array and prints it as `array_out` does:
/// `{1,2,NULL}`, `{"a b","",x}`, nested braces for more dimensions.
fn array_binary_to_text(elem: &Type, raw: &[u8]) -> Result<String, BoxError> {
    let mut pos = 0usize;
    let read_i32 = |pos: &mut usize| -> Result<i32, BoxError> {
        let bytes = raw.get(*pos..*pos + 4).ok_or("array value truncated")?;
        *pos += 4;
        Ok(i32::from_be_bytes(bytes.try_into().unwrap()))
    };
    let ndim = read_i32(&mut pos)?;
    let _has_nulls = read_i32(&mut pos)?;
    let _elem_oid = read_i32(&mut pos)?;
    if ndim == 0 {
        return Ok("{}".into());
    }
    let mut dims = Vec::new();
    let mut lbounds = Vec::new();
    for _ in 0..ndim {
        dims.push(read_i32(&mut pos)?.max(0) as usize);
        lbounds.push(read_i32(&mut pos)?);
    }
    let total: usize = dims.iter().product();
    let mut elems = Vec::with_capacity(total);
    for _ in 0..total {
        let len = read_i32(&mut pos)?;
        if len < 0 {
            elems.push("NULL".to_string());
        } else {
            let bytes = raw
                .get(pos..pos + len as usize)
                .ok_or("array element truncated")?;
            pos += len as usize;
            elems.push(quote_array_element(&binary_to_text(elem, bytes)?));
        }
    }
    let mut out = String::new();
    if lbounds.iter().any(|&lb| lb != 1) {
        for (d, lb) in dims.iter().zip(&lbounds) {
            out.push_str(&format!("[{}:{}]", lb, *lb as i64 + *d as i64 - 1));
        }
        out.push('=');
    }
    let mut next = 0usize;
    write_array_dim(&dims, &elems, &mut next, &mut out);
    Ok(out)
}

fn write_array_dim(dims: &[usize], elems: &[String], next: &mut usize, out: &mut String) {
    out.push('{');
    for i in 0..dims[0] {
        if i > 0 {
            out.push(',');
        }
        if dims.len() == 1 {
            out.push_str(&elems[*next]);
            *next += 1;
        } else {
            write_array_dim(&dims[1..], elems, next, out);
        }
    }
    out.push('}');
}

fn quote_array_element(s: &str) -> String {
    let needs_quotes = s.is_empty()
        || s.eq_ignore_ascii_case("NULL")
        || s.chars().any(|c| {
            matches!(
                c,
                '"' | '\\' | '{' | '}' | ',' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'
            )
        });
    if !needs_quotes {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(format_float8(1.5), "1.5");
        assert_eq!(format_float8(2.0), "2");
        assert_eq!(format_float8(-0.0), "-0");
        assert_eq!(format_float8(0.0), "0");
        assert_eq!(format_float8(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float8(1e15), "1e+15");
        assert_eq!(format_float8(123456789012345.0), "123456789012345");
        assert_eq!(format_float8(0.0001), "0.0001");
        assert_eq!(format_float8(0.00001), "1e-05");
        assert_eq!(format_float8(-1.25e-7), "-1.25e-07");
        assert_eq!(format_float8(1e100), "1e+100");
        assert_eq!(format_float8(f64::NAN), "NaN");
        assert_eq!(format_float8(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(format_float4(1.5), "1.5");
        assert_eq!(format_float4(100000.0), "100000");
        assert_eq!(format_float4(1000000.0), "1e+06");
        assert_eq!(format_float4(0.1), "0.1");
    }

    #[test]
    fn intervals_print_like_postgres() {
        const H: i64 = 3_600_000_000;
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(format_interval(0, 1, 0), "1 day");
        assert_eq!(format_interval(0, -1, 0), "-1 days");
        assert_eq!(
            format_interval(14, 3, 4 * H + 5 * 60_000_000 + 6_000_000),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(format_interval(0, 1, 2 * H), "1 day 02:00:00");
        assert_eq!(format_interval(0, -1, 2 * H), "-1 days +02:00:00");
        assert_eq!(format_interval(0, 1, -H), "1 day -01:00:00");
        assert_eq!(format_interval(0, 0, 1_500_000), "00:00:01.5");
        assert_eq!(format_interval(0, 0, 25 * H), "25:00:00");
        assert_eq!(format_interval(-13, 0, 0), "-1 years -1 mons");
        assert_eq!(format_interval(12, 0, 0), "1 year");
    }

    #[test]
    fn numerics_decode() {
        // 12345.678 : ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780
        let raw = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(numeric_binary_to_text(&raw).unwrap(), "12345.678");
        // 0.0012 : ndigits 1, weight -1, dscale 4, digits 12
        let raw = [0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 12];
        assert_eq!(numeric_binary_to_text(&raw).unwrap(), "0.0012");
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(numeric_binary_to_text(&nan).unwrap(), "NaN");
        // -100 : ndigits 1, weight 0, sign -, dscale 0, digits 100
        let raw = [0, 1, 0, 0, 0x40, 0, 0, 0, 0, 100];
        assert_eq!(numeric_binary_to_text(&raw).unwrap(), "-100");
    }

    #[test]
    fn jsonb_prints_like_postgres() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"bb": [1, "x", null], "a": {"c": true}, "aa": 1.5}"#).unwrap();
        let mut s = String::new();
        format_jsonb(&v, &mut s);
        assert_eq!(s, r#"{"a": {"c": true}, "aa": 1.5, "bb": [1, "x", null]}"#);
    }

    #[test]
    fn arrays_quote_like_postgres() {
        assert_eq!(quote_array_element("abc"), "abc");
        assert_eq!(quote_array_element(""), "\"\"");
        assert_eq!(quote_array_element("a b"), "\"a b\"");
        assert_eq!(quote_array_element("null"), "\"null\"");
        assert_eq!(quote_array_element("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn empty_and_null_follow_slt_conventions() {
        assert_eq!(slt_value(None), "NULL");
        assert_eq!(slt_value(Some("")), "(empty)");
        assert_eq!(slt_value(Some("x")), "x");
    }
}
