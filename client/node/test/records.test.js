'use strict';
// records.js alone (no server): the Record each builder makes from
// JavaScript values, and the arguments it refuses.

const test = require('node:test');
const assert = require('node:assert/strict');

const records = require('../src/records.js');
const { TblogError } = require('../src/errors.js');

test('toTensor: every typed array, nested arrays, booleans, {data, shape}', () => {
  const cases = [
    [Float32Array.from([1.5]), 'DTYPE_FLOAT32', 4], [Float64Array.from([1.5]), 'DTYPE_FLOAT64', 8],
    [Int8Array.from([-1]), 'DTYPE_INT8', 1], [Uint8Array.from([1]), 'DTYPE_UINT8', 1],
    [Uint8ClampedArray.from([1]), 'DTYPE_UINT8', 1], [Int16Array.from([-1]), 'DTYPE_INT16', 2],
    [Uint16Array.from([1]), 'DTYPE_UINT16', 2], [Int32Array.from([-1]), 'DTYPE_INT32', 4],
    [Uint32Array.from([1]), 'DTYPE_UINT32', 4], [BigInt64Array.from([-1n]), 'DTYPE_INT64', 8],
    [BigUint64Array.from([1n]), 'DTYPE_UINT64', 8],
  ];
  for (const [values, dtype, bytes] of cases) {
    const tensor = records.toTensor(values);
    assert.equal(tensor.dtype, dtype);
    assert.deepEqual(tensor.shape, [1]);
    assert.equal(tensor.data.length, bytes);
  }
  assert.equal(records.toTensor(Int32Array.from([-2])).data.readInt32LE(0), -2);
  const nested = records.toTensor([[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual([nested.dtype, nested.shape], ['DTYPE_FLOAT64', [2, 3]]);
  assert.equal(nested.data.readDoubleLE(5 * 8), 6);
  assert.deepEqual(records.toTensor([true, false]), { dtype: 'DTYPE_BOOL', shape: [2], data: Buffer.from([1, 0]) });
  const shaped = records.toTensor({ data: new Float32Array(6), shape: [3, 2] });
  assert.deepEqual(shaped.shape, [3, 2]);
  assert.throws(() => records.toTensor([[1], [2, 3]]), /rectangular/);
  assert.throws(() => records.toTensor(['a']), /numbers or booleans/);
  assert.throws(() => records.toTensor('abc'), TblogError);
});

test('header: tag, integer step, options; wall time defaults to now', () => {
  const before = Date.now() / 1000;
  const record = records.header('loss', 3, { subrun: 'val', displayName: 'Loss' });
  assert.equal(record.subrun, 'val');
  assert.ok(record.wallTime >= before);
  assert.throws(() => records.header(3, 1), /tag must be a string/);
  assert.throws(() => records.header('x', 1.5), /step must be an integer/);
  assert.equal(records.header('x', 1, { wallTime: 7 }).wallTime, 7);
});

test('images: layouts, batches, encoded bytes', () => {
  const hwc = records.imageRecord('i', 0, { pixels: new Uint8Array(12), height: 2, width: 2, channels: 3 });
  assert.deepEqual([hwc.image.layout, hwc.image.pixels.shape], ['PIXEL_LAYOUT_HWC', [2, 2, 3]]);
  const batch = records.imageRecord('b', 0, { pixels: new Float32Array(24), count: 2, height: 2, width: 2, channels: 3 },
    { maxOutputs: 1, style: 'summary_image' }, true);
  assert.deepEqual([batch.image.layout, batch.image.pixels.shape, batch.image.maxOutputs, batch.image.style],
    ['PIXEL_LAYOUT_NHWC', [2, 2, 2, 3], 1, 'IMAGE_STYLE_SUMMARY_IMAGE']);
  assert.equal(records.imageRecord('j', 0, { jpeg: Buffer.from([0xff, 0xd8]) }).image.encoded.length, 2);
  assert.throws(() => records.imageRecord('i', 0, { pixels: new Int32Array(4), height: 2, width: 2 }), /Uint8Array/);
  assert.throws(() => records.imageRecord('i', 0, { pixels: new Uint8Array(4), shape: [1, 2, 2, 1], layout: 'NHWC' }),
    /layout NHWC is for images\(\)/);
  assert.throws(() => records.imageRecord('i', 0, {}), /an image needs/);
  assert.throws(() => records.imageRecord('i', 0, { png: Buffer.alloc(1) }, { style: 'jpeg' }), /unknown image style/);
});

test('text, audio, PR curves', () => {
  assert.deepEqual(records.textRecord('t', 0, [['a', 'b'], ['c', 'd']]).text.table, { shape: [2, 2], cells: ['a', 'b', 'c', 'd'] });
  assert.equal(records.textRecord('t', 0, 'x', { torchStyle: true }).text.torchStyle, true);
  assert.throws(() => records.textRecord('t', 0, [1, 2]), /cells must be strings/);
  assert.throws(() => records.textRecord('t', 0, 3), TblogError);
  const stereo = records.audioRecord('a', 0, new Float32Array(10), { channels: 2, sampleRate: 8000 });
  assert.deepEqual([stereo.audio.samples.shape, stereo.audio.sampleRate], [[5, 2], 8000]);
  assert.throws(() => records.audioRecord('a', 0, new Float32Array(5), { channels: 2 }), /whole frames/);
  const predicted = records.prCurveRecord('p', 0, { labels: [true, false], predictions: [0.5, 0.1], weights: [1, 2] },
    { numThresholds: 9 });
  assert.deepEqual([predicted.prCurve.predictions.labels.dtype, predicted.prCurve.predictions.numThresholds], ['DTYPE_BOOL', 9]);
  const counted = records.prCurveRecord('p', 0, { truePositives: Float32Array.from([1]), falsePositives: [0], trueNegatives: [2], falseNegatives: [3] });
  assert.deepEqual(counted.prCurve.counts.falseNegatives, [3]);
  assert.throws(() => records.prCurveRecord('p', 0, {}), /labels, predictions/);
});

test('hparams, graph, embedding, custom scalars', () => {
  const hparams = records.hparamsRecord({ lr: 0.1, opt: 'adam', warm: true },
    { metrics: ['loss', { tag: 'acc', subrun: 'val', datasetType: 'validation' }], domains: { lr: { min: 0, max: 1 }, opt: ['adam', 'sgd'] }, subrun: 'trial' });
  assert.deepEqual(hparams.hparams.values, { lr: { number: 0.1 }, opt: { text: 'adam' }, warm: { flag: true } });
  assert.equal(hparams.hparams.metrics[1].datasetType, 'DATASET_TYPE_VALIDATION');
  assert.deepEqual(hparams.hparams.domains.opt, { discrete: { values: [{ text: 'adam' }, { text: 'sgd' }] } });
  assert.equal(hparams.subrun, 'trial');
  assert.throws(() => records.hparamsRecord({ x: {} }), /must be a number, string or boolean/);
  assert.throws(() => records.hparamsRecord({ x: 1 }, { metrics: [{ tag: 'm', datasetType: 'test' }] }), /unknown dataset type/);
  assert.deepEqual(records.graphRecord(Buffer.from([1, 2])).graph, { graphDef: Buffer.from([1, 2]) });
  assert.deepEqual(records.graphRecord({ nodes: [{ name: 'x' }] }).graph.nodes.node[0], { name: 'x', op: '', inputs: [], device: '', attrs: {} });
  assert.throws(() => records.graphRecord('x'), /serialized GraphDef/);
  const embedding = records.embeddingRecord('e', 2, [[1, 2], [3, 4]], { metadata: [['a', 1], ['b', 2]], metadataHeader: ['name', 'id'] });
  assert.deepEqual(embedding.embedding.metadata, ['a', '1', 'b', '2']);
  assert.deepEqual(embedding.embedding.matrix.shape, [2, 2]);
  const layout = records.customScalarsRecord({ L: { lines: ['Multiline', ['a', 'b']], band: ['Margin', ['v', 'lo', 'hi']] } });
  assert.deepEqual(layout.customScalars.categories[0].charts, [
    { title: 'lines', multiline: { tags: ['a', 'b'] } },
    { title: 'band', margin: { series: [{ value: 'v', lower: 'lo', upper: 'hi' }] } },
  ]);
  const proto = { categories: [{ title: 'T', charts: [] }] };
  assert.equal(records.customScalarsRecord(proto).customScalars, proto);
  assert.throws(() => records.customScalarsRecord({ L: { band: ['Margin', ['v']] } }), /Margin/);
});

test('recordBytes counts tensor and string payloads', () => {
  const small = records.recordBytes(records.histogramRecord('h', 0, new Float32Array(10)));
  const large = records.recordBytes(records.histogramRecord('h', 0, new Float32Array(1000)));
  assert.ok(large - small >= 3960 && large - small <= 3970, `${small} ${large}`);
  assert.ok(records.recordBytes(records.textRecord('t', 0, 'x'.repeat(1000))) >= 1000);
});
