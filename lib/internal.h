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

/* s->state: 0 is open; the other values are the handshake's (endpoint.c
 * explains them); 1..6 mean a handshake in progress. */
enum {
  LIGHTWS__ST_OPEN = 0,
  LIGHTWS__ST_C_SEND = 1,   /* client: sending the request */
  LIGHTWS__ST_C_RECV = 2,   /* client: reading the response */
  LIGHTWS__ST_S_READ = 3,   /* server: reading the request */
  LIGHTWS__ST_S_HAVE = 4,   /* server: request read (r_left = head length,
                               0 bad) */
  LIGHTWS__ST_S_ACCEPT = 5, /* server: sending the 101 response */
  LIGHTWS__ST_S_REJECT = 6, /* server: sending an error response */
  LIGHTWS__ST_DONE = 7,     /* server: rejected */
  LIGHTWS__ST_FAILED = 8    /* a failed handshake (or its timeout) */
};

/* CLOCK_MONOTONIC in microseconds (keepalive round trips). */
uint64_t lightws__now_us(void);

/* Waits in poll(2) until the stream's descriptor is ready for `want`
 * (LIGHTWS_WANT_*; 0: either), acting on each deadline that passes
 * meanwhile with lightws_stream_tick(). 0 when ready, the timeout error
 * that failed the stream, LIGHTWS_ERR_WOULDBLOCK for a stream over
 * lightws_io (nothing to poll), or LIGHTWS_ERR_SYSTEM. */
int lightws__stream_wait(struct lightws_stream *s, int want);

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


#endif
