#!/usr/bin/env bash
# Builds tblog with clang-14 sanitizers and runs the C++ tests under them.
# Usage: scripts/sanitize.sh [asan|tsan|thread-safety|all]   (default: all)
#   asan: build-asan, -fsanitize=address,undefined
#   tsan: build-tsan, -fsanitize=thread (tests read tests/tsan.supp)
#   thread-safety: build-tsa, clang's static lock analysis (-Wthread-safety,
#         on in every clang build) as errors; builds everything, runs nothing
# Environment: TBLOG_JOBS (default 2), TBLOG_TEST_TIMEOUT (default 900 s).
# Tests of the other-language clients, deployment and install are skipped:
# they exercise no sanitized C++ beyond what the C++ tests already do.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=${1:-all}
case $mode in
  asan) variants=(asan) ;;
  tsan) variants=(tsan) ;;
  thread-safety) variants=(tsa) ;;
  all) variants=(tsa asan tsan) ;;
  *) echo "usage: $0 [asan|tsan|thread-safety|all]" >&2; exit 2 ;;
esac

jobs=${TBLOG_JOBS:-2}
exclude='python_client|node_client|go_client|deploy|install|container'
declare -A summary
status=0

for variant in "${variants[@]}"; do
  if [[ $variant == tsa ]]; then
    echo "== thread-safety: building build-tsa with clang-14 -Werror=thread-safety"
    if cmake -S . -B build-tsa -G Ninja -DCMAKE_BUILD_TYPE=Debug \
          -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
          -DCMAKE_CXX_FLAGS=-Werror=thread-safety >/dev/null &&
       cmake --build build-tsa -j "$jobs"; then
      summary[$variant]="built with no thread-safety warning"
    else
      summary[$variant]="BUILD FAILED"
      status=1
    fi
    continue
  fi
  case $variant in
    asan) sanitize=address,undefined ;;
    tsan) sanitize=thread ;;
  esac
  build_dir=build-$variant
  log=$build_dir/sanitize-ctest.log
  echo "== $variant: configuring and building $build_dir (-fsanitize=$sanitize)"
  if ! cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
        -DTBLOG_SANITIZE="$sanitize" -DTBLOG_BUILD_BENCHMARKS=OFF >/dev/null ||
     ! cmake --build "$build_dir" -j "$jobs"; then
    summary[$variant]="BUILD FAILED"
    status=1
    continue
  fi
  echo "== $variant: running the C++ tests (log: $log)"
  ctest --test-dir "$build_dir" -j "$jobs" --timeout "${TBLOG_TEST_TIMEOUT:-900}" \
    --output-on-failure -E "$exclude" >"$log" 2>&1
  rc=$?
  # Sanitizer reports of tests that still passed would be a bug in the setup.
  reports=$(grep -c -E '^(WARNING: ThreadSanitizer|==[0-9]+==ERROR: AddressSanitizer|.*runtime error:)' "$log")
  summary[$variant]="$(grep -E '^[0-9]+% tests passed' "$log" || echo 'no ctest summary'); sanitizer reports: $reports"
  if [[ $rc -ne 0 || $reports -ne 0 ]]; then
    status=1
    grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)' "$log" || true
  fi
done

echo "== summary"
for variant in "${variants[@]}"; do echo "$variant: ${summary[$variant]}"; done
exit $status
