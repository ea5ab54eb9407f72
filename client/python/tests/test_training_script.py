"""Issue 12, "how it is proven": a PyTorch training script
(torch_training_script.py) run against the daemon and read back with the
project's readers, every tag, step and value; skipped where torch does not
import (Debian's python3-torch is installed on the project's machines)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import eventfile
from conftest import tblogd_binary
from tblog.tensorboard import hparams_pb2

HERE = os.path.dirname(os.path.abspath(__file__))


def test_training_script_every_tag_step_and_value(daemon, tmp_path):
    pytest.importorskip("torch")
    expect_path = tmp_path / "expect.json"
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "torch_training_script.py"), "--log-dir", "mlp/run",
         "--expect", str(expect_path)],
        env=dict(os.environ, TBLOG_ADDRESS=daemon.address,
                 PYTHONPATH=os.pathsep.join(p for p in sys.path if p)),
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    expect = json.loads(expect_path.read_text())
    run = os.path.join(daemon.logdir, "mlp", "run")

    # Scalars: the run's own and each sub-run's ("<sub-run>:<tag>"), exact
    # to float32 (float64 for double_precision), in step order.
    for key, points in expect["scalars"].items():
        subrun, _, tag = key.rpartition(":")
        got = eventfile.scalars(os.path.join(run, subrun) if subrun else run)[tag]
        if tag == "epoch/lr":
            assert got == [(s, v) for s, v in points], key              # float64, exact
        else:
            assert got == [(s, float(np.float32(v))) for s, v in points], key
    assert float(expect["scalars"]["accuracy_validation:accuracy"][-1][1]) > 0.8   # it learned

    # Histograms (torch's exponential buckets): min, max, count and sum per epoch.
    histograms = {}
    for step, _, value in eventfile.values(run):
        if value.HasField("histo"):
            histograms.setdefault(value.tag, []).append(
                [step, value.histo.min, value.histo.max, int(value.histo.num), value.histo.sum])
    assert sorted(histograms) == sorted(expect["histograms"])
    for tag, points in expect["histograms"].items():
        for (step, lo, hi, num, total), got in zip(points, histograms[tag]):
            assert got[0] == step and got[3] == num
            assert got[1] == pytest.approx(lo) and got[2] == pytest.approx(hi)
            assert got[4] == pytest.approx(total, abs=1e-4)
        assert len(histograms[tag]) == len(points)

    # The traced graph, once.
    assert sum(1 for e in eventfile.events(run) if e.HasField("graph_def")) == 1

    # Text, as torch's "<tag>/text_summary".
    texts = [(step, eventfile.tensor_array(v.tensor).reshape(-1)[0].decode())
             for step, _, v in eventfile.values(run) if v.tag == "samples/labels/text_summary"]
    assert texts == [tuple(p) for p in expect["text"]["samples/labels/text_summary"]]

    # hparams: at open (in the run) and add_hparams' sub-run.
    for where in (run, os.path.join(run, "hparams")):
        (start,) = [hparams_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    .session_start_info for _, _, v in eventfile.values(where)
                    if v.tag == "_hparams_/session_start_info"]
        assert {k: v.number_value for k, v in start.hparams.items()} == expect["hparams"]

    # The project's reader: every file intact, every run and tag with its count.
    inspect = subprocess.run([tblogd_binary(), "inspect", "--json", daemon.logdir],
                             capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0, inspect.stderr
    report = {r["name"]: r for r in json.loads(inspect.stdout)["runs"]}
    assert all(f["state"] == "ok" for r in report.values() for f in r["files"])
    tags = {t["tag"]: t for t in report["mlp/run"]["tags"]}
    assert tags["batch/loss"]["count"] == len(expect["scalars"]["batch/loss"])
    assert tags["batch/loss"]["last_step"] == expect["scalars"]["batch/loss"][-1][0]
    assert tags["weights/0.weight"]["count"] == 3
    for subrun in ("loss_train", "loss_validation", "accuracy_train", "accuracy_validation",
                   "hparams"):
        assert f"mlp/run/{subrun}" in report
