"""tblog: log to TensorBoard through the tblogd daemon.

    from tblog import SummaryWriter   # instead of torch.utils.tensorboard
    writer = SummaryWriter()          # daemon at $TBLOG_ADDRESS or 127.0.0.1:6066
    writer.add_scalar("loss", 0.5, global_step=1)

tblog.keras.TensorBoard is Keras' callback; tblog.summary offers tf.summary's
calls (import tblog.summary as tf_summary).

The package needs the generated protobuf/gRPC modules of proto/tblog/v1 (and
proto/tblog/tensorboard): scripts/gen_python_stubs.sh writes them to
tblog/_proto/ inside the package (pip install does it when protoc is found),
or anywhere else named by $TBLOG_PROTO_PATH (the CMake build uses
<build>/client/python/tblog_proto).
"""

import os as _os


def _find_generated_modules():
    # The generated modules live in packages tblog.v1 and tblog.tensorboard
    # (their import lines say so), so their directory joins this package's path.
    candidates = []
    if _os.environ.get("TBLOG_PROTO_PATH"):
        candidates.append(_os.environ["TBLOG_PROTO_PATH"])
    candidates.append(_os.path.join(_os.path.dirname(__file__), "_proto"))
    for root in candidates:
        directory = _os.path.join(root, "tblog")
        if _os.path.isfile(_os.path.join(directory, "v1", "tblog_pb2.py")):
            if directory not in __path__:
                __path__.append(directory)
            return
    raise ImportError(
        "tblog: generated protobuf modules not found (looked in "
        + ", ".join(candidates)
        + "); run scripts/gen_python_stubs.sh or set TBLOG_PROTO_PATH")


_find_generated_modules()

from tblog._stream import TblogError  # noqa: E402
from tblog.writer import DEFAULT_ADDRESS, SummaryWriter, run_path_for  # noqa: E402

__all__ = ["SummaryWriter", "TblogError", "DEFAULT_ADDRESS", "run_path_for"]
__version__ = "0.1.0"
