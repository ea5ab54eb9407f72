'use strict';
// Node client for tblogd (proto/tblog/v1/tblog.proto).
//
// A Writer opens a run (OpenRun), then sends what the training code logs as
// sequenced batches on one Write stream. Scalars are buffered into
// ScalarColumns records (a tag dictionary plus packed columns); other records
// are kept in call order. Batches leave when the buffer grows past a limit,
// every `sendIntervalMs`, and at flush()/close(). Records the daemon rejects
// (RecordError) and a failed stream reject the next flush()/close() with a
// TblogError carrying the daemon's message.
//
// Not done here: reconnecting and resending after a stream failure (the
// Python and C++ clients do that); a failed stream ends this Writer. Every
// failure is surfaced as a TblogError with its gRPC `code`, transient or not;
// which codes are transient (worth retrying) is listed once, in the "Retries"
// comment of proto/tblog/v1/tblog.proto.

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// A batch is sent once its records pass this many bytes or scalar points.
const BATCH_BYTES = 4 << 20;
const BATCH_POINTS = 1 << 16;
// The daemon accepts messages up to 64 MiB by default.
const MAX_MESSAGE_BYTES = 64 << 20;

/** What the daemon refused, or why the stream failed. `code` is the gRPC
 *  status code (a number) when known; `errors` the RecordErrors, if any. */
class TblogError extends Error {
  constructor(message, { code, errors = [] } = {}) {
    super(message);
    this.name = 'TblogError';
    this.code = code;
    this.errors = errors;
  }
}

/** The path of tblog.proto: $TBLOG_PROTO, or the repository's proto/ tree
 *  (this package lives in <repo>/client/node). */
function protoPath() {
  if (process.env.TBLOG_PROTO) return process.env.TBLOG_PROTO;
  return path.resolve(__dirname, '..', '..', '..', 'proto', 'tblog', 'v1', 'tblog.proto');
}

let cachedService = null;
// Loads the TBLog service definition once per process.
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

// Hyperparameters as the proto's HParams: numbers, strings and booleans.
function toHParams(hparams) {
  if (!hparams) return undefined;
  const values = {};
  for (const [name, value] of Object.entries(hparams)) {
    if (typeof value === 'number') values[name] = { number: value };
    else if (typeof value === 'boolean') values[name] = { flag: value };
    else if (typeof value === 'string') values[name] = { text: value };
    else throw new TblogError(`tblog: hparam "${name}" must be a number, string or boolean`);
  }
  return { values };
}

const isLittleEndian = os.endianness() === 'LE';

// The elements of `values` as a Tensor: dtype and little-endian bytes.
function toTensor(values, shape) {
  let typed = values;
  if (Array.isArray(values)) typed = Float64Array.from(values);
  let dtype;
  if (typed instanceof Float32Array) dtype = 'DTYPE_FLOAT32';
  else if (typed instanceof Float64Array) dtype = 'DTYPE_FLOAT64';
  else if (typed instanceof Uint8Array) dtype = 'DTYPE_UINT8';
  else throw new TblogError('tblog: values must be a Float32Array, Float64Array, Uint8Array or number[]');
  let data;
  if (isLittleEndian || typed.BYTES_PER_ELEMENT === 1) {
    data = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  } else {
    data = Buffer.alloc(typed.byteLength);
    for (let i = 0; i < typed.length; ++i) {
      if (dtype === 'DTYPE_FLOAT32') data.writeFloatLE(typed[i], i * 4);
      else data.writeDoubleLE(typed[i], i * 8);
    }
  }
  return { dtype, shape: shape || [typed.length], data };
}

const HISTOGRAM_LAYOUTS = {
  uniform: 'HISTOGRAM_LAYOUT_UNIFORM',
  exponential: 'HISTOGRAM_LAYOUT_EXPONENTIAL',
};
const IMAGE_STYLES = { tensor: 'IMAGE_STYLE_TENSOR', summary_image: 'IMAGE_STYLE_SUMMARY_IMAGE' };

function nowSeconds() {
  return Date.now() / 1000;
}

// Rough size of a record's payload, for batching.
function payloadBytes(record) {
  const kind = record.histogram?.values?.data ?? record.image?.pixels?.data ??
    record.image?.encoded ?? record.text?.markdown ?? '';
  return 64 + record.tag.length + kind.length;
}

// "a rejected record" message from RecordErrors, naming each record.
function recordErrorMessage(errors) {
  const first = errors[0];
  let text = `tblog: record ${first.index} (tag "${first.tag}") of batch ${first.sequence} ` +
    `rejected (code ${first.code}): ${first.message}`;
  if (errors.length > 1) text += ` (and ${errors.length - 1} more rejected records)`;
  return text;
}

/** Writes one run. Methods that log (scalar, histogram, image, text) only
 *  buffer and never throw for the daemon's reasons; flush() and close() report
 *  what the daemon refused. Not for use after close(). */
class Writer {
  constructor(client, opened, options) {
    this._client = client;
    this.runId = opened.runId;
    this.runPath = opened.runPath;
    this.directory = opened.directory;
    this.writerId = options.writerId || crypto.randomUUID();
    this._sequence = 0;
    // The buffer: records in call order; scalars merge into the ScalarColumns
    // record at the end of the list while nothing else follows it.
    this._records = [];
    this._columns = null; // { record, tagIndex: Map }
    this._bytes = 0;
    this._points = 0;
    // Acknowledgements from the daemon.
    this._written = 0;
    this._flushed = 0;
    this._errors = [];   // RecordErrors not yet reported
    this._failure = null; // the stream's failure, sticky
    this._waiters = [];
    this._closed = false;

    this._call = client.write();
    // Binds the stream at once, so this writer holds the run while it has
    // nothing to log yet (tblog.proto, WriteRequest and "Leases").
    this._call.write({ runId: this.runId, writerId: this.writerId });
    this._firstSent = false;
    this._call.on('data', (response) => this._onResponse(response));
    this._call.on('error', (err) => this._onFailure(
      new TblogError(`tblog: Write stream failed: ${err.details || err.message}`, { code: err.code })));
    this._streamEnded = new Promise((resolve) => {
      this._call.on('status', resolve);
    });
    this._call.on('end', () => {
      if (!this._closed) this._onFailure(new TblogError('tblog: the daemon ended the Write stream'));
    });

    const interval = options.sendIntervalMs ?? 1000;
    this._timer = interval > 0 ? setInterval(() => this._send('FLUSH_MODE_NONE'), interval) : null;
    if (this._timer) this._timer.unref();
  }

  /** Opens a run and its Write stream. `address`: "unix:/path", "/path" or
   *  "host:port". `runPath` picks the directory (relative to the daemon's
   *  logdir) instead of <experiment>/<timestamp>[-<name>]; `hparams` maps names
   *  to numbers, strings or booleans. `tls` ({ca, cert, key, serverName,
   *  enabled}: PEM file paths) and `token` default to the environment (see
   *  connection() and README). Rejects with the daemon's message. */
  static async open({ address, experiment = '', name = '', runPath = '', hparams,
    labels = {}, mode = 'OPEN_MODE_DEFAULT', writerId, sendIntervalMs, tls, token } = {}) {
    const Service = loadService();
    const target = grpcTarget(address);
    const { credentials, options } = connection(target, tls, token);
    const client = new Service(target, credentials, {
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      ...options,
    });
    // The writer id is chosen here so that OpenRun names it: the writer holds
    // the run until close() releases it (tblog.proto, "Leases").
    writerId = writerId || crypto.randomUUID();
    const request = { experiment, name, runPath, mode, labels, hparams: toHParams(hparams), writerId };
    let opened;
    try {
      opened = await new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + 30000);
        client.openRun(request, { deadline }, (err, response) => {
          if (err) reject(new TblogError(`tblog: OpenRun failed: ${err.details || err.message}`, { code: err.code }));
          else resolve(response);
        });
      });
    } catch (err) {
      client.close();
      throw err;
    }
    return new Writer(client, opened, { writerId, sendIntervalMs });
  }

  /** Buffers one scalar point. `subrun` names a sub-run ("validation"). */
  scalar(tag, step, value, { subrun = '', wallTime } = {}) {
    this._checkOpen();
    if (!this._columns) {
      const record = { tag: '', step: 0, scalars: { tags: [], tagIndex: [], steps: [], values: [], wallTimes: [] } };
      this._columns = { record, tagIndex: new Map() };
      this._records.push(record);
    }
    const columns = this._columns.record.scalars;
    const key = `${subrun}\u0000${tag}`;
    let index = this._columns.tagIndex.get(key);
    if (index === undefined) {
      index = columns.tags.length;
      columns.tags.push({ tag, subrun });
      this._columns.tagIndex.set(key, index);
      this._bytes += tag.length + subrun.length + 8;
    }
    columns.tagIndex.push(index);
    columns.steps.push(step);
    columns.values.push(value);
    columns.wallTimes.push(wallTime ?? nowSeconds());
    this._bytes += 24;
    this._points += 1;
    if (this._points >= BATCH_POINTS) this._send('FLUSH_MODE_NONE');
  }

  /** Buffers a histogram of `values` (Float32Array, Float64Array or number[]);
   *  the daemon computes the buckets. layout: "uniform" (default, `buckets`
   *  equal-width buckets, 0 = 30) or "exponential" (PyTorch's). */
  histogram(tag, step, values, { layout = 'uniform', buckets = 0, subrun = '', wallTime } = {}) {
    this._checkOpen();
    const layoutName = HISTOGRAM_LAYOUTS[layout];
    if (!layoutName) throw new TblogError(`tblog: unknown histogram layout "${layout}"`);
    this._push({
      tag, step, subrun, wallTime: wallTime ?? nowSeconds(),
      histogram: { values: toTensor(values), layout: layoutName, bucketCount: buckets },
    });
  }

  /** Buffers an image: raw uint8 pixels ({pixels, height, width, channels},
   *  row-major HWC, encoded to PNG by the daemon) or encoded bytes ({png}). */
  image(tag, step, image, { style = 'tensor', subrun = '', wallTime } = {}) {
    this._checkOpen();
    const styleName = IMAGE_STYLES[style];
    if (!styleName) throw new TblogError(`tblog: unknown image style "${style}"`);
    let source;
    if (image && image.png) {
      source = { encoded: Buffer.from(image.png) };
    } else if (image && image.pixels) {
      const { pixels, height, width, channels = 1 } = image;
      if (!(pixels instanceof Uint8Array)) throw new TblogError('tblog: image pixels must be a Uint8Array');
      source = { pixels: toTensor(pixels, [height, width, channels]) };
    } else {
      throw new TblogError('tblog: image needs {pixels, height, width, channels} or {png}');
    }
    this._push({ tag, step, subrun, wallTime: wallTime ?? nowSeconds(),
      image: { ...source, layout: 'PIXEL_LAYOUT_HWC', style: styleName } });
  }

  /** Buffers a Markdown text. */
  text(tag, step, markdown, { subrun = '', wallTime } = {}) {
    this._checkOpen();
    this._push({ tag, step, subrun, wallTime: wallTime ?? nowSeconds(), text: { markdown } });
  }

  /** Sends what is buffered and resolves once the daemon has written and
   *  flushed it (visible to TensorBoard). Rejects with a TblogError if the
   *  daemon rejected records since the last flush, or the stream failed. */
  async flush() {
    this._checkOpen();
    await this._flush();
  }

  /** Flushes, ends the Write stream and closes the run (`status`: the hparams
   *  session's end, e.g. "SESSION_STATUS_FAILURE"). Rejects like flush(); the
   *  run is closed and the channel released either way. */
  async close({ status = 'SESSION_STATUS_UNSPECIFIED' } = {}) {
    if (this._closed) return;
    let firstError = null;
    try {
      await this._flush();
    } catch (err) {
      firstError = err;
    }
    this._closed = true;
    if (this._timer) clearInterval(this._timer);
    this._call.end();
    await Promise.race([this._streamEnded, new Promise((r) => setTimeout(r, 10000).unref())]);
    try {
      await new Promise((resolve, reject) => {
        const deadline = new Date(Date.now() + 30000);
        this._client.closeRun({ runId: this.runId, status, writerId: this.writerId }, { deadline }, (err) => {
          if (err) reject(new TblogError(`tblog: CloseRun failed: ${err.details || err.message}`, { code: err.code }));
          else resolve();
        });
      });
    } catch (err) {
      firstError = firstError || err;
    }
    this._client.close();
    if (firstError) throw firstError;
  }

  _checkOpen() {
    if (this._closed) throw new TblogError('tblog: the writer is closed');
  }

  _push(record) {
    this._columns = null;
    this._records.push(record);
    this._bytes += payloadBytes(record);
    if (this._bytes >= BATCH_BYTES) this._send('FLUSH_MODE_NONE');
  }

  // Sends the buffer as the next batch (nothing when empty); returns its sequence.
  _send(flushMode) {
    if (this._records.length === 0 || this._failure) return 0;
    const request = {
      sequence: ++this._sequence,
      records: this._records,
      flush: flushMode,
    };
    if (!this._firstSent) {
      request.runId = this.runId;
      request.writerId = this.writerId;
      this._firstSent = true;
    }
    this._records = [];
    this._columns = null;
    this._bytes = 0;
    this._points = 0;
    this._call.write(request);
    return request.sequence;
  }

  async _flush() {
    const sequence = this._send('FLUSH_MODE_FLUSH');
    if (sequence > 0) {
      await this._waitFor(() => this._written >= sequence && this._flushed >= sequence);
    } else if (this._sequence > this._flushed && !this._failure) {
      // Everything was sent without a flush request: wait for the acks (they
      // carry the RecordErrors), then ask for a flush through the last batch.
      const through = this._sequence;
      await this._waitFor(() => this._written >= through);
      await new Promise((resolve, reject) => {
        this._client.flush({ runId: this.runId, writerId: this.writerId, throughSequence: through },
          { deadline: new Date(Date.now() + 60000) }, (err) => {
            if (err) reject(new TblogError(`tblog: Flush failed: ${err.details || err.message}`, { code: err.code }));
            else resolve();
          });
      });
      this._flushed = Math.max(this._flushed, through);
    }
    this._throwPending();
  }

  // Rejects with what the daemon refused since the last report.
  _throwPending() {
    if (this._errors.length > 0) {
      const errors = this._errors;
      this._errors = [];
      throw new TblogError(recordErrorMessage(errors), { code: errors[0].code, errors });
    }
    if (this._failure) throw this._failure;
  }

  // Resolves once `predicate` holds or the stream failed; rejects after
  // `timeoutMs` without an acknowledgement.
  _waitFor(predicate, timeoutMs = 120000) {
    if (predicate() || this._failure) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._waiters = this._waiters.filter((w) => w.resolve !== done);
        reject(new TblogError(`tblog: no acknowledgement from the daemon within ${timeoutMs} ms`,
          { code: grpc.status.DEADLINE_EXCEEDED }));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this._waiters.push({ predicate, resolve: done });
    });
  }

  _wake() {
    const waiting = this._waiters;
    this._waiters = [];
    for (const waiter of waiting) {
      if (this._failure || waiter.predicate()) waiter.resolve();
      else this._waiters.push(waiter);
    }
  }

  _onResponse(response) {
    this._written = Math.max(this._written, Number(response.writtenSequence));
    this._flushed = Math.max(this._flushed, Number(response.flushedSequence));
    if (response.errors && response.errors.length) this._errors.push(...response.errors);
    this._wake();
  }

  _onFailure(error) {
    if (!this._failure) this._failure = error;
    this._wake();
  }
}

module.exports = { Writer, TblogError, protoPath };
