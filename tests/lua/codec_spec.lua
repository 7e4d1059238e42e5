-- SPDX-License-Identifier: MIT
-- lightws.core codec functions on RFC 6455 vectors: frame heads (§5.2, §5.7), masking (§5.3), handshake (§1.3, §4), UTF-8.
local lightws = require "lightws"

local function hex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end

describe("decode_head", function()
  it("decodes the §5.7 unmasked 'Hello' text frame", function()
    local f = hex("810548656c6c6f")
    local fin, op, masked, len, key, hlen, rsv = lightws.decode_head(f)
    assert.same({ true, 1, false, 5, nil, 2, 0 }, { fin, op, masked, len, key, hlen, rsv })
  end)

  it("decodes the §5.7 masked 'Hello' frame and unmasks its payload", function()
    local f = hex("818537fa213d7f9f4d5158")
    local fin, op, masked, len, key, hlen = lightws.decode_head(f, 1, "masked")
    assert.same({ true, 1, true, 5, hex("37fa213d"), 6 }, { fin, op, masked, len, key, hlen })
    assert.equal("Hello", lightws.mask(f:sub(hlen + 1), key))
  end)

  it("decodes the §5.7 fragments, ping, 256-byte and 64 KiB heads", function()
    local function first4(...) return { (select(1, ...)), (select(2, ...)), (select(3, ...)), (select(4, ...)) } end
    assert.same({ false, 1, false, 3 }, first4(lightws.decode_head(hex("010348656c"))))
    assert.same({ true, 0, false, 2 }, first4(lightws.decode_head(hex("80026c6f"))))
    local fin, op = lightws.decode_head(hex("890548656c6c6f"))
    assert.same({ true, 9 }, { fin, op })
    local _, _, _, len, _, hlen = lightws.decode_head(hex("827e0100"))
    assert.same({ 256, 4 }, { len, hlen })
    _, _, _, len, _, hlen = lightws.decode_head(hex("827f0000000000010000"))
    assert.same({ 65536, 10 }, { len, hlen })
  end)

  it("decodes at an offset", function()
    local _, op, _, len = lightws.decode_head("xx" .. hex("820110"), 3)
    assert.same({ 2, 1 }, { op, len })
  end)

  it("reports incomplete with the bytes still needed, one byte at a time", function()
    local f = hex("827f0000000000010000")
    for n = 0, #f - 1 do
      local r1, r2, need = lightws.decode_head(f:sub(1, n))
      assert.is_nil(r1)
      assert.equal("incomplete", r2)
      assert.is_true(need >= 1 and n + need <= #f, "n=" .. n)
    end
    assert.equal(1, (select(3, lightws.decode_head(hex("82")))))
    assert.equal(8, (select(3, lightws.decode_head(hex("827f")))))
    assert.equal(4, (select(3, lightws.decode_head(hex("8285")))))
  end)

  it("names protocol errors with their close code", function()
    assert.same({ nil, "reserved_opcode", 1002 }, { lightws.decode_head(hex("8300")) })
    assert.same({ nil, "reserved_bits", 1002 }, { lightws.decode_head(hex("c100")) })
    assert.same({ nil, "fragmented_control", 1002 }, { lightws.decode_head(hex("0900")) })
    assert.same({ nil, "control_too_long", 1002 }, { lightws.decode_head(hex("897e007e")) })
    assert.same({ nil, "nonminimal_length", 1002 }, { lightws.decode_head(hex("827e0005")) })
    assert.same({ nil, "mask_required", 1002 }, { lightws.decode_head(hex("8100"), 1, "masked") })
    assert.same({ nil, "mask_unexpected", 1002 }, { lightws.decode_head(hex("818000000000"), 1, "unmasked") })
  end)

  it("raises on misuse", function()
    assert.has_error(function() lightws.decode_head(hex("8100"), 1, "sideways") end)
    assert.has_error(function() lightws.decode_head(hex("8100"), 9) end)
  end)
end)

describe("encode_head", function()
  it("encodes §5.7 heads in the shortest form", function()
    assert.equal(hex("8105"), lightws.encode_head(true, "text", 5))
    assert.equal(hex("8185") .. hex("37fa213d"), lightws.encode_head(true, 1, 5, hex("37fa213d")))
    assert.equal(hex("0103"), lightws.encode_head(false, "text", 3))
    assert.equal(hex("827e0100"), lightws.encode_head(true, "binary", 256))
    assert.equal(hex("827f0000000000010000"), lightws.encode_head(true, "binary", 65536))
    assert.equal(hex("8a00"), lightws.encode_head(true, "pong", 0))
  end)

  it("round-trips through decode_head", function()
    for _, len in ipairs({ 0, 1, 125, 126, 65535, 65536, 2 ^ 32 + 7 }) do
      local h = lightws.encode_head(false, "binary", len, "abcd")
      local fin, op, masked, l, key, hlen = lightws.decode_head(h)
      assert.same({ false, 2, true, len, "abcd", #h }, { fin, op, masked, l, key, hlen })
    end
  end)

  it("refuses frames the RFC forbids", function()
    assert.same({ nil, "invalid", 0 }, { lightws.encode_head(false, "ping", 0) })
    assert.same({ nil, "invalid", 0 }, { lightws.encode_head(true, "close", 126) })
    assert.same({ nil, "invalid", 0 }, { lightws.encode_head(true, 3, 0) })
    assert.has_error(function() lightws.encode_head(true, "text", 1, "abc") end)
    assert.has_error(function() lightws.encode_head(true, "texte", 1) end)
  end)
end)

describe("mask", function()
  local key = hex("37fa213d")
  local masked = hex("7f9f4d5158")
  it("unmasks the §5.7 payload and is its own inverse", function()
    assert.equal("Hello", lightws.mask(masked, key))
    assert.equal(masked, lightws.mask("Hello", key))
  end)

  it("unmasks every split with offsets", function()
    local data = string.rep("The quick brown fox ", 100)
    local whole = lightws.mask(data, key)
    for cut = 0, 17 do
      local a = lightws.mask(data:sub(1, cut), key, 0)
      local b = lightws.mask(data:sub(cut + 1), key, cut)
      assert.equal(whole, a .. b)
    end
  end)

  it("handles strings longer than the Lua buffer size", function()
    local data = string.rep("\0", 100000)
    local m = lightws.mask(data, key)
    assert.equal(100000, #m)
    assert.equal(string.rep(key, 25000), m)
  end)
end)

describe("handshake", function()
  local req = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n" ..
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
              "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n" ..
              "Sec-WebSocket-Version: 13\r\n\r\n"

  it("computes the §1.3 accept value", function()
    assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", lightws.handshake_accept("dGhlIHNhbXBsZSBub25jZQ=="))
  end)

  it("makes 24-character keys that differ", function()
    local a, b = lightws.handshake_key(), lightws.handshake_key()
    assert.equal(24, #a)
    assert.not_equal(a, b)
    assert.equal(4, #lightws.random(4))
    assert.equal(1000, #lightws.random(1000))
  end)

  it("draws a fresh 4-byte masking key per call without a syscall", function()
    local seen = {}
    for _ = 1, 1000 do
      local k = lightws.mask_key()
      assert.equal(4, #k)
      seen[k] = true
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.is_true(n > 990) -- 1000 draws from 2^32: collisions are rare
  end)

  it("parses the §1.3 request", function()
    local r = lightws.parse_request(req)
    assert.equal("GET", r.method)
    assert.equal("/chat", r.path)
    assert.equal("server.example.com", r.host)
    assert.equal("dGhlIHNhbXBsZSBub25jZQ==", r.key)
    assert.equal("chat, superchat", r.protocol)
    assert.equal("http://example.com", r.origin)
    assert.equal(13, r.version)
    assert.equal(#req, r.head_len)
    assert.equal("websocket", r.headers.upgrade)
    assert.same({ "Host", "server.example.com" }, r.header_list[1])
  end)

  it("says incomplete for every prefix", function()
    for n = 0, #req - 1 do
      local r, e = lightws.parse_request(req:sub(1, n))
      assert.is_nil(r)
      assert.equal("incomplete", e)
    end
  end)

  it("names failed checks with the HTTP status", function()
    assert.same({ nil, "http_method", 405 }, { lightws.parse_request((req:gsub("^GET", "POST"))) })
    assert.same({ nil, "no_upgrade", 400 }, { lightws.parse_request((req:gsub("Upgrade: websocket\r\n", ""))) })
    assert.same({ nil, "bad_version", 426 }, { lightws.parse_request((req:gsub("Version: 13", "Version: 8"))) })
    assert.same({ nil, "bad_key", 400 }, { lightws.parse_request((req:gsub("dGhlIHNhbXBsZSBub25jZQ==", "abc"))) })
  end)

  it("builds a request the parser accepts", function()
    local key = lightws.handshake_key()
    local s = assert(lightws.build_request("h:1", "/p?q=1", key, { protocols = "chat", origin = "o",
                                            headers = { { "X-One", "1" } } }))
    local r = assert(lightws.parse_request(s))
    assert.same({ "/p?q=1", "h:1", key, "chat", "1" }, { r.path, r.host, r.key, r.protocol, r.headers["x-one"] })
    assert.same({ nil, "header_injection", 0 }, { lightws.build_request("h", "/\r\nX: y", key) })
  end)

  it("builds the §1.3 response and parses it back", function()
    local s = assert(lightws.build_response("dGhlIHNhbXBsZSBub25jZQ==", "chat"))
    assert.truthy(s:find("HTTP/1.1 101 Switching Protocols\r\n", 1, true) == 1)
    assert.truthy(s:find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 1, true))
    local r = assert(lightws.parse_response(s, "dGhlIHNhbXBsZSBub25jZQ==", "chat, superchat"))
    assert.same({ 101, "chat", #s }, { r.status, r.protocol, r.head_len })
    assert.same({ nil, "bad_accept", 101 }, { lightws.parse_response(s, "x3JJHMbDL1EzLkh9GBhXDw==", "chat") })
    assert.same({ nil, "bad_protocol", 101 }, { lightws.parse_response(s, "dGhlIHNhbXBsZSBub25jZQ==") })
  end)

  it("builds error responses (426 names the version)", function()
    local s = assert(lightws.build_error(426))
    assert.truthy(s:find("^HTTP/1.1 426"))
    assert.truthy(s:find("Sec-WebSocket-Version: 13\r\n", 1, true))
    local r, e, status = lightws.parse_response(assert(lightws.build_error(400)))
    assert.same({ nil, "bad_status", 400 }, { r, e, status })
  end)
end)

describe("utf8 validator", function()
  it("validates across any split", function()
    local text = "κόσμε ✓ 𝄞"
    for cut = 0, #text do
      local u = lightws.utf8()
      local a = u:feed(text:sub(1, cut))
      assert.is_not_nil(a)
      assert.is_true(u:feed(text:sub(cut + 1)))
    end
  end)

  it("rejects invalid input with 1007 and resets", function()
    local u = lightws.utf8()
    assert.is_false(u:feed("\xce"))
    assert.same({ nil, "utf8", 1007 }, { u:feed("\xff") })
    assert.same({ nil, "utf8", 1007 }, { u:feed("a") })
    u:reset()
    assert.is_true(u:feed("a"))
    assert.same({ nil, "utf8", 1007 }, { lightws.utf8():feed("\xed\xa0\x80") })  -- surrogate
    assert.same({ nil, "utf8", 1007 }, { lightws.utf8():feed("\xc0\xaf") })      -- overlong
  end)
end)

describe("errors and URLs", function()
  it("exposes the error table", function()
    assert.equal("UTF8", lightws.errname(-40))
    assert.equal("invalid UTF-8 in text", lightws.strerror(-40))
    assert.is_true(lightws.close_code_valid(1000))
    assert.is_false(lightws.close_code_valid(1005))
    assert.is_true(lightws.close_code_valid(4999))
  end)

  it("parses ws:// URLs", function()
    assert.same({ "127.0.0.1", 9001, "/a/b?x=1", "127.0.0.1:9001" }, { lightws.parse_url("ws://127.0.0.1:9001/a/b?x=1") })
    assert.same({ "h", 80, "/", "h" }, { lightws.parse_url("ws://h") })
    assert.same({ "h", 80, "/?q", "h" }, { lightws.parse_url("ws://h?q") })
    assert.same({ "::1", 8080, "/", "[::1]:8080" }, { lightws.parse_url("ws://[::1]:8080") })
    assert.is_nil((lightws.parse_url("http://h/")))
  end)
end)
