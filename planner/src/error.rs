//! The planner's error, and its SQLSTATE: every error a statement can end
//! with — the planner's own, DataFusion's, the dataflow's, storage's — is
//! classified here, in one place, so the server only puts the
//! [`SqlState`] on the wire.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use freshet_dataflow::DataflowError;
use thiserror::Error;

/// Errors of the planner and executor. The variants that are the user's fault
/// name the situation precisely, so each gets its SQLSTATE ([`PlannerError::sqlstate`]).
#[derive(Debug, Error)]
pub enum PlannerError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    #[error("column \"{0}\" does not exist")]
    UndefinedColumn(String),
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),
    #[error("{0}")]
    InvalidTableDefinition(String),
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation { constraint: String, detail: String },
    /// CREATE UNIQUE INDEX over rows that repeat a key.
    #[error("could not create unique index \"{index}\"")]
    UniqueIndexBuild { index: String, detail: String },
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    #[error("{0}")]
    InvalidText(String),
    /// 22007: text that is no date/time of the type.
    #[error("{0}")]
    InvalidDatetime(String),
    /// 22008: a date/time field out of range.
    #[error("{0}")]
    DatetimeOutOfRange(String),
    #[error("value too long for type character varying({0})")]
    StringTooLong(u32),
    #[error("{0} is not supported")]
    NotSupported(String),
    #[error("unrecognized configuration parameter \"{0}\"")]
    UndefinedParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    DataException(String),
    #[error("{0}")]
    NumericOutOfRange(String),
    #[error("{0}")]
    UndefinedFunction(String),
    #[error("function \"{0}\" already exists with same argument types")]
    DuplicateFunction(String),
    #[error("{0}")]
    ProtocolViolation(String),
    #[error("{0}")]
    BadCopyFile(String),
    /// DROP without CASCADE of something others depend on.
    #[error("cannot drop {what} because other objects depend on it")]
    DependentObjects { what: String, detail: String },
    /// 42704: a named object (an index) that does not exist.
    #[error("{0}")]
    UndefinedObject(String),
    /// A statement applied to the wrong kind of relation.
    #[error("{0}")]
    WrongObjectType(String),
    #[error(transparent)]
    Dataflow(#[from] freshet_dataflow::DataflowError),
    #[error(transparent)]
    Connector(#[from] freshet_connectors::ConnectorError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Storage(#[from] freshet_storage::StorageError),
}

pub type Result<T, E = PlannerError> = std::result::Result<T, E>;

/// What a client is told of an error: its SQLSTATE code, message and
/// optional detail.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlState {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

impl PlannerError {
    pub fn not_supported(what: impl Into<String>) -> Self {
        PlannerError::NotSupported(what.into())
    }

    /// The SQLSTATE, message and detail a client sees for this error. The
    /// planner names user mistakes precisely; DataFusion's errors are
    /// classified by their variant and, where DataFusion only has a
    /// message, by that message. Anything unrecognised is `XX000` (our bug).
    pub fn sqlstate(&self) -> SqlState {
        let (code, message, detail) = classify(self);
        SqlState {
            code,
            message,
            detail,
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for PlannerError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        PlannerError::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for PlannerError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        PlannerError::Syntax(e.to_string())
    }
}

fn classify(e: &PlannerError) -> (&'static str, String, Option<String>) {
    use PlannerError as P;
    let code = match e {
        P::Syntax(_) => "42601",
        P::UndefinedTable(_) => "42P01",
        P::UndefinedColumn(_) => "42703",
        P::DuplicateColumn(_) => "42701",
        P::InvalidTableDefinition(_) => "42P16",
        P::DuplicateTable(_) => "42P07",
        P::UniqueViolation { detail, .. } => return ("23505", e.to_string(), Some(detail.clone())),
        P::UniqueIndexBuild { detail, .. } => {
            return ("23505", e.to_string(), Some(detail.clone()))
        }
        P::NotNullViolation { .. } => "23502",
        P::InvalidText(_) => "22P02",
        P::InvalidDatetime(_) => "22007",
        P::DatetimeOutOfRange(_) => "22008",
        P::StringTooLong(_) => "22001",
        P::NotSupported(_) => "0A000",
        P::UndefinedParameter(_) => "42704",
        P::InvalidParameterValue(_) => "22023",
        P::DataException(_) => "22000",
        P::NumericOutOfRange(_) => "22003",
        P::UndefinedFunction(_) => "42883",
        P::DuplicateFunction(_) => "42723",
        P::BadCopyFile(_) => "22P04",
        P::ProtocolViolation(_) => "08P01",
        P::DependentObjects { detail, .. } => {
            return ("2BP01", e.to_string(), Some(detail.clone()))
        }
        P::WrongObjectType(_) => "42809",
        P::UndefinedObject(_) => "42704",
        // Evaluating a view's expressions on new rows (division by zero, a
        // bad cast) fails the statement that brought the rows.
        P::Dataflow(DataflowError::DataFusion(df)) => {
            let (code, msg) = classify_datafusion(df);
            return (code, msg, None);
        }
        P::Dataflow(DataflowError::Arrow(a)) => {
            let df = DataFusionError::ArrowError(
                Box::new(ArrowError::ComputeError(a.to_string())),
                None,
            );
            let (code, msg) = classify_datafusion(&df);
            return (code, msg, None);
        }
        P::Dataflow(DataflowError::Cardinality(_)) => "21000",
        P::Dataflow(DataflowError::OutOfRange(_)) => "22003",
        P::Dataflow(_) => "XX000",
        P::Storage(_) => "58030",
        P::Connector(c) => c.sqlstate(),
        P::DataFusion(df) => {
            let (code, msg) = classify_datafusion(df);
            return (code, msg, None);
        }
    };
    (code, e.to_string(), None)
}

fn classify_datafusion(e: &DataFusionError) -> (&'static str, String) {
    let e = e.find_root();
    match e {
        DataFusionError::SQL(p, _) => ("42601", format!("syntax error: {p}")),
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { field, .. } => {
                ("42703", format!("column \"{}\" does not exist", field.name))
            }
            SchemaError::AmbiguousReference { field } => (
                "42702",
                format!("column reference \"{}\" is ambiguous", field.name),
            ),
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => ("42701", s.to_string()),
        },
        DataFusionError::NotImplemented(m) => ("0A000", format!("{m} is not supported")),
        DataFusionError::ArrowError(a, _) => classify_arrow(a),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify_datafusion(inner)
        }
        DataFusionError::Shared(inner) => classify_datafusion(inner),
        DataFusionError::External(inner) => {
            if let Some(p) = inner.downcast_ref::<PlannerError>() {
                let (c, m, _) = classify(p);
                return (c, m);
            }
            if let Some(d) = inner.downcast_ref::<DataFusionError>() {
                return classify_datafusion(d);
            }
            if let Some(a) = inner.downcast_ref::<ArrowError>() {
                return classify_arrow(a);
            }
            ("XX000", inner.to_string())
        }
        DataFusionError::Plan(m) => classify_message("42000", m),
        DataFusionError::Execution(m) => classify_message("XX000", m),
        DataFusionError::Collection(errs) => match errs.first() {
            Some(first) => classify_datafusion(first),
            None => ("XX000", e.to_string()),
        },
        other => classify_message("XX000", &other.to_string()),
    }
}

/// A number cast to an integer type it does not fit (DataFusion: "Can't
/// cast value 3000000000.0 to type Int32", "value of … is out of range
/// Int32"): PostgreSQL's "integer out of range".
fn integer_out_of_range(m: &str) -> Option<(&'static str, String)> {
    let lower = m.trim().to_ascii_lowercase();
    for (arrow, pg) in [
        ("int16", "smallint"),
        ("int32", "integer"),
        ("int64", "bigint"),
    ] {
        let can_t_cast =
            lower.starts_with("can't cast value") && lower.ends_with(&format!("to type {arrow}"));
        let out_of_range =
            lower.starts_with("value of") && lower.ends_with(&format!("is out of range {arrow}"));
        if can_t_cast || out_of_range {
            return Some(("22003", format!("{pg} out of range")));
        }
    }
    None
}

/// `'NaN'::numeric` (DataFusion: "Cannot cast string 'NaN' to value of
/// Decimal128(38, 10) type"): a limitation, named as one. The answer is
/// what is not supported.
pub(crate) fn numeric_special(m: &str) -> Option<String> {
    let rest = m.strip_prefix("Cannot cast string '")?;
    let (value, tail) = rest.split_once('\'')?;
    let special = [
        "nan",
        "infinity",
        "+infinity",
        "-infinity",
        "inf",
        "+inf",
        "-inf",
    ]
    .contains(&value.trim().to_ascii_lowercase().as_str());
    (special && tail.contains("Decimal")).then(|| {
        format!(
            "numeric {value} (Freshet's numeric is a fixed-point decimal; \
             double precision has NaN and Infinity)"
        )
    })
}

fn classify_arrow(a: &ArrowError) -> (&'static str, String) {
    if let ArrowError::CastError(m) | ArrowError::ComputeError(m) = a {
        if let Some(e) = integer_out_of_range(m) {
            return e;
        }
        if let Some(what) = numeric_special(m) {
            return ("0A000", format!("{what} is not supported"));
        }
    }
    match a {
        ArrowError::DivideByZero => ("22012", "division by zero".into()),
        ArrowError::CastError(m) | ArrowError::ParseError(m) => {
            ("22P02", format!("invalid input syntax: {m}"))
        }
        ArrowError::ArithmeticOverflow(m) => ("22003", format!("value out of range: {m}")),
        ArrowError::ComputeError(m) if m.to_ascii_lowercase().contains("overflow") => {
            ("22003", format!("value out of range: {m}"))
        }
        ArrowError::InvalidArgumentError(m) => classify_message("22023", m),
        other => classify_message("XX000", &other.to_string()),
    }
}

/// DataFusion reports some user errors only as text.
fn classify_message(default: &'static str, m: &str) -> (&'static str, String) {
    let lower = m.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        return ("22012", "division by zero".into());
    }
    if let Some(rest) = m
        .strip_prefix("table '")
        .or_else(|| m.find("table '").map(|i| &m[i + 7..]))
    {
        if lower.contains("not found") {
            let name = rest.split('\'').next().unwrap_or(rest);
            let short = name.rsplit('.').next().unwrap_or(name);
            return ("42P01", format!("relation \"{short}\" does not exist"));
        }
    }
    if lower.contains("declared as non-nullable") {
        return ("23502", m.to_string());
    }
    if lower.contains("invalid function") || lower.contains("unknown function") {
        return ("42883", m.to_string());
    }
    if let Some(e) = integer_out_of_range(m) {
        return e;
    }
    if let Some(what) = m
        .find("Cannot cast string '")
        .and_then(|i| numeric_special(&m[i..]))
    {
        return ("0A000", format!("{what} is not supported"));
    }
    if lower.contains("cannot cast")
        || lower.contains("cast error")
        || lower.contains("error parsing")
    {
        return ("22P02", m.to_string());
    }
    if lower.contains("overflow")
        || lower.contains("too large to store")
        || lower.contains("out of range")
    {
        return ("22003", m.to_string());
    }
    if lower.contains("no field named") {
        return ("42703", m.to_string());
    }
    if lower.contains("unsupported")
        || lower.contains("not supported")
        || lower.contains("not implemented")
    {
        return ("0A000", m.to_string());
    }
    (default, m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datafusion_errors_get_postgres_codes() {
        let error_info = |e: &PlannerError| e.sqlstate();
        let e = PlannerError::DataFusion(DataFusionError::Plan(
            "table 'freshet.public.nope' not found".into(),
        ));
        assert_eq!(error_info(&e).code, "42P01");
        assert_eq!(error_info(&e).message, "relation \"nope\" does not exist");
        let e = PlannerError::DataFusion(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        assert_eq!(error_info(&e).code, "22012");
        let e = PlannerError::NotSupported("CREATE FUNCTION".into());
        assert_eq!(error_info(&e).code, "0A000");
    }

    /// A view's failure on new rows reaches the client classified like
    /// the same failure in a query.
    #[test]
    fn dataflow_errors_are_classified_here() {
        let e = PlannerError::from(DataflowError::Cardinality(
            "more than one row returned by a subquery used as an expression".into(),
        ));
        assert_eq!(e.sqlstate().code, "21000");
        let e = PlannerError::from(DataflowError::Arrow(ArrowError::DivideByZero));
        assert_eq!(e.sqlstate().code, "22012");
        let e = PlannerError::from(DataflowError::Panic("bug".into()));
        assert_eq!(e.sqlstate().code, "XX000");
    }
}
