'use strict';
// No loss and no duplicates across a daemon restart, against the real tblogd
// (TBLOGD_BINARY): the daemon is killed (SIGKILL, and SIGTERM) in the middle
// of a stream of scalars and histograms, the writer keeps logging while it is
// down, the daemon starts again on the same logdir and socket, and the run is
// read back from the event files: every step once, in order. Also: a restarted
// trainer with a fixed writer id continues the run's sequences.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { Writer } = require('../src/index.js');
const { startDaemon, sleep } = require('./daemon.js');
const eventfile = require('./eventfile.js');

const binary = process.env.TBLOGD_BINARY;
const skip = binary ? false : 'TBLOGD_BINARY is not set';
const fast = { sendIntervalMs: 20, initialBackoffMs: 20, maxBackoffMs: 500 };
const range = (n, step = 1) => Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step);

// Logs `total` steps of scalar "x" (and a histogram every 500 steps), stopping
// the daemon with `signal` a third of the way in and starting it again half
// way; returns the writer's stats after close(). `settleMs` before the stop
// lets batches be written; 0 stops the daemon right after a burst of 12 large
// histograms (about 18 MiB, several batches) was handed to the stream, so
// batches are in flight when it dies and must be resent.
async function logAcrossRestart(daemon, runPath, signal, { settleMs = 300, ...options } = {}) {
  const writer = await Writer.open({ address: daemon.address, runPath, ...fast, ...options });
  const total = 6000;
  for (let step = 0; step < total; ++step) {
    writer.scalar('x', step, step);
    if (step % 500 === 0) writer.histogram('h', step, Float32Array.from([step, step + 1, step + 2]));
    if (step === total / 3) {
      if (settleMs > 0) {
        await sleep(settleMs); // some batches written, some not yet acknowledged
      } else {
        for (let i = 0; i < 12; ++i) writer.histogram('burst', step + i, new Float32Array(384 * 1024).fill(i));
      }
      await daemon.kill(signal);
    }
    if (step === total / 2) await daemon.start();
    if (step % 100 === 0) await sleep(5);
  }
  await writer.close({ timeoutMs: 60000 });
  const dir = path.join(daemon.logdir, runPath);
  const scalars = eventfile.values(dir).x;
  assert.deepEqual(scalars.map(([step]) => step), range(total), 'every step once, in order');
  assert.ok(scalars.every(([step, value]) => step === value), 'each value with its step');
  const histograms = eventfile.values(dir, (v) => v.tensor ?? v.histo).h;
  assert.deepEqual(histograms.map(([step]) => step), range(total, 500));
  if (settleMs === 0) {
    const burst = eventfile.values(dir, (v) => v.tensor ?? v.histo).burst;
    assert.deepEqual(burst.map(([step]) => step), range(12).map((i) => total / 3 + i));
  }
  return writer.stats();
}

test('Node client across daemon restarts', { skip }, async (t) => {
  const daemon = await startDaemon();
  t.after(() => daemon.stop());

  await t.test('kill -9 mid-stream: every step once', async (t) => {
    const stats = await logAcrossRestart(daemon, 'node/crash', 'SIGKILL');
    assert.ok(stats.reconnects >= 1, `reconnected: ${JSON.stringify(stats)}`);
    t.diagnostic(JSON.stringify(stats));
  });

  await t.test('kill -9 with batches in flight: they are resent, written once', async (t) => {
    const stats = await logAcrossRestart(daemon, 'node/crash-inflight', 'SIGKILL', { settleMs: 0 });
    assert.ok(stats.resentBatches >= 1, `resent: ${JSON.stringify(stats)}`);
    t.diagnostic(JSON.stringify(stats));
  });

  await t.test('SIGTERM mid-stream: every step once', async (t) => {
    const stats = await logAcrossRestart(daemon, 'node/restart', 'SIGTERM');
    assert.ok(stats.reconnects >= 1, `reconnected: ${JSON.stringify(stats)}`);
    t.diagnostic(JSON.stringify(stats));
  });

  await t.test('kill -9 with batches kept until durable', async () => {
    await logAcrossRestart(daemon, 'node/crash-durable', 'SIGKILL', { retainUntil: 'durable' });
  });

  await t.test('a restarted trainer with a fixed writer id continues its sequences', async () => {
    for (let life = 0; life < 3; ++life) {
      const writer = await Writer.open({ address: daemon.address, runPath: 'node/fixed', writerId: 'trainer-0', ...fast });
      for (let step = life * 100; step < (life + 1) * 100; ++step) {
        writer.scalar('x', step, step);
        if (step % 10 === 0) await writer.flush();
      }
      await writer.close();
    }
    const steps = eventfile.values(path.join(daemon.logdir, 'node/fixed')).x.map(([step]) => step);
    assert.deepEqual(steps, range(300));
  });

  await t.test('the daemon restarted between two batches of an idle writer', async () => {
    const writer = await Writer.open({ address: daemon.address, runPath: 'node/idle', ...fast });
    writer.scalar('x', 0, 0);
    await writer.flush();
    await daemon.kill('SIGKILL');
    await daemon.start();
    writer.scalar('x', 1, 1);
    await writer.flush({ timeoutMs: 60000 });
    await writer.close();
    assert.deepEqual(eventfile.values(path.join(daemon.logdir, 'node/idle')).x.map(([step]) => step), [0, 1]);
  });
});
