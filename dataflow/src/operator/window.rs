//! Window functions in general (`rank() OVER (…)`, `lag(x) OVER (…)`,
//! `sum(x) OVER (…)`, …): the operator keeps the input's rows per partition
//! in sort order ([`SortedPartitions`]), reads each partition a step
//! touches whole, before and after the change, evaluates the functions over
//! it with DataFusion's window expressions (the partition in sort order is
//! exactly the batch they expect), and emits the rows that differ: work
//! proportional to the partitions a step touches, as in Materialize. A
//! window without `PARTITION BY` is one partition, so every change re-reads
//! all of its input. (Bounded ranks, `ROW_NUMBER() <= n`, are top-Ns: see
//! `topn.rs`.)

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::window::WindowExpr;
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use freshet_storage::Txn;

use super::ordered::expand;
use super::partitions::SortedPartitions;
use super::{consolidated, Inputs, Operator, StepContext};
use crate::{ChangeBatch, Result};

pub struct Window {
    rows: SortedPartitions,
    /// Evaluated over each whole partition in sort order, one output
    /// column each (after the input's).
    functions: Vec<Arc<dyn WindowExpr>>,
    output: SchemaRef,
}

impl Window {
    /// `functions` share the window's `partition` and `sort`; `output` is
    /// the input's columns and a column per function.
    pub fn new(
        input: SchemaRef,
        partition: Vec<Arc<dyn PhysicalExpr>>,
        sort: Vec<PhysicalSortExpr>,
        functions: Vec<Arc<dyn WindowExpr>>,
        output: SchemaRef,
        state_id: u32,
    ) -> Result<Self> {
        Ok(Self {
            rows: SortedPartitions::new(&input, partition, sort, state_id)?,
            functions,
            output,
        })
    }
}

/// Partition `key`'s rows with the functions' values.
fn evaluated(
    functions: &[Arc<dyn WindowExpr>],
    output: &SchemaRef,
    rows: &SortedPartitions,
    ctx: &StepContext,
    key: &[u8],
) -> Result<Option<ChangeBatch>> {
    let (entries, counts) = rows.state.first(ctx, key, usize::MAX)?;
    let all = expand(&entries, &counts)?;
    let n = all.num_rows();
    if n == 0 {
        return Ok(None);
    }
    let mut cols = all.columns().to_vec();
    for (f, field) in functions.iter().zip(&output.fields()[all.num_columns()..]) {
        let v = f.evaluate(&all)?;
        cols.push(if v.data_type() == field.data_type() {
            v
        } else {
            datafusion::arrow::compute::cast(&v, field.data_type())?
        });
    }
    let data = crate::batch_with_rows(output.clone(), cols, n)?;
    Ok(Some(ChangeBatch::inserts(data)))
}

impl Operator for Window {
    fn step(&mut self, ctx: &StepContext, inputs: Inputs) -> Result<Option<ChangeBatch>> {
        let Some(delta) = consolidated(inputs)? else {
            return Ok(None);
        };
        let (functions, output) = (&self.functions, &self.output);
        self.rows.step(ctx, delta, output, |rows, ctx, key| {
            evaluated(functions, output, rows, ctx, key)
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
        let names: Vec<String> = self
            .functions
            .iter()
            .map(|f| function_display(f.name()))
            .collect();
        format!(
            "window [{}], order=[{}], partitions={} (each touched partition is re-read whole)",
            names.join(", "),
            self.rows.describe_order(),
            self.rows.partition.len()
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
    use crate::operator::topn::tests::{check_steps, schema};
    use crate::testing::{analyzed_plan, find_node};
    use datafusion::arrow::compute::SortOptions;
    use datafusion::logical_expr::Expr;

    /// The operator for `sql` (`SELECT g, v, s, f(…) OVER (w), … FROM t`,
    /// every function over the same window `w`), its window functions
    /// planned by DataFusion as the planner plans them.
    fn window_op(sql: &str, state_id: u32) -> Window {
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
        Window::new(input, partition, sort, functions, output, state_id).unwrap()
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
            let out = window_op(&sql, 100).output.clone();
            check_steps(&sql, seed, &out, || window_op(&sql, 100));
        }
    }
}
