#!/usr/bin/env bash
# The tblogd sidecar in a real container: builds the image with podman, runs it
# as uid 10001 on a host directory mounted at /logs, streams every record kind
# from the host through the published TCP port and through a unix socket in
# that shared volume, checks the files with the project's reader, scrapes
# /metrics, stops the container with SIGTERM (exit 0 within the grace period,
# nothing sent missing) and reports the image size.
#
# Usage: scripts/container-test.sh [BUILD_DIR]   (default: build)
# BUILD_DIR holds (or gets) the host-built tblogd (its `inspect`) and
# tblog-stream-every-kind. Podman is set up as docs/environment.md says:
# podman + runc, deploy/podman.conf, debian:bookworm(-slim) made locally with
# debootstrap when missing.
# Environment: TBLOG_JOBS (build jobs in the image, default 2),
# TBLOG_CONTAINER_IMAGE (tag, default tblogd:test), TBLOG_CONTAINER_KEEP=1
# (keep the logdir and container after a failure, for a look),
# TBLOG_CONTAINER_NETWORK=host (skip port publishing: the fallback used where
# the sandbox cannot forward published ports).
# Exits non-zero, with a FAIL line saying why, on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build_dir=$(realpath -m "${1:-build}")
image=${TBLOG_CONTAINER_IMAGE:-tblogd:test}
name=tblogd-container-test-$$
grace_s=40
t_start=$SECONDS

say() { printf 'container-test: %s\n' "$*"; }
fail() { printf 'container-test: FAIL: %s\n' "$*" >&2; exit 1; }
# Elapsed seconds since $1 (a `date +%s.%N`), 1 decimal.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
export CONTAINERS_CONF=$root/deploy/podman.conf
podman() { "${SUDO[@]}" env CONTAINERS_CONF="$CONTAINERS_CONF" podman "$@"; }

# --- (a) podman, runc, debootstrap; local base images -----------------------
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap curl:curl; do
  type -P "${tool%%:*}" >/dev/null || [[ -x /usr/sbin/${tool%%:*} ]] || missing+=("${tool#*:}")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || fail "needs ${missing[*]} and there is no apt-get"
  say "installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin

# The slim image stands in as the same minbase tree: only the Dockerfile's
# FROM lines need to resolve.
if podman image exists docker.io/library/debian:bookworm &&
   ! podman image exists docker.io/library/debian:bookworm-slim; then
  podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
fi
for tag in bookworm bookworm-slim; do
  if ! podman image exists "docker.io/library/debian:$tag"; then
    t0=$(date +%s.%N)
    rootfs=$(mktemp -d /tmp/tblog-debootstrap.XXXXXX)
    say "no local debian:$tag: making it with debootstrap (minbase)"
    "${SUDO[@]}" debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
      >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; fail "debootstrap failed"; }
    # Without the downloaded .debs and package lists, as Debian's own images.
    "${SUDO[@]}" sh -c "rm -rf '$rootfs'/var/cache/apt/archives/*.deb '$rootfs'/var/lib/apt/lists/*"
    "${SUDO[@]}" tar -C "$rootfs" -c . | podman import - "docker.io/library/debian:bookworm" >/dev/null
    podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
    "${SUDO[@]}" rm -rf "$rootfs" "$rootfs.log"
    say "base images made in $(since "$t0") s"
  fi
done

# --- host-side tools: the reader and the streaming client -------------------
t0=$(date +%s.%N)
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  generator=()
  if command -v ninja >/dev/null; then generator=(-G Ninja); fi
  cmake -S "$root" -B "$build_dir" "${generator[@]}" >/dev/null
fi
if ! cmake --build "$build_dir" -j "${TBLOG_JOBS:-2}" --target tblogd tblog-stream-every-kind \
     >/tmp/tblog-container-host-build.log 2>&1; then
  grep -E -A5 'error|FAILED' /tmp/tblog-container-host-build.log | head -40 >&2
  fail "building tblogd and tblog-stream-every-kind in $build_dir (log: /tmp/tblog-container-host-build.log)"
fi
tblogd_host=$build_dir/server/daemon/tblogd
streamer=$build_dir/tests/tblog-stream-every-kind
[[ -x $tblogd_host && -x $streamer ]] || fail "$tblogd_host or $streamer not built"
say "host tools ready in $(since "$t0") s"

# --- (b) the image ------------------------------------------------------------
t0=$(date +%s.%N)
say "podman build -t $image . (TBLOG_JOBS=${TBLOG_JOBS:-2}; a full C++ build takes minutes)"
build_log=$(mktemp /tmp/tblog-podman-build.XXXXXX.log)
# docker format: OCI images drop HEALTHCHECK.
if ! podman build --network host --format docker --build-arg "TBLOG_JOBS=${TBLOG_JOBS:-2}" \
     -t "$image" . >"$build_log" 2>&1; then
  tail -40 "$build_log" >&2
  fail "podman build failed (log: $build_log)"
fi
build_s=$(since "$t0")
rm -f "$build_log"
say "image built in $build_s s"

# --- (c) run it: uid 10001, host dir as /logs, socket in the volume -----------
work=$(mktemp -d /tmp/tblog-container-test.XXXXXX)
logdir=$work/logs
mkdir -p "$logdir/.sock"
"${SUDO[@]}" chown -R 10001:10001 "$logdir"
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && ${TBLOG_CONTAINER_KEEP:-0} == 1 ]]; then
    say "kept for a look: container $name, $work"
    return
  fi
  if podman container exists "$name" 2>/dev/null; then
    [[ $rc -ne 0 ]] && { say "container logs:"; podman logs --tail 40 "$name" >&2 || true; }
    podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  fi
  "${SUDO[@]}" rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
metrics_port=$(free_port)
while [[ $metrics_port == "$grpc_port" ]]; do metrics_port=$(free_port); done
socket=$logdir/.sock/tblogd.sock

# Waits until tblogd answers health checks through the port (host side) and
# `podman healthcheck run` (the image's HEALTHCHECK) passes; 0 if so.
wait_healthy() {
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if [[ $(podman inspect -f '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
      say "container is not running"
      return 1
    fi
    if "$tblogd_host" health --address "127.0.0.1:$grpc_port" --timeout 2s >/dev/null 2>&1 &&
       podman healthcheck run "$name" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  say "not healthy after 60 s"
  return 1
}

common=(--name "$name" --user 10001:10001 -v "$logdir:/logs:Z"
        -e TBLOG_UNIX_SOCKET=/logs/.sock/tblogd.sock -e TBLOG_LOG_FORMAT=json
        -e TBLOG_SHUTDOWN_GRACE=30s)
network_mode="published ports (-p 127.0.0.1:$grpc_port:6066 -p 127.0.0.1:$metrics_port:9100)"
# Starts the container with published ports; 1 (reason in run.err) if it does
# not run or is not reachable through them.
start_published() {
  if [[ ${TBLOG_CONTAINER_NETWORK:-publish} == host ]]; then
    echo "TBLOG_CONTAINER_NETWORK=host" >"$work/run.err"
    return 1
  fi
  podman run -d "${common[@]}" -p "127.0.0.1:$grpc_port:6066" -p "127.0.0.1:$metrics_port:9100" \
    "$image" >/dev/null 2>"$work/run.err" || return 1
  wait_healthy
}
t0=$(date +%s.%N)
if ! start_published; then
  say "no published ports: $(head -c 300 "$work/run.err" | tr '\n' ' ')"
  podman logs --tail 10 "$name" 2>/dev/null || true
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  network_mode="--network host (FALLBACK: no published ports), TBLOG_LISTEN=127.0.0.1:$grpc_port"
  podman run -d "${common[@]}" --network host \
    -e "TBLOG_LISTEN=127.0.0.1:$grpc_port" -e "TBLOG_METRICS_LISTEN=127.0.0.1:$metrics_port" \
    -e "TBLOG_HEALTH_ADDRESS=127.0.0.1:$grpc_port" "$image" >/dev/null 2>"$work/run.err" ||
    fail "podman run --network host failed: $(cat "$work/run.err")"
  wait_healthy || fail "tblogd in the container did not become healthy"
fi
say "container $name healthy in $(since "$t0") s; network: $network_mode"
for _ in $(seq 50); do [[ -S $socket ]] && break; sleep 0.1; done
[[ -S $socket ]] || fail "no unix socket at $socket (host side of /logs/.sock/tblogd.sock)"

# --- (d) stream every kind over TCP and over the unix socket -----------------
t0=$(date +%s.%N)
"$streamer" --target "127.0.0.1:$grpc_port" --run-path tcp-run >"$work/sent-tcp.json" ||
  fail "streaming over TCP 127.0.0.1:$grpc_port"
# This run is left open: the daemon still holds its files at SIGTERM.
"$streamer" --target "unix:$socket" --run-path unix-run --leave-run-open >"$work/sent-unix.json" ||
  fail "streaming over the unix socket $socket"
say "streamed every kind twice (TCP; unix socket, run left open) in $(since "$t0") s"

# --- (e) the files, read by the project's reader ------------------------------
check_files() {
  local when=$1
  "$tblogd_host" inspect --json "$logdir" >"$work/inspect.json" || fail "tblogd inspect ($when)"
  /usr/bin/python3 "$root/tests/container/check_logdir.py" "$work/inspect.json" "$logdir" \
    "$work/sent-tcp.json" "$work/sent-unix.json" || fail "the logdir does not hold what was sent ($when)"
  local foreign
  foreign=$(find "$logdir" -mindepth 1 \( ! -uid 10001 -o ! -gid 10001 \) -printf '%u:%g %p\n' | head -5)
  [[ -z $foreign ]] || fail "files not owned by 10001:10001 ($when): $foreign"
}
check_files "while running"
say "files: every kind present with the sent counts, owned by 10001:10001"

# --- (f) metrics ---------------------------------------------------------------
metrics=$(curl -fsS --max-time 5 "http://127.0.0.1:$metrics_port/metrics") ||
  fail "GET http://127.0.0.1:$metrics_port/metrics"
sum_family() { awk -v f="$1" '$1 == f || index($1, f "{") == 1 { s += $NF } END { printf "%d", s }' <<<"$metrics"; }
written=$(sum_family tblogd_records_written_total)
rejected=$(sum_family tblogd_records_rejected_total)
((written > 0)) || fail "/metrics: tblogd_records_written_total is $written"
((rejected == 0)) || fail "/metrics: tblogd_records_rejected_total is $rejected"
say "metrics: records written $written, rejected $rejected"

# --- (g) SIGTERM: exit 0 within the grace period, nothing missing -------------
t0=$(date +%s.%N)
# stderr aside: without systemd, podman complains about healthcheck timers.
podman stop --time "$grace_s" "$name" >/dev/null 2>"$work/stop.err" ||
  fail "podman stop: $(cat "$work/stop.err")"
stop_s=$(since "$t0")
exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
[[ $exit_code == 0 ]] || fail "tblogd exited $exit_code after SIGTERM"
awk -v s="$stop_s" -v g="$grace_s" 'BEGIN { exit !(s < g) }' ||
  fail "stop took $stop_s s, not under the $grace_s s grace (killed?)"
podman logs "$name" 2>&1 | grep -q 'stopped cleanly' || fail "no 'stopped cleanly' in the container log"
check_files "after SIGTERM"
say "SIGTERM: exit 0 in $stop_s s (grace $grace_s s); nothing missing afterwards"

# --- (h) image size --------------------------------------------------------------
size=$(podman image inspect -f '{{.Size}}' "$image")
say "PASS: image $image $(awk -v b="$size" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'), \
build $build_s s, network: $network_mode, total $((SECONDS - t_start)) s"
