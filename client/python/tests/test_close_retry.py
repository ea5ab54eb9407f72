"""close() survives a daemon killed (SIGKILL) and restarted during the close:
CloseRun is tried again while the daemon is away (UNAVAILABLE) and a
restarted daemon's NOT_FOUND releases the writer, as the C++ client's close()
does (writer_protocol_test). A daemon that does not come back fails close()
after its timeout, naming the address. The retry rules themselves (which
codes, NOT_FOUND only after a retry) against the fake daemon at the end."""

import os
import signal
import socket
import threading
import time

import grpc
import pytest

import eventfile
import tblog
import tblog._connect

POINTS = 3000


def _log(writer):
    for step in range(POINTS):
        writer.add_scalar("x", float(step), step)


def _steps(daemon, run):
    return [s for s, _ in eventfile.scalars(os.path.join(daemon.logdir, run))["x"]]


def _start_again(daemon):
    """Starts the killed daemon and waits until its socket accepts
    connections (start() may return on the first run's "listening on" line
    of the shared log, before the new process handles SIGTERM)."""
    daemon.start()
    deadline = time.monotonic() + 30
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(daemon.socket_path)
                return
            except OSError:
                assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.01)


def _restart_later(daemon, delay):
    """Starts the (killed) daemon again `delay` seconds from now, on its own
    thread; join the thread before looking at the files."""
    def start():
        time.sleep(delay)
        _start_again(daemon)
    thread = threading.Thread(target=start, name="restart-tblogd")
    thread.start()
    return thread


def _kill_when_close_run_starts(daemon, monkeypatch, restart_after=None):
    """The daemon gets SIGKILL right before close()'s first CloseRun (after
    its flush: every point is written), and, with `restart_after`, is started
    again that many seconds later. Returns a list that holds the restart
    thread once there is one."""
    original = tblog._connect.close_run
    threads = []

    def kill_then_close_run(*args, **kwargs):
        daemon.stop(sig=signal.SIGKILL)
        if restart_after is not None:
            threads.append(_restart_later(daemon, restart_after))
        return original(*args, **kwargs)
    monkeypatch.setattr(tblog._connect, "close_run", kill_then_close_run)
    return threads


def test_close_run_retried_across_a_daemon_restart(daemon, monkeypatch):
    """Killed as CloseRun starts, back 0.5 s later: the first try fails
    (UNAVAILABLE), a later one reaches the restarted daemon, which does not
    know the run (NOT_FOUND: released). close() returns; every point is in
    the files once."""
    writer = tblog.SummaryWriter("py/close-kill", address=daemon.address)
    _log(writer)
    threads = _kill_when_close_run_starts(daemon, monkeypatch, restart_after=0.5)
    start = time.monotonic()
    writer.close(timeout=30)
    took = time.monotonic() - start
    print(f"\nclose across a restart: {took:.2f} s")
    for thread in threads:
        thread.join()
    assert len(threads) == 1          # the hook ran: CloseRun met the kill
    assert took < 20                  # generous: the retry, not the timeout
    assert _steps(daemon, "py/close-kill") == list(range(POINTS))


def test_close_resends_and_closes_when_killed_as_close_starts(daemon):
    """Killed right when close() starts, with points not yet flushed, back
    0.5 s later: the flush resends what the daemon had not written, then the
    run closes. Every point is in the files once."""
    writer = tblog.SummaryWriter("py/close-start", address=daemon.address)
    _log(writer)
    daemon.stop(sig=signal.SIGKILL)
    thread = _restart_later(daemon, 0.5)
    try:
        writer.close(timeout=30)
    finally:
        thread.join()
    assert _steps(daemon, "py/close-start") == list(range(POINTS))


def test_close_fails_after_its_timeout_naming_the_address(daemon, monkeypatch):
    """No daemon comes back: close() gives up after its timeout (generous
    bound), with an error that names the address; the points flushed before
    are in the files."""
    writer = tblog.SummaryWriter("py/close-gone", address=daemon.address)
    _log(writer)
    _kill_when_close_run_starts(daemon, monkeypatch)
    start = time.monotonic()
    with pytest.raises(tblog.TblogError) as raised:
        writer.close(timeout=2)
    took = time.monotonic() - start
    message = str(raised.value)
    assert daemon.address in message, message
    assert "CloseRun" in message and "timeout" in message, message
    assert raised.value.code == "UNAVAILABLE", message
    assert 1.5 <= took < 15, took    # tried for its timeout, then gave up
    writer.close()                    # idempotent: no second error
    _start_again(daemon)              # the fixture stops it (SIGTERM, exit 0)
    assert _steps(daemon, "py/close-gone") == list(range(POINTS))


def test_close_with_unsent_points_fails_naming_the_address(daemon):
    """Killed as close() starts with points not yet flushed, and not back:
    the flush runs out of time, and its error names the address. The
    sender's and the stream's waits end by the deadline too (they added 7 s
    to it), so it takes the timeout (bounded generously)."""
    writer = tblog.SummaryWriter("py/close-unsent", address=daemon.address)
    _log(writer)
    daemon.stop(sig=signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(tblog.TblogError) as raised:
        writer.close(timeout=2)
    took = time.monotonic() - start
    print(f"close(timeout=2) of a writer with unsent points, daemon gone: {took:.2f} s")
    assert daemon.address in str(raised.value), str(raised.value)
    assert took < 6, took
    _start_again(daemon)              # the fixture stops it (SIGTERM, exit 0)


def _close_with_refusals(fake, refusals):
    fake.close_refusals = list(refusals)
    writer = tblog.SummaryWriter("exp/close", address=fake.address)
    writer.add_scalar("x", 1.0, 0)
    writer.close(timeout=10)


def test_close_run_retries_unavailable_and_deadline_exceeded(fake):
    _close_with_refusals(fake, [grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.DEADLINE_EXCEEDED])
    assert fake.close_calls == 3 and fake.closed == ["exp/close"]


def test_not_found_after_a_retry_is_released(fake):
    _close_with_refusals(fake, [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND])
    assert fake.close_calls == 2


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.FAILED_PRECONDITION])
def test_other_refusals_fail_close_at_once(fake, code):
    """NOT_FOUND to the first try is not a restart: the daemon that opened
    the run does not know it. Refusals are not retried."""
    with pytest.raises(tblog.TblogError) as raised:
        _close_with_refusals(fake, [code])
    assert raised.value.code == code.name, str(raised.value)
    assert "CloseRun refused on purpose" in str(raised.value)
    assert fake.close_calls == 1
