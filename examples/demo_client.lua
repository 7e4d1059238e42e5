-- SPDX-License-Identifier: MIT
-- Demo client: lua5.4 examples/demo_client.lua ws://127.0.0.1:PORT/demo
-- Sends text, binary, a fragmented message and a ping to an echo server,
-- checks each echo, closes with 1000; one line per step; exit 0 on success.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local abi = jit and "luajit" or "lua54"
package.path = dir .. "/../bindings/lua/?.lua;" .. package.path
package.cpath = dir .. "/../build/" .. abi .. "/?.so;" .. package.cpath

local lightws = require "lightws"

local url = arg[1] or "ws://127.0.0.1:9001/demo"
local failed = false
local function step(ok, line)
  print("lua client: " .. line .. (ok and "" or " FAILED"))
  if not ok then failed = true end
end

local ws, err, code = lightws.connect(url, { timeout = 10 })
if not ws then
  print(("lua client: connect to %s failed: %s (%s)"):format(url, tostring(err), tostring(code)))
  os.exit(1)
end
ws:settimeout(10)
step(true, "connected to " .. url)

ws:send_text("hello")
local data, kind = ws:receive()
step(data == "hello" and kind == "text", "text 'hello' echoed")

local bin = "\0\1\2\3\254\255"
ws:send_binary(bin)
data, kind = ws:receive()
step(data == bin and kind == "binary", "binary (6 bytes) echoed")

ws:send("frag", "text", true)    -- fin = 0
ws:send("men", "text", true)
ws:send("ted", "text")           -- the final fragment
data, kind = ws:receive()
step(data == "fragmented" and kind == "text", "fragmented message (3 frames) echoed as 'fragmented'")

ws:ping("lua-ping")
ws:send_text("after ping")
data = ws:receive()
local pong = ws:last_pong()
step(data == "after ping" and pong == "lua-ping", "ping answered with pong '" .. tostring(pong) .. "'")

local ok, pcode = ws:close(1000, "bye")
step(ok and (pcode == 1000), "closed with 1000 (peer answered " .. tostring(pcode) .. ")")
os.exit(failed and 1 or 0)
