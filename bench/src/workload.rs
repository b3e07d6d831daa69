//! The point-lookup workload. This is the only client code; it runs
//! unchanged against Freshet and PostgreSQL, which differ only in the
//! connection parameters.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures::SinkExt;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row, Statement};

use freshet_sqllogictest::rng::Rng;

use crate::util::{error_chain, percentile};

pub const CREATE_TABLE: &str =
    "CREATE TABLE kv (id bigint PRIMARY KEY, v text NOT NULL, n bigint NOT NULL)";
pub const COPY_SQL: &str = "COPY kv FROM STDIN";
pub const COUNT_SQL: &str = "SELECT count(*) FROM kv";
pub const LOOKUP_SQL: &str = "SELECT id, v, n FROM kv WHERE id = $1";

/// Size of the COPY data chunks handed to the sink.
pub const COPY_CHUNK_BYTES: usize = 64 * 1024;
/// A single lookup taking longer than this counts as an error (and stops
/// that client), so a stuck server cannot hang the benchmark.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// A client gives up after this many failed queries.
const MAX_ERRORS_PER_CLIENT: u64 = 100;

/// Where to connect.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
}

impl ConnSpec {
    pub fn loopback(port: u16, user: &str, dbname: &str) -> Self {
        ConnSpec {
            host: "127.0.0.1".to_string(),
            port,
            user: user.to_string(),
            dbname: dbname.to_string(),
        }
    }
}

/// The workload's knobs.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub rows: u64,
    pub clients: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// Opens one connection (no TLS) and drives it on a background task.
pub async fn connect(spec: &ConnSpec) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(spec.host.as_str())
        .port(spec.port)
        .user(spec.user.as_str())
        .dbname(spec.dbname.as_str())
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = cfg.connect(NoTls).await.map_err(|e| {
        anyhow::anyhow!(
            "connecting to {}:{}: {}",
            spec.host,
            spec.port,
            error_chain(&e)
        )
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("freshet-bench: connection error: {}", error_chain(&e));
        }
    });
    Ok(client)
}

/// `n` of row `id`.
pub fn expected_n(id: i64) -> i64 {
    (id * 7) % 1000
}

/// `v` of row `id`.
pub fn expected_v(id: i64) -> String {
    format!("value-{id}")
}

/// The COPY text-format data for rows `1..=rows`, in ~64 KiB chunks.
/// Generated once, before any timing, and shared by both systems.
pub fn copy_chunks(rows: u64) -> Vec<Bytes> {
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(COPY_CHUNK_BYTES + 256);
    for id in 1..=rows as i64 {
        writeln!(buf, "{id}\tvalue-{id}\t{}", expected_n(id))
            .expect("writing to BytesMut cannot fail");
        if buf.len() >= COPY_CHUNK_BYTES {
            chunks.push(buf.split().freeze());
            buf.reserve(COPY_CHUNK_BYTES + 256);
        }
    }
    if !buf.is_empty() {
        chunks.push(buf.freeze());
    }
    chunks
}

/// What one system did.
#[derive(Debug)]
pub struct SystemResult {
    pub load_time: Duration,
    pub rows: u64,
    pub lookups: LookupResult,
}

impl SystemResult {
    pub fn load_rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.load_time.as_secs_f64().max(1e-9)
    }

    /// No errors and no wrong answers.
    pub fn is_correct(&self) -> bool {
        self.lookups.errors == 0 && self.lookups.mismatches == 0
    }
}

/// Creates `kv`, loads it with COPY (timed), checks the row count, then runs
/// the concurrent lookups.
pub async fn run_system(
    label: &str,
    spec: &ConnSpec,
    cfg: &WorkloadConfig,
    chunks: &[Bytes],
) -> Result<SystemResult> {
    let client = connect(spec).await?;
    client
        .batch_execute(CREATE_TABLE)
        .await
        .map_err(|e| anyhow::anyhow!("{CREATE_TABLE}: {}", error_chain(&e)))?;

    eprintln!("[{label}] loading {} rows with COPY ...", cfg.rows);
    let load_time = load(&client, chunks, cfg.rows).await?;
    eprintln!(
        "[{label}] loaded in {:.2} s ({:.0} rows/s)",
        load_time.as_secs_f64(),
        cfg.rows as f64 / load_time.as_secs_f64().max(1e-9)
    );

    let count_row = client
        .query_one(COUNT_SQL, &[])
        .await
        .map_err(|e| anyhow::anyhow!("{COUNT_SQL}: {}", error_chain(&e)))?;
    let count: i64 = count_row
        .try_get(0)
        .map_err(|e| anyhow::anyhow!("{COUNT_SQL}: reading the count: {}", error_chain(&e)))?;
    if count != cfg.rows as i64 {
        bail!(
            "wrong result: {COUNT_SQL} returned {count} after loading {} rows",
            cfg.rows
        );
    }
    drop(client);

    eprintln!(
        "[{label}] point lookups: {} clients, {} s warm-up + {} s measured ...",
        cfg.clients,
        cfg.warmup.as_secs_f64(),
        cfg.measure.as_secs_f64()
    );
    let lookups = run_lookups(spec, cfg).await?;
    eprintln!(
        "[{label}] {} warm-up + {} measured lookups ({:.0} QPS)",
        lookups.warmup_queries,
        lookups.measured_queries,
        lookups.qps()
    );
    if let Some(problem) = &lookups.first_problem {
        eprintln!(
            "[{label}] {} errors, {} wrong results; first: {problem}",
            lookups.errors, lookups.mismatches
        );
    }
    Ok(SystemResult {
        load_time,
        rows: cfg.rows,
        lookups,
    })
}

/// Sends all chunks through `COPY kv FROM STDIN`; returns the time from
/// starting the COPY to its completion (the server's CommandComplete).
async fn load(client: &Client, chunks: &[Bytes], rows: u64) -> Result<Duration> {
    copy_in(client, COPY_SQL, chunks, rows).await
}

/// Sends `chunks` through one `COPY … FROM STDIN` statement `copy_sql`;
/// returns the time from starting the COPY to its completion (the server's
/// CommandComplete, i.e. its commit). The server must report `rows` rows.
pub async fn copy_in(
    client: &Client,
    copy_sql: &str,
    chunks: &[Bytes],
    rows: u64,
) -> Result<Duration> {
    let start = Instant::now();
    let sink = client
        .copy_in::<_, Bytes>(copy_sql)
        .await
        .map_err(|e| anyhow::anyhow!("{copy_sql}: {}", error_chain(&e)))?;
    let mut sink = std::pin::pin!(sink);
    for chunk in chunks {
        sink.send(chunk.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{copy_sql}: sending data: {}", error_chain(&e)))?;
    }
    let copied = sink
        .as_mut()
        .finish()
        .await
        .map_err(|e| anyhow::anyhow!("{copy_sql}: finishing: {}", error_chain(&e)))?;
    let elapsed = start.elapsed();
    if copied != rows {
        bail!("wrong result: {copy_sql} reported {copied} rows, expected {rows}");
    }
    Ok(elapsed)
}

/// The lookup phase, all clients together.
#[derive(Debug, Default)]
pub struct LookupResult {
    /// Correct lookups started inside the measured window.
    pub measured_queries: u64,
    pub measured_secs: f64,
    pub warmup_queries: u64,
    /// Failed queries (warm-up included).
    pub errors: u64,
    /// Queries that returned something other than the expected single row.
    pub mismatches: u64,
    pub first_problem: Option<String>,
    /// Latencies of the measured queries, in nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
}

impl LookupResult {
    pub fn qps(&self) -> f64 {
        self.measured_queries as f64 / self.measured_secs.max(1e-9)
    }

    /// Latency at quantile `q` (0..=1) in microseconds.
    pub fn percentile_us(&self, q: f64) -> Option<f64> {
        percentile(&self.latencies_ns, q).map(|ns| ns as f64 / 1000.0)
    }
}

#[derive(Default)]
struct ClientStats {
    measured: u64,
    warmup: u64,
    errors: u64,
    mismatches: u64,
    first_problem: Option<String>,
    latencies_ns: Vec<u64>,
}

impl ClientStats {
    fn note(&mut self, problem: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(problem);
        }
    }
}

/// `--clients` connections, each with its own prepared statement, looking
/// up random ids for warm-up + measured time.
async fn run_lookups(spec: &ConnSpec, cfg: &WorkloadConfig) -> Result<LookupResult> {
    let mut conns = Vec::with_capacity(cfg.clients);
    for i in 0..cfg.clients {
        let client = connect(spec)
            .await
            .with_context(|| format!("lookup client {i}"))?;
        let stmt = client
            .prepare_typed(LOOKUP_SQL, &[Type::INT8])
            .await
            .map_err(|e| anyhow::anyhow!("preparing {LOOKUP_SQL}: {}", error_chain(&e)))?;
        conns.push((client, stmt));
    }

    let start = Instant::now();
    let warm_end = start + cfg.warmup;
    let end = warm_end + cfg.measure;
    let seed = Rng::seed_from_clock();
    let mut handles = Vec::with_capacity(cfg.clients);
    for (i, (client, stmt)) in conns.into_iter().enumerate() {
        let client_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        handles.push(tokio::spawn(client_loop(
            client,
            stmt,
            cfg.rows,
            warm_end,
            end,
            client_seed,
        )));
    }

    let mut result = LookupResult {
        measured_secs: cfg.measure.as_secs_f64(),
        ..Default::default()
    };
    for handle in handles {
        let stats = handle.await.context("lookup client task failed")?;
        result.measured_queries += stats.measured;
        result.warmup_queries += stats.warmup;
        result.errors += stats.errors;
        result.mismatches += stats.mismatches;
        if result.first_problem.is_none() {
            result.first_problem = stats.first_problem;
        }
        result.latencies_ns.extend(stats.latencies_ns);
    }
    result.latencies_ns.sort_unstable();
    Ok(result)
}

async fn client_loop(
    client: Client,
    stmt: Statement,
    rows: u64,
    warm_end: Instant,
    end: Instant,
    seed: u64,
) -> ClientStats {
    let mut rng = Rng::new(seed);
    let mut stats = ClientStats::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let id = (rng.next_u64() % rows) as i64 + 1;
        let res = tokio::time::timeout(QUERY_TIMEOUT, client.query(&stmt, &[&id])).await;
        let latency = t0.elapsed();
        match res {
            Ok(Ok(result_rows)) => match check_rows(&result_rows, id) {
                Ok(()) => {
                    if t0 >= warm_end {
                        stats.measured += 1;
                        stats.latencies_ns.push(latency.as_nanos() as u64);
                    } else {
                        stats.warmup += 1;
                    }
                }
                Err(problem) => {
                    stats.mismatches += 1;
                    stats.note(format!("wrong result: {problem}"));
                }
            },
            Ok(Err(e)) => {
                stats.errors += 1;
                stats.note(format!("lookup of id {id} failed: {}", error_chain(&e)));
                if client.is_closed() || stats.errors >= MAX_ERRORS_PER_CLIENT {
                    break;
                }
            }
            Err(_elapsed) => {
                stats.errors += 1;
                stats.note(format!(
                    "lookup of id {id} took longer than {} s",
                    QUERY_TIMEOUT.as_secs()
                ));
                break;
            }
        }
    }
    stats
}

/// Exactly one row, `(id, 'value-<id>', (id*7)%1000)`.
fn check_rows(rows: &[Row], id: i64) -> std::result::Result<(), String> {
    if rows.len() != 1 {
        return Err(format!("id {id}: expected 1 row, got {}", rows.len()));
    }
    let row = &rows[0];
    let got_id: i64 = row
        .try_get(0)
        .map_err(|e| format!("id {id}: column id: {}", error_chain(&e)))?;
    let v: &str = row
        .try_get(1)
        .map_err(|e| format!("id {id}: column v: {}", error_chain(&e)))?;
    let n: i64 = row
        .try_get(2)
        .map_err(|e| format!("id {id}: column n: {}", error_chain(&e)))?;
    if got_id != id || n != expected_n(id) || v != expected_v(id) {
        return Err(format!(
            "id {id}: got ({got_id}, {v:?}, {n}), expected ({id}, {:?}, {})",
            expected_v(id),
            expected_n(id)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_data_is_well_formed() {
        let chunks = copy_chunks(10_000);
        assert!(chunks.len() > 1);
        assert!(chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c.len() >= COPY_CHUNK_BYTES));
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(all).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert_eq!(lines[0], "1\tvalue-1\t7");
        assert_eq!(lines[142], "143\tvalue-143\t1");
        assert!(text.ends_with("10000\tvalue-10000\t0\n"));
    }

    #[test]
    fn percentiles() {
        let r = LookupResult {
            latencies_ns: (1..=100).map(|i| i * 1000).collect(),
            ..Default::default()
        };
        assert_eq!(r.percentile_us(0.5), Some(50.0));
        assert_eq!(r.percentile_us(0.99), Some(99.0));
        assert_eq!(LookupResult::default().percentile_us(0.5), None);
    }
}
