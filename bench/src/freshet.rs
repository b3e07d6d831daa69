//! Which Freshet binary to benchmark. The server itself is started by the
//! test kit's harness (`freshet_sqllogictest::harness::Server`), the same
//! one the integration tests use: a free loopback port, a fresh temporary
//! data directory, killed when dropped.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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
