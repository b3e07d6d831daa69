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
use crate::{ChangeBatch, Result};

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
        op: Box<dyn Operator>,
        inputs: Vec<Node>,
    },
}

impl Node {
    fn step(
        &mut self,
        ctx: &StepContext,
        changes: &HashMap<String, ChangeBatch>,
        initial: bool,
    ) -> Result<Vec<ChangeBatch>> {
        match self {
            Node::Source {
                relation,
                columns,
                schema,
            } => {
                let Some(c) = changes.get(relation) else {
                    return Ok(vec![]);
                };
                let projected = c.data().project(columns)?;
                let data =
                    crate::batch_with_rows(schema.clone(), projected.columns().to_vec(), c.len())?;
                Ok(vec![c.with_data(data)?])
            }
            Node::Constant(rows) => Ok(if initial {
                vec![ChangeBatch::inserts(rows.clone())]
            } else {
                vec![]
            }),
            Node::Op { op, inputs } => {
                let mut out = Vec::new();
                for (i, input) in inputs.iter_mut().enumerate() {
                    for batch in input.step(ctx, changes, initial)? {
                        out.extend(op.process(ctx, i, batch)?);
                    }
                }
                out.extend(op.end_step(ctx)?);
                Ok(out.into_iter().filter(|b| !b.is_empty()).collect())
            }
        }
    }

    fn for_each_op(&mut self, f: &mut dyn FnMut(&mut dyn Operator)) {
        if let Node::Op { op, inputs } = self {
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
            Node::Op { op, inputs } => {
                let d = op.describe();
                let schema = op.schema();
                let cols: Vec<&str> = schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                let mut line = format!("{pad}{}", op.name());
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

    /// Runs one step: `changes` (by relation name) go through every view
    /// (or only through view `only`, for its initial backfill), and all
    /// state changes are written into `txn`. On error nothing of the step
    /// remains in any operator.
    pub fn step(
        &mut self,
        ctx: &StepContext,
        mut changes: HashMap<String, ChangeBatch>,
        only: Option<&str>,
        txn: &mut Txn,
    ) -> Result<()> {
        let result = (|| -> Result<()> {
            for v in self.views.iter_mut() {
                if only.is_some_and(|o| o != v.name) {
                    continue;
                }
                let out = v.root.step(ctx, &changes, only.is_some())?;
                if let Some(first) = out.first() {
                    let schema = first.schema();
                    changes.insert(v.name.clone(), ChangeBatch::concat(&schema, &out)?);
                }
            }
            Ok(())
        })();
        for v in self.views.iter_mut() {
            match &result {
                Ok(()) => v.root.for_each_op(&mut |op| op.commit(txn)),
                Err(_) => v.root.for_each_op(&mut |op| op.abort()),
            }
        }
        result
    }
}
