'use strict';
// End-to-end tests of the Node client against the real tblogd (TBLOGD_BINARY),
// listening on a unix socket in a temporary directory. What the daemon wrote
// is checked with `tblogd inspect --json`.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const grpc = require('@grpc/grpc-js');

const { Writer, TblogError } = require('../src/index.js');
const { loadService } = require('../src/connection.js');
const { startDaemon } = require('./daemon.js');

const binary = process.env.TBLOGD_BINARY;

// A CRC-32 (PNG's) so the test can build a PNG without dependencies.
function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; ++k) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

// A width x height 8-bit gray PNG.
function grayPng(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // gray
  const rows = [];
  for (let y = 0; y < height; ++y) {
    rows.push(Buffer.from([0]), Buffer.alloc(width, (y * 40) & 0xff));
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

// `tblogd inspect --json`, as { runName: { tagName: tagReport } }.
function inspect(logdir) {
  const out = execFileSync(binary, ['inspect', '--json', logdir], { encoding: 'utf8' });
  const report = JSON.parse(out);
  const runs = {};
  for (const run of report.runs) {
    for (const file of run.files) assert.equal(file.state, 'ok', `${run.name}/${file.name}: ${file.error}`);
    runs[run.name] = Object.fromEntries(run.tags.map((tag) => [tag.tag, tag]));
  }
  return runs;
}

test('Node client against tblogd', { skip: binary ? false : 'TBLOGD_BINARY is not set' }, async (t) => {
  const daemon = await startDaemon();
  t.after(() => daemon.stop());

  await t.test('every method reaches the event files', async () => {
    const writer = await Writer.open({
      address: daemon.address,
      runPath: 'node/every',
      hparams: { lr: 0.01, optimizer: 'adam', warmup: true },
    });
    assert.equal(writer.runPath, 'node/every');
    assert.ok(path.isAbsolute(writer.directory));
    for (let step = 0; step < 10; ++step) {
      writer.scalar('loss', step, 1 / (step + 1));
      writer.scalar('lr', step, 0.01);
    }
    writer.scalar('accuracy', 9, 0.75, { subrun: 'validation' });
    writer.histogram('weights', 1, Float32Array.from([0.5, -1, 2, 3.25]));
    writer.histogram('weights64', 1, Float64Array.from([1, 2, 3]), { buckets: 5 });
    writer.histogram('grads', 2, [0.1, 0.2, -0.3], { layout: 'exponential' });
    const pixels = new Uint8Array(4 * 3 * 3).map((_, i) => (i * 7) & 0xff);
    writer.image('sample', 3, { pixels, height: 4, width: 3, channels: 3 });
    writer.image('encoded', 3, { png: grayPng(5, 2) });
    writer.text('notes', 4, '# hello\n*from node*');
    // More scalars after other records: a second ScalarColumns record.
    writer.scalar('loss', 10, 0.05);
    await writer.flush();

    const runs = inspect(daemon.logdir);
    const run = runs['node/every'];
    assert.ok(run, `run node/every missing: ${Object.keys(runs)}`);
    assert.equal(run.loss.kind, 'scalar');
    assert.equal(run.loss.count, 11);
    assert.equal(run.loss.first_step, 0);
    assert.equal(run.loss.last_step, 10);
    assert.ok(Math.abs(run.loss.last_scalar - 0.05) < 1e-6);
    assert.equal(run.lr.count, 10);
    assert.equal(run.weights.kind, 'histogram');
    assert.equal(run.weights64.kind, 'histogram');
    assert.equal(run.grads.kind, 'histogram');
    assert.equal(run.grads.first_step, 2);
    assert.equal(run.sample.kind, 'image');
    assert.equal(run.encoded.kind, 'image');
    assert.equal(run.notes.kind, 'text');
    assert.equal(run.notes.first_step, 4);
    assert.ok(Object.values(run).some((tag) => tag.kind === 'hparams'), 'no hparams tag');
    const validation = runs['node/every/validation'];
    assert.ok(validation, 'sub-run validation missing');
    assert.equal(validation.accuracy.last_step, 9);

    // More data after a flush goes out with close().
    writer.scalar('loss', 11, 0.04);
    await writer.close();
    assert.equal(inspect(daemon.logdir)['node/every'].loss.count, 12);
    assert.throws(() => writer.scalar('loss', 12, 0), TblogError);
  });

  await t.test('a rejected record surfaces with the daemon message; its neighbours are written', async () => {
    const writer = await Writer.open({ address: daemon.address, runPath: 'node/bad' });
    writer.scalar('good', 1, 1.5);
    writer.text('bad\u0001tag', 1, 'control character in the tag');
    writer.text('fine', 1, 'after the bad one');
    await assert.rejects(writer.flush(), (err) => {
      assert.ok(err instanceof TblogError);
      assert.equal(err.code, 3); // INVALID_ARGUMENT
      assert.equal(err.errors.length, 1);
      assert.equal(err.errors[0].index, 1);
      assert.ok(err.errors[0].message.length > 0);
      assert.ok(err.message.includes(err.errors[0].message), err.message);
      return true;
    });
    // Reported once: the next flush succeeds.
    writer.scalar('good', 2, 2.5);
    await writer.flush();
    await writer.close();
    const run = inspect(daemon.logdir)['node/bad'];
    assert.equal(run.good.count, 2);
    assert.equal(run.fine.kind, 'text');
    assert.ok(!Object.keys(run).some((tag) => tag.startsWith('bad')));
  });

  await t.test('a rejected record reported by close(); the run is released all the same', async () => {
    const writer = await Writer.open({ address: daemon.address, runPath: 'node/bad-close' });
    writer.scalar('', 1, 1);
    await assert.rejects(writer.close(), (err) => err instanceof TblogError && err.code === 3);
    const admin = new (loadService())(daemon.address, grpc.credentials.createInsecure());
    const run = await new Promise((resolve, reject) =>
      admin.getRun({ runId: writer.runId }, (err, info) => (err ? reject(err) : resolve(info))));
    admin.close();
    assert.equal(run.state, 'RUN_STATE_CLOSED');
  });

  await t.test('OpenRun errors reject open()', async () => {
    await assert.rejects(Writer.open({ address: daemon.address, runPath: '../outside' }),
      (err) => err instanceof TblogError && err.code === 3 && /OpenRun/.test(err.message));
    await assert.rejects(
      Writer.open({ address: daemon.address, runPath: 'node/every', mode: 'OPEN_MODE_CREATE' }),
      (err) => err instanceof TblogError && err.code === 6); // ALREADY_EXISTS
  });

  await t.test('timestamped runs under an experiment', async () => {
    const writer = await Writer.open({ address: daemon.address, experiment: 'exp', name: 'baseline' });
    assert.match(writer.runPath, /^exp\/\d{8}-\d{6}(-\d+)?-baseline$|^exp\/\d{8}-\d{6}-baseline(-\d+)?$/);
    writer.scalar('x', 0, 1);
    await writer.close();
    assert.equal(inspect(daemon.logdir)[writer.runPath].x.count, 1);
  });
});
