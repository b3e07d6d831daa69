//! The Freshet server: the `freshet` binary's library half.
//!
//! Owns the Postgres wire front end (via `pgwire`: simple and extended query,
//! COPY), per-connection sessions, configuration, start-up and shutdown. SQL
//! is handed to `freshet-planner`'s [`Engine`](freshet_planner::Engine);
//! this crate turns its outputs into wire messages and its errors, already
//! classified by the planner, into error responses ([`errors`]).
//!
//! Tests and embedders start a server with [`run`] on a listener they bound
//! themselves (e.g. `127.0.0.1:0`) and a shutdown future.

pub mod config;
pub mod errors;
mod gate;
mod handler;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use freshet_planner::{Engine, EngineOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

pub use config::Config;
use gate::Gate;

/// Serves Postgres clients on `listener` until `shutdown` completes, then
/// stops accepting, lets running statements finish (for at most
/// `config.shutdown_grace_ms`; new ones are refused with 57P01), closes
/// every connection and flushes storage.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let engine = Engine::open(EngineOptions {
        data_dir: config.data_dir.clone(),
        store: config.storage.clone(),
    })?;
    info!(
        "listening on {} (data directory {})",
        listener.local_addr()?,
        config.data_dir.display()
    );
    tokio::spawn(Engine::run_scheduler(
        Arc::downgrade(&engine),
        std::time::Duration::from_millis(config.step_interval_ms.max(1)),
    ));
    let gate = Arc::new(Gate::new());
    let handlers = Arc::new(handler::Handlers::new(engine.clone(), gate.clone()));
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: keep
                        // serving, retrying less often while it lasts.
                        let wait = backoff.next();
                        warn!("accept failed: {e} (retrying in {wait:?})");
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                };
                backoff = Backoff::default();
                let _ = socket.set_nodelay(true);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    debug!("refusing {peer}: {} connections already", config.max_connections);
                    connections.spawn(refuse(
                        socket,
                        "53300",
                        "sorry, too many clients already",
                    ));
                    continue;
                };
                let handlers = handlers.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                        debug!("connection from {peer} ended with an error: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    info!("shutting down: waiting for running statements");
    let grace = Duration::from_millis(config.shutdown_grace_ms);
    if !gate.close(grace).await {
        warn!("statements still running after {grace:?}: they are cancelled, nothing of them is committed");
    }
    // The answers of the statements that just finished may still be on
    // their way out (pgwire writes a response after the handler returns):
    // connections get a moment to write them, then every one is closed.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
    engine.close()?;
    info!("shut down");
    Ok(())
}

/// The wait before retrying a failed `accept`: from 10 ms, doubling up to
/// one second while failures go on (mini-redis's loop, without giving up:
/// the server keeps serving the connections it has).
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(10))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
        wait
    }
}

/// Answers a connection the server will not serve with a FATAL error
/// `code` (as PostgreSQL does for too many clients): reads the client's
/// startup packet (declining SSL or GSS encryption first, so the error
/// arrives in clear), sends the error and closes.
async fn refuse(mut socket: TcpStream, code: &'static str, message: &'static str) {
    let answer = async {
        loop {
            let len = socket.read_i32().await? as usize;
            if !(8..=10_000).contains(&len) {
                break;
            }
            let mut body = vec![0u8; len - 4];
            socket.read_exact(&mut body).await?;
            let request = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
            // SSLRequest or GSSENCRequest: decline, then the startup packet.
            if len == 8 && (request == 80877103 || request == 80877104) {
                socket.write_all(b"N").await?;
                continue;
            }
            break;
        }
        let mut fields = Vec::new();
        for (tag, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', code),
            (b'M', message),
        ] {
            fields.push(tag);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut msg = vec![b'E'];
        msg.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
        msg.extend_from_slice(&fields);
        socket.write_all(&msg).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_up_to_a_second() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..9).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }
}
