/* SPDX-License-Identifier: MIT */
/* Shared helpers of the command-line tools: ws:// and wss:// URL parsing and TCP sockets. */
#include "common.h"
#include "lightws.h"

#ifdef LIGHTWS_TOOLS_TLS
#include "lightws_tls.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int tool_parse_url(const char *url, struct tool_url *u, char *err, size_t size)
{
  const char *p, *auth_end, *host_end, *port_start = NULL;
  size_t n;

  memset(u, 0, sizeof(*u));
  if (strncmp(url, "wss://", 6) == 0) {
    if (!TOOL_HAVE_TLS) {
      snprintf(err, size, "%s", TOOL_NO_TLS_MSG);
      return -1;
    }
    u->tls = 1;
    p = url + 6;
  } else if (strncmp(url, "ws://", 5) == 0) {
    p = url + 5;
  } else {
    snprintf(err, size, "URL must start with ws:// or wss://");
    return -1;
  }
  /* The authority ends at the path or the query (§3: no fragment). */
  auth_end = p + strcspn(p, "/?#");
  if (*auth_end == '#') {
    snprintf(err, size, "fragment identifiers are not allowed (RFC 6455 §3)");
    return -1;
  }
  if (auth_end == p) {
    snprintf(err, size, "URL has no host");
    return -1;
  }
  if (*p == '[') { /* IPv6 literal */
    host_end = memchr(p, ']', (size_t)(auth_end - p));
    if (!host_end) {
      snprintf(err, size, "unterminated [ in host");
      return -1;
    }
    n = (size_t)(host_end - p - 1);
    if (n == 0 || n >= sizeof(u->host)) goto bad_host;
    memcpy(u->host, p + 1, n);
    if (host_end + 1 < auth_end) {
      if (host_end[1] != ':') goto bad_host;
      port_start = host_end + 2;
    }
  } else {
    host_end = memchr(p, ':', (size_t)(auth_end - p));
    if (!host_end) host_end = auth_end;
    else port_start = host_end + 1;
    n = (size_t)(host_end - p);
    if (n == 0 || n >= sizeof(u->host)) goto bad_host;
    memcpy(u->host, p, n);
  }
  u->port = u->tls ? 443 : 80;
  if (port_start) {
    long v = 0;
    const char *q;
    if (port_start == auth_end) goto bad_port;
    for (q = port_start; q < auth_end; q++) {
      if (*q < '0' || *q > '9') goto bad_port;
      v = v * 10 + (*q - '0');
      if (v > 65535) goto bad_port;
    }
    if (v == 0) goto bad_port;
    u->port = (int)v;
  }
  n = (size_t)(auth_end - p);
  if (n >= sizeof(u->authority)) goto bad_host;
  memcpy(u->authority, p, n);
  /* Path and query go out exactly as written (the query is part of the
   * request-target, §3). */
  if (*auth_end == '\0') {
    strcpy(u->path, "/");
  } else if (*auth_end == '?') {
    if (strlen(auth_end) + 2 > sizeof(u->path)) goto long_path;
    u->path[0] = '/';
    strcpy(u->path + 1, auth_end);
  } else {
    if (strlen(auth_end) + 1 > sizeof(u->path)) goto long_path;
    strcpy(u->path, auth_end);
  }
  if (strchr(u->path, '#')) {
    snprintf(err, size, "fragment identifiers are not allowed (RFC 6455 §3)");
    return -1;
  }
  return 0;
bad_host:
  snprintf(err, size, "bad host in URL");
  return -1;
bad_port:
  snprintf(err, size, "bad port in URL");
  return -1;
long_path:
  snprintf(err, size, "path too long");
  return -1;
}

void tool_set_nodelay(int fd)
{
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Resolves host:port and returns the first socket that connects (listen 0)
 * or binds and listens (listen 1), or -1 after printing why. */
static int tcp_open(const char *who, const char *host, int port, int listening)
{
  struct addrinfo hints, *res, *ai;
  char portstr[16];
  int fd = -1, rc, one = 1, saved = 0;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = listening ? AI_PASSIVE : 0;
  snprintf(portstr, sizeof(portstr), "%d", port);
  rc = getaddrinfo(host, portstr, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "%s: %s: %s\n", who, host, gai_strerror(rc));
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      saved = errno;
      continue;
    }
    if (listening) {
      (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
#ifdef SO_REUSEPORT
      /* 2: one of several listeners on the port, the kernel spreads the
       * connections over them (one event loop per process) */
      if (listening == 2 &&
          setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        saved = errno;
        close(fd);
        fd = -1;
        continue;
      }
#endif
      if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
        break;
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      break;
    }
    saved = errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0)
    fprintf(stderr, "%s: %s %s port %d: %s\n", who,
            listening ? "listen on" : "connect to", host, port,
            strerror(saved));
  return fd;
}

int tool_tcp_connect(const char *who, const char *host, int port)
{
  int fd = tcp_open(who, host, port, 0);
  if (fd >= 0) tool_set_nodelay(fd);
  return fd;
}

static int tcp_listen(const char *who, const char *host, int port, int *bound,
                      int mode)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int fd = tcp_open(who, host, port, mode);
  if (fd < 0) return -1;
  *bound = port;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
      *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  return fd;
}

int tool_tcp_listen(const char *who, const char *host, int port, int *bound)
{
  return tcp_listen(who, host, port, bound, 1);
}

int tool_tcp_listen_shared(const char *who, const char *host, int port,
                           int *bound)
{
  return tcp_listen(who, host, port, bound, 2);
}

int tool_set_nonblock(int fd, int on)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return -1;
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, fl);
}

void tool_peer_name(int fd, char *buf, size_t size)
{
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  char addr[INET6_ADDRSTRLEN] = "?";
  int port = 0;

  if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, addr, sizeof(addr));
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof(addr));
      port = ntohs(a->sin6_port);
      snprintf(buf, size, "[%s]:%d", addr, port);
      return;
    }
  }
  snprintf(buf, size, "%s:%d", addr, port);
}

long long tool_parse_num(const char *s, long long min, long long max, int *ok)
{
  char *end;
  long long v;

  *ok = 0;
  if (!s || !*s) return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max) return -1;
  *ok = 1;
  return v;
}

long long tool_parse_seconds(const char *s, int *ok)
{
  char *end;
  double v;
  long long ms;

  *ok = 0;
  if (!s || !*s) return -1;
  errno = 0;
  v = strtod(s, &end);
  /* v == v: not NaN; the bound keeps the product in a uint32_t */
  if (errno || *end || !(v == v) || v < 0 || v > 4000000.0) return -1;
  ms = (long long)(v * 1000.0 + 0.5);
  if (ms == 0 && v > 0) ms = 1;
  *ok = 1;
  return ms;
}

int tool_client_target(const char *prog, const char *url, struct tool_url *u,
                       const char *cafile, int insecure,
                       struct ssl_ctx_st **ctx) {
  char err[256];
  *ctx = NULL;
  if (tool_parse_url(url, u, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, url, err);
    return 2;
  }
  if (!u->tls && (cafile || insecure)) {
    fprintf(stderr, "%s: --cafile/--insecure need a wss:// URL\n", prog);
    return 2;
  }
#ifdef LIGHTWS_TOOLS_TLS
  if (u->tls) {
    struct lightws_tls_config cfg;
    char why[256] = "";
    int e = 0;
    memset(&cfg, 0, sizeof(cfg));
    cfg.cafile = cafile;
    cfg.insecure = insecure;
    *ctx = lightws_tls_ctx(LIGHTWS_CLIENT, &cfg, &e, why, sizeof(why));
    if (!*ctx) {
      fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, cafile ? cafile : "TLS",
              lightws_tls_errname(e), lightws_tls_strerror(e),
              why[0] ? ": " : "", why);
      return 1;
    }
  }
#endif
  return 0;
}

int tool_err(const struct lightws_tls *tls, int err, const char **name,
             const char **msg, const char **reason)
{
  *reason = "";
#ifdef LIGHTWS_TOOLS_TLS
  if (tls) {
    if (err == LIGHTWS_ERR_SYSTEM && lightws_tls_error(tls))
      err = lightws_tls_error(tls);
    if (err <= LIGHTWS_ERR_TLS_CTX && err > LIGHTWS__TLS_ERR_MIN)
      *reason = lightws_tls_reason(tls);
    *name = lightws_tls_errname(err);
    *msg = lightws_tls_strerror(err);
    return err;
  }
#else
  (void)tls;
#endif
  *name = lightws_errname(err);
  *msg = lightws_strerror(err);
  return err;
}

void tool_close_reason(const struct lightws_stream *s, char *out, size_t size)
{
  size_t len, i, n = 0;
  const char *r = lightws_stream_close_reason(s, &len);

  for (i = 0; r && i < len && n + 1 < size; i++)
    out[n++] = (unsigned char)r[i] < 0x20 || r[i] == 0x7f ? '?' : r[i];
  out[n] = '\0';
}

/* ---- timer heap ------------------------------------------------------- */

void tool_timer_init(struct tool_timer *t)
{
  t->key = TOOL_NO_TIMER;
  t->idx = 0;
}

static void heap_set(struct tool_heap *h, size_t i, struct tool_timer *t)
{
  h->v[i] = t;
  t->idx = i;
}

static void heap_up(struct tool_heap *h, size_t i)
{
  struct tool_timer *t = h->v[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->v[p]->key <= t->key) break;
    heap_set(h, i, h->v[p]);
    i = p;
  }
  heap_set(h, i, t);
}

static void heap_down(struct tool_heap *h, size_t i)
{
  struct tool_timer *t = h->v[i];
  for (;;) {
    size_t l = 2 * i + 1, m;
    if (l >= h->len) break;
    m = l + 1 < h->len && h->v[l + 1]->key < h->v[l]->key ? l + 1 : l;
    if (h->v[m]->key >= t->key) break;
    heap_set(h, i, h->v[m]);
    i = m;
  }
  heap_set(h, i, t);
}

void tool_heap_remove(struct tool_heap *h, struct tool_timer *t)
{
  struct tool_timer *last;
  size_t i = t->idx;

  if (t->key == TOOL_NO_TIMER) return;
  t->key = TOOL_NO_TIMER;
  last = h->v[--h->len];
  if (last == t) return;
  heap_set(h, i, last);
  heap_up(h, i);
  heap_down(h, last->idx);
}

int tool_heap_place(struct tool_heap *h, struct tool_timer *t, uint64_t key)
{
  if (key == TOOL_NO_TIMER) {
    tool_heap_remove(h, t);
    return 0;
  }
  if (t->key == TOOL_NO_TIMER) {
    if (h->len == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 1024;
      struct tool_timer **v = realloc(h->v, cap * sizeof(*v));
      if (!v) return -1;
      h->v = v;
      h->cap = cap;
    }
    t->key = key;
    heap_set(h, h->len++, t);
    heap_up(h, t->idx);
  } else if (key < t->key) {
    t->key = key;
    heap_up(h, t->idx);
  } else if (key > t->key) {
    t->key = key;
    heap_down(h, t->idx);
  }
  return 0;
}

struct tool_timer *tool_heap_top(const struct tool_heap *h)
{
  return h->len ? h->v[0] : NULL;
}

void tool_heap_free(struct tool_heap *h)
{
  free(h->v);
  h->v = NULL;
  h->len = h->cap = 0;
}
