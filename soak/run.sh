#!/usr/bin/env bash
# Soak test: mixed load through the release proxy for SOAK_SECONDS (default
# 600) while tokens are revoked and the fake Keystone and upstream are
# restarted; reports requests made / failed with a clear error / lost, and
# the proxy's fd and memory growth. Exit status 0 = PASS. See soak/README.md.
#
#   bash soak/run.sh                     # the full 10-minute soak
#   SOAK_SECONDS=20 bash soak/run.sh     # CI smoke (about 1.5 minutes with a warm build)
#
# Needs only Rust (cargo) and Linux (/proc); everything else (the fake
# Keystone, the fake upstream, the load) is examples/soak/. Other knobs:
# SOAK_SEED (replay a run's random choices), SOAK_RATE (small/slow GETs per
# second, default 300), SOAK_TOKEN_LIFETIME (seconds, default 120),
# SOAK_RUST_LOG (the proxy's RUST_LOG, default info), SOAK_DIR (where the
# config, the proxy's JSON log and summary.md go; default target/soak).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building (release): keystone-proxy and examples/soak" >&2
cargo build --release --quiet --bin keystone-proxy --example soak

export SOAK_SECONDS=${SOAK_SECONDS:-600}
export SOAK_PROXY=${SOAK_PROXY:-target/release/keystone-proxy}
export SOAK_DIR=${SOAK_DIR:-target/soak}
echo "== soak: ${SOAK_SECONDS} s" >&2
exec target/release/examples/soak
