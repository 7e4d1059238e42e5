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

// W4 (`ws_bench.js micro`): what ws exposes. ws has no head codec of its own;
// its Receiver (exported as WebSocket.Receiver) parses a byte stream into
// 'message' events, so the figure is per whole client frame with a 16-byte
// payload (head, unmask, message event). Masking is bufferutil's (what ws
// calls for payloads of 48 bytes and more): unmask in place and mask into
// another buffer, 64 KiB, against Buffer.copy of the same buffer. Each figure
// is the best of several short runs (the machine is shared).
function micro() {
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  const bestOf = (trials, reps, fn) => {
    let best = Infinity;
    for (let t = 0; t < trials; t++) {
      const t0 = now();
      fn(reps);
      const dt = now() - t0;
      if (dt < best) best = dt;
    }
    return best / reps;
  };
  const out = (name, value) => console.log(`MICRO name=${name} value=${value.toFixed(3)}`);

  // 1024 client frames: FIN + binary, masked 16-byte payloads, a key per frame.
  const NF = 1024, payload = Buffer.from('0123456789abcdef');
  const stream = Buffer.alloc(NF * 22);
  for (let i = 0; i < NF; i++) {
    const f = stream.subarray(i * 22, i * 22 + 22);
    f[0] = 0x82;
    f[1] = 0x80 | 16;
    crypto.randomFillSync(f, 2, 4);
    for (let j = 0; j < 16; j++) f[6 + j] = payload[j] ^ f[2 + (j & 3)];
  }
  const rx = new WebSocket.Receiver({ isServer: true, maxPayload: 0 });
  let got = 0, last = null;
  rx.on('message', (data) => { got++; last = data; });
  rx.on('error', (e) => { console.error(e); process.exit(1); });
  // The Receiver unmasks in place in the chunks it is given (as a socket's
  // fresh buffers): each run gets fresh copies, made before its clock starts.
  const CHUNKS = 64, chunks = [];
  for (let k = 0; k < CHUNKS; k++) chunks.push(Buffer.alloc(stream.length));
  let frame16 = Infinity;
  for (let t = 0; t < 40; t++) {
    for (const c of chunks) stream.copy(c);
    const want = got + CHUNKS * NF;
    const t0 = now();
    for (const c of chunks) rx.write(c);
    const dt = now() - t0;
    if (got !== want) throw new Error(`Receiver: ${got - want + CHUNKS * NF} messages of ${CHUNKS * NF}`);
    if (dt < frame16) frame16 = dt;
  }
  frame16 /= CHUNKS * NF;
  if (!payload.equals(last)) throw new Error('Receiver: wrong payload');
  out('frame16_decode_ns', frame16 * 1e9);

  let bu = null;
  try { bu = load('bufferutil'); } catch (e) { /* reported below */ }
  const SIZE = 65536, src = Buffer.alloc(SIZE, 0x5a), dst = Buffer.alloc(SIZE);
  const key = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const gbps = (sec) => SIZE / sec / 1e9;
  const tests = [(n) => { for (let i = 0; i < n; i++) src.copy(dst); }];
  if (bu) {
    tests.push((n) => { for (let i = 0; i < n; i++) bu.unmask(dst, key); });
    tests.push((n) => { for (let i = 0; i < n; i++) bu.mask(src, key, dst, 0, SIZE); });
  }
  // Interleaved trials, so a busy moment of the machine hits masking and copying alike.
  const best = tests.map(() => Infinity);
  for (let t = 0; t < 15; t++) tests.forEach((fn, i) => { best[i] = Math.min(best[i], bestOf(1, 2000, fn)); });
  const [copy, inPlace, toOther] = best.map(gbps);
  if (bu) {
    out('mask_GBps', inPlace);
    out('mask_copy_GBps', toOther);
    out('buffer_copy_GBps', copy);
    out('mask_vs_copy', inPlace / copy);
  } else {
    console.error('ws_bench.js: no bufferutil: no masking figures');
    out('buffer_copy_GBps', copy);
  }
}
if (process.argv[2] === 'micro' && process.argv.length === 3) {
  micro();
  process.exit(0);
}

const [role, mode, portS, totalS, sizeS] = process.argv.slice(2);
if (!['server', 'client'].includes(role) || !['bulk', 'pingpong', 'zbulk', 'echo'].includes(mode)) {
  console.error('usage: ws_bench.js server|client bulk|pingpong|zbulk PORT TOTAL SIZE\n' +
    '       ws_bench.js server echo PORT 0 0');
  process.exit(2);
}
const port = Number(portS), total = Number(totalS), size = Number(sizeS);
// zbulk (W5) and the idle echo server: permessage-deflate. By default set to
// lightws's settings: window BENCH_WBITS (12) both ways, memLevel
// BENCH_MEMLEVEL (5), level BENCH_LEVEL (6), threshold 32 bytes.
// BENCH_PMD=defaults: ws's own defaults (perMessageDeflate: true: window 15,
// memLevel 8, zlib's level, threshold 1024).
function pmdOptions() {
  if (process.env.BENCH_PMD === 'defaults') return true;
  const wb = Number(process.env.BENCH_WBITS || 12);
  return {
    zlibDeflateOptions: { level: Number(process.env.BENCH_LEVEL || 6),
      memLevel: Number(process.env.BENCH_MEMLEVEL || 5), windowBits: wb },
    zlibInflateOptions: { windowBits: wb },
    serverMaxWindowBits: wb, clientMaxWindowBits: wb, threshold: 32,
  };
}
const OPTS = { perMessageDeflate: (mode === 'zbulk' || mode === 'echo') ? pmdOptions() : false,
  maxPayload: 1 << 30 };

function echoServer() {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, ...OPTS });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
  wss.on('listening', () => console.log('READY'));
}

function server() {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port, ...OPTS });
  let bytes = 0, frames = 0;
  wss.on('connection', (ws) => {
    ws._socket.setNoDelay(true);
    ws.on('message', (data, isBinary) => {
      if (mode === 'zbulk' && frames === 0 && !ws.extensions.includes('permessage-deflate')) {
        console.error('ws_bench.js: permessage-deflate not agreed');
        process.exit(1);
      }
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
    if (mode === 'zbulk') {
      if (!ws.extensions.includes('permessage-deflate')) {
        console.error('ws_bench.js: permessage-deflate not agreed');
        process.exit(1);
      }
      const corpus = require('fs').readFileSync(process.env.BENCH_CORPUS);
      const count = corpus.length / size, msgs = [];
      for (let i = 0; i < count; i++) msgs.push(corpus.toString('latin1', i * size, (i + 1) * size));
      const frames = Math.floor(total / size);
      // Compression runs on libuv's threads: at most about 1 MiB of messages
      // in flight (sent, callback not yet called), refilled at half.
      const limit = Math.max(4, Math.floor((1 << 20) / size));
      let sent = 0, done = 0, pumping = false;
      const onSent = (err) => {
        if (err) { console.error(err); process.exit(1); }
        done++;
        if (done === frames) ws.close(1000);
        else if (!pumping && sent - done < limit / 2) pump();
      };
      const pump = () => {
        pumping = true;
        while (sent < frames && sent - done < limit) {
          ws.send(msgs[sent % count], { binary: false }, onSent);
          sent++;
        }
        pumping = false;
      };
      ws.on('close', () => {
        const s = secs();
        console.log(`RESULT secs=${s.toFixed(6)} bytes=${frames * size} frames=${frames} ` +
          `MBps=${(frames * size / s / 1e6).toFixed(1)} fps=${(frames / s).toFixed(0)}`);
        process.exit(0);
      });
      pump();
    } else if (mode === 'bulk') {
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

if (role === 'server') (mode === 'echo' ? echoServer : server)(); else client();
