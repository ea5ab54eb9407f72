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

Thread-safe: the training threads allocate, the sender and receiver threads
attach and free.
"""

import mmap
import os
import socket
import threading
from collections import deque

import numpy as np

from tblog.v1 import tblog_pb2 as pb

MIN_SLICE_BYTES = 16 << 10  # smaller tensors go as bytes: a slice saves nothing
DEFAULT_RING_BYTES = 64 << 20
_ALIGN = 64


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


class Slice:
    """A tensor's bytes in the ring, in place of the bytes themselves in
    tensor_parts(): `data` is set instead when the sender had to turn it
    back into bytes (a stream the daemon gave no ring). len() is 0: the
    bytes are in the ring, not in the writer's buffer."""

    __slots__ = ("offset", "length", "data")

    def __init__(self, offset, length):
        self.offset = offset
        self.length = length
        self.data = None

    def __len__(self):
        return 0


class Ring:
    """One ring: create() it, attach() it to each new stream, copy_in()
    arrays, free() their slices once acknowledged."""

    def __init__(self, nbytes):
        fd = os.memfd_create("tblog-ring", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, nbytes)
            os.posix_fallocate(fd, 0, nbytes)  # its pages, before anyone faults them
            import fcntl
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
            self._map = mmap.mmap(fd, nbytes, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.size = nbytes
        self._view = np.frombuffer(self._map, dtype=np.uint8)
        self._lock = threading.Lock()
        self._allocations = deque()  # [offset, freed], oldest first
        self._head = 0
        self.usable = False
        self.error = ""
        self.tensors = 0  # tensors copy_in took

    def attach(self, path, timeout=2.0):
        """Hands the ring to the daemon; returns the token, or "" (the reason
        in .error) when the daemon refuses it or is not there."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(timeout)
                s.connect(path)
                request = pb.ShmAttachRequest(ring_bytes=self.size).SerializeToString()
                socket.send_fds(s, [request], [self._fd])
                response = pb.ShmAttachResponse.FromString(s.recv(1024))
        except OSError as e:
            response = pb.ShmAttachResponse(code=14, message=f"{path}: {e}")
        with self._lock:
            self.usable = response.code == 0
            self.error = "" if self.usable else response.message
        return response.token if self.usable else ""

    def _allocate_locked(self, nbytes):
        length = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
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
        if offset is not None:
            self._allocations.append([offset, False])
            self._head = offset + length
        return offset

    def copy_in(self, array):
        """Copies the C-contiguous numpy `array` into a free slice: (offset,
        length), or None when the ring is not attached, full, or the array
        is small (the caller sends bytes)."""
        nbytes = array.nbytes
        if nbytes < MIN_SLICE_BYTES:
            return None
        with self._lock:
            if not self.usable:
                return None
            offset = self._allocate_locked(nbytes)
            if offset is None:
                return None
            self.tensors += 1
        # Outside the lock, and without the GIL for large arrays.
        np.copyto(self._view[offset:offset + nbytes], array.reshape(-1).view(np.uint8))
        return offset, nbytes

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

    def read(self, offset, length):
        """A copy of a slice's bytes (for a stream the daemon gave no ring)."""
        return self._view[offset:offset + length].tobytes()

    def close(self):
        self._view = None
        self._map.close()
        os.close(self._fd)
