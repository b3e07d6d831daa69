//! Materialized views and views: DDL, the step every write runs through
//! the dataflow, backfill, start-up, EXPLAIN.
//!
//! The dataflow [`Runtime`] lives with the writer state: every statement
//! that writes takes the writer lock, computes its table writes, and then
//! [`Engine::commit_dml`] turns them into change batches, pushes them
//! through every dependent view and commits the table writes and all view
//! state in one epoch. When the statement returns, every view reflects it
//! (read-your-writes), and a reader's snapshot sees all views at one epoch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::Statement;

use freshet_dataflow::graph::{Node, ViewFlow};
use freshet_dataflow::operator::{Materialize, StepContext};
use freshet_dataflow::ChangeBatch;
use freshet_storage::{keys, Snapshot, Txn};

use super::{batches_stream, CommandTag, Engine, Output, Writer};
use crate::catalog::{Catalog, ColumnDef, RelKind, TableDef};
use crate::colnames::{self, UNIQUE_SUFFIX};
use crate::lower::{check, join_scalar_subqueries, rewrite_not_in, scanned_relations, Lowering};
use crate::types::SqlType;
use crate::{rewrite, PlannerError, Result};

/// A planned `CREATE [MATERIALIZED] VIEW`.
#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: String,
    pub columns: Vec<String>,
    /// The query as written after `AS`.
    pub query: String,
    pub materialized: bool,
    pub if_not_exists: bool,
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

impl Engine {
    /// Plans a view's query, with its final column names (`columns`
    /// renames the first ones) and types (cast to SQL types where
    /// DataFusion's differ, e.g. `row_number()` to bigint).
    async fn plan_view_query(
        &self,
        sql: &str,
        columns: &[String],
    ) -> Result<(LogicalPlan, Vec<ColumnDef>)> {
        let mut stmts = self.parse(sql)?;
        let (Some(mut stmt), true) = (stmts.pop(), stmts.is_empty()) else {
            return Err(PlannerError::Syntax(
                "a view is defined by one query".into(),
            ));
        };
        if !matches!(stmt, Statement::Query(_)) {
            return Err(PlannerError::Syntax("a view is defined by a query".into()));
        }
        colnames::apply_all(&mut stmt);
        rewrite::apply(&mut stmt, "freshet")?;
        let plan = self.df_plan(&self.query_ctx, stmt).await?;
        // Column types as the query computes them: after type coercion
        // (a UNION's column type is only settled there).
        let typed = self.query_ctx.state().optimize(&plan)?;
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
            exprs.push(e.alias(&name));
            defs.push(ColumnDef {
                name,
                sql_type,
                not_null: false,
                default: None,
            });
        }
        let plan = LogicalPlanBuilder::from(plan).project(exprs)?.build()?;
        Ok((plan, defs))
    }

    /// Lowers a materialized view's plan, as [`Engine::optimize_view`]
    /// makes it, to its operator tree, with state ids from
    /// `def.state_ids.0` on. Returns the tree and the ids used.
    fn lower_view(&self, optimized: &LogicalPlan, def: &TableDef) -> Result<(Node, u32)> {
        let mut lowering = Lowering::new(def.state_ids.0);
        let tree = lowering.build(optimized)?;
        let root = Node::Op {
            op: Box::new(Materialize::new(
                def.user_schema(),
                def.id,
                def.view_key.clone(),
            )?),
            inputs: vec![tree],
        };
        Ok((root, lowering.next_id() - def.state_ids.0))
    }

    /// A view's plan as it is lowered: subqueries joined, optimized, checked.
    fn optimize_view(&self, plan: &LogicalPlan) -> Result<LogicalPlan> {
        let plan = join_scalar_subqueries(plan.clone())?;
        let optimized = rewrite_not_in(self.query_ctx.state().optimize(&plan)?)?;
        check(&optimized)?;
        Ok(optimized)
    }

    pub(super) async fn exec_create_view(&self, c: &CreateView) -> Result<Output> {
        let tag = if c.materialized {
            "CREATE MATERIALIZED VIEW"
        } else {
            "CREATE VIEW"
        };
        let mut writer = self.writer.lock().await;
        if self.catalog().get(&c.name).is_some() {
            if c.if_not_exists {
                return Ok(Output::Command(CommandTag::new(tag)));
            }
            return Err(PlannerError::DuplicateTable(c.name.clone()));
        }
        let (plan, columns) = self.plan_view_query(&c.query, &c.columns).await?;
        let mut def = TableDef {
            id: 0,
            name: c.name.clone(),
            columns,
            primary_key: vec![],
            kind: if c.materialized {
                RelKind::MaterializedView
            } else {
                RelKind::View
            },
            query: Some(c.query.clone()),
            depends_on: scanned_relations(&plan),
            state_ids: (0, 0),
            view_key: None,
        };
        let mut txn = Txn::new();
        def.id = self.catalog().allocate_id(&mut txn);
        if !c.materialized {
            Catalog::write_table(&def, &mut txn)?;
            self.store.commit(txn)?;
            self.register_view(&def.name, plan, &c.query);
            self.catalog().insert(Arc::new(def));
            return Ok(Output::Command(CommandTag::new(tag)));
        }
        def.state_ids.0 = self.catalog().peek_next_id();
        let optimized = self.optimize_view(&plan)?;
        def.view_key = view_key(&optimized);
        let (root, n) = self.lower_view(&optimized, &def)?;
        self.catalog().allocate_ids(n, &mut txn);
        def.state_ids.1 = n;
        Catalog::write_table(&def, &mut txn)?;
        // Backfill: the view's inputs as they are now, as one step.
        let snapshot = self.store.snapshot();
        let mut sources = Vec::new();
        root.sources(&mut sources);
        let mut changes = HashMap::new();
        for s in &sources {
            changes.insert(s.clone(), self.relation_contents(s, &snapshot)?);
        }
        writer.runtime.add(ViewFlow {
            name: def.name.clone(),
            root,
        });
        // The view's table and all its state tables are new (ids from
        // `def.id` on): their reads need not go to RocksDB.
        let ctx = StepContext {
            snapshot: snapshot.with_new_tables_from(def.id),
        };
        let result = writer
            .runtime
            .step(&ctx, changes, Some(&def.name), &mut txn)
            .map_err(PlannerError::from)
            .and_then(|_| Ok(self.store.commit(txn)?));
        if let Err(e) = result {
            writer.runtime.remove(&def.name);
            return Err(e);
        }
        let def = Arc::new(def);
        self.catalog().insert(def.clone());
        self.register_table(def)?;
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
            .filter(|d| d.kind != RelKind::Table)
            .cloned()
            .collect();
        defs.sort_by_key(|d| d.id);
        for def in defs {
            let names: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
            let sql = def.query.clone().unwrap_or_default();
            let (plan, _) = self.plan_view_query(&sql, &names).await?;
            if def.kind == RelKind::View {
                self.register_view(&def.name, plan, &sql);
                continue;
            }
            let (root, n) = self.lower_view(&self.optimize_view(&plan)?, &def)?;
            if n != def.state_ids.1 {
                return Err(PlannerError::DataException(format!(
                    "materialized view \"{}\" now lowers to {n} state tables, not {}",
                    def.name, def.state_ids.1
                )));
            }
            writer.runtime.add(ViewFlow {
                name: def.name.clone(),
                root,
            });
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
        snapshot.scan(
            &keys::table_prefix(def.id),
            &keys::table_end(def.id),
            usize::MAX,
            |_, v| decoder.push(v),
        )?;
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

    /// Whether writes to `table` must go through the dataflow (some view
    /// reads it): such a statement's transaction records its writes.
    pub(super) fn txn_for(&self, writer: &Writer, table: &TableDef) -> Txn {
        let mut txn = Txn::new();
        if writer.runtime.reads(&table.name) {
            txn.track_changes();
        }
        txn
    }

    /// Commits a statement's writes together with what they change in
    /// every view (see the module doc). `snapshot` is the state the
    /// statement read under the writer lock: the last committed epoch.
    pub(super) fn commit_dml(
        &self,
        writer: &mut Writer,
        mut txn: Txn,
        snapshot: &Snapshot,
    ) -> Result<()> {
        let written = txn.take_changes();
        if !written.is_empty() {
            // Last write per key, per table, and whether the key was known
            // to be empty before (its first write was an insert).
            type Writes = BTreeMap<Vec<u8>, (Option<Vec<u8>>, bool)>;
            let mut per_table: BTreeMap<u32, Writes> = BTreeMap::new();
            for c in written {
                let k = c.key;
                if k.len() < 4 {
                    continue;
                }
                let id = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
                if id == 0 {
                    continue;
                }
                let e = per_table.entry(id).or_default();
                let known_new = e.get(&k).map_or(c.known_new, |(_, n)| *n);
                e.insert(k, (c.value, known_new));
            }
            let mut changes = HashMap::new();
            for (id, writes) in per_table {
                let Some(def) = self.catalog().by_id(id) else {
                    continue;
                };
                if !writer.runtime.reads(&def.name) {
                    continue;
                }
                let stored = self.stored(&def.name)?;
                let user: Vec<usize> = (0..def.columns.len()).collect();
                // The old rows (deleted), then the new ones (inserted), in
                // one batch.
                let mut rows = stored.codec().decoder(Some(&user), 2 * writes.len());
                for (k, (_, known_new)) in &writes {
                    if !known_new {
                        if let Some(prev) = snapshot.get_cached(k)? {
                            rows.push(&prev)?;
                        }
                    }
                }
                let n_old = rows.rows();
                for (v, _) in writes.values() {
                    if let Some(v) = v {
                        rows.push(v)?;
                    }
                }
                let data =
                    RecordBatch::try_new(def.user_schema(), rows.finish()?.columns().to_vec())?;
                let weights: Int64Array = (0..data.num_rows())
                    .map(|i| if i < n_old { -1 } else { 1 })
                    .collect();
                changes.insert(def.name.clone(), ChangeBatch::new(data, weights)?);
            }
            if !changes.is_empty() {
                let ctx = StepContext {
                    snapshot: snapshot.clone(),
                };
                writer.runtime.step(&ctx, changes, None, &mut txn)?;
            }
        }
        if !txn.is_empty() {
            self.store.commit(txn)?;
        }
        Ok(())
    }

    /// `DROP TABLE | MATERIALIZED VIEW | VIEW names [CASCADE]`.
    pub(super) async fn exec_drop_relations(
        &self,
        kind: RelKind,
        names: &[String],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Output> {
        let mut writer = self.writer.lock().await;
        let mut named: Vec<Arc<TableDef>> = Vec::new();
        for n in names {
            match self.catalog().get(n).cloned() {
                Some(d) if d.kind != kind => {
                    return Err(PlannerError::WrongObjectType(format!(
                        "\"{n}\" is not a {}",
                        kind.noun()
                    )))
                }
                Some(d) => named.push(d),
                None if if_exists => {}
                None => return Err(PlannerError::UndefinedTable(n.clone())),
            }
        }
        // Everything that depends on what is dropped, transitively.
        let mut all: Vec<Arc<TableDef>> = named.clone();
        let mut i = 0;
        while i < all.len() {
            for dep in self.catalog().dependants(&all[i].name) {
                if all.iter().any(|d| d.name == dep.name) {
                    continue;
                }
                if !cascade {
                    return Err(PlannerError::DependentObjects {
                        what: format!("{} {}", all[i].kind.noun(), all[i].name),
                        detail: format!(
                            "{} {} depends on {} {}",
                            dep.kind.noun(),
                            dep.name,
                            all[i].kind.noun(),
                            all[i].name
                        ),
                    });
                }
                all.push(dep);
            }
            i += 1;
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        let mut txn = Txn::new();
        for d in &all {
            Catalog::drop_table(d, &mut txn);
        }
        if !txn.is_empty() {
            self.store.commit(txn)?;
        }
        for d in &all {
            writer.runtime.remove(&d.name);
            self.catalog().remove(&d.name);
            self.unregister_table(&d.name);
            self.views
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.name);
        }
        let tag = match kind {
            RelKind::Table => "DROP TABLE",
            RelKind::MaterializedView => "DROP MATERIALIZED VIEW",
            RelKind::View => "DROP VIEW",
        };
        Ok(Output::Command(CommandTag::new(tag)))
    }

    /// `SHOW MATERIALIZED VIEWS`.
    pub(super) fn show_materialized_views(&self) -> Result<Output> {
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
    pub(super) async fn explain_create_view(&self, c: &CreateView) -> Result<Output> {
        let (plan, columns) = self.plan_view_query(&c.query, &c.columns).await?;
        let next = self.catalog().peek_next_id();
        let logical = self.optimize_view(&plan)?;
        let def = TableDef {
            id: next,
            name: c.name.clone(),
            columns,
            primary_key: vec![],
            kind: RelKind::MaterializedView,
            query: None,
            depends_on: vec![],
            state_ids: (next + 1, 0),
            view_key: view_key(&logical),
        };
        let (root, _) = self.lower_view(&logical, &def)?;
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
    pub(super) async fn explain_view(&self, name: &str) -> Result<Output> {
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

#[allow(unused)]
fn _assert_array(_: &dyn Array) {}

/// The columns a new view's rows are unique by (its optimized plan), which
/// then key its contents (see [`TableDef::view_key`]). Decided once, when
/// the view is created, and kept in the catalog: a view keeps its layout.
fn view_key(optimized: &LogicalPlan) -> Option<Vec<usize>> {
    unique_columns(optimized).map(|mut cols| {
        cols.sort_unstable();
        cols
    })
}

/// The output columns `plan`'s rows are unique by, when its shape shows it:
/// a GROUP BY's keys (without grouping sets), through filters (HAVING),
/// aliases, sorts and limits (top-N), and projections that keep each key
/// column as it is or through a cast that keeps distinct values distinct.
fn unique_columns(plan: &LogicalPlan) -> Option<Vec<usize>> {
    match plan {
        // A global aggregate (no keys) keeps the general layout.
        LogicalPlan::Aggregate(a) => {
            let sets = a
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)));
            (!sets && !a.group_expr.is_empty()).then(|| (0..a.group_expr.len()).collect())
        }
        LogicalPlan::Filter(f) => unique_columns(&f.input),
        LogicalPlan::SubqueryAlias(s) => unique_columns(&s.input),
        LogicalPlan::Sort(s) => unique_columns(&s.input),
        LogicalPlan::Limit(l) => unique_columns(&l.input),
        LogicalPlan::Projection(p) => {
            let input = p.input.schema();
            unique_columns(&p.input)?
                .into_iter()
                .map(|c| p.expr.iter().position(|e| keeps_column(e, input, c)))
                .collect()
        }
        _ => None,
    }
}

/// Whether `e` is input column `c`, possibly renamed or cast without
/// merging values (to a wider integer, or between string types).
fn keeps_column(e: &Expr, input: &datafusion::common::DFSchema, c: usize) -> bool {
    match e {
        Expr::Alias(a) => keeps_column(&a.expr, input, c),
        Expr::Column(col) => input.index_of_column(col).ok() == Some(c),
        Expr::Cast(cast) => {
            let from = input.field(c).data_type();
            injective_cast(from, cast.field.data_type()) && keeps_column(&cast.expr, input, c)
        }
        _ => false,
    }
}

fn injective_cast(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let signed = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    let text = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    from == to
        || (text(from) && text(to))
        || matches!((signed(from), signed(to)), (Some(a), Some(b)) if a <= b)
}
