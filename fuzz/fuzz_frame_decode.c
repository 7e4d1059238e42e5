/* SPDX-License-Identifier: MIT */
/* libFuzzer target: lightws_frame_decode() under every flag combination,
 * checked against prefixes of the input and an encode round trip (§5.2). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

static const unsigned flag_bits[] = {
  LIGHTWS_DECODE_EXPECT_MASKED, LIGHTWS_DECODE_EXPECT_UNMASKED,
  LIGHTWS_DECODE_ALLOW_RSV1, LIGHTWS_DECODE_ALLOW_RSV2,
  LIGHTWS_DECODE_ALLOW_RSV3, LIGHTWS_DECODE_ALLOW_NONMINIMAL
};

static int is_protocol_error(ssize_t r)
{
  return r <= -20 && r >= -59 && lightws_close_code((int)r) == 1002;
}

static void check_one(const uint8_t *in, size_t len, unsigned flags)
{
  struct lightws_frame f, g;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  ssize_t r, r2, enc;
  size_t k;

  memset(&f, 0xA5, sizeof f);
  r = lightws_frame_decode(&f, in, len, flags);
  /* the inline decoder and the out-of-line one agree on everything */
  memset(&g, 0xA5, sizeof g);
  r2 = lightws_frame_decode_full(&g, in, len, flags);
  FUZZ_CHECK(r == r2);
  if (r >= 0 || r == LIGHTWS_ERR_INCOMPLETE) FUZZ_CHECK(f.header_len == g.header_len);
  if (r >= 0)
    FUZZ_CHECK(f.length == g.length && f.fin == g.fin && f.rsv == g.rsv &&
               f.opcode == g.opcode && f.masked == g.masked &&
               memcmp(f.mask, g.mask, 4) == 0);
  if (r == LIGHTWS_ERR_INCOMPLETE) {
    /* header_len says how many bytes are needed so far: more than given. */
    FUZZ_CHECK(f.header_len > len && f.header_len <= LIGHTWS_FRAME_HEADER_MAX);
  } else if (r < 0) {
    FUZZ_CHECK(is_protocol_error(r));
  } else {
    FUZZ_CHECK(r >= 2 && r <= LIGHTWS_FRAME_HEADER_MAX && (size_t)r <= len);
    FUZZ_CHECK((size_t)r == f.header_len);
    FUZZ_CHECK(f.fin == (in[0] >> 7));
    FUZZ_CHECK(f.rsv == (in[0] & 0x70));
    FUZZ_CHECK(f.opcode == (in[0] & 0x0F));
    FUZZ_CHECK(f.masked == (in[1] >> 7));
    FUZZ_CHECK(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
    if (f.opcode >= 8)
      FUZZ_CHECK(f.fin == 1 && f.length <= 125);
    FUZZ_CHECK((f.length >> 63) == 0);
    if (f.rsv & 0x40) FUZZ_CHECK(flags & LIGHTWS_DECODE_ALLOW_RSV1);
    if (f.rsv & 0x20) FUZZ_CHECK(flags & LIGHTWS_DECODE_ALLOW_RSV2);
    if (f.rsv & 0x10) FUZZ_CHECK(flags & LIGHTWS_DECODE_ALLOW_RSV3);
    if (flags & LIGHTWS_DECODE_EXPECT_MASKED) FUZZ_CHECK(f.masked);
    if (flags & LIGHTWS_DECODE_EXPECT_UNMASKED) FUZZ_CHECK(!f.masked);
    if (f.masked)
      FUZZ_CHECK(memcmp(f.mask, in + r - 4, 4) == 0);
    /* Round trip: the shortest form re-encodes byte for byte. */
    k = lightws_frame_header_size(f.length, f.masked);
    enc = (ssize_t)lightws_frame_encode_unchecked(&f, out);
    FUZZ_CHECK((size_t)enc == k);
    FUZZ_CHECK(lightws_frame_encode(&f, out, sizeof out) == enc);
    FUZZ_CHECK(lightws_frame_encode(&f, out, k - 1) == LIGHTWS_ERR_NOSPACE);
    if (!(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL)) {
      FUZZ_CHECK((size_t)r == k);
      FUZZ_CHECK(memcmp(out, in, k) == 0);
    } else {
      FUZZ_CHECK((size_t)r >= k);
    }
    r2 = lightws_frame_decode(&g, out, (size_t)enc, flags & ~LIGHTWS_DECODE_ALLOW_NONMINIMAL);
    FUZZ_CHECK(r2 == enc);
    FUZZ_CHECK(g.length == f.length && g.fin == f.fin && g.rsv == f.rsv &&
               g.opcode == f.opcode && g.masked == f.masked);
    if (f.masked)
      FUZZ_CHECK(memcmp(g.mask, f.mask, 4) == 0);
  }
  /* Every prefix: an accepted head is INCOMPLETE before its end; an error
   * shown by a prefix stays an error with more bytes. */
  for (k = 0; k < len && k < LIGHTWS_FRAME_HEADER_MAX + 1; k++) {
    ssize_t p = lightws_frame_decode(&g, in, k, flags);
    if (r >= 0 && k < (size_t)r) {
      FUZZ_CHECK(p == LIGHTWS_ERR_INCOMPLETE);
      FUZZ_CHECK(g.header_len > k && g.header_len <= (size_t)r);
    } else if (r >= 0) {
      FUZZ_CHECK(p == r);
    }
    if (p < 0 && p != LIGHTWS_ERR_INCOMPLETE)
      FUZZ_CHECK(r < 0 && r != LIGHTWS_ERR_INCOMPLETE);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  unsigned combo;
  if (size < 1)
    return 0;
  /* Every combination of the six flags (EXPECT_MASKED|EXPECT_UNMASKED
   * together included: nothing can pass both). */
  for (combo = 0; combo < 64; combo++) {
    unsigned flags = 0, i;
    for (i = 0; i < 6; i++)
      if (combo & (1u << i))
        flags |= flag_bits[i];
    check_one(data, size, flags);
  }
  return 0;
}
