"""tblog.keras.TensorBoard against the real daemon: the sub-run directories
and tags Keras users find in TensorBoard."""

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
    assert [s for s, _ in train["batch_loss"]] == list(range(6))
    assert [s for s, _ in validation["epoch_loss"]] == [0, 1]
    assert [s for s, _ in validation["evaluation_loss_vs_iterations"]] == [3, 6]
    plugins = eventfile.tags_by_plugin(os.path.join(run, "train"))
    assert plugins["epoch_loss"] == "scalars"                   # TensorBoard 2 tensors, like Keras
    assert plugins["dense/kernel_0/histogram"] == "histograms"
    assert plugins["embedding/embeddings_0/histogram"] == "histograms"
