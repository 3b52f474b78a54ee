#!/usr/bin/env bash
# Runs the Python client's tests (pytest) against a real sessiond.
#
#   Clients/python/run-tests.sh [SESSIOND_BIN] [pytest arguments...]
#
# SESSIOND_BIN is the first argument (when it does not start with '-') or the
# environment variable, e.g. "$(swift build --show-bin-path)/sessiond".
# Installs the package (editable) and pytest into a virtual environment,
# Clients/python/.venv (or $SESSIONCLIENT_VENV), that reuses what the system
# Python already has (--system-site-packages: protobuf from
# scripts/install-deps.sh, pytest if present); pip fetches only what is
# missing. Without the venv module it falls back to the system Python and
# PYTHONPATH=src.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

bin="${SESSIOND_BIN:-}"
if [[ $# -gt 0 && "${1:0:1}" != "-" ]]; then
  bin="$1"
  shift
fi
if [[ -z "$bin" ]]; then
  echo "usage: $0 SESSIOND_BIN [pytest args...]   (or set SESSIOND_BIN)" >&2
  exit 64
fi
if [[ ! -x "$bin" ]]; then
  echo "$0: $bin is not an executable sessiond" >&2
  exit 64
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

python="${PYTHON:-python3}"
venv="${SESSIONCLIENT_VENV:-$here/.venv}"
pip_quiet=(-q --disable-pip-version-check)

if [[ -x "$venv/bin/python" ]] || "$python" -m venv --system-site-packages "$venv" >/dev/null 2>&1; then
  py="$venv/bin/python"
  stamp="$venv/.sessionclient-installed"
  want="$(cat "$here/pyproject.toml" | cksum)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! "$py" -c "import sessionclient, pytest, google.protobuf" 2>/dev/null; then
    echo "[python client] installing the package into $venv" >&2
    # A local setuptools that can build an editable wheel (>= 70.1, or >= 64
    # with the wheel package) needs no download: build isolation off.
    if "$py" - 2>/dev/null <<'PY'
import sys, setuptools
v = tuple(int(x) for x in setuptools.__version__.split(".")[:2])
try:
    import wheel  # noqa: F401
    has_wheel = True
except ImportError:
    has_wheel = False
sys.exit(0 if v >= (70, 1) or (v >= (64, 0) and has_wheel) else 1)
PY
    then
      "$py" -m pip install "${pip_quiet[@]}" --no-build-isolation -e "$here[test]"
    else
      "$py" -m pip install "${pip_quiet[@]}" -e "$here[test]"
    fi
    echo "$want" > "$stamp"
  fi
else
  echo "[python client] no venv module: using $python with PYTHONPATH=src" >&2
  py="$python"
  if ! "$py" -c "import google.protobuf, pytest" 2>/dev/null; then
    "$py" -m pip install "${pip_quiet[@]}" "protobuf>=4.21,<8" "pytest>=7" 2>/dev/null \
      || "$py" -m pip install "${pip_quiet[@]}" --break-system-packages "protobuf>=4.21,<8" "pytest>=7"
  fi
  export PYTHONPATH="$here/src${PYTHONPATH:+:$PYTHONPATH}"
fi

cd "$here"
SESSIOND_BIN="$bin" exec "$py" -m pytest -p no:cacheprovider -p no:benchmark "$here/tests" "$@"
