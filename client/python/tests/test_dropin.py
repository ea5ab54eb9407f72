"""Issue 12, items 3 and 4, against the real tblogd: hparams when a run
opens (SummaryWriter and the Keras callback), and the drop-in gaps of
torch.utils.tensorboard.SummaryWriter: add_histogram_raw, _get_file_writer()
(PyTorch Lightning's TensorBoardLogger), add_hparams with None values,
add_images(max_outputs=)."""

import os

import numpy as np
import pytest

import eventfile
import tblog
import tblog.keras
from tblog.tensorboard import hparams_pb2, summary_pb2
from test_keras_fake import FakeModel, fit


def run_dir(daemon, run):
    return os.path.join(daemon.logdir, run)


def plugin_data(run, tag):
    """The hparams plugin data of `tag` in a run's own event files."""
    for _, _, value in eventfile.values(run):
        if value.tag == tag:
            return hparams_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    raise AssertionError(f"no {tag} in {run}: {sorted(eventfile.tags_by_plugin(run))}")


def start_values(run):
    hparams = plugin_data(run, "_hparams_/session_start_info").session_start_info.hparams
    return {key: getattr(v, v.WhichOneof("kind")) for key, v in hparams.items()}


def test_hparams_when_the_run_opens(daemon):
    with tblog.SummaryWriter("hp/open", address=daemon.address,
                             hparams={"lr": 0.1, "opt": "adam", "nesterov": True,
                                      "unset": None}) as writer:
        # Written at open: visible before anything else is logged or flushed.
        writer.flush()
        run = run_dir(daemon, "hp/open")
        assert start_values(run) == {"lr": 0.1, "opt": "adam", "nesterov": 1.0}
        writer.add_scalar("loss", 0.5, 0)
        # add_hparams at the end still works, in its own sub-run as torch's.
        writer.add_hparams({"lr": 0.1}, {"hparam/acc": 0.9}, run_name="final")
    assert eventfile.scalars(os.path.join(run, "final"))["hparam/acc"] == [
        (0, pytest.approx(0.9))]
    assert start_values(os.path.join(run, "final")) == {"lr": 0.1}


def test_keras_callback_takes_hparams(daemon):
    callback = tblog.keras.TensorBoard(log_dir="hp/keras", address=daemon.address,
                                       hparams={"units": 64, "dropout": 0.2})
    fit(callback, FakeModel(), epochs=1, batches=2)
    assert start_values(run_dir(daemon, "hp/keras")) == {"units": 64.0, "dropout": 0.2}


def test_add_hparams_skips_none_values_as_torch(daemon):
    with tblog.SummaryWriter("hp/none", address=daemon.address) as writer:
        writer.add_hparams({"lr": 0.5, "scheduler": None}, {"m": 1.0}, run_name="t")
    assert start_values(os.path.join(run_dir(daemon, "hp/none"), "t")) == {"lr": 0.5}


def test_add_histogram_raw_keeps_the_counts_of_equal_width_buckets(daemon):
    data = np.random.default_rng(5).normal(size=1000)
    counts, edges = np.histogram(data, bins=12)
    with tblog.SummaryWriter("raw/h", address=daemon.address) as writer:
        writer.add_histogram_raw("h", min=float(edges[0]), max=float(edges[-1]), num=len(data),
                                 sum=float(data.sum()), sum_squares=float((data ** 2).sum()),
                                 bucket_limits=edges[1:].tolist(),
                                 bucket_counts=counts.tolist(), global_step=3)
        with pytest.raises(ValueError, match="num=5 but bucket_counts add up to 1000"):
            writer.add_histogram_raw("bad", 0, 1, 5, 0, 0, edges[1:], counts)
    (step, _, value), = eventfile.values(run_dir(daemon, "raw/h"))
    buckets = eventfile.tensor_array(value.tensor)              # [k, 3]: left, right, count
    assert step == 3 and buckets.shape == (12, 3)
    assert buckets[:, 2].tolist() == counts.tolist()
    assert buckets[0, 0] == pytest.approx(edges[0]) and buckets[-1, 1] == pytest.approx(edges[-1])


def hparams_summaries(hparams, metrics):
    """The three Summary protos torch.utils.tensorboard.summary.hparams()
    returns (experiment, session start, session end), built by hand: what
    Lightning's log_hyperparams passes to _get_file_writer().add_summary."""
    def summary(tag, data):
        out = summary_pb2.Summary()
        value = out.value.add(tag=tag)
        value.metadata.plugin_data.plugin_name = "hparams"
        value.metadata.plugin_data.content = data.SerializeToString()
        return out
    experiment = hparams_pb2.HParamsPluginData(version=0)
    for name in hparams:
        experiment.experiment.hparam_infos.add(name=name)
    for tag in metrics:
        experiment.experiment.metric_infos.add().name.tag = tag
    start = hparams_pb2.HParamsPluginData(version=0)
    for name, value in hparams.items():
        field = {str: "string_value", bool: "bool_value"}.get(type(value), "number_value")
        setattr(start.session_start_info.hparams[name], field, value)
    end = hparams_pb2.HParamsPluginData(version=0)
    end.session_end_info.status = 1
    return [summary("_hparams_/experiment", experiment),
            summary("_hparams_/session_start_info", start),
            summary("_hparams_/session_end_info", end)]


def test_get_file_writer_as_lightning_uses_it(daemon):
    with tblog.SummaryWriter("lightning/version_0", address=daemon.address) as writer:
        file_writer = writer._get_file_writer()
        assert file_writer.get_logdir() == writer.get_logdir()
        for proto in hparams_summaries({"lr": 0.01, "optimizer": "adam"}, ["hp_metric"]):
            file_writer.add_summary(proto)
        writer.add_scalar("hp_metric", -1, 0)      # Lightning's default metric
        scalar = summary_pb2.Summary()
        scalar.value.add(tag="from_summary", simple_value=2.5)
        file_writer.add_summary(scalar.SerializeToString(), global_step=4)
        unsupported = summary_pb2.Summary()
        unsupported.value.add(tag="blob").metadata.plugin_data.plugin_name = "mystery"
        with pytest.raises(ValueError, match="'blob'.*not supported"):
            file_writer.add_summary(unsupported)
        file_writer.flush()
    run = run_dir(daemon, "lightning/version_0")
    assert start_values(run) == {"lr": 0.01, "optimizer": "adam"}
    experiment = plugin_data(run, "_hparams_/experiment").experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["hp_metric"]
    scalars = eventfile.scalars(run)
    assert scalars["from_summary"] == [(4, 2.5)] and scalars["hp_metric"] == [(0, -1.0)]
    # After close, _get_file_writer() reopens the run, as torch's does.
    writer._get_file_writer().add_summary(scalar, global_step=5)
    writer.close()
    assert eventfile.scalars(run)["from_summary"] == [(4, 2.5), (5, 2.5)]


def test_add_images_with_max_outputs_keeps_a_browsable_batch(daemon):
    batch = np.random.default_rng(1).integers(0, 255, size=(5, 3, 8, 6), dtype=np.uint8)
    with tblog.SummaryWriter("img/batch", address=daemon.address) as writer:
        writer.add_images("grid", batch, 0)                       # torch: one tiled image
        writer.add_images("each", batch, 0, max_outputs=2)        # TensorBoard 2: 2 images
        with pytest.raises(ValueError, match="max_outputs"):
            writer.add_images("none", batch, 0, max_outputs=0)
    values = {v.tag: v for _, _, v in eventfile.values(run_dir(daemon, "img/batch"))}
    assert values["grid"].WhichOneof("value") == "image"
    each = eventfile.tensor_array(values["each"].tensor)        # [width, height, png, png]
    assert values["each"].metadata.plugin_data.plugin_name == "images"
    assert each.shape == (4,) and each[0] == b"6" and each[1] == b"8"
    assert all(png.startswith(b"\x89PNG") for png in each[2:])


def test_add_image_with_boxes_draws_them_as_torch(daemon):
    PIL_Image = pytest.importorskip("PIL.Image")
    import io
    image = np.zeros((3, 32, 40), dtype=np.float32)           # CHW, black, floats in [0, 1]
    boxes = np.array([[4, 4, 20, 24], [25, 10, 35, 30]])
    with tblog.SummaryWriter("img/boxes", address=daemon.address) as writer:
        writer.add_image_with_boxes("boxes", image, boxes, 1, labels=["cat", "dog"])
        writer.add_image_with_boxes("scaled", image[0], boxes, 1, rescale=2, dataformats="HW")
    values = {v.tag: v for _, _, v in eventfile.values(run_dir(daemon, "img/boxes"))}
    png = values["boxes"].image.encoded_image_string
    pixels = np.asarray(PIL_Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape == (32, 40, 3)
    assert pixels[8, 4].tolist() == [255, 0, 0]               # the left edge of box 0
    assert pixels[8, 12].tolist() == [0, 0, 0]                # inside it, above its label
    assert pixels[22, 12].tolist() != [0, 0, 0]               # its label band (red and text)
    assert pixels[2, 12].tolist() == [0, 0, 0]                # outside every box
    scaled = values["scaled"].image
    assert (scaled.width, scaled.height) == (80, 64)


def test_threads_writing_after_close_reopen_the_run_once(daemon):
    import threading
    writer = tblog.SummaryWriter("reopen/threads", address=daemon.address)
    writer.add_scalar("t0", 0.0, 0)
    writer.close()
    start = threading.Barrier(4)

    def log(i):
        start.wait()
        for step in range(1, 201):
            writer.add_scalar(f"t{i}", float(step), step)
    threads = [threading.Thread(target=log, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    run = run_dir(daemon, "reopen/threads")
    assert len(eventfile.event_files(run)) == 2         # the first open and one reopen
    scalars = eventfile.scalars(run)
    for i in range(4):
        steps = [s for s, _ in scalars[f"t{i}"]]
        assert steps == ([0] if i == 0 else []) + list(range(1, 201))
