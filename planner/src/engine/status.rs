//! The system views of what sources and views are doing (documented in the
//! README's SQL reference):
//!
//! - `freshet_source_splits`: per source and split (Kafka partition,
//!   generator split), whether it runs, the committed offset, the high
//!   watermark and the lag behind it (records, and seconds since the split
//!   last had nothing left to read), records/bytes/rows committed since
//!   start-up, parse errors, rows dropped by failed steps, the last error;
//! - `freshet_sources`: per source and connector-fed table, its connector,
//!   format and options (psql's `\d` shows them as a foreign table's
//!   server and options);
//! - `freshet_views`: per materialized view, the epoch its contents are at
//!   and when that epoch committed (every view is at the last epoch: a
//!   step commits all of them together).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::sources::SplitStatus;

type Rows = dyn Fn() -> DfResult<RecordBatch> + Send + Sync;

/// A relation whose rows are computed when it is scanned.
pub struct StatusTable {
    schema: SchemaRef,
    rows: Box<Rows>,
}

impl std::fmt::Debug for StatusTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatusTable({:?})", self.schema)
    }
}

#[async_trait]
impl TableProvider for StatusTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)()?;
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// `freshet_source_splits`, from `splits` (called at each scan).
pub fn source_splits(
    splits: impl Fn() -> Vec<Arc<SplitStatus>> + Send + Sync + 'static,
) -> StatusTable {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    let schema = Arc::new(Schema::new(vec![
        f("source", DataType::Utf8),
        f("split", DataType::Utf8),
        f("running", DataType::Boolean),
        f("committed_offset", DataType::Int64),
        f("high_watermark", DataType::Int64),
        f("lag_records", DataType::Int64),
        f("lag_seconds", DataType::Float64),
        f("records_in", DataType::Int64),
        f("bytes_in", DataType::Int64),
        f("rows_in", DataType::Int64),
        f("parse_errors", DataType::Int64),
        f("step_errors", DataType::Int64),
        f("last_error", DataType::Utf8),
    ]));
    let s = schema.clone();
    StatusTable {
        schema,
        rows: Box::new(move || {
            let mut all = splits();
            all.sort_by(|a, b| (&a.source, &a.split).cmp(&(&b.source, &b.split)));
            let now = chrono::Utc::now().timestamp_millis();
            let get = |f: &dyn Fn(&SplitStatus) -> u64| -> Int64Array {
                all.iter().map(|s| Some(f(s) as i64)).collect()
            };
            let high = |s: &SplitStatus| match s.high.load(Ordering::Acquire) {
                u64::MAX => None,
                h => Some(h),
            };
            let committed = |s: &SplitStatus| s.committed.load(Ordering::Acquire);
            let running = |s: &SplitStatus| {
                s.running.load(Ordering::Acquire) && !s.failed.load(Ordering::Acquire)
            };
            RecordBatch::try_new(
                s.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        all.iter().map(|s| s.source.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        all.iter().map(|s| s.split.as_str()),
                    )),
                    Arc::new(
                        all.iter()
                            .map(|s| Some(running(s)))
                            .collect::<BooleanArray>(),
                    ),
                    Arc::new(get(&committed)),
                    Arc::new(
                        all.iter()
                            .map(|s| high(s).map(|h| h as i64))
                            .collect::<Int64Array>(),
                    ),
                    Arc::new(
                        all.iter()
                            .map(|s| high(s).map(|h| h.saturating_sub(committed(s)) as i64))
                            .collect::<Int64Array>(),
                    ),
                    Arc::new(
                        all.iter()
                            .map(|s| {
                                let behind = high(s).is_some_and(|h| h > committed(s));
                                Some(if behind {
                                    (now - s.caught_up_ms.load(Ordering::Relaxed)).max(0) as f64
                                        / 1000.0
                                } else {
                                    0.0
                                })
                            })
                            .collect::<Float64Array>(),
                    ),
                    Arc::new(get(&|s| s.records_in.load(Ordering::Relaxed))),
                    Arc::new(get(&|s| s.bytes_in.load(Ordering::Relaxed))),
                    Arc::new(get(&|s| s.rows_in.load(Ordering::Relaxed))),
                    Arc::new(get(&|s| s.parse_errors.load(Ordering::Relaxed))),
                    Arc::new(get(&|s| s.step_errors.load(Ordering::Relaxed))),
                    Arc::new(all.iter().map(|s| s.last_error()).collect::<StringArray>()),
                ],
            )
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
        }),
    }
}

/// `freshet_views`, from the views' names, the store's epoch and the time
/// of the last commit.
pub fn views(
    names: impl Fn() -> Vec<String> + Send + Sync + 'static,
    epoch: impl Fn() -> u64 + Send + Sync + 'static,
    last_commit_ms: Arc<AtomicI64>,
) -> StatusTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("epoch", DataType::Int64, true),
        Field::new("committed_at", ts_type(), true),
    ]));
    let s = schema.clone();
    StatusTable {
        schema,
        rows: Box::new(move || {
            let mut names = names();
            names.sort();
            let n = names.len();
            let at = last_commit_ms.load(Ordering::Acquire) * 1000;
            RecordBatch::try_new(
                s.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(Int64Array::from(vec![epoch() as i64; n])),
                    Arc::new(TimestampMicrosecondArray::from(vec![at; n]).with_timezone("+00:00")),
                ],
            )
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
        }),
    }
}

/// `freshet_sources`, from the relations with a connector.
pub fn sources(
    defs: impl Fn() -> Vec<Arc<crate::catalog::TableDef>> + Send + Sync + 'static,
) -> StatusTable {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    let schema = Arc::new(Schema::new(vec![
        f("name", DataType::Utf8),
        f("oid", DataType::Int64),
        f("kind", DataType::Utf8),
        f("connector", DataType::Utf8),
        f("format", DataType::Utf8),
        f("encode", DataType::Utf8),
        f("options", DataType::Utf8),
    ]));
    let s = schema.clone();
    StatusTable {
        schema,
        rows: Box::new(move || {
            let mut defs: Vec<_> = defs()
                .into_iter()
                .filter(|d| d.connector.is_some())
                .collect();
            defs.sort_by(|a, b| a.name.cmp(&b.name));
            let c = |d: &crate::catalog::TableDef| d.connector.clone().unwrap_or_default();
            let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
            RecordBatch::try_new(
                s.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        defs.iter().map(|d| d.name.as_str()),
                    )),
                    Arc::new(Int64Array::from_iter_values(
                        defs.iter().map(|d| crate::pg_catalog::table_oid(d)),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        defs.iter().map(|d| d.kind.noun()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        defs.iter().map(|d| c(d).name),
                    )),
                    Arc::new(defs.iter().map(|d| c(d).format).collect::<StringArray>()),
                    Arc::new(defs.iter().map(|d| c(d).encode).collect::<StringArray>()),
                    Arc::new(StringArray::from_iter_values(defs.iter().map(|d| {
                        c(d).options
                            .iter()
                            .map(|(k, v)| format!("{k} {}", quote(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }))),
                ],
            )
            .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
        }),
    }
}
