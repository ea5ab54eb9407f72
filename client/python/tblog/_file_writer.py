"""SummaryWriter._get_file_writer(): the part of torch's FileWriter that code
written against torch.utils.tensorboard reaches for, PyTorch Lightning's
TensorBoardLogger first (its log_hyperparams passes the three hparams-plugin
Summary protos of torch.utils.tensorboard.summary.hparams to add_summary).

A Summary arrives as a protobuf message of any generated module (torch's,
tensorboard's, tensorflow's): it is read through its wire form, which is the
same for all of them, and each value becomes the tblog record that writes it.
"""

import numpy as np

from tblog import _convert
from tblog.tensorboard import event_pb2, hparams_pb2, summary_pb2

_HPARAMS_PLUGIN = "hparams"


class FileWriter:
    """Writes Summary and Event protos through a SummaryWriter. Lives as long
    as its SummaryWriter; thread-safe as it is."""

    def __init__(self, writer):
        self._writer = writer
        self._metric_tags = []   # from the last hparams Experiment summary

    def get_logdir(self):
        return self._writer.get_logdir()

    def add_summary(self, summary, global_step=None, walltime=None):
        """Writes each value of a Summary (a message or its bytes): simple
        values as scalars, histograms, encoded images, rank-0 float tensors
        as scalars, and the hparams plugin's session start as the run's
        hparams. Other values raise ValueError naming them."""
        message = summary_pb2.Summary.FromString(_wire(summary))
        for value in message.value:
            self._value(value, global_step, walltime)

    def add_event(self, event, step=None, walltime=None):
        """Writes the summary of an Event (a message or its bytes); other
        event kinds (file_version, graph_def) are written by tblogd itself
        or through SummaryWriter.add_graph, and are skipped here."""
        message = event_pb2.Event.FromString(_wire(event))
        if message.HasField("summary"):
            step = message.step if step is None else step
            walltime = (message.wall_time or None) if walltime is None else walltime
            self.add_summary(message.summary, step, walltime)

    def flush(self):
        self._writer.flush()

    def close(self):
        self._writer.close()

    def reopen(self):
        self._writer._check()

    def _value(self, value, step, walltime):
        writer = self._writer
        kind = value.WhichOneof("value")
        plugin = value.metadata.plugin_data.plugin_name
        if kind == "simple_value":
            writer.add_scalar(value.tag, value.simple_value, step, walltime)
        elif kind == "histo":
            histo = value.histo
            writer.add_histogram_raw(value.tag, histo.min, histo.max, histo.num, histo.sum,
                                     histo.sum_squares, list(histo.bucket_limit),
                                     list(histo.bucket), step, walltime)
        elif kind == "image":
            writer._encoded_image(value.tag, value.image.encoded_image_string, step, walltime)
        elif plugin == _HPARAMS_PLUGIN:
            self._hparams(value.metadata.plugin_data.content, step)
        elif kind == "tensor" and _scalar_tensor(value.tensor) is not None:
            writer.add_scalar(value.tag, _scalar_tensor(value.tensor), step, walltime,
                              new_style=True)
        else:
            raise ValueError(f"tblog: add_summary: value {value.tag!r} ({kind}, plugin "
                             f"{plugin or 'none'}) is not supported; use the SummaryWriter's "
                             "add_* methods")

    def _hparams(self, content, step):
        data = hparams_pb2.HParamsPluginData.FromString(content)
        which = data.WhichOneof("data")
        if which == "experiment":
            self._metric_tags = [m.name.tag for m in data.experiment.metric_infos]
        elif which == "session_start_info":
            values = {}
            for key, v in data.session_start_info.hparams.items():
                field = v.WhichOneof("kind")
                if field in ("number_value", "string_value", "bool_value"):
                    values[key] = getattr(v, field)
            # As torch's add_summary of the three protos: one session in the run.
            self._writer._hparams_record(values, self._metric_tags, step)
        # session_end_info: the daemon ends the session when the run closes.


def _wire(message):
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    return message.SerializeToString()


def _scalar_tensor(tensor):
    """The value of a rank-0 float tensor (TensorBoard 2's scalar), else None."""
    if tensor.tensor_shape.dim:
        return None
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.tensor_content and tensor.dtype in (1, 2):
        dtype = np.float32 if tensor.dtype == 1 else np.float64
        return _convert.to_float(np.frombuffer(tensor.tensor_content, dtype=dtype)[0])
    return None
