/* SPDX-License-Identifier: MIT */
/* Helpers shared by lib/ files; not part of the public API. */
#ifndef LIGHTWS_INTERNAL_H
#define LIGHTWS_INTERNAL_H

#include <stddef.h>
#include <string.h>
#include "lightws.h"

/* SHA-1 (RFC 3174), only for Sec-WebSocket-Accept. */
struct lightws__sha1 {
  uint32_t h[5];
  uint64_t len;      /* bytes hashed so far */
  uint8_t block[64];
  size_t used;       /* bytes in block */
};
void lightws__sha1_init(struct lightws__sha1 *c);
void lightws__sha1_update(struct lightws__sha1 *c, const void *data, size_t len);
void lightws__sha1_final(struct lightws__sha1 *c, uint8_t digest[20]);

/* Base64 (RFC 4648 §4, with padding). encode writes 4*ceil(len/3) chars
 * and no NUL; returns the count. decode returns bytes written, or -1 for
 * input that is not canonical padded base64 or does not fit `size`. */
size_t lightws__base64_encode(const uint8_t *in, size_t len, char *out);
ssize_t lightws__base64_decode(const char *in, size_t len, uint8_t *out,
                               size_t size);

/* Fills buf with `len` bytes from the OS (getrandom, arc4random or
 * /dev/urandom). Returns 0 or LIGHTWS_ERR_SYSTEM. */
int lightws__random(void *buf, size_t len);

/* ASCII case-insensitive comparison of a[0..n) and b[0..n). */
int lightws__casecmp(const char *a, const char *b, size_t n);

/* The stream's transport (stream.c), shared with endpoint.c: like read(2)
 * and writev(2) with EINTR retried; return bytes, 0 at EOF (read), or
 * LIGHTWS_ERR_WOULDBLOCK (setting the want bits) / LIGHTWS_ERR_SYSTEM. */
ssize_t lightws__stream_io_read(struct lightws_stream *s, void *buf,
                                size_t len);
ssize_t lightws__stream_io_writev(struct lightws_stream *s,
                                  const struct iovec *iov, int iovcnt);

/* ---- frame head decoding (frame.c) ----------------------------------- */

static inline uint64_t lightws__load_be64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return __builtin_bswap64(v);
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return v;
#else
  return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) |
         ((uint64_t)p[2] << 40) | ((uint64_t)p[3] << 32) |
         ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
         ((uint64_t)p[6] << 8) | (uint64_t)p[7];
#endif
}

/* lightws_frame_encode_unchecked(), inline for the stream's heads. */
static inline size_t lightws__frame_encode(const struct lightws_frame *frame,
                                           uint8_t *out) {
  uint64_t length = frame->length;
  uint8_t mbit = frame->masked ? 0x80 : 0;
  size_t n;
  out[0] = (uint8_t)((frame->fin ? 0x80 : 0) | (frame->rsv & 0x70) |
                     (frame->opcode & 0x0F));
  /* §5.2: "the minimal number of bytes MUST be used to encode the length" */
  if (length < 126) {
    out[1] = (uint8_t)(mbit | length);
    n = 2;
  } else if (length <= 0xFFFF) {
    out[1] = (uint8_t)(mbit | 126);
    out[2] = (uint8_t)(length >> 8);
    out[3] = (uint8_t)length;
    n = 4;
  } else {
    int i;
    out[1] = (uint8_t)(mbit | 127);
    for (i = 9; i >= 2; i--) {
      out[i] = (uint8_t)length;
      length >>= 8;
    }
    n = 10;
  }
  if (mbit) {
    memcpy(out + n, frame->mask, 4);
    n += 4;
  }
  return n;
}

/* The full decoder behind lightws_frame_decode(): every shape, exact
 * errors. Not inlined, so the fast path below needs no saved registers. */
ssize_t lightws__frame_decode_slow(struct lightws_frame *frame,
                                   const uint8_t *in, size_t len,
                                   unsigned flags);

/* fin, rsv, opcode, masked and mask[4] are 8 contiguous bytes of struct
 * lightws_frame: the fast path stores them with one 8-byte copy. */
typedef char lightws__frame_layout_check
    [offsetof(struct lightws_frame, rsv) ==
             offsetof(struct lightws_frame, fin) + 1 &&
     offsetof(struct lightws_frame, opcode) ==
             offsetof(struct lightws_frame, fin) + 2 &&
     offsetof(struct lightws_frame, masked) ==
             offsetof(struct lightws_frame, fin) + 3 &&
     offsetof(struct lightws_frame, mask) ==
             offsetof(struct lightws_frame, fin) + 4 &&
     sizeof(((struct lightws_frame *)0)->mask) == 4
         ? 1 : -1];

/*
 * lightws_frame_decode() (the exported function is this plus the call; the
 * stream uses it inline). The common heads take a few predictable branches
 * (a stream's frame shapes repeat): no RSV bit (§5.2), a data opcode, or a
 * final control opcode with a 7-bit length (§5.5), the mask bit the role
 * expects (§5.1), a length in its shortest form (§5.2), the whole head in
 * `in`. Anything else, valid or not, goes to the full decoder, which names
 * the error; so results are the same as its own on every input.
 */
static inline ssize_t lightws__frame_decode_fast(struct lightws_frame *frame,
                                                 const uint8_t *in,
                                                 size_t len, unsigned flags) {
  unsigned b0, b1, masked, lc;
  size_t off, hlen;
  uint64_t length, v;
  uint32_t key;
  if (len < 2) goto slow;
  b0 = in[0];
  b1 = in[1];
  masked = b1 >> 7;
  lc = b1 & 0x7F;
  /* opcode 0-2 (FIN either way), or 8-A with FIN and <= 125 bytes; the
   * mask bit: EXPECT_MASKED is 1, EXPECT_UNMASKED 2 */
  if (((b0 & 0x7F) > 2 && (b0 - 0x88u > 2 || lc >= 126)) |
      ((flags & (masked + 1)) != 0))
    goto slow;
  /* the 8 bytes fin, rsv (0 here), opcode, masked, mask[4], key aside */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  v = (b0 >> 7) | ((b0 & 0x0F) << 16) | (masked << 24);
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = ((uint64_t)(b0 >> 7) << 56) | ((uint64_t)(b0 & 0x0F) << 40) |
      ((uint64_t)masked << 32);
#else
  {
    uint8_t b[8] = {0};
    b[0] = (uint8_t)(b0 >> 7);
    b[2] = (uint8_t)(b0 & 0x0F);
    b[3] = (uint8_t)masked;
    memcpy(&v, b, 8);
  }
#endif
  if (lc < 126) {
    length = lc;
    off = 2;
  } else if (lc == 126) {
    if (len < 4) goto slow;
    length = ((unsigned)in[2] << 8) | in[3];
    if (length < 126 && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL)) goto slow;
    off = 4;
  } else {
    if (len < 10) goto slow;
    length = lightws__load_be64(in + 2);
    if ((length >> 63) ||
        (length <= 0xFFFF && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL)))
      goto slow;
    off = 10;
  }
  hlen = off + 4 * masked;
  if (len < hlen) goto slow;
  if (masked) {
    memcpy(&key, in + off, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v |= (uint64_t)key << 32;
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v |= key;
#else
    {
      uint8_t b[8];
      memcpy(b, &v, 8);
      memcpy(b + 4, &key, 4);
      memcpy(&v, b, 8);
    }
#endif
  }
  memcpy((unsigned char *)frame + offsetof(struct lightws_frame, fin), &v, 8);
  frame->length = length;
  frame->header_len = (uint8_t)hlen;
  return (ssize_t)hlen;
slow:
  return lightws__frame_decode_slow(frame, in, len, flags);
}

#endif
