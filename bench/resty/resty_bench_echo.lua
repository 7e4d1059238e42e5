-- SPDX-License-Identifier: MIT
-- lightws.resty server echo loop for bench/resty (issue 15): recv_frame ->
-- send_frame of the same type (fragments stay fragments), pings answered,
-- close answered with the same code.
local server = require "lightws.resty.server"

local M = {}
local OPS = { text = 0x1, binary = 0x2, continuation = 0x0 }

local function new()
  local wb, err = server:new{ timeout = 60000, max_payload_len = 65536 }
  if not wb then
    ngx.log(ngx.ERR, "failed to new websocket: ", err)
    return ngx.exit(444)
  end
  return wb
end

-- one frame: true to go on, false when the connection is done
local function step(wb, data, typ, err)
  if not data then
    if not string.find(err, ": timeout", 1, true) then return false end
    return true
  elseif typ == "close" then
    wb:send_close(err, data)
    return false
  elseif typ == "ping" then
    wb:send_pong(data)
  elseif typ ~= "pong" then
    local ok = wb:send_frame(err ~= "again", OPS[typ], data)
    if not ok then return false end
  end
  return true
end

function M.echo()
  local wb = new()
  while true do
    local data, typ, err = wb:recv_frame()
    if not step(wb, data, typ, err) then return end
  end
end

-- The allocation probe: after `warm` frames (JIT traces compiled), GC
-- collected then stopped, collectgarbage("count") over `frames` echoed
-- frames; logged with the payload bytes handed to the caller; `windows`
-- times per connection. Meant for one connection at a time (the stopped GC
-- and the full collection are the worker's, not the connection's).
function M.echo_alloc(warm, frames, windows)
  local wb = new()
  -- calibration: what one fresh Lua string of n bytes costs here beyond
  -- its n bytes (LuaJIT: its GCstr head and the NUL), from 1000 distinct
  -- 1000-byte substrings into a table sized beforehand
  local parts = {}
  for i = 1, 2000 do parts[i] = string.format("%08d", i * 7919 % 100000000) end
  local big = table.concat(parts)
  -- (five times, the least kept: the first pass also pays for compiling
  -- the loop's trace)
  local tnew, str_over = require("table.new"), math.huge
  for pass = 1, 5 do
    local t = tnew(1000, 0)
    collectgarbage("collect")
    collectgarbage("stop")
    local c0 = collectgarbage("count")
    for i = 1, 1000 do t[i] = big:sub(i + pass, i + pass + 999) end
    local c1 = collectgarbage("count")
    collectgarbage("restart")
    t = nil
    str_over = math.min(str_over, (c1 - c0) * 1024 / 1000 - 1000)
  end
  parts, big = nil, nil
  -- the cosocket reads lightws.resty makes (receiveany): counted, so the
  -- strings nginx hands it can be told from lightws.resty's own; the
  -- wrapper is made once and allocates nothing per call
  local sock = wb.sock
  local recvany = sock.receiveany
  -- (read_gc: the GC bytes allocated inside those calls, their strings
  -- included; collectgarbage("count") allocates nothing)
  local reads, read_bytes, read_gc = 0, 0, 0
  sock.receiveany = function(s, max)
    local g0 = collectgarbage("count")
    local d, e = recvany(s, max)
    read_gc = read_gc + (collectgarbage("count") - g0) * 1024
    if d then reads, read_bytes = reads + 1, read_bytes + #d end
    return d, e
  end
  local n, w = 0, 0
  local c_start, payload = nil, 0
  while true do
    local data, typ, err = wb:recv_frame()
    if data and (typ == "binary" or typ == "text" or typ == "continuation") then
      n = n + 1
      if c_start then payload = payload + #data end
    end
    if not step(wb, data, typ, err) then
      if c_start then collectgarbage("restart") end
      return
    end
    if not c_start and w < windows and n >= warm then
      collectgarbage("collect")
      collectgarbage("stop")
      n, payload, reads, read_bytes, read_gc = 0, 0, 0, 0, 0
      c_start = collectgarbage("count")
    elseif c_start and n >= frames then
      local c_end = collectgarbage("count")
      collectgarbage("restart")
      w = w + 1
      ngx.log(ngx.NOTICE, string.format(
        "lightws-bench-alloc frames=%d bytes=%.0f payload=%d str_overhead=%.1f reads=%d read_bytes=%d read_gc=%.0f",
        n, (c_end - c_start) * 1024, payload, str_over, reads, read_bytes, read_gc))
      c_start, n = nil, 0
      warm = 0
    end
  end
end

return M
