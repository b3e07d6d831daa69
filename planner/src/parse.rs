//! SQL text → sqlparser AST, as PostgreSQL reads it. Every statement and
//! every stand-alone expression Freshet parses comes through here.
//!
//! sqlparser's `PostgreSqlDialect` still reads MSSQL's `SELECT TOP n` (its
//! parser checks for TOP whatever the dialect), so `SELECT top FROM t`, a
//! column named `top`, was a syntax error. PostgreSQL has no TOP: here a
//! `top` right after `SELECT`, `DISTINCT` or `ALL` is an identifier.

use datafusion::sql::sqlparser::ast::{Expr, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// The statements of `sql`.
pub fn statements(sql: &str) -> Result<Vec<Statement>, ParserError> {
    parser(sql)?.parse_statements()
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
}
