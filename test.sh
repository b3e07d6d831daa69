#!/usr/bin/env bash
# Runs Freshet's whole test suite on a fresh Debian machine: installs the
# system packages and Python clients the tests use, then `cargo test`.
# Extra arguments go to `cargo test` (e.g. `./test.sh -p freshet-storage`).
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v psql >/dev/null || need_apt+=(postgresql-client)
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ] || need_apt+=(libclang-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

# The Kafka tests' broker: tansu (a Kafka-protocol broker), built once into
# a tools directory outside the clone and found on PATH (about 13 minutes
# on 2 cores the first time).
tools="${FRESHET_TOOLS_DIR:-$HOME/.cache/freshet-tools}"
export PATH="$tools/bin:$PATH"
if ! command -v tansu >/dev/null; then
  cargo install tansu --version 0.6.0 --features dynostore --locked --root "$tools"
fi

# Build artefacts live outside the clone so they survive fresh checkouts.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/freshet-target}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
