-- SPDX-License-Identifier: MIT
-- lightws Lua binding benchmark (Lua 5.4 and LuaJIT), same CLI as the C programs.
-- Server: bulk reads ws:receive_chunk() (one frame per call); pingpong echoes
-- ws:receive() with ws:send(). Client: ws:send() per frame (fresh mask key per frame).
local lightws = require "lightws"
local core = lightws.core

local role, mode = arg[1], arg[2]
local port, total, size = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
if (role ~= "server" and role ~= "client") or (mode ~= "bulk" and mode ~= "pingpong")
    or not port or not total or not size then
  io.stderr:write("usage: lightws_bench.lua server|client bulk|pingpong PORT TOTAL SIZE\n")
  os.exit(2)
end

-- Wall clock: LuaJIT reads CLOCK_MONOTONIC through its FFI; plain Lua has no
-- sub-second clock, so it asks date(1) (about 1-2 ms per call, twice per run).
local now
if jit then
  local ffi = require "ffi"
  ffi.cdef [[
    struct lightws_bench_ts { long tv_sec; long tv_nsec; };
    int clock_gettime(int clk, struct lightws_bench_ts *ts);
  ]]
  local ts = ffi.new("struct lightws_bench_ts")
  now = function()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
else
  now = function()
    local f = io.popen("date +%s.%N")
    local t = tonumber(f:read("*l"))
    f:close()
    return t
  end
end

local function rbuf_size()
  local env = tonumber(os.getenv("BENCH_RBUF") or "")
  if env then return env end
  return size >= 8192 and 65536 or 262144
end

local function server()
  local lfd = assert(core.tcp_listen("127.0.0.1", port, 1))
  local fd = assert(core.tcp_accept(lfd))
  core.close_fd(lfd)
  local ws = assert(lightws.accept(fd, { rbuf_size = rbuf_size() }))
  local bytes, frames = 0, 0
  if mode == "bulk" then
    local recv = ws.receive_chunk
    while true do
      local data, kind, last = recv(ws)
      if not data then
        if kind == "closed" then break end
        error("receive_chunk: " .. tostring(kind))
      end
      bytes = bytes + #data
      if last then frames = frames + 1 end
    end
  else
    local recv, send = ws.receive, ws.send
    while true do
      local data, kind = recv(ws)
      if not data then
        if kind == "closed" then break end
        error("receive: " .. tostring(kind))
      end
      assert(send(ws, data, kind))
      bytes = bytes + #data
      frames = frames + 1
    end
  end
  ws:close()
  io.write(("SERVER bytes=%d frames=%d\n"):format(bytes, frames))
  io.stdout:flush()
end

local function client()
  local ws, err
  for _ = 1, 2000 do
    ws, err = lightws.connect(("ws://127.0.0.1:%d/"):format(port))
    if ws then break end
    core.poll({}, 0.01)
  end
  if not ws then error("connect: " .. tostring(err)) end
  local chars = {}
  for i = 1, size do chars[i] = string.char((i * 131) % 256) end
  local buf = table.concat(chars)
  local send = ws.send
  if mode == "bulk" then
    local frames = math.floor(total / size)
    local t0 = now()
    for _ = 1, frames do
      local n, e = send(ws, buf)
      if not n then error("send: " .. tostring(e)) end
    end
    ws:close()
    local secs = now() - t0
    io.write(("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f\n"):format(
      secs, frames * size, frames, frames * size / secs / 1e6, frames / secs))
  else
    local recv = ws.receive
    local t0 = now()
    for _ = 1, total do
      assert(send(ws, buf))
      local data, e = recv(ws)
      if not data then error("receive: " .. tostring(e)) end
    end
    ws:close()
    local secs = now() - t0
    io.write(("RESULT secs=%.6f rtts=%d rtps=%.0f\n"):format(secs, total, total / secs))
  end
  io.stdout:flush()
end

if role == "server" then server() else client() end
