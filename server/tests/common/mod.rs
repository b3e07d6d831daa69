//! Shared helpers for the client-level integration tests: start the real
//! `freshet` binary on a free port with its own data directory, stop it
//! (SIGKILL or SIGTERM), restart it on the same data directory, connect with
//! tokio-postgres, and speak raw protocol bytes for robustness tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// The server binary built by Cargo for this package.
pub const FRESHET_BIN: &str = env!("CARGO_BIN_EXE_freshet");

/// How long a server may take from spawn until it logs that it is listening.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running (or stopped) `freshet` process with its data directory.
pub struct Server {
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
    /// Start a server on a free port with a fresh temporary data directory.
    pub fn start() -> Server {
        Server::start_with_args(&[])
    }

    /// [`Server::start`] with extra command-line arguments (kept for
    /// restarts).
    pub fn start_with_args(args: &[&str]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("freshet-test-")
            .tempdir()
            .expect("create temp data dir");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir(&data_dir).expect("create data dir");
        let mut s = Server {
            child: None,
            port: 0,
            data_dir,
            _tmp: Some(tmp),
            log: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Start a server on an existing data directory owned by the caller.
    pub fn start_in(data_dir: &Path) -> Server {
        let mut s = Server {
            child: None,
            port: 0,
            data_dir: data_dir.to_path_buf(),
            _tmp: None,
            log: Arc::new(Mutex::new(Vec::new())),
            starts: 0,
            args: Vec::new(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        if let Err(status) = self.spawn_once() {
            panic!(
                "freshet exited during start-up with {status}\n{}",
                self.logs()
            );
        }
    }

    /// Starts freshet on port 0 (the kernel picks a free port, so parallel
    /// tests never race for one) and learns the port from its "listening
    /// on" line.
    fn spawn_once(&mut self) -> Result<(), ExitStatus> {
        assert!(self.child.is_none(), "server is still running");
        self.starts += 1;
        let listen = "127.0.0.1:0";
        self.log_line(format!(
            "---- test harness: start #{} of {FRESHET_BIN} --listen {listen} --data-dir {} {}----",
            self.starts,
            self.data_dir.display(),
            self.args
                .iter()
                .map(|a| format!("{a} "))
                .collect::<String>()
        ));
        let mut child = Command::new(FRESHET_BIN)
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
            .unwrap_or_else(|e| panic!("spawn {FRESHET_BIN}: {e}"));
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
    /// port from that line; `Err` if the process exited first.
    fn wait_ready(&mut self, from: usize) -> Result<(), ExitStatus> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                // Let the pump threads collect the last lines.
                thread::sleep(Duration::from_millis(100));
                return Err(status);
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
                panic!(
                    "freshet did not log that it is listening within {STARTUP_TIMEOUT:?}\n{}",
                    self.logs()
                );
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

/// Run a simple-protocol query and return its rows as optional strings
/// (text format, NULL as `None`). Panics on error.
pub async fn simple_rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple query {sql:?} failed: {e:?}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The single value of a one-row, one-column simple query.
pub async fn simple_scalar(client: &Client, sql: &str) -> Option<String> {
    let rows = simple_rows(client, sql).await;
    assert_eq!(
        rows.len(),
        1,
        "{sql:?} returned {} rows: {rows:?}",
        rows.len()
    );
    assert_eq!(
        rows[0].len(),
        1,
        "{sql:?} returned {} columns",
        rows[0].len()
    );
    rows[0][0].clone()
}

/// Escape a string for use inside a standard SQL string literal.
pub fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------
// Raw protocol bytes (for tests that misbehave on purpose).
// ---------------------------------------------------------------------------

/// A protocol 3.0 StartupMessage for user/database `freshet`.
pub fn startup_message() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608i32.to_be_bytes()); // protocol 3.0
    for s in ["user", "freshet", "database", "freshet"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// A typed frontend message: tag, length (including itself), body.
pub fn frontend_message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![tag];
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

/// A simple-protocol Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frontend_message(b'Q', &body)
}

/// Read one backend message (tag, body).
pub async fn read_backend_message(
    stream: &mut tokio::net::TcpStream,
) -> std::io::Result<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).await?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    assert!(
        (4..(64 << 20)).contains(&len),
        "bad backend message length {len}"
    );
    let mut body = vec![0u8; len as usize - 4];
    stream.read_exact(&mut body).await?;
    Ok((head[0], body))
}

/// Open a raw connection and complete the start-up handshake (no password),
/// returning the stream positioned after the first ReadyForQuery.
pub async fn raw_session(port: u16) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("raw connect");
    s.write_all(&startup_message()).await.unwrap();
    let deadline = Duration::from_secs(10);
    tokio::time::timeout(deadline, async {
        loop {
            let (tag, body) = read_backend_message(&mut s)
                .await
                .expect("read during handshake");
            match tag {
                b'R' => {
                    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    match code {
                        0 => {}
                        3 => {
                            // Cleartext password requested: send an empty one.
                            s.write_all(&frontend_message(b'p', b"\0")).await.unwrap();
                        }
                        other => panic!("unsupported authentication request {other}"),
                    }
                }
                b'E' => panic!("error during handshake: {}", String::from_utf8_lossy(&body)),
                b'Z' => break,
                _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
            }
        }
    })
    .await
    .expect("handshake did not finish within 10 s");
    s
}

/// Deterministic pseudo-random bytes (no external RNG needed).
pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Run one statement through the simple protocol and return the row count of
/// its CommandComplete. Panics on error.
pub async fn simple_exec(client: &Client, sql: &str) -> u64 {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("simple query {sql:?} failed: {e:?}"));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(n),
            _ => None,
        })
        .last()
        .unwrap_or_else(|| panic!("no CommandComplete for {sql:?}"))
}
