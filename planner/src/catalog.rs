//! The catalog: table definitions, persisted in the storage meta keyspace.
//!
//! Each table is stored as JSON under `catalog/table/<name>`; the id allocator
//! under `catalog/next_id`. Catalog changes are written in the same atomic
//! commit as the data change they accompany (e.g. DROP TABLE deletes the rows
//! and the definition together), so a crash never leaves them disagreeing.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use freshet_storage::{keys, Store, Txn};

use crate::types::SqlType;
use crate::Result;

const TABLE_PREFIX: &str = "catalog/table/";
const NEXT_ID: &str = "catalog/next_id";
const FUNCTION_PREFIX: &str = "catalog/function/";
const INDEX_PREFIX: &str = "catalog/index/";

/// A `CREATE INDEX` secondary index on a table's columns (crate::index):
/// one entry per row, keyed by the indexed values then the row's key, kept
/// under its own id and written in the same commit as the row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// The key prefix of the index's entries (allocated like a table id).
    pub id: u32,
    /// The id and name of the indexed table.
    pub table_id: u32,
    pub table: String,
    /// Indexes into the table's columns, in index order.
    pub columns: Vec<usize>,
    /// Each column's written order as PostgreSQL shows it (`DESC`,
    /// `NULLS FIRST`, …; empty for the default). Scans serve equalities
    /// and ranges, which the order does not change.
    #[serde(default)]
    pub orders: Vec<String>,
    /// `CREATE UNIQUE INDEX`: no two rows share non-null indexed values.
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub owner: Option<String>,
}

/// A `CREATE FUNCTION … LANGUAGE sql` scalar function: inlined where it is
/// called (crate::sqlfunc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    /// Parameter names (if any) and SQL types, as written.
    pub params: Vec<(Option<String>, String)>,
    /// The SQL return type, as written.
    pub returns: String,
    /// The body as one SQL expression (`(SELECT …)` for a query body).
    pub body: String,
    #[serde(default)]
    pub owner: Option<String>,
}

/// What a view that calls function `f` records in its `depends_on`.
pub fn function_dependency(name: &str) -> String {
    format!("function:{name}")
}

pub use freshet_dataflow::operator::MULTIPLICITY_COLUMN;

/// The name of the hidden row-id column of a table without a primary key.
pub const ROWID_COLUMN: &str = "_rowid";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub not_null: bool,
    /// The DEFAULT expression as SQL text.
    pub default: Option<String>,
}

/// What a catalog relation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelKind {
    #[default]
    Table,
    /// Contents kept by the dataflow: each distinct row with its
    /// multiplicity (see `freshet_dataflow::operator::Materialize`).
    MaterializedView,
    /// A stored query, inlined where it is used; it holds no data.
    View,
    /// `CREATE SOURCE`: a connector's records, which views read as a
    /// stream of insertions; it stores nothing itself.
    Source,
}

impl RelKind {
    /// The name used in messages (`materialized view v`).
    pub fn noun(&self) -> &'static str {
        match self {
            RelKind::Table => "table",
            RelKind::MaterializedView => "materialized view",
            RelKind::View => "view",
            RelKind::Source => "source",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u32,
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Indexes into `columns` of the primary key; empty means the table has
    /// a hidden `_rowid` key column stored after the user columns.
    pub primary_key: Vec<usize>,
    #[serde(default)]
    pub kind: RelKind,
    /// The defining query of a view (as written after `AS`).
    #[serde(default)]
    pub query: Option<String>,
    /// The relations the view reads directly.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The first of the contiguous state table ids of a materialized view's
    /// operators, and how many there are.
    #[serde(default)]
    pub state_ids: (u32, u32),
    /// The columns a materialized view's rows are unique by (its GROUP BY
    /// keys), which then key its contents: one row per key. `None` (and
    /// every view created before this existed): keyed by all columns, each
    /// distinct row with its multiplicity.
    #[serde(default)]
    pub view_key: Option<Vec<usize>>,
    /// `CREATE TABLE … APPEND ONLY` (RisingWave's): INSERT and COPY only;
    /// UPDATE, DELETE and upserts are refused.
    #[serde(default)]
    pub append_only: bool,
    /// The role (session user) that created the relation; `None` for ones
    /// created before owners were kept, shown as [`BOOTSTRAP_ROLE`].
    #[serde(default)]
    pub owner: Option<String>,
    /// The connector feeding a source, or a table created `WITH (connector
    /// = …)`.
    #[serde(default)]
    pub connector: Option<ConnectorDef>,
}

/// A source's (or a connector-fed table's) connector, as declared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectorDef {
    /// `connector = '…'`.
    pub name: String,
    /// The other `WITH` options, for the connector.
    pub options: BTreeMap<String, String>,
    /// `FORMAT f ENCODE e (…)`, lower-cased; `None` when not written.
    pub format: Option<String>,
    pub encode: Option<String>,
    pub encode_options: BTreeMap<String, String>,
    /// `INCLUDE kind [AS alias]` clauses (alias empty when not given).
    pub include: Vec<(String, String)>,
    /// When the relation was created (ms since the epoch): a generator's
    /// base time, kept so it generates the same rows after a restart.
    pub created_ms: i64,
}

/// The role that owns the database, the schemas and relations created
/// before owners were kept.
pub const BOOTSTRAP_ROLE: &str = "freshet";

impl TableDef {
    pub fn has_rowid(&self) -> bool {
        self.kind == RelKind::Table && self.primary_key.is_empty()
    }

    pub fn is_materialized_view(&self) -> bool {
        self.kind == RelKind::MaterializedView
    }

    /// The schema users see (no hidden row id).
    pub fn user_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.sql_type.field(&c.name, !c.not_null))
                .collect::<Vec<Field>>(),
        ))
    }

    /// The schema rows are stored with: the user columns, then `_rowid` if
    /// the table has no primary key.
    pub fn storage_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| c.sql_type.field(&c.name, !c.not_null))
            .collect();
        if self.has_rowid() {
            fields.push(Field::new(ROWID_COLUMN, DataType::Int64, false));
        }
        if self.is_materialized_view() {
            fields.push(Field::new(MULTIPLICITY_COLUMN, DataType::Int64, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// The storage column holding each row's multiplicity (views only).
    pub fn multiplicity_column(&self) -> Option<usize> {
        self.is_materialized_view().then_some(self.columns.len())
    }

    /// Indexes into the storage schema of the key columns.
    pub fn key_columns(&self) -> Vec<usize> {
        if self.is_materialized_view() {
            match &self.view_key {
                Some(key) => key.clone(),
                None => (0..self.columns.len()).collect(),
            }
        } else if self.has_rowid() {
            vec![self.columns.len()]
        } else {
            self.primary_key.clone()
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn pkey_name(&self) -> String {
        format!("{}_pkey", self.name)
    }

    fn rowid_meta_key(&self) -> String {
        format!("rowid/{}", self.id)
    }
}

/// The in-memory catalog, loaded at start-up and kept in step with storage.
#[derive(Debug, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<TableDef>>,
    functions: BTreeMap<String, Arc<FunctionDef>>,
    indexes: BTreeMap<String, Arc<IndexDef>>,
    next_id: u32,
}

impl Catalog {
    pub fn load(store: &Store) -> Result<Catalog> {
        let snap = store.snapshot();
        let mut tables = BTreeMap::new();
        let from = keys::meta_key(TABLE_PREFIX);
        let to = keys::prefix_successor(&from).expect("non-empty prefix");
        snap.scan(&from, &to, usize::MAX, |_, v| {
            let def: TableDef = serde_json::from_slice(v)?;
            tables.insert(def.name.clone(), Arc::new(def));
            Ok(())
        })?;
        let mut functions = BTreeMap::new();
        let from = keys::meta_key(FUNCTION_PREFIX);
        let to = keys::prefix_successor(&from).expect("non-empty prefix");
        snap.scan(&from, &to, usize::MAX, |_, v| {
            let def: FunctionDef = serde_json::from_slice(v)?;
            functions.insert(def.name.clone(), Arc::new(def));
            Ok(())
        })?;
        let mut indexes = BTreeMap::new();
        let from = keys::meta_key(INDEX_PREFIX);
        let to = keys::prefix_successor(&from).expect("non-empty prefix");
        snap.scan(&from, &to, usize::MAX, |_, v| {
            let def: IndexDef = serde_json::from_slice(v)?;
            indexes.insert(def.name.clone(), Arc::new(def));
            Ok(())
        })?;
        let next_id = match store.get_meta(NEXT_ID)? {
            Some(v) => serde_json::from_slice(&v).map_err(freshet_storage::StorageError::from)?,
            None => 1,
        };
        Ok(Catalog {
            tables,
            functions,
            indexes,
            next_id,
        })
    }

    pub fn functions(&self) -> &BTreeMap<String, Arc<FunctionDef>> {
        &self.functions
    }

    /// Records `def` in `txn`; call [`Catalog::insert_function`] once committed.
    pub fn write_function(def: &FunctionDef, txn: &mut Txn) -> Result<()> {
        let json = serde_json::to_vec(def).map_err(freshet_storage::StorageError::from)?;
        txn.put_meta(&format!("{FUNCTION_PREFIX}{}", def.name), &json);
        Ok(())
    }

    pub fn insert_function(&mut self, def: Arc<FunctionDef>) {
        self.functions.insert(def.name.clone(), def);
    }

    pub fn drop_function(name: &str, txn: &mut Txn) {
        txn.delete(&keys::meta_key(&format!("{FUNCTION_PREFIX}{name}")));
    }

    pub fn remove_function(&mut self, name: &str) {
        self.functions.remove(name);
    }

    pub fn indexes(&self) -> &BTreeMap<String, Arc<IndexDef>> {
        &self.indexes
    }

    /// The secondary indexes of table `table_id`, oldest first.
    pub fn indexes_on(&self, table_id: u32) -> Vec<Arc<IndexDef>> {
        let mut v: Vec<Arc<IndexDef>> = self
            .indexes
            .values()
            .filter(|i| i.table_id == table_id)
            .cloned()
            .collect();
        v.sort_by_key(|i| i.id);
        v
    }

    /// Whether a relation (table, view or index) is called `name`.
    pub fn relation_exists(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.indexes.contains_key(name)
    }

    /// Records `def` in `txn`; call [`Catalog::insert_index`] once committed.
    pub fn write_index(def: &IndexDef, txn: &mut Txn) -> Result<()> {
        let json = serde_json::to_vec(def).map_err(freshet_storage::StorageError::from)?;
        txn.put_meta(&format!("{INDEX_PREFIX}{}", def.name), &json);
        Ok(())
    }

    pub fn insert_index(&mut self, def: Arc<IndexDef>) {
        self.indexes.insert(def.name.clone(), def);
    }

    /// Records the removal of index `def` and all its entries in `txn`.
    pub fn drop_index(def: &IndexDef, txn: &mut Txn) {
        txn.delete(&keys::meta_key(&format!("{INDEX_PREFIX}{}", def.name)));
        txn.delete_tables(def.id, def.id);
    }

    pub fn remove_index(&mut self, name: &str) {
        self.indexes.remove(name);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<TableDef>> {
        self.tables.get(name)
    }

    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.tables.values()
    }

    /// Allocates a table id, recording the allocation in `txn`.
    pub fn allocate_id(&mut self, txn: &mut Txn) -> u32 {
        self.allocate_ids(1, txn)
    }

    /// Allocates `n` contiguous ids and returns the first.
    pub fn allocate_ids(&mut self, n: u32, txn: &mut Txn) -> u32 {
        let id = self.next_id;
        self.next_id += n;
        txn.put_meta(NEXT_ID, self.next_id.to_string().as_bytes());
        id
    }

    /// The id the next allocation will return.
    pub fn peek_next_id(&self) -> u32 {
        self.next_id
    }

    pub fn by_id(&self, id: u32) -> Option<Arc<TableDef>> {
        self.tables.values().find(|d| d.id == id).cloned()
    }

    /// The relations that read `name` directly.
    pub fn dependants(&self, name: &str) -> Vec<Arc<TableDef>> {
        let mut v: Vec<Arc<TableDef>> = self
            .tables
            .values()
            .filter(|d| d.depends_on.iter().any(|x| x == name))
            .cloned()
            .collect();
        v.sort_by_key(|d| d.id);
        v
    }

    /// Records `def` in `txn`; call [`Catalog::insert`] once committed.
    pub fn write_table(def: &TableDef, txn: &mut Txn) -> Result<()> {
        let json = serde_json::to_vec(def).map_err(freshet_storage::StorageError::from)?;
        txn.put_meta(&format!("{TABLE_PREFIX}{}", def.name), &json);
        Ok(())
    }

    pub fn insert(&mut self, def: Arc<TableDef>) {
        self.tables.insert(def.name.clone(), def);
    }

    /// Records the removal of `def` and all its rows (and a view's operator
    /// state) in `txn`.
    pub fn drop_table(def: &TableDef, txn: &mut Txn) {
        txn.delete(&keys::meta_key(&format!("{TABLE_PREFIX}{}", def.name)));
        txn.delete(&keys::meta_key(&def.rowid_meta_key()));
        txn.delete_tables(def.id, def.id);
        let (first, n) = def.state_ids;
        if n > 0 {
            txn.delete_tables(first, first + n - 1);
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.tables.remove(name);
    }

    /// The last allocated hidden row id of `def` (0 if none).
    pub fn last_rowid(store: &Store, def: &TableDef) -> Result<i64> {
        Ok(match store.get_meta(&def.rowid_meta_key())? {
            Some(v) => String::from_utf8_lossy(&v).parse().unwrap_or(0),
            None => 0,
        })
    }

    pub fn write_last_rowid(def: &TableDef, rowid: i64, txn: &mut Txn) {
        txn.put_meta(&def.rowid_meta_key(), rowid.to_string().as_bytes());
    }
}
