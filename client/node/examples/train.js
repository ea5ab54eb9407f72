#!/usr/bin/env node
'use strict';
// A training loop's logging with the Node client: run it against a tblogd
// (`./scripts/run.sh` in the repository starts one on 127.0.0.1:6066), then
// point TensorBoard at the daemon's --logdir.
//
//   node examples/train.js [--address unix:/run/tblogd/tblogd.sock] [--steps 200]
//
// The address defaults to $TBLOG_ADDRESS, else 127.0.0.1:6066. Killing and
// restarting the daemon while this runs loses nothing: the writer reconnects
// and resends what the daemon had not acknowledged.

const { Writer, TblogError } = require('@tblog/client');

function argument(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 && index + 1 < process.argv.length ? process.argv[index + 1] : fallback;
}

// A deterministic "random" sequence, so reruns draw the same curves.
function* noise(seed) {
  let x = seed;
  for (;;) {
    x = (x * 1103515245 + 12345) % 2147483648;
    yield x / 2147483648 - 0.5;
  }
}

async function main() {
  const steps = Number(argument('steps', 200));
  const writer = await Writer.open({
    address: argument('address', undefined),
    experiment: 'node-example',
    name: 'baseline',
    hparams: { lr: 0.01, optimizer: 'adam', layers: 3 },
    hparamMetrics: ['loss', { tag: 'accuracy', subrun: 'validation', datasetType: 'validation' }],
  });
  console.log(`logging ${steps} steps to ${writer.directory}`);
  writer.text('about', 0, `A run of **examples/train.js**, ${steps} steps.`);
  writer.graph({ nodes: [
    { name: 'input', op: 'Placeholder' },
    { name: 'dense/kernel', op: 'Variable' },
    { name: 'dense/matmul', op: 'MatMul', inputs: ['input', 'dense/kernel'] },
    { name: 'loss', op: 'SoftmaxCrossEntropy', inputs: ['dense/matmul'] },
  ] });
  writer.customScalars({ Training: { 'loss and accuracy': ['Multiline', ['loss', 'accuracy']] } });

  const random = noise(42);
  const weights = new Float32Array(1000);
  for (let step = 0; step < steps; ++step) {
    const loss = 2 * Math.exp(-step / (steps / 4)) + 0.05 * random.next().value;
    writer.scalar('loss', step, loss);
    writer.scalar('lr', step, 0.01 * Math.pow(0.99, step));
    if (step % 10 === 0) {
      for (let i = 0; i < weights.length; ++i) weights[i] = random.next().value * (1 + step / steps);
      writer.histogram('weights', step, weights);
      writer.scalar('accuracy', step, 1 - loss / 2, { subrun: 'validation' });
    }
    if (step % 50 === 0) {
      const size = 16;
      const pixels = new Uint8Array(size * size * 3);
      for (let i = 0; i < size * size; ++i) {
        pixels[3 * i] = (i % size) * 16;
        pixels[3 * i + 1] = Math.floor(i / size) * 16;
        pixels[3 * i + 2] = (step * 2) % 256;
      }
      writer.image('sample', step, { pixels, height: size, width: size, channels: 3 });
      const tone = Float32Array.from({ length: 8000 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / 8000));
      writer.audio('tone', step, tone, { sampleRate: 8000 });
    }
    if (step % 100 === 99) await writer.flush(); // visible in TensorBoard now
  }
  const labels = Array.from({ length: 100 }, (_, i) => i % 2 === 0);
  const predictions = Float32Array.from(labels, (label) => (label ? 0.7 : 0.3) + 0.4 * random.next().value);
  writer.prCurve('classifier', steps, { labels, predictions });
  writer.embedding('classes', steps, [[0, 0], [1, 0], [0, 1], [1, 1]], { metadata: ['a', 'b', 'c', 'd'] });
  await writer.close({ status: 'SESSION_STATUS_SUCCESS' });
  console.log(`done: ${writer.runPath}`);
}

main().catch((err) => {
  console.error(err instanceof TblogError ? err.message : err);
  process.exit(1);
});
