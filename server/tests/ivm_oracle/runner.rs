use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::{Server, FRESHET_BIN};
use crate::generator::CaseGen;
use crate::schema::*;
use crate::QUERY_TIMEOUT;

// ---------------------------------------------------------------------------
// Talking to the server
// ---------------------------------------------------------------------------

pub(crate) type Rows = Vec<Vec<Option<String>>>;

#[derive(Clone, Debug)]
pub(crate) struct QErr {
    code: Option<String>,
    msg: String,
}

impl QErr {
    fn from_pg(e: tokio_postgres::Error) -> QErr {
        match e.as_db_error() {
            Some(db) => QErr {
                code: Some(db.code().code().to_string()),
                msg: db.message().to_string(),
            },
            None => QErr {
                code: None,
                msg: format!("{e:?}"),
            },
        }
    }
}

impl std::fmt::Display for QErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(c) => write!(f, "[{c}] {}", self.msg),
            None => write!(f, "{}", self.msg),
        }
    }
}

/// Errors a generated DML statement may fail with (atomically): integrity
/// violations (duplicate key, …) and cardinality violations (an upsert that
/// touches a row twice).
pub(crate) fn allowed_dml_error(e: &QErr) -> bool {
    e.code
        .as_deref()
        .is_some_and(|c| c.starts_with("23") || c == "21000")
}

pub(crate) struct Conn {
    pub(crate) server: Server,
    pub(crate) client: Client,
    /// More sessions, for concurrent statements.
    extra: Vec<Client>,
}

async fn timed_query(client: &Client, sql: &str) -> Result<Vec<SimpleQueryMessage>, QErr> {
    match tokio::time::timeout(QUERY_TIMEOUT, client.simple_query(sql)).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(QErr::from_pg(e)),
        Err(_) => Err(QErr {
            code: None,
            msg: format!("timed out after {QUERY_TIMEOUT:?}"),
        }),
    }
}

/// Cases with an odd seed run the server with a state cache of a few KiB:
/// it is emptied over and over, so those cases check that views stay exact
/// when operator state is read back from storage (the others mostly read
/// it from the cache).
pub(crate) fn server_args(seed: u64) -> &'static [&'static str] {
    if seed % 2 == 1 {
        &["--state-cache-size", "2KiB"]
    } else {
        &[]
    }
}

impl Conn {
    pub(crate) async fn start(args: &[&str]) -> Conn {
        let server = Server::start_with_args(FRESHET_BIN, args);
        let client = server.connect().await;
        Conn {
            server,
            client,
            extra: Vec::new(),
        }
    }

    /// Send `sqls` at the same moment, each from its own session.
    pub(crate) async fn exec_concurrently(&mut self, sqls: &[String]) -> Vec<Result<(), QErr>> {
        while self.extra.len() + 1 < sqls.len() {
            let c = self.server.connect().await;
            self.extra.push(c);
        }
        let runs = sqls.iter().enumerate().map(|(i, sql)| {
            let client = if i == 0 {
                &self.client
            } else {
                &self.extra[i - 1]
            };
            async move { timed_query(client, sql).await.map(|_| ()) }
        });
        futures::future::join_all(runs).await
    }

    async fn simple(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, QErr> {
        timed_query(&self.client, sql).await
    }

    pub(crate) async fn exec(&self, sql: &str) -> Result<(), QErr> {
        self.simple(sql).await.map(|_| ())
    }

    /// The rows of a query, sorted (a multiset in canonical order).
    pub(crate) async fn rows(&self, sql: &str) -> Result<Rows, QErr> {
        let mut rows: Rows = self
            .simple(sql)
            .await?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect();
        rows.sort();
        Ok(rows)
    }

    /// Stop the server (SIGKILL or SIGTERM), start it again on the same data
    /// directory and reconnect.
    pub(crate) async fn restart(&mut self, kill: bool) -> Result<(), String> {
        self.extra.clear();
        if kill {
            self.server.kill();
        } else if self.server.terminate(Duration::from_secs(60)).is_none() {
            return Err("SIGTERM: the server did not exit within 60 s".into());
        }
        self.server.restart();
        self.client = self.server.connect().await;
        Ok(())
    }

    /// The last lines of the server's output, and whether it is still running.
    pub(crate) fn log_tail(&mut self, lines: usize) -> String {
        // Let the pipe readers catch up with a process that just died.
        std::thread::sleep(Duration::from_millis(300));
        let state = if self.server.is_running() {
            "the server is still running"
        } else {
            "THE SERVER PROCESS HAS EXITED (crash?)"
        };
        let logs = self.server.logs();
        let all: Vec<&str> = logs.lines().collect();
        format!(
            "{state}\n{}",
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }
}

// ---------------------------------------------------------------------------
// Cases, steps and checks
// ---------------------------------------------------------------------------

pub(crate) struct ViewDef {
    pub(crate) name: String,
    sql: String,
    pub(crate) cols: Vec<Col>,
}

impl ViewDef {
    pub(crate) fn create_sql(&self) -> String {
        format!("CREATE MATERIALIZED VIEW {} AS {}", self.name, self.sql)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Step {
    Sql(String),
    /// DML statements sent at the same moment from different sessions (so
    /// that group commit may put them into one step).
    Concurrent(Vec<String>),
    CreateView(usize),
    Restart {
        kill: bool,
    },
}

/// Per statement of a step: None if it succeeded, else its error.
pub(crate) type Outcome = Vec<Option<String>>;

pub(crate) struct Case {
    pub(crate) seed: u64,
    /// CREATE TABLE statements (never removed by shrinking).
    pub(crate) setup: Vec<String>,
    pub(crate) views: Vec<ViewDef>,
    pub(crate) steps: Vec<Step>,
    /// For each step, the outcome of each of its statements.
    pub(crate) outcomes: Vec<Outcome>,
}

impl Case {
    pub(crate) fn step_sql(&self, s: &Step) -> String {
        match s {
            Step::Sql(sql) => sql.clone(),
            Step::Concurrent(sqls) => format!(
                "-- concurrently from {} sessions: {}",
                sqls.len(),
                sqls.join("; ")
            ),
            Step::CreateView(v) => self.views[*v].create_sql(),
            Step::Restart { kill: true } => "-- restart the server (SIGKILL)".into(),
            Step::Restart { kill: false } => "-- restart the server (SIGTERM)".into(),
        }
    }

    pub(crate) fn script(&self, setup: &[String], steps: &[Step], outcomes: &[Outcome]) -> String {
        let mut out = String::new();
        for s in setup {
            writeln!(out, "  {s};").unwrap();
        }
        let note = |i: usize, k: usize| match outcomes.get(i).and_then(|o| o.get(k)) {
            Some(Some(e)) => format!("   -- fails: {e}"),
            _ => String::new(),
        };
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Concurrent(sqls) => {
                    writeln!(out, "  -- concurrently, from {} sessions:", sqls.len()).unwrap();
                    for (k, sql) in sqls.iter().enumerate() {
                        writeln!(out, "  {sql};{}", note(i, k)).unwrap();
                    }
                    writeln!(out, "  -- (end of concurrent statements)").unwrap();
                }
                Step::Restart { .. } => writeln!(out, "  {}", self.step_sql(s)).unwrap(),
                _ => writeln!(out, "  {};{}", self.step_sql(s), note(i, 0)).unwrap(),
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Mismatch {
    pub(crate) view: usize,
    /// Index of the step after which the view was wrong.
    pub(crate) step: usize,
    pub(crate) phase: String,
    pub(crate) expected: Rows,
    pub(crate) got: Rows,
}

pub(crate) enum CaseError {
    Mismatch(Mismatch),
    Other(String),
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) cases: usize,
    pub(crate) views_generated: usize,
    pub(crate) views_created: usize,
    pub(crate) views_rejected: usize,
    pub(crate) statements: usize,
    statements_failed: usize,
    concurrent_groups: usize,
    restarts_kill: usize,
    restarts_term: usize,
    checks: usize,
    tag_generated: BTreeMap<&'static str, usize>,
    tag_rejected: BTreeMap<&'static str, usize>,
    /// Rejection message → (count, an example CREATE statement).
    reject_msgs: BTreeMap<String, (usize, String)>,
}

impl Stats {
    pub(crate) fn merge(&mut self, o: &Stats) {
        self.cases += o.cases;
        self.views_generated += o.views_generated;
        self.views_created += o.views_created;
        self.views_rejected += o.views_rejected;
        self.statements += o.statements;
        self.statements_failed += o.statements_failed;
        self.concurrent_groups += o.concurrent_groups;
        self.restarts_kill += o.restarts_kill;
        self.restarts_term += o.restarts_term;
        self.checks += o.checks;
        for (k, v) in &o.tag_generated {
            *self.tag_generated.entry(k).or_default() += v;
        }
        for (k, v) in &o.tag_rejected {
            *self.tag_rejected.entry(k).or_default() += v;
        }
        for (k, (n, ex)) in &o.reject_msgs {
            self.reject_msgs
                .entry(k.clone())
                .or_insert((0, ex.clone()))
                .0 += n;
        }
    }

    pub(crate) fn summary(&self, elapsed: Duration) -> String {
        let mut s = String::new();
        let pct = if self.views_generated == 0 {
            0.0
        } else {
            100.0 * self.views_rejected as f64 / self.views_generated as f64
        };
        writeln!(
            s,
            "ivm_oracle summary: {} cases in {:.1} s; {} views generated, {} created, {} rejected \
             with 0A000 ({pct:.1}%); {} statements ({} failed atomically as allowed; {} \
             groups sent concurrently); {} view checks; restarts: {} SIGKILL, {} SIGTERM",
            self.cases,
            elapsed.as_secs_f64(),
            self.views_generated,
            self.views_created,
            self.views_rejected,
            self.statements,
            self.statements_failed,
            self.concurrent_groups,
            self.checks,
            self.restarts_kill,
            self.restarts_term
        )
        .unwrap();
        writeln!(s, "constructs (views generated with it / rejected):").unwrap();
        for (tag, n) in &self.tag_generated {
            let r = self.tag_rejected.get(tag).copied().unwrap_or(0);
            writeln!(s, "  {tag:<40} {n:>4} / {r}").unwrap();
        }
        if !self.reject_msgs.is_empty() {
            writeln!(s, "rejections (0A000) by message:").unwrap();
            for (msg, (n, example)) in &self.reject_msgs {
                writeln!(s, "  {n:>4} x {msg}\n         e.g. {example}").unwrap();
            }
        }
        s
    }
}

/// Compare a view with its defining query run as a batch query.
pub(crate) async fn check_view(conn: &Conn, v: &ViewDef) -> Result<Option<(Rows, Rows)>, String> {
    let got = conn
        .rows(&format!("SELECT * FROM {}", v.name))
        .await
        .map_err(|e| format!("SELECT * FROM {} failed: {e}", v.name))?;
    let batch = format!("SELECT * FROM ({}) q", v.sql);
    let expected = conn
        .rows(&batch)
        .await
        .map_err(|e| format!("the batch query failed: {e}\n  {batch}"))?;
    if got == expected {
        Ok(None)
    } else {
        Ok(Some((expected, got)))
    }
}

async fn check_all(
    conn: &Conn,
    case: &Case,
    created: &[usize],
    stats: &mut Stats,
) -> Result<(), CaseError> {
    let step = case.steps.len() - 1;
    for &vi in created {
        match check_view(conn, &case.views[vi]).await {
            Ok(None) => stats.checks += 1,
            Ok(Some((expected, got))) => {
                return Err(CaseError::Mismatch(Mismatch {
                    view: vi,
                    step,
                    phase: "after the statement".into(),
                    expected,
                    got,
                }))
            }
            Err(msg) => {
                return Err(CaseError::Other(format!(
                    "checking view {} after `{}`: {msg}",
                    case.views[vi].name,
                    case.step_sql(&case.steps[step])
                )))
            }
        }
    }
    Ok(())
}

async fn refresh_ids(conn: &Conn, t: &mut TableState) -> Result<(), CaseError> {
    let rows = conn
        .rows(&format!("SELECT id FROM {}", t.def.name))
        .await
        .map_err(|e| CaseError::Other(format!("SELECT id FROM {}: {e}", t.def.name)))?;
    t.ids = rows
        .iter()
        .filter_map(|r| r[0].as_deref().and_then(|s| s.parse().ok()))
        .collect();
    t.ids.sort();
    if let Some(&m) = t.ids.last() {
        t.max_id = t.max_id.max(m);
    }
    Ok(())
}

/// Run one DML statement of the generating run, then check every view.
async fn run_dml(
    conn: &Conn,
    case: &mut Case,
    t: &mut TableState,
    sql: String,
    created: &[usize],
    stats: &mut Stats,
) -> Result<(), CaseError> {
    stats.statements += 1;
    let outcome = match conn.exec(&sql).await {
        Ok(()) => None,
        Err(e) if allowed_dml_error(&e) => {
            stats.statements_failed += 1;
            Some(e.to_string())
        }
        Err(e) => {
            return Err(CaseError::Other(format!(
                "statement failed unexpectedly: {e}\n  {sql}"
            )))
        }
    };
    let failed = outcome.is_some();
    case.steps.push(Step::Sql(sql.clone()));
    case.outcomes.push(vec![outcome]);
    let ids_before = t.ids.clone();
    refresh_ids(conn, t).await?;
    if failed && t.ids != ids_before {
        return Err(CaseError::Other(format!(
            "a statement that failed changed the keys of {} (not atomic):\n  {sql}\n\
             ids before: {ids_before:?}\n  ids after:  {:?}",
            t.def.name, t.ids
        )));
    }
    check_all(conn, case, created, stats).await
}

/// Run DML statements concurrently from several sessions, then check every view.
async fn run_concurrent(
    conn: &mut Conn,
    case: &mut Case,
    tables: &mut [TableState],
    touched: &[usize],
    sqls: Vec<String>,
    created: &[usize],
    stats: &mut Stats,
) -> Result<(), CaseError> {
    stats.statements += sqls.len();
    stats.concurrent_groups += 1;
    let results = conn.exec_concurrently(&sqls).await;
    let mut outcome = Vec::new();
    for (sql, r) in sqls.iter().zip(results) {
        outcome.push(match r {
            Ok(()) => None,
            Err(e) if allowed_dml_error(&e) => {
                stats.statements_failed += 1;
                Some(e.to_string())
            }
            Err(e) => {
                return Err(CaseError::Other(format!(
                    "statement (one of {} sent concurrently) failed unexpectedly: {e}\n  {sql}\n\
                     all of them:\n  {}",
                    sqls.len(),
                    sqls.join(";\n  ")
                )))
            }
        });
    }
    case.steps.push(Step::Concurrent(sqls));
    case.outcomes.push(outcome);
    let mut seen = BTreeSet::new();
    for &ti in touched {
        if seen.insert(ti) {
            refresh_ids(conn, &mut tables[ti]).await?;
        }
    }
    check_all(conn, case, created, stats).await
}

async fn create_view(
    g: &mut CaseGen,
    case: &mut Case,
    conn: &Conn,
    rels: &mut Vec<Rel>,
    created: &mut Vec<usize>,
    stats: &mut Stats,
) -> Result<(), CaseError> {
    g.tags.clear();
    g.alias_n = 0;
    let avail = rels.clone();
    let q = g.query(&avail, &avail, true);
    let tags: Vec<&'static str> = g.tags.iter().copied().collect();
    stats.views_generated += 1;
    for t in &tags {
        *stats.tag_generated.entry(*t).or_default() += 1;
    }
    let view = ViewDef {
        name: format!("v{}", case.views.len() + 1),
        sql: q.sql,
        cols: q.cols,
    };
    // The generator must only produce queries the batch engine accepts.
    let batch = format!("SELECT * FROM ({}) q", view.sql);
    if let Err(e) = conn.rows(&batch).await {
        // Not an IVM question: the batch engine (DataFusion) cannot run
        // this query (e.g. its duplicate-name bug with max(x) next to
        // max(CAST(x AS text))). Skip the view; the run says so.
        eprintln!("skipped a view the batch engine rejects: {e}\n  {batch}");
        return Ok(());
    }
    let create = view.create_sql();
    match conn.exec(&create).await {
        Ok(()) => {}
        Err(e) if e.code.as_deref() == Some("0A000") => {
            stats.views_rejected += 1;
            for t in &tags {
                *stats.tag_rejected.entry(*t).or_default() += 1;
            }
            let entry = stats
                .reject_msgs
                .entry(e.msg.clone())
                .or_insert((0, create.clone()));
            entry.0 += 1;
            return Ok(());
        }
        Err(e) => {
            return Err(CaseError::Other(format!(
                "CREATE MATERIALIZED VIEW failed with an error other than 0A000: {e}\n  {create}"
            )))
        }
    }
    stats.views_created += 1;
    rels.push(Rel {
        name: view.name.clone(),
        cols: view.cols.clone(),
        kind: RelKind::View,
    });
    case.views.push(view);
    let vi = case.views.len() - 1;
    case.steps.push(Step::CreateView(vi));
    case.outcomes.push(vec![None]);
    created.push(vi);
    check_all(conn, case, created, stats).await
}

async fn restart_step(
    conn: &mut Conn,
    case: &mut Case,
    created: &[usize],
    kill: bool,
    stats: &mut Stats,
) -> Result<(), CaseError> {
    case.steps.push(Step::Restart { kill });
    case.outcomes.push(vec![None]);
    let step = case.steps.len() - 1;
    let mut before = Vec::new();
    for &vi in created {
        let v = &case.views[vi];
        before.push(
            conn.rows(&format!("SELECT * FROM {}", v.name))
                .await
                .map_err(|e| CaseError::Other(format!("SELECT * FROM {}: {e}", v.name)))?,
        );
    }
    conn.restart(kill).await.map_err(CaseError::Other)?;
    if kill {
        stats.restarts_kill += 1;
    } else {
        stats.restarts_term += 1;
    }
    let how = if kill { "SIGKILL" } else { "SIGTERM" };
    for (k, &vi) in created.iter().enumerate() {
        let v = &case.views[vi];
        let after = conn
            .rows(&format!("SELECT * FROM {}", v.name))
            .await
            .map_err(|e| {
                CaseError::Other(format!(
                    "after restart ({how}): SELECT * FROM {}: {e}",
                    v.name
                ))
            })?;
        if after != before[k] {
            return Err(CaseError::Mismatch(Mismatch {
                view: vi,
                step,
                phase: format!(
                    "after the restart ({how}); expected = the view's rows before the restart"
                ),
                expected: before[k].clone(),
                got: after,
            }));
        }
    }
    check_all(conn, case, created, stats).await
}

/// Generate a case and run it, checking after every step.
async fn drive(
    g: &mut CaseGen,
    case: &mut Case,
    conn: &mut Conn,
    stats: &mut Stats,
) -> Result<(), CaseError> {
    let mut tables = g.tables();
    for t in &tables {
        let sql = t.def.create_sql();
        conn.exec(&sql)
            .await
            .map_err(|e| CaseError::Other(format!("{sql}: {e}")))?;
        case.setup.push(sql);
    }
    let mut rels: Vec<Rel> = tables.iter().map(|t| t.def.rel()).collect();
    let mut created: Vec<usize> = Vec::new();

    // Initial rows, so that creating the views has something to backfill.
    for t in tables.iter_mut() {
        let n0 = g.rng.range(0, 8) as usize;
        if n0 > 0 {
            let sql = g.insert_fresh(t, n0);
            run_dml(conn, case, t, sql, &created, stats).await?;
        }
    }

    let nviews = g.rng.range(2, 4) as usize;
    let late = usize::from(g.rng.chance(0.25));
    for _ in 0..nviews - late {
        create_view(g, case, conn, &mut rels, &mut created, stats).await?;
    }

    let ndml = g.rng.range(20, 60) as usize;
    let restart_at = if g.rng.chance(0.5) {
        Some(g.rng.range(3, ndml as i64 - 3) as usize)
    } else {
        None
    };
    let late_at = g.rng.below(ndml / 2);
    for i in 0..ndml {
        if Some(i) == restart_at {
            let kill = g.rng.chance(0.5);
            restart_step(conn, case, &created, kill, stats).await?;
        }
        if late == 1 && i == late_at {
            create_view(g, case, conn, &mut rels, &mut created, stats).await?;
        }
        if g.rng.chance(0.12) {
            let k = g.rng.range(2, 3);
            let mut touched = Vec::new();
            let mut sqls = Vec::new();
            for _ in 0..k {
                let (ti, sql) = g.dml(&mut tables);
                touched.push(ti);
                sqls.push(sql);
            }
            run_concurrent(conn, case, &mut tables, &touched, sqls, &created, stats).await?;
        } else {
            let (ti, sql) = g.dml(&mut tables);
            run_dml(conn, case, &mut tables[ti], sql, &created, stats).await?;
        }
    }
    Ok(())
}

pub(crate) async fn generate_and_run(seed: u64, stats: &mut Stats) -> (Case, Option<CaseError>) {
    let mut g = CaseGen::new(seed);
    let mut case = Case {
        seed,
        setup: Vec::new(),
        views: Vec::new(),
        steps: Vec::new(),
        outcomes: Vec::new(),
    };
    let mut conn = Conn::start(server_args(seed)).await;
    let result = drive(&mut g, &mut case, &mut conn, stats).await;
    let err = match result {
        Ok(()) => None,
        Err(CaseError::Other(msg)) => Some(CaseError::Other(format!(
            "{msg}\n---- last lines of the server's output ----\n{}",
            conn.log_tail(60)
        ))),
        Err(m) => Some(m),
    };
    (case, err)
}
