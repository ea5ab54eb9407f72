#!/usr/bin/env python3
"""What logging costs the training thread: tblog.SummaryWriter (through
tblogd) side by side with the same work done in-process.

    /usr/bin/python3 client/python/bench_client.py [--address unix:/path] [--quick]

Without --address it starts tblogd itself ($TBLOGD_BINARY or
<repo>/build*/server/daemon/tblogd) on a temporary logdir and unix socket.
In-process comparison: torch.utils.tensorboard.SummaryWriter when it imports
(it needs the `tensorboard` package); otherwise the bare in-process work that
writer does per call, rebuilt here from numpy, zlib and the event protos:
build and serialize the Event, frame it (CRC-32C), write it; numpy.histogram
over TensorFlow's 1549 bucket edges; PNG encoding with zlib.
Per-call figures are means over back-to-back calls, in microseconds, except
the row measured with calls 50 ms apart (median); "end to end" adds the final
flush, i.e. until the daemon has written everything.
"""

import argparse
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from source_tree import tblogd_binary, use_build_stubs  # noqa: E402

use_build_stubs()
import tblog  # noqa: E402
from tblog.tensorboard import event_pb2, summary_pb2  # noqa: E402


def machine():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def per_call_us(fn, count):
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return (time.perf_counter() - start) / count * 1e6


# ------------------------------------------------------- in-process baseline

def _masked_crc(data):
    # The cost of a C CRC over the record (zlib's CRC-32 stands in for the
    # CRC-32C of a compiled crc32c module: same work per byte), then the mask.
    crc = zlib.crc32(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class InProcessWriter:
    """The per-call work of an in-process event writer (what PyTorch's
    SummaryWriter does), for when torch.utils.tensorboard cannot be imported."""

    def __init__(self, path):
        self._file = open(path, "wb")
        limits, v = [], 1e-12
        while v < 1e20:
            limits.append(v)
            v *= 1.1
        self._edges = np.array([-x for x in reversed(limits)] + [0.0] + limits)

    def _write(self, step, summary):
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary)
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(header + struct.pack("<I", _masked_crc(header)) + data +
                         struct.pack("<I", _masked_crc(data)))

    def add_scalar(self, tag, value, step):
        self._write(step, summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))]))

    def add_histogram(self, tag, values, step):
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        counts, limits = np.histogram(values, bins=self._edges)
        nonzero = np.nonzero(counts)[0]
        lo, hi = (max(0, nonzero[0] - 1), nonzero[-1] + 1) if len(nonzero) else (0, 0)
        histo = summary_pb2.HistogramProto(
            min=values.min(), max=values.max(), num=len(values), sum=values.sum(),
            sum_squares=values.dot(values), bucket_limit=limits[lo + 1:hi + 1].tolist(),
            bucket=counts[lo:hi].tolist())
        self._write(step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                               histo=histo)]))

    def add_image(self, tag, image, step, dataformats="HWC"):
        height, width, channels = image.shape
        rows = np.concatenate([np.zeros((height, 1), np.uint8),
                               image.reshape(height, width * channels)], axis=1)

        def chunk(kind, body):
            return (struct.pack(">I", len(body)) + kind + body +
                    struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
        png = (b"\x89PNG\r\n\x1a\n" +
               chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
               chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))
        img = summary_pb2.Summary.Image(height=height, width=width, colorspace=channels,
                                        encoded_image_string=png)
        self._write(step, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag,
                                                                               image=img)]))

    def flush(self):
        self._file.flush()

    def close(self):
        self._file.close()


# ---------------------------------------------------------------- the daemon

def start_daemon(workdir):
    binary = tblogd_binary()
    if not binary:
        sys.exit("bench_client: no tblogd binary (set TBLOGD_BINARY or pass --address)")
    socket_path = os.path.join(workdir, "d.sock")
    log = open(os.path.join(workdir, "tblogd.log"), "wb")
    process = subprocess.Popen([binary, "--logdir", os.path.join(workdir, "logs"),
                                "--unix-socket", socket_path, "--listen", ""],
                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not os.path.exists(socket_path):
        if process.poll() is not None:
            sys.exit(f"bench_client: tblogd exited with {process.returncode}")
        time.sleep(0.02)
    return process, "unix:" + socket_path


def spaced_median_us(fn, count, gap):
    """Median cost of calls made `gap` seconds apart, as in a training loop
    where logging sits between steps of real work."""
    times = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
        time.sleep(gap)
    return float(np.median(times)) * 1e6


def bench(writer, scalars, histograms, images, flush):
    rng = np.random.default_rng(0)
    hist_values = rng.normal(size=1 << 20).astype(np.float32)
    image = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    out = {}
    out["add_scalar"] = per_call_us(lambda i: writer.add_scalar("loss", 0.5, i), scalars)
    start = time.perf_counter()
    flush()
    out["add_scalar end to end"] = ((time.perf_counter() - start) * 1e6 / scalars +
                                    out["add_scalar"])
    out["add_histogram(1M float32)"] = per_call_us(
        lambda i: writer.add_histogram("weights", hist_values, i), histograms)
    flush()
    out["add_histogram(1M), 50 ms apart, median"] = spaced_median_us(
        lambda i: writer.add_histogram("weights2", hist_values, i), min(histograms, 20), 0.05)
    flush()
    out["add_image(256x256x3 uint8)"] = per_call_us(
        lambda i: writer.add_image("image", image, i, dataformats="HWC"), images)
    flush()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", help="a running tblogd (default: start one)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    scalars, histograms, images = (20000, 10, 20) if args.quick else (200000, 50, 100)

    workdir = tempfile.mkdtemp(prefix="tblog-bench-")
    process = None
    try:
        address = args.address
        if address is None:
            process, address = start_daemon(workdir)
        print(f"machine: {machine()}")
        print(f"calls: {scalars} scalars, {histograms} histograms, {images} images\n")

        writer = tblog.SummaryWriter("bench/tblog", address=address)
        ours = bench(writer, scalars, histograms, images, writer.flush)
        writer.close()

        try:
            from torch.utils.tensorboard import SummaryWriter as TorchWriter
            baseline_name = "torch.utils.tensorboard"
            torch_writer = TorchWriter(os.path.join(workdir, "torch"))
            theirs = bench(torch_writer, scalars, histograms, images, torch_writer.flush)
            torch_writer.close()
        except ImportError as e:
            baseline_name = "in-process (torch's work, rebuilt)"
            print(f"torch.utils.tensorboard not importable ({e}); baseline: the same work "
                  "done in-process with numpy/zlib/protobuf\n")
            inproc = InProcessWriter(os.path.join(workdir, "inprocess.tfevents"))
            theirs = bench(inproc, scalars, min(histograms, 20), min(images, 20), inproc.flush)
            inproc.close()

        print(f"{'cost on the training thread (us/call)':40s} {'tblog':>12s} {baseline_name:>36s}")
        for key in ours:
            print(f"{key:40s} {ours[key]:12.2f} {theirs[key]:36.2f}")
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
