//! SQL text → sqlparser AST, as PostgreSQL reads it. Every statement and
//! every stand-alone expression Freshet parses comes through here.
//!
//! sqlparser's `PostgreSqlDialect` still reads MSSQL's `SELECT TOP n` (its
//! parser checks for TOP whatever the dialect), so `SELECT top FROM t`, a
//! column named `top`, was a syntax error. PostgreSQL has no TOP: here a
//! `top` right after `SELECT`, `DISTINCT` or `ALL` is an identifier.
//!
//! Two of RisingWave's forms are read here too: `FLUSH` (a statement of its
//! own, as [`Statement::Flush`]) and `CREATE TABLE … APPEND ONLY` (the
//! option [`APPEND_ONLY`] in the table's `WITH` list).

use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, Expr, FlushType, Ident, SqlOption, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The `WITH` option `CREATE TABLE … APPEND ONLY` becomes.
pub const APPEND_ONLY: &str = "append_only";

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
    Ok(Parser::new(&DIALECT).with_tokens_with_locations(tokens))
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
        assert!(statements("CREATE TABLE t (a int) APPEND").is_err());
    }
}
