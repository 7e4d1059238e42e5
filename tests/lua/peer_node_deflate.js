// SPDX-License-Identifier: MIT
// node ws peer with perMessageDeflate for the Lua tests (NODE_PATH=build/node/node_modules):
//   node peer_node_deflate.js server       echo server, perMessageDeflate: true (threshold 0);
//                                          the text "ext?" is answered with the negotiated extensions;
//                                          prints "listening on 127.0.0.1:PORT"
//   node peer_node_deflate.js client URL   checks an echo server: permessage-deflate in ws.extensions,
//                                          text, binary, 0 bytes, 1 MiB; prints pass/FAIL lines, exit 0 if all pass
const WebSocket = require("ws");
const crypto = require("crypto");
const pmd = { threshold: 0 };
if (process.argv[2] === "server") {
  const wss = new WebSocket.WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: pmd, maxPayload: 64 * 1024 * 1024 });
  wss.on("listening", () => console.log("listening on 127.0.0.1:" + wss.address().port));
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => {
      if (!isBinary && data.toString() === "ext?") ws.send("ext: " + (ws.extensions || "none"));
      else ws.send(data, { binary: isBinary });
    });
  });
} else {
  const ws = new WebSocket(process.argv[3], { perMessageDeflate: pmd });
  const big = crypto.randomBytes(1 << 19);
  const msgs = [Buffer.from("hello ".repeat(100)), Buffer.alloc(0), Buffer.concat([big, big]), Buffer.from([0, 1, 2])];
  let i = 0, fails = 0;
  const check = (c, what) => { console.log((c ? "pass " : "FAIL ") + what); if (!c) fails++; };
  const timer = setTimeout(() => { console.log("FAIL timeout"); process.exit(1); }, 20000);
  ws.on("open", () => {
    check(/permessage-deflate/.test(ws.extensions), "permessage-deflate negotiated (" + ws.extensions + ")");
    ws.send(msgs[0], { binary: false });
  });
  ws.on("message", (data) => {
    check(Buffer.compare(Buffer.from(data), msgs[i]) === 0, "echo " + i + " (" + msgs[i].length + " bytes)");
    i++;
    if (i < msgs.length) ws.send(msgs[i], { binary: i !== 0 });
    else ws.close(1000, "bye");
  });
  ws.on("close", (code) => { check(code === 1000, "close " + code); clearTimeout(timer); process.exit(fails ? 1 : 0); });
  ws.on("error", (e) => { console.log("FAIL error " + e.message); process.exit(1); });
}
