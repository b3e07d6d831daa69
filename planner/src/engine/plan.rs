//! What planning a statement yields ([`Plan`]) and what executing it
//! returns ([`Output`]), with the command tags clients see.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;

use super::ddl::DdlPlan;
use super::settings::SessionPlan;
use super::views::ViewPlan;
use crate::catalog::TableDef;
use crate::copy::{CopyIn, CopyOptions};
use crate::point_get::{PointGet, PointSource};
use crate::{PlannerError, Result};

/// A planned statement, ready to execute (possibly many times, with
/// different parameters). Each kind of statement has its own module under
/// `engine/`; this enum only routes to them.
#[derive(Debug, Clone)]
pub enum Plan {
    Query(LogicalPlan),
    /// A primary-key lookup (see [`PointGet`]); the plan is kept for
    /// parameter types.
    PointGet(LogicalPlan, Arc<PointGet>),
    Insert(Arc<InsertPlan>),
    Update(Arc<ModifyPlan>),
    Delete(Arc<ModifyPlan>),
    CopyFrom {
        table: Arc<TableDef>,
        columns: Vec<usize>,
        options: CopyOptions,
    },
    CopyTo {
        plan: LogicalPlan,
        options: CopyOptions,
    },
    /// `CREATE TABLE`, `DROP …`.
    Ddl(DdlPlan),
    /// Views and materialized views: create, explain, list.
    View(ViewPlan),
    /// Session settings and transaction control.
    Session(SessionPlan),
}

#[derive(Debug)]
pub struct InsertPlan {
    pub(super) table: Arc<TableDef>,
    pub(super) source: LogicalPlan,
    pub(super) conflict: Conflict,
    pub(super) returning: Option<Returning>,
    /// The name rows are visible under in ON CONFLICT / RETURNING expressions.
    pub(super) alias: String,
}

#[derive(Debug)]
pub(super) enum Conflict {
    Error,
    DoNothing,
    DoUpdate {
        assignments: Vec<(usize, String)>,
        selection: Option<String>,
    },
}

/// UPDATE or DELETE: the rows to change come from `source`.
#[derive(Debug)]
pub struct ModifyPlan {
    pub(super) table: Arc<TableDef>,
    pub(super) source: LogicalPlan,
    /// Set when the statement selects its row by primary key.
    pub(super) point: Option<PointSource>,
    pub(super) returning: Option<Returning>,
    pub(super) alias: String,
}

#[derive(Debug)]
pub(super) struct Returning {
    pub(super) sql: String,
    pub(super) schema: SchemaRef,
}

#[derive(Debug, Clone)]
pub struct CommandTag {
    pub command: String,
    pub rows: Option<usize>,
    /// INSERT tags carry an OID (always 0).
    pub oid: bool,
}

impl CommandTag {
    pub(crate) fn new(command: &str) -> Self {
        Self {
            command: command.into(),
            rows: None,
            oid: false,
        }
    }
    pub(crate) fn rows(command: &str, rows: usize) -> Self {
        Self {
            command: command.into(),
            rows: Some(rows),
            oid: command == "INSERT",
        }
    }
}

/// The result of executing a plan.
pub enum Output {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// Rows of a DML statement's RETURNING clause, with its command tag.
    Returning {
        tag: CommandTag,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Command(CommandTag),
    Begin,
    /// COMMIT or ROLLBACK, with a warning for the client if any.
    Commit(CommandTag, Option<String>),
    /// A command that leaves the transaction block open, with a warning.
    Notice(CommandTag, String),
    CopyIn(Box<CopyIn>),
    CopyOut {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        options: CopyOptions,
    },
}

impl Plan {
    /// The logical plans whose placeholders are the statement's parameters.
    fn parameter_plan(&self) -> Option<&LogicalPlan> {
        match self {
            Plan::Query(p) | Plan::PointGet(p, _) | Plan::CopyTo { plan: p, .. } => Some(p),
            Plan::Insert(i) => Some(&i.source),
            Plan::Update(m) | Plan::Delete(m) => Some(&m.source),
            Plan::CopyFrom { .. } | Plan::Ddl(_) | Plan::View(_) | Plan::Session(_) => None,
        }
    }

    /// Parameter fields (type and metadata) in `$n` order (`None`: could
    /// not be inferred).
    pub fn parameter_types(&self) -> Result<Vec<Option<FieldRef>>> {
        let Some(plan) = self.parameter_plan() else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_fields()?;
        let mut out: Vec<Option<FieldRef>> = vec![];
        for (id, t) in types {
            let Some(n) = id.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) else {
                return Err(PlannerError::Syntax(format!("bad parameter {id}")));
            };
            if n == 0 {
                return Err(PlannerError::Syntax("there is no parameter $0".into()));
            }
            if out.len() < n {
                out.resize(n, None);
            }
            out[n - 1] = t;
        }
        Ok(out)
    }

    /// The schema of the rows the statement returns, if it returns rows.
    pub fn output_schema(&self) -> Option<SchemaRef> {
        match self {
            Plan::Query(p) => Some(Arc::new(p.schema().as_arrow().clone())),
            Plan::PointGet(_, g) => Some(g.schema().clone()),
            Plan::Insert(i) => i.returning.as_ref().map(|r| r.schema.clone()),
            Plan::Update(m) | Plan::Delete(m) => m.returning.as_ref().map(|r| r.schema.clone()),
            Plan::View(v) => v.output_schema(),
            Plan::Session(s) => s.output_schema(),
            Plan::CopyFrom { .. } | Plan::CopyTo { .. } | Plan::Ddl(_) => None,
        }
    }
}
