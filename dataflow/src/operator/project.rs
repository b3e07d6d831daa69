//! Project: computes output columns from each changed row.
//!
//! Stateless and linear: every input change maps to one output change with
//! the same weight (`π(ΔR) = Δπ(R)`); equal projected rows are left for
//! consolidation to merge.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::PhysicalExpr;

use super::{only, Inputs, Operator, StepContext};
use crate::{ChangeBatch, Result};

pub struct Project {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl Project {
    /// `schema` names and types the outputs of `exprs`, in order.
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Self { exprs, schema }
    }
}

impl Operator for Project {
    fn step(&mut self, _ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(batch) = only(inputs) else {
            return Ok(None);
        };
        // A row that comes and goes within one step must not fail the step
        // when it alone fails to evaluate: retry over the net changes.
        let (batch, columns) = match self.evaluate(&batch) {
            Ok(columns) => (batch, columns),
            Err(e) => {
                let net = batch.consolidate()?;
                if net.len() == batch.len() {
                    return Err(e.into());
                }
                let columns = self.evaluate(&net)?;
                (net, columns)
            }
        };
        let data = crate::batch_with_rows(self.schema.clone(), columns, batch.len())?;
        Ok(Some(batch.with_data(data)?))
    }
}

impl Project {
    fn evaluate(&self, batch: &ChangeBatch) -> datafusion::error::Result<Vec<ArrayRef>> {
        self.exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(e, f)| {
                let a = e.evaluate(batch.data())?.into_array(batch.len())?;
                // DataFusion's physical types can be wider than the logical
                // plan's (e.g. decimal CASE branches); the plan's type wins.
                if a.data_type() == f.data_type() {
                    Ok(a)
                } else {
                    Ok(datafusion::arrow::compute::cast(&a, f.data_type())?)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{physical, schema};

    fn ctx() -> StepContext {
        StepContext {
            snapshot: CTX.with(|s| s.store.snapshot()),
        }
    }

    thread_local! {
        static CTX: crate::testing::TempStore = crate::testing::TempStore::new("project");
    }
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{col, lit};

    #[test]
    fn maps_rows_and_keeps_weights_so_updates_cancel() {
        let out_schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("double", DataType::Int64, true),
        ]));
        let mut p = Project::new(
            vec![
                physical(col("name"), &schema()),
                physical(col("amount") * lit(2i64), &schema()),
            ],
            out_schema.clone(),
        );
        // An update that does not change the projected columns cancels out.
        let out = p
            .step(
                &ctx(),
                vec![Some(fixture(schema(), "- 1 ann 5\n+ 2 ann 5\n+ 3 bob 7"))],
            )
            .unwrap();
        let got = ChangeBatch::concat(&out_schema, &Vec::from_iter(out))
            .unwrap()
            .to_sorted_strings()
            .unwrap();
        assert_eq!(got, vec![(vec!["bob".to_string(), "14".to_string()], 1)]);
    }
}
