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

/* Waits in poll(2) until the stream's descriptor (over lightws_io: the
 * one of its wait_fd hook) is ready for `want` (LIGHTWS_WANT_*; 0:
 * either), acting on each deadline that passes meanwhile with
 * lightws_stream_tick(). 0 when ready, the timeout error that failed the
 * stream, LIGHTWS_ERR_WOULDBLOCK for a stream over lightws_io without a
 * blocking descriptor to wait on (wait_fd hook, timeouts set while it was
 * blocking, still blocking), or LIGHTWS_ERR_SYSTEM. */
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

/* ---- permessage-deflate (deflate.c, stream.c) ------------------------- */

/* Built with zlib when the build says so (the Makefile passes
 * -DLIGHTWS_HAVE_ZLIB=1 unless ZLIB=0); other builds that compile the
 * lib/ sources without the macro get no compression and need no -lz. */
#if !defined(LIGHTWS_HAVE_ZLIB)
#define LIGHTWS_HAVE_ZLIB 0
#endif

#if LIGHTWS_HAVE_ZLIB
#include <zlib.h>

/* The private state at the start of the caller's block: both z_streams,
 * what was agreed, and the per-message state of each direction. The two
 * work buffers follow it, then the arena that zlib's zalloc serves (zfree
 * does nothing; deflateReset/inflateReset reuse what it got). stream.c
 * calls zlib only through the pointers below, set by
 * lightws_stream_set_deflate(): a program that never turns compression on
 * links statically without -lz. */
struct lightws__pmd {
  z_stream zd;                 /* our compressor (raw deflate) */
  z_stream zi;                 /* the peer's messages (raw inflate) */
  int (*deflate)(z_streamp, int);
  int (*inflate)(z_streamp, int);
  int (*deflate_reset)(z_streamp);
  int (*inflate_reset)(z_streamp);
  uint8_t *wbuf;               /* send work buffer: compressed output */
  uint8_t *ibuf;               /* recv work buffer: inflated output */
  uint8_t *arena;              /* zalloc serves [arena + used, arena + cap) */
  size_t used, cap;
  uint32_t work_size;
  uint32_t threshold;          /* shorter one-call messages go plain */
  uint8_t our_bits, peer_bits; /* windows in use (ours: 8 = Huffman only) */
  uint8_t our_nct, peer_nct;   /* no context takeover, per direction */
  /* read side: the message being read is compressed */
  uint8_t r_comp;
  uint8_t r_tail;              /* bytes of 00 00 ff ff fed at its end */
  uint8_t r_drained;           /* the last inflate call left output room:
                                  nothing is held back in zlib */
  uint8_t r_reset;             /* a deflate stream ended (BFINAL) inside
                                  the message: reset at its end */
  uint32_t r_unmasked;         /* payload bytes at rpos already unmasked */
  uint64_t r_out;              /* inflated bytes of the message so far */
  /* write side: a compressed message is open */
  uint8_t w_comp;
  uint8_t w_first;             /* its next frame is the first (RSV1) */
  uint8_t w_fin;               /* all its input is in: flushing it */
  uint8_t w_frame;             /* a frame of wbuf[0..w_flen) is going out
                                  (head in s->whead) */
  uint8_t w_last;              /* ... and it ends the message */
  uint32_t w_fill;             /* compressed bytes in wbuf */
  uint32_t w_flen, w_sent;     /* payload of that frame, bytes written */
};
#endif

#endif
