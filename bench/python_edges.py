"""What the Python client costs at the edges of a run, through a real tblogd.

    /usr/bin/python3 bench/python_edges.py --address unix:/path/tblogd.sock [--repeat 5]

Prints the medians over --repeat fresh runs of: SummaryWriter() (channel,
OpenRun, stream), flush() after --flush-scalars add_scalar calls, and close()
right after that flush. Then the time from a lone add_scalar (one every
--gap-ms, nothing else going on, no flush) until the run's event files grew,
polled as a reader would: median and 90th percentile over --lone-scalars.
Last, the training thread's cost of --scalars back-to-back add_scalar calls,
per call and end to end (with the flush that makes them all visible).
The daemon must be on this host (the files are read where it writes them).
Figures, never assertions (bench/README.md).
"""
import argparse
import glob
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "client", "python"))

import tblog  # noqa: E402  (after the path)


def event_bytes(directory):
    """Bytes in the event files under `directory` (a reader's view)."""
    total = 0
    for path in glob.glob(os.path.join(glob.escape(directory), "**", "*tfevents*"),
                          recursive=True):
        try:
            total += os.stat(path).st_size
        except FileNotFoundError:
            pass
    return total


def visible_ms(address, count, gap_ms):
    """Milliseconds from each lone add_scalar until the event files grew (5 s
    at most: then the record was not visible before a flush)."""
    writer = tblog.SummaryWriter(address=address, experiment="pyedges", name="visible")
    directory = writer.get_logdir()
    latencies = []
    for i in range(count):
        time.sleep(gap_ms / 1e3)
        before = event_bytes(directory)
        start = time.perf_counter()
        writer.add_scalar("edges/lone", 1.0, i)
        while event_bytes(directory) == before and time.perf_counter() - start < 5:
            time.sleep(50e-6)
        latencies.append((time.perf_counter() - start) * 1e3)
    writer.close()
    return latencies


def throughput_us(address, count, runs):
    """Per add_scalar call: (us on the training thread, us until all flushed)."""
    calls, end_to_end = [], []
    for r in range(runs):
        writer = tblog.SummaryWriter(address=address, experiment="pyedges", name=f"t{r}")
        start = time.perf_counter()
        for i in range(count):
            writer.add_scalar("edges/throughput", 0.5, i)
        called = time.perf_counter()
        writer.flush()
        flushed = time.perf_counter()
        writer.close()
        calls.append((called - start) * 1e6 / count)
        end_to_end.append((flushed - start) * 1e6 / count)
    return statistics.median(calls), statistics.median(end_to_end)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--flush-scalars", type=int, default=10_000)
    parser.add_argument("--lone-scalars", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=20)
    parser.add_argument("--scalars", type=int, default=200_000)
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
    if args.lone_scalars > 0:
        lone = sorted(visible_ms(args.address, args.lone_scalars, args.gap_ms))
        print(f"Python add_scalar() -> record in the file ({args.lone_scalars} lone scalars, "
              f"{args.gap_ms:g} ms apart): median {statistics.median(lone):.2f} ms, p90 "
              f"{lone[int(0.9 * (len(lone) - 1))]:.2f} ms; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.scalars > 0:
        per_call, end_to_end = throughput_us(args.address, args.scalars, 3)
        print(f"Python add_scalar() back to back ({args.scalars} calls, median of 3 runs): "
              f"{per_call:.2f} us per call, {end_to_end:.2f} us end to end; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
