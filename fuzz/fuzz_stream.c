/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the whole stream (RFC 6455 §5-§7) in both roles, fed
 * arbitrary bytes in arbitrary pieces through a fake struct lightws_io,
 * with recv/read/read_bytes/send/ping/close calls mixed and a writev that
 * accepts random counts; what the stream writes is parsed back and data
 * read from valid input is compared with a one-piece reference run. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

#define OUT_MAX 65536
#define DATA_MAX (1u << 20)

struct fake {
  const uint8_t *in;
  size_t len, pos;
  uint64_t rng;
  int chop;          /* 0: hand out everything asked for */
  int eagain;        /* 1: may fail with EAGAIN */
  int last_again;    /* never two EAGAINs in a row: progress is possible */
  uint8_t out[OUT_MAX];
  size_t out_len;
  int out_full;
};

static ssize_t fake_read(void *ctx, void *buf, size_t len)
{
  struct fake *f = ctx;
  size_t n, left = f->len - f->pos;
  if (f->eagain && !f->last_again && fuzz_rng(&f->rng) % 8 == 0) {
    f->last_again = 1;
    errno = EAGAIN;
    return -1;
  }
  f->last_again = 0;
  if (left == 0)
    return 0;
  n = len < left ? len : left;
  if (f->chop && n > 1) {
    uint64_t r = fuzz_rng(&f->rng);
    size_t k = r % 4 == 0 ? n : 1 + (size_t)((r >> 8) % (r % 4 == 1 ? 3 : n));
    n = k < n ? k : n;
  }
  memcpy(buf, f->in + f->pos, n);
  f->pos += n;
  return (ssize_t)n;
}

static ssize_t fake_writev(void *ctx, const struct iovec *iov, int iovcnt)
{
  struct fake *f = ctx;
  size_t total = 0, n, done = 0;
  int i;
  FUZZ_CHECK(iovcnt >= 1 && iovcnt <= 1024);
  for (i = 0; i < iovcnt; i++) {
    FUZZ_CHECK(iov[i].iov_base != NULL || iov[i].iov_len == 0);
    total += iov[i].iov_len;
  }
  if (total == 0)
    return 0;
  if (f->eagain && !f->last_again && fuzz_rng(&f->rng) % 6 == 0) {
    f->last_again = 1;
    errno = EAGAIN;
    return -1;
  }
  f->last_again = 0;
  n = total;
  if (f->chop) {
    uint64_t r = fuzz_rng(&f->rng);
    if (r % 3 != 0)
      n = 1 + (size_t)((r >> 8) % total);
  }
  for (i = 0; i < iovcnt && done < n; i++) {
    size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
    if (f->out_len + k <= OUT_MAX) {
      memcpy(f->out + f->out_len, iov[i].iov_base, k);
      f->out_len += k;
    } else {
      f->out_full = 1;
    }
    done += k;
  }
  return (ssize_t)n;
}

struct result {
  int end;              /* terminal return value */
  size_t data_len;
  uint8_t *data;        /* concatenated payload read */
};

static uint8_t data_a[DATA_MAX], data_b[DATA_MAX];
static uint8_t rbuf_a[65536], rbuf_b[65536];
/* shared-buffer mode (the mixed run): a second buffer lent in turn with
 * rbuf_b, both scribbled over between turns, and a parking buffer for
 * what a release could not stash */
static uint8_t rbuf_c[65536], park_buf[65536];

/* Between two calls, as an event loop with one buffer for all its
 * connections does: take the buffer back (parking what does not fit the
 * stash), scribble over the shared buffers, maybe lend one of them again
 * (of a random size: a lend too small for what is held must be refused
 * and change nothing). */
static void share_turn(struct lightws_stream *s, uint64_t *rng, size_t rsize)
{
  ssize_t held = lightws_stream_release(s);
  uint64_t r = fuzz_rng(rng);
  size_t size;
  uint8_t *buf;
  int lr;
  FUZZ_CHECK(held >= 0);
  if (getenv("FUZZ_DEBUG"))
    fprintf(stderr, "share: held %zd unread %u\n", held, s->rend - s->rpos);
  if (held > 0 && s->rbuf != park_buf) {
    size_t n = (size_t)held < LIGHTWS_RBUF_MIN ? LIGHTWS_RBUF_MIN : (size_t)held;
    FUZZ_CHECK(lightws_stream_lend(s, park_buf, n) == 0);
  }
  memset(rbuf_b, (int)(r & 0xff), rsize);
  memset(rbuf_c, (int)(r >> 8 & 0xff), rsize);
  if (r >> 16 & 1)
    return; /* stay on the stash (or the park) for a while */
  buf = r >> 17 & 1 ? rbuf_b : rbuf_c;
  size = LIGHTWS_RBUF_MIN + (size_t)((r >> 18) % (rsize - LIGHTWS_RBUF_MIN + 1));
  lr = lightws_stream_lend(s, buf, size);
  FUZZ_CHECK(lr == 0 || (lr == LIGHTWS_ERR_NOSPACE && held > 0 && (size_t)held > size));
}

static int is_terminal(ssize_t r)
{
  return r < 0 && r != LIGHTWS_ERR_WOULDBLOCK && r != LIGHTWS_ERR_INCOMPLETE;
}

/* Parses what the stream wrote: frames of the right mask kind, control
 * frames final and short, nothing after a close, continuations only inside
 * a message. Returns the close code of the last close frame (0 none, 1005
 * for an empty one). */
static unsigned check_output(const struct fake *f, int role, int sent_partial)
{
  size_t pos = 0;
  int in_msg = 0, closed = 0;
  unsigned code = 0;
  unsigned flags = role == LIGHTWS_SERVER ? LIGHTWS_DECODE_EXPECT_UNMASKED
                                          : LIGHTWS_DECODE_EXPECT_MASKED;
  if (f->out_full)
    return 0;
  if (getenv("FUZZ_DEBUG")) {
    size_t i;
    fprintf(stderr, "role %d wrote %zu bytes:", role, f->out_len);
    for (i = 0; i < f->out_len && i < 256; i++)
      fprintf(stderr, " %02x", f->out[i]);
    fprintf(stderr, "\n");
  }
  while (pos < f->out_len) {
    struct lightws_frame fr;
    ssize_t h = lightws_frame_decode(&fr, f->out + pos, f->out_len - pos, flags);
    if (h == LIGHTWS_ERR_INCOMPLETE) {
      FUZZ_CHECK(sent_partial);
      return code;
    }
    FUZZ_CHECK(h > 0);
    FUZZ_CHECK(fr.rsv == 0);
    if (pos + (size_t)h + fr.length > f->out_len) {
      FUZZ_CHECK(sent_partial);
      return code;
    }
    FUZZ_CHECK(!closed);
    if (fr.opcode == LIGHTWS_OPCODE_CLOSE) {
      uint8_t p[125];
      memcpy(p, f->out + pos + h, (size_t)fr.length);
      if (fr.masked)
        lightws_mask(p, (size_t)fr.length, fr.mask, 0);
      FUZZ_CHECK(fr.length != 1);
      code = fr.length >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
      if (fr.length >= 2)
        FUZZ_CHECK(lightws_close_code_valid(code));
      closed = 1;
    } else if (fr.opcode == LIGHTWS_OPCODE_CONTINUATION) {
      FUZZ_CHECK(in_msg);
      in_msg = !fr.fin;
    } else if (fr.opcode == LIGHTWS_OPCODE_TEXT || fr.opcode == LIGHTWS_OPCODE_BINARY) {
      FUZZ_CHECK(!in_msg);
      in_msg = !fr.fin;
    }
    pos += (size_t)h + (size_t)fr.length;
  }
  return code;
}

/* One run. mixed = 0: the reference (one piece, read() only). */
static void run(const uint8_t *in, size_t len, int role, unsigned options,
                size_t rsize, uint32_t max_frame, uint32_t max_msg,
                size_t feed, uint64_t seed, int mixed, int shared,
                struct fake *f, struct result *res, uint8_t *rbuf,
                int *did_close)
{
  struct lightws_stream s;
  struct lightws_io io;
  size_t iter, max_iter = 64 + len * 8, stalls = 0;
  uint64_t rng = seed;
  static uint8_t tmp[4096];
  static const uint8_t msg[300] = "lightws fuzz payload";
  size_t send_left = 0, send_off = 0;
  int send_op = LIGHTWS_OPCODE_BINARY;
  int timed;
  uint64_t t0 = 0;
  int send_active = 0, empty_pending = 0, stuck_partial = 0, use_v = 0;
  struct { size_t len; int op; } vq[4];
  size_t vn = 0, vi = 0, voff = 0;
  ssize_t r = 0;

  memset(f, 0, sizeof *f);
  f->in = in + feed;
  f->len = len - feed;
  f->rng = seed ^ 0x5bd1e995;
  f->chop = mixed;
  f->eagain = mixed && (seed & 1);
  res->end = 0;
  res->data_len = 0;
  *did_close = 0;

  if (shared) {
    FUZZ_CHECK(lightws_stream_init(&s, role, -1, NULL, 0, options) == 0);
    FUZZ_CHECK(lightws_stream_lend(&s, rbuf, rsize) == 0);
  } else {
    FUZZ_CHECK(lightws_stream_init(&s, role, -1, rbuf, rsize, options) == 0);
  }
  memset(&io, 0, sizeof io); /* the optional hooks stay NULL */
  io.read = fake_read;
  io.writev = fake_writev;
  io.ctx = f;
  lightws_stream_set_io(&s, &io);
  if (role == LIGHTWS_CLIENT && mixed)
    FUZZ_CHECK(lightws_stream_set_mask_mode(&s, (enum lightws_mask_mode)(seed >> 8 & 3) % 3) == 0);
  if (role == LIGHTWS_SERVER)
    FUZZ_CHECK(lightws_stream_set_mask_mode(&s, LIGHTWS_MASK_FIXED) == LIGHTWS_ERR_INVALID);
  lightws_stream_set_limits(&s, max_frame, max_msg);
  if (feed)
    FUZZ_CHECK(lightws_stream_feed(&s, in, feed) == 0);
  /* Keepalive pings at random moments (no ping timeout: the run's outcome
   * stays that of the reference): the slot shared with pongs and closes,
   * a ping waiting behind a cut frame. */
  timed = mixed && (seed >> 4 & 1);
  if (timed) {
    struct lightws_timeouts t;
    memset(&t, 0, sizeof t);
    t.ping_interval = 2;
    t0 = lightws_now();
    FUZZ_CHECK(lightws_stream_set_timeouts(&s, &t, t0) == 0);
  }

  for (iter = 0; iter < max_iter; iter++) {
    unsigned op = mixed ? (unsigned)(fuzz_rng(&rng) % 16) : 1;
    struct lightws_chunk c;
    size_t want = mixed ? 1 + (size_t)(fuzz_rng(&rng) % sizeof tmp) : sizeof tmp;
    memset(&c, 0, sizeof c);
    if (send_active && op >= 12)
      op = 12;
    if (shared && fuzz_rng(&rng) % 3 == 0)
      share_turn(&s, &rng, rsize);
    if (timed && fuzz_rng(&rng) % 4 == 0) {
      int tr = lightws_stream_tick(&s, t0 + (uint64_t)iter * 3);
      FUZZ_CHECK(tr == 0 || is_terminal(tr));
      FUZZ_CHECK(lightws_stream_deadline(&s) != 0);
    }
    if (getenv("FUZZ_DEBUG") && mixed)
      fprintf(stderr, "op %u\n", op);
    if (op < 5) {
      r = lightws_stream_recv(&s, &c);
      if (r >= 0) {
        FUZZ_CHECK((size_t)r == c.len);
        if (r > 0)
          FUZZ_CHECK(c.data >= s.rbuf && c.data + c.len <= s.rbuf + s.rsize);
      }
    } else if (op < 9) {
      /* Under NO_AUTO_PONG a ping comes back as a chunk with opcode PING
       * (only `out` tells it from data), so pass `out` then. */
      int with_out = (op & 1) || (options & LIGHTWS_OPT_NO_AUTO_PONG) || !mixed;
      r = lightws_stream_read(&s, tmp, want, with_out ? &c : NULL);
      if (r >= 0) {
        FUZZ_CHECK((size_t)r <= want);
        if (with_out)
          FUZZ_CHECK(c.data == tmp && c.len == (size_t)r);
        c.data = tmp;
      }
    } else if (op < 12) {
      r = lightws_stream_read_bytes(&s, tmp, want);
      if (r >= 0) {
        FUZZ_CHECK((size_t)r <= want);
        FUZZ_CHECK(r > 0 || (options & LIGHTWS_OPT_DIRECT));
      }
      c.data = tmp;
    } else {
      /* Writes: continue a partly sent frame, or start one. */
      ssize_t w;
      unsigned k = (unsigned)(fuzz_rng(&rng) % 8);
      if (!send_active && k == 4) {
        /* A batch of 1-4 non-empty messages for lightws_stream_sendv(). */
        size_t j;
        vn = 1 + (size_t)(fuzz_rng(&rng) % 4);
        for (j = 0; j < vn; j++) {
          vq[j].len = 1 + (size_t)(fuzz_rng(&rng) % (sizeof msg - 1));
          vq[j].op = fuzz_rng(&rng) & 1 ? LIGHTWS_OPCODE_TEXT : LIGHTWS_OPCODE_BINARY;
        }
        vi = 0;
        voff = 0;
        use_v = 1;
        send_active = 1;
      } else if (!send_active && k < 4) {
        send_left = (size_t)(fuzz_rng(&rng) % sizeof msg);
        send_off = 0;
        send_active = 1;
        use_v = 0;
        send_op = k & 1 ? LIGHTWS_OPCODE_TEXT : LIGHTWS_OPCODE_BINARY;
      }
      if (send_active && use_v) {
        /* Continue from the first unsent byte, with sendv or send (both
         * allowed after a frame was cut short). */
        struct lightws_msg m[4];
        size_t j, cnt = 0, left;
        if (fuzz_rng(&rng) & 1) {
          for (j = vi; j < vn; j++, cnt++) {
            m[cnt].data = msg + (j == vi ? voff : 0);
            m[cnt].len = vq[j].len - (j == vi ? voff : 0);
            m[cnt].opcode = vq[j].op;
          }
          w = lightws_stream_sendv(&s, m, cnt);
        } else {
          w = lightws_stream_send(&s, vq[vi].op, msg + voff, vq[vi].len - voff, 0);
        }
        if (w >= 0) {
          left = (size_t)w;
          while (left && vi < vn) {
            size_t rem = vq[vi].len - voff;
            if (left >= rem) {
              left -= rem;
              vi++;
              voff = 0;
            } else {
              voff += left;
              left = 0;
            }
          }
          FUZZ_CHECK(left == 0);
          if (vi == vn)
            send_active = 0;
        } else {
          /* We follow the contract: INVALID would be the library's fault. */
          FUZZ_CHECK(w != LIGHTWS_ERR_INVALID);
          FUZZ_CHECK(w == LIGHTWS_ERR_WOULDBLOCK || w == LIGHTWS_ERR_CLOSED ||
                     w == LIGHTWS_ERR_SYSTEM || is_terminal(w));
          if (w != LIGHTWS_ERR_WOULDBLOCK) {
            send_active = 0;
            stuck_partial = 1;
          }
        }
      } else if (send_active) {
        w = lightws_stream_send(&s, send_op, msg + send_off, send_left, 0);
        if (w >= 0) {
          FUZZ_CHECK((size_t)w <= send_left);
          /* 0 for a non-empty frame: its head went out in part. An empty
           * frame counts as sent at once, its head maybe in part: the next
           * send finishes it (so the output may end inside it). */
          empty_pending = send_left == 0;
          send_left -= (size_t)w;
          send_off += (size_t)w;
          if (send_left == 0)
            send_active = 0;
        } else {
          FUZZ_CHECK(w == LIGHTWS_ERR_WOULDBLOCK || w == LIGHTWS_ERR_CLOSED ||
                     w == LIGHTWS_ERR_INVALID || w == LIGHTWS_ERR_SYSTEM ||
                     is_terminal(w));
          if (w != LIGHTWS_ERR_WOULDBLOCK) {
            send_active = 0;
            if (send_off || send_left)
              stuck_partial = 1;
          }
        }
      } else if (k == 5) {
        size_t n = (size_t)(fuzz_rng(&rng) % 127);
        w = fuzz_rng(&rng) & 1 ? lightws_stream_ping(&s, msg, n) : lightws_stream_pong(&s, msg, n);
        if (n > 125)
          FUZZ_CHECK(w < 0); /* INVALID, or CLOSED after our close */
      } else if (k == 6) {
        w = lightws_stream_flush(&s);
        FUZZ_CHECK(w == 0 || w == LIGHTWS_ERR_WOULDBLOCK || w == LIGHTWS_ERR_BUSY ||
                   w < 0);
      } else if (fuzz_rng(&rng) % 8 == 0) {
        w = lightws_stream_close(&s, 1000, "bye", 3);
        FUZZ_CHECK(w == 0 || w == LIGHTWS_ERR_WOULDBLOCK || w == LIGHTWS_ERR_BUSY || w < 0);
        if (w == 0)
          *did_close = 1;
      }
      (void)lightws_stream_want(&s);
      continue;
    }
    if (r >= 0 && c.opcode == LIGHTWS_OPCODE_PING) {
      FUZZ_CHECK(options & LIGHTWS_OPT_NO_AUTO_PONG);
      FUZZ_CHECK(op < 9 && c.len <= 125);
      stalls = 0;
      continue;
    }
    if (r >= 0 && r == (ssize_t)c.len && c.len)
      FUZZ_CHECK(c.opcode == LIGHTWS_OPCODE_TEXT || c.opcode == LIGHTWS_OPCODE_BINARY);
    if (r > 0 && getenv("FUZZ_DEBUG"))
      fprintf(stderr, "mixed %d: %zd bytes op %d fe %d me %d\n", mixed, r, c.opcode, c.frame_end,
              c.message_end);
    if (r > 0) {
      FUZZ_CHECK(c.data != NULL);
      if (res->data_len + (size_t)r <= DATA_MAX) {
        memcpy(res->data + res->data_len, c.data, (size_t)r);
        res->data_len += (size_t)r;
      }
      stalls = 0;
    } else if (r == 0 || r == LIGHTWS_ERR_WOULDBLOCK) {
      if (++stalls > 4096)
        break;
    } else {
      FUZZ_CHECK(is_terminal(r));
      res->end = (int)r;
      if (getenv("FUZZ_DEBUG"))
        fprintf(stderr, "mixed %d: end %s\n", mixed, lightws_errname((int)r));
      break;
    }
  }
  if (res->end) {
    /* Terminal states stay: the next read says the same. */
    ssize_t again = lightws_stream_read(&s, tmp, sizeof tmp, NULL);
    if (res->end != LIGHTWS_ERR_SYSTEM)
      FUZZ_CHECK(again == res->end);
    if (res->end == LIGHTWS_ERR_CLOSED) {
      /* The answer may wait in the control slot if writev would block. */
      int k, fl = LIGHTWS_ERR_WOULDBLOCK;
      for (k = 0; k < 16 && fl == LIGHTWS_ERR_WOULDBLOCK; k++)
        fl = lightws_stream_flush(&s);
      if (fl == 0)
        FUZZ_CHECK(lightws_stream_closing(&s) == 2);
      FUZZ_CHECK(lightws_stream_close_code(&s) >= 1000);
    }
    if (res->end == LIGHTWS_ERR_EOF && !*did_close)
      FUZZ_CHECK(lightws_stream_close_code(&s) == 1006);
    if (lightws_close_code(res->end) >= 1002 && lightws_close_code(res->end) != 1006)
      FUZZ_CHECK(lightws_stream_error(&s) == res->end);
  }
  /* Let queued control frames out, then check the written frames. */
  if (!send_active) {
    int k;
    for (k = 0; k < 16 && lightws_stream_flush(&s) == LIGHTWS_ERR_WOULDBLOCK; k++)
      ;
  }
  {
    int partial = send_active || empty_pending || stuck_partial;
    unsigned code = check_output(f, role, partial);
    int ce = lightws_close_code(res->end);
    if (res->end && ce >= 1002 && ce != 1006 && !*did_close && code && !partial)
      FUZZ_CHECK(code == (unsigned)ce);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct fake fa, fb;
  struct result a, b;
  int role, closed_a, closed_b;
  unsigned options = 0;
  size_t rsize, feed;
  uint32_t max_frame = 0, max_msg = 0;
  uint64_t seed;

  if (size < 6)
    return 0;
  /* Config: byte 0 role and options (0x20: the mixed run in shared-buffer
   * mode, 0x40: LIGHTWS_OPT_WHOLE_TEXT), byte 1 receive buffer size, byte 2
   * limits, byte 3 bytes handed in with lightws_stream_feed, 4-5 seed. */
  role = data[0] & 1 ? LIGHTWS_CLIENT : LIGHTWS_SERVER;
  if (data[0] & 0x02) options |= LIGHTWS_OPT_DIRECT;
  if (data[0] & 0x04) options |= LIGHTWS_OPT_NO_UTF8_CHECK;
  if (data[0] & 0x08) options |= LIGHTWS_OPT_NO_AUTO_PONG;
  if (data[0] & 0x10) options |= LIGHTWS_OPT_NO_MASK_CHECK;
  if (data[0] & 0x40) options |= LIGHTWS_OPT_WHOLE_TEXT;
  rsize = LIGHTWS_RBUF_MIN + (size_t)data[1] * 16;
  if (data[2] & 0x80) {
    max_frame = 1 + (data[2] & 0x0F) * 37;
    max_msg = 1 + ((data[2] >> 4) & 7) * 91;
  }
  seed = ((uint64_t)data[4] << 8 | data[5]) * 0x100000001b3ull + 7;
  data += 6;
  size -= 6;
  feed = size ? (size_t)data[-3] % (size + 1) : 0;
  if (feed > rsize / 2)
    feed = 0;

  a.data = data_a;
  b.data = data_b;
  run(data, size, role, options & ~LIGHTWS_OPT_DIRECT, rsize, max_frame,
      max_msg, feed, seed, 0, 0, &fa, &a, rbuf_a, &closed_a);
  run(data, size, role, options, rsize, max_frame, max_msg, feed, seed, 1,
      (data[-6] & 0x20) != 0, &fb, &b, rbuf_b, &closed_b);
  /* Valid input read to its end gives the same bytes however it is cut. */
  if ((a.end == LIGHTWS_ERR_CLOSED || a.end == LIGHTWS_ERR_EOF) && !closed_b &&
      b.end != 0 && b.end != LIGHTWS_ERR_SYSTEM) {
    FUZZ_CHECK(b.end == a.end);
    if (getenv("FUZZ_DEBUG"))
      fprintf(stderr, "data: reference %zu bytes, mixed %zu\n", a.data_len, b.data_len);
    if (a.end == LIGHTWS_ERR_EOF && (options & LIGHTWS_OPT_WHOLE_TEXT)) {
      /* a text frame cut by EOF is withheld whole when it fits the buffer
       * of the moment, handed out in part when not: one run's bytes are
       * a prefix of the other's */
      size_t n = a.data_len < b.data_len ? a.data_len : b.data_len;
      FUZZ_CHECK(memcmp(a.data, b.data, n) == 0);
    } else {
      FUZZ_CHECK(b.data_len == a.data_len);
      FUZZ_CHECK(memcmp(a.data, b.data, a.data_len) == 0);
    }
  }
  return 0;
}
