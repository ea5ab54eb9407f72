"""Fixtures for the tblog client tests: the real tblogd daemon on a temporary
logdir and unix socket. The binary is $TBLOGD_BINARY, else the first
<repo>/build*/server/daemon/tblogd found (build/ first)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..")))
sys.path.insert(0, HERE)

# test_example.py imports REPO and tblogd_binary from here.
from source_tree import REPO, tblogd_binary, use_build_stubs  # noqa: E402,F401

use_build_stubs()


class Daemon:
    """A tblogd process: start(), stop() (SIGTERM, waits), restart()."""

    def __init__(self, binary, logdir, socket_path, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.logdir = logdir
        self.socket_path = socket_path
        self.address = "unix:" + socket_path
        self.process = None
        self.log_path = os.path.join(os.path.dirname(socket_path), "tblogd.log")

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [self.binary, "--logdir", self.logdir, "--unix-socket", self.socket_path,
             "--listen", ""] + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tblogd exited with {self.process.returncode}:\n{self.log()}")
            if "listening on" in self.log():
                return
            time.sleep(0.02)
        raise RuntimeError(f"tblogd did not start within {timeout} s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def restart(self):
        self.stop()
        self.start()

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@pytest.fixture
def fake():
    """The in-process fake daemon (fake_daemon.py) on 127.0.0.1; its
    `address` attribute is where to point a writer."""
    from fake_daemon import FakeDaemon
    daemon = FakeDaemon()
    daemon.address = daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture
def daemon_args():
    """Extra tblogd flags; a test module overrides this fixture to set some."""
    return []


@pytest.fixture
def daemon(tmp_path, daemon_args):
    binary = tblogd_binary()
    if binary is None:
        pytest.skip("tblogd binary not found (set TBLOGD_BINARY)")
    # Unix socket paths are limited to ~107 bytes: keep it short.
    sock_dir = tempfile.mkdtemp(prefix="tblog-py-")
    logdir = str(tmp_path / "logs")
    d = Daemon(binary, logdir, os.path.join(sock_dir, "d.sock"), daemon_args)
    d.start()
    yield d
    code = d.stop()
    log = d.log()
    shutil.rmtree(sock_dir, ignore_errors=True)
    assert code == 0, f"tblogd exited with {code}:\n{log}"
