//! Inner equi-join.
//!
//! State: each side's rows with their multiplicities, in a state table keyed
//! by `(join key, row)`, so the matches of a key are one prefix scan. A
//! change on one side is joined with the other side's current state, then
//! folded into its own: processing `ΔL` then `ΔR` within a step gives
//! `ΔL⋈R + L'⋈ΔR` (with `L' = L + ΔL`), the delta of the join (DESIGN.md).
//! Rows whose join key has a NULL never match, as in SQL, and are not kept.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use freshet_storage::{StateTable, Txn};

use super::{Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

struct Side {
    schema: SchemaRef,
    keys: Vec<usize>,
    /// `(join key columns…, row columns…, multiplicity)`, keyed by all but
    /// the multiplicity.
    state: StateTable,
}

impl Side {
    fn new(schema: SchemaRef, keys: Vec<usize>, state_id: u32) -> Result<Self> {
        let mut fields: Vec<Field> = keys
            .iter()
            .map(|&k| schema.field(k).clone().with_nullable(false))
            .collect();
        fields.extend(schema.fields().iter().map(|f| f.as_ref().clone()));
        fields.push(Field::new("__multiplicity", DataType::Int64, false));
        let n = fields.len() - 1;
        let state = StateTable::new(state_id, Arc::new(Schema::new(fields)), (0..n).collect())?;
        Ok(Self {
            schema,
            keys,
            state,
        })
    }

    /// `rows` with the join key columns in front (the state's layout).
    fn keyed(&self, rows: &RecordBatch, multiplicity: Option<Vec<i64>>) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = self.keys.iter().map(|&k| rows.column(k).clone()).collect();
        cols.extend(rows.columns().iter().cloned());
        let n = rows.num_rows();
        cols.push(Arc::new(Int64Array::from(
            multiplicity.unwrap_or_else(|| vec![0; n]),
        )));
        Ok(RecordBatch::try_new(
            self.state.codec().schema().clone(),
            cols,
        )?)
    }

    /// The stored rows (row columns only) and multiplicities matching the
    /// join key in row `row` of `keyed` (a batch in state layout).
    fn matches(
        &self,
        ctx: &StepContext,
        keyed: &RecordBatch,
        row: usize,
    ) -> Result<(RecordBatch, Vec<i64>)> {
        let prefix = self.state.key_prefix_of(keyed, row, self.keys.len())?;
        let entries = self.state.prefix_scan(&ctx.snapshot, &prefix)?;
        let k = self.keys.len();
        let n = self.schema.fields().len();
        let cols: Vec<usize> = (k..k + n + 1).collect();
        let decoded = self
            .state
            .codec()
            .decode(entries.iter().map(|(_, v)| v.as_slice()), Some(&cols))?;
        let mult = decoded
            .column(n)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.values().to_vec())
            .ok_or_else(|| DataflowError::Malformed("join state multiplicity".into()))?;
        Ok((
            RecordBatch::try_new(self.schema.clone(), decoded.columns()[..n].to_vec())?,
            mult,
        ))
    }

    /// Adds `weights` to the stored multiplicities of `keyed`'s rows.
    fn fold(&mut self, ctx: &StepContext, keyed: &RecordBatch, weights: &[i64]) -> Result<()> {
        let n = keyed.num_columns() - 1;
        let mut new = Vec::with_capacity(weights.len());
        for (i, w) in weights.iter().enumerate() {
            let key = self.state.key_of(keyed, i)?;
            let old = self.state.get_i64(&ctx.snapshot, &key, n)?.unwrap_or(0);
            new.push(old + w);
        }
        let mut cols = keyed.columns()[..n].to_vec();
        cols.push(Arc::new(Int64Array::from(new.clone())));
        let rows = RecordBatch::try_new(keyed.schema(), cols)?;
        let (zero, kept): (Vec<u32>, Vec<u32>) =
            (0..new.len() as u32).partition(|&i| new[i as usize] == 0);
        let pick = |idx: Vec<u32>| {
            datafusion::arrow::compute::take_record_batch(&rows, &UInt32Array::from(idx))
        };
        self.state.insert(&pick(kept)?)?;
        self.state.delete(&pick(zero)?)?;
        Ok(())
    }
}

pub struct HashJoin {
    sides: [Side; 2],
    output: SchemaRef,
}

impl HashJoin {
    /// Joins `left` and `right` on `left[lk[i]] = right[rk[i]]`; the output
    /// is the left columns then the right columns.
    pub fn new(
        left: SchemaRef,
        lk: Vec<usize>,
        right: SchemaRef,
        rk: Vec<usize>,
        state_ids: [u32; 2],
    ) -> Result<Self> {
        if lk.len() != rk.len() || lk.is_empty() {
            return Err(DataflowError::Malformed(
                "join needs matching, non-empty key lists".into(),
            ));
        }
        let fields: Vec<Field> = left
            .fields()
            .iter()
            .chain(right.fields().iter())
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(Self {
            sides: [
                Side::new(left, lk, state_ids[0])?,
                Side::new(right, rk, state_ids[1])?,
            ],
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl Operator for HashJoin {
    fn name(&self) -> &str {
        "HashJoin"
    }

    fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(
        &mut self,
        ctx: &StepContext,
        input: usize,
        batch: ChangeBatch,
    ) -> Result<Vec<ChangeBatch>> {
        if input > 1 {
            return Err(DataflowError::Malformed(format!(
                "join has no input {input}"
            )));
        }
        let batch = batch.consolidate()?;
        // Rows with a NULL in the join key never match and are not kept.
        let valid: Vec<u32> = (0..batch.len())
            .filter(|&i| {
                self.sides[input]
                    .keys
                    .iter()
                    .all(|&k| !batch.data().column(k).is_null(i))
            })
            .map(|i| i as u32)
            .collect();
        let batch = batch.take(&UInt32Array::from(valid))?;
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let (this, other) = (&self.sides[input], &self.sides[1 - input]);
        let keyed = this.keyed(batch.data(), None)?;
        // Probe the other side: for each changed row, its current matches.
        let mut mine: Vec<u32> = Vec::new();
        let mut theirs: Vec<RecordBatch> = Vec::new();
        let mut weights: Vec<i64> = Vec::new();
        for (i, w) in batch.weights().values().iter().enumerate() {
            let (rows, mult) = other.matches(ctx, &keyed, i)?;
            for (j, m) in mult.iter().enumerate() {
                mine.push(i as u32);
                theirs.push(rows.slice(j, 1));
                weights.push(w * m);
            }
        }
        let out = if mine.is_empty() {
            vec![]
        } else {
            let mine_rows = datafusion::arrow::compute::take_record_batch(
                batch.data(),
                &UInt32Array::from(mine),
            )?;
            let theirs_rows = datafusion::arrow::compute::concat_batches(&other.schema, &theirs)?;
            let (l, r) = if input == 0 {
                (&mine_rows, &theirs_rows)
            } else {
                (&theirs_rows, &mine_rows)
            };
            let cols: Vec<ArrayRef> = l.columns().iter().chain(r.columns()).cloned().collect();
            vec![ChangeBatch::new(
                RecordBatch::try_new(self.output.clone(), cols)?,
                Int64Array::from(weights),
            )?]
        };
        let w = batch.weights().values().to_vec();
        self.sides[input].fold(ctx, &keyed, &w)?;
        Ok(out)
    }

    fn commit(&mut self, txn: &mut Txn) {
        for s in &mut self.sides {
            s.state.commit_into(txn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::operator::test_util::{Lcg, TempStore};

    fn left() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("k", DataType::Int64, true),
        ]))
    }

    fn right() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]))
    }

    /// After every committed step, the accumulated join output equals the
    /// join of the accumulated inputs, computed by nested loops.
    #[test]
    fn incremental_equals_batch_across_committed_steps() {
        let t = TempStore::new("join");
        let mut rng = Lcg(3);
        let mut join = HashJoin::new(left(), vec![1], right(), vec![0], [300, 301]).unwrap();
        let (mut ls, mut rs): (Vec<String>, Vec<String>) = (vec![], vec![]);
        let mut emitted = Vec::new();
        let mut most = 0;
        for step in 0..30 {
            let ctx = t.ctx();
            for side in [0usize, 1] {
                let rows = if side == 0 { &mut ls } else { &mut rs };
                let mut lines = Vec::new();
                for _ in 0..rng.next(6) {
                    if !rows.is_empty() && rng.next(3) == 0 {
                        lines.push(format!(
                            "- {}",
                            rows.swap_remove(rng.next(rows.len() as u64) as usize)
                        ));
                    } else {
                        let key = if rng.next(6) == 0 {
                            ".".to_string()
                        } else {
                            rng.next(4).to_string()
                        };
                        let r = if side == 0 {
                            format!("{} {key}", rng.next(5))
                        } else {
                            format!("{key} v{}", rng.next(3))
                        };
                        rows.push(r.clone());
                        lines.push(format!("+ {r}"));
                    }
                }
                let schema = if side == 0 { left() } else { right() };
                emitted.extend(
                    join.process(&ctx, side, fixture(schema, &lines.join("\n")))
                        .unwrap(),
                );
            }
            let mut txn = Txn::new();
            join.commit(&mut txn);
            t.store.commit(txn).unwrap();

            let got = ChangeBatch::concat(&join.schema(), &emitted)
                .unwrap()
                .to_sorted_strings()
                .unwrap();
            let mut expected_lines = Vec::new();
            for l in &ls {
                let lp: Vec<&str> = l.split_whitespace().collect();
                for r in &rs {
                    let rp: Vec<&str> = r.split_whitespace().collect();
                    if lp[1] != "." && lp[1] == rp[0] {
                        expected_lines.push(format!("+ {l} {r}"));
                    }
                }
            }
            let expected = fixture(join.schema(), &expected_lines.join("\n"))
                .to_sorted_strings()
                .unwrap();
            most = most.max(expected.len());
            assert_eq!(got, expected, "step {step}");
        }
        assert!(
            most >= 3,
            "the random stream should produce matches ({most})"
        );
    }
}
