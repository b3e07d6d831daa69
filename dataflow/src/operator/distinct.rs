//! Distinct: each row with positive multiplicity, once.
//!
//! State: row → multiplicity, in a state table keyed by the whole row. A
//! change emits `+1` when a row's multiplicity goes from ≤ 0 to > 0 and `-1`
//! when it goes from > 0 to ≤ 0 (DESIGN.md's table of operator state); work
//! is proportional to the distinct rows of the change.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{consolidated, Inputs, Operator, StepContext};
use crate::{ChangeBatch, Result};

pub struct Distinct {
    schema: SchemaRef,
    /// Rows of `schema` plus a trailing multiplicity column.
    state: StateTable,
}

impl Distinct {
    /// `state_id` is the storage id of the operator's state table.
    pub fn new(schema: SchemaRef, state_id: u32) -> Result<Self> {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("__multiplicity", DataType::Int64, false));
        let state_schema = Arc::new(Schema::new(fields));
        let key: Vec<usize> = (0..schema.fields().len()).collect();
        Ok(Self {
            schema,
            state: StateTable::new(state_id, state_schema, key)?,
        })
    }
}

impl Operator for Distinct {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(batch) = consolidated(inputs)? else {
            return Ok(None);
        };
        // Rows (with a count column) in the state's layout.
        let mut cols: Vec<ArrayRef> = batch.data().columns().to_vec();
        cols.push(Arc::new(Int64Array::from(vec![0; batch.len()])));
        let state_rows = crate::batch::conform(self.state.codec().schema().clone(), cols)?;
        let n = self.schema.fields().len();
        let counts =
            self.state
                .add_counts(&ctx.snapshot, &state_rows, n, batch.weights().values())?;
        let mut emit_rows: Vec<u32> = Vec::new();
        let mut emit_weights: Vec<i64> = Vec::new();
        for (i, (old, new)) in counts.iter().enumerate() {
            if *old <= 0 && *new > 0 {
                emit_rows.push(i as u32);
                emit_weights.push(1);
            } else if *old > 0 && *new <= 0 {
                emit_rows.push(i as u32);
                emit_weights.push(-1);
            }
        }
        if emit_rows.is_empty() {
            return Ok(None);
        }
        let out = batch.take(&UInt32Array::from(emit_rows))?;
        Ok(Some(ChangeBatch::new(
            out.data().clone(),
            Int64Array::from(emit_weights),
        )?))
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
    }

    fn abort(&mut self) {
        self.state.discard();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        vec![(self.state.id(), "row counts".into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{schema, Rng, TempStore};
    use std::collections::BTreeMap;

    /// After every step (and its commit), the sum of everything Distinct
    /// emitted equals the distinct rows of the accumulated input — on random
    /// streams of inserts and deletes of present rows, NULLs included.
    #[test]
    fn incremental_equals_batch_across_committed_steps() {
        let t = TempStore::new("distinct");
        let mut rng = Rng::new(11);
        let mut d = Distinct::new(schema(), 100).unwrap();
        let mut multiset: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut emitted: Vec<ChangeBatch> = Vec::new();
        for step in 0..40 {
            let ctx = t.ctx();
            let mut lines = Vec::new();
            for _ in 0..rng.below_u64(12) {
                let present: Vec<String> = multiset
                    .iter()
                    .filter(|(_, (_, n))| *n > 0)
                    .map(|(k, _)| k.clone())
                    .collect();
                if !present.is_empty() && rng.below_u64(3) == 0 {
                    let k = present[rng.below_u64(present.len() as u64) as usize].clone();
                    multiset.get_mut(&k).unwrap().1 -= 1;
                    lines.push(format!("- {k}"));
                } else {
                    let amount = if rng.below_u64(5) == 0 {
                        ".".to_string()
                    } else {
                        rng.below_u64(3).to_string()
                    };
                    let k = format!("{} n{} {amount}", rng.below_u64(4), rng.below_u64(2));
                    multiset.entry(k.clone()).or_insert((k.clone(), 0)).1 += 1;
                    lines.push(format!("+ {k}"));
                }
            }
            // Split the step's changes over two batches to exercise the
            // state's read-your-writes within a step.
            let half = lines.len() / 2;
            for part in [&lines[..half], &lines[half..]] {
                emitted.extend(
                    d.step(&ctx, vec![Some(fixture(schema(), &part.join("\n")))])
                        .unwrap(),
                );
            }
            let mut txn = Txn::new();
            d.commit(&mut txn);
            t.store.commit(txn).unwrap();

            let got = ChangeBatch::concat(&schema(), &emitted)
                .unwrap()
                .to_sorted_strings()
                .unwrap();
            let expected_lines: Vec<String> = multiset
                .values()
                .filter(|(_, n)| *n > 0)
                .map(|(k, _)| format!("+ {k}"))
                .collect();
            let expected = fixture(schema(), &expected_lines.join("\n"))
                .to_sorted_strings()
                .unwrap();
            assert_eq!(got, expected, "step {step}");
        }
    }
}
