//! Materialize: keeps a view's contents — each distinct row with its
//! multiplicity, in the state table readers scan — and passes the view's
//! consolidated changes on to the views built on it.

use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

/// The name of the multiplicity column of a view's contents.
pub const MULTIPLICITY_COLUMN: &str = "_mult";

pub struct Materialize {
    schema: SchemaRef,
    state: StateTable,
    pending: Vec<ChangeBatch>,
}

impl Materialize {
    /// The stored layout of a view with columns `schema`: every column
    /// (nullable, all of them the key) then the multiplicity.
    pub fn storage_schema(schema: &SchemaRef) -> SchemaRef {
        let mut fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        fields.push(Field::new(MULTIPLICITY_COLUMN, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// Keeps the contents of a view with columns `schema` in table `id`.
    pub fn new(schema: SchemaRef, id: u32) -> Result<Self> {
        let stored = Self::storage_schema(&schema);
        let n = schema.fields().len();
        Ok(Self {
            schema,
            state: StateTable::new(id, stored, (0..n).collect())?,
            pending: Vec::new(),
        })
    }
}

impl Operator for Materialize {
    fn name(&self) -> &str {
        "Materialize"
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
        if !batch.is_empty() {
            self.pending.push(batch);
        }
        Ok(vec![])
    }

    fn end_step(&mut self, ctx: &StepContext) -> Result<Vec<ChangeBatch>> {
        let Some(delta) = ChangeBatch::drain(&mut self.pending)? else {
            return Ok(vec![]);
        };
        let n = self.schema.fields().len();
        let mut cols = delta.data().columns().to_vec();
        cols.push(Arc::new(Int64Array::from(vec![0; delta.len()])));
        let rows = crate::batch::conform(self.state.codec().schema().clone(), cols)?;
        let counts = self
            .state
            .add_counts(&ctx.snapshot, &rows, n, delta.weights().values())?;
        if counts.iter().any(|(_, new)| *new < 0) {
            return Err(DataflowError::Malformed(
                "a view row's multiplicity went negative".into(),
            ));
        }
        let data = crate::batch_with_rows(
            self.schema.clone(),
            delta.data().columns().to_vec(),
            delta.len(),
        )?;
        Ok(vec![delta.with_data(data)?])
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.state.discard();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        vec![(self.state.id(), "view contents".into())]
    }
}
