//! Stored tables as DataFusion `TableProvider`s, and the scan operator that
//! reads them from a storage snapshot.
//!
//! Predicates on the primary key are pushed down (as `Inexact`: DataFusion
//! still re-applies them) and turn into point gets or key-range scans; the
//! chosen access path is printed by `EXPLAIN` (`FreshetScan: … access=…`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Constraint, Constraints, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use freshet_storage::{keys, RowCodec, Snapshot, Store};

use crate::catalog::TableDef;
use crate::index::{self, IndexMap, TableIndex};

/// Rows decoded per batch by a scan.
const SCAN_CHUNK: usize = 8192;
/// Most point keys an IN-list / multi-column equality expands to.
const MAX_POINTS: usize = 4096;

/// The snapshot one statement reads, carried in the session config so every
/// table scan of the statement sees the same epoch.
#[derive(Debug)]
pub struct QuerySnapshot(pub Snapshot);

/// Which schema a provider shows DataFusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The user columns with their nullability: queries and the catalog.
    Query,
    /// The user columns, all nullable, for planning INSERT: Freshet checks
    /// NOT NULL itself so the error names the table's column.
    Insert,
    /// The stored columns including `_rowid`, for planning UPDATE/DELETE,
    /// whose rows must be found again by key.
    Modify,
}

/// A stored table as seen by DataFusion.
#[derive(Debug)]
pub struct StoredTable {
    pub def: Arc<TableDef>,
    store: Arc<Store>,
    codec: RowCodec,
    key_codec: RowCodec,
    /// The schema scans produce: user columns, plus `_rowid` when
    /// `expose_rowid` (used to plan UPDATE/DELETE on tables without a key).
    schema: SchemaRef,
    defaults: HashMap<String, Expr>,
    constraints: Option<Constraints>,
    /// Every table's secondary indexes (shared, live: see [`IndexMap`]).
    indexes: IndexMap,
}

impl StoredTable {
    /// `flavor` picks the schema DataFusion sees: see [`Flavor`].
    pub fn new(
        def: Arc<TableDef>,
        store: Arc<Store>,
        flavor: Flavor,
        defaults: HashMap<String, Expr>,
        indexes: IndexMap,
    ) -> freshet_storage::Result<Self> {
        let storage_schema = def.storage_schema();
        let codec = RowCodec::new(storage_schema.clone())?;
        let key_cols = def.key_columns();
        let key_codec = RowCodec::new(Arc::new(storage_schema.project(&key_cols)?))?;
        let schema = match flavor {
            Flavor::Query => def.user_schema(),
            Flavor::Insert => Arc::new(datafusion::arrow::datatypes::Schema::new(
                def.user_schema()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            Flavor::Modify => storage_schema,
        };
        let constraints = (!def.primary_key.is_empty()).then(|| {
            Constraints::new_unverified(vec![Constraint::PrimaryKey(def.primary_key.clone())])
        });
        Ok(Self {
            def,
            store,
            codec,
            key_codec,
            schema,
            defaults,
            constraints,
            indexes,
        })
    }

    pub fn codec(&self) -> &RowCodec {
        &self.codec
    }

    /// The table's secondary indexes now.
    pub fn indexes(&self) -> Vec<Arc<TableIndex>> {
        index::indexes_of(&self.indexes, self.def.id)
    }

    /// The access path for a set of pushed-down filters: the primary key
    /// when it pins a row or a longer prefix, else the secondary index
    /// (readable at `epoch`) whose leading columns the filters pin most.
    fn access_path(&self, filters: &[Expr], epoch: u64) -> Access {
        let fields: Vec<FieldRef> = self.key_codec.schema().fields().iter().cloned().collect();
        let pk = self.key_access(&bounds(&fields, filters));
        let pk_pinned = match &pk {
            Access::Points(_) => return pk,
            Access::Range { pinned, .. } => *pinned,
            _ => 0,
        };
        let mut best: Option<(usize, bool, Access)> = None;
        for ix in self.indexes() {
            if ix.valid_from > epoch {
                continue;
            }
            let fields: Vec<FieldRef> = ix.key_codec.schema().fields()[..ix.width()].to_vec();
            let Some((ranges, pinned, ranged)) = index_ranges(&ix, &bounds(&fields, filters))
            else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|(p, r, _)| (pinned, ranged) > (*p, *r))
            {
                best = Some((pinned, ranged, Access::Index { index: ix, ranges }));
            }
        }
        match best {
            Some((pinned, _, access)) if pinned > pk_pinned => access,
            Some((0, true, access)) if matches!(pk, Access::Full) => access,
            _ => pk,
        }
    }

    /// The primary-key access path for `b` (bounds on the key columns).
    fn key_access(&self, b: &Bounds) -> Access {
        let Bounds { eq, lower, upper } = b;
        // Every key column pinned by equalities: a set of point gets.
        if eq.iter().all(|e| e.is_some()) {
            let mut points: Vec<Vec<ScalarValue>> = vec![vec![]];
            for values in eq.iter().flatten() {
                let mut next = Vec::with_capacity(points.len() * values.len());
                for p in &points {
                    for v in values {
                        let mut p = p.clone();
                        p.push(v.clone());
                        next.push(p);
                    }
                }
                points = next;
                if points.len() > MAX_POINTS {
                    return Access::Full;
                }
            }
            let mut keys: Vec<Vec<u8>> = points.iter().filter_map(|p| self.encode_key(p)).collect();
            keys.sort();
            keys.dedup();
            return Access::Points(keys);
        }

        // A prefix of single-valued equalities, then maybe a range.
        let mut prefix = Vec::new();
        for e in eq {
            match e {
                Some(v) if v.len() == 1 => prefix.push(v[0].clone()),
                _ => break,
            }
        }
        let j = prefix.len();
        let (lo, hi) = (lower[j].clone(), upper[j].clone());
        if j == 0 && lo.is_none() && hi.is_none() {
            return Access::Full;
        }
        let base = if prefix.is_empty() {
            keys::table_prefix(self.def.id).to_vec()
        } else {
            match self.encode_key(&prefix) {
                Some(k) => k,
                None => return Access::Full,
            }
        };
        let end =
            keys::prefix_successor(&base).unwrap_or_else(|| keys::table_end(self.def.id).to_vec());
        let with = |v: &ScalarValue| {
            let mut p = prefix.clone();
            p.push(v.clone());
            self.encode_key(&p)
        };
        let Some((from, to)) = bounded(&base, &end, &lo, &hi, with) else {
            return Access::Full;
        };
        Access::Range {
            from,
            to,
            pinned: j,
        }
    }

    /// Encodes the key (or key prefix) made of `values`.
    fn encode_key(&self, values: &[ScalarValue]) -> Option<Vec<u8>> {
        encode_prefix(&self.key_codec, self.def.id, values)
    }
}

/// `[from, to)` in key order.
type KeyRange = (Vec<u8>, Vec<u8>);

/// What pushed-down filters say about a list of key columns: the values
/// each is pinned to (an equality or IN list), and range bounds.
struct Bounds {
    eq: Vec<Option<Vec<ScalarValue>>>,
    lower: Vec<Option<(ScalarValue, bool)>>,
    upper: Vec<Option<(ScalarValue, bool)>>,
}

/// The bounds `filters` put on the columns `key_fields`.
fn bounds(key_fields: &[FieldRef], filters: &[Expr]) -> Bounds {
    {
        let mut eq: Vec<Option<Vec<ScalarValue>>> = vec![None; key_fields.len()];
        let mut lower: Vec<Option<(ScalarValue, bool)>> = vec![None; key_fields.len()];
        let mut upper: Vec<Option<(ScalarValue, bool)>> = vec![None; key_fields.len()];
        let position = |name: &str| key_fields.iter().position(|f| f.name() == name);
        let coerce = |i: usize, v: &ScalarValue| -> Option<ScalarValue> {
            let dt = key_fields[i].data_type();
            if v.is_null() {
                return None;
            }
            if v.data_type() == *dt {
                return Some(v.clone());
            }
            // Only lossless casts: cast there and back must give the value.
            let c = v.cast_to(dt).ok()?;
            (c.cast_to(&v.data_type()).ok()? == *v).then_some(c)
        };
        for f in filters {
            // `a = 1 OR a = 2` (DataFusion's form of a short IN list).
            if let Some((name, values)) = or_of_equalities(f) {
                if let Some(i) = position(&name) {
                    let values: Option<Vec<ScalarValue>> =
                        values.iter().map(|v| coerce(i, v)).collect();
                    if let (Some(values), None) = (values, &eq[i]) {
                        eq[i] = Some(values);
                    }
                }
                continue;
            }
            match f {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    let (col, lit, op) = match (left.as_ref(), right.as_ref()) {
                        (Expr::Column(c), Expr::Literal(v, _)) => (c, v, *op),
                        (Expr::Literal(v, _), Expr::Column(c)) => match op.swap() {
                            Some(op) => (c, v, op),
                            None => continue,
                        },
                        _ => continue,
                    };
                    let Some(i) = position(&col.name) else {
                        continue;
                    };
                    let Some(v) = coerce(i, lit) else { continue };
                    match op {
                        Operator::Eq => eq[i] = Some(vec![v]),
                        Operator::Gt => tighten(&mut lower[i], v, false, true),
                        Operator::GtEq => tighten(&mut lower[i], v, true, true),
                        Operator::Lt => tighten(&mut upper[i], v, false, false),
                        Operator::LtEq => tighten(&mut upper[i], v, true, false),
                        _ => {}
                    }
                }
                Expr::InList(list) if !list.negated => {
                    let Expr::Column(col) = list.expr.as_ref() else {
                        continue;
                    };
                    let Some(i) = position(&col.name) else {
                        continue;
                    };
                    let mut values = Vec::with_capacity(list.list.len());
                    for e in &list.list {
                        match e {
                            Expr::Literal(v, _) => match coerce(i, v) {
                                Some(v) => values.push(v),
                                // A NULL or uncastable element matches nothing.
                                None => continue,
                            },
                            _ => {
                                values.clear();
                                break;
                            }
                        }
                    }
                    if !values.is_empty() && eq[i].is_none() {
                        eq[i] = Some(values);
                    }
                }
                Expr::Between(b) if !b.negated => {
                    let Expr::Column(col) = b.expr.as_ref() else {
                        continue;
                    };
                    let Some(i) = position(&col.name) else {
                        continue;
                    };
                    if let (Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                        (b.low.as_ref(), b.high.as_ref())
                    {
                        if let (Some(lo), Some(hi)) = (coerce(i, lo), coerce(i, hi)) {
                            tighten(&mut lower[i], lo, true, true);
                            tighten(&mut upper[i], hi, true, false);
                        }
                    }
                }
                _ => {}
            }
        }

        Bounds { eq, lower, upper }
    }
}

/// `[from, to)` within `[base, end)` for the optional bounds `lo`/`hi` on
/// the column after a prefix (`with(v)` encodes prefix + v); `None` if a
/// bound cannot be encoded.
fn bounded(
    base: &[u8],
    end: &[u8],
    lo: &Option<(ScalarValue, bool)>,
    hi: &Option<(ScalarValue, bool)>,
    with: impl Fn(&ScalarValue) -> Option<Vec<u8>>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let from = match lo {
        Some((v, inclusive)) => match with(v)? {
            k if *inclusive => k,
            k => keys::prefix_successor(&k).unwrap_or(end.to_vec()),
        },
        None => base.to_vec(),
    };
    let to = match hi {
        Some((v, inclusive)) => match with(v)? {
            k if *inclusive => keys::prefix_successor(&k).unwrap_or(end.to_vec()),
            k => k,
        },
        None => end.to_vec(),
    };
    Some((from, to))
}

/// Encodes the key prefix made of `values` (the first columns of `codec`)
/// under `id`.
fn encode_prefix(codec: &RowCodec, id: u32, values: &[ScalarValue]) -> Option<Vec<u8>> {
    let arrays: Vec<ArrayRef> = values
        .iter()
        .map(|v| v.to_array().ok())
        .collect::<Option<_>>()?;
    let idx: Vec<usize> = (0..values.len()).collect();
    let schema = Arc::new(codec.schema().project(&idx).ok()?);
    let batch = RecordBatch::try_new(schema, arrays).ok()?;
    codec.encode_keys(id, &batch, &idx).ok()?.pop()
}

/// The entry ranges of index `ix` that `b` (bounds on its indexed columns)
/// selects: one per combination of the values pinning its leading columns,
/// narrowed by a range on the next column. Also how many columns are
/// pinned and whether a range narrows them. `None` if the filters do not
/// constrain the first indexed column.
fn index_ranges(ix: &TableIndex, b: &Bounds) -> Option<(Vec<KeyRange>, usize, bool)> {
    let id = ix.def.id;
    let mut prefixes: Vec<Vec<ScalarValue>> = vec![vec![]];
    let mut pinned = 0;
    for values in b.eq.iter().map_while(|e| e.as_ref()) {
        if prefixes.len() * values.len() > MAX_POINTS {
            break;
        }
        prefixes = prefixes
            .iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
        pinned += 1;
    }
    let (lo, hi) = match (b.lower.get(pinned), b.upper.get(pinned)) {
        (Some(lo), Some(hi)) => (lo.clone(), hi.clone()),
        _ => (None, None),
    };
    let ranged = lo.is_some() || hi.is_some();
    if pinned == 0 && !ranged {
        return None;
    }
    let mut ranges = Vec::with_capacity(prefixes.len());
    for prefix in &prefixes {
        let base = if prefix.is_empty() {
            keys::table_prefix(id).to_vec()
        } else {
            encode_prefix(&ix.key_codec, id, prefix)?
        };
        let end = keys::prefix_successor(&base).unwrap_or_else(|| keys::table_end(id).to_vec());
        let with = |v: &ScalarValue| {
            let mut p = prefix.clone();
            p.push(v.clone());
            encode_prefix(&ix.key_codec, id, &p)
        };
        let (from, to) = bounded(&base, &end, &lo, &hi, with)?;
        if from < to {
            ranges.push((from, to));
        }
    }
    ranges.sort();
    ranges.dedup();
    Some((ranges, pinned, ranged))
}

/// `col = v1 OR col = v2 OR …` → `(col, [v1, v2, …])`.
fn or_of_equalities(e: &Expr) -> Option<(String, Vec<ScalarValue>)> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (a, mut va) = or_of_equalities(left)?;
            let (b, vb) = or_of_equalities(right)?;
            (a == b).then(|| {
                va.extend(vb);
                (a, va)
            })
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                Some((c.name.clone(), vec![v.clone()]))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Keeps the tighter of the current bound and `(v, inclusive)`.
fn tighten(
    bound: &mut Option<(ScalarValue, bool)>,
    v: ScalarValue,
    inclusive: bool,
    is_lower: bool,
) {
    let replace = match bound {
        None => true,
        Some((cur, cur_inc)) => match v.partial_cmp(cur) {
            Some(std::cmp::Ordering::Greater) => is_lower,
            Some(std::cmp::Ordering::Less) => !is_lower,
            Some(std::cmp::Ordering::Equal) => *cur_inc && !inclusive,
            None => false,
        },
    };
    if replace {
        *bound = Some((v, inclusive));
    }
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.constraints.as_ref()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: filters only narrow the key range; DataFusion re-checks.
        Ok(filters
            .iter()
            .map(|_| TableProviderFilterPushDown::Inexact)
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = match state.config().get_extension::<QuerySnapshot>() {
            Some(s) => s.0.clone(),
            None => self.store.snapshot(),
        };
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let access = self.access_path(filters, snapshot.epoch());
        let props = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(FreshetScanExec {
            table: self.def.name.clone(),
            table_id: self.def.id,
            codec: self.codec.clone(),
            snapshot,
            access,
            projection,
            limit,
            props,
            multiplicity: self.def.multiplicity_column(),
        }))
    }
}

/// How a scan reaches its rows.
#[derive(Debug, Clone)]
enum Access {
    Full,
    /// Sorted, distinct full keys.
    Points(Vec<Vec<u8>>),
    Range {
        from: Vec<u8>,
        to: Vec<u8>,
        /// How many leading key columns equalities pin.
        pinned: usize,
    },
    /// Entry ranges of a secondary index, each row then got by its key.
    Index {
        index: Arc<TableIndex>,
        ranges: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// Reads rows of one table from a snapshot.
#[derive(Debug)]
pub struct FreshetScanExec {
    table: String,
    table_id: u32,
    codec: RowCodec,
    snapshot: Snapshot,
    access: Access,
    projection: Vec<usize>,
    limit: Option<usize>,
    props: Arc<PlanProperties>,
    /// A view's multiplicity column: each stored row stands for that many.
    multiplicity: Option<usize>,
}

impl DisplayAs for FreshetScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FreshetScan: table={}, access=", self.table)?;
        match &self.access {
            Access::Full => write!(f, "full_scan")?,
            Access::Points(k) => write!(f, "point_get keys={}", k.len())?,
            Access::Range { .. } => write!(f, "range_scan")?,
            Access::Index { index, ranges } => write!(
                f,
                "index_scan index={} ranges={}",
                index.def.name,
                ranges.len()
            )?,
        }
        let names: Vec<&str> = self
            .projection
            .iter()
            .map(|&i| self.codec.schema().field(i).name().as_str())
            .collect();
        write!(f, ", projection=[{}]", names.join(", "))?;
        if let Some(l) = self.limit {
            write!(f, ", limit={l}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for FreshetScanExec {
    fn name(&self) -> &str {
        "FreshetScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = Arc::new(self.codec.schema().project(&self.projection)?);
        let mut projection = self.projection.clone();
        projection.extend(self.multiplicity);
        let mut state = ScanState {
            table: self.table.clone(),
            codec: self.codec.clone(),
            snapshot: self.snapshot.clone(),
            multiplicity: self.multiplicity.is_some(),
            projection,
            remaining: self.limit.unwrap_or(usize::MAX),
            next: match &self.access {
                Access::Full => Some(Cursor::Range {
                    from: keys::table_prefix(self.table_id).to_vec(),
                    to: keys::table_end(self.table_id).to_vec(),
                }),
                Access::Range { from, to, .. } => Some(Cursor::Range {
                    from: from.clone(),
                    to: to.clone(),
                }),
                Access::Points(k) => Some(Cursor::Points(k.clone())),
                Access::Index { ranges, .. } => {
                    Some(Cursor::Index(ranges.iter().cloned().collect()))
                }
            },
        };
        let iter = std::iter::from_fn(move || state.next_batch().transpose());
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(iter),
        )))
    }
}

enum Cursor {
    Range {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Points(Vec<Vec<u8>>),
    /// Index entry ranges still to read (each entry's value is a row key).
    Index(VecDeque<(Vec<u8>, Vec<u8>)>),
}

struct ScanState {
    table: String,
    codec: RowCodec,
    snapshot: Snapshot,
    /// The last projected column is a multiplicity to expand and drop.
    multiplicity: bool,
    projection: Vec<usize>,
    remaining: usize,
    next: Option<Cursor>,
}

impl ScanState {
    fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        let Some(cursor) = self.next.take() else {
            return Ok(None);
        };
        if self.remaining == 0 {
            return Ok(None);
        }
        let mut decoder = self
            .codec
            .decoder(Some(&self.projection), SCAN_CHUNK.min(self.remaining));
        match cursor {
            Cursor::Points(keys) => {
                for k in &keys {
                    if decoder.rows() == self.remaining {
                        break;
                    }
                    if let Some(v) = self.snapshot.get(k).map_err(ext)? {
                        decoder.push(&v).map_err(ext)?;
                    }
                }
            }
            Cursor::Range { from, to } => {
                let chunk = SCAN_CHUNK.min(self.remaining);
                let resume = self
                    .snapshot
                    .scan(&from, &to, chunk, |_, v| decoder.push(v))
                    .map_err(ext)?;
                self.next = resume.map(|from| Cursor::Range { from, to });
            }
            Cursor::Index(mut ranges) => {
                let chunk = SCAN_CHUNK.min(self.remaining);
                let mut row_keys: Vec<Vec<u8>> = Vec::with_capacity(chunk.min(1024));
                while let Some((from, to)) = ranges.pop_front() {
                    let resume = self
                        .snapshot
                        .scan(&from, &to, chunk - row_keys.len(), |_, v| {
                            row_keys.push(v.to_vec());
                            Ok(())
                        })
                        .map_err(ext)?;
                    if let Some(from) = resume {
                        ranges.push_front((from, to));
                    }
                    if row_keys.len() == chunk {
                        break;
                    }
                }
                for k in &row_keys {
                    match self.snapshot.get(k).map_err(ext)? {
                        Some(v) => decoder.push(&v).map_err(ext)?,
                        None => {
                            return Err(DataFusionError::Internal(format!(
                                "index entry of {} names a missing row",
                                self.table
                            )))
                        }
                    }
                }
                if !ranges.is_empty() {
                    self.next = Some(Cursor::Index(ranges));
                }
            }
        }
        let mut batch = decoder.finish().map_err(ext)?;
        if self.multiplicity {
            batch = expand_multiplicity(batch)?;
            batch = batch.slice(0, batch.num_rows().min(self.remaining));
        }
        self.remaining -= batch.num_rows();
        Ok(Some(batch))
    }
}

/// Repeats each row by its multiplicity (the last column), which is dropped.
fn expand_multiplicity(batch: RecordBatch) -> DfResult<RecordBatch> {
    use datafusion::arrow::array::Int64Array;
    let n = batch.num_columns() - 1;
    let counts = batch
        .column(n)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| DataFusionError::Internal("view multiplicity is not Int64".into()))?;
    let rows = batch.project(&(0..n).collect::<Vec<_>>())?;
    freshet_dataflow::expand_counts(&rows, counts.values())
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

fn ext(e: freshet_storage::StorageError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A source in queries: its columns, for planning the views that read
/// it. It keeps no rows, so an ad-hoc scan is refused.
#[derive(Debug)]
pub struct SourceTable {
    name: String,
    schema: SchemaRef,
}

impl SourceTable {
    pub fn new(name: &str, schema: SchemaRef) -> Self {
        SourceTable {
            name: name.to_string(),
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for SourceTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::External(Box::new(crate::PlannerError::NotSupported(format!(
            "reading source \"{}\" directly (it keeps no rows: create a materialized view over it, or a table WITH (connector = …) to keep them)",
            self.name
        )))))
    }
}

/// Table name → provider: one map per [`Flavor`], shared by the schema
/// providers and the engine.
pub type TableMap = Arc<RwLock<HashMap<String, Arc<StoredTable>>>>;

/// View name → DataFusion `ViewTable` (a stored query, inlined when used).
pub type ViewMap = Arc<RwLock<HashMap<String, Arc<dyn TableProvider>>>>;

/// The `public` schema: every table, materialized view and view of the
/// catalog, resolved on demand.
#[derive(Debug)]
pub struct FreshetSchema {
    tables: TableMap,
    views: ViewMap,
}

impl FreshetSchema {
    pub fn new(tables: TableMap, views: ViewMap) -> Self {
        Self { tables, views }
    }
}

#[async_trait]
impl SchemaProvider for FreshetSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.extend(
            self.views
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned(),
        );
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self
            .tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            // A source is in the map for the catalogs (pg_class, \d); in
            // queries it is a stream that keeps no rows.
            if t.def.kind == crate::catalog::RelKind::Source {
                return Ok(Some(Arc::new(SourceTable::new(
                    &t.def.name,
                    t.def.user_schema(),
                ))));
            }
            return Ok(Some(t.clone() as Arc<dyn TableProvider>));
        }
        Ok(self
            .views
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
            || self
                .views
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(name)
    }
}
