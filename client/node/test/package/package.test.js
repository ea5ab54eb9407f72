'use strict';
// The package as a user installs it, outside the checkout: `npm pack`, then
// `npm install --offline` of the tarball into a temporary project (its
// dependencies packed from this checkout's node_modules, so no registry is
// needed), then, against the real tblogd (TBLOGD_BINARY): a script that
// requires '@tblog/client' and writes a run, the shipped example, and a
// TypeScript file type-checked against the installed declarations.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startDaemon } = require('../daemon.js');

const binary = process.env.TBLOGD_BINARY;
const packageDir = path.resolve(__dirname, '..', '..');
const repoProto = path.resolve(packageDir, '..', '..', 'proto', 'tblog', 'v1', 'tblog.proto');

function hasNpm() {
  try {
    execFileSync('npm', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const skip = !binary ? 'TBLOGD_BINARY is not set' : !hasNpm() ? 'npm is not installed' : false;

function npm(args, cwd) {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// The tarballs of this package's production dependencies, from node_modules.
function packDependencies(destination) {
  const lock = JSON.parse(fs.readFileSync(path.join(packageDir, 'node_modules', '.package-lock.json'), 'utf8'));
  const folders = Object.entries(lock.packages).filter(([, meta]) => !meta.dev).map(([folder]) => `./${folder}`);
  npm(['pack', '--silent', '--ignore-scripts', '--pack-destination', destination, ...folders], packageDir);
  return fs.readdirSync(destination).map((name) => path.join(destination, name));
}

test('the packed package, installed outside the checkout', { skip, timeout: 240000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tblog-node-pack-'));
  const daemon = await startDaemon();
  t.after(async () => {
    await daemon.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });
  const packed = path.join(work, 'packed');
  const deps = path.join(work, 'deps');
  const project = path.join(work, 'project');
  for (const dir of [packed, deps, project]) fs.mkdirSync(dir);

  npm(['pack', '--silent', '--pack-destination', packed, packageDir], work);
  const [tarball] = fs.readdirSync(packed).map((name) => path.join(packed, name));
  const listing = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n');
  assert.ok(listing.includes('package/proto/tblog/v1/tblog.proto'), 'the proto is in the package');
  assert.ok(listing.includes('package/index.d.ts'));
  assert.ok(listing.includes('package/examples/train.js'));
  assert.ok(!listing.some((name) => name.startsWith('package/test/')), 'no tests in the package');

  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  npm(['install', '--offline', '--ignore-scripts', tarball, ...packDependencies(deps)], project);
  const installed = path.join(project, 'node_modules', '@tblog', 'client');
  assert.ok(!fs.lstatSync(installed).isSymbolicLink(), 'a copy, not a link to the checkout');
  assert.equal(fs.readFileSync(path.join(installed, 'proto', 'tblog', 'v1', 'tblog.proto'), 'utf8'),
    fs.readFileSync(repoProto, 'utf8'), 'the shipped proto is the current one');

  // A user's script: the package's own proto, the address from TBLOG_ADDRESS.
  const env = { ...process.env, TBLOG_ADDRESS: daemon.address };
  delete env.TBLOG_PROTO;
  fs.writeFileSync(path.join(project, 'use.js'), `
    const { Writer, protoPath } = require('@tblog/client');
    (async () => {
      const writer = await Writer.open({ runPath: 'installed/run' });
      for (let step = 0; step < 5; ++step) writer.scalar('loss', step, 1 / (step + 1));
      await writer.close();
      console.log(protoPath());
    })().catch((err) => { console.error(err); process.exit(1); });
  `);
  const used = execFileSync('node', ['use.js'], { cwd: project, env, encoding: 'utf8' }).trim();
  assert.equal(used, path.join(fs.realpathSync(installed), 'proto', 'tblog', 'v1', 'tblog.proto'));

  // The shipped example runs as is.
  const out = execFileSync('node', [path.join(installed, 'examples', 'train.js'), '--steps', '30'],
    { cwd: project, env, encoding: 'utf8' });
  assert.match(out, /done: node-example\//);

  const report = JSON.parse(execFileSync(binary, ['inspect', '--json', daemon.logdir], { encoding: 'utf8' }));
  const runs = Object.fromEntries(report.runs.map((run) => [run.name, Object.fromEntries(run.tags.map((tag) => [tag.tag, tag]))]));
  assert.equal(runs['installed/run'].loss.count, 5);
  const example = Object.keys(runs).find((name) => name.startsWith('node-example/'));
  assert.equal(runs[example].loss.count, 30);
  assert.equal(runs[example].sample.kind, 'image');

  // TypeScript: the declarations resolve from the installed package and
  // type-check a user's code (strict), rejecting wrong calls.
  const tsc = path.join(packageDir, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!fs.existsSync(tsc)) {
    t.diagnostic('typescript is not installed (npm ci in client/node): type check skipped');
    return;
  }
  fs.copyFileSync(path.join(__dirname, 'consumer.ts'), path.join(project, 'consumer.ts'));
  const started = Date.now();
  try {
    execFileSync('node', [tsc, '--strict', '--noEmit', '--module', 'node16', '--moduleResolution', 'node16',
      '--types', 'node', 'consumer.ts'], { cwd: project, encoding: 'utf8' });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
  t.diagnostic(`tsc: ${Date.now() - started} ms`);
});
