//! The in-memory state cache in front of RocksDB (DESIGN.md: "operator state
//! is kept in state tables in storage, with an in-memory cache in front").
//!
//! It holds the latest committed value of keys that were read (point reads
//! that found a row) and *complete ranges*: key ranges whose every entry is
//! in the cache, remembered after a small scan read them all, so a later
//! scan of the range — or a point read of a key in it that is not there —
//! is answered from memory. Operators read the same few keys and prefixes
//! over and over (a join key's rows, a group's state, the first entries of
//! a min/max group), so most of a step's reads stop reaching RocksDB.
//!
//! Consistency: the cache describes exactly one epoch, the last committed
//! one. A commit marks it as being written (nobody reads it or adds to it
//! meanwhile), applies its writes to the keys and ranges held, and then
//! stamps the new epoch; a failed commit empties it. Reads through a
//! snapshot use it only when the snapshot is of that same epoch (older
//! snapshots read RocksDB), and add what they read only if the cache is
//! still at their epoch. Readers never wait for a commit: when the cache is
//! locked they read RocksDB.
//!
//! *New tables* are held whole. Table ids are never reused, so every table
//! above the highest id that has ever been written is empty; the cache
//! knows that without reading it (`fresh_from`), and from then on it
//! follows every write to those tables. A table created while the server
//! runs — a view's state tables, a new base table — is therefore answered
//! from memory entirely, including reads of keys it does not hold (a join
//! or min/max state row being inserted for the first time), until the
//! budget runs out. After a restart those tables fall back to the entries
//! and ranges read since.
//!
//! Memory is bounded by a byte budget; when an insertion would exceed it the
//! cache is emptied (and stops holding the tables written so far whole) and
//! refills with what is read next. State larger than the cache stays
//! correct, it is read from RocksDB.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::keys;
use std::sync::RwLock;

/// Scans returning more entries than this are not remembered (a table scan
/// must not flush the operators' working set).
pub const MAX_CACHED_SCAN: usize = 256;

/// Complete ranges spanning more tables than this are not kept.
const MAX_RANGE_TABLES: u32 = 16;

/// Bytes charged per entry on top of its key and value: the map's node
/// share and two allocations. Measured: holding ~2M state rows of ~40
/// bytes (key and value) grew the server's RSS by ~400 MB, ~200 bytes each.
const ENTRY_OVERHEAD: usize = 160;

pub struct StateCache {
    budget: usize,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The epoch the contents describe; `None` while a commit is applied.
    epoch: Option<u64>,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Complete ranges, `start → end` (exclusive), disjoint.
    ranges: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Table prefixes (first 4 key bytes) with anything cached, so commits
    /// skip the writes of tables nobody reads through the cache quickly.
    tables: HashSet<u32>,
    bytes: usize,
    /// Tables with this id and above are held whole: they were empty when
    /// the cache started following them, and every write since is applied.
    fresh_from: u64,
    /// The highest table id any commit (or the store before it was
    /// opened) has written; a clear moves `fresh_from` past it.
    written_max: u64,
    /// Tables from `fresh_from` up that are not held whole (see
    /// [`StateCache::not_whole`]).
    not_whole: HashSet<u64>,
}

/// Receives a commit's writes in order: `(key, Some(value))` for a put,
/// `(key, None)` for a delete.
pub type ApplyWrite<'a> = dyn FnMut(&[u8], Option<&[u8]>) + 'a;

/// What the cache knows about one key.
pub enum Lookup {
    Hit(Vec<u8>),
    Absent,
    Unknown,
}

/// The table id a key belongs to (see [`keys::table_id`]), widened.
pub(crate) fn id_of(key: &[u8]) -> u64 {
    keys::table_id(key) as u64
}

impl Inner {
    /// Whether `key`'s table is held whole.
    fn fresh(&self, key: &[u8]) -> bool {
        let id = id_of(key);
        id >= self.fresh_from && !self.not_whole.contains(&id)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.ranges.clear();
        self.tables.clear();
        self.bytes = 0;
        self.fresh_from = self.fresh_from.max(self.written_max + 1);
    }

    /// The complete range holding `key`, if any.
    fn range_of(&self, key: &[u8]) -> Option<(&Vec<u8>, &Vec<u8>)> {
        self.ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .filter(|(_, end)| key < end.as_slice())
    }

    /// The end of the complete range holding `from`, if any (`None`: no
    /// end; from a table held whole, every table after it is held whole
    /// too, up to the first one that is not).
    fn complete_from(&self, from: &[u8]) -> Option<Option<Cow<'_, [u8]>>> {
        if self.fresh(from) {
            let id = id_of(from);
            let next_not_whole = self.not_whole.iter().filter(|&&t| t > id).min();
            return Some(
                next_not_whole.map(|&t| Cow::Owned(keys::table_prefix(t as u32).to_vec())),
            );
        }
        self.range_of(from)
            .map(|(_, end)| Some(Cow::Borrowed(end.as_slice())))
    }

    /// What the cache knows of `key`: `Some(Some(value))`, `Some(None)`
    /// (known absent) or `None` (unknown).
    fn known(&self, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        if let Some(v) = self.entries.get(key) {
            return Some(Some(v));
        }
        (self.fresh(key) || self.range_of(key).is_some()).then_some(None)
    }

    fn put_entry(&mut self, key: &[u8], value: &[u8]) {
        if self.fresh(key) {
            // Mostly new keys (a load, a state row inserted): one search.
            // Tables held whole need no mark in `tables`.
            match self.entries.insert(key.to_vec(), value.to_vec()) {
                Some(old) => self.bytes = self.bytes + value.len() - old.len(),
                None => self.bytes += key.len() + value.len() + ENTRY_OVERHEAD,
            }
            return;
        }
        match self.entries.get_mut(key) {
            Some(old) => {
                self.bytes = self.bytes + value.len() - old.len();
                old.clear();
                old.extend_from_slice(value);
            }
            None => {
                self.bytes += key.len() + value.len() + ENTRY_OVERHEAD;
                self.entries.insert(key.to_vec(), value.to_vec());
                self.tables.insert(keys::table_id(key));
            }
        }
    }

    fn remove_entry(&mut self, key: &[u8]) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= key.len() + old.len() + ENTRY_OVERHEAD;
        }
    }

    /// Marks `[from, to)` complete, merging it with the ranges it touches.
    fn add_range(&mut self, from: &[u8], to: &[u8]) {
        let (mut start, mut end) = (from.to_vec(), to.to_vec());
        let touching: Vec<Vec<u8>> = self
            .ranges
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(to)))
            .rev()
            .take_while(|(_, e)| e.as_slice() >= from)
            .map(|(s, _)| s.clone())
            .collect();
        for s in touching {
            let Some(e) = self.ranges.remove(&s) else {
                continue;
            };
            self.bytes -= s.len() + e.len() + ENTRY_OVERHEAD;
            if s < start {
                start = s;
            }
            if e > end {
                end = e;
            }
        }
        // Every table the range spans is marked, so that commits follow its
        // writes; a range across very many tables is not kept (forgetting
        // that a range is complete is always safe).
        let (first, last) = (keys::table_id(&start), keys::table_id(&end));
        if last.saturating_sub(first) > MAX_RANGE_TABLES {
            return;
        }
        for t in first..=last {
            self.tables.insert(t);
        }
        self.bytes += start.len() + end.len() + ENTRY_OVERHEAD;
        self.ranges.insert(start, end);
    }

    /// A committed write of `key` (`None`: delete).
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let id = id_of(key);
        self.written_max = self.written_max.max(id);
        if self.fresh(key) {
            match value {
                Some(v) => self.put_entry(key, v),
                None => self.remove_entry(key),
            }
            return;
        }
        if !self.tables.contains(&keys::table_id(key)) {
            return;
        }
        match value {
            Some(v) => {
                if self.entries.contains_key(key) || self.range_of(key).is_some() {
                    self.put_entry(key, v);
                }
            }
            None => self.remove_entry(key),
        }
    }
}

impl StateCache {
    /// A cache of at most `budget` bytes over a store whose highest
    /// written table id is `written_max`: the tables above it are empty.
    pub fn new(budget: usize, written_max: u64) -> Self {
        Self {
            budget,
            inner: RwLock::new(Inner {
                fresh_from: written_max + 1,
                written_max,
                ..Inner::default()
            }),
        }
    }

    /// What the cache knows of `key` at `epoch`.
    pub fn get(&self, epoch: u64, key: &[u8]) -> Lookup {
        let Ok(c) = self.inner.try_read() else {
            return Lookup::Unknown;
        };
        if c.epoch != Some(epoch) {
            return Lookup::Unknown;
        }
        match c.known(key) {
            Some(Some(v)) => Lookup::Hit(v.clone()),
            Some(None) => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    /// Stops holding table `id` whole (it is read like an old table from
    /// now on). For tables mostly bulk-loaded and read by key now and
    /// then, such as base tables: following every write of a load costs
    /// more than the reads it saves.
    pub fn not_whole(&self, id: u32) {
        let mut c = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let id = id as u64;
        if id < c.fresh_from || !c.not_whole.insert(id) {
            return;
        }
        let from = keys::table_prefix(id as u32).to_vec();
        let held: Vec<Vec<u8>> = c
            .entries
            .range::<[u8], _>((Bound::Included(from.as_slice()), Bound::Unbounded))
            .take_while(|(k, _)| id_of(k) == id)
            .map(|(k, _)| k.clone())
            .collect();
        for k in held {
            c.remove_entry(&k);
        }
    }

    /// Whether `key` holds a value at `epoch`, if the cache knows.
    pub fn contains(&self, epoch: u64, key: &[u8]) -> Option<bool> {
        let c = self.inner.try_read().ok()?;
        if c.epoch != Some(epoch) {
            return None;
        }
        c.known(key).map(|v| v.is_some())
    }

    /// Remembers that `key` holds `value` at `epoch`.
    pub fn remember(&self, epoch: u64, key: &[u8], value: &[u8]) {
        let Ok(mut c) = self.inner.try_write() else {
            return;
        };
        if c.epoch != Some(epoch) || c.fresh(key) {
            return;
        }
        if c.bytes + key.len() + value.len() + ENTRY_OVERHEAD > self.budget {
            c.clear();
            if key.len() + value.len() + ENTRY_OVERHEAD > self.budget {
                return;
            }
        }
        c.put_entry(key, value);
    }

    /// If the cache knows the first `limit` entries of `[from, to)` and
    /// whether there is another (the range is complete up to `to`, or up to
    /// past its `limit + 1`-th entry) at `epoch`: calls `f` for them in
    /// order and returns the resume key as [`crate::Snapshot::scan`] does;
    /// `None` if the cache cannot answer (nothing is called then).
    pub fn scan<E>(
        &self,
        epoch: u64,
        from: &[u8],
        to: &[u8],
        limit: usize,
        f: &mut impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Option<Result<Option<Vec<u8>>, E>> {
        let c = self.inner.try_read().ok()?;
        if c.epoch != Some(epoch) {
            return None;
        }
        let known_to = c.complete_from(from)?;
        let whole = known_to.as_deref().is_none_or(|k| to <= k);
        let upto = match &known_to {
            Some(k) if !whole => k.as_ref(),
            _ => to,
        };
        let range = c
            .entries
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(upto)));
        if !whole && range.clone().nth(limit).is_none() {
            // The range ends before the entry that tells whether the
            // limit was reached.
            return None;
        }
        for (n, (k, v)) in range.enumerate() {
            if n == limit {
                return Some(Ok(Some(k.clone())));
            }
            if let Err(e) = f(k, v) {
                return Some(Err(e));
            }
        }
        Some(Ok(None))
    }

    /// Remembers that `[from, to)` holds exactly `entries` at `epoch`.
    pub fn remember_range(
        &self,
        epoch: u64,
        from: &[u8],
        to: &[u8],
        entries: &[(Vec<u8>, Vec<u8>)],
    ) {
        let Ok(mut c) = self.inner.try_write() else {
            return;
        };
        if c.epoch != Some(epoch) || from >= to {
            return;
        }
        let need: usize = entries
            .iter()
            .map(|(k, v)| k.len() + v.len() + ENTRY_OVERHEAD)
            .sum::<usize>()
            + from.len()
            + to.len()
            + ENTRY_OVERHEAD;
        if c.bytes + need > self.budget {
            c.clear();
            if need > self.budget {
                return;
            }
        }
        for (k, v) in entries {
            c.put_entry(k, v);
        }
        c.add_range(from, to);
    }

    /// A commit is about to write: the cache stops answering, and takes
    /// `writes` (in order) into its keys and ranges. Call
    /// [`StateCache::end_commit`] once the commit is durable or has failed.
    pub fn begin_commit(&self, writes: impl FnOnce(&mut ApplyWrite<'_>)) {
        let mut c = self.inner.write().unwrap_or_else(|e| e.into_inner());
        c.epoch = None;
        let budget = self.budget;
        let mut apply = |k: &[u8], v: Option<&[u8]>| {
            c.apply(k, v);
            if c.bytes > budget {
                // Mid-commit, so that a bulk load never holds more than the
                // budget; the tables written so far stop being held whole.
                c.clear();
            }
        };
        writes(&mut apply);
    }

    /// Empties the cache (a range deletion, whose keys it cannot follow).
    pub fn clear(&self) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The commit of `epoch` is durable (`ok`), or failed and the store is
    /// still at `epoch`: the cache describes `epoch` again.
    pub fn end_commit(&self, epoch: u64, ok: bool) {
        let mut c = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if !ok {
            c.clear();
        }
        c.epoch = Some(epoch);
    }

    /// Entries and complete ranges held, and the bytes charged (tests).
    pub fn stats(&self) -> (usize, usize, usize) {
        let c = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (c.entries.len(), c.ranges.len(), c.bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use freshet_sqllogictest::rng::Rng;

    use crate::{Store, StoreOptions, Txn};

    type Model = BTreeMap<Vec<u8>, Vec<u8>>;
    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    /// `scan_cached`'s entries and resume key.
    fn cached_scan(
        snap: &crate::Snapshot,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> (Entries, Option<Vec<u8>>) {
        let mut got = Vec::new();
        let resume = snap
            .scan_cached(from, to, limit, |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        (got, resume)
    }

    fn key(rng: &mut Rng) -> Vec<u8> {
        // Two tables, two-level keys: prefixes of one byte share entries.
        let mut k = vec![0, 0, 0, 5 + rng.below(2) as u8];
        k.push(rng.below(6) as u8);
        k.push(rng.below(8) as u8);
        k
    }

    fn model_scan(m: &Model, from: &[u8], to: &[u8], limit: usize) -> (Entries, Option<Vec<u8>>) {
        let all: Vec<_> = m
            .range(from.to_vec()..to.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let resume = all.get(limit).map(|(k, _)| k.clone());
        (all.into_iter().take(limit).collect(), resume)
    }

    /// Reads through the cache equal reads of a model of the committed
    /// data, for budgets from "holds almost nothing" to "holds everything",
    /// with older snapshots, range deletions and repeated reads mixed in.
    #[test]
    fn cached_reads_match_a_model() {
        for (case, budget) in [300usize, 2_000, 20_000, 1 << 20].into_iter().enumerate() {
            let dir = std::env::temp_dir()
                .join(format!("freshet-cache-model-{}-{case}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let store = Store::open(
                &dir,
                StoreOptions {
                    state_cache_size: crate::ByteSize(budget),
                    ..Default::default()
                },
            )
            .unwrap();
            let mut rng = Rng::new(case as u64 + 7);
            let mut model: Model = BTreeMap::new();
            let mut old: Option<(crate::Snapshot, Model)> = None;
            let mut cache_answers = 0;
            let mut store = store;
            if case % 2 == 1 {
                store.cache_not_whole(6);
            }
            for round in 0..400 {
                if round == 50 {
                    // Table 7 has entries by now: they are dropped.
                    store.cache_not_whole(7);
                }
                if round == 200 {
                    // Reopened: the tables written so far are not new any
                    // more, so the second half reads through entries and
                    // ranges instead of whole tables.
                    old = None;
                    drop(store);
                    store = Store::open(
                        &dir,
                        StoreOptions {
                            state_cache_size: crate::ByteSize(budget),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                }
                // Reads (several, so that later ones can hit the cache).
                let snap = store.snapshot();
                for _ in 0..12 {
                    let k = key(&mut rng);
                    assert_eq!(
                        snap.get_cached(&k).unwrap(),
                        model.get(&k).cloned(),
                        "get {k:?} round {round}"
                    );
                    assert_eq!(store.get_cached(&k).unwrap(), model.get(&k).cloned());
                    let k = key(&mut rng);
                    assert_eq!(
                        snap.exists(&k).unwrap(),
                        model.contains_key(&k),
                        "exists {k:?}"
                    );
                    let mut from = key(&mut rng);
                    from.truncate(4 + rng.below(3));
                    let to = crate::keys::prefix_successor(&from).unwrap();
                    let limit = [1, 2, 5, usize::MAX][rng.below(4)];
                    let (got, resume) = cached_scan(&snap, &from, &to, limit);
                    let (want, want_resume) = model_scan(&model, &from, &to, limit);
                    assert_eq!(got, want, "scan {from:?} limit {limit} round {round}");
                    assert_eq!(resume, want_resume);
                }
                // A scan across both tables (and the empty ones after).
                let from = vec![0, 0, 0, 5, rng.below(6) as u8];
                let to =
                    [vec![0, 0, 0, 6, rng.below(6) as u8], vec![0, 0, 0, 9]][rng.below(2)].clone();
                let limit = [3, usize::MAX][rng.below(2)];
                let (got, resume) = cached_scan(&snap, &from, &to, limit);
                let (want, want_resume) = model_scan(&model, &from, &to, limit);
                assert_eq!(got, want, "scan across tables, round {round}");
                assert_eq!(resume, want_resume);
                if let Some((s, m)) = &old {
                    let k = key(&mut rng);
                    assert_eq!(
                        s.get_cached(&k).unwrap(),
                        m.get(&k).cloned(),
                        "old snapshot"
                    );
                    let (got, _) = cached_scan(s, &[0, 0, 0, 5], &[0, 0, 0, 7], usize::MAX);
                    assert_eq!(
                        got,
                        model_scan(m, &[0, 0, 0, 5], &[0, 0, 0, 7], usize::MAX).0
                    );
                }
                if rng.below(10) == 0 {
                    old = Some((store.snapshot(), model.clone()));
                }
                cache_answers += store.cache_stats().0;
                // A commit.
                let mut t = Txn::new();
                for _ in 0..rng.below(6) {
                    let k = key(&mut rng);
                    if rng.below(3) == 0 {
                        t.delete(&k);
                        model.remove(&k);
                    } else {
                        let v = vec![round as u8; 1 + rng.below(20)];
                        t.put(&k, &v);
                        model.insert(k, v);
                    }
                }
                if rng.below(4) == 0 {
                    // Table 7 is read only by the scans across tables.
                    let k = vec![0, 0, 0, 7, rng.below(4) as u8];
                    let v = vec![round as u8; 3];
                    t.put(&k, &v);
                    model.insert(k, v);
                }
                if rng.below(40) == 0 {
                    let from = vec![0, 0, 0, 5, rng.below(6) as u8];
                    let to = vec![0, 0, 0, 5, from[4] + 2];
                    t.delete_range(&from, &to);
                    let doomed: Vec<_> = model
                        .range(from.clone()..to.clone())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        model.remove(&k);
                    }
                }
                store.commit(t).unwrap();
                assert!(store.cache_stats().2 <= budget, "budget {budget} kept");
            }
            if budget >= 20_000 {
                assert!(cache_answers > 0, "the cache held entries");
            }
            drop((old, store));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod range_tests {
    use crate::{Store, StoreOptions, Txn};

    /// A complete range across tables follows writes to a table in its
    /// middle that had no entry when the range was read.
    #[test]
    fn range_across_tables_follows_writes_to_a_table_inside_it() {
        let dir = std::env::temp_dir().join(format!("freshet-cache-span-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let mut t = Txn::new();
        t.put(&[0, 0, 0, 5, 1], b"a");
        store.commit(t).unwrap();
        // Reopened, tables up to 5 are not new any more: only ranges read
        // are complete. (Tables 6 and up still are held whole.)
        drop(store);
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let scan = |store: &Store| {
            let mut seen = Vec::new();
            store
                .snapshot()
                .scan_cached(&[0, 0, 0, 5], &[0, 0, 0, 9], usize::MAX, |k, _| {
                    seen.push(k.to_vec());
                    Ok(())
                })
                .unwrap();
            seen
        };
        assert_eq!(scan(&store), vec![vec![0, 0, 0, 5, 1]]);
        assert_eq!(store.cache_stats().1, 1, "the range is remembered");
        let mut t = Txn::new();
        t.put(&[0, 0, 0, 7, 1], b"b");
        store.commit(t).unwrap();
        assert_eq!(
            scan(&store),
            vec![vec![0, 0, 0, 5, 1], vec![0, 0, 0, 7, 1]],
            "the write to table 7 is seen"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod new_table_tests {
    use crate::{Store, StoreOptions, Txn};

    fn open(dir: &std::path::Path, budget: usize) -> Store {
        Store::open(
            dir,
            StoreOptions {
                state_cache_size: crate::ByteSize(budget),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn put(store: &Store, keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut t = Txn::new();
        for k in keys {
            t.put(&k, b"value");
        }
        store.commit(t).unwrap();
    }

    /// Tables above every id written are held whole from their first write,
    /// without a read; after a reopen only tables still unwritten are.
    #[test]
    fn new_tables_are_held_whole_until_reopened_or_over_budget() {
        let dir = std::env::temp_dir().join(format!("freshet-cache-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = open(&dir, 1 << 20);
        put(&store, (0..10u8).map(|i| vec![0, 0, 0, 3, i]));
        assert_eq!(store.cache_stats().0, 10, "table 3 is held whole");
        let snap = store.snapshot();
        assert_eq!(
            snap.get_cached(&[0, 0, 0, 3, 4]).unwrap(),
            Some(b"value".to_vec())
        );
        assert_eq!(snap.get_cached(&[0, 0, 0, 3, 40]).unwrap(), None);
        let mut seen = 0;
        snap.scan_cached(&[0, 0, 0, 3], &[0, 0, 0, 9], usize::MAX, |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 10);
        let mut t = Txn::new();
        t.delete(&[0, 0, 0, 3, 4]);
        store.commit(t).unwrap();
        assert_eq!(store.cache_stats().0, 9, "deletes are followed");
        assert_eq!(store.snapshot().get_cached(&[0, 0, 0, 3, 4]).unwrap(), None);
        drop((snap, store));

        let store = open(&dir, 1 << 20);
        put(&store, [vec![0, 0, 0, 3, 77]]);
        assert_eq!(
            store.cache_stats().0,
            0,
            "table 3 is not new after a reopen"
        );
        put(&store, [vec![0, 0, 0, 4, 1]]);
        assert_eq!(store.cache_stats().0, 1, "table 4 still is");
        store.cache_not_whole(8);
        put(&store, (0..5u8).map(|i| vec![0, 0, 0, 8, i]));
        assert_eq!(store.cache_stats().0, 1, "table 8 is not held whole");
        assert!(store.snapshot().exists(&[0, 0, 0, 8, 3]).unwrap());
        let snap = store.snapshot();
        assert_eq!(
            snap.get_cached(&[0, 0, 0, 3, 77]).unwrap(),
            Some(b"value".to_vec())
        );
        assert_eq!(snap.get_cached(&[0, 0, 0, 3, 4]).unwrap(), None);
        drop((snap, store));

        // A load larger than the budget: the cache stays within it and the
        // table is read from RocksDB afterwards.
        let store = open(&dir, 2_000);
        put(&store, (0..100u8).map(|i| vec![0, 0, 0, 5, i]));
        assert!(store.cache_stats().2 <= 2_000);
        put(&store, [vec![0, 0, 0, 5, 200]]);
        let snap = store.snapshot();
        for i in [0u8, 50, 99, 200] {
            assert_eq!(
                snap.get_cached(&[0, 0, 0, 5, i]).unwrap(),
                Some(b"value".to_vec())
            );
        }
        assert_eq!(snap.get_cached(&[0, 0, 0, 5, 150]).unwrap(), None);
        drop((snap, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
