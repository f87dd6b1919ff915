#!/usr/bin/env bash
# The SwarmBot demo: agents coordinated live on a Dash dashboard that swarmcast pushes
# to. Installs what it needs (idempotently), starts Dash on http://127.0.0.1:8050 with
# the swarmcast server beside it on 127.0.0.1:5000, and prints the URL. Ctrl-C stops
# the agents, swarmcast and Dash.
#
#   bash scripts/demo.sh                  # install if needed, then run
#   bash scripts/demo.sh --install-only   # only prepare the Python environment
#   bash scripts/demo.sh --port 8060 --realtime-port 5001 --task-rate 1.0   # app.py options
#
# Needs python3 (>= 3.10, with venv) and a Rust toolchain (cargo) to build swarmcast
# from this checkout; everything else comes from PyPI into a virtualenv
# ($SWARMBOT_VENV, default .venv). Set SWARMBOT_DASH to pin Dash (default "dash>=2.16,<5").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SWARMBOT_VENV:-$ROOT/.venv}"
DASH_SPEC="${SWARMBOT_DASH:-dash>=2.16,<5}"
say() { printf 'demo: %s\n' "$*" >&2; }

install_only=0
args=()
for arg in "$@"; do
    case "$arg" in
        --install-only) install_only=1 ;;
        *) args+=("$arg") ;;
    esac
done

# --- the virtualenv ------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    python_bin="${PYTHON:-python3}"
    command -v "$python_bin" >/dev/null 2>&1 || { say "python3 is required"; exit 1; }
    if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        say "python >= 3.10 is required, found $("$python_bin" --version 2>&1)"
        exit 1
    fi
    say "creating the virtualenv $VENV"
    "$python_bin" -m venv "$VENV" || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }
fi
PY="$VENV/bin/python"

# --- Dash -----------------------------------------------------------------------------
if ! "$PY" -c 'import dash, sys; sys.exit(tuple(map(int, dash.__version__.split(".")[:2])) < (2, 16))' 2>/dev/null; then
    say "installing $DASH_SPEC"
    "$PY" -m pip install --quiet --disable-pip-version-check "$DASH_SPEC"
fi

# --- swarmcast from this checkout, rebuilt only when its sources changed ----------------
source_hash() {
    (cd "$ROOT" && find Cargo.toml Cargo.lock pyproject.toml src bindings/python python \
        -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.so' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
STAMP="$VENV/.swarmcast-source-sha256"
hash="$(source_hash)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$hash" ] || ! "$PY" -c 'import swarmcast.dash' 2>/dev/null; then
    command -v cargo >/dev/null 2>&1 || { say "cargo (Rust) is required to build swarmcast: see https://rustup.rs"; exit 1; }
    say "building and installing swarmcast from $ROOT (a few minutes the first time)"
    "$PY" -m pip install --quiet --disable-pip-version-check "$ROOT"
    printf '%s\n' "$hash" >"$STAMP"
fi

if [ "$install_only" = 1 ]; then
    say "ready: $PY ($("$PY" -c 'import dash, swarmcast; print("dash", dash.__version__, "swarmcast", swarmcast.__version__)'))"
    exit 0
fi

# --- run ------------------------------------------------------------------------------
# The app runs as a child so that the trap can stop it: SIGTERM makes it stop the agents,
# the swarmcast server (server.stop()) and Dash. (A background child of a script ignores
# SIGINT, hence TERM.)
"$PY" "$ROOT/examples/swarmbot/app.py" ${args[@]+"${args[@]}"} &
app=$!
trap 'kill -TERM "$app" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$app" 2>/dev/null; do
    wait "$app" || status=$?
done
trap - INT TERM
exit "$status"
