//! A real Kafka-protocol broker for tests and benchmarks: `tansu` (found
//! on `PATH`; `test.sh` and `.ci/run` install it), started on a free
//! loopback port with in-memory storage and killed when dropped. Its
//! output is kept and printed if a test panics while it is alive.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running `tansu broker`.
pub struct Broker {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// Starts a broker; panics with a clear message when `tansu` is not on
    /// `PATH` or does not come up.
    pub fn start() -> Broker {
        let mut last = String::new();
        for _ in 0..5 {
            // A port the kernel just handed out and we let go of.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            match Broker::try_start(port) {
                Ok(b) => return b,
                Err(e) => last = e,
            }
        }
        panic!("the test broker did not start: {last}");
    }

    fn try_start(port: u16) -> Result<Broker, String> {
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new("tansu")
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `tansu` ({e}): the Kafka tests need the tansu broker on PATH \
                     (`cargo install tansu --features dynostore`; test.sh installs it)"
                )
            })?;
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
                return Err(format!("tansu exited with {status}:\n{log}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Broker { child, port, log });
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        Err("tansu did not listen within 20 s".into())
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- test broker output ----\n{}", self.logs());
        }
    }
}
