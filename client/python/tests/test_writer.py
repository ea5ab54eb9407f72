"""tblog.SummaryWriter against the real tblogd: every method, with Python,
numpy and torch inputs, and the event files the daemon writes read back
with the tests' own TFRecord reader."""

import math
import os
import signal
import time

import numpy as np
import pytest

import eventfile
import tblog
from tblog.tensorboard import graph_pb2

try:
    import torch
except ImportError:  # the torch cases are skipped, the numpy ones still run
    torch = None


def writer_for(daemon, run="exp/run", **kwargs):
    return tblog.SummaryWriter(run, address=daemon.address, **kwargs)


def run_dir(daemon, run="exp/run"):
    return os.path.join(daemon.logdir, run)


def tensor_inputs():
    """The same data as numpy, torch (when present), Python list."""
    values = [np.arange(6, dtype=np.float32).reshape(2, 3)]
    if torch is not None:
        values.append(torch.arange(6, dtype=torch.float32).reshape(2, 3).requires_grad_(False))
    values.append([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    return values


def test_scalars_from_python_numpy_and_torch(daemon):
    with writer_for(daemon) as writer:
        assert writer.get_logdir().endswith("exp/run")
        writer.add_scalar("py/float", 0.5, 0)
        writer.add_scalar("py/int", 3, 1)
        writer.add_scalar("np/f64", np.float64(1.5), np.int64(2))
        writer.add_scalar("np/0d", np.array(2.5, dtype=np.float32), 3)
        writer.add_scalar("new", 4.0, 4, new_style=True)
        writer.add_scalar("wall", 1.0, 5, walltime=1700000005.0)
        if torch is not None:
            value = torch.tensor(3.5, requires_grad=True) * 1     # a tensor that needs grad
            writer.add_scalar("torch/0d", value, torch.tensor(6))
        for step in range(100):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
    scalars = eventfile.scalars(run_dir(daemon))
    assert scalars["py/float"] == [(0, 0.5)]
    assert scalars["py/int"] == [(1, 3.0)]
    assert scalars["np/f64"] == [(2, 1.5)]
    assert scalars["np/0d"] == [(3, 2.5)]
    assert scalars["new"] == [(4, 4.0)]
    if torch is not None:
        assert scalars["torch/0d"] == [(6, 3.5)]
    assert [s for s, _ in scalars["loss"]] == list(range(100))
    assert scalars["loss"][9][1] == pytest.approx(0.1)
    kinds = {v.tag: v.WhichOneof("value") for _, _, v in eventfile.values(run_dir(daemon))}
    assert kinds["loss"] == "simple_value"          # PyTorch's add_scalar form
    assert kinds["new"] == "tensor"                 # new_style=True
    walls = {v.tag: w for _, w, v in eventfile.values(run_dir(daemon))}
    assert walls["wall"] == 1700000005.0


def test_a_bad_walltime_is_refused_by_the_call_and_the_stream_goes_on(daemon):
    """add_scalar's walltime is checked on the caller's thread: a bad one raises
    there, and the points around it still reach the file (it used to fail the
    sender's encoding, which ended the stream)."""
    with writer_for(daemon) as writer:
        writer.add_scalar("loss", 1.0, 0)
        with pytest.raises((TypeError, ValueError)):
            writer.add_scalar("loss", 2.0, 1, walltime="yesterday")
        writer.add_scalar("loss", 3.0, 2, walltime=np.float64(1700000002.0))
        writer.add_scalar("loss", 4.0, 3, walltime=1700000003)
    scalars = eventfile.scalars(run_dir(daemon))
    assert scalars["loss"] == [(0, 1.0), (2, 3.0), (3, 4.0)]
    walls = [w for _, w, v in eventfile.values(run_dir(daemon)) if v.tag == "loss"]
    assert walls[1:] == [1700000002.0, 1700000003.0]


def test_add_scalars_writes_one_subrun_per_key(daemon):
    with writer_for(daemon) as writer:
        for step in range(3):
            writer.add_scalars("loss/group", {"train": step, "val": 2.0 * step}, step)
    base = run_dir(daemon)
    train = eventfile.scalars(os.path.join(base, "loss_group_train"))
    val = eventfile.scalars(os.path.join(base, "loss_group_val"))
    assert train["loss/group"] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert val["loss/group"] == [(0, 0.0), (1, 2.0), (2, 4.0)]


@pytest.mark.parametrize("index", range(3))
def test_histogram_layouts(daemon, index):
    data = tensor_inputs()
    if index >= len(data):
        pytest.skip("torch not installed")
    values = data[index]
    with writer_for(daemon) as writer:
        writer.add_histogram("tf", values, 1)                 # bins='tensorflow'
        writer.add_histogram("uniform", values, 2, bins=5)
        writer.add_histogram("auto", values, 3, bins="auto")
        writer.add_histogram("big", np.random.default_rng(0).normal(size=100000), 4)
    by_tag = {v.tag: (s, v) for s, _, v in eventfile.values(run_dir(daemon))}
    step, tf = by_tag["tf"]
    assert step == 1 and tf.WhichOneof("value") == "histo"
    assert tf.histo.num == 6 and tf.histo.min == 0 and tf.histo.max == 5 and tf.histo.sum == 15
    step, uniform = by_tag["uniform"]
    counts = eventfile.tensor_array(uniform.tensor)
    assert counts.shape == (5, 3) and counts[:, 2].sum() == 6
    assert eventfile.tensor_array(by_tag["auto"][1].tensor).shape == (30, 3)
    assert by_tag["big"][1].histo.num == 100000


def test_images(daemon):
    gradient = np.linspace(0, 1, 3 * 8 * 10, dtype=np.float32).reshape(3, 8, 10)
    with writer_for(daemon) as writer:
        writer.add_image("chw", gradient, 0)
        writer.add_image("hwc", (gradient.transpose(1, 2, 0) * 255).astype(np.uint8), 0,
                         dataformats="HWC")
        writer.add_image("hw", gradient[0], 0, dataformats="HW")
        if torch is not None:
            writer.add_image("torch", torch.from_numpy(gradient), 0)
        writer.add_images("batch", np.zeros((4, 3, 6, 5), np.uint8), 0)
        writer.add_images("batch_nhwc", np.ones((2, 6, 5, 3), np.float32), 0, dataformats="NHWC")
        with pytest.raises(ValueError):
            writer.add_image("bad", gradient, 0, dataformats="HWC")
    images = {v.tag: v.image for _, _, v in eventfile.values(run_dir(daemon))
              if v.WhichOneof("value") == "image"}
    for tag in ["chw", "hwc", "hw"] + (["torch"] if torch is not None else []):
        assert (images[tag].height, images[tag].width) == (8, 10), tag
        assert images[tag].encoded_image_string.startswith(b"\x89PNG"), tag
    assert images["batch"].encoded_image_string.startswith(b"\x89PNG")
    assert images["batch_nhwc"].height >= 6


def test_text_audio_pr_curve(daemon):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=200)
    predictions = rng.random(200).astype(np.float32)
    with writer_for(daemon) as writer:
        writer.add_text("notes", "**bold** text", 3)
        writer.add_audio("tone", np.sin(np.linspace(0, 100, 8000)).astype(np.float32), 1,
                         sample_rate=8000)
        writer.add_pr_curve("pr", labels, predictions, 2)
        writer.add_pr_curve("pr_small", labels, predictions, 2, num_thresholds=11)
        if torch is not None:
            writer.add_pr_curve("pr_torch", torch.from_numpy(labels), torch.from_numpy(predictions),
                                2)
    by_tag = {v.tag: (s, v) for s, _, v in eventfile.values(run_dir(daemon))}
    step, text = by_tag["notes/text_summary"]
    assert step == 3 and text.metadata.plugin_data.plugin_name == "text"
    assert eventfile.tensor_array(text.tensor).reshape(-1)[0] == b"**bold** text"
    _, audio = by_tag["tone"]
    assert audio.audio.sample_rate == 8000
    assert audio.audio.encoded_audio_string.startswith(b"RIFF")
    assert audio.audio.length_frames == 8000
    _, pr = by_tag["pr"]
    assert pr.metadata.plugin_data.plugin_name == "pr_curves"
    curve = eventfile.tensor_array(pr.tensor)
    assert curve.shape == (6, 127)
    assert curve[0, 0] == labels.sum()            # true positives at threshold 0
    assert eventfile.tensor_array(by_tag["pr_small"][1].tensor).shape == (6, 11)
    if torch is not None:
        assert np.array_equal(eventfile.tensor_array(by_tag["pr_torch"][1].tensor), curve)


def test_hparams_torch_layout(daemon):
    with writer_for(daemon) as writer:
        writer.add_hparams({"lr": 0.1, "batch": 32, "opt": "sgd", "nesterov": True},
                           {"hparam/accuracy": 0.9, "hparam/loss": 0.2}, run_name="trial-1")
    trial = os.path.join(run_dir(daemon), "trial-1")
    tags = eventfile.tags_by_plugin(trial)
    assert tags["_hparams_/experiment"] == "hparams"
    assert tags["_hparams_/session_start_info"] == "hparams"
    scalars = eventfile.scalars(trial)
    assert scalars["hparam/accuracy"][0][1] == pytest.approx(0.9)
    assert scalars["hparam/loss"][0][1] == pytest.approx(0.2)


def test_hparams_default_run_name_is_a_time(daemon):
    before = time.time()
    with writer_for(daemon) as writer:
        writer.add_hparams({"lr": 0.5}, {"m": 1.0})
    names = [n for n in os.listdir(run_dir(daemon))
             if os.path.isdir(os.path.join(run_dir(daemon), n)) and not n.startswith(".")]
    assert len(names) == 1 and before <= float(names[0]) <= time.time()


def test_graph_and_custom_scalars(daemon):
    graph = graph_pb2.GraphDef()
    node = graph.node.add()
    node.name, node.op = "input", "Placeholder"
    node = graph.node.add()
    node.name, node.op = "relu", "Relu"
    node.input.append("input")
    layout = {"Losses": {"all": ["Multiline", ["loss/.*"]],
                         "band": ["Margin", ["loss/mean", "loss/min", "loss/max"]]}}
    with writer_for(daemon) as writer:
        writer.add_graph(graph)
        writer.add_custom_scalars(layout)
        with pytest.raises(TypeError):
            writer.add_graph(object())
    events = eventfile.events(run_dir(daemon))
    graphs = [e.graph_def for e in events if e.HasField("graph_def")]
    assert len(graphs) == 1
    parsed = graph_pb2.GraphDef()
    parsed.ParseFromString(graphs[0])
    assert [n.name for n in parsed.node] == ["input", "relu"]
    tags = eventfile.tags_by_plugin(run_dir(daemon))
    assert tags["custom_scalars__config__"] == "custom_scalars"


def test_embedding_projector_files(daemon):
    mat = np.arange(12, dtype=np.float32).reshape(4, 3)
    with writer_for(daemon) as writer:
        writer.add_embedding(mat, metadata=["a", "b", "c", "d"], global_step=0, tag="emb")
        if torch is not None:
            writer.add_embedding(torch.from_numpy(mat), global_step=1, tag="emb_torch",
                                 metadata=[["a", 1], ["b", 2], ["c", 3], ["d", 4]],
                                 metadata_header=["name", "n"])
    base = run_dir(daemon)
    with open(os.path.join(base, "00000", "emb", "tensors.tsv")) as f:
        rows = [line.split("\t") for line in f.read().splitlines()]
    assert [[float(x) for x in row] for row in rows] == mat.tolist()
    with open(os.path.join(base, "00000", "emb", "metadata.tsv")) as f:
        assert f.read().split() == ["a", "b", "c", "d"]
    with open(os.path.join(base, "projector_config.pbtxt")) as f:
        config = f.read()
    assert "00000/emb/tensors.tsv" in config
    if torch is not None:
        with open(os.path.join(base, "00001", "emb_torch", "metadata.tsv")) as f:
            assert f.read().splitlines() == ["name\tn", "a\t1", "b\t2", "c\t3", "d\t4"]


def test_nan_hparam_raises_with_the_daemon_message(daemon):
    writer = writer_for(daemon)
    writer.add_hparams({"lr": float("nan")}, {"m": 1.0}, run_name="bad")
    with pytest.raises(tblog.TblogError, match="finite") as info:
        writer.flush()
    assert info.value.code == "INVALID_ARGUMENT"
    writer.add_scalar("after", 1.0, 0)        # the writer goes on
    writer.close()
    assert eventfile.scalars(run_dir(daemon))["after"] == [(0, 1.0)]


def test_invalid_tag_raises_on_the_next_call(daemon):
    writer = writer_for(daemon)
    writer.add_text("bad\x01tag", "x", 0)
    with pytest.raises(tblog.TblogError, match="tag"):
        writer.flush()
    writer.add_histogram("", [1.0], 0)        # empty tag
    with pytest.raises(tblog.TblogError):
        writer.close()


def test_context_manager_closes_the_run_and_writing_after_close_reopens_it(daemon):
    with writer_for(daemon, "exp/ctx") as writer:
        writer.add_scalar("x", 1.0, 0)
    writer.close()                              # idempotent
    assert eventfile.scalars(run_dir(daemon, "exp/ctx"))["x"] == [(0, 1.0)]
    # As torch's writer: the next add_* reopens the same run (new event files).
    writer.add_scalar("x", 2.0, 1)
    writer.add_text("t", "after close", 1)
    assert writer.run_path == "exp/ctx"
    writer.close()
    assert eventfile.scalars(run_dir(daemon, "exp/ctx"))["x"] == [(0, 1.0), (1, 2.0)]
    assert len(eventfile.event_files(run_dir(daemon, "exp/ctx"))) == 2


def test_flush_makes_data_visible_before_close(daemon):
    writer = writer_for(daemon, "exp/flush")
    writer.add_scalar("x", 1.0, 0)
    writer.add_histogram("h", np.ones(10), 0)
    writer.flush()
    assert eventfile.scalars(run_dir(daemon, "exp/flush"))["x"] == [(0, 1.0)]
    writer.close()


def test_default_log_dir_and_absolute_paths(daemon, monkeypatch):
    with tblog.SummaryWriter(comment="_lr0.1", address=daemon.address) as writer:
        writer.add_scalar("x", 1.0, 0)
        assert writer.run_path.startswith("runs/") and writer.run_path.endswith("_lr0.1")
    with tblog.SummaryWriter("", address=daemon.address) as writer:     # torch's default
        assert writer.run_path.startswith("runs/")
    # Without TBLOG_LOGDIR an absolute path is kept whole below the logdir:
    # paths that differ only above their last component stay two runs.
    monkeypatch.delenv("TBLOG_LOGDIR", raising=False)
    for lr in ("0.1", "0.01"):
        with tblog.SummaryWriter(f"/home/alice/exp_lr{lr}/tb", address=daemon.address) as w:
            w.add_scalar("lr", float(lr), 0)
            assert w.run_path == f"home/alice/exp_lr{lr}/tb"
            assert w.get_logdir() == os.path.join(daemon.logdir, w.run_path)
    for lr in ("0.1", "0.01"):
        run = os.path.join(daemon.logdir, "home", "alice", f"exp_lr{lr}", "tb")
        assert eventfile.scalars(run)["lr"] == [(0, pytest.approx(float(lr)))]


def test_tblog_logdir_names_the_mounted_logdir(daemon, monkeypatch, tmp_path):
    # The trainer sees the daemon's logdir at another path (a volume): a
    # symlink plays the mount.
    mount = tmp_path / "mnt-logs"
    os.makedirs(daemon.logdir, exist_ok=True)
    os.symlink(daemon.logdir, mount)
    monkeypatch.setenv("TBLOG_LOGDIR", str(mount))
    with tblog.SummaryWriter(str(mount / "abs" / "run"), address=daemon.address) as writer:
        writer.add_scalar("x", 1.0, 0)
        assert writer.run_path == "abs/run"
        # get_logdir() is the trainer's path: a checkpoint saved there lands
        # next to the event files.
        assert writer.get_logdir() == str(mount / "abs" / "run")
        assert writer.daemon_directory == os.path.join(daemon.logdir, "abs", "run")
        with open(os.path.join(writer.get_logdir(), "model.ckpt"), "w") as f:
            f.write("weights")
    assert os.path.isfile(os.path.join(daemon.logdir, "abs", "run", "model.ckpt"))
    assert eventfile.scalars(os.path.join(daemon.logdir, "abs", "run"))["x"] == [(0, 1.0)]
    with pytest.raises(ValueError, match="not below TBLOG_LOGDIR"):
        tblog.SummaryWriter("/somewhere/else/run9", address=daemon.address)


def test_two_writers_one_run(daemon):
    first = writer_for(daemon, "exp/shared")
    second = writer_for(daemon, "exp/shared")
    for step in range(50):
        first.add_scalar("a", 1.0, step)
        second.add_scalar("b", 2.0, step)
    first.close()
    second.close()
    scalars = eventfile.scalars(run_dir(daemon, "exp/shared"))
    assert len(scalars["a"]) == 50 and len(scalars["b"]) == 50


def test_writer_survives_a_daemon_restart(daemon):
    """SIGTERM the daemon a third of the way in, keep logging while it is
    down, start it again on the same logdir and socket: every point is
    written exactly once, in order."""
    writer = writer_for(daemon, "exp/restart", flush_secs=1)
    total = 6000
    for step in range(total):
        writer.add_scalar("x", float(step), step)
        if step % 500 == 0:
            writer.add_histogram("h", np.full(10, float(step)), step)
        if step == total // 3:
            assert daemon.stop() == 0          # drains what it has received
        if step == total // 2:
            daemon.start()
        if step % 100 == 0:
            time.sleep(0.01)
    writer.close()
    scalars = eventfile.scalars(run_dir(daemon, "exp/restart"))
    assert [s for s, _ in scalars["x"]] == list(range(total))      # no loss, no duplicates
    assert [v for _, v in scalars["x"]] == [float(s) for s in range(total)]
    histograms = [s for s, _, v in eventfile.values(run_dir(daemon, "exp/restart")) if v.tag == "h"]
    assert histograms == list(range(0, total, 500))
    assert len(eventfile.event_files(run_dir(daemon, "exp/restart"))) >= 2   # resumed, new file


def test_writer_survives_a_daemon_crash(daemon):
    """SIGKILL instead of SIGTERM: the writer keeps batches until the daemon
    reports them durable, and the restarted daemon says what it has, so the
    resend neither loses nor repeats a point."""
    writer = writer_for(daemon, "exp/crash", flush_secs=1)
    total = 6000
    for step in range(total):
        writer.add_scalar("x", float(step), step)
        if step == total // 3:
            time.sleep(0.3)                    # some batches written, some durable
            daemon.stop(sig=signal.SIGKILL)
        if step == total // 2:
            daemon.start()
        if step % 100 == 0:
            time.sleep(0.01)
    writer.close()
    steps = [s for s, _ in eventfile.scalars(run_dir(daemon, "exp/crash"))["x"]]
    assert steps == list(range(total))


def test_big_histogram_and_many_scalars(daemon):
    values = np.random.default_rng(2).normal(size=1 << 20).astype(np.float32)
    with writer_for(daemon, "exp/big") as writer:
        for step in range(5):
            writer.add_histogram("w", values, step)
        for step in range(30000):
            writer.add_scalar("s", step, step)
    scalars = eventfile.scalars(run_dir(daemon, "exp/big"))
    assert len(scalars["s"]) == 30000
    histos = [v.histo.num for _, _, v in eventfile.values(run_dir(daemon, "exp/big"))
              if v.tag == "w"]
    assert histos == [1 << 20] * 5
    assert not math.isnan(scalars["s"][-1][1])


def test_add_graph_traces_a_torch_module(daemon):
    if torch is None:
        pytest.skip("torch not installed")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 10))
    with writer_for(daemon, "exp/graph") as writer:
        writer.add_graph(model, torch.zeros(2, 1, 8, 8))
    graphs = [e.graph_def for e in eventfile.events(run_dir(daemon, "exp/graph"))
              if e.HasField("graph_def")]
    assert len(graphs) == 1
    graph = graph_pb2.GraphDef()
    graph.ParseFromString(graphs[0])
    nodes = {n.name: n for n in graph.node}
    ops = [n.op for n in graph.node]
    assert "aten::_convolution" in ops or "aten::conv2d" in ops
    assert "aten::linear" in ops and "aten::relu" in ops
    assert "Sequential/0/weight" in nodes and "Sequential/3/bias" in nodes
    linear = next(n for n in graph.node if n.op == "aten::linear")
    assert "Sequential/3/weight" in linear.input
    outputs = [n for n in graph.node if n.name.startswith("Sequential/output/")]
    assert len(outputs) == 1 and outputs[0].input == [linear.name]
