/* SPDX-License-Identifier: MIT */
/*
 * lightws: a websocket (RFC 6455) library for stream transmission.
 *
 * The library never allocates: the caller owns every struct and buffer.
 * Payload is read into the caller's buffer and written from it; a frame
 * goes out as one writev (head + payload). Layers, in the order of this
 * header: errors, constants, frame codec, masking, UTF-8, handshake codec,
 * IO, stream, endpoint (the opening handshake over a stream).
 *
 * Return values: negative numbers are LIGHTWS_ERR_* codes, zero means OK,
 * and non-negative values are counts (bytes used or written).
 */
#ifndef LIGHTWS_H
#define LIGHTWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>     /* memcpy in the inline decoder */
#include <sys/types.h>  /* ssize_t */
#include <sys/uio.h>    /* struct iovec */

#ifdef __cplusplus
extern "C" {
#endif

/* Static inline functions in this header (the frame head decoder): C99 and
 * C++ have `inline`; GNU C89 spells it __inline__. */
#if defined(__cplusplus) || \
    (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L)
#define LIGHTWS_INLINE static inline
#elif defined(__GNUC__)
#define LIGHTWS_INLINE static __inline__
#else
#define LIGHTWS_INLINE static
#endif

#define LIGHTWS_VERSION_MAJOR 0
#define LIGHTWS_VERSION_MINOR 1
#define LIGHTWS_VERSION_PATCH 0
#define LIGHTWS_VERSION_STRING "0.1.0"

/* Returns LIGHTWS_VERSION_STRING of the library actually linked. */
const char *lightws_version(void);

/* ------------------------------------------------------------------------
 * Errors
 *
 * One table: X(NAME, value, close code, HTTP status, message).
 *  - close code: what an endpoint sends when the peer caused this error
 *    (RFC 6455 §7.4.1), 0 when the error is not the peer's fault;
 *  - HTTP status: what a server answers when the opening handshake fails
 *    this way (§4.2.1: 400, or 426 with Sec-WebSocket-Version), else 0.
 *
 * Groups: -1..-19 are not protocol errors (need more input, output too
 * small, misuse, would block, closed, system; -10..-13 are the timeouts of
 * lightws_stream_tick(), each with the close code it sends, or 408 for a
 * server whose client was too slow); -20..-59 are frame and message errors
 * of the peer; -60..-99 are handshake errors.
 * ------------------------------------------------------------------------ */
#define LIGHTWS_ERROR_MAP(X)                                                  \
  X(INCOMPLETE,        -1,    0,   0, "need more input")                     \
  X(NOSPACE,           -2,    0,   0, "output buffer too small")             \
  X(INVALID,           -3,    0,   0, "invalid argument or call order")      \
  X(WOULDBLOCK,        -4,    0,   0, "operation would block")               \
  X(CLOSED,            -5,    0,   0, "connection closed by close handshake") \
  X(EOF,               -6, 1006,   0, "connection closed without close frame") \
  X(SYSTEM,            -7,    0,   0, "system error (see errno)")            \
  X(BUSY,              -8,    0,   0, "a frame is partly written; finish it first") \
  X(UNSUPPORTED,       -9,    0,   0, "not available in this build (no zlib)") \
  X(HANDSHAKE_TIMEOUT, -10,   0, 408, "opening handshake not complete within its timeout") \
  X(IDLE_TIMEOUT,      -11, 1001,  0, "nothing received within the idle timeout") \
  X(PING_TIMEOUT,      -12, 1011,  0, "keepalive ping not answered within its timeout") \
  X(CLOSE_TIMEOUT,     -13,   0,   0, "close handshake not complete within its timeout") \
  X(BUFFER_TOO_SMALL,  -14,   0, 431, "receive buffer too small for the HTTP head") \
  X(RESERVED_OPCODE,   -20, 1002,  0, "reserved opcode")                     \
  X(RESERVED_BITS,     -21, 1002,  0, "RSV bit set without a negotiated extension") \
  X(FRAGMENTED_CONTROL,-22, 1002,  0, "fragmented control frame")            \
  X(CONTROL_TOO_LONG,  -23, 1002,  0, "control frame payload over 125 bytes") \
  X(LENGTH_TOP_BIT,    -24, 1002,  0, "64-bit payload length with the top bit set") \
  X(NONMINIMAL_LENGTH, -25, 1002,  0, "payload length not in its shortest form") \
  X(MASK_REQUIRED,     -26, 1002,  0, "client frame not masked")             \
  X(MASK_UNEXPECTED,   -27, 1002,  0, "server frame masked")                 \
  X(UNEXPECTED_CONTINUATION, -28, 1002, 0, "continuation frame outside a message") \
  X(EXPECTED_CONTINUATION,   -29, 1002, 0, "new data frame inside a fragmented message") \
  X(CLOSE_PAYLOAD,     -30, 1002,  0, "close frame with a 1-byte payload")   \
  X(CLOSE_CODE,        -31, 1002,  0, "invalid close code")                  \
  X(DATA_AFTER_CLOSE,  -32, 1002,  0, "frame after close frame")             \
  X(BAD_RSV1,          -33, 1002,  0, "RSV1 on a continuation or control frame") \
  X(UTF8,              -40, 1007,  0, "invalid UTF-8 in text")               \
  X(BAD_DEFLATE,       -41, 1007,  0, "compressed payload is not valid deflate data") \
  X(FRAME_TOO_BIG,     -50, 1009,  0, "frame payload over the limit")        \
  X(MESSAGE_TOO_BIG,   -51, 1009,  0, "message over the limit")              \
  X(HTTP_MALFORMED,    -60,    0, 400, "malformed HTTP head")                \
  X(HTTP_METHOD,       -61,    0, 405, "method is not GET")                  \
  X(HTTP_VERSION,      -62,    0, 400, "HTTP version below 1.1")             \
  X(HEAD_TOO_LARGE,    -63,    0, 431, "HTTP head over the size limit")      \
  X(TOO_MANY_HEADERS,  -64,    0, 431, "more headers than the caller allowed") \
  X(NO_HOST,           -65,    0, 400, "missing Host header")                \
  X(NO_UPGRADE,        -66,    0, 400, "Upgrade header lacks websocket")     \
  X(NO_CONNECTION,     -67,    0, 400, "Connection header lacks upgrade")    \
  X(BAD_KEY,           -68,    0, 400, "Sec-WebSocket-Key missing or not 16 bytes of base64") \
  X(BAD_VERSION,       -69,    0, 426, "Sec-WebSocket-Version is not 13")    \
  X(BAD_STATUS,        -70,    0,   0, "response status is not 101")         \
  X(BAD_ACCEPT,        -71,    0,   0, "Sec-WebSocket-Accept does not match the key") \
  X(BAD_PROTOCOL,      -72,    0,   0, "server chose a subprotocol not offered") \
  X(BAD_EXTENSION,     -73,    0,   0, "server chose an extension not offered") \
  X(HEADER_INJECTION,  -74,    0,   0, "CR, LF or NUL in a value to encode") \
  X(BAD_EXTENSION_PARAMS, -75, 0,  0, "server's permessage-deflate parameters are invalid or not acceptable") \
  X(EXTENSION_DECLINED, -76, 1010, 0, "server declined an extension the client requires")

enum lightws_error {
  LIGHTWS_OK = 0,
#define LIGHTWS__ERR_ENUM(name, value, close, status, msg) \
  LIGHTWS_ERR_##name = (value),
  LIGHTWS_ERROR_MAP(LIGHTWS__ERR_ENUM)
#undef LIGHTWS__ERR_ENUM
  LIGHTWS__ERR_MIN = -100
};

/* Message for `err` ("success" for 0, "unknown error" if not in the table).
 * Static storage; never NULL. */
const char *lightws_strerror(int err);

/* Name of `err` without prefix ("UTF8", "OK"); "UNKNOWN" if not in the
 * table. Static storage; never NULL. */
const char *lightws_errname(int err);

/* Close code to send when the peer caused `err` (1002, 1007, 1009; 1006
 * for EOF, which is never sent on the wire); 0 if `err` is not a peer
 * protocol error. */
int lightws_close_code(int err);

/* HTTP status a server answers with when parsing the upgrade request
 * failed with `err` (400, 405, 426, 431); 0 if none applies. */
int lightws_http_status(int err);

/* ------------------------------------------------------------------------
 * Constants (values are the RFC's numbers)
 * ------------------------------------------------------------------------ */
enum lightws_opcode {
  LIGHTWS_OPCODE_CONTINUATION = 0x0,
  LIGHTWS_OPCODE_TEXT = 0x1,
  LIGHTWS_OPCODE_BINARY = 0x2,
  LIGHTWS_OPCODE_CLOSE = 0x8,
  LIGHTWS_OPCODE_PING = 0x9,
  LIGHTWS_OPCODE_PONG = 0xA
};

/* §7.4.1 defined status codes. */
enum lightws_close_code {
  LIGHTWS_CLOSE_NORMAL = 1000,
  LIGHTWS_CLOSE_GOING_AWAY = 1001,
  LIGHTWS_CLOSE_PROTOCOL_ERROR = 1002,
  LIGHTWS_CLOSE_UNSUPPORTED_DATA = 1003,
  LIGHTWS_CLOSE_NO_STATUS = 1005,   /* never on the wire */
  LIGHTWS_CLOSE_ABNORMAL = 1006,    /* never on the wire */
  LIGHTWS_CLOSE_INVALID_DATA = 1007,
  LIGHTWS_CLOSE_POLICY_VIOLATION = 1008,
  LIGHTWS_CLOSE_MESSAGE_TOO_BIG = 1009,
  LIGHTWS_CLOSE_MANDATORY_EXTENSION = 1010,
  LIGHTWS_CLOSE_INTERNAL_ERROR = 1011,
  LIGHTWS_CLOSE_TLS_HANDSHAKE = 1015 /* never on the wire */
};

/* 1 if `code` may appear in a close frame on the wire (§7.4.1, §7.4.2):
 * 1000-1003, 1007-1011 (and 1012-1014, registered by IANA), 3000-4999. */
int lightws_close_code_valid(unsigned code);

#define LIGHTWS_FRAME_HEADER_MAX 14   /* 2 + 8 (length) + 4 (mask) */
#define LIGHTWS_CONTROL_MAX 125       /* §5.5 */

/* ------------------------------------------------------------------------
 * Frame head codec (RFC 6455 §5.2)
 * ------------------------------------------------------------------------ */

/* A decoded or to-be-encoded frame head. Plain data; no pointers. */
struct lightws_frame {
  uint64_t length;   /* payload length */
  uint8_t fin;       /* 1 if final fragment */
  uint8_t rsv;       /* RSV1..3 as in byte 0: 0x40, 0x20, 0x10 */
  uint8_t opcode;    /* enum lightws_opcode */
  uint8_t masked;    /* 1 if the mask bit is set */
  uint8_t mask[4];   /* masking key when masked; decode zeroes it otherwise */
  uint8_t header_len;/* decode: size of the head in bytes (2..14); on
                        LIGHTWS_ERR_INCOMPLETE the size needed so far, so
                        header_len - len bytes are missing */
};

/* Decoder flags. Without EXPECT_* the mask bit is not checked. */
#define LIGHTWS_DECODE_EXPECT_MASKED   0x01u /* server: reject unmasked (§5.1) */
#define LIGHTWS_DECODE_EXPECT_UNMASKED 0x02u /* client: reject masked (§5.1) */
#define LIGHTWS_DECODE_ALLOW_RSV1      0x10u /* an extension uses RSV1 */
#define LIGHTWS_DECODE_ALLOW_RSV2      0x20u
#define LIGHTWS_DECODE_ALLOW_RSV3      0x40u
#define LIGHTWS_DECODE_ALLOW_NONMINIMAL 0x80u /* accept a 16/64-bit length
                                                 that fits a shorter form */

/*
 * Size in bytes of a head for a payload of `length` bytes, with a mask key
 * if `masked`: 2, 4 or 10, plus 4 when masked.
 */
size_t lightws_frame_header_size(uint64_t length, int masked);

/*
 * Encodes `frame` into `out`, which must have room for
 * lightws_frame_header_size() bytes (LIGHTWS_FRAME_HEADER_MAX always
 * suffices). Always uses the shortest length form (§5.2). Does not check
 * the frame: any opcode and length are written as given.
 * Returns the number of bytes written.
 */
size_t lightws_frame_encode_unchecked(const struct lightws_frame *frame,
                                      uint8_t *out);

/*
 * Like lightws_frame_encode_unchecked(), but checks `frame` and `size`.
 * Returns bytes written, LIGHTWS_ERR_NOSPACE if `size` is too small, or
 * LIGHTWS_ERR_INVALID for a frame the RFC forbids sending: reserved or
 * out-of-range opcode, a control frame not final or over 125 bytes, a
 * length with the top bit set, fin or masked not 0/1, rsv bits outside 0x70.
 */
ssize_t lightws_frame_encode(const struct lightws_frame *frame, uint8_t *out,
                             size_t size);

/*
 * The frame head decoder, out of line: the contract of lightws_frame_decode()
 * below, same results on every input. C callers use lightws_frame_decode();
 * this one is for foreign-function interfaces that need a symbol (ctypes,
 * LuaJIT ffi, cffi ABI mode) and is where the inline decoder sends every
 * head it does not decode itself.
 */
ssize_t lightws_frame_decode_full(struct lightws_frame *frame,
                                  const uint8_t *in, size_t len,
                                  unsigned flags);

/* Part of the inline decoder below, not an API: fills `frame` for a head
 * of `hlen` bytes it has checked and returns hlen. Each length form calls
 * it on its own, so no path jumps to a shared tail. */
LIGHTWS_INLINE ssize_t lightws__frame_fill(struct lightws_frame *frame,
                                           const uint8_t *in, unsigned b0,
                                           unsigned masked, uint64_t length,
                                           unsigned hlen) {
  frame->length = length;
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ || \
                                __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
  {
    /* fin, rsv (0), opcode, masked and mask[4] are 8 contiguous bytes
     * (frame.c checks the layout): one store */
    uint32_t key = 0;
    uint64_t v;
    if (masked) memcpy(&key, in + hlen - 4, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = (uint64_t)(b0 >> 7) | (uint64_t)(b0 & 0x0F) << 16 |
        (uint64_t)masked << 24 | (uint64_t)key << 32;
#else
    v = (uint64_t)(b0 >> 7) << 56 | (uint64_t)(b0 & 0x0F) << 40 |
        (uint64_t)masked << 32 | key;
#endif
    memcpy((unsigned char *)frame + offsetof(struct lightws_frame, fin), &v, 8);
  }
#else
  frame->fin = (uint8_t)(b0 >> 7);
  frame->rsv = 0;
  frame->opcode = (uint8_t)(b0 & 0x0F);
  frame->masked = (uint8_t)masked;
  if (masked)
    memcpy(frame->mask, in + hlen - 4, 4);
  else
    memset(frame->mask, 0, 4);
#endif
  frame->header_len = (uint8_t)hlen;
  return (ssize_t)hlen;
}

/*
 * Decodes the frame head at the start of `in` (any prefix of a frame is
 * fine). Fills `*frame` and returns the head size. Never reads past `len`
 * and never touches the payload.
 *
 * Returns LIGHTWS_ERR_INCOMPLETE if `in` ends inside the head
 * (frame->header_len then tells how many bytes are needed, as far as known),
 * or a named protocol error: RESERVED_OPCODE (3-7, 0xB-0xF), RESERVED_BITS
 * (RSV bit not allowed by `flags`), FRAGMENTED_CONTROL, CONTROL_TOO_LONG,
 * LENGTH_TOP_BIT, NONMINIMAL_LENGTH (unless ALLOW_NONMINIMAL: §5.2 says
 * "the minimal number of bytes MUST be used"), MASK_REQUIRED or
 * MASK_UNEXPECTED (only with an EXPECT_* flag). Errors are reported as soon
 * as the bytes that show them are present.
 *
 * Inline, because a call costs about as much as the decoding itself: the
 * heads a connection sends over and over (no RSV bit, a data opcode or a
 * final control frame of <= 125 bytes, the mask bit the role expects,
 * the shortest length form, the whole head in `in`) decode here in a few
 * predictable branches; anything else, valid or not, goes to
 * lightws_frame_decode_full(), which names the error. It depends only on
 * the wire format (§5.2) and struct lightws_frame, both fixed.
 */
LIGHTWS_INLINE ssize_t lightws_frame_decode(struct lightws_frame *frame,
                                            const uint8_t *in, size_t len,
                                            unsigned flags) {
  unsigned b0, b1, masked, lc, off;
  uint64_t length;
  if (len < 2) goto full;
  b0 = in[0];
  b1 = in[1];
  masked = b1 >> 7;
  lc = b1 & 0x7F;
  /* opcode 0-2 (FIN either way), or 8-A with FIN and <= 125 bytes (§5.5);
   * the mask bit: EXPECT_MASKED is 1, EXPECT_UNMASKED 2 (§5.1) */
  if ((b0 & 0x7F) > 2 && (b0 - 0x88u > 2 || lc >= 126)) goto full;
  if (flags & (masked + 1)) goto full;
  /* one length check per form; off is the head size */
  if (lc < 126) {
    off = 2 + 4 * masked;
    if (len < off) goto full;
    return lightws__frame_fill(frame, in, b0, masked, lc, off);
  }
  if (lc == 126) {
    off = 4 + 4 * masked;
    if (len < off) goto full;
    length = ((unsigned)in[2] << 8) | in[3];
    if (length < 126 && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL)) goto full;
    return lightws__frame_fill(frame, in, b0, masked, length, off);
  }
  off = 10 + 4 * masked;
  if (len < off) goto full;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&length, in + 2, 8); /* network byte order (§5.2) */
  length = __builtin_bswap64(length);
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  memcpy(&length, in + 2, 8);
#else
  length = ((uint64_t)in[2] << 56) | ((uint64_t)in[3] << 48) |
           ((uint64_t)in[4] << 40) | ((uint64_t)in[5] << 32) |
           ((uint64_t)in[6] << 24) | ((uint64_t)in[7] << 16) |
           ((uint64_t)in[8] << 8) | (uint64_t)in[9];
#endif
  if ((length >> 63) ||
      (length <= 0xFFFF && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL)))
    goto full;
  return lightws__frame_fill(frame, in, b0, masked, length, off);
full:
  return lightws_frame_decode_full(frame, in, len, flags);
}

/* ------------------------------------------------------------------------
 * Masking (§5.3)
 * ------------------------------------------------------------------------ */

/*
 * XORs `buf[0..len)` in place with `key`, where buf[0] is byte number
 * `offset` of the payload (so a payload split across reads unmasks
 * correctly when each piece passes its own offset). Any alignment; an
 * all-zero key returns at once. Masking twice restores the data.
 */
void lightws_mask(uint8_t *buf, size_t len, const uint8_t key[4],
                  uint64_t offset);

/*
 * Like lightws_mask() but reads `src` and writes `dst` (which may be
 * equal; otherwise they must not overlap): a masked copy in one pass.
 */
void lightws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                       const uint8_t key[4], uint64_t offset);

/* ------------------------------------------------------------------------
 * UTF-8 (§5.6, §8.1): incremental validation
 * ------------------------------------------------------------------------ */

/* Validator state; all-zero is the start state. */
struct lightws_utf8 {
  uint32_t state; /* private */
};

#define LIGHTWS_UTF8_VALID 0      /* input so far is complete valid UTF-8 */
#define LIGHTWS_UTF8_INCOMPLETE 1 /* valid so far, but ends inside a sequence */

/*
 * Feeds `in[0..len)` (any split of the text). Returns LIGHTWS_UTF8_VALID,
 * LIGHTWS_UTF8_INCOMPLETE, or LIGHTWS_ERR_UTF8 at the first byte that can
 * never be valid (overlong forms, surrogates U+D800..DFFF, code points over
 * U+10FFFF, stray continuation bytes, 0xC0, 0xC1, 0xF5..0xFF). After an
 * error the state stays failed until reset to zero.
 */
int lightws_utf8_feed(struct lightws_utf8 *u, const uint8_t *in, size_t len);

/* ------------------------------------------------------------------------
 * Handshake codec (§4)
 *
 * Encoders write into `out[0..size)` and return the bytes written or
 * LIGHTWS_ERR_NOSPACE / LIGHTWS_ERR_HEADER_INJECTION; they never write a
 * terminating NUL. Parsers fill structs whose pointers point into the
 * caller's input buffer (valid while that buffer is) and return the number
 * of bytes of the HTTP head, CRLFCRLF included; bytes after it (a first
 * frame in the same packet) belong to whoever reads next.
 *
 * Parsing is strict HTTP/1.x (RFC 7230 §3): lines end in CRLF or a bare LF
 * (§3.5 allows accepting LF); HTTP_MALFORMED for obs-fold (a line starting
 * with SP or HT), whitespace before the colon, a header name that is not a
 * token, a control character other than HT in a value (NUL, bare CR, DEL),
 * a request-line not "METHOD SP target SP HTTP/D.D", and a repeated Host,
 * Sec-WebSocket-Key, Sec-WebSocket-Version or Sec-WebSocket-Accept
 * (ambiguous). A syntax error in a complete line, or a control byte in the
 * unfinished last line, is reported at once, before the head ends; the
 * semantic checks run on the complete head. Parsers never read past `len`
 * and keep no state: call again with the grown buffer.
 * ------------------------------------------------------------------------ */

#define LIGHTWS_KEY_LEN 24     /* base64 of 16 bytes */
#define LIGHTWS_ACCEPT_LEN 28  /* base64 of a SHA-1 digest */
#define LIGHTWS_HANDSHAKE_HEAD_MAX 8192 /* default head size limit */
#define LIGHTWS_HANDSHAKE_HEADERS_MAX 64

/* One header; name and value point into the caller's buffer and are not
 * NUL-terminated. Values are trimmed of surrounding spaces and tabs. */
struct lightws_header {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* A parsed upgrade request. Set `headers` and `max_headers` before
 * parsing; everything else is output. Pointers are NULL/0 when absent.
 * `headers` NULL or `max_headers` 0 means "do not store headers": then
 * num_headers stays 0, TOO_MANY_HEADERS never happens (max_head bounds the
 * head), and the named fields below are still filled. With storage,
 * TOO_MANY_HEADERS comes as soon as header max_headers + 1 is complete.
 * `http_minor` is -1 unless the version is HTTP/1.x. `version` is -1 when
 * the header is absent and -2 when it is not a number 0..255 (§4.1 ABNF).
 * lightws_response follows the same rules for `headers`. */
struct lightws_request {
  struct lightws_header *headers; /* in: caller's array */
  size_t max_headers;             /* in: its capacity */
  size_t num_headers;             /* out: headers stored */
  const char *method; size_t method_len;
  const char *path; size_t path_len; /* request-target as sent */
  int http_minor;                 /* 1 for HTTP/1.1 */
  const char *host; size_t host_len;
  const char *key; size_t key_len;
  const char *origin; size_t origin_len;
  const char *protocol; size_t protocol_len;   /* first Sec-WebSocket-Protocol */
  const char *extensions; size_t extensions_len; /* first Sec-WebSocket-Extensions */
  int version;                    /* Sec-WebSocket-Version, -1 if absent */
  size_t head_len;                /* bytes of the head, once it is complete */
};

/* A parsed 101 response (client side); same conventions. */
struct lightws_response {
  struct lightws_header *headers;
  size_t max_headers;
  size_t num_headers;
  int status;
  const char *reason; size_t reason_len;
  const char *accept; size_t accept_len;
  const char *protocol; size_t protocol_len;
  const char *extensions; size_t extensions_len;
  size_t head_len;
};

/*
 * Fills `key` with a fresh Sec-WebSocket-Key (base64 of 16 bytes from the
 * OS: getrandom or arc4random) followed by a NUL; `key` must have room for
 * LIGHTWS_KEY_LEN + 1 bytes. Returns 0 or LIGHTWS_ERR_SYSTEM.
 */
int lightws_handshake_key(char *key);

/*
 * Writes base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")) and a
 * NUL into `accept` (room for LIGHTWS_ACCEPT_LEN + 1 bytes), §4.2.2.
 */
void lightws_handshake_accept(const char *key, size_t key_len, char *accept);

/*
 * Encodes a client upgrade request (§4.1): "GET path HTTP/1.1", Host,
 * Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key (`key`, 24
 * chars from lightws_handshake_key()), Sec-WebSocket-Version: 13, then, when
 * not NULL, Sec-WebSocket-Protocol (`protocols`, e.g. "chat, superchat"),
 * Origin, and the `num_extra` headers of `extra`. Strings are
 * NUL-terminated; `path` defaults to "/" when NULL or empty; an empty
 * `protocols` or `origin` is not sent. `host` is sent as given (include
 * the port when it is not the default one).
 * Returns bytes written, LIGHTWS_ERR_NOSPACE, LIGHTWS_ERR_INVALID (host or
 * key NULL, host empty, key not 24 chars, extra NULL with num_extra > 0,
 * a header with a NULL name or a NULL value of nonzero length), or
 * LIGHTWS_ERR_HEADER_INJECTION if any string or header contains CR, LF or
 * NUL (or another control character but HT), `path` contains a space, or
 * a header name is not an HTTP token. Arguments are checked before anything
 * is written: on INVALID or HEADER_INJECTION `out` is untouched.
 */
ssize_t lightws_handshake_build_request(uint8_t *out, size_t size,
                                        const char *host, const char *path,
                                        const char *key,
                                        const char *protocols,
                                        const char *origin,
                                        const struct lightws_header *extra,
                                        size_t num_extra);

/*
 * Parses and validates an upgrade request (§4.2.1) from `in[0..len)`.
 * Returns the head length on success. Returns LIGHTWS_ERR_INCOMPLETE if
 * the head is not complete yet, LIGHTWS_ERR_HEAD_TOO_LARGE if no end of
 * head lies within the first `max_head` bytes (0 means
 * LIGHTWS_HANDSHAKE_HEAD_MAX), LIGHTWS_ERR_TOO_MANY_HEADERS,
 * LIGHTWS_ERR_HTTP_MALFORMED, or the first failed check, in this order:
 * HTTP_METHOD (not GET), HTTP_VERSION (below 1.1), NO_HOST, NO_UPGRADE
 * (no "websocket" token, case-insensitive, in any Upgrade header),
 * NO_CONNECTION (no "upgrade" token in any Connection header), BAD_VERSION
 * (not 13), BAD_KEY. On a failed check `*req` is fully filled (head_len
 * included) so a server can inspect it and answer with
 * lightws_http_status(err).
 */
ssize_t lightws_handshake_parse_request(struct lightws_request *req,
                                        const uint8_t *in, size_t len,
                                        size_t max_head);

/*
 * Encodes "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection and
 * Sec-WebSocket-Accept derived from `key` (§4.2.2), then
 * Sec-WebSocket-Protocol when `protocol` is not NULL or empty, then
 * `extra`. Returns bytes written, LIGHTWS_ERR_NOSPACE, LIGHTWS_ERR_INVALID
 * (key NULL or key_len not 24) or LIGHTWS_ERR_HEADER_INJECTION (as above).
 */
ssize_t lightws_handshake_build_response(uint8_t *out, size_t size,
                                         const char *key, size_t key_len,
                                         const char *protocol,
                                         const struct lightws_header *extra,
                                         size_t num_extra);

/*
 * Encodes an error response with `status` (e.g. 400, 403, 404, 426, 431)
 * and its reason phrase ("Error" for statuses without a known one),
 * "Content-Length: 0" and "Connection: close". 405 adds "Allow: GET"
 * (RFC 7231 §6.5.5); 426 adds "Upgrade: websocket" and
 * "Sec-WebSocket-Version: 13" and sends "Connection: Upgrade, close"
 * (§4.2.2, §4.4; RFC 7231 §6.5.15, RFC 7230 §6.7). `extra` as above.
 * Returns bytes written, LIGHTWS_ERR_INVALID for a status outside
 * 200..599 (1xx are not final answers), or an error as above.
 */
ssize_t lightws_handshake_build_error(uint8_t *out, size_t size, int status,
                                      const struct lightws_header *extra,
                                      size_t num_extra);

/*
 * Parses and checks a server response (§4.1, client side): status 101
 * (else BAD_STATUS, with `*resp` filled), Upgrade with "websocket"
 * (NO_UPGRADE), Connection with "upgrade" (NO_CONNECTION), and, when `key`
 * is not NULL, Sec-WebSocket-Accept matching it (BAD_ACCEPT). When
 * `protocols` is not NULL, a chosen Sec-WebSocket-Protocol must be one of
 * its comma-separated tokens (BAD_PROTOCOL); when it is NULL, any chosen
 * protocol is BAD_PROTOCOL. Any Sec-WebSocket-Extensions is BAD_EXTENSION
 * (none are offered). Checks run in this order: BAD_STATUS, HTTP_VERSION
 * (a 101 below HTTP/1.1), NO_UPGRADE, NO_CONNECTION, BAD_ACCEPT (exact,
 * case-sensitive), BAD_PROTOCOL (exact match of one offered token; more
 * than one Sec-WebSocket-Protocol header or a list is BAD_PROTOCOL),
 * BAD_EXTENSION; `*resp` is filled on each. The space before an empty
 * reason phrase may be missing. Returns the head length or an error as
 * for lightws_handshake_parse_request().
 */
ssize_t lightws_handshake_parse_response(struct lightws_response *resp,
                                         const uint8_t *in, size_t len,
                                         size_t max_head, const char *key,
                                         const char *protocols);

/*
 * As lightws_handshake_parse_response(), for a client that offered
 * permessage-deflate with `offered` (lightws_pmd_offer): a
 * Sec-WebSocket-Extensions response (all such headers together) is checked
 * with lightws_pmd_check_response() instead of refused, and `*agreed` is
 * filled (all zero, and resp->extensions NULL, when the server declined).
 * `offered` NULL behaves exactly as lightws_handshake_parse_response().
 */
struct lightws_pmd_config;
struct lightws_pmd_params;
ssize_t lightws_handshake_parse_response_ext(
    struct lightws_response *resp, const uint8_t *in, size_t len,
    size_t max_head, const char *key, const char *protocols,
    const struct lightws_pmd_config *offered,
    struct lightws_pmd_params *agreed);

/*
 * 1 if some header named `name` (case-insensitive) among `headers[0..n)`
 * has `token` (case-insensitive) in its comma-separated value, else 0.
 * Example: lightws_header_has_token(h, n, "Connection", "upgrade").
 */
int lightws_header_has_token(const struct lightws_header *headers, size_t n,
                             const char *name, const char *token);

/* First header named `name` (case-insensitive), or NULL. */
const struct lightws_header *
lightws_header_find(const struct lightws_header *headers, size_t n,
                    const char *name);

/* ------------------------------------------------------------------------
 * Extensions: permessage-deflate (RFC 7692)
 *
 * Negotiation (§5, §7.1) is plain text work on Sec-WebSocket-Extensions
 * values, done by the functions below and, for the endpoint functions, by
 * the `deflate` fields of the client and server options. Parameters are
 * named from each side's point of view in lightws_pmd_config ("ours" is
 * the compressor of this endpoint, "peer" the other side's), and as in the
 * RFC (server_* / client_*) in lightws_pmd_params, which is what was
 * agreed.
 *
 * Compression itself (§6, §7.2) runs in the stream once
 * lightws_stream_set_deflate() hands it a memory block the caller owns:
 * zlib's state for both directions and two small work buffers live in it
 * (zlib's zalloc/zfree hooks serve that block), so the library still
 * never calls malloc. lightws_pmd_mem_size() tells the size; the figures
 * per window bits and memLevel are in the README ("Memory per
 * connection"). Built without zlib (make ZLIB=0), lightws_pmd_available()
 * is 0, nothing is ever offered or accepted, and set_deflate returns
 * LIGHTWS_ERR_UNSUPPORTED.
 * ------------------------------------------------------------------------ */

#define LIGHTWS_PMD_NAME "permessage-deflate"

/* What was agreed for one connection (or what one offer or response
 * says): the four parameters of §7.1, as the RFC names them. */
struct lightws_pmd_params {
  uint8_t server_no_context_takeover; /* 1: the server resets its
                                         compressor after each message */
  uint8_t client_no_context_takeover; /* 1: the client does */
  uint8_t server_max_window_bits;     /* 8..15; 0: absent (15) */
  uint8_t client_max_window_bits;     /* 8..15; 0: absent (15);
                                         LIGHTWS_PMD_BITS_BARE: the offer
                                         has the parameter without a value
                                         (§7.1.2.2) */
};
#define LIGHTWS_PMD_BITS_BARE 1

/* This endpoint's wishes; zero-filled means the defaults. */
struct lightws_pmd_config {
  uint8_t window_bits;      /* our compressor's LZ77 window, 9..15
                               (0: LIGHTWS_PMD_DEFAULT_WINDOW_BITS). We
                               never use a larger window than the peer
                               allows; a peer limit of 8 (which zlib's
                               raw deflate cannot do) is honoured with
                               Huffman-only coding (no back references) */
  uint8_t peer_window_bits; /* largest window the peer's compressor may
                               use, 8..15 (0: 15): what our inflater
                               allocates. Asked for in the offer/response
                               when the RFC lets us (a server can limit
                               the client only if the client offered
                               client_max_window_bits); a server whose
                               client cannot be limited declines the
                               offer when this is below 15 */
  uint8_t mem_level;        /* zlib memLevel 1..9 (0:
                               LIGHTWS_PMD_DEFAULT_MEM_LEVEL) */
  int8_t level;             /* zlib level 0..9; 0 means the default
                               (LIGHTWS_PMD_DEFAULT_LEVEL); -1 is level 0
                               (stored blocks) */
  uint8_t no_context_takeover;      /* 1: reset our compressor after each
                                       message, and say so */
  uint8_t peer_no_context_takeover; /* 1: ask the peer to reset its
                                       compressor after each message */
  uint8_t required;         /* client: a server that declines fails the
                               stream with EXTENSION_DECLINED, close 1010
                               (§7.4.1) */
  uint8_t reserved_;        /* 0 */
  uint32_t threshold;       /* messages shorter than this (bytes) are sent
                               uncompressed; 0: LIGHTWS_PMD_DEFAULT_THRESHOLD */
  uint32_t work_size;       /* each of the two work buffers (compressed
                               output of a send, inflated output of a
                               recv), 256..65536 (0:
                               LIGHTWS_PMD_DEFAULT_WORK_SIZE) */
};
#define LIGHTWS_PMD_DEFAULT_WINDOW_BITS 12  /* as python websockets */
#define LIGHTWS_PMD_DEFAULT_MEM_LEVEL   5   /* as python websockets */
#define LIGHTWS_PMD_DEFAULT_LEVEL       6   /* zlib's default */
#define LIGHTWS_PMD_DEFAULT_THRESHOLD   32
#define LIGHTWS_PMD_DEFAULT_WORK_SIZE   4096

/* 1 if lightws was built with zlib (permessage-deflate can be used). */
int lightws_pmd_available(void);

/*
 * Bytes of the memory block a stream needs for any agreement `cfg` (NULL:
 * defaults) can lead to: zlib's deflate and inflate state for the windows
 * and memLevel of `cfg`, the two work buffers, alignment. 0 without zlib.
 */
size_t lightws_pmd_mem_size(const struct lightws_pmd_config *cfg);

/*
 * Client: writes the Sec-WebSocket-Extensions value offering
 * permessage-deflate with `cfg` (NUL-terminated), e.g.
 * "permessage-deflate; client_max_window_bits" (defaults; the longest
 * offer is 127 bytes). client_max_window_bits
 * is always offered bare (we accept any limit down to 8, §7.1.2.2; our
 * compressor uses window_bits or less anyway), server_max_window_bits only
 * when peer_window_bits is below 15, the no_context_takeover parameters
 * as `cfg` says. Returns its length,
 * LIGHTWS_ERR_NOSPACE, LIGHTWS_ERR_INVALID (cfg out of range) or
 * LIGHTWS_ERR_UNSUPPORTED (no zlib).
 */
ssize_t lightws_pmd_offer(char *out, size_t size,
                          const struct lightws_pmd_config *cfg);

/*
 * Server: reads the offers of one Sec-WebSocket-Extensions value
 * `value[0..len)` in order and picks the first permessage-deflate offer it
 * can accept under `cfg` (§7.1: an offer with an unknown, duplicate or
 * invalid parameter, or one `cfg` cannot honour, is declined, and the next
 * is tried). On 1 `*agreed` holds the parameters to answer (and to hand
 * to lightws_stream_set_deflate); 0 when no offer is acceptable (decline:
 * answer without the extension); LIGHTWS_ERR_UNSUPPORTED without zlib.
 * Other extensions in the value are ignored (declined). A value that is
 * not a valid extension list (RFC 6455 §9.1) declines everything: 0.
 */
int lightws_pmd_accept(const char *value, size_t len,
                       const struct lightws_pmd_config *cfg,
                       struct lightws_pmd_params *agreed);

/*
 * Server: writes the response value for `agreed` (NUL-terminated), e.g.
 * "permessage-deflate; server_no_context_takeover". Returns its length
 * or LIGHTWS_ERR_NOSPACE.
 */
ssize_t lightws_pmd_response(char *out, size_t size,
                             const struct lightws_pmd_params *agreed);

/*
 * Client: checks the server's Sec-WebSocket-Extensions value
 * `value[0..len)` against what lightws_pmd_offer(cfg) offered (§7.1): one
 * permessage-deflate element with valid parameters we can honour. Returns
 * 0 with `*agreed` filled, LIGHTWS_ERR_BAD_EXTENSION (an extension not
 * offered, or permessage-deflate twice) or LIGHTWS_ERR_BAD_EXTENSION_PARAMS
 * (an unknown, duplicate or invalid parameter, a window limit we did not
 * allow, client_max_window_bits when we did not offer it).
 */
int lightws_pmd_check_response(const char *value, size_t len,
                               const struct lightws_pmd_config *cfg,
                               struct lightws_pmd_params *agreed);

/* ------------------------------------------------------------------------
 * IO: how a stream reaches its transport
 *
 * By default a stream uses its file descriptor: recv(2), and send(2) or
 * sendmsg(2) with MSG_NOSIGNAL (read(2) and writev(2) for non-sockets),
 * EINTR retried. A caller
 * with another transport (TLS, a test harness) supplies callbacks that
 * behave like read(2) and writev(2): return bytes moved, 0 for EOF (read
 * only), or -1 with errno set (EAGAIN/EWOULDBLOCK for would-block).
 *
 * A transport with state of its own (TLS: a read that must first write the
 * answer to a KeyUpdate, ciphertext waiting to go out, decrypted bytes
 * held back) fills the optional hooks after `ctx`, so that
 * lightws_stream_want(), lightws_stream_flush() and
 * lightws_stream_buffered() tell the truth on their own. Each may be NULL
 * (today's behaviour: want-read from `read`, want-write from `writev`,
 * nothing held). Fields not set must be NULL: initialize the struct with
 * braces ({read, writev, ctx} zeroes the rest), memset or static storage,
 * never field by field on an uninitialized one. A descriptor stream, or
 * an io without hooks, pays nothing for them but one NULL check when a
 * call would block.
 * ------------------------------------------------------------------------ */
struct lightws_io {
  ssize_t (*read)(void *ctx, void *buf, size_t len);
  ssize_t (*writev)(void *ctx, const struct iovec *iov, int iovcnt);
  void *ctx;
  /* optional hooks (NULL: none): */
  int (*want)(void *ctx);
    /* The LIGHTWS_WANT_* set the transport waits for: what its last read
     * or writev that failed with EAGAIN needs (a TLS read may need WRITE,
     * a write READ), plus LIGHTWS_WANT_WRITE while it holds output that
     * `flush` would send. 0: nothing (then the core assumes the direction
     * of the call). Called by the core right after read or writev failed
     * with EAGAIN (the result is what lightws_stream_want() reports for
     * that WOULDBLOCK), after `flush` returned LIGHTWS_ERR_WOULDBLOCK, and
     * by lightws_stream_want() (its WRITE bit only). Must not block or
     * do IO. */
  int (*flush)(void *ctx);
    /* Sends output the transport holds on its own (written during a read:
     * a KeyUpdate answer, an alert; or ciphertext behind an earlier
     * writev). Returns 0 when none is left, LIGHTWS_ERR_WOULDBLOCK (the
     * rest stays; lightws_stream_want() then has WRITE), or
     * LIGHTWS_ERR_SYSTEM (errno set). Called by lightws_stream_flush()
     * after the stream's own pending frames, and at the start of a read
     * call when the previous call of the stream would block for writing
     * (the ctl_try of a read). Must not block on a nonblocking transport. */
  size_t (*pending)(void *ctx);
    /* Bytes the transport received and holds for the next `read` (which
     * then returns them without waiting), e.g. decrypted TLS records; a
     * nonzero value only promises that `read` makes progress. Added to
     * lightws_stream_buffered(). Must not do IO. */
  int (*wait_fd)(void *ctx, int on);
    /* The descriptor under the transport, so that a stream with timeouts
     * over a blocking one waits in poll(2) up to its deadline and ticks,
     * as a descriptor stream does (see Time); -1: none (the caller ticks).
     * Called by lightws_stream_set_timeouts() with on = 1 when a timeout
     * is set: if the descriptor is blocking then, the stream waits itself
     * from then on, and `read` and `writev` must no longer block (fail
     * with EAGAIN instead, e.g. recv/send with MSG_DONTWAIT) until a call
     * with on = 0 (timeouts turned off); also at each such wait (on = 1,
     * the same descriptor; if it was made nonblocking since, the call
     * returns LIGHTWS_ERR_WOULDBLOCK as on a nonblocking transport). With
     * timeouts, call set_timeouts after lightws_stream_set_io(). */
};

/* ------------------------------------------------------------------------
 * Stream: a websocket connection over a descriptor or lightws_io
 *
 * The caller owns the struct (embed it, stack it) and a receive buffer
 * `rbuf` it lends at init. Reads fill `rbuf` with as many frames as one
 * read(2) brings, then hand payload out in place (lightws_stream_recv) or
 * copied (lightws_stream_read); when `rbuf` is empty and a large payload is
 * due, lightws_stream_read() reads it straight into the caller's buffer.
 * Writes send head + payload in one writev and never copy payload, except
 * that a client masking a const buffer masks it through a 16 KiB stack
 * chunk (one extra pass; pass LIGHTWS_SEND_MASK_IN_PLACE to avoid it):
 * one writev per chunk, the first chunk of a frame 16 KiB less its head,
 * so that head + chunk fill one TLS record.
 *
 * Modes: guarded (the default) loops until it makes progress or the
 * descriptor would block; direct (LIGHTWS_OPT_DIRECT) does at most one
 * read or write syscall per call and may return with no progress (a chunk
 * of length 0). On a nonblocking descriptor every call either makes
 * progress or returns LIGHTWS_ERR_WOULDBLOCK with the state intact; then
 * lightws_stream_want() says whether to wait for readable or writable.
 * Writing a pending control frame (an automatic pong, a close echo) may
 * add one write to a call in either mode, and so may finishing the head of
 * an empty frame left cut short by an earlier call.
 *
 * Receive buffer: unread bytes are rbuf[rpos, rend). When more input is
 * needed and rbuf is full, the unread tail (a partial head or control
 * frame, at most 139 bytes) moves to the front first. A data frame larger
 * than rbuf is delivered in chunks; a control frame is handled only once
 * it is whole in rbuf (rsize >= LIGHTWS_RBUF_MIN guarantees room).
 *
 * Peer errors (§7.1.7): a frame breaking the RFC fails the stream: a close
 * frame with lightws_close_code(err) is queued and sent as far as the
 * transport allows (not inside a half-written data frame of ours: then it
 * waits for that frame to finish), and every later read and send returns
 * the same error (lightws_stream_error()). The mask bit is checked by role
 * (§5.1: a server rejects unmasked frames with MASK_REQUIRED, a client
 * masked ones with MASK_UNEXPECTED) unless LIGHTWS_OPT_NO_MASK_CHECK.
 *
 * Threads: a stream is not thread-safe; serialize calls on one stream.
 * ------------------------------------------------------------------------ */

enum lightws_role { LIGHTWS_SERVER = 0, LIGHTWS_CLIENT = 1 };

/* Client mask modes (§5.3). The server never masks. */
enum lightws_mask_mode {
  LIGHTWS_MASK_RANDOM = 0, /* fresh key per frame (default, as §5.3 says),
                              from a fast generator (xorshift64*) seeded
                              from the OS at init: not a cryptographic
                              generator, but a peer or script that sees
                              only payloads cannot predict it */
  LIGHTWS_MASK_FIXED = 1,  /* one random key per connection */
  LIGHTWS_MASK_ZERO = 2    /* all-zero key: peers unmask for free; only for
                              trusted paths (tunnels), not browsers' peers */
};

/* Stream options (lightws_stream_init flags). */
#define LIGHTWS_OPT_DIRECT        0x01u /* at most one syscall per call */
#define LIGHTWS_OPT_NO_UTF8_CHECK 0x02u /* do not validate text */
#define LIGHTWS_OPT_NO_AUTO_PONG  0x04u /* pings are reported, not answered */
#define LIGHTWS_OPT_NO_MASK_CHECK 0x08u /* accept frames whatever the mask bit */
#define LIGHTWS_OPT_WHOLE_TEXT    0x10u /* a text frame that fits rbuf is
                                           handed out only once all of it
                                           is in and valid UTF-8 so far:
                                           nothing of a frame that fails
                                           with 1007 reaches the caller (an
                                           echo or relay never forwards it);
                                           larger text frames still come in
                                           chunks. Uncompressed text only. */

#define LIGHTWS_DEFAULT_MAX_FRAME   (64u * 1024 * 1024)
#define LIGHTWS_DEFAULT_MAX_MESSAGE (64u * 1024 * 1024)
#define LIGHTWS_RBUF_MIN 256 /* smallest receive buffer lightws accepts */
#define LIGHTWS_STASH_SIZE 136 /* bytes a stream in shared-buffer mode keeps
                                  itself: a partial frame head or control
                                  frame (< 131), or a close reason (<= 123) */

/* The connection. Zero-filled memory plus lightws_stream_init() is the only
 * valid way to start; never copy a stream that is in use. Fields after
 * "private" may change between versions. Size: at most 512 bytes (472 on
 * LP64 today), the whole per-connection state: no other memory is held
 * but the receive buffer (none while idle in shared-buffer mode) and the
 * permessage-deflate block when that is on. */
struct lightws_stream {
  /* private: */
  const struct lightws_io *io;   /* NULL: use fd */
  uint8_t *rbuf;                 /* receive buffer lent by the caller */
  uint32_t rsize, rpos, rend;    /* rbuf size; unread data is [rpos, rend) */
  int fd;
  uint64_t r_left;               /* payload bytes left in current frame */
  uint64_t msg_len;              /* bytes of current message so far */
  uint64_t w_left;               /* payload bytes left in frame being sent */
                                 /* (during the opening handshake these
                                    three track the HTTP head being sent;
                                    see endpoint.c) */
  uint64_t rng;                  /* mask key generator state (xorshift64*,
                                    seeded once from the OS) */
  uint32_t max_frame, max_message;
  uint32_t utf8;                 /* struct lightws_utf8 state of the message */
  uint32_t flags;                /* options (low byte) and state bits:
                                    want, fin of the frame being read,
                                    pending control frame kind, close
                                    sent/received, EOF (see stream.c) */
  uint32_t ctl_in_off;           /* offset in rbuf of ctl_in_len bytes */
  uint8_t r_mask[4];             /* key of the frame being read */
  uint8_t w_mask[4];             /* key of the frame being sent (the
                                    connection's key in MASK_FIXED) */
  uint8_t r_opcode;              /* current frame being read */
  uint8_t msg_opcode;            /* TEXT/BINARY of the message, 0 if none */
  uint8_t role, mask_mode;
  uint8_t state;                 /* 0 open, else a handshake step */
  uint8_t r_mask_off;            /* payload offset mod 4 in current frame */
  uint8_t w_mask_off;
  uint8_t w_opcode;              /* opcode of the message being sent, 0 if none */
  uint8_t whead_len, whead_sent; /* head of the frame being sent; whead_len
                                    is 0 when no frame is in progress */
  uint8_t ctl_len, ctl_sent;     /* pending control frame (head + payload) */
  uint8_t last_err;              /* -error that failed the stream, 0 if none */
  uint8_t ctl_in_len;            /* last pong payload / close reason length */
  uint16_t close_code;           /* peer's close code (0 = none yet) */
  uint16_t close_sent;           /* code of our close (1005: none), set
                                    once it is queued */
  uint8_t whead[LIGHTWS_FRAME_HEADER_MAX];
  uint8_t ctl[6 + LIGHTWS_CONTROL_MAX]; /* pending control frame, encoded
                                          (client: masked); before a client
                                          handshake ends: its key */
  /* time (lightws_stream_set_timeouts), lightws_now() milliseconds: */
  uint64_t t_rx, t_tx;           /* last bytes received / sent (stamped by
                                    the transport only with an idle or
                                    keepalive timeout set) */
  uint64_t t_phase;              /* handshake started, or close started */
  uint64_t t_ping;               /* keepalive ping due (0: none out) */
  uint64_t t_ping_us;            /* ... and when it was queued, in us */
  uint32_t to_handshake, to_idle, to_ping, to_pong, to_close; /* ms */
  uint32_t rtt_us;               /* last keepalive round trip */
  uint8_t ka_token[4];           /* payload of the keepalive ping */
  struct lightws__pmd *pmd;      /* permessage-deflate state, in the
                                    caller's block (lightws_stream_set_deflate),
                                    NULL when off */
  uint8_t stash[LIGHTWS_STASH_SIZE]; /* shared-buffer mode: what the stream
                                    keeps between lent buffers (see
                                    lightws_stream_lend) */
};

/* What a read delivered. */
struct lightws_chunk {
  const uint8_t *data;  /* recv: points into rbuf; read: the caller's buf */
  size_t len;           /* payload bytes in this chunk */
  uint8_t opcode;       /* LIGHTWS_OPCODE_TEXT or _BINARY (of the message);
                           LIGHTWS_OPCODE_PING for a ping handed out under
                           LIGHTWS_OPT_NO_AUTO_PONG */
  uint8_t frame_end;    /* 1 if this chunk ends a frame */
  uint8_t message_end;  /* 1 if this chunk ends the message (fin frame) */
  uint8_t compressed;   /* 1 if the message came compressed
                           (permessage-deflate, RSV1 on its first frame):
                           data is inflated output, e.g. for an echo that
                           answers compressed with compressed */
};

/*
 * Initializes `s` for `role` over descriptor `fd` (or -1 with
 * lightws_stream_set_io()), with receive buffer `rbuf[0..rsize)` owned by
 * the caller and used by `s` until it is done (at least LIGHTWS_RBUF_MIN
 * bytes; 16-64 KiB reads many frames per syscall). `options` is a set of
 * LIGHTWS_OPT_*. Seeds the mask generator from the OS once (no syscall per
 * frame). The stream starts open (no handshake); the endpoint functions
 * below run the handshake on an initialized stream.
 * rbuf NULL with rsize 0 starts the stream in shared-buffer mode (see
 * lightws_stream_lend): it owns no receive buffer and reads into one the
 * caller lends it for a while.
 * Returns 0, LIGHTWS_ERR_INVALID (rsize too small or over 4 GiB, unknown
 * role or option), or
 * LIGHTWS_ERR_SYSTEM (no OS randomness).
 */
int lightws_stream_init(struct lightws_stream *s, enum lightws_role role,
                        int fd, uint8_t *rbuf, size_t rsize,
                        unsigned options);

/* Carries `s` over `io` (caller-owned, must outlive `s`) instead of a
 * descriptor. Call right after init; or later to move the stream to
 * another transport, e.g. one that fails every call before its descriptor
 * is closed, so that no later call reaches a socket reusing the number.
 * Bytes already in rbuf stay. */
void lightws_stream_set_io(struct lightws_stream *s,
                           const struct lightws_io *io);

/* Client mask mode; LIGHTWS_MASK_FIXED draws its key now. Returns 0 or
 * LIGHTWS_ERR_INVALID (server role, or unknown mode). */
int lightws_stream_set_mask_mode(struct lightws_stream *s,
                                 enum lightws_mask_mode mode);

/* Limits: largest frame payload and message accepted (0 keeps the current
 * value); a frame or message over them fails with 1009. Defaults
 * LIGHTWS_DEFAULT_MAX_FRAME and LIGHTWS_DEFAULT_MAX_MESSAGE. */
void lightws_stream_set_limits(struct lightws_stream *s, uint32_t max_frame,
                               uint32_t max_message);

/*
 * Turns permessage-deflate on for `s` with the parameters `agreed` in the
 * handshake (lightws_pmd_accept / lightws_pmd_check_response; the
 * endpoint functions call this themselves when their options have
 * `deflate`) and the local choices of `cfg` (NULL: defaults). `mem[0..size)`
 * is the caller's block, at least lightws_pmd_mem_size(cfg) bytes, aligned
 * for any type, lent to `s` until it is done: zlib's state and the two
 * work buffers are placed in it (zlib allocates through hooks that serve
 * only this block; nothing is freed or allocated later: context resets
 * reuse it). Call once, after the handshake and before the first read or
 * write. Returns 0, LIGHTWS_ERR_NOSPACE (block too small),
 * LIGHTWS_ERR_INVALID (already on, parameters out of range, data already
 * sent or being read), LIGHTWS_ERR_UNSUPPORTED (no zlib).
 *
 * With it on (§6, §7.2):
 *  - reads: a message whose first frame has RSV1 is inflated; the other
 *    messages are read as before (zero-copy). lightws_stream_recv() hands
 *    out inflated bytes as a view into the block's inflate work buffer (a
 *    copy: at most work_size bytes per call; the view-lifetime rule above
 *    holds); lightws_stream_read() and _read_bytes() inflate straight into
 *    the caller's buffer. For a compressed message chunk->frame_end is 1
 *    only together with message_end (frames are not visible in inflated
 *    data), and chunk->compressed is 1. max_frame bounds each frame as received (compressed);
 *    max_message bounds the inflated message and is enforced inside the
 *    inflate loop: MESSAGE_TOO_BIG (1009) as soon as one byte more would
 *    pass it. Text is validated on the inflated bytes (1007). RSV1 on a
 *    continuation or control frame is BAD_RSV1 (1002); data zlib refuses
 *    is BAD_DEFLATE (1007).
 *  - writes: lightws_stream_send() compresses a message unless
 *    LIGHTWS_SEND_NO_COMPRESS is set on its first frame or it is sent in
 *    one call (no LIGHTWS_SEND_FRAGMENT) with fewer than cfg->threshold
 *    bytes. It then returns input bytes taken into the compressor (0..len;
 *    they are never lost: a continuation call passes the rest). The
 *    compressed bytes go out as frames of up to work_size payload bytes,
 *    the first with RSV1, the last at the message's end (§7.2.1: the
 *    final 00 00 ff ff of the flush removed), each head + payload in one
 *    writev; what the transport did not take stays in the work buffer and
 *    goes out first on the next send or lightws_stream_flush()
 *    (lightws_stream_want() has WANT_WRITE meanwhile). Compressed writes
 *    copy (into the work buffer); uncompressed ones stay zero-copy.
 *    lightws_stream_sendv() sends compressed messages one by one as send
 *    would. Control frames are never compressed. With no context takeover
 *    (ours, per §7.1.1) the compressor is reset after each message.
 */
int lightws_stream_set_deflate(struct lightws_stream *s,
                               const struct lightws_pmd_params *agreed,
                               const struct lightws_pmd_config *cfg,
                               void *mem, size_t size);

/* 1 if permessage-deflate is on for `s`. */
int lightws_stream_deflate(const struct lightws_stream *s);

/*
 * Hands `in[0..len)` to the stream as if it had been read (bytes read past
 * a handshake done elsewhere). Copied into rbuf; returns 0 or
 * LIGHTWS_ERR_NOSPACE.
 */
int lightws_stream_feed(struct lightws_stream *s, const uint8_t *in,
                        size_t len);

/*
 * Shared-buffer mode: many streams on one thread, one receive buffer.
 *
 * A stream started with rbuf NULL and rsize 0 reads into a buffer the
 * caller lends it: lightws_stream_lend() before its reads (and handshake
 * steps), lightws_stream_release() after them, typically once per
 * readiness event, so one buffer per event loop serves every connection.
 * What the stream must keep between two lent buffers (a partial frame
 * head, a partial control frame, half a request head, the peer's close
 * reason) is kept in the struct itself (LIGHTWS_STASH_SIZE bytes), so an
 * idle connection costs sizeof(struct lightws_stream) and nothing else:
 *
 *   mode                   per idle connection
 *   own rbuf (init rbuf)   the struct + rsize (16 KiB is typical)
 *   shared-buffer mode     the struct (472 bytes on LP64): the stash
 *                          holds all it needs between events
 *
 * Bytes are never copied on the hot path: payload is handed out as views
 * into the lent buffer (recv) or read into the caller's buffer (read),
 * exactly as with an own rbuf. Only the leftovers move (memcpy of at most
 * LIGHTWS_STASH_SIZE bytes at release and lend), and only when some are
 * left: a connection that was read until WOULDBLOCK has at most a partial
 * frame head or control frame.
 *
 * When the caller stops reading before WOULDBLOCK (fairness, or an echo
 * that cannot be written), more may be unread than the stash holds; then
 * release says so and the stream keeps the lent buffer: the caller either
 * leaves that buffer to this stream, or lends the stream a buffer of its
 * own (any size >= what is held), which moves the bytes there. Without a
 * lent buffer a stream still works, reading into its stash (small reads;
 * a request head over LIGHTWS_STASH_SIZE bytes gives BUFFER_TOO_SMALL), so
 * forgetting to lend is slow, never wrong.
 *
 * Lending or releasing ends the validity of views into the previous
 * buffer: chunks of lightws_stream_recv(), lightws_stream_pong_data(),
 * and a request or response parsed by a handshake step; the close reason
 * stays readable (it moves with the stream).
 */

/* Lends `buf[0..size)` (size >= LIGHTWS_RBUF_MIN) to `s` for its next
 * reads and handshake steps, until lightws_stream_release() or another
 * lend; the caller must not touch the buffer meanwhile (views that calls
 * hand out point into it). What the stream keeps (in its stash or the
 * buffer lent before) moves to the front of `buf`. Lending the buffer
 * already lent does nothing. Returns 0, LIGHTWS_ERR_INVALID (not in
 * shared-buffer mode, size out of range), or LIGHTWS_ERR_NOSPACE (`buf`
 * cannot hold what the stream keeps: nothing changed). */
int lightws_stream_lend(struct lightws_stream *s, uint8_t *buf,
                        size_t size);

/* Gives the lent buffer back: what the stream must keep moves into its
 * stash, and the buffer is free for other streams. Returns 0 (released;
 * also when nothing was lent), or the number of bytes (> 0) the stream
 * still holds in the lent buffer because they do not fit the stash (it
 * keeps the buffer: lend it another one to move them, see above), or
 * LIGHTWS_ERR_INVALID (not in shared-buffer mode). */
ssize_t lightws_stream_release(struct lightws_stream *s);

/*
 * Message-aware zero-copy read. Delivers the next piece of a data message
 * as a view into rbuf (`out->data`): never more than one frame's payload and
 * never past a message's end. The view stays valid until the next call that
 * reads: lightws_stream_recv, _read, _read_bytes, _feed, or a handshake
 * step. Only those calls move or overwrite rbuf; lightws_stream_send,
 * _write, _sendv, _ping, _pong, _close, _flush and _tick never touch it
 * (neither does the deadline wait of a blocking send), so a view may be
 * sent back (an echo) with any number of send and flush calls before the
 * next read.
 * Handles control frames found on the way: a ping is answered with a pong
 * (sent now if the transport accepts it, else kept and sent before the
 * next data frame or by lightws_stream_flush()); a pong is recorded
 * (lightws_stream_pong_data()); a close is validated, answered, and ends
 * the stream. Text is validated as UTF-8 across frames.
 *
 * Returns the chunk length (0 is possible: an empty frame, or direct mode
 * without progress; check out->frame_end), or:
 *  LIGHTWS_ERR_WOULDBLOCK  nonblocking transport; see lightws_stream_want();
 *  LIGHTWS_ERR_CLOSED      the peer's close arrived (and was answered);
 *                          lightws_stream_close_code()/close_reason() tell;
 *  LIGHTWS_ERR_EOF         the transport ended without a close frame;
 *  LIGHTWS_ERR_SYSTEM      errno tells;
 *  a protocol error        the peer broke the RFC; a close frame with
 *                          lightws_close_code(err) was sent (best effort)
 *                          and the stream is failed: every later call
 *                          returns the same error.
 *  LIGHTWS_ERR_INVALID     the opening handshake has not finished.
 *
 * Details: an empty data frame gives a chunk of length 0 with frame_end 1.
 * In direct mode a call that read nothing usable (half a head) returns 0
 * with frame_end 0. Text is checked as it arrives (LIGHTWS_ERR_UTF8 at the
 * first bad byte, or at a final frame ending inside a character) unless
 * LIGHTWS_OPT_NO_UTF8_CHECK. Limits are checked on each frame head:
 * FRAME_TOO_BIG, MESSAGE_TOO_BIG (1009). §5.4: CONTINUATION outside a
 * message is UNEXPECTED_CONTINUATION, TEXT/BINARY inside one is
 * EXPECTED_CONTINUATION; control frames may come between fragments.
 * A close (§5.5.1, §7.4) with a 1-byte payload is CLOSE_PAYLOAD, a code
 * lightws_close_code_valid() refuses is CLOSE_CODE, a reason that is not
 * UTF-8 is UTF8; a valid one is echoed with the same code (an empty close
 * if it had none) unless we closed first, and reading stops there: frames
 * after it are never read.
 * Ping: the pong is built in the control slot and sent at once unless a
 * data frame of ours is half-written (then right after it). A pong that has
 * not started to go out is replaced by the answer to a newer ping (§5.5.3
 * allows answering only the most recent). If the slot holds our own ping
 * or pong that cannot go out, the ping stays unread and the call returns
 * LIGHTWS_ERR_WOULDBLOCK with LIGHTWS_WANT_WRITE. After our close, pings
 * are not answered. With LIGHTWS_OPT_NO_AUTO_PONG the ping is returned as
 * a chunk of opcode LIGHTWS_OPCODE_PING (frame_end and message_end 1, data
 * in rbuf) and not answered; it can come between fragments of a message.
 */
ssize_t lightws_stream_recv(struct lightws_stream *s,
                            struct lightws_chunk *out);

/*
 * Message-aware read into the caller's buffer: like lightws_stream_recv()
 * but copies up to `size` payload bytes into `buf` (or reads a large
 * payload straight into it when nothing is buffered). Never crosses a
 * message boundary; may cross frame boundaries inside one message. `out`
 * may be NULL; if not, out->data == buf. Returns bytes stored or an error
 * as lightws_stream_recv().
 *
 * Like read(2) it does not wait for more once it has bytes: it returns what
 * it has when more would need another read. It returns 0 for an empty
 * message (out->message_end tells) and, in direct mode, without progress.
 * When rbuf holds nothing unread and both `size` and the rest of the frame
 * are at least 1024 bytes, the payload is read straight into `buf` and
 * unmasked there (no copy through rbuf). Under LIGHTWS_OPT_NO_AUTO_PONG a
 * ping is the whole result of a call: its payload is copied to `buf`
 * (truncated to `size`) and out->opcode is LIGHTWS_OPCODE_PING.
 */
ssize_t lightws_stream_read(struct lightws_stream *s, void *buf, size_t size,
                            struct lightws_chunk *out);

/*
 * Byte-stream read (the seed's transparent read): like
 * lightws_stream_read() but ignores message boundaries, concatenating the
 * payload of consecutive data frames, text or binary, until `buf` is full
 * or no more input is available without blocking. Returns bytes stored
 * (> 0), or an error as lightws_stream_recv(); 0 only in direct mode
 * without progress. Empty messages are skipped. Pings are answered even
 * under LIGHTWS_OPT_NO_AUTO_PONG (a byte stream cannot report them).
 */
ssize_t lightws_stream_read_bytes(struct lightws_stream *s, void *buf,
                                  size_t size);

/* The data frame the last read is in the middle of (after a chunk with
 * frame_end 0): stores in *left its payload bytes not yet handed out and
 * returns 1 if it is the final frame of its message, 0 if fragments
 * follow. LIGHTWS_ERR_INVALID when no frame is in progress (the last
 * chunk ended it) or the message is compressed (its frames carry deflate
 * data, not the bytes handed out). With lightws_stream_send_frame() an
 * echo or relay sends each frame on as one frame of the same length while
 * its payload is still arriving. */
int lightws_stream_frame_rest(const struct lightws_stream *s,
                              uint64_t *left);

/* Send flags. */
#define LIGHTWS_SEND_FRAGMENT      0x01u /* fin=0: more fragments follow */
#define LIGHTWS_SEND_MASK_IN_PLACE 0x02u /* client: mask `buf` in place
                                            (it is modified) instead of
                                            through a stack chunk */
#define LIGHTWS_SEND_NO_COMPRESS   0x04u /* first frame of a message: send
                                            it uncompressed even though
                                            permessage-deflate is on */

/*
 * Sends `buf[0..len)` as one data frame of `opcode` (TEXT or BINARY; the
 * first frame of a message; later fragments pass the same opcode and the
 * stream writes CONTINUATION). Head and payload go out in one writev.
 * Flushes a pending control frame first.
 *
 * Returns payload bytes sent (0..len). After a partial send the frame is
 * in progress: the next lightws_stream_send() call continues it with its
 * first bytes (normally buf + n, len - n), whatever its other arguments,
 * until the frame's length is complete; no byte is lost or sent twice,
 * even with the head split anywhere. Text is not validated on send.
 * Returns LIGHTWS_ERR_WOULDBLOCK if nothing could be sent, LIGHTWS_ERR_INVALID
 * for a bad opcode or order, LIGHTWS_ERR_CLOSED after a close was sent,
 * LIGHTWS_ERR_SYSTEM.
 *
 * Details: a continuation call honours LIGHTWS_SEND_MASK_IN_PLACE (it is
 * about its own buffer) and ignores the other flags and the opcode.
 * WOULDBLOCK may come after some head bytes of the frame went out (the
 * frame is then in progress; retry with the same bytes); a new frame of
 * which nothing went out leaves no trace. A 0 return means: an empty
 * frame was sent, or (direct mode) only head bytes went out. An empty frame
 * whose head was cut counts as sent: the next send, sendv or
 * lightws_stream_flush() finishes its head first. Client masking (§5.3):
 * a fresh key per frame from a generator seeded once from the OS
 * (LIGHTWS_MASK_RANDOM), or the connection's key, or zero. With
 * LIGHTWS_SEND_MASK_IN_PLACE the bytes that went out stay masked in `buf`
 * and the bytes that did not are restored, so a continuation call passes
 * them as they were; without it `buf` is never written. After the stream
 * failed (lightws_stream_error()), returns that error.
 */
ssize_t lightws_stream_send(struct lightws_stream *s, int opcode,
                            const void *buf, size_t len, unsigned flags);

/*
 * Like lightws_stream_send() for a frame whose payload is `frame_len`
 * bytes of which only the first `len` (<= frame_len) are at hand: the head
 * says frame_len, and head + buf[0..len) go out in one writev; the frame
 * is then in progress, and later lightws_stream_send() calls pass the
 * rest of its payload (continuation calls, as after a partial send) until
 * frame_len bytes are sent. For relays and echoes that forward a frame as
 * it arrives (lightws_stream_frame_rest()), one frame in, one frame out,
 * whatever the buffers. Never compressed: with permessage-deflate on, a
 * new message sent this way goes uncompressed (as with
 * LIGHTWS_SEND_NO_COMPRESS), and inside a compressed message the call
 * returns LIGHTWS_ERR_INVALID. Returns and errors as lightws_stream_send()
 * (LIGHTWS_ERR_INVALID also for len > frame_len).
 */
ssize_t lightws_stream_send_frame(struct lightws_stream *s, int opcode,
                                  const void *buf, size_t len,
                                  uint64_t frame_len, unsigned flags);

/* The seed's write: lightws_stream_send(s, LIGHTWS_OPCODE_BINARY, buf, len, 0). */
ssize_t lightws_stream_write(struct lightws_stream *s, const void *buf,
                             size_t len);

/* One message for lightws_stream_sendv(). */
struct lightws_msg {
  const void *data;
  size_t len;
  int opcode;    /* TEXT or BINARY */
};

/*
 * Gathering write: sends msgs[0..n) as n complete frames in as few writev
 * calls as possible (up to 32 frames per syscall). Returns the number of
 * payload bytes sent, counted across msgs in order, as writev(2) counts
 * bytes; a frame cut short is in progress as for lightws_stream_send(), so
 * the caller continues from the first unsent byte (with send or sendv).
 * Errors as lightws_stream_send().
 *
 * Empty messages: the count cannot show them, so an empty message is sent
 * only as msgs[0] of a call, and a call stops before any later empty one.
 * After a return of c >= 0, resume with the first message whose bytes are
 * not all counted (its data advanced by the counted ones), counting an
 * empty msgs[0] as sent and an empty later message as not sent. c may be 0
 * when only frame heads went out; WOULDBLOCK means nothing of this call
 * went out. A client masks small messages into one 16 KiB stack chunk per
 * writev; a larger message goes alone, as lightws_stream_send() sends it.
 */
ssize_t lightws_stream_sendv(struct lightws_stream *s,
                             const struct lightws_msg *msgs, size_t n);

/*
 * Sends a ping / pong with `len` <= 125 bytes of payload. The frame is
 * copied into the stream's control slot, so `data` may be reused at once.
 * Returns 0 when sent or queued (queued if a data frame is partly written
 * or the transport would block; it goes out before the next data frame or
 * with lightws_stream_flush()); LIGHTWS_ERR_WOULDBLOCK if the slot is still
 * busy with an earlier control frame; LIGHTWS_ERR_INVALID if len > 125;
 * LIGHTWS_ERR_CLOSED after a close was sent; LIGHTWS_ERR_SYSTEM. An
 * automatic pong still waiting in the slot is sent first, never dropped.
 */
int lightws_stream_ping(struct lightws_stream *s, const void *data,
                        size_t len);
int lightws_stream_pong(struct lightws_stream *s, const void *data,
                        size_t len);

/*
 * Starts the close handshake (§5.5.1, §7): sends a close frame with `code`
 * (0 for none) and a UTF-8 `reason` of up to 123 bytes. Later reads drain
 * data until the peer's close arrives (LIGHTWS_ERR_CLOSED). Returns 0 when
 * sent or queued as for ping, LIGHTWS_ERR_INVALID for a code that may not
 * be sent or a reason too long or not UTF-8 (or a reason without a code),
 * LIGHTWS_ERR_WOULDBLOCK (the slot is busy). Calling it again once a close
 * is queued or sent (ours, an echo, or the failure close) only retries
 * sending it and returns 0. An automatic pong not yet started is dropped.
 */
int lightws_stream_close(struct lightws_stream *s, unsigned code,
                         const char *reason, size_t reason_len);

/*
 * Writes a pending control frame (auto pong, queued ping or close), and
 * first the rest of the head of an empty data frame cut short; then, over
 * a lightws_io with a `flush` hook, the output the transport holds (a TLS
 * KeyUpdate answer, buffered ciphertext).
 * Returns 0 when nothing is pending any more, LIGHTWS_ERR_WOULDBLOCK,
 * LIGHTWS_ERR_BUSY if a data frame is partly written (finish it first),
 * or LIGHTWS_ERR_SYSTEM.
 */
int lightws_stream_flush(struct lightws_stream *s);

#define LIGHTWS_WANT_READ 1
#define LIGHTWS_WANT_WRITE 2
/* What the last LIGHTWS_ERR_WOULDBLOCK waits for: a set of LIGHTWS_WANT_*.
 * LIGHTWS_WANT_WRITE is also set while a control frame is pending. Over a
 * lightws_io with a `want` hook, a would-block of the transport reports
 * what the hook says (a TLS read that must write first: WRITE), and WRITE
 * is also set while the hook says the transport holds output. */
int lightws_stream_want(const struct lightws_stream *s);

/* Bytes received and not yet handed out (frames waiting in rbuf). When 0,
 * the next read call starts with a read from the transport, so an event
 * loop may wait for readability first; when not 0, read without waiting.
 * (With permessage-deflate, at least 1 while inflated bytes of a message
 * wait in zlib with rbuf empty. Over a lightws_io with a `pending` hook,
 * plus what the transport holds for the next read, e.g. decrypted TLS
 * bytes inside OpenSSL.) */
size_t lightws_stream_buffered(const struct lightws_stream *s);

/* Close code the peer sent (1005 if its close had no code, 1006 after EOF
 * without close, 0 while open). */
unsigned lightws_stream_close_code(const struct lightws_stream *s);

/* Reason the peer sent with its close (UTF-8, not NUL-terminated; valid
 * until the stream is reused); sets *len. Empty if none. */
const char *lightws_stream_close_reason(const struct lightws_stream *s,
                                        size_t *len);

/* Payload of the last pong received by the last read call (valid until
 * the next read call); sets *len; NULL if that call received none. (If a
 * tiny rbuf had to be compacted after it in the same call, it may be
 * dropped: only with rsize under about 270 bytes.) */
const uint8_t *lightws_stream_pong_data(const struct lightws_stream *s,
                                        size_t *len);

/* 1 once a close frame was sent (completely), 2 once one was also
 * received (the close handshake is complete), else 0 (also while our echo
 * of a received close is still pending). */
int lightws_stream_closing(const struct lightws_stream *s);

/* The error that failed the stream (a protocol error from a read, a
 * timeout from lightws_stream_tick(), or BAD_STATUS after a client
 * handshake the server rejected), or 0. */
int lightws_stream_error(const struct lightws_stream *s);

/* ------------------------------------------------------------------------
 * Time: handshake, idle, keepalive and close timeouts
 *
 * A stream keeps its own deadlines: no timer objects, no allocation. The
 * caller asks lightws_stream_deadline() when the stream next needs
 * attention and calls lightws_stream_tick() at (or after) that time, so
 * one timer per event loop (a wheel or heap over the caller's
 * connections) drives any number of streams. Early or extra ticks are
 * harmless: a tick acts only on what is due. Time is lightws_now():
 * CLOCK_MONOTONIC in milliseconds, never stepped by wall-clock changes.
 *
 * Control frames are only processed while reading: a pong (and so the
 * answer to a keepalive ping) is seen by a read call, never by tick(). A
 * program using keepalive must keep reading while it waits, as an event
 * loop does when it reads on readability; one that stops reading for
 * longer than ping_interval + ping_timeout fails with PING_TIMEOUT though
 * the peer answered. Likewise pings of the peer are answered only by reads.
 *
 * Blocking descriptors: with any timeout set, reads and writes of the
 * stream and the blocking wrappers (lightws_connect, lightws_accept) wait
 * in poll(2) up to the next deadline and tick there, so a blocking read
 * sends keepalive pings while it waits and fails with a timeout error
 * instead of waiting forever. A stream over lightws_io callbacks cannot be
 * waited on: its caller drives tick() (the callbacks should not block);
 * with the io's `want` hook, lightws_stream_want() tells what to poll for.
 * An io with a `wait_fd` hook (lightws-tls over a descriptor) is waited on
 * like a descriptor: blocking reads and writes tick while they wait.
 * ------------------------------------------------------------------------ */

/* Timeouts in milliseconds; 0 disables each. */
struct lightws_timeouts {
  uint32_t handshake;     /* the opening handshake, both roles, from
                             set_timeouts to open (a request or response
                             dribbled byte by byte included):
                             HANDSHAKE_TIMEOUT. It applies once a handshake
                             step has run: a stream that is open from
                             init (no handshake) has none, so a server
                             calls lightws_server_read_request() at once
                             after accept(2) (WOULDBLOCK with nothing to
                             read), as lightws_accept() does */
  uint32_t idle;          /* no byte received for this long:
                             IDLE_TIMEOUT, close 1001 sent */
  uint32_t ping_interval; /* keepalive: a ping after this long without
                             traffic in either direction (busy streams send
                             none) */
  uint32_t ping_timeout;  /* its pong must come within this long:
                             PING_TIMEOUT, close 1011 "keepalive ping
                             timeout" sent (0: pings only, never fail) */
  uint32_t close;         /* from our close (or the peer's) to the end of
                             the transport: CLOSE_TIMEOUT */
};

#define LIGHTWS_NO_DEADLINE UINT64_MAX

/* CLOCK_MONOTONIC in milliseconds (the time base of this section). */
uint64_t lightws_now(void);

/*
 * Sets the timeouts of `s` (copied; `t` may be freed) and starts their
 * clocks at `now`: the handshake timeout, if the handshake has not ended,
 * runs from `now`; idle and keepalive count from `now` too. Call after
 * lightws_stream_init() (and after choosing the descriptor's blocking mode:
 * it is read here, once, with fcntl(2)). NULL or all zero turns time off.
 * Returns 0, or LIGHTWS_ERR_INVALID if s is NULL.
 */
int lightws_stream_set_timeouts(struct lightws_stream *s,
                                const struct lightws_timeouts *t,
                                uint64_t now);

/*
 * When lightws_stream_tick() must next be called (lightws_now() time), or
 * LIGHTWS_NO_DEADLINE. Cheap (no syscall): ask after each event on the
 * stream, or keep the old value and let the early tick tell the new one.
 */
uint64_t lightws_stream_deadline(const struct lightws_stream *s);

/*
 * Acts on what is due at `now`: sends the keepalive ping (queued behind a
 * data frame in progress or a pending control frame; lightws_stream_want()
 * then has WANT_WRITE), or fails the stream with HANDSHAKE_TIMEOUT,
 * IDLE_TIMEOUT, PING_TIMEOUT (their close frame queued and sent as far as
 * the transport allows, as for a protocol error) or CLOSE_TIMEOUT; after a
 * failure every later call returns the same error and the caller closes
 * the transport. Never reads and never blocks on a nonblocking transport.
 * Returns 0 (nothing due, or a ping sent or queued) or the error.
 */
int lightws_stream_tick(struct lightws_stream *s, uint64_t now);

/* Round-trip time in microseconds of the last keepalive ping answered by
 * its own pong, 0 before the first. */
uint32_t lightws_stream_rtt(const struct lightws_stream *s);

/* ------------------------------------------------------------------------
 * Endpoint: the opening handshake over an initialized stream
 *
 * The step functions work on nonblocking transports: each returns 0 when
 * its step is done or LIGHTWS_ERR_WOULDBLOCK (see lightws_stream_want())
 * with all progress kept; call it again when ready. Request and response
 * are built and read in rbuf; bytes read past the response or request head
 * stay in rbuf for the first stream read, never dropped.
 *
 * Until the handshake succeeds, stream reads and writes return
 * LIGHTWS_ERR_INVALID, and so do they after lightws_server_reject() or a
 * failed client handshake. The client builds its request in rbuf; once it
 * is sent, only the offered protocols stay (moved to the front) and the
 * response is read after them. A step called after lightws_stream_tick()
 * failed the stream returns that timeout error. The server
 * reads the request from rbuf[0] on (bytes given to lightws_stream_feed()
 * before step 1 count as read); the response is built after the bytes
 * that followed the request.
 * ------------------------------------------------------------------------ */

/* Client options; all fields may be NULL/0. */
struct lightws_client_options {
  const char *protocols;               /* offered, "a, b" */
  const char *origin;
  const struct lightws_header *headers;/* extra request headers */
  size_t num_headers;
  size_t max_head;                     /* response head limit; 0: default */
  const struct lightws_timeouts *timeouts; /* lightws_connect(): applied
                                              at init, NULL: none */
  const struct lightws_pmd_config *deflate; /* offer permessage-deflate
                                               (NULL: do not; a build
                                               without zlib offers
                                               nothing, and start fails
                                               with UNSUPPORTED only if
                                               deflate->required) */
  void *deflate_mem;                   /* its block, caller-owned, at least
                                          lightws_pmd_mem_size(deflate)
                                          bytes, lent for the stream's life */
  size_t deflate_mem_size;
};

/* Server options of lightws_accept(); all fields may be NULL/0. */
struct lightws_server_options {
  const char *protocols;               /* ours, "a, b": the first the
                                          client offers is chosen */
  size_t max_head;                     /* request head limit; 0: default */
  const struct lightws_timeouts *timeouts; /* applied at init, NULL: none */
  const struct lightws_pmd_config *deflate; /* accept permessage-deflate
                                               (NULL: decline) */
  void *deflate_mem;                   /* as in lightws_client_options */
  size_t deflate_mem_size;
};

/*
 * Client, step 1: builds the request into rbuf (host and path as for
 * lightws_handshake_build_request; the key is drawn here) and starts
 * sending it. Copies what it needs: the arguments may be freed after the
 * call. Returns 0 when the whole request is sent, LIGHTWS_ERR_WOULDBLOCK
 * (then call lightws_client_handshake() until 0), or a build error.
 */
int lightws_client_start(struct lightws_stream *s, const char *host,
                         const char *path,
                         const struct lightws_client_options *opt);

/*
 * Client, step 2 (repeat until it returns 0): finishes sending the request,
 * reads and checks the response. On 0 the stream is open; `resp` (may be
 * NULL; set its headers/max_headers to get headers) points into rbuf and
 * is valid until the first read. Returns LIGHTWS_ERR_WOULDBLOCK, a
 * handshake error (BAD_STATUS: `resp->status` tells; HEAD_TOO_LARGE over
 * max_head; BUFFER_TOO_SMALL when rbuf cannot hold the response head),
 * LIGHTWS_ERR_EOF, LIGHTWS_ERR_SYSTEM, or the error of a timeout that
 * failed the stream. Once the request is out, only the offered protocols
 * stay in rbuf: the response may use the rest (a 256-byte rbuf completes a
 * handshake with a plain 101 response).
 */
int lightws_client_handshake(struct lightws_stream *s,
                             struct lightws_response *resp);

/*
 * After lightws_client_handshake() failed with LIGHTWS_ERR_BAD_STATUS (the
 * server answered 401, 403, a redirect...): the bytes that came after the
 * response head in the same reads, i.e. the start of its body (a short
 * body usually all of it; the rest, up to its Content-Length, is the
 * caller's to read from the transport if it wants it). A view into rbuf,
 * valid until the next call on `s`; sets *len. NULL with *len 0 in any
 * other state.
 */
const uint8_t *lightws_client_rejected_body(const struct lightws_stream *s,
                                            size_t *len);

/*
 * Blocking client handshake on a stream already initialized (CLIENT role,
 * over a descriptor or a lightws_io, e.g. a TLS layer's, with its timeouts
 * set by the caller if any): lightws_client_start() + _handshake() until
 * done (opt->deflate offered as there), waiting after each WOULDBLOCK in
 * the stream's own wait: poll(2) on its descriptor, over a lightws_io the
 * descriptor of its wait_fd hook, ticking the stream at its deadlines, so
 * its handshake timeout bounds the whole call. opt->timeouts is not
 * applied here (lightws_connect() applies it at init). `host`, `path` and
 * `opt` are copied as lightws_client_start() says; the stream and rbuf
 * stay the caller's. Returns 0 (the stream is open), an error of the two
 * steps, LIGHTWS_ERR_HANDSHAKE_TIMEOUT, or LIGHTWS_ERR_WOULDBLOCK when
 * there is nothing to wait on (a lightws_io without a wait_fd hook, or
 * without timeouts set while its descriptor was blocking, that would
 * block); the handshake then goes on with lightws_client_handshake().
 */
int lightws_connect_stream(struct lightws_stream *s, const char *host,
                           const char *path,
                           const struct lightws_client_options *opt);

/*
 * Blocking client handshake: lightws_stream_init(CLIENT) on `fd`, the
 * timeouts of `opt` (lightws_stream_set_timeouts), then
 * lightws_connect_stream(), waiting no longer than the handshake timeout.
 * Returns 0 or an error as above, or LIGHTWS_ERR_HANDSHAKE_TIMEOUT. The
 * timeouts stay set on the open stream.
 */
int lightws_connect(struct lightws_stream *s, int fd, uint8_t *rbuf,
                    size_t rsize, const char *host, const char *path,
                    const struct lightws_client_options *opt);

/*
 * Server, step 1 (repeat until it returns 0): reads the request into rbuf
 * and parses it into `req` (set req->headers/max_headers first; they may be
 * NULL/0). On 0 the request is valid and `req` points into rbuf until
 * lightws_server_accept() or lightws_server_reject(). On a handshake error
 * `req` is filled as far as parsed and the caller should reject with
 * lightws_http_status(err) (lightws_server_reject). Returns
 * LIGHTWS_ERR_WOULDBLOCK, LIGHTWS_ERR_EOF, LIGHTWS_ERR_SYSTEM, or a
 * handshake error; HEAD_TOO_LARGE when `max_head` bytes hold no complete
 * head, BUFFER_TOO_SMALL when rbuf fills up first (431 either way).
 */
int lightws_server_read_request(struct lightws_stream *s,
                                struct lightws_request *req,
                                size_t max_head);

/*
 * Server, step 2 (repeat until it returns 0): sends the 101 response for the
 * request read by step 1, with `protocol` (NULL for none; should be one the
 * client offered) and `extra` headers. The first call builds the
 * response (arguments may be freed after it); later calls only finish
 * sending. On 0 the stream is open. Returns LIGHTWS_ERR_WOULDBLOCK,
 * LIGHTWS_ERR_NOSPACE (rbuf cannot hold the response), LIGHTWS_ERR_SYSTEM.
 */
/*
 * Server, between step 1 and step 2 (optional): negotiates
 * permessage-deflate from every Sec-WebSocket-Extensions header of `req`
 * (all stored headers, or req->extensions when headers were not stored)
 * with lightws_pmd_accept(cfg). On 1 the offer is accepted:
 * lightws_server_accept() adds the response header and compression is on
 * (lightws_stream_set_deflate with `mem`) once the stream is open. 0:
 * declined (the response will not name it). Errors: LIGHTWS_ERR_INVALID
 * (not between the steps), LIGHTWS_ERR_NOSPACE (`size` below
 * lightws_pmd_mem_size(cfg)), LIGHTWS_ERR_UNSUPPORTED (no zlib).
 */
int lightws_server_deflate(struct lightws_stream *s,
                           const struct lightws_request *req,
                           const struct lightws_pmd_config *cfg, void *mem,
                           size_t size);

int lightws_server_accept(struct lightws_stream *s, const char *protocol,
                          const struct lightws_header *extra,
                          size_t num_extra);

/*
 * Server, instead of step 2 (repeat until it returns 0): sends an error
 * response with `status` (lightws_handshake_build_error), after which the
 * caller closes the descriptor. Returns as lightws_server_accept().
 */
int lightws_server_reject(struct lightws_stream *s, int status,
                          const struct lightws_header *extra,
                          size_t num_extra);

/*
 * Blocking server handshake on a stream already initialized (SERVER role,
 * over a descriptor or a lightws_io, e.g. a TLS layer's, with its timeouts
 * set by the caller if any), as lightws_accept() below describes:
 * lightws_server_read_request() into `req` (may be NULL; with opt->deflate
 * a NULL `req` still sees every Sec-WebSocket-Extensions header), then
 * lightws_server_deflate() when opt->deflate is set (RFC 7692 §5: the
 * offer accepted with opt->deflate_mem, lent for the stream's life; a bad
 * config or block is answered 500 and its error returned; without zlib the
 * offer is declined), the subprotocol chosen, lightws_server_accept().
 * Waits as lightws_connect_stream() (opt->timeouts is not applied here;
 * lightws_accept() applies it at init). `req` points into rbuf as
 * lightws_server_read_request() says. Returns 0 (the stream is open), the
 * errors of lightws_accept(), or LIGHTWS_ERR_WOULDBLOCK when there is
 * nothing to wait on (see lightws_connect_stream); the 408 of a timeout
 * goes over a lightws_io only when it has a wait_fd hook.
 */
int lightws_accept_stream(struct lightws_stream *s,
                          struct lightws_request *req,
                          const struct lightws_server_options *opt);

/*
 * Blocking server handshake: lightws_stream_init(SERVER) on `fd`, the
 * timeouts of `opt`, then lightws_accept_stream(): reads the request into
 * `req` (may be NULL), and accepts it, choosing the first client-offered subprotocol found in
 * opt->protocols ("a, b"; NULL for none; tokens compared exactly, as listed
 * in the first Sec-WebSocket-Protocol header). `opt` may be NULL. An
 * invalid request is rejected with its HTTP status (lightws_http_status():
 * 400, 405, 426 with Sec-WebSocket-Version: 13, 431) and the error is
 * returned; a client too slow for the handshake timeout gets one attempt at
 * a 408 response and HANDSHAKE_TIMEOUT is returned. The blocking wrappers
 * also work on a nonblocking descriptor: they poll(2) while it would block,
 * up to the handshake deadline.
 */
int lightws_accept(struct lightws_stream *s, int fd, uint8_t *rbuf,
                   size_t rsize, struct lightws_request *req,
                   const struct lightws_server_options *opt);

#ifdef __cplusplus
}
#endif

#endif /* LIGHTWS_H */
