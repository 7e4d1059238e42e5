/* SPDX-License-Identifier: MIT */
/* Frame head encoding and decoding (RFC 6455 §5.2). */
#include <string.h>
#include "internal.h"

/* The inline decoder (lightws.h) stores fin, rsv, opcode, masked and
 * mask[4] as one 8-byte word: they must be contiguous, in that order. */
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

/* Opcodes §5.2 defines: 0x0-0x2 and 0x8-0xA; bit n set when n is defined. */
#define DEFINED_OPCODES 0x0707u

static unsigned load_be16(const uint8_t *p) {
  return ((unsigned)p[0] << 8) | p[1];
}

size_t lightws_frame_header_size(uint64_t length, int masked) {
  size_t n = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
  return n + (masked ? 4 : 0);
}

size_t lightws_frame_encode_unchecked(const struct lightws_frame *frame,
                                      uint8_t *out) {
  return lightws__frame_encode(frame, out);
}

ssize_t lightws_frame_encode(const struct lightws_frame *frame, uint8_t *out,
                             size_t size) {
  unsigned op = frame->opcode;
  if (op > 0xF || !((DEFINED_OPCODES >> op) & 1)) return LIGHTWS_ERR_INVALID;
  if (frame->fin > 1 || frame->masked > 1 || (frame->rsv & ~0x70u))
    return LIGHTWS_ERR_INVALID;
  if (frame->length >> 63) return LIGHTWS_ERR_INVALID; /* §5.2 */
  /* §5.5: control frames are final and carry at most 125 bytes */
  if ((op & 0x8) && (!frame->fin || frame->length > LIGHTWS_CONTROL_MAX))
    return LIGHTWS_ERR_INVALID;
  if (size < lightws_frame_header_size(frame->length, frame->masked))
    return LIGHTWS_ERR_NOSPACE;
  return (ssize_t)lightws_frame_encode_unchecked(frame, out);
}

/* Checks byte 0 (§5.2): opcode, RSV bits, FIN of control frames. */
static int check_byte0(unsigned b0, unsigned flags) {
  unsigned op = b0 & 0x0F;
  /* ALLOW_RSV1..3 are 0x10, 0x20, 0x40; RSV1..3 in byte 0 are 0x40, 0x20, 0x10 */
  unsigned allowed = ((flags & LIGHTWS_DECODE_ALLOW_RSV1) << 2) |
                     (flags & LIGHTWS_DECODE_ALLOW_RSV2) |
                     ((flags & LIGHTWS_DECODE_ALLOW_RSV3) >> 2);
  if (!((DEFINED_OPCODES >> op) & 1)) return LIGHTWS_ERR_RESERVED_OPCODE;
  if (b0 & 0x70 & ~allowed) return LIGHTWS_ERR_RESERVED_BITS;
  if ((op & 0x8) && !(b0 & 0x80)) return LIGHTWS_ERR_FRAGMENTED_CONTROL; /* §5.5 */
  return 0;
}

/* Checks byte 1: a control frame's 16/64-bit length code means > 125 bytes
 * (§5.5), and the mask bit against the role (§5.1). */
static int check_byte1(unsigned b0, unsigned b1, unsigned flags) {
  if ((b0 & 0x8) && (b1 & 0x7F) >= 126) return LIGHTWS_ERR_CONTROL_TOO_LONG;
  if (b1 & 0x80) {
    if (flags & LIGHTWS_DECODE_EXPECT_UNMASKED) return LIGHTWS_ERR_MASK_UNEXPECTED;
  } else if (flags & LIGHTWS_DECODE_EXPECT_MASKED) {
    return LIGHTWS_ERR_MASK_REQUIRED;
  }
  return 0;
}

/* The head is cut short after byte 1 (len < header_len): report the length
 * errors the bytes present already show, else INCOMPLETE. */
static ssize_t decode_partial(const uint8_t *in, size_t len, unsigned lc,
                              unsigned flags) {
  int nonmin = !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL);
  if (lc == 126) {
    if (len >= 4 && nonmin && load_be16(in + 2) < 126)
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
  } else if (lc == 127 && len >= 3) {
    if (in[2] & 0x80) return LIGHTWS_ERR_LENGTH_TOP_BIT;
    /* bytes 2..7 all zero: the length fits 16 bits whatever follows */
    if (nonmin && len >= 8 &&
        (lightws__load_be64(in) & 0xFFFFFFFFFFFFull) == 0)
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
  }
  return LIGHTWS_ERR_INCOMPLETE;
}

/* Decodes byte by byte, checking each field as soon as it is present: for
 * heads cut short, and to name the error the fast path found. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static ssize_t decode_careful(struct lightws_frame *frame, const uint8_t *in,
                              size_t len, unsigned flags) {
  unsigned b0, b1, lc, masked, hlen;
  uint64_t length;
  int err;

  if (len < 2) {
    frame->header_len = 2;
    if (len == 1 && (err = check_byte0(in[0], flags)) != 0) return err;
    return LIGHTWS_ERR_INCOMPLETE;
  }
  b0 = in[0];
  b1 = in[1];
  if ((err = check_byte0(b0, flags)) != 0) return err;
  if ((err = check_byte1(b0, b1, flags)) != 0) return err;
  frame->fin = (uint8_t)(b0 >> 7);
  frame->rsv = (uint8_t)(b0 & 0x70);
  frame->opcode = (uint8_t)(b0 & 0x0F);
  masked = b1 >> 7;
  frame->masked = (uint8_t)masked;
  lc = b1 & 0x7F;
  /* 126 -> 2 extra bytes, 127 -> 8, else 0, without a branch */
  hlen = 2 + ((lc + 2) >> 7) * (2 + 6 * (lc & 1)) + 4 * masked;
  frame->header_len = (uint8_t)hlen;
  if (len < hlen) return decode_partial(in, len, lc, flags);

  if (lc < 126) {
    length = lc;
  } else if (lc == 126) {
    length = load_be16(in + 2);
    if (length < 126 && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL))
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
  } else {
    length = lightws__load_be64(in + 2);
    if (length >> 63) return LIGHTWS_ERR_LENGTH_TOP_BIT; /* §5.2 */
    if (length <= 0xFFFF && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL))
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
  }
  frame->length = length;
  if (masked)
    memcpy(frame->mask, in + hlen - 4, 4);
  else
    memset(frame->mask, 0, 4);
  return (ssize_t)hlen;
}

/* RSV bits of byte 0 that ALLOW_RSV1..3 ((flags >> 4) & 7) leave
 * rejected, plus bit 0 (a bad opcode, see byte0_class): ALLOW_RSV1 (0x10)
 * permits RSV1 (0x40), ALLOW_RSV3 (0x40) permits RSV3 (0x10). */
static const uint8_t byte0_rejected[8] = {0x71, 0x31, 0x51, 0x11,
                                          0x61, 0x21, 0x41, 0x01};

/* Byte 0 of a head, classified once: its RSV bits, bit 0 if the opcode is
 * reserved or a control frame is not final (§5.2, §5.5), bit 1 if it is a
 * control frame (so a 16/64-bit length is an error). Bit (FIN << 4 |
 * opcode) of BYTE0_OK is set for the allowed forms. */
#define BYTE0_OK 0x07070007u
#define B0(x)                                                           \
  (((x) & 0x70) | (~(BYTE0_OK >> ((((x) >> 3) & 0x10) | ((x) & 0x0F))) & 1) | \
   (((x) >> 2) & 2))
#define B0_4(x) B0(x), B0((x) + 1), B0((x) + 2), B0((x) + 3)
#define B0_16(x) B0_4(x), B0_4((x) + 4), B0_4((x) + 8), B0_4((x) + 12)
#define B0_64(x) B0_16(x), B0_16((x) + 16), B0_16((x) + 32), B0_16((x) + 48)
static const uint8_t byte0_class[256] = {B0_64(0), B0_64(64), B0_64(128),
                                         B0_64(192)};

/*
 * The full decoder, for the heads the inline lightws_frame_decode()
 * (lightws.h) leaves to it: other shapes, errors, heads cut short; and for
 * FFI callers, which get every head here.
 * With LIGHTWS_FRAME_HEADER_MAX bytes present every field can be loaded
 * whatever the head's shape, so the common case reads all candidates and
 * selects instead of branching on the length form (heads of mixed shapes
 * then cost no branch mispredictions). The checks fold into one rarely
 * taken branch; a bad head goes to decode_careful() for its exact error.
 */
ssize_t lightws_frame_decode_full(struct lightws_frame *frame,
                                  const uint8_t *in, size_t len,
                                  unsigned flags) {
  unsigned b0, b1, lc, masked, is_ext, is127, ext, hlen, bad;
  uint64_t w, length, min;
  uint32_t key;

  if (len < LIGHTWS_FRAME_HEADER_MAX)
    return decode_careful(frame, in, len, flags);
  b0 = in[0];
  b1 = in[1];
  masked = b1 >> 7;
  lc = b1 & 0x7F;
  is_ext = (lc + 2) >> 7;  /* 126 or 127: a 16- or 64-bit length follows */
  is127 = lc & is_ext & 1;
  w = lightws__load_be64(in + 2);
  length = is_ext ? w >> (48 - 48 * is127) : lc;
  /* §5.2: shortest form; 126 needs >= 126, 127 needs >= 65536 */
  min = (flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL) ? 0 : 126 + is127 * (65536 - 126);
  bad = (byte0_class[b0] & byte0_rejected[(flags >> 4) & 7]) |
        ((byte0_class[b0] >> 1) & is_ext) | /* §5.5: control over 125 bytes */
        (flags & (masked + 1)) | /* §5.1: EXPECT_MASKED 1, EXPECT_UNMASKED 2 */
        (unsigned)(length >> 63) | (is_ext & (length < min));
  /* a head is at most 14 bytes: the careful path needs no more to name the
   * error, and not keeping `len` alive frees a register */
  if (bad) return decode_careful(frame, in, LIGHTWS_FRAME_HEADER_MAX, flags);

  ext = is_ext * (2 + 6 * is127);
  hlen = 2 + ext + 4 * masked;
  memcpy(&key, in + 2 + ext, 4);
  key &= 0 - (uint32_t)masked;
  frame->length = length;
  frame->fin = (uint8_t)(b0 >> 7);
  frame->rsv = (uint8_t)(b0 & 0x70);
  frame->opcode = (uint8_t)(b0 & 0x0F);
  frame->masked = (uint8_t)masked;
  memcpy(frame->mask, &key, 4);
  frame->header_len = (uint8_t)hlen;
  return (ssize_t)hlen;
}
