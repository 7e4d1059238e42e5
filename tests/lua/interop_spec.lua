-- SPDX-License-Identifier: MIT
-- lightws client over loopback against real peers: build/lightws-echo, python websockets, node ws, and examples/echo.lua (lua5.4 and luajit).
local lightws = require "lightws"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local ROOT, spawn = H.ROOT, H.spawn


local function session(port)
  local ws, resp = lightws.connect("ws://127.0.0.1:" .. port .. "/lua?x=1", { timeout = 10 })
  assert(ws, resp)
  assert.equal(101, resp.status)
  ws:settimeout(20)
  ws:send_text("hello")
  assert.same({ "hello", "text" }, { ws:receive() })
  ws:send_binary("\0\1\254\255")
  assert.same({ "\0\1\254\255", "binary" }, { ws:receive() })
  local big = lightws.random(4096):rep(256)             -- 1 MiB
  assert.equal(#big, ws:send(big, "binary"))
  local got, kind = ws:receive()
  assert.equal("binary", kind)
  assert.is_true(got == big)
  ws:send("frag", "text", true)
  ws:send("men", "text", true)
  ws:send("ted", "text")
  assert.same({ "fragmented", "text" }, { ws:receive() })
  assert.is_true(ws:ping("lua"))
  ws:send_text("after ping")
  assert.same({ "after ping", "text" }, { ws:receive() })
  assert.equal("lua", ws:last_pong())
  local ok, code = ws:close(1000, "done")
  assert.same({ true, 1000 }, { ok, code })
end

local peers = {
  { "build/lightws-echo", ROOT .. "/build/lightws-echo --host 127.0.0.1 --port 0" },
  { "python websockets", "/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_python.py server" },
  { "node ws", "env NODE_PATH=" .. ROOT .. "/build/node/node_modules node " .. ROOT .. "/tests/lua/peer_node.js" },
  { "examples/echo.lua (lua5.4)", "lua5.4 " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0" },
  { "examples/echo.lua (luajit)", "luajit " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0" },
}

describe("lightws client against", function()
  for _, peer in ipairs(peers) do
    it(peer[1], function()
      local port, stop = spawn(peer[2])
      local ok, err = pcall(session, port)
      stop()
      assert(ok, err)
    end)
  end
end)

describe("examples/echo.lua", function()
  for _, lua in ipairs({ "lua5.4", "luajit" }) do
    it("(" .. lua .. ") serves python websockets and several connections at once", function()
      local port, stop = spawn(lua .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0")
      local ok, err = pcall(function()
        -- two connections open at once, served by separate processes
        local a = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/a", { timeout = 5 }))
        local b = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/b", { timeout = 5 }))
        a:settimeout(5); b:settimeout(5)
        b:send_text("to b"); a:send_text("to a")
        assert.same({ "to b", "text" }, { b:receive() })
        assert.same({ "to a", "text" }, { a:receive() })
        a:close(); b:close()
        local r = os.execute("/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_python.py client ws://127.0.0.1:" .. port .. "/py >/dev/null")
        assert.is_true(r == true or r == 0)                  -- 5.4: true; 5.1: 0
      end)
      stop()
      assert(ok, err)
    end)
  end

  it("--client mode echoes what the server sends until it closes, exit 0", function()
    -- a one-shot server: accepts, sends two messages, reads the echoes, closes
    local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
    local p = assert(io.popen("lua5.4 " .. ROOT .. "/examples/echo.lua --client ws://127.0.0.1:" .. port .. "/c?q=1; echo rc=$?", "r"))
    local fd = assert(lightws.tcp_accept(lfd, 5))
    local ws, req = assert(lightws.accept(fd, { timeout = 5 }))
    assert.equal("/c?q=1", req.path)
    ws:settimeout(5)
    ws:send_text("one"); ws:send_binary("two")
    assert.same({ "one", "text" }, { ws:receive() })
    assert.same({ "two", "binary" }, { ws:receive() })
    local ok, code = ws:close(4000, "end")
    assert.same({ true, 4000 }, { ok, code })
    local out = p:read("*a"); p:close()
    lightws.close_fd(lfd)
    assert.matches("rc=0", out)
  end)
end)

describe("LuaSocket objects", function()
  local socket = require "socket"

  it("connect over a LuaSocket tcp object (the object keeps its descriptor)", function()
    local port, stop = spawn(ROOT .. "/build/lightws-echo --host 127.0.0.1 --port 0")
    local ok, err = pcall(function()
      local sock = assert(socket.tcp())
      assert(sock:connect("127.0.0.1", port))
      local ws = assert(lightws.connect(sock, "127.0.0.1:" .. port, "/luasocket", { timeout = 5 }))
      ws:settimeout(5)
      ws:send_text("via luasocket")
      assert.same({ "via luasocket", "text" }, { ws:receive() })
      local closed, code = ws:close()
      assert.same({ true, 1000 }, { closed, code })
      assert.is_true(sock:getfd() >= 0)   -- still the object's
      sock:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("accept on a socket from a LuaSocket server", function()
    local server = assert(socket.bind("127.0.0.1", 0))
    local _, port = server:getsockname()
    local cfd = assert(lightws.tcp_connect("127.0.0.1", port))
    local conn = assert(server:accept())
    local c = assert(lightws.stream(cfd, "client"))
    c:settimeout(0)
    assert.same({ nil, "timeout" }, { c:client_handshake("127.0.0.1", "/ls") })
    local s, req = assert(lightws.accept(conn, { timeout = 5 }))
    assert.equal("/ls", req.path)
    c:settimeout(5)
    assert(c:client_handshake())
    c:send_binary("x")
    assert.same({ "x", "binary" }, { s:receive() })
    c:settimeout(0.05); s:settimeout(0.05)
    c:close(); s:close()
    conn:close(); server:close()
  end)
end)
