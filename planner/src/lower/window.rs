//! Window functions: `ROW_NUMBER()`/`RANK()`/`DENSE_RANK()` bounded by a
//! filter become per-partition top-Ns; every other window is one operator
//! per run of functions sharing `PARTITION BY`/`ORDER BY`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::logical_plan::Window;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator as BinOp, SortExpr};
use datafusion::physical_planner::create_window_expr;
use freshet_dataflow::graph::Node;
use freshet_dataflow::operator::{Filter, TopN, Window as WindowOp};

use super::build::{arrow, node, Lowering};
use super::unsupported;
use crate::Result;

impl Lowering {
    /// `Filter(rn <= n AND …) over Window(ROW_NUMBER() OVER (PARTITION BY
    /// … ORDER BY …) AS rn)`: a per-group top-N, which reads only the first
    /// `n` rows of a touched partition; likewise `RANK()` and
    /// `DENSE_RANK()`, whose ties at the n-th place are all kept. `None`: not that pattern (the
    /// window is then computed whole, see [`Lowering::window`]).
    pub(super) fn window_top_n(
        &mut self,
        predicate: &Expr,
        w: &Window,
        schema: SchemaRef,
    ) -> Result<Option<Node>> {
        let [wexpr] = w.window_expr.as_slice() else {
            return Ok(None);
        };
        let Expr::WindowFunction(f) = wexpr.clone().unalias() else {
            return Ok(None);
        };
        let WindowFunction { fun, params } = f.as_ref();
        let rank = match fun.name() {
            "row_number" => None,
            "rank" => Some(false),
            "dense_rank" => Some(true),
            _ => return Ok(None),
        };
        if params.filter.is_some() {
            return Ok(None);
        }
        let rn_name = w.schema.field(w.schema.fields().len() - 1).name().clone();
        let mut limit = None;
        let mut rest = Vec::new();
        for c in split_conjunction(predicate) {
            match rn_bound(c, &rn_name) {
                Some(n) if limit.is_none() => limit = Some(n),
                _ => rest.push(c.clone()),
            }
        }
        let Some(limit) = limit else {
            return Ok(None);
        };
        let input = self.build(&w.input)?;
        let in_df = w.input.schema();
        let partition = params
            .partition_by
            .iter()
            .map(|e| self.physical(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let sort = params
            .order_by
            .iter()
            .map(|e| self.sort(e, in_df))
            .collect::<Result<Vec<_>>>()?;
        let id = self.ids(1);
        let win_schema = arrow(&w.schema);
        let mut op = TopN::new(
            arrow(in_df),
            partition,
            sort,
            0,
            limit,
            true,
            win_schema.clone(),
            id,
        )?;
        if let Some(dense) = rank {
            op = op.with_rank(dense);
        }
        let mut out = node("TopN", win_schema, op, vec![input]);
        if let Some(pred) = rest.into_iter().reduce(|a, b| a.and(b)) {
            let pred = self.physical(&pred, &w.schema)?;
            out = node("Filter", schema, Filter::new(pred), vec![out]);
        }
        Ok(Some(out))
    }

    /// `Window(f₁ OVER (…), …)`: each run of functions with the same
    /// `PARTITION BY` and `ORDER BY` is one operator that keeps the input's
    /// rows per partition in sort order and evaluates the functions over
    /// every partition a step touches (see the dataflow's `Window`); runs
    /// follow each other, each adding its columns after the ones before, as
    /// the window's schema lists them.
    pub(super) fn window(&mut self, w: &Window, schema: SchemaRef) -> Result<Node> {
        let mut out = self.build(&w.input)?;
        let in_df = w.input.schema();
        let n_in = in_df.fields().len();
        let shape = |e: &Expr| -> Result<(Vec<Expr>, Vec<SortExpr>)> {
            match e.clone().unalias() {
                Expr::WindowFunction(f) => {
                    Ok((f.params.partition_by.clone(), f.params.order_by.clone()))
                }
                other => Err(unsupported(format!("the window expression {other}"))),
            }
        };
        let mut i = 0;
        while i < w.window_expr.len() {
            let (partition_by, order_by) = shape(&w.window_expr[i])?;
            let mut j = i + 1;
            while j < w.window_expr.len()
                && shape(&w.window_expr[j])? == (partition_by.clone(), order_by.clone())
            {
                j += 1;
            }
            let functions = w.window_expr[i..j]
                .iter()
                .map(|e| {
                    Ok(create_window_expr(
                        e,
                        in_df,
                        self.props(),
                        &PhysicalPlanningContext::default(),
                    )?)
                })
                .collect::<Result<Vec<_>>>()?;
            let partition = partition_by
                .iter()
                .map(|e| self.physical(e, in_df))
                .collect::<Result<Vec<_>>>()?;
            let sort = order_by
                .iter()
                .map(|e| self.sort(e, in_df))
                .collect::<Result<Vec<_>>>()?;
            let fields = schema.fields();
            let input = Arc::new(Schema::new(fields[..n_in + i].to_vec()));
            let output = Arc::new(Schema::new(fields[..n_in + j].to_vec()));
            let id = self.ids(1);
            let op = WindowOp::new(input, partition, sort, functions, output.clone(), id)?;
            out = node("Window", output, op, vec![out]);
            i = j;
        }
        Ok(out)
    }
}

/// `n` when `e` says `rn <= n`, `rn < n+1`, `rn = 1` (or the mirror forms).
fn rn_bound(e: &Expr, rn: &str) -> Option<usize> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let is_rn = |e: &Expr| matches!(e.clone().unalias(), Expr::Column(c) if c.name == rn);
    let lit = |e: &Expr| -> Option<i64> {
        let e = e.clone().unalias();
        // A literal, possibly under the cast type coercion puts around it.
        let v = match &e {
            Expr::Literal(v, _) => v,
            Expr::Cast(c) => match c.expr.as_ref() {
                Expr::Literal(v, _) => v,
                _ => return None,
            },
            _ => return None,
        };
        match v
            .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
            .ok()?
        {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        }
    };
    let (op, n) = if is_rn(left) {
        (*op, lit(right)?)
    } else if is_rn(right) {
        (op.swap()?, lit(left)?)
    } else {
        return None;
    };
    let n = match op {
        BinOp::LtEq => n,
        BinOp::Lt => n - 1,
        BinOp::Eq if n == 1 => 1,
        _ => return None,
    };
    Some(n.max(0) as usize)
}
