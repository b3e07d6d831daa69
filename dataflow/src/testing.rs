//! Helpers for the dataflow's tests: readable change batches, seeded
//! random inputs, a store in a temporary directory, one operator step, and
//! the batch truth computed by DataFusion.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::datasource::MemTable;
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::prelude::{SessionConfig, SessionContext};
pub use freshet_sqllogictest::rng::Rng;
use freshet_storage::Txn;

use crate::operator::Operator;
use crate::ChangeBatch;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
    ]))
}

pub fn physical(e: Expr, schema: &SchemaRef) -> Arc<dyn PhysicalExpr> {
    let df = DFSchema::try_from(schema.as_ref().clone()).unwrap();
    create_physical_expr(
        &e,
        &df,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .unwrap()
}

/// A fresh store in a temporary directory (removed on drop).
pub struct TempStore {
    pub store: freshet_storage::Store,
    dir: std::path::PathBuf,
}

impl TempStore {
    pub fn new(name: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "freshet-dataflow-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let store = freshet_storage::Store::open(&dir, Default::default()).unwrap();
        Self { store, dir }
    }

    pub fn ctx(&self) -> crate::operator::StepContext {
        crate::operator::StepContext {
            snapshot: self.store.snapshot(),
        }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relation that changes randomly, step by step: a multiset of rows
/// in [`crate::batch::fixture`] notation (values separated by spaces,
/// `.` for NULL), drawn by `row` from small domains so that rows, join
/// keys and groups repeat.
pub struct RandomRelation {
    pub schema: SchemaRef,
    /// Row → multiplicity (> 0).
    pub rows: BTreeMap<String, i64>,
    row: fn(&mut Rng) -> String,
}

impl RandomRelation {
    pub fn new(schema: SchemaRef, row: fn(&mut Rng) -> String) -> Self {
        Self {
            schema,
            rows: BTreeMap::new(),
            row,
        }
    }

    /// A step's random changes (fixture lines with weights ±1), applied
    /// to `rows`: inserts, deletes of present rows (`delete_pct`% of the
    /// draws), the same row inserted twice, a row inserted and deleted
    /// in the same step, and now and then every copy of a row deleted.
    pub fn changes(&mut self, rng: &mut Rng, delete_pct: u64) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..rng.below_u64(7) {
            let r = rng.below_u64(100);
            let present: Vec<String> = self.rows.keys().cloned().collect();
            if !present.is_empty() && r < delete_pct {
                let k = present[rng.below_u64(present.len() as u64) as usize].clone();
                let n = if rng.below_u64(6) == 0 {
                    self.rows[&k]
                } else {
                    1
                };
                for _ in 0..n {
                    lines.push(format!("- {k}"));
                }
                self.remove(&k, n);
            } else if r < delete_pct + 10 {
                let k = (self.row)(rng);
                lines.push(format!("+ {k}"));
                lines.push(format!("+ {k}"));
                *self.rows.entry(k).or_insert(0) += 2;
            } else if r < delete_pct + 15 {
                let k = (self.row)(rng);
                lines.push(format!("+ {k}"));
                lines.push(format!("- {k}"));
            } else {
                let k = (self.row)(rng);
                lines.push(format!("+ {k}"));
                *self.rows.entry(k).or_insert(0) += 1;
            }
        }
        lines
    }

    fn remove(&mut self, k: &str, n: i64) {
        let c = self.rows.get_mut(k).expect("present row");
        *c -= n;
        if *c == 0 {
            self.rows.remove(k);
        }
    }

    /// The current contents, duplicates repeated.
    pub fn batch(&self) -> RecordBatch {
        let lines: Vec<String> = self
            .rows
            .iter()
            .flat_map(|(k, n)| std::iter::repeat_n(format!("+ {k}"), *n as usize))
            .collect();
        crate::batch::fixture(self.schema.clone(), &lines.join("\n"))
            .data()
            .clone()
    }

    /// Changes as batches for the operator's input, split at a random
    /// point into two batches (both maybe empty).
    pub fn split(&self, rng: &mut Rng, lines: &[String]) -> [ChangeBatch; 2] {
        let at = rng.below_u64(lines.len() as u64 + 1) as usize;
        let f = |l: &[String]| crate::batch::fixture(self.schema.clone(), &l.join("\n"));
        [f(&lines[..at]), f(&lines[at..])]
    }
}

/// The share of deletes (%) in step `step` of `steps`: the relation
/// grows for the first third, shrinks to (nearly) nothing in the second
/// and churns small in the last, so groups, join keys and partitions
/// empty out and come back.
pub fn delete_pct(step: usize, steps: usize) -> u64 {
    match 3 * step / steps {
        0 => 15,
        1 => 85,
        _ => 45,
    }
}

/// Runs one step of `op` with `inputs` (input number, changes; several
/// for one input are that input's changes in order), then commits the
/// operator's state into the store. Returns what the step emitted.
pub fn run_step(
    op: &mut dyn Operator,
    t: &TempStore,
    inputs: Vec<(usize, ChangeBatch)>,
) -> Vec<ChangeBatch> {
    let ctx = t.ctx();
    let n = inputs.iter().map(|(i, _)| i + 1).max().unwrap_or(1);
    let mut per_input: Vec<Vec<ChangeBatch>> = vec![Vec::new(); n];
    for (i, b) in inputs {
        per_input[i].push(b);
    }
    let inputs = per_input
        .into_iter()
        .map(|bs| {
            bs.first()
                .map(|f| ChangeBatch::concat(&f.schema(), &bs).unwrap())
        })
        .collect();
    let out: Vec<ChangeBatch> = op.step(&ctx, inputs).unwrap().into_iter().collect();
    let mut txn = Txn::new();
    op.commit(&mut txn);
    t.store.commit(txn).unwrap();
    out
}

/// The consolidated sum of `changes`, canonically sorted.
pub fn sorted(schema: &SchemaRef, changes: &[ChangeBatch]) -> Vec<(Vec<String>, i64)> {
    if changes.is_empty() {
        return Vec::new();
    }
    ChangeBatch::concat(schema, changes)
        .unwrap()
        .to_sorted_strings()
        .unwrap()
}

/// A DataFusion session over `tables` (in-memory), for the batch truth.
pub fn session(tables: &[(&str, RecordBatch)]) -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    for (name, batch) in tables {
        let t = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]]).unwrap();
        ctx.register_table(*name, Arc::new(t)).unwrap();
    }
    ctx
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The result of `sql` over `tables`, run as a batch query by
/// DataFusion: every row once, in [`ChangeBatch::to_sorted_strings`]
/// form.
pub fn sql_truth(tables: &[(&str, RecordBatch)], sql: &str) -> Vec<(Vec<String>, i64)> {
    let ctx = session(tables);
    block_on(async {
        let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let all = concat_batches(&schema, &batches).unwrap();
        ChangeBatch::inserts(all).to_sorted_strings().unwrap()
    })
}

/// The logical plan of `sql` over `tables` after DataFusion's analyzer
/// (type coercion), before its optimizer: the plan's nodes mirror the
/// SQL.
pub fn analyzed_plan(tables: &[(&str, RecordBatch)], sql: &str) -> LogicalPlan {
    let ctx = session(tables);
    let state = ctx.state();
    let plan = block_on(state.create_logical_plan(sql)).unwrap();
    state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})
        .unwrap()
}

/// The first node of `plan` (depth first) that `f` accepts.
pub fn find_node<'a>(
    plan: &'a LogicalPlan,
    f: &dyn Fn(&LogicalPlan) -> bool,
) -> Option<&'a LogicalPlan> {
    if f(plan) {
        return Some(plan);
    }
    plan.inputs().into_iter().find_map(|p| find_node(p, f))
}
