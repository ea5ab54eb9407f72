#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a passing test suite:
# installs what is missing, builds, runs every test: C++ unit, golden and
# end-to-end tests against the real daemon, the Python, Node and Go clients
# (all through ctest), and the image in a real container.
# Environment: TBLOG_JOBS (parallelism, default 2); TBLOG_CONTAINER_TEST
# (0 skips the container test, 1 insists on it; default: run it where podman
# is or can be installed, i.e. Debian with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/install-client-deps.sh
scripts/build.sh build -DTBLOG_BUILD_TESTS=ON -DTBLOG_BUILD_BENCHMARKS=ON

# The container test goes first (it needs the host build for its checks), so
# that ctest's summary is what the run ends with.
container_rc=0
container_test=${TBLOG_CONTAINER_TEST:-auto}
if [[ $container_test == 0 ]]; then
  echo "test.sh: SKIP container test (TBLOG_CONTAINER_TEST=0)"
elif [[ $container_test == auto ]] && ! command -v podman >/dev/null &&
     ! { [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null; }; then
  echo "test.sh: SKIP container test: no podman, and no Debian apt-get to install it (TBLOG_CONTAINER_TEST=1 forces it)"
else
  container_start=$SECONDS
  scripts/container-test.sh build || container_rc=$?
  echo "test.sh: container test took $((SECONDS - container_start)) s (exit $container_rc)"
fi

ctest_rc=0
ctest --test-dir build --output-on-failure -j "${TBLOG_JOBS:-2}" --timeout 600 || ctest_rc=$?
if ((container_rc != 0)); then
  echo "test.sh: the container test FAILED (exit $container_rc): see its output above"
  exit "$container_rc"
fi
exit "$ctest_rc"
