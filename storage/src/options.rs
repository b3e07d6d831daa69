//! How the store is opened: [`StoreOptions`], the storage part of the
//! server's one typed configuration (a `[storage]` table in its TOML file),
//! with every default written once, here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Storage settings. Every field has a default, so a config file names
/// only what it changes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// fsync the write-ahead log on every commit. Off by default: a commit
    /// is still in the WAL (the OS page cache) before it is acknowledged,
    /// which survives a killed process but not a power loss.
    pub sync_commits: bool,
    /// Memory for RocksDB's cached data blocks (and, a quarter of it, for
    /// its write buffer). Data and state larger than this stay correct;
    /// they are read from disk.
    pub cache_size: ByteSize,
    /// Memory for the state cache in front of RocksDB (see
    /// [`crate::cache`]). Larger than the block cache: it holds tables and
    /// views created while the server runs whole (reads of absent keys
    /// never reach RocksDB), which keeps a view's per-change work in
    /// memory; what does not fit is read from storage.
    pub state_cache_size: ByteSize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            sync_commits: false,
            cache_size: ByteSize(256 << 20),
            state_cache_size: ByteSize(1 << 30),
        }
    }
}

/// A size in bytes, written as a number of bytes or with a binary unit:
/// `1048576`, `512KiB`, `256MiB`, `1GiB` (also `KB`/`MB`/`GB`, `K`/`M`/`G`,
/// all meaning powers of 1024, as in PostgreSQL's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub usize);

impl ByteSize {
    pub fn bytes(self) -> usize {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: usize = digits
            .parse()
            .map_err(|_| format!("invalid size \"{s}\" (e.g. 256MiB)"))?;
        let shift = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 0,
            "k" | "kb" | "kib" => 10,
            "m" | "mb" | "mib" => 20,
            "g" | "gb" | "gib" => 30,
            _ => {
                return Err(format!(
                    "invalid size unit in \"{s}\" (use KiB, MiB or GiB)"
                ))
            }
        };
        n.checked_mul(1usize << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("size \"{s}\" is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n != 0 && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(usize),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units_and_print_back() {
        assert_eq!("2KiB".parse::<ByteSize>().unwrap(), ByteSize(2048));
        assert_eq!("256MiB".parse::<ByteSize>().unwrap(), ByteSize(256 << 20));
        assert_eq!(" 1 GB".parse::<ByteSize>().unwrap(), ByteSize(1 << 30));
        assert_eq!("300".parse::<ByteSize>().unwrap(), ByteSize(300));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(1500).to_string(), "1500");
        let o: StoreOptions =
            serde_json::from_str(r#"{"cache_size": "1MiB", "state_cache_size": 4096}"#).unwrap();
        assert_eq!(o.cache_size, ByteSize(1 << 20));
        assert_eq!(o.state_cache_size, ByteSize(4096));
        assert!(!o.sync_commits);
        assert!(serde_json::from_str::<StoreOptions>(r#"{"cache_mb": 1}"#).is_err());
    }
}
