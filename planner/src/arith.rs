//! PostgreSQL's integer arithmetic, where DataFusion's differs by giving
//! a wrong answer instead of an error:
//!
//! - `+`, `-`, `*` and unary `-` of integers wrap in DataFusion
//!   (`9223372036854775807::bigint * 2` is `-2`); PostgreSQL raises
//!   `bigint out of range` (22003). [`CheckedIntegerArithmetic`], an
//!   analyzer rule run after type coercion, turns each such operation into
//!   a checked function ([`CheckedOp`]) that raises as PostgreSQL does.
//!   The functions keep the operator's column name (`a + b`), so plans
//!   above them are unchanged; constant folding evaluates them too, so a
//!   literal overflow fails at planning, as in PostgreSQL.
//! - casts of `real`, `double precision` and `numeric` to an integer
//!   truncate in DataFusion; PostgreSQL rounds ([`RoundForCast`] first).
//! - `sum(bigint)` wraps in DataFusion; PostgreSQL's is `numeric`.
//!   [`PgSum`] is DataFusion's `sum` with PostgreSQL's argument types:
//!   `smallint`/`integer` sum as `bigint`, `bigint` as `numeric`.
//!
//! Ad-hoc queries, DML and materialized views all plan through the same
//! session state, so views raise (and change nothing) where a query would.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{plan_err, DFSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::sum::Sum;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{merge_schema, AggregateOrderSensitivity};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, BinaryExpr, Cast, ColumnarValue, Documentation, EmitTo,
    ExprSchemable, GroupsAccumulator, LogicalPlan, Operator, ReversedUDAF, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, SetMonotonicity, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::Expr;

use crate::error::PlannerError;

/// The PostgreSQL name of an integer type, for "… out of range".
fn pg_integer_name(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        _ => return None,
    })
}

/// One of the checked integer operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Plus,
    Minus,
    Multiply,
    Negate,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Plus => "+",
            Op::Minus => "-",
            Op::Multiply => "*",
            Op::Negate => "-",
        }
    }
}

/// `a + b`, `a - b`, `a * b` or `-a` of one integer type, raising 22003
/// on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedOp {
    op: Op,
    name: &'static str,
    signature: Signature,
}

impl CheckedOp {
    pub fn new(op: Op) -> CheckedOp {
        let (name, arity) = match op {
            Op::Plus => ("int_plus", 2),
            Op::Minus => ("int_minus", 2),
            Op::Multiply => ("int_mul", 2),
            Op::Negate => ("int_negate", 1),
        };
        let types = [DataType::Int16, DataType::Int32, DataType::Int64];
        let signature = Signature::one_of(
            types
                .iter()
                .map(|t| datafusion::logical_expr::TypeSignature::Exact(vec![t.clone(); arity]))
                .collect(),
            Volatility::Immutable,
        );
        CheckedOp {
            op,
            name,
            signature,
        }
    }

    /// The four operations, to register.
    pub fn udfs() -> Vec<ScalarUDF> {
        [Op::Plus, Op::Minus, Op::Multiply, Op::Negate]
            .into_iter()
            .map(|op| ScalarUDF::from(CheckedOp::new(op)))
            .collect()
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    /// The operator's own column name (`a + b`, `(- a)`), so that
    /// rewriting an analyzed plan renames nothing.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(match args {
            [a] => format!("(- {})", a.schema_name()),
            [a, b] => format!(
                "{} {} {}",
                a.schema_name(),
                self.op.symbol(),
                b.schema_name()
            ),
            _ => return plan_err!("{} takes one or two arguments", self.name),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let t = arrays[0].data_type().clone();
        let out: std::result::Result<ArrayRef, _> = match (self.op, arrays.as_slice()) {
            (Op::Plus, [a, b]) => numeric::add(a, b),
            (Op::Minus, [a, b]) => numeric::sub(a, b),
            (Op::Multiply, [a, b]) => numeric::mul(a, b),
            (Op::Negate, [a]) => numeric::neg(a),
            _ => return plan_err!("{}: wrong number of arguments", self.name),
        };
        let out = out.map_err(|e| match e {
            datafusion::arrow::error::ArrowError::ArithmeticOverflow(_) => {
                DataFusionError::External(Box::new(PlannerError::NumericOutOfRange(format!(
                    "{} out of range",
                    pg_integer_name(&t).unwrap_or("integer")
                ))))
            }
            other => DataFusionError::ArrowError(Box::new(other), None),
        })?;
        crate::functions::columnar(out, scalar)
    }
}

/// Rounds a `real`, `double precision` or `numeric` to a whole number of
/// the same type, as PostgreSQL does before casting it to an integer:
/// floats to the nearest even on ties (`rint`), numerics away from zero.
/// DataFusion's cast truncates (`CAST(3.7 AS INT)` was 3; PostgreSQL: 4).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RoundForCast {
    signature: Signature,
}

impl RoundForCast {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(RoundForCast {
            signature: Signature::any(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for RoundForCast {
    fn name(&self) -> &str {
        "round_for_integer_cast"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    /// The argument's own name: `CAST(x AS INT)` stays named `x`.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args[0].schema_name().to_string())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, PrimitiveArray};
        use datafusion::arrow::datatypes::{Decimal128Type, Float32Type, Float64Type};
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let a = ColumnarValue::values_to_arrays(&args.args)?.remove(0);
        let out: ArrayRef = match a.data_type() {
            DataType::Float64 => Arc::new(
                a.as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ),
            DataType::Float32 => Arc::new(
                a.as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ),
            DataType::Decimal128(p, s) => {
                let unit = 10i128.pow(*s as u32);
                let half = unit / 2;
                let rounded: PrimitiveArray<Decimal128Type> =
                    a.as_primitive::<Decimal128Type>().unary(|v| {
                        let whole = v / unit;
                        let rest = v % unit;
                        let whole = if rest >= half && half > 0 {
                            whole + 1
                        } else if rest <= -half && half > 0 {
                            whole - 1
                        } else {
                            whole
                        };
                        whole.saturating_mul(unit)
                    });
                Arc::new(rounded.with_precision_and_scale(*p, *s)?)
            }
            _ => a,
        };
        crate::functions::columnar(out, scalar)
    }
}

/// The analyzer rule that makes integer `+ - *` and unary `-` checked
/// (see the module doc). Runs after type coercion, when both sides of an
/// operator have their final, common type.
#[derive(Debug, Default)]
pub struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn name(&self) -> &str {
        "freshet_checked_integer_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut udfs: Vec<Arc<ScalarUDF>> = CheckedOp::udfs().into_iter().map(Arc::new).collect();
        udfs.push(Arc::new(RoundForCast::udf()));
        plan.transform_up_with_subqueries(|node| {
            let schema = match node.inputs().as_slice() {
                [] => node.schema().as_ref().clone(),
                inputs => merge_schema(inputs),
            };
            node.map_expressions(|e| e.transform_up(|e| checked(e, &schema, &udfs)))
        })
        .map(|t| t.data)
    }
}

fn checked(e: Expr, schema: &DFSchema, udfs: &[Arc<ScalarUDF>]) -> Result<Transformed<Expr>> {
    let is_int = |e: &Expr| -> bool {
        e.get_type(schema)
            .map(|t| pg_integer_name(&t).is_some())
            .unwrap_or(false)
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply)
                && is_int(&left)
                && is_int(&right)
                && left.get_type(schema)? == right.get_type(schema)? =>
        {
            let i = match op {
                Operator::Plus => 0,
                Operator::Minus => 1,
                _ => 2,
            };
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(udfs[i].clone(), vec![*left, *right]),
            )))
        }
        Expr::Negative(inner) if is_int(&inner) => Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(udfs[3].clone(), vec![*inner]),
        ))),
        Expr::Cast(Cast { expr, field })
            if pg_integer_name(field.data_type()).is_some()
                && matches!(
                    expr.get_type(schema),
                    Ok(DataType::Float32 | DataType::Float64 | DataType::Decimal128(..))
                ) =>
        {
            let rounded =
                Expr::ScalarFunction(ScalarFunction::new_udf(udfs[4].clone(), vec![*expr]));
            Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(rounded),
                field,
            })))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// DataFusion's `sum` with PostgreSQL's result types: `smallint` and
/// `integer` sum as `bigint`, `bigint` as `numeric` (so no sum of
/// `bigint` can wrap). Everything else is DataFusion's.
///
/// Type coercion may run more than once over a plan, so the argument
/// types it asks for map to themselves: `smallint`/`integer` arguments
/// stay as they are and the accumulators cast them to `bigint`; `bigint`
/// becomes [`SUM_BIGINT_AS`], which stays.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgSum {
    inner: Sum,
    signature: Signature,
}

/// The `numeric` a `bigint` is summed as: room for any `bigint`, and
/// `sum` adds 10 digits of precision (to 38).
pub const SUM_BIGINT_AS: DataType = DataType::Decimal128(28, 0);

impl PgSum {
    pub fn new() -> PgSum {
        PgSum {
            inner: Sum::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `smallint` and `integer` arguments, summed as `bigint`.
fn small_int(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32)
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = args else {
            return plan_err!("sum takes one argument");
        };
        Ok(vec![match t {
            DataType::Null => DataType::Int64,
            t if small_int(t) => t.clone(),
            DataType::Int64 => SUM_BIGINT_AS,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::UInt64,
            DataType::Float16 | DataType::Float32 => DataType::Float64,
            DataType::UInt64
            | DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_)
            | DataType::Interval(_) => t.clone(),
            other => {
                return Err(DataFusionError::External(Box::new(
                    PlannerError::UndefinedFunction(format!(
                        "function sum({}) does not exist",
                        crate::types::SqlType::from_field(&Field::new("", other.clone(), true))
                            .map(|t| t.pg_name())
                            .unwrap_or_else(|| other.to_string())
                    )),
                )))
            }
        }])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [t] if small_int(t) => Ok(DataType::Int64),
            _ => self.inner.return_type(args),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let widen = widens(&args);
        let acc = self.inner.accumulator(args)?;
        Ok(if widen { Box::new(ToBigint(acc)) } else { acc })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let widen = widens(&args);
        let acc = self.inner.create_groups_accumulator(args)?;
        Ok(if widen { Box::new(ToBigint(acc)) } else { acc })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let widen = widens(&args);
        let acc = self.inner.create_sliding_accumulator(args)?;
        Ok(if widen { Box::new(ToBigint(acc)) } else { acc })
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }
}

/// Whether the argument is a `smallint`/`integer` that the (`bigint`)
/// accumulator needs cast.
fn widens(args: &AccumulatorArgs) -> bool {
    args.expr_fields
        .first()
        .is_some_and(|f| small_int(f.data_type()))
}

/// An accumulator of `bigint` fed `smallint`/`integer` values.
#[derive(Debug)]
struct ToBigint<A>(A);

fn to_bigint(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| Ok(cast(v, &DataType::Int64)?))
        .collect()
}

impl Accumulator for ToBigint<Box<dyn Accumulator>> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(&to_bigint(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.retract_batch(&to_bigint(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}

impl GroupsAccumulator for ToBigint<Box<dyn GroupsAccumulator>> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.update_batch(
            &to_bigint(values)?,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.0.evaluate(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(&to_bigint(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        self.0.size()
    }
}
