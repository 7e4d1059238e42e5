-- SPDX-License-Identifier: MIT
-- The path shim: with bindings/lua/lightws/shim/?.lua first in
-- lua_package_path, require "resty.websocket.client" loads lightws's
-- (docs/lua.md). Not installed by the rockspec.
return require("lightws.resty").client
