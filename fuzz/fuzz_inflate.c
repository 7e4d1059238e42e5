/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the inflate path of the stream (RFC 7692 §7.2.2). A
 * server with permessage-deflate on reads arbitrary bytes, in arbitrary
 * pieces with EAGAIN between them, through recv, read or read_bytes.
 * Byte 0 picks the mode: raw wire (the input is the frames), or framed
 * (the harness wraps the input in masked frames of a compressed message,
 * so the fuzzer works on the deflate data itself), or round trip (the
 * input is a message: a lightws client compresses it, the server must
 * read back exactly it). Properties: no crash or sanitizer report; no
 * message longer than max_message, no recv chunk over the work buffer;
 * text handed out is valid UTF-8; a failure is sticky and its close frame
 * carries lightws_close_code(err); the block is never written past its
 * end (canary). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

#define OUT_MAX 65536
#define CANARY 64

struct fake {
  const uint8_t *in;
  size_t len, pos;
  uint64_t rng;
  int chop, eagain, last_again;
  uint8_t out[OUT_MAX];
  size_t out_len;
};

static ssize_t fake_read(void *ctx, void *buf, size_t len)
{
  struct fake *f = ctx;
  size_t n, left = f->len - f->pos;
  if (f->eagain && !f->last_again && fuzz_rng(&f->rng) % 4 == 0) {
    f->last_again = 1;
    errno = EAGAIN;
    return -1;
  }
  f->last_again = 0;
  if (left == 0)
    return 0;
  n = len < left ? len : left;
  if (f->chop && n > 1)
    n = 1 + (size_t)(fuzz_rng(&f->rng) % (n < 64 ? n : 64));
  memcpy(buf, f->in + f->pos, n);
  f->pos += n;
  return (ssize_t)n;
}

static ssize_t fake_writev(void *ctx, const struct iovec *iov, int iovcnt)
{
  struct fake *f = ctx;
  size_t total = 0;
  int i;
  for (i = 0; i < iovcnt; i++) {
    size_t k = iov[i].iov_len;
    if (f->out_len + k <= OUT_MAX) {
      memcpy(f->out + f->out_len, iov[i].iov_base, k);
      f->out_len += k;
    }
    total += k;
  }
  return (ssize_t)total;
}

/* The code of the close frame a server wrote (unmasked frames). */
static unsigned close_code(const struct fake *f)
{
  size_t pos = 0;
  while (pos < f->out_len) {
    struct lightws_frame fr;
    ssize_t h = lightws_frame_decode_full(&fr, f->out + pos, f->out_len - pos,
                                          LIGHTWS_DECODE_ALLOW_RSV1);
    if (h <= 0 || pos + (size_t)h + fr.length > f->out_len)
      return 0;
    FUZZ_CHECK(fr.masked == 0);
    if (fr.opcode == LIGHTWS_OPCODE_CLOSE)
      return fr.length >= 2 ? (unsigned)(f->out[pos + h] << 8 |
                                         f->out[pos + h + 1]) : 1005;
    pos += (size_t)h + (size_t)fr.length;
  }
  return 0;
}

static void put_frame(uint8_t *w, size_t *wl, size_t cap, int fin, int rsv1,
                      int op, const uint8_t *d, size_t n)
{
  struct lightws_frame f;
  memset(&f, 0, sizeof f);
  f.fin = (uint8_t)fin;
  f.rsv = rsv1 ? 0x40 : 0;
  f.opcode = (uint8_t)op;
  f.length = n;
  f.masked = 1; /* key 0: the bytes stay as they are */
  if (*wl + 14 + n > cap)
    return;
  *wl += lightws_frame_encode_unchecked(&f, w + *wl);
  memcpy(w + *wl, d, n);
  *wl += n;
}

static uint8_t mem_s[1 << 18], mem_c[1 << 18];
static uint8_t wire[1 << 17];
static uint8_t rbuf_s[65536], rbuf_c[4096];
static uint8_t got[1 << 20], tmp[70000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct fake f, fc;
  struct lightws_stream s;
  struct lightws_io io;
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params ag;
  const uint8_t *in;
  size_t len, m, rsize, iter, msg_len = 0, got_len = 0;
  uint32_t max_msg;
  int mode, api, err = 0;
  uint64_t seed;
  if (size < 4 || !lightws_pmd_available())
    return 0;
  mode = data[0] % 3;
  api = (data[0] >> 2) % 3;
  memset(&cfg, 0, sizeof cfg);
  memset(&ag, 0, sizeof ag);
  cfg.peer_window_bits = (uint8_t)(8 + data[1] % 8);
  cfg.work_size = data[1] & 0x80 ? 256 : 0;
  cfg.threshold = 1;
  ag.client_max_window_bits = cfg.peer_window_bits;
  ag.client_no_context_takeover = (uint8_t)(data[2] & 1);
  ag.server_no_context_takeover = (uint8_t)((data[2] >> 1) & 1);
  max_msg = data[2] & 4 ? 1000 : 1u << 20;
  rsize = data[2] & 8 ? 256 : sizeof rbuf_s;
  seed = data[3] | (uint64_t)data[2] << 8;
  in = data + 4;
  len = size - 4;

  if (mode == 1) {
    /* the input as the deflate data of one message, in frames of sizes
     * taken from the seed */
    size_t wl = 0, off = 0;
    uint64_t r = seed | 1;
    do {
      size_t n = 1 + (size_t)(fuzz_rng(&r) % 300);
      if (n > len - off)
        n = len - off;
      put_frame(wire, &wl, sizeof wire, off + n == len, off == 0,
                off == 0 ? (data[3] & 1 ? 1 : 2) : 0, in + off, n);
      off += n;
    } while (off < len);
    in = wire;
    len = wl;
  } else if (mode == 2) {
    /* the input as a message that a lightws client compresses */
    struct lightws_stream c;
    struct lightws_io cio;
    size_t off = 0;
    memset(&fc, 0, sizeof fc);
    FUZZ_CHECK(lightws_stream_init(&c, LIGHTWS_CLIENT, -1, rbuf_c,
                                   sizeof rbuf_c, 0) == 0);
    memset(&cio, 0, sizeof cio); /* the optional hooks stay NULL */
    cio.read = fake_read;
    cio.writev = fake_writev;
    cio.ctx = &fc;
    lightws_stream_set_io(&c, &cio);
    FUZZ_CHECK(lightws_stream_set_mask_mode(&c, LIGHTWS_MASK_ZERO) == 0);
    {
      struct lightws_pmd_config cc;
      struct lightws_pmd_params ca = ag;
      memset(&cc, 0, sizeof cc);
      cc.threshold = 1;
      cc.work_size = cfg.work_size;
      cc.window_bits = 15;
      cc.level = (int8_t)(data[3] % 11) - 1;
      FUZZ_CHECK(lightws_stream_set_deflate(&c, &ca, &cc, mem_c,
                                            sizeof mem_c) == 0);
    }
    if (len > 8192)
      len = 8192;
    msg_len = len;
    while (off < len) {
      ssize_t w = lightws_stream_send(&c, LIGHTWS_OPCODE_BINARY, in + off,
                                      len - off, 0);
      FUZZ_CHECK(w > 0);
      off += (size_t)w;
    }
    if (len == 0)
      FUZZ_CHECK(lightws_stream_send(&c, LIGHTWS_OPCODE_BINARY, in, 0, 0) == 0);
    FUZZ_CHECK(lightws_stream_flush(&c) == 0);
    FUZZ_CHECK(fc.out_len < OUT_MAX);
    memcpy(wire, fc.out, fc.out_len);
    in = wire;
    len = fc.out_len;
    max_msg = 1u << 20;
  }

  memset(&f, 0, sizeof f);
  f.in = in;
  f.len = len;
  f.rng = seed;
  f.chop = (int)(data[3] >> 1 & 1);
  f.eagain = (int)(data[3] >> 2 & 1);
  FUZZ_CHECK(lightws_stream_init(&s, LIGHTWS_SERVER, -1, rbuf_s, rsize,
                                 data[3] & 8 ? LIGHTWS_OPT_DIRECT : 0) == 0);
  memset(&io, 0, sizeof io); /* the optional hooks stay NULL */
  io.read = fake_read;
  io.writev = fake_writev;
  io.ctx = &f;
  lightws_stream_set_io(&s, &io);
  lightws_stream_set_limits(&s, 0, max_msg);
  m = lightws_pmd_mem_size(&cfg);
  FUZZ_CHECK(m > 0 && m + CANARY <= sizeof mem_s);
  memset(mem_s + m, 0xA5, CANARY);
  FUZZ_CHECK(lightws_stream_set_deflate(&s, &ag, &cfg, mem_s, m) == 0);

  for (iter = 0; iter < 100000; iter++) {
    struct lightws_chunk c;
    ssize_t r;
    memset(&c, 0, sizeof c);
    if (api == 0) {
      r = lightws_stream_recv(&s, &c);
      if (r > 0 && mode != 0) /* all compressed: views of the work buffer */
        FUZZ_CHECK((size_t)r <= (cfg.work_size ? cfg.work_size : 4096u));
    } else if (api == 1) {
      r = lightws_stream_read(&s, tmp, 1 + (size_t)(seed % sizeof tmp), &c);
      c.data = tmp;
    } else {
      r = lightws_stream_read_bytes(&s, tmp, 1 + (size_t)(seed % 5000));
      c.data = tmp;
      c.len = r > 0 ? (size_t)r : 0;
      c.opcode = 0;
    }
    if (r == LIGHTWS_ERR_WOULDBLOCK)
      continue;
    if (r < 0) {
      err = (int)r;
      break;
    }
    FUZZ_CHECK((size_t)r == c.len);
    if (api != 2) {
      FUZZ_CHECK(got_len + c.len <= max_msg);
      if (c.len && got_len + c.len <= sizeof got)
        memcpy(got + got_len, c.data, c.len);
      got_len += c.len;
      if (c.message_end) {
        if (c.opcode == LIGHTWS_OPCODE_TEXT && got_len <= sizeof got) {
          struct lightws_utf8 u;
          u.state = 0;
          FUZZ_CHECK(lightws_utf8_feed(&u, got, got_len) == LIGHTWS_UTF8_VALID);
        }
        if (mode == 2) {
          FUZZ_CHECK(got_len == msg_len);
          FUZZ_CHECK(memcmp(got, data + 4, msg_len) == 0);
        }
        got_len = 0;
      }
    } else if (mode == 2 && r > 0) {
      FUZZ_CHECK(got_len + c.len <= msg_len);
      FUZZ_CHECK(memcmp(tmp, data + 4 + got_len, c.len) == 0);
      got_len += c.len;
    }
  }
  if (mode == 2)
    FUZZ_CHECK(err == LIGHTWS_ERR_EOF);
  if (err && lightws_close_code(err) && err != LIGHTWS_ERR_EOF) {
    struct lightws_chunk c;
    FUZZ_CHECK(lightws_stream_error(&s) == err);
    FUZZ_CHECK(lightws_stream_recv(&s, &c) == err);
    FUZZ_CHECK(close_code(&f) == (unsigned)lightws_close_code(err));
  }
  for (m = lightws_pmd_mem_size(&cfg), iter = 0; iter < CANARY; iter++)
    FUZZ_CHECK(mem_s[m + iter] == 0xA5);
  return 0;
}
