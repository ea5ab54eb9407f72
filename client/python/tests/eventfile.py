"""A small reader of TensorBoard event files for the tests: TFRecord framing
(u64 length, u32 masked CRC-32C of the length, payload, u32 masked CRC-32C of
the payload), every CRC checked, payloads parsed as tblog.tensorboard Events."""

import glob
import os
import struct

import numpy as np

from tblog.tensorboard import event_pb2


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path):
    """Payloads of every record of a file; raises on a bad CRC or a torn record."""
    with open(path, "rb") as f:
        data = f.read()
    pos, out = 0, []
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: torn record header at {pos}")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked_crc(header) != length_crc:
            raise ValueError(f"{path}: bad length CRC at {pos}")
        payload = data[pos + 12:pos + 12 + length]
        if len(payload) != length or pos + 16 + length > len(data):
            raise ValueError(f"{path}: torn record at {pos}")
        (payload_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if masked_crc(payload) != payload_crc:
            raise ValueError(f"{path}: bad payload CRC at {pos}")
        out.append(payload)
        pos += 16 + length
    return out


def event_files(run_dir):
    return sorted(p for p in glob.glob(os.path.join(run_dir, "*tfevents*")) if os.path.isfile(p))


def events(run_dir):
    """Every Event of a run directory (its own files only, not sub-runs), in
    file order."""
    out = []
    for path in event_files(run_dir):
        for payload in read_records(path):
            event = event_pb2.Event()
            event.ParseFromString(payload)
            out.append(event)
    return out


def values(run_dir):
    """(step, wall_time, Summary.Value) for every summary value of a run."""
    out = []
    for event in events(run_dir):
        if event.HasField("summary"):
            for value in event.summary.value:
                out.append((event.step, event.wall_time, value))
    return out


def tensor_array(tensor):
    """A numpy array from a TensorProto (tensor_content or typed values)."""
    dtypes = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 4: np.uint8}
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.dtype == 7:
        return np.array(list(tensor.string_val), dtype=object).reshape(shape)
    dtype = dtypes[tensor.dtype]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(shape)
    field = {1: tensor.float_val, 2: tensor.double_val, 3: tensor.int_val, 9: tensor.int64_val,
             4: tensor.int_val}[tensor.dtype]
    array = np.array(list(field), dtype=dtype)
    size = int(np.prod(shape)) if shape else 1
    if array.size == 1 and size != 1:
        array = np.full(size, array[0], dtype=dtype)
    return array.reshape(shape)


def scalars(run_dir):
    """{tag: [(step, value), ...]} of a run's scalars, in file order; both
    simple_value and TensorBoard 2's rank-0 tensors."""
    out = {}
    for step, _, value in values(run_dir):
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            out.setdefault(value.tag, []).append((step, value.simple_value))
        elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
            out.setdefault(value.tag, []).append((step, float(tensor_array(value.tensor))))
    return out


def tags_by_plugin(run_dir):
    """{tag: plugin name (or the value kind for legacy values)} of a run."""
    out = {}
    for _, _, value in values(run_dir):
        plugin = value.metadata.plugin_data.plugin_name
        out.setdefault(value.tag, plugin or value.WhichOneof("value"))
    return out


def tensorboard_accumulator(run_dir):
    """TensorBoard's own EventAccumulator over a run, loaded, keeping every
    scalar, tensor, histogram and image (the `tensorboard` package must
    import: callers skip without it)."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(
        run_dir, size_guidance={"tensors": 0, "images": 0, "scalars": 0, "histograms": 0})
    acc.Reload()
    return acc
