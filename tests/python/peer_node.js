// SPDX-License-Identifier: MIT
// node ws echo peer for the interop tests (NODE_PATH=build/node/node_modules).
//   node peer_node.js server       prints "listening on 127.0.0.1:PORT"
//   node peer_node.js client URL   echoes until the server closes; prints "closed CODE"
'use strict';
const WebSocket = require('ws');

if (process.argv[2] === 'server') {
  const wss = new WebSocket.WebSocketServer({
    host: '127.0.0.1', port: 0,
    handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
  });
  wss.on('listening', () => console.log('listening on 127.0.0.1:' + wss.address().port));
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
} else {
  const ws = new WebSocket(process.argv[3]);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', (code, reason) => {
    console.log('closed ' + code + ' ' + reason.toString());
    process.exit(0);
  });
  ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
}
