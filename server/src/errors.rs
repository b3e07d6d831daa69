//! Errors on the wire: the planner classifies every error
//! ([`PlannerError::sqlstate`], the one place SQLSTATEs are decided); this
//! module only puts them into pgwire's shape.

use freshet_planner::PlannerError;
use pgwire::error::{ErrorInfo, PgWireError};

/// A PgWire error carrying a SQLSTATE for `e`.
pub fn pg_error(e: &PlannerError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

pub fn error_info(e: &PlannerError) -> ErrorInfo {
    let s = e.sqlstate();
    let mut info = ErrorInfo::new("ERROR".to_string(), s.code.to_string(), s.message);
    info.detail = s.detail;
    info
}

/// An error the server itself raises (protocol state, timeouts, shutdown).
pub fn simple(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message.into(),
    )))
}
