//! Secondary indexes (`CREATE INDEX`) under random writes: after every
//! statement, queries the planner answers from an index (checked with
//! EXPLAIN) return exactly what a model of the acknowledged writes says,
//! unique indexes refuse exactly the writes that would repeat a key, an
//! index on a materialized view follows the view, and all of it holds after
//! a SIGKILL and restart.

mod common;

use std::collections::BTreeMap;

use common::*;
use freshet_sqllogictest::rng::Rng;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

#[derive(Clone, Debug, PartialEq)]
struct Row {
    a: Option<i32>,
    b: Option<String>,
    /// Unique (when not NULL).
    c: Option<i64>,
}

type Model = BTreeMap<i32, Row>;

fn lit<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|x| x.to_string())
        .unwrap_or_else(|| "NULL".into())
}

fn lit_b(v: &Option<String>) -> String {
    v.as_deref().map(sql_str).unwrap_or_else(|| "NULL".into())
}

fn random_row(rng: &mut Rng) -> Row {
    Row {
        a: (rng.below(8) != 0).then(|| rng.range(0, 20) as i32),
        b: (rng.below(8) != 0).then(|| format!("b{}", rng.below(5))),
        c: (rng.below(3) != 0).then(|| rng.range(0, 60)),
    }
}

/// Whether the model's rows would be unique by `c` (NULLs distinct).
fn unique_c(model: &Model) -> bool {
    let mut seen = std::collections::HashSet::new();
    model.values().filter_map(|r| r.c).all(|c| seen.insert(c))
}

async fn ids(client: &Client, sql: &str) -> Vec<i32> {
    let rows = client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    let mut v: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    v.sort();
    v
}

async fn explain(client: &Client, sql: &str) -> String {
    simple_rows(client, &format!("EXPLAIN {sql}"))
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the index-answered queries and compares each with the model.
async fn check(client: &Client, model: &Model, rng: &mut Rng, when: &str) {
    let k = rng.range(0, 20) as i32;
    let (lo, hi) = {
        let x = rng.range(0, 20) as i32;
        let y = rng.range(0, 20) as i32;
        (x.min(y), x.max(y))
    };
    let s = format!("b{}", rng.below(5));
    let c = rng.range(0, 60);
    type Pred = Box<dyn Fn(&Row) -> bool>;
    let s2 = s.clone();
    let cases: Vec<(String, &str, Pred)> = vec![
        (
            format!("SELECT id FROM ix WHERE a = {k}"),
            "index=ix_a_idx",
            Box::new(move |r: &Row| r.a == Some(k)),
        ),
        (
            format!("SELECT id FROM ix WHERE a BETWEEN {lo} AND {hi}"),
            "index=ix_a_idx",
            Box::new(move |r: &Row| r.a.is_some_and(|a| a >= lo && a <= hi)),
        ),
        (
            format!("SELECT id FROM ix WHERE a IN ({lo}, {hi})"),
            "index=ix_a_idx",
            Box::new(move |r: &Row| r.a == Some(lo) || r.a == Some(hi)),
        ),
        (
            format!("SELECT id FROM ix WHERE b = '{s}' AND a > {k}"),
            "index=ix_b_a",
            Box::new(move |r: &Row| {
                r.b.as_deref() == Some(s.as_str()) && r.a.is_some_and(|a| a > k)
            }),
        ),
        (
            format!("SELECT id FROM ix WHERE b = '{s2}'"),
            "index=ix_b_a",
            Box::new({
                let s2 = s2.clone();
                move |r: &Row| r.b.as_deref() == Some(s2.as_str())
            }),
        ),
        (
            format!("SELECT id FROM ix WHERE c = {c}"),
            "index=ix_c",
            Box::new(move |r: &Row| r.c == Some(c)),
        ),
        (
            format!("SELECT id FROM ix WHERE c < {c}"),
            "index=ix_c",
            Box::new(move |r: &Row| r.c.is_some_and(|x| x < c)),
        ),
    ];
    for (sql, index, pred) in cases {
        let plan = explain(client, &sql).await;
        assert!(
            plan.contains(index),
            "{when}: {sql} does not use {index}:\n{plan}"
        );
        let got = ids(client, &sql).await;
        let want: Vec<i32> = model
            .iter()
            .filter(|(_, r)| pred(r))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(got, want, "{when}: {sql}");
    }
    // The view's index: groups of `a` with exactly n rows.
    let n = 1 + rng.below(4) as i64;
    let sql = format!("SELECT a FROM ixv WHERE n = {n} AND a IS NOT NULL");
    let plan = explain(client, &sql).await;
    assert!(plan.contains("index=ixv_n"), "{when}: {sql}:\n{plan}");
    let mut counts: BTreeMap<i32, i64> = BTreeMap::new();
    for r in model.values() {
        if let Some(a) = r.a {
            *counts.entry(a).or_default() += 1;
        }
    }
    let want: Vec<i32> = counts
        .iter()
        .filter(|(_, c)| **c == n)
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(ids(client, &sql).await, want, "{when}: {sql}");
}

/// One random write; the model follows it when it is acknowledged, and a
/// write the unique index (once `unique`) must refuse is refused with 23505.
async fn step(client: &Client, model: &mut Model, rng: &mut Rng, next_id: &mut i32, unique: bool) {
    let mut after = model.clone();
    let sql = match rng.below(5) {
        0 | 1 => {
            let mut values = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let r = random_row(rng);
                *next_id += 1;
                values.push(format!(
                    "({}, {}, {}, {})",
                    next_id,
                    lit(&r.a),
                    lit_b(&r.b),
                    lit(&r.c)
                ));
                after.insert(*next_id, r);
            }
            format!("INSERT INTO ix VALUES {}", values.join(", "))
        }
        2 => {
            // Through the index on a: move some rows to another a and c.
            let from = rng.range(0, 20) as i32;
            let to = rng.range(0, 20) as i32;
            let c = rng.range(0, 60);
            for r in after.values_mut().filter(|r| r.a == Some(from)) {
                r.a = Some(to);
                r.c = r.c.map(|x| x + c);
            }
            format!("UPDATE ix SET a = {to}, c = c + {c} WHERE a = {from}")
        }
        3 => {
            let id = rng.range(0, (*next_id).max(1) as i64) as i32;
            let r = random_row(rng);
            if let Some(row) = after.get_mut(&id) {
                *row = r.clone();
            }
            format!(
                "UPDATE ix SET a = {}, b = {}, c = {} WHERE id = {id}",
                lit(&r.a),
                lit_b(&r.b),
                lit(&r.c)
            )
        }
        _ => {
            let s = format!("b{}", rng.below(5));
            let k = rng.range(0, 20) as i32;
            after
                .retain(|_, r| !(r.b.as_deref() == Some(s.as_str()) && r.a.is_some_and(|a| a < k)));
            format!("DELETE FROM ix WHERE b = '{s}' AND a < {k}")
        }
    };
    let result = client.simple_query(&sql).await;
    if !unique || unique_c(&after) {
        result.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        *model = after;
    } else {
        let e = result.expect_err(&format!("{sql} repeats a unique key but was accepted"));
        assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION), "{sql}: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_follow_random_writes_and_restarts() {
    let seed = std::env::var("FRESHET_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(Rng::seed_from_clock);
    eprintln!("indexes: seed {seed} (FRESHET_TEST_SEED={seed} repeats this run)");
    let mut rng = Rng::new(seed);
    let mut server = Server::start(FRESHET_BIN);
    let mut client = server.connect().await;
    let mut model = Model::new();
    let mut next_id = 0;
    client
        .batch_execute("CREATE TABLE ix (id int PRIMARY KEY, a int, b text, c bigint)")
        .await
        .unwrap();
    // Rows first, so the indexes are built over existing rows too.
    for _ in 0..10 {
        step(&client, &mut model, &mut rng, &mut next_id, false).await;
    }
    // Existing rows may repeat a c already: the unique index then fails
    // to build, and the repeats are removed before it is built again.
    let built = client
        .batch_execute("CREATE UNIQUE INDEX ix_c ON ix (c)")
        .await;
    if !unique_c(&model) {
        let e = built.expect_err("a unique index over repeated keys was built");
        assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION), "{e:?}");
        client
            .batch_execute("UPDATE ix SET c = NULL")
            .await
            .unwrap();
        for r in model.values_mut() {
            r.c = None;
        }
        client
            .batch_execute("CREATE UNIQUE INDEX ix_c ON ix (c)")
            .await
            .unwrap();
    } else {
        built.unwrap();
    }
    client
        .batch_execute(
            "CREATE INDEX ON ix (a);
             CREATE INDEX ix_b_a ON ix (b, a);
             CREATE MATERIALIZED VIEW ixv AS SELECT a, count(*) AS n FROM ix GROUP BY a;
             CREATE INDEX ixv_n ON ixv (n);",
        )
        .await
        .unwrap();
    check(&client, &model, &mut rng, "after CREATE INDEX").await;
    for round in 0..3 {
        for i in 0..40 {
            step(&client, &mut model, &mut rng, &mut next_id, true).await;
            check(
                &client,
                &model,
                &mut rng,
                &format!("round {round}, step {i}"),
            )
            .await;
        }
        server.kill();
        drop(client);
        server.restart();
        client = server.connect().await;
        check(&client, &model, &mut rng, &format!("after kill {round}")).await;
    }
    // Dropped indexes are no longer used, and their names are free.
    client
        .batch_execute("DROP INDEX ix_a_idx, ix_b_a")
        .await
        .unwrap();
    let plan = explain(&client, "SELECT id FROM ix WHERE a = 1").await;
    assert!(plan.contains("access=full_scan"), "{plan}");
    let got = ids(&client, "SELECT id FROM ix WHERE a = 1").await;
    let want: Vec<i32> = model
        .iter()
        .filter(|(_, r)| r.a == Some(1))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(got, want);
    client
        .batch_execute("CREATE INDEX ix_b_a ON ix (a)")
        .await
        .unwrap();
}
