//! Planning `INSERT`, `UPDATE` and `DELETE`: DataFusion plans the rows a
//! statement writes (defaults, casts, subqueries, parameter types), and
//! Freshet keeps only that source plan; `dml.rs` applies its rows.

use std::sync::Arc;

use datafusion::catalog::MemTable;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, ConflictTarget, Expr as SqlExpr, FromTable, ObjectName,
    OnConflictAction, OnInsert, SelectItem, Statement, TableFactor, TableObject, Value as SqlValue,
};

use super::plan::{Conflict, InsertPlan, ModifyPlan, Plan, Returning};
use super::Engine;
use crate::catalog::TableDef;
use crate::names::{normalize_ident, quote_ident, table_name};
use crate::point_get::PointSource;
use crate::types::SqlType;
use crate::{colnames, rewrite, PlannerError, Result};

impl Engine {
    pub(super) async fn plan_insert(&self, mut ins: ast::Insert) -> Result<Plan> {
        let TableObject::TableName(name) = &ins.table else {
            return Err(PlannerError::not_supported("INSERT into a table function"));
        };
        let name = table_name(name)?;
        let table = self.writable_table(&name)?;
        let alias = ins
            .table_alias
            .as_ref()
            .map(|a| a.alias.value.clone())
            .unwrap_or_else(|| name.clone());
        let conflict = match ins.on.take() {
            None => Conflict::Error,
            Some(OnInsert::OnConflict(oc)) => {
                match &oc.conflict_target {
                    None => {}
                    Some(ConflictTarget::Columns(cols)) => {
                        let mut cols: Vec<Option<usize>> = cols
                            .iter()
                            .map(|c| table.column_index(&normalize_ident(c)))
                            .collect();
                        cols.sort();
                        let mut pk: Vec<Option<usize>> =
                            table.primary_key.iter().map(|&i| Some(i)).collect();
                        pk.sort();
                        if cols != pk || pk.is_empty() {
                            return Err(PlannerError::InvalidParameterValue(
                                "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                            ));
                        }
                    }
                    Some(ConflictTarget::OnConstraint(c))
                        if c.to_string() != table.pkey_name() || table.primary_key.is_empty() =>
                    {
                        return Err(PlannerError::InvalidParameterValue(format!(
                            "constraint \"{c}\" for table \"{}\" does not exist",
                            table.name
                        )));
                    }
                    Some(ConflictTarget::OnConstraint(_)) => {}
                }
                match oc.action {
                    OnConflictAction::DoNothing => Conflict::DoNothing,
                    OnConflictAction::DoUpdate(du) => {
                        append_only_refuses(&table, "ON CONFLICT DO UPDATE")?;
                        if oc.conflict_target.is_none() {
                            return Err(PlannerError::Syntax(
                                "ON CONFLICT DO UPDATE requires inference specification or constraint name".into(),
                            ));
                        }
                        let mut assignments = Vec::new();
                        for a in du.assignments {
                            let AssignmentTarget::ColumnName(col) = &a.target else {
                                return Err(PlannerError::not_supported(
                                    "tuple assignment in ON CONFLICT",
                                ));
                            };
                            let col_name = col
                                .0
                                .last()
                                .and_then(|p| p.as_ident())
                                .map(normalize_ident)
                                .unwrap_or_default();
                            let idx = table
                                .column_index(&col_name)
                                .ok_or(PlannerError::UndefinedColumn(col_name))?;
                            assignments.push((idx, a.value.to_string()));
                        }
                        Conflict::DoUpdate {
                            assignments,
                            selection: du.selection.map(|e| e.to_string()),
                        }
                    }
                }
            }
            Some(OnInsert::DuplicateKeyUpdate(_)) => {
                return Err(PlannerError::not_supported("ON DUPLICATE KEY UPDATE"))
            }
            Some(other) => return Err(PlannerError::not_supported(format!("{other}"))),
        };
        let returning = match ins.returning.take() {
            Some(items) => Some(self.plan_returning(&table, &alias, &items).await?),
            None => None,
        };
        ins.table_alias = None;
        if ins.columns.is_empty() {
            // Postgres fills the first N columns when the source is narrower
            // than the table; DataFusion wants every column.
            let width = match ins.source.as_deref().map(|q| q.body.as_ref()) {
                Some(ast::SetExpr::Values(v)) => v.rows.first().map(|r| r.len()),
                Some(_) => {
                    let q = ins.source.clone().map(Statement::Query);
                    match q {
                        Some(q) => Some(
                            self.df_plan(&self.insert_ctx, q)
                                .await?
                                .schema()
                                .fields()
                                .len(),
                        ),
                        None => None,
                    }
                }
                None => None,
            };
            if let Some(w) = width {
                if w > table.columns.len() {
                    return Err(PlannerError::Syntax(
                        "INSERT has more expressions than target columns".into(),
                    ));
                }
                if w < table.columns.len() {
                    ins.columns = table.columns[..w]
                        .iter()
                        .map(|c| {
                            ObjectName::from(vec![ast::Ident::with_quote('"', c.name.clone())])
                        })
                        .collect();
                }
            }
        }
        bytea_values(&table, &mut ins)?;
        let plan = self
            .df_plan(&self.insert_ctx, Statement::Insert(ins))
            .await?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(PlannerError::not_supported("this form of INSERT"));
        };
        Ok(Plan::Insert(Arc::new(InsertPlan {
            table,
            source: dml.input.as_ref().clone(),
            conflict,
            returning,
            alias,
        })))
    }

    pub(super) async fn plan_modify(&self, mut stmt: Statement) -> Result<Plan> {
        let (name, alias, returning) = match &mut stmt {
            Statement::Update(u) => {
                let TableFactor::Table { name, alias, .. } = &u.table.relation else {
                    return Err(PlannerError::not_supported(
                        "UPDATE of a non-table relation",
                    ));
                };
                (
                    name.clone(),
                    alias.as_ref().map(|a| a.name.value.clone()),
                    u.returning.take(),
                )
            }
            Statement::Delete(d) => {
                if !d.tables.is_empty() || d.limit.is_some() || !d.order_by.is_empty() {
                    return Err(PlannerError::not_supported(
                        "multi-table DELETE / DELETE with LIMIT",
                    ));
                }
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                let [twj] = from.as_slice() else {
                    return Err(PlannerError::not_supported("DELETE from several tables"));
                };
                let TableFactor::Table { name, alias, .. } = &twj.relation else {
                    return Err(PlannerError::not_supported(
                        "DELETE from a non-table relation",
                    ));
                };
                (
                    name.clone(),
                    alias.as_ref().map(|a| a.name.value.clone()),
                    d.returning.take(),
                )
            }
            _ => unreachable!("plan_modify takes UPDATE or DELETE"),
        };
        let name = table_name(&name)?;
        let table = self.writable_table(&name)?;
        let verb = if matches!(stmt, Statement::Update(_)) {
            "UPDATE"
        } else {
            "DELETE"
        };
        append_only_refuses(&table, verb)?;
        if let Statement::Update(u) = &mut stmt {
            u.assignments = plain_assignments(std::mem::take(&mut u.assignments), &table)?;
        }
        let alias = alias.unwrap_or_else(|| name.clone());
        let returning = match returning {
            Some(items) => Some(self.plan_returning(&table, &alias, &items).await?),
            None => None,
        };
        let is_update = matches!(stmt, Statement::Update(_));
        let plan = self.df_plan(&self.dml_ctx, stmt).await?;
        let LogicalPlan::Dml(dml) = plan else {
            return Err(PlannerError::not_supported("this form of UPDATE/DELETE"));
        };
        if !is_update {
            let source = dml.input.as_ref().clone();
            return Ok(Plan::Delete(Arc::new(ModifyPlan {
                point: self.point_source(&source),
                table,
                source,
                returning,
                alias,
            })));
        }
        // The update's projection computes new rows; append the old key so
        // rows whose key changes can be moved.
        let LogicalPlan::Projection(p) = dml.input.as_ref() else {
            return Err(PlannerError::not_supported("this form of UPDATE"));
        };
        let storage = table.storage_schema();
        let mut exprs = p.expr.clone();
        for (i, k) in table.key_columns().into_iter().enumerate() {
            let key_name = storage.field(k).name();
            let (qualifier, field) = p
                .input
                .schema()
                .iter()
                .find(|(q, f)| {
                    f.name() == key_name && q.map(|q| q.table() == alias).unwrap_or(true)
                })
                .ok_or_else(|| PlannerError::UndefinedColumn(key_name.clone()))?;
            exprs.push(
                Expr::Column(Column::from((qualifier, field))).alias(format!("__old_key_{i}")),
            );
        }
        let source = LogicalPlan::Projection(Projection::try_new(exprs, p.input.clone())?);
        Ok(Plan::Update(Arc::new(ModifyPlan {
            point: self.point_source(&source),
            table,
            source,
            returning,
            alias,
        })))
    }

    fn point_source(&self, source: &LogicalPlan) -> Option<PointSource> {
        let mut point = PointSource::detect(source, |name| {
            self.dml_tables
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()
        })?;
        if let LogicalPlan::Projection(_) = source {
            let state = self.dml_ctx.state();
            point.analyzed = state
                .analyzer()
                .execute_and_check(source.clone(), state.config_options(), |_, _| {})
                .ok();
        }
        Some(point)
    }

    async fn plan_returning(
        &self,
        table: &TableDef,
        alias: &str,
        items: &[SelectItem],
    ) -> Result<Returning> {
        let list = items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let mut query = self.parse(&format!("SELECT {list} FROM {}", quote_ident(alias)))?;
        if let Some(Statement::Query(q)) = query.first_mut() {
            colnames::apply(q);
        }
        let sql = query.first().map(|s| s.to_string()).unwrap_or_default();
        let ctx = SessionContext::new();
        ctx.register_table(
            alias,
            Arc::new(MemTable::try_new(table.user_schema(), vec![vec![]])?),
        )?;
        let df = ctx.sql(&sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        Ok(Returning { sql, schema })
    }
}

/// String literals inserted into bytea columns take Postgres' bytea input
/// syntax (`'\x0102'`), not the text's raw bytes; those inserted into
/// interval columns take Postgres' interval forms (`'1 day 02:00:00'`).
fn bytea_values(table: &TableDef, ins: &mut ast::Insert) -> Result<()> {
    let targets: Vec<Option<usize>> = if ins.columns.is_empty() {
        (0..table.columns.len()).map(Some).collect()
    } else {
        ins.columns
            .iter()
            .map(|c| {
                c.0.last()
                    .and_then(|p| p.as_ident())
                    .and_then(|i| table.column_index(&normalize_ident(i)))
            })
            .collect()
    };
    let Some(ast::SetExpr::Values(values)) = ins.source.as_deref_mut().map(|q| q.body.as_mut())
    else {
        return Ok(());
    };
    for row in values.rows.iter_mut() {
        for (i, e) in row.iter_mut().enumerate() {
            let Some(Some(col)) = targets.get(i) else {
                continue;
            };
            let SqlExpr::Value(v) = e else { continue };
            let SqlValue::SingleQuotedString(text) = &v.value else {
                continue;
            };
            match table.columns[*col].sql_type {
                SqlType::Bytea => *e = rewrite::bytea_literal(text)?,
                // DataFusion casts the string itself, without Postgres'
                // `1 day 02:00:00` / `mons` forms.
                SqlType::Interval => {
                    *e = SqlExpr::value(SqlValue::SingleQuotedString(rewrite::interval_text(text)))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The SQL name used to CAST to a column type inside generated SQL.
/// UPDATE's assignments one column each: `SET (a, b) = (x, y)` and `SET
/// (a, b) = (SELECT x, y …)` (each column its own scalar subquery of the
/// one SELECT) split up, and `SET c = DEFAULT` the column's default (NULL
/// without one).
fn plain_assignments(
    assignments: Vec<datafusion::sql::sqlparser::ast::Assignment>,
    table: &TableDef,
) -> Result<Vec<datafusion::sql::sqlparser::ast::Assignment>> {
    use datafusion::sql::sqlparser::ast::{Assignment, AssignmentTarget, Expr as SqlExpr, SetExpr};
    let default_of =
        |column: &datafusion::sql::sqlparser::ast::ObjectName, value: SqlExpr| -> Result<SqlExpr> {
            let is_default = matches!(&value, SqlExpr::Identifier(id)
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
            if !is_default {
                return Ok(value);
            }
            let name = column
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(crate::names::normalize_ident)
                .unwrap_or_default();
            let col = table
                .columns
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| PlannerError::UndefinedColumn(name.clone()))?;
            Ok(match &col.default {
                Some(sql) => crate::parse::expr(sql)?,
                None => SqlExpr::value(SqlValue::Null),
            })
        };
    let mut out = Vec::with_capacity(assignments.len());
    for a in assignments {
        let columns = match a.target {
            AssignmentTarget::ColumnName(c) => {
                let value = default_of(&c, a.value)?;
                out.push(Assignment {
                    target: AssignmentTarget::ColumnName(c),
                    value,
                });
                continue;
            }
            AssignmentTarget::Tuple(columns) => columns,
        };
        let values: Vec<SqlExpr> = match a.value {
            SqlExpr::Tuple(values) => values,
            // ROW(x, y)
            SqlExpr::Function(f) if f.name.to_string().eq_ignore_ascii_case("row") => {
                let datafusion::sql::sqlparser::ast::FunctionArguments::List(list) = f.args else {
                    return Err(PlannerError::Syntax("ROW() takes a list of values".into()));
                };
                list.args
                    .into_iter()
                    .map(|a| match a {
                        datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                            datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(e),
                        ) => Ok(e),
                        other => Err(PlannerError::Syntax(format!("ROW() value {other}"))),
                    })
                    .collect::<Result<_>>()?
            }
            SqlExpr::Subquery(q) => {
                let SetExpr::Select(select) = q.body.as_ref() else {
                    return Err(PlannerError::not_supported(
                        "a set operation as the source of a multiple-column UPDATE",
                    ));
                };
                (0..select.projection.len())
                    .map(|i| {
                        let mut one = q.clone();
                        if let SetExpr::Select(s) = one.body.as_mut() {
                            s.projection = vec![s.projection[i].clone()];
                        }
                        SqlExpr::Subquery(one)
                    })
                    .collect()
            }
            _ => return Err(PlannerError::Syntax(
                "source for a multiple-column UPDATE item must be a sub-SELECT or ROW() expression"
                    .into(),
            )),
        };
        if values.len() != columns.len() {
            return Err(PlannerError::Syntax(
                "number of columns does not match number of values".into(),
            ));
        }
        for (c, v) in columns.into_iter().zip(values) {
            let value = default_of(&c, v)?;
            out.push(Assignment {
                target: AssignmentTarget::ColumnName(c),
                value,
            });
        }
    }
    Ok(out)
}

/// RisingWave's APPEND ONLY tables take inserts only.
fn append_only_refuses(table: &TableDef, what: &str) -> Result<()> {
    if table.append_only {
        return Err(PlannerError::WrongObjectType(format!(
            "{what} on table \"{}\" is not allowed: it is APPEND ONLY (rows can only be inserted)",
            table.name
        )));
    }
    Ok(())
}

pub(super) fn cast_type_name(t: &SqlType) -> String {
    match t {
        SqlType::Jsonb | SqlType::Varchar(_) => "TEXT".into(),
        SqlType::Numeric {
            precision: None, ..
        } => "DECIMAL(38, 10)".into(),
        SqlType::TimestampTz => "TIMESTAMPTZ".into(),
        other => other.pg_name().to_uppercase(),
    }
}
