//! Secondary indexes (`CREATE INDEX … ON t (a, b)`).
//!
//! An index is a sorted set of entries under its own id: the key is the
//! indexed values then the row's key (`index id | a | b | pk…`, the same
//! memcomparable encoding as table keys, a flag byte before each nullable
//! value), the value is the row's full storage key. A scan whose filters pin
//! a prefix of the indexed columns (equalities, IN lists, then a range)
//! reads those entry ranges and gets each row by its key (crate::table).
//!
//! Entries are maintained from a statement's recorded writes when its
//! epoch is committed ([`maintain`], called by the engine's step): for each
//! written row key, the entries of the row before (read from the snapshot
//! the writer holds) and after are compared and the difference is written
//! in the same transaction, so an index never disagrees with its table.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::util::display::array_value_to_string;

use freshet_storage::{keys, RowCodec, Snapshot, TableWrites, Txn};

use crate::catalog::{IndexDef, TableDef};
use crate::{PlannerError, Result};

/// An index as scans and writers use it.
#[derive(Debug)]
pub struct TableIndex {
    pub def: Arc<IndexDef>,
    /// The storage columns an entry key is made of: the indexed columns,
    /// then the table's key columns.
    entry_cols: Vec<usize>,
    /// Encodes (prefixes of) entry keys from values of `entry_cols`.
    pub key_codec: RowCodec,
    /// The indexed columns' names (for messages).
    names: Vec<String>,
    /// The first epoch whose snapshots hold the index's entries: an older
    /// snapshot (a statement that started before CREATE INDEX committed)
    /// must not read it.
    pub valid_from: u64,
}

impl TableIndex {
    pub fn new(def: Arc<IndexDef>, table: &TableDef, valid_from: u64) -> Result<TableIndex> {
        let storage = table.storage_schema();
        let mut entry_cols = def.columns.clone();
        entry_cols.extend(table.key_columns());
        let schema = Schema::new(
            entry_cols
                .iter()
                .map(|&i| storage.field(i).clone())
                .collect::<Vec<_>>(),
        );
        let names = def
            .columns
            .iter()
            .map(|&i| table.columns[i].name.clone())
            .collect();
        Ok(TableIndex {
            def,
            names,
            entry_cols,
            key_codec: RowCodec::new(Arc::new(schema))?,
            valid_from,
        })
    }

    /// How many leading entry columns are indexed columns.
    pub fn width(&self) -> usize {
        self.def.columns.len()
    }

    /// The entry keys of `rows` (storage-schema rows of the table).
    fn entry_keys(&self, codec: &RowCodec, rows: &RecordBatch) -> Result<Vec<Vec<u8>>> {
        Ok(codec.encode_keys(self.def.id, rows, &self.entry_cols)?)
    }

    /// Each row's indexed values alone (an entry key's prefix), `None`
    /// where one is NULL: NULLs are distinct, so such rows never collide.
    fn unique_prefixes(
        &self,
        codec: &RowCodec,
        rows: &RecordBatch,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let keys = codec.encode_keys(self.def.id, rows, &self.def.columns)?;
        Ok(keys
            .into_iter()
            .enumerate()
            .map(|(r, k)| {
                (!self.def.columns.iter().any(|&c| rows.column(c).is_null(r))).then_some(k)
            })
            .collect())
    }

    /// `Key (a, b)=(1, x)` of row `r`.
    fn key_text(&self, rows: &RecordBatch, r: usize) -> String {
        let values: Vec<String> = self
            .def
            .columns
            .iter()
            .map(|&c| array_value_to_string(rows.column(c), r).unwrap_or_default())
            .collect();
        format!("Key ({})=({})", self.names.join(", "), values.join(", "))
    }

    /// Fails unless the rows of the table after `writes` are unique by this
    /// (unique) index: every row whose entry is new (`changed`) is checked
    /// against the other new rows and the stored entries of rows the
    /// statement leaves alone.
    fn check_unique(
        &self,
        codec: &RowCodec,
        writes: &TableWrites,
        new_rows: &RecordBatch,
        changed: &[bool],
        snapshot: &Snapshot,
    ) -> Result<()> {
        let prefixes = self.unique_prefixes(codec, new_rows)?;
        let mut count: HashMap<&[u8], usize> = HashMap::new();
        for p in prefixes.iter().flatten() {
            *count.entry(p.as_slice()).or_default() += 1;
        }
        for (r, p) in prefixes.iter().enumerate() {
            let Some(p) = p else { continue };
            if !changed[r] {
                continue;
            }
            let mut clash = count[p.as_slice()] > 1;
            if !clash {
                let end = keys::prefix_successor(p)
                    .unwrap_or_else(|| keys::table_end(self.def.id).to_vec());
                snapshot.scan(p, &end, usize::MAX, |_, row_key| {
                    clash |= !writes.contains_key(row_key);
                    Ok(())
                })?;
            }
            if clash {
                return Err(PlannerError::UniqueViolation {
                    constraint: self.def.name.clone(),
                    detail: format!("{} already exists.", self.key_text(new_rows, r)),
                });
            }
        }
        Ok(())
    }
}

/// Table id → its indexes, shared by every provider of the table and the
/// writer, so prepared plans see indexes created or dropped after them.
pub type IndexMap = Arc<RwLock<HashMap<u32, Vec<Arc<TableIndex>>>>>;

/// The indexes of table `table_id` now.
pub fn indexes_of(map: &IndexMap, table_id: u32) -> Vec<Arc<TableIndex>> {
    map.read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&table_id)
        .cloned()
        .unwrap_or_default()
}

/// Writes into `txn` the index entry changes that `writes` (one table's
/// recorded row writes, by key) make: for every row whose indexed values
/// changed, its old entries are deleted and its new ones put. `snapshot` is
/// the state before the writes (the writer's).
pub fn maintain(
    indexes: &[Arc<TableIndex>],
    codec: &RowCodec,
    writes: &TableWrites,
    snapshot: &Snapshot,
    txn: &mut Txn,
) -> Result<()> {
    if indexes.is_empty() || writes.is_empty() {
        return Ok(());
    }
    // Old rows (those that may have existed) and new rows, decoded in bulk.
    let mut old_keys: Vec<&[u8]> = Vec::new();
    let mut old_values: Vec<Vec<u8>> = Vec::new();
    let mut new_keys: Vec<&[u8]> = Vec::new();
    let mut new_values: Vec<&[u8]> = Vec::new();
    for (key, w) in writes {
        if !w.known_new {
            if let Some(v) = snapshot.get(key)? {
                old_keys.push(key);
                old_values.push(v);
            }
        }
        if let Some(v) = &w.value {
            new_keys.push(key);
            new_values.push(v);
        }
    }
    let old_rows = codec.decode(old_values.iter().map(Vec::as_slice), None)?;
    let new_rows = codec.decode(new_values.iter().copied(), None)?;
    for index in indexes {
        let old_entries = if old_keys.is_empty() {
            Vec::new()
        } else {
            index.entry_keys(codec, &old_rows)?
        };
        let new_entries = if new_keys.is_empty() {
            Vec::new()
        } else {
            index.entry_keys(codec, &new_rows)?
        };
        let fresh: HashMap<&[u8], &[u8]> = new_keys
            .iter()
            .zip(&new_entries)
            .map(|(k, e)| (*k, e.as_slice()))
            .collect();
        let stale: HashMap<&[u8], &[u8]> = old_keys
            .iter()
            .zip(&old_entries)
            .map(|(k, e)| (*k, e.as_slice()))
            .collect();
        if index.def.unique {
            let changed: Vec<bool> = new_keys
                .iter()
                .zip(&new_entries)
                .map(|(k, e)| stale.get(k) != Some(&e.as_slice()))
                .collect();
            index.check_unique(codec, writes, &new_rows, &changed, snapshot)?;
        }
        for (row_key, entry) in &stale {
            if fresh.get(row_key) != Some(entry) {
                txn.delete(entry);
            }
        }
        for (row_key, entry) in &fresh {
            if stale.get(row_key) != Some(entry) {
                txn.put(entry, row_key);
            }
        }
    }
    Ok(())
}

/// Writes into `txn` the entries of `index` for every row of its table in
/// `snapshot` (CREATE INDEX on a table with rows).
pub fn backfill(
    index: &TableIndex,
    table: &TableDef,
    codec: &RowCodec,
    snapshot: &Snapshot,
    txn: &mut Txn,
) -> Result<usize> {
    const CHUNK: usize = 8192;
    let mut count = 0;
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(CHUNK);
    let mut seen: std::collections::HashSet<Vec<u8>> = Default::default();
    let mut flush = |keys: &mut Vec<Vec<u8>>, values: &mut Vec<Vec<u8>>| -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows = codec.decode(values.iter().map(Vec::as_slice), None)?;
        if index.def.unique {
            for (r, p) in index.unique_prefixes(codec, &rows)?.into_iter().enumerate() {
                if let Some(p) = p {
                    if !seen.insert(p) {
                        return Err(PlannerError::UniqueIndexBuild {
                            index: index.def.name.clone(),
                            detail: format!("{} is duplicated.", index.key_text(&rows, r)),
                        });
                    }
                }
            }
        }
        for (entry, row_key) in index.entry_keys(codec, &rows)?.iter().zip(keys.iter()) {
            txn.put(entry, row_key);
        }
        keys.clear();
        values.clear();
        Ok(())
    };
    let mut failed = None;
    snapshot.scan_table(table.id, |k, v| {
        keys.push(k.to_vec());
        values.push(v.to_vec());
        count += 1;
        if keys.len() == CHUNK {
            if let Err(e) = flush(&mut keys, &mut values) {
                failed = Some(e);
            }
        }
        Ok(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    flush(&mut keys, &mut values)?;
    Ok(count)
}
