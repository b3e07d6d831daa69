//! Top-N: `ORDER BY … LIMIT n OFFSET m`, per partition or over everything,
//! optionally numbering the rows (`ROW_NUMBER() OVER (PARTITION BY …
//! ORDER BY …) <= n`).
//!
//! State: the input rows of each partition in sort order (see
//! [`OrderedState`]). For every partition a step touches, the operator
//! reads the first `m + n` rows before and after applying the change and
//! emits the difference — work proportional to `m + n`, not to the
//! partition (DESIGN.md, "top-N"). Ties in the sort key are broken by the
//! whole row, so the result is deterministic.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use freshet_storage::Txn;

use super::ordered::{expand, OrderedState};
use super::{Operator, StepContext};
use crate::{ChangeBatch, Result};

pub struct TopN {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    sort: Vec<PhysicalSortExpr>,
    offset: usize,
    limit: usize,
    row_number: bool,
    output: SchemaRef,
    state: OrderedState,
    pending: Vec<ChangeBatch>,
}

impl TopN {
    /// `output`: the input columns, plus a row-number column when
    /// `row_number`. `limit`: `usize::MAX` for none.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input: SchemaRef,
        partition: Vec<Arc<dyn PhysicalExpr>>,
        sort: Vec<PhysicalSortExpr>,
        offset: usize,
        limit: usize,
        row_number: bool,
        output: SchemaRef,
        state_id: u32,
    ) -> Result<Self> {
        let mut prefix = Vec::new();
        for (i, p) in partition.iter().enumerate() {
            prefix.push(Field::new(format!("__p{i}"), p.data_type(&input)?, true));
        }
        let sort_fields = sort
            .iter()
            .map(|s| Ok(SortField::new_with_options(s.expr.data_type(&input)?, s.options)))
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
            offset,
            limit,
            row_number,
            output,
            state: OrderedState::new(state_id, &prefix, payload, sort_fields)?,
            pending: Vec::new(),
        })
    }

    /// The emitted rows of a partition: entries `offset..offset+limit`.
    fn window(&self, ctx: &StepContext, key: &[u8]) -> Result<Option<ChangeBatch>> {
        let want = self.offset.saturating_add(self.limit);
        let (rows, counts) = self.state.first(ctx, key, want)?;
        let all = expand(&rows, &counts)?;
        let from = self.offset.min(all.num_rows());
        let n = all.num_rows().min(want) - from;
        if n == 0 {
            return Ok(None);
        }
        let part = all.slice(from, n);
        let mut cols = part.columns().to_vec();
        if self.row_number {
            let rn: UInt64Array = (1..=n as u64).collect();
            cols.push(Arc::new(rn));
        }
        let data = crate::batch_with_rows(self.output.clone(), cols, n)?;
        Ok(Some(ChangeBatch::inserts(data)))
    }
}

impl Operator for TopN {
    fn name(&self) -> &str {
        "TopN"
    }

    fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(
        &mut self,
        _ctx: &StepContext,
        _input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>> {
        if !batch.is_empty() {
            self.pending.push(batch);
        }
        Ok(vec![])
    }

    fn end_step(&mut self, ctx: &StepContext) -> Result<Vec<ChangeBatch>> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(vec![]);
        }
        let delta = ChangeBatch::concat(&pending[0].schema(), &pending)?.consolidate()?;
        if delta.is_empty() {
            return Ok(vec![]);
        }
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
            if let Some(old) = self.window(ctx, k)? {
                out.push(old.negate());
            }
        }
        self.state
            .add(ctx, &parts, &sort_cols, &data, delta.weights().values())?;
        for k in &keys {
            out.extend(self.window(ctx, k)?);
        }
        if out.is_empty() {
            return Ok(out);
        }
        let all = ChangeBatch::concat(&self.output, &out)?.consolidate()?;
        Ok(vec![all])
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit(txn);
    }

    fn abort(&mut self) {
        self.pending.clear();
        self.state.discard();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        vec![(self.state.id(), "rows in sort order".into())]
    }

    fn describe(&self) -> String {
        let sort: Vec<String> = self.sort.iter().map(|s| s.to_string()).collect();
        let limit = if self.limit == usize::MAX {
            "ALL".to_string()
        } else {
            self.limit.to_string()
        };
        format!(
            "order=[{}], partitions={}, offset={}, limit={limit}{}",
            sort.join(", "),
            self.partition.len(),
            self.offset,
            if self.row_number { ", row_number" } else { "" }
        )
    }
}
