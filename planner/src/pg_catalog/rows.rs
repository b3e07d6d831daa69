//! The patched catalog tables' rows: the crate's rows for system
//! relations with Freshet's own relations answered from their [`TableDef`]s.

use super::*;

impl PatchedTable {
    async fn public_oid(&self, state: &dyn Session) -> DfResult<i64> {
        let ns = self
            .schema_provider
            .table("pg_namespace")
            .await?
            .ok_or_else(|| DataFusionError::Internal("pg_namespace missing".into()))?;
        let batch = scan_all(ns.as_ref(), state).await?;
        let oids = ints(column(&batch, "oid")?)?;
        let names = cast(column(&batch, "nspname")?, &DataType::Utf8)?;
        let names = names.as_any().downcast_ref::<StringArray>().expect("Utf8");
        (0..batch.num_rows())
            .find(|&i| names.value(i) == crate::names::SCHEMA)
            .map(|i| oids.value(i))
            .ok_or_else(|| DataFusionError::Internal("no public namespace".into()))
    }

    async fn batch(&self, state: &dyn Session) -> DfResult<RecordBatch> {
        let schema = self.inner.schema();
        let inner = scan_all(self.inner.as_ref(), state).await?;
        let defs = defs(&self.tables);
        let indexes = shown_indexes(&self.tables);
        let mut rows: Vec<Row> = Vec::new();
        let base = match self.kind {
            Patched::Class => {
                let public = self.public_oid(state).await?;
                for d in &defs {
                    let has_index = indexes.iter().any(|ix| ix.table.id == d.id);
                    rows.push(HashMap::from([
                        ("oid", int(table_oid(d))),
                        ("relname", text(&d.name)),
                        ("relnamespace", int(public)),
                        ("relowner", int(role_oid(d.owner.as_deref()))),
                        ("relam", int(HEAP_AM_OID)),
                        ("relfilenode", int(table_oid(d))),
                        ("reltuples", ScalarValue::Float64(Some(-1.0))),
                        ("relhasindex", boolean(has_index)),
                        ("relpersistence", text("p")),
                        (
                            "relkind",
                            text(match d.kind {
                                crate::catalog::RelKind::MaterializedView => "m",
                                // A source reads from outside, as a
                                // foreign table does: psql's \d says so.
                                crate::catalog::RelKind::Source => "f",
                                _ => "r",
                            }),
                        ),
                        ("relnatts", int(d.columns.len() as i64)),
                        ("relispopulated", boolean(true)),
                        ("relreplident", text("d")),
                    ]));
                }
                for ix in &indexes {
                    rows.push(HashMap::from([
                        ("oid", int(ix.oid)),
                        ("relname", text(&ix.name)),
                        ("relnamespace", int(public)),
                        ("relowner", int(role_oid(ix.owner.as_deref()))),
                        ("relam", int(BTREE_AM_OID)),
                        ("relfilenode", int(ix.oid)),
                        ("reltuples", ScalarValue::Float64(Some(-1.0))),
                        ("relpersistence", text("p")),
                        ("relkind", text("i")),
                        ("relnatts", int(ix.columns.len() as i64)),
                        ("relispopulated", boolean(true)),
                        ("relreplident", text("n")),
                    ]));
                }
                // The crate's own rows for our tables carry other OIDs.
                without(&inner, "relnamespace", |ns| ns == public)?
            }
            Patched::Attribute => {
                for d in &defs {
                    for (i, c) in d.columns.iter().enumerate() {
                        let (len, byval, align, storage) = type_layout(&c.sql_type);
                        rows.push(HashMap::from([
                            ("attrelid", int(table_oid(d))),
                            ("attname", text(&c.name)),
                            ("atttypid", int(c.sql_type.pg_oid() as i64)),
                            ("attstattarget", int(-1)),
                            ("attlen", int(len)),
                            ("attnum", int(i as i64 + 1)),
                            ("attcacheoff", int(-1)),
                            ("atttypmod", int(c.sql_type.pg_typmod() as i64)),
                            ("attbyval", boolean(byval)),
                            ("attalign", text(align)),
                            ("attstorage", text(storage)),
                            ("attnotnull", boolean(c.not_null)),
                            ("atthasdef", boolean(c.default.is_some())),
                            ("attislocal", boolean(true)),
                            (
                                "attcollation",
                                int(if collatable(&c.sql_type) {
                                    DEFAULT_COLLATION_OID
                                } else {
                                    0
                                }),
                            ),
                        ]));
                    }
                }
                for ix in &indexes {
                    let d = &ix.table;
                    for (k, &i) in ix.columns.iter().enumerate() {
                        let c = &d.columns[i];
                        let (len, byval, align, storage) = type_layout(&c.sql_type);
                        rows.push(HashMap::from([
                            ("attrelid", int(ix.oid)),
                            ("attname", text(&c.name)),
                            ("atttypid", int(c.sql_type.pg_oid() as i64)),
                            ("attlen", int(len)),
                            ("attnum", int(k as i64 + 1)),
                            ("attcacheoff", int(-1)),
                            ("atttypmod", int(c.sql_type.pg_typmod() as i64)),
                            ("attbyval", boolean(byval)),
                            ("attalign", text(align)),
                            ("attstorage", text(storage)),
                            ("attnotnull", boolean(false)),
                            ("attislocal", boolean(true)),
                            (
                                "attcollation",
                                int(if collatable(&c.sql_type) {
                                    DEFAULT_COLLATION_OID
                                } else {
                                    0
                                }),
                            ),
                        ]));
                    }
                }
                let table_oids: Vec<i64> = {
                    // Rows of the crate's for our tables: those whose
                    // attrelid is a relation in `public` (by the crate's OIDs).
                    let public = self.public_oid(state).await?;
                    // (`schema_provider` is the crate's schema: its pg_class.)
                    let class = self
                        .schema_provider
                        .table("pg_class")
                        .await?
                        .ok_or_else(|| DataFusionError::Internal("pg_class missing".into()))?;
                    let b = scan_all(class.as_ref(), state).await?;
                    let oids = ints(column(&b, "oid")?)?;
                    let ns = ints(column(&b, "relnamespace")?)?;
                    (0..b.num_rows())
                        .filter(|&i| ns.value(i) == public)
                        .map(|i| oids.value(i))
                        .collect()
                };
                without(&inner, "attrelid", |r| table_oids.contains(&r))?
            }
            Patched::AttrDef => {
                for d in &defs {
                    for (i, c) in d.columns.iter().enumerate() {
                        if let Some(expr) = &c.default {
                            rows.push(HashMap::from([
                                (
                                    "oid",
                                    int(ATTRDEF_OID_BASE + 2048 * d.id as i64 + i as i64 + 1),
                                ),
                                ("adrelid", int(table_oid(d))),
                                ("adnum", int(i as i64 + 1)),
                                ("adbin", text(expr)),
                            ]));
                        }
                    }
                }
                inner
            }
            Patched::Index => {
                for ix in &indexes {
                    let d = &ix.table;
                    let n = ix.columns.len();
                    let keys: Vec<String> =
                        ix.columns.iter().map(|i| (i + 1).to_string()).collect();
                    let zeros = vec!["0"; n].join(" ");
                    let collations: Vec<&str> = ix
                        .columns
                        .iter()
                        .map(|&i| {
                            if collatable(&d.columns[i].sql_type) {
                                "100"
                            } else {
                                "0"
                            }
                        })
                        .collect();
                    rows.push(HashMap::from([
                        ("indexrelid", int(ix.oid)),
                        ("indrelid", int(table_oid(d))),
                        ("indnatts", int(n as i64)),
                        ("indnkeyatts", int(n as i64)),
                        ("indisunique", boolean(ix.unique)),
                        ("indisprimary", boolean(ix.primary)),
                        ("indimmediate", boolean(true)),
                        ("indisvalid", boolean(true)),
                        ("indisready", boolean(true)),
                        ("indislive", boolean(true)),
                        ("indkey", text(keys.join(" "))),
                        ("indcollation", text(collations.join(" "))),
                        ("indclass", text(zeros.clone())),
                        ("indoption", text(zeros)),
                    ]));
                }
                inner
            }
            Patched::Namespace => {
                // DataFusion serves information_schema, but the crate's
                // pg_namespace does not list it.
                let listed = column(&inner, "nspname")?
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| a.iter().flatten().any(|n| n == "information_schema"))
                    .unwrap_or(true);
                if !listed {
                    rows.push(HashMap::from([
                        ("oid", int(INFORMATION_SCHEMA_OID)),
                        ("nspname", text("information_schema")),
                        ("nspowner", int(OWNER_OID)),
                    ]));
                }
                inner
            }
            Patched::Database => {
                // Only the database a client can connect to (the crate
                // adds a `postgres` one), owned by the bootstrap role.
                let names = cast(column(&inner, "datname")?, &DataType::Utf8)?;
                let names = names.as_any().downcast_ref::<StringArray>().expect("Utf8");
                let keep: BooleanArray = names
                    .iter()
                    .map(|n| Some(n == Some(crate::names::DATABASE)))
                    .collect();
                let mut kept = filter_record_batch(&inner, &keep)?;
                if let Ok(i) = kept.schema().index_of("datdba") {
                    let mut columns = kept.columns().to_vec();
                    let t = columns[i].data_type().clone();
                    columns[i] = cast(
                        &(Arc::new(Int64Array::from(vec![OWNER_OID; kept.num_rows()])) as ArrayRef),
                        &t,
                    )?;
                    kept = RecordBatch::try_new(kept.schema(), columns)?;
                }
                kept
            }
            Patched::Constraint => {
                let public = self.public_oid(state).await?;
                for d in defs.iter().filter(|d| !d.primary_key.is_empty()) {
                    let keys: Vec<String> =
                        d.primary_key.iter().map(|i| (i + 1).to_string()).collect();
                    rows.push(HashMap::from([
                        ("oid", int(constraint_oid(d))),
                        ("conname", text(d.pkey_name())),
                        ("connamespace", int(public)),
                        ("contype", text("p")),
                        ("convalidated", boolean(true)),
                        ("conrelid", int(table_oid(d))),
                        ("conindid", int(index_oid(d))),
                        ("confupdtype", text(" ")),
                        ("confdeltype", text(" ")),
                        ("confmatchtype", text(" ")),
                        ("conislocal", boolean(true)),
                        ("connoinherit", boolean(true)),
                        ("conkey", text(format!("{{{}}}", keys.join(",")))),
                    ]));
                }
                inner
            }
        };
        let ours = build_rows(&schema, &rows)?;
        let all = concat_batches(&schema, [&base, &ours])?;
        if self.kind == Patched::Class {
            // `reloptions` (text[]): none of our relations has storage options.
            let target = self.schema();
            let mut columns = all.columns().to_vec();
            columns.push(new_null_array(
                target.field(columns.len()).data_type(),
                all.num_rows(),
            ));
            return Ok(RecordBatch::try_new(target, columns)?);
        }
        if self.kind != Patched::Index {
            return Ok(all);
        }
        // `indkey`, `indclass` … are vectors (int2vector / oidvector), which
        // clients unnest; the crate stores them as text (`1 2`).
        let target = self.schema();
        let mut columns = all.columns().to_vec();
        for (name, _) in INDEX_VECTORS {
            let i = schema.index_of(name)?;
            let texts = cast(&columns[i], &DataType::Utf8)?;
            let texts = texts.as_any().downcast_ref::<StringArray>().expect("Utf8");
            let mut list = ListBuilder::new(Int64Builder::new());
            for t in texts.iter() {
                match t {
                    Some(t) => {
                        for n in t.split(|c: char| {
                            c.is_whitespace()
                                || c == ','
                                || c == '{'
                                || c == '}'
                                || c == '['
                                || c == ']'
                        }) {
                            if let Ok(v) = n.parse::<i64>() {
                                list.values().append_value(v);
                            }
                        }
                        list.append(true);
                    }
                    None => list.append(false),
                }
            }
            let list: ArrayRef = Arc::new(list.finish());
            columns[i] = cast(&list, target.field(i).data_type())?;
        }
        Ok(RecordBatch::try_new(target, columns)?)
    }
}

#[async_trait]
impl TableProvider for PatchedTable {
    fn schema(&self) -> SchemaRef {
        let inner = self.inner.schema();
        if self.kind == Patched::Class {
            let mut fields: Vec<Field> =
                inner.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(
                "reloptions",
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                true,
            ));
            return Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone()));
        }
        if self.kind != Patched::Index {
            return inner;
        }
        let fields: Vec<Field> = inner
            .fields()
            .iter()
            .map(
                |f| match INDEX_VECTORS.iter().find(|(n, _)| n == f.name()) {
                    Some((n, t)) => Field::new(
                        *n,
                        DataType::List(Arc::new(Field::new_list_field(t.clone(), true))),
                        true,
                    ),
                    None => f.as_ref().clone(),
                },
            )
            .collect();
        Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone()))
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.batch(state).await?;
        MemTable::try_new(self.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }
}
