//! Streaming-source benchmarks (issue 18), Freshet against a baseline in the
//! same run:
//!
//! - `kafka-ingest`: JSON records pre-loaded into a real broker (`tansu`),
//!   read by a fresh source through a filter view, then through a group-by
//!   view: records/s, and records per second of the server's CPU (its
//!   user + system time from /proc, so the broker's and this client's
//!   CPU do not count; the broker's is reported beside it). Baseline: the
//!   same records consumed raw by librdkafka in this process.
//! - `kafka-latency`: records produced at a fixed rate into one partition;
//!   a client reads a `count(*)` view every 2 ms and notes when each record
//!   became visible: p50/p99/max of produce → visible. Baseline: the same
//!   producer into another topic, read by a librdkafka consumer with the
//!   sources' settings in this process (the broker's own latency).
//! - `nexmark-count`: the nexmark generator (Bid events, unpaced) into a
//!   `count(*)` view: events/s and events per server CPU second. Baseline:
//!   the same generator in this process, producing the rows and nothing
//!   else.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use freshet_sqllogictest::broker::Broker;
use freshet_sqllogictest::harness::Server;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesized command name: state is field 3, utime
    // field 14, stime field 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    };
    Ok((ticks(11)? + ticks(12)?) / hz)
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

fn producer(bootstrap: &str, linger_ms: u32) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

fn send(p: &BaseProducer, topic: &str, partition: i32, payload: &str) -> Result<()> {
    let mut record = BaseRecord::<(), str>::to(topic)
        .partition(partition)
        .payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                p.poll(Duration::from_millis(5));
                record = back;
            }
            Err((e, _)) => bail!("producing: {e}"),
        }
    }
}

/// One ingest record: a click stream.
fn event(i: u64) -> String {
    const KINDS: [&str; 4] = ["view", "click", "cart", "buy"];
    format!(
        r#"{{"id": {i}, "user_id": {}, "kind": "{}", "amount": {}.{:02}, "ts": "2024-01-01T00:00:{:02}Z"}}"#,
        (i * 7919) % 10_000,
        KINDS[(i % 4) as usize],
        i % 500,
        i % 100,
        i % 60
    )
}

pub struct IngestArgs {
    pub records: u64,
    pub partitions: i32,
}

/// `kafka-ingest`.
pub async fn kafka_ingest(
    freshet_bin: &Path,
    freshet_args: &[String],
    args: IngestArgs,
) -> Result<bool> {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ev", args.partitions).await?;
    eprintln!(
        "producing {} records into {} partitions ...",
        args.records, args.partitions
    );
    let start = Instant::now();
    {
        let p = producer(&bootstrap, 20)?;
        for i in 0..args.records {
            send(&p, "ev", (i % args.partitions as u64) as i32, &event(i))?;
            if i % 1000 == 0 {
                p.poll(Duration::ZERO);
            }
        }
        p.flush(Duration::from_secs(300))?;
    }
    let produce = start.elapsed();
    println!(
        "produce: {} records in {:.1} s ({:.0} records/s; the producer and broker, for reference)",
        args.records,
        produce.as_secs_f64(),
        args.records as f64 / produce.as_secs_f64()
    );

    // Baseline: librdkafka alone, consuming every record raw.
    let broker_cpu0 = cpu_seconds(broker.pid())?;
    let start = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..args.partitions {
        tpl.add_partition_offset("ev", p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut n = 0u64;
    let mut bytes = 0usize;
    while n < args.records {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => bail!("raw consumer: {e}"),
            None => bail!("raw consumer: no records for 10 s after {n}"),
        }
    }
    let raw = start.elapsed();
    let raw_broker_cpu = cpu_seconds(broker.pid())? - broker_cpu0;
    drop(consumer);
    println!(
        "baseline (librdkafka consuming raw, in this process): {:.0} records/s, {:.1} MB/s; broker CPU {:.2} s",
        n as f64 / raw.as_secs_f64(),
        bytes as f64 / raw.as_secs_f64() / 1e6,
        raw_broker_cpu
    );

    let views = [
        (
            "filter",
            "SELECT id, user_id, amount FROM ev WHERE kind = 'buy'",
            args.records.div_ceil(4),
        ),
        (
            "group_by",
            "SELECT user_id, count(*) AS n, sum(amount) AS total FROM ev GROUP BY user_id",
            0,
        ),
    ];
    let mut ok = true;
    for (name, query, expect) in views {
        let args_ref: Vec<&str> = freshet_args.iter().map(String::as_str).collect();
        let server = Server::start_with_args(freshet_bin, &args_ref);
        let client = server.connect().await;
        client
            .batch_execute(&format!(
                "CREATE SOURCE ev (id bigint, user_id int, kind varchar, amount numeric(10,2), ts timestamptz)
                   WITH (connector = 'kafka', topic = 'ev', properties.bootstrap.server = '{bootstrap}')
                   FORMAT PLAIN ENCODE JSON"
            ))
            .await?;
        let cpu0 = cpu_seconds(server.pid())?;
        let broker0 = cpu_seconds(broker.pid())?;
        let start = Instant::now();
        client
            .batch_execute(&format!("CREATE MATERIALIZED VIEW v AS {query}; FLUSH"))
            .await?;
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(server.pid())? - cpu0;
        let broker_cpu = cpu_seconds(broker.pid())? - broker0;
        let rows: i64 = client
            .query_one("SELECT count(*) FROM v", &[])
            .await?
            .get(0);
        let records: i64 = client
            .query_one(
                "SELECT sum(records_in)::bigint FROM freshet_source_splits WHERE source = 'ev'",
                &[],
            )
            .await?
            .get(0);
        let right = records as u64 == args.records && (expect == 0 || rows as u64 == expect);
        ok &= right;
        println!(
            "freshet {name:<8}: {:>9.0} records/s wall, {:>9.0} records/s per server core \
             (server CPU {cpu:.2} s over {wall:.2} s = {:.2} cores; broker CPU {broker_cpu:.2} s); \
             {records} records, view {rows} rows{}",
            args.records as f64 / wall,
            args.records as f64 / cpu.max(1e-9),
            cpu / wall,
            if right { "" } else { " WRONG" }
        );
    }
    Ok(ok)
}

pub struct LatencyArgs {
    pub rate: u64,
    pub seconds: u64,
}

/// Produces `total` records at `rate`/s into `topic` (partition 0) on a
/// thread; returns when each was handed to the producer.
fn paced_producer(
    bootstrap: String,
    topic: &'static str,
    rate: u64,
    total: u64,
) -> (
    std::thread::JoinHandle<Result<()>>,
    Arc<std::sync::Mutex<Vec<Instant>>>,
) {
    let sent: Arc<std::sync::Mutex<Vec<Instant>>> = Default::default();
    let sent2 = sent.clone();
    let handle = std::thread::spawn(move || -> Result<()> {
        let p = producer(&bootstrap, 0)?;
        let start = Instant::now();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            while Instant::now() < due {
                p.poll(Duration::from_micros(200));
            }
            sent2
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Instant::now());
            send(&p, topic, 0, &format!(r#"{{"seq": {i}}}"#))?;
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(30))?;
        Ok(())
    });
    (handle, sent)
}

/// p50/p90/p99/max in ms of `visible - sent`, the first `skip` left out.
fn latency_line(sent: &[Instant], visible: &[Instant], skip: usize) -> String {
    let mut lat: Vec<Duration> = sent
        .iter()
        .zip(visible)
        .skip(skip)
        .map(|(s, v)| v.saturating_duration_since(*s))
        .collect();
    lat.sort();
    if lat.is_empty() {
        return "no records".into();
    }
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    format!(
        "{} records: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    )
}

/// How often `kafka-latency` reads the view.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// Each second's median latency, for the report: the test broker's own
/// latency grows as its in-memory topic does, and this shows when.
fn per_second(sent: &[Instant], visible: &[Instant], rate: usize) -> String {
    sent.chunks(rate)
        .enumerate()
        .map(|(w, chunk)| {
            let base = w * rate;
            let mut l: Vec<f64> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    visible
                        .get(base + i)
                        .map(|v| v.saturating_duration_since(*s))
                })
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            l.sort_by(|a, b| a.total_cmp(b));
            l.get(l.len() / 2).map_or("-".into(), |m| format!("{m:.0}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `kafka-latency`.
pub async fn kafka_latency(
    freshet_bin: &Path,
    freshet_args: &[String],
    args: LatencyArgs,
) -> Result<bool> {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "lat", 1).await?;
    create_topic(&bootstrap, "raw", 1).await?;
    // Baseline: the broker and librdkafka alone — a consumer with the
    // settings Freshet's sources use, in this process.
    {
        let total = args.rate * args.seconds;
        let (writer, sent) = paced_producer(bootstrap.clone(), "raw", args.rate, total);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "bench")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "5")
            .set("socket.nagle.disable", "true")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("raw", 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let mut visible = Vec::with_capacity(total as usize);
        let deadline = Instant::now() + Duration::from_secs(args.seconds + 60);
        while (visible.len() as u64) < total && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m?;
                visible.push(Instant::now());
            }
        }
        writer
            .join()
            .map_err(|_| anyhow!("producer thread panicked"))??;
        let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        println!(
            "baseline (produce -> a librdkafka consumer in this process, {} records/s): {}\n  \
             median ms by second: {}",
            args.rate,
            latency_line(&sent, &visible, args.rate as usize),
            per_second(&sent, &visible, args.rate as usize)
        );
    }
    let args_ref: Vec<&str> = freshet_args.iter().map(String::as_str).collect();
    let server = Server::start_with_args(freshet_bin, &args_ref);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE lat (seq bigint) WITH (connector = 'kafka', topic = 'lat',
               properties.bootstrap.server = '{bootstrap}') FORMAT PLAIN ENCODE JSON;
             CREATE MATERIALIZED VIEW lat_n AS SELECT count(*) AS n FROM lat;"
        ))
        .await?;
    let total = args.rate * args.seconds;
    let (writer, sent) = paced_producer(bootstrap.clone(), "lat", args.rate, total);
    // Poll the view; the first time it counts past record i, i is visible.
    let stmt = client.prepare("SELECT n FROM lat_n").await?;
    let mut visible: Vec<Instant> = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(args.seconds + 60);
    while (visible.len() as u64) < total && Instant::now() < deadline {
        let n: i64 = client
            .query_opt(&stmt, &[])
            .await?
            .map(|r| r.get(0))
            .unwrap_or(0);
        let now = Instant::now();
        while (visible.len() as i64) < n {
            visible.push(now);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    writer
        .join()
        .map_err(|_| anyhow!("producer thread panicked"))??;
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if (visible.len() as u64) < total {
        println!(
            "freshet: only {} of {total} records visible in time: FAILED",
            visible.len()
        );
        return Ok(false);
    }
    // The first second is warm-up (connections, the first fetches).
    println!(
        "freshet: produce -> visible in a count(*) view at {} records/s over {} s (first second skipped, \
         the view read every {} ms): {}\n  median ms by second: {}",
        args.rate,
        args.seconds,
        POLL_EVERY.as_millis(),
        latency_line(&sent, &visible, args.rate as usize),
        per_second(&sent, &visible, args.rate as usize)
    );
    Ok(true)
}

pub struct NexmarkArgs {
    pub events: u64,
}

/// `nexmark-count`.
pub async fn nexmark_count(
    freshet_bin: &Path,
    freshet_args: &[String],
    args: NexmarkArgs,
) -> Result<bool> {
    let options = format!(
        "connector = 'nexmark', nexmark.table.type = 'Bid', nexmark.event.num = '{}', \
         nexmark.min.event.gap.in.ns = '0', nexmark.base.time = '1700000000000'",
        args.events
    );
    // Baseline: the generator alone, in this process.
    let bids = args.events / 50 * 46;
    let start = Instant::now();
    let generated = {
        let schema = freshet_connectors::nexmark::full_schema(nexmark::event::EventType::Bid);
        let mut opts: BTreeMap<String, String> = BTreeMap::new();
        opts.insert("nexmark.table.type".into(), "Bid".into());
        opts.insert("nexmark.event.num".into(), args.events.to_string());
        opts.insert("nexmark.min.event.gap.in.ns".into(), "0".into());
        let ctx = freshet_connectors::registry::SourceContext {
            schema,
            created_ms: 1_700_000_000_000,
            format: None,
            include: Vec::new(),
            key: Vec::new(),
        };
        let source = freshet_connectors::registry::open(
            "nexmark",
            freshet_connectors::Options::new(opts),
            &ctx,
        )?;
        let mut reader = source.reader(0, None, false)?;
        let mut n = 0u64;
        while let Some(c) = reader.next(4096)? {
            n += c.rows.num_rows() as u64;
        }
        n
    };
    let gen = start.elapsed().as_secs_f64();
    println!(
        "baseline (the generator alone, in this process): {generated} bids of {} events in {gen:.2} s = {:.0} events/s",
        args.events,
        args.events as f64 / gen
    );
    let args_ref: Vec<&str> = freshet_args.iter().map(String::as_str).collect();
    let server = Server::start_with_args(freshet_bin, &args_ref);
    let client = server.connect().await;
    client
        .batch_execute(&format!(
            "CREATE SOURCE bid (auction bigint, bidder bigint, price bigint, channel varchar, url varchar, \
               date_time timestamp, extra varchar) WITH ({options})"
        ))
        .await?;
    let cpu0 = cpu_seconds(server.pid())?;
    let start = Instant::now();
    client
        .batch_execute("CREATE MATERIALIZED VIEW c AS SELECT count(*) AS n FROM bid; FLUSH")
        .await?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.pid())? - cpu0;
    let n: i64 = client.query_one("SELECT n FROM c", &[]).await?.get(0);
    let right = n as u64 == bids && generated == bids;
    println!(
        "freshet: {} events ({n} bids) into count(*) in {wall:.2} s = {:.0} events/s wall, \
         {:.0} events/s per server core (server CPU {cpu:.2} s){}",
        args.events,
        args.events as f64 / wall,
        args.events as f64 / cpu.max(1e-9),
        if right { "" } else { " WRONG" }
    );
    Ok(right)
}
