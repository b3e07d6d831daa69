//! Filter: keeps the changes whose row satisfies a predicate.
//!
//! Stateless and linear: `σ(ΔR) = Δσ(R)`, so the delta is filtered as it
//! is, weights unchanged. A NULL predicate drops the row, as in SQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::{filter, filter_record_batch, prep_null_mask_filter};
use datafusion::physical_expr::PhysicalExpr;

use super::{only, Inputs, Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

/// Keeps the changes whose rows satisfy `predicate` (its output rows are
/// its input rows).
pub struct Filter {
    predicate: Arc<dyn PhysicalExpr>,
}

impl Filter {
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Self { predicate }
    }
}

impl Operator for Filter {
    fn step(&mut self, _ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(batch) = only(inputs) else {
            return Ok(None);
        };
        let evaluated = self
            .predicate
            .evaluate(batch.data())
            .and_then(|m| m.into_array(batch.len()));
        // A row that comes and goes within one step (a join's retraction
        // and re-insertion of a subquery's old row) must not fail the step
        // when it alone fails to evaluate: retry over the net changes.
        let (batch, mask) = match evaluated {
            Ok(mask) => (batch, mask),
            Err(e) => {
                let net = batch.consolidate()?;
                if net.len() == batch.len() {
                    return Err(e.into());
                }
                let mask = self.predicate.evaluate(net.data())?.into_array(net.len())?;
                (net, mask)
            }
        };
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
        Ok(Some(ChangeBatch::new(data, weights)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{physical, schema, Rng};

    fn ctx() -> StepContext {
        StepContext {
            snapshot: CTX.with(|s| s.store.snapshot()),
        }
    }

    thread_local! {
        static CTX: crate::testing::TempStore = crate::testing::TempStore::new("filter");
    }
    use datafusion::prelude::{col, lit};

    #[test]
    fn keeps_matching_changes_with_their_weights() {
        let mut f = Filter::new(physical(col("amount").gt(lit(10i64)), &schema()));
        let out = f
            .step(
                &ctx(),
                vec![Some(fixture(
                    schema(),
                    "+ 1 ann 20\n- 2 bob 5\n-2 3 cat 30\n+ 4 dan .",
                ))],
            )
            .unwrap();
        let got = ChangeBatch::concat(&schema(), &Vec::from_iter(out))
            .unwrap()
            .to_sorted_strings()
            .unwrap();
        let row = |v: [&str; 3], w| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), w);
        assert_eq!(
            got,
            vec![row(["1", "ann", "20"], 1), row(["3", "cat", "30"], -2)]
        );
    }

    /// A row added and removed in the same step is not evaluated: its
    /// error (here 100 / 0) does not fail the step; a net row's does.
    #[test]
    fn a_row_that_cancels_out_cannot_fail_the_step() {
        let predicate = physical((lit(100i64) / col("amount")).gt(lit(10i64)), &schema());
        let mut f = Filter::new(predicate.clone());
        let out = f
            .step(
                &ctx(),
                vec![Some(fixture(
                    schema(),
                    "+ 1 ann 0
+ 2 bob 5
- 1 ann 0",
                ))],
            )
            .unwrap();
        let got = ChangeBatch::concat(&schema(), &Vec::from_iter(out))
            .unwrap()
            .to_sorted_strings()
            .unwrap();
        let row = |v: [&str; 3], w| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), w);
        assert_eq!(got, vec![row(["2", "bob", "5"], 1)]);
        let mut f = Filter::new(predicate);
        let err = f
            .step(
                &ctx(),
                vec![Some(fixture(
                    schema(),
                    "+ 1 ann 0
+ 2 bob 5",
                ))],
            )
            .expect_err("a net row dividing by zero fails");
        assert!(err.to_string().contains("Divide by zero"), "{err}");
    }

    /// Incremental = batch: filtering each delta and summing equals
    /// filtering the sum of the deltas, for random streams of changes.
    #[test]
    fn incremental_equals_batch_on_random_streams() {
        let mut rng = Rng::new(7);
        for case in 0..50 {
            let mut f = Filter::new(physical(
                col("amount").lt_eq(lit(rng.below_u64(60) as i64)),
                &schema(),
            ));
            let mut deltas = Vec::new();
            let mut outputs = Vec::new();
            for _ in 0..(1 + rng.below_u64(6)) {
                let lines: Vec<String> = (0..rng.below_u64(20))
                    .map(|_| {
                        let sign = if rng.below_u64(3) == 0 { "-" } else { "+" };
                        let amount = if rng.below_u64(10) == 0 {
                            ".".to_string()
                        } else {
                            rng.below_u64(100).to_string()
                        };
                        format!(
                            "{sign} {} n{} {amount}",
                            rng.below_u64(10),
                            rng.below_u64(3)
                        )
                    })
                    .collect();
                let d = fixture(schema(), &lines.join("\n"));
                outputs.extend(f.step(&ctx(), vec![Some(d.clone())]).unwrap());
                deltas.push(d);
            }
            let incremental = ChangeBatch::concat(&schema(), &outputs).unwrap();
            let all = ChangeBatch::concat(&schema(), &deltas).unwrap();
            let batch = ChangeBatch::concat(
                &schema(),
                &Vec::from_iter(f.step(&ctx(), vec![Some(all)]).unwrap()),
            )
            .unwrap();
            assert_eq!(
                incremental.to_sorted_strings().unwrap(),
                batch.to_sorted_strings().unwrap(),
                "case {case}"
            );
        }
    }
}
