//! What one step takes in (DESIGN.md, "The dataflow runtime"): the
//! changes that arrived since the last step, by relation. DML hands in a
//! table's writes, which become change batches here; sources will hand in
//! change batches decoded from their records. [`crate::graph::Runtime::step`]
//! pushes a [`StepInput`] through every view into the epoch's writes.

use std::collections::HashMap;

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use freshet_storage::{RowCodec, Snapshot, TableWrites};

use crate::{ChangeBatch, Result};

/// The changes of one step, by relation name.
#[derive(Default)]
pub struct StepInput {
    changes: HashMap<String, ChangeBatch>,
}

impl StepInput {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Adds changes to `relation` (after any it already has).
    pub fn add(&mut self, relation: &str, batch: ChangeBatch) -> Result<()> {
        let batch = match self.changes.remove(relation) {
            Some(before) => ChangeBatch::concat(&before.schema(), &[before, batch])?,
            None => batch,
        };
        self.changes.insert(relation.to_string(), batch);
        Ok(())
    }

    /// Adds a table's writes of the step as changes to `relation`: each
    /// written key's old row (read from `snapshot`, the epoch the writes
    /// were computed against, unless the key was known to be new) is
    /// deleted and its new row, if any, inserted, in one batch. `codec`
    /// decodes the table's stored rows, whose first columns are `schema`'s.
    pub fn add_table_writes(
        &mut self,
        relation: &str,
        codec: &RowCodec,
        schema: SchemaRef,
        writes: &TableWrites,
        snapshot: &Snapshot,
    ) -> Result<()> {
        let user: Vec<usize> = (0..schema.fields().len()).collect();
        let mut rows = codec.decoder(Some(&user), 2 * writes.len());
        for (key, w) in writes {
            if !w.known_new {
                if let Some(prev) = snapshot.get_cached(key)? {
                    rows.push(&prev)?;
                }
            }
        }
        let n_old = rows.rows();
        for w in writes.values() {
            if let Some(v) = &w.value {
                rows.push(v)?;
            }
        }
        let data = RecordBatch::try_new(schema, rows.finish()?.columns().to_vec())?;
        let weights: Int64Array = (0..data.num_rows())
            .map(|i| if i < n_old { -1 } else { 1 })
            .collect();
        self.add(relation, ChangeBatch::new(data, weights)?)
    }

    pub(crate) fn into_changes(self) -> HashMap<String, ChangeBatch> {
        self.changes
    }
}

impl<S: Into<String>> FromIterator<(S, ChangeBatch)> for StepInput {
    fn from_iter<I: IntoIterator<Item = (S, ChangeBatch)>>(iter: I) -> Self {
        StepInput {
            changes: iter.into_iter().map(|(r, b)| (r.into(), b)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{schema, TempStore};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use freshet_storage::{keys, Txn};
    use std::sync::Arc;

    /// A table's writes become deletions of the rows the snapshot holds
    /// and insertions of the new ones; keys known to be new are not read.
    #[test]
    fn table_writes_become_a_change_batch() {
        let t = TempStore::new("step-input");
        let codec = RowCodec::new(schema()).unwrap();
        let row = |id: i64, name: &str, amount: i64| {
            let b = RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(vec![id])),
                    Arc::new(StringArray::from(vec![name])),
                    Arc::new(Int64Array::from(vec![amount])),
                ],
            )
            .unwrap();
            codec.encode_rows(7, &b, &[0]).unwrap().remove(0)
        };
        let (k1, v1) = row(1, "a", 10);
        let (k2, v2) = row(2, "b", 20);
        let mut txn = Txn::new();
        txn.put(&k1, &v1);
        txn.put(&k2, &v2);
        t.store.commit(txn).unwrap();

        let (_, v1_new) = row(1, "a", 11);
        let (k3, v3) = row(3, "c", 30);
        let mut txn = Txn::new();
        txn.track_changes();
        txn.put(&k1, &v1_new);
        txn.delete(&k2);
        txn.put_new(&k3, &v3);
        let writes = txn.take_table_writes();
        let mut input = StepInput::new();
        input
            .add_table_writes("t", &codec, schema(), &writes[&7], &t.store.snapshot())
            .unwrap();
        let changes = input.into_changes();
        assert_eq!(
            changes["t"].to_sorted_strings().unwrap(),
            vec![
                (vec!["1".into(), "a".into(), "10".into()], -1),
                (vec!["1".into(), "a".into(), "11".into()], 1),
                (vec!["2".into(), "b".into(), "20".into()], -1),
                (vec!["3".into(), "c".into(), "30".into()], 1),
            ]
        );
        assert!(keys::table_id(&k3) == 7);
    }
}
