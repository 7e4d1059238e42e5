-- SPDX-License-Identifier: MIT
-- lightws.resty.protocol: lightws's resty.websocket.protocol (lua-resty-websocket's
-- functions, options, return values and error strings; docs/lua.md).
return require("lightws.resty").protocol
