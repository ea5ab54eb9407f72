'use strict';
// The sending half of a Writer: numbered batches on a Write stream, each kept
// until the daemon acknowledges it, and the reconnect that resends the rest.
//
// Contract (proto/tblog/v1/tblog.proto, "Retries" and WriteRequest.sequence):
// batches count from 1 per writer, consecutive. When the stream ends with a
// transient code (errors.js RETRYABLE_CODES) or NOT_FOUND (the daemon
// restarted and forgot the run; final after 3 in a row without progress), the
// stream waits (exponential backoff with jitter), makes a new client, reopens
// the run (OpenRun RESUME, same run_path and writer id), drops the batches
// that OpenRunResponse.writer_sequences says the daemon has, and resends the
// others in order on a new stream. The daemon writes each batch once, so
// nothing is lost or doubled. Any other code is final: every later flush() and
// close() rejects with it.
//
// Everything runs on the event loop: no locks; the state below changes only in
// the callbacks of one stream generation at a time.

const grpc = require('@grpc/grpc-js');
const { TblogError, isRetryable, codeName, rpcError } = require('./errors.js');

// NOT_FOUND on the stream after this many reopens in a row with no batch
// acknowledged in between is final (tblog.proto, "Retries"; the C++ client's
// kMaxRunNotFoundInARow).
const MAX_RUN_NOT_FOUND_IN_A_ROW = 3;

// When a sent batch may be forgotten: once written (handed to the OS: survives
// a daemon crash) or durable (fsynced: survives a machine crash).
const RETAIN_LEVELS = ['written', 'durable'];

// A unary call as a promise, with a deadline.
function unary(client, method, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: new Date(Date.now() + timeoutMs) }, (err, response) => {
      if (err) reject(err);
      else resolve(response);
    });
  });
}

class BatchStream {
  /** `makeClient()` makes a TBLog client with a connection of its own;
   *  `client` is the one the first OpenRun used, `opened` its answer.
   *  `resumeRequest` is the OpenRunRequest a reconnect sends (RESUME).
   *  Options: retainUntil ('written' | 'durable': when a batch may be
   *  forgotten), rpcTimeoutMs, initialBackoffMs, maxBackoffMs. */
  constructor({ makeClient, client, opened, writerId, resumeRequest, retainUntil = 'written',
    rpcTimeoutMs = 10000, initialBackoffMs = 100, maxBackoffMs = 5000 }) {
    this._makeClient = makeClient;
    this._client = client;
    this.writerId = writerId;
    this.runId = opened.runId;
    this.runPath = opened.runPath;
    this._resumeRequest = resumeRequest;
    this._retainUntil = retainUntil;
    this._rpcTimeoutMs = rpcTimeoutMs;
    this._initialBackoffMs = initialBackoffMs;
    this._maxBackoffMs = maxBackoffMs;

    this.sequence = 0;        // the last batch numbered
    this._unacked = [];       // {sequence, request, records, bytes, sent}, by sequence
    this.unackedBytes = 0;    // their bytes
    this.written = 0;         // acknowledgement levels (WriteResponse)
    this.durable = 0;
    this.flushed = 0;
    this._flushWanted = 0;    // the last batch sent with a flush request
    this._errors = [];        // RecordErrors not yet reported
    this.fatal = null;        // a final failure: the writer cannot go on
    this._call = null;        // the live Write stream, or null
    this._generation = 0;
    this._ending = false;     // close(): the stream is being half-closed
    this._abandoned = false;  // close() gave up: stop reconnecting
    this._runNotFound = 0;
    this._waiters = [];
    this._backoffTimer = null; // the reconnect's wait, which end() cuts short
    this._endBackoff = null;
    this.stats = { batches: 0, records: 0, resentBatches: 0, reconnects: 0 };

    // A writer id the run already knows (a restarted trainer with a fixed
    // writer id): continue after its sequences, or the daemon refuses the
    // batches (OUT_OF_RANGE, WriteRequest.sequence).
    this.sequence = this._daemonHas(opened);
    this.written = this.durable = this.flushed = this.sequence;
    this._startStream(this.sequence);
  }

  get target() {
    return this._makeClient.target;
  }

  /** Sequences and queues a batch of `records` (may be empty with a flush
   *  mode) of about `bytes`; sends it now when the stream is up. Returns its
   *  sequence. */
  send(records, flushMode = 'FLUSH_MODE_NONE', bytes = 0) {
    const batch = {
      bytes,
      sequence: ++this.sequence,
      request: { sequence: this.sequence, records, flush: flushMode },
      records: countRecords(records),
      sent: Boolean(this._call),
    };
    if (flushMode !== 'FLUSH_MODE_NONE') this._flushWanted = batch.sequence;
    this._unacked.push(batch);
    this.unackedBytes += bytes;
    this.stats.batches += 1;
    this.stats.records += batch.records;
    if (this._call) this._write(this._call, batch.request);
    return batch.sequence;
  }

  /** Batches and records (each scalar point one) sent but not acknowledged
   *  (as retainUntil says). */
  pending() {
    return { batches: this._unacked.length, records: this._unacked.reduce((n, b) => n + b.records, 0) };
  }

  /** Resolves once `predicate()` holds or the stream failed for good; rejects
   *  with DEADLINE_EXCEEDED after `timeoutMs` (default: no limit; the wait
   *  goes on across reconnects). */
  waitFor(predicate, timeoutMs = Infinity) {
    if (predicate() || this.fatal) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = { predicate, resolve, reject, timer: null };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          this._waiters = this._waiters.filter((w) => w !== waiter);
          const { batches, records } = this.pending();
          reject(new TblogError(`tblog: tblogd at ${this.target} did not acknowledge ${batches} batches ` +
            `(${records} records) within ${timeoutMs} ms`, { code: grpc.status.DEADLINE_EXCEEDED }));
        }, timeoutMs);
      }
      this._waiters.push(waiter);
    });
  }

  /** Throws (once) what the daemon refused since the last call, then the
   *  final failure, if any. */
  throwPending() {
    if (this._errors.length > 0) {
      const errors = this._errors;
      this._errors = [];
      throw new TblogError(recordErrorMessage(errors), { code: errors[0].code, errors });
    }
    if (this.fatal) throw this.fatal;
  }

  /** Ends the stream: half-closes it and waits (up to `timeoutMs`) for the
   *  daemon to end it too; stops any reconnect. A wait still pending (a
   *  flush() not awaited before close()) rejects with FAILED_PRECONDITION.
   *  The client stays open. */
  async end(timeoutMs = 5000) {
    this._ending = true;
    this._abandoned = true;
    if (this._endBackoff) this._endBackoff();
    const { batches } = this.pending();
    for (const waiter of this._waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new TblogError(`tblog: the writer was closed with ${batches} batches unacknowledged`,
        { code: grpc.status.FAILED_PRECONDITION }));
    }
    const call = this._call;
    this._call = null;
    if (!call) return;
    const ended = new Promise((resolve) => call.on('status', resolve));
    call.end();
    const timer = new Promise((resolve) => setTimeout(resolve, timeoutMs).unref());
    await Promise.race([ended, timer]);
    call.cancel();
  }

  /** CloseRun for this writer's hold. */
  closeRun(status) {
    return unary(this._client, 'closeRun', { runId: this.runId, status, writerId: this.writerId }, this._rpcTimeoutMs)
      .catch((err) => { throw rpcError('CloseRun', err); });
  }

  /** Closes the client (its connection). */
  closeClient() {
    this._client.close();
  }

  _daemonHas(opened) {
    return Number((opened.writerSequences || {})[this.writerId] || 0);
  }

  _write(call, request) {
    try {
      call.write(request);
    } catch (err) {
      // A stream that broke under us: its 'status' handler reconnects.
    }
  }

  // Opens a Write stream on the current client: binds it (run id and writer
  // id, no records), then sends every unacknowledged batch after `has` (what
  // the daemon reported it holds) in order.
  _startStream(has) {
    const generation = ++this._generation;
    const call = this._client.write();
    this._call = call;
    call.on('data', (response) => {
      if (generation === this._generation) this._onResponse(response);
    });
    call.on('error', () => {}); // reported by 'status'
    call.on('status', (status) => {
      if (generation === this._generation) this._onStreamEnd(status);
    });
    // Binds the stream at once, so this writer holds the run while it has
    // nothing to log yet (tblog.proto, WriteRequest and "Leases").
    this._write(call, { runId: this.runId, writerId: this.writerId });
    for (const batch of this._unacked) {
      if (batch.sequence <= has) continue;
      if (batch.sent) this.stats.resentBatches += 1;
      batch.sent = true;
      this._write(call, batch.request);
    }
  }

  _onResponse(response) {
    const written = Number(response.writtenSequence);
    if (written > this.written) {
      this.written = written;
      this._runNotFound = 0; // progress
    }
    this.durable = Math.max(this.durable, Number(response.durableSequence));
    this.flushed = Math.max(this.flushed, Number(response.flushedSequence));
    if (response.errors && response.errors.length) this._errors.push(...response.errors);
    this._release();
    this._wake();
  }

  // Forgets the batches the daemon holds (written, or durable when asked).
  _release() {
    const through = this._retainUntil === 'durable' ? this.durable : this.written;
    let n = 0;
    while (n < this._unacked.length && this._unacked[n].sequence <= through) this.unackedBytes -= this._unacked[n++].bytes;
    if (n > 0) this._unacked.splice(0, n);
  }

  _onStreamEnd(status) {
    this._call = null;
    if (this._ending) return;
    let code = status.code;
    if (code === grpc.status.OK) code = grpc.status.UNAVAILABLE; // the daemon ended it early
    const reopen = code === grpc.status.NOT_FOUND && ++this._runNotFound <= MAX_RUN_NOT_FOUND_IN_A_ROW;
    if (!reopen && !isRetryable(code)) {
      this._fail(new TblogError(`tblog: Write stream failed: ${codeName(code)}: ${status.details}`, { code }));
      return;
    }
    this._reconnect();
  }

  // OpenRun RESUME with backoff on fresh clients until the daemon answers, then
  // a new stream. Gives up on a final code, or when close() abandons it.
  async _reconnect() {
    let backoff = this._initialBackoffMs;
    for (;;) {
      // A wait in [backoff/2, backoff]: writers that lost one daemon do not
      // all come back in the same millisecond.
      await this._backoff(backoff * (0.5 + 0.5 * Math.random()));
      backoff = Math.min(backoff * 2, this._maxBackoffMs);
      if (this._abandoned || this.fatal) return;
      this._client.close();
      try {
        this._client = this._makeClient();
      } catch (err) {
        this._fail(err); // a TLS or token file that cannot be read any more
        return;
      }
      try {
        const opened = await unary(this._client, 'openRun', this._resumeRequest(this.runPath), this._rpcTimeoutMs);
        const has = await this._catchUp(opened);
        if (this._abandoned || this.fatal) return;
        this.stats.reconnects += 1;
        this._startStream(has);
        return;
      } catch (err) {
        if (!isRetryable(err.code)) {
          this._fail(rpcError(`reopening run ${this.runPath} at ${this.target}`, err));
          return;
        }
      }
      if (this._abandoned) return;
    }
  }

  // Waits `ms`, or until end() stops the reconnect.
  _backoff(ms) {
    return new Promise((resolve) => {
      this._endBackoff = () => {
        clearTimeout(this._backoffTimer);
        this._endBackoff = null;
        resolve();
      };
      this._backoffTimer = setTimeout(this._endBackoff, ms);
    });
  }

  // After a reopen: drops what the daemon has, and makes sure a flush (or, with
  // retainUntil 'durable', the durability) of batches the daemon already has
  // is done: their acknowledgement may have been lost with the old stream, and
  // they are not resent (WriteRequest.sequence). Returns the last sequence the
  // daemon has.
  async _catchUp(opened) {
    const has = this._daemonHas(opened);
    this.runId = opened.runId || this.runId;
    this.written = Math.max(this.written, has);
    let through = Math.min(has, this._flushWanted);
    let sync = false;
    if (this._retainUntil === 'durable' && this._unacked.length && this._unacked[0].sequence <= has) {
      through = has;
      sync = true;
    }
    if (through > this.flushed || (sync && through > this.durable)) {
      await unary(this._client, 'flush', { runId: this.runId, writerId: this.writerId, throughSequence: through, sync },
        this._rpcTimeoutMs);
      this.flushed = Math.max(this.flushed, through);
      if (sync) this.durable = Math.max(this.durable, through);
    }
    this._release();
    this._wake();
    return has;
  }

  _fail(error) {
    if (!this.fatal) this.fatal = error;
    this._wake();
  }

  _wake() {
    const waiting = this._waiters;
    this._waiters = [];
    for (const waiter of waiting) {
      if (this.fatal || waiter.predicate()) {
        clearTimeout(waiter.timer);
        waiter.resolve();
      } else {
        this._waiters.push(waiter);
      }
    }
  }
}

// Records as a user counts them: each scalar point of a ScalarColumns record.
function countRecords(records) {
  let count = 0;
  for (const record of records) count += record.scalars ? record.scalars.steps.length : 1;
  return count;
}

// "a rejected record" message from RecordErrors, naming each record.
function recordErrorMessage(errors) {
  const first = errors[0];
  let text = `tblog: record ${first.index} (tag "${first.tag}") of batch ${first.sequence} ` +
    `rejected (${codeName(first.code)}): ${first.message}`;
  if (errors.length > 1) text += ` (and ${errors.length - 1} more rejected records)`;
  return text;
}

module.exports = { BatchStream, RETAIN_LEVELS, unary };
