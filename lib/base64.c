/* SPDX-License-Identifier: MIT */
/* Base64 with padding (RFC 4648 §4) for Sec-WebSocket-Key and -Accept (RFC 6455 §4). */
#include "internal.h"

static const char alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t lightws__base64_encode(const uint8_t *in, size_t len, char *out) {
  char *o = out;
  size_t i;
  for (i = 0; i + 3 <= len; i += 3) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = alphabet[(v >> 6) & 63];
    *o++ = alphabet[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (len - i == 2) {
    uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = alphabet[(v >> 6) & 63];
    *o++ = '=';
  }
  return (size_t)(o - out);
}

/* Value of base64 character c, or -1 (padding included). */
static int value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/*
 * Strict: the length is a multiple of 4, '=' appears only as one or two
 * final characters, and the bits the padding drops are zero (RFC 4648
 * §3.5), so every byte string has exactly one accepted encoding.
 */
ssize_t lightws__base64_decode(const char *in, size_t len, uint8_t *out,
                               size_t size) {
  size_t i, pad = 0, n;
  uint8_t *o = out;
  if (len % 4) return -1;
  if (len >= 4 && in[len - 1] == '=') pad = in[len - 2] == '=' ? 2 : 1;
  n = len / 4 * 3 - pad;
  if (n > size) return -1;
  for (i = 0; i < len; i += 4) {
    int a = value(in[i]), b = value(in[i + 1]), c, d;
    uint32_t v;
    int last = i + 4 == len;
    if (a < 0 || b < 0) return -1;
    if (last && pad == 2) {
      if (b & 15) return -1;
      *o++ = (uint8_t)((a << 2) | (b >> 4));
      break;
    }
    c = value(in[i + 2]);
    if (c < 0) return -1;
    if (last && pad == 1) {
      if (c & 3) return -1;
      *o++ = (uint8_t)((a << 2) | (b >> 4));
      *o++ = (uint8_t)(((b & 15) << 4) | (c >> 2));
      break;
    }
    d = value(in[i + 3]);
    if (d < 0) return -1;
    v = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | (uint32_t)d;
    *o++ = (uint8_t)(v >> 16);
    *o++ = (uint8_t)(v >> 8);
    *o++ = (uint8_t)v;
  }
  return (ssize_t)(o - out);
}
