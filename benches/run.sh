#!/usr/bin/env bash
# swarmcast's load benchmarks, every server in one run (docs/performance.md).
#
#   bash benches/run.sh                      # everything (about 15 minutes)
#   bash benches/run.sh --quick              # smoke run: small N, short durations
#   bash benches/run.sh --servers swarmcast,node --scenarios latency,fanout
#   bash benches/run.sh --wait-quiet 20      # first wait (<= 20 min) for load < 0.5
#
# Installs and builds what it needs (idempotent): the load tool and the swarmcast server
# (cargo, release), the socketioxide peer (its own workspace and target directory), the
# Node socket.io peer (npm ci), a Python venv with Flask-SocketIO, gevent and matplotlib
# (pip, pinned), and a release wheel of the swarmcast Python package in that venv (for
# the polling burst and the Python emit cost). Then benches/bench.py measures the kernel's
# write() floor on this machine (swarmcast-write-floor), runs each server pinned to
# core 0 and the load tool pinned to core 1 (taskset) — the fan-out includes the
# back-to-back producer paced only by the library's backpressure — and the 8 x 2,000
# polling burst to python-socketio; prints the tables (server CPU per delivery and the
# load tool's own CPU beside every row), writes target/bench/results.json and draws
# docs/images/*.png.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/bench"
mkdir -p "$OUT"

step() { printf '\n==> %s\n' "$*"; }

# File descriptors: as many as the hard limit allows, for every process started here.
ulimit -n "$(ulimit -Hn)" || true

step "cargo build --release -p swarmcast-bench"
cargo build --release -p swarmcast-bench

step "socketioxide peer (tools/peers/socketioxide-server)"
cargo build --release --manifest-path tools/peers/socketioxide-server/Cargo.toml \
    --target-dir "$OUT/socketioxide-target"

step "Node socket.io peer (tools/peers/node)"
NODE_DIR=tools/peers/node
if [ ! -f "$NODE_DIR/node_modules/.package-lock.json" ] ||
    ! cmp -s "$NODE_DIR/package-lock.json" "$OUT/node-lock.stamp"; then
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
    cp "$NODE_DIR/package-lock.json" "$OUT/node-lock.stamp"
else
    echo "up to date"
fi

step "Python venv (Flask-SocketIO peer, matplotlib)"
BENCH_VENV="$OUT/venv"
if [ ! -x "$BENCH_VENV/bin/python" ]; then
    python3 -m venv "$BENCH_VENV"
fi
REQS="benches/requirements.txt tools/peers/flask/requirements.txt"
if ! cat $REQS | cmp -s - "$OUT/venv.stamp"; then
    "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check -r benches/requirements.txt
    cat $REQS > "$OUT/venv.stamp"
else
    echo "up to date"
fi

step "swarmcast Python package: a release wheel in the bench venv (polling burst, Python emit cost)"
# maturin comes from the project's .venv (a pinned test requirement); the package the
# tests install there is a dev-profile build, so the benchmarks install their own.
# shellcheck source=../scripts/python-env.sh
source scripts/python-env.sh
venv_ensure && venv_requirements tests/python/requirements.txt
rm -f "$OUT"/wheels/swarmcast-*.whl
PATH="$ROOT/.venv/bin:$PATH" "$ROOT/.venv/bin/maturin" build --release \
    --interpreter "$BENCH_VENV/bin/python" --out "$OUT/wheels"
"$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    "$OUT"/wheels/swarmcast-*.whl

for tool in taskset node; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

step "benchmarks"
exec "$BENCH_VENV/bin/python" benches/bench.py "$@"
