//! Runs a real `psql` (PostgreSQL 15 client) against freshet and compares
//! its output with the output PostgreSQL 15 itself produces for the same
//! script (`tests/psql/session.out`, default aligned format).
//!
//! psql is required: CI installs `postgresql-client`. The test fails if
//! psql is missing rather than silently passing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn psql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("psql")
}

fn require_psql() {
    match Command::new("psql").arg("--version").output() {
        Ok(out) if out.status.success() => {
            eprintln!("using {}", String::from_utf8_lossy(&out.stdout).trim());
        }
        Ok(out) => panic!("`psql --version` failed: {out:?}"),
        Err(e) => panic!(
            "psql is not on PATH ({e}); install the PostgreSQL client \
             (`apt-get install postgresql-client`) to run this test"
        ),
    }
}

/// A psql command with a deterministic environment.
fn psql(server: &Server, cwd: &Path) -> Command {
    let mut cmd = Command::new("psql");
    cmd.current_dir(cwd)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
        .arg(server.port().to_string())
        .args(["-U", "freshet", "-d", "freshet"])
        .env("PGCLIENTENCODING", "UTF8")
        .env("LC_ALL", "C.UTF-8")
        .env("PGCONNECT_TIMEOUT", "10");
    for var in [
        "PGOPTIONS",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSSLMODE",
        "PGTZ",
        "PGDATESTYLE",
        "PSQLRC",
        "PGAPPNAME",
        "PGTARGETSESSIONATTRS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(mut cmd: Command, server: &Server) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            server.logs()
        );
    }
    out
}

/// Panic with the first differing line and both texts in full.
fn assert_same_text(what: &str, expected: &str, actual: &str, extra: &str) {
    if expected == actual {
        return;
    }
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let first = (0..e.len().max(a.len()))
        .find(|&i| e.get(i) != a.get(i))
        .unwrap_or(e.len().min(a.len()));
    panic!(
        "{what} differs, first at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
         ===== expected =====\n{expected}\n===== actual =====\n{actual}\n===== end =====\n{extra}",
        first + 1,
        e.get(first),
        a.get(first),
    );
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn psql_session_matches_postgres_output() {
    require_psql();
    let server = Server::start(FRESHET_BIN);
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(psql_dir().join("in.csv"), work.path().join("in.csv")).unwrap();

    let mut cmd = psql(&server, work.path());
    cmd.arg("-f").arg(psql_dir().join("session.sql"));
    let out = run(cmd, &server);
    let stdout = String::from_utf8(out.stdout).expect("psql output is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("{stdout}");
    let expected = std::fs::read_to_string(psql_dir().join("session.out")).unwrap();
    assert_same_text(
        "psql output of tests/psql/session.sql",
        &expected,
        &stdout,
        &format!("--- psql stderr ---\n{stderr}\n{}", server.logs()),
    );
    assert!(
        stderr.trim().is_empty(),
        "psql printed to stderr:\n{stderr}"
    );

    // \copy t TO 'out.txt': every row once in COPY text format (order not asserted).
    let copied =
        std::fs::read_to_string(work.path().join("out.txt")).expect("\\copy TO wrote out.txt");
    let expected_copy = std::fs::read_to_string(psql_dir().join("expected_copy_out.txt")).unwrap();
    assert_eq!(
        sorted_lines(&copied),
        sorted_lines(&expected_copy),
        "\\copy t TO 'out.txt'"
    );
    assert!(copied.ends_with('\n'));

    // \copy (query) TO 'query.csv' CSV HEADER: exact bytes.
    let csv =
        std::fs::read_to_string(work.path().join("query.csv")).expect("\\copy TO wrote query.csv");
    let expected_csv = std::fs::read_to_string(psql_dir().join("expected_query.csv")).unwrap();
    assert_same_text("\\copy (query) TO CSV HEADER", &expected_csv, &csv, "");
}

/// psql's catalog commands in unaligned, tuples-only mode, checked field by
/// field (owners and locales are not compared).
#[test]
fn psql_catalog_commands() {
    require_psql();
    let server = Server::start(FRESHET_BIN);
    let work = tempfile::tempdir().unwrap();

    let mut cmd = psql(&server, work.path());
    cmd.args([
        "-c",
        "CREATE TABLE alpha (id int8 PRIMARY KEY, v text)",
        "-c",
        "CREATE TABLE beta (k int4 PRIMARY KEY, d date NOT NULL)",
    ]);
    run(cmd, &server);

    let meta = |command: &str| -> Vec<Vec<String>> {
        let mut cmd = psql(&server, work.path());
        cmd.args(["-A", "-t", "-c", command]);
        let out = run(cmd, &server);
        let text = String::from_utf8(out.stdout).unwrap();
        println!("{command}:\n{text}");
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect()
    };

    // \dt lists exactly the user's tables in public, as tables, with an owner.
    let dt = meta("\\dt");
    let mut tables: Vec<(String, String, String)> = dt
        .iter()
        .map(|f| {
            assert_eq!(
                f.len(),
                4,
                "\\dt line should be schema|name|type|owner: {f:?}"
            );
            assert!(!f[3].is_empty(), "\\dt owner is empty: {f:?}");
            (f[0].clone(), f[1].clone(), f[2].clone())
        })
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        vec![
            (
                "public".to_string(),
                "alpha".to_string(),
                "table".to_string()
            ),
            (
                "public".to_string(),
                "beta".to_string(),
                "table".to_string()
            ),
        ],
        "\\dt must list the user's tables and nothing else"
    );

    // \dt with a pattern.
    let dt = meta("\\dt be*");
    assert_eq!(dt.len(), 1, "{dt:?}");
    assert_eq!(dt[0][1], "beta");

    // \dn shows the public schema (pg_* and information_schema are hidden by psql).
    let dn = meta("\\dn");
    assert!(
        dn.iter().any(|f| f[0] == "public"),
        "\\dn lacks public: {dn:?}"
    );
    assert!(
        dn.iter()
            .all(|f| !f[0].starts_with("pg_") && f[0] != "information_schema"),
        "\\dn shows system schemas: {dn:?}"
    );

    // \l lists the one database a client can connect to.
    let l = meta("\\l");
    let databases: Vec<(&str, &str)> = l.iter().map(|f| (f[0].as_str(), f[1].as_str())).collect();
    assert_eq!(
        databases,
        vec![("freshet", "freshet")],
        "\\l must list the freshet database (owned by the bootstrap role) and nothing else"
    );

    // Owners are the roles (session users) that created the relations.
    let mut cmd = psql(&server, work.path());
    cmd.args(["-U", "ann", "-c", "CREATE TABLE gamma (x int)"]);
    run(cmd, &server);
    let owners: Vec<(String, String)> = meta("\\dt")
        .iter()
        .map(|f| (f[1].clone(), f[3].clone()))
        .collect();
    assert_eq!(
        owners,
        vec![
            ("alpha".to_string(), "freshet".to_string()),
            ("beta".to_string(), "freshet".to_string()),
            ("gamma".to_string(), "ann".to_string()),
        ]
    );
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "DROP TABLE gamma"]);
    run(cmd, &server);

    // \d beta in unaligned mode: column|type|collation|nullable|default.
    let d = meta("\\d beta");
    let cols: Vec<(String, String, String)> = d
        .iter()
        .filter(|f| f.len() == 5)
        .map(|f| (f[0].clone(), f[1].clone(), f[3].clone()))
        .collect();
    assert_eq!(
        cols,
        vec![
            (
                "k".to_string(),
                "integer".to_string(),
                "not null".to_string()
            ),
            ("d".to_string(), "date".to_string(), "not null".to_string()),
        ]
    );

    // \di lists the primary keys' indexes and CREATE INDEX's, by table;
    // \d shows a table's indexes; DROP INDEX removes one.
    let mut cmd = psql(&server, work.path());
    cmd.args([
        "-c",
        "CREATE INDEX beta_d ON beta (d)",
        "-c",
        "CREATE UNIQUE INDEX ON alpha (v)",
    ]);
    run(cmd, &server);
    let mut di: Vec<(String, String, String)> = meta("\\di")
        .iter()
        .map(|f| (f[1].clone(), f[2].clone(), f[4].clone()))
        .collect();
    di.sort();
    let index = |n: &str, t: &str| (n.to_string(), "index".to_string(), t.to_string());
    assert_eq!(
        di,
        vec![
            index("alpha_pkey", "alpha"),
            index("alpha_v_idx", "alpha"),
            index("beta_d", "beta"),
            index("beta_pkey", "beta"),
        ]
    );
    // (Footers such as "Indexes:" are printed only with headers on.)
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "\\d alpha"]);
    let text = String::from_utf8(run(cmd, &server).stdout).unwrap();
    assert!(
        text.contains("\"alpha_pkey\" PRIMARY KEY, btree (id)")
            && text.contains("\"alpha_v_idx\" UNIQUE, btree (v)"),
        "\\d alpha does not show its indexes:\n{text}"
    );
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "DROP INDEX beta_d"]);
    run(cmd, &server);
    let di: Vec<String> = meta("\\di").iter().map(|f| f[1].clone()).collect();
    assert!(!di.contains(&"beta_d".to_string()), "{di:?}");

    // A source is a foreign table to psql: \d lists it, \d s shows its
    // columns, connector and options.
    let mut cmd = psql(&server, work.path());
    cmd.args([
        "-c",
        "CREATE SOURCE bids (auction bigint, price bigint) WITH (connector = 'nexmark', \
         nexmark.table.type = 'Bid', nexmark.event.num = '100')",
    ]);
    run(cmd, &server);
    let d: Vec<(String, String)> = meta("\\d")
        .iter()
        .map(|f| (f[1].clone(), f[2].clone()))
        .collect();
    assert!(
        d.contains(&("bids".to_string(), "foreign table".to_string())),
        "{d:?}"
    );
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "\\d bids"]);
    let text = String::from_utf8(run(cmd, &server).stdout).unwrap();
    assert!(
        text.contains("Foreign table \"public.bids\"")
            && text.contains("auction")
            && text.contains("Server: nexmark")
            && text.contains("nexmark.table.type 'Bid'"),
        "\\d bids:\n{text}"
    );
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "DROP SOURCE bids"]);
    run(cmd, &server);

    // A table dropped through psql disappears from \dt.
    let mut cmd = psql(&server, work.path());
    cmd.args(["-c", "DROP TABLE alpha"]);
    run(cmd, &server);
    let dt = meta("\\dt");
    let names: Vec<&str> = dt.iter().map(|f| f[1].as_str()).collect();
    assert_eq!(names, vec!["beta"]);
}
