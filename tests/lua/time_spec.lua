-- SPDX-License-Identifier: MIT
-- Time (issue 12): handshake, idle, keepalive and close timeouts of lightws streams over real sockets and clocks, against python websockets, node ws, raw peers and examples/echo.lua.
local lightws = require "lightws"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local ROOT, LUA, sleep, write_all, masked, read_frame, be16 =
  H.ROOT, H.LUA, H.sleep, H.write_all, H.masked, H.read_frame, H.be16

-- Peers run under timeout(1): a peer that hangs cannot hold the suite.
local function spawn(cmd) return H.spawn("timeout 60 " .. cmd) end

local REQUEST = "GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

-- Seconds since t0; the timeouts here are 0.2-0.5 s, the margins generous
-- (a loaded machine may be late by a second, never early).
local function since(t0) return lightws.now() - t0 end
local function within(t, lo, hi)
  assert(t >= lo and t <= hi, ("took %.3f s, expected %.2f-%.2f s"):format(t, lo, hi))
end

-- Reads from a raw descriptor until `pat` shows or `secs` pass.
local function read_until(fd, pat, secs)
  local buf, deadline = "", lightws.now() + secs
  while not buf:find(pat, 1, true) do
    local d = lightws.read_fd(fd, 4096, math.max(0, deadline - lightws.now()))
    if not d or d == "" then break end
    buf = buf .. d
  end
  return buf
end

describe("handshake timeout", function()
  it("cuts a server handshake dribbled one byte per 100 ms and answers 408", function()
    local a, b = lightws.socketpair()
    local ws = assert(lightws.stream(a, "server", { handshake_timeout = 0.5 }))
    ws:settimeout(0.1)
    local t0, i, r = lightws.now(), 1, nil
    repeat
      write_all(b, REQUEST:sub(i, i)); i = i + 1
      r = { ws:server_handshake() }
      assert(since(t0) < 10, "never cut")
    until r[2] ~= "timeout"
    assert.same({ nil, "opening handshake not complete within its timeout", 408, "handshake_timeout" }, r)
    within(since(t0), 0.45, 3)
    assert.is_true(i < #REQUEST)
    assert.matches("^HTTP/1.1 408", read_until(b, "\r\n\r\n", 5))
    ws:close()
    lightws.close_fd(b)
  end)

  it("cuts a client handshake whose response comes one byte per 100 ms", function()
    local a, b = lightws.socketpair()
    local ws = assert(lightws.stream(a, "client", { handshake_timeout = 0.5 }))
    ws:settimeout(0.1)
    local t0 = lightws.now()
    assert.same({ nil, "timeout" }, { ws:client_handshake("x", "/") })
    local req = read_until(b, "\r\n\r\n", 5)
    local key = req:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r]+)")
    local resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
                 "Sec-WebSocket-Accept: " .. lightws.handshake_accept(key) .. "\r\n\r\n"
    local i, r = 1, nil
    repeat
      write_all(b, resp:sub(i, i)); i = i + 1
      r = { ws:client_handshake() }
      assert(since(t0) < 10, "never cut")
    until r[2] ~= "timeout"
    assert.same({ nil, "opening handshake not complete within its timeout", 408, "handshake_timeout" }, r)
    within(since(t0), 0.45, 3)
    assert.is_true(i < #resp)
    ws:close()
    lightws.close_fd(b)
  end)

  it("is on by default (10 s) and off with handshake_timeout = 0", function()
    local a, b = lightws.socketpair()
    local ws = assert(lightws.stream(a, "server"))
    ws:settimeout(0)
    assert.same({ nil, "timeout" }, { ws:server_handshake() })
    local left = ws:deadline() - lightws.now()
    assert(left > 8 and left <= 10.01, "handshake deadline in " .. left .. " s")
    ws:close()
    lightws.close_fd(b)
    local c, d = lightws.socketpair()
    local ws2 = assert(lightws.stream(c, "server", { handshake_timeout = 0 }))
    ws2:settimeout(0)
    assert.same({ nil, "timeout" }, { ws2:server_handshake() })
    assert.is_nil(ws2:deadline())
    ws2:close()
    lightws.close_fd(d)
    assert.is_nil(lightws.wrap(lightws.socketpair(), "server"):deadline())   -- open: no handshake
  end)

  it("lightws.connect gives up on a server that takes the TCP connection and never answers", function()
    local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))   -- never accepted: the backlog holds it
    local t0 = lightws.now()
    local ws, msg, code, name = lightws.connect("ws://127.0.0.1:" .. port .. "/", { handshake_timeout = 0.3 })
    assert.same({ nil, "opening handshake not complete within its timeout", 408, "handshake_timeout" },
                { ws, msg, code, name })
    within(since(t0), 0.25, 3)
    lightws.close_fd(lfd)
  end)

  it("lightws.accept cuts a client that connects and sends nothing", function()
    local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
    local cfd = assert(lightws.tcp_connect("127.0.0.1", port))
    local sfd = assert(lightws.tcp_accept(lfd, 5))
    local t0 = lightws.now()
    assert.same({ nil, "opening handshake not complete within its timeout", 408, "handshake_timeout" },
                { lightws.accept(sfd, { handshake_timeout = 0.3 }) })
    within(since(t0), 0.25, 3)
    assert.matches("^HTTP/1.1 408", read_until(cfd, "\r\n\r\n", 5))
    lightws.close_fd(cfd)
    lightws.close_fd(lfd)
  end)
end)

describe("idle timeout", function()
  it("closes a silent connection with 1001", function()
    local ws, b = H.raw_server({ idle_timeout = 0.3 })
    local t0 = lightws.now()
    assert.same({ nil, "nothing received within the idle timeout", 1001, "idle_timeout" }, { ws:receive() })
    within(since(t0), 0.25, 3)
    local op, payload = read_frame(b, 5)
    assert.equal(8, op)
    assert.equal(be16(1001) .. "idle timeout", payload)
    assert.equal("idle_timeout", select(3, ws:status()))
    ws:close()
    lightws.close_fd(b)
  end)

  it("counts from the last byte received", function()
    local ws, b = H.raw_server({ idle_timeout = 0.4 })
    local t0 = lightws.now()
    ws:settimeout(0.25)
    assert.same({ nil, "timeout" }, { ws:receive() })   -- our own per-call timeout first
    write_all(b, masked(true, "text", "alive"))
    assert.same({ "alive", "text" }, { ws:receive() })
    local t1 = lightws.now()
    ws:settimeout(nil)
    assert.equal("idle_timeout", select(4, ws:receive()))
    within(since(t1), 0.35, 3)
    assert(since(t0) >= 0.6, "the idle clock did not restart at the message")
    ws:close()
    lightws.close_fd(b)
  end)
end)

describe("keepalive", function()
  local peers = {
    { "python websockets", "/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_python.py server" },
    { "node ws", "env NODE_PATH=" .. ROOT .. "/build/node/node_modules node " .. ROOT .. "/tests/lua/peer_node.js" },
  }
  for _, peer in ipairs(peers) do
    it("pings " .. peer[1] .. " on a quiet connection, which answers: the connection stays up, rtt measured", function()
      local port, stop = spawn(peer[2])
      local ok, err = pcall(function()
        local ws = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/ka",
                                          { ping_interval = 0.2, ping_timeout = 1, handshake_timeout = 5 }))
        assert.is_nil(ws:rtt())
        ws:settimeout(0.7)                     -- about three pings while it waits
        assert.same({ nil, "timeout" }, { ws:receive() })
        local rtt = ws:rtt()
        assert(rtt and rtt > 0 and rtt < 1, "rtt " .. tostring(rtt))
        assert.equal("open", (ws:status()))
        ws:settimeout(5)
        ws:send_text("still there")
        assert.same({ "still there", "text" }, { ws:receive() })
        local closed, code = ws:close(1000)
        assert.same({ true, 1000 }, { closed, code })
      end)
      stop()
      assert(ok, err)
    end)
  end

  it("fails with ping_timeout and 1011 on the wire when the peer never answers", function()
    local ws, b = H.raw_client({ ping_interval = 0.2, ping_timeout = 0.3 })
    local t0 = lightws.now()
    assert.same({ nil, "keepalive ping not answered within its timeout", 1011, "ping_timeout" }, { ws:receive() })
    within(since(t0), 0.45, 3)
    local frames = H.frame_reader(b)
    local op, payload = frames(5)
    assert.equal(9, op)
    assert.equal(4, #payload)
    op, payload = frames(5)
    assert.equal(8, op)
    assert.equal(be16(1011) .. "keepalive ping timeout", payload)
    ws:close()
    lightws.close_fd(b)
  end)

  it("ws:deadline() and ws:tick() drive it without a blocking call", function()
    local ws, b = H.raw_server({ ping_interval = 0.2 })
    local d = ws:deadline()
    within(d - lightws.now(), 0.1, 0.21)
    assert.is_true(ws:tick())                           -- early: nothing due
    assert.is_nil(lightws.read_fd(b, 100, 0))
    sleep(d - lightws.now() + 0.01)
    assert.is_true(ws:tick())
    local op, token = read_frame(b, 5)
    assert.equal(9, op)
    write_all(b, masked(true, "pong", token))
    ws:settimeout(0.05)
    assert.same({ nil, "timeout" }, { ws:receive() })   -- reads the pong
    assert.is_number(ws:rtt())
    assert(ws:deadline() > lightws.now() + 0.1, "the next ping counts from the pong")
    ws:close()
    lightws.close_fd(b)
  end)
end)

describe("close timeout", function()
  it("ends close() when the peer never answers our close", function()
    local ws, b = H.raw_server({ close_timeout = 0.3 })
    local t0 = lightws.now()
    assert.same({ nil, "close handshake not complete within its timeout", 0, "close_timeout" }, { ws:close(1000, "bye") })
    within(since(t0), 0.25, 3)
    assert.equal("closed", ws:status())
    local op, payload = read_frame(b, 5)
    assert.equal(8, op)
    assert.equal(be16(1000) .. "bye", payload)
    lightws.close_fd(b)
  end)
end)

describe("examples/echo.lua time options", function()
  it("cuts a handshake dribbled one byte per 100 ms (--handshake-timeout 0.5)", function()
    local port, stop = spawn(LUA .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet --handshake-timeout 0.5")
    local ok, err = pcall(function()
      local fd = assert(lightws.tcp_connect("127.0.0.1", port))
      local t0, i, got = lightws.now(), 1, nil
      repeat
        write_all(fd, REQUEST:sub(i, i)); i = i + 1
        got = lightws.read_fd(fd, 4096, 0.1)
        assert(since(t0) < 10, "never cut")
      until got ~= nil or i > #REQUEST
      assert.matches("^HTTP/1.1 408", got)
      within(since(t0), 0.4, 3)
      lightws.close_fd(fd)
    end)
    stop()
    assert(ok, err)
  end)

  it("pings a quiet client (--ping-interval) and closes with 1011 when it does not answer", function()
    local port, stop = spawn(LUA .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet --ping-interval 0.2 --ping-timeout 0.3")
    local ok, err = pcall(function()
      local ws = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/", { no_auto_pong = true, handshake_timeout = 5 }))
      ws:settimeout(5)
      local t0 = lightws.now()
      local data, kind = ws:receive()
      assert.equal("ping", kind)
      assert.equal(4, #data)
      within(since(t0), 0.15, 3)
      assert.same({ nil, "closed", 1011, "keepalive ping timeout" }, { ws:receive() })
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("keeps a client that answers pings (the default client does)", function()
    local port, stop = spawn(LUA .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0 --quiet --ping-interval 0.2 --ping-timeout 0.3")
    local ok, err = pcall(function()
      local ws = assert(lightws.connect("ws://127.0.0.1:" .. port .. "/", { handshake_timeout = 5 }))
      ws:settimeout(0.7)
      assert.same({ nil, "timeout" }, { ws:receive() })  -- pings answered while it waits
      ws:settimeout(5)
      ws:send_text("echo")
      assert.same({ "echo", "text" }, { ws:receive() })
      local closed, code = ws:close()
      assert.same({ true, 1000 }, { closed, code })
    end)
    stop()
    assert(ok, err)
  end)
end)

describe("memory streams (the transport of lightws.resty)", function()
  it("keep time only through tick(): the keepalive ping and the 1011 close come out of output()", function()
    local ws = assert(lightws.stream(nil, "server", { open = true, ping_interval = 0.2, ping_timeout = 0.2 }))
    assert.same({ nil, "input" }, { ws:frame() })           -- never waits
    local d = assert(ws:deadline())
    within(d - lightws.now(), 0.1, 0.21)
    sleep(d - lightws.now() + 0.01)
    assert.is_true(ws:tick())
    local out = assert(ws:output())
    local fin, op, masked_, len = lightws.decode_head(out)
    assert.same({ true, 9, false, 4 }, { fin, op, masked_, len })
    ws:input(masked(true, "pong", out:sub(3, 6)))            -- the answer: the next ping counts from it
    assert.same({ out:sub(3, 6), "pong", true }, { ws:frame() })
    assert.is_number(ws:rtt())
    sleep(ws:deadline() - lightws.now() + 0.01)
    assert.is_true(ws:tick())                                -- a second ping, not answered
    assert.equal(9, select(2, lightws.decode_head(assert(ws:output()))))
    sleep(ws:deadline() - lightws.now() + 0.01)
    assert.same({ nil, "keepalive ping not answered within its timeout", 1011, "ping_timeout" }, { ws:tick() })
    out = assert(ws:output())
    assert.equal(8, select(2, lightws.decode_head(out)))
    assert.equal(be16(1011) .. "keepalive ping timeout", out:sub(3))
  end)

  it("run the client handshake through input()/output() under the default 10 s handshake timeout", function()
    local ws = assert(lightws.stream(nil, "client"))
    assert.same({ nil, "input" }, { ws:client_handshake("x", "/m") })
    local req = assert(ws:output())
    local left = ws:deadline() - lightws.now()
    assert(left > 8 and left <= 10.01, "handshake deadline in " .. left .. " s")
    local key = req:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r]+)")
    ws:input("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
             "Sec-WebSocket-Accept: " .. lightws.handshake_accept(key) .. "\r\n\r\n" ..
             lightws.encode_head(true, "text", 2) .. "hi")
    assert.equal(101, ws:client_handshake().status)
    assert.is_nil(ws:deadline())
    assert.same({ "hi", "text", true }, { ws:frame() })
  end)
end)
