"""examples/python/train_mnist_like.py against the real daemon: it trains,
and the run it leaves has every tag, with steps in order."""

import json
import os
import subprocess
import sys

import pytest

import eventfile
from conftest import REPO, tblogd_binary

EXAMPLE = os.path.join(REPO, "examples", "python", "train_mnist_like.py")


def test_example_trains_and_logs_everything(daemon):
    pytest.importorskip("torch")
    epochs = 3
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--log-dir", "mnist/example", "--epochs", str(epochs)],
        env=dict(os.environ, TBLOG_ADDRESS=daemon.address), capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "logged to" in result.stdout

    run = os.path.join(daemon.logdir, "mnist", "example")
    scalars = eventfile.scalars(run)
    batches = scalars["batch/loss"]
    assert [s for s, _ in batches] == list(range(len(batches)))
    assert len(batches) == epochs * 47                           # 3000 / 64 batches per epoch
    for sub in ["loss_train", "loss_validation"]:
        points = eventfile.scalars(os.path.join(run, sub))["loss"]
        assert [s for s, _ in points] == list(range(epochs))
    for sub in ["accuracy_train", "accuracy_validation"]:
        points = eventfile.scalars(os.path.join(run, sub))["accuracy"]
        assert [s for s, _ in points] == list(range(epochs))
        assert 0.0 <= points[-1][1] <= 1.0
    final = eventfile.scalars(os.path.join(run, "accuracy_validation"))["accuracy"][-1][1]
    assert final > 0.5                                           # it did learn

    by_tag = {}
    for step, _, value in eventfile.values(run):
        by_tag.setdefault(value.tag, []).append(step)
    for tag in ["weights/0.weight", "weights/0.bias", "weights/4.weight", "weights/6.bias",
                "samples", "samples/labels/text_summary"]:
        assert by_tag[tag] == list(range(epochs)), tag
    plugins = eventfile.tags_by_plugin(run)
    assert plugins["samples"] == "image"
    assert plugins["weights/0.weight"] == "histo"

    assert sum(1 for e in eventfile.events(run) if e.HasField("graph_def")) == 1
    hparams = os.path.join(run, "hparams")
    assert "_hparams_/session_start_info" in eventfile.tags_by_plugin(hparams)
    assert set(eventfile.scalars(hparams)) == {"hparam/accuracy", "hparam/loss"}

    # The project's own reader agrees: every file intact, every run and tag found.
    inspect = subprocess.run([tblogd_binary(), "inspect", "--json", daemon.logdir],
                             capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0, inspect.stderr
    report = {r["name"]: r for r in json.loads(inspect.stdout)["runs"]}
    assert set(report) >= {"mnist/example", "mnist/example/loss_train",
                           "mnist/example/loss_validation", "mnist/example/accuracy_train",
                           "mnist/example/accuracy_validation", "mnist/example/hparams"}
    assert all(f["state"] == "ok" for r in report.values() for f in r["files"])
    tags = {t["tag"]: t for t in report["mnist/example"]["tags"]}
    assert tags["batch/loss"]["count"] == epochs * 47
    assert tags["weights/0.weight"]["last_step"] == epochs - 1
