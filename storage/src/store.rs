//! The RocksDB handle, atomic epoch commits and read snapshots.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rocksdb::{Options, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions, DB};

use crate::cache::{Lookup, StateCache, MAX_CACHED_SCAN};
use crate::keys::{self, meta_key, META_TABLE_ID};
use crate::{Result, StorageError, StoreOptions};

const EPOCH_KEY: &str = "epoch";

/// One RocksDB database; see the crate docs.
pub struct Store {
    db: Arc<DB>,
    options: StoreOptions,
    /// The last committed epoch. Commits are serialized by `commit_lock` so
    /// epochs are strictly increasing in WAL order.
    epoch: AtomicU64,
    commit_lock: Mutex<()>,
    /// Odd while a commit is being written (a seqlock): a snapshot taken
    /// with no commit in flight is known to be exactly at `epoch`, which
    /// lets it use the state cache.
    commit_seq: AtomicU64,
    cache: Arc<StateCache>,
}

/// The writes of one epoch, applied atomically by [`Store::commit`].
#[derive(Default)]
pub struct Txn {
    batch: WriteBatch,
    /// A range deletion is in the batch (the state cache is emptied).
    has_range_delete: bool,
    /// With [`Txn::track_changes`]: every `put`/`delete` in order, so the
    /// writer can turn a statement's writes into change batches.
    changes: Option<Vec<TxnChange>>,
}

/// One recorded write of a [`Txn`] (see [`Txn::track_changes`]).
#[derive(Debug, Clone)]
struct TxnChange {
    key: Vec<u8>,
    /// `Some(value)`: put; `None`: delete.
    value: Option<Vec<u8>>,
    /// The writer knows the key held nothing before this transaction.
    known_new: bool,
}

/// What a transaction did to one key: its last write, and whether the key
/// was known to hold nothing before (its first write was an insert).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyWrite {
    /// `Some(value)`: the key's new value; `None`: deleted.
    pub value: Option<Vec<u8>>,
    pub known_new: bool,
}

/// A table's recorded writes, by key (in key order).
pub type TableWrites = BTreeMap<Vec<u8>, KeyWrite>;

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.record(key, Some(value), false);
        self.batch.put(key, value);
    }
    /// A put of a key the caller has checked holds nothing (an insert).
    pub fn put_new(&mut self, key: &[u8], value: &[u8]) {
        self.record(key, Some(value), true);
        self.batch.put(key, value);
    }
    pub fn delete(&mut self, key: &[u8]) {
        self.record(key, None, false);
        self.batch.delete(key);
    }
    fn record(&mut self, key: &[u8], value: Option<&[u8]>, known_new: bool) {
        if let Some(c) = &mut self.changes {
            c.push(TxnChange {
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
                known_new,
            });
        }
    }
    /// Records the puts and deletes from now on (see
    /// [`Txn::take_table_writes`]).
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }
    /// The recorded writes of every user table (not the meta keyspace), by
    /// table id: the last write per key, and whether the key was known to
    /// be new when first written. Stops recording.
    pub fn take_table_writes(&mut self) -> BTreeMap<u32, TableWrites> {
        let mut changes: Vec<TxnChange> = self
            .changes
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.key.len() >= 4 && keys::table_id(&c.key) != keys::META_TABLE_ID)
            .collect();
        // Sorted by key (stably: a key's writes stay in order), then one
        // entry per key: its last write, new if its first write was. The
        // maps are built from sorted runs, without a search per insert.
        changes.sort_by(|a, b| a.key.cmp(&b.key));
        let mut per_table: BTreeMap<u32, Vec<(Vec<u8>, KeyWrite)>> = BTreeMap::new();
        let mut last: Option<(Vec<u8>, KeyWrite)> = None;
        let mut flush = |w: (Vec<u8>, KeyWrite)| {
            per_table.entry(keys::table_id(&w.0)).or_default().push(w);
        };
        for c in changes {
            match &mut last {
                Some((key, write)) if *key == c.key => write.value = c.value,
                _ => {
                    if let Some(w) = last.take() {
                        flush(w);
                    }
                    last = Some((
                        c.key,
                        KeyWrite {
                            value: c.value,
                            known_new: c.known_new,
                        },
                    ));
                }
            }
        }
        if let Some(w) = last {
            flush(w);
        }
        per_table
            .into_iter()
            .map(|(id, writes)| (id, writes.into_iter().collect()))
            .collect()
    }
    /// Deletes every entry of the tables `first..=last`.
    pub fn delete_tables(&mut self, first: u32, last: u32) {
        self.delete_range(&keys::table_prefix(first), &keys::table_end(last));
    }
    /// Deletes every key in `[from, to)`.
    pub fn delete_range(&mut self, from: &[u8], to: &[u8]) {
        self.has_range_delete = true;
        self.batch.delete_range(from, to);
    }
    pub fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.batch.put(meta_key(name), value);
    }
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
    pub fn len(&self) -> usize {
        self.batch.len()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store(epoch {})", self.epoch())
    }
}

impl Store {
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|error| StorageError::DataDir {
            path: path.display().to_string(),
            error,
        })?;
        // After a crash the WAL is replayed into memtables and kept there
        // (flushed later in the background) instead of being written to L0
        // files before the database opens: start-up after kill -9 costs the
        // replay only. (rust-rocksdb has no setter; set from the options
        // string first, before anything the options must keep alive.)
        let mut opts =
            Options::default().get_options_from_string("avoid_flush_during_recovery=true")?;
        opts.create_if_missing(true);
        // L0 and the level L0 compacts into are not compressed, deeper
        // levels are (LZ4), in the manner of RisingWave's defaults (its
        // three upper levels plain, then LZ4, then Zstd): the hot, recently
        // written state is read without decompressing a block per point
        // read, and flushes spend no CPU on compression; the bulk of a large
        // state still is compressed. (With dynamic level sizes, entry 1 is
        // the base level L0 compacts into, entry 2 the level below it, …)
        {
            use rocksdb::DBCompressionType::{Lz4, None as Plain};
            opts.set_compression_per_level(&[Plain, Plain, Lz4, Lz4, Lz4, Lz4, Lz4]);
        }
        opts.increase_parallelism(2);
        let cache = options.cache_size.bytes();
        // Bigger memtables make bulk loads (COPY) cheaper to absorb.
        opts.set_write_buffer_size((cache / 4).clamp(256 << 10, 64 << 20));
        // A bloom filter over the memtable's keys: operator state reads are
        // mostly point gets, and most miss the memtable (no skip-list walk).
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.05);
        let mut block = rocksdb::BlockBasedOptions::default();
        block.set_block_cache(&rocksdb::Cache::new_lru_cache(cache));
        block.set_bloom_filter(10.0, false);
        // Index and filter blocks live in the cache (so memory stays within
        // `cache_size`), partitioned so that a point read loads one small
        // partition instead of a whole large SST's filter; the top levels
        // and L0's blocks stay pinned.
        block.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        block.set_partition_filters(true);
        block.set_cache_index_and_filter_blocks(true);
        block.set_cache_index_and_filter_blocks_with_high_priority(true);
        block.set_pin_top_level_index_and_filter(true);
        block.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&block);
        let db = DB::open(&opts, path)?;
        let epoch = match db.get(meta_key(EPOCH_KEY))? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("epoch record".into()))?,
            ),
            None => 0,
        };
        let state_cache = options.state_cache_size.bytes();
        // The highest table id holding any key: ids are never reused, so
        // every table above it is empty (the cache holds those whole).
        let written_max = {
            let mut it = db.raw_iterator();
            it.seek_to_last();
            it.status()?;
            match it.key() {
                Some(k) => crate::cache::id_of(k),
                None => META_TABLE_ID as u64,
            }
        };
        let cache = Arc::new(StateCache::new(state_cache, written_max));
        cache.end_commit(epoch, true);
        Ok(Store {
            db: Arc::new(db),
            options,
            epoch: AtomicU64::new(epoch),
            commit_lock: Mutex::new(()),
            commit_seq: AtomicU64::new(0),
            cache,
        })
    }

    /// The last committed epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Applies `txn` atomically as the next epoch and returns that epoch. The
    /// write is in the WAL when this returns (and fsynced with `sync_commits`).
    pub fn commit(&self, mut txn: Txn) -> Result<u64> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let before = self.epoch.load(Ordering::Acquire);
        let epoch = before + 1;
        txn.batch.put(meta_key(EPOCH_KEY), epoch.to_be_bytes());
        let mut wo = WriteOptions::default();
        wo.set_sync(self.options.sync_commits);
        self.commit_seq.fetch_add(1, Ordering::AcqRel);
        if txn.has_range_delete {
            self.cache.clear();
        }
        self.cache.begin_commit(|apply| {
            struct Apply<'a>(&'a mut crate::cache::ApplyWrite<'a>);
            impl rocksdb::WriteBatchIterator for Apply<'_> {
                fn put(&mut self, key: &[u8], value: &[u8]) {
                    (self.0)(key, Some(value))
                }
                fn delete(&mut self, key: &[u8]) {
                    (self.0)(key, None)
                }
            }
            txn.batch.iterate(&mut Apply(apply));
        });
        let written = self.db.write_opt(txn.batch, &wo);
        let now = if written.is_ok() { epoch } else { before };
        self.epoch.store(now, Ordering::Release);
        self.cache.end_commit(now, written.is_ok());
        self.commit_seq.fetch_add(1, Ordering::AcqRel);
        written?;
        Ok(epoch)
    }

    /// The epoch the store is exactly at, if no commit is being written.
    fn quiet_epoch(&self) -> Option<u64> {
        let seq = self.commit_seq.load(Ordering::Acquire);
        seq.is_multiple_of(2)
            .then(|| self.epoch.load(Ordering::Acquire))
    }

    /// Reads one key at the latest committed state through the state cache.
    pub fn get_cached(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(epoch) = self.quiet_epoch() else {
            return self.get(key);
        };
        match self.cache.get(epoch, key) {
            Lookup::Hit(v) => Ok(Some(v)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => {
                let v = self.db.get(key)?;
                if let Some(v) = &v {
                    // Remembered only if the cache is still at `epoch`.
                    self.cache.remember(epoch, key, v);
                }
                Ok(v)
            }
        }
    }

    /// Table `id` is not held whole in the state cache (see
    /// [`StateCache::not_whole`]).
    pub fn cache_not_whole(&self, id: u32) {
        self.cache.not_whole(id);
    }

    /// The state cache's entries, complete ranges and bytes (tests).
    pub fn cache_stats(&self) -> (usize, usize, usize) {
        self.cache.stats()
    }

    /// Reads one key at the latest committed state.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key)?)
    }

    /// Reads a meta record at the latest state.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(meta_key(name))?)
    }

    /// A consistent read view of everything committed so far.
    pub fn snapshot(&self) -> Snapshot {
        let seq = self.commit_seq.load(Ordering::Acquire);
        let snap = self.db.snapshot();
        let epoch = self.epoch();
        // Exactly at `epoch` only if no commit was in flight meanwhile.
        let cache_epoch = (seq.is_multiple_of(2) && self.commit_seq.load(Ordering::Acquire) == seq)
            .then_some(epoch);
        // SAFETY: the snapshot borrows `*self.db`; we keep an `Arc` of that DB
        // in the same struct and drop the snapshot first (field order), so the
        // borrow never outlives the database.
        let snap: SnapshotWithThreadMode<'static, DB> = unsafe { std::mem::transmute(snap) };
        Snapshot {
            inner: Arc::new(SnapshotInner {
                snap,
                _db: self.db.clone(),
                epoch,
                cache_epoch,
                cache: self.cache.clone(),
            }),
            fresh_from: None,
        }
    }

    /// Flushes memtables to SST files (used on clean shutdown so the WAL
    /// replay at the next start is short).
    pub fn flush(&self) -> Result<()> {
        Ok(self.db.flush()?)
    }
}

struct SnapshotInner {
    // Must stay the first field: dropped before `_db`.
    snap: SnapshotWithThreadMode<'static, DB>,
    _db: Arc<DB>,
    epoch: u64,
    /// `Some(epoch)` when the snapshot is known to be exactly at `epoch`
    /// (it may then read the state cache).
    cache_epoch: Option<u64>,
    cache: Arc<StateCache>,
}

/// A read view at one epoch; cheap to clone and safe to send across threads.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotInner>,
    /// Keys from this one on (table ids at or above a bound) read as absent
    /// without asking RocksDB: see [`Snapshot::with_new_tables_from`].
    fresh_from: Option<[u8; 4]>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot(epoch {})", self.inner.epoch)
    }
}

impl Snapshot {
    /// The epoch this snapshot reflects (at least).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// This snapshot, but with every table id from `first_new` on known to
    /// hold nothing (ids are allocated upwards and never reused, so tables
    /// created after the snapshot was taken are empty in it). A new view's
    /// backfill reads its operators' brand-new state through this: each
    /// lookup of a key not yet written in the step is answered without a
    /// RocksDB read.
    pub fn with_new_tables_from(&self, first_new: u32) -> Snapshot {
        Snapshot {
            inner: self.inner.clone(),
            fresh_from: Some(keys::table_prefix(first_new)),
        }
    }

    /// `to`, lowered to the first key known absent (see
    /// [`Snapshot::with_new_tables_from`]).
    fn clip<'a>(&'a self, to: &'a [u8]) -> &'a [u8] {
        match &self.fresh_from {
            Some(fresh) if to > fresh.as_slice() => fresh.as_slice(),
            _ => to,
        }
    }

    fn known_absent(&self, key: &[u8]) -> bool {
        self.fresh_from.is_some_and(|f| key >= f.as_slice())
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        Ok(self.inner.snap.get(key)?)
    }

    /// [`Snapshot::get`] through the state cache (for keys read again and
    /// again: operator state, views' rows, rows by primary key).
    pub fn get_cached(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.known_absent(key) {
            return Ok(None);
        }
        let Some(epoch) = self.inner.cache_epoch else {
            return self.get(key);
        };
        match self.inner.cache.get(epoch, key) {
            Lookup::Hit(v) => Ok(Some(v)),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => {
                let v = self.inner.snap.get(key)?;
                if let Some(v) = &v {
                    self.inner.cache.remember(epoch, key, v);
                }
                Ok(v)
            }
        }
    }

    /// [`Snapshot::scan`] through the state cache: answered from memory if
    /// the range is known complete there; otherwise read from RocksDB and,
    /// if small, remembered as complete.
    pub fn scan_cached(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<Option<Vec<u8>>> {
        let to = self.clip(to);
        if from >= to {
            return Ok(None);
        }
        let Some(epoch) = self.inner.cache_epoch else {
            return self.scan(from, to, limit, f);
        };
        if let Some(answer) = self.inner.cache.scan(epoch, from, to, limit, &mut f) {
            return answer;
        }
        // One entry past the limit is read (not passed to `f`): it is the
        // resume key, and remembering it lets the cache answer this scan
        // again.
        let mut seen: Option<Vec<(Vec<u8>, Vec<u8>)>> = Some(Vec::new());
        let mut n = 0usize;
        let mut resume = None;
        self.scan(from, to, limit.saturating_add(1), |k, v| {
            if let Some(s) = &mut seen {
                if s.len() < MAX_CACHED_SCAN {
                    s.push((k.to_vec(), v.to_vec()));
                } else {
                    seen = None;
                }
            }
            n += 1;
            if n > limit {
                resume = Some(k.to_vec());
                return Ok(());
            }
            f(k, v)
        })?;
        if let Some(seen) = seen {
            // Complete up to `to`, or through the last key read.
            let end = match &resume {
                None => to.to_vec(),
                Some(k) => {
                    let mut end = k.clone();
                    end.push(0);
                    end
                }
            };
            self.inner.cache.remember_range(epoch, from, &end, &seen);
        }
        Ok(resume)
    }

    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        if self.known_absent(key) {
            return Ok(false);
        }
        if let Some(epoch) = self.inner.cache_epoch {
            if let Some(known) = self.inner.cache.contains(epoch, key) {
                return Ok(known);
            }
        }
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&self.inner.snap);
        Ok(self.inner._db.get_pinned_opt(key, &ro)?.is_some())
    }

    /// Calls `f(key, value)` for keys in `[from, to)` in order, at most `limit`
    /// times. Returns the key to resume from if the limit was reached.
    pub fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<Option<Vec<u8>>> {
        let to = self.clip(to);
        if from >= to {
            return Ok(None);
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.inner.snap.raw_iterator_opt(ro);
        it.seek(from);
        let mut n = 0;
        while it.valid() {
            let (k, v) = (it.key().expect("valid"), it.value().expect("valid"));
            if n == limit {
                return Ok(Some(k.to_vec()));
            }
            f(k, v)?;
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(None)
    }

    /// The last key in `[from, to)`, if any.
    /// Every entry of table `table_id`, in key order.
    pub fn scan_table(
        &self,
        table_id: u32,
        f: impl FnMut(&[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.scan(
            &keys::table_prefix(table_id),
            &keys::table_end(table_id),
            usize::MAX,
            f,
        )?;
        Ok(())
    }

    /// Whether table `table_id` holds no entry.
    pub fn table_is_empty(&self, table_id: u32) -> Result<bool> {
        Ok(self
            .last_key(&keys::table_prefix(table_id), &keys::table_end(table_id))?
            .is_none())
    }

    pub fn last_key(&self, from: &[u8], to: &[u8]) -> Result<Option<Vec<u8>>> {
        let to = self.clip(to);
        if from >= to {
            return Ok(None);
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(from.to_vec());
        ro.set_iterate_upper_bound(to.to_vec());
        let mut it = self.inner.snap.raw_iterator_opt(ro);
        it.seek_to_last();
        it.status()?;
        Ok(it.key().map(|k| k.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes are grouped by table, the last write per key wins, a key
    /// stays known-new only if its first write was an insert, and the meta
    /// keyspace is left out.
    #[test]
    fn table_writes_keep_the_last_write_per_key() {
        let mut t = Txn::new();
        t.put(b"\0\0\0\x05x", b"ignored: not tracked yet");
        t.track_changes();
        t.put_new(b"\0\0\0\x05a", b"1");
        t.put(b"\0\0\0\x05a", b"2");
        t.put(b"\0\0\0\x05b", b"3");
        t.delete(b"\0\0\0\x05b");
        t.put(b"\0\0\0\x06a", b"4");
        t.put_meta("epoch", b"9");
        t.put(b"\0\0\0\0other", b"meta");
        let w = t.take_table_writes();
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), vec![5, 6]);
        let five: Vec<(&[u8], KeyWrite)> = w[&5]
            .iter()
            .map(|(k, v)| (k.as_slice(), v.clone()))
            .collect();
        assert_eq!(
            five,
            vec![
                (
                    &b"\0\0\0\x05a"[..],
                    KeyWrite {
                        value: Some(b"2".to_vec()),
                        known_new: true
                    }
                ),
                (
                    &b"\0\0\0\x05b"[..],
                    KeyWrite {
                        value: None,
                        known_new: false
                    }
                ),
            ]
        );
        assert!(t.take_table_writes().is_empty(), "recording stops");
    }

    /// Tables at or above the bound read as empty (gets, scans, last key);
    /// those below are read as they are, also by scans that cross it.
    #[test]
    fn new_tables_read_as_empty() {
        let dir = std::env::temp_dir().join(format!("freshet-store-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let mut t = Txn::new();
        t.put(b"\0\0\0\x05a", b"old");
        t.put(b"\0\0\0\x07a", b"stray");
        store.commit(t).unwrap();
        let snap = store.snapshot().with_new_tables_from(7);
        assert_eq!(snap.get(b"\0\0\0\x05a").unwrap(), Some(b"old".to_vec()));
        assert_eq!(snap.get(b"\0\0\0\x07a").unwrap(), None);
        assert!(!snap.exists(b"\0\0\0\x07a").unwrap());
        let mut seen = Vec::new();
        snap.scan(b"\0\0\0\x01", b"\xff", usize::MAX, |k, _| {
            seen.push(k.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![b"\0\0\0\x05a".to_vec()]);
        assert_eq!(
            snap.last_key(b"\0\0\0\x01", b"\xff").unwrap(),
            Some(b"\0\0\0\x05a".to_vec())
        );
        assert_eq!(snap.last_key(b"\0\0\0\x07", b"\0\0\0\x08").unwrap(), None);
        // The plain snapshot still sees everything.
        assert_eq!(
            store.snapshot().get(b"\0\0\0\x07a").unwrap(),
            Some(b"stray".to_vec())
        );
        drop((snap, store));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn snapshot_isolated_from_later_commits_and_epochs_persist() {
        let dir = std::env::temp_dir().join(format!("freshet-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir, StoreOptions::default()).unwrap();
            let mut t = Txn::new();
            t.put(b"\0\0\0\x01a", b"1");
            assert_eq!(store.commit(t).unwrap(), 1);
            let snap = store.snapshot();
            let mut t = Txn::new();
            t.put(b"\0\0\0\x01b", b"2");
            t.delete(b"\0\0\0\x01a");
            assert_eq!(store.commit(t).unwrap(), 2);
            let mut seen = vec![];
            snap.scan(b"\0\0\0\x01", b"\0\0\0\x02", 10, |k, _| {
                seen.push(k.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, vec![b"\0\0\0\x01a".to_vec()]);
            assert!(store.snapshot().get(b"\0\0\0\x01a").unwrap().is_none());
        }
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        assert_eq!(store.epoch(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
