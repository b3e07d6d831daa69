//! Top-N: `ORDER BY … LIMIT n OFFSET m`, per partition or over everything,
//! optionally numbering the rows (`ROW_NUMBER() OVER (PARTITION BY …
//! ORDER BY …) <= n`); and window functions in general.
//!
//! State: the input rows of each partition in sort order (see
//! [`OrderedState`]). For every partition a step touches, the operator
//! reads the first `m + n` rows before and after applying the change and
//! emits the difference — work proportional to `m + n`, not to the
//! partition (DESIGN.md, "top-N"). Ties in the sort key are broken by the
//! whole row, so the result is deterministic.
//!
//! With window functions (`rank() OVER (…)`, `lag(x) OVER (…)`,
//! `sum(x) OVER (…)`, …) the operator reads each touched partition whole,
//! before and after the change, evaluates the functions over it with
//! DataFusion's window expressions (the partition in sort order is exactly
//! the batch they expect), and emits the rows that differ: work
//! proportional to the partitions a step touches, as in Materialize. A
//! window without `PARTITION BY` is one partition, so every change re-reads
//! all of its input.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::window::WindowExpr;
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use freshet_storage::Txn;

use super::ordered::{expand, OrderedState};
use super::{Operator, StepContext};
use crate::{ChangeBatch, Result};

/// The number a top-N gives each row it emits.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Numbering {
    None,
    /// `ROW_NUMBER()`: 1, 2, 3, … in sort order.
    RowNumber,
    /// `RANK()` (`DENSE_RANK()` when `dense`): rows up to rank `limit`,
    /// ties included (see [`TopN::with_rank`]).
    Rank {
        dense: bool,
    },
}

pub struct TopN {
    partition: Vec<Arc<dyn PhysicalExpr>>,
    sort: Vec<PhysicalSortExpr>,
    offset: usize,
    limit: usize,
    /// The number column appended to the emitted rows, if any.
    numbering: Numbering,
    /// Window functions over each whole partition in sort order, one
    /// output column each (after the input's).
    functions: Vec<Arc<dyn WindowExpr>>,
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
            .map(|s| {
                Ok(SortField::new_with_options(
                    s.expr.data_type(&input)?,
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
            offset,
            limit,
            numbering: if row_number {
                Numbering::RowNumber
            } else {
                Numbering::None
            },
            functions: Vec::new(),
            output,
            state: OrderedState::new(state_id, &prefix, payload, sort_fields)?,
            pending: Vec::new(),
        })
    }

    /// Evaluates `functions` over each whole partition (their partition
    /// and order are the operator's); `output` gains a column per function.
    pub fn with_functions(mut self, functions: Vec<Arc<dyn WindowExpr>>) -> Self {
        self.functions = functions;
        self
    }

    /// Emits the rows of each partition whose `rank()` (`dense`: its
    /// `dense_rank()`) is at most `limit`, ties included, with that rank
    /// as the last column (instead of a row number). Reads only as many of
    /// a partition's first rows as the ties need.
    pub fn with_rank(mut self, dense: bool) -> Self {
        self.numbering = Numbering::Rank { dense };
        self
    }

    /// The rows of a partition up to rank `limit` (see
    /// [`TopN::with_rank`]): its first `limit + 1` entries are read, and
    /// twice as many again while the last of them could still tie.
    fn ranked(&self, ctx: &StepContext, key: &[u8], dense: bool) -> Result<Option<ChangeBatch>> {
        let top = self.limit as u64;
        let mut want = self.limit.saturating_add(1);
        loop {
            let (rows, counts) = self.state.first(ctx, key, want)?;
            let exhausted = counts.len() < want || want == usize::MAX;
            let all = expand(&rows, &counts)?;
            let n = all.num_rows();
            let keys = if self.sort.is_empty() {
                None
            } else {
                let cols: Vec<ArrayRef> = self
                    .sort
                    .iter()
                    .map(|s| s.expr.evaluate(&all)?.into_array(n))
                    .collect::<datafusion::error::Result<_>>()?;
                Some(self.state.sort_keys(&cols)?)
            };
            // Without ORDER BY every row is a peer of every other.
            let peer = |i: usize| keys.as_ref().is_none_or(|k| k.row(i) == k.row(i - 1));
            let mut ranks: Vec<u64> = Vec::with_capacity(n);
            let (mut distinct, mut cut) = (0u64, None);
            for i in 0..n {
                let tied = i > 0 && peer(i);
                if !tied {
                    distinct += 1;
                }
                let r = match (dense, ranks.last()) {
                    (true, _) => distinct,
                    (false, Some(&last)) if tied => last,
                    (false, _) => i as u64 + 1,
                };
                if r > top {
                    cut = Some(i);
                    break;
                }
                ranks.push(r);
            }
            if cut.is_none() && !exhausted {
                // Every row read is in; the next may tie with the last.
                want = want.saturating_mul(2);
                continue;
            }
            let m = ranks.len();
            if m == 0 {
                return Ok(None);
            }
            let mut cols: Vec<ArrayRef> = all.columns().iter().map(|c| c.slice(0, m)).collect();
            cols.push(Arc::new(UInt64Array::from(ranks)));
            let data = crate::batch_with_rows(self.output.clone(), cols, m)?;
            return Ok(Some(ChangeBatch::inserts(data)));
        }
    }

    /// The emitted rows of a partition: entries `offset..offset+limit`.
    fn window(&self, ctx: &StepContext, key: &[u8]) -> Result<Option<ChangeBatch>> {
        if let Numbering::Rank { dense } = self.numbering {
            return self.ranked(ctx, key, dense);
        }
        let want = if self.functions.is_empty() {
            self.offset.saturating_add(self.limit)
        } else {
            // Window functions see the whole partition.
            usize::MAX
        };
        let (rows, counts) = self.state.first(ctx, key, want)?;
        let all = expand(&rows, &counts)?;
        let from = self.offset.min(all.num_rows());
        let n = all.num_rows().min(self.offset.saturating_add(self.limit)) - from;
        if n == 0 {
            return Ok(None);
        }
        let mut cols = all.columns().to_vec();
        for (f, field) in self
            .functions
            .iter()
            .zip(&self.output.fields()[all.num_columns()..])
        {
            let v = f.evaluate(&all)?;
            cols.push(if v.data_type() == field.data_type() {
                v
            } else {
                datafusion::arrow::compute::cast(&v, field.data_type())?
            });
        }
        let mut cols: Vec<ArrayRef> = cols.iter().map(|c| c.slice(from, n)).collect();
        if self.numbering == Numbering::RowNumber {
            let rn: UInt64Array = (1..=n as u64).collect();
            cols.push(Arc::new(rn));
        }
        let data = crate::batch_with_rows(self.output.clone(), cols, n)?;
        Ok(Some(ChangeBatch::inserts(data)))
    }
}

impl Operator for TopN {
    fn name(&self) -> &str {
        if self.functions.is_empty() {
            "TopN"
        } else {
            "Window"
        }
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
        let Some(delta) = ChangeBatch::drain(&mut self.pending)? else {
            return Ok(vec![]);
        };
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
        if !self.functions.is_empty() {
            let names: Vec<String> = self
                .functions
                .iter()
                .map(|f| function_display(f.name()))
                .collect();
            return format!(
                "window [{}], order=[{}], partitions={} (each touched partition is re-read whole)",
                names.join(", "),
                sort.join(", "),
                self.partition.len()
            );
        }
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
            match self.numbering {
                Numbering::Rank { dense: false } => ", rank (ties kept)",
                Numbering::Rank { dense: true } => ", dense_rank (ties kept)",
                Numbering::RowNumber => ", row_number",
                Numbering::None => "",
            }
        )
    }
}

/// A window function as EXPLAIN shows it: DataFusion's name without the
/// partition and order (the operator shows those once), and with its frame
/// only when that is not the default one.
fn function_display(name: &str) -> String {
    let call_end = [
        " PARTITION BY [",
        " ORDER BY [",
        " ROWS ",
        " RANGE ",
        " GROUPS ",
    ]
    .iter()
    .filter_map(|m| name.find(m))
    .min()
    .unwrap_or(name.len());
    let frame = [" ROWS ", " RANGE ", " GROUPS "]
        .iter()
        .filter_map(|m| name.find(m))
        .min()
        .map(|i| name[i + 1..].to_string());
    let defaults = [
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
        "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING",
    ];
    match frame {
        Some(f) if !defaults.contains(&f.as_str()) => format!("{} {f}", &name[..call_end]),
        _ => name[..call_end].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::operator::test_util::{
        analyzed_plan, delete_pct, find_node, physical, run_step, sorted, sql_truth, Lcg,
        RandomRelation, TempStore,
    };
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::Expr;
    use datafusion::prelude::{col, lit};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn row(rng: &mut Lcg) -> String {
        format!(
            "{} {} {}",
            rng.pick(&["0", "1", "2", "."]),
            rng.pick(&["0", "1", "2", "3", "4", "."]),
            rng.pick(&["a", "b", "c", "."]),
        )
    }

    /// One sort key: the expression (logical, and as SQL), DESC, NULLS FIRST.
    type Key = (Expr, &'static str, bool, bool);

    struct Case {
        partition: bool,
        sort: Vec<Key>,
        offset: usize,
        limit: Option<usize>,
        row_number: bool,
    }

    impl Case {
        fn output(&self) -> SchemaRef {
            let mut fields: Vec<Field> = schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            if self.row_number {
                fields.push(Field::new("rn", DataType::UInt64, false));
            }
            Arc::new(Schema::new(fields))
        }

        fn op(&self, state_id: u32) -> TopN {
            let s = schema();
            let partition = if self.partition {
                vec![physical(col("g"), &s)]
            } else {
                vec![]
            };
            let sort = self
                .sort
                .iter()
                .map(|(e, _, desc, nulls_first)| PhysicalSortExpr {
                    expr: physical(e.clone(), &s),
                    options: SortOptions {
                        descending: *desc,
                        nulls_first: *nulls_first,
                    },
                })
                .collect();
            TopN::new(
                s,
                partition,
                sort,
                self.offset,
                self.limit.unwrap_or(usize::MAX),
                self.row_number,
                self.output(),
                state_id,
            )
            .unwrap()
        }

        /// The same top-N in SQL. Ties in the sort key are broken by the
        /// whole row, ascending with NULLs first, as TopN does.
        fn sql(&self) -> String {
            let mut order: Vec<String> = self
                .sort
                .iter()
                .map(|(_, sql, desc, nf)| {
                    format!(
                        "{sql} {} NULLS {}",
                        if *desc { "DESC" } else { "ASC" },
                        if *nf { "FIRST" } else { "LAST" }
                    )
                })
                .collect();
            order.extend(["g", "v", "s"].map(|c| format!("{c} ASC NULLS FIRST")));
            let order = order.join(", ");
            if !self.partition && !self.row_number {
                let limit = self.limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
                return format!(
                    "SELECT g, v, s FROM t ORDER BY {order}{limit} OFFSET {}",
                    self.offset
                );
            }
            assert!(
                self.offset == 0 || !self.row_number,
                "row numbers count from the window's first row"
            );
            let partition = if self.partition {
                "PARTITION BY g "
            } else {
                ""
            };
            let upper = self
                .limit
                .map_or(String::new(), |n| format!(" AND rn <= {}", self.offset + n));
            format!(
                "SELECT g, v, s{} FROM (SELECT g, v, s, ROW_NUMBER() OVER ({partition}ORDER BY \
                 {order}) AS rn FROM t) WHERE rn > {}{upper}",
                if self.row_number { ", rn" } else { "" },
                self.offset
            )
        }
    }

    /// ~24 committed steps of random changes; after every step the sum of
    /// everything emitted equals DataFusion's answer over the current input.
    /// Every 7th step runs on a new operator over the same state (a restart).
    fn check_random(case: &Case, seed: u64) {
        check_steps(&case.sql(), seed, || case.op(100));
    }

    /// [`check_random`] for the operator `make` builds and its SQL.
    fn check_steps(sql: &str, seed: u64, make: impl Fn() -> TopN) {
        let t = TempStore::new("topn");
        let mut rng = Lcg(seed);
        let mut rel = RandomRelation::new(schema(), row);
        let mut op = make();
        let out = op.schema();
        let mut emitted: Vec<ChangeBatch> = Vec::new();
        // The run must not be vacuous: results of some size, and retractions.
        let (mut largest, mut retracted) = (0, false);
        let steps = 24;
        for step in 0..steps {
            let before = rel.rows.clone();
            if step % 7 == 6 {
                // A restart: a new operator on the same state.
                op = make();
            }
            let lines = rel.changes(&mut rng, delete_pct(step, steps));
            let [a, b] = rel.split(&mut rng, &lines);
            let got = run_step(&mut op, &t, vec![(0, a), (0, b)]);
            if before == rel.rows {
                assert!(sorted(&out, &got).is_empty(), "{sql}: step {step}");
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
        assert!(
            largest >= 3 && retracted,
            "{sql}: vacuous run ({largest} rows at most, retractions: {retracted})"
        );
    }

    fn v() -> Expr {
        col("v")
    }

    #[test]
    fn top_n_with_offset_equals_batch() {
        check_random(
            &Case {
                partition: false,
                sort: vec![(v(), "v", true, false)],
                offset: 2,
                limit: Some(3),
                row_number: false,
            },
            1,
        );
        check_random(
            &Case {
                partition: false,
                sort: vec![(col("s"), "s", false, true), (v(), "v", true, true)],
                offset: 0,
                limit: Some(4),
                row_number: false,
            },
            2,
        );
        // OFFSET without LIMIT.
        check_random(
            &Case {
                partition: false,
                sort: vec![(v(), "v", false, false)],
                offset: 3,
                limit: None,
                row_number: false,
            },
            3,
        );
    }

    #[test]
    fn top_n_per_partition_with_row_number_equals_batch() {
        check_random(
            &Case {
                partition: true,
                sort: vec![(v(), "v", false, false)],
                offset: 0,
                limit: Some(2),
                row_number: true,
            },
            4,
        );
        check_random(
            &Case {
                partition: true,
                sort: vec![(v() % lit(3i64), "v % 3", true, false)],
                offset: 0,
                limit: Some(1),
                row_number: true,
            },
            5,
        );
        // Row numbers over everything (no partition).
        check_random(
            &Case {
                partition: false,
                sort: vec![(col("s"), "s", true, true)],
                offset: 0,
                limit: Some(3),
                row_number: true,
            },
            6,
        );
    }

    #[test]
    fn top_n_per_partition_with_offset_equals_batch() {
        check_random(
            &Case {
                partition: true,
                sort: vec![(col("s"), "s", true, true), (v(), "v", false, true)],
                offset: 1,
                limit: Some(2),
                row_number: false,
            },
            7,
        );
    }

    fn s(row: &[&str], w: i64) -> (Vec<String>, i64) {
        (row.iter().map(|v| v.to_string()).collect(), w)
    }

    #[test]
    fn offset_window_slides() {
        let t = TempStore::new("topn-offset");
        let case = Case {
            partition: false,
            sort: vec![(v(), "v", false, false)],
            offset: 1,
            limit: Some(2),
            row_number: false,
        };
        let mut op = case.op(100);
        let out = op.schema();
        let mut step = |changes: &str| {
            let got = run_step(&mut op, &t, vec![(0, fixture(schema(), changes))]);
            sorted(&out, &got)
        };
        // 1 3 4 5: rows 2 and 3.
        assert_eq!(
            step("+ 1 5 a\n+ 1 3 a\n+ 1 1 a\n+ 1 4 a"),
            vec![s(&["1", "3", "a"], 1), s(&["1", "4", "a"], 1)]
        );
        // 3 4 5
        assert_eq!(
            step("- 1 1 a"),
            vec![s(&["1", "3", "a"], -1), s(&["1", "5", "a"], 1)]
        );
        // 0 3 4 5
        assert_eq!(
            step("+ 1 0 a"),
            vec![s(&["1", "3", "a"], 1), s(&["1", "5", "a"], -1)]
        );
        // 0 3 3 4: a duplicate takes the second place.
        assert_eq!(
            step("+ 1 3 a"),
            vec![s(&["1", "3", "a"], 1), s(&["1", "4", "a"], -1)]
        );
        // A change below the window moves nothing.
        assert_eq!(step("+ 1 9 a"), vec![]);
        // NULLS LAST: NULL sorts after 9, outside the window.
        assert_eq!(step("+ 1 . a"), vec![]);
    }

    /// `rank() <= n` and `dense_rank() <= n` per partition and over all
    /// rows, with the few values of `v` tying often: ties at the n-th place
    /// are all kept, as DataFusion's batch answer keeps them.
    #[test]
    fn rank_and_dense_rank_top_n_keep_ties() {
        for (seed, partition, dense, limit) in [
            (1, true, false, 2),
            (2, true, true, 2),
            (3, false, false, 3),
            (4, false, true, 2),
        ] {
            let case = Case {
                partition,
                sort: vec![(v(), "v", true, false)],
                offset: 0,
                limit: Some(limit),
                row_number: true,
            };
            let sql = format!(
                "SELECT g, v, s, r FROM (SELECT g, v, s, {}() OVER ({}ORDER BY v DESC NULLS LAST) \
                 AS r FROM t) WHERE r <= {limit}",
                if dense { "dense_rank" } else { "rank" },
                if partition { "PARTITION BY g " } else { "" },
            );
            check_steps(&sql, seed, || case.op(100).with_rank(dense));
        }
    }

    /// The operator for `sql` (`SELECT g, v, s, f(…) OVER (w), … FROM t`,
    /// every function over the same window `w`), its window functions
    /// planned by DataFusion as the planner plans them.
    fn window_op(sql: &str, state_id: u32) -> TopN {
        use datafusion::execution::context::ExecutionProps;
        use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
        use datafusion::logical_expr::LogicalPlan;
        use datafusion::physical_expr::create_physical_expr;
        use datafusion::physical_planner::create_window_expr;

        let empty = fixture(schema(), "").data().clone();
        let plan = analyzed_plan(&[("t", empty)], sql);
        let Some(LogicalPlan::Window(w)) =
            find_node(&plan, &|p| matches!(p, LogicalPlan::Window(_)))
        else {
            panic!("no window in {plan}");
        };
        let in_df = w.input.schema();
        let props = ExecutionProps::new();
        let ctx = PhysicalPlanningContext::default();
        let functions: Vec<_> = w
            .window_expr
            .iter()
            .map(|e| create_window_expr(e, in_df, &props, &ctx).unwrap())
            .collect();
        let Expr::WindowFunction(f) = w.window_expr[0].clone().unalias() else {
            panic!("not a window function: {}", w.window_expr[0]);
        };
        let partition = f
            .params
            .partition_by
            .iter()
            .map(|e| create_physical_expr(e, in_df, &props, &ctx).unwrap())
            .collect();
        let sort = f
            .params
            .order_by
            .iter()
            .map(|o| PhysicalSortExpr {
                expr: create_physical_expr(&o.expr, in_df, &props, &ctx).unwrap(),
                options: SortOptions {
                    descending: !o.asc,
                    nulls_first: o.nulls_first,
                },
            })
            .collect();
        let input = Arc::new(in_df.as_arrow().clone());
        let output = Arc::new(w.schema.as_arrow().clone());
        TopN::new(
            input,
            partition,
            sort,
            0,
            usize::MAX,
            false,
            output,
            state_id,
        )
        .unwrap()
        .with_functions(functions)
    }

    /// Random committed steps (a restart every 7th): after every step the
    /// sum of everything emitted equals DataFusion's batch answer. Where
    /// rows may tie on the window's order, the functions are ones whose
    /// value ties cannot change (ranks, and aggregates whose default frame
    /// takes in all peers).
    #[test]
    fn window_functions_equal_batch() {
        let ranks = "rank(), dense_rank(), sum(v), count(*), max(s)";
        for (seed, window, functions) in [
            (1, "PARTITION BY g ORDER BY v DESC", ranks),
            (3, "ORDER BY v", ranks),
            (4, "PARTITION BY s", "count(*), sum(v), max(v), min(g)"),
            // Ordered by every column: only identical rows tie, so
            // functions that depend on the order of ties are exact too.
            (
                2,
                "PARTITION BY g ORDER BY v NULLS FIRST, s DESC",
                "row_number(), lag(v), lead(s, 2, 'z'), first_value(s), rank()",
            ),
        ] {
            let list: Vec<String> = functions
                .split("), ")
                .enumerate()
                .map(|(i, f)| {
                    let f = f.trim_end_matches(')');
                    format!("{f}) OVER ({window}) AS f{i}")
                })
                .collect();
            let sql = format!("SELECT g, v, s, {} FROM t", list.join(", "));
            check_steps(&sql, seed, || window_op(&sql, 100));
        }
    }

    #[test]
    fn partition_row_numbers_follow_changes() {
        let t = TempStore::new("topn-rn");
        let case = Case {
            partition: true,
            sort: vec![(v(), "v", true, false)],
            offset: 0,
            limit: Some(2),
            row_number: true,
        };
        let mut op = case.op(100);
        let out = op.schema();
        let mut step = |changes: &str| {
            let got = run_step(&mut op, &t, vec![(0, fixture(schema(), changes))]);
            sorted(&out, &got)
        };
        assert_eq!(
            step("+ 1 5 a\n+ 1 3 a\n+ 1 7 a\n+ 2 1 a\n+ . 4 a"),
            vec![
                s(&["", "4", "a", "1"], 1),
                s(&["1", "5", "a", "2"], 1),
                s(&["1", "7", "a", "1"], 1),
                s(&["2", "1", "a", "1"], 1),
            ]
        );
        // A new second place in partition 1; partition 2 untouched.
        assert_eq!(
            step("+ 1 6 a"),
            vec![s(&["1", "5", "a", "2"], -1), s(&["1", "6", "a", "2"], 1)]
        );
        // The first place goes: everyone moves up.
        assert_eq!(
            step("- 1 7 a"),
            vec![
                s(&["1", "5", "a", "2"], 1),
                s(&["1", "6", "a", "1"], 1),
                s(&["1", "6", "a", "2"], -1),
                s(&["1", "7", "a", "1"], -1),
            ]
        );
        // The NULL partition empties.
        assert_eq!(step("- . 4 a"), vec![s(&["", "4", "a", "1"], -1)]);
    }
}
