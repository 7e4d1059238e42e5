/* SPDX-License-Identifier: MIT */
/*
 * A transport under a lightws.core stream that lives in another C module
 * (lightws.tls_core: TLS through liblightws-tls). The module hands the
 * stream a pointer to this table with ws:_xport(lightuserdata, anchor)
 * before the handshake; the core then reads and writes through `io`, asks
 * `events` what to poll for before each wait, lets `push_error` name the
 * transport's failures, counts `buffered` in ws:buffered() and calls
 * `finish` before the descriptor is closed. `anchor` (the module's
 * userdata holding this table and the transport state) is kept alive by
 * the stream until its __gc.
 *
 * Both modules must come from the same build: ws:_xport checks `magic`
 * and `stream_size`.
 */
#ifndef LIGHTWS_LUA_XPORT_H
#define LIGHTWS_LUA_XPORT_H

#include <stddef.h>
#include "lua.h"
#include "lightws.h"

#define LIGHTWS_LUA_XPORT_MAGIC 0x6c777831u /* "lwx1" */

struct lightws_lua_xport {
  unsigned magic;             /* LIGHTWS_LUA_XPORT_MAGIC */
  unsigned stream_size;       /* sizeof(struct lightws_stream) */
  const struct lightws_io *io; /* the stream's transport */
  void *ctx;
  /* poll(2) events to wait for before the call that would block is
   * retried; `ev` is what the core would wait for on a plain socket.
   * 0: do not wait (bytes are buffered in the transport). */
  short (*events)(void *ctx, struct lightws_stream *s, short ev);
  /* A stream call failed with `err` (errno kept): pushes nil, msg, code,
   * errname and returns 4, or returns 0 (the core's own message). */
  int (*push_error)(lua_State *L, void *ctx, int err);
  /* Received bytes the transport holds that the stream has not read. */
  size_t (*buffered)(void *ctx);
  /* Before the descriptor is closed (ws:close, __gc): ends the transport
   * (e.g. TLS close_notify when the close handshake is complete, waiting
   * at most `timeout` seconds; 0: no waiting) and frees its state. */
  void (*finish)(void *ctx, struct lightws_stream *s, double timeout);
};

#endif
