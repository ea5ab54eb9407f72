"""The Python training thread's cost of a 1M-float histogram over shared memory.

    /usr/bin/python3 bench/shm_bench.py --address unix:/path/tblogd.sock [--calls 15]

Start that tblogd with a short --fsync-interval (e.g. 10ms): the Python
writer keeps a batch's ring slices until the batch is durable (for resends),
so with the default interval the ring fills and later tensors go as bytes.

Through a real tblogd on this host (its --shm-socket next to the unix socket):
the median time of add_histogram(values) with room in the ring (each call
flushed before the next, so the daemon keeps up), of the same through
tensor_buffer() (zero-copy: the values computed into the ring; the fill is
not counted), and of add_histogram back to back (waits for ring room
included). Issue 13's Python row; figures, never assertions (bench/README.md).
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
    args = parser.parse_args()
    values = np.sin(np.arange(args.elements, dtype=np.float32) * 1e-3)
    writer = tblog.SummaryWriter(address=args.address, experiment="shmbench", name="py")
    for step in range(2):  # the ring is made, and grown, for the first large tensors
        writer.add_histogram("warm_up", values, step)
        writer.flush()
    copied, lent, back_to_back = [], [], []
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
    start = time.perf_counter()
    for step in range(args.calls):
        writer.add_histogram("back_to_back", values, step)
    back_to_back.append((time.perf_counter() - start) * 1e3 / args.calls)
    writer.flush()
    tensors, error = writer._stream.shm_status
    writer.close()
    print(f"Python, {args.elements} float32 per histogram: add_histogram with room in the ring: "
          f"median {statistics.median(copied):.3f} ms; tensor_buffer + add_histogram: median "
          f"{statistics.median(lent):.3f} ms; back to back: {back_to_back[0]:.3f} ms a call "
          f"[goal <= 0.5 ms]; {tensors} tensors via the ring{', ' + error if error else ''}; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
