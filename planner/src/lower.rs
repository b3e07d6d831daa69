//! Lowering a materialized view's query to a dataflow (DESIGN.md: SQL →
//! DataFusion `LogicalPlan` → dataflow plan), in the two passes STYLE.md
//! describes:
//!
//! 1. [`check`] walks the optimized logical plan and matches every
//!    `LogicalPlan` variant by name (no catch-all), rejecting what has no
//!    incremental operator with `0A000` naming the construct;
//! 2. [`Lowering::build`] turns the checked plan, bottom-up, into a
//!    [`Node`] tree of incremental operators, giving each stateful operator
//!    its state table ids from a contiguous block, in a deterministic order
//!    (so re-lowering the same query at start-up finds the same state).
//!
//! The DataFusion optimizer has already decorrelated subqueries (IN/EXISTS
//! become semi/anti joins, scalar subqueries joins with aggregates),
//! inlined CTEs and views, and rewritten DISTINCT, INTERSECT and EXCEPT into
//! aggregates and joins, so those need no operators of their own.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, JoinType, NullEquality, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::logical_plan::{Distinct, FetchType, SkipType};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, GroupingSet, LogicalPlan, Operator as BinOp, SortExpr,
};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr, PhysicalSortExpr};
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use datafusion::physical_planner::create_window_expr;

use freshet_dataflow::graph::Node;
use freshet_dataflow::operator::{
    Aggregate, AggregateSpec, Distinct as DistinctOp, Filter, Join, JoinKind, Operator, Project,
    SingleRow, TopN, Union,
};

use crate::{PlannerError, Result};

fn unsupported(what: impl Into<String>) -> PlannerError {
    PlannerError::not_supported(format!("{} in a materialized view", what.into()))
}

/// Pass 1: rejects every construct without an incremental operator.
pub fn check(plan: &LogicalPlan) -> Result<()> {
    match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::EmptyRelation(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Values(_)
        | LogicalPlan::Sort(_) => {}
        LogicalPlan::Aggregate(a) => {
            if a.group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Err(unsupported("GROUPING SETS / ROLLUP / CUBE"));
            }
        }
        LogicalPlan::Window(_) => {
            // ROW_NUMBER() … <= n is matched with its filter in pass 2 as a
            // top-N; every other window is computed per touched partition.
        }
        LogicalPlan::Limit(l) => {
            if !matches!(l.input.as_ref(), LogicalPlan::Sort(_)) {
                return Err(unsupported("LIMIT/OFFSET without ORDER BY"));
            }
            if !matches!(l.get_skip_type()?, SkipType::Literal(_))
                || !matches!(l.get_fetch_type()?, FetchType::Literal(_))
            {
                return Err(unsupported("LIMIT/OFFSET with a non-constant count"));
            }
        }
        LogicalPlan::Distinct(Distinct::All(_)) => {}
        LogicalPlan::Distinct(Distinct::On(_)) => return Err(unsupported("DISTINCT ON")),
        LogicalPlan::Repartition(_) => return Err(unsupported("repartitioning")),
        LogicalPlan::Subquery(_) => return Err(unsupported("a correlated subquery")),
        LogicalPlan::Statement(_) => return Err(unsupported("a statement")),
        LogicalPlan::Explain(_) => return Err(unsupported("EXPLAIN")),
        LogicalPlan::Analyze(_) => return Err(unsupported("EXPLAIN ANALYZE")),
        LogicalPlan::Extension(e) => {
            return Err(unsupported(format!("the {} operator", e.node.name())))
        }
        LogicalPlan::Dml(_) => return Err(unsupported("INSERT/UPDATE/DELETE")),
        LogicalPlan::Ddl(_) => return Err(unsupported("DDL")),
        LogicalPlan::Copy(_) => return Err(unsupported("COPY")),
        LogicalPlan::DescribeTable(_) => return Err(unsupported("DESCRIBE")),
        LogicalPlan::Unnest(_) => return Err(unsupported("UNNEST")),
        LogicalPlan::RecursiveQuery(_) => return Err(unsupported("WITH RECURSIVE")),
    }
    for e in plan.expressions() {
        check_expr(&e)?;
    }
    for input in plan.inputs() {
        check(input)?;
    }
    Ok(())
}

fn check_expr(e: &Expr) -> Result<()> {
    let mut err = None;
    e.apply(|e| {
        let bad = match e {
            Expr::ScalarFunction(f)
                if f.func.signature().volatility
                    == datafusion::logical_expr::Volatility::Volatile =>
            {
                Some(format!("the volatile function {}()", f.func.name()))
            }
            Expr::Placeholder(_) => Some("a parameter ($n)".to_string()),
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => Some(
                "this subquery (scalar subqueries are supported in WHERE, and correlated \
                 ones where they can be decorrelated)"
                    .to_string(),
            ),
            Expr::OuterReferenceColumn(..) => Some("a correlated subquery".to_string()),
            _ => None,
        };
        Ok(match bad {
            Some(b) => {
                err = Some(b);
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })?;
    match err {
        Some(what) => Err(unsupported(what)),
        None => Ok(()),
    }
}

/// Pass 2: builds the operator tree.
pub struct Lowering {
    next_id: u32,
    props: ExecutionProps,
}

fn node(op: impl Operator + 'static, inputs: Vec<Node>) -> Node {
    Node::Op {
        op: Box::new(op),
        inputs,
    }
}

fn arrow(schema: &DFSchema) -> SchemaRef {
    Arc::new(schema.as_arrow().clone())
}

impl Lowering {
    /// State ids are handed out from `first_id` on.
    pub fn new(first_id: u32) -> Self {
        Self {
            next_id: first_id,
            props: ExecutionProps::new(),
        }
    }

    /// The next id that would be handed out.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    fn ids(&mut self, n: u32) -> u32 {
        let id = self.next_id;
        self.next_id += n;
        id
    }

    fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            e,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    fn sort(&self, s: &SortExpr, schema: &DFSchema) -> Result<PhysicalSortExpr> {
        Ok(PhysicalSortExpr {
            expr: self.physical(&s.expr, schema)?,
            options: SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            },
        })
    }

    pub fn build(&mut self, plan: &LogicalPlan) -> Result<Node> {
        let schema = arrow(plan.schema());
        match plan {
            LogicalPlan::Projection(p) => {
                let input = self.build(&p.input)?;
                let exprs = p
                    .expr
                    .iter()
                    .map(|e| self.physical(e, p.input.schema()))
                    .collect::<Result<Vec<_>>>()?;
                Ok(node(Project::new(exprs, schema), vec![input]))
            }
            LogicalPlan::Filter(f) => {
                if let LogicalPlan::Window(w) = f.input.as_ref() {
                    if let Some(top) = self.window_top_n(&f.predicate, w, schema.clone())? {
                        return Ok(top);
                    }
                }
                // The optimizer may prune columns between the filter and
                // the window: Filter(rn <= n) → Projection(columns) → Window.
                if let LogicalPlan::Projection(p) = f.input.as_ref() {
                    if let LogicalPlan::Window(w) = p.input.as_ref() {
                        if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
                            if let Some(top) =
                                self.window_top_n(&f.predicate, w, arrow(&w.schema))?
                            {
                                let exprs = p
                                    .expr
                                    .iter()
                                    .map(|e| self.physical(e, &w.schema))
                                    .collect::<Result<Vec<_>>>()?;
                                return Ok(node(Project::new(exprs, schema), vec![top]));
                            }
                        }
                    }
                }
                let input = self.build(&f.input)?;
                let pred = self.physical(&f.predicate, f.input.schema())?;
                Ok(node(Filter::new(pred, schema), vec![input]))
            }
            LogicalPlan::Window(w) => self.window(w, schema),
            LogicalPlan::Aggregate(a) => {
                let input = self.build(&a.input)?;
                let in_df = a.input.schema();
                let groups = a
                    .group_expr
                    .iter()
                    .map(|e| self.physical(e, in_df))
                    .collect::<Result<Vec<_>>>()?;
                if a.aggr_expr.is_empty() {
                    // DISTINCT (or GROUP BY without aggregates).
                    let project = node(Project::new(groups, schema.clone()), vec![input]);
                    let id = self.ids(1);
                    return Ok(node(DistinctOp::new(schema, id)?, vec![project]));
                }
                let in_arrow = arrow(in_df);
                let mut specs = Vec::new();
                for e in &a.aggr_expr {
                    #[allow(deprecated)]
                    let (expr, filter, _) =
                        create_aggregate_expr_and_maybe_filter(e, in_df, &in_arrow, &self.props)?;
                    specs.push(AggregateSpec { expr, filter });
                }
                let id = self.ids(Aggregate::state_ids_needed(specs.len()));
                Ok(node(
                    Aggregate::new(in_arrow, groups, specs, schema, id)?,
                    vec![input],
                ))
            }
            LogicalPlan::Sort(s) => match s.fetch {
                // Row order is not part of a view's contents.
                None => self.build(&s.input),
                Some(n) => self.top_n(s, 0, n, schema),
            },
            LogicalPlan::Limit(l) => {
                let LogicalPlan::Sort(s) = l.input.as_ref() else {
                    return Err(unsupported("LIMIT/OFFSET without ORDER BY"));
                };
                let skip = match l.get_skip_type()? {
                    SkipType::Literal(n) => n,
                    SkipType::UnsupportedExpr => return Err(unsupported("a non-constant OFFSET")),
                };
                let fetch = match l.get_fetch_type()? {
                    FetchType::Literal(n) => n.unwrap_or(usize::MAX),
                    FetchType::UnsupportedExpr => return Err(unsupported("a non-constant LIMIT")),
                };
                // The sort may carry its own (pushed-down) fetch of skip+fetch.
                self.top_n(s, skip, fetch, schema)
            }
            LogicalPlan::Join(j) => {
                let kind = match j.join_type {
                    JoinType::Inner => JoinKind::Inner,
                    JoinType::Left => JoinKind::Left,
                    JoinType::Right => JoinKind::Right,
                    JoinType::Full => JoinKind::Full,
                    JoinType::LeftSemi => JoinKind::LeftSemi,
                    JoinType::LeftAnti => JoinKind::LeftAnti,
                    JoinType::RightSemi => JoinKind::RightSemi,
                    JoinType::RightAnti => JoinKind::RightAnti,
                    JoinType::LeftMark | JoinType::RightMark => {
                        return Err(unsupported(
                            "a subquery (IN/EXISTS) inside OR or a projection",
                        ))
                    }
                };
                if j.null_aware {
                    // `rewrite_not_in` turns the ones it can into plain
                    // joins before lowering.
                    return Err(unsupported(
                        "a correlated or multi-column NOT IN (subquery)",
                    ));
                }
                let left = self.build(&j.left)?;
                let right = self.build(&j.right)?;
                let lk =
                    j.on.iter()
                        .map(|(l, _)| self.physical(l, j.left.schema()))
                        .collect::<Result<Vec<_>>>()?;
                let rk =
                    j.on.iter()
                        .map(|(_, r)| self.physical(r, j.right.schema()))
                        .collect::<Result<Vec<_>>>()?;
                let joined = j.left.schema().join(j.right.schema())?;
                let filter = j
                    .filter
                    .as_ref()
                    .map(|f| self.physical(f, &joined))
                    .transpose()?;
                let id = self.ids(Join::state_ids_needed());
                let op = Join::new(
                    kind,
                    arrow(j.left.schema()),
                    lk,
                    arrow(j.right.schema()),
                    rk,
                    filter,
                    j.null_equality == NullEquality::NullEqualsNull,
                    schema,
                    id,
                )?;
                Ok(node(op, vec![left, right]))
            }
            LogicalPlan::Union(u) => {
                let inputs = u
                    .inputs
                    .iter()
                    .map(|i| self.build(i))
                    .collect::<Result<Vec<_>>>()?;
                Ok(node(Union::new(schema), inputs))
            }
            LogicalPlan::TableScan(t) => {
                let relation = t.table_name.table().to_string();
                let columns = match &t.projection {
                    Some(p) => p.clone(),
                    None => (0..t.source.schema().fields().len()).collect(),
                };
                Ok(Node::Source {
                    relation,
                    columns,
                    schema,
                })
            }
            LogicalPlan::EmptyRelation(e) => {
                let rows = usize::from(e.produce_one_row);
                Ok(Node::Constant(RecordBatch::try_new_with_options(
                    schema.clone(),
                    schema
                        .fields()
                        .iter()
                        .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), rows))
                        .collect(),
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )?))
            }
            LogicalPlan::Values(v) => {
                let empty = DFSchema::empty();
                let one = RecordBatch::try_new_with_options(
                    Arc::new(Schema::empty()),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(1)),
                )?;
                let mut cols = Vec::new();
                for (c, f) in schema.fields().iter().enumerate() {
                    let mut vals = Vec::new();
                    for row in &v.values {
                        let e = self.physical(&row[c], &empty)?;
                        let a = e.evaluate(&one)?.into_array(1)?;
                        vals.push(ScalarValue::try_from_array(&a, 0)?.cast_to(f.data_type())?);
                    }
                    cols.push(ScalarValue::iter_to_array(vals)?);
                }
                Ok(Node::Constant(RecordBatch::try_new(schema, cols)?))
            }
            LogicalPlan::SubqueryAlias(s)
                if s.alias.table().starts_with(SCALAR_SUBQUERY_PREFIX)
                    && !at_most_one_row(&s.input) =>
            {
                let input = self.build(&s.input)?;
                let id = self.ids(1);
                Ok(node(SingleRow::new(schema, id)?, vec![input]))
            }
            LogicalPlan::SubqueryAlias(s) => self.build(&s.input),
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let input = self.build(input)?;
                let id = self.ids(1);
                Ok(node(DistinctOp::new(schema, id)?, vec![input]))
            }
            LogicalPlan::Distinct(Distinct::On(_))
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Unnest(_)
            | LogicalPlan::RecursiveQuery(_) => {
                // `check` rejected these already.
                check(plan)?;
                Err(unsupported(plan.display().to_string()))
            }
        }
    }

    fn top_n(
        &mut self,
        s: &datafusion::logical_expr::Sort,
        offset: usize,
        limit: usize,
        schema: SchemaRef,
    ) -> Result<Node> {
        let input = self.build(&s.input)?;
        let in_df = s.input.schema();
        let sort = s
            .expr
            .iter()
            .map(|e| self.sort(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let id = self.ids(1);
        let op = TopN::new(arrow(in_df), vec![], sort, offset, limit, false, schema, id)?;
        Ok(node(op, vec![input]))
    }

    /// `Filter(rn <= n AND …) over Window(ROW_NUMBER() OVER (PARTITION BY
    /// … ORDER BY …) AS rn)`: a per-group top-N, which reads only the first
    /// `n` rows of a touched partition; likewise `RANK()` and
    /// `DENSE_RANK()`, whose ties at the n-th place are all kept. `None`: not that pattern (the
    /// window is then computed whole, see [`Lowering::window`]).
    fn window_top_n(
        &mut self,
        predicate: &Expr,
        w: &datafusion::logical_expr::logical_plan::Window,
        schema: SchemaRef,
    ) -> Result<Option<Node>> {
        let [wexpr] = w.window_expr.as_slice() else {
            return Ok(None);
        };
        let Expr::WindowFunction(f) = wexpr.clone().unalias() else {
            return Ok(None);
        };
        let WindowFunction { fun, params } = f.as_ref();
        let rank = match fun.name() {
            "row_number" => None,
            "rank" => Some(false),
            "dense_rank" => Some(true),
            _ => return Ok(None),
        };
        if params.filter.is_some() {
            return Ok(None);
        }
        let rn_name = w.schema.field(w.schema.fields().len() - 1).name().clone();
        let mut limit = None;
        let mut rest = Vec::new();
        for c in split_conjunction(predicate) {
            match rn_bound(c, &rn_name) {
                Some(n) if limit.is_none() => limit = Some(n),
                _ => rest.push(c.clone()),
            }
        }
        let Some(limit) = limit else {
            return Ok(None);
        };
        let input = self.build(&w.input)?;
        let in_df = w.input.schema();
        let partition = params
            .partition_by
            .iter()
            .map(|e| self.physical(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let sort = params
            .order_by
            .iter()
            .map(|e| self.sort(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let id = self.ids(1);
        let win_schema = arrow(&w.schema);
        let mut op = TopN::new(
            arrow(in_df),
            partition,
            sort,
            0,
            limit,
            true,
            win_schema,
            id,
        )?;
        if let Some(dense) = rank {
            op = op.with_rank(dense);
        }
        let mut out = node(op, vec![input]);
        if let Some(pred) = rest.into_iter().reduce(|a, b| a.and(b)) {
            let pred = self.physical(&pred, &w.schema)?;
            out = node(Filter::new(pred, schema), vec![out]);
        }
        Ok(Some(out))
    }

    /// `Window(f₁ OVER (…), …)`: each run of functions with the same
    /// `PARTITION BY` and `ORDER BY` is one operator that keeps the input's
    /// rows per partition in sort order and evaluates the functions over
    /// every partition a step touches (see [`TopN::with_functions`]); runs
    /// follow each other, each adding its columns after the ones before, as
    /// the window's schema lists them.
    fn window(
        &mut self,
        w: &datafusion::logical_expr::logical_plan::Window,
        schema: SchemaRef,
    ) -> Result<Node> {
        let mut out = self.build(&w.input)?;
        let in_df = w.input.schema();
        let n_in = in_df.fields().len();
        let shape = |e: &Expr| -> Result<(Vec<Expr>, Vec<SortExpr>)> {
            match e.clone().unalias() {
                Expr::WindowFunction(f) => {
                    Ok((f.params.partition_by.clone(), f.params.order_by.clone()))
                }
                other => Err(unsupported(format!("the window expression {other}"))),
            }
        };
        let mut i = 0;
        while i < w.window_expr.len() {
            let (partition_by, order_by) = shape(&w.window_expr[i])?;
            let mut j = i + 1;
            while j < w.window_expr.len()
                && shape(&w.window_expr[j])? == (partition_by.clone(), order_by.clone())
            {
                j += 1;
            }
            let functions = w.window_expr[i..j]
                .iter()
                .map(|e| {
                    Ok(create_window_expr(
                        e,
                        in_df,
                        &self.props,
                        &PhysicalPlanningContext::default(),
                    )?)
                })
                .collect::<Result<Vec<_>>>()?;
            let partition = partition_by
                .iter()
                .map(|e| self.physical(e, in_df))
                .collect::<Result<Vec<_>>>()?;
            let sort = order_by
                .iter()
                .map(|e| self.sort(e, in_df))
                .collect::<Result<Vec<_>>>()?;
            let fields = schema.fields();
            let input = Arc::new(Schema::new(fields[..n_in + i].to_vec()));
            let output = Arc::new(Schema::new(fields[..n_in + j].to_vec()));
            let id = self.ids(1);
            let op = TopN::new(input, partition, sort, 0, usize::MAX, false, output, id)?
                .with_functions(functions);
            out = node(op, vec![out]);
            i = j;
        }
        Ok(out)
    }
}

/// `n` when `e` says `rn <= n`, `rn < n+1`, `rn = 1` (or the mirror forms).
fn rn_bound(e: &Expr, rn: &str) -> Option<usize> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let is_rn = |e: &Expr| matches!(e.clone().unalias(), Expr::Column(c) if c.name == rn);
    let lit = |e: &Expr| -> Option<i64> {
        let e = e.clone().unalias();
        // A literal, possibly under the cast type coercion puts around it.
        let v = match &e {
            Expr::Literal(v, _) => v,
            Expr::Cast(c) => match c.expr.as_ref() {
                Expr::Literal(v, _) => v,
                _ => return None,
            },
            _ => return None,
        };
        match v
            .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
            .ok()?
        {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        }
    };
    let (op, n) = if is_rn(left) {
        (*op, lit(right)?)
    } else if is_rn(right) {
        (op.swap()?, lit(left)?)
    } else {
        return None;
    };
    let n = match op {
        BinOp::LtEq => n,
        BinOp::Lt => n - 1,
        BinOp::Eq if n == 1 => 1,
        _ => return None,
    };
    Some(n.max(0) as usize)
}

/// The direct inputs of a view: the relations its (unoptimized, not yet
/// view-inlined) plan scans.
pub fn scanned_relations(plan: &LogicalPlan) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(t) = p {
            let name = t.table_name.table().to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

#[allow(unused)]
fn _grouping(_: &GroupingSet) {}

/// The alias of a scalar subquery joined in by [`join_scalar_subqueries`];
/// lowering puts a `SingleRow` check over it.
const SCALAR_SUBQUERY_PREFIX: &str = "__scalar_subquery_";

/// Whether `plan` returns at most one row by construction (an aggregate
/// without GROUP BY, or LIMIT 0/1), under projections and aliases.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(s) => at_most_one_row(&s.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Limit(l) => {
            matches!(l.get_fetch_type(), Ok(FetchType::Literal(Some(n))) if n <= 1)
                || at_most_one_row(&l.input)
        }
        _ => false,
    }
}

/// Rewrites the null-aware anti joins DataFusion plans for `x NOT IN
/// (SELECT y …)` (uncorrelated, one column) into operators that are
/// incremental on their own. SQL's rule: with the subquery empty every row
/// qualifies; with a NULL among its values none does; otherwise the rows
/// whose `x` is not NULL and matches no `y`. So: a plain anti join on
/// `x = y`, crossed with the subquery's two flags (`count(*) > 0`,
/// `count(*) > count(y)`), filtered by `NOT nonempty OR (NOT has_null AND x
/// IS NOT NULL)`. The flags row only changes when a flag does (the
/// projection of the counts consolidates away otherwise), so an ordinary
/// change to the subquery costs a key lookup, not a pass over the rows.
pub fn rewrite_not_in(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::common::Column;
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::logical_expr::{lit, LogicalPlanBuilder};
    let mut n = 0usize;
    let out = plan.transform_up(|p| {
        let LogicalPlan::Join(j) = &p else {
            return Ok(Transformed::no(p));
        };
        if !(j.null_aware && j.join_type == JoinType::LeftAnti && j.on.len() == 1)
            || j.filter.is_some()
        {
            return Ok(Transformed::no(p));
        }
        n += 1;
        let alias = format!("__not_in_{n}");
        let (lk, rk) = j.on[0].clone();
        let anti = LogicalPlan::Join(datafusion::logical_expr::Join {
            null_aware: false,
            ..j.clone()
        });
        let flags = LogicalPlanBuilder::from(j.right.as_ref().clone())
            .aggregate(
                Vec::<Expr>::new(),
                vec![count(lit(1)).alias("__rows"), count(rk).alias("__keys")],
            )?
            .project(vec![
                Expr::Column(Column::from_name("__rows"))
                    .gt(lit(0i64))
                    .alias("__nonempty"),
                Expr::Column(Column::from_name("__rows"))
                    .gt(Expr::Column(Column::from_name("__keys")))
                    .alias("__has_null"),
            ])?
            .alias(alias.as_str())?
            .build()?;
        let flag = |name: &str| Expr::Column(Column::new(Some(alias.as_str()), name));
        let keep = flag("__nonempty")
            .is_false()
            .or(flag("__has_null").is_false().and(lk.is_not_null()));
        let left_columns: Vec<Expr> = j
            .left
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let new = LogicalPlanBuilder::from(anti)
            .cross_join(flags)?
            .filter(keep)?
            .project(left_columns)?
            .build()?;
        Ok(Transformed::yes(new))
    })?;
    Ok(out.data)
}

/// Rewrites uncorrelated scalar subqueries in filters and projections into
/// a left join with the subquery's (single-row) result, which the
/// incremental join maintains; DataFusion would otherwise run them as a
/// separate batch plan. Lowering checks the subquery's row count: a second
/// row fails the statement that brings it (SQLSTATE 21000), as in Postgres.
pub fn join_scalar_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::LogicalPlanBuilder;
    let mut n = 0usize;
    let out = plan.transform_up(|p| {
        let exprs = p.expressions();
        let has = exprs.iter().any(|e| {
            e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(s) if s.outer_ref_columns.is_empty())))
                .unwrap_or(false)
        });
        if !has || !matches!(p, LogicalPlan::Filter(_) | LogicalPlan::Projection(_)) {
            return Ok(Transformed::no(p));
        }
        let input = p.inputs()[0].clone();
        let original: Vec<Expr> = input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let mut builder = LogicalPlanBuilder::from(input);
        let mut rewritten = Vec::new();
        for e in exprs {
            let e = e.transform_up(|e| match e {
                Expr::ScalarSubquery(s) if s.outer_ref_columns.is_empty() => {
                    n += 1;
                    let alias = format!("{SCALAR_SUBQUERY_PREFIX}{n}");
                    let sub = LogicalPlanBuilder::from(s.subquery.as_ref().clone())
                        .alias(alias.as_str())?
                        .build()?;
                    let field = sub.schema().field(0).name().clone();
                    builder = builder.clone().join_on(
                        sub,
                        JoinType::Left,
                        vec![datafusion::logical_expr::lit(true)],
                    )?;
                    Ok(Transformed::yes(Expr::Column(
                        datafusion::common::Column::new(Some(alias), field),
                    )))
                }
                e => Ok(Transformed::no(e)),
            })?;
            rewritten.push(e.data);
        }
        let new = match &p {
            LogicalPlan::Filter(_) => builder
                .filter(rewritten.remove(0))?
                .project(original)?
                .build()?,
            _ => {
                // Keep the output names (and qualifiers) parents refer to.
                let named = rewritten
                    .into_iter()
                    .zip(p.schema().iter())
                    .map(|(e, (q, f))| {
                        let e = e.unalias();
                        match q {
                            Some(q) => e.alias_qualified(Some(q.clone()), f.name()),
                            None => e.alias(f.name()),
                        }
                    })
                    .collect::<Vec<_>>();
                builder.project(named)?.build()?
            }
        };
        Ok(Transformed::yes(new))
    })?;
    Ok(out.data)
}
