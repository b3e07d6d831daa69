//! Per-connection session state: the run-time settings behind
//! `SET` / `SHOW` / `RESET`.
//!
//! Freshet keeps the settings drivers and tools send at connect time (psql,
//! psycopg, JDBC, tokio-postgres, SQLAlchemy) and reports them back. Only a
//! few change behaviour today (see the README); the rest are accepted and
//! shown so clients that check them work.

use std::collections::BTreeMap;

use crate::{PlannerError, Result};

/// `(canonical name, default value)` of every known setting.
const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    // RisingWave's: whether each write flushes before it returns. Every
    // write does here, so `false` changes nothing either.
    ("rw_implicit_flush", "false"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.0"),
    ("server_version_num", "150000"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("synchronous_commit", "on"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
];

/// Settings that cannot be changed with SET.
const READ_ONLY: &[&str] = &[
    "integer_datetimes",
    "max_identifier_length",
    "server_encoding",
    "server_version",
    "server_version_num",
    "is_superuser",
];

fn canonical(name: &str) -> Option<&'static str> {
    // Runs for every statement (statement_timeout): no allocation.
    let alias = [
        ("timezone", "TimeZone"),
        ("time zone", "TimeZone"),
        ("time_zone", "TimeZone"),
        ("transaction isolation level", "transaction_isolation"),
        ("transaction_isolation_level", "transaction_isolation"),
        ("names", "client_encoding"),
    ];
    let name = alias
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
        .unwrap_or(name);
    DEFAULTS
        .iter()
        .map(|(n, _)| *n)
        .find(|n| n.eq_ignore_ascii_case(name))
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// Inside BEGIN … COMMIT/ROLLBACK.
    pub in_transaction: bool,
    /// A statement in the current transaction block changed data (which,
    /// each statement committing on its own, ROLLBACK cannot undo).
    pub transaction_wrote: bool,
    settings: BTreeMap<&'static str, String>,
    /// Custom `prefix.name` settings (Postgres allows any such name).
    custom: BTreeMap<String, String>,
}

impl Session {
    pub fn new(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            in_transaction: false,
            transaction_wrote: false,
            settings: BTreeMap::new(),
            custom: BTreeMap::new(),
        }
    }

    pub fn get(&self, name: &str) -> Result<String> {
        if let Some(c) = canonical(name) {
            if let Some(v) = self.settings.get(c) {
                return Ok(v.clone());
            }
            let default = DEFAULTS
                .iter()
                .find(|(n, _)| *n == c)
                .map(|(_, v)| *v)
                .unwrap_or("");
            return Ok(default.to_string());
        }
        if let Some(v) = self.custom.get(&name.to_ascii_lowercase()) {
            return Ok(v.clone());
        }
        if name.eq_ignore_ascii_case("session_authorization") {
            return Ok(self.user.clone());
        }
        Err(PlannerError::UndefinedParameter(name.to_string()))
    }

    /// The display name of a setting (`SHOW` column header).
    pub fn display_name(name: &str) -> String {
        canonical(name)
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or_else(|| name.to_ascii_lowercase())
    }

    /// `SET name = value`; `None` means `DEFAULT`.
    pub fn set(&mut self, name: &str, value: Option<String>) -> Result<()> {
        match canonical(name) {
            Some(c) if READ_ONLY.contains(&c) => Err(PlannerError::InvalidParameterValue(format!(
                "parameter \"{name}\" cannot be changed"
            ))),
            Some(c) => {
                let value = match value {
                    None => {
                        self.settings.remove(c);
                        return Ok(());
                    }
                    Some(v) => validate(c, v)?,
                };
                self.settings.insert(c, value);
                Ok(())
            }
            None if name.contains('.') => {
                match value {
                    Some(v) => self.custom.insert(name.to_ascii_lowercase(), v),
                    None => self.custom.remove(&name.to_ascii_lowercase()),
                };
                Ok(())
            }
            None => Err(PlannerError::UndefinedParameter(name.to_string())),
        }
    }

    pub fn reset_all(&mut self) {
        self.settings.clear();
        self.custom.clear();
    }

    /// Every setting with its current value, for `SHOW ALL`.
    pub fn all(&self) -> Vec<(String, String)> {
        DEFAULTS
            .iter()
            .map(|(n, _)| (n.to_string(), self.get(n).unwrap_or_default()))
            .chain(self.custom.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }
}

fn validate(name: &str, value: String) -> Result<String> {
    let bad = |v: &str| {
        PlannerError::InvalidParameterValue(format!(
            "invalid value for parameter \"{name}\": \"{v}\""
        ))
    };
    match name {
        "client_encoding" => {
            let norm = value.to_ascii_uppercase().replace(['-', '_'], "");
            if norm == "UTF8" || norm == "UNICODE" {
                Ok("UTF8".into())
            } else {
                Err(PlannerError::not_supported(format!(
                    "client_encoding {value} (only UTF8)"
                )))
            }
        }
        "rw_implicit_flush" => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "1" | "yes" => Ok("true".into()),
            "false" | "off" | "0" | "no" => Ok("false".into()),
            _ => Err(bad(&value)),
        },
        "extra_float_digits" => match value.parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => Err(bad(&value)),
        },
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            parse_duration_ms(&value)
                .map(|_| value.clone())
                .ok_or_else(|| bad(&value))
        }
        "TimeZone" => {
            let v = value.trim();
            if ["utc", "gmt", "z", "etc/utc", "+00", "+00:00", "0"]
                .contains(&v.to_ascii_lowercase().as_str())
            {
                Ok("UTC".into())
            } else {
                Err(PlannerError::not_supported(format!(
                    "time zone {v} (sessions run in UTC)"
                )))
            }
        }
        _ => Ok(value),
    }
}

/// Parses a Postgres duration setting (`5000`, `'5s'`, `'1min'`) to ms.
pub fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_show_reset() {
        let mut s = Session::new("u");
        assert_eq!(s.get("datestyle").unwrap(), "ISO, MDY");
        s.set("application_name", Some("x".into())).unwrap();
        assert_eq!(s.get("APPLICATION_NAME").unwrap(), "x");
        s.set("application_name", None).unwrap();
        assert_eq!(s.get("application_name").unwrap(), "");
        assert!(matches!(
            s.get("nope"),
            Err(PlannerError::UndefinedParameter(_))
        ));
        assert!(s.set("server_version", Some("1".into())).is_err());
        s.set("statement_timeout", Some("2s".into())).unwrap();
        assert_eq!(s.get("statement_timeout").unwrap(), "2s");
        assert!(s.set("statement_timeout", Some("soon".into())).is_err());
    }
}
