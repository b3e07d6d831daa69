//! Server configuration: one typed [`Config`], filled from defaults in
//! code, then a TOML file, then environment variables, then command-line
//! flags (later wins; `freshet --help` lists every setting with its
//! variable). Every default is written once, in the `Default` impls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use freshet_planner::StoreOptions;
use serde::Deserialize;

/// Everything the server can be told. In a TOML file the storage settings
/// are a `[storage]` table:
///
/// ```toml
/// listen = "127.0.0.1:5477"
/// data_dir = "./freshet-data"
/// max_connections = 100
/// shutdown_grace_ms = 10000
/// step_interval_ms = 10
///
/// [storage]
/// sync_commits = false
/// cache_size = "256MiB"
/// state_cache_size = "1GiB"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the Postgres wire protocol listens on.
    pub listen: SocketAddr,
    /// Directory holding the RocksDB database (created if missing).
    pub data_dir: PathBuf,
    /// Most client connections served at once; one more is answered with
    /// SQLSTATE 53300 (`too_many_connections`) and closed, as PostgreSQL's
    /// `max_connections` does.
    pub max_connections: usize,
    /// On shutdown (SIGTERM, Ctrl-C), how long statements already running
    /// may take to finish, in milliseconds; new statements are refused
    /// with 57P01 at once. Storage is closed after that.
    pub shutdown_grace_ms: u64,
    /// How often the scheduler steps the source input that arrived through
    /// the views, in milliseconds (DML steps at once, whatever this is).
    pub step_interval_ms: u64,
    /// Storage: durability of commits and memory for caches.
    pub storage: StoreOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:5477".parse().expect("valid address"),
            data_dir: PathBuf::from("./freshet-data"),
            max_connections: 100,
            shutdown_grace_ms: 10_000,
            step_interval_ms: 10,
            storage: StoreOptions::default(),
        }
    }
}

impl Config {
    /// Reads a TOML config file (keys as the field names above).
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("bad config file {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freshet_planner::ByteSize;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str(
            "listen = \"0.0.0.0:6000\"\n[storage]\nsync_commits = true\nstate_cache_size = \"2KiB\"",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert!(c.storage.sync_commits);
        assert_eq!(c.storage.state_cache_size, ByteSize(2048));
        assert_eq!(c.storage.cache_size, StoreOptions::default().cache_size);
        assert_eq!(c.data_dir, PathBuf::from("./freshet-data"));
        assert_eq!(c.max_connections, 100);
        assert!(toml::from_str::<Config>("nope = 1").is_err());
        assert!(toml::from_str::<Config>("[storage]\ncache_mb = 1").is_err());
        assert!(toml::from_str::<Config>("[storage]\ncache_size = \"1 furlong\"").is_err());
    }
}
