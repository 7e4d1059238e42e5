-- SPDX-License-Identifier: MIT
-- lua-resty-websocket compatibility handlers (tests/lua/nginx_test.py,
-- compat_* tests). They load the modules by lua-resty-websocket's names:
-- init_by_lua in nginx.conf.in calls require("lightws.resty").install().
-- Server handlers record what recv_frame returned in the shared dict
-- `compat` under ?id=, fetched with GET /compat/result?id=.
local server = require "resty.websocket.server"
local client = require "resty.websocket.client"
local protocol = require "resty.websocket.protocol"

local H = {}
local shared = ngx.shared.compat

local function record(id, line)
  local prev = shared:get(id)
  shared:set(id, prev and (prev .. "\n" .. line) or line)
end

-- One recv_frame result as "data|typ|err": data as is when short and
-- printable, else "len=N".
local function fmt(data, typ, err)
  local d = tostring(data)
  if data and (#data > 40 or data:find("[%z\1-\31]")) then d = "len=" .. #data end
  return d .. "|" .. tostring(typ) .. "|" .. tostring(err)
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

function H.result()
  ngx.say(shared:get(ngx.var.arg_id) or "")
  shared:delete(ngx.var.arg_id)
end

function H.count()
  ngx.say("server=", count(server), " client=", count(client), " protocol=", count(protocol),
          " shim=", tostring(server == require("lightws.resty.server")
                             and client == require("lightws.resty.client")
                             and protocol == require("lightws.resty.protocol")))
end

-- /compat/srv?id=&n=&timeout=&max_payload_len=&max_recv_len=&answer=&proto=
-- A server that sets a response header of its own before new(), records
-- n recv_frame results (stops at a close or a failure); answer=1 answers
-- a close with send_close(code, msg) and records the bytes; proto=1 reads
-- with protocol.recv_frame on wb.sock instead; then=ms: set_timeout(ms)
-- after a timeout.
function H.srv()
  local a = ngx.var
  ngx.header["X-Compat"] = "kept"
  local wb, err = server:new{ timeout = tonumber(a.arg_timeout),
                              max_payload_len = tonumber(a.arg_max_payload_len),
                              max_recv_len = tonumber(a.arg_max_recv_len),
                              auto_pong = a.arg_auto_pong and true or nil }
  if not wb then
    record(a.arg_id, "new: " .. tostring(err))
    return ngx.exit(400)
  end
  for _ = 1, tonumber(a.arg_n) or 1 do
    local data, typ, e
    if a.arg_proto then
      data, typ, e = protocol.recv_frame(wb.sock, 65535, true)
    else
      data, typ, e = wb:recv_frame()
    end
    record(a.arg_id, fmt(data, typ, e) .. (wb.fatal and "|fatal" or ""))
    if typ == "close" then
      if a.arg_answer then
        local bytes, serr = wb:send_close(e, data)
        record(a.arg_id, "answer=" .. tostring(bytes) .. "|" .. tostring(serr))
      end
      return
    end
    if not data and not e:find(": timeout", 1, true) then return end
    if not data and a.arg_then then wb:set_timeout(tonumber(a.arg_then)) end
  end
end

-- /compat/s?mode=: the server end of the client scenarios (cs.t's).
function H.s()
  local mode = ngx.var.arg_mode
  local opts = { send_masked = mode == "masked" or nil, max_payload_len = tonumber(ngx.var.arg_max),
                 max_send_len = tonumber(ngx.var.arg_max_send_len),
                 max_recv_len = tonumber(ngx.var.arg_max_recv_len) }
  local wb, err = server:new(opts)
  if not wb then
    ngx.log(ngx.ERR, "failed to new websocket: ", err)
    return ngx.exit(444)
  end
  local id = ngx.var.arg_id
  if mode == "hello" or mode == "masked" or mode == "echo" then
    wb:send_text("你好, WebSocket!")
  elseif mode == "close" then
    wb:send_close()
  elseif mode == "close_body" then
    wb:send_close(1001, "client, let's close!")
  elseif mode == "ping" then
    wb:send_ping(ngx.unescape_uri(ngx.var.arg_msg))
  elseif mode == "pong" then
    wb:send_pong(ngx.unescape_uri(ngx.var.arg_msg))
  elseif mode == "late" then
    ngx.sleep(0.2)
    wb:send_text("你好, WebSocket!")
    return
  elseif mode == "big" then
    wb:send_text(string.rep("1", tonumber(ngx.var.arg_len)))
  end
  wb:set_timeout(5000)
  while true do
    local data, typ, e = wb:recv_frame()
    if id then record(id, fmt(data, typ, e)) end
    if not data and typ ~= "close" then return end
    if typ == "close" then
      if not wb.closed then wb:send_close(e, data) end   -- the answer is ours
      return
    end
    if mode ~= "silent" and typ ~= "pong" then
      local bytes, serr = wb:send_frame(e ~= "again", typ == "text" and 0x1 or typ == "binary" and 0x2
                                        or typ == "ping" and 0xA or 0x0, data)
      if id and not bytes then record(id, "send: " .. tostring(serr)) end
    end
  end
end

function H.plain()
  ngx.header["Content-Type"] = "text/plain"
  ngx.header["Content-Length"] = 10
  ngx.print("plain http")
end

local function port() return ngx.var.server_port end

local function uri(q) return "ws://127.0.0.1:" .. port() .. "/compat/s?" .. q end

local function say(...) ngx.say(...) end

-- /compat/c?case=: the client scenarios; each prints lines.
local cases = {}

function cases.text()
  local wb = client:new()
  local ok, err, head = wb:connect(uri("mode=hello"))
  say("connect: ", tostring(ok), " ", tostring(err), " ", tostring(head and head:match("^HTTP/1.1 101") ~= nil))
  local data, typ, e = wb:recv_frame()
  say("1: ", fmt(data, typ, e))
  say("sent: ", tostring(wb:send_text("copy: " .. data)))
  say("2: ", fmt(wb:recv_frame()))
  say("binary sent: ", tostring(wb:send_binary("\0\1")))
  say("3: ", fmt(wb:recv_frame()))
  say("close: ", tostring(wb:close()))
end

-- the server's close first, then ours (no automatic answer)
function cases.close()
  local wb = client:new()
  wb:connect(uri("mode=close&id=" .. ngx.var.arg_id))
  say("1: ", fmt(wb:recv_frame()))
  say("send_close: ", tostring(wb:send_close()))
  say("again: ", tostring(select(2, wb:send_text("x"))))
  say("close: ", tostring(wb:close()))
end

function cases.close_body()
  local wb = client:new()
  wb:connect(uri("mode=close_body&id=" .. ngx.var.arg_id))
  say("1: ", fmt(wb:recv_frame()))
  say("send_close: ", tostring(wb:send_close(1000, "server, let's close!")))
end

function cases.close_only()
  local wb = client:new()
  wb:connect(uri("mode=silent&id=" .. ngx.var.arg_id))
  say("close: ", tostring(wb:close()))
end

function cases.ping()
  for _, mode in ipairs({ "ping", "pong" }) do
    for _, msg in ipairs({ "", "hey, client?" }) do
      local wb = client:new()
      wb:connect(uri("mode=" .. mode .. "&msg=" .. ngx.escape_uri(msg)))
      say(mode, ": ", fmt(wb:recv_frame()))
      say("sent: ", tostring((mode == "ping" and wb.send_ping or wb.send_pong)(wb, msg ~= "" and msg or nil)))
      wb:close()
    end
  end
end

function cases.timeout()
  local wb = client:new{ timeout = tonumber(ngx.var.arg_t) }
  wb:connect(uri("mode=late"))
  if not ngx.var.arg_t then wb:set_timeout(1) end
  local data, typ, e = wb:recv_frame()
  say("1: ", fmt(data, typ, e), " fatal=", tostring(wb.fatal))
  wb:set_timeout(1000)
  say("2: ", fmt(wb:recv_frame()))
  -- the server ended: the connection is gone
  say("3: ", fmt(wb:recv_frame()), " fatal=", tostring(wb.fatal))
  say("4: ", fmt(wb:recv_frame()))
  say("send: ", tostring(select(2, wb:send_text("x"))))
end

-- set_keepalive, then connect again: the pooled connection, no handshake
function cases.keepalive()
  local pool = ngx.var.arg_pool
  local u = uri("mode=echo&id=" .. ngx.var.arg_id)
  local wb = client:new()
  local ok, err, head = wb:connect(u, pool and { pool = pool } or nil)
  say("connect 1: ", tostring(ok), " ", tostring(err), " ", tostring(head and head:sub(1, 12)))
  say("1: ", fmt(wb:recv_frame()))
  say("keepalive: ", tostring(wb:set_keepalive(10000, 4)))
  local wb2 = client:new()
  ok, err, head = wb2:connect(u, pool and { pool = pool } or nil)
  say("connect 2: ", tostring(ok), " ", tostring(err), " ", tostring(head))
  say("sent: ", tostring(wb2:send_text("again")))
  say("2: ", fmt(wb2:recv_frame()))
  say("close: ", tostring(wb2:close()))
end

function cases.unmasked()
  local wb = client:new{ send_unmasked = true }
  wb:connect(uri("mode=hello&id=" .. ngx.var.arg_id))
  say("1: ", fmt(wb:recv_frame()))
  say("sent: ", tostring(wb:send_text("copy")))
  say("2: ", fmt(wb:recv_frame()))
end

function cases.masked()
  local wb = client:new()
  wb:connect(uri("mode=masked"))
  say("1: ", fmt(wb:recv_frame()), " fatal=", tostring(wb.fatal))
end

function cases.status()
  for _, path in ipairs({ "/compat/plain", "/compat/forbidden" }) do
    local wb = client:new()
    local ok, err, head = wb:connect("ws://127.0.0.1:" .. port() .. path)
    say(path, ": ", tostring(ok), " ", tostring(err), " fatal=", tostring(wb.fatal),
        " head=", tostring(head and head:match("^[^\r]*")))
    say("send_text: ", tostring(select(2, wb:send_text("hello"))))
    say("recv_frame: ", tostring(select(3, wb:recv_frame())))
  end
  local wb = client:new()
  local ok, err = wb:connect("ws://127.0.0.1:" .. port() .. "/compat/plain", { keep_response = true })
  say("keep_response: ", tostring(ok), " ", tostring(err), " fatal=", tostring(wb.fatal))
  say("body: ", tostring(wb.sock:receive(10)))
  wb.sock:close()
end

function cases.limits()
  local wb = client:new{ max_send_len = 200 }
  wb:connect(uri("mode=echo"))
  wb:recv_frame()
  say("200: ", tostring(wb:send_text(string.rep("1", 200))))
  say("echo: ", fmt(wb:recv_frame()))
  local bytes, err = wb:send_text(string.rep("1", 201))
  say("201: ", tostring(bytes), " ", tostring(err), " fatal=", tostring(wb.fatal))

  wb = client:new{ max_recv_len = 200 }
  wb:connect(uri("mode=big&len=201"))
  local data, typ, e = wb:recv_frame()
  say("recv 201: ", fmt(data, typ, e), " fatal=", tostring(wb.fatal))

  wb = client:new()
  wb:connect(uri("mode=echo&max_send_len=200&id=" .. ngx.var.arg_id))
  wb:recv_frame()
  say("sent 300: ", tostring(wb:send_text(string.rep("1", 300))))

  wb = client:new{ max_payload_len = 100 }
  wb:connect(uri("mode=big&len=150"))
  say("payload_len recv 150: ", fmt(wb:recv_frame()))
  wb = client:new{ max_payload_len = 100 }
  wb:connect(uri("mode=echo"))
  say("payload_len send 150: ", tostring(select(2, wb:send_text(string.rep("1", 150)))))
  wb = client:new()
  wb:connect(uri("mode=echo"))
  say("ping 126: ", tostring(select(2, wb:send_ping(string.rep("1", 126)))))
  wb = client:new()
  wb:connect(uri("mode=echo"))
  say("fragmented ping: ", tostring(select(2, wb:send_frame(false, 0x9, "x"))))
  wb = client:new()
  wb:connect(uri("mode=echo"))
  say("bad code: ", tostring(select(2, wb:send_close(0x8000))), " ", tostring(select(2, wb:send_close("x"))))
end

-- the request head against a raw peer (?port=): protocols, origin, host,
-- key, headers; math.randomseed(0) makes the key lua-resty-websocket's
function cases.request()
  math.randomseed(0)
  local p = ngx.var.arg_peer
  local wb = client:new()
  local ok, err = wb:connect("ws://127.0.0.1:" .. p .. "/", { protocols = "json" })
  say("1: ", tostring(ok), " ", tostring(err))
  wb = client:new()
  ok, err = wb:connect("ws://127.0.0.1:" .. p .. "/p?q=1", { protocols = { "xml", "json" }, origin = "http://o.example",
                                                              headers = { "X-A: 1", "X-B: two" } })
  say("2: ", tostring(ok), " ", tostring(err))
  wb = client:new()
  ok, err = wb:connect("ws://127.0.0.1:" .. p, { host = "h.example", key = "dGhlIHNhbXBsZSBub25jZQ==" })
  say("3: ", tostring(ok), " ", tostring(err))
  say("bad uri: ", tostring(select(2, client:new():connect("http://x/"))))
  say("bad headers: ", tostring(select(2, client:new():connect("ws://127.0.0.1:" .. p, { headers = "x" }))))
  say("bad host: ", tostring(select(2, client:new():connect("ws://127.0.0.1:" .. p, { host = 1 }))))
  say("bad server_name: ", tostring(select(2, client:new():connect("ws://127.0.0.1:" .. p, { server_name = 1 }))))
  say("refused: ", tostring(select(2, client:new():connect("ws://127.0.0.1:1/"))))
end

-- against python websockets (?peer=): echo, fragments, close code
function cases.python()
  local wb = client:new{ timeout = 5000 }
  local ok, err, head = wb:connect("ws://127.0.0.1:" .. ngx.var.arg_peer .. "/", { protocols = { "chat" } })
  say("connect: ", tostring(ok), " ", tostring(err), " protocol=",
      tostring(head and head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Pp]rotocol: *([^\r]*)")))
  say("sent: ", tostring(wb:send_text("hello")))
  say("1: ", fmt(wb:recv_frame()))
  wb:send_frame(false, 0x2, "ab")
  wb:send_frame(true, 0x0, "cd")
  say("2: ", fmt(wb:recv_frame()))
  say("ping: ", tostring(wb:send_ping("p")))
  say("3: ", fmt(wb:recv_frame()))
  say("send_close: ", tostring(wb:send_close(4001, "bye")))
  say("4: ", fmt(wb:recv_frame()))
  say("close: ", tostring(wb:close()))
end

-- wss:// against nginx's TLS listener (?tls=port, ?mtls=port)
function cases.wss()
  local t, m = ngx.var.arg_tls, ngx.var.arg_mtls
  local wb = client:new()
  local ok, err = wb:connect("wss://127.0.0.1:" .. t .. "/compat/s?mode=hello")
  say("no verify: ", tostring(ok), " ", tostring(err), " ", fmt(wb:recv_frame()))
  wb:close()
  wb = client:new()
  ok, err = wb:connect("wss://127.0.0.1:" .. t .. "/compat/s?mode=hello",
                       { ssl_verify = true, server_name = "wrong.example" })
  say("verify, wrong name: ", tostring(ok), " ", tostring(err))
  wb = client:new()
  ok, err = wb:connect("wss://127.0.0.1:" .. t .. "/compat/s?mode=hello",
                       { ssl_verify = true, server_name = "localhost" })
  say("verify, server_name: ", tostring(ok), " ", tostring(err), " ", fmt(wb:recv_frame()))
  wb:close()
  wb = client:new()
  ok, err = wb:connect("wss://127.0.0.1:" .. m .. "/compat/s?mode=hello")
  say("mtls without cert: ", tostring(ok), " ", tostring(err))
  local ssl = require "ngx.ssl"
  local dir = ngx.var.arg_dir
  local cert = assert(ssl.parse_pem_cert(assert(io.open(dir .. "/client.pem")):read("*a")))
  local key = assert(ssl.parse_pem_priv_key(assert(io.open(dir .. "/client.key")):read("*a")))
  wb = client:new()
  ok, err = wb:connect("wss://127.0.0.1:" .. m .. "/compat/s?mode=hello",
                       { client_cert = cert, client_priv_key = key, ssl_verify = true, server_name = "localhost" })
  say("mtls with cert: ", tostring(ok), " ", tostring(err), " ", fmt(wb:recv_frame()))
  wb:close()
  -- one object, three connects over TLS with set_keepalive in between
  wb = client:new()
  for i = 1, 3 do
    local _, res
    ok, err, res = wb:connect("wss://127.0.0.1:" .. t .. "/compat/s?mode=plain_echo")
    wb:send_text("hello " .. i)
    say("keepalive ", i, ": ", tostring(ok), " ", tostring(err), " ", tostring(res and res:sub(1, 12)), " ",
        fmt(wb:recv_frame()), " ", tostring(wb:set_keepalive()))
  end
end

function cases.unix()
  local wb = client:new()
  local ok, err, head = wb:connect("ws://unix:" .. ngx.var.arg_path .. ":/compat/s?mode=hello")
  say("unix: ", tostring(ok), " ", tostring(err), " ", tostring(head and head:sub(1, 12)), " ", fmt(wb:recv_frame()))
  wb:close()
end

function cases.protocol()
  say("build: ", ngx.encode_base64(protocol.build_frame(true, 0x1, 3, "foo", false)))
  local f = protocol.build_frame(true, 0x2, 3, "foo", true)
  say("masked: ", #f, " ", f:byte(1), " ", f:byte(2))
  say("build 126: ", #protocol.build_frame(true, 0x2, 126, string.rep("x", 126), false))
  say("build 65536: ", #protocol.build_frame(true, 0x2, 65536, string.rep("x", 65536), false))
end

function H.c()
  cases[ngx.var.arg_case]()
end

return H
