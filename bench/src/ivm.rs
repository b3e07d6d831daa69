//! The incremental-view-maintenance workloads, `ivm-freshness` and
//! `ivm-throughput`. Like `workload.rs` this is client code that runs
//! unchanged against Freshet and PostgreSQL. The one difference is how a
//! materialized view gets current ([`Maintenance`]): Freshet maintains it
//! within every statement, PostgreSQL recomputes it on
//! `REFRESH MATERIALIZED VIEW`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::{Bytes, BytesMut};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use crate::util::{error_chain, Latencies};
use freshet_sqllogictest::rng::{mix, Rng};

use crate::workload::{self, ConnSpec, COPY_CHUNK_BYTES};

/// How a system's materialized views get current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// Freshet: each statement updates every dependent view before it returns.
    Incremental,
    /// PostgreSQL: `REFRESH MATERIALIZED VIEW` recomputes the view.
    Refresh,
}

/// Limit for one statement of a measured loop, so that a stuck server
/// cannot hang the benchmark.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit for one bulk statement: a COPY, a CREATE MATERIALIZED VIEW, a REFRESH.
const BULK_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long a view row that is not yet fresh is re-read before giving up.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Shared helpers

fn db_err(what: &str, e: tokio_postgres::Error) -> anyhow::Error {
    anyhow!("{what}: {}", error_chain(&e))
}

async fn with_timeout<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => bail!("{what}: no answer within {} s", limit.as_secs()),
    }
}

/// Runs `sql` (simple query protocol) and returns how long it took.
async fn execute(client: &Client, sql: &str) -> Result<Duration> {
    with_timeout(sql, BULK_TIMEOUT, async {
        let start = Instant::now();
        client
            .batch_execute(sql)
            .await
            .map_err(|e| db_err(sql, e))?;
        Ok(start.elapsed())
    })
    .await
}

/// The single integer a query returns.
async fn query_int(client: &Client, sql: &str) -> Result<i64> {
    with_timeout(sql, BULK_TIMEOUT, async {
        let row = client
            .query_one(sql, &[])
            .await
            .map_err(|e| db_err(sql, e))?;
        let v: SqlInt = row.try_get(0).map_err(|e| db_err(sql, e))?;
        Ok(v.0)
    })
    .await
}

async fn prepare(client: &Client, sql: &str, types: &[Type]) -> Result<Statement> {
    client
        .prepare_typed(sql, types)
        .await
        .map_err(|e| db_err(&format!("preparing {sql}"), e))
}

/// An integer column that may arrive as int2/int4/int8 or as numeric:
/// PostgreSQL's `sum(bigint)` is numeric, and the test must not depend on
/// which integer type a system picks for an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqlInt(pub i64);

impl<'a> FromSql<'a> for SqlInt {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        match *ty {
            Type::INT2 => Ok(SqlInt(i16::from_sql(ty, raw)?.into())),
            Type::INT4 => Ok(SqlInt(i32::from_sql(ty, raw)?.into())),
            Type::INT8 => Ok(SqlInt(i64::from_sql(ty, raw)?)),
            Type::NUMERIC => Ok(SqlInt(numeric_to_i64(raw)?)),
            _ => Err(format!("expected an integer, got type {ty}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC)
    }
}

/// Decodes PostgreSQL's binary `numeric` (ndigits, weight, sign, dscale,
/// then base-10000 digits, all big-endian 16-bit) holding an integer.
pub fn numeric_to_i64(raw: &[u8]) -> std::result::Result<i64, String> {
    let word = |i: usize| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]);
    if raw.len() < 8 {
        return Err(format!("numeric: {} bytes, expected at least 8", raw.len()));
    }
    let ndigits = word(0) as i16;
    let weight = word(1) as i16;
    let sign = word(2);
    if ndigits < 0 || raw.len() != 8 + 2 * ndigits as usize {
        return Err(format!("numeric: {} bytes for {ndigits} digits", raw.len()));
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Err("numeric: NaN is not an integer".into()),
        _ => return Err("numeric: infinity is not an integer".into()),
    };
    let digit = |i: usize| -> std::result::Result<i128, String> {
        let d = word(4 + i);
        if d >= 10_000 {
            return Err(format!("numeric: bad base-10000 digit {d}"));
        }
        Ok(d.into())
    };
    let ndigits = ndigits as usize;
    let too_big = || "numeric: out of range for bigint".to_string();
    let mut value: i128 = 0;
    // Digit i is worth 10000^(weight - i); trailing zero digits are omitted.
    for i in 0..=(weight.max(-1) as i64) {
        let i = i as usize;
        let d = if i < ndigits { digit(i)? } else { 0 };
        value = value
            .checked_mul(10_000)
            .and_then(|v| v.checked_add(d))
            .ok_or_else(too_big)?;
    }
    for i in (weight.max(-1) + 1) as usize..ndigits {
        if digit(i)? != 0 {
            return Err("numeric: has a fractional part".into());
        }
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| too_big())
}

/// The COPY text data of one `COPY … FROM STDIN` statement.
#[derive(Clone, Debug, Default)]
pub struct CopyBatch {
    pub rows: u64,
    pub chunks: Vec<Bytes>,
}

/// Rows `1..=rows`, each written (with its newline) by `write_row`, as one
/// batch per `rows_per_copy` rows, each batch in ~64 KiB chunks.
pub fn copy_batches(
    rows: u64,
    rows_per_copy: u64,
    mut write_row: impl FnMut(&mut BytesMut, u64),
) -> Vec<CopyBatch> {
    assert!(rows_per_copy > 0);
    let mut batches = Vec::new();
    let mut batch = CopyBatch::default();
    let mut buf = BytesMut::with_capacity(COPY_CHUNK_BYTES + 256);
    for id in 1..=rows {
        write_row(&mut buf, id);
        batch.rows += 1;
        let batch_full = batch.rows == rows_per_copy;
        if buf.len() >= COPY_CHUNK_BYTES || (batch_full && !buf.is_empty()) {
            batch.chunks.push(buf.split().freeze());
            buf.reserve(COPY_CHUNK_BYTES + 256);
        }
        if batch_full {
            batches.push(std::mem::take(&mut batch));
        }
    }
    if !buf.is_empty() {
        batch.chunks.push(buf.freeze());
    }
    if batch.rows > 0 {
        batches.push(batch);
    }
    batches
}

/// Sends the batches as consecutive COPY statements; returns the wall-clock
/// time from the first one's start to the last one's completion. With a
/// `progress` label, reports the rate of every tenth of the batches on
/// stderr (a rate that falls as the table grows shows up there).
async fn copy_all(
    client: &Client,
    copy_sql: &str,
    batches: &[CopyBatch],
    progress: Option<&str>,
) -> Result<Duration> {
    let start = Instant::now();
    let every = (batches.len() / 10).max(1);
    let (mut rows, mut mark, mut mark_rows) = (0u64, start, 0u64);
    for (i, batch) in batches.iter().enumerate() {
        with_timeout(
            copy_sql,
            BULK_TIMEOUT,
            workload::copy_in(client, copy_sql, &batch.chunks, batch.rows),
        )
        .await?;
        rows += batch.rows;
        if let Some(label) = progress {
            if (i + 1) % every == 0 && i + 1 < batches.len() {
                let now = Instant::now();
                eprintln!(
                    "[{label}]   {rows} rows after {:.1} s; {:.0} rows/s over the last {}",
                    (now - start).as_secs_f64(),
                    (rows - mark_rows) as f64 / (now - mark).as_secs_f64().max(1e-9),
                    rows - mark_rows
                );
                (mark, mark_rows) = (now, rows);
            }
        }
    }
    Ok(start.elapsed())
}

async fn check_count(client: &Client, table: &str, expected: u64) -> Result<()> {
    let sql = format!("SELECT count(*) FROM {table}");
    let count = query_int(client, &sql).await?;
    if count != expected as i64 {
        bail!("wrong result: {sql} returned {count}, expected {expected}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ivm-freshness

/// Customers (each has `orders / CUSTOMERS` orders).
pub const CUSTOMERS: u64 = 10_000;
/// Rows per COPY statement when loading `orders`.
pub const FRESHNESS_ROWS_PER_COPY: u64 = 100_000;

pub const CREATE_CUSTOMERS: &str =
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region int NOT NULL)";
pub const CREATE_ORDERS: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, \
     customer_id int NOT NULL, amount bigint NOT NULL, qty int NOT NULL, note text NOT NULL)";
pub const COPY_CUSTOMERS: &str = "COPY customers FROM STDIN";
pub const COPY_ORDERS: &str = "COPY orders FROM STDIN";
pub const CREATE_PER_CUSTOMER: &str = "CREATE MATERIALIZED VIEW per_customer AS \
     SELECT c.id, c.name, count(*) AS n, sum(o.amount) AS total, max(o.amount) AS biggest \
     FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name";
pub const UPDATE_AMOUNT: &str = "UPDATE orders SET amount = $1 WHERE id = $2";
pub const READ_CUSTOMER: &str =
    "SELECT id, name, n, total, biggest FROM per_customer WHERE id = $1";
/// PostgreSQL's round-trip floor: the same UPDATE and a read of the row it
/// wrote, with no view to maintain.
pub const READ_ORDER_AMOUNT: &str = "SELECT amount FROM orders WHERE id = $1";
/// Pipelined UPDATE + read iterations of that floor (after as many again
/// as warm-up).
pub const PLAIN_ITERATIONS: u32 = 2000;
pub const READ_ALL_CUSTOMERS: &str = "SELECT id, name, n, total, biggest FROM per_customer";
pub const REFRESH_PER_CUSTOMER: &str = "REFRESH MATERIALIZED VIEW per_customer";

/// The customer of order `id`: 7919 is prime, so ids `1..=k*CUSTOMERS`
/// spread evenly over all customers.
pub fn customer_of(order: u64) -> i32 {
    ((order % CUSTOMERS) * 7919 % CUSTOMERS) as i32 + 1
}

pub fn customer_name(customer: i32) -> String {
    format!("customer-{customer}")
}

/// The amount order `id` is loaded with, 1..=10000.
pub fn initial_amount(order: u64) -> i64 {
    (mix(order) % 10_000) as i64 + 1
}

/// The COPY data of `customers`, one statement.
pub fn customers_copy() -> Vec<CopyBatch> {
    copy_batches(CUSTOMERS, CUSTOMERS, |buf, id| {
        writeln!(buf, "{id}\tcustomer-{id}\t{}", id % 20).expect("writing to BytesMut");
    })
}

/// The COPY data of `orders`: `(id, customer_of(id), initial_amount(id),
/// id % 5 + 1, 'order-<id>')`.
pub fn orders_copy(orders: u64, rows_per_copy: u64) -> Vec<CopyBatch> {
    copy_batches(orders, rows_per_copy, |buf, id| {
        writeln!(
            buf,
            "{id}\t{}\t{}\t{}\torder-{id}",
            customer_of(id),
            initial_amount(id),
            id % 5 + 1
        )
        .expect("writing to BytesMut");
    })
}

/// A row of `per_customer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRow {
    pub id: i32,
    pub name: String,
    pub n: i64,
    pub total: i64,
    pub biggest: i64,
}

impl CustomerRow {
    fn from_row(row: &Row) -> std::result::Result<CustomerRow, String> {
        let col = |i: usize, name: &str| -> std::result::Result<i64, String> {
            row.try_get::<_, SqlInt>(i)
                .map(|v| v.0)
                .map_err(|e| format!("column {name}: {}", error_chain(&e)))
        };
        let id = col(0, "id")?;
        Ok(CustomerRow {
            id: i32::try_from(id).map_err(|_| format!("column id: {id} is not an int"))?,
            name: row
                .try_get::<_, String>(1)
                .map_err(|e| format!("column name: {}", error_chain(&e)))?,
            n: col(2, "n")?,
            total: col(3, "total")?,
            biggest: col(4, "biggest")?,
        })
    }
}

impl std::fmt::Display for CustomerRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "({}, {:?}, n={}, total={}, biggest={})",
            self.id, self.name, self.n, self.total, self.biggest
        )
    }
}

fn show(row: &Option<CustomerRow>) -> String {
    match row {
        Some(r) => r.to_string(),
        None => "no row".to_string(),
    }
}

/// The orders' current amounts, from which `per_customer` is predicted.
pub struct OrderBook {
    /// Indexed by order id - 1.
    amounts: Vec<i64>,
    /// Indexed by customer id - 1: the customer's order ids.
    by_customer: Vec<Vec<u64>>,
}

impl OrderBook {
    /// The orders as loaded.
    pub fn new(orders: u64) -> OrderBook {
        let mut by_customer = vec![Vec::new(); CUSTOMERS as usize];
        let mut amounts = Vec::with_capacity(orders as usize);
        for id in 1..=orders {
            amounts.push(initial_amount(id));
            by_customer[customer_of(id) as usize - 1].push(id);
        }
        OrderBook {
            amounts,
            by_customer,
        }
    }

    pub fn amount(&self, order: u64) -> i64 {
        self.amounts[order as usize - 1]
    }

    pub fn set_amount(&mut self, order: u64, amount: i64) {
        self.amounts[order as usize - 1] = amount;
    }

    /// The customer's expected `per_customer` row (none without orders: the
    /// view is an inner join).
    pub fn row(&self, customer: i32) -> Option<CustomerRow> {
        let ids = &self.by_customer[customer as usize - 1];
        let amounts = ids.iter().map(|&id| self.amount(id));
        Some(CustomerRow {
            id: customer,
            name: customer_name(customer),
            n: ids.len() as i64,
            total: amounts.clone().sum(),
            biggest: amounts.max()?,
        })
    }

    /// The whole expected view, by id.
    pub fn rows(&self) -> Vec<CustomerRow> {
        (1..=CUSTOMERS as i32).filter_map(|c| self.row(c)).collect()
    }
}

/// What a read of one customer's row showed, compared with the rows
/// expected before and after an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    New,
    Old,
    Other(String),
}

pub fn classify(rows: &[Row], old: &Option<CustomerRow>, new: &Option<CustomerRow>) -> Seen {
    let got = match rows {
        [] => None,
        [row] => match CustomerRow::from_row(row) {
            Ok(r) => Some(r),
            Err(e) => return Seen::Other(e),
        },
        _ => return Seen::Other(format!("{} rows", rows.len())),
    };
    classify_row(&got, old, new)
}

pub fn classify_row(
    got: &Option<CustomerRow>,
    old: &Option<CustomerRow>,
    new: &Option<CustomerRow>,
) -> Seen {
    if got == new {
        Seen::New
    } else if got == old {
        Seen::Old
    } else {
        Seen::Other(format!(
            "got {}, expected {} (before the update: {})",
            show(got),
            show(new),
            show(old)
        ))
    }
}

/// Compares the whole of `per_customer` with the prediction; returns the
/// number of wrong rows and a description of the first.
async fn verify_per_customer(client: &Client, book: &OrderBook) -> Result<Option<(u64, String)>> {
    let rows = with_timeout(READ_ALL_CUSTOMERS, BULK_TIMEOUT, async {
        client
            .query(READ_ALL_CUSTOMERS, &[])
            .await
            .map_err(|e| db_err(READ_ALL_CUSTOMERS, e))
    })
    .await?;
    let mut got: BTreeMap<i32, CustomerRow> = BTreeMap::new();
    let mut wrong = 0u64;
    let mut first: Option<String> = None;
    let mut note = |problem: String, wrong: &mut u64| {
        *wrong += 1;
        first.get_or_insert(problem);
    };
    for row in &rows {
        match CustomerRow::from_row(row) {
            Ok(r) => {
                if let Some(dup) = got.insert(r.id, r) {
                    note(format!("customer {} appears twice", dup.id), &mut wrong);
                }
            }
            Err(e) => note(e, &mut wrong),
        }
    }
    for want in book.rows() {
        match got.remove(&want.id) {
            Some(r) if r == want => {}
            Some(r) => note(format!("got {r}, expected {want}"), &mut wrong),
            None => note(format!("missing {want}"), &mut wrong),
        }
    }
    for extra in got.values() {
        note(format!("unexpected row {extra}"), &mut wrong);
    }
    Ok(first.map(|f| {
        (
            wrong,
            format!("{wrong} wrong rows in per_customer; first: {f}"),
        )
    }))
}

#[derive(Clone, Copy, Debug)]
pub struct FreshnessConfig {
    pub orders: u64,
    /// Measured UPDATE-then-read iterations (Freshet).
    pub iterations: u32,
    /// Unmeasured ones before them (checked all the same).
    pub warmup_iterations: u32,
    /// UPDATE + REFRESH iterations (PostgreSQL).
    pub refreshes: u32,
}

/// The freshness run of one system.
#[derive(Debug)]
pub struct FreshnessResult {
    pub maintenance: Maintenance,
    /// Rows of both tables, loaded with COPY.
    pub load_rows: u64,
    pub load_time: Duration,
    /// `CREATE MATERIALIZED VIEW` over the loaded tables (Freshet's backfill).
    pub view_build: Duration,
    pub view_rows: usize,
    /// Iterations run, warm-up included.
    pub iterations: u64,
    /// The measured iterations' latencies: the UPDATE; the read that found
    /// the new row (Refresh: the read after REFRESH); the REFRESH (empty
    /// for Incremental); and from sending the UPDATE until a read showed the
    /// new row (Refresh: UPDATE + REFRESH + read).
    pub update: Latencies,
    pub read: Latencies,
    pub refresh: Latencies,
    pub fresh: Latencies,
    /// Incremental only: the UPDATE and the read sent together on the
    /// writer's connection (pipelined, one round trip), from sending both
    /// until the read's rows arrived. Measured on every other iteration;
    /// the others are the UPDATE-then-read ones above.
    pub pipelined: Latencies,
    /// The UPDATE and a read of the updated order pipelined, before the
    /// view exists, commits not fsynced (Freshet's default; PostgreSQL with
    /// `synchronous_commit = off`): what one write and one read cost over
    /// the wire on this machine, a floor under the system's freshness.
    pub plain: Latencies,
    /// Incremental: first reads after the UPDATE returned that still showed
    /// the old row (must be 0). Refresh: reads between UPDATE and REFRESH
    /// that showed the old row (expected: all of them).
    pub stale_first_reads: u64,
    /// Reads that showed neither the old nor the new row, views that never
    /// caught up, wrong rows in the final full comparison.
    pub wrong: u64,
    pub first_problem: Option<String>,
}

impl FreshnessResult {
    pub fn is_correct(&self) -> bool {
        self.wrong == 0 && (self.maintenance == Maintenance::Refresh || self.stale_first_reads == 0)
    }

    fn note(&mut self, problem: String) {
        self.first_problem.get_or_insert(problem);
    }
}

/// Loads customers + orders, creates `per_customer` (timed), checks it, then
/// updates single orders and times how soon the view shows them.
pub async fn run_freshness(
    label: &str,
    spec: &ConnSpec,
    maintenance: Maintenance,
    cfg: &FreshnessConfig,
    customers: &[CopyBatch],
    orders: &[CopyBatch],
) -> Result<FreshnessResult> {
    let writer = workload::connect(spec).await?;
    execute(&writer, CREATE_CUSTOMERS).await?;
    execute(&writer, CREATE_ORDERS).await?;
    eprintln!(
        "[{label}] loading {CUSTOMERS} customers and {} orders with COPY ...",
        cfg.orders
    );
    let load_time = copy_all(&writer, COPY_CUSTOMERS, customers, None).await?
        + copy_all(&writer, COPY_ORDERS, orders, None).await?;
    let load_rows = CUSTOMERS + cfg.orders;
    let mut book = OrderBook::new(cfg.orders);
    let mut plain = Latencies::default();
    check_count(&writer, "customers", CUSTOMERS).await?;
    check_count(&writer, "orders", cfg.orders).await?;
    eprintln!(
        "[{label}] loaded in {:.2} s ({:.0} rows/s)",
        load_time.as_secs_f64(),
        load_rows as f64 / load_time.as_secs_f64().max(1e-9)
    );
    if maintenance == Maintenance::Refresh {
        // Fresh statistics for PostgreSQL's planner (not timed).
        execute(&writer, "ANALYZE").await?;
    }

    // The floor under any freshness: an UPDATE of one order and a read of
    // it back, pipelined, before any view exists (nothing to maintain).
    eprintln!(
        "[{label}] {PLAIN_ITERATIONS} + {PLAIN_ITERATIONS} warm-up iterations of the UPDATE \
         and `{READ_ORDER_AMOUNT}` pipelined (no view yet) ..."
    );
    let mut rng = Rng::new(Rng::seed_from_clock());
    {
        let update = prepare(&writer, UPDATE_AMOUNT, &[Type::INT8, Type::INT8]).await?;
        let read_order = prepare(&writer, READ_ORDER_AMOUNT, &[Type::INT8]).await?;
        if maintenance == Maintenance::Refresh {
            // Commits acknowledged once in the WAL, not fsynced: the
            // durability of Freshet's default (`sync_commits = false`).
            execute(&writer, "SET synchronous_commit = off").await?;
        }
        for i in 0..2 * PLAIN_ITERATIONS {
            let order = rng.next_u64() % cfg.orders + 1;
            let amount = (rng.next_u64() % 100_000) as i64 + 1;
            let took = plain_update_and_read(&writer, &update, &read_order, order, amount).await?;
            book.set_amount(order, amount);
            if i >= PLAIN_ITERATIONS {
                plain.push(took);
            }
        }
        if maintenance == Maintenance::Refresh {
            execute(&writer, "RESET synchronous_commit").await?;
        }
    }

    eprintln!("[{label}] CREATE MATERIALIZED VIEW per_customer ...");
    let view_build = execute(&writer, CREATE_PER_CUSTOMER).await?;
    let view_rows = book.rows().len();
    eprintln!(
        "[{label}] view built in {:.1} ms",
        view_build.as_secs_f64() * 1e3
    );
    if let Some((_, problem)) = verify_per_customer(&writer, &book).await? {
        bail!("wrong result after CREATE MATERIALIZED VIEW: {problem}");
    }

    // Reads go through a second connection: a change must be visible to
    // every session once the UPDATE has returned, not only to its own.
    let reader = workload::connect(spec).await?;
    let update = prepare(&writer, UPDATE_AMOUNT, &[Type::INT8, Type::INT8]).await?;
    let read = prepare(&reader, READ_CUSTOMER, &[Type::INT4]).await?;
    let own_read = prepare(&writer, READ_CUSTOMER, &[Type::INT4]).await?;

    let mut result = FreshnessResult {
        maintenance,
        load_rows,
        load_time,
        view_build,
        view_rows,
        iterations: 0,
        update: Latencies::default(),
        read: Latencies::default(),
        refresh: Latencies::default(),
        fresh: Latencies::default(),
        pipelined: Latencies::default(),
        plain,
        stale_first_reads: 0,
        wrong: 0,
        first_problem: None,
    };
    let (warmup, measured) = match maintenance {
        Maintenance::Incremental => (cfg.warmup_iterations, cfg.iterations),
        Maintenance::Refresh => (0, cfg.refreshes),
    };
    match maintenance {
        Maintenance::Incremental => eprintln!(
            "[{label}] {warmup} warm-up + {measured} measured iterations, alternately UPDATE then \
             read, and UPDATE and read pipelined ..."
        ),
        Maintenance::Refresh => eprintln!(
            "[{label}] {measured} iterations of UPDATE, then {REFRESH_PER_CUSTOMER}, then read ..."
        ),
    }
    for i in 0..warmup + measured {
        let order = rng.next_u64() % cfg.orders + 1;
        let customer = customer_of(order);
        let mut amount = (rng.next_u64() % 100_000) as i64 + 1;
        if amount == book.amount(order) {
            amount += 1;
        }
        let old = book.row(customer);
        book.set_amount(order, amount);
        let new = book.row(customer);
        let step = Step {
            update: &update,
            read: &read,
            own_read: &own_read,
            writer: &writer,
            reader: &reader,
            order,
            amount,
            customer,
            old: &old,
            new: &new,
        };
        let pipelined = maintenance == Maintenance::Incremental && i % 2 == 1;
        if pipelined {
            let took = step.pipelined(&mut result).await?;
            result.iterations += 1;
            if i >= warmup {
                result.pipelined.push(took);
            }
            continue;
        }
        let timings = match maintenance {
            Maintenance::Incremental => step.incremental(&mut result).await?,
            Maintenance::Refresh => step.refresh(&mut result).await?,
        };
        result.iterations += 1;
        if i >= warmup {
            result.update.push(timings.update);
            result.read.push(timings.read);
            if let Some(refresh) = timings.refresh {
                result.refresh.push(refresh);
            }
            result.fresh.push(timings.fresh);
        }
    }

    if let Some((wrong, problem)) = verify_per_customer(&reader, &book).await? {
        result.wrong += wrong;
        result.note(format!("after the updates: {problem}"));
    }
    if result.wrong > 0 || (maintenance == Maintenance::Incremental && result.stale_first_reads > 0)
    {
        eprintln!(
            "[{label}] {} stale first reads, {} wrong; first problem: {}",
            result.stale_first_reads,
            result.wrong,
            result.first_problem.as_deref().unwrap_or("-")
        );
    }
    Ok(result)
}

/// The UPDATE of `order` and a read of its amount, pipelined on one
/// connection; checks that the read saw the update.
async fn plain_update_and_read(
    client: &Client,
    update: &Statement,
    read: &Statement,
    order: u64,
    amount: i64,
) -> Result<Duration> {
    let start = Instant::now();
    let id = order as i64;
    let (n, rows) = with_timeout(READ_ORDER_AMOUNT, STATEMENT_TIMEOUT, async {
        let update_params: [&(dyn ToSql + Sync); 2] = [&amount, &id];
        let read_params: [&(dyn ToSql + Sync); 1] = [&id];
        let (n, rows) = futures::join!(
            client.execute(update, &update_params),
            client.query(read, &read_params)
        );
        Ok((
            n.map_err(|e| db_err(UPDATE_AMOUNT, e))?,
            rows.map_err(|e| db_err(READ_ORDER_AMOUNT, e))?,
        ))
    })
    .await?;
    let elapsed = start.elapsed();
    let seen: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    if n != 1 || seen != [amount] {
        bail!("UPDATE of order {order} to {amount}: {n} rows updated, then read {seen:?}");
    }
    Ok(elapsed)
}

/// One iteration of the freshness loop.
struct Step<'a> {
    writer: &'a Client,
    reader: &'a Client,
    update: &'a Statement,
    read: &'a Statement,
    /// `read`, prepared on the writer's connection.
    own_read: &'a Statement,
    order: u64,
    amount: i64,
    customer: i32,
    old: &'a Option<CustomerRow>,
    new: &'a Option<CustomerRow>,
}

struct StepTimings {
    update: Duration,
    read: Duration,
    refresh: Option<Duration>,
    fresh: Duration,
}

impl Step<'_> {
    async fn run_update(&self) -> Result<Duration> {
        let start = Instant::now();
        let n = with_timeout(UPDATE_AMOUNT, STATEMENT_TIMEOUT, async {
            self.writer
                .execute(self.update, &[&self.amount, &(self.order as i64)])
                .await
                .map_err(|e| db_err(UPDATE_AMOUNT, e))
        })
        .await?;
        let elapsed = start.elapsed();
        if n != 1 {
            bail!(
                "wrong result: UPDATE orders SET amount = {} WHERE id = {} reported {n} rows, expected 1",
                self.amount,
                self.order
            );
        }
        Ok(elapsed)
    }

    async fn run_read(&self) -> Result<(Seen, Duration)> {
        let start = Instant::now();
        let rows = with_timeout(READ_CUSTOMER, STATEMENT_TIMEOUT, async {
            self.reader
                .query(self.read, &[&self.customer])
                .await
                .map_err(|e| db_err(READ_CUSTOMER, e))
        })
        .await?;
        let elapsed = start.elapsed();
        Ok((classify(&rows, self.old, self.new), elapsed))
    }

    fn what(&self) -> String {
        format!(
            "after UPDATE orders SET amount = {} WHERE id = {}, per_customer row {}",
            self.amount, self.order, self.customer
        )
    }

    /// UPDATE, then read until the row is new (the first read must be).
    async fn incremental(&self, result: &mut FreshnessResult) -> Result<StepTimings> {
        let start = Instant::now();
        let update = self.run_update().await?;
        let (seen, read) = self.run_read().await?;
        let mut fresh = start.elapsed();
        match seen {
            Seen::New => {}
            Seen::Old | Seen::Other(_) => {
                if let Seen::Other(problem) = &seen {
                    result.wrong += 1;
                    result.note(format!("{}: {problem}", self.what()));
                } else {
                    result.stale_first_reads += 1;
                    result.note(format!(
                        "{}: the first read after the UPDATE returned still showed the old row {}",
                        self.what(),
                        show(self.old)
                    ));
                }
                // How long until it does show up.
                loop {
                    if start.elapsed() > FRESHNESS_TIMEOUT {
                        bail!(
                            "wrong result: {} did not show the update within {} s (expected {})",
                            self.what(),
                            FRESHNESS_TIMEOUT.as_secs(),
                            show(self.new)
                        );
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    if let (Seen::New, _) = self.run_read().await? {
                        fresh = start.elapsed();
                        break;
                    }
                }
            }
        }
        Ok(StepTimings {
            update,
            read,
            refresh: None,
            fresh,
        })
    }

    /// The UPDATE and the read sent back to back on one connection: the
    /// server runs them in order, so the read must show the new row, and
    /// the client pays one round trip for both.
    async fn pipelined(&self, result: &mut FreshnessResult) -> Result<Duration> {
        let start = Instant::now();
        let (n, rows) = with_timeout(READ_CUSTOMER, STATEMENT_TIMEOUT, async {
            let order = self.order as i64;
            let update_params: [&(dyn ToSql + Sync); 2] = [&self.amount, &order];
            let read_params: [&(dyn ToSql + Sync); 1] = [&self.customer];
            let update = self.writer.execute(self.update, &update_params);
            let read = self.writer.query(self.own_read, &read_params);
            let (n, rows) = futures::join!(update, read);
            Ok((
                n.map_err(|e| db_err(UPDATE_AMOUNT, e))?,
                rows.map_err(|e| db_err(READ_CUSTOMER, e))?,
            ))
        })
        .await?;
        let elapsed = start.elapsed();
        if n != 1 {
            bail!(
                "wrong result: UPDATE orders SET amount = {} WHERE id = {} (pipelined) \
                 reported {n} rows, expected 1",
                self.amount,
                self.order
            );
        }
        match classify(&rows, self.old, self.new) {
            Seen::New => {}
            Seen::Old => {
                result.stale_first_reads += 1;
                result.note(format!(
                    "{}: the read pipelined after the UPDATE still showed the old row {}",
                    self.what(),
                    show(self.old)
                ));
            }
            Seen::Other(problem) => {
                result.wrong += 1;
                result.note(format!("{} (pipelined): {problem}", self.what()));
            }
        }
        Ok(elapsed)
    }

    /// UPDATE, read (expected stale), REFRESH, read (must be new).
    async fn refresh(&self, result: &mut FreshnessResult) -> Result<StepTimings> {
        let update = self.run_update().await?;
        match self.run_read().await?.0 {
            Seen::Old => result.stale_first_reads += 1,
            Seen::New => {}
            Seen::Other(problem) => {
                result.wrong += 1;
                result.note(format!("{} (before REFRESH): {problem}", self.what()));
            }
        }
        let refresh = execute(self.writer, REFRESH_PER_CUSTOMER).await?;
        let (seen, read) = self.run_read().await?;
        match seen {
            Seen::New => {}
            Seen::Old => {
                result.wrong += 1;
                result.note(format!(
                    "{}: still the old row {} after REFRESH",
                    self.what(),
                    show(self.old)
                ));
            }
            Seen::Other(problem) => {
                result.wrong += 1;
                result.note(format!("{} (after REFRESH): {problem}", self.what()));
            }
        }
        Ok(StepTimings {
            update,
            read,
            refresh: Some(refresh),
            fresh: update + refresh + read,
        })
    }
}

// ---------------------------------------------------------------------------
// ivm-throughput

/// Rows of the dimension table.
pub const DIM_ROWS: u64 = 10_000;
/// Distinct `dim.category` values.
pub const CATEGORIES: u64 = 100;

pub const CREATE_DIM: &str =
    "CREATE TABLE dim (id int PRIMARY KEY, category int NOT NULL, name text NOT NULL)";
pub const CREATE_FACTS: &str = "CREATE TABLE facts (id bigint PRIMARY KEY, k bigint NOT NULL, \
     v bigint NOT NULL, dim_id int NOT NULL)";
pub const COPY_DIM: &str = "COPY dim FROM STDIN";
pub const COPY_FACTS: &str = "COPY facts FROM STDIN";

/// A view fed by `facts`.
#[derive(Debug, PartialEq, Eq)]
pub struct ViewDef {
    pub name: &'static str,
    /// What kind of view it is, for the report.
    pub kind: &'static str,
    pub create: &'static str,
    /// All rows as (group, n, total).
    pub read_all: &'static str,
}

/// Filter + group-by.
pub const BY_G: ViewDef = ViewDef {
    name: "by_g",
    kind: "filter+group-by",
    create: "CREATE MATERIALIZED VIEW by_g AS SELECT k % 1000 AS g, count(*) AS n, \
             sum(v) AS total FROM facts WHERE v > 10 GROUP BY k % 1000",
    read_all: "SELECT g, n, total FROM by_g",
};

/// Join with the dimension table + group-by a dimension column.
pub const BY_CATEGORY: ViewDef = ViewDef {
    name: "by_category",
    kind: "join+group-by",
    create: "CREATE MATERIALIZED VIEW by_category AS SELECT d.category, count(*) AS n, \
             sum(f.v) AS total FROM facts f JOIN dim d ON f.dim_id = d.id GROUP BY d.category",
    read_all: "SELECT category, n, total FROM by_category",
};

/// One row of `facts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fact {
    pub id: u64,
    /// 0..1_000_000
    pub k: i64,
    /// 0..1000 (about 1.1% are filtered out by `v > 10`)
    pub v: i64,
    /// 1..=DIM_ROWS
    pub dim_id: i32,
}

pub fn fact(id: u64) -> Fact {
    let h = mix(id ^ 0xFAC7_0000_0000_0000);
    Fact {
        id,
        k: (h % 1_000_000) as i64,
        v: ((h >> 20) % 1000) as i64,
        dim_id: ((h >> 40) % DIM_ROWS) as i32 + 1,
    }
}

pub fn category_of(dim_id: i32) -> i64 {
    dim_id as i64 % CATEGORIES as i64
}

/// The expected contents of the views: group → (n, total).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThroughputExpected {
    pub by_g: BTreeMap<i64, (i64, i64)>,
    pub by_category: BTreeMap<i64, (i64, i64)>,
}

impl ThroughputExpected {
    pub fn add(&mut self, f: &Fact) {
        if f.v > 10 {
            let e = self.by_g.entry(f.k % 1000).or_default();
            e.0 += 1;
            e.1 += f.v;
        }
        let e = self.by_category.entry(category_of(f.dim_id)).or_default();
        e.0 += 1;
        e.1 += f.v;
    }

    pub fn of(&self, view: &ViewDef) -> &BTreeMap<i64, (i64, i64)> {
        if view == &BY_G {
            &self.by_g
        } else {
            &self.by_category
        }
    }
}

/// The data of `ivm-throughput`, generated once before any timing.
pub struct ThroughputData {
    pub rows: u64,
    pub dim: Vec<CopyBatch>,
    pub facts: Vec<CopyBatch>,
    pub expected: ThroughputExpected,
}

impl ThroughputData {
    pub fn generate(rows: u64, rows_per_copy: u64) -> ThroughputData {
        let dim = copy_batches(DIM_ROWS, DIM_ROWS, |buf, id| {
            writeln!(buf, "{id}\t{}\tdim-{id}", category_of(id as i32)).expect("writing");
        });
        let mut expected = ThroughputExpected::default();
        let facts = copy_batches(rows, rows_per_copy, |buf, id| {
            let f = fact(id);
            expected.add(&f);
            writeln!(buf, "{id}\t{}\t{}\t{}", f.k, f.v, f.dim_id).expect("writing");
        });
        ThroughputData {
            rows,
            dim,
            facts,
            expected,
        }
    }
}

/// Loading `facts` with a set of views in place.
#[derive(Debug)]
pub struct LoadResult {
    pub rows: u64,
    /// All COPY statements into `facts`, first start to last completion.
    pub load_time: Duration,
    /// Refresh: `REFRESH MATERIALIZED VIEW` of each view after the load.
    pub refresh: Vec<(&'static str, Duration)>,
}

impl LoadResult {
    /// Rows per second until the data is loaded and the given views are
    /// current (for Refresh: the load plus their REFRESH).
    pub fn rows_per_sec(&self, views: &[&ViewDef]) -> f64 {
        let refresh: Duration = self
            .refresh
            .iter()
            .filter(|(name, _)| views.iter().any(|v| v.name == *name))
            .map(|(_, d)| *d)
            .sum();
        self.rows as f64 / (self.load_time + refresh).as_secs_f64().max(1e-9)
    }
}

/// Compares a view with its prediction; `Some(problem)` if it differs.
async fn view_problem(
    client: &Client,
    view: &ViewDef,
    expected: &BTreeMap<i64, (i64, i64)>,
) -> Result<Option<String>> {
    let rows = with_timeout(view.read_all, BULK_TIMEOUT, async {
        client
            .query(view.read_all, &[])
            .await
            .map_err(|e| db_err(view.read_all, e))
    })
    .await?;
    let mut got = BTreeMap::new();
    for row in &rows {
        let get = |i: usize| -> Result<i64> {
            Ok(row
                .try_get::<_, SqlInt>(i)
                .map_err(|e| db_err(view.read_all, e))?
                .0)
        };
        if got.insert(get(0)?, (get(1)?, get(2)?)).is_some() {
            return Ok(Some(format!("group {} appears twice", get(0)?)));
        }
    }
    Ok(map_difference(&got, expected).map(|d| {
        format!(
            "{}: {} rows, expected {}; {d}",
            view.name,
            got.len(),
            expected.len()
        )
    }))
}

/// The first difference between two group → (n, total) maps.
pub fn map_difference(
    got: &BTreeMap<i64, (i64, i64)>,
    want: &BTreeMap<i64, (i64, i64)>,
) -> Option<String> {
    for (g, w) in want {
        match got.get(g) {
            Some(v) if v == w => {}
            Some(v) => {
                return Some(format!(
                    "group {g}: got (n={}, total={}), expected (n={}, total={})",
                    v.0, v.1, w.0, w.1
                ))
            }
            None => return Some(format!("group {g} is missing")),
        }
    }
    got.keys()
        .find(|g| !want.contains_key(g))
        .map(|g| format!("unexpected group {g}"))
}

/// Creates `dim` (loaded, not timed) and `facts`, creates `views`, then
/// loads `facts` with one COPY per batch (timed). Incremental: the views are
/// checked right after the last COPY returns. Refresh: each view is then
/// refreshed (timed) and checked.
pub async fn run_throughput(
    label: &str,
    spec: &ConnSpec,
    maintenance: Maintenance,
    views: &[&ViewDef],
    data: &ThroughputData,
) -> Result<LoadResult> {
    let client = workload::connect(spec).await?;
    execute(&client, CREATE_DIM).await?;
    copy_all(&client, COPY_DIM, &data.dim, None).await?;
    execute(&client, CREATE_FACTS).await?;
    for view in views {
        execute(&client, view.create).await?;
    }
    let names = view_names(views);
    eprintln!(
        "[{label}] loading {} rows into facts ({} COPY statements), views: {names} ...",
        data.rows,
        data.facts.len()
    );
    let load_time = copy_all(&client, COPY_FACTS, &data.facts, Some(label)).await?;
    eprintln!(
        "[{label}] loaded in {:.2} s ({:.0} rows/s)",
        load_time.as_secs_f64(),
        data.rows as f64 / load_time.as_secs_f64().max(1e-9)
    );
    let mut refresh = Vec::new();
    for view in views {
        if maintenance == Maintenance::Refresh {
            if refresh.is_empty() {
                execute(&client, "ANALYZE").await?; // not timed
            }
            let sql = format!("REFRESH MATERIALIZED VIEW {}", view.name);
            let took = execute(&client, &sql).await?;
            eprintln!("[{label}] {sql}: {:.2} s", took.as_secs_f64());
            refresh.push((view.name, took));
        }
        if let Some(problem) = view_problem(&client, view, data.expected.of(view)).await? {
            // Tell a view that lags apart from one that is wrong.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let later = match view_problem(&client, view, data.expected.of(view)).await? {
                Some(_) => "still wrong 2 s later",
                None => "correct 2 s later: the view lagged behind the COPY",
            };
            bail!("wrong result after loading facts: {problem} ({later})");
        }
    }
    check_count(&client, "facts", data.rows).await?;
    Ok(LoadResult {
        rows: data.rows,
        load_time,
        refresh,
    })
}

pub fn view_names(views: &[&ViewDef]) -> String {
    if views.is_empty() {
        "none".to_string()
    } else {
        views.iter().map(|v| v.name).collect::<Vec<_>>().join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, digits.
    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale]
            .into_iter()
            .chain(digits.iter().copied())
        {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_integers() {
        assert_eq!(numeric_to_i64(&numeric(0, 0, 0, &[])), Ok(0));
        assert_eq!(numeric_to_i64(&numeric(0, 0, 0, &[7])), Ok(7));
        assert_eq!(
            numeric_to_i64(&numeric(1, 0, 0, &[1234, 5678])),
            Ok(12_345_678)
        );
        // 10000 = one digit of weight 1; trailing zero digits are omitted.
        assert_eq!(numeric_to_i64(&numeric(1, 0, 0, &[1])), Ok(10_000));
        assert_eq!(numeric_to_i64(&numeric(2, 0, 0, &[5])), Ok(500_000_000));
        assert_eq!(numeric_to_i64(&numeric(0, 0x4000, 0, &[5])), Ok(-5));
        // A zero fraction is fine (dscale 2: "42.00").
        assert_eq!(numeric_to_i64(&numeric(0, 0, 2, &[42])), Ok(42));
        assert_eq!(
            numeric_to_i64(&numeric(4, 0, 0, &[922, 3372, 368, 5477, 5807])),
            Ok(i64::MAX)
        );
        assert_eq!(
            numeric_to_i64(&numeric(4, 0x4000, 0, &[922, 3372, 368, 5477, 5808])),
            Ok(i64::MIN)
        );
    }

    #[test]
    fn numeric_rejects_non_integers() {
        assert!(numeric_to_i64(&numeric(0, 0, 1, &[1, 5000])).is_err()); // 1.5
        assert!(numeric_to_i64(&numeric(-1, 0, 1, &[5000])).is_err()); // 0.5
        assert!(numeric_to_i64(&numeric(4, 0, 0, &[922, 3372, 368, 5477, 5808])).is_err());
        assert!(numeric_to_i64(&numeric(100, 0, 0, &[1])).is_err());
        assert!(numeric_to_i64(&numeric(0, 0xC000, 0, &[])).is_err()); // NaN
        assert!(numeric_to_i64(&numeric(0, 0, 0, &[10_000])).is_err());
        assert!(numeric_to_i64(&[0, 1, 0, 0, 0, 0]).is_err());
        assert!(numeric_to_i64(&numeric(0, 0, 0, &[1])[..9]).is_err());
    }

    fn text(batch: &CopyBatch) -> String {
        let bytes: Vec<u8> = batch
            .chunks
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn copy_batches_split_by_rows_and_bytes() {
        let batches = copy_batches(25_000, 10_000, |buf, id| {
            writeln!(buf, "{id}\tsome padding to make rows longer").unwrap();
        });
        assert_eq!(
            batches.iter().map(|b| b.rows).collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
        for b in &batches {
            assert!(b.chunks.len() > 1);
            assert!(b.chunks.iter().all(|c| c.len() <= COPY_CHUNK_BYTES + 256));
            assert!(b.chunks.iter().all(|c| !c.is_empty()));
        }
        let first = text(&batches[0]);
        assert!(first.starts_with("1\t"));
        assert!(first.ends_with("\n10000\tsome padding to make rows longer\n"));
        assert!(text(&batches[1]).starts_with("10001\t"));
        assert_eq!(text(&batches[2]).lines().count(), 5_000);
        assert!(copy_batches(0, 10, |_, _| unreachable!()).is_empty());
        let exact = copy_batches(20, 10, |buf, id| writeln!(buf, "{id}").unwrap());
        assert_eq!(exact.len(), 2);
        assert_eq!(
            text(&exact[1]),
            (11..=20).map(|i| format!("{i}\n")).collect::<String>()
        );
    }

    #[test]
    fn customers_and_orders_data() {
        // Every customer gets the same number of orders.
        let mut per_customer = vec![0u32; CUSTOMERS as usize];
        for id in 1..=3 * CUSTOMERS {
            per_customer[customer_of(id) as usize - 1] += 1;
        }
        assert!(per_customer.iter().all(|&n| n == 3));
        assert!((1..1000).all(|id| (1..=10_000).contains(&initial_amount(id))));

        let customers = customers_copy();
        assert_eq!(customers.len(), 1);
        let text_c = text(&customers[0]);
        assert_eq!(text_c.lines().count(), CUSTOMERS as usize);
        assert!(text_c.starts_with("1\tcustomer-1\t1\n"));

        let orders = orders_copy(250, 100);
        assert_eq!(
            orders.iter().map(|b| b.rows).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let line = text(&orders[0]).lines().nth(6).unwrap().to_string();
        assert_eq!(
            line,
            format!("7\t{}\t{}\t3\torder-7", customer_of(7), initial_amount(7))
        );
    }

    #[test]
    fn order_book_predicts_the_view() {
        let mut book = OrderBook::new(2 * CUSTOMERS);
        assert_eq!(book.rows().len(), CUSTOMERS as usize);
        // Customer of order 1 also owns order 1 + CUSTOMERS.
        let c = customer_of(1);
        assert_eq!(customer_of(1 + CUSTOMERS), c);
        let (a, b) = (initial_amount(1), initial_amount(1 + CUSTOMERS));
        let before = book.row(c).unwrap();
        assert_eq!(
            before,
            CustomerRow {
                id: c,
                name: customer_name(c),
                n: 2,
                total: a + b,
                biggest: a.max(b),
            }
        );
        book.set_amount(1, 1_000_000);
        let after = book.row(c).unwrap();
        assert_eq!(
            (after.n, after.total, after.biggest),
            (2, b + 1_000_000, 1_000_000)
        );
        // Lowering the maximum again: max comes from the other order.
        book.set_amount(1, 0);
        assert_eq!(book.row(c).unwrap().biggest, b);

        // Fewer orders than customers: customers without orders have no row.
        let small = OrderBook::new(10);
        assert_eq!(small.rows().len(), 10);
        assert_eq!(small.row(customer_of(11)), None);
    }

    #[test]
    fn classification() {
        let old = Some(CustomerRow {
            id: 1,
            name: "customer-1".into(),
            n: 2,
            total: 10,
            biggest: 7,
        });
        let new = Some(CustomerRow {
            total: 12,
            biggest: 9,
            ..old.clone().unwrap()
        });
        assert_eq!(classify_row(&new, &old, &new), Seen::New);
        assert_eq!(classify_row(&old, &old, &new), Seen::Old);
        assert!(matches!(classify_row(&None, &old, &new), Seen::Other(_)));
        let mut other = new.clone();
        other.as_mut().unwrap().n = 3;
        match classify_row(&other, &old, &new) {
            Seen::Other(s) => assert!(s.contains("n=3") && s.contains("total=12"), "{s}"),
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn facts_and_expected_views() {
        let data = ThroughputData::generate(20_000, 5_000);
        assert_eq!(data.facts.len(), 4);
        assert_eq!(data.dim.len(), 1);
        assert_eq!(text(&data.dim[0]).lines().count(), DIM_ROWS as usize);
        assert!(text(&data.dim[0]).starts_with("1\t1\tdim-1\n"));

        // Recompute the views from the COPY text itself.
        let mut from_text = ThroughputExpected::default();
        let mut filtered = 0;
        for batch in &data.facts {
            for line in text(batch).lines() {
                let f: Vec<i64> = line.split('\t').map(|x| x.parse().unwrap()).collect();
                let fact = Fact {
                    id: f[0] as u64,
                    k: f[1],
                    v: f[2],
                    dim_id: f[3] as i32,
                };
                assert_eq!(fact, super::fact(fact.id));
                assert!((0..1_000_000).contains(&fact.k));
                assert!((0..1000).contains(&fact.v));
                assert!((1..=DIM_ROWS as i32).contains(&fact.dim_id));
                filtered += (fact.v <= 10) as u32;
                from_text.add(&fact);
            }
        }
        assert_eq!(from_text, data.expected);
        assert!(filtered > 0);
        assert_eq!(data.expected.by_g.len(), 1000);
        assert_eq!(data.expected.by_category.len(), CATEGORIES as usize);
        let n: i64 = data.expected.by_category.values().map(|e| e.0).sum();
        assert_eq!(n, 20_000);
        let n_g: i64 = data.expected.by_g.values().map(|e| e.0).sum();
        assert_eq!(n_g, 20_000 - filtered as i64);
        assert_eq!(data.expected.of(&BY_G), &data.expected.by_g);
        assert_eq!(data.expected.of(&BY_CATEGORY), &data.expected.by_category);
    }

    #[test]
    fn map_differences() {
        let want: BTreeMap<i64, (i64, i64)> = [(1, (2, 3)), (2, (1, 1))].into();
        assert_eq!(map_difference(&want, &want), None);
        let mut got = want.clone();
        got.insert(2, (1, 2));
        assert!(map_difference(&got, &want).unwrap().contains("group 2"));
        got.remove(&2);
        assert!(map_difference(&got, &want).unwrap().contains("missing"));
        let mut got = want.clone();
        got.insert(9, (1, 1));
        assert!(map_difference(&got, &want)
            .unwrap()
            .contains("unexpected group 9"));
    }

    #[test]
    fn rows_per_sec_counts_refreshes_of_the_views_asked_for() {
        let r = LoadResult {
            rows: 1000,
            load_time: Duration::from_secs(1),
            refresh: vec![
                ("by_g", Duration::from_secs(1)),
                ("by_category", Duration::from_secs(3)),
            ],
        };
        assert_eq!(r.rows_per_sec(&[]), 1000.0);
        assert_eq!(r.rows_per_sec(&[&BY_G]), 500.0);
        assert_eq!(r.rows_per_sec(&[&BY_CATEGORY]), 250.0);
        assert_eq!(r.rows_per_sec(&[&BY_G, &BY_CATEGORY]), 200.0);
        assert_eq!(view_names(&[]), "none");
        assert_eq!(view_names(&[&BY_G, &BY_CATEGORY]), "by_g + by_category");
    }
}
