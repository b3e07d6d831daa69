//! Top-N: `ORDER BY … LIMIT n OFFSET m`, per partition or over everything,
//! optionally numbering the rows (`ROW_NUMBER() OVER (PARTITION BY …
//! ORDER BY …) <= n`), or keeping the rows up to a `RANK()` /
//! `DENSE_RANK()` with their ties.
//!
//! State: the input rows of each partition in sort order
//! ([`SortedPartitions`]). For every partition a step touches, the
//! operator reads the first `m + n` rows before and after applying the
//! change and emits the difference — work proportional to `m + n`, not to
//! the partition (DESIGN.md, "top-N").

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use freshet_storage::Txn;

use super::ordered::expand;
use super::partitions::SortedPartitions;
use super::{consolidated, Inputs, Operator, StepContext};
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

/// Which rows of a partition a top-N emits.
struct Window {
    offset: usize,
    limit: usize,
    /// The number column appended to the emitted rows, if any.
    numbering: Numbering,
}

pub struct TopN {
    rows: SortedPartitions,
    window: Window,
    output: SchemaRef,
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
        Ok(Self {
            rows: SortedPartitions::new(&input, partition, sort, state_id)?,
            window: Window {
                offset,
                limit,
                numbering: if row_number {
                    Numbering::RowNumber
                } else {
                    Numbering::None
                },
            },
            output,
        })
    }

    /// Emits the rows of each partition whose `rank()` (`dense`: its
    /// `dense_rank()`) is at most `limit`, ties included, with that rank
    /// as the last column (instead of a row number). Reads only as many of
    /// a partition's first rows as the ties need.
    pub fn with_rank(mut self, dense: bool) -> Self {
        self.window.numbering = Numbering::Rank { dense };
        self
    }
}

impl Window {
    /// The rows of a partition up to rank `limit` (see
    /// [`TopN::with_rank`]): its first `limit + 1` entries are read, and
    /// twice as many again while the last of them could still tie.
    fn ranked(
        &self,
        rows: &SortedPartitions,
        ctx: &StepContext,
        key: &[u8],
        dense: bool,
        output: &SchemaRef,
    ) -> Result<Option<ChangeBatch>> {
        let top = self.limit as u64;
        let mut want = self.limit.saturating_add(1);
        loop {
            let (entries, counts) = rows.state.first(ctx, key, want)?;
            let exhausted = counts.len() < want || want == usize::MAX;
            let all = expand(&entries, &counts)?;
            let n = all.num_rows();
            let keys = rows.sort_keys(&all)?;
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
            let data = crate::batch_with_rows(output.clone(), cols, m)?;
            return Ok(Some(ChangeBatch::inserts(data)));
        }
    }

    /// The rows partition `key` emits: entries `offset..offset+limit`,
    /// numbered if asked.
    fn emitted(
        &self,
        rows: &SortedPartitions,
        ctx: &StepContext,
        key: &[u8],
        output: &SchemaRef,
    ) -> Result<Option<ChangeBatch>> {
        if let Numbering::Rank { dense } = self.numbering {
            return self.ranked(rows, ctx, key, dense, output);
        }
        let want = self.offset.saturating_add(self.limit);
        let (entries, counts) = rows.state.first(ctx, key, want)?;
        let all = expand(&entries, &counts)?;
        let from = self.offset.min(all.num_rows());
        let n = all.num_rows().min(want) - from;
        if n == 0 {
            return Ok(None);
        }
        let mut cols: Vec<ArrayRef> = all.columns().iter().map(|c| c.slice(from, n)).collect();
        if self.numbering == Numbering::RowNumber {
            let rn: UInt64Array = (1..=n as u64).collect();
            cols.push(Arc::new(rn));
        }
        let data = crate::batch_with_rows(output.clone(), cols, n)?;
        Ok(Some(ChangeBatch::inserts(data)))
    }
}

impl Operator for TopN {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(delta) = consolidated(inputs)? else {
            return Ok(None);
        };
        let (window, output) = (&self.window, &self.output);
        self.rows.step(ctx, delta, output, |rows, ctx, key| {
            window.emitted(rows, ctx, key, output)
        })
    }

    fn commit(&mut self, txn: &mut Txn) {
        self.rows.commit(txn);
    }

    fn abort(&mut self) {
        self.rows.abort();
    }

    fn state_tables(&self) -> Vec<(u32, String)> {
        vec![self.rows.state_table()]
    }

    fn describe(&self) -> String {
        let w = &self.window;
        let limit = if w.limit == usize::MAX {
            "ALL".to_string()
        } else {
            w.limit.to_string()
        };
        format!(
            "order=[{}], partitions={}, offset={}, limit={limit}{}",
            self.rows.describe_order(),
            self.rows.partition.len(),
            w.offset,
            match w.numbering {
                Numbering::Rank { dense: false } => ", rank (ties kept)",
                Numbering::Rank { dense: true } => ", dense_rank (ties kept)",
                Numbering::RowNumber => ", row_number",
                Numbering::None => "",
            }
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::testing::{
        delete_pct, physical, run_step, sorted, sql_truth, RandomRelation, Rng, TempStore,
    };
    use datafusion::arrow::compute::SortOptions;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Expr;
    use datafusion::prelude::{col, lit};

    pub(in crate::operator) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    fn row(rng: &mut Rng) -> String {
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
        check_steps(&case.sql(), seed, &case.output(), || case.op(100));
    }

    /// [`check_random`] for the operator `make` builds (emitting `out`
    /// rows) and its SQL; the window operator's tests use it too.
    pub(in crate::operator) fn check_steps<O: Operator>(
        sql: &str,
        seed: u64,
        out: &SchemaRef,
        make: impl Fn() -> O,
    ) {
        let t = TempStore::new("topn");
        let mut rng = Rng::new(seed);
        let mut rel = RandomRelation::new(schema(), row);
        let mut op = make();
        let out = out.clone();
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
        let out = op.output.clone();
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
            check_steps(&sql, seed, &case.output(), || case.op(100).with_rank(dense));
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
        let out = op.output.clone();
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
