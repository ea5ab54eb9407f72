"""Run leases against the real tblogd (tblog.proto, "Leases"), as issue 9
reproduced the problem: trainers that exit with os._exit (no close) hold
their runs only for the lease, so --max-runs has room again; the writers of
a shared run each release only their own hold."""

import os
import subprocess
import sys
import time

import grpc
import pytest

import tblog
from tblog.v1 import tblog_pb2 as pb
from tblog.v1 import tblog_pb2_grpc as pb_grpc


@pytest.fixture
def daemon_args():
    return ["--writer-lease", "1s", "--max-runs", "3"]


def runs_by_id(daemon):
    with grpc.insecure_channel(daemon.address) as channel:
        listed = pb_grpc.TBLogStub(channel).ListRuns(pb.ListRunsRequest(), timeout=10)
    return {run.run_id: run for run in listed.runs}


TRAINER = """
import os, sys, tblog
writer = tblog.SummaryWriter(sys.argv[1], address=sys.argv[2])
for step in range(3):
    writer.add_scalar("loss", 0.5, global_step=step)
writer.flush()
os._exit(0)  # killed without a word: no close()
"""


def test_trainers_that_exit_without_close_free_their_runs(daemon):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    for i in range(3):
        subprocess.run([sys.executable, "-c", TRAINER, f"jobs/t{i}", daemon.address],
                       check=True, env=env, timeout=60)
    # The fourth trainer gets in once the leases of the first three ran out.
    deadline = time.monotonic() + 60
    while True:
        try:
            writer = tblog.SummaryWriter("jobs/t3", address=daemon.address)
            break
        except tblog.TblogError as e:
            assert e.code == "RESOURCE_EXHAUSTED", e
            assert time.monotonic() < deadline, "the dead trainers' runs never closed"
            time.sleep(0.1)
    writer.add_scalar("loss", 0.25, global_step=0)
    # The first trainer's run closed to let it in; the others' close in turn.
    dead = [f"jobs/t{i}" for i in range(3)]
    while any(runs_by_id(daemon)[run].state != pb.RUN_STATE_CLOSED for run in dead):
        assert time.monotonic() < deadline, "the dead trainers' runs never closed"
        time.sleep(0.1)
    runs = runs_by_id(daemon)
    assert not any(runs[run].holders for run in dead)
    assert runs["jobs/t3"].state == pb.RUN_STATE_OPEN
    assert [h.writer_id for h in runs["jobs/t3"].holders] == [writer._stream.writer_id]
    writer.close()
    assert runs_by_id(daemon)["jobs/t3"].state == pb.RUN_STATE_CLOSED


def test_each_writer_of_a_shared_run_releases_only_its_hold(daemon):
    first = tblog.SummaryWriter("shared", address=daemon.address)
    second = tblog.SummaryWriter("shared", address=daemon.address)
    first.add_scalar("a", 1.0, global_step=0)
    first.close()
    run = runs_by_id(daemon)["shared"]
    assert run.state == pb.RUN_STATE_OPEN
    assert [h.writer_id for h in run.holders] == [second._stream.writer_id]
    assert run.holders[0].labels["pid"] == str(os.getpid())
    # Idle for longer than the lease: the open stream keeps the hold.
    time.sleep(1.5)
    assert runs_by_id(daemon)["shared"].state == pb.RUN_STATE_OPEN
    second.add_scalar("b", 2.0, global_step=0)
    second.close()
    assert runs_by_id(daemon)["shared"].state == pb.RUN_STATE_CLOSED
