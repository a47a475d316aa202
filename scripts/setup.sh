#!/usr/bin/env bash
# Installs what is missing for m2msec on Debian 12 (or another apt-based system) with a Rust
# toolchain, and nothing else; run by ./scripts/demo.sh (--build) and ./scripts/test.sh (--test).
#
#   --build   C toolchain, perl, make, pkg-config: what the vendored OpenSSL and bundled SQLite
#             builds need (`cargo build`, `cargo run --release -- demo`).
#   --test    (default) --build, plus rustfmt and clippy, the independent test peers (OpenSSL,
#             GnuTLS and libcoap command-line tools), libssl-dev (single-crate test builds and
#             --no-default-features link the system OpenSSL) and the Python venv .venv with
#             scripts/requirements-test.txt.
#
# Idempotent and quick when nothing is missing (dpkg-query, `cargo fmt/clippy --version`, the venv's
# interpreter and a hash stamp of the requirements file; no network). Prints each thing before
# installing it. The last line is `setup: nothing to install` or `setup: installed: …`; on failure
# one line `setup: error: …` on stderr says what to install by hand, and the exit status is 1.
# Installing apt packages needs root, or sudo without a password prompt (`sudo -n`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The apt packages, by mode: edit these two lists only.
BUILD_PKGS=(build-essential perl make pkg-config)
TEST_PKGS=(libssl-dev openssl gnutls-bin libcoap3-bin python3-venv softhsm2)

REQUIREMENTS=scripts/requirements-test.txt
VENV=.venv
STAMP=$VENV/.requirements.sha256

die() {
  echo "setup: error: $*" >&2
  exit 1
}

mode="test"
case "${1:-}" in
  "" | --test) mode="test" ;;
  --build) mode="build" ;;
  *) die "unknown argument '$1' (usage: scripts/setup.sh [--build|--test])" ;;
esac

installed=()

# --- Rust: not installed here (rustup is the user's choice); components only via rustup.
if ! command -v cargo >/dev/null 2>&1; then
  die "cargo not found: install a Rust toolchain >= 1.80 (https://rustup.rs), then run '. ~/.cargo/env'"
fi
if [ "$mode" = test ]; then
  components=()
  cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
  if [ ${#components[@]} -gt 0 ]; then
    command -v rustup >/dev/null 2>&1 \
      || die "cargo ${components[*]} missing and no rustup: install the ${components[*]} component(s) of your toolchain by hand"
    echo "setup: installing Rust components: ${components[*]} (rustup component add)"
    rustup component add "${components[@]}" \
      || die "'rustup component add ${components[*]}' failed (no network?): run it by hand"
    installed+=("${components[@]}")
  fi
fi

# --- apt packages.
pkgs=("${BUILD_PKGS[@]}")
if [ "$mode" = test ]; then pkgs+=("${TEST_PKGS[@]}"); fi
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: warning: no dpkg/apt-get, cannot check system packages; make sure the equivalents of" \
    "these Debian packages are installed: ${pkgs[*]}" >&2
else
  # One dpkg-query for all; unknown packages print nothing on stdout. `dpkg -s` would also accept a
  # removed package whose configuration files remain.
  present=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${pkgs[@]}" 2>/dev/null || true)
  missing=()
  for p in "${pkgs[@]}"; do
    grep -qx "$p installed" <<<"$present" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    by_hand="install by hand as root: apt-get update && apt-get install -y ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
      else
        die "apt packages missing (${missing[*]}) and not root, no password-less sudo; $by_hand"
      fi
    fi
    echo "setup: installing apt packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq || die "'apt-get update' failed (no network?); $by_hand"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null || die "'apt-get install' failed (no network?); $by_hand"
    installed+=("${missing[@]}")
  fi
fi

# --- Python venv with the test peers (python-mbedtls); the stamp skips pip when unchanged.
if [ "$mode" = test ]; then
  if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    echo "setup: $VENV is broken (its interpreter does not run); recreating it"
    rm -rf -- "$VENV"
  fi
  if [ ! -e "$VENV" ]; then
    echo "setup: creating the Python venv $VENV"
    python3 -m venv "$VENV" || die "'python3 -m venv $VENV' failed; install python3-venv by hand"
    installed+=("$VENV")
  fi
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
    echo "setup: installing into $VENV: $(grep -v '^ *#' "$REQUIREMENTS" | xargs)"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" \
      || die "pip failed (no network?); run by hand: $VENV/bin/pip install -r $REQUIREMENTS"
    echo "$want" >"$STAMP"
    installed+=("$REQUIREMENTS")
  fi
fi

if [ ${#installed[@]} -eq 0 ]; then
  echo "setup: nothing to install"
else
  echo "setup: installed: ${installed[*]}"
fi
