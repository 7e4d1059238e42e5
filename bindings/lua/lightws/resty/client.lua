-- SPDX-License-Identifier: MIT
-- lightws.resty.client: lightws's resty.websocket.client (lua-resty-websocket's
-- functions, options, return values and error strings; docs/lua.md).
return require("lightws.resty").client
