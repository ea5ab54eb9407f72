'use strict';
// Starts the real tblogd (TBLOGD_BINARY) for the end-to-end tests, on a unix
// socket in a temporary directory (plus the TCP address `extraArgs` name);
// the one copy of that code for writer.test.js and tls.test.js. Defines no
// tests (`node --test` loads it and finds none).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once tblogd logs that it listens on its unix socket (after any
 *  TCP address, which is then `tcp`). `dir` is a fresh temporary directory
 *  that stop() removes. `prepare(dir)` runs before the spawn and returns
 *  extra flags (certificates, token files made in `dir`). */
async function startDaemon(prepare = () => []) {
  const binary = process.env.TBLOGD_BINARY;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tblog-node-'));
  const logdir = path.join(dir, 'logs');
  const socket = path.join(dir, 'tblogd.sock');
  fs.mkdirSync(logdir);
  const extra = prepare(dir);
  const args = ['--logdir', logdir, '--unix-socket', socket, ...extra];
  if (!extra.includes('--listen')) args.push('--listen', '');
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  let exited = null;
  child.on('exit', (code, signal) => { exited = `exit ${code} ${signal || ''}`; });
  for (let i = 0; i < 300 && !stderr.includes('listening on unix:'); ++i) {
    if (exited) throw new Error(`tblogd ${exited} before listening:\n${stderr}`);
    await sleep(100);
  }
  if (!stderr.includes('listening on unix:')) throw new Error(`tblogd did not listen:\n${stderr}`);
  const tcp = /listening on ([^\s:]+:\d+) /.exec(stderr);
  return {
    dir, logdir, address: `unix:${socket}`, tcp: tcp ? tcp[1] : undefined, child,
    stderr: () => stderr,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        for (let i = 0; i < 100 && !exited; ++i) await sleep(100);
        if (!exited) child.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startDaemon, sleep };
