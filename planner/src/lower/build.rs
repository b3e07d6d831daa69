//! Pass 2: the checked, optimized plan turned bottom-up into a [`Node`]
//! tree of incremental operators: one function per plan node behind a
//! short match. Stateful operators get their state table ids from a
//! contiguous block, in a deterministic order, so re-lowering the same
//! query at start-up finds the same state.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DFSchema, JoinType, NullEquality, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::logical_plan::{
    Aggregate as AggregatePlan, Distinct, EmptyRelation, FetchType, Filter as FilterPlan,
    Join as JoinPlan, Limit, Projection, SkipType, Sort, TableScan, Values,
};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, SortExpr};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr, PhysicalSortExpr};
#[allow(deprecated)]
use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;
use freshet_dataflow::graph::Node;
use freshet_dataflow::operator::{
    Aggregate, AggregateSpec, Distinct as DistinctOp, Filter, Join, JoinKind, Operator, Project,
    SingleRow, TopN, Union,
};

use super::check::check;
use super::rewrite::{at_most_one_row, SCALAR_SUBQUERY_PREFIX};
use super::unsupported;
use crate::Result;

/// Builds the operator tree of one view.
pub struct Lowering {
    next_id: u32,
    props: ExecutionProps,
}

pub(super) fn node(
    name: &'static str,
    schema: SchemaRef,
    op: impl Operator + 'static,
    inputs: Vec<Node>,
) -> Node {
    Node::op(name, schema, op, inputs)
}

pub(super) fn arrow(schema: &DFSchema) -> SchemaRef {
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

    pub(super) fn ids(&mut self, n: u32) -> u32 {
        let id = self.next_id;
        self.next_id += n;
        id
    }

    pub(super) fn physical(&self, e: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(create_physical_expr(
            e,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )?)
    }

    pub(super) fn physicals(
        &self,
        exprs: &[Expr],
        schema: &DFSchema,
    ) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
        exprs.iter().map(|e| self.physical(e, schema)).collect()
    }

    pub(super) fn sort(&self, s: &SortExpr, schema: &DFSchema) -> Result<PhysicalSortExpr> {
        Ok(PhysicalSortExpr {
            expr: self.physical(&s.expr, schema)?,
            options: SortOptions {
                descending: !s.asc,
                nulls_first: s.nulls_first,
            },
        })
    }

    pub(super) fn sorts(
        &self,
        exprs: &[SortExpr],
        schema: &DFSchema,
    ) -> Result<Vec<PhysicalSortExpr>> {
        exprs.iter().map(|e| self.sort(e, schema)).collect()
    }

    pub(super) fn props(&self) -> &ExecutionProps {
        &self.props
    }

    pub fn build(&mut self, plan: &LogicalPlan) -> Result<Node> {
        let schema = arrow(plan.schema());
        match plan {
            LogicalPlan::Projection(p) => self.projection(p, schema),
            LogicalPlan::Unnest(u) => {
                check(plan)?;
                let input = self.build(&u.input)?;
                let lists = u.list_type_columns.iter().map(|(i, _)| *i).collect();
                Ok(node(
                    "Unnest",
                    schema.clone(),
                    freshet_dataflow::operator::Unnest::new(
                        lists,
                        u.dependency_indices.clone(),
                        schema,
                        u.options.null_handling,
                    ),
                    vec![input],
                ))
            }
            LogicalPlan::Filter(f) => self.filter(f, schema),
            LogicalPlan::Window(w) => self.window(w, schema),
            LogicalPlan::Aggregate(a) => self.aggregate(a, schema),
            LogicalPlan::Sort(s) => match s.fetch {
                // Row order is not part of a view's contents.
                None => self.build(&s.input),
                Some(n) => self.top_n(s, 0, n, schema),
            },
            LogicalPlan::Limit(l) => self.limit(l, schema),
            LogicalPlan::Join(j) => self.join(j, schema),
            LogicalPlan::Union(u) => {
                let inputs = u
                    .inputs
                    .iter()
                    .map(|i| self.build(i))
                    .collect::<Result<Vec<_>>>()?;
                Ok(node("Union", schema.clone(), Union::new(schema), inputs))
            }
            LogicalPlan::TableScan(t) => Ok(scan(t, schema)),
            LogicalPlan::EmptyRelation(e) => empty(e, schema),
            LogicalPlan::Values(v) => self.values(v, schema),
            LogicalPlan::SubqueryAlias(s)
                if s.alias.table().starts_with(SCALAR_SUBQUERY_PREFIX)
                    && !at_most_one_row(&s.input) =>
            {
                let input = self.build(&s.input)?;
                let id = self.ids(1);
                Ok(node("SingleRow", schema, SingleRow::new(id)?, vec![input]))
            }
            LogicalPlan::SubqueryAlias(s) => self.build(&s.input),
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let input = self.build(input)?;
                let id = self.ids(1);
                Ok(node(
                    "Distinct",
                    schema.clone(),
                    DistinctOp::new(schema, id)?,
                    vec![input],
                ))
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
            | LogicalPlan::RecursiveQuery(_) => {
                // `check` rejected these already.
                check(plan)?;
                Err(unsupported(plan.display().to_string()))
            }
        }
    }

    fn projection(&mut self, p: &Projection, schema: SchemaRef) -> Result<Node> {
        let input = self.build(&p.input)?;
        let exprs = self.physicals(&p.expr, p.input.schema())?;
        Ok(node(
            "Project",
            schema.clone(),
            Project::new(exprs, schema),
            vec![input],
        ))
    }

    fn filter(&mut self, f: &FilterPlan, schema: SchemaRef) -> Result<Node> {
        if let LogicalPlan::Window(w) = f.input.as_ref() {
            if let Some(top) = self.window_top_n(&f.predicate, w, schema.clone())? {
                return Ok(top);
            }
        }
        // The optimizer may prune columns between the filter and the
        // window: Filter(rn <= n) → Projection(columns) → Window.
        if let LogicalPlan::Projection(p) = f.input.as_ref() {
            if let LogicalPlan::Window(w) = p.input.as_ref() {
                if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) {
                    if let Some(top) = self.window_top_n(&f.predicate, w, arrow(&w.schema))? {
                        let exprs = self.physicals(&p.expr, &w.schema)?;
                        return Ok(node(
                            "Project",
                            schema.clone(),
                            Project::new(exprs, schema),
                            vec![top],
                        ));
                    }
                }
            }
        }
        let input = self.build(&f.input)?;
        let pred = self.physical(&f.predicate, f.input.schema())?;
        Ok(node("Filter", schema, Filter::new(pred), vec![input]))
    }

    fn aggregate(&mut self, a: &AggregatePlan, schema: SchemaRef) -> Result<Node> {
        let input = self.build(&a.input)?;
        let in_df = a.input.schema();
        let groups = self.physicals(&a.group_expr, in_df)?;
        if a.aggr_expr.is_empty() {
            // DISTINCT (or GROUP BY without aggregates).
            let project = node(
                "Project",
                schema.clone(),
                Project::new(groups, schema.clone()),
                vec![input],
            );
            let id = self.ids(1);
            return Ok(node(
                "Distinct",
                schema.clone(),
                DistinctOp::new(schema, id)?,
                vec![project],
            ));
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
            "Aggregate",
            schema.clone(),
            Aggregate::new(in_arrow, groups, specs, schema, id)?,
            vec![input],
        ))
    }

    fn limit(&mut self, l: &Limit, schema: SchemaRef) -> Result<Node> {
        // LIMIT without ORDER BY may keep any n rows (RisingWave accepts
        // it): the view keeps the first n in the order of all their
        // columns, which stay the same n until one of them goes.
        let by_all_columns;
        let s = match l.input.as_ref() {
            LogicalPlan::Sort(s) => s,
            input => {
                let expr = input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(|c| Expr::Column(c).sort(true, false))
                    .collect();
                by_all_columns = Sort {
                    expr,
                    input: l.input.clone(),
                    fetch: None,
                };
                &by_all_columns
            }
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

    fn top_n(&mut self, s: &Sort, offset: usize, limit: usize, schema: SchemaRef) -> Result<Node> {
        let input = self.build(&s.input)?;
        let in_df = s.input.schema();
        let sort = self.sorts(&s.expr, in_df)?;
        let id = self.ids(1);
        let op = TopN::new(
            arrow(in_df),
            vec![],
            sort,
            offset,
            limit,
            false,
            schema.clone(),
            id,
        )?;
        Ok(node("TopN", schema, op, vec![input]))
    }

    fn join(&mut self, j: &JoinPlan, schema: SchemaRef) -> Result<Node> {
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
            // `rewrite_not_in` turns the ones it can into plain joins
            // before lowering.
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
            schema.clone(),
            id,
        )?;
        Ok(node("Join", schema, op, vec![left, right]))
    }

    fn values(&mut self, v: &Values, schema: SchemaRef) -> Result<Node> {
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
}

fn scan(t: &TableScan, schema: SchemaRef) -> Node {
    let relation = t.table_name.table().to_string();
    let columns = match &t.projection {
        Some(p) => p.clone(),
        None => (0..t.source.schema().fields().len()).collect(),
    };
    Node::Source {
        relation,
        columns,
        schema,
    }
}

fn empty(e: &EmptyRelation, schema: SchemaRef) -> Result<Node> {
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
