//! Scalar functions Freshet adds to DataFusion's library for Postgres
//! compatibility (`version()`, `current_user`, `pg_backend_pid()` …).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

use crate::datetime_in::{DatetimeIn, Kind};

pub const VERSION: &str = concat!(
    "PostgreSQL 15.0 (Freshet ",
    env!("CARGO_PKG_VERSION"),
    ", a streaming SQL database) on x86_64-pc-linux-gnu"
);

fn constant_text(name: &str, value: &'static str) -> ScalarUDF {
    create_udf(
        name,
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.to_string(),
            ))))
        }),
    )
}

/// A function's arguments as arrays, and whether every one was a scalar
/// (then the result is one too: see [`columnar`]).
pub(crate) fn arguments(
    args: &[ColumnarValue],
) -> datafusion::error::Result<(Vec<datafusion::arrow::array::ArrayRef>, bool)> {
    let scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok((ColumnarValue::values_to_arrays(args)?, scalar))
}

/// A function's result `out` as a scalar when every argument was one
/// (`scalar`), else as the array.
pub(crate) fn columnar(
    out: datafusion::arrow::array::ArrayRef,
    scalar: bool,
) -> datafusion::error::Result<ColumnarValue> {
    Ok(match scalar {
        true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
        false => ColumnarValue::Array(out),
    })
}

/// The UDFs to register in every query context.
pub fn udfs() -> Vec<ScalarUDF> {
    let mut udfs = crate::jsonb::udfs();
    udfs.extend(crate::pgfuncs::udfs());
    udfs.extend([
        constant_text("version", VERSION),
        ScalarUDF::from(JsonbIn::new()),
        crate::to_char::ToChar::udf(),
        crate::to_char::ToTimestamp::udf(false),
        crate::to_char::ToTimestamp::udf(true),
        DatetimeIn::udf(Kind::Timestamp),
        DatetimeIn::udf(Kind::TimestampTz),
        DatetimeIn::udf(Kind::Date),
        DatetimeIn::udf(Kind::Time),
        convert_from(),
        convert_to(),
    ]);
    udfs
}

/// The encoding argument of `convert_from`/`convert_to`: UTF8 (the only
/// server encoding) or its ASCII subset.
fn check_encoding(name: &str) -> datafusion::error::Result<()> {
    match name.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "UTF8" | "UNICODE" | "SQLASCII" => Ok(()),
        _ => Err(datafusion::error::DataFusionError::External(Box::new(
            crate::PlannerError::not_supported(format!("encoding \"{name}\" (only UTF8)")),
        ))),
    }
}

/// `convert_from(bytea, encoding)`: bytes (a Kafka key, a payload) as text.
fn convert_from() -> ScalarUDF {
    create_udf(
        "convert_from",
        vec![DataType::Binary, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            use datafusion::arrow::array::{Array, AsArray, StringArray};
            let (arrays, scalar) = arguments(args)?;
            let bytes = arrays[0].as_binary::<i32>();
            let encodings = arrays[1].as_string::<i32>();
            let mut out = Vec::with_capacity(bytes.len());
            for i in 0..bytes.len() {
                if bytes.is_null(i) || encodings.is_null(i) {
                    out.push(None);
                    continue;
                }
                check_encoding(encodings.value(i))?;
                let text = std::str::from_utf8(bytes.value(i)).map_err(|_| {
                    datafusion::error::DataFusionError::External(Box::new(
                        crate::PlannerError::InvalidText(
                            "invalid byte sequence for encoding \"UTF8\"".into(),
                        ),
                    ))
                })?;
                out.push(Some(text.to_string()));
            }
            columnar(Arc::new(StringArray::from(out)), scalar)
        }),
    )
}

/// `convert_to(text, encoding)`: text as its UTF8 bytes.
fn convert_to() -> ScalarUDF {
    create_udf(
        "convert_to",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Binary,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            use datafusion::arrow::array::{Array, AsArray, BinaryArray};
            let (arrays, scalar) = arguments(args)?;
            let texts = arrays[0].as_string::<i32>();
            let encodings = arrays[1].as_string::<i32>();
            let mut out: Vec<Option<&[u8]>> = Vec::with_capacity(texts.len());
            for i in 0..texts.len() {
                if texts.is_null(i) || encodings.is_null(i) {
                    out.push(None);
                    continue;
                }
                check_encoding(encodings.value(i))?;
                out.push(Some(texts.value(i).as_bytes()));
            }
            columnar(Arc::new(BinaryArray::from(out)), scalar)
        }),
    )
}

/// `jsonb_in(text)`: what `'…'::jsonb` becomes. Validates the text as JSON,
/// stores it in canonical form, and types the result `jsonb` (Utf8 marked in
/// field metadata).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbIn {
    signature: datafusion::logical_expr::Signature,
}

impl JsonbIn {
    pub const NAME: &'static str = "jsonb_in";

    pub fn new() -> Self {
        Self {
            signature: datafusion::logical_expr::Signature::uniform(
                1,
                vec![DataType::Utf8],
                Volatility::Immutable,
            ),
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonbIn {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> datafusion::error::Result<datafusion::arrow::datatypes::FieldRef> {
        let nullable = args
            .arg_fields
            .first()
            .map(|f| f.is_nullable())
            .unwrap_or(true);
        Ok(Arc::new(
            crate::types::SqlType::Jsonb.field(Self::NAME, nullable),
        ))
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, StringArray};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let input = input
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("jsonb_in input".into()))?;
        let out: StringArray = input
            .iter()
            .map(|v| v.map(crate::json::normalize).transpose())
            .collect::<crate::Result<Vec<_>>>()
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
            .into_iter()
            .collect();
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let out: datafusion::arrow::array::ArrayRef = Arc::new(out);
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}
