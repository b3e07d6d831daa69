//! The step a writing statement runs (DESIGN.md, "The dataflow runtime"):
//! every statement that writes takes the writer lock, computes its table
//! writes into a [`Txn`], and [`Engine::commit_dml`] hands those writes to
//! the dataflow's step, which pushes them through every dependent view into
//! the same transaction; then the epoch commits. When the statement
//! returns, every view reflects it (read-your-writes), and a reader's
//! snapshot sees all views at one epoch.

use freshet_dataflow::graph::ViewFlow;
use freshet_dataflow::operator::StepContext;
use freshet_dataflow::step::StepInput;
use freshet_storage::{Snapshot, Txn};

use super::{Engine, Writer};
use crate::catalog::TableDef;
use crate::index::{self, TableIndex};
use crate::Result;

impl Engine {
    /// A transaction for writes to `table`: one that records its writes
    /// when some view reads the table, so the step can turn them into
    /// changes, or when the table has indexes to maintain.
    pub(super) fn txn_for(&self, writer: &Writer, table: &TableDef) -> Txn {
        let mut txn = Txn::new();
        if writer.runtime.reads(&table.name)
            || !index::indexes_of(&self.indexes, table.id).is_empty()
        {
            txn.track_changes();
        }
        txn
    }

    /// Commits a statement's writes together with what they change in
    /// every view (see the module doc). `snapshot` is the state the
    /// statement read under the writer lock: the last committed epoch.
    pub(super) fn commit_dml(
        &self,
        writer: &mut Writer,
        txn: Txn,
        snapshot: &Snapshot,
    ) -> Result<()> {
        self.commit_step(writer, txn, snapshot, StepInput::new())
    }

    /// [`Engine::commit_dml`] with changes that are no table's writes
    /// already in the step's `input` (a source's new records).
    pub(super) fn commit_step(
        &self,
        writer: &mut Writer,
        mut txn: Txn,
        snapshot: &Snapshot,
        mut input: StepInput,
    ) -> Result<()> {
        for (id, writes) in txn.take_table_writes() {
            let Some(def) = self.catalog().by_id(id) else {
                continue;
            };
            let indexes = index::indexes_of(&self.indexes, id);
            if !indexes.is_empty() {
                let stored = self.stored(&def.name)?;
                index::maintain(&indexes, stored.codec(), &writes, snapshot, &mut txn)?;
            }
            if !writer.runtime.reads(&def.name) {
                continue;
            }
            let stored = self.stored(&def.name)?;
            input.add_table_writes(
                &def.name,
                stored.codec(),
                def.user_schema(),
                &writes,
                snapshot,
            )?;
        }
        if !input.is_empty() {
            let ctx = StepContext {
                snapshot: snapshot.clone(),
            };
            // Materialized views with indexes: their content writes are
            // recorded too, and their entries maintained.
            let indexed_views = self.indexed_views();
            if !indexed_views.is_empty() {
                txn.track_changes();
            }
            writer.runtime.step(&ctx, input, &mut txn)?;
            if !indexed_views.is_empty() {
                for (id, writes) in txn.take_table_writes() {
                    if let Some((def, indexes)) = indexed_views.iter().find(|(d, _)| d.id == id) {
                        let stored = self.stored(&def.name)?;
                        index::maintain(indexes, stored.codec(), &writes, snapshot, &mut txn)?;
                    }
                }
            }
        }
        if !txn.is_empty() {
            self.store.commit(txn)?;
            self.last_commit_ms.store(
                chrono::Utc::now().timestamp_millis(),
                std::sync::atomic::Ordering::Release,
            );
        }
        Ok(())
    }

    /// Runs a new materialized view's first step — `input`, its inputs'
    /// rows as of `snapshot`, through that view only — and commits it with
    /// the view's catalog entry in `txn`.
    pub(super) fn backfill(
        &self,
        writer: &mut Writer,
        def: &TableDef,
        input: StepInput,
        mut txn: Txn,
        snapshot: &Snapshot,
    ) -> Result<()> {
        // The view's table and all its state tables are new (ids from
        // `def.id` on): their reads need not go to RocksDB.
        let ctx = StepContext {
            snapshot: snapshot.with_new_tables_from(def.id),
        };
        writer.runtime.backfill(&def.name, &ctx, input, &mut txn)?;
        self.store.commit(txn)?;
        Ok(())
    }

    /// The materialized views that have indexes, with them.
    fn indexed_views(&self) -> Vec<(std::sync::Arc<TableDef>, Vec<std::sync::Arc<TableIndex>>)> {
        let indexed: Vec<(u32, Vec<std::sync::Arc<TableIndex>>)> = self
            .indexes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, ix)| !ix.is_empty())
            .map(|(id, ix)| (*id, ix.clone()))
            .collect();
        if indexed.is_empty() {
            return Vec::new();
        }
        let catalog = self.catalog();
        indexed
            .into_iter()
            .filter_map(|(id, ix)| {
                catalog
                    .by_id(id)
                    .filter(|d| d.is_materialized_view())
                    .map(|d| (d, ix))
            })
            .collect()
    }

    /// Adds a view's dataflow to the step (it runs from the next step on).
    pub(super) fn add_flow(&self, writer: &mut Writer, flow: ViewFlow) {
        writer.runtime.add(flow);
    }
}
