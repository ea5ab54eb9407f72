"""tblog against torch.utils.tensorboard itself and TensorBoard's own reader,
where both can be imported (torch, and the `tensorboard` package: installed,
or a source tree on PYTHONPATH); skipped otherwise.

- PyTorch Lightning's TensorBoardLogger.log_hyperparams, verbatim: torch's
  summary.hparams() protos passed to _get_file_writer().add_summary;
- add_image_with_boxes draws the same pixels as torch's image_boxes;
- TensorBoard's EventAccumulator and hparams plugin read what tblog wrote."""

import io
import os

import numpy as np
import pytest

import eventfile
import tblog

summary = pytest.importorskip("torch.utils.tensorboard.summary")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
hparams_metadata = pytest.importorskip("tensorboard.plugins.hparams.metadata")
Image = pytest.importorskip("PIL.Image")


accumulator = eventfile.tensorboard_accumulator


def test_lightning_log_hyperparams_through_get_file_writer(daemon):
    params = {"lr": 0.01, "optimizer": "adam", "layers": 3, "scheduler": None}
    with tblog.SummaryWriter("lightning/version_0", address=daemon.address) as experiment:
        # pytorch_lightning.loggers.TensorBoardLogger.log_hyperparams:
        exp, ssi, sei = summary.hparams(params, {"hp_metric": -1})
        writer = experiment._get_file_writer()
        writer.add_summary(exp)
        writer.add_summary(ssi)
        writer.add_summary(sei)
        experiment.add_scalar("hp_metric", -1, 0)
    acc = accumulator(os.path.join(daemon.logdir, "lightning", "version_0"))
    content = acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = hparams_metadata.parse_session_start_info_plugin_data(content)
    assert {k: v.WhichOneof("kind") for k, v in start.hparams.items()} == {
        "lr": "number_value", "optimizer": "string_value", "layers": "number_value"}
    assert start.hparams["optimizer"].string_value == "adam"
    experiment_data = hparams_metadata.parse_experiment_plugin_data(
        acc.SummaryMetadata("_hparams_/experiment").plugin_data.content)
    assert [m.name.tag for m in experiment_data.metric_infos] == ["hp_metric"]


def test_image_with_boxes_has_torchs_pixels(daemon):
    rng = np.random.default_rng(2)
    image = rng.random((3, 48, 64), dtype=np.float32)
    boxes = np.array([[5, 6, 30, 40], [35, 2, 60, 20]])
    labels = ["cat", "dog"]
    with tblog.SummaryWriter("parity/boxes", address=daemon.address) as writer:
        writer.add_image_with_boxes("b", image, boxes, 0, labels=labels)
    acc = accumulator(os.path.join(daemon.logdir, "parity", "boxes"))
    ours = np.asarray(Image.open(io.BytesIO(acc.Images("b")[0].encoded_image_string)))
    theirs_png = summary.image_boxes("b", image, boxes, labels=labels).value[0].image
    theirs = np.asarray(Image.open(io.BytesIO(theirs_png.encoded_image_string)))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_tensorboard_reads_hparams_at_open_images_and_raw_histograms(daemon):
    batch = np.random.default_rng(4).random((4, 3, 10, 12)).astype(np.float32)
    data = np.random.default_rng(6).normal(size=500)
    counts, edges = np.histogram(data, bins=8)
    with tblog.SummaryWriter("parity/reader", address=daemon.address,
                             hparams={"lr": 0.3, "opt": "sgd"}) as writer:
        writer.add_images("each", batch, 1, max_outputs=3)
        writer.add_histogram_raw("raw", edges[0], edges[-1], len(data), data.sum(),
                                 (data ** 2).sum(), edges[1:], counts, 2)
    acc = accumulator(os.path.join(daemon.logdir, "parity", "reader"))
    start = hparams_metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    assert start.hparams["lr"].number_value == 0.3
    assert start.hparams["opt"].string_value == "sgd"
    images, = acc.Tensors("each")
    assert images.step == 1 and len(images.tensor_proto.string_val) == 2 + 3
    histogram, = acc.Tensors("raw")
    buckets = np.frombuffer(histogram.tensor_proto.tensor_content, np.float64).reshape(-1, 3)
    assert buckets[:, 2].tolist() == counts.tolist()


def test_add_mesh_and_double_precision_match_torchs_summaries(daemon):
    """Value for value against torch.utils.tensorboard.summary's own protos:
    the same tags, plugin data (parsed with the mesh plugin's proto) and
    tensor values."""
    import torch
    from tensorboard.plugins.mesh import plugin_data_pb2
    from tensorboard.util import tensor_util

    vertices = torch.tensor([[[1.0, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]])
    colors = torch.tensor([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255]]],
                          dtype=torch.int)
    faces = torch.tensor([[[0, 2, 3], [0, 3, 1], [0, 1, 2], [1, 3, 2]]], dtype=torch.int)
    config = {"camera": {"cls": "PerspectiveCamera", "fov": 75}}
    theirs = list(summary.mesh("m", vertices=vertices, colors=colors, faces=faces,
                               config_dict=config).value)
    theirs += list(summary.scalar("lr", 1 / 3, new_style=True, double_precision=True).value)
    with tblog.SummaryWriter("parity/mesh", address=daemon.address) as writer:
        writer.add_mesh("m", vertices, colors=colors, faces=faces, config_dict=config,
                        global_step=0)
        writer.add_scalar("lr", 1 / 3, 1, new_style=True, double_precision=True)
    ours = [v for _, _, v in eventfile.values(os.path.join(daemon.logdir, "parity", "mesh"))]
    assert [v.tag for v in ours] == [v.tag for v in theirs]
    for mine, torchs in zip(ours, theirs):
        assert mine.metadata.plugin_data.plugin_name == torchs.metadata.plugin_data.plugin_name
        if torchs.metadata.plugin_data.plugin_name == "mesh":
            parse = plugin_data_pb2.MeshPluginData.FromString
            assert (parse(mine.metadata.plugin_data.content)
                    == parse(torchs.metadata.plugin_data.content))
        assert mine.tensor.dtype == torchs.tensor.dtype
        a = tensor_util.make_ndarray(mine.tensor)
        b = tensor_util.make_ndarray(torchs.tensor)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def test_add_embedding_sprite_matches_torchs_files(daemon, tmp_path):
    """torch's own SummaryWriter and tblog write the same sprite.png pixels
    and the same projector_config.pbtxt for add_embedding(label_img=...)."""
    import torch
    from torch.utils.tensorboard import SummaryWriter as TorchWriter
    import pngdecode

    mat = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    thumbs = torch.rand(7, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    labels = [f"p{i}" for i in range(7)]
    torch_dir = tmp_path / "torch"
    with TorchWriter(str(torch_dir)) as writer:
        writer.add_embedding(mat, metadata=labels, label_img=thumbs, global_step=1, tag="pts")
    with tblog.SummaryWriter("parity/sprite", address=daemon.address) as writer:
        writer.add_embedding(mat, metadata=labels, label_img=thumbs, global_step=1, tag="pts")
    ours_dir = os.path.join(daemon.logdir, "parity", "sprite")
    with open(os.path.join(ours_dir, "projector_config.pbtxt")) as f:
        ours_config = f.read()
    assert ours_config == (torch_dir / "projector_config.pbtxt").read_text()
    theirs = np.asarray(Image.open(torch_dir / "00001" / "pts" / "sprite.png").convert("RGB"))
    ours = pngdecode.read_png_file(os.path.join(ours_dir, "00001", "pts", "sprite.png"))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)
