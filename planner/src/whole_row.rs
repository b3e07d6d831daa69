//! Whole-row references in the JSON functions: `row_to_json(t)`,
//! `to_jsonb(t)`, `to_json(t)`, `jsonb_agg(t)`, `json_agg(t)` where `t`
//! names a relation of the query's FROM. DataFusion has no row values, so
//! the row is spelled out as `jsonb_build_object('a', t.a, 'b', t.b, …)`
//! from the relation's columns: a table's or view's from the catalog, a
//! derived table's from its column list or its select list's names.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Query, SelectItem, SetExpr,
    Statement, TableFactor, VisitMut, VisitorMut,
};

use crate::names::{normalize_ident, quote_ident};
use crate::Result;

const FUNCTIONS: &[&str] = &[
    "row_to_json",
    "to_json",
    "to_jsonb",
    "json_agg",
    "jsonb_agg",
];

/// Rewrites the whole-row arguments in `stmt`; `columns(name)` gives a
/// catalog relation's column names.
pub fn apply(stmt: &mut Statement, columns: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<()> {
    let mut v = Rows { columns };
    match stmt.visit(&mut v) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Rows<'a> {
    columns: &'a dyn Fn(&str) -> Option<Vec<String>>,
}

/// The output names of a derived table's query, if each item has one.
fn query_names(q: &Query) -> Option<Vec<String>> {
    let SetExpr::Select(s) = q.body.as_ref() else {
        return None;
    };
    s.projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(normalize_ident(i)),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) => p.last().map(normalize_ident),
            _ => None,
        })
        .collect()
}

impl Rows<'_> {
    /// Relation name → its columns, for the relations of `s`'s FROM.
    fn relations(&self, s: &ast::Select) -> HashMap<String, Vec<String>> {
        let mut out = HashMap::new();
        for t in &s.from {
            for f in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
                match f {
                    TableFactor::Table {
                        name,
                        alias,
                        args: None,
                        ..
                    } => {
                        let Some(table) = name.0.last().and_then(|p| p.as_ident()) else {
                            continue;
                        };
                        let table = normalize_ident(table);
                        let Some(mut cols) = (self.columns)(&table) else {
                            continue;
                        };
                        let key = match alias {
                            Some(a) => {
                                for (c, n) in cols.iter_mut().zip(&a.columns) {
                                    *c = normalize_ident(&n.name);
                                }
                                normalize_ident(&a.name)
                            }
                            None => table,
                        };
                        out.insert(key, cols);
                    }
                    TableFactor::Derived {
                        subquery,
                        alias: Some(a),
                        ..
                    } => {
                        let cols = if a.columns.is_empty() {
                            query_names(subquery)
                        } else {
                            Some(a.columns.iter().map(|c| normalize_ident(&c.name)).collect())
                        };
                        if let Some(cols) = cols {
                            out.insert(normalize_ident(&a.name), cols);
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// `jsonb_build_object('a', t.a, …)` for relation `t` with `cols`.
fn build_object(t: &str, cols: &[String]) -> Result<Expr> {
    let pairs: Vec<String> = cols
        .iter()
        .map(|c| {
            format!(
                "'{}', {}.{}",
                c.replace('\'', "''"),
                quote_ident(t),
                quote_ident(c)
            )
        })
        .collect();
    Ok(crate::parse::expr(&format!(
        "jsonb_build_object({})",
        pairs.join(", ")
    ))?)
}

impl VisitorMut for Rows<'_> {
    type Break = crate::PlannerError;

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<Self::Break> {
        let SetExpr::Select(s) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let relations = self.relations(s);
        if relations.is_empty() {
            return ControlFlow::Continue(());
        }
        let mut failed = None;
        let mut rewrite = |e: &mut Expr| {
            let Expr::Function(f) = e else {
                return ControlFlow::<()>::Continue(());
            };
            let name = crate::names::last_name(&f.name);
            if !FUNCTIONS.contains(&name.as_str()) {
                return ControlFlow::Continue(());
            }
            let FunctionArguments::List(list) = &mut f.args else {
                return ControlFlow::Continue(());
            };
            let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(i)))] =
                list.args.as_mut_slice()
            else {
                return ControlFlow::Continue(());
            };
            let rel = normalize_ident(i);
            // A column of that name wins, as in PostgreSQL.
            if relations.values().any(|cols| cols.contains(&rel)) {
                return ControlFlow::Continue(());
            }
            if let Some(cols) = relations.get(&rel) {
                match build_object(&rel, cols) {
                    Ok(object) => {
                        list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(object))];
                    }
                    Err(err) => failed = Some(err),
                }
            }
            ControlFlow::Continue(())
        };
        for item in s.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                let _ = ast::visit_expressions_mut(e, &mut rewrite);
            }
        }
        if let Some(w) = s.selection.as_mut() {
            let _ = ast::visit_expressions_mut(w, &mut rewrite);
        }
        if let Some(h) = s.having.as_mut() {
            let _ = ast::visit_expressions_mut(h, &mut rewrite);
        }
        match failed {
            Some(e) => ControlFlow::Break(e),
            None => ControlFlow::Continue(()),
        }
    }
}
