"""Shared memory with a tblogd on this host (README "Shared memory";
tblog.proto, "Shared-memory rings"): large tensors are copied once into a
ring of memory the daemon maps, and the record names a slice of it instead of
carrying the bytes through gRPC.

The ring is a memfd, sized, pre-faulted and sealed against shrinking, whose
descriptor is passed over the daemon's --shm-socket (SCM_RIGHTS); the daemon
answers with a token that a Write stream names in WriteRequest.shm_ring.
Slices are allocated first-fit at the head of the ring and freed as their
batches are acknowledged (in order), so the ring works as a FIFO. The copy
into the ring is numpy.copyto, which releases the GIL for large arrays.
take(wait=True) makes a caller wait (up to ROOM_WAIT) for room in a full
ring, as the writer does: its batches give their slices back once written
(the daemon never reads a slice after that ack), so room comes back as fast
as the daemon converts; a ring still full after ROOM_WAIT sends bytes. A
tensor that leaves no room for a second of its size asks the sender to grow
the ring (the same memfd, extended and mapped again: tblog.proto,
ShmAttachRequest.grow_token), by powers of two up to
$TBLOG_SHM_RING_MAX_BYTES (1 GiB) and what the daemon accepts. The first ring
is made by the same rule (size_for) for the tensor that asked for it, so that
a trainer of large tensors does not wait, on its second one, for the daemon to
map a grown ring.

Thread-safe: the training threads allocate, the sender and receiver threads
attach and free.
"""

import math
import mmap
import os
import socket
import threading
import weakref
from collections import deque

import numpy as np

from tblog.v1 import tblog_pb2 as pb

MIN_SLICE_BYTES = 16 << 10  # smaller tensors go as bytes: a slice saves nothing
DEFAULT_RING_BYTES = 64 << 20
ROOM_WAIT = 2.0  # seconds a full ring may hold a caller before it sends bytes
_ALIGN = 64
# MAP_POPULATE maps every page at once (on the sender thread, which makes and
# grows the ring): a copy into a fresh part of the ring then takes no page
# faults on the training thread (measured 2-5 ms instead of 0.35 ms for 4 MiB
# on the first pass through a 64 MiB ring).
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def max_ring_bytes():
    """The largest ring a writer makes or grows to ($TBLOG_SHM_RING_MAX_BYTES)."""
    return int(os.environ.get("TBLOG_SHM_RING_MAX_BYTES", 1 << 30))


def size_for(tensor_bytes, nbytes, max_bytes):
    """The ring size that holds two tensors of tensor_bytes: nbytes doubled
    until it does, at most max_bytes, never below nbytes (the C++ client's
    ShmRing::SizeFor)."""
    length = -(-tensor_bytes // _ALIGN) * _ALIGN
    target = nbytes
    while 0 < target < 2 * length and target < max_bytes:
        target *= 2
    return max(nbytes, min(target, max_bytes))


def socket_for(address, explicit=None):
    """The --shm-socket of a daemon at `address`: `explicit` (or
    $TBLOG_SHM_SOCKET) when set ("off" = none), else "<path>.shm" for a
    "unix:<path>" address, else None (a remote daemon: no shared memory)."""
    path = explicit if explicit is not None else os.environ.get("TBLOG_SHM_SOCKET", "")
    if path == "off":
        return None
    if path:
        return path
    if not address.startswith("unix:"):
        return None
    path = address[len("unix:"):]
    if path.startswith("//"):
        path = path[2:]
    return path + ".shm" if path else None


def value_range(array):
    """(min, max) of a float32 array for ShmSlice.range, or None when a value
    is NaN or infinite (numpy's min and max return NaN then), all values are
    equal, or the dtype is another: the daemon then finds the range itself.
    numpy has no copy that finds it on the way, so this reads the source
    again, while it is still in the cache (about 0.15 ms for 1M floats)."""
    if array.dtype != np.float32 or array.size == 0:
        return None
    lo, hi = float(array.min()), float(array.max())
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and lo < hi else None


class Slice:
    """A tensor's bytes in the ring, in place of the bytes themselves in
    tensor_parts(): `data` is set instead when the sender had to turn it
    back into bytes (a stream the daemon gave no ring). len() is 0: the
    bytes are in the ring, not in the writer's buffer. `range`: (min, max)
    of a float32 tensor's values for ShmSlice.range, or None."""

    __slots__ = ("offset", "length", "data", "range")

    def __init__(self, offset, length, range=None):  # noqa: A002 (the proto's name)
        self.offset = offset
        self.length = length
        self.data = None
        self.range = range

    def __len__(self):
        return 0


class Ring:
    """One ring: create() it, attach() it to each new stream, copy_in()
    arrays, free() their slices once acknowledged."""

    def __init__(self, nbytes, max_bytes=None):
        if max_bytes is None:
            max_bytes = max_ring_bytes()
        fd = os.memfd_create("tblog-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, nbytes)
            os.posix_fallocate(fd, 0, nbytes)  # its pages, before anyone faults them
            import fcntl
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
            self._map = mmap.mmap(fd, nbytes, _MAP_FLAGS, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.size = nbytes
        self.max_bytes = max(max_bytes, nbytes)
        self._file_bytes = nbytes  # more than size after a refused growth
        self._grow_refused = None  # the smallest size the daemon refused
        self.grow_wanted = 0       # the size a tensor asked for (sender: grow())
        self._token = ""
        self._old_maps = []        # mappings before growths, closed with the ring
        self._view = np.frombuffer(self._map, dtype=np.uint8)
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._lent = {}  # address of a lent slice -> (offset, bytes)
        self._allocations = deque()  # [offset, freed], oldest first
        self._head = 0
        self.usable = False
        self.error = ""
        self.unreachable = False
        self.tensors = 0  # tensors copy_in took

    def _exchange(self, path, request, timeout):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(timeout)
                s.connect(path)
                socket.send_fds(s, [request.SerializeToString()], [self._fd])
                return pb.ShmAttachResponse.FromString(s.recv(1024))
        except OSError as e:
            return pb.ShmAttachResponse(code=14, message=f"{path}: {e}")

    def attach(self, path, timeout=2.0):
        """Hands the ring to the daemon; returns the token, or "" (the reason
        in .error) when the daemon refuses it or is not there."""
        response = self._exchange(path, pb.ShmAttachRequest(ring_bytes=self.size), timeout)
        with self._lock:
            self.usable = response.code == 0
            self.error = "" if self.usable else response.message
            self.unreachable = response.code == 14  # no daemon answers at `path`
            self._token = response.token if self.usable else ""
            self._room.notify_all()
        return response.token if self.usable else ""

    def grow(self, path, timeout=2.0):
        """Sender thread: grows the ring to grow_wanted, once the daemon has
        mapped the larger memfd. Returns "" or why it did not (the ring then
        keeps its size, and asks for no growth to that size again)."""
        wanted, self.grow_wanted = self.grow_wanted, 0
        with self._lock:
            token, size = self._token, self.size
        if (not token or wanted <= size or
                (self._grow_refused is not None and wanted >= self._grow_refused)):
            return ""
        try:
            if wanted > self._file_bytes:
                os.ftruncate(self._fd, wanted)  # no memory until the daemon takes it
                self._file_bytes = wanted
            response = self._exchange(
                path, pb.ShmAttachRequest(ring_bytes=wanted, grow_token=token), timeout)
            if response.code != 0:
                raise OSError(response.message)
            grown = mmap.mmap(self._fd, wanted, _MAP_FLAGS, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            self._grow_refused = wanted
            return str(e)
        with self._lock:
            # Copies in flight write through the old mapping (the same pages):
            # it stays open until close().
            self._old_maps.append(self._map)
            self._map = grown
            self._view = np.frombuffer(grown, dtype=np.uint8)
            self.size = wanted
            self._room.notify_all()
        return ""

    def _growth_for_locked(self, length):
        # Room for two (size_for), or, once the daemon refused that, for one
        # (a tensor too large for a request has no other way); None when
        # neither can be had.
        for target in (size_for(length, self.size, self.max_bytes),
                       size_for((length + 1) // 2, self.size, self.max_bytes)):
            if target >= length and (self._grow_refused is None or target < self._grow_refused):
                return target
        return None

    def could_grow_for(self, nbytes):
        """Whether a growth could let the ring hold a tensor of `nbytes` that
        it cannot hold now (within max_bytes, below a size the daemon refused)."""
        length = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        with self._lock:
            return length > self.size and self._growth_for_locked(length) is not None

    def want_growth(self, nbytes):
        """Asks the sender (grow()) for room for a tensor of `nbytes` that the
        ring cannot hold: for two of it, or for one when two was refused."""
        length = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        with self._lock:
            target = self._growth_for_locked(length)
            if target is not None:
                self.grow_wanted = max(self.grow_wanted, target)

    def _want_growth_locked(self, length):
        if 2 * length <= self.size or self.size >= self.max_bytes:
            return
        self.grow_wanted = max(self.grow_wanted, size_for(length, self.size, self.max_bytes))

    def _fit_locked(self, length):
        if not self._allocations:
            offset = 0 if length <= self.size else None
        else:
            tail = self._allocations[0][0]
            if self._head > tail:  # in use [tail, head); free at the end and before tail
                if length <= self.size - self._head:
                    offset = self._head
                elif length <= tail:
                    offset = 0
                else:
                    offset = None
            else:  # wrapped: free [head, tail)
                offset = self._head if length <= tail - self._head else None
        return offset

    def take(self, nbytes, wait=True):
        """A free slice of `nbytes`: (offset, a writable uint8 view of it), or
        None when the ring is not attached, the tensor is small or larger
        than the ring, or the ring stays full (for ROOM_WAIT, with `wait`).
        The caller fills the view, then names (offset, nbytes) in a record or
        free()s it."""
        if nbytes < MIN_SLICE_BYTES:
            return None
        length = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        with self._lock:
            if not self.usable:
                return None
            self._want_growth_locked(length)
            offset = self._fit_locked(length)
            if offset is None and wait and length <= self.size and not self._oldest_lent_locked():
                # Full of slices on their way: acknowledgements free them, the
                # oldest first. (When the oldest is lent and not logged yet,
                # only the caller's own code can free it: no wait.)
                self._room.wait_for(
                    lambda: not self.usable or not self._allocations or
                    self._fit_locked(length) is not None or self._oldest_lent_locked(),
                    ROOM_WAIT)
                offset = self._fit_locked(length) if self.usable else None
            if offset is None:
                return None
            self._allocations.append([offset, False])
            self._head = offset + length
            return offset, self._view[offset:offset + nbytes]

    def _oldest_lent_locked(self):
        oldest = self._allocations[0][0] if self._allocations else None
        return any(offset == oldest for offset, _ in self._lent.values())

    def lend(self, nbytes, wait=True):
        """A slice lent to the caller to fill in place (zero-copy): its
        uint8 view, or None as take(). copy_in() of an array over exactly
        that memory names the slice instead of copying; a view dropped
        without being logged gives its slice back."""
        taken = self.take(nbytes, wait)
        if taken is None:
            return None
        offset, view = taken
        address = view.__array_interface__["data"][0]
        with self._lock:
            self._lent[address] = (offset, nbytes)
        weakref.finalize(view, self._unlend, address, offset)
        return view

    def _unlend(self, address, offset):
        with self._lock:
            lent = self._lent.get(address)
            if lent is None or lent[0] != offset:
                return  # logged (copy_in took it), or another lending now
            del self._lent[address]
        self.free([offset])

    def copy_in(self, array, wait=True, with_range=False):
        """Copies the C-contiguous numpy `array` into a free slice: (offset,
        length, range), or None as take() (the caller sends bytes). An array
        that is a lent slice (lend()) is named as it is, without a copy.
        `range` is None, or with `with_range` and a float32 array whose
        values are finite and not all equal, their (min, max): ShmSlice.range,
        which spares the daemon a pass over the slice (a uniform histogram)."""
        address = array.__array_interface__["data"][0]
        with self._lock:
            lent = self._lent.get(address)
            if lent is not None and lent[1] == array.nbytes:
                del self._lent[address]
                self.tensors += 1
                return lent + (None,)  # no range: its pass would be the trainer's
        taken = self.take(array.nbytes, wait)
        if taken is None:
            return None
        offset, view = taken
        # Outside the lock, and without the GIL for large arrays.
        np.copyto(view, array.reshape(-1).view(np.uint8))
        with self._lock:
            self.tensors += 1
        return offset, array.nbytes, value_range(array) if with_range else None

    def free(self, offsets):
        with self._lock:
            for offset in offsets:
                for allocation in self._allocations:
                    if allocation[0] == offset and not allocation[1]:
                        allocation[1] = True
                        break
            while self._allocations and self._allocations[0][1]:
                self._allocations.popleft()
            if not self._allocations:
                self._head = 0
            self._room.notify_all()

    def read(self, offset, length):
        """A copy of a slice's bytes (for a stream the daemon gave no ring)."""
        return self._view[offset:offset + length].tobytes()

    def close(self):
        self._view = None
        for mapping in self._old_maps + [self._map]:
            try:
                mapping.close()
            except BufferError:
                pass  # a lent array (tensor_buffer) still uses it: unmapped with it
        os.close(self._fd)
