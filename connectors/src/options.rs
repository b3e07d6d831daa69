//! A connector's `WITH` options: every key a connector reads is taken from
//! the map, and what is left at the end is an unknown key — an error at
//! CREATE, so a typo never silently means a default.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::{invalid, Result};

#[derive(Debug, Clone, Default)]
pub struct Options {
    map: BTreeMap<String, String>,
}

impl Options {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Options { map }
    }

    /// Takes an option's value.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.map.remove(key)
    }

    /// Takes a required option.
    pub fn require(&mut self, key: &str) -> Result<String> {
        self.take(key)
            .ok_or_else(|| invalid(format!("option \"{key}\" is required")))
    }

    /// Takes an option and parses it, or `default` when it is absent.
    pub fn parse<T: FromStr>(&mut self, key: &str, default: T) -> Result<T> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => parse_value(key, &v),
        }
    }

    /// Takes every option whose key starts with `prefix`, keyed by the rest.
    pub fn take_prefixed(&mut self, prefix: &str) -> BTreeMap<String, String> {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| {
                let v = self.map.remove(&k)?;
                Some((k[prefix.len()..].to_string(), v))
            })
            .collect()
    }

    /// Fails on any option nobody took.
    pub fn finish(self, connector: &str) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(invalid(format!(
                "unknown option \"{k}\" for connector \"{connector}\""
            ))),
        }
    }
}

/// Parses option `key`'s value `v`.
pub fn parse_value<T: FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| invalid(format!("invalid value \"{v}\" for option \"{key}\"")))
}
