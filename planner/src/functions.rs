//! Scalar functions Freshet adds to DataFusion's library for Postgres
//! compatibility (`version()`, `current_user`, `pg_backend_pid()` …).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};

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
        Arc::new(move |_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string()))))),
    )
}

/// The UDFs to register in every query context.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![constant_text("version", VERSION)]
}
