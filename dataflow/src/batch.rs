//! Change batches.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};

use crate::{DataflowError, Result};

/// `RecordBatch::try_new` that also works for zero columns (the row count
/// is given): projections like `count(*)`'s carry rows without columns.
pub fn batch_with_rows(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch> {
    // DataFusion's physical types can differ from the logical plan's
    // (string views, wider decimals); the plan's schema wins.
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                datafusion::arrow::compute::cast(&c, f.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new_with_options(
        schema,
        columns,
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The rows of `batch` at `indices` (also for batches without columns).
pub fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    if batch.num_columns() == 0 {
        return batch_with_rows(batch.schema(), vec![], indices.len());
    }
    Ok(take_record_batch(batch, indices)?)
}

/// `rows` with row `i` repeated `counts[i]` times (counts ≤ 0 dropped): a
/// relation stored as rows with multiplicities, as a plain multiset.
pub fn expand_counts(rows: &RecordBatch, counts: &[i64]) -> Result<RecordBatch> {
    if counts.iter().all(|c| *c == 1) {
        return Ok(rows.clone());
    }
    let idx: UInt32Array = counts
        .iter()
        .enumerate()
        .flat_map(|(i, c)| std::iter::repeat_n(i as u32, (*c).max(0) as usize))
        .collect();
    take_rows(rows, &idx)
}

/// [`batch_with_rows`] for at least one column (its length is the count).
pub fn conform(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let rows = columns.first().map_or(0, |c| c.len());
    batch_with_rows(schema, columns, rows)
}

/// A batch of changes to a relation: rows with signed weights (a Z-set).
///
/// Invariants and conventions:
/// - `weights.len() == data.num_rows()`; a weight is never null.
/// - `+n` means n copies of the row were inserted, `-n` that n were deleted.
/// - An update is a delete of the old row and an insert of the new one, in
///   the same batch (`-1 old`, `+1 new`); operators never see a separate
///   "update" kind.
/// - A batch need not be consolidated: the same row may appear several
///   times, and weights may cancel. [`ChangeBatch::consolidate`] sums the
///   weights of equal rows and drops rows whose weight is 0; two batches
///   are equal as changes iff their consolidations are equal as multisets.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    data: RecordBatch,
    weights: Int64Array,
}

impl ChangeBatch {
    pub fn new(data: RecordBatch, weights: Int64Array) -> Result<Self> {
        if weights.len() != data.num_rows() || weights.null_count() > 0 {
            return Err(DataflowError::Malformed(format!(
                "{} rows but {} weights ({} null)",
                data.num_rows(),
                weights.len(),
                weights.null_count()
            )));
        }
        Ok(Self { data, weights })
    }

    /// Every row of `data` inserted once.
    pub fn inserts(data: RecordBatch) -> Self {
        let weights = Int64Array::from(vec![1; data.num_rows()]);
        Self { data, weights }
    }

    /// Every row of `data` deleted once.
    pub fn deletes(data: RecordBatch) -> Self {
        let weights = Int64Array::from(vec![-1; data.num_rows()]);
        Self { data, weights }
    }

    pub fn empty(schema: SchemaRef) -> Self {
        Self::inserts(RecordBatch::new_empty(schema))
    }

    pub fn data(&self) -> &RecordBatch {
        &self.data
    }

    pub fn weights(&self) -> &Int64Array {
        &self.weights
    }

    pub fn schema(&self) -> SchemaRef {
        self.data.schema()
    }

    pub fn len(&self) -> usize {
        self.data.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same rows with every weight negated (the inverse change).
    pub fn negate(&self) -> Self {
        let weights: Int64Array = self.weights.iter().map(|w| w.map(|w| -w)).collect();
        Self {
            data: self.data.clone(),
            weights,
        }
    }

    /// Replaces the rows, keeping the weights (for operators that map rows
    /// one to one, like projection).
    pub fn with_data(&self, data: RecordBatch) -> Result<Self> {
        Self::new(data, self.weights.clone())
    }

    /// Keeps the rows at `indices`, with their weights.
    pub fn take(&self, indices: &UInt32Array) -> Result<Self> {
        let data = take_rows(&self.data, indices)?;
        let weights = datafusion::arrow::compute::take(&self.weights, indices, None)?;
        let weights = weights
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .ok_or_else(|| DataflowError::Malformed("weights are not Int64".into()))?;
        Self::new(data, weights)
    }

    /// All changes of `batches` (which share `schema`) as one batch.
    pub fn concat(schema: &SchemaRef, batches: &[ChangeBatch]) -> Result<Self> {
        if let [one] = batches {
            if one.data.schema_ref() == schema {
                return Ok(one.clone());
            }
        }
        let data = concat_batches(schema, batches.iter().map(|b| &b.data))?;
        let weights: Int64Array = batches.iter().flat_map(|b| b.weights.iter()).collect();
        Self::new(data, weights)
    }

    /// Everything buffered in `pending` (which is emptied) as one
    /// consolidated batch, or `None` if the changes cancel out or there are
    /// none: what a buffering operator works on at the end of a step.
    pub fn drain(pending: &mut Vec<ChangeBatch>) -> Result<Option<Self>> {
        let pending = std::mem::take(pending);
        let Some(first) = pending.first() else {
            return Ok(None);
        };
        let all = Self::concat(&first.schema(), &pending)?.consolidate()?;
        Ok((!all.is_empty()).then_some(all))
    }

    /// Sums the weights of equal rows and drops rows whose weight is 0.
    /// Rows keep the order of their first occurrence.
    pub fn consolidate(&self) -> Result<Self> {
        if self.is_empty() || (self.len() == 1 && self.weights.value(0) != 0) {
            return Ok(self.clone());
        }
        if self.data.num_columns() == 0 {
            // All rows are the empty tuple.
            let w: i64 = self.weights.values().iter().sum();
            let n = usize::from(w != 0);
            let data = batch_with_rows(self.data.schema(), vec![], n)?;
            return Self::new(data, Int64Array::from(vec![w; n]));
        }
        let fields = self
            .data
            .schema()
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let rows = converter.convert_columns(self.data.columns())?;
        let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(self.len());
        let mut order: Vec<u32> = Vec::new();
        let mut sums: Vec<i64> = Vec::new();
        for (i, w) in self.weights.values().iter().enumerate() {
            let slot = *first.entry(rows.row(i).data()).or_insert_with(|| {
                order.push(i as u32);
                sums.push(0);
                sums.len() - 1
            });
            sums[slot] += w;
        }
        let keep: Vec<(u32, i64)> = order
            .into_iter()
            .zip(sums)
            .filter(|(_, w)| *w != 0)
            .collect();
        if keep.len() == self.len() {
            // Already consolidated (the common case of a small step): no copy.
            return Ok(self.clone());
        }
        let indices = UInt32Array::from(keep.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        let data = take_record_batch(&self.data, &indices)?;
        Self::new(
            data,
            Int64Array::from(keep.iter().map(|(_, w)| *w).collect::<Vec<_>>()),
        )
    }

    /// The batch as `(row values, weight)` pairs of display strings, sorted:
    /// a canonical form for comparing changes in tests.
    pub fn to_sorted_strings(&self) -> Result<Vec<(Vec<String>, i64)>> {
        let c = self.consolidate()?;
        let cols: Vec<&ArrayRef> = c.data.columns().iter().collect();
        let mut out = Vec::with_capacity(c.len());
        for r in 0..c.len() {
            let row = cols
                .iter()
                .map(|a| datafusion::arrow::util::display::array_value_to_string(a, r))
                .collect::<Result<Vec<_>, _>>()?;
            out.push((row, c.weights.value(r)));
        }
        out.sort();
        Ok(out)
    }
}

/// Builds a change batch from a readable fixture, RisingWave-style: one row
/// per line, `+` or `-` (or `+3`, `-2`) then the values; `.` is NULL.
///
/// ```text
///  + 1 ann
///  - 2 bob
///  +2 3 .
/// ```
#[cfg(test)]
pub(crate) fn fixture(schema: SchemaRef, text: &str) -> ChangeBatch {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::compute::cast;
    use std::sync::Arc;
    let mut weights = Vec::new();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); schema.fields().len()];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut parts = line.split_whitespace();
        let sign = parts.next().expect("weight");
        let w: i64 = match sign {
            "+" => 1,
            "-" => -1,
            s => s.parse().expect("weight like +2 or -1"),
        };
        weights.push(w);
        for (c, v) in columns.iter_mut().zip(parts) {
            c.push((v != ".").then(|| v.to_string()));
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(vals, f)| {
            cast(
                &(Arc::new(StringArray::from(vals)) as ArrayRef),
                f.data_type(),
            )
            .expect("castable fixture")
        })
        .collect();
    ChangeBatch::new(
        RecordBatch::try_new(schema, arrays).expect("fixture batch"),
        Int64Array::from(weights),
    )
    .expect("fixture weights")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn s(row: &[&str], w: i64) -> (Vec<String>, i64) {
        (row.iter().map(|v| v.to_string()).collect(), w)
    }

    #[test]
    fn consolidation_sums_and_drops_zero_weights() {
        let b = fixture(
            schema(),
            "+ 1 ann\n- 2 bob\n+ 2 bob\n+2 1 ann\n+ 3 .\n- 3 .\n- 4 dan",
        );
        let c = b.consolidate().unwrap();
        assert_eq!(
            c.to_sorted_strings().unwrap(),
            vec![s(&["1", "ann"], 3), s(&["4", "dan"], -1)]
        );
        // First-occurrence order is kept.
        assert_eq!(c.weights().values().to_vec(), vec![3, -1]);
    }

    #[test]
    fn negation_is_the_inverse() {
        let b = fixture(schema(), "+ 1 ann\n- 2 bob");
        let both = ChangeBatch::concat(&schema(), &[b.clone(), b.negate()]).unwrap();
        assert!(both.consolidate().unwrap().is_empty());
    }

    #[test]
    fn weights_must_match_rows() {
        let data = fixture(schema(), "+ 1 ann").data().clone();
        assert!(ChangeBatch::new(data, Int64Array::from(vec![1, 1])).is_err());
    }
}
