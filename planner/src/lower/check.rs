//! Pass 1: every `LogicalPlan` variant matched by name (no catch-all);
//! what has no incremental operator is rejected with `0A000` naming the
//! construct, before anything is built.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::logical_plan::{Distinct, FetchType, SkipType};
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::unsupported;
use crate::Result;

/// Functions whose value moves with time. A view is maintained when its
/// inputs change, not when the clock does, so a view over `now()` would
/// keep rows its query no longer returns: refused until temporal filters
/// are maintained (the event-time issue).
const TIME_FUNCTIONS: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
];

/// Rejects a query that reads the clock (see [`TIME_FUNCTIONS`]),
/// anywhere in it, subqueries included. Runs on the plan as planned,
/// before the optimizer folds `now()` into a constant.
pub fn moves_with_time(plan: &LogicalPlan) -> Result<()> {
    let mut found = None;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    let name = f.name().to_ascii_lowercase();
                    if TIME_FUNCTIONS.contains(&name.as_str()) {
                        found = Some(name);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    match found {
        Some(f) => Err(unsupported(format!("{f}(), whose value moves with time,"))),
        None => Ok(()),
    }
}

/// Pass 1: rejects every construct without an incremental operator.
pub fn check(plan: &LogicalPlan) -> Result<()> {
    match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::EmptyRelation(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Values(_)
        | LogicalPlan::Sort(_) => {}
        LogicalPlan::Aggregate(a) => {
            if a.group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Err(unsupported("GROUPING SETS / ROLLUP / CUBE"));
            }
        }
        LogicalPlan::Window(_) => {
            // ROW_NUMBER() … <= n is matched with its filter in pass 2 as a
            // top-N; every other window is computed per touched partition.
        }
        LogicalPlan::Limit(l) => {
            if !matches!(l.get_skip_type()?, SkipType::Literal(_))
                || !matches!(l.get_fetch_type()?, FetchType::Literal(_))
            {
                return Err(unsupported("LIMIT/OFFSET with a non-constant count"));
            }
        }
        LogicalPlan::Distinct(Distinct::All(_)) => {}
        LogicalPlan::Distinct(Distinct::On(_)) => return Err(unsupported("DISTINCT ON")),
        LogicalPlan::Repartition(_) => return Err(unsupported("repartitioning")),
        LogicalPlan::Subquery(_) => return Err(unsupported("a correlated subquery")),
        LogicalPlan::Statement(_) => return Err(unsupported("a statement")),
        LogicalPlan::Explain(_) => return Err(unsupported("EXPLAIN")),
        LogicalPlan::Analyze(_) => return Err(unsupported("EXPLAIN ANALYZE")),
        LogicalPlan::Extension(e) => {
            return Err(unsupported(format!("the {} operator", e.node.name())))
        }
        LogicalPlan::Dml(_) => return Err(unsupported("INSERT/UPDATE/DELETE")),
        LogicalPlan::Ddl(_) => return Err(unsupported("DDL")),
        LogicalPlan::Copy(_) => return Err(unsupported("COPY")),
        LogicalPlan::DescribeTable(_) => return Err(unsupported("DESCRIBE")),
        LogicalPlan::Unnest(u) => {
            // One level of list columns (what `unnest(list)` and the
            // set-returning functions built on it plan to).
            let mut seen = std::collections::HashSet::new();
            if !u.struct_type_columns.is_empty()
                || u.list_type_columns
                    .iter()
                    .any(|(i, l)| l.depth != 1 || !seen.insert(*i))
            {
                return Err(unsupported("UNNEST of a struct or nested list"));
            }
        }
        LogicalPlan::RecursiveQuery(_) => return Err(unsupported("WITH RECURSIVE")),
    }
    for e in plan.expressions() {
        check_expr(&e)?;
    }
    for input in plan.inputs() {
        check(input)?;
    }
    Ok(())
}

fn check_expr(e: &Expr) -> Result<()> {
    let mut err = None;
    e.apply(|e| {
        let bad = match e {
            Expr::ScalarFunction(f)
                if f.func.signature().volatility
                    == datafusion::logical_expr::Volatility::Volatile =>
            {
                Some(format!("the volatile function {}()", f.func.name()))
            }
            Expr::Placeholder(_) => Some("a parameter ($n)".to_string()),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(
                "this subquery (scalar subqueries are supported in WHERE, and correlated \
                 ones where they can be decorrelated)"
                    .to_string(),
            ),
            Expr::OuterReferenceColumn(..) => Some("a correlated subquery".to_string()),
            _ => None,
        };
        Ok(match bad {
            Some(b) => {
                err = Some(b);
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })?;
    match err {
        Some(what) => Err(unsupported(what)),
        None => Ok(()),
    }
}
