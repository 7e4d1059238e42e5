-- SPDX-License-Identifier: MIT
-- wss (issue 14): lightws.tls_core under both ABIs against python websockets over ssl, both roles; certificates
-- from tests/tls/make_certs.sh (valid 2000-2099) in a temp dir. LIGHTWS_LUA_TLS=0 (make TLS=0): only the
-- "module missing" case runs, and the module must then be missing.
local lightws = require "lightws"
package.path = (os.getenv("LIGHTWS_ROOT") or ".") .. "/tests/lua/?.lua;" .. package.path
local H = require "helpers"
local ROOT = H.ROOT
local PY = "/usr/bin/python3 " .. ROOT .. "/tests/lua/peer_tls.py"
local WANT_TLS = os.getenv("LIGHTWS_LUA_TLS") ~= "0"

-- hides lightws.tls_core from require (a temp dir holding only core.so on
-- package.cpath) and loads a fresh lightws; restores everything after fn
local function without_tls_module(fn)
  local core_path = package.searchpath("lightws.core", package.cpath)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/lightws && ln -s " .. core_path .. " " .. dir .. "/lightws/core.so"))
  local saved = { cpath = package.cpath, lightws = package.loaded.lightws, tls = package.loaded["lightws.tls_core"] }
  package.cpath = dir .. "/?.so"
  package.loaded.lightws, package.loaded["lightws.tls_core"] = nil, nil
  local ok, err = pcall(fn, require "lightws")
  package.cpath, package.loaded.lightws, package.loaded["lightws.tls_core"] = saved.cpath, saved.lightws, saved.tls
  os.execute("rm -rf " .. dir)
  assert(ok, err)
end

local NO_TLS = "wss:// needs the lightws TLS module (built with make TLS=1 and OpenSSL)"

describe("wss without the TLS module", function()
  it("lightws loads, and wss:// / tls options say the module is missing", function()
    without_tls_module(function(lw)
      assert.is_function(lw.connect)
      local ok, why = lw.tls_available()
      assert.is_false(ok)
      assert.matches("lightws.tls_core", why)
      assert.same({ nil, NO_TLS, 1015, "tls_unavailable" }, { lw.connect("wss://127.0.0.1:1/x", { timeout = 1 }) })
      assert.same({ nil, NO_TLS, 1015, "tls_unavailable" }, { lw.tls_context { cert = "x.pem" } })
      local a, b = lw.socketpair()
      local r = { lw.accept(a, { tls = { cert = "x.pem" }, timeout = 1 }) }
      lw.close_fd(b)
      assert.same({ nil, NO_TLS, 1015, "tls_unavailable" }, r)
      -- ws:// is untouched
      local s, c = lw.socketpair()
      local ws1, ws2 = lw.wrap(s, "server"), lw.wrap(c, "client")
      ws2:send("plain", "text")
      assert.same({ "plain", "text" }, { ws1:receive() })
      ws1:settimeout(0); ws2:settimeout(0)             -- no waiting for close answers here
      ws1:close(); ws2:close()
    end)
  end)
  if not WANT_TLS then
    it("is missing in a TLS=0 build", function()
      assert.is_false((lightws.tls_available()))
    end)
  end
end)

if not WANT_TLS then return end

describe("wss", function()
  local certs, CA, ports, stop_servers

  setup(function()
    certs = os.tmpname()
    os.remove(certs)
    assert(os.execute("bash " .. ROOT .. "/tests/tls/make_certs.sh " .. certs .. " >/dev/null"))
    CA = certs .. "/ca.pem"
    local p = assert(io.popen("sh -c 'echo $$; exec " .. PY .. " servers " .. certs .. " 2>/dev/null'", "r"))
    local pid = assert(tonumber(p:read("*l")))
    local line = p:read("*l") or ""
    ports = {}
    for name, port in line:gmatch("(%w+)=(%d+)") do ports[name] = tonumber(port) end
    stop_servers = function() os.execute("kill " .. pid .. " 2>/dev/null"); p:close() end
    assert(ports.server, "TLS peer did not start: " .. line)
    assert(lightws.tls_available())
  end)

  teardown(function()
    if stop_servers then stop_servers() end
    if certs then os.execute("rm -rf " .. certs) end
  end)

  local function url(name, path) return ("wss://127.0.0.1:%d%s"):format(ports[name], path or "/echo") end

  describe("client against python websockets (ssl)", function()
    it("text, binary, 1 MiB, fragments, ping, close 1000 with close_notify", function()
      local ws, resp = lightws.connect(url("server"), { cafile = CA, timeout = 10 })
      assert(ws, resp)
      assert.equal(101, resp.status)
      ws:settimeout(20)
      ws:send_text("hello")
      assert.same({ "hello", "text" }, { ws:receive() })
      ws:send_binary("\0\1\254\255")
      assert.same({ "\0\1\254\255", "binary" }, { ws:receive() })
      local big = lightws.random(4096):rep(256)          -- 1 MiB: the socket fills both ways
      assert.equal(#big, ws:send(big, "binary"))
      local got, kind = ws:receive()
      assert.equal("binary", kind)
      assert.is_true(got == big)
      ws:send("frag", "text", true)
      ws:send("men", "text", true)
      ws:send("ted", "text")
      assert.same({ "fragmented", "text" }, { ws:receive() })
      assert.is_true(ws:ping("tls"))
      ws:send_text("after ping")
      assert.same({ "after ping", "text" }, { ws:receive() })
      assert.equal("tls", ws:last_pong())
      local info = ws:tls_info()
      assert.matches("^TLSv1%.[23]$", info.version)
      assert.is_string(info.cipher)
      assert.is_false(info.close_notify_sent)
      assert.same({ true, 1000, "" }, { ws:close(1000) })
      assert.is_true(ws:tls_info().close_notify_sent)
    end)

    it("receives a 1 MiB message sent in fragments, and 1 MiB through a 512-byte receive buffer", function()
      local ws = assert(lightws.connect(url("server"), { cafile = CA, timeout = 10 }))
      ws:settimeout(20)
      local part = lightws.random(4096):rep(16)         -- 64 KiB
      for i = 1, 15 do assert.equal(#part, ws:send(part, "binary", true)) end
      ws:send(part, "binary")
      local got = ws:receive()
      assert.equal(16 * #part, #got)
      assert.is_true(got == part:rep(16))
      ws:close()
      -- a receive buffer far smaller than a TLS record: OpenSSL holds the rest
      -- of each record, which must be read before polling
      ws = assert(lightws.connect(url("server"), { cafile = CA, timeout = 10, rbuf_size = 512 }))
      ws:settimeout(20)
      local big = lightws.random(4096):rep(256)
      assert.equal(#big, ws:send(big))
      got = ws:receive()
      assert.is_true(got == big)
      ws:close()
    end)

    it("names bad certificates; verify = false accepts them", function()
      local cases = { { "expired", "tls_cert_expired" }, { "wronghost", "tls_cert_hostname" },
                      { "unknown", "tls_cert_untrusted" } }
      for _, c in ipairs(cases) do
        local ws, msg, code, name = lightws.connect(url(c[1]), { cafile = CA, timeout = 10 })
        assert.is_nil(ws)
        assert.equal(c[2], name, c[1] .. ": " .. tostring(msg))
        assert.equal(1015, code)
        assert.is_string(msg)
        ws = assert(lightws.connect(url(c[1]), { cafile = CA, verify = false, timeout = 10 }))
        ws:settimeout(10)
        ws:send_text(c[1])
        assert.same({ c[1], "text" }, { ws:receive() })
        ws:close()
      end
      -- the system store does not know the test CA
      assert.equal("tls_cert_untrusted", select(4, lightws.connect(url("server"), { timeout = 10 })))
      -- server_name: the name checked (and sent as SNI) instead of the URL's host
      assert.equal("tls_cert_hostname",
        select(4, lightws.connect(url("server"), { cafile = CA, server_name = "other.example", timeout = 10 })))
      local ws = assert(lightws.connect(url("server"), { cafile = CA, server_name = "localhost", timeout = 10 }))
      ws:close()
    end)

    it("client certificates: cert/key given to a server that requires them", function()
      local ws = assert(lightws.connect(url("mtls"), { cafile = CA, cert = certs .. "/client.pem",
                                                      key = certs .. "/client.key", timeout = 10 }))
      ws:settimeout(10)
      ws:send_text("mtls")
      assert.same({ "mtls", "text" }, { ws:receive() })
      ws:close()
      -- without one: refused after our TLS handshake (TLS 1.3), in the websocket handshake; python's
      -- asyncio drops the connection without flushing its alert, so this is an EOF (1006), or a
      -- reset when its close comes with our bytes unread (both are the peer ending TCP abruptly)
      local r = { lightws.connect(url("mtls"), { cafile = CA, timeout = 10 }) }
      assert.is_nil(r[1])
      assert.is_true(r[2] == "closed" and r[3] == 1006 or tostring(r[4]):match("^tls_") ~= nil
                     or tostring(r[2]):match("reset by peer") ~= nil, tostring(r[2]))
    end)

    it("reuses a client context given as opts.tls, and wss over a given descriptor", function()
      local ctx = assert(lightws.tls_context { role = "client", cafile = CA })
      assert.equal("client", ctx:role())
      for i = 1, 3 do
        local ws = assert(lightws.connect(url("server"), { tls = ctx, timeout = 10 }))
        ws:settimeout(10)
        ws:send_text("n" .. i)
        assert.same({ "n" .. i, "text" }, { ws:receive() })
        ws:close()
      end
      local fd = assert(lightws.tcp_connect("127.0.0.1", ports.server))
      local ws = assert(lightws.connect(fd, "localhost:" .. ports.server, "/echo", { tls = ctx, timeout = 10 }))
      ws:settimeout(10)
      ws:send_text("fd")
      assert.same({ "fd", "text" }, { ws:receive() })
      ws:close()
    end)

    it("keepalive pings and a receive timeout over TLS; the stream goes on", function()
      local ws = assert(lightws.connect(url("server"), { cafile = CA, timeout = 10, ping_interval = 0.1 }))
      ws:settimeout(1)
      assert.same({ nil, "timeout" }, { ws:receive() })   -- pings went out and pongs came back meanwhile
      assert.is_number(ws:rtt())
      ws:settimeout(10)
      ws:send_text("still")
      assert.same({ "still", "text" }, { ws:receive() })
      ws:close()
    end)

    it("idle_timeout fails a silent TLS connection with its close code", function()
      local ws = assert(lightws.connect(url("server", "/quiet"), { cafile = CA, timeout = 10, idle_timeout = 0.3 }))
      ws:settimeout(5)
      local t0 = lightws.now()
      local r = { ws:receive() }
      assert.is_nil(r[1])
      assert.equal("idle_timeout", r[4])
      assert.is_true(lightws.now() - t0 < 3)
      ws:close()
    end)

    it("a TCP end without close_notify or close frame is 1006 (truncated)", function()
      local ws = assert(lightws.connect(url("server", "/truncate"), { cafile = CA, timeout = 10 }))
      ws:settimeout(10)
      ws:send_text("x")
      assert.same({ nil, "closed", 1006, "" }, { ws:receive() })
      assert.equal("truncated", ws:tls_info().eof)
      ws:close()
      assert.is_false(ws:tls_info().close_notify_sent)    -- no close handshake: no close_notify
    end)

    it("close_notify without a close frame is 1006 too, told apart by tls_info().eof", function()
      local ws = assert(lightws.connect(url("server", "/notify"), { cafile = CA, timeout = 10 }))
      ws:settimeout(10)
      ws:send_text("x")
      assert.same({ nil, "closed", 1006, "" }, { ws:receive() })
      assert.equal("close_notify", ws:tls_info().eof)
      ws:close()
    end)

    it("handshake timeouts and the per-call timeout bound the TLS handshake", function()
      -- a listener that never answers the ClientHello
      local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
      local t0 = lightws.now()
      assert.same({ nil, "timeout" }, { lightws.connect("wss://127.0.0.1:" .. port .. "/", { cafile = CA, timeout = 0.3 }) })
      local r = { lightws.connect("wss://127.0.0.1:" .. port .. "/", { cafile = CA, handshake_timeout = 0.3 }) }
      assert.is_nil(r[1])
      assert.equal("handshake_timeout", r[4])
      assert.is_true(lightws.now() - t0 < 3)
      lightws.close_fd(lfd)
    end)
  end)

  describe("server", function()
    local function serve_one(lfd, opts, each)
      local fd = assert(lightws.tcp_accept(lfd, 10))
      local ws, req, code, name = lightws.accept(fd, opts)
      if not ws then return nil, req, code, name end
      ws:settimeout(20)
      for msg, kind in ws:messages() do
        if each then each(ws, msg) end
        ws:send(msg, kind)
      end
      local ok = ws:close()
      return ws, req, ok
    end

    it("serves python websockets over TLS (context reused) and sends close_notify after the close", function()
      local ctx = assert(lightws.tls_context { cert = certs .. "/server.pem", key = certs .. "/server.key" })
      assert.equal("server", ctx:role())
      local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
      local p = assert(io.popen(PY .. " client wss://localhost:" .. port .. "/py " .. CA .. " 2>&1; echo rc=$?"))
      local ws, req = serve_one(lfd, { tls = ctx, timeout = 10 })
      local out = p:read("*a")
      p:close()
      assert(ws, req)
      assert.equal("/py", req.path)
      assert.matches("rc=0", out)
      assert.is_true(ws:tls_info().close_notify_sent)
      -- a bare ssl client sees the close_notify after the close handshake
      p = assert(io.popen(PY .. " rawclient " .. port .. " " .. CA .. " 2>&1; echo rc=$?"))
      ws = serve_one(lfd, { tls = ctx, timeout = 10 })
      out = p:read("*a")
      p:close()
      assert(ws, out)
      assert.matches("echo 1 hi", out)
      assert.matches("close 8 1000", out)
      assert.matches("end close_notify", out)
      lightws.close_fd(lfd)
    end)

    it("takes tls = {cert, key} (a cached context), names TLS failures of clients, sends a 408 through TLS", function()
      local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
      local tls = { cert = certs .. "/server.pem", key = certs .. "/server.key" }
      -- a plain-text client: the TLS handshake fails
      local c = assert(lightws.tcp_connect("127.0.0.1", port))
      lightws.write_fd(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      local ws, msg, code, name = serve_one(lfd, { tls = tls, timeout = 10 })
      lightws.close_fd(c)
      assert.is_nil(ws)
      assert.equal("tls_handshake", name, msg)
      assert.equal(1015, code)
      -- a client that sends nothing: handshake_timeout
      c = assert(lightws.tcp_connect("127.0.0.1", port))
      ws, msg, code, name = serve_one(lfd, { tls = tls, handshake_timeout = 0.3 })
      lightws.close_fd(c)
      assert.is_nil(ws)
      assert.equal("handshake_timeout", name, msg)
      -- TLS done, then no request within handshake_timeout: the 408 goes out through TLS
      local p = assert(io.popen(PY .. " silent " .. port .. " " .. CA .. " 2>&1; echo rc=$?"))
      ws, msg, code, name = serve_one(lfd, { tls = tls, handshake_timeout = 1 })
      local out = p:read("*a")
      p:close()
      assert.is_nil(ws)
      assert.equal("handshake_timeout", name, msg)
      assert.matches("first HTTP/1.1 408", out)
      -- python websockets, 1 MiB both ways through the same cached context
      p = assert(io.popen(PY .. " client wss://127.0.0.1:" .. port .. "/again " .. CA .. " 2>&1; echo rc=$?"))
      ws = serve_one(lfd, { tls = tls, timeout = 10 })
      out = p:read("*a")
      p:close()
      assert(ws, out)
      assert.matches("rc=0", out)
      lightws.close_fd(lfd)
    end)

    it("Lua client and Lua server (another process): sends that time out resume over TLS, both directions wait", function()
      -- the server reads nothing until "go" on a second connection, then echoes (messages
      -- over 4 MiB: their length);
      -- 24 MiB fill both socket buffers, 3 MiB come back
      local f = os.tmpname()
      local h = assert(io.open(f, "w"))
      h:write(([[
        local lightws = require "lightws"
        local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
        print("listening on 127.0.0.1:" .. port); io.stdout:flush()
        local fd = assert(lightws.tcp_accept(lfd, 10))
        local ws = assert(lightws.accept(fd, { tls = { cert = %q, key = %q }, timeout = 10 }))
        local ctl = assert(lightws.tcp_accept(lfd, 10))  -- reads nothing before "go" comes here
        assert(lightws.read_fd(ctl, 16, 20) == "go")
        ws:settimeout(20)
        for msg, kind in ws:messages() do assert(ws:send(#msg > 4194304 and "got " .. #msg or msg, kind)) end
        ws:close()
        print(ws:tls_info().close_notify_sent and "server close_notify" or "server no close_notify")
      ]]):format(certs .. "/server.pem", certs .. "/server.key"))
      h:close()
      local port, stop = H.spawn("timeout -s KILL 30 " .. H.LUA .. " " .. f)
      local ok, err = pcall(function()
        local ws = assert(lightws.connect("wss://localhost:" .. port .. "/", { cafile = CA, timeout = 10 }))
        local big = lightws.random(4096):rep(6144)          -- 24 MiB: more than loopback buffers hold
        ws:settimeout(0.2)
        local ctl = assert(lightws.tcp_connect("127.0.0.1", port))
        local n, msg, sent = ws:send(big)
        assert.same({ nil, "timeout" }, { n, msg })
        assert.is_true(sent > 0 and sent < #big)
        lightws.write_fd(ctl, "go")
        lightws.close_fd(ctl)
        ws:settimeout(20)
        assert.equal(#big - sent, ws:send(big:sub(sent + 1)))
        assert.same({ "got " .. #big, "binary" }, { ws:receive() })
        local back = big:sub(1, 3 * 1048576)
        assert.equal(#back, ws:send(back, "binary"))
        local got, kind = ws:receive()
        assert.equal("binary", kind)
        assert.is_true(got == back)
        ws:send_text("last")
        assert.same({ "last", "text" }, { ws:receive() })
        assert.same({ true, 1000, "" }, { ws:close() })
      end)
      stop()
      os.remove(f)
      assert(ok, err)
    end)

    it("verify_client: a client certificate is required and checked", function()
      local ctx = assert(lightws.tls_context { cert = certs .. "/server.pem", key = certs .. "/server.key",
                                               cafile = CA, verify_client = true })
      local lfd, port = assert(lightws.tcp_listen("127.0.0.1", 0))
      local p = assert(io.popen(PY .. " client wss://localhost:" .. port .. "/m " .. CA .. " " .. certs
                                .. "/client.pem " .. certs .. "/client.key 2>&1; echo rc=$?"))
      local ws, req = serve_one(lfd, { tls = ctx, timeout = 10 })
      local out = p:read("*a")
      p:close()
      assert(ws, req)
      assert.matches("rc=0", out)
      p = assert(io.popen(PY .. " client wss://localhost:" .. port .. "/m " .. CA .. " 2>&1; echo rc=$?"))
      local r = { serve_one(lfd, { tls = ctx, timeout = 10 }) }
      p:read("*a")
      p:close()
      assert.is_nil(r[1])
      assert.equal("tls_no_cert", r[4], r[2])
      lightws.close_fd(lfd)
    end)

    it("context errors are named", function()
      local r = { lightws.tls_context { cert = certs .. "/missing.pem", key = certs .. "/server.key" } }
      assert.is_nil(r[1])
      assert.equal("tls_cert", r[4])
      r = { lightws.tls_context { role = "client", cafile = certs .. "/missing.pem" } }
      assert.is_nil(r[1])
      assert.equal("tls_cafile", r[4])
      assert.has_error(function() lightws.tls_context { role = "server" } end)
    end)
  end)
end)
