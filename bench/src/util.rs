//! Small helpers shared by the benchmark drivers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read
/// the port, release it). The servers are started one after the other, so
/// the short race window is harmless here.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Quotes `s` for a POSIX shell, leaving plain words alone.
pub fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '_' | '-' | '.' | '/' | '=' | ':' | ',' | '+' | '@' | '%')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The exact command line this process was started with, shell-quoted.
pub fn command_line() -> String {
    std::env::args_os()
        .map(|a| sh_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `max_lines` lines of a (log) file, for error messages.
pub fn tail_file(path: &Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(max_lines);
            if lines.is_empty() {
                "<empty>".to_string()
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("<could not read {}: {e}>", path.display()),
    }
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Looks `name` up on `$PATH`, then in `extra_dirs`.
pub fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(extra_dirs.iter().map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Renders an error and all its sources on one line (`a: b: c`).
/// `tokio_postgres::Error`'s `Display` alone says only "db error".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The effective user id of this process (from /proc, falling back to `id -u`).
pub fn effective_uid() -> Option<u32> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            // "Uid:  real  effective  saved  fs"
            if let Some(uid) = line.split_whitespace().nth(2).and_then(|s| s.parse().ok()) {
                return Some(uid);
            }
        }
    }
    let out = std::process::Command::new("id").arg("-u").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The value at quantile `q` (0..=1) of `sorted` (ascending), by nearest
/// rank: the smallest value with at least a fraction `q` of all values at or
/// below it. `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// Latency samples, kept sorted (the sample counts here are small).
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    sorted_ns: Vec<u64>,
}

impl Latencies {
    pub fn push(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let at = self.sorted_ns.partition_point(|&x| x <= ns);
        self.sorted_ns.insert(at, ns);
    }

    pub fn len(&self) -> usize {
        self.sorted_ns.len()
    }

    /// The latency at quantile `q` (0..=1); see [`percentile`].
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        percentile(&self.sorted_ns, q).map(Duration::from_nanos)
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted_ns.last().copied().map(Duration::from_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7u64], 0.99), Some(7));
        assert_eq!(percentile::<u64>(&[], 0.5), None);
        // Five samples: p50 is the third.
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 0.5), Some(3));
    }

    #[test]
    fn latencies_stay_sorted() {
        let mut l = Latencies::default();
        assert_eq!(l.percentile(0.5), None);
        assert_eq!(l.max(), None);
        for ms in [5u64, 1, 4, 2, 3, 3] {
            l.push(Duration::from_millis(ms));
        }
        assert_eq!(l.len(), 6);
        assert_eq!(l.percentile(0.5), Some(Duration::from_millis(3)));
        assert_eq!(l.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(l.max(), Some(Duration::from_millis(5)));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc/def-1.2"), "abc/def-1.2");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
