//! The one test-server harness of Freshet's tests and benchmarks: start the
//! real `freshet` binary on a free port with its own data directory, stop it
//! (SIGKILL, or SIGTERM for a graceful shutdown), restart it on the same data
//! directory, and connect with tokio-postgres. The integration tests of
//! `freshet-server` (the slt runner, the oracle, crash tests) pass the binary
//! Cargo built for them; `freshet-bench` passes a release build.
//!
//! The server's output is kept in memory and printed when a test panics
//! while the harness is alive, so a failure shows what the server said.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

/// How long a server may take from spawn until it logs that it is listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped) `freshet` process with its data directory.
pub struct Server {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    /// Keeps the temporary data directory alive as long as the server.
    _tmp: Option<tempfile::TempDir>,
    log: Arc<Mutex<Vec<String>>>,
    starts: u32,
    /// Extra command-line arguments of every start.
    args: Vec<String>,
}

impl Server {
    /// Start `bin` on a free port with a fresh temporary data directory.
    /// Panics (with the server's output) if it does not come up.
    pub fn start(bin: impl AsRef<Path>) -> Server {
        Server::start_with_args(bin, &[])
    }

    /// [`Server::start`] with extra command-line arguments (kept for
    /// restarts).
    pub fn start_with_args(bin: impl AsRef<Path>, args: &[&str]) -> Server {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Server::try_start(bin.as_ref(), &args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Server::start_with_args`] that returns what went wrong (with the
    /// server's output) instead of panicking.
    pub fn try_start(bin: &Path, args: &[String]) -> Result<Server, String> {
        let tmp = tempfile::Builder::new()
            .prefix("freshet-test-")
            .tempdir()
            .map_err(|e| format!("creating a temporary data directory: {e}"))?;
        let data_dir = tmp.path().join("data");
        std::fs::create_dir(&data_dir)
            .map_err(|e| format!("creating {}: {e}", data_dir.display()))?;
        let mut s = Server::new(bin, data_dir, Some(tmp), args);
        s.spawn_once()?;
        Ok(s)
    }

    /// Start `bin` on an existing data directory owned by the caller.
    pub fn start_in(bin: impl AsRef<Path>, data_dir: &Path) -> Server {
        let mut s = Server::new(bin.as_ref(), data_dir.to_path_buf(), None, &[]);
        s.spawn();
        s
    }

    fn new(
        bin: &Path,
        data_dir: PathBuf,
        tmp: Option<tempfile::TempDir>,
        args: &[String],
    ) -> Server {
        Server {
            bin: bin.to_path_buf(),
            child: None,
            port: 0,
            data_dir,
            _tmp: tmp,
            log: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            args: args.to_vec(),
        }
    }

    fn spawn(&mut self) {
        if let Err(e) = self.spawn_once() {
            panic!("{e}");
        }
    }

    /// Starts freshet on port 0 (the kernel picks a free port, so parallel
    /// tests never race for one) and learns the port from its "listening
    /// on" line.
    fn spawn_once(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server is still running");
        self.starts += 1;
        let listen = "127.0.0.1:0";
        let bin = self.bin.clone();
        self.log_line(format!(
            "---- test harness: start #{} of {} --listen {listen} --data-dir {} {}----",
            self.starts,
            bin.display(),
            self.data_dir.display(),
            self.args
                .iter()
                .map(|a| format!("{a} "))
                .collect::<String>()
        ));
        let mut child = Command::new(&bin)
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.args)
            .env("RUST_BACKTRACE", "1")
            // The harness needs the "listening on" line whatever else is
            // asked of the log.
            .env(
                "FRESHET_LOG",
                std::env::var("FRESHET_LOG")
                    .map(|v| format!("{v},freshet_server=info"))
                    .unwrap_or_else(|_| "info".into()),
            )
            .env_remove("FRESHET_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let from = self.log.lock().unwrap().len();
        self.pump(out, "out");
        self.pump(err, "err");
        self.child = Some(child);
        self.wait_ready(from)
    }

    fn pump(&self, pipe: impl Read + Send + 'static, tag: &'static str) {
        let log = self.log.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                match line {
                    Ok(l) => log.lock().unwrap().push(format!("[{tag}] {l}")),
                    Err(_) => break,
                }
            }
        });
    }

    fn log_line(&self, l: String) {
        self.log.lock().unwrap().push(l);
    }

    /// Waits until the server logs (after log line `from`) that it is
    /// listening, which it does once its storage is open, and takes the
    /// port from that line; `Err` if the process exited first or took
    /// longer than [`STARTUP_TIMEOUT`].
    fn wait_ready(&mut self, from: usize) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("spawned above")
                .try_wait()
                .map_err(|e| format!("waiting for freshet: {e}"))?;
            if let Some(status) = exited {
                self.child = None;
                // Let the pump threads collect the last lines.
                thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "freshet exited during start-up with {status}\n{}",
                    self.logs()
                ));
            }
            let listening = self.log.lock().unwrap()[from..].iter().find_map(|l| {
                let rest = &l[l.find("listening on ")? + "listening on ".len()..];
                rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
            });
            if let Some(addr) = listening {
                self.port = addr.port();
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "freshet did not log that it is listening within {STARTUP_TIMEOUT:?}\n{}",
                    self.logs()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    /// Everything the server printed so far (all starts), for failure messages.
    pub fn logs(&self) -> String {
        let l = self.log.lock().unwrap();
        format!(
            "==== freshet output ====\n{}\n==== end of freshet output ====",
            l.join("\n")
        )
    }

    /// The last `n` lines the server printed, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let l = self.log.lock().unwrap();
        l[l.len().saturating_sub(n)..].join("\n")
    }

    /// Connection string for tokio-postgres.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=freshet dbname=freshet connect_timeout=10",
            self.port
        )
    }

    /// Connect with tokio-postgres; the connection task runs on the current runtime.
    pub async fn connect(&self) -> Client {
        match self.try_connect().await {
            Ok(c) => c,
            Err(e) => panic!(
                "connect to freshet on port {}: {e}\n{}",
                self.port,
                self.logs()
            ),
        }
    }

    pub async fn try_connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.conn_str(), NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// The exit status if the process has exited (on its own or stopped by
    /// the harness), `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => c.try_wait().unwrap().is_none(),
        }
    }

    /// SIGKILL the process (no chance to flush anything) and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server not running");
        // On Unix `Child::kill` sends SIGKILL.
        let _ = child.kill();
        let status = child.wait().expect("wait for killed freshet");
        self.log_line("---- test harness: SIGKILL ----".into());
        status
    }

    /// Send SIGTERM and wait up to `timeout` for the process to exit.
    /// Returns `None` (and SIGKILLs it) if it did not exit in time.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        self.log_line("---- test harness: SIGTERM ----".into());
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(
            rc,
            0,
            "kill(SIGTERM) failed: {}",
            std::io::Error::last_os_error()
        );
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                let mut child = self.child.take().unwrap();
                let _ = child.kill();
                let _ = child.wait();
                self.log_line("---- test harness: SIGKILL after SIGTERM timeout ----".into());
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start the process again on the same data directory (on a new free port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            // Give the pump threads a moment to drain the pipes.
            thread::sleep(Duration::from_millis(100));
            eprintln!("{}", self.logs());
        }
    }
}
