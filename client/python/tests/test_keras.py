"""tblog.keras.TensorBoard against the real daemon: the sub-run directories
and tags Keras users find in TensorBoard."""

import json
import os

import eventfile
import tblog.keras
from test_keras_fake import FakeModel, fit


def test_keras_layout_on_disk(daemon):
    callback = tblog.keras.TensorBoard(log_dir="keras/run", histogram_freq=1, update_freq="batch",
                                       address=daemon.address)
    fit(callback, FakeModel(), epochs=2, batches=3)
    run = os.path.join(daemon.logdir, "keras", "run")
    train = eventfile.scalars(os.path.join(run, "train"))
    validation = eventfile.scalars(os.path.join(run, "validation"))
    assert [s for s, _ in train["epoch_loss"]] == [0, 1]
    assert [s for s, _ in train["batch_loss"]] == list(range(1, 7))   # Keras 3: from 1
    assert [s for s, _ in validation["epoch_loss"]] == [0, 1]
    assert [s for s, _ in validation["evaluation_loss_vs_iterations"]] == [3, 6]
    plugins = eventfile.tags_by_plugin(os.path.join(run, "train"))
    assert plugins["epoch_loss"] == "scalars"                   # TensorBoard 2 tensors, like Keras
    assert plugins["dense/kernel_0/histogram"] == "histograms"
    assert plugins["embedding/embeddings_0/histogram"] == "histograms"


class Sequential(FakeModel):
    """Named as Keras' class: the callback writes the configuration of
    Sequential and Functional models only."""

    def to_json(self):
        return json.dumps({"class_name": "Sequential", "config": {"name": "seq", "layers": []}})


def test_write_graph_writes_the_keras_model_config(daemon):
    model = Sequential()
    callback = tblog.keras.TensorBoard(log_dir="keras/graph", address=daemon.address)
    fit(callback, model, epochs=1, batches=1)
    run = os.path.join(daemon.logdir, "keras", "graph", "train")
    (step, _, value), = [v for v in eventfile.values(run) if v[2].tag == "keras"]
    assert step == 0
    assert value.metadata.plugin_data.plugin_name == "graph_keras_model"
    assert value.metadata.plugin_data.content == b"1"
    assert value.tensor.dtype == 7 and len(value.tensor.tensor_shape.dim) == 0
    assert json.loads(value.tensor.string_val[0]) == json.loads(model.to_json())
    # write_graph=False, or a model that is not Sequential/Functional: no "keras" tag.
    fit(tblog.keras.TensorBoard(log_dir="keras/nograph", write_graph=False,
                                address=daemon.address), Sequential(), epochs=1, batches=1)
    fit(tblog.keras.TensorBoard(log_dir="keras/subclass", address=daemon.address), FakeModel(),
        epochs=1, batches=1)
    for name in ("nograph", "subclass"):
        tags = eventfile.tags_by_plugin(os.path.join(daemon.logdir, "keras", name, "train"))
        assert "keras" not in tags
