-- SPDX-License-Identifier: MIT
-- lightws streams over socketpairs: handshake, messages, control frames, close codes, errors and timeouts resumed mid-frame.
local lightws = require "lightws"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local raw_server, masked, write_all, read_frame, be16 = H.raw_server, H.masked, H.write_all, H.read_frame, H.be16

-- A client and a server stream joined by a socketpair, handshake done.
-- (hopts: more handshake options of both, e.g. deflate = false)
local function pair(copts, sopts, hopts)
  local a, b = lightws.socketpair()
  local c = assert(lightws.stream(a, "client", copts))
  local s = assert(lightws.stream(b, "server", sopts))
  c:settimeout(0)
  local ho = { protocols = "chat" }
  for k, v in pairs(hopts or {}) do ho[k] = v end
  local r, e = c:client_handshake("localhost", "/t?q=1", ho)
  assert(r == nil and e == "timeout")        -- request sent, no response yet
  ho.protocols = "superchat, chat"
  local req = assert(s:server_handshake(ho))
  assert(req.path == "/t?q=1" and req.chosen_protocol == "chat")
  c:settimeout(nil)
  local resp = assert(c:client_handshake())  -- resumes where it stopped
  assert(resp.status == 101 and resp.protocol == "chat")
  return c, s
end

describe("stream", function()
  it("runs a resumable handshake and exchanges text, binary and empty messages", function()
    local c, s = pair()
    assert.equal(5, c:send("hello", "text"))
    assert.same({ "hello", "text" }, { s:receive() })
    assert.equal(4, s:send_binary("\0\1\2\255"))
    assert.same({ "\0\1\2\255", "binary" }, { c:receive() })
    assert.equal(0, c:send_text(""))
    assert.same({ "", "text" }, { s:receive() })
    assert.matches("^lightws.stream %(client fd %d+%)$", tostring(c))
    assert.equal("open", (c:status()))
    c:settimeout(0.2)
    c:close()
    s:close()
    assert.equal("lightws.stream (closed)", tostring(c))
  end)

  it("moves 1 MiB both ways with timeouts interleaving sender and receiver", function()
    -- uncompressed: a compressed send that times out with all its data
    -- taken is finished by an empty send (deflate_spec)
    local c, s = pair(nil, nil, { deflate = false })
    local big = {}
    for i = 1, 1024 * 1024 / 8 do big[i] = string.format("%08x", i) end
    big = table.concat(big)
    for _, dir in ipairs({ { c, s }, { s, c } }) do
      local tx, rx = dir[1], dir[2]
      tx:settimeout(0); rx:settimeout(0)
      local off, got, kind, timeouts = 0, nil, nil, 0
      while not got do
        if off < #big then
          local n, err, sent = tx:send(big:sub(off + 1), "binary")
          if n then off = #big else assert.equal("timeout", err); off = off + sent; timeouts = timeouts + 1 end
        end
        local d, k = rx:receive()
        if d then got, kind = d, k else assert.equal("timeout", k) end
      end
      assert.equal(#big, #got)
      assert.is_true(got == big)
      assert.equal("binary", kind)
      assert.is_true(timeouts > 0)
    end
  end)

  it("sends and assembles fragmented messages; receive_chunk streams them", function()
    -- uncompressed: the chunks of a compressed message do not follow its frames
    local c, s = pair(nil, nil, { deflate = false })
    c:send("frag", "text", true)
    c:send("men", "text", true)
    c:send("ted", "text")
    assert.same({ "fragmented", "text" }, { s:receive() })
    c:send("ab", "binary", true)
    c:send("", "binary", true)
    c:send("cd", "binary")
    assert.same({ "ab", "binary", false }, { s:receive_chunk() })
    assert.same({ "cd", "binary", true }, { s:receive_chunk() })
  end)

  it("answers pings and records pongs", function()
    local c, s = pair()
    assert.is_true(c:ping("are you there"))
    s:settimeout(0.05)
    assert.same({ nil, "timeout" }, { s:receive_chunk() })  -- the ping is answered inside
    c:settimeout(0.05)
    assert.same({ nil, "timeout" }, { c:receive_chunk() })
    assert.equal("are you there", c:last_pong())
    assert.is_nil(c:last_pong())
    assert.is_true(s:pong("unsolicited"))
    s:send_text("x")
    assert.same({ "x", "text" }, { c:receive() })
    assert.equal("unsolicited", c:last_pong())
  end)

  it("reports the peer's close with code and reason, and answers it", function()
    local s, fd = raw_server()
    write_all(fd, masked(true, "text", "last") .. masked(true, "close", be16(4000) .. "bye"))
    assert.same({ "last", "text" }, { s:receive() })
    assert.same({ nil, "closed", 4000, "bye" }, { s:receive() })
    local op, payload = read_frame(fd)
    assert.same({ 8, be16(4000) }, { op, payload })
    assert.same({ nil, "closed", 4000, "bye" }, { s:receive() })
    assert.same({ "closed", 4000 }, { (s:status()), select(2, s:status()) })
    lightws.close_fd(fd)
  end)

  it("reports 1005 for a close without code and 1006 for EOF", function()
    local s, fd = raw_server()
    write_all(fd, masked(true, "close", ""))
    assert.same({ nil, "closed", 1005, "" }, { s:receive() })
    lightws.close_fd(fd)
    s, fd = raw_server()
    lightws.close_fd(fd)
    assert.same({ nil, "closed", 1006, "" }, { s:receive() })
  end)

  it("closes with a code: sends it and waits for the answer", function()
    local s, fd = raw_server()
    write_all(fd, masked(true, "close", be16(4001) .. "ok"))  -- the answer, already queued
    s:settimeout(2)
    assert.same({ true, 4001, "ok" }, { s:close(4001, "going") })
    local op, payload = read_frame(fd)
    assert.same({ 8, be16(4001) .. "going" }, { op, payload })
    assert.equal("lightws.stream (closed)", tostring(s))
    assert.has_error(function() s:send("x") end, "attempt to use a closed lightws.stream")
    lightws.close_fd(fd)
  end)

  it("close times out when the peer never answers, and still closes", function()
    local s, fd = raw_server()
    s:settimeout(0.05)
    assert.same({ nil, "timeout" }, { s:close(1001) })
    local op, payload = read_frame(fd)
    assert.same({ 8, be16(1001) }, { op, payload })
    assert.same({ "" }, { lightws.read_fd(fd, 10, 1) })  -- EOF: descriptor closed
    lightws.close_fd(fd)
  end)

  local bad = {
    { "an unmasked client frame", lightws.encode_head(true, "text", 2) .. "hi", "client frame not masked", 1002, "mask_required" },
    { "a reserved opcode", lightws.encode_head(true, 0xA, 0, "\0\0\0\0"):gsub("^\138", "\131"), "reserved opcode", 1002, "reserved_opcode" },
    { "invalid UTF-8", masked(true, "text", "ok\xff"), "invalid UTF-8 in text", 1007, "utf8" },
    { "a continuation outside a message", masked(true, "continuation", "x"), "continuation frame outside a message", 1002, "unexpected_continuation" },
    { "a message over max_message", masked(false, "binary", "123456") .. masked(true, "continuation", "789012"), "message over the limit", 1009, "message_too_big" },
  }
  for _, case in ipairs(bad) do
    it("fails on " .. case[1] .. ": nil, message, close code, name; sends the close", function()
      local s, fd = raw_server({ max_message = 10 })
      write_all(fd, case[2])
      local expect = { nil, case[3], case[4], case[5] }
      assert.same(expect, { s:receive() })
      assert.same(expect, { s:receive() })          -- the stream stays failed
      local op, payload = read_frame(fd)
      assert.same({ 8, be16(case[4]) }, { op, payload:sub(1, 2) })
      lightws.close_fd(fd)
    end)
  end

  it("resumes a frame after a timeout at every split point", function()
    local frame = masked(true, "text", "Hello, resumable world")
    for cut = 1, #frame - 1 do
      local s, fd = raw_server()
      s:settimeout(0.01)
      write_all(fd, frame:sub(1, cut))
      assert.same({ nil, "timeout" }, { s:receive() })
      write_all(fd, frame:sub(cut + 1))
      assert.same({ "Hello, resumable world", "text" }, { s:receive() })
      s:close()
      lightws.close_fd(fd)
    end
  end)

  it("keeps a half-received message across a timeout (half a frame, then the rest)", function()
    local s, fd = raw_server()
    local payload = string.rep("0123456789", 20000)  -- 200 kB, larger than rbuf
    local frame = masked(false, "binary", payload:sub(1, 150000)) .. masked(true, "continuation", payload:sub(150001))
    local half = math.floor(#frame / 2)
    s:settimeout(0.05)
    write_all(fd, frame:sub(1, 100))
    assert.same({ nil, "timeout" }, { s:receive() })
    -- the socket buffer is smaller than the rest: feed it while receiving
    local rest, got, kind = frame:sub(101), nil, nil
    lightws.set_nonblocking(fd, true)
    while not got do
      if #rest > 0 then
        local n = lightws.write_fd(fd, rest)
        if n then rest = rest:sub(n + 1) end
      end
      local d, k = s:receive()
      if d then got, kind = d, k else assert.equal("timeout", k) end
    end
    assert.is_true(got == payload)
    assert.equal("binary", kind)
    assert.is_true(half > 100)
    lightws.close_fd(fd)
  end)

  it("iterates messages until the peer closes", function()
    local s, fd = raw_server()
    write_all(fd, masked(true, "text", "one") .. masked(true, "binary", "two") ..
                  masked(true, "ping", "p") .. masked(true, "text", "three") ..
                  masked(true, "close", be16(1000)))
    local got = {}
    for msg, kind in s:messages() do got[#got + 1] = kind .. ":" .. msg end
    assert.same({ "text:one", "binary:two", "text:three" }, got)
    local op, payload = read_frame(fd)
    assert.same({ 10, "p" }, { op, payload })              -- the automatic pong
    lightws.close_fd(fd)
  end)

  it("the iterator raises on protocol errors", function()
    local s, fd = raw_server()
    write_all(fd, masked(true, "text", "\xff"))
    assert.has_error(function() for _ in s:messages() do end end)
    lightws.close_fd(fd)
  end)

  it("masks client frames and the server unmasks them (all mask modes)", function()
    for _, mode in ipairs({ "random", "fixed", "zero" }) do
      local c, s = pair({ mask = mode })
      c:send("masked " .. mode, "text")
      assert.same({ "masked " .. mode, "text" }, { s:receive() })
    end
  end)

  it("does not close a descriptor it does not own (objects with :getfd())", function()
    local a, b = lightws.socketpair()
    local sock = { getfd = function() return a end }
    local ws = lightws.wrap(sock, "server")
    ws:settimeout(0)
    ws:close()
    assert.is_true(lightws.close_fd(a))                 -- still open
    lightws.close_fd(b)
    local c, d = lightws.socketpair()
    local ws2 = lightws.wrap(c, "server")               -- an integer is owned
    ws2:settimeout(0)
    ws2:close()
    assert.is_nil(lightws.close_fd(c))
    lightws.close_fd(d)
  end)

  it("poll reports readable descriptors", function()
    local a, b = lightws.socketpair()
    local c, d = lightws.socketpair()
    assert.same({}, lightws.poll({ a, c }, 0.01))
    lightws.write_fd(d, "x")
    assert.same({ 2 }, lightws.poll({ a, c }, 1))
    for _, fd in ipairs({ a, b, c, d }) do lightws.close_fd(fd) end
  end)

  it("raises on misuse", function()
    local c, s = pair()
    assert.has_error(function() c:send("x", "ping") end)
    assert.has_error(function() c:send({}) end)
    assert.has_error(function() c:ping(string.rep("x", 126)) end)
    assert.has_error(function() c:close(1005) end)
    assert.has_error(function() c:close(1000, string.rep("r", 124)) end)
    assert.has_error(function() c:client_handshake() end)
    assert.has_error(function() lightws.stream(-1, "client") end)
    assert.has_error(function() lightws.stream(0, "peer") end)
    assert.has_error(function() lightws.stream(0, "client", { rbuf_size = 10 }) end)
    assert.has_error(function() lightws.connect({}) end)
    local a, b = lightws.socketpair()
    local fresh = lightws.stream(a, "client")
    assert.has_error(function() fresh:receive() end, "the opening handshake is not done")
    lightws.close_fd(b)
    s:settimeout(0.05)
    s:close()
    assert.has_error(function() s:receive() end, "attempt to use a closed lightws.stream")
  end)

  it("a bad upgrade request is answered with its HTTP status", function()
    local a, b = lightws.socketpair()
    write_all(b, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n")
    local ws, msg, status, name = lightws.accept(a)
    assert.same({ nil, 426, "bad_version" }, { ws, status, name })
    assert.is_string(msg)
    local resp = lightws.read_fd(b, 4096, 2)
    assert.matches("^HTTP/1.1 426", resp)
    assert.truthy(resp:find("Sec-WebSocket-Version: 13", 1, true))
    lightws.close_fd(b)
  end)

  if _VERSION == "Lua 5.4" and not jit then
    it("closes the descriptor through <close>", function()
      local a, b = lightws.socketpair()
      local f = assert(load([[
        local lightws, fd = ...
        do local ws <close> = lightws.wrap(fd, "server") end
      ]]))
      f(lightws, a)
      assert.same({ "" }, { lightws.read_fd(b, 10, 1) })   -- EOF
      lightws.close_fd(b)
    end)
  end
end)
