//! Grouped and global aggregation with any DataFusion aggregate function.
//!
//! State: group key → `(row count, per aggregate: accumulator state (for
//! invertible aggregates) and last output value)`. At the end of a step
//! the operator visits every group the step touched and emits `-old +new`
//! output rows (DESIGN.md). Each aggregate is maintained one of three ways:
//!
//! - **invertible** (`count`, `sum`, `avg`, `var`…: DataFusion's sliding
//!   accumulator supports `retract_batch`): the stored state is merged into
//!   a fresh accumulator, inserts are added and deletes retracted — O(change);
//! - **extreme** (`min`, `max`): an ordered state `(group, value) → count`
//!   per aggregate; the result is the first entry of the group (values
//!   ordered descending for max), so it stays exact when the extreme row is
//!   deleted — O(log n) per change;
//! - **retained** (everything else: `string_agg`, `array_agg`, `bool_and`,
//!   DISTINCT aggregates, aggregates with ORDER BY, …): an ordered state of
//!   the group's argument rows with counts; a touched group's value is
//!   recomputed from its rows by DataFusion's accumulator — O(group).
//!
//! A global aggregate (no GROUP BY) always has exactly one output row, even
//! over no input (`count(*)` is 0, `sum` is NULL), as in SQL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::{cast, SortOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::datatypes::{Int16Type, Int32Type, Int64Type, Int8Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use freshet_storage::{StateTable, Txn};

use super::ordered::{expand, mask_at, take_cols, OrderedState};
use super::{consolidated, Inputs, Operator, StepContext};
use crate::{ChangeBatch, DataflowError, Result};

/// One aggregate of the output: the function (with its arguments, ORDER BY
/// and DISTINCT) and its FILTER clause.
pub struct AggregateSpec {
    pub expr: Arc<AggregateFunctionExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

enum Mode {
    /// Stored accumulator state columns `[from, from + n)` of the state row;
    /// `native`: computed here instead of by DataFusion's accumulator.
    Invertible {
        from: usize,
        n: usize,
        native: Option<Native>,
    },
    Extreme,
    Retained,
}

pub struct Aggregate {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    aggs: Vec<AggregateSpec>,
    modes: Vec<Mode>,
    output: SchemaRef,
    /// `(group…, __rows, accumulator states…, outputs…)` keyed by group.
    state: StateTable,
    /// First output-value column in the state row.
    outputs_at: usize,
    ordered: Vec<Option<OrderedState>>,
    input: SchemaRef,
}

impl Aggregate {
    /// State tables used: `state_id` and `state_id + 1 + i` for aggregate i.
    pub fn state_ids_needed(aggs: usize) -> u32 {
        1 + aggs as u32
    }

    /// `output` is the group columns then one column per aggregate.
    pub fn new(
        input: SchemaRef,
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        aggs: Vec<AggregateSpec>,
        output: SchemaRef,
        state_id: u32,
    ) -> Result<Self> {
        let g = group_exprs.len();
        if output.fields().len() != g + aggs.len() {
            return Err(DataflowError::Malformed(format!(
                "aggregate output has {} columns for {g} groups and {} aggregates",
                output.fields().len(),
                aggs.len()
            )));
        }
        let group_fields: Vec<Field> = output.fields()[..g]
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let mut fields = group_fields.clone();
        fields.push(Field::new("__rows", DataType::Int64, false));
        let mut modes = Vec::with_capacity(aggs.len());
        let mut ordered = Vec::with_capacity(aggs.len());
        for (i, a) in aggs.iter().enumerate() {
            let name = a.expr.fun().name().to_ascii_lowercase();
            let simple = !a.expr.is_distinct() && a.expr.order_bys().is_empty();
            let sliding = a.expr.create_sliding_accumulator().ok();
            let id = state_id + 1 + i as u32;
            if simple && (name == "min" || name == "max") && a.expr.expressions().len() == 1 {
                let arg = a.expr.expressions()[0].data_type(&input)?;
                let payload = Arc::new(Schema::new(vec![Field::new("v", arg.clone(), true)]));
                let sort = SortField::new_with_options(
                    arg,
                    SortOptions {
                        descending: name == "max",
                        nulls_first: false,
                    },
                );
                ordered.push(Some(OrderedState::new(
                    id,
                    &group_fields,
                    payload,
                    vec![sort],
                )?));
                modes.push(Mode::Extreme);
            } else if let Some(mut acc) =
                sliding.filter(|acc| simple && acc.supports_retract_batch())
            {
                let empty = acc.state()?;
                let from = fields.len();
                for (j, s) in empty.iter().enumerate() {
                    fields.push(Field::new(format!("__state_{i}_{j}"), s.data_type(), true));
                }
                let native = Native::of(&name, a, &input, &empty, &output.fields()[g + i])?;
                modes.push(Mode::Invertible {
                    from,
                    n: empty.len(),
                    native,
                });
                ordered.push(None);
            } else {
                let mut pf = Vec::new();
                let mut sort = Vec::new();
                let all = a.expr.all_expressions();
                for (j, e) in all.args.iter().chain(&all.order_by_exprs).enumerate() {
                    let dt = e.data_type(&input)?;
                    pf.push(Field::new(format!("p{j}"), dt.clone(), true));
                    sort.push(SortField::new(dt));
                }
                let payload = Arc::new(Schema::new(pf));
                ordered.push(Some(OrderedState::new(id, &group_fields, payload, sort)?));
                modes.push(Mode::Retained);
            }
        }
        let outputs_at = fields.len();
        for (i, f) in output.fields()[g..].iter().enumerate() {
            fields.push(Field::new(
                format!("__out_{i}"),
                f.data_type().clone(),
                true,
            ));
        }
        let state = StateTable::new(state_id, Arc::new(Schema::new(fields)), (0..g).collect())?;
        Ok(Self {
            group_exprs,
            aggs,
            modes,
            output,
            state,
            outputs_at,
            ordered,
            input,
        })
    }

    fn is_global(&self) -> bool {
        self.group_exprs.is_empty()
    }

    /// The stored state of a group: row count, accumulator states per
    /// invertible aggregate, and the last output values.
    fn load(&self, ctx: &StepContext, key: &[u8]) -> Result<Option<Stored>> {
        let g = self.group_exprs.len();
        let Some(mut row) = self.state.get_row(&ctx.snapshot, key, g)? else {
            return Ok(None);
        };
        let rows = match row.first() {
            Some(ScalarValue::Int64(Some(r))) => *r,
            _ => return Err(DataflowError::Malformed("aggregate row count".into())),
        };
        let mut states = Vec::new();
        for m in &self.modes {
            states.push(match m {
                Mode::Invertible { from, n, .. } => row[from - g..from - g + n].to_vec(),
                _ => Vec::new(),
            });
        }
        let outputs = row.split_off(self.outputs_at - g);
        Ok(Some(Stored {
            rows,
            states,
            outputs,
        }))
    }

    /// Processes one group: its rows `idx` of the step's input.
    #[allow(clippy::too_many_arguments)]
    fn group(
        &mut self,
        ctx: &StepContext,
        groups: &[ArrayRef],
        args: &[Vec<ArrayRef>],
        masks: &[Option<ArrayRef>],
        weights: &[i64],
        idx: &[u32],
        out_old: &mut Vec<Vec<ScalarValue>>,
        out_new: &mut Vec<Vec<ScalarValue>>,
    ) -> Result<()> {
        let g = self.group_exprs.len();
        let first = UInt32Array::from(vec![idx.first().copied().unwrap_or(0)]);
        let group_row: Vec<ArrayRef> = if idx.is_empty() {
            Vec::new()
        } else {
            take_cols(groups, &first)?
        };
        let key = self.state.key_prefix_of(&group_row, 0, g)?;
        let old = self.load(ctx, &key)?;
        let delta: i64 = idx.iter().map(|&i| weights[i as usize]).sum();
        let rows = old.as_ref().map_or(0, |o| o.rows) + delta;
        if rows < 0 {
            return Err(DataflowError::Malformed(format!(
                "aggregate group count went negative ({rows})"
            )));
        }
        let group_values: Vec<ScalarValue> = group_row
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect::<std::result::Result<_, _>>()?;
        // Rows of the group passing each aggregate's FILTER, split by sign
        // and repeated by |weight|.
        let mut new_states: Vec<Vec<ScalarValue>> = Vec::new();
        let mut outputs: Vec<ScalarValue> = Vec::new();
        for i in 0..self.aggs.len() {
            let (mut rows_i, mut w_i) = (Vec::new(), Vec::new());
            for &r in idx {
                if let Some(m) = &masks[i] {
                    if !mask_at(m.as_ref(), r as usize) {
                        continue;
                    }
                }
                rows_i.push(r);
                w_i.push(weights[r as usize]);
            }
            match self.modes[i] {
                Mode::Invertible {
                    native: Some(native),
                    ..
                } => {
                    let stored = old.as_ref().map(|o| o.states[i].as_slice());
                    let (state, output) = native.step(stored, &args[i][0], &rows_i, &w_i)?;
                    new_states.push(state);
                    outputs.push(output);
                }
                Mode::Invertible { .. } => {
                    let (mut pos, mut neg) = (Vec::new(), Vec::new());
                    for (&r, &w) in rows_i.iter().zip(&w_i) {
                        let list = if w > 0 { &mut pos } else { &mut neg };
                        list.extend(std::iter::repeat_n(r, w.unsigned_abs() as usize));
                    }
                    let mut acc = self.aggs[i].expr.create_sliding_accumulator()?;
                    if let Some(o) = &old {
                        let st: Vec<ArrayRef> = o.states[i]
                            .iter()
                            .map(|s| s.to_array())
                            .collect::<std::result::Result<_, _>>()?;
                        acc.merge_batch(&st)?;
                    }
                    if !pos.is_empty() {
                        acc.update_batch(&take_cols(&args[i], &UInt32Array::from(pos))?)?;
                    }
                    if !neg.is_empty() {
                        acc.retract_batch(&take_cols(&args[i], &UInt32Array::from(neg))?)?;
                    }
                    new_states.push(acc.state()?);
                    outputs.push(acc.evaluate()?);
                }
                Mode::Extreme | Mode::Retained => {
                    let extreme = matches!(self.modes[i], Mode::Extreme);
                    let (mut rows, mut w) = (rows_i.clone(), w_i.clone());
                    if extreme {
                        // min/max ignore NULLs: they are not kept.
                        let arg = &args[i][0];
                        if arg.null_count() > 0 {
                            (rows, w) = rows
                                .iter()
                                .zip(&w)
                                .filter(|(&r, _)| arg.is_valid(r as usize))
                                .unzip();
                        }
                    }
                    // The group's columns at those rows are the group's key.
                    let prefix = pick(groups, &rows)?;
                    let vals = pick(&args[i], &rows)?;
                    let state = self.ordered[i].as_mut().expect("ordered state");
                    let payload = crate::batch::conform(state.payload_schema(), vals.clone())?;
                    let sort_cols = if extreme { vals.clone() } else { vals };
                    state.add(ctx, &prefix, &sort_cols, &payload, &w)?;
                    let state = &*state;
                    if extreme {
                        let current = old.as_ref().map(|o| &o.outputs[i]);
                        if let Some(v) = extreme_without_scan(state, current, &sort_cols[0], &w)? {
                            new_states.push(Vec::new());
                            outputs.push(v);
                            continue;
                        }
                    }
                    // A global aggregate's group row is empty: the table's prefix.
                    let pkey = state.prefix_key(&group_row, 0)?;
                    let limit = if extreme { 1 } else { usize::MAX };
                    let (stored, mut counts) = state.first(ctx, &pkey, limit)?;
                    let mut acc = self.aggs[i].expr.create_accumulator()?;
                    if self.aggs[i].expr.is_distinct() {
                        counts.iter_mut().for_each(|c| *c = 1);
                    }
                    let all = expand(&stored, &counts)?;
                    if all.num_rows() > 0 {
                        acc.update_batch(all.columns())?;
                    }
                    new_states.push(Vec::new());
                    outputs.push(acc.evaluate()?);
                }
            }
        }
        let global = self.is_global();
        if let Some(o) = &old {
            if o.rows > 0 || global {
                out_old.push(
                    group_values
                        .iter()
                        .cloned()
                        .chain(o.outputs.clone())
                        .collect(),
                );
            }
        }
        if rows > 0 || global {
            out_new.push(
                group_values
                    .iter()
                    .cloned()
                    .chain(outputs.clone())
                    .collect(),
            );
            // Write the state row.
            let mut row = group_values;
            row.push(ScalarValue::Int64(Some(rows)));
            for (i, m) in self.modes.iter().enumerate() {
                if let Mode::Invertible { .. } = m {
                    row.extend(new_states[i].iter().cloned());
                }
            }
            row.extend(outputs);
            self.state.put_row(key, &row)?;
        } else if old.is_some() {
            self.state.delete_key(&key);
        }
        Ok(())
    }

    /// One change batch: the `old` output rows deleted, the `new` inserted.
    fn rows_to_batch(
        &self,
        old: Vec<Vec<ScalarValue>>,
        new: Vec<Vec<ScalarValue>>,
    ) -> Result<ChangeBatch> {
        let n = old.len() + new.len();
        let weights: Int64Array = std::iter::repeat_n(-1, old.len())
            .chain(std::iter::repeat_n(1, new.len()))
            .collect();
        let mut cols = Vec::with_capacity(self.output.fields().len());
        for (c, f) in self.output.fields().iter().enumerate() {
            let vals = old.iter().chain(&new).map(|r| r[c].clone());
            let a = ScalarValue::iter_to_array(vals)?;
            cols.push(if a.data_type() == f.data_type() {
                a
            } else {
                cast(&a, f.data_type())?
            });
        }
        let data = RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        ChangeBatch::new(data, weights)
    }
}

/// Rows `rows` of `cols`: the columns themselves when `rows` is all of
/// them in order (a step's only group), else taken.
fn pick(cols: &[ArrayRef], rows: &[u32]) -> Result<Vec<ArrayRef>> {
    let all = cols.first().is_some_and(|c| c.len() == rows.len())
        && rows.iter().enumerate().all(|(i, &r)| r as usize == i);
    if all {
        return Ok(cols.to_vec());
    }
    take_cols(cols, &UInt32Array::from(rows.to_vec()))
}

/// The new min/max of a group from its old one and the step's changes
/// `values` (non-NULL, with `weights`), when that needs no look at the
/// group's other values: nothing deleted is at or before the old extreme in
/// the state's order. `None`: read the state.
fn extreme_without_scan(
    state: &OrderedState,
    current: Option<&ScalarValue>,
    values: &ArrayRef,
    weights: &[i64],
) -> Result<Option<ScalarValue>> {
    // `current` is NULL when the group holds no value (or is new).
    let current = current.filter(|c| !c.is_null());
    if let Some(c) = current {
        if c.data_type() != *values.data_type() {
            return Ok(None);
        }
    }
    let current_key = current
        .map(|c| Ok::<_, DataflowError>((c, state.sort_keys(&[c.to_array()?])?)))
        .transpose()?;
    let current_row = current_key.as_ref().map(|(c, k)| (*c, k.row(0)));
    let keys = state.sort_keys(std::slice::from_ref(values))?;
    let mut best: Option<usize> = None;
    for (j, &w) in weights.iter().enumerate() {
        if w < 0 {
            match current_row {
                Some((_, c)) if keys.row(j) > c => {}
                _ => return Ok(None),
            }
        } else if w > 0 && best.is_none_or(|b| keys.row(j) < keys.row(b)) {
            best = Some(j);
        }
    }
    Ok(Some(match (best, current_row) {
        (Some(b), Some((value, c))) if keys.row(b) >= c => value.clone(),
        (Some(b), _) => ScalarValue::try_from_array(values, b)?,
        (None, Some((value, _))) => value.clone(),
        (None, None) => ScalarValue::try_from(values.data_type())?,
    }))
}

/// `count` and `sum` of integers, maintained here: the same stored state
/// and result as DataFusion's sliding accumulators (checked when the
/// operator is built), without creating one and converting the group's
/// state to arrays and back at every step.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Native {
    /// `count(x)`: state `[Int64 count of non-NULL x]`.
    Count,
    /// `sum(x)` of an integer type as Int64 (PostgreSQL's `sum(smallint)`
    /// and `sum(integer)`): state `[Int64 sum or NULL, UInt64 count of
    /// non-NULL x]`; the result is NULL while the count is 0.
    SumInt64,
    /// `sum(x)` of a scale-0 Decimal128 as Decimal128(`precision`, 0)
    /// (PostgreSQL's `sum(bigint)`, a numeric): state `[Decimal128 sum or
    /// NULL, UInt64 count]`.
    SumDecimal { precision: u8 },
}

impl Native {
    /// The native form of aggregate `a` (named `name`, with the sliding
    /// accumulator's `empty` state and the output field `out`), if any.
    fn of(
        name: &str,
        a: &AggregateSpec,
        input: &Schema,
        empty: &[ScalarValue],
        out: &Field,
    ) -> Result<Option<Native>> {
        let args = a.expr.expressions();
        if args.len() != 1 {
            return Ok(None);
        }
        let arg = args[0].data_type(input)?;
        let integer = matches!(
            arg,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        );
        Ok(match (name, empty, out.data_type()) {
            ("count", [ScalarValue::Int64(Some(0))], DataType::Int64) => Some(Native::Count),
            ("sum", [ScalarValue::Int64(None), ScalarValue::UInt64(Some(0))], DataType::Int64)
                if integer =>
            {
                Some(Native::SumInt64)
            }
            (
                "sum",
                [ScalarValue::Decimal128(None, p, 0), ScalarValue::UInt64(Some(0))],
                DataType::Decimal128(q, 0),
            ) if p == q && matches!(arg, DataType::Decimal128(_, 0)) => {
                Some(Native::SumDecimal { precision: *p })
            }
            _ => None,
        })
    }

    /// The new state and result from the `stored` state (`None`: a new
    /// group) and the rows `rows` of `arg` added `weights` times. A sum
    /// is exact (in i128) over the step, so no order of the step's rows
    /// overflows; a result past its type fails the step with 22003, as
    /// PostgreSQL's `sum` raises.
    fn step(
        self,
        stored: Option<&[ScalarValue]>,
        arg: &ArrayRef,
        rows: &[u32],
        weights: &[i64],
    ) -> Result<(Vec<ScalarValue>, ScalarValue)> {
        let bad = || DataflowError::Malformed(format!("{self:?} aggregate state {stored:?}"));
        match self {
            Native::Count => {
                let mut count = match stored {
                    None => 0,
                    Some([ScalarValue::Int64(Some(c))]) => *c,
                    Some(_) => return Err(bad()),
                };
                for (&r, &w) in rows.iter().zip(weights) {
                    if arg.is_valid(r as usize) {
                        count += w;
                    }
                }
                if count < 0 {
                    return Err(bad());
                }
                let v = ScalarValue::Int64(Some(count));
                Ok((vec![v.clone()], v))
            }
            Native::SumInt64 | Native::SumDecimal { .. } => {
                let (sum, count) = match (self, stored) {
                    (_, None) => (0i128, 0u64),
                    (
                        Native::SumInt64,
                        Some([ScalarValue::Int64(s), ScalarValue::UInt64(Some(c))]),
                    ) => (s.unwrap_or(0) as i128, *c),
                    (
                        Native::SumDecimal { .. },
                        Some([ScalarValue::Decimal128(s, _, 0), ScalarValue::UInt64(Some(c))]),
                    ) => (s.unwrap_or(0), *c),
                    _ => return Err(bad()),
                };
                let (mut sum, mut count) = (sum, i64::try_from(count).map_err(|_| bad())?);
                let overflow = || DataflowError::OutOfRange("numeric field overflow".into());
                let mut add = |v: i128, w: i64| -> Result<()> {
                    sum = v
                        .checked_mul(w as i128)
                        .and_then(|x| sum.checked_add(x))
                        .ok_or_else(overflow)?;
                    count += w;
                    Ok(())
                };
                match self {
                    Native::SumInt64 => {
                        // Read in place: called once per touched group with
                        // the whole step's argument, so no cast of it here.
                        let value: Box<dyn Fn(usize) -> i128> = match arg.data_type() {
                            DataType::Int8 => {
                                let a = arg.as_primitive::<Int8Type>().clone();
                                Box::new(move |r| a.value(r) as i128)
                            }
                            DataType::Int16 => {
                                let a = arg.as_primitive::<Int16Type>().clone();
                                Box::new(move |r| a.value(r) as i128)
                            }
                            DataType::Int32 => {
                                let a = arg.as_primitive::<Int32Type>().clone();
                                Box::new(move |r| a.value(r) as i128)
                            }
                            DataType::Int64 => {
                                let a = arg.as_primitive::<Int64Type>().clone();
                                Box::new(move |r| a.value(r) as i128)
                            }
                            _ => {
                                return Err(DataflowError::Malformed(
                                    "sum argument is not an integer".into(),
                                ))
                            }
                        };
                        for (&r, &w) in rows.iter().zip(weights) {
                            if arg.is_valid(r as usize) {
                                add(value(r as usize), w)?;
                            }
                        }
                    }
                    _ => {
                        let values =
                            arg.as_any()
                                .downcast_ref::<Decimal128Array>()
                                .ok_or_else(|| {
                                    DataflowError::Malformed("sum argument is not a decimal".into())
                                })?;
                        for (&r, &w) in rows.iter().zip(weights) {
                            if values.is_valid(r as usize) {
                                add(values.value(r as usize), w)?;
                            }
                        }
                    }
                }
                if count < 0 {
                    return Err(bad());
                }
                let nonempty = count != 0;
                let (state, v) = match self {
                    Native::SumInt64 => {
                        let s = i64::try_from(sum)
                            .map_err(|_| DataflowError::OutOfRange("bigint out of range".into()))?;
                        let v = ScalarValue::Int64(nonempty.then_some(s));
                        (v.clone(), v)
                    }
                    Native::SumDecimal { precision } => {
                        if sum.unsigned_abs() >= 10u128.pow(precision as u32) {
                            return Err(overflow());
                        }
                        let v = ScalarValue::Decimal128(nonempty.then_some(sum), precision, 0);
                        (v.clone(), v)
                    }
                    Native::Count => unreachable!("handled above"),
                };
                Ok((vec![state, ScalarValue::UInt64(Some(count as u64))], v))
            }
        }
    }
}

struct Stored {
    rows: i64,
    states: Vec<Vec<ScalarValue>>,
    outputs: Vec<ScalarValue>,
}

impl Operator for Aggregate {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let input = consolidated(inputs)?;
        let global = self.is_global();
        if input.is_none() {
            // A global aggregate's row exists from the first step on.
            let key = self.state.empty_key();
            if !global || self.state.get(&ctx.snapshot, &key)?.is_some() {
                return Ok(None);
            }
        }
        let input = input.unwrap_or_else(|| ChangeBatch::empty(self.input.clone()));
        let data = input.data();
        let n = input.len();
        let groups: Vec<ArrayRef> = self
            .group_exprs
            .iter()
            .map(|e| e.evaluate(data)?.into_array(n))
            .collect::<datafusion::error::Result<_>>()?;
        let mut args = Vec::with_capacity(self.aggs.len());
        let mut masks = Vec::with_capacity(self.aggs.len());
        for (a, m) in self.aggs.iter().zip(&self.modes) {
            let exprs = match m {
                Mode::Retained => {
                    let all = a.expr.all_expressions();
                    all.args.into_iter().chain(all.order_by_exprs).collect()
                }
                _ => a.expr.expressions(),
            };
            args.push(
                exprs
                    .iter()
                    .map(|e| e.evaluate(data)?.into_array(n))
                    .collect::<datafusion::error::Result<Vec<_>>>()?,
            );
            masks.push(match &a.filter {
                Some(f) => Some(f.evaluate(data)?.into_array(n)?),
                None => None,
            });
        }
        // Rows by group, groups in order of first appearance.
        let mut order: Vec<Vec<u32>> = Vec::new();
        if global {
            order.push((0..n as u32).collect());
        } else if n > 0 {
            let conv = RowConverter::new(
                groups
                    .iter()
                    .map(|a| SortField::new(a.data_type().clone()))
                    .collect(),
            )?;
            let rows = conv.convert_columns(&groups)?;
            let mut slot: HashMap<&[u8], usize> = HashMap::new();
            for i in 0..n {
                let s = *slot.entry(rows.row(i).data()).or_insert_with(|| {
                    order.push(Vec::new());
                    order.len() - 1
                });
                order[s].push(i as u32);
            }
        }
        let weights = input.weights().values().to_vec();
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for idx in &order {
            self.group(
                ctx, &groups, &args, &masks, &weights, idx, &mut old, &mut new,
            )?;
        }
        if old.is_empty() && new.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.rows_to_batch(old, new)?))
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.state.commit_into(txn);
        for o in self.ordered.iter_mut().flatten() {
            o.commit(txn);
        }
    }

    fn abort(&mut self) {
        self.state.discard();
        for o in self.ordered.iter_mut().flatten() {
            o.discard();
        }
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        let mut v = vec![(self.state.id(), "groups".to_string())];
        for (i, o) in self.ordered.iter().enumerate() {
            if let Some(o) = o {
                v.push((o.id(), format!("values of {}", self.aggs[i].expr.name())));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{
        analyzed_plan, delete_pct, find_node, run_step, sorted, sql_truth, RandomRelation, Rng,
        TempStore,
    };
    use datafusion::execution::context::ExecutionProps;
    use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
    use datafusion::logical_expr::LogicalPlan;
    use datafusion::physical_expr::create_physical_expr;
    #[allow(deprecated)]
    use datafusion::physical_planner::create_aggregate_expr_and_maybe_filter;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
        ]))
    }

    /// A row of `schema()` from small domains, NULLs included.
    fn row(rng: &mut Rng) -> String {
        format!(
            "{} {} {} {}",
            rng.pick(&["0", "1", "2", "."]),
            rng.pick(&["0", "1", "2", "3", "4", "."]),
            rng.pick(&["a", "b", "c", "."]),
            rng.pick(&["true", "false", "."]),
        )
    }

    /// The Aggregate operator for `sql` (a `SELECT group exprs…, aggregates…
    /// FROM t GROUP BY …`), its expressions planned by DataFusion the way
    /// the planner lowers them.
    fn from_sql(sql: &str, state_id: u32) -> Aggregate {
        let empty = fixture(schema(), "").data().clone();
        let plan = analyzed_plan(&[("t", empty)], sql);
        let Some(LogicalPlan::Aggregate(a)) =
            find_node(&plan, &|p| matches!(p, LogicalPlan::Aggregate(_)))
        else {
            panic!("no aggregate in {plan}");
        };
        assert!(
            matches!(a.input.as_ref(), LogicalPlan::TableScan(_)),
            "the aggregate reads t directly: {plan}"
        );
        let in_df = a.input.schema();
        let in_arrow: SchemaRef = Arc::new(in_df.as_arrow().clone());
        assert_eq!(in_arrow.fields().len(), schema().fields().len());
        let props = ExecutionProps::new();
        let groups = a
            .group_expr
            .iter()
            .map(|e| {
                create_physical_expr(e, in_df, &props, &PhysicalPlanningContext::default()).unwrap()
            })
            .collect();
        let specs = a
            .aggr_expr
            .iter()
            .map(|e| {
                #[allow(deprecated)]
                let (expr, filter, _) =
                    create_aggregate_expr_and_maybe_filter(e, in_df, &in_arrow, &props).unwrap();
                AggregateSpec { expr, filter }
            })
            .collect();
        let output = Arc::new(a.schema.as_arrow().clone());
        Aggregate::new(in_arrow, groups, specs, output, state_id).unwrap()
    }

    /// ~24 committed steps of random changes to `t`; after every step the
    /// sum of all emitted changes equals DataFusion's answer to `sql` over
    /// the current `t`, and a step whose changes cancel emits nothing. Every
    /// 7th step runs on a new operator over the same state (a restart).
    fn check_random(sql: &str, seed: u64) {
        let t = TempStore::new("aggregate");
        let mut rng = Rng::new(seed);
        let mut rel = RandomRelation::new(schema(), row);
        let mut op = from_sql(sql, 100);
        let out = op.output.clone();
        let mut emitted: Vec<ChangeBatch> = Vec::new();
        // The run must not be vacuous: results of some size, and retractions.
        let (mut largest, mut retracted) = (0, false);
        let steps = 24;
        for step in 0..steps {
            let before = rel.rows.clone();
            if step % 7 == 6 {
                // A restart: a new operator on the same state tables.
                op = from_sql(sql, 100);
            }
            let lines = rel.changes(&mut rng, delete_pct(step, steps));
            let [a, b] = rel.split(&mut rng, &lines);
            let got = run_step(&mut op, &t, vec![(0, a), (0, b)]);
            if step > 0 && before == rel.rows {
                assert!(
                    sorted(&out, &got).is_empty(),
                    "{sql}: step {step} changed nothing but emitted {:?}",
                    sorted(&out, &got)
                );
            }
            retracted |= sorted(&out, &got).iter().any(|(_, w)| *w < 0);
            emitted.extend(got);
            let truth = sql_truth(&[("t", rel.batch())], sql);
            largest = largest.max(truth.len());
            assert_eq!(
                sorted(&out, &emitted),
                truth,
                "{sql}\nstep {step}, changes {lines:?}\nt = {:?}",
                rel.rows
            );
        }
        let least = if sql.contains("GROUP BY") { 3 } else { 1 };
        assert!(
            largest >= least && retracted,
            "{sql}: vacuous run ({largest} rows at most, retractions: {retracted})"
        );
    }

    #[test]
    fn grouped_aggregates_equal_batch_across_committed_steps() {
        // invertible (count, sum, avg), extreme (min/max of ints and text),
        // retained (string_agg with ORDER BY, bool_or/and, DISTINCT,
        // array_agg) and FILTER clauses, grouped by a key with NULLs.
        check_random(
            "SELECT g, count(*), count(v), sum(v), avg(v), min(v), max(v), min(s), max(s), \
             string_agg(s, ',' ORDER BY s), bool_or(b), bool_and(b), count(DISTINCT v), \
             sum(DISTINCT v), count(*) FILTER (WHERE b), max(v) FILTER (WHERE s = 'a'), \
             array_agg(v ORDER BY v DESC) \
             FROM t GROUP BY g",
            1,
        );
    }

    #[test]
    fn aggregates_grouped_by_expressions_equal_batch() {
        check_random(
            "SELECT s, v % 2, count(*), sum(g), max(g), min(b), count(DISTINCT g) \
             FROM t GROUP BY s, v % 2",
            2,
        );
    }

    #[test]
    fn global_aggregates_equal_batch_across_committed_steps() {
        check_random(
            "SELECT count(*), count(v), sum(v), avg(v), min(v), max(s), \
             string_agg(s, ',' ORDER BY s), bool_or(b), count(DISTINCT s) FROM t",
            3,
        );
        check_random(
            "SELECT sum(v) FILTER (WHERE g = 1), min(v) FILTER (WHERE b), \
             count(DISTINCT g) FILTER (WHERE v > 1), max(s) FILTER (WHERE v IS NULL) FROM t",
            4,
        );
    }

    fn s(row: &[&str], w: i64) -> (Vec<String>, i64) {
        (row.iter().map(|v| v.to_string()).collect(), w)
    }

    #[test]
    fn global_aggregate_over_empty_input_emits_one_row() {
        let t = TempStore::new("aggregate-empty");
        let mut op = from_sql("SELECT count(*), sum(v) FROM t", 100);
        let out = op.output.clone();
        // First step, no input at all: exactly one row, count 0, sum NULL.
        let first = run_step(&mut op, &t, vec![]);
        assert_eq!(sorted(&out, &first), vec![s(&["0", ""], 1)]);
        // The row exists now: an empty step emits nothing.
        assert!(sorted(&out, &run_step(&mut op, &t, vec![])).is_empty());
        let add = fixture(schema(), "+ 1 5 a true\n+ 2 7 b .");
        let second = run_step(&mut op, &t, vec![(0, add)]);
        assert_eq!(
            sorted(&out, &second),
            vec![s(&["0", ""], -1), s(&["2", "12"], 1)]
        );
        // Deleting everything comes back to count 0, sum NULL (not to no
        // row at all).
        let del = fixture(schema(), "- 1 5 a true\n- 2 7 b .");
        let third = run_step(&mut op, &t, vec![(0, del)]);
        assert_eq!(
            sorted(&out, &third),
            vec![s(&["0", ""], 1), s(&["2", "12"], -1)]
        );
        let all: Vec<ChangeBatch> = [first, second, third].concat();
        assert_eq!(sorted(&out, &all), vec![s(&["0", ""], 1)]);
    }

    /// Invertible aggregates come back to NULL (not 0) when only NULLs are
    /// left, and to their value when a non-NULL returns.
    #[test]
    fn sum_and_avg_of_only_nulls_are_null() {
        let t = TempStore::new("aggregate-nulls");
        let mut op = from_sql(
            "SELECT g, sum(v), avg(v), count(v), count(*) FROM t GROUP BY g",
            100,
        );
        let out = op.output.clone();
        let mut step = |changes: &str| {
            let got = run_step(&mut op, &t, vec![(0, fixture(schema(), changes))]);
            sorted(&out, &got)
        };
        assert_eq!(
            step("+ 1 5 a .\n+ 1 . a .\n+ 1 3 a .\n- 1 3 a ."),
            vec![s(&["1", "5", "5.0", "1", "2"], 1)]
        );
        assert_eq!(
            step("- 1 5 a ."),
            vec![
                s(&["1", "", "", "0", "1"], 1),
                s(&["1", "5", "5.0", "1", "2"], -1)
            ]
        );
        assert_eq!(
            step("+ 1 2 a .\n+ 1 2 a ."),
            vec![
                s(&["1", "", "", "0", "1"], -1),
                s(&["1", "4", "2.0", "2", "3"], 1)
            ]
        );
    }

    #[test]
    fn count_and_sum_of_integers_are_native() {
        // The randomized tests above check the native results against
        // DataFusion's; this checks that they take the native path.
        let op = from_sql(
            "SELECT g, count(*), count(s), sum(v), avg(v), count(DISTINCT v) FROM t GROUP BY g",
            100,
        );
        let natives: Vec<Option<Native>> = op
            .modes
            .iter()
            .map(|m| match m {
                Mode::Invertible { native, .. } => *native,
                _ => None,
            })
            .collect();
        assert_eq!(
            natives,
            [
                Some(Native::Count),
                Some(Native::Count),
                Some(Native::SumInt64),
                None,
                None
            ]
        );
    }

    #[test]
    fn min_max_after_deleting_the_extreme() {
        let t = TempStore::new("aggregate-minmax");
        let mut op = from_sql("SELECT g, min(v), max(v), count(*) FROM t GROUP BY g", 100);
        let out = op.output.clone();
        let mut step = |changes: &str| {
            let got = run_step(&mut op, &t, vec![(0, fixture(schema(), changes))]);
            sorted(&out, &got)
        };
        assert_eq!(
            step("+ 1 1 a .\n+ 1 5 a .\n+ 1 9 a .\n+ 1 9 b .\n+ 2 3 a ."),
            vec![s(&["1", "1", "9", "4"], 1), s(&["2", "3", "3", "1"], 1)]
        );
        // One of two copies of the maximum goes: still 9.
        assert_eq!(
            step("- 1 9 a ."),
            vec![s(&["1", "1", "9", "3"], 1), s(&["1", "1", "9", "4"], -1)]
        );
        // The other goes too: the next largest.
        assert_eq!(
            step("- 1 9 b ."),
            vec![s(&["1", "1", "5", "2"], 1), s(&["1", "1", "9", "3"], -1)]
        );
        // The minimum goes; a NULL arrives (ignored by min/max).
        assert_eq!(
            step("- 1 1 a .\n+ 1 . c ."),
            vec![s(&["1", "1", "5", "2"], -1), s(&["1", "5", "5", "2"], 1)]
        );
        // Only the NULL is left: min and max are NULL, the group stays.
        assert_eq!(
            step("- 1 5 a ."),
            vec![s(&["1", "", "", "1"], 1), s(&["1", "5", "5", "2"], -1)]
        );
        // The last row goes: the group's row goes, no new one.
        assert_eq!(step("- 1 . c ."), vec![s(&["1", "", "", "1"], -1)]);
        // The group comes back from nothing with a new extreme.
        assert_eq!(step("+ 1 4 a ."), vec![s(&["1", "4", "4", "1"], 1)]);
    }
}
