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
    pub offset: u64,
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
}

/// Reads one split.
pub trait SplitReader: Send {
    /// Up to `max` rows from the current offset. Blocks until some are due
    /// (a paced generator), at most about 100 ms; `Ok(Some)` with no rows
    /// when nothing came meanwhile, `Ok(None)` when the split has ended.
    fn next(&mut self, max: usize) -> Result<Option<Chunk>>;

    /// The offset of the next record this reader returns.
    fn offset(&self) -> u64;

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
