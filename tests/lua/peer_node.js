// SPDX-License-Identifier: MIT
// node ws echo server for the Lua tests: prints "listening on 127.0.0.1:PORT" (NODE_PATH=build/node/node_modules).
const { WebSocketServer } = require("ws");
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 64 * 1024 * 1024 });
wss.on("listening", () => console.log("listening on 127.0.0.1:" + wss.address().port));
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
