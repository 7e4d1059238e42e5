-- SPDX-License-Identifier: MIT
-- Hostile peers and bad arguments (issue 13): close after a send cut short, 1-byte fragments, max_fragments, ports, descriptors, SIGPIPE, examples/echo.lua limits and accept failures.
local lightws = require "lightws"
local socket = require "socket"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local ROOT, LUA, sleep, wait_for, run_lua, spawn, write_all, masked, read_frame, be16, raw_server, raw_client = H.ROOT, H.LUA, H.sleep, H.wait_for, H.run_lua, H.spawn, H.write_all, H.masked, H.read_frame, H.be16, H.raw_server, H.raw_client

local BIG = 16 * 1024 * 1024                    -- more than any socket buffer holds

local function alive(pid)
  local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return r == true or r == 0
end

local function child_of(pid)
  local p = assert(io.popen("pgrep -P " .. pid))
  local c = tonumber(p:read("*l") or "")
  p:close()
  return c
end

-- utime + stime of a process, in seconds.
local function cpu_seconds(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local s = f:read("*a")
  f:close()
  local fields = {}
  for x in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  local p = assert(io.popen("getconf CLK_TCK"))
  local hz = tonumber(p:read("*l")) or 100
  p:close()
  return (tonumber(fields[12]) + tonumber(fields[13])) / hz   -- fields 14, 15 of stat
end

local function status_kb(name)
  for l in io.lines("/proc/self/status") do
    local v = l:match("^" .. name .. ":%s*(%d+)")
    if v then return tonumber(v) end
  end
end

describe("close after a send cut short (issue 13.1)", function()
  it("returns nil, msg, 1006, 'busy' at once when a 16 MiB send timed out mid-frame (no spin)", function()
    local out = run_lua([[
      local lightws = require "lightws"
      local a, b = lightws.socketpair()
      local c = lightws.wrap(a, "client")
      c:settimeout(1)
      local n, e, sent = c:send(string.rep("x", ]] .. BIG .. [[))
      print("send", tostring(n), tostring(e), sent > 0 and sent < ]] .. BIG .. [[)
      print("close", c:close())
      print("status", c:status())
      -- the transport is shut: the peer reads the frame's start, then EOF
      local total = 0
      while true do
        local d = assert(lightws.read_fd(b, 65536, 10))
        if d == "" then break end
        total = total + #d
      end
      print("peer EOF after", total >= sent)
    ]])
    assert.matches("send\tnil\ttimeout\ttrue\n", out, 1, true)
    assert.matches("close\tnil\tclose frame not sent: a data frame was cut short (a send failed or timed out)\t1006\tbusy\n", out, 1, true)
    assert.matches("status\tclosed\n", out, 1, true)
    assert.matches("peer EOF after\ttrue\n", out, 1, true)
    assert.matches("rc=0", out)
  end)

  it("ping behind a cut frame: a second ping (slot taken) and close fail at once without a timeout", function()
    local out = run_lua([[
      local lightws = require "lightws"
      local a, b = lightws.socketpair()
      local c = lightws.wrap(a, "client")
      c:settimeout(0.5)
      print("send", (select(2, c:send(string.rep("x", ]] .. BIG .. [[)))))
      c:settimeout(nil)
      print("ping1", c:ping("a"))     -- queued behind the frame
      print("ping2", c:ping("b"))     -- the slot cannot empty
      print("close", c:close())
    ]])
    assert.matches("send\ttimeout\n", out, 1, true)
    assert.matches("ping1\ttrue\n", out, 1, true)
    assert.matches("ping2\tnil\ta frame is partly written; finish it first\t0\tbusy\n", out, 1, true)
    assert.matches("close\tnil\tclose frame not sent", out, 1, true)
    assert.matches("rc=0", out)
  end)

  it("receive behind a cut frame says 'busy' (a peer ping waits for our slot); finishing the frame unblocks it", function()
    local c, b = raw_client()
    c:settimeout(0.5)
    local big = string.rep("y", BIG)
    local _, e, sent = c:send(big)
    assert.equal("timeout", e)
    assert.is_true(c:ping("a"))
    write_all(b, lightws.encode_head(true, "ping", 1) .. "p")
    assert.same({ nil, "a frame is partly written; finish it first", 0, "busy" }, { c:receive() })
    -- the caller finishes its frame while the peer reads
    local rest = big:sub(sent + 1)
    c:settimeout(0)
    local deadline = os.time() + 60
    while #rest > 0 do
      assert(os.time() <= deadline, "the frame did not finish")
      for _ = 1, 64 do if not lightws.read_fd(b, 65536, 0) then break end end
      local n, err, part = c:send(rest)
      if n then rest = "" else assert.equal("timeout", err); rest = rest:sub(part + 1) end
    end
    assert.same({ nil, "timeout" }, { c:receive() })   -- the ping was read and answered
    lightws.close_fd(b)
  end)

  it("examples/echo.lua: a client that sends 16 MiB, does not read and resets leaves no child behind", function()
    local port, stop, pid = spawn(LUA .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet")
    local ok, err = pcall(function()
      local sock = assert(socket.tcp())
      sock:settimeout(30)
      assert(sock:connect("127.0.0.1", port))
      local ws = assert(lightws.connect(sock, "127.0.0.1:" .. port, "/big", { timeout = 30 }))
      ws:settimeout(60)
      assert.equal(BIG, ws:send(string.rep("z", BIG)))
      -- the echo's first bytes are here: the child is inside its 16 MiB frame
      assert.same({ 1 }, lightws.poll({ sock:getfd() }, 60))
      local child = assert(wait_for(function() return child_of(pid) end, 30), "no echo child")
      assert(sock:setoption("linger", { on = true, timeout = 0 }))
      sock:close()                                         -- RST
      assert(wait_for(function() return not alive(child) end, 60), "the echo child still runs (spinning in close)")
    end)
    stop()
    assert(ok, err)
  end)

  it("examples/echo.lua --client exits (1) when the server resets while it echoes 16 MiB", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local p = assert(io.popen(("timeout -s KILL 60 %s %s/examples/echo.lua --client ws://127.0.0.1:%d/c 2>&1; echo rc=$?")
      :format(LUA, ROOT, port)))
    local ok, err = pcall(function()
      server:settimeout(30)
      local conn = assert(server:accept())
      local ws = assert(lightws.accept(conn, { timeout = 30 }))
      ws:settimeout(60)
      assert.equal(BIG, ws:send(string.rep("e", BIG)))
      assert.same({ 1 }, lightws.poll({ conn:getfd() }, 60))   -- the client is inside its echo frame
      assert(conn:setoption("linger", { on = true, timeout = 0 }))
      conn:close()
    end)
    local out = p:read("*a")
    p:close()
    server:close()
    assert(ok, err)
    assert.matches("echo.lua: receive:", out, 1, true)
    assert.matches("rc=1\n", out, 1, true)                 -- 137: killed after hanging
  end)
end)

describe("receive() assembly (issue 13.3)", function()
  it("a 4 MiB message in 1-byte fragments costs the message size, not 35 bytes per fragment", function()
    local N = 4 * 1024 * 1024
    local c, b = raw_client()
    lightws.set_nonblocking(b, true)
    local mid = string.rep("\0\1x", 65536)
    local todo = N - 2                     -- continuation fragments still to queue
    local pending = "\2\1x"
    collectgarbage("collect")
    local heap0, rss0 = collectgarbage("count"), status_kb("VmRSS")
    local heap_max, rss_max = heap0, rss0
    c:settimeout(0)
    local deadline = os.time() + 120
    local got, kind
    while not got do
      assert(os.time() <= deadline, "the message did not arrive")
      if #pending == 0 and todo >= 0 then
        if todo == 0 then pending, todo = "\128\1x", -1
        else
          local k = math.min(65536, todo)
          pending = k == 65536 and mid or string.rep("\0\1x", k)
          todo = todo - k
        end
      end
      if #pending > 0 then
        local n = lightws.write_fd(b, pending)
        if n then pending = pending:sub(n + 1) end
      end
      local d, k = c:receive()
      if d then got, kind = d, k else assert.equal("timeout", k) end
      heap_max = math.max(heap_max, collectgarbage("count"))
      rss_max = math.max(rss_max, status_kb("VmRSS"))
    end
    assert.equal("binary", kind)
    assert.equal(N, #got)
    assert.is_true(got == string.rep("x", N))
    -- before: +122 MiB of Lua heap (lua5.4), +70 MiB (luajit); now the
    -- message (4 MiB) plus its C buffer
    assert.is_true(heap_max - heap0 < 24 * 1024, ("Lua heap grew %.1f MiB"):format((heap_max - heap0) / 1024))
    assert.is_true(rss_max - rss0 < 48 * 1024, ("RSS grew %.1f MiB"):format((rss_max - rss0) / 1024))
    lightws.close_fd(b)
  end)

  it("max_fragments: a message in more frames fails with 1009 and a clear message, and stays failed", function()
    local three = masked(false, "text", "a") .. masked(false, "continuation", "b") .. masked(true, "continuation", "c")
    local s, fd = raw_server({ max_fragments = 3 })
    write_all(fd, three)
    assert.same({ "abc", "text" }, { s:receive() })
    write_all(fd, masked(false, "binary", "1") .. masked(false, "continuation", "2") ..
                  masked(false, "continuation", "3") .. masked(true, "continuation", "4"))
    local expect = { nil, "message in more than 3 fragments (max_fragments)", 1009, "too_many_fragments" }
    assert.same(expect, { s:receive() })
    assert.same(expect, { s:receive() })
    assert.same(expect, { s:receive_chunk() })
    local op, payload = read_frame(fd)
    assert.same({ 8, be16(1009) .. "too many fragments" }, { op, payload })
    write_all(fd, masked(true, "close", be16(1009)))
    s:settimeout(5)
    assert.same({ true, 1009, "" }, { s:close() })
    lightws.close_fd(fd)
    -- receive_chunk counts frames too
    s, fd = raw_server({ max_fragments = 2 })
    write_all(fd, masked(false, "text", "a") .. masked(false, "continuation", "b") .. masked(true, "continuation", "c"))
    assert.same({ "a", "text", false }, { s:receive_chunk() })
    assert.same({ nil, "message in more than 2 fragments (max_fragments)", 1009, "too_many_fragments" }, { s:receive_chunk() })
    lightws.close_fd(fd)
    assert.has_error(function() raw_server({ max_fragments = -1 }) end)
  end)

  it("a ping under no_auto_pong between fragments is returned alone and the message stays whole", function()
    local s, fd = raw_server({ no_auto_pong = true })
    write_all(fd, masked(false, "text", "frag") .. masked(true, "ping", "p") .. masked(true, "continuation", "ment"))
    assert.same({ "p", "ping" }, { s:receive() })
    assert.same({ "fragment", "text" }, { s:receive() })
    lightws.close_fd(fd)
  end)

  it("receive_chunk after a receive that timed out first hands out what receive had assembled", function()
    local s, fd = raw_server()
    s:settimeout(0.05)
    write_all(fd, masked(false, "binary", "one") .. masked(false, "continuation", "two"))
    assert.same({ nil, "timeout" }, { s:receive() })
    write_all(fd, masked(true, "continuation", "three"))
    assert.same({ "onetwo", "binary", false }, { s:receive_chunk() })
    assert.same({ "three", "binary", true }, { s:receive_chunk() })
    lightws.close_fd(fd)
  end)
end)

describe("ports, descriptors, timeouts, SIGPIPE (issue 13.5)", function()
  it("refuses ports outside 0/1-65535 with nil, message", function()
    local ws, msg = lightws.connect("ws://127.0.0.1:111661/")
    assert.is_nil(ws)
    assert.equal("port 111661 out of range (1-65535) in URL", msg)
    assert.same({ nil, "port 0 out of range (1-65535) in URL" }, { lightws.connect("ws://127.0.0.1:0/") })
    assert.is_nil((lightws.parse_url("ws://h:65536/")))
    assert.same({ "h", 65535, "/" }, { (function(h, p, path) return h, p, path end)(lightws.parse_url("ws://h:65535/")) })
    assert.same({ nil, "port 70000 out of range (0-65535)", 22 }, { lightws.tcp_listen("127.0.0.1", 70000) })
    assert.same({ nil, "port -1 out of range (0-65535)", 22 }, { lightws.tcp_listen("127.0.0.1", -1) })
    assert.same({ nil, "port 65536 out of range (1-65535)", 22 }, { lightws.tcp_connect("127.0.0.1", 65536) })
    assert.same({ nil, "port 0 out of range (1-65535)", 22 }, { lightws.tcp_connect("127.0.0.1", 0) })
    local resty = require "lightws.resty"
    assert.is_nil((resty.parse_uri("ws://127.0.0.1:111661/")))
  end)

  it("negative (or too large) descriptors are EBADF, never a wait on nothing", function()
    local EBADF = 9
    local function ebadf(...) local r = { ... }; return r[1] == nil and r[3] == EBADF end
    assert.is_true(ebadf(lightws.read_fd(-1, 10, 0.5)))
    assert.is_true(ebadf(lightws.tcp_accept(-1, 0.5)))
    assert.is_true(ebadf(lightws.read_fd(2 ^ 32, 1, 0.5)))   -- not fd 0
    assert.is_true(ebadf(lightws.write_fd(-1, "x")))
    assert.is_true(ebadf(lightws.close_fd(-1)))
    assert.is_true(ebadf(lightws.set_nonblocking(-1)))
    assert.is_true(ebadf(lightws.poll({ -1 }, 0.5)))
    assert.has_error(function() lightws.stream(2 ^ 32, "client") end)
    assert.has_error(function() lightws.stream(-1, "client") end)
  end)

  it("a NaN timeout is an error (it would wait forever); limits beyond 32 bits are errors", function()
    local a, b = lightws.socketpair()
    local ws = lightws.wrap(a, "server")
    assert.has_error(function() ws:settimeout(0 / 0) end)
    assert.has_error(function() lightws.read_fd(b, 1, 0 / 0) end)
    assert.has_error(function() lightws.tcp_accept(b, 0 / 0) end)
    assert.has_error(function() lightws.poll({ b }, 0 / 0) end)
    assert.has_error(function() lightws.wrap(b, "client", { max_message = 2 ^ 32, own_fd = false }) end)
    assert.has_error(function() lightws.wrap(b, "client", { max_frame = -1, own_fd = false }) end)
    ws:settimeout(0.05)
    ws:close()
    lightws.close_fd(b)
  end)

  it("a stream or write_fd on a pipe without reader returns EPIPE instead of dying of SIGPIPE", function()
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write([[
      local lightws = require "lightws"
      -- stdout is a pipe whose reader never reads and exits
      local ws = lightws.wrap(1, "server", { own_fd = false })
      ws:settimeout(30)
      local r = { ws:send(string.rep("x", 1048576)) }
      io.stderr:write("send ", tostring(r[1]), " ", tostring(r[3]), "\n")
      local n, msg, code = lightws.write_fd(1, "y")
      io.stderr:write("write_fd ", tostring(n), " ", tostring(code), "\n")
      local a, b = lightws.socketpair()
      lightws.close_fd(b)
      n, msg, code = lightws.write_fd(a, "z")
      io.stderr:write("socket write_fd ", tostring(n), " ", tostring(code), "\n")
      io.stderr:write("alive\n")
    ]])
    h:close()
    -- stdout: a pipe to ":", which exits without reading; stderr: to us.
    -- SIGPIPE back to its default action: LuaSocket (loaded here) ignores it,
    -- and children inherit that
    local p = assert(io.popen(("bash -c 'env --default-signal=PIPE timeout -s KILL 60 %s %s 2>&3 3>&- | :; echo rc=${PIPESTATUS[0]}' 3>&1")
      :format(LUA, f)))
    local out = p:read("*a")
    p:close()
    os.remove(f)
    -- EPIPE is 32; rc=141 would be a death by SIGPIPE
    assert.matches("send nil 32\n", out, 1, true)
    assert.matches("write_fd nil 32\n", out, 1, true)
    assert.matches("socket write_fd nil 32\n", out, 1, true)
    assert.matches("alive\nrc=0", out, 1, true)
  end)
end)

describe("examples/echo.lua limits and accept failures (issue 13.6, 13.1 audit)", function()
  local function echo(args) return spawn(LUA .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet " .. (args or "")) end

  it("answers 1009 above 64 MiB by default, and --max-message N moves the limit", function()
    local port, stop = echo()
    local ok, err = pcall(function()
      local ws = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 30 }))
      ws:settimeout(30)
      -- a frame head announcing 64 MiB + 1 is refused at the head
      write_all(ws:getfd(), lightws.encode_head(true, "binary", 64 * 1024 * 1024 + 1, "\0\0\0\0"))
      assert.same({ nil, "closed", 1009 }, { (function(a, b, c) return a, b, c end)(ws:receive()) })
      ws:close()
    end)
    stop()
    assert(ok, err)
    port, stop = echo("--max-message 1000")
    ok, err = pcall(function()
      local ws = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/", { timeout = 30 }))
      ws:settimeout(30)
      ws:send(string.rep("a", 600), "text", true)
      ws:send(string.rep("b", 400), "text")
      assert.same({ string.rep("a", 600) .. string.rep("b", 400), "text" }, { ws:receive() })
      ws:send(string.rep("c", 1001))
      assert.same({ nil, "closed", 1009 }, { (function(a, b, c) return a, b, c end)(ws:receive()) })
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("--max-message above 64 MiB also lets a single frame that large in", function()
    local port, stop = echo("--max-message 100000000")
    local ok, err = pcall(function()
      local sock = assert(socket.tcp())
      sock:settimeout(30)
      assert(sock:connect("127.0.0.1", port))
      local ws = assert(lightws.connect(sock, "127.0.0.1:" .. port, "/", { timeout = 30 }))
      ws:settimeout(30)
      write_all(ws:getfd(), lightws.encode_head(true, "binary", 70 * 1024 * 1024, "\0\0\0\0") .. "part")
      assert(sock:shutdown("send"))       -- EOF inside the frame: the server gives up on it
      local data, what, code = ws:receive()
      assert.is_nil(data)
      assert.equal("closed", what)
      assert.are_not.equal(1009, code)    -- before: refused at the head (max_frame 64 MiB)
      sock:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("rejects a bad --max-message or --port with a one-line error and exit 2", function()
    for _, bad in ipairs({ "--max-message 0", "--max-message -1", "--max-message 1.5", "--max-message abc",
                           "--max-message 4294967296", "--port 70000", "--port -1" }) do
      local p = assert(io.popen(("timeout -s KILL 20 %s %s/examples/echo.lua --host 127.0.0.1 --port 0 %s </dev/null 2>&1; echo rc=$?")
        :format(LUA, ROOT, bad)))
      local out = p:read("*a")
      p:close()
      assert.matches("^echo.lua: bad %-%-[%a-]+ '[^']*' %(an integer [%d-]+%)\nrc=2\n$", out)
    end
  end)

  it("backs off when accept fails (EMFILE) instead of spinning on the readable listener", function()
    -- descriptors 0-2, the listener is 3: with a limit of 4, accept(2) has
    -- none left (what this process inherited beyond 2 is closed first)
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write('for f in /proc/$$/fd/*; do n=${f##*/}; if [ "$n" -gt 2 ]; then eval "exec $n>&-"; fi; done 2>/dev/null\n',
            "ulimit -n 4\n",
            "exec ", LUA, " ", ROOT, "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet\n")
    h:close()
    local port, stop, pid = spawn("bash " .. f)
    os.remove(f)
    local ok, err = pcall(function()
      local fd = assert(lightws.tcp_connect("127.0.0.1", port))   -- queued; accept(2) gets EMFILE
      local cpu0 = cpu_seconds(pid)
      sleep(2)
      local used = cpu_seconds(pid) - cpu0
      -- spinning burns ~2 s here; backing off costs a few milliseconds
      assert.is_true(used < 1, ("echo.lua used %.2f s of CPU in 2 s while accept failed"):format(used))
      lightws.close_fd(fd)
    end)
    stop()
    assert(ok, err)
  end)
end)
