'use strict';
// The client's one error type and the list of gRPC codes it retries.

const grpc = require('@grpc/grpc-js');

/** What the daemon refused, or why the stream failed. `code` is the gRPC
 *  status code (a number) when known; `errors` the RecordErrors, if any. */
class TblogError extends Error {
  constructor(message, { code, errors = [] } = {}) {
    super(message);
    this.name = 'TblogError';
    this.code = code;
    this.errors = errors;
  }
}

// gRPC codes after which the writer reconnects (OpenRun RESUME, with backoff)
// and resends what is not acknowledged: the transient codes of the "Retries"
// comment in proto/tblog/v1/tblog.proto, where each one's reason is given.
// The C++ client's IsRetryable and the Python client's _RETRYABLE are the same
// set; change all of them with that comment.
const RETRYABLE_CODES = Object.freeze([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.ABORTED,
  grpc.status.CANCELLED,
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.FAILED_PRECONDITION,
]);

/** True for a code the "Retries" comment calls transient. */
function isRetryable(code) {
  return RETRYABLE_CODES.includes(code);
}

/** "UNAVAILABLE" for 14: a status code's name, for messages. */
function codeName(code) {
  const name = Object.keys(grpc.status).find((key) => grpc.status[key] === code);
  return name || `code ${code}`;
}

/** A TblogError for a failed RPC: "<what> failed: <CODE>: <details>". */
function rpcError(what, err) {
  return new TblogError(`tblog: ${what} failed: ${codeName(err.code)}: ${err.details || err.message}`,
    { code: err.code });
}

module.exports = { TblogError, RETRYABLE_CODES, isRetryable, codeName, rpcError };
