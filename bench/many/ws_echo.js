// SPDX-License-Identifier: MIT
// node ws echo server for the many-connection benchmark (bench/many):
//   node bench/many/ws_echo.js --port N [--host ADDR]
// ws from build/node (scripts/deps.sh); no permessage-deflate, no ping;
// bufferutil is used by ws when it is installed there.
'use strict';
const path = require('path');
const args = process.argv.slice(2);
let host = '127.0.0.1', port = 0;
for (let i = 0; i < args.length; i += 2) {
  if (args[i] === '--host') host = args[i + 1];
  else if (args[i] === '--port') port = Number(args[i + 1]);
  else { console.error('usage: ws_echo.js --port N [--host ADDR]'); process.exit(2); }
}
const ws = require(path.join(__dirname, '..', '..', 'build', 'node', 'node_modules', 'ws'));
const wss = new ws.WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false,
                                     maxPayload: 64 * 1024 * 1024, backlog: 1024 });
wss.on('connection', (sock) => {
  sock.on('message', (data, isBinary) => sock.send(data, { binary: isBinary }));
  sock.on('error', () => sock.terminate());
});
wss.on('listening', () => console.log(`listening on ${host}:${wss.address().port}`));
process.on('SIGTERM', () => process.exit(0));
