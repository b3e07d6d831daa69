use thiserror::Error;

/// Errors raised by the storage layer. Everything here is either the
/// environment's fault (I/O, a corrupt file) or ours (an encoding bug): none of
/// it is caused by a user's SQL.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("unsupported column type for storage: {0}")]
    UnsupportedType(String),
    #[error("data directory {path}: {error}")]
    DataDir { path: String, error: std::io::Error },
    #[error("catalog encoding: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
