#!/usr/bin/env bash
# Builds and tests the Go client in GOPATH mode (Debian's grpc-go 1.33 and
# protobuf 1.3 under /usr/share/gocode; no module proxy): vets and builds the
# package (with its committed tblog/v1 stubs, see generate.sh) and the
# example, then runs `go test` (which spawns $TBLOGD_BINARY).
# Exit 77 (CTest: skipped) when the Go toolchain or grpc-go is missing.
# Extra arguments go to `go test` (e.g. -run TestRestart).
# Env: TBLOGD_BINARY (required for the tests), TBLOG_GO_WORKDIR (default: a
# temporary directory, removed at exit).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v go >/dev/null; then
  echo "go_client: go not found; run scripts/install-client-deps.sh" >&2
  exit 77
fi
if [[ ! -d /usr/share/gocode/src/google.golang.org/grpc ]]; then
  echo "go_client: grpc-go not found under /usr/share/gocode; run scripts/install-client-deps.sh" >&2
  exit 77
fi

if [[ -n "${TBLOG_GO_WORKDIR:-}" ]]; then
  # Kept between runs: the build cache (grpc-go takes a minute to compile).
  work="$TBLOG_GO_WORKDIR"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/cache"

export GO111MODULE=off
export GOPATH="$here:/usr/share/gocode"
export GOCACHE="$work/cache"
cd "$here"
go vet tblog tblog/v1 ./example
unformatted="$(gofmt -l src/tblog/*.go example)"
if [[ -n "$unformatted" ]]; then
  echo "go_client: not gofmt-formatted (run gofmt -w): $unformatted" >&2
  exit 1
fi
go build -o "$work/tblog-example" ./example
export TBLOG_GO_EXAMPLE="$work/tblog-example"
go test -count=1 -v "$@" tblog
