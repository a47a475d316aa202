#!/usr/bin/env bash
# The test command: installs what the tests need if anything is missing (scripts/setup.sh --test,
# a few seconds when nothing is), then formatting, lints, and every test of the workspace (unit,
# property, vector, CLI and interoperability tests; benchmarks run once each as smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
