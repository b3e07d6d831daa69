//! The catalog functions Freshet answers itself: `pg_get_expr`,
//! `pg_get_indexdef`, `pg_get_constraintdef`, `to_regtype`,
//! `current_setting` and `freshet_column_default`.

use super::*;

/// `freshet_column_default(attrelid, attnum)`: the DEFAULT text of a column.
pub(super) const COLUMN_DEFAULT_FN: &str = "freshet_column_default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum FnKind {
    /// `pg_get_expr(text, oid [, pretty])`: our `adbin` already is the text.
    GetExpr,
    /// `pg_get_indexdef(oid [, column, pretty])`.
    IndexDef,
    /// `pg_get_constraintdef(oid [, pretty])`.
    ConstraintDef,
    /// `to_regtype(text)`: a built-in type's OID, NULL for unknown names.
    ToRegtype,
    /// `current_setting(name [, missing_ok])`: the server default of a
    /// setting (a function in the shared query context cannot see the
    /// calling session's SETs; `SHOW` does).
    CurrentSetting,
    ColumnDefault,
    /// `pg_get_userbyid(oid)`: the name of a role [`role_oid`] numbered.
    UserById,
}

/// Settings that are fixed for the server, beyond the session's.
const SERVER_SETTINGS: &[(&str, &str)] = &[("default_table_access_method", "heap")];

fn current_setting(name: &str) -> Option<String> {
    SERVER_SETTINGS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .or_else(|| crate::session::Session::new("").get(name).ok())
}

#[derive(Debug)]
pub(super) struct CatalogFn {
    name: &'static str,
    kind: FnKind,
    tables: TableMap,
    signature: Signature,
}

impl CatalogFn {
    pub(super) fn new(name: &'static str, kind: FnKind, tables: TableMap) -> Self {
        Self {
            name,
            kind,
            tables,
            signature: Signature::variadic_any(Volatility::Stable),
        }
    }
}

impl PartialEq for CatalogFn {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && Arc::ptr_eq(&self.tables, &other.tables)
    }
}
impl Eq for CatalogFn {}
impl Hash for CatalogFn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

fn type_oid_by_name(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    Some(match n {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "char" | "\"char\"" => 18,
        "name" => 19,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "integer" | "int" => 23,
        "text" => 25,
        "oid" => 26,
        "json" => 114,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "unknown" => 705,
        "bpchar" | "character" => 1042,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        "uuid" => 2950,
        "jsonb" => 3802,
        _ => return None,
    })
}

fn arg_ints(a: &ArrayRef) -> DfResult<Int64Array> {
    ints(a)
}

fn arg_texts(a: &ArrayRef) -> DfResult<StringArray> {
    Ok(cast(a, &DataType::Utf8)?
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .expect("cast to Utf8"))
}

pub(super) fn quote(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .map(|c| c.is_ascii_lowercase() || c == '_')
        .unwrap_or(false)
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        crate::names::quote_ident(name)
    }
}

impl CatalogFn {
    fn index_def(&self, oid: i64, column: i64) -> Option<String> {
        let ix = shown_indexes(&self.tables)
            .into_iter()
            .find(|ix| ix.oid == oid)?;
        if column > 0 {
            return ix
                .columns
                .get(column as usize - 1)
                .map(|&i| quote(&ix.table.columns[i].name));
        }
        Some(index_definition(&ix))
    }

    fn constraint_def(&self, oid: i64) -> Option<String> {
        let (d, kind) = def_by_oid(&self.tables, oid)?;
        if kind != 2 || d.primary_key.is_empty() {
            return None;
        }
        let cols: Vec<String> = d
            .primary_key
            .iter()
            .map(|&i| quote(&d.columns[i].name))
            .collect();
        Some(format!("PRIMARY KEY ({})", cols.join(", ")))
    }

    fn column_default(&self, oid: i64, attnum: i64) -> Option<String> {
        let (d, kind) = def_by_oid(&self.tables, oid)?;
        if kind != 0 || attnum < 1 {
            return None;
        }
        d.columns.get(attnum as usize - 1)?.default.clone()
    }
}

impl ScalarUDFImpl for CatalogFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            FnKind::ToRegtype => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (arrays, scalar) = crate::functions::arguments(&args.args)?;
        let arg = |i: usize| -> DfResult<&ArrayRef> {
            arrays.get(i).ok_or_else(|| {
                DataFusionError::Plan(format!("{}: missing argument {}", self.name, i + 1))
            })
        };
        let out: ArrayRef = match self.kind {
            FnKind::GetExpr => Arc::new(arg_texts(arg(0)?)?),
            FnKind::UserById => {
                let oids = arg_ints(arg(0)?)?;
                let owners: Vec<String> = defs(&self.tables)
                    .iter()
                    .filter_map(|d| d.owner.clone())
                    .collect();
                Arc::new(
                    oids.iter()
                        .map(|o| o.map(|o| role_name(o, &owners)))
                        .collect::<StringArray>(),
                )
            }
            FnKind::ToRegtype => {
                let names = arg_texts(arg(0)?)?;
                Arc::new(
                    names
                        .iter()
                        .map(|n| n.and_then(type_oid_by_name))
                        .collect::<datafusion::arrow::array::Int32Array>(),
                )
            }
            FnKind::CurrentSetting => {
                let names = arg_texts(arg(0)?)?;
                let missing_ok = match arrays.get(1) {
                    Some(a) => cast(a, &DataType::Boolean)?
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .map(|b| b.iter().any(|v| v == Some(true)))
                        .unwrap_or(false),
                    None => false,
                };
                let mut out = Vec::with_capacity(names.len());
                for n in names.iter() {
                    out.push(match n {
                        None => None,
                        Some(n) => match current_setting(n) {
                            Some(v) => Some(v),
                            None if missing_ok => None,
                            None => {
                                return Err(DataFusionError::Execution(format!(
                                    "unrecognized configuration parameter \"{n}\""
                                )))
                            }
                        },
                    });
                }
                Arc::new(StringArray::from(out))
            }
            FnKind::IndexDef => {
                let oids = arg_ints(arg(0)?)?;
                let cols = match arrays.get(1) {
                    Some(a) => arg_ints(a)?,
                    None => Int64Array::from(vec![0; oids.len()]),
                };
                Arc::new(
                    (0..oids.len())
                        .map(|i| {
                            if oids.is_null(i) {
                                None
                            } else {
                                self.index_def(
                                    oids.value(i),
                                    if cols.is_null(i) { 0 } else { cols.value(i) },
                                )
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
            FnKind::ConstraintDef => {
                let oids = arg_ints(arg(0)?)?;
                Arc::new(
                    oids.iter()
                        .map(|o| o.map(|o| self.constraint_def(o).unwrap_or_default()))
                        .collect::<StringArray>(),
                )
            }
            FnKind::ColumnDefault => {
                let oids = arg_ints(arg(0)?)?;
                let nums = arg_ints(arg(1)?)?;
                Arc::new(
                    (0..oids.len())
                        .map(|i| {
                            if oids.is_null(i) || nums.is_null(i) {
                                None
                            } else {
                                self.column_default(oids.value(i), nums.value(i))
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
        };
        if scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names() {
        assert_eq!(type_oid_by_name("jsonb"), Some(3802));
        assert_eq!(type_oid_by_name("hstore"), None);
    }
}
