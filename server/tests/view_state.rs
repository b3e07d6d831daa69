//! Materialized-view state larger than the storage cache: with a 1 MiB
//! block cache (and so a 256 KiB write buffer) the views' state and the
//! tables are far bigger than memory holds, so reads go to disk. After
//! every change and after a `kill -9` restart each view must still equal its
//! query run as a batch query. The restart time is printed (measured, not
//! asserted): it must not depend on how much the views hold, since nothing
//! is recomputed at start-up.

mod common;

use std::time::Instant;

use common::*;
use freshet_sqllogictest::rng::Rng;
use tokio_postgres::Client;

const VIEWS: [(&str, &str); 3] = [
    (
        "per_group",
        "SELECT g, count(*) AS n, sum(v) AS total, max(v) AS top, min(v) AS low \
         FROM items GROUP BY g",
    ),
    (
        "per_name",
        "SELECT gr.name, count(*) AS n, sum(i.v) AS total \
         FROM items i JOIN groups gr ON i.g = gr.g GROUP BY gr.name",
    ),
    (
        "top_items",
        "SELECT id, v FROM items ORDER BY v DESC, id LIMIT 20",
    ),
];

async fn rows_of(client: &Client, sql: &str) -> Vec<String> {
    let mut out: Vec<String> = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

async fn check_views(client: &Client, when: &str) {
    for (name, query) in VIEWS {
        let got = rows_of(client, &format!("SELECT * FROM {name}")).await;
        let want = rows_of(client, query).await;
        assert_eq!(
            got.len(),
            want.len(),
            "{when}: {name} has the wrong row count"
        );
        assert!(got == want, "{when}: {name} differs from its query");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_larger_than_the_cache_stay_exact_across_kill() {
    // Only this test runs in this binary, so the variable reaches only the
    // servers it starts.
    unsafe { std::env::set_var("FRESHET_CACHE_SIZE", "1MiB") };
    let mut server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, g int, v bigint, pad text);
             CREATE TABLE groups (g int PRIMARY KEY, name text);
             INSERT INTO groups SELECT value, 'name' || (value % 700) FROM generate_series(0, 4999);",
        )
        .await
        .unwrap();
    for (name, query) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap();
    }
    // 60,000 rows of ~80 bytes through three views: several MiB of table
    // and view state against a 1 MiB cache.
    for chunk in 0..3 {
        let (from, to) = (chunk * 20_000 + 1, (chunk + 1) * 20_000);
        client
            .batch_execute(&format!(
                "INSERT INTO items SELECT value, value % 5000, (value * 7919) % 100003, \
                 repeat('x', 60) FROM generate_series({from}, {to})"
            ))
            .await
            .unwrap();
    }
    check_views(&client, "after loading").await;
    let mut rng = Rng::new(42);
    let mut next = |n: u64| rng.below_u64(n);
    for step in 0..40 {
        let id = next(60_000) + 1;
        let sql = match step % 4 {
            0 => format!("UPDATE items SET v = {} WHERE id = {id}", next(100_000)),
            1 => format!("DELETE FROM items WHERE id = {id}"),
            2 => format!(
                "UPDATE items SET g = {} WHERE id BETWEEN {id} AND {}",
                next(5000),
                id + 50
            ),
            _ => format!(
                "UPDATE groups SET name = 'renamed{}' WHERE g = {}",
                next(10),
                next(5000)
            ),
        };
        client.batch_execute(&sql).await.unwrap();
        if step % 10 == 9 {
            check_views(&client, &format!("after step {step} ({sql})")).await;
        }
    }
    let before: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for (name, _) in VIEWS {
            v.push(rows_of(&client, &format!("SELECT * FROM {name}")).await);
        }
        v
    };
    drop(client);
    server.kill();
    let t = Instant::now();
    server.restart();
    let client = server.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    println!(
        "restart with 60,000 rows under 3 views (1 MiB cache): {:.0} ms to first answer",
        t.elapsed().as_secs_f64() * 1e3
    );
    for ((name, _), rows) in VIEWS.iter().zip(&before) {
        let now = rows_of(&client, &format!("SELECT * FROM {name}")).await;
        assert!(&now == rows, "{name} changed across kill -9");
    }
    check_views(&client, "after kill -9").await;
    client
        .batch_execute(
            "DELETE FROM items WHERE id % 3 = 0; UPDATE items SET v = v + 1 WHERE g < 100",
        )
        .await
        .unwrap();
    check_views(&client, "after changes following the restart").await;
}
