#!/usr/bin/env bash
# Every benchmark in one command: builds Release in build-release/, then runs
# histogram_bench (engine), client_bench (C++ client call cost) and
# tblog-loadgen against a tblogd child it starts (end-to-end rates next to the
# same work in-process, with a read-back check), tblog-edges-bench (how soon a
# lone scalar is in the file; the cost of open, flush and close), then
# tblog-budget-bench (the daemon's peak RSS under floods of large records next
# to --max-inflight-bytes), then tblog-reduce-bench (the daemon's CPU per
# contribution reduced across writers, and the time from a step's last
# contribution to its written point), then tblog-shm-bench (large histograms
# over shared memory, unix socket and TCP) and bench/shm_bench.py (the same
# from Python; skipped without python3 and numpy), then tblog-codec-bench (PNG
# encoders and CRC-32C implementations, the old choice next to the chosen
# one). Prints everything.
#
#   scripts/bench.sh [extra tblog-loadgen args, e.g. --scalars 5000000]
# Environment: TBLOG_JOBS (default 2); BENCH_BUILD_DIR (default build-release);
# BENCH_FILTER, a Google Benchmark filter for the micro-benchmarks (default: all);
# BUDGET_BENCH_ARGS, arguments for tblog-budget-bench (default: its own, a 32MiB
# budget; BUDGET_BENCH_ARGS=skip leaves it out); REDUCE_BENCH_ARGS, likewise for
# tblog-reduce-bench; CODEC_BENCH_ARGS, arguments for tblog-codec-bench (e.g.
# --instructions all; CODEC_BENCH_ARGS=skip leaves it out; it needs libspng-dev
# and libdeflate-dev, and valgrind for instruction counts).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BENCH_BUILD_DIR:-build-release}
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=(histogram_bench tblogd tblog_loadgen tblog_budget_bench tblog_reduce_bench tblog_shm_bench
         tblog_edges_bench)
if ls bench/client_bench*.cc >/dev/null 2>&1; then targets+=(client_bench); fi
codec_bench=0
if [[ "${CODEC_BENCH_ARGS:-}" != skip ]] && pkg-config --exists spng libdeflate; then
  codec_bench=1
  targets+=(tblog_codec_bench)
fi
cmake --build "$build_dir" -j "${TBLOG_JOBS:-2}" --target "${targets[@]}"

# The Python shared-memory row: bench/shm_bench.py against a tblogd child on
# a unix socket (and its .shm side socket) with a 10 ms --fsync-interval (the
# Python writer keeps a batch's slices until it is durable). Skips, saying
# why, without a python3 that has numpy and grpc; the Python client's
# protobuf modules are generated when missing (scripts/gen_python_stubs.sh).
python_shm_bench() {
  local python=python3
  if [[ -x /usr/bin/python3 ]]; then python=/usr/bin/python3; fi  # Debian's numpy and grpc
  if ! command -v "$python" >/dev/null; then
    echo "skipped: no python3"
    return 0
  fi
  if ! "$python" -c "import numpy, grpc, google.protobuf" 2>/dev/null; then
    echo "skipped: $python lacks numpy, grpcio or protobuf (Debian: python3-numpy python3-grpcio python3-protobuf)"
    return 0
  fi
  if [[ ! -f client/python/tblog/_proto/tblog/v1/tblog_pb2.py ]]; then
    PYTHON="$python" scripts/gen_python_stubs.sh >/dev/null || return 1
  fi
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tblog-shm-py.XXXXXX")
  "$1/server/daemon/tblogd" --logdir "$dir/logs" --unix-socket "$dir/tblogd.sock" --listen "" \
    --log-level warn &
  local daemon=$!
  local tries=0
  while [[ ! -S "$dir/tblogd.sock" || ! -S "$dir/tblogd.sock.shm" ]] && ((tries++ < 100)); do
    sleep 0.1
  done
  local result=0
  echo "+ $python bench/shm_bench.py --address unix:$dir/tblogd.sock"
  "$python" bench/shm_bench.py --address "unix:$dir/tblogd.sock" || result=1
  kill -TERM "$daemon" && wait "$daemon" || result=1
  rm -rf "$dir"
  return "$result"
}

filter=()
if [[ -n "${BENCH_FILTER:-}" ]]; then filter=(--benchmark_filter="$BENCH_FILTER"); fi
status=0

echo "== histogram_bench (engine: histogram elements/s next to a plain sum) =="
"$build_dir/bench/histogram_bench" "${filter[@]}" || status=1

for bench in "$build_dir"/bench/client_bench*; do
  [[ -x "$bench" && -f "$bench" ]] || continue
  echo
  echo "== $(basename "$bench") (C++ client: cost of a record call on the caller's thread) =="
  "$bench" "${filter[@]}" || status=1
done

echo
echo "== tblog-loadgen (end to end through tblogd next to the same work in-process) =="
echo "+ $build_dir/bench/tblog-loadgen --spawn-daemon $build_dir/server/daemon/tblogd $*"
"$build_dir/bench/tblog-loadgen" --spawn-daemon "$build_dir/server/daemon/tblogd" "$@" || status=1

echo
echo "== tblog-shm-bench (large histograms over shared memory, unix socket, TCP, in-process) =="
"$build_dir/bench/tblog-shm-bench" --daemon "$build_dir/server/daemon/tblogd" || status=1

echo
echo "== bench/shm_bench.py (Python: a 1M-float add_histogram over shared memory) =="
python_shm_bench "$build_dir" || status=1

echo
echo "== tblog-edges-bench (a lone scalar until it is in the file; Open, flush() and close()) =="
"$build_dir/bench/tblog-edges-bench" --spawn-daemon "$build_dir/server/daemon/tblogd" || status=1

if [[ "${BUDGET_BENCH_ARGS:-}" != skip ]]; then
  echo
  echo "== tblog-budget-bench (peak RSS of tblogd next to --max-inflight-bytes + overhead) =="
  # shellcheck disable=SC2086  # word splitting of the arguments is meant
  "$build_dir/bench/tblog-budget-bench" --daemon "$build_dir/server/daemon/tblogd" \
    ${BUDGET_BENCH_ARGS:-} || status=1
fi
if [[ "${REDUCE_BENCH_ARGS:-}" != skip ]]; then
  echo
  echo "== tblog-reduce-bench (reductions across writers: CPU per contribution, last contribution to point) =="
  # shellcheck disable=SC2086  # word splitting of the arguments is meant
  "$build_dir/bench/tblog-reduce-bench" --daemon "$build_dir/server/daemon/tblogd" \
    ${REDUCE_BENCH_ARGS:-} || status=1
fi
if ((codec_bench)); then
  echo
  echo "== tblog-codec-bench (PNG encode and CRC-32C per candidate; old next to chosen) =="
  # shellcheck disable=SC2086  # word splitting of the arguments is meant
  "$build_dir/bench/tblog-codec-bench" ${CODEC_BENCH_ARGS:-} || status=1
fi
exit "$status"
