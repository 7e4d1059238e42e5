-- SPDX-License-Identifier: MIT
-- lightws.tls_core: wss for lightws (issue 14) through liblightws-tls and
-- OpenSSL 3, a rock of its own so that lightws installs without OpenSSL.
rockspec_format = "3.0"
package = "lightws-tls"
version = "scm-1"
source = {
  url = "git+https://example.invalid/lightws.git",
}
description = {
  summary = "wss:// (TLS through OpenSSL 3) for lightws streams, without LuaSec",
  detailed = [[
    lightws.tls_core puts lightws streams over TLS: lightws.connect("wss://...",
    {cafile=, verify=}) and lightws.accept(fd, {tls = {cert=, key=}}). lightws
    loads it on first use and works without it.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lightws",
}
external_dependencies = {
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  ZLIB = { header = "zlib.h", library = "z" },
}
build = {
  type = "builtin",
  modules = {
    ["lightws.tls_core"] = {
      sources = {
        "lib/base64.c", "lib/deflate.c", "lib/endpoint.c", "lib/error.c", "lib/frame.c",
        "lib/handshake.c", "lib/mask.c", "lib/pmd_negotiate.c", "lib/random.c", "lib/sha1.c",
        "lib/stream.c", "lib/utf8.c",
        "lib/tls/tls_openssl.c",
        "bindings/lua/lightws_tls.c",
      },
      incdirs = { "lib/include", "lib", "bindings/lua", "$(OPENSSL_INCDIR)", "$(ZLIB_INCDIR)" },
      defines = { "_POSIX_C_SOURCE=200809L", "LIGHTWS_HAVE_ZLIB=1" },
      libraries = { "ssl", "crypto", "z", "dl" },
      libdirs = { "$(OPENSSL_LIBDIR)", "$(ZLIB_LIBDIR)" },
    },
  },
}
