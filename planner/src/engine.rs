//! The engine: plans and executes statements against the catalog and storage.
//!
//! Every statement goes SQL text → sqlparser AST → [`Plan`] → [`Output`]:
//! - queries (`SELECT`, `EXPLAIN`, `VALUES`, catalog queries) become a
//!   DataFusion `LogicalPlan` run over a storage snapshot;
//! - `INSERT/UPDATE/DELETE` are planned by DataFusion too (so defaults, casts,
//!   subqueries and parameter inference come from one place), but only their
//!   *source* plan is executed — Freshet applies the resulting rows itself,
//!   enforcing keys and constraints, in one atomic storage commit;
//! - DDL, session and transaction statements are handled directly.
//!
//! Writers are serialized by one async mutex: a DML statement takes it, reads
//! the latest snapshot, computes its changes and commits. Readers never wait.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::{Column, DFSchema, ParamValues};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection};
use datafusion::physical_plan::{execute_stream, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, ConflictTarget, CopySource, CopyTarget, Expr as SqlExpr, FromTable,
    ObjectName, ObjectType, OnConflictAction, OnInsert, Reset, SelectItem, Set, Statement,
    TableFactor, TableObject, Value as SqlValue,
};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::TryStreamExt;

use freshet_storage::{Snapshot, Store, StoreOptions, Txn};

use crate::catalog::RelKind;
use crate::catalog::{Catalog, ColumnDef, TableDef, ROWID_COLUMN};
use crate::copy::{CopyIn, CopyOptions};
use crate::point_get::PointGet;
use crate::session::Session;
use crate::table::{Flavor, FreshetSchema, QuerySnapshot, StoredTable, TableMap, ViewMap};
use crate::types::SqlType;
use crate::{colnames, functions, information_schema, pg_catalog, rewrite, PlannerError, Result};

mod dml;
mod views;

pub use views::CreateView;

/// Sent with a ROLLBACK that follows writes: every statement commits on
/// its own (see the README's "Transactions"), so there is nothing to undo.
const ROLLBACK_WARNING: &str =
    "ROLLBACK cannot undo the writes of this transaction block: Freshet commits each statement when it completes";

/// The database (DataFusion catalog) name clients connect to.
pub const DATABASE: &str = "freshet";
pub const SCHEMA: &str = "public";

/// System catalog tables whose mention marks a query as a catalog query.
const CATALOG_TABLES: &[&str] = &[
    "pg_class",
    "pg_namespace",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_index",
    "pg_proc",
    "pg_settings",
    "pg_constraint",
    "pg_attrdef",
    "pg_description",
    "pg_am",
    "pg_roles",
    "pg_tables",
    "pg_views",
    "pg_get_",
    "pg_table_is_visible",
    "format_type",
    "pg_collation",
    "pg_inherits",
];

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub data_dir: PathBuf,
    /// fsync every commit (see `StoreOptions::sync_commits`).
    pub sync_commits: bool,
    /// Storage cache size (see `StoreOptions::cache_bytes`).
    pub cache_bytes: Option<usize>,
    /// State cache size (see `StoreOptions::state_cache_bytes`).
    pub state_cache_bytes: Option<usize>,
}

pub struct Engine {
    store: Arc<Store>,
    catalog: Mutex<Catalog>,
    /// Providers with the user schema, for queries and INSERT.
    query_tables: TableMap,
    /// Providers that also expose `_rowid`, for planning UPDATE/DELETE.
    dml_tables: TableMap,
    /// Providers with all-nullable user columns, for planning INSERT.
    insert_tables: TableMap,
    query_ctx: SessionContext,
    dml_ctx: SessionContext,
    insert_ctx: SessionContext,
    /// Views (not materialized), shared by every context.
    views: ViewMap,
    /// `dml_ctx`'s options, kept to avoid cloning its session state on the
    /// hot UPDATE path.
    dml_options: Arc<datafusion::config::ConfigOptions>,
    writer: tokio::sync::Mutex<Writer>,
    parser: PostgresCompatibilityParser,
}

/// State only the (single) writer touches.
#[derive(Default)]
struct Writer {
    /// Last allocated hidden row id per table id (loaded lazily).
    rowids: HashMap<u32, i64>,
    /// Every materialized view's dataflow.
    runtime: freshet_dataflow::graph::Runtime,
}

/// A planned statement, ready to execute (possibly many times, with
/// different parameters).
#[derive(Debug, Clone)]
pub enum Plan {
    Query(LogicalPlan),
    /// A primary-key lookup (see [`PointGet`]); the plan is kept for
    /// parameter types.
    PointGet(LogicalPlan, Arc<PointGet>),
    Insert(Arc<InsertPlan>),
    Update(Arc<ModifyPlan>),
    Delete(Arc<ModifyPlan>),
    CreateTable {
        def: TableDef,
        if_not_exists: bool,
    },
    DropRelations {
        kind: RelKind,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    CreateView(Arc<CreateView>),
    ExplainCreateView(Arc<CreateView>),
    ExplainView(String),
    ShowMaterializedViews,
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
    CopyFrom {
        table: Arc<TableDef>,
        columns: Vec<usize>,
        options: CopyOptions,
    },
    CopyTo {
        plan: LogicalPlan,
        options: CopyOptions,
    },
    /// Accepted and ignored (`DISCARD ALL`, `DEALLOCATE` …), with its tag.
    Noop(String),
}

#[derive(Debug)]
pub struct InsertPlan {
    table: Arc<TableDef>,
    source: LogicalPlan,
    conflict: Conflict,
    returning: Option<Returning>,
    /// The name rows are visible under in ON CONFLICT / RETURNING expressions.
    alias: String,
}

#[derive(Debug)]
enum Conflict {
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
    table: Arc<TableDef>,
    source: LogicalPlan,
    /// Set when the statement selects its row by primary key.
    point: Option<crate::point_get::PointSource>,
    returning: Option<Returning>,
    alias: String,
}

#[derive(Debug)]
struct Returning {
    sql: String,
    schema: SchemaRef,
}

/// A command completion: `INSERT 0 3`, `UPDATE 2`, `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct CommandTag {
    pub command: String,
    pub rows: Option<usize>,
    /// INSERT tags carry an OID (always 0).
    pub oid: bool,
}

impl CommandTag {
    fn new(command: &str) -> Self {
        Self {
            command: command.into(),
            rows: None,
            oid: false,
        }
    }
    fn rows(command: &str, rows: usize) -> Self {
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
            _ => None,
        }
    }

    /// Parameter fields (type and metadata) in `$n` order (`None`: could
    /// not be inferred).
    pub fn parameter_types(&self) -> Result<Vec<Option<datafusion::arrow::datatypes::FieldRef>>> {
        let Some(plan) = self.parameter_plan() else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_fields()?;
        let mut out: Vec<Option<datafusion::arrow::datatypes::FieldRef>> = vec![];
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
            Plan::Show(name) => Some(show_schema(&Session::display_name(name))),
            Plan::ShowAll => Some(show_all_schema()),
            Plan::ExplainCreateView(_) | Plan::ExplainView(_) => Some(views::explain_schema()),
            Plan::ShowMaterializedViews => Some(views::names_schema()),
            _ => None,
        }
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

fn new_context(tables: TableMap, views: ViewMap) -> Result<SessionContext> {
    let mut config = SessionConfig::new();
    // Postgres reads `1.5` as numeric, not float, and sessions run in UTC.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    config.options_mut().execution.time_zone = Some("+00:00".into());
    let config = config
        .with_default_catalog_and_schema(DATABASE, SCHEMA)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(false)
        .with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    let catalog = ctx.catalog(DATABASE).ok_or_else(|| {
        PlannerError::DataFusion(datafusion::error::DataFusionError::Internal(
            "no catalog".into(),
        ))
    })?;
    catalog.register_schema(SCHEMA, Arc::new(FreshetSchema::new(tables, views)))?;
    for udf in functions::udfs() {
        ctx.register_udf(udf);
    }
    Ok(ctx)
}

impl Engine {
    pub fn open(options: EngineOptions) -> Result<Arc<Engine>> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            PlannerError::DataException(format!("cannot create data directory: {e}"))
        })?;
        let store = Arc::new(Store::open(
            &options.data_dir,
            StoreOptions {
                sync_commits: options.sync_commits,
                cache_bytes: options.cache_bytes,
                state_cache_bytes: options.state_cache_bytes,
            },
        )?);
        let catalog = Catalog::load(&store)?;
        let query_tables: TableMap = Default::default();
        let dml_tables: TableMap = Default::default();
        let views: ViewMap = Default::default();
        let query_ctx = new_context(query_tables.clone(), views.clone())?;
        datafusion_pg_catalog::setup_pg_catalog(&query_ctx, DATABASE, EmptyContextProvider)
            .map_err(|e| PlannerError::DataFusion(*e))?;
        // setup_pg_catalog registers its own version(); ours says Freshet.
        for udf in functions::udfs() {
            query_ctx.register_udf(udf);
        }
        pg_catalog::register(&query_ctx, DATABASE, query_tables.clone())?;
        if let Some(catalog) = query_ctx.catalog(DATABASE) {
            catalog.register_schema(
                information_schema::NAME,
                Arc::new(information_schema::InformationSchema::new(
                    query_tables.clone(),
                )),
            )?;
        }
        let dml_ctx = new_context(dml_tables.clone(), views.clone())?;
        let dml_options = dml_ctx.state().config_options().clone();
        let insert_tables: TableMap = Default::default();
        let insert_ctx = new_context(insert_tables.clone(), views.clone())?;
        let mut engine = Engine {
            store,
            catalog: Mutex::new(Catalog::default()),
            query_tables,
            dml_tables,
            insert_tables,
            query_ctx,
            dml_ctx,
            dml_options,
            insert_ctx,
            views,
            writer: Default::default(),
            parser: PostgresCompatibilityParser::new(),
        };
        for def in catalog.tables().filter(|d| d.kind == RelKind::Table) {
            engine.register_table(def.clone())?;
        }
        *engine.catalog.lock().unwrap_or_else(|e| e.into_inner()) = catalog;
        // Views are re-planned (not recomputed: their state is in storage).
        // Planning is async only in signature; nothing here waits on I/O.
        let mut writer = Writer::default();
        futures::executor::block_on(engine.restore_views(&mut writer))?;
        engine.writer = tokio::sync::Mutex::new(writer);
        Ok(Arc::new(engine))
    }

    /// Flushes storage and lets go of it: the query contexts can outlive
    /// the engine (pg_catalog's tables hold their context, a reference
    /// cycle), so the table providers they reach, which hold the store,
    /// are dropped here. The database closes when the engine is dropped.
    pub fn close(&self) -> Result<()> {
        self.store.flush()?;
        for map in [&self.query_tables, &self.dml_tables, &self.insert_tables] {
            map.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
        self.views
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Parses a query string into statements.
    ///
    /// Queries over the system catalogs (what psql, drivers and ORMs send)
    /// go through `datafusion-pg-catalog`'s compatibility rewrites, which
    /// make those queries plannable but are not meaning-preserving in
    /// general (one replaces some projected subqueries with NULL). Every
    /// other statement is parsed as plain PostgreSQL.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        let lower = sql.to_ascii_lowercase();
        // `EXPLAIN MATERIALIZED VIEW v` is `EXPLAIN v` (ExplainTable).
        if let Some(rest) = lower
            .trim_start()
            .strip_prefix("explain materialized view ")
        {
            let start = sql.len() - rest.len();
            return self.parse(&format!("EXPLAIN {}", &sql[start..]));
        }
        let catalog_query = lower.contains("pg_catalog")
            || lower.contains("information_schema")
            || CATALOG_TABLES.iter().any(|t| lower.contains(t));
        if catalog_query {
            let rewritten = pg_catalog::rewrite_query(sql);
            self.parser
                .parse(rewritten.as_deref().unwrap_or(sql))
                .map_err(PlannerError::from)
        } else {
            let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
            Ok(datafusion::sql::sqlparser::parser::Parser::parse_sql(
                &dialect, sql,
            )?)
        }
    }

    fn table_def(&self, name: &str) -> Result<Arc<TableDef>> {
        self.catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| PlannerError::UndefinedTable(name.to_string()))
    }

    fn stored(&self, name: &str) -> Result<Arc<StoredTable>> {
        self.query_tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| PlannerError::UndefinedTable(name.to_string()))
    }

    fn register_table(&self, def: Arc<TableDef>) -> Result<()> {
        let mut defaults = HashMap::new();
        for c in &def.columns {
            if let Some(sql) = &c.default {
                let expr = self.query_ctx.parse_sql_expr(sql, &DFSchema::empty())?;
                defaults.insert(c.name.clone(), expr);
            }
        }
        for (flavor, map) in [
            (Flavor::Query, &self.query_tables),
            (Flavor::Modify, &self.dml_tables),
            (Flavor::Insert, &self.insert_tables),
        ] {
            let t = StoredTable::new(def.clone(), self.store.clone(), flavor, defaults.clone())?;
            map.write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(def.name.clone(), Arc::new(t));
        }
        Ok(())
    }

    fn unregister_table(&self, name: &str) {
        for map in [&self.query_tables, &self.dml_tables, &self.insert_tables] {
            map.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
    }

    /// Plans one statement.
    pub async fn plan(&self, session: &Session, mut stmt: Statement) -> Result<Plan> {
        colnames::apply_all(&mut stmt);
        rewrite::apply(&mut stmt, &session.user)?;
        match stmt {
            Statement::Query(_) => {
                let plan = self.df_plan(&self.query_ctx, stmt).await?;
                if let Some(g) = PointGet::detect(&plan, |name| self.stored(name).ok()) {
                    return Ok(Plan::PointGet(plan, Arc::new(g)));
                }
                Ok(Plan::Query(plan))
            }
            Statement::Explain { statement, .. }
                if matches!(statement.as_ref(), Statement::CreateView(_)) =>
            {
                let Statement::CreateView(cv) = *statement else {
                    unreachable!("matched above")
                };
                Ok(Plan::ExplainCreateView(Arc::new(plan_create_view(cv)?)))
            }
            Statement::ExplainTable { table_name: t, .. } => Ok(Plan::ExplainView(table_name(&t)?)),
            Statement::Explain { .. } => {
                Ok(Plan::Query(self.df_plan(&self.query_ctx, stmt).await?))
            }
            Statement::CreateView(cv) => Ok(Plan::CreateView(Arc::new(plan_create_view(cv)?))),
            Statement::Insert(ins) => self.plan_insert(ins).await,
            Statement::Update(_) | Statement::Delete(_) => self.plan_modify(stmt).await,
            Statement::CreateTable(ct) => plan_create_table(ct),
            Statement::Drop {
                object_type:
                    object_type @ (ObjectType::Table | ObjectType::MaterializedView | ObjectType::View),
                if_exists,
                names,
                cascade,
                ..
            } => Ok(Plan::DropRelations {
                kind: match object_type {
                    ObjectType::Table => RelKind::Table,
                    ObjectType::MaterializedView => RelKind::MaterializedView,
                    _ => RelKind::View,
                },
                names: names.iter().map(table_name).collect::<Result<_>>()?,
                if_exists,
                cascade,
            }),
            Statement::Set(set) => plan_set(set),
            Statement::ShowViews {
                materialized: true, ..
            } => Ok(Plan::ShowMaterializedViews),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(" ");
                if name.eq_ignore_ascii_case("all") {
                    Ok(Plan::ShowAll)
                } else if name.eq_ignore_ascii_case("materialized views") {
                    Ok(Plan::ShowMaterializedViews)
                } else {
                    session.get(&name)?;
                    Ok(Plan::Show(name))
                }
            }
            Statement::Reset(r) => Ok(Plan::Reset(match r.reset {
                Reset::ALL => None,
                Reset::ConfigurationParameter(name) => Some(name.to_string()),
            })),
            Statement::StartTransaction { .. } => Ok(Plan::Begin),
            Statement::Commit { .. } => Ok(Plan::Commit),
            Statement::Rollback {
                savepoint: None, ..
            } => Ok(Plan::Rollback),
            Statement::Rollback {
                savepoint: Some(_), ..
            } => Ok(Plan::RollbackToSavepoint),
            Statement::Savepoint { .. } => Ok(Plan::Savepoint),
            Statement::ReleaseSavepoint { .. } => Ok(Plan::ReleaseSavepoint),
            Statement::Copy {
                source,
                to,
                target,
                options,
                legacy_options,
                ..
            } => {
                self.plan_copy(source, to, target, &options, &legacy_options)
                    .await
            }
            Statement::Discard { .. } => Ok(Plan::Noop("DISCARD ALL".into())),
            Statement::Deallocate { .. } => Ok(Plan::Noop("DEALLOCATE".into())),
            other => Err(PlannerError::not_supported(statement_kind(&other))),
        }
    }

    async fn df_plan(&self, ctx: &SessionContext, stmt: Statement) -> Result<LogicalPlan> {
        Ok(ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?)
    }

    async fn plan_insert(&self, mut ins: ast::Insert) -> Result<Plan> {
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

    async fn plan_modify(&self, mut stmt: Statement) -> Result<Plan> {
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

    fn point_source(&self, source: &LogicalPlan) -> Option<crate::point_get::PointSource> {
        let mut point = crate::point_get::PointSource::detect(source, |name| {
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

    async fn plan_copy(
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

    /// Executes a plan with parameter values (empty for the simple protocol).
    pub async fn execute(
        &self,
        session: &mut Session,
        plan: &Plan,
        params: &ParamValues,
    ) -> Result<Output> {
        match plan {
            Plan::Query(p) => {
                let p = bind(p, params)?;
                let schema = Arc::new(p.schema().as_arrow().clone());
                let stream = self.run(&self.query_ctx, p, self.store.snapshot()).await?;
                Ok(Output::Rows { schema, stream })
            }
            Plan::PointGet(_, g) => {
                let batch = g.execute(&self.store, params)?;
                Ok(Output::Rows {
                    schema: g.schema().clone(),
                    stream: batches_stream(g.schema().clone(), vec![batch]),
                })
            }
            Plan::Insert(i) => {
                session.transaction_wrote |= session.in_transaction;
                self.exec_insert(i, params).await
            }
            Plan::Update(m) => {
                session.transaction_wrote |= session.in_transaction;
                self.exec_update(m, params).await
            }
            Plan::Delete(m) => {
                session.transaction_wrote |= session.in_transaction;
                self.exec_delete(m, params).await
            }
            Plan::CreateTable { def, if_not_exists } => {
                self.exec_create_table(def.clone(), *if_not_exists).await
            }
            Plan::DropRelations {
                kind,
                names,
                if_exists,
                cascade,
            } => {
                self.exec_drop_relations(*kind, names, *if_exists, *cascade)
                    .await
            }
            Plan::CreateView(c) => self.exec_create_view(c).await,
            Plan::ExplainCreateView(c) => self.explain_create_view(c).await,
            Plan::ExplainView(name) => self.explain_view(name).await,
            Plan::ShowMaterializedViews => self.show_materialized_views(),
            Plan::Set { name, value } => {
                session.set(name, value.clone())?;
                Ok(Output::Command(CommandTag::new("SET")))
            }
            Plan::Show(name) => {
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
            Plan::ShowAll => {
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
            Plan::Reset(name) => {
                match name {
                    Some(n) => session.set(n, None)?,
                    None => session.reset_all(),
                }
                Ok(Output::Command(CommandTag::new("RESET")))
            }
            Plan::Begin => {
                session.in_transaction = true;
                session.transaction_wrote = false;
                Ok(Output::Begin)
            }
            Plan::Commit => {
                session.in_transaction = false;
                Ok(Output::Commit(CommandTag::new("COMMIT"), None))
            }
            Plan::Rollback => {
                let notice = session
                    .transaction_wrote
                    .then(|| ROLLBACK_WARNING.to_string());
                session.in_transaction = false;
                session.transaction_wrote = false;
                Ok(Output::Commit(CommandTag::new("ROLLBACK"), notice))
            }
            Plan::Savepoint => Ok(Output::Command(CommandTag::new("SAVEPOINT"))),
            Plan::ReleaseSavepoint => Ok(Output::Command(CommandTag::new("RELEASE"))),
            Plan::RollbackToSavepoint => {
                let tag = CommandTag::new("ROLLBACK");
                Ok(match session.transaction_wrote {
                    true => Output::Notice(tag, ROLLBACK_WARNING.to_string()),
                    false => Output::Command(tag),
                })
            }
            Plan::CopyFrom {
                table,
                columns,
                options,
            } => {
                session.transaction_wrote |= session.in_transaction;
                Ok(Output::CopyIn(Box::new(CopyIn::new(
                    table.clone(),
                    columns.clone(),
                    options.clone(),
                ))))
            }
            Plan::CopyTo { plan, options } => {
                let p = bind(plan, params)?;
                let schema = Arc::new(p.schema().as_arrow().clone());
                let stream = self.run(&self.query_ctx, p, self.store.snapshot()).await?;
                Ok(Output::CopyOut {
                    schema,
                    stream,
                    options: options.clone(),
                })
            }
            Plan::Noop(tag) => Ok(Output::Command(CommandTag::new(tag))),
        }
    }

    /// Runs a logical plan over `snapshot`.
    async fn run(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        snapshot: Snapshot,
    ) -> Result<SendableRecordBatchStream> {
        let mut state = ctx.state();
        state
            .config_mut()
            .set_extension(Arc::new(QuerySnapshot(snapshot)));
        let physical = state.create_physical_plan(&plan).await?;
        let task = Arc::new(TaskContext::from(&state));
        Ok(execute_stream(physical, task)?)
    }

    async fn collect(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        snapshot: Snapshot,
    ) -> Result<Vec<RecordBatch>> {
        let stream = self.run(ctx, plan, snapshot).await?;
        Ok(stream.try_collect().await?)
    }

    async fn exec_create_table(&self, mut def: TableDef, if_not_exists: bool) -> Result<Output> {
        let _w = self.writer.lock().await;
        if self
            .catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&def.name)
            .is_some()
        {
            if if_not_exists {
                return Ok(Output::Command(CommandTag::new("CREATE TABLE")));
            }
            return Err(PlannerError::DuplicateTable(def.name));
        }
        // Check the defaults parse before anything is written.
        for c in &def.columns {
            if let Some(sql) = &c.default {
                self.query_ctx.parse_sql_expr(sql, &DFSchema::empty())?;
            }
        }
        let mut txn = Txn::new();
        def.id = self
            .catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocate_id(&mut txn);
        // Base tables are bulk-loaded and read by key now and then: the
        // state cache does not follow every write of a load into them.
        self.store.cache_not_whole(def.id);
        Catalog::write_table(&def, &mut txn)?;
        self.store.commit(txn)?;
        let def = Arc::new(def);
        self.catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.clone());
        self.register_table(def)?;
        Ok(Output::Command(CommandTag::new("CREATE TABLE")))
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

/// Replaces the statement's parameters with their values.
fn bind(plan: &LogicalPlan, params: &ParamValues) -> Result<LogicalPlan> {
    let has_params = match params {
        ParamValues::List(l) => !l.is_empty(),
        ParamValues::Map(m) => !m.is_empty(),
    };
    if !has_params {
        return Ok(plan.clone());
    }
    Ok(plan.clone().replace_params_with_values(params)?)
}

fn batches_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ),
    )
}

/// The SQL name used to CAST to a column type inside generated SQL.
fn cast_type_name(t: &SqlType) -> String {
    match t {
        SqlType::Jsonb | SqlType::Varchar(_) => "TEXT".into(),
        SqlType::Numeric {
            precision: None, ..
        } => "DECIMAL(38, 10)".into(),
        SqlType::TimestampTz => "TIMESTAMPTZ".into(),
        other => other.pg_name().to_uppercase(),
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn normalize_ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// The table name of an object name, which may be qualified by our database
/// and `public`.
fn table_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(normalize_ident)
        .collect();
    match parts.as_slice() {
        [t] => Ok(t.clone()),
        [s, t] if s == SCHEMA => Ok(t.clone()),
        [d, s, t] if d == DATABASE && s == SCHEMA => Ok(t.clone()),
        [s, _] => Err(PlannerError::not_supported(format!(
            "schema \"{s}\" (tables live in \"public\")"
        ))),
        _ => Err(PlannerError::Syntax(format!(
            "improper qualified name: {name}"
        ))),
    }
}

fn plan_create_table(ct: ast::CreateTable) -> Result<Plan> {
    if ct.query.is_some() {
        return Err(PlannerError::not_supported("CREATE TABLE AS"));
    }
    if ct.temporary {
        return Err(PlannerError::not_supported("temporary tables"));
    }
    let name = table_name(&ct.name)?;
    if name == ROWID_COLUMN {
        return Err(PlannerError::InvalidParameterValue("reserved name".into()));
    }
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut primary_key: Vec<usize> = Vec::new();
    for c in &ct.columns {
        let cname = normalize_ident(&c.name);
        if cname == ROWID_COLUMN {
            return Err(PlannerError::InvalidParameterValue(format!(
                "column name \"{ROWID_COLUMN}\" is reserved"
            )));
        }
        if columns.iter().any(|x| x.name == cname) {
            return Err(PlannerError::DuplicateColumn(cname));
        }
        let mut col = ColumnDef {
            name: cname,
            sql_type: SqlType::from_ast(&c.data_type)?,
            not_null: false,
            default: None,
        };
        for o in &c.options {
            match &o.option {
                ast::ColumnOption::NotNull => col.not_null = true,
                ast::ColumnOption::Null => col.not_null = false,
                ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ast::ColumnOption::PrimaryKey(_) => {
                    if !primary_key.is_empty() {
                        return Err(PlannerError::InvalidTableDefinition(format!(
                            "multiple primary keys for table \"{name}\" are not allowed"
                        )));
                    }
                    col.not_null = true;
                    primary_key.push(columns.len());
                }
                other => {
                    return Err(PlannerError::not_supported(format!(
                        "column constraint {other}"
                    )))
                }
            }
        }
        columns.push(col);
    }
    for tc in &ct.constraints {
        match tc {
            ast::TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(PlannerError::InvalidTableDefinition(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
                for ic in &pk.columns {
                    let SqlExpr::Identifier(id) = &ic.column.expr else {
                        return Err(PlannerError::not_supported("expression in PRIMARY KEY"));
                    };
                    let n = normalize_ident(id);
                    let i = columns.iter().position(|c| c.name == n).ok_or_else(|| {
                        PlannerError::UndefinedColumn(format!(
                            "{n}\" named in key does not exist (\""
                        ))
                    })?;
                    columns[i].not_null = true;
                    primary_key.push(i);
                }
            }
            other => {
                return Err(PlannerError::not_supported(format!(
                    "table constraint {other}"
                )))
            }
        }
    }
    if columns.is_empty() {
        return Err(PlannerError::not_supported("tables without columns"));
    }
    Ok(Plan::CreateTable {
        def: TableDef {
            id: 0,
            name,
            columns,
            primary_key,
            kind: RelKind::Table,
            query: None,
            depends_on: vec![],
            state_ids: (0, 0),
            view_key: None,
        },
        if_not_exists: ct.if_not_exists,
    })
}

fn plan_create_view(cv: ast::CreateView) -> Result<CreateView> {
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
    Ok(CreateView {
        name,
        columns: cv
            .columns
            .iter()
            .map(|c| normalize_ident(&c.name))
            .collect(),
        query: cv.query.to_string(),
        materialized: cv.materialized,
        if_not_exists: cv.if_not_exists,
    })
}

fn plan_set(set: Set) -> Result<Plan> {
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
        } => Ok(Plan::Set {
            name: variable.to_string(),
            value: value_of(&values),
        }),
        Set::SetTimeZone { value, .. } => Ok(Plan::Set {
            name: "TimeZone".into(),
            value: value_of(&[value]),
        }),
        Set::SetNames { charset_name, .. } => Ok(Plan::Set {
            name: "client_encoding".into(),
            value: Some(charset_name.value),
        }),
        Set::SetNamesDefault {} => Ok(Plan::Set {
            name: "client_encoding".into(),
            value: None,
        }),
        // SET TRANSACTION / SESSION CHARACTERISTICS: accepted, see README.
        Set::SetTransaction { .. } => Ok(Plan::Noop("SET".into())),
        other => Err(PlannerError::not_supported(format!("{other}"))),
    }
}

/// `CREATE FUNCTION` for a statement `CREATE FUNCTION f() …`: the words that
/// name the kind of statement, for "not supported" errors.
fn statement_kind(stmt: &Statement) -> String {
    let text = stmt.to_string();
    let words: Vec<&str> = text.split_whitespace().take(3).collect();
    let n = match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(w) if ["CREATE", "DROP", "ALTER"].contains(&w.as_str()) => {
            if words
                .get(1)
                .map(|w| {
                    ["OR", "UNIQUE", "TEMPORARY", "MATERIALIZED"]
                        .contains(&w.to_ascii_uppercase().as_str())
                })
                .unwrap_or(false)
            {
                3
            } else {
                2
            }
        }
        _ => 1,
    };
    words
        .into_iter()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insert_select_update_delete_roundtrip() {
        let dir = std::env::temp_dir().join(format!("freshet-engine-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = Engine::open(EngineOptions {
            data_dir: dir.clone(),
            sync_commits: false,
            cache_bytes: None,
            state_cache_bytes: None,
        })
        .unwrap();
        let s = Session::new("test");
        let run = |sql: &'static str| {
            let engine = engine.clone();
            let mut s = s.clone();
            async move {
                let stmt = engine.parse(sql).unwrap().remove(0);
                let plan = engine.plan(&s, stmt).await.unwrap();
                match engine
                    .execute(&mut s, &plan, &ParamValues::List(vec![]))
                    .await
                    .unwrap()
                {
                    Output::Rows { stream, .. } => {
                        let b: Vec<RecordBatch> = stream.try_collect().await.unwrap();
                        datafusion::arrow::util::pretty::pretty_format_batches(&b)
                            .unwrap()
                            .to_string()
                    }
                    Output::Command(t) => format!("{} {:?}", t.command, t.rows),
                    _ => String::new(),
                }
            }
        };
        assert_eq!(
            run("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await,
            "CREATE TABLE None"
        );
        assert_eq!(
            run("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await,
            "INSERT Some(2)"
        );
        assert_eq!(
            run("UPDATE t SET v = 'z' WHERE id = 2").await,
            "UPDATE Some(1)"
        );
        assert_eq!(run("DELETE FROM t WHERE id = 1").await, "DELETE Some(1)");
        let out = run("SELECT id, v FROM t").await;
        assert!(out.contains("| 2  | z |"), "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
