//! The dataflow graph and its steps (DESIGN.md, "The dataflow runtime").
//!
//! Every materialized view is a tree of operators whose leaves read the
//! change streams of tables and of other views, and whose root
//! ([`crate::operator::Materialize`]) keeps the view's contents. All views
//! of a server form one [`Runtime`], kept in creation order — a view only
//! reads relations created before it, so that order is topological. A step
//! pushes the changes of the step's statement(s) through every view in
//! order (a view's output changes feed the views on it) and writes every
//! operator's state changes into the same transaction as the data change:
//! one atomic epoch commit. If any operator fails, every operator forgets
//! the step and nothing is committed.

use std::collections::HashMap;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use freshet_storage::Txn;

use crate::operator::{Operator, StepContext};
use crate::step::StepInput;
use crate::{ChangeBatch, DataflowError, Result};

/// A node of a view's operator tree.
pub enum Node {
    /// The change stream of a table or view, projected to `columns`.
    Source {
        relation: String,
        columns: Vec<usize>,
        schema: SchemaRef,
    },
    /// Constant rows (`VALUES`, `SELECT 1`), emitted once, when the view is
    /// created.
    Constant(RecordBatch),
    Op {
        /// The operator's name in `EXPLAIN` (`Filter`, `Join`, …).
        name: &'static str,
        /// The schema of the changes the operator emits.
        schema: SchemaRef,
        op: Box<dyn Operator>,
        inputs: Vec<Node>,
    },
}

impl Node {
    /// An operator node.
    pub fn op(
        name: &'static str,
        schema: SchemaRef,
        op: impl Operator + 'static,
        inputs: Vec<Node>,
    ) -> Node {
        Node::Op {
            name,
            schema,
            op: Box::new(op),
            inputs,
        }
    }

    /// The schema of the changes this node emits.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Node::Source { schema, .. } | Node::Op { schema, .. } => schema.clone(),
            Node::Constant(rows) => rows.schema(),
        }
    }

    fn step(
        &mut self,
        ctx: &StepContext,
        changes: &HashMap<String, ChangeBatch>,
        initial: bool,
    ) -> Result<Option<ChangeBatch>> {
        let out = match self {
            Node::Source {
                relation,
                columns,
                schema,
            } => {
                let Some(c) = changes.get(relation) else {
                    return Ok(None);
                };
                let projected = c.data().project(columns)?;
                let data =
                    crate::batch_with_rows(schema.clone(), projected.columns().to_vec(), c.len())?;
                Some(c.with_data(data)?)
            }
            Node::Constant(rows) => initial.then(|| ChangeBatch::inserts(rows.clone())),
            Node::Op { op, inputs, .. } => {
                let inputs = inputs
                    .iter_mut()
                    .map(|i| i.step(ctx, changes, initial))
                    .collect::<Result<Vec<_>>>()?;
                op.step(ctx, inputs)?
            }
        };
        Ok(out.filter(|b| !b.is_empty()))
    }

    fn for_each_op(&mut self, f: &mut dyn FnMut(&mut dyn Operator)) {
        if let Node::Op { op, inputs, .. } = self {
            f(op.as_mut());
            for i in inputs {
                i.for_each_op(f);
            }
        }
    }

    /// The relations this node reads.
    pub fn sources(&self, out: &mut Vec<String>) {
        match self {
            Node::Source { relation, .. } => {
                if !out.contains(relation) {
                    out.push(relation.clone());
                }
            }
            Node::Constant(_) => {}
            Node::Op { inputs, .. } => inputs.iter().for_each(|i| i.sources(out)),
        }
    }

    /// The operator tree as indented lines, with state tables.
    pub fn explain(&self, depth: usize, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        match self {
            Node::Source {
                relation, schema, ..
            } => {
                let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                out.push(format!("{pad}Source: {relation} [{}]", cols.join(", ")));
            }
            Node::Constant(rows) => out.push(format!("{pad}Values: {} rows", rows.num_rows())),
            Node::Op {
                name,
                schema,
                op,
                inputs,
            } => {
                let d = op.describe();
                let cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                let mut line = format!("{pad}{name}");
                if !d.is_empty() {
                    line.push_str(": ");
                    line.push_str(&d);
                }
                line.push_str(&format!(" -> [{}]", cols.join(", ")));
                out.push(line);
                for (id, what) in op.state_tables() {
                    out.push(format!("{pad}  state table {id}: {what}"));
                }
                for i in inputs {
                    i.explain(depth + 1, out);
                }
            }
        }
    }
}

/// One materialized view's dataflow.
pub struct ViewFlow {
    pub name: String,
    /// The operator tree, rooted at the view's `Materialize`.
    pub root: Node,
}

/// All views of the server, in creation (= topological) order.
#[derive(Default)]
pub struct Runtime {
    views: Vec<ViewFlow>,
}

impl Runtime {
    pub fn add(&mut self, view: ViewFlow) {
        self.views.push(view);
    }

    pub fn remove(&mut self, name: &str) {
        self.views.retain(|v| v.name != name);
    }

    pub fn get(&self, name: &str) -> Option<&ViewFlow> {
        self.views.iter().find(|v| v.name == name)
    }

    /// Whether any view reads `relation` (directly or through other views).
    pub fn reads(&self, relation: &str) -> bool {
        self.views.iter().any(|v| {
            let mut s = Vec::new();
            v.root.sources(&mut s);
            s.iter().any(|r| r == relation)
        })
    }

    /// Runs one step: `input` goes through every view (a view's output
    /// changes feed the views on it), and all state changes are written
    /// into `txn`, the epoch's writes. On error nothing of the step remains
    /// in any operator — also when an operator panics (a bug): the panic
    /// becomes [`DataflowError::Panic`], the statement fails and the server
    /// and every view stay as they were.
    pub fn step(&mut self, ctx: &StepContext, input: StepInput, txn: &mut Txn) -> Result<()> {
        self.run(ctx, input.into_changes(), None, txn)
    }

    /// The first step of the newest view `view`: `input` (every row of its
    /// inputs) goes through that view only, and its constants are emitted.
    pub fn backfill(
        &mut self,
        view: &str,
        ctx: &StepContext,
        input: StepInput,
        txn: &mut Txn,
    ) -> Result<()> {
        self.run(ctx, input.into_changes(), Some(view), txn)
    }

    fn run(
        &mut self,
        ctx: &StepContext,
        mut changes: HashMap<String, ChangeBatch>,
        only: Option<&str>,
        txn: &mut Txn,
    ) -> Result<()> {
        let run = std::panic::AssertUnwindSafe(|| -> Result<()> {
            for v in self.views.iter_mut() {
                if only.is_some_and(|o| o != v.name) {
                    continue;
                }
                if let Some(out) = v.root.step(ctx, &changes, only.is_some())? {
                    changes.insert(v.name.clone(), out);
                }
            }
            Ok(())
        });
        let result = std::panic::catch_unwind(run).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(DataflowError::Panic(what))
        });
        for v in self.views.iter_mut() {
            match &result {
                Ok(()) => v.root.for_each_op(&mut |op| op.commit(txn)),
                Err(_) => v.root.for_each_op(&mut |op| op.abort()),
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::fixture;
    use crate::operator::{Distinct, Filter, Join, JoinKind, Materialize};
    use crate::testing::{physical, schema, TempStore};
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::{col, lit};
    use freshet_storage::RowCodec;
    use std::sync::Arc;

    fn source(relation: &str, columns: Vec<usize>) -> Node {
        let s = schema().project(&columns).unwrap();
        Node::Source {
            relation: relation.into(),
            columns,
            schema: Arc::new(s),
        }
    }

    fn op(schema: &SchemaRef, op: impl Operator + 'static, inputs: Vec<Node>) -> Node {
        Node::op("test", schema.clone(), op, inputs)
    }

    /// The committed contents of the view kept in state table `id`.
    fn contents(t: &TempStore, id: u32, schema: &SchemaRef) -> Vec<(Vec<String>, i64)> {
        let codec = RowCodec::new(Materialize::storage_schema(schema)).unwrap();
        let mut values = Vec::new();
        t.store
            .snapshot()
            .scan_table(id, |_, v| {
                values.push(v.to_vec());
                Ok(())
            })
            .unwrap();
        let rows = codec
            .decode(values.iter().map(|v| v.as_slice()), None)
            .unwrap();
        let n = schema.fields().len();
        let weights = rows
            .column(n)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        let data = crate::batch_with_rows(
            schema.clone(),
            rows.columns()[..n].to_vec(),
            rows.num_rows(),
        )
        .unwrap();
        ChangeBatch::new(data, weights)
            .unwrap()
            .to_sorted_strings()
            .unwrap()
    }

    fn s(row: &[&str], w: i64) -> (Vec<String>, i64) {
        (row.iter().map(|v| v.to_string()).collect(), w)
    }

    fn changes(text: &str) -> StepInput {
        StepInput::from_iter([("t", fixture(schema(), text))])
    }

    /// Three views over `t(id, name, amount)`:
    /// - `names` (table 10, Distinct in 11): the distinct names, one row per
    ///   name (the view layout keyed by unique columns);
    /// - `not_b` (table 20): a view on `names`, without 'b';
    /// - `pairs` (table 30, Join in 31–32): `t` joined with itself on id,
    ///   the right side through `id / amount >= 0`, which fails on a row
    ///   with amount 0 — after the left side's changes reached the join.
    fn runtime() -> (Runtime, [SchemaRef; 3]) {
        let names_schema = Arc::new(schema().project(&[1]).unwrap());
        let names = op(
            &names_schema,
            Materialize::new(names_schema.clone(), 10, Some(vec![0])).unwrap(),
            vec![op(
                &names_schema,
                Distinct::new(names_schema.clone(), 11).unwrap(),
                vec![source("t", vec![1])],
            )],
        );
        let not_b = op(
            &names_schema,
            Materialize::new(names_schema.clone(), 20, None).unwrap(),
            vec![op(
                &names_schema,
                Filter::new(physical(col("name").not_eq(lit("b")), &names_schema)),
                vec![Node::Source {
                    relation: "names".into(),
                    columns: vec![0],
                    schema: names_schema.clone(),
                }],
            )],
        );
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend([
            Field::new("id2", DataType::Int64, true),
            Field::new("name2", DataType::Utf8, true),
            Field::new("amount2", DataType::Int64, true),
        ]);
        let pairs_schema = Arc::new(Schema::new(fields));
        let fails_on_zero = Filter::new(physical(
            (col("id") / col("amount")).gt_eq(lit(0i64)),
            &schema(),
        ));
        let join = Join::new(
            JoinKind::Inner,
            schema(),
            vec![physical(col("id"), &schema())],
            schema(),
            vec![physical(col("id"), &schema())],
            None,
            false,
            pairs_schema.clone(),
            31,
        )
        .unwrap();
        let pairs = op(
            &pairs_schema,
            Materialize::new(pairs_schema.clone(), 30, None).unwrap(),
            vec![op(
                &pairs_schema,
                join,
                vec![
                    source("t", vec![0, 1, 2]),
                    op(&schema(), fails_on_zero, vec![source("t", vec![0, 1, 2])]),
                ],
            )],
        );
        let mut rt = Runtime::default();
        for (name, root) in [("names", names), ("not_b", not_b), ("pairs", pairs)] {
            rt.add(ViewFlow {
                name: name.into(),
                root,
            });
        }
        (rt, [names_schema.clone(), names_schema, pairs_schema])
    }

    #[test]
    fn a_failed_step_leaves_nothing_behind_and_a_successful_one_commits() {
        let t = TempStore::new("graph");
        let (mut rt, [names, not_b, pairs]) = runtime();
        assert!(rt.reads("t") && rt.reads("names") && !rt.reads("u"));

        // A successful step commits every view, a view on a view included.
        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("+ 1 a 1\n+ 2 b 2\n+ 3 b 3"), &mut txn)
            .unwrap();
        assert!(!txn.is_empty());
        t.store.commit(txn).unwrap();
        assert_eq!(contents(&t, 10, &names), vec![s(&["a"], 1), s(&["b"], 1)]);
        assert_eq!(contents(&t, 20, &not_b), vec![s(&["a"], 1)]);
        assert_eq!(
            contents(&t, 30, &pairs),
            vec![
                s(&["1", "a", "1", "1", "a", "1"], 1),
                s(&["2", "b", "2", "2", "b", "2"], 1),
                s(&["3", "b", "3", "3", "b", "3"], 1),
            ]
        );

        // A step that fails (division by zero in `pairs`, after `names` and
        // `not_b` processed it and the join buffered its left side): an
        // error, and nothing written into the transaction.
        let mut txn = Txn::new();
        let err = rt
            .step(
                &t.ctx(),
                changes("+ 4 c 0\n+ 5 d 5\n- 1 a 1\n- 2 b 2\n- 3 b 3"),
                &mut txn,
            )
            .unwrap_err();
        assert!(
            matches!(err, DataflowError::DataFusion(_) | DataflowError::Arrow(_)),
            "{err}"
        );
        assert!(txn.is_empty(), "{} writes of a failed step", txn.len());
        drop(txn);

        // The next step sees the state as the first step left it: nothing
        // of the failed step (operator state, buffered input) survives.
        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("+ 6 e 6\n- 2 b 2"), &mut txn)
            .unwrap();
        t.store.commit(txn).unwrap();
        assert_eq!(
            contents(&t, 10, &names),
            vec![s(&["a"], 1), s(&["b"], 1), s(&["e"], 1)]
        );
        assert_eq!(contents(&t, 20, &not_b), vec![s(&["a"], 1), s(&["e"], 1)]);
        assert_eq!(
            contents(&t, 30, &pairs),
            vec![
                s(&["1", "a", "1", "1", "a", "1"], 1),
                s(&["3", "b", "3", "3", "b", "3"], 1),
                s(&["6", "e", "6", "6", "e", "6"], 1),
            ]
        );
        // And a step that deletes the last 'b' reaches the view on a view.
        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("- 3 b 3\n+ 7 b 7\n- 7 b 7"), &mut txn)
            .unwrap();
        t.store.commit(txn).unwrap();
        assert_eq!(contents(&t, 10, &names), vec![s(&["a"], 1), s(&["e"], 1)]);
        assert_eq!(contents(&t, 20, &not_b), vec![s(&["a"], 1), s(&["e"], 1)]);
    }

    /// Panics on any change with amount 13 (a stand-in for a bug).
    struct Boom;

    impl Operator for Boom {
        fn step(
            &mut self,
            _ctx: &StepContext,
            inputs: crate::operator::Inputs,
        ) -> Result<Option<ChangeBatch>> {
            let batch = inputs.into_iter().next().flatten();
            if let Some(batch) = &batch {
                let amounts = batch.data().column(2);
                let amounts = amounts.as_any().downcast_ref::<Int64Array>().unwrap();
                assert!(!amounts.iter().any(|a| a == Some(13)), "boom");
            }
            Ok(batch)
        }
    }

    /// A panicking operator fails the step like an error does: the step's
    /// changes reach no view and the next step runs on the state before it.
    #[test]
    fn a_panicking_operator_fails_the_step_and_leaves_nothing_behind() {
        let t = TempStore::new("graph-panic");
        let (mut rt, [names, _, _]) = runtime();
        rt.add(ViewFlow {
            name: "boom".into(),
            root: op(
                &schema(),
                Materialize::new(schema(), 40, None).unwrap(),
                vec![op(&schema(), Boom, vec![source("t", vec![0, 1, 2])])],
            ),
        });
        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("+ 1 a 1"), &mut txn).unwrap();
        t.store.commit(txn).unwrap();

        let mut txn = Txn::new();
        let err = rt
            .step(&t.ctx(), changes("+ 2 b 2\n+ 3 c 13"), &mut txn)
            .unwrap_err();
        assert!(
            matches!(&err, DataflowError::Panic(m) if m.contains("boom")),
            "{err}"
        );
        assert!(txn.is_empty(), "{} writes of a failed step", txn.len());
        drop(txn);

        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("+ 4 d 4"), &mut txn).unwrap();
        t.store.commit(txn).unwrap();
        assert_eq!(contents(&t, 10, &names), vec![s(&["a"], 1), s(&["d"], 1)]);
        assert_eq!(
            contents(&t, 40, &schema()),
            vec![s(&["1", "a", "1"], 1), s(&["4", "d", "4"], 1)]
        );
    }

    /// `only` runs one view (its backfill), and a `Constant` emits its rows
    /// in that initial step only.
    #[test]
    fn backfill_step_runs_one_view_and_constants_once() {
        let t = TempStore::new("graph-backfill");
        let (mut rt, [names, not_b, _]) = runtime();
        let one = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
        let rows = fixture(one.clone(), "+ z").data().clone();
        rt.add(ViewFlow {
            name: "consts".into(),
            root: op(
                &one,
                Materialize::new(one.clone(), 40, None).unwrap(),
                vec![Node::Constant(rows)],
            ),
        });
        let mut txn = Txn::new();
        rt.backfill("consts", &t.ctx(), changes("+ 1 a 1"), &mut txn)
            .unwrap();
        t.store.commit(txn).unwrap();
        assert_eq!(contents(&t, 40, &one), vec![s(&["z"], 1)]);
        assert!(contents(&t, 10, &names).is_empty());
        // A regular step: the constant is not emitted again.
        let mut txn = Txn::new();
        rt.step(&t.ctx(), changes("+ 2 y 2"), &mut txn).unwrap();
        t.store.commit(txn).unwrap();
        assert_eq!(contents(&t, 40, &one), vec![s(&["z"], 1)]);
        assert_eq!(contents(&t, 20, &not_b), vec![s(&["y"], 1)]);
    }
}
