//! `x op ANY (subquery)` / `x op ALL (subquery)` over the outer query's own
//! table.
//!
//! DataFusion 55 rewrites a set comparison into EXISTS subqueries filtered
//! on `outer x op inner column`; decorrelating them turns the outer
//! reference back into a plain column, and when both sides read the same
//! unaliased table the two columns have one name (`o.amount = o.amount`),
//! so the comparison is made of the inner row with itself:
//! `amount = ANY (SELECT amount FROM o WHERE customer = 'bob')` kept every
//! row of `o`. [`AliasSetComparisons`] gives every such subquery a name of
//! its own before that happens, which is what aliasing the inner table by
//! hand did.
//!
//! DataFusion plans `EXISTS (subquery)` only as a filter. In a select list
//! (or any other place) [`AliasSetComparisons`] also rewrites it to
//! `(SELECT count(*) FROM subquery) > 0`, a scalar subquery DataFusion
//! decorrelates (when the correlation is an equality) with a count of 0
//! for outer rows no inner row matches.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::{BinaryExpr, Case, Exists, SetComparison, SetQuantifier};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    lit, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, Subquery,
};
use datafusion::optimizer::AnalyzerRule;

const PREFIX: &str = "__freshet_set_cmp_";

#[derive(Debug, Default)]
pub struct AliasSetComparisons;

impl AnalyzerRule for AliasSetComparisons {
    fn name(&self) -> &str {
        "freshet_alias_set_comparisons"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut next = 0usize;
        plan.transform_up_with_subqueries(|node| {
            let in_filter = matches!(node, LogicalPlan::Filter(_));
            let outer = merge_schema(&node.inputs());
            node.map_expressions(|e| {
                e.transform_up(|e| {
                    let e = alias(e, &mut next)?;
                    if in_filter {
                        Ok(e)
                    } else {
                        e.transform_data(|e| {
                            let e = set_comparison_as_exists(e, &outer)?;
                            if e.transformed {
                                Ok(Transformed::yes(e.data.transform_up(exists_as_count)?.data))
                            } else {
                                exists_as_count(e.data)
                            }
                        })
                    }
                })
            })
        })
        .map(|t| t.data)
    }
}

fn alias(expr: Expr, next: &mut usize) -> Result<Transformed<Expr>> {
    let Expr::SetComparison(cmp) = expr else {
        return Ok(Transformed::no(expr));
    };
    if matches!(cmp.subquery.subquery.as_ref(),
        LogicalPlan::SubqueryAlias(a) if a.alias.table().starts_with(PREFIX))
    {
        return Ok(Transformed::no(Expr::SetComparison(cmp)));
    }
    let SetComparison {
        expr,
        subquery,
        op,
        quantifier,
    } = cmp;
    *next += 1;
    let aliased = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .alias(format!("{PREFIX}{next}"))?
        .build()?;
    let subquery = Subquery {
        subquery: Arc::new(aliased),
        outer_ref_columns: subquery.outer_ref_columns,
        spans: subquery.spans,
    };
    Ok(Transformed::yes(Expr::SetComparison(SetComparison::new(
        expr, subquery, op, quantifier,
    ))))
}

/// `x op ANY/ALL (q)` outside a filter as DataFusion's optimizer would
/// rewrite it (`CASE WHEN EXISTS (q WHERE x op c IS TRUE) …`), but in the
/// analyzer, so its EXISTS become counts DataFusion can plan there.
fn set_comparison_as_exists(expr: Expr, outer: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::SetComparison(SetComparison {
        expr,
        subquery,
        op,
        quantifier,
    }) = expr
    else {
        return Ok(Transformed::no(expr));
    };
    let left = expr.transform_up(|e| match e {
        Expr::Column(c) => {
            let field = outer.field_from_column(&c)?;
            Ok(Transformed::yes(Expr::OuterReferenceColumn(
                Arc::clone(field),
                c,
            )))
        }
        e => Ok(Transformed::no(e)),
    })?;
    let right = Expr::Column(Column::from(subquery.subquery.schema().qualified_field(0)));
    let comparison = Expr::BinaryExpr(BinaryExpr::new(Box::new(left.data), op, Box::new(right)));
    let exists = |filter: Expr| -> Result<Expr> {
        let plan = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
            .filter(filter)?
            .build()?;
        let outer_ref_columns = plan.all_out_ref_exprs();
        Ok(Expr::Exists(Exists {
            subquery: Subquery {
                subquery: Arc::new(plan),
                outer_ref_columns,
                spans: subquery.spans.clone(),
            },
            negated: false,
        }))
    };
    let null = Expr::Literal(ScalarValue::Boolean(None), None);
    let decided = match quantifier {
        SetQuantifier::Any => (exists(comparison.clone().is_true())?, lit(true), lit(false)),
        SetQuantifier::All => (
            exists(comparison.clone().is_false())?,
            lit(false),
            lit(true),
        ),
    };
    let unknown = exists(comparison.is_null())?;
    Ok(Transformed::yes(Expr::Case(Case {
        expr: None,
        when_then_expr: vec![
            (Box::new(decided.0), Box::new(decided.1)),
            (Box::new(unknown), Box::new(null)),
        ],
        else_expr: Some(Box::new(decided.2)),
    })))
}

/// `EXISTS (q)` as `(SELECT count(*) FROM q) > 0`, `NOT EXISTS` as `= 0`.
fn exists_as_count(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::Exists(Exists { subquery, negated }) = expr else {
        return Ok(Transformed::no(expr));
    };
    let counted = LogicalPlanBuilder::from(subquery.subquery.as_ref().clone())
        .aggregate(Vec::<Expr>::new(), vec![count_all()])?
        .build()?;
    let count = Expr::ScalarSubquery(Subquery {
        subquery: Arc::new(counted),
        outer_ref_columns: subquery.outer_ref_columns,
        spans: subquery.spans,
    });
    Ok(Transformed::yes(if negated {
        count.eq(lit(0i64))
    } else {
        count.gt(lit(0i64))
    }))
}

/// The rule, for the analyzer's list.
pub fn rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(AliasSetComparisons)
}

/// Correlated aggregate subqueries whose correlation is not an equality.
///
/// DataFusion decorrelates `(SELECT agg FROM r WHERE p)` only when the
/// outer references in `p` are equalities it can group by; `(SELECT
/// count(*) FROM t x WHERE x.c > t.c)` (and `EXISTS`, which
/// [`AliasSetComparisons`] made such a count outside filters) was refused.
/// [`DecorrelateAggregates`] numbers the outer rows, left-joins them to `r`
/// on `p` and computes the aggregates per outer row (grouped by its number
/// and columns; each aggregate filtered to the rows the join found, so an
/// outer row with none gets what the aggregate gives over no rows: 0 for
/// count, NULL for the rest).
/// Ad-hoc queries only need it: views refuse such subqueries.
#[derive(Debug, Default)]
pub struct DecorrelateAggregates;

impl AnalyzerRule for DecorrelateAggregates {
    fn name(&self) -> &str {
        "freshet_decorrelate_aggregates"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mut next = 0usize;
        plan.transform_up_with_subqueries(|node| decorrelate(node, &mut next))
            .map(|t| t.data)
    }
}

/// A subquery of the shape [`DecorrelateAggregates`] takes apart:
/// `[Projection top] Aggregate(no GROUP BY) [Projection…] Filter(p) r`.
struct Shape {
    top: Option<Vec<Expr>>,
    aggregates: Vec<Expr>,
    /// Projections between the aggregate and the filter, lowest first.
    between: Vec<Vec<Expr>>,
    predicate: Expr,
    input: LogicalPlan,
}

fn shape(plan: &LogicalPlan) -> Option<Shape> {
    let (top, rest) = match plan {
        LogicalPlan::Projection(p) => (Some(p.expr.clone()), p.input.as_ref()),
        other => (None, other),
    };
    let LogicalPlan::Aggregate(agg) = rest else {
        return None;
    };
    if !agg.group_expr.is_empty() {
        return None;
    }
    let mut between = Vec::new();
    let mut below = agg.input.as_ref();
    while let LogicalPlan::Projection(p) = below {
        between.push(p.expr.clone());
        below = p.input.as_ref();
    }
    between.reverse();
    let LogicalPlan::Filter(filter) = below else {
        return None;
    };
    let outer_free = |exprs: &[Expr]| exprs.iter().all(|e| !e.contains_outer());
    let only_equalities = split_conjunction(&filter.predicate)
        .into_iter()
        .filter(|c| c.contains_outer())
        .all(|c| matches!(c, Expr::BinaryExpr(b) if b.op == Operator::Eq));
    let fits = filter.predicate.contains_outer()
        && !only_equalities
        && top.as_deref().is_none_or(outer_free)
        && outer_free(&agg.aggr_expr)
        && between.iter().all(|p| outer_free(p))
        && filter.input.all_out_ref_exprs().is_empty();
    fits.then(|| Shape {
        top,
        aggregates: agg.aggr_expr.clone(),
        between,
        predicate: filter.predicate.clone(),
        input: filter.input.as_ref().clone(),
    })
}

fn decorrelate(node: LogicalPlan, next: &mut usize) -> Result<Transformed<LogicalPlan>> {
    if !matches!(node, LogicalPlan::Projection(_) | LogicalPlan::Filter(_)) {
        return Ok(Transformed::no(node));
    }
    let mut found = None;
    node.apply_expressions(|e| {
        e.apply(|e| {
            if let Expr::ScalarSubquery(sq) = e {
                if let Some(s) = shape(&sq.subquery) {
                    found = Some((sq.clone(), s));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
    })?;
    let Some((subquery, shape)) = found else {
        return Ok(Transformed::no(node));
    };
    *next += 1;
    let k = *next;
    let (rid, mark, value) = (
        format!("__freshet_rid_{k}"),
        format!("__freshet_mark_{k}"),
        format!("__freshet_subquery_{k}"),
    );
    let input = node.inputs()[0].clone();
    let original: Vec<Expr> = input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();

    // The outer rows, numbered.
    let number = row_number();
    let number_name = number.schema_name().to_string();
    let mut numbered_cols = original.clone();
    numbered_cols.push(Expr::Column(Column::from_name(number_name)).alias(&rid));
    let numbered = LogicalPlanBuilder::from(input)
        .window(vec![number])?
        .project(numbered_cols)?
        .build()?;

    // Each outer row beside the inner rows its predicate finds.
    let mut inner_cols: Vec<Expr> = shape
        .input
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    inner_cols.push(lit(true).alias(&mark));
    let inner = LogicalPlanBuilder::from(shape.input)
        .project(inner_cols)?
        .build()?;
    let predicate = shape
        .predicate
        .transform(|e| match e {
            Expr::OuterReferenceColumn(_, c) => Ok(Transformed::yes(Expr::Column(c))),
            e => Ok(Transformed::no(e)),
        })?
        .data;
    let mut plan = LogicalPlanBuilder::from(numbered)
        .join_on(inner, JoinType::Left, vec![predicate])?
        .build()?;
    // The outer row's columns ride along (each outer row is evaluated once:
    // numbering it twice need not give the same numbers).
    let carried = |mut exprs: Vec<Expr>| {
        exprs.extend(original.iter().cloned());
        exprs.push(Expr::Column(Column::from_name(&rid)));
        exprs.push(Expr::Column(Column::from_name(&mark)));
        exprs
    };
    for exprs in shape.between {
        plan = LogicalPlanBuilder::from(plan)
            .project(carried(exprs))?
            .build()?;
    }
    // The aggregates per outer row, over the rows the join found.
    let found_row = Expr::Column(Column::from_name(&mark)).is_not_null();
    let aggregates = shape
        .aggregates
        .into_iter()
        .map(|e| {
            let name = e.schema_name().to_string();
            let filtered = e.unalias().transform(|e| match e {
                Expr::AggregateFunction(mut f) => {
                    let filter = match f.params.filter.take() {
                        Some(old) => old.and(found_row.clone()),
                        None => found_row.clone(),
                    };
                    f.params.filter = Some(Box::new(filter));
                    Ok(Transformed::new(
                        Expr::AggregateFunction(f),
                        true,
                        TreeNodeRecursion::Jump,
                    ))
                }
                e => Ok(Transformed::no(e)),
            })?;
            Ok(filtered.data.alias(name))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut group = vec![Expr::Column(Column::from_name(&rid))];
    group.extend(original.iter().cloned());
    let grouped = LogicalPlanBuilder::from(plan)
        .aggregate(group.clone(), aggregates)?
        .build()?;
    let result = match shape.top {
        Some(mut top) => top.swap_remove(0),
        None => Expr::Column(grouped.schema().columns()[group.len()].clone()),
    };
    let mut exprs = original.clone();
    exprs.push(result.alias(&value));
    let joined = LogicalPlanBuilder::from(grouped).project(exprs)?.build()?;

    // The node again, reading the value where it read the subquery.
    let target = Expr::ScalarSubquery(subquery);
    let replaced = Expr::Column(Column::from_name(&value));
    let plan = match node {
        LogicalPlan::Projection(p) => {
            let exprs = p
                .expr
                .into_iter()
                .map(|e| {
                    let name = e.schema_name().to_string();
                    let new = e.transform(|e| {
                        Ok(if e == target {
                            Transformed::yes(replaced.clone())
                        } else {
                            Transformed::no(e)
                        })
                    })?;
                    Ok(
                        if new.transformed && new.data.schema_name().to_string() != name {
                            new.data.alias(name)
                        } else {
                            new.data
                        },
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            LogicalPlanBuilder::from(joined).project(exprs)?.build()?
        }
        LogicalPlan::Filter(f) => {
            let predicate = f
                .predicate
                .transform(|e| {
                    Ok(if e == target {
                        Transformed::yes(replaced.clone())
                    } else {
                        Transformed::no(e)
                    })
                })?
                .data;
            LogicalPlanBuilder::from(joined)
                .filter(predicate)?
                .project(original)?
                .build()?
        }
        _ => unreachable!("checked above"),
    };
    // Another subquery in the same node goes next.
    let again = decorrelate(plan, next)?;
    Ok(Transformed::yes(again.data))
}

/// The decorrelation rule, for the end of the analyzer's list.
pub fn decorrelate_rule() -> Arc<dyn AnalyzerRule + Send + Sync> {
    Arc::new(DecorrelateAggregates)
}
