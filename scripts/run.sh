#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a running daemon:
# installs what is missing, builds tblogd (only what it needs, not the tests
# or benchmarks), and starts it on ./logs (TCP 127.0.0.1:6066). Extra
# arguments go to tblogd, e.g. --listen 0.0.0.0:6066.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --daemon
TBLOG_TARGETS=tblogd scripts/build.sh build -DTBLOG_BUILD_TESTS=OFF -DTBLOG_BUILD_BENCHMARKS=OFF
mkdir -p logs
exec build/server/daemon/tblogd --logdir ./logs "$@"
