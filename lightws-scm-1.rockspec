-- SPDX-License-Identifier: MIT
rockspec_format = "3.0"
package = "lightws"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lightws.git",
}
description = {
  summary = "Websocket (RFC 6455) streams for Lua and OpenResty over a C library that never allocates",
  detailed = [[
    lightws.core binds the lightws C library: websocket streams over file
    descriptors (blocking or with timeouts), the frame head and handshake
    codec, masking and incremental UTF-8 validation, permessage-deflate
    (RFC 7692, zlib). lightws adds connect, accept, whole-message receive
    and iteration, and a sans-IO compressor. lightws.resty is a
    client/server over OpenResty cosockets whose recv_frame resumes after a
    timeout in the middle of a frame.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  ZLIB = { header = "zlib.h", library = "z" },
}
build = {
  type = "builtin",
  modules = {
    ["lightws.core"] = {
      sources = {
        "lib/base64.c", "lib/deflate.c", "lib/endpoint.c", "lib/error.c", "lib/frame.c",
        "lib/handshake.c", "lib/mask.c", "lib/pmd_negotiate.c", "lib/random.c", "lib/sha1.c",
        "lib/stream.c", "lib/utf8.c",
        "bindings/lua/lightws_core.c",
      },
      incdirs = { "lib/include", "lib", "bindings/lua", "$(ZLIB_INCDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L", "LIGHTWS_HAVE_ZLIB=1" },
      libraries = { "z" },               -- permessage-deflate, as the Makefile's ZLIB=1
      libdirs = { "$(ZLIB_LIBDIR)" },
    },
    lightws = "bindings/lua/lightws.lua",
    ["lightws.resty"] = "bindings/lua/lightws/resty.lua",
    ["lightws.resty.server"] = "bindings/lua/lightws/resty/server.lua",
    ["lightws.resty.client"] = "bindings/lua/lightws/resty/client.lua",
    ["lightws.resty.protocol"] = "bindings/lua/lightws/resty/protocol.lua",
  },
}
