//! `freshet`: start the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use freshet_planner::ByteSize;
use freshet_server::Config;
use tracing_subscriber::EnvFilter;

// Many small, short-lived allocations per statement (Arrow arrays, keys,
// plan pieces): mimalloc serves them far cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Freshet: a streaming SQL database that speaks the Postgres protocol.
///
/// Settings come from defaults, then the config file, then environment
/// variables, then these flags. Sizes take KiB, MiB or GiB (`256MiB`).
/// The log level is `FRESHET_LOG` (e.g. `info`, `debug`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file: the keys below by their long names with `_`
    /// for `-`, the storage ones in a `[storage]` table.
    #[arg(long, env = "FRESHET_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5477].
    #[arg(long, env = "FRESHET_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory, created if missing [default: ./freshet-data].
    #[arg(long, env = "FRESHET_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Most client connections at once; the next gets SQLSTATE 53300
    /// [default: 100].
    #[arg(long, env = "FRESHET_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// On shutdown, how long running statements may take to finish, in
    /// milliseconds [default: 10000].
    #[arg(long, env = "FRESHET_SHUTDOWN_GRACE_MS")]
    shutdown_grace_ms: Option<u64>,
    /// How often source input that arrived is stepped through the views,
    /// in milliseconds [default: 10].
    #[arg(long, env = "FRESHET_STEP_INTERVAL_MS")]
    step_interval_ms: Option<u64>,
    /// fsync the write-ahead log on every commit [default: false].
    #[arg(long, env = "FRESHET_SYNC_COMMITS")]
    sync_commits: Option<bool>,
    /// RocksDB block cache (a quarter of it also sizes the write buffer)
    /// [default: 256MiB].
    #[arg(long, env = "FRESHET_CACHE_SIZE")]
    cache_size: Option<ByteSize>,
    /// In-memory state cache in front of storage [default: 1GiB].
    #[arg(long, env = "FRESHET_STATE_CACHE_SIZE")]
    state_cache_size: Option<ByteSize>,
}

impl Args {
    /// The configuration these arguments (and the file they name) give.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        if let Some(ms) = self.shutdown_grace_ms {
            config.shutdown_grace_ms = ms;
        }
        if let Some(ms) = self.step_interval_ms {
            config.step_interval_ms = ms;
        }
        if let Some(s) = self.sync_commits {
            config.storage.sync_commits = s;
        }
        if let Some(c) = self.cache_size {
            config.storage.cache_size = c;
        }
        if let Some(c) = self.state_cache_size {
            config.storage.state_cache_size = c;
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FRESHET_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Args::parse().config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        freshet_server::run(listener, config, shutdown_signal()).await
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags beat the file, which beats the defaults; storage flags land
    /// in the storage settings.
    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("freshet.toml");
        std::fs::write(
            &file,
            "max_connections = 7\n[storage]\ncache_size = \"1MiB\"\nstate_cache_size = \"8MiB\"",
        )
        .unwrap();
        let args = Args::try_parse_from([
            "freshet",
            "--config",
            file.to_str().unwrap(),
            "--state-cache-size",
            "2KiB",
            "--sync-commits",
            "true",
        ])
        .unwrap();
        let c = args.config().unwrap();
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.storage.cache_size, ByteSize(1 << 20));
        assert_eq!(c.storage.state_cache_size, ByteSize(2048));
        assert!(c.storage.sync_commits);
        assert!(Args::try_parse_from(["freshet", "--cache-size", "lots"]).is_err());
    }

    /// The defaults `--help` states are the ones the code has (they are
    /// written out in the doc comments, which clap shows).
    #[test]
    fn help_states_the_real_defaults() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        let d = Config::default();
        for default in [
            d.listen.to_string(),
            d.data_dir.display().to_string(),
            d.max_connections.to_string(),
            d.shutdown_grace_ms.to_string(),
            d.step_interval_ms.to_string(),
            d.storage.sync_commits.to_string(),
            d.storage.cache_size.to_string(),
            d.storage.state_cache_size.to_string(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "--help does not state the default {default}:\n{help}"
            );
        }
    }
}
