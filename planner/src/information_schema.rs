//! `information_schema` with Postgres' column names, type names and 1-based
//! ordinals (DataFusion's own uses Arrow type names), over Freshet's tables.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::TableDef;
use crate::names::{DATABASE, SCHEMA};
use crate::table::TableMap;
use crate::types::SqlType;

pub const NAME: &str = "information_schema";

#[derive(Debug)]
pub struct InformationSchema {
    tables: TableMap,
}

impl InformationSchema {
    pub fn new(tables: TableMap) -> Self {
        Self { tables }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Schemata,
    Tables,
    Columns,
    Views,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        Some(match name {
            "schemata" => Kind::Schemata,
            "tables" => Kind::Tables,
            "columns" => Kind::Columns,
            "views" => Kind::Views,
            _ => return None,
        })
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        ["columns", "schemata", "tables", "views"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(Kind::of(name).map(|kind| {
            Arc::new(InfoTable {
                kind,
                tables: self.tables.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        Kind::of(name).is_some()
    }
}

#[derive(Debug)]
struct InfoTable {
    kind: Kind,
    tables: TableMap,
}

fn text_fields(names: &[&str]) -> Vec<Field> {
    names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect()
}

fn strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn ints(v: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}

/// `data_type` as Postgres' information_schema spells it.
fn data_type(t: &SqlType) -> &'static str {
    match t {
        SqlType::Bool => "boolean",
        SqlType::Int2 => "smallint",
        SqlType::Int4 => "integer",
        SqlType::Int8 => "bigint",
        SqlType::Float4 => "real",
        SqlType::Float8 => "double precision",
        SqlType::Numeric { .. } => "numeric",
        SqlType::Text => "text",
        SqlType::Varchar(_) => "character varying",
        SqlType::Bytea => "bytea",
        SqlType::Date => "date",
        SqlType::Time => "time without time zone",
        SqlType::Timestamp => "timestamp without time zone",
        SqlType::TimestampTz => "timestamp with time zone",
        SqlType::Interval => "interval",
        SqlType::Jsonb => "jsonb",
        SqlType::Array(_) => "ARRAY",
    }
}

fn udt_name(t: &SqlType) -> &'static str {
    match t {
        SqlType::Bool => "bool",
        SqlType::Int2 => "int2",
        SqlType::Int4 => "int4",
        SqlType::Int8 => "int8",
        SqlType::Float4 => "float4",
        SqlType::Float8 => "float8",
        SqlType::Numeric { .. } => "numeric",
        SqlType::Text => "text",
        SqlType::Varchar(_) => "varchar",
        SqlType::Bytea => "bytea",
        SqlType::Date => "date",
        SqlType::Time => "time",
        SqlType::Timestamp => "timestamp",
        SqlType::TimestampTz => "timestamptz",
        SqlType::Interval => "interval",
        SqlType::Jsonb => "jsonb",
        SqlType::Array(t) => match t.as_ref() {
            SqlType::Bool => "_bool",
            SqlType::Int2 => "_int2",
            SqlType::Int4 => "_int4",
            SqlType::Int8 => "_int8",
            SqlType::Float4 => "_float4",
            SqlType::Float8 => "_float8",
            SqlType::Numeric { .. } => "_numeric",
            _ => "_text",
        },
    }
}

/// `(numeric_precision, radix, numeric_scale)`.
fn numeric_info(t: &SqlType) -> (Option<i32>, Option<i32>, Option<i32>) {
    match t {
        SqlType::Int2 => (Some(16), Some(2), Some(0)),
        SqlType::Int4 => (Some(32), Some(2), Some(0)),
        SqlType::Int8 => (Some(64), Some(2), Some(0)),
        SqlType::Float4 => (Some(24), Some(2), None),
        SqlType::Float8 => (Some(53), Some(2), None),
        SqlType::Numeric { precision, scale } => (
            precision.map(|p| p as i32),
            Some(10),
            precision.map(|_| scale.unwrap_or(0) as i32),
        ),
        _ => (None, None, None),
    }
}

impl InfoTable {
    fn defs(&self) -> Vec<Arc<TableDef>> {
        let mut defs: Vec<Arc<TableDef>> = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|t| t.def.clone())
            .collect();
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        defs
    }

    fn batch(&self) -> DfResult<RecordBatch> {
        let db = || Some(DATABASE.to_string());
        let public = || Some(SCHEMA.to_string());
        Ok(match self.kind {
            Kind::Schemata => {
                let names = ["information_schema", "pg_catalog", SCHEMA];
                RecordBatch::try_new(
                    self.schema(),
                    vec![
                        strings(names.iter().map(|_| db()).collect()),
                        strings(names.iter().map(|n| Some(n.to_string())).collect()),
                        strings(names.iter().map(|_| Some("freshet".to_string())).collect()),
                    ],
                )?
            }
            Kind::Tables => {
                let defs = self.defs();
                RecordBatch::try_new(
                    self.schema(),
                    vec![
                        strings(defs.iter().map(|_| db()).collect()),
                        strings(defs.iter().map(|_| public()).collect()),
                        strings(defs.iter().map(|d| Some(d.name.clone())).collect()),
                        strings(
                            defs.iter()
                                .map(|d| {
                                    Some(match d.kind {
                                        crate::catalog::RelKind::Source => "FOREIGN".into(),
                                        _ => "BASE TABLE".into(),
                                    })
                                })
                                .collect(),
                        ),
                        strings(defs.iter().map(|_| Some("YES".into())).collect()),
                    ],
                )?
            }
            Kind::Views => RecordBatch::new_empty(self.schema()),
            Kind::Columns => {
                let defs = self.defs();
                let cols: Vec<(&TableDef, usize)> = defs
                    .iter()
                    .flat_map(|d| (0..d.columns.len()).map(move |i| (d.as_ref(), i)))
                    .collect();
                let col = |f: &dyn Fn(&TableDef, usize) -> Option<String>| {
                    strings(cols.iter().map(|(d, i)| f(d, *i)).collect())
                };
                let int = |f: &dyn Fn(&TableDef, usize) -> Option<i32>| {
                    ints(cols.iter().map(|(d, i)| f(d, *i)).collect())
                };
                RecordBatch::try_new(
                    self.schema(),
                    vec![
                        col(&|_, _| db()),
                        col(&|_, _| public()),
                        col(&|d, _| Some(d.name.clone())),
                        col(&|d, i| Some(d.columns[i].name.clone())),
                        int(&|_, i| Some(i as i32 + 1)),
                        col(&|d, i| d.columns[i].default.clone()),
                        col(&|d, i| Some(if d.columns[i].not_null { "NO" } else { "YES" }.into())),
                        col(&|d, i| Some(data_type(&d.columns[i].sql_type).into())),
                        int(&|d, i| match d.columns[i].sql_type {
                            SqlType::Varchar(n) => n.map(|n| n as i32),
                            _ => None,
                        }),
                        int(&|d, i| numeric_info(&d.columns[i].sql_type).0),
                        int(&|d, i| numeric_info(&d.columns[i].sql_type).1),
                        int(&|d, i| numeric_info(&d.columns[i].sql_type).2),
                        int(&|d, i| match d.columns[i].sql_type {
                            SqlType::Date => Some(0),
                            SqlType::Time
                            | SqlType::Timestamp
                            | SqlType::TimestampTz
                            | SqlType::Interval => Some(6),
                            _ => None,
                        }),
                        col(&|_, _| db()),
                        col(&|_, _| Some("pg_catalog".into())),
                        col(&|d, i| Some(udt_name(&d.columns[i].sql_type).into())),
                        col(&|_, _| Some("NO".into())),
                        col(&|_, _| Some("NEVER".into())),
                        col(&|_, _| Some("YES".into())),
                    ],
                )?
            }
        })
    }
}

#[async_trait]
impl TableProvider for InfoTable {
    fn schema(&self) -> SchemaRef {
        let fields = match self.kind {
            Kind::Schemata => text_fields(&["catalog_name", "schema_name", "schema_owner"]),
            Kind::Tables => text_fields(&[
                "table_catalog",
                "table_schema",
                "table_name",
                "table_type",
                "is_insertable_into",
            ]),
            Kind::Views => text_fields(&[
                "table_catalog",
                "table_schema",
                "table_name",
                "view_definition",
            ]),
            Kind::Columns => {
                let mut f =
                    text_fields(&["table_catalog", "table_schema", "table_name", "column_name"]);
                f.push(Field::new("ordinal_position", DataType::Int32, true));
                f.extend(text_fields(&["column_default", "is_nullable", "data_type"]));
                for n in [
                    "character_maximum_length",
                    "numeric_precision",
                    "numeric_precision_radix",
                    "numeric_scale",
                    "datetime_precision",
                ] {
                    f.push(Field::new(n, DataType::Int32, true));
                }
                f.extend(text_fields(&[
                    "udt_catalog",
                    "udt_schema",
                    "udt_name",
                    "is_identity",
                    "is_generated",
                    "is_updatable",
                ]));
                f
            }
        };
        Arc::new(Schema::new(fields))
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let table = MemTable::try_new(self.schema(), vec![vec![self.batch()?]])?;
        table.scan(state, projection, filters, limit).await
    }
}
