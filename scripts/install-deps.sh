#!/usr/bin/env bash
# Installs the Debian 12 packages that tblogd needs to build, test and run.
# Safe to run again: apt-get skips what is already installed.
# Usage: scripts/install-deps.sh [--daemon]
#   --daemon  only what building and running tblogd needs (scripts/run.sh);
#             default: that, plus the test suite's and benchmarks' packages.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev libspdlog-dev libfmt-dev libcli11-dev
  libpng-dev zlib1g-dev libisal-dev libcpp-httplib-dev prometheus-cpp-dev libssl-dev
)
case ${1:-} in
  --daemon) ;;
  "") packages+=(
        libgtest-dev libgmock-dev googletest libbenchmark-dev openssl
        libspng-dev libdeflate-dev valgrind
        python3 python3-grpcio python3-protobuf python3-numpy python3-pytest python3-yaml
        python3-torch python3-prometheus-client) ;;
  *) echo "usage: $0 [--daemon]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
