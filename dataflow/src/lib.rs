//! Freshet's dataflow: the change batches incremental operators exchange,
//! and the operators themselves (DESIGN.md, "Change batches" and "The
//! dataflow runtime").
//!
//! - [`ChangeBatch`]: an Arrow `RecordBatch` plus one signed weight per row
//!   (a Z-set); the currency of the dataflow.
//! - [`operator::Operator`]: the trait every incremental operator implements;
//!   stateless ones so far ([`operator::Filter`], [`operator::Project`]),
//!   evaluated with DataFusion physical expressions over whole batches.
//!
//! Not built yet: stateful operators (join, aggregate, distinct, top-N) with
//! state tables in storage, the step scheduler and epoch commits, and the
//! planner pass that lowers a view's logical plan to an operator graph.

mod batch;
mod error;
pub mod operator;

pub use batch::ChangeBatch;
pub use error::{DataflowError, Result};
