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

# The image in a real container (scripts/container-test.sh, several minutes:
# it builds the image). Default: run where podman is or can be installed
# (Debian with apt-get); TBLOG_CONTAINER_TEST=0 skips it, =1 insists on it.
container_test=${TBLOG_CONTAINER_TEST:-auto}
if [[ $container_test == 0 ]]; then
  echo "test.sh: SKIP container test (TBLOG_CONTAINER_TEST=0)"
elif [[ $container_test == auto ]] && ! command -v podman >/dev/null &&
     ! { [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null; }; then
  echo "test.sh: SKIP container test: no podman, and no Debian apt-get to install it (TBLOG_CONTAINER_TEST=1 forces it)"
else
  container_start=$SECONDS
  container_rc=0
  scripts/container-test.sh build || container_rc=$?
  echo "test.sh: container test took $((SECONDS - container_start)) s (exit $container_rc)"
  exit "$container_rc"
fi
