"""tblog.keras.TensorBoard: keras.callbacks.TensorBoard's arguments and log
layout, written through tblogd.

Layout (as Keras writes it): sub-runs `train` and `validation`; per epoch
`epoch_<metric>` scalars (validation metrics without their "val_" prefix),
`epoch_learning_rate` when the optimizer has one, `epoch_steps_per_second`
with write_steps_per_second; `batch_<metric>` (and `batch_steps_per_second`
with write_steps_per_second) every update_freq batches when update_freq is
"batch" or an int, at Keras 3's steps: the fit's batches counted from 1, so
update_freq=2 writes steps 2, 4, ...; with write_graph, the model's
configuration (model.to_json() of a Sequential or Functional model) as the
`keras` tag at step 0 in `train`, which the graphs dashboard shows;
`evaluation_<metric>_vs_iterations` in
`validation` at each evaluation's end; every histogram_freq epochs one
histogram per weight, tagged "<weight name>/histogram" (and an image of it,
"<weight name>/image", with write_images); every embeddings_freq epochs the
Embedding layers' matrices for the projector.

Nothing from Keras is imported when this module loads. Constructing a
TensorBoard returns an instance of a subclass that also derives from
keras.callbacks.Callback when Keras (or tf.keras) is importable, so model.fit
accepts it; otherwise it is a plain object with the same methods, which is
all a callback list calls.
Not supported: the profiler. A non-zero profile_batch warns once and is
otherwise ignored (Keras itself has no profiler on the torch and numpy
backends); write_graph writes the model configuration but not the traced
train_function graph, which only TensorFlow's tf.function has.
"""

import sys
import time
import warnings

import numpy as np

from tblog import _convert
from tblog.writer import SummaryWriter, _TENSOR

_keras_classes = {}
_warned_profile_batch = False


def _keras_callback_base():
    """keras.callbacks.Callback from whichever Keras the program uses, or None."""
    if "keras" in sys.modules or "tensorflow" not in sys.modules:
        try:
            import keras
            return keras.callbacks.Callback
        except Exception:  # noqa: BLE001 - no usable Keras: duck typing it is
            pass
    try:
        from tensorflow import keras as tf_keras
        return tf_keras.callbacks.Callback
    except Exception:  # noqa: BLE001
        return None


class TensorBoard:
    """A Keras callback writing TensorBoard logs through tblogd.

    Arguments are keras.callbacks.TensorBoard's; log_dir follows
    SummaryWriter's rules (relative to the daemon's logdir). Extra
    keyword-only: address (the daemon), hparams (dict: the run's
    hyperparameters, recorded when the run opens, as TensorBoard's hparams
    plugin does at the start of a trial) and writer_kwargs (passed to
    SummaryWriter)."""

    def __new__(cls, *args, **kwargs):
        if cls is TensorBoard:
            base = _keras_callback_base()
            if base is not None:
                subclass = _keras_classes.get(base)
                if subclass is None:
                    subclass = type("TensorBoard", (TensorBoard, base),
                                    {"__module__": __name__, "__doc__": TensorBoard.__doc__})
                    _keras_classes[base] = subclass
                cls = subclass
        return object.__new__(cls)

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None, *, address=None,
                 hparams=None, writer_kwargs=None, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"TensorBoard: unexpected arguments {sorted(kwargs)}")
        self.log_dir = log_dir
        self.histogram_freq = int(histogram_freq)
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive "
                             f"int, got {update_freq!r}")
        self.update_freq = update_freq
        self.profile_batch = profile_batch
        if profile_batch:
            _warn_profile_batch(profile_batch)
        self.embeddings_freq = int(embeddings_freq)
        self.embeddings_metadata = embeddings_metadata
        self._address = address
        self._writer_kwargs = dict(writer_kwargs or {})
        if hparams is not None:
            self._writer_kwargs["hparams"] = hparams
        self._writer = None
        self._train_step = 0
        self._epoch_start = None
        self._epoch_batches = 0
        self._batch_start = None
        self._model_ref = None

    # ------------------------------------------------------------- plumbing

    def set_model(self, model):
        # Kept under our own name: Keras 3 makes Callback.model a read-only property.
        self._model_ref = model
        parent = getattr(super(), "set_model", None)
        if parent is not None:
            parent(model)
        if self.write_graph:
            self._write_model_config(model)

    def set_params(self, params):
        parent = getattr(super(), "set_params", None)
        if parent is not None:
            parent(params)
        else:
            self.params = params

    @property
    def writer(self):
        """The SummaryWriter of the run, opened on first use."""
        if self._writer is None:
            self._writer = SummaryWriter(self.log_dir, address=self._address,
                                         **self._writer_kwargs)
        return self._writer

    def _scalar(self, subrun, tag, value, step):
        self.writer._scalar(tag, subrun, _convert.to_float(value), int(step), time.time(),
                            _TENSOR)

    # ------------------------------------------------------------ callbacks

    def on_train_begin(self, logs=None):
        self.writer  # noqa: B018 - open the run now, so errors show at once
        # Keras 3 counts the batches of each fit() from 1.
        self._train_step = 0

    def on_train_end(self, logs=None):
        self.close()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        self._epoch_batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._train_step += 1
        self._batch_start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        step = self._train_step
        self._epoch_batches += 1
        if self.update_freq == "epoch" or step % self.update_freq != 0:
            return
        if self.write_steps_per_second and self._batch_start is not None:
            elapsed = time.monotonic() - self._batch_start
            if elapsed > 0:
                self._scalar("train", "batch_steps_per_second", 1.0 / elapsed, step)
        for name, value in (logs or {}).items():
            if _is_number(value):
                self._scalar("train", f"batch_{name}", value, step)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for name, value in logs.items():
            if not _is_number(value):
                continue
            if name.startswith("val_"):
                self._scalar("validation", f"epoch_{name[4:]}", value, epoch)
            else:
                self._scalar("train", f"epoch_{name}", value, epoch)
        if "learning_rate" not in logs and "lr" not in logs:
            rate = self._learning_rate()
            if rate is not None:
                self._scalar("train", "epoch_learning_rate", rate, epoch)
        if self.write_steps_per_second and self._epoch_start is not None:
            elapsed = time.monotonic() - self._epoch_start
            if elapsed > 0:
                self._scalar("train", "epoch_steps_per_second",
                             self._epoch_batches / elapsed, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        if self.embeddings_freq and epoch % self.embeddings_freq == 0:
            self._log_embeddings(epoch)

    def on_test_end(self, logs=None):
        step = self._optimizer_iterations()
        if step is None:
            step = self._train_step
        for name, value in (logs or {}).items():
            if _is_number(value):
                self._scalar("validation", f"evaluation_{name}_vs_iterations", value, step)

    def _nothing_to_log(self, *args, **kwargs):
        """The hooks at which this callback has nothing to log. Defined so that
        the plain class (no Keras importable) has every method a callback list
        calls."""

    on_test_begin = on_test_batch_begin = on_test_batch_end = _nothing_to_log
    on_predict_begin = on_predict_end = _nothing_to_log
    on_predict_batch_begin = on_predict_batch_end = _nothing_to_log

    def close(self):
        """Flushes and closes the run; a later fit() opens it again (resumed)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    # ---------------------------------------------------------------- graph

    def _write_model_config(self, model):
        """keras_model_summary("keras", model, step=0), as Keras writes it
        when the model is set: only Sequential and Functional models have a
        configuration that rebuilds them."""
        if type(model).__name__ not in ("Sequential", "Functional"):
            return
        try:
            config = model.to_json()
        except Exception as exc:  # noqa: BLE001 - Keras warns and goes on, too
            warnings.warn(f"Model failed to serialize as JSON. Ignoring... {exc}")
            return
        self.writer._keras_model_config(config, subrun="train")

    # -------------------------------------------------------------- weights

    def _log_weights(self, epoch):
        for layer in getattr(self._model_ref, "layers", None) or []:
            for weight in getattr(layer, "weights", None) or []:
                name = _weight_name(weight).replace(":", "_")
                values = _convert.to_numpy(_weight_value(weight))
                self.writer._histogram(f"{name}/histogram", values, epoch, 30, None, None,
                                       "train")
                if self.write_images:
                    image = _weight_image(values)
                    if image is not None:
                        self.writer._image(f"{name}/image", image, 0, epoch, None, "train")

    def _log_embeddings(self, epoch):
        metadata = self.embeddings_metadata
        for layer in getattr(self._model_ref, "layers", None) or []:
            if type(layer).__name__ != "Embedding":
                continue
            weights = getattr(layer, "weights", None) or []
            if not weights:
                continue
            matrix = _convert.to_numpy(_weight_value(weights[0]))
            labels = None
            path = metadata.get(layer.name) if isinstance(metadata, dict) else metadata
            if isinstance(path, str):
                with open(path, encoding="utf-8") as f:
                    labels = [line.rstrip("\n") for line in f][: matrix.shape[0]]
                if len(labels) != matrix.shape[0]:
                    labels = None
            self.writer.add_embedding(matrix, metadata=labels, global_step=epoch,
                                      tag=layer.name, subrun="train")

    # ------------------------------------------------------------ optimizer

    def _optimizer(self):
        return getattr(self._model_ref, "optimizer", None)

    def _optimizer_iterations(self):
        iterations = getattr(self._optimizer(), "iterations", None)
        if iterations is None:
            return None
        try:
            return int(_convert.to_float(iterations))
        except (TypeError, ValueError):
            return None

    def _learning_rate(self):
        optimizer = self._optimizer()
        for attribute in ("learning_rate", "lr"):
            rate = getattr(optimizer, attribute, None)
            if rate is None:
                continue
            if callable(rate) and not hasattr(rate, "numpy"):
                try:
                    rate = rate(self._optimizer_iterations() or 0)
                except TypeError:
                    continue
            try:
                return _convert.to_float(rate)
            except (TypeError, ValueError):
                return None
        return None


def _warn_profile_batch(profile_batch):
    global _warned_profile_batch
    if _warned_profile_batch:
        return
    _warned_profile_batch = True
    warnings.warn(f"tblog.keras.TensorBoard: profile_batch={profile_batch!r} is ignored: tblogd "
                  "records no profiler traces (Keras has no profiler on the torch and numpy "
                  "backends either)", stacklevel=3)


def _is_number(value):
    if isinstance(value, (int, float, np.integer, np.floating)):
        return not isinstance(value, bool)
    shape = getattr(value, "shape", None)
    return shape is not None and int(np.prod(shape)) == 1


def _weight_name(weight):
    # Keras 3 names variables by path ("dense/kernel"); tf.keras by name ("dense/kernel:0").
    path = getattr(weight, "path", None)
    return path if isinstance(path, str) and path else str(getattr(weight, "name", "weight"))


def _weight_value(weight):
    numpy = getattr(weight, "numpy", None)
    return numpy() if callable(numpy) else weight


def _weight_image(values):
    """A weight as a gray HWC image in [0, 1], as Keras' write_images shows
    kernels: 2-D as is (transposed to be wider than tall), 1-D as a row."""
    if values.ndim == 1:
        values = values.reshape(1, -1)
    elif values.ndim != 2:
        return None
    if values.shape[0] > values.shape[1]:
        values = values.T
    values = values.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.reshape(values.shape + (1,))
