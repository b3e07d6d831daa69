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
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

pub struct SingleRow {
    schema: SchemaRef,
    /// One row: `(true, count)`.
    state: StateTable,
    /// The step's net change of the row count.
    delta: i64,
}

impl SingleRow {
    /// `state_id` is the storage id of the operator's state table.
    pub fn new(schema: SchemaRef, state_id: u32) -> Result<Self> {
        let state_schema = Arc::new(Schema::new(vec![
            Field::new("__key", DataType::Boolean, false),
            Field::new("__rows", DataType::Int64, false),
        ]));
        Ok(Self {
            schema,
            state: StateTable::new(state_id, state_schema, vec![0])?,
            delta: 0,
        })
    }
}

impl Operator for SingleRow {
    fn name(&self) -> &str {
        "SingleRow"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(
        &mut self,
        _ctx: &StepContext,
        _input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>> {
        self.delta += batch.weights().values().iter().sum::<i64>();
        if batch.is_empty() {
            return Ok(vec![]);
        }
        Ok(vec![batch])
    }

    fn end_step(&mut self, ctx: &StepContext) -> Result<Vec<ChangeBatch>> {
        let delta = std::mem::take(&mut self.delta);
        if delta == 0 {
            return Ok(vec![]);
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
        Ok(vec![])
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
    }

    fn abort(&mut self) {
        self.delta = 0;
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
    use crate::operator::test_util::{schema, TempStore};

    /// Up to one row passes; a second fails the step (and aborting it
    /// leaves the committed count); moving the row within a step is fine.
    #[test]
    fn fails_the_step_with_more_than_one_row() {
        let t = TempStore::new("single_row");
        let mut op = SingleRow::new(schema(), 7).unwrap();
        let step = |op: &mut SingleRow, lines: &str| -> Result<usize> {
            let ctx = t.ctx();
            let out = op.process(&ctx, 0, fixture(schema(), lines))?;
            if let Err(e) = op.end_step(&ctx) {
                op.abort();
                return Err(e);
            }
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
