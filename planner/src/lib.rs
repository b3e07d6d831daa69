//! Freshet's planner: the catalog, DDL, and SQL → plans.
//!
//! - [`catalog`]: table definitions, persisted in storage's meta keyspace.
//! - [`engine::Engine`]: plans a parsed statement into an [`engine::Plan`] and
//!   executes it into an [`engine::Output`]. Queries run as DataFusion plans
//!   over [`table::StoredTable`]s reading one storage snapshot; DML is planned
//!   by DataFusion and applied by Freshet in one atomic commit.
//! - [`table`]: stored tables as DataFusion `TableProvider`s, with primary-key
//!   predicates pushed down to point gets and range scans.
//! - [`session`]: per-connection settings (`SET`/`SHOW`/`RESET`).
//! - [`copy`]: `COPY FROM STDIN` parsing (text, CSV).
//! - `pg_catalog` / `information_schema` come from `datafusion-pg-catalog`
//!   and DataFusion, over the same catalog; [`pg_catalog`] replaces the rows
//!   for Freshet's tables with declared types, defaults and primary keys.
//!
//! Incremental (dataflow) plans for materialized views are not built yet; the
//! dataflow crate will consume plans from here.

pub mod catalog;
mod colnames;
pub mod copy;
pub mod engine;
mod error;
mod functions;
mod information_schema;
mod json;
mod lower;
mod pg_catalog;
mod point_get;
pub(crate) mod rewrite;
pub mod session;
pub mod table;
pub mod types;

pub use colnames::UNIQUE_SUFFIX;
pub use engine::{CommandTag, Engine, EngineOptions, Output, Plan};
pub use error::{PlannerError, Result};
pub use session::Session;
