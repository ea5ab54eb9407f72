"""Running the client from a source checkout: where a CMake build of this
repository (<repo>/build*/) left the generated protobuf modules and the tblogd
binary. Shared by the tests (tests/conftest.py) and bench_client.py; not part
of the installed package (pyproject.toml lists only `tblog`). Import it
before `tblog`, call use_build_stubs(), then import tblog."""

import glob
import os

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def use_build_stubs():
    """Points $TBLOG_PROTO_PATH at a build's generated modules, unless it is
    already set (CTest sets it) or the package holds its own (tblog/_proto,
    from scripts/gen_python_stubs.sh). Leaves it unset when no build has them;
    importing tblog then says what is missing."""
    if os.environ.get("TBLOG_PROTO_PATH"):
        return
    if os.path.isfile(os.path.join(REPO, "client/python/tblog/_proto/tblog/v1/tblog_pb2.py")):
        return
    for candidate in sorted(glob.glob(os.path.join(REPO, "build*/client/python/tblog_proto"))):
        if os.path.isfile(os.path.join(candidate, "tblog/v1/tblog_pb2.py")):
            os.environ["TBLOG_PROTO_PATH"] = candidate
            return


def tblogd_binary():
    """$TBLOGD_BINARY, else the first executable <repo>/build*/server/daemon/tblogd
    (build/ first); None when there is none."""
    env = os.environ.get("TBLOGD_BINARY")
    if env:
        return env
    candidates = [os.path.join(REPO, "build/server/daemon/tblogd")]
    candidates += sorted(glob.glob(os.path.join(REPO, "build*/server/daemon/tblogd")))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return None
