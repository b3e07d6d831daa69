//! Connector errors, each with the SQLSTATE a client sees.

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A missing, unknown or malformed `WITH` option (22023).
    #[error("{0}")]
    InvalidOption(String),
    /// A connector, format or column type that is not built (0A000).
    #[error("{0} is not supported")]
    NotSupported(String),
    /// The external system cannot be reached (08001).
    #[error("{0}")]
    Unreachable(String),
    /// A failure while reading (XX000 unless more is known).
    #[error("{0}")]
    Read(String),
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

impl ConnectorError {
    /// The SQLSTATE of the error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ConnectorError::InvalidOption(_) => "22023",
            ConnectorError::NotSupported(_) => "0A000",
            ConnectorError::Unreachable(_) => "08001",
            ConnectorError::Read(_) | ConnectorError::Arrow(_) => "XX000",
        }
    }
}

pub type Result<T> = std::result::Result<T, ConnectorError>;

/// An invalid-option error.
pub fn invalid(msg: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidOption(msg.into())
}
