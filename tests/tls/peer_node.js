// SPDX-License-Identifier: MIT
// node ws over TLS for tests/tls/interop.py:
//   node peer_node.js server CERT KEY        echo over https.createServer; prints "port N"
//   node peer_node.js client URL CA COUNT    sends COUNT binary messages, checks the echoes, closes 1000
'use strict';
const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'server') {
  const server = https.createServer({ cert: fs.readFileSync(a), key: fs.readFileSync(b) });
  const wss = new WebSocket.WebSocketServer({ server, maxPayload: 64 << 20 });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.listen(0, '127.0.0.1', () => {
    console.log('port ' + server.address().port);
  });
} else {
  const count = parseInt(c, 10);
  const ws = new WebSocket(a, { ca: fs.readFileSync(b), maxPayload: 64 << 20 });
  let i = 0, sent;
  const next = () => {
    if (i === count) { ws.close(1000, 'done'); return; }
    const len = Math.floor((70000 * i) / Math.max(1, count - 1));
    sent = Buffer.alloc(len);
    for (let k = 0; k < len; k++) sent[k] = (k * 13 + i) & 255;
    ws.send(sent);
  };
  ws.on('open', next);
  ws.on('message', (data) => {
    if (!Buffer.from(data).equals(sent)) { console.log('error ECHO ' + i); process.exit(3); }
    i++;
    next();
  });
  ws.on('close', (code) => {
    console.log((i === count && code === 1000 ? 'ok' : 'error') + ' close=' + code + ' msgs=' + i);
    process.exit(i === count && code === 1000 ? 0 : 1);
  });
  ws.on('error', (e) => { console.log('error ' + e.message); process.exit(2); });
}
