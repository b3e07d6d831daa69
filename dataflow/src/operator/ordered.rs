//! An ordered multiset of rows per prefix: the state of min/max, of
//! aggregates that must see all their group's values (string_agg,
//! array_agg, DISTINCT aggregates, …) and of top-N.
//!
//! Layout: `(prefix columns…, sort key, payload columns…, count)`, keyed by
//! the prefix columns and the sort key. The sort key is the payload's sort
//! columns in Arrow's row format (which honours DESC and NULLS FIRST/LAST)
//! followed by the whole payload in row format, so equal rows share an entry
//! (their count) and different rows never collide. Reading the first `n`
//! entries of a prefix is a bounded range scan.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use freshet_storage::{StateTable, Txn};

use super::StepContext;
use crate::{DataflowError, Result};

pub struct OrderedState {
    table: StateTable,
    prefix_len: usize,
    payload: SchemaRef,
    /// Row format of the sort columns (with their sort options).
    sort: RowConverter,
    /// Row format of the whole payload (ascending), the tie-breaker.
    whole: RowConverter,
}

impl OrderedState {
    /// `prefix`: the grouping columns; `payload`: the stored rows;
    /// `sort`: how entries are ordered within a prefix, as sort fields
    /// over the arrays passed to [`OrderedState::add`].
    pub fn new(
        id: u32,
        prefix: &[Field],
        payload: SchemaRef,
        sort: Vec<SortField>,
    ) -> Result<Self> {
        let mut fields: Vec<Field> = prefix.to_vec();
        fields.push(Field::new("__sort", DataType::Binary, false));
        fields.extend(payload.fields().iter().map(|f| f.as_ref().clone()));
        fields.push(Field::new("__count", DataType::Int64, false));
        let key: Vec<usize> = (0..=prefix.len()).collect();
        let whole = RowConverter::new(
            payload
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Self {
            table: StateTable::new(id, Arc::new(Schema::new(fields)), key)?,
            prefix_len: prefix.len(),
            payload,
            sort: RowConverter::new(sort)?,
            whole,
        })
    }

    pub fn id(&self) -> u32 {
        self.table.id()
    }

    pub fn payload_schema(&self) -> SchemaRef {
        self.payload.clone()
    }

    /// Adds `weights[i]` copies of payload row `i` (under prefix row `i` of
    /// `prefix`, ordered by `sort_cols` row `i`).
    pub fn add(
        &mut self,
        ctx: &StepContext,
        prefix: &[ArrayRef],
        sort_cols: &[ArrayRef],
        payload: &RecordBatch,
        weights: &[i64],
    ) -> Result<()> {
        if weights.is_empty() {
            return Ok(());
        }
        // No sort columns (a window without ORDER BY): rows are in the
        // payload's order.
        let sort_rows = (!sort_cols.is_empty())
            .then(|| self.sort.convert_columns(sort_cols))
            .transpose()?;
        let whole_rows = self.whole.convert_columns(payload.columns())?;
        let mut keys = BinaryBuilder::with_capacity(weights.len(), weights.len() * 16);
        for i in 0..weights.len() {
            let mut k = sort_rows
                .as_ref()
                .map_or_else(Vec::new, |r| r.row(i).as_ref().to_vec());
            k.extend_from_slice(whole_rows.row(i).as_ref());
            keys.append_value(k);
        }
        let mut cols: Vec<ArrayRef> = prefix.to_vec();
        cols.push(Arc::new(keys.finish()));
        cols.extend(payload.columns().iter().cloned());
        cols.push(Arc::new(Int64Array::from(vec![0; weights.len()])));
        let rows = crate::batch::conform(self.table.codec().schema().clone(), cols)?;
        let count_col = rows.num_columns() - 1;
        self.table
            .add_counts(&ctx.snapshot, &rows, count_col, weights)?;
        Ok(())
    }

    /// The sort keys of `sort_cols` (as passed to [`OrderedState::add`]):
    /// comparing two of them compares the rows' order in the state.
    pub fn sort_keys(&self, sort_cols: &[ArrayRef]) -> Result<Rows> {
        Ok(self.sort.convert_columns(sort_cols)?)
    }

    /// The key prefix of row `row` of the prefix columns `prefix`.
    pub fn prefix_key(&self, prefix: &[ArrayRef], row: usize) -> Result<Vec<u8>> {
        Ok(self.table.key_prefix_of(prefix, row, self.prefix_len)?)
    }

    /// The first entries of prefix `key` in order, at most `limit` of them
    /// (`usize::MAX`: all): payload rows and their counts.
    pub fn first(
        &self,
        ctx: &StepContext,
        key: &[u8],
        limit: usize,
    ) -> Result<(RecordBatch, Vec<i64>)> {
        let entries = if limit == usize::MAX {
            self.table.prefix_scan(&ctx.snapshot, key)?
        } else {
            self.table.prefix_scan_limit(&ctx.snapshot, key, limit)?
        };
        let p = self.prefix_len + 1;
        let n = self.payload.fields().len();
        let cols: Vec<usize> = (p..p + n + 1).collect();
        let decoded = self
            .table
            .codec()
            .decode(entries.iter().map(|(_, v)| v.as_slice()), Some(&cols))?;
        let counts = decoded
            .column(n)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.values().to_vec())
            .ok_or_else(|| DataflowError::Malformed("ordered state count".into()))?;
        let rows = crate::batch_with_rows(
            self.payload.clone(),
            decoded.columns()[..n].to_vec(),
            counts.len(),
        )?;
        Ok((rows, counts))
    }

    pub fn commit(&mut self, txn: &mut Txn) {
        self.table.commit_into(txn);
    }

    pub fn discard(&mut self) {
        self.table.discard();
    }
}

pub use crate::batch::expand_counts as expand;

/// The arrays of `cols` at `indices`.
pub fn take_cols(cols: &[ArrayRef], indices: &UInt32Array) -> Result<Vec<ArrayRef>> {
    cols.iter()
        .map(|c| Ok(datafusion::arrow::compute::take(c.as_ref(), indices, None)?))
        .collect()
}

/// Whether `a` (a boolean mask, maybe null) is true at `i`.
pub fn mask_at(a: &dyn Array, i: usize) -> bool {
    a.as_any()
        .downcast_ref::<datafusion::arrow::array::BooleanArray>()
        .is_some_and(|b| b.is_valid(i) && b.value(i))
}
