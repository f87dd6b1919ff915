#!/usr/bin/env bash
# A small Flask route served by swarmcast (Server.mount_wsgi), Werkzeug (threaded) and
# gunicorn (gthread, 1 worker, 8 threads), each pinned to core 0, loaded by wrk on
# core 1 (16 connections, 8 s), three interleaved rounds. Prints requests/s and latency
# percentiles (docs/performance.md). Needs wrk (apt-get install wrk) and the project's
# .venv with a release build of swarmcast for numbers that mean something:
#   PATH="$PWD/.venv/bin:$PATH" MATURIN_PEP517_ARGS="--profile release" \
#       .venv/bin/python -m pip install --no-build-isolation --no-deps .
#   .venv/bin/python -m pip install gunicorn
#   bash benches/wsgi/run.sh
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/wsgi"
# WSGI_VENV: a venv with a release build of swarmcast, Flask and gunicorn (default .venv).
VENV="${WSGI_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
GUNICORN="$VENV/bin/gunicorn"
OUT="$ROOT/target/bench/wsgi"
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
measure() { # label, then the server command (its port is appended)
    local label=$1 port
    shift
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (cd "$HERE" && exec taskset -c 0 "$@" "$port" >"$OUT/$label.log" 2>&1) &
    local pid=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/hello" && break; sleep 0.1; done
    taskset -c 1 wrk -t1 -c16 -d8s --latency "http://127.0.0.1:$port/hello" >"$OUT/$label.wrk" 2>&1
    printf '%-14s %10s req/s  p50 %8s  p99 %8s\n' "$label" \
        "$(awk '/Requests\/sec/ {print $2}' "$OUT/$label.wrk")" \
        "$(awk '$1 == "50%" {print $2}' "$OUT/$label.wrk")" \
        "$(awk '$1 == "99%" {print $2}' "$OUT/$label.wrk")"
    pkill -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    pkill -f "benches/wsgi/serve_|gunicorn: " 2>/dev/null; sleep 0.5
}
for round in 1 2 3; do
    measure "swarmcast-$round" "$PY" "$HERE/serve_swarmcast.py"
    measure "werkzeug-$round" "$PY" "$HERE/serve_werkzeug.py"
    measure "gunicorn-$round" sh -c "exec '$GUNICORN' -w 1 -k gthread --threads 8 --log-level warning -b 127.0.0.1:\$0 app:app"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
