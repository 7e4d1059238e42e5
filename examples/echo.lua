-- SPDX-License-Identifier: MIT
-- Echo peer in Lua (5.4 or LuaJIT), behaving like build/lightws-echo:
--   lua5.4 examples/echo.lua --host ADDR --port N [--max-message N]
--     server: echoes every message with its opcode; one process per
--     connection (fork), so many connections run at once; port 0 picks a
--     free port and prints "listening on HOST:PORT".
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
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "--host" then opts.host = v
  elseif a == "--port" then opts.port = tonumber(v) or die("bad port", tostring(v))
  elseif a == "--client" then opts.client = v
  elseif a == "--max-message" then opts.max_message = tonumber(v) or die("bad --max-message")
  elseif a == "--quiet" then opts.quiet = true; i = i - 1
  elseif a == "-h" or a == "--help" then
    print("usage: echo.lua --port N [--host ADDR] [--max-message N]\n" ..
          "       echo.lua --client ws://HOST:PORT/PATH?QUERY")
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

if opts.client then
  local ws, err, code = lightws.connect(opts.client, { max_message = opts.max_message })
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

while true do
  local fd, addr = lightws.tcp_accept(lfd)
  if fd then
    local pid = lightws.fork()
    if pid == 0 then
      lightws.close_fd(lfd)
      local ws, req_or_err = lightws.accept(fd, { max_message = opts.max_message, timeout = 30 })
      if ws then
        local ok, err = echo_loop(ws)
        if not ok and not opts.quiet then
          io.stderr:write("echo.lua: ", tostring(addr), ": ", tostring(err), "\n")
        end
        ws:close()
      end
      os.exit(0)
    end
    lightws.close_fd(fd)
  end
end
