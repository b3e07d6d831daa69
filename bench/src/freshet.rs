//! A throw-away Freshet server: `freshet --listen 127.0.0.1:PORT --data-dir
//! <tempdir>`, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::util::{free_port, tail_file};
use crate::workload::{self, ConnSpec};

/// How long Freshet may take to accept its first connection.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `freshet` next to the running executable (`target/release/freshet` for
/// `target/release/freshet-bench`), unless `--freshet-bin` says otherwise.
pub fn resolve_bin(arg: Option<&Path>) -> Result<PathBuf> {
    let bin = match arg {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe().context("locating the current executable")?;
            exe.parent()
                .context("the current executable has no parent directory")?
                .join("freshet")
        }
    };
    if !bin.is_file() {
        bail!(
            "Freshet binary not found at {} (build it with `cargo build --release --workspace --bins`, \
             pass --freshet-bin PATH, or use --only postgres)",
            bin.display()
        );
    }
    Ok(bin)
}

pub struct FreshetServer {
    pub port: u16,
    // Declared before `_dir`: killed (kill_on_drop) before its data directory is removed.
    child: Option<Child>,
    log_path: PathBuf,
    _dir: TempDir,
}

impl FreshetServer {
    /// Spawns Freshet on a free loopback port with a fresh data directory
    /// and waits until it accepts a Postgres connection.
    pub async fn start(bin: &Path, extra_args: &[String]) -> Result<FreshetServer> {
        let dir = tempfile::Builder::new()
            .prefix("freshet-bench-")
            .tempdir()
            .context("creating a temporary directory for Freshet")?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = dir.path().join("freshet.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone()?;
        let port = free_port()?;

        let child = Command::new(bin)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;

        let mut server = FreshetServer {
            port,
            child: Some(child),
            log_path,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    pub fn conn_spec(&self) -> ConnSpec {
        ConnSpec::loopback(self.port, "freshet", "freshet")
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("child is present until stop")
                .try_wait()?
            {
                bail!(
                    "freshet exited during start-up ({status})\n--- freshet log ---\n{}",
                    self.log_tail(40)
                );
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), workload::connect(&self.conn_spec()))
                    .await;
            match attempt {
                Ok(Ok(_client)) => return Ok(()),
                Ok(Err(e)) if Instant::now() >= deadline => {
                    bail!(
                        "freshet did not accept connections within {} s: {e:#}\n--- freshet log ---\n{}",
                        STARTUP_TIMEOUT.as_secs(),
                        self.log_tail(40)
                    );
                }
                Err(_) if Instant::now() >= deadline => {
                    bail!(
                        "freshet did not answer a connection within {} s\n--- freshet log ---\n{}",
                        STARTUP_TIMEOUT.as_secs(),
                        self.log_tail(40)
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The last lines of Freshet's output, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }

    /// Kills the server. An error if it had already exited on its own
    /// (crashed during the benchmark).
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(status) = child.try_wait()? {
            bail!(
                "freshet exited during the benchmark ({status})\n--- freshet log ---\n{}",
                self.log_tail(40)
            );
        }
        child.start_kill().context("killing freshet")?;
        child.wait().await.context("waiting for freshet to exit")?;
        Ok(())
    }
}
