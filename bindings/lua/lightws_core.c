/* SPDX-License-Identifier: MIT */
/* lightws.core: Lua binding of lightws: streams over descriptors, the frame and handshake codec, small socket helpers. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lightws.h"
#include "compat.h"
#include "lightws_xport.h"

#define STREAM_MT "lightws.stream"
#define UTF8_MT "lightws.utf8"
#define DEFAULT_RBUF 16384
#define CLOSE_WAIT_DEFAULT 10.0 /* seconds ws:close() waits without a timeout */
#define MAX_HEADERS LIGHTWS_HANDSHAKE_HEADERS_MAX
#define MSG_KEEP 65536 /* receive(): a message buffer up to this size is kept
                          for the next message, a larger one is freed */
#define WAIT_BUSY (-2) /* wait_stream(): only the caller's bytes of a data
                          frame cut short can make progress */
#define WAIT_TICK (-3) /* a wait reached the stream's deadline and
                          lightws_stream_tick() failed it: w->tick_err */
#define WAIT_MEM (-4)  /* a memory stream needs input (ws:input) */
#define HANDSHAKE_DEFAULT 10.0 /* seconds: handshake_timeout unless set */
#define CLOSED_FD (-1) /* w->fd of a closed stream */
#define MEM_FD (-2)    /* w->fd of an open stream over memory */

/* Handshake progress kept in the userdata, so a timeout resumes. */
enum { HS_NONE, HS_CLIENT_SENT, HS_SERVER_READ, HS_SERVER_ACCEPT,
       HS_SERVER_REJECT, HS_DONE, HS_FAILED };

/* The stream userdata: the C state and its receive buffer in one block, so
 * reading and writing frames never allocates. */
struct lstream {
  struct lightws_stream s;
  int fd;             /* -1 once closed */
  int own_fd;         /* close(fd) on close/__gc */
  int hs;             /* HS_* */
  int req_ref;        /* registry ref of the parsed request (server) */
  int reject_err;     /* handshake error being answered (HS_SERVER_REJECT) */
  double timeout;     /* seconds per call; < 0 waits forever */
  size_t pong_len;
  int has_pong;
  uint8_t pong[LIGHTWS_CONTROL_MAX];
  /* ws:receive(): the message being assembled (malloc'd, grows by
   * doubling; memory is the message plus a constant, whatever the number
   * of fragments), kept across "timeout" returns */
  char *mbuf;
  size_t mlen, mcap;
  int mop;            /* TEXT/BINARY of the message in progress, 0 if none */
  lua_Integer max_frags;  /* frames per message, 0 = unlimited */
  lua_Integer frags;  /* frames of the current message so far (not fin) */
  int frag_failed;    /* a message went over max_frags: 1009 sent */
  /* own transport for descriptors that are not sockets (pipes, FIFOs,
   * ttys): writes that cannot raise SIGPIPE */
  struct lightws_io io;
  int io_fd;
  /* time: the timeouts set (ms), the error a tick failed the stream with */
  struct lightws_timeouts to;
  int tick_err;
  /* a transport of another C module (lightws_xport.h: lightws.tls_core),
   * set by ws:_xport(); xp_ref anchors its state (0: none) */
  const struct lightws_lua_xport *xp;
  int xp_ref;
  /* ws:frame(): kind of the fragmented message in progress (0: none), a
   * data chunk held back while a pong seen by the same read goes first */
  int fmop;
  int held;
  struct lightws_chunk held_chunk;
  /* memory transport (core.stream(nil, ...), for lightws.resty): input
   * is a Lua string held in the registry, output a growing buffer */
  int mem;
  int in_ref, in_eof;
  const char *in;
  size_t in_len, in_off;
  char *obuf;
  size_t olen, ocap;
  size_t rsize;
  /* permessage-deflate: the block lent to the C stream (a second userdata
   * held in the registry, made once per connection: before the offer
   * (client), once an offer is accepted (server), or by ws:set_deflate),
   * the local choices and what was agreed */
  int pmd_ref;        /* LUA_NOREF: no block */
  uint8_t *pmd_mem;
  size_t pmd_size;
  int pmd_want, pmd_on;
  int mcomp;          /* receive(): the message being assembled came compressed */
  int last_comp;      /* ws:compressed(): so did the last one handed out */
  int send_rest;      /* a send returned "timeout" with all its data taken:
                         its frames (compressed output, a control frame)
                         are not all out; an empty send finishes them */
  struct lightws_pmd_config pmd_cfg;
  struct lightws_pmd_params pmd_agreed;
  uint8_t rbuf[];     /* C99 flexible array member: rsize bytes */
};

/* ---------------------------------------------------------------- helpers */

static double now_mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void errname_lower(int err, char *out, size_t size) {
  const char *n = lightws_errname(err);
  size_t i;
  for (i = 0; n[i] && i + 1 < size; i++)
    out[i] = (char)(n[i] >= 'A' && n[i] <= 'Z' ? n[i] - 'A' + 'a' : n[i]);
  out[i] = '\0';
}

/* Codec-style failure: nil, errname ("incomplete", "bad_key"), code. */
static int push_codec_error(lua_State *L, int err, lua_Integer code) {
  char name[40];
  errname_lower(err, name, sizeof name);
  lua_pushnil(L);
  lua_pushstring(L, name);
  lua_pushinteger(L, code);
  return 3;
}

static int push_errno(lua_State *L, int e) {
  lua_pushnil(L);                   /* nil */
  lua_pushstring(L, strerror(e));   /* nil msg */
  lua_pushinteger(L, e);            /* nil msg errno */
  return 3;
}

static int set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, fl);
}

/* poll(2) milliseconds for `left` seconds: rounded up, capped (the callers
 * loop until their deadline, so a long wait is several polls). */
static int poll_ms(double left) {
  if (left <= 0) return 0;
  if (left >= 1e6) return 1000000000;
  return (int)(left * 1000.0 + 0.999);
}

/* Waits until `fd` is ready for `events` or `deadline` (< 0: none) passes;
 * a deadline already past still polls once (timeout 0 means "if ready
 * now"). Returns 1 ready, 0 timeout, -1 error (errno). A negative
 * descriptor is EBADF: poll(2) would ignore it and wait for nothing. */
static int wait_fd(int fd, short events, double deadline) {
  if (fd < 0) {
    errno = EBADF;
    return -1;
  }
  for (;;) {
    struct pollfd p;
    int ms = -1, r;
    if (deadline >= 0) ms = poll_ms(deadline - now_mono());
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    r = poll(&p, 1, ms);
    if (r > 0) return 1;
    if (r == 0) {
      if (deadline >= 0 && now_mono() >= deadline) return 0;
      continue;
    }
    if (errno != EINTR) return -1;
  }
}

/* A descriptor argument: -1 when it is not one (negative, or too large for
 * an int: a plain cast would turn 2^32 + 5 into 5); callers answer EBADF. */
static int fd_arg(lua_State *L, int i) {
  lua_Integer v = luaL_checkinteger(L, i);
  return v < 0 || v > INT_MAX ? -1 : (int)v;
}

/* An optional timeout in seconds: < 0 (or none) waits forever; NaN is an
 * error (it would compare as neither and wait forever). */
static double timeout_arg(lua_State *L, int i) {
  double t = luaL_optnumber(L, i, -1);
  luaL_argcheck(L, !isnan(t), i, "timeout is NaN");
  return t;
}

/* writev(2) that cannot raise SIGPIPE, for descriptors that are not
 * sockets (send(2) has MSG_NOSIGNAL; pipes have nothing like it): SIGPIPE
 * is blocked in this thread around the write, and one the write raised is
 * taken off the pending set before the mask is restored, so the caller
 * gets EPIPE instead of a dead process. A SIGPIPE that was already pending
 * (blocked by the caller) is left as it was. */
static ssize_t writev_nosigpipe(int fd, const struct iovec *iov, int cnt) {
  sigset_t pipe_set, old, pending;
  int was_pending = 0, e;
  ssize_t r;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old) != 0) {
    errno = EINVAL;
    return -1;
  }
  if (sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
  r = writev(fd, iov, cnt);
  e = errno;
  if (r < 0 && e == EPIPE && !was_pending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return r;
}

/* The stream transport for non-sockets: read(2), and writev(2) without
 * SIGPIPE. The C core retries EINTR and maps EAGAIN to WOULDBLOCK. */
static ssize_t nosock_read(void *ctx, void *buf, size_t len) {
  return read(*(const int *)ctx, buf, len);
}

static ssize_t nosock_writev(void *ctx, const struct iovec *iov, int cnt) {
  return writev_nosigpipe(*(const int *)ctx, iov, cnt);
}

/* The memory transport: reads take what ws:input() gave (EAGAIN when it
 * is used up, 0 after ws:input(nil)); writes append to the output buffer
 * that ws:output() hands out, so they never block. */
static ssize_t mem_read(void *ctx, void *buf, size_t len) {
  struct lstream *w = (struct lstream *)ctx;
  size_t left = w->in_len - w->in_off;
  if (left == 0) {
    if (w->in_eof) return 0;
    errno = EAGAIN;
    return -1;
  }
  if (len > left) len = left;
  memcpy(buf, w->in + w->in_off, len);
  w->in_off += len;
  return (ssize_t)len;
}

static ssize_t mem_writev(void *ctx, const struct iovec *iov, int cnt) {
  struct lstream *w = (struct lstream *)ctx;
  size_t total = 0;
  int i;
  for (i = 0; i < cnt; i++) total += iov[i].iov_len;
  if (total > w->ocap - w->olen) {
    size_t cap = w->ocap ? w->ocap : 4096;
    char *nb;
    while (total > cap - w->olen) {
      if (cap > ((size_t)-1) / 2) { errno = ENOMEM; return -1; }
      cap *= 2;
    }
    nb = (char *)realloc(w->obuf, cap);
    if (nb == NULL) { errno = ENOMEM; return -1; }
    w->obuf = nb;
    w->ocap = cap;
  }
  for (i = 0; i < cnt; i++) {
    memcpy(w->obuf + w->olen, iov[i].iov_base, iov[i].iov_len);
    w->olen += iov[i].iov_len;
  }
  return (ssize_t)total;
}

/* A time option in seconds (nil: `def`; false or 0: off) as milliseconds,
 * rounded up so a positive value never turns the timeout off. */
static uint32_t secs_opt(lua_State *L, int t, const char *k, double def) {
  double v = def;
  lua_getfield(L, t, k);
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    v = 0;
  } else if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "option '%s' must be a number of seconds", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  if (!(v >= 0 && v <= 4294967.0))  /* NaN too */
    luaL_error(L, "option '%s' out of range (0 to 4294967 seconds)", k);
  return (uint32_t)ceil(v * 1000.0);
}

/* The timeouts of options table `t` (seconds): handshake_timeout (default
 * `hs_def`), idle_timeout, ping_interval, ping_timeout, close_timeout. */
static void timeouts_arg(lua_State *L, int t, struct lightws_timeouts *o,
                         double hs_def) {
  o->handshake = secs_opt(L, t, "handshake_timeout", hs_def);
  o->idle = secs_opt(L, t, "idle_timeout", 0);
  o->ping_interval = secs_opt(L, t, "ping_interval", 0);
  o->ping_timeout = secs_opt(L, t, "ping_timeout", 0);
  o->close = secs_opt(L, t, "close_timeout", 0);
}

static int opcode_arg(lua_State *L, int i, int def) {
  static const char *const names[] = {"continuation", "text", "binary",
                                      "close", "ping", "pong", NULL};
  static const int codes[] = {0x0, 0x1, 0x2, 0x8, 0x9, 0xA};
  if (lua_isnoneornil(L, i)) return def;
  if (lua_type(L, i) == LUA_TNUMBER) {
    lua_Integer op = luaL_checkinteger(L, i);
    luaL_argcheck(L, op >= 0 && op <= 0xF, i, "opcode out of range");
    return (int)op;
  }
  return codes[luaL_checkoption(L, i, NULL, names)];
}

static const char *opcode_name(int op) {
  switch (op) {
    case 0x0: return "continuation";
    case 0x1: return "text";
    case 0x2: return "binary";
    case 0x8: return "close";
    case 0x9: return "ping";
    case 0xA: return "pong";
    default: return "reserved";
  }
}

/* Reads a header table at index `i` (a map name -> value or an array of
 * {name, value}) into `h`; strings stay owned by the table. */
static size_t headers_arg(lua_State *L, int i, struct lightws_header *h,
                          size_t max) {
  size_t n = 0;
  if (lua_isnoneornil(L, i)) return 0;
  luaL_checktype(L, i, LUA_TTABLE);
  lua_pushnil(L);                                  /* key */
  while (lua_next(L, i) != 0) {                    /* key value */
    const char *name, *value;
    size_t nl, vl;
    if (n == max) luaL_error(L, "too many headers (max %d)", (int)max);
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_rawgeti(L, -1, 1);                       /* key value name */
      lua_rawgeti(L, -2, 2);                       /* key value name val */
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "header entries must be {name, value} strings");
      name = lua_tolstring(L, -2, &nl);
      value = lua_tolstring(L, -1, &vl);
      lua_pop(L, 2);                               /* key value */
    } else {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "headers must map names to string values");
      name = lua_tolstring(L, -2, &nl);
      value = lua_tolstring(L, -1, &vl);
    }
    h[n].name = name;
    h[n].name_len = nl;
    h[n].value = value;
    h[n].value_len = vl;
    n++;
    lua_pop(L, 1);                                 /* key */
  }
  return n;
}

static void set_lstr(lua_State *L, const char *k, const char *p, size_t n) {
  if (p == NULL) return;
  lua_pushlstring(L, p, n);
  lua_setfield(L, -2, k);
}

/* Pushes {headers = {lowercase name -> value (repeats joined by ", ")},
 * header_list = {{name, value}, ...}} fields into the table on top. */
static void set_headers(lua_State *L, const struct lightws_header *h,
                        size_t n) {
  size_t i, j;
  lua_newtable(L);                                 /* t map */
  lua_newtable(L);                                 /* t map list */
  for (i = 0; i < n; i++) {
    char lname[256];
    size_t nl = h[i].name_len < sizeof lname ? h[i].name_len : sizeof lname;
    for (j = 0; j < nl; j++) {
      char c = h[i].name[j];
      lname[j] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    lua_createtable(L, 2, 0);                      /* t map list e */
    lua_pushlstring(L, h[i].name, h[i].name_len);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, h[i].value, h[i].value_len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)i + 1);                /* t map list */
    lua_pushlstring(L, lname, nl);                 /* t map list k */
    lua_pushvalue(L, -1);                          /* t map list k k */
    lua_rawget(L, -4);                             /* t map list k old */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, h[i].value, h[i].value_len);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h[i].value, h[i].value_len);
      lua_concat(L, 3);                            /* t map list k joined */
    }
    lua_rawset(L, -4);                             /* t map list */
  }
  lua_setfield(L, -3, "header_list");              /* t map */
  lua_setfield(L, -2, "headers");                  /* t */
}

static void push_request(lua_State *L, const struct lightws_request *r) {
  lua_newtable(L);
  set_lstr(L, "method", r->method, r->method_len);
  set_lstr(L, "path", r->path, r->path_len);
  set_lstr(L, "host", r->host, r->host_len);
  set_lstr(L, "key", r->key, r->key_len);
  set_lstr(L, "origin", r->origin, r->origin_len);
  set_lstr(L, "protocol", r->protocol, r->protocol_len);
  set_lstr(L, "extensions", r->extensions, r->extensions_len);
  lua_pushinteger(L, r->http_minor);
  lua_setfield(L, -2, "http_minor");
  lua_pushinteger(L, r->version);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, (lua_Integer)r->head_len);
  lua_setfield(L, -2, "head_len");
  set_headers(L, r->headers, r->num_headers);
}

static void push_response(lua_State *L, const struct lightws_response *r) {
  lua_newtable(L);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  set_lstr(L, "reason", r->reason, r->reason_len);
  set_lstr(L, "accept", r->accept, r->accept_len);
  set_lstr(L, "protocol", r->protocol, r->protocol_len);
  set_lstr(L, "extensions", r->extensions, r->extensions_len);
  lua_pushinteger(L, (lua_Integer)r->head_len);
  lua_setfield(L, -2, "head_len");
  set_headers(L, r->headers, r->num_headers);
}

/* ------------------------------------------------------------ the stream */

static struct lstream *check_stream(lua_State *L, int i) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, i, STREAM_MT);
  if (w->fd == CLOSED_FD) luaL_error(L, "attempt to use a closed lightws.stream");
  return w;
}

static double deadline_of(const struct lstream *w) {
  return w->timeout < 0 ? -1.0 : now_mono() + w->timeout;
}

/* Ends a transport of another module (TLS: close_notify after a clean
 * close handshake, waiting at most `timeout` s) before the descriptor
 * closes; the stream does no I/O afterwards. */
static void xp_finish(struct lstream *w, double timeout) {
  const struct lightws_lua_xport *xp = w->xp;
  if (xp == NULL) return;
  w->xp = NULL;
  xp->finish(xp->ctx, &w->s, timeout);
}

static void close_fd_of(struct lstream *w) {
  xp_finish(w, w->timeout >= 0 && w->timeout < 1.0 ? w->timeout : 1.0);
  if (w->fd >= 0 && w->own_fd) close(w->fd);
  w->fd = CLOSED_FD;
}

/* Frees the message receive() was assembling. */
static void msg_free(struct lstream *w) {
  free(w->mbuf);
  w->mbuf = NULL;
  w->mlen = w->mcap = 0;
  w->mop = 0;
}

/* Records a pong the last read call saw (valid only until the next). */
static void keep_pong(struct lstream *w) {
  size_t n = 0;
  const uint8_t *p = lightws_stream_pong_data(&w->s, &n);
  if (p != NULL) {
    if (n > sizeof w->pong) n = sizeof w->pong;
    memcpy(w->pong, p, n);
    w->pong_len = n;
    w->has_pong = 1;
  }
}

/* The stream's deadline has come: lightws_stream_tick() sends the
 * keepalive ping (written out here as far as the transport takes it now)
 * or fails the stream (its close frame too). Returns 0, or the error (also
 * kept in w->tick_err for push_wait_error). */
static int tick_now(struct lstream *w) {
  int rc = lightws_stream_tick(&w->s, lightws_now());
  if (w->hs == HS_DONE) (void)lightws_stream_flush(&w->s);
  if (rc < 0) w->tick_err = rc;
  return rc;
}

/* wait_fd() on the stream's descriptor that also keeps the stream's time:
 * it waits no longer than lightws_stream_deadline() and ticks there, so a
 * blocking call sends keepalive pings while it waits and fails with a
 * timeout error (WAIT_TICK) instead of waiting on. A memory stream cannot
 * wait: WAIT_MEM. Returns as wait_fd(), or WAIT_TICK / WAIT_MEM. */
static int wait_io(struct lstream *w, short ev, double deadline) {
  if (w->mem) return WAIT_MEM;
  for (;;) {
    uint64_t d = lightws_stream_deadline(&w->s);
    double until = deadline;
    int at_tick = 0, r;
    if (d != LIGHTWS_NO_DEADLINE) {
      double sd = (double)d / 1000.0;   /* lightws_now() is CLOCK_MONOTONIC */
      if (until < 0 || sd < until) {
        until = sd;
        at_tick = 1;
      }
    }
    if (w->xp != NULL) {        /* e.g. TLS: the direction TLS needs */
      short xev = w->xp->events(w->xp->ctx, &w->s, ev);
      r = xev == 0 ? 1 : wait_fd(w->fd, xev, until);
    } else {
      r = wait_fd(w->fd, ev, until);
    }
    if (r != 0 || !at_tick) return r;
    if (tick_now(w) < 0) return WAIT_TICK;
    /* a ping the transport did not take: be woken when it can */
    if (lightws_stream_want(&w->s) & LIGHTWS_WANT_WRITE) ev |= POLLOUT;
  }
}

/* After LIGHTWS_ERR_WOULDBLOCK: waits for what the stream wants. Writes a
 * pending control frame first, so a queued pong does not make poll report
 * "writable" forever. Returns 1 go on, 0 timeout, -1 errno, or WAIT_BUSY:
 * the stream waits to write a control frame that sits behind a data frame
 * of ours cut short (a send that timed out or failed), and nothing but the
 * rest of that frame's payload, which only the caller has, can move it.
 * Polling then would spin (the socket is writable, the stream does not
 * write), so the caller must give up instead. */
static int wait_stream(struct lstream *w, int reading, double deadline) {
  int want = lightws_stream_want(&w->s);
  short ev = 0;
  if (w->mem) return WAIT_MEM;       /* its writes never wait */
  if (want & LIGHTWS_WANT_WRITE) {
    if (w->hs != HS_DONE) {
      ev |= POLLOUT;                 /* a handshake head being written */
    } else {
      int rc = lightws_stream_flush(&w->s);
      if (rc == LIGHTWS_ERR_WOULDBLOCK) ev |= POLLOUT;
      else if (rc == LIGHTWS_ERR_SYSTEM) return -1;
      else if (!(want & LIGHTWS_WANT_READ))
        return rc == LIGHTWS_ERR_BUSY ? WAIT_BUSY : 1;  /* 0: written */
    }
  }
  if (want & LIGHTWS_WANT_READ) ev |= POLLIN;
  if (ev == 0) ev = reading ? POLLIN : POLLOUT;
  return wait_io(w, ev, deadline);
}

/* Pushes the failure of a stream call: nil, message, code, errname. */
static int push_stream_error(lua_State *L, struct lstream *w, int err) {
  char name[40];
  errname_lower(err, name, sizeof name);
  if (err == LIGHTWS_ERR_CLOSED || err == LIGHTWS_ERR_EOF) {
    size_t rl = 0;
    const char *r = lightws_stream_close_reason(&w->s, &rl);
    unsigned code = lightws_stream_close_code(&w->s);
    if (err == LIGHTWS_ERR_EOF && code == 0) code = 1006;
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    lua_pushinteger(L, code);
    lua_pushlstring(L, r ? r : "", r ? rl : 0);
    return 4;
  }
  if (err == LIGHTWS_ERR_SYSTEM) {
    int e = errno;
    if (w->xp != NULL) {         /* a transport error it can name */
      int n = w->xp->push_error(L, w->xp->ctx, err);
      if (n != 0) return n;
    }
    push_errno(L, e);
    lua_pushstring(L, name);
    return 4;
  }
  lua_pushnil(L);
  lua_pushstring(L, lightws_strerror(err));
  if (lightws_close_code(err) != 0)
    lua_pushinteger(L, lightws_close_code(err));
  else
    lua_pushinteger(L, lightws_http_status(err));
  lua_pushstring(L, name);
  return 4;
}

static int push_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

/* The failure of a wait_stream() / wait_io() that did not return 1. */
static int push_wait_error(lua_State *L, struct lstream *w, int r) {
  if (r == 0) return push_timeout(L);
  if (r == WAIT_BUSY) return push_stream_error(L, w, LIGHTWS_ERR_BUSY);
  if (r == WAIT_TICK) return push_stream_error(L, w, w->tick_err);
  if (r == WAIT_MEM) {
    lua_pushnil(L);
    lua_pushliteral(L, "input");
    return 2;
  }
  return push_errno(L, errno);
}

static unsigned options_arg(lua_State *L, int i) {
  unsigned o = 0;
  lua_getfield(L, i, "no_utf8_check");
  if (lua_toboolean(L, -1)) o |= LIGHTWS_OPT_NO_UTF8_CHECK;
  lua_getfield(L, i, "no_auto_pong");
  if (lua_toboolean(L, -1)) o |= LIGHTWS_OPT_NO_AUTO_PONG;
  lua_getfield(L, i, "no_mask_check");
  if (lua_toboolean(L, -1)) o |= LIGHTWS_OPT_NO_MASK_CHECK;
  lua_pop(L, 3);
  return o;
}

static lua_Integer opt_int(lua_State *L, int t, const char *k,
                           lua_Integer def) {
  lua_Integer v = def;
  lua_getfield(L, t, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "option '%s' must be a number", k);
    v = lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static const char *opt_str(lua_State *L, int t, const char *k) {
  const char *s;
  lua_getfield(L, t, k);
  s = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
  if (!lua_isnil(L, -1) && s == NULL)
    luaL_error(L, "option '%s' must be a string", k);
  lua_pop(L, 1);  /* the string stays alive in the options table */
  return s;
}

/* ------------------------------------------------- permessage-deflate */

static int opt_bool(lua_State *L, int t, const char *k) {
  int v;
  lua_getfield(L, t, k);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static uint8_t opt_range(lua_State *L, int t, const char *k, lua_Integer lo,
                         lua_Integer hi) {
  lua_Integer v = opt_int(L, t, k, 0);
  if (v != 0 && (v < lo || v > hi))
    luaL_error(L, "option '%s' out of range (%d to %d)", k, (int)lo, (int)hi);
  return (uint8_t)v;
}

/* The permessage-deflate options of table `t` (0: none) into *cfg:
 * window_bits (9..15, default 12), peer_window_bits (8..15, default 15),
 * mem_level (1..9, default 5), level (0..9, default 6), no_context_takeover,
 * peer_no_context_takeover, deflate_threshold (bytes; messages sent in one
 * call shorter than it go uncompressed; default 32, 0: all but empty ones
 * compressed), deflate_required (client: a server that declines fails the
 * handshake, 1010), deflate_work_size (256..65536, default 4096). Returns 1
 * when permessage-deflate is wanted: opts.deflate true, or nil and `def`
 * and zlib in the build (deflate = true without zlib raises). */
static int pmd_cfg_arg(lua_State *L, int t, struct lightws_pmd_config *cfg,
                       int def) {
  int want = def && lightws_pmd_available();
  lua_Integer v;
  char offer[256];
  memset(cfg, 0, sizeof *cfg);
  if (t == 0) return want;
  lua_getfield(L, t, "deflate");
  if (!lua_isnil(L, -1)) want = lua_toboolean(L, -1);
  lua_pop(L, 1);
  cfg->window_bits = opt_range(L, t, "window_bits", 9, 15);
  cfg->peer_window_bits = opt_range(L, t, "peer_window_bits", 8, 15);
  cfg->mem_level = opt_range(L, t, "mem_level", 1, 9);
  lua_getfield(L, t, "level");
  if (!lua_isnil(L, -1)) {
    v = opt_int(L, t, "level", 0);
    if (v < 0 || v > 9) luaL_error(L, "option 'level' out of range (0 to 9)");
    cfg->level = (int8_t)(v == 0 ? -1 : v);
  }
  lua_pop(L, 1);
  cfg->no_context_takeover = (uint8_t)opt_bool(L, t, "no_context_takeover");
  cfg->peer_no_context_takeover =
      (uint8_t)opt_bool(L, t, "peer_no_context_takeover");
  cfg->required = (uint8_t)opt_bool(L, t, "deflate_required");
  lua_getfield(L, t, "deflate_threshold");
  if (!lua_isnil(L, -1)) {
    v = opt_int(L, t, "deflate_threshold", 0);
    if (v < 0 || v > (lua_Integer)UINT32_MAX)
      luaL_error(L, "option 'deflate_threshold' out of range");
    cfg->threshold = v == 0 ? 1u : (uint32_t)v;
  }
  lua_pop(L, 1);
  v = opt_int(L, t, "deflate_work_size", 0);
  if (v != 0 && (v < 256 || v > 65536))
    luaL_error(L, "option 'deflate_work_size' out of range (256 to 65536)");
  cfg->work_size = (uint32_t)v;
  if (want && !lightws_pmd_available())
    luaL_error(L, "permessage-deflate is not available (lightws built without zlib)");
  if (lightws_pmd_available() &&
      lightws_pmd_offer(offer, sizeof offer, cfg) == LIGHTWS_ERR_INVALID)
    luaL_error(L, "invalid permessage-deflate options");
  return want;
}

static void pmd_drop(lua_State *L, struct lstream *w) {
  if (w->pmd_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, w->pmd_ref);
  w->pmd_ref = LUA_NOREF;
  w->pmd_mem = NULL;
  w->pmd_size = 0;
}

/* The block for w->pmd_cfg: lightws_pmd_mem_size bytes (and room to
 * align), a userdata that lives as long as the stream. */
static void pmd_block(lua_State *L, struct lstream *w) {
  size_t size = lightws_pmd_mem_size(&w->pmd_cfg) + 16;
  void *p;
  pmd_drop(L, w);
  p = lua_newuserdata(L, size);
  w->pmd_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->pmd_mem = (uint8_t *)p;
  w->pmd_size = size;
}

/* What was agreed, as a table: name, server_no_context_takeover,
 * client_no_context_takeover (booleans), server_max_window_bits,
 * client_max_window_bits (8..15, absent when the RFC default 15 holds;
 * true for the bare parameter of an offer). */
static void push_params(lua_State *L, const struct lightws_pmd_params *a) {
  lua_createtable(L, 0, 5);
  lua_pushliteral(L, LIGHTWS_PMD_NAME);
  lua_setfield(L, -2, "name");
  lua_pushboolean(L, a->server_no_context_takeover);
  lua_setfield(L, -2, "server_no_context_takeover");
  lua_pushboolean(L, a->client_no_context_takeover);
  lua_setfield(L, -2, "client_no_context_takeover");
  if (a->server_max_window_bits) {
    lua_pushinteger(L, a->server_max_window_bits);
    lua_setfield(L, -2, "server_max_window_bits");
  }
  if (a->client_max_window_bits == LIGHTWS_PMD_BITS_BARE) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "client_max_window_bits");
  } else if (a->client_max_window_bits) {
    lua_pushinteger(L, a->client_max_window_bits);
    lua_setfield(L, -2, "client_max_window_bits");
  }
}

static void params_arg(lua_State *L, int t, struct lightws_pmd_params *a) {
  luaL_checktype(L, t, LUA_TTABLE);
  memset(a, 0, sizeof *a);
  a->server_no_context_takeover =
      (uint8_t)opt_bool(L, t, "server_no_context_takeover");
  a->client_no_context_takeover =
      (uint8_t)opt_bool(L, t, "client_no_context_takeover");
  a->server_max_window_bits = opt_range(L, t, "server_max_window_bits", 8, 15);
  lua_getfield(L, t, "client_max_window_bits");
  if (lua_type(L, -1) == LUA_TBOOLEAN) {
    a->client_max_window_bits = lua_toboolean(L, -1) ? LIGHTWS_PMD_BITS_BARE : 0;
  } else {
    a->client_max_window_bits =
        opt_range(L, t, "client_max_window_bits", 8, 15);
  }
  lua_pop(L, 1);
}

/* 1 if chunk `c` belongs to a message that came compressed. */
static int chunk_compressed(const struct lstream *w,
                            const struct lightws_chunk *c) {
  (void)w;
  return c->compressed != 0;
}

/* The Sec-WebSocket-Extensions headers of a response, joined by ", "
 * into out (NUL-terminated). Returns the length. */
static int is_ext_header(const struct lightws_header *h) {
  static const char name[] = "sec-websocket-extensions";
  size_t j;
  if (h->name_len != sizeof name - 1) return 0;
  for (j = 0; j < h->name_len; j++) {
    char c = h->name[j];
    if ((char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != name[j]) return 0;
  }
  return 1;
}

static size_t ext_values(const struct lightws_header *h, size_t n,
                         char *out, size_t size) {
  size_t i, len = 0;
  out[0] = '\0';
  for (i = 0; i < n; i++) {
    if (!is_ext_header(&h[i])) continue;
    if (len > 0 && len + 2 < size) {
      memcpy(out + len, ", ", 2);
      len += 2;
    }
    if (len + h[i].value_len >= size) break;
    memcpy(out + len, h[i].value, h[i].value_len);
    len += h[i].value_len;
    out[len] = '\0';
  }
  return len;
}

/* Server, request read: accepts the first acceptable offer of its
 * Sec-WebSocket-Extensions headers (the block is made only then). */
static void pmd_server(lua_State *L, struct lstream *w,
                       const struct lightws_request *req) {
  size_t i;
  int r = 0;
  for (i = 0; i < req->num_headers && r == 0; i++) {
    const struct lightws_header *h = &req->headers[i];
    if (!is_ext_header(h)) continue;
    r = lightws_pmd_accept(h->value, h->value_len, &w->pmd_cfg, &w->pmd_agreed);
  }
  if (r != 1) return;
  pmd_block(L, w);
  r = lightws_server_deflate(&w->s, req, &w->pmd_cfg, w->pmd_mem, w->pmd_size);
  if (r == 1) w->pmd_on = 1;
  else pmd_drop(L, w);
}

/* Client, stream open: what the server agreed to (the block goes if it
 * declined). */
static void pmd_client(lua_State *L, struct lstream *w,
                       const struct lightws_response *resp) {
  char val[1024];
  size_t n;
  if (!w->pmd_want) return;
  if (!lightws_stream_deflate(&w->s)) {
    pmd_drop(L, w);
    return;
  }
  n = ext_values(resp->headers, resp->num_headers, val, sizeof val);
  if (lightws_pmd_check_response(val, n, &w->pmd_cfg, &w->pmd_agreed) == 0)
    w->pmd_on = 1;
}

/* core.stream(fd, role, [opts]) -> ws: a stream over descriptor `fd`, before
 * the handshake (or open at once with opts.open = true). The descriptor is
 * made nonblocking; the timeout is applied with poll(2). opts: rbuf_size,
 * max_frame, max_message (0..2^32-1, 0 = the default 64 MiB), max_fragments
 * (frames per message for receive/receive_chunk, 0 = unlimited), mask
 * ("random"|"fixed"|"zero"), own_fd (default true), no_utf8_check,
 * no_auto_pong, no_mask_check, open, and the timeouts in seconds (0 or
 * false: none): handshake_timeout (default 10 unless open), idle_timeout,
 * ping_interval, ping_timeout, close_timeout; their clocks start here. A
 * descriptor that is not a socket gets a transport whose writes cannot
 * raise SIGPIPE (EPIPE instead). With fd nil the stream runs over memory,
 * for a transport Lua drives (OpenResty cosockets): ws:input(bytes) hands
 * it what was received, ws:output() what it wrote; a call that would wait
 * for input returns nil, "input" instead, and time moves only with
 * ws:tick(). */
static int l_stream(lua_State *L) {
  static const char *const roles[] = {"server", "client", NULL};
  int mem = lua_isnil(L, 1);
  int fd = mem ? -1 : fd_arg(L, 1);
  int role = luaL_checkoption(L, 2, NULL, roles);
  lua_Integer rsize = DEFAULT_RBUF, max_frame, max_message, max_frags;
  unsigned opts = 0;
  struct lstream *w;
  struct stat st;
  int rc;
  if (lua_isnoneornil(L, 3)) {
    lua_settop(L, 2);
    lua_newtable(L);                               /* fd role opts */
  }
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_argcheck(L, mem || fd >= 0, 1, "invalid descriptor");
  rsize = opt_int(L, 3, "rbuf_size", DEFAULT_RBUF);
  if (rsize < LIGHTWS_RBUF_MIN || rsize > (lua_Integer)1 << 30)
    return luaL_argerror(L, 3, "rbuf_size out of range");
  opts = options_arg(L, 3);
  max_frame = opt_int(L, 3, "max_frame", 0);
  max_message = opt_int(L, 3, "max_message", 0);
  max_frags = opt_int(L, 3, "max_fragments", 0);
  if (max_frame < 0 || max_frame > (lua_Integer)UINT32_MAX)
    return luaL_argerror(L, 3, "max_frame out of range");
  if (max_message < 0 || max_message > (lua_Integer)UINT32_MAX)
    return luaL_argerror(L, 3, "max_message out of range");
  if (max_frags < 0) return luaL_argerror(L, 3, "max_fragments out of range");
  if (!mem && fstat(fd, &st) != 0) return push_errno(L, errno);
  /* Like liolib: create it closed, then open it. */
  w = (struct lstream *)lua_newuserdata(L, sizeof *w + (size_t)rsize);
  memset(w, 0, sizeof *w);
  w->fd = -1;
  luaL_getmetatable(L, STREAM_MT);
  lua_setmetatable(L, -2);                         /* ... ws */
  w->rsize = (size_t)rsize;
  w->timeout = -1;
  w->req_ref = LUA_NOREF;
  w->in_ref = LUA_NOREF;
  w->pmd_ref = LUA_NOREF;
  rc = lightws_stream_init(&w->s, role ? LIGHTWS_CLIENT : LIGHTWS_SERVER, fd,
                           w->rbuf, w->rsize, opts);
  if (rc != 0) return push_codec_error(L, rc, 0);
  lightws_stream_set_limits(&w->s, (uint32_t)max_frame, (uint32_t)max_message);
  w->max_frags = max_frags;
  if (mem) {
    w->mem = 1;
    w->io.read = mem_read;
    w->io.writev = mem_writev;
    w->io.ctx = w;
    lightws_stream_set_io(&w->s, &w->io);
  } else if (!S_ISSOCK(st.st_mode)) {
    /* the C core writes to non-sockets with writev(2), which raises
     * SIGPIPE on a pipe without reader: use a transport that cannot */
    w->io_fd = fd;
    w->io.read = nosock_read;
    w->io.writev = nosock_writev;
    w->io.ctx = &w->io_fd;
    lightws_stream_set_io(&w->s, &w->io);
  }
  {
    const char *m = opt_str(L, 3, "mask");
    if (m != NULL) {
      int mode = strcmp(m, "random") == 0 ? LIGHTWS_MASK_RANDOM
                 : strcmp(m, "fixed") == 0 ? LIGHTWS_MASK_FIXED
                 : strcmp(m, "zero") == 0 ? LIGHTWS_MASK_ZERO : -1;
      if (mode < 0) return luaL_argerror(L, 3, "mask must be random|fixed|zero");
      if (role == 1 && lightws_stream_set_mask_mode(&w->s, mode) != 0)
        return luaL_argerror(L, 3, "mask mode rejected");
    }
  }
  lua_getfield(L, 3, "own_fd");
  w->own_fd = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_getfield(L, 3, "open");
  w->hs = lua_toboolean(L, -1) ? HS_DONE : HS_NONE;
  lua_pop(L, 2);
  timeouts_arg(L, 3, &w->to, w->hs == HS_DONE ? 0 : HANDSHAKE_DEFAULT);
  if (!mem && set_nonblock(fd, 1) != 0) return push_errno(L, errno);
  /* after the descriptor is nonblocking: the C core then never waits
   * itself; wait_io() waits and ticks */
  lightws_stream_set_timeouts(&w->s, &w->to, lightws_now());
  w->fd = mem ? MEM_FD : fd;
  return 1;
}

/* ws:client_handshake(host, path, [opts]) -> response | nil, msg, code, name.
 * opts: protocols ("a, b"), origin, headers, max_head. Resumable after
 * "timeout": call again (the arguments are then ignored). */
static int m_client_handshake(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  double deadline = deadline_of(w);
  struct lightws_header hdrs[MAX_HEADERS], rh[MAX_HEADERS];
  struct lightws_response resp;
  int rc;
  if (w->s.role != LIGHTWS_CLIENT)
    return luaL_error(L, "client_handshake on a server stream");
  if (w->hs == HS_DONE) return luaL_error(L, "handshake already done");
  if (w->hs == HS_NONE) {
    struct lightws_client_options o;
    const char *host = luaL_checkstring(L, 2);
    const char *path = luaL_optstring(L, 3, "/");
    memset(&o, 0, sizeof o);
    if (!lua_isnoneornil(L, 4)) {
      luaL_checktype(L, 4, LUA_TTABLE);
      o.protocols = opt_str(L, 4, "protocols");
      o.origin = opt_str(L, 4, "origin");
      o.max_head = (size_t)opt_int(L, 4, "max_head", 0);
      lua_getfield(L, 4, "headers");               /* ... headers */
      o.num_headers = headers_arg(L, lua_gettop(L), hdrs, MAX_HEADERS);
      o.headers = hdrs;
    }
    w->pmd_want = pmd_cfg_arg(L, lua_istable(L, 4) ? 4 : 0, &w->pmd_cfg, 1);
    if (w->pmd_want) {            /* offered: the block lives from here */
      pmd_block(L, w);
      o.deflate = &w->pmd_cfg;
      o.deflate_mem = w->pmd_mem;
      o.deflate_mem_size = w->pmd_size;
    }
    rc = lightws_client_start(&w->s, host, path, &o);
    if (rc != 0 && rc != LIGHTWS_ERR_WOULDBLOCK)
      return push_stream_error(L, w, rc);
    w->hs = HS_CLIENT_SENT;
  }
  memset(&resp, 0, sizeof resp);
  resp.headers = rh;
  resp.max_headers = MAX_HEADERS;
  for (;;) {
    int r;
    rc = lightws_client_handshake(&w->s, &resp);
    if (rc == 0) break;
    if (rc != LIGHTWS_ERR_WOULDBLOCK) {
      int n = push_stream_error(L, w, rc);
      if (rc == LIGHTWS_ERR_BAD_STATUS) {          /* code = HTTP status */
        lua_pushinteger(L, resp.status);
        lua_replace(L, -3);
      }
      return n;
    }
    r = wait_stream(w, 1, deadline);
    if (r != 1) return push_wait_error(L, w, r);
  }
  w->hs = HS_DONE;
  pmd_client(L, w, &resp);
  push_response(L, &resp);
  return 1;
}

/* Picks the first protocol the client offered that `ours` lists; copies it
 * into out. Returns out or NULL. */
static const char *choose_protocol(const char *offered, size_t olen,
                                   const char *ours, char *out, size_t size) {
  size_t i = 0;
  while (offered != NULL && i < olen) {
    size_t s, e;
    const char *p;
    while (i < olen && (offered[i] == ' ' || offered[i] == ',' ||
                        offered[i] == '\t')) i++;
    s = i;
    while (i < olen && offered[i] != ',' && offered[i] != ' ' &&
           offered[i] != '\t') i++;
    e = i;
    if (e == s || e - s >= size) continue;
    for (p = ours; *p;) {
      const char *q;
      while (*p == ' ' || *p == ',' || *p == '\t') p++;
      q = p;
      while (*q && *q != ',' && *q != ' ' && *q != '\t') q++;
      if ((size_t)(q - p) == e - s && memcmp(p, offered + s, e - s) == 0) {
        memcpy(out, p, e - s);
        out[e - s] = '\0';
        return out;
      }
      p = q;
    }
  }
  return NULL;
}

/* A wait in the server handshake failed. A client too slow for the
 * handshake timeout gets one nonblocking attempt at a 408 (as
 * lightws_accept() does), and later calls return the same error. */
static int server_wait_error(lua_State *L, struct lstream *w, int r) {
  if (r == WAIT_TICK) {
    if (w->hs == HS_SERVER_READ && w->fd >= 0 &&
        w->tick_err == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) {
      uint8_t out[256];
      ssize_t n = lightws_handshake_build_error(out, sizeof out, 408, NULL, 0);
      if (n > 0 && w->xp != NULL) {              /* through TLS */
        struct iovec v;
        v.iov_base = out;
        v.iov_len = (size_t)n;
        (void)w->xp->io->writev(w->xp->io->ctx, &v, 1);
      } else if (n > 0) {
        (void)send(w->fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
      }
    }
    w->hs = HS_FAILED;
    w->reject_err = w->tick_err;
  }
  return push_wait_error(L, w, r);
}

/* ws:server_handshake([opts]) -> request | nil, msg, http_status, name.
 * opts: protocols ("a, b": the first one the client offered is chosen),
 * max_head. An invalid request is answered with its HTTP status. Resumable
 * after "timeout". */
static int m_server_handshake(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  double deadline = deadline_of(w);
  struct lightws_header rh[MAX_HEADERS];
  struct lightws_request req;
  const char *protocols = NULL;
  size_t max_head = 0;
  int rc, r;
  if (w->s.role != LIGHTWS_SERVER)
    return luaL_error(L, "server_handshake on a client stream");
  if (w->hs == HS_DONE) return luaL_error(L, "handshake already done");
  if (w->hs == HS_FAILED) return push_stream_error(L, w, w->reject_err);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    protocols = opt_str(L, 2, "protocols");
    max_head = (size_t)opt_int(L, 2, "max_head", 0);
  }
  if (w->hs == HS_NONE)
    w->pmd_want = pmd_cfg_arg(L, lua_istable(L, 2) ? 2 : 0, &w->pmd_cfg, 1);
  if (w->hs == HS_NONE) w->hs = HS_SERVER_READ;
  while (w->hs == HS_SERVER_READ) {
    memset(&req, 0, sizeof req);
    req.headers = rh;
    req.max_headers = MAX_HEADERS;
    rc = lightws_server_read_request(&w->s, &req, max_head);
    if (rc == 0) {
      char proto[128];
      const char *chosen = NULL;
      if (protocols != NULL)
        chosen = choose_protocol(req.protocol, req.protocol_len, protocols,
                                 proto, sizeof proto);
      push_request(L, &req);                       /* ... req */
      if (chosen != NULL) {
        lua_pushstring(L, chosen);
        lua_setfield(L, -2, "chosen_protocol");
      }
      w->req_ref = luaL_ref(L, LUA_REGISTRYINDEX);  /* ... */
      if (w->pmd_want) pmd_server(L, w, &req);
      rc = lightws_server_accept(&w->s, chosen, NULL, 0);
      w->hs = rc == 0 ? HS_DONE : HS_SERVER_ACCEPT;
      if (rc != 0 && rc != LIGHTWS_ERR_WOULDBLOCK)
        return push_stream_error(L, w, rc);
    } else if (rc == LIGHTWS_ERR_WOULDBLOCK) {
      r = wait_stream(w, 1, deadline);
      if (r != 1) return server_wait_error(L, w, r);
    } else if (rc == LIGHTWS_ERR_EOF || rc == LIGHTWS_ERR_SYSTEM) {
      return push_stream_error(L, w, rc);
    } else {
      int status = lightws_http_status(rc);
      w->reject_err = rc;
      w->hs = HS_SERVER_REJECT;
      if (status == 0) status = 400;
      rc = lightws_server_reject(&w->s, status, NULL, 0);
      if (rc == 0) {
        w->hs = HS_FAILED;
        return push_stream_error(L, w, w->reject_err);
      }
      if (rc != LIGHTWS_ERR_WOULDBLOCK) return push_stream_error(L, w, rc);
    }
  }
  while (w->hs == HS_SERVER_ACCEPT || w->hs == HS_SERVER_REJECT) {
    rc = w->hs == HS_SERVER_ACCEPT ? lightws_server_accept(&w->s, NULL, NULL, 0)
                                   : lightws_server_reject(&w->s, 400, NULL, 0);
    if (rc == 0) {
      if (w->hs == HS_SERVER_REJECT) {
        w->hs = HS_FAILED;
        return push_stream_error(L, w, w->reject_err);
      }
      break;
    }
    if (rc != LIGHTWS_ERR_WOULDBLOCK) return push_stream_error(L, w, rc);
    r = wait_stream(w, 0, deadline);
    if (r != 1) return server_wait_error(L, w, r);
  }
  w->hs = HS_DONE;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->req_ref);   /* ... req */
  luaL_unref(L, LUA_REGISTRYINDEX, w->req_ref);
  w->req_ref = LUA_NOREF;
  return 1;
}

static void check_open(lua_State *L, struct lstream *w) {
  if (w->hs != HS_DONE) luaL_error(L, "the opening handshake is not done");
}

/* True when a receive loop that made progress without a result should
 * return "timeout": its deadline passed and what is buffered is used up
 * (going on would read the transport). A peer sending endless empty
 * fragments or pings cannot hold a call with a timeout past it. */
static int past_deadline(const struct lstream *w, double deadline) {
  return deadline >= 0 && lightws_stream_buffered(&w->s) == 0 &&
         now_mono() >= deadline;
}

static int push_frag_error(lua_State *L, struct lstream *w) {
  lua_pushnil(L);
  lua_pushfstring(L, "message in more than %d fragments (max_fragments)",
                  (int)(w->max_frags > INT_MAX ? INT_MAX : w->max_frags));
  lua_pushinteger(L, LIGHTWS_CLOSE_MESSAGE_TOO_BIG);
  lua_pushliteral(L, "too_many_fragments");
  return 4;
}

/* Counts the frames of the message a data chunk belongs to. Past
 * max_fragments the connection fails with 1009 (the close is queued and
 * sent as far as the transport allows now; ws:close() finishes it) and
 * every later read returns the same error. Returns 0 or the number of
 * values pushed. */
static int count_frame(lua_State *L, struct lstream *w,
                       const struct lightws_chunk *c) {
  static const char reason[] = "too many fragments";
  if (c->message_end) {
    w->frags = 0;
    return 0;
  }
  if (!c->frame_end) return 0;
  w->frags++;
  if (w->max_frags == 0 || w->frags < w->max_frags) return 0;
  w->frag_failed = 1;
  msg_free(w);
  (void)lightws_stream_close(&w->s, LIGHTWS_CLOSE_MESSAGE_TOO_BIG, reason,
                             sizeof reason - 1);
  (void)lightws_stream_flush(&w->s);
  return push_frag_error(L, w);
}

/* Appends to the message being assembled; doubling growth, so a message
 * in n fragments costs O(size) copies and O(log size) reallocations. */
static void msg_append(lua_State *L, struct lstream *w, const uint8_t *p,
                       size_t n) {
  if (n > w->mcap - w->mlen) {
    size_t cap = w->mcap ? w->mcap : 4096;
    char *nb;
    while (n > cap - w->mlen) {
      if (cap > ((size_t)-1) / 2) luaL_error(L, "not enough memory");
      cap *= 2;
    }
    nb = (char *)realloc(w->mbuf, cap);
    if (nb == NULL) luaL_error(L, "not enough memory");
    w->mbuf = nb;
    w->mcap = cap;
  }
  memcpy(w->mbuf + w->mlen, p, n);
  w->mlen += n;
}

/* The message is out: keep a small buffer for the next one. */
static void msg_done(struct lstream *w) {
  if (w->mcap > MSG_KEEP) {
    msg_free(w);
  } else {
    w->mlen = 0;
    w->mop = 0;
  }
}

/* The stream failed or closed while reading: the partial message goes. */
static int push_read_error(lua_State *L, struct lstream *w, int err) {
  int e = errno;
  msg_free(w);
  errno = e;
  return push_stream_error(L, w, err);
}

/* The next chunk of the stream into *c (0), waiting for it by `deadline`
 * (and the stream's own deadlines), or the number of values pushed: the
 * failure of the read (the partial message goes) or of the wait. Pongs on
 * the way are recorded for ws:last_pong(). */
static int next_chunk(lua_State *L, struct lstream *w,
                      struct lightws_chunk *c, double deadline) {
  for (;;) {
    ssize_t n = lightws_stream_recv(&w->s, c);
    keep_pong(w);
    if (n >= 0) return 0;
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      int r = wait_stream(w, 1, deadline);
      if (r != 1) return push_wait_error(L, w, r);
      continue;
    }
    return push_read_error(L, w, (int)n);
  }
}

/* ws:receive() -> data, kind ("text"|"binary")
 *               | nil, "closed", code, reason | nil, "timeout"
 *               | nil, msg, code, errname.
 * A whole message. Its fragments are copied into one growing buffer held
 * by the stream (a message in one frame is copied once, straight from the
 * receive buffer), so memory is the message size plus a constant however
 * many fragments it came in; max_message bounds the size (1009) and
 * max_fragments the number of frames. After "timeout" the part received
 * so far is kept and the next call continues it. Under no_auto_pong a ping
 * is returned as data, "ping" (also between fragments). */
static int m_receive(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  double deadline = deadline_of(w);
  check_open(L, w);
  if (w->frag_failed) return push_frag_error(L, w);
  for (;;) {
    struct lightws_chunk c;
    int k = next_chunk(L, w, &c, deadline);
    if (k != 0) return k;
    {
      if (c.opcode == LIGHTWS_OPCODE_PING) {
        lua_pushlstring(L, (const char *)c.data, c.len);
        lua_pushliteral(L, "ping");
        return 2;
      }
      if ((k = count_frame(L, w, &c)) != 0) return k;
      if (c.message_end && w->mop == 0) {          /* all in one piece */
        lua_pushlstring(L, (const char *)c.data, c.len);
        lua_pushstring(L, opcode_name(c.opcode));
        w->last_comp = chunk_compressed(w, &c);
        return 2;
      }
      if (w->mop == 0) {
        w->mop = c.opcode;
        w->mcomp = chunk_compressed(w, &c);
      }
      if (c.len) msg_append(L, w, c.data, c.len);
      if (c.message_end) {
        lua_pushlstring(L, w->mbuf ? w->mbuf : "", w->mlen);
        lua_pushstring(L, opcode_name(w->mop));
        w->last_comp = w->mcomp;
        msg_done(w);
        return 2;
      }
      if (past_deadline(w, deadline)) return push_timeout(L);
      continue;
    }
  }
}

/* ws:receive_chunk() -> data, kind, message_end
 *                     | nil, "closed", code, reason | nil, "timeout"
 *                     | nil, msg, code, errname.
 * `data` is at most one frame's payload and never crosses a message end;
 * empty fragments inside a message are skipped. What a ws:receive() that
 * timed out had assembled comes first. */
static int m_receive_chunk(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  double deadline = deadline_of(w);
  check_open(L, w);
  if (w->frag_failed) return push_frag_error(L, w);
  if (w->mlen > 0) {
    lua_pushlstring(L, w->mbuf, w->mlen);
    lua_pushstring(L, opcode_name(w->mop));
    lua_pushboolean(L, 0);
    w->last_comp = w->mcomp;
    w->mlen = 0;                 /* mop stays: the message goes on */
    return 3;
  }
  for (;;) {
    struct lightws_chunk c;
    int k = next_chunk(L, w, &c, deadline);
    if (k != 0) return k;
    {
      if (c.opcode != LIGHTWS_OPCODE_PING) {
        if ((k = count_frame(L, w, &c)) != 0) return k;
        if (c.message_end) w->mop = 0;
        if (c.len == 0 && !c.message_end) {        /* empty fragment */
          if (past_deadline(w, deadline)) return push_timeout(L);
          continue;
        }
      }
      lua_pushlstring(L, (const char *)c.data, c.len);
      lua_pushstring(L, opcode_name(c.opcode));
      lua_pushboolean(L, c.message_end);
      if (c.opcode != LIGHTWS_OPCODE_PING) w->last_comp = chunk_compressed(w, &c);
      return 3;
    }
  }
}

/* Writes what is pending after a data frame (a control frame; the head of
 * an empty frame cut short). Returns 0, 1 (timeout), LIGHTWS_ERR_BUSY when
 * a data frame of ours is cut short (only the caller's remaining payload
 * can finish it: nothing here can) or another error (< 0). */
static int finish_send(struct lstream *w, double deadline) {
  for (;;) {
    int r, rc = lightws_stream_flush(&w->s);
    if (rc != LIGHTWS_ERR_WOULDBLOCK) return rc;
    r = wait_io(w, POLLOUT, deadline);
    if (r == 0) return 1;
    if (r == WAIT_TICK) return w->tick_err;
    if (r < 0) return LIGHTWS_ERR_SYSTEM;
  }
}

/* ws:send(data, [kind="binary"], [more | {more=, compress=}]) -> #data
 *   | nil, "timeout", sent | nil, msg, code, errname.
 * One frame; `more` = true sends a fragment (fin = 0) of a message whose
 * next fragments are sent with the same kind; {compress = false} sends the
 * message uncompressed under permessage-deflate (read on its first frame).
 * After "timeout" the frame is in progress: call send again with
 * data:sub(sent + 1) (with permessage-deflate `sent` counts bytes taken by
 * the compressor; when it is #data, an empty send finishes writing the
 * message's frames, and starts no new message). */
static int m_send(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  size_t len, off = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  int op = opcode_arg(L, 3, LIGHTWS_OPCODE_BINARY);
  unsigned flags = 0;
  double deadline = deadline_of(w);
  int rc;
  if (lua_istable(L, 4)) {       /* {more = bool, compress = bool} */
    if (opt_bool(L, 4, "more")) flags |= LIGHTWS_SEND_FRAGMENT;
    lua_getfield(L, 4, "compress");
    if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
      flags |= LIGHTWS_SEND_NO_COMPRESS;
    lua_pop(L, 1);
  } else if (lua_toboolean(L, 4)) {
    flags |= LIGHTWS_SEND_FRAGMENT;
  }
  check_open(L, w);
  if (w->send_rest) {            /* the rest of a send that timed out */
    rc = finish_send(w, deadline);
    if (rc == 1) {
      push_timeout(L);
      lua_pushinteger(L, 0);
      return 3;
    }
    if (rc < 0) return push_stream_error(L, w, rc);
    w->send_rest = 0;
    if (len == 0) {
      lua_pushinteger(L, 0);
      return 1;
    }
  }
  luaL_argcheck(L, op == LIGHTWS_OPCODE_TEXT || op == LIGHTWS_OPCODE_BINARY,
                3, "kind must be \"text\" or \"binary\"");
  for (;;) {
    ssize_t n = lightws_stream_send(&w->s, op, data + off, len - off, flags);
    if (n >= 0) {
      off += (size_t)n;
      if (off == len) break;
      continue;                  /* n > 0: a nonblocking send moved bytes */
    }
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      int r = wait_io(w, POLLOUT, deadline);
      if (r < 0) return push_wait_error(L, w, r);
      if (r == 0) {
        push_timeout(L);
        lua_pushinteger(L, (lua_Integer)off);
        return 3;
      }
      continue;
    }
    return push_stream_error(L, w, (int)n);
  }
  rc = finish_send(w, deadline);
  if (rc == 1) {
    w->send_rest = 1;
    push_timeout(L);
    lua_pushinteger(L, (lua_Integer)off);
    return 3;
  }
  if (rc < 0) return push_stream_error(L, w, rc);
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

static int control(lua_State *L, int ping) {
  struct lstream *w = check_stream(L, 1);
  size_t len;
  const char *data = luaL_optlstring(L, 2, "", &len);
  double deadline = deadline_of(w);
  check_open(L, w);
  luaL_argcheck(L, len <= LIGHTWS_CONTROL_MAX, 2, "over 125 bytes");
  for (;;) {
    int rc = ping ? lightws_stream_ping(&w->s, data, len)
                  : lightws_stream_pong(&w->s, data, len);
    if (rc == 0) break;
    if (rc == LIGHTWS_ERR_WOULDBLOCK) {
      /* the slot holds an earlier control frame; WAIT_BUSY: it waits
       * behind a data frame cut short, which only a send can finish */
      int r = wait_stream(w, 0, deadline);
      if (r != 1) return push_wait_error(L, w, r);
      continue;
    }
    return push_stream_error(L, w, rc);
  }
  for (;;) {
    int rc = lightws_stream_flush(&w->s), r;
    if (rc == 0 || rc == LIGHTWS_ERR_BUSY) break;  /* BUSY: goes out later */
    if (rc != LIGHTWS_ERR_WOULDBLOCK) return push_stream_error(L, w, rc);
    r = wait_io(w, POLLOUT, deadline);
    if (r != 1) return push_wait_error(L, w, r);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:ping([data]) / ws:pong([data]) -> true | nil, msg, ... */
static int m_ping(lua_State *L) { return control(L, 1); }
static int m_pong(lua_State *L) { return control(L, 0); }

/* ws:last_pong() -> data | nil: the payload of the last pong received
 * (each pong is returned once). */
static int m_last_pong(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (!w->has_pong) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, (const char *)w->pong, w->pong_len);
  w->has_pong = 0;
  return 1;
}

/* Queues our close frame and writes it out by `deadline`. Returns 0, 1
 * (timeout), LIGHTWS_ERR_BUSY (a data frame of ours is cut short: the
 * close can never go out after it) or another error. */
static int send_close(struct lstream *w, unsigned code, const char *reason,
                      size_t rlen, double deadline) {
  for (;;) {
    int r, rc = lightws_stream_close(&w->s, code, reason, rlen);
    if (rc == 0) return finish_send(w, deadline);
    if (rc != LIGHTWS_ERR_WOULDBLOCK) return rc;
    r = wait_stream(w, 0, deadline);   /* the slot is busy */
    if (r == WAIT_BUSY) return LIGHTWS_ERR_BUSY;
    if (r == 0) return 1;
    if (r < 0) return LIGHTWS_ERR_SYSTEM;
  }
}

/* ws:close([code=1000], [reason=""]) -> true, peer_code, peer_reason
 *   | nil, msg, ...: the close handshake (§7.1.2): sends a close frame,
 * drains data until the peer's close (or EOF), then closes the descriptor
 * (when owned). Waits at most the stream's timeout, or its close_timeout
 * (nil, msg, 0, "close_timeout"), or 10 s without either. The stream is
 * closed afterwards in every case, except a memory stream: there close
 * only queues the close frame (ws:output()) and the stream stays readable
 * for the peer's answer (ws:frame()). When a data frame of ours
 * was cut short (a send that failed or timed out and was not continued)
 * the close frame cannot be sent (it would land inside that frame): the
 * transport is shut down at once and close returns nil, msg, 1006, "busy". */
static int m_close(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  lua_Integer code = luaL_optinteger(L, 2, LIGHTWS_CLOSE_NORMAL);
  size_t rlen;
  const char *reason = luaL_optlstring(L, 3, "", &rlen);
  double deadline;
  int rc, nret;
  if (w->fd == CLOSED_FD) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  /* without a timeout the wait for the peer's close is capped, so a peer
   * that never answers cannot hang the caller (§7.1.1 lets us close): by
   * the stream's close_timeout if set (CLOSE_TIMEOUT), else 10 s */
  if (w->timeout >= 0) deadline = now_mono() + w->timeout;
  else if (w->to.close) deadline = -1;
  else deadline = now_mono() + CLOSE_WAIT_DEFAULT;
  if (w->hs != HS_DONE) {
    msg_free(w);
    close_fd_of(w);
    lua_pushboolean(L, 1);
    return 1;
  }
  luaL_argcheck(L, code == 0 || lightws_close_code_valid((unsigned)code), 2,
                "close code may not be sent");
  luaL_argcheck(L, rlen <= 123, 3, "reason over 123 bytes");
  luaL_argcheck(L, rlen == 0 || code != 0, 3, "a reason needs a code");
  if (w->frag_failed) {      /* the 1009 close may not have been queued yet */
    code = LIGHTWS_CLOSE_MESSAGE_TOO_BIG;
    reason = "too many fragments";
    rlen = strlen(reason);
  }
  rc = send_close(w, (unsigned)code, reason, rlen, deadline);
  if (rc == LIGHTWS_ERR_INVALID) return luaL_argerror(L, 3, "reason is not UTF-8");
  msg_free(w);
  if (w->mem) {              /* the close frame is in ws:output(); the
                                stream stays readable (ws:frame() drains
                                to the peer's close, under close_timeout) */
    if (rc < 0 && rc != LIGHTWS_ERR_CLOSED) return push_stream_error(L, w, rc);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == LIGHTWS_ERR_BUSY) {
    shutdown(w->fd, SHUT_RDWR);        /* not a socket: ENOTSOCK, fine */
    close_fd_of(w);
    lua_pushnil(L);
    lua_pushliteral(L, "close frame not sent: a data frame was cut short "
                       "(a send failed or timed out)");
    lua_pushinteger(L, LIGHTWS_CLOSE_ABNORMAL);
    lua_pushliteral(L, "busy");
    return 4;
  }
  /* drain until the peer's close answers ours, by the deadline */
  for (;;) {
    struct lightws_chunk c;
    ssize_t n;
    if (rc != 0 && rc != LIGHTWS_ERR_CLOSED) {
      nret = rc == 1 ? push_timeout(L) : push_stream_error(L, w, rc);
      break;
    }
    n = lightws_stream_recv(&w->s, &c);
    if (n >= 0) {
      if (now_mono() >= deadline) rc = 1;  /* a peer sending on and on */
      continue;
    }
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      int r = wait_stream(w, 1, deadline);
      rc = r == 1 ? 0 : r == 0 ? 1 : r == WAIT_BUSY ? LIGHTWS_ERR_BUSY
           : r == WAIT_TICK ? w->tick_err : LIGHTWS_ERR_SYSTEM;
      continue;
    }
    if (n == LIGHTWS_ERR_CLOSED) {
      size_t rl = 0;
      const char *pr = lightws_stream_close_reason(&w->s, &rl);
      lua_pushboolean(L, 1);
      lua_pushinteger(L, lightws_stream_close_code(&w->s));
      lua_pushlstring(L, pr ? pr : "", pr ? rl : 0);
      nret = 3;
    } else {
      nret = push_stream_error(L, w, (int)n);
    }
    break;
  }
  close_fd_of(w);
  return nret;
}

/* __gc / __close: closes the descriptor without a close handshake. */
static int m_gc(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (w->req_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->req_ref);
    w->req_ref = LUA_NOREF;
  }
  msg_free(w);
  xp_finish(w, 0);
  close_fd_of(w);
  if (w->xp_ref > 0) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->xp_ref);
    w->xp_ref = 0;
  }
  if (w->in_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, w->in_ref);
    w->in_ref = LUA_NOREF;
  }
  free(w->obuf);
  w->obuf = NULL;
  w->olen = w->ocap = 0;
  pmd_drop(L, w);   /* the C stream is closed: nothing reaches the block */
  return 0;
}

static int m_tostring(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (w->fd == CLOSED_FD)
    lua_pushliteral(L, "lightws.stream (closed)");
  else if (w->mem)
    lua_pushfstring(L, "lightws.stream (%s, memory%s)",
                    w->s.role == LIGHTWS_CLIENT ? "client" : "server",
                    w->hs != HS_DONE ? ", handshake" : "");
  else
    lua_pushfstring(L, "lightws.stream (%s fd %d%s)",
                    w->s.role == LIGHTWS_CLIENT ? "client" : "server", w->fd,
                    w->hs != HS_DONE ? ", handshake" : "");
  return 1;
}

/* ws:settimeout(seconds | nil): nil or negative waits forever. */
static int m_settimeout(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  w->timeout = timeout_arg(L, 2);
  lua_settop(L, 1);
  return 1;
}

static int m_gettimeout(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  if (w->timeout < 0) lua_pushnil(L);
  else lua_pushnumber(L, w->timeout);
  return 1;
}

/* ws:getfd() -> the descriptor, -1 once closed, nil for a memory stream. */
static int m_getfd(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (w->fd == MEM_FD) lua_pushnil(L);
  else lua_pushinteger(L, w->fd);
  return 1;
}

/* ws:status() -> "open" | "closing" | "closed", peer close code, error
 * name or nil. */
static int m_status(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  int c, e;
  if (w->fd == CLOSED_FD) {
    lua_pushliteral(L, "closed");
    return 1;
  }
  c = lightws_stream_closing(&w->s);
  e = lightws_stream_error(&w->s);
  lua_pushstring(L, w->hs != HS_DONE ? "handshake" : c == 2 ? "closed"
                                     : c == 1 ? "closing" : "open");
  lua_pushinteger(L, lightws_stream_close_code(&w->s));
  if (e != 0) {
    char name[40];
    errname_lower(e, name, sizeof name);
    lua_pushstring(L, name);
  } else {
    lua_pushnil(L);
  }
  return 3;
}

/* ws:feed(bytes): hands bytes read elsewhere (past a handshake) to the
 * stream; true or nil, "nospace". */
static int m_feed(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  int rc = lightws_stream_feed(&w->s, (const uint8_t *)p, len);
  if (rc != 0) return push_codec_error(L, rc, 0);
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------ time */

/* core.now() -> seconds on the clock of ws:deadline() (CLOCK_MONOTONIC). */
static int l_now(lua_State *L) {
  lua_pushnumber(L, now_mono());
  return 1;
}

/* ws:set_timeouts({handshake_timeout=, idle_timeout=, ping_interval=,
 * ping_timeout=, close_timeout=}) -> ws: replaces the stream's timeouts
 * (seconds; missing ones are off) and restarts their clocks. */
static int m_set_timeouts(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  timeouts_arg(L, 2, &w->to, 0);
  lightws_stream_set_timeouts(&w->s, &w->to, lightws_now());
  lua_settop(L, 1);
  return 1;
}

/* ws:deadline() -> when ws:tick() must next run (core.now() seconds), or
 * nil: none. */
static int m_deadline(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  uint64_t d = lightws_stream_deadline(&w->s);
  if (d == LIGHTWS_NO_DEADLINE) lua_pushnil(L);
  else lua_pushnumber(L, (double)d / 1000.0);
  return 1;
}

/* ws:tick() -> true | nil, msg, code, errname: acts on what is due now
 * (sends the keepalive ping, or fails the stream with a timeout error,
 * its close frame sent as far as the transport takes it without waiting).
 * Early or extra ticks do nothing. The blocking calls tick by themselves
 * while they wait. */
static int m_tick(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  int rc = tick_now(w);
  if (rc < 0) return push_stream_error(L, w, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:rtt() -> seconds of the last keepalive ping's round trip, or nil
 * before the first was answered. */
static int m_rtt(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  uint32_t us = lightws_stream_rtt(&w->s);
  if (us == 0) lua_pushnil(L);
  else lua_pushnumber(L, (double)us / 1e6);
  return 1;
}

/* ------------------------------------------------- the memory transport */

static struct lstream *check_mem(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (!w->mem) luaL_error(L, "not a memory stream (core.stream(nil, ...))");
  return w;
}

/* ws:input(bytes | nil) -> ws: bytes received by the caller's transport,
 * read by the next stream call (added to what is left); nil: the
 * transport ended (EOF). */
static int m_input(lua_State *L) {
  struct lstream *w = check_mem(L);
  if (lua_isnoneornil(L, 2)) {
    w->in_eof = 1;
    lua_settop(L, 1);
    return 1;
  }
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  if (w->in_off < w->in_len) {                     /* keep the rest */
    lua_pushlstring(L, w->in + w->in_off, w->in_len - w->in_off);
    lua_insert(L, 2);
    lua_concat(L, 2);
  }
  if (w->in_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, w->in_ref);
  w->in = lua_tolstring(L, 2, &w->in_len);
  w->in_off = 0;
  w->in_ref = luaL_ref(L, LUA_REGISTRYINDEX);      /* keeps it alive */
  lua_settop(L, 1);
  return 1;
}

/* ws:output() -> bytes the stream wrote (frames, pongs, keepalive pings,
 * the handshake) for the caller to send, or nil when there are none. */
static int m_output(lua_State *L) {
  struct lstream *w = check_mem(L);
  if (w->olen == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, w->obuf, w->olen);
  w->olen = 0;
  if (w->ocap > MSG_KEEP) {
    free(w->obuf);
    w->obuf = NULL;
    w->ocap = 0;
  }
  return 1;
}

/* ws:buffered() -> bytes received and not yet read by the stream (its
 * receive buffer, and for a memory stream the input left). */
static int m_buffered(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  lua_pushinteger(L, (lua_Integer)(lightws_stream_buffered(&w->s) +
                                   (w->in_len - w->in_off) +
                                   (w->xp ? w->xp->buffered(w->xp->ctx) : 0)));
  return 1;
}

/* ws:_xport(xport, anchor) -> stream pointer, fd: puts a new descriptor
 * stream (before its handshake) over the transport of another C module
 * (lightws_xport.h; lightws.tls_core), whose state `anchor` lives as long
 * as the stream. ws:_xport() -> that anchor, or nil. */
static int m_xport(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  const struct lightws_lua_xport *xp;
  if (lua_isnoneornil(L, 2)) {
    if (w->xp_ref > 0) lua_rawgeti(L, LUA_REGISTRYINDEX, w->xp_ref);
    else lua_pushnil(L);
    return 1;
  }
  check_stream(L, 1);
  luaL_checktype(L, 2, LUA_TLIGHTUSERDATA);
  luaL_checkany(L, 3);
  xp = (const struct lightws_lua_xport *)lua_touserdata(L, 2);
  if (xp->magic != LIGHTWS_LUA_XPORT_MAGIC ||
      xp->stream_size != (unsigned)sizeof(struct lightws_stream))
    return luaL_error(L, "transport module from another lightws build");
  if (w->mem || w->xp_ref > 0 || w->hs != HS_NONE)
    return luaL_error(L, "a transport is set once, on a new descriptor stream");
  lightws_stream_set_io(&w->s, xp->io);
  lua_pushvalue(L, 3);
  w->xp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->xp = xp;
  lua_pushlightuserdata(L, &w->s);
  lua_pushinteger(L, w->fd);
  return 2;
}

/* Pushes a whole frame of ws:frame(): data, kind, fin. */
static int push_frame(lua_State *L, const char *data, size_t len,
                      const char *kind, int fin) {
  lua_pushlstring(L, data, len);
  lua_pushstring(L, kind);
  lua_pushboolean(L, fin);
  return 3;
}

/* ws:frame() -> data, kind, fin | nil, "closed", code, reason
 *             | nil, "timeout" | nil, "input" | nil, msg, code, errname.
 * One whole frame, as lua-resty-websocket's recv_frame reads them: kind is
 * "text"/"binary" for a message's first frame, "continuation" for the
 * next ones, "pong", and "ping" under no_auto_pong; fin is false inside a
 * fragmented message. The C core checks the frames (masking, limits,
 * UTF-8 across fragments, close codes), answers the peer's close and
 * watches the keepalive pongs. Do not mix with ws:receive(). */
static int m_frame(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  double deadline = deadline_of(w);
  check_open(L, w);
  for (;;) {
    struct lightws_chunk c;
    const uint8_t *pong;
    size_t plen = 0;
    const char *kind;
    if (w->held) {
      c = w->held_chunk;
      w->held = 0;
    } else {
      ssize_t n = lightws_stream_recv(&w->s, &c);
      pong = lightws_stream_pong_data(&w->s, &plen);
      if (pong != NULL) {
        if (n >= 0) {            /* the chunk stays valid: nothing reads */
          w->held_chunk = c;
          w->held = 1;
        }
        return push_frame(L, (const char *)pong, plen, "pong", 1);
      }
      if (n < 0) {
        if (n == LIGHTWS_ERR_WOULDBLOCK) {
          int r = wait_stream(w, 1, deadline);
          if (r != 1) return push_wait_error(L, w, r);
          continue;
        }
        return push_read_error(L, w, (int)n);
      }
    }
    if (c.opcode == LIGHTWS_OPCODE_PING)
      return push_frame(L, (const char *)c.data, c.len, "ping", 1);
    if (!c.frame_end) {          /* a frame larger than what was read */
      if (c.len) msg_append(L, w, c.data, c.len);
      continue;
    }
    kind = w->fmop ? "continuation" : opcode_name(c.opcode);
    w->fmop = c.message_end ? 0 : c.opcode;
    /* a compressed message comes as one frame: its inflated bytes (frames
     * are not visible in them; max_message bounds it) */
    w->last_comp = chunk_compressed(w, &c);
    if (w->mlen == 0) return push_frame(L, (const char *)c.data, c.len, kind,
                                        c.message_end);
    if (c.len) msg_append(L, w, c.data, c.len);
    push_frame(L, w->mbuf, w->mlen, kind, c.message_end);
    msg_done(w);
    return 3;
  }
}

/* ws:set_deflate(agreed, [opts]) -> true | nil, msg, code, errname: turns
 * permessage-deflate on for an open stream whose handshake happened
 * elsewhere (lightws.wrap, memory streams): `agreed` as ws:extensions()
 * gives it (or core.pmd_accept / core.pmd_check_response), opts the
 * deflate options of lightws.connect (their deflate key is ignored).
 * Before the first read or write. The block is made here, once. */
static int m_set_deflate(lua_State *L) {
  struct lstream *w = check_stream(L, 1);
  struct lightws_pmd_params a;
  int rc;
  check_open(L, w);
  params_arg(L, 2, &a);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (w->pmd_on) return push_stream_error(L, w, LIGHTWS_ERR_INVALID);
  if (!lightws_pmd_available()) return push_stream_error(L, w, LIGHTWS_ERR_UNSUPPORTED);
  (void)pmd_cfg_arg(L, lua_istable(L, 3) ? 3 : 0, &w->pmd_cfg, 0);
  pmd_block(L, w);
  rc = lightws_stream_set_deflate(&w->s, &a, &w->pmd_cfg, w->pmd_mem,
                                  w->pmd_size);
  if (rc != 0) {
    pmd_drop(L, w);
    return push_stream_error(L, w, rc);
  }
  w->pmd_on = 1;
  w->pmd_agreed = a;
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:compressed() -> boolean: the last message ws:receive() returned (the
 * last chunk of ws:receive_chunk(), the last frame of ws:frame()) came
 * compressed (RSV1, permessage-deflate). */
static int m_compressed(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  lua_pushboolean(L, w->last_comp);
  return 1;
}

/* ws:extensions() -> {permessage-deflate parameters} | nil: what the
 * opening handshake agreed (nil: no compression). */
static int m_extensions(lua_State *L) {
  struct lstream *w = (struct lstream *)luaL_checkudata(L, 1, STREAM_MT);
  if (!w->pmd_on) {
    lua_pushnil(L);
    return 1;
  }
  push_params(L, &w->pmd_agreed);
  return 1;
}

/* core.pmd_available() -> boolean (built with zlib). */
static int l_pmd_available(lua_State *L) {
  lua_pushboolean(L, lightws_pmd_available());
  return 1;
}

static void pmd_opts(lua_State *L, int i, struct lightws_pmd_config *cfg) {
  if (!lua_isnoneornil(L, i)) luaL_checktype(L, i, LUA_TTABLE);
  (void)pmd_cfg_arg(L, lua_istable(L, i) ? i : 0, cfg, 0);
}

/* core.pmd_mem_size([opts]) -> bytes of a connection's block. */
static int l_pmd_mem_size(lua_State *L) {
  struct lightws_pmd_config cfg;
  pmd_opts(L, 1, &cfg);
  lua_pushinteger(L, (lua_Integer)lightws_pmd_mem_size(&cfg));
  return 1;
}

/* core.pmd_offer([opts]) -> Sec-WebSocket-Extensions value | nil, errname. */
static int l_pmd_offer(lua_State *L) {
  struct lightws_pmd_config cfg;
  char out[256];
  ssize_t n;
  pmd_opts(L, 1, &cfg);
  n = lightws_pmd_offer(out, sizeof out, &cfg);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, out, (size_t)n);
  return 1;
}

/* core.pmd_accept(value, [opts]) -> agreed, response value | false
 * (declined) | nil, errname. */
static int l_pmd_accept(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params a;
  char out[256];
  int r;
  ssize_t n;
  pmd_opts(L, 2, &cfg);
  memset(&a, 0, sizeof a);
  r = lightws_pmd_accept(v, len, &cfg, &a);
  if (r < 0) return push_codec_error(L, r, 0);
  if (r == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  push_params(L, &a);
  n = lightws_pmd_response(out, sizeof out, &a);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, out, (size_t)n);
  return 2;
}

/* core.pmd_response(agreed) -> Sec-WebSocket-Extensions value. */
static int l_pmd_response(lua_State *L) {
  struct lightws_pmd_params a;
  char out[256];
  ssize_t n;
  params_arg(L, 1, &a);
  n = lightws_pmd_response(out, sizeof out, &a);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, out, (size_t)n);
  return 1;
}

/* core.pmd_check_response(value, [opts]) -> agreed | nil, errname: the
 * server's answer to core.pmd_offer(opts). */
static int l_pmd_check_response(lua_State *L) {
  size_t len;
  const char *v = luaL_checklstring(L, 1, &len);
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params a;
  int r;
  pmd_opts(L, 2, &cfg);
  memset(&a, 0, sizeof a);
  r = lightws_pmd_check_response(v, len, &cfg, &a);
  if (r < 0) return push_codec_error(L, r, 0);
  push_params(L, &a);
  return 1;
}

/* ------------------------------------------------------------ the codec */

/* core.encode_head(fin, opcode, length, [mask_key], [rsv]) -> string
 *   | nil, "invalid". */
static int l_encode_head(lua_State *L) {
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  lua_Integer length;
  ssize_t n;
  memset(&f, 0, sizeof f);
  f.fin = (uint8_t)lua_toboolean(L, 1);
  f.opcode = (uint8_t)opcode_arg(L, 2, -1);
  length = luaL_checkinteger(L, 3);
  luaL_argcheck(L, length >= 0, 3, "negative length");
  f.length = (uint64_t)length;
  if (!lua_isnoneornil(L, 4)) {
    size_t kl;
    const char *k = luaL_checklstring(L, 4, &kl);
    luaL_argcheck(L, kl == 4, 4, "mask key must be 4 bytes");
    memcpy(f.mask, k, 4);
    f.masked = 1;
  }
  f.rsv = (uint8_t)luaL_optinteger(L, 5, 0);
  n = lightws_frame_encode(&f, out, sizeof out);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* core.decode_head(s, [init=1], [expect], [allow_rsv1]) -> fin, opcode,
 * masked, length, key|nil, header_len, rsv | nil, "incomplete", needed |
 * nil, errname, close_code. `expect` is "masked" (server), "unmasked"
 * (client) or nil; allow_rsv1: RSV1 is an extension's (permessage-deflate);
 * `needed` is how many more bytes the head needs (as far as known). */
static int l_decode_head(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer init = luaL_optinteger(L, 2, 1);
  static const char *const ex[] = {"any", "masked", "unmasked", NULL};
  int e = luaL_checkoption(L, 3, "any", ex);
  unsigned flags = e == 1 ? LIGHTWS_DECODE_EXPECT_MASKED
                   : e == 2 ? LIGHTWS_DECODE_EXPECT_UNMASKED : 0;
  struct lightws_frame f;
  if (lua_toboolean(L, 4)) flags |= LIGHTWS_DECODE_ALLOW_RSV1;
  ssize_t n;
  luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 2, "out of range");
  memset(&f, 0, sizeof f);
  n = lightws_frame_decode(&f, (const uint8_t *)s + init - 1,
                           len - (size_t)(init - 1), flags);
  if (n == LIGHTWS_ERR_INCOMPLETE) {
    size_t have = len - (size_t)(init - 1);
    lua_Integer need = f.header_len > have ? (lua_Integer)(f.header_len - have) : 1;
    return push_codec_error(L, (int)n, need);
  }
  if (n < 0) return push_codec_error(L, (int)n, lightws_close_code((int)n));
  lua_pushboolean(L, f.fin);
  lua_pushinteger(L, f.opcode);
  lua_pushboolean(L, f.masked);
  lua_pushinteger(L, (lua_Integer)f.length);
  if (f.masked) lua_pushlstring(L, (const char *)f.mask, 4);
  else lua_pushnil(L);
  lua_pushinteger(L, f.header_len);
  lua_pushinteger(L, f.rsv);
  return 7;
}

/* core.mask(data, key, [offset=0]) -> masked copy; `offset` is the
 * position of data's first byte in the payload (§5.3). */
static int l_mask(lua_State *L) {
  size_t len, kl, done = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *k = luaL_checklstring(L, 2, &kl);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  luaL_Buffer b;
  luaL_argcheck(L, kl == 4, 2, "mask key must be 4 bytes");
  luaL_argcheck(L, off >= 0, 3, "negative offset");
  luaL_buffinit(L, &b);
  while (done < len) {
    size_t n = len - done;
    char *p = luaL_prepbuffer(&b);
    if (n > LUAL_BUFFERSIZE) n = LUAL_BUFFERSIZE;
    lightws_mask_copy((uint8_t *)p, (const uint8_t *)s + done, n,
                      (const uint8_t *)k, (uint64_t)off + done);
    luaL_addsize(&b, n);
    done += n;
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.random(n) -> n bytes from the OS (mask keys, nonces). */
static int l_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  char key[LIGHTWS_KEY_LEN + 1];
  luaL_Buffer b;
  luaL_argcheck(L, n >= 0 && n <= 4096, 1, "out of range");
  luaL_buffinit(L, &b);
  /* Each key is base64 of 16 random OS bytes: 4 key chars carry 3 random
   * bytes, so decode them back by value. */
  while (n > 0) {
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int i;
    if (lightws_handshake_key(key) != 0) return push_errno(L, errno);
    for (i = 0; i + 4 <= 20 && n > 0; i += 4) {
      uint32_t v = 0;
      int j;
      for (j = 0; j < 4; j++)
        v = (v << 6) | (uint32_t)(strchr(b64, key[i + j]) - b64);
      for (j = 2; j >= 0 && n > 0; j--, n--)
        luaL_addchar(&b, (char)((v >> (8 * j)) & 0xFF));
    }
  }
  luaL_pushresult(&b);
  return 1;
}

/* core.mask_key() -> 4 bytes: a fresh §5.3 masking key per frame for the
 * cosocket client without a syscall per frame: xorshift64* seeded once per
 * process from the OS (and again after fork, so nginx workers forked from a
 * master that loaded the module never share a sequence). */
static int l_mask_key(lua_State *L) {
  static uint64_t state;
  static pid_t owner;
  uint64_t x;
  uint32_t k;
  if (state == 0 || owner != getpid()) {
    char key[LIGHTWS_KEY_LEN + 1];
    size_t i;
    if (lightws_handshake_key(key) != 0) return push_errno(L, errno);
    x = 0x9E3779B97F4A7C15ull;
    for (i = 0; i < LIGHTWS_KEY_LEN; i++) /* 128 random bits, mixed */
      x = (x ^ (uint8_t)key[i]) * 0x100000001B3ull;
    state = x ? x : 1;
    owner = getpid();
  }
  x = state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  state = x;
  k = (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
  lua_pushlstring(L, (const char *)&k, 4);
  return 1;
}

static int l_handshake_key(lua_State *L) {
  char key[LIGHTWS_KEY_LEN + 1];
  if (lightws_handshake_key(key) != 0) return push_errno(L, errno);
  lua_pushstring(L, key);
  return 1;
}

static int l_handshake_accept(lua_State *L) {
  size_t kl;
  const char *k = luaL_checklstring(L, 1, &kl);
  char acc[LIGHTWS_ACCEPT_LEN + 1];
  lightws_handshake_accept(k, kl, acc);
  lua_pushstring(L, acc);
  return 1;
}

/* core.build_request(host, path, key, [opts{protocols, origin, headers}])
 *   -> string | nil, errname. */
static int l_build_request(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  const char *path = luaL_optstring(L, 2, "/");
  const char *key = luaL_checkstring(L, 3);
  const char *protocols = NULL, *origin = NULL;
  struct lightws_header h[MAX_HEADERS];
  size_t nh = 0;
  uint8_t out[LIGHTWS_HANDSHAKE_HEAD_MAX];
  ssize_t n;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    protocols = opt_str(L, 4, "protocols");
    origin = opt_str(L, 4, "origin");
    lua_getfield(L, 4, "headers");
    nh = headers_arg(L, lua_gettop(L), h, MAX_HEADERS);
  }
  n = lightws_handshake_build_request(out, sizeof out, host, path, key,
                                      protocols, origin, h, nh);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* core.build_response(key, [protocol], [headers]) -> string | nil, errname */
static int l_build_response(lua_State *L) {
  size_t kl;
  const char *key = luaL_checklstring(L, 1, &kl);
  const char *protocol = luaL_optstring(L, 2, NULL);
  struct lightws_header h[MAX_HEADERS];
  size_t nh = headers_arg(L, 3, h, MAX_HEADERS);
  uint8_t out[LIGHTWS_HANDSHAKE_HEAD_MAX];
  ssize_t n = lightws_handshake_build_response(out, sizeof out, key, kl,
                                               protocol, h, nh);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* core.build_error(status, [headers]) -> string | nil, errname */
static int l_build_error(lua_State *L) {
  int status = (int)luaL_checkinteger(L, 1);
  struct lightws_header h[MAX_HEADERS];
  size_t nh = headers_arg(L, 2, h, MAX_HEADERS);
  uint8_t out[LIGHTWS_HANDSHAKE_HEAD_MAX];
  ssize_t n = lightws_handshake_build_error(out, sizeof out, status, h, nh);
  if (n < 0) return push_codec_error(L, (int)n, 0);
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* core.parse_request(s, [max_head]) -> request table | nil, errname,
 * http_status (errname "incomplete" with status 0 when the head is not
 * complete yet). */
static int l_parse_request(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  size_t max_head = (size_t)luaL_optinteger(L, 2, 0);
  struct lightws_header h[MAX_HEADERS];
  struct lightws_request req;
  ssize_t n;
  memset(&req, 0, sizeof req);
  req.headers = h;
  req.max_headers = MAX_HEADERS;
  n = lightws_handshake_parse_request(&req, (const uint8_t *)s, len, max_head);
  if (n < 0) return push_codec_error(L, (int)n, lightws_http_status((int)n));
  push_request(L, &req);
  return 1;
}

/* core.parse_response(s, [key], [protocols], [max_head], [deflate_opts])
 * -> response table | nil, errname, status. With deflate_opts (the options
 * of core.pmd_offer that were offered) a permessage-deflate answer is
 * checked and put in response.deflate (absent: declined). */
static int l_parse_response(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *key = luaL_optstring(L, 2, NULL);
  const char *protocols = luaL_optstring(L, 3, NULL);
  size_t max_head = (size_t)luaL_optinteger(L, 4, 0);
  struct lightws_header h[MAX_HEADERS];
  struct lightws_response resp;
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params a;
  int offered = !lua_isnoneornil(L, 5);
  ssize_t n;
  if (offered) pmd_opts(L, 5, &cfg);
  memset(&a, 0, sizeof a);
  memset(&resp, 0, sizeof resp);
  resp.headers = h;
  resp.max_headers = MAX_HEADERS;
  n = lightws_handshake_parse_response_ext(&resp, (const uint8_t *)s, len,
                                           max_head, key, protocols,
                                           offered ? &cfg : NULL, &a);
  if (n < 0) return push_codec_error(L, (int)n, resp.status);
  push_response(L, &resp);
  if (offered && resp.extensions != NULL) {
    push_params(L, &a);
    lua_setfield(L, -2, "deflate");
  }
  return 1;
}

/* -------------------------------------------------------- UTF-8 validator */

/* core.utf8() -> validator; v:feed(s) -> true (complete) | false (inside a
 * sequence) | nil, "utf8", 1007; v:reset(). */
static int l_utf8(lua_State *L) {
  struct lightws_utf8 *u =
      (struct lightws_utf8 *)lua_newuserdata(L, sizeof *u);
  memset(u, 0, sizeof *u);
  luaL_getmetatable(L, UTF8_MT);
  lua_setmetatable(L, -2);
  return 1;
}

static int u_feed(lua_State *L) {
  struct lightws_utf8 *u = (struct lightws_utf8 *)luaL_checkudata(L, 1, UTF8_MT);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  int rc = lightws_utf8_feed(u, (const uint8_t *)s, len);
  if (rc < 0) return push_codec_error(L, rc, lightws_close_code(rc));
  lua_pushboolean(L, rc == LIGHTWS_UTF8_VALID);
  return 1;
}

static int u_reset(lua_State *L) {
  struct lightws_utf8 *u = (struct lightws_utf8 *)luaL_checkudata(L, 1, UTF8_MT);
  memset(u, 0, sizeof *u);
  lua_settop(L, 1);
  return 1;
}

/* ------------------------------------------------------------ errors */

static int l_strerror(lua_State *L) {
  lua_pushstring(L, lightws_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_errname(lua_State *L) {
  lua_pushstring(L, lightws_errname((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_close_code_valid(lua_State *L) {
  lua_Integer c = luaL_checkinteger(L, 1);
  lua_pushboolean(L, c >= 0 && c <= 0xFFFF && lightws_close_code_valid((unsigned)c));
  return 1;
}

/* ------------------------------------------------------------ sockets */

/* Resolves host:port. A port outside [passive ? 0 : 1, 65535] is refused
 * (nil, msg, EINVAL): getaddrinfo would take it modulo 65536. */
static int resolve(lua_State *L, const char *host, lua_Integer port,
                   int passive, struct addrinfo **res) {
  struct addrinfo hints;
  char ps[16];
  int rc;
  if (port < (passive ? 0 : 1) || port > 65535) {
    char msg[64];
    snprintf(msg, sizeof msg, "port %lld out of range (%d-65535)",
             (long long)port, passive ? 0 : 1);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushinteger(L, EINVAL);
    return 3;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  snprintf(ps, sizeof ps, "%d", (int)port);
  rc = getaddrinfo(host, ps, &hints, res);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, gai_strerror(rc));
    lua_pushinteger(L, rc);
    return 3;
  }
  return 0;
}

static int sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return -1;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* core.tcp_listen(host, port, [backlog=64]) -> fd, port | nil, msg, errno.
 * Port 0 picks a free port, which is returned. */
static int l_tcp_listen(lua_State *L) {
  const char *host = luaL_optstring(L, 1, NULL);
  lua_Integer port = luaL_checkinteger(L, 2);
  int backlog = (int)luaL_optinteger(L, 3, 64);
  struct addrinfo *res, *a;
  int fd = -1, e = 0, one = 1, n;
  if ((n = resolve(L, host, port, 1, &res)) != 0) return n;
  for (a = res; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) { e = errno; continue; }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, backlog) == 0)
      break;
    e = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return push_errno(L, e);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  lua_pushinteger(L, fd);
  lua_pushinteger(L, sock_port(fd));
  return 2;
}

/* core.tcp_accept(fd, [timeout]) -> fd, addr, port | nil, "timeout"
 * | nil, msg, errno. The new descriptor has TCP_NODELAY set. */
static int l_tcp_accept(lua_State *L) {
  int lfd = fd_arg(L, 1);
  double t = timeout_arg(L, 2);
  double deadline = t < 0 ? -1 : now_mono() + t;
  struct sockaddr_storage ss;
  socklen_t sl;
  char addr[INET6_ADDRSTRLEN] = "";
  int fd, one = 1, port = 0;
  if (lfd < 0) return push_errno(L, EBADF);
  for (;;) {
    int r = wait_fd(lfd, POLLIN, deadline);
    if (r == 0) return push_timeout(L);
    if (r < 0) return push_errno(L, errno);
    sl = sizeof ss;
    fd = accept(lfd, (struct sockaddr *)&ss, &sl);
    if (fd >= 0) break;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
        errno != ECONNABORTED)
      return push_errno(L, errno);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
    port = ntohs(s4->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
    port = ntohs(s6->sin6_port);
  }
  lua_pushinteger(L, fd);
  lua_pushstring(L, addr);
  lua_pushinteger(L, port);
  return 3;
}

/* core.tcp_connect(host, port) -> fd | nil, msg, errno (blocking connect;
 * TCP_NODELAY set). */
static int l_tcp_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  struct addrinfo *res, *a;
  int fd = -1, e = ECONNREFUSED, one = 1, n;
  if ((n = resolve(L, host, port, 0, &res)) != 0) return n;
  for (a = res; a != NULL; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) { e = errno; continue; }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    e = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) return push_errno(L, e);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  lua_pushinteger(L, fd);
  return 1;
}

/* core.socketpair() -> fd1, fd2 (AF_UNIX stream pair). */
static int l_socketpair(lua_State *L) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return push_errno(L, errno);
  lua_pushinteger(L, sv[0]);
  lua_pushinteger(L, sv[1]);
  return 2;
}

static int l_close_fd(lua_State *L) {
  int fd = fd_arg(L, 1);
  if (fd < 0) return push_errno(L, EBADF);
  if (close(fd) != 0) return push_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.write_fd(fd, s) -> bytes written | nil, msg, errno (one write).
 * Never raises SIGPIPE: send(2) with MSG_NOSIGNAL on a socket, a write
 * with SIGPIPE blocked on anything else; a gone reader is EPIPE. */
static int l_write_fd(lua_State *L) {
  int fd = fd_arg(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  ssize_t n;
  if (fd < 0) return push_errno(L, EBADF);
  do n = send(fd, s, len, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ENOTSOCK) {
    struct iovec iov;
    iov.iov_base = (void *)s;
    iov.iov_len = len;
    do n = writev_nosigpipe(fd, &iov, 1); while (n < 0 && errno == EINTR);
  }
  if (n < 0) return push_errno(L, errno);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* core.read_fd(fd, max, [timeout]) -> data ("" at EOF) | nil, "timeout"
 * | nil, msg, errno (one read). */
static int l_read_fd(lua_State *L) {
  int fd = fd_arg(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  double t = timeout_arg(L, 3);
  luaL_Buffer b;
  char *p;
  ssize_t n;
  int r;
  luaL_argcheck(L, max > 0, 2, "must be positive");
  if (fd < 0) return push_errno(L, EBADF);
  if (max > LUAL_BUFFERSIZE) max = LUAL_BUFFERSIZE;
  r = wait_fd(fd, POLLIN, t < 0 ? -1 : now_mono() + t);
  if (r == 0) return push_timeout(L);
  if (r < 0) return push_errno(L, errno);
  luaL_buffinit(L, &b);
  p = luaL_prepbuffer(&b);
  do n = read(fd, p, (size_t)max); while (n < 0 && errno == EINTR);
  if (n < 0) return push_errno(L, errno);
  luaL_addsize(&b, (size_t)n);
  luaL_pushresult(&b);
  return 1;
}

static int l_set_nonblocking(lua_State *L) {
  int fd = fd_arg(L, 1);
  if (fd < 0) return push_errno(L, EBADF);
  if (set_nonblock(fd, lua_isnone(L, 2) || lua_toboolean(L, 2)) != 0)
    return push_errno(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.fork() -> pid (0 in the child) | nil, msg, errno. Sets SIGCHLD to
 * SIG_IGN first, so children are reaped by the kernel (servers forking per
 * connection). */
static int l_fork(lua_State *L) {
  pid_t pid;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGCHLD, &sa, NULL);
  pid = fork();
  if (pid < 0) return push_errno(L, errno);
  lua_pushinteger(L, pid);
  return 1;
}

/* core.poll(fds, [timeout]) -> list of indexes of readable fds (empty on
 * timeout) | nil, msg, errno. */
static int l_poll(lua_State *L) {
  struct pollfd p[256];
  int n, i, r, k = 1;
  double t = timeout_arg(L, 2);
  double deadline = t < 0 ? -1 : now_mono() + t;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = (int)lua_rawlen(L, 1);
  luaL_argcheck(L, n <= 256, 1, "at most 256 descriptors");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    p[i].fd = fd_arg(L, -1);
    p[i].events = POLLIN;
    p[i].revents = 0;
    lua_pop(L, 1);
    if (p[i].fd < 0) return push_errno(L, EBADF);  /* poll would skip it */
  }
  for (;;) {
    int ms = deadline < 0 ? -1 : poll_ms(deadline - now_mono());
    r = poll(p, (nfds_t)n, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return push_errno(L, errno);
    if (r > 0 || deadline < 0 || now_mono() >= deadline) break;
  }
  lua_newtable(L);
  for (i = 0; i < n; i++)
    if (p[i].revents) {
      lua_pushinteger(L, i + 1);
      lua_rawseti(L, -2, k++);
    }
  return 1;
}

/* ------------------------------------------------------------ module */

static const luaL_Reg stream_methods[] = {
    {"client_handshake", m_client_handshake},
    {"server_handshake", m_server_handshake},
    {"receive", m_receive},
    {"receive_chunk", m_receive_chunk},
    {"send", m_send},
    {"ping", m_ping},
    {"pong", m_pong},
    {"last_pong", m_last_pong},
    {"close", m_close},
    {"settimeout", m_settimeout},
    {"gettimeout", m_gettimeout},
    {"getfd", m_getfd},
    {"status", m_status},
    {"feed", m_feed},
    {"set_timeouts", m_set_timeouts},
    {"deadline", m_deadline},
    {"tick", m_tick},
    {"rtt", m_rtt},
    {"input", m_input},
    {"output", m_output},
    {"frame", m_frame},
    {"buffered", m_buffered},
    {"_xport", m_xport},
    {"set_deflate", m_set_deflate},
    {"extensions", m_extensions},
    {"compressed", m_compressed},
    {NULL, NULL}};

static const luaL_Reg stream_meta[] = {
    {"__gc", m_gc},
#if LUA_VERSION_NUM >= 504
    {"__close", m_gc},
#endif
    {"__tostring", m_tostring},
    {NULL, NULL}};

static const luaL_Reg utf8_methods[] = {
    {"feed", u_feed}, {"reset", u_reset}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"stream", l_stream},
    {"encode_head", l_encode_head},
    {"decode_head", l_decode_head},
    {"mask", l_mask},
    {"random", l_random},
    {"mask_key", l_mask_key},
    {"handshake_key", l_handshake_key},
    {"handshake_accept", l_handshake_accept},
    {"build_request", l_build_request},
    {"build_response", l_build_response},
    {"build_error", l_build_error},
    {"parse_request", l_parse_request},
    {"parse_response", l_parse_response},
    {"utf8", l_utf8},
    {"strerror", l_strerror},
    {"errname", l_errname},
    {"close_code_valid", l_close_code_valid},
    {"tcp_listen", l_tcp_listen},
    {"tcp_accept", l_tcp_accept},
    {"tcp_connect", l_tcp_connect},
    {"socketpair", l_socketpair},
    {"close_fd", l_close_fd},
    {"write_fd", l_write_fd},
    {"read_fd", l_read_fd},
    {"set_nonblocking", l_set_nonblocking},
    {"fork", l_fork},
    {"poll", l_poll},
    {"now", l_now},
    {"pmd_available", l_pmd_available},
    {"pmd_mem_size", l_pmd_mem_size},
    {"pmd_offer", l_pmd_offer},
    {"pmd_accept", l_pmd_accept},
    {"pmd_response", l_pmd_response},
    {"pmd_check_response", l_pmd_check_response},
    {NULL, NULL}};

static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods) {
  luaL_newmetatable(L, name);          /* mt */
  if (meta != NULL) compat_setfuncs(L, meta);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");       /* 5.1 does not set it */
  lua_newtable(L);                     /* mt methods */
  compat_setfuncs(L, methods);
  lua_setfield(L, -2, "__index");      /* mt */
}

int luaopen_lightws_core(lua_State *L);

int luaopen_lightws_core(lua_State *L) {
  new_meta(L, STREAM_MT, stream_meta, stream_methods);  /* mt */
  lua_getfield(L, -1, "__index");                       /* mt methods */
  new_meta(L, UTF8_MT, NULL, utf8_methods);             /* mt methods umt */
  lua_pop(L, 1);                                        /* mt methods */
  lua_newtable(L);                                      /* mt methods M */
  compat_setfuncs(L, funcs);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "stream_methods");  /* lightws.lua adds methods here */
  lua_pushliteral(L, LIGHTWS_VERSION_STRING);
  lua_setfield(L, -2, "_VERSION");
  lua_pushstring(L, lightws_version());
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, LIGHTWS_HANDSHAKE_HEAD_MAX);
  lua_setfield(L, -2, "HEAD_MAX");
  return 1;
}
