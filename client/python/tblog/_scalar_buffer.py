"""The scalar half of a Stream's buffer (tblog/_stream.py): where the
training thread's points are encoded, and how they reach the daemon while
the training loop runs.

Points are encoded on the thread that buffered them, every ENCODE_POINTS
points and at flush(): there they are in the core's cache (the sender's
thread, on the other core, took twice as long: 1.2 ms against 0.6 ms for
10,000, measured), so flush() has at most ENCODE_POINTS left to encode.

Then they are pushed. A training loop holds the GIL, so the sender thread and
gRPC's request thread run only every sys.getswitchinterval() (5 ms) while it
calls add_scalar: without a push, 10,000 points buffered in 4 ms reached the
daemon only at flush(), which then waited for the daemon to write all of
them (about 2 ms). A push hands the encoded points to the sender and waits
until gRPC has taken them: a few thread wake-ups (0.1-1 ms every
ENCODE_POINTS points, measured under load; _PUSH_WAIT at most), and only
when the sender is between rounds and gRPC has taken every request before
(it may still be sending the last), so not at the daemon's pace. The daemon
then writes while the loop runs, and flush() waits for the last few
thousand points only.
"""

import time

from tblog import _columns

# Scalar points per ScalarColumns record.
COLUMN_POINTS = 1 << 16
# Estimated bytes of one buffered scalar point (list slots, ints, floats).
POINT_BYTES = 48
# Buffered points that add_scalar encodes and pushes at once (points_full).
# Small enough that such a call stays well under a millisecond, large enough
# that a record's fixed costs (the daemon's, the encoder's) stay small.
ENCODE_POINTS = 4096
# How long a push waits for the sender, then for gRPC, at most: they were
# idle when it started, so only a loaded machine, or a daemon that stopped
# reading (gRPC's flow control holds the previous request), comes near it.
# What is not taken by then goes out later, as any buffered record.
_PUSH_WAIT = 0.005


class ScalarBuffer:
    """Mixin of Stream: uses its lock (_cv), buffer (points, _items,
    _item_bytes, _tags, _stream_tags), sender state (_building, flush
    tokens) and Write stream (_stream_queue, _stream_broken)."""

    def points_full(self):
        """Called by a training thread that found full_entries in `points`:
        encodes them, pushes them to the daemon (_push_locked), and blocks while the buffer is over its bounds (the daemon is
        slower than the training loop, or unreachable)."""
        with self._cv:
            self._encode_points_locked()
            # Past the stream dictionary's cap every record carries its own
            # dictionary: the sender's rounds keep them few (no push).
            pushed = self._push_locked() if self._stream_tags else None
            room = (len(self.points) < self.max_point_entries and
                    self._item_bytes + self._unwritten_bytes <= self._max_buffer_bytes)
        if pushed is not None:
            queue, count = pushed
            queue.wait_taken(count, _PUSH_WAIT)
        if not room:
            self._wait_for_room()

    def _push_locked(self):
        """Has the sender, when between rounds and with gRPC's queue drained,
        send the buffer now (a flush token: it sends at once, without
        waiting for a written ack) and returns (the Write
        stream's queue, the requests put into it by then), for the caller to
        wait until gRPC took them; None when nothing is to be waited for."""
        queue = self._stream_queue
        if (self._stream_broken or self._fatal is not None or self._closing or
                self._building or queue is None or not queue.drained()):
            return None
        self._flush_requested += 1
        token = self._flush_requested
        self.send_now = False
        self._cv.notify_all()
        deadline = time.monotonic() + _PUSH_WAIT
        while self._flush_served < token:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._fatal is not None or self._stream_broken:
                return None  # sent later, as any buffered record
            self._cv.wait(remaining)
        return queue, queue.puts

    def _take_points_locked(self):
        """Moves the buffered points, as they are, behind the buffered records
        (the sender encodes them); they count as buffered bytes from here."""
        points = self.points
        n = len(points)
        if n:
            self._items.append(points[:n])
            del points[:n]
            self._item_bytes += n // _columns.FIELDS * POINT_BYTES

    def _encode_points_locked(self):
        """flush() and points_full(), on the calling thread: encodes the
        buffered points (_columns.Encoded) for the sender to send. Holding
        the lock keeps them in call order among the buffered records (the
        receiver's acks wait that long, a fraction of a millisecond). They
        count as buffered bytes from here. Past the stream dictionary's cap
        (a dictionary in every record) they are left to the sender, which
        encodes a round's points together (merge_point_lists)."""
        points = self.points
        n = len(points)
        if not n:
            return
        if not self._stream_tags:
            self._take_points_locked()
            return
        taken = points[:n]
        del points[:n]
        try:
            self._items.append(_columns.Encoded(taken, self._tags, self._stream_tags,
                                                COLUMN_POINTS))
        except Exception:  # noqa: BLE001  the sender's own encoding reports it
            self._items.append(taken)
        self._item_bytes += n // _columns.FIELDS * POINT_BYTES

    def _scalar_chunks(self, item, tags):
        """(records, None or an error) of each chunk of at most COLUMN_POINTS
        points of `item`, a flat list of points or _columns.Encoded ones
        (encoded again if the dictionary form changed since). Sender thread."""
        if isinstance(item, _columns.Encoded) and item.stream_tags == self._stream_tags:
            return item.chunks
        points = item.points if isinstance(item, _columns.Encoded) else item
        return _columns.chunked(points, tags, self._stream_tags, COLUMN_POINTS)


def merge_point_lists(items):
    """`items` (taken from the buffer, in call order) with each run of
    adjacent flat point lists joined into its first list (extended in place:
    the lists are the taker's): encoded together, they share one record, so
    one dictionary when each record carries its own."""
    merged = []
    for item in items:
        if type(item) is list and merged and type(merged[-1]) is list:
            merged[-1].extend(item)
        else:
            merged.append(item)
    return merged
