"""The first OpenRun of a writer: fails within connect_timeout (default 5 s)
with a message that says which address was tried, what was wrong there and
how to point the client elsewhere, instead of gRPC's bare DEADLINE_EXCEEDED
after a long wait.

gRPC reports an unreachable address as UNAVAILABLE with a transport message
that differs between versions; the diagnosis here looks at the address itself
(the unix socket's file, a TCP connect) so the message is the same everywhere.
"""

import errno
import os
import socket
import stat
import time

import grpc

from tblog._stream import TblogError

DEFAULT_CONNECT_TIMEOUT = 5.0
_HINT = ("Start tblogd there, or point the client at it: TBLOG_ADDRESS=host:port or "
         "unix:/path, or SummaryWriter(address=...). A daemon that is still starting can be "
         "waited for longer: SummaryWriter(connect_timeout=SECONDS) or TBLOG_CONNECT_TIMEOUT.")


def connect_timeout(value):
    """Seconds to wait for the daemon: `value` if given, else
    $TBLOG_CONNECT_TIMEOUT, else DEFAULT_CONNECT_TIMEOUT."""
    if value is not None:
        return float(value)
    text = os.environ.get("TBLOG_CONNECT_TIMEOUT")
    if text:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"tblog: TBLOG_CONNECT_TIMEOUT={text!r} is not a number of "
                             "seconds") from None
    return DEFAULT_CONNECT_TIMEOUT


def first_open(stream, request, timeout, address):
    """OpenRun until the daemon answers or `timeout` seconds pass. An
    unreachable daemon is retried (each attempt on a fresh channel, which
    connects at once when the daemon appears); any other failure is final.
    Raises TblogError naming `address` and the cause."""
    deadline = time.monotonic() + timeout
    backoff = 0.05
    unavailable = None   # the last UNAVAILABLE: says more than a final timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            # Not wait_for_ready: an unreachable address fails the call at
            # once (UNAVAILABLE) rather than after the whole deadline.
            return stream._stub.OpenRun(request, timeout=max(remaining, 0.05))
        except grpc.RpcError as e:
            code = e.code()
            remaining = deadline - time.monotonic()
            if code == grpc.StatusCode.UNAVAILABLE:
                unavailable = e
            if code == grpc.StatusCode.UNAVAILABLE and remaining > 0:
                time.sleep(min(backoff, remaining))
                backoff = min(backoff * 2, 0.5)
                stream._fresh_channel()
                continue
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and unavailable is not None:
                e = unavailable
            raise _error(address, e, timeout) from None


def close_run(stream, request, deadline, limit, address, fresh_channels=True):
    """CloseRun for close(), as the C++ client's CloseRunRetrying: tried again
    while the daemon is unreachable or slow (UNAVAILABLE, DEADLINE_EXCEEDED:
    killed, restarting), after the reconnect backoff (50 ms doubling to 1 s)
    and on a fresh channel (a channel that saw the daemon go keeps failing
    for seconds after it is back), until `deadline` (time.monotonic();
    `limit` is its length in seconds, for the message). Each try waits for
    the time left, at least 1 s, so a close whose flush took all of it still
    asks once. NOT_FOUND to a try after the first is a restarted daemon that
    holds nothing of this writer (its hold died with the killed process, and
    everything it sent was acknowledged as written by the flush before):
    released. Returns None when closed, else the TblogError to raise (naming
    `address` when the daemon could not be reached in time)."""
    backoff = 0.05
    tries = 0
    while True:
        tries += 1
        try:
            stream._stub.CloseRun(request, timeout=max(deadline - time.monotonic(), 1.0))
            return None
        except grpc.RpcError as e:
            code = e.code()
            if tries > 1 and code == grpc.StatusCode.NOT_FOUND:
                return None
            if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                # The daemon answered and refused: its message says why.
                return TblogError(f"tblog: CloseRun failed: {code.name}: {e.details()}",
                                  code=code.name)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cause = diagnose(address, e.details() or "") or "reachable but too slow"
                return TblogError(
                    f"tblog: CloseRun failed: tblogd at {address!r} did not answer within "
                    f"close's timeout ({limit:g} s, {tries} tries): {cause} "
                    f"(gRPC: {code.name}: {e.details()}). A daemon still running keeps the run "
                    "open until this writer's lease expires.", code=code.name)
            time.sleep(min(backoff, remaining))
            backoff = min(backoff * 2, 1.0)
            if fresh_channels:
                stream._fresh_channel()


def _error(address, rpc_error, timeout):
    code = rpc_error.code()
    details = rpc_error.details() or ""
    if code == grpc.StatusCode.UNIMPLEMENTED:
        cause = "not a tblogd (a gRPC server answers there, but not the tblog.v1 service)"
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        cause = diagnose(address, details)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and cause is None:
            cause = (f"no answer within {timeout:g} s (something accepts connections there "
                     "but does not answer as tblogd: another server, or TLS on one side only)")
    else:
        # The daemon answered and refused: its message says why.
        return TblogError(f"tblog: OpenRun failed: {code.name}: {details}", code=code.name)
    if cause is None:
        cause = ("something accepts connections there but the gRPC connection failed: not a "
                 "tblogd, or a tblogd with TLS (then set TBLOG_TLS / TBLOG_TLS_CA)")
    return TblogError(f"tblog: cannot reach tblogd at {address!r} (tried for {timeout:g} s): "
                      f"{cause} (gRPC: {code.name}: {details}). {_HINT}", code=code.name)


def diagnose(address, details=""):
    """What is wrong at `address`, in words, or None when nothing is found
    wrong (the address accepts connections)."""
    if address.startswith("unix-abstract:"):
        return "no daemon listens on that abstract unix socket"
    if address.startswith("unix:"):
        return _diagnose_unix(address[len("unix:"):].removeprefix("//"))
    host, port = _split_host_port(address)
    if port is None:
        return "the address has no port (expected host:port or unix:/path)"
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except ConnectionRefusedError:
        return f"connection refused (nothing listens on port {port} of {host})"
    except socket.gaierror as e:
        return f"cannot resolve host {host!r} ({e.strerror})"
    except socket.timeout:
        return f"no answer from {host}:{port} within 2 s (a firewall, or a host that is down)"
    except OSError as e:
        return f"cannot connect: {e.strerror or e}"
    if any(word in details.lower() for word in ("handshake", "ssl", "tls")):
        return "TLS handshake failed (is TLS set the same on both sides? TBLOG_TLS, TBLOG_TLS_CA)"
    return None


def _diagnose_unix(path):
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        parent = os.path.dirname(path) or "."
        where = "" if os.path.isdir(parent) else f"; its directory {parent} does not exist"
        return f"no such socket: {path} does not exist{where}"
    except PermissionError:
        return f"permission denied: cannot look up {path} (a directory on the way is not " \
               "searchable by this user)"
    if not stat.S_ISSOCK(mode):
        return f"{path} is not a socket"
    if not os.access(path, os.W_OK):
        return (f"permission denied: this user (uid {os.getuid()}) may not write to the socket "
                f"{path}; ask for the daemon's group, or its --unix-socket-mode")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return f"connection refused: {path} is a socket nobody listens on (a daemon that exited?)"
    except PermissionError:
        return f"permission denied: connecting to {path}"
    except OSError as e:
        if e.errno == errno.EACCES:
            return f"permission denied: connecting to {path}"
        return f"cannot connect to {path}: {e.strerror or e}"
    finally:
        probe.close()
    return None


def _split_host_port(address):
    target = address
    for scheme in ("dns:///", "ipv4:", "ipv6:", "dns:"):
        if target.startswith(scheme):
            target = target[len(scheme):]
            break
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, sep, port = target.rpartition(":")
        if not sep:
            return target, None
    try:
        return host or "localhost", int(port)
    except (TypeError, ValueError):
        return host, None
