// SPDX-License-Identifier: MIT
// node ws client for the lightws.resty compatibility tests (NODE_PATH=build/node/node_modules):
//   node peer_node_client.js URL
// prints one line per event: the greeting, the echoes of a text, a binary and
// a fragmented-size message, the pong, the close code and reason; exits 0.
const WebSocket = require("ws");
const ws = new WebSocket(process.argv[2], ["chat"]);
const out = (s) => console.log(s);
let n = 0;
const timer = setTimeout(() => { out("timeout"); process.exit(1); }, 10000);
ws.on("open", () => out("open protocol=" + ws.protocol + " ext=" + (ws.extensions || "")));
ws.on("message", (data, isBinary) => {
  n++;
  out("message " + (isBinary ? "binary " + data.length : "text " + data.toString()));
  if (n === 1) ws.send("hi");
  else if (n === 2) ws.send(Buffer.from([0, 1, 2, 255]));
  else if (n === 3) ws.send(Buffer.alloc(100000, 7));
  else if (n === 4) ws.ping("pp");
});
ws.on("pong", (data) => { out("pong " + data.toString()); ws.close(4000, "bye"); });
ws.on("close", (code, reason) => { out("close " + code + " " + reason.toString()); clearTimeout(timer); process.exit(0); });
ws.on("error", (e) => { out("error " + e.message); process.exit(1); });
