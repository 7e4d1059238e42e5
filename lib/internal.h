/* SPDX-License-Identifier: MIT */
/* Helpers shared by lib/ files; not part of the public API. */
#ifndef LIGHTWS_INTERNAL_H
#define LIGHTWS_INTERNAL_H

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

#endif
