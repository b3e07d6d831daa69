//! Sources and the scheduler (DESIGN.md, "Sources, the scheduler, and
//! exactly once").
//!
//! A relation with a connector — a `CREATE SOURCE`, or a table created
//! `WITH (connector = …)` — runs while it has a use: a table always (it
//! stores what arrives), a source while some materialized view reads it
//! (a source read by five views is read once). Running, each of its splits
//! has a reader thread that pushes chunks into a bounded channel: when the
//! graph is slow the channels fill and the readers wait (backpressure).
//!
//! The scheduler ([`Engine::run_scheduler`]) takes, every
//! `--step-interval-ms` (at once while there is a backlog), what waits in
//! every channel, up to [`STEP_ROWS`] rows, and runs one step under the
//! writer lock: a source's rows enter the graph as insertions under its
//! name, a table's are written to it (appended, or by key) and reach the
//! views on it as any write does; and every split's new offset is written
//! in the same commit, under `source_offsets/<id>`. A restart re-opens
//! every split at its committed offset, so each record counts exactly
//! once. Records read but not committed are simply read again.
//!
//! A new view over a running source first reads the source again from its
//! start up to the committed offsets (its backfill), then follows it with
//! the others; a source that is not running has nothing committed, and
//! starts from its start when the view is created.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use freshet_connectors::registry::SourceContext;
use freshet_connectors::{Chunk, Options, Source};
use freshet_dataflow::step::StepInput;
use freshet_dataflow::ChangeBatch;
use freshet_storage::{Snapshot, Txn};

use super::{Engine, Writer};
use crate::catalog::{Catalog, RelKind, TableDef};
use crate::{index, PlannerError, Result};

/// The meta key prefix of a source's committed offsets.
const OFFSETS_PREFIX: &str = "source_offsets/";
/// Rows one step takes at most from all sources together.
pub const STEP_ROWS: usize = 256 * 1024;
/// Records a reader asks its split for at once.
const READ_ROWS: usize = 4096;
/// Chunks a split's channel holds before its reader waits.
const CHANNEL_CHUNKS: usize = 16;
/// How long a backfill waits for a transport to give records it had.
const BACKFILL_STALL: Duration = Duration::from_secs(60);
/// The meta key prefix of where a source's splits started.
const ORIGINS_PREFIX: &str = "source_origins/";

/// What `FLUSH`, `SHOW SOURCES` and the status view see of a running split.
#[derive(Debug)]
pub struct SplitStatus {
    pub source: String,
    pub split: String,
    /// The offset committed with the view state.
    pub committed: AtomicU64,
    /// The offset after the last chunk the reader produced.
    pub produced: AtomicU64,
    /// Where the split ends when all of it is available now (`u64::MAX`:
    /// not known): `FLUSH` waits for it.
    pub available_end: AtomicU64,
    /// Records, bytes and rows committed since the server started.
    pub records_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub rows_in: AtomicU64,
    /// Records that could not be read, and rows dropped because a step
    /// over them failed.
    pub parse_errors: AtomicU64,
    pub step_errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// When the split last had nothing left to read (ms since the epoch).
    pub caught_up_ms: AtomicI64,
    /// The split's high watermark as the reader last saw it (`u64::MAX`:
    /// unknown).
    pub high: AtomicU64,
    /// The split has ended (a finite generator) or failed.
    pub ended: AtomicBool,
    pub failed: AtomicBool,
    /// Cleared when the source stops (dropped, or no longer read).
    pub running: AtomicBool,
}

impl SplitStatus {
    fn settled(&self, target: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= target
            || self.failed.load(Ordering::Acquire)
            || !self.running.load(Ordering::Acquire)
    }

    fn error(&self, msg: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running source's splits, and the connector (for `FLUSH` to ask it
/// how far its splits reach).
#[derive(Clone)]
pub struct SourceHandle {
    pub source: Arc<dyn Source>,
    pub splits: Vec<Arc<SplitStatus>>,
}

/// Every running source, by name.
pub type SourceStatuses = Arc<RwLock<BTreeMap<String, SourceHandle>>>;

enum Msg {
    Chunk(Chunk),
    End,
    Failed(String),
}

struct RunningSplit {
    name: String,
    rx: Receiver<Msg>,
    status: Arc<SplitStatus>,
}

/// A source (or connector-fed table) being read.
pub(super) struct RunningSource {
    splits: Vec<RunningSplit>,
    stop: Arc<AtomicBool>,
    policy: ErrorPolicy,
    /// Stopped by a bad record (`source.error.policy = 'stop'`): nothing
    /// more is taken from it until the server restarts.
    stopped: bool,
}

/// What one step took from one source.
struct Taken {
    name: String,
    chunks: Vec<Chunk>,
    /// (split index, offset after the chunks taken, chunks of the split).
    offsets: Vec<(usize, u64, std::ops::Range<usize>)>,
    rows: usize,
}

fn offsets_key(id: u32) -> String {
    format!("{OFFSETS_PREFIX}{id}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Opens a relation's connector with its options (which must all be used)
/// and checks its format clause.
fn open_connector(def: &TableDef) -> Result<Arc<dyn Source>> {
    let c = def
        .connector
        .as_ref()
        .ok_or_else(|| PlannerError::DataException(format!("\"{}\" has no connector", def.name)))?;
    let generator = ["datagen", "nexmark"].contains(&c.name.as_str());
    if generator {
        // Generators make rows, not records: RisingWave scripts still write
        // `FORMAT PLAIN ENCODE JSON`.
        match (c.format.as_deref(), c.encode.as_deref()) {
            (None, None) | (Some("plain"), Some("json")) => {}
            (f, e) => {
                return Err(PlannerError::not_supported(format!(
                    "FORMAT {} ENCODE {} for connector \"{}\" (generators take FORMAT PLAIN ENCODE JSON or none)",
                    f.unwrap_or("").to_uppercase(),
                    e.unwrap_or("").to_uppercase(),
                    c.name
                )))
            }
        }
        if let Some((what, _)) = c.include.first() {
            return Err(PlannerError::not_supported(format!(
                "INCLUDE {what} for connector \"{}\"",
                c.name
            )));
        }
    }
    if matches!(c.format.as_deref(), Some("upsert") | Some("debezium")) {
        if def.kind == RelKind::Source {
            return Err(PlannerError::not_supported(format!(
                "FORMAT {} on a source (its rows are kept by key: CREATE TABLE … (…, PRIMARY KEY (…)) WITH (…) FORMAT {} …)",
                c.format.as_deref().unwrap_or("").to_uppercase(),
                c.format.as_deref().unwrap_or("").to_uppercase(),
            )));
        }
        if def.primary_key.is_empty() {
            return Err(PlannerError::InvalidTableDefinition(format!(
                "FORMAT {} needs a primary key (CREATE TABLE … (…, PRIMARY KEY (…)))",
                c.format.as_deref().unwrap_or("").to_uppercase()
            )));
        }
    }
    let mut options = c.options.clone();
    options.remove(ERROR_POLICY);
    options.remove(RATE_LIMIT);
    let ctx = SourceContext {
        schema: def.user_schema(),
        created_ms: c.created_ms,
        format: match (&c.format, &c.encode) {
            (Some(f), Some(e)) => Some((f.clone(), e.clone(), c.encode_options.clone())),
            _ => None,
        },
        include: c.include.clone(),
        key: def.primary_key.clone(),
    };
    Ok(freshet_connectors::registry::open(
        &c.name,
        Options::new(options),
        &ctx,
    )?)
}

/// What a source does with a record it cannot read (`WITH
/// (source.error.policy = …)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ErrorPolicy {
    /// Count it (in the status view) and go on: the default.
    Skip,
    /// Keep it in `freshet_source_errors`, in the same commit, and go on.
    DeadLetter,
    /// Stop the source; the status view and `SHOW SOURCES` say why.
    Stop,
}

/// The `WITH` option naming a source's [`ErrorPolicy`].
pub const ERROR_POLICY: &str = "source.error.policy";
/// RisingWave's `source_rate_limit`: records per second the source reads
/// at most (over all its splits); 0 pauses it, absent means no limit.
pub const RATE_LIMIT: &str = "source_rate_limit";

fn rate_limit(def: &TableDef) -> Result<Option<f64>> {
    let Some(v) = def
        .connector
        .as_ref()
        .and_then(|c| c.options.get(RATE_LIMIT))
    else {
        return Ok(None);
    };
    match v.trim().parse::<f64>() {
        Ok(r) if r >= 0.0 && r.is_finite() => Ok(Some(r)),
        _ => Err(PlannerError::InvalidParameterValue(format!(
            "invalid value \"{v}\" for option \"{RATE_LIMIT}\" (records per second, 0 or more)"
        ))),
    }
}

fn error_policy(def: &TableDef) -> Result<ErrorPolicy> {
    let v = def
        .connector
        .as_ref()
        .and_then(|c| c.options.get(ERROR_POLICY))
        .map(|v| v.trim().to_ascii_lowercase());
    match v.as_deref() {
        None | Some("skip") => Ok(ErrorPolicy::Skip),
        Some("dead_letter") | Some("dead-letter") => Ok(ErrorPolicy::DeadLetter),
        Some("stop") => Ok(ErrorPolicy::Stop),
        Some(other) => Err(PlannerError::InvalidParameterValue(format!(
            "invalid value \"{other}\" for option \"{ERROR_POLICY}\" (skip, dead_letter or stop)"
        ))),
    }
}

/// Checks a new relation's connector options (at CREATE).
pub(super) fn check_connector(def: &TableDef) -> Result<()> {
    error_policy(def)?;
    rate_limit(def)?;
    open_connector(def).map(|_| ())
}
impl Engine {
    /// Offsets by split under meta key `key`.
    fn split_offsets(&self, key: &str, def: &TableDef) -> Result<BTreeMap<String, u64>> {
        match self.store.get_meta(key)? {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_slice(&v).map_err(|e| {
                PlannerError::DataException(format!("offsets of \"{}\": {e}", def.name))
            }),
        }
    }

    /// Whether a relation's connector should be read now.
    fn should_run(writer: &Writer, def: &TableDef) -> bool {
        def.connector.is_some()
            && match def.kind {
                RelKind::Table => true,
                RelKind::Source => writer.runtime.reads(&def.name),
                _ => false,
            }
    }

    /// Starts the sources that have a use and stops those that lost it
    /// (after a CREATE or DROP, and at start-up).
    pub(super) fn sync_sources(&self, writer: &mut Writer) -> Result<()> {
        let defs: Vec<Arc<TableDef>> = self
            .catalog()
            .tables()
            .filter(|d| d.connector.is_some())
            .cloned()
            .collect();
        let stale: Vec<String> = writer
            .sources
            .keys()
            .filter(|n| {
                !defs
                    .iter()
                    .any(|d| &d.name == *n && Self::should_run(writer, d))
            })
            .cloned()
            .collect();
        for name in stale {
            self.stop_source(writer, &name);
        }
        for def in &defs {
            if Self::should_run(writer, def) && !writer.sources.contains_key(&def.name) {
                if let Err(e) = self.start_source(writer, def) {
                    // A broker that is down at start-up: the source stays
                    // stopped (the status view says why); the others run.
                    tracing::error!(source = %def.name, error = %e, "cannot start source");
                    self.failed_source(def, &e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Records a source that could not start, for the status view.
    fn failed_source(&self, def: &TableDef, error: &str) {
        let status = Arc::new(SplitStatus {
            source: def.name.clone(),
            split: String::new(),
            committed: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            available_end: AtomicU64::new(u64::MAX),
            records_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            rows_in: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            step_errors: AtomicU64::new(0),
            last_error: Mutex::new(Some(error.to_string())),
            caught_up_ms: AtomicI64::new(0),
            high: AtomicU64::new(u64::MAX),
            ended: AtomicBool::new(false),
            failed: AtomicBool::new(true),
            running: AtomicBool::new(false),
        });
        self.failed_sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.name.clone(), status);
    }

    fn start_source(&self, writer: &mut Writer, def: &TableDef) -> Result<()> {
        let policy = error_policy(def)?;
        let limit = rate_limit(def)?;
        let source = open_connector(def)?;
        let mut offsets = self.split_offsets(&offsets_key(def.id), def)?;
        let names = source.splits();
        // A split read for the first time starts where the startup mode
        // says, resolved now and kept (a later view's backfill reads from
        // the same place).
        let fresh: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| !offsets.contains_key(*n))
            .map(|(i, n)| (i, n.clone()))
            .collect();
        if !fresh.is_empty() {
            let origins_key = format!("{ORIGINS_PREFIX}{}", def.id);
            let mut origins = self.split_offsets(&origins_key, def)?;
            for (i, n) in &fresh {
                let o = source.start_offset(*i)?;
                origins.entry(n.clone()).or_insert(o);
                offsets.insert(n.clone(), o);
            }
            let mut txn = Txn::new();
            let json = |m: &BTreeMap<String, u64>| {
                serde_json::to_vec(m).map_err(|e| PlannerError::DataException(e.to_string()))
            };
            txn.put_meta(&origins_key, &json(&origins)?);
            txn.put_meta(&offsets_key(def.id), &json(&offsets)?);
            self.store.commit(txn)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut splits = Vec::new();
        let per_split = limit.map(|r| r / names.len().max(1) as f64);
        for (i, name) in names.into_iter().enumerate() {
            let mut reader = source.reader(i, offsets.get(&name).copied(), true)?;
            let at = reader.offset();
            let status = Arc::new(SplitStatus {
                source: def.name.clone(),
                split: name.clone(),
                committed: AtomicU64::new(at),
                produced: AtomicU64::new(at),
                available_end: AtomicU64::new(reader.available_end().unwrap_or(u64::MAX)),
                records_in: AtomicU64::new(0),
                bytes_in: AtomicU64::new(0),
                rows_in: AtomicU64::new(0),
                parse_errors: AtomicU64::new(0),
                step_errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
                caught_up_ms: AtomicI64::new(now_ms()),
                high: AtomicU64::new(reader.high_watermark().unwrap_or(u64::MAX)),
                ended: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                running: AtomicBool::new(true),
            });
            let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
            let (st, stop2) = (status.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("source-{}-{name}", def.name))
                .spawn(move || {
                    let mut sent = at;
                    // source_rate_limit, in records; 0 reads nothing.
                    let pace = freshet_connectors::source::Pace::new(per_split, at);
                    let mut read: u64 = at;
                    while !stop2.load(Ordering::Acquire) {
                        let want = match (&pace, per_split) {
                            (_, Some(r)) if r <= 0.0 => {
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                            (Some(p), _) => p.due(read, READ_ROWS),
                            _ => READ_ROWS,
                        };
                        if want == 0 {
                            continue;
                        }
                        let next = reader.next(want);
                        if let Ok(Some(c)) = &next {
                            read += c.records;
                        }
                        if let Some(h) = reader.high_watermark() {
                            st.high.store(h, Ordering::Release);
                        }
                        match next {
                            // Nothing new, not even a moved position.
                            Ok(Some(c)) if c.records == 0 && c.offset <= sent => {}
                            Ok(Some(c)) => {
                                sent = c.offset;
                                st.produced.store(c.offset, Ordering::Release);
                                if tx.send(Msg::Chunk(c)).is_err() {
                                    break;
                                }
                            }
                            Ok(None) => {
                                let _ = tx.send(Msg::End);
                                break;
                            }
                            Err(e) => {
                                let _ = tx.send(Msg::Failed(e.to_string()));
                                break;
                            }
                        }
                    }
                })
                .map_err(|e| PlannerError::DataException(format!("source reader: {e}")))?;
            splits.push(RunningSplit { name, rx, status });
        }
        self.failed_sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&def.name);
        self.source_status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                def.name.clone(),
                SourceHandle {
                    source,
                    splits: splits.iter().map(|s| s.status.clone()).collect(),
                },
            );
        writer.sources.insert(
            def.name.clone(),
            RunningSource {
                splits,
                stop,
                policy,
                stopped: false,
            },
        );
        Ok(())
    }

    fn stop_source(&self, writer: &mut Writer, name: &str) {
        if let Some(run) = writer.sources.remove(name) {
            run.stop.store(true, Ordering::Release);
            for s in &run.splits {
                s.status.running.store(false, Ordering::Release);
            }
        }
        self.source_status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.failed_sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// A source's records from where it started up to its committed
    /// offsets, as insertions: what a new view over it starts from.
    pub(super) fn source_contents(&self, def: &TableDef) -> Result<ChangeBatch> {
        let schema = def.user_schema();
        let offsets = self.split_offsets(&offsets_key(def.id), def)?;
        let origins = self.split_offsets(&format!("{ORIGINS_PREFIX}{}", def.id), def)?;
        let mut batches = Vec::new();
        if !offsets.is_empty() {
            let source = open_connector(def)?;
            for (i, name) in source.splits().into_iter().enumerate() {
                let Some(&target) = offsets.get(&name) else {
                    continue;
                };
                let from = origins.get(&name).copied();
                let mut reader = source.reader(i, from, false)?;
                // Records past the committed offset belong to the steps
                // after this one.
                reader.stop_at(target);
                let mut progress = std::time::Instant::now();
                while reader.offset() < target {
                    let before = reader.offset();
                    let want = (target - before).min(READ_ROWS as u64) as usize;
                    match reader.next(want)? {
                        Some(c) => {
                            if c.offset > before {
                                progress = std::time::Instant::now();
                            } else if progress.elapsed() > BACKFILL_STALL {
                                return Err(PlannerError::DataException(format!(
                                    "source \"{}\", split {name}: no records between offsets {before} and {target}",
                                    def.name
                                )));
                            }
                            batches.push(c.rows);
                        }
                        None => break,
                    }
                }
            }
        }
        let rows = datafusion::arrow::compute::concat_batches(&schema, &batches)?;
        Ok(ChangeBatch::inserts(rows))
    }

    /// One scheduler step: everything waiting in the sources' channels (up
    /// to [`STEP_ROWS`] rows) through the graph, with the new offsets, in
    /// one commit. Returns the rows taken.
    pub async fn source_step(&self) -> Result<usize> {
        let mut writer = self.writer.lock().await;
        let mut taken: Vec<Taken> = Vec::new();
        let mut budget = STEP_ROWS;
        let mut names: Vec<String> = writer.sources.keys().cloned().collect();
        names.sort();
        let mut stopped = Vec::new();
        for name in names {
            let Some(run) = writer.sources.get_mut(&name) else {
                continue;
            };
            if run.stopped {
                continue;
            }
            let mut t = Taken {
                name: name.clone(),
                chunks: Vec::new(),
                offsets: Vec::new(),
                rows: 0,
            };
            'splits: for (i, split) in run.splits.iter_mut().enumerate() {
                let first = t.chunks.len();
                let mut last = None;
                while budget > 0 {
                    match split.rx.try_recv() {
                        Ok(Msg::Chunk(c)) => {
                            if run.policy == ErrorPolicy::Stop {
                                if let Some(bad) = c.errors.first() {
                                    // The chunk is not taken: its offset stays
                                    // before the bad record.
                                    let msg = format!(
                                        "record at offset {} of split {}: {}",
                                        bad.offset, split.name, bad.error
                                    );
                                    tracing::error!(source = %name, error = %msg, "source stopped");
                                    split.status.error(msg);
                                    split.status.parse_errors.fetch_add(1, Ordering::Relaxed);
                                    split.status.failed.store(true, Ordering::Release);
                                    stopped.push(name.clone());
                                    break 'splits;
                                }
                            }
                            let n = c.rows.num_rows();
                            budget = budget.saturating_sub(n.max(1));
                            t.rows += n;
                            last = Some(c.offset);
                            t.chunks.push(c);
                        }
                        Ok(Msg::End) => {
                            split.status.ended.store(true, Ordering::Release);
                            break;
                        }
                        Ok(Msg::Failed(e)) => {
                            tracing::warn!(source = %name, split = %split.name, error = %e, "source split failed");
                            split.status.error(e);
                            split.status.failed.store(true, Ordering::Release);
                            break;
                        }
                        Err(TryRecvError::Empty) => {
                            split.status.caught_up_ms.store(now_ms(), Ordering::Relaxed);
                            break;
                        }
                        Err(TryRecvError::Disconnected) => break,
                    }
                }
                if let Some(o) = last {
                    t.offsets.push((i, o, first..t.chunks.len()));
                }
            }
            if !t.offsets.is_empty() {
                taken.push(t);
            }
        }
        for name in stopped {
            if let Some(run) = writer.sources.get_mut(&name) {
                run.stop.store(true, Ordering::Release);
                run.stopped = true;
                // Nothing of it is taken any more: FLUSH does not wait.
                for s in &run.splits {
                    s.status.running.store(false, Ordering::Release);
                }
            }
            taken.retain(|t| t.name != name);
        }
        if taken.is_empty() {
            return Ok(0);
        }
        let total: usize = taken.iter().map(|t| t.rows).sum();
        let snapshot = self.store.snapshot();
        if let Err(e) = self.apply_source_input(&mut writer, &taken, &snapshot, true) {
            // One source at a time, to keep the others' rows: a source whose
            // rows fail a view's step alone has them dropped and counted
            // (the offsets still advance, so they are not read again).
            if taken.len() == 1 {
                self.drop_taken(&mut writer, &taken[0], &e, &snapshot)?;
            } else {
                for t in &taken {
                    let snapshot = self.store.snapshot();
                    if let Err(e) = self.apply_source_input(
                        &mut writer,
                        std::slice::from_ref(t),
                        &snapshot,
                        true,
                    ) {
                        self.drop_taken(&mut writer, t, &e, &snapshot)?;
                    }
                }
            }
        }
        Ok(total)
    }

    /// Commits only the offsets of rows a step could not take, counting
    /// them as errors of their splits.
    fn drop_taken(
        &self,
        writer: &mut Writer,
        t: &Taken,
        error: &PlannerError,
        snapshot: &Snapshot,
    ) -> Result<()> {
        tracing::warn!(source = %t.name, rows = t.rows, %error, "source rows dropped: a step over them failed");
        self.apply_source_input(writer, std::slice::from_ref(t), snapshot, false)?;
        if let Some(run) = writer.sources.get(&t.name) {
            for (i, _, chunks) in &t.offsets {
                let rows: usize = t.chunks[chunks.clone()]
                    .iter()
                    .map(|c| c.rows.num_rows())
                    .sum();
                let st = &run.splits[*i].status;
                st.step_errors.fetch_add(rows as u64, Ordering::Relaxed);
                st.error(format!("{rows} rows dropped: {error}"));
            }
        }
        Ok(())
    }

    /// Runs one step over `taken` (`with_rows`: else only the offsets are
    /// committed) and commits it with the new offsets, and the bad records
    /// of dead-lettering sources.
    fn apply_source_input(
        &self,
        writer: &mut Writer,
        taken: &[Taken],
        snapshot: &Snapshot,
        with_rows: bool,
    ) -> Result<()> {
        let mut txn = Txn::new();
        let mut input = StepInput::new();
        let reads_dead_letters = writer.runtime.reads(DEAD_LETTERS);
        for t in taken {
            let def = self
                .catalog()
                .get(&t.name)
                .cloned()
                .ok_or_else(|| PlannerError::UndefinedTable(t.name.clone()))?;
            if with_rows {
                match def.kind {
                    RelKind::Source => {
                        let batches: Vec<RecordBatch> =
                            t.chunks.iter().map(|c| c.rows.clone()).collect();
                        let rows = datafusion::arrow::compute::concat_batches(
                            &def.user_schema(),
                            &batches,
                        )?;
                        input.add(
                            &def.name,
                            self.normalize_jsonb(&def, ChangeBatch::inserts(rows))?,
                        )?
                    }
                    _ => {
                        for (i, _, chunks) in &t.offsets {
                            let status = writer
                                .sources
                                .get(&t.name)
                                .map(|r| r.splits[*i].status.clone())
                                .ok_or_else(|| PlannerError::UndefinedTable(t.name.clone()))?;
                            for c in &t.chunks[chunks.clone()] {
                                self.write_source_rows(writer, &def, c, &status, &mut txn)?;
                            }
                        }
                    }
                }
            }
            let run = writer
                .sources
                .get(&t.name)
                .ok_or_else(|| PlannerError::UndefinedTable(t.name.clone()))?;
            if run.policy == ErrorPolicy::DeadLetter {
                for (i, _, chunks) in &t.offsets {
                    for c in &t.chunks[chunks.clone()] {
                        self.dead_letters(
                            reads_dead_letters,
                            &def.name,
                            &run.splits[*i].name,
                            &c.errors,
                            &mut txn,
                        )?;
                    }
                }
            }
            let mut offsets: BTreeMap<String, u64> = run
                .splits
                .iter()
                .map(|s| (s.name.clone(), s.status.committed.load(Ordering::Acquire)))
                .collect();
            for (i, o, _) in &t.offsets {
                offsets.insert(run.splits[*i].name.clone(), *o);
            }
            let value = serde_json::to_vec(&offsets)
                .map_err(|e| PlannerError::DataException(e.to_string()))?;
            txn.put_meta(&offsets_key(def.id), &value);
        }
        self.commit_step(writer, txn, snapshot, input)?;
        for t in taken {
            let Some(run) = writer.sources.get(&t.name) else {
                continue;
            };
            for (i, o, chunks) in &t.offsets {
                let st = &run.splits[*i].status;
                st.committed.store(*o, Ordering::Release);
                for c in &t.chunks[chunks.clone()] {
                    st.records_in.fetch_add(c.records, Ordering::Relaxed);
                    st.bytes_in.fetch_add(c.bytes, Ordering::Relaxed);
                    st.parse_errors
                        .fetch_add(c.errors.len() as u64, Ordering::Relaxed);
                    if with_rows {
                        st.rows_in
                            .fetch_add(c.rows.num_rows() as u64, Ordering::Relaxed);
                    }
                    if let Some(bad) = c.errors.last() {
                        st.error(format!("record at offset {}: {}", bad.offset, bad.error));
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes a chunk that arrived for a connector-fed table: appended with
    /// new row ids, or put by primary key (a later row replaces an earlier
    /// one, as RisingWave's tables do), and keys deleted where the format
    /// says so (upsert tombstones, Debezium deletes) — in record order.
    fn write_source_rows(
        &self,
        writer: &mut Writer,
        def: &Arc<TableDef>,
        chunk: &Chunk,
        status: &SplitStatus,
        txn: &mut Txn,
    ) -> Result<()> {
        if chunk.rows.num_rows() == 0 {
            return Ok(());
        }
        if writer.runtime.reads(&def.name) || !index::indexes_of(&self.indexes, def.id).is_empty() {
            txn.track_changes();
        }
        let stored = self.stored(&def.name)?;
        let rows = self
            .normalize_jsonb(def, ChangeBatch::inserts(chunk.rows.clone()))?
            .data()
            .clone();
        if def.has_rowid() {
            let mut rows = self.conform_rows(def, rows, status)?;
            let next = match writer.rowids.get(&def.id) {
                Some(v) => *v,
                None => Catalog::last_rowid(&self.store, def)?,
            };
            let n = rows.num_rows() as i64;
            let mut cols = rows.columns().to_vec();
            cols.push(Arc::new(Int64Array::from_iter_values(next + 1..=next + n)));
            rows = RecordBatch::try_new(def.storage_schema(), cols)?;
            writer.rowids.insert(def.id, next + n);
            Catalog::write_last_rowid(def, next + n, txn);
            for (k, v) in stored
                .codec()
                .encode_rows(def.id, &rows, &def.key_columns())?
            {
                txn.put_new(&k, &v);
            }
            return Ok(());
        }
        let rows = match &chunk.deletes {
            // Deleting rows carry only their key: nothing to conform.
            Some(_) => rows,
            None => self.conform_rows(def, rows, status)?,
        };
        let encoded = stored
            .codec()
            .encode_rows(def.id, &rows, &def.key_columns())?;
        for (i, (k, v)) in encoded.iter().enumerate() {
            match &chunk.deletes {
                Some(d) if d[i] => txn.delete(k),
                _ => txn.put(k, v),
            }
        }
        Ok(())
    }

    /// A table's constraints on rows from outside (NOT NULL, `varchar(n)`,
    /// numeric precision), row by row when the batch fails: a row that
    /// breaks one is a bad record (counted, its error kept), not a reason
    /// to lose the rows around it.
    fn conform_rows(
        &self,
        def: &TableDef,
        rows: RecordBatch,
        status: &SplitStatus,
    ) -> Result<RecordBatch> {
        let schema = def.user_schema();
        let first = match super::dml::conform(def, &schema, rows.clone()) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let mut good = Vec::new();
        let mut bad = 0u64;
        for i in 0..rows.num_rows() {
            match super::dml::conform(def, &schema, rows.slice(i, 1)) {
                Ok(r) => good.push(r),
                Err(e) => {
                    bad += 1;
                    status.error(format!("row rejected by table \"{}\": {e}", def.name));
                }
            }
        }
        status.parse_errors.fetch_add(bad, Ordering::Relaxed);
        tracing::warn!(table = %def.name, rows = bad, error = %first, "source rows rejected");
        if good.is_empty() {
            return super::dml::conform(def, &schema, rows.slice(0, 0));
        }
        Ok(datafusion::arrow::compute::concat_batches(
            &good[0].schema(),
            &good,
        )?)
    }

    /// Bad records of a dead-lettering source, into `freshet_source_errors`
    /// (keyed by source, split and offset: a record read again after a
    /// crash replaces itself).
    fn dead_letters(
        &self,
        reads: bool,
        source: &str,
        split: &str,
        errors: &[freshet_connectors::source::BadRecord],
        txn: &mut Txn,
    ) -> Result<()> {
        if errors.is_empty() {
            return Ok(());
        }
        let def = self.table_def(DEAD_LETTERS)?;
        let stored = self.stored(DEAD_LETTERS)?;
        use datafusion::arrow::array::{BinaryArray, StringArray, TimestampMicrosecondArray};
        let now = now_ms() * 1000;
        let n = errors.len();
        let rows = RecordBatch::try_new(
            def.user_schema(),
            vec![
                Arc::new(StringArray::from(vec![source; n])),
                Arc::new(StringArray::from(vec![split; n])),
                Arc::new(Int64Array::from_iter_values(
                    errors.iter().map(|e| e.offset as i64),
                )),
                Arc::new(StringArray::from_iter_values(
                    errors.iter().map(|e| e.error.as_str()),
                )),
                Arc::new(
                    errors
                        .iter()
                        .map(|e| e.key.as_deref())
                        .collect::<BinaryArray>(),
                ),
                Arc::new(
                    errors
                        .iter()
                        .map(|e| e.payload.as_deref())
                        .collect::<BinaryArray>(),
                ),
                Arc::new(
                    errors
                        .iter()
                        .map(|e| e.timestamp_ms.map(|t| t * 1000))
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("+00:00"),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("+00:00")),
            ],
        )?;
        if reads {
            txn.track_changes();
        }
        for (k, v) in stored
            .codec()
            .encode_rows(def.id, &rows, &def.key_columns())?
        {
            txn.put(&k, &v);
        }
        Ok(())
    }

    /// jsonb columns of rows from outside, in jsonb's canonical text (what
    /// an INSERT of the same value stores).
    fn normalize_jsonb(&self, def: &TableDef, batch: ChangeBatch) -> Result<ChangeBatch> {
        let jsonb: Vec<usize> = def
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.sql_type == crate::types::SqlType::Jsonb)
            .map(|(i, _)| i)
            .collect();
        if jsonb.is_empty() || batch.is_empty() {
            return Ok(batch);
        }
        let data = batch.data();
        let mut columns = data.columns().to_vec();
        for i in jsonb {
            columns[i] = crate::jsonb::canonical_column(&columns[i])?;
        }
        let data = RecordBatch::try_new(data.schema(), columns)?;
        Ok(batch.with_data(data)?)
    }

    /// `FLUSH`: returns once everything the running sources had available
    /// when it was issued is committed (into every view reading them):
    /// for Kafka, each partition's high watermark then; for a generator,
    /// its end if it is finite and unpaced, else what it had produced.
    pub async fn flush(&self) -> Result<()> {
        let handles: Vec<SourceHandle> = self
            .source_status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let targets =
            tokio::task::spawn_blocking(move || -> Result<Vec<(Arc<SplitStatus>, u64)>> {
                let mut out = Vec::new();
                for h in handles {
                    for (i, s) in h.splits.iter().enumerate() {
                        let target = match h.source.high_watermark(i)? {
                            Some(hw) => hw,
                            None => match s.available_end.load(Ordering::Acquire) {
                                u64::MAX => s.produced.load(Ordering::Acquire),
                                end => end,
                            },
                        };
                        out.push((s.clone(), target));
                    }
                }
                Ok(out)
            })
            .await
            .map_err(|e| PlannerError::DataException(format!("FLUSH: {e}")))??;
        while !targets.iter().all(|(s, t)| s.settled(*t)) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// The scheduler: steps source input every `interval`, and back to back
    /// while a step finds a full budget waiting. Ends when the engine is
    /// dropped.
    pub async fn run_scheduler(engine: std::sync::Weak<Engine>, interval: Duration) {
        if let Some(e) = engine.upgrade() {
            let mut writer = e.writer.lock().await;
            if let Err(err) = e.sync_sources(&mut writer) {
                tracing::error!(error = %err, "starting sources");
            }
        }
        loop {
            let Some(e) = engine.upgrade() else {
                return;
            };
            let taken = match e.source_step().await {
                Ok(n) => n,
                Err(err) => {
                    tracing::error!(error = %err, "source step failed");
                    0
                }
            };
            drop(e);
            if taken < STEP_ROWS {
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// The system table of dead-lettered records.
pub const DEAD_LETTERS: &str = "freshet_source_errors";

/// `freshet_source_errors`: created with the first source whose policy is
/// `dead_letter`; a record is kept under (source, split, offset).
pub(super) fn dead_letters_table() -> TableDef {
    use crate::catalog::ColumnDef;
    use crate::types::SqlType;
    let col = |name: &str, sql_type: SqlType, not_null: bool| ColumnDef {
        name: name.into(),
        sql_type,
        not_null,
        default: None,
    };
    TableDef {
        id: 0,
        name: DEAD_LETTERS.into(),
        columns: vec![
            col("source", SqlType::Text, true),
            col("split", SqlType::Text, true),
            col("record_offset", SqlType::Int8, true),
            col("error", SqlType::Text, false),
            col("key", SqlType::Bytea, false),
            col("payload", SqlType::Bytea, false),
            col("record_time", SqlType::TimestampTz, false),
            col("received_at", SqlType::TimestampTz, false),
        ],
        primary_key: vec![0, 1, 2],
        kind: RelKind::Table,
        query: None,
        depends_on: vec![],
        state_ids: (0, 0),
        view_key: None,
        append_only: false,
        owner: None,
        connector: None,
    }
}

/// Whether a new relation's connector dead-letters its bad records.
pub(super) fn keeps_dead_letters(def: &TableDef) -> bool {
    matches!(error_policy(def), Ok(ErrorPolicy::DeadLetter))
}
