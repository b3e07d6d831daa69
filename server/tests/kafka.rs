//! Kafka sources against a real broker (`tansu`, started per test on
//! loopback) with real producers: JSON onto columns with bad records
//! counted, upsert and Debezium tables, CSV, error policies, errors at
//! CREATE, and exactly once across `kill -9`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use freshet_sqllogictest::broker::Broker;
use freshet_sqllogictest::rng::Rng;
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
