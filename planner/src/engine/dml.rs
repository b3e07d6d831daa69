//! DML application: the rows an INSERT/UPDATE/DELETE/COPY computes (with
//! DataFusion) are checked against the table's constraints and written in
//! one atomic commit, under the engine's single writer lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use freshet_storage::Snapshot;

use super::dml_plan::cast_type_name;
use super::plan::{Conflict, InsertPlan, ModifyPlan, Returning};
use super::{bind, CommandTag, Engine, Output, Writer};
use crate::catalog::{Catalog, ColumnDef, TableDef};
use crate::copy::CopyIn;
use crate::names::quote_ident;
use crate::table::StoredTable;
use crate::types::SqlType;
use crate::{json, PlannerError, Result};

impl Engine {
    pub(super) async fn exec_insert(&self, p: &InsertPlan, params: &ParamValues) -> Result<Output> {
        let source = bind(&p.source, params)?;
        let mut writer = self.writer.lock().await;
        let snapshot = self.store.snapshot();
        let batches = self
            .collect(&self.insert_ctx, source, snapshot.clone())
            .await?;
        let (count, returned) = self
            .apply_insert(
                &mut writer,
                &p.table,
                batches,
                &p.conflict,
                &p.alias,
                snapshot,
            )
            .await?;
        drop(writer);
        self.finish_dml(
            &p.table,
            CommandTag::rows("INSERT", count),
            p.returning.as_ref(),
            &p.alias,
            returned,
        )
        .await
    }

    /// Finishes a `COPY FROM STDIN`: inserts everything received, atomically.
    pub async fn finish_copy(&self, copy: CopyIn) -> Result<CommandTag> {
        let table = copy.table.clone();
        let columns = copy.columns.clone();
        let arrays = copy.finish()?;
        let rows = arrays.first().map(|a| a.len()).unwrap_or(0);
        let schema = table.user_schema();
        let mut full: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
        for (i, c) in table.columns.iter().enumerate() {
            if let Some(pos) = columns.iter().position(|&x| x == i) {
                full.push(arrays[pos].clone());
            } else {
                full.push(self.default_array(c, rows).await?);
            }
        }
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(nullable(&schema), full, &options)?;
        let mut writer = self.writer.lock().await;
        let snapshot = self.store.snapshot();
        let (count, _) = self
            .apply_insert(
                &mut writer,
                &table,
                vec![batch],
                &Conflict::Error,
                &table.name,
                snapshot,
            )
            .await?;
        Ok(CommandTag::rows("COPY", count))
    }

    /// `rows` copies of a column's default (NULL when it has none).
    async fn default_array(&self, c: &ColumnDef, rows: usize) -> Result<ArrayRef> {
        let ty = c.sql_type.arrow();
        let Some(sql) = &c.default else {
            return Ok(new_null_array(&ty, rows));
        };
        let df = self
            .query_ctx
            .sql(&format!(
                "SELECT CAST({sql} AS {}) AS v",
                cast_type_name(&c.sql_type)
            ))
            .await?;
        let batches = df.collect().await?;
        let value = match batches.first() {
            Some(b) if b.num_rows() > 0 => ScalarValue::try_from_array(b.column(0), 0)?,
            _ => ScalarValue::try_from(&ty)?,
        };
        cast(&value.to_array_of_size(rows)?, &ty)
    }

    pub(super) async fn exec_update(&self, p: &ModifyPlan, params: &ParamValues) -> Result<Output> {
        let stored = self.stored(&p.table.name)?;
        let mut writer = self.writer.lock().await;
        let snapshot = self.store.snapshot();
        let batches = self.modify_source(p, params, &snapshot).await?;
        let storage_schema = p.table.storage_schema();
        let n = storage_schema.fields().len();
        let key_cols = p.table.key_columns();
        let key_codec =
            freshet_storage::RowCodec::new(Arc::new(storage_schema.project(&key_cols)?))?;
        let mut txn = self.txn_for(&writer, &p.table);
        let mut seen_old: HashSet<Vec<u8>> = HashSet::new();
        let mut removed: HashSet<Vec<u8>> = HashSet::new();
        let mut new_keys: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut writes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut returned = Vec::new();
        let mut count = 0;
        for batch in batches {
            let new_rows = conform(
                &p.table,
                &storage_schema,
                batch.project(&(0..n).collect::<Vec<_>>())?,
            )?;
            let old_key_batch = batch.project(&(n..batch.num_columns()).collect::<Vec<_>>())?;
            let old_key_batch = RecordBatch::try_new(
                key_codec.schema().clone(),
                cast_columns(&old_key_batch, key_codec.schema())?,
            )?;
            let old_keys = key_codec.encode_keys(
                p.table.id,
                &old_key_batch,
                &(0..key_cols.len()).collect::<Vec<_>>(),
            )?;
            let encoded = stored
                .codec()
                .encode_rows(p.table.id, &new_rows, &key_cols)?;
            let mut keep = Vec::with_capacity(encoded.len());
            for (i, ((key, value), old)) in encoded.into_iter().zip(old_keys).enumerate() {
                // A row joined several times by UPDATE … FROM is updated once.
                if !seen_old.insert(old.clone()) {
                    keep.push(false);
                    continue;
                }
                keep.push(true);
                if key != old {
                    removed.insert(old.clone());
                    txn.delete(&old);
                }
                if let Some(prev) = new_keys.insert(key.clone(), i) {
                    let _ = prev;
                    return Err(unique_violation(&p.table, &new_rows, i));
                }
                writes.push((key, value));
                count += 1;
            }
            let kept = filter_record_batch(&new_rows, &BooleanArray::from(keep))?;
            returned.push(kept);
        }
        // Keys that moved onto an existing row's key collide with it unless
        // that row moved away in this same statement.
        for (key, _) in &writes {
            if !seen_old.contains(key) && !removed.contains(key) && snapshot.exists(key)? {
                let (batch, row) = find_row(&returned, &stored, key, p.table.id)?;
                return Err(unique_violation(&p.table, &batch, row));
            }
        }
        for (k, v) in &writes {
            txn.put(k, v);
        }
        self.commit_dml(&mut writer, txn, &snapshot)?;
        drop(writer);
        self.finish_dml(
            &p.table,
            CommandTag::rows("UPDATE", count),
            p.returning.as_ref(),
            &p.alias,
            returned,
        )
        .await
    }

    pub(super) async fn exec_delete(&self, p: &ModifyPlan, params: &ParamValues) -> Result<Output> {
        let stored = self.stored(&p.table.name)?;
        let mut writer = self.writer.lock().await;
        let snapshot = self.store.snapshot();
        let batches = self.modify_source(p, params, &snapshot).await?;
        let storage_schema = p.table.storage_schema();
        let key_cols = p.table.key_columns();
        let mut txn = self.txn_for(&writer, &p.table);
        let mut deleted = HashSet::new();
        let mut returned = Vec::new();
        for batch in batches {
            let rows = RecordBatch::try_new(
                storage_schema.clone(),
                cast_columns(&batch, &storage_schema)?,
            )?;
            let keys = stored.codec().encode_keys(p.table.id, &rows, &key_cols)?;
            let mut keep = Vec::with_capacity(keys.len());
            for k in keys {
                let fresh = deleted.insert(k.clone());
                if fresh {
                    txn.delete(&k);
                }
                keep.push(fresh);
            }
            returned.push(filter_record_batch(&rows, &BooleanArray::from(keep))?);
        }
        let count = deleted.len();
        self.commit_dml(&mut writer, txn, &snapshot)?;
        drop(writer);
        self.finish_dml(
            &p.table,
            CommandTag::rows("DELETE", count),
            p.returning.as_ref(),
            &p.alias,
            returned,
        )
        .await
    }

    /// The rows an UPDATE/DELETE source plan produces, with `params` bound:
    /// by the primary-key fast path when the statement has one (one get,
    /// expressions evaluated on that row), else by DataFusion.
    async fn modify_source(
        &self,
        p: &ModifyPlan,
        params: &ParamValues,
        snapshot: &Snapshot,
    ) -> Result<Vec<RecordBatch>> {
        let Some(point) = &p.point else {
            let source = bind(&p.source, params)?;
            return self.collect(&self.dml_ctx, source, snapshot.clone()).await;
        };
        // The writer lock is held: the latest state is the snapshot's.
        let row = point.row(&self.store, params)?;
        let LogicalPlan::Projection(_) = &p.source else {
            return Ok(vec![row]);
        };
        let result = match &point.analyzed {
            Some(a) => self.evaluate_on_row(a, params, &row),
            None => Err(PlannerError::DataException("not analyzed".into())),
        };
        match result {
            Ok(batch) => Ok(vec![batch]),
            // Anything the short path cannot evaluate (or an error, which
            // the general path then reports the usual way) goes through
            // DataFusion.
            Err(_) => {
                let source = bind(&p.source, params)?;
                self.collect(&self.dml_ctx, source, snapshot.clone()).await
            }
        }
    }

    /// Evaluates the projection `analyzed` (type-coerced, over a table
    /// scan, parameters not bound) on `row`, as DataFusion would: a column,
    /// parameter or literal already of the target type directly, anything
    /// else by binding, expression simplification and physical expressions.
    fn evaluate_on_row(
        &self,
        analyzed: &LogicalPlan,
        params: &ParamValues,
        row: &RecordBatch,
    ) -> Result<RecordBatch> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        use datafusion::logical_expr::simplify::SimplifyContext;
        use datafusion::logical_expr::Expr;
        use datafusion::optimizer::simplify_expressions::ExprSimplifier;
        let LogicalPlan::Projection(proj) = analyzed else {
            return Err(PlannerError::DataException("unexpected UPDATE plan".into()));
        };
        let rows = row.num_rows();
        let out_schema = Arc::new(analyzed.schema().as_arrow().clone());
        let mut cols = Vec::with_capacity(proj.expr.len());
        let mut general = None;
        for (e, f) in proj.expr.iter().zip(out_schema.fields()) {
            let mut inner = e;
            while let Expr::Alias(a) = inner {
                inner = &a.expr;
            }
            let direct = match inner {
                Expr::Column(c) => {
                    Some(row.column(proj.input.schema().index_of_column(c)?).clone())
                }
                Expr::Placeholder(ph) => Some(
                    params
                        .get_placeholders_with_values(&ph.id)?
                        .value
                        .to_array_of_size(rows)?,
                ),
                Expr::Literal(v, _) => Some(v.to_array_of_size(rows)?),
                _ => None,
            };
            // Only exact types go directly: a value needing a cast takes
            // DataFusion's (checked) cast below.
            if let Some(a) = direct.filter(|a| a.data_type() == f.data_type()) {
                cols.push(a);
                continue;
            }
            let (simplifier, props) = general.get_or_insert_with(|| {
                (
                    ExprSimplifier::new(
                        SimplifyContext::builder()
                            .with_schema(proj.input.schema().clone())
                            .with_config_options(self.dml_options.clone())
                            .with_current_time()
                            .build(),
                    ),
                    datafusion::execution::context::ExecutionProps::new(),
                )
            });
            let bound = e
                .clone()
                .transform(|e| match e {
                    Expr::Placeholder(ph) => {
                        let v = params.get_placeholders_with_values(&ph.id)?;
                        Ok(Transformed::yes(Expr::Literal(v.value, v.metadata)))
                    }
                    e => Ok(Transformed::no(e)),
                })?
                .data;
            let e = simplifier.simplify(bound)?;
            let phys = datafusion::physical_expr::create_physical_expr(
                &e,
                proj.input.schema(),
                props,
                &Default::default(),
            )?;
            let a = phys.evaluate(row)?.into_array(rows)?;
            cols.push(cast(&a, f.data_type())?);
        }
        Ok(RecordBatch::try_new_with_options(
            out_schema,
            cols,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }

    /// The command's result: its tag, or the RETURNING rows computed over
    /// the rows it wrote (`rows`: storage-schema batches).
    async fn finish_dml(
        &self,
        table: &TableDef,
        tag: CommandTag,
        returning: Option<&Returning>,
        alias: &str,
        rows: Vec<RecordBatch>,
    ) -> Result<Output> {
        let Some(r) = returning else {
            return Ok(Output::Command(tag));
        };
        let rows = rows
            .into_iter()
            .map(|b| user_part(table, b))
            .collect::<Result<Vec<_>>>()?;
        let ctx = SessionContext::new();
        let schema = rows
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let rows: Vec<RecordBatch> = rows.into_iter().filter(|b| b.num_rows() > 0).collect();
        if rows.is_empty() {
            return Ok(Output::Returning {
                tag,
                schema: r.schema.clone(),
                batches: vec![],
            });
        }
        ctx.register_table(alias, Arc::new(MemTable::try_new(schema, vec![rows])?))?;
        let batches = ctx.sql(&r.sql).await?.collect().await?;
        Ok(Output::Returning {
            tag,
            schema: r.schema.clone(),
            batches,
        })
    }

    /// Inserts `batches` (user columns, in table order) into `table` under the
    /// writer lock. Returns the number of rows inserted or updated and those
    /// rows (user columns).
    async fn apply_insert(
        &self,
        writer: &mut Writer,
        table: &Arc<TableDef>,
        batches: Vec<RecordBatch>,
        conflict: &Conflict,
        alias: &str,
        snapshot: Snapshot,
    ) -> Result<(usize, Vec<RecordBatch>)> {
        let stored = self.stored(&table.name)?;
        let storage_schema = table.storage_schema();
        let user_schema = table.user_schema();
        let key_cols = table.key_columns();
        let mut txn = self.txn_for(writer, table);
        let mut written: HashSet<Vec<u8>> = HashSet::new();
        let mut returned = Vec::new();
        let mut count = 0;
        let mut last_rowid = None;
        // Keys that already exist can only collide if the table has rows;
        // a bulk load into an empty table skips the per-key lookups.
        let table_empty = snapshot.table_is_empty(table.id)?;
        // One batch: duplicates inside the statement are found by sorting.
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let batches = match batches.first() {
            Some(first) if batches.len() > 1 => {
                vec![datafusion::arrow::compute::concat_batches(
                    &first.schema(),
                    &batches,
                )?]
            }
            _ => batches,
        };
        for batch in batches {
            let mut rows = conform(table, &user_schema, batch)?;
            if table.has_rowid() {
                let next = match writer.rowids.get(&table.id) {
                    Some(v) => *v,
                    None => Catalog::last_rowid(&self.store, table)?,
                };
                let ids: Vec<i64> = (next + 1..=next + rows.num_rows() as i64).collect();
                let last = next + rows.num_rows() as i64;
                writer.rowids.insert(table.id, last);
                last_rowid = Some(last);
                let mut cols = rows.columns().to_vec();
                cols.push(Arc::new(datafusion::arrow::array::Int64Array::from(ids)));
                rows = RecordBatch::try_new(storage_schema.clone(), cols)?;
            }
            let encoded = stored.codec().encode_rows(table.id, &rows, &key_cols)?;
            if matches!(conflict, Conflict::Error) {
                // Plain INSERT/COPY: fail on the first duplicate, in the
                // statement or against stored rows; else write everything.
                let mut order: Vec<usize> = (0..encoded.len()).collect();
                order.sort_unstable_by(|a, b| encoded[*a].0.cmp(&encoded[*b].0));
                if let Some(w) = order
                    .windows(2)
                    .find(|w| encoded[w[0]].0 == encoded[w[1]].0)
                {
                    return Err(unique_violation(table, &rows, w[1].max(w[0])));
                }
                if !table_empty && !table.has_rowid() {
                    for (i, (key, _)) in encoded.iter().enumerate() {
                        if snapshot.exists(key)? {
                            return Err(unique_violation(table, &rows, i));
                        }
                    }
                }
                count += encoded.len();
                for (key, value) in &encoded {
                    txn.put_new(key, value);
                }
                returned.push(user_part(table, rows)?);
                continue;
            }
            let mut keep = vec![true; encoded.len()];
            let mut conflicts: Vec<(usize, Vec<u8>)> = Vec::new();
            for (i, (key, value)) in encoded.iter().enumerate() {
                let exists =
                    written.contains(key) || (!table.has_rowid() && snapshot.exists(key)?);
                if exists {
                    match conflict {
                        Conflict::Error => return Err(unique_violation(table, &rows, i)),
                        Conflict::DoNothing => keep[i] = false,
                        Conflict::DoUpdate { .. } => {
                            if written.contains(key) {
                                return Err(PlannerError::DataException(
                                    "ON CONFLICT DO UPDATE command cannot affect row a second time"
                                        .into(),
                                ));
                            }
                            keep[i] = false;
                            conflicts.push((i, key.clone()));
                        }
                    }
                    continue;
                }
                written.insert(key.clone());
                txn.put(key, value);
                count += 1;
            }
            let inserted = filter_record_batch(&rows, &BooleanArray::from(keep))?;
            returned.push(user_part(table, inserted)?);
            if let Conflict::DoUpdate {
                assignments,
                selection,
            } = conflict
            {
                if !conflicts.is_empty() {
                    let updated = self
                        .upsert(
                            table,
                            &stored,
                            &rows,
                            &conflicts,
                            assignments,
                            selection.as_deref(),
                            alias,
                            &snapshot,
                        )
                        .await?;
                    for (key, row) in &updated {
                        written.insert(key.clone());
                        let enc = stored.codec().encode_rows(table.id, row, &key_cols)?;
                        for (k, v) in enc {
                            txn.put(&k, &v);
                        }
                        count += row.num_rows();
                        returned.push(row.clone());
                    }
                }
            }
        }
        if let Some(last) = last_rowid {
            Catalog::write_last_rowid(table, last, &mut txn);
        }
        self.commit_dml(writer, txn, &snapshot)?;
        Ok((count, returned))
    }

    /// Computes the rows ON CONFLICT DO UPDATE writes: for each conflicting
    /// input row, the existing row with the assignments applied (evaluated
    /// by DataFusion with the existing row as `alias` and the proposed one as
    /// `excluded`), unless the WHERE clause rejects it.
    #[allow(clippy::too_many_arguments)]
    async fn upsert(
        &self,
        table: &TableDef,
        stored: &StoredTable,
        proposed: &RecordBatch,
        conflicts: &[(usize, Vec<u8>)],
        assignments: &[(usize, String)],
        selection: Option<&str>,
        alias: &str,
        snapshot: &Snapshot,
    ) -> Result<Vec<(Vec<u8>, RecordBatch)>> {
        let user_schema = table.user_schema();
        let user_idx: Vec<usize> = (0..table.columns.len()).collect();
        let mut existing_values = Vec::with_capacity(conflicts.len());
        for (_, key) in conflicts {
            existing_values.push(
                snapshot.get(key)?.ok_or_else(|| {
                    PlannerError::DataException("conflicting row vanished".into())
                })?,
            );
        }
        let existing = stored.codec().decode(
            existing_values.iter().map(|v| v.as_slice()),
            Some(&user_idx),
        )?;
        let idx = UInt32Array::from(conflicts.iter().map(|(i, _)| *i as u32).collect::<Vec<_>>());
        let excluded =
            datafusion::arrow::compute::take_record_batch(&proposed.project(&user_idx)?, &idx)?;
        let with_row = |b: &RecordBatch| -> Result<RecordBatch> {
            let mut fields: Vec<Field> = user_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            fields.push(Field::new("__freshet_row", DataType::UInt32, false));
            let mut cols = b.columns().to_vec();
            cols.push(Arc::new(UInt32Array::from(
                (0..b.num_rows() as u32).collect::<Vec<_>>(),
            )));
            Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
        };
        let ctx = SessionContext::new();
        ctx.register_batch(alias, with_row(&existing)?)?;
        ctx.register_batch("excluded", with_row(&excluded)?)?;
        let a = quote_ident(alias);
        let mut select = Vec::new();
        for (i, c) in table.columns.iter().enumerate() {
            match assignments.iter().rev().find(|(idx, _)| *idx == i) {
                Some((_, expr)) => select.push(format!(
                    "CAST(({expr}) AS {}) AS {}",
                    cast_type_name(&c.sql_type),
                    quote_ident(&c.name)
                )),
                None => select.push(format!("{a}.{}", quote_ident(&c.name))),
            }
        }
        let mut sql = format!(
            "SELECT {}, {a}.__freshet_row FROM {a} JOIN excluded ON {a}.__freshet_row = excluded.__freshet_row",
            select.join(", ")
        );
        if let Some(w) = selection {
            sql.push_str(&format!(" WHERE {w}"));
        }
        let batches = ctx.sql(&sql).await?.collect().await?;
        let mut out = Vec::new();
        for b in batches {
            let n = table.columns.len();
            let rows = conform(table, &user_schema, b.project(&(0..n).collect::<Vec<_>>())?)?;
            let which = b.column(n).as_any().downcast_ref::<UInt32Array>().cloned();
            for r in 0..rows.num_rows() {
                let orig = which.as_ref().map(|w| w.value(r) as usize).unwrap_or(r);
                let row = rows.slice(r, 1);
                let key = conflicts[orig].1.clone();
                let new_key = stored
                    .codec()
                    .encode_keys(table.id, &row, &table.key_columns())?
                    .pop();
                if new_key.as_ref() != Some(&key) {
                    return Err(PlannerError::not_supported(
                        "ON CONFLICT DO UPDATE changing the primary key",
                    ));
                }
                out.push((key, row));
            }
        }
        Ok(out)
    }
}

pub(super) fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    cast_with_options(
        a,
        to,
        &CastOptions {
            safe: false,
            ..Default::default()
        },
    )
    .map_err(|e| PlannerError::InvalidText(e.to_string()))
}

pub(super) fn cast_columns(batch: &RecordBatch, schema: &SchemaRef) -> Result<Vec<ArrayRef>> {
    batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(a, f)| cast(a, f.data_type()))
        .collect()
}

/// A copy of `schema` with every field nullable (for intermediate batches).
pub(super) fn nullable(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// Makes a batch of new rows conform to `schema` (the table's user or storage
/// schema): exact column types, NOT NULL, varchar lengths and canonical jsonb.
pub(super) fn conform(
    table: &TableDef,
    schema: &SchemaRef,
    batch: RecordBatch,
) -> Result<RecordBatch> {
    let mut cols = cast_columns(&batch, schema)?;
    for (i, c) in table.columns.iter().enumerate() {
        let col = &cols[i];
        if c.not_null && col.null_count() > 0 {
            return Err(PlannerError::NotNullViolation {
                table: table.name.clone(),
                column: c.name.clone(),
            });
        }
        match &c.sql_type {
            SqlType::Numeric {
                precision: Some(p), ..
            } => {
                let d = col
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Decimal128Array>()
                    .expect("numeric is Decimal128");
                if d.validate_decimal_precision(*p).is_err() {
                    return Err(PlannerError::NumericOutOfRange(format!(
                        "numeric field overflow: a value does not fit {} (column \"{}\")",
                        c.sql_type.pg_name(),
                        c.name
                    )));
                }
            }
            SqlType::Varchar(Some(n)) => {
                let s = col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("varchar is Utf8");
                if s.iter().flatten().any(|v| v.chars().count() > *n as usize) {
                    return Err(PlannerError::StringTooLong(*n));
                }
            }
            SqlType::Jsonb => {
                let s = col
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("jsonb is Utf8");
                let normalized: StringArray = s
                    .iter()
                    .map(|v| v.map(json::normalize).transpose())
                    .collect::<Result<Vec<_>>>()?
                    .into_iter()
                    .collect();
                cols[i] = Arc::new(normalized);
            }
            _ => {}
        }
    }
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

/// The user columns of a storage-schema batch.
pub(super) fn user_part(table: &TableDef, batch: RecordBatch) -> Result<RecordBatch> {
    let idx: Vec<usize> = (0..table.columns.len()).collect();
    let b = batch.project(&idx)?;
    Ok(RecordBatch::try_new(
        table.user_schema(),
        b.columns().to_vec(),
    )?)
}

pub(super) fn find_row(
    batches: &[RecordBatch],
    stored: &StoredTable,
    key: &[u8],
    table_id: u32,
) -> Result<(RecordBatch, usize)> {
    for b in batches {
        let keys = stored
            .codec()
            .encode_keys(table_id, b, &stored.def.key_columns())?;
        if let Some(i) = keys.iter().position(|k| k == key) {
            return Ok((b.clone(), i));
        }
    }
    Err(PlannerError::DataException("row not found".into()))
}

pub(super) fn unique_violation(table: &TableDef, rows: &RecordBatch, row: usize) -> PlannerError {
    let names: Vec<&str> = table
        .primary_key
        .iter()
        .map(|&i| table.columns[i].name.as_str())
        .collect();
    let values: Vec<String> = table
        .primary_key
        .iter()
        .map(|&i| {
            datafusion::arrow::util::display::array_value_to_string(rows.column(i), row)
                .unwrap_or_default()
        })
        .collect();
    PlannerError::UniqueViolation {
        constraint: table.pkey_name(),
        detail: format!(
            "Key ({})=({}) already exists.",
            names.join(", "),
            values.join(", ")
        ),
    }
}
