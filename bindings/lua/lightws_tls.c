/* SPDX-License-Identifier: MIT */
/*
 * lightws.tls_core: wss for lightws.core streams through liblightws-tls
 * (OpenSSL 3). A separate module so that lightws.core loads without
 * OpenSSL; lightws.lua requires it on the first wss use.
 *
 * A connection is a userdata holding struct lightws_tls and the transport
 * table of lightws_xport.h; ws:_xport() puts the stream over it, and the
 * core then asks it what to poll for (lightws_tls_want, decrypted bytes
 * inside OpenSSL first), lets it name TLS failures and calls it before
 * the descriptor closes (close_notify after a clean close handshake).
 *
 * tls_core.context(opts) -> ctx | nil, msg, code, errname
 * tls_core.start(ws, role, tls, opts, host, timeout) -> true | nil, ...
 * ws:tls_info() -> {version, cipher, alpn, eof, close_notify_sent, ...}
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/ssl.h>

#include "lightws.h"
#include "lightws_tls.h"
#include "compat.h"
#include "lightws_xport.h"

#define CTX_MT "lightws.tls_context"
#define CONN_MT "lightws.tls_conn"
#define CACHE_MAX 32 /* cached contexts (by options) before the cache is
                        emptied */
#define NO_TLS_CLOSE 1015 /* RFC 6455 7.4.1: TLS handshake failure */

struct lctx {
  SSL_CTX *ctx;
  int role; /* enum lightws_role */
};

struct lconn {
  struct lightws_lua_xport xp; /* handed to the core */
  struct lightws_stream *s;    /* the stream (in the core's userdata) */
  int fd;
  int role;
  int notify_sent;             /* close_notify went out */
  int finished;                /* xp.finish ran: t is freed */
  char version[16], cipher[64];
  char alpn[32];
  struct lightws_tls t;        /* last: 37 KiB */
};

static double now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static short poll_events(int want) {
  return (short)(((want & LIGHTWS_WANT_READ) ? POLLIN : 0) |
                 ((want & LIGHTWS_WANT_WRITE) ? POLLOUT : 0));
}

/* "TLS_CERT_EXPIRED" -> "tls_cert_expired" */
static void push_errname(lua_State *L, int err) {
  char name[48];
  const char *n = lightws_tls_errname(err);
  size_t i;
  for (i = 0; n[i] && i + 1 < sizeof name; i++)
    name[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
  name[i] = '\0';
  lua_pushstring(L, name);
}

/* Close code for a TLS error: 1015 for the handshake's (verification
 * included), 1006 once the connection was open. */
static int tls_close_code(int err) {
  return err == LIGHTWS_ERR_TLS_PROTOCOL || err == LIGHTWS_ERR_TLS_MISMATCH ||
                 err == LIGHTWS_ERR_TLS_STATE
             ? LIGHTWS_CLOSE_ABNORMAL
             : NO_TLS_CLOSE;
}

/* nil, "message (OpenSSL's reason)", code, errname for a TLS error. */
static int push_tls_error(lua_State *L, int err, const char *reason) {
  lua_pushnil(L);
  if (reason && *reason)
    lua_pushfstring(L, "%s (%s)", lightws_tls_strerror(err), reason);
  else
    lua_pushstring(L, lightws_tls_strerror(err));
  lua_pushinteger(L, tls_close_code(err));
  push_errname(L, err);
  return 4;
}

/* Any error of lightws_tls_* or the stream: as lightws.core reports them. */
static int push_error(lua_State *L, struct lconn *c, int err) {
  if (err <= -200 && err > -250)
    return push_tls_error(L, err, c ? lightws_tls_reason(&c->t) : NULL);
  if (err == LIGHTWS_ERR_SYSTEM) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    lua_pushinteger(L, e);
    lua_pushliteral(L, "system");
    return 4;
  }
  if (err == LIGHTWS_ERR_EOF) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushinteger(L, LIGHTWS_CLOSE_ABNORMAL);
    lua_pushliteral(L, "");
    return 4;
  }
  lua_pushnil(L);
  lua_pushstring(L, lightws_tls_strerror(err));
  lua_pushinteger(L, lightws_close_code(err) ? lightws_close_code(err)
                                             : lightws_http_status(err));
  push_errname(L, err);
  return 4;
}

/* ---------------------------------------------------------- contexts */

static const char *opt_str(lua_State *L, int t, const char *k) {
  const char *s;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "TLS option '%s' must be a string", k);
  s = lua_tostring(L, -1);
  lua_pop(L, 1); /* stays alive in the options table */
  return s;
}

/* Version option: "1.2", "1.3", 0x0303, 0x0304 or nil (0). */
static int opt_version(lua_State *L, int t, const char *k) {
  int v = 0;
  lua_getfield(L, t, k);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    v = (int)lua_tointeger(L, -1);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "1.2") == 0 || strcmp(s, "TLSv1.2") == 0) v = 0x0303;
    else if (strcmp(s, "1.3") == 0 || strcmp(s, "TLSv1.3") == 0) v = 0x0304;
    else luaL_error(L, "TLS option '%s' must be \"1.2\" or \"1.3\"", k);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "TLS option '%s' must be \"1.2\" or \"1.3\"", k);
  }
  lua_pop(L, 1);
  if (v != 0 && v != 0x0303 && v != 0x0304)
    luaL_error(L, "TLS option '%s' must be \"1.2\" or \"1.3\"", k);
  return v;
}

/* The role of options table `t`: "server" or "client" (default `def`). */
static int opt_role(lua_State *L, int t, int def) {
  const char *r = opt_str(L, t, "role");
  if (r == NULL) return def;
  if (strcmp(r, "server") == 0) return LIGHTWS_SERVER;
  if (strcmp(r, "client") == 0) return LIGHTWS_CLIENT;
  return luaL_error(L, "TLS option 'role' must be \"server\" or \"client\"");
}

/* Reads options table `t` into *cfg (strings stay owned by the table). */
static void config_arg(lua_State *L, int t, int role,
                       struct lightws_tls_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->cafile = opt_str(L, t, "cafile");
  cfg->capath = opt_str(L, t, "capath");
  cfg->cert_file = opt_str(L, t, "cert");
  cfg->key_file = opt_str(L, t, "key");
  cfg->alpn = opt_str(L, t, "alpn");
  cfg->ciphersuites = opt_str(L, t, "ciphersuites");
  cfg->min_version = opt_version(L, t, "min_version");
  cfg->max_version = opt_version(L, t, "max_version");
  lua_getfield(L, t, "verify");
  if (role == LIGHTWS_CLIENT)      /* default true: only false turns it off */
    cfg->insecure = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_getfield(L, t, "verify_client");
  if (role == LIGHTWS_SERVER) cfg->verify_client = lua_toboolean(L, -1);
  lua_pop(L, 2);
}

/* Pushes a new context userdata for `role` and options table `t`, or
 * nil, msg, code, errname. */
static int new_context(lua_State *L, int t, int role) {
  struct lightws_tls_config cfg;
  struct lctx *x;
  char reason[256] = "";
  int err = 0;
  config_arg(L, t, role, &cfg);
  if (role == LIGHTWS_SERVER && cfg.cert_file == NULL)
    return luaL_error(L, "a TLS server needs 'cert' (and 'key')");
  x = (struct lctx *)lua_newuserdata(L, sizeof *x);
  x->ctx = NULL;
  x->role = role;
  luaL_getmetatable(L, CTX_MT);
  lua_setmetatable(L, -2);
  x->ctx = lightws_tls_ctx((enum lightws_role)role, &cfg, &err, reason,
                           sizeof reason);
  if (x->ctx == NULL) {
    lua_pop(L, 1);
    if (err == LIGHTWS_ERR_INVALID) err = LIGHTWS_ERR_TLS_CTX;
    return push_tls_error(L, err ? err : LIGHTWS_ERR_TLS_CTX, reason);
  }
  return 1;
}

/* tls_core.context(opts) -> ctx | nil, msg, code, errname. opts: role
 * ("server" default | "client"), cert, key, cafile, capath, verify (client,
 * default true), verify_client (server), alpn, min_version, max_version,
 * ciphersuites. */
static int l_context(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  return new_context(L, 1, opt_role(L, 1, LIGHTWS_SERVER));
}

/* The cache key of options `t` for `role`. */
static void push_cache_key(lua_State *L, int t, int role) {
  static const char *const keys[] = {"cafile", "capath", "cert", "key",
                                     "alpn", "ciphersuites", "min_version",
                                     "max_version", "verify", "verify_client",
                                     NULL};
  luaL_Buffer b;
  int i;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, role == LIGHTWS_CLIENT ? "client" : "server");
  for (i = 0; keys[i]; i++) {
    luaL_addchar(&b, '\0');
    lua_getfield(L, t, keys[i]);
    if (lua_type(L, -1) == LUA_TBOOLEAN) {
      const char *v = lua_toboolean(L, -1) ? "\1t" : "\1f";
      lua_pop(L, 1);
      luaL_addstring(&b, v);
    } else if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
    } else {
      luaL_addvalue(&b); /* strings and numbers */
    }
  }
  luaL_pushresult(&b);
}

/* Empties the table at `i` in place (the closures share it). */
static void clear_table(lua_State *L, int i) {
  lua_pushnil(L);
  while (lua_next(L, i) != 0) {
    lua_pop(L, 1);                                /* key */
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, i);                             /* key */
  }
}

/* luaL_testudata, which Lua 5.1 lacks. */
static void *test_udata(lua_State *L, int i, const char *mt) {
  void *p = lua_touserdata(L, i);
  int same;
  if (p == NULL || !lua_getmetatable(L, i)) return NULL;
  luaL_getmetatable(L, mt);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}

/* The context for options `t` (role `role`): from the module's cache
 * (upvalue 1: key -> ctx), made and cached on first use. */
static int cached_context(lua_State *L, int t, int role) {
  int n;
  push_cache_key(L, t, role);                     /* key */
  lua_pushvalue(L, -1);
  lua_rawget(L, lua_upvalueindex(1));             /* key ctx|nil */
  if (!lua_isnil(L, -1)) {
    lua_remove(L, -2);
    return 1;
  }
  lua_pop(L, 1);                                  /* key */
  n = new_context(L, t, role);                    /* key ctx | key nil ... */
  if (n != 1) {
    lua_remove(L, -n - 1);
    return n;
  }
  /* count entries; empty the cache when full (contexts in use stay alive:
   * OpenSSL counts the SSL objects' references) */
  {
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, lua_upvalueindex(1)) != 0) {
      lua_pop(L, 1);
      count++;
    }
    if (count >= CACHE_MAX) clear_table(L, lua_upvalueindex(1));
  }
  lua_pushvalue(L, -2);                           /* key ctx key */
  lua_pushvalue(L, -2);                           /* key ctx key ctx */
  lua_rawset(L, lua_upvalueindex(1));             /* key ctx */
  lua_remove(L, -2);
  return 1;
}

/* tls_core.clear_cache(): drops the cached contexts (certificate files
 * are read again on next use). */
static int l_clear_cache(lua_State *L) {
  clear_table(L, lua_upvalueindex(1));
  return 0;
}

static int ctx_gc(lua_State *L) {
  struct lctx *x = (struct lctx *)luaL_checkudata(L, 1, CTX_MT);
  if (x->ctx) lightws_tls_ctx_free(x->ctx);
  x->ctx = NULL;
  return 0;
}

static int ctx_tostring(lua_State *L) {
  struct lctx *x = (struct lctx *)luaL_checkudata(L, 1, CTX_MT);
  lua_pushfstring(L, "lightws.tls_context (%s)",
                  x->role == LIGHTWS_CLIENT ? "client" : "server");
  return 1;
}

static int ctx_role(lua_State *L) {
  struct lctx *x = (struct lctx *)luaL_checkudata(L, 1, CTX_MT);
  lua_pushstring(L, x->role == LIGHTWS_CLIENT ? "client" : "server");
  return 1;
}

/* ------------------------------------------------- the core's transport */

/* What to poll for before a stream call that would block is retried. */
static short x_events(void *ctx, struct lightws_stream *s, short ev) {
  struct lconn *c = (struct lconn *)ctx;
  int sw = lightws_stream_want(s), r;
  /* decrypted bytes inside OpenSSL: poll(2) would not see them */
  if (((ev & POLLIN) || (sw & LIGHTWS_WANT_READ)) && c->t.ssl &&
      SSL_pending(c->t.ssl) > 0)
    return 0;
  if (lightws_tls_pending(&c->t) > 0) {
    r = lightws_tls_flush(&c->t);
    if (r == 0 && (sw & LIGHTWS_WANT_WRITE)) return 0;  /* the write goes on */
    if (r != 0 && r != LIGHTWS_ERR_WOULDBLOCK) return 0; /* the call fails */
  }
  if (sw == 0 && lightws_tls_pending(&c->t) == 0) return ev;
  return poll_events(lightws_tls_want(&c->t, s));
}

/* A stream call failed with SYSTEM: name the TLS error behind EPROTO. */
static int x_push_error(lua_State *L, void *ctx, int err) {
  struct lconn *c = (struct lconn *)ctx;
  int te = lightws_tls_error(&c->t);
  if (err != LIGHTWS_ERR_SYSTEM || te == 0 || errno != EPROTO) return 0;
  return push_tls_error(L, te, lightws_tls_reason(&c->t));
}

/* Decrypted bytes inside OpenSSL, for ws:buffered(); 0 when the layer's
 * own io hook (t->io.pending) already adds them to
 * lightws_stream_buffered(). */
static size_t x_buffered(void *ctx) {
  struct lconn *c = (struct lconn *)ctx;
  if (c->t.io.pending != NULL || c->t.ssl == NULL) return 0;
  return (size_t)SSL_pending(c->t.ssl);
}

/* Before the descriptor closes: close_notify after a complete close
 * handshake (waiting at most `timeout` s for the socket to take it), then
 * OpenSSL's state goes. */
static void x_finish(void *ctx, struct lightws_stream *s, double timeout) {
  struct lconn *c = (struct lconn *)ctx;
  double deadline = now_mono() + (timeout > 0 ? timeout : 0);
  if (c->finished) return;
  c->finished = 1;
  if (c->t.ssl != NULL && lightws_stream_closing(s) == 2) {
    int r;
    while ((r = lightws_tls_shutdown(&c->t)) == LIGHTWS_ERR_WOULDBLOCK) {
      struct pollfd p;
      double left = deadline - now_mono();
      if (left <= 0) break;
      p.fd = c->fd;
      p.events = poll_events(lightws_tls_want(&c->t, NULL));
      p.revents = 0;
      if (poll(&p, 1, (int)(left * 1000.0 + 0.999)) < 0 && errno != EINTR)
        break;
    }
    c->notify_sent = r == 0;
  }
  lightws_tls_free(&c->t);
}

/* ---------------------------------------------------- starting TLS */

/* Host header value -> name for SNI and verification ("[::1]:8443" ->
 * "::1", "example.com:443" -> "example.com"). */
static void host_name(const char *host, char *out, size_t size) {
  size_t n;
  const char *e;
  out[0] = 0;
  if (!host) return;
  if (host[0] == '[') {
    host++;
    e = strchr(host, ']');
    n = e ? (size_t)(e - host) : strlen(host);
  } else {
    e = strchr(host, ':');
    n = (e && !strchr(e + 1, ':')) ? (size_t)(e - host) : strlen(host);
  }
  if (n >= size) n = size - 1;
  memcpy(out, host, n);
  out[n] = 0;
}

/* The TLS handshake by `deadline` (the call's timeout: nil, "timeout")
 * and `hs_deadline` (handshake_timeout: HANDSHAKE_TIMEOUT); < 0: none.
 * The stream's own timers do not run before its handshake's first step
 * (lightws.h), so they are not asked here. */
static int do_handshake(lua_State *L, struct lconn *c, double deadline,
                        double hs_deadline) {
  for (;;) {
    struct pollfd p;
    double until = deadline, left;
    int r = lightws_tls_handshake(&c->t), ms;
    if (r == 0) return 0;
    if (r != LIGHTWS_ERR_WOULDBLOCK) return push_error(L, c, r);
    if (hs_deadline >= 0 && (until < 0 || hs_deadline < until))
      until = hs_deadline;
    left = until < 0 ? -1 : until - now_mono();
    if (until >= 0 && left <= 0) {
      if (hs_deadline >= 0 && now_mono() >= hs_deadline)
        return push_error(L, c, LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    }
    ms = left < 0 ? -1 : left > 1e6 ? 1000000000 : (int)(left * 1000.0 + 0.999);
    p.fd = c->fd;
    p.events = poll_events(lightws_tls_want(&c->t, NULL));
    p.revents = 0;
    r = poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) return push_error(L, c, LIGHTWS_ERR_SYSTEM);
  }
}

/* handshake_timeout of the options at `t` as lightws.core reads it
 * (seconds; nil: 10; false or 0: none) -> a deadline, or -1. */
static double hs_deadline_of(lua_State *L, int t) {
  double v = 10.0;
  lua_getfield(L, t, "handshake_timeout");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) v = 0;
  else if (lua_type(L, -1) == LUA_TNUMBER) v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v > 0 ? now_mono() + v : -1;
}

/* tls_core.start(ws, role, tls, opts, host, timeout) -> true
 *   | nil, "timeout" | nil, msg, code, errname.
 * Puts new stream `ws` over TLS and runs the TLS handshake. `tls` is a
 * context, an options table (a cached context) or anything else (the
 * context from `opts`, cached); the client's server name is
 * tls.server_name, opts.server_name or `host` (its port dropped). */
static int l_start(lua_State *L) {
  static const char *const roles[] = {"server", "client", NULL};
  int role = luaL_checkoption(L, 2, NULL, roles) ? LIGHTWS_CLIENT
                                                 : LIGHTWS_SERVER;
  const char *host;
  double timeout;
  struct lctx *x;
  struct lconn *c;
  const char *sn = NULL;
  char name[256];
  struct stat st;
  int fd, rc, n;
  luaL_checkany(L, 1);
  lua_settop(L, 6);
  if (lua_isnil(L, 4)) {
    lua_newtable(L);
    lua_replace(L, 4);
  }
  luaL_checktype(L, 4, LUA_TTABLE);
  host = luaL_optstring(L, 5, NULL);
  timeout = luaL_optnumber(L, 6, -1);
  /* the context: 7 */
  if (test_udata(L, 3, CTX_MT)) {
    lua_pushvalue(L, 3);
  } else {
    int t = lua_type(L, 3) == LUA_TTABLE ? 3 : 4;
    n = cached_context(L, t, role);
    if (n != 1) return n;
  }
  x = (struct lctx *)luaL_checkudata(L, 7, CTX_MT);
  if (x->role != role)
    return luaL_error(L, "a TLS %s context given to a %s",
                      x->role == LIGHTWS_CLIENT ? "client" : "server",
                      role == LIGHTWS_CLIENT ? "client" : "server");
  if (role == LIGHTWS_CLIENT) {
    if (lua_type(L, 3) == LUA_TTABLE) sn = opt_str(L, 3, "server_name");
    if (sn == NULL) sn = opt_str(L, 4, "server_name");
    if (sn == NULL) {
      host_name(host, name, sizeof name);
      sn = name;
    }
  }
  /* the descriptor */
  lua_getfield(L, 1, "getfd");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  fd = (int)luaL_optinteger(L, -1, -1);
  lua_pop(L, 1);
  if (fd < 0) return luaL_error(L, "TLS needs a stream over a descriptor");
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
    return luaL_error(L, "TLS needs a socket");
  c = (struct lconn *)lua_newuserdata(L, sizeof *c); /* 8 */
  memset(c, 0, offsetof(struct lconn, t));
  memset(&c->t, 0, offsetof(struct lightws_tls, cbuf));
  c->finished = 1;                /* nothing to free yet */
  luaL_getmetatable(L, CONN_MT);
  lua_setmetatable(L, -2);
  rc = lightws_tls_init(&c->t, x->ctx, fd, (enum lightws_role)role, sn);
  if (rc != 0) return push_error(L, c, rc);
  c->finished = 0;
  c->fd = fd;
  c->role = role;
  c->xp.magic = LIGHTWS_LUA_XPORT_MAGIC;
  c->xp.stream_size = (unsigned)sizeof(struct lightws_stream);
  c->xp.io = &c->t.io;
  c->xp.ctx = c;
  c->xp.events = x_events;
  c->xp.push_error = x_push_error;
  c->xp.buffered = x_buffered;
  c->xp.finish = x_finish;
  /* ws:_xport(xp, conn) -> stream pointer */
  lua_getfield(L, 1, "_xport");
  if (!lua_isfunction(L, -1))
    return luaL_error(L, "lightws.core without the transport hook (ws:_xport): "
                         "lightws.core and lightws.tls_core from different builds");
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &c->xp);
  lua_pushvalue(L, 8);
  lua_call(L, 3, 1);
  c->s = (struct lightws_stream *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c->s == NULL) return luaL_error(L, "lightws.core without a TLS hook");
  n = do_handshake(L, c, timeout < 0 ? -1 : now_mono() + timeout,
                   hs_deadline_of(L, 4));
  if (n != 0) return n;
  {
    const char *v = lightws_tls_version(&c->t), *ci = lightws_tls_cipher(&c->t);
    size_t al = 0;
    const char *a = lightws_tls_alpn(&c->t, &al);
    snprintf(c->version, sizeof c->version, "%s", v ? v : "");
    snprintf(c->cipher, sizeof c->cipher, "%s", ci ? ci : "");
    if (a && al < sizeof c->alpn) {
      memcpy(c->alpn, a, al);
      c->alpn[al] = 0;
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:tls_info() -> {version, cipher, alpn, eof ("close_notify" |
 * "truncated" | nil), close_notify_sent, records} | nil (not TLS). */
static int m_tls_info(lua_State *L) {
  struct lconn *c;
  int eof;
  lua_getfield(L, 1, "_xport");
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  c = (struct lconn *)test_udata(L, -1, CONN_MT);
  if (c == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 6);
  if (c->version[0]) {
    lua_pushstring(L, c->version);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, c->cipher);
    lua_setfield(L, -2, "cipher");
  }
  if (c->alpn[0]) {
    lua_pushstring(L, c->alpn);
    lua_setfield(L, -2, "alpn");
  }
  eof = lightws_tls_eof(&c->t);
  if (eof) {
    lua_pushstring(L, eof == 1 ? "close_notify" : "truncated");
    lua_setfield(L, -2, "eof");
  }
  lua_pushboolean(L, c->notify_sent);
  lua_setfield(L, -2, "close_notify_sent");
  lua_pushinteger(L, (lua_Integer)lightws_tls_records(&c->t));
  lua_setfield(L, -2, "records");
  return 1;
}

static int conn_gc(lua_State *L) {
  struct lconn *c = (struct lconn *)luaL_checkudata(L, 1, CONN_MT);
  /* normally the stream's __gc (x_finish) freed it; a connection that
   * never reached the stream frees here */
  if (!c->finished) {
    c->finished = 1;
    lightws_tls_free(&c->t);
  }
  return 0;
}

/* tls_core.strerror(code), tls_core.errname(code): both error tables. */
static int l_strerror(lua_State *L) {
  lua_pushstring(L, lightws_tls_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_errname(lua_State *L) {
  lua_pushstring(L, lightws_tls_errname((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* The module stays loaded for the process: streams over TLS call into it
 * from their __gc, which may run after package's own finalizer unloads C
 * modules at lua_close (LuaJIT). */
static const char module_anchor = 0;

static void pin_module(void) {
  Dl_info info;
  if (dladdr(&module_anchor, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_GLOBAL);
}

int luaopen_lightws_tls_core(lua_State *L);

int luaopen_lightws_tls_core(lua_State *L) {
  static const luaL_Reg ctx_meta[] = {
      {"__gc", ctx_gc}, {"__tostring", ctx_tostring}, {NULL, NULL}};
  static const luaL_Reg ctx_methods[] = {{"role", ctx_role}, {NULL, NULL}};
  pin_module();
  luaL_newmetatable(L, CTX_MT);
  compat_setfuncs(L, ctx_meta);
  lua_newtable(L);
  compat_setfuncs(L, ctx_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, CONN_MT);
  lua_pushcfunction(L, conn_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  /* ws:tls_info() on every stream */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lightws.core");
  lua_call(L, 1, 1);                               /* core */
  lua_getfield(L, -1, "stream_methods");           /* core methods */
  if (lua_istable(L, -1)) {
    lua_pushcfunction(L, m_tls_info);
    lua_setfield(L, -2, "tls_info");
  }
  lua_pop(L, 2);
  lua_newtable(L);                                 /* M */
  lua_newtable(L);                                 /* M cache */
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_start, 1);
  lua_setfield(L, -3, "start");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_clear_cache, 1);
  lua_setfield(L, -3, "clear_cache");
  lua_pop(L, 1);                                   /* M */
  lua_pushcfunction(L, l_context);
  lua_setfield(L, -2, "context");
  lua_pushcfunction(L, l_strerror);
  lua_setfield(L, -2, "strerror");
  lua_pushcfunction(L, l_errname);
  lua_setfield(L, -2, "errname");
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "openssl");
  return 1;
}
