'use strict';
// TLS, mTLS and bearer tokens from the Node client against the real tblogd
// (TBLOGD_BINARY), with certificates made at test time by
// tests/support/make_test_certs.sh (Debian's openssl).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const { Writer, TblogError } = require('../src/index.js');
const { startDaemon, sleep } = require('./daemon.js');
const eventfile = require('./eventfile.js');

const binary = process.env.TBLOGD_BINARY;
const TOKEN = 'tok-node-test-0123456789abc';
const certScript = path.resolve(__dirname, '..', '..', '..', 'tests', 'support', 'make_test_certs.sh');

// A TCP port free now (for a daemon that must come back on the same port).
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// tblogd with TLS + mTLS on 127.0.0.1:<port> (0: any free port), a token
// file, and a plaintext unix socket.
function startSecureDaemon(port = 0) {
  return startDaemon((dir) => {
    const certs = path.join(dir, 'certs');
    execFileSync('bash', [certScript, certs], { stdio: 'ignore' });
    fs.writeFileSync(path.join(dir, 'tokens'), `node:${TOKEN}\n`);
    return ['--listen', `127.0.0.1:${port}`,
      '--tls-cert', path.join(certs, 'server.crt'), '--tls-key', path.join(certs, 'server.key'),
      '--tls-client-ca', path.join(certs, 'client-ca.crt'), '--auth-token-file', path.join(dir, 'tokens')];
  });
}

function scalarCount(logdir, run, tag) {
  const report = JSON.parse(execFileSync(binary, ['inspect', '--json', logdir], { encoding: 'utf8' }));
  const found = report.runs.find((r) => r.name === run);
  return found ? found.tags.find((t) => t.tag === tag)?.count : undefined;
}

test('Node client over TLS with tokens', { skip: binary ? false : 'TBLOGD_BINARY is not set' }, async (t) => {
  const daemon = await startSecureDaemon();
  t.after(() => daemon.stop());
  const certs = path.join(daemon.dir, 'certs');
  const mtls = {
    ca: path.join(certs, 'ca.crt'),
    cert: path.join(certs, 'client.crt'),
    key: path.join(certs, 'client.key'),
  };

  await t.test('writes over mTLS with a token', async () => {
    const writer = await Writer.open({ address: daemon.tcp, runPath: 'node/tls', tls: mtls, token: TOKEN });
    for (let step = 0; step < 5; ++step) writer.scalar('loss', step, 1 / (step + 1));
    await writer.close();
    assert.equal(scalarCount(daemon.logdir, 'node/tls', 'loss'), 5);
  });

  await t.test('settings from the environment', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      TBLOG_TLS_CA: mtls.ca, TBLOG_TLS_CLIENT_CERT: mtls.cert, TBLOG_TLS_CLIENT_KEY: mtls.key, TBLOG_TOKEN: TOKEN,
    });
    try {
      const writer = await Writer.open({ address: daemon.tcp, runPath: 'node/env' });
      writer.scalar('loss', 1, 0.5);
      await writer.close();
    } finally {
      for (const key of ['TBLOG_TLS_CA', 'TBLOG_TLS_CLIENT_CERT', 'TBLOG_TLS_CLIENT_KEY', 'TBLOG_TOKEN']) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
    assert.equal(scalarCount(daemon.logdir, 'node/env', 'loss'), 1);
  });

  await t.test('the unix socket takes the token in plaintext', async () => {
    const writer = await Writer.open({ address: daemon.address, runPath: 'node/unix', token: TOKEN });
    writer.scalar('loss', 1, 0.5);
    await writer.close();
    assert.equal(scalarCount(daemon.logdir, 'node/unix', 'loss'), 1);
  });

  await t.test('a missing or wrong token is UNAUTHENTICATED', async () => {
    for (const token of ['', 'tok-wrong-wrong-wrong-wrong']) {
      await assert.rejects(Writer.open({ address: daemon.tcp, runPath: 'node/x', tls: mtls, token }),
        (err) => err instanceof TblogError && err.code === 16);
    }
    assert.ok(!daemon.stderr().includes('tok-wrong'), 'the daemon never logs a token');
  });

  await t.test('mTLS refuses a client without a certificate', async () => {
    await assert.rejects(
      Writer.open({ address: daemon.tcp, runPath: 'node/x', tls: { ca: mtls.ca }, token: TOKEN }),
      (err) => err instanceof TblogError && err.code === 14);
  });

  await t.test('a token is not sent in the clear beyond loopback', async () => {
    await assert.rejects(Writer.open({ address: '192.0.2.1:6066', runPath: 'node/x', token: TOKEN }),
      /refusing to send a token in the clear/);
  });
});

test('Node client over mTLS with a token reconnects after a daemon restart',
  { skip: binary ? false : 'TBLOGD_BINARY is not set' }, async (t) => {
    const daemon = await startSecureDaemon(await freePort());
    t.after(() => daemon.stop());
    const certs = path.join(daemon.dir, 'certs');
    const tls = { ca: path.join(certs, 'ca.crt'), cert: path.join(certs, 'client.crt'), key: path.join(certs, 'client.key') };
    const writer = await Writer.open({ address: daemon.tcp, runPath: 'node/tls-restart', tls, token: TOKEN,
      sendIntervalMs: 20, initialBackoffMs: 20, maxBackoffMs: 500 });
    for (let step = 0; step < 1000; ++step) {
      writer.scalar('loss', step, step);
      if (step === 300) await daemon.kill('SIGKILL');
      if (step === 600) await daemon.start();
      if (step % 50 === 0) await sleep(5);
    }
    await writer.close({ timeoutMs: 60000 });
    const steps = eventfile.values(path.join(daemon.logdir, 'node/tls-restart')).loss.map(([step]) => step);
    assert.deepEqual(steps, Array.from({ length: 1000 }, (_, i) => i));
    assert.ok(writer.stats().reconnects >= 1);
  });
