// SPDX-License-Identifier: MIT
// A second reference for category 13 (permessage-deflate): node ws with perMessageDeflate, on the suite's echo command line.
//   node ref_node_echo.js --host ADDR --port N     echo server ("listening on HOST:PORT")
//   node ref_node_echo.js --client ws://HOST:PORT/P echo client, exits when the server closes
// NODE_PATH must reach the ws package (build/node/node_modules).
'use strict';
const WebSocket = require('ws');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const pmd = { threshold: 0, clientMaxWindowBits: true };
const LIMIT = 64 * 1024 * 1024;

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
}

if (opt('--client')) {
  const ws = new WebSocket(opt('--client'), { perMessageDeflate: pmd, maxPayload: LIMIT });
  echo(ws);
  ws.on('error', () => process.exit(1));
  ws.on('close', (code) => process.exit(code === 1000 || code === 1005 || code >= 3000 ? 0 : 1));
} else {
  const wss = new WebSocketServer({ host: opt('--host') || '127.0.0.1', port: +(opt('--port') || 0),
    perMessageDeflate: pmd, maxPayload: LIMIT });
  wss.on('listening', () => console.log(`listening on ${wss.address().address}:${wss.address().port}`));
  wss.on('connection', (ws) => { echo(ws); ws.on('error', () => {}); });
  process.on('SIGTERM', () => process.exit(0));
}
