"""tblog.summary: the tf.summary calls a Keras callback or a training loop
uses, writing through tblogd without TensorFlow. Switch with one import:

    import tblog.summary as tf_summary       # was: import tensorflow as tf; tf.summary

    writer = tf_summary.create_file_writer("mnist/run1")
    with writer.as_default(step=0):
        tf_summary.scalar("loss", 0.25, step=10)

What is written matches tf.summary's forms: scalars as rank-0 float32
tensors (plugin "scalars"), histograms as TensorBoard 2's [k, 3] uniform
buckets (30 by default), images as string tensors [width, height, png...]
(up to max_outputs of a batch), text as string tensors (plugin "text"),
audio as the audio plugin's WAV tensors, hparams (tblog.summary.hp) as the
hparams plugin's session. The daemon computes histograms and encodes
PNG/WAV. Data may be NumPy arrays, torch tensors, TensorFlow eager tensors
(anything with .numpy() or __array__) or Python numbers and lists.

Differences from tf.summary, all in how values are converted, not in the
layout: float image pixels are scaled by 255 and truncated (TensorFlow
rounds: 0.5 -> 127 here, 128 there); audio keeps the first clip of a batch
(one clip per record); tf.summary.graph/trace_* and the v1 API are not
offered. The default writer and step are per thread, as in TensorFlow's
eager mode.
"""

import contextlib
import threading
import types

import numpy as np

from tblog import _convert
from tblog.writer import SummaryWriter as _TorchStyleWriter, _TENSOR
from tblog.v1 import tblog_pb2 as pb

__all__ = ["create_file_writer", "create_noop_writer", "SummaryWriter", "scalar", "histogram",
           "image", "text", "audio", "flush", "record_if", "should_record_summaries",
           "experimental", "hp"]

_context = threading.local()


def _state():
    if not hasattr(_context, "writers"):
        _context.writers = []        # the as_default() stack; [-1] is the default writer
        _context.step = None         # experimental.set_step's
        _context.record_if = []      # record_if() conditions
    return _context


class FileWriter:
    """What create_file_writer returns: a run of tblogd. Use as_default()
    (or set_as_default()) so the module's functions write to it."""

    def __init__(self, logdir, max_queue=None, flush_millis=None, address=None, **kwargs):
        options = dict(kwargs)
        if max_queue is not None:
            options["max_queue"] = int(max_queue)
        if flush_millis is not None:
            options["flush_secs"] = max(1, int(flush_millis) // 1000)
        self._writer = _TorchStyleWriter(logdir, address=address, **options)
        self._closed = False

    @property
    def writer(self):
        """The underlying tblog.SummaryWriter (torch-style calls on the same run)."""
        return self._writer

    @contextlib.contextmanager
    def as_default(self, step=None):
        """Makes this the default writer inside the block; with `step`, also
        the default step (restored on exit). Leaving the block flushes, as
        TensorFlow's does in eager mode."""
        state = _state()
        state.writers.append(self)
        previous = state.step
        if step is not None:
            state.step = int(_convert.to_float(step))
        try:
            yield self
        finally:
            state.writers.pop()
            if step is not None:
                state.step = previous
            self.flush()

    def set_as_default(self, step=None):
        """The default writer from now on in this thread (until replaced)."""
        state = _state()
        state.writers[:] = [self]
        if step is not None:
            state.step = int(_convert.to_float(step))

    def init(self):
        """Nothing to do: the run opened when the writer was created."""

    def flush(self):
        """Returns once everything written so far is in the event files."""
        if not self._closed:
            self._writer.flush()

    def close(self):
        """Flushes and closes the run; the writer cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# tf.summary.SummaryWriter is the writers' class: isinstance checks keep working.
SummaryWriter = FileWriter


class _NoopWriter:
    @contextlib.contextmanager
    def as_default(self, step=None):
        state = _state()
        state.writers.append(None)
        try:
            yield self
        finally:
            state.writers.pop()

    def set_as_default(self, step=None):
        _state().writers[:] = [None]

    def init(self):
        pass

    flush = close = init


def create_file_writer(logdir, max_queue=None, flush_millis=None, filename_suffix=None,
                       name=None, experimental_trackable=False, *, address=None, **kwargs):
    """tf.summary.create_file_writer: a writer for the run `logdir` (a path
    under the daemon's logdir, or an absolute path as tblog.SummaryWriter
    maps it). address and further keywords go to tblog.SummaryWriter.
    filename_suffix, name and experimental_trackable are accepted and unused
    (the daemon names the event files)."""
    return FileWriter(logdir, max_queue=max_queue, flush_millis=flush_millis, address=address,
                      **kwargs)


def create_noop_writer():
    """A writer that writes nothing (tf.summary.create_noop_writer)."""
    return _NoopWriter()


# ------------------------------------------------------------ step, record_if

def _get_step():
    return _state().step


def _set_step(step):
    _state().step = None if step is None else int(_convert.to_float(step))


experimental = types.SimpleNamespace(get_step=_get_step, set_step=_set_step)


@contextlib.contextmanager
def record_if(condition):
    """Writes only while `condition` (a bool, or a callable returning one)
    holds, as tf.summary.record_if."""
    state = _state()
    state.record_if.append(condition)
    try:
        yield
    finally:
        state.record_if.pop()


def should_record_summaries():
    """True when a default writer is set and every record_if condition holds."""
    state = _state()
    if not state.writers or state.writers[-1] is None:
        return False
    for condition in state.record_if:
        if not (condition() if callable(condition) else condition):
            return False
    return True


def _target(name, step):
    """(tblog.SummaryWriter, step) to write to, or None when nothing is written."""
    if not should_record_summaries():
        return None
    if step is None:
        step = _state().step
        if step is None:
            raise ValueError(f"{name}: no step: pass step=, or set one with "
                             "tblog.summary.experimental.set_step() or as_default(step=)")
    writer = _state().writers[-1]
    if writer._closed:
        raise RuntimeError(f"{name}: the default writer is closed")
    return writer._writer, int(_convert.to_float(step))


# ------------------------------------------------------------------- summaries

def scalar(name, data, step=None, description=None):
    """A rank-0 float32 tensor, plugin "scalars". Returns True when written,
    False without a default writer (tf.summary.scalar's contract)."""
    target = _target("scalar", step)
    if target is None:
        return False
    writer, step = target
    value = _convert.to_float(data)
    if description:
        return _described(writer, name, step, description,
                          lambda r: r.scalar.CopyFrom(pb.Scalar(value=value, style=_TENSOR)), 8)
    writer._scalar(name, "", value, step, _now(), _TENSOR)
    return True


def histogram(name, data, step=None, buckets=None, description=None):
    """TensorBoard 2's histogram: `buckets` (default 30) equal-width buckets
    between the minimum and the maximum, computed by the daemon."""
    target = _target("histogram", step)
    if target is None:
        return False
    writer, step = target
    values = _convert.to_numpy(data)
    if values.dtype == np.bool_:
        values = values.astype(np.float32)
    count = 30 if buckets is None else int(buckets)
    if count < 1:
        raise ValueError(f"histogram: buckets must be at least 1, got {buckets}")
    writer._histogram(name, values, step, count, None, None, "", description=description)
    return True


def image(name, data, step=None, max_outputs=3, description=None):
    """Images [k, h, w, c] (c 1, 2, 3 or 4; uint8, or float in [0, 1]); the
    first max_outputs are kept, browsable in the dashboard."""
    target = _target("image", step)
    if target is None:
        return False
    writer, step = target
    array = _convert.to_numpy(data)
    if array.ndim != 4 or array.shape[3] not in (1, 2, 3, 4):
        raise ValueError(f"image: data must be [k, h, w, c] with c in 1..4, got {array.shape}")
    if int(max_outputs) < 1:
        raise ValueError(f"image: max_outputs must be at least 1, got {max_outputs}")
    writer._image(name, array, pb.PIXEL_LAYOUT_NHWC, step, None, "",
                  max_outputs=int(max_outputs), description=description)
    return True


def text(name, data, step=None, description=None):
    """A string (Markdown), or a 1-D/2-D array of strings shown as a table."""
    target = _target("text", step)
    if target is None:
        return False
    writer, step = target
    if isinstance(data, (str, bytes)):
        message = pb.Text(markdown=_str(data))
    else:
        array = np.asarray(_convert.to_numpy(data) if hasattr(data, "numpy") else data,
                           dtype=object)
        if array.ndim == 0:
            message = pb.Text(markdown=_str(array.item()))
        elif array.ndim in (1, 2):
            message = pb.Text(table=pb.StringTable(shape=list(array.shape),
                                                   cells=[_str(c) for c in array.reshape(-1)]))
        else:
            raise ValueError(f"text: data of rank {array.ndim}; expected a string or rank 1-2")
    return _described(writer, name, step, description, lambda r: r.text.CopyFrom(message),
                      message.ByteSize())


def audio(name, data, sample_rate, step=None, max_outputs=3, encoding=None, description=None):
    """Audio [k, frames, channels] float in [-1, 1] (clipped), encoded as WAV
    by the daemon. tblog keeps the first clip of the batch."""
    target = _target("audio", step)
    if target is None:
        return False
    writer, step = target
    if encoding not in (None, "wav"):
        raise ValueError(f"audio: unknown encoding {encoding!r}; only 'wav'")
    array = _convert.to_numpy(data)
    if array.ndim != 3:
        raise ValueError(f"audio: data must be [k, frames, channels], got shape {array.shape}")
    clip = np.clip(array[0], -1.0, 1.0).astype(np.float32)
    parts = _convert.tensor_parts(np.ascontiguousarray(clip))
    rate = float(_convert.to_float(sample_rate))
    message = pb.Audio(sample_rate=rate,
                       samples=pb.Tensor(dtype=parts[0], shape=parts[1], data=parts[2]))
    return _described(writer, name, step, description, lambda r: r.audio.CopyFrom(message),
                      len(parts[2]))


def flush(writer=None, name=None):
    """Flushes `writer`, else the default writer (tf.summary.flush)."""
    target = writer
    if target is None:
        writers = _state().writers
        target = writers[-1] if writers else None
    if target is not None:
        target.flush()


# ------------------------------------------------------------------- helpers

def _now():
    import time
    return time.time()


def _str(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _described(writer, name, step, description, fill, nbytes):
    writer._check()
    writer._record(name, step, None, fill, nbytes, "", description=description)
    return True


from tblog.summary import hp  # noqa: E402  (tblog.summary.hp needs the names above)
