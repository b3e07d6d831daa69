//! Freshet's storage layer: one embedded RocksDB per data directory.
//!
//! What lives here:
//! - [`Store`]: the database handle. Every write goes through [`Store::commit`],
//!   which applies one atomic `WriteBatch` tagged with the next epoch number
//!   (DESIGN.md, "Storage"). A commit is in RocksDB's write-ahead log before it
//!   returns, so an acknowledged statement survives a killed process; with
//!   `sync_commits` the WAL is also fsynced.
//! - [`Snapshot`]: a consistent, cheaply clonable read view used by ad-hoc
//!   queries, so one query sees every relation at the same epoch.
//! - [`keys`]: the key layout `table id (u32, big-endian) | memcomparable(key
//!   columns)`, so range and prefix scans follow SQL order.
//! - [`codec::RowCodec`]: the compact value encoding of a row, and the
//!   conversion between rows and Arrow `RecordBatch`es.
//! - [`StateTable`]: keyed rows an operator keeps, with a write buffer that
//!   reads see and that is written into the epoch's commit.
//!
//! Data enters as Arrow batches (from DML, COPY or, later, operators) and
//! leaves as Arrow batches decoded from snapshot scans.

pub mod cache;
pub mod codec;
mod error;
pub mod keys;
mod options;
mod state_table;
mod store;

pub use codec::RowCodec;
pub use error::{Result, StorageError};
pub use options::{ByteSize, StoreOptions};
pub use state_table::StateTable;
pub use store::{KeyWrite, Snapshot, Store, TableWrites, Txn};
