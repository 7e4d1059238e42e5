/* SPDX-License-Identifier: MIT */
/* Demo client: one of each exchange with an echo server (text, binary, fragments, ping, close), or a bulk throughput run. */
#include "common.h"
#include "lightws.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "demo_client";
static struct lightws_stream ws;
static uint8_t rbuf[64 * 1024];

static void fail(const char *what, int err)
{
  fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, lightws_errname(err),
          lightws_strerror(err));
  exit(1);
}

/* Blocking send of one frame, continuing after partial writes. */
static void send_frame(int opcode, const void *buf, size_t len, unsigned flags)
{
  const uint8_t *p = buf;
  do {
    ssize_t n = lightws_stream_send(&ws, opcode, p, len, flags);
    if (n < 0) fail("send", (int)n);
    p += n;
    len -= (size_t)n;
  } while (len > 0);
}

/* Reads one whole message into buf; returns its length, sets *opcode. */
static size_t recv_message(uint8_t *buf, size_t size, int *opcode)
{
  size_t len = 0;
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_read(&ws, buf + len, size - len, &ch);
    if (n < 0) fail("receive", (int)n);
    len += (size_t)n;
    *opcode = ch.opcode;
    if (ch.message_end) return len;
    if (len == size) {
      fprintf(stderr, "%s: message larger than %zu bytes\n", prog, size);
      exit(1);
    }
  }
}

static const char *opname(int op)
{
  return op == LIGHTWS_OPCODE_TEXT ? "text" : "binary";
}

static void check(int cond, const char *what)
{
  if (!cond) {
    fprintf(stderr, "%s: FAILED: %s\n", prog, what);
    exit(1);
  }
}

static void demo(void)
{
  static uint8_t bin[1000], got[64 * 1024];
  const char *frags[] = { "frag", "mented ", "message" };
  size_t len, i, plen;
  const uint8_t *pong;
  int op, r;

  send_frame(LIGHTWS_OPCODE_TEXT, "hello", 5, 0);
  len = recv_message(got, sizeof(got), &op);
  check(op == LIGHTWS_OPCODE_TEXT && len == 5 && !memcmp(got, "hello", 5),
        "text echo");
  printf("C client: sent text 'hello' -> echoed %s '%.*s'\n", opname(op),
         (int)len, (const char *)got);

  for (i = 0; i < sizeof(bin); i++) bin[i] = (uint8_t)(i * 7 + 3);
  send_frame(LIGHTWS_OPCODE_BINARY, bin, sizeof(bin), 0);
  len = recv_message(got, sizeof(got), &op);
  check(op == LIGHTWS_OPCODE_BINARY && len == sizeof(bin) &&
        !memcmp(got, bin, sizeof(bin)), "binary echo");
  printf("C client: sent binary %zu bytes -> echoed %s %zu bytes, identical\n",
         sizeof(bin), opname(op), len);

  /* §5.4: three frames, the first TEXT with fin=0, then continuations. */
  send_frame(LIGHTWS_OPCODE_TEXT, frags[0], 4, LIGHTWS_SEND_FRAGMENT);
  send_frame(LIGHTWS_OPCODE_TEXT, frags[1], 7, LIGHTWS_SEND_FRAGMENT);
  send_frame(LIGHTWS_OPCODE_TEXT, frags[2], 7, 0);
  len = recv_message(got, sizeof(got), &op);
  check(op == LIGHTWS_OPCODE_TEXT && len == 18 &&
        !memcmp(got, "fragmented message", 18), "fragmented echo");
  printf("C client: sent text in 3 fragments 'frag'+'mented '+'message' -> "
         "echoed %s '%.*s'\n", opname(op), (int)len, (const char *)got);

  /* A pong is consumed by the read that meets it, so follow the ping with
   * a message and look at the pong after reading its echo. */
  r = lightws_stream_ping(&ws, "demo-ping", 9);
  if (r < 0) fail("ping", r);
  send_frame(LIGHTWS_OPCODE_TEXT, "after ping", 10, 0);
  len = recv_message(got, sizeof(got), &op);
  pong = lightws_stream_pong_data(&ws, &plen);
  check(pong && plen == 9 && !memcmp(pong, "demo-ping", 9), "pong payload");
  printf("C client: sent ping 'demo-ping' -> pong '%.*s' received\n",
         (int)plen, (const char *)pong);

  r = lightws_stream_close(&ws, LIGHTWS_CLOSE_NORMAL, "demo done", 9);
  if (r < 0) fail("close", r);
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_recv(&ws, &ch);
    if (n == LIGHTWS_ERR_CLOSED) break;
    if (n < 0) fail("waiting for close", (int)n);
  }
  {
    size_t rl;
    const char *reason = lightws_stream_close_reason(&ws, &rl);
    printf("C client: sent close 1000 'demo done' -> server answered close %u%s%.*s%s\n",
           lightws_stream_close_code(&ws), rl ? " '" : "", (int)rl, reason,
           rl ? "'" : "");
  }
}

static double now_sec(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends `mib` MiB in 16 KiB binary frames and reads the echo back, with the
 * socket nonblocking so neither side's buffers can deadlock the exchange. */
static void bulk(int fd, long mib)
{
  static uint8_t out[16 * 1024], in[64 * 1024];
  const uint64_t total = (uint64_t)mib << 20;
  uint64_t sent = 0, got = 0;
  size_t off = 0; /* bytes of the current frame sent */
  double t0, dt;
  unsigned long seed = 1;
  size_t i;

  for (i = 0; i < sizeof(out); i++) {
    seed = seed * 1103515245u + 12345u;
    out[i] = (uint8_t)(seed >> 16);
  }
  tool_set_nonblock(fd, 1);
  t0 = now_sec();
  while (got < total) {
    struct pollfd pf = { fd, POLLIN, 0 };
    int progress = 0;
    while (sent < total) {
      ssize_t n = lightws_stream_send(&ws, LIGHTWS_OPCODE_BINARY, out + off,
                                      sizeof(out) - off, 0);
      if (n == LIGHTWS_ERR_WOULDBLOCK) break;
      if (n < 0) fail("send", (int)n);
      progress = 1;
      off += (size_t)n;
      sent += (uint64_t)n;
      if (off == sizeof(out)) off = 0;
    }
    for (;;) {
      struct lightws_chunk ch;
      ssize_t n = lightws_stream_read(&ws, in, sizeof(in), &ch);
      if (n == LIGHTWS_ERR_WOULDBLOCK) break;
      if (n < 0) fail("receive", (int)n);
      progress = 1;
      /* A read never crosses a message, and every message is `out`. */
      check(ch.opcode == LIGHTWS_OPCODE_BINARY &&
            !memcmp(in, out + got % sizeof(out), (size_t)n), "bulk echo");
      got += (uint64_t)n;
    }
    if (progress) continue;
    if (sent < total) pf.events |= POLLOUT;
    if (poll(&pf, 1, 10000) <= 0) {
      fprintf(stderr, "%s: bulk transfer stalled\n", prog);
      exit(1);
    }
  }
  dt = now_sec() - t0;
  printf("C client: bulk %ld MiB in 16 KiB binary frames echoed in %.2f s: "
         "%.0f MiB/s each way\n", mib, dt, (double)mib / dt);
  tool_set_nonblock(fd, 0);
  lightws_stream_close(&ws, LIGHTWS_CLOSE_NORMAL, NULL, 0);
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_recv(&ws, &ch);
    if (n == LIGHTWS_ERR_CLOSED) break;
    if (n < 0) fail("waiting for close", (int)n);
  }
}

int main(int argc, char **argv)
{
  struct tool_url u;
  char err[128];
  long mib = 0;
  int fd, r, ok;
  const char *url = NULL;

  if (argc == 4 && !strcmp(argv[1], "--bulk")) {
    mib = (long)tool_parse_num(argv[2], 1, 1 << 20, &ok);
    if (!ok) return 2;
    url = argv[3];
  } else if (argc == 2) {
    url = argv[1];
  } else {
    fprintf(stderr, "usage: %s [--bulk MIB] ws://HOST:PORT/PATH\n", prog);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (tool_parse_url(url, &u, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return 2;
  }
  fd = tool_tcp_connect(prog, u.host, u.port);
  if (fd < 0) return 1;
  {
    /* Give up on a server that accepts TCP but never answers the upgrade
     * (HANDSHAKE_TIMEOUT after 10 s); then time off again, so the demo's
     * blocking reads and writes are plain read(2)/writev(2). */
    struct lightws_timeouts to;
    struct lightws_client_options opt;
    memset(&to, 0, sizeof(to));
    memset(&opt, 0, sizeof(opt));
    to.handshake = 10000;
    opt.timeouts = &to;
    r = lightws_connect(&ws, fd, rbuf, sizeof(rbuf), u.authority, u.path, &opt);
    if (r < 0) fail("handshake", r);
    lightws_stream_set_timeouts(&ws, NULL, 0);
  }
  if (mib) bulk(fd, mib);
  else demo();
  close(fd);
  return 0;
}
