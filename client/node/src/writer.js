'use strict';
// The public Writer: opens a run, buffers what the training code logs, and
// hands batches to a BatchStream (stream.js), which delivers them across
// reconnects and daemon restarts.

const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');

const { TblogError, codeName } = require('./errors.js');
const { clientFactory, defaultAddress } = require('./connection.js');
const { BatchStream, RETAIN_LEVELS, unary } = require('./stream.js');
const records = require('./records.js');

// A batch is sent once its records pass this many bytes or scalar points.
const BATCH_BYTES = 4 << 20;
const BATCH_POINTS = 1 << 16;
// Buffered + unacknowledged bytes (the C++ client's max_buffer_bytes; larger
// by default, since a Node loop cannot wait for room as a C++ one does), and
// the policies past it. Node cannot block a logging call, so there is no
// "block": 'drop-newest' drops the record and counts it, reported by the
// next flush()/close(); 'throw' throws RESOURCE_EXHAUSTED from the call.
const DEFAULT_MAX_BUFFER_BYTES = 256 << 20;
const OVERFLOW_POLICIES = ['drop-newest', 'throw'];
// Bytes a buffered scalar point is counted for.
const POINT_BYTES = 24;

// The hint of a first OpenRun that could not reach the daemon.
const UNREACHABLE_HINT = 'is tblogd running there? Pass `address` or set TBLOG_ADDRESS ' +
  '(host:port, or unix:/path/to/tblogd.sock)';

/** Writes one run. The logging methods (scalar, histogram, image, ...) only
 *  buffer: they throw a TblogError for arguments that cannot be sent, never
 *  for the daemon's reasons. flush() and close() report what the daemon
 *  refused. Delivery survives daemon restarts and broken connections (see
 *  stream.js). Not for use after close(). */
class Writer {
  constructor(stream, opened, options) {
    this._stream = stream;
    this.runId = opened.runId;
    this.runPath = opened.runPath;
    this.directory = opened.directory;
    this.resumed = Boolean(opened.resumed);
    this.writerId = stream.writerId;
    // The buffer: records in call order; scalars merge into the ScalarColumns
    // record at the end of the list while nothing else follows it.
    this._records = [];
    this._columns = null; // { record, tagIndex: Map }
    this._bytes = 0;
    this._points = 0;
    this._closed = false;
    this._closeTimeoutMs = options.closeTimeoutMs ?? 30000;
    // The bound on buffered + unacknowledged bytes, and what a logging call
    // does past it (see open()).
    this._maxBufferBytes = options.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    this._overflow = options.overflow;
    this._dropped = 0;          // records dropped, all told
    this._droppedUnreported = 0; // ... not yet reported by flush()/close()
    this._droppedMessage = '';

    const interval = options.sendIntervalMs ?? 1000;
    this._timer = interval > 0 ? setInterval(() => this._send('FLUSH_MODE_NONE'), interval) : null;
    if (this._timer) this._timer.unref();
  }

  /** Opens a run and its Write stream. `address`: "unix:/path", "/path" or
   *  "host:port" (default $TBLOG_ADDRESS, else 127.0.0.1:6066). `runPath`
   *  picks the directory (relative to the daemon's logdir) instead of
   *  <experiment>/<timestamp>[-<name>]; `hparams` maps names to numbers,
   *  strings or booleans (`hparamMetrics`, `hparamDomains`: see
   *  records.toHParams). `writerId`: fixed to continue a run's sequences
   *  after a restart of this process (default: a random UUID). `tls` ({ca,
   *  cert, key, serverName, enabled}: PEM file paths) and `token` default to
   *  the environment (README). `maxBufferBytes` (default 256 MiB) bounds the
   *  bytes buffered and sent but not acknowledged (what waits while the
   *  daemon is away); past it a logging call drops its record
   *  (`overflow: 'drop-newest'`, the default: counted in stats().dropped and
   *  reported by the next flush()/close()) or throws RESOURCE_EXHAUSTED
   *  (`overflow: 'throw'`). Rejects at once with the daemon's message, or
   *  with the address when the daemon cannot be reached. */
  static async open({
    address = defaultAddress(), experiment = '', name = '', runPath = '', hparams, hparamMetrics, hparamDomains,
    labels = {}, mode = 'OPEN_MODE_DEFAULT', purgeStep, filenameSuffix = '', writerId, sendIntervalMs,
    tls, token, retainUntil, rpcTimeoutMs = 10000, closeTimeoutMs, initialBackoffMs, maxBackoffMs,
    maxBufferBytes, overflow = 'drop-newest',
  } = {}) {
    // Options are checked before the run is opened: a refused one holds nothing.
    if (!OVERFLOW_POLICIES.includes(overflow)) {
      throw new TblogError(`tblog: overflow must be one of ${OVERFLOW_POLICIES.join(', ')}, not "${overflow}"`);
    }
    if (retainUntil !== undefined && !RETAIN_LEVELS.includes(retainUntil)) {
      throw new TblogError(`tblog: retainUntil must be one of ${RETAIN_LEVELS.join(', ')}, not "${retainUntil}"`);
    }
    const makeClient = clientFactory(address, tls, token);
    const client = makeClient();
    // The writer id is chosen here so that OpenRun names it: the writer holds
    // the run until close() releases it (tblog.proto, "Leases").
    writerId = writerId || crypto.randomUUID();
    const request = {
      experiment, name, runPath, mode, labels, writerId, filenameSuffix,
      hparams: records.toHParams(hparams, { metrics: hparamMetrics, domains: hparamDomains }),
    };
    if (purgeStep !== undefined) request.purgeStep = purgeStep;
    let opened;
    try {
      opened = await unary(client, 'openRun', request, rpcTimeoutMs);
    } catch (err) {
      client.close();
      const unreachable = err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED;
      throw new TblogError(`tblog: OpenRun at ${makeClient.target} failed: ${codeName(err.code)}: ` +
        `${err.details || err.message}${unreachable ? ` (${UNREACHABLE_HINT})` : ''}`, { code: err.code });
    }
    // A reconnect reopens the same directory: no hparams or purge step again.
    const resumeRequest = (path) => ({ runPath: path, mode: 'OPEN_MODE_RESUME', labels, writerId });
    const stream = new BatchStream({
      makeClient, client, opened, writerId, resumeRequest, retainUntil, rpcTimeoutMs, initialBackoffMs, maxBackoffMs,
    });
    return new Writer(stream, opened, { sendIntervalMs, closeTimeoutMs, maxBufferBytes, overflow });
  }

  /** Buffers one scalar point. `subrun` names a sub-run ("validation");
   *  `style`: "tensor" (TensorBoard 2) or "simple_value" (PyTorch's). Sent in
   *  ScalarColumns records, or as a Scalar record when `displayName` or
   *  `description` is given. */
  scalar(tag, step, value, options = {}) {
    this._checkOpen();
    if (options.displayName || options.description) {
      this._push(records.scalarRecord(tag, step, value, options));
      return;
    }
    const { subrun = '', wallTime } = options;
    if (typeof tag !== 'string') throw new TblogError('tblog: a tag must be a string');
    if (!Number.isSafeInteger(step)) throw new TblogError(`tblog: tag "${tag}": step must be an integer, got ${step}`);
    if (typeof value !== 'number') throw new TblogError(`tblog: scalar "${tag}": value must be a number`);
    const style = records.scalarStyle(options.style);
    if (!this._admit(POINT_BYTES + tag.length + subrun.length, `scalar "${tag}"`)) return;
    if (!this._columns || this._columns.record.scalars.style !== style) {
      const record = { tag: '', step: 0, scalars: { tags: [], tagIndex: [], steps: [], values: [], wallTimes: [], style } };
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
      this._bytes += tag.length + subrun.length;
    }
    columns.tagIndex.push(index);
    columns.steps.push(step);
    columns.values.push(value);
    columns.wallTimes.push(wallTime ?? records.nowSeconds());
    this._bytes += POINT_BYTES;
    this._points += 1;
    if (this._points >= BATCH_POINTS) this._send('FLUSH_MODE_NONE');
  }

  /** Buffers a histogram of `values` (a typed array, number[] or {data,
   *  shape}); the daemon computes the buckets. layout: "uniform" (default,
   *  `buckets` equal-width buckets, 0 = 30) or "exponential" (PyTorch's). */
  histogram(tag, step, values, options = {}) {
    this._checkOpen();
    this._push(records.histogramRecord(tag, step, values, options));
  }

  /** Buffers an image: raw pixels ({pixels, height, width, channels}, HWC, or
   *  {pixels, shape, layout: "HWC" | "CHW"}; Uint8Array 0-255 or float 0-1;
   *  encoded to PNG by the daemon) or encoded bytes ({png} or {jpeg}).
   *  `style`: "tensor" (TensorBoard 2) or "summary_image" (PyTorch's). */
  image(tag, step, image, options = {}) {
    this._checkOpen();
    this._push(records.imageRecord(tag, step, image, options, false));
  }

  /** Buffers a batch of images: {pixels, count, height, width, channels}
   *  (NHWC) or {pixels, shape, layout: "NHWC" | "NCHW"}; up to `maxOutputs`
   *  (default 3) are kept ("tensor" style) or all are tiled into one grid
   *  ("summary_image", as PyTorch's add_images). */
  images(tag, step, batch, options = {}) {
    this._checkOpen();
    this._push(records.imageRecord(tag, step, batch, options, true));
  }

  /** Buffers a text: Markdown, or a table (string[] or string[][]).
   *  `torchStyle`: PyTorch's add_text layout ("<tag>/text_summary"). */
  text(tag, step, content, options = {}) {
    this._checkOpen();
    this._push(records.textRecord(tag, step, content, options));
  }

  /** Buffers audio: float PCM in [-1, 1] (Float32Array or number[];
   *  interleaved when `channels` > 1) at `sampleRate` (default 44100); the
   *  daemon encodes WAV. */
  audio(tag, step, samples, options = {}) {
    this._checkOpen();
    this._push(records.audioRecord(tag, step, samples, options));
  }

  /** Buffers a precision-recall curve: {labels, predictions[, weights]} (the
   *  daemon counts at `numThresholds`, default 127) or counts per threshold
   *  {truePositives, falsePositives, trueNegatives, falseNegatives}. */
  prCurve(tag, step, data, options = {}) {
    this._checkOpen();
    this._push(records.prCurveRecord(tag, step, data, options));
  }

  /** Buffers an hparams session for the run (or `subrun`): `values` maps
   *  names to numbers, strings or booleans; options `metrics` (scalar tags),
   *  `domains`, `torchStyle` (PyTorch's add_hparams layout). Usually given to
   *  open() instead. */
  hparams(values, options = {}) {
    this._checkOpen();
    this._push(records.hparamsRecord(values, options));
  }

  /** Buffers a model graph: a serialized tensorflow.GraphDef (Buffer), or
   *  {nodes: [{name, op, inputs, device, attrs}]} that the daemon turns into
   *  one. */
  graph(graph, options = {}) {
    this._checkOpen();
    this._push(records.graphRecord(graph, options));
  }

  /** Buffers an embedding for the projector: a [N, D] matrix (number[][] or
   *  {data: Float32Array, shape: [N, D]}), with optional `metadata` (one
   *  label per row, or rows of `metadataHeader` columns). */
  embedding(tag, step, matrix, options = {}) {
    this._checkOpen();
    this._push(records.embeddingRecord(tag, step, matrix, options));
  }

  /** Buffers the custom-scalars dashboard's layout: PyTorch's form
   *  ({category: {chart: ["Multiline", [tags]] | ["Margin", [value, lower,
   *  upper]]}}) or the proto's ({categories: [...]}). */
  customScalars(layout, options = {}) {
    this._checkOpen();
    this._push(records.customScalarsRecord(layout, options));
  }

  /** Buffers any tblog.v1.Record as is (proto-loader's camelCase object), for
   *  what the methods above do not cover. wallTime 0 means the receive time. */
  record(record) {
    this._checkOpen();
    this._push({ ...record });
  }

  /** Sends what is buffered and resolves once the daemon has written and
   *  flushed it (visible to TensorBoard; fsynced too with `sync`). Waits
   *  across reconnects (up to `timeoutMs`, default no limit). Rejects with a
   *  TblogError if the daemon rejected records since the last flush, or the
   *  stream failed for good. */
  async flush({ sync = false, timeoutMs } = {}) {
    this._checkOpen();
    await this._flush(sync, timeoutMs);
  }

  /** Flushes (waiting up to `timeoutMs`, default closeTimeoutMs of open(), 30
   *  s, for the daemon), ends the Write stream and releases this writer's hold
   *  on the run (CloseRun; the run closes with its last writer, `status` being
   *  the hparams session's end, e.g. "SESSION_STATUS_FAILURE"). Rejects like
   *  flush(), or when records could not be delivered in time; the connection
   *  is released either way. Idempotent. */
  async close({ status = 'SESSION_STATUS_UNSPECIFIED', timeoutMs = this._closeTimeoutMs } = {}) {
    if (this._closed) return;
    let firstError = null;
    try {
      await this._flush(false, timeoutMs);
    } catch (err) {
      firstError = err;
    }
    this._closed = true;
    if (this._timer) clearInterval(this._timer);
    const stream = this._stream;
    await stream.end();
    // A writer that failed for good, or could not deliver everything, leaves
    // its hold to expire, as the C++ and Python clients do; rejected or
    // dropped records do not keep it from releasing the run.
    if (!stream.fatal && stream.written >= stream.sequence) {
      try {
        await stream.closeRun(status);
      } catch (err) {
        firstError = err;
      }
    }
    stream.closeClient();
    if (firstError) throw firstError;
  }

  /** Counters: batches and records (each scalar point one) sent, batches
   *  resent, reconnects, records dropped by the buffer's bound. */
  stats() {
    return { ...this._stream.stats, dropped: this._dropped };
  }

  _checkOpen() {
    if (this._closed) throw new TblogError('tblog: the writer is closed');
  }

  // True when `bytes` more fit the buffer's bound; otherwise applies the
  // overflow policy: false (dropped) or a throw.
  _admit(bytes, what) {
    if (this._bytes + this._stream.unackedBytes + bytes <= this._maxBufferBytes) return true;
    const message = `tblog: the buffer is full (maxBufferBytes ${this._maxBufferBytes}): ` +
      `tblogd at ${this._stream.target} is unreachable or slower than the training loop`;
    if (this._overflow === 'throw') {
      throw new TblogError(`${message}; ${what} not buffered`, { code: grpc.status.RESOURCE_EXHAUSTED });
    }
    this._dropped += 1;
    this._droppedUnreported += 1;
    this._droppedMessage = message;
    return false;
  }

  _push(record) {
    const bytes = records.recordBytes(record);
    if (!this._admit(bytes, `record "${record.tag}"`)) return;
    this._columns = null;
    this._records.push(record);
    this._bytes += bytes;
    if (this._bytes >= BATCH_BYTES) this._send('FLUSH_MODE_NONE');
  }

  // Hands the buffer to the stream as the next batch (an empty batch when it
  // carries a flush request); returns its sequence, 0 when nothing was sent.
  _send(flushMode) {
    if ((this._records.length === 0 && flushMode === 'FLUSH_MODE_NONE') || this._stream.fatal) return 0;
    const batch = this._records;
    const bytes = this._bytes;
    this._records = [];
    this._columns = null;
    this._bytes = 0;
    this._points = 0;
    return this._stream.send(batch, flushMode, bytes);
  }

  async _flush(sync, timeoutMs) {
    const stream = this._stream;
    if (this._records.length > 0 || stream.sequence > stream.flushed || sync) {
      const sequence = this._send(sync ? 'FLUSH_MODE_SYNC' : 'FLUSH_MODE_FLUSH');
      if (sequence > 0) {
        await stream.waitFor(() => stream.written >= sequence && stream.flushed >= sequence, timeoutMs);
      }
    }
    if (this._droppedUnreported > 0) {
      const dropped = this._droppedUnreported;
      this._droppedUnreported = 0;
      throw new TblogError(`${this._droppedMessage}: ${dropped} records dropped`, { code: grpc.status.RESOURCE_EXHAUSTED });
    }
    stream.throwPending();
  }
}

module.exports = { Writer };
