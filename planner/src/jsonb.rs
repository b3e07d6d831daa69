//! PostgreSQL's jsonb operators and everyday functions.
//!
//! A `jsonb` value is stored as its canonical text (crate::json), Utf8
//! marked `jsonb` in field metadata. [`JsonbPlanner`] plans the operators
//! (`->`, `->>`, `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&`, and `-` of a key)
//! as the functions below; `jsonb_agg` and the set-returning functions in a
//! select list are rewritten in crate::rewrite onto `array_agg` and
//! `unnest`, which queries and views already run. Every function here is
//! immutable, so views maintain them like any other expression.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, ListArray, StringArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::Value;

use crate::types::SqlType;
use crate::PlannerError;

/// What one jsonb function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `j -> key|index` (`text`: `->>`).
    Get {
        text: bool,
    },
    /// `j #> path` (`text`: `#>>`); `jsonb_extract_path[_text](j, VARIADIC keys)`.
    Path {
        text: bool,
        variadic: bool,
    },
    /// `a @> b`.
    Contains,
    /// `j ? key`.
    Exists,
    /// `j ?| keys` (`all`: `?&`).
    ExistsSome {
        all: bool,
    },
    /// `j - key`.
    DeleteKey,
    Typeof,
    ArrayLength,
    BuildObject,
    BuildArray,
    ToJsonb,
    /// A list of jsonb texts (`array_agg(to_jsonb(x))`) as one array.
    FromArray,
    /// The elements of an array as a list (`text`: as text).
    Elements {
        text: bool,
    },
    /// The keys of an object as a list.
    Keys,
    /// The values of an object as a list, in the order of [`Kind::Keys`]
    /// (`text`: as text): with it, `jsonb_each[_text]`.
    Values {
        text: bool,
    },
    /// [`Kind::Keys`] for `jsonb_each[_text]` (its errors name that).
    EachKeys {
        text: bool,
    },
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonbFn {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

fn udf(name: &'static str, kind: Kind) -> ScalarUDF {
    ScalarUDF::from(JsonbFn {
        name,
        kind,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// The jsonb functions, for the function registry.
pub fn udfs() -> Vec<ScalarUDF> {
    vec![
        udf("jsonb_get", Kind::Get { text: false }),
        udf("jsonb_get_text", Kind::Get { text: true }),
        udf(
            "jsonb_path",
            Kind::Path {
                text: false,
                variadic: false,
            },
        ),
        udf(
            "jsonb_path_text",
            Kind::Path {
                text: true,
                variadic: false,
            },
        ),
        udf(
            "jsonb_extract_path",
            Kind::Path {
                text: false,
                variadic: true,
            },
        ),
        udf(
            "jsonb_extract_path_text",
            Kind::Path {
                text: true,
                variadic: true,
            },
        ),
        udf(
            "json_extract_path",
            Kind::Path {
                text: false,
                variadic: true,
            },
        ),
        udf(
            "json_extract_path_text",
            Kind::Path {
                text: true,
                variadic: true,
            },
        ),
        udf("jsonb_contains", Kind::Contains),
        udf("jsonb_exists", Kind::Exists),
        udf("jsonb_exists_any", Kind::ExistsSome { all: false }),
        udf("jsonb_exists_all", Kind::ExistsSome { all: true }),
        udf("jsonb_delete_key", Kind::DeleteKey),
        udf("jsonb_typeof", Kind::Typeof),
        udf("json_typeof", Kind::Typeof),
        udf("jsonb_array_length", Kind::ArrayLength),
        udf("json_array_length", Kind::ArrayLength),
        udf("jsonb_build_object", Kind::BuildObject),
        udf("json_build_object", Kind::BuildObject),
        udf("jsonb_build_array", Kind::BuildArray),
        udf("json_build_array", Kind::BuildArray),
        udf("to_jsonb", Kind::ToJsonb),
        udf("to_json", Kind::ToJsonb),
        udf("row_to_json", Kind::ToJsonb),
        udf(FROM_ARRAY, Kind::FromArray),
        udf(ELEMENTS, Kind::Elements { text: false }),
        udf(ELEMENTS_TEXT, Kind::Elements { text: true }),
        udf(KEYS, Kind::Keys),
        udf(VALUES, Kind::Values { text: false }),
        udf(EACH_KEYS, Kind::EachKeys { text: false }),
        udf(EACH_KEYS_TEXT, Kind::EachKeys { text: true }),
        udf(VALUES_TEXT, Kind::Values { text: true }),
    ]
}

/// `array_agg(to_jsonb(x))` as a jsonb array: what `jsonb_agg(x)` becomes.
pub const FROM_ARRAY: &str = "jsonb_from_array";
/// The rows of list function `list`'s result `call`: `unnest(call)`,
/// typed jsonb again for the lists of jsonb elements (unnest drops the
/// type mark of list elements).
pub fn unnest_of(list: &str, call: &str) -> String {
    if list == ELEMENTS || list == VALUES {
        format!("{}(unnest({call}))", crate::functions::JsonbIn::NAME)
    } else {
        format!("unnest({call})")
    }
}

/// `jsonb_array_elements(j)` in a select list is `unnest` of this list.
pub const ELEMENTS: &str = "jsonb_array_elements_list";
pub const ELEMENTS_TEXT: &str = "jsonb_array_elements_text_list";
pub const KEYS: &str = "jsonb_object_keys_list";
/// `jsonb_each(j)` is `unnest` of [`KEYS`] beside `unnest` of this list.
pub const VALUES: &str = "jsonb_each_values_list";
pub const VALUES_TEXT: &str = "jsonb_each_text_values_list";
pub const EACH_KEYS: &str = "jsonb_each_keys_list";
pub const EACH_KEYS_TEXT: &str = "jsonb_each_text_keys_list";

/// The element field of a list function's result. (The elements of
/// `jsonb_array_elements` are jsonb texts, but `unnest` would drop a jsonb
/// mark on the element field: they reach clients as `text`.)
fn list_item(_kind: Kind) -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

fn jsonb_field(name: &str) -> Field {
    SqlType::Jsonb.field(name, true)
}

fn is_jsonb(f: &Field) -> bool {
    f.metadata().values().any(|v| v == "jsonb")
}

impl ScalarUDFImpl for JsonbFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Get { .. }
            | Kind::Path { .. }
            | Kind::DeleteKey
            | Kind::Typeof
            | Kind::BuildObject
            | Kind::BuildArray
            | Kind::ToJsonb
            | Kind::FromArray => DataType::Utf8,
            Kind::Contains | Kind::Exists | Kind::ExistsSome { .. } => DataType::Boolean,
            Kind::ArrayLength => DataType::Int32,
            Kind::Elements { .. } | Kind::Keys | Kind::Values { .. } | Kind::EachKeys { .. } => {
                DataType::List(list_item(self.kind))
            }
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let jsonb = match self.kind {
            Kind::Get { text } | Kind::Path { text, .. } => !text,
            Kind::DeleteKey
            | Kind::BuildObject
            | Kind::BuildArray
            | Kind::ToJsonb
            | Kind::FromArray => true,
            _ => false,
        };
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        Ok(Arc::new(if jsonb {
            jsonb_field(self.name)
        } else {
            Field::new(self.name, self.return_type(&types)?, true)
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows.max(1);
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let jsonb_args: Vec<bool> = args.arg_fields.iter().map(|f| is_jsonb(f)).collect();
        let n = if scalar { 1 } else { rows };
        let out = compute(self.kind, &arrays, &jsonb_args, n)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        crate::functions::columnar(out, scalar)
    }
}

fn invalid(m: impl Into<String>) -> PlannerError {
    PlannerError::InvalidText(m.into())
}

/// The JSON of a jsonb text.
fn parse(text: &str) -> Result<Value, PlannerError> {
    serde_json::from_str(text)
        .map_err(|e| invalid(format!("invalid input syntax for type json: {e}")))
}

fn canonical(v: &Value) -> String {
    let mut out = String::new();
    crate::json::write(v, &mut out);
    out
}

/// A text column of JSON values (from outside: a source's records) in
/// jsonb's canonical text, as a cast to jsonb would store them.
pub fn canonical_column(array: &ArrayRef) -> Result<ArrayRef, PlannerError> {
    let texts = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let texts = texts.as_string::<i32>();
    let out: datafusion::arrow::array::StringArray = texts
        .iter()
        .map(|t| t.map(|t| parse(t).map(|v| canonical(&v))).transpose())
        .collect::<Result<_, _>>()?;
    Ok(std::sync::Arc::new(out))
}

/// A text value as PostgreSQL's `->>` gives it: strings unquoted, JSON
/// null as SQL NULL, everything else in canonical form.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(canonical(other)),
    }
}

/// The keys of a path argument: a `text[]` or its literal `'{a,b}'`.
fn path_keys(array: &ArrayRef, row: usize) -> Result<Option<Vec<String>>, PlannerError> {
    if null_at(array, row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) => {
            let v = ScalarValue::try_from_array(array, row).map_err(PlannerError::from)?;
            let ScalarValue::List(list) = v else {
                return Err(invalid("a path is text[]"));
            };
            let items = list.value(0);
            let texts = datafusion::arrow::compute::cast(&items, &DataType::Utf8)?;
            let texts = texts.as_string::<i32>();
            Ok(Some(
                texts
                    .iter()
                    .map(|t| t.unwrap_or_default().to_string())
                    .collect(),
            ))
        }
        _ => {
            let text = scalar_text(array, row)?.unwrap_or_default();
            Ok(Some(array_literal(&text)?))
        }
    }
}

/// The elements of a one-dimensional PostgreSQL array literal `{a,"b c"}`.
pub fn array_literal(text: &str) -> Result<Vec<String>, PlannerError> {
    let t = text.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or_else(|| invalid(format!("malformed array literal: \"{text}\"")))?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Ok(out);
    }
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' => cur.extend(chars.next()),
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// Whether row `row` of `array` is NULL (a NULL literal's array has no
/// null buffer).
fn null_at(array: &ArrayRef, row: usize) -> bool {
    array.data_type() == &DataType::Null || array.is_null(row)
}

fn scalar_text(array: &ArrayRef, row: usize) -> Result<Option<String>, PlannerError> {
    if null_at(array, row) {
        return Ok(None);
    }
    let v = ScalarValue::try_from_array(array, row)?;
    Ok(Some(match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s,
        other => other.to_string(),
    }))
}

fn jsonb_at(array: &ArrayRef, row: usize) -> Result<Option<Value>, PlannerError> {
    scalar_text(array, row)?.map(|t| parse(&t)).transpose()
}

/// One step of `->`: an object's field or an array's element (negative
/// indexes count from the end).
fn step<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key),
        Value::Array(items) => {
            let i: i64 = key.parse().ok()?;
            let i = if i < 0 { items.len() as i64 + i } else { i };
            usize::try_from(i).ok().and_then(|i| items.get(i))
        }
        _ => None,
    }
}

/// PostgreSQL's jsonb containment: objects contain sub-objects, arrays
/// contain the elements of an array (in any order), a scalar array
/// contains that scalar.
fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, bv)| x.get(k).is_some_and(|av| contains(av, bv))),
        (Value::Array(x), Value::Array(y)) => {
            y.iter().all(|bv| x.iter().any(|av| contains(av, bv)))
        }
        (Value::Array(x), b) if !b.is_array() && !b.is_object() => x.iter().any(|av| av == b),
        (a, b) => a == b,
    }
}

/// `?`: a key of an object, or a string element of an array.
fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key),
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(key)),
        Value::String(s) => s == key,
        _ => false,
    }
}

/// The JSON of row `row` of an argument (`jsonb` arguments embedded, text
/// as a string, numbers, booleans, dates and times as PostgreSQL's to_jsonb
/// writes them).
fn to_json(array: &ArrayRef, row: usize, jsonb: bool) -> Result<Value, PlannerError> {
    if null_at(array, row) {
        return Ok(Value::Null);
    }
    if jsonb {
        return parse(&scalar_text(array, row)?.unwrap_or_default());
    }
    let v = ScalarValue::try_from_array(array, row)?;
    Ok(match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Int8(Some(i)) => i.into(),
        ScalarValue::Int16(Some(i)) => i.into(),
        ScalarValue::Int32(Some(i)) => i.into(),
        ScalarValue::Int64(Some(i)) => i.into(),
        ScalarValue::UInt8(Some(i)) => i.into(),
        ScalarValue::UInt16(Some(i)) => i.into(),
        ScalarValue::UInt32(Some(i)) => i.into(),
        ScalarValue::UInt64(Some(i)) => i.into(),
        ScalarValue::Float32(Some(f)) => serde_json::Number::from_f64(f as f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        ScalarValue::Float64(Some(f)) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        ScalarValue::Decimal128(..) => {
            serde_json::from_str::<Value>(&v.to_string()).unwrap_or(Value::String(v.to_string()))
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s),
        ScalarValue::TimestampMicrosecond(..)
        | ScalarValue::TimestampNanosecond(..)
        | ScalarValue::TimestampMillisecond(..)
        | ScalarValue::TimestampSecond(..) => {
            let text = datafusion::arrow::util::display::array_value_to_string(array, row)?;
            let text = text.replace(' ', "T");
            // timestamptz: PostgreSQL writes the offset as +00:00.
            Value::String(match text.strip_suffix('Z') {
                Some(t) => format!("{t}+00:00"),
                None => text,
            })
        }
        ScalarValue::List(_) | ScalarValue::LargeList(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| to_json(&items, i, false))
                    .collect::<Result<_, _>>()?,
            )
        }
        ScalarValue::Struct(_) => {
            let s = array.as_struct();
            let mut m = serde_json::Map::new();
            for (f, col) in s.fields().iter().zip(s.columns()) {
                m.insert(f.name().clone(), to_json(col, row, is_jsonb(f))?);
            }
            Value::Object(m)
        }
        _ => Value::String(datafusion::arrow::util::display::array_value_to_string(
            array, row,
        )?),
    })
}

fn compute(
    kind: Kind,
    args: &[ArrayRef],
    jsonb: &[bool],
    rows: usize,
) -> Result<ArrayRef, PlannerError> {
    let arity = |n: usize| -> Result<(), PlannerError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(PlannerError::UndefinedFunction(format!(
                "function takes {n} arguments, not {}",
                args.len()
            )))
        }
    };
    let texts = |f: &dyn Fn(usize) -> Result<Option<String>, PlannerError>| -> Result<ArrayRef, PlannerError> {
        let v: Vec<Option<String>> = (0..rows).map(f).collect::<Result<_, _>>()?;
        Ok(Arc::new(StringArray::from(v)))
    };
    let bools = |f: &dyn Fn(usize) -> Result<Option<bool>, PlannerError>| -> Result<ArrayRef, PlannerError> {
        let v: Vec<Option<bool>> = (0..rows).map(f).collect::<Result<_, _>>()?;
        Ok(Arc::new(BooleanArray::from(v)))
    };
    let out = |v: Option<&Value>, text: bool| -> Option<String> {
        v.and_then(|v| if text { as_text(v) } else { Some(canonical(v)) })
    };
    match kind {
        Kind::Get { text } => {
            arity(2)?;
            texts(&|r| {
                let (Some(j), Some(k)) = (jsonb_at(&args[0], r)?, scalar_text(&args[1], r)?) else {
                    return Ok(None);
                };
                // An integer key indexes arrays only.
                let is_index = args[1].data_type().is_integer();
                let v = match (&j, is_index) {
                    (Value::Object(_), true) => None,
                    (Value::Array(_), false) => None,
                    _ => step(&j, &k),
                };
                Ok(out(v, text))
            })
        }
        Kind::Path { text, variadic } => {
            if args.len() < 2 && !variadic {
                arity(2)?;
            }
            texts(&|r| {
                let Some(j) = jsonb_at(&args[0], r)? else {
                    return Ok(None);
                };
                let keys = if variadic {
                    let mut keys = Vec::new();
                    for a in &args[1..] {
                        match scalar_text(a, r)? {
                            Some(k) => keys.push(k),
                            None => return Ok(None),
                        }
                    }
                    keys
                } else {
                    match path_keys(&args[1], r)? {
                        Some(k) => k,
                        None => return Ok(None),
                    }
                };
                let mut v = Some(&j);
                for k in &keys {
                    v = v.and_then(|v| step(v, k));
                }
                Ok(out(v, text))
            })
        }
        Kind::Contains => {
            arity(2)?;
            bools(&|r| {
                Ok(match (jsonb_at(&args[0], r)?, jsonb_at(&args[1], r)?) {
                    (Some(a), Some(b)) => Some(contains(&a, &b)),
                    _ => None,
                })
            })
        }
        Kind::Exists => {
            arity(2)?;
            bools(&|r| {
                Ok(match (jsonb_at(&args[0], r)?, scalar_text(&args[1], r)?) {
                    (Some(j), Some(k)) => Some(has_key(&j, &k)),
                    _ => None,
                })
            })
        }
        Kind::ExistsSome { all } => {
            arity(2)?;
            bools(&|r| {
                Ok(match (jsonb_at(&args[0], r)?, path_keys(&args[1], r)?) {
                    (Some(j), Some(keys)) => Some(if all {
                        keys.iter().all(|k| has_key(&j, k))
                    } else {
                        keys.iter().any(|k| has_key(&j, k))
                    }),
                    _ => None,
                })
            })
        }
        Kind::DeleteKey => {
            arity(2)?;
            texts(&|r| {
                let (Some(mut j), Some(k)) = (jsonb_at(&args[0], r)?, scalar_text(&args[1], r)?)
                else {
                    return Ok(None);
                };
                match &mut j {
                    Value::Object(m) => {
                        m.remove(&k);
                    }
                    Value::Array(items) => items.retain(|i| i.as_str() != Some(k.as_str())),
                    _ => return Err(invalid("cannot delete from scalar")),
                }
                Ok(Some(canonical(&j)))
            })
        }
        Kind::Typeof => {
            arity(1)?;
            texts(&|r| {
                Ok(jsonb_at(&args[0], r)?.map(|j| {
                    match j {
                        Value::Null => "null",
                        Value::Bool(_) => "boolean",
                        Value::Number(_) => "number",
                        Value::String(_) => "string",
                        Value::Array(_) => "array",
                        Value::Object(_) => "object",
                    }
                    .to_string()
                }))
            })
        }
        Kind::ArrayLength => {
            arity(1)?;
            let v: Vec<Option<i32>> = (0..rows)
                .map(|r| match jsonb_at(&args[0], r)? {
                    None => Ok(None),
                    Some(Value::Array(items)) => Ok(Some(items.len() as i32)),
                    Some(Value::Object(_)) => {
                        Err(invalid("cannot get array length of a non-array"))
                    }
                    Some(_) => Err(invalid("cannot get array length of a scalar")),
                })
                .collect::<Result<_, PlannerError>>()?;
            Ok(Arc::new(Int32Array::from(v)))
        }
        Kind::BuildObject => {
            if !args.len().is_multiple_of(2) {
                return Err(invalid("argument list must have even number of elements"));
            }
            texts(&|r| {
                let mut m = serde_json::Map::new();
                for pair in (0..args.len()).step_by(2) {
                    let key = scalar_text(&args[pair], r)?
                        .ok_or_else(|| invalid("null value not allowed for object key"))?;
                    m.insert(key, to_json(&args[pair + 1], r, jsonb[pair + 1])?);
                }
                Ok(Some(canonical(&Value::Object(m))))
            })
        }
        Kind::BuildArray => texts(&|r| {
            let items = (0..args.len())
                .map(|i| to_json(&args[i], r, jsonb[i]))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(canonical(&Value::Array(items))))
        }),
        Kind::ToJsonb => {
            arity(1)?;
            texts(&|r| {
                if null_at(&args[0], r) {
                    return Ok(None);
                }
                Ok(Some(canonical(&to_json(&args[0], r, jsonb[0])?)))
            })
        }
        Kind::FromArray => {
            arity(1)?;
            texts(&|r| {
                if null_at(&args[0], r) {
                    return Ok(None);
                }
                let list = args[0].as_list::<i32>();
                let items = list.value(r);
                let items = datafusion::arrow::compute::cast(&items, &DataType::Utf8)?;
                let items = items.as_string::<i32>();
                let values = items
                    .iter()
                    .map(|t| t.map(parse).transpose().map(|v| v.unwrap_or(Value::Null)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(canonical(&Value::Array(values))))
            })
        }
        Kind::Elements { .. } | Kind::Keys | Kind::Values { .. } | Kind::EachKeys { .. }
            if args.len() == 1 =>
        {
            let text = matches!(
                kind,
                Kind::Elements { text: true }
                    | Kind::Values { text: true }
                    | Kind::EachKeys { text: true }
            );
            let mut offsets = vec![0i32];
            let mut values: Vec<Option<String>> = Vec::new();
            let mut valid = Vec::with_capacity(rows);
            for r in 0..rows {
                match jsonb_at(&args[0], r)? {
                    None => valid.push(false),
                    Some(j) => {
                        valid.push(true);
                        match (kind, j) {
                            (
                                Kind::Keys | Kind::Values { .. } | Kind::EachKeys { .. },
                                Value::Object(m),
                            ) => {
                                // jsonb's key order: shorter keys first.
                                let mut keys: Vec<&String> = m.keys().collect();
                                keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                                if matches!(kind, Kind::Keys | Kind::EachKeys { .. }) {
                                    values.extend(keys.into_iter().map(|k| Some(k.clone())));
                                } else {
                                    values.extend(keys.into_iter().map(|k| {
                                        if text {
                                            as_text(&m[k])
                                        } else {
                                            Some(canonical(&m[k]))
                                        }
                                    }));
                                }
                            }
                            (Kind::Keys, Value::Array(_)) => {
                                return Err(invalid("cannot call jsonb_object_keys on an array"))
                            }
                            (Kind::Keys, _) => {
                                return Err(invalid("cannot call jsonb_object_keys on a scalar"))
                            }
                            (Kind::Values { .. } | Kind::EachKeys { .. }, _) => {
                                return Err(invalid(format!(
                                    "cannot call {} on a non-object",
                                    if text {
                                        "jsonb_each_text"
                                    } else {
                                        "jsonb_each"
                                    }
                                )))
                            }
                            (_, Value::Array(items)) => values.extend(items.iter().map(|i| {
                                if text {
                                    as_text(i)
                                } else {
                                    Some(canonical(i))
                                }
                            })),
                            (_, Value::Object(_)) => {
                                return Err(invalid("cannot extract elements from an object"))
                            }
                            _ => return Err(invalid("cannot extract elements from a scalar")),
                        }
                    }
                }
                offsets.push(values.len() as i32);
            }
            let list = ListArray::try_new(
                list_item(kind),
                OffsetBuffer::new(offsets.into()),
                Arc::new(StringArray::from(values)),
                Some(valid.into()),
            )?;
            Ok(Arc::new(list))
        }
        Kind::Elements { .. } | Kind::Keys | Kind::Values { .. } | Kind::EachKeys { .. } => {
            arity(1).map(|_| unreachable!("one argument"))
        }
    }
}

/// Plans the jsonb operators as the functions above.
#[derive(Debug, Default)]
pub struct JsonbPlanner;

impl ExprPlanner for JsonbPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        use BinaryOperator as B;
        let (name, swap) = match &expr.op {
            B::Arrow => ("jsonb_get", false),
            B::LongArrow => ("jsonb_get_text", false),
            B::HashArrow => ("jsonb_path", false),
            B::HashLongArrow => ("jsonb_path_text", false),
            B::AtArrow => ("jsonb_contains", false),
            B::ArrowAt => ("jsonb_contains", true),
            B::Question => ("jsonb_exists", false),
            B::QuestionPipe => ("jsonb_exists_any", false),
            B::QuestionAnd => ("jsonb_exists_all", false),
            B::Minus => {
                // `jsonb - 'key'`: only when the left side is jsonb.
                let left_jsonb = match &expr.left {
                    Expr::Column(c) => schema
                        .field_from_column(c)
                        .map(|f| is_jsonb(f))
                        .unwrap_or(false),
                    Expr::ScalarFunction(f) => {
                        f.func.name().starts_with("jsonb")
                            || f.func.name() == crate::functions::JsonbIn::NAME
                    }
                    _ => false,
                };
                let text_right = matches!(
                    datafusion::logical_expr::ExprSchemable::get_type(&expr.right, schema),
                    Ok(DataType::Utf8)
                );
                if !(left_jsonb && text_right) {
                    return Ok(PlannerResult::Original(expr));
                }
                ("jsonb_delete_key", false)
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let f = udfs()
            .into_iter()
            .find(|u| u.name() == name)
            .expect("registered above");
        let (a, b) = if swap {
            (expr.right, expr.left)
        } else {
            (expr.left, expr.right)
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(Arc::new(f), vec![a, b]),
        )))
    }
}

/// Whether `name` is a jsonb set-returning function the select list takes,
/// and the list function it is `unnest` of.
pub fn set_returning(name: &str) -> Option<&'static str> {
    Some(match name {
        "jsonb_array_elements" | "json_array_elements" => ELEMENTS,
        "jsonb_array_elements_text" | "json_array_elements_text" => ELEMENTS_TEXT,
        "jsonb_object_keys" | "json_object_keys" => KEYS,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn containment_as_postgres() {
        assert!(contains(&j(r#"{"a":1,"b":[1,2]}"#), &j(r#"{"b":[2]}"#)));
        assert!(!contains(&j(r#"{"a":1}"#), &j(r#"{"a":2}"#)));
        assert!(contains(&j("[1,2,3]"), &j("[3,1]")));
        assert!(contains(&j(r#"["a","b"]"#), &j(r#""a""#)));
        assert!(!contains(&j(r#"{"a":{"b":1}}"#), &j(r#"{"b":1}"#)));
    }

    #[test]
    fn array_literals() {
        assert_eq!(array_literal("{a,b}").unwrap(), vec!["a", "b"]);
        assert_eq!(array_literal(r#"{"a b",c}"#).unwrap(), vec!["a b", "c"]);
        assert!(array_literal("{}").unwrap().is_empty());
        assert!(array_literal("a,b").is_err());
    }
}
