#!/usr/bin/env bash
# The project's whole test run, as CI runs it (.ci/run). Stops at the first
# failing stage. Run from anywhere: it works from the repository root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

stage() { printf '\n==> %s\n' "$*"; }

stage "install test dependencies"
bash scripts/install-test-deps.sh

stage "cargo fmt --all -- --check"
cargo fmt --all -- --check

stage "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

stage "cargo doc (warnings are errors)"
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --quiet

stage "cargo test --workspace"
cargo test --workspace

stage "cargo build --example e2e_server"
cargo build --example e2e_server

stage "node end-to-end tests against target/debug/examples/e2e_server"
SWARMCAST_TEST_SERVER=target/debug/examples/e2e_server \
    node --test --test-concurrency=1 tests/js/*.test.mjs

stage "all stages passed"
