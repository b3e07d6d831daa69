//! Correlated scalar subqueries that pick one row: `(SELECT x FROM t
//! WHERE t.k > o.k ORDER BY t.k LIMIT 1)`. DataFusion decorrelates
//! aggregates but not `ORDER BY … LIMIT 1`, so the subquery becomes the
//! aggregate that means the same — `(SELECT first_value(x ORDER BY t.k)
//! FROM t WHERE t.k > o.k)`, NULL over no rows as the LIMIT form is —
//! which the aggregate decorrelation (DataFusion's, or crate::subquery's
//! for other correlations) then plans. ORDER BY keys keep PostgreSQL's
//! NULL placement (last ascending, first descending). Uncorrelated
//! subqueries are left as they are.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, LimitClause, OrderByKind, Query, SelectItem, SetExpr, TableFactor, Value,
};

use crate::names::normalize_ident;
use crate::Result;

/// Aggregate names a one-row pick must not already use.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "jsonb_agg",
    "json_agg",
    "first_value",
    "last_value",
    "stddev",
    "variance",
    "mode",
];

/// The `first_value` form of `q`, if it is a correlated one-row pick.
pub fn rewrite(q: &Query) -> Result<Option<Query>> {
    let one = matches!(
        &q.limit_clause,
        Some(LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by })
            if limit_by.is_empty() && matches!(&v.value, Value::Number(n, _) if n == "1")
    );
    if !one || q.fetch.is_some() || q.with.is_some() {
        return Ok(None);
    }
    let SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    let plain_group =
        matches!(&s.group_by, ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if s.distinct.is_some() || !plain_group || s.having.is_some() || s.projection.len() != 1 {
        return Ok(None);
    }
    let (expr, alias) = match &s.projection[0] {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
        _ => return Ok(None),
    };
    if aggregates(expr) {
        return Ok(None);
    }
    // Correlated: a column qualified by a name the subquery's FROM does
    // not define.
    let mut local: HashSet<String> = HashSet::new();
    for t in &s.from {
        for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            match f {
                TableFactor::Table { name, alias, .. } => {
                    if let Some(a) = alias {
                        local.insert(normalize_ident(&a.name));
                    } else if let Some(i) = name.0.last().and_then(|p| p.as_ident()) {
                        local.insert(normalize_ident(i));
                    }
                }
                TableFactor::Derived { alias: Some(a), .. } => {
                    local.insert(normalize_ident(&a.name));
                }
                _ => return Ok(None),
            }
        }
    }
    let mut correlated = false;
    let mut check = |e: &Expr| {
        let _ = ast::visit_expressions(e, |e: &Expr| {
            if let Expr::CompoundIdentifier(parts) = e {
                if parts.len() == 2 && !local.contains(&normalize_ident(&parts[0])) {
                    correlated = true;
                }
            }
            ControlFlow::<()>::Continue(())
        });
    };
    check(expr);
    if let Some(w) = &s.selection {
        check(w);
    }
    if !correlated {
        return Ok(None);
    }
    let keys = match &q.order_by {
        None => String::new(),
        Some(o) => match &o.kind {
            OrderByKind::Expressions(list) => {
                let keys: Vec<String> = list
                    .iter()
                    .map(|k| {
                        let desc = k.options.asc == Some(false);
                        let nulls_first = k.options.nulls_first.unwrap_or(desc);
                        format!(
                            "{} {} NULLS {}",
                            k.expr,
                            if desc { "DESC" } else { "ASC" },
                            if nulls_first { "FIRST" } else { "LAST" }
                        )
                    })
                    .collect();
                format!(" ORDER BY {}", keys.join(", "))
            }
            OrderByKind::All(_) => return Ok(None),
        },
    };
    let picked = crate::parse::expr(&format!("first_value({expr}{keys})"))?;
    let mut out = q.clone();
    out.order_by = None;
    out.limit_clause = None;
    if let SetExpr::Select(s) = out.body.as_mut() {
        s.projection = vec![match alias {
            Some(a) => SelectItem::ExprWithAlias {
                expr: picked,
                alias: a.clone(),
            },
            None => SelectItem::UnnamedExpr(picked),
        }];
    }
    Ok(Some(out))
}

/// Whether `e` calls an aggregate or a window function.
fn aggregates(e: &Expr) -> bool {
    let mut found = false;
    let _ = ast::visit_expressions(e, |e: &Expr| {
        if let Expr::Function(f) = e {
            let name = crate::names::last_name(&f.name);
            if f.over.is_some() || AGGREGATES.contains(&name.as_str()) {
                found = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}
