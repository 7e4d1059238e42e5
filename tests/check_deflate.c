/* SPDX-License-Identifier: MIT */
/* permessage-deflate (RFC 7692) in the stream: the memory block (exact
 * size, nothing written past it, no heap), the §7.2.3 examples byte for
 * byte both ways, round trips for every window, context takeover on and
 * off, every byte boundary of compressed frames on a 1-byte transport with
 * EAGAIN between calls, bombs and bad input. Real zlib plays the peer. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1 /* mallinfo2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check_lightws.h"
#include "internal.h"

#define FAST(c)                                                          \
  do {                                                                   \
    if (!(c)) ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);         \
  } while (0)

#if LIGHTWS_HAVE_ZLIB
static int quick(void) {
  const char *q = getenv("LIGHTWS_TEST_QUICK");
  return q && *q && *q != '0';
}
#endif

/* ---- growable byte buffer ---------------------------------------------- */

struct bytes {
  uint8_t *p;
  size_t len, size;
};

static void put(struct bytes *b, const void *d, size_t n) {
  if (b->len + n > b->size) {
    b->size = (b->len + n) * 2 + 256;
    b->p = realloc(b->p, b->size);
    FAST(b->p != NULL);
  }
  if (n) memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void bytes_free(struct bytes *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* A frame as a peer sends it: rsv1, masked with key `key` when masked. */
static void put_frame(struct bytes *b, int fin, int rsv1, int op,
                      const void *d, size_t n, int masked, uint32_t key) {
  struct lightws_frame f;
  uint8_t h[14];
  size_t hl, at;
  memset(&f, 0, sizeof f);
  f.fin = (uint8_t)fin;
  f.rsv = rsv1 ? 0x40 : 0;
  f.opcode = (uint8_t)op;
  f.length = n;
  f.masked = (uint8_t)masked;
  memcpy(f.mask, &key, 4);
  hl = lightws_frame_encode_unchecked(&f, h);
  put(b, h, hl);
  at = b->len;
  put(b, d, n);
  if (masked) lightws_mask(b->p + at, n, f.mask, 0);
}

#if LIGHTWS_HAVE_ZLIB
static void fill(uint8_t *p, size_t n, unsigned seed) {
  /* compressible but not trivial: words from a small set */
  static const char *const words[] = {"lorem ", "ipsum ", "dolor ", "sit ",
                                      "amet, ", "consectetur ", "elit. ",
                                      "\xc3\xa9t\xc3\xa9 "};
  size_t i = 0;
  uint32_t x = seed * 2654435761u + 1;
  while (i < n) {
    const char *w;
    size_t k;
    x = x * 1103515245u + 12345u;
    w = words[(x >> 16) & 7];
    if (strlen(w) > n - i) w = "."; /* never cut a character */
    for (k = 0; w[k] && i < n; k++) p[i++] = (uint8_t)w[k];
  }
}
#endif

/* ---- fake transport ------------------------------------------------------ */

struct zio {
  const uint8_t *in;
  size_t in_len, in_pos;
  size_t rmax;    /* bytes per read at most (0: all asked for) */
  int ragain;     /* EAGAIN before every other read */
  int rtog;
  int end_eagain; /* no more input: EAGAIN instead of EOF */
  /* generated input (bombs): called for more bytes when `in` runs out */
  size_t (*gen)(void *ctx, uint8_t *buf, size_t len);
  void *gctx;
  size_t in_total; /* bytes handed to the stream */
  struct bytes out;
  size_t wmax;
  int wagain, wtog;
  int writes;
};

static ssize_t zio_read(void *ctx, void *buf, size_t len) {
  struct zio *z = ctx;
  size_t n;
  if (z->ragain && (z->rtog ^= 1)) {
    errno = EAGAIN;
    return -1;
  }
  if (z->rmax && len > z->rmax) len = z->rmax;
  if (z->in_pos == z->in_len && z->gen) {
    n = z->gen(z->gctx, buf, len);
    z->in_total += n;
    return (ssize_t)n;
  }
  n = z->in_len - z->in_pos;
  if (n == 0) {
    if (z->end_eagain) {
      errno = EAGAIN;
      return -1;
    }
    return 0;
  }
  if (n > len) n = len;
  memcpy(buf, z->in + z->in_pos, n);
  z->in_pos += n;
  z->in_total += n;
  return (ssize_t)n;
}

static ssize_t zio_writev(void *ctx, const struct iovec *iov, int cnt) {
  struct zio *z = ctx;
  size_t n = 0, want = 0;
  int i;
  z->writes++;
  if (z->wagain && (z->wtog ^= 1)) {
    errno = EAGAIN;
    return -1;
  }
  for (i = 0; i < cnt; i++) want += iov[i].iov_len;
  if (z->wmax && want > z->wmax) want = z->wmax;
  for (i = 0; i < cnt && n < want; i++) {
    size_t k = iov[i].iov_len < want - n ? iov[i].iov_len : want - n;
    put(&z->out, iov[i].iov_base, k);
    n += k;
  }
  return (ssize_t)n;
}

static struct lightws_io zio_ops(struct zio *z) {
  struct lightws_io io;
  memset(&io, 0, sizeof io); /* the optional hooks stay NULL */
  io.read = zio_read;
  io.writev = zio_writev;
  io.ctx = z;
  return io;
}

/* A stream over `io` with compression agreed as `ag`, local choices `cfg`;
 * the block is malloc'ed (exact size) and returned. */
struct zside {
  struct lightws_stream s;
  struct zio z;
  struct lightws_io io;
  uint8_t *rbuf;
  void *mem;
};

static void side_init(struct zside *x, int role, size_t rsize, unsigned opts,
                      const struct lightws_pmd_params *ag,
                      const struct lightws_pmd_config *cfg) {
  memset(x, 0, sizeof *x);
  x->rbuf = malloc(rsize);
  x->io = zio_ops(&x->z);
  ck_assert_int_eq(lightws_stream_init(&x->s, role, -1, x->rbuf, rsize, opts),
                   0);
  lightws_stream_set_io(&x->s, &x->io);
#if LIGHTWS_HAVE_ZLIB
  if (ag) {
    size_t m = lightws_pmd_mem_size(cfg);
    ck_assert_uint_gt(m, 0);
    x->mem = malloc(m);
    ck_assert_int_eq(lightws_stream_set_deflate(&x->s, ag, cfg, x->mem, m), 0);
    ck_assert_int_eq(lightws_stream_deflate(&x->s), 1);
  }
#else
  (void)ag;
  (void)cfg;
#endif
}

static void side_free(struct zside *x) {
  free(x->rbuf);
  free(x->mem);
  bytes_free(&x->z.out);
}

/* ---- reading everything --------------------------------------------------- */

enum api { API_RECV, API_READ, API_READ_BYTES };

struct got {
  struct bytes data;
  size_t len[64];
  int op[64];
  int comp[64]; /* chunk->compressed of the message's last chunk */
  size_t n;
  int end;
  int pongs;
};

/* Reads until an error other than WOULDBLOCK (retried); bufsize for
 * read/read_bytes. In direct mode a 0 chunk without ends is no progress. */
static void drain(struct lightws_stream *s, enum api api, size_t bufsize,
                  struct got *g) {
  uint8_t *tmp = malloc(bufsize ? bufsize : 1);
  size_t cur = 0;
  long spins = 0;
  memset(g, 0, sizeof *g);
  for (;;) {
    struct lightws_chunk c;
    ssize_t r;
    memset(&c, 0, sizeof c);
    if (api == API_RECV) {
      r = lightws_stream_recv(s, &c);
    } else if (api == API_READ) {
      r = lightws_stream_read(s, tmp, bufsize, &c);
    } else {
      r = lightws_stream_read_bytes(s, tmp, bufsize);
      if (r >= 0) {
        c.data = tmp;
        c.len = (size_t)r;
      }
    }
    if (lightws_stream_pong_data(s, NULL)) g->pongs++;
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      FAST(++spins < 100000000L);
      continue;
    }
    if (r < 0) {
      g->end = (int)r;
      break;
    }
    FAST((size_t)r == c.len);
    put(&g->data, c.data, c.len);
    cur += c.len;
    if (api == API_READ_BYTES) continue;
    if (c.message_end) {
      FAST(g->n < 64);
      g->len[g->n] = cur;
      g->op[g->n] = c.opcode;
      g->comp[g->n] = c.compressed;
      g->n++;
      cur = 0;
    }
  }
  free(tmp);
}

/* ---- what a stream wrote -------------------------------------------------- */

struct wmsg {
  int op, compressed, frames;
  struct bytes data; /* inflated (compressed) or as sent */
};

struct wout {
  struct wmsg m[64];
  size_t n;
  int ctl_ops[16];
  size_t nctl;
};

#if LIGHTWS_HAVE_ZLIB
/* Parses `out` as frames (masked iff `masked`); compressed messages are
 * inflated with the peer's inflater `zi` (raw, reset after each message
 * when `reset`). Each message's RSV1 must be on its first frame only. */
static void parse_out(const uint8_t *out, size_t len, int masked,
                      z_stream *zi, int reset, struct wout *w) {
  size_t pos = 0;
  struct wmsg *cur = NULL;
  struct bytes pay = {0};
  memset(w, 0, sizeof *w);
  while (pos < len) {
    struct lightws_frame f;
    ssize_t h = lightws_frame_decode(&f, out + pos, len - pos,
                                     LIGHTWS_DECODE_ALLOW_RSV1);
    FAST(h > 0);
    FAST(pos + (size_t)h + f.length <= len);
    FAST(f.masked == masked);
    pay.len = 0;
    put(&pay, out + pos + h, (size_t)f.length);
    if (f.masked) lightws_mask(pay.p, pay.len, f.mask, 0);
    pos += (size_t)h + (size_t)f.length;
    if (f.opcode & 8) {
      FAST(f.rsv == 0);
      if (w->nctl < 16) w->ctl_ops[w->nctl++] = f.opcode;
      continue;
    }
    if (f.opcode != 0) {
      FAST(cur == NULL);
      FAST(w->n < 64);
      cur = &w->m[w->n++];
      cur->op = f.opcode;
      cur->compressed = (f.rsv & 0x40) != 0;
    } else {
      FAST(cur != NULL);
      FAST(f.rsv == 0);
    }
    cur->frames++;
    if (cur->compressed) {
      uint8_t o[16384];
      int last = 0;
      static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
      zi->next_in = pay.p;
      zi->avail_in = (uInt)pay.len;
      for (;;) {
        int zr;
        zi->next_out = o;
        zi->avail_out = sizeof o;
        zr = inflate(zi, Z_SYNC_FLUSH);
        FAST(zr == Z_OK || zr == Z_BUF_ERROR);
        put(&cur->data, o, sizeof o - zi->avail_out);
        if (zi->avail_in == 0 && zi->avail_out > 0) {
          if (!f.fin || last) break;
          zi->next_in = (Bytef *)(uintptr_t)tail;
          zi->avail_in = 4;
          last = 1;
        }
      }
    } else {
      put(&cur->data, pay.p, pay.len);
    }
    if (f.fin) {
      if (cur->compressed && reset) inflateReset(zi);
      cur = NULL;
    }
  }
  bytes_free(&pay);
}

static void wout_free(struct wout *w) {
  size_t i;
  for (i = 0; i < w->n; i++) bytes_free(&w->m[i].data);
}

/* The peer's compressor: raw deflate of a whole message with the sync
 * flush's 00 00 ff ff removed (§7.2.1). */
static void peer_compress(z_stream *zd, const uint8_t *d, size_t n,
                          struct bytes *out) {
  uint8_t o[16384];
  zd->next_in = (Bytef *)(uintptr_t)d;
  zd->avail_in = (uInt)n;
  out->len = 0;
  for (;;) {
    int zr;
    zd->next_out = o;
    zd->avail_out = sizeof o;
    zr = deflate(zd, Z_SYNC_FLUSH);
    FAST(zr == Z_OK || zr == Z_BUF_ERROR);
    put(out, o, sizeof o - zd->avail_out);
    if (zd->avail_out > 0) break;
  }
  if (out->len == 0) {
    /* nothing since the last flush (an empty message): zlib writes no
     * marker; a lone 00 makes the empty stored block with the 4 bytes the
     * reader appends (as §7.2.3.6 shows) */
    put(out, "", 1);
    return;
  }
  FAST(out->len >= 4);
  FAST(memcmp(out->p + out->len - 4, "\0\0\xff\xff", 4) == 0);
  out->len -= 4;
}

static void peer_deflater(z_stream *zd, int bits) {
  memset(zd, 0, sizeof *zd);
  ck_assert_int_eq(deflateInit2(zd, 6, Z_DEFLATED, -bits, 8,
                                Z_DEFAULT_STRATEGY), Z_OK);
}

static void peer_inflater(z_stream *zi, int bits) {
  memset(zi, 0, sizeof *zi);
  ck_assert_int_eq(inflateInit2(zi, -bits), Z_OK);
}

static const struct lightws_pmd_params AGREED_ANY = {0, 0, 0, 0};

/* The code of the first close frame in what a stream wrote (0: none). */
static unsigned close_code_in(const struct bytes *out) {
  size_t pos = 0;
  while (pos < out->len) {
    struct lightws_frame f;
    uint8_t p[125];
    ssize_t h = lightws_frame_decode_full(&f, out->p + pos, out->len - pos,
                                          LIGHTWS_DECODE_ALLOW_RSV1);
    if (h <= 0 || pos + (size_t)h + f.length > out->len) return 0;
    if (f.opcode == 8 && f.length >= 2) {
      memcpy(p, out->p + pos + h, 2);
      if (f.masked) lightws_mask(p, 2, f.mask, 0);
      return (unsigned)(p[0] << 8 | p[1]);
    }
    pos += (size_t)h + (size_t)f.length;
  }
  return 0;
}

/* ---- memory ------------------------------------------------------------- */

static const struct lightws_pmd_config mem_cfgs[] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0},           /* the defaults */
    {9, 8, 1, 1, 0, 0, 0, 0, 0, 256},         /* smallest */
    {15, 15, 9, 9, 0, 0, 0, 0, 0, 65536},     /* largest */
    {15, 15, 8, 0, 0, 0, 0, 0, 0, 0},         /* zlib's own defaults */
    {12, 12, 5, -1, 1, 1, 0, 0, 100, 1000},   /* odd work size */
    {10, 9, 3, 3, 0, 0, 0, 0, 0, 333},
};
#define NUM_MEM_CFGS ((int)(sizeof mem_cfgs / sizeof mem_cfgs[0]))

/* The largest agreement `cfg` allows: our window as cfg says, the peer's
 * at cfg's limit. */
static struct lightws_pmd_params max_agreement(
    const struct lightws_pmd_config *cfg, int role) {
  struct lightws_pmd_params a;
  uint8_t peer = cfg->peer_window_bits ? cfg->peer_window_bits : 15;
  memset(&a, 0, sizeof a);
  if (role == LIGHTWS_SERVER)
    a.client_max_window_bits = peer;
  else
    a.server_max_window_bits = peer;
  return a;
}

/* Exact size: the block works and nothing past it is touched; a block
 * smaller by 1, 2, 15 or 16 bytes fails with NOSPACE, also untouched
 * past its end. Then traffic both ways through the exact block. */
START_TEST(test_mem_size_exact_and_canary) {
  const struct lightws_pmd_config *cfg = &mem_cfgs[_i];
  static const size_t less[] = {1, 2, 15, 16, 4096};
  int role;
  for (role = 0; role <= 1; role++) {
    struct lightws_pmd_params ag = max_agreement(cfg, role);
    size_t m = lightws_pmd_mem_size(cfg), k, i;
    void *vb = NULL;
    uint8_t *blk;
    ck_assert_uint_gt(m, 0);
    ck_assert_int_eq(posix_memalign(&vb, 64, m + 64), 0);
    blk = vb;
    for (k = 0; k < sizeof less / sizeof less[0]; k++) {
      struct lightws_stream s;
      uint8_t rb[512];
      size_t sz = m - less[k];
      ck_assert_int_eq(lightws_stream_init(&s, role, -1, rb, sizeof rb, 0), 0);
      memset(blk, 0xA5, m + 64);
      ck_assert_int_eq(lightws_stream_set_deflate(&s, &ag, cfg, blk, sz),
                       LIGHTWS_ERR_NOSPACE);
      ck_assert_int_eq(lightws_stream_deflate(&s), 0);
      for (i = sz; i < m + 64; i++) FAST(blk[i] == 0xA5);
    }
    {
      struct zside a, b;
      struct lightws_pmd_config c2 = *cfg;
      static uint8_t msg[200000];
      struct got g;
      memset(blk, 0xA5, m + 64);
      side_init(&a, role, 4096, 0, NULL, NULL);
      ck_assert_int_eq(lightws_stream_set_deflate(&a.s, &ag, cfg, blk, m), 0);
      /* the other side, as the peer of this agreement */
      c2.window_bits = cfg->peer_window_bits < 9 ? 9
                       : (cfg->peer_window_bits ? cfg->peer_window_bits : 15);
      c2.peer_window_bits = 15;
      {
        struct lightws_pmd_params ag2;
        memset(&ag2, 0, sizeof ag2);
        if (role == LIGHTWS_SERVER)
          ag2.client_max_window_bits = ag.client_max_window_bits;
        else
          ag2.server_max_window_bits = ag.server_max_window_bits;
        side_init(&b, !role, 4096, 0, &ag2, &c2);
      }
      fill(msg, sizeof msg, 3);
      for (i = 0; i < 3; i++) {
        ck_assert_int_eq(lightws_stream_send(&a.s, 1, msg, sizeof msg, 0),
                         (ssize_t)sizeof msg);
        ck_assert_int_eq(lightws_stream_send(&b.s, 2, msg, sizeof msg, 0),
                         (ssize_t)sizeof msg);
      }
      ck_assert_int_eq(lightws_stream_close(&a.s, 1000, NULL, 0), 0);
      ck_assert_int_eq(lightws_stream_close(&b.s, 1000, NULL, 0), 0);
      a.z.in = b.z.out.p;
      a.z.in_len = b.z.out.len;
      b.z.in = a.z.out.p;
      b.z.in_len = a.z.out.len;
      drain(&a.s, API_RECV, 0, &g);
      ck_assert_int_eq(g.end, LIGHTWS_ERR_CLOSED);
      ck_assert_uint_eq(g.n, 3);
      ck_assert_uint_eq(g.data.len, 3 * sizeof msg);
      ck_assert(memcmp(g.data.p, msg, sizeof msg) == 0);
      bytes_free(&g.data);
      drain(&b.s, API_READ, 1000, &g);
      ck_assert_int_eq(g.end, LIGHTWS_ERR_CLOSED);
      ck_assert_uint_eq(g.n, 3);
      ck_assert(memcmp(g.data.p + 2 * sizeof msg, msg, sizeof msg) == 0);
      bytes_free(&g.data);
      for (i = m; i < m + 64; i++) FAST(blk[i] == 0xA5);
      side_free(&a);
      side_free(&b);
    }
    free(blk);
  }
}
END_TEST

/* zlib's allocations all come from the block: zalloc is set before init,
 * and the heap does not grow across set_deflate and traffic. */
START_TEST(test_no_heap_in_set_deflate) {
  struct lightws_stream s;
  uint8_t rb[512];
  static uint8_t blk[1 << 20];
  struct mallinfo2 before, after;
  size_t m = lightws_pmd_mem_size(NULL);
  ck_assert_uint_le(m, sizeof blk);
  ck_assert_int_eq(lightws_stream_init(&s, 0, -1, rb, sizeof rb, 0), 0);
  before = mallinfo2();
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, NULL, blk, m),
                   0);
  after = mallinfo2();
  ck_assert_uint_eq(after.uordblks, before.uordblks);
  ck_assert_uint_eq(after.arena, before.arena);
}
END_TEST

START_TEST(test_set_deflate_checks) {
  struct lightws_stream s;
  uint8_t rb[512];
  static uint8_t blk[1 << 20];
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params ag;
  ck_assert_int_eq(lightws_pmd_available(), 1);
  ck_assert_int_eq(lightws_stream_init(&s, 0, -1, rb, sizeof rb, 0), 0);
  ck_assert_int_eq(lightws_stream_deflate(&s), 0);
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, NULL, NULL, 9),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_stream_set_deflate(&s, NULL, NULL, blk, sizeof blk),
                   LIGHTWS_ERR_INVALID);
  memset(&ag, 0, sizeof ag);
  ag.server_max_window_bits = 7;
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &ag, NULL, blk, sizeof blk),
                   LIGHTWS_ERR_INVALID);
  ag.server_max_window_bits = 16;
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &ag, NULL, blk, sizeof blk),
                   LIGHTWS_ERR_INVALID);
  /* the peer may use a larger window than our inflater holds */
  memset(&cfg, 0, sizeof cfg);
  cfg.peer_window_bits = 10;
  memset(&ag, 0, sizeof ag);
  ag.client_max_window_bits = 11;
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &ag, &cfg, blk, sizeof blk),
                   LIGHTWS_ERR_INVALID);
  /* configs out of range: mem_size says 0 too */
  memset(&cfg, 0, sizeof cfg);
  cfg.window_bits = 8;
  ck_assert_uint_eq(lightws_pmd_mem_size(&cfg), 0);
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, &cfg, blk,
                                              sizeof blk),
                   LIGHTWS_ERR_INVALID);
  memset(&cfg, 0, sizeof cfg);
  cfg.work_size = 255;
  ck_assert_uint_eq(lightws_pmd_mem_size(&cfg), 0);
  memset(&cfg, 0, sizeof cfg);
  cfg.mem_level = 10;
  ck_assert_uint_eq(lightws_pmd_mem_size(&cfg), 0);
  memset(&cfg, 0, sizeof cfg);
  cfg.level = 10;
  ck_assert_uint_eq(lightws_pmd_mem_size(&cfg), 0);
  ck_assert_int_eq(lightws_stream_deflate(&s), 0);
  /* on once; a second call is refused */
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, NULL, blk,
                                              sizeof blk), 0);
  ck_assert_int_eq(lightws_stream_deflate(&s), 1);
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, NULL, blk,
                                              sizeof blk),
                   LIGHTWS_ERR_INVALID);
  /* not in the middle of a message */
  ck_assert_int_eq(lightws_stream_init(&s, 0, -1, rb, sizeof rb, 0), 0);
  s.msg_opcode = 1;
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, NULL, blk,
                                              sizeof blk),
                   LIGHTWS_ERR_INVALID);
}
END_TEST

/* README figures: printed so the numbers there can be checked. */
START_TEST(test_mem_size_figures) {
  static const int bits[] = {9, 10, 12, 15};
  static const int levels[] = {1, 5, 8, 9};
  size_t i, j;
  struct lightws_pmd_config cfg;
  for (i = 0; i < 4; i++)
    for (j = 0; j < 4; j++) {
      memset(&cfg, 0, sizeof cfg);
      cfg.window_bits = (uint8_t)bits[i];
      cfg.peer_window_bits = (uint8_t)bits[i];
      cfg.mem_level = (uint8_t)levels[j];
      if (getenv("LIGHTWS_PMD_FIGURES"))
        printf("pmd mem: window_bits %2d (both) mem_level %d: %zu bytes\n",
               bits[i], levels[j], lightws_pmd_mem_size(&cfg));
      ck_assert_uint_gt(lightws_pmd_mem_size(&cfg), 0);
    }
  if (getenv("LIGHTWS_PMD_FIGURES")) {
    printf("pmd mem: defaults: %zu bytes\n", lightws_pmd_mem_size(NULL));
    memset(&cfg, 0, sizeof cfg);
    cfg.peer_window_bits = 12;
    printf("pmd mem: defaults, peer_window_bits 12: %zu bytes\n",
           lightws_pmd_mem_size(&cfg));
  }
}
END_TEST


/* ---- read side: RFC 7692 §7.2.3 examples ------------------------------ */

struct rfc_case {
  const char *name;
  const uint8_t *wire; /* server frames, unmasked, as printed in the RFC */
  size_t len;
  const char *msgs[2]; /* the messages they carry */
};

static const uint8_t rfc_hello[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9,
                                    0xc9, 0x07, 0x00};
/* §7.2.3.1, fragmented */
static const uint8_t rfc_frag[] = {0x41, 0x03, 0xf2, 0x48, 0xcd,
                                   0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00};
/* §7.2.3.2: the second "Hello" refers back into the first */
static const uint8_t rfc_shared[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9,
                                     0xc9, 0x07, 0x00, 0xc1, 0x05, 0xf2,
                                     0x00, 0x11, 0x00, 0x00};
/* §7.2.3.3: a stored block */
static const uint8_t rfc_stored[] = {0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa,
                                     0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f,
                                     0x00};
/* §7.2.3.4: BFINAL set */
static const uint8_t rfc_bfinal[] = {0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9,
                                     0xc9, 0x07, 0x00, 0x00};
/* §7.2.3.5: two deflate blocks in one message */
static const uint8_t rfc_two[] = {0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00,
                                  0x00, 0x00, 0xff, 0xff, 0xca, 0xc9,
                                  0xc9, 0x07, 0x00};

static const struct rfc_case rfc_cases[] = {
    {"7.2.3.1", rfc_hello, sizeof rfc_hello, {"Hello", NULL}},
    {"7.2.3.1 fragmented", rfc_frag, sizeof rfc_frag, {"Hello", NULL}},
    {"7.2.3.2", rfc_shared, sizeof rfc_shared, {"Hello", "Hello"}},
    {"7.2.3.3", rfc_stored, sizeof rfc_stored, {"Hello", NULL}},
    {"7.2.3.4", rfc_bfinal, sizeof rfc_bfinal, {"Hello", NULL}},
    {"7.2.3.5", rfc_two, sizeof rfc_two, {"Hello", NULL}},
};
#define NUM_RFC ((int)(sizeof rfc_cases / sizeof rfc_cases[0]))

/* One case, in role `role` (server: the frames get masked), through `api`,
 * with reads of `rmax` bytes (0: all) and EAGAIN between reads when
 * `again`, in direct mode when `direct`. The messages are followed by
 * another "Hello" (§7.2.3.1) and a close. */
static void rfc_run(const struct rfc_case *c, int role, enum api api,
                    size_t bufsize, size_t rmax, int again, int direct) {
  struct zside x;
  struct bytes in = {0};
  struct got g;
  size_t pos = 0, nm = 0, i;
  struct lightws_pmd_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.threshold = 1;
  /* frames from the case, masked for a server to read */
  while (pos < c->len) {
    struct lightws_frame f;
    ssize_t h = lightws_frame_decode_full(&f, c->wire + pos, c->len - pos,
                                          LIGHTWS_DECODE_ALLOW_RSV1);
    FAST(h > 0);
    put_frame(&in, f.fin, f.rsv != 0, f.opcode, c->wire + pos + h,
              (size_t)f.length, role == LIGHTWS_SERVER, 0x0badf00du + pos);
    pos += (size_t)h + (size_t)f.length;
  }
  if (c->msgs[0] == rfc_cases[2].msgs[0] && c->wire == rfc_shared) {
    /* context taken over: a third Hello refers back as well */
  }
  put_frame(&in, 1, 0, 9, "pi", 2, role == LIGHTWS_SERVER, 7);
  /* the BFINAL case reset the inflater: the next message is a fresh one */
  put_frame(&in, 1, 1, 1, rfc_hello + 2, 7, role == LIGHTWS_SERVER, 9);
  put_frame(&in, 1, 0, 8, "\x03\xe8", 2, role == LIGHTWS_SERVER, 11);
  side_init(&x, role, 256, direct ? LIGHTWS_OPT_DIRECT : 0, &AGREED_ANY,
            &cfg);
  x.z.in = in.p;
  x.z.in_len = in.len;
  x.z.rmax = rmax;
  x.z.ragain = again;
  drain(&x.s, api, bufsize, &g);
  ck_assert_msg(g.end == LIGHTWS_ERR_CLOSED, "%s: %s", c->name,
                lightws_errname(g.end));
  for (i = 0; i < 2 && c->msgs[i]; i++) nm++;
  if (api != API_READ_BYTES) {
    ck_assert_uint_eq(g.n, nm + 1);
    for (i = 0; i < nm + 1; i++) {
      ck_assert_uint_eq(g.len[i], 5);
      ck_assert_int_eq(g.op[i], 1);
    }
  }
  ck_assert_uint_eq(g.data.len, 5 * (nm + 1));
  for (i = 0; i < nm + 1; i++)
    ck_assert_msg(memcmp(g.data.p + 5 * i, "Hello", 5) == 0, "%s", c->name);
  bytes_free(&g.data);
  /* the ping was answered */
  ck_assert_uint_ge(x.z.out.len, 4);
  ck_assert_int_eq(x.z.out.p[0], 0x8a);
  bytes_free(&in);
  side_free(&x);
}

START_TEST(test_rfc7692_examples_receive) {
  const struct rfc_case *c = &rfc_cases[_i];
  int role;
  for (role = 0; role <= 1; role++) {
    rfc_run(c, role, API_RECV, 0, 0, 0, 0);
    rfc_run(c, role, API_READ, 1, 0, 0, 0);
    rfc_run(c, role, API_READ, 3, 0, 0, 0);
    rfc_run(c, role, API_READ, 4096, 0, 0, 0);
    rfc_run(c, role, API_READ_BYTES, 2, 0, 0, 0);
    rfc_run(c, role, API_READ_BYTES, 4096, 0, 0, 0);
    /* every byte boundary: 1 byte per read, EAGAIN between, direct too */
    rfc_run(c, role, API_RECV, 0, 1, 1, 0);
    rfc_run(c, role, API_RECV, 0, 1, 1, 1);
    rfc_run(c, role, API_READ, 2, 1, 1, 1);
    rfc_run(c, role, API_READ_BYTES, 7, 1, 1, 0);
  }
}
END_TEST

/* A compressed message whose frame is whole in rbuf ends in one call:
 * the §7.2.2 tail is fed in the same read (no extra empty chunk), for
 * recv and read. */
START_TEST(test_whole_compressed_message_one_call) {
  static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  int api;
  for (api = 0; api <= 1; api++) {
    struct zside x;
    struct lightws_pmd_params ag;
    struct lightws_chunk c;
    struct bytes wire = {0};
    uint8_t buf[64];
    ssize_t r;
    memset(&ag, 0, sizeof ag);
    side_init(&x, LIGHTWS_CLIENT, 1024, 0, &ag, NULL);
    put_frame(&wire, 1, 1, 1, hello, sizeof hello, 0, 0);
    x.z.in = wire.p;
    x.z.in_len = wire.len;
    r = api ? lightws_stream_read(&x.s, buf, sizeof buf, &c)
            : lightws_stream_recv(&x.s, &c);
    ck_assert_int_eq(r, 5);
    ck_assert(memcmp(c.data, "Hello", 5) == 0);
    ck_assert_int_eq(c.message_end, 1);
    ck_assert_int_eq(c.compressed, 1);
    ck_assert_int_eq(c.opcode, LIGHTWS_OPCODE_TEXT);
    bytes_free(&wire);
    side_free(&x);
  }
}
END_TEST

/* Messages compressed by zlib (the peer), read at every split of the
 * wire: big and small, text and binary, fragmented at random places, with
 * pings between fragments; context takeover on and off. */
static void peer_script(struct bytes *wire, struct bytes *data, size_t *lens,
                        size_t *nm, int masked, int bits, int nct) {
  z_stream zd;
  struct bytes c = {0};
  static const size_t sizes[] = {5, 1, 100, 5000, 70000, 300, 0, 20};
  size_t i;
  uint8_t *m = malloc(70000);
  peer_deflater(&zd, bits);
  *nm = 0;
  for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i], off = 0, cut;
    fill(m, n, (unsigned)i);
    peer_compress(&zd, m, n, &c);
    if (nct) deflateReset(&zd);
    put(data, m, n);
    lens[(*nm)++] = n;
    /* frames of the compressed payload: cut at 1/3 and 2/3 for odd i */
    cut = (i & 1) ? c.len / 3 : c.len;
    if (cut == 0) cut = c.len;
    while (off < c.len || off == 0) {
      size_t k = c.len - off < cut ? c.len - off : cut;
      int first = off == 0, fin = off + k == c.len;
      put_frame(wire, fin, first, first ? (i & 2 ? 2 : 1) : 0, c.p + off, k,
                masked, (uint32_t)(off * 2654435761u + i));
      off += k;
      if (!fin) put_frame(wire, 1, 0, 9, "x", 1, masked, 3);
      if (fin) break;
    }
    /* an uncompressed message between the compressed ones */
    if (i == 3) {
      put_frame(wire, 1, 0, 2, "plain", 5, masked, 5);
      put(data, "plain", 5);
      lens[(*nm)++] = 5;
    }
  }
  put_frame(wire, 1, 0, 8, "\x03\xe8", 2, masked, 1);
  deflateEnd(&zd);
  bytes_free(&c);
  free(m);
}

static void peer_read(int role, int bits, int nct, enum api api,
                      size_t bufsize, size_t rmax, int again, int direct,
                      size_t rsize) {
  struct zside x;
  struct bytes wire = {0}, data = {0};
  size_t lens[16], nm, i;
  struct got g;
  struct lightws_pmd_params ag;
  struct lightws_pmd_config cfg;
  memset(&ag, 0, sizeof ag);
  memset(&cfg, 0, sizeof cfg);
  cfg.peer_window_bits = (uint8_t)bits;
  if (role == LIGHTWS_SERVER) {
    ag.client_max_window_bits = (uint8_t)bits;
    ag.client_no_context_takeover = (uint8_t)nct;
  } else {
    ag.server_max_window_bits = (uint8_t)bits;
    ag.server_no_context_takeover = (uint8_t)nct;
  }
  /* zlib's raw deflate cannot make a 256-byte window: the peer of a
   * window-8 agreement compresses with 9 and Huffman only in real life;
   * here the data refers back at most 9 bits only when bits >= 9 */
  peer_script(&wire, &data, lens, &nm, role == LIGHTWS_SERVER,
              bits < 9 ? 9 : bits, nct);
  side_init(&x, role, rsize, direct ? LIGHTWS_OPT_DIRECT : 0,
            bits >= 9 ? &ag : NULL, &cfg);
  if (bits < 9) {
    /* inflater window 8 against window-9 data may refuse it: skip */
    side_free(&x);
    bytes_free(&wire);
    bytes_free(&data);
    return;
  }
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  x.z.rmax = rmax;
  x.z.ragain = again;
  drain(&x.s, api, bufsize, &g);
  ck_assert_msg(g.end == LIGHTWS_ERR_CLOSED, "bits %d: %s", bits,
                lightws_errname(g.end));
  ck_assert_uint_eq(g.data.len, data.len);
  ck_assert(memcmp(g.data.p, data.p, data.len) == 0);
  if (api != API_READ_BYTES) {
    ck_assert_uint_eq(g.n, nm);
    for (i = 0; i < nm; i++) ck_assert_uint_eq(g.len[i], lens[i]);
  }
  bytes_free(&g.data);
  bytes_free(&wire);
  bytes_free(&data);
  side_free(&x);
}

START_TEST(test_read_peer_zlib_windows) {
  int bits = 9 + _i, role, nct;
  for (role = 0; role <= 1; role++)
    for (nct = 0; nct <= 1; nct++) {
      peer_read(role, bits, nct, API_RECV, 0, 0, 0, 0, 4096);
      peer_read(role, bits, nct, API_READ, 777, 0, 0, 0, 4096);
      peer_read(role, bits, nct, API_READ_BYTES, 65536, 0, 0, 0, 256);
      peer_read(role, bits, nct, API_RECV, 0, 1000, 1, 1, 300);
    }
}
END_TEST

/* Every byte boundary of the compressed frames: 1 byte per read with
 * EAGAIN between, guarded and direct, each API. */
START_TEST(test_read_one_byte_reads_eagain) {
  static const enum api apis[] = {API_RECV, API_READ, API_READ_BYTES};
  int role = _i & 1, direct = (_i >> 1) & 1;
  size_t a;
  for (a = 0; a < 3; a++)
    peer_read(role, 12, 0, apis[a], a == 0 ? 0 : 100, 1, 1, direct, 256);
}
END_TEST

/* A window-8 agreement: our inflater holds 256 bytes; data within it
 * inflates, data that refers further back is BAD_DEFLATE (1007). */
START_TEST(test_read_window_8) {
  struct zside x;
  struct bytes wire = {0}, c = {0};
  struct lightws_pmd_params ag;
  struct lightws_pmd_config cfg;
  z_stream zd;
  struct got g;
  uint8_t m[2000];
  size_t i;
  memset(&ag, 0, sizeof ag);
  memset(&cfg, 0, sizeof cfg);
  ag.server_max_window_bits = 8;
  cfg.peer_window_bits = 8;
  /* Huffman only: no back reference at all */
  memset(&zd, 0, sizeof zd);
  ck_assert_int_eq(deflateInit2(&zd, 6, Z_DEFLATED, -9, 8, Z_HUFFMAN_ONLY),
                   Z_OK);
  fill(m, sizeof m, 1);
  peer_compress(&zd, m, sizeof m, &c);
  put_frame(&wire, 1, 1, 2, c.p, c.len, 0, 0);
  deflateEnd(&zd);
  /* then a message with a match 300 bytes back across inflate calls (the
   * work buffer holds 4096 bytes: what came before stays only in the
   * 256-byte window) */
  peer_deflater(&zd, 15);
  {
    uint64_t st = 99;
    static uint8_t big[5000];
    for (i = 0; i < 4400; i++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      big[i] = (uint8_t)(st >> 56);
    }
    memcpy(big + 4400, big + 4100, 200);
    peer_compress(&zd, big, 4600, &c);
  }
  put_frame(&wire, 1, 1, 2, c.p, c.len, 0, 0);
  deflateEnd(&zd);
  side_init(&x, LIGHTWS_CLIENT, 512, 0, &ag, &cfg);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_BAD_DEFLATE);
  ck_assert_uint_eq(g.n, 1);
  ck_assert_uint_eq(g.len[0], 2000);
  ck_assert_uint_eq(close_code_in(&x.z.out), 1007);
  bytes_free(&g.data);
  bytes_free(&wire);
  bytes_free(&c);
  side_free(&x);
}
END_TEST

/* An event loop reads while buffered() says so: a small compressed frame
 * that inflates to many work buffers, with nothing more on the transport,
 * is read to its end without a WOULDBLOCK (zlib holds the output, and the
 * 00 00 ff ff is still to feed, while rbuf is empty). */
START_TEST(test_buffered_counts_output_held_in_zlib) {
  struct zside x;
  struct bytes wire = {0}, c = {0};
  struct lightws_pmd_config cfg;
  static uint8_t m[100000];
  z_stream zd;
  size_t got = 0;
  int ended = 0;
  memset(&cfg, 0, sizeof cfg);
  cfg.work_size = 256;
  memset(m, 'z', sizeof m);
  peer_deflater(&zd, 15);
  peer_compress(&zd, m, sizeof m, &c);
  deflateEnd(&zd);
  ck_assert_uint_lt(c.len, 1000);
  put_frame(&wire, 1, 1, 2, c.p, c.len, 0, 0);
  side_init(&x, LIGHTWS_CLIENT, 4096, _i ? LIGHTWS_OPT_DIRECT : 0,
            &AGREED_ANY, &cfg);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  x.z.end_eagain = 1;
  do {
    struct lightws_chunk ch;
    ssize_t r = lightws_stream_recv(&x.s, &ch);
    ck_assert_int_ge(r, 0);
    got += (size_t)r;
    ended = ch.message_end;
  } while (!ended && lightws_stream_buffered(&x.s) > 0);
  ck_assert_int_eq(ended, 1);
  ck_assert_uint_eq(got, sizeof m);
  ck_assert_uint_eq(lightws_stream_buffered(&x.s), 0);
  bytes_free(&wire);
  bytes_free(&c);
  side_free(&x);
}
END_TEST

/* ---- read side: bombs and bad input ------------------------------------- */

/* Generates a compressed message of `total` zero bytes as frames of at
 * most 16 KiB of payload, compressing as the stream asks for bytes. */
struct bomb {
  z_stream zd;
  uint64_t left;      /* zeros still to compress */
  uint8_t frame[16384 + 14];
  size_t flen, fpos;
  int first, done;
  uint64_t wire;      /* compressed bytes made */
};

static size_t bomb_gen(void *ctx, uint8_t *buf, size_t len) {
  struct bomb *b = ctx;
  size_t n;
  if (b->fpos == b->flen) {
    static const uint8_t zeros[65536];
    uint8_t pay[16384];
    struct lightws_frame f;
    size_t plen, h;
    int fin = 0;
    if (b->done) return 0;
    b->zd.next_out = pay;
    b->zd.avail_out = sizeof pay;
    while (b->zd.avail_out > 0) {
      size_t k = b->left < sizeof zeros ? (size_t)b->left : sizeof zeros;
      int zr;
      b->zd.next_in = (Bytef *)(uintptr_t)zeros;
      b->zd.avail_in = (uInt)k;
      zr = deflate(&b->zd, k ? Z_NO_FLUSH : Z_SYNC_FLUSH);
      FAST(zr == Z_OK || zr == Z_BUF_ERROR);
      b->left -= k - b->zd.avail_in;
      if (k == 0 && b->zd.avail_out > 0) {
        fin = 1;
        break;
      }
    }
    plen = sizeof pay - b->zd.avail_out;
    if (fin) plen -= 4;
    memset(&f, 0, sizeof f);
    f.fin = (uint8_t)fin;
    f.rsv = b->first ? 0x40 : 0;
    f.opcode = b->first ? 2 : 0;
    f.length = plen;
    h = lightws_frame_encode_unchecked(&f, b->frame);
    memcpy(b->frame + h, pay, plen);
    b->flen = h + plen;
    b->fpos = 0;
    b->first = 0;
    b->done = fin;
    b->wire += plen;
  }
  n = b->flen - b->fpos;
  if (n > len) n = len;
  memcpy(buf, b->frame + b->fpos, n);
  b->fpos += n;
  return n;
}

/* 4 GiB of zeros (about 4 MiB compressed) against the default 64 MiB
 * limit: refused with 1009 once 64 MiB are out, after at most the limit
 * of output and without reading the rest. */
START_TEST(test_bomb_4gib_refused_at_limit) {
  struct zside x;
  struct bomb *b = calloc(1, sizeof *b);
  struct lightws_chunk c;
  uint64_t out = 0;
  ssize_t r;
  uint32_t limit = quick() ? 8u << 20 : LIGHTWS_DEFAULT_MAX_MESSAGE;
  peer_deflater(&b->zd, 15);
  b->left = 4ull << 30;
  b->first = 1;
  side_init(&x, LIGHTWS_CLIENT, 65536, 0, &AGREED_ANY, NULL);
  lightws_stream_set_limits(&x.s, 0, limit);
  x.z.gen = bomb_gen;
  x.z.gctx = b;
  for (;;) {
    r = lightws_stream_recv(&x.s, &c);
    if (r < 0) break;
    out += (uint64_t)r;
    FAST(out <= limit);
    FAST(c.len <= LIGHTWS_PMD_DEFAULT_WORK_SIZE);
  }
  ck_assert_int_eq(r, LIGHTWS_ERR_MESSAGE_TOO_BIG);
  /* the chunk that would pass the limit is refused whole */
  ck_assert_uint_le(out, limit);
  ck_assert_uint_gt(out, limit - LIGHTWS_PMD_DEFAULT_WORK_SIZE);
  /* the compressed input read stays near limit / 1030 (deflate's best) */
  ck_assert_uint_lt(x.z.in_total, limit / 1000 + 65536 + 16384);
  /* zeros compressed by the generator: the limit plus one 16 KiB frame of
   * compressed output (about 1030 zeros a byte) at most */
  ck_assert_uint_lt((4ull << 30) - b->left, (uint64_t)limit + 16384u * 1100u);
  ck_assert_uint_eq(close_code_in(&x.z.out), 1009);
  deflateEnd(&b->zd);
  free(b);
  side_free(&x);
}
END_TEST

/* The same through read() into a large caller buffer: the limit holds
 * inside one inflate call. */
START_TEST(test_bomb_read_into_big_buffer) {
  struct zside x;
  struct bomb *b = calloc(1, sizeof *b);
  size_t size = 4u << 20;
  uint8_t *buf = malloc(size);
  uint64_t out = 0;
  ssize_t r;
  peer_deflater(&b->zd, 15);
  b->left = 1ull << 30;
  b->first = 1;
  side_init(&x, LIGHTWS_SERVER, 4096, LIGHTWS_OPT_NO_MASK_CHECK, &AGREED_ANY,
            NULL);
  lightws_stream_set_limits(&x.s, 0, 1000000);
  x.z.gen = bomb_gen;
  x.z.gctx = b;
  for (;;) {
    r = lightws_stream_read(&x.s, buf, size, NULL);
    if (r < 0) break;
    out += (uint64_t)r;
  }
  ck_assert_int_eq(r, LIGHTWS_ERR_MESSAGE_TOO_BIG);
  /* one read call would pass the limit: refused whole, and zlib made at
   * most limit + 1 bytes (the input read stays small) */
  ck_assert_uint_eq(out, 0);
  ck_assert_uint_lt(x.z.in_total, 1000000 / 1000 + 2 * 16384 + 4096);
  deflateEnd(&b->zd);
  free(b);
  free(buf);
  side_free(&x);
}
END_TEST

/* Empty deflate blocks (00 00 00 ff ff) forever: no output at all; the
 * wire length of the message is bounded by max_message, so it ends. */
START_TEST(test_stream_of_empty_blocks_ends) {
  struct zside x;
  struct bytes wire = {0}, blk = {0};
  struct got g;
  size_t i;
  for (i = 0; i < 800; i++) put(&blk, "\x00\x00\x00\xff\xff", 5);
  put_frame(&wire, 0, 1, 1, blk.p, blk.len, 0, 0);
  for (i = 0; i < 100; i++) put_frame(&wire, 0, 0, 0, blk.p, blk.len, 0, 0);
  side_init(&x, LIGHTWS_CLIENT, 4096, 0, &AGREED_ANY, NULL);
  lightws_stream_set_limits(&x.s, 0, 100000);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_MESSAGE_TOO_BIG);
  ck_assert_uint_eq(g.data.len, 0);
  ck_assert_uint_lt(x.z.in_pos, 100000 + 8192);
  bytes_free(&g.data);
  side_free(&x);
  /* one frame of them over max_frame: refused at its head */
  side_init(&x, LIGHTWS_CLIENT, 4096, 0, &AGREED_ANY, NULL);
  lightws_stream_set_limits(&x.s, 3000, 0);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_FRAME_TOO_BIG);
  bytes_free(&g.data);
  side_free(&x);
  bytes_free(&wire);
  bytes_free(&blk);
}
END_TEST

/* Text that turns invalid only after 1 MiB of inflated output: 1007,
 * after the valid megabyte was handed out. */
START_TEST(test_invalid_utf8_after_1mib) {
  struct zside x;
  struct bytes wire = {0}, c = {0};
  size_t n = (1u << 20) + 10;
  uint8_t *m = malloc(n);
  z_stream zd;
  struct got g;
  memset(m, 'a', n);
  m[(1u << 20) + 3] = 0xC0; /* never valid */
  peer_deflater(&zd, 15);
  peer_compress(&zd, m, n, &c);
  put_frame(&wire, 1, 1, 1, c.p, c.len, 1, 0x01020304);
  side_init(&x, LIGHTWS_SERVER, 4096, 0, &AGREED_ANY, NULL);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_READ, 65536, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_UTF8);
  ck_assert_uint_ge(g.data.len, 1u << 20);
  ck_assert_uint_le(g.data.len, (1u << 20) + 3);
  ck_assert_int_eq((x.z.out.p[2] << 8) | x.z.out.p[3], 1007);
  bytes_free(&g.data);
  side_free(&x);
  /* a text message ending inside a character: 1007 at its end */
  side_init(&x, LIGHTWS_SERVER, 4096, 0, &AGREED_ANY, NULL);
  deflateReset(&zd);
  peer_compress(&zd, (const uint8_t *)"ab\xc3", 3, &c);
  wire.len = 0;
  put_frame(&wire, 1, 1, 1, c.p, c.len, 1, 0x01020304);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_UTF8);
  bytes_free(&g.data);
  side_free(&x);
  deflateEnd(&zd);
  bytes_free(&wire);
  bytes_free(&c);
  free(m);
}
END_TEST

struct bad_case {
  const char *name;
  int err;
  unsigned close;
};

/* RSV1 on a continuation, on control frames, garbage deflate data. */
START_TEST(test_bad_compressed_input) {
  static const struct bad_case cases[] = {
      {"RSV1 on a continuation", LIGHTWS_ERR_BAD_RSV1, 1002},
      {"RSV1 on a ping", LIGHTWS_ERR_BAD_RSV1, 1002},
      {"RSV1 on a close", LIGHTWS_ERR_BAD_RSV1, 1002},
      {"RSV1 on a pong between fragments", LIGHTWS_ERR_BAD_RSV1, 1002},
      {"invalid block type", LIGHTWS_ERR_BAD_DEFLATE, 1007},
      {"stored block length check", LIGHTWS_ERR_BAD_DEFLATE, 1007},
      {"distance too far back", LIGHTWS_ERR_BAD_DEFLATE, 1007},
      {"RSV2 with pmd on", LIGHTWS_ERR_RESERVED_BITS, 1002},
  };
  const struct bad_case *bc = &cases[_i];
  struct zside x;
  struct bytes wire = {0};
  struct got g;
  int masked = 1;
  switch (_i) {
    case 0:
      put_frame(&wire, 0, 1, 1, "\xf2\x48", 2, masked, 1);
      put_frame(&wire, 1, 1, 0, "\xcd\xc9\xc9\x07\x00", 5, masked, 2);
      break;
    case 1:
      put_frame(&wire, 1, 1, 9, "", 0, masked, 1);
      break;
    case 2:
      put_frame(&wire, 1, 1, 8, "\x03\xe8", 2, masked, 1);
      break;
    case 3:
      put_frame(&wire, 0, 1, 1, "\xf2\x48", 2, masked, 1);
      put_frame(&wire, 1, 1, 10, "", 0, masked, 1);
      break;
    case 4:
      put_frame(&wire, 1, 1, 2, "\xff\xff\xff\xff", 4, masked, 1);
      break;
    case 5:
      put_frame(&wire, 1, 1, 2, "\x00\x05\x00\x05\x00Hello", 10, masked, 1);
      break;
    case 6: /* §7.2.3.2's second message first: it refers to nothing */
      put_frame(&wire, 1, 1, 2, "\xf2\x00\x11\x00\x00", 5, masked, 1);
      break;
    default: {
      struct lightws_frame f;
      uint8_t h[14];
      size_t hl;
      uint32_t key = 0;
      memset(&f, 0, sizeof f);
      f.fin = 1;
      f.rsv = 0x20;
      f.opcode = 2;
      f.masked = 1;
      memcpy(f.mask, &key, 4);
      hl = lightws_frame_encode_unchecked(&f, h);
      put(&wire, h, hl);
    }
  }
  side_init(&x, LIGHTWS_SERVER, 512, 0, &AGREED_ANY, NULL);
  x.z.in = wire.p;
  x.z.in_len = wire.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_msg(g.end == bc->err, "%s: %s", bc->name, lightws_errname(g.end));
  ck_assert_uint_ge(x.z.out.len, 4);
  ck_assert_int_eq(x.z.out.p[0], 0x88);
  ck_assert_uint_eq((unsigned)((x.z.out.p[2] << 8) | x.z.out.p[3]),
                    bc->close);
  ck_assert_int_eq(lightws_stream_error(&x.s), bc->err);
  bytes_free(&g.data);
  bytes_free(&wire);
  side_free(&x);
}
END_TEST

/* A generated stream of `total` bytes of fill() text, compressed as asked. */
struct bigmsg {
  z_stream zd;
  uint64_t total, made;  /* plain bytes given to the compressor */
  uint8_t plain[65536];
  uint8_t frame[32768 + 14];
  size_t flen, fpos;
  int first, done;
};

static size_t big_gen(void *ctx, uint8_t *buf, size_t len) {
  struct bigmsg *b = ctx;
  size_t n;
  if (b->fpos == b->flen) {
    uint8_t pay[32768];
    struct lightws_frame f;
    size_t plen, h;
    int fin = 0;
    if (b->done) return 0;
    b->zd.next_out = pay;
    b->zd.avail_out = sizeof pay;
    while (b->zd.avail_out > 0) {
      int zr;
      if (b->zd.avail_in == 0 && b->made < b->total) {
        size_t k = b->total - b->made < sizeof b->plain
                       ? (size_t)(b->total - b->made) : sizeof b->plain;
        fill(b->plain, k, (unsigned)(b->made >> 16));
        b->zd.next_in = b->plain;
        b->zd.avail_in = (uInt)k;
        b->made += k;
      }
      zr = deflate(&b->zd, b->made == b->total ? Z_SYNC_FLUSH : Z_NO_FLUSH);
      FAST(zr == Z_OK || zr == Z_BUF_ERROR);
      if (b->made == b->total && b->zd.avail_in == 0 && b->zd.avail_out > 0) {
        fin = 1;
        break;
      }
    }
    plen = sizeof pay - b->zd.avail_out - (fin ? 4 : 0);
    memset(&f, 0, sizeof f);
    f.fin = (uint8_t)fin;
    f.rsv = b->first ? 0x40 : 0;
    f.opcode = b->first ? 1 : 0;
    f.length = plen;
    h = lightws_frame_encode_unchecked(&f, b->frame);
    memcpy(b->frame + h, pay, plen);
    b->flen = h + plen;
    b->fpos = 0;
    b->first = 0;
    b->done = fin;
  }
  n = b->flen - b->fpos;
  if (n > len) n = len;
  memcpy(buf, b->frame + b->fpos, n);
  b->fpos += n;
  return n;
}

/* A large compressed text message streams through a small rbuf: 64 MiB
 * inflated through 4 KiB (8 MiB in quick mode), checked piece by piece. */
START_TEST(test_large_message_streams_through_small_rbuf) {
  struct zside x;
  struct bigmsg *b = calloc(1, sizeof *b);
  static uint8_t want[65536];
  uint8_t buf[10000];
  uint64_t total = quick() ? 8u << 20 : 64u << 20, got = 0;
  size_t rsize = 4096;
  struct lightws_chunk c;
  /* LIGHTWS_TEST_LARGE_MIB=1024: 1 GiB through a 64 KiB rbuf */
  if (getenv("LIGHTWS_TEST_LARGE_MIB")) {
    total = (uint64_t)atoi(getenv("LIGHTWS_TEST_LARGE_MIB")) << 20;
    rsize = 65536;
  }
  peer_deflater(&b->zd, 15);
  b->total = total;
  b->first = 1;
  side_init(&x, LIGHTWS_CLIENT, rsize, 0, &AGREED_ANY, NULL);
  lightws_stream_set_limits(&x.s, 0, (uint32_t)total);
  x.z.gen = big_gen;
  x.z.gctx = b;
  for (;;) {
    ssize_t r = lightws_stream_read(&x.s, buf, sizeof buf, &c);
    size_t i = 0;
    FAST(r >= 0);
    while (i < (size_t)r) {
      /* fill() restarts every 64 KiB block */
      size_t at = (size_t)((got + i) & 65535), k = 65536 - at;
      if (at == 0) fill(want, 65536, (unsigned)((got + i) >> 16));
      if (k > (size_t)r - i) k = (size_t)r - i;
      FAST(memcmp(buf + i, want + at, k) == 0);
      i += k;
    }
    got += (uint64_t)r;
    if (c.message_end) break;
  }
  ck_assert_uint_eq(got, total);
  ck_assert_int_eq(c.opcode, 1);
  deflateEnd(&b->zd);
  free(b);
  side_free(&x);
}
END_TEST

/* ---- write side --------------------------------------------------------- */

/* What `x` wrote, frames unmasked: `out` holds head bytes as written and
 * the payloads unmasked (client frames), so the RFC bytes compare. */
static void unmasked_wire(const struct bytes *in, struct bytes *out) {
  size_t pos = 0;
  out->len = 0;
  while (pos < in->len) {
    struct lightws_frame f;
    ssize_t h = lightws_frame_decode_full(&f, in->p + pos, in->len - pos,
                                          LIGHTWS_DECODE_ALLOW_RSV1);
    uint8_t b[2];
    size_t at;
    FAST(h > 0);
    b[0] = in->p[pos];
    b[1] = (uint8_t)(in->p[pos + 1] & 0x7f);
    put(out, b, 2);
    put(out, in->p + pos + 2 + (f.masked ? 4 : 0) - 0,
        (size_t)h - 2 - (f.masked ? 4 : 0));
    at = out->len;
    put(out, in->p + pos + h, (size_t)f.length);
    if (f.masked) lightws_mask(out->p + at, (size_t)f.length, f.mask, 0);
    pos += (size_t)h + (size_t)f.length;
  }
}

/* §7.2.3.1 and §7.2.3.2 (context takeover), §7.2.3.3 (level 0: stored),
 * and with our no_context_takeover both messages alike; both roles. */
START_TEST(test_rfc7692_examples_send) {
  static const uint8_t two_shared[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9,
                                       0xc9, 0x07, 0x00, 0xc1, 0x05, 0xf2,
                                       0x00, 0x11, 0x00, 0x00};
  static const uint8_t two_reset[] = {0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9,
                                      0xc9, 0x07, 0x00, 0xc1, 0x07, 0xf2,
                                      0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
  int role = _i;
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params ag;
  struct zside x;
  struct bytes w = {0};
  memset(&cfg, 0, sizeof cfg);
  cfg.threshold = 1;
  side_init(&x, role, 512, 0, &AGREED_ANY, &cfg);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  unmasked_wire(&x.z.out, &w);
  ck_assert_uint_eq(w.len, sizeof rfc_hello);
  ck_assert(memcmp(w.p, rfc_hello, sizeof rfc_hello) == 0);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  unmasked_wire(&x.z.out, &w);
  ck_assert_uint_eq(w.len, sizeof two_shared);
  ck_assert(memcmp(w.p, two_shared, sizeof two_shared) == 0);
  side_free(&x);
  /* our no_context_takeover (agreed, or only in cfg) */
  memset(&ag, 0, sizeof ag);
  if (role == LIGHTWS_SERVER)
    ag.server_no_context_takeover = 1;
  else
    ag.client_no_context_takeover = 1;
  side_init(&x, role, 512, 0, &ag, &cfg);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  unmasked_wire(&x.z.out, &w);
  ck_assert_uint_eq(w.len, sizeof two_reset);
  ck_assert(memcmp(w.p, two_reset, sizeof two_reset) == 0);
  side_free(&x);
  cfg.no_context_takeover = 1;
  side_init(&x, role, 512, 0, &AGREED_ANY, &cfg);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  unmasked_wire(&x.z.out, &w);
  ck_assert(w.len == sizeof two_reset &&
            memcmp(w.p, two_reset, sizeof two_reset) == 0);
  side_free(&x);
  /* §7.2.3.3: no compression (level 0) */
  cfg.no_context_takeover = 0;
  cfg.level = -1;
  side_init(&x, role, 512, 0, &AGREED_ANY, &cfg);
  ck_assert_int_eq(lightws_stream_send(&x.s, 1, "Hello", 5, 0), 5);
  unmasked_wire(&x.z.out, &w);
  ck_assert_uint_eq(w.len, sizeof rfc_stored);
  ck_assert(memcmp(w.p, rfc_stored, sizeof rfc_stored) == 0);
  side_free(&x);
  bytes_free(&w);
}
END_TEST

/* Our messages: sizes around the work buffer, fragmented sends, an empty
 * compressed message, text and binary. */
struct plan {
  size_t len;
  int op;
  size_t piece;   /* 0: one call; else FRAGMENT calls of this many bytes */
  unsigned flags; /* of the first call */
};

static const struct plan plans[] = {
    {5000, 1, 0, 0},   {100, 2, 0, 0},    {4092, 2, 0, 0},
    {4096, 2, 0, 0},   {4097, 1, 0, 0},   {20, 2, 0, 0}, /* below 32 */
    {70000, 2, 3000, 0}, {0, 2, 1, 0},    /* empty, compressed */
    {3000, 2, 0, LIGHTWS_SEND_NO_COMPRESS}, {1, 1, 1, 0},
    {250000, 1, 0, 0},
};
#define NUM_PLANS (sizeof plans / sizeof plans[0])

/* Sends the plans with whatever the transport takes, finishing with flush
 * until nothing is pending; checks the returned counts. */
static void send_plans(struct zside *x, uint8_t **bufs) {
  size_t i;
  long spins = 0;
  for (i = 0; i < NUM_PLANS; i++) {
    const struct plan *pl = &plans[i];
    size_t off = 0;
    do {
      size_t n = pl->piece ? pl->piece : pl->len;
      unsigned fl = off == 0 ? pl->flags : 0;
      ssize_t r;
      if (n > pl->len - off) n = pl->len - off;
      if (pl->piece && off + n < pl->len) fl |= LIGHTWS_SEND_FRAGMENT;
      if (pl->piece && pl->len == 0 && off == 0 && spins >= 0 && n == 0) {
        /* empty: open with a fragment of 0 bytes, then end it */
        for (;;) {
          r = lightws_stream_send(&x->s, pl->op, bufs[i], 0,
                                  LIGHTWS_SEND_FRAGMENT);
          if (r != LIGHTWS_ERR_WOULDBLOCK) break;
          FAST(++spins < 10000000);
        }
        FAST(r == 0);
        for (;;) {
          r = lightws_stream_send(&x->s, pl->op, bufs[i], 0, 0);
          if (r != LIGHTWS_ERR_WOULDBLOCK) break;
          FAST(++spins < 10000000);
        }
        FAST(r == 0);
        break;
      }
      r = lightws_stream_send(&x->s, pl->op, bufs[i] + off, n, fl);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        FAST(lightws_stream_want(&x->s) & LIGHTWS_WANT_WRITE);
        FAST(++spins < 10000000);
        continue;
      }
      FAST(r >= 0 && (size_t)r <= n);
      off += (size_t)r;
      if (r == 0) FAST(++spins < 10000000);
    } while (off < pl->len);
  }
  for (;;) {
    int r = lightws_stream_flush(&x->s);
    if (r == 0) break;
    FAST(r == LIGHTWS_ERR_WOULDBLOCK);
    FAST(lightws_stream_want(&x->s) & LIGHTWS_WANT_WRITE);
    FAST(++spins < 10000000);
  }
  FAST(!(lightws_stream_want(&x->s) & LIGHTWS_WANT_WRITE));
}

static uint8_t **plan_bufs(void) {
  uint8_t **b = calloc(NUM_PLANS, sizeof *b);
  size_t i;
  for (i = 0; i < NUM_PLANS; i++) {
    b[i] = malloc(plans[i].len + 1);
    fill(b[i], plans[i].len, (unsigned)i + 11);
  }
  return b;
}

static void plan_bufs_free(uint8_t **b) {
  size_t i;
  for (i = 0; i < NUM_PLANS; i++) free(b[i]);
  free(b);
}

/* Whether a plan's message goes compressed: not NO_COMPRESS, and sent
 * in fragments or at least the default threshold (32) long. */
static int plan_compressed(const struct plan *pl) {
  return !(pl->flags & LIGHTWS_SEND_NO_COMPRESS) &&
         ((pl->piece && pl->piece < pl->len) || (pl->piece && pl->len == 0) ||
          pl->len >= 32);
}

/* Checks what was written against the plans with zlib as the reader. */
static void check_plans(const struct bytes *out, int masked, int bits,
                        int reset, uint8_t **bufs, size_t work) {
  z_stream zi;
  struct wout w;
  size_t i;
  peer_inflater(&zi, bits);
  parse_out(out->p, out->len, masked, &zi, reset, &w);
  ck_assert_uint_eq(w.n, NUM_PLANS);
  for (i = 0; i < NUM_PLANS; i++) {
    const struct plan *pl = &plans[i];
    int want_comp = plan_compressed(pl);
    ck_assert_int_eq(w.m[i].op, pl->op);
    ck_assert_msg(w.m[i].compressed == want_comp, "plan %zu", i);
    ck_assert_uint_eq(w.m[i].data.len, pl->len);
    ck_assert(pl->len == 0 || memcmp(w.m[i].data.p, bufs[i], pl->len) == 0);
    (void)work;
  }
  wout_free(&w);
  inflateEnd(&zi);
}

/* Our compressor for each window limit 8..15 (8: Huffman only), each
 * role, context takeover on and off: zlib reads it with that window, and
 * a lightws peer reads it too. */
START_TEST(test_send_windows_round_trip) {
  int bits = 8 + _i, role, nct;
  uint8_t **bufs = plan_bufs();
  for (role = 0; role <= 1; role++)
    for (nct = 0; nct <= 1; nct++) {
      struct zside a, b;
      struct lightws_pmd_params ag;
      struct lightws_pmd_config cb;
      struct got g;
      size_t i, at = 0;
      memset(&ag, 0, sizeof ag);
      if (role == LIGHTWS_SERVER) {
        ag.server_max_window_bits = (uint8_t)bits;
        ag.server_no_context_takeover = (uint8_t)nct;
      } else {
        ag.client_max_window_bits = (uint8_t)bits;
        ag.client_no_context_takeover = (uint8_t)nct;
      }
      side_init(&a, role, 512, 0, &ag, NULL);
      send_plans(&a, bufs);
      check_plans(&a.z.out, role == LIGHTWS_CLIENT, bits, nct, bufs, 4096);
      memset(&cb, 0, sizeof cb);
      cb.peer_window_bits = (uint8_t)bits;
      side_init(&b, !role, 1024, 0, &ag, &cb);
      put_frame(&a.z.out, 1, 0, 8, "", 0, role == LIGHTWS_CLIENT, 0);
      b.z.in = a.z.out.p;
      b.z.in_len = a.z.out.len;
      drain(&b.s, API_RECV, 0, &g);
      ck_assert_int_eq(g.end, LIGHTWS_ERR_CLOSED);
      ck_assert_uint_eq(g.n, NUM_PLANS);
      for (i = 0; i < NUM_PLANS; i++) {
        int want_comp = plan_compressed(&plans[i]);
        ck_assert_uint_eq(g.len[i], plans[i].len);
        /* the reader tells which messages came compressed */
        ck_assert_msg(g.comp[i] == want_comp, "plan %zu", i);
        ck_assert(!plans[i].len ||
                  memcmp(g.data.p + at, bufs[i], plans[i].len) == 0);
        at += plans[i].len;
      }
      bytes_free(&g.data);
      side_free(&a);
      side_free(&b);
    }
  plan_bufs_free(bufs);
}
END_TEST

/* Every byte boundary of the written frames: the transport takes 1 byte
 * per call with EAGAIN between (and then 7, then random-ish 300), guarded
 * and direct; work buffers of 256 and the default. */
START_TEST(test_send_partial_writes_every_byte) {
  int role = _i & 1, direct = (_i >> 1) & 1, small = (_i >> 2) & 1;
  static const size_t wmax[] = {1, 7, 300};
  uint8_t **bufs = plan_bufs();
  size_t k;
  for (k = 0; k < 3; k++) {
    struct zside a, ref;
    struct lightws_pmd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (small) cfg.work_size = 256;
    side_init(&a, role, 512, direct ? LIGHTWS_OPT_DIRECT : 0, &AGREED_ANY,
              &cfg);
    a.z.wmax = wmax[k];
    a.z.wagain = 1;
    if (role == LIGHTWS_CLIENT) {
      /* masked in the work buffer with a fresh key per frame first */
      struct zside m;
      side_init(&m, role, 512, direct ? LIGHTWS_OPT_DIRECT : 0, &AGREED_ANY,
                &cfg);
      m.z.wmax = wmax[k];
      m.z.wagain = 1;
      send_plans(&m, bufs);
      check_plans(&m.z.out, 1, 15, 0, bufs, small ? 256 : 4096);
      side_free(&m);
      ck_assert_int_eq(lightws_stream_set_mask_mode(&a.s, LIGHTWS_MASK_ZERO),
                       0);
    }
    send_plans(&a, bufs);
    check_plans(&a.z.out, role == LIGHTWS_CLIENT, 15, 0, bufs,
                small ? 256 : 4096);
    /* the same bytes as a transport that takes everything */
    side_init(&ref, role, 512, 0, &AGREED_ANY, &cfg);
    if (role == LIGHTWS_CLIENT)
      ck_assert_int_eq(
          lightws_stream_set_mask_mode(&ref.s, LIGHTWS_MASK_ZERO), 0);
    send_plans(&ref, bufs);
    ck_assert_uint_eq(a.z.out.len, ref.z.out.len);
    ck_assert(memcmp(a.z.out.p, ref.z.out.p, ref.z.out.len) == 0);
    side_free(&a);
    side_free(&ref);
  }
  plan_bufs_free(bufs);
}
END_TEST

/* Frame sizes: a frame per work-buffer fill (work_size - 4 payload bytes,
 * the held-back tail), RSV1 on the first only, the last without the
 * 00 00 ff ff. */
START_TEST(test_send_frames_per_work_buffer) {
  struct zside a;
  struct lightws_pmd_config cfg;
  static uint8_t m[100000];
  size_t pos = 0, nf = 0;
  uint64_t st = 5;
  size_t i;
  memset(&cfg, 0, sizeof cfg);
  cfg.work_size = 1000;
  cfg.level = -1; /* stored: the output is larger than the input */
  for (i = 0; i < sizeof m; i++) {
    st = st * 6364136223846793005ull + 1;
    m[i] = (uint8_t)(st >> 56);
  }
  side_init(&a, LIGHTWS_SERVER, 512, 0, &AGREED_ANY, &cfg);
  ck_assert_int_eq(lightws_stream_send(&a.s, 2, m, sizeof m, 0),
                   (ssize_t)sizeof m);
  while (pos < a.z.out.len) {
    struct lightws_frame f;
    ssize_t h = lightws_frame_decode(&f, a.z.out.p + pos, a.z.out.len - pos,
                                     LIGHTWS_DECODE_ALLOW_RSV1);
    FAST(h > 0);
    FAST((f.rsv == 0x40) == (nf == 0));
    FAST(f.opcode == (nf == 0 ? 2 : 0));
    if (!f.fin) FAST(f.length == 996);
    else FAST(f.length <= 996);
    pos += (size_t)h + (size_t)f.length;
    nf++;
    if (f.fin) break;
  }
  ck_assert_uint_eq(pos, a.z.out.len);
  ck_assert_uint_gt(nf, 100);
  side_free(&a);
}
END_TEST

/* Control frames go between the frames of a compressed message, never
 * inside one: a ping while a frame is cut short waits for it. */
START_TEST(test_send_control_between_compressed_frames) {
  struct zside a;
  struct lightws_pmd_config cfg;
  static uint8_t m[50000];
  z_stream zi;
  struct wout w;
  ssize_t r;
  size_t off = 0;
  memset(&cfg, 0, sizeof cfg);
  cfg.work_size = 256;
  cfg.level = -1;
  fill(m, sizeof m, 1);
  side_init(&a, LIGHTWS_CLIENT, 512, 0, &AGREED_ANY, &cfg);
  /* a fragment: frames go out as the buffer fills */
  ck_assert_int_eq(lightws_stream_send(&a.s, 1, m, 20000,
                                       LIGHTWS_SEND_FRAGMENT), 20000);
  ck_assert_int_eq(lightws_stream_ping(&a.s, "p1", 2), 0);
  /* cut a frame short: the ping waits, then goes right after it */
  a.z.wmax = 100;
  a.z.wagain = 1;
  r = lightws_stream_send(&a.s, 1, m + 20000, 30000, 0);
  ck_assert_int_gt(r, 0);
  off = 20000 + (size_t)r;
  while (off < sizeof m) {
    r = lightws_stream_send(&a.s, 1, m + off, sizeof m - off, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) continue;
    ck_assert_int_ge(r, 0);
    if (r == 0 && lightws_stream_ping(&a.s, "p2", 2) == 0) {}
    off += (size_t)r;
  }
  (void)lightws_stream_ping(&a.s, "p3", 2);
  while ((r = lightws_stream_flush(&a.s)) != 0)
    ck_assert_int_eq(r, LIGHTWS_ERR_WOULDBLOCK);
  peer_inflater(&zi, 15);
  parse_out(a.z.out.p, a.z.out.len, 1, &zi, 0, &w);
  ck_assert_uint_eq(w.n, 1);
  ck_assert_uint_ge(w.nctl, 2);
  ck_assert_int_eq(w.ctl_ops[0], 9);
  ck_assert_uint_eq(w.m[0].data.len, sizeof m);
  ck_assert(memcmp(w.m[0].data.p, m, sizeof m) == 0);
  wout_free(&w);
  inflateEnd(&zi);
  side_free(&a);
}
END_TEST

/* sendv with compression: message by message, counted as send counts. */
START_TEST(test_sendv_with_deflate) {
  struct zside a;
  struct lightws_msg msgs[4];
  static uint8_t m[10000];
  z_stream zi;
  struct wout w;
  ssize_t r;
  fill(m, sizeof m, 4);
  msgs[0].data = m;
  msgs[0].len = 5000;
  msgs[0].opcode = 1;
  msgs[1].data = m;
  msgs[1].len = 10; /* below the threshold: plain */
  msgs[1].opcode = 2;
  msgs[2].data = m + 5000;
  msgs[2].len = 5000;
  msgs[2].opcode = 2;
  msgs[3].data = NULL;
  msgs[3].len = 0; /* not first: not sent */
  msgs[3].opcode = 2;
  side_init(&a, LIGHTWS_SERVER, 512, 0, &AGREED_ANY, NULL);
  r = lightws_stream_sendv(&a.s, msgs, 4);
  ck_assert_int_eq(r, 10010);
  peer_inflater(&zi, 15);
  parse_out(a.z.out.p, a.z.out.len, 0, &zi, 0, &w);
  ck_assert_uint_eq(w.n, 3);
  ck_assert(w.m[0].compressed && !w.m[1].compressed && w.m[2].compressed);
  ck_assert(memcmp(w.m[2].data.p, m + 5000, 5000) == 0);
  wout_free(&w);
  inflateEnd(&zi);
  side_free(&a);
}
END_TEST

static uint64_t rnd64(uint64_t *st) { /* splitmix64 */
  uint64_t z = (*st += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Random sends: messages of random sizes and kinds (fragmented at random,
 * NO_COMPRESS, below the threshold), pings and flushes between calls, a
 * transport taking random counts with EAGAIN, guarded or direct; a
 * lightws server reads it all back, and zlib checks the frames. */
START_TEST(test_send_random_mix_read_back) {
  uint64_t st = 1000 + (uint64_t)_i;
  struct zside a, b;
  struct lightws_pmd_config cfg;
  struct bytes want = {0};
  static uint8_t src[40000];
  size_t lens[64], nm = 0, k, at;
  int ops[64];
  struct got g;
  long spins = 0;
  z_stream zi;
  struct wout w;
  memset(&cfg, 0, sizeof cfg);
  cfg.work_size = (uint32_t)(256 + rnd64(&st) % 4000);
  cfg.threshold = (uint32_t)(1 + rnd64(&st) % 100);
  cfg.window_bits = (uint8_t)(9 + rnd64(&st) % 7);
  cfg.level = (int8_t)(rnd64(&st) % 11) - 1;
  fill(src, sizeof src, (unsigned)_i);
  side_init(&a, LIGHTWS_CLIENT, 512,
            (_i & 1) ? LIGHTWS_OPT_DIRECT : 0, &AGREED_ANY, &cfg);
  a.z.wmax = 1 + (size_t)(rnd64(&st) % 700);
  a.z.wagain = (int)(rnd64(&st) & 1);
  for (nm = 0; nm < 40; nm++) {
    size_t len = (size_t)(rnd64(&st) % 3 == 0 ? rnd64(&st) % 40
                                                : rnd64(&st) % sizeof src);
    size_t off = 0, piece = rnd64(&st) % 4 == 0 ? 0 : 1 + rnd64(&st) % 9000;
    int op = 1 + (int)(rnd64(&st) & 1);
    unsigned first = rnd64(&st) % 8 == 0 ? LIGHTWS_SEND_NO_COMPRESS : 0;
    int opened = 0;
    size_t base = (size_t)(rnd64(&st) % (sizeof src - len + 1));
    /* text must be valid: use the fill() text from its start */
    if (op == 1) {
      base = 0;
      while (len > 0 && (src[len] & 0xC0) == 0x80) len--;
    }
    ops[nm] = op;
    lens[nm] = len;
    put(&want, src + base, len);
    for (;;) {
      size_t n = piece ? piece : len;
      int last;
      unsigned fl;
      ssize_t r;
      if (n > len - off) n = len - off;
      last = off + n == len;
      fl = (opened ? 0 : first) | (last ? 0 : LIGHTWS_SEND_FRAGMENT);
      if (op == 1 && !last) {
        /* never cut a text fragment inside a character */
        while (n > 0 && (src[base + off + n] & 0xC0) == 0x80) n--;
        if (n == 0) n = 1;
      }
      r = lightws_stream_send(&a.s, op, src + base + off, n, fl);
      if (rnd64(&st) % 5 == 0) (void)lightws_stream_ping(&a.s, "pp", 2);
      if (rnd64(&st) % 5 == 0) (void)lightws_stream_flush(&a.s);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        FAST(++spins < 50000000);
        continue;
      }
      FAST(r >= 0 && (size_t)r <= n);
      opened = 1;
      off += (size_t)r;
      if (off == len && (last || len == 0)) {
        /* the final call must have been made (a 0-byte fin counts) */
        if (n == (size_t)r && last) break;
      }
      if (r == 0) FAST(++spins < 50000000);
    }
  }
  for (;;) {
    int r = lightws_stream_flush(&a.s);
    if (r == 0) break;
    FAST(r == LIGHTWS_ERR_WOULDBLOCK);
    FAST(++spins < 50000000);
  }
  peer_inflater(&zi, 15);
  parse_out(a.z.out.p, a.z.out.len, 1, &zi, 0, &w);
  ck_assert_uint_eq(w.n, nm);
  for (k = 0, at = 0; k < nm; k++) {
    ck_assert_int_eq(w.m[k].op, ops[k]);
    ck_assert_uint_eq(w.m[k].data.len, lens[k]);
    ck_assert(!lens[k] || memcmp(w.m[k].data.p, want.p + at, lens[k]) == 0);
    at += lens[k];
  }
  wout_free(&w);
  inflateEnd(&zi);
  side_init(&b, LIGHTWS_SERVER, 300, 0, &AGREED_ANY, NULL);
  put_frame(&a.z.out, 1, 0, 8, "", 0, 1, 0);
  b.z.in = a.z.out.p;
  b.z.in_len = a.z.out.len;
  b.z.rmax = 1 + (size_t)(rnd64(&st) % 1000);
  drain(&b.s, API_READ, 1 + (size_t)(rnd64(&st) % 5000), &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_CLOSED);
  ck_assert_uint_eq(g.n, nm);
  ck_assert_uint_eq(g.data.len, want.len);
  ck_assert(memcmp(g.data.p, want.p, want.len) == 0);
  for (k = 0; k < nm; k++) ck_assert_uint_eq(g.len[k], lens[k]);
  bytes_free(&g.data);
  bytes_free(&want);
  side_free(&a);
  side_free(&b);
}
END_TEST

static void set_nonblock(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* As the stream suite's 10,000-frame test, with compression on both ways
 * (every message compressed: threshold 1): no heap allocation during the
 * exchange. */
START_TEST(test_socketpair_10000_compressed_frames_no_malloc) {
  int sv[2], nframes = quick() ? 1000 : 10000;
  static uint8_t rbc[8192], rbs[8192], payload[600], got[700], ebuf[700];
  static uint8_t memc[1 << 18], mems[1 << 18];
  struct lightws_stream c, s;
  struct lightws_pmd_config cfg;
  int sent = 0, echoed = 0, recvd = 0, sent_pending = 0, echo_pending = 0;
  size_t s_off = 0, e_off = 0, e_len = 0, got_len = 0, i;
  struct mallinfo2 before, after;
  for (i = 0; i < sizeof payload; i++) payload[i] = (uint8_t)('a' + i % 26);
  memset(&cfg, 0, sizeof cfg);
  cfg.threshold = 1;
  ck_assert_uint_le(lightws_pmd_mem_size(&cfg), sizeof memc);
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  set_nonblock(sv[0]);
  set_nonblock(sv[1]);
  ck_assert_int_eq(lightws_stream_init(&c, LIGHTWS_CLIENT, sv[0], rbc,
                                       sizeof rbc, 0), 0);
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_SERVER, sv[1], rbs,
                                       sizeof rbs, 0), 0);
  before = mallinfo2();
  ck_assert_int_eq(lightws_stream_set_deflate(&c, &AGREED_ANY, &cfg, memc,
                                              sizeof memc), 0);
  ck_assert_int_eq(lightws_stream_set_deflate(&s, &AGREED_ANY, &cfg, mems,
                                              sizeof mems), 0);
  while (recvd < nframes) {
    struct lightws_chunk ch;
    ssize_t r;
    int progress = 0;
    size_t flen = 1 + (size_t)(sent * 7) % sizeof payload;
    if (sent < nframes) {
      if (!sent_pending) {
        s_off = 0;
        sent_pending = 1;
      }
      r = lightws_stream_send(&c, sent & 1 ? 1 : 2, payload + s_off,
                              flen - s_off, 0);
      if (r >= 0) {
        s_off += (size_t)r;
        progress = 1;
        if (s_off == flen) {
          sent++;
          sent_pending = 0;
        }
      } else {
        FAST(r == LIGHTWS_ERR_WOULDBLOCK);
      }
    }
    if (!echo_pending) {
      r = lightws_stream_recv(&s, &ch);
      if (r >= 0) {
        progress = 1;
        memcpy(ebuf + e_len, ch.data, ch.len);
        e_len += ch.len;
        if (ch.message_end) {
          echo_pending = ch.opcode;
          e_off = 0;
        }
      } else {
        FAST(r == LIGHTWS_ERR_WOULDBLOCK);
      }
    }
    if (echo_pending) {
      r = lightws_stream_send(&s, echo_pending, ebuf + e_off, e_len - e_off,
                              0);
      if (r >= 0) {
        progress = 1;
        e_off += (size_t)r;
        if (e_off == e_len) {
          echo_pending = 0;
          e_len = 0;
          echoed++;
        }
      } else {
        FAST(r == LIGHTWS_ERR_WOULDBLOCK);
      }
    }
    r = lightws_stream_read(&c, got + got_len, sizeof got - got_len, &ch);
    if (r >= 0) {
      progress = 1;
      got_len += (size_t)r;
      if (ch.message_end) {
        size_t want = 1 + (size_t)(recvd * 7) % sizeof payload;
        FAST(got_len == want);
        FAST(memcmp(got, payload, want) == 0);
        FAST(ch.opcode == (recvd & 1 ? 1 : 2));
        recvd++;
        got_len = 0;
      }
    } else {
      FAST(r == LIGHTWS_ERR_WOULDBLOCK);
    }
    (void)lightws_stream_flush(&c);
    (void)lightws_stream_flush(&s);
    if (!progress) {
      struct pollfd p[2];
      p[0].fd = sv[0];
      p[0].events = POLLIN | (lightws_stream_want(&c) & LIGHTWS_WANT_WRITE
                                  ? POLLOUT : 0);
      p[1].fd = sv[1];
      p[1].events = POLLIN | (lightws_stream_want(&s) & LIGHTWS_WANT_WRITE
                                  ? POLLOUT : 0);
      poll(p, 2, 100);
    }
  }
  after = mallinfo2();
  FAST(after.uordblks == before.uordblks);
  FAST(echoed == nframes);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

#endif /* LIGHTWS_HAVE_ZLIB */

/* Without zlib (make ZLIB=0): nothing can be turned on; RSV1 stays a
 * reserved bit. With zlib the same frame is refused only when pmd is off. */
START_TEST(test_rsv1_without_pmd_is_reserved_bits) {
  struct zside x;
  struct bytes in = {0};
  struct got g;
  static uint8_t blk[1 << 20];
  put_frame(&in, 1, 1, 1, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7, 1, 0x12345678);
  side_init(&x, LIGHTWS_SERVER, 512, 0, NULL, NULL);
#if !LIGHTWS_HAVE_ZLIB
  ck_assert_int_eq(lightws_pmd_available(), 0);
  ck_assert_uint_eq(lightws_pmd_mem_size(NULL), 0);
  ck_assert_int_eq(lightws_stream_set_deflate(&x.s, NULL, NULL, blk,
                                              sizeof blk),
                   LIGHTWS_ERR_UNSUPPORTED);
#else
  (void)blk;
#endif
  ck_assert_int_eq(lightws_stream_deflate(&x.s), 0);
  x.z.in = in.p;
  x.z.in_len = in.len;
  drain(&x.s, API_RECV, 0, &g);
  ck_assert_int_eq(g.end, LIGHTWS_ERR_RESERVED_BITS);
  bytes_free(&g.data);
  bytes_free(&in);
  side_free(&x);
}
END_TEST

Suite *deflate_suite(void) {
  Suite *s = suite_create("deflate");
  TCase *tc = tcase_create("memory");
  tcase_set_timeout(tc, 60);
#if LIGHTWS_HAVE_ZLIB
  tcase_add_loop_test(tc, test_mem_size_exact_and_canary, 0, NUM_MEM_CFGS);
  tcase_add_test(tc, test_no_heap_in_set_deflate);
  tcase_add_test(tc, test_set_deflate_checks);
  tcase_add_test(tc, test_mem_size_figures);
#endif
  tcase_add_test(tc, test_rsv1_without_pmd_is_reserved_bits);
  suite_add_tcase(s, tc);
#if LIGHTWS_HAVE_ZLIB
  tc = tcase_create("read");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_rfc7692_examples_receive, 0, NUM_RFC);
  tcase_add_test(tc, test_whole_compressed_message_one_call);
  tcase_add_loop_test(tc, test_read_peer_zlib_windows, 0, 7);
  tcase_add_loop_test(tc, test_read_one_byte_reads_eagain, 0, 4);
  tcase_add_test(tc, test_read_window_8);
  tcase_add_loop_test(tc, test_buffered_counts_output_held_in_zlib, 0, 2);
  tcase_add_test(tc, test_bomb_4gib_refused_at_limit);
  tcase_add_test(tc, test_bomb_read_into_big_buffer);
  tcase_add_test(tc, test_stream_of_empty_blocks_ends);
  tcase_add_test(tc, test_invalid_utf8_after_1mib);
  tcase_add_loop_test(tc, test_bad_compressed_input, 0, 8);
  tcase_add_test(tc, test_large_message_streams_through_small_rbuf);
  suite_add_tcase(s, tc);
  tc = tcase_create("write");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_rfc7692_examples_send, 0, 2);
  tcase_add_loop_test(tc, test_send_windows_round_trip, 0, 8);
  tcase_add_loop_test(tc, test_send_partial_writes_every_byte, 0, 8);
  tcase_add_test(tc, test_send_frames_per_work_buffer);
  tcase_add_test(tc, test_send_control_between_compressed_frames);
  tcase_add_test(tc, test_sendv_with_deflate);
  tcase_add_loop_test(tc, test_send_random_mix_read_back, 0, 24);
  tcase_add_test(tc, test_socketpair_10000_compressed_frames_no_malloc);
  suite_add_tcase(s, tc);
#endif
  return s;
}
