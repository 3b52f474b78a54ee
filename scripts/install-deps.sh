#!/usr/bin/env bash
# Installs the system packages the project needs, only if something is missing.
#   --with-test-tools   also what the tests need (protoc for golden vectors, Python's
#                       protobuf for the generated-code check, a PostgreSQL server)
set -euo pipefail

want_tests=0
[[ "${1:-}" == "--with-test-tools" ]] && want_tests=1

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in libprotobuf-c-dev libsqlite3-dev libpq-dev libssl-dev pkg-config; do
  have_pkg "$pkg" || missing+=("$pkg")
done
if [[ $want_tests == 1 ]]; then
  for pkg in protobuf-c-compiler protobuf-compiler libprotobuf-dev postgresql; do
    have_pkg "$pkg" || missing+=("$pkg")
  done
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "[deps] installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ $want_tests == 1 ]]; then
  if ! python3 -c "import google.protobuf" 2>/dev/null; then
    echo "[deps] installing Python's protobuf (for scripts/generate.py)" >&2
    python3 -m pip install -q protobuf 2>/dev/null || python3 -m pip install -q --break-system-packages protobuf
  fi
fi
