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
//! - `pg_index`, `pg_constraint`: the primary key.
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
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

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
            _ => return None,
        })
    }
}

#[async_trait]
impl SchemaProvider for FreshetPgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
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
        self.inner.table_exist(name)
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

impl PatchedTable {
    async fn public_oid(&self, state: &dyn Session) -> DfResult<i64> {
        let ns = self
            .schema_provider
            .table("pg_namespace")
            .await?
            .ok_or_else(|| DataFusionError::Internal("pg_namespace missing".into()))?;
        let batch = scan_all(ns.as_ref(), state).await?;
        let oids = ints(column(&batch, "oid")?)?;
        let names = cast(column(&batch, "nspname")?, &DataType::Utf8)?;
        let names = names.as_any().downcast_ref::<StringArray>().expect("Utf8");
        (0..batch.num_rows())
            .find(|&i| names.value(i) == crate::engine::SCHEMA)
            .map(|i| oids.value(i))
            .ok_or_else(|| DataFusionError::Internal("no public namespace".into()))
    }

    async fn batch(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let schema = self.inner.schema();
        let inner = scan_all(self.inner.as_ref(), state).await?;
        let defs = defs(&self.tables);
        let mut rows: Vec<Row> = Vec::new();
        let base = match self.kind {
            Patched::Class => {
                let public = self.public_oid(state).await?;
                for d in &defs {
                    let pk = !d.primary_key.is_empty();
                    rows.push(HashMap::from([
                        ("oid", int(table_oid(d))),
                        ("relname", text(&d.name)),
                        ("relnamespace", int(public)),
                        ("relowner", int(OWNER_OID)),
                        ("relam", int(HEAP_AM_OID)),
                        ("relfilenode", int(table_oid(d))),
                        ("reltuples", ScalarValue::Float64(Some(-1.0))),
                        ("relhasindex", boolean(pk)),
                        ("relpersistence", text("p")),
                        (
                            "relkind",
                            text(if d.is_materialized_view() { "m" } else { "r" }),
                        ),
                        ("relnatts", int(d.columns.len() as i64)),
                        ("relispopulated", boolean(true)),
                        ("relreplident", text("d")),
                    ]));
                    if pk {
                        rows.push(HashMap::from([
                            ("oid", int(index_oid(d))),
                            ("relname", text(d.pkey_name())),
                            ("relnamespace", int(public)),
                            ("relowner", int(OWNER_OID)),
                            ("relam", int(BTREE_AM_OID)),
                            ("relfilenode", int(index_oid(d))),
                            ("reltuples", ScalarValue::Float64(Some(-1.0))),
                            ("relpersistence", text("p")),
                            ("relkind", text("i")),
                            ("relnatts", int(d.primary_key.len() as i64)),
                            ("relispopulated", boolean(true)),
                            ("relreplident", text("n")),
                        ]));
                    }
                }
                // The crate's own rows for our tables carry other OIDs.
                without(&inner, "relnamespace", |ns| ns == public)?
            }
            Patched::Attribute => {
                for d in &defs {
                    for (i, c) in d.columns.iter().enumerate() {
                        let (len, byval, align, storage) = type_layout(&c.sql_type);
                        rows.push(HashMap::from([
                            ("attrelid", int(table_oid(d))),
                            ("attname", text(&c.name)),
                            ("atttypid", int(c.sql_type.pg_oid() as i64)),
                            ("attstattarget", int(-1)),
                            ("attlen", int(len)),
                            ("attnum", int(i as i64 + 1)),
                            ("attcacheoff", int(-1)),
                            ("atttypmod", int(c.sql_type.pg_typmod() as i64)),
                            ("attbyval", boolean(byval)),
                            ("attalign", text(align)),
                            ("attstorage", text(storage)),
                            ("attnotnull", boolean(c.not_null)),
                            ("atthasdef", boolean(c.default.is_some())),
                            ("attislocal", boolean(true)),
                            (
                                "attcollation",
                                int(if collatable(&c.sql_type) {
                                    DEFAULT_COLLATION_OID
                                } else {
                                    0
                                }),
                            ),
                        ]));
                    }
                    for (k, &i) in d.primary_key.iter().enumerate() {
                        let c = &d.columns[i];
                        let (len, byval, align, storage) = type_layout(&c.sql_type);
                        rows.push(HashMap::from([
                            ("attrelid", int(index_oid(d))),
                            ("attname", text(&c.name)),
                            ("atttypid", int(c.sql_type.pg_oid() as i64)),
                            ("attlen", int(len)),
                            ("attnum", int(k as i64 + 1)),
                            ("attcacheoff", int(-1)),
                            ("atttypmod", int(c.sql_type.pg_typmod() as i64)),
                            ("attbyval", boolean(byval)),
                            ("attalign", text(align)),
                            ("attstorage", text(storage)),
                            ("attnotnull", boolean(false)),
                            ("attislocal", boolean(true)),
                            (
                                "attcollation",
                                int(if collatable(&c.sql_type) {
                                    DEFAULT_COLLATION_OID
                                } else {
                                    0
                                }),
                            ),
                        ]));
                    }
                }
                let table_oids: Vec<i64> = {
                    // Rows of the crate's for our tables: those whose
                    // attrelid is a relation in `public` (by the crate's OIDs).
                    let public = self.public_oid(state).await?;
                    // (`schema_provider` is the crate's schema: its pg_class.)
                    let class = self
                        .schema_provider
                        .table("pg_class")
                        .await?
                        .ok_or_else(|| DataFusionError::Internal("pg_class missing".into()))?;
                    let b = scan_all(class.as_ref(), state).await?;
                    let oids = ints(column(&b, "oid")?)?;
                    let ns = ints(column(&b, "relnamespace")?)?;
                    (0..b.num_rows())
                        .filter(|&i| ns.value(i) == public)
                        .map(|i| oids.value(i))
                        .collect()
                };
                without(&inner, "attrelid", |r| table_oids.contains(&r))?
            }
            Patched::AttrDef => {
                for d in &defs {
                    for (i, c) in d.columns.iter().enumerate() {
                        if let Some(expr) = &c.default {
                            rows.push(HashMap::from([
                                (
                                    "oid",
                                    int(ATTRDEF_OID_BASE + 2048 * d.id as i64 + i as i64 + 1),
                                ),
                                ("adrelid", int(table_oid(d))),
                                ("adnum", int(i as i64 + 1)),
                                ("adbin", text(expr)),
                            ]));
                        }
                    }
                }
                inner
            }
            Patched::Index => {
                for d in defs.iter().filter(|d| !d.primary_key.is_empty()) {
                    let n = d.primary_key.len();
                    let keys: Vec<String> =
                        d.primary_key.iter().map(|i| (i + 1).to_string()).collect();
                    let zeros = vec!["0"; n].join(" ");
                    let collations: Vec<&str> = d
                        .primary_key
                        .iter()
                        .map(|&i| {
                            if collatable(&d.columns[i].sql_type) {
                                "100"
                            } else {
                                "0"
                            }
                        })
                        .collect();
                    rows.push(HashMap::from([
                        ("indexrelid", int(index_oid(d))),
                        ("indrelid", int(table_oid(d))),
                        ("indnatts", int(n as i64)),
                        ("indnkeyatts", int(n as i64)),
                        ("indisunique", boolean(true)),
                        ("indisprimary", boolean(true)),
                        ("indimmediate", boolean(true)),
                        ("indisvalid", boolean(true)),
                        ("indisready", boolean(true)),
                        ("indislive", boolean(true)),
                        ("indkey", text(keys.join(" "))),
                        ("indcollation", text(collations.join(" "))),
                        ("indclass", text(zeros.clone())),
                        ("indoption", text(zeros)),
                    ]));
                }
                inner
            }
            Patched::Namespace => {
                // DataFusion serves information_schema, but the crate's
                // pg_namespace does not list it.
                let listed = column(&inner, "nspname")?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| a.iter().flatten().any(|n| n == "information_schema"))
                    .unwrap_or(true);
                if !listed {
                    rows.push(HashMap::from([
                        ("oid", int(INFORMATION_SCHEMA_OID)),
                        ("nspname", text("information_schema")),
                        ("nspowner", int(OWNER_OID)),
                    ]));
                }
                inner
            }
            Patched::Constraint => {
                let public = self.public_oid(state).await?;
                for d in defs.iter().filter(|d| !d.primary_key.is_empty()) {
                    let keys: Vec<String> =
                        d.primary_key.iter().map(|i| (i + 1).to_string()).collect();
                    rows.push(HashMap::from([
                        ("oid", int(constraint_oid(d))),
                        ("conname", text(d.pkey_name())),
                        ("connamespace", int(public)),
                        ("contype", text("p")),
                        ("convalidated", boolean(true)),
                        ("conrelid", int(table_oid(d))),
                        ("conindid", int(index_oid(d))),
                        ("confupdtype", text(" ")),
                        ("confdeltype", text(" ")),
                        ("confmatchtype", text(" ")),
                        ("conislocal", boolean(true)),
                        ("connoinherit", boolean(true)),
                        ("conkey", text(format!("{{{}}}", keys.join(",")))),
                    ]));
                }
                inner
            }
        };
        let ours = build_rows(&schema, &rows)?;
        let all = concat_batches(&schema, [&base, &ours])?;
        if self.kind == Patched::Class {
            // `reloptions` (text[]): none of our relations has storage options.
            let target = self.schema();
            let mut columns = all.columns().to_vec();
            columns.push(new_null_array(
                target.field(columns.len()).data_type(),
                all.num_rows(),
            ));
            return Ok(RecordBatch::try_new(target, columns)?);
        }
        if self.kind != Patched::Index {
            return Ok(all);
        }
        // `indkey`, `indclass` … are vectors (int2vector / oidvector), which
        // clients unnest; the crate stores them as text (`1 2`).
        let target = self.schema();
        let mut columns = all.columns().to_vec();
        for (name, _) in INDEX_VECTORS {
            let i = schema.index_of(name)?;
            let texts = cast(&columns[i], &DataType::Utf8)?;
            let texts = texts.as_any().downcast_ref::<StringArray>().expect("Utf8");
            let mut list = ListBuilder::new(Int64Builder::new());
            for t in texts.iter() {
                match t {
                    Some(t) => {
                        for n in t.split(|c: char| {
                            c.is_whitespace()
                                || c == ','
                                || c == '{'
                                || c == '}'
                                || c == '['
                                || c == ']'
                        }) {
                            if let Ok(v) = n.parse::<i64>() {
                                list.values().append_value(v);
                            }
                        }
                        list.append(true);
                    }
                    None => list.append(false),
                }
            }
            let list: ArrayRef = Arc::new(list.finish());
            columns[i] = cast(&list, target.field(i).data_type())?;
        }
        Ok(RecordBatch::try_new(target, columns)?)
    }
}

#[async_trait]
impl TableProvider for PatchedTable {
    fn schema(&self) -> SchemaRef {
        let inner = self.inner.schema();
        if self.kind == Patched::Class {
            let mut fields: Vec<Field> =
                inner.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(
                "reloptions",
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                true,
            ));
            return Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone()));
        }
        if self.kind != Patched::Index {
            return inner;
        }
        let fields: Vec<Field> = inner
            .fields()
            .iter()
            .map(
                |f| match INDEX_VECTORS.iter().find(|(n, _)| n == f.name()) {
                    Some((n, t)) => Field::new(
                        *n,
                        DataType::List(Arc::new(Field::new_list_field(t.clone(), true))),
                        true,
                    ),
                    None => f.as_ref().clone(),
                },
            )
            .collect();
        Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone()))
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.batch(state).await?;
        MemTable::try_new(self.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}

// ---------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------

/// `freshet_column_default(attrelid, attnum)`: the DEFAULT text of a column.
pub const COLUMN_DEFAULT_FN: &str = "freshet_column_default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FnKind {
    /// `pg_get_expr(text, oid [, pretty])`: our `adbin` already is the text.
    GetExpr,
    /// `pg_get_indexdef(oid [, column, pretty])`.
    IndexDef,
    /// `pg_get_constraintdef(oid [, pretty])`.
    ConstraintDef,
    /// `to_regtype(text)`: a built-in type's OID, NULL for unknown names.
    ToRegtype,
    /// `current_setting(name [, missing_ok])`: the server default of a
    /// setting (a function in the shared query context cannot see the
    /// calling session's SETs; `SHOW` does).
    CurrentSetting,
    ColumnDefault,
}

/// Settings that are fixed for the server, beyond the session's.
const SERVER_SETTINGS: &[(&str, &str)] = &[("default_table_access_method", "heap")];

fn current_setting(name: &str) -> Option<String> {
    SERVER_SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .or_else(|| crate::session::Session::new("").get(name).ok())
}

#[derive(Debug)]
struct CatalogFn {
    name: &'static str,
    kind: FnKind,
    tables: TableMap,
    signature: Signature,
}

impl CatalogFn {
    fn new(name: &'static str, kind: FnKind, tables: TableMap) -> Self {
        Self {
            name,
            kind,
            tables,
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl PartialEq for CatalogFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.tables, &other.tables)
    }
}
impl Eq for CatalogFn {}
impl Hash for CatalogFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

fn type_oid_by_name(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    Some(match n {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "unknown" => 705,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

fn arg_ints(a: &ArrayRef) -> DfResult<Int64Array> {
    ints(a)
}

fn arg_texts(a: &ArrayRef) -> DfResult<StringArray> {
    Ok(cast(a, &DataType::Utf8)?
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .expect("cast to Utf8"))
}

fn quote(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .map(|c| c.is_ascii_lowercase() || c == '_')
        .unwrap_or(false)
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        crate::engine::quote_ident(name)
    }
}

impl CatalogFn {
    fn index_def(&self, oid: i64, column: i64) -> Option<String> {
        let (d, kind) = def_by_oid(&self.tables, oid)?;
        if kind != 1 || d.primary_key.is_empty() {
            return None;
        }
        if column > 0 {
            return d
                .primary_key
                .get(column as usize - 1)
                .map(|&i| quote(&d.columns[i].name));
        }
        let cols: Vec<String> = d
            .primary_key
            .iter()
            .map(|&i| quote(&d.columns[i].name))
            .collect();
        Some(format!(
            "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
            quote(&d.pkey_name()),
            crate::engine::SCHEMA,
            quote(&d.name),
            cols.join(", ")
        ))
    }

    fn constraint_def(&self, oid: i64) -> Option<String> {
        let (d, kind) = def_by_oid(&self.tables, oid)?;
        if kind != 2 || d.primary_key.is_empty() {
            return None;
        }
        let cols: Vec<String> = d
            .primary_key
            .iter()
            .map(|&i| quote(&d.columns[i].name))
            .collect();
        Some(format!("PRIMARY KEY ({})", cols.join(", ")))
    }

    fn column_default(&self, oid: i64, attnum: i64) -> Option<String> {
        let (d, kind) = def_by_oid(&self.tables, oid)?;
        if kind != 0 || attnum < 1 {
            return None;
        }
        d.columns.get(attnum as usize - 1)?.default.clone()
    }
}

impl ScalarUDFImpl for CatalogFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            FnKind::ToRegtype => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let arg = |i: usize| -> DfResult<&ArrayRef> {
            arrays.get(i).ok_or_else(|| {
                DataFusionError::Plan(format!("{}: missing argument {}", self.name, i + 1))
            })
        };
        let out: ArrayRef = match self.kind {
            FnKind::GetExpr => Arc::new(arg_texts(arg(0)?)?),
            FnKind::ToRegtype => {
                let names = arg_texts(arg(0)?)?;
                Arc::new(
                    names
                        .iter()
                        .map(|n| n.and_then(type_oid_by_name))
                        .collect::<datafusion::arrow::array::Int32Array>(),
                )
            }
            FnKind::CurrentSetting => {
                let names = arg_texts(arg(0)?)?;
                let missing_ok = match arrays.get(1) {
                    Some(a) => cast(a, &DataType::Boolean)?
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .map(|b| b.iter().any(|v| v == Some(true)))
                        .unwrap_or(false),
                    None => false,
                };
                let mut out = Vec::with_capacity(names.len());
                for n in names.iter() {
                    out.push(match n {
                        None => None,
                        Some(n) => match current_setting(n) {
                            Some(v) => Some(v),
                            None if missing_ok => None,
                            None => {
                                return Err(DataFusionError::Execution(format!(
                                    "unrecognized configuration parameter \"{n}\""
                                )))
                            }
                        },
                    });
                }
                Arc::new(StringArray::from(out))
            }
            FnKind::IndexDef => {
                let oids = arg_ints(arg(0)?)?;
                let cols = match arrays.get(1) {
                    Some(a) => arg_ints(a)?,
                    None => Int64Array::from(vec![0; oids.len()]),
                };
                Arc::new(
                    (0..oids.len())
                        .map(|i| {
                            if oids.is_null(i) {
                                None
                            } else {
                                self.index_def(
                                    oids.value(i),
                                    if cols.is_null(i) { 0 } else { cols.value(i) },
                                )
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
            FnKind::ConstraintDef => {
                let oids = arg_ints(arg(0)?)?;
                Arc::new(
                    oids.iter()
                        .map(|o| o.map(|o| self.constraint_def(o).unwrap_or_default()))
                        .collect::<StringArray>(),
                )
            }
            FnKind::ColumnDefault => {
                let oids = arg_ints(arg(0)?)?;
                let nums = arg_ints(arg(1)?)?;
                Arc::new(
                    (0..oids.len())
                        .map(|i| {
                            if oids.is_null(i) || nums.is_null(i) {
                                None
                            } else {
                                self.column_default(oids.value(i), nums.value(i))
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
        };
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

// ---------------------------------------------------------------------------
// Query rewrites (before the compatibility parser)
// ---------------------------------------------------------------------------

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
    if ![
        "pg_attrdef",
        "pg_sequence",
        "pg_collation",
        "generate_subscripts",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return None;
    }
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
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
            if name.as_deref() == Some("generate_subscripts") {
                if let ast::FunctionArguments::List(list) = &f.args {
                    if let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arr))) =
                        list.args.first()
                    {
                        let call =
                            format!("unnest(range(0, CAST(array_length({arr}, 1) AS BIGINT)))");
                        if let Ok(new) = Parser::new(&PostgreSqlDialect {})
                            .try_with_sql(&call)
                            .and_then(|mut p| p.parse_expr())
                        {
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
                if let Ok(new) = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(&call)
                    .and_then(|mut p| p.parse_expr())
                {
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

    #[test]
    fn type_names() {
        assert_eq!(type_oid_by_name("jsonb"), Some(3802));
        assert_eq!(type_oid_by_name("hstore"), None);
    }
}
