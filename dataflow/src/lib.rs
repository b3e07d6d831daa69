//! Freshet's dataflow: the change batches incremental operators exchange,
//! and the operators themselves (DESIGN.md, "Change batches" and "The
//! dataflow runtime").
//!
//! - [`ChangeBatch`]: an Arrow `RecordBatch` plus one signed weight per row
//!   (a Z-set); the currency of the dataflow.
//! - [`operator::Operator`]: the trait every incremental operator implements:
//!   [`operator::Filter`] and [`operator::Project`] (stateless, DataFusion
//!   physical expressions over whole batches), [`operator::Distinct`] and
//!   [`operator::Aggregate`] (count/sum/min/max) and [`operator::HashJoin`]
//!   (inner equi-join), with state in `StateTable`s written into the epoch's
//!   commit through [`operator::Operator::commit`].
//!
//! Not built yet: outer joins, the remaining aggregates, top-N, the step
//! scheduler, and the planner pass that lowers a view's
//! logical plan to an operator graph.

mod batch;
mod error;
pub mod operator;

pub use batch::ChangeBatch;
pub use error::{DataflowError, Result};
