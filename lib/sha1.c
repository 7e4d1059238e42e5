/* SPDX-License-Identifier: MIT */
/* SHA-1 (RFC 3174), used only for Sec-WebSocket-Accept (RFC 6455 §4.2.2). */
#include <string.h>
#include "internal.h"

static uint32_t rol(uint32_t x, unsigned n) {
  return (x << n) | (x >> (32 - n));
}

/* RFC 3174 §6.1: one 512-bit block, with the 16-word circular schedule of §6.2. */
static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[16], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
  unsigned i;
  for (i = 0; i < 16; i++)
    w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
           ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
  for (i = 0; i < 80; i++) {
    if (i >= 16) {
      w[i & 15] = rol(w[(i + 13) & 15] ^ w[(i + 8) & 15] ^ w[(i + 2) & 15] ^
                      w[i & 15], 1);
    }
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    t = rol(a, 5) + f + e + k + w[i & 15];
    e = d;
    d = c;
    c = rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

void lightws__sha1_init(struct lightws__sha1 *c) {
  c->h[0] = 0x67452301u;
  c->h[1] = 0xEFCDAB89u;
  c->h[2] = 0x98BADCFEu;
  c->h[3] = 0x10325476u;
  c->h[4] = 0xC3D2E1F0u;
  c->len = 0;
  c->used = 0;
}

void lightws__sha1_update(struct lightws__sha1 *c, const void *data,
                          size_t len) {
  const uint8_t *p = data;
  if (len == 0) return; /* `data` may be NULL */
  c->len += len;
  if (c->used > 0) {
    size_t n = 64 - c->used;
    if (n > len) n = len;
    memcpy(c->block + c->used, p, n);
    c->used += n;
    p += n;
    len -= n;
    if (c->used < 64) return;
    sha1_block(c->h, c->block);
    c->used = 0;
  }
  for (; len >= 64; len -= 64, p += 64) sha1_block(c->h, p);
  memcpy(c->block, p, len);
  c->used = len;
}

/* RFC 3174 §4: append 0x80, zeros, then the bit length as 64 bits big-endian. */
void lightws__sha1_final(struct lightws__sha1 *c, uint8_t digest[20]) {
  uint64_t bits = c->len * 8;
  unsigned i;
  c->block[c->used++] = 0x80;
  if (c->used > 56) {
    memset(c->block + c->used, 0, 64 - c->used);
    sha1_block(c->h, c->block);
    c->used = 0;
  }
  memset(c->block + c->used, 0, 56 - c->used);
  for (i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_block(c->h, c->block);
  for (i = 0; i < 20; i++) digest[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}
