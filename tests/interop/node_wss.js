// SPDX-License-Identifier: MIT
// Interop over TLS (wss): node ws on https.createServer (the test CA's server
// certificate, perMessageDeflate on) driving `lightws-cat wss://...`, and a
// node ws client (trusting the test CA) against `lightws-echo --tls-cert`.
//   node node_wss.js server CERTDIR GREETING_BYTES   -> "listening on 127.0.0.1:PORT",
//        then "got N bytes sha256 HEX close CODE ext EXT" when the client closed
//   node node_wss.js client CERTDIR wss://localhost:PORT/PATH -> "ok ..." lines
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const https = require('https');
const path = require('path');
const WebSocket = require('ws');

const [mode, dir, arg] = process.argv.slice(2);
setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 15000).unref();

if (mode === 'server') {
  const server = https.createServer({
    cert: fs.readFileSync(path.join(dir, 'server.pem')),
    key: fs.readFileSync(path.join(dir, 'server.key')),
  });
  const wss = new WebSocket.WebSocketServer({ server, perMessageDeflate: true, maxPayload: 0 });
  let ext = 'none';
  wss.on('headers', (headers) => {
    if (headers.some((l) => /^Sec-WebSocket-Extensions: permessage-deflate/i.test(l))) ext = 'permessage-deflate';
  });
  wss.on('connection', (ws) => {
    const h = crypto.createHash('sha256');
    let n = 0;
    ws.on('message', (data) => { h.update(data); n += data.length; });
    ws.on('close', (code) => {
      console.log(`got ${n} bytes sha256 ${h.digest('hex')} close ${code} ext ${ext}`);
      server.close();
      process.exit(0);
    });
    // a compressible greeting of the requested size
    ws.send(Buffer.from('greeting '.repeat(Math.ceil(Number(arg) / 9)).slice(0, Number(arg))));
  });
  server.listen(0, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${server.address().port}`));
} else {
  const ca = fs.readFileSync(path.join(dir, 'ca.pem'));
  const ws = new WebSocket(arg, { ca, maxPayload: 0 });
  const queue = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    if (waiters.length) waiters.shift()(m); else queue.push(m);
  });
  const next = () => queue.length ? Promise.resolve(queue.shift()) : new Promise((res) => waiters.push(res));
  const closed = new Promise((res) => ws.once('close', (code) => res(code)));
  ws.on('error', (e) => { console.log(`FAIL error ${e.message}`); process.exit(1); });
  ws.on('open', async () => {
    console.log(`ok open ${ws.extensions || 'no-extensions'}`);
    ws.send('h\u00e9llo over tls');
    let m = await next();
    console.log(m.isBinary || m.data.toString() !== 'h\u00e9llo over tls' ? 'FAIL text-echo' : 'ok text-echo');
    const big = crypto.randomBytes(1 << 20);
    ws.send(big);
    m = await next();
    console.log(m.isBinary && Buffer.compare(m.data, big) === 0 ? 'ok binary-1MiB-echo' : 'FAIL binary-1MiB-echo');
    const text = 'squeeze '.repeat(1 << 17);
    ws.send(text);
    m = await next();
    console.log(!m.isBinary && m.data.toString() === text ? 'ok compressible-1MiB-echo' : 'FAIL compressible-1MiB-echo');
    ws.close(4003, 'node tls bye');
    const code = await closed;
    console.log(code === 4003 ? 'ok close-4003-echoed' : `FAIL close-4003-echoed: ${code}`);
    process.exit(0);
  });
}
