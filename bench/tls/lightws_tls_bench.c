/* SPDX-License-Identifier: MIT */
/* lightws C over lightws-tls (TLS 1.3, TLS_AES_128_GCM_SHA256) with the
 * command line of the bench/ programs (bench_common.h): W1 (bulk) and W3
 * (pingpong) as bench/run.py defines them, for bench/tls/run.py.
 * Certificates from $BENCH_TLS_CERTS (tests/tls/make_certs.sh). */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "lightws_tls.h"

static void fail(const char *what, long err) {
  fprintf(stderr, "lightws-tls-bench: %s: %ld %s\n", what, err,
          err < 0 ? lightws_tls_errname((int)err) : "");
  exit(1);
}

static struct ssl_ctx_st *context(enum lightws_role role) {
  const char *dir = getenv("BENCH_TLS_CERTS");
  char cert[600], key[600], ca[600], reason[160];
  struct lightws_tls_config c;
  struct ssl_ctx_st *ctx;
  int err = 0;
  if (!dir) dir = "build/tls/certs";
  snprintf(cert, sizeof cert, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  memset(&c, 0, sizeof c);
  c.min_version = 0x0304; /* TLS 1.3 (RFC 8446) */
  c.ciphersuites = "TLS_AES_128_GCM_SHA256";
  if (role == LIGHTWS_SERVER) {
    c.cert_file = cert;
    c.key_file = key;
  } else {
    c.cafile = ca;
  }
  ctx = lightws_tls_ctx(role, &c, &err, reason, sizeof reason);
  if (!ctx) {
    fprintf(stderr, "lightws-tls-bench: %s\n", reason);
    fail("context", err);
  }
  return ctx;
}

/* Sends one whole frame (a blocking stream normally does it in one call). */
static void send_all(struct lightws_stream *s, uint8_t *buf, size_t len,
                     unsigned flags) {
  size_t off = 0;
  do {
    ssize_t n = lightws_stream_send(s, LIGHTWS_OPCODE_BINARY, buf + off,
                                    len - off, flags);
    if (n < 0) fail("send", (long)n);
    off += (size_t)n;
  } while (off < len);
}

static int server(const struct bench_args *a) {
  static struct lightws_tls t;
  struct ssl_ctx_st *ctx = context(LIGHTWS_SERVER);
  size_t rsize = bench_rbuf_size(a->size), usize = 65536, acc = 0;
  uint8_t *rbuf = malloc(rsize), *ubuf = malloc(usize);
  struct lightws_stream s;
  struct lightws_chunk c;
  uint64_t bytes = 0, frames = 0;
  int r, fd = bench_accept(a->port);
  if (fd < 0 || !rbuf || !ubuf) return 1;
  memset(&s, 0, sizeof s);
  r = lightws_tls_accept(&t, ctx, &s, fd, rbuf, rsize, NULL, NULL);
  if (r != 0) fail("accept", r);
  fprintf(stderr, "CIPHER %s %s\n", lightws_tls_version(&t),
          lightws_tls_cipher(&t));
  for (;;) {
    ssize_t n;
    if (!a->pingpong) { /* W1: zero-copy views, discarded */
      n = lightws_stream_recv(&s, &c);
      if (n >= 0 && c.frame_end) frames++;
      if (n >= 0) bytes += (uint64_t)n;
    } else {            /* W3: each message echoed whole */
      n = lightws_stream_read(&s, ubuf + acc, usize - acc, &c);
      if (n >= 0) acc += (size_t)n;
      if (n >= 0 && c.message_end) {
        send_all(&s, ubuf, acc, 0);
        bytes += acc;
        frames++;
        acc = 0;
      }
    }
    if (n == LIGHTWS_ERR_CLOSED) break;
    if (n < 0) fail("read", (long)n);
  }
  (void)lightws_tls_close(&t, &s, 2000); /* close_notify after the close */
  close(fd);
  bench_print_server(bytes, frames);
  lightws_tls_ctx_free(ctx);
  free(rbuf);
  free(ubuf);
  return 0;
}

static int client(const struct bench_args *a) {
  static struct lightws_tls t;
  static uint8_t rbuf[65536], in[65536];
  struct ssl_ctx_st *ctx = context(LIGHTWS_CLIENT);
  uint8_t *buf = malloc(a->size ? a->size : 1);
  struct lightws_stream s;
  struct lightws_chunk c;
  uint64_t i, seed = 0x9e3779b97f4a7c15ULL;
  double t0;
  ssize_t n;
  int r, fd = bench_connect(a->port);
  if (fd < 0 || !buf) return 1;
  for (i = 0; i < a->size; i++) buf[i] = (uint8_t)bench_rand(&seed);
  memset(&s, 0, sizeof s);
  r = lightws_tls_connect(&t, ctx, &s, fd, rbuf, sizeof rbuf, "127.0.0.1",
                          "/", NULL);
  if (r != 0) fail("connect", r);
  t0 = bench_now();
  for (i = 0; i < a->frames; i++) {
    /* the app's buffer masked in place, a fresh key per frame (§5.3) */
    send_all(&s, buf, a->size, LIGHTWS_SEND_MASK_IN_PLACE);
    if (!a->pingpong) continue;
    do {
      n = lightws_stream_read(&s, in, sizeof in, &c);
      if (n < 0) fail("read", (long)n);
    } while (!c.message_end);
  }
  if ((r = lightws_stream_close(&s, LIGHTWS_CLOSE_NORMAL, NULL, 0)) != 0)
    fail("close", r);
  while ((n = lightws_stream_recv(&s, &c)) >= 0) continue;
  if (n != LIGHTWS_ERR_CLOSED) fail("close", (long)n);
  if (a->pingpong) bench_print_pingpong(bench_now() - t0, a->frames);
  else bench_print_bulk(bench_now() - t0, a->frames * a->size, a->frames);
  (void)lightws_tls_close(&t, &s, 2000);
  close(fd);
  lightws_tls_ctx_free(ctx);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_args a;
  if (bench_parse(argc, argv, &a) < 0) return 2;
  if (a.deflate || a.echo) {
    fprintf(stderr, "lightws-tls-bench: bulk and pingpong only\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  return a.server ? server(&a) : client(&a);
}
