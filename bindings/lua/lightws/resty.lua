-- SPDX-License-Identifier: MIT
-- lightws.resty: websocket client and server over OpenResty (ngx_lua) cosockets, framed by the lightws C codec.
--
-- Method names follow lua-resty-websocket (new, connect, recv_frame,
-- send_text, send_binary, send_ping, send_pong, send_close, set_timeout,
-- set_keepalive, close). One difference: a recv_frame that times out in
-- the middle of a frame keeps what it has read (head bytes, payload
-- pieces), and the next recv_frame continues the same frame.
local core = require "lightws.core"

local concat = table.concat
local char, byte = string.char, string.byte
local setmetatable, type, tostring = setmetatable, type, tostring

local OPCODES = { continuation = 0x0, text = 0x1, binary = 0x2,
                  close = 0x8, ping = 0x9, pong = 0xA }
local TYPES = { [0x0] = "continuation", [0x1] = "text", [0x2] = "binary",
                [0x8] = "close", [0x9] = "ping", [0xA] = "pong" }

local _M = { _VERSION = core._VERSION }
local ws = {}          -- methods shared by clients and servers
local ws_mt = { __index = ws }

local function new_object(sock, is_server, opts)
  opts = opts or {}
  local self = setmetatable({
    sock = sock,
    server = is_server,                        -- §5.1: servers expect masked frames
    max_payload_len = opts.max_payload_len or 65535,
    send_unmasked = opts.send_unmasked,        -- a client sending unmasked breaks §5.3
    head = "",                                 -- head bytes read so far
    frame = nil,                               -- decoded head of the frame being read
    parts = nil, got = 0,                      -- its payload pieces
    frag = nil,                                -- type of the fragmented message in progress
    utf8 = (not opts.no_utf8_check) and core.utf8() or nil,
    closed = false, fatal = nil,
  }, ws_mt)
  if opts.timeout then sock:settimeout(opts.timeout) end
  return self
end

local function fail(self, err, code)
  if code and not self.closed then
    -- §7.1.7: fail the connection with a close frame carrying the reason code
    self:send_close(code, "")
  end
  self.fatal = err
  return nil, nil, err
end

-- recv_frame() -> data, typ, err. typ is "text", "binary", "continuation",
-- "ping", "pong" or "close"; err is "again" for a fragment that is not the
-- last, and for "close" data is the reason and err the code (nil if none).
-- Failure: nil, nil, err ("timeout": call again, the frame continues).
function ws.recv_frame(self)
  if self.fatal then return nil, nil, "failed: " .. self.fatal end
  local sock = self.sock
  local f = self.frame
  while not f do
    local need = 2 - #self.head
    if need <= 0 then
      local fin, op, masked, len, key, hlen =
        core.decode_head(self.head, 1, self.server and "masked" or "unmasked")
      if fin == nil then
        if op ~= "incomplete" then return fail(self, "bad frame head: " .. op, masked) end
        need = masked
      else
        if len > self.max_payload_len then
          return fail(self, "exceeding max payload len", 1009)
        end
        f = { fin = fin, op = op, len = len, key = key, hlen = hlen }
        self.frame, self.parts, self.got = f, {}, 0
        break
      end
    end
    local data, err, partial = sock:receive(need)
    if not data then
      if partial and #partial > 0 then self.head = self.head .. partial end
      if err == "timeout" then return nil, nil, "timeout" end
      self.fatal = err
      return nil, nil, "failed to receive the frame head: " .. err
    end
    self.head = self.head .. data
  end
  while self.got < f.len do
    local data, err, partial = sock:receive(f.len - self.got)
    local piece = data or partial
    if piece and #piece > 0 then
      self.parts[#self.parts + 1] = piece
      self.got = self.got + #piece
    end
    if not data then
      if err == "timeout" then return nil, nil, "timeout" end
      self.fatal = err
      return nil, nil, "failed to receive the payload: " .. err
    end
  end
  local payload = concat(self.parts)
  if f.key then payload = core.mask(payload, f.key) end
  self.head, self.frame, self.parts, self.got = "", nil, nil, 0

  local op = f.op
  if op == 0x8 then
    self.closed_by_peer = true
    if #payload == 0 then return "", "close", nil end
    if #payload == 1 then return fail(self, "close frame with a 1-byte payload", 1002) end
    local code = byte(payload, 1) * 256 + byte(payload, 2)
    if not core.close_code_valid(code) then return fail(self, "invalid close code", 1002) end
    return payload:sub(3), "close", code
  elseif op == 0x9 or op == 0xA then
    return payload, TYPES[op]
  end
  -- data frames: track fragmentation (§5.4) and UTF-8 of text (§8.1)
  local typ = TYPES[op]
  if op == 0x0 then
    if not self.frag then return fail(self, "continuation frame outside a message", 1002) end
  else
    if self.frag then return fail(self, "new data frame inside a fragmented message", 1002) end
    self.msg_text = op == 0x1
  end
  if self.utf8 and self.msg_text then
    local ok = self.utf8:feed(payload)
    if ok == nil or (f.fin and not ok) then
      return fail(self, "invalid UTF-8 in text", 1007)
    end
    if f.fin then self.utf8:reset() end
  end
  if f.fin then
    self.frag = nil
    return payload, typ
  end
  self.frag = self.frag or typ
  return payload, typ, "again"
end

-- send_frame(fin, opcode, payload) -> bytes | nil, err
function ws.send_frame(self, fin, opcode, payload)
  if self.fatal then return nil, "failed: " .. self.fatal end
  if self.closed then return nil, "already closed" end
  if type(opcode) == "string" then opcode = OPCODES[opcode] end
  payload = payload == nil and "" or tostring(payload)
  local len = #payload
  if opcode >= 0x8 and len > 125 then return nil, "too long payload for a control frame" end
  if len > self.max_payload_len and opcode < 0x8 then return nil, "exceeding max payload len" end
  local key
  if not self.server and not self.send_unmasked then
    key = core.mask_key()                      -- §5.3: a fresh key per frame
    payload = core.mask(payload, key)
  end
  local head, err = core.encode_head(fin, opcode, len, key)
  if not head then return nil, "bad frame: " .. err end
  local bytes, serr = self.sock:send({ head, payload })
  if not bytes then
    self.fatal = serr
    return nil, "failed to send frame: " .. serr
  end
  if opcode == 0x8 then self.closed = true end
  return bytes
end

function ws.send_text(self, data) return self:send_frame(true, 0x1, data) end
function ws.send_binary(self, data) return self:send_frame(true, 0x2, data) end
function ws.send_ping(self, data) return self:send_frame(true, 0x9, data) end
function ws.send_pong(self, data) return self:send_frame(true, 0xA, data) end

-- send_close([code], [msg]) -> bytes | nil, err
function ws.send_close(self, code, msg)
  local payload = ""
  if code then
    if type(code) ~= "number" or code > 0x7fff then return nil, "bad status code" end
    payload = char(math.floor(code / 256) % 256, code % 256) .. (msg or "")
  end
  return self:send_frame(true, 0x8, payload)
end

function ws.set_timeout(self, ms) return self.sock:settimeout(ms) end

-- set_timeouts(connect, send, read) when the cosocket has it.
function ws.set_timeouts(self, c, s, r) return self.sock:settimeouts(c, s, r) end

function ws.set_keepalive(self, ...)
  if self.fatal or self.frame or #self.head > 0 then
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
-- max_payload_len, send_unmasked, no_utf8_check.
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
-- max_head. A socket reused from the pool skips the handshake.
function client.connect(self, uri, opts)
  opts = opts or {}
  local host, port, path, authority = parse_uri(uri)
  if not host then return nil, port end
  local ok, err = self.sock:connect(host, port, opts.pool and { pool = opts.pool } or nil)
  if not ok then return nil, "failed to connect: " .. err end
  if (self.sock:getreusedtimes() or 0) > 0 then return 1 end
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
  local key = core.handshake_key()
  local req, berr = core.build_request(authority, path, key,
    { protocols = protocols, origin = opts.origin, headers = headers })
  if not req then return nil, "failed to build the request: " .. berr end
  local bytes, serr = self.sock:send(req)
  if not bytes then return nil, "failed to send the handshake request: " .. serr end
  local reader = self.sock:receiveuntil("\r\n\r\n")
  local head, rerr = reader(opts.max_head or core.HEAD_MAX)
  if not head then return nil, "failed to receive the response header: " .. rerr end
  local resp, perr, status = core.parse_response(head .. "\r\n\r\n", key, protocols)
  if not resp then
    return nil, "bad handshake response: " .. perr .. (status ~= 0 and (" (status " .. status .. ")") or "")
  end
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
-- no_utf8_check.
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
  if opts.timeout then sock:settimeout(opts.timeout) end
  local bytes, serr = sock:send(resp)
  if not bytes then return nil, "failed to send the handshake response: " .. serr, 500 end
  local self = new_object(sock, true, opts)
  self.request, self.protocol = req, chosen
  return self
end

-- lightws.resty.new(opts) is the client constructor.
_M.new = client.new
_M.parse_uri = parse_uri
return _M
