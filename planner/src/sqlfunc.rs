//! `CREATE FUNCTION … LANGUAGE sql` scalar functions, inlined.
//!
//! A call `f(x, y)` becomes `CAST((body) AS returns)` with the parameters
//! (by name or `$n`) replaced by the arguments, before DataFusion plans the
//! statement, so queries and views see an ordinary expression (PostgreSQL
//! inlines simple SQL functions the same way). A view records the functions
//! it calls: they cannot be dropped or replaced under it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    self, CreateFunction, CreateFunctionBody, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, FunctionReturnType, SetExpr, Statement, Value, VisitMut, VisitorMut,
};

use crate::catalog::FunctionDef;
use crate::names::normalize_ident;
use crate::{PlannerError, Result};

/// How deep functions may call functions.
const MAX_DEPTH: usize = 16;

/// The catalog entry of `CREATE FUNCTION`, or why it is refused.
pub fn definition(cf: &CreateFunction) -> Result<FunctionDef> {
    let name = cf
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .ok_or_else(|| PlannerError::Syntax("a function name".into()))?;
    match &cf.language {
        Some(l) if l.value.eq_ignore_ascii_case("sql") => {}
        Some(l) => {
            return Err(PlannerError::not_supported(format!(
                "CREATE FUNCTION … LANGUAGE {} (only LANGUAGE sql)",
                l.value
            )))
        }
        None => {
            if !matches!(
                cf.function_body,
                Some(CreateFunctionBody::Return(_) | CreateFunctionBody::AsReturnExpr(_))
            ) {
                return Err(PlannerError::Syntax("no language specified".into()));
            }
        }
    }
    let returns = match &cf.return_type {
        Some(FunctionReturnType::DataType(t)) => t.to_string(),
        Some(FunctionReturnType::SetOf(_)) => {
            return Err(PlannerError::not_supported(
                "set-returning SQL functions (RETURNS SETOF)",
            ))
        }
        None => {
            return Err(PlannerError::not_supported(
                "SQL functions without RETURNS (procedures, RETURNS TABLE)",
            ))
        }
    };
    let mut params = Vec::new();
    for a in cf.args.iter().flatten() {
        if a.default_expr.is_some() {
            return Err(PlannerError::not_supported("function parameter defaults"));
        }
        if matches!(a.mode, Some(ast::ArgMode::Out | ast::ArgMode::InOut)) {
            return Err(PlannerError::not_supported("OUT parameters"));
        }
        params.push((
            a.name.as_ref().map(normalize_ident),
            a.data_type.to_string(),
        ));
    }
    let body = match &cf.function_body {
        Some(CreateFunctionBody::Return(e) | CreateFunctionBody::AsReturnExpr(e)) => e.to_string(),
        Some(
            CreateFunctionBody::AsBeforeOptions { body, .. }
            | CreateFunctionBody::AsAfterOptions(body),
        ) => {
            let text = match body {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s)
                    | Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                        s.clone()
                    }
                    _ => return Err(PlannerError::Syntax("a function body is a string".into())),
                },
                _ => return Err(PlannerError::Syntax("a function body is a string".into())),
            };
            body_expr(&text)?
        }
        _ => return Err(PlannerError::Syntax("a function body".into())),
    };
    Ok(FunctionDef {
        name,
        params,
        returns,
        body,
        owner: None,
    })
}

/// A SQL function body (`SELECT a + b`, `SELECT x FROM t WHERE …;`) as
/// one expression.
fn body_expr(text: &str) -> Result<String> {
    let mut stmts = crate::parse::statements(text)?;
    let (Some(Statement::Query(q)), true) = (stmts.pop(), stmts.is_empty()) else {
        return Err(PlannerError::not_supported(
            "SQL function bodies other than one SELECT",
        ));
    };
    if let SetExpr::Select(s) = q.body.as_ref() {
        let plain = s.from.is_empty()
            && s.selection.is_none()
            && s.group_by == ast::GroupByExpr::Expressions(vec![], vec![])
            && s.having.is_none()
            && q.order_by.is_none()
            && q.limit_clause.is_none()
            && q.with.is_none();
        if plain {
            if let [ast::SelectItem::UnnamedExpr(e)
            | ast::SelectItem::ExprWithAlias { expr: e, .. }] = s.projection.as_slice()
            {
                return Ok(e.to_string());
            }
        }
    }
    Ok(format!("({q})"))
}

/// The body of `def` with its parameters replaced by `args`.
fn expand(def: &FunctionDef, args: &[Expr]) -> Result<Expr> {
    let mut body = crate::parse::expr(&def.body)?;
    struct Params<'a> {
        names: Vec<Option<String>>,
        args: &'a [Expr],
    }
    impl VisitorMut for Params<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let i = match e {
                Expr::Identifier(id) if id.quote_style.is_none() => {
                    let n = id.value.to_ascii_lowercase();
                    self.names
                        .iter()
                        .position(|p| p.as_deref() == Some(n.as_str()))
                }
                Expr::Value(v) => match &v.value {
                    Value::Placeholder(p) => p
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1)),
                    _ => None,
                },
                _ => None,
            };
            if let Some(arg) = i.and_then(|i| self.args.get(i)) {
                *e = Expr::Nested(Box::new(arg.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    let _ = body.visit(&mut Params {
        names: def.params.iter().map(|(n, _)| n.clone()).collect(),
        args,
    });
    Ok(crate::parse::expr(&format!(
        "CAST(({body}) AS {})",
        def.returns
    ))?)
}

/// A call of one of `functions` in `e`: the function and its arguments.
fn call<'a>(
    e: &Expr,
    functions: &'a BTreeMap<String, Arc<FunctionDef>>,
) -> Option<(&'a Arc<FunctionDef>, Vec<Expr>)> {
    let Expr::Function(f) = e else { return None };
    let [part] = f.name.0.as_slice() else {
        return None;
    };
    let def = functions.get(&normalize_ident(part.as_ident()?))?;
    let args = match &f.args {
        FunctionArguments::None => vec![],
        FunctionArguments::List(l) => l
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?,
        FunctionArguments::Subquery(_) => return None,
    };
    Some((def, args))
}

/// Inlines every call of `functions` in `stmt`; the names of the functions
/// it called.
pub fn inline(
    stmt: &mut Statement,
    functions: &BTreeMap<String, Arc<FunctionDef>>,
) -> Result<BTreeSet<String>> {
    if functions.is_empty() {
        return Ok(BTreeSet::new());
    }
    struct Inliner<'a> {
        functions: &'a BTreeMap<String, Arc<FunctionDef>>,
        used: BTreeSet<String>,
    }
    impl Inliner<'_> {
        fn rewrite(&mut self, e: &mut Expr, depth: usize) -> Result<()> {
            let Some((def, args)) = call(e, self.functions) else {
                return Ok(());
            };
            if depth > MAX_DEPTH {
                return Err(PlannerError::not_supported(format!(
                    "SQL functions nested more than {MAX_DEPTH} deep (is {} recursive?)",
                    def.name
                )));
            }
            if args.len() != def.params.len() {
                return Err(PlannerError::UndefinedFunction(format!(
                    "function {}({}) does not exist: it takes {} arguments",
                    def.name,
                    args.iter().map(|_| "?").collect::<Vec<_>>().join(", "),
                    def.params.len()
                )));
            }
            self.used.insert(def.name.clone());
            let mut body = expand(def, &args)?;
            // The body may call functions too.
            let mut inner = Inliner {
                functions: self.functions,
                used: BTreeSet::new(),
            };
            let mut failed = None;
            let _ = body.visit(&mut Deep {
                inliner: &mut inner,
                depth: depth + 1,
                failed: &mut failed,
            });
            if let Some(err) = failed {
                return Err(err);
            }
            self.used.extend(inner.used);
            *e = body;
            Ok(())
        }
    }
    struct Deep<'a, 'b> {
        inliner: &'a mut Inliner<'b>,
        depth: usize,
        failed: &'a mut Option<PlannerError>,
    }
    impl VisitorMut for Deep<'_, '_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match self.inliner.rewrite(e, self.depth) {
                Ok(()) => ControlFlow::Continue(()),
                Err(err) => {
                    *self.failed = Some(err);
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut inliner = Inliner {
        functions,
        used: BTreeSet::new(),
    };
    let mut failed = None;
    let _ = stmt.visit(&mut Deep {
        inliner: &mut inliner,
        depth: 0,
        failed: &mut failed,
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(inliner.used),
    }
}

/// A query that plans `def`'s body with typed NULL arguments: what CREATE
/// FUNCTION checks before it stores the function.
pub fn check_query(def: &FunctionDef) -> Result<Statement> {
    let args: Vec<Expr> = def
        .params
        .iter()
        .map(|(_, t)| crate::parse::expr(&format!("CAST(NULL AS {t})")))
        .collect::<std::result::Result<_, _>>()?;
    let e = expand(def, &args)?;
    let mut stmts = crate::parse::statements(&format!("SELECT {e}"))?;
    Ok(stmts.pop().expect("one statement"))
}
