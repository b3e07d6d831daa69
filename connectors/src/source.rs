//! The reading side of a connector: a [`Source`] is split; each split is
//! read by a [`SplitReader`] positioned at an offset, yielding [`Chunk`]s
//! of rows and the offset after them. An offset counts the split's records
//! (a generator's rows, a Kafka partition's next offset), so re-opening a
//! split at the offset committed with the view state continues exactly
//! after the last record that state counts.

use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;

use crate::Result;

/// Rows read from one split, and the split's offset after them.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub rows: RecordBatch,
    /// Per row, whether it deletes its key (upsert tombstones, Debezium
    /// deletes); `None` when every row inserts.
    pub deletes: Option<Vec<bool>>,
    pub offset: u64,
    /// Records that could not be read, with their errors.
    pub errors: Vec<BadRecord>,
    /// Records and bytes read (good and bad).
    pub records: u64,
    pub bytes: u64,
}

impl Chunk {
    /// Rows that all insert, from records that were all good.
    pub fn inserts(rows: RecordBatch, offset: u64) -> Chunk {
        let records = rows.num_rows() as u64;
        Chunk {
            rows,
            deletes: None,
            offset,
            errors: Vec::new(),
            records,
            bytes: 0,
        }
    }
}

/// A record a format could not read.
#[derive(Debug, Clone)]
pub struct BadRecord {
    pub offset: u64,
    pub error: String,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's time (ms since the epoch), when the transport has one.
    pub timestamp_ms: Option<i64>,
}

/// An opened connector.
pub trait Source: Send + Sync {
    /// The splits' names (`"0"`, `"1"`, … for generators, partitions for
    /// Kafka), in order: a split is known by its position here.
    fn splits(&self) -> Vec<String>;

    /// A reader of split `split` from `offset` (`None`: where the connector
    /// starts, e.g. `scan.startup.mode`). `paced`: whether the connector's
    /// rate limit applies (a backfill re-reads already-consumed records as
    /// fast as it can).
    fn reader(
        &self,
        split: usize,
        offset: Option<u64>,
        paced: bool,
    ) -> Result<Box<dyn SplitReader>>;

    /// Where split `split` starts when nothing was read of it yet (the
    /// startup mode resolved to an offset), so a later backfill reads
    /// from the same place.
    fn start_offset(&self, _split: usize) -> Result<u64> {
        Ok(0)
    }

    /// The offset after the last record the split holds now, when the
    /// transport can tell (Kafka's high watermark): `FLUSH` waits for it.
    fn high_watermark(&self, _split: usize) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// Reads one split.
pub trait SplitReader: Send {
    /// Up to `max` rows from the current offset. Blocks until some are due
    /// (a paced generator), at most about 100 ms; `Ok(Some)` with no rows
    /// when nothing came meanwhile, `Ok(None)` when the split has ended.
    fn next(&mut self, max: usize) -> Result<Option<Chunk>>;

    /// The offset of the next record this reader returns.
    fn offset(&self) -> u64;

    /// Ends the split at `end` for this reader: it returns no record at or
    /// after it (a backfill reads up to the committed offset exactly).
    /// Readers that never read past what `next`'s `max` allows need not
    /// do anything.
    fn stop_at(&mut self, _end: u64) {}

    /// The offset after the split's last record, as last seen (Kafka's
    /// high watermark, a finite generator's end); `None` when unknown.
    fn high_watermark(&self) -> Option<u64> {
        None
    }

    /// Where the split ends when all of it is available right now (an
    /// unpaced, finite generator): `FLUSH` waits for this offset rather
    /// than only for what was read so far.
    fn available_end(&self) -> Option<u64>;
}

/// A rows-per-second limit for one split: how many rows are due now.
#[derive(Debug, Clone)]
pub struct Pace {
    rate: f64,
    start: Instant,
    start_offset: u64,
}

impl Pace {
    /// `rate` rows/s from `offset` on; `None` for no limit.
    pub fn new(rate: Option<f64>, offset: u64) -> Option<Pace> {
        rate.filter(|r| *r > 0.0 && r.is_finite()).map(|rate| Pace {
            rate,
            start: Instant::now(),
            start_offset: offset,
        })
    }

    /// How many rows from `offset` may be read now, waiting (at most about
    /// 100 ms) for the next one when none is due yet.
    pub fn due(&self, offset: u64, max: usize) -> usize {
        let allowed = |now: Instant| {
            let total = (now.duration_since(self.start).as_secs_f64() * self.rate) as u64;
            (self.start_offset + total).saturating_sub(offset)
        };
        let mut n = allowed(Instant::now());
        if n == 0 {
            let next = (offset + 1 - self.start_offset) as f64 / self.rate;
            let wake = self.start + Duration::from_secs_f64(next);
            let wait = wake.saturating_duration_since(Instant::now());
            std::thread::sleep(wait.min(Duration::from_millis(100)));
            n = allowed(Instant::now());
        }
        n.min(max as u64) as usize
    }
}

/// A generator split's position: where it is, where it ends (if it does)
/// and its pace. Both generators read through it.
#[derive(Debug, Clone)]
pub struct GeneratorPosition {
    pub offset: u64,
    pub end: Option<u64>,
    pub pace: Option<Pace>,
}

impl GeneratorPosition {
    /// How many rows to make now, at most `max` (0 while none is due);
    /// `None` once the split has ended.
    pub fn due(&self, max: usize) -> Option<usize> {
        let left = self.end.map_or(u64::MAX, |e| e.saturating_sub(self.offset));
        if left == 0 {
            return None;
        }
        let n = (max as u64).min(left) as usize;
        Some(match &self.pace {
            Some(p) => p.due(self.offset, n),
            None => n,
        })
    }

    /// [`SplitReader::available_end`]: the end, when nothing paces the
    /// split.
    pub fn available_end(&self) -> Option<u64> {
        match self.pace {
            Some(_) => None,
            None => self.end,
        }
    }
}
