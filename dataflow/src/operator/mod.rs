//! Incremental operators.
//!
//! Every operator turns changes to its inputs into changes to its output:
//! given the change batches `Δin`, it emits `Δout` such that applying `Δout`
//! to the output it had equals recomputing the output over the changed
//! inputs. Stateless operators (filter, project) apply themselves to the
//! delta; stateful ones (join, aggregate, …; not built yet) will keep their
//! state in storage state tables committed with the epoch.

mod filter;
mod project;

pub use filter::Filter;
pub use project::Project;

use datafusion::arrow::datatypes::SchemaRef;

use crate::{ChangeBatch, Result};

/// An incremental operator. Only `process` is required; the step hook has a
/// default, so a stateless operator is a few lines.
pub trait Operator: Send {
    /// A short name for plans and `EXPLAIN` (`Filter`, `HashJoin`, …).
    fn name(&self) -> &str;

    /// The schema of the changes this operator emits.
    fn schema(&self) -> SchemaRef;

    /// Consumes changes arriving on input `input` (0 for single-input
    /// operators) and returns the resulting output changes.
    fn process(&mut self, input: usize, batch: ChangeBatch) -> Result<Vec<ChangeBatch>>;

    /// Called once at the end of every step, before its epoch commits:
    /// operators that buffer within a step emit here. Default: nothing.
    fn end_step(&mut self) -> Result<Vec<ChangeBatch>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use datafusion::common::DFSchema;
    use datafusion::execution::context::ExecutionProps;
    use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
    use datafusion::logical_expr::Expr;
    use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};

    pub fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]))
    }

    pub fn physical(e: Expr, schema: &SchemaRef) -> Arc<dyn PhysicalExpr> {
        let df = DFSchema::try_from(schema.as_ref().clone()).unwrap();
        create_physical_expr(
            &e,
            &df,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .unwrap()
    }

    /// A tiny deterministic generator for randomized tests.
    pub struct Lcg(pub u64);

    impl Lcg {
        pub fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }
}
