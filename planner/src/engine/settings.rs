//! Session settings and transaction control: `SET`/`SHOW`/`RESET`,
//! `BEGIN`/`COMMIT`/`ROLLBACK`/savepoints, and statements accepted as
//! no-ops. None of them touch storage; they change the [`Session`].

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Reset, Set, Statement, Value as SqlValue};

use super::{batches_stream, CommandTag, Output};
use crate::session::Session;
use crate::{PlannerError, Result};

/// Sent with a ROLLBACK that follows writes: every statement commits on
/// its own (see the README's "Transactions"), so there is nothing to undo.
const ROLLBACK_WARNING: &str =
    "ROLLBACK cannot undo the writes of this transaction block: Freshet commits each statement when it completes";

/// A planned session or transaction statement.
#[derive(Debug, Clone)]
pub enum SessionPlan {
    Set {
        name: String,
        value: Option<String>,
    },
    Show(String),
    ShowAll,
    Reset(Option<String>),
    Begin,
    Commit,
    Rollback,
    Savepoint,
    ReleaseSavepoint,
    RollbackToSavepoint,
    /// Accepted and ignored (`DISCARD ALL`, `DEALLOCATE` …), with its tag.
    Noop(String),
}

impl SessionPlan {
    pub(super) fn output_schema(&self) -> Option<SchemaRef> {
        match self {
            SessionPlan::Show(name) => Some(show_schema(&Session::display_name(name))),
            SessionPlan::ShowAll => Some(show_all_schema()),
            _ => None,
        }
    }
}

/// Plans a session or transaction statement; `None` if `stmt` is none.
/// (`SHOW MATERIALIZED VIEWS` is a view statement: see `views.rs`.)
pub(super) fn plan(session: &Session, stmt: &Statement) -> Result<Option<SessionPlan>> {
    Ok(Some(match stmt {
        Statement::Set(set) => plan_set(set.clone())?,
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join(" ");
            if name.eq_ignore_ascii_case("all") {
                SessionPlan::ShowAll
            } else {
                session.get(&name)?;
                SessionPlan::Show(name)
            }
        }
        Statement::Reset(r) => SessionPlan::Reset(match &r.reset {
            Reset::ALL => None,
            Reset::ConfigurationParameter(name) => Some(name.to_string()),
        }),
        Statement::StartTransaction { .. } => SessionPlan::Begin,
        Statement::Commit { .. } => SessionPlan::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => SessionPlan::Rollback,
        Statement::Rollback {
            savepoint: Some(_), ..
        } => SessionPlan::RollbackToSavepoint,
        Statement::Savepoint { .. } => SessionPlan::Savepoint,
        Statement::ReleaseSavepoint { .. } => SessionPlan::ReleaseSavepoint,
        Statement::Discard { .. } => SessionPlan::Noop("DISCARD ALL".into()),
        Statement::Deallocate { .. } => SessionPlan::Noop("DEALLOCATE".into()),
        // RisingWave's FLUSH waits until everything written before it is in
        // every view. A write here returns only once its views are
        // committed with it (read-your-writes), so that has happened.
        Statement::Flush { .. } => SessionPlan::Noop("FLUSH".into()),
        _ => return Ok(None),
    }))
}

/// Executes a session or transaction statement.
pub(super) fn execute(session: &mut Session, plan: &SessionPlan) -> Result<Output> {
    match plan {
        SessionPlan::Set { name, value } => {
            session.set(name, value.clone())?;
            Ok(Output::Command(CommandTag::new("SET")))
        }
        SessionPlan::Show(name) => {
            let value = session.get(name)?;
            let schema = show_schema(&Session::display_name(name));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(vec![value]))],
            )?;
            Ok(Output::Rows {
                schema: schema.clone(),
                stream: batches_stream(schema, vec![batch]),
            })
        }
        SessionPlan::ShowAll => {
            let all = session.all();
            let schema = show_all_schema();
            let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
            let values: Vec<&str> = all.iter().map(|(_, v)| v.as_str()).collect();
            let desc: Vec<&str> = all.iter().map(|_| "").collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                    Arc::new(StringArray::from(desc)),
                ],
            )?;
            Ok(Output::Rows {
                schema: schema.clone(),
                stream: batches_stream(schema, vec![batch]),
            })
        }
        SessionPlan::Reset(name) => {
            match name {
                Some(n) => session.set(n, None)?,
                None => session.reset_all(),
            }
            Ok(Output::Command(CommandTag::new("RESET")))
        }
        SessionPlan::Begin => {
            session.in_transaction = true;
            session.transaction_wrote = false;
            Ok(Output::Begin)
        }
        SessionPlan::Commit => {
            session.in_transaction = false;
            Ok(Output::Commit(CommandTag::new("COMMIT"), None))
        }
        SessionPlan::Rollback => {
            let notice = session
                .transaction_wrote
                .then(|| ROLLBACK_WARNING.to_string());
            session.in_transaction = false;
            session.transaction_wrote = false;
            Ok(Output::Commit(CommandTag::new("ROLLBACK"), notice))
        }
        SessionPlan::Savepoint => Ok(Output::Command(CommandTag::new("SAVEPOINT"))),
        SessionPlan::ReleaseSavepoint => Ok(Output::Command(CommandTag::new("RELEASE"))),
        SessionPlan::RollbackToSavepoint => {
            let tag = CommandTag::new("ROLLBACK");
            Ok(match session.transaction_wrote {
                true => Output::Notice(tag, ROLLBACK_WARNING.to_string()),
                false => Output::Command(tag),
            })
        }
        SessionPlan::Noop(tag) => Ok(Output::Command(CommandTag::new(tag))),
    }
}

fn show_schema(name: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, false)]))
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
    ]))
}

fn plan_set(set: Set) -> Result<SessionPlan> {
    let value_of = |values: &[SqlExpr]| -> Option<String> {
        let parts: Vec<String> = values
            .iter()
            .map(|v| match v {
                SqlExpr::Value(v) => match &v.value {
                    SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                },
                SqlExpr::Identifier(i) => i.value.clone(),
                other => other.to_string(),
            })
            .collect();
        let joined = parts.join(", ");
        (!joined.eq_ignore_ascii_case("default")).then_some(joined)
    };
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => Ok(SessionPlan::Set {
            name: variable.to_string(),
            value: value_of(&values),
        }),
        Set::SetTimeZone { value, .. } => Ok(SessionPlan::Set {
            name: "TimeZone".into(),
            value: value_of(&[value]),
        }),
        Set::SetNames { charset_name, .. } => Ok(SessionPlan::Set {
            name: "client_encoding".into(),
            value: Some(charset_name.value),
        }),
        Set::SetNamesDefault {} => Ok(SessionPlan::Set {
            name: "client_encoding".into(),
            value: None,
        }),
        // SET TRANSACTION / SESSION CHARACTERISTICS: accepted, see README.
        Set::SetTransaction { .. } => Ok(SessionPlan::Noop("SET".into())),
        other => Err(PlannerError::not_supported(format!("{other}"))),
    }
}
