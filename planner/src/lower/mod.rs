//! Lowering a materialized view's query to a dataflow (DESIGN.md: SQL →
//! DataFusion `LogicalPlan` → dataflow plan), as visible passes:
//!
//! 1. [`rewrite`]: scalar subqueries joined in (before optimization, so the
//!    optimizer does not run them as batch plans), then DataFusion's
//!    optimizer (once), then null-aware `NOT IN` anti joins rewritten;
//! 2. [`check`]: every `LogicalPlan` variant matched by name (no
//!    catch-all), rejecting what has no incremental operator with `0A000`
//!    naming the construct;
//! 3. [`build`]: the checked plan turned bottom-up into a [`Node`] tree of
//!    incremental operators ([`window`] for window functions);
//! 4. [`key`]: the columns the view's rows are unique by, which key its
//!    contents.
//!
//! The DataFusion optimizer decorrelates subqueries (IN/EXISTS become
//! semi/anti joins, scalar subqueries joins with aggregates), inlines CTEs
//! and views, and rewrites DISTINCT, INTERSECT and EXCEPT into aggregates
//! and joins, so those need no operators of their own.

mod build;
mod check;
mod key;
mod rewrite;
mod window;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use freshet_dataflow::graph::Node;
use freshet_dataflow::operator::Materialize;

pub use build::Lowering;
pub use check::check;
pub use key::view_key;
pub use rewrite::{join_scalar_subqueries, rewrite_not_in, split_scalar_subqueries};

use crate::{PlannerError, Result};

pub(crate) fn unsupported(what: impl Into<String>) -> PlannerError {
    PlannerError::not_supported(format!("{} in a materialized view", what.into()))
}

/// Passes 1 and 2: the plan a view is lowered from — scalar subqueries
/// joined in, optimized once, `NOT IN` rewritten, checked.
pub fn prepare(plan: &LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
    // Before the optimizer folds now() into the planning instant.
    check::moves_with_time(plan)?;
    let plan = join_scalar_subqueries(plan.clone())?;
    let optimized = rewrite_not_in(state.optimize(&plan)?)?;
    check(&optimized)?;
    Ok(optimized)
}

/// Where a view's dataflow keeps its rows and state.
pub struct Target<'a> {
    /// The view's columns.
    pub schema: SchemaRef,
    /// The state table holding the view's contents.
    pub table_id: u32,
    /// The first state table id its operators may use.
    pub first_state_id: u32,
    /// The columns keying its contents (see [`view_key`]).
    pub key: Option<&'a [usize]>,
}

/// Pass 3: lowers a prepared plan to the view's operator tree, rooted at
/// the `Materialize` that keeps its contents. Returns the tree and the
/// number of state table ids it used (from `target.first_state_id` on).
pub fn lower(prepared: &LogicalPlan, target: Target<'_>) -> Result<(Node, u32)> {
    let mut lowering = Lowering::new(target.first_state_id);
    let tree = lowering.build(prepared)?;
    let root = Node::op(
        "Materialize",
        target.schema.clone(),
        Materialize::new(
            target.schema,
            target.table_id,
            target.key.map(|k| k.to_vec()),
        )?,
        vec![tree],
    );
    Ok((root, lowering.next_id() - target.first_state_id))
}

/// The direct inputs of a view: the relations its (unoptimized, not yet
/// view-inlined) plan scans.
pub fn scanned_relations(plan: &LogicalPlan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(t) = p {
            let name = t.table_name.table().to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}
