//! The engine: plans and executes statements against the catalog and storage.
//!
//! Every statement goes SQL text → sqlparser AST → [`Plan`] → [`Output`].
//! This module is the dispatcher; each kind of statement has a room of its
//! own:
//! - queries (`SELECT`, `EXPLAIN`, `VALUES`, catalog queries) become a
//!   DataFusion `LogicalPlan` run over a storage snapshot (here);
//! - `INSERT/UPDATE/DELETE` are planned by DataFusion too (`dml_plan.rs`:
//!   defaults, casts, subqueries and parameter inference come from one
//!   place), but only their *source* plan is executed — Freshet applies the
//!   resulting rows itself (`dml.rs`), enforcing keys and constraints, and
//!   the step (`step.rs`) carries them through every view into one atomic
//!   epoch commit; `COPY` in `copy.rs`;
//! - `CREATE TABLE` / `DROP` in `ddl.rs`, views in `views.rs`, session and
//!   transaction statements in `settings.rs`.
//!
//! Writers are serialized by one async mutex: a DML statement takes it, reads
//! the latest snapshot, computes its changes and commits. Readers never wait.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{execute_stream, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use futures::TryStreamExt;

use freshet_storage::{Snapshot, Store, StoreOptions};

use crate::catalog::{Catalog, RelKind, TableDef};
use crate::copy::CopyIn;
use crate::names::{DATABASE, SCHEMA};
use crate::point_get::PointGet;
use crate::session::Session;
use crate::table::{Flavor, FreshetSchema, QuerySnapshot, StoredTable, TableMap, ViewMap};
use crate::{colnames, functions, information_schema, pg_catalog, rewrite, PlannerError, Result};

mod copy;
mod ddl;
mod dml;
mod dml_plan;
mod index_ddl;
mod plan;
mod settings;
mod sources;
mod status;
mod step;
mod views;

pub use ddl::DdlPlan;
pub use plan::{CommandTag, InsertPlan, ModifyPlan, Output, Plan};
pub use settings::SessionPlan;
pub use sources::{SplitStatus, STEP_ROWS};
pub use views::{CreateView, ViewPlan};

/// System catalog tables whose mention marks a query as a catalog query.
const CATALOG_TABLES: &[&str] = &[
    "pg_class",
    "pg_namespace",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_index",
    "pg_indexes",
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
    /// Storage settings.
    pub store: StoreOptions,
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
    /// Secondary indexes by table id, shared by every provider.
    indexes: crate::index::IndexMap,
    /// `dml_ctx`'s options, kept to avoid cloning its session state on the
    /// hot UPDATE path.
    dml_options: Arc<datafusion::config::ConfigOptions>,
    writer: tokio::sync::Mutex<Writer>,
    parser: PostgresCompatibilityParser,
    /// Every running source split's status, readable without the writer.
    source_status: sources::SourceStatuses,
    /// When the last step committed (ms since the epoch).
    last_commit_ms: Arc<std::sync::atomic::AtomicI64>,
    /// Sources that could not start (a broker down at start-up).
    failed_sources:
        std::sync::Arc<std::sync::RwLock<std::collections::BTreeMap<String, Arc<SplitStatus>>>>,
}

/// State only the (single) writer touches.
#[derive(Default)]
struct Writer {
    /// Last allocated hidden row id per table id (loaded lazily).
    rowids: HashMap<u32, i64>,
    /// Every materialized view's dataflow.
    runtime: freshet_dataflow::graph::Runtime,
    /// The sources being read, by name.
    sources: HashMap<String, sources::RunningSource>,
}

fn new_context(tables: TableMap, views: ViewMap) -> Result<SessionContext> {
    let mut config = SessionConfig::new();
    // Postgres reads `1.5` as numeric, not float, and sessions run in UTC.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    config.options_mut().sql_parser.dialect = datafusion::common::config::Dialect::PostgreSQL;
    config.options_mut().execution.time_zone = Some("+00:00".into());
    let config = config
        .with_default_catalog_and_schema(DATABASE, SCHEMA)
        .with_create_default_catalog_and_schema(true)
        .with_information_schema(false)
        .with_target_partitions(2);
    let mut analyzer = datafusion::optimizer::Analyzer::new().rules;
    // numeric / numeric to PostgreSQL's precision (crate::numeric_div),
    // before type coercion types what is above it.
    let coercion = analyzer
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    analyzer.insert(coercion, crate::numeric_div::rule());
    // PostgreSQL's integer arithmetic: checked operators after type
    // coercion (crate::arith).
    analyzer.push(Arc::new(crate::arith::CheckedIntegerArithmetic));
    // PostgreSQL's date/time input forms in casts of text
    // (crate::datetime_in).
    analyzer.push(crate::datetime_in::rule());
    // Correlated aggregate subqueries DataFusion cannot decorrelate
    // (crate::subquery).
    analyzer.push(crate::subquery::decorrelate_rule());
    // INTERSECT ALL / EXCEPT ALL with SQL's multiplicities (crate::setops),
    // before type coercion types the window it adds.
    analyzer.insert(0, crate::setops::rule());
    // `x = ANY (SELECT x FROM t)` over the outer query's own table
    // (crate::subquery).
    analyzer.insert(0, crate::subquery::rule());
    // Splitting `sum(x)` beside a single DISTINCT aggregate into
    // `sum(sum(x))` types the outer sum over the inner one's bigint, which
    // PostgreSQL's sum makes numeric: the plan would change type. DISTINCT
    // aggregates run whole instead.
    let optimizer: Vec<_> = datafusion::optimizer::Optimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "single_distinct_aggregation_to_group_by")
        .collect();
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_analyzer_rules(analyzer)
        .with_optimizer_rules(optimizer)
        .build();
    let mut state = state;
    // date ± interval is a timestamp (crate::datetime).
    datafusion::execution::FunctionRegistry::register_expr_planner(
        &mut state,
        Arc::new(crate::datetime::DateIntervalPlanner),
    )?;
    // jsonb's operators (crate::jsonb).
    datafusion::execution::FunctionRegistry::register_expr_planner(
        &mut state,
        Arc::new(crate::jsonb::JsonbPlanner),
    )?;
    let ctx = SessionContext::new_with_state(state);
    let catalog = ctx.catalog(DATABASE).ok_or_else(|| {
        PlannerError::DataFusion(datafusion::error::DataFusionError::Internal(
            "no catalog".into(),
        ))
    })?;
    catalog.register_schema(SCHEMA, Arc::new(FreshetSchema::new(tables, views)))?;
    for udf in functions::udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udaf(datafusion::logical_expr::AggregateUDF::from(
        crate::arith::PgSum::new(),
    ));
    ctx.register_udaf(crate::pgfuncs::Mode::udaf());
    ctx.register_udaf(crate::avg::PgAvg::udaf());
    crate::pgfuncs::aliases(&ctx);
    Ok(ctx)
}

impl Engine {
    pub fn open(options: EngineOptions) -> Result<Arc<Engine>> {
        let store = Arc::new(Store::open(&options.data_dir, options.store)?);
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
            indexes: Default::default(),
            writer: Default::default(),
            parser: PostgresCompatibilityParser::new(),
            source_status: Default::default(),
            failed_sources: Default::default(),
            last_commit_ms: Arc::new(std::sync::atomic::AtomicI64::new(
                chrono::Utc::now().timestamp_millis(),
            )),
        };
        engine.register_status_views();
        for def in catalog.tables() {
            match def.kind {
                // A source is in the table maps for the catalogs; queries see a
                // crate::table::SourceTable (FreshetSchema::table).
                RelKind::Table | RelKind::Source => engine.register_table(def.clone())?,
                _ => {}
            }
        }
        for ix in catalog.indexes().values() {
            let table = catalog
                .tables()
                .find(|d| d.id == ix.table_id)
                .ok_or_else(|| {
                    PlannerError::DataFusion(datafusion::error::DataFusionError::Internal(format!(
                        "index {} of a missing table",
                        ix.name
                    )))
                })?;
            engine.store.cache_not_whole(ix.id);
            let live = Arc::new(crate::index::TableIndex::new(ix.clone(), table, 0)?);
            engine
                .indexes
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(ix.table_id)
                .or_default()
                .push(live);
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
            let mut stmts = self
                .parser
                .parse(rewritten.as_deref().unwrap_or(sql))
                .map_err(PlannerError::from)?;
            pg_catalog::qualify_views(&mut stmts);
            Ok(stmts)
        } else {
            Ok(crate::parse::statements(sql)?)
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
            let t = StoredTable::new(
                def.clone(),
                self.store.clone(),
                flavor,
                defaults.clone(),
                self.indexes.clone(),
            )?;
            map.write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(def.name.clone(), Arc::new(t));
        }
        Ok(())
    }

    /// `freshet_source_splits` and `freshet_views` (engine::status).
    fn register_status_views(&self) {
        let (running, failed) = (self.source_status.clone(), self.failed_sources.clone());
        let splits = status::source_splits(move || {
            let mut out: Vec<Arc<SplitStatus>> = running
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .flat_map(|h| h.splits.iter().cloned())
                .collect();
            out.extend(
                failed
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned(),
            );
            out
        });
        let tables = self.query_tables.clone();
        let store = self.store.clone();
        let views = status::views(
            move || {
                tables
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .filter(|t| t.def.is_materialized_view())
                    .map(|t| t.def.name.clone())
                    .collect()
            },
            move || store.epoch(),
            self.last_commit_ms.clone(),
        );
        let tables = self.query_tables.clone();
        let sources = status::sources(move || {
            tables
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|t| t.def.clone())
                .collect()
        });
        let mut map = self.views.write().unwrap_or_else(|e| e.into_inner());
        map.insert("freshet_sources".into(), Arc::new(sources));
        map.insert("freshet_source_splits".into(), Arc::new(splits));
        map.insert("freshet_views".into(), Arc::new(views));
    }

    fn unregister_table(&self, name: &str) {
        for map in [&self.query_tables, &self.dml_tables, &self.insert_tables] {
            map.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
    }

    /// Spells out whole-row arguments of the JSON functions
    /// (crate::whole_row) from the catalog's relations.
    pub(super) fn whole_rows(&self, stmt: &mut Statement) -> Result<()> {
        let columns = |name: &str| {
            self.catalog()
                .get(name)
                .map(|d| d.columns.iter().map(|c| c.name.clone()).collect())
        };
        crate::whole_row::apply(stmt, &columns)
    }

    /// Plans one statement.
    pub async fn plan(&self, session: &Session, mut stmt: Statement) -> Result<Plan> {
        // A view's query is named and rewritten when the view is planned,
        // and stored as written: the stored text is read again at start-up,
        // and rewrites may produce what only DataFusion reads (`* EXCLUDE`).
        if !matches!(
            stmt,
            Statement::CreateView(_) | Statement::CreateFunction(_)
        ) {
            colnames::apply_all(&mut stmt);
            let functions = self.catalog().functions().clone();
            crate::sqlfunc::inline(&mut stmt, &functions)?;
            self.whole_rows(&mut stmt)?;
            rewrite::apply(&mut stmt, &session.user)?;
        }
        if let Some(p) = ddl::plan(&stmt)? {
            return Ok(Plan::Ddl(p));
        }
        // Views first: `SHOW MATERIALIZED VIEWS` is no setting.
        let stmt = match self.plan_view_statement(stmt).await? {
            Ok(p) => return Ok(Plan::View(p)),
            Err(stmt) => stmt,
        };
        if let Some(p) = settings::plan(session, &stmt)? {
            return Ok(Plan::Session(p));
        }
        match stmt {
            Statement::Query(_) => {
                let plan = self.df_plan(&self.query_ctx, stmt).await?;
                let plan = crate::lower::split_scalar_subqueries(plan)?;
                if let Some(g) = PointGet::detect(&plan, |name| self.stored(name).ok()) {
                    return Ok(Plan::PointGet(plan, Arc::new(g)));
                }
                Ok(Plan::Query(plan))
            }
            Statement::Explain { .. } => {
                Ok(Plan::Query(self.df_plan(&self.query_ctx, stmt).await?))
            }
            Statement::Insert(ins) => self.plan_insert(ins).await,
            Statement::Update(_) | Statement::Delete(_) => self.plan_modify(stmt).await,
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
            other => Err(PlannerError::not_supported(statement_kind(&other))),
        }
    }

    async fn df_plan(&self, ctx: &SessionContext, stmt: Statement) -> Result<LogicalPlan> {
        Ok(ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?)
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
            Plan::Ddl(d) => self.exec_ddl(d, &session.user).await,
            Plan::View(v) => self.exec_view(v, &session.user).await,
            Plan::Session(SessionPlan::Noop(tag)) if tag == "FLUSH" => {
                self.flush().await?;
                Ok(Output::Command(CommandTag::new("FLUSH")))
            }
            Plan::Session(s) => settings::execute(session, s),
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
}

/// Replaces the statement's parameters with their values.
pub(crate) fn bind(plan: &LogicalPlan, params: &ParamValues) -> Result<LogicalPlan> {
    let has_params = match params {
        ParamValues::List(l) => !l.is_empty(),
        ParamValues::Map(m) => !m.is_empty(),
    };
    if !has_params {
        return Ok(plan.clone());
    }
    Ok(plan.clone().replace_params_with_values(params)?)
}

pub(crate) fn batches_stream(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> SendableRecordBatchStream {
    Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ),
    )
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
            store: StoreOptions::default(),
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
