//! Randomized differential oracle for incremental materialized views.
//!
//! Each case starts a fresh `freshet` process, creates 2–3 random tables,
//! loads a few rows, and creates 2–4 random materialized views built from a
//! grammar that covers filters with arbitrary scalar expressions, projections,
//! inner/left/right/full equi-joins (sometimes with an extra non-equi ON
//! condition), grouped and global aggregates (count, count(x),
//! count(DISTINCT x), sum, avg, min, max, bool_and, bool_or, string_agg, with
//! HAVING), DISTINCT, UNION [ALL] / INTERSECT / EXCEPT, ORDER BY … LIMIT
//! [OFFSET], per-group top-N with ROW_NUMBER(), window functions (ranking,
//! lag/lead, running and framed aggregates, filtered on a rank), IN / EXISTS
//! / scalar subqueries, CTEs, and views on the earlier views of the case. Then it runs
//! a random stream of INSERT / UPDATE (also of the primary key) / DELETE /
//! upsert statements. After every statement every view must hold exactly
//! what its defining query returns when run as an ad-hoc batch query,
//! `SELECT * FROM (<definition>) q`, on the same connection (compared as
//! multisets of text rows). Half of the cases restart the server part-way
//! (SIGTERM or SIGKILL, same data directory); the views must then be
//! identical to what they were before the restart, and stay correct.
//!
//! A view that `CREATE MATERIALIZED VIEW` rejects with SQLSTATE 0A000
//! (feature not supported) is allowed and listed in the summary, but the
//! test fails if more than 30% of the generated views are rejected. Any
//! other error fails the test. On a mismatch the case is shrunk (statements
//! and other views are removed while the mismatch still reproduces) and
//! written to `sqllogictest/slt/mv/regress/oracle_<seed>.slt`.
//!
//! Environment:
//! * `FRESHET_ORACLE_SEED=<u64>|random`: the master seed (default: a fixed
//!   seed, so CI is reproducible; `random` takes one from the clock; it is
//!   printed). Case 0 runs with the master seed itself, so the seed a
//!   failure prints reproduces that case alone with `FRESHET_ORACLE_CASES=1`.
//! * `FRESHET_ORACLE_CASES=<n>`: number of cases (default 300, about seven
//!   minutes in a debug build on two cores). Long mode is a larger number.
//! * `FRESHET_ORACLE_KEEP_GOING=1`: keep running cases after a failure (up to
//!   `FRESHET_ORACLE_MAX_FAILURES`, default 5) and report them all at the end.
//! * `FRESHET_ORACLE_NO_SHRINK=1`: report failures without shrinking them.
//! * `FRESHET_ORACLE_JOBS=<n>`: cases run side by side (default 2; each has
//!   its own server process).
//!
//! The generator leaves out `INTERSECT ALL` / `EXCEPT ALL` on purpose: the
//! batch engine currently gives them set semantics (multiplicities are
//! ignored), so the batch query is not a trustworthy oracle for them.
//!
//! The code is split into modules: `rng` (the seeded random numbers),
//! `schema` (the model of tables, views and columns), `generator` (the
//! random case generator: `tables` for tables, rows and DML statements,
//! `expr` for scalar expressions, predicates and aggregates, `query` for FROM
//! sources and query shapes, `window` for per-group top-N and window
//! functions), `runner` (running a case against the server and checking the
//! views), `shrink` (replaying and shrinking a mismatch) and `slt` (writing a
//! shrunk case as an `.slt` file). This file holds the configuration and the
//! two tests.
#![allow(clippy::await_holding_lock)]

#[path = "../common/mod.rs"]
mod common;
mod generator;
mod runner;
mod schema;
mod shrink;
mod slt;

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use freshet_sqllogictest::rng::Rng;
use futures::{FutureExt, SinkExt, StreamExt};
use std::panic::AssertUnwindSafe;
use tokio_postgres::Client;

use crate::runner::{generate_and_run, Case, CaseError, Conn, Rows, Stats, Step};
use crate::slt::{multiset_minus, render_rows, report_mismatch};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

const DEFAULT_CASES: usize = 300;
/// The master seed `cargo test` runs with.
const DEFAULT_SEED: u64 = 0x00f7_e540_1d5e_ed01;
/// Cases run side by side (each has its own server process).
const DEFAULT_JOBS: usize = 2;
/// A view check or statement that takes longer than this is a failure.
pub(crate) const QUERY_TIMEOUT: Duration = Duration::from_secs(120);
/// More rejected views than this share fails the test.
const MAX_REJECTED_PERCENT: usize = 30;
/// The share is only judged once this many views were generated.
const MIN_VIEWS_FOR_RATIO: usize = 20;
/// Shrinking stops after this many replays or this much time.
pub(crate) const SHRINK_MAX_REPLAYS: usize = 300;
pub(crate) const SHRINK_MAX_TIME: Duration = Duration::from_secs(180);

/// The two tests start servers and measure restart times: run them one at a
/// time so that they do not disturb each other on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}

fn env_flag(name: &str) -> bool {
    env_nonempty(name).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn parse_seed(s: &str) -> u64 {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("FRESHET_ORACLE_SEED={s:?} is not a u64"))
}

/// The seed of case `i` of a run with master seed `master`.
fn case_seed(master: u64, i: usize) -> u64 {
    if i == 0 {
        master
    } else {
        Rng::new(master ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
    }
}

/// One finished case of the generating run.
struct CaseRun {
    index: usize,
    case: Case,
    stats: Stats,
    err: Option<CaseError>,
    elapsed: Duration,
}

/// Run case `index`; a panic inside it (say, a server that does not start)
/// becomes an error of that case, so that its seed is reported.
async fn run_case(index: usize, seed: u64) -> CaseRun {
    let t0 = Instant::now();
    let result = AssertUnwindSafe(async {
        let mut stats = Stats::default();
        let (case, err) = generate_and_run(seed, &mut stats).await;
        (case, stats, err)
    })
    .catch_unwind()
    .await;
    let (case, mut stats, err) = match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            (
                Case {
                    seed,
                    setup: Vec::new(),
                    views: Vec::new(),
                    steps: Vec::new(),
                    outcomes: Vec::new(),
                },
                Stats::default(),
                Some(CaseError::Other(format!("the case panicked: {msg}"))),
            )
        }
    };
    stats.cases = 1;
    CaseRun {
        index,
        case,
        stats,
        err,
        elapsed: t0.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_match_batch_queries_after_every_statement() {
    let _serial = serial();
    // A fixed master seed by default, so `cargo test` is reproducible;
    // `FRESHET_ORACLE_SEED=random` explores new cases from the clock.
    let master = match env_nonempty("FRESHET_ORACLE_SEED").as_deref() {
        Some("random") | Some("clock") => Rng::new(Rng::seed_from_clock()).next_u64(),
        Some(s) => parse_seed(s),
        None => DEFAULT_SEED,
    };
    let cases: usize = env_nonempty("FRESHET_ORACLE_CASES")
        .map(|s| {
            s.trim()
                .parse()
                .expect("FRESHET_ORACLE_CASES must be a number")
        })
        .unwrap_or(DEFAULT_CASES);
    let keep_going = env_flag("FRESHET_ORACLE_KEEP_GOING");
    let no_shrink = env_flag("FRESHET_ORACLE_NO_SHRINK");
    let max_failures: usize = env_nonempty("FRESHET_ORACLE_MAX_FAILURES")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(5);
    let jobs: usize = env_nonempty("FRESHET_ORACLE_JOBS")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_JOBS);
    eprintln!(
        "ivm_oracle: master seed {master}, {cases} cases, {jobs} at a time (reproduce the run \
         with FRESHET_ORACLE_SEED={master} FRESHET_ORACLE_CASES={cases})"
    );

    let started = Instant::now();
    let mut stats = Stats::default();
    // Each case has its own server, so cases can run side by side.
    let mut runs = futures::stream::iter(0..cases)
        .map(|i| run_case(i, case_seed(master, i)))
        .buffered(jobs.max(1));
    let mut failed: Vec<(Case, CaseError)> = Vec::new();
    while let Some(run) = runs.next().await {
        stats.merge(&run.stats);
        let restart = run.case.steps.iter().find_map(|s| match s {
            Step::Restart { kill: true } => Some("SIGKILL"),
            Step::Restart { kill: false } => Some("SIGTERM"),
            _ => None,
        });
        eprintln!(
            "case {:>3} seed {:>20}: {} tables, {} views (+{} rejected), {} statements, \
             restart: {}, {} ms{}",
            run.index,
            run.case.seed,
            run.case.setup.len(),
            run.stats.views_created,
            run.stats.views_rejected,
            run.stats.statements,
            restart.unwrap_or("none"),
            run.elapsed.as_millis(),
            if run.err.is_some() {
                "  ** FAILED **"
            } else {
                ""
            }
        );
        if let Some(err) = run.err {
            failed.push((run.case, err));
            if !keep_going || failed.len() >= max_failures {
                break;
            }
        }
    }
    // Stop the cases still running before shrinking (which starts servers of its own).
    drop(runs);
    let mut failures: Vec<String> = Vec::new();
    for (case, err) in failed {
        let seed = case.seed;
        let report = match err {
            CaseError::Other(msg) => format!(
                "IVM oracle ERROR (case seed {seed}; reproduce with FRESHET_ORACLE_SEED={seed} \
                 FRESHET_ORACLE_CASES=1)\n{msg}\nsteps so far:\n{}",
                case.script(&case.setup, &case.steps, &case.outcomes)
            ),
            CaseError::Mismatch(m) => report_mismatch(&case, m, no_shrink).await,
        };
        eprintln!("{report}");
        failures.push(report);
    }

    eprintln!("{}", stats.summary(started.elapsed()));
    if !failures.is_empty() {
        panic!(
            "{} IVM oracle failure(s):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    assert!(
        stats.views_created > 0,
        "no view could be created: the oracle checked nothing"
    );
    if stats.views_generated >= MIN_VIEWS_FOR_RATIO {
        assert!(
            stats.views_rejected * 100 <= stats.views_generated * MAX_REJECTED_PERCENT,
            "{} of {} generated views were rejected with 0A000 (more than {MAX_REJECTED_PERCENT}%): \
             the oracle would pass vacuously; see the summary above",
            stats.views_rejected,
            stats.views_generated
        );
    }
}

async fn copy_in(client: &Client, sql: &str, data: String) -> u64 {
    let sink = client
        .copy_in::<_, Bytes>(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    futures::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.unwrap();
    sink.finish()
        .await
        .unwrap_or_else(|e| panic!("{sql}: finish: {e:?}"))
}

async fn must_rows(conn: &mut Conn, sql: &str) -> Rows {
    match conn.rows(sql).await {
        Ok(r) => r,
        Err(e) => panic!("{sql}: {e}\n{}", conn.log_tail(40)),
    }
}

/// Restart time should not depend on the amount of data under the views.
/// This is measured, not asserted (timings on a shared machine are noise):
/// the test prints the times and asserts only that the views are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_time_with_views_over_1k_and_100k_rows() {
    let _serial = serial();
    let views = [
        (
            "big_by_g",
            "SELECT g, count(*) AS n, sum(v) AS total, min(s) AS lo, max(id) AS hi FROM big GROUP BY g",
        ),
        ("big_sample", "SELECT id, s, v FROM big WHERE id % 997 = 0"),
    ];
    let mut report = Vec::new();
    for &n in &[1_000usize, 100_000] {
        let mut conn = Conn::start(&[]).await;
        conn.exec("CREATE TABLE big (id int PRIMARY KEY, g int, s text, v numeric(10,2))")
            .await
            .unwrap();
        let mut data = String::with_capacity(n * 24);
        for i in 1..=n {
            writeln!(
                data,
                "{i}\t{}\tname{}\t{}.{:02}",
                i % 17,
                i % 101,
                i % 50,
                i % 100
            )
            .unwrap();
        }
        let t = Instant::now();
        let loaded = copy_in(&conn.client, "COPY big FROM STDIN", data).await;
        assert_eq!(loaded, n as u64);
        let load = t.elapsed();
        let t = Instant::now();
        for (name, sql) in &views {
            conn.exec(&format!("CREATE MATERIALIZED VIEW {name} AS {sql}"))
                .await
                .unwrap_or_else(|e| panic!("CREATE MATERIALIZED VIEW {name}: {e}"));
        }
        let create = t.elapsed();
        // Some incremental history on top of the backfill.
        for sql in [
            "UPDATE big SET v = v + 1 WHERE id % 1000 = 1".to_string(),
            "DELETE FROM big WHERE id % 997 = 3".to_string(),
            format!("INSERT INTO big VALUES ({}, 3, 'late', 1.25)", n + 1),
        ] {
            conn.exec(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let mut line = format!(
            "{n:>7} rows: COPY {:.2} s, CREATE 2 views {:.2} s",
            load.as_secs_f64(),
            create.as_secs_f64()
        );
        for kill in [true, false] {
            let mut before = Vec::new();
            for (name, _) in &views {
                before.push(must_rows(&mut conn, &format!("SELECT * FROM {name}")).await);
            }
            if kill {
                conn.server.kill();
            } else {
                assert!(
                    conn.server.terminate(Duration::from_secs(60)).is_some(),
                    "SIGTERM: the server did not exit within 60 s"
                );
            }
            let t = Instant::now();
            conn.server.restart();
            conn.client = conn.server.connect().await;
            let first = must_rows(&mut conn, &format!("SELECT * FROM {}", views[0].0)).await;
            let to_first_read = t.elapsed();
            let second = must_rows(&mut conn, &format!("SELECT * FROM {}", views[1].0)).await;
            let id = n as i64 + if kill { 2 } else { 3 };
            conn.exec(&format!("INSERT INTO big VALUES ({id}, 5, 'after', 2.50)"))
                .await
                .unwrap_or_else(|e| panic!("insert after restart: {e}"));
            let to_first_write = t.elapsed();
            assert!(
                first == before[0] && second == before[1],
                "{n} rows: a view changed across the restart ({})",
                if kill { "SIGKILL" } else { "SIGTERM" }
            );
            for (name, sql) in &views {
                let got = must_rows(&mut conn, &format!("SELECT * FROM {name}")).await;
                let expected = must_rows(&mut conn, &format!("SELECT * FROM ({sql}) q")).await;
                assert!(
                    got == expected,
                    "{n} rows: view {name} differs from its query after the restart and an insert:\n\
                     expected {} rows, got {}\nmissing:\n{}unexpected:\n{}",
                    expected.len(),
                    got.len(),
                    render_rows(&multiset_minus(&expected, &got), 20),
                    render_rows(&multiset_minus(&got, &expected), 20)
                );
            }
            write!(
                line,
                "; restart after {}: first view read {:.0} ms, first write {:.0} ms",
                if kill { "SIGKILL" } else { "SIGTERM" },
                to_first_read.as_secs_f64() * 1000.0,
                to_first_write.as_secs_f64() * 1000.0
            )
            .unwrap();
        }
        eprintln!("restart timing: {line}");
        report.push(line);
    }
    eprintln!("restart timing summary (measured, not asserted):");
    for l in &report {
        eprintln!("  {l}");
    }
}
