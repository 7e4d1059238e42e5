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

static int quick(void) {
  const char *q = getenv("LIGHTWS_TEST_QUICK");
  return q && *q && *q != '0';
}

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
    for (k = 0; w[k] && i < n; k++) p[i++] = (uint8_t)w[k];
  }
}

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
  return s;
}
