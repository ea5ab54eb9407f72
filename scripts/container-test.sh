#!/usr/bin/env bash
# The tblogd sidecar in a real container: builds the image with podman, runs it
# as uid 10001 (under umask 0077) on a host directory mounted at /logs,
# streams every record kind from the host through the published TCP port and,
# as a trainer of uid 10003 in group 10001, through the unix socket (0660) in
# that shared volume, where uid 10004 outside the group is refused; a second
# tblogd container on the same volume and the first each take a writer of one
# shared run. A reader of uid 10002 checks every file with the project's
# reader (each point once, both daemons' files present, modes 0644/0755);
# then /metrics is scraped, both containers are stopped with SIGTERM (exit 0
# within the grace period, nothing sent missing) and the image size reported.
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
# The deployment's uids (Dockerfile, deploy/): the daemon's, TensorBoard's, a
# trainer's, and one in none of their groups.
daemon_uid=10001 reader_uid=10002 trainer_uid=10003 stranger_uid=10004
work=$(mktemp -d /tmp/tblog-container-test.XXXXXX)
chmod 0755 "$work"  # every uid reaches the volume, the tools and the reports
logdir=$work/logs
mkdir -p "$logdir/.sock" "$logdir/.sock-b"
"${SUDO[@]}" chown -R $daemon_uid:$daemon_uid "$logdir"
# The host-side tools where the other uids may run them (the build tree may
# sit under a 0700 home).
mkdir -p "$work/bin"
cp "$tblogd_host" "$streamer" "$root/tests/container/check_logdir.py" "$work/bin/"
chmod -R a+rX "$work/bin"
tblogd_host=$work/bin/tblogd
streamer=$work/bin/tblog-stream-every-kind
# run_as UID [GROUP...] -- CMD...: runs CMD as UID, primary group UID, and only
# the supplementary GROUPs given.
run_as() {
  local uid=$1 groups=()
  shift
  while [[ $1 != -- ]]; do groups+=("$1"); shift; done
  shift
  local group_flag=--clear-groups
  ((${#groups[@]})) && group_flag=--groups=$(IFS=,; echo "${groups[*]}")
  "${SUDO[@]}" setpriv --reuid="$uid" --regid="$uid" "$group_flag" "$@"
}
name_b=$name-b
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && ${TBLOG_CONTAINER_KEEP:-0} == 1 ]]; then
    say "kept for a look: containers $name $name_b, $work"
    return
  fi
  local c
  for c in "$name" "$name_b"; do
    if podman container exists "$c" 2>/dev/null; then
      [[ $rc -ne 0 ]] && { say "container $c logs:"; podman logs --tail 40 "$c" >&2 || true; }
      podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    fi
  done
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

# umask 0077: the socket's and files' modes must come from the flags' defaults.
# --hostname and TBLOG_DAEMON_ID: this daemon's identity in its file names.
common=(--name "$name" --user $daemon_uid:$daemon_uid --umask 0077 -v "$logdir:/logs:Z"
        --hostname tblogd-a -e TBLOG_DAEMON_ID=tblogd-a
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
socket_access=$(stat -c '%a %u:%g' "$socket")
[[ $socket_access == "660 $daemon_uid:$daemon_uid" ]] ||
  fail "socket $socket is '$socket_access', not '660 $daemon_uid:$daemon_uid' (default mode and group)"

# A second daemon on the same volume: unix socket only, its own identity.
t0=$(date +%s.%N)
socket_b=$logdir/.sock-b/tblogd.sock
podman run -d --name "$name_b" --user $daemon_uid:$daemon_uid --umask 0077 --network host \
  -v "$logdir:/logs:Z" --hostname tblogd-b -e TBLOG_DAEMON_ID=tblogd-b \
  -e TBLOG_METRICS_LISTEN= -e TBLOG_UNIX_SOCKET=/logs/.sock-b/tblogd.sock \
  -e TBLOG_HEALTH_ADDRESS=unix:/logs/.sock-b/tblogd.sock -e TBLOG_LOG_FORMAT=json \
  -e TBLOG_SHUTDOWN_GRACE=30s "$image" --listen '' >/dev/null 2>"$work/run-b.err" ||
  fail "podman run of the second daemon: $(cat "$work/run-b.err")"
deadline=$((SECONDS + 60))
until "$tblogd_host" health --address "unix:$socket_b" --timeout 2s >/dev/null 2>&1; do
  ((SECONDS < deadline)) || fail "the second daemon ($name_b) did not become healthy"
  sleep 0.5
done
say "second container $name_b healthy in $(since "$t0") s (unix socket only)"

# --- (d) stream: TCP, the unix socket as a trainer uid, one run via both ------
t0=$(date +%s.%N)
"$streamer" --target "127.0.0.1:$grpc_port" --run-path tcp-run >"$work/sent-tcp.json" ||
  fail "streaming over TCP 127.0.0.1:$grpc_port"
# As a trainer of another uid in the socket's group (0660). This run is left
# open: the daemon still holds its files at SIGTERM.
run_as $trainer_uid $daemon_uid -- "$streamer" --target "unix:$socket" --run-path unix-run \
  --leave-run-open >"$work/sent-unix.json" ||
  fail "streaming over the unix socket $socket as uid $trainer_uid in group $daemon_uid"
# Outside the group: the kernel refuses the connection.
if run_as $stranger_uid -- "$tblogd_host" health --address "unix:$socket" --timeout 3s \
     >"$work/stranger.txt" 2>&1; then
  fail "uid $stranger_uid, not in group $daemon_uid, was served through $socket"
fi
# One run, two daemons, a writer each with tags of its own, at the same time.
run_as $trainer_uid $daemon_uid -- "$streamer" --target "unix:$socket" --run-path shared-run \
  --tag-prefix node-a --steps 500 >"$work/sent-shared-a.json" &
shared_a=$!
run_as $trainer_uid $daemon_uid -- "$streamer" --target "unix:$socket_b" --run-path shared-run \
  --tag-prefix node-b --steps 500 >"$work/sent-shared-b.json" ||
  fail "streaming into shared-run through the second daemon"
wait $shared_a || fail "streaming into shared-run through the first daemon"
say "streamed every kind over TCP and, as uid $trainer_uid, over the unix socket (run left open);" \
    "uid $stranger_uid refused; shared-run through both daemons; in $(since "$t0") s"

# --- (e) the files, read by a reader of a third uid -----------------------------
chmod 0644 "$work"/sent-*.json
check_files() {
  local when=$1
  run_as $reader_uid -- "$tblogd_host" inspect --json "$logdir" >"$work/inspect.json" ||
    fail "tblogd inspect as uid $reader_uid ($when)"
  chmod 0644 "$work/inspect.json"
  # Each point once: the counts are exact.
  run_as $reader_uid -- /usr/bin/python3 "$work/bin/check_logdir.py" "$work/inspect.json" "$logdir" \
    "$work"/sent-tcp.json "$work"/sent-unix.json "$work"/sent-shared-a.json "$work"/sent-shared-b.json ||
    fail "the logdir does not hold what was sent, as uid $reader_uid reads it ($when)"
  local daemon_id
  for daemon_id in tblogd-a tblogd-b; do
    compgen -G "$logdir/shared-run/events.out.tfevents.*.$daemon_id.*" >/dev/null ||
      fail "no event file of $daemon_id in shared-run ($when): $(ls "$logdir/shared-run")"
  done
  local foreign modes
  foreign=$(find "$logdir" -mindepth 1 \( ! -uid $daemon_uid -o ! -gid $daemon_uid \) -printf '%u:%g %p\n' | head -5)
  [[ -z $foreign ]] || fail "files not owned by $daemon_uid:$daemon_uid ($when): $foreign"
  # Under umask 0077, the defaults: files 0644, directories 0755.
  modes=$(find "$logdir" -mindepth 1 -path "$logdir/.sock*" -prune -o \
            \( -type f ! -perm 0644 -o -type d ! -perm 0755 \) -printf '%m %p\n' | head -5)
  [[ -z $modes ]] || fail "modes other than 0644/0755 ($when): $modes"
}
check_files "while running"
say "files: every kind present with the sent counts, shared-run holds both daemons' files," \
    "each point once; owned by $daemon_uid, 0644/0755, read by uid $reader_uid"

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
for c in "$name" "$name_b"; do
  t0=$(date +%s.%N)
  # stderr aside: without systemd, podman complains about healthcheck timers.
  podman stop --time "$grace_s" "$c" >/dev/null 2>"$work/stop.err" ||
    fail "podman stop $c: $(cat "$work/stop.err")"
  stop_s=$(since "$t0")
  exit_code=$(podman inspect -f '{{.State.ExitCode}}' "$c")
  [[ $exit_code == 0 ]] || fail "tblogd ($c) exited $exit_code after SIGTERM"
  awk -v s="$stop_s" -v g="$grace_s" 'BEGIN { exit !(s < g) }' ||
    fail "stopping $c took $stop_s s, not under the $grace_s s grace (killed?)"
  podman logs "$c" 2>&1 | grep -q 'stopped cleanly' || fail "no 'stopped cleanly' in the log of $c"
done
check_files "after SIGTERM"
say "SIGTERM: exit 0 in $stop_s s (grace $grace_s s); nothing missing afterwards"

# --- (h) image size --------------------------------------------------------------
size=$(podman image inspect -f '{{.Size}}' "$image")
say "PASS: image $image $(awk -v b="$size" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }'), \
build $build_s s, network: $network_mode, total $((SECONDS - t_start)) s"
