//! Source-level rewrites that give Postgres meaning to constructs DataFusion
//! reads differently, applied to the AST before planning.
//!
//! - `'…'::jsonb` / `jsonb '…'` → `jsonb_in('…')` (validated, canonical);
//! - `'\x01ff'::bytea` → a binary literal, by Postgres' bytea input rules
//!   (DataFusion would take the text's bytes as they are);
//! - interval literals in Postgres' `1 day 04:05:06` / `mons` forms →
//!   the unit words DataFusion parses;
//! - `FETCH FIRST n ROWS ONLY` → `LIMIT n`;
//! - `current_user` / `session_user` → the session's user name;
//! - `SELECT generate_series(…)` → one row per value (`unnest`), and
//!   `FROM generate_series(…) x` names its column `x`;
//! - set-returning functions in `FROM`, lateral ones too (crate::srf_from).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, DataType, Expr, Statement, Value, VisitMut, VisitorMut,
};

use crate::functions::JsonbIn;
use crate::{PlannerError, Result};

pub fn apply(stmt: &mut Statement, user: &str) -> Result<()> {
    let mut v = Rewriter { user };
    match stmt.visit(&mut v) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Rewriter<'a> {
    user: &'a str,
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

fn parse_expr(sql: &str) -> Result<Expr> {
    Ok(crate::parse::expr(sql)?)
}

/// A binary literal holding Postgres' bytea input `s`.
pub fn bytea_literal(s: &str) -> Result<Expr> {
    let bytes = bytea_input(s)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    Ok(Expr::value(Value::HexStringLiteral(hex)))
}

/// Postgres' bytea input: `\x` + hex digit pairs, or the escape format
/// (`\\` and `\ooo` octal escapes, other characters as their UTF-8 bytes).
pub fn bytea_input(s: &str) -> Result<Vec<u8>> {
    let bad = || PlannerError::InvalidText(format!("invalid input syntax for type bytea: \"{s}\""));
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(bad());
        }
        return digits
            .chunks(2)
            .map(|p| {
                u8::from_str_radix(std::str::from_utf8(p).map_err(|_| bad())?, 16)
                    .map_err(|_| bad())
            })
            .collect();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(u8::try_from(v).map_err(|_| bad())?);
            i += 4;
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Rewrites Postgres interval text DataFusion can't parse into unit words:
/// `04:05:06.5` → `4 hours 5 minutes 6.5 seconds`, `mons` → `months`.
pub fn interval_text(s: &str) -> String {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let (neg, body) = match tok.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, tok.strip_prefix('+').unwrap_or(tok)),
        };
        let parts: Vec<&str> = body.split(':').collect();
        let numeric = parts.len() >= 2
            && parts.len() <= 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if numeric {
            let sign = if neg { "-" } else { "" };
            out.push(format!("{sign}{} hours", parts[0]));
            out.push(format!("{sign}{} minutes", parts[1]));
            if let Some(sec) = parts.get(2) {
                out.push(format!("{sign}{sec} seconds"));
            }
            continue;
        }
        out.push(match tok.to_ascii_lowercase().as_str() {
            "mon" | "mons" => "months".to_string(),
            _ => tok.to_string(),
        });
    }
    out.join(" ")
}

/// `jsonb_agg(x …)` as `jsonb_from_array(array_agg(to_jsonb(x) …))`:
/// array_agg's DISTINCT, ORDER BY and FILTER, in queries and views.
fn jsonb_agg(f: &ast::Function) -> Result<Expr> {
    let mut agg = f.clone();
    agg.name = ast::ObjectName::from(vec![ast::Ident::new("array_agg")]);
    let ast::FunctionArguments::List(list) = &mut agg.args else {
        return Err(PlannerError::UndefinedFunction(
            "function jsonb_agg takes one argument".into(),
        ));
    };
    let [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] = list.args.as_mut_slice()
    else {
        return Err(PlannerError::UndefinedFunction(
            "function jsonb_agg takes one argument".into(),
        ));
    };
    *arg = parse_expr(&format!("to_jsonb({arg})"))?;
    parse_expr(&format!(
        "{}({})",
        crate::jsonb::FROM_ARRAY,
        Expr::Function(agg)
    ))
}

/// The column `FETCH FIRST n ROWS WITH TIES` ranks rows by.
const TIES_RANK: &str = "__freshet_rank";

/// `q … ORDER BY k FETCH FIRST n ROWS WITH TIES` as `SELECT * EXCLUDE (r)
/// FROM (q with rank() OVER (ORDER BY k) AS r) WHERE r <= n ORDER BY r`:
/// the first n rows and every row tied with the n-th (DataFusion has no
/// WITH TIES; a view keeps it as its top-N by rank).
fn with_ties(q: &ast::Query, n: Expr) -> Result<ast::Query> {
    let Some(ast::OrderBy {
        kind: ast::OrderByKind::Expressions(keys),
        ..
    }) = &q.order_by
    else {
        return Err(PlannerError::Syntax(
            "WITH TIES cannot be specified without ORDER BY clause".into(),
        ));
    };
    if q.limit_clause.is_some() {
        return Err(PlannerError::not_supported("OFFSET with FETCH … WITH TIES"));
    }
    let mut inner = q.clone();
    inner.order_by = None;
    inner.fetch = None;
    let ast::SetExpr::Select(select) = inner.body.as_mut() else {
        return Err(PlannerError::not_supported(
            "FETCH … WITH TIES over a set operation (wrap it in a subquery)",
        ));
    };
    if select.distinct.is_some() {
        return Err(PlannerError::not_supported(
            "FETCH … WITH TIES with DISTINCT (wrap it in a subquery)",
        ));
    }
    // ORDER BY may name a select item by position or output name; the
    // window's ORDER BY takes the expression itself.
    let item = |e: &Expr| -> Result<Option<Expr>> {
        let items = &select.projection;
        if let Expr::Value(v) = e {
            if let Value::Number(k, _) = &v.value {
                let k: usize = k.parse().unwrap_or(0);
                return match items.get(k.wrapping_sub(1)) {
                    Some(ast::SelectItem::UnnamedExpr(e))
                    | Some(ast::SelectItem::ExprWithAlias { expr: e, .. }) => Ok(Some(e.clone())),
                    _ => Err(PlannerError::not_supported(format!(
                        "ORDER BY position {k} with FETCH … WITH TIES"
                    ))),
                };
            }
        }
        if let Expr::Identifier(id) = e {
            for it in items {
                if let ast::SelectItem::ExprWithAlias { expr, alias } = it {
                    let same = if id.quote_style.is_some() || alias.quote_style.is_some() {
                        id.value == alias.value
                    } else {
                        id.value.eq_ignore_ascii_case(&alias.value)
                    };
                    // `x AS x` is the column itself.
                    if same
                        && !matches!(expr, Expr::Identifier(i) if i.value.eq_ignore_ascii_case(&alias.value))
                    {
                        return Ok(Some(expr.clone()));
                    }
                }
            }
        }
        Ok(None)
    };
    let mut window_keys = Vec::with_capacity(keys.len());
    for k in keys {
        let mut k = k.clone();
        if let Some(e) = item(&k.expr)? {
            k.expr = e;
        }
        window_keys.push(k.to_string());
    }
    let rank = crate::parse::expr(&format!(
        "rank() OVER (ORDER BY {})",
        window_keys.join(", ")
    ))?;
    select.projection.push(ast::SelectItem::ExprWithAlias {
        expr: rank,
        alias: ast::Ident::new(TIES_RANK),
    });
    let mut outer = match crate::parse::statements(&format!(
        "SELECT * FROM ({inner}) AS __freshet_ties WHERE {TIES_RANK} <= ({n}) ORDER BY {TIES_RANK}"
    ))?
    .pop()
    {
        Some(Statement::Query(q)) => *q,
        _ => unreachable!("a query"),
    };
    if let ast::SetExpr::Select(s) = outer.body.as_mut() {
        if let Some(ast::SelectItem::Wildcard(w)) = s.projection.first_mut() {
            w.opt_exclude = Some(ast::ExcludeSelectItem::Single(ast::ObjectName::from(vec![
                ast::Ident::new(TIES_RANK),
            ])));
        }
    }
    Ok(outer)
}

impl VisitorMut for Rewriter<'_> {
    type Break = PlannerError;

    fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<PlannerError> {
        // Set-returning functions in FROM (crate::srf_from).
        if let Err(e) = crate::srf_from::apply(q) {
            return ControlFlow::Break(e);
        }
        if let Some(fetch) = &q.fetch {
            let n = fetch
                .quantity
                .clone()
                .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false)));
            if fetch.percent {
                return ControlFlow::Break(PlannerError::not_supported("FETCH … PERCENT"));
            }
            if fetch.with_ties {
                match with_ties(q, n) {
                    Ok(new) => *q = new,
                    Err(e) => return ControlFlow::Break(e),
                }
                return ControlFlow::Continue(());
            }
            // `OFFSET m FETCH FIRST n ROWS ONLY` is `LIMIT n OFFSET m`.
            let offset = match q.limit_clause.take() {
                None => None,
                Some(ast::LimitClause::LimitOffset {
                    limit: None,
                    offset,
                    limit_by,
                }) if limit_by.is_empty() => offset,
                Some(other) => {
                    q.limit_clause = Some(other);
                    return ControlFlow::Break(PlannerError::Syntax(
                        "syntax error: LIMIT and FETCH in one query".into(),
                    ));
                }
            };
            q.limit_clause = Some(ast::LimitClause::LimitOffset {
                limit: Some(n),
                offset,
                limit_by: vec![],
            });
            q.fetch = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &mut ast::Select) -> ControlFlow<PlannerError> {
        // A set-returning function in the select list returns rows in
        // PostgreSQL (DataFusion's scalar generate_series returns one
        // list): `generate_series(…)` there is `unnest(generate_series(…))`,
        // named `generate_series` as PostgreSQL names it.
        for item in s.projection.iter_mut() {
            let (expr, alias) = match item {
                ast::SelectItem::UnnamedExpr(e) => (e, None),
                ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => continue,
            };
            let Expr::Function(f) = expr else { continue };
            let name = f.name.to_string().to_ascii_lowercase();
            let list = if name == "generate_series" {
                "generate_series"
            } else if name == "regexp_matches" {
                crate::pgfuncs::REGEXP_MATCHES_LIST
            } else if let Some(list) = crate::jsonb::set_returning(&name) {
                // jsonb_array_elements(j) and kin: unnest of their list.
                list
            } else {
                continue;
            };
            let mut f = f.clone();
            f.name = ast::ObjectName::from(vec![ast::Ident::new(list)]);
            let unnest = crate::jsonb::unnest_of(list, &Expr::Function(f).to_string());
            match parse_expr(&unnest) {
                Ok(unnested) => {
                    *item = ast::SelectItem::ExprWithAlias {
                        expr: unnested,
                        alias: alias.unwrap_or_else(|| ast::Ident::new(name)),
                    }
                }
                Err(e) => return ControlFlow::Break(e),
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut ast::TableFactor) -> ControlFlow<PlannerError> {
        // `FROM generate_series(1, 3) x`: PostgreSQL names the one column
        // of a scalar-returning function in FROM after the alias.
        if let ast::TableFactor::Table {
            name,
            alias: Some(alias),
            args: Some(_),
            ..
        } = t
        {
            if alias.columns.is_empty() && name.to_string().eq_ignore_ascii_case("generate_series")
            {
                alias.columns = vec![ast::TableAliasColumnDef::from_name(
                    alias.name.value.clone(),
                )];
            }
        }
        // sqlparser accepts `SELECT FROM WHERE` with a table named WHERE;
        // Postgres (rightly) calls that a syntax error.
        if let ast::TableFactor::Table { name, .. } = t {
            if let [part] = name.0.as_slice() {
                if let Some(i) = part.as_ident() {
                    const RESERVED: &[&str] = &[
                        "where", "select", "from", "group", "order", "having", "limit", "union",
                        "and", "or", "on",
                    ];
                    if i.quote_style.is_none()
                        && RESERVED.contains(&i.value.to_ascii_lowercase().as_str())
                    {
                        return ControlFlow::Break(PlannerError::Syntax(format!(
                            "syntax error at or near \"{}\"",
                            i.value
                        )));
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<PlannerError> {
        match self.rewrite(e) {
            Ok(Some(new)) => *e = new,
            Ok(None) => {}
            Err(err) => return ControlFlow::Break(err),
        }
        ControlFlow::Continue(())
    }
}

impl Rewriter<'_> {
    fn rewrite(&self, e: &Expr) -> Result<Option<Expr>> {
        let (inner_text, data_type): (Option<String>, Option<&DataType>) = match e {
            Expr::Cast {
                expr, data_type, ..
            } => (string_literal(expr).map(str::to_string), Some(data_type)),
            Expr::TypedString(ts) => match &ts.value.value {
                Value::SingleQuotedString(s) => (Some(s.clone()), Some(&ts.data_type)),
                _ => (None, None),
            },
            _ => (None, None),
        };
        // A correlated `(SELECT x … ORDER BY k LIMIT 1)` (crate::first_row).
        if let Expr::Subquery(q) = e {
            if let Some(q) = crate::first_row::rewrite(q)? {
                return Ok(Some(Expr::Subquery(Box::new(q))));
            }
        }
        if let Expr::Function(f) = e {
            let name = f.name.to_string().to_ascii_lowercase();
            if name == "jsonb_agg" || name == "json_agg" {
                return Ok(Some(jsonb_agg(f)?));
            }
            // `mode() WITHIN GROUP (ORDER BY x)` is the aggregate mode(x).
            if name == "mode" && f.within_group.len() == 1 {
                let x = &f.within_group[0].expr;
                return Ok(Some(parse_expr(&format!("mode({x})"))?));
            }
        }
        match (e, data_type) {
            // `'{1,2,3}'::int[]`: PostgreSQL's array literal.
            (Expr::Cast { .. }, Some(t @ DataType::Array(_))) => {
                if let Some(text) = &inner_text {
                    let items: Vec<String> = crate::jsonb::array_literal(text)?
                        .into_iter()
                        .map(|i| {
                            if i.eq_ignore_ascii_case("null") {
                                "NULL".to_string()
                            } else {
                                format!("'{}'", i.replace('\'', "''"))
                            }
                        })
                        .collect();
                    return Ok(Some(parse_expr(&format!(
                        "CAST(ARRAY[{}] AS {t})",
                        items.join(", ")
                    ))?));
                }
            }
            (Expr::Cast { expr, .. }, Some(DataType::JSONB | DataType::JSON)) => {
                return Ok(Some(parse_expr(&format!("{}({expr})", JsonbIn::NAME))?));
            }
            (Expr::TypedString(_), Some(DataType::JSONB | DataType::JSON)) => {
                let text = inner_text.unwrap_or_default().replace('\'', "''");
                return Ok(Some(parse_expr(&format!("{}('{text}')", JsonbIn::NAME))?));
            }
            (_, Some(DataType::Bytea)) => {
                if let Some(text) = &inner_text {
                    return Ok(Some(bytea_literal(text)?));
                }
            }
            // DataFusion casts timestamp text through nanoseconds (years
            // 1677..2262 only) and Arrow's parser; Freshet's timestamps are
            // microseconds, read as PostgreSQL reads them (crate::datetime_in).
            (Expr::Cast { .. } | Expr::TypedString(_), Some(DataType::Timestamp(_, tz))) => {
                if let Some(text) = &inner_text {
                    let with_tz =
                        matches!(tz, ast::TimezoneInfo::Tz | ast::TimezoneInfo::WithTimeZone);
                    let function = if with_tz {
                        "timestamptz_in"
                    } else {
                        "timestamp_in"
                    };
                    return Ok(Some(parse_expr(&format!(
                        "{function}('{}')",
                        text.replace('\'', "''"),
                    ))?));
                }
                // DataFusion's `timestamp` is nanoseconds; Freshet's (and
                // PostgreSQL's) are microseconds, which a nanosecond cast
                // of `infinity` or of years outside 1677..2262 overflows.
                if let Expr::Cast {
                    data_type: DataType::Timestamp(None, _),
                    ..
                } = e
                {
                    let mut new = e.clone();
                    if let Expr::Cast {
                        data_type: DataType::Timestamp(precision, _),
                        ..
                    } = &mut new
                    {
                        *precision = Some(6);
                    }
                    return Ok(Some(new));
                }
            }
            (Expr::Cast { .. }, Some(DataType::Interval { .. })) => {
                if let Some(text) = inner_text.clone() {
                    let fixed = interval_text(&text);
                    if fixed != text {
                        let mut new = e.clone();
                        if let Expr::Cast { expr, .. } = &mut new {
                            **expr = Expr::value(Value::SingleQuotedString(fixed));
                        }
                        return Ok(Some(new));
                    }
                }
            }
            _ => {}
        }
        if let Expr::Interval(iv) = e {
            if let Some(text) = string_literal(&iv.value) {
                let fixed = interval_text(text);
                if fixed != text {
                    let mut iv = iv.clone();
                    iv.value = Box::new(Expr::value(Value::SingleQuotedString(fixed)));
                    return Ok(Some(Expr::Interval(iv)));
                }
            }
        }
        if let Expr::TypedString(ts) = e {
            if matches!(ts.data_type, DataType::Interval { .. }) {
                if let Some(text) = &inner_text {
                    let fixed = interval_text(text);
                    if &fixed != text {
                        return Ok(Some(parse_expr(&format!(
                            "INTERVAL '{}'",
                            fixed.replace('\'', "''")
                        ))?));
                    }
                }
            }
        }
        if let Expr::SimilarTo {
            negated,
            expr,
            pattern,
            escape_char,
        } = e
        {
            let escape = match escape_char.as_ref().map(|v| &v.value) {
                None => Some('\\'),
                Some(Value::SingleQuotedString(s)) if s.is_empty() => None,
                Some(Value::SingleQuotedString(s)) if s.chars().count() == 1 => s.chars().next(),
                Some(_) => {
                    return Err(PlannerError::InvalidText(
                        "invalid escape string: escape string must be empty or one character"
                            .into(),
                    ))
                }
            };
            let Some(pattern) = string_literal(pattern) else {
                return Err(PlannerError::not_supported(
                    "SIMILAR TO with a pattern that is not a constant",
                ));
            };
            let regex = similar_to_regex(pattern, escape)?;
            return Ok(Some(Expr::BinaryOp {
                left: expr.clone(),
                op: match negated {
                    false => ast::BinaryOperator::PGRegexMatch,
                    true => ast::BinaryOperator::PGRegexNotMatch,
                },
                right: Box::new(Expr::value(Value::SingleQuotedString(regex))),
            }));
        }
        // Per-session functions.
        let name = match e {
            Expr::Function(f) if matches!(f.args, ast::FunctionArguments::None) => {
                f.name.to_string().to_ascii_lowercase()
            }
            Expr::Identifier(i) if i.quote_style.is_none() => i.value.to_ascii_lowercase(),
            _ => return Ok(None),
        };
        if ["current_user", "session_user", "user", "current_role"].contains(&name.as_str()) {
            return Ok(Some(Expr::value(Value::SingleQuotedString(
                self.user.to_string(),
            ))));
        }
        Ok(None)
    }
}

/// A SIMILAR TO pattern as the anchored regular expression PostgreSQL
/// matches it with (its `similar_escape`): `%` is any text, `_` any one
/// character, `|`, `*`, `+`, `?`, `{m,n}`, `( )` and `[ ]` are the
/// regular-expression operators, the escape character makes the next one
/// literal, and everything else (`.` included) stands for itself.
pub fn similar_to_regex(pattern: &str, escape: Option<char>) -> Result<String> {
    let mut out = String::from("(?s)^(?:");
    let mut chars = pattern.chars();
    let mut in_brackets = false;
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => out.push_str(&regex_literal(next)),
                None => {
                    return Err(PlannerError::InvalidText(
                        "invalid escape string: SIMILAR TO pattern ends with the escape character"
                            .into(),
                    ))
                }
            }
            continue;
        }
        if in_brackets {
            if c == ']' {
                in_brackets = false;
            }
            out.push(c);
            continue;
        }
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '[' => {
                in_brackets = true;
                out.push(c);
            }
            '|' | '*' | '+' | '?' | '{' | '}' | '(' | ')' => out.push(c),
            c => out.push_str(&regex_literal(c)),
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// `c` matching itself in a regular expression.
fn regex_literal(c: char) -> String {
    if "\\.+*?()|[]{}^$#&-~".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_to_patterns() {
        let re = |p: &str| similar_to_regex(p, Some('\\')).unwrap();
        assert_eq!(re("a_c"), "(?s)^(?:a.c)$");
        assert_eq!(re("%(b|d)%"), "(?s)^(?:.*(b|d).*)$");
        assert_eq!(re("a.c"), "(?s)^(?:a\\.c)$");
        assert_eq!(re("\\%x"), "(?s)^(?:%x)$");
        assert_eq!(re("[a-c_]%"), "(?s)^(?:[a-c_].*)$");
        assert_eq!(similar_to_regex("#_", Some('#')).unwrap(), "(?s)^(?:_)$");
        assert!(similar_to_regex("ab\\", Some('\\')).is_err());
    }

    #[test]
    fn bytea_forms() {
        assert_eq!(bytea_input("\\x01ff").unwrap(), vec![1, 255]);
        assert_eq!(bytea_input("a\\\\b\\001").unwrap(), b"a\\b\x01".to_vec());
        assert!(bytea_input("\\x1").is_err());
    }

    #[test]
    fn interval_forms() {
        assert_eq!(
            interval_text("1 day 04:05:06"),
            "1 day 04 hours 05 minutes 06 seconds"
        );
        assert_eq!(
            interval_text("2 mons -01:30"),
            "2 months -01 hours -30 minutes"
        );
    }
}
