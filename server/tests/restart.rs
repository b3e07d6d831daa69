//! Process-level durability and robustness:
//! (a) every acknowledged write survives SIGKILL + restart, exactly;
//! (b) SIGTERM shuts down gracefully and keeps the data;
//! (c) misbehaving connections do not disturb other sessions.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use freshet_sqllogictest::rng::Rng;
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

#[derive(Clone, Debug, PartialEq)]
struct Acct {
    name: String,
    balance: Option<i64>,
    note: Option<String>,
}

type Model = BTreeMap<i64, Acct>;

fn lit_opt_i64(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "NULL".into())
}

fn lit_opt_str(v: &Option<String>) -> String {
    v.as_deref().map(sql_str).unwrap_or_else(|| "NULL".into())
}

/// Compare the whole `acct` table with the model, with a readable diff.
async fn check_acct(client: &Client, model: &Model, when: &str) {
    let rows = client
        .query("SELECT id, name, balance, note FROM acct ORDER BY id", &[])
        .await
        .unwrap_or_else(|e| panic!("{when}: select acct: {e:?}"));
    let got: Model = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(0),
                Acct {
                    name: r.get(1),
                    balance: r.get(2),
                    note: r.get(3),
                },
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        rows.len(),
        "{when}: duplicate ids returned by SELECT"
    );
    if &got != model {
        let missing: Vec<_> = model
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(10)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !model.contains_key(*k))
            .take(10)
            .collect();
        let differ: Vec<_> = model
            .iter()
            .filter_map(|(k, v)| match got.get(k) {
                Some(g) if g != v => Some((k, v.clone(), g.clone())),
                _ => None,
            })
            .take(10)
            .collect();
        panic!(
            "{when}: acct differs from the acknowledged writes: expected {} rows, got {}\n\
             missing ids (first 10): {missing:?}\nunexpected ids (first 10): {extra:?}\n\
             differing rows (id, expected, got) (first 10): {differ:#?}",
            model.len(),
            got.len()
        );
    }

    // Aggregates computed by the server must agree too.
    let row = client
        .query_one(
            "SELECT count(*), sum(balance), count(balance), count(note), min(id), max(id) FROM acct",
            &[],
        )
        .await
        .unwrap();
    let count: i64 = row.get(0);
    // Postgres types sum(int8) as numeric; accept int8 as well.
    let sum: Option<rust_decimal::Decimal> =
        match row.try_get::<_, Option<rust_decimal::Decimal>>(1) {
            Ok(v) => v,
            Err(_) => row
                .get::<_, Option<i64>>(1)
                .map(rust_decimal::Decimal::from),
        };
    let expected_sum: i64 = model.values().filter_map(|a| a.balance).sum();
    assert_eq!(count, model.len() as i64, "{when}: count(*)");
    assert_eq!(
        sum,
        Some(rust_decimal::Decimal::from(expected_sum)),
        "{when}: sum(balance)"
    );
    assert_eq!(
        row.get::<_, i64>(2),
        model.values().filter(|a| a.balance.is_some()).count() as i64,
        "{when}: count(balance)"
    );
    assert_eq!(
        row.get::<_, i64>(3),
        model.values().filter(|a| a.note.is_some()).count() as i64,
        "{when}: count(note)"
    );
    assert_eq!(
        row.get::<_, Option<i64>>(4),
        model.keys().next().copied(),
        "{when}: min(id)"
    );
    assert_eq!(
        row.get::<_, Option<i64>>(5),
        model.keys().last().copied(),
        "{when}: max(id)"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let mut server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE acct (id int8 PRIMARY KEY, name text NOT NULL, balance int8, note text)",
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE evt (id int8 PRIMARY KEY, session int4 NOT NULL, seq int4 NOT NULL)",
        )
        .await
        .unwrap();

    let mut model = Model::new();
    let make = |id: i64| Acct {
        name: if id % 50 == 0 {
            format!("o'brien-{id}")
        } else {
            format!("user-{id}")
        },
        balance: if id % 13 == 0 { None } else { Some(id * 10) },
        note: if id % 3 == 0 {
            Some(format!("n{id} ünïcødé"))
        } else {
            None
        },
    };

    // 1..=1500: multi-row INSERTs through the simple protocol, 25 rows each.
    for chunk in (1..=1500i64).collect::<Vec<_>>().chunks(25) {
        let values: Vec<String> = chunk
            .iter()
            .map(|&id| {
                let a = make(id);
                format!(
                    "({id}, {}, {}, {})",
                    sql_str(&a.name),
                    lit_opt_i64(a.balance),
                    lit_opt_str(&a.note)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO acct (id, name, balance, note) VALUES {}",
            values.join(", ")
        );
        let n = simple_exec(&client, &sql).await;
        assert_eq!(
            n,
            chunk.len() as u64,
            "rows inserted by one multi-row INSERT"
        );
        for &id in chunk {
            model.insert(id, make(id));
        }
    }

    // 1501..=2000: one prepared INSERT per row, binary parameters.
    let ins = client
        .prepare("INSERT INTO acct (id, name, balance, note) VALUES ($1, $2, $3, $4)")
        .await
        .unwrap();
    for id in 1501..=2000i64 {
        let a = make(id);
        let n = client
            .execute(&ins, &[&id, &a.name, &a.balance, &a.note])
            .await
            .unwrap();
        assert_eq!(n, 1);
        model.insert(id, a);
    }

    // Set-based UPDATE: NULL + 1000 stays NULL, but the row still counts as updated.
    let n = client
        .execute(
            "UPDATE acct SET balance = balance + 1000 WHERE id % 10 = 0",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 200, "UPDATE ... WHERE id % 10 = 0 row count");
    for (id, a) in model.iter_mut() {
        if id % 10 == 0 {
            a.balance = a.balance.map(|b| b + 1000);
        }
    }

    // Point UPDATEs with parameters.
    let upd = client
        .prepare("UPDATE acct SET note = $1 WHERE id = $2")
        .await
        .unwrap();
    for id in 100..150i64 {
        let note = format!("touched-{id}");
        assert_eq!(client.execute(&upd, &[&note, &id]).await.unwrap(), 1);
        model.get_mut(&id).unwrap().note = Some(note);
    }
    // Setting a column to NULL.
    assert_eq!(
        client
            .execute("UPDATE acct SET balance = NULL WHERE id = 1234", &[])
            .await
            .unwrap(),
        1
    );
    model.get_mut(&1234).unwrap().balance = None;

    // Set-based DELETE.
    let n = client
        .execute("DELETE FROM acct WHERE id % 7 = 0", &[])
        .await
        .unwrap();
    assert_eq!(n, 285, "DELETE ... WHERE id % 7 = 0 row count");
    model.retain(|id, _| id % 7 != 0);

    // Point DELETEs, some of rows already gone.
    let del = client
        .prepare("DELETE FROM acct WHERE id = $1")
        .await
        .unwrap();
    for id in 1990..=2000i64 {
        let expected = if id % 7 == 0 { 0 } else { 1 };
        assert_eq!(
            client.execute(&del, &[&id]).await.unwrap(),
            expected,
            "DELETE id={id}"
        );
        model.remove(&id);
    }

    // Re-insert a deleted key: the new row must win over the tombstone.
    client
        .execute("INSERT INTO acct VALUES (7, 'reborn', 7, 'again')", &[])
        .await
        .unwrap();
    model.insert(
        7,
        Acct {
            name: "reborn".into(),
            balance: Some(7),
            note: Some("again".into()),
        },
    );

    // COPY FROM STDIN, text format, with NULLs and escapes.
    let mut data = String::new();
    for id in 3001..=3100i64 {
        let note = if id % 2 == 0 {
            "tab\\there".to_string()
        } else {
            "\\N".to_string()
        };
        data.push_str(&format!("{id}\tcopied-{id}\t{}\t{note}\n", id * 3));
        model.insert(
            id,
            Acct {
                name: format!("copied-{id}"),
                balance: Some(id * 3),
                note: if id % 2 == 0 {
                    Some("tab\there".into())
                } else {
                    None
                },
            },
        );
    }
    assert_eq!(copy_in(&client, "COPY acct FROM STDIN", data).await, 100);

    // COPY FROM STDIN, CSV with a header, quoted fields and empty (NULL) fields.
    let mut csv = String::from("id,name,balance,note\n");
    for id in 4001..=4050i64 {
        csv.push_str(&format!("{id},\"Smith, \"\"J{id}\"\"\",{},\n", id - 4000));
        model.insert(
            id,
            Acct {
                name: format!("Smith, \"J{id}\""),
                balance: Some(id - 4000),
                note: None,
            },
        );
    }
    assert_eq!(
        copy_in(
            &client,
            "COPY acct (id, name, balance, note) FROM STDIN WITH (FORMAT csv, HEADER true)",
            csv
        )
        .await,
        50
    );

    // Several sessions writing at the same time (group commit), one row per statement.
    let mut tasks = Vec::new();
    for session in 0..4i32 {
        let c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let st = c
                .prepare("INSERT INTO evt (id, session, seq) VALUES ($1, $2, $3)")
                .await
                .unwrap();
            for seq in 0..50i32 {
                let id = (session as i64) * 1000 + seq as i64;
                assert_eq!(c.execute(&st, &[&id, &session, &seq]).await.unwrap(), 1);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Every statement above has been acknowledged: kill without warning.
    server.kill();
    drop(client);
    server.restart();
    let client = server.connect().await;
    check_acct(&client, &model, "after first SIGKILL").await;

    // Spot checks of specific rows.
    let r = client
        .query_one("SELECT name, balance, note FROM acct WHERE id = 7", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "reborn");
    let r = client
        .query_one("SELECT note FROM acct WHERE id = 120", &[])
        .await
        .unwrap();
    assert_eq!(
        r.get::<_, Option<String>>(0).as_deref(),
        Some("touched-120")
    );
    let r = client
        .query_one("SELECT balance FROM acct WHERE id = 30", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, Option<i64>>(0), Some(1300));
    let r = client
        .query_one("SELECT name FROM acct WHERE id = 50", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "o'brien-50");
    assert!(client
        .query_opt("SELECT id FROM acct WHERE id = 14", &[])
        .await
        .unwrap()
        .is_none());

    let evt = client
        .query("SELECT session, seq FROM evt ORDER BY session, seq", &[])
        .await
        .unwrap();
    let got: Vec<(i32, i32)> = evt.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i32, i32)> = (0..4).flat_map(|s| (0..50).map(move |q| (s, q))).collect();
    assert_eq!(
        got, expected,
        "concurrently inserted evt rows after SIGKILL"
    );

    // Second cycle: write after recovery, kill again.
    for id in 5001..=5010i64 {
        let a = make(id);
        client
            .execute(&*ins_sql(), &[&id, &a.name, &a.balance, &a.note])
            .await
            .unwrap();
        model.insert(id, a);
    }
    let n = client
        .execute("DELETE FROM acct WHERE id BETWEEN 3001 AND 3010", &[])
        .await
        .unwrap();
    assert_eq!(n, 10);
    model.retain(|id, _| !(3001..=3010).contains(id));
    let n = client
        .execute(
            "UPDATE acct SET balance = -1, note = 'second life' WHERE id = 4001",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    {
        let a = model.get_mut(&4001).unwrap();
        a.balance = Some(-1);
        a.note = Some("second life".into());
    }
    server.kill();
    drop(client);

    // Third cycle: kill right after recovery with no writes at all, so that
    // recovery itself must be repeatable.
    server.restart();
    server.kill();
    server.restart();
    let client = server.connect().await;
    check_acct(&client, &model, "after second and third SIGKILL").await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM evt", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 200);

    // The primary key is still enforced after recovery.
    let err = client
        .execute("INSERT INTO acct VALUES (1, 'dup', 0, NULL)", &[])
        .await
        .expect_err("duplicate primary key must be rejected after restart");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err:?}");
}

fn ins_sql() -> String {
    "INSERT INTO acct (id, name, balance, note) VALUES ($1, $2, $3, $4)".to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_survives_sigkill() {
    let mut server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE empty_one (id int8 PRIMARY KEY, v text);
             CREATE TABLE kept (k int4 PRIMARY KEY, d date NOT NULL, amount numeric(12,2));
             INSERT INTO kept VALUES (1, '2024-01-01', 10.50), (2, '1969-12-31', NULL);
             CREATE TABLE dropped (id int8 PRIMARY KEY);
             DROP TABLE dropped;",
        )
        .await
        .unwrap();
    server.kill();
    drop(client);
    server.restart();
    let client = server.connect().await;

    let n: i64 = client
        .query_one("SELECT count(*) FROM empty_one", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let rows = simple_rows(&client, "SELECT k, d, amount FROM kept ORDER BY k").await;
    assert_eq!(
        rows,
        vec![
            vec![
                Some("1".into()),
                Some("2024-01-01".into()),
                Some("10.50".into())
            ],
            vec![Some("2".into()), Some("1969-12-31".into()), None],
        ]
    );
    let err = client
        .query("SELECT * FROM dropped", &[])
        .await
        .expect_err("a dropped table must stay dropped after restart");
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err:?}");
    // Column types survive too.
    let st = client
        .prepare("SELECT k, d, amount FROM kept WHERE k = $1")
        .await
        .unwrap();
    assert_eq!(st.params(), &[tokio_postgres::types::Type::INT4]);
    let types: Vec<_> = st.columns().iter().map(|c| c.type_().clone()).collect();
    assert_eq!(
        types,
        vec![
            tokio_postgres::types::Type::INT4,
            tokio_postgres::types::Type::DATE,
            tokio_postgres::types::Type::NUMERIC
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_graceful_and_keeps_data() {
    let mut server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute("CREATE TABLE g (id int8 PRIMARY KEY, v text NOT NULL)")
        .await
        .unwrap();
    let st = client
        .prepare("INSERT INTO g VALUES ($1, $2)")
        .await
        .unwrap();
    for id in 0..500i64 {
        client
            .execute(&st, &[&id, &format!("v{id}")])
            .await
            .unwrap();
    }
    // An idle authenticated session and a TCP connection that never sent a
    // startup packet must not keep the server from shutting down.
    let idle = server.connect().await;
    assert_eq!(simple_scalar(&idle, "SELECT 1").await.as_deref(), Some("1"));
    let _silent = tokio::net::TcpStream::connect(server.addr()).await.unwrap();

    let status = server
        .terminate(Duration::from_secs(10))
        .expect("freshet did not exit within 10 s of SIGTERM");
    assert!(
        status.success(),
        "freshet exited with {status} after SIGTERM\n{}",
        server.logs()
    );
    // The idle session has been closed by the server.
    assert!(
        idle.simple_query("SELECT 1").await.is_err(),
        "a session still answered after the server exited"
    );

    server.restart();
    let client = server.connect().await;
    let r = client
        .query_one("SELECT count(*), min(id), max(id) FROM g", &[])
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2)),
        (500, 0, 499)
    );
    let r = client
        .query_one("SELECT v FROM g WHERE id = 321", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "v321");

    // Still writable after a graceful restart, and a second SIGTERM is graceful too.
    client
        .execute("INSERT INTO g VALUES (500, 'after restart')", &[])
        .await
        .unwrap();
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("freshet did not exit within 10 s of the second SIGTERM");
    assert!(status.success(), "second SIGTERM: exit status {status}");
    server.restart();
    let client = server.connect().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM g", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 501);
}

/// `SELECT 1` on an established session must still answer promptly.
async fn assert_healthy(server: &mut Server, session: &Client, after: &str) {
    let r = tokio::time::timeout(Duration::from_secs(10), session.simple_query("SELECT 1"))
        .await
        .unwrap_or_else(|_| panic!("after {after}: SELECT 1 did not answer within 10 s"));
    let rows: Vec<_> = r
        .unwrap_or_else(|e| panic!("after {after}: SELECT 1 failed: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    assert_eq!(rows, vec!["1".to_string()], "after {after}");
    // New connections are still accepted and served.
    let fresh = tokio::time::timeout(Duration::from_secs(10), server.try_connect())
        .await
        .unwrap_or_else(|_| panic!("after {after}: a new connection took more than 10 s"))
        .unwrap_or_else(|e| panic!("after {after}: new connection failed: {e:?}"));
    assert_eq!(
        simple_scalar(&fresh, "SELECT 2").await.as_deref(),
        Some("2"),
        "after {after}"
    );
    assert!(
        server.is_running(),
        "freshet exited after {after}\n{}",
        server.logs()
    );
}

/// Read whatever the server sends until EOF, error, or `limit`.
async fn drain(stream: &mut tokio::net::TcpStream, limit: Duration) {
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_connections_do_not_disturb_other_sessions() {
    let mut server = Server::start(FRESHET_BIN);
    let port = server.port();
    let a = server.connect().await;
    a.batch_execute(
        "CREATE TABLE target (id int8 PRIMARY KEY, v text);
         CREATE TABLE big (id int8 PRIMARY KEY)",
    )
    .await
    .unwrap();
    let mut ids = String::new();
    for i in 0..1000 {
        ids.push_str(&format!("{i}\n"));
    }
    assert_eq!(copy_in(&a, "COPY big FROM STDIN", ids).await, 1000);
    assert_healthy(&mut server, &a, "setup").await;

    // Connections kept open (stalled) until the end of the test.
    let mut stalled = Vec::new();

    // 1. Pure garbage, then wait for the server to react.
    {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let _ = s.write_all(&Rng::new(1).bytes(4096)).await;
        drain(&mut s, Duration::from_secs(3)).await;
    }
    assert_healthy(&mut server, &a, "garbage bytes").await;

    // 2. A start-up packet claiming to be 2 GiB long, left open.
    {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let _ = s
            .write_all(&[0x7f, 0xff, 0xff, 0xff, 0x00, 0x03, 0x00, 0x00])
            .await;
        stalled.push(s);
    }
    assert_healthy(&mut server, &a, "a huge start-up length").await;

    // 3. A truncated start-up packet, left open: the server must not block
    //    other connections while it waits for the rest.
    {
        let msg = startup_message();
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(&msg[..msg.len() / 2]).await.unwrap();
        stalled.push(s);
    }
    assert_healthy(&mut server, &a, "a stalled truncated start-up packet").await;

    // 4. A truncated start-up packet, then disconnect.
    {
        let msg = startup_message();
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        s.write_all(&msg[..7]).await.unwrap();
        drop(s);
    }
    assert_healthy(
        &mut server,
        &a,
        "a truncated start-up packet and disconnect",
    )
    .await;

    // 5. SSLRequest, then garbage instead of a TLS handshake or start-up packet.
    {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let mut req = 8i32.to_be_bytes().to_vec();
        req.extend_from_slice(&80877103i32.to_be_bytes());
        s.write_all(&req).await.unwrap();
        let mut answer = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut answer)).await;
        let _ = s.write_all(&Rng::new(2).bytes(1000)).await;
        drain(&mut s, Duration::from_secs(3)).await;
    }
    assert_healthy(&mut server, &a, "SSLRequest followed by garbage").await;

    // 6. A CancelRequest for a backend that does not exist.
    {
        let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let mut req = 16i32.to_be_bytes().to_vec();
        req.extend_from_slice(&80877102i32.to_be_bytes());
        req.extend_from_slice(&424242i32.to_be_bytes());
        req.extend_from_slice(&(-7i32).to_be_bytes());
        s.write_all(&req).await.unwrap();
        drain(&mut s, Duration::from_secs(3)).await;
    }
    assert_healthy(&mut server, &a, "a bogus CancelRequest").await;

    // 7. After a good handshake: a Query message cut off in the middle, then disconnect.
    {
        let mut s = raw_session(port).await;
        let mut partial = vec![b'Q'];
        partial.extend_from_slice(&1000i32.to_be_bytes());
        partial.extend_from_slice(b"SELECT * FR");
        s.write_all(&partial).await.unwrap();
        drop(s);
    }
    assert_healthy(&mut server, &a, "a truncated Query message").await;

    // 8. After a good handshake: a Query, then disconnect without reading the answer.
    {
        let mut s = raw_session(port).await;
        s.write_all(&query_message("SELECT id FROM big ORDER BY id"))
            .await
            .unwrap();
        let _ = s.shutdown().await;
        drop(s);
    }
    assert_healthy(&mut server, &a, "disconnect right after sending a query").await;

    // 9. After a good handshake: malformed extended-protocol messages.
    {
        let mut s = raw_session(port).await;
        // Parse with a body that is not NUL-terminated, then Bind with nonsense, then Sync.
        let mut bytes = frontend_message(b'P', b"\x01\x02\x03");
        bytes.extend_from_slice(&frontend_message(b'B', &[0xff; 9]));
        bytes.extend_from_slice(&frontend_message(b'S', b""));
        let _ = s.write_all(&bytes).await;
        drain(&mut s, Duration::from_secs(3)).await;
    }
    assert_healthy(&mut server, &a, "malformed Parse/Bind messages").await;

    // 10. Disconnect in the middle of a large result set.
    {
        let mut s = raw_session(port).await;
        s.write_all(&query_message("SELECT x.id, y.id FROM big x, big y"))
            .await
            .unwrap();
        let mut got = 0usize;
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while got < 64 * 1024 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
        })
        .await;
        drop(s);
    }
    assert_healthy(
        &mut server,
        &a,
        "disconnect in the middle of a large result",
    )
    .await;

    // 11. Disconnect in the middle of COPY FROM STDIN: nothing of it is applied.
    {
        let mut s = raw_session(port).await;
        s.write_all(&query_message("COPY target FROM STDIN"))
            .await
            .unwrap();
        let got_copy_in = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match read_backend_message(&mut s).await {
                    Ok((b'G', _)) => return true,
                    Ok((b'E', body)) => panic!(
                        "COPY FROM STDIN refused: {}",
                        String::from_utf8_lossy(&body)
                    ),
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .expect("no CopyInResponse within 10 s");
        assert!(got_copy_in, "connection closed before CopyInResponse");
        s.write_all(&frontend_message(b'd', b"1\tone\n2\ttwo\n3\tth"))
            .await
            .unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
    }
    assert_healthy(&mut server, &a, "disconnect in the middle of COPY").await;
    // Give the server a moment to notice the disconnect, then check the table.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n: i64 = a
        .query_one("SELECT count(*) FROM target", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "rows of an unfinished COPY became visible");

    // 12. A burst of connections that connect and close immediately.
    for _ in 0..50 {
        let s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        drop(s);
    }
    assert_healthy(&mut server, &a, "50 connect-and-close connections").await;

    // The session that was open all along still reads and writes normally.
    a.execute("INSERT INTO target VALUES (1, 'still fine')", &[])
        .await
        .unwrap();
    let r = a
        .query_one("SELECT v FROM target WHERE id = 1", &[])
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "still fine");
    drop(stalled);
    assert_healthy(&mut server, &a, "closing the stalled connections").await;
}
