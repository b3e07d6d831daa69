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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// Rows a reader asks its split for at once.
const READ_ROWS: usize = 4096;
/// Chunks a split's channel holds before its reader waits.
const CHANNEL_CHUNKS: usize = 16;

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
    /// Rows committed since the server started.
    pub rows_in: AtomicU64,
    /// Rows dropped because a step over them failed.
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// The split has ended (a finite generator) or failed.
    pub ended: AtomicBool,
    pub failed: AtomicBool,
    /// Cleared when the source stops (dropped, or no longer read).
    pub running: AtomicBool,
}

impl SplitStatus {
    /// What `FLUSH` waits for: everything available, or else everything
    /// the reader had produced.
    fn flush_target(&self) -> u64 {
        match self.available_end.load(Ordering::Acquire) {
            u64::MAX => self.produced.load(Ordering::Acquire),
            end => end,
        }
    }

    fn settled(&self, target: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= target
            || self.failed.load(Ordering::Acquire)
            || !self.running.load(Ordering::Acquire)
    }
}

/// Every running split's status, by source name.
pub type SourceStatuses = Arc<RwLock<BTreeMap<String, Vec<Arc<SplitStatus>>>>>;

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
}

/// What one step took from one source.
struct Taken {
    name: String,
    rows: Vec<RecordBatch>,
    /// (split index, offset after the rows taken).
    offsets: Vec<(usize, u64)>,
    count: usize,
}

fn offsets_key(id: u32) -> String {
    format!("{OFFSETS_PREFIX}{id}")
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
    let ctx = SourceContext {
        schema: def.user_schema(),
        created_ms: c.created_ms,
    };
    Ok(freshet_connectors::registry::open(
        &c.name,
        Options::new(c.options.clone()),
        &ctx,
    )?)
}

/// Checks a new relation's connector options (at CREATE).
pub(super) fn check_connector(def: &TableDef) -> Result<()> {
    open_connector(def).map(|_| ())
}

impl Engine {
    /// The offsets committed for a relation's splits.
    fn committed_offsets(&self, def: &TableDef) -> Result<BTreeMap<String, u64>> {
        match self.store.get_meta(&offsets_key(def.id))? {
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
        for def in &defs {
            if Self::should_run(writer, def) && !writer.sources.contains_key(&def.name) {
                self.start_source(writer, def)?;
            }
        }
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
        Ok(())
    }

    fn start_source(&self, writer: &mut Writer, def: &TableDef) -> Result<()> {
        let source = open_connector(def)?;
        let offsets = self.committed_offsets(def)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut splits = Vec::new();
        for (i, name) in source.splits().into_iter().enumerate() {
            let mut reader = source.reader(i, offsets.get(&name).copied(), true)?;
            let at = reader.offset();
            let status = Arc::new(SplitStatus {
                source: def.name.clone(),
                split: name.clone(),
                committed: AtomicU64::new(at),
                produced: AtomicU64::new(at),
                available_end: AtomicU64::new(reader.available_end().unwrap_or(u64::MAX)),
                rows_in: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                last_error: Mutex::new(None),
                ended: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                running: AtomicBool::new(true),
            });
            let (tx, rx) = sync_channel(CHANNEL_CHUNKS);
            let (st, stop2) = (status.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("source-{}-{name}", def.name))
                .spawn(move || {
                    while !stop2.load(Ordering::Acquire) {
                        match reader.next(READ_ROWS) {
                            Ok(Some(c)) if c.rows.num_rows() == 0 => {}
                            Ok(Some(c)) => {
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
        self.source_status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                def.name.clone(),
                splits.iter().map(|s| s.status.clone()).collect(),
            );
        writer
            .sources
            .insert(def.name.clone(), RunningSource { splits, stop });
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
    }

    /// A source's records from its start up to its committed offsets, as
    /// insertions: what a new view over it starts from.
    pub(super) fn source_contents(&self, def: &TableDef) -> Result<ChangeBatch> {
        let schema = def.user_schema();
        let offsets = self.committed_offsets(def)?;
        let mut batches = Vec::new();
        if !offsets.is_empty() {
            let source = open_connector(def)?;
            for (i, name) in source.splits().into_iter().enumerate() {
                let Some(&target) = offsets.get(&name) else {
                    continue;
                };
                let mut reader = source.reader(i, None, false)?;
                while reader.offset() < target {
                    let want = (target - reader.offset()).min(READ_ROWS as u64) as usize;
                    match reader.next(want)? {
                        Some(c) => batches.push(c.rows),
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
        for name in names {
            let Some(run) = writer.sources.get_mut(&name) else {
                continue;
            };
            let mut t = Taken {
                name: name.clone(),
                rows: Vec::new(),
                offsets: Vec::new(),
                count: 0,
            };
            for (i, split) in run.splits.iter_mut().enumerate() {
                let mut last = None;
                while budget > 0 {
                    match split.rx.try_recv() {
                        Ok(Msg::Chunk(c)) => {
                            let n = c.rows.num_rows();
                            budget = budget.saturating_sub(n);
                            t.count += n;
                            last = Some(c.offset);
                            t.rows.push(c.rows);
                        }
                        Ok(Msg::End) => {
                            split.status.ended.store(true, Ordering::Release);
                            break;
                        }
                        Ok(Msg::Failed(e)) => {
                            tracing::warn!(source = %name, split = %split.name, error = %e, "source split failed");
                            *split
                                .status
                                .last_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner()) = Some(e);
                            split.status.failed.store(true, Ordering::Release);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                if let Some(o) = last {
                    t.offsets.push((i, o));
                }
            }
            if !t.offsets.is_empty() {
                taken.push(t);
            }
        }
        if taken.is_empty() {
            return Ok(0);
        }
        let total: usize = taken.iter().map(|t| t.count).sum();
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
            return Ok(total);
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
        tracing::warn!(source = %t.name, rows = t.count, %error, "source rows dropped: a step over them failed");
        self.apply_source_input(writer, std::slice::from_ref(t), snapshot, false)?;
        if let Some(run) = writer.sources.get(&t.name) {
            let msg = format!("{} rows dropped: {error}", t.count);
            for (i, _) in &t.offsets {
                let st = &run.splits[*i].status;
                st.errors.fetch_add(t.count as u64, Ordering::Relaxed);
                *st.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
            }
        }
        Ok(())
    }

    /// Runs one step over `taken` (`with_rows`: else only the offsets are
    /// committed) and commits it with the new offsets.
    fn apply_source_input(
        &self,
        writer: &mut Writer,
        taken: &[Taken],
        snapshot: &Snapshot,
        with_rows: bool,
    ) -> Result<()> {
        let mut txn = Txn::new();
        let mut input = StepInput::new();
        for t in taken {
            let def = self
                .catalog()
                .get(&t.name)
                .cloned()
                .ok_or_else(|| PlannerError::UndefinedTable(t.name.clone()))?;
            if with_rows {
                let rows = datafusion::arrow::compute::concat_batches(&def.user_schema(), &t.rows)?;
                match def.kind {
                    RelKind::Source => input.add(&def.name, ChangeBatch::inserts(rows))?,
                    _ => self.write_source_rows(writer, &def, rows, &mut txn)?,
                }
            }
            let run = writer
                .sources
                .get(&t.name)
                .ok_or_else(|| PlannerError::UndefinedTable(t.name.clone()))?;
            let mut offsets: BTreeMap<String, u64> = run
                .splits
                .iter()
                .map(|s| (s.name.clone(), s.status.committed.load(Ordering::Acquire)))
                .collect();
            for (i, o) in &t.offsets {
                offsets.insert(run.splits[*i].name.clone(), *o);
            }
            let value = serde_json::to_vec(&offsets)
                .map_err(|e| PlannerError::DataException(e.to_string()))?;
            txn.put_meta(&offsets_key(def.id), &value);
        }
        self.commit_step(writer, txn, snapshot, input)?;
        for t in taken {
            if let Some(run) = writer.sources.get(&t.name) {
                for (i, o) in &t.offsets {
                    let st = &run.splits[*i].status;
                    st.committed.store(*o, Ordering::Release);
                }
                if with_rows {
                    // Rows per split are not kept apart in a step; the
                    // source's first split counts them all.
                    if let Some((i, _)) = t.offsets.first() {
                        run.splits[*i]
                            .status
                            .rows_in
                            .fetch_add(t.count as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes rows that arrived for a connector-fed table: appended with new
    /// row ids, or put by primary key (a later row replaces an earlier one,
    /// as RisingWave's tables do).
    fn write_source_rows(
        &self,
        writer: &mut Writer,
        def: &Arc<TableDef>,
        rows: RecordBatch,
        txn: &mut Txn,
    ) -> Result<()> {
        if writer.runtime.reads(&def.name) || !index::indexes_of(&self.indexes, def.id).is_empty() {
            txn.track_changes();
        }
        let stored = self.stored(&def.name)?;
        let mut rows = super::dml::conform(def, &def.user_schema(), rows)?;
        if def.has_rowid() {
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
        } else {
            for (k, v) in stored
                .codec()
                .encode_rows(def.id, &rows, &def.key_columns())?
            {
                txn.put(&k, &v);
            }
        }
        Ok(())
    }

    /// `FLUSH`: returns once everything the running sources had available
    /// when it was issued is committed (into every view reading them).
    pub async fn flush(&self) -> Result<()> {
        let targets: Vec<(Arc<SplitStatus>, u64)> = self
            .source_status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flatten()
            .map(|s| (s.clone(), s.flush_target()))
            .collect();
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

    /// Every running split's status (for `SHOW SOURCES` and the status
    /// view).
    pub fn source_statuses(&self) -> HashMap<String, Vec<Arc<SplitStatus>>> {
        self.source_status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
