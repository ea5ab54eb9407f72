#!/usr/bin/env bash
# Configures and builds tblog out of tree. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
# Configures when BUILD_DIR has no cache yet or cmake args are given.
# Environment: TBLOG_JOBS (default 2), CMAKE_BUILD_TYPE (default RelWithDebInfo),
# TBLOG_TARGETS (space-separated targets to build; default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
shift || true
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f "$build_dir/CMakeCache.txt" || $# -gt 0 ]]; then
  cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@"
fi
targets=()
for t in ${TBLOG_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "${TBLOG_JOBS:-2}" "${targets[@]}"
