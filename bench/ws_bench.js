// SPDX-License-Identifier: MIT
// node ws benchmark (ws 8, bufferutil when installed), same CLI as the C programs.
'use strict';
const path = require('path');
const crypto = require('crypto');

function load(name) {
  try {
    return require(path.join(__dirname, '..', 'build', 'node', 'node_modules', name));
  } catch (e) {
    return require(name);
  }
}
const WebSocket = load('ws');

const [role, mode, portS, totalS, sizeS] = process.argv.slice(2);
if (!['server', 'client'].includes(role) || !['bulk', 'pingpong'].includes(mode)) {
  console.error('usage: ws_bench.js server|client bulk|pingpong PORT TOTAL SIZE');
  process.exit(2);
}
const port = Number(portS), total = Number(totalS), size = Number(sizeS);
const OPTS = { perMessageDeflate: false, maxPayload: 1 << 30 };

function server() {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, ...OPTS });
  let bytes = 0, frames = 0;
  wss.on('connection', (ws) => {
    ws._socket.setNoDelay(true);
    ws.on('message', (data, isBinary) => {
      bytes += data.length;
      frames++;
      if (mode === 'pingpong') ws.send(data, { binary: isBinary });
    });
    ws.on('close', () => {
      console.log(`SERVER bytes=${bytes} frames=${frames}`);
      wss.close();
      process.exit(0);
    });
  });
}

function client() {
  const buf = crypto.randomBytes(size);
  const connect = (tries) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, OPTS);
    ws.on('error', (e) => {
      if (tries > 0 && e.code === 'ECONNREFUSED') setTimeout(() => connect(tries - 1), 10);
      else { console.error(e); process.exit(1); }
    });
    ws.on('open', () => run(ws));
  };
  const run = (ws) => {
    ws._socket.setNoDelay(true);
    const t0 = process.hrtime.bigint();
    const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
    if (mode === 'bulk') {
      const frames = Math.floor(total / size);
      let sent = 0;
      // Back-pressure: stop queueing at 1 MiB buffered, resume on the socket's drain.
      const pump = () => {
        while (sent < frames) {
          ws.send(buf, { binary: true });
          sent++;
          if (ws.bufferedAmount > (1 << 20)) {
            ws._socket.once('drain', pump);
            return;
          }
        }
        ws.close(1000);
      };
      ws.on('close', () => {
        const s = secs();
        console.log(`RESULT secs=${s.toFixed(6)} bytes=${frames * size} frames=${frames} ` +
          `MBps=${(frames * size / s / 1e6).toFixed(1)} fps=${(frames / s).toFixed(0)}`);
        process.exit(0);
      });
      pump();
    } else {
      let n = 0;
      ws.on('message', () => {
        n++;
        if (n < total) ws.send(buf, { binary: true });
        else ws.close(1000);
      });
      ws.on('close', () => {
        const s = secs();
        console.log(`RESULT secs=${s.toFixed(6)} rtts=${total} rtps=${(total / s).toFixed(0)}`);
        process.exit(0);
      });
      ws.send(buf, { binary: true });
    }
  };
  connect(2000);
}

if (role === 'server') server(); else client();
