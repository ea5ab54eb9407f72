"""End to end: scrapes /metrics from the real tblogd and parses it with the
Prometheus text-format parser of the official Python client (Debian's
python3-prometheus-client), as a Prometheus server would read it; checks the
names, types and units, the flush histogram, points counted as points,
tblogd_build_info, the process collector, per-run rejection counters, and the
rate-limited log lines of rejected records and dropped streams.

Run by CTest (tests/daemon/tests.cmake) with $TBLOGD_BINARY and
$TBLOG_PROTO_PATH set; by hand: /usr/bin/python3 -m pytest tests/daemon/metrics_scrape_test.py
from a checkout with a build/ tree."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "client", "python")))
from source_tree import tblogd_binary, use_build_stubs  # noqa: E402

use_build_stubs()
import grpc  # noqa: E402
import tblog  # noqa: E402,F401  (puts the generated modules on tblog's path)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tblog.v1 import tblog_pb2 as pb  # noqa: E402
from tblog.v1 import tblog_pb2_grpc as pb_grpc  # noqa: E402

# Text log lines: local time with milliseconds and the UTC offset.
TEXT_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \S+ ")
COLUMN_POINTS = 1000
BAD_RECORDS = 50  # more than the log's 10 lines per second and reason


class Daemon:
    """tblogd on a unix socket and a free loopback port, metrics on another, log in a file."""

    def __init__(self, *extra_args):
        binary = tblogd_binary()
        if binary is None:
            pytest.skip("tblogd binary not found (set TBLOGD_BINARY)")
        self.dir = tempfile.mkdtemp(prefix="tblog-metrics-")
        self.socket = os.path.join(self.dir, "tblogd.sock")
        self.log_path = os.path.join(self.dir, "tblogd.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--logdir", os.path.join(self.dir, "logs"), "--unix-socket", self.socket,
                 "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--workers", "2",
                 *extra_args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        self.metrics_url = None
        while time.monotonic() < deadline and self.metrics_url is None:
            assert self.process.poll() is None, f"tblogd exited:\n{self.log()}"
            match = re.search(r"metrics on (http://\S+/metrics)", self.log())
            tcp = re.search(r"listening on (127\.0\.0\.1:\d+)", self.log())
            if match and tcp:
                self.metrics_url = match.group(1)
                self.tcp_address = tcp.group(1)
            time.sleep(0.02)
        assert self.metrics_url, f"tblogd did not serve metrics within 30 s:\n{self.log()}"
        self.channel = grpc.insecure_channel("unix:" + self.socket)
        self.stub = pb_grpc.TBLogStub(self.channel)

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def scrape(self):
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode("utf-8")
        return {family.name: family for family in text_string_to_metric_families(text)}

    def close(self):
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(60) == 0, self.log()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    d.close()


def sample(families, family, name, **labels):
    """The value of the one sample `name` of `family` with exactly `labels`."""
    values = [s.value for s in families[family].samples if s.name == name and s.labels == labels]
    assert len(values) == 1, (name, labels, families[family].samples)
    return values[0]


def column_record(points):
    record = pb.Record()
    columns = record.scalars
    columns.tags.add(tag="loss")
    columns.tags.add(tag="accuracy", subrun="train")
    for i in range(points):
        columns.tag_index.append(i % 2)
        columns.steps.append(i // 2)
        columns.values.append(1.0 / (i + 1))
    return record


@pytest.fixture(scope="module")
def traffic(daemon):
    """Sends one of everything the metrics count; returns the run id."""
    run_id = daemon.stub.OpenRun(pb.OpenRunRequest(experiment="metrics"), timeout=30).run_id
    good = pb.WriteRequest(run_id=run_id, writer_id="w1", sequence=1)
    good.records.append(column_record(COLUMN_POINTS))
    good.records.add(tag="single", step=1).scalar.value = 0.5
    daemon.stub.WriteBatch(good, timeout=30)

    # Records with a control character in the tag: each answered
    # INVALID_ARGUMENT, the good record between them still written.
    bad = pb.WriteRequest(run_id=run_id, writer_id="w1", sequence=2)
    for i in range(BAD_RECORDS):
        bad.records.add(tag=f"bad\ntag{i}", step=1).scalar.value = 1.0
    bad.records.add(tag="single", step=2).scalar.value = 0.25
    with pytest.raises(grpc.RpcError) as refused:
        daemon.stub.WriteBatch(bad, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # The next second's window of the log: its first line says how many of
    # the batch above were left out.
    # Over TCP, so that the peer is an address.
    time.sleep(1.2)
    late = pb.WriteRequest(run_id=run_id, writer_id="w1", sequence=3)
    late.records.add(tag="late\tbad", step=1).scalar.value = 1.0
    with grpc.insecure_channel(daemon.tcp_address) as channel:
        with pytest.raises(grpc.RpcError):
            pb_grpc.TBLogStub(channel).WriteBatch(late, timeout=30)

    # A stream to a run that does not exist: dropped with NOT_FOUND.
    lost = pb.WriteRequest(run_id="no/such/run", writer_id="w2", sequence=1)
    lost.records.add(tag="x", step=1).scalar.value = 1.0
    with pytest.raises(grpc.RpcError) as dropped:
        list(daemon.stub.Write(iter([lost]), timeout=30))
    assert dropped.value.code() == grpc.StatusCode.NOT_FOUND

    daemon.stub.Flush(pb.FlushRequest(run_id=run_id, sync=True), timeout=30)
    return run_id


# name -> type, as the parser reports them (counters without _total).
EXPECTED = {
    "tblogd_build_info": "gauge",
    "tblogd_records_received": "counter",
    "tblogd_points_received": "counter",
    "tblogd_records_written": "counter",
    "tblogd_points_written": "counter",
    "tblogd_records_rejected": "counter",
    "tblogd_streams_dropped": "counter",
    "tblogd_received_bytes": "counter",
    "tblogd_event_file_written_bytes": "counter",
    "tblogd_batches_written": "counter",
    "tblogd_batches_duplicate": "counter",
    "tblogd_streams_refused": "counter",
    "tblogd_io_errors": "counter",
    "tblogd_checkpoint_writes": "counter",
    "tblogd_flush_duration_seconds": "histogram",
    "tblogd_flush_call_duration_seconds": "histogram",
    "tblogd_inflight_bytes": "gauge",
    "tblogd_parked_streams": "gauge",
    "tblogd_worker_queued_tasks": "gauge",
    "tblogd_active_runs": "gauge",
    "tblogd_active_streams": "gauge",
    "tblogd_run_records_rejected": "counter",
    "tblogd_run_leases_acquired": "counter",
    "tblogd_run_leases_released": "counter",
    "tblogd_run_leases_expired": "counter",
    "tblogd_run_leases": "gauge",
    "tblogd_run_series_evicted": "counter",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
}


def test_names_types_and_units(daemon, traffic):
    families = daemon.scrape()
    for name, typ in EXPECTED.items():
        assert name in families, f"missing family {name}"
        assert families[name].type == typ, (name, families[name].type)
    for name, family in families.items():
        assert name.startswith(("tblogd_", "process_")), name
        assert family.documentation, f"{name} has no HELP"
        assert family.type != "untyped", name
        for s in family.samples:
            if family.type == "counter":
                # Every counter sample ends in _total (the parser drops it
                # from the family name only when the exposition had it).
                assert s.name == name + "_total", s.name
            elif family.type == "histogram":
                assert s.name in (name + "_bucket", name + "_sum", name + "_count"), s.name
            else:
                assert s.name == name, s.name
        # Base units, as the last word before a counter's _total.
        for unit in ("bytes", "seconds"):
            if unit in name.split("_"):
                assert name.endswith("_" + unit), name
        assert not re.search(r"_(ms|milliseconds|us|microseconds|kb|mb|kib|mib)(_|$)", name), name


def test_flush_duration_is_a_histogram(daemon, traffic):
    families = daemon.scrape()
    for name in ("tblogd_flush_duration_seconds", "tblogd_flush_call_duration_seconds"):
        samples = families[name].samples
        buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name == name + "_bucket"]
        count = sample(families, name, name + "_count")
        total = sample(families, name, name + "_sum")
        bounds = [le for le, _ in buckets]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), bounds
        assert bounds[-1] == math.inf
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), f"{name}: buckets not cumulative: {buckets}"
        assert counts[-1] == count, f"{name}: +Inf {counts[-1]} != count {count}"
        assert count >= 1, name  # the Flush call above, and the run flush it caused
        assert 0 <= total < 60 * count, (name, total)


def test_points_are_counted_as_points(daemon, traffic):
    families = daemon.scrape()
    def kinds(family, name):
        return {s.labels["kind"]: s.value for s in families[family].samples if s.name == name}
    assert kinds("tblogd_records_received", "tblogd_records_received_total")["scalars"] == 1
    assert kinds("tblogd_points_received", "tblogd_points_received_total")["scalars"] == COLUMN_POINTS
    assert kinds("tblogd_points_written", "tblogd_points_written_total")["scalars"] == COLUMN_POINTS
    # The lone scalars: one each; the bad ones received, never written.
    assert kinds("tblogd_points_received", "tblogd_points_received_total")["scalar"] == BAD_RECORDS + 3
    assert kinds("tblogd_points_written", "tblogd_points_written_total")["scalar"] == 2


def test_rejections_by_reason_and_run(daemon, traffic):
    families = daemon.scrape()
    rejected = BAD_RECORDS + 1
    assert sample(families, "tblogd_records_rejected", "tblogd_records_rejected_total",
                  reason="INVALID_ARGUMENT") == rejected
    assert sample(families, "tblogd_run_records_rejected", "tblogd_run_records_rejected_total",
                  reason="INVALID_ARGUMENT", run=traffic) == rejected
    assert sample(families, "tblogd_streams_dropped", "tblogd_streams_dropped_total",
                  reason="NOT_FOUND") == 1


def test_build_info_and_process_collector(daemon, traffic):
    families = daemon.scrape()
    info = families["tblogd_build_info"].samples
    assert len(info) == 1 and info[0].value == 1
    assert re.fullmatch(r"\d+\.\d+\.\d+", info[0].labels["version"]), info[0].labels
    assert info[0].labels["grpc_version"] and info[0].labels["protobuf_version"]

    value = lambda name, sample_name=None: sample(families, name, sample_name or name)  # noqa: E731
    assert value("process_cpu_seconds", "process_cpu_seconds_total") > 0
    assert value("process_resident_memory_bytes") > 1 << 20
    assert value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes")
    assert 3 <= value("process_open_fds") <= value("process_max_fds")
    started = value("process_start_time_seconds")
    assert time.time() - 3600 < started <= time.time() + 1, started


def test_rejections_and_drops_are_logged_with_peer_run_and_reason(daemon, traffic):
    log = daemon.log()
    lines = log.splitlines()
    for line in lines:
        assert TEXT_LOG_LINE.match(line), f"no time zone in: {line!r}"
    rejected = [line for line in lines if "record rejected:" in line]
    # Rate-limited: the 50 bad records of one batch write far fewer lines
    # (10 per second; two windows at most if the batch straddles one).
    assert 1 <= len(rejected) <= 21, rejected
    first = rejected[0]
    assert "peer=unix:" in first, first
    assert f'run="{traffic}"' in first and 'writer="w1"' in first, first
    assert "reason=INVALID_ARGUMENT" in first, first
    assert 'tag="bad\\ntag0"' in first, first  # escaped: no forged line
    late = [line for line in rejected if 'tag="late\\tbad"' in line]
    assert len(late) == 1, rejected
    assert "peer=ipv4:127.0.0.1:" in late[0], late[0]
    suppressed = re.search(r"\((\d+) similar lines suppressed\)", late[0])
    assert suppressed and int(suppressed.group(1)) >= BAD_RECORDS - 20, late[0]
    dropped = [line for line in lines if "write stream dropped:" in line]
    assert len(dropped) == 1, dropped
    assert "peer=unix:" in dropped[0] and "reason=NOT_FOUND" in dropped[0], dropped[0]
    assert "no/such/run" in dropped[0], dropped[0]


def test_json_log_lines_carry_utc_time_and_the_rejection():
    daemon = Daemon("--log-format", "json")
    try:
        run_id = daemon.stub.OpenRun(pb.OpenRunRequest(experiment="json"), timeout=30).run_id
        bad = pb.WriteRequest(run_id=run_id, writer_id="w1", sequence=1)
        bad.records.add(tag='say "hi"\n', step=1).scalar.value = 1.0
        with pytest.raises(grpc.RpcError):
            daemon.stub.WriteBatch(bad, timeout=30)
    finally:
        log = daemon.log()
        daemon.close()
    lines = [json.loads(line) for line in log.splitlines()]
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", line["time"]), line
    rejected = [line for line in lines if line["msg"].startswith("record rejected:")]
    assert len(rejected) == 1 and rejected[0]["level"] == "warning", lines
    assert f'run="{run_id}"' in rejected[0]["msg"], rejected[0]
    assert 'tag="say \\"hi\\"\\n"' in rejected[0]["msg"], rejected[0]
