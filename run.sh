#!/usr/bin/env bash
# Builds (once) and starts the Freshet server. Arguments go to `freshet`,
# e.g. `./run.sh --listen 127.0.0.1:5477 --data-dir ./freshet-data`.
set -euo pipefail
cd "$(dirname "$0")"
if [ -z "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/freshet-target}"
# Build the whole workspace (not `-p freshet-server`): selecting one package
# changes dependency features and would build RocksDB a second time.
cargo build --release --quiet --workspace --bins
exec "$CARGO_TARGET_DIR/release/freshet" "$@"
