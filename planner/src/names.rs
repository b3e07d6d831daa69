//! Names and identifiers: the one database and schema Freshet serves, and
//! how SQL identifiers become catalog names. A leaf module: everything in
//! the planner that names a relation uses it, and it uses nothing of theirs.

use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use crate::{PlannerError, Result};

/// The database (DataFusion catalog) name clients connect to.
pub const DATABASE: &str = "freshet";
/// The one schema user relations live in.
pub const SCHEMA: &str = "public";

/// `s` as a double-quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An identifier as the catalog knows it: folded to lower case unless it
/// was quoted (PostgreSQL's rule).
pub fn normalize_ident(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_ascii_lowercase()
    }
}

/// The last part of a (possibly qualified) name, as the catalog knows
/// it; empty when it is not an identifier.
pub fn last_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .unwrap_or_default()
}

/// The relation name of an object name, which may be qualified by our
/// database and `public`.
pub fn table_name(name: &ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(normalize_ident)
        .collect();
    match parts.as_slice() {
        [t] => Ok(t.clone()),
        [s, t] if s == SCHEMA => Ok(t.clone()),
        [d, s, t] if d == DATABASE && s == SCHEMA => Ok(t.clone()),
        [s, _] => Err(PlannerError::not_supported(format!(
            "schema \"{s}\" (tables live in \"public\")"
        ))),
        _ => Err(PlannerError::Syntax(format!(
            "improper qualified name: {name}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_unless_quoted_and_accept_our_qualifiers() {
        let name = |parts: &[Ident]| ObjectName::from(parts.to_vec());
        assert_eq!(table_name(&name(&[Ident::new("T")])).unwrap(), "t");
        assert_eq!(
            table_name(&name(&[Ident::with_quote('"', "T")])).unwrap(),
            "T"
        );
        assert_eq!(
            table_name(&name(&[
                Ident::new("freshet"),
                Ident::new("public"),
                Ident::new("x")
            ]))
            .unwrap(),
            "x"
        );
        assert!(matches!(
            table_name(&name(&[Ident::new("other"), Ident::new("x")])),
            Err(PlannerError::NotSupported(_))
        ));
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
