//! Tables: `CREATE TABLE` and `DROP TABLE | VIEW | MATERIALIZED VIEW`
//! (with `CASCADE` through dependent views). Views are created in
//! `views.rs`; dropping is the same for every relation kind.

use std::sync::Arc;

use datafusion::common::DFSchema;
use datafusion::sql::sqlparser::ast::{self, Expr as SqlExpr, ObjectType, Statement};
use freshet_storage::Txn;

use super::{CommandTag, Engine, Output};
use crate::catalog::{Catalog, ColumnDef, ConnectorDef, RelKind, TableDef, ROWID_COLUMN};
use crate::names::{normalize_ident, table_name};
use crate::types::SqlType;
use crate::{PlannerError, Result};

/// A planned DDL statement on tables.
#[derive(Debug, Clone)]
pub enum DdlPlan {
    CreateTable {
        def: Box<TableDef>,
        if_not_exists: bool,
    },
    DropRelations {
        kind: RelKind,
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    CreateFunction {
        def: crate::catalog::FunctionDef,
        or_replace: bool,
    },
    DropFunctions {
        names: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    CreateIndex(super::index_ddl::CreateIndexPlan),
    DropIndexes {
        names: Vec<String>,
        if_exists: bool,
    },
}

/// Plans a DDL statement; `None` if `stmt` is not one of this module's.
pub(super) fn plan(stmt: &Statement) -> Result<Option<DdlPlan>> {
    Ok(Some(match stmt {
        Statement::CreateTable(ct) => plan_create_table(ct)?,
        Statement::CreateIndex(ci) => DdlPlan::CreateIndex(super::index_ddl::plan_create(ci)?),
        Statement::Drop {
            object_type: ObjectType::Index,
            if_exists,
            names,
            ..
        } => DdlPlan::DropIndexes {
            names: super::index_ddl::index_names(names)?,
            if_exists: *if_exists,
        },
        Statement::CreateFunction(cf) => DdlPlan::CreateFunction {
            def: crate::sqlfunc::definition(cf)?,
            or_replace: cf.or_replace,
        },
        Statement::DropFunction(df) => DdlPlan::DropFunctions {
            names: df
                .func_desc
                .iter()
                .map(|f| {
                    f.name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(crate::names::normalize_ident)
                        .ok_or_else(|| PlannerError::Syntax("a function name".into()))
                })
                .collect::<Result<_>>()?,
            if_exists: df.if_exists,
            cascade: matches!(df.drop_behavior, Some(ast::DropBehavior::Cascade)),
        },
        Statement::Drop {
            object_type:
                object_type @ (ObjectType::Table
                | ObjectType::MaterializedView
                | ObjectType::View
                | ObjectType::Stream),
            if_exists,
            names,
            cascade,
            ..
        } => DdlPlan::DropRelations {
            kind: match object_type {
                ObjectType::Table => RelKind::Table,
                ObjectType::MaterializedView => RelKind::MaterializedView,
                // `DROP SOURCE` (crate::parse).
                ObjectType::Stream => RelKind::Source,
                _ => RelKind::View,
            },
            names: names.iter().map(table_name).collect::<Result<_>>()?,
            if_exists: *if_exists,
            cascade: *cascade,
        },
        _ => return Ok(None),
    }))
}

impl Engine {
    pub(super) async fn exec_ddl(&self, plan: &DdlPlan, user: &str) -> Result<Output> {
        match plan {
            DdlPlan::CreateTable { def, if_not_exists } => {
                let mut def = def.as_ref().clone();
                def.owner = Some(user.to_string());
                self.exec_create_table(def, *if_not_exists).await
            }
            DdlPlan::DropRelations {
                kind,
                names,
                if_exists,
                cascade,
            } => {
                self.exec_drop_relations(*kind, names, *if_exists, *cascade)
                    .await
            }
            DdlPlan::CreateFunction { def, or_replace } => {
                let mut def = def.clone();
                def.owner = Some(user.to_string());
                self.exec_create_function(def, *or_replace).await
            }
            DdlPlan::DropFunctions {
                names,
                if_exists,
                cascade,
            } => self.exec_drop_functions(names, *if_exists, *cascade).await,
            DdlPlan::CreateIndex(p) => self.exec_create_index(p, user).await,
            DdlPlan::DropIndexes { names, if_exists } => {
                self.exec_drop_indexes(names, *if_exists).await
            }
        }
    }

    async fn exec_create_function(
        &self,
        def: crate::catalog::FunctionDef,
        or_replace: bool,
    ) -> Result<Output> {
        let _w = self.writer.lock().await;
        if self.catalog().functions().contains_key(&def.name) {
            if !or_replace {
                return Err(PlannerError::DuplicateFunction(def.name.clone()));
            }
            // A view's state was computed with the body it was created with.
            let users = self
                .catalog()
                .dependants(&crate::catalog::function_dependency(&def.name));
            if let Some(v) = users.first() {
                return Err(PlannerError::DependentObjects {
                    what: format!("function {}", def.name),
                    detail: format!(
                        "{} {} depends on function {}",
                        v.kind.noun(),
                        v.name,
                        def.name
                    ),
                });
            }
        }
        // The body must plan, with arguments of the declared types.
        let mut check = crate::sqlfunc::check_query(&def)?;
        let mut functions = self.catalog().functions().clone();
        functions.remove(&def.name);
        crate::sqlfunc::inline(&mut check, &functions)?;
        self.whole_rows(&mut check)?;
        crate::rewrite::apply(&mut check, "freshet")?;
        self.df_plan(&self.query_ctx, check).await?;
        let mut txn = freshet_storage::Txn::new();
        crate::catalog::Catalog::write_function(&def, &mut txn)?;
        self.store.commit(txn)?;
        self.catalog().insert_function(Arc::new(def));
        Ok(Output::Command(CommandTag::new("CREATE FUNCTION")))
    }

    async fn exec_drop_functions(
        &self,
        names: &[String],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Output> {
        let _w = self.writer.lock().await;
        if cascade {
            return Err(PlannerError::not_supported("DROP FUNCTION … CASCADE"));
        }
        let mut txn = freshet_storage::Txn::new();
        let mut dropped = Vec::new();
        for name in names {
            if !self.catalog().functions().contains_key(name) {
                if if_exists {
                    continue;
                }
                return Err(PlannerError::UndefinedFunction(format!(
                    "function {name} does not exist"
                )));
            }
            let users = self
                .catalog()
                .dependants(&crate::catalog::function_dependency(name));
            if let Some(v) = users.first() {
                return Err(PlannerError::DependentObjects {
                    what: format!("function {name}"),
                    detail: format!("{} {} depends on function {name}", v.kind.noun(), v.name),
                });
            }
            crate::catalog::Catalog::drop_function(name, &mut txn);
            dropped.push(name.clone());
        }
        self.store.commit(txn)?;
        for name in dropped {
            self.catalog().remove_function(&name);
        }
        Ok(Output::Command(CommandTag::new("DROP FUNCTION")))
    }

    async fn exec_create_table(&self, mut def: TableDef, if_not_exists: bool) -> Result<Output> {
        let mut writer = self.writer.lock().await;
        let tag = match def.kind {
            RelKind::Source => "CREATE SOURCE",
            _ => "CREATE TABLE",
        };
        if self.catalog().relation_exists(&def.name) {
            if if_not_exists {
                return Ok(Output::Command(CommandTag::new(tag)));
            }
            return Err(PlannerError::DuplicateTable(def.name));
        }
        // Check the defaults parse before anything is written.
        for c in &def.columns {
            if let Some(sql) = &c.default {
                self.query_ctx.parse_sql_expr(sql, &DFSchema::empty())?;
            }
        }
        // A connector's options are checked before anything is written.
        if def.connector.is_some() {
            super::sources::check_connector(&def)?;
        }
        let mut txn = Txn::new();
        // The dead-letter table comes with the first source that needs it.
        let mut dead_letters = None;
        if def.connector.is_some()
            && super::sources::keeps_dead_letters(&def)
            && !self.catalog().relation_exists(super::sources::DEAD_LETTERS)
        {
            let mut d = super::sources::dead_letters_table();
            d.id = self.catalog().allocate_id(&mut txn);
            d.owner = def.owner.clone();
            Catalog::write_table(&d, &mut txn)?;
            dead_letters = Some(Arc::new(d));
        }
        def.id = self.catalog().allocate_id(&mut txn);
        // Base tables are bulk-loaded and read by key now and then: the
        // state cache does not follow every write of a load into them.
        self.store.cache_not_whole(def.id);
        Catalog::write_table(&def, &mut txn)?;
        self.store.commit(txn)?;
        if let Some(d) = dead_letters {
            self.catalog().insert(d.clone());
            self.register_table(d)?;
        }
        let def = Arc::new(def);
        self.catalog().insert(def.clone());
        self.register_table(def)?;
        // A table with a connector is fed from now on (a source, once a
        // view reads it).
        self.sync_sources(&mut writer)?;
        Ok(Output::Command(CommandTag::new(tag)))
    }

    /// `DROP TABLE | MATERIALIZED VIEW | VIEW names [CASCADE]`.
    pub(super) async fn exec_drop_relations(
        &self,
        kind: RelKind,
        names: &[String],
        if_exists: bool,
        cascade: bool,
    ) -> Result<Output> {
        let mut writer = self.writer.lock().await;
        let mut named: Vec<Arc<TableDef>> = Vec::new();
        for n in names {
            match self.catalog().get(n).cloned() {
                Some(d) if d.kind != kind => {
                    return Err(PlannerError::WrongObjectType(format!(
                        "\"{n}\" is not a {}",
                        kind.noun()
                    )))
                }
                Some(d) => named.push(d),
                None if if_exists => {}
                None => return Err(PlannerError::UndefinedTable(n.clone())),
            }
        }
        // Everything that depends on what is dropped, transitively.
        let mut all: Vec<Arc<TableDef>> = named.clone();
        let mut i = 0;
        while i < all.len() {
            for dep in self.catalog().dependants(&all[i].name) {
                if all.iter().any(|d| d.name == dep.name) {
                    continue;
                }
                if !cascade {
                    return Err(PlannerError::DependentObjects {
                        what: format!("{} {}", all[i].kind.noun(), all[i].name),
                        detail: format!(
                            "{} {} depends on {} {}",
                            dep.kind.noun(),
                            dep.name,
                            all[i].kind.noun(),
                            all[i].name
                        ),
                    });
                }
                all.push(dep);
            }
            i += 1;
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.id));
        let mut txn = Txn::new();
        let mut indexes = Vec::new();
        for d in &all {
            Catalog::drop_table(d, &mut txn);
            for ix in self.catalog().indexes_on(d.id) {
                Catalog::drop_index(&ix, &mut txn);
                indexes.push(ix);
            }
        }
        if !txn.is_empty() {
            self.store.commit(txn)?;
        }
        for ix in &indexes {
            self.forget_index(ix);
        }
        for d in &all {
            writer.runtime.remove(&d.name);
            self.catalog().remove(&d.name);
            self.unregister_table(&d.name);
            self.views
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.name);
        }
        // Sources no longer read (or dropped) stop.
        self.sync_sources(&mut writer)?;
        let tag = match kind {
            RelKind::Table => "DROP TABLE",
            RelKind::MaterializedView => "DROP MATERIALIZED VIEW",
            RelKind::View => "DROP VIEW",
            RelKind::Source => "DROP SOURCE",
        };
        Ok(Output::Command(CommandTag::new(tag)))
    }
}

fn plan_create_table(ct: &ast::CreateTable) -> Result<DdlPlan> {
    if ct.query.is_some() {
        return Err(PlannerError::not_supported("CREATE TABLE AS"));
    }
    if ct.temporary {
        return Err(PlannerError::not_supported("temporary tables"));
    }
    let name = table_name(&ct.name)?;
    if name == ROWID_COLUMN {
        return Err(PlannerError::InvalidParameterValue("reserved name".into()));
    }
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut primary_key: Vec<usize> = Vec::new();
    for c in &ct.columns {
        let cname = normalize_ident(&c.name);
        if cname == ROWID_COLUMN {
            return Err(PlannerError::InvalidParameterValue(format!(
                "column name \"{ROWID_COLUMN}\" is reserved"
            )));
        }
        if columns.iter().any(|x| x.name == cname) {
            return Err(PlannerError::DuplicateColumn(cname));
        }
        let mut col = ColumnDef {
            name: cname,
            sql_type: SqlType::from_ast(&c.data_type)?,
            not_null: false,
            default: None,
        };
        for o in &c.options {
            match &o.option {
                ast::ColumnOption::NotNull => col.not_null = true,
                ast::ColumnOption::Null => col.not_null = false,
                ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ast::ColumnOption::PrimaryKey(_) => {
                    if !primary_key.is_empty() {
                        return Err(PlannerError::InvalidTableDefinition(format!(
                            "multiple primary keys for table \"{name}\" are not allowed"
                        )));
                    }
                    col.not_null = true;
                    primary_key.push(columns.len());
                }
                other => {
                    return Err(PlannerError::not_supported(format!(
                        "column constraint {other}"
                    )))
                }
            }
        }
        columns.push(col);
    }
    // `WITH (…)`: APPEND ONLY's option, a connector's options (and what
    // crate::parse made of RisingWave's source clauses); PostgreSQL's
    // storage parameters (fillfactor, autovacuum_*) mean nothing here and
    // are accepted.
    let mut append_only = false;
    let mut source = false;
    let mut connector: Option<ConnectorDef> = None;
    let mut connector_options = std::collections::BTreeMap::new();
    if let ast::CreateTableOptions::With(options) = &ct.table_options {
        for o in options {
            let ast::SqlOption::KeyValue { key, value } = o else {
                continue;
            };
            let text = option_text(value)?;
            let k = key.value.clone();
            let lower = k.to_ascii_lowercase();
            match lower.as_str() {
                crate::parse::APPEND_ONLY => append_only = text == "true",
                crate::parse::SOURCE_OPTION => source = true,
                "connector" => {
                    connector.get_or_insert_with(ConnectorDef::default).name =
                        text.trim().to_ascii_lowercase()
                }
                crate::parse::FORMAT_OPTION => {
                    connector.get_or_insert_with(ConnectorDef::default).format = Some(text)
                }
                crate::parse::ENCODE_OPTION => {
                    connector.get_or_insert_with(ConnectorDef::default).encode = Some(text)
                }
                _ if lower.starts_with(crate::parse::ENCODE_PREFIX) => {
                    connector
                        .get_or_insert_with(ConnectorDef::default)
                        .encode_options
                        .insert(k[crate::parse::ENCODE_PREFIX.len()..].to_string(), text);
                }
                _ if lower.starts_with(crate::parse::INCLUDE_PREFIX) => {
                    connector
                        .get_or_insert_with(ConnectorDef::default)
                        .include
                        .push((
                            lower[crate::parse::INCLUDE_PREFIX.len()..].to_string(),
                            text,
                        ));
                }
                _ => {
                    connector_options.insert(k, text);
                }
            }
        }
    }
    let kind = if source {
        RelKind::Source
    } else {
        RelKind::Table
    };
    if let Some(c) = &mut connector {
        if c.name.is_empty() {
            return Err(PlannerError::InvalidParameterValue(
                "option \"connector\" is required".into(),
            ));
        }
        c.options = connector_options;
        c.created_ms = chrono::Utc::now().timestamp_millis();
    } else if source {
        return Err(PlannerError::InvalidParameterValue(
            "a source needs WITH (connector = …)".into(),
        ));
    }
    // `INCLUDE kind [AS name]` (RisingWave's): columns filled from the
    // records' metadata, after the declared ones.
    if let Some(c) = &mut connector {
        for (kind, alias) in c.include.iter_mut() {
            let sql_type = match kind.as_str() {
                "key" => SqlType::Bytea,
                "partition" | "offset" => SqlType::Varchar(None),
                "timestamp" => SqlType::TimestampTz,
                other => return Err(PlannerError::not_supported(format!("INCLUDE {other}"))),
            };
            if alias.is_empty() {
                *alias = format!("_rw_{}_{kind}", c.name);
            }
            if columns.iter().any(|x| &x.name == alias) {
                return Err(PlannerError::DuplicateColumn(alias.clone()));
            }
            columns.push(ColumnDef {
                name: alias.clone(),
                sql_type,
                not_null: false,
                default: None,
            });
        }
    }
    for tc in &ct.constraints {
        match tc {
            ast::TableConstraint::PrimaryKey(pk) => {
                if !primary_key.is_empty() {
                    return Err(PlannerError::InvalidTableDefinition(format!(
                        "multiple primary keys for table \"{name}\" are not allowed"
                    )));
                }
                for ic in &pk.columns {
                    let SqlExpr::Identifier(id) = &ic.column.expr else {
                        return Err(PlannerError::not_supported("expression in PRIMARY KEY"));
                    };
                    let n = normalize_ident(id);
                    let i = columns.iter().position(|c| c.name == n).ok_or_else(|| {
                        PlannerError::UndefinedColumn(format!(
                            "{n}\" named in key does not exist (\""
                        ))
                    })?;
                    columns[i].not_null = true;
                    primary_key.push(i);
                }
            }
            other => {
                return Err(PlannerError::not_supported(format!(
                    "table constraint {other}"
                )))
            }
        }
    }
    if columns.is_empty() {
        return Err(PlannerError::not_supported("tables without columns"));
    }
    if source && !primary_key.is_empty() {
        return Err(PlannerError::not_supported(
            "a primary key on a source (a table WITH (connector = …) keeps rows by key)",
        ));
    }
    if source && append_only {
        return Err(PlannerError::Syntax("APPEND ONLY is for tables".into()));
    }
    Ok(DdlPlan::CreateTable {
        def: Box::new(TableDef {
            id: 0,
            name,
            columns,
            primary_key,
            kind,
            query: None,
            depends_on: vec![],
            state_ids: (0, 0),
            view_key: None,
            append_only,
            owner: None,
            connector,
        }),
        if_not_exists: ct.if_not_exists,
    })
}

/// A `WITH` option's value as text: a string's contents, a number or a
/// word as written.
fn option_text(value: &SqlExpr) -> Result<String> {
    use ast::Value as V;
    Ok(match value {
        SqlExpr::Value(v) => match &v.value {
            V::SingleQuotedString(s) | V::DoubleQuotedString(s) | V::EscapedStringLiteral(s) => {
                s.clone()
            }
            V::Number(n, _) => n.to_string(),
            V::Boolean(b) => b.to_string(),
            other => other.to_string(),
        },
        SqlExpr::Identifier(i) => i.value.clone(),
        SqlExpr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => format!("-{}", option_text(expr)?),
        other => other.to_string(),
    })
}
