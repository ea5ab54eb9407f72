'use strict';
// Transient failures caused for real against tblogd (TBLOGD_BINARY), each
// retried as tblog.proto's "Retries" says and read back with every step once:
// RESOURCE_EXHAUSTED (the daemon's --max-streams reached until another writer
// leaves), FAILED_PRECONDITION (an operator closes the run under the writer),
// and a daemon restarted three times, once while the writer reconnects.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');

const { Writer } = require('../src/index.js');
const { loadService } = require('../src/connection.js');
const { startDaemon, sleep } = require('./daemon.js');
const eventfile = require('./eventfile.js');

const binary = process.env.TBLOGD_BINARY;
const skip = binary ? false : 'TBLOGD_BINARY is not set';
const fast = { sendIntervalMs: 20, initialBackoffMs: 20, maxBackoffMs: 200 };
const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);
const steps = (daemon, run, tag = 'x') => (eventfile.values(path.join(daemon.logdir, run))[tag] ?? []).map(([s]) => s);

test('--max-streams reached: the second writer waits for room, then writes everything', { skip }, async (t) => {
  const daemon = await startDaemon(() => ['--max-streams', '1']);
  t.after(() => daemon.stop());
  const first = await Writer.open({ address: daemon.address, runPath: 'node/first', ...fast });
  first.scalar('x', 0, 0);
  await first.flush();
  const second = await Writer.open({ address: daemon.address, runPath: 'node/second', ...fast });
  for (let step = 0; step < 50; ++step) second.scalar('x', step, step);
  const flushed = second.flush({ timeoutMs: 60000 });
  await sleep(300); // the second writer's stream is refused meanwhile
  await first.close();
  await flushed;
  await second.close();
  assert.deepEqual(steps(daemon, 'node/second'), range(0, 50));
  assert.ok(second.stats().reconnects >= 1, JSON.stringify(second.stats()));
});

test('the run closed under the writer (CloseRun without writer_id): it is reopened', { skip }, async (t) => {
  const daemon = await startDaemon();
  t.after(() => daemon.stop());
  const writer = await Writer.open({ address: daemon.address, runPath: 'node/closed', ...fast });
  for (let step = 0; step < 20; ++step) writer.scalar('x', step, step);
  await writer.flush();
  const Service = loadService();
  const admin = new Service(daemon.address, grpc.credentials.createInsecure());
  await new Promise((resolve, reject) => admin.closeRun({ runId: writer.runId }, (err) => (err ? reject(err) : resolve())));
  admin.close();
  for (let step = 20; step < 40; ++step) writer.scalar('x', step, step);
  await writer.flush({ timeoutMs: 60000 });
  await writer.close();
  assert.deepEqual(steps(daemon, 'node/closed'), range(0, 40));
  assert.ok(writer.stats().reconnects >= 1, JSON.stringify(writer.stats()));
});

test('three daemon restarts, one while the writer is reconnecting', { skip }, async (t) => {
  const daemon = await startDaemon();
  t.after(() => daemon.stop());
  const writer = await Writer.open({ address: daemon.address, runPath: 'node/thrice', ...fast });
  for (let step = 0; step < 3000; ++step) {
    writer.scalar('x', step, step);
    if (step === 1000) await daemon.kill('SIGKILL');
    if (step === 1200) {
      // Up and down again, perhaps before the writer got back in.
      await daemon.start();
      await daemon.kill('SIGKILL');
    }
    if (step === 1500) {
      await daemon.start();
      await writer.flush({ timeoutMs: 60000 });
    }
    if (step === 2000) {
      await daemon.kill('SIGKILL');
      await sleep(200); // reconnect attempts fail meanwhile
      await daemon.start();
    }
    if (step % 100 === 0) await sleep(5);
  }
  await writer.close({ timeoutMs: 60000 });
  assert.deepEqual(steps(daemon, 'node/thrice'), range(0, 3000));
  assert.ok(writer.stats().reconnects >= 2, JSON.stringify(writer.stats()));
});
