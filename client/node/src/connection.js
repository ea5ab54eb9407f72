'use strict';
// Where the daemon is and how to reach it: the proto, the address, TLS and the
// bearer token.

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { TblogError } = require('./errors.js');

/** The daemon's address when none is given: as the C++ and Python clients. */
const DEFAULT_ADDRESS = '127.0.0.1:6066';

// The daemon accepts messages up to 64 MiB by default.
const MAX_MESSAGE_BYTES = 64 << 20;

const PACKAGE_DIR = path.resolve(__dirname, '..');
const PROTO_IN_PACKAGE = path.join(PACKAGE_DIR, 'proto', 'tblog', 'v1', 'tblog.proto');

/** The path of tblog.proto: $TBLOG_PROTO; else, when this package is
 *  client/node of a tblog checkout, the checkout's proto (the one the daemon
 *  next to it was built from, never a stale copy); else the copy shipped in
 *  the package (proto/, put there by `npm pack` / `npm install <folder>`:
 *  scripts/copy-proto.js). */
function protoPath() {
  if (process.env.TBLOG_PROTO) return process.env.TBLOG_PROTO;
  const root = path.resolve(PACKAGE_DIR, '..', '..');
  const inCheckout = path.join(root, 'proto', 'tblog', 'v1', 'tblog.proto');
  if (path.join(root, 'client', 'node') === PACKAGE_DIR && fs.existsSync(inCheckout)) return inCheckout;
  return PROTO_IN_PACKAGE;
}

let cachedService = null;
/** The TBLog service constructor, loaded once per process. */
function loadService() {
  if (cachedService) return cachedService;
  const file = protoPath();
  if (!fs.existsSync(file)) {
    throw new TblogError(`tblog: cannot find tblog.proto at ${file} (set TBLOG_PROTO)`);
  }
  const definition = protoLoader.loadSync(file, {
    keepCase: false,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    oneofs: true,
  });
  cachedService = grpc.loadPackageDefinition(definition).tblog.v1.TBLog;
  return cachedService;
}

/** $TBLOG_ADDRESS, else 127.0.0.1:6066. */
function defaultAddress() {
  return process.env.TBLOG_ADDRESS || DEFAULT_ADDRESS;
}

/** A gRPC target for `address`: "unix:/path", "/path" (a socket) or "host:port". */
function grpcTarget(address) {
  if (!address) throw new TblogError('tblog: an address is required');
  if (address.startsWith('/')) return `unix:${address}`;
  return address;
}

/** True when `target` is a unix socket or a loopback host ("127.x", "::1",
 *  "localhost"): where a token may travel without TLS. */
function isLocalTarget(target) {
  if (target.startsWith('unix:') || target.startsWith('unix-abstract:')) return true;
  const match = /^(?:dns:\/\/\/|ipv4:|ipv6:)?(?:\[([^\]]+)\]|([^:]+))(?::\d+)?$/.exec(target);
  if (!match) return false;
  const host = match[1] || match[2];
  if (host === 'localhost' || host === '::1') return true;
  return net.isIPv4(host) && host.startsWith('127.');
}

/** Channel credentials and options for `target` from `tls` ({ca, cert, key,
 *  serverName, enabled}: file paths) and `token`, each defaulting to the
 *  environment: TBLOG_TLS, TBLOG_TLS_CA, TBLOG_TLS_CLIENT_CERT,
 *  TBLOG_TLS_CLIENT_KEY, TBLOG_TLS_SERVER_NAME, TBLOG_TOKEN (or
 *  TBLOG_TOKEN_FILE). The token goes in every call's metadata; without TLS only
 *  to a unix socket or loopback target (the daemon accepts it only there). */
function connection(target, tls = {}, token) {
  const env = process.env;
  const ca = tls.ca ?? env.TBLOG_TLS_CA;
  const cert = tls.cert ?? env.TBLOG_TLS_CLIENT_CERT;
  const key = tls.key ?? env.TBLOG_TLS_CLIENT_KEY;
  const serverName = tls.serverName ?? env.TBLOG_TLS_SERVER_NAME;
  let bearer = token ?? env.TBLOG_TOKEN;
  if (!bearer && env.TBLOG_TOKEN_FILE) {
    bearer = fs.readFileSync(env.TBLOG_TOKEN_FILE, 'utf8').split('\n')[0].trim();
  }
  const enabled = Boolean(tls.enabled ?? ['1', 'true', 'yes'].includes((env.TBLOG_TLS || '').toLowerCase()));
  const options = {};
  let credentials;
  if (enabled || ca || cert || key) {
    if (Boolean(cert) !== Boolean(key)) {
      throw new TblogError('tblog: a TLS client certificate needs its key, and a key its certificate');
    }
    const read = (file, what) => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new TblogError(`tblog: cannot read the ${what} ${file}: ${err.message}`);
      }
    };
    credentials = grpc.credentials.createSsl(ca ? read(ca, 'TLS CA file') : null,
      key ? read(key, 'TLS client key') : null, cert ? read(cert, 'TLS client certificate') : null);
    if (serverName) options['grpc.ssl_target_name_override'] = serverName;
  } else {
    if (bearer && !isLocalTarget(target)) {
      throw new TblogError(`tblog: refusing to send a token in the clear to ${target}: ` +
        'use TLS (TBLOG_TLS_CA) or a loopback or unix-socket address');
    }
    credentials = grpc.credentials.createInsecure();
  }
  if (bearer) {
    // An interceptor rather than call credentials: grpc-js composes call
    // credentials with TLS only, and the unix socket is plaintext.
    options.interceptors = [(callOptions, nextCall) => new grpc.InterceptingCall(nextCall(callOptions), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${bearer}`);
        next(metadata, listener);
      },
    })];
  }
  return { credentials, options };
}

/** A function that makes a new TBLog client (its own channel and connection)
 *  for `address`. TLS files and the token file are read again for each
 *  client, so a rotated client certificate is used from the next reconnect
 *  on (as the C++ client does); a file that cannot be read throws a
 *  TblogError. */
function clientFactory(address, tls, token) {
  const Service = loadService();
  const target = grpcTarget(address);
  const make = () => {
    const { credentials, options } = connection(target, tls, token);
    return new Service(target, credentials, {
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      // A reconnect gets a connection of its own: one that saw the daemon go
      // away would wait out gRPC's reconnect backoff before trying again.
      'grpc.use_local_subchannel_pool': 1,
      ...options,
    });
  };
  make.target = target;
  return make;
}

module.exports = {
  DEFAULT_ADDRESS, MAX_MESSAGE_BYTES, protoPath, loadService, defaultAddress, grpcTarget, isLocalTarget,
  connection, clientFactory,
};
