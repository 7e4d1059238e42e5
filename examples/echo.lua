-- SPDX-License-Identifier: MIT
-- Echo peer in Lua (5.4 or LuaJIT), behaving like build/lightws-echo:
--   lua5.4 examples/echo.lua --host ADDR --port N [--max-message N]
--     server: echoes every message with its opcode; one process per
--     connection (fork), so many connections run at once; port 0 picks a
--     free port and prints "listening on HOST:PORT". Messages over
--     --max-message bytes (default 67108864, 64 MiB) get close 1009.
--   lua5.4 examples/echo.lua --client ws://HOST:PORT/PATH?QUERY
--     client: echoes every message the server sends until the server
--     closes, then exits 0.

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

local opts = { host = "127.0.0.1", max_message = 64 * 1024 * 1024 }

-- An integer option in [lo, hi], else exit 2 with a one-line error.
local function int_arg(name, v, lo, hi)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) or n < lo or n > hi then
    io.stderr:write(("echo.lua: bad %s '%s' (an integer %d-%d)\n"):format(name, tostring(v), lo, hi))
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
  elseif a == "--quiet" then opts.quiet = true; i = i - 1
  elseif a == "-h" or a == "--help" then
    print("usage: echo.lua --port N [--host ADDR] [--quiet] [--max-message N]\n" ..
          "       echo.lua [--max-message N] --client ws://HOST:PORT/PATH?QUERY\n" ..
          "Messages over --max-message bytes (default 67108864, 64 MiB) get close 1009.")
    os.exit(0)
  else die("unknown or incomplete option", a) end
  i = i + 2
end

-- Echoes every message back with its kind until the peer closes.
local function echo_loop(ws)
  while true do
    local data, kind, code, reason = ws:receive()
    if not data then
      if kind == "closed" then return true, code, reason end
      return nil, kind, code
    end
    local ok, err = ws:send(data, kind)
    if not ok then return nil, err end
  end
end

-- One frame may be as large as a whole message.
local limits = { max_message = opts.max_message, max_frame = opts.max_message }

if opts.client then
  local ws, err, code = lightws.connect(opts.client, { max_message = limits.max_message, max_frame = limits.max_frame, timeout = 10 })
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
      local ws = lightws.accept(fd, { max_message = limits.max_message, max_frame = limits.max_frame, timeout = 30 })
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
