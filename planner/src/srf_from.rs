//! Set-returning functions in `FROM`: `jsonb_each`, `jsonb_each_text`,
//! `jsonb_array_elements[_text]`, `jsonb_object_keys` (and the `json_`
//! spellings) anywhere, and `unnest` / `generate_series` after another
//! relation, whose arguments may name its columns (PostgreSQL's implicit
//! LATERAL: `FROM t, jsonb_each(t.doc) AS e`).
//!
//! DataFusion has no lateral table functions, but it runs `unnest` in a
//! select list. So the function becomes `unnest` of a list inside a
//! derived table that also carries the relation before it:
//!
//! ```sql
//! FROM docs d, jsonb_each(d.doc) AS e
//! -- becomes
//! FROM (SELECT d.*, unnest(jsonb_object_keys_list(d.doc)) AS key,
//!                   unnest(jsonb_each_values_list(d.doc)) AS value
//!       FROM docs d) AS d
//! ```
//!
//! and references to the function's alias (`e.key`, or `e` alone for a
//! one-column function) are redirected to the derived table. The output
//! columns have PostgreSQL's names: the function's OUT parameters (`key`,
//! `value`), else the alias (or the function's name); a column list
//! (`AS e(k, v)`) renames them. A derived column whose name one of the
//! relation's own columns already has makes the derived table's select
//! list ambiguous, which DataFusion refuses — never a silent mix-up.
//! Forms this does not cover (after a join, `LEFT JOIN LATERAL`) are
//! `0A000`.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, Ident, JoinConstraint, JoinOperator, Query,
    SelectItem, SetExpr, TableAlias, TableFactor,
};

use crate::names::normalize_ident;
use crate::{PlannerError, Result};

/// A set-returning function this module knows.
struct Srf {
    name: String,
    /// Each output column's default name and the list function whose
    /// `unnest` gives it (`None`: the call itself is already a list).
    columns: Vec<(String, Option<&'static str>)>,
    /// One column named after the alias (no OUT parameter name).
    scalar: bool,
}

fn srf(name: &str) -> Option<Srf> {
    use crate::jsonb::{
        EACH_KEYS, EACH_KEYS_TEXT, ELEMENTS, ELEMENTS_TEXT, KEYS, VALUES, VALUES_TEXT,
    };
    let cols = |c: &[(&str, Option<&'static str>)]| -> Vec<(String, Option<&'static str>)> {
        c.iter().map(|(n, f)| (n.to_string(), *f)).collect()
    };
    let (columns, scalar) = match name {
        "jsonb_each" | "json_each" => (
            cols(&[("key", Some(EACH_KEYS)), ("value", Some(VALUES))]),
            false,
        ),
        "jsonb_each_text" | "json_each_text" => (
            cols(&[("key", Some(EACH_KEYS_TEXT)), ("value", Some(VALUES_TEXT))]),
            false,
        ),
        "jsonb_array_elements" | "json_array_elements" => {
            (cols(&[("value", Some(ELEMENTS))]), false)
        }
        "jsonb_array_elements_text" | "json_array_elements_text" => {
            (cols(&[("value", Some(ELEMENTS_TEXT))]), false)
        }
        "jsonb_object_keys" | "json_object_keys" => (cols(&[(name, Some(KEYS))]), true),
        "unnest" => (cols(&[("unnest", None)]), true),
        "generate_series" => (cols(&[("generate_series", None)]), true),
        _ => return None,
    };
    Some(Srf {
        name: name.to_string(),
        columns,
        scalar,
    })
}

/// Where references to a function's alias go: (alias, the relation that
/// now holds its columns, its output names, whether it has one column).
type Redirect = (String, String, Vec<String>, bool);

/// A set-returning function found in `FROM`.
struct Found {
    srf: Srf,
    args: Vec<Expr>,
    alias: Option<TableAlias>,
}

/// The function a table factor calls, if it is one of ours.
fn found(t: &TableFactor) -> Result<Option<Found>> {
    let (name, args, alias) = match t {
        TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } => (name, &args.args, alias),
        TableFactor::Function {
            name,
            args,
            alias,
            with_ordinality: false,
            ..
        } => (name, args, alias),
        TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => {
            return Ok(Some(Found {
                srf: srf("unnest").expect("unnest is known"),
                args: array_exprs.clone(),
                alias: alias.clone(),
            }))
        }
        _ => return Ok(None),
    };
    let Some(last) = name.0.last().and_then(|p| p.as_ident()) else {
        return Ok(None);
    };
    let Some(srf) = srf(&normalize_ident(last)) else {
        return Ok(None);
    };
    let args = args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            _ => Err(PlannerError::not_supported(format!(
                "this argument form of {} in FROM",
                srf.name
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(Found {
        srf,
        args,
        alias: alias.clone(),
    }))
}

/// The output names of `f`: the column list, else OUT names (or the alias
/// for a one-column function without one).
fn output_names(f: &Found) -> Result<Vec<String>> {
    let mut names: Vec<String> = f.srf.columns.iter().map(|(n, _)| n.clone()).collect();
    if let Some(alias) = &f.alias {
        if f.srf.scalar {
            names[0] = normalize_ident(&alias.name);
        }
        if alias.columns.len() > names.len() {
            return Err(PlannerError::Syntax(format!(
                "{} returns {} columns, {} given",
                f.srf.name,
                names.len(),
                alias.columns.len()
            )));
        }
        for (n, c) in names.iter_mut().zip(&alias.columns) {
            *n = normalize_ident(&c.name);
        }
    }
    Ok(names)
}

/// The select items that compute `f`'s columns.
fn items(f: &Found, names: &[String]) -> Vec<String> {
    let args: Vec<String> = f.args.iter().map(ToString::to_string).collect();
    let args = args.join(", ");
    f.srf
        .columns
        .iter()
        .zip(names)
        .map(|((_, list), name)| {
            let list = list.unwrap_or(f.srf.name.as_str());
            let call = format!("{list}({args})");
            // `unnest(a)` already returns rows; the others return lists.
            let call = if list == "unnest" {
                call
            } else {
                crate::jsonb::unnest_of(list, &call)
            };
            format!("{call} AS {}", crate::names::quote_ident(name))
        })
        .collect()
}

fn derived(sql: &str, alias: &str) -> Result<TableFactor> {
    let query = crate::parse::query(sql)?;
    Ok(TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(TableAlias {
            explicit: true,
            name: Ident::with_quote('"', alias),
            columns: vec![],
            at: None,
        }),
        sample: None,
    })
}

/// The name a relation is referred to by (its alias or table name).
fn qualifier(t: &TableFactor) -> Option<String> {
    match t {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
            Some(normalize_ident(&a.name))
        }
        TableFactor::Table {
            name, args: None, ..
        } => name.0.last()?.as_ident().map(normalize_ident),
        _ => None,
    }
}

/// Rewrites the set-returning functions in the FROM of `query`'s select.
pub fn apply(query: &mut Query) -> Result<()> {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Ok(());
    };
    let mut redirects: Vec<Redirect> = Vec::new();
    let mut from = std::mem::take(&mut select.from);
    let result = (|| -> Result<()> {
        let mut i = 0;
        while i < from.len() {
            // Within one item: `rel [CROSS JOIN | JOIN … ON true] srf`.
            let mut j = 0;
            while j < from[i].joins.len() {
                let Some(f) = found(&from[i].joins[j].relation)? else {
                    j += 1;
                    continue;
                };
                let inner = match &from[i].joins[j].join_operator {
                    JoinOperator::CrossJoin(JoinConstraint::None) => true,
                    JoinOperator::Join(JoinConstraint::On(e))
                    | JoinOperator::Inner(JoinConstraint::On(e)) => is_true(e),
                    _ => false,
                };
                if !inner || j > 0 {
                    return Err(PlannerError::not_supported(format!(
                        "{} in FROM after a join or in an outer join",
                        f.srf.name
                    )));
                }
                let r = merge(&mut from[i].relation, &f)?;
                redirects.push(r);
                from[i].joins.remove(j);
            }
            // A comma item: merged into the item before it.
            if from[i].joins.is_empty() {
                if let Some(f) = found(&from[i].relation)? {
                    if i == 0 {
                        if let Some(r) = standalone(&mut from[i].relation, &f)? {
                            redirects.push(r);
                        }
                    } else if from[i - 1].joins.is_empty() {
                        let r = merge(&mut from[i - 1].relation, &f)?;
                        redirects.push(r);
                        from.remove(i);
                        continue;
                    } else {
                        return Err(PlannerError::not_supported(format!(
                            "{} in FROM after a join",
                            f.srf.name
                        )));
                    }
                }
            }
            i += 1;
        }
        Ok(())
    })();
    select.from = from;
    result?;
    if redirects.is_empty() {
        return Ok(());
    }
    // Projection items that are bare references to a function's alias keep
    // the name PostgreSQL gives them.
    if let SetExpr::Select(select) = query.body.as_mut() {
        for item in select.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(e) = item {
                if let Some(name) = reference_name(e, &redirects) {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: Ident::with_quote('"', name),
                    };
                }
            }
        }
    }
    let _ = ast::visit_expressions_mut(query, |e: &mut Expr| {
        redirect(e, &redirects);
        ControlFlow::<()>::Continue(())
    });
    Ok(())
}

/// `ON true`.
fn is_true(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, ast::Value::Boolean(true)))
}

/// A standalone function (first in FROM): one of the jsonb ones becomes a
/// derived table; DataFusion runs `unnest` and `generate_series` itself.
fn standalone(t: &mut TableFactor, f: &Found) -> Result<Option<Redirect>> {
    if matches!(f.srf.name.as_str(), "unnest" | "generate_series") {
        return Ok(None);
    }
    let names = output_names(f)?;
    let alias = match &f.alias {
        Some(a) => normalize_ident(&a.name),
        None => f.srf.name.clone(),
    };
    *t = derived(&format!("SELECT {}", items(f, &names).join(", ")), &alias)?;
    let one = names.len() == 1;
    Ok(Some((alias.clone(), alias, names, one)))
}

/// Folds `f` into relation `t`: `t` becomes a derived table of its rows
/// beside the function's, under `t`'s name. Returns the redirect for the
/// function's alias: (alias, qualifier, output names, one column).
fn merge(t: &mut TableFactor, f: &Found) -> Result<Redirect> {
    let q = qualifier(t).ok_or_else(|| {
        PlannerError::not_supported(format!(
            "{} in FROM after a relation without a name",
            f.srf.name
        ))
    })?;
    let names = output_names(f)?;
    let sql = format!(
        "SELECT {}.*, {} FROM {t}",
        crate::names::quote_ident(&q),
        items(f, &names).join(", ")
    );
    *t = derived(&sql, &q)?;
    let alias = match &f.alias {
        Some(a) => normalize_ident(&a.name),
        None => f.srf.name.clone(),
    };
    Ok((alias, q, names, f.srf.columns.len() == 1))
}

/// The output name of a projection item that is `alias` alone (a
/// one-column function) — PostgreSQL names it after the alias.
fn reference_name(e: &Expr, redirects: &[Redirect]) -> Option<String> {
    let Expr::Identifier(i) = e else { return None };
    let name = normalize_ident(i);
    redirects
        .iter()
        .any(|(alias, _, cols, one)| *one && *alias == name && cols[0] != name)
        .then_some(name)
}

/// `alias.col` → `qualifier.col`; `alias` alone (a one-column function) →
/// `qualifier.col`.
fn redirect(e: &mut Expr, redirects: &[Redirect]) {
    let to = |q: &str, c: &str| {
        Expr::CompoundIdentifier(vec![Ident::with_quote('"', q), Ident::with_quote('"', c)])
    };
    match e {
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
            let (a, c) = (normalize_ident(&parts[0]), normalize_ident(&parts[1]));
            if let Some((_, q, _, _)) = redirects
                .iter()
                .rev()
                .find(|(alias, _, cols, _)| *alias == a && cols.contains(&c))
            {
                *e = to(q, &c);
            }
        }
        Expr::Identifier(i) => {
            let a = normalize_ident(i);
            if let Some((_, q, cols, _)) = redirects
                .iter()
                .rev()
                .find(|(alias, _, cols, one)| *one && *alias == a && cols[0] != a)
            {
                *e = to(q, &cols[0]);
            }
        }
        _ => {}
    }
}
