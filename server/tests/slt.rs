//! Runs every `.slt` file under `sqllogictest/slt/` against a fresh
//! `freshet` process, once over the simple query protocol and once
//! over the extended protocol, plus two checks that `.slt` files cannot
//! express: the access path EXPLAIN reports, and SQLSTATE codes.
//!
//! Environment variables for the `sqllogictest` test:
//!
//! * `FRESHET_SLT_FILTER=types,dml/insert` — run only files whose path
//!   (relative to `slt/`) contains one of the comma-separated strings.
//! * `FRESHET_SLT_PROTOCOL=simple|extended` — run only one protocol.
//! * `FRESHET_SLT_URL="host=… port=… user=… dbname=freshet"` — run against
//!   an already running server instead of starting one per file (also used
//!   by `sqlstates_are_correct`). The database should be named `freshet` and
//!   start empty; files drop the tables they create, but a file that fails
//!   half-way leaves its tables behind.
//! * `FRESHET_SLT_ENGINE=postgres` — the engine name `onlyif`/`skipif`
//!   records see (default `freshet`). With `FRESHET_SLT_URL` pointing at a
//!   PostgreSQL 15 this checks the expected results against Postgres itself:
//!   every file passes there except the `onlyif freshet` records it skips.
//! * `FRESHET_SLT_COMPLETE=1` — rewrite the expected output of the selected
//!   files with what the server returns (extended protocol only), like
//!   sqllogictest's `--override`. Review the diff before committing.
//! * `FRESHET_SLT_TIMEOUT=300` — seconds allowed for one file.
//!
//! Progress lines go straight to stderr, so they show without
//! `--nocapture`: `cargo test --workspace --test slt`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use freshet_sqllogictest::harness::Server;
use freshet_sqllogictest::{
    binary_to_text, connect, run_slt_file, Mode, PgText, Protocol, RunOptions, SqlError,
    ENGINE_NAME,
};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Starts the `freshet` binary on 127.0.0.1 with a fresh data directory.
fn start_server() -> Server {
    Server::start(env!("CARGO_BIN_EXE_freshet"))
}

/// How long a graceful stop at a restart marker may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The line that makes the harness restart the server at that point of a
/// file (gracefully, on the same data directory): what follows checks that
/// tables and views come back as they were and stay maintained.
const RESTART_MARKER: &str = "# freshet: restart";

/// `text` cut at [`RESTART_MARKER`] lines into parts that each keep the
/// whole file's line numbers (other parts' lines are blank), so failures
/// point at the right line.
fn restart_segments(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cuts = vec![0];
    cuts.extend(
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim() == RESTART_MARKER)
            .map(|(i, _)| i),
    );
    cuts.push(lines.len());
    cuts.windows(2)
        .map(|w| {
            let mut part = String::new();
            for (i, l) in lines.iter().enumerate() {
                if (w[0]..w[1]).contains(&i) && l.trim() != RESTART_MARKER {
                    part.push_str(l);
                }
                part.push('\n');
            }
            part
        })
        .collect()
}

/// The server a test talks to: a fresh `freshet` process, or the one named
/// by `FRESHET_SLT_URL`.
struct Target {
    server: Option<Server>,
    conn_str: String,
}

impl Target {
    fn new() -> Target {
        match env_nonempty("FRESHET_SLT_URL") {
            Some(url) => Target {
                server: None,
                conn_str: url,
            },
            None => {
                let server = start_server();
                let conn_str = server.conn_str();
                Target {
                    server: Some(server),
                    conn_str,
                }
            }
        }
    }

    async fn connect(&self) -> Client {
        match &self.server {
            Some(server) => server.connect().await,
            None => {
                connect(&self.conn_str)
                    .await
                    .expect("connecting to the server")
                    .0
            }
        }
    }

    /// Stops the server gracefully (SIGTERM) and starts it again on its
    /// data directory (nothing to do for an external one).
    async fn restart(&mut self) -> Result<(), String> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let server = tokio::task::spawn_blocking(move || {
            stop(&mut server)?;
            server.restart();
            Ok::<_, String>(server)
        })
        .await
        .map_err(|e| format!("restarting the server: {e}"))??;
        self.conn_str = server.conn_str();
        self.server = Some(server);
        Ok(())
    }

    /// Stops the server; an error if it had exited on its own or did not
    /// stop cleanly.
    async fn finish(self) -> Result<(), String> {
        match self.server {
            Some(mut server) => tokio::task::spawn_blocking(move || stop(&mut server))
                .await
                .map_err(|e| format!("stopping the server: {e}"))?,
            None => Ok(()),
        }
    }
}

/// SIGTERM, then wait for a clean exit.
fn stop(server: &mut Server) -> Result<(), String> {
    if let Some(status) = server.exit_status() {
        return Err(format!(
            "the server exited on its own ({status})\n{}",
            server.logs()
        ));
    }
    match server.terminate(STOP_TIMEOUT) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "the server exited with {status} on SIGTERM\n{}",
            server.logs()
        )),
        None => Err(format!(
            "the server did not stop within {STOP_TIMEOUT:?} of SIGTERM\n{}",
            server.logs()
        )),
    }
}

/// The engine name for `onlyif`/`skipif` (`FRESHET_SLT_ENGINE`).
fn engine_name() -> String {
    env_nonempty("FRESHET_SLT_ENGINE").unwrap_or_else(|| ENGINE_NAME.to_string())
}

/// Writes a progress line to stderr, bypassing the test harness' capture.
fn progress(line: &str) {
    let stderr = std::io::stderr();
    let mut lock = stderr.lock();
    let _ = writeln!(lock, "{line}");
    let _ = lock.flush();
}

fn slt_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sqllogictest/slt")
}

fn collect_slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_slt_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "slt") {
            out.push(path);
        }
    }
}

fn relative_name(path: &Path) -> String {
    let rel = path.strip_prefix(slt_root()).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest() {
    let mut files = Vec::new();
    collect_slt_files(&slt_root(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no .slt files under {}",
        slt_root().display()
    );

    if let Some(filter) = env_nonempty("FRESHET_SLT_FILTER") {
        let patterns: Vec<&str> = filter
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        files.retain(|f| {
            let name = relative_name(f);
            patterns.iter().any(|p| name.contains(p))
        });
        assert!(
            !files.is_empty(),
            "FRESHET_SLT_FILTER={filter:?} matched no .slt file"
        );
    }

    let complete = env_nonempty("FRESHET_SLT_COMPLETE").is_some_and(|v| v != "0");
    let protocols: Vec<Protocol> = if complete {
        vec![Protocol::Extended]
    } else {
        match env_nonempty("FRESHET_SLT_PROTOCOL").as_deref() {
            None | Some("both") => Protocol::ALL.to_vec(),
            Some("simple") => vec![Protocol::Simple],
            Some("extended") => vec![Protocol::Extended],
            Some(other) => panic!("FRESHET_SLT_PROTOCOL={other:?}: use simple, extended or both"),
        }
    };
    let options = RunOptions {
        mode: if complete {
            Mode::Complete
        } else {
            Mode::Check
        },
        engine_name: engine_name(),
    };
    let timeout = Duration::from_secs(
        env_nonempty("FRESHET_SLT_TIMEOUT")
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );

    let mut failures: Vec<(String, Protocol, String)> = Vec::new();
    let mut runs = 0;
    for file in &files {
        let name = relative_name(file);
        for &protocol in &protocols {
            runs += 1;
            let started = Instant::now();
            let mut target = Target::new();
            let run = run_with_restarts(file, protocol, &mut target, &options);
            let mut result = match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {timeout:?}")),
            };
            if let Err(msg) = target.finish().await {
                result = match result {
                    Ok(()) => Err(msg),
                    Err(prev) => Err(format!("{prev}\n{msg}")),
                };
            }
            let ms = started.elapsed().as_millis();
            match result {
                Ok(()) => progress(&format!("slt {name} [{protocol}] ... ok ({ms} ms)")),
                Err(e) => {
                    progress(&format!("slt {name} [{protocol}] ... FAILED ({ms} ms)"));
                    failures.push((name.clone(), protocol, e));
                }
            }
        }
    }

    progress(&format!(
        "sqllogictest: {} of {runs} file runs succeeded",
        runs - failures.len()
    ));
    if !failures.is_empty() {
        let mut report = String::new();
        for (name, protocol, error) in &failures {
            report.push_str(&format!("\n=== {name} [{protocol}]\n{error}\n"));
        }
        report.push_str("\nfailing files:\n");
        for (name, protocol, _) in &failures {
            report.push_str(&format!("  {name} [{protocol}]\n"));
        }
        panic!(
            "{} of {runs} sqllogictest file runs failed:\n{report}",
            failures.len()
        );
    }
}

/// Runs `file`, restarting the server at each [`RESTART_MARKER`] (not
/// when rewriting expectations, which needs the file whole).
async fn run_with_restarts(
    file: &Path,
    protocol: Protocol,
    target: &mut Target,
    options: &RunOptions,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let segments = restart_segments(&text);
    if segments.len() == 1 || options.mode == Mode::Complete {
        return run_slt_file(file, protocol, &target.conn_str, options).await;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let part = dir
        .path()
        .join(file.file_name().expect("an .slt file name"));
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            target.restart().await?;
        }
        std::fs::write(&part, segment).map_err(|e| e.to_string())?;
        run_slt_file(&part, protocol, &target.conn_str, options)
            .await
            .map_err(|e| {
                format!(
                    "{e}\n(in part {} of {}, after {i} restarts)",
                    i + 1,
                    segments.len()
                )
            })?;
    }
    Ok(())
}

#[test]
fn restart_segments_keep_line_numbers() {
    let parts = restart_segments("a\nb\n# freshet: restart\nc\n");
    assert_eq!(parts, vec!["a\nb\n\n\n", "\n\n\nc\n"]);
    assert_eq!(restart_segments("a\n"), vec!["a\n"]);
}

// ---------------------------------------------------------------------------
// Helpers for the tests below
// ---------------------------------------------------------------------------

/// Runs `sql` with the simple protocol and returns every value of every
/// row, one row a line, values separated by spaces.
async fn simple_text(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let mut lines = Vec::new();
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            let values: Vec<&str> = (0..row.len())
                .map(|i| row.get(i).unwrap_or("NULL"))
                .collect();
            lines.push(values.join(" "));
        }
    }
    Ok(lines.join("\n"))
}

/// Runs `sql` with the extended protocol and returns every value of every
/// row as text, one row a line.
async fn extended_text(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let rows = client.query(sql, &[]).await?;
    let mut lines = Vec::new();
    for row in rows {
        let mut values = Vec::new();
        for i in 0..row.len() {
            let v: PgText = row.get(i);
            values.push(v.0.unwrap_or_else(|| "NULL".into()));
        }
        lines.push(values.join(" "));
    }
    Ok(lines.join("\n"))
}

async fn run_text(
    client: &Client,
    protocol: Protocol,
    sql: &str,
) -> Result<String, tokio_postgres::Error> {
    match protocol {
        Protocol::Simple => simple_text(client, sql).await,
        Protocol::Extended => extended_text(client, sql).await,
    }
}

async fn setup(client: &Client, statements: &[&str]) {
    for sql in statements {
        client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("setup statement {sql:?} failed: {}", SqlError::from(e)));
    }
}

// ---------------------------------------------------------------------------
// EXPLAIN: primary-key predicates use point gets and range scans
// ---------------------------------------------------------------------------

const ACCESS_KINDS: [&str; 4] = [
    "access=point_get",
    "access=range_scan",
    "access=full_scan",
    "access=index_scan",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_materialized_views() {
    let server = start_server();
    let client = server.connect().await;
    setup(
        &client,
        &[
            "CREATE TABLE ex_items (id INT PRIMARY KEY, price INT, cat TEXT)",
            "CREATE TABLE ex_settings (k INT PRIMARY KEY, threshold INT)",
            "CREATE MATERIALIZED VIEW ex_cats AS SELECT cat, count(*) AS n, max(price) AS top \
             FROM ex_items WHERE price NOT IN (SELECT threshold FROM ex_settings) GROUP BY cat",
        ],
    )
    .await;
    // Each statement, and the lines its plan must show, in order.
    let cases: &[(&str, &[&str])] = &[
        (
            "EXPLAIN CREATE MATERIALIZED VIEW ex_over AS SELECT id FROM ex_items \
             WHERE price > (SELECT threshold FROM ex_settings)",
            &[
                "Materialized view ex_over (contents in state table",
                "Materialize -> [id]",
                "Join: kind=",
                "state table",
                "SingleRow -> [threshold]",
                "row count",
                "Source: ex_settings [threshold]",
                "Optimized logical plan:",
            ],
        ),
        (
            "EXPLAIN MATERIALIZED VIEW ex_cats",
            &[
                "Materialized view ex_cats",
                "view contents, one row per (cat)",
                "Aggregate -> [cat, count(Int64(1)), max(ex_items.price)]",
                "groups",
                "values of max(ex_items.price)",
                "Filter -> [price, cat, __nonempty, __has_null]",
                "kind=Inner, keys=0",
                "kind=LeftAnti, keys=1",
                "Aggregate -> [__rows, __keys]",
            ],
        ),
        (
            "EXPLAIN CREATE MATERIALIZED VIEW ex_ranked AS SELECT id, cat, \
             rank() OVER (PARTITION BY cat ORDER BY price DESC) AS r, \
             sum(price) OVER (PARTITION BY cat ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS near \
             FROM ex_items",
            &[
                "Materialized view ex_ranked",
                "Window: window [rank()], order=[price@1 DESC], partitions=1 \
                 (each touched partition is re-read whole)",
                "rows in sort order",
                "Window: window [sum(ex_items.price) ROWS BETWEEN 1 PRECEDING AND CURRENT ROW], \
                 order=[id@0 ASC NULLS LAST], partitions=1",
                "rows in sort order",
                "Source: ex_items",
            ],
        ),
    ];
    let mut problems = Vec::new();
    for &(sql, expected) in cases {
        for protocol in Protocol::ALL {
            let plan = match run_text(&client, protocol, sql).await {
                Ok(plan) => plan,
                Err(e) => {
                    problems.push(format!("[{protocol}] {sql}: {}", SqlError::from(e)));
                    continue;
                }
            };
            // The expected fragments appear in order.
            let mut rest = plan.as_str();
            for want in expected {
                match rest.find(want) {
                    Some(at) => rest = &rest[at + want.len()..],
                    None => {
                        problems.push(format!(
                            "[{protocol}] {sql}: no {want:?} (in order)\n--- plan ---\n{plan}"
                        ));
                        break;
                    }
                }
            }
        }
    }
    // EXPLAIN created nothing.
    let created = simple_text(&client, "SHOW MATERIALIZED VIEWS")
        .await
        .unwrap();
    if created.lines().collect::<Vec<_>>() != ["ex_cats"] {
        problems.push(format!(
            "SHOW MATERIALIZED VIEWS after EXPLAIN: {created:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What is wrong with each `(query, expected text)` answer, with both
/// protocols.
async fn answer_problems(client: &Client, checks: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for &(query, expected) in checks {
        for protocol in Protocol::ALL {
            match run_text(client, protocol, query).await {
                Ok(actual) if actual == expected => {}
                Ok(actual) => problems.push(format!(
                    "[{protocol}] {query}: expected {expected:?}, got {actual:?}"
                )),
                Err(e) => problems.push(format!(
                    "[{protocol}] {query}: error: {}",
                    SqlError::from(e)
                )),
            }
        }
    }
    problems
}

/// Stops the server, then fails with `problems` if there are any.
async fn stop_and_report(server: Server, problems: Vec<String>) {
    let mut server = server;
    tokio::task::spawn_blocking(move || stop(&mut server))
        .await
        .unwrap()
        .expect("server shutdown");
    assert!(
        problems.is_empty(),
        "EXPLAIN checks failed:\n{}",
        problems.join("\n")
    );
}

/// What is wrong with the access path EXPLAIN shows for each `(query,
/// expected access)` (with both protocols), and whether each query runs.
async fn access_problems(client: &Client, cases: &[(&str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    for &(query, expected) in cases {
        for protocol in Protocol::ALL {
            let explain = format!("EXPLAIN {query}");
            let plan = match run_text(client, protocol, &explain).await {
                Ok(plan) => plan,
                Err(e) => {
                    problems.push(format!(
                        "[{protocol}] {explain}: error: {}",
                        SqlError::from(e)
                    ));
                    continue;
                }
            };
            let mut wrong = Vec::new();
            if !plan.contains("FreshetScan") {
                wrong.push("no FreshetScan node".to_string());
            }
            if !plan.contains(expected) {
                wrong.push(format!("no {expected}"));
            }
            for other in ACCESS_KINDS.iter().filter(|k| **k != expected) {
                if plan.contains(other) {
                    wrong.push(format!("unexpected {other}"));
                }
            }
            if !wrong.is_empty() {
                problems.push(format!(
                    "[{protocol}] {explain}: {}\n--- plan ---\n{plan}\n------------",
                    wrong.join(", ")
                ));
            }
        }
        // The plan must not change the answer: the query still runs.
        if let Err(e) = simple_text(client, query).await {
            problems.push(format!("{query}: error: {}", SqlError::from(e)));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_uses_primary_key() {
    let server = start_server();
    let client = server.connect().await;
    setup(
        &client,
        &[
            "CREATE TABLE explain_t (id INT PRIMARY KEY, v TEXT, n INT)",
            "INSERT INTO explain_t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), \
             (6, 'f', 60), (10, 'j', 100), (11, 'k', 110)",
        ],
    )
    .await;

    let cases: &[(&str, &str)] = &[
        ("SELECT * FROM explain_t WHERE id = 1", "access=point_get"),
        ("SELECT v FROM explain_t WHERE id = 3", "access=point_get"),
        (
            "SELECT * FROM explain_t WHERE id IN (1, 2)",
            "access=point_get",
        ),
        (
            "SELECT * FROM explain_t WHERE id = 1 AND v = 'a'",
            "access=point_get",
        ),
        (
            "SELECT * FROM explain_t WHERE id BETWEEN 1 AND 10",
            "access=range_scan",
        ),
        ("SELECT * FROM explain_t WHERE id > 5", "access=range_scan"),
        (
            "SELECT * FROM explain_t WHERE id >= 2 AND id < 6",
            "access=range_scan",
        ),
        ("SELECT * FROM explain_t WHERE v = 'a'", "access=full_scan"),
        ("SELECT * FROM explain_t WHERE n > 5", "access=full_scan"),
        ("SELECT * FROM explain_t", "access=full_scan"),
        ("SELECT count(*) FROM explain_t", "access=full_scan"),
    ];

    let mut problems = access_problems(&client, cases).await;

    // The point get and range scan return the right rows.
    let checks: &[(&str, &str)] = &[
        ("SELECT v FROM explain_t WHERE id = 3", "c"),
        ("SELECT v FROM explain_t WHERE id = 4", ""),
        (
            "SELECT v FROM explain_t WHERE id IN (1, 2, 4) ORDER BY v",
            "a\nb",
        ),
        (
            "SELECT v FROM explain_t WHERE id BETWEEN 2 AND 10 ORDER BY id",
            "b\nc\nf\nj",
        ),
        (
            "SELECT v FROM explain_t WHERE id > 5 ORDER BY id",
            "f\nj\nk",
        ),
        ("SELECT v FROM explain_t WHERE id = 1 AND v = 'x'", ""),
    ];
    problems.extend(answer_problems(&client, checks).await);

    drop(client);
    stop_and_report(server, problems).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_uses_index() {
    let server = start_server();
    let client = server.connect().await;
    setup(
        &client,
        &[
            "CREATE TABLE ix_t (id INT PRIMARY KEY, g INT, v TEXT, n INT, w INT)",
            "INSERT INTO ix_t SELECT x, x % 3, 'v' || (x % 5), x % 7, x FROM generate_series(1, 50) AS s(x)",
            "CREATE INDEX ix_g ON ix_t (g)",
            "CREATE INDEX ix_v_n ON ix_t (v, n)",
            "CREATE UNIQUE INDEX ix_w ON ix_t (w)",
        ],
    )
    .await;
    let cases: &[(&str, &str)] = &[
        ("SELECT * FROM ix_t WHERE g = 1", "index=ix_g ranges=1"),
        (
            "SELECT id FROM ix_t WHERE g IN (0, 2)",
            "index=ix_g ranges=2",
        ),
        ("SELECT id FROM ix_t WHERE g > 1", "index=ix_g ranges=1"),
        (
            "SELECT id FROM ix_t WHERE v = 'v1'",
            "index=ix_v_n ranges=1",
        ),
        (
            "SELECT id FROM ix_t WHERE v = 'v1' AND n BETWEEN 2 AND 4",
            "index=ix_v_n ranges=1",
        ),
        (
            "SELECT id FROM ix_t WHERE v IN ('v1', 'v2') AND n = 3",
            "index=ix_v_n ranges=2",
        ),
        // Two pinned columns beat one.
        (
            "SELECT id FROM ix_t WHERE g = 1 AND v = 'v1' AND n = 3",
            "index=ix_v_n",
        ),
        ("SELECT id FROM ix_t WHERE w = 7", "index=ix_w"),
        ("SELECT count(*) FROM ix_t WHERE w < 10", "index=ix_w"),
        // The primary key wins when it pins the row.
        (
            "SELECT * FROM ix_t WHERE id = 3 AND g = 0",
            "access=point_get",
        ),
        // A predicate on the second indexed column alone cannot use it.
        ("SELECT id FROM ix_t WHERE n = 3", "access=full_scan"),
        ("SELECT id FROM ix_t WHERE g + 0 = 1", "access=full_scan"),
    ];
    let mut cases: Vec<(&str, &str)> = cases.to_vec();
    for c in cases.iter_mut() {
        if c.1.starts_with("index=") {
            // access_problems checks one access kind per query.
            let query = c.0;
            let want = c.1;
            let plan = simple_text(&client, &format!("EXPLAIN {query}"))
                .await
                .unwrap_or_default();
            assert!(plan.contains(want), "EXPLAIN {query}: no {want}:\n{plan}");
            *c = (query, "access=index_scan");
        }
    }
    let mut problems = access_problems(&client, &cases).await;
    let checks: &[(&str, &str)] = &[
        ("SELECT count(*) FROM ix_t WHERE g = 1", "17"),
        ("SELECT count(*) FROM ix_t WHERE g IN (0, 2)", "33"),
        (
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM ix_t WHERE v = 'v1' AND n BETWEEN 2 AND 4",
            "11,16,31,46",
        ),
        ("SELECT count(*) FROM ix_t WHERE w < 10", "9"),
    ];
    problems.extend(answer_problems(&client, checks).await);
    drop(client);
    stop_and_report(server, problems).await;
}

// ---------------------------------------------------------------------------
// SQLSTATE codes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlstates_are_correct() {
    let target = Target::new();
    let client = target.connect().await;
    setup(
        &client,
        &[
            "DROP TABLE IF EXISTS s",
            "CREATE TABLE s (id INT PRIMARY KEY, name TEXT NOT NULL, n INT)",
            "INSERT INTO s VALUES (1, 'a', 10), (2, 'b', 20)",
        ],
    )
    .await;

    let cases: &[(&str, &str)] = &[
        // syntax_error
        ("SELEC 1", "42601"),
        ("SELECT FROM WHERE", "42601"),
        ("CREATE TABLE (id INT)", "42601"),
        // undefined_table
        ("SELECT * FROM no_such_table", "42P01"),
        ("INSERT INTO no_such_table VALUES (1)", "42P01"),
        ("DROP TABLE no_such_table", "42P01"),
        // undefined_column
        ("SELECT no_such_column FROM s", "42703"),
        ("UPDATE s SET no_such_column = 1", "42703"),
        ("INSERT INTO s (id, no_such_column) VALUES (5, 1)", "42703"),
        // duplicate_table
        ("CREATE TABLE s (id INT)", "42P07"),
        // unique_violation
        ("INSERT INTO s VALUES (1, 'dup', 0)", "23505"),
        ("INSERT INTO s VALUES (7, 'x', 0), (7, 'y', 0)", "23505"),
        ("UPDATE s SET id = 1 WHERE id = 2", "23505"),
        // not_null_violation
        ("INSERT INTO s VALUES (3, NULL, 0)", "23502"),
        ("INSERT INTO s (id) VALUES (3)", "23502"),
        ("INSERT INTO s VALUES (NULL, 'x', 0)", "23502"),
        ("UPDATE s SET name = NULL WHERE id = 1", "23502"),
        // invalid_text_representation
        ("SELECT 'abc'::int", "22P02"),
        ("SELECT CAST('12x' AS BIGINT)", "22P02"),
        ("INSERT INTO s VALUES ('abc', 'x', 0)", "22P02"),
        ("SELECT 'maybe'::boolean", "22P02"),
        // invalid_datetime_format, datetime_field_overflow
        ("SELECT 'abc'::timestamp", "22007"),
        ("SELECT 'noon-ish'::date", "22007"),
        (
            "SELECT '2024-01-01 10:00 Nowhere/Zone'::timestamptz",
            "22007",
        ),
        ("SELECT '2024-13-01'::date", "22008"),
        ("SELECT '2024-01-01 25:00'::timestamp", "22008"),
        // numeric NaN / Infinity: a named limitation
        ("SELECT 'NaN'::numeric", "0A000"),
        ("SELECT '-Infinity'::numeric(10,2)", "0A000"),
        // division_by_zero
        ("SELECT 1 / 0", "22012"),
        ("SELECT n / 0 FROM s", "22012"),
        // numeric_value_out_of_range
        ("SELECT 9223372036854775807::bigint * 2", "22003"),
        ("SELECT 32767::smallint + 1::smallint", "22003"),
        ("SELECT -(-9223372036854775807 - 1)::bigint", "22003"),
        ("SELECT 3e9::float8::int", "22003"),
        ("SELECT 1e10::numeric::int", "22003"),
    ];
    // feature_not_supported: Postgres has these features, Freshet does not.
    let freshet_only: &[(&str, &str)] = &[
        ("LISTEN x", "0A000"),
        (
            "CREATE FUNCTION f() RETURNS int AS 'BEGIN RETURN 1; END' LANGUAGE plpgsql",
            "0A000",
        ),
    ];
    let mut all_cases = cases.to_vec();
    if engine_name() == ENGINE_NAME {
        all_cases.extend_from_slice(freshet_only);
    }

    let mut problems = Vec::new();
    for &(sql, expected) in &all_cases {
        for protocol in Protocol::ALL {
            match run_text(&client, protocol, sql).await {
                Ok(out) => problems.push(format!(
                    "[{protocol}] {sql}: expected SQLSTATE {expected}, but it succeeded ({out:?})"
                )),
                Err(e) => {
                    let e = SqlError::from(e);
                    if e.code() != Some(expected) {
                        problems.push(format!(
                            "[{protocol}] {sql}: expected SQLSTATE {expected}, got {:?}: {e}",
                            e.code()
                        ));
                    }
                }
            }
            // The session survives the error.
            match run_text(&client, protocol, "SELECT 1").await {
                Ok(v) if v == "1" => {}
                Ok(v) => problems.push(format!("[{protocol}] after {sql}: SELECT 1 gave {v:?}")),
                Err(e) => problems.push(format!(
                    "[{protocol}] after {sql}: SELECT 1 failed: {}",
                    SqlError::from(e)
                )),
            }
        }
    }

    // Failed statements changed nothing.
    match simple_text(&client, "SELECT id, name, n FROM s ORDER BY id").await {
        Ok(v) if v == "1 a 10\n2 b 20" => {}
        Ok(v) => problems.push(format!("table s after the failed statements: {v:?}")),
        Err(e) => problems.push(format!("reading s: {}", SqlError::from(e))),
    }

    if let Err(e) = client.simple_query("DROP TABLE s").await {
        problems.push(format!("DROP TABLE s: {}", SqlError::from(e)));
    }

    // Sanity check of the extended-protocol decoding used above.
    assert_eq!(
        binary_to_text(&tokio_postgres::types::Type::BOOL, &[1]).unwrap(),
        "t"
    );

    drop(client);
    if let Err(e) = target.finish().await {
        problems.push(e);
    }
    assert!(
        problems.is_empty(),
        "SQLSTATE checks failed:\n{}",
        problems.join("\n")
    );
}
