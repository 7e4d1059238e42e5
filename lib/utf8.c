/* SPDX-License-Identifier: MIT */
/* Incremental UTF-8 validation (RFC 3629 §4) for text messages (RFC 6455 §5.6, §8.1). */
#include <string.h>
#include "internal.h"

/*
 * State layout (all zero = between characters):
 *   bits 0-1   continuation bytes still expected (0..3)
 *   bits 8-15  smallest allowed value of the next continuation byte
 *   bits 16-23 largest allowed value of the next continuation byte
 *   bit 31     failed (sticky)
 * The bounds carry the RFC 3629 rules that depend on the lead byte: E0
 * needs A0..BF next (no overlongs), ED needs 80..9F (no surrogates), F0
 * needs 90..BF (no overlongs), F4 needs 80..8F (nothing past U+10FFFF).
 */
#define FAILED 0x80000000u
#define ASCII_MASK 0x8080808080808080ull

static uint32_t pack(unsigned need, unsigned lo, unsigned hi) {
  return (uint32_t)(need | (lo << 8) | (hi << 16));
}

/* For lead byte b: continuation count and bounds of the first one, or 0. */
static uint32_t lead(unsigned b) {
  if (b < 0xC2) return 0; /* continuation byte, or C0/C1 (overlong) */
  if (b < 0xE0) return pack(1, 0x80, 0xBF);
  if (b < 0xF0) {
    if (b == 0xE0) return pack(2, 0xA0, 0xBF);
    if (b == 0xED) return pack(2, 0x80, 0x9F);
    return pack(2, 0x80, 0xBF);
  }
  if (b == 0xF0) return pack(3, 0x90, 0xBF);
  if (b < 0xF4) return pack(3, 0x80, 0xBF);
  if (b == 0xF4) return pack(3, 0x80, 0x8F);
  return 0; /* F5..FF never appear */
}

int lightws_utf8_feed(struct lightws_utf8 *u, const uint8_t *in, size_t len) {
  uint32_t st = u->state;
  const uint8_t *end;
  unsigned need, lo, hi;

  if (st & FAILED) return LIGHTWS_ERR_UTF8;
  if (len == 0) /* `in` may be NULL then; NULL + 0 is undefined in C99 */
    return st ? LIGHTWS_UTF8_INCOMPLETE : LIGHTWS_UTF8_VALID;
  end = in + len;
  need = st & 3;
  lo = (st >> 8) & 0xFF;
  hi = (st >> 16) & 0xFF;
  for (;;) {
    /* continuation bytes of the current character */
    while (need > 0) {
      unsigned b;
      if (in == end) {
        u->state = pack(need, lo, hi);
        return LIGHTWS_UTF8_INCOMPLETE;
      }
      b = *in++;
      if (b < lo || b > hi) goto fail;
      lo = 0x80;
      hi = 0xBF;
      need--;
    }
    /* ASCII runs, 16 bytes at a time */
    while (end - in >= 16) {
      uint64_t w1, w2;
      memcpy(&w1, in, 8);
      memcpy(&w2, in + 8, 8);
      if ((w1 | w2) & ASCII_MASK) break;
      in += 16;
    }
    while (in < end && *in < 0x80) in++;
    if (in == end) break;
    if (end - in >= 4) {
      /* a whole sequence is present: check it in one go */
      unsigned b = in[0];
      if (b < 0xE0) {
        if (b < 0xC2 || (in[1] & 0xC0) != 0x80) goto fail;
        in += 2;
      } else if (b < 0xF0) {
        lo = b == 0xE0 ? 0xA0 : 0x80;
        hi = b == 0xED ? 0x9F : 0xBF;
        if (in[1] < lo || in[1] > hi || (in[2] & 0xC0) != 0x80) goto fail;
        in += 3;
      } else {
        lo = b == 0xF0 ? 0x90 : 0x80;
        hi = b == 0xF4 ? 0x8F : 0xBF;
        if (b > 0xF4 || in[1] < lo || in[1] > hi ||
            (((in[2] & 0xC0) ^ 0x80) | ((in[3] & 0xC0) ^ 0x80)))
          goto fail;
        in += 4;
      }
      continue;
    }
    /* near the end: the character may continue in the next call */
    st = lead(*in++);
    if (st == 0) goto fail;
    need = st & 3;
    lo = (st >> 8) & 0xFF;
    hi = (st >> 16) & 0xFF;
  }
  u->state = 0;
  return LIGHTWS_UTF8_VALID;
fail:
  u->state = FAILED;
  return LIGHTWS_ERR_UTF8;
}
