#!/usr/bin/env bash
# Exits non-zero when the checked-in generated code of the Python client
# (src/sessionclient/generated/) differs from what generate.sh writes from
# Protos/ now. Compares files, not git state, so it works on uncommitted trees.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
committed="$here/src/sessionclient/generated"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
GENERATE_QUIET=1 "$here/generate.sh" "$tmp/generated"
if ! diff -r -x __pycache__ "$committed" "$tmp/generated" > "$tmp/diff"; then
  echo "Python client's generated code is stale: run Clients/python/generate.sh and commit the result" >&2
  head -n 40 "$tmp/diff" >&2
  exit 1
fi
echo "[check-generated] Python client's generated code is current" >&2
