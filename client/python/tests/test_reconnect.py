"""The Python client reconnects within about a second of a restarted daemon
being back (tblog.proto, "Retries"), not after gRPC's channel backoff."""

import os
import socket
import time

import eventfile
import tblog


def _accepts(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def test_reconnects_within_a_second_of_the_daemon_coming_back(daemon):
    """Stop the daemon, keep logging while it is down long enough for the
    channel's backoff to grow, start it again: the time from the daemon
    listening again to the writer's flush completing is printed and must be
    well under gRPC's default backoff (generous bound: 3 s)."""
    writer = tblog.SummaryWriter("exp/reconnect", address=daemon.address)
    writer.add_scalar("x", 0.0, 0)
    writer.flush()
    assert daemon.stop() == 0
    for step in range(1, 50):
        writer.add_scalar("x", float(step), step)
    time.sleep(6)  # the writer fails to reconnect meanwhile, several times
    daemon.start()
    # Back = its socket accepts connections (start() may return on an earlier
    # "listening on" line of the shared log).
    deadline = time.monotonic() + 30
    while not _accepts(daemon.socket_path):
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.01)
    back = time.monotonic()
    writer.flush(timeout=30)
    took = time.monotonic() - back
    print(f"\nreconnect: flush done {took:.2f} s after the restarted daemon listened")
    writer.close()
    assert took < 3.0
    steps = [s for s, _ in eventfile.scalars(os.path.join(daemon.logdir, "exp/reconnect"))["x"]]
    assert steps == list(range(50))  # every point once, in order
