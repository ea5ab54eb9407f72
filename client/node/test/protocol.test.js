'use strict';
// What the Node client puts on the wire, checked against an in-process fake
// TBLog server (no daemon needed): the bind message, batch sequences, the
// scalar tag dictionary, tensor bytes, flush requests, error surfacing, and
// the reconnect contract of tblog.proto's "Retries" (which codes are retried,
// RESUME, resending after writer_sequences, rebasing a fixed writer id).

const test = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { Writer, TblogError, protoPath } = require('../src/index.js');

function loadService() {
  const definition = protoLoader.loadSync(protoPath(), {
    keepCase: false, longs: Number, enums: String, bytes: Buffer, defaults: true, oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).tblog.v1.TBLog.service;
}

const isBind = (request) => request.records.length === 0 && request.sequence === 0 &&
  request.flush === 'FLUSH_MODE_NONE';

// A fake daemon: records every OpenRun, bind and batch; acknowledges batches
// in order; rejects records whose tag starts with "bad" (INVALID_ARGUMENT),
// like tblogd's validation would. `hooks.openRun(request)` may return an
// error ({code, details}) or the writer_sequences to answer; `hooks.batch(
// request, call, streamIndex)` may end the stream itself (returning true).
async function startFake(hooks = {}) {
  const state = { opens: [], binds: [], requests: [], closed: [], flushes: [], streams: 0 };
  const server = new grpc.Server();
  server.addService(loadService(), {
    openRun(call, callback) {
      state.opens.push(call.request);
      const answer = hooks.openRun ? hooks.openRun(call.request) : undefined;
      if (answer && answer.code) {
        callback(answer);
        return;
      }
      const runPath = call.request.runPath || 'fake/run';
      callback(null, { runId: runPath, runPath, directory: `/logs/${runPath}`, writerSequences: answer || {} });
    },
    write(call) {
      const index = state.streams++;
      call.on('data', (request) => {
        // The stream's bind-only first message: tblogd answers nothing to it.
        if (isBind(request)) {
          state.binds.push(request);
          return;
        }
        if (hooks.batch && hooks.batch(request, call, index)) return;
        state.requests.push(request);
        const errors = [];
        request.records.forEach((record, i) => {
          if (record.tag.startsWith('bad')) {
            errors.push({ sequence: request.sequence, index: i, tag: record.tag, code: 3,
              message: `record ${i}: tag "${record.tag}" is not allowed here` });
          }
        });
        call.write({
          writtenSequence: request.sequence,
          flushedSequence: request.flush === 'FLUSH_MODE_NONE' ? 0 : request.sequence,
          errors,
        });
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
    flush(call, callback) {
      state.flushes.push(call.request);
      callback(null, {});
    },
    closeRun(call, callback) {
      state.closed.push(call.request);
      callback(null, { run: { runId: call.request.runId } });
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
      (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });
  return { address: `127.0.0.1:${port}`, ...state, state, stop: () => server.forceShutdown() };
}

const fast = { sendIntervalMs: 0, initialBackoffMs: 10, maxBackoffMs: 50 };

test('a bind message, then consecutive sequences', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, runPath: 'a', ...fast });
  writer.scalar('loss', 1, 0.5);
  writer.scalar('acc', 1, 0.25, { subrun: 'validation' });
  writer.scalar('loss', 2, 0.125);
  await writer.flush();
  writer.text('notes', 3, 'hi');
  await writer.flush();
  await writer.close({ status: 'SESSION_STATUS_FAILURE' });

  assert.deepEqual(fake.binds.map((b) => [b.runId, b.writerId]), [['a', writer.writerId]]);
  assert.equal(fake.opens[0].writerId, writer.writerId);
  assert.equal(fake.requests.length, 2);
  const [first, second] = fake.requests;
  assert.equal(first.sequence, 1);
  assert.equal(first.flush, 'FLUSH_MODE_FLUSH');
  assert.equal(second.sequence, 2);

  assert.equal(first.records.length, 1);
  const columns = first.records[0].scalars;
  assert.deepEqual(columns.tags.map((c) => [c.tag, c.subrun]), [['loss', ''], ['acc', 'validation']]);
  assert.deepEqual(columns.tagIndex, [0, 1, 0]);
  assert.deepEqual(columns.steps, [1, 1, 2]);
  assert.deepEqual(columns.values, [0.5, 0.25, 0.125]);
  assert.equal(columns.wallTimes.length, 3);

  assert.equal(second.records[0].text.markdown, 'hi');
  assert.deepEqual(fake.closed.map((c) => [c.runId, c.status, c.writerId]),
    [['a', 'SESSION_STATUS_FAILURE', writer.writerId]]);
});

test('records keep call order; tensors are little-endian', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, ...fast });
  writer.scalar('s', 0, 1);
  writer.histogram('h', 0, Float32Array.from([1.5, -2]), { buckets: 7 });
  writer.histogram('e', 0, [3], { layout: 'exponential' });
  writer.image('i', 0, { pixels: Uint8Array.from([1, 2, 3, 4, 5, 6]), height: 1, width: 2, channels: 3 });
  writer.scalar('s', 1, 2);
  writer.scalar('t', 1, 2, { style: 'simple_value' });
  writer.histogram('i32', 0, { data: Int32Array.from([1, -2, 3, 4]), shape: [2, 2] });
  await writer.close();

  const records = fake.requests[0].records;
  assert.deepEqual(records.map((r) => r.kind),
    ['scalars', 'histogram', 'histogram', 'image', 'scalars', 'scalars', 'histogram']);
  const h = records[1].histogram;
  assert.equal(h.values.dtype, 'DTYPE_FLOAT32');
  assert.deepEqual(h.values.shape, [2]);
  const expected = Buffer.alloc(8);
  expected.writeFloatLE(1.5, 0);
  expected.writeFloatLE(-2, 4);
  assert.deepEqual(h.values.data, expected);
  assert.equal(h.bucketCount, 7);
  assert.equal(records[2].histogram.layout, 'HISTOGRAM_LAYOUT_EXPONENTIAL');
  assert.equal(records[2].histogram.values.dtype, 'DTYPE_FLOAT64');
  assert.equal(records[2].histogram.values.data.readDoubleLE(0), 3);
  const image = records[3].image;
  assert.equal(image.pixels.dtype, 'DTYPE_UINT8');
  assert.deepEqual(image.pixels.shape, [1, 2, 3]);
  assert.deepEqual([...image.pixels.data], [1, 2, 3, 4, 5, 6]);
  // A change of scalar style starts a new ScalarColumns record.
  assert.equal(records[4].scalars.style, 'SCALAR_STYLE_TENSOR');
  assert.equal(records[5].scalars.style, 'SCALAR_STYLE_SIMPLE_VALUE');
  assert.equal(records[6].histogram.values.dtype, 'DTYPE_INT32');
  assert.deepEqual(records[6].histogram.values.shape, [2, 2]);
  assert.equal(records[6].histogram.values.data.readInt32LE(4), -2);
});

test('arguments that cannot be sent throw at the call', async (t) => {
  const fake = await startFake();
  const writer = await Writer.open({ address: fake.address, ...fast });
  t.after(async () => {
    await writer.close();
    fake.stop();
  });
  assert.throws(() => writer.scalar('x', 1.5, 1), /step must be an integer/);
  assert.throws(() => writer.histogram('h', 0, 'nope'), TblogError);
  assert.throws(() => writer.histogram('h', 0, [[1, 2], [3]]), /rectangular/);
  assert.throws(() => writer.images('i', 0, { pixels: new Uint8Array(4), shape: [2, 2, 1], layout: 'HWC' }), /layout HWC/);
  assert.throws(() => writer.embedding('e', 0, [1, 2, 3]), /2-D/);
  assert.throws(() => writer.hparams({ lr: null }), /must be a number, string or boolean/);
  assert.throws(() => writer.customScalars({ c: { chart: ['Pie', []] } }), /Multiline/);
  // Refused options open nothing.
  await assert.rejects(Writer.open({ address: fake.address, overflow: 'block' }), /overflow must be one of/);
  await assert.rejects(Writer.open({ address: fake.address, retainUntil: 'flushed' }), /retainUntil must be one of/);
  assert.equal(fake.opens.length, 1);
});

test('a RecordError rejects the next flush once, with the server message', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, ...fast });
  writer.scalar('ok', 0, 1);
  writer.text('bad/tag', 0, 'x');
  await assert.rejects(writer.flush(), (err) => {
    assert.ok(err instanceof TblogError);
    assert.equal(err.code, 3);
    assert.match(err.message, /tag "bad\/tag" is not allowed here/);
    assert.match(err.message, /INVALID_ARGUMENT/);
    assert.equal(err.errors[0].index, 1);
    return true;
  });
  writer.text('fine', 1, 'y');
  await writer.flush();
  await writer.close();
});

test('a transient code: reopen with RESUME, resend after writer_sequences', async (t) => {
  let failed = false;
  const fake = await startFake({
    // The first stream takes batch 1, then fails without acknowledging 2 and 3.
    batch(request, call, stream) {
      if (stream === 0 && request.sequence === 2 && !failed) {
        failed = true;
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'restarting' });
        return true;
      }
      return stream === 0 && request.sequence > 2;
    },
    // The reopened run says the daemon has batch 1 of this writer.
    openRun: (request) => (request.mode === 'OPEN_MODE_RESUME' ? { [request.writerId]: 1 } : undefined),
  });
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, runPath: 'r', ...fast });
  writer.scalar('x', 1, 1);
  await writer.flush();
  writer.scalar('x', 2, 2);
  writer._send('FLUSH_MODE_NONE'); // batch 2, lost with the stream
  writer.scalar('x', 3, 3);
  await writer.flush({ timeoutMs: 10000 });
  await writer.close();

  assert.equal(fake.opens.length, 2);
  assert.equal(fake.opens[1].mode, 'OPEN_MODE_RESUME');
  assert.equal(fake.opens[1].runPath, 'r');
  assert.equal(fake.opens[1].writerId, writer.writerId);
  assert.equal(fake.binds.length, 2);
  assert.deepEqual(fake.state.requests.map((r) => r.sequence), [1, 2, 3]);
  assert.equal(writer.stats().reconnects, 1);
  assert.ok(writer.stats().resentBatches >= 1);
});

test('a final code ends the writer: flush and close reject with it, no reconnect', async (t) => {
  const fake = await startFake({
    batch(request, call) {
      call.emit('error', { code: grpc.status.OUT_OF_RANGE, details: 'expected sequence 5, got 1' });
      return true;
    },
  });
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, ...fast });
  writer.scalar('x', 0, 1);
  await assert.rejects(writer.flush(), (err) => err.code === grpc.status.OUT_OF_RANGE && /expected sequence 5/.test(err.message));
  await assert.rejects(writer.close(), (err) => err.code === grpc.status.OUT_OF_RANGE);
  assert.equal(fake.opens.length, 1);
  assert.equal(fake.closed.length, 0); // the hold is left to expire
});

test('a fixed writer id continues after the sequences the run has', async (t) => {
  const fake = await startFake({ openRun: (request) => ({ [request.writerId]: 7 }) });
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, writerId: 'trainer-0', ...fast });
  writer.scalar('x', 0, 1);
  await writer.close();
  assert.deepEqual(fake.state.requests.map((r) => r.sequence), [8]);
});

test('NOT_FOUND from the reopening OpenRun is final', async (t) => {
  let opens = 0;
  const fake = await startFake({
    openRun: () => (++opens > 1 ? { code: grpc.status.NOT_FOUND, details: 'run_path "a" does not exist' } : undefined),
    batch(request, call) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'gone' });
      return true;
    },
  });
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, runPath: 'a', ...fast });
  writer.scalar('x', 0, 1);
  await assert.rejects(writer.flush({ timeoutMs: 10000 }),
    (err) => err.code === grpc.status.NOT_FOUND && /reopening run a/.test(err.message));
  await writer.close().catch(() => {});
});

test('an unreachable daemon: flush and close give up after their timeout', async (t) => {
  const fake = await startFake();
  const writer = await Writer.open({ address: fake.address, ...fast });
  fake.stop();
  writer.scalar('x', 0, 1);
  await assert.rejects(writer.flush({ timeoutMs: 300 }),
    (err) => err.code === grpc.status.DEADLINE_EXCEEDED && /did not acknowledge 1 batches \(1 records\)/.test(err.message));
  const waiting = writer.flush(); // no limit: close() ends it
  await assert.rejects(writer.close({ timeoutMs: 300 }), (err) => err.code === grpc.status.DEADLINE_EXCEEDED);
  await assert.rejects(waiting, (err) => err.code === grpc.status.FAILED_PRECONDITION && /closed/.test(err.message));
  assert.throws(() => writer.scalar('x', 1, 1), /closed/);
});

test('the address: TBLOG_ADDRESS, else 127.0.0.1:6066, named when unreachable', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const saved = process.env.TBLOG_ADDRESS;
  t.after(() => {
    if (saved === undefined) delete process.env.TBLOG_ADDRESS;
    else process.env.TBLOG_ADDRESS = saved;
  });
  process.env.TBLOG_ADDRESS = fake.address;
  const writer = await Writer.open({ runPath: 'env', ...fast });
  await writer.close();
  assert.equal(fake.opens.length, 1);

  process.env.TBLOG_ADDRESS = 'unix:/nonexistent/tblogd.sock';
  const started = Date.now();
  await assert.rejects(Writer.open({ runPath: 'x' }), (err) => {
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.match(err.message, /OpenRun at unix:\/nonexistent\/tblogd.sock failed/);
    assert.match(err.message, /TBLOG_ADDRESS/);
    return true;
  });
  assert.ok(Date.now() - started < 8000, 'an unreachable daemon fails fast');
  delete process.env.TBLOG_ADDRESS;
  assert.equal(require('../src/index.js').defaultAddress(), '127.0.0.1:6066');
});

test('index.d.ts declares every public Writer method and export', () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const declarations = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');
  const writer = declarations.slice(declarations.indexOf('export class Writer'));
  const methods = Object.getOwnPropertyNames(Writer.prototype).filter((name) => name !== 'constructor' && !name.startsWith('_'));
  for (const name of [...methods, 'open']) assert.match(writer, new RegExp(`\\n  (static )?${name}\\(`), `Writer.${name}`);
  for (const name of Object.keys(require('../src/index.js'))) {
    assert.match(declarations, new RegExp(`export (class|const|function) ${name}\\b`), name);
  }
});

// A fake whose acknowledgements wait until release() (a daemon that is slow):
// it then answers what it holds and every later batch at once, until hold().
async function startSlowFake() {
  const held = [];
  let holding = true;
  const fake = await startFake({
    batch(request, call) {
      if (!holding) return false;
      held.push({ request, call });
      return true;
    },
  });
  fake.release = () => {
    holding = false;
    for (const { request, call } of held.splice(0)) {
      fake.state.requests.push(request);
      call.write({ writtenSequence: request.sequence, flushedSequence: request.sequence, errors: [] });
    }
  };
  fake.hold = () => { holding = true; };
  return fake;
}

test('the buffer bound: overflow "throw" refuses records until the daemon catches up', async (t) => {
  const fake = await startSlowFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, ...fast, maxBufferBytes: 4000, overflow: 'throw' });
  for (let step = 0; step < 100; ++step) writer.scalar('x', step, step); // about 2400 bytes
  const flushed = writer.flush();                                       // sent, not acknowledged
  for (let step = 100; step < 150; ++step) writer.scalar('x', step, step);
  assert.throws(() => writer.histogram('h', 0, new Float32Array(1000)),
    (err) => err.code === grpc.status.RESOURCE_EXHAUSTED && /buffer is full.*histogram|record "h" not buffered/.test(err.message));
  fake.release();
  await flushed;
  writer.histogram('h', 0, new Float32Array(100)); // room again
  await writer.close();
  assert.equal(writer.stats().dropped, 0);
});

test('the buffer bound: overflow "drop-newest" counts the dropped records and reports them once', async (t) => {
  const fake = await startSlowFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, ...fast, maxBufferBytes: 4000 });
  for (let step = 0; step < 100; ++step) writer.scalar('x', step, step);
  const flushed = writer.flush();
  for (let step = 100; step < 300; ++step) writer.scalar('x', step, step);
  const dropped = writer.stats().dropped;
  assert.ok(dropped > 0 && dropped < 200, `dropped ${dropped}`);
  fake.release();
  await assert.rejects(flushed, (err) => err.code === grpc.status.RESOURCE_EXHAUSTED &&
    err.message.includes(`${dropped} records dropped`));
  await writer.close(); // reported once
  const sent = fake.state.requests.flatMap((r) => r.records).reduce((n, r) => n + (r.scalars ? r.scalars.steps.length : 1), 0);
  assert.equal(sent, 300 - dropped);
});
