//! Incremental operators.
//!
//! Every operator turns changes to its inputs into changes to its output:
//! given the change batches `Δin`, it emits `Δout` such that applying `Δout`
//! to the output it had equals recomputing the output over the changed
//! inputs. Stateless operators (filter, project, union) apply themselves to
//! the delta; stateful ones (join, aggregate, distinct, top-N, materialize)
//! keep their state in storage state tables committed with the epoch.

mod aggregate;
mod distinct;
mod filter;
mod join;
mod materialize;
mod ordered;
mod project;
mod topn;
mod union;

pub use aggregate::{Aggregate, AggregateSpec};
pub use distinct::Distinct;
pub use filter::Filter;
pub use join::{Join, JoinKind};
pub use materialize::{Materialize, MULTIPLICITY_COLUMN};
pub use project::Project;
pub use topn::TopN;
pub use union::Union;

use datafusion::arrow::datatypes::SchemaRef;
use freshet_storage::{Snapshot, Txn};

use crate::{ChangeBatch, Result};

/// What an operator may read during a step: the last committed epoch.
/// Its own writes of the step are in its state tables' write buffers.
pub struct StepContext {
    pub snapshot: Snapshot,
}

/// An incremental operator. Only `process` is required; the step and
/// commit hooks have defaults, so a stateless operator is a few lines.
pub trait Operator: Send {
    /// A short name for plans and `EXPLAIN` (`Filter`, `HashJoin`, …).
    fn name(&self) -> &str;

    /// The schema of the changes this operator emits.
    fn schema(&self) -> SchemaRef;

    /// Consumes changes arriving on input `input` (0 for single-input
    /// operators) and returns the resulting output changes.
    fn process(
        &mut self,
        ctx: &StepContext,
        input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>>;

    /// Called once at the end of every step, before its epoch commits:
    /// operators that buffer within a step emit here. Default: nothing.
    fn end_step(&mut self, _ctx: &StepContext) -> Result<Vec<ChangeBatch>> {
        Ok(Vec::new())
    }

    /// Writes the step's state changes into the epoch's commit. Stateless
    /// operators have none.
    fn commit(&mut self, _txn: &mut Txn) {}

    /// Forgets the step's buffered input and state changes: the step failed
    /// and nothing of it is committed.
    fn abort(&mut self) {}

    /// The operator's state tables with what each holds (for `EXPLAIN`).
    fn state_tables(&self) -> Vec<(u32, String)> {
        Vec::new()
    }

    /// Operator details for `EXPLAIN` (expressions, kinds, limits).
    fn describe(&self) -> String {
        String::new()
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

    /// A fresh store in a temporary directory (removed on drop).
    pub struct TempStore {
        pub store: freshet_storage::Store,
        dir: std::path::PathBuf,
    }

    impl TempStore {
        pub fn new(name: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "freshet-dataflow-{name}-{}-{n}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let store = freshet_storage::Store::open(&dir, Default::default()).unwrap();
            Self { store, dir }
        }

        pub fn ctx(&self) -> super::StepContext {
            super::StepContext {
                snapshot: self.store.snapshot(),
            }
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
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
