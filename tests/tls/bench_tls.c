/* SPDX-License-Identifier: MIT */
/* W1/W3 over TLS 1.3 (TLS_AES_128_GCM_SHA256), lightws-tls against a raw
 * TLS byte pipe (SSL_write/SSL_read on the socket BIO), side by side in
 * each round, over TCP loopback with a forked server.
 *   W1: BENCH_W1_MB MiB (default 256) in 16 KiB binary frames client ->
 *       server, server discards (raw: 16 KiB SSL_writes).
 *   W3: BENCH_W3_N round trips (default 20000) of a 64-byte message.
 * Usage: bench_tls CERTDIR [rounds]. Prints per-round times and the
 * ratios raw_time / lightws_time (1.0 = as fast as raw TLS). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <openssl/ssl.h>
#include "lightws_tls.h"

#define FRAME 16384
#define SMALL 64

static char certdir[400];
static size_t w1_bytes;
static long w3_n;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *m) {
  fprintf(stderr, "bench_tls: %s\n", m);
  exit(1);
}

static SSL_CTX *ctx_for(enum lightws_role role) {
  struct lightws_tls_config c;
  char cert[512], key[512], ca[512];
  int err = 0;
  SSL_CTX *ctx;
  memset(&c, 0, sizeof c);
  snprintf(cert, sizeof cert, "%s/server.pem", certdir);
  snprintf(key, sizeof key, "%s/server.key", certdir);
  snprintf(ca, sizeof ca, "%s/ca.pem", certdir);
  c.ciphersuites = "TLS_AES_128_GCM_SHA256";
  c.min_version = 0x0304;
  if (role == LIGHTWS_SERVER) {
    c.cert_file = cert;
    c.key_file = key;
  } else {
    c.cafile = ca;
  }
  ctx = lightws_tls_ctx(role, &c, &err, NULL, 0);
  if (!ctx) die(lightws_tls_errname(err));
  return ctx;
}

static int listener(int *port) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0)
    die("listen");
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static int dial(int port) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- raw TLS pipe ------------------------------------------------------ */

static SSL *raw_ssl(SSL_CTX *ctx, int fd, int server) {
  SSL *s = SSL_new(ctx);
  SSL_set_fd(s, fd);
  if (!server) SSL_set1_host(s, "localhost");
  if ((server ? SSL_accept(s) : SSL_connect(s)) != 1) die("raw handshake");
  return s;
}

static void raw_read_exact(SSL *s, uint8_t *b, size_t n) {
  size_t got = 0, k;
  while (got < n) {
    if (SSL_read_ex(s, b + got, n - got, &k) != 1) die("raw read");
    got += k;
  }
}

static void raw_server(SSL_CTX *ctx, int fd, int w) {
  SSL *s = raw_ssl(ctx, fd, 1);
  static uint8_t buf[65536];
  size_t k;
  if (w == 1) {
    size_t got = 0;
    while (got < w1_bytes) {
      if (SSL_read_ex(s, buf, sizeof buf, &k) != 1) die("raw server read");
      got += k;
    }
    SSL_write_ex(s, "k", 1, &k);
  } else {
    long i;
    for (i = 0; i < w3_n; i++) {
      raw_read_exact(s, buf, SMALL);
      SSL_write_ex(s, buf, SMALL, &k);
    }
  }
  SSL_shutdown(s);
  SSL_free(s);
}

static double raw_client(SSL_CTX *ctx, int fd, int w) {
  SSL *s = raw_ssl(ctx, fd, 0);
  static uint8_t buf[FRAME];
  double t0 = now_s();
  size_t k;
  memset(buf, 'x', sizeof buf);
  if (w == 1) {
    size_t sent = 0;
    while (sent < w1_bytes) {
      if (SSL_write_ex(s, buf, FRAME, &k) != 1) die("raw write");
      sent += k;
    }
    raw_read_exact(s, buf, 1);
  } else {
    long i;
    for (i = 0; i < w3_n; i++) {
      SSL_write_ex(s, buf, SMALL, &k);
      raw_read_exact(s, buf, SMALL);
    }
  }
  t0 = now_s() - t0;
  SSL_free(s);
  return t0;
}

/* ---- lightws over lightws-tls ------------------------------------------ */

static void ws_server(SSL_CTX *ctx, int fd, int w) {
  static struct lightws_tls t;
  static uint8_t rbuf[65536];
  struct lightws_stream s;
  struct lightws_chunk ch;
  memset(&s, 0, sizeof s);
  if (lightws_tls_accept(&t, ctx, &s, fd, rbuf, sizeof rbuf, NULL, NULL) < 0)
    die("ws accept");
  if (w == 1) {
    size_t got = 0;
    while (got < w1_bytes) {
      ssize_t n = lightws_stream_recv(&s, &ch);
      if (n < 0) die("ws server recv");
      got += (size_t)n;
    }
    lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, "k", 1, 0);
  } else {
    long i;
    for (i = 0; i < w3_n; i++) {
      ssize_t n = lightws_stream_recv(&s, &ch);
      if (n < 0) die("ws server recv");
      if (!n && !ch.frame_end) {
        i--;
        continue;
      }
      lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, ch.data, ch.len, 0);
    }
  }
  lightws_tls_free(&t);
}

static double ws_client(SSL_CTX *ctx, int fd, int w) {
  static struct lightws_tls t;
  static uint8_t rbuf[65536], buf[FRAME];
  struct lightws_stream s;
  struct lightws_chunk ch;
  double t0;
  memset(&s, 0, sizeof s);
  if (lightws_tls_connect(&t, ctx, &s, fd, rbuf, sizeof rbuf, "localhost",
                          "/", NULL) < 0)
    die("ws connect");
  memset(buf, 'x', sizeof buf);
  t0 = now_s();
  if (w == 1) {
    size_t sent = 0;
    while (sent < w1_bytes) {
      if (lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, buf, FRAME,
                              LIGHTWS_SEND_MASK_IN_PLACE) != FRAME)
        die("ws send");
      sent += FRAME;
    }
    if (lightws_stream_recv(&s, &ch) != 1) die("ws ack");
  } else {
    long i;
    for (i = 0; i < w3_n; i++) {
      ssize_t n;
      lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, buf, SMALL,
                          LIGHTWS_SEND_MASK_IN_PLACE);
      do {
        n = lightws_stream_recv(&s, &ch);
        if (n < 0) die("ws client recv");
      } while (!ch.message_end);
    }
  }
  t0 = now_s() - t0;
  lightws_tls_free(&t);
  return t0;
}

static double cpu_of(int who) {
  struct rusage u;
  getrusage(who, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
         (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static double last_cpu; /* client + server CPU seconds of the last run */

static double one_run(int ws, int w) {
  int port, ls = listener(&port), fd, st;
  double c0 = cpu_of(RUSAGE_SELF) + cpu_of(RUSAGE_CHILDREN);
  pid_t pid = fork();
  double dt;
  if (pid == 0) {
    SSL_CTX *sctx = ctx_for(LIGHTWS_SERVER);
    int c = accept(ls, NULL, NULL), one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ws) ws_server(sctx, c, w);
    else raw_server(sctx, c, w);
    close(c);
    _exit(0);
  }
  {
    SSL_CTX *cctx = ctx_for(LIGHTWS_CLIENT);
    fd = dial(port);
    dt = ws ? ws_client(cctx, fd, w) : raw_client(cctx, fd, w);
    close(fd);
    SSL_CTX_free(cctx);
  }
  close(ls);
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) die("server failed");
  last_cpu = cpu_of(RUSAGE_SELF) + cpu_of(RUSAGE_CHILDREN) - c0;
  return dt;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int rounds = argc > 2 ? atoi(argv[2]) : 5, r, w;
  const char *e;
  double ratio[2][64], cratio[2][64];
  if (argc < 2) die("usage: bench_tls CERTDIR [rounds]");
  if (rounds > 64) rounds = 64;
  snprintf(certdir, sizeof certdir, "%s", argv[1]);
  w1_bytes = (size_t)((e = getenv("BENCH_W1_MB")) ? atol(e) : 256) << 20;
  w3_n = (e = getenv("BENCH_W3_N")) ? atol(e) : 20000;
  signal(SIGPIPE, SIG_IGN);
  if ((e = getenv("BENCH_ONLY")) != NULL) { /* one run, for callgrind */
    int wl = getenv("BENCH_WL") ? atoi(getenv("BENCH_WL")) : 3;
    double t = one_run(strcmp(e, "ws") == 0, wl);
    printf("%s W%d %.3f s\n", e, wl, t);
    return 0;
  }
  for (r = 0; r < rounds; r++) {
    for (w = 0; w < 2; w++) {
      int wl = w ? 3 : 1;
      /* alternate which goes first */
      double a, b, ca, cb;
      if (r & 1) {
        b = one_run(1, wl);
        cb = last_cpu;
        a = one_run(0, wl);
        ca = last_cpu;
      } else {
        a = one_run(0, wl);
        ca = last_cpu;
        b = one_run(1, wl);
        cb = last_cpu;
      }
      ratio[w][r] = a / b;
      cratio[w][r] = ca / cb;
      printf("round %d W%d cpu raw %.3f s lightws %.3f s ratio %.3f\n", r, wl,
             ca, cb, ca / cb);
      if (wl == 1)
        printf("round %d W1 raw %.0f MB/s lightws %.0f MB/s ratio %.3f\n", r,
               w1_bytes / a / 1e6, w1_bytes / b / 1e6, a / b);
      else
        printf("round %d W3 raw %.1f us/rt lightws %.1f us/rt ratio %.3f\n", r,
               a / w3_n * 1e6, b / w3_n * 1e6, a / b);
      fflush(stdout);
    }
  }
  for (w = 0; w < 2; w++) {
    qsort(ratio[w], (size_t)rounds, sizeof ratio[w][0], cmp);
    qsort(cratio[w], (size_t)rounds, sizeof cratio[w][0], cmp);
    printf("W%d median ratio (raw / lightws): time %.3f, cpu %.3f\n",
           w ? 3 : 1, ratio[w][rounds / 2], cratio[w][rounds / 2]);
  }
  return 0;
}
