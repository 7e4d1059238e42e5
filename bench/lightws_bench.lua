-- SPDX-License-Identifier: MIT
-- lightws Lua binding benchmark (Lua 5.4 and LuaJIT), same CLI as the C programs.
-- Server: bulk reads ws:receive_chunk() (one frame per call); pingpong echoes
-- ws:receive() with ws:send(). Client: ws:send() per frame (fresh mask key per frame).
-- `lightws_bench.lua micro` (W4) times the codec functions from Lua (MICRO lines).
local lightws = require "lightws"
local core = lightws.core

local role, mode = arg[1], arg[2]
local port, total, size = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
if role ~= "micro" and ((role ~= "server" and role ~= "client")
    or (mode ~= "bulk" and mode ~= "pingpong" and mode ~= "zbulk")
    or not port or not total or not size) then
  io.stderr:write("usage: lightws_bench.lua server|client bulk|pingpong|zbulk PORT TOTAL SIZE\n"
    .. "       lightws_bench.lua micro\n")
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

-- zbulk (W5): permessage-deflate with lightws's defaults (window 12, memLevel
-- 5, level 6) unless BENCH_WBITS / BENCH_MEMLEVEL / BENCH_LEVEL say otherwise;
-- W1-W3 without it.
local function with_deflate(opts)
  opts.deflate = mode == "zbulk"
  if mode == "zbulk" then
    opts.window_bits = tonumber(os.getenv("BENCH_WBITS") or "")
    opts.mem_level = tonumber(os.getenv("BENCH_MEMLEVEL") or "")
    opts.level = tonumber(os.getenv("BENCH_LEVEL") or "")
  end
  return opts
end

local function agreed(ws)
  if mode == "zbulk" and not (ws.extensions and ws:extensions()) then
    io.stderr:write("lightws_bench.lua: permessage-deflate not agreed\n")
    os.exit(1)
  end
end

local function server()
  local lfd = assert(core.tcp_listen("127.0.0.1", port, 1))
  local fd = assert(core.tcp_accept(lfd))
  core.close_fd(lfd)
  local ws = assert(lightws.accept(fd, with_deflate({ rbuf_size = rbuf_size() })))
  agreed(ws)
  local bytes, frames = 0, 0
  if mode == "bulk" or mode == "zbulk" then
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
    ws, err = lightws.connect(("ws://127.0.0.1:%d/"):format(port), with_deflate({}))
    if ws then break end
    core.poll({}, 0.01)
  end
  if not ws then error("connect: " .. tostring(err)) end
  local chars = {}
  for i = 1, size do chars[i] = string.char((i * 131) % 256) end
  local buf = table.concat(chars)
  agreed(ws)
  local send = ws.send
  if mode == "zbulk" then
    -- the corpus messages in order, cycling, one ws:send (compressed) each, as text
    local f = assert(io.open(assert(os.getenv("BENCH_CORPUS"), "BENCH_CORPUS"), "rb"))
    local data = f:read("a")
    f:close()
    local msgs = {}
    for i = 1, #data, size do msgs[#msgs + 1] = data:sub(i, i + size - 1) end
    local frames, count = math.floor(total / size), #msgs
    local t0 = now()
    for i = 0, frames - 1 do
      local n, e = send(ws, msgs[i % count + 1], "text")
      if not n then error("send: " .. tostring(e)) end
    end
    ws:close()
    local secs = now() - t0
    io.write(("RESULT secs=%.6f bytes=%d frames=%d MBps=%.1f fps=%.0f\n"):format(
      secs, frames * size, frames, frames * size / secs / 1e6, frames / secs))
  elseif mode == "bulk" then
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

-- W4 through the module's codec functions, per call from Lua: decode_head over
-- mixed 6/8/14-byte client heads (each followed by payload bytes, as in a
-- receive buffer), encode_head, a whole client frame with a 16-byte payload
-- (decode_head at its offset in a buffer of frames, then mask of the payload
-- into a new string), and mask of 64 KiB (strings are immutable: always into a
-- new string) against copying the same string: s:sub(1, -1) on Lua 5.4 (a new
-- string, one memcpy; LuaJIT interns strings, so a copy of the same contents
-- only hashes and finds the original) and ffi.copy into a buffer on LuaJIT (a
-- memcpy). Lua 5.4 times with os.clock() (CPU time, microsecond resolution):
-- the micro loops are CPU-bound and single-threaded.
local function micro()
  local clock = jit and now or os.clock
  local function best_of(trials, reps, fn)
    local best
    for _ = 1, trials do
      local t0 = clock()
      fn(reps)
      local dt = clock() - t0
      if not best or dt < best then best = dt end
    end
    return best / reps
  end
  local function out(name, value)
    io.write(("MICRO name=%s value=%.3f\n"):format(name, value))
    io.stdout:flush()
  end
  local decode_head, encode_head, mask = lightws.decode_head, lightws.encode_head, lightws.mask
  local lens, heads, keys = {64, 1024, 16384, 100000}, {}, {}
  local pad = ("\0"):rep(32)
  for i = 0, 63 do
    keys[i + 1] = string.char(i, 1, 2, 3)
    heads[i + 1] = assert(encode_head(true, 2, lens[i % 4 + 1] + math.floor(i / 4), keys[i + 1])) .. pad
  end
  local function dec(n)
    for _ = 1, math.floor(n / 64) do
      for i = 1, 64 do decode_head(heads[i], 1, "masked") end
    end
  end
  local function enc(n)
    for _ = 1, math.floor(n / 64) do
      for i = 1, 64 do encode_head(true, 2, lens[i % 4 + 1] + i, keys[i]) end
    end
  end
  local payload = ("0123456789abcdef")
  local parts = {}
  for i = 1, 64 do parts[i] = encode_head(true, 2, 16, keys[i]) .. mask(payload, keys[i]) end
  local stream = table.concat(parts)
  local function frame16(n)
    local data
    for _ = 1, math.floor(n / 64) do
      local pos = 1
      for _ = 1, 64 do
        local _, _, _, len, key, hl = decode_head(stream, pos, "masked")
        data = mask(stream:sub(pos + hl, pos + hl + len - 1), key)
        pos = pos + hl + len
      end
    end
    assert(data == payload)
  end
  out("head_decode_ns", best_of(30, 25600, dec) * 1e9)
  out("head_encode_ns", best_of(30, 25600, enc) * 1e9)
  out("frame16_decode_ns", best_of(30, 6400, frame16) * 1e9)

  local size = 65536
  local big, key = ("\90"):rep(size), "\18\52\86\120"
  local function mask_run(n)
    for _ = 1, n do mask(big, key) end
  end
  local copy_run, copy_name
  if jit then
    local ffi = require "ffi"
    local dst = ffi.new("uint8_t[?]", size)
    copy_name = "memcpy_GBps"
    copy_run = function(n)
      for _ = 1, n do ffi.copy(dst, big, size) end
    end
  else
    copy_name = "string_copy_GBps"
    copy_run = function(n)
      for _ = 1, n do big:sub(1, -1) end
    end
  end
  -- Interleaved trials, so a busy moment of the machine hits masking and copying alike.
  local best_m, best_c
  for _ = 1, 15 do
    local m, c = best_of(1, 200, mask_run), best_of(1, 200, copy_run)
    if not best_m or m < best_m then best_m = m end
    if not best_c or c < best_c then best_c = c end
  end
  local mask_gbps, copy_gbps = size / best_m / 1e9, size / best_c / 1e9
  out("mask_copy_GBps", mask_gbps)
  out(copy_name, copy_gbps)
  out("mask_vs_copy", mask_gbps / copy_gbps)
end

if role == "micro" then micro() elseif role == "server" then server() else client() end
