//! PostgreSQL's date arithmetic where DataFusion's differs: `date ±
//! interval` is a `timestamp` in PostgreSQL (`'2024-01-01'::date +
//! interval '1 hour'` is `2024-01-01 01:00:00`); DataFusion kept a date
//! and dropped the hour. [`DateIntervalPlanner`] plans the operator with
//! the date cast to a timestamp, as the SQL is planned, so the plan has
//! PostgreSQL's type from the start (a later rewrite would leave stale
//! types in the plans above it).

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{binary_expr, cast, ExprSchemable, Operator};
use datafusion::prelude::Expr;
use datafusion::sql::sqlparser::ast::BinaryOperator;

#[derive(Debug, Default)]
pub struct DateIntervalPlanner;

fn is_date(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64)
}

fn timestamp(e: Expr) -> Expr {
    cast(e, DataType::Timestamp(TimeUnit::Microsecond, None))
}

impl ExprPlanner for DateIntervalPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let op = match expr.op {
            BinaryOperator::Plus => Operator::Plus,
            BinaryOperator::Minus => Operator::Minus,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let (Ok(l), Ok(r)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        let interval = |t: &DataType| matches!(t, DataType::Interval(_));
        Ok(if is_date(&l) && interval(&r) {
            PlannerResult::Planned(binary_expr(timestamp(expr.left), op, expr.right))
        } else if op == Operator::Plus && interval(&l) && is_date(&r) {
            PlannerResult::Planned(binary_expr(expr.left, op, timestamp(expr.right)))
        } else {
            PlannerResult::Original(expr)
        })
    }
}
