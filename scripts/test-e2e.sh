#!/usr/bin/env bash
# Browser end-to-end tests (tests/e2e): the SwarmBot demo in Debian's headless chromium,
# driven by playwright-core. Prepares the Python environment with scripts/demo.sh
# --install-only (swarmcast from this checkout + Dash in the project's .venv, the one
# scripts/test.sh uses) unless SWARMBOT_PYTHON names an interpreter that already has
# both. Run scripts/install-test-deps.sh first (scripts/test.sh does).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${SWARMBOT_PYTHON:-}" ]; then
    bash scripts/demo.sh --install-only
    # shellcheck source=python-env.sh
    source scripts/python-env.sh
    export SWARMBOT_PYTHON="$VENV_PY"
fi
"$SWARMBOT_PYTHON" tests/e2e/check_dash.py
node --test --test-concurrency=1 tests/e2e/*.test.mjs
