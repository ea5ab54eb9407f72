'use strict';
// Puts the repository's proto/tblog/v1/tblog.proto into this package
// (proto/tblog/v1/tblog.proto), so that a packed or installed copy of the
// package carries the API it speaks and never reads a checkout. Run by npm
// before it packs the package (`npm pack`, `npm install <folder>`); the copy
// is not committed (.gitignore), and src/connection.js prefers the
// checkout's proto when the package sits in a checkout.

const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '..');
const source = path.resolve(packageDir, '..', '..', 'proto', 'tblog', 'v1', 'tblog.proto');
const target = path.join(packageDir, 'proto', 'tblog', 'v1', 'tblog.proto');

if (fs.existsSync(source)) {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.copyFileSync(source, target);
} else if (!fs.existsSync(target)) {
  console.error(`copy-proto: neither ${source} (a tblog checkout) nor ${target} exists`);
  process.exit(1);
}
