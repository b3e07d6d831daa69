//! `jsonb` values: validated on the way in and stored in Postgres' canonical
//! text form (keys ordered by length then bytes, duplicate keys keep the last,
//! `", "` and `": "` separators), so output matches what Postgres prints.

use serde_json::Value;

use crate::{PlannerError, Result};

pub fn normalize(text: &str) -> Result<String> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        PlannerError::InvalidText(format!("invalid input syntax for type json: {e}"))
    })?;
    let mut out = String::with_capacity(text.len());
    write(&v, &mut out);
    Ok(out)
}

pub(crate) fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push_str(": ");
                write(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_matches_postgres() {
        assert_eq!(
            normalize(r#"{"bb":1,"a":[1,2,{"c":null}],"a":true}"#).unwrap(),
            r#"{"a": true, "bb": 1}"#
        );
        assert_eq!(normalize(" [1, \"x\"] ").unwrap(), r#"[1, "x"]"#);
        assert!(normalize("{bad").is_err());
    }
}
