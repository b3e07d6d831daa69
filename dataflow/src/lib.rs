//! Freshet's dataflow: the change batches incremental operators exchange,
//! and the operators themselves (DESIGN.md, "Change batches" and "The
//! dataflow runtime").
//!
//! - [`ChangeBatch`]: an Arrow `RecordBatch` plus one signed weight per row
//!   (a Z-set); the currency of the dataflow.
//! - [`operator::Operator`]: the trait every incremental operator implements:
//!   filter, project and union (stateless, DataFusion physical expressions
//!   over whole batches), distinct, aggregate (any DataFusion aggregate),
//!   join (inner/outer/semi/anti with extra conditions), top-N and
//!   materialize (a view's contents), with state in `StateTable`s written
//!   into the epoch's commit through [`operator::Operator::commit`].
//! - [`graph::Runtime`]: every view's operator tree, and the step that
//!   pushes a [`step::StepInput`] (a statement's table writes today, source
//!   records next) through them into the epoch's writes, one atomic commit.
//!
//! The planner (`freshet-planner`) lowers a view's logical plan to a
//! [`graph::Node`] tree.

pub(crate) mod batch;
mod error;
pub mod graph;
pub mod operator;
pub mod step;
#[cfg(test)]
pub(crate) mod testing;

pub use batch::{batch_with_rows, expand_counts, ChangeBatch};
pub use error::{DataflowError, Result};
