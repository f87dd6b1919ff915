#!/usr/bin/env bash
# Runs the official Engine.IO v4 and Socket.IO v5 protocol suites (../shared/conformance,
# beside the project root) against examples/rust/conformance_server.rs. Starts the server
# on a free loopback port, runs the suites, stops the server. Exit 0 only at 57/57.
#   bash scripts/conformance.sh [RUNS]     (RUNS: how many times in a row, default 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SUITES_DIR="$ROOT/../shared/conformance"
SERVER="${SWARMCAST_CONFORMANCE_SERVER:-target/debug/examples/conformance_server}"
RUNS="${1:-1}"

if [ ! -x "$SERVER" ]; then
    cargo build --example conformance_server --features swarmcast/redis
fi
if [ ! -f "$SUITES_DIR/run-suites.sh" ]; then
    echo "conformance: $SUITES_DIR/run-suites.sh not found" >&2
    exit 1
fi

failed=0
for run in $(seq 1 "$RUNS"); do
    log="$(mktemp)"
    "$SERVER" --port 0 >"$log" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$log")"
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "conformance: the server did not start" >&2
        cat "$log" >&2
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    # The suites' npm installs and logs go to target/conformance (../shared is read-only).
    if ! WORK="$ROOT/target/conformance" bash "$SUITES_DIR/run-suites.sh" "$port" \
        >"$ROOT/target/conformance-run.log" 2>&1; then
        failed=$((failed + 1))
        grep -E '^\s+[0-9]+\) |Error|expected' "$ROOT/target/conformance-run.log" | head -40 >&2 || true
    fi
    echo "conformance run $run/$RUNS: $(tail -1 "$ROOT/target/conformance-run.log")"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$log"
done
[ "$failed" -eq 0 ]
