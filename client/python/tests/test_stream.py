"""The client's protocol against an in-process fake of the API: batching,
sequencing, acks, resend after a broken stream, error surfacing. These need
no daemon binary; test_writer.py covers the real daemon."""

import os
import re
import sys
import threading
import time

import grpc
import numpy as np
import pytest

import tblog
from tblog import _scalar_buffer, _stream
from tblog.v1 import tblog_pb2 as pb

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     "..", "..", "..", "proto", "tblog", "v1", "tblog.proto")


def test_scalars_arrive_in_order_as_columns(fake):
    with tblog.SummaryWriter("exp/a", address=fake.address) as writer:
        for step in range(5000):
            writer.add_scalar("loss", step * 0.5, step)
            writer.add_scalar("acc", 1.0, step, new_style=True)
        writer.flush()
        points = fake.scalars("exp/a")
        loss = [(s, v) for (_, t, s, v) in points if t == "loss"]
        assert loss == [(s, s * 0.5) for s in range(5000)]
        assert len([p for p in points if p[1] == "acc"]) == 5000
        styles = {r.scalars.style for r in fake.runs["exp/a"] if r.WhichOneof("kind") == "scalars"}
        assert styles == {pb.SCALAR_STYLE_SIMPLE_VALUE, pb.SCALAR_STYLE_TENSOR}
    assert fake.closed == ["exp/a"]
    sequences = [b.sequence for b in fake.batches]
    assert sequences == list(range(1, len(sequences) + 1))
    assert all(b.writer_id and b.run_id == "exp/a" for b in fake.batches)


def test_records_keep_call_order_with_scalars(fake):
    with tblog.SummaryWriter("exp/order", address=fake.address) as writer:
        writer.add_scalar("a", 1.0, 1)
        writer.add_text("t", "between", 1)
        writer.add_scalar("a", 2.0, 2)
        writer.flush()
    kinds = [r.WhichOneof("kind") for r in fake.runs["exp/order"]]
    assert kinds == ["scalars", "text", "scalars"]


def test_rejected_record_raises_on_flush_with_the_daemon_message(fake):
    fake.reject_tag = "bad"
    writer = tblog.SummaryWriter("exp/err", address=fake.address)
    writer.add_scalar("good", 1.0, 0)
    writer.add_text("bad", "x", 0)
    with pytest.raises(tblog.TblogError, match="refused by the fake") as info:
        writer.flush()
    assert info.value.code == "INVALID_ARGUMENT"
    # Raised once: the writer goes on.
    writer.add_scalar("good", 2.0, 1)
    writer.close()
    assert [p[3] for p in fake.scalars("exp/err")] == [1.0, 2.0]


def test_error_surfaces_on_the_next_add_call(fake):
    fake.reject_tag = "bad"
    writer = tblog.SummaryWriter("exp/next", address=fake.address)
    writer.add_text("bad", "x", 0)
    try:
        writer.flush()
    except tblog.TblogError:
        pass
    writer.add_text("bad", "y", 1)
    # Wait for the ack without raising, then the next add_* raises.
    with pytest.raises(tblog.TblogError):
        for step in range(100000):
            writer.add_scalar("s", 1.0, step)
            if step % 1000 == 0:
                threading.Event().wait(0.01)
    writer.close()


def test_broken_stream_resends_without_loss_or_duplicates(fake):
    writer = tblog.SummaryWriter("exp/resend", address=fake.address)
    fake.break_after = 2
    for step in range(20000):
        writer.add_scalar("x", float(step), step)
        if step % 2000 == 0:
            threading.Event().wait(0.06)
    writer.add_histogram("h", np.arange(10.0), 1)
    writer.close()
    steps = [p[2] for p in fake.scalars("exp/resend") if p[1] == "x"]
    assert steps == list(range(20000))
    assert [r.tag for r in fake.runs["exp/resend"] if r.WhichOneof("kind") == "histogram"] == ["h"]


def test_stream_tags_are_defined_once_and_again_on_every_new_stream(fake):
    """Columns refer to the stream's tag dictionary (tblog.proto,
    WriteRequest.stream_tags): new tags are defined by the batch that first
    uses them, and a new stream starts with every id so far (the fake fails
    the stream on an undefined id, which the writer would not survive)."""
    writer = tblog.SummaryWriter("exp/dict", address=fake.address)
    fake.break_after = 2
    tags = [f"t/{i}" for i in range(300)]
    for step in range(40):
        for tag in tags[:100 + 5 * step]:
            writer.add_scalar(tag, float(step), step)
        if step % 10 == 0:
            threading.Event().wait(0.06)
    writer.close()
    points = fake.scalars("exp/dict")
    by_tag = {}
    for _, tag, step, _ in points:
        by_tag.setdefault(tag, []).append(step)
    assert len(by_tag) == 295
    assert by_tag["t/0"] == list(range(40))
    assert by_tag["t/294"] == [39]
    assert fake.stream_tag_records() > 0
    definitions = [len(b.stream_tags) for b in fake.batches]
    assert sum(definitions) >= 295


def test_scalar_columns_fall_back_to_batch_local_tags_past_the_cap(fake, monkeypatch):
    monkeypatch.setattr(_stream, "_MAX_STREAM_TAGS", 50)
    with tblog.SummaryWriter("exp/cap", address=fake.address) as writer:
        for i in range(40):
            writer.add_scalar(f"a/{i}", 1.0, 0)
        writer.flush()
        for i in range(40):
            writer.add_scalar(f"b/{i}", 2.0, 0)
    points = fake.scalars("exp/cap")
    assert sorted(p[1] for p in points) == sorted([f"a/{i}" for i in range(40)] +
                                                  [f"b/{i}" for i in range(40)])
    first, *rest = [b for b in fake.batches if b.records]
    assert len(first.stream_tags) == 40
    assert all(not b.stream_tags for b in rest)


def _log_through_broken_streams(fake, run, **faults):
    """Opens a writer on `run`, then sets the fake's `faults` (its attributes)
    and logs 20000 points; asserts every point arrived once, in order, and the
    run was reopened with RESUME once and closed."""
    writer = tblog.SummaryWriter(run, address=fake.address)
    for name, value in faults.items():
        setattr(fake, name, value)
    for step in range(20000):
        writer.add_scalar("x", float(step), step)
        if step % 2000 == 0:
            threading.Event().wait(0.06)
    writer.close()
    steps = [p[2] for p in fake.scalars(run) if p[1] == "x"]
    assert steps == list(range(20000))
    assert [r.mode for r in fake.opens[1:]] == [pb.OPEN_MODE_RESUME]
    assert fake.closed == [run]


def test_resource_exhausted_is_retried_without_loss(fake):
    """RESOURCE_EXHAUSTED is transient (tblog.proto, "Retries"): a daemon at
    its --max-streams or --max-runs limit has room again once other writers
    close. The writer backs off, resumes its run and resends: nothing lost,
    nothing doubled, no error raised."""
    _log_through_broken_streams(
        fake, "exp/busy", open_refusal=grpc.StatusCode.RESOURCE_EXHAUSTED, refuse_opens=2,
        break_code=grpc.StatusCode.RESOURCE_EXHAUSTED, break_after=2)
    # The stream was refused once and the resume twice before it went through.
    assert fake.refuse_opens == 0


def test_run_not_found_on_the_stream_reopens_the_run(fake):
    """NOT_FOUND that ends the Write stream means the daemon does not know the
    run (it restarted after OpenRun): the writer reopens it with RESUME and
    resends (tblog.proto, "Retries"). Nothing lost, nothing doubled, no
    batch dropped, no error raised."""
    _log_through_broken_streams(fake, "exp/lost", break_code=grpc.StatusCode.NOT_FOUND,
                                break_after=2)


def test_retryable_codes_are_the_protos_transient_list():
    """One list for every client: _RETRYABLE is exactly the codes that the
    "Retries" comment of tblog.proto calls transient."""
    with open(PROTO) as f:
        text = f.read()
    block = text[text.index("// Transient (retried"):text.index("// Final (reported")]
    transient = set(re.findall(r"^//   ([A-Z_]+)\b", block, re.MULTILINE))
    assert transient == {code.name for code in _stream._RETRYABLE}
    assert "RESOURCE_EXHAUSTED" in transient


def test_threads_share_one_writer(fake):
    writer = tblog.SummaryWriter("exp/threads", address=fake.address)

    def log(name):
        for step in range(3000):
            writer.add_scalar(name, 1.0, step)
    threads = [threading.Thread(target=log, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    points = fake.scalars("exp/threads")
    for i in range(4):
        assert [p[2] for p in points if p[1] == f"t{i}"] == list(range(3000))


def test_run_path_rules(monkeypatch):
    assert tblog.run_path_for("exp/run1") == "exp/run1"
    assert tblog.run_path_for("./exp/run1/") == "exp/run1"
    assert tblog.run_path_for(None, "_lr0.1").startswith("runs/")
    assert tblog.run_path_for(None, "_lr0.1").endswith("_lr0.1")
    assert tblog.run_path_for("", "_x").startswith("runs/")   # torch: "" is the default too
    with pytest.raises(ValueError):
        tblog.run_path_for("../outside")
    # Issue 12: an absolute path keeps all of itself, so two paths never merge.
    monkeypatch.delenv("TBLOG_LOGDIR", raising=False)
    assert tblog.run_path_for("/home/alice/exp_lr0.1/tb") == "home/alice/exp_lr0.1/tb"
    assert tblog.run_path_for("/home/alice/exp_lr0.01/tb") == "home/alice/exp_lr0.01/tb"
    assert tblog.run_path_for("/home/alice/../bob/./tb/") == "home/bob/tb"
    with pytest.raises(ValueError):
        tblog.run_path_for("/")
    monkeypatch.setenv("TBLOG_LOGDIR", "/data/logs")
    assert tblog.run_path_for("/data/logs/mnist/a") == "mnist/a"
    assert tblog.run_path_for("/data/logs/../logs/mnist/b") == "mnist/b"
    # Outside the mounted logdir: refused, with what to do (mapping it would
    # make "/mnist/a" and "/data/logs/mnist/a" one run).
    for outside in ("/mnist/a", "/data/logsx/a", "/data/logs"):
        with pytest.raises(ValueError, match="not below TBLOG_LOGDIR='/data/logs'.*unset "
                                             "TBLOG_LOGDIR"):
            tblog.run_path_for(outside)


def test_tensor_records_arrive_intact(fake):
    """The sender splices tensor bytes into the request by hand (no copy into
    messages): what the daemon parses must be the exact data and fields."""
    values = np.random.default_rng(3).normal(size=(7, 5)).astype(np.float32)
    with tblog.SummaryWriter("exp/wire", address=fake.address) as writer:
        writer.add_histogram("h", values, 3, bins=7)
        writer.add_image("img", np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 4)
        writer.add_audio("a", np.zeros(100, np.float32), 5, sample_rate=8000)
        writer.add_pr_curve("pr", [0, 1, 1], np.array([0.2, 0.7, 0.9]), 6, num_thresholds=9,
                            weights=[1.0, 2.0, 1.0])
        writer.add_embedding(values, metadata=list("abcdefg"), tag="emb", global_step=7)
    records = {r.tag: r for r in fake.runs["exp/wire"]}
    h = records["h"]
    assert (h.step, h.histogram.bucket_count) == (3, 7)
    assert h.histogram.layout == pb.HISTOGRAM_LAYOUT_UNIFORM
    assert list(h.histogram.values.shape) == [7, 5] and h.histogram.values.dtype == pb.DTYPE_FLOAT32
    assert h.histogram.values.data == values.tobytes()
    image = records["img"].image
    assert image.layout == pb.PIXEL_LAYOUT_CHW and image.style == pb.IMAGE_STYLE_SUMMARY_IMAGE
    assert image.pixels.data == bytes(range(24)) and image.pixels.dtype == pb.DTYPE_UINT8
    audio = records["a"].audio
    assert audio.sample_rate == 8000 and audio.torch_style and len(audio.samples.data) == 400
    pr = records["pr"].pr_curve.predictions
    assert pr.num_thresholds == 9
    assert np.frombuffer(pr.labels.data, np.float32).tolist() == [0, 1, 1]
    assert np.frombuffer(pr.predictions.data, np.float64).tolist() == [0.2, 0.7, 0.9]
    assert np.frombuffer(pr.weights.data, np.float64).tolist() == [1.0, 2.0, 1.0]
    emb = records["emb"]
    assert emb.step == 7 and list(emb.embedding.metadata) == list("abcdefg")
    assert emb.embedding.matrix.data == values.tobytes()


def test_a_lone_record_is_sent_at_once_when_no_batch_is_in_flight(fake, monkeypatch):
    # A send interval of an hour: only the send-when-idle rule can send it.
    monkeypatch.setattr(tblog.writer, "Stream",
                        lambda *args, **kwargs: _stream.Stream(*args, send_interval=3600,
                                                               **kwargs))
    with tblog.SummaryWriter("exp/lone", address=fake.address) as writer:
        for step in (1, 2):  # the second after the first's ack
            writer.add_scalar("lone", float(step), step)
            deadline = time.monotonic() + 30
            while len(fake.scalars("exp/lone")) < step and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [(s, v) for (_, _, s, v) in fake.scalars("exp/lone")] == [
                (s, float(s)) for s in range(1, step + 1)]
        writer.add_text("note", "also at once", 3)
        deadline = time.monotonic() + 30
        while len(fake.runs["exp/lone"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.runs["exp/lone"][-1].WhichOneof("kind") == "text"
        # Everything is written: flush() needs no round trip.
        sent = len(fake.batches)
        writer.flush()
        assert len(fake.batches) == sent


def test_flush_waits_for_the_written_ack_and_asks_for_no_flush(fake):
    # flush() is answered by the written ack of the batch holding the last
    # point (the daemon hands a batch to the OS before acknowledging it as
    # written): no FLUSH request, no extra round trip.
    writer = tblog.SummaryWriter("exp/flush", address=fake.address)
    fake.ack_gate = threading.Event()
    for step in range(10000):
        writer.add_scalar("x", float(step), step)
    with pytest.raises(tblog.TblogError) as raised:
        writer.flush(timeout=0.3)  # sent, not acknowledged yet
    assert raised.value.code == "DEADLINE_EXCEEDED"
    fake.ack_gate.set()
    writer.flush(timeout=30)
    assert [s for (_, _, s, _) in fake.scalars("exp/flush")] == list(range(10000))
    assert not any(b.flush for b in fake.batches)
    writer.close()


def test_a_step_outside_int64_is_reported_and_the_others_written(fake):
    # An int global_step is not checked on add_scalar's hot path: the sender
    # drops a point whose step the wire cannot carry and says so.
    writer = tblog.SummaryWriter("exp/huge", address=fake.address)
    writer.add_scalar("x", 1.0, 1)
    writer.add_scalar("x", 2.0, 1 << 63)
    writer.add_scalar("x", 3.0, -(1 << 63))
    with pytest.raises(tblog.TblogError, match=r"step 9223372036854775808 is outside int64"):
        writer.flush()
    writer.close()
    assert [(s, v) for (_, _, s, v) in fake.scalars("exp/huge")] == [(1, 1.0), (-(1 << 63), 3.0)]


def test_points_go_out_while_the_loop_holds_the_gil(fake, monkeypatch):
    # A training loop holds the GIL: the sender and gRPC's request thread run
    # only when it blocks (or at the switch interval, 5 ms, here made longer
    # than the loop). Every ENCODE_POINTS points add_scalar hands what it
    # encoded to them and waits until gRPC took it (tblog/_scalar_buffer.py),
    # so the daemon writes while the loop runs, not all at flush().
    monkeypatch.setattr(_scalar_buffer, "_PUSH_WAIT", 30.0)  # never reached here
    writer = tblog.SummaryWriter("exp/push", address=fake.address)
    writer.flush()
    queue = writer._stream._stream_queue
    taken = queue._taken
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # longer than the loop (a blocked thread still yields)
    try:
        for step in range(3 * _scalar_buffer.ENCODE_POINTS):
            writer.add_scalar("x", float(step), step)
        sent = queue._taken - taken
    finally:
        sys.setswitchinterval(interval)
    assert sent >= 3
    writer.close()
    assert [s for (_, _, s, _) in fake.scalars("exp/push")] == list(
        range(3 * _scalar_buffer.ENCODE_POINTS))


def test_past_the_cap_a_rounds_points_share_one_dictionary(fake, monkeypatch):
    # Past the stream dictionary's cap every ScalarColumns record carries the
    # tag list: add_scalar leaves its points to the sender, whose round
    # encodes them together, rather than one record (and dictionary) per
    # ENCODE_POINTS points.
    monkeypatch.setattr(_stream, "_MAX_STREAM_TAGS", 50)
    writer = tblog.SummaryWriter("exp/capround", address=fake.address)
    for i in range(60):
        writer.add_scalar(f"t/{i}", 0.0, 0)
    writer.flush()
    assert not writer._stream._stream_tags
    sent = len(fake.runs["exp/capround"])
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # longer than the loop: the sender's round comes at flush()
    try:
        for step in range(1, 3 * _scalar_buffer.ENCODE_POINTS + 10):
            writer.add_scalar(f"t/{step % 60}", 1.0, step)
    finally:
        sys.setswitchinterval(interval)
    writer.flush()
    records = fake.runs["exp/capround"][sent:]
    assert [r.WhichOneof("kind") for r in records] == ["scalars"]
    assert len(records[0].scalars.tags) == 60
    writer.close()
    assert len(fake.scalars("exp/capround")) == 60 + 3 * _scalar_buffer.ENCODE_POINTS + 9
