//! Rows per partition in sort order, and the step top-N and window
//! functions share: for every partition a change touches, the rows the
//! operator emits for it are computed before and after the change is
//! applied, and the difference is emitted — work proportional to what is
//! read of the touched partitions, never to the whole input (DESIGN.md,
//! "top-N"). Ties in the sort key are broken by the whole row, so what is
//! emitted is deterministic.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use freshet_storage::Txn;

use super::ordered::OrderedState;
use super::StepContext;
use crate::{ChangeBatch, Result};

pub struct SortedPartitions {
    pub(super) partition: Vec<Arc<dyn PhysicalExpr>>,
    pub(super) sort: Vec<PhysicalSortExpr>,
    pub(super) state: OrderedState,
}

impl SortedPartitions {
    /// The rows of `input`, partitioned by `partition` (none: one
    /// partition) and ordered by `sort`, kept in state table `state_id`.
    pub fn new(
        input: &SchemaRef,
        partition: Vec<Arc<dyn PhysicalExpr>>,
        sort: Vec<PhysicalSortExpr>,
        state_id: u32,
    ) -> Result<Self> {
        let mut prefix = Vec::new();
        for (i, p) in partition.iter().enumerate() {
            prefix.push(Field::new(format!("__p{i}"), p.data_type(input)?, true));
        }
        let sort_fields = sort
            .iter()
            .map(|s| {
                Ok(SortField::new_with_options(
                    s.expr.data_type(input)?,
                    s.options,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let payload = Arc::new(Schema::new(
            input
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        Ok(Self {
            partition,
            sort,
            state: OrderedState::new(state_id, &prefix, payload, sort_fields)?,
        })
    }

    /// Applies `delta` (consolidated input changes) and returns the
    /// difference in what is emitted, as `output` rows: `emitted(self,
    /// ctx, key)` is what the partition with state key `key` emits.
    pub fn step(
        &mut self,
        ctx: &StepContext,
        delta: ChangeBatch,
        output: &SchemaRef,
        emitted: impl Fn(&Self, &StepContext, &[u8]) -> Result<Option<ChangeBatch>>,
    ) -> Result<Option<ChangeBatch>> {
        let data = crate::batch_with_rows(
            self.state.payload_schema(),
            delta.data().columns().to_vec(),
            delta.len(),
        )?;
        let n = data.num_rows();
        let parts: Vec<ArrayRef> = self
            .partition
            .iter()
            .map(|e| e.evaluate(&data)?.into_array(n))
            .collect::<datafusion::error::Result<_>>()?;
        let sort_cols: Vec<ArrayRef> = self
            .sort
            .iter()
            .map(|s| s.expr.evaluate(&data)?.into_array(n))
            .collect::<datafusion::error::Result<_>>()?;
        // Partitions touched, each with its first row (for its key).
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if parts.is_empty() {
            keys.push(self.state.prefix_key(&[], 0)?);
        } else {
            let conv = RowConverter::new(
                parts
                    .iter()
                    .map(|a| SortField::new(a.data_type().clone()))
                    .collect(),
            )?;
            let rows = conv.convert_columns(&parts)?;
            let mut seen: HashMap<&[u8], ()> = HashMap::new();
            for i in 0..n {
                if seen.insert(rows.row(i).data(), ()).is_none() {
                    keys.push(self.state.prefix_key(&parts, i)?);
                }
            }
        }
        let mut out = Vec::new();
        for k in &keys {
            if let Some(old) = emitted(self, ctx, k)? {
                out.push(old.negate());
            }
        }
        self.state
            .add(ctx, &parts, &sort_cols, &data, delta.weights().values())?;
        for k in &keys {
            out.extend(emitted(self, ctx, k)?);
        }
        if out.is_empty() {
            return Ok(None);
        }
        let all = ChangeBatch::concat(output, &out)?.consolidate()?;
        Ok((!all.is_empty()).then_some(all))
    }

    /// The sort keys of `rows` (a partition's rows in order), to tell
    /// peers (rows equal in the sort key) apart; `None` without ORDER BY.
    pub fn sort_keys(&self, rows: &RecordBatch) -> Result<Option<Rows>> {
        if self.sort.is_empty() {
            return Ok(None);
        }
        let n = rows.num_rows();
        let cols: Vec<ArrayRef> = self
            .sort
            .iter()
            .map(|s| s.expr.evaluate(rows)?.into_array(n))
            .collect::<datafusion::error::Result<_>>()?;
        Ok(Some(self.state.sort_keys(&cols)?))
    }

    pub fn commit(&mut self, txn: &mut Txn) {
        self.state.commit(txn);
    }

    pub fn abort(&mut self) {
        self.state.discard();
    }

    pub fn state_table(&self) -> (u32, String) {
        (self.state.id(), "rows in sort order".into())
    }

    /// The sort order as `EXPLAIN` shows it.
    pub fn describe_order(&self) -> String {
        let sort: Vec<String> = self.sort.iter().map(|s| s.to_string()).collect();
        sort.join(", ")
    }
}
