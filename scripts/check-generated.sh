#!/usr/bin/env bash
# Fails when the committed generated code differs from what scripts/generate.py
# writes from Protos/ now.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/generate.py >/dev/null
paths=(Sources/RPCProtoC Sources/SessionProtoC Sources/RPC/Generated Sources/SessionAPI/Generated Clients/SessionClient/Generated)
if ! git diff --quiet -- "${paths[@]}" || [[ -n "$(git ls-files --others --exclude-standard -- "${paths[@]}")" ]]; then
  echo "generated code is stale: run scripts/generate.py and commit the result" >&2
  git status --short -- "${paths[@]}" >&2
  exit 1
fi
echo "[check-generated] generated code is current" >&2
Clients/python/check-generated.sh
