"""The Python training thread's cost of a 1M-float histogram over shared memory.

    /usr/bin/python3 bench/shm_bench.py --address unix:/path/tblogd.sock [--calls 15]

The writer gives a batch's ring slices back once the daemon has written it,
so any --fsync-interval will do.

Through a real tblogd on this host (its --shm-socket next to the unix socket):
the median time of add_histogram(values) with room in the ring (each call
flushed before the next, so the daemon keeps up), of the same through
tensor_buffer() (zero-copy: the values computed into the ring; the fill is
not counted), and of add_histogram back to back (--calls, waits for ring room
included), then per call of a --burst that wraps the ring several times (at
the daemon's pace), with how many of each went through the ring. Issue 13's
Python row; figures, never assertions (bench/README.md).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "client", "python"))

import numpy as np  # noqa: E402
import tblog  # noqa: E402  (after the path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--elements", type=int, default=1 << 20)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--burst", type=int, default=60)
    args = parser.parse_args()
    values = np.sin(np.arange(args.elements, dtype=np.float32) * 1e-3)
    writer = tblog.SummaryWriter(address=args.address, experiment="shmbench", name="py")
    for step in range(2):  # the ring is made, and grown, for the first large tensors
        writer.add_histogram("warm_up", values, step)
        writer.flush()
    copied, lent = [], []
    for step in range(args.calls):
        start = time.perf_counter()
        writer.add_histogram("copied", values, step)
        copied.append((time.perf_counter() - start) * 1e3)
        writer.flush()
        buffer = writer.tensor_buffer(values.shape, np.float32)
        buffer[:] = values
        start = time.perf_counter()
        writer.add_histogram("lent", buffer, step)
        lent.append((time.perf_counter() - start) * 1e3)
        del buffer
        writer.flush()
    before = writer._stream.shm_status[0]
    start = time.perf_counter()
    for step in range(args.calls):
        writer.add_histogram("back_to_back", values, step)
    back_to_back = (time.perf_counter() - start) * 1e3 / args.calls
    writer.flush()
    via_ring = writer._stream.shm_status[0] - before
    # A burst that wraps the ring several times: the calls then go at the
    # daemon's pace (waits for room), the backpressure that keeps the ring.
    before = writer._stream.shm_status[0]
    start = time.perf_counter()
    for step in range(args.burst):
        writer.add_histogram("burst", values, step)
    burst = (time.perf_counter() - start) * 1e3 / max(args.burst, 1)
    writer.flush()
    tensors, error = writer._stream.shm_status
    burst_via_ring = tensors - before
    ring_mib = writer._stream._ring.size >> 20 if writer._stream._ring is not None else 0
    writer.close()
    print(f"Python, {args.elements} float32 per histogram: add_histogram with room in the ring: "
          f"median {statistics.median(copied):.3f} ms; tensor_buffer + add_histogram: median "
          f"{statistics.median(lent):.3f} ms; back to back: {back_to_back:.3f} ms a call "
          f"[goal <= 0.5 ms], {via_ring} of {args.calls} via the ring; a burst of {args.burst} "
          f"({ring_mib} MiB ring): {burst:.3f} ms a call, {burst_via_ring} of {args.burst} "
          f"via the ring"
          f"{', ' + error if error else ''}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
