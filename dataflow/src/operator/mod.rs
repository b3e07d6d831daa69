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
mod partitions;
mod project;
mod single_row;
mod topn;
mod union;
mod unnest;
mod window;

pub use aggregate::{Aggregate, AggregateSpec};
pub use distinct::Distinct;
pub use filter::Filter;
pub use join::{Join, JoinKind};
pub use materialize::{Materialize, MULTIPLICITY_COLUMN};
pub use project::Project;
pub use single_row::SingleRow;
pub use topn::TopN;
pub use union::Union;
pub use unnest::Unnest;
pub use window::Window;

use freshet_storage::{Snapshot, Txn};

use crate::{ChangeBatch, Result};

/// What an operator may read during a step: the last committed epoch.
/// Its own writes of the step are in its state tables' write buffers.
pub struct StepContext {
    pub snapshot: Snapshot,
}

/// An incremental operator. Only `step` is required; the step and
/// commit hooks have defaults, so a stateless operator is a few lines. Its
/// name and output schema live on its graph node ([`crate::graph::Node`]).
pub trait Operator: Send {
    /// One step: `inputs[i]` holds everything the step changed on input
    /// `i` (`None`: nothing; not consolidated), and the result is the
    /// operator's output change (`None`: nothing). Called once per step for
    /// every operator, also when no input changed (a global aggregate emits
    /// its first row so). State changes stay buffered until [`commit`] or
    /// [`abort`].
    ///
    /// [`commit`]: Operator::commit
    /// [`abort`]: Operator::abort
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>>;

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

/// The changes one step brings on each input of an operator.
pub type Inputs = Vec<Option<ChangeBatch>>;

/// The changes on the only input of a single-input operator, as they came.
pub(crate) fn only(inputs: Inputs) -> Option<ChangeBatch> {
    inputs
        .into_iter()
        .next()
        .flatten()
        .filter(|b| !b.is_empty())
}

/// The changes on the only input, consolidated (equal rows summed, rows
/// that cancel out dropped); `None` when nothing is left.
pub(crate) fn consolidated(inputs: Inputs) -> Result<Option<ChangeBatch>> {
    let Some(batch) = only(inputs) else {
        return Ok(None);
    };
    let batch = batch.consolidate()?;
    Ok((!batch.is_empty()).then_some(batch))
}

/// Several output batches of one step as one (`None` if all are empty).
pub(crate) fn merged(batches: Vec<ChangeBatch>) -> Result<Option<ChangeBatch>> {
    let batches: Vec<ChangeBatch> = batches.into_iter().filter(|b| !b.is_empty()).collect();
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    Ok(Some(ChangeBatch::concat(&first.schema(), &batches)?))
}
