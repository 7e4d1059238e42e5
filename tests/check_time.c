/* SPDX-License-Identifier: MIT */
/* Time: handshake, idle, keepalive and close timeouts (lightws_stream_tick,
 * lightws_stream_deadline, the deadline waits of blocking streams), and the
 * small-buffer and view-lifetime rules of issue 13. Real sockets and the
 * real clock; bounds are generous so a slow machine does not fail them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include "check_lightws.h"

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static void pair(int sv[2], int nonblock0) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  if (nonblock0) fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
}

/* Inits `s` on `fd` with the timeouts `t` started now; returns now. */
static uint64_t timed(struct lightws_stream *s, enum lightws_role role, int fd,
                      uint8_t *rb, size_t rsize,
                      const struct lightws_timeouts *t) {
  uint64_t now;
  ck_assert_int_eq(lightws_stream_init(s, role, fd, rb, rsize, 0), 0);
  now = lightws_now();
  ck_assert_int_eq(lightws_stream_set_timeouts(s, t, now), 0);
  return now;
}

/* Reads exactly n bytes from fd within ms milliseconds; returns bytes read. */
static size_t read_within(int fd, uint8_t *buf, size_t n, int ms) {
  size_t got = 0;
  uint64_t end = lightws_now() + (uint64_t)ms;
  while (got < n) {
    struct pollfd p = {fd, POLLIN, 0};
    uint64_t now = lightws_now();
    ssize_t r;
    if (now >= end) break;
    if (poll(&p, 1, (int)(end - now)) <= 0) continue;
    r = read(fd, buf + got, n - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}

/* Reads one whole unmasked-or-masked frame from fd (payload unmasked into
 * `payload`, up to 125 bytes: control frames). Returns the opcode or -1. */
static int read_frame(int fd, uint8_t *payload, size_t *len, int ms) {
  uint8_t h[14];
  struct lightws_frame f;
  size_t have = 2;
  if (read_within(fd, h, 2, ms) != 2) return -1;
  for (;;) {
    ssize_t r = lightws_frame_decode_full(&f, h, have, 0);
    if (r > 0) break;
    if (r != LIGHTWS_ERR_INCOMPLETE) return -1;
    if (read_within(fd, h + have, f.header_len - have, ms) !=
        (size_t)(f.header_len - have))
      return -1;
    have = f.header_len;
  }
  if (f.length > 125) return -1;
  if (read_within(fd, payload, (size_t)f.length, ms) != f.length) return -1;
  if (f.masked) lightws_mask(payload, (size_t)f.length, f.mask, 0);
  *len = (size_t)f.length;
  return f.opcode;
}

/* Writes an unmasked (server-to-client) or masked frame. */
static void write_frame(int fd, int opcode, const void *p, size_t n,
                        int masked) {
  uint8_t buf[200];
  struct lightws_frame f;
  size_t h;
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = (uint8_t)opcode;
  f.length = n;
  f.masked = (uint8_t)masked;
  if (masked) memcpy(f.mask, "\x11\x22\x33\x44", 4);
  h = lightws_frame_encode_unchecked(&f, buf);
  memcpy(buf + h, p, n);
  if (masked) lightws_mask(buf + h, n, f.mask, 0);
  ck_assert_int_eq(write(fd, buf, h + n), (ssize_t)(h + n));
}

static const char *req_text =
    "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

/* ---- handshake ---------------------------------------------------------- */

/* A request dribbled one byte per 100 ms is cut at the handshake timeout
 * (not reset by each byte), and the client gets one 408. */
START_TEST(test_accept_dribbled_request_times_out) {
  int sv[2], st;
  pid_t pid;
  struct lightws_stream s;
  struct lightws_timeouts t;
  struct lightws_server_options so;
  uint8_t rb[4096];
  uint64_t t0, el;
  int r;
  pair(sv, 0);
  pid = fork();
  if (pid == 0) {
    size_t i;
    char resp[256];
    ssize_t n;
    close(sv[0]);
    for (i = 0; i < strlen(req_text) - 2; i++) {
      if (write(sv[1], req_text + i, 1) != 1) break;
      sleep_ms(100);
      {
        struct pollfd p = {sv[1], POLLIN, 0};
        if (poll(&p, 1, 0) > 0) break;
      }
    }
    n = read(sv[1], resp, sizeof resp - 1);
    _exit(n > 12 && memcmp(resp, "HTTP/1.1 408", 12) == 0 ? 0 : 9);
  }
  close(sv[1]);
  t = (struct lightws_timeouts){.handshake = 500};
  memset(&so, 0, sizeof so);
  so.timeouts = &t;
  t0 = lightws_now();
  r = lightws_accept(&s, sv[0], rb, sizeof rb, NULL, &so);
  el = lightws_now() - t0;
  ck_assert_int_eq(r, LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  ck_assert_uint_ge(el, 490);
  ck_assert_uint_lt(el, 5000);
  /* sticky: the steps return it too */
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0),
                   LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  ck_assert_uint_eq(lightws_stream_deadline(&s), LIGHTWS_NO_DEADLINE);
  close(sv[0]);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/* A server that accepts TCP and never answers: the blocking client gives up
 * at its handshake timeout, on a blocking and on a nonblocking descriptor. */
START_TEST(test_connect_silent_server_times_out) {
  int nb;
  for (nb = 0; nb < 2; nb++) {
    int sv[2];
    struct lightws_stream s;
    struct lightws_timeouts t;
    struct lightws_client_options o;
    uint8_t rb[1024];
    uint64_t t0, el;
    pair(sv, nb);
    memset(&t, 0, sizeof t);
    t.handshake = 300;
    memset(&o, 0, sizeof o);
    o.timeouts = &t;
    t0 = lightws_now();
    ck_assert_int_eq(lightws_connect(&s, sv[0], rb, sizeof rb, "h", "/", &o),
                     LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
    el = lightws_now() - t0;
    ck_assert_uint_ge(el, 290);
    ck_assert_uint_lt(el, 5000);
    ck_assert_int_eq(lightws_client_handshake(&s, NULL),
                     LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
    close(sv[0]);
    close(sv[1]);
  }
}
END_TEST

/* The nonblocking steps with deadline + tick, as an event loop drives them:
 * the deadline is fixed by set_timeouts, ticks before it do nothing. */
START_TEST(test_handshake_deadline_nonblocking_steps) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024];
  uint64_t now;
  pair(sv, 1);
  t = (struct lightws_timeouts){.handshake = 1000};
  now = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0),
                   LIGHTWS_ERR_WOULDBLOCK);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 1000);
  ck_assert_int_eq(write(sv[1], "GET / HTTP/1.1\r\n", 16), 16);
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0),
                   LIGHTWS_ERR_WOULDBLOCK);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 1000); /* not reset */
  ck_assert_int_eq(lightws_stream_tick(&s, now + 999), 0);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 1000),
                   LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0),
                   LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  /* a handshake that completes in time has no deadline left */
  now = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(write(sv[1], req_text, strlen(req_text)),
                   (ssize_t)strlen(req_text));
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0), 0);
  ck_assert_int_eq(lightws_server_accept(&s, NULL, NULL, 0), 0);
  ck_assert_uint_eq(lightws_stream_deadline(&s), LIGHTWS_NO_DEADLINE);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 5000), 0);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* ---- idle ---------------------------------------------------------------- */

START_TEST(test_idle_timeout_closes_1001) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  struct lightws_chunk c;
  uint8_t rb[1024], p[128];
  size_t n = 0;
  uint64_t now, d;
  pair(sv, 1);
  t = (struct lightws_timeouts){.idle = 200};
  now = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 200);
  /* a byte received moves the idle deadline */
  sleep_ms(50);
  write_frame(sv[1], LIGHTWS_OPCODE_TEXT, "hi", 2, 1);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), 2);
  d = lightws_stream_deadline(&s);
  ck_assert_uint_ge(d, now + 250);
  ck_assert_int_eq(lightws_stream_tick(&s, d - 1), 0);
  ck_assert_int_eq(lightws_stream_tick(&s, d), LIGHTWS_ERR_IDLE_TIMEOUT);
  ck_assert_int_eq(lightws_stream_error(&s), LIGHTWS_ERR_IDLE_TIMEOUT);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_IDLE_TIMEOUT);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 2000), LIGHTWS_OPCODE_CLOSE);
  ck_assert_uint_ge(n, 2);
  ck_assert_int_eq(p[0] << 8 | p[1], 1001);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* A blocking read on a silent peer returns IDLE_TIMEOUT instead of
 * waiting forever. */
START_TEST(test_blocking_read_idle_timeout) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024], buf[64];
  uint64_t t0, el;
  pair(sv, 0);
  t = (struct lightws_timeouts){.idle = 300};
  t0 = timed(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(lightws_stream_read(&s, buf, sizeof buf, NULL),
                   LIGHTWS_ERR_IDLE_TIMEOUT);
  el = lightws_now() - t0;
  ck_assert_uint_ge(el, 290);
  ck_assert_uint_lt(el, 5000);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* ---- keepalive ------------------------------------------------------------ */

/* The ping goes out after the interval without traffic; its pong (same 4
 * bytes) clears it and gives the round trip; the next ping counts from the
 * pong. A peer that never answers: PING_TIMEOUT, 1011 on the wire. */
START_TEST(test_keepalive_ping_pong_and_timeout) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  struct lightws_chunk c;
  uint8_t rb[1024], p[128];
  size_t n = 0;
  uint64_t now, d;
  pair(sv, 1);
  t = (struct lightws_timeouts){.ping_interval = 100, .ping_timeout = 200};
  now = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 100);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 99), 0);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 100), 0);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 2000), LIGHTWS_OPCODE_PING);
  ck_assert_uint_eq(n, 4);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 300);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 200), 0); /* no 2nd ping */
  ck_assert_int_eq(lightws_stream_want(&s) & LIGHTWS_WANT_WRITE, 0);
  ck_assert_uint_eq(lightws_stream_rtt(&s), 0);
  write_frame(sv[1], LIGHTWS_OPCODE_PONG, p, 4, 1);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_WOULDBLOCK);
  ck_assert_uint_gt(lightws_stream_rtt(&s), 0);
  ck_assert_uint_lt(lightws_stream_rtt(&s), 5000000);
  d = lightws_stream_deadline(&s);
  ck_assert_uint_ge(d, now + 100); /* from the pong's arrival */
  /* second round: no answer */
  ck_assert_int_eq(lightws_stream_tick(&s, d), 0);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 2000), LIGHTWS_OPCODE_PING);
  ck_assert_uint_eq(lightws_stream_deadline(&s), d + 200);
  ck_assert_int_eq(lightws_stream_tick(&s, d + 200), LIGHTWS_ERR_PING_TIMEOUT);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 2000), LIGHTWS_OPCODE_CLOSE);
  ck_assert_uint_eq(n, 2 + strlen("keepalive ping timeout"));
  ck_assert_int_eq(p[0] << 8 | p[1], 1011);
  ck_assert(memcmp(p + 2, "keepalive ping timeout", n - 2) == 0);
  ck_assert_int_eq(lightws_stream_tick(&s, d + 300), LIGHTWS_ERR_PING_TIMEOUT);
  ck_assert_int_eq(lightws_stream_send(&s, 2, "x", 1, 0),
                   LIGHTWS_ERR_PING_TIMEOUT);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* Traffic in either direction postpones the ping: a busy stream sends none. */
START_TEST(test_keepalive_busy_stream_sends_no_ping) {
  int sv[2], i;
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024], buf[64];
  pair(sv, 1);
  t = (struct lightws_timeouts){.ping_interval = 150, .ping_timeout = 150};
  timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  for (i = 0; i < 10; i++) {
    uint64_t now;
    sleep_ms(50);
    ck_assert_int_eq(lightws_stream_send(&s, 2, "data", 4, 0), 4);
    now = lightws_now();
    ck_assert_uint_gt(lightws_stream_deadline(&s), now);
    ck_assert_int_eq(lightws_stream_tick(&s, now), 0);
  }
  /* only the 10 data frames (6 bytes each), no ping */
  ck_assert_uint_eq(read_within(sv[1], buf, 60, 1000), 60);
  for (i = 0; i < 10; i++) ck_assert_int_eq(buf[6 * i], 0x82);
  {
    struct pollfd p = {sv[1], POLLIN, 0};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
  }
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* The ping waits behind a frame in progress (EAGAIN in the middle) and goes
 * out right after it; the pong timeout counts from when it was due. */
START_TEST(test_keepalive_ping_waits_behind_cut_frame) {
  int sv[2], sz = 4096;
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024];
  static uint8_t big[1 << 20], sink[1 << 20];
  uint8_t p[128];
  size_t n = 0, got = 0;
  ssize_t w;
  uint64_t now;
  pair(sv, 1);
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  t = (struct lightws_timeouts){.ping_interval = 50, .ping_timeout = 10000};
  now = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  w = lightws_stream_send(&s, 2, big, sizeof big, 0);
  ck_assert_int_gt(w, 0);
  ck_assert_int_lt(w, (ssize_t)sizeof big);
  now = lightws_now();
  ck_assert_int_eq(lightws_stream_tick(&s, now + 60), 0);
  ck_assert_int_ne(lightws_stream_want(&s) & LIGHTWS_WANT_WRITE, 0);
  ck_assert_uint_eq(lightws_stream_deadline(&s), now + 60 + 10000);
  /* drain the peer side while finishing the frame */
  while ((size_t)w < sizeof big) {
    ssize_t r = read(sv[1], sink, sizeof sink);
    ssize_t k;
    if (r > 0) got += (size_t)r;
    k = lightws_stream_send(&s, 2, big + w, sizeof big - (size_t)w, 0);
    if (k > 0) w += k;
  }
  ck_assert_int_eq(lightws_stream_flush(&s), 0);
  /* the rest of the data frame (4 or 10 byte head), then the ping */
  {
    size_t want = 10 + sizeof big;
    while (got < want) {
      size_t r = read_within(sv[1], sink, want - got < sizeof sink
                                               ? want - got : sizeof sink,
                             2000);
      ck_assert_uint_gt(r, 0);
      got += r;
    }
  }
  ck_assert_int_eq(read_frame(sv[1], p, &n, 2000), LIGHTWS_OPCODE_PING);
  ck_assert_uint_eq(n, 4);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* A blocking read sends keepalive pings while it waits: a peer that answers
 * (a lightws client reading, so its auto pong goes out) keeps it alive, and
 * the message it sends later arrives. */
START_TEST(test_blocking_read_keepalive_with_live_peer) {
  int sv[2], st;
  pid_t pid;
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024], buf[64];
  pair(sv, 0);
  pid = fork();
  if (pid == 0) {
    struct lightws_stream c;
    uint8_t crb[1024], cb[64];
    uint64_t end;
    close(sv[0]);
    lightws_stream_init(&c, LIGHTWS_CLIENT, sv[1], crb, sizeof crb, 0);
    fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    end = lightws_now() + 700;
    while (lightws_now() < end) { /* reads answer the pings */
      struct pollfd p = {sv[1], POLLIN, 0};
      poll(&p, 1, 20);
      (void)lightws_stream_read(&c, cb, sizeof cb, NULL);
    }
    if (lightws_stream_send(&c, 1, "late", 4, 0) != 4) _exit(3);
    sleep_ms(300);
    _exit(0);
  }
  close(sv[1]);
  t = (struct lightws_timeouts){.ping_interval = 100, .ping_timeout = 400};
  timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(lightws_stream_read(&s, buf, sizeof buf, NULL), 4);
  ck_assert(memcmp(buf, "late", 4) == 0);
  ck_assert_uint_gt(lightws_stream_rtt(&s), 0);
  close(sv[0]);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/* A blocking read against a peer that never answers: PING_TIMEOUT after
 * interval + timeout, 1011 on the wire. */
START_TEST(test_blocking_read_ping_timeout) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024], buf[64], p[128];
  size_t n;
  uint64_t t0, el;
  pair(sv, 0);
  t = (struct lightws_timeouts){.ping_interval = 100, .ping_timeout = 200};
  t0 = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(lightws_stream_read(&s, buf, sizeof buf, NULL),
                   LIGHTWS_ERR_PING_TIMEOUT);
  el = lightws_now() - t0;
  ck_assert_uint_ge(el, 290);
  ck_assert_uint_lt(el, 5000);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_PING);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_CLOSE);
  ck_assert_int_eq(p[0] << 8 | p[1], 1011);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* A blocking send to a peer that does not read: keepalive bounds it. */
START_TEST(test_blocking_send_stalled_peer_times_out) {
  int sv[2], sz = 4096;
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[1024];
  static uint8_t big[4 << 20];
  ssize_t w, total = 0;
  uint64_t t0, el;
  pair(sv, 0);
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  t = (struct lightws_timeouts){.ping_interval = 100, .ping_timeout = 200};
  t0 = timed(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, &t);
  for (;;) {
    w = lightws_stream_send(&s, 2, big + total, sizeof big - (size_t)total, 0);
    if (w < 0) break;
    total += w;
    ck_assert_int_lt(total, (ssize_t)sizeof big);
  }
  ck_assert_int_eq(w, LIGHTWS_ERR_PING_TIMEOUT);
  el = lightws_now() - t0;
  ck_assert_uint_ge(el, 290);
  ck_assert_uint_lt(el, 5000);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* ---- close ----------------------------------------------------------------- */

START_TEST(test_close_timeout) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_timeouts t;
  struct lightws_chunk c;
  uint8_t rb[1024];
  uint64_t now;
  pair(sv, 1);
  /* idle and keepalive stop once closing */
  t = (struct lightws_timeouts){.close = 300,
                                 .idle = 100,
                                 .ping_interval = 50};
  timed(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, &t);
  ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
  now = lightws_now();
  ck_assert_uint_le(lightws_stream_deadline(&s), now + 300);
  ck_assert_uint_ge(lightws_stream_deadline(&s), now + 250);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 200), 0);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_WOULDBLOCK);
  ck_assert_int_eq(lightws_stream_tick(&s, now + 300),
                   LIGHTWS_ERR_CLOSE_TIMEOUT);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_CLOSE_TIMEOUT);
  /* the peer's close then EOF: no deadline left */
  timed(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, &t);
  write_frame(sv[1], LIGHTWS_OPCODE_CLOSE, "\x03\xe8", 2, 0);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_CLOSED);
  ck_assert_uint_ne(lightws_stream_deadline(&s), LIGHTWS_NO_DEADLINE);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* Time off (the default, or all zero): no deadline, tick does nothing. */
START_TEST(test_no_timeouts_no_deadline) {
  struct lightws_stream s;
  struct lightws_timeouts t;
  uint8_t rb[512];
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, -1, rb, sizeof rb, 0), 0);
  ck_assert_uint_eq(lightws_stream_deadline(&s), LIGHTWS_NO_DEADLINE);
  ck_assert_int_eq(lightws_stream_tick(&s, lightws_now() + 1000000), 0);
  memset(&t, 0, sizeof t);
  ck_assert_int_eq(lightws_stream_set_timeouts(&s, &t, lightws_now()), 0);
  ck_assert_uint_eq(lightws_stream_deadline(&s), LIGHTWS_NO_DEADLINE);
  ck_assert_int_eq(lightws_stream_set_timeouts(NULL, &t, 0),
                   LIGHTWS_ERR_INVALID);
}
END_TEST

/* ---- issue 13: small rbuf handshake, view lifetime ------------------------- */

/* LIGHTWS_RBUF_MIN completes a client handshake: only the offered
 * protocols stay in rbuf while the response is read. */
START_TEST(test_connect_with_min_rbuf) {
  int sv[2], st;
  pid_t pid;
  struct lightws_stream s;
  struct lightws_client_options o;
  struct lightws_chunk c;
  uint8_t rb[LIGHTWS_RBUF_MIN];
  pair(sv, 0);
  pid = fork();
  if (pid == 0) {
    struct lightws_stream v;
    struct lightws_server_options so;
    uint8_t vrb[4096];
    close(sv[0]);
    memset(&so, 0, sizeof so);
    so.protocols = "chat";
    if (lightws_accept(&v, sv[1], vrb, sizeof vrb, NULL, &so) != 0) _exit(2);
    if (lightws_stream_send(&v, 1, "ok", 2, 0) != 2) _exit(3);
    sleep_ms(100);
    _exit(0);
  }
  close(sv[1]);
  memset(&o, 0, sizeof o);
  o.protocols = "superchat, chat";
  ck_assert_int_eq(
      lightws_connect(&s, sv[0], rb, sizeof rb, "127.0.0.1:12345", "/", &o),
      0);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), 2);
  ck_assert(memcmp(c.data, "ok", 2) == 0);
  close(sv[0]);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

/* A response head larger than rbuf is the buffer's fault: BUFFER_TOO_SMALL,
 * not HEAD_TOO_LARGE (which means max_head). */
START_TEST(test_client_response_over_rbuf) {
  int sv[2];
  struct lightws_stream s;
  uint8_t rb[LIGHTWS_RBUF_MIN];
  char big[400];
  pair(sv, 0);
  memset(big, 'a', sizeof big);
  ck_assert_int_eq(write(sv[1], "HTTP/1.1 101 OK\r\nX: ", 20), 20);
  ck_assert_int_eq(write(sv[1], big, sizeof big), (ssize_t)sizeof big);
  ck_assert_int_eq(lightws_connect(&s, sv[0], rb, sizeof rb, "h", "/", NULL),
                   LIGHTWS_ERR_BUFFER_TOO_SMALL);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* The rule of the header: a recv view survives send, sendv, ping, pong,
 * close, flush and tick; it is sent back unchanged (the echo pattern). */
START_TEST(test_recv_view_survives_sends) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_chunk c;
  struct lightws_msg m;
  uint8_t rb[LIGHTWS_RBUF_MIN], got[64], p[128];
  size_t n;
  const uint8_t *view;
  pair(sv, 1);
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, 0), 0);
  write_frame(sv[1], LIGHTWS_OPCODE_TEXT, "0123456789", 10, 1);
  write_frame(sv[1], LIGHTWS_OPCODE_PING, "p", 1, 1);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), 10);
  view = c.data;
  ck_assert_int_eq(lightws_stream_send(&s, 1, view, 5, LIGHTWS_SEND_FRAGMENT), 5);
  ck_assert_int_eq(lightws_stream_ping(&s, "x", 1), 0);
  ck_assert_int_eq(lightws_stream_flush(&s), 0);
  ck_assert_int_eq(lightws_stream_pong(&s, "y", 1), 0);
  ck_assert_int_eq(lightws_stream_tick(&s, lightws_now()), 0);
  ck_assert_int_eq(lightws_stream_send(&s, 1, view + 5, 5, 0), 5);
  m.data = view;
  m.len = 10;
  m.opcode = LIGHTWS_OPCODE_BINARY;
  ck_assert_int_eq(lightws_stream_sendv(&s, &m, 1), 10);
  ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
  ck_assert(c.data == view && memcmp(view, "0123456789", 10) == 0);
  /* on the wire: fragments "01234" + "56789", the ping, pong, binary */
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_TEXT);
  ck_assert(n == 5 && memcmp(p, "01234", 5) == 0);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_PING);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_PONG);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000),
                   LIGHTWS_OPCODE_CONTINUATION);
  ck_assert(n == 5 && memcmp(p, "56789", 5) == 0);
  ck_assert_int_eq(read_frame(sv[1], got, &n, 1000), LIGHTWS_OPCODE_BINARY);
  ck_assert(n == 10 && memcmp(got, "0123456789", 10) == 0);
  ck_assert_int_eq(read_frame(sv[1], p, &n, 1000), LIGHTWS_OPCODE_CLOSE);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

Suite *time_suite(void) {
  Suite *s = suite_create("time");
  TCase *t = tcase_create("timeouts");
  tcase_set_timeout(t, 30);
  tcase_add_test(t, test_accept_dribbled_request_times_out);
  tcase_add_test(t, test_connect_silent_server_times_out);
  tcase_add_test(t, test_handshake_deadline_nonblocking_steps);
  tcase_add_test(t, test_idle_timeout_closes_1001);
  tcase_add_test(t, test_blocking_read_idle_timeout);
  tcase_add_test(t, test_keepalive_ping_pong_and_timeout);
  tcase_add_test(t, test_keepalive_busy_stream_sends_no_ping);
  tcase_add_test(t, test_keepalive_ping_waits_behind_cut_frame);
  tcase_add_test(t, test_blocking_read_keepalive_with_live_peer);
  tcase_add_test(t, test_blocking_read_ping_timeout);
  tcase_add_test(t, test_blocking_send_stalled_peer_times_out);
  tcase_add_test(t, test_close_timeout);
  tcase_add_test(t, test_no_timeouts_no_deadline);
  suite_add_tcase(s, t);
  t = tcase_create("buffers");
  tcase_add_test(t, test_connect_with_min_rbuf);
  tcase_add_test(t, test_client_response_over_rbuf);
  tcase_add_test(t, test_recv_view_survives_sends);
  suite_add_tcase(s, t);
  return s;
}
