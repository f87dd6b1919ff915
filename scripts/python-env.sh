# The project's Python environment: one virtualenv (.venv at the repository root,
# gitignored; $SWARMCAST_VENV elsewhere) that the test run, the browser tests and the
# demo share. Nothing is ever installed into the system Python, so a Python that
# refuses `pip install` (PEP 668 "externally managed", Debian and Ubuntu) is fine.
#
# Sourced, not run: `source scripts/python-env.sh`, then
#   venv_ensure                      create .venv if needed (apt-get python3-venv as root)
#   venv_requirements FILE           pip install -r FILE, only when it changed
#   venv_maturin                     only maturin, at the version FILE pins (the demo)
#   venv_swarmcast                   build and install swarmcast from this checkout, only
#                                    when its sources changed
# and run Python as "$VENV_PY". Every step is idempotent and quiet on success.

# shellcheck shell=bash
SWARMCAST_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SWARMCAST_VENV:-${SWARMBOT_VENV:-$SWARMCAST_ROOT/.venv}}"
VENV_PY="$VENV/bin/python"

_venv_say() { printf 'python-env: %s\n' "$*" >&2; }

# Runs a command, showing its output only if it fails.
_venv_quiet() {
    local out
    if ! out="$("$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        _venv_say "failed: $*"
        return 1
    fi
}

# The interpreter the virtualenv is made from: $PYTHON, else python3 (>= 3.10).
_venv_base_python() {
    local py="${PYTHON:-python3}"
    if ! command -v "$py" >/dev/null 2>&1; then
        _venv_say "python3 (>= 3.10) is required"
        return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        _venv_say "python >= 3.10 is required, found $("$py" --version 2>&1)"
        return 1
    fi
    printf '%s\n' "$py"
}

# Debian and Ubuntu ship venv's pip bootstrap (ensurepip) apart, in python3.X-venv:
# install the package matching the interpreter when it is missing (as root, with
# apt-get; apt-get update only when installing from the current lists fails).
_venv_ensurepip() {
    local py="$1" minor pkg
    "$py" -c 'import ensurepip, venv' >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        _venv_say "$py has no venv/ensurepip; install it (Debian/Ubuntu: apt-get install python3-venv)"
        return 1
    fi
    minor="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    pkg="python${minor}-venv"
    apt-cache show "$pkg" >/dev/null 2>&1 || pkg=python3-venv
    _venv_say "installing $pkg (apt-get)"
    if ! _venv_quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg"; then
        _venv_quiet apt-get update
        _venv_quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg"
    fi
}

venv_ensure() {
    # A usable venv has a working interpreter with pip (a venv whose base interpreter
    # went away, or a half-made one, is made again).
    if [ -x "$VENV_PY" ] && "$VENV_PY" -m pip --version >/dev/null 2>&1; then
        return 0
    fi
    local py
    py="$(_venv_base_python)" || return 1
    _venv_ensurepip "$py" || return 1
    _venv_say "creating the virtualenv $VENV"
    _venv_quiet "$py" -m venv --clear "$VENV"
}

# A stamp file inside the venv holds the hash of what was installed last.
_venv_stamp_ok() { [ "$(cat "$VENV/$1" 2>/dev/null || true)" = "$2" ]; }

# One stamp per requirements file (named after its path), so that different sets do
# not undo each other's stamps. A file that includes others (-r) is hashed alone.
venv_requirements() {
    local file="$1" hash stamp
    hash="$(sha256sum "$file" | cut -d' ' -f1)"
    stamp=".swarmcast-requirements-$(realpath --relative-to="$SWARMCAST_ROOT" "$file" | tr '/' '_').sha256"
    _venv_stamp_ok "$stamp" "$hash" && return 0
    _venv_say "installing $(realpath --relative-to="$SWARMCAST_ROOT" "$file") into $VENV"
    _venv_quiet "$VENV_PY" -m pip install --disable-pip-version-check --no-input -q -r "$file"
    printf '%s\n' "$hash" >"$VENV/$stamp"
}

# The build backend alone, at the version tests/python/requirements.txt pins (one pin
# for the demo and the tests).
venv_maturin() {
    local pin
    pin="$(grep -E '^maturin==' "$SWARMCAST_ROOT/tests/python/requirements.txt")"
    [ "$("$VENV_PY" -c 'import importlib.metadata as m; print("maturin==" + m.version("maturin"))' 2>/dev/null)" = "$pin" ] && return 0
    _venv_say "installing $pin into $VENV"
    _venv_quiet "$VENV_PY" -m pip install --disable-pip-version-check --no-input -q "$pin"
}

# What the installed package is built from. The profile and the interpreter are part of it.
_venv_source_hash() {
    {
        (cd "$SWARMCAST_ROOT" && find Cargo.toml Cargo.lock pyproject.toml src bindings/python python \
            -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.so' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum)
        printf 'profile dev\n'
        "$VENV_PY" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

# swarmcast from this checkout, in the dev profile and the shared target/ directory
# (no build isolation: the venv's maturin, pinned in tests/python/requirements.txt,
# drives cargo), so the test run builds one profile only. Skipped when the sources did
# not change since the last install and the package imports.
venv_swarmcast() {
    local hash
    hash="$(_venv_source_hash)"
    if _venv_stamp_ok .swarmcast-source-sha256 "$hash" && "$VENV_PY" -c 'import swarmcast._native' 2>/dev/null; then
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || { _venv_say "cargo (Rust) is required to build swarmcast: see https://rustup.rs"; return 1; }
    "$VENV_PY" -c 'import maturin' 2>/dev/null || {
        _venv_say "maturin is missing from $VENV (venv_maturin installs it)"
        return 1
    }
    _venv_say "building swarmcast (dev profile) and installing it into $VENV"
    # The venv's bin/ first on PATH: the maturin build backend runs `maturin` from PATH.
    (cd "$SWARMCAST_ROOT" && PATH="$VENV/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" "$VENV_PY" -m pip install \
        --disable-pip-version-check --no-input --no-build-isolation --no-deps -q .) || return 1
    printf '%s\n' "$hash" >"$VENV/.swarmcast-source-sha256"
}
