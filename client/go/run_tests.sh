#!/usr/bin/env bash
# Builds and tests the Go client in GOPATH mode (Debian's grpc-go 1.33 and
# protobuf 1.3 under /usr/share/gocode; no module proxy): generates the
# tblog/v1 stubs into a work GOPATH, vets and builds the package and the
# example, then runs `go test` (which spawns $TBLOGD_BINARY).
# Exit 77 (CTest: skipped) when the Go toolchain or generators are missing.
# Env: TBLOGD_BINARY (required for the tests), TBLOG_GO_WORKDIR (default: a
# temporary directory, removed at exit).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

for tool in go protoc protoc-gen-go; do
  if ! command -v "$tool" >/dev/null; then
    echo "go_client: $tool not found; run scripts/install-client-deps.sh" >&2
    exit 77
  fi
done
if [[ ! -d /usr/share/gocode/src/google.golang.org/grpc ]]; then
  echo "go_client: grpc-go not found under /usr/share/gocode; run scripts/install-client-deps.sh" >&2
  exit 77
fi

if [[ -n "${TBLOG_GO_WORKDIR:-}" ]]; then
  # Kept between runs: the build cache (grpc-go takes a minute to compile).
  work="$TBLOG_GO_WORKDIR"
  rm -rf "$work/gopath" "$work/proto"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/gopath/src" "$work/proto/tblog/v1" "$work/cache"

# Debian's protoc-gen-go (1.3) predates proto3 `optional`, which protoc 3.21
# then refuses. An optional field is, on the wire, a one-field oneof: rewrite
# it so for the generator (same field numbers, same bytes).
sed -E 's/^([[:space:]]*)optional ([A-Za-z0-9_.]+) ([A-Za-z0-9_]+) = ([0-9]+);/\1oneof _\3 { \2 \3 = \4; }/' \
  "$repo/proto/tblog/v1/tblog.proto" > "$work/proto/tblog/v1/tblog.proto"
protoc -I "$work/proto" --go_out=plugins=grpc:"$work/gopath/src" "$work/proto/tblog/v1/tblog.proto"

export GO111MODULE=off
export GOPATH="$here:$work/gopath:/usr/share/gocode"
export GOCACHE="$work/cache"
cd "$here"
go vet tblog ./example
go build -o "$work/tblog-example" ./example
export TBLOG_GO_EXAMPLE="$work/tblog-example"
go test -count=1 -v tblog
