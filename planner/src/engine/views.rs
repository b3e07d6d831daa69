//! Views and materialized views: `CREATE [MATERIALIZED] VIEW`, its
//! backfill, start-up, `EXPLAIN`, `SHOW MATERIALIZED VIEWS`.
//!
//! A view's query is planned once, when the statement is planned: the
//! [`CreateView`] keeps the named plan and, for a materialized view, the
//! prepared plan `crate::lower` lowers (optimized once). Its SQL is kept
//! only for the catalog, from which start-up plans it again. Executing the
//! statement allocates state tables, lowers the plan to operators, and
//! backfills the view from its inputs as one step (see `step.rs`).

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{self, Statement};

use freshet_dataflow::graph::{Node, ViewFlow};
use freshet_dataflow::step::StepInput;
use freshet_dataflow::ChangeBatch;
use freshet_storage::{Snapshot, Txn};

use super::{batches_stream, CommandTag, Engine, Output, Writer};
use crate::catalog::{Catalog, ColumnDef, RelKind, TableDef, ROWID_COLUMN};
use crate::colnames::{self, UNIQUE_SUFFIX};
use crate::lower::{self, scanned_relations, view_key, Target};
use crate::names::{normalize_ident, table_name};
use crate::types::SqlType;
use crate::{rewrite, PlannerError, Result};

/// A planned statement about views.
#[derive(Debug, Clone)]
pub enum ViewPlan {
    Create(Arc<CreateView>),
    /// `CREATE … IF NOT EXISTS` of a relation that exists: its query was
    /// analyzed (an error in it is still an error, as in PostgreSQL), and
    /// executing it only answers the tag.
    Exists(&'static str),
    /// `EXPLAIN CREATE MATERIALIZED VIEW …`.
    ExplainCreate(Arc<CreateView>),
    /// `EXPLAIN [MATERIALIZED VIEW] name`.
    Explain(String),
    ShowMaterialized,
    /// `SHOW SOURCES`.
    ShowSources,
}

impl ViewPlan {
    pub(super) fn output_schema(&self) -> Option<SchemaRef> {
        match self {
            ViewPlan::Create(_) | ViewPlan::Exists(_) => None,
            ViewPlan::ExplainCreate(_) | ViewPlan::Explain(_) => Some(explain_schema()),
            ViewPlan::ShowMaterialized | ViewPlan::ShowSources => Some(names_schema()),
        }
    }
}

/// A planned `CREATE [MATERIALIZED] VIEW`: its query planned once.
#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// The query as written after `AS` (for the catalog).
    pub sql: String,
    /// The query with the view's column names and SQL types.
    pub plan: LogicalPlan,
    /// For a materialized view: `plan` as it is lowered (see
    /// [`lower::prepare`]), and the columns keying its contents.
    pub prepared: Option<(LogicalPlan, Option<Vec<usize>>)>,
    /// The relations the query reads directly.
    pub depends_on: Vec<String>,
    pub materialized: bool,
    pub if_not_exists: bool,
}

impl CreateView {
    fn prepared(&self) -> Result<&LogicalPlan> {
        self.prepared.as_ref().map(|(p, _)| p).ok_or_else(|| {
            PlannerError::WrongObjectType(format!("\"{}\" is not a materialized view", self.name))
        })
    }

    /// The catalog entry (id and state ids still to allocate).
    fn def(&self, kind: RelKind) -> TableDef {
        TableDef {
            id: 0,
            name: self.name.clone(),
            columns: self.columns.clone(),
            primary_key: vec![],
            kind,
            query: Some(self.sql.clone()),
            depends_on: self.depends_on.clone(),
            state_ids: (0, 0),
            view_key: self.prepared.as_ref().and_then(|(_, k)| k.clone()),
            append_only: false,
            owner: None,
            connector: None,
        }
    }
}

pub fn explain_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        false,
    )]))
}

pub fn names_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]))
}

fn lines_output(schema: SchemaRef, lines: Vec<String>) -> Result<Output> {
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(lines))])?;
    Ok(Output::Rows {
        schema: schema.clone(),
        stream: batches_stream(schema, vec![batch]),
    })
}

/// Lowers a materialized view's prepared plan to its operator tree, with
/// state ids from `def.state_ids.0` on. Returns the tree and the ids used.
fn lower_view(prepared: &LogicalPlan, def: &TableDef) -> Result<(Node, u32)> {
    lower::lower(
        prepared,
        Target {
            schema: def.user_schema(),
            table_id: def.id,
            first_state_id: def.state_ids.0,
            key: def.view_key.as_deref(),
        },
    )
}

impl Engine {
    /// Plans a statement about views; `None` if `stmt` is not one.
    pub(super) async fn plan_view_statement(
        &self,
        stmt: Statement,
    ) -> Result<Result<ViewPlan, Statement>> {
        Ok(Ok(match stmt {
            Statement::Explain { statement, .. }
                if matches!(statement.as_ref(), Statement::CreateView(_)) =>
            {
                let Statement::CreateView(cv) = *statement else {
                    unreachable!("matched above")
                };
                // Explained as the materialized view it would be.
                let cv = ast::CreateView {
                    materialized: true,
                    ..cv
                };
                self.plan_create_view(cv, true).await?
            }
            Statement::ExplainTable { table_name: t, .. } => ViewPlan::Explain(table_name(&t)?),
            Statement::CreateView(cv) => self.plan_create_view(cv, false).await?,
            Statement::ShowViews {
                materialized: true, ..
            } => ViewPlan::ShowMaterialized,
            Statement::ShowVariable { variable }
                if variable
                    .iter()
                    .map(|i| i.value.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .eq_ignore_ascii_case("materialized views") =>
            {
                ViewPlan::ShowMaterialized
            }
            Statement::ShowVariable { variable }
                if variable.len() == 1 && variable[0].value.eq_ignore_ascii_case("sources") =>
            {
                ViewPlan::ShowSources
            }
            other => return Ok(Err(other)),
        }))
    }

    pub(super) async fn exec_view(&self, plan: &ViewPlan, user: &str) -> Result<Output> {
        match plan {
            ViewPlan::Create(c) => self.exec_create_view(c, user).await,
            ViewPlan::Exists(tag) => Ok(Output::Command(CommandTag::new(tag))),
            ViewPlan::ExplainCreate(c) => self.explain_create_view(c),
            ViewPlan::Explain(name) => self.explain_view(name).await,
            ViewPlan::ShowMaterialized => self.show_materialized_views(),
            ViewPlan::ShowSources => {
                let mut names: Vec<String> = self
                    .catalog()
                    .tables()
                    .filter(|d| d.kind == RelKind::Source)
                    .map(|d| d.name.clone())
                    .collect();
                names.sort();
                lines_output(names_schema(), names)
            }
        }
    }

    /// Plans `CREATE [MATERIALIZED] VIEW` (`explain`: for `EXPLAIN`).
    async fn plan_create_view(&self, cv: ast::CreateView, explain: bool) -> Result<ViewPlan> {
        if cv.or_replace || cv.or_alter {
            return Err(PlannerError::not_supported("CREATE OR REPLACE VIEW"));
        }
        if cv.temporary {
            return Err(PlannerError::not_supported("temporary views"));
        }
        let name = table_name(&cv.name)?;
        if name == ROWID_COLUMN {
            return Err(PlannerError::InvalidParameterValue("reserved name".into()));
        }
        let columns: Vec<String> = cv
            .columns
            .iter()
            .map(|c| normalize_ident(&c.name))
            .collect();
        let sql = cv.query.to_string();
        // PostgreSQL analyzes the query first, then skips an existing
        // relation under IF NOT EXISTS: what a materialized view cannot
        // maintain is not checked for a view that will not be created.
        let exists = !explain && cv.if_not_exists && self.catalog().get(&name).is_some();
        let view = self
            .plan_view(
                name,
                sql,
                Statement::Query(cv.query),
                &columns,
                cv.materialized,
                cv.if_not_exists,
                !exists,
            )
            .await?;
        Ok(match (exists, explain) {
            (true, _) if view.materialized => ViewPlan::Exists("CREATE MATERIALIZED VIEW"),
            (true, _) => ViewPlan::Exists("CREATE VIEW"),
            (false, true) => ViewPlan::ExplainCreate(Arc::new(view)),
            (false, false) => ViewPlan::Create(Arc::new(view)),
        })
    }

    /// Plans a view's query `stmt` (whose text is `sql`), with its final
    /// column names (`columns` renames the first ones) and types (cast to
    /// SQL types where DataFusion's differ, e.g. `row_number()` to bigint).
    #[allow(clippy::too_many_arguments)]
    async fn plan_view(
        &self,
        name: String,
        sql: String,
        mut stmt: Statement,
        columns: &[String],
        materialized: bool,
        if_not_exists: bool,
        prepare: bool,
    ) -> Result<CreateView> {
        colnames::apply_all(&mut stmt);
        let functions = self.catalog().functions().clone();
        let called = crate::sqlfunc::inline(&mut stmt, &functions)?;
        self.whole_rows(&mut stmt)?;
        rewrite::apply(&mut stmt, "freshet")?;
        let plan = self.df_plan(&self.query_ctx, stmt).await?;
        // Column types as the query computes them: after type coercion (a
        // UNION's column type is only settled there), which the analyzer
        // does; the optimizer keeps a plan's types.
        let state = self.query_ctx.state();
        let typed =
            state
                .analyzer()
                .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
        let fields = plan.schema().fields().len();
        if columns.len() > fields {
            return Err(PlannerError::Syntax(
                "CREATE VIEW specifies more column names than columns".into(),
            ));
        }
        let mut exprs = Vec::with_capacity(fields);
        let mut defs: Vec<ColumnDef> = Vec::with_capacity(fields);
        for i in 0..fields {
            let (qualifier, field) = plan.schema().qualified_field(i);
            let name = match columns.get(i) {
                Some(n) => n.clone(),
                None => field
                    .name()
                    .split(UNIQUE_SUFFIX)
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            };
            if defs.iter().any(|d| d.name == name) {
                return Err(PlannerError::DuplicateColumn(name));
            }
            let computed = typed.schema().field(i);
            let dt =
                SqlType::conformed(computed.data_type()).unwrap_or(computed.data_type().clone());
            let sql_type = SqlType::from_field(&computed.as_ref().clone().with_data_type(dt))
                .ok_or_else(|| {
                    PlannerError::not_supported(format!(
                        "column \"{name}\" of type {} in a view",
                        field.data_type()
                    ))
                })?;
            let mut e = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            if sql_type.arrow() != *field.data_type() {
                e = Expr::Cast(datafusion::logical_expr::Cast::new(
                    Box::new(e),
                    sql_type.arrow(),
                ));
            }
            // A duration (timestamp - timestamp) is PostgreSQL's interval
            // with whole days split off, as ad-hoc queries print it.
            if matches!(field.data_type(), DataType::Duration(_)) {
                e = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
                    datafusion::execution::FunctionRegistry::udf(&state, "justify_hours")?,
                    vec![e],
                ));
            }
            exprs.push(e.alias(&name));
            defs.push(ColumnDef {
                name,
                sql_type,
                not_null: false,
                default: None,
            });
        }
        let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        let prepared = match materialized && prepare {
            true => {
                let prepared = lower::prepare(&plan, &state)?;
                let key = view_key(&prepared);
                Some((prepared, key))
            }
            false => None,
        };
        Ok(CreateView {
            name,
            columns: defs,
            sql,
            depends_on: scanned_relations(&plan)
                .into_iter()
                .chain(
                    called
                        .iter()
                        .map(|f| crate::catalog::function_dependency(f)),
                )
                .collect(),
            plan,
            prepared,
            materialized,
            if_not_exists,
        })
    }

    async fn exec_create_view(&self, c: &CreateView, user: &str) -> Result<Output> {
        let tag = if c.materialized {
            "CREATE MATERIALIZED VIEW"
        } else {
            "CREATE VIEW"
        };
        let mut writer = self.writer.lock().await;
        if self.catalog().relation_exists(&c.name) {
            if c.if_not_exists {
                return Ok(Output::Command(CommandTag::new(tag)));
            }
            return Err(PlannerError::DuplicateTable(c.name.clone()));
        }
        // The query was planned with the statement; what it reads may have
        // been dropped since (a prepared statement).
        for d in &c.depends_on {
            if let Some(f) = d.strip_prefix("function:") {
                if !self.catalog().functions().contains_key(f) {
                    return Err(PlannerError::UndefinedFunction(format!(
                        "function {f} does not exist"
                    )));
                }
                continue;
            }
            if self.catalog().get(d).is_none() {
                return Err(PlannerError::UndefinedTable(d.clone()));
            }
        }
        let mut txn = Txn::new();
        let Some((prepared, _)) = &c.prepared else {
            let mut def = c.def(RelKind::View);
            def.owner = Some(user.to_string());
            def.id = self.catalog().allocate_id(&mut txn);
            Catalog::write_table(&def, &mut txn)?;
            self.store.commit(txn)?;
            self.register_view(&def.name, c.plan.clone(), &c.sql);
            self.catalog().insert(Arc::new(def));
            return Ok(Output::Command(CommandTag::new(tag)));
        };
        let mut def = c.def(RelKind::MaterializedView);
        def.owner = Some(user.to_string());
        def.id = self.catalog().allocate_id(&mut txn);
        def.state_ids.0 = self.catalog().peek_next_id();
        let (root, n) = lower_view(prepared, &def)?;
        self.catalog().allocate_ids(n, &mut txn);
        def.state_ids.1 = n;
        Catalog::write_table(&def, &mut txn)?;
        // Backfill: the view's inputs as they are now, as one step.
        let snapshot = self.store.snapshot();
        let mut sources = Vec::new();
        root.sources(&mut sources);
        let mut input = StepInput::new();
        for s in &sources {
            let contents = match self.table_def(s)? {
                d if d.kind == RelKind::Source => self.source_contents(&d)?,
                _ => self.relation_contents(s, &snapshot)?,
            };
            input.add(s, contents)?;
        }
        self.add_flow(
            &mut writer,
            ViewFlow {
                name: def.name.clone(),
                root,
            },
        );
        if let Err(e) = self.backfill(&mut writer, &def, input, txn, &snapshot) {
            writer.runtime.remove(&def.name);
            return Err(e);
        }
        let def = Arc::new(def);
        self.catalog().insert(def.clone());
        self.register_table(def)?;
        // A source read for the first time starts.
        self.sync_sources(&mut writer)?;
        Ok(Output::Command(CommandTag::new(tag)))
    }

    fn register_view(&self, name: &str, plan: LogicalPlan, sql: &str) {
        let view = Arc::new(ViewTable::new(plan, Some(sql.to_string())));
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), view);
    }

    /// Re-creates every view's dataflow (without recomputing anything:
    /// its state is in storage as of the last epoch) and registers views,
    /// in creation order.
    pub(super) async fn restore_views(&self, writer: &mut Writer) -> Result<()> {
        let mut defs: Vec<Arc<TableDef>> = self
            .catalog()
            .tables()
            .filter(|d| matches!(d.kind, RelKind::View | RelKind::MaterializedView))
            .cloned()
            .collect();
        defs.sort_by_key(|d| d.id);
        for def in defs {
            let names: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
            let sql = def.query.clone().unwrap_or_default();
            let mut stmts = self.parse(&sql)?;
            let (Some(stmt), true) = (stmts.pop(), stmts.is_empty()) else {
                return Err(PlannerError::DataException(format!(
                    "view \"{}\" is not defined by one query",
                    def.name
                )));
            };
            let materialized = def.kind == RelKind::MaterializedView;
            let view = self
                .plan_view(
                    def.name.clone(),
                    sql,
                    stmt,
                    &names,
                    materialized,
                    false,
                    true,
                )
                .await?;
            let Some((prepared, _)) = &view.prepared else {
                self.register_view(&def.name, view.plan, &view.sql);
                continue;
            };
            // The stored layout is the view's own (decided when it was
            // created), whatever a new view of this query would get.
            let (root, n) = lower_view(prepared, &def)?;
            if n != def.state_ids.1 {
                return Err(PlannerError::DataException(format!(
                    "materialized view \"{}\" now lowers to {n} state tables, not {}",
                    def.name, def.state_ids.1
                )));
            }
            self.add_flow(
                writer,
                ViewFlow {
                    name: def.name.clone(),
                    root,
                },
            );
            self.register_table(def)?;
        }
        Ok(())
    }

    /// Everything in relation `name` as of `snapshot`, as insertions (a
    /// view's rows with their multiplicities).
    fn relation_contents(&self, name: &str, snapshot: &Snapshot) -> Result<ChangeBatch> {
        let def = self.table_def(name)?;
        let stored = self.stored(name)?;
        let user: Vec<usize> = (0..def.columns.len()).collect();
        let mut projection = user.clone();
        projection.extend(def.multiplicity_column());
        let mut decoder = stored.codec().decoder(Some(&projection), 1024);
        snapshot.scan_table(def.id, |_, v| decoder.push(v))?;
        let batch = decoder.finish()?;
        let data = RecordBatch::try_new(def.user_schema(), batch.columns()[..user.len()].to_vec())?;
        let weights = match def.multiplicity_column() {
            Some(_) => batch
                .column(user.len())
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| PlannerError::DataException("view multiplicity".into()))?,
            None => Int64Array::from(vec![1; data.num_rows()]),
        };
        Ok(ChangeBatch::new(data, weights)?)
    }

    /// `SHOW MATERIALIZED VIEWS`.
    fn show_materialized_views(&self) -> Result<Output> {
        let mut names: Vec<String> = self
            .catalog()
            .tables()
            .filter(|d| d.is_materialized_view())
            .map(|d| d.name.clone())
            .collect();
        names.sort();
        lines_output(names_schema(), names)
    }

    /// `EXPLAIN CREATE MATERIALIZED VIEW …`: the operator graph the view
    /// would get (state table ids as they would be allocated).
    fn explain_create_view(&self, c: &CreateView) -> Result<Output> {
        let logical = c.prepared()?;
        let next = self.catalog().peek_next_id();
        let mut def = c.def(RelKind::MaterializedView);
        def.id = next;
        def.state_ids = (next + 1, 0);
        let (root, _) = lower_view(logical, &def)?;
        let mut lines = vec![format!(
            "Materialized view {} (contents in state table {})",
            def.name, def.id
        )];
        root.explain(1, &mut lines);
        lines.push("Optimized logical plan:".into());
        lines.extend(
            logical
                .display_indent()
                .to_string()
                .lines()
                .map(|l| format!("  {l}")),
        );
        lines_output(explain_schema(), lines)
    }

    /// `EXPLAIN MATERIALIZED VIEW name` (or `EXPLAIN name`): the running
    /// operator graph of a view.
    async fn explain_view(&self, name: &str) -> Result<Output> {
        let def = self.table_def(name)?;
        if !def.is_materialized_view() {
            return Err(PlannerError::WrongObjectType(format!(
                "\"{name}\" is not a materialized view"
            )));
        }
        let writer = self.writer.lock().await;
        let flow = writer
            .runtime
            .get(name)
            .ok_or_else(|| PlannerError::UndefinedTable(name.to_string()))?;
        let mut lines = vec![format!(
            "Materialized view {name} (contents in state table {})",
            def.id
        )];
        flow.root.explain(1, &mut lines);
        lines_output(explain_schema(), lines)
    }

    pub(super) fn catalog(&self) -> std::sync::MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The definition of a table that statements may write to.
    pub(super) fn writable_table(&self, name: &str) -> Result<Arc<TableDef>> {
        let def = self.table_def(name)?;
        if def.kind != RelKind::Table {
            return Err(PlannerError::WrongObjectType(format!(
                "cannot change {} \"{name}\"",
                def.kind.noun()
            )));
        }
        Ok(def)
    }
}
