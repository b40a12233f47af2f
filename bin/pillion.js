#!/usr/bin/env node
'use strict';
// The compiled CLI lives in dist/ (built by `npm install` through the prepare script).
try {
  require('../dist/cli/main.js').main(process.argv.slice(2));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main')) {
    process.stderr.write('pillion: not built; run `npm install` (or `npm run build`) first\n');
    process.exit(1);
  }
  throw err;
}
