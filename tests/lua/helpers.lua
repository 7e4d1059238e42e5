-- SPDX-License-Identifier: MIT
-- Helpers shared by the Lua specs (stream, interop, hostile, time): raw frames over descriptors, socketpair streams, peer processes, child interpreters.
-- A spec loads it with: package.path = ROOT .. "/tests/lua/?.lua;" .. package.path; local H = require "helpers"
local lightws = require "lightws"

local H = {}

H.ROOT = os.getenv("LIGHTWS_ROOT") or "."
H.LUA = jit and "luajit" or "lua5.4"            -- the interpreter of this ABI

function H.sleep(s) lightws.poll({}, s) end

-- Calls fn() until it returns a true value or `secs` pass; returns that value.
function H.wait_for(fn, secs)
  local deadline = lightws.now() + secs
  repeat
    local v = fn()
    if v then return v end
    H.sleep(0.05)
  until lightws.now() > deadline
  return nil
end

-- Runs Lua `code` in a child interpreter of this ABI (LUA_PATH/LUA_CPATH are
-- inherited) under `timeout -s KILL`, so a hang fails the test instead of
-- stalling the suite; returns its stdout + stderr and "rc=N".
function H.run_lua(code, limit)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(code)
  h:close()
  local p = assert(io.popen(("timeout -s KILL %d %s %s 2>&1; echo \"rc=$?\""):format(limit or 60, H.LUA, f)))
  local out = p:read("*a")
  p:close()
  os.remove(f)
  return out
end

-- Starts `cmd`, which prints "listening on HOST:PORT"; returns port, stop(), pid.
function H.spawn(cmd)
  local p = assert(io.popen("sh -c 'echo $$; exec " .. cmd .. "'", "r"))
  local pid = assert(tonumber(p:read("*l")), "no pid")
  local line = p:read("*l") or ""
  local port = tonumber(line:match("listening on .*:(%d+)$"))
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    p:close()
  end
  if not port then stop(); error("peer did not start: " .. cmd .. " said: " .. line) end
  return port, stop, pid
end

function H.write_all(fd, s)
  while #s > 0 do
    local n = assert(lightws.write_fd(fd, s))
    s = s:sub(n + 1)
  end
end

-- A masked frame (as a client sends it).
function H.masked(fin, op, payload, key)
  key = key or "\1\2\3\4"
  return lightws.encode_head(fin, op, #payload, key) .. lightws.mask(payload, key)
end

-- A reader of the frames on a raw descriptor: each call returns the next
-- frame's opcode, payload (unmasked) and fin, waiting up to `secs` (default
-- 10) per read; bytes past a frame are kept for the next call.
function H.frame_reader(fd)
  local buf = ""
  return function(secs)
    while true do
      local fin, op, _, len, key, hlen = lightws.decode_head(buf)
      if fin ~= nil and #buf >= hlen + len then
        local p = buf:sub(hlen + 1, hlen + len)
        buf = buf:sub(hlen + len + 1)
        if key then p = lightws.mask(p, key) end
        return op, p, fin
      end
      local d = assert(lightws.read_fd(fd, 65536, secs or 10))
      assert(#d > 0, "EOF")
      buf = buf .. d
    end
  end
end

-- Reads one frame from a raw descriptor (what follows it in the same read
-- is dropped): opcode, payload, fin.
function H.read_frame(fd, secs) return H.frame_reader(fd)(secs) end

function H.be16(n) return string.char(math.floor(n / 256), n % 256) end

local function raw(role, opts)
  local a, b = lightws.socketpair()
  local o = { open = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(lightws.stream(a, role, o)), b
end

-- A server stream over one end of a socketpair, open; the test plays the
-- client on the raw other end (frames to the stream masked).
function H.raw_server(opts) return raw("server", opts) end

-- A client stream whose peer is the raw descriptor (frames to it unmasked).
function H.raw_client(opts) return raw("client", opts) end

return H
