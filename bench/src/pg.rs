//! A throw-away PostgreSQL server (Debian's packages) on loopback, in a
//! temporary directory, stopped by a guard.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::util::{effective_uid, find_program, free_port, is_executable, sh_quote, tail_file};

/// Where `initdb` and `pg_ctl` live.
#[derive(Clone, Debug)]
pub struct PgBins {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
}

impl PgBins {
    fn in_dir(dir: &Path) -> Option<PgBins> {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        (is_executable(&initdb) && is_executable(&pg_ctl)).then_some(PgBins { initdb, pg_ctl })
    }
}

/// Finds `initdb`/`pg_ctl`: `override_dir` if given, else the highest
/// version under `/usr/lib/postgresql/*/bin`, else `$PATH`.
pub fn find_bins(override_dir: Option<&Path>) -> Result<PgBins> {
    if let Some(dir) = override_dir {
        return PgBins::in_dir(dir)
            .with_context(|| format!("no executable initdb and pg_ctl in {}", dir.display()));
    }

    let mut versions: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(version) = name
                .split('.')
                .map(|p| p.parse::<u32>())
                .collect::<std::result::Result<Vec<u32>, _>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if PgBins::in_dir(&bin).is_some() {
                versions.push((version, bin));
            }
        }
    }
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(PgBins::in_dir(&bin).expect("checked above"));
    }

    if let Some(initdb) = find_program("initdb", &[]) {
        // Debian links /usr/bin tools to a wrapper; prefer the real directory.
        if let Ok(real) = std::fs::canonicalize(&initdb) {
            if let Some(bins) = real.parent().and_then(PgBins::in_dir) {
                return Ok(bins);
            }
        }
        if let Some(bins) = initdb.parent().and_then(PgBins::in_dir) {
            return Ok(bins);
        }
        if let Some(pg_ctl) = find_program("pg_ctl", &[]) {
            return Ok(PgBins { initdb, pg_ctl });
        }
    }
    bail!(
        "PostgreSQL not found: no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH \
         (install postgresql-15, pass --pg-bin-dir, or use --only freshet)"
    )
}

/// How the PostgreSQL tools are run: directly, or as user `postgres` when we
/// are root (PostgreSQL refuses to run as root).
#[derive(Clone, Debug)]
enum Runner {
    Direct,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl Runner {
    fn detect() -> Result<Runner> {
        if effective_uid() != Some(0) {
            return Ok(Runner::Direct);
        }
        let has_postgres_user = StdCommand::new("id")
            .args(["-u", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !has_postgres_user {
            bail!("running as root, but there is no `postgres` user to run PostgreSQL as");
        }
        if let Some(runuser) = find_program("runuser", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        {
            return Ok(Runner::Runuser(runuser));
        }
        if let Some(su) = find_program("su", &["/usr/bin", "/bin"]) {
            return Ok(Runner::Su(su));
        }
        bail!(
            "running as root, but neither runuser nor su was found to run PostgreSQL as `postgres`"
        )
    }

    fn command(&self, program: &Path, args: &[String]) -> StdCommand {
        match self {
            Runner::Direct => {
                let mut cmd = StdCommand::new(program);
                cmd.args(args);
                cmd
            }
            Runner::Runuser(runuser) => {
                let mut cmd = StdCommand::new(runuser);
                cmd.args(["-u", "postgres", "--"]).arg(program).args(args);
                cmd
            }
            Runner::Su(su) => {
                let line = std::iter::once(program.to_string_lossy().into_owned())
                    .chain(args.iter().cloned())
                    .map(|a| sh_quote(&a))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut cmd = StdCommand::new(su);
                cmd.args(["postgres", "-s", "/bin/sh", "-c"]).arg(line);
                cmd
            }
        }
    }

    fn as_postgres(&self) -> bool {
        !matches!(self, Runner::Direct)
    }
}

/// A running PostgreSQL. Dropping it stops the server (`pg_ctl stop -m
/// fast`) and removes its directory.
pub struct PgServer {
    pub port: u16,
    bins: PgBins,
    runner: Runner,
    data_dir: PathBuf,
    server_log: PathBuf,
    ctl_log: PathBuf,
    /// Set from just before `pg_ctl start` until it is stopped, so a
    /// half-started server is stopped by the guard too.
    running: bool,
    // Last field: removed after `Drop::drop` has stopped the server.
    dir: TempDir,
}

impl PgServer {
    /// initdb + `pg_ctl start -w` on a free loopback port.
    pub async fn start(bins: &PgBins, clients: usize) -> Result<PgServer> {
        let runner = Runner::detect()?;
        // Under /tmp (not $TMPDIR) so that user `postgres` can reach it.
        let dir = tempfile::Builder::new()
            .prefix("freshet-bench-pg-")
            .tempdir_in("/tmp")
            .context("creating a temporary directory for PostgreSQL")?;
        if runner.as_postgres() {
            let status = StdCommand::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .context("running chown")?;
            if !status.success() {
                bail!(
                    "chown -R postgres {} failed ({status})",
                    dir.path().display()
                );
            }
        }
        let port = free_port()?;
        let mut server = PgServer {
            port,
            bins: bins.clone(),
            runner,
            data_dir: dir.path().join("data"),
            server_log: dir.path().join("postgres.log"),
            ctl_log: dir.path().join("pg_ctl.log"),
            running: false,
            dir,
        };

        let data = server.data_dir.to_string_lossy().into_owned();
        let initdb_args = strings(&[
            "-D",
            data.as_str(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--locale=C",
            "-E",
            "UTF8",
        ]);
        server
            .run_tool(&server.bins.initdb, &initdb_args, "initdb")
            .await?;

        let socket_dir = server.dir.path().to_string_lossy().into_owned();
        let mut options = format!(
            "-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=on \
             -c synchronous_commit=on -c shared_buffers=256MB"
        );
        // The default max_connections (100) is plenty unless asked for more.
        if clients + 10 > 100 {
            options.push_str(&format!(" -c max_connections={}", clients + 10));
        }
        let log = server.server_log.to_string_lossy().into_owned();
        let start_args = strings(&[
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-w",
            "-t",
            "120",
            "-o",
            options.as_str(),
            "start",
        ]);
        server.running = true;
        server
            .run_tool(&server.bins.pg_ctl, &start_args, "pg_ctl start")
            .await?;
        Ok(server)
    }

    /// Runs a PostgreSQL tool (as `postgres` when needed) from inside the
    /// temporary directory, its output appended to pg_ctl.log.
    async fn run_tool(&self, program: &Path, args: &[String], what: &str) -> Result<()> {
        let cmd = self.tool_command(program, args)?;
        let status = tokio::process::Command::from(cmd)
            .status()
            .await
            .with_context(|| format!("running {what} ({})", program.display()))?;
        if !status.success() {
            bail!(
                "{what} failed ({status})\n--- {what} output ---\n{}\n--- server log ---\n{}",
                tail_file(&self.ctl_log, 40),
                tail_file(&self.server_log, 40)
            );
        }
        Ok(())
    }

    fn tool_command(&self, program: &Path, args: &[String]) -> Result<StdCommand> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ctl_log)
            .with_context(|| format!("opening {}", self.ctl_log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = self.runner.command(program, args);
        // The tools look up their own path relative to the working
        // directory, which must be readable by `postgres` (root's home is not).
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        Ok(cmd)
    }

    fn stop_args(&self) -> Vec<String> {
        let data = self.data_dir.to_string_lossy().into_owned();
        strings(&["-D", data.as_str(), "-m", "fast", "-w", "-t", "60", "stop"])
    }

    /// `pg_ctl stop -m fast`, reporting failure.
    pub async fn stop(mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let args = self.stop_args();
        let pg_ctl = self.bins.pg_ctl.clone();
        self.run_tool(&pg_ctl, &args, "pg_ctl stop").await
    }

    /// The last lines of the server log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.server_log, lines)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        // pg_ctl start failed before the postmaster came up: nothing to stop.
        if !self.data_dir.join("postmaster.pid").exists() {
            return;
        }
        let args = self.stop_args();
        let result = self
            .tool_command(&self.bins.pg_ctl, &args)
            .and_then(|mut cmd| cmd.status().map_err(anyhow::Error::from));
        match result {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!(
                "freshet-bench: pg_ctl stop failed ({status}):\n{}",
                tail_file(&self.ctl_log, 20)
            ),
            Err(e) => eprintln!("freshet-bench: could not run pg_ctl stop: {e:#}"),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
