/* SPDX-License-Identifier: MIT */
/* Shared helpers of the command-line tools: ws:// and wss:// URL parsing and TCP sockets. */
#ifndef LIGHTWS_TOOLS_COMMON_H
#define LIGHTWS_TOOLS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Built with liblightws-tls (mk/tools.mk defines LIGHTWS_TOOLS_TLS unless
 * TLS=0): wss:// and the --tls-* options work. */
#ifdef LIGHTWS_TOOLS_TLS
#define TOOL_HAVE_TLS 1
#else
#define TOOL_HAVE_TLS 0
#endif
#define TOOL_NO_TLS_MSG "wss:// needs a build with TLS (this one was made with TLS=0)"

/* A parsed ws[s]://host[:port][/path][?query] URL (RFC 6455 §3). */
struct tool_url {
  char host[256];      /* without brackets for IPv6 literals */
  char authority[300]; /* host[:port] as written: the Host header (§4.1) */
  char path[4096];     /* path and query as written, "/" when empty */
  int port;            /* 80 (ws) or 443 (wss) when absent */
  int tls;             /* 1: wss:// */
};

/* Parses `url` (ws:// or wss://; wss:// only in a build with TLS, else
 * TOOL_NO_TLS_MSG). Returns 0, or -1 with a message in `err[0..size)`. */
int tool_parse_url(const char *url, struct tool_url *u, char *err, size_t size);

/* A client's target: parses `url` into `u` (errors as tool_parse_url)
 * and, for wss://, makes the TLS client context into *ctx (system store,
 * or `cafile`; `insecure` skips verification). --cafile/--insecure without
 * wss:// is a usage error. Returns 0, or the exit status after printing
 * why with the prefix `prog`: 2 usage, 1 TLS context. */
struct ssl_ctx_st;
int tool_client_target(const char *prog, const char *url, struct tool_url *u,
                       const char *cafile, int insecure,
                       struct ssl_ctx_st **ctx);

/* Names error `err` of a stream (over `tls`, a struct lightws_tls, or
 * NULL without TLS): a TLS failure inside a stream call is
 * LIGHTWS_ERR_SYSTEM with the layer's named error kept, which this makes
 * the error. Stores its name and message, and in *reason OpenSSL's text
 * of a TLS failure ("" if none); returns the error named. */
struct lightws_tls;
int tool_err(const struct lightws_tls *tls, int err, const char **name,
             const char **msg, const char **reason);

/* The peer's close reason of `s` for a log line, NUL-terminated in
 * out[0..size): controls become '?' (the reason is UTF-8, §5.5.1, but
 * may hold a newline). */
struct lightws_stream;
void tool_close_reason(const struct lightws_stream *s, char *out, size_t size);

/* Blocking TCP connection to host:port with TCP_NODELAY; -1 on failure
 * (message printed to stderr with the prefix `who`). */
int tool_tcp_connect(const char *who, const char *host, int port);

/* Listening TCP socket on host:port (port 0: any free one), SO_REUSEADDR;
 * stores the bound port in *bound. -1 on failure (message printed). */
int tool_tcp_listen(const char *who, const char *host, int port, int *bound);

/* The same with SO_REUSEPORT, for one listener per worker process on
 * the same port (pass the port the first one bound). */
int tool_tcp_listen_shared(const char *who, const char *host, int port,
                           int *bound);

/* One timer for all connections of an event loop: a binary min-heap of
 * the tool_timer each connection embeds, keyed by its next deadline
 * (lightws_now() ms). After each event a connection's key is compared
 * with its deadline (no syscall) and moved only when it changed
 * (O(log n); a busy connection's small moves are O(1) on average); one
 * without a deadline is not in the heap. epoll_wait sleeps until the top
 * key. The owner finds its connection from the timer by offsetof. */
struct tool_timer {
  uint64_t key; /* TOOL_NO_TIMER: not in the heap */
  size_t idx;   /* its place in the heap */
};
#define TOOL_NO_TIMER UINT64_MAX /* = LIGHTWS_NO_DEADLINE */

struct tool_heap {
  struct tool_timer **v;
  size_t len, cap;
};

/* A timer not in any heap (call before its first place). */
void tool_timer_init(struct tool_timer *t);

/* Puts `t` in `h` at `key`, or moves it there; TOOL_NO_TIMER takes it
 * out. Returns 0, or -1 when the heap cannot grow (t is left out). */
int tool_heap_place(struct tool_heap *h, struct tool_timer *t, uint64_t key);

/* Takes `t` out of `h` (nothing if it is not in). */
void tool_heap_remove(struct tool_heap *h, struct tool_timer *t);

/* The earliest timer, or NULL when the heap is empty. */
struct tool_timer *tool_heap_top(const struct tool_heap *h);

/* Frees the heap's array (its timers are the owner's). */
void tool_heap_free(struct tool_heap *h);

/* Sets O_NONBLOCK; 0 or -1. */
int tool_set_nonblock(int fd, int on);

/* Sets TCP_NODELAY (frames are whole writes already; Nagle only delays). */
void tool_set_nodelay(int fd);

/* "addr:port" of the peer of `fd` into buf (always NUL-terminated). */
void tool_peer_name(int fd, char *buf, size_t size);

/* Parses a decimal number in [min, max]; -1 with *ok = 0 on failure. */
long long tool_parse_num(const char *s, long long min, long long max, int *ok);

/* Parses a duration in seconds ("10", "0.5"; 0 = off) into milliseconds
 * in [0, 4e9): -1 with *ok = 0 on failure. A positive value under 1 ms
 * rounds up to 1 ms (never to "off"). */
long long tool_parse_seconds(const char *s, int *ok);

#endif
