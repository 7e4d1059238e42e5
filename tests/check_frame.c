/* SPDX-License-Identifier: MIT */
/* Tests of the error table and of the frame layer: head codec (RFC 6455 §5.2) and masking (§5.3). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "check_lightws.h"

/* Hot loops check with this: ck_assert marks a point through a pipe to
 * the parent process on every call, which would dominate the run time. */
#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) ck_abort_msg(__VA_ARGS__); \
  } while (0)

/* ---------------------------------------------------------------- errors */

struct err_entry {
  int value;
  const char *name;
};

static const struct err_entry all_errors[] = {
#define E(name, value, close, status, msg) {value, #name},
    LIGHTWS_ERROR_MAP(E)
#undef E
};
#define NUM_ERRORS ((int)(sizeof all_errors / sizeof all_errors[0]))

START_TEST(test_error_values_are_unique_and_negative) {
  int i, j;
  for (i = 0; i < NUM_ERRORS; i++) {
    ck_assert_int_lt(all_errors[i].value, 0);
    ck_assert_int_gt(all_errors[i].value, LIGHTWS__ERR_MIN);
    for (j = i + 1; j < NUM_ERRORS; j++)
      ck_assert_int_ne(all_errors[i].value, all_errors[j].value);
  }
}
END_TEST

START_TEST(test_error_has_name_and_message) {
  int err = all_errors[_i].value;
  const char *msg = lightws_strerror(err);
  ck_assert_str_eq(lightws_errname(err), all_errors[_i].name);
  ck_assert_ptr_nonnull(msg);
  ck_assert_int_gt((int)strlen(msg), 0);
  ck_assert_str_ne(msg, "unknown error");
  ck_assert_str_ne(msg, "success");
}
END_TEST

START_TEST(test_error_ok_and_unknown) {
  ck_assert_str_eq(lightws_strerror(0), "success");
  ck_assert_str_eq(lightws_errname(0), "OK");
  ck_assert_str_eq(lightws_strerror(-99), "unknown error");
  ck_assert_str_eq(lightws_errname(-99), "UNKNOWN");
  ck_assert_str_eq(lightws_strerror(7), "unknown error");
  ck_assert_str_eq(lightws_errname(12345), "UNKNOWN");
  ck_assert_int_eq(lightws_close_code(0), 0);
  ck_assert_int_eq(lightws_close_code(-99), 0);
  ck_assert_int_eq(lightws_http_status(0), 0);
  ck_assert_int_eq(lightws_http_status(-99), 0);
}
END_TEST

START_TEST(test_error_names_match_enum) {
  ck_assert_str_eq(lightws_errname(LIGHTWS_ERR_UTF8), "UTF8");
  ck_assert_str_eq(lightws_errname(LIGHTWS_ERR_INCOMPLETE), "INCOMPLETE");
  ck_assert_str_eq(lightws_errname(LIGHTWS_ERR_HEADER_INJECTION),
                   "HEADER_INJECTION");
  ck_assert_str_eq(lightws_strerror(LIGHTWS_ERR_UTF8), "invalid UTF-8 in text");
  ck_assert_int_eq(LIGHTWS_ERR_INCOMPLETE, -1);
  ck_assert_int_eq(LIGHTWS_ERR_UTF8, -40);
}
END_TEST

/* §7.4.1: peer errors map to 1002 (protocol), 1007 (data), 1009 (size). */
START_TEST(test_error_close_codes_by_group) {
  int i;
  for (i = 0; i < NUM_ERRORS; i++) {
    int v = all_errors[i].value, cc = lightws_close_code(v);
    if (v == LIGHTWS_ERR_EOF)
      ck_assert_int_eq(cc, 1006);
    else if (v == LIGHTWS_ERR_UTF8 || v == LIGHTWS_ERR_BAD_DEFLATE)
      ck_assert_int_eq(cc, 1007);
    else if (v == LIGHTWS_ERR_FRAME_TOO_BIG || v == LIGHTWS_ERR_MESSAGE_TOO_BIG)
      ck_assert_int_eq(cc, 1009);
    else if (v == LIGHTWS_ERR_IDLE_TIMEOUT) /* we go away */
      ck_assert_int_eq(cc, 1001);
    else if (v == LIGHTWS_ERR_PING_TIMEOUT) /* as python websockets */
      ck_assert_int_eq(cc, 1011);
    else if (v == LIGHTWS_ERR_EXTENSION_DECLINED) /* §7.4.1: 1010 */
      ck_assert_int_eq(cc, 1010);
    else if (v <= -20 && v > -60)
      ck_assert_int_eq(cc, 1002);
    else
      ck_assert_int_eq(cc, 0);
  }
}
END_TEST

/* §4.2.1 and the table: handshake errors carry the HTTP status to answer. */
START_TEST(test_error_http_status_by_group) {
  int i;
  for (i = 0; i < NUM_ERRORS; i++) {
    int v = all_errors[i].value, st = lightws_http_status(v);
    if (v == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) ck_assert_int_eq(st, 408);
    else if (v == LIGHTWS_ERR_BUFFER_TOO_SMALL) ck_assert_int_eq(st, 431);
    else if (v > -60 || v <= -70) ck_assert_int_eq(st, 0);
    else ck_assert(st == 400 || st == 405 || st == 426 || st == 431);
  }
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_BAD_VERSION), 426);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HTTP_METHOD), 405);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HEAD_TOO_LARGE), 431);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_NO_HOST), 400);
}
END_TEST

/* §7.4.1 and §7.4.2, with IANA's 1012-1014. */
START_TEST(test_close_code_valid_ranges) {
  static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                   1010, 1011, 1012, 1013, 1014, 3000, 3999,
                                   4000, 4999};
  static const unsigned invalid[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016,
                                     1100, 2000, 2999, 5000, 5001, 65535,
                                     65536, 0xFFFFFFFFu};
  unsigned c, n = 0;
  size_t i;
  for (i = 0; i < sizeof valid / sizeof valid[0]; i++)
    ck_assert_msg(lightws_close_code_valid(valid[i]) == 1, "%u", valid[i]);
  for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
    ck_assert_msg(lightws_close_code_valid(invalid[i]) == 0, "%u", invalid[i]);
  for (c = 0; c < 70000; c++) n += (unsigned)lightws_close_code_valid(c);
  ck_assert_uint_eq(n, 12 + 2000); /* 1000-1014 minus 3, plus 3000-4999 */
  ck_assert_int_eq(lightws_close_code_valid(LIGHTWS_CLOSE_NO_STATUS), 0);
  ck_assert_int_eq(lightws_close_code_valid(LIGHTWS_CLOSE_ABNORMAL), 0);
  ck_assert_int_eq(lightws_close_code_valid(LIGHTWS_CLOSE_TLS_HANDSHAKE), 0);
}
END_TEST

START_TEST(test_version_matches_header) {
  ck_assert_str_eq(lightws_version(), LIGHTWS_VERSION_STRING);
}
END_TEST

Suite *error_suite(void) {
  Suite *s = suite_create("error");
  TCase *tc = tcase_create("table");
  tcase_add_test(tc, test_error_values_are_unique_and_negative);
  tcase_add_loop_test(tc, test_error_has_name_and_message, 0, NUM_ERRORS);
  tcase_add_test(tc, test_error_ok_and_unknown);
  tcase_add_test(tc, test_error_names_match_enum);
  tcase_add_test(tc, test_error_close_codes_by_group);
  tcase_add_test(tc, test_error_http_status_by_group);
  tcase_add_test(tc, test_version_matches_header);
  suite_add_tcase(s, tc);
  tc = tcase_create("close codes");
  tcase_add_test(tc, test_close_code_valid_ranges);
  suite_add_tcase(s, tc);
  return s;
}

/* ----------------------------------------------------------- frame heads */

/* Decodes from an exact-size heap copy, so a read past `len` is caught by
 * AddressSanitizer and valgrind. */
static ssize_t decode_exact(struct lightws_frame *f, const uint8_t *in,
                            size_t len, unsigned flags) {
  uint8_t *copy = malloc(len ? len : 1);
  ssize_t n;
  if (copy == NULL) ck_abort_msg("out of memory");
  if (len) memcpy(copy, in, len);
  n = lightws_frame_decode(f, copy, len, flags);
  free(copy);
  return n;
}

/* §5.7 examples: the whole frame, its head size and what it decodes to. */
struct rfc_frame {
  const char *what;
  uint8_t bytes[16];
  size_t head;
  uint8_t fin, opcode, masked;
  uint64_t length;
  const char *payload; /* unmasked payload, when it is in `bytes` */
};

static const struct rfc_frame rfc_frames[] = {
    {"unmasked text Hello", {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 2, 1, 1, 0, 5, "Hello"},
    {"masked text Hello",
     {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, 6, 1, 1, 1, 5, "Hello"},
    {"fragment Hel", {0x01, 0x03, 'H', 'e', 'l'}, 2, 0, 1, 0, 3, "Hel"},
    {"fragment lo", {0x80, 0x02, 'l', 'o'}, 2, 1, 0, 0, 2, "lo"},
    {"unmasked ping Hello", {0x89, 0x05, 'H', 'e', 'l', 'l', 'o'}, 2, 1, 9, 0, 5, "Hello"},
    {"masked pong Hello",
     {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}, 6, 1, 10, 1, 5, "Hello"},
    {"256-byte binary", {0x82, 0x7E, 0x01, 0x00}, 4, 1, 2, 0, 256, NULL},
    {"64 KiB binary", {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, 10, 1, 2, 0, 65536, NULL},
};
#define NUM_RFC_FRAMES ((int)(sizeof rfc_frames / sizeof rfc_frames[0]))

START_TEST(test_decode_rfc_example) {
  const struct rfc_frame *r = &rfc_frames[_i];
  size_t total = r->head + (r->payload ? strlen(r->payload) : 0);
  struct lightws_frame f;
  uint8_t payload[8];
  memset(&f, 0xAA, sizeof f);
  ck_assert_int_eq(decode_exact(&f, r->bytes, total, 0), (ssize_t)r->head);
  ck_assert_uint_eq(f.fin, r->fin);
  ck_assert_uint_eq(f.opcode, r->opcode);
  ck_assert_uint_eq(f.masked, r->masked);
  ck_assert_uint_eq(f.rsv, 0);
  ck_assert_uint_eq(f.length, r->length);
  ck_assert_uint_eq(f.header_len, r->head);
  if (r->masked) {
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    ck_assert_mem_eq(f.mask, key, 4);
  }
  if (r->payload) {
    memcpy(payload, r->bytes + r->head, (size_t)f.length);
    if (f.masked) lightws_mask(payload, (size_t)f.length, f.mask, 0);
    ck_assert_mem_eq(payload, r->payload, (size_t)f.length);
  }
  /* the head alone decodes the same (the payload is never needed) */
  ck_assert_int_eq(decode_exact(&f, r->bytes, r->head, 0), (ssize_t)r->head);
}
END_TEST

START_TEST(test_encode_rfc_example) {
  const struct rfc_frame *r = &rfc_frames[_i];
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX + 8];
  memset(&f, 0, sizeof f);
  f.fin = r->fin;
  f.opcode = r->opcode;
  f.masked = r->masked;
  f.length = r->length;
  if (r->masked) memcpy(f.mask, r->bytes + r->head - 4, 4);
  memset(out, 0xEE, sizeof out);
  ck_assert_uint_eq(lightws_frame_encode_unchecked(&f, out), r->head);
  ck_assert_mem_eq(out, r->bytes, r->head);
  ck_assert_uint_eq(out[r->head], 0xEE);
  memset(out, 0xEE, sizeof out);
  ck_assert_int_eq(lightws_frame_encode(&f, out, r->head), (ssize_t)r->head);
  ck_assert_mem_eq(out, r->bytes, r->head);
  ck_assert_uint_eq(out[r->head], 0xEE);
  ck_assert_uint_eq(lightws_frame_header_size(r->length, r->masked), r->head);
  if (r->payload) { /* masking the payload reproduces the wire bytes */
    uint8_t p[8];
    size_t n = strlen(r->payload);
    memcpy(p, r->payload, n);
    lightws_mask(p, n, f.mask, 0);
    ck_assert_mem_eq(p, r->bytes + r->head, n);
  }
}
END_TEST

/* Every length boundary of §5.2, masked and not. */
static const uint64_t boundary_lengths[] = {
    0, 1, 125, 126, 127, 65535, 65536, 0xFFFFFFFFull, 0x100000000ull,
    0x7FFFFFFFFFFFFFFFull};
#define NUM_BOUNDARIES ((int)(sizeof boundary_lengths / sizeof boundary_lengths[0]))

static size_t expected_head(uint64_t len, int masked) {
  return (len < 126 ? 2u : len < 65536 ? 4u : 10u) + (masked ? 4u : 0u);
}

START_TEST(test_length_boundary_round_trip) {
  uint64_t len = boundary_lengths[_i / 2];
  int masked = _i % 2;
  struct lightws_frame f, g;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  size_t head = expected_head(len, masked);
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = LIGHTWS_OPCODE_BINARY;
  f.masked = (uint8_t)masked;
  f.length = len;
  memcpy(f.mask, "\x01\x02\x03\x04", 4);
  ck_assert_uint_eq(lightws_frame_header_size(len, masked), head);
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), (ssize_t)head);
  ck_assert_uint_eq(out[1] & 0x80, masked ? 0x80 : 0);
  ck_assert_uint_eq(out[1] & 0x7F, len < 126 ? len : len < 65536 ? 126 : 127);
  memset(&g, 0xAA, sizeof g);
  ck_assert_int_eq(decode_exact(&g, out, head,
                                masked ? LIGHTWS_DECODE_EXPECT_MASKED
                                       : LIGHTWS_DECODE_EXPECT_UNMASKED),
                   (ssize_t)head);
  ck_assert_uint_eq(g.length, len);
  ck_assert_uint_eq(g.fin, 1);
  ck_assert_uint_eq(g.opcode, LIGHTWS_OPCODE_BINARY);
  ck_assert_uint_eq(g.masked, masked);
  ck_assert_uint_eq(g.header_len, head);
  if (masked) ck_assert_mem_eq(g.mask, "\x01\x02\x03\x04", 4);
}
END_TEST

START_TEST(test_encode_writes_big_endian_lengths) {
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  static const uint8_t big[] = {0x82, 0x7F, 0x01, 0x23, 0x45, 0x67,
                                0x89, 0xAB, 0xCD, 0xEF};
  static const uint8_t mid[] = {0x02, 0xFE, 0xAB, 0xCD, 9, 8, 7, 6};
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = 2;
  f.length = 0x0123456789ABCDEFull;
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), 10);
  ck_assert_mem_eq(out, big, 10);
  f.fin = 0;
  f.length = 0xABCD;
  f.masked = 1;
  memcpy(f.mask, "\x09\x08\x07\x06", 4);
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), 8);
  ck_assert_mem_eq(out, mid, 8);
}
END_TEST

START_TEST(test_encode_rsv_bits_and_fin) {
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.rsv = 0x40;
  f.opcode = LIGHTWS_OPCODE_TEXT;
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), 2);
  ck_assert_uint_eq(out[0], 0xC1);
  f.rsv = 0x70;
  f.fin = 0;
  f.opcode = LIGHTWS_OPCODE_CONTINUATION;
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), 2);
  ck_assert_uint_eq(out[0], 0x70);
  /* unchecked writes what it is given, within the fields' bits */
  f.opcode = 0x3;
  f.fin = 1;
  f.rsv = 0;
  ck_assert_uint_eq(lightws_frame_encode_unchecked(&f, out), 2);
  ck_assert_uint_eq(out[0], 0x83);
}
END_TEST

/* Checked encode: each size below the head size is NOSPACE. */
START_TEST(test_encode_nospace_for_each_short_size) {
  uint64_t len = boundary_lengths[_i / 2];
  int masked = _i % 2;
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX + 1];
  size_t head = expected_head(len, masked), size;
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = LIGHTWS_OPCODE_TEXT;
  f.masked = (uint8_t)masked;
  f.length = len;
  for (size = 0; size < head; size++) {
    memset(out, 0xEE, sizeof out);
    ck_assert_int_eq(lightws_frame_encode(&f, out, size), LIGHTWS_ERR_NOSPACE);
    ck_assert_uint_eq(out[0], 0xEE);
  }
  ck_assert_int_eq(lightws_frame_encode(&f, out, head), (ssize_t)head);
}
END_TEST

struct bad_encode {
  const char *what;
  uint8_t fin, rsv, opcode, masked;
  uint64_t length;
};

static const struct bad_encode bad_encodes[] = {
    {"reserved opcode 3", 1, 0, 3, 0, 0},
    {"reserved opcode 7", 1, 0, 7, 0, 0},
    {"reserved opcode 0xB", 1, 0, 0xB, 0, 0},
    {"reserved opcode 0xF", 1, 0, 0xF, 0, 0},
    {"opcode out of range", 1, 0, 0x11, 0, 0},
    {"fragmented ping", 0, 0, 9, 0, 0},
    {"fragmented close", 0, 0, 8, 0, 2},
    {"ping of 126 bytes", 1, 0, 9, 0, 126},
    {"pong of 65536 bytes", 1, 0, 10, 1, 65536},
    {"length top bit", 1, 0, 2, 0, 0x8000000000000000ull},
    {"fin of 2", 2, 0, 1, 0, 0},
    {"masked of 2", 1, 0, 1, 2, 0},
    {"rsv outside 0x70", 1, 0x80, 1, 0, 0},
    {"rsv low bits", 1, 0x01, 1, 0, 0},
};
#define NUM_BAD_ENCODES ((int)(sizeof bad_encodes / sizeof bad_encodes[0]))

START_TEST(test_encode_rejects_invalid_frame) {
  const struct bad_encode *b = &bad_encodes[_i];
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  memset(&f, 0, sizeof f);
  f.fin = b->fin;
  f.rsv = b->rsv;
  f.opcode = b->opcode;
  f.masked = b->masked;
  f.length = b->length;
  ck_assert_msg(lightws_frame_encode(&f, out, sizeof out) == LIGHTWS_ERR_INVALID,
                "%s", b->what);
}
END_TEST

START_TEST(test_encode_accepts_control_of_125_bytes) {
  struct lightws_frame f;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = LIGHTWS_OPCODE_CLOSE;
  f.length = LIGHTWS_CONTROL_MAX;
  ck_assert_int_eq(lightws_frame_encode(&f, out, sizeof out), 2);
  ck_assert_uint_eq(out[0], 0x88);
  ck_assert_uint_eq(out[1], 125);
}
END_TEST

/* Heads the decoder must reject, with the shortest input that shows it. */
struct bad_head {
  const char *what;
  uint8_t bytes[14];
  size_t len;
  unsigned flags;
  int err;
};

static const struct bad_head bad_heads[] = {
    {"opcode 3", {0x83}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 4", {0x84}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 5", {0x85}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 6", {0x86}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 7", {0x87}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 0xB", {0x8B}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 0xC", {0x8C}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 0xD", {0x8D}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 0xE", {0x8E}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"opcode 0xF", {0x0F}, 1, 0, LIGHTWS_ERR_RESERVED_OPCODE},
    {"RSV1", {0xC1}, 1, 0, LIGHTWS_ERR_RESERVED_BITS},
    {"RSV2", {0xA1}, 1, 0, LIGHTWS_ERR_RESERVED_BITS},
    {"RSV3", {0x91}, 1, 0, LIGHTWS_ERR_RESERVED_BITS},
    {"RSV2 with only RSV1 allowed", {0xA2}, 1, LIGHTWS_DECODE_ALLOW_RSV1,
     LIGHTWS_ERR_RESERVED_BITS},
    {"RSV1 with RSV2 and RSV3 allowed", {0xC2}, 1,
     LIGHTWS_DECODE_ALLOW_RSV2 | LIGHTWS_DECODE_ALLOW_RSV3, LIGHTWS_ERR_RESERVED_BITS},
    {"RSV3 with RSV1 and RSV2 allowed", {0x92}, 1,
     LIGHTWS_DECODE_ALLOW_RSV1 | LIGHTWS_DECODE_ALLOW_RSV2, LIGHTWS_ERR_RESERVED_BITS},
    {"fragmented ping", {0x09}, 1, 0, LIGHTWS_ERR_FRAGMENTED_CONTROL},
    {"fragmented pong", {0x0A}, 1, 0, LIGHTWS_ERR_FRAGMENTED_CONTROL},
    {"fragmented close", {0x08}, 1, 0, LIGHTWS_ERR_FRAGMENTED_CONTROL},
    {"ping with 16-bit length", {0x89, 0x7E}, 2, 0, LIGHTWS_ERR_CONTROL_TOO_LONG},
    {"close with 64-bit length", {0x88, 0x7F}, 2, 0, LIGHTWS_ERR_CONTROL_TOO_LONG},
    {"masked pong with 16-bit length", {0x8A, 0xFE}, 2, 0, LIGHTWS_ERR_CONTROL_TOO_LONG},
    {"64-bit length top bit", {0x82, 0x7F, 0x80}, 3, 0, LIGHTWS_ERR_LENGTH_TOP_BIT},
    {"64-bit length all ones", {0x82, 0xFF, 0xFF}, 3, 0, LIGHTWS_ERR_LENGTH_TOP_BIT},
    {"16-bit length 0", {0x82, 0x7E, 0x00, 0x00}, 4, 0, LIGHTWS_ERR_NONMINIMAL_LENGTH},
    {"16-bit length 125", {0x82, 0x7E, 0x00, 0x7D}, 4, 0, LIGHTWS_ERR_NONMINIMAL_LENGTH},
    {"masked 16-bit length 5", {0x82, 0xFE, 0x00, 0x05}, 4, 0,
     LIGHTWS_ERR_NONMINIMAL_LENGTH},
    /* a 64-bit length is non-minimal once bytes 2..7 are all zero */
    {"64-bit length 0", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0}, 8, 0,
     LIGHTWS_ERR_NONMINIMAL_LENGTH},
    {"64-bit length 65535", {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 8, 0,
     LIGHTWS_ERR_NONMINIMAL_LENGTH},
    {"masked 64-bit length 126", {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 126}, 8, 0,
     LIGHTWS_ERR_NONMINIMAL_LENGTH},
    {"unmasked frame to a server", {0x81, 0x00}, 2, LIGHTWS_DECODE_EXPECT_MASKED,
     LIGHTWS_ERR_MASK_REQUIRED},
    {"masked frame to a client", {0x81, 0x80}, 2, LIGHTWS_DECODE_EXPECT_UNMASKED,
     LIGHTWS_ERR_MASK_UNEXPECTED},
    {"unmasked ping to a server", {0x89, 0x05}, 2, LIGHTWS_DECODE_EXPECT_MASKED,
     LIGHTWS_ERR_MASK_REQUIRED},
};
#define NUM_BAD_HEADS ((int)(sizeof bad_heads / sizeof bad_heads[0]))

/* The error shows with exactly the bytes that reveal it, and stays with
 * more bytes after them. */
START_TEST(test_decode_rejects_bad_head) {
  const struct bad_head *b = &bad_heads[_i];
  struct lightws_frame f;
  uint8_t buf[LIGHTWS_FRAME_HEADER_MAX];
  size_t n;
  memcpy(buf, b->bytes, sizeof buf);
  for (n = 0; n < b->len; n++) {
    ssize_t r = decode_exact(&f, buf, n, b->flags);
    ck_assert_msg(r == LIGHTWS_ERR_INCOMPLETE, "%s: prefix %zu gave %zd", b->what,
                  n, r);
  }
  for (n = b->len; n <= sizeof buf; n++) {
    ssize_t r = decode_exact(&f, buf, n, b->flags);
    ck_assert_msg(r == b->err, "%s: %zu bytes gave %s, want %s", b->what, n,
                  lightws_errname((int)r), lightws_errname(b->err));
  }
}
END_TEST

START_TEST(test_decode_accepts_nonminimal_with_flag) {
  static const uint8_t h16[] = {0x82, 0x7E, 0x00, 0x7D};
  static const uint8_t h64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  static const uint8_t h64m[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4};
  struct lightws_frame f;
  size_t n;
  ck_assert_int_eq(decode_exact(&f, h16, 4, LIGHTWS_DECODE_ALLOW_NONMINIMAL), 4);
  ck_assert_uint_eq(f.length, 125);
  ck_assert_int_eq(decode_exact(&f, h64, 10, LIGHTWS_DECODE_ALLOW_NONMINIMAL), 10);
  ck_assert_uint_eq(f.length, 65535);
  for (n = 0; n < sizeof h64m; n++)
    ck_assert_int_eq(decode_exact(&f, h64m, n, LIGHTWS_DECODE_ALLOW_NONMINIMAL),
                     LIGHTWS_ERR_INCOMPLETE);
  ck_assert_int_eq(decode_exact(&f, h64m, 14, LIGHTWS_DECODE_ALLOW_NONMINIMAL), 14);
  ck_assert_uint_eq(f.length, 3);
  ck_assert_mem_eq(f.mask, "\x01\x02\x03\x04", 4);
}
END_TEST

START_TEST(test_decode_accepts_allowed_rsv_bits) {
  static const uint8_t rsv1[] = {0xC1, 0x00}, rsv2[] = {0xA2, 0x00},
                       rsv3[] = {0x90, 0x00}, all[] = {0x71, 0x00};
  struct lightws_frame f;
  ck_assert_int_eq(decode_exact(&f, rsv1, 2, LIGHTWS_DECODE_ALLOW_RSV1), 2);
  ck_assert_uint_eq(f.rsv, 0x40);
  ck_assert_int_eq(decode_exact(&f, rsv2, 2, LIGHTWS_DECODE_ALLOW_RSV2), 2);
  ck_assert_uint_eq(f.rsv, 0x20);
  ck_assert_int_eq(decode_exact(&f, rsv3, 2, LIGHTWS_DECODE_ALLOW_RSV3), 2);
  ck_assert_uint_eq(f.rsv, 0x10);
  ck_assert_uint_eq(f.fin, 1);
  ck_assert_uint_eq(f.opcode, 0);
  ck_assert_int_eq(decode_exact(&f, all, 2,
                                LIGHTWS_DECODE_ALLOW_RSV1 | LIGHTWS_DECODE_ALLOW_RSV2 |
                                    LIGHTWS_DECODE_ALLOW_RSV3),
                   2);
  ck_assert_uint_eq(f.rsv, 0x70);
  ck_assert_uint_eq(f.fin, 0);
}
END_TEST

START_TEST(test_decode_mask_bit_checked_only_with_flags) {
  static const uint8_t unmasked[] = {0x82, 0x01}, masked[] = {0x82, 0x81, 1, 2, 3, 4};
  struct lightws_frame f;
  ck_assert_int_eq(decode_exact(&f, unmasked, 2, 0), 2);
  ck_assert_uint_eq(f.masked, 0);
  ck_assert_int_eq(decode_exact(&f, masked, 6, 0), 6);
  ck_assert_uint_eq(f.masked, 1);
  ck_assert_int_eq(decode_exact(&f, unmasked, 2, LIGHTWS_DECODE_EXPECT_UNMASKED), 2);
  ck_assert_int_eq(decode_exact(&f, masked, 6, LIGHTWS_DECODE_EXPECT_MASKED), 6);
}
END_TEST

START_TEST(test_decode_control_of_125_bytes) {
  static const uint8_t h[] = {0x88, 0xFD, 9, 9, 9, 9};
  struct lightws_frame f;
  ck_assert_int_eq(decode_exact(&f, h, 6, LIGHTWS_DECODE_EXPECT_MASKED), 6);
  ck_assert_uint_eq(f.length, 125);
  ck_assert_uint_eq(f.opcode, LIGHTWS_OPCODE_CLOSE);
}
END_TEST

START_TEST(test_decode_empty_input_is_incomplete) {
  struct lightws_frame f;
  f.header_len = 99;
  ck_assert_int_eq(lightws_frame_decode(&f, NULL, 0, 0), LIGHTWS_ERR_INCOMPLETE);
  ck_assert_uint_eq(f.header_len, 2);
}
END_TEST

/* Every head shape fed one byte at a time: each prefix is INCOMPLETE and
 * says how many bytes the head needs as far as known, then it decodes. */
START_TEST(test_decode_one_byte_at_a_time) {
  uint64_t len = boundary_lengths[_i / 2];
  int masked = _i % 2;
  struct lightws_frame f, g;
  uint8_t out[LIGHTWS_FRAME_HEADER_MAX];
  size_t head = expected_head(len, masked), n;
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = LIGHTWS_OPCODE_TEXT;
  f.masked = (uint8_t)masked;
  f.length = len;
  memcpy(f.mask, "\xA1\xB2\xC3\xD4", 4);
  ck_assert_uint_eq(lightws_frame_encode_unchecked(&f, out), head);
  for (n = 0; n < head; n++) {
    memset(&g, 0, sizeof g);
    ck_assert_int_eq(decode_exact(&g, out, n, 0), LIGHTWS_ERR_INCOMPLETE);
    ck_assert_uint_eq(g.header_len, n < 2 ? 2 : head);
    ck_assert_uint_gt(g.header_len, n);
  }
  ck_assert_int_eq(decode_exact(&g, out, head, 0), (ssize_t)head);
  ck_assert_uint_eq(g.length, len);
  if (masked) ck_assert_mem_eq(g.mask, f.mask, 4);
}
END_TEST

/* Every valid byte 0 with every byte 1: decode agrees with a plain reading
 * of §5.2 (a reference decoder written from the RFC's figure). */
START_TEST(test_decode_all_two_byte_heads) {
  unsigned b0 = (unsigned)_i, b1;
  for (b1 = 0; b1 < 256; b1++) {
    uint8_t in[LIGHTWS_FRAME_HEADER_MAX] = {0};
    struct lightws_frame f;
    unsigned op = b0 & 15, lc = b1 & 127;
    int want;
    ssize_t r;
    in[0] = (uint8_t)b0;
    in[1] = (uint8_t)b1;
    in[2] = 0x01; /* a minimal 16-bit (256+) or 64-bit length (2^56+) */
    if ((op >= 3 && op <= 7) || op >= 11) want = LIGHTWS_ERR_RESERVED_OPCODE;
    else if (b0 & 0x70) want = LIGHTWS_ERR_RESERVED_BITS;
    else if (op >= 8 && !(b0 & 0x80)) want = LIGHTWS_ERR_FRAGMENTED_CONTROL;
    else if (op >= 8 && lc > 125) want = LIGHTWS_ERR_CONTROL_TOO_LONG;
    else want = (int)(2 + (lc == 126 ? 2 : lc == 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0));
    r = decode_exact(&f, in, sizeof in, 0);
    CHECK(r == want, "%02x %02x: %zd want %d", b0, b1, r, want);
    if (want > 0) {
      CHECK(f.length == (lc < 126 ? lc : lc == 126 ? 0x0100 : 0x0100000000000000ull) &&
                f.fin == b0 >> 7 && f.opcode == op && f.masked == b1 >> 7 &&
                f.header_len == want,
            "%02x %02x: fields", b0, b1);
    }
  }
}
END_TEST

/* A decoder written from the §5.2 figure, field by field, for 14 bytes. */
static int reference_decode(const uint8_t *in, unsigned flags, uint64_t *length) {
  unsigned op = in[0] & 15, rsv = in[0] & 0x70, fin = in[0] >> 7;
  unsigned masked = in[1] >> 7, lc = in[1] & 127, allowed = 0, i;
  if (flags & LIGHTWS_DECODE_ALLOW_RSV1) allowed |= 0x40;
  if (flags & LIGHTWS_DECODE_ALLOW_RSV2) allowed |= 0x20;
  if (flags & LIGHTWS_DECODE_ALLOW_RSV3) allowed |= 0x10;
  if ((op >= 3 && op <= 7) || op >= 11) return LIGHTWS_ERR_RESERVED_OPCODE;
  if (rsv & ~allowed) return LIGHTWS_ERR_RESERVED_BITS;
  if (op >= 8 && !fin) return LIGHTWS_ERR_FRAGMENTED_CONTROL;
  if (op >= 8 && lc > 125) return LIGHTWS_ERR_CONTROL_TOO_LONG;
  if ((flags & LIGHTWS_DECODE_EXPECT_MASKED) && !masked) return LIGHTWS_ERR_MASK_REQUIRED;
  if ((flags & LIGHTWS_DECODE_EXPECT_UNMASKED) && masked)
    return LIGHTWS_ERR_MASK_UNEXPECTED;
  *length = 0;
  if (lc == 126) {
    *length = (uint64_t)in[2] * 256 + in[3];
    if (*length < 126 && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL))
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
    return (int)(4 + 4 * masked);
  }
  if (lc == 127) {
    for (i = 0; i < 8; i++) *length = *length * 256 + in[2 + i];
    if (in[2] & 0x80) return LIGHTWS_ERR_LENGTH_TOP_BIT;
    if (*length < 65536 && !(flags & LIGHTWS_DECODE_ALLOW_NONMINIMAL))
      return LIGHTWS_ERR_NONMINIMAL_LENGTH;
    return (int)(10 + 4 * masked);
  }
  *length = lc;
  return (int)(2 + 4 * masked);
}

static uint64_t head_rng = 12345;
static unsigned head_rand(void) {
  head_rng = head_rng * 6364136223846793005ull + 1442695040888963407ull;
  return (unsigned)(head_rng >> 33);
}

/* Random heads and flags, lengths biased to the 126/127 forms and to the
 * minimal-form boundaries: decoding with the whole 14 bytes and with just
 * the head (two code paths inside) agree with the reference. */
START_TEST(test_decode_random_heads_against_reference) {
  static const unsigned flag_bits[] = {
      LIGHTWS_DECODE_EXPECT_MASKED, LIGHTWS_DECODE_EXPECT_UNMASKED,
      LIGHTWS_DECODE_ALLOW_RSV1, LIGHTWS_DECODE_ALLOW_RSV2,
      LIGHTWS_DECODE_ALLOW_RSV3, LIGHTWS_DECODE_ALLOW_NONMINIMAL};
  long n, cases = getenv("LIGHTWS_TEST_QUICK") ? 20000 : 300000;
  int seen_ok = 0;
  for (n = 0; n < cases; n++) {
    uint8_t in[LIGHTWS_FRAME_HEADER_MAX];
    struct lightws_frame f, g;
    unsigned flags = 0, i, r = head_rand();
    uint64_t length = 0;
    int want;
    ssize_t got;
    for (i = 0; i < 6; i++)
      if (head_rand() % 4 == 0) flags |= flag_bits[i];
    for (i = 0; i < sizeof in; i++) in[i] = (uint8_t)head_rand();
    in[0] = (uint8_t)((r & 1 ? 0x80 : 0) | (r & 2 ? in[0] & 0x70 : 0) | (in[0] & 15));
    if (r & 4) in[1] = (uint8_t)((in[1] & 0x80) | (126 + (r >> 3 & 1)));
    for (i = 2; i < 10; i++)
      if (head_rand() % 3 == 0) in[i] = 0; /* leading zero bytes */
    want = reference_decode(in, flags, &length);
    got = lightws_frame_decode(&f, in, sizeof in, flags);
    CHECK(got == want, "case %ld: %s, want %s", n, lightws_errname((int)got),
          lightws_errname(want));
    if (want < 0) continue;
    seen_ok++;
    CHECK(f.length == length && f.header_len == want && f.fin == in[0] >> 7 &&
              f.rsv == (in[0] & 0x70) && f.opcode == (in[0] & 15) &&
              f.masked == in[1] >> 7,
          "case %ld: fields", n);
    /* an unmasked frame gets the all-zero key: lightws_mask() is then a no-op */
    CHECK(memcmp(f.mask, f.masked ? in + want - 4 : (const uint8_t *)"\0\0\0\0", 4) == 0,
          "case %ld: key", n);
    memset(&g, 0x55, sizeof g);
    CHECK(decode_exact(&g, in, (size_t)want, flags) == want, "case %ld: exact", n);
    CHECK(g.length == f.length && g.header_len == f.header_len && g.fin == f.fin &&
              g.rsv == f.rsv && g.opcode == f.opcode && g.masked == f.masked &&
              memcmp(g.mask, f.mask, 4) == 0,
          "case %ld: exact fields", n);
  }
  ck_assert_int_gt(seen_ok, cases / 20);
}
END_TEST

/* The inline decoder (lightws.h) and the out-of-line one FFI users call
 * give the same result, fields and header_len on every prefix of random
 * heads (biased as above) under every flag set. */
START_TEST(test_decode_inline_matches_full) {
  long n, cases = getenv("LIGHTWS_TEST_QUICK") ? 5000 : 60000;
  for (n = 0; n < cases; n++) {
    uint8_t in[LIGHTWS_FRAME_HEADER_MAX];
    unsigned flags = head_rand() & 0xF3u, i, r = head_rand();
    size_t len;
    for (i = 0; i < sizeof in; i++) in[i] = (uint8_t)head_rand();
    if (r & 1) in[0] = (uint8_t)(in[0] & 0x8F); /* mostly no RSV bit */
    if (r & 2) in[0] = (uint8_t)((in[0] & 0x80) | (r >> 8) % 3); /* data */
    if (r & 4) in[1] = (uint8_t)((in[1] & 0x80) | (126 + (r >> 3 & 1)));
    for (i = 2; i < 10; i++)
      if (head_rand() % 3 == 0) in[i] = 0;
    for (len = 0; len <= sizeof in; len++) {
      struct lightws_frame f, g;
      ssize_t a, b;
      memset(&f, 0x55, sizeof f);
      memset(&g, 0x55, sizeof g);
      a = lightws_frame_decode(&f, len ? in : NULL, len, flags);
      b = lightws_frame_decode_full(&g, len ? in : NULL, len, flags);
      CHECK(a == b, "case %ld len %zu: inline %s, full %s", n, len,
            lightws_errname((int)a), lightws_errname((int)b));
      if (a == LIGHTWS_ERR_INCOMPLETE)
        CHECK(f.header_len == g.header_len, "case %ld len %zu: header_len", n, len);
      if (a < 0) continue;
      CHECK(f.length == g.length && f.header_len == g.header_len &&
                f.fin == g.fin && f.rsv == g.rsv && f.opcode == g.opcode &&
                f.masked == g.masked && memcmp(f.mask, g.mask, 4) == 0,
            "case %ld len %zu: fields", n, len);
    }
  }
}
END_TEST

/* ---------------------------------------------------------------- masking */

static void mask_reference(uint8_t *buf, size_t len, const uint8_t key[4],
                           uint64_t offset) {
  size_t i;
  for (i = 0; i < len; i++) buf[i] ^= key[(offset + i) % 4];
}

static void fill_pattern(uint8_t *p, size_t len, unsigned seed) {
  size_t i;
  for (i = 0; i < len; i++) p[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 8));
}

static const uint8_t test_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Lengths 0..300 at every alignment 0..15 and offset 0..7, with guard
 * bytes around the buffer. _i is the alignment. */
START_TEST(test_mask_matches_reference_at_every_alignment) {
  enum { MAXLEN = 300, GUARD = 32 };
  static uint8_t raw[MAXLEN + 2 * GUARD + 16] __attribute__((aligned(64)));
  uint8_t want[MAXLEN];
  size_t align = (size_t)_i, len;
  unsigned offset;
  for (len = 0; len <= MAXLEN; len++) {
    for (offset = 0; offset < 8; offset++) {
      uint8_t *buf = raw + GUARD + align;
      memset(raw, 0x5C, sizeof raw);
      fill_pattern(buf, len, (unsigned)(len + offset));
      memcpy(want, buf, len);
      mask_reference(want, len, test_key, offset);
      lightws_mask(buf, len, test_key, offset);
      CHECK(memcmp(buf, want, len) == 0, "len %zu align %zu offset %u", len, align,
            offset);
      CHECK(raw[GUARD + align - 1] == 0x5C && buf[len] == 0x5C, "guard, len %zu", len);
    }
  }
}
END_TEST

/* mask_copy with source and destination at different alignments. */
START_TEST(test_mask_copy_matches_reference) {
  enum { MAXLEN = 300, GUARD = 32 };
  static uint8_t src_raw[MAXLEN + 2 * GUARD + 16] __attribute__((aligned(64)));
  static uint8_t dst_raw[MAXLEN + 2 * GUARD + 16] __attribute__((aligned(64)));
  uint8_t want[MAXLEN];
  size_t dalign = (size_t)_i, salign = (size_t)(_i * 7 + 3) % 16, len;
  unsigned offset;
  for (len = 0; len <= MAXLEN; len++) {
    for (offset = 0; offset < 8; offset++) {
      uint8_t *src = src_raw + GUARD + salign, *dst = dst_raw + GUARD + dalign;
      memset(dst_raw, 0x5C, sizeof dst_raw);
      fill_pattern(src, len, (unsigned)len);
      memcpy(want, src, len);
      mask_reference(want, len, test_key, offset);
      lightws_mask_copy(dst, src, len, test_key, offset);
      CHECK(memcmp(dst, want, len) == 0, "len %zu dalign %zu offset %u", len,
            dalign, offset);
      CHECK(dst_raw[GUARD + dalign - 1] == 0x5C && dst[len] == 0x5C, "guard, len %zu",
            len);
      mask_reference(want, len, test_key, offset);
      CHECK(memcmp(src, want, len) == 0, "source changed, len %zu", len);
      /* dst == src is allowed and masks in place */
      lightws_mask_copy(src, src, len, test_key, offset);
      CHECK(memcmp(src, dst, len) == 0, "in place, len %zu", len);
    }
  }
}
END_TEST

START_TEST(test_mask_zero_key_leaves_buffer) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  uint8_t buf[100], copy[100], dst[100];
  fill_pattern(buf, sizeof buf, 1);
  memcpy(copy, buf, sizeof buf);
  lightws_mask(buf + 1, 99, zero, 3);
  ck_assert_mem_eq(buf, copy, sizeof buf);
  memset(dst, 0, sizeof dst);
  lightws_mask_copy(dst, buf, sizeof buf, zero, 1);
  ck_assert_mem_eq(dst, copy, sizeof dst);
}
END_TEST

START_TEST(test_mask_empty_and_null) {
  uint8_t one = 0x41;
  lightws_mask(NULL, 0, test_key, 0);
  lightws_mask_copy(NULL, NULL, 0, test_key, 3);
  lightws_mask(&one, 1, test_key, UINT64_MAX); /* position 3 mod 4 */
  ck_assert_uint_eq(one, 0x41 ^ test_key[3]);
}
END_TEST

START_TEST(test_mask_twice_restores) {
  uint8_t buf[1000], copy[1000];
  fill_pattern(buf, sizeof buf, 2);
  memcpy(copy, buf, sizeof buf);
  lightws_mask(buf + 3, 990, test_key, 5);
  ck_assert(memcmp(buf + 3, copy + 3, 990) != 0);
  lightws_mask(buf + 3, 990, test_key, 5);
  ck_assert_mem_eq(buf, copy, sizeof buf);
}
END_TEST

/* A payload unmasked in pieces, each with its own payload offset, equals
 * the payload unmasked whole (§5.3 with reads split anywhere). */
START_TEST(test_mask_split_payload_with_offsets) {
  enum { LEN = 777 };
  uint8_t whole[LEN], split[LEN];
  size_t cut1, step;
  fill_pattern(whole, LEN, 3);
  memcpy(split, whole, LEN);
  lightws_mask(whole, LEN, test_key, 0);
  for (step = 1; step <= 70; step += 3) {
    uint8_t tmp[LEN];
    memcpy(tmp, split, LEN);
    for (cut1 = 0; cut1 < LEN; cut1 += step) {
      size_t n = LEN - cut1 < step ? LEN - cut1 : step;
      lightws_mask(tmp + cut1, n, test_key, cut1);
    }
    ck_assert_mem_eq(tmp, whole, LEN);
  }
  /* the offset counts from the payload start: only its value mod 4 matters */
  lightws_mask(split + 5, LEN - 5, test_key, 5 + 4 * 1000000007ull);
  lightws_mask(split, 5, test_key, 0);
  ck_assert_mem_eq(split, whole, LEN);
}
END_TEST

START_TEST(test_mask_large_buffer) {
  enum { LEN = 1 << 17 };
  uint8_t *buf = malloc(LEN + 1), *want = malloc(LEN + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_ptr_nonnull(want);
  fill_pattern(buf, LEN + 1, 4);
  memcpy(want, buf, LEN + 1);
  mask_reference(want + 1, LEN, test_key, 2);
  lightws_mask(buf + 1, LEN, test_key, 2);
  ck_assert(memcmp(buf, want, LEN + 1) == 0);
  free(buf);
  free(want);
}
END_TEST

Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *tc = tcase_create("rfc examples");
  tcase_add_loop_test(tc, test_decode_rfc_example, 0, NUM_RFC_FRAMES);
  tcase_add_loop_test(tc, test_encode_rfc_example, 0, NUM_RFC_FRAMES);
  suite_add_tcase(s, tc);

  tc = tcase_create("encode");
  tcase_add_loop_test(tc, test_length_boundary_round_trip, 0, 2 * NUM_BOUNDARIES);
  tcase_add_test(tc, test_encode_writes_big_endian_lengths);
  tcase_add_test(tc, test_encode_rsv_bits_and_fin);
  tcase_add_loop_test(tc, test_encode_nospace_for_each_short_size, 0,
                      2 * NUM_BOUNDARIES);
  tcase_add_loop_test(tc, test_encode_rejects_invalid_frame, 0, NUM_BAD_ENCODES);
  tcase_add_test(tc, test_encode_accepts_control_of_125_bytes);
  suite_add_tcase(s, tc);

  tc = tcase_create("decode");
  tcase_add_loop_test(tc, test_decode_rejects_bad_head, 0, NUM_BAD_HEADS);
  tcase_add_test(tc, test_decode_accepts_nonminimal_with_flag);
  tcase_add_test(tc, test_decode_accepts_allowed_rsv_bits);
  tcase_add_test(tc, test_decode_mask_bit_checked_only_with_flags);
  tcase_add_test(tc, test_decode_control_of_125_bytes);
  tcase_add_test(tc, test_decode_empty_input_is_incomplete);
  tcase_add_loop_test(tc, test_decode_one_byte_at_a_time, 0, 2 * NUM_BOUNDARIES);
  tcase_add_loop_test(tc, test_decode_all_two_byte_heads, 0, 256);
  tcase_add_test(tc, test_decode_random_heads_against_reference);
  tcase_add_test(tc, test_decode_inline_matches_full);
  suite_add_tcase(s, tc);

  tc = tcase_create("mask");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_mask_matches_reference_at_every_alignment, 0, 16);
  tcase_add_loop_test(tc, test_mask_copy_matches_reference, 0, 16);
  tcase_add_test(tc, test_mask_zero_key_leaves_buffer);
  tcase_add_test(tc, test_mask_empty_and_null);
  tcase_add_test(tc, test_mask_twice_restores);
  tcase_add_test(tc, test_mask_split_payload_with_offsets);
  tcase_add_test(tc, test_mask_large_buffer);
  suite_add_tcase(s, tc);
  return s;
}
