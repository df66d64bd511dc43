// Warren's JavaScript and TypeScript kernel: one stateful context of a sandbox.
//
//   node node.js javascript|typescript
//
// The same protocol as python.py: on stdin a JSON header line {"len": N, "env": {...}} and
// N bytes of code per cell; the cell's output on stdout and stderr; events on fd 3, one
// JSON object per line (result, display, error, done). Top-level declarations, imports
// (require) and functions live on between cells. TypeScript is transpiled per cell with
// the typescript package the sandbox has. SIGINT interrupts a running cell.
'use strict';
const fs = require('fs');
const util = require('util');
const vm = require('vm');
const path = require('path');

const language = process.argv[2] === 'typescript' ? 'typescript' : 'javascript';
const EVENTS = 3;

function emit(event) {
  fs.writeSync(EVENTS, JSON.stringify(event) + '\n');
}

function loadTypeScript() {
  for (const where of ['typescript', '/usr/share/nodejs/typescript', '/usr/lib/nodejs/typescript']) {
    try {
      return require(where);
    } catch (e) { /* try the next place */ }
  }
  throw new Error('the typescript package is not installed in this sandbox');
}

const ts = language === 'typescript' ? loadTypeScript() : null;

function transpile(code) {
  if (!ts) return code;
  const out = ts.transpileModule(code, {
    compilerOptions: { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS, sourceMap: false },
    reportDiagnostics: false,
  });
  return out.outputText;
}

// The context's globals: what a script run by node sees, with require resolving from the
// working directory (so modules installed there with npm are found).
const cellRequire = require('module').createRequire(path.join(process.cwd(), '[cell]'));
const sandbox = {
  require: cellRequire, module: { exports: {} }, console, process, Buffer, URL, URLSearchParams,
  TextEncoder, TextDecoder, setTimeout, clearTimeout, setInterval, clearInterval, setImmediate,
  clearImmediate, queueMicrotask, structuredClone, fetch: globalThis.fetch, AbortController,
  display: (...objs) => objs.forEach((o) => emit({ type: 'display', data: bundle(o) })),
};
sandbox.exports = sandbox.module.exports;
sandbox.globalThis = sandbox;
const context = vm.createContext(sandbox);

function bundle(value) {
  const data = { 'text/plain': util.inspect(value, { depth: 4, colors: false }) };
  if (value !== null && typeof value === 'object') {
    try {
      const json = JSON.stringify(value);
      if (json !== undefined) data['application/json'] = json;
    } catch (e) { /* circular: text only */ }
    for (const [mime, method] of [['text/html', '_repr_html_'], ['image/svg+xml', '_repr_svg_'],
      ['image/png', '_repr_png_'], ['text/markdown', '_repr_markdown_']]) {
      if (typeof value[method] === 'function') {
        try { data[mime] = String(value[method]()); } catch (e) { /* skip it */ }
      }
    }
  }
  return data;
}

function errorEvent(err, count) {
  const isError = err && typeof err === 'object' && 'stack' in err;
  const name = isError ? (err.name || 'Error') : 'Error';
  const value = isError ? String(err.message) : util.inspect(err);
  let stack = isError ? String(err.stack) : `${name}: ${value}`;
  // The kernel's own frames say nothing about the cell.
  stack = stack.split('\n').filter((l) => !l.includes(__filename) && !l.includes('node:vm')).join('\n');
  emit({ type: 'error', name, value, traceback: stack, execution_count: count });
}

async function runCell(code, count) {
  const filename = `<cell ${count}>`;
  const script = new vm.Script(transpile(code), { filename });
  let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
  if (value && typeof value.then === 'function') value = await value;
  if (value !== undefined) {
    sandbox._ = value;
    emit({ type: 'result', data: bundle(value) });
  }
}

// Requests: a header line, then exactly len bytes of code.
let buffered = Buffer.alloc(0);
let waiting = null;
process.stdin.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk]);
  if (waiting) waiting();
});
process.stdin.on('end', () => process.exit(0));

async function nextRequest() {
  for (;;) {
    const nl = buffered.indexOf(10);
    if (nl >= 0) {
      const header = JSON.parse(buffered.subarray(0, nl).toString());
      if (buffered.length >= nl + 1 + header.len) {
        const code = buffered.subarray(nl + 1, nl + 1 + header.len).toString();
        buffered = buffered.subarray(nl + 1 + header.len);
        return { header, code };
      }
    }
    await new Promise((resolve) => { waiting = resolve; });
    waiting = null;
  }
}

process.on('SIGINT', () => { /* between cells an interrupt has nothing to stop */ });

async function main() {
  emit({ type: 'ready', language, pid: process.pid });
  for (let count = 1; ; count++) {
    const { header, code } = await nextRequest();
    const env = header.env || {};
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
    Object.assign(process.env, env);
    const started = Date.now();
    let status = 'ok';
    try {
      await runCell(code, count);
    } catch (err) {
      status = 'error';
      errorEvent(err, count);
    }
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
    emit({ type: 'done', status, execution_count: count, duration_ms: Date.now() - started });
  }
}

main();
