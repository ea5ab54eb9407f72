"""tblog.SummaryWriter: torch.utils.tensorboard.SummaryWriter's API, writing
through the tblogd daemon instead of in-process.

Every add_* call only converts its arguments to plain numbers or one bytes
copy of an array and appends them to a buffer; a background thread builds
the protobuf batches and streams them to the daemon (see _stream.py). The
daemon computes histograms, encodes PNG/WAV and writes the event files.
Errors the daemon reports surface as TblogError on the next add_*, flush()
or close() call.
"""

import atexit
import datetime
import os
import posixpath
import socket
import threading
import time
import uuid
import weakref

import numpy as np

from tblog import _connect, _convert, _media, _shm
from tblog._channel import open_channel
from tblog._stream import CHANNEL_OPTIONS, Stream, Wire, _Record, kind_number, tensor_wire
from tblog.v1 import tblog_pb2 as pb

DEFAULT_ADDRESS = "127.0.0.1:6066"

_SIMPLE = pb.SCALAR_STYLE_SIMPLE_VALUE
_TENSOR = pb.SCALAR_STYLE_TENSOR
_FLOATS = (1, 2)            # DTYPE_FLOAT32, DTYPE_FLOAT64
_PIXELS = (1, 2, 4)         # float32, float64, uint8


_live_writers = weakref.WeakSet()
_live_lock = threading.Lock()


def _default_address():
    return os.environ.get("TBLOG_ADDRESS") or DEFAULT_ADDRESS


def run_path_for(log_dir, comment=""):
    """The run path (relative to the daemon's logdir) for a torch-style log_dir.

    - None or "": "runs/<Mon DD_HH-MM-SS>_<host><comment>", as PyTorch names it.
    - relative: used as is (normalized: no "./", no trailing "/").
    - absolute, with $TBLOG_LOGDIR set (where the daemon's logdir is on this
      side: a mounted volume, or the daemon's own --logdir on the same host):
      the path relative to it ("/mnt/logs/exp/a" -> "exp/a"); a path outside
      it is refused (ValueError saying what to do), since the daemon cannot
      write there and mapping it would let two paths name one run.
    - absolute, without $TBLOG_LOGDIR: the whole path below the daemon's
      logdir ("/home/alice/exp_lr0.1/tb" -> "home/alice/exp_lr0.1/tb"), so
      two different paths never become one run.
    """
    if log_dir is None or (isinstance(log_dir, str) and log_dir == ""):
        stamp = datetime.datetime.now().strftime("%b%d_%H-%M-%S")
        return posixpath.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
    log_dir = os.fspath(log_dir)
    if not os.path.isabs(log_dir):
        return _relative(log_dir, log_dir)
    path = os.path.normpath(log_dir)
    root = os.environ.get("TBLOG_LOGDIR")
    if root:
        root = os.path.normpath(os.path.abspath(root))
        if not path.startswith(root.rstrip(os.sep) + os.sep):
            raise ValueError(
                f"tblog: log_dir {log_dir!r} is not below TBLOG_LOGDIR={root!r} (where this "
                "process sees the daemon's log directory), and the daemon writes only there. "
                "Pass a path below it or a relative one (a run path under the daemon's logdir), "
                "or unset TBLOG_LOGDIR to map the whole path below the daemon's logdir")
        return os.path.relpath(path, root).replace(os.sep, "/")
    return _relative(path.lstrip(os.sep), log_dir)


def _relative(path, log_dir):
    path = posixpath.normpath(path.replace(os.sep, "/"))
    if path in (".", "", "..") or path.startswith("../"):
        raise ValueError(f"log_dir {log_dir!r} does not name a directory below the logdir")
    return path


def _step(global_step):
    if global_step is None:
        return 0
    if isinstance(global_step, (int, np.integer)):
        return int(global_step)
    return int(_convert.to_float(global_step))


def _tensor(parts):
    """A Tensor Wire from tensor_parts(), its data uncopied: built on the
    sender thread."""
    return tensor_wire(*parts)


def _field(message, name):
    return message.DESCRIPTOR.fields_by_name[name].number


_HISTOGRAM = kind_number("histogram")
_IMAGE = kind_number("image")
_AUDIO = kind_number("audio")
_PR_CURVE = kind_number("pr_curve")
_EMBEDDING = kind_number("embedding")
_VIDEO = kind_number("video")
_MESH = kind_number("mesh")
_HISTOGRAM_VALUES = _field(pb.Histogram, "values")
_SCALAR_OPS = {"mean": pb.REDUCE_OP_MEAN, "sum": pb.REDUCE_OP_SUM, "min": pb.REDUCE_OP_MIN,
               "max": pb.REDUCE_OP_MAX, "count": pb.REDUCE_OP_COUNT}
_HISTOGRAM_OPS = {"merge": pb.REDUCE_OP_MERGE}


def _group_size(group_size):
    """The run's reduce group size: `group_size`, else $WORLD_SIZE, else 0."""
    if group_size is not None:
        if int(group_size) < 0:
            raise ValueError(f"group_size must be >= 0, not {group_size}")
        return int(group_size)
    world = os.environ.get("WORLD_SIZE", "")
    return int(world) if world.isdigit() else 0


def _reduce_message(op, weight, group_size, keep, ops):
    """The Record.reduce of add_scalar/add_histogram's reduce arguments."""
    if op not in ops:
        raise ValueError(f"reduce={op!r}: expected one of {', '.join(map(repr, ops))}")
    reduce = pb.Reduce(op=ops[op], keep_contributions=bool(keep))
    if weight is not None:
        reduce.weight = float(weight)
    if group_size is not None:
        reduce.group_size = int(group_size)
    return reduce
_IMAGE_PIXELS = _field(pb.Image, "pixels")
_AUDIO_SAMPLES = _field(pb.Audio, "samples")
_PR_CURVE_PREDICTIONS = _field(pb.PrCurve, "predictions")
_PR_LABELS = _field(pb.PrPredictions, "labels")
_PR_PREDICTIONS = _field(pb.PrPredictions, "predictions")
_PR_WEIGHTS = _field(pb.PrPredictions, "weights")
_EMBEDDING_MATRIX = _field(pb.Embedding, "matrix")
_EMBEDDING_LABEL_IMG = _field(pb.Embedding, "label_img")
_VIDEO_FRAMES = _field(pb.Video, "frames")
_MESH_PARTS = tuple((name, _field(pb.Mesh, name)) for name in ("vertices", "faces", "colors"))


class SummaryWriter:
    """Writes TensorBoard logs through tblogd; a drop-in replacement for
    torch.utils.tensorboard.SummaryWriter.

    Extra keyword arguments: `address` (default: $TBLOG_ADDRESS or
    127.0.0.1:6066; "unix:/path" for a unix socket), `experiment` and `name`
    (use the daemon's timestamped layout <experiment>/<YYYYmmdd-HHMMSS>-<name>
    instead of a torch log_dir), `labels` (dict, reported by ListRuns),
    `connect_timeout` (seconds to wait for the daemon at start; default
    $TBLOG_CONNECT_TIMEOUT or 5: an unreachable daemon fails with a message
    naming the address and the cause; raise it for a daemon still starting),
    `hparams` (dict: the run's hyperparameters, sent when the run opens, as
    TensorBoard's hparams plugin records them at the start; add_hparams at
    the end still works),
    `max_buffer_bytes` (memory the buffer may hold before add_* calls wait).
    `connection`: TLS and token settings, a dict of tblog._channel.open_channel's
    keywords (tls, tls_ca, tls_cert, tls_key, tls_server_name, token); those
    not given come from TBLOG_TLS*, TBLOG_TOKEN (see the package README).

    max_queue: after this many non-scalar records the background thread sends
    at once instead of at its next tick (50 ms). flush_secs: the longest time
    between flushes of the daemon's files requested by this writer (the daemon
    also flushes on its own, about every second).
    Thread-safe: several threads may log through one writer.
    """

    def __init__(self, log_dir=None, comment="", purge_step=None, max_queue=10,
                 flush_secs=120, filename_suffix="", *, address=None, experiment=None,
                 name=None, labels=None, connect_timeout=None, max_buffer_bytes=256 << 20,
                 connection=None, hparams=None, group_size=None, reduce_timeout=None):
        self._address = address or _default_address()
        self._closed = True
        self._stream = None
        self._file_writer = None
        self._reopen_lock = threading.Lock()   # one reopen when threads race after close()
        request = pb.OpenRunRequest(filename_suffix=filename_suffix)
        if not log_dir and (experiment is not None or name is not None):
            request.experiment = experiment or ""
            request.name = name or ""
        else:
            request.run_path = run_path_for(log_dir, comment)
        if purge_step is not None:
            request.purge_step = int(purge_step)
        request.labels["host"] = socket.gethostname()
        request.labels["pid"] = str(os.getpid())
        for key, value in (labels or {}).items():
            request.labels[str(key)] = str(value)
        if hparams:
            request.hparams.CopyFrom(_hparams_message(hparams, (), None, torch_style=False))
        # Reductions (add_scalar(..., reduce="mean")): the group is the job's
        # ranks, WORLD_SIZE as torchrun/DeepSpeed/Lightning set it.
        request.reduce_group_size = _group_size(group_size)
        if reduce_timeout is not None:
            request.reduce_timeout_seconds = float(reduce_timeout)
        self._stream_args = dict(max_buffer_bytes=max_buffer_bytes, wake_records=max_queue,
                                 flush_secs=flush_secs,
                                 connect_timeout=_connect.connect_timeout(connect_timeout))
        self._connection = connection or {}
        self._start(request)

    def _start(self, request):
        """Opens the run (a new writer id: this writer holds the run until
        close() or its lease expires) and starts the background stream."""
        request.writer_id = uuid.uuid4().hex
        self._open_request = request

        def new_channel():
            return open_channel(self._address, CHANNEL_OPTIONS, **self._connection)
        self._channel = new_channel()
        try:
            self._stream = Stream(self._channel, request, writer_id=request.writer_id,
                                  new_channel=new_channel, address=self._address,
                                  **self._stream_args)
        except BaseException:
            self._channel.close()
            raise
        self.daemon_directory = self._stream.directory
        root = os.environ.get("TBLOG_LOGDIR")
        # What the trainer can use on its side: under TBLOG_LOGDIR when set.
        self.log_dir = (os.path.join(os.path.abspath(root), *self._stream.run_path.split("/"))
                        if root else self.daemon_directory)
        self._scalar_tags = {}     # (tag, subrun, style) -> index, without the lock
        self._simple_tags = {}     # tag -> index: add_scalar's own, for speed
        self._tensor_tags = {}
        self._points = self._stream.points
        self._full_entries = self._stream.full_entries
        # Last: add_* calls of other threads go on without the lock once it is False.
        self._closed = False
        with _live_lock:
            _live_writers.add(self)

    def _reopen(self):
        """Torch reopens a closed writer on its next add_*: so does this one,
        resuming the same run (new event files; the hparams, purge_step and
        layout of the first open are not repeated)."""
        request = pb.OpenRunRequest()
        request.CopyFrom(self._open_request)
        request.run_path = self._stream.run_path
        request.ClearField("experiment")
        request.ClearField("name")
        request.ClearField("purge_step")
        request.ClearField("hparams")
        self._start(request)

    # ---------------------------------------------------------------- basics

    def get_logdir(self):
        """The run's directory as this process sees it: under $TBLOG_LOGDIR
        when that is set (the daemon's logdir as mounted here), else the
        daemon's own path (daemon_directory; the same on one host)."""
        return self.log_dir

    def _get_file_writer(self):
        """PyTorch's FileWriter of this writer, as PyTorch Lightning's
        TensorBoardLogger uses it: add_summary, add_event, flush, close,
        get_logdir. Reopens the run after close(), as torch does."""
        if self._closed:
            self._check()
        if self._file_writer is None:
            from tblog._file_writer import FileWriter
            self._file_writer = FileWriter(self)
        return self._file_writer

    @property
    def run_path(self):
        """The run's directory relative to the daemon's logdir."""
        return self._stream.run_path

    def _check(self):
        if self._closed:
            with self._reopen_lock:
                if self._closed:
                    self._reopen()
        if self._stream.failure is not None:
            self._stream.take_errors()

    def _scalar(self, tag, subrun, value, global_step, walltime, style):
        key = (tag, subrun, style)
        index = self._scalar_tags.get(key)
        if index is None:
            index = self._stream.tag_index(tag, subrun, style)
            self._scalar_tags[key] = index
        points = self._points  # a point's entries go in at once (Stream.points)
        points += (index, global_step, value,
                   time.time() if walltime is None else float(walltime))
        if len(points) >= self._full_entries:
            self._stream.points_full()
        elif self._stream.send_now:
            self._stream.wake()

    def _record(self, tag, global_step, walltime, fill, nbytes, subrun="", parts=None,
                description=None):
        # `parts`: the tensor_parts of the record's tensor, whose ring slice
        # (if it has one) is freed once the record's batch is acknowledged.
        slices = (parts[2],) if parts is not None and isinstance(parts[2], _shm.Slice) else ()
        limit = self._stream.max_record_bytes
        if nbytes > limit:
            # (A tensor in the ring counts 0 bytes here: its request names the slice.)
            via = (f", and it could not go through shared memory: {self._stream.shm_error}"
                   if parts is not None else "")
            raise ValueError(f"tblog: {tag!r} carries {nbytes} bytes of data, more than the "
                             f"{limit} one request may carry (tblogd's --max-message-size, "
                             f"64 MiB by default, less 1 MiB){via}; log it in smaller pieces "
                             "(fewer images per call, a sample of the values)")
        if description:
            text, fill_kind = str(description), fill

            def fill(record):
                record.description = text
                return fill_kind(record)
        self._stream.add_record(_Record(
            tag, _step(global_step), time.time() if walltime is None else float(walltime),
            subrun, fill, nbytes, slices))

    # --------------------------------------------------------------- scalars

    def add_scalar(self, tag, scalar_value, global_step=None, walltime=None, new_style=False,
                   double_precision=False, *, reduce=None, weight=None, group_size=None,
                   keep_contributions=False):
        """One point of a scalar curve. new_style=True stores TensorBoard 2's
        tensor form (default: PyTorch's simple_value). With new_style=True,
        double_precision=True stores the value as float64 (a DT_DOUBLE
        tensor), as PyTorch does; simple_value is float32 in any case.

        reduce="mean" (or "sum", "min", "max", "count"): this writer's (rank's)
        contribution to one point reduced across the run's writers; the daemon
        writes the point once the group (group_size, default the writer's
        group_size / WORLD_SIZE) has reported, or at its timeout. weight:
        "mean" only, e.g. the batch size. keep_contributions: also write this
        writer's own value under "<tag>/by_writer/<writer id>"."""
        if reduce is not None:
            self._check()
            self._reduced(tag, global_step, walltime, _reduce_message(
                reduce, weight, group_size, keep_contributions, _SCALAR_OPS),
                pb.Scalar(value=_convert.to_float(scalar_value),
                          style=pb.SCALAR_STYLE_TENSOR if new_style
                          else pb.SCALAR_STYLE_SIMPLE_VALUE))
            return
        # The hot path: a few dict/list operations, no lock, no protobuf.
        if self._stream.failure is not None or self._closed:
            self._check()
        if double_precision and new_style:
            self._scalar_f64(tag, scalar_value, global_step, walltime)
            return
        kind = type(scalar_value)
        if kind is not float:
            scalar_value = float(scalar_value) if kind is int else _convert.to_float(scalar_value)
        if type(global_step) is not int:
            global_step = _step(global_step)
        index = (self._tensor_tags if new_style else self._simple_tags).get(tag)
        if index is None:
            index = self._new_tag(tag, new_style)
        points = self._points  # a point's entries go in at once (Stream.points)
        if walltime is None:
            walltime = time.time()
        elif type(walltime) is not float:
            walltime = float(walltime)  # here, not on the sender (its error would end the stream)
        points += (index, global_step, scalar_value, walltime)
        if len(points) >= self._full_entries:
            self._stream.points_full()
        elif self._stream.send_now:  # the sender is idle: this point goes out now
            self._stream.wake()

    def _reduced(self, tag, global_step, walltime, reduce, scalar):
        def fill(record):
            record.scalar.CopyFrom(scalar)
            record.reduce.CopyFrom(reduce)
        self._record(tag, global_step, walltime, fill, 16)

    def _scalar_f64(self, tag, scalar_value, global_step, walltime):
        # A record of its own: the columns carry float32 values.
        scalar = pb.Scalar(value_f64=_convert.to_float(scalar_value), style=_TENSOR)

        def fill(record):
            record.scalar.CopyFrom(scalar)
        self._record(tag, global_step, walltime, fill, 16)

    def _new_tag(self, tag, new_style):
        style = _TENSOR if new_style else _SIMPLE
        index = self._stream.tag_index(tag, "", style)
        (self._tensor_tags if new_style else self._simple_tags)[tag] = index
        return index

    def add_scalars(self, main_tag, tag_scalar_dict, global_step=None, walltime=None):
        """Several curves on one chart, as PyTorch does it: each key is a
        sub-run "<main_tag>_<key>" ('/' in main_tag becomes '_') holding the
        scalar `main_tag`."""
        self._check()
        step = _step(global_step)
        wall = time.time() if walltime is None else float(walltime)
        prefix = main_tag.replace("/", "_")
        for key, value in tag_scalar_dict.items():
            self._scalar(main_tag, f"{prefix}_{key}", _convert.to_float(value), step, wall,
                         _SIMPLE)

    # ------------------------------------------------------------ histograms

    def add_histogram(self, tag, values, global_step=None, bins="tensorflow", walltime=None,
                      max_bins=None, *, reduce=None, group_size=None, keep_contributions=False):
        """A histogram of `values` (any shape), computed by the daemon.
        bins='tensorflow': TensorFlow's exponential buckets, as PyTorch writes
        them; an int: that many equal-width buckets; any other numpy bins
        method: TensorBoard 2's 30 equal-width buckets (max_bins, if given,
        caps the count). reduce="merge" (bins='tensorflow' only): one histogram
        of every writer's (rank's) values at this step, as add_scalar's reduce."""
        self._check()
        merge = None
        if reduce is not None:
            if not (isinstance(bins, str) and bins == "tensorflow"):
                raise ValueError("add_histogram(reduce='merge') needs bins='tensorflow': "
                                 "equal-width buckets depend on each rank's min and max and "
                                 "cannot be merged")
            merge = _reduce_message(reduce, None, group_size, keep_contributions, _HISTOGRAM_OPS)
        self._histogram(tag, values, global_step, bins, walltime, max_bins, "", merge)

    def tensor_buffer(self, shape, dtype=np.float32):
        """Zero-copy: a numpy array to compute a tensor into, then log with
        add_histogram (or add_image): with a daemon on this host it lies in
        the shared-memory ring, and the daemon reads it where it was written
        (no copy on the training thread); else it is a plain array. A full
        ring waits (at most 2 s) for the daemon to give slices back, unless
        the oldest is another buffer not logged yet. Log it once; writing
        into it after logging may log garbage. README "Shared memory"."""
        return self._stream.tensor_buffer(tuple(np.atleast_1d(shape)), dtype)

    def _histogram(self, tag, values, global_step, bins, walltime, max_bins, subrun,
                   reduce=None, description=None):
        # The training thread pays one copy (tobytes); the message is built
        # on the sender thread.
        # A uniform histogram's slice carries its range (tblog.proto
        # ShmSlice.range): the daemon then reads it once instead of twice.
        parts = self._stream.tensor_parts(_convert.to_numpy(values),
                                          with_range=not (isinstance(bins, str)
                                                          and bins == "tensorflow"))
        layout, bucket_count = pb.HISTOGRAM_LAYOUT_UNIFORM, 0
        if isinstance(bins, str) and bins == "tensorflow":
            layout = pb.HISTOGRAM_LAYOUT_EXPONENTIAL
        elif isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
            bucket_count = int(bins)
        elif not isinstance(bins, str):
            bucket_count = max(1, len(bins) - 1)
        if max_bins is not None and layout == pb.HISTOGRAM_LAYOUT_UNIFORM:
            bucket_count = min(bucket_count or 30, int(max_bins))

        def fill(record):
            if reduce is not None:
                record.reduce.CopyFrom(reduce)
            head = pb.Histogram(layout=layout, bucket_count=bucket_count)
            return _HISTOGRAM, Wire(head.SerializeToString()).add(_HISTOGRAM_VALUES, _tensor(parts))
        self._record(tag, global_step, walltime, fill, len(parts[2]), subrun, parts, description)

    def add_histogram_raw(self, tag, min, max, num, sum, sum_squares, bucket_limits,
                          bucket_counts, global_step=None, walltime=None):
        """PyTorch's add_histogram_raw. tblog.v1 carries raw values, not
        buckets, so the buckets are sent as values: each bucket's count at
        its centre (min and max exact), bucketed by the daemon into
        len(bucket_counts) equal-width buckets between min and max. Equal-width
        bucket_limits (numpy.histogram's) come out with the same counts;
        others are re-bucketed, and sum/sum_squares are recomputed from the
        centres. Counts must be whole numbers, at most 2**24 in all."""
        # The argument names are torch's (min, max, sum shadow builtins there too).
        self._check()
        limits = _convert.to_numpy(bucket_limits).astype(np.float64).reshape(-1)
        counts = _convert.to_numpy(bucket_counts).astype(np.float64).reshape(-1)
        if len(limits) != len(counts) or not len(counts):
            raise ValueError(f"add_histogram_raw: {len(limits)} bucket_limits for "
                             f"{len(counts)} bucket_counts; expected the same number, >= 1")
        if np.any(counts < 0) or np.any(counts != np.round(counts)):
            raise ValueError("add_histogram_raw: bucket_counts must be whole numbers >= 0")
        total = int(counts.sum())
        if total != int(num):
            raise ValueError(f"add_histogram_raw: num={num} but bucket_counts add up to {total}")
        if total > 1 << 24:
            raise ValueError(f"add_histogram_raw: {total} values is more than tblog sends as "
                             "values (2**24); use add_histogram with the values")
        low, high = float(min), float(max)
        lower = np.concatenate(([low], limits[:-1]))
        centres = (np.clip(lower, low, high) + np.clip(limits, low, high)) / 2
        values = np.repeat(centres, counts.astype(np.int64))
        if total:
            values[0], values[-1] = low, high
        self._histogram(tag, values, global_step, len(counts), walltime, None, "")

    # ---------------------------------------------------------------- images

    def add_image(self, tag, img_tensor, global_step=None, walltime=None, dataformats="CHW"):
        """An image: uint8 in [0, 255] or float in [0, 1]; dataformats CHW,
        HWC or HW. The daemon encodes PNG (PyTorch's Summary.Image form)."""
        self._check()
        array = _convert.to_numpy(img_tensor)
        fmt = dataformats.upper()
        layouts = {"CHW": pb.PIXEL_LAYOUT_CHW, "HWC": pb.PIXEL_LAYOUT_HWC,
                   "HW": pb.PIXEL_LAYOUT_HWC}
        if fmt not in layouts:
            raise ValueError(f"add_image: dataformats {dataformats!r}: expected CHW, HWC or HW")
        if array.ndim != len(fmt):
            raise ValueError(f"add_image: image of shape {array.shape} does not match "
                             f"dataformats {dataformats!r}")
        _check_channels(array, fmt, dataformats)
        self._image(tag, array, layouts[fmt], global_step, walltime)

    def add_images(self, tag, img_tensor, global_step=None, walltime=None, dataformats="NCHW",
                   *, max_outputs=None):
        """A batch of images, tiled into one grid image as PyTorch does;
        dataformats NCHW, NHWC or NHW. With max_outputs=k the batch is kept
        as TensorBoard 2 images instead (tf.summary.image's form): up to k of
        them, browsable one by one in the dashboard."""
        self._check()
        array = _convert.to_numpy(img_tensor)
        fmt = dataformats.upper()
        if fmt == "NHW":
            array = array.reshape(array.shape + (1,))
            fmt = "NHWC"
        layouts = {"NCHW": pb.PIXEL_LAYOUT_NCHW, "NHWC": pb.PIXEL_LAYOUT_NHWC}
        if fmt not in layouts:
            raise ValueError(f"add_images: dataformats {dataformats!r}: expected NCHW, NHWC or NHW")
        if array.ndim != 4:
            raise ValueError(f"add_images: images of shape {array.shape} do not match "
                             f"dataformats {dataformats!r}")
        _check_channels(array, fmt, dataformats)
        if max_outputs is not None and int(max_outputs) < 1:
            raise ValueError(f"add_images: max_outputs must be at least 1, got {max_outputs}")
        self._image(tag, array, layouts[fmt], global_step, walltime, max_outputs=max_outputs)

    def _image(self, tag, array, layout, global_step, walltime, subrun="", max_outputs=None,
               description=None):
        if array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        parts = self._stream.tensor_parts(array, _PIXELS)

        def fill(record):
            if max_outputs is None:
                head = pb.Image(layout=layout, style=pb.IMAGE_STYLE_SUMMARY_IMAGE)
            else:
                head = pb.Image(layout=layout, style=pb.IMAGE_STYLE_TENSOR,
                                max_outputs=int(max_outputs))
            return _IMAGE, Wire(head.SerializeToString()).add(_IMAGE_PIXELS, _tensor(parts))
        self._record(tag, global_step, walltime, fill, len(parts[2]), subrun, parts, description)

    def _encoded_image(self, tag, encoded, global_step, walltime):
        """PNG or JPEG bytes as PyTorch's Summary.Image (the daemon checks
        the signature)."""
        self._check()
        image = pb.Image(encoded=bytes(encoded), style=pb.IMAGE_STYLE_SUMMARY_IMAGE)

        def fill(record):
            record.image.CopyFrom(image)
        self._record(tag, global_step, walltime, fill, len(image.encoded))

    def add_image_with_boxes(self, tag, img_tensor, box_tensor, global_step=None, walltime=None,
                             rescale=1, dataformats="CHW", labels=None):
        """An image with boxes [N, 4] (xmin, ymin, xmax, ymax) and optional
        labels drawn in, as PyTorch draws them (needs Pillow, as torch does)."""
        self._check()
        from tblog._boxes import image_with_boxes
        pixels = image_with_boxes(img_tensor, box_tensor, rescale, dataformats, labels)
        self._image(tag, pixels, pb.PIXEL_LAYOUT_HWC, global_step, walltime)

    def add_figure(self, tag, figure, global_step=None, close=True, walltime=None):
        """A matplotlib figure (or a list of them), rendered to RGBA pixels."""
        figures = figure if isinstance(figure, (list, tuple)) else [figure]
        images = []
        for fig in figures:
            canvas = fig.canvas
            canvas.draw()
            width, height = canvas.get_width_height()
            images.append(np.frombuffer(canvas.buffer_rgba(), dtype=np.uint8)
                          .reshape(height, width, 4).copy())
            if close:
                try:
                    import matplotlib.pyplot as plt
                    plt.close(fig)
                except ImportError:
                    pass
        if isinstance(figure, (list, tuple)):
            self.add_images(tag, np.stack(images), global_step, walltime, dataformats="NHWC")
        else:
            self.add_image(tag, images[0], global_step, walltime, dataformats="HWC")

    # ------------------------------------------------------------ text, audio

    def add_text(self, tag, text_string, global_step=None, walltime=None):
        """Markdown text, under "<tag>/text_summary" as PyTorch writes it."""
        self._check()
        text = pb.Text(markdown=str(text_string), torch_style=True)

        def fill(record):
            record.text.CopyFrom(text)
        self._record(tag, global_step, walltime, fill, len(text.markdown))

    def add_audio(self, tag, snd_tensor, global_step=None, sample_rate=44100, walltime=None):
        """A clip of float samples in [-1, 1] (clipped), shape [L], [1, L] or
        [L, channels]; encoded to 16-bit WAV by the daemon."""
        self._check()
        array = _convert.to_numpy(snd_tensor)
        if array.ndim == 2 and array.shape[0] == 1:
            array = array.reshape(-1)
        array = np.clip(array, -1.0, 1.0).astype(np.float32, copy=False)
        parts = _convert.tensor_parts(array)
        rate = float(sample_rate)

        def fill(record):
            head = pb.Audio(sample_rate=rate, torch_style=True)
            return _AUDIO, Wire(head.SerializeToString()).add(_AUDIO_SAMPLES, _tensor(parts))
        self._record(tag, global_step, walltime, fill, len(parts[2]))

    def add_video(self, tag, vid_tensor, global_step=None, fps=4, walltime=None):
        """Clips [N, T, C, H, W] (uint8, or float in [0, 1]), tiled into one
        clip as PyTorch tiles them; the daemon encodes a looping GIF shown
        in the image dashboard (PyTorch's form, without moviepy)."""
        self._check()
        rate = float(fps)
        if not rate > 0 or rate == float("inf"):
            raise ValueError(f"add_video: fps must be finite and > 0, got {fps!r}")
        parts = _convert.tensor_parts(_media.video_frames(vid_tensor), _PIXELS)

        def fill(record):
            return _VIDEO, Wire(pb.Video(fps=rate).SerializeToString()).add(_VIDEO_FRAMES,
                                                                           _tensor(parts))
        self._record(tag, global_step, walltime, fill, len(parts[2]))

    def add_mesh(self, tag, vertices, colors=None, faces=None, config_dict=None,
                 global_step=None, walltime=None):
        """A mesh or point cloud for the mesh plugin: vertices [B, N, 3],
        optional colors [B, N, 3] in [0, 255] and faces [B, F, 3] (vertex
        indices); config_dict holds ThreeJS settings, as in PyTorch."""
        self._check()
        tensors = {"vertices": _media.mesh_tensor("vertices", vertices),
                   "faces": _media.mesh_tensor("faces", faces),
                   "colors": _media.mesh_tensor("colors", colors)}
        parts = {name: _convert.tensor_parts(array) for name, array in tensors.items()
                 if array is not None}
        head = pb.Mesh(config_json=_media.mesh_json(config_dict)).SerializeToString()

        def fill(record):
            wire = Wire(head)
            for name, number in _MESH_PARTS:
                if name in parts:
                    wire.add(number, _tensor(parts[name]))
            return _MESH, wire
        self._record(tag, global_step, walltime, fill, sum(len(p[2]) for p in parts.values()))

    def add_onnx_graph(self, *args, **kwargs):
        raise NotImplementedError("tblog: add_onnx_graph is not supported by tblogd")

    # ------------------------------------------------------------- PR curves

    def add_pr_curve(self, tag, labels, predictions, global_step=None, num_thresholds=127,
                     weights=None, walltime=None):
        """A precision-recall curve from labels (bool or 0/1) and predictions
        in [0, 1]; the daemon counts them at num_thresholds thresholds."""
        self._check()
        label_parts = _convert.tensor_parts(
            _convert.to_numpy(labels).astype(np.float32, copy=False), _FLOATS)
        pred_parts = _convert.tensor_parts(_convert.to_numpy(predictions), _FLOATS)
        weight_parts = None
        if weights is not None:
            weight_parts = _convert.tensor_parts(_convert.to_numpy(weights), _FLOATS)
        thresholds = int(num_thresholds)

        def fill(record):
            data = Wire(pb.PrPredictions(num_thresholds=thresholds).SerializeToString())
            data.add(_PR_LABELS, _tensor(label_parts)).add(_PR_PREDICTIONS, _tensor(pred_parts))
            if weight_parts is not None:
                data.add(_PR_WEIGHTS, _tensor(weight_parts))
            return _PR_CURVE, Wire().add(_PR_CURVE_PREDICTIONS, data)
        self._record(tag, global_step, walltime, fill, 2 * len(pred_parts[2]))

    def add_pr_curve_raw(self, tag, true_positive_counts, false_positive_counts,
                         true_negative_counts, false_negative_counts, precision=None,
                         recall=None, global_step=None, num_thresholds=127, weights=None,
                         walltime=None):
        """A PR curve from counts per threshold (precision and recall are
        recomputed by the daemon from the counts)."""
        self._check()

        def row(values):
            return _convert.to_numpy(values).astype(np.float32).reshape(-1).tolist()
        counts = pb.PrCounts(true_positives=row(true_positive_counts),
                             false_positives=row(false_positive_counts),
                             true_negatives=row(true_negative_counts),
                             false_negatives=row(false_negative_counts))
        curve = pb.PrCurve(counts=counts)

        def fill(record):
            record.pr_curve.CopyFrom(curve)
        self._record(tag, global_step, walltime, fill, 16 * len(counts.true_positives))

    # --------------------------------------------------------------- hparams

    def add_hparams(self, hparam_dict, metric_dict, hparam_domain_discrete=None, run_name=None,
                    global_step=None):
        """PyTorch's add_hparams: a sub-run named run_name (default
        str(time.time())) holding the hparams session and the metric values
        as scalars, so the HParams dashboard lists one session per call."""
        self._check()
        if not isinstance(hparam_dict, dict) or not isinstance(metric_dict, dict):
            raise TypeError("hparam_dict and metric_dict should be dictionaries.")
        subrun = run_name if run_name else str(time.time())
        hparams = _hparams_message(hparam_dict, metric_dict, hparam_domain_discrete,
                                   torch_style=True)

        self._hparams_record(hparams, (), global_step, subrun)
        step = _step(global_step)
        wall = time.time()
        for key, value in metric_dict.items():
            self._scalar(key, subrun, _convert.to_float(value), step, wall, _SIMPLE)

    def _hparams_record(self, hparams, metric_tags, global_step, subrun=""):
        """An HParams record (an HParams message, or a dict: then in torch's
        layout with these metric tags) in `subrun`."""
        self._check()
        if isinstance(hparams, dict):
            hparams = _hparams_message(hparams, metric_tags, None, torch_style=True)

        def fill(record):
            record.hparams.CopyFrom(hparams)
        self._record("", global_step, None, fill, hparams.ByteSize(), subrun=subrun)

    # ----------------------------------------------------- graphs, embeddings

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        """A graph for the Graphs dashboard: a torch.nn.Module traced with
        input_to_model (as PyTorch does; nodes named by module path), or a
        serialized tensorflow GraphDef (bytes, or a message with
        SerializeToString)."""
        self._check()
        if isinstance(model, (bytes, bytearray, memoryview)):
            graph = pb.Graph(graph_def=bytes(model))
        elif hasattr(model, "SerializeToString"):
            graph = pb.Graph(graph_def=model.SerializeToString())
        elif hasattr(model, "named_modules") and input_to_model is not None:
            from tblog._torch_graph import module_graph
            graph = pb.Graph(nodes=module_graph(model, input_to_model, use_strict_trace))
            if verbose:
                for node in graph.nodes.node:
                    print(node.name, node.op, list(node.inputs))
        else:
            raise TypeError("tblog: add_graph takes a torch.nn.Module with input_to_model, or "
                            f"a GraphDef (bytes or a message), not {type(model).__name__}")

        def fill(record):
            record.graph.CopyFrom(graph)
        self._record("", 0, None, fill, graph.ByteSize())

    def _keras_model_config(self, config_json, subrun=""):
        """A Keras model's JSON configuration under the fixed tag "keras" at
        step 0 (what keras.callbacks.TensorBoard(write_graph=True) writes)."""
        self._check()
        graph = pb.Graph(keras_model_json=str(config_json))

        def fill(record):
            record.graph.CopyFrom(graph)
        self._record("", 0, None, fill, len(graph.keras_model_json), subrun)

    def add_embedding(self, mat, metadata=None, label_img=None, global_step=None, tag="default",
                      metadata_header=None, *, subrun=""):
        """Vectors for the projector: mat [N, D]; metadata one label per row,
        or N rows of len(metadata_header) cells (sent flattened, row-major).
        label_img [N, C, H, W] (one thumbnail per row, uint8 or float in
        [0, 1]) becomes the projector's sprite, tiled by the daemon."""
        self._check()
        array = _convert.to_numpy(mat)
        if array.ndim != 2:
            raise ValueError(f"add_embedding: mat must be 2-D [N, D], got shape {array.shape}")
        sprite = None
        if label_img is not None:
            sprite = _convert.tensor_parts(_media.sprite_images(label_img, array.shape[0]),
                                           _PIXELS)
        embedding = pb.Embedding(label_img_layout=pb.PIXEL_LAYOUT_NCHW)
        if metadata is not None:
            if len(metadata) != array.shape[0]:
                raise ValueError(f"add_embedding: {len(metadata)} metadata rows for "
                                 f"{array.shape[0]} vectors")
            if metadata_header is not None:
                embedding.metadata_header.extend(str(h) for h in metadata_header)
                columns = len(embedding.metadata_header)
                for row in metadata:
                    if len(row) != columns:
                        raise ValueError(f"add_embedding: metadata row {row!r} does not have "
                                         f"{columns} columns like metadata_header")
                    embedding.metadata.extend(str(cell) for cell in row)
            else:
                embedding.metadata.extend(str(label) for label in metadata)

        parts = self._stream.tensor_parts(array, _FLOATS)  # after every check: no slice lost

        def fill(record):
            wire = Wire(embedding.SerializeToString()).add(_EMBEDDING_MATRIX, _tensor(parts))
            if sprite is not None:
                wire.add(_EMBEDDING_LABEL_IMG, _tensor(sprite))
            return _EMBEDDING, wire
        self._record(tag, global_step, None, fill,
                     len(parts[2]) + (len(sprite[2]) if sprite else 0), subrun, parts)

    # ------------------------------------------------------- custom scalars

    def add_custom_scalars(self, layout):
        """The custom-scalars dashboard's layout, as PyTorch takes it:
        {category: {chart title: ['Multiline', [tag regexes]] or
        ['Margin', [value, lower, upper]]}}."""
        self._check()
        message = pb.CustomScalarLayout()
        for category_title, charts in layout.items():
            category = message.categories.add(title=category_title)
            for chart_title, (kind, tags) in charts.items():
                chart = category.charts.add(title=chart_title)
                if kind.lower() == "multiline":
                    chart.multiline.tags.extend(tags)
                elif kind.lower() == "margin":
                    if len(tags) != 3:
                        raise ValueError(f"add_custom_scalars: a Margin chart takes "
                                         f"[value, lower, upper], got {tags!r}")
                    chart.margin.series.add(value=tags[0], lower=tags[1], upper=tags[2])
                else:
                    raise ValueError(f"add_custom_scalars: chart kind {kind!r}: expected "
                                     "'Multiline' or 'Margin'")

        def fill(record):
            record.custom_scalars.CopyFrom(message)
        self._record("", 0, None, fill, message.ByteSize())

    def add_custom_scalars_multilinechart(self, tags, category="default", title="untitled"):
        self.add_custom_scalars({category: {title: ["Multiline", tags]}})

    def add_custom_scalars_marginchart(self, tags, category="default", title="untitled"):
        self.add_custom_scalars({category: {title: ["Margin", tags]}})

    # ---------------------------------------------------------- flush, close

    def flush(self, timeout=None):
        """Blocks until everything logged so far is written by the daemon: in
        the run's event files, handed to the OS, so visible to TensorBoard
        and kept if the daemon is killed (as torch's flush() leaves its event
        file); not fsynced, so a machine crash may still lose it (the daemon
        fsyncs every --fsync-interval). Raises TblogError for records the
        daemon rejected, and DEADLINE_EXCEEDED after `timeout` seconds."""
        if self._closed:
            return
        self._stream.flush(timeout)

    def close(self, timeout=60.0):
        """Flushes, closes the run on the daemon (its hparams session ends as
        SUCCESS) and stops the background threads. Idempotent. Waits at most
        about `timeout` seconds for an unreachable daemon, then raises
        TblogError naming the address (what was not sent is lost).

        A daemon killed or restarting during the close does not fail it: the
        flush resends what the daemon has not written once it is back, and
        CloseRun is tried again while the daemon is unreachable or slow
        (UNAVAILABLE, DEADLINE_EXCEEDED), with the reconnect backoff (50 ms
        doubling to 1 s) on a fresh connection, until `timeout` (counted from
        the call) has passed. NOT_FOUND to a CloseRun after the first try is a
        restarted daemon that holds nothing of this writer: released, as the
        C++ client's close() does. Any other refusal raises at once."""
        if self._closed:
            return
        self._closed = True
        with _live_lock:
            _live_writers.discard(self)
        try:
            self._stream.close(timeout=timeout)
        finally:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()


def _check_channels(array, fmt, dataformats):
    """ValueError unless the channel axis of an image holds 1 to 4 channels
    (gray, gray+alpha, RGB, RGBA): a wrong dataformats shows here, not later
    as a record the daemon rejects."""
    if "C" in fmt and not 1 <= array.shape[fmt.index("C")] <= 4:
        raise ValueError(f"image of shape {array.shape} with dataformats {dataformats!r} has "
                         f"{array.shape[fmt.index('C')]} channels; expected 1 to 4")


def _hparams_message(hparam_dict, metric_tags, domains, torch_style):
    """An HParams record: None values are left out, as PyTorch does."""
    if not isinstance(hparam_dict, dict):
        raise TypeError(f"hparams: expected a dict, not {type(hparam_dict).__name__}")
    hparams = pb.HParams(torch_style=torch_style)
    for key, value in hparam_dict.items():
        if value is not None:
            hparams.values[key].CopyFrom(_hparam_value(key, value))
    for key, values in (domains or {}).items():
        domain = hparams.domains[key].discrete
        for value in values:
            domain.values.append(_hparam_value(key, value))
    for key in metric_tags:
        hparams.metrics.append(pb.MetricSpec(tag=key))
    return hparams


def _hparam_value(name, value):
    """An HParamValue as PyTorch's add_hparams types it: numbers (and bools,
    which torch tests as ints) as numbers, strings as text, 0-d tensors by
    their item."""
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return pb.HParamValue(number=float(value))
    if isinstance(value, str):
        return pb.HParamValue(text=value)
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return pb.HParamValue(number=float(value.item()))
    raise ValueError(f"add_hparams: value of {name!r} is {type(value).__name__}; "
                     "expected int, float, str, bool or a 0-d tensor")


@atexit.register
def _close_live_writers():
    # Data must not be lost at exit: flush and close writers the program forgot.
    with _live_lock:
        writers = list(_live_writers)
    for writer in writers:
        try:
            writer.close(timeout=10)
        except Exception:  # noqa: BLE001 - nothing to report to at exit
            pass
