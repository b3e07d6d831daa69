//! Sources through the scheduler, across real `kill -9`s: every generated
//! record is counted exactly once in every view (none lost, none twice),
//! each view equals its query run as a batch over a mirror of the source
//! in the same snapshot, and a view created (or killed during its
//! backfill) over a running source starts from everything committed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio_postgres::Client;

/// 120,000 Nexmark events, 46 in 50 of them bids.
const EVENTS: u64 = 120_000;
const BIDS: i64 = 110_400;
/// The datagen table's sequence: ids 1..=ROWS.
const ROWS: i64 = 30_000;
const BASE_TIME: &str = "1700000000000";

fn bid_source(name: &str, gap_ns: u64, splits: u32) -> String {
    format!(
        "CREATE SOURCE {name} (auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, \
         url VARCHAR, date_time TIMESTAMP, extra VARCHAR) WITH (connector = 'nexmark', \
         nexmark.table.type = 'Bid', nexmark.event.num = '{EVENTS}', \
         nexmark.min.event.gap.in.ns = '{gap_ns}', nexmark.split.num = '{splits}', \
         nexmark.base.time = '{BASE_TIME}')"
    )
}

/// The views over `bid` and `dg`, each with the batch query it must equal
/// (over the mirror views `bid_all` and the table `dg`).
const VIEWS: &[(&str, &str, &str)] = &[
    (
        "q_count",
        "SELECT count(*) AS n, sum(price) AS p FROM bid",
        "SELECT count(*) AS n, sum(price) AS p FROM bid_all",
    ),
    (
        "q_chan",
        "SELECT channel, count(*) AS n, max(price) AS p FROM bid GROUP BY channel",
        "SELECT channel, count(*) AS n, max(price) AS p FROM bid_all GROUP BY channel",
    ),
    (
        "q_auction",
        "SELECT auction, count(*) AS n, sum(price) AS s FROM bid WHERE price > 1000 GROUP BY auction",
        "SELECT auction, count(*) AS n, sum(price) AS s FROM bid_all WHERE price > 1000 GROUP BY auction",
    ),
    (
        "dg_v",
        "SELECT v, count(*) AS n, sum(id) AS s FROM dg GROUP BY v",
        "SELECT v, count(*) AS n, sum(id) AS s FROM dg GROUP BY v",
    ),
];

/// Asserts, in one snapshot each, that every view equals its batch query.
async fn check_views(client: &Client, views: &[(&str, &str, &str)], when: &str) {
    for (name, _, batch) in views {
        check_view(client, name, batch, when).await;
    }
}

async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    simple_scalar(client, sql)
        .await
        .unwrap_or_else(|| panic!("{sql}: NULL"))
        .parse()
        .unwrap()
}

/// Waits until `sql` answers `want` (the paced sources catching up).
async fn wait_for(client: &Client, sql: &str, want: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        let got = scalar_i64(client, sql).await;
        if got == want {
            return;
        }
        assert!(
            got < want,
            "{sql}: {got}, more than the {want} records produced"
        );
        assert!(
            start.elapsed() < limit,
            "{sql}: still {got} of {want} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_counts_once_across_kills() {
    let mut rng = test_rng("sources");
    let mut server = Server::start(FRESHET_BIN);
    let mut client = server.connect().await;
    // Paced so the kills land mid-stream: about 20,000 events/s over two
    // splits, and 6,000 rows/s for the datagen table (no key: a row read
    // twice would be stored twice).
    client
        .batch_execute(&format!(
            "{};
             CREATE TABLE dg (id bigint, v int) WITH (connector = 'datagen',
               fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '{ROWS}',
               fields.v.min = '0', fields.v.max = '9', fields.v.seed = '5',
               datagen.rows.per.second = '6000', datagen.split.num = '2')
               FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW bid_all AS SELECT * FROM bid;",
            bid_source("bid", 50_000, 2)
        ))
        .await
        .unwrap();
    for (name, query, _) in VIEWS {
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {query}"))
            .await
            .unwrap();
    }
    let late = (
        "q_late",
        "SELECT bidder % 100 AS b, count(*) AS n FROM bid GROUP BY 1",
        "SELECT bidder % 100 AS b, count(*) AS n FROM bid_all GROUP BY 1",
    );
    let mut late_exists = false;
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.range(200, 1500) as u64)).await;
        // Once killed while a new view backfills from the running source:
        // afterwards it either exists, complete, or not at all.
        let during = (round == 2 && !late_exists).then(|| {
            (
                format!("CREATE MATERIALIZED VIEW {} AS {}", late.0, late.1),
                300,
            )
        });
        drop(client);
        client = kill_and_restart(&mut server, during, &mut rng).await;
        let when = format!("after kill {}", round + 1);
        let n = scalar_i64(&client, "SELECT n FROM q_count").await;
        eprintln!("sources: {when}: {n} bids counted");
        assert!(n <= BIDS, "{when}: {n} bids");
        check_views(&client, VIEWS, &when).await;
        late_exists = scalar_i64(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'q_late'",
        )
        .await
            == 1;
        if late_exists {
            check_views(&client, &[late], &when).await;
        }
    }
    if !late_exists {
        client
            .batch_execute(&format!(
                "CREATE MATERIALIZED VIEW {} AS {}",
                late.0, late.1
            ))
            .await
            .unwrap();
    }
    // Everything arrives, exactly once.
    wait_for(
        &client,
        "SELECT n FROM q_count",
        BIDS,
        Duration::from_secs(180),
    )
    .await;
    wait_for(
        &client,
        "SELECT count(*) FROM dg",
        ROWS,
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(
        simple_rows(
            &client,
            "SELECT count(DISTINCT id), min(id), max(id), sum(id) FROM dg"
        )
        .await,
        vec![vec![
            Some(ROWS.to_string()),
            Some("1".into()),
            Some(ROWS.to_string()),
            Some((ROWS * (ROWS + 1) / 2).to_string())
        ]]
    );
    check_views(&client, VIEWS, "at the end").await;
    check_views(&client, &[late], "at the end").await;
    // The same events generated once, unpaced, in one split, by a source
    // that was never killed: the same bids.
    client
        .batch_execute(&format!(
            "{};
             CREATE MATERIALIZED VIEW ref_chan AS
               SELECT channel, count(*) AS n, max(price) AS p FROM bid_ref GROUP BY channel;
             CREATE MATERIALIZED VIEW ref_count AS SELECT count(*) AS n, sum(price) AS p FROM bid_ref;
             FLUSH;",
            bid_source("bid_ref", 0, 1)
        ))
        .await
        .unwrap();
    let same = |a: &str, b: &str| {
        format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x) + \
                    (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) y)"
        )
    };
    assert_eq!(scalar_i64(&client, "SELECT n FROM ref_count").await, BIDS);
    assert_eq!(scalar_i64(&client, &same("q_count", "ref_count")).await, 0);
    assert_eq!(scalar_i64(&client, &same("q_chan", "ref_chan")).await, 0);
    server.kill();
}

/// `source_rate_limit` caps what a source reads (an unlimited generator
/// would produce 50,000 rows at once); `0` pauses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_rate_limit_caps_a_source() {
    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(
            "CREATE TABLE capped (id bigint) WITH (connector = 'datagen',
               fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '50000',
               datagen.rows.per.second = '0', datagen.split.num = '2', source_rate_limit = '200');
             CREATE TABLE paused (id bigint) WITH (connector = 'datagen',
               fields.id.kind = 'sequence', fields.id.start = '1', fields.id.end = '50000',
               datagen.rows.per.second = '0', source_rate_limit = '0');",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let n = scalar_i64(&client, "SELECT count(*) FROM capped").await;
    // 200 rows/s for 1.5 s is 300; far below what the generator makes.
    assert!(n > 0 && n < 2000, "{n} rows read at 200 rows/s in 1.5 s");
    assert_eq!(scalar_i64(&client, "SELECT count(*) FROM paused").await, 0);
    let err = client
        .batch_execute(
            "CREATE TABLE bad (id bigint) WITH (connector = 'datagen', source_rate_limit = 'fast')",
        )
        .await
        .unwrap_err();
    let msg = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("source_rate_limit"), "{err:?}");
}
