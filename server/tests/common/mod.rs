//! Shared helpers for the client-level integration tests: the test-server
//! harness ([`Server`], from the test kit, on the binary Cargo built for this
//! package), simple-protocol shortcuts, and raw protocol bytes for
//! robustness tests.
#![allow(dead_code)]

use std::time::Duration;

pub use freshet_sqllogictest::harness::Server;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The server binary built by Cargo for this package.
pub const FRESHET_BIN: &str = env!("CARGO_BIN_EXE_freshet");

/// Run a simple-protocol query and return its rows as optional strings
/// (text format, NULL as `None`). Panics on error.
pub async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple query {sql:?} failed: {e:?}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The single value of a one-row, one-column simple query.
pub async fn simple_scalar(client: &Client, sql: &str) -> Option<String> {
    let rows = simple_rows(client, sql).await;
    assert_eq!(
        rows.len(),
        1,
        "{sql:?} returned {} rows: {rows:?}",
        rows.len()
    );
    assert_eq!(
        rows[0].len(),
        1,
        "{sql:?} returned {} columns",
        rows[0].len()
    );
    rows[0][0].clone()
}

/// Asserts, in one snapshot, that materialized view `view` equals `batch`
/// (its query run as a batch query): no row only in one of them.
pub async fn check_view(client: &Client, view: &str, batch: &str, when: &str) {
    let sql = format!(
        "SELECT (SELECT count(*) FROM (SELECT * FROM {view} EXCEPT ALL ({batch})) a), \
                (SELECT count(*) FROM (({batch}) EXCEPT ALL SELECT * FROM {view}) b)"
    );
    assert_eq!(
        simple_rows(client, &sql).await,
        vec![vec![Some("0".into()), Some("0".into())]],
        "{when}: view {view} differs from its batch query (rows only in the view, rows only in the batch)"
    );
}

/// The test's random source: `FRESHET_TEST_SEED`, or a seed from the
/// clock, printed so the run can be repeated.
pub fn test_rng(name: &str) -> freshet_sqllogictest::rng::Rng {
    use freshet_sqllogictest::rng::Rng;
    let seed = std::env::var("FRESHET_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Rng::seed_from_clock);
    eprintln!("{name}: seed {seed} (FRESHET_TEST_SEED={seed} repeats this run)");
    Rng::new(seed)
}

/// `kill -9`s the server — while `during` (a statement, e.g. a CREATE
/// MATERIALIZED VIEW that backfills) runs on another connection, at a
/// random moment of its first `max_ms` milliseconds, if given — restarts
/// it on its data directory and connects again.
pub async fn kill_and_restart(
    server: &mut Server,
    during: Option<(String, i64)>,
    rng: &mut freshet_sqllogictest::rng::Rng,
) -> Client {
    match during {
        Some((sql, max_ms)) => {
            let c = server.connect().await;
            let task = tokio::spawn(async move { c.batch_execute(&sql).await });
            tokio::time::sleep(Duration::from_millis(rng.range(0, max_ms) as u64)).await;
            server.kill();
            let _ = task.await;
        }
        None => {
            server.kill();
        }
    }
    server.restart();
    server.connect().await
}

/// Escape a string for use inside a standard SQL string literal.
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------
// Raw protocol bytes (for tests that misbehave on purpose).
// ---------------------------------------------------------------------------

/// A protocol 3.0 StartupMessage for user/database `freshet`.
pub fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes()); // protocol 3.0
    for s in ["user", "freshet", "database", "freshet"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// A typed frontend message: tag, length (including itself), body.
pub fn frontend_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![tag];
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

/// A simple-protocol Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frontend_message(b'Q', &body)
}

/// Read one backend message (tag, body).
pub async fn read_backend_message(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    assert!(
        (4..(64 << 20)).contains(&len),
        "bad backend message length {len}"
    );
    let mut body = vec![0u8; len as usize - 4];
    stream.read_exact(&mut body).await?;
    Ok((head[0], body))
}

/// Open a raw connection and complete the start-up handshake (no password),
/// returning the stream positioned after the first ReadyForQuery.
pub async fn raw_session(port: u16) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("raw connect");
    s.write_all(&startup_message()).await.unwrap();
    let deadline = Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            let (tag, body) = read_backend_message(&mut s)
                .await
                .expect("read during handshake");
            match tag {
                b'R' => {
                    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    match code {
                        0 => {}
                        3 => {
                            // Cleartext password requested: send an empty one.
                            s.write_all(&frontend_message(b'p', b"\0")).await.unwrap();
                        }
                        other => panic!("unsupported authentication request {other}"),
                    }
                }
                b'E' => panic!("error during handshake: {}", String::from_utf8_lossy(&body)),
                b'Z' => break,
                _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
            }
        }
    })
    .await
    .expect("handshake did not finish within 10 s");
    s
}

/// Run one statement through the simple protocol and return the row count of
/// its CommandComplete. Panics on error.
pub async fn simple_exec(client: &Client, sql: &str) -> u64 {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple query {sql:?} failed: {e:?}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .last()
        .unwrap_or_else(|| panic!("no CommandComplete for {sql:?}"))
}
