#!/usr/bin/env bash
# Generates the Go stubs of proto/tblog/v1/tblog.proto into
# client/go/src/tblog/v1/tblog.pb.go (package tblogv1, import path "tblog/v1"
# in GOPATH mode), where they are committed: building the client needs no
# protoc. Run it after every change to the proto.
#
#   client/go/generate.sh           regenerate the committed file
#   client/go/generate.sh --check   regenerate into a temporary directory and
#                                   fail (exit 1) when the committed file
#                                   differs; exit 77 (CTest: skipped) when the
#                                   generators are missing. CTest: go_stubs_current.
#
# Generators: Debian's protoc (3.21) and protoc-gen-go 1.3 (golang-goprotobuf-
# dev, the one that matches Debian's grpc-go 1.33 and its `plugins=grpc`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
committed="$here/src/tblog/v1/tblog.pb.go"

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

for tool in protoc protoc-gen-go; do
  if ! command -v "$tool" >/dev/null; then
    echo "generate.sh: $tool not found; run scripts/install-client-deps.sh" >&2
    exit 77
  fi
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/proto/tblog/v1" "$work/out"

# protoc-gen-go 1.3 predates proto3 `optional`, which protoc 3.21 then refuses
# to hand it. An optional field is, on the wire, a one-field oneof named
# "_<field>" (protoc's own synthetic oneof): rewrite it so for the generator.
# Same field numbers, same bytes; only this temporary copy is rewritten.
sed -E 's/^([[:space:]]*)optional ([A-Za-z0-9_.]+) ([A-Za-z0-9_]+) = ([0-9]+);/\1oneof _\3 { \2 \3 = \4; }/' \
  "$repo/proto/tblog/v1/tblog.proto" > "$work/proto/tblog/v1/tblog.proto"
protoc -I "$work/proto" --go_out=plugins=grpc:"$work/out" "$work/proto/tblog/v1/tblog.proto"
generated="$work/out/tblog/v1/tblog.pb.go"

if $check; then
  if ! cmp -s "$generated" "$committed"; then
    diff -u "$committed" "$generated" | head -40 >&2 || true
    echo "generate.sh: $committed is not what proto/tblog/v1/tblog.proto generates:" \
         "run client/go/generate.sh and commit the result" >&2
    exit 1
  fi
  echo "generate.sh: $committed is current"
  exit 0
fi
mkdir -p "$(dirname "$committed")"
cp "$generated" "$committed"
echo "generate.sh: wrote $committed"
