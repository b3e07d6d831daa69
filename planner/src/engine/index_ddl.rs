//! `CREATE INDEX` and `DROP INDEX` (the index itself: crate::index).

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr};
use freshet_storage::Txn;

use super::{CommandTag, Engine, Output};
use crate::catalog::{Catalog, IndexDef};
use crate::index::{self, TableIndex};
use crate::names::{normalize_ident, table_name};
use crate::{PlannerError, Result};

/// A planned `CREATE INDEX`.
#[derive(Debug, Clone)]
pub struct CreateIndexPlan {
    /// `None`: PostgreSQL's generated name (`t_a_b_idx`).
    pub name: Option<String>,
    pub table: String,
    pub columns: Vec<String>,
    /// See [`IndexDef::orders`].
    pub orders: Vec<String>,
    pub unique: bool,
    pub if_not_exists: bool,
}

/// The longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;

pub(super) fn plan_create(ci: &ast::CreateIndex) -> Result<CreateIndexPlan> {
    let refuse = |what: &str| Err(PlannerError::not_supported(what.to_string()));
    match &ci.using {
        None | Some(ast::IndexType::BTree) | Some(ast::IndexType::Hash) => {}
        Some(other) => {
            return Err(PlannerError::not_supported(format!(
                "index access method \"{}\"",
                other.to_string().to_lowercase()
            )))
        }
    }
    if ci.predicate.is_some() {
        return refuse("a partial index (CREATE INDEX … WHERE)");
    }
    if !ci.include.is_empty() {
        return refuse("CREATE INDEX … INCLUDE");
    }
    if !ci.with.is_empty() {
        return refuse("CREATE INDEX … WITH (storage parameters)");
    }
    if ci.nulls_distinct.is_some() || !ci.index_options.is_empty() || !ci.alter_options.is_empty() {
        return refuse("these CREATE INDEX options");
    }
    let mut columns = Vec::with_capacity(ci.columns.len());
    let mut orders = Vec::with_capacity(ci.columns.len());
    for c in &ci.columns {
        if c.operator_class.is_some() {
            return refuse("an index operator class");
        }
        // ASC/DESC and NULLS FIRST/LAST change nothing here: an index scan
        // serves equalities and ranges, not an order. They are kept to be
        // shown as PostgreSQL shows them (NULLS FIRST is DESC's default).
        let desc = c.column.options.asc == Some(false);
        let mut order = if desc { "DESC" } else { "" }.to_string();
        match c.column.options.nulls_first {
            Some(first) if first != desc => {
                order = format!("{order} NULLS {}", if first { "FIRST" } else { "LAST" })
                    .trim()
                    .to_string()
            }
            _ => {}
        }
        orders.push(order);
        match &c.column.expr {
            SqlExpr::Identifier(i) => columns.push(normalize_ident(i)),
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 1 => {
                columns.push(normalize_ident(&parts[0]))
            }
            _ => return refuse("an index on an expression"),
        }
    }
    Ok(CreateIndexPlan {
        name: ci.name.as_ref().map(index_name).transpose()?,
        table: table_name(&ci.table_name)?,
        columns,
        orders,
        unique: ci.unique,
        if_not_exists: ci.if_not_exists,
    })
}

/// An index's name (the last part of a qualified one).
fn index_name(n: &ast::ObjectName) -> Result<String> {
    n.0.last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .ok_or_else(|| PlannerError::Syntax("an index name".into()))
}

/// `DROP INDEX` names.
pub(super) fn index_names(names: &[ast::ObjectName]) -> Result<Vec<String>> {
    names.iter().map(index_name).collect()
}

/// PostgreSQL's name for an unnamed index: `table_col1_col2_idx`, cut to
/// 63 bytes, numbered when taken.
fn generated_name(table: &str, columns: &[String], taken: impl Fn(&str) -> bool) -> String {
    let stem = format!("{table}_{}", columns.join("_"));
    for n in 0.. {
        let suffix = if n == 0 {
            "_idx".to_string()
        } else {
            format!("_idx{n}")
        };
        let mut cut = stem.len().min(MAX_IDENT - suffix.len());
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = format!("{}{suffix}", &stem[..cut]);
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("some numbered name is free")
}

impl Engine {
    pub(super) async fn exec_create_index(
        &self,
        plan: &CreateIndexPlan,
        user: &str,
    ) -> Result<Output> {
        let _writer = self.writer.lock().await;
        let table = self.table_def(&plan.table)?;
        match table.kind {
            crate::catalog::RelKind::Table | crate::catalog::RelKind::MaterializedView => {}
            crate::catalog::RelKind::View | crate::catalog::RelKind::Source => {
                return Err(PlannerError::WrongObjectType(format!(
                    "cannot create index on relation \"{}\"",
                    table.name
                )))
            }
        }
        if plan.unique && table.is_materialized_view() {
            // A view's rows follow its query; a violation would have to
            // fail the base-table write that caused it.
            return Err(PlannerError::not_supported(
                "CREATE UNIQUE INDEX on a materialized view",
            ));
        }
        let mut columns = Vec::with_capacity(plan.columns.len());
        for c in &plan.columns {
            columns.push(
                table
                    .column_index(c)
                    .ok_or_else(|| PlannerError::UndefinedColumn(c.clone()))?,
            );
        }
        let name = match &plan.name {
            Some(n) => {
                if self.catalog().relation_exists(n) || *n == table.pkey_name() {
                    if plan.if_not_exists {
                        return Ok(Output::Command(CommandTag::new("CREATE INDEX")));
                    }
                    return Err(PlannerError::DuplicateTable(n.clone()));
                }
                n.clone()
            }
            None => {
                let catalog = self.catalog();
                let pkeys: Vec<String> = catalog.tables().map(|d| d.pkey_name()).collect();
                generated_name(&table.name, &plan.columns, |n| {
                    catalog.relation_exists(n) || pkeys.iter().any(|p| p == n)
                })
            }
        };
        let snapshot = self.store.snapshot();
        let mut txn = Txn::new();
        let def = Arc::new(IndexDef {
            name,
            id: self.catalog().allocate_id(&mut txn),
            table_id: table.id,
            table: table.name.clone(),
            columns,
            orders: plan.orders.clone(),
            unique: plan.unique,
            owner: Some(user.to_string()),
        });
        self.store.cache_not_whole(def.id);
        Catalog::write_index(&def, &mut txn)?;
        let stored = self.stored(&table.name)?;
        let mut live = TableIndex::new(def.clone(), &table, 0)?;
        index::backfill(&live, &table, stored.codec(), &snapshot, &mut txn)?;
        let epoch = self.store.commit(txn)?;
        live.valid_from = epoch;
        self.catalog().insert_index(def.clone());
        self.indexes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(table.id)
            .or_default()
            .push(Arc::new(live));
        Ok(Output::Command(CommandTag::new("CREATE INDEX")))
    }

    pub(super) async fn exec_drop_indexes(
        &self,
        names: &[String],
        if_exists: bool,
    ) -> Result<Output> {
        let _writer = self.writer.lock().await;
        let mut txn = Txn::new();
        let mut dropped = Vec::new();
        for name in names {
            let Some(def) = self.catalog().indexes().get(name).cloned() else {
                if let Some(t) = self.catalog().tables().find(|d| d.pkey_name() == *name) {
                    return Err(PlannerError::DependentObjects {
                        what: format!("index {name}"),
                        detail: format!(
                            "constraint {name} on table {} requires index {name}",
                            t.name
                        ),
                    });
                }
                if self.catalog().get(name).is_some() {
                    return Err(PlannerError::WrongObjectType(format!(
                        "\"{name}\" is not an index"
                    )));
                }
                if if_exists {
                    continue;
                }
                return Err(PlannerError::UndefinedObject(format!(
                    "index \"{name}\" does not exist"
                )));
            };
            Catalog::drop_index(&def, &mut txn);
            dropped.push(def);
        }
        if !txn.is_empty() {
            self.store.commit(txn)?;
        }
        for def in dropped {
            self.forget_index(&def);
        }
        Ok(Output::Command(CommandTag::new("DROP INDEX")))
    }

    /// Removes a dropped index from the catalog and the live map.
    pub(super) fn forget_index(&self, def: &IndexDef) {
        self.catalog().remove_index(&def.name);
        if let Some(v) = self
            .indexes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&def.table_id)
        {
            v.retain(|i| i.def.name != def.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::generated_name;

    #[test]
    fn generated_names_follow_postgres() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(generated_name("t", &cols(&["a"]), |_| false), "t_a_idx");
        assert_eq!(
            generated_name("t", &cols(&["a", "b"]), |n| n == "t_a_b_idx"),
            "t_a_b_idx1"
        );
        let long = "x".repeat(70);
        let n = generated_name(&long, &cols(&["a"]), |_| false);
        assert_eq!(n.len(), 63);
        assert!(n.ends_with("_idx"));
    }
}
