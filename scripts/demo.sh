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
# Needs python3 (>= 3.10; as root on Debian/Ubuntu, python3-venv is installed if
# missing) and a Rust toolchain (cargo) to build swarmcast from this checkout;
# everything else comes from PyPI into the project's virtualenv (.venv, shared with
# scripts/test.sh; $SWARMCAST_VENV elsewhere; see scripts/python-env.sh), never the
# system Python. Set SWARMBOT_DASH to pin Dash (default "dash>=2.16,<5").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
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
# shellcheck source=python-env.sh
source "$ROOT/scripts/python-env.sh"
venv_ensure
PY="$VENV_PY"

# --- Dash -----------------------------------------------------------------------------
if ! "$PY" -c 'import dash, sys; sys.exit(tuple(map(int, dash.__version__.split(".")[:2])) < (2, 16))' 2>/dev/null; then
    say "installing $DASH_SPEC"
    "$PY" -m pip install --quiet --disable-pip-version-check "$DASH_SPEC"
fi

# --- swarmcast from this checkout, rebuilt only when its sources changed ----------------
# The same build as the test run's (dev profile, target/, the pinned maturin), so the
# demo and the tests never rebuild for each other. A few minutes the first time.
venv_maturin
venv_swarmcast

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
