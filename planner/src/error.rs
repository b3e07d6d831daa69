use datafusion::error::DataFusionError;
use thiserror::Error;

/// Errors of the planner and executor. The variants that are the user's fault
/// name the situation precisely, so the server can give each its SQLSTATE in
/// one place (`server/src/errors.rs`).
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
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint"
    )]
    NotNullViolation { table: String, column: String },
    #[error("{0}")]
    InvalidText(String),
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
    ProtocolViolation(String),
    #[error("{0}")]
    BadCopyFile(String),
    /// DROP without CASCADE of something others depend on.
    #[error("cannot drop {what} because other objects depend on it")]
    DependentObjects { what: String, detail: String },
    /// A statement applied to the wrong kind of relation.
    #[error("{0}")]
    WrongObjectType(String),
    #[error(transparent)]
    Dataflow(#[from] freshet_dataflow::DataflowError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error(transparent)]
    Storage(#[from] freshet_storage::StorageError),
}

pub type Result<T, E = PlannerError> = std::result::Result<T, E>;

impl PlannerError {
    pub fn not_supported(what: impl Into<String>) -> Self {
        PlannerError::NotSupported(what.into())
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
