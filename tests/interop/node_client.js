// SPDX-License-Identifier: MIT
// Interop: node ws client cases against lightws-echo; prints "ok NAME" or "FAIL NAME: why" per case.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
let failures = 0;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
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
    ws.next = () => queue.length ? Promise.resolve(queue.shift())
      : new Promise((res, rej) => waiters.push({ resolve: res, reject: rej }));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function withTimeout(p, ms) {
  return Promise.race([p, new Promise((_, rej) =>
    setTimeout(() => rej(new Error('timeout')), ms).unref())]);
}

const cases = {
  async text(ws) {
    const msg = 'h\u00e9llo from node \u{1F600}';
    ws.send(msg);
    const m = await ws.next();
    check(!m.isBinary && m.data.toString('utf8') === msg, 'text echo differs');
  },
  async binary_1MiB(ws) {
    const data = crypto.randomBytes(1 << 20);
    ws.send(data);
    const m = await ws.next();
    check(m.isBinary && Buffer.compare(m.data, data) === 0, 'binary echo differs');
  },
  async fragmented(ws) {
    // §5.4: fin=false sends a first frame and continuations after it.
    ws.send('frag', { fin: false });
    ws.send('ment', { fin: false });
    ws.send('ed', { fin: true });
    const m = await ws.next();
    check(!m.isBinary && m.data.toString() === 'fragmented', `got ${m.data}`);
    const parts = [crypto.randomBytes(50000), crypto.randomBytes(1), crypto.randomBytes(90000)];
    ws.send(parts[0], { binary: true, fin: false });
    ws.send(parts[1], { binary: true, fin: false });
    ws.send(parts[2], { binary: true, fin: true });
    const b = await ws.next();
    check(b.isBinary && Buffer.compare(b.data, Buffer.concat(parts)) === 0, 'binary fragments differ');
  },
  async ping(ws) {
    const payload = Buffer.from('node-ping');
    const pong = new Promise((res) => ws.once('pong', res));
    ws.ping(payload);
    const got = await pong;
    check(Buffer.compare(got, payload) === 0, `pong payload ${got}`);
  },
  async close_4000(ws) {
    const closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason })));
    ws.close(4000, 'node bye');
    const c = await closed;
    check(c.code === 4000, `close code ${c.code}`);
    // §5.5.1: the code is echoed; lightws sends no reason with its reply.
    check(['', 'node bye'].includes(c.reason.toString()), `close reason '${c.reason}'`);
  },
};

(async () => {
  let ws;
  try {
    ws = await withTimeout(open(), 5000);
  } catch (e) {
    console.log(`FAIL connect: ${e.message}`);
    process.exit(1);
  }
  for (const [name, fn] of Object.entries(cases)) {
    try {
      await withTimeout(fn(ws), 5000);
      console.log(`ok ${name}`);
    } catch (e) {
      failures++;
      console.log(`FAIL ${name}: ${e.message}`);
    }
  }
  process.exit(failures ? 1 : 0);
})();
