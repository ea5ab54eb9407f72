// Type-checked (tsc --strict --noEmit) against the installed package by
// package.test.js: what a TypeScript user writes compiles, and the lines
// marked @ts-expect-error must not (the declarations constrain the calls).
import { Writer, TblogError, RETRYABLE_CODES, DEFAULT_ADDRESS, defaultAddress } from '@tblog/client';
import type { OpenOptions, WriterStats } from '@tblog/client';

export async function run(address: string): Promise<WriterStats> {
  const options: OpenOptions = { address, runPath: 'ts/run', hparams: { lr: 0.1, opt: 'adam', warm: true }, retainUntil: 'durable' };
  const writer: Writer = await Writer.open(options);
  writer.scalar('loss', 1, 0.5, { subrun: 'validation', style: 'simple_value' });
  writer.histogram('w', 1, new Float32Array(4), { layout: 'exponential' });
  writer.histogram('m', 1, { data: new Int32Array(4), shape: [2, 2] });
  writer.image('img', 1, { pixels: new Uint8Array(12), height: 2, width: 2, channels: 3 });
  writer.image('png', 1, { png: Buffer.alloc(8) });
  writer.images('batch', 1, { pixels: new Float32Array(24), shape: [2, 3, 2, 2], layout: 'NCHW' }, { maxOutputs: 2 });
  writer.text('t', 1, [['a', 'b']]);
  writer.audio('a', 1, new Float32Array(100), { sampleRate: 8000 });
  writer.prCurve('pr', 1, { labels: [true, false], predictions: [0.9, 0.1] });
  writer.hparams({ lr: 0.2 }, { metrics: ['loss', { tag: 'acc', datasetType: 'validation' }], domains: { lr: { min: 0, max: 1 } } });
  writer.graph({ nodes: [{ name: 'x', op: 'Placeholder' }] });
  writer.embedding('e', 1, [[1, 2], [3, 4]], { metadata: ['a', 'b'] });
  writer.customScalars({ c: { chart: ['Multiline', ['loss']] } });
  // @ts-expect-error a step is a number
  writer.scalar('loss', 'one', 0.5);
  // @ts-expect-error no such histogram layout
  writer.histogram('w', 1, [1], { layout: 'log' });
  // @ts-expect-error an image needs its size
  writer.image('img', 1, { pixels: new Uint8Array(12) });
  try {
    await writer.flush({ timeoutMs: 1000 });
  } catch (err) {
    if (err instanceof TblogError && err.code !== undefined && RETRYABLE_CODES.includes(err.code)) throw err;
  }
  await writer.close({ status: 'SESSION_STATUS_SUCCESS' });
  const address2: string = defaultAddress() || DEFAULT_ADDRESS;
  void address2;
  return writer.stats();
}
