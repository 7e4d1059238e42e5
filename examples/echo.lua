-- SPDX-License-Identifier: MIT
-- Echo peer in Lua (5.4 or LuaJIT), behaving like build/lightws-echo:
--   lua5.4 examples/echo.lua --host ADDR --port N [--max-message N]
--          [--handshake-timeout S] [--idle-timeout S]
--          [--ping-interval S] [--ping-timeout S] [--no-deflate]
--     server: echoes every message with its opcode; one process per
--     connection (fork), so many connections run at once; port 0 picks a
--     free port and prints "listening on HOST:PORT". Messages over
--     --max-message bytes (default 67108864, 64 MiB) get close 1009.
--     Timeouts in seconds (fractions allowed, 0 turns one off): the
--     opening handshake must end within --handshake-timeout (default 10);
--     --idle-timeout closes (1001) a connection that sent nothing for S
--     (default 0: off); keepalive: a connection quiet for --ping-interval
--     (default 20) is pinged and closed (1011) when the pong does not come
--     within --ping-timeout (default: the interval).
--     permessage-deflate (RFC 7692) is negotiated in both roles unless
--     --no-deflate: a message that came compressed is answered compressed
--     (whatever its size), one that came uncompressed uncompressed.
--   lua5.4 examples/echo.lua [--timeout S] --client ws://HOST:PORT/PATH?QUERY
--     client: echoes every message the server sends until the server
--     closes, then exits 0; gives up when the handshake is not done
--     within --timeout (default 10).

-- Find lightws in the build tree next to this script (before installed copies).
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local abi = jit and "luajit" or "lua54"
package.path = dir .. "/../bindings/lua/?.lua;" .. package.path
package.cpath = dir .. "/../build/" .. abi .. "/?.so;" .. package.cpath

local lightws = require "lightws"

local function die(...)
  io.stderr:write("echo.lua: ", table.concat({ ... }, " "), "\n")
  os.exit(1)
end

local opts = { host = "127.0.0.1", max_message = 64 * 1024 * 1024,
               handshake_timeout = 10, idle_timeout = 0, ping_interval = 20, timeout = 10 }

-- An integer option in [lo, hi], else exit 2 with a one-line error.
local function int_arg(name, v, lo, hi)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < lo or n > hi then
    io.stderr:write(("echo.lua: bad %s '%s' (an integer %d-%d)\n"):format(name, tostring(v), lo, hi))
    os.exit(2)
  end
  return n
end

-- Seconds (fractions allowed) in [0, 4294967], else exit 2.
local function secs_arg(name, v)
  local n = tonumber(v)
  if not n or n ~= n or n < 0 or n > 4294967 then
    io.stderr:write(("echo.lua: bad %s '%s' (seconds, 0-4294967)\n"):format(name, tostring(v)))
    os.exit(2)
  end
  return n
end

local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--host" then opts.host = v
  elseif a == "--port" then opts.port = int_arg("--port", v, 0, 65535)
  elseif a == "--client" then opts.client = v
  elseif a == "--max-message" then opts.max_message = int_arg("--max-message", v, 1, 4294967295)
  elseif a == "--handshake-timeout" then opts.handshake_timeout = secs_arg(a, v)
  elseif a == "--idle-timeout" then opts.idle_timeout = secs_arg(a, v)
  elseif a == "--ping-interval" then opts.ping_interval = secs_arg(a, v)
  elseif a == "--ping-timeout" then opts.ping_timeout = secs_arg(a, v)
  elseif a == "--timeout" then opts.timeout = secs_arg(a, v)
  elseif a == "--quiet" then opts.quiet = true; i = i - 1
  elseif a == "--no-deflate" then opts.no_deflate = true; i = i - 1
  elseif a == "-h" or a == "--help" then
    print("usage: echo.lua --port N [--host ADDR] [--quiet] [--max-message N] [--no-deflate]\n" ..
          "          [--handshake-timeout S] [--idle-timeout S] [--ping-interval S] [--ping-timeout S]\n" ..
          "       echo.lua [--max-message N] [--timeout S] [--no-deflate] --client ws://HOST:PORT/PATH?QUERY\n" ..
          "permessage-deflate is negotiated unless --no-deflate; compressed messages are\n" ..
          "answered compressed, uncompressed ones uncompressed.\n" ..
          "Messages over --max-message bytes (default 67108864, 64 MiB) get close 1009.\n" ..
          "Timeouts in seconds (0 turns one off): handshake (default 10), idle (default off),\n" ..
          "keepalive ping after --ping-interval quiet seconds (default 20), closed with 1011\n" ..
          "when its pong does not come within --ping-timeout (default: the interval).\n" ..
          "Client: gives up when the handshake is not done within --timeout (default 10).")
    os.exit(0)
  else die("unknown or incomplete option", a) end
  i = i + 2
end

-- Echoes every message back with its kind until the peer closes; a
-- compressed one compressed (as a fragment into the compressor and an
-- empty final call, so the threshold does not apply), others uncompressed.
local function echo_loop(ws)
  local plain = { compress = false }
  while true do
    local data, kind, code, reason = ws:receive()
    if not data then
      if kind == "closed" then return true, code, reason end
      return nil, kind, code
    end
    local ok, err
    if ws:compressed() then
      ok, err = ws:send(data, kind, true)
      if ok then ok, err = ws:send("", kind) end
    else
      ok, err = ws:send(data, kind, plain)
    end
    if not ok then return nil, err end
  end
end

-- One frame may be as large as a whole message.
local limits = { max_message = opts.max_message, max_frame = opts.max_message }
local deflate = not opts.no_deflate and lightws.pmd_available()

-- Stream options of the server side: limits and timeouts (driven by the
-- C core while echo_loop waits in ws:receive()).
local server_opts = {
  max_message = limits.max_message, max_frame = limits.max_frame,
  handshake_timeout = opts.handshake_timeout, idle_timeout = opts.idle_timeout,
  ping_interval = opts.ping_interval,
  ping_timeout = opts.ping_timeout or opts.ping_interval,
  close_timeout = 10, deflate = deflate,
}

if opts.client then
  local ws, err, code = lightws.connect(opts.client, { max_message = limits.max_message, max_frame = limits.max_frame,
                                                       handshake_timeout = opts.timeout, close_timeout = 10,
                                                       deflate = deflate })
  if not ws then die("connect:", tostring(err), tostring(code)) end
  local ok, e2, c2 = echo_loop(ws)
  ws:close()
  if not ok then die("receive:", tostring(e2), tostring(c2)) end
  os.exit(0)
end

if not opts.port then die("--port is required") end
local lfd, port = lightws.tcp_listen(opts.host, opts.port)
if not lfd then die("listen:", tostring(port)) end
if opts.host:find(":", 1, true) then print(("listening on [%s]:%d"):format(opts.host, port))
else print(("listening on %s:%d"):format(opts.host, port)) end
io.stdout:flush()

-- After a failed accept (EMFILE, ENFILE, ENOMEM...) or fork the listening
-- socket is still readable: retrying at once would spin at 100 % CPU, so
-- wait a little (up to 1 s, doubling) before the next try.
local backoff = 0
local function fail_wait(what, err)
  backoff = math.min(backoff > 0 and backoff * 2 or 0.01, 1)
  if not opts.quiet then io.stderr:write("echo.lua: ", what, ": ", tostring(err), "\n") end
  lightws.poll({}, backoff)
end

while true do
  local fd, addr = lightws.tcp_accept(lfd)
  if not fd then
    fail_wait("accept", addr)
  else
    local pid, ferr = lightws.fork()
    if not pid then
      lightws.close_fd(fd)
      fail_wait("fork", ferr)
    elseif pid == 0 then
      lightws.close_fd(lfd)
      local ws = lightws.accept(fd, server_opts)
      if ws then
        local ok, err = echo_loop(ws)
        if not ok and not opts.quiet then
          io.stderr:write("echo.lua: ", tostring(addr), ": ", tostring(err), "\n")
        end
        ws:close()
      end
      os.exit(0)
    else
      backoff = 0
      lightws.close_fd(fd)
    end
  end
end
