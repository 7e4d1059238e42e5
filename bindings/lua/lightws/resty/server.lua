-- SPDX-License-Identifier: MIT
-- lightws.resty.server: lightws's resty.websocket.server (lua-resty-websocket's
-- functions, options, return values and error strings; docs/lua.md).
return require("lightws.resty").server
