-- SPDX-License-Identifier: MIT
-- Request handlers for the nginx tests of lightws.resty (tests/lua/nginx.conf.in).
local resty = require "lightws.resty"

local H = {}

function H.echo()
  -- close_on_error (lightws): a frame that breaks RFC 6455 is answered
  -- with its close code (1002, 1007) before the connection ends
  local wb, err, status = resty.server.new({ timeout = 5000, max_payload_len = 2 * 1024 * 1024,
                                            protocols = "echo, chat", close_on_error = true })
  if not wb then
    ngx.log(ngx.INFO, "handshake failed: ", err)
    return ngx.exit(status or 400)
  end
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then
      ngx.log(ngx.ERR, "recv_frame failed: ", e)
      return
    end
    if typ == "close" then
      -- §5.5.1: answer with the same code
      wb:send_close(e, data)
      return
    elseif typ == "ping" then
      wb:send_pong(data)
    elseif typ == "pong" then
      -- ignore
    else
      local op = ({ text = 0x1, binary = 0x2, continuation = 0x0 })[typ]
      local ok, serr = wb:send_frame(e ~= "again", op, data)
      if not ok then
        ngx.log(ngx.ERR, "send failed: ", serr)
        return
      end
    end
  end
end

function H.resume()
  local wb, err, status = resty.server.new({ timeout = 100 })
  if not wb then return ngx.exit(status or 400) end
  local timeouts = 0
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then
      if not e:find(": timeout", 1, true) then return end
      timeouts = timeouts + 1
      if timeouts > 100 then return wb:close(1011) end
    elseif typ == "close" then
      wb:send_close(e, data)
      return
    elseif typ == "text" or typ == "binary" then
      wb:send_frame(true, typ, data)
      wb:send_text("timeouts=" .. timeouts)
    end
  end
end

-- GET /client_resume?port=N: the server there sends one binary frame in
-- pieces with pauses; the client reads with a 100 ms timeout, continues the
-- frame after each timeout, echoes it, and answers the close.
function H.client_resume()
  local wb = resty.client.new({ timeout = 100, max_payload_len = 1048576 })
  wb:set_timeout(2000)
  local ok, err = wb:connect("ws://127.0.0.1:" .. ngx.var.arg_port .. "/pieces")
  if not ok then ngx.say("connect failed: ", err) return end
  wb:set_timeout(100)
  local timeouts, data, typ, e = 0, nil, nil, nil
  repeat
    data, typ, e = wb:recv_frame()
    if not data then
      if not e:find(": timeout", 1, true) then ngx.say("failed: ", e) return end
      timeouts = timeouts + 1
    end
  until data or timeouts > 100
  wb:set_timeout(2000)
  wb:send_binary(data)
  local reason, ctyp, code = wb:recv_frame()
  wb:close()
  ngx.say("timeouts=", timeouts, " len=", data and #data or -1, " typ=", typ,
          " close=", ctyp, ":", code, ":", reason)
end

-- GET /client?port=N: runs a client session against ws://127.0.0.1:N/ and
-- prints one line per check; the last line is "ok" when all passed.
function H.client()
  local port = tonumber(ngx.var.arg_port)
  local out = {}
  local function check(cond, what)
    out[#out + 1] = (cond and "pass " or "FAIL ") .. what
    return cond
  end
  local wb = resty.new({ timeout = 5000, max_payload_len = 2 * 1024 * 1024 })
  local ok, err = wb:connect("ws://127.0.0.1:" .. port .. "/client?x=1")
  if not check(ok, "connect" .. (err and (" " .. err) or "")) then
    ngx.say(table.concat(out, "\n")); return
  end
  local function roundtrip(kind, payload)
    local sent = (kind == "text") and wb:send_text(payload) or wb:send_binary(payload)
    if not sent then return false end
    local parts = {}
    while true do
      local data, typ, e = wb:recv_frame()
      if not data then return false, e end
      if typ ~= "pong" and typ ~= "ping" then
        parts[#parts + 1] = data
        if e ~= "again" then return table.concat(parts) == payload end
      end
    end
  end
  check(roundtrip("text", "hello"), "text")
  check(roundtrip("binary", "\0\1\2\255"), "binary")
  check(roundtrip("binary", string.rep("x", 1024 * 1024)), "1 MiB binary")
  -- fragmented: three frames, one message
  wb:send_frame(false, "text", "frag")
  wb:send_frame(false, "continuation", "men")
  wb:send_frame(true, "continuation", "ted")
  local parts = {}
  repeat
    local data, typ, e = wb:recv_frame()
    if data and typ ~= "pong" then parts[#parts + 1] = data end
  until not data or e ~= "again"
  check(table.concat(parts) == "fragmented", "fragmented message")
  wb:send_ping("p1")
  local data, typ = wb:recv_frame()
  check(typ == "pong" and data == "p1", "ping answered with pong")
  wb:send_close(1000, "bye")
  data, typ, err = wb:recv_frame()
  check(typ == "close" and err == 1000, "close echoed (" .. tostring(err) .. ")")
  wb:close()
  local all = true
  for _, l in ipairs(out) do if l:sub(1, 4) ~= "pass" then all = false end end
  out[#out + 1] = all and "ok" or "failed"
  ngx.say(table.concat(out, "\n"))
end

-- Time (issue 12). GET /time_server?idle=&ping=&pong=&close= (ms): a
-- server with those timeouts that echoes text, answers "rtt?" with its
-- keepalive round trip in ms, answers "close me" with a close 1000 and
-- then waits for the peer's answer; when recv_frame fails it logs the error
-- and returns (nginx closes the connection).
function H.time_server()
  local a = ngx.var
  local wb, err, status = resty.server.new({
    idle_timeout = tonumber(a.arg_idle), ping_interval = tonumber(a.arg_ping),
    ping_timeout = tonumber(a.arg_pong), close_timeout = tonumber(a.arg_close) })
  if not wb then return ngx.exit(status or 400) end
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then
      ngx.log(ngx.WARN, "time_server: ", e)
      return
    end
    if typ == "close" then
      if not wb.closed then wb:send_close(e, data) end
      return
    elseif typ == "ping" then
      wb:send_pong(data)
    elseif typ == "text" and data == "rtt?" then
      wb:send_text(tostring(wb:rtt()))
    elseif typ == "text" and data == "close me" then
      wb:send_close(1000, "bye")
    elseif typ == "text" then
      wb:send_text(data)
    end
  end
end

-- GET /time_client?port=N&hs=&ping=&pong=&wait= (ms): a client of
-- ws://127.0.0.1:N/ with those timeouts; after the handshake it reads for
-- `wait` ms (keepalive pings go out meanwhile), then sends "echo" and
-- reads it back. Prints key=value fields: connect, took (ms), recv, pongs,
-- rtt, echo.
function H.time_client()
  local a = ngx.var
  local wb = resty.client.new({ handshake_timeout = tonumber(a.arg_hs), ping_interval = tonumber(a.arg_ping),
                                ping_timeout = tonumber(a.arg_pong) })
  ngx.update_time()
  local t0 = ngx.now()
  local ok, err = wb:connect("ws://127.0.0.1:" .. a.arg_port .. "/time")
  ngx.update_time()
  local out = { "connect=" .. (ok and "ok" or ("[" .. tostring(err) .. "]")),
                ("took=%d"):format((ngx.now() - t0) * 1000) }
  if ok and a.arg_wait then
    -- the answers to the keepalive pings come back as "pong" frames;
    -- each recv_frame gets the time left of `wait`
    local data, typ, e, pongs = nil, nil, nil, 0
    local stop = ngx.now() + tonumber(a.arg_wait) / 1000
    repeat
      ngx.update_time()
      local left = (stop - ngx.now()) * 1000
      if left < 1 then typ, e = nil, "timeout"; break end
      wb:set_timeout(left)
      data, typ, e = wb:recv_frame()
      if typ == "pong" then pongs = pongs + 1 end
    until typ ~= "pong"
    if e and e:find(": timeout", 1, true) then e = "timeout" end
    out[#out + 1] = "recv=[" .. tostring(data and typ or e) .. "]"
    out[#out + 1] = "pongs=" .. (pongs > 0 and "yes" or "no")
    out[#out + 1] = "rtt=" .. tostring(wb:rtt() and "yes" or "no")
    wb:set_timeout(5000)
    wb:send_text("echo")
    repeat data, typ = wb:recv_frame() until typ ~= "pong"
    out[#out + 1] = "echo=" .. tostring(data)
    wb:close()
  end
  ngx.say(table.concat(out, " "))
end

-- permessage-deflate (issue 11). GET /deflate_echo[?nct=1&bits=N&off=1]: a
-- server with deflate = true (off=1: false) echoing every message, a
-- compressed one compressed and an uncompressed one uncompressed; "ext?"
-- is answered with what was agreed, "last?" with whether the message
-- before it came compressed.
function H.deflate_echo()
  local a = ngx.var
  local wb, err, status = resty.server.new({ timeout = 5000, max_payload_len = 2 * 1024 * 1024,
    deflate = a.arg_off ~= "1", no_context_takeover = a.arg_nct == "1",
    window_bits = tonumber(a.arg_bits), deflate_threshold = 0 })
  if not wb then return ngx.exit(status or 400) end
  local last = false
  while true do
    local data, typ, e = wb:recv_frame()
    if not data then return end
    if typ == "close" then
      wb:send_close(e, data)
      return
    elseif typ == "ping" then
      wb:send_pong(data)
    elseif typ == "text" and data == "ext?" then
      local x = wb:extensions()
      wb:send_text(x and ("%s snct=%s cnct=%s sbits=%s cbits=%s"):format(x.name,
        tostring(x.server_no_context_takeover), tostring(x.client_no_context_takeover),
        tostring(x.server_max_window_bits), tostring(x.client_max_window_bits)) or "none")
    elseif typ == "text" and data == "last?" then
      wb:send_text("compressed=" .. tostring(last))
    elseif typ ~= "pong" then
      last = wb:compressed()
      local op = ({ text = 0x1, binary = 0x2, continuation = 0x0 })[typ]
      local ok = wb:send_frame(e ~= "again", op, data, { compress = last })
      if not ok then return end
    end
  end
end

-- GET /deflate_client?port=N[&off=1]: lightws.resty's client with deflate =
-- true (off=1: not offered) against the python websockets server of
-- tests/lua/peer_deflate.py on port N; key=value fields.
function H.deflate_client()
  local a = ngx.var
  local wb = resty.client.new({ timeout = 5000, max_payload_len = 2 * 1024 * 1024 })
  local ok, err = wb:connect("ws://127.0.0.1:" .. a.arg_port .. "/", { deflate = a.arg_off ~= "1" })
  if not ok then ngx.say("connect=[", err, "]") return end
  local out = { "connect=ok", "agreed=" .. (wb:extensions() and wb:extensions().name or "none") }
  local function rt(kind, payload, sopts)
    local sent = kind == "text" and wb:send_text(payload, sopts) or wb:send_binary(payload, sopts)
    if not sent then return "send-failed" end
    local parts = {}
    while true do
      local data, typ, e = wb:recv_frame()
      if not data then return "recv-failed:" .. tostring(e) end
      parts[#parts + 1] = data
      if e ~= "again" then break end
    end
    return table.concat(parts)
  end
  out[#out + 1] = "peer=[" .. rt("text", "ext?") .. "]"
  local text = ("resty deflate "):rep(200)
  out[#out + 1] = "text=" .. tostring(rt("text", text) == text)
  out[#out + 1] = "compressed=" .. tostring(wb:compressed())
  out[#out + 1] = "empty=" .. tostring(rt("binary", "") == "")
  local big = string.rep("0123456789abcdef", 65536)          -- 1 MiB
  out[#out + 1] = "big=" .. tostring(rt("binary", big) == big)
  out[#out + 1] = "plain=" .. tostring(rt("text", text, { compress = false }) == text)
  wb:send_frame(false, "text", "frag")
  wb:send_frame(false, "continuation", "men")
  wb:send_frame(true, "continuation", "ted")
  local data = wb:recv_frame()
  out[#out + 1] = "frag=" .. tostring(data)
  if wb:extensions() then                                   -- refused: the compressor cannot be pooled
    local kok, kerr = wb:set_keepalive()
    out[#out + 1] = "keepalive=[" .. tostring(kok or kerr) .. "]"
  end
  wb:send_close(1000, "bye")
  local _, typ, code = wb:recv_frame()
  out[#out + 1] = "close=" .. tostring(typ) .. ":" .. tostring(code)
  wb:close()
  ngx.say(table.concat(out, " "))
end

return H
