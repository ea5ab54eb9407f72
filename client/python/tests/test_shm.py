"""Shared memory from Python (tblog/_shm.py; README "Shared memory"):
histograms, images and embeddings from numpy and torch buffers go through the
daemon's ring and equal the same records sent as bytes; a daemon without a
shm socket, or a ring it refuses, gets bytes."""

import os
import signal
import time

import numpy as np
import pytest

import eventfile
from tblog import SummaryWriter, _shm


def _log(writer, values, pixels, matrix):
    # The first large tensor asks for a ring (it goes as bytes); flushed, the
    # ring is attached for the next ones.
    writer.add_histogram("warm_up", np.ones(_shm.MIN_SLICE_BYTES // 4, np.float32), 0)
    writer.flush()
    writer.add_histogram("weights", values, 1, walltime=1700000000.0)
    writer.add_histogram("weights_uniform", values, 1, bins="auto", walltime=1700000000.0)
    writer.add_image("picture", pixels, 1, dataformats="HWC", walltime=1700000000.0)
    writer.add_embedding(matrix, global_step=1, tag="points")
    writer.flush()


def _values_by_tag(run_dir):
    return {v.tag: v.SerializeToString() for _, _, v in eventfile.values(run_dir)}


def test_ring_records_equal_bytes(daemon, monkeypatch):
    values = np.sin(np.arange(1 << 20, dtype=np.float32) * 0.001) * 3
    pixels = (np.arange(128 * 128 * 3) % 251).astype(np.uint8).reshape(128, 128, 3)
    matrix = np.cos(np.arange(200 * 32, dtype=np.float32)).reshape(200, 32)
    runs = {}
    for name, ring_bytes in (("ring", str(64 << 20)), ("bytes", "0")):
        monkeypatch.setenv("TBLOG_SHM_RING_BYTES", ring_bytes)
        writer = SummaryWriter(f"py/{name}", address=daemon.address)
        _log(writer, values, pixels, matrix)
        tensors, error = writer._stream.shm_status
        assert tensors == (4 if name == "ring" else 0), error
        writer.close()
        runs[name] = os.path.join(daemon.logdir, "py", name)
    ring, plain = _values_by_tag(runs["ring"]), _values_by_tag(runs["bytes"])
    for tag in ("weights", "weights_uniform", "picture"):
        assert ring[tag] == plain[tag], tag
    tsv = os.path.join("00001", "points", "tensors.tsv")
    with open(os.path.join(runs["ring"], tsv)) as a, open(os.path.join(runs["bytes"], tsv)) as b:
        assert a.read() == b.read()


def test_torch_tensor_through_the_ring(daemon):
    torch = pytest.importorskip("torch")
    writer = SummaryWriter("py/torch", address=daemon.address)
    writer.add_histogram("warm_up", torch.ones(1 << 14), 0)
    writer.flush()
    for step in range(5):
        writer.add_histogram("w", torch.randn(1 << 18), step)
    writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors >= 1, error
    writer.close()
    steps = [s for s, _, v in eventfile.values(os.path.join(daemon.logdir, "py", "torch"))
             if v.tag == "w"]
    assert steps == list(range(5))


@pytest.mark.parametrize("daemon_args", [["--shm-socket", "off"],
                                         ["--max-inflight-bytes", "8MiB"]])
def test_bytes_when_the_ring_is_absent_or_refused(daemon):
    values = np.linspace(-1, 1, 1 << 18, dtype=np.float32)
    writer = SummaryWriter("py/fallback", address=daemon.address)
    writer.add_histogram("warm_up", values, 0)
    writer.flush()
    writer.add_histogram("h", values, 1)
    writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors == 0
    assert error  # the daemon's reason, or the socket's absence
    writer.close()
    tags = [v.tag for _, _, v in eventfile.values(os.path.join(daemon.logdir, "py", "fallback"))]
    assert tags == ["warm_up", "h"]


def _writer_with_a_ring(daemon, monkeypatch, run, ring_bytes):
    """A writer whose ring of `ring_bytes` is attached: its first large
    tensor asks for the ring (and goes as bytes); flushed, the ring is there
    for the next ones."""
    monkeypatch.setenv("TBLOG_SHM_RING_BYTES", str(ring_bytes))
    writer = SummaryWriter(run, address=daemon.address)
    writer.add_histogram("warm_up", np.ones(_shm.MIN_SLICE_BYTES // 4, np.float32), 0)
    writer.flush()
    return writer


def test_ring_grows_for_tensors_that_leave_no_room_for_a_second(daemon, monkeypatch):
    # 600 KB tensors in a 1 MiB ring: one at a time until the sender grows
    # it (each flushed, so the one before has given its slice back).
    values = np.sin(np.arange(150000, dtype=np.float32) * 0.01)
    writer = _writer_with_a_ring(daemon, monkeypatch, "py/grown", 1 << 20)
    for step in range(12):
        writer.add_histogram("h", values, step)
        writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors >= 2, error
    assert writer._stream._ring.size == 2 << 20
    writer.close()
    logged = [v.SerializeToString() for _, _, v in
              eventfile.values(os.path.join(daemon.logdir, "py", "grown")) if v.tag == "h"]
    assert len(logged) == 12 and len(set(logged)) == 1


def test_size_for_doubles_until_two_tensors_fit():
    assert _shm.size_for(600000, 1 << 20, 1 << 30) == 2 << 20
    assert _shm.size_for(100, 1 << 20, 1 << 30) == 1 << 20  # never below the default
    assert _shm.size_for(64 << 20, 64 << 20, 1 << 30) == 128 << 20
    assert _shm.size_for(1 << 30, 64 << 20, 256 << 20) == 256 << 20  # at most the cap


def test_first_ring_is_sized_for_the_tensor_that_asked_for_it(daemon, monkeypatch):
    # A 600 KB tensor asks for the ring: 2 MiB at once, not 1 MiB grown on
    # the second tensor (the daemon maps a grown ring while the trainer waits).
    monkeypatch.setenv("TBLOG_SHM_RING_BYTES", str(1 << 20))
    values = np.sin(np.arange(150000, dtype=np.float32) * 0.01)
    writer = SummaryWriter("py/sized", address=daemon.address)
    for step in range(4):
        writer.add_histogram("h", values, step)
        writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors == 3, error  # the first went as bytes, while the ring was made
    assert writer._stream._ring.size == 2 << 20
    assert writer._stream._ring._old_maps == []  # made at that size, never grown
    writer.close()
    logged = [v.SerializeToString() for _, _, v in
              eventfile.values(os.path.join(daemon.logdir, "py", "sized")) if v.tag == "h"]
    assert len(logged) == 4 and len(set(logged)) == 1


@pytest.mark.parametrize("daemon_args", [["--max-inflight-bytes", "8MiB"]])  # rings: 4 MiB
def test_first_ring_refused_at_its_size_falls_back_to_the_default(daemon, monkeypatch):
    # A 2.4 MB tensor asks for an 8 MiB ring, which the daemon refuses; the
    # writer attaches one of TBLOG_SHM_RING_BYTES for the smaller tensors.
    monkeypatch.setenv("TBLOG_SHM_RING_BYTES", str(1 << 20))
    large = np.ones(600000, np.float32)
    small = np.ones(100000, np.float32)
    writer = SummaryWriter("py/refused", address=daemon.address)
    writer.add_histogram("large", large, 0)
    writer.flush()
    for step in range(1, 4):
        writer.add_histogram("large", large, step)
        writer.add_histogram("small", small, step)
        writer.flush()
    tensors, error = writer._stream.shm_status
    assert error == ""
    assert writer._stream._ring.size == 1 << 20
    assert tensors == 3  # the small ones; the large ones as bytes
    writer.close()
    tags = [v.tag for _, _, v in eventfile.values(os.path.join(daemon.logdir, "py", "refused"))]
    assert sorted(tags) == ["large"] * 4 + ["small"] * 3


@pytest.mark.parametrize("daemon_args", [["--shm-socket", "off"]])
def test_no_smaller_ring_is_tried_when_no_daemon_answers_at_the_socket(daemon, monkeypatch):
    # Refused, the first ring is made again at the default size; unanswered
    # (no shm socket), it is not: a second memfd would get no answer either.
    monkeypatch.setenv("TBLOG_SHM_RING_BYTES", str(1 << 20))
    made = []
    init = _shm.Ring.__init__

    def counting(self, nbytes, max_bytes=None):
        made.append(nbytes)
        init(self, nbytes, max_bytes)

    monkeypatch.setattr(_shm.Ring, "__init__", counting)
    writer = SummaryWriter("py/unanswered", address=daemon.address)
    for step in range(2):
        writer.add_histogram("h", np.ones(600000, np.float32), step)
        writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors == 0 and error
    writer.close()
    assert made == [8 << 20]  # room for two 2.4 MB tensors; no 1 MiB retry


def test_ring_take_waits_for_room_and_gives_up():
    ring = _shm.Ring(1 << 20, max_bytes=1 << 20)
    ring.usable = True  # not attached: take() and free() only
    first = ring.take(600 << 10, wait=False)
    assert first is not None and ring.grow_wanted == 0  # no growth past max_bytes
    assert ring.take(600 << 10, wait=False) is None
    assert ring.take(2 << 20) is None  # larger than the ring: at once, no wait
    _shm.ROOM_WAIT, saved = 0.05, _shm.ROOM_WAIT
    try:
        assert ring.take(600 << 10) is None  # full: waited, gave up
    finally:
        _shm.ROOM_WAIT = saved
    ring.free([first[0]])
    second = ring.take(600 << 10)
    assert second is not None and second[0] == 0
    del first, second  # their views hold the mapping open
    ring.close()


def test_ring_full_of_lent_slices_does_not_wait():
    # tensor_buffer()s not logged yet: no acknowledgement can free them, so
    # the next one is a plain array at once (not after ROOM_WAIT).
    ring = _shm.Ring(1 << 20, max_bytes=1 << 20)
    ring.usable = True
    lent = ring.lend(600 << 10)
    assert lent is not None
    start = time.monotonic()
    assert ring.lend(600 << 10) is None
    assert ring.take(600 << 10) is None
    assert time.monotonic() - start < _shm.ROOM_WAIT / 2
    del lent  # gives its slice back
    assert ring.take(600 << 10) is not None


def test_tensor_buffer_is_zero_copy_and_equals_bytes(daemon, monkeypatch):
    values = np.sin(np.arange(1 << 18, dtype=np.float32) * 0.003)
    logged = {}
    for name, ring_bytes in (("lent", str(64 << 20)), ("plain", "0")):
        monkeypatch.setenv("TBLOG_SHM_RING_BYTES", ring_bytes)
        writer = SummaryWriter(f"py/{name}", address=daemon.address)
        writer.add_histogram("warm_up", np.ones(_shm.MIN_SLICE_BYTES // 4, np.float32), 0)
        writer.flush()
        for step in range(3):
            buffer = writer.tensor_buffer(values.shape, np.float32)
            buffer[:] = values
            writer.add_histogram("w", buffer, step, walltime=1700000000.0)
        dropped = writer.tensor_buffer(values.shape)  # never logged: given back
        del dropped
        writer.flush()
        tensors, error = writer._stream.shm_status
        if name == "lent":
            assert tensors == 3, error  # the dropped one is not counted
            assert not writer._stream._ring._lent
        writer.close()
        logged[name] = [v.SerializeToString() for _, _, v in
                        eventfile.values(os.path.join(daemon.logdir, "py", name)) if v.tag == "w"]
    assert len(logged["lent"]) == 3 and logged["lent"] == logged["plain"]


def _histograms(run_dir, tag):
    """(step, num, sum) of each histogram of `tag` in the run's files, in file order."""
    return [(step, v.histo.num, v.histo.sum) for step, _, v in eventfile.values(run_dir)
            if v.tag == tag]


@pytest.mark.parametrize("daemon_args", [["--fsync", "never"]])
def test_back_to_back_histograms_reuse_the_ring_before_anything_is_durable(daemon, monkeypatch):
    # 64 tensors of 256 KiB through a 4 MiB ring, with no fsync (nothing ever
    # durable): the ring wraps four times, so every slice is given back at its
    # batch's written ack and the calls wait for room instead of sending bytes.
    values = np.cos(np.arange(1 << 16, dtype=np.float32) * 0.01)
    writer = _writer_with_a_ring(daemon, monkeypatch, "py/b2b", 4 << 20)
    for step in range(64):
        writer.add_histogram("h", values, step)
    writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors == 64, error
    assert writer._stream._ring.size == 4 << 20  # wrapped, not grown
    writer.close()
    run = os.path.join(daemon.logdir, "py", "b2b")
    logged = [v.SerializeToString() for _, _, v in eventfile.values(run) if v.tag == "h"]
    assert len(logged) == 64 and len(set(logged)) == 1
    assert [step for step, _, _ in _histograms(run, "h")] == list(range(64))


@pytest.mark.parametrize("daemon_args", [["--fsync", "never"]])
def test_ring_histograms_survive_a_daemon_kill_once_each(daemon, monkeypatch):
    # A 2 MiB ring of 256 KiB tensors wraps every 8 histograms, so slices of
    # written batches are reused long before the kill. After kill -9 the
    # restarted daemon finds the written batches in its files; the writer
    # resends the others, whose slices it still holds: each step once, with
    # its own values (sum = (step + 1) * base). While the stream is down a
    # full ring does not wait (bytes); once back, the ring is used again.
    base = np.linspace(0.5, 1.5, 1 << 16, dtype=np.float32)
    writer = _writer_with_a_ring(daemon, monkeypatch, "py/kill", 2 << 20)
    total = 70
    for step in range(total):
        writer.add_histogram("h", base * (step + 1), step)
        if step == 25:
            assert writer._stream.shm_status[0] == 26
            daemon.stop(sig=signal.SIGKILL)
        if step == 35:
            daemon.start()
        if step == 59:
            writer.flush()  # reconnected: the resends are written
            before = writer._stream.shm_status[0]
    writer.flush()
    tensors, error = writer._stream.shm_status
    assert writer._stream._stream_gen == 2  # one reconnect
    assert tensors == before + 10, error
    writer.close()
    got = _histograms(os.path.join(daemon.logdir, "py", "kill"), "h")
    assert [step for step, _, _ in got] == list(range(total))
    expected = float(base.astype(np.float64).sum())
    for step, num, total_sum in got:
        assert num == 1 << 16
        assert total_sum == pytest.approx(expected * (step + 1), rel=1e-5), step


def test_value_range_is_only_a_range_the_daemon_can_count_from():
    values = np.sin(np.arange(1 << 16, dtype=np.float32) * 0.01)
    values[7] = -2.5
    values[9] = 4.0
    assert _shm.value_range(values) == (-2.5, 4.0)
    for odd in (np.nan, np.inf, -np.inf):
        bad = values.copy()
        bad[100] = odd
        assert _shm.value_range(bad) is None, odd
    assert _shm.value_range(np.full(1000, 1.5, np.float32)) is None  # all equal
    assert _shm.value_range(values.astype(np.float64)) is None  # float32 only
    assert _shm.value_range(np.zeros(0, np.float32)) is None


def test_ring_copies_carry_the_range_when_asked():
    ring = _shm.Ring(1 << 20, max_bytes=1 << 20)
    ring.usable = True  # not attached: copy_in() and free() only
    values = np.linspace(-3, 5, 1 << 16, dtype=np.float32)
    offset, length, value_range = ring.copy_in(values, wait=False, with_range=True)
    assert (length, value_range) == (values.nbytes, (-3.0, 5.0))
    assert ring.read(offset, length) == values.tobytes()
    ring.free([offset])
    offset, _, value_range = ring.copy_in(values, wait=False)
    assert value_range is None
    ring.free([offset])
    ring.close()


def test_uniform_histograms_with_ranges_equal_bytes(daemon, monkeypatch):
    # Through the ring the slices carry their range (ShmSlice.range), which
    # the daemon counts from after checking it: the same bytes as without,
    # whatever the values (NaN and infinities give no range; a zero min or
    # max keeps the data's sign; all equal gives none either).
    wave = np.sin(np.arange(1 << 18, dtype=np.float32) * 0.003) * 2
    cases = {"wave": wave, "all_equal": np.full(1 << 16, 0.5, np.float32)}
    for name, odd in (("nan", np.nan), ("inf", np.inf), ("minus_inf", -np.inf)):
        cases[name] = wave.copy()
        cases[name][[3, 5000, -1]] = odd
    cases["relu"] = np.maximum(wave, np.float32(0))
    cases["relu"][0] = -0.0
    runs = {}
    for name, ring_bytes in (("ring", str(64 << 20)), ("bytes", "0")):
        monkeypatch.setenv("TBLOG_SHM_RING_BYTES", ring_bytes)
        writer = SummaryWriter(f"py/ranges_{name}", address=daemon.address)
        writer.add_histogram("warm_up", np.ones(_shm.MIN_SLICE_BYTES // 4, np.float32), 0)
        writer.flush()
        for tag, values in cases.items():
            writer.add_histogram(tag, values, 1, bins=30, walltime=1700000000.0)
        writer.flush()
        tensors, error = writer._stream.shm_status
        assert tensors == (len(cases) if name == "ring" else 0), error
        writer.close()
        runs[name] = _values_by_tag(os.path.join(daemon.logdir, "py", f"ranges_{name}"))
    for tag in cases:
        assert runs["ring"][tag] == runs["bytes"][tag], tag


def test_only_uniform_histograms_ask_for_a_range(daemon, monkeypatch):
    asked = []
    copy_in = _shm.Ring.copy_in

    def spy(self, array, wait=True, with_range=False):
        asked.append(with_range)
        return copy_in(self, array, wait, with_range)

    monkeypatch.setattr(_shm.Ring, "copy_in", spy)
    values = np.sin(np.arange(1 << 16, dtype=np.float32))
    writer = SummaryWriter("py/asked", address=daemon.address)
    writer.add_histogram("warm_up", np.ones(_shm.MIN_SLICE_BYTES // 4, np.float32), 0)
    writer.flush()
    writer.add_histogram("uniform", values, 1, bins=30)
    writer.add_histogram("tensorflow", values, 1, bins="tensorflow")
    writer.add_histogram("default", values, 1)  # PyTorch's default: bins="tensorflow"
    writer.close()
    assert asked == [True, False, False]


# 17M float32 values: 68 MB, more than one request may carry (64 MiB), so they
# can only travel through the ring.
_OVERSIZE = 17 << 20


def test_a_tensor_larger_than_a_request_goes_through_the_ring_from_the_first_call(daemon):
    # The first call waits for the sender to make a ring that holds the
    # tensor (rather than sending bytes that no request can carry); the
    # second finds it made.
    values = np.ones(_OVERSIZE, np.float32)
    writer = SummaryWriter("py/oversize", address=daemon.address)
    writer.add_scalar("before", 1.0, 0)
    for step in range(2):
        values[step] = 3.0
        writer.add_histogram("big", values, step)
    writer.add_scalar("after", 2.0, 0)
    writer.flush()
    tensors, error = writer._stream.shm_status
    assert tensors == 2, error
    writer.close()
    run = os.path.join(daemon.logdir, "py", "oversize")
    assert _histograms(run, "big") == [(0, _OVERSIZE, _OVERSIZE + 2.0),
                                       (1, _OVERSIZE, _OVERSIZE + 4.0)]
    assert sorted(v.tag for _, _, v in eventfile.values(run) if v.tag != "big") == \
        ["after", "before"]


@pytest.mark.parametrize("daemon_args", [["--shm-socket", "off"], []])
def test_a_tensor_larger_than_a_request_without_a_ring_is_refused_naming_why(daemon, monkeypatch,
                                                                           daemon_args):
    # No shm socket at the daemon; or rings capped below the tensor
    # (TBLOG_SHM_RING_MAX_BYTES): ValueError naming the ring's state, and the
    # writer goes on.
    monkeypatch.setenv("TBLOG_SHM_RING_MAX_BYTES", str(64 << 20))
    writer = SummaryWriter("py/refused_oversize", address=daemon.address)
    started = time.monotonic()
    why = "could not be attached" if daemon_args else "had no room for it"
    with pytest.raises(ValueError, match=f"could not go through shared memory: .*{why}"):
        writer.add_histogram("big", np.ones(_OVERSIZE, np.float32), 0)
    assert time.monotonic() - started < 4.0  # the sender answered; no _RING_WAIT
    writer.add_scalar("after", 2.0, 0)
    writer.close()
    run = os.path.join(daemon.logdir, "py", "refused_oversize")
    assert [v.tag for _, _, v in eventfile.values(run)] == ["after"]
