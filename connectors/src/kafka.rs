//! `connector = 'kafka'`: a topic's partitions as splits, read with
//! librdkafka (`read_committed`, so aborted transactions are never seen).
//! Options (RisingWave's): `topic`, `properties.bootstrap.server`,
//! `scan.startup.mode` (`earliest`, the default, or `latest`),
//! `scan.startup.timestamp.millis`, and any other `properties.<name>`
//! passed to librdkafka as `<name>`. The records go through the source's
//! format; `INCLUDE key | partition | offset | timestamp` columns come from
//! the records themselves.
//!
//! A split's offset is the Kafka offset of the next record to read; the
//! reader positions the consumer there itself (no consumer group offsets
//! are used or committed: Freshet's own commit holds them).

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, RecordBatch, RecordBatchOptions, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{invalid, ConnectorError};
use crate::format::{Decoder, Format, RawRecord};
use crate::registry::SourceContext;
use crate::source::{BadRecord, Chunk};
use crate::{Options, Result, Source, SplitReader};

/// How long CREATE waits for the broker to answer.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read waits for records.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum Startup {
    Earliest,
    Latest,
    Timestamp(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Include {
    Key,
    Partition,
    Offset,
    Timestamp,
}

pub struct Kafka {
    topic: String,
    config: ClientConfig,
    bootstrap: String,
    partitions: Vec<i32>,
    startup: Startup,
    format: Arc<dyn Format>,
    schema: SchemaRef,
    includes: Vec<Include>,
}

impl Kafka {
    pub fn new(options: &mut Options, ctx: &SourceContext) -> Result<Kafka> {
        let topic = options.require("topic")?;
        let bootstrap = match options.take("properties.bootstrap.server") {
            Some(b) => b,
            None => options
                .take("properties.bootstrap.servers")
                .ok_or_else(|| invalid("option \"properties.bootstrap.server\" is required"))?,
        };
        let startup = match options.take("scan.startup.timestamp.millis") {
            Some(ms) => Startup::Timestamp(crate::options::parse_value(
                "scan.startup.timestamp.millis",
                &ms,
            )?),
            None => match options
                .take("scan.startup.mode")
                .map(|m| m.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("earliest") => Startup::Earliest,
                Some("latest") => Startup::Latest,
                Some(other) => {
                    return Err(invalid(format!(
                        "invalid value \"{other}\" for option \"scan.startup.mode\" (earliest or latest)"
                    )))
                }
            },
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "freshet")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            // A broker that holds a fetch until this passes even when
            // records arrive (tansu does) adds it to every record's
            // latency; Kafka and Redpanda answer as soon as there is data.
            .set("fetch.wait.max.ms", "5")
            .set("socket.nagle.disable", "true")
            .set("socket.timeout.ms", "10000")
            .set("log_level", "3");
        for (k, v) in options.take_prefixed("properties.") {
            config.set(k, v);
        }
        // The columns the format reads: all but the INCLUDE ones.
        let n_include = ctx.include.len();
        let n = ctx.schema.fields().len();
        if n_include > n {
            return Err(invalid("more INCLUDE columns than columns"));
        }
        let includes = ctx
            .include
            .iter()
            .map(|(kind, _)| match kind.as_str() {
                "key" => Ok(Include::Key),
                "partition" => Ok(Include::Partition),
                "offset" => Ok(Include::Offset),
                "timestamp" => Ok(Include::Timestamp),
                other => Err(ConnectorError::NotSupported(format!("INCLUDE {other}"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let format_schema = Arc::new(Schema::new(ctx.schema.fields()[..n - n_include].to_vec()));
        let (format, encode, encode_options) = ctx.format.clone().ok_or_else(|| {
            invalid("a Kafka source needs FORMAT … ENCODE … (e.g. FORMAT PLAIN ENCODE JSON)")
        })?;
        let key: Vec<usize> = ctx
            .key
            .iter()
            .copied()
            .filter(|&k| k < n - n_include)
            .collect();
        let format = crate::format::open(&format, &encode, encode_options, format_schema, &key)?;
        // The broker must answer, and know the topic.
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| invalid(format!("Kafka client settings: {e}")))?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
            .map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "cannot reach the Kafka broker at {bootstrap}: {e}"
                ))
            })?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(invalid(format!(
                "Kafka topic \"{topic}\" does not exist at {bootstrap}"
            )));
        }
        let mut partitions = partitions;
        partitions.sort();
        Ok(Kafka {
            topic,
            config,
            bootstrap,
            partitions,
            startup,
            format,
            schema: ctx.schema.clone(),
            includes,
        })
    }

    fn consumer(&self) -> Result<BaseConsumer> {
        self.config
            .create()
            .map_err(|e| invalid(format!("Kafka client settings: {e}")))
    }
}

impl Source for Kafka {
    fn splits(&self) -> Vec<String> {
        self.partitions.iter().map(|p| p.to_string()).collect()
    }

    fn reader(
        &self,
        split: usize,
        offset: Option<u64>,
        paced: bool,
    ) -> Result<Box<dyn SplitReader>> {
        let partition = self.partitions[split];
        let start = match offset {
            Some(o) => o,
            None => self.start_offset(split)?,
        };
        let consumer = self.consumer()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(start as i64))
            .map_err(|e| ConnectorError::Read(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| {
            ConnectorError::Read(format!("assigning {}[{partition}]: {e}", self.topic))
        })?;
        let high = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        // A paced reader follows the partition and reports its lag; a
        // backfill's reader (unpaced, to an end it knows) needs no watcher.
        let watcher = if paced {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            watch_high_watermark(
                self.consumer()?,
                self.topic.clone(),
                partition,
                high.clone(),
                stop.clone(),
            );
            Some(WatcherStop(stop))
        } else {
            None
        };
        Ok(Box::new(KafkaReader {
            consumer,
            topic: self.topic.clone(),
            partition,
            offset: start,
            decoder: self.format.decoder(),
            schema: self.schema.clone(),
            includes: self.includes.clone(),
            end: None,
            high,
            _watcher: watcher,
        }))
    }

    fn start_offset(&self, split: usize) -> Result<u64> {
        let partition = self.partitions[split];
        let consumer = self.consumer()?;
        let unreachable = |e: rdkafka::error::KafkaError| {
            ConnectorError::Unreachable(format!(
                "cannot reach the Kafka broker at {}: {e}",
                self.bootstrap
            ))
        };
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT)
            .map_err(unreachable)?;
        Ok(match self.startup {
            Startup::Earliest => low.max(0) as u64,
            Startup::Latest => high.max(0) as u64,
            Startup::Timestamp(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, partition, Offset::Offset(ms))
                    .map_err(|e| ConnectorError::Read(e.to_string()))?;
                let found = consumer
                    .offsets_for_times(tpl, METADATA_TIMEOUT)
                    .map_err(unreachable)?;
                match found.elements().first().map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(0) as u64,
                    // No record at or after the time: from the end.
                    _ => high.max(0) as u64,
                }
            }
        })
    }

    fn high_watermark(&self, split: usize) -> Result<Option<u64>> {
        let consumer = self.consumer()?;
        let (_, high) = consumer
            .fetch_watermarks(&self.topic, self.partitions[split], METADATA_TIMEOUT)
            .map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "cannot reach the Kafka broker at {}: {e}",
                    self.bootstrap
                ))
            })?;
        Ok(Some(high.max(0) as u64))
    }
}

struct KafkaReader {
    consumer: BaseConsumer,
    topic: String,
    partition: i32,
    offset: u64,
    decoder: Box<dyn Decoder>,
    schema: SchemaRef,
    includes: Vec<Include>,
    /// See [`SplitReader::stop_at`].
    end: Option<u64>,
    /// The high watermark, as a watcher thread last asked the broker
    /// (`u64::MAX`: not yet known). Asking in the read path would hold up
    /// the records behind a round trip to the broker.
    high: Arc<std::sync::atomic::AtomicU64>,
    /// Ends the watcher when the reader is dropped.
    _watcher: Option<WatcherStop>,
}

/// Stops a watermark watcher thread when dropped.
struct WatcherStop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for WatcherStop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Asks the broker for a partition's high watermark every second, on its
/// own thread and client, into `high`, until `stop`.
fn watch_high_watermark(
    consumer: BaseConsumer,
    topic: String,
    partition: i32,
    high: Arc<std::sync::atomic::AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let _ = std::thread::Builder::new()
        .name(format!("kafka-hw-{topic}-{partition}"))
        .spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if let Ok((_, h)) = consumer.fetch_watermarks(&topic, partition, METADATA_TIMEOUT) {
                    high.store(h.max(0) as u64, Ordering::Release);
                }
                for _ in 0..10 {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
}

/// One record, owned (a borrowed message cannot outlive the next poll).
struct Owned {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    offset: u64,
    timestamp_ms: Option<i64>,
}

impl SplitReader for KafkaReader {
    fn next(&mut self, max: usize) -> Result<Option<Chunk>> {
        let mut records: Vec<Owned> = Vec::new();
        let mut wait = POLL;
        let mut expect = self.offset;
        while records.len() < max {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => {
                    // The broker went away, a fetch failed: librdkafka
                    // retries; the split waits.
                    tracing::warn!(topic = %self.topic, partition = self.partition, error = %e, "kafka read");
                    break;
                }
                Some(Ok(m)) => {
                    // Never a record before the next expected one: a broker may
                    // hand a batch again, or one starting before the offset
                    // asked for (the test broker does both).
                    if m.partition() != self.partition || m.offset() < expect as i64 {
                        continue;
                    }
                    if self.end.is_some_and(|e| m.offset() as u64 >= e) {
                        break;
                    }
                    expect = m.offset() as u64 + 1;
                    records.push(Owned {
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        offset: m.offset() as u64,
                        timestamp_ms: m.timestamp().to_millis(),
                    });
                }
            }
            wait = Duration::ZERO;
        }
        let mut next = records.last().map_or(self.offset, |r| r.offset + 1);
        if records.is_empty() {
            // Past transaction markers and compacted gaps: the consumer's
            // position moves without records.
            if let Ok(p) = self.consumer.position() {
                if let Some(Offset::Offset(o)) = p
                    .find_partition(&self.topic, self.partition)
                    .map(|e| e.offset())
                {
                    next = next.max(o.max(0) as u64);
                    if let Some(e) = self.end {
                        next = next.min(e.max(self.offset));
                    }
                }
            }
        }
        let raw: Vec<RawRecord<'_>> = records
            .iter()
            .map(|r| RawRecord {
                key: r.key.as_deref(),
                payload: r.payload.as_deref(),
            })
            .collect();
        let decoded = self.decoder.decode(&raw)?;
        let n = decoded.rows.num_rows();
        let mut columns: Vec<ArrayRef> = decoded.rows.columns().to_vec();
        for inc in &self.includes {
            let of = |i: usize| &records[decoded.record_of_row[i]];
            columns.push(match inc {
                Include::Key => Arc::new(
                    (0..n)
                        .map(|i| of(i).key.as_deref())
                        .collect::<BinaryArray>(),
                ),
                Include::Partition => Arc::new(
                    (0..n)
                        .map(|_| Some(self.partition.to_string()))
                        .collect::<StringArray>(),
                ),
                Include::Offset => Arc::new(
                    (0..n)
                        .map(|i| Some(of(i).offset.to_string()))
                        .collect::<StringArray>(),
                ),
                Include::Timestamp => Arc::new(
                    (0..n)
                        .map(|i| of(i).timestamp_ms.map(|ms| ms * 1000))
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("+00:00"),
                ),
            });
        }
        let rows = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let errors = decoded
            .errors
            .into_iter()
            .map(|(i, error)| BadRecord {
                offset: records[i].offset,
                error,
                key: records[i].key.clone(),
                payload: records[i].payload.clone(),
                timestamp_ms: records[i].timestamp_ms,
            })
            .collect();
        let bytes = records
            .iter()
            .map(|r| r.payload.as_ref().map_or(0, Vec::len) + r.key.as_ref().map_or(0, Vec::len))
            .sum::<usize>() as u64;
        self.offset = next;
        Ok(Some(Chunk {
            rows,
            deletes: decoded.deletes,
            offset: next,
            errors,
            records: records.len() as u64,
            bytes,
        }))
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    fn stop_at(&mut self, end: u64) {
        self.end = Some(end);
    }

    fn high_watermark(&self) -> Option<u64> {
        match self.high.load(std::sync::atomic::Ordering::Acquire) {
            u64::MAX => None,
            h => Some(h.max(self.offset)),
        }
    }

    fn available_end(&self) -> Option<u64> {
        None
    }
}
