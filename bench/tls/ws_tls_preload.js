// SPDX-License-Identifier: MIT
// Preloaded into bench/ws_bench.js (node -r) by bench/tls/run.py: the same
// W1/W3 code over TLS 1.3 with TLS_AES_128_GCM_SHA256. ws_bench.js loads
// ws from build/node; this replaces that module's export, before it loads,
// with one whose server listens through https.createServer and whose client
// dials wss:// trusting the test CA ($BENCH_TLS_CERTS/ca.pem).
'use strict';
const fs = require('fs');
const https = require('https');
const path = require('path');

const wsPath = require.resolve(path.join(__dirname, '..', '..', 'build', 'node', 'node_modules', 'ws'));
const WebSocket = require(wsPath);
const certs = process.env.BENCH_TLS_CERTS || path.join(__dirname, '..', '..', 'build', 'tls', 'certs');
// in node the TLS 1.3 suites are set through `ciphers` as well
const TLS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' };

class WssServer extends WebSocket.WebSocketServer {
  constructor(options, callback) {
    const { host, port, ...rest } = options;
    const server = https.createServer({
      ...TLS,
      cert: fs.readFileSync(path.join(certs, 'server.pem')),
      key: fs.readFileSync(path.join(certs, 'server.key')),
    });
    server.once('secureConnection', (sock) => {
      sock.setNoDelay(true);
      console.error(`CIPHER ${sock.getProtocol()} ${sock.getCipher().standardName}`);
    });
    super({ ...rest, server }, callback); // ws forwards the server's 'listening'
    server.listen(port, host);
  }
}

class Wss extends WebSocket {
  constructor(address, options) {
    super(address.replace(/^ws:/, 'wss:'),
      { ...options, ...TLS, ca: fs.readFileSync(path.join(certs, 'ca.pem')) });
  }
}
Wss.WebSocketServer = WssServer;
require.cache[wsPath].exports = Wss;
