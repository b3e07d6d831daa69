//! SQL text → sqlparser AST, as PostgreSQL reads it. Every statement and
//! every stand-alone expression Freshet parses comes through here.
//!
//! sqlparser's `PostgreSqlDialect` still reads MSSQL's `SELECT TOP n` (its
//! parser checks for TOP whatever the dialect), so `SELECT top FROM t`, a
//! column named `top`, was a syntax error. PostgreSQL has no TOP: here a
//! `top` right after `SELECT`, `DISTINCT` or `ALL` is an identifier.
//!
//! RisingWave's forms are read here too: `FLUSH` (a statement of its own,
//! as [`Statement::Flush`]), `CREATE TABLE … APPEND ONLY` (the option
//! [`APPEND_ONLY`] in the table's `WITH` list), and its sources:
//! `CREATE SOURCE name (cols) [INCLUDE kind [AS alias]]… WITH (dotted.keys =
//! …) [FORMAT f ENCODE e [(options)]]` and the same clauses on `CREATE
//! TABLE`. Those are rewritten at the token level into a plain `CREATE
//! TABLE … WITH (…)` whose options carry what sqlparser has no place for:
//! dotted keys become quoted ones, and [`SOURCE_OPTION`], [`FORMAT_OPTION`],
//! [`ENCODE_OPTION`], `__encode.<key>` and `__include.<kind>` options say
//! the rest. `DROP SOURCE` reads as sqlparser's `DROP STREAM` (Snowflake's;
//! PostgreSQL has no such object), [`ObjectType::Stream`].

use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, Expr, FlushType, Ident, SqlOption, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Whitespace, Word};

/// The `WITH` option `CREATE TABLE … APPEND ONLY` becomes.
pub const APPEND_ONLY: &str = "append_only";
/// The `WITH` option that marks a `CREATE SOURCE`.
pub const SOURCE_OPTION: &str = "__source";
/// The `WITH` options of `FORMAT f ENCODE e (…)`.
pub const FORMAT_OPTION: &str = "__format";
pub const ENCODE_OPTION: &str = "__encode";
/// Prefixes of `ENCODE e (key = …)` options and of `INCLUDE kind AS alias`.
pub const ENCODE_PREFIX: &str = "__encode.";
pub const INCLUDE_PREFIX: &str = "__include.";

/// The statements of `sql`.
pub fn statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    let mut parser = parser(sql)?;
    let mut stmts = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        if parser.peek_token_ref().token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return parser.expected("end of statement", parser.peek_token());
        }
        stmts.push(statement(&mut parser)?);
        expecting_delimiter = true;
    }
    Ok(stmts)
}

/// One statement, with RisingWave's `FLUSH` and `APPEND ONLY`.
fn statement(parser: &mut Parser<'static>) -> Result<Statement, ParserError> {
    let word = |t: &Token, s: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s));
    let first = parser.peek_token_ref().token.clone();
    if word(&first, "flush")
        && matches!(
            parser.peek_nth_token_ref(1).token,
            Token::SemiColon | Token::EOF
        )
    {
        parser.next_token();
        return Ok(Statement::Flush {
            object_type: FlushType::Tables,
            location: None,
            channel: None,
            read_lock: false,
            export: false,
            tables: vec![],
        });
    }
    let mut stmt = parser.parse_statement()?;
    if let Statement::CreateTable(ct) = &mut stmt {
        let (a, b) = (
            parser.peek_token_ref().token.clone(),
            parser.peek_nth_token_ref(1).token.clone(),
        );
        if word(&a, "append") && word(&b, "only") {
            parser.next_token();
            parser.next_token();
            let option = SqlOption::KeyValue {
                key: Ident::new(APPEND_ONLY),
                value: Expr::value(Value::Boolean(true)),
            };
            match &mut ct.table_options {
                CreateTableOptions::With(options) => options.push(option),
                CreateTableOptions::None => {
                    ct.table_options = CreateTableOptions::With(vec![option])
                }
                _ => return parser.expected("end of statement", parser.peek_token()),
            }
            // `APPEND ONLY` may come before RisingWave's `WITH (…)`.
            let more = parser.parse_options(Keyword::WITH)?;
            if let CreateTableOptions::With(options) = &mut ct.table_options {
                options.extend(more);
            }
        }
    }
    Ok(stmt)
}

/// One query (a rewrite's derived table).
pub fn query(sql: &str) -> Result<datafusion::sql::sqlparser::ast::Query, ParserError> {
    Ok(*parser(sql)?.parse_query()?)
}

/// One expression (a column default, a rewritten call).
pub fn expr(sql: &str) -> Result<Expr, ParserError> {
    parser(sql)?.parse_expr()
}

fn parser(sql: &str) -> Result<Parser<'static>, ParserError> {
    static DIALECT: PostgreSqlDialect = PostgreSqlDialect {};
    let mut tokens = Tokenizer::new(&DIALECT, sql)
        .with_unescape(true)
        .tokenize_with_location()?;
    top_is_an_identifier(&mut tokens);
    let tokens = risingwave_ddl(tokens)?;
    Ok(Parser::new(&DIALECT).with_tokens_with_locations(tokens))
}

fn is_word(t: &Token, s: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s))
}

fn wrap(token: Token) -> TokenWithSpan {
    TokenWithSpan::wrap(token)
}

fn quoted(name: &str) -> Token {
    Token::Word(Word {
        value: name.to_string(),
        quote_style: Some('"'),
        keyword: Keyword::NoKeyword,
    })
}

/// The index of the token closing the parenthesis opened at `open`.
fn closing(tokens: &[TokenWithSpan], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `key = value, …` inside a parenthesized list (without the parentheses):
/// each key (dotted words or a string) as text, its value as tokens.
fn option_list(tokens: &[TokenWithSpan]) -> Result<Vec<(String, Vec<TokenWithSpan>)>, ParserError> {
    let mut out = Vec::new();
    let mut items: Vec<Vec<TokenWithSpan>> = vec![Vec::new()];
    let mut depth = 0usize;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                items.push(Vec::new());
                continue;
            }
            Token::Whitespace(_) => continue,
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(t.clone());
        }
    }
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        let Some(eq) = item.iter().position(|t| t.token == Token::Eq) else {
            return Err(ParserError::ParserError(format!(
                "Expected: key = value in a WITH list, found: {}",
                item.iter().map(|t| t.token.to_string()).collect::<String>()
            )));
        };
        let mut key = String::new();
        for t in &item[..eq] {
            match &t.token {
                Token::Word(w) => key.push_str(&w.value),
                Token::Period => key.push('.'),
                Token::SingleQuotedString(s) => key.push_str(s),
                Token::Number(n, _) => key.push_str(n),
                other => {
                    return Err(ParserError::ParserError(format!(
                        "Expected: an option name, found: {other}"
                    )))
                }
            }
        }
        if key.is_empty() || eq + 1 >= item.len() {
            return Err(ParserError::ParserError(
                "Expected: key = value in a WITH list".into(),
            ));
        }
        out.push((key, item[eq + 1..].to_vec()));
    }
    Ok(out)
}

/// RisingWave's `CREATE SOURCE` and its source clauses on `CREATE TABLE`,
/// rewritten into a plain `CREATE TABLE … WITH (…)` (see the module doc).
/// Statements without those clauses are left alone.
fn risingwave_ddl(tokens: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>, ParserError> {
    // Queries (the hot path) pass through untouched, without a copy.
    if !tokens
        .iter()
        .any(|t| is_word(&t.token, "create") || is_word(&t.token, "drop"))
    {
        return Ok(tokens);
    }
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut start = 0;
    while start < tokens.len() {
        // The statement: up to the next `;` outside parentheses.
        let mut depth = 0usize;
        let mut end = tokens.len();
        for (i, t) in tokens.iter().enumerate().skip(start) {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen => depth = depth.saturating_sub(1),
                Token::SemiColon if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let stmt = &tokens[start..end];
        match source_ddl(stmt)? {
            Some(rewritten) => out.extend(rewritten),
            None => out.extend_from_slice(stmt),
        }
        if end < tokens.len() {
            out.push(tokens[end].clone());
        }
        start = end + 1;
    }
    Ok(out)
}

/// One statement's rewrite, if it is a `CREATE SOURCE` or a `CREATE TABLE`
/// with source clauses.
fn source_ddl(stmt: &[TokenWithSpan]) -> Result<Option<Vec<TokenWithSpan>>, ParserError> {
    let words: Vec<usize> = stmt
        .iter()
        .enumerate()
        .filter(|(_, t)| !matches!(t.token, Token::Whitespace(_)))
        .map(|(i, _)| i)
        .collect();
    let at = |n: usize| words.get(n).map(|&i| &stmt[i].token);
    if at(0).is_some_and(|t| is_word(t, "drop")) && at(1).is_some_and(|t| is_word(t, "source")) {
        let mut out = stmt.to_vec();
        out[words[1]] = wrap(Token::make_keyword("STREAM"));
        return Ok(Some(out));
    }
    if !at(0).is_some_and(|t| is_word(t, "create")) {
        return Ok(None);
    }
    let source = match at(1) {
        Some(t) if is_word(t, "source") => true,
        Some(t) if is_word(t, "table") => false,
        _ => return Ok(None),
    };
    // The head: through the column list, or up to `WITH` without one.
    let mut head_end = None;
    let mut i = words[1] + 1;
    while i < stmt.len() {
        match &stmt[i].token {
            Token::LParen => {
                head_end = Some(
                    closing(stmt, i).ok_or_else(|| {
                        ParserError::ParserError("Expected: ), found: EOF".into())
                    })? + 1,
                );
                break;
            }
            t if is_word(t, "with") || is_word(t, "as") || is_word(t, "include") => {
                head_end = Some(i);
                break;
            }
            _ => i += 1,
        }
    }
    let Some(head_end) = head_end else {
        return Ok(None);
    };
    let tail = &stmt[head_end..];
    let mut rest: Vec<TokenWithSpan> = Vec::new();
    let mut options: Vec<(String, Vec<TokenWithSpan>)> = Vec::new();
    let mut special = source;
    let string = |s: &str| vec![wrap(Token::SingleQuotedString(s.to_string()))];
    let next_word = |from: usize| -> Option<usize> {
        (from..tail.len()).find(|&j| !matches!(tail[j].token, Token::Whitespace(_)))
    };
    let mut i = 0;
    while i < tail.len() {
        let t = &tail[i].token;
        if is_word(t, "include") {
            special = true;
            let k = next_word(i + 1)
                .filter(|&k| matches!(tail[k].token, Token::Word(_)))
                .ok_or_else(|| ParserError::ParserError("Expected: what INCLUDE adds".into()))?;
            let Token::Word(kind) = &tail[k].token else {
                unreachable!()
            };
            let mut alias = String::new();
            i = k + 1;
            if let Some(a) = next_word(i).filter(|&a| is_word(&tail[a].token, "as")) {
                let n = next_word(a + 1)
                    .filter(|&n| matches!(tail[n].token, Token::Word(_)))
                    .ok_or_else(|| {
                        ParserError::ParserError("Expected: an alias after AS".into())
                    })?;
                if let Token::Word(w) = &tail[n].token {
                    alias = if w.quote_style.is_some() {
                        w.value.clone()
                    } else {
                        w.value.to_lowercase()
                    };
                }
                i = n + 1;
            }
            options.push((
                format!("{INCLUDE_PREFIX}{}", kind.value.to_lowercase()),
                string(&alias),
            ));
            continue;
        }
        if is_word(t, "with") {
            if let Some(open) = next_word(i + 1).filter(|&o| tail[o].token == Token::LParen) {
                let close = closing(tail, open)
                    .ok_or_else(|| ParserError::ParserError("Expected: ), found: EOF".into()))?;
                let list = option_list(&tail[open + 1..close])?;
                special |= list
                    .iter()
                    .any(|(k, _)| k.contains('.') || k == "connector");
                options.extend(list);
                i = close + 1;
                continue;
            }
        }
        if is_word(t, "format") {
            special = true;
            let f = next_word(i + 1)
                .filter(|&f| matches!(tail[f].token, Token::Word(_)))
                .ok_or_else(|| {
                    ParserError::ParserError("Expected: a format after FORMAT".into())
                })?;
            let Token::Word(format) = &tail[f].token else {
                unreachable!()
            };
            options.push((FORMAT_OPTION.into(), string(&format.value.to_lowercase())));
            i = f + 1;
            let e = next_word(i)
                .filter(|&e| is_word(&tail[e].token, "encode"))
                .ok_or_else(|| {
                    ParserError::ParserError("Expected: ENCODE after FORMAT …".into())
                })?;
            let n = next_word(e + 1)
                .filter(|&n| matches!(tail[n].token, Token::Word(_)))
                .ok_or_else(|| {
                    ParserError::ParserError("Expected: an encoding after ENCODE".into())
                })?;
            let Token::Word(encode) = &tail[n].token else {
                unreachable!()
            };
            options.push((ENCODE_OPTION.into(), string(&encode.value.to_lowercase())));
            i = n + 1;
            if let Some(open) = next_word(i).filter(|&o| tail[o].token == Token::LParen) {
                let close = closing(tail, open)
                    .ok_or_else(|| ParserError::ParserError("Expected: ), found: EOF".into()))?;
                for (k, v) in option_list(&tail[open + 1..close])? {
                    options.push((format!("{ENCODE_PREFIX}{k}"), v));
                }
                i = close + 1;
            }
            continue;
        }
        rest.push(tail[i].clone());
        i += 1;
    }
    if !special {
        return Ok(None);
    }
    if source {
        options.push((
            SOURCE_OPTION.into(),
            vec![wrap(Token::make_keyword("true"))],
        ));
    }
    let mut out: Vec<TokenWithSpan> = stmt[..head_end].to_vec();
    if source {
        out[words[1]] = wrap(Token::make_keyword("TABLE"));
    }
    // A source may have no column list (`CREATE SOURCE s WITH (…)`).
    if !stmt[..head_end].iter().any(|t| t.token == Token::LParen) {
        out.extend([wrap(Token::LParen), wrap(Token::RParen)]);
    }
    out.extend(rest);
    out.push(wrap(Token::Whitespace(Whitespace::Space)));
    out.push(wrap(Token::make_keyword("WITH")));
    out.push(wrap(Token::LParen));
    for (n, (k, v)) in options.into_iter().enumerate() {
        if n > 0 {
            out.push(wrap(Token::Comma));
        }
        out.push(wrap(quoted(&k)));
        out.push(wrap(Token::Eq));
        out.extend(v);
    }
    out.push(wrap(Token::RParen));
    Ok(Some(out))
}

/// Turns the keyword TOP into a plain word where a select list starts.
fn top_is_an_identifier(tokens: &mut [TokenWithSpan]) {
    let mut previous: Option<Keyword> = None;
    for t in tokens.iter_mut() {
        match &mut t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w) => {
                if w.keyword == Keyword::TOP
                    && w.quote_style.is_none()
                    && matches!(
                        previous,
                        Some(Keyword::SELECT | Keyword::DISTINCT | Keyword::ALL)
                    )
                {
                    w.keyword = Keyword::NoKeyword;
                }
                previous = Some(w.keyword);
            }
            _ => previous = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_is_a_column_name() {
        for sql in [
            "SELECT top FROM t",
            "SELECT DISTINCT top FROM t",
            "SELECT ALL top, x FROM t",
            "SELECT TOP + 1 FROM t",
            "SELECT x FROM (SELECT top FROM t) s",
        ] {
            let s = statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let text = s[0].to_string().to_lowercase();
            assert!(text.contains("top"), "{sql}: {text}");
            assert!(!text.contains("top ("), "{sql} read as TOP n: {text}");
        }
        assert_eq!(
            expr("top + 1").unwrap().to_string(),
            "top + 1",
            "TOP elsewhere is an identifier already"
        );
    }

    #[test]
    fn risingwave_flush_and_append_only() {
        let s = statements("INSERT INTO t VALUES (1); FLUSH; flush").unwrap();
        assert_eq!(s.len(), 3);
        assert!(matches!(s[1], Statement::Flush { .. }));
        assert!(matches!(s[2], Statement::Flush { .. }));
        for sql in [
            "CREATE TABLE t (a int) APPEND ONLY",
            "CREATE TABLE t (a int) append only;",
            "CREATE TABLE t (a int) APPEND ONLY WITH (x = 1)",
        ] {
            let s = statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            let Statement::CreateTable(ct) = &s[0] else {
                panic!("{sql}")
            };
            let text = ct.table_options.to_string();
            assert!(text.contains("append_only = true"), "{sql}: {text}");
        }
        let s = statements("CREATE TABLE t (a int)").unwrap();
        let Statement::CreateTable(ct) = &s[0] else {
            panic!()
        };
        assert!(!ct.table_options.to_string().contains("append_only"));
        assert!(statements("FLUSH x").is_err());
        assert!(statements("CREATE TABLE t (a int) WITH (fillfactor = 70)").is_ok());
        assert!(statements("CREATE TABLE t (a int) APPEND").is_err());
    }

    fn options_of(sql: &str) -> Vec<(String, String)> {
        let s = statements(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let Statement::CreateTable(ct) = &s[0] else {
            panic!("{sql}: {}", s[0])
        };
        let CreateTableOptions::With(options) = &ct.table_options else {
            panic!("{sql}: no options")
        };
        options
            .iter()
            .map(|o| match o {
                SqlOption::KeyValue { key, value } => (key.value.clone(), value.to_string()),
                other => panic!("{other}"),
            })
            .collect()
    }

    #[test]
    fn risingwave_sources() {
        let o = options_of(
            "CREATE SOURCE s (a int, b text) INCLUDE key AS k INCLUDE offset \
             WITH (connector = 'kafka', properties.bootstrap.server = 'x:1', topic = 't') \
             FORMAT PLAIN ENCODE CSV (without_header = 'true', delimiter = ',')",
        );
        let has = |k: &str, v: &str| o.iter().any(|(a, b)| a == k && b == v);
        assert!(has("connector", "'kafka'"), "{o:?}");
        assert!(has("properties.bootstrap.server", "'x:1'"), "{o:?}");
        assert!(
            has("__include.key", "'k'") && has("__include.offset", "''"),
            "{o:?}"
        );
        assert!(
            has("__format", "'plain'") && has("__encode", "'csv'"),
            "{o:?}"
        );
        assert!(
            has("__encode.without_header", "'true'") && has("__encode.delimiter", "','"),
            "{o:?}"
        );
        assert!(has("__source", "true"), "{o:?}");
        let o = options_of(
            "CREATE TABLE t (id int PRIMARY KEY) WITH (connector = 'datagen', \
             fields.id.kind = 'sequence', datagen.rows.per.second = 10) FORMAT PLAIN ENCODE JSON;",
        );
        assert!(
            o.iter()
                .any(|(k, v)| k == "fields.id.kind" && v == "'sequence'"),
            "{o:?}"
        );
        assert!(
            o.iter()
                .any(|(k, v)| k == "datagen.rows.per.second" && v == "10"),
            "{o:?}"
        );
        assert!(!o.iter().any(|(k, _)| k == "__source"), "{o:?}");
        // No column list, and two statements.
        let s = statements("CREATE SOURCE s WITH (connector = 'nexmark'); SELECT 1").unwrap();
        assert_eq!(s.len(), 2);
        let s = statements("DROP SOURCE IF EXISTS s CASCADE").unwrap();
        assert!(
            matches!(
                &s[0],
                Statement::Drop {
                    object_type: datafusion::sql::sqlparser::ast::ObjectType::Stream,
                    cascade: true,
                    ..
                }
            ),
            "{}",
            s[0]
        );
        assert!(statements("CREATE SOURCE s (a int) WITH (connector)").is_err());
        assert!(statements("CREATE SOURCE s (a int) WITH (connector = 'x') FORMAT PLAIN").is_err());
    }
}
