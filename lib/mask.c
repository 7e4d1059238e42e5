/* SPDX-License-Identifier: MIT */
/* Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, in place or while copying. */
#include <string.h>
#include "internal.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * §5.3: octet i of the payload is XORed with key[i mod 4]. Both functions
 * mask byte by byte until `dst` is aligned, then a vector (or 64-bit word)
 * of the key rotated to the current payload position at a time, and finish
 * the tail byte by byte.
 */
static void mask_run(uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t key[4], uint64_t offset) {
  unsigned k = (unsigned)(offset & 3);
  uint8_t rot[16];
  size_t i;
#ifdef __SSE2__
  const size_t align = 16;
#else
  const size_t align = 8;
#endif

  while (len > 0 && ((uintptr_t)dst & (align - 1))) {
    *dst++ = *src++ ^ key[k];
    k = (k + 1) & 3;
    len--;
  }
  /* the key as seen from payload position k onwards */
  for (i = 0; i < sizeof rot; i++) rot[i] = key[(k + i) & 3];

#ifdef __SSE2__
  {
    __m128i m = _mm_loadu_si128((const __m128i *)(const void *)rot);
    if (dst == src) {
      for (; len >= 64; len -= 64, dst += 64) {
        __m128i *d = (__m128i *)(void *)dst;
        __m128i a = _mm_load_si128(d), b = _mm_load_si128(d + 1),
                c = _mm_load_si128(d + 2), e = _mm_load_si128(d + 3);
        _mm_store_si128(d, _mm_xor_si128(a, m));
        _mm_store_si128(d + 1, _mm_xor_si128(b, m));
        _mm_store_si128(d + 2, _mm_xor_si128(c, m));
        _mm_store_si128(d + 3, _mm_xor_si128(e, m));
      }
      src = dst;
    } else {
      for (; len >= 64; len -= 64, dst += 64, src += 64) {
        const __m128i *s = (const __m128i *)(const void *)src;
        __m128i *d = (__m128i *)(void *)dst;
        __m128i a = _mm_loadu_si128(s), b = _mm_loadu_si128(s + 1),
                c = _mm_loadu_si128(s + 2), e = _mm_loadu_si128(s + 3);
        _mm_store_si128(d, _mm_xor_si128(a, m));
        _mm_store_si128(d + 1, _mm_xor_si128(b, m));
        _mm_store_si128(d + 2, _mm_xor_si128(c, m));
        _mm_store_si128(d + 3, _mm_xor_si128(e, m));
      }
    }
    for (; len >= 16; len -= 16, dst += 16, src += 16) {
      __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
      _mm_store_si128((__m128i *)(void *)dst, _mm_xor_si128(a, m));
    }
  }
#else
  {
    uint64_t m, a, b, c, d;
    memcpy(&m, rot, 8);
    for (; len >= 32; len -= 32, dst += 32, src += 32) {
      memcpy(&a, src, 8);
      memcpy(&b, src + 8, 8);
      memcpy(&c, src + 16, 8);
      memcpy(&d, src + 24, 8);
      a ^= m; b ^= m; c ^= m; d ^= m;
      memcpy(dst, &a, 8);
      memcpy(dst + 8, &b, 8);
      memcpy(dst + 16, &c, 8);
      memcpy(dst + 24, &d, 8);
    }
    for (; len >= 8; len -= 8, dst += 8, src += 8) {
      memcpy(&a, src, 8);
      a ^= m;
      memcpy(dst, &a, 8);
    }
  }
#endif
  /* whole vectors keep the phase: the tail starts at key position k */
  for (i = 0; i < len; i++) dst[i] = src[i] ^ rot[i & 3];
}

void lightws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                  uint64_t offset) {
  if ((key[0] | key[1] | key[2] | key[3]) == 0) return;
  mask_run(buf, buf, len, key, offset);
}

void lightws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                       const uint8_t key[4], uint64_t offset) {
  if ((key[0] | key[1] | key[2] | key[3]) == 0) {
    if (dst != src && len > 0) memcpy(dst, src, len);
    return;
  }
  mask_run(dst, src, len, key, offset);
}
