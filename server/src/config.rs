//! Server configuration: defaults in code, then a TOML file, then
//! environment variables, then command-line flags (later wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the Postgres wire protocol listens on.
    pub listen: SocketAddr,
    /// Directory holding the RocksDB database (created if missing).
    pub data_dir: PathBuf,
    /// fsync the write-ahead log on every commit. Without it a commit
    /// survives a killed process (it is in the OS page cache before the
    /// client is answered) but not a power loss.
    pub sync_commits: bool,
    /// Storage cache in MiB (default 256). Data and view state larger than
    /// it stay correct; they are read from disk.
    pub cache_mb: Option<usize>,
    /// The in-memory state cache in front of storage, in KiB (default 1 GiB).
    /// Tables and views created while the server runs are held in it whole,
    /// and operator state and rows read again are answered from it; anything
    /// that does not fit is read from storage.
    pub state_cache_kb: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:5477".parse().expect("valid address"),
            data_dir: PathBuf::from("./freshet-data"),
            sync_commits: false,
            cache_mb: None,
            state_cache_kb: None,
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

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("listen = \"0.0.0.0:6000\"\nsync_commits = true").unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert!(c.sync_commits);
        assert_eq!(c.data_dir, PathBuf::from("./freshet-data"));
        assert!(toml::from_str::<Config>("nope = 1").is_err());
    }
}
