"""The Write stream's request iterator (tblog/_request_queue.py): order,
the taker's idle state and wait_taken, which add_scalar's push relies on."""

import threading
import time

from tblog._request_queue import RequestQueue


def _taker(queue, taken, gate=None):
    def run():
        for request in queue:
            taken.append(request)
            if gate is not None:
                gate.wait(5)  # "sending" the request
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(condition, seconds=5):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)
    return condition()


def test_requests_come_out_in_order_and_close_ends_the_iteration():
    queue, taken = RequestQueue(), []
    thread = _taker(queue, taken)
    for i in range(100):
        queue.put(b"%d" % i)
    queue.close()
    thread.join(5)
    assert not thread.is_alive()
    assert taken == [b"%d" % i for i in range(100)]
    assert queue.puts == 100


def test_idle_drained_and_wait_taken_follow_the_taker():
    queue, taken, gate = RequestQueue(), [], threading.Event()
    assert not queue.idle() and queue.drained()  # no taker yet
    thread = _taker(queue, taken, gate)
    assert _until(queue.idle)
    queue.put(b"a")
    queue.wait_taken(queue.puts, 5)
    assert taken == [b"a"]
    # Taken, still being sent: drained (nothing left to take), not idle.
    assert queue.drained() and not queue.idle()
    queue.put(b"b")
    assert not queue.drained()
    start = time.monotonic()
    queue.wait_taken(queue.puts, 0.05)  # the taker is busy: times out
    assert time.monotonic() - start >= 0.04 and taken == [b"a"]
    gate.set()
    queue.wait_taken(queue.puts, 5)
    assert taken == [b"a", b"b"]
    assert _until(queue.idle)
    queue.close()
    thread.join(5)


def test_wait_taken_returns_when_the_queue_is_closed():
    queue = RequestQueue()
    queue.put(b"never taken")
    threading.Timer(0.05, queue.close).start()
    start = time.monotonic()
    queue.wait_taken(queue.puts, 10)
    assert time.monotonic() - start < 5
