#!/usr/bin/env bash
# The test command: formatting, lints, then every test of the workspace (unit, property, vector,
# CLI and interoperability tests; benchmarks run once each as smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
