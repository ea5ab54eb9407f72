'use strict';
// Node client for tblogd (proto/tblog/v1/tblog.proto): see README.md.
//
//   const { Writer } = require('@tblog/client');
//   const writer = await Writer.open({ runPath: 'mnist/baseline' });
//   writer.scalar('loss', step, 0.25);
//   await writer.close();
//
// Layout: writer.js (the Writer and its buffer), stream.js (sequenced
// batches, acknowledgements, reconnect and resend), records.js (a Record for
// each kind), connection.js (proto, address, TLS, token), errors.js
// (TblogError, the retried codes).

const { Writer } = require('./writer.js');
const { TblogError, RETRYABLE_CODES } = require('./errors.js');
const { DEFAULT_ADDRESS, protoPath, defaultAddress } = require('./connection.js');

module.exports = { Writer, TblogError, RETRYABLE_CODES, DEFAULT_ADDRESS, defaultAddress, protoPath };
