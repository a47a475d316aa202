#!/usr/bin/env bash
# Installs what m2msec needs to build and test on a fresh Debian 12 machine with a Rust toolchain:
# a C toolchain and perl/make for the vendored OpenSSL build, the independent TLS peers used by the
# interoperability tests (OpenSSL and GnuTLS command-line tools, libcoap's coap-client), and a
# Python venv for the Python test peers. Safe to run again. Needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(build-essential pkg-config perl make libssl-dev openssl gnutls-bin libcoap3-bin python3-venv)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python test peers live in .venv (not committed).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ -f scripts/requirements-test.txt ]; then
  .venv/bin/pip install -q -r scripts/requirements-test.txt
fi
echo "setup: ok"
