"""Reductions across writers from the Python client (tblog.proto, "Reductions
across writers"): rank processes with WORLD_SIZE set log their own loss with
add_scalar(..., reduce="mean") and their own values with
add_histogram(..., reduce="merge"); the run holds one point per step."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tblog
from eventfile import scalars, values

RANKS = 4
STEPS = 3

RANK = """
import os, sys, time, numpy as np, tblog
rank = int(os.environ["RANK"])
writer = tblog.SummaryWriter(sys.argv[1], address=sys.argv[2])   # group size: WORLD_SIZE
# As a job's ranks: all of them hold the run before any logs (and closes),
# else a run whose holders all closed would close between two slow starts.
open(os.path.join(sys.argv[3], str(rank)), "w").close()
while len(os.listdir(sys.argv[3])) < %d:
    time.sleep(0.02)
for step in range(1, %d + 1):
    writer.add_scalar("loss", step + rank / 8, global_step=step, reduce="mean")
    writer.add_scalar("loss_w", step + rank / 8, global_step=step, reduce="mean",
                      weight=rank + 1)
    writer.add_scalar("worst", step + rank / 8, global_step=step, reduce="max",
                      keep_contributions=(rank == 0))
    writer.add_histogram("grad", np.arange(rank * 100, rank * 100 + 100, dtype=np.float32),
                         global_step=step, reduce="merge")
writer.close()
""" % (RANKS, STEPS)


def test_ranks_get_one_point_per_step(daemon, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
               WORLD_SIZE=str(RANKS))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    ranks = [subprocess.Popen([sys.executable, "-c", RANK, "job/ddp", daemon.address,
                               str(barrier)],
                              env=dict(env, RANK=str(rank))) for rank in range(RANKS)]
    for process in ranks:
        assert process.wait(timeout=120) == 0
    run_dir = os.path.join(daemon.logdir, "job", "ddp")
    points = scalars(run_dir)
    ranks_mean = sum(range(RANKS)) / RANKS / 8
    weights = [rank + 1 for rank in range(RANKS)]
    weighted = sum(w * rank / 8 for rank, w in enumerate(weights)) / sum(weights)
    assert [step for step, _ in points["loss"]] == list(range(1, STEPS + 1))
    for (step, loss), (_, loss_w), (_, worst) in zip(points["loss"], points["loss_w"],
                                                     points["worst"]):
        assert loss == pytest.approx(step + ranks_mean, rel=1e-6)
        assert loss_w == pytest.approx(step + weighted, rel=1e-6)
        assert worst == pytest.approx(step + (RANKS - 1) / 8, rel=1e-6)
    kept = [tag for tag in points if tag.startswith("worst/by_writer/")]
    assert len(kept) == 1 and len(points[kept[0]]) == STEPS
    histograms = [(step, value.histo) for step, _, value in values(run_dir)
                  if value.tag == "grad"]
    assert [step for step, _ in histograms] == list(range(1, STEPS + 1))
    for _, histo in histograms:
        assert histo.num == RANKS * 100
        assert histo.min == 0 and histo.max == RANKS * 100 - 1
        assert sum(histo.bucket) == RANKS * 100


def test_reduce_arguments_are_checked(daemon):
    writer = tblog.SummaryWriter("job/args", address=daemon.address, group_size=2)
    with pytest.raises(ValueError, match="reduce='median'"):
        writer.add_scalar("loss", 1.0, global_step=1, reduce="median")
    with pytest.raises(ValueError, match="bins='tensorflow'"):
        writer.add_histogram("h", np.ones(3), global_step=1, bins=10, reduce="merge")
    # The daemon's verdict on a bad weight arrives as the writer's error.
    writer.add_scalar("loss", 1.0, global_step=1, reduce="mean", weight=-1)
    with pytest.raises(tblog.TblogError, match="reduce.weight"):
        writer.flush()
    writer.close()
