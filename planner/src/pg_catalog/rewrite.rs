//! Rewrites of catalog queries before the compatibility parser sees them.

use super::*;

/// Rewrites catalog-query shapes that the compatibility parser would
/// otherwise break, returning `None` when nothing changed:
///
/// - the correlated `(SELECT pg_get_expr(d.adbin, d.adrelid) FROM
///   pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum …)`
///   (psql's `\d`, SQLAlchemy's `get_columns`) becomes
///   `freshet_column_default(a.attrelid, a.attnum)`;
/// - SQLAlchemy's identity / collation CASE columns become NULL (exact for
///   Freshet, see below), `generate_subscripts(a, 1)` an `unnest(range(…))`.
pub fn rewrite_query(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    // psql's `\d` footer of a foreign table (a source): its server and
    // options, from `freshet_sources` instead of the FDW catalogs.
    if lower.contains("pg_foreign_table") && lower.contains("ftrelid") {
        let oid: String = lower
            .split("ftrelid")
            .nth(1)?
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if !oid.is_empty() {
            return Some(format!(
                "SELECT connector AS srvname, options AS array_to_string FROM freshet_sources WHERE oid = {oid}"
            ));
        }
    }
    if ![
        "pg_attrdef",
        "pg_sequence",
        "pg_collation",
        "generate_subscripts",
        "pg_options_to_table",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return None;
    }
    let mut stmts = crate::parse::statements(sql).ok()?;
    let mut v = DefaultSubquery { changed: false };
    for s in stmts.iter_mut() {
        let _ = s.visit(&mut v);
    }
    v.changed.then(|| {
        stmts
            .iter()
            .map(Statement::to_string)
            .collect::<Vec<_>>()
            .join(";\n")
    })
}

struct DefaultSubquery {
    changed: bool,
}

/// Splits `a AND b AND c` into its conjuncts.
fn conjuncts(e: &SqlExpr, out: &mut Vec<SqlExpr>) {
    match e {
        SqlExpr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        SqlExpr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

fn ident_parts(e: &SqlExpr) -> Option<Vec<String>> {
    match e {
        SqlExpr::CompoundIdentifier(parts) => {
            Some(parts.iter().map(|p| p.value.to_ascii_lowercase()).collect())
        }
        SqlExpr::Identifier(i) => Some(vec![i.value.to_ascii_lowercase()]),
        _ => None,
    }
}

impl DefaultSubquery {
    /// For the attrdef subquery, the outer `attrelid` and `attnum` exprs.
    fn match_subquery(q: &ast::Query) -> Option<(SqlExpr, SqlExpr)> {
        let SetExpr::Select(select) = q.body.as_ref() else {
            return None;
        };
        let [from] = select.from.as_slice() else {
            return None;
        };
        if !from.joins.is_empty() {
            return None;
        }
        let ast::TableFactor::Table { name, alias, .. } = &from.relation else {
            return None;
        };
        let table_name = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
        if table_name != "pg_attrdef" {
            return None;
        }
        // The qualifier by which attrdef columns are named.
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.value.to_ascii_lowercase())
            .unwrap_or(table_name);
        let [item] = select.projection.as_slice() else {
            return None;
        };
        let (SelectItem::UnnamedExpr(SqlExpr::Function(f))
        | SelectItem::ExprWithAlias {
            expr: SqlExpr::Function(f),
            ..
        }) = item
        else {
            return None;
        };
        if !f
            .name
            .0
            .last()?
            .as_ident()?
            .value
            .eq_ignore_ascii_case("pg_get_expr")
        {
            return None;
        }
        let is_attrdef = |e: &SqlExpr, col: &str| -> bool {
            ident_parts(e)
                .map(|p| {
                    p.last().map(|l| l == col).unwrap_or(false)
                        && (p.len() == 1 || p[p.len() - 2] == qualifier)
                })
                .unwrap_or(false)
        };
        let mut parts = Vec::new();
        conjuncts(select.selection.as_ref()?, &mut parts);
        let (mut relid, mut num) = (None, None);
        for p in &parts {
            if let SqlExpr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } = p
            {
                for (ours, theirs) in [(left, right), (right, left)] {
                    if is_attrdef(ours, "adrelid") && !is_attrdef(theirs, "adrelid") {
                        relid = Some(theirs.as_ref().clone());
                    }
                    if is_attrdef(ours, "adnum") && !is_attrdef(theirs, "adnum") {
                        num = Some(theirs.as_ref().clone());
                    }
                }
            }
        }
        Some((relid?, num?))
    }
}

/// The first table a subquery reads, lower-cased, without schema.
fn subquery_table(q: &ast::Query) -> Option<String> {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    let ast::TableFactor::Table { name, .. } = &select.from.first()?.relation else {
        return None;
    };
    Some(name.0.last()?.as_ident()?.value.to_ascii_lowercase())
}

impl VisitorMut for DefaultSubquery {
    type Break = ();

    fn post_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<()> {
        // SQLAlchemy's `identity_options` and `collation` columns:
        // `CASE WHEN <identity / non-default collation> THEN (SELECT …
        // FROM pg_sequence | pg_collation …) END`. Freshet has neither
        // identity columns nor non-default collations, so the CASE is NULL
        // for every column; its correlated subqueries cannot be planned.
        if let SqlExpr::Case {
            conditions,
            else_result,
            ..
        } = e
        {
            let reads = |r: &SqlExpr| match r {
                SqlExpr::Subquery(q) => {
                    matches!(
                        subquery_table(q).as_deref(),
                        Some("pg_sequence" | "pg_collation")
                    )
                }
                _ => false,
            };
            if conditions.iter().any(|w| reads(&w.result))
                && else_result
                    .as_deref()
                    .map(|r| matches!(r, SqlExpr::Value(v) if v.value == ast::Value::Null))
                    .unwrap_or(true)
            {
                *e = SqlExpr::value(ast::Value::Null);
                self.changed = true;
                return ControlFlow::Continue(());
            }
        }
        // `generate_subscripts(arr, 1)` (SQLAlchemy's key-column order):
        // int2vector subscripts start at 0.
        if let SqlExpr::Function(f) = e {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase());
            // psql's `\d` of a foreign table (a source) lists FDW options
            // with `array_to_string(ARRAY(SELECT … FROM
            // pg_options_to_table(…)), ', ')`: Freshet keeps a source's
            // options in its own catalog, not as FDW options.
            if name.as_deref() == Some("array_to_string")
                && f.to_string()
                    .to_ascii_lowercase()
                    .contains("pg_options_to_table")
            {
                *e = SqlExpr::value(ast::Value::SingleQuotedString(String::new()));
                self.changed = true;
                return ControlFlow::Continue(());
            }
            if name.as_deref() == Some("generate_subscripts") {
                if let ast::FunctionArguments::List(list) = &f.args {
                    if let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arr))) =
                        list.args.first()
                    {
                        let call =
                            format!("unnest(range(0, CAST(array_length({arr}, 1) AS BIGINT)))");
                        if let Ok(new) = crate::parse::expr(&call) {
                            *e = new;
                            self.changed = true;
                            return ControlFlow::Continue(());
                        }
                    }
                }
            }
        }
        if let SqlExpr::Subquery(q) = e {
            if let Some((relid, num)) = Self::match_subquery(q) {
                let call = format!("{COLUMN_DEFAULT_FN}({relid}, {num})");
                if let Ok(new) = crate::parse::expr(&call) {
                    *e = new;
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_default_subquery_becomes_a_call() {
        let sql = "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384'";
        let out = rewrite_query(sql).unwrap();
        assert!(
            out.contains("freshet_column_default(a.attrelid, a.attnum)"),
            "{out}"
        );
        assert!(rewrite_query("SELECT 1").is_none());
    }
}
