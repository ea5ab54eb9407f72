'use strict';
// Builds tblog.v1.Record objects (proto-loader's camelCase form) for every
// record kind of proto/tblog/v1/tblog.proto from JavaScript values. Each
// builder checks its arguments and throws a TblogError naming what is wrong;
// the daemon validates everything again.

const os = require('node:os');
const { TblogError } = require('./errors.js');

const isLittleEndian = os.endianness() === 'LE';

// Typed arrays and their tblog.v1.DType, with the DataView setter a
// big-endian host uses to write them little-endian.
const TYPED = [
  [Float32Array, 'DTYPE_FLOAT32', 'setFloat32'],
  [Float64Array, 'DTYPE_FLOAT64', 'setFloat64'],
  [Int8Array, 'DTYPE_INT8', 'setInt8'],
  [Uint8Array, 'DTYPE_UINT8', 'setUint8'],
  [Uint8ClampedArray, 'DTYPE_UINT8', 'setUint8'],
  [Int16Array, 'DTYPE_INT16', 'setInt16'],
  [Uint16Array, 'DTYPE_UINT16', 'setUint16'],
  [Int32Array, 'DTYPE_INT32', 'setInt32'],
  [Uint32Array, 'DTYPE_UINT32', 'setUint32'],
  [BigInt64Array, 'DTYPE_INT64', 'setBigInt64'],
  [BigUint64Array, 'DTYPE_UINT64', 'setBigUint64'],
];

// Nested arrays of numbers (or booleans) as a flat list and their shape.
function flatten(nested, what) {
  const shape = [];
  for (let level = nested; Array.isArray(level); level = level[0]) shape.push(level.length);
  const flat = nested.flat(shape.length - 1);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== expected || flat.some((v) => Array.isArray(v))) {
    throw new TblogError(`tblog: ${what}: nested arrays must be rectangular (shape [${shape}])`);
  }
  return { flat, shape };
}

/** A tblog.v1.Tensor from `values`: a typed array (its element type), an array
 *  of numbers (float64; nested arrays give the shape), an array of booleans,
 *  or {data, shape} with either. `shape` defaults to the values' own. */
function toTensor(values, shape, what = 'values') {
  if (values && !ArrayBuffer.isView(values) && !Array.isArray(values) && values.data !== undefined) {
    return toTensor(values.data, values.shape ?? shape, what);
  }
  let typed = values;
  if (Array.isArray(values)) {
    const { flat, shape: own } = flatten(values, what);
    shape = shape ?? own;
    if (flat.length > 0 && flat.every((v) => typeof v === 'boolean')) {
      return { dtype: 'DTYPE_BOOL', shape, data: Buffer.from(flat.map((v) => (v ? 1 : 0))) };
    }
    if (!flat.every((v) => typeof v === 'number')) {
      throw new TblogError(`tblog: ${what}: arrays must hold numbers or booleans`);
    }
    typed = Float64Array.from(flat);
  }
  const entry = TYPED.find(([type]) => typed instanceof type);
  if (!entry) {
    throw new TblogError(`tblog: ${what} must be a typed array (Float32Array, Uint8Array, ...), ` +
      'an array of numbers, or {data, shape}');
  }
  const [, dtype, setter] = entry;
  let data;
  if (isLittleEndian || typed.BYTES_PER_ELEMENT === 1) {
    data = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  } else {
    data = Buffer.alloc(typed.byteLength);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < typed.length; ++i) view[setter](i * typed.BYTES_PER_ELEMENT, typed[i], true);
  }
  return { dtype, shape: shape ?? [typed.length], data };
}

function nowSeconds() {
  return Date.now() / 1000;
}

/** The fields every record has, from a call's options. */
function header(tag, step, { subrun = '', wallTime, displayName = '', description = '' } = {}) {
  if (typeof tag !== 'string') throw new TblogError('tblog: a tag must be a string');
  if (!Number.isSafeInteger(step)) throw new TblogError(`tblog: tag "${tag}": step must be an integer, got ${step}`);
  return { tag, step, wallTime: wallTime ?? nowSeconds(), subrun, displayName, description };
}

function pick(table, name, what) {
  const value = table[name];
  if (!value) throw new TblogError(`tblog: unknown ${what} "${name}" (one of ${Object.keys(table).join(', ')})`);
  return value;
}

const SCALAR_STYLES = { tensor: 'SCALAR_STYLE_TENSOR', simple_value: 'SCALAR_STYLE_SIMPLE_VALUE' };
const HISTOGRAM_LAYOUTS = { uniform: 'HISTOGRAM_LAYOUT_UNIFORM', exponential: 'HISTOGRAM_LAYOUT_EXPONENTIAL' };
const IMAGE_STYLES = { tensor: 'IMAGE_STYLE_TENSOR', summary_image: 'IMAGE_STYLE_SUMMARY_IMAGE' };
const PIXEL_LAYOUTS = { HWC: 'PIXEL_LAYOUT_HWC', CHW: 'PIXEL_LAYOUT_CHW', NHWC: 'PIXEL_LAYOUT_NHWC', NCHW: 'PIXEL_LAYOUT_NCHW' };
const DATASET_TYPES = { '': 'DATASET_TYPE_UNSPECIFIED', training: 'DATASET_TYPE_TRAINING', validation: 'DATASET_TYPE_VALIDATION' };

function scalarStyle(style = 'tensor') {
  return pick(SCALAR_STYLES, style, 'scalar style');
}

/** Record.scalar: one point with its own Record (display name, description). */
function scalarRecord(tag, step, value, options = {}) {
  if (typeof value !== 'number') throw new TblogError(`tblog: scalar "${tag}": value must be a number`);
  return { ...header(tag, step, options), scalar: { value, style: scalarStyle(options.style) } };
}

function histogramRecord(tag, step, values, options = {}) {
  const { layout = 'uniform', buckets = 0 } = options;
  return {
    ...header(tag, step, options),
    histogram: { values: toTensor(values), layout: pick(HISTOGRAM_LAYOUTS, layout, 'histogram layout'), bucketCount: buckets },
  };
}

// Image.source from {png | jpeg | encoded} bytes, or pixels with a shape.
function imageSource(image, batch) {
  const encoded = image && (image.encoded ?? image.png ?? image.jpeg);
  if (encoded) return { source: { encoded: Buffer.from(encoded) }, layout: 'HWC' };
  if (!image || !image.pixels) {
    throw new TblogError('tblog: an image needs {pixels, height, width, channels}, {pixels, shape, layout} or {png}');
  }
  const { pixels } = image;
  if (!(pixels instanceof Uint8Array || pixels instanceof Uint8ClampedArray ||
        pixels instanceof Float32Array || pixels instanceof Float64Array)) {
    throw new TblogError('tblog: image pixels must be a Uint8Array (0-255) or a Float32Array/Float64Array (0-1)');
  }
  let { shape, layout } = image;
  if (!shape) {
    const { count, height, width, channels = 1 } = image;
    shape = batch ? [count, height, width, channels] : [height, width, channels];
    layout = batch ? 'NHWC' : 'HWC';
  }
  layout = layout ?? (batch ? 'NHWC' : 'HWC');
  if (batch !== layout.startsWith('N')) {
    throw new TblogError(`tblog: layout ${layout} is for ${layout.startsWith('N') ? 'images()' : 'image()'}`);
  }
  return { source: { pixels: toTensor(pixels, shape, 'pixels') }, layout };
}

/** Record.image: one image (batch false) or a batch (NHWC/NCHW, or count). */
function imageRecord(tag, step, image, options = {}, batch = false) {
  const { style = 'tensor', maxOutputs = 0 } = options;
  const { source, layout } = imageSource(image, batch);
  return {
    ...header(tag, step, options),
    image: { ...source, layout: pick(PIXEL_LAYOUTS, layout, 'pixel layout'), style: pick(IMAGE_STYLES, style, 'image style'), maxOutputs },
  };
}

/** Record.text: a Markdown string, or a table (an array of strings, or an
 *  array of rows of strings). */
function textRecord(tag, step, content, options = {}) {
  const text = { torchStyle: Boolean(options.torchStyle) };
  if (typeof content === 'string') {
    text.markdown = content;
  } else if (Array.isArray(content)) {
    const { flat, shape } = flatten(content, `text "${tag}"`);
    if (!flat.every((cell) => typeof cell === 'string')) throw new TblogError(`tblog: text "${tag}": table cells must be strings`);
    text.table = { shape, cells: flat };
  } else {
    throw new TblogError(`tblog: text "${tag}": a string (Markdown) or an array of strings (a table)`);
  }
  return { ...header(tag, step, options), text };
}

/** Record.audio: float PCM in [-1, 1]; `channels` > 1 means interleaved frames. */
function audioRecord(tag, step, samples, options = {}) {
  const { sampleRate = 44100, channels = 1, torchStyle = false } = options;
  const tensor = toTensor(samples, undefined, `audio "${tag}" samples`);
  if (channels > 1 && !samples.shape) {
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    if (count % channels !== 0) throw new TblogError(`tblog: audio "${tag}": ${count} samples are not whole frames of ${channels} channels`);
    tensor.shape = [count / channels, channels];
  }
  return { ...header(tag, step, options), audio: { samples: tensor, sampleRate, torchStyle } };
}

/** Record.prCurve: from {labels, predictions[, weights]} (the daemon counts,
 *  at `numThresholds`, default 127) or from counts per threshold
 *  ({truePositives, falsePositives, trueNegatives, falseNegatives}). */
function prCurveRecord(tag, step, data, options = {}) {
  let prCurve;
  if (data && data.labels !== undefined) {
    prCurve = {
      predictions: {
        labels: toTensor(data.labels, undefined, 'labels'),
        predictions: toTensor(data.predictions, undefined, 'predictions'),
        weights: data.weights === undefined ? undefined : toTensor(data.weights, undefined, 'weights'),
        numThresholds: options.numThresholds ?? data.numThresholds ?? 0,
      },
    };
  } else if (data && data.truePositives !== undefined) {
    const counts = {};
    for (const name of ['truePositives', 'falsePositives', 'trueNegatives', 'falseNegatives']) {
      counts[name] = Array.from(data[name] ?? [], Number);
    }
    prCurve = { counts };
  } else {
    throw new TblogError(`tblog: pr curve "${tag}": {labels, predictions} or {truePositives, falsePositives, trueNegatives, falseNegatives}`);
  }
  return { ...header(tag, step, options), prCurve };
}

function hparamValue(name, value) {
  if (typeof value === 'number') return { number: value };
  if (typeof value === 'boolean') return { flag: value };
  if (typeof value === 'string') return { text: value };
  throw new TblogError(`tblog: hparam "${name}" must be a number, string or boolean`);
}

/** tblog.v1.HParams from {name: value}, with optional `metrics` (tags, or
 *  {tag, subrun, displayName, description, datasetType}) and `domains`
 *  ({name: {min, max}} or {name: [values]}). */
function toHParams(values, { metrics = [], domains = {}, torchStyle = false } = {}) {
  if (!values) return undefined;
  const out = { values: {}, metrics: [], domains: {}, torchStyle };
  for (const [name, value] of Object.entries(values)) out.values[name] = hparamValue(name, value);
  for (const metric of metrics) {
    const spec = typeof metric === 'string' ? { tag: metric } : metric;
    out.metrics.push({
      tag: spec.tag, subrun: spec.subrun ?? '', displayName: spec.displayName ?? '', description: spec.description ?? '',
      datasetType: pick(DATASET_TYPES, spec.datasetType ?? '', 'dataset type'),
    });
  }
  for (const [name, domain] of Object.entries(domains)) {
    out.domains[name] = Array.isArray(domain)
      ? { discrete: { values: domain.map((v) => hparamValue(name, v)) } }
      : { interval: { min: domain.min, max: domain.max } };
  }
  return out;
}

/** Record.hparams: the run's (or a sub-run's) hparams session. */
function hparamsRecord(values, options = {}) {
  return { ...header('', options.step ?? 0, options), hparams: toHParams(values, options) };
}

/** Record.graph: a serialized tensorflow.GraphDef (bytes), or {nodes: [...]}
 *  ({name, op, inputs, device, attrs}, attrs as tblog.v1.AttrValue objects). */
function graphRecord(graph, options = {}) {
  let source;
  if (graph instanceof Uint8Array) {
    source = { graphDef: Buffer.from(graph) };
  } else if (graph && Array.isArray(graph.nodes)) {
    source = { nodes: { node: graph.nodes.map((n) => ({ name: n.name, op: n.op ?? '', inputs: n.inputs ?? [], device: n.device ?? '', attrs: n.attrs ?? {} })) } };
  } else {
    throw new TblogError('tblog: a graph is a serialized GraphDef (Buffer) or {nodes: [{name, op, inputs}]}');
  }
  return { ...header('', options.step ?? 0, options), graph: source };
}

/** Record.embedding: a [N, D] matrix (nested arrays, or {data, shape}) with
 *  optional metadata: one label per row, or rows of `metadataHeader` columns. */
function embeddingRecord(tag, step, matrix, options = {}) {
  const tensor = toTensor(matrix, undefined, `embedding "${tag}"`);
  if (tensor.shape.length !== 2) throw new TblogError(`tblog: embedding "${tag}": the matrix must be 2-D [N, D], got [${tensor.shape}]`);
  const { metadata = [], metadataHeader = [] } = options;
  return {
    ...header(tag, step, options),
    embedding: { matrix: tensor, metadata: metadata.flat().map(String), metadataHeader: metadataHeader.map(String) },
  };
}

/** Record.customScalars from PyTorch's layout form ({category: {chart:
 *  ['Multiline', [tags]] | ['Margin', [value, lower, upper]]}}) or the
 *  proto's ({categories: [...]}). */
function customScalarsRecord(layout, options = {}) {
  let message = layout;
  if (!layout || !Array.isArray(layout.categories)) {
    message = { categories: [] };
    for (const [title, charts] of Object.entries(layout || {})) {
      const category = { title, charts: [], closed: false };
      for (const [chartTitle, [kind, tags]] of Object.entries(charts)) {
        if (kind === 'Multiline') {
          category.charts.push({ title: chartTitle, multiline: { tags } });
        } else if (kind === 'Margin' && tags.length === 3) {
          category.charts.push({ title: chartTitle, margin: { series: [{ value: tags[0], lower: tags[1], upper: tags[2] }] } });
        } else {
          throw new TblogError(`tblog: custom scalars chart "${chartTitle}": ['Multiline', [tags]] or ['Margin', [value, lower, upper]]`);
        }
      }
      message.categories.push(category);
    }
  }
  return { ...header('', options.step ?? 0, options), customScalars: message };
}

/** Rough bytes of a record, for batching: tensor and string payloads. */
function recordBytes(value) {
  if (typeof value === 'string') return value.length;
  if (value instanceof Uint8Array) return value.length;
  if (typeof value !== 'object' || value === null) return 8;
  let total = 8;
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] !== 'object') return 8 * value.length + (typeof value[0] === 'string' ? value.join('').length : 0);
    for (const item of value) total += recordBytes(item);
    return total;
  }
  for (const key of Object.keys(value)) total += recordBytes(value[key]);
  return total;
}

module.exports = {
  toTensor, toHParams, header, scalarStyle, scalarRecord, histogramRecord, imageRecord, textRecord, audioRecord,
  prCurveRecord, hparamsRecord, graphRecord, embeddingRecord, customScalarsRecord, recordBytes, nowSeconds,
};
