-- SPDX-License-Identifier: MIT
-- lightws: websocket (RFC 6455) streams for Lua; conveniences over the C module lightws.core.
local core = require "lightws.core"

local M = {}
for k, v in pairs(core) do M[k] = v end
M.stream_methods = nil
M.core = core

local methods = core.stream_methods

-- A descriptor from an integer or any object with :getfd() (LuaSocket).
-- Returns fd, own: an integer descriptor belongs to the stream, an object's
-- descriptor stays its object's.
local function descriptor(x, argn)
  if type(x) == "number" then return x, true end
  if (type(x) == "table" or type(x) == "userdata") and x.getfd then
    local fd = x:getfd()
    if type(fd) == "number" and fd >= 0 then return fd, false end
  end
  error(("bad argument #%d (descriptor or object with :getfd() expected)"):format(argn), 3)
end

-- "ws://host:port/path?query" -> host, port, path, authority (default port
-- 80); wss:// (default port 443) adds a fifth value, true.
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "only ws:// and wss:// URLs are supported" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  path = path:gsub("#.*$", "")
  local host, port = authority:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then return nil, "no host in URL" end
  local n = scheme == "wss" and 443 or 80
  if port ~= "" then
    n = tonumber(port)
    -- the C resolver would also refuse it; say which part of the URL is wrong
    if n < 1 or n > 65535 then return nil, "port " .. port .. " out of range (1-65535) in URL" end
  end
  return host, n, path, authority, scheme == "wss" or nil
end

-- wss: the C module lightws.tls_core (make TLS=1), loaded on first use so
-- that lightws loads without it (docs/lua.md, "wss").
local tls_core, tls_why
local NO_TLS = "wss:// needs the lightws TLS module (built with make TLS=1 and OpenSSL)"
local function tls_module()
  if tls_core == nil then
    local ok, m = pcall(require, "lightws.tls_core")
    tls_core, tls_why = ok and m or false, not ok and m or nil
  end
  return tls_core or nil
end
-- lightws.tls_available() -> true | false, why
function M.tls_available() return tls_module() ~= nil, tls_why end
-- lightws.tls_context{cert=, key=, ...} -> ctx (reusable) | nil, msg, code, name
function M.tls_context(o)
  local t = tls_module()
  if not t then return nil, NO_TLS, 1015, "tls_unavailable" end
  return t.context(o)
end
local function tls_start(ws, role, tls, opts, host)
  local t = tls_module()
  if not t then return nil, NO_TLS, 1015, "tls_unavailable" end
  return t.start(ws, role, tls, opts, host, ws:gettimeout())
end

-- Options that belong to the stream (rest go to the handshake).
local function stream_opts(opts, own)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.own_fd == nil then o.own_fd = own end
  return o
end

-- lightws.wrap(fd_or_sock, role, opts) -> ws already open (no handshake),
-- for descriptors whose handshake happened elsewhere.
function M.wrap(x, role, opts)
  local fd, own = descriptor(x, 1)
  local o = stream_opts(opts, own)
  o.open = true
  return core.stream(fd, role, o)
end

-- lightws.connect(url | fd | sock, [host], [path], [opts]) -> ws, response
--   | nil, msg, code. With a URL the TCP connection is made here;
-- opts: protocols, origin, headers, timeout, rbuf_size, max_frame,
-- max_message, mask, and the stream's timeouts in seconds (0 or false:
-- off): handshake_timeout (default 10), idle_timeout, ping_interval,
-- ping_timeout, close_timeout (see core.stream). The handshake also gives
-- up after opts.timeout (the per-call timeout, "timeout"), if set.
-- permessage-deflate is offered unless deflate = false (on by default
-- when lightws is built with zlib), with window_bits, peer_window_bits,
-- mem_level, level, no_context_takeover, peer_no_context_takeover,
-- deflate_threshold, deflate_required, deflate_work_size (docs/lua.md);
-- ws:extensions() tells what was agreed.
function M.connect(target, host, path, opts)
  local fd, own, hosthdr, tls, tlshost
  if type(target) == "string" then
    opts = host
    local h, port, p, authority, secure = M.parse_url(target)
    if not h then return nil, port end
    if secure and not tls_module() then return nil, NO_TLS, 1015, "tls_unavailable" end
    tls, tlshost = secure and (opts and opts.tls or true), h
    local err, code
    fd, err, code = core.tcp_connect(h, port)
    if not fd then return nil, err, code end
    own, hosthdr, path = true, authority, p
  else
    fd, own = descriptor(target, 1)
    hosthdr, tls, tlshost = host, opts and opts.tls, host
  end
  opts = opts or {}
  local ws, err, code = core.stream(fd, "client", stream_opts(opts, own))
  if not ws then
    if own then core.close_fd(fd) end
    return nil, err, code
  end
  if opts.timeout then ws:settimeout(opts.timeout) end
  if tls then
    local ok, m, c, n = tls_start(ws, "client", tls, opts, tlshost)
    if not ok then ws:close(); return nil, m, c, n end
  end
  local resp, msg, c, name = ws:client_handshake(assert(hosthdr, "host expected"), path or "/", opts)
  if not resp then
    ws:close()
    return nil, msg, c, name
  end
  ws:settimeout(nil)
  return ws, resp
end

-- lightws.accept(fd | sock, [opts]) -> ws, request | nil, msg, http_status.
-- Reads the upgrade request and answers it (101, or the error status).
-- opts: protocols ("a, b"), max_head, timeout, the permessage-deflate
-- options of lightws.connect (an offer is accepted unless deflate =
-- false), and stream options,
-- the timeouts of lightws.connect included (handshake_timeout: 10 s by
-- default; a client too slow for it gets a 408).
function M.accept(target, opts)
  local fd, own = descriptor(target, 1)
  opts = opts or {}
  local ws, err, code = core.stream(fd, "server", stream_opts(opts, own))
  if not ws then
    if own then core.close_fd(fd) end
    return nil, err, code
  end
  if opts.timeout then ws:settimeout(opts.timeout) end
  if opts.tls then
    local ok, m, c, n = tls_start(ws, "server", opts.tls, opts)
    if not ok then ws:close(); return nil, m, c, n end
  end
  local req, msg, c, name = ws:server_handshake(opts)
  if not req then
    ws:close()
    return nil, msg, c, name
  end
  ws:settimeout(nil)
  return ws, req
end

-- permessage-deflate (RFC 7692) for sans-IO users: a compressor and a
-- decompressor of whole message payloads, each a C stream over memory
-- with compression on, so the §7.2 rules (the 00 00 ff ff tail, context
-- takeover, window limits, the output bound) are the C core's.

local function frames_payload(wire)
  local parts, pos = {}, 1
  while pos <= #wire do
    local _, _, _, len, _, hlen = core.decode_head(wire, pos, nil, true)
    parts[#parts + 1] = wire:sub(pos + hlen, pos + hlen + len - 1)
    pos = pos + hlen + len
  end
  return table.concat(parts)
end

-- lightws.compressor([opts]) -> c | nil, msg. c:compress(data) -> the
-- payload of one compressed message (for frames whose first has RSV1; the
-- final 00 00 ff ff removed; never empty: "" gives "\0"). Context is kept
-- across messages unless opts.no_context_takeover. opts: window_bits
-- (9..15, default 12; not above what the peer allowed), mem_level
-- (default 5), level (0..9, default 6), no_context_takeover,
-- deflate_work_size.
function M.compressor(opts)
  opts = opts or {}
  local s = core.stream(nil, "server", { open = true })
  local ok, err, code = s:set_deflate({ server_no_context_takeover = opts.no_context_takeover and true or false,
                                        server_max_window_bits = opts.window_bits }, opts)
  if not ok then return nil, err, code end
  local c = {}
  function c.compress(_, data)
    assert(type(data) == "string", "string expected")
    -- a fragment, then an empty final call: compressed whatever its size
    local n, e, k = s:send(data, "binary", true)
    if n then n, e, k = s:send("", "binary") end
    if not n then return nil, e, k end
    return frames_payload(s:output() or "")
  end
  return c
end

-- lightws.decompressor([opts]) -> d | nil, msg. d:decompress(payload,
-- [kind="binary"]) -> data | nil, msg, code, errname: the 00 00 ff ff
-- tail appended and inflated, bounded by opts.max_size (default 64 MiB)
-- inside the inflate loop (a bomb fails with 1009 after at most max_size
-- + 1 bytes), invalid deflate data 1007, kind "text" checks UTF-8 (1007).
-- opts: window_bits (the peer compressor's window limit, 8..15, default
-- 15), no_context_takeover (the peer resets after each message),
-- deflate_work_size. After an error it stays failed: make a new one.
function M.decompressor(opts)
  opts = opts or {}
  local s = core.stream(nil, "client", { open = true, max_message = opts.max_size or 0,
                                         max_frame = 4294967295 })
  local ok, err, code = s:set_deflate({ server_no_context_takeover = opts.no_context_takeover and true or false,
                                        server_max_window_bits = opts.window_bits },
                                      { peer_window_bits = opts.window_bits,
                                        deflate_work_size = opts.deflate_work_size })
  if not ok then return nil, err, code end
  local d = {}
  function d.decompress(_, payload, kind)
    assert(type(payload) == "string", "string expected")
    local op = kind == "text" and 1 or 2
    s:input(core.encode_head(true, op, #payload, nil, 0x40) .. payload)
    local data, e, k, name = s:receive()
    if not data then return nil, e, k, name end
    return data
  end
  return d
end

-- ws:receive() is in C (lightws_core.c): it assembles a fragmented message
-- in one growing buffer, so memory is the message size plus a constant
-- however many fragments it came in (max_message, max_fragments).

function methods.send_text(ws, data, more) return ws:send(data, "text", more) end
function methods.send_binary(ws, data, more) return ws:send(data, "binary", more) end

-- for msg, kind in ws:messages() do ... end: stops when the peer closes;
-- raises on any other failure (as io.lines does).
function methods.messages(ws)
  return function()
    local data, kind, code = ws:receive()
    if data then return data, kind end
    if kind == "closed" then return nil end
    error(("lightws: receive failed: %s (%s)"):format(tostring(kind), tostring(code)), 2)
  end
end

M._VERSION = core._VERSION
return M
