#!/usr/bin/env bash
# Starts sessiond: installs missing system packages, builds (release), runs it.
# Any arguments go to sessiond (see `scripts/run.sh --help`). Defaults: listens on
# 127.0.0.1:7411 and keeps its data in ./sessiond-data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "[run] building sessiond and sessionctl (release; the first build takes a few minutes)" >&2
swift build -c release --product sessiond >&2
swift build -c release --product sessionctl >&2
BIN=$(swift build -c release --show-bin-path)
echo "[run] sessionctl is at $BIN/sessionctl" >&2
exec "$BIN/sessiond" "$@"
