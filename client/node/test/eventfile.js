'use strict';
// Reads the event files tblogd wrote, for the end-to-end tests: TFRecord
// framing (CRCs checked) and Events parsed with protobufjs from the
// repository's proto/tblog/tensorboard/event.proto. Defines no tests.

const fs = require('node:fs');
const path = require('node:path');
const protobuf = require('protobufjs');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');

let Event = null;
function eventType() {
  if (Event) return Event;
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync('tblog/tensorboard/event.proto', { keepCase: false });
  Event = root.lookupType('tblog.tensorboard.Event');
  return Event;
}

// CRC-32C (Castagnoli), masked as TFRecord does.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; ++n) {
    let c = n;
    for (let k = 0; k < 8; ++k) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();
function maskedCrc(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** The Events of one event file, in order. */
function readEvents(file) {
  const bytes = fs.readFileSync(file);
  const events = [];
  for (let offset = 0; offset < bytes.length;) {
    const length = Number(bytes.readBigUInt64LE(offset));
    if (bytes.readUInt32LE(offset + 8) !== maskedCrc(bytes.subarray(offset, offset + 8))) {
      throw new Error(`${file}: bad length CRC at ${offset}`);
    }
    const data = bytes.subarray(offset + 12, offset + 12 + length);
    if (bytes.readUInt32LE(offset + 12 + length) !== maskedCrc(data)) throw new Error(`${file}: bad data CRC at ${offset}`);
    events.push(eventType().decode(data));
    offset += 16 + length;
  }
  return events;
}

/** The Events of every event file directly in `dir`, files in name order. */
function runEvents(dir) {
  const files = fs.readdirSync(dir).filter((name) => name.startsWith('events.out.tfevents.')).sort();
  return files.flatMap((name) => readEvents(path.join(dir, name)));
}

/** {tag: [[step, value], ...]} of the Summary values in `dir`, in file order,
 *  with `decode(value)` giving each value (default: the scalar). */
function values(dir, decode = scalarOf) {
  const out = {};
  for (const event of runEvents(dir)) {
    for (const value of event.summary?.value ?? []) {
      (out[value.tag] ??= []).push([Number(event.step), decode(value)]);
    }
  }
  return out;
}

/** A Summary.Value's scalar: simple_value or a float tensor's first element. */
function scalarOf(value) {
  if (value.value === 'simpleValue' || value.simpleValue !== undefined && value.tensor == null) return value.simpleValue;
  const tensor = value.tensor;
  if (!tensor) return undefined;
  if (tensor.floatVal && tensor.floatVal.length) return tensor.floatVal[0];
  if (tensor.tensorContent && tensor.tensorContent.length >= 4) return Buffer.from(tensor.tensorContent).readFloatLE(0);
  return undefined;
}

module.exports = { readEvents, runEvents, values, scalarOf };
