#!/usr/bin/env bash
# Regenerate include/swarmcast.h (or write to the path given as $1) with the pinned
# cbindgen (scripts/install-test-deps.sh installs it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/include/swarmcast.h}"
WANT="$(sed -n 's/^CBINDGEN_VERSION=//p' "$ROOT/scripts/install-test-deps.sh")"
HAVE="$(cbindgen --version 2>/dev/null || true)"
if [ "$HAVE" != "cbindgen $WANT" ]; then
    echo "need cbindgen $WANT (have: ${HAVE:-none}); run scripts/install-test-deps.sh" >&2
    exit 1
fi
cd "$ROOT"
# -q: cbindgen's notes about skipped private items are not problems.
cbindgen --quiet --config bindings/c/cbindgen.toml --crate swarmcast-c --output "$OUT" bindings/c
