#!/usr/bin/env bash
# The main command: installs the build prerequisites if any is missing (scripts/setup.sh --build),
# then builds and runs `m2msec demo` in release mode. Arguments go to `m2msec demo`
# (e.g. `./scripts/demo.sh --devices 50 --json`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --build >&2 # stdout stays the demo's own (--json)
exec cargo run --release --locked -- demo "$@"
