//! Postgres' output column names.
//!
//! DataFusion names an unaliased select item after its whole expression
//! (`count(*)`, `Int64(1)`); Postgres names it after the function, the
//! column, or the cast type, and calls anything else `?column?`
//! (`FigureColname` in Postgres' parser). Clients look columns up by these
//! names, so the outermost select list is aliased the Postgres way before
//! DataFusion plans it.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Ident, Query, Select, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

/// Separates a column's Postgres name from a suffix that only keeps
/// DataFusion's output names unique; the wire layer cuts the suffix off.
pub const UNIQUE_SUFFIX: char = '\u{1f}';

/// Names the select items of every query in `stmt` the Postgres way.
pub fn apply_all(stmt: &mut Statement) {
    struct V;
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            apply(q);
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut V);
}

/// Aliases the unaliased select items of `query`'s body.
pub fn apply(query: &mut Query) {
    apply_set_expr(query.body.as_mut());
}

fn apply_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            apply_set_expr(left);
            apply_set_expr(right);
        }
        SetExpr::Select(select) => apply_select(select),
        _ => {}
    }
}

fn apply_select(select: &mut Select) {
    // Each item's output name: its alias, the Postgres name of its
    // expression, or a plain column reference's own (which DataFusion
    // already gives it).
    let names: Vec<Option<(String, bool)>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => figure(e)
                .map(|n| (n, true))
                .or_else(|| column_name(e).map(|n| (n, false))),
            SelectItem::ExprWithAlias { alias, .. } => {
                Some((crate::names::normalize_ident(alias), false))
            }
            _ => None,
        })
        .collect();
    for (i, item) in select.projection.iter_mut().enumerate() {
        let Some((name, figured)) = &names[i] else {
            continue;
        };
        // DataFusion refuses duplicate output names where Postgres allows
        // them: later duplicates get a suffix the wire layer removes.
        let repeated = names[..i]
            .iter()
            .any(|n| n.as_ref().map(|(n, _)| n) == Some(name));
        let alias = if repeated {
            format!("{name}{UNIQUE_SUFFIX}{i}")
        } else if *figured {
            name.clone()
        } else {
            continue;
        };
        match item {
            SelectItem::UnnamedExpr(e) => {
                *item = SelectItem::ExprWithAlias {
                    expr: e.clone(),
                    alias: Ident::with_quote('"', alias),
                };
            }
            SelectItem::ExprWithAlias { alias: a, .. } => *a = Ident::with_quote('"', alias),
            _ => {}
        }
    }
}

/// The name of a plain column reference (its last part).
fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(crate::names::normalize_ident(i)),
        Expr::CompoundIdentifier(parts) => parts.last().map(crate::names::normalize_ident),
        _ => None,
    }
}

/// The Postgres name of an expression, or `None` to keep DataFusion's
/// (which already matches for plain column references).
fn figure(e: &Expr) -> Option<String> {
    Some(match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => return None,
        Expr::Function(f) => f.name.0.last()?.as_ident()?.value.to_ascii_lowercase(),
        Expr::Cast {
            expr, data_type, ..
        } => match figure_inner(expr) {
            Some(n) => n,
            None => type_name(data_type),
        },
        Expr::Nested(inner) => return figure(inner),
        // A scalar subquery is named after its one output column.
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.as_slice() {
                [SelectItem::ExprWithAlias { alias, .. }] => crate::names::normalize_ident(alias),
                [SelectItem::UnnamedExpr(e)] => figure(e)
                    .or_else(|| column_name(e))
                    .unwrap_or_else(|| "?column?".into()),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        Expr::Case { .. } => "case".into(),
        Expr::Exists { .. } => "exists".into(),
        Expr::Array(_) => "array".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { .. } => "substring".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Trim { .. } => "btrim".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Overlay { .. } => "overlay".into(),
        Expr::Interval(_) => "interval".into(),
        Expr::TypedString(ts) => type_name(&ts.data_type),
        _ => "?column?".into(),
    })
}

/// Like [`figure`], but for a cast's operand, where column references count.
fn figure_inner(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(if i.quote_style.is_some() {
            i.value.clone()
        } else {
            i.value.to_ascii_lowercase()
        }),
        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        Expr::Cast { .. } | Expr::Function(_) | Expr::Case { .. } | Expr::Nested(_) => {
            figure(e).filter(|n| n != "?column?")
        }
        _ => None,
    }
}

fn type_name(t: &DataType) -> String {
    use DataType as D;
    match t {
        D::Int(_) | D::Integer(_) | D::Int4(_) => "int4",
        D::BigInt(_) | D::Int8(_) => "int8",
        D::SmallInt(_) | D::Int2(_) => "int2",
        D::Real | D::Float4 => "float4",
        D::DoublePrecision | D::Float8 | D::Double(_) | D::Float(_) => "float8",
        D::Numeric(_) | D::Decimal(_) => "numeric",
        D::Text | D::String(_) => "text",
        D::Varchar(_) | D::CharacterVarying(_) => "varchar",
        D::Bool | D::Boolean => "bool",
        D::Date => "date",
        D::Bytea => "bytea",
        D::JSONB => "jsonb",
        D::JSON => "json",
        D::Interval { .. } => "interval",
        D::Time(..) => "time",
        D::Timestamp(_, tz) => match tz {
            datafusion::sql::sqlparser::ast::TimezoneInfo::Tz
            | datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone => "timestamptz",
            _ => "timestamp",
        },
        other => return other.to_string().to_ascii_lowercase(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;

    fn named(sql: &str) -> String {
        let mut s = crate::parse::statements(sql).unwrap().remove(0);
        let Statement::Query(q) = &mut s else {
            panic!()
        };
        apply(q);
        s.to_string()
    }

    #[test]
    fn names_like_postgres() {
        assert_eq!(
            named("SELECT count(*), x FROM t"),
            r#"SELECT count(*) AS "count", x FROM t"#
        );
        assert_eq!(named("SELECT 1 + 1"), r#"SELECT 1 + 1 AS "?column?""#);
        assert_eq!(
            named("SELECT 1, 2"),
            "SELECT 1 AS \"?column?\", 2 AS \"?column?\u{1f}1\""
        );
        assert_eq!(
            named("SELECT x::int8, 'a'::text FROM t"),
            r#"SELECT x::INT8 AS "x", 'a'::TEXT AS "text" FROM t"#
        );
    }
}
