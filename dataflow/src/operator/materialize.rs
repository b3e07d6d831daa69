//! Materialize: keeps a view's contents in the state table readers scan,
//! and passes the view's consolidated changes on to the views built on it.
//!
//! Two layouts. In general each distinct row is kept with its multiplicity,
//! keyed by all its columns, and a change adds to the stored count. A view
//! whose rows are unique by some of its columns (a GROUP BY's keys) is
//! keyed by those instead, one row per key with multiplicity 1: a changed
//! group is one put over its old row, with nothing read first.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{consolidated, Inputs, Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

/// The name of the multiplicity column of a view's contents.
pub const MULTIPLICITY_COLUMN: &str = "_mult";

pub struct Materialize {
    schema: SchemaRef,
    state: StateTable,
    /// The columns the rows are unique by, when they key the contents.
    unique: Option<Vec<usize>>,
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

    /// Keeps the contents of a view with columns `schema` in table `id`,
    /// keyed by the columns `unique` (whose values no two rows share) or,
    /// with `None`, by all columns.
    pub fn new(schema: SchemaRef, id: u32, unique: Option<Vec<usize>>) -> Result<Self> {
        let stored = Self::storage_schema(&schema);
        let n = schema.fields().len();
        if unique
            .as_ref()
            .is_some_and(|u| u.is_empty() || u.iter().any(|&c| c >= n))
        {
            return Err(DataflowError::Malformed("bad view key columns".into()));
        }
        let key = unique.clone().unwrap_or_else(|| (0..n).collect());
        Ok(Self {
            schema,
            state: StateTable::new(id, stored, key)?,
            unique,
        })
    }

    /// `delta`'s rows in the stored layout, with multiplicity `mult`.
    fn stored_rows(&self, delta: &ChangeBatch, mult: i64) -> Result<RecordBatch> {
        let mut cols = delta.data().columns().to_vec();
        cols.push(Arc::new(Int64Array::from(vec![mult; delta.len()])));
        crate::batch::conform(self.state.codec().schema().clone(), cols)
    }

    /// Writes `delta` to a view keyed by its unique columns: the keys of
    /// the deleted rows are deleted, then the inserted rows put (a changed
    /// row is a delete and an insert under one key).
    fn replace(&mut self, delta: &ChangeBatch) -> Result<()> {
        let rows = self.stored_rows(delta, 1)?;
        let (mut deleted, mut inserted) = (Vec::new(), Vec::new());
        for (i, &w) in delta.weights().values().iter().enumerate() {
            match w {
                -1 => deleted.push(i as u32),
                1 => inserted.push(i as u32),
                _ => {
                    return Err(DataflowError::Malformed(format!(
                        "a view row unique by its key columns changed with weight {w}"
                    )))
                }
            }
        }
        let pick = |idx: Vec<u32>| crate::batch::take_rows(&rows, &UInt32Array::from(idx));
        self.state.delete(&pick(deleted)?)?;
        if !self.state.insert_distinct(&pick(inserted)?)? {
            return Err(DataflowError::Malformed(
                "two rows of a view unique by its key columns share a key".into(),
            ));
        }
        Ok(())
    }
}

impl Operator for Materialize {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(delta) = consolidated(inputs)? else {
            return Ok(None);
        };
        if self.unique.is_some() {
            self.replace(&delta)?;
        } else {
            let n = self.schema.fields().len();
            let rows = self.stored_rows(&delta, 0)?;
            let counts =
                self.state
                    .add_counts(&ctx.snapshot, &rows, n, delta.weights().values())?;
            if counts.iter().any(|(_, new)| *new < 0) {
                return Err(DataflowError::Malformed(
                    "a view row's multiplicity went negative".into(),
                ));
            }
        }
        let data = crate::batch_with_rows(
            self.schema.clone(),
            delta.data().columns().to_vec(),
            delta.len(),
        )?;
        Ok(Some(delta.with_data(data)?))
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
    }

    fn abort(&mut self) {
        self.state.discard();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        let what = match &self.unique {
            None => "view contents".to_string(),
            Some(cols) => {
                let names: Vec<&str> = cols
                    .iter()
                    .map(|&c| self.schema.field(c).name().as_str())
                    .collect();
                format!("view contents, one row per ({})", names.join(", "))
            }
        };
        vec![(self.state.id(), what)]
    }
}
