//! Filter: keeps the changes whose row satisfies a predicate.
//!
//! Stateless and linear: `σ(ΔR) = Δσ(R)`, so the delta is filtered as it
//! is, weights unchanged. A NULL predicate drops the row, as in SQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::{Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        Self { predicate, schema }
    }
}

impl Operator for Filter {
    fn name(&self) -> &str {
        "Filter"
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
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let mask = self
            .predicate
            .evaluate(batch.data())?
            .into_array(batch.len())?;
        let mask = mask
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataflowError::Malformed("filter predicate is not boolean".into()))?;
        let mask = if mask.null_count() > 0 {
            prep_null_mask_filter(mask)
        } else {
            mask.clone()
        };
        let data = filter_record_batch(batch.data(), &mask)?;
        let weights = filter(batch.weights(), &mask)?;
        let weights = weights
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .cloned()
            .ok_or_else(|| DataflowError::Malformed("weights are not Int64".into()))?;
        Ok(vec![ChangeBatch::new(data, weights)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::operator::test_util::{physical, schema, Lcg};

    fn ctx() -> StepContext {
        StepContext {
            snapshot: CTX.with(|s| s.store.snapshot()),
        }
    }

    thread_local! {
        static CTX: crate::operator::test_util::TempStore = crate::operator::test_util::TempStore::new("filter");
    }
    use datafusion::prelude::{col, lit};

    #[test]
    fn keeps_matching_changes_with_their_weights() {
        let mut f = Filter::new(physical(col("amount").gt(lit(10i64)), &schema()), schema());
        let out = f
            .process(
                &ctx(),
                0,
                fixture(schema(), "+ 1 ann 20\n- 2 bob 5\n-2 3 cat 30\n+ 4 dan ."),
            )
            .unwrap();
        let got = ChangeBatch::concat(&schema(), &out)
            .unwrap()
            .to_sorted_strings()
            .unwrap();
        let row = |v: [&str; 3], w| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), w);
        assert_eq!(
            got,
            vec![row(["1", "ann", "20"], 1), row(["3", "cat", "30"], -2)]
        );
    }

    /// Incremental = batch: filtering each delta and summing equals
    /// filtering the sum of the deltas, for random streams of changes.
    #[test]
    fn incremental_equals_batch_on_random_streams() {
        let mut rng = Lcg(7);
        for case in 0..50 {
            let mut f = Filter::new(
                physical(col("amount").lt_eq(lit(rng.next(60) as i64)), &schema()),
                schema(),
            );
            let mut deltas = Vec::new();
            let mut outputs = Vec::new();
            for _ in 0..(1 + rng.next(6)) {
                let lines: Vec<String> = (0..rng.next(20))
                    .map(|_| {
                        let sign = if rng.next(3) == 0 { "-" } else { "+" };
                        let amount = if rng.next(10) == 0 {
                            ".".to_string()
                        } else {
                            rng.next(100).to_string()
                        };
                        format!("{sign} {} n{} {amount}", rng.next(10), rng.next(3))
                    })
                    .collect();
                let d = fixture(schema(), &lines.join("\n"));
                outputs.extend(f.process(&ctx(), 0, d.clone()).unwrap());
                deltas.push(d);
            }
            let incremental = ChangeBatch::concat(&schema(), &outputs).unwrap();
            let all = ChangeBatch::concat(&schema(), &deltas).unwrap();
            let batch =
                ChangeBatch::concat(&schema(), &f.process(&ctx(), 0, all).unwrap()).unwrap();
            assert_eq!(
                incremental.to_sorted_strings().unwrap(),
                batch.to_sorted_strings().unwrap(),
                "case {case}"
            );
        }
    }
}
