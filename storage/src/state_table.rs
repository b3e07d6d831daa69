//! State tables: keyed rows that operators (and, later, view contents) keep
//! in storage, read-your-writes within a step and written at the epoch
//! commit together with every other change of the step.
//!
//! API in the shape of RisingWave's `StateTable`: `insert`, `delete`, `get`,
//! `prefix_scan`, and `commit_into(txn)` at the epoch boundary. Until then
//! changes live in an in-memory write buffer that reads consult first, so an
//! operator sees its own writes of the current step.

use std::collections::BTreeMap;
use std::ops::Bound;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use crate::{keys, Result, RowCodec, Snapshot, Txn};

pub struct StateTable {
    id: u32,
    codec: RowCodec,
    key_cols: Vec<usize>,
    /// Writes of the current step: `Some(value)` put, `None` deleted.
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl StateTable {
    /// A state table with id `id` storing rows of `schema`, keyed by the
    /// columns `key_cols` (in key order).
    pub fn new(id: u32, schema: SchemaRef, key_cols: Vec<usize>) -> Result<Self> {
        Ok(Self {
            id,
            codec: RowCodec::new(schema)?,
            key_cols,
            pending: BTreeMap::new(),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn codec(&self) -> &RowCodec {
        &self.codec
    }

    /// Inserts (or overwrites) every row of `rows`.
    pub fn insert(&mut self, rows: &RecordBatch) -> Result<()> {
        for (k, v) in self.codec.encode_rows(self.id, rows, &self.key_cols)? {
            self.pending.insert(k, Some(v));
        }
        Ok(())
    }

    /// Puts every row of `rows`, which must have distinct keys; `false` (and
    /// nothing written) if two share one.
    pub fn insert_distinct(&mut self, rows: &RecordBatch) -> Result<bool> {
        let encoded = self.codec.encode_rows(self.id, rows, &self.key_cols)?;
        if encoded.len() > 1 {
            let mut keys: Vec<&[u8]> = encoded.iter().map(|(k, _)| k.as_slice()).collect();
            keys.sort_unstable();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return Ok(false);
            }
        }
        for (k, v) in encoded {
            self.pending.insert(k, Some(v));
        }
        Ok(true)
    }

    /// Deletes the rows with the keys of `rows`.
    pub fn delete(&mut self, rows: &RecordBatch) -> Result<()> {
        for k in self.codec.encode_keys(self.id, rows, &self.key_cols)? {
            self.pending.insert(k, None);
        }
        Ok(())
    }

    /// Puts `row` (one value per column) under `key` (the key of the row's
    /// key columns, as [`StateTable::key_prefix_of`] makes it).
    pub fn put_row(&mut self, key: Vec<u8>, row: &[ScalarValue]) -> Result<()> {
        let value = self.codec.encode_scalars(row)?;
        self.pending.insert(key, Some(value));
        Ok(())
    }

    /// Columns `from..` of the row under `key` (this step's writes
    /// included) as values, or `None` if there is no such row.
    pub fn get_row(
        &self,
        snapshot: &Snapshot,
        key: &[u8],
        from: usize,
    ) -> Result<Option<Vec<ScalarValue>>> {
        self.get(snapshot, key)?
            .map(|v| self.codec.decode_scalars(&v, from))
            .transpose()
    }

    /// Deletes the row stored under `key` (a key of this table).
    pub fn delete_key(&mut self, key: &[u8]) {
        self.pending.insert(key.to_vec(), None);
    }

    /// The key of row `row` of `rows`.
    pub fn key_of(&self, rows: &RecordBatch, row: usize) -> Result<Vec<u8>> {
        self.codec
            .encode_key(self.id, rows.columns(), &self.key_cols, row)
    }

    /// The key prefix made of the first `n` key columns of row `row` of
    /// `cols` (the table's columns, at least up to those key columns; for
    /// [`StateTable::prefix_scan`], e.g. all entries of one group).
    pub fn key_prefix_of(&self, cols: &[ArrayRef], row: usize, n: usize) -> Result<Vec<u8>> {
        self.codec
            .encode_key(self.id, cols, &self.key_cols[..n], row)
    }

    /// The key of the one row of a table keyed by no columns (a global
    /// aggregate's group, a join side without equi-keys).
    pub fn empty_key(&self) -> Vec<u8> {
        keys::table_prefix(self.id).to_vec()
    }

    /// `prefix`, a key prefix of another state table with this table's key
    /// layout (e.g. the other side of a join), as a prefix of this table.
    pub fn same_prefix(&self, prefix: &[u8]) -> Vec<u8> {
        let mut p = keys::table_prefix(self.id).to_vec();
        p.extend_from_slice(&prefix[prefix.len().min(4)..]);
        p
    }

    /// The stored value under `key`, this step's writes included.
    pub fn get(&self, snapshot: &Snapshot, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => snapshot.get_cached(key),
        }
    }

    /// The Int64 column `col` of a stored value of this table.
    pub fn decode_i64(&self, value: &[u8], col: usize) -> Result<i64> {
        self.codec.read_i64(value, col)?.ok_or_else(|| {
            crate::StorageError::Corrupt(format!(
                "column {col} of state table {} is not an Int64",
                self.id
            ))
        })
    }

    /// The Int64 column `col` of the row under `key` (this step's writes
    /// included), or `None` if there is no such row.
    pub fn get_i64(&self, snapshot: &Snapshot, key: &[u8], col: usize) -> Result<Option<i64>> {
        self.get(snapshot, key)?
            .map(|v| self.decode_i64(&v, col))
            .transpose()
    }

    /// Every `(key, value)` whose key starts with `prefix` (a key prefix as
    /// encoded by this table, table id included), in key order, merging
    /// this step's writes over `snapshot`.
    pub fn prefix_scan(
        &self,
        snapshot: &Snapshot,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end =
            keys::prefix_successor(prefix).unwrap_or_else(|| keys::table_end(self.id).to_vec());
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        snapshot.scan_cached(prefix, &end, usize::MAX, |k, v| {
            merged.insert(k.to_vec(), v.to_vec());
            Ok(())
        })?;
        for (k, v) in self
            .pending
            .range::<[u8], _>((Bound::Included(prefix), Bound::Excluded(end.as_slice())))
        {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// The first `limit` entries (in key order) whose key starts with
    /// `prefix`, this step's writes included. Reads only about `limit` plus
    /// the number of this step's writes in the range from the snapshot.
    pub fn prefix_scan_limit(
        &self,
        snapshot: &Snapshot,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let end =
            keys::prefix_successor(prefix).unwrap_or_else(|| keys::table_end(self.id).to_vec());
        let range = (Bound::Included(prefix), Bound::Excluded(end.as_slice()));
        let pending: Vec<(&Vec<u8>, &Option<Vec<u8>>)> =
            self.pending.range::<[u8], _>(range).collect();
        // Pending writes can hide at most `pending.len()` snapshot entries.
        let want = limit.saturating_add(pending.len());
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut from = prefix.to_vec();
        loop {
            let room = want - merged.len().min(want);
            if room == 0 {
                break;
            }
            let resume = snapshot.scan_cached(&from, &end, room, |k, v| {
                merged.insert(k.to_vec(), v.to_vec());
                Ok(())
            })?;
            match resume {
                Some(next) => from = next,
                None => break,
            }
        }
        for (k, v) in pending {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// Adds `weights[i]` to the Int64 count column `count_col` of the row
    /// with row `i`'s key (a missing row counts 0), writing `rows`' other
    /// columns with the new count, or deleting the row when the count
    /// reaches 0. Returns each row's `(old, new)` count. The same key may
    /// appear several times in `rows`.
    pub fn add_counts(
        &mut self,
        snapshot: &Snapshot,
        rows: &RecordBatch,
        count_col: usize,
        weights: &[i64],
    ) -> Result<Vec<(i64, i64)>> {
        // Keys of all rows at once; counts of keys already seen in this
        // call come from `latest` (the same key may repeat).
        let keys = self.codec.encode_keys(self.id, rows, &self.key_cols)?;
        let mut latest: std::collections::HashMap<&[u8], (i64, usize)> =
            std::collections::HashMap::with_capacity(keys.len());
        let mut out = Vec::with_capacity(weights.len());
        for (i, (key, w)) in keys.iter().zip(weights).enumerate() {
            let old = match latest.get(key.as_slice()) {
                Some((c, _)) => *c,
                None => self.get_i64(snapshot, key, count_col)?.unwrap_or(0),
            };
            let new = old + w;
            latest.insert(key.as_slice(), (new, i));
            out.push((old, new));
        }
        // Write each key once (at its last row), with its final count.
        let counts: datafusion::arrow::array::Int64Array = (0..keys.len())
            .map(|i| latest[keys[i].as_slice()].0)
            .collect();
        let mut cols = rows.columns().to_vec();
        cols[count_col] = std::sync::Arc::new(counts);
        let mut writes = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let (count, last) = latest[key.as_slice()];
            if last != i {
                continue;
            }
            let value = if count == 0 {
                None
            } else {
                Some(self.codec.encode_value_of(&cols, i)?)
            };
            writes.push((key.clone(), value));
        }
        drop(latest);
        self.pending.extend(writes);
        Ok(out)
    }

    /// Drops this step's writes (the step failed).
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Moves this step's writes into the epoch's transaction.
    pub fn commit_into(&mut self, txn: &mut Txn) {
        for (k, v) in std::mem::take(&mut self.pending) {
            match v {
                Some(v) => txn.put(&k, &v),
                None => txn.delete(&k),
            }
        }
    }

    /// Whether the current step has written anything.
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn rows(groups: &[&str], values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
            Field::new("n", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(groups.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
                Arc::new(Int64Array::from(vec![1; values.len()])),
            ],
        )
        .unwrap()
    }

    /// Keys and prefixes built by the table match the keys its rows get,
    /// in this table and in another of the same layout; whole-table scans,
    /// emptiness and deletion go by table id.
    #[test]
    fn prefixes_and_whole_table_operations_follow_the_key_layout() {
        let dir = std::env::temp_dir().join(format!("freshet-state-prefix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let r = rows(&["a", "a", "b"], &[1, 2, 3]);
        let (mut t5, mut t6) = (
            StateTable::new(5, r.schema(), vec![0, 1]).unwrap(),
            StateTable::new(6, r.schema(), vec![0, 1]).unwrap(),
        );
        let global = StateTable::new(7, r.schema(), vec![]).unwrap();
        assert_eq!(global.empty_key(), global.key_of(&r, 2).unwrap());
        t5.insert(&r).unwrap();
        t6.insert(&r).unwrap();
        let mut txn = Txn::new();
        t5.commit_into(&mut txn);
        t6.commit_into(&mut txn);
        store.commit(txn).unwrap();
        let prefix5 = t5.key_prefix_of(r.columns(), 0, 1).unwrap();
        let prefix6 = t6.same_prefix(&prefix5);
        assert_eq!(prefix6, t6.key_prefix_of(r.columns(), 0, 1).unwrap());
        assert!(t6.key_of(&r, 1).unwrap().starts_with(&prefix6));
        assert!(!t6.key_of(&r, 2).unwrap().starts_with(&prefix6));
        let snap = store.snapshot();
        let mut seen = 0;
        snap.scan_table(6, |k, _| {
            assert_eq!(crate::keys::table_id(k), 6);
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 3);
        assert!(!snap.table_is_empty(5).unwrap() && snap.table_is_empty(7).unwrap());
        let mut txn = Txn::new();
        txn.delete_tables(5, 5);
        store.commit(txn).unwrap();
        let snap = store.snapshot();
        assert!(snap.table_is_empty(5).unwrap() && !snap.table_is_empty(6).unwrap());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_see_step_writes_and_survive_commit() {
        let dir = std::env::temp_dir().join(format!("freshet-state-table-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        let batch = rows(&["a", "a", "b"], &[3, 1, 2]);
        // Keyed by (group, value): a min/max-style ordered state.
        let mut t = StateTable::new(9, batch.schema(), vec![0, 1]).unwrap();
        t.insert(&batch).unwrap();
        let snap = store.snapshot();
        let key = t.key_of(&batch, 1).unwrap();
        assert!(t.get(&snap, &key).unwrap().is_some());
        let prefix = t.key_prefix_of(rows(&["a"], &[0]).columns(), 0, 1).unwrap();
        let group_prefix = prefix.as_slice();
        let a = t.prefix_scan(&snap, group_prefix).unwrap();
        let decoded = t
            .codec()
            .decode(a.iter().map(|(_, v)| v.as_slice()), Some(&[1]))
            .unwrap();
        let values = decoded
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        assert_eq!(values, vec![1, 3], "ordered by value within the group");

        let mut txn = Txn::new();
        t.commit_into(&mut txn);
        store.commit(txn).unwrap();
        assert!(!t.is_dirty());
        t.delete(&rows(&["a"], &[1])).unwrap();
        let snap = store.snapshot();
        assert_eq!(
            t.prefix_scan(&snap, group_prefix).unwrap().len(),
            1,
            "pending delete hides the stored row"
        );
        assert!(
            store.snapshot().get(&key).unwrap().is_some(),
            "not committed yet"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
