//! `freshet`: start the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use freshet_server::Config;
use tracing_subscriber::EnvFilter;

// Many small, short-lived allocations per statement (Arrow arrays, keys,
// plan pieces): mimalloc serves them far cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Freshet: a streaming SQL database that speaks the Postgres protocol.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// TOML config file (keys: listen, data_dir, sync_commits, cache_mb,
    /// state_cache_kb).
    #[arg(long, env = "FRESHET_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5477].
    #[arg(long, env = "FRESHET_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./freshet-data].
    #[arg(long, env = "FRESHET_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// fsync the write-ahead log on every commit.
    #[arg(long, env = "FRESHET_SYNC_COMMITS")]
    sync_commits: Option<bool>,
    /// Storage cache in MiB [default: 256].
    #[arg(long, env = "FRESHET_CACHE_MB")]
    cache_mb: Option<usize>,
    /// In-memory state cache in KiB [default: 1 GiB].
    #[arg(long, env = "FRESHET_STATE_CACHE_KB")]
    state_cache_kb: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FRESHET_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(s) = args.sync_commits {
        config.sync_commits = s;
    }
    if let Some(c) = args.cache_mb {
        config.cache_mb = Some(c);
    }
    if let Some(c) = args.state_cache_kb {
        config.state_cache_kb = Some(c);
    }
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
