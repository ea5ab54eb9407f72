"""Issue 12's tf.summary-style API (tblog.summary) against the real daemon.

The seed documents' three Keras callbacks over tf.summary (epoch scalars;
weight histograms per layer; images named with their true and predicted
labels) run with one import changed, driven as keras.Model.fit drives them
over a small NumPy model, and the run is read back with the project's
reader: every tag, step and value. Then the rest of the API: text, audio,
the default step, record_if, the noop writer, hp.hparams."""

import os

import numpy as np
import pytest

import eventfile
import pngdecode
import tblog.summary as tf_summary           # the one changed import (was: tf.summary)
from tblog.summary import hp
from tblog.tensorboard import hparams_pb2


# ----------------------------------------------------------- seed callbacks

class Callback:
    """keras.callbacks.Callback's shape (Keras is not installed here)."""

    def set_model(self, model):
        self.model = model


class EpochScalars(Callback):
    """Seed callback 1: every epoch's logs as scalars."""

    def __init__(self, log_dir):
        self.writer = tf_summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf_summary.scalar(name, value, step=epoch)
        self.writer.flush()


class WeightHistograms(Callback):
    """Seed callback 2: a histogram of every layer's weights every epoch."""

    def __init__(self, log_dir):
        self.writer = tf_summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=epoch):
            for layer in self.model.layers:
                for weight in layer.weights:
                    tf_summary.histogram(f"{layer.name}/{weight.name}", weight)
        self.writer.flush()


class PredictionImages(Callback):
    """Seed callback 3: sample images named with true and predicted labels."""

    def __init__(self, log_dir, images, labels, class_names):
        self.writer = tf_summary.create_file_writer(log_dir)
        self.images, self.labels, self.class_names = images, labels, class_names

    def on_epoch_end(self, epoch, logs=None):
        predicted = np.argmax(self.model.predict(self.images), axis=1)
        with self.writer.as_default():
            for i, (image, true, pred) in enumerate(zip(self.images, self.labels, predicted)):
                name = f"sample_{i}/true_{self.class_names[true]}/pred_{self.class_names[pred]}"
                tf_summary.image(name, image[np.newaxis], step=epoch)
        self.writer.flush()


# ------------------------------------------------- a small model, fit()

class Weight:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)


class Layer:
    def __init__(self, name, weights):
        self.name, self.weights = name, weights


class SoftmaxModel:
    """Softmax regression on flattened 4x4 RGB images, trained by SGD."""

    def __init__(self, classes, rng):
        self.kernel = Weight("kernel", (rng.standard_normal((48, classes)) * 0.1)
                             .astype(np.float32))
        self.bias = Weight("bias", np.zeros(classes, np.float32))
        self.layers = [Layer("dense", [self.kernel, self.bias])]

    def predict(self, images):
        logits = images.reshape(len(images), -1) @ self.kernel.value + self.bias.value
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def train_step(self, images, labels, rate=0.5):
        p = self.predict(images)
        loss = float(-np.log(p[np.arange(len(labels)), labels] + 1e-9).mean())
        accuracy = float((p.argmax(axis=1) == labels).mean())
        p[np.arange(len(labels)), labels] -= 1
        x = images.reshape(len(images), -1)
        self.kernel.value -= rate * (x.T @ p / len(labels)).astype(np.float32)
        self.bias.value -= rate * p.mean(axis=0).astype(np.float32)
        return {"loss": loss, "accuracy": accuracy}


def fit(model, callbacks, images, labels, epochs):
    for callback in callbacks:
        callback.set_model(model)
    history = []
    for epoch in range(epochs):
        logs = model.train_step(images, labels)
        history.append(logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
    return history


def test_the_seed_callbacks_with_one_import_changed(daemon, monkeypatch):
    monkeypatch.setenv("TBLOG_ADDRESS", daemon.address)
    rng = np.random.default_rng(7)
    classes = ["cat", "dog", "eel"]
    labels = rng.integers(0, 3, size=24)
    images = (rng.random((24, 4, 4, 3)) * 0.3 + labels[:, None, None, None] * 0.3).astype(
        np.float32)
    model = SoftmaxModel(3, rng)
    samples = (rng.random((3, 4, 4, 3)) * 255).astype(np.uint8)
    callbacks = [EpochScalars("seed/scalars"), WeightHistograms("seed/histograms"),
                 PredictionImages("seed/images", samples, [0, 1, 2], classes)]
    kernels = []
    predictions = []
    original_on_epoch_end = callbacks[1].on_epoch_end

    def remember(epoch, logs=None):           # the weights and predictions each epoch wrote
        kernels.append((model.kernel.value.copy(), model.bias.value.copy()))
        predictions.append(np.argmax(model.predict(samples), axis=1))
        original_on_epoch_end(epoch, logs)
    callbacks[1].on_epoch_end = remember
    history = fit(model, callbacks, images, labels, epochs=4)
    for callback in callbacks:
        callback.writer.close()

    # 1. Epoch scalars: every log at every epoch, as rank-0 float32 tensors.
    run = os.path.join(daemon.logdir, "seed", "scalars")
    scalars = eventfile.scalars(run)
    assert sorted(scalars) == ["accuracy", "loss"]
    for name in ("loss", "accuracy"):
        assert scalars[name] == [(epoch, float(np.float32(logs[name])))
                                 for epoch, logs in enumerate(history)]
    for _, _, value in eventfile.values(run):
        assert value.metadata.plugin_data.plugin_name == "scalars"
        assert value.tensor.dtype == 1 and len(value.tensor.tensor_shape.dim) == 0

    # 2. Weight histograms: one per layer weight per epoch, 30 uniform buckets.
    run = os.path.join(daemon.logdir, "seed", "histograms")
    seen = {}
    for step, _, value in eventfile.values(run):
        assert value.metadata.plugin_data.plugin_name == "histograms"
        seen.setdefault(value.tag, []).append(step)
        buckets = eventfile.tensor_array(value.tensor)
        weights = kernels[step][0 if value.tag == "dense/kernel" else 1].reshape(-1)
        assert buckets.shape == (30, 3)
        assert buckets[0, 0] == pytest.approx(weights.min())
        assert buckets[-1, 1] == pytest.approx(weights.max())
        assert buckets[:, 2].sum() == weights.size
        if weights.min() < weights.max():
            expected, _ = np.histogram(weights.astype(np.float64), bins=30,
                                       range=(float(weights.min()), float(weights.max())))
            np.testing.assert_array_equal(buckets[:, 2], expected)
    assert seen == {"dense/kernel": [0, 1, 2, 3], "dense/bias": [0, 1, 2, 3]}

    # 3. Images named with true and predicted labels, pixels exact.
    run = os.path.join(daemon.logdir, "seed", "images")
    by_step = {}
    for step, _, value in eventfile.values(run):
        assert value.metadata.plugin_data.plugin_name == "images"
        strings = list(value.tensor.string_val)
        assert strings[:2] == [b"4", b"4"] and len(strings) == 3       # width, height, one PNG
        by_step.setdefault(step, {})[value.tag] = pngdecode.read_png(strings[2])
    assert sorted(by_step) == [0, 1, 2, 3]
    for step, tags in by_step.items():
        expected = {f"sample_{i}/true_{classes[i]}/pred_{classes[p]}": i
                    for i, p in enumerate(predictions[step])}
        assert sorted(tags) == sorted(expected)
        for tag, i in expected.items():
            np.testing.assert_array_equal(tags[tag], samples[i])


def test_text_audio_images_batches_and_the_default_step(daemon):
    writer = tf_summary.create_file_writer("api/all", address=daemon.address)
    assert tf_summary.scalar("nowriter", 1.0, step=0) is False        # no default writer
    with writer.as_default(step=5):
        assert tf_summary.experimental.get_step() == 5
        tf_summary.scalar("x", np.float64(0.25))                        # the default step
        tf_summary.experimental.set_step(6)
        tf_summary.scalar("x", [0.5])                                   # a one-element list
        tf_summary.text("notes", "**bold**", step=1)
        tf_summary.text("table", [["a", "b"], ["c", "d"]], step=1)
        tf_summary.audio("tone", np.sin(np.linspace(0, 40, 800)).reshape(1, 800, 1),
                         sample_rate=8000, step=2)
        batch = (np.arange(5 * 2 * 3 * 3) % 256).astype(np.uint8).reshape(5, 2, 3, 3)
        tf_summary.image("batch", batch, step=3, max_outputs=2)
        tf_summary.histogram("h", np.arange(10.0), step=4, buckets=5,
                             description="ten values")
        with tf_summary.record_if(False):
            assert tf_summary.scalar("skipped", 1.0) is False
        with tf_summary.record_if(lambda: True):
            assert tf_summary.scalar("kept", 2.0)
        with tf_summary.create_noop_writer().as_default():
            assert tf_summary.scalar("noop", 3.0, step=0) is False
    # as_default(step=) restores the step it replaced on exit, as TensorFlow's.
    assert tf_summary.experimental.get_step() is None
    with writer.as_default():
        with pytest.raises(ValueError, match="no step"):
            tf_summary.scalar("nostep", 1.0)
    tf_summary.flush(writer)
    writer.close()

    run = os.path.join(daemon.logdir, "api", "all")
    scalars = eventfile.scalars(run)
    assert scalars == {"x": [(5, 0.25), (6, 0.5)], "kept": [(6, 2.0)]}
    values = {v.tag: (step, v) for step, _, v in eventfile.values(run)}
    step, notes = values["notes"]
    assert step == 1 and notes.metadata.plugin_data.plugin_name == "text"
    assert eventfile.tensor_array(notes.tensor).reshape(-1)[0] == b"**bold**"
    table = eventfile.tensor_array(values["table"][1].tensor)
    assert table.tolist() == [[b"a", b"b"], [b"c", b"d"]]
    step, tone = values["tone"]
    assert step == 2 and tone.metadata.plugin_data.plugin_name == "audio"
    step, images = values["batch"]
    strings = list(images.tensor.string_val)
    assert step == 3 and strings[:2] == [b"3", b"2"] and len(strings) == 4   # max_outputs=2
    for i in range(2):
        np.testing.assert_array_equal(pngdecode.read_png(strings[2 + i]), batch[i])
    step, histogram = values["h"]
    assert step == 4 and histogram.metadata.summary_description == "ten values"
    np.testing.assert_array_equal(eventfile.tensor_array(histogram.tensor)[:, 2], [2] * 5)


def test_hp_hparams_records_the_trial_in_the_default_writers_run(daemon):
    writer = tf_summary.create_file_writer("api/hp", address=daemon.address)
    with writer.as_default():
        assert hp.hparams({hp.HParam("lr", hp.RealInterval(1e-4, 1.0)): 0.01,
                           "optimizer": "adam", "nesterov": True, "unused": None})
        tf_summary.scalar("accuracy", 0.75, step=1)
    writer.close()
    run = os.path.join(daemon.logdir, "api", "hp")
    start = None
    for _, _, value in eventfile.values(run):
        if value.tag == "_hparams_/session_start_info":
            start = hparams_pb2.HParamsPluginData.FromString(
                value.metadata.plugin_data.content).session_start_info
    assert start is not None
    got = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert got == {"lr": 0.01, "optimizer": "adam", "nesterov": True}
    assert eventfile.scalars(run)["accuracy"] == [(1, 0.75)]


class FakeTorchTensor:
    """What tblog recognises a torch tensor by (torch is not installed here):
    detach().cpu().numpy(), and item() for one element."""

    def __init__(self, array):
        self._array = np.asarray(array)

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._array

    def item(self):
        return self._array.item()


def test_numpy_torch_style_tensors_and_python_numbers_are_all_accepted(daemon):
    writer = tf_summary.create_file_writer("api/inputs", address=daemon.address)
    with writer.as_default():
        tf_summary.scalar("s", 1, step=0)                            # int
        tf_summary.scalar("s", np.float32(2.5), step=1)              # numpy scalar
        tf_summary.scalar("s", FakeTorchTensor(3.5), step=2)         # a "torch" 0-d tensor
        tf_summary.histogram("h", FakeTorchTensor(np.arange(6.0)), step=0)
        tf_summary.histogram("h", [1, 2, 3], step=1)                 # a Python list
        tf_summary.image("i", FakeTorchTensor(np.zeros((1, 2, 2, 3), np.float32)), step=0)
    writer.close()
    run = os.path.join(daemon.logdir, "api", "inputs")
    assert eventfile.scalars(run) == {"s": [(0, 1.0), (1, 2.5), (2, 3.5)]}
    tags = [(v.tag, step) for step, _, v in eventfile.values(run) if v.tag != "s"]
    assert tags == [("h", 0), ("h", 1), ("i", 0)]


def test_a_daemon_restart_loses_nothing_and_duplicates_nothing(daemon):
    """tblog.summary writes through SummaryWriter's stream: what was logged
    while the daemon restarted is resent once, histograms and images too."""
    writer = tf_summary.create_file_writer("api/restart", address=daemon.address)
    with writer.as_default():
        for step in range(3):
            tf_summary.scalar("loss", 1.0 / (step + 1), step=step)
            tf_summary.histogram("w", np.arange(step + 5.0), step=step)
    assert daemon.stop() == 0
    with writer.as_default(step=3):     # the block's flush waits for the daemon to be back
        tf_summary.scalar("loss", 0.25)
        tf_summary.image("img", np.zeros((1, 2, 2, 3), np.uint8))
        daemon.start()
    with writer.as_default():
        tf_summary.scalar("loss", 0.2, step=4)
    writer.close()
    run = os.path.join(daemon.logdir, "api", "restart")
    assert eventfile.scalars(run)["loss"] == [(0, 1.0), (1, 0.5), (2, float(np.float32(1 / 3))),
                                              (3, 0.25), (4, float(np.float32(0.2)))]
    tags = [(v.tag, step) for step, _, v in eventfile.values(run) if v.tag != "loss"]
    assert sorted(tags) == [("img", 3), ("w", 0), ("w", 1), ("w", 2)]


def test_real_torch_tensors(daemon):
    torch = pytest.importorskip("torch")
    weight = torch.nn.Parameter(torch.arange(12, dtype=torch.float32).reshape(3, 4))
    writer = tf_summary.create_file_writer("api/torch", address=daemon.address)
    with writer.as_default(step=torch.tensor(2)):                  # a tensor step too
        tf_summary.scalar("loss", (weight * 2).sum())             # requires grad: detached
        tf_summary.histogram("w", weight, buckets=4)
        tf_summary.image("img", torch.ones(1, 2, 2, 3))
        hp.hparams({"lr": torch.tensor(0.5)})
    writer.close()
    run = os.path.join(daemon.logdir, "api", "torch")
    assert eventfile.scalars(run)["loss"] == [(2, 132.0)]
    values = {v.tag: (step, v) for step, _, v in eventfile.values(run)}
    step, histogram = values["w"]
    assert step == 2
    np.testing.assert_array_equal(eventfile.tensor_array(histogram.tensor)[:, 2], [3, 3, 3, 3])
    assert values["img"][0] == 2
