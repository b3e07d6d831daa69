//! SingleRow: passes changes through unchanged and fails the step when its
//! input holds more than one row — the rule for a scalar subquery used as
//! an expression (Postgres: `more than one row returned by a subquery used
//! as an expression`, SQLSTATE 21000).
//!
//! State: the input's row count, one entry. Checked at the end of the
//! step, so a change that moves a row (delete + insert) never trips it
//! half-way. A failed step aborts the whole statement, so a write that would
//! give the subquery a second row is refused and changes nothing.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use freshet_storage::{StateTable, Txn};

use super::{only, Inputs, Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

pub struct SingleRow {
    /// One row: `(true, count)`.
    state: StateTable,
}

impl SingleRow {
    /// `state_id` is the storage id of the operator's state table.
    pub fn new(state_id: u32) -> Result<Self> {
        let state_schema = Arc::new(Schema::new(vec![
            Field::new("__key", DataType::Boolean, false),
            Field::new("__rows", DataType::Int64, false),
        ]));
        Ok(Self {
            state: StateTable::new(state_id, state_schema, vec![0])?,
        })
    }
}

impl Operator for SingleRow {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(batch) = only(inputs) else {
            return Ok(None);
        };
        let delta: i64 = batch.weights().values().iter().sum();
        if delta == 0 {
            return Ok(Some(batch));
        }
        let row = RecordBatch::try_new(
            self.state.codec().schema().clone(),
            vec![
                Arc::new(BooleanArray::from(vec![true])),
                Arc::new(Int64Array::from(vec![0])),
            ],
        )?;
        let (_, rows) = self.state.add_counts(&ctx.snapshot, &row, 1, &[delta])?[0];
        if rows > 1 {
            return Err(DataflowError::Cardinality(
                "more than one row returned by a subquery used as an expression".into(),
            ));
        }
        Ok(Some(batch))
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
    }

    fn abort(&mut self) {
        self.state.discard();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        vec![(self.state.id(), "row count".into())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{schema, TempStore};

    /// Up to one row passes; a second fails the step (and aborting it
    /// leaves the committed count); moving the row within a step is fine.
    #[test]
    fn fails_the_step_with_more_than_one_row() {
        let t = TempStore::new("single_row");
        let mut op = SingleRow::new(7).unwrap();
        let step = |op: &mut SingleRow, lines: &str| -> Result<usize> {
            let ctx = t.ctx();
            let out = match op.step(&ctx, vec![Some(fixture(schema(), lines))]) {
                Ok(out) => out,
                Err(e) => {
                    op.abort();
                    return Err(e);
                }
            };
            let mut txn = Txn::new();
            op.commit(&mut txn);
            t.store.commit(txn).unwrap();
            Ok(out.iter().map(|b| b.len()).sum())
        };
        assert_eq!(step(&mut op, "+ 1 a 1").unwrap(), 1);
        let err = step(&mut op, "+ 2 b 2").unwrap_err();
        assert!(matches!(err, DataflowError::Cardinality(_)), "{err}");
        // The refused step left one row: replacing it is allowed.
        assert_eq!(step(&mut op, "- 1 a 1\n+ 2 b 2").unwrap(), 2);
        assert!(step(&mut op, "+ 3 c 3").is_err());
        assert_eq!(step(&mut op, "- 2 b 2").unwrap(), 1);
        assert_eq!(step(&mut op, "+ 3 c 3").unwrap(), 1);
    }
}
