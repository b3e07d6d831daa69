//! Planning `COPY`: `COPY t FROM STDIN` hands rows to `crate::copy` and
//! then to `dml.rs`; `COPY t | (query) TO STDOUT` is a query.

use datafusion::sql::sqlparser::ast::{self, CopySource, CopyTarget, Statement};

use super::plan::Plan;
use super::Engine;
use crate::copy::CopyOptions;
use crate::names::{normalize_ident, quote_ident, table_name};
use crate::{PlannerError, Result};

impl Engine {
    pub(super) async fn plan_copy(
        &self,
        source: CopySource,
        to: bool,
        target: CopyTarget,
        options: &[ast::CopyOption],
        legacy: &[ast::CopyLegacyOption],
    ) -> Result<Plan> {
        let options = CopyOptions::from_ast(options, legacy)?;
        match (to, &target) {
            (false, CopyTarget::Stdin) | (true, CopyTarget::Stdout) => {}
            _ => return Err(PlannerError::not_supported(
                "COPY to or from a server file or program (use STDIN/STDOUT, e.g. psql's \\copy)",
            )),
        }
        match source {
            CopySource::Table {
                table_name: name,
                columns,
            } => {
                let name = table_name(&name)?;
                let table = if to {
                    self.table_def(&name)?
                } else {
                    self.writable_table(&name)?
                };
                let cols: Vec<usize> = if columns.is_empty() {
                    (0..table.columns.len()).collect()
                } else {
                    columns
                        .iter()
                        .map(|c| {
                            let n = normalize_ident(c);
                            table
                                .column_index(&n)
                                .ok_or(PlannerError::UndefinedColumn(n))
                        })
                        .collect::<Result<_>>()?
                };
                if to {
                    let list = cols
                        .iter()
                        .map(|&i| quote_ident(&table.columns[i].name))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let stmts =
                        self.parse(&format!("SELECT {list} FROM {}", quote_ident(&name)))?;
                    let stmt = stmts
                        .into_iter()
                        .next()
                        .ok_or_else(|| PlannerError::Syntax("empty".into()))?;
                    let plan = self.df_plan(&self.query_ctx, stmt).await?;
                    Ok(Plan::CopyTo { plan, options })
                } else {
                    Ok(Plan::CopyFrom {
                        table,
                        columns: cols,
                        options,
                    })
                }
            }
            CopySource::Query(q) if to => {
                let plan = self.df_plan(&self.query_ctx, Statement::Query(q)).await?;
                Ok(Plan::CopyTo { plan, options })
            }
            CopySource::Query(_) => Err(PlannerError::Syntax("COPY FROM needs a table".into())),
        }
    }
}
