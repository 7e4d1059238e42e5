/* SPDX-License-Identifier: MIT */
/* permessage-deflate (RFC 7692) memory: the caller's block holds the
 * private state, the two work buffers and a bump arena that serves zlib's
 * allocations, so compression never reaches malloc. The per-message work
 * (§7.2) is in stream.c. */
#include <stdint.h>
#include <string.h>
#include "internal.h"

int lightws_pmd_available(void) { return LIGHTWS_HAVE_ZLIB; }

#if LIGHTWS_HAVE_ZLIB

#define ALIGN 16u
#define UP(n) (((size_t)(n) + (ALIGN - 1)) & ~(size_t)(ALIGN - 1))

/* What a config means once defaults are applied; 0 if it is out of range. */
struct pmd_choice {
  int bits;       /* our compressor's largest window, 9..15 */
  int peer_bits;  /* the inflater's window, 8..15 */
  int mem_level;  /* 1..9 */
  int level;      /* 0..9 */
  size_t work;    /* each work buffer */
  uint32_t threshold;
};

static int choose(const struct lightws_pmd_config *cfg, struct pmd_choice *c) {
  static const struct lightws_pmd_config zero;
  if (!cfg) cfg = &zero;
  c->bits = cfg->window_bits ? cfg->window_bits
                             : LIGHTWS_PMD_DEFAULT_WINDOW_BITS;
  c->peer_bits = cfg->peer_window_bits ? cfg->peer_window_bits : 15;
  c->mem_level = cfg->mem_level ? cfg->mem_level
                                : LIGHTWS_PMD_DEFAULT_MEM_LEVEL;
  c->level = cfg->level == 0 ? LIGHTWS_PMD_DEFAULT_LEVEL
                             : (cfg->level < 0 ? 0 : cfg->level);
  c->work = cfg->work_size ? cfg->work_size : LIGHTWS_PMD_DEFAULT_WORK_SIZE;
  c->threshold = cfg->threshold ? cfg->threshold
                                : LIGHTWS_PMD_DEFAULT_THRESHOLD;
  if (c->bits < 9 || c->bits > 15 || c->peer_bits < 8 || c->peer_bits > 15 ||
      c->mem_level < 1 || c->mem_level > 9 || cfg->level < -1 ||
      cfg->level > 9 || c->work < 256 || c->work > 65536 ||
      cfg->no_context_takeover > 1 || cfg->peer_no_context_takeover > 1 ||
      cfg->required > 1)
    return 0;
  return 1;
}

/* zlib's first allocation in deflateInit2 and inflateInit2 is its state
 * (sizes private to zlib): a hook that records the size and refuses makes
 * the init fail right there with Z_MEM_ERROR, having allocated nothing. */
static voidpf probe_alloc(voidpf opaque, uInt items, uInt size) {
  *(size_t *)opaque = (size_t)items * size;
  return Z_NULL;
}

static void probe_free(voidpf opaque, voidpf p) {
  (void)opaque;
  (void)p;
}

static size_t state_sizes(size_t *inflate_state) {
  z_stream z;
  size_t d = 0, i = 0;
  memset(&z, 0, sizeof z);
  z.zalloc = probe_alloc;
  z.zfree = probe_free;
  z.opaque = &d;
  (void)deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  memset(&z, 0, sizeof z);
  z.zalloc = probe_alloc;
  z.zfree = probe_free;
  z.opaque = &i;
  (void)inflateInit2(&z, -15);
  *inflate_state = i;
  return d;
}

/* The block for windows `bits` (ours, 9..15) and `peer_bits`: zlib 1.2's
 * allocations, in the order zlib makes them (each rounded to ALIGN): the
 * deflate state, its window (2 << bits), prev (2 << bits), head
 * (2 << (memLevel + 7)), pending_buf (4 << (memLevel + 6)); the inflate
 * state, and its window (1 << peer_bits) on the first inflated byte. */
static size_t block_size(size_t work, int bits, int mem_level,
                         int peer_bits) {
  size_t ist, dst = state_sizes(&ist);
  if (!dst || !ist) return 0;
  return UP(sizeof(struct lightws__pmd)) + 2 * UP(work) + UP(dst) +
         UP((size_t)2 << bits) + UP((size_t)2 << bits) +
         UP((size_t)2 << (mem_level + 7)) +
         UP((size_t)4 << (mem_level + 6)) + UP(ist) +
         UP((size_t)1 << peer_bits);
}

size_t lightws_pmd_mem_size(const struct lightws_pmd_config *cfg) {
  struct pmd_choice c;
  if (!choose(cfg, &c)) return 0;
  return block_size(c.work, c.bits, c.mem_level, c.peer_bits);
}

/* zlib's allocator: bump allocation in the block; nothing is freed. */
static voidpf arena_alloc(voidpf opaque, uInt items, uInt size) {
  struct lightws__pmd *p = opaque;
  size_t n;
  if (size && items > (size_t)-1 / size) return Z_NULL;
  n = UP((size_t)items * size);
  if (n > p->cap - p->used) return Z_NULL;
  p->used += n;
  return p->arena + p->used - n;
}

static void arena_free(voidpf opaque, voidpf ptr) {
  (void)opaque;
  (void)ptr;
}

/* An agreed window limit: 0 (absent) and the bare form mean 15. */
static int agreed_bits(uint8_t v) {
  if (v == 0 || v == LIGHTWS_PMD_BITS_BARE) return 15;
  if (v < 8 || v > 15) return 0;
  return v;
}

int lightws_stream_set_deflate(struct lightws_stream *s,
                               const struct lightws_pmd_params *agreed,
                               const struct lightws_pmd_config *cfg,
                               void *mem, size_t size) {
  /* a stored deflate block holding one byte: inflating it makes zlib take
   * its window now, so a short block fails here and never mid-stream */
  static const uint8_t one[6] = {0x00, 0x01, 0x00, 0xfe, 0xff, 'x'};
  struct pmd_choice c;
  struct lightws__pmd *p;
  uint8_t *base, *end, sink[2];
  int ours, peer, server, zbits, strategy;
  if (!s || !agreed || !mem || s->pmd) return LIGHTWS_ERR_INVALID;
  if (s->state == LIGHTWS__ST_OPEN &&
      (s->msg_opcode || s->w_opcode || s->whead_len || s->r_left))
    return LIGHTWS_ERR_INVALID; /* a message is being read or sent */
  if (!choose(cfg, &c)) return LIGHTWS_ERR_INVALID;
  if (agreed->server_no_context_takeover > 1 ||
      agreed->client_no_context_takeover > 1)
    return LIGHTWS_ERR_INVALID;
  server = s->role == LIGHTWS_SERVER;
  ours = agreed_bits(server ? agreed->server_max_window_bits
                            : agreed->client_max_window_bits);
  peer = agreed_bits(server ? agreed->client_max_window_bits
                            : agreed->server_max_window_bits);
  /* the peer may use up to `peer`: our inflater must hold that window */
  if (!ours || !peer || peer > c.peer_bits) return LIGHTWS_ERR_INVALID;

  base = (uint8_t *)(((uintptr_t)mem + (ALIGN - 1)) & ~(uintptr_t)(ALIGN - 1));
  end = (uint8_t *)mem + size;
  if (base > end ||
      (size_t)(end - base) < UP(sizeof *p) + 2 * UP(c.work))
    return LIGHTWS_ERR_NOSPACE;
  p = (struct lightws__pmd *)(void *)base;
  memset(p, 0, sizeof *p);
  p->wbuf = base + UP(sizeof *p);
  p->ibuf = p->wbuf + UP(c.work);
  p->arena = p->ibuf + UP(c.work);
  p->cap = (size_t)(end - p->arena);
  p->work_size = (uint32_t)c.work;
  p->threshold = c.threshold;
  p->our_bits = (uint8_t)(ours < c.bits ? ours : c.bits);
  p->peer_bits = (uint8_t)peer;
  p->our_nct = (uint8_t)((server ? agreed->server_no_context_takeover
                                 : agreed->client_no_context_takeover) |
                         (cfg ? cfg->no_context_takeover : 0));
  p->peer_nct = server ? agreed->client_no_context_takeover
                       : agreed->server_no_context_takeover;

  /* raw deflate (negative windowBits, §7.2.1). zlib cannot compress with
   * a 256-byte window: for a limit of 8 it uses 512 without back
   * references (Huffman only), valid output for any window. */
  zbits = p->our_bits;
  strategy = Z_DEFAULT_STRATEGY;
  if (zbits == 8) {
    zbits = 9;
    strategy = Z_HUFFMAN_ONLY;
  }
  p->zd.zalloc = p->zi.zalloc = arena_alloc;
  p->zd.zfree = p->zi.zfree = arena_free;
  p->zd.opaque = p->zi.opaque = p;
  if (deflateInit2(&p->zd, c.level, Z_DEFLATED, -zbits, c.mem_level,
                   strategy) != Z_OK)
    return LIGHTWS_ERR_NOSPACE; /* the parameters were checked */
  if (inflateInit2(&p->zi, -peer) != Z_OK) return LIGHTWS_ERR_NOSPACE;
  p->zi.next_in = (Bytef *)(uintptr_t)one;
  p->zi.avail_in = sizeof one;
  p->zi.next_out = sink;
  p->zi.avail_out = sizeof sink;
  if (inflate(&p->zi, Z_SYNC_FLUSH) != Z_OK || p->zi.avail_out != 1)
    return LIGHTWS_ERR_NOSPACE;
  if (inflateReset(&p->zi) != Z_OK) return LIGHTWS_ERR_NOSPACE;
  p->deflate = deflate;
  p->inflate = inflate;
  p->deflate_reset = deflateReset;
  p->inflate_reset = inflateReset;
  p->r_drained = 1;
  p->w_first = 1;
  s->pmd = p;
  return 0;
}

#else /* no zlib */

size_t lightws_pmd_mem_size(const struct lightws_pmd_config *cfg) {
  (void)cfg;
  return 0;
}

int lightws_stream_set_deflate(struct lightws_stream *s,
                               const struct lightws_pmd_params *agreed,
                               const struct lightws_pmd_config *cfg,
                               void *mem, size_t size) {
  (void)s;
  (void)agreed;
  (void)cfg;
  (void)mem;
  (void)size;
  return LIGHTWS_ERR_UNSUPPORTED;
}

#endif
