"""TLS, mTLS and bearer tokens from the Python client, against the real tblogd
with certificates made at test time (tests/support/make_test_certs.sh, Debian's
openssl)."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import tblog
import eventfile
from conftest import REPO, Daemon, tblogd_binary

TOKEN = "tok-python-test-0123456789"
CERT_SCRIPT = os.path.join(REPO, "tests", "support", "make_test_certs.sh")


@pytest.fixture(scope="module")
def certs():
    directory = tempfile.mkdtemp(prefix="tblog-certs-")
    subprocess.run(["bash", CERT_SCRIPT, directory], check=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def secure_daemon(tmp_path, certs):
    """tblogd with TLS + mTLS on 127.0.0.1:<free port>, a token file, and a
    plaintext unix socket; .tcp is the TCP address."""
    binary = tblogd_binary()
    if binary is None:
        pytest.skip("tblogd binary not found (set TBLOGD_BINARY)")
    sock_dir = tempfile.mkdtemp(prefix="tblog-py-")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# test\npython:{TOKEN}\n")
    d = Daemon(binary, str(tmp_path / "logs"), os.path.join(sock_dir, "d.sock"))
    log = open(d.log_path, "ab")
    d.process = subprocess.Popen(
        [binary, "--logdir", d.logdir, "--unix-socket", d.socket_path,
         "--listen", "127.0.0.1:0",
         "--tls-cert", os.path.join(certs, "server.crt"),
         "--tls-key", os.path.join(certs, "server.key"),
         "--tls-client-ca", os.path.join(certs, "client-ca.crt"),
         "--auth-token-file", str(tokens)],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 20
    match = None
    while match is None and time.monotonic() < deadline:
        assert d.process.poll() is None, d.log()
        match = re.search(r"listening on (127\.0\.0\.1:\d+)", d.log())
        time.sleep(0.02)
    assert match, d.log()
    d.tcp = match.group(1)
    yield d
    code = d.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)
    assert code == 0, d.log()


def mtls(certs, **extra):
    return dict(tls_ca=os.path.join(certs, "ca.crt"),
                tls_cert=os.path.join(certs, "client.crt"),
                tls_key=os.path.join(certs, "client.key"), **extra)


def test_writes_over_mutual_tls_with_a_token(secure_daemon, certs):
    with tblog.SummaryWriter("tls/args", address=secure_daemon.tcp,
                             connection=mtls(certs, token=TOKEN)) as writer:
        for step in range(5):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
    scalars = eventfile.scalars(os.path.join(secure_daemon.logdir, "tls/args"))
    assert [step for step, _ in scalars["loss"]] == list(range(5))


def test_settings_from_the_environment(secure_daemon, certs, monkeypatch, tmp_path):
    monkeypatch.setenv("TBLOG_TLS_CA", os.path.join(certs, "ca.crt"))
    monkeypatch.setenv("TBLOG_TLS_CLIENT_CERT", os.path.join(certs, "client.crt"))
    monkeypatch.setenv("TBLOG_TLS_CLIENT_KEY", os.path.join(certs, "client.key"))
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.setenv("TBLOG_TOKEN_FILE", str(token_file))
    with tblog.SummaryWriter("tls/env", address=secure_daemon.tcp) as writer:
        writer.add_scalar("loss", 0.5, 1)
    assert "loss" in eventfile.scalars(os.path.join(secure_daemon.logdir, "tls/env"))


def test_the_unix_socket_takes_the_token_in_plaintext(secure_daemon):
    with tblog.SummaryWriter("tls/unix", address=secure_daemon.address,
                             connection=dict(token=TOKEN)) as writer:
        writer.add_scalar("loss", 0.5, 1)
    assert "loss" in eventfile.scalars(os.path.join(secure_daemon.logdir, "tls/unix"))


@pytest.mark.parametrize("token", [None, "tok-wrong-wrong-wrong-wrong"])
def test_a_missing_or_wrong_token_is_unauthenticated(secure_daemon, certs, token, monkeypatch):
    monkeypatch.delenv("TBLOG_TOKEN", raising=False)
    monkeypatch.delenv("TBLOG_TOKEN_FILE", raising=False)
    with pytest.raises(tblog.TblogError) as raised:
        tblog.SummaryWriter("tls/refused", address=secure_daemon.tcp,
                            connection=mtls(certs, token=token or ""), connect_timeout=10)
    assert raised.value.code == "UNAUTHENTICATED", raised.value
    assert "tok-wrong" not in secure_daemon.log()  # the daemon never logs a token


def test_mtls_refuses_a_client_without_a_certificate(secure_daemon, certs):
    started = time.monotonic()
    with pytest.raises(tblog.TblogError):
        tblog.SummaryWriter("tls/nocert", address=secure_daemon.tcp, connect_timeout=2,
                            connection=dict(tls_ca=os.path.join(certs, "ca.crt"), token=TOKEN))
    assert time.monotonic() - started < 60


def test_an_unreadable_ca_file_is_named(secure_daemon, tmp_path):
    with pytest.raises(ValueError, match="TLS CA file"):
        tblog.SummaryWriter("tls/x", address=secure_daemon.tcp,
                            connection=dict(tls_ca=str(tmp_path / "missing.crt")))


def test_reflection_needs_a_token_and_health_does_not(secure_daemon, certs):
    import grpc
    from tblog._channel import open_channel

    def reflect(token):
        channel = open_channel(secure_daemon.tcp, **mtls(certs, token=token))
        call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        try:
            # An empty request: the daemon answers it (with an error message inside).
            return next(iter(call(iter([b""]), timeout=10))), None
        except grpc.RpcError as e:
            return None, e.code()
        finally:
            channel.close()

    assert reflect("")[1] == grpc.StatusCode.UNAUTHENTICATED
    assert reflect(TOKEN)[1] is None
    channel = open_channel(secure_daemon.tcp, **mtls(certs, token=""))
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"  # SERVING, with no token
    channel.close()
