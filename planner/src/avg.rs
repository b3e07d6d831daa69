//! `avg` with PostgreSQL's result type: the average of `smallint`,
//! `integer` or `bigint` values is `numeric` (DataFusion's is `double
//! precision`, which cannot hold every average of `bigint`s exactly).
//! Other arguments keep DataFusion's `avg`.
//!
//! The integer average is exact: the sum is kept in 128 bits with the
//! count, and the quotient is rounded half away from zero to 16 places
//! (PostgreSQL's scale for a quotient below 10,000; above, PostgreSQL
//! shows fewer places of the same value). The accumulator retracts, so
//! views maintain it by its state (sum, count).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::functions_aggregate::average::Avg;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, Signature,
    Volatility,
};

/// The type of an integer average.
pub const AVG_INTEGER_AS: DataType = DataType::Decimal128(38, SCALE as i8);
const SCALE: u32 = 16;
/// The sum's type in the state.
const SUM_STATE: DataType = DataType::Decimal128(38, 0);

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgAvg {
    inner: Avg,
    signature: Signature,
}

impl PgAvg {
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(PgAvg {
            inner: Avg::new(),
            signature: Signature::user_defined(Volatility::Immutable),
        })
    }
}

fn integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

fn integer_arg(fields: &[FieldRef]) -> bool {
    fields.first().is_some_and(|f| integer(f.data_type()))
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = args else {
            return plan_err!("avg takes one argument");
        };
        Ok(vec![match t {
            t if integer(t) => DataType::Int64,
            DataType::Null | DataType::Float16 | DataType::Float32 | DataType::UInt64 => {
                DataType::Float64
            }
            DataType::Float64
            | DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Duration(_) => t.clone(),
            DataType::Interval(_) => {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::PlannerError::not_supported("avg(interval)"),
                )))
            }
            other => {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::PlannerError::UndefinedFunction(format!(
                        "function avg({}) does not exist",
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
            [t] if integer(t) => Ok(AVG_INTEGER_AS),
            _ => self.inner.return_type(args),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if integer_arg(args.expr_fields) {
            return Ok(Box::new(IntAvg::default()));
        }
        self.inner.accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if integer_arg(args.input_fields) {
            return Ok(vec![
                Arc::new(Field::new(format!("{}[sum]", args.name), SUM_STATE, true)),
                Arc::new(Field::new(
                    format!("{}[count]", args.name),
                    DataType::Int64,
                    true,
                )),
            ]);
        }
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !integer_arg(args.expr_fields) && self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if integer_arg(args.expr_fields) {
            return Ok(Box::new(IntAvg::default()));
        }
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }
}

/// The exact average of integers: their sum and count.
#[derive(Debug, Default)]
struct IntAvg {
    sum: i128,
    count: i64,
}

impl IntAvg {
    fn add(&mut self, values: &ArrayRef, sign: i128) -> Result<()> {
        let v = cast(values, &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        for x in v.iter().flatten() {
            self.sum += sign * x as i128;
            self.count += sign as i64;
        }
        Ok(())
    }
}

/// `sum / count` rounded half away from zero to [`SCALE`] places, as
/// the digits of a `Decimal128(38, SCALE)`.
fn quotient(sum: i128, count: i64) -> i128 {
    let count = count as i128;
    let (q, r) = (sum / count, sum % count);
    let scaled = r * 10i128.pow(SCALE);
    let (f, rest) = (scaled / count, scaled % count);
    let f = if rest.abs() * 2 >= count.abs() {
        f + scaled.signum() * count.signum()
    } else {
        f
    };
    q * 10i128.pow(SCALE) + f
}

impl Accumulator for IntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], 1)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], -1)
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let sums = cast(&states[0], &SUM_STATE)?;
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = cast(&states[1], &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        for i in 0..sums.len() {
            if !sums.is_null(i) {
                self.sum += sums.value(i);
            }
            if !counts.is_null(i) {
                self.count += counts.value(i);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Decimal128(
            (self.count != 0).then(|| quotient(self.sum, self.count)),
            38,
            SCALE as i8,
        ))
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

#[cfg(test)]
mod tests {
    use super::quotient;

    #[test]
    fn quotients_round_half_away_from_zero() {
        let e = 10i128.pow(16);
        assert_eq!(quotient(3, 2), 15 * e / 10);
        assert_eq!(quotient(-3, 2), -15 * e / 10);
        assert_eq!(quotient(2, 3), 6666666666666667);
        assert_eq!(quotient(-2, 3), -6666666666666667);
        assert_eq!(quotient(1, 3), 3333333333333333);
        let big = i64::MAX as i128 * 3;
        assert_eq!(quotient(big, 3), i64::MAX as i128 * e);
    }
}
