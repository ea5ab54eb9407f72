#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a running daemon:
# installs what is missing, builds, and starts tblogd on ./logs (TCP
# 127.0.0.1:6066). Extra arguments go to tblogd, e.g. --listen 0.0.0.0:6066.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
mkdir -p logs
exec build/server/daemon/tblogd --logdir ./logs "$@"
