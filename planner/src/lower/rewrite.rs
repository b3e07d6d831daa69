//! Rewrites before optimization and lowering: plan shapes DataFusion
//! would run as batch subqueries or null-aware joins, turned into shapes
//! the incremental operators maintain on their own.

use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::JoinType;
use datafusion::logical_expr::logical_plan::FetchType;
use datafusion::logical_expr::{Expr, LogicalPlan};

use crate::Result;

/// The alias of a scalar subquery joined in by [`join_scalar_subqueries`];
/// lowering puts a `SingleRow` check over it.
pub(super) const SCALAR_SUBQUERY_PREFIX: &str = "__scalar_subquery_";

/// Whether `plan` returns at most one row by construction (an aggregate
/// without GROUP BY, or LIMIT 0/1), under projections and aliases.
pub(super) fn at_most_one_row(plan: &LogicalPlan) -> bool {
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
/// A scalar subquery `Projection(f(columns)) ← Aggregate` without GROUP BY
/// (always one row): the aggregate and `f`, unaliased, if `f` is made of
/// the aggregate's columns, literals and deterministic functions only.
fn peel_projection(sub: &LogicalPlan) -> Option<(LogicalPlan, Expr)> {
    let LogicalPlan::Projection(p) = sub else {
        return None;
    };
    let [expr] = p.expr.as_slice() else {
        return None;
    };
    let LogicalPlan::Aggregate(a) = p.input.as_ref() else {
        return None;
    };
    if !a.group_expr.is_empty() {
        return None;
    }
    let expr = expr.clone().unalias();
    if matches!(expr, Expr::Column(_)) {
        // Nothing to evaluate: the subquery is joined as it is.
        return None;
    }
    let plain = !expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
            ) || e.is_volatile_node())
        })
        .unwrap_or(true);
    plain.then(|| (p.input.as_ref().clone(), expr))
}

/// For queries run as batch queries: `(SELECT f(aggregates) FROM …)`
/// becomes `f((SELECT aggregate₁ FROM …), …)`, so `f` is evaluated where
/// the value is used — PostgreSQL evaluates such a subquery only when a row
/// needs it, where DataFusion evaluates every uncorrelated subquery first
/// (`HAVING count(*) >= (SELECT count(*) / count(DISTINCT a) FROM t)` over
/// an empty table divided by zero). Views join the aggregates instead
/// ([`join_scalar_subqueries`]).
pub fn split_scalar_subqueries(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Projection, Subquery};
    let out = plan.transform_up(|p| {
        p.map_expressions(|e| {
            e.transform_up(|e| {
                let Expr::ScalarSubquery(s) = &e else {
                    return Ok(Transformed::no(e));
                };
                if !s.outer_ref_columns.is_empty() {
                    return Ok(Transformed::no(e));
                }
                let Some((aggregate, expr)) = peel_projection(&s.subquery) else {
                    return Ok(Transformed::no(e));
                };
                let aggregate = Arc::new(aggregate);
                let spans = s.spans.clone();
                expr.transform_up(|e| match e {
                    Expr::Column(c) => {
                        let one = Projection::try_new(vec![Expr::Column(c)], aggregate.clone())?;
                        Ok(Transformed::yes(Expr::ScalarSubquery(Subquery {
                            subquery: Arc::new(LogicalPlan::Projection(one)),
                            outer_ref_columns: vec![],
                            spans: spans.clone(),
                        })))
                    }
                    e => Ok(Transformed::no(e)),
                })
            })
        })
    })?;
    Ok(out.data)
}

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
                    // `(SELECT f(aggregates) FROM …)`: the aggregates are
                    // joined and `f` is computed where the value is used,
                    // so it runs only for rows that use it — as PostgreSQL
                    // evaluates the subquery only when a row needs it
                    // (`count(*) / count(x)` over no rows fails no view).
                    if let Some((inner, expr)) = peel_projection(&s.subquery) {
                        // The aggregates get names of their own (an outer
                        // aggregate's `count(*)` has the same name).
                        let columns = inner.schema().columns();
                        let renamed: Vec<Expr> = columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| Expr::Column(c.clone()).alias(format!("{alias}_{i}")))
                            .collect();
                        let sub = LogicalPlanBuilder::from(inner)
                            .project(renamed)?
                            .alias(alias.as_str())?
                            .build()?;
                        builder = builder.clone().join_on(
                            sub,
                            JoinType::Left,
                            vec![datafusion::logical_expr::lit(true)],
                        )?;
                        let requalified = expr.transform_up(|e| match e {
                            Expr::Column(c) => {
                                let i = columns.iter().position(|x| *x == c).ok_or_else(|| {
                                    datafusion::error::DataFusionError::Internal(format!(
                                        "{c} is not a column of the subquery"
                                    ))
                                })?;
                                Ok(Transformed::yes(Expr::Column(
                                    datafusion::common::Column::new(
                                        Some(alias.clone()),
                                        format!("{alias}_{i}"),
                                    ),
                                )))
                            }
                            e => Ok(Transformed::no(e)),
                        })?;
                        return Ok(Transformed::yes(requalified.data));
                    }
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
