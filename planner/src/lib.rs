//! Freshet's planner: the catalog, DDL, and SQL → plans.
//!
//! - [`names`]: the database and schema served, and identifier rules (a
//!   leaf: every module that names a relation uses it).
//! - [`parse`]: SQL text → AST as PostgreSQL reads it (every parse goes
//!   through it).
//! - `arith`: PostgreSQL's integer arithmetic where DataFusion's would
//!   wrap (checked `+ - *`, `sum(bigint)` as numeric).
//! - `datetime`: `date ± interval` is a timestamp, as in PostgreSQL.
//! - `setops`: `INTERSECT ALL` / `EXCEPT ALL` with SQL's multiplicities.
//! - `to_char`: `to_char` of dates and timestamps with PostgreSQL's
//!   template patterns.
//! - [`catalog`]: relation definitions, persisted in storage's meta keyspace.
//! - [`engine::Engine`]: plans a parsed statement into an [`engine::Plan`] and
//!   executes it into an [`engine::Output`], one module per kind of
//!   statement under `engine/`. Queries run as DataFusion plans over
//!   [`table::StoredTable`]s reading one storage snapshot; DML is planned by
//!   DataFusion and applied by Freshet, and its writes run through the
//!   dataflow's step into one atomic epoch commit.
//! - `lower/`: a materialized view's plan → the dataflow's operator tree, in
//!   visible passes (rewrites, check, build, window functions, view key).
//! - [`table`]: stored tables as DataFusion `TableProvider`s, with primary-key
//!   predicates pushed down to point gets and range scans.
//! - [`session`]: per-connection settings (`SET`/`SHOW`/`RESET`).
//! - [`copy`]: `COPY FROM STDIN` parsing (text, CSV).
//! - `pg_catalog` / `information_schema` come from `datafusion-pg-catalog`
//!   and DataFusion, over the same catalog; `pg_catalog` replaces the rows
//!   for Freshet's tables with declared types, defaults and primary keys.
//!
//! Errors leave as [`PlannerError`], which classifies itself
//! ([`PlannerError::sqlstate`]): the server maps nothing of the crates
//! below.

mod arith;
mod avg;
pub mod catalog;
mod colnames;
pub mod copy;
mod datetime;
pub mod datetime_in;
pub mod engine;
mod error;
mod first_row;
mod functions;
pub mod index;
mod information_schema;
mod json;
mod jsonb;
mod lower;
pub mod names;
mod numeric_div;
pub mod parse;
mod pg_catalog;
mod pgfuncs;
mod point_get;
pub(crate) mod rewrite;
pub mod session;
mod setops;
mod sqlfunc;
mod srf_from;
mod subquery;
pub mod table;
mod to_char;
mod to_char_num;
pub mod types;
mod whole_row;

pub use colnames::UNIQUE_SUFFIX;
pub use engine::{CommandTag, Engine, EngineOptions, Output, Plan};
pub use error::{PlannerError, Result, SqlState};
pub use freshet_storage::{ByteSize, StoreOptions};
pub use session::Session;
