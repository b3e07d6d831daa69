//! PostgreSQL's date arithmetic where DataFusion's differs: `date ±
//! interval` is a `timestamp` in PostgreSQL (`'2024-01-01'::date +
//! interval '1 hour'` is `2024-01-01 01:00:00`); DataFusion kept a date
//! and dropped the hour. `interval * n` and `interval / n` do not exist in
//! DataFusion; [`IntervalScale`] computes them as PostgreSQL's
//! `interval_mul` does (a fraction of a month spills into 30-day days, a
//! fraction of a day into 24-hour time). [`DateIntervalPlanner`] plans the operator with
//! the date cast to a timestamp, as the SQL is planned, so the plan has
//! PostgreSQL's type from the start (a later rewrite would leave stale
//! types in the plans above it).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{
    DataType, Float64Type, IntervalMonthDayNano, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    binary_expr, cast, ColumnarValue, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
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
        let (Ok(l), Ok(r)) = (expr.left.get_type(schema), expr.right.get_type(schema)) else {
            return Ok(PlannerResult::Original(expr));
        };
        let interval = |t: &DataType| matches!(t, DataType::Interval(_));
        let number = |t: &DataType| t.is_numeric();
        // interval * n, n * interval, interval / n (DataFusion has none).
        let scaled = match expr.op {
            BinaryOperator::Multiply if interval(&l) && number(&r) => {
                Some((expr.left.clone(), expr.right.clone(), false))
            }
            BinaryOperator::Multiply if number(&l) && interval(&r) => {
                Some((expr.right.clone(), expr.left.clone(), false))
            }
            BinaryOperator::Divide if interval(&l) && number(&r) => {
                Some((expr.left.clone(), expr.right.clone(), true))
            }
            _ => None,
        };
        if let Some((iv, n, divide)) = scaled {
            let iv = cast(iv, DataType::Interval(IntervalUnit::MonthDayNano));
            let n = cast(n, DataType::Float64);
            let f = Arc::new(ScalarUDF::from(IntervalScale::new(divide)));
            return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                ScalarFunction::new_udf(f, vec![iv, n]),
            )));
        }
        let op = match expr.op {
            BinaryOperator::Plus => Operator::Plus,
            BinaryOperator::Minus => Operator::Minus,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(if is_date(&l) && interval(&r) {
            PlannerResult::Planned(binary_expr(timestamp(expr.left), op, expr.right))
        } else if op == Operator::Plus && interval(&l) && is_date(&r) {
            PlannerResult::Planned(binary_expr(expr.left, op, timestamp(expr.right)))
        } else {
            PlannerResult::Original(expr)
        })
    }
}

/// `interval * n` (or `/ n`) with PostgreSQL's spilling of fractions.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntervalScale {
    divide: bool,
    signature: Signature,
}

impl IntervalScale {
    pub fn new(divide: bool) -> Self {
        IntervalScale {
            divide,
            signature: Signature::exact(
                vec![
                    DataType::Interval(IntervalUnit::MonthDayNano),
                    DataType::Float64,
                ],
                Volatility::Immutable,
            ),
        }
    }
}

/// Rounds seconds to microseconds (PostgreSQL's TSROUND).
fn ts_round(x: f64) -> f64 {
    (x * 1e6).round_ties_even() / 1e6
}

/// PostgreSQL's `interval_mul`.
pub fn scale_interval(v: IntervalMonthDayNano, factor: f64) -> Option<IntervalMonthDayNano> {
    const DAYS_PER_MONTH: f64 = 30.0;
    const SECS_PER_DAY: f64 = 86_400.0;
    if !factor.is_finite() {
        return None;
    }
    let months = v.months as f64 * factor;
    let days = v.days as f64 * factor;
    if months.abs() > i32::MAX as f64 || days.abs() > i32::MAX as f64 {
        return None;
    }
    let (r_months, mut r_days) = (months.trunc() as i32, days.trunc() as i32);
    let month_remainder_days = ts_round((months - r_months as f64) * DAYS_PER_MONTH);
    let mut sec_remainder = ts_round(
        (days - r_days as f64 + month_remainder_days - month_remainder_days.trunc()) * SECS_PER_DAY,
    );
    if sec_remainder.abs() >= SECS_PER_DAY {
        let whole = (sec_remainder / SECS_PER_DAY).trunc();
        r_days = r_days.checked_add(whole as i32)?;
        sec_remainder -= whole * SECS_PER_DAY;
    }
    r_days = r_days.checked_add(month_remainder_days.trunc() as i32)?;
    let micros = ((v.nanoseconds / 1000) as f64 * factor + sec_remainder * 1e6).round_ties_even();
    if micros.abs() > i64::MAX as f64 / 1000.0 {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        r_months,
        r_days,
        micros as i64 * 1000,
    ))
}

impl ScalarUDFImpl for IntervalScale {
    fn name(&self) -> &str {
        if self.divide {
            "interval_div"
        } else {
            "interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let op = if self.divide { "/" } else { "*" };
        Ok(format!(
            "{} {op} {}",
            args[0].schema_name(),
            args[1].schema_name()
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let (ivs, ns) = (
            arrays[0].as_primitive::<IntervalMonthDayNanoType>(),
            arrays[1].as_primitive::<Float64Type>(),
        );
        let out: IntervalMonthDayNanoArray = ivs
            .iter()
            .zip(ns.iter())
            .map(|(iv, n)| -> Result<Option<IntervalMonthDayNano>> {
                let (Some(iv), Some(n)) = (iv, n) else {
                    return Ok(None);
                };
                if self.divide && n == 0.0 {
                    return Err(DataFusionError::ArrowError(
                        Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                        None,
                    ));
                }
                let factor = if self.divide { 1.0 / n } else { n };
                scale_interval(iv, factor).map(Some).ok_or_else(|| {
                    DataFusionError::External(Box::new(crate::PlannerError::NumericOutOfRange(
                        "interval out of range".into(),
                    )))
                })
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .collect();
        crate::functions::columnar(Arc::new(out) as ArrayRef, scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_mul_spills_like_postgres() {
        let iv = |m, d, us: i64| IntervalMonthDayNano::new(m, d, us * 1000);
        // '1 hour' * 2
        assert_eq!(
            scale_interval(iv(0, 0, 3_600_000_000), 2.0),
            Some(iv(0, 0, 7_200_000_000))
        );
        // '1 month' * 1.5 = 1 mon 15 days
        assert_eq!(scale_interval(iv(1, 0, 0), 1.5), Some(iv(1, 15, 0)));
        // '1 day' * 1.5 = 1 day 12:00:00
        assert_eq!(
            scale_interval(iv(0, 1, 0), 1.5),
            Some(iv(0, 1, 43_200_000_000))
        );
        // '1 month' / 7 = 4 days 06:51:25.6896 (PostgreSQL 15)
        assert_eq!(
            scale_interval(iv(1, 0, 0), 1.0 / 7.0),
            Some(iv(0, 4, 24_685_689_600))
        );
    }
}
