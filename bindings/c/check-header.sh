#!/usr/bin/env bash
# Header drift check: regenerate include/swarmcast.h with the pinned cbindgen into a
# temporary file and fail (showing the diff) if the committed header differs, i.e.
# when a Rust signature or doc comment changed without `bash bindings/c/generate-header.sh`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp --suffix=.h)"
trap 'rm -f "$tmp"' EXIT
bash "$ROOT/bindings/c/generate-header.sh" "$tmp"
if ! diff -u "$ROOT/include/swarmcast.h" "$tmp"; then
    echo "include/swarmcast.h is stale: run bash bindings/c/generate-header.sh and commit it" >&2
    exit 1
fi
echo "include/swarmcast.h is up to date"
