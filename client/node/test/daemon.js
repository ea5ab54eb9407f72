'use strict';
// Starts the real tblogd (TBLOGD_BINARY) for the end-to-end tests, on a unix
// socket in a temporary directory (plus the TCP address `extraArgs` name);
// the one copy of that code for the tests that need a daemon. Defines no
// tests (`node --test` loads it and finds none).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Spawns tblogd with `args`; resolves once it logs that it listens on its
// unix socket (after any TCP address).
async function spawnDaemon(binary, args) {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const process = { child, stderr: '', exited: null };
  child.stderr.on('data', (chunk) => { process.stderr += chunk; });
  child.on('exit', (code, signal) => { process.exited = `exit ${code} ${signal || ''}`; });
  for (let i = 0; i < 300 && !process.stderr.includes('listening on unix:'); ++i) {
    if (process.exited) throw new Error(`tblogd ${process.exited} before listening:\n${process.stderr}`);
    await sleep(100);
  }
  if (!process.stderr.includes('listening on unix:')) throw new Error(`tblogd did not listen:\n${process.stderr}`);
  return process;
}

/** Resolves once tblogd listens on its unix socket (`address`; a TCP
 *  address, if any, is `tcp`). `dir` is a fresh temporary directory that
 *  stop() removes. `prepare(dir)` runs before the spawn and returns extra
 *  flags (certificates, token files made in `dir`). kill(signal) stops the
 *  daemon and keeps its logdir; start() starts it again with the same flags,
 *  socket and logdir (a daemon restart). */
async function startDaemon(prepare = () => []) {
  const binary = process.env.TBLOGD_BINARY;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tblog-node-'));
  const logdir = path.join(dir, 'logs');
  const socket = path.join(dir, 'tblogd.sock');
  fs.mkdirSync(logdir);
  const extra = prepare(dir);
  const args = ['--logdir', logdir, '--unix-socket', socket, ...extra];
  if (!extra.includes('--listen')) args.push('--listen', '');
  let current = await spawnDaemon(binary, args);
  let log = '';
  const tcp = /listening on ([^\s:]+:\d+) /.exec(current.stderr);
  const daemon = {
    dir, logdir, address: `unix:${socket}`, tcp: tcp ? tcp[1] : undefined,
    get child() { return current.child; },
    stderr: () => log + current.stderr,
    async kill(signal = 'SIGTERM') {
      if (!current.exited) {
        current.child.kill(signal);
        for (let i = 0; i < 300 && !current.exited; ++i) await sleep(100);
        if (!current.exited) current.child.kill('SIGKILL');
        for (let i = 0; i < 50 && !current.exited; ++i) await sleep(100);
      }
      log += current.stderr;
    },
    async start() {
      current = await spawnDaemon(binary, args);
    },
    async stop() {
      await daemon.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return daemon;
}

module.exports = { startDaemon, sleep };
