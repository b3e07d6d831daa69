use std::collections::BTreeSet;

// ---------------------------------------------------------------------------
// Schema model
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub(crate) enum Ty {
    Int,
    Text,
    Num,
    Bool,
}

pub(crate) const ALL_TYS: [Ty; 4] = [Ty::Int, Ty::Text, Ty::Num, Ty::Bool];

impl Ty {
    fn sql(self) -> &'static str {
        match self {
            Ty::Int => "int",
            Ty::Text => "text",
            Ty::Num => "numeric(10,2)",
            Ty::Bool => "boolean",
        }
    }

    /// sqllogictest column type letter (documentation only).
    pub(crate) fn slt(self) -> char {
        match self {
            Ty::Int => 'I',
            Ty::Num => 'R',
            Ty::Text | Ty::Bool => 'T',
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Col {
    pub(crate) name: String,
    pub(crate) ty: Ty,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RelKind {
    Table,
    View,
    Cte,
}

/// Something a query can read from: a table, an earlier view, a CTE.
#[derive(Clone, Debug)]
pub(crate) struct Rel {
    pub(crate) name: String,
    pub(crate) cols: Vec<Col>,
    pub(crate) kind: RelKind,
}

/// A column visible in a query scope: how to reference it, its bare name
/// (used to name output columns) and its type.
#[derive(Clone, Debug)]
pub(crate) struct SCol {
    pub(crate) sql: String,
    pub(crate) name: String,
    pub(crate) ty: Ty,
}

pub(crate) fn scope_of(rel: &Rel, alias: &str) -> Vec<SCol> {
    rel.cols
        .iter()
        .map(|c| SCol {
            sql: format!("{alias}.{}", c.name),
            name: c.name.clone(),
            ty: c.ty,
        })
        .collect()
}

pub(crate) fn cols_of(scope: &[SCol], ty: Ty) -> Vec<&SCol> {
    scope.iter().filter(|c| c.ty == ty).collect()
}

/// A FROM clause and the columns it brings into scope.
pub(crate) struct Source {
    pub(crate) sql: String,
    pub(crate) scope: Vec<SCol>,
    pub(crate) is_join: bool,
}

/// A generated query and its output columns.
pub(crate) struct Query {
    pub(crate) sql: String,
    pub(crate) cols: Vec<Col>,
}

/// Unique output column names within one SELECT list.
#[derive(Default)]
pub(crate) struct Names(BTreeSet<String>);

impl Names {
    pub(crate) fn take(&mut self, base: &str) -> String {
        if self.0.insert(base.to_string()) {
            return base.to_string();
        }
        for i in 2.. {
            let n = format!("{base}_{i}");
            if self.0.insert(n.clone()) {
                return n;
            }
        }
        unreachable!()
    }
}

/// See [`CaseGen::window_cols`]: select items, their output columns, the
/// PARTITION BY expressions, the ORDER BY items and the ordered columns.
#[derive(Default)]
pub(crate) struct WindowCols {
    pub(crate) items: Vec<String>,
    pub(crate) cols: Vec<Col>,
    pub(crate) parts: Vec<String>,
    pub(crate) order: Vec<String>,
    pub(crate) ordered: Vec<SCol>,
}

#[derive(Clone, Debug)]
pub(crate) struct TableDef {
    pub(crate) name: String,
    /// `cols[0]` is the primary key `id int`.
    pub(crate) cols: Vec<Col>,
}

impl TableDef {
    pub(crate) fn create_sql(&self) -> String {
        let mut cols = vec!["id int PRIMARY KEY".to_string()];
        for c in &self.cols[1..] {
            cols.push(format!("{} {}", c.name, c.ty.sql()));
        }
        format!("CREATE TABLE {} ({})", self.name, cols.join(", "))
    }

    pub(crate) fn rel(&self) -> Rel {
        Rel {
            name: self.name.clone(),
            cols: self.cols.clone(),
            kind: RelKind::Table,
        }
    }

    /// The table's columns, unqualified (for UPDATE/DELETE predicates).
    pub(crate) fn bare_scope(&self) -> Vec<SCol> {
        self.cols
            .iter()
            .map(|c| SCol {
                sql: c.name.clone(),
                name: c.name.clone(),
                ty: c.ty,
            })
            .collect()
    }
}

/// A table and what the generator knows of its keys.
pub(crate) struct TableState {
    pub(crate) def: TableDef,
    /// The ids in the table after the last statement.
    pub(crate) ids: Vec<i64>,
    /// The largest id ever used; fresh ids are above it.
    pub(crate) max_id: i64,
}

// ---------------------------------------------------------------------------
// Literals and values
// ---------------------------------------------------------------------------

pub(crate) const TEXTS: [&str; 7] = ["a", "b", "c", "ab", "B", "ba", ""];
pub(crate) const TEXT_WEIGHTS: [u32; 7] = [6, 6, 4, 3, 2, 2, 1];
pub(crate) const NUMS: [&str; 9] = [
    "-2.50", "-1.00", "0.00", "0.25", "0.50", "1.50", "2.00", "3.75", "10.00",
];
