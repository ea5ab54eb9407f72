"""What the Python client costs at the edges of a run, through a real tblogd.

    /usr/bin/python3 bench/python_edges.py --address unix:/path/tblogd.sock [--repeat 5]

Prints the medians over --repeat fresh runs of: SummaryWriter() (channel,
OpenRun, stream), flush() after --flush-scalars add_scalar calls, and close()
right after that flush. Figures, never assertions (bench/README.md).
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "client", "python"))

import tblog  # noqa: E402  (after the path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--flush-scalars", type=int, default=10_000)
    args = parser.parse_args()
    opened, flushed, closed = [], [], []
    for r in range(args.repeat):
        start = time.perf_counter()
        writer = tblog.SummaryWriter(address=args.address, experiment="pyedges", name=f"r{r}")
        opened.append((time.perf_counter() - start) * 1e3)
        for i in range(args.flush_scalars):
            writer.add_scalar("edges/flush", float(i), i)
        start = time.perf_counter()
        writer.flush()
        flushed.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        writer.close()
        closed.append((time.perf_counter() - start) * 1e3)
    print(f"Python SummaryWriter(): median {statistics.median(opened):.2f} ms; flush() after "
          f"{args.flush_scalars} scalars: median {statistics.median(flushed):.2f} ms; close(): "
          f"median {statistics.median(closed):.2f} ms over {args.repeat} runs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
