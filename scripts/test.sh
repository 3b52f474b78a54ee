#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, checks that the generated
# code is current, then builds and runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-test-tools
scripts/check-generated.sh
swift build --build-tests
swift test --skip-build "$@"
# The Python client (Clients/python) against the sessiond just built.
Clients/python/run-tests.sh "$(swift build --show-bin-path)/sessiond" -q
