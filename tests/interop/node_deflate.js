// SPDX-License-Identifier: MIT
// Interop: node ws with perMessageDeflate against lightws (RFC 7692), both roles, over window bits 8..15 and context takeover on/off; prints "ok NAME" / "FAIL NAME: why".
//   node node_deflate.js client ws://HOST:PORT/PATH   (node connects to lightws-echo)
//   node node_deflate.js server                        (prints "listening NAME PORT" per
//     configuration, then checks the lightws-echo --client that connects to each)
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');
const { WebSocketServer } = require('ws');

// Every window size both ways, with and without context takeover, and
// mixed limits (ours small, theirs large and the reverse).
const CONFIGS = [];
for (let bits = 8; bits <= 15; bits++) {
  CONFIGS.push({ name: `window ${bits}/${bits} takeover`, serverMaxWindowBits: bits,
    clientMaxWindowBits: bits, serverNoContextTakeover: false, clientNoContextTakeover: false });
}
for (const bits of [8, 9, 12, 15]) {
  CONFIGS.push({ name: `window ${bits}/${bits} no takeover`, serverMaxWindowBits: bits,
    clientMaxWindowBits: bits, serverNoContextTakeover: true, clientNoContextTakeover: true });
}
CONFIGS.push({ name: 'window 8/15', serverMaxWindowBits: 8, clientMaxWindowBits: 15 });
CONFIGS.push({ name: 'window 15/8', serverMaxWindowBits: 15, clientMaxWindowBits: 8 });
CONFIGS.push({ name: 'server no takeover only', serverNoContextTakeover: true });
CONFIGS.push({ name: 'client no takeover only', clientNoContextTakeover: true });
CONFIGS.push({ name: 'defaults' });

function pmdOptions(c) {
  const o = { threshold: 0 }; // compress every message, empty ones too
  for (const k of ['serverMaxWindowBits', 'clientMaxWindowBits',
    'serverNoContextTakeover', 'clientNoContextTakeover']) {
    if (c[k] !== undefined) o[k] = c[k];
  }
  return o;
}

function queueOf(ws) {
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift().resolve(m);
    else queue.push(m);
  });
  ws.on('close', () => {
    while (waiters.length) waiters.shift().reject(new Error('closed'));
  });
  return () => queue.length ? Promise.resolve(queue.shift())
    : new Promise((res, rej) => waiters.push({ resolve: res, reject: rej }));
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error(`timeout: ${what}`)), ms).unref())]);
}

// Text that compresses, and random bytes that do not.
function textOf(n) {
  const s = 'permessage-deflate between node ws and lightws, \u00e9\u20ac. ';
  return s.repeat(Math.ceil(n / s.length)).slice(0, n);
}

// The messages one side sends and expects back (the echo).
function messages() {
  return [
    ['text', textOf(2000), false],
    ['empty text', '', false],
    ['empty binary', Buffer.alloc(0), true],
    ['random 100 KiB', crypto.randomBytes(100 * 1024), true],
    ['text 1 MiB', textOf(1 << 20), false],
    ['small text', 'x', false],
  ];
}

function same(m, data, binary) {
  if (m.isBinary !== binary) return false;
  return binary ? Buffer.compare(m.data, data) === 0 : m.data.toString('utf8') === data;
}

function extensionOf(ws) {
  return ws.extensions || '';
}

async function clientCase(url, c) {
  const ws = new WebSocket(url, { perMessageDeflate: pmdOptions(c), maxPayload: 0 });
  const next = queueOf(ws);
  let ext = '';
  ws.once('upgrade', (res) => { ext = res.headers['sec-websocket-extensions'] || ''; });
  await withTimeout(new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); }),
    5000, 'open');
  check(/^permessage-deflate/.test(ext) && extensionOf(ws) === 'permessage-deflate',
    `no permessage-deflate negotiated (${ext})`);
  // §7.1.2.1: a limit asked for is answered, the same or smaller (lightws
  // compresses with 12 bits at most)
  if (c.serverMaxWindowBits) {
    const m = /server_max_window_bits=(\d+)/.exec(ext);
    check(m && +m[1] === Math.min(12, c.serverMaxWindowBits), `server window answer: ${ext}`);
  }
  if (c.serverNoContextTakeover) {
    check(/server_no_context_takeover/.test(ext), `server_no_context_takeover not answered: ${ext}`);
  }
  for (let round = 0; round < 2; round++) { // twice: context carried over
    for (const [what, data, binary] of messages()) {
      ws.send(data, { binary, compress: true });
      const m = await withTimeout(next(), 10000, what);
      check(same(m, data, binary), `${what} echo differs (round ${round})`);
    }
  }
  // one message sent uncompressed on the same connection
  ws.send('not compressed', { compress: false });
  const m = await withTimeout(next(), 5000, 'uncompressed');
  check(same(m, 'not compressed', false), 'uncompressed echo differs');
  const closed = new Promise((res) => ws.once('close', (code) => res(code)));
  ws.close(1000);
  const code = await withTimeout(closed, 5000, 'close');
  check(code === 1000, `close code ${code}`);
  return ext;
}

async function runClient(url) {
  let failures = 0;
  for (const c of CONFIGS) {
    try {
      const ext = await clientCase(url, c);
      console.log(`ok ${c.name} [${ext}]`);
    } catch (e) {
      failures++;
      console.log(`FAIL ${c.name}: ${e.message}`);
    }
  }
  process.exit(failures ? 1 : 0);
}

// Server role: one WebSocketServer per configuration; each checks the one
// lightws-echo --client that connects to it.
function serveOne(c) {
  return new Promise((resolveListening) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: pmdOptions(c),
      maxPayload: 0 });
    let answer = '';
    wss.on('headers', (lines) => {
      for (const l of lines) {
        const m = /^sec-websocket-extensions:\s*(.*)$/i.exec(l);
        if (m) answer = m[1];
      }
    });
    const done = new Promise((resolveDone) => {
      wss.on('connection', (ws, req) => {
        const next = queueOf(ws);
        const closed = new Promise((res) => ws.once('close', (code) => res(code)));
        (async () => {
          const offer = req.headers['sec-websocket-extensions'] || '';
          check(/permessage-deflate/.test(offer), `the client offered no permessage-deflate (${offer})`);
          const ext = answer;
          check(/^permessage-deflate/.test(ext) && extensionOf(ws) === 'permessage-deflate',
            `not negotiated: ${ext}`);
          for (let round = 0; round < 2; round++) {
            for (const [what, data, binary] of messages()) {
              ws.send(data, { binary, compress: true });
              const m = await withTimeout(next(), 10000, what);
              check(same(m, data, binary), `${what} echo differs (round ${round})`);
            }
          }
          ws.close(4003, 'node deflate bye');
          const code = await withTimeout(closed, 5000, 'close');
          check(code === 4003, `client answered close with ${code}`);
          return `${offer} -> ${ext}`;
        })().then((what) => resolveDone({ ok: true, what }),
          (e) => resolveDone({ ok: false, what: e.message }));
      });
    });
    wss.on('listening', () => resolveListening({ c, wss, port: wss.address().port, done }));
  });
}

async function runServer() {
  const servers = [];
  for (const c of CONFIGS) servers.push(await serveOne(c));
  for (const s of servers) console.log(`listening ${s.port} ${s.c.name}`);
  console.log('ready');
  let failures = 0;
  for (const s of servers) {
    const r = await withTimeout(s.done, 60000, s.c.name).catch((e) => ({ ok: false, what: e.message }));
    if (r.ok) console.log(`ok ${s.c.name} [${r.what}]`);
    else {
      failures++;
      console.log(`FAIL ${s.c.name}: ${r.what}`);
    }
    s.wss.close();
  }
  process.exit(failures ? 1 : 0);
}

setTimeout(() => { console.log('FAIL timeout: the whole run'); process.exit(1); }, 90000).unref();
if (process.argv[2] === 'client') runClient(process.argv[3]);
else runServer();
