-- SPDX-License-Identifier: MIT
-- permessage-deflate (RFC 7692, issue 11) in lightws for Lua: real peers in both roles (python websockets with its
-- default compression, node ws with perMessageDeflate), examples/echo.lua with and without --no-deflate, negotiation
-- options, RSV1 on the wire (the per-message flag, the threshold, fragments), invalid deflate (1007), a bomb (1009),
-- deflate_required (1010), the sans-IO compressor/decompressor.
local lightws = require "lightws"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local ROOT, spawn = H.ROOT, H.spawn
local PY = "/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_deflate.py"
local NODE = "env NODE_PATH=" .. ROOT .. "/build/node/node_modules node " .. ROOT .. "/tests/lua/peer_node_deflate.js"

local function url(port, path) return "ws://127.0.0.1:" .. port .. (path or "/") end

-- The exchange of a lightws client with an echo server that compresses.
local function exchange(ws)
  ws:settimeout(20)
  local text = ("compress me "):rep(100)
  assert.equal(#text, ws:send_text(text))
  assert.same({ text, "text" }, { ws:receive() })
  assert.is_true(ws:compressed())
  assert.equal(0, ws:send_binary(""))                   -- 0 bytes
  assert.same({ "", "binary" }, { ws:receive() })
  local big = lightws.random(4096):rep(256)             -- 1 MiB
  assert.equal(#big, ws:send(big, "binary"))
  local got, kind = ws:receive()
  assert.equal("binary", kind)
  assert.is_true(got == big)
  assert.is_true(ws:compressed())
  ws:send("frag", "text", true); ws:send("men", "text", true); ws:send("ted", "text")
  assert.same({ "fragmented", "text" }, { ws:receive() })
  for i = 1, 5 do                                       -- context across messages
    local m = ("message %d "):format(i):rep(20)
    ws:send_text(m)
    assert.same({ m, "text" }, { ws:receive() })
  end
end

-- Runs `cmd` (a client) in the background, accepts its connection with
-- lightws.accept(opts) and runs serve(ws); returns the client's output.
local function serve_client(cmd_of_port, opts, serve)
  local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
  local p = assert(io.popen(cmd_of_port(port) .. " 2>&1; echo rc=$?", "r"))
  local ok, err = pcall(function()
    local fd = assert(lightws.tcp_accept(lfd, 10))
    local o = { timeout = 10 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local ws = assert(lightws.accept(fd, o))
    ws:settimeout(20)
    serve(ws)
  end)
  local out = p:read("*a"); p:close()
  lightws.close_fd(lfd)
  assert(ok, tostring(err) .. "\n" .. out)
  return out
end

local function echo_all(ws)
  while true do
    local data, kind = ws:receive()
    if not data then break end
    if ws:compressed() then ws:send(data, kind, true); ws:send("", kind)
    else ws:send(data, kind) end
  end
  ws:close()
end

describe("permessage-deflate with python websockets", function()
  local pyport, pystop                       -- one default server for the client tests
  setup(function() pyport, pystop = spawn(PY .. " server") end)
  teardown(function() if pystop then pystop() end end)

  it("lightws client: negotiated by default (websockets shows PerMessageDeflate), 0 bytes to 1 MiB", function()
    local port, stop = pyport, function() end
    local ok, err = pcall(function()
      local ws, resp = assert(lightws.connect(url(port), { timeout = 10 }))
      assert.matches("permessage%-deflate", resp.extensions)
      local e = assert(ws:extensions())
      assert.equal("permessage-deflate", e.name)
      ws:settimeout(10)
      ws:send_text("ext?")
      local d = ws:receive()
      assert.matches("^ext: permessage%-deflate local_nct=False", d)
      exchange(ws)
      local closed, ccode = ws:close()
      assert.same({ true, 1000 }, { closed, ccode })
    end)
    stop()
    assert(ok, err)
  end)

  it("lightws client: context takeover off and window bits 10 asked by the server", function()
    local port, stop = spawn(PY .. " server nct")
    local ok, err = pcall(function()
      local ws = assert(lightws.connect(url(port), { timeout = 10 }))
      local e = assert(ws:extensions())
      assert.is_true(e.server_no_context_takeover)
      assert.is_true(e.client_no_context_takeover)
      assert.equal(10, e.server_max_window_bits)
      assert.equal(10, e.client_max_window_bits)
      exchange(ws)
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("lightws client: our no_context_takeover, peer_no_context_takeover and window bits in the offer", function()
    local port, stop = pyport, function() end
    local ok, err = pcall(function()
      local ws = assert(lightws.connect(url(port), { timeout = 10, no_context_takeover = true,
        peer_no_context_takeover = true, window_bits = 9, peer_window_bits = 11 }))
      local e = assert(ws:extensions())
      assert.is_true(e.client_no_context_takeover)
      assert.is_true(e.server_no_context_takeover)
      assert.equal(11, e.server_max_window_bits)
      exchange(ws)
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("lightws client: deflate = false offers nothing (websockets says none)", function()
    local port, stop = pyport, function() end
    local ok, err = pcall(function()
      local ws, resp = assert(lightws.connect(url(port), { timeout = 10, deflate = false }))
      assert.is_nil(resp.extensions)
      assert.is_nil(ws:extensions())
      ws:settimeout(10)
      ws:send_text("ext?")
      assert.same({ "ext: none", "text" }, { ws:receive() })
      ws:send_text(("x"):rep(1000))
      ws:receive()
      assert.is_false(ws:compressed())
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("lightws.accept: a websockets client negotiates and round-trips (0 bytes, 1 MiB, fragments)", function()
    local out = serve_client(function(port) return PY .. " client " .. url(port) end, nil, function(ws)
      assert.equal("permessage-deflate", assert(ws:extensions()).name)
      echo_all(ws)
    end)
    assert.matches("pass PerMessageDeflate negotiated", out)
    assert.not_matches("FAIL", out)
    assert.matches("rc=0", out)
  end)

  it("lightws.accept with deflate = false: the websockets client's offer is declined", function()
    local out = serve_client(function(port) return PY .. " client " .. url(port) .. " declined" end,
      { deflate = false }, function(ws)
        assert.is_nil(ws:extensions())
        echo_all(ws)
      end)
    assert.matches("ext none", out)
    assert.matches("rc=0", out)
  end)

  it("deflate_required: a server that declines fails the handshake with 1010", function()
    local port, stop = spawn("/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_python.py server")
    local ok, err = pcall(function()
      -- peer_python.py accepts compression: required against it works
      local ws = assert(lightws.connect(url(port), { timeout = 10, deflate_required = true }))
      ws:close()
    end)
    stop()
    assert(ok, err)
    local lfd, lport = assert(lightws.tcp_listen("127.0.0.1", 0))
    local cfd = assert(lightws.tcp_connect("127.0.0.1", lport))
    local sfd = assert(lightws.tcp_accept(lfd, 5))
    local c = assert(lightws.stream(cfd, "client"))
    c:settimeout(0)
    c:client_handshake("127.0.0.1", "/", { deflate_required = true })
    local s = assert(lightws.accept(sfd, { timeout = 5, deflate = false }))
    c:settimeout(5)
    local r, msg, code, name = c:client_handshake()
    assert.is_nil(r)
    assert.equal(1010, code)
    assert.equal("extension_declined", name)
    c:settimeout(0.05); s:settimeout(0.05)
    c:close(); s:close()
    lightws.close_fd(lfd)
  end)
end)

describe("permessage-deflate with node ws", function()
  it("lightws client against a perMessageDeflate server", function()
    local port, stop = spawn(NODE .. " server")
    local ok, err = pcall(function()
      local ws = assert(lightws.connect(url(port), { timeout = 10 }))
      assert.equal("permessage-deflate", assert(ws:extensions()).name)
      ws:settimeout(10)
      ws:send_text("ext?")
      assert.matches("^ext: permessage%-deflate", (ws:receive()))
      exchange(ws)
      ws:close()
    end)
    stop()
    assert(ok, err)
  end)

  it("node ws client against lightws.accept", function()
    local out = serve_client(function(port) return NODE .. " client " .. url(port) end, nil, echo_all)
    assert.matches("pass permessage%-deflate negotiated", out)
    assert.not_matches("FAIL", out)
    assert.matches("rc=0", out)
  end)
end)

describe("examples/echo.lua and permessage-deflate", function()
  for _, lua in ipairs({ H.LUA }) do        -- (each ABI's run tests its own)
    it("(" .. lua .. ") negotiates by default and answers compressed with compressed; --no-deflate declines", function()
      local port, stop = spawn(lua .. " " .. ROOT .. "/examples/echo.lua --host 127.0.0.1 --port 0")
      local port2, stop2 = spawn(lua .. " " .. ROOT .. "/examples/echo.lua --no-deflate --host 127.0.0.1 --port 0")
      local ok, err = pcall(function()
        local ws = assert(lightws.connect(url(port), { timeout = 10 }))
        assert.truthy(ws:extensions())
        ws:settimeout(10)
        ws:send("hi", "text", true); ws:send("", "text")   -- short, compressed anyway
        assert.same({ "hi", "text" }, { ws:receive() })
        assert.is_true(ws:compressed())
        ws:send(("plain "):rep(50), "text", { compress = false })
        ws:receive()
        assert.is_false(ws:compressed())
        ws:close()
        local r = os.execute(PY .. " client " .. url(port) .. " >/dev/null")
        assert.is_true(r == true or r == 0)
        r = os.execute(PY .. " client " .. url(port2) .. " declined >/dev/null")
        assert.is_true(r == true or r == 0)
        local ws2 = assert(lightws.connect(url(port2), { timeout = 10 }))
        assert.is_nil(ws2:extensions())
        ws2:close()
      end)
      stop(); stop2()
      assert(ok, err)
    end)
  end

  it("--client mode negotiates with a lightws server and --no-deflate does not", function()
    for _, flag in ipairs({ "", "--no-deflate " }) do
      local out = ""
      local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
      local p = assert(io.popen(H.LUA .. " " .. ROOT .. "/examples/echo.lua " .. flag .. "--client " .. url(port) .. "; echo rc=$?", "r"))
      local fd = assert(lightws.tcp_accept(lfd, 5))
      local ws = assert(lightws.accept(fd, { timeout = 5 }))
      ws:settimeout(5)
      assert.equal(flag == "", ws:extensions() ~= nil)
      ws:send_text(("zz"):rep(100))
      ws:receive()
      assert.equal(flag == "", ws:compressed())
      ws:close()
      out = p:read("*a"); p:close()
      lightws.close_fd(lfd)
      assert.matches("rc=0", out)
    end
  end)
end)

-- A server stream that accepted permessage-deflate from a raw client on
-- the other end of a socketpair; returns ws, the raw fd, the 101 head.
local function raw_accept(offer, opts)
  local a, b = lightws.socketpair()
  H.write_all(a, "GET /d HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" ..
    (offer and ("Sec-WebSocket-Extensions: " .. offer .. "\r\n") or "") .. "\r\n")
  local o = { timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local ws = assert(lightws.accept(b, o))
  local head = ""
  while not head:find("\r\n\r\n", 1, true) do head = head .. assert(lightws.read_fd(a, 4096, 5)) end
  return ws, a, head
end

-- The next frame on a raw fd, RSV1 allowed: opcode, payload, fin, rsv
-- (nil when `secs`, default 5, pass without one).
local function raw_reader(fd)
  local buf = ""
  return function(secs)
    while true do
      local fin, op, _, len, key, hlen, rsv = lightws.decode_head(buf, 1, nil, true)
      if fin ~= nil and #buf >= hlen + len then
        local p = buf:sub(hlen + 1, hlen + len)
        buf = buf:sub(hlen + len + 1)
        if key then p = lightws.mask(p, key) end
        return op, p, fin, rsv
      end
      local d = lightws.read_fd(fd, 65536, secs or 5)
      if not d then return nil end
      buf = buf .. d
    end
  end
end

local function masked_rsv1(op, payload)
  local key = "\1\2\3\4"
  return lightws.encode_head(true, op, #payload, key, 0x40) .. lightws.mask(payload, key)
end

describe("permessage-deflate on the wire (raw peer)", function()
  it("answers the offer in the 101, and RSV1 follows the threshold, compress = false and fragments", function()
    local ws, fd, head = raw_accept("permessage-deflate; client_max_window_bits", { deflate_threshold = 100 })
    assert.matches("\r\nSec%-WebSocket%-Extensions: permessage%-deflate", head)
    local read = raw_reader(fd)
    local dec = assert(lightws.decompressor())
    ws:send_text(("a"):rep(99))                          -- under the threshold
    local op, p, fin, rsv = read()
    assert.same({ 1, 0, true }, { op, rsv, fin })
    assert.equal(("a"):rep(99), p)
    ws:send_text(("b"):rep(100))                         -- at it: compressed
    op, p, fin, rsv = read()
    assert.same({ 1, 0x40, true }, { op, rsv, fin })
    assert.equal(("b"):rep(100), dec:decompress(p, "text"))
    ws:send(("c"):rep(500), "binary", { compress = false })
    op, p, fin, rsv = read()
    assert.same({ 2, 0, ("c"):rep(500) }, { op, rsv, p })
    ws:send("x", "binary", true); ws:send("y", "binary", true); ws:send("z", "binary")
    local parts, first = {}, nil
    repeat
      op, p, fin, rsv = read()
      if first == nil then first = { op, rsv } else assert.same({ 0, 0 }, { op, rsv }) end
      parts[#parts + 1] = p
    until fin
    assert.same({ 2, 0x40 }, first)                       -- RSV1 on the first frame only
    assert.equal("xyz", dec:decompress(table.concat(parts)))
    ws:send("", "text")                                   -- an empty one: plain under the threshold
    op, p, fin, rsv = read()
    assert.same({ 1, "", 0 }, { op, p, rsv })
    -- a compressed message from the peer (RFC 7692 §7.2.3.1), then control frames
    H.write_all(fd, masked_rsv1(1, "\xf2\x48\xcd\xc9\xc9\x07\x00"))
    assert.same({ "Hello", "text" }, { ws:receive() })
    assert.is_true(ws:compressed())
    H.write_all(fd, H.masked(true, 1, "plain"))
    assert.same({ "plain", "text" }, { ws:receive() })
    assert.is_false(ws:compressed())
    lightws.close_fd(fd)
  end)

  it("deflate = false: no extension in the 101; RSV1 from the peer is 1002", function()
    local ws, fd, head = raw_accept("permessage-deflate", { deflate = false })
    assert.not_matches("Extensions", head)
    H.write_all(fd, masked_rsv1(1, "\xf2\x48\xcd\xc9\xc9\x07\x00"))
    local d, msg, code = ws:receive()
    assert.is_nil(d)
    assert.equal(1002, code)
    lightws.close_fd(fd)
  end)

  it("invalid deflate data fails with 1007 (close frame sent)", function()
    local ws, fd = raw_accept("permessage-deflate")
    H.write_all(fd, masked_rsv1(2, "\xff\xff\xff\xff garbage"))
    local d, _, code, name = ws:receive()
    assert.is_nil(d)
    assert.same({ 1007, "bad_deflate" }, { code, name })
    local op, p = raw_reader(fd)()
    assert.equal(8, op)
    assert.equal(1007, p:byte(1) * 256 + p:byte(2))
    lightws.close_fd(fd)
  end)

  it("a bomb (16 MiB of zeros in about 16 KiB) is refused with 1009 at max_message, early", function()
    local ws, fd = raw_accept("permessage-deflate", { max_message = 256 * 1024 })
    local bomb = assert(lightws.compressor()):compress(("\0"):rep(16 * 1024 * 1024))
    assert.is_true(#bomb < 64 * 1024)
    H.write_all(fd, masked_rsv1(2, bomb))
    local t0 = lightws.now()
    local d, _, code, name = ws:receive()
    assert.is_nil(d)
    assert.same({ 1009, "message_too_big" }, { code, name })
    assert.is_true(lightws.now() - t0 < 2)
    local op, p = raw_reader(fd)()
    assert.equal(8, op)
    assert.equal(1009, p:byte(1) * 256 + p:byte(2))
    lightws.close_fd(fd)
  end)

  it("a timed-out compressed send is finished by an empty send", function()
    local a, b = lightws.socketpair()
    local c = lightws.wrap(a, "client")
    assert(c:set_deflate({}, { level = 0 }))               -- stored blocks: no shrinking
    local big = lightws.random(4096):rep(256)              -- 1 MiB
    c:settimeout(0)
    local n, err, sent = c:send(big, "binary")
    assert.is_nil(n); assert.equal("timeout", err)
    local read, got = raw_reader(b), {}
    local dec = assert(lightws.decompressor())
    local off = sent
    local done = false
    while not done do
      if off < #big or n == nil then
        n, err, sent = c:send(big:sub(off + 1), "binary")
        if n then off = #big else off = off + sent end
      end
      for _ = 1, 32 do                                     -- the frames readable now
        local op, p, fin = read(0.05)
        if not op then break end
        got[#got + 1] = p
        done = fin
        if done then break end
      end
    end
    if not n then assert(c:send("", "binary")) end
    assert.is_true(dec:decompress(table.concat(got)) == big)
    c:settimeout(1)
    c:send("after", "text", { compress = false })
    local op, p = read()
    assert.same({ 1, "after" }, { op, p })
    lightws.close_fd(b)
  end)
end)

describe("permessage-deflate negotiation between lightws streams", function()
  local function pair(copts, sopts)
    local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
    local cfd = assert(lightws.tcp_connect("127.0.0.1", port))
    local sfd = assert(lightws.tcp_accept(lfd, 5))
    lightws.close_fd(lfd)
    local c = assert(lightws.stream(cfd, "client"))
    c:settimeout(0)
    c:client_handshake("127.0.0.1", "/", copts)
    local s = assert(lightws.accept(sfd, sopts))
    c:settimeout(5); s:settimeout(5)
    assert(c:client_handshake())
    return c, s
  end
  local function close(c, s)                 -- one thread: no waiting for answers
    c:settimeout(0.05); s:settimeout(0.05)
    c:close(); s:close()
  end

  it("agrees on both sides: defaults, context takeover off, window bits", function()
    for _, case in ipairs({
      { {}, {}, { server_no_context_takeover = false, client_no_context_takeover = false } },
      { { no_context_takeover = true }, {}, { client_no_context_takeover = true, server_no_context_takeover = false } },
      { {}, { no_context_takeover = true }, { server_no_context_takeover = true } },
      { { peer_window_bits = 10 }, { peer_window_bits = 9 }, { server_max_window_bits = 10, client_max_window_bits = 9 } },
    }) do
      local c, s = pair(case[1], case[2])
      local ce, se = assert(c:extensions()), assert(s:extensions())
      assert.same(ce, se)
      for k, v in pairs(case[3]) do assert.equal(v, ce[k], k) end
      for i = 1, 3 do
        local m = ("same text again "):rep(30)
        c:send_text(m)
        assert.same({ m, "text" }, { s:receive() })
        s:send_text(m .. i)
        assert.same({ m .. i, "text" }, { c:receive() })
      end
      close(c, s)
    end
  end)

  it("a server with deflate = false, a client with deflate = false", function()
    local c, s = pair({}, { deflate = false })
    assert.is_nil(c:extensions()); assert.is_nil(s:extensions())
    close(c, s)
    c, s = pair({ deflate = false }, {})
    assert.is_nil(c:extensions()); assert.is_nil(s:extensions())
    close(c, s)
  end)

  it("bad options are errors before anything is sent", function()
    local c = assert(lightws.stream(select(1, lightws.socketpair()), "client"))
    assert.has_error(function() c:client_handshake("x", "/", { window_bits = 16 }) end)
    assert.has_error(function() c:client_handshake("x", "/", { mem_level = 10 }) end)
    c:close()
  end)
end)

describe("sans-IO compressor and decompressor", function()
  it("RFC 7692 §7.2.3 examples, context takeover, empty messages", function()
    local comp = assert(lightws.compressor())
    assert.equal("\xf2\x48\xcd\xc9\xc9\x07\x00", comp:compress("Hello"))
    local second = comp:compress("Hello")
    assert.is_true(#second < 7)                            -- a back reference (§7.2.3.2)
    local dec = assert(lightws.decompressor())
    assert.equal("Hello", dec:decompress("\xf2\x48\xcd\xc9\xc9\x07\x00"))
    assert.equal("Hello", dec:decompress(second))
    assert.equal("\0", comp:compress(""))                  -- §7.2.3.6
    assert.equal("", dec:decompress("\0"))
    local nct = assert(lightws.compressor({ no_context_takeover = true }))
    assert.equal(nct:compress("Hello"), nct:compress("Hello"))
    -- §7.2.3.3: no compression (stored block)
    assert.equal("Hello", assert(lightws.decompressor()):decompress("\x00\x05\x00\xfa\xffHello\x00"))
  end)

  it("limits, bad data, text", function()
    local big = assert(lightws.compressor()):compress(("y"):rep(100000))
    local d, _, code = assert(lightws.decompressor({ max_size = 99999 })):decompress(big)
    assert.is_nil(d); assert.equal(1009, code)
    d, _, code = assert(lightws.decompressor()):decompress("\xff\xff\xff")
    assert.is_nil(d); assert.equal(1007, code)
    local bad = assert(lightws.compressor()):compress("\xff\xfe")
    d, _, code = assert(lightws.decompressor()):decompress(bad, "text")
    assert.is_nil(d); assert.equal(1007, code)
    local w9 = assert(lightws.compressor({ window_bits = 9 }))
    local msg = lightws.random(300):rep(50)
    assert.equal(msg, assert(lightws.decompressor({ window_bits = 9 })):decompress(w9:compress(msg)))
  end)
end)
