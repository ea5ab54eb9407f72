"""The request iterator of one Write stream (tblog/_stream.py): gRPC's
request thread takes from it what the sender thread puts."""

import collections
import threading


class RequestQueue:
    """Blocks the taker until a request is put or the queue is closed (which
    half-closes the stream). Thread-safe.

    gRPC's request thread takes the next request only once the previous one
    is sent (handed to the transport), so idle() also says that the stream
    has sent everything put: a request put now goes out at once."""

    def __init__(self):
        self._items = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._waiting = False  # the taker waits for a request
        self.puts = 0          # requests put so far
        self._taken = 0        # requests taken so far

    def put(self, request):
        with self._cv:
            self._items.append(request)
            self.puts += 1
            self._cv.notify_all()

    def close(self):
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def idle(self):
        """Whether the taker waits with nothing left to take (a snapshot)."""
        return self._waiting and not self._items

    def drained(self):
        """Whether every request put was taken (the taker may still be
        sending the last one; a snapshot)."""
        return not self._items

    def wait_taken(self, count, timeout):
        """Waits (at most `timeout` seconds) until `count` requests were taken,
        or the queue is closed."""
        with self._cv:
            self._cv.wait_for(lambda: self._taken >= count or self._closed, timeout)

    def __iter__(self):
        while True:
            with self._cv:
                while not self._items and not self._closed:
                    self._waiting = True
                    self._cv.wait()
                    self._waiting = False
                if not self._items:
                    return
                request = self._items.popleft()
                self._taken += 1
                self._cv.notify_all()  # wait_taken
            yield request
