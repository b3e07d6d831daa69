//! The point-lookup fast path.
//!
//! `SELECT cols FROM t WHERE pk = $1 [AND pk2 = $2 …]` — the shape of most
//! prepared lookups — is recognized on DataFusion's logical plan at prepare
//! time and executed as one RocksDB get, skipping optimization and physical
//! planning for every execution. Anything else (joins, expressions in the
//! select list, other predicates) takes the general path.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use freshet_storage::{RowCodec, Store};

use crate::catalog::TableDef;
use crate::table::StoredTable;
use crate::{PlannerError, Result};

/// The fast path of `UPDATE … WHERE pk = …` / `DELETE … WHERE pk = …`: the
/// one row the key selects is read with one get, and the statement's
/// expressions are evaluated on it, instead of planning and running a scan.
#[derive(Debug)]
pub struct PointSource {
    get: PointGet,
    /// The UPDATE's source plan after type coercion, placeholders unbound
    /// (analyzed once when the statement is prepared).
    pub analyzed: Option<LogicalPlan>,
}

impl PointSource {
    /// Recognizes `[Projection ←] Filter(key equalities) ← TableScan`.
    pub fn detect(
        source: &LogicalPlan,
        table: impl Fn(&str) -> Option<Arc<StoredTable>>,
    ) -> Option<PointSource> {
        let filter = match source {
            LogicalPlan::Projection(p) => p.input.as_ref(),
            other => other,
        };
        let LogicalPlan::Filter(f) = filter else {
            return None;
        };
        let columns: Vec<Expr> = f
            .input
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let all = datafusion::logical_expr::Projection::try_new(columns, Arc::new(filter.clone()))
            .ok()?;
        let get = PointGet::detect(&LogicalPlan::Projection(all), table)?;
        Some(PointSource {
            get,
            analyzed: None,
        })
    }

    /// The selected row (zero or one), with every column of the table scan.
    pub fn row(&self, store: &Store, params: &ParamValues) -> Result<RecordBatch> {
        self.get.execute(store, params)
    }
}

/// Where a key column's value comes from.
#[derive(Debug, Clone)]
enum KeyArg {
    /// `$n` (0-based index).
    Param(usize),
    Literal(ScalarValue),
}

#[derive(Debug)]
pub struct PointGet {
    table: Arc<TableDef>,
    codec: RowCodec,
    key_codec: RowCodec,
    key: Vec<KeyArg>,
    /// Storage columns to return, in output order.
    projection: Vec<usize>,
    schema: SchemaRef,
    /// A view's multiplicity column: the key is a prefix to scan, and each
    /// stored row stands for that many.
    multiplicity: Option<usize>,
}

impl PointGet {
    /// Recognizes `Projection(columns) ← Filter(key equalities) ← TableScan`
    /// over one of our tables (`table` resolves a name in our schema).
    pub fn detect(
        plan: &LogicalPlan,
        table: impl Fn(&str) -> Option<Arc<StoredTable>>,
    ) -> Option<PointGet> {
        let LogicalPlan::Projection(p) = plan else {
            return None;
        };
        let LogicalPlan::Filter(f) = p.input.as_ref() else {
            return None;
        };
        let LogicalPlan::TableScan(scan) = f.input.as_ref() else {
            return None;
        };
        // Only tables of our schema (not, say, pg_catalog.x for a user table x).
        if scan
            .table_name
            .schema()
            .is_some_and(|s| s != crate::names::SCHEMA)
            || !scan.filters.is_empty()
            || scan.fetch.is_some()
        {
            return None;
        }
        let table = table(scan.table_name.table())?;
        let def = table.def.clone();
        // A materialized view's rows are keyed by all their columns: an
        // equality on its leading columns is a key-prefix scan.
        let view = def.is_materialized_view();
        let key_positions: Vec<usize> = if view {
            (0..def.columns.len()).collect()
        } else {
            def.primary_key.clone()
        };
        if key_positions.is_empty() {
            return None;
        }
        if p.expr.is_empty() {
            return None;
        }
        let mut projection = Vec::with_capacity(p.expr.len());
        for e in &p.expr {
            let Expr::Column(c) = e else { return None };
            projection.push(def.column_index(&c.name)?);
        }
        // Output names must be the plain column names (no aliases).
        let schema: SchemaRef = Arc::new(p.schema.as_arrow().clone());
        if schema
            .fields()
            .iter()
            .zip(&projection)
            .any(|(f, &i)| f.name() != &def.columns[i].name)
        {
            return None;
        }
        let mut key: Vec<Option<KeyArg>> = vec![None; key_positions.len()];
        let mut conjuncts = vec![&f.predicate];
        while let Some(e) = conjuncts.pop() {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
                return None;
            };
            match op {
                Operator::And => {
                    conjuncts.push(left);
                    conjuncts.push(right);
                }
                Operator::Eq => {
                    let (col, val) = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), v) | (v, Expr::Column(c)) => (c, v),
                        _ => return None,
                    };
                    let ci = def.column_index(&col.name)?;
                    let k = key_positions.iter().position(|&pk| pk == ci)?;
                    let arg = match val {
                        Expr::Placeholder(ph) => KeyArg::Param(
                            ph.id
                                .strip_prefix('$')?
                                .parse::<usize>()
                                .ok()?
                                .checked_sub(1)?,
                        ),
                        Expr::Literal(v, _) => KeyArg::Literal(v.clone()),
                        _ => return None,
                    };
                    if key[k].is_some() {
                        return None;
                    }
                    key[k] = Some(arg);
                }
                _ => return None,
            }
        }
        // Tables: every key column; views: a leading prefix of them.
        let bound = key.iter().take_while(|k| k.is_some()).count();
        if key[bound..].iter().any(Option::is_some) || (!view && bound < key.len()) || bound == 0 {
            return None;
        }
        let key: Vec<KeyArg> = key.into_iter().flatten().collect();
        let storage = def.storage_schema();
        let key_codec = RowCodec::new(Arc::new(storage.project(&def.key_columns()).ok()?)).ok()?;
        Some(PointGet {
            multiplicity: def.multiplicity_column(),
            table: def,
            codec: table.codec().clone(),
            key_codec,
            key,
            projection,
            schema,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The rows of a view under key prefix `prefix`, each repeated by its
    /// multiplicity (column `m`).
    fn scan_view(&self, store: &Store, prefix: &[u8], m: usize) -> Result<RecordBatch> {
        let mut projection = self.projection.clone();
        projection.push(m);
        let end = freshet_storage::keys::prefix_successor(prefix)
            .unwrap_or_else(|| freshet_storage::keys::table_end(self.table.id).to_vec());
        let mut decoder = self.codec.decoder(Some(&projection), 16);
        store
            .snapshot()
            .scan_cached(prefix, &end, usize::MAX, |_, v| decoder.push(v))?;
        let decoded = decoder.finish()?;
        let n = self.projection.len();
        let counts = decoded
            .column(n)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| PlannerError::DataException("view multiplicity".into()))?;
        let rows = RecordBatch::try_new(self.schema.clone(), decoded.columns()[..n].to_vec())?;
        Ok(freshet_dataflow::expand_counts(&rows, counts.values())?)
    }

    /// Looks the row up; returns a batch of zero or one row.
    pub fn execute(&self, store: &Store, params: &ParamValues) -> Result<RecordBatch> {
        let key_fields = self.key_codec.schema().fields().clone();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.key.len());
        for (arg, field) in self.key.iter().zip(key_fields.iter()) {
            let v = match arg {
                KeyArg::Literal(v) => v.clone(),
                KeyArg::Param(i) => match params {
                    ParamValues::List(l) => {
                        l.get(*i).map(|p| p.value.clone()).ok_or_else(|| {
                            PlannerError::ProtocolViolation(format!(
                                "no value for parameter ${}",
                                i + 1
                            ))
                        })?
                    }
                    ParamValues::Map(_) => {
                        return Err(PlannerError::not_supported("named parameters"))
                    }
                },
            };
            if v.is_null() {
                // `pk = NULL` matches nothing.
                return Ok(RecordBatch::new_empty(self.schema.clone()));
            }
            let v = if v.data_type() == *field.data_type() {
                v
            } else {
                v.cast_to(field.data_type())?
            };
            arrays.push(v.to_array()?);
        }
        let idx: Vec<usize> = (0..arrays.len()).collect();
        let key = self.key_codec.encode_key(self.table.id, &arrays, &idx, 0)?;
        if let Some(m) = self.multiplicity {
            return self.scan_view(store, &key, m);
        }
        let value = store.get_cached(&key)?;
        // Capacity 1: a point get decodes at most one row.
        let mut decoder = self.codec.decoder(Some(&self.projection), 1);
        if let Some(v) = &value {
            decoder.push(v)?;
        }
        let decoded = decoder.finish()?;
        Ok(RecordBatch::try_new(
            self.schema.clone(),
            decoded.columns().to_vec(),
        )?)
    }
}
