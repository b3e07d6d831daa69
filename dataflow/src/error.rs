use thiserror::Error;

/// Errors raised while moving changes through operators: evaluating an
/// expression on user data (the user's) or a malformed batch (ours).
#[derive(Debug, Error)]
pub enum DataflowError {
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Storage(#[from] freshet_storage::StorageError),
    /// A scalar subquery with more than one row (SQLSTATE 21000).
    #[error("{0}")]
    Cardinality(String),
    /// A result past its type's range (SQLSTATE 22003).
    #[error("{0}")]
    OutOfRange(String),
    #[error("malformed change batch: {0}")]
    Malformed(String),
    /// An operator panicked (our bug); the step was abandoned whole.
    #[error("internal error in the view maintenance (nothing was changed): {0}")]
    Panic(String),
}

pub type Result<T, E = DataflowError> = std::result::Result<T, E>;
