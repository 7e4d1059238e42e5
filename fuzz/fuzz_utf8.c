/* SPDX-License-Identifier: MIT */
/* libFuzzer target: lightws_utf8_feed() over arbitrary splits of the input,
 * compared after every piece with a plain code-point reference decoder
 * (RFC 3629 §3/§4, as RFC 6455 §8.1 requires for text). */
#include <stdint.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

/* Reference verdict on in[0..len): 0 valid, 1 valid but ends inside a
 * sequence that some continuation could still complete, -1 invalid.
 * Decodes each sequence to a code point and checks its range; a cut-off
 * tail is padded with 0x80 bytes, the smallest continuation, which
 * completes it validly iff any continuation does (validity depends only
 * on the lead byte and the first continuation). */
static int ref_utf8(const uint8_t *in, size_t len)
{
  size_t i = 0;
  while (i < len) {
    uint8_t b = in[i];
    size_t n, k, have;
    uint32_t cp, min;
    uint8_t seq[4];
    if (b < 0x80) { i++; continue; }
    if (b >= 0xC0 && b <= 0xDF) { n = 2; cp = b & 0x1F; min = 0x80; }
    else if (b >= 0xE0 && b <= 0xEF) { n = 3; cp = b & 0x0F; min = 0x800; }
    else if (b >= 0xF0 && b <= 0xF7) { n = 4; cp = b & 0x07; min = 0x10000; }
    else return -1; /* stray continuation or 0xF8..0xFF */
    have = len - i < n ? len - i : n;
    for (k = 0; k < n; k++)
      seq[k] = k < have ? in[i + k] : 0x80;
    for (k = 1; k < n; k++) {
      if ((seq[k] & 0xC0) != 0x80)
        return -1;
      cp = (cp << 6) | (seq[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      /* With only the lead byte present, padding with 0x80 may be the
       * wrong choice (E0 needs A0.., F0 needs 90..): try the largest
       * continuation too before calling it invalid. */
      if (have == 1) {
        uint32_t cp2 = b & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
        int ok = 0;
        unsigned second;
        for (second = 0x80; second <= 0xBF && !ok; second++) {
          uint32_t c = (cp2 << 6) | (second & 0x3F);
          for (k = 2; k < n; k++)
            c = (c << 6);
          if (c >= min && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF))
            ok = 1;
        }
        if (ok)
          return 1;
      }
      return -1;
    }
    if (have < n)
      return 1;
    i += n;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lightws_utf8 u, whole;
  uint64_t seed = 0;
  size_t pos = 0, i;
  int r = LIGHTWS_UTF8_VALID, ref, failed = 0;

  if (size < 2)
    return 0;
  /* The first two bytes pick the split pattern; the rest is the text. */
  seed = ((uint64_t)data[0] << 8 | data[1]) + 1;
  data += 2;
  size -= 2;

  memset(&whole, 0, sizeof whole);
  ref = ref_utf8(data, size);
  r = lightws_utf8_feed(&whole, data, size);
  FUZZ_CHECK(r == (ref == 0 ? LIGHTWS_UTF8_VALID
                   : ref == 1 ? LIGHTWS_UTF8_INCOMPLETE : LIGHTWS_ERR_UTF8));

  memset(&u, 0, sizeof u);
  while (pos < size) {
    size_t n = (size_t)(fuzz_rng(&seed) % 8);
    if (n == 7)
      n = (size_t)(fuzz_rng(&seed) % (size - pos + 1));
    if (n > size - pos)
      n = size - pos;
    r = lightws_utf8_feed(&u, data + pos, n);
    pos += n;
    ref = ref_utf8(data, pos);
    if (failed) {
      /* Fail-fast and sticky: once failed, always failed. */
      FUZZ_CHECK(r == LIGHTWS_ERR_UTF8);
      continue;
    }
    FUZZ_CHECK(r == (ref == 0 ? LIGHTWS_UTF8_VALID
                     : ref == 1 ? LIGHTWS_UTF8_INCOMPLETE : LIGHTWS_ERR_UTF8));
    if (r == LIGHTWS_ERR_UTF8)
      failed = 1;
  }
  /* Byte at a time agrees too. */
  memset(&u, 0, sizeof u);
  for (i = 0; i < size && i < 64; i++) {
    r = lightws_utf8_feed(&u, data + i, 1);
    ref = ref_utf8(data, i + 1);
    FUZZ_CHECK(r == (ref == 0 ? LIGHTWS_UTF8_VALID
                     : ref == 1 ? LIGHTWS_UTF8_INCOMPLETE : LIGHTWS_ERR_UTF8));
    if (r < 0)
      break;
  }
  return 0;
}
