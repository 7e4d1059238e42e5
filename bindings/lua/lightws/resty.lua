-- SPDX-License-Identifier: MIT
-- lightws.resty: a drop-in for lua-resty-websocket (resty.websocket.server,
-- resty.websocket.client, resty.websocket.protocol) over OpenResty (ngx_lua)
-- cosockets, with the frames read by a lightws C stream.
--
-- The modules keep lua-resty-websocket's functions, options, return values
-- and error strings (docs/lua.md lists each, the few differences RFC 6455
-- requires, and what lightws adds):
--   require "lightws.resty.server"   -- for require "resty.websocket.server"
--   require "lightws.resty.client"   -- for require "resty.websocket.client"
--   require "lightws.resty.protocol" -- for require "resty.websocket.protocol"
--   require("lightws.resty").install() -- makes those three require names
--                                        load lightws (init_by_lua)
--
-- Received frames go through a C stream over memory (core.stream(nil, ...)):
-- the cosocket's bytes go in with ws:input(), ws:frame() returns whole
-- frames, and what the stream writes (keepalive pings, the close frames of
-- the time options) comes out of ws:output() and is sent on the cosocket.
-- So the C core checks every frame (RFC 6455) and keeps the time; a
-- recv_frame that times out in the middle of a frame keeps what it has
-- read, and the next call continues it.
local core = require "lightws.core"

local concat = table.concat
local byte, char, sub, find, lower = string.byte, string.char, string.sub, string.find, string.lower
local ceil, min, floor = math.ceil, math.min, math.floor
local setmetatable, type, tostring, tonumber, pcall, error, pairs, ipairs =
  setmetatable, type, tostring, tonumber, pcall, error, pairs, ipairs
local now = core.now
local unpack = unpack or table.unpack

local VERSION = core._VERSION
local OPCODES = { continuation = 0x0, text = 0x1, binary = 0x2,
                  close = 0x8, ping = 0x9, pong = 0xA }
local TYPES = { [0x0] = "continuation", [0x1] = "text", [0x2] = "binary",
                [0x8] = "close", [0x9] = "ping", [0xA] = "pong" }

-- The cosocket timeout (ms) put back after a wait shortened it, when the
-- caller set none: lua_socket_read_timeout's default (the module cannot
-- read nginx's setting).
local DEFAULT_TIMEOUT = 60000
local HANDSHAKE_TIMEOUT = 10000  -- ms, the client's handshake_timeout unless set
local READ_MAX = 65536           -- bytes asked of one receiveany
local HEAD_MAX = 65536           -- bytes of a client's response head
local HS_TIMEOUT_MSG = "opening handshake not complete within its timeout"

local new_tab
do
  local ok, f = pcall(require, "table.new")
  new_tab = ok and f or function() return {} end
end

local _M = { _VERSION = VERSION }
local methods = {}                 -- every method of both roles
local obj_mt = { __index = methods }

-- The three module tables: exactly lua-resty-websocket's keys (its
-- t/count.t counts them); lightws's additions are methods of the objects.
local server = new_tab(0, 11)
local client = new_tab(0, 13)
local protocol = new_tab(0, 5)
_M.server, _M.client, _M.protocol = server, client, protocol

local function ngx_debug()
  return ngx and ngx.config and ngx.config.debug
end

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

-- The C stream of a connection (memory transport), open (the handshake is
-- done in Lua through nginx / the cosocket). With permessage-deflate
-- agreed (`agreed`, the options in `pmd_opts`) compression is on: a
-- compressed message is returned by recv_frame as one frame, bounded by
-- max_recv_len as a whole (max_message), and so are uncompressed
-- fragmented messages then.
local function new_stream(self, agreed, pmd_opts)
  local opts = self.opts
  local c = core.stream(nil, self.server and "server" or "client", {
    open = true,
    no_auto_pong = not opts.auto_pong,          -- the caller answers pings
    no_utf8_check = opts.no_utf8_check,
    max_frame = min(self.max_recv_len, 4294967295),
    -- frames are returned one by one; a compressed message is one
    max_message = agreed and min(self.max_recv_len, 4294967295) or 4294967295,
    idle_timeout = secs(opts, "idle_timeout"),
    ping_interval = secs(opts, "ping_interval"),
    ping_timeout = secs(opts, "ping_timeout"),
    close_timeout = secs(opts, "close_timeout"),
  })
  self.deflate = nil
  if agreed then
    assert(c:set_deflate(agreed, pmd_opts))
    self.deflate = agreed
  end
  return c
end

local function new_object(sock, is_server, opts)
  local max = opts.max_payload_len or 65535
  local self = setmetatable({
    sock = sock,
    server = is_server,
    opts = opts,
    max_payload_len = max,
    max_recv_len = opts.max_recv_len or max,
    max_send_len = opts.max_send_len or max,
    send_masked = opts.send_masked,            -- server option
    send_unmasked = opts.send_unmasked,        -- client option
    timeout = opts.timeout,                    -- ms per call, nil: the cosocket's
    debug = ngx_debug(),
    iov = { "", "" },                          -- raw_send's head and payload
    fatal = nil, closed = nil, peer_closed = nil,
  }, obj_mt)
  -- §5.1: clients mask, servers do not; the two options turn it around
  -- (frames then built here, not by the C stream)
  if is_server then self.mask_out = opts.send_masked and true or false
  else self.mask_out = not opts.send_unmasked end
  self.raw = (self.mask_out ~= not is_server)
  if opts.timeout then sock:settimeout(opts.timeout) end
  return self
end

-- Sends what the C stream wrote (keepalive pings, the close frames of the
-- time options). Returns bytes sent (0: none) | nil, err.
local function flush(self)
  local out = self.c:output()
  if not out then return 0 end
  local bytes, err = self.sock:send(out)
  if not bytes then
    self.fatal = true
    return nil, "failed to send frame: " .. err
  end
  return bytes
end

local function max0(x) return x > 0 and x or 0 end

-- lua-resty-websocket's error strings for the C core's frame errors
-- (errname -> string); the others keep lightws's text.
local FRAME_ERRORS = {
  reserved_bits = "bad RSV1, RSV2, or RSV3 bits",
  bad_rsv1 = "bad RSV1, RSV2, or RSV3 bits",
  fragmented_control = "fragmented control frame",
  control_too_long = "too long payload for control frame",
  length_top_bit = "payload len too large",
  mask_required = "frame unmasked",
  frame_too_big = "exceeding max payload len",
  message_too_big = "exceeding max payload len",
  close_payload = "close frame with a body must carry a 2-byte status code",
}

-- The time options' failures send their close frame (1001, 1011).
local TIME_ERRORS = { idle_timeout = true, ping_timeout = true, close_timeout = true,
                      handshake_timeout = true }

local function recv_fail(self, err)
  if not find(err, ": timeout", 1, true) then self.fatal = true end
  return nil, nil, err
end

-- The prefix of a socket error, as lua-resty-websocket names the part of
-- the frame it was reading: nothing of the frame yet, or inside it.
local function sock_error(self, err)
  if self.got == 0 then return "failed to receive the first 2 bytes: " .. err end
  return "failed to read masking-len and payload: " .. err
end

-- Waits for input for the C stream: receives on the cosocket until the
-- call's own timeout (self.timeout ms from `start`) or the stream's next
-- deadline, whichever comes first; at the deadline ws:tick() acts (a
-- keepalive ping goes out, or a timeout fails the stream and its close
-- frame goes out). Returns true (input given) | nil, err.
local function fill(self, start)
  local c, sock = self.c, self.sock
  local call_end = self.timeout and start + self.timeout / 1000
  while true do
    local d = c:deadline()
    if d and d <= now() then
      local ok, msg = c:tick()
      local sent, serr = flush(self)
      if not ok then
        self.fatal = true
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
      self.got = self.got + #data
      c:input(data)
      return true
    end
    if err ~= "timeout" or by_call then return nil, sock_error(self, err) end
  end
end

-- After the peer's close: the C stream is done; the next thing the peer
-- may do is close the connection (§5.5.1: no frame may follow its close).
local function after_close(self)
  local data, err = self.sock:receiveany(READ_MAX)
  if data then
    self.fatal = true
    return nil, nil, "frame after close frame"
  end
  return recv_fail(self, "failed to receive the first 2 bytes: " .. err)
end

-- recv_frame() -> data, typ, err (lua-resty-websocket's): typ is "text",
-- "binary", "continuation", "ping", "pong" or "close"; err is "again" for
-- a frame that is not the last of its message; for "close" data is the
-- reason and err the code (nil if none), and the answer is the caller's
-- (send_close). Failure: nil, nil, err; err containing ": timeout" leaves
-- the connection usable (a frame cut by the timeout continues in the next
-- call), any other sets wb.fatal.
function methods.recv_frame(self)
  if self.fatal then return nil, nil, "fatal error already happened" end
  local c = self.c
  if not c then return nil, nil, "not initialized yet" end
  if self.peer_closed then return after_close(self) end
  local start = now()
  while true do
    local data, typ, fin, reason = c:frame()
    if data then
      if self.opts.auto_pong then                -- lightws: the pong the C stream wrote
        local sent, serr = flush(self)
        if not sent then return recv_fail(self, serr) end
      end
      self.got = c:buffered()
      if self.debug then ngx.log(ngx.DEBUG, "recv_frame: mask bit: ", self.server and 1 or 0) end
      if typ == "ping" or typ == "pong" or fin then return data, typ, nil end
      return data, typ, "again"
    end
    if typ == "input" then
      local ok, err = fill(self, start)
      if not ok then return recv_fail(self, err) end
    elseif typ == "closed" then
      -- the C stream answered the close in its output: drop that, the
      -- answer is the caller's (as in lua-resty-websocket)
      if not self.closed then c:output() end
      self.peer_closed = true
      self.got = 0
      if self.debug then ngx.log(ngx.DEBUG, "recv_frame: mask bit: ", self.server and 1 or 0) end
      local code = fin
      if code == 1005 then code = nil end
      return reason or "", "close", code
    else                                       -- the peer broke RFC 6455
      -- lua-resty-websocket fails without a close frame; close_on_error
      -- (lightws) sends the one the C stream wrote (§7.1.7)
      if self.opts.close_on_error or TIME_ERRORS[reason] then flush(self) else c:output() end
      self.fatal = true
      return nil, nil, FRAME_ERRORS[reason] or typ
    end
  end
end

local function send_fail(self, err)
  self.fatal = true
  return nil, err
end

-- A frame built here: a server's data and control frames other than
-- close (unmasked, §5.1: the payload goes to the cosocket as it is, with
-- its head, through the object's two-slot table: no copy, no
-- concatenation, no table per frame; a head of a given length is one
-- interned string), send_masked / send_unmasked frames, and frames after
-- the peer's close (when the C stream sends no more).
local function raw_send(self, fin, opcode, payload, len)
  local key = self.mask_out and core.mask_key() or nil
  local ok, head = pcall(core.encode_head, fin, opcode, len, key)
  if not ok or not head then return send_fail(self, "failed to build frame: bad opcode") end
  if key and len > 0 then payload = core.mask(payload, key) end
  local bytes, err
  if len > 0 then
    local iov = self.iov
    iov[1], iov[2] = head, payload
    bytes, err = self.sock:send(iov)
    iov[2] = ""                                  -- the payload is not kept
  else
    bytes, err = self.sock:send(head)
  end
  if not bytes then return send_fail(self, "failed to send frame: " .. err) end
  return bytes
end

local function is_control(op) return op >= 0x8 end

-- send_frame(fin, opcode, payload) -> bytes | nil, err (opcode a number,
-- or lightws: its name). Every failure sets wb.fatal, as in
-- lua-resty-websocket.
local function send_frame(self, fin, opcode, payload, sopts)
  if self.fatal then return nil, "fatal error already happened" end
  if self.closed then return nil, "already closed" end
  local c = self.c
  if not c then return nil, "not initialized yet" end
  if type(opcode) == "string" then opcode = OPCODES[opcode] end
  if type(opcode) ~= "number" then return send_fail(self, "bad opcode") end
  if payload == nil then payload = ""
  elseif type(payload) ~= "string" then payload = tostring(payload) end
  local len = #payload
  if len > self.max_send_len then return send_fail(self, "payload too big") end
  if is_control(opcode) then
    if len > 125 then return send_fail(self, "too much payload for control frame") end
    if not fin then return send_fail(self, "fragmented control frame") end
  end
  if opcode == 0x8 and len == 1 then return send_fail(self, "bad close payload") end
  if not TYPES[opcode] then return send_fail(self, "bad opcode") end  -- §5.2 reserved
  -- (with permessage-deflate a server's data frames go through the C
  -- stream, which compresses them; raw frames are sent uncompressed)
  if self.raw or self.peer_closed or (self.server and opcode ~= 0x8
                                      and not (self.deflate and opcode < 0x8)) then
    -- §5.4: the order of fragments holds here too
    if opcode < 0x8 then
      if (opcode == 0x0) ~= (self.send_kind ~= nil) then
        return send_fail(self, opcode == 0x0 and "continuation frame outside a message"
                               or "new data frame inside a fragmented message")
      end
      if opcode ~= 0x0 then self.send_kind = TYPES[opcode] end
      if fin then self.send_kind = nil end
    end
    local bytes, err = raw_send(self, fin, opcode, payload, len)
    if bytes and opcode == 0x8 then self.closed = true end
    return bytes, err
  end
  local ok, ok2, err
  if opcode == 0x9 then
    ok, ok2, err = pcall(c.ping, c, payload)
  elseif opcode == 0xA then
    ok, ok2, err = pcall(c.pong, c, payload)
  elseif opcode == 0x8 then
    local code, reason = 0, ""
    if len >= 2 then code, reason = byte(payload, 1) * 256 + byte(payload, 2), sub(payload, 3) end
    ok, ok2, err = pcall(c.close, c, code, reason)
    if not ok then return send_fail(self, "bad status code") end
  else
    local kind = TYPES[opcode]
    if opcode == 0x0 then
      kind = self.send_kind
      if not kind then return send_fail(self, "continuation frame outside a message") end
    elseif self.send_kind then
      return send_fail(self, "new data frame inside a fragmented message")
    end
    local more = not fin
    if sopts and sopts.compress == false then more = { more = more, compress = false } end
    ok, ok2, err = pcall(c.send, c, payload, kind, more)
    if ok and ok2 then self.send_kind = (not fin) and kind or nil end
  end
  if not ok then return send_fail(self, "failed to build frame: " .. tostring(ok2)) end
  if not ok2 then return send_fail(self, "failed to send frame: " .. tostring(err)) end
  local bytes, serr = flush(self)
  if not bytes then return nil, serr end
  if opcode == 0x8 then self.closed = true end
  return bytes
end
methods.send_frame = send_frame

-- (lightws: a last argument {compress = false} sends the message
-- uncompressed under permessage-deflate)
function methods.send_text(self, data, sopts) return send_frame(self, true, 0x1, data, sopts) end
function methods.send_binary(self, data, sopts) return send_frame(self, true, 0x2, data, sopts) end
function methods.send_ping(self, data) return send_frame(self, true, 0x9, data) end
function methods.send_pong(self, data) return send_frame(self, true, 0xA, data) end

-- send_continue(data, [fin = true]) -> bytes | nil, err: a continuation
-- frame of the message being sent.
function methods.send_continue(self, data, fin)
  return send_frame(self, fin ~= false, 0x0, data)
end

-- send_close([code], [msg]) -> bytes | nil, err. Without a code the close
-- frame is empty (§5.5.1).
local function send_close(self, code, msg)
  local payload
  if code then
    if type(code) ~= "number" or code > 0x7fff then return nil, "bad status code" end
    payload = char(floor(code / 256) % 256, code % 256) .. (msg or "")
  end
  if self.debug and not self.server then ngx.log(ngx.DEBUG, "sending the close frame") end
  local bytes, err = send_frame(self, true, 0x8, payload)
  if not bytes then self.fatal = true end
  self.closed = true
  return bytes, err
end
methods.send_close = send_close

-- set_timeout(ms): the timeout of each call (recv_frame, sends, connect).
function methods.set_timeout(self, ms)
  local sock = self.sock
  if not sock then return nil, nil, "not initialized yet" end
  self.timeout = ms
  return sock:settimeout(ms)
end

-- lightws: set_timeouts(connect, send, read) when the cosocket has it.
function methods.set_timeouts(self, c, s, r)
  self.timeout = r
  return self.sock:settimeouts(c, s, r)
end

-- lightws: extensions() -> the permessage-deflate parameters agreed
-- (name, server_/client_no_context_takeover, server_/client_max_window_bits)
-- | nil; compressed() -> whether the last frame recv_frame returned was a
-- compressed message.
function methods.extensions(self) return self.deflate end
function methods.compressed(self) return self.c ~= nil and self.c:compressed() end

-- lightws: rtt() -> ms of the last keepalive round trip, or nil.
function methods.rtt(self)
  local r = self.c and self.c:rtt()
  return r and r * 1000
end

-- lightws: deadline() -> ms until the C stream needs a tick (recv_frame
-- does it), or nil; tick() -> true | nil, err. For handlers that run
-- keepalive outside recv_frame (see docs/lua.md).
function methods.deadline(self)
  local d = self.c and self.c:deadline()
  return d and math.max(0, (d - now()) * 1000)
end

function methods.tick(self)
  local ok, msg = self.c:tick()
  local sent, serr = flush(self)
  if not ok then
    self.fatal = true
    return nil, msg
  end
  if not sent then return nil, serr end
  return true
end

-- set_keepalive(max_idle_timeout, pool_size) -> 1 | nil, err. lightws
-- refuses a connection with received bytes not read yet (the next user of
-- the pooled connection would read them).
function methods.set_keepalive(self, ...)
  local sock = self.sock
  if not sock then return nil, "not initialized" end
  if self.c and self.c:buffered() > 0 then return nil, "unread data on the connection" end
  -- the compressor state cannot go with a pooled connection
  if self.deflate then return nil, "permessage-deflate connection cannot be kept alive" end
  return sock:setkeepalive(...)
end

-- close() -> ok | nil, err: sends an empty close frame unless one was sent
-- (lightws: close(code, msg) sends that one), then closes the socket (a
-- server's raw request socket is closed by nginx when the handler ends).
function methods.close(self, code, msg)
  if self.fatal then return nil, "fatal error already happened" end
  local sock = self.sock
  if not sock then return nil, "not initialized" end
  if not self.closed then
    local bytes, err = send_close(self, code, msg)
    if not bytes then return nil, "failed to send close frame: " .. err end
  end
  if self.server then return 1 end
  return sock:close()
end

-- ------------------------------------------------------------- client

-- client:new([opts]) -> wb | nil, err. opts (lua-resty-websocket's):
-- timeout (ms), max_payload_len (65535), max_recv_len, max_send_len
-- (default max_payload_len), send_unmasked; lightws: no_utf8_check,
-- close_on_error, and the time options in ms: handshake_timeout (default
-- 10000 when timeout is set, else none; connect + TLS + request +
-- response together), idle_timeout, ping_interval,
-- ping_timeout, close_timeout.
function client.new(a, b)
  local opts
  if a == client or a == _M then opts = b else opts = a end
  local sock, err = ngx.socket.tcp()
  if not sock then return nil, err end
  return new_object(sock, false, opts or {})
end

-- Splits a ws:// or wss:// URI: scheme, host (or "unix:/path"), port,
-- path | nil, err. IPv6 hosts go in brackets; a unix socket is
-- ws://unix:/path/to.sock or ws://unix:/path/to.sock:/request/path.
local function parse_uri(uri)
  if type(uri) ~= "string" then return nil, "bad websocket uri" end
  local scheme, rest = uri:match("^(wss?)://(.*)$")
  if not scheme then return nil, "bad websocket uri" end
  local host, port, path
  if rest:sub(1, 5) == "unix:" then
    host, path = rest:match("^(unix:[^:]+):?(.*)$")
    if not host then return nil, "bad websocket uri" end
  else
    host, port, path = rest:match("^%[([^%]]+)%]:?(%d*)(.*)$")
    if not host then host, port, path = rest:match("^([^:/?#]+):?(%d*)(.*)$") end
    if not host then return nil, "bad websocket uri" end
    if port == "" then port = nil end
    port = tonumber(port) or (scheme == "wss" and 443 or 80)
    if port < 1 or port > 65535 then return nil, "bad websocket uri" end
    if path ~= "" and not path:match("^[/?]") then return nil, "bad websocket uri" end
  end
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  return scheme, host, port, path
end
_M.parse_uri = parse_uri

local HS_ERRORS = {
  bad_accept = "Sec-WebSocket-Accept does not match the key",
  bad_protocol = "server chose a subprotocol not offered",
  bad_extension = "server chose an extension not offered",
  bad_extension_params = "server's permessage-deflate parameters are invalid or not acceptable",
  no_upgrade = "Upgrade header lacks websocket",
  no_connection = "Connection header lacks upgrade",
}

-- One cosocket call under the handshake deadline: the socket timeout is
-- the smaller of the caller's and the time left; a timeout that the
-- deadline caused reads as lightws's handshake timeout message.
local function hs_call(self, hs_end, f, ...)
  local sock = self.sock
  local by_hs = false
  if hs_end then
    local left = ceil(max0((hs_end - now()) * 1000)) + 1
    by_hs = not self.timeout or left <= self.timeout
    sock:settimeout(by_hs and left or self.timeout)
  end
  local a, b, c = f(sock, ...)
  if hs_end then sock:settimeout(self.timeout or DEFAULT_TIMEOUT) end
  if not a and b == "timeout" and by_hs then b = HS_TIMEOUT_MSG end
  return a, b, c
end

-- The response head (without its final CRLF CRLF) and the bytes after it
-- | nil, err. Read with receiveany under the handshake deadline (a head
-- dribbled byte by byte is cut in time); with keep_response through
-- receiveuntil, so the body stays unread on the socket.
local function read_head(self, hs_end, keep)
  if keep then
    local reader = self.sock:receiveuntil("\r\n\r\n")
    return hs_call(self, hs_end, function() return reader() end)
  end
  local buf, n = {}, 0
  local tail = ""
  while true do
    local data, err = hs_call(self, hs_end, self.sock.receiveany, READ_MAX)
    if not data then return nil, err end
    local s = tail .. data
    local i = find(s, "\r\n\r\n", 1, true)
    if i then
      buf[#buf + 1] = sub(s, 1, i - 1)
      local extra = sub(s, i + 4)
      return concat(buf), extra ~= "" and extra or nil
    end
    n = n + #data
    if n > HEAD_MAX then return nil, "too large" end
    -- keep the last 3 bytes: the end of the head may straddle two reads
    buf[#buf + 1] = sub(s, 1, #s - 3)
    tail = sub(s, -3)
  end
end

local function random_key()
  local rand = math.random
  local b = {}
  for i = 1, 16 do b[i] = rand(256) - 1 end
  return ngx.encode_base64(char(unpack(b)))
end

-- wb:connect(uri, [opts]) -> 1, nil, response head | 1, nil,
-- "connection reused" | nil, err, [response head]. opts
-- (lua-resty-websocket's): protocols (string or list), origin, pool,
-- pool_size, backlog, headers ({"Name: value", ...}), host (the Host
-- header), key (the Sec-WebSocket-Key), keep_response (after a response
-- other than 101 the socket stays open for reading it), ssl_verify,
-- server_name, client_cert, client_priv_key (wss://); lightws: headers
-- may also be {name = value}; deflate = true offers permessage-deflate
-- (off by default, as lua-resty-websocket has none) with the options
-- window_bits, peer_window_bits, mem_level, level, no_context_takeover,
-- peer_no_context_takeover, deflate_threshold, deflate_required (a
-- server that declines fails the connect), deflate_work_size; connect
-- falls back to client:new's opts for them.
function client.connect(self, uri, opts)
  local sock = self.sock
  if not sock then return nil, "not initialized" end
  local scheme, addr, port, path = parse_uri(uri)
  if not scheme then return nil, addr end
  local ssl = scheme == "wss"
  opts = opts or {}
  local protos = opts.protocols
  if type(protos) == "table" then protos = concat(protos, ",") end
  local sock_opts
  if opts.pool or opts.pool_size or opts.backlog then
    sock_opts = { pool = opts.pool, pool_size = opts.pool_size, backlog = opts.backlog }
  end
  local client_cert, client_priv_key = opts.client_cert, opts.client_priv_key
  if client_cert and not client_priv_key then
    error("client_priv_key must be provided with client_cert", 2)
  end
  local server_name = opts.server_name
  if server_name ~= nil and type(server_name) ~= "string" then
    return nil, "SSL server_name must be a string"
  end
  local headers = opts.headers
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "custom headers must be a table"
  end
  local host = opts.host
  if host ~= nil and type(host) ~= "string" then
    return nil, "custom host header must be a string"
  end
  local key = opts.key
  if key ~= nil and type(key) ~= "string" then
    return nil, "custom Sec-WebSocket-Key must be a string"
  end

  -- a new connection (connect() after close() or set_keepalive())
  self.fatal, self.closed, self.peer_closed, self.send_kind = nil, nil, nil, nil
  self.c, self.got = nil, 0
  -- the default applies with `timeout` set: then the socket timeout put
  -- back after each shortened wait is known; without it nginx's
  -- lua_socket_*_timeout stay in force, as in lua-resty-websocket
  local hs = secs(self.opts, "handshake_timeout", self.timeout and HANDSHAKE_TIMEOUT or nil)
  local hs_end = hs > 0 and now() + hs or nil

  -- (the cosocket counts its arguments: no nil ones)
  local ok, err
  if port and sock_opts then
    ok, err = hs_call(self, hs_end, sock.connect, addr, port, sock_opts)
  elseif port then
    ok, err = hs_call(self, hs_end, sock.connect, addr, port)
  elseif sock_opts then
    ok, err = hs_call(self, hs_end, sock.connect, addr, sock_opts)
  else
    ok, err = hs_call(self, hs_end, sock.connect, addr)
  end
  if not ok then return nil, "failed to connect: " .. err end

  local count
  count, err = sock:getreusedtimes()
  if not count then return nil, "failed to get reused times: " .. err end
  if count > 0 then                            -- the handshake was done before
    self.c = new_stream(self)
    return 1, nil, "connection reused"
  end

  if ssl then
    if client_cert then
      ok, err = sock:setclientcert(client_cert, client_priv_key)
      if not ok then return nil, "failed to set TLS client certificate: " .. err end
    end
    ok, err = hs_call(self, hs_end, sock.sslhandshake, false,
                      server_name or host or addr, opts.ssl_verify and true or false)
    if not ok then return nil, "ssl handshake failed: " .. err end
  end

  key = key or random_key()
  local pmd_opts = opts
  if opts.deflate == nil then pmd_opts = self.opts end
  local offer
  if pmd_opts.deflate then
    local perr
    offer, perr = core.pmd_offer(pmd_opts)
    if not offer then return nil, "failed to offer permessage-deflate: " .. tostring(perr) end
  end
  local extra = {}
  if headers then
    for _, line in ipairs(headers) do extra[#extra + 1] = "\r\n" .. line end
    for k, v in pairs(headers) do
      if type(k) == "string" then extra[#extra + 1] = "\r\n" .. k .. ": " .. tostring(v) end
    end
  end
  local host_header = host or (port and (addr:find(":", 1, true) and ("[" .. addr .. "]") or addr) .. ":" .. port
                               or "localhost")
  local req = "GET " .. path .. " HTTP/1.1\r\nUpgrade: websocket\r\nHost: "
              .. host_header
              .. "\r\nSec-WebSocket-Key: " .. key
              .. (protos and ("\r\nSec-WebSocket-Protocol: " .. protos) or "")
              .. "\r\nSec-WebSocket-Version: 13"
              .. (opts.origin and ("\r\nOrigin: " .. opts.origin) or "")
              .. (offer and ("\r\nSec-WebSocket-Extensions: " .. offer) or "")
              .. "\r\nConnection: Upgrade"
              .. concat(extra)
              .. "\r\n\r\n"
  local bytes
  bytes, err = hs_call(self, hs_end, sock.send, req)
  if not bytes then return nil, "failed to send the handshake request: " .. err end

  local head, rest = read_head(self, hs_end, opts.keep_response)
  if not head then return nil, "failed to receive response header: " .. rest end

  local status = head:match("^%s*HTTP/1%.1%s+(%d+)")
  if not status then
    self.fatal = true
    if not opts.keep_response then sock:close() end
    return nil, "bad HTTP response status line: " .. head
  end
  if status ~= "101" then
    self.fatal = true
    if not opts.keep_response then sock:close() end
    return nil, "failed websocket handshake: unexpected response status: " .. status, head
  end
  -- §4.1: the client checks the 101 (Upgrade, Connection, the accept
  -- value, the subprotocol is one it offered)
  local resp, ename = core.parse_response(head .. "\r\n\r\n", key, protos, nil,
                                          offer and pmd_opts or nil)
  if not resp then
    self.fatal = true
    sock:close()
    return nil, "failed websocket handshake: " .. (HS_ERRORS[ename] or tostring(ename)), head
  end
  if offer and not resp.deflate and pmd_opts.deflate_required then
    self.fatal = true
    sock:close()
    return nil, "failed websocket handshake: server declined permessage-deflate", head
  end
  self.response = resp
  self.c = new_stream(self, resp.deflate, pmd_opts)
  if rest then
    self.got = #rest
    self.c:input(rest)
  end
  return 1, nil, head
end

-- ------------------------------------------------------------- server

local function first(v)
  if type(v) == "table" then return v[1] end
  return v
end

-- server:new([opts]) -> wb | nil, err, [http status (lightws)]. Checks the
-- upgrade request, then answers 101 through nginx (ngx.status,
-- ngx.header, ngx.send_headers, ngx.flush) so headers the application set
-- stay in the response and nginx's header filters and access log see it,
-- and takes the raw request socket. On a bad request nothing is sent: the
-- caller ends the request (e.g. ngx.exit(400)). opts
-- (lua-resty-websocket's): timeout (ms), max_payload_len (65535),
-- max_recv_len, max_send_len, send_masked; lightws: protocols ("a, b":
-- the first one the client offered), no_utf8_check, close_on_error,
-- idle_timeout, ping_interval, ping_timeout, close_timeout (ms); deflate
-- = true accepts the client's first acceptable permessage-deflate offer
-- (off by default), with the options of client:connect.
function server.new(a, b)
  local opts
  if a == server or a == _M then opts = b else opts = a end
  opts = opts or {}
  if ngx.headers_sent then return nil, "response header already sent" end
  ngx.req.read_body()
  if ngx.req.http_version() ~= 1.1 then return nil, "bad http version", 400 end
  local h = ngx.req.get_headers()
  local val = first(h.upgrade)
  if not val or lower(val) ~= "websocket" then
    return nil, "bad \"upgrade\" request header: " .. tostring(val), 400
  end
  val = first(h.connection)
  if not val or not find(lower(val), "upgrade", 1, true) then
    return nil, "bad \"connection\" request header", 400
  end
  -- §4.2.1: the key is 16 bytes in base64
  local key = first(h["sec-websocket-key"])
  if not key or #key ~= 24 or not key:match("^[%w+/]+=?=?$")
     or #(ngx.decode_base64(key) or "") ~= 16 then
    return nil, "bad \"sec-websocket-key\" request header", 400
  end
  local ver = first(h["sec-websocket-version"])
  if ver ~= "13" then
    ngx.header["Sec-WebSocket-Version"] = "13"      -- §4.4
    return nil, "bad \"sec-websocket-version\" request header", 426
  end
  if ngx.req.get_method() ~= "GET" then              -- §4.1
    return nil, "bad http method: " .. tostring(ngx.req.get_method()), 405
  end
  -- §4.2.2: the answer is one of the client's subprotocols (its first,
  -- or with opts.protocols the first of those we speak)
  local offered = first(h["sec-websocket-protocol"])
  local chosen
  if offered then
    if opts.protocols then
      local ours = {}
      for p in opts.protocols:gmatch("[^,%s]+") do ours[p] = true end
      for p in offered:gmatch("[^,%s]+") do
        if ours[p] then chosen = p; break end
      end
    else
      chosen = offered:match("[^,%s]+")
    end
  end
  if chosen then ngx.header["Sec-WebSocket-Protocol"] = chosen end
  -- lightws: permessage-deflate (RFC 7692), answered in the 101
  local agreed
  if opts.deflate then
    local ext = h["sec-websocket-extensions"]
    if type(ext) == "table" then ext = concat(ext, ", ") end
    if ext then
      local a, value = core.pmd_accept(ext, opts)
      if a then
        agreed = a
        ngx.header["Sec-WebSocket-Extensions"] = value
      end
    end
  end
  ngx.header["Upgrade"] = "websocket"
  ngx.header["Sec-WebSocket-Accept"] = core.handshake_accept(key)
  ngx.header["Content-Type"] = nil
  ngx.status = 101
  local ok, err = ngx.send_headers()
  if not ok then return nil, "failed to send response header: " .. (err or "unknown") end
  ok, err = ngx.flush(true)
  if not ok then return nil, "failed to flush response header: " .. (err or "unknown") end
  local sock
  sock, err = ngx.req.socket(true)
  if not sock then return nil, err end
  local self = new_object(sock, true, opts)
  self.c = new_stream(self, agreed, opts)
  self.got = 0
  self.protocol = chosen
  return self
end

-- ------------------------------------------------------------- the module tables

for _, t in ipairs({ server, client }) do
  t._VERSION = VERSION
  t.set_timeout = methods.set_timeout
  t.recv_frame = methods.recv_frame
  t.send_frame = methods.send_frame
  t.send_text = methods.send_text
  t.send_binary = methods.send_binary
  t.send_close = methods.send_close
  t.send_ping = methods.send_ping
  t.send_pong = methods.send_pong
end
server.send_continue = methods.send_continue
client.close = methods.close
client.set_keepalive = methods.set_keepalive
methods.connect = client.connect

-- ------------------------------------------------------------- protocol

-- The frame functions of resty.websocket.protocol, over a cosocket
-- without state (no resumption: a timeout inside a frame loses it, as
-- there).
protocol._VERSION = VERSION
protocol.new_tab = new_tab

-- protocol.recv_frame(sock, max_payload_len, force_masking) -> data, typ, err
function protocol.recv_frame(sock, max_payload_len, force_masking)
  local data, err = sock:receive(2)
  if not data then return nil, nil, "failed to receive the first 2 bytes: " .. err end
  local fst, snd = byte(data, 1, 2)
  local fin = fst >= 0x80
  if floor(fst / 16) % 8 ~= 0 then return nil, nil, "bad RSV1, RSV2, or RSV3 bits" end
  local opcode = fst % 16
  if opcode >= 0x3 and opcode <= 0x7 then return nil, nil, "reserved non-control frames" end
  if opcode >= 0xB then return nil, nil, "reserved control frames" end
  local mask = snd >= 0x80
  if ngx_debug() then ngx.log(ngx.DEBUG, "recv_frame: mask bit: ", mask and 1 or 0) end
  if force_masking and not mask then return nil, nil, "frame unmasked" end
  local len = snd % 128
  if len == 126 then
    data, err = sock:receive(2)
    if not data then
      return nil, nil, "failed to receive the 2 byte payload length: " .. (err or "unknown")
    end
    len = byte(data, 1) * 256 + byte(data, 2)
  elseif len == 127 then
    data, err = sock:receive(8)
    if not data then
      return nil, nil, "failed to receive the 8 byte payload length: " .. (err or "unknown")
    end
    if byte(data, 1) ~= 0 or byte(data, 2) ~= 0 or byte(data, 3) ~= 0 or byte(data, 4) ~= 0
       or byte(data, 5) >= 0x80 then
      return nil, nil, "payload len too large"
    end
    len = 0
    for i = 5, 8 do len = len * 256 + byte(data, i) end
  end
  if opcode >= 0x8 then
    if len > 125 then return nil, nil, "too long payload for control frame" end
    if not fin then return nil, nil, "fragmented control frame" end
  end
  if len > max_payload_len then return nil, nil, "exceeding max payload len" end
  local rest = mask and len + 4 or len
  if rest > 0 then
    data, err = sock:receive(rest)
    if not data then
      return nil, nil, "failed to read masking-len and payload: " .. (err or "unknown")
    end
  else
    data = ""
  end
  local msg = data
  if mask then msg = len > 0 and core.mask(sub(data, 5), sub(data, 1, 4)) or "" end
  if opcode == 0x8 then
    if len == 0 then return "", "close", nil end
    if len < 2 then
      return nil, nil, "close frame with a body must carry a 2-byte status code"
    end
    return sub(msg, 3), "close", byte(msg, 1) * 256 + byte(msg, 2)
  end
  return msg, TYPES[opcode], (not fin) and "again" or nil
end

-- protocol.build_frame(fin, opcode, payload_len, payload, masking) -> frame | nil, err
function protocol.build_frame(fin, opcode, payload_len, payload, masking)
  local key = masking and core.mask_key() or nil
  local ok, head, err = pcall(core.encode_head, fin, opcode, payload_len, key)
  if not ok then return nil, tostring(head) end
  if not head then return nil, err end
  if key and payload_len > 0 then payload = core.mask(payload, key) end
  return head .. payload
end

-- protocol.send_frame(sock, fin, opcode, payload, max_payload_len, masking) -> bytes | nil, err
function protocol.send_frame(sock, fin, opcode, payload, max_payload_len, masking)
  if not payload then payload = ""
  elseif type(payload) ~= "string" then payload = tostring(payload) end
  local len = #payload
  if len > max_payload_len then return nil, "payload too big" end
  if opcode >= 0x8 then
    if len > 125 then return nil, "too much payload for control frame" end
    if not fin then return nil, "fragmented control frame" end
  end
  local frame, err = protocol.build_frame(fin, opcode, len, payload, masking)
  if not frame then return nil, "failed to build frame: " .. err end
  local bytes
  bytes, err = sock:send(frame)
  if not bytes then return nil, "failed to send frame: " .. err end
  return bytes
end

-- ------------------------------------------------------------- the shim

-- install() -> the module: makes require "resty.websocket.server",
-- "resty.websocket.client" and "resty.websocket.protocol" return
-- lightws's (call it in init_by_lua*, before any handler requires them).
function _M.install()
  package.loaded["resty.websocket.server"] = server
  package.loaded["resty.websocket.client"] = client
  package.loaded["resty.websocket.protocol"] = protocol
  return _M
end

-- lightws.resty.new(opts) is the client constructor (as before).
_M.new = client.new
return _M
