//! Kafka sources against a real broker (`tansu`, started per test on
//! loopback) with real producers: JSON onto columns with bad records
//! counted, upsert and Debezium tables, CSV, error policies, errors at
//! CREATE, and exactly once across `kill -9`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use freshet_sqllogictest::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio_postgres::Client;

async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for r in results {
        r.unwrap_or_else(|e| panic!("creating topic {topic}: {e:?}"));
    }
}

fn producer(broker: &Broker) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces `(partition, key, payload)` records and waits until the broker
/// has them all.
fn produce(p: &BaseProducer, topic: &str, records: &[(i32, Option<String>, Option<String>)]) {
    for (partition, key, payload) in records {
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic).partition(*partition);
        if let Some(k) = key {
            r = r.key(k.as_str());
        }
        if let Some(v) = payload {
            r = r.payload(v.as_str());
        }
        let mut r = r;
        loop {
            match p.send(r) {
                Ok(()) => break,
                Err((e, back)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "producing: {e}"
                    );
                    p.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30))
        .expect("flushing the producer");
}

async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    simple_rows(client, sql).await
}

async fn scalar(client: &Client, sql: &str) -> String {
    simple_scalar(client, sql)
        .await
        .unwrap_or_else(|| panic!("{sql}: NULL"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_onto_columns_with_bad_records_counted() {
    let broker = Broker::start();
    create_topic(&broker, "orders", 3).await;
    let p = producer(&broker);
    let mut good: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut records = Vec::new();
    let mut bad = 0;
    for i in 0..3000i64 {
        let customer = format!("c{}", i % 17);
        let payload = match i % 250 {
            7 => {
                bad += 1;
                "{not json".to_string()
            }
            8 => {
                bad += 1;
                format!(r#"{{"id": "x{i}", "customer": "{customer}"}}"#)
            }
            _ => {
                let e = good.entry(customer.clone()).or_default();
                e.0 += 1;
                e.1 += i;
                format!(
                    r#"{{"id": {i}, "customer": "{customer}", "amount": "{i}.50", "ts": "2024-01-01T00:00:00Z", "tags": {{"n": {i}}}, "ignored": [1]}}"#
                )
            }
        };
        records.push(((i % 3) as i32, None, Some(payload)));
    }
    produce(&p, "orders", &records);

    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE orders (id bigint, customer varchar, amount numeric(12,2), ts timestamptz, tags jsonb)
               INCLUDE partition AS p INCLUDE offset AS o
               WITH (connector = 'kafka', topic = 'orders',
                     properties.bootstrap.server = '{}', scan.startup.mode = 'earliest')
               FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW by_customer AS
               SELECT customer, count(*) AS n, sum(id) AS s, sum(amount) AS a FROM orders GROUP BY customer;
             CREATE MATERIALIZED VIEW orders_all AS SELECT * FROM orders;
             FLUSH;",
            broker.bootstrap()
        ))
        .await
        .unwrap();
    let got = rows(
        &client,
        "SELECT customer, n, s FROM by_customer ORDER BY customer",
    )
    .await;
    let want: Vec<Vec<Option<String>>> = good
        .iter()
        .map(|(c, (n, s))| vec![Some(c.clone()), Some(n.to_string()), Some(s.to_string())])
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM orders_all").await,
        (3000 - bad).to_string()
    );
    // INCLUDE columns, jsonb in canonical form.
    assert_eq!(
        rows(
            &client,
            "SELECT p, o, tags::text, amount FROM orders_all WHERE id = 4"
        )
        .await,
        vec![vec![
            Some("1".into()),
            Some("1".into()),
            Some(r#"{"n": 4}"#.into()),
            Some("4.50".into())
        ]]
    );
    // The bad records are counted where the status view shows them.
    assert_eq!(
        scalar(
            &client,
            "SELECT sum(parse_errors) FROM freshet_source_splits WHERE source = 'orders'"
        )
        .await,
        bad.to_string()
    );
    // More records: the view follows.
    produce(
        &p,
        "orders",
        &[(0, None, Some(r#"{"id": 100000, "customer": "new"}"#.into()))],
    );
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT n, s FROM by_customer WHERE customer = 'new'"
        )
        .await,
        vec![vec![Some("1".into()), Some("100000".into())]]
    );
}

/// The table's rows, in key order, as text.
async fn table_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    rows(client, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_and_debezium_tables_follow_their_keys() {
    let mut rng = test_rng("upsert_and_debezium");
    let broker = Broker::start();
    create_topic(&broker, "kv", 2).await;
    create_topic(&broker, "cdc", 1).await;
    let p = producer(&broker);
    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE TABLE kv (id int, v varchar, n bigint, PRIMARY KEY (id))
               WITH (connector = 'kafka', topic = 'kv', properties.bootstrap.server = '{b}')
               FORMAT UPSERT ENCODE JSON;
             CREATE TABLE cdc (id int PRIMARY KEY, name varchar, price numeric(10,2))
               WITH (connector = 'kafka', topic = 'cdc', properties.bootstrap.server = '{b}')
               FORMAT DEBEZIUM ENCODE JSON;
             CREATE MATERIALIZED VIEW kv_sum AS SELECT count(*) AS c, sum(n) AS s FROM kv;
             CREATE MATERIALIZED VIEW cdc_by_name AS SELECT name, count(*) AS c, sum(price) AS p FROM cdc GROUP BY name;",
            b = broker.bootstrap()
        ))
        .await
        .unwrap();
    let mut kv: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    let mut cdc: BTreeMap<i64, (String, i64)> = BTreeMap::new();
    for round in 0..4 {
        let mut kv_records = Vec::new();
        let mut cdc_records = Vec::new();
        for _ in 0..300 {
            let id = rng.range(0, 60);
            // The same key always goes to the same partition, as a
            // key-hashing producer would: its order is kept.
            let partition = (id % 2) as i32;
            if rng.chance(0.25) {
                kv.remove(&id);
                kv_records.push((partition, Some(id.to_string()), None));
            } else {
                let v = format!("v{}", rng.range(0, 5));
                let n = rng.range(-100, 100);
                kv.insert(id, (v.clone(), n));
                // The key in the payload or only in the Kafka key.
                let payload = if rng.chance(0.5) {
                    format!(r#"{{"id": {id}, "v": "{v}", "n": {n}}}"#)
                } else {
                    format!(r#"{{"v": "{v}", "n": {n}}}"#)
                };
                kv_records.push((partition, Some(format!(r#"{{"id": {id}}}"#)), Some(payload)));
            }
            let id = rng.range(0, 40);
            let name = format!("p{}", rng.range(0, 4));
            let cents = rng.range(0, 100_000);
            let price = format!("{}.{:02}", cents / 100, cents % 100);
            let img = |id: i64, name: &str, price: &str| {
                format!(r#"{{"id": {id}, "name": "{name}", "price": "{price}"}}"#)
            };
            let event = match cdc.get(&id).cloned() {
                None => {
                    cdc.insert(id, (name.clone(), cents));
                    let op = if rng.chance(0.5) { "c" } else { "r" };
                    format!(
                        r#"{{"before": null, "after": {}, "op": "{op}"}}"#,
                        img(id, &name, &price)
                    )
                }
                Some((old, old_cents)) => {
                    let old_price = format!("{}.{:02}", old_cents / 100, old_cents % 100);
                    if rng.chance(0.3) {
                        cdc.remove(&id);
                        format!(
                            r#"{{"schema": {{"type": "struct"}}, "payload": {{"before": {}, "after": null, "op": "d"}}}}"#,
                            img(id, &old, &old_price)
                        )
                    } else {
                        cdc.insert(id, (name.clone(), cents));
                        format!(
                            r#"{{"before": {}, "after": {}, "op": "u"}}"#,
                            img(id, &old, &old_price),
                            img(id, &name, &price)
                        )
                    }
                }
            };
            cdc_records.push((0, Some(id.to_string()), Some(event)));
            if !cdc.contains_key(&id) && rng.chance(0.5) {
                // Debezium's tombstone after a delete.
                cdc_records.push((0, Some(id.to_string()), None));
            }
        }
        produce(&p, "kv", &kv_records);
        produce(&p, "cdc", &cdc_records);
        client.batch_execute("FLUSH").await.unwrap();
        let when = format!("round {round}");
        let want: Vec<Vec<Option<String>>> = kv
            .iter()
            .map(|(id, (v, n))| vec![Some(id.to_string()), Some(v.clone()), Some(n.to_string())])
            .collect();
        assert_eq!(
            table_rows(&client, "SELECT id, v, n FROM kv ORDER BY id").await,
            want,
            "{when}: kv"
        );
        let want: Vec<Vec<Option<String>>> = cdc
            .iter()
            .map(|(id, (name, cents))| {
                vec![
                    Some(id.to_string()),
                    Some(name.clone()),
                    Some(format!("{}.{:02}", cents / 100, cents % 100)),
                ]
            })
            .collect();
        assert_eq!(
            table_rows(&client, "SELECT id, name, price FROM cdc ORDER BY id").await,
            want,
            "{when}: cdc"
        );
        // The views over the tables equal their queries.
        assert_eq!(
            rows(&client, "SELECT (SELECT c FROM kv_sum) = (SELECT count(*) FROM kv), (SELECT s FROM kv_sum) IS NOT DISTINCT FROM (SELECT sum(n) FROM kv)").await,
            vec![vec![Some("t".into()), Some("t".into())]],
            "{when}: kv_sum"
        );
        assert_eq!(
            scalar(&client, "SELECT count(*) FROM ((SELECT * FROM cdc_by_name EXCEPT ALL SELECT name, count(*), sum(price) FROM cdc GROUP BY name) UNION ALL (SELECT name, count(*), sum(price) FROM cdc GROUP BY name EXCEPT ALL SELECT * FROM cdc_by_name)) d").await,
            "0",
            "{when}: cdc_by_name"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_unreachable_brokers_create_nothing() {
    let broker = Broker::start();
    create_topic(&broker, "t", 1).await;
    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    let b = broker.bootstrap();
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '127.0.0.1:{closed}') FORMAT PLAIN ENCODE JSON"),
            "08001",
            "cannot reach the Kafka broker",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 'nope', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "topic \"nope\" does not exist",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "option \"topic\" is required",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}', scan.startup.mode = 'sometime') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "scan.startup.mode",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}', tpoic = 'x') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "unknown option \"tpoic\"",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}', properties.no.such.setting = '1') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "Kafka client settings",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}')"),
            "22023",
            "FORMAT",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE AVRO"),
            "0A000",
            "FORMAT PLAIN ENCODE AVRO",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT UPSERT ENCODE JSON"),
            "0A000",
            "CREATE TABLE",
        ),
        (
            format!("CREATE TABLE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT DEBEZIUM ENCODE JSON"),
            "42P16",
            "needs a primary key",
        ),
        (
            format!("CREATE SOURCE s (a interval) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON"),
            "0A000",
            "type Interval",
        ),
        (
            format!("CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}', source.error.policy = 'ignore') FORMAT PLAIN ENCODE JSON"),
            "22023",
            "source.error.policy",
        ),
        (
            format!("CREATE SOURCE s (a int) INCLUDE header AS h WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON"),
            "0A000",
            "INCLUDE header",
        ),
    ];
    for (sql, code, msg) in cases {
        let err = client.batch_execute(&sql).await.expect_err(&sql);
        let db = err
            .as_db_error()
            .unwrap_or_else(|| panic!("{sql}: {err:?}"));
        assert_eq!(db.code().code(), code, "{sql}: {}", db.message());
        assert!(db.message().contains(msg), "{sql}: {}", db.message());
    }
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM pg_class WHERE relname = 's'").await,
        "0"
    );
    // And the server goes on.
    client
        .batch_execute(&format!(
            "CREATE SOURCE s (a int) WITH (connector = 'kafka', topic = 't', properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_policies_dead_letter_and_stop_and_csv() {
    let broker = Broker::start();
    for t in ["dl", "st", "ok", "csv", "vc"] {
        create_topic(&broker, t, 1).await;
    }
    let p = producer(&broker);
    let bad = |i: i64| {
        (
            0,
            Some(format!("k{i}")),
            Some(format!("{{\"a\": \"bad{i}\"}}")),
        )
    };
    let good = |i: i64| (0, None, Some(format!("{{\"a\": {i}}}")));
    let records: Vec<_> = (0..20)
        .map(|i| if i % 5 == 3 { bad(i) } else { good(i) })
        .collect();
    produce(&p, "dl", &records);
    produce(&p, "st", &records);
    produce(&p, "ok", &(0..20).map(good).collect::<Vec<_>>());
    produce(
        &p,
        "csv",
        &[
            (0, None, Some("a|b".into())),
            (0, None, Some("1|x\n2|\"y|z\"".into())),
            (0, None, Some("oops|w".into())),
            (0, None, Some("3|".into())),
        ],
    );
    // A row the table's own constraints refuse (varchar(3)) is a bad record
    // too, not a reason to lose the rows around it.
    produce(
        &p,
        "vc",
        &[
            (0, None, Some(r#"{"a": 1, "s": "abc"}"#.into())),
            (0, None, Some(r#"{"a": 2, "s": "abcd"}"#.into())),
            (0, None, Some(r#"{"a": 3, "s": "x"}"#.into())),
        ],
    );
    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    let b = broker.bootstrap();
    client
        .batch_execute(&format!(
            "CREATE TABLE vc (a int, s varchar(3)) WITH (connector = 'kafka', topic = 'vc',
               properties.bootstrap.server = '{b}') FORMAT PLAIN ENCODE JSON;
             CREATE TABLE dl (a int) WITH (connector = 'kafka', topic = 'dl', properties.bootstrap.server = '{b}',
               source.error.policy = 'dead_letter') FORMAT PLAIN ENCODE JSON;
             CREATE TABLE st (a int) WITH (connector = 'kafka', topic = 'st', properties.bootstrap.server = '{b}',
               source.error.policy = 'stop') FORMAT PLAIN ENCODE JSON;
             CREATE TABLE ok (a int) WITH (connector = 'kafka', topic = 'ok', properties.bootstrap.server = '{b}')
               FORMAT PLAIN ENCODE JSON;
             CREATE TABLE csv (a int, b varchar) WITH (connector = 'kafka', topic = 'csv', properties.bootstrap.server = '{b}')
               FORMAT PLAIN ENCODE CSV (delimiter = '|');
             FLUSH;"
        ))
        .await
        .unwrap();
    // dead_letter: the good rows in, the bad ones kept with their offsets.
    assert_eq!(scalar(&client, "SELECT count(*) FROM dl").await, "16");
    assert_eq!(
        rows(&client, "SELECT source, split, record_offset, convert_from(key, 'UTF8'), convert_from(payload, 'UTF8'), error LIKE '%column \"a\"%' FROM freshet_source_errors ORDER BY record_offset").await,
        [3i64, 8, 13, 18]
            .iter()
            .map(|i| vec![
                Some("dl".into()),
                Some("0".into()),
                Some(i.to_string()),
                Some(format!("k{i}")),
                Some(format!("{{\"a\": \"bad{i}\"}}")),
                Some("t".into())
            ])
            .collect::<Vec<_>>()
    );
    // stop: the source stops before its first bad record, and says why;
    // the others go on.
    assert_eq!(scalar(&client, "SELECT count(*) FROM ok").await, "20");
    let st = rows(&client, "SELECT running, committed_offset <= 3, last_error FROM freshet_source_splits WHERE source = 'st'").await;
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0][0].as_deref(), Some("f"), "{st:?}");
    assert_eq!(st[0][1].as_deref(), Some("t"), "{st:?}");
    assert!(
        st[0][2].as_deref().unwrap_or("").contains("offset 3"),
        "{st:?}"
    );
    assert!(
        scalar(&client, "SELECT count(*) FROM st")
            .await
            .parse::<i64>()
            .unwrap()
            <= 3
    );
    // skip (the default): counted.
    assert_eq!(
        rows(&client, "SELECT running, parse_errors, records_in, lag_records FROM freshet_source_splits WHERE source = 'csv'").await,
        vec![vec![Some("t".into()), Some("1".into()), Some("4".into()), Some("0".into())]]
    );
    assert_eq!(
        rows(&client, "SELECT a, b FROM csv ORDER BY a").await,
        vec![
            vec![Some("1".into()), Some("x".into())],
            vec![Some("2".into()), Some("y|z".into())],
            vec![Some("3".into()), None],
        ]
    );
    assert_eq!(
        rows(&client, "SELECT a FROM vc ORDER BY a").await,
        vec![vec![Some("1".into())], vec![Some("3".into())]]
    );
    let vc = rows(
        &client,
        "SELECT parse_errors, last_error FROM freshet_source_splits WHERE source = 'vc'",
    )
    .await;
    assert_eq!(vc[0][0].as_deref(), Some("1"), "{vc:?}");
    assert!(
        vc[0][1].as_deref().unwrap_or("").contains("value too long"),
        "{vc:?}"
    );
    // freshet_views lists the views with their epoch.
    client
        .batch_execute("CREATE MATERIALIZED VIEW okv AS SELECT sum(a) AS s FROM ok")
        .await
        .unwrap();
    assert_eq!(
        rows(
            &client,
            "SELECT name, epoch > 0, committed_at <= now() FROM freshet_views"
        )
        .await,
        vec![vec![Some("okv".into()), Some("t".into()), Some("t".into())]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kafka_record_counts_once_across_kills() {
    let mut rng = test_rng("kafka_exactly_once");
    const N: i64 = 30_000;
    let broker = Broker::start();
    create_topic(&broker, "ev", 3).await;
    // A producer that keeps writing while the server is killed.
    let bootstrap = broker.bootstrap();
    let writer = std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
            let records: Vec<_> = chunk
                .iter()
                .map(|i| {
                    (
                        (i % 3) as i32,
                        None,
                        Some(format!(
                            r#"{{"id": {i}, "k": {}, "v": {}}}"#,
                            i % 100,
                            i % 7
                        )),
                    )
                })
                .collect();
            produce(&p, "ev", &records);
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    let mut server = Server::start(FRESHET_BIN);
    let mut client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE ev (id bigint, k int, v int)
               WITH (connector = 'kafka', topic = 'ev', properties.bootstrap.server = '{b}')
               FORMAT PLAIN ENCODE JSON;
             CREATE TABLE evt (id bigint PRIMARY KEY, k int, v int)
               WITH (connector = 'kafka', topic = 'ev', properties.bootstrap.server = '{b}')
               FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW ev_all AS SELECT * FROM ev;
             CREATE MATERIALIZED VIEW by_k AS SELECT k, count(*) AS n, sum(id) AS s FROM ev GROUP BY k;
             CREATE MATERIALIZED VIEW evt_v AS SELECT v, count(*) AS n FROM evt GROUP BY v;",
            b = broker.bootstrap()
        ))
        .await
        .unwrap();
    let checks = [
        (
            "by_k",
            "SELECT k, count(*) AS n, sum(id) AS s FROM ev_all GROUP BY k",
        ),
        ("evt_v", "SELECT v, count(*) AS n FROM evt GROUP BY v"),
    ];
    let late = (
        "late",
        "SELECT v, sum(id) AS s FROM ev GROUP BY v",
        "SELECT v, sum(id) AS s FROM ev_all GROUP BY v",
    );
    let mut late_exists = false;
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(rng.range(200, 1200) as u64)).await;
        let during = (round == 1).then(|| {
            (
                format!("CREATE MATERIALIZED VIEW {} AS {}", late.0, late.1),
                200,
            )
        });
        drop(client);
        client = kill_and_restart(&mut server, during, &mut rng).await;
        let when = format!("after kill {}", round + 1);
        let n: i64 = scalar(&client, "SELECT count(*) FROM ev_all")
            .await
            .parse()
            .unwrap();
        eprintln!("kafka_exactly_once: {when}: {n} records in");
        for (view, batch) in checks {
            check_view(&client, view, batch, &when).await;
        }
        late_exists = scalar(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'late'",
        )
        .await
            == "1";
        if late_exists {
            check_view(&client, late.0, late.2, &when).await;
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
    writer.join().unwrap();
    client.batch_execute("FLUSH").await.unwrap();
    // Every record exactly once, in the source's views and the table.
    assert_eq!(
        rows(
            &client,
            "SELECT count(*), count(DISTINCT id), sum(id) FROM ev_all"
        )
        .await,
        vec![vec![
            Some(N.to_string()),
            Some(N.to_string()),
            Some((N * (N - 1) / 2).to_string())
        ]]
    );
    assert_eq!(
        scalar(&client, "SELECT count(*) FROM evt").await,
        N.to_string()
    );
    let want: Vec<Vec<Option<String>>> = (0..100)
        .map(|k| {
            let ids: Vec<i64> = (0..N).filter(|i| i % 100 == k).collect();
            vec![
                Some(k.to_string()),
                Some(ids.len().to_string()),
                Some(ids.iter().sum::<i64>().to_string()),
            ]
        })
        .collect();
    assert_eq!(
        rows(&client, "SELECT k, n, s FROM by_k ORDER BY k").await,
        want
    );
    for (view, batch) in checks {
        check_view(&client, view, batch, "at the end").await;
    }
    check_view(&client, late.0, late.2, "at the end").await;
    assert_eq!(
        scalar(
            &client,
            "SELECT sum(lag_records) FROM freshet_source_splits WHERE source = 'ev'"
        )
        .await,
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_modes_and_later_views_start_where_the_source_started() {
    let broker = Broker::start();
    create_topic(&broker, "sm", 1).await;
    let p = producer(&broker);
    let rec = |i: i64| (0, None, Some(format!("{{\"i\": {i}}}")));
    produce(&p, "sm", &(0..10).map(rec).collect::<Vec<_>>());
    let server = Server::start(FRESHET_BIN);
    let client = server.connect().await;
    let b = broker.bootstrap();
    client
        .batch_execute(&format!(
            "CREATE SOURCE latest (i int) WITH (connector = 'kafka', topic = 'sm',
               properties.bootstrap.server = '{b}', scan.startup.mode = 'latest') FORMAT PLAIN ENCODE JSON;
             CREATE SOURCE past (i int) WITH (connector = 'kafka', topic = 'sm',
               properties.bootstrap.server = '{b}', scan.startup.timestamp.millis = '0') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW l1 AS SELECT count(*) AS n, sum(i) AS s FROM latest;
             CREATE MATERIALIZED VIEW l_all AS SELECT i FROM latest;
             CREATE MATERIALIZED VIEW p1 AS SELECT count(*) AS n FROM past;
             FLUSH;"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows(&client, "SELECT n FROM l1").await,
        vec![vec![Some("0".into())]]
    );
    assert_eq!(
        rows(&client, "SELECT n FROM p1").await,
        vec![vec![Some("10".into())]]
    );
    produce(&p, "sm", &(10..15).map(rec).collect::<Vec<_>>());
    client.batch_execute("FLUSH").await.unwrap();
    assert_eq!(
        rows(&client, "SELECT count(*), count(DISTINCT i) FROM l_all").await,
        vec![vec![Some("5".into()), Some("5".into())]]
    );
    assert_eq!(
        rows(&client, "SELECT n, s FROM l1").await,
        vec![vec![Some("5".into()), Some("60".into())]]
    );
    assert_eq!(
        rows(&client, "SELECT n FROM p1").await,
        vec![vec![Some("15".into())]]
    );
    // A second view over the running 'latest' source sees what the first
    // one saw: from where the source started, not from the topic's start.
    client
        .batch_execute(
            "CREATE MATERIALIZED VIEW l2 AS SELECT count(*) AS n, min(i) AS m FROM latest; FLUSH",
        )
        .await
        .unwrap();
    assert_eq!(
        rows(&client, "SELECT n, m FROM l2").await,
        vec![vec![Some("5".into()), Some("10".into())]]
    );
}
