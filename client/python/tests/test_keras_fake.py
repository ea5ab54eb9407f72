"""tblog.keras.TensorBoard driven like Keras' fit() would, with a fake model
(Keras is not installed here), against the in-process fake of the API: which
records go to which sub-run, with which tags and steps."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tblog.keras


class FakeWeight:
    def __init__(self, name, value):
        self.name = name
        self._value = value

    def numpy(self):
        return self._value


class FakeLayer:
    def __init__(self, name, weights):
        self.name = name
        self.weights = weights


class Embedding(FakeLayer):
    pass


class FakeOptimizer:
    def __init__(self):
        self.iterations = 0
        self.learning_rate = 0.01


class FakeModel:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.layers = [
            FakeLayer("dense", [FakeWeight("dense/kernel:0", rng.normal(size=(4, 3))),
                                FakeWeight("dense/bias:0", np.zeros(3))]),
            Embedding("embedding", [FakeWeight("embedding/embeddings:0",
                                               rng.normal(size=(5, 2)))]),
        ]
        self.optimizer = FakeOptimizer()
        self.stop_training = False


def fit(callback, model, epochs, batches):
    """Calls the hooks in the order keras.Model.fit does."""
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "steps": batches, "verbose": 0})
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for batch in range(batches):
            callback.on_train_batch_begin(batch)
            model.optimizer.iterations += 1
            callback.on_train_batch_end(batch, {"loss": 1.0 / (batch + 1), "accuracy": 0.5})
        callback.on_test_begin()
        callback.on_test_end({"loss": 0.3, "accuracy": 0.7})
        callback.on_epoch_end(epoch, {"loss": 0.5 - 0.1 * epoch, "accuracy": 0.6,
                                      "val_loss": 0.4, "val_accuracy": 0.65})
    callback.on_train_end()


def test_importing_does_not_import_keras():
    code = ("import sys, tblog.keras; "
            "assert not {'keras', 'tensorflow', 'torch'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ,
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))


def test_plain_object_without_keras():
    callback = tblog.keras.TensorBoard(log_dir="x")
    assert isinstance(callback, tblog.keras.TensorBoard)


def test_layout_tags_and_steps(fake):
    callback = tblog.keras.TensorBoard(log_dir="k/run", histogram_freq=1, update_freq=2,
                                       write_steps_per_second=True, embeddings_freq=2,
                                       write_images=True, address=fake.address)
    fit(callback, FakeModel(), epochs=3, batches=4)
    points = fake.scalars("k/run")
    by_key = {}
    for subrun, tag, step, value in points:
        by_key.setdefault((subrun, tag), []).append((step, round(value, 5)))
    assert by_key[("train", "epoch_loss")] == [(0, 0.5), (1, 0.4), (2, 0.3)]
    assert [s for s, _ in by_key[("validation", "epoch_loss")]] == [0, 1, 2]
    assert ("validation", "epoch_accuracy") in by_key
    assert ("train", "epoch_learning_rate") in by_key
    assert ("train", "epoch_steps_per_second") in by_key
    # update_freq=2: Keras 3 counts the fit's batches from 1 and writes 2, 4, ..., 12.
    assert [s for s, _ in by_key[("train", "batch_loss")]] == [2, 4, 6, 8, 10, 12]
    assert [s for s, _ in by_key[("train", "batch_steps_per_second")]] == [2, 4, 6, 8, 10, 12]
    assert all(v > 0 for _, v in by_key[("train", "batch_steps_per_second")])
    assert [s for s, _ in by_key[("validation", "evaluation_loss_vs_iterations")]] == [4, 8, 12]
    records = fake.runs["k/run"]
    histograms = [(r.subrun, r.tag, r.step) for r in records if r.WhichOneof("kind") == "histogram"]
    assert ("train", "dense/kernel_0/histogram", 0) in histograms
    assert ("train", "dense/bias_0/histogram", 2) in histograms
    assert len(histograms) == 3 * 3
    images = [(r.subrun, r.tag) for r in records if r.WhichOneof("kind") == "image"]
    assert ("train", "dense/kernel_0/image") in images
    embeddings = [(r.tag, r.step) for r in records if r.WhichOneof("kind") == "embedding"]
    assert embeddings == [("embedding", 0), ("embedding", 2)]
    assert fake.closed == ["k/run"]


def test_epoch_only_by_default(fake):
    callback = tblog.keras.TensorBoard(log_dir="k/epoch", address=fake.address)
    fit(callback, FakeModel(), epochs=2, batches=3)
    tags = {(s, t) for s, t, _, _ in fake.scalars("k/epoch")}
    assert not any(t.startswith("batch_") for _, t in tags)
    assert not any(r.WhichOneof("kind") == "histogram" for r in fake.runs["k/epoch"])


def test_profile_batch_warns_once_and_is_ignored(fake, monkeypatch):
    monkeypatch.setattr(tblog.keras, "_warned_profile_batch", False)
    with pytest.warns(UserWarning, match="profile_batch=5 is ignored"):
        callback = tblog.keras.TensorBoard(log_dir="k/prof", profile_batch=5,
                                           address=fake.address)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # a second callback does not warn again
        tblog.keras.TensorBoard(log_dir="k/prof2", profile_batch=(2, 4), address=fake.address)
    fit(callback, FakeModel(), epochs=1, batches=2)
    assert fake.closed == ["k/prof"]


def test_bad_update_freq():
    with pytest.raises(ValueError):
        tblog.keras.TensorBoard(update_freq="sometimes")
