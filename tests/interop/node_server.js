// SPDX-License-Identifier: MIT
// Interop: a node ws server that drives `lightws-echo --client` and checks every echo; exit 0 when all match.
'use strict';
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const expectPath = process.argv[2] || '/';
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}

setTimeout(() => fail('timeout'), 15000).unref();

wss.on('listening', () => {
  console.log(`listening on 127.0.0.1:${wss.address().port}`);
});

wss.on('connection', (ws, req) => {
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift()(m);
    else queue.push(m);
  });
  const next = () => queue.length ? Promise.resolve(queue.shift())
    : new Promise((res) => waiters.push(res));
  const closed = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason })));

  (async () => {
    if (req.url !== expectPath) fail(`path ${req.url} != ${expectPath}`);
    ws.send('h\u00e9llo client');
    let m = await next();
    if (m.isBinary || m.data.toString() !== 'h\u00e9llo client') fail('text echo');
    const data = crypto.randomBytes(1 << 20);
    ws.send(data);
    m = await next();
    if (!m.isBinary || Buffer.compare(m.data, data) !== 0) fail('binary 1 MiB echo');
    ws.send('frag', { fin: false });
    ws.send('ment', { fin: false });
    ws.send('ed', { fin: true });
    m = await next();
    if (m.isBinary || m.data.toString() !== 'fragmented') fail('fragmented echo');
    const pong = new Promise((res) => ws.once('pong', res));
    ws.ping(Buffer.from('srv-ping'));
    const p = await pong;
    if (p.toString() !== 'srv-ping') fail(`pong payload ${p}`);
    ws.close(4002, 'node server bye');
    const c = await closed;
    if (c.code !== 4002) fail(`client answered close with ${c.code}`);
    console.log('ok all echoes matched');
    process.exit(0);
  })().catch((e) => fail(e.message));
});
