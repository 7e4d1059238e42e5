/* SPDX-License-Identifier: MIT */
/* wslay benchmark: the wslay_event API on a blocking socket, genmask from a PRNG. */
#include "bench_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

/*
 * wslay has no handshake: both ends here are wslay, so the upgrade is the
 * RFC 6455 §1.3 sample key and accept value (not timed, not checked).
 */
static const char REQUEST[] =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";
static const char RESPONSE[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/* Reads byte by byte up to the end of an HTTP head so no frame byte is taken. */
static int read_head(int fd) {
  char c;
  unsigned state = 0;
  while (state < 4) {
    if (read(fd, &c, 1) != 1) return -1;
    state = (c == "\r\n\r\n"[state]) ? state + 1 : (c == '\r' ? 1 : 0);
  }
  return 0;
}

struct ud {
  int fd;
  int stop_after_msg; /* pingpong: return WOULDBLOCK once a message arrived */
  int got_msg;
  int pingpong;
  int in_data;        /* bulk server: the frame being read is a data frame */
  uint64_t rng;
  uint64_t bytes, frames;
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user) {
  struct ud *u = user;
  ssize_t n;
  (void)flags;
  if (u->stop_after_msg && u->got_msg) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  do n = recv(u->fd, buf, len, 0); while (n < 0 && errno == EINTR);
  if (n < 0) {
    wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                   ? WSLAY_ERR_WOULDBLOCK
                                   : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user) {
  struct ud *u = user;
  ssize_t n;
  /* As wslay's examples do: MSG_MORE while the library has more to send. */
  int sflags = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
  do n = send(u->fd, data, len, sflags); while (n < 0 && errno == EINTR);
  if (n < 0) {
    wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                   ? WSLAY_ERR_WOULDBLOCK
                                   : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return n;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user) {
  struct ud *u = user;
  size_t i;
  (void)ctx;
  for (i = 0; i < len; i += 4) {
    uint64_t r = bench_rand(&u->rng);
    size_t k = len - i < 4 ? len - i : 4;
    memcpy(buf + i, &r, k);
  }
  return 0;
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg, void *user) {
  struct ud *u = user;
  if (arg->opcode != WSLAY_BINARY_FRAME && arg->opcode != WSLAY_TEXT_FRAME)
    return;
  u->got_msg = 1;
  u->bytes += arg->msg_length;
  u->frames++;
  if (u->pingpong && !wslay_event_get_close_sent(ctx)) {
    /* Server echo (the client's callbacks have pingpong = 0). */
    struct wslay_event_msg m;
    m.opcode = arg->opcode;
    m.msg = arg->msg;
    m.msg_length = arg->msg_length;
    wslay_event_queue_msg(ctx, &m);
  }
}

/* Bulk server: no message buffering (wslay's option for streaming). */
static void on_start(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_frame_recv_start_arg *arg,
                     void *user) {
  struct ud *u = user;
  (void)ctx;
  u->in_data = arg->opcode < 8;
  if (u->in_data) u->frames++;
}

static void on_chunk(wslay_event_context_ptr ctx,
                     const struct wslay_event_on_frame_recv_chunk_arg *arg,
                     void *user) {
  struct ud *u = user;
  (void)ctx;
  if (u->in_data) u->bytes += arg->data_length;
}

static int server(const struct bench_args *a) {
  struct wslay_event_callbacks cb;
  wslay_event_context_ptr ctx;
  struct ud u;
  memset(&u, 0, sizeof(u));
  memset(&cb, 0, sizeof(cb));
  u.fd = bench_accept(a->port);
  if (u.fd < 0 || read_head(u.fd) < 0 ||
      bench_write_all(u.fd, RESPONSE, sizeof(RESPONSE) - 1) < 0)
    return 1;
  cb.recv_callback = recv_cb;
  cb.send_callback = send_cb;
  if (a->pingpong) {
    cb.on_msg_recv_callback = on_msg;
  } else {
    cb.on_frame_recv_start_callback = on_start;
    cb.on_frame_recv_chunk_callback = on_chunk;
  }
  if (wslay_event_context_server_init(&ctx, &cb, &u) != 0) return 1;
  if (!a->pingpong) {
    wslay_event_config_set_no_buffering(ctx, 1);
    wslay_event_recv(ctx); /* blocking: returns once the close arrived */
  } else {
    u.pingpong = 1;
    u.stop_after_msg = 1;
    while (wslay_event_want_read(ctx)) {
      u.got_msg = 0;
      if (wslay_event_recv(ctx) != 0) break;
      if (wslay_event_send(ctx) != 0) break;
    }
  }
  wslay_event_send(ctx); /* the close reply */
  wslay_event_context_free(ctx);
  close(u.fd);
  bench_print_server(u.bytes, u.frames);
  return 0;
}

static int client(const struct bench_args *a) {
  struct wslay_event_callbacks cb;
  wslay_event_context_ptr ctx;
  struct wslay_event_msg m;
  struct ud u;
  uint8_t *buf = malloc(a->size);
  uint64_t i;
  double t0;
  memset(&u, 0, sizeof(u));
  memset(&cb, 0, sizeof(cb));
  u.rng = 0x2545F4914F6CDD1DULL ^ (uint64_t)getpid();
  u.fd = bench_connect(a->port);
  if (!buf || u.fd < 0 || bench_write_all(u.fd, REQUEST, sizeof(REQUEST) - 1) < 0 ||
      read_head(u.fd) < 0)
    return 1;
  for (i = 0; i < a->size; i++) buf[i] = (uint8_t)bench_rand(&u.rng);
  cb.recv_callback = recv_cb;
  cb.send_callback = send_cb;
  cb.genmask_callback = genmask_cb;
  cb.on_msg_recv_callback = on_msg;
  if (wslay_event_context_client_init(&ctx, &cb, &u) != 0) return 1;
  m.opcode = WSLAY_BINARY_FRAME;
  m.msg = buf;
  m.msg_length = a->size;
  u.stop_after_msg = 1;
  t0 = bench_now();
  for (i = 0; i < a->frames; i++) {
    if (wslay_event_queue_msg(ctx, &m) != 0 || wslay_event_send(ctx) != 0)
      return 1;
    if (a->pingpong) {
      u.got_msg = 0;
      if (wslay_event_recv(ctx) != 0 || !u.got_msg) return 1;
    }
  }
  wslay_event_queue_close(ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
  if (wslay_event_send(ctx) != 0) return 1;
  u.stop_after_msg = 0;
  while (wslay_event_want_read(ctx))
    if (wslay_event_recv(ctx) != 0) break;
  if (a->pingpong)
    bench_print_pingpong(bench_now() - t0, a->frames);
  else
    bench_print_bulk(bench_now() - t0, a->frames * a->size, a->frames);
  wslay_event_context_free(ctx);
  close(u.fd);
  free(buf);
  return 0;
}

/* ---- micro (W4) --------------------------------------------------------- */

/*
 * wslay has no head codec of its own in its API: its frame layer
 * (wslay_frame_recv / wslay_frame_send) reads and writes through callbacks.
 * The figures feed it from memory and send into a callback that only counts,
 * so they are the library's own cost per frame and per byte, each the best
 * of several short runs (the machine is shared; the least disturbed run is
 * the closest to the code's own cost).
 */
struct mem {
  const uint8_t *src; /* the byte stream wslay_frame_recv reads, cyclic */
  size_t len, off;
  uint64_t sent, rng;
};

static ssize_t mem_recv(uint8_t *buf, size_t len, int flags, void *user) {
  struct mem *m = user;
  size_t n = m->len - m->off < len ? m->len - m->off : len;
  (void)flags;
  memcpy(buf, m->src + m->off, n);
  m->off = (m->off + n) % m->len;
  return (ssize_t)n;
}

static ssize_t mem_send(const uint8_t *data, size_t len, int flags, void *user) {
  struct mem *m = user;
  (void)flags;
  m->sent += len + data[len - 1]; /* reads the last byte wslay wrote */
  return (ssize_t)len;
}

static int mem_genmask(uint8_t *buf, size_t len, void *user) {
  struct mem *m = user;
  uint64_t r = bench_rand(&m->rng);
  memcpy(buf, &r, len < 8 ? len : 8);
  return 0;
}

/* Receives payload bytes until `want` arrived; -1 on a wslay error. */
static int recv_payload(wslay_frame_context_ptr ctx, uint64_t want) {
  struct wslay_frame_iocb io;
  uint64_t got = 0;
  while (got < want) {
    ssize_t r = wslay_frame_recv(ctx, &io);
    if (r == WSLAY_ERR_WANT_READ) continue;
    if (r < 0) return -1;
    got += (uint64_t)r;
  }
  return 0;
}

/* A stream of `nframes` client frames (masked, RFC 6455 §5.3) of `plen`
 * payload bytes each; plen < 126 (the 2-byte length form) or 65536. */
static uint8_t *masked_frames(size_t nframes, size_t plen, size_t *total) {
  size_t hl = plen < 126 ? 6 : 14, i, j;
  uint8_t *p = malloc(nframes * (hl + plen)), *f;
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  if (!p) return NULL;
  for (i = 0, f = p; i < nframes; i++, f += hl + plen) {
    uint64_t key = bench_rand(&seed);
    f[0] = 0x82; /* FIN, binary */
    if (plen < 126) {
      f[1] = (uint8_t)(0x80 | plen);
    } else {
      f[1] = 0x80 | 127;
      for (j = 0; j < 8; j++) f[2 + j] = (uint8_t)((uint64_t)plen >> (56 - 8 * j));
    }
    memcpy(f + hl - 4, &key, 4);
    for (j = 0; j < plen; j++) f[hl + j] = (uint8_t)(bench_rand(&seed) ^ f[hl - 4 + j % 4]);
  }
  *total = nframes * (hl + plen);
  return p;
}

/* Best of `trials` runs of wslay_frame_recv reading `per_run` payload bytes
 * from `nframes` masked frames of `plen` bytes, replayed by a memory recv
 * callback: seconds per run, or a negative value on failure. */
static double recv_best(size_t nframes, size_t plen, uint64_t per_run, int trials) {
  struct wslay_frame_callbacks cb = {mem_send, mem_recv, mem_genmask};
  wslay_frame_context_ptr ctx;
  struct mem m;
  double best = 1e9;
  int t;
  memset(&m, 0, sizeof(m));
  m.src = masked_frames(nframes, plen, &m.len);
  if (!m.src || wslay_frame_context_init(&ctx, &cb, &m) != 0) return -1;
  for (t = 0; t < trials; t++) {
    double t0 = bench_now(), dt;
    if (recv_payload(ctx, per_run) < 0) {
      best = -1;
      break;
    }
    dt = bench_now() - t0;
    if (dt < best) best = dt;
  }
  wslay_frame_context_free(ctx);
  free((void *)m.src);
  return best;
}

/* ns per frame: masked frames with a 16-byte payload (a 6-byte head),
 * decoded and unmasked by wslay_frame_recv from a memory recv callback. */
static double micro_frame16(void) {
  enum { PER_RUN = 65536 };
  double best = recv_best(256, 16, (uint64_t)PER_RUN * 16, 40);
  return best < 0 ? 0 : best * 1e9 / PER_RUN;
}

/* GB/s of payload for one 64 KiB masked frame: wslay_frame_send masks into
 * its own 4 KiB buffer (the masked copy) and hands it to the callback. */
static double micro_send_mask(void) {
  enum { LEN = 65536, REPS = 200, TRIALS = 15 };
  struct wslay_frame_callbacks cb = {mem_send, mem_recv, mem_genmask};
  wslay_frame_context_ptr ctx;
  struct wslay_frame_iocb io;
  struct mem m;
  uint8_t *buf = malloc(LEN);
  double best = 1e9;
  int t, i;
  memset(&m, 0, sizeof(m));
  m.rng = 0x2545F4914F6CDD1DULL;
  if (!buf || wslay_frame_context_init(&ctx, &cb, &m) != 0) return 0;
  memset(buf, 0x5a, LEN);
  memset(&io, 0, sizeof(io));
  io.fin = 1;
  io.opcode = WSLAY_BINARY_FRAME;
  io.mask = 1;
  io.payload_length = LEN;
  io.data = buf;
  io.data_length = LEN;
  for (t = 0; t < TRIALS; t++) {
    double t0 = bench_now(), dt;
    for (i = 0; i < REPS; i++)
      if (wslay_frame_send(ctx, &io) != LEN) return 0; /* the callback takes everything */
    dt = bench_now() - t0;
    if (dt < best) best = dt;
  }
  wslay_frame_context_free(ctx);
  free(buf);
  return (double)LEN * REPS / best / 1e9;
}

/* GB/s of payload for 64 KiB masked frames read by wslay_frame_recv: the
 * recv callback copies into wslay's 4 KiB buffer, wslay unmasks there. */
static double micro_recv_unmask(void) {
  enum { REPS = 200 };
  double best = recv_best(4, 65536, (uint64_t)REPS * 65536, 15);
  return best <= 0 ? 0 : 65536.0 * REPS / best / 1e9;
}

static int micro(void) {
  double send = micro_send_mask(), memcpy_gbps = bench_memcpy_GBps(15, 2000);
  bench_micro_print("frame16_decode_ns", micro_frame16());
  bench_micro_print("send_mask_copy_GBps", send);
  bench_micro_print("recv_unmask_copy_GBps", micro_recv_unmask());
  bench_micro_print("memcpy_GBps", memcpy_gbps);
  bench_micro_print("mask_vs_memcpy", memcpy_gbps > 0 ? send / memcpy_gbps : 0);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_args a;
  if (argc == 2 && strcmp(argv[1], "micro") == 0) return micro();
  if (bench_parse(argc, argv, &a) < 0) return 2;
  return a.server ? server(&a) : client(&a);
}
