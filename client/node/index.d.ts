// TypeScript declarations of @tblog/client (src/index.js). The wire types are
// those of proto/tblog/v1/tblog.proto as @grpc/proto-loader presents them:
// camelCase fields, enums as their names, int64 as number, bytes as Buffer.
/// <reference types="node" />

/** What the daemon refused, or why delivery failed. */
export class TblogError extends Error {
  /** The gRPC status code (3 = INVALID_ARGUMENT, 4 = DEADLINE_EXCEEDED,
   *  14 = UNAVAILABLE, ...), when known. */
  code?: number;
  /** The records the daemon rejected, when that is the error. */
  errors: RecordError[];
}

/** One rejected record (tblog.v1.RecordError). */
export interface RecordError {
  sequence: number;
  index: number;
  tag: string;
  code: number;
  message: string;
}

/** The gRPC codes a writer reconnects on (tblog.proto, "Retries"). */
export const RETRYABLE_CODES: readonly number[];
/** "127.0.0.1:6066". */
export const DEFAULT_ADDRESS: string;
/** $TBLOG_ADDRESS, else DEFAULT_ADDRESS. */
export function defaultAddress(): string;
/** The tblog.proto the client loads ($TBLOG_PROTO, else its own copy). */
export function protoPath(): string;

export type HParamValue = number | string | boolean;
export type SessionStatus =
  | 'SESSION_STATUS_UNSPECIFIED' | 'SESSION_STATUS_SUCCESS' | 'SESSION_STATUS_FAILURE' | 'SESSION_STATUS_RUNNING';
export type OpenMode = 'OPEN_MODE_DEFAULT' | 'OPEN_MODE_CREATE' | 'OPEN_MODE_RESUME';

/** A metric the hparams dashboard judges runs by: a scalar tag of the run. */
export type HParamMetric = string | {
  tag: string;
  subrun?: string;
  displayName?: string;
  description?: string;
  datasetType?: '' | 'training' | 'validation';
};
/** A hparam's domain: an interval, or the list of its values. */
export type HParamDomain = { min: number; max: number } | HParamValue[];

export interface TlsOptions {
  /** PEM file of the CA that signed the daemon's certificate. */
  ca?: string;
  /** PEM files of this client's certificate and key (mTLS). */
  cert?: string;
  key?: string;
  /** The name the daemon's certificate is checked against. */
  serverName?: string;
  /** TLS with the system's CAs. */
  enabled?: boolean;
}

export interface OpenOptions {
  /** "host:port", "unix:/path" or "/path"; default $TBLOG_ADDRESS, else 127.0.0.1:6066. */
  address?: string;
  /** The run: <logdir>/<experiment>/<YYYYmmdd-HHMMSS>[-<name>] ... */
  experiment?: string;
  name?: string;
  /** ... or exactly <logdir>/<runPath>. */
  runPath?: string;
  mode?: OpenMode;
  /** The run's hyperparameters, written when the run opens. */
  hparams?: Record<string, HParamValue>;
  hparamMetrics?: HParamMetric[];
  hparamDomains?: Record<string, HParamDomain>;
  /** Reported by ListRuns (host, rank, ...). */
  labels?: Record<string, string>;
  /** PyTorch's purge_step. */
  purgeStep?: number;
  filenameSuffix?: string;
  /** Fixed to continue a run's sequences after this process restarts;
   *  default a random UUID. */
  writerId?: string;
  /** Buffered records leave every this many ms (default 1000; 0 = only at
   *  flush/close and when the buffer is full). */
  sendIntervalMs?: number;
  /** TLS settings; default from TBLOG_TLS, TBLOG_TLS_CA, TBLOG_TLS_CLIENT_CERT,
   *  TBLOG_TLS_CLIENT_KEY, TBLOG_TLS_SERVER_NAME. */
  tls?: TlsOptions;
  /** Bearer token; default $TBLOG_TOKEN (or the first line of $TBLOG_TOKEN_FILE). */
  token?: string;
  /** When a sent batch may be forgotten (what a reconnect resends):
   *  'written' (default: survives a daemon crash) or 'durable' (fsynced:
   *  survives a machine crash; holds more memory). */
  retainUntil?: 'written' | 'durable';
  /** Bound on the bytes buffered and sent but not acknowledged (what waits
   *  while the daemon is away); default 256 MiB. */
  maxBufferBytes?: number;
  /** Past maxBufferBytes a logging call drops its record ('drop-newest', the
   *  default: counted in stats().dropped, reported by the next flush/close)
   *  or throws RESOURCE_EXHAUSTED ('throw'). */
  overflow?: 'drop-newest' | 'throw';
  /** Deadline of each unary call (OpenRun, Flush, CloseRun); default 10000. */
  rpcTimeoutMs?: number;
  /** How long close() waits for unacknowledged batches; default 30000. */
  closeTimeoutMs?: number;
  /** Reconnect delays: doubling from initial (default 100) to max (default
   *  5000), each taken at a random point of [delay/2, delay]. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Options every logging method takes. */
export interface RecordOptions {
  /** A sub-run ("validation"): a directory of the run, shown as a run. */
  subrun?: string;
  /** Seconds since the epoch; default now. */
  wallTime?: number;
  displayName?: string;
  description?: string;
}

/** Element types a tensor may have; plain number arrays are sent as float64. */
export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
/** Nested arrays of numbers: their nesting is the shape. */
export type NestedNumbers = number | NestedNumbers[];
/** Values of a tensor: a typed array (flat), nested number arrays, or data with a shape. */
export type TensorInput = TypedArray | NestedNumbers[] | { data: TypedArray | NestedNumbers[]; shape: number[] };

export type Pixels = Uint8Array | Uint8ClampedArray | Float32Array | Float64Array;
/** One image: pixels (uint8 0-255 or float 0-1) with their size, or encoded bytes. */
export type ImageInput =
  | { pixels: Pixels; height: number; width: number; channels?: number }
  | { pixels: Pixels; shape: number[]; layout: 'HWC' | 'CHW' }
  | { png: Uint8Array } | { jpeg: Uint8Array } | { encoded: Uint8Array };
/** A batch of images. */
export type ImageBatchInput =
  | { pixels: Pixels; count: number; height: number; width: number; channels?: number }
  | { pixels: Pixels; shape: number[]; layout: 'NHWC' | 'NCHW' };

export type PrCurveInput =
  | { labels: TensorInput | boolean[]; predictions: TensorInput; weights?: TensorInput; numThresholds?: number }
  | { truePositives: ArrayLike<number>; falsePositives: ArrayLike<number>; trueNegatives: ArrayLike<number>; falseNegatives: ArrayLike<number> };

/** A graph node the daemon puts into a GraphDef; attrs are tblog.v1.AttrValue objects. */
export interface GraphNode {
  name: string;
  op?: string;
  inputs?: string[];
  device?: string;
  attrs?: Record<string, { s?: string; i?: number; f?: number; b?: boolean; shape?: { dims: number[] }; list?: object }>;
}

/** PyTorch's custom-scalars layout: {category: {chart: [kind, tags]}}. */
export type CustomScalarsLayout =
  | Record<string, Record<string, ['Multiline', string[]] | ['Margin', [string, string, string]]>>
  | { categories: object[] };

export interface WriterStats {
  batches: number;
  records: number;
  resentBatches: number;
  reconnects: number;
  /** Records dropped by the buffer's bound (overflow 'drop-newest'). */
  dropped: number;
}

/** Writes one run. The logging methods only buffer and throw a TblogError only
 *  for arguments that cannot be sent; flush() and close() report what the
 *  daemon refused. Delivery survives daemon restarts and broken connections:
 *  the writer reconnects with backoff and resends what was not acknowledged,
 *  each record written once. Use from one async context; not after close(). */
export class Writer {
  /** Opens a run; rejects at once with the daemon's message, or naming the
   *  address when the daemon cannot be reached. */
  static open(options?: OpenOptions): Promise<Writer>;

  readonly runId: string;
  /** The run's directory relative to the daemon's log dir. */
  readonly runPath: string;
  /** The run's directory as the daemon sees it. */
  readonly directory: string;
  readonly resumed: boolean;
  readonly writerId: string;

  scalar(tag: string, step: number, value: number, options?: RecordOptions & { style?: 'tensor' | 'simple_value' }): void;
  histogram(tag: string, step: number, values: TensorInput,
    options?: RecordOptions & { layout?: 'uniform' | 'exponential'; buckets?: number }): void;
  image(tag: string, step: number, image: ImageInput, options?: RecordOptions & { style?: 'tensor' | 'summary_image' }): void;
  images(tag: string, step: number, batch: ImageBatchInput,
    options?: RecordOptions & { style?: 'tensor' | 'summary_image'; maxOutputs?: number }): void;
  /** Markdown, or a table (string[] or string[][]). */
  text(tag: string, step: number, content: string | string[] | string[][], options?: RecordOptions & { torchStyle?: boolean }): void;
  /** Float PCM in [-1, 1]; interleaved when channels > 1. */
  audio(tag: string, step: number, samples: TensorInput,
    options?: RecordOptions & { sampleRate?: number; channels?: number; torchStyle?: boolean }): void;
  prCurve(tag: string, step: number, data: PrCurveInput, options?: RecordOptions & { numThresholds?: number }): void;
  hparams(values: Record<string, HParamValue>, options?: RecordOptions & {
    step?: number; metrics?: HParamMetric[]; domains?: Record<string, HParamDomain>; torchStyle?: boolean;
  }): void;
  /** A serialized tensorflow.GraphDef, or nodes. */
  graph(graph: Uint8Array | { nodes: GraphNode[] }, options?: RecordOptions & { step?: number }): void;
  /** A [N, D] matrix for the projector. */
  embedding(tag: string, step: number, matrix: TensorInput,
    options?: RecordOptions & { metadata?: string[] | string[][]; metadataHeader?: string[] }): void;
  customScalars(layout: CustomScalarsLayout, options?: RecordOptions & { step?: number }): void;
  /** Any tblog.v1.Record as proto-loader takes it. */
  record(record: { tag?: string; step?: number; wallTime?: number; subrun?: string; [kind: string]: unknown }): void;

  /** Resolves once everything logged before is written and flushed by the
   *  daemon (fsynced with sync); waits across reconnects, up to timeoutMs
   *  (default no limit; close() ends the wait with FAILED_PRECONDITION).
   *  Rejects with rejected records or a final failure. */
  flush(options?: { sync?: boolean; timeoutMs?: number }): Promise<void>;
  /** Flushes (up to timeoutMs, default closeTimeoutMs), ends the stream and
   *  releases this writer's hold on the run (the run closes with its last
   *  writer). Idempotent. */
  close(options?: { status?: SessionStatus; timeoutMs?: number }): Promise<void>;
  stats(): WriterStats;
}
