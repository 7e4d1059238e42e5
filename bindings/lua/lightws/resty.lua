-- SPDX-License-Identifier: MIT
-- lightws.resty: websocket client and server over OpenResty (ngx_lua) cosockets, framed by a lightws C stream.
--
-- Method names follow lua-resty-websocket (new, connect, recv_frame,
-- send_text, send_binary, send_ping, send_pong, send_close, set_timeout,
-- set_keepalive, close). The frames are read and written by a C stream
-- over memory (core.stream(nil, ...)): the cosocket's bytes go in with
-- ws:input(), what the stream writes comes out of ws:output() and is sent
-- on the cosocket. So the C core checks the frames and keeps the time:
-- the handshake, idle, keepalive and close timeouts are its deadlines,
-- which recv_frame waits for and ticks at. Differences from
-- lua-resty-websocket: a recv_frame that times out in the middle of a
-- frame keeps what it has read, and the next recv_frame continues it.
local core = require "lightws.core"

local concat = table.concat
local byte = string.byte
local ceil, min = math.ceil, math.min
local setmetatable, type, tostring, pcall = setmetatable, type, tostring, pcall
local now = core.now

local OPCODES = { continuation = 0x0, text = 0x1, binary = 0x2,
                  close = 0x8, ping = 0x9, pong = 0xA }

-- The cosocket timeout (ms) put back after a wait shortened it, when the
-- caller set none: lua_socket_read_timeout's default (the module cannot
-- read nginx's setting).
local DEFAULT_TIMEOUT = 60000
local HANDSHAKE_TIMEOUT = 10000  -- ms, handshake_timeout unless set
local READ_MAX = 65536           -- bytes asked of one receiveany

local _M = { _VERSION = core._VERSION }
local ws = {}          -- methods shared by clients and servers
local ws_mt = { __index = ws }

-- A time option in ms (nil: `def`; false or 0: off) as seconds.
local function secs(opts, name, def)
  local ms = opts[name]
  if ms == nil then ms = def end
  if not ms then return 0 end
  if type(ms) ~= "number" or ms ~= ms or ms < 0 then
    error("lightws.resty: option " .. name .. " must be milliseconds >= 0", 3)
  end
  return ms / 1000
end

-- The C stream of a connection (memory transport). open: no handshake.
local function new_stream(is_server, opts, open)
  local max = opts.max_payload_len or 65535
  return core.stream(nil, is_server and "server" or "client", {
    open = open,
    no_auto_pong = true,                        -- the caller answers pings
    no_utf8_check = opts.no_utf8_check,
    max_frame = min(max, 4294967295),
    handshake_timeout = secs(opts, "handshake_timeout", HANDSHAKE_TIMEOUT),
    idle_timeout = secs(opts, "idle_timeout"),
    ping_interval = secs(opts, "ping_interval"),
    ping_timeout = secs(opts, "ping_timeout"),
    close_timeout = secs(opts, "close_timeout"),
  })
end

local function new_object(sock, is_server, opts)
  opts = opts or {}
  if opts.send_unmasked then error("lightws.resty: send_unmasked is not supported (clients always mask, RFC 6455 §5.3)", 3) end
  local self = setmetatable({
    sock = sock,
    server = is_server,                        -- §5.1: servers expect masked frames
    opts = opts,
    max_payload_len = opts.max_payload_len or 65535,
    timeout = opts.timeout,                    -- ms per call, nil: the cosocket's
    send_kind = nil,                           -- kind of the message being sent in fragments
    closed = false, fatal = nil,
  }, ws_mt)
  if opts.timeout then sock:settimeout(opts.timeout) end
  return self
end

-- Sends what the C stream wrote (frames, pongs, keepalive pings, close
-- frames, the handshake request). Returns bytes sent (0: none) | nil, err.
local function flush(self)
  local out = self.c:output()
  if not out then return 0 end
  local bytes, err = self.sock:send(out)
  if not bytes then
    self.fatal = err
    return nil, "failed to send frame: " .. err
  end
  return bytes
end

local function max0(x) return x > 0 and x or 0 end

-- Waits for input for the C stream: receives on the cosocket until the
-- call's own timeout (self.timeout ms from `start`) or the stream's next
-- deadline, whichever comes first; at the deadline ws:tick() acts (a
-- keepalive ping goes out, or a timeout fails the stream). Returns true
-- (input given) | nil, "timeout" | nil, err (fatal).
local function fill(self, start)
  local c, sock = self.c, self.sock
  local call_end = self.timeout and start + self.timeout / 1000
  while true do
    local d = c:deadline()
    if d and d <= now() then
      local ok, msg = c:tick()
      local sent, serr = flush(self)
      if not ok then
        self.fatal = msg
        return nil, msg
      end
      if not sent then return nil, serr end
      d = c:deadline()
    end
    local by_call = not d or (call_end ~= nil and call_end <= d)
    local wait_end = by_call and call_end or d
    if wait_end then sock:settimeout(ceil(max0((wait_end - now()) * 1000)) + 1) end
    local data, err = sock:receiveany(READ_MAX)
    if wait_end then sock:settimeout(self.timeout or DEFAULT_TIMEOUT) end
    if data then
      c:input(data)
      return true
    end
    if err ~= "timeout" then
      self.fatal = err
      return nil, "failed to receive the frame: " .. err
    end
    if by_call then return nil, "timeout" end
  end
end

-- recv_frame() -> data, typ, err. typ is "text", "binary", "continuation",
-- "ping", "pong" or "close"; err is "again" for a fragment that is not the
-- last, and for "close" data is the reason and err the code (nil if none;
-- the close is answered with the same code by the C stream). Failure:
-- nil, nil, err ("timeout": call again, the frame continues; a time
-- option's error, e.g. "keepalive ping not answered within its timeout",
-- after which the connection is failed and its close frame sent).
function ws.recv_frame(self)
  if self.fatal then return nil, nil, "failed: " .. self.fatal end
  local c = self.c
  local start = now()
  while true do
    local data, typ, fin, reason = c:frame()
    local sent, serr = flush(self)             -- pongs of ours, close echo, failure close
    if not sent then return nil, nil, serr end
    if data then
      if typ == "ping" or typ == "pong" then return data, typ end
      return data, typ, (not fin) and "again" or nil
    end
    if typ == "input" then
      local ok, err = fill(self, start)
      if not ok then return nil, nil, err end
    elseif typ == "closed" then
      self.closed = true                       -- our answer is sent
      local code = fin
      if code == 1005 or code == 1006 then code = nil end
      return reason, "close", code
    else                                       -- the peer broke the RFC (close sent)
      self.fatal = typ
      return nil, nil, typ
    end
  end
end

-- send_frame(fin, opcode, payload) -> bytes | nil, err
function ws.send_frame(self, fin, opcode, payload)
  if self.fatal then return nil, "failed: " .. self.fatal end
  if self.closed then return nil, "already closed" end
  if type(opcode) == "string" then opcode = OPCODES[opcode] end
  payload = payload == nil and "" or tostring(payload)
  local len = #payload
  if opcode == nil then return nil, "bad opcode" end
  if opcode >= 0x8 and len > 125 then return nil, "too long payload for a control frame" end
  if len > self.max_payload_len and opcode < 0x8 then return nil, "exceeding max payload len" end
  local c = self.c
  local ok, ok2, err
  if opcode == 0x9 then
    ok, ok2, err = pcall(c.ping, c, payload)
  elseif opcode == 0xA then
    ok, ok2, err = pcall(c.pong, c, payload)
  elseif opcode == 0x8 then
    local code, reason = 0, ""
    if len >= 2 then code, reason = byte(payload, 1) * 256 + byte(payload, 2), payload:sub(3) end
    if len == 1 then return nil, "bad close payload" end
    ok, ok2, err = pcall(c.close, c, code, reason)
  else
    local kind = opcode == 0x1 and "text" or opcode == 0x2 and "binary" or nil
    if opcode == 0x0 then kind = self.send_kind end
    if not kind then return nil, opcode == 0x0 and "continuation frame outside a message" or "bad opcode" end
    ok, ok2, err = pcall(c.send, c, payload, kind, not fin)
    if ok and ok2 then self.send_kind = (not fin) and kind or nil end
  end
  if not ok then return nil, "bad frame: " .. tostring(ok2) end
  if not ok2 then
    self.fatal = err
    return nil, "failed to send frame: " .. tostring(err)
  end
  local bytes, serr = flush(self)
  if not bytes then return nil, serr end
  if opcode == 0x8 then self.closed = true end
  return bytes
end

function ws.send_text(self, data) return self:send_frame(true, 0x1, data) end
function ws.send_binary(self, data) return self:send_frame(true, 0x2, data) end
function ws.send_ping(self, data) return self:send_frame(true, 0x9, data) end
function ws.send_pong(self, data) return self:send_frame(true, 0xA, data) end

-- send_close([code], [msg]) -> bytes | nil, err
function ws.send_close(self, code, msg)
  if code == nil then return self:send_frame(true, 0x8, "") end
  if type(code) ~= "number" or code < 0 or code > 0xFFFF then return nil, "bad status code" end
  if self.fatal then return nil, "failed: " .. self.fatal end
  if self.closed then return nil, "already closed" end
  local ok, ok2, err = pcall(self.c.close, self.c, code, msg or "")
  if not ok then return nil, "bad close frame: " .. tostring(ok2) end
  if not ok2 then return nil, "failed to send frame: " .. tostring(err) end
  local bytes, serr = flush(self)
  if not bytes then return nil, serr end
  self.closed = true
  return bytes
end

-- set_timeout(ms): the timeout of each call (recv_frame, sends, connect).
function ws.set_timeout(self, ms)
  self.timeout = ms
  return self.sock:settimeout(ms)
end

-- set_timeouts(connect, send, read) when the cosocket has it.
function ws.set_timeouts(self, c, s, r)
  self.timeout = r
  return self.sock:settimeouts(c, s, r)
end

-- rtt() -> ms of the last keepalive round trip, or nil.
function ws.rtt(self)
  local r = self.c and self.c:rtt()
  return r and r * 1000
end

-- deadline() -> ms until the C stream needs a tick (recv_frame does it),
-- or nil; tick() -> true | nil, err. For handlers that run keepalive
-- outside recv_frame (an ngx.timer or ngx.thread must not use the
-- cosocket while another thread reads it: see docs/lua.md).
function ws.deadline(self)
  local d = self.c:deadline()
  return d and math.max(0, (d - now()) * 1000)
end

function ws.tick(self)
  local ok, msg = self.c:tick()
  local sent, serr = flush(self)
  if not ok then
    self.fatal = msg
    return nil, msg
  end
  if not sent then return nil, serr end
  return true
end

function ws.set_keepalive(self, ...)
  if self.fatal or self.c:buffered() > 0 or self.c:status() ~= "open" then
    return nil, "unread data on the connection"
  end
  return self.sock:setkeepalive(...)
end

-- close() -> 1 | nil, err: sends a close frame (if not sent yet), then
-- closes the socket (a raw request socket is closed by nginx).
function ws.close(self, code, msg)
  if not self.closed and not self.fatal then
    local ok, err = self:send_close(code or 1000, msg)
    if not ok then return nil, err end
  end
  self.closed = true
  if self.sock.close then return self.sock:close() end
  return 1
end

-- ------------------------------------------------------------- client

local client = {}
_M.client = client

-- client.new([opts]) / client:new(opts) -> wb. opts: timeout (ms),
-- max_payload_len, no_utf8_check, and the time options in ms:
-- handshake_timeout (default 10000; connect + request + response),
-- idle_timeout, ping_interval, ping_timeout, close_timeout.
function client.new(a, b)
  local opts = (a == client) and b or a
  local sock, err = ngx.socket.tcp()
  if not sock then return nil, err end
  local self = new_object(sock, false, opts)
  self.connect = client.connect
  return self
end

local function parse_uri(uri)
  local scheme, rest = uri:match("^(wss?)://(.*)$")
  if not scheme then return nil, "bad websocket uri: " .. uri end
  if scheme == "wss" then return nil, "wss is not supported" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  local host, port = authority:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then return nil, "bad websocket uri: " .. uri end
  local n = tonumber(port) or 80
  if n < 1 or n > 65535 then return nil, "bad websocket uri: port out of range: " .. uri end
  return host, n, path, authority
end

-- wb:connect(uri, [opts]) -> 1 | nil, err. opts: protocols (string or
-- list), origin, headers ({"Name: value"} or {name = value}), pool,
-- max_head. A socket reused from the pool skips the handshake. The
-- handshake timeout covers the TCP connect, the request and the response
-- (a response dribbled byte by byte included).
function client.connect(self, uri, opts)
  opts = opts or {}
  local host, port, path, authority = parse_uri(uri)
  if not host then return nil, port end
  local protocols = opts.protocols
  if type(protocols) == "table" then protocols = concat(protocols, ", ") end
  local headers = opts.headers
  if type(headers) == "table" and headers[1] then
    local h = {}
    for i, line in ipairs(headers) do
      local n, v = line:match("^([^:]+):%s*(.-)%s*\r?\n?$")
      if not n then return nil, "bad header: " .. line end
      h[i] = { n, v }
    end
    headers = h
  end
  local start = now()
  local c = new_stream(false, self.opts, false)   -- the handshake clock starts
  self.c = c
  local hs = secs(self.opts, "handshake_timeout", HANDSHAKE_TIMEOUT) * 1000
  if hs > 0 then self.sock:settimeout(ceil(self.timeout and min(self.timeout, hs) or hs)) end
  local ok, err = self.sock:connect(host, port, opts.pool and { pool = opts.pool } or nil)
  if hs > 0 then self.sock:settimeout(self.timeout or DEFAULT_TIMEOUT) end
  if not ok then return nil, "failed to connect: " .. err end
  if (self.sock:getreusedtimes() or 0) > 0 then
    self.c = new_stream(false, self.opts, true)
    return 1
  end
  local resp, msg, code = c:client_handshake(authority, path,
    { protocols = protocols, origin = opts.origin, headers = headers, max_head = opts.max_head })
  while true do
    local sent, serr = flush(self)
    if not sent then return nil, "failed to send the handshake request: " .. serr end
    if resp then break end
    if msg ~= "input" then
      return nil, "bad handshake response: " .. tostring(msg) .. (code and code ~= 0 and (" (status " .. code .. ")") or "")
    end
    local got, ferr = fill(self, start)
    if not got then return nil, "failed to receive the response header: " .. ferr end
    resp, msg, code = c:client_handshake()
  end
  self.fatal = nil
  self.response = resp
  return 1
end

-- ------------------------------------------------------------- server

local server = {}
_M.server = server

-- server.new([opts]) / server:new(opts) -> wb | nil, err, http_status.
-- Validates the upgrade request with the C parser (on the raw request
-- head), then answers 101 over the raw request socket. On a bad request
-- it sets ngx.status and headers and returns nil, err, status: the caller
-- ends the request (`return ngx.exit(status)`). opts: timeout (ms),
-- max_payload_len, protocols ("a, b": the first one the client offered),
-- no_utf8_check, and the time options in ms: handshake_timeout (default
-- 10000: sending the 101; nginx read the request under
-- client_header_timeout), idle_timeout, ping_interval, ping_timeout,
-- close_timeout.
function server.new(a, b)
  local opts = ((a == server) and b or a) or {}
  local raw = ngx.req.raw_header()
  local req, ename, status = core.parse_request(raw)
  if not req then
    status = status ~= 0 and status or 400
    if status == 426 then ngx.header["Sec-WebSocket-Version"] = "13" end
    ngx.status = status
    return nil, "bad upgrade request: " .. ename, status
  end
  local chosen
  if opts.protocols and req.protocol then
    local ours = {}
    for p in opts.protocols:gmatch("[^,%s]+") do ours[p] = true end
    for p in req.protocol:gmatch("[^,%s]+") do
      if ours[p] then chosen = p; break end
    end
  end
  local sock, err = ngx.req.socket(true)
  if not sock then return nil, "failed to get the request socket: " .. tostring(err), 500 end
  local resp = assert(core.build_response(req.key, chosen))
  local hs = secs(opts, "handshake_timeout", HANDSHAKE_TIMEOUT) * 1000
  if hs > 0 then sock:settimeout(ceil(opts.timeout and min(opts.timeout, hs) or hs)) end
  local bytes, serr = sock:send(resp)
  if hs > 0 then sock:settimeout(opts.timeout or DEFAULT_TIMEOUT) end
  if not bytes then return nil, "failed to send the handshake response: " .. serr, 500 end
  local self = new_object(sock, true, opts)
  self.c = new_stream(true, opts, true)
  self.request, self.protocol = req, chosen
  return self
end

-- lightws.resty.new(opts) is the client constructor.
_M.new = client.new
_M.parse_uri = parse_uri
return _M
