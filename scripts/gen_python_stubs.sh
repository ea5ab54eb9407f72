#!/usr/bin/env bash
# Generates the Python protobuf and gRPC modules the `tblog` Python package
# imports: tblog/v1/tblog_pb2{,_grpc}.py (the daemon's API) and
# tblog/tensorboard/*_pb2.py (event files, used by the tests' reader).
#
# Usage: scripts/gen_python_stubs.sh [OUT_DIR]
#   OUT_DIR defaults to client/python/tblog/_proto (git-ignored), where the
#   package finds the modules by itself; elsewhere, point TBLOG_PROTO_PATH at it.
# Uses `python -m grpc_tools.protoc` when grpcio-tools is installed, otherwise
# protoc with grpc_python_plugin (Debian: protobuf-compiler-grpc).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/client/python/tblog/_proto}"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; else python=python3; fi
fi

protos=(tblog/v1/tblog.proto)
for f in "$repo"/proto/tblog/tensorboard/*.proto; do
  protos+=("tblog/tensorboard/$(basename "$f")")
done

mkdir -p "$out"
cd "$repo/proto"
if "$python" -c "import grpc_tools.protoc" 2>/dev/null; then
  "$python" -m grpc_tools.protoc -I. --python_out="$out" --grpc_python_out="$out" \
    tblog/v1/tblog.proto
  "$python" -m grpc_tools.protoc -I. --python_out="$out" "${protos[@]:1}"
else
  plugin="$(command -v grpc_python_plugin || true)"
  if [[ -z "$plugin" ]]; then
    echo "gen_python_stubs: need grpcio-tools or grpc_python_plugin (apt-get install protobuf-compiler-grpc)" >&2
    exit 1
  fi
  protoc -I. --python_out="$out" --grpc_python_out="$out" \
    --plugin=protoc-gen-grpc_python="$plugin" tblog/v1/tblog.proto
  protoc -I. --python_out="$out" "${protos[@]:1}"
fi
# A stamp the build system can depend on.
touch "$out/.stamp"
