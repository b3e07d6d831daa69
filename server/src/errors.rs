//! Errors → SQLSTATE, in one place.
//!
//! The planner names user mistakes precisely ([`PlannerError`]); DataFusion's
//! errors are classified by their variant and, where DataFusion only has a
//! message, by that message. Anything unrecognised is `XX000` (our bug).

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use freshet_planner::PlannerError;
use pgwire::error::{ErrorInfo, PgWireError};

/// A PgWire error carrying a SQLSTATE for `e`.
pub fn pg_error(e: &PlannerError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

pub fn error_info(e: &PlannerError) -> ErrorInfo {
    let (code, message, detail) = classify(e);
    let mut info = ErrorInfo::new("ERROR".to_string(), code.to_string(), message);
    info.detail = detail;
    info
}

pub fn simple(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
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
        P::NotNullViolation { .. } => "23502",
        P::InvalidText(_) => "22P02",
        P::StringTooLong(_) => "22001",
        P::NotSupported(_) => "0A000",
        P::UndefinedParameter(_) => "42704",
        P::InvalidParameterValue(_) => "22023",
        P::DataException(_) => "22000",
        P::NumericOutOfRange(_) => "22003",
        P::BadCopyFile(_) => "22P04",
        P::ProtocolViolation(_) => "08P01",
        P::DependentObjects { detail, .. } => {
            return ("2BP01", e.to_string(), Some(detail.clone()))
        }
        P::WrongObjectType(_) => "42809",
        // Evaluating a view's expressions on new rows (division by zero, a
        // bad cast) fails the statement that brought the rows.
        P::Dataflow(freshet_dataflow::DataflowError::DataFusion(df)) => {
            let (code, msg) = classify_datafusion(df);
            return (code, msg, None);
        }
        P::Dataflow(freshet_dataflow::DataflowError::Arrow(a)) => {
            let df = DataFusionError::ArrowError(
                Box::new(ArrowError::ComputeError(a.to_string())),
                None,
            );
            let (code, msg) = classify_datafusion(&df);
            return (code, msg, None);
        }
        P::Dataflow(freshet_dataflow::DataflowError::Cardinality(_)) => "21000",
        P::Dataflow(_) => "XX000",
        P::Storage(_) => "58030",
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

fn classify_arrow(a: &ArrowError) -> (&'static str, String) {
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
}
