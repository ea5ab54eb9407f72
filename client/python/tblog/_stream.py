"""The background half of a SummaryWriter: a buffer the training thread
appends to, and a sender thread that turns it into sequenced WriteRequest
batches on a Write stream, keeps every batch until the daemon acknowledges
it, and resends what the daemon lacks after a reconnect or a daemon restart.

Threads: the training thread(s) call Buffer methods (short critical sections
under one lock, no protobuf work); the sender thread builds protos, sends and
reconnects; one receiver thread per stream reads acknowledgements. Everything
shared is guarded by `_lock` (with the condition `_cv`).
"""

import collections
import logging
import os
import threading
import time

import grpc
import numpy as np

from tblog import _columns, _convert, _shm
from tblog._request_queue import RequestQueue
from tblog._scalar_buffer import (COLUMN_POINTS, ENCODE_POINTS, POINT_BYTES, ScalarBuffer,
                                  merge_point_lists)
from tblog.v1 import tblog_pb2 as pb
from tblog.v1 import tblog_pb2_grpc as pb_grpc

_log = logging.getLogger("tblog")

# A batch is closed once its records pass this many bytes (one larger record
# still travels alone); the daemon accepts messages up to 64 MiB by default.
_BATCH_BYTES = 4 << 20
# The stream tag dictionary's cap (tblog.proto, WriteRequest.stream_tags):
# past it, columns carry batch-local dictionaries again.
_MAX_STREAM_TAGS = 65536
_MAX_STREAM_TAG_BYTES = 1 << 20
_FIELDS = _columns.FIELDS  # entries of Stream.points per point
# The most tensor bytes one record may carry as bytes: a record travels in one
# request, which gRPC caps at 64 MiB on both sides (CHANNEL_OPTIONS, the
# daemon's default --max-message-size); 1 MiB is left for the record's other
# fields. A larger record could never be sent (resending it would fail
# forever), so the add_* call refuses it, unless its tensor goes through the
# shared-memory ring (then the request carries only the slice's name).
MAX_RECORD_BYTES = (64 << 20) - (1 << 20)
# A daemon whose --max-message-size is smaller (OpenRunResponse.
# max_message_bytes) lowers both this and _BATCH_BYTES: see _learn_limit.
# How long a tensor too large for a request waits for the sender to make (or
# grow) a ring that can hold it: a MAP_POPULATE of 256 MiB takes about 0.1 s.
_RING_WAIT = 5.0
# gRPC codes after which the writer reconnects (OpenRun RESUME, with backoff)
# and resends what is not acknowledged: the transient codes of the "Retries"
# comment in proto/tblog/v1/tblog.proto, where each one's reason is given. The
# C++ client's IsRetryable is the same set; change both with that comment.
_RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.FAILED_PRECONDITION,
})
# NOT_FOUND that ends the Write stream: the daemon does not know the run (it
# restarted after our OpenRun). The reconnect reopens it (RESUME) and resends,
# up to this many times in a row with nothing acknowledged; then it is final
# (tblog.proto, "Retries"; the C++ client's kMaxRunNotFoundInARow).
_MAX_RUN_NOT_FOUND_IN_A_ROW = 3
# close()'s limit when given no timeout, counted once flushed (the C++
# client's WriterOptions::close_timeout).
_CLOSE_TIMEOUT = 30.0

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.enable_retries", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class Wire:
    """A serialized protobuf message kept as a list of byte chunks, so large
    payloads (tensor data) are never copied into a message object: the chunks
    are joined once, into the request bytes. Fields may come in any order on
    the wire, so a message is its small fields (serialized by protobuf) plus
    appended length-delimited fields."""

    __slots__ = ("chunks", "size")

    def __init__(self, head=b""):
        self.chunks = [head] if head else []
        self.size = len(head)

    def add(self, number, value):
        """Appends length-delimited field `number`: bytes or another Wire."""
        if isinstance(value, Wire):
            chunks, size = value.chunks, value.size
        else:
            chunks, size = [value], len(value)
        prefix = _columns.varint(number << 3 | 2) + _columns.varint(size)
        self.chunks.append(prefix)
        self.chunks.extend(chunks)
        self.size += len(prefix) + size
        return self


def tensor_wire(code, shape, data):
    """A tblog.v1.Tensor whose `data` is the given bytes object, uncopied, or
    that names the _shm.Slice `data` (Tensor.shm)."""
    if isinstance(data, _shm.Slice):
        if data.data is None:
            shm = pb.ShmSlice(offset=data.offset, length=data.length)
            if data.range is not None:
                shm.range.min, shm.range.max = data.range
            return Wire(pb.Tensor(dtype=code, shape=shape, shm=shm).SerializeToString())
        data = data.data
    return Wire(pb.Tensor(dtype=code, shape=shape).SerializeToString()).add(
        pb.Tensor.DESCRIPTOR.fields_by_name["data"].number, data)


def kind_number(name):
    """The field number of Record.<name> (its oneof `kind`)."""
    return pb.Record.DESCRIPTOR.fields_by_name[name].number


_RECORDS_FIELD = pb.WriteRequest.DESCRIPTOR.fields_by_name["records"].number


class TblogError(Exception):
    """Raised on the training thread for what the daemon refused: a rejected
    record (with the daemon's message), a failed stream, or a timeout.
    `code` is the gRPC status code name ("INVALID_ARGUMENT") when known."""

    def __init__(self, message, code=None, errors=()):
        super().__init__(message)
        self.code = code
        self.errors = list(errors)


_INT_CODES = {c.value[0]: c.name for c in grpc.StatusCode}


class _Record:
    """A non-scalar record waiting in the buffer: its common fields and a
    function, run on the sender thread, that either fills the Record's `kind`
    in the message it is given and returns None, or returns (field number,
    Wire) of the kind, for records carrying large tensors."""

    __slots__ = ("tag", "step", "wall_time", "subrun", "fill", "nbytes", "slices")

    def __init__(self, tag, step, wall_time, subrun, fill, nbytes, slices=()):
        self.tag = tag
        self.step = step
        self.wall_time = wall_time
        self.subrun = subrun
        self.fill = fill
        self.nbytes = nbytes
        self.slices = slices  # _shm.Slice of its tensors in the ring


class _Batch:
    __slots__ = ("sequence", "request", "nbytes", "written", "slices")

    def __init__(self, sequence, request, nbytes, slices=()):
        self.sequence = sequence
        self.request = request
        self.nbytes = nbytes
        self.written = False
        self.slices = slices  # ring offsets, freed with the batch


class Stream(ScalarBuffer):
    """Buffer + sender for one writer of one run. Thread-safe: any thread may
    call the add_* methods, flush() and close()."""

    def __init__(self, channel, open_request, *, writer_id, max_buffer_bytes,
                 wake_records, flush_secs, connect_timeout, retain_bytes=None,
                 send_interval=0.05, new_channel=None, address="the daemon"):
        # `channel` is borrowed (its owner closes it). `new_channel`, when
        # given, makes a fresh channel to the same daemon: a reconnect whose
        # OpenRun fails moves to one, because a channel that saw the daemon
        # go away keeps failing for seconds after it is back (gRPC's backoff
        # and re-resolution; measured 2.8 s to 5 s), while a fresh one
        # connects at once, as the C++ client's does. Those it owns.
        self._new_channel = new_channel
        self._owned_channel = None
        self._use_channel(channel)
        self._open_request = open_request
        self.writer_id = writer_id
        self._max_buffer_bytes = int(max_buffer_bytes)
        # The most entries `points` holds before add_scalar waits for room,
        # and the entries at which add_scalar calls points_full().
        self.max_point_entries = _FIELDS * max(1024, self._max_buffer_bytes // POINT_BYTES)
        self.full_entries = min(_FIELDS * ENCODE_POINTS, self.max_point_entries)
        self._retain_bytes = int(retain_bytes if retain_bytes is not None else max_buffer_bytes)
        self._wake_records = max(1, int(wake_records))
        self._flush_secs = float(flush_secs) if flush_secs else 0.0
        self._send_interval = send_interval

        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        # Buffer (training threads -> sender).
        # Scalar points, flat: global tag index, step, value, wall_time per
        # point (_columns.FIELDS). The list object never changes: training
        # threads append a point's entries without the lock, all at once
        # (`points += (...)`, atomic under the GIL as list.append is), and
        # takers cut a prefix with `del points[:n]` under the lock, so no
        # point is ever lost or split.
        self.points = []
        # _Record, list of points or _columns.Encoded points, in call order.
        self._items = []
        self._item_bytes = 0
        self._item_records = 0
        self._tags = []            # global tag index -> (tag, subrun, style)
        self._tag_index = {}       # (tag, subrun, style) -> global index
        # Global indices are also the stream dictionary's ids: those below
        # _defined went out in some batch's definitions, so a new stream
        # defines them all in its first message (sender thread).
        self._defined = 0
        self._defined_bytes = 0
        self._stream_tags = True   # False once the tags outgrow the cap
        # Sender state.
        self._sequence = 0
        self._unacked = collections.deque()   # _Batch, by sequence
        self._unwritten_bytes = 0             # sent, not yet written by the daemon
        self._retained_bytes = 0              # written, kept until durable
        self._written_seq = 0
        self._durable_seq = 0
        self._flush_requested = 0
        self._flush_served = 0
        self._flush_served_seq = 0
        # Errors for the training thread: rejected records and stream failures.
        self._errors = []
        self.failure = None        # not None while errors wait to be raised
        self._fatal = None         # set when the writer cannot go on
        self._closing = False
        self._stopped = False
        # True while the sender waits with no batch in flight: the next record
        # is sent at once (wake()), as the C++ client does. Read without the
        # lock by add_scalar's hot path (a plain attribute under the GIL).
        self.send_now = False
        self._building = False     # the sender holds records taken from the buffer
        # The live Write stream.
        self._stream_gen = 0
        self._stream_queue = None
        self._stream_call = None
        self._stream_broken = True
        self._consecutive_failures = 0
        self._run_not_found = 0
        # Shared memory (_shm.py): made by the sender once a large tensor
        # asks for it, attached to every stream; bytes when it cannot be.
        self._address = address    # named in errors
        self._ring_socket = _shm.socket_for(address)
        self._ring_bytes = int(os.environ.get("TBLOG_SHM_RING_BYTES", _shm.DEFAULT_RING_BYTES))
        self._ring = None
        self._ring_token = ""      # the live stream's (sender thread)
        self._ring_wanted = 0  # bytes of the largest tensor that asked for a ring
        self._ring_failed = False
        # Set by a training thread that wants the ring made or grown now
        # (_ring_urgent_locked): wakes the sender, which clears it once it has
        # tried.
        self._ring_urgent = False
        # What a request may carry (_learn_limit, from each OpenRun's answer).
        self.max_record_bytes = MAX_RECORD_BYTES
        self._batch_bytes = _BATCH_BYTES

        # Fails fast, naming the address and the cause (tblog/_connect.py).
        from tblog._connect import first_open
        response = first_open(self, self._open_request, connect_timeout, address)
        self.run_id = response.run_id
        self.run_path = response.run_path
        self.directory = response.directory
        self._connect(response)
        self._sender = threading.Thread(target=self._sender_main, name="tblog-sender", daemon=True)
        self._sender.start()

    # ----------------------------------------------------------------- buffer

    def tag_index(self, tag, subrun, style):
        """The writer-wide index of (tag, subrun, style), created on first use."""
        key = (tag, subrun, style)
        with self._lock:
            index = self._tag_index.get(key)
            if index is None:
                index = len(self._tags)
                self._tags.append(key)
                self._tag_index[key] = index
            return index

    def wake(self):
        """Called by a training thread that saw send_now: its record goes out
        at once instead of at the next send interval."""
        with self._cv:
            self.send_now = False
            self._cv.notify_all()

    def tensor_parts(self, array, allowed=None, with_range=False):
        """_convert.tensor_parts, the bytes in a slice of the shared-memory
        ring when there is room (an _shm.Slice: one copy, numpy's, without
        the GIL), else bytes. Asks the sender for a ring at the first large
        tensor. A tensor too large to travel as bytes waits (up to
        _RING_WAIT) for a ring that can hold it. `with_range`: the slice
        carries the values' range (a uniform histogram's, _shm.Ring.copy_in)."""
        if array.nbytes > self.max_record_bytes:
            self._ring_for_oversize(array.nbytes)
        ring = self._ring
        if ring is not None and ring.usable and array.nbytes >= _shm.MIN_SLICE_BYTES:
            code, converted = _convert.tensor_array(array, allowed)
            # A full ring waits (up to _shm.ROOM_WAIT) for the written acks
            # that free its slices: backpressure that keeps the cheap path.
            # Not while the stream is down: no ack comes before the reconnect.
            slot = ring.copy_in(np.ascontiguousarray(converted), wait=not self._stream_broken,
                                with_range=with_range)
            if slot is not None:
                return code, tuple(int(d) for d in converted.shape), _shm.Slice(*slot)
        elif ring is None and array.nbytes >= _shm.MIN_SLICE_BYTES:
            self._want_ring_for(array.nbytes)
        return _convert.tensor_parts(array, allowed)

    def _want_ring_for(self, nbytes):
        """Asks the sender for a ring for a tensor of `nbytes`; the first ask
        wakes it, so the ring is made now rather than after the ack the
        sender may be waiting for (the tensors until then go as bytes)."""
        if self._ring_wanted == 0:
            with self._cv:
                self._ring_wanted = max(self._ring_wanted, nbytes)
                self._ring_urgent_locked()
        else:
            self._ring_wanted = max(self._ring_wanted, nbytes)

    def _ring_urgent_locked(self):
        if self._ring_socket and self._ring_bytes > 0 and not self._ring_failed:
            self._ring_urgent = True
            self._cv.notify_all()

    def _ring_for_oversize(self, nbytes):
        """A tensor of `nbytes`, more than a request can carry, goes through
        the ring or not at all: asks the sender to make the ring, or to grow
        it to hold the tensor, and waits (up to _RING_WAIT) until it has
        tried. The caller then takes a slice, or sends bytes that _record
        refuses (naming the ring's error, shm_error)."""
        deadline = time.monotonic() + _RING_WAIT
        with self._cv:
            while not self._stopped and self._fatal is None:
                ring = self._ring
                if ring is None:
                    self._ring_wanted = max(self._ring_wanted, nbytes)
                elif not ring.usable or not ring.could_grow_for(nbytes):
                    return  # as large as it gets: a slice if there is room
                else:
                    ring.want_growth(nbytes)
                self._ring_urgent_locked()
                remaining = deadline - time.monotonic()
                if not self._ring_urgent or remaining <= 0:
                    return  # no ring to be had here, or the sender is stuck
                self._cv.wait(remaining)

    @property
    def shm_error(self):
        """Why a tensor could not go through shared memory, for errors."""
        ring = self._ring
        if not self._ring_socket or self._ring_bytes <= 0:
            return "no shared memory with the daemon (remote, or TBLOG_SHM_SOCKET=off)"
        if ring is None:
            return "no shared-memory ring" + (" (memfd unavailable)" if self._ring_failed else "")
        if not ring.usable:
            return f"the shared-memory ring could not be attached: {ring.error}"
        return (f"the shared-memory ring ({ring.size} bytes, growth up to "
                f"{ring.max_bytes} bytes: TBLOG_SHM_RING_MAX_BYTES, and what the daemon "
                "accepts) had no room for it")

    def tensor_buffer(self, shape, dtype):
        """A new array of `shape` and `dtype` that lies in the shared-memory
        ring when there is room (SummaryWriter.tensor_buffer), else on the
        heap."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        ring = self._ring
        if ring is not None and ring.usable:
            view = ring.lend(nbytes, wait=not self._stream_broken)
            if view is not None:
                return view.view(dtype).reshape(shape)
        elif ring is None and nbytes >= _shm.MIN_SLICE_BYTES:
            self._want_ring_for(nbytes)
        return np.empty(shape, dtype)

    def _want_ring(self):
        """Sender thread: makes and attaches the ring a large tensor asked
        for, room for two of it (_shm.size_for), or, for a tensor too large
        for a request, one, or else $TBLOG_SHM_RING_BYTES, the first size the
        daemon accepts; the token binds it to the live stream
        (a message of its own). Grows a live ring a tensor found too small
        (_shm.Ring.grow)."""
        if self._ring is not None and self._ring.grow_wanted and self._ring_token:
            self._ring.grow(self._ring_socket)
        if (not self._ring_wanted or self._ring is not None or self._ring_failed or
                not self._ring_socket or self._ring_bytes <= 0):
            return
        cap = _shm.max_ring_bytes()
        sizes = [_shm.size_for(self._ring_wanted, self._ring_bytes, cap)]
        if self._ring_wanted > self.max_record_bytes:  # room for one, if not for two
            sizes.append(_shm.size_for((self._ring_wanted + 1) // 2, self._ring_bytes, cap))
        sizes = sorted(set(sizes + [self._ring_bytes]), reverse=True)
        for size in sizes:
            try:
                ring = _shm.Ring(size)
            except (OSError, AttributeError, ValueError):  # no memfd here: bytes, for good
                self._ring_failed = True
                return
            token = ring.attach(self._ring_socket)
            if token or size == sizes[-1] or ring.unreachable:
                break  # (no daemon at the socket takes a smaller ring either)
            ring.close()  # refused at this size: a smaller one next
        with self._cv:
            self._ring = ring
            if token and not self._stream_broken:
                self._ring_token = token
                self._stream_queue.put(pb.WriteRequest(shm_ring=token).SerializeToString())

    @property
    def shm_status(self):
        """(tensors sent through the ring, why its last attach failed or "")."""
        ring = self._ring
        return (ring.tensors, ring.error) if ring is not None else (0, "")

    def add_record(self, record):
        """Appends a non-scalar record; blocks while the buffer is full."""
        with self._cv:
            self._take_points_locked()
            self._items.append(record)
            self._item_bytes += record.nbytes
            self._item_records += 1
            if (self.send_now or self._item_records >= self._wake_records or
                    self._item_bytes >= _BATCH_BYTES):
                self.send_now = False
                self._cv.notify_all()
            if self._item_bytes + self._unwritten_bytes <= self._max_buffer_bytes:
                return
        self._wait_for_room()

    def _wait_for_room(self):
        with self._cv:
            self._cv.notify_all()
            while (not self._stopped and self._fatal is None and
                   (len(self.points) >= self.max_point_entries or
                    self._item_bytes + self._unwritten_bytes > self._max_buffer_bytes)):
                self._cv.wait(0.5)

    # ------------------------------------------------------ flush, close, errors

    def take_errors(self):
        """Raises (once) a TblogError for what went wrong since the last call."""
        with self._lock:
            errors, self._errors = self._errors, []
            self.failure = self._fatal
            fatal = self._fatal
        if fatal is not None and not errors:
            raise fatal
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
            raise TblogError(f"{first.args[0]}{more}", code=first.code, errors=errors)

    def flush(self, timeout=None):
        """Sends everything buffered and waits until the daemon has written
        it: in the run's files, handed to the OS (WriteResponse.
        written_sequence), so visible to TensorBoard and kept if the daemon
        is killed, as torch's SummaryWriter.flush() leaves its event file; not
        fsynced (a machine crash may lose it). Then raises pending errors.

        No FLUSH request: the daemon hands every batch to the OS before it
        acknowledges it as written, so the ack of the last batch is the
        answer (a FLUSH would add the checkpoint's write to the wait, and
        the daemon writes that every --flush-interval anyway). The buffered
        scalar points are encoded here, on the calling thread
        (tblog/_scalar_buffer.py)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            # Nothing buffered, and every batch sent is written: visible
            # already, no round trip.
            written = (not self.points and not self._items and not self._building and
                       self._written_seq >= self._sequence and not self._stream_broken)
        if written:
            self.take_errors()
            return
        with self._cv:
            self._encode_points_locked()
            self._flush_requested += 1
            token = self._flush_requested
            self._cv.notify_all()
            while self._fatal is None and not self._stopped and self._flush_served < token:
                if not self._wait(deadline):
                    break
            # The last batch that holds what was buffered at the call; errors
            # of every batch up to it arrive with their acks.
            target = self._flush_served_seq
            while (self._fatal is None and self._flush_served >= token and
                   self._written_seq < target and not self._stopped):
                if not self._wait(deadline):
                    break
            done = self._flush_served >= token and self._written_seq >= target
        self.take_errors()
        if not done:
            raise TblogError(f"tblog: flush did not complete within {timeout} s "
                             f"(tblogd at {self._address!r} unreachable or too slow)",
                             code="DEADLINE_EXCEEDED")

    def _wait(self, deadline):
        if deadline is None:
            self._cv.wait(1.0)
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._cv.wait(min(remaining, 1.0))
        return True

    def close(self, status=pb.SESSION_STATUS_SUCCESS, timeout=None):
        """Flushes, ends the stream and closes the run (CloseRun). Idempotent.
        `timeout` (None: 30 s once flushed) bounds the whole close; CloseRun
        is tried again while the daemon is away or slow (_connect.close_run)."""
        limit = _CLOSE_TIMEOUT if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        error = None
        try:
            self.flush(timeout)
        except TblogError as e:
            error = e
        if timeout is None:   # the flush waited as long as it took
            deadline = time.monotonic() + limit
        with self._cv:
            self._closing = True
            self._cv.notify_all()

        def within(cap):  # waits below end by the deadline
            return max(0.0, min(cap, deadline - time.monotonic()))

        self._sender.join(timeout=within(5))
        self._end_stream(within(2))
        if self._fatal is None:
            from tblog._connect import close_run
            # Releases this writer's hold; the run closes after its last writer.
            request = pb.CloseRunRequest(run_id=self.run_id, status=status,
                                         writer_id=self.writer_id)
            # A fresh channel per try only once the sender is gone (it owns
            # the channel switch while it runs).
            closed = close_run(self, request, deadline, limit, self._address,
                               fresh_channels=not self._sender.is_alive())
            if error is None:
                error = closed
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
            owned, self._owned_channel = self._owned_channel, None
            ring, self._ring = self._ring, None
        if ring is not None and not self._sender.is_alive():
            ring.close()
        if owned is not None and not self._sender.is_alive():
            owned.close()
        if error is not None:
            raise error

    # ------------------------------------------------------------- connection

    def _use_channel(self, channel):
        self._channel = channel
        self._stub = pb_grpc.TBLogStub(channel)
        # Write with requests serialized by the sender (bytes pass through).
        self._write_call = channel.stream_stream(
            "/tblog.v1.TBLog/Write", request_serializer=None,
            response_deserializer=pb.WriteResponse.FromString)

    def _fresh_channel(self):
        """Moves to a new channel (sender thread, between streams); closes the
        previous one if this stream made it."""
        if self._new_channel is None:
            return
        channel = self._new_channel()
        with self._cv:
            old, self._owned_channel = self._owned_channel, channel
            self._use_channel(channel)
        if old is not None:
            old.close()

    def _learn_limit(self, max_message_bytes):
        """The daemon's --max-message-size (0 from an older daemon: 64 MiB,
        which the defaults fit): a request larger than it would be refused
        at every resend (tblog.proto, OpenRunResponse.max_message_bytes).
        Records get what it leaves after 1 MiB for the request's head and
        tag definitions, and batches are cut below that."""
        if max_message_bytes:
            room = max_message_bytes - min(max_message_bytes // 4, 1 << 20)
            self.max_record_bytes = min(MAX_RECORD_BYTES, room)
            self._batch_bytes = min(_BATCH_BYTES, room)

    def _connect(self, response):
        """Starts a Write stream after OpenRun answered `response`, dropping the
        batches the daemon already has and resending the others in order."""
        self._learn_limit(response.max_message_bytes)
        have = response.writer_sequences.get(self.writer_id, 0)
        # A stream without a ring sends the slices of its new batches as bytes;
        # batches serialized with slices before are resent as they are.
        self._ring_token = self._ring.attach(self._ring_socket) if self._ring is not None else ""
        with self._cv:
            while self._unacked and self._unacked[0].sequence <= have:
                self._release(self._unacked.popleft())
            self._written_seq = max(self._written_seq, have)
            self._durable_seq = max(self._durable_seq, have)
            resend = [b.request for b in self._unacked]
            for batch in self._unacked:
                if batch.written:
                    batch.written = False
                    self._retained_bytes -= batch.nbytes
                    self._unwritten_bytes += batch.nbytes
            self._stream_gen += 1
            generation = self._stream_gen
            self._stream_queue = RequestQueue()
            # Binds the stream at once: the writer holds the run while idle,
            # with its shared-memory ring when it has one.
            bind = pb.WriteRequest(run_id=self.run_id, writer_id=self.writer_id,
                                   shm_ring=self._ring_token)
            bind.stream_tags.extend(pb.ColumnTag(tag=tag, subrun=subrun)
                                    for tag, subrun, _ in self._tags[:self._defined])
            self._stream_queue.put(bind.SerializeToString())
            for request in resend:
                self._stream_queue.put(request)
            self._stream_broken = False
            self._cv.notify_all()
        call = self._write_call(iter(self._stream_queue))
        self._stream_call = call
        self._stream_ended = threading.Event()
        threading.Thread(target=self._receiver_main, args=(call, generation, self._stream_ended),
                         name="tblog-receiver", daemon=True).start()

    def _end_stream(self, wait=2):
        queue, call = self._stream_queue, self._stream_call
        if queue is not None:
            queue.close()
        if call is not None:
            # Give the daemon a moment (`wait` seconds) to answer the
            # half-close (the receiver sees the stream end), then cancel.
            self._stream_ended.wait(wait)
            call.cancel()

    def _reconnect(self):
        """After a broken stream: OpenRun(RESUME) with backoff until the daemon
        answers, then a new stream. Returns False when closing gave up."""
        old_queue, old_call = self._stream_queue, self._stream_call
        if old_queue is not None:
            old_queue.close()
        if old_call is not None:
            old_call.cancel()
        backoff = 0.05
        give_up = None
        while True:
            request = pb.OpenRunRequest()
            request.CopyFrom(self._open_request)
            request.run_path = self.run_path
            request.mode = pb.OPEN_MODE_RESUME
            request.ClearField("purge_step")
            try:
                response = self._stub.OpenRun(request, timeout=5)
                self._connect(response)
                return True
            except grpc.RpcError as e:
                code = e.code()
                if code not in _RETRYABLE:
                    self._set_fatal(TblogError(
                        f"tblog: cannot resume run {self.run_path!r}: {code.name}: {e.details()}",
                        code=code.name))
                    return False
                self._fresh_channel()  # the next attempt connects anew
            with self._cv:
                if self._closing:
                    if give_up is None:
                        give_up = time.monotonic() + 10
                    elif time.monotonic() > give_up:
                        self._set_fatal_locked(TblogError(
                            "tblog: daemon unreachable at close; unsent data dropped",
                            code="UNAVAILABLE"))
                        return False
                self._cv.wait(backoff)
            backoff = min(backoff * 2, 1.0)

    def _set_fatal(self, error):
        with self._cv:
            self._set_fatal_locked(error)

    def _set_fatal_locked(self, error):
        if self._fatal is None:
            self._fatal = error
            self.failure = error
        self._cv.notify_all()

    # ------------------------------------------------------------- receiving

    def _receiver_main(self, call, generation, ended):
        status = None
        try:
            for response in call:
                self._on_response(response)
        except grpc.RpcError as e:
            status = e
        finally:
            ended.set()
        with self._cv:
            if generation != self._stream_gen:
                return
            self._stream_broken = True
            if (status is not None and status.code() == grpc.StatusCode.NOT_FOUND
                    and self._run_not_found < _MAX_RUN_NOT_FOUND_IN_A_ROW):
                self._run_not_found += 1  # the reconnect reopens the run
            elif status is not None and status.code() not in _RETRYABLE:
                self._consecutive_failures += 1
                message = f"tblog: Write stream failed: {status.code().name}: {status.details()}"
                error = TblogError(message, code=status.code().name)
                self._errors.append(error)
                self.failure = error
                if self._consecutive_failures >= 3:
                    self._set_fatal_locked(error)
                elif self._unacked:
                    # The oldest unacknowledged batch is the likely cause: drop it
                    # so a resend does not fail the same way.
                    self._release(self._unacked.popleft())
            self._cv.notify_all()

    def _on_response(self, response):
        with self._cv:
            self._consecutive_failures = 0
            self._run_not_found = 0
            for e in response.errors:
                name = _INT_CODES.get(e.code, str(e.code))
                self._errors.append(TblogError(
                    f"tblogd rejected record {e.index} (tag {e.tag!r}) of batch {e.sequence}: "
                    f"{name}: {e.message}", code=name))
            if response.errors:
                self.failure = self._errors[0]
            if response.written_sequence > self._written_seq:
                self._written_seq = response.written_sequence
            if response.durable_sequence > self._durable_seq:
                self._durable_seq = response.durable_sequence
            for batch in self._unacked:
                if batch.sequence > self._written_seq:
                    break
                if not batch.written:
                    batch.written = True
                    self._unwritten_bytes -= batch.nbytes
                    self._retained_bytes += batch.nbytes
            # Keep written batches until durable, for a resend after a machine
            # crash that loses what was not fsynced, but never more than
            # retain_bytes of them. A stream with a ring proves the daemon
            # that writes shares this kernel (a node daemon forwarding
            # upstream binds no ring: the upstream does not know its token):
            # what it wrote is in the kernel's page cache, which only a crash
            # that ends this process too can lose (a killed daemon finds it in
            # its files), so written is enough. Were it lost anyway, the
            # reconnect's resend starts past a gap: OUT_OF_RANGE, not garbage.
            # That frees ring slices at once (the daemon never reads a slice
            # after its batch's written ack, tblog.proto Tensor.shm), so
            # back-to-back tensors keep finding room in the ring.
            same_kernel = bool(self._ring_token)
            while self._unacked and (
                    self._unacked[0].sequence <= self._durable_seq or
                    (self._unacked[0].written and
                     (same_kernel or self._retained_bytes > self._retain_bytes))):
                self._release(self._unacked.popleft())
            self._cv.notify_all()

    def _release(self, batch):
        if batch.slices and self._ring is not None:
            self._ring.free(batch.slices)
        if batch.written:
            self._retained_bytes -= batch.nbytes
        else:
            self._unwritten_bytes -= batch.nbytes

    # --------------------------------------------------------------- sending

    def _sender_main(self):
        next_flush = time.monotonic() + self._flush_secs if self._flush_secs else None
        while True:
            with self._cv:
                # Send at once when no batch is in flight; gather while one is
                # (until its ack, a full batch or the send interval), so a lone
                # record reaches the file in milliseconds and a flood still
                # goes out in large batches.
                deadline = time.monotonic() + self._send_interval
                while (not self._closing and not self._stream_broken and
                       self._flush_requested == self._flush_served and self._fatal is None):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    idle = self._written_seq >= self._sequence
                    # Set before looking at the buffer: a training thread that
                    # appends after this look sees it and wakes us.
                    self.send_now = idle
                    if (self._ring_urgent or self._item_records >= self._wake_records or
                            self._item_bytes >= _BATCH_BYTES or
                            len(self.points) >= COLUMN_POINTS * _FIELDS or
                            (idle and (self.points or self._items))):
                        break
                    self._cv.wait(remaining)
                self.send_now = False
                if self._fatal is not None:
                    self._drop_buffer_locked()
                    if self._closing:
                        return
                    self._cv.wait(0.5)
                    continue
                broken = self._stream_broken
                closing = self._closing
            if broken and not self._reconnect():
                if closing or self._fatal is not None:
                    return
                continue
            self._want_ring()
            with self._cv:
                if self._ring_urgent:
                    self._ring_urgent = False
                    self._cv.notify_all()  # _ring_for_oversize
                self._take_points_locked()
                items = self._items
                self._items = []
                self._building = bool(items)
                taken_bytes = self._item_bytes
                self._item_bytes = 0
                self._item_records = 0
                flush_token = self._flush_requested
                tags = list(self._tags)
                self._unwritten_bytes += taken_bytes
            # flush_secs asks the daemon for a FLUSH (its files flushed and
            # its checkpoint written); flush() needs only the written acks.
            now = time.monotonic()
            want_flush = next_flush is not None and now >= next_flush
            if want_flush:
                next_flush = now + self._flush_secs
            defining = self._stream_tags and self._define_tags(tags)
            batches, batch_slices = self._build_batches(items, tags)
            if not batches and want_flush:
                batches, batch_slices = [Wire()], [()]
            # The buffer's bytes were counted as unwritten when taken; the
            # batches carry their own counts from here on.
            with self._cv:
                self._unwritten_bytes -= taken_bytes
            for i, records in enumerate(batches):
                head = pb.WriteRequest(run_id=self.run_id, writer_id=self.writer_id)
                if i == 0 and defining and len(tags) > self._defined:
                    head.stream_tags_first_id = self._defined
                    head.stream_tags.extend(pb.ColumnTag(tag=tag, subrun=subrun)
                                            for tag, subrun, _ in tags[self._defined:])
                    self._defined_bytes += _name_bytes(tags[self._defined:])
                    self._defined = len(tags)
                if i == len(batches) - 1 and want_flush:
                    head.flush = pb.FLUSH_MODE_FLUSH
                with self._cv:
                    self._sequence += 1
                    head.sequence = self._sequence
                    # The serialized request: the only copy of tensor data the
                    # sender makes; resends reuse it.
                    request = b"".join([head.SerializeToString()] + records.chunks)
                    nbytes = len(request)
                    batch = _Batch(self._sequence, request, nbytes, batch_slices[i])
                    self._unacked.append(batch)
                    self._unwritten_bytes += nbytes
                    if not self._stream_broken:
                        self._stream_queue.put(request)
            # Frees the points now, while the daemon writes them, rather than
            # when the next round takes the buffer (often the next flush()).
            items = batches = None
            with self._cv:
                self._building = False
                if flush_token != self._flush_served:
                    self._flush_served = flush_token
                    self._flush_served_seq = self._sequence
                self._cv.notify_all()
                if self._closing and not self._items and not self.points:
                    return

    def _define_tags(self, tags):
        """Whether this round's columns can refer to the stream dictionary
        with `tags` defined in it (within the cap); once they cannot, the
        writer goes back to batch-local dictionaries for good."""
        if (len(tags) > _MAX_STREAM_TAGS or
                self._defined_bytes + _name_bytes(tags[self._defined:]) > _MAX_STREAM_TAG_BYTES):
            self._stream_tags = False
        return self._stream_tags

    def _drop_buffer_locked(self):
        self._items = []
        del self.points[:]
        self._item_bytes = 0
        self._item_records = 0
        self._flush_served = self._flush_requested

    def _build_batches(self, items, tags):
        """The records of `items` as Wires of WriteRequest.records fields, cut
        into batches of about _BATCH_BYTES (a larger record travels alone),
        and per batch the ring offsets its tensors name."""
        batches, slices = [], []
        batch, offsets = Wire(), []
        for item in merge_point_lists(items):
            if isinstance(item, _Record):
                record = pb.Record(tag=item.tag, step=item.step, wall_time=item.wall_time,
                                   subrun=item.subrun)
                if item.slices and not self._ring_token:
                    # This stream has no ring: the slices travel as bytes.
                    for piece in item.slices:
                        piece.data = self._ring.read(piece.offset, piece.length)
                    self._ring.free([piece.offset for piece in item.slices])
                kind = item.fill(record)
                wire = Wire(record.SerializeToString())
                if kind is not None:
                    wire.add(*kind)
                if batch.size and batch.size + wire.size > self._batch_bytes:
                    batches.append(batch)
                    slices.append(offsets)
                    batch, offsets = Wire(), []
                batch.add(_RECORDS_FIELD, wire)
                offsets.extend(p.offset for p in item.slices if p.data is None)
            else:
                for records, error in self._scalar_chunks(item, tags):
                    if error is not None:  # as a rejected record is reported
                        with self._cv:
                            self._errors.append(TblogError(error, code="INVALID_ARGUMENT"))
                            self.failure = self._errors[0]
                    for record in records:
                        if batch.size and batch.size + len(record) > self._batch_bytes:
                            batches.append(batch)
                            slices.append(offsets)
                            batch, offsets = Wire(), []
                        batch.add(_RECORDS_FIELD, record)
            if batch.size >= self._batch_bytes:
                batches.append(batch)
                slices.append(offsets)
                batch, offsets = Wire(), []
        if batch.size:
            batches.append(batch)
            slices.append(offsets)
        return batches, slices

def _name_bytes(tags):
    """The tag and subrun bytes of `tags` entries, as the dictionary's cap counts them."""
    return sum(len(tag.encode()) + len(subrun.encode()) for tag, subrun, _ in tags)
