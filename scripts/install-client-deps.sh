#!/usr/bin/env bash
# Installs what the Node and Go clients need to build and test: Debian's Go
# toolchain with grpc-go and the protobuf generators, and the Node client's npm
# dependencies from client/node/package-lock.json (`npm ci`).
# Safe to run again. If a part cannot be had (no apt, no registry), it says so
# and leaves that part out; the client's CTest entry then skips (exit 77).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  golang-go golang-google-grpc-dev golang-goprotobuf-dev protoc-gen-go-1-3 protoc-gen-go-grpc
  protobuf-compiler nodejs npm
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node may come from elsewhere than Debian (e.g. NodeSource): accept any node>=18 + npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi

if ((${#missing[@]})); then
  echo "install-client-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get update -qq && \
         $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
    echo "install-client-deps: WARNING: could not install ${missing[*]};" \
         "the Go/Node client tests will be skipped" >&2
  fi
else
  echo "install-client-deps: all packages present"
fi

if command -v npm >/dev/null; then
  if ! (cd client/node && npm ci --no-audit --no-fund --loglevel=error); then
    echo "install-client-deps: WARNING: npm ci failed in client/node" \
         "(registry unreachable?); the Node client test will be skipped" >&2
  fi
else
  echo "install-client-deps: WARNING: npm not found; the Node client test will be skipped" >&2
fi
