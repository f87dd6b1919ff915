#!/usr/bin/env bash
# Installs what the test run needs beyond the Rust toolchain itself, on a clean
# Debian machine (as root) or a developer's. Idempotent: every step is skipped when
# what it installs is already there and current. Quiet on success; on failure the
# failing step's output is printed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'install-test-deps: %s\n' "$*" >&2; }

# Runs a command, showing its output only if it fails.
quiet() {
    local out
    if ! out="$("$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        say "failed: $*"
        return 1
    fi
}

# --- Node test dependencies (tests/js) --------------------------------------
# `npm ci` only when node_modules is missing or package-lock.json changed since
# the last install (a stamp inside node_modules holds the lock file's hash).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "node (>= 20) and npm are required for tests/js"
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    say "node >= 20 is required for tests/js, found $(node --version)"
    exit 1
fi
JS_DIR="$ROOT/tests/js"
STAMP="$JS_DIR/node_modules/.swarmcast-lock-sha256"
lock_hash="$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$JS_DIR/node_modules" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$lock_hash" ]; then
    (cd "$JS_DIR" && quiet npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$lock_hash" >"$STAMP"
fi

# --- Python test requirements (tests/python) ---------------------------------
# Into the project's virtualenv (.venv, scripts/python-env.sh), never the system
# Python (which may refuse: PEP 668). Creates it (apt-get python3-venv if needed), then
# installs tests/python/requirements.txt only when it changed since the last install.
# shellcheck source=python-env.sh
source "$ROOT/scripts/python-env.sh"
venv_ensure
venv_requirements "$ROOT/tests/python/requirements.txt"

# --- rustfmt and clippy ------------------------------------------------------
if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup component list --installed 2>/dev/null || true)"
    missing=()
    for component in rustfmt clippy; do
        grep -q "^${component}-" <<<"$installed" || missing+=("$component")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        quiet rustup component add "${missing[@]}"
    fi
elif ! command -v rustfmt >/dev/null 2>&1 || ! command -v cargo-clippy >/dev/null 2>&1; then
    say "rustfmt and clippy are missing and there is no rustup to install them"
    exit 1
fi

# --- cbindgen ----------------------------------------------------------------
# cbindgen generates include/swarmcast.h; the header drift check needs this exact
# version (another version may format the header differently).
CBINDGEN_VERSION=0.29.4
if [ "$(cbindgen --version 2>/dev/null || true)" != "cbindgen ${CBINDGEN_VERSION}" ]; then
    quiet cargo install cbindgen --version "=${CBINDGEN_VERSION}" --locked
fi

# --- redis-server (cluster tests) ---------------------------------------------
# The cluster tests (tests/cluster.rs, tests/js/cluster.test.mjs) start their own
# redis-server on a free loopback port and stop it afterwards; they only need the
# binary. apt-get update runs only when the package is not known yet.
if ! command -v redis-server >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        install_redis() {
            env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
        }
        # Update the package lists only when the package is unknown, or when installing
        # from the lists we have fails (they may be stale).
        if ! apt-cache show redis-server >/dev/null 2>&1 || ! quiet install_redis; then
            quiet apt-get update
            quiet install_redis
        fi
    else
        say "redis-server is required for the cluster tests and there is no apt-get to install it"
        exit 1
    fi
fi

# --- headless chromium and playwright-core (tests/e2e, the browser tests) -------------
# Debian's chromium, driven by playwright-core from npm with executablePath: no browser
# download (never `npx playwright install`). apt-get update only when needed.
if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
        install_chromium() {
            env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
        }
        if ! apt-cache show chromium >/dev/null 2>&1 || ! quiet install_chromium; then
            quiet apt-get update
            quiet install_chromium
        fi
    else
        say "chromium (/usr/bin/chromium) is required for tests/e2e and there is no apt-get to install it"
        exit 1
    fi
fi
E2E_DIR="$ROOT/tests/e2e"
E2E_STAMP="$E2E_DIR/node_modules/.swarmcast-lock-sha256"
e2e_lock_hash="$(sha256sum "$E2E_DIR/package-lock.json" | cut -d' ' -f1)"
if [ ! -d "$E2E_DIR/node_modules" ] || [ "$(cat "$E2E_STAMP" 2>/dev/null || true)" != "$e2e_lock_hash" ]; then
    (cd "$E2E_DIR" && quiet npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$e2e_lock_hash" >"$E2E_STAMP"
fi
