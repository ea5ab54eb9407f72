'use strict';
// Every record kind of tblog.proto from the Node client, against the real
// tblogd (TBLOGD_BINARY), read back from the event files (and the projector
// files): scalar (Scalar and ScalarColumns, both styles), histogram (both
// layouts), image (raw, encoded, a batch), text (Markdown, table), audio, PR
// curve (predictions, counts), hparams, graph, embedding, custom scalars.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { Writer } = require('../src/index.js');
const { startDaemon } = require('./daemon.js');
const eventfile = require('./eventfile.js');

const binary = process.env.TBLOGD_BINARY;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

// A 1x1 gray PNG (made by hand: IHDR, one IDAT, IEND).
const TINY_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==', 'base64');

function tagKinds(logdir, run) {
  const report = JSON.parse(execFileSync(binary, ['inspect', '--json', logdir], { encoding: 'utf8' }));
  const found = report.runs.find((r) => r.name === run);
  for (const file of found.files) assert.equal(file.state, 'ok', `${file.name}: ${file.error}`);
  return Object.fromEntries(found.tags.map((t) => [t.tag, t.kind]));
}

test('every record kind, read back', { skip: binary ? false : 'TBLOGD_BINARY is not set' }, async (t) => {
  const daemon = await startDaemon();
  t.after(() => daemon.stop());
  const writer = await Writer.open({ address: daemon.address, runPath: 'node/kinds', sendIntervalMs: 0 });
  writer.scalar('described', 1, 0.5, { displayName: 'Described', description: 'a Scalar record' });
  writer.scalar('columns', 1, 0.25);
  writer.scalar('simple', 2, 0.75, { style: 'simple_value' });
  writer.histogram('uniform', 1, Float64Array.from([1, 2, 3, 4]), { buckets: 4 });
  writer.histogram('exponential', 1, [0.5, 1.5], { layout: 'exponential' });
  writer.image('raw', 1, { pixels: new Uint8Array(2 * 3 * 3).fill(200), height: 2, width: 3, channels: 3 });
  writer.image('chw', 1, { pixels: new Float32Array(3 * 2 * 2).fill(0.5), shape: [3, 2, 2], layout: 'CHW' });
  writer.image('png', 1, { png: TINY_PNG });
  writer.images('batch', 1, { pixels: new Uint8Array(4 * 2 * 2 * 1).fill(9), count: 4, height: 2, width: 2, channels: 1 },
    { maxOutputs: 2 });
  writer.images('grid', 1, { pixels: new Uint8Array(4 * 2 * 2 * 3), count: 4, height: 2, width: 2, channels: 3 },
    { style: 'summary_image' });
  writer.text('markdown', 1, '**bold**');
  writer.text('table', 1, [['a', 'b'], ['c', 'd'], ['e', 'f']]);
  writer.audio('tone', 1, Float32Array.from({ length: 800 }, (_, i) => Math.sin(i / 5)), { sampleRate: 8000 });
  writer.audio('stereo', 1, new Float32Array(200), { sampleRate: 8000, channels: 2 });
  writer.prCurve('predicted', 1, { labels: [true, false, true, true], predictions: Float32Array.from([0.9, 0.3, 0.6, 0.2]) },
    { numThresholds: 5 });
  writer.prCurve('counted', 1, { truePositives: [3, 2, 0], falsePositives: [1, 0, 0], trueNegatives: [0, 1, 1], falseNegatives: [0, 1, 3] });
  writer.hparams({ lr: 0.1, optimizer: 'adam', warmup: true },
    { metrics: ['columns'], domains: { lr: { min: 0, max: 1 }, optimizer: ['adam', 'sgd'] } });
  writer.graph({ nodes: [{ name: 'input', op: 'Placeholder' }, { name: 'relu', op: 'Relu', inputs: ['input'] }] });
  writer.embedding('words', 3, [[1, 2], [3, 4], [5, 6]], { metadata: ['one', 'two', 'three'] });
  writer.embedding('table', 3, { data: Float32Array.from([1, 0, 0, 1]), shape: [2, 2] },
    { metadata: [['x', '1'], ['y', '2']], metadataHeader: ['name', 'id'] });
  writer.customScalars({ Losses: { both: ['Multiline', ['columns', 'described']], band: ['Margin', ['columns', 'simple', 'described']] } });
  writer.record({ tag: 'raw-record', step: 4, scalar: { value: 2 } });
  await writer.close();

  const run = path.join(daemon.logdir, 'node/kinds');
  const kinds = tagKinds(daemon.logdir, 'node/kinds');
  assert.deepEqual(
    ['described', 'columns', 'simple', 'raw-record'].map((tag) => kinds[tag]), ['scalar', 'scalar', 'scalar', 'scalar']);
  for (const tag of ['uniform', 'exponential']) assert.equal(kinds[tag], 'histogram', tag);
  for (const tag of ['raw', 'chw', 'png', 'batch', 'grid']) assert.equal(kinds[tag], 'image', tag);
  for (const tag of ['markdown', 'table']) assert.equal(kinds[tag], 'text', tag);
  for (const tag of ['tone', 'stereo']) assert.equal(kinds[tag], 'audio', tag);
  for (const tag of ['predicted', 'counted']) assert.equal(kinds[tag], 'pr_curve', tag);
  assert.ok(Object.values(kinds).includes('hparams'));
  assert.ok(Object.values(kinds).includes('graph'));
  assert.ok(Object.values(kinds).includes('custom_scalars'));

  const values = eventfile.values(run, (v) => v);
  const one = (tag) => {
    assert.equal(values[tag]?.length, 1, `one value of ${tag}`);
    return values[tag][0][1];
  };
  assert.equal(one('described').metadata.displayName, 'Described');
  assert.equal(one('described').metadata.summaryDescription, 'a Scalar record');
  assert.equal(eventfile.scalarOf(one('columns')), 0.25);
  assert.equal(one('simple').simpleValue, 0.75);
  assert.equal(eventfile.scalarOf(one('raw-record')), 2);
  // TensorBoard 2 images: [width, height, png, ...]; a batch keeps maxOutputs.
  const raw = one('raw').tensor.stringVal;
  assert.deepEqual([raw[0].toString(), raw[1].toString()], ['3', '2']);
  assert.deepEqual(raw[2].subarray(0, 4), PNG_SIGNATURE);
  assert.deepEqual(one('chw').tensor.stringVal.slice(0, 2).map(String), ['2', '2']);
  assert.deepEqual(Buffer.from(one('png').tensor.stringVal[2]), TINY_PNG);
  assert.equal(one('batch').tensor.stringVal.length, 2 + 2);
  assert.deepEqual(one('grid').image.encodedImageString.subarray(0, 4), PNG_SIGNATURE);
  assert.equal(one('markdown').tensor.stringVal[0].toString(), '**bold**');
  assert.deepEqual(one('table').tensor.tensorShape.dim.map((d) => Number(d.size)), [3, 2]);
  assert.equal(one('tone').tensor.stringVal[0].subarray(0, 4).toString(), 'RIFF');
  assert.deepEqual(one('predicted').tensor.tensorShape.dim.map((d) => Number(d.size)), [6, 5]);
  assert.deepEqual(one('counted').tensor.tensorShape.dim.map((d) => Number(d.size)), [6, 3]);

  const events = eventfile.runEvents(run);
  const graphs = events.filter((e) => e.graphDef && e.graphDef.length);
  assert.equal(graphs.length, 1);
  assert.ok(Buffer.from(graphs[0].graphDef).includes('Relu'));
  assert.equal(fs.readFileSync(path.join(run, '00003', 'words', 'tensors.tsv'), 'utf8'), '1.0\t2.0\n3.0\t4.0\n5.0\t6.0\n');
  assert.equal(fs.readFileSync(path.join(run, '00003', 'words', 'metadata.tsv'), 'utf8'), 'one\ntwo\nthree\n');
  assert.equal(fs.readFileSync(path.join(run, '00003', 'table', 'metadata.tsv'), 'utf8'), 'name\tid\nx\t1\ny\t2\n');
  assert.match(fs.readFileSync(path.join(run, 'projector_config.pbtxt'), 'utf8'), /00003\/words\/tensors.tsv/);
});
