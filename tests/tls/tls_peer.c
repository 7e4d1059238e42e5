/* SPDX-License-Identifier: MIT */
/* A wss peer for the interop tests (tests/tls/interop.py), built on
 * lightws-tls:
 *   tls_peer client HOST PORT [--cafile F] [--insecure] [--cert F --key F]
 *            [--count N] [--size N] [--nonblock] [--handshake-only]
 *            [--expect-eof]
 *     sends N binary messages of sizes cycling up to --size, checks each
 *     echo, closes with 1000, waits for the close, sends close_notify.
 *     Prints "ok <version> <cipher> alpn=<p>" or "error <NAME>: <reason>".
 *   tls_peer server PORT --cert F --key F [--conns N] [--cafile F]
 *     listens on 127.0.0.1:PORT (0: any; prints "port N"), serves N
 *     connections one after another as an echo, close_notify after each
 *     clean close; prints "served N clean C".
 * Exit status 0 when everything was as expected. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "lightws_tls.h"

static int fail(const char *what, int err, const struct lightws_tls *t) {
  printf("error %s: %s (%s)\n", lightws_tls_errname(err),
         t && lightws_tls_reason(t)[0] ? lightws_tls_reason(t)
                                        : lightws_tls_strerror(err),
         what);
  fflush(stdout);
  return 2;
}

static int tcp_connect(const char *host, const char *port) {
  struct addrinfo hints, *res, *ai;
  int fd = -1;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0) return -1;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

/* Retries a stream call while it would block (nonblocking mode). */
#define RETRY(t, s, expr, r)                                   \
  while (((r) = (expr)) == LIGHTWS_ERR_WOULDBLOCK) {           \
    int w_ = lightws_tls_wait((t), (s), 10000);                \
    if (w_ < 0) {                                              \
      (r) = w_;                                                \
      break;                                                   \
    }                                                          \
  }

static const char *arg(int argc, char **argv, const char *name) {
  int i;
  for (i = 1; i < argc - 1; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return NULL;
}

static int flag(int argc, char **argv, const char *name) {
  int i;
  for (i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return 1;
  return 0;
}

static int client(int argc, char **argv) {
  static struct lightws_tls t;
  static uint8_t rbuf[65536];
  struct lightws_stream s;
  struct lightws_tls_config cfg;
  const char *host = argv[2], *port = argv[3], *v;
  char hosthdr[300], reason[200];
  int count = (v = arg(argc, argv, "--count")) ? atoi(v) : 10;
  size_t maxsize = (v = arg(argc, argv, "--size")) ? (size_t)atol(v) : 70000;
  int nb = flag(argc, argv, "--nonblock"), err = 0, fd, r, i;
  uint8_t *out, *in;
  size_t alen = 0;
  const char *alpn;
  struct ssl_ctx_st *ctx;
  memset(&cfg, 0, sizeof cfg);
  cfg.cafile = arg(argc, argv, "--cafile");
  cfg.insecure = flag(argc, argv, "--insecure");
  cfg.cert_file = arg(argc, argv, "--cert");
  cfg.key_file = arg(argc, argv, "--key");
  ctx = lightws_tls_ctx(LIGHTWS_CLIENT, &cfg, &err, reason, sizeof reason);
  if (!ctx) {
    printf("error %s: %s\n", lightws_tls_errname(err), reason);
    return 2;
  }
  fd = tcp_connect(host, port);
  if (fd < 0) {
    perror("connect");
    return 2;
  }
  snprintf(hosthdr, sizeof hosthdr, "%s:%s", host, port);
  memset(&s, 0, sizeof s);
  if (flag(argc, argv, "--handshake-only")) {
    r = lightws_tls_init(&t, ctx, fd, LIGHTWS_CLIENT, host);
    if (r == 0)
      while ((r = lightws_tls_handshake(&t)) == LIGHTWS_ERR_WOULDBLOCK)
        continue;
    if (r < 0) return fail("handshake", r, &t);
    printf("ok %s %s handshake\n", lightws_tls_version(&t),
           lightws_tls_cipher(&t));
    lightws_tls_shutdown(&t);
    lightws_tls_free(&t);
    close(fd);
    lightws_tls_ctx_free(ctx);
    return 0;
  }
  r = lightws_tls_connect(&t, ctx, &s, fd, rbuf, sizeof rbuf, hosthdr, "/",
                          NULL);
  if (r < 0) return fail("connect", r, &t);
  if (nb) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  out = malloc(maxsize + 1);
  in = malloc(maxsize + 1);
  if (flag(argc, argv, "--expect-eof")) {
    /* the peer ends TCP without close_notify (and without a close frame) */
    for (;;) {
      ssize_t n;
      RETRY(&t, &s, (int)lightws_stream_read(&s, in, maxsize, NULL), r);
      n = r;
      if (n < 0) break;
    }
    free(out);
    free(in);
    if (r == LIGHTWS_ERR_EOF && lightws_tls_eof(&t) == 2 &&
        lightws_stream_close_code(&s) == 1006) {
      printf("ok eof %u truncated\n", lightws_stream_close_code(&s));
      r = lightws_tls_close(&t, &s, 1000); /* no close_notify: not clean */
      close(fd);
      lightws_tls_ctx_free(ctx);
      return r == 0 ? 0 : 2;
    }
    return fail("expect-eof", r, &t);
  }
  for (i = 0; i < count; i++) {
    size_t len = count > 1 ? (maxsize * (size_t)i) / (size_t)(count - 1) : maxsize;
    size_t off = 0, got = 0, k;
    for (k = 0; k < len; k++) out[k] = (uint8_t)(k * 31 + (size_t)i);
    do {
      ssize_t n;
      RETRY(&t, &s, (int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY,
                                             out + off, len - off, 0), r);
      n = r;
      if (n < 0) return fail("send", (int)n, &t);
      off += (size_t)n;
    } while (off < len);
    for (;;) {
      struct lightws_chunk ch;
      RETRY(&t, &s, (int)lightws_stream_read(&s, in + got, maxsize + 1 - got,
                                             &ch), r);
      if (r < 0) return fail("read", r, &t);
      got += (size_t)r;
      if (ch.message_end) break;
    }
    if (got != len || memcmp(in, out, len) != 0) {
      printf("error ECHO: message %d: %zu bytes back for %zu\n", i, got, len);
      return 3;
    }
  }
  RETRY(&t, &s, lightws_stream_close(&s, 1000, "done", 4), r);
  if (r < 0) return fail("close", r, &t);
  for (;;) {
    RETRY(&t, &s, (int)lightws_stream_read(&s, in, maxsize, NULL), r);
    if (r < 0) break;
  }
  if (r != LIGHTWS_ERR_CLOSED) return fail("closing", r, &t);
  alpn = lightws_tls_alpn(&t, &alen);
  printf("ok %s %s alpn=%.*s msgs=%d close=%u\n", lightws_tls_version(&t),
         lightws_tls_cipher(&t), alpn ? (int)alen : 4, alpn ? alpn : "none",
         count, lightws_stream_close_code(&s));
  fflush(stdout);
  r = lightws_tls_close(&t, &s, 5000);
  close(fd);
  free(out);
  free(in);
  lightws_tls_ctx_free(ctx);
  if (r < 0) return fail("close_notify", r, NULL);
  return 0;
}

static int serve_one(struct ssl_ctx_st *ctx, int fd, int nb) {
  static struct lightws_tls t;
  static uint8_t rbuf[65536];
  struct lightws_stream s;
  size_t cap = 1 << 21, len = 0;
  uint8_t *msg;
  int r;
  memset(&s, 0, sizeof s);
  r = lightws_tls_accept(&t, ctx, &s, fd, rbuf, sizeof rbuf, NULL, NULL);
  if (r < 0) {
    fail("accept", r, &t);
    lightws_tls_free(&t);
    return 0;
  }
  if (nb) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  msg = malloc(cap);
  for (;;) {
    struct lightws_chunk ch;
    size_t off = 0;
    RETRY(&t, &s, (int)lightws_stream_read(&s, msg + len, cap - len, &ch), r);
    if (r < 0) break;
    len += (size_t)r;
    if (!ch.message_end) continue;
    do {
      RETRY(&t, &s, (int)lightws_stream_send(&s, ch.opcode, msg + off,
                                             len - off, 0), r);
      if (r < 0) break;
      off += (size_t)r;
    } while (off < len);
    if (r < 0) break;
    len = 0;
  }
  free(msg);
  if (r == LIGHTWS_ERR_CLOSED) {
    r = lightws_tls_close(&t, &s, 5000);
    return r == 0;
  }
  fail("serve", r, &t);
  lightws_tls_close(&t, &s, 1000);
  return 0;
}

static int server(int argc, char **argv) {
  struct lightws_tls_config cfg;
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  const char *v;
  char reason[200];
  int conns = (v = arg(argc, argv, "--conns")) ? atoi(v) : 1;
  int nb = flag(argc, argv, "--nonblock");
  int err = 0, ls, one = 1, i, clean = 0;
  struct ssl_ctx_st *ctx;
  memset(&cfg, 0, sizeof cfg);
  cfg.cert_file = arg(argc, argv, "--cert");
  cfg.key_file = arg(argc, argv, "--key");
  cfg.cafile = arg(argc, argv, "--cafile");
  cfg.verify_client = cfg.cafile != NULL;
  ctx = lightws_tls_ctx(LIGHTWS_SERVER, &cfg, &err, reason, sizeof reason);
  if (!ctx) {
    printf("error %s: %s\n", lightws_tls_errname(err), reason);
    return 2;
  }
  ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)atoi(argv[2]));
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0) {
    perror("listen");
    return 2;
  }
  getsockname(ls, (struct sockaddr *)&a, &alen);
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);
  for (i = 0; i < conns; i++) {
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      perror("accept");
      return 2;
    }
    clean += serve_one(ctx, fd, nb);
    close(fd);
  }
  printf("served %d clean %d\n", conns, clean);
  fflush(stdout);
  close(ls);
  lightws_tls_ctx_free(ctx);
  return clean == conns ? 0 : 1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 4 && strcmp(argv[1], "client") == 0) return client(argc, argv);
  if (argc >= 3 && strcmp(argv[1], "server") == 0) return server(argc, argv);
  fprintf(stderr, "usage: tls_peer client HOST PORT [opts] | server PORT "
                  "--cert F --key F [opts]\n");
  return 2;
}
