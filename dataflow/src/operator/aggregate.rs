//! Grouped aggregation: `count(*)`, `sum`, `min`, `max`.
//!
//! State: group key → `(row count, sums…)` in a state table keyed by the
//! group columns. For every group a change touches, the operator emits the
//! retraction of the group's old output row (if it had rows) and the
//! insertion of its new one (if it still has rows): `-old +new`, as in
//! DESIGN.md. A group whose row count drops to 0 disappears. Sums of Int64
//! columns are kept exactly with their non-null counts so that a sum over
//! only NULLs is NULL, as in SQL. `min`/`max` are not invertible: each keeps
//! an ordered state table `(group, value) → count`, and a touched group's
//! new extreme is the first (min) or last (max) entry of its prefix, so it
//! stays exact when the extreme row is deleted.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

/// One aggregate of the output.
#[derive(Debug, Clone, Copy)]
pub enum AggregateFn {
    /// `count(*)`.
    CountStar,
    /// `sum(col)` of an Int64 input column.
    Sum(usize),
    /// `min(col)` of an Int64 input column.
    Min(usize),
    /// `max(col)` of an Int64 input column.
    Max(usize),
}

pub struct Aggregate {
    group_cols: Vec<usize>,
    aggs: Vec<AggregateFn>,
    input: SchemaRef,
    output: SchemaRef,
    /// Group columns, row count, then per aggregate `(sum or current
    /// extreme, non-null count)`.
    state: StateTable,
    /// Per min/max aggregate: `(group columns…, value, count)` keyed by all
    /// but the count.
    ordered: Vec<Option<StateTable>>,
}

/// A group's accumulators.
#[derive(Debug, Clone, Default)]
struct Acc {
    rows: i64,
    sums: Vec<(i64, i64)>,
}

impl Aggregate {
    pub fn new(
        input: SchemaRef,
        group_cols: Vec<usize>,
        aggs: Vec<AggregateFn>,
        state_id: u32,
    ) -> Result<Self> {
        let mut out: Vec<Field> = group_cols.iter().map(|&c| input.field(c).clone()).collect();
        let mut st = out.clone();
        st.push(Field::new("__rows", DataType::Int64, false));
        for (i, a) in aggs.iter().enumerate() {
            match a {
                AggregateFn::CountStar => {
                    out.push(Field::new(format!("count_{i}"), DataType::Int64, false))
                }
                AggregateFn::Sum(c) | AggregateFn::Min(c) | AggregateFn::Max(c) => {
                    if input.field(*c).data_type() != &DataType::Int64 {
                        return Err(DataflowError::Malformed(format!(
                            "{a:?} over {}",
                            input.field(*c).data_type()
                        )));
                    }
                    out.push(Field::new(format!("agg_{i}"), DataType::Int64, true));
                }
            }
            st.push(Field::new(format!("__sum_{i}"), DataType::Int64, false));
            st.push(Field::new(format!("__nonnull_{i}"), DataType::Int64, false));
        }
        let g = group_cols.len();
        let key: Vec<usize> = (0..g).collect();
        let state = StateTable::new(state_id, Arc::new(Schema::new(st)), key)?;
        let mut ordered = Vec::with_capacity(aggs.len());
        for (i, a) in aggs.iter().enumerate() {
            ordered.push(match a {
                AggregateFn::Min(_) | AggregateFn::Max(_) => {
                    let mut f: Vec<Field> = out[..g].to_vec();
                    f.push(Field::new("__value", DataType::Int64, false));
                    f.push(Field::new("__count", DataType::Int64, false));
                    let schema = Arc::new(Schema::new(f));
                    Some(StateTable::new(
                        state_id + 1 + i as u32,
                        schema,
                        (0..=g).collect(),
                    )?)
                }
                _ => None,
            });
        }
        Ok(Self {
            group_cols,
            aggs,
            input,
            output: Arc::new(Schema::new(out)),
            state,
            ordered,
        })
    }

    fn load(&self, ctx: &StepContext, key: &[u8]) -> Result<Option<Acc>> {
        let Some(v) = self.state.get(&ctx.snapshot, key)? else {
            return Ok(None);
        };
        let g = self.group_cols.len();
        let cols: Vec<usize> = (g..g + 1 + 2 * self.aggs.len()).collect();
        let row = self.state.codec().decode([v.as_slice()], Some(&cols))?;
        let int = |i: usize| -> Result<i64> {
            row.column(i)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(0))
                .ok_or_else(|| DataflowError::Malformed("aggregate state".into()))
        };
        let mut acc = Acc {
            rows: int(0)?,
            sums: Vec::new(),
        };
        for i in 0..self.aggs.len() {
            acc.sums.push((int(1 + 2 * i)?, int(2 + 2 * i)?));
        }
        Ok(Some(acc))
    }

    /// Output values of the aggregates for `acc`.
    fn outputs(&self, acc: &Acc) -> Vec<Option<i64>> {
        self.aggs
            .iter()
            .zip(&acc.sums)
            .map(|(a, (sum, nonnull))| match a {
                AggregateFn::CountStar => Some(acc.rows),
                AggregateFn::Sum(_) | AggregateFn::Min(_) | AggregateFn::Max(_) => {
                    (*nonnull > 0).then_some(*sum)
                }
            })
            .collect()
    }
}

impl Operator for Aggregate {
    fn name(&self) -> &str {
        "Aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(
        &mut self,
        ctx: &StepContext,
        _input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let data = batch.data();
        let groups = data.project(&self.group_cols)?;
        let sums: Vec<Option<&Int64Array>> = self
            .aggs
            .iter()
            .map(|a| match a {
                AggregateFn::Sum(c) => data.column(*c).as_any().downcast_ref::<Int64Array>(),
                // min/max keep only the non-null count here; their values
                // live in the ordered state.
                AggregateFn::Min(_) | AggregateFn::Max(_) | AggregateFn::CountStar => None,
            })
            .collect();
        // Fold the batch into per-group deltas (first row of each group
        // stands for its key).
        let mut order: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut deltas: HashMap<Vec<u8>, Acc> = HashMap::new();
        for (i, w) in batch.weights().values().iter().enumerate() {
            let key = self
                .state
                .key_prefix_of(&groups, i, self.group_cols.len())?;
            let acc = deltas.entry(key.clone()).or_insert_with(|| {
                order.push((key, i as u32));
                Acc {
                    rows: 0,
                    sums: vec![(0, 0); self.aggs.len()],
                }
            });
            acc.rows += w;
            for (j, s) in sums.iter().enumerate() {
                if let Some(col) = s {
                    if !col.is_null(i) {
                        acc.sums[j].0 += w * col.value(i);
                        acc.sums[j].1 += w;
                    }
                }
            }
            for (j, a) in self.aggs.iter().enumerate() {
                if let (AggregateFn::Min(c) | AggregateFn::Max(c), Some(ordered)) =
                    (a, self.ordered[j].as_mut())
                {
                    if !data.column(*c).is_null(i) {
                        acc.sums[j].1 += w;
                        bump(ordered, ctx, &groups, data.column(*c), i, *w)?;
                    }
                }
            }
        }
        let mut out_rows: Vec<u32> = Vec::new();
        let mut out_weights: Vec<i64> = Vec::new();
        let mut out_values: Vec<Vec<Option<i64>>> = vec![Vec::new(); self.aggs.len()];
        let mut state_rows: Vec<u32> = Vec::new();
        let mut state_vals: Vec<Vec<i64>> = vec![Vec::new(); 1 + 2 * self.aggs.len()];
        let mut removed: Vec<u32> = Vec::new();
        for (key, row) in &order {
            let delta = &deltas[key];
            let old = self.load(ctx, key)?;
            let mut new = old.clone().unwrap_or(Acc {
                rows: 0,
                sums: vec![(0, 0); self.aggs.len()],
            });
            new.rows += delta.rows;
            for (n, d) in new.sums.iter_mut().zip(&delta.sums) {
                n.0 += d.0;
                n.1 += d.1;
            }
            for (j, a) in self.aggs.iter().enumerate() {
                if let Some(ordered) = &self.ordered[j] {
                    let max = matches!(a, AggregateFn::Max(_));
                    new.sums[j].0 = if new.sums[j].1 > 0 {
                        extreme(ordered, ctx, &groups, *row as usize, max)?
                    } else {
                        0
                    };
                }
            }
            if let Some(old) = old.as_ref().filter(|o| o.rows > 0) {
                out_rows.push(*row);
                out_weights.push(-1);
                for (j, v) in self.outputs(old).into_iter().enumerate() {
                    out_values[j].push(v);
                }
            }
            if new.rows > 0 {
                out_rows.push(*row);
                out_weights.push(1);
                for (j, v) in self.outputs(&new).into_iter().enumerate() {
                    out_values[j].push(v);
                }
                state_rows.push(*row);
                state_vals[0].push(new.rows);
                for (j, (s, n)) in new.sums.iter().enumerate() {
                    state_vals[1 + 2 * j].push(*s);
                    state_vals[2 + 2 * j].push(*n);
                }
            } else {
                removed.push(*row);
            }
        }
        let with_values =
            |rows: &[u32], values: Vec<ArrayRef>, schema: SchemaRef| -> Result<RecordBatch> {
                let keys = take_record_batch(&groups, &UInt32Array::from(rows.to_vec()))?;
                let mut cols = keys.columns().to_vec();
                cols.extend(values);
                Ok(RecordBatch::try_new(schema, cols)?)
            };
        let state_schema = self.state.codec().schema().clone();
        let vals: Vec<ArrayRef> = state_vals
            .into_iter()
            .map(|v| Arc::new(Int64Array::from(v)) as ArrayRef)
            .collect();
        self.state
            .insert(&with_values(&state_rows, vals, state_schema.clone())?)?;
        let zeros: Vec<ArrayRef> = (0..1 + 2 * self.aggs.len())
            .map(|_| Arc::new(Int64Array::from(vec![0; removed.len()])) as ArrayRef)
            .collect();
        self.state
            .delete(&with_values(&removed, zeros, state_schema)?)?;
        if out_rows.is_empty() {
            return Ok(vec![]);
        }
        let values: Vec<ArrayRef> = out_values
            .into_iter()
            .map(|v| Arc::new(Int64Array::from(v)) as ArrayRef)
            .collect();
        let out = with_values(&out_rows, values, self.output.clone())?;
        let _ = &self.input;
        Ok(vec![ChangeBatch::new(out, Int64Array::from(out_weights))?])
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
        for o in self.ordered.iter_mut().flatten() {
            o.commit_into(txn);
        }
    }
}

/// Adds `w` to the count of `(group of row i, value)` in an ordered state.
fn bump(
    ordered: &mut StateTable,
    ctx: &StepContext,
    groups: &RecordBatch,
    values: &ArrayRef,
    i: usize,
    w: i64,
) -> Result<()> {
    let g = groups.num_columns();
    let mut cols: Vec<ArrayRef> = groups.slice(i, 1).columns().to_vec();
    cols.push(values.slice(i, 1));
    cols.push(Arc::new(Int64Array::from(vec![0])));
    let probe = RecordBatch::try_new(ordered.codec().schema().clone(), cols)?;
    let key = ordered.key_of(&probe, 0)?;
    let old = ordered.get_i64(&ctx.snapshot, &key, g + 1)?.unwrap_or(0);
    let mut cols = probe.columns()[..=g].to_vec();
    cols.push(Arc::new(Int64Array::from(vec![old + w])));
    let row = RecordBatch::try_new(probe.schema(), cols)?;
    if old + w == 0 {
        ordered.delete(&row)?;
    } else {
        ordered.insert(&row)?;
    }
    Ok(())
}

/// The smallest (or largest) value stored for the group of row `i`.
fn extreme(
    ordered: &StateTable,
    ctx: &StepContext,
    groups: &RecordBatch,
    i: usize,
    max: bool,
) -> Result<i64> {
    let g = groups.num_columns();
    let mut cols: Vec<ArrayRef> = groups.slice(i, 1).columns().to_vec();
    cols.push(Arc::new(Int64Array::from(vec![0])));
    cols.push(Arc::new(Int64Array::from(vec![0])));
    let probe = RecordBatch::try_new(ordered.codec().schema().clone(), cols)?;
    let prefix = ordered.key_prefix_of(&probe, 0, g)?;
    let entries = ordered.prefix_scan(&ctx.snapshot, &prefix)?;
    let entry = if max { entries.last() } else { entries.first() };
    let (_, v) = entry.ok_or_else(|| {
        DataflowError::Malformed("min/max state of a non-empty group is empty".into())
    })?;
    Ok(ordered.decode_i64(v, g)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::operator::test_util::{schema, Lcg, TempStore};
    use std::collections::BTreeMap;

    /// `SELECT name, count(*), sum(amount) GROUP BY name`: after every
    /// committed step, the accumulated output equals the aggregate computed
    /// from scratch over the accumulated input.
    #[test]
    fn incremental_equals_batch_across_committed_steps() {
        let t = TempStore::new("aggregate");
        let mut rng = Lcg(5);
        let mut agg = Aggregate::new(
            schema(),
            vec![1],
            vec![
                AggregateFn::CountStar,
                AggregateFn::Sum(2),
                AggregateFn::Min(2),
                AggregateFn::Max(2),
            ],
            200,
        )
        .unwrap();
        let mut rows: Vec<String> = Vec::new();
        let mut emitted = Vec::new();
        for step in 0..40 {
            let ctx = t.ctx();
            let mut lines = Vec::new();
            for _ in 0..rng.next(10) {
                if !rows.is_empty() && rng.next(3) == 0 {
                    let r = rows.swap_remove(rng.next(rows.len() as u64) as usize);
                    lines.push(format!("- {r}"));
                } else {
                    let amount = if rng.next(4) == 0 {
                        ".".into()
                    } else {
                        rng.next(50).to_string()
                    };
                    let r = format!("{} g{} {amount}", rng.next(100), rng.next(3));
                    rows.push(r.clone());
                    lines.push(format!("+ {r}"));
                }
            }
            emitted.extend(
                agg.process(&ctx, 0, fixture(schema(), &lines.join("\n")))
                    .unwrap(),
            );
            let mut txn = Txn::new();
            agg.commit(&mut txn);
            t.store.commit(txn).unwrap();

            let got = ChangeBatch::concat(&agg.schema(), &emitted)
                .unwrap()
                .to_sorted_strings()
                .unwrap();
            // The batch answer, computed directly.
            type Batch = (i64, Option<i64>, Option<i64>, Option<i64>);
            let mut groups: BTreeMap<String, Batch> = BTreeMap::new();
            for r in &rows {
                let parts: Vec<&str> = r.split_whitespace().collect();
                let g = groups
                    .entry(parts[1].to_string())
                    .or_insert((0, None, None, None));
                g.0 += 1;
                if parts[2] != "." {
                    let v = parts[2].parse::<i64>().unwrap();
                    g.1 = Some(g.1.unwrap_or(0) + v);
                    g.2 = Some(g.2.map_or(v, |m| m.min(v)));
                    g.3 = Some(g.3.map_or(v, |m| m.max(v)));
                }
            }
            let text = |v: Option<i64>| v.map(|s| s.to_string()).unwrap_or_default();
            let expected: Vec<(Vec<String>, i64)> = groups
                .into_iter()
                .map(|(g, (n, s, lo, hi))| (vec![g, n.to_string(), text(s), text(lo), text(hi)], 1))
                .collect();
            assert_eq!(got, expected, "step {step}");
        }
    }
}
