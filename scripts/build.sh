#!/usr/bin/env bash
# Configures and builds tblog out of tree. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
# Environment: TBLOG_JOBS (default 2), CMAKE_BUILD_TYPE (default RelWithDebInfo).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@"
fi
cmake --build "$build_dir" -j "${TBLOG_JOBS:-2}"
