//! Unnest: one output row per element of a row's list columns (what
//! `unnest(…)` in a select list, and the set-returning functions built on
//! it, compute).
//!
//! Stateless and linear: each changed input row maps to its output rows,
//! each with the input row's weight (`unnest(ΔR) = Δunnest(R)`). Several
//! list columns are zipped: a row gives as many rows as its longest list,
//! shorter lists padded with NULL; a NULL list counts as one NULL element
//! or as none, and an empty list as none or one NULL, by [`NullHandling`],
//! as DataFusion's own unnest does.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::NullHandling;

use super::{only, Inputs, Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

pub struct Unnest {
    /// Input columns that are lists to unnest (one level).
    lists: Vec<usize>,
    /// For each output column, the input column it comes from (unnested
    /// when that column is one of `lists`).
    sources: Vec<usize>,
    schema: SchemaRef,
    null_handling: NullHandling,
}

impl Unnest {
    pub fn new(
        lists: Vec<usize>,
        sources: Vec<usize>,
        schema: SchemaRef,
        null_handling: NullHandling,
    ) -> Self {
        Self {
            lists,
            sources,
            schema,
            null_handling,
        }
    }

    /// How many rows the list at `row` gives on its own.
    fn rows_of(&self, list: &dyn ListLike, row: usize) -> usize {
        if list.is_null(row) {
            return match self.null_handling {
                NullHandling::Drop => 0,
                NullHandling::Preserve | NullHandling::PreserveAndExpandEmpty => 1,
            };
        }
        match (list.len_at(row), self.null_handling) {
            (0, NullHandling::PreserveAndExpandEmpty) => 1,
            (n, _) => n,
        }
    }
}

/// The parts of a list array (`List` or `LargeList`) unnesting reads.
trait ListLike {
    fn is_null(&self, row: usize) -> bool;
    fn len_at(&self, row: usize) -> usize;
    fn start(&self, row: usize) -> usize;
    fn values(&self) -> &ArrayRef;
}

impl<O: datafusion::arrow::array::OffsetSizeTrait> ListLike
    for datafusion::arrow::array::GenericListArray<O>
{
    fn is_null(&self, row: usize) -> bool {
        Array::is_null(self, row)
    }
    fn len_at(&self, row: usize) -> usize {
        self.value_length(row).as_usize()
    }
    fn start(&self, row: usize) -> usize {
        self.value_offsets()[row].as_usize()
    }
    fn values(&self) -> &ArrayRef {
        datafusion::arrow::array::GenericListArray::values(self)
    }
}

fn list_like(a: &ArrayRef) -> Result<&dyn ListLike> {
    if let Some(l) = a.as_list_opt::<i32>() {
        return Ok(l);
    }
    if let Some(l) = a.as_list_opt::<i64>() {
        return Ok(l);
    }
    Err(DataflowError::Malformed(format!(
        "unnest of a {} column",
        a.data_type()
    )))
}

impl Operator for Unnest {
    fn step(&mut self, _ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(batch) = only(inputs) else {
            return Ok(None);
        };
        let data = batch.data();
        let n = data.num_rows();
        let lists: Vec<&dyn ListLike> = self
            .lists
            .iter()
            .map(|&c| list_like(data.column(c)))
            .collect::<Result<_>>()?;
        let counts: Vec<usize> = (0..n)
            .map(|r| lists.iter().map(|l| self.rows_of(*l, r)).max().unwrap_or(1))
            .collect();
        let total: usize = counts.iter().sum();
        let repeat = UInt32Array::from_iter_values(
            counts
                .iter()
                .enumerate()
                .flat_map(|(r, &c)| std::iter::repeat_n(r as u32, c)),
        );
        // Each list's elements, NULL past its end (or for a NULL list).
        let mut unnested: Vec<ArrayRef> = Vec::with_capacity(lists.len());
        for list in &lists {
            let mut idx: Vec<Option<u32>> = Vec::with_capacity(total);
            for (r, &c) in counts.iter().enumerate() {
                let (null, len, start) = (list.is_null(r), list.len_at(r), list.start(r));
                for j in 0..c {
                    idx.push((!null && j < len).then(|| (start + j) as u32));
                }
            }
            unnested.push(take(list.values().as_ref(), &UInt32Array::from(idx), None)?);
        }
        let columns = self
            .sources
            .iter()
            .zip(self.schema.fields())
            .map(|(&src, field)| {
                let a = match self.lists.iter().position(|&l| l == src) {
                    Some(k) => unnested[k].clone(),
                    None => take(data.column(src).as_ref(), &repeat, None)?,
                };
                Ok(if a.data_type() == field.data_type() {
                    a
                } else {
                    datafusion::arrow::compute::cast(&a, field.data_type())?
                })
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let weights = take(batch.weights(), &repeat, None)?;
        let data = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(Some(ChangeBatch::new(
            data,
            weights
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .clone(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, ListArray};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn ctx() -> StepContext {
        StepContext {
            snapshot: CTX.with(|s| s.store.snapshot()),
        }
    }

    thread_local! {
        static CTX: crate::testing::TempStore = crate::testing::TempStore::new("unnest");
    }

    #[test]
    fn rows_carry_their_weight_and_lists_zip() {
        let input = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new(
                "a",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
            Field::new(
                "b",
                DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
                true,
            ),
        ]));
        let a = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
        ]);
        let b = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(7)]),
            Some(vec![Some(8)]),
            Some(vec![]),
        ]);
        let data = RecordBatch::try_new(
            input,
            vec![
                Arc::new(Int64Array::from(vec![10, 20, 30])),
                Arc::new(a),
                Arc::new(b),
            ],
        )
        .unwrap();
        let batch = ChangeBatch::new(data, Int64Array::from(vec![1, -1, 1])).unwrap();
        let out_schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let mut op = Unnest::new(
            vec![1, 2],
            vec![0, 1, 2],
            out_schema.clone(),
            NullHandling::Drop,
        );
        let out = op.step(&ctx(), vec![Some(batch)]).unwrap().unwrap();
        let got = out.to_sorted_strings().unwrap();
        let row = |v: [&str; 3], w| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), w);
        assert_eq!(
            got,
            vec![
                row(["10", "1", "7"], 1),
                row(["10", "2", ""], 1),
                row(["20", "", "8"], -1),
            ]
        );
    }
}
