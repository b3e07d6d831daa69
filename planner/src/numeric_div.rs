//! `numeric / numeric` with PostgreSQL's precision.
//!
//! DataFusion divides decimals at the dividend's scale plus 4 (`1.0 / 3` was
//! `0.33333`); PostgreSQL gives at least 16 significant digits
//! (`0.33333333333333333333`). A PostgreSQL numeric carries its scale per
//! value; an Arrow decimal column has one, so [`NumericDiv`] picks the
//! quotient's scale from the operand types: 20 digits after the point (the
//! scale PostgreSQL gives a quotient below 1, which ratios mostly are), or
//! the operands' own scale if larger, less only where the integer digits
//! the quotient may need leave fewer of the 38 (never less than 16). It
//! rounds half away from zero, as PostgreSQL does. Larger quotients show more digits than
//! PostgreSQL prints (it keeps 16 significant ones), never fewer correct
//! ones.
//!
//! [`NumericDivision`] runs before type coercion, so everything above the
//! division is typed by the quotient's type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{plan_err, DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::Expr;

use crate::error::PlannerError;

/// The digits after the point a quotient gets at least.
const MIN_SCALE: i32 = 20;
const MAX_PRECISION: i32 = 38;

/// The decimal type an integer operand is divided as.
fn as_decimal(t: &DataType) -> Option<(u8, i8)> {
    Some(match t {
        DataType::Decimal128(p, s) => (*p, *s),
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        _ => return None,
    })
}

/// The digits after the point a quotient keeps however many integer digits
/// its operands' types allow (PostgreSQL's minimum of significant digits).
const FLOOR_SCALE: i32 = 16;

/// The quotient's type for dividend `(p1, s1)` and divisor `(p2, s2)`.
pub fn quotient_type(p1: u8, s1: i8, _p2: u8, s2: i8) -> (u8, i8) {
    let (p1, s1, s2) = (p1 as i32, s1 as i32, s2 as i32);
    // Dividing by the smallest non-zero divisor, 10^-s2, adds s2 digits.
    let int_digits = ((p1 - s1).max(1) + s2.max(0)).min(MAX_PRECISION);
    let wanted = MIN_SCALE.max(s1).max(s2).min(MAX_PRECISION);
    // Wide operands (unconstrained numeric is (38, 10)) would leave no
    // scale at all: they keep 16 digits, and a quotient with more than 22
    // integer digits is a numeric field overflow (22003).
    let scale = wanted
        .min(MAX_PRECISION - int_digits)
        .max(wanted.min(FLOOR_SCALE));
    ((int_digits + scale).min(MAX_PRECISION) as u8, scale as i8)
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NumericDiv {
    signature: Signature,
}

impl NumericDiv {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(NumericDiv {
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for NumericDiv {
    fn name(&self) -> &str {
        "numeric_div"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        args.iter()
            .map(|t| match as_decimal(t) {
                Some((p, s)) => Ok(DataType::Decimal128(p, s)),
                None => plan_err!("numeric_div takes numeric arguments, not {t}"),
            })
            .collect()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (as_decimal(&args[0]), as_decimal(&args[1])) {
            (Some((p1, s1)), Some((p2, s2))) => {
                let (p, s) = quotient_type(p1, s1, p2, s2);
                Ok(DataType::Decimal128(p, s))
            }
            _ => plan_err!("numeric_div takes numeric arguments"),
        }
    }

    /// The operator's own name: `a / b` stays `a / b`.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(format!(
            "{} / {}",
            args[0].schema_name(),
            args[1].schema_name()
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let to_decimal = |a: &ArrayRef| -> Result<ArrayRef> {
            match as_decimal(a.data_type()) {
                Some((p, s)) => Ok(cast(a, &DataType::Decimal128(p, s))?),
                None => plan_err!("numeric_div takes numeric arguments"),
            }
        };
        let (a, b) = (to_decimal(&arrays[0])?, to_decimal(&arrays[1])?);
        let (DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)) =
            (a.data_type().clone(), b.data_type().clone())
        else {
            unreachable!("cast to decimals above")
        };
        let (p, s) = quotient_type(p1, s1, p2, s2);
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        // quotient = a / 10^s1 / (b / 10^s2), wanted as q / 10^s:
        // q = a * 10^(s + s2 - s1) / b.
        let shift = s as i32 + s2 as i32 - s1 as i32;
        let ten = i256::from_i128(10);
        let limit = 10i128.pow(p as u32);
        let out: Decimal128Array = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| -> Result<Option<i128>> {
                let (Some(x), Some(y)) = (x, y) else {
                    return Ok(None);
                };
                if y == 0 {
                    return Err(DataFusionError::ArrowError(
                        Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
                        None,
                    ));
                }
                let (mut num, mut den) = (i256::from_i128(x), i256::from_i128(y));
                if shift >= 0 {
                    num = num.wrapping_mul(ten.wrapping_pow(shift as u32));
                } else {
                    den = den.wrapping_mul(ten.wrapping_pow((-shift) as u32));
                }
                let q = num.wrapping_div(den);
                let r = num.wrapping_rem(den);
                let twice = r.wrapping_abs().wrapping_mul(i256::from_i128(2));
                let q = if twice >= den.wrapping_abs() {
                    if (num < i256::ZERO) == (den < i256::ZERO) {
                        q.wrapping_add(i256::ONE)
                    } else {
                        q.wrapping_sub(i256::ONE)
                    }
                } else {
                    q
                };
                match q.to_i128() {
                    Some(v) if v.abs() < limit => Ok(Some(v)),
                    _ => Err(DataFusionError::External(Box::new(
                        PlannerError::NumericOutOfRange("numeric field overflow".into()),
                    ))),
                }
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .collect();
        let out = out.with_precision_and_scale(p, s)?;
        crate::functions::columnar(Arc::new(out) as ArrayRef, scalar)
    }
}

/// Turns `numeric / numeric` (an integer on one side) into [`NumericDiv`].
/// Runs before type coercion.
#[derive(Debug, Default)]
pub struct NumericDivision;

impl AnalyzerRule for NumericDivision {
    fn name(&self) -> &str {
        "freshet_numeric_division"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let udf = Arc::new(NumericDiv::udf());
        plan.transform_up_with_subqueries(|node| {
            let schema = match node.inputs().as_slice() {
                [] => node.schema().as_ref().clone(),
                inputs => merge_schema(inputs),
            };
            node.map_expressions(|e| e.transform_up(|e| divide(e, &schema, &udf)))
        })
        .map(|t| t.data)
    }
}

fn divide(e: Expr, schema: &DFSchema, udf: &Arc<ScalarUDF>) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    }) = e
    else {
        return Ok(Transformed::no(e));
    };
    let (lt, rt) = (left.get_type(schema), right.get_type(schema));
    let numeric = |t: &Result<DataType>| matches!(t, Ok(DataType::Decimal128(..)));
    let number = |t: &Result<DataType>| t.as_ref().is_ok_and(|t| as_decimal(t).is_some());
    if (numeric(&lt) && number(&rt)) || (number(&lt) && numeric(&rt)) {
        return Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), vec![*left, *right]),
        )));
    }
    Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Divide,
        right,
    })))
}

/// The rule, for the analyzer's list (before type coercion).
pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(NumericDivision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotient_types() {
        // 1.0 / 3: one integer digit, 20 after the point.
        assert_eq!(quotient_type(2, 1, 19, 0), (21, 20));
        // Unconstrained numeric (38, 10) keeps 16 digits.
        assert_eq!(quotient_type(38, 10, 38, 10), (38, 16));
        assert_eq!(quotient_type(38, 10, 19, 0), (38, 16));
        assert_eq!(quotient_type(10, 2, 10, 2), (30, 20));
        // A scale above 20 is kept.
        assert_eq!(quotient_type(30, 25, 3, 0), (30, 25));
    }
}
