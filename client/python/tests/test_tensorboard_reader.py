"""What the new kinds write, read by TensorBoard's own code where the
`tensorboard` package imports (installed, or a source tree on PYTHONPATH;
no TensorFlow or torch needed); skipped otherwise: EventAccumulator, the
mesh plugin's metadata parser, the projector's config proto, tensor_util."""

import json
import os

import numpy as np
import pytest

import eventfile
import tblog
import tblog.summary as tf_summary

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
mesh_metadata = pytest.importorskip("tensorboard.plugins.mesh.metadata")
projector_config_pb2 = pytest.importorskip("tensorboard.plugins.projector.projector_config_pb2")
tensor_util = pytest.importorskip("tensorboard.util.tensor_util")
text_format = pytest.importorskip("google.protobuf.text_format")


accumulator = eventfile.tensorboard_accumulator


def test_tensorboard_reads_the_new_kinds(daemon):
    vertices = np.random.default_rng(0).standard_normal((1, 6, 3)).astype(np.float32)
    faces = np.array([[[0, 1, 2], [3, 4, 5]]])
    colors = np.full((1, 6, 3), 200, np.uint8)
    with tblog.SummaryWriter("tb/kinds", address=daemon.address) as writer:
        writer.add_scalar("precise", 1 / 3, 0, new_style=True, double_precision=True)
        writer.add_mesh("m", vertices, colors=colors, faces=faces, global_step=1)
        writer.add_video("v", np.zeros((1, 2, 3, 4, 4), np.uint8), 2, fps=5)
        writer.add_embedding(np.eye(4, dtype=np.float32), label_img=np.ones((4, 3, 2, 2)),
                             global_step=3, tag="e")
    run = os.path.join(daemon.logdir, "tb", "kinds")
    acc = accumulator(run)

    (precise,) = acc.Tensors("precise")
    value = tensor_util.make_ndarray(precise.tensor_proto)
    assert value.dtype == np.float64 and value == 1 / 3

    for name, content, array in [("VERTEX", 1, vertices), ("FACE", 2, faces),
                                 ("COLOR", 3, colors)]:
        tag = f"m_{name}"
        data = mesh_metadata.parse_plugin_metadata(
            acc.SummaryMetadata(tag).plugin_data.content)
        assert (data.name, data.content_type, list(data.shape)) == ("m", content, list(array.shape))
        assert data.components == 0b1110 and json.loads(data.json_config) == {}
        (event,) = acc.Tensors(tag)
        assert event.step == 1
        np.testing.assert_array_equal(tensor_util.make_ndarray(event.tensor_proto), array)

    (video,) = acc.Images("v")
    assert (video.step, video.width, video.height) == (2, 4, 4)
    assert video.encoded_image_string.startswith(b"GIF89a")

    with open(os.path.join(run, "projector_config.pbtxt")) as f:
        config = text_format.Parse(f.read(), projector_config_pb2.ProjectorConfig())
    (embedding,) = config.embeddings
    assert embedding.tensor_name == "e:00003"
    assert embedding.sprite.image_path == "00003/e/sprite.png"
    assert list(embedding.sprite.single_image_dim) == [2, 2]
    assert os.path.getsize(os.path.join(run, embedding.sprite.image_path)) > 0


def test_tensorboard_reads_tblog_summary(daemon):
    writer = tf_summary.create_file_writer("tb/tfsummary", address=daemon.address)
    with writer.as_default(step=4):
        tf_summary.scalar("loss", 0.5)
        tf_summary.histogram("w", np.arange(100.0))
        tf_summary.image("img", np.zeros((2, 3, 5, 3), np.uint8), max_outputs=1)
        tf_summary.text("t", "hello")
    writer.close()
    acc = accumulator(os.path.join(daemon.logdir, "tb", "tfsummary"))
    (loss,) = acc.Tensors("loss")
    assert loss.step == 4 and tensor_util.make_ndarray(loss.tensor_proto) == np.float32(0.5)
    assert acc.SummaryMetadata("loss").plugin_data.plugin_name == "scalars"
    (histogram,) = acc.Tensors("w")
    buckets = tensor_util.make_ndarray(histogram.tensor_proto)
    assert buckets.shape == (30, 3) and buckets[:, 2].sum() == 100
    (image,) = acc.Tensors("img")
    strings = tensor_util.make_ndarray(image.tensor_proto)
    assert list(strings[:2]) == [b"5", b"3"] and len(strings) == 3
    (text,) = acc.Tensors("t")
    assert tensor_util.make_ndarray(text.tensor_proto).reshape(-1)[0] == b"hello"


def test_tensorboard_renders_the_keras_model_config(daemon):
    keras_util = pytest.importorskip("tensorboard.plugins.graph.keras_util")
    dataclass_compat = pytest.importorskip("tensorboard.dataclass_compat")
    import tblog.keras
    from test_keras import Sequential
    from test_keras_fake import fit

    config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "input"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 3}}]}}
    model = Sequential()
    model.to_json = lambda: json.dumps(config)
    fit(tblog.keras.TensorBoard(log_dir="tb/keras", address=daemon.address), model, 1, 1)
    path = os.path.join(daemon.logdir, "tb", "keras", "train")
    (event,) = [e for e in _events(path) if e.HasField("summary")
                and e.summary.value[0].tag == "keras"]
    # TensorBoard's loader migrates it to a blob sequence of one JSON string...
    (migrated,) = dataclass_compat.migrate_event(event, {})
    value = migrated.summary.value[0]
    assert value.metadata.data_class == 3              # DATA_CLASS_BLOB_SEQUENCE
    blob = tensor_util.make_ndarray(value.tensor)[0]
    # ...that the graphs plugin turns into the conceptual graph.
    graph = keras_util.keras_model_to_graph_def(json.loads(blob))
    assert [node.name for node in graph.node] == ["seq/input", "seq/dense"]


def _events(run_dir):
    from tensorboard.backend.event_processing import event_file_loader
    import glob
    for path in sorted(glob.glob(os.path.join(run_dir, "*tfevents*"))):
        yield from event_file_loader.LegacyEventFileLoader(path).Load()


def test_tensorboard_reads_what_flush_returned_for_before_close(daemon, monkeypatch):
    # flush() is answered by the written acks (no FLUSH): TensorBoard's reader
    # sees every point at once. Two styles of scalar columns (the encoder's
    # per-style records) and histograms that wrap a small ring.
    monkeypatch.setenv("TBLOG_SHM_RING_BYTES", str(1 << 20))
    values = np.linspace(-2, 2, 1 << 16, dtype=np.float32)
    writer = tblog.SummaryWriter("tb/flushed", address=daemon.address)
    for step in range(10000):
        writer.add_scalar("loss", step * 0.25, step)
        writer.add_scalar("acc", step % 7, step, new_style=True)
    for step in range(20):
        writer.add_histogram("w", values * (step + 1), step)
    writer.flush()
    acc = accumulator(os.path.join(daemon.logdir, "tb", "flushed"))
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
        (step, float(np.float32(step * 0.25))) for step in range(10000)]
    acc_steps = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                 for e in acc.Tensors("acc")]
    assert acc_steps == [(step, float(step % 7)) for step in range(10000)]
    histograms = acc.Histograms("w")
    assert [(h.step, h.histogram_value.num) for h in histograms] == [
        (step, 1 << 16) for step in range(20)]
    assert histograms[-1].histogram_value.max == pytest.approx(40)
    writer.close()
