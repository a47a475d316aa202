#!/usr/bin/env bash
# The test command: installs what the tests need if anything is missing (scripts/setup.sh --test,
# a few seconds when nothing is), then formatting, lints, a build check of the fuzz targets, and every test of the workspace (unit,
# property, vector, CLI and interoperability tests; benchmarks run once each as smoke tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
export PATH="$PWD/.venv/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets live outside the workspace (cargo-fuzz); make sure they still build against it.
cargo check --manifest-path fuzz/Cargo.toml --bins --locked
cargo test --workspace --all-targets --locked
