//! `pg_catalog` rows for Freshet's own tables, as Postgres would show them.
//!
//! `datafusion-pg-catalog` derives `pg_class` / `pg_attribute` from Arrow
//! schemas, so it cannot know a column's declared type (`numeric(10,2)`,
//! `varchar(20)`, `jsonb` are all just Arrow types), its DEFAULT, or a
//! table's primary key. This module wraps that crate's `pg_catalog` schema
//! and answers these tables from Freshet's [`TableDef`]s instead:
//!
//! - `pg_class`: the crate's rows for system relations, plus one row per
//!   user table and one per primary-key index (`<table>_pkey`);
//! - `pg_attribute`: declared type OID and typmod, NOT NULL, `atthasdef`;
//! - `pg_attrdef`: one row per DEFAULT, with the expression text in `adbin`
//!   (our `pg_get_expr` returns that text);
//! - `pg_index`: the primary key and secondary indexes; `pg_constraint`:
//!   the primary key.
//!
//! User relations get fixed OIDs derived from the table id ([`table_oid`]),
//! far above the range the crate hands out (which starts at 16384 and grows
//! by one per relation it sees), so every catalog table and function agrees
//! on them without shared state. `pg_namespace` stays the crate's; our rows
//! use its OID for `public`.
//!
//! Functions registered here: `pg_get_expr`, `pg_get_indexdef`,
//! `pg_get_constraintdef` (for our constraints), `to_regtype`, and
//! `freshet_column_default(attrelid, attnum)`, which [`rewrite_query`]
//! substitutes for the correlated `pg_attrdef` subquery psql and SQLAlchemy
//! use to show defaults (the compatibility parser would otherwise replace
//! that subquery with NULL).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, Int64Array, Int64Builder, ListBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableProviderFilterPushDown, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    self, Expr as SqlExpr, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};

use crate::catalog::TableDef;
use crate::table::TableMap;
use crate::types::SqlType;

/// OIDs of user relations: `BASE + 4 * table id`, then its primary-key
/// index (+1) and constraint (+2).
const USER_OID_BASE: i64 = 1 << 30;
/// OIDs of `pg_attrdef` rows: `BASE + 2048 * table id + attnum`.
const ATTRDEF_OID_BASE: i64 = 3 << 29;

/// OID of the `information_schema` namespace (Postgres assigns it at initdb;
/// any value outside the other ranges works).
const INFORMATION_SCHEMA_OID: i64 = 13_000;

pub fn table_oid(def: &TableDef) -> i64 {
    USER_OID_BASE + 4 * def.id as i64
}
fn index_oid(def: &TableDef) -> i64 {
    table_oid(def) + 1
}
fn constraint_oid(def: &TableDef) -> i64 {
    table_oid(def) + 2
}

/// `pg_index` vector columns, served as arrays of these element types.
const INDEX_VECTORS: [(&str, DataType); 4] = [
    ("indkey", DataType::Int16),
    ("indcollation", DataType::Int32),
    ("indclass", DataType::Int32),
    ("indoption", DataType::Int16),
];

/// The OID of role `name`: the bootstrap role's is PostgreSQL's 10, every
/// other a hash of the name (roles exist only as the users that connect
/// and own what they created).
pub fn role_oid(name: Option<&str>) -> i64 {
    match name {
        None => OWNER_OID,
        Some(n) if n == crate::catalog::BOOTSTRAP_ROLE => OWNER_OID,
        Some(n) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            n.hash(&mut h);
            ROLE_OID_BASE + (h.finish() % ROLE_OID_SPAN) as i64
        }
    }
}

/// The name of role `oid` among `owners`, as `pg_get_userbyid` gives it.
pub fn role_name(oid: i64, owners: &[String]) -> String {
    if oid == OWNER_OID {
        return crate::catalog::BOOTSTRAP_ROLE.to_string();
    }
    owners
        .iter()
        .find(|o| role_oid(Some(o)) == oid)
        .cloned()
        .unwrap_or_else(|| format!("unknown (OID={oid})"))
}

/// Role OIDs: between the information_schema OID and the crate's range.
const ROLE_OID_BASE: i64 = 1 << 20;
const ROLE_OID_SPAN: u64 = 1 << 28;

/// The owner OID Postgres gives the bootstrap superuser.
const OWNER_OID: i64 = 10;
const BTREE_AM_OID: i64 = 403;
const HEAP_AM_OID: i64 = 2;
const DEFAULT_COLLATION_OID: i64 = 100;

fn defs(tables: &TableMap) -> Vec<Arc<TableDef>> {
    let mut v: Vec<Arc<TableDef>> = tables
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|t| t.def.clone())
        .collect();
    v.sort_by_key(|d| d.id);
    v
}

/// An index as the catalog shows it: a table's primary key or a secondary
/// index (`CREATE INDEX`, whose OID is `BASE + 4 * index id + 1`).
pub(super) struct ShownIndex {
    oid: i64,
    name: String,
    table: Arc<TableDef>,
    columns: Vec<usize>,
    /// See [`crate::catalog::IndexDef::orders`].
    orders: Vec<String>,
    primary: bool,
    unique: bool,
    owner: Option<String>,
}

/// Every index of every table, by table then creation.
fn shown_indexes(tables: &TableMap) -> Vec<ShownIndex> {
    let mut stored: Vec<Arc<crate::table::StoredTable>> = tables
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    stored.sort_by_key(|t| t.def.id);
    let mut out = Vec::new();
    for t in stored {
        let d = &t.def;
        if !d.primary_key.is_empty() {
            out.push(ShownIndex {
                oid: index_oid(d),
                name: d.pkey_name(),
                table: d.clone(),
                columns: d.primary_key.clone(),
                orders: Vec::new(),
                primary: true,
                unique: true,
                owner: d.owner.clone(),
            });
        }
        for ix in t.indexes() {
            out.push(ShownIndex {
                oid: USER_OID_BASE + 4 * ix.def.id as i64 + 1,
                name: ix.def.name.clone(),
                table: d.clone(),
                columns: ix.def.columns.clone(),
                orders: ix.def.orders.clone(),
                primary: false,
                unique: ix.def.unique,
                owner: ix.def.owner.clone(),
            });
        }
    }
    out
}

/// `CREATE [UNIQUE] INDEX name ON public.t USING btree (a, b)`, as
/// `pg_get_indexdef` and `pg_indexes` show an index.
fn index_definition(ix: &ShownIndex) -> String {
    let d = &ix.table;
    let cols: Vec<String> = ix
        .columns
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let name = functions::quote(&d.columns[i].name);
            match ix.orders.get(k).filter(|o| !o.is_empty()) {
                Some(o) => format!("{name} {o}"),
                None => name,
            }
        })
        .collect();
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if ix.unique { "UNIQUE " } else { "" },
        functions::quote(&ix.name),
        crate::names::SCHEMA,
        functions::quote(&d.name),
        cols.join(", ")
    )
}

/// The `pg_indexes` view: one row per index of a user table.
fn pg_indexes(tables: &TableMap) -> DfResult<Arc<dyn TableProvider>> {
    let indexes = shown_indexes(tables);
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("tablename", DataType::Utf8, true),
        Field::new("indexname", DataType::Utf8, true),
        Field::new("tablespace", DataType::Utf8, true),
        Field::new("indexdef", DataType::Utf8, true),
    ]));
    let column = |f: &dyn Fn(&ShownIndex) -> Option<String>| -> ArrayRef {
        Arc::new(indexes.iter().map(f).collect::<StringArray>())
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            column(&|_| Some(crate::names::SCHEMA.to_string())),
            column(&|ix| Some(ix.table.name.clone())),
            column(&|ix| Some(ix.name.clone())),
            column(&|_| None),
            column(&|ix| Some(index_definition(ix))),
        ],
    )?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// Qualifies this module's own views (`pg_indexes`), which the
/// compatibility parser does not know, with `pg_catalog.`.
pub fn qualify_views(stmts: &mut [Statement]) {
    for s in stmts {
        let _ = ast::visit_relations_mut(s, |name| {
            let ours = matches!(name.0.as_slice(), [p] if p.as_ident().is_some_and(|i| i.value.eq_ignore_ascii_case("pg_indexes")));
            if ours {
                name.0.insert(
                    0,
                    ast::ObjectNamePart::Identifier(ast::Ident::new("pg_catalog")),
                );
            }
            ControlFlow::<()>::Continue(())
        });
    }
}

/// The table whose relation (`Table`), index or constraint has this OID.
fn def_by_oid(tables: &TableMap, oid: i64) -> Option<(Arc<TableDef>, i64)> {
    if !(USER_OID_BASE..ATTRDEF_OID_BASE).contains(&oid) {
        return None;
    }
    let id = (oid - USER_OID_BASE) / 4;
    let kind = (oid - USER_OID_BASE) % 4;
    let def = tables
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .find(|t| t.def.id as i64 == id)?
        .def
        .clone();
    Some((def, kind))
}

/// Registers the wrapped `pg_catalog` schema and the catalog functions in a
/// context on which `datafusion_pg_catalog::setup_pg_catalog` already ran.
pub fn register(ctx: &SessionContext, database: &str, tables: TableMap) -> crate::Result<()> {
    let catalog = ctx
        .catalog(database)
        .ok_or_else(|| DataFusionError::Internal(format!("no catalog {database}")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| DataFusionError::Internal("pg_catalog is not set up".into()))?;
    catalog.register_schema(
        "pg_catalog",
        Arc::new(FreshetPgCatalog {
            inner,
            tables: tables.clone(),
        }),
    )?;
    for (name, kind) in [
        ("pg_get_expr", FnKind::GetExpr),
        ("pg_get_indexdef", FnKind::IndexDef),
        ("pg_get_constraintdef", FnKind::ConstraintDef),
        ("to_regtype", FnKind::ToRegtype),
        ("current_setting", FnKind::CurrentSetting),
        (COLUMN_DEFAULT_FN, FnKind::ColumnDefault),
        ("pg_get_userbyid", FnKind::UserById),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(CatalogFn::new(
            name,
            kind,
            tables.clone(),
        )));
    }
    Ok(())
}

#[derive(Debug)]
struct FreshetPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    tables: TableMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patched {
    Class,
    Attribute,
    AttrDef,
    Index,
    Constraint,
    Namespace,
    Database,
}

impl Patched {
    fn of(name: &str) -> Option<Patched> {
        Some(match name {
            "pg_class" => Patched::Class,
            "pg_attribute" => Patched::Attribute,
            "pg_attrdef" => Patched::AttrDef,
            "pg_index" => Patched::Index,
            "pg_constraint" => Patched::Constraint,
            "pg_namespace" => Patched::Namespace,
            "pg_database" => Patched::Database,
            _ => return None,
        })
    }
}

#[async_trait]
impl SchemaProvider for FreshetPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        if !names.iter().any(|n| n == "pg_indexes") {
            names.push("pg_indexes".into());
        }
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case("pg_indexes") {
            return Ok(Some(pg_indexes(&self.tables)?));
        }
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        match Patched::of(&name.to_ascii_lowercase()) {
            Some(kind) => Ok(Some(Arc::new(PatchedTable {
                kind,
                inner: table,
                schema_provider: self.inner.clone(),
                tables: self.tables.clone(),
            }))),
            None => Ok(Some(table)),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case("pg_indexes") || self.inner.table_exist(name)
    }
}

/// A crate catalog table with Freshet's rows merged in.
#[derive(Debug)]
struct PatchedTable {
    kind: Patched,
    inner: Arc<dyn TableProvider>,
    schema_provider: Arc<dyn SchemaProvider>,
    tables: TableMap,
}

async fn scan_all(table: &dyn TableProvider, state: &dyn Session) -> DfResult<RecordBatch> {
    let plan: Arc<dyn ExecutionPlan> = table.scan(state, None, &[], None).await?;
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
    concat_batches(&table.schema(), &batches).map_err(Into::into)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> DfResult<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("catalog column {name} missing")))
}

/// Values of an integer (OID) column as i64.
fn ints(a: &ArrayRef) -> DfResult<Int64Array> {
    Ok(cast(a, &DataType::Int64)?
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .expect("cast to Int64"))
}

type Row = HashMap<&'static str, ScalarValue>;

fn int(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}
fn text(v: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(v.into()))
}
fn boolean(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// Rows (column name → value) as a batch of `schema`; a column a row does
/// not mention is NULL when nullable, else zero / empty / false.
fn build_rows(schema: &SchemaRef, rows: &[Row]) -> DfResult<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        if rows.is_empty() {
            columns.push(new_null_array(f.data_type(), 0));
            continue;
        }
        let mut values = Vec::with_capacity(rows.len());
        for r in rows {
            let v = match r.get(f.name().as_str()) {
                Some(v) => v.cast_to(f.data_type())?,
                None if f.is_nullable() => ScalarValue::try_from(f.data_type())?,
                None => match f.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        text("").cast_to(f.data_type())?
                    }
                    DataType::Boolean => boolean(false),
                    t => ScalarValue::new_zero(t)?,
                },
            };
            values.push(v);
        }
        columns.push(ScalarValue::iter_to_array(values)?);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The crate's rows minus those where `column` is in `drop`.
fn without(
    batch: &RecordBatch,
    column_name: &str,
    drop: impl Fn(i64) -> bool,
) -> DfResult<RecordBatch> {
    let c = ints(column(batch, column_name)?)?;
    let keep: BooleanArray = c
        .iter()
        .map(|v| Some(!v.map(&drop).unwrap_or(false)))
        .collect();
    Ok(filter_record_batch(batch, &keep)?)
}

/// (typlen, typbyval, typalign, typstorage) of a type, as in Postgres.
fn type_layout(t: &SqlType) -> (i64, bool, &'static str, &'static str) {
    match t {
        SqlType::Bool => (1, true, "c", "p"),
        SqlType::Int2 => (2, true, "s", "p"),
        SqlType::Int4 | SqlType::Float4 | SqlType::Date => (4, true, "i", "p"),
        SqlType::Int8
        | SqlType::Float8
        | SqlType::Time
        | SqlType::Timestamp
        | SqlType::TimestampTz => (8, true, "d", "p"),
        SqlType::Interval => (16, false, "d", "p"),
        SqlType::Numeric { .. } => (-1, false, "i", "m"),
        SqlType::Text | SqlType::Varchar(_) | SqlType::Bytea | SqlType::Jsonb => {
            (-1, false, "i", "x")
        }
        SqlType::Array(_) => (-1, false, "d", "x"),
    }
}

fn collatable(t: &SqlType) -> bool {
    matches!(t, SqlType::Text | SqlType::Varchar(_))
}

mod functions;
mod rewrite;
mod rows;

use functions::{CatalogFn, FnKind, COLUMN_DEFAULT_FN};
pub use rewrite::rewrite_query;
