'use strict';
// What the Node client puts on the wire, checked against an in-process fake
// TBLog server (no daemon needed): batch sequences, writer id, the scalar
// tag dictionary, tensor bytes, flush requests, and error surfacing.

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

// A fake daemon: records every WriteRequest; rejects records whose tag starts
// with "bad" (INVALID_ARGUMENT), like tblogd's validation would.
async function startFake() {
  const requests = [];
  const closed = [];
  const server = new grpc.Server();
  server.addService(loadService(), {
    openRun(call, callback) {
      const runPath = call.request.runPath || 'fake/run';
      callback(null, { runId: runPath, runPath, directory: `/logs/${runPath}` });
    },
    write(call) {
      let written = 0;
      call.on('data', (request) => {
        // The stream's bind-only first message: tblogd answers nothing to it.
        if (request.records.length === 0 && request.sequence === 0 &&
            request.flush === 'FLUSH_MODE_NONE') return;
        requests.push(request);
        written = request.sequence;
        const errors = [];
        request.records.forEach((record, index) => {
          if (record.tag.startsWith('bad')) {
            errors.push({ sequence: request.sequence, index, tag: record.tag, code: 3,
              message: `record ${index}: tag "${record.tag}" is not allowed here` });
          }
        });
        call.write({
          writtenSequence: written,
          flushedSequence: request.flush === 'FLUSH_MODE_NONE' ? 0 : request.sequence,
          errors,
        });
      });
      call.on('end', () => call.end());
    },
    flush(call, callback) { callback(null, {}); },
    closeRun(call, callback) {
      closed.push(call.request);
      callback(null, { run: { runId: call.request.runId } });
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
      (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });
  return { address: `127.0.0.1:${port}`, requests, closed, stop: () => server.forceShutdown() };
}

test('batches carry the writer id once and consecutive sequences', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, runPath: 'a', sendIntervalMs: 0 });
  writer.scalar('loss', 1, 0.5);
  writer.scalar('acc', 1, 0.25, { subrun: 'validation' });
  writer.scalar('loss', 2, 0.125);
  await writer.flush();
  writer.text('notes', 3, 'hi');
  await writer.flush();
  await writer.close({ status: 'SESSION_STATUS_FAILURE' });

  assert.equal(fake.requests.length, 2);
  const [first, second] = fake.requests;
  assert.equal(first.runId, 'a');
  assert.equal(first.writerId, writer.writerId);
  assert.equal(first.sequence, 1);
  assert.equal(first.flush, 'FLUSH_MODE_FLUSH');
  assert.equal(second.sequence, 2);
  assert.equal(second.writerId, '');

  assert.equal(first.records.length, 1);
  const columns = first.records[0].scalars;
  assert.deepEqual(columns.tags.map((c) => [c.tag, c.subrun]), [['loss', ''], ['acc', 'validation']]);
  assert.deepEqual(columns.tagIndex, [0, 1, 0]);
  assert.deepEqual(columns.steps, [1, 1, 2]);
  assert.deepEqual(columns.values, [0.5, 0.25, 0.125]);
  assert.equal(columns.wallTimes.length, 3);

  assert.equal(second.records[0].text.markdown, 'hi');
  assert.deepEqual(fake.closed.map((c) => [c.runId, c.status]), [['a', 'SESSION_STATUS_FAILURE']]);
});

test('records keep call order; tensors are little-endian', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, sendIntervalMs: 0 });
  writer.scalar('s', 0, 1);
  writer.histogram('h', 0, Float32Array.from([1.5, -2]), { buckets: 7 });
  writer.histogram('e', 0, [3], { layout: 'exponential' });
  writer.image('i', 0, { pixels: Uint8Array.from([1, 2, 3, 4, 5, 6]), height: 1, width: 2, channels: 3 });
  writer.scalar('s', 1, 2);
  await writer.close();

  const records = fake.requests[0].records;
  assert.deepEqual(records.map((r) => r.kind), ['scalars', 'histogram', 'histogram', 'image', 'scalars']);
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
});

test('a RecordError rejects the next flush once, with the server message', async (t) => {
  const fake = await startFake();
  t.after(() => fake.stop());
  const writer = await Writer.open({ address: fake.address, sendIntervalMs: 0 });
  writer.scalar('ok', 0, 1);
  writer.text('bad/tag', 0, 'x');
  await assert.rejects(writer.flush(), (err) => {
    assert.ok(err instanceof TblogError);
    assert.equal(err.code, 3);
    assert.match(err.message, /tag "bad\/tag" is not allowed here/);
    assert.equal(err.errors[0].index, 1);
    return true;
  });
  writer.text('fine', 1, 'y');
  await writer.flush();
  await writer.close();
});

test('a failed stream rejects flush and close', async (t) => {
  const fake = await startFake();
  const writer = await Writer.open({ address: fake.address, sendIntervalMs: 0 });
  fake.stop();
  t.after(() => writer.close().catch(() => {}));
  writer.scalar('x', 0, 1);
  await assert.rejects(writer.flush(), TblogError);
});
