//! `INTERSECT ALL` and `EXCEPT ALL` with SQL's multiplicities.
//!
//! DataFusion plans `L INTERSECT ALL R` as a semi join of L with R on all
//! columns (NULLs equal), which keeps every copy of a row of L that R has
//! at all: `{NULL, NULL} INTERSECT ALL {NULL}` gave two NULLs, and `EXCEPT
//! ALL` (an anti join) dropped a row however many more copies L had.
//! PostgreSQL keeps `min(m, n)` copies of a row that L has `m` times and R
//! `n` times for INTERSECT ALL, and `max(m - n, 0)` for EXCEPT ALL.
//!
//! [`SetOperationsAll`] numbers the copies of each row on both sides
//! (`row_number() OVER (PARTITION BY every column)`) and joins on the
//! columns and the copy number: copy k of a row of L survives INTERSECT
//! ALL if R has a k-th copy, and EXCEPT ALL if it has not. It runs first
//! in the analyzer, so queries, DML and materialized views (whose window
//! operator maintains the numbering) all get it.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, NullEquality, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt, JoinType, LogicalPlan, LogicalPlanBuilder};
use datafusion::optimizer::AnalyzerRule;

/// The copy-number column each side gets (named apart: some plans hold
/// both sides' columns unqualified).
const COPY: &str = "__freshet_copy";

#[derive(Debug, Default)]
pub struct SetOperationsAll;

impl AnalyzerRule for SetOperationsAll {
    fn name(&self) -> &str {
        "freshet_set_operations_all"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(rewrite).map(|t| t.data)
    }
}

/// Whether `node` is DataFusion's plan of `INTERSECT ALL` / `EXCEPT ALL`:
/// a semi or anti join on every column, NULLs equal, of a left side that
/// is not made distinct first (that is plain INTERSECT / EXCEPT, whose
/// answer is right), and not rewritten already.
fn is_set_operation_all(node: &LogicalPlan) -> bool {
    let LogicalPlan::Join(j) = node else {
        return false;
    };
    let width = j.left.schema().fields().len();
    matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && j.null_equality == NullEquality::NullEqualsNull
        && j.filter.is_none()
        && j.on.len() == width
        && j.right.schema().fields().len() == width
        && !matches!(j.left.as_ref(), LogicalPlan::Distinct(_))
        && j.on
            .iter()
            .all(|(l, r)| matches!((l, r), (Expr::Column(_), Expr::Column(_))))
        && !j
            .left
            .schema()
            .fields()
            .iter()
            .any(|f| f.name().starts_with(COPY))
}

/// `side` under the alias `alias`, with its rows' copy numbers as [`COPY`].
fn numbered(side: &LogicalPlan, alias: &str) -> Result<LogicalPlan> {
    let side = LogicalPlanBuilder::from(side.clone())
        .alias(alias)?
        .build()?;
    let columns: Vec<Expr> = side
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let copy = row_number().partition_by(columns.clone()).build()?;
    let name = copy.schema_name().to_string();
    let with_copy = LogicalPlanBuilder::from(side).window(vec![copy])?.build()?;
    let mut exprs = columns;
    exprs.push(Expr::Column(Column::from_name(name)).alias(format!("{COPY}{alias}")));
    LogicalPlanBuilder::from(with_copy).project(exprs)?.build()
}

fn rewrite(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if !is_set_operation_all(&node) {
        return Ok(Transformed::no(node));
    }
    let LogicalPlan::Join(j) = &node else {
        unreachable!("checked above")
    };
    let (left, right) = (numbered(&j.left, "__left")?, numbered(&j.right, "__right")?);
    let keys = |side: &LogicalPlan| -> Vec<Column> { side.schema().columns() };
    let joined = LogicalPlanBuilder::from(left.clone())
        .join_detailed(
            right.clone(),
            j.join_type,
            (keys(&left), keys(&right)),
            None,
            NullEquality::NullEqualsNull,
        )?
        .build()?;
    // Back to the left side's columns under their own names.
    let original = j.left.schema();
    let exprs: Vec<Expr> = left
        .schema()
        .columns()
        .into_iter()
        .zip(original.iter())
        .map(|(c, (qualifier, field))| {
            Expr::Column(c).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let plan = LogicalPlanBuilder::from(joined).project(exprs)?.build()?;
    Ok(Transformed::yes(plan))
}

/// The rule, for the analyzer's list.
pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(SetOperationsAll)
}
