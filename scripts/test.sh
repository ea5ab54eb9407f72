#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a passing test suite:
# installs what is missing, builds, runs every test (C++ unit, golden and
# end-to-end tests against the real daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/install-client-deps.sh
scripts/build.sh build
ctest --test-dir build --output-on-failure -j "${TBLOG_JOBS:-2}" --timeout 600
