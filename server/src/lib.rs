//! The Freshet server: the `freshet` binary's library half.
//!
//! Owns the Postgres wire front end (via `pgwire`: simple and extended query,
//! COPY), per-connection sessions, configuration, start-up and shutdown. SQL
//! is handed to `freshet-planner`'s [`Engine`](freshet_planner::Engine);
//! this crate turns its outputs into wire messages and its errors into
//! SQLSTATEs ([`errors`]), in one place.
//!
//! Tests and embedders start a server with [`run`] on a listener they bound
//! themselves (e.g. `127.0.0.1:0`) and a shutdown future.

pub mod config;
pub mod errors;
mod handler;
mod wire;

use std::future::Future;
use std::sync::Arc;

use freshet_planner::{Engine, EngineOptions};
use tokio::net::TcpListener;
use tracing::{debug, info};

pub use config::Config;

/// Serves Postgres clients on `listener` until `shutdown` completes, then
/// flushes storage and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = Engine::open(EngineOptions {
        data_dir: config.data_dir.clone(),
        sync_commits: config.sync_commits,
        cache_bytes: config.cache_mb.map(|mb| mb << 20),
        state_cache_bytes: config.state_cache_kb.map(|kb| kb << 10),
    })?;
    info!(
        "listening on {} (data directory {})",
        listener.local_addr()?,
        config.data_dir.display()
    );
    let handlers = Arc::new(handler::Handlers::new(engine.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        debug!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let handlers = handlers.clone();
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        debug!("connection from {peer} ended with an error: {e}");
                    }
                });
            }
        }
    }
    info!("shutting down");
    engine.close()?;
    Ok(())
}
