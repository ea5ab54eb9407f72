"""The gRPC channel to tblogd: plaintext, TLS (mTLS with a client
certificate), and the bearer token the daemon asks for with --auth-token-file.

Settings come from keyword arguments, else from the environment (the same
variables as the C++, Node and Go clients):

    TBLOG_TLS=1            TLS with the system's CAs (implied by the files below)
    TBLOG_TLS_CA           PEM CA that signed the daemon's certificate
    TBLOG_TLS_CLIENT_CERT  PEM client certificate (mTLS), with
    TBLOG_TLS_CLIENT_KEY   its key
    TBLOG_TLS_SERVER_NAME  name to check in the daemon's certificate
    TBLOG_TOKEN            bearer token (or TBLOG_TOKEN_FILE: a file holding it)

Without TLS, a token is sent only over gRPC's local credentials, which connect
only to a unix socket or a loopback address: a token never crosses a network
in the clear (the daemon accepts it only there, too).
"""

import os

import grpc

_TRUE = ("1", "true", "yes")


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"tblog: cannot read the {what} {path}: {e.strerror}") from None


def _env_token():
    token = os.environ.get("TBLOG_TOKEN")
    if token:
        return token
    path = os.environ.get("TBLOG_TOKEN_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip()
    return None


def open_channel(address, options=(), *, tls=None, tls_ca=None, tls_cert=None, tls_key=None,
                 tls_server_name=None, token=None):
    """A channel to `address` ("host:port" or "unix:/path"); each setting left
    None is taken from the environment. ValueError names an unreadable file."""
    env = os.environ
    tls_ca = tls_ca if tls_ca is not None else env.get("TBLOG_TLS_CA")
    tls_cert = tls_cert if tls_cert is not None else env.get("TBLOG_TLS_CLIENT_CERT")
    tls_key = tls_key if tls_key is not None else env.get("TBLOG_TLS_CLIENT_KEY")
    tls_server_name = (tls_server_name if tls_server_name is not None
                       else env.get("TBLOG_TLS_SERVER_NAME"))
    token = token if token is not None else _env_token()
    if tls is None:
        tls = env.get("TBLOG_TLS", "").lower() in _TRUE
    tls = bool(tls or tls_ca or tls_cert or tls_key)
    options = list(options)

    if tls:
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("tblog: a TLS client certificate needs its key, and a key its "
                             "certificate (TBLOG_TLS_CLIENT_CERT, TBLOG_TLS_CLIENT_KEY)")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(tls_ca, "TLS CA file") if tls_ca else None,
            private_key=_read(tls_key, "TLS client key") if tls_key else None,
            certificate_chain=_read(tls_cert, "TLS client certificate") if tls_cert else None)
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
    elif token:
        kind = (grpc.LocalConnectionType.UDS if address.startswith(("unix:", "unix-abstract:"))
                else grpc.LocalConnectionType.LOCAL_TCP)
        credentials = grpc.local_channel_credentials(kind)
    else:
        return grpc.insecure_channel(address, options=options)
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(address, credentials, options=options)
