// SPDX-License-Identifier: MIT
// node ws echo peer for the interop tests (NODE_PATH=build/node/node_modules).
//   node peer_node.js server [CERTDIR]       prints "listening on 127.0.0.1:PORT"
//   node peer_node.js client URL [CAFILE]    echoes until the server closes; prints "closed CODE"
// CERTDIR (cert.pem, key.pem) makes the server wss; CAFILE trusts a wss server.
'use strict';
const fs = require('fs');
const path = require('path');
const WebSocket = require('ws');

if (process.argv[2] === 'server') {
  const certdir = process.argv[3];
  const opts = { handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false) };
  let wss;
  const announce = (port) => console.log('listening on 127.0.0.1:' + port);
  if (certdir) {
    const https = require('https');
    const server = https.createServer({
      cert: fs.readFileSync(path.join(certdir, 'cert.pem')),
      key: fs.readFileSync(path.join(certdir, 'key.pem')),
    });
    wss = new WebSocket.WebSocketServer({ server, ...opts });
    server.listen(0, '127.0.0.1', () => announce(server.address().port));
  } else {
    wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port: 0, ...opts });
    wss.on('listening', () => announce(wss.address().port));
  }
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
} else {
  const ca = process.argv[4] ? { ca: fs.readFileSync(process.argv[4]) } : {};
  const ws = new WebSocket(process.argv[3], ca);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', (code, reason) => {
    console.log('closed ' + code + ' ' + reason.toString());
    process.exit(0);
  });
  ws.on('error', (e) => { console.error(String(e)); process.exit(1); });
}
