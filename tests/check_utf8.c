/* SPDX-License-Identifier: MIT */
/* Tests of the incremental UTF-8 validator (RFC 3629 §4; RFC 6455 §5.6, §8.1). */
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

/*
 * Reference: decodes code points strictly, straight from RFC 3629 §3. For
 * a sequence cut short by the end of input, the code points its bits still
 * allow form an interval; the input is INCOMPLETE if that interval holds a
 * valid code point for the sequence length, else it is an error.
 */
static int seq_len(unsigned b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 0;
}

static int cp_ok(uint32_t lo, uint32_t hi, int n) {
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (lo < min_cp[n]) lo = min_cp[n];
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo > hi) return 0;
  return !(lo >= 0xD800 && hi <= 0xDFFF);
}

static int reference(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    int n = seq_len(s[i]), k, have;
    uint32_t cp;
    if (n == 0) return LIGHTWS_ERR_UTF8;
    cp = n == 1 ? s[i] : (uint32_t)(s[i] & (0x7F >> n));
    have = (int)(len - i < (size_t)n ? len - i : (size_t)n);
    for (k = 1; k < have; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return LIGHTWS_ERR_UTF8;
      cp = (cp << 6) | (s[i + k] & 0x3F);
      /* a prefix already outside every valid completion is an error now */
      if (!cp_ok(cp << (6 * (n - 1 - k)), ((cp + 1) << (6 * (n - 1 - k))) - 1, n))
        return LIGHTWS_ERR_UTF8;
    }
    if (have < n) {
      uint32_t free_bits = 6u * (unsigned)(n - have);
      if (!cp_ok(cp << free_bits, ((cp + 1) << free_bits) - 1, n))
        return LIGHTWS_ERR_UTF8;
      return LIGHTWS_UTF8_INCOMPLETE;
    }
    if (!cp_ok(cp, cp, n)) return LIGHTWS_ERR_UTF8;
    i += (size_t)n;
  }
  return LIGHTWS_UTF8_VALID;
}

static int feed_whole(const uint8_t *s, size_t len) {
  struct lightws_utf8 u = {0};
  return lightws_utf8_feed(&u, s, len);
}

/* Feeds s in pieces ending at the given cut points; checks each call
 * against the reference on the prefix fed so far. Returns the last result. */
static int feed_checked(const uint8_t *s, size_t len, const size_t *cuts,
                        size_t ncuts) {
  struct lightws_utf8 u = {0};
  size_t i, start = 0;
  int r = LIGHTWS_UTF8_VALID, failed = 0;
  for (i = 0; i <= ncuts; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    int want;
    r = lightws_utf8_feed(&u, s + start, end - start);
    want = failed ? LIGHTWS_ERR_UTF8 : reference(s, end);
    CHECK(r == want, "prefix of %zu bytes: got %d want %d", end, r, want);
    if (r == LIGHTWS_ERR_UTF8) failed = 1;
    start = end;
  }
  return r;
}

struct utf8_case {
  const char *what;
  const char *bytes;
  int result;
};

static const struct utf8_case utf8_cases[] = {
    {"empty", "", LIGHTWS_UTF8_VALID},
    {"ASCII", "Hello, world", LIGHTWS_UTF8_VALID},
    {"U+0000..U+007F", "\x01\x7F", LIGHTWS_UTF8_VALID},
    {"U+0080", "\xC2\x80", LIGHTWS_UTF8_VALID},
    {"U+07FF", "\xDF\xBF", LIGHTWS_UTF8_VALID},
    {"U+0800", "\xE0\xA0\x80", LIGHTWS_UTF8_VALID},
    {"U+D7FF", "\xED\x9F\xBF", LIGHTWS_UTF8_VALID},
    {"U+E000", "\xEE\x80\x80", LIGHTWS_UTF8_VALID},
    {"U+FFFD", "\xEF\xBF\xBD", LIGHTWS_UTF8_VALID},
    {"U+FFFF", "\xEF\xBF\xBF", LIGHTWS_UTF8_VALID},
    {"U+10000", "\xF0\x90\x80\x80", LIGHTWS_UTF8_VALID},
    {"U+FFFFF", "\xF3\xBF\xBF\xBF", LIGHTWS_UTF8_VALID},
    {"U+10FFFF", "\xF4\x8F\xBF\xBF", LIGHTWS_UTF8_VALID},
    {"kosme (Autobahn 6.2)", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", LIGHTWS_UTF8_VALID},
    {"Hello-mu (Autobahn 6.1)",
     "Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
     LIGHTWS_UTF8_VALID},
    {"mixed widths", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z", LIGHTWS_UTF8_VALID},
    {"long ASCII then 4-byte",
     "0123456789abcdefghijklmnopqrstuvwxyz\xF0\x9F\x92\xA9", LIGHTWS_UTF8_VALID},

    {"overlong C0 80", "\xC0\x80", LIGHTWS_ERR_UTF8},
    {"overlong C1 BF", "\xC1\xBF", LIGHTWS_ERR_UTF8},
    {"overlong E0 80 80", "\xE0\x80\x80", LIGHTWS_ERR_UTF8},
    {"overlong E0 9F BF", "\xE0\x9F\xBF", LIGHTWS_ERR_UTF8},
    {"overlong F0 80 80 80", "\xF0\x80\x80\x80", LIGHTWS_ERR_UTF8},
    {"overlong F0 8F BF BF", "\xF0\x8F\xBF\xBF", LIGHTWS_ERR_UTF8},
    {"surrogate ED A0 80", "\xED\xA0\x80", LIGHTWS_ERR_UTF8},
    {"surrogate ED BF BF", "\xED\xBF\xBF", LIGHTWS_ERR_UTF8},
    {"surrogate pair", "\xED\xA0\x80\xED\xB0\x80", LIGHTWS_ERR_UTF8},
    {"over U+10FFFF F4 90 80 80", "\xF4\x90\x80\x80", LIGHTWS_ERR_UTF8},
    {"F5 lead", "\xF5\x80\x80\x80", LIGHTWS_ERR_UTF8},
    {"F8 lead", "\xF8\x88\x80\x80\x80", LIGHTWS_ERR_UTF8},
    {"FE", "\xFE", LIGHTWS_ERR_UTF8},
    {"FF", "\xFF", LIGHTWS_ERR_UTF8},
    {"stray 80", "\x80", LIGHTWS_ERR_UTF8},
    {"stray BF after ASCII", "abc\xBF", LIGHTWS_ERR_UTF8},
    {"lead then ASCII", "\xC3(", LIGHTWS_ERR_UTF8},
    {"3-byte lead then ASCII", "\xE2\x82(", LIGHTWS_ERR_UTF8},
    {"lead then lead", "\xC3\xC3\xA9", LIGHTWS_ERR_UTF8},
    {"extra continuation", "\xC3\xA9\xA9", LIGHTWS_ERR_UTF8},
    {"Autobahn 6.3.1 text with bad byte",
     "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80\x65\x64\x69\x74\x65\x64",
     LIGHTWS_ERR_UTF8},
    {"error after a long ASCII run", "0123456789abcdefghij\x80klmnop", LIGHTWS_ERR_UTF8},

    {"truncated 2-byte", "\xC3", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated 3-byte after 1", "\xE2", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated 3-byte after 2", "\xE2\x82", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated E0 A0", "\xE0\xA0", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated ED 9F", "\xED\x9F", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated 4-byte after 3", "\xF0\x9F\x98", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated F4 8F", "\xF4\x8F", LIGHTWS_UTF8_INCOMPLETE},
    {"text then truncated", "kosme \xCE\xBA\xE1\xBD", LIGHTWS_UTF8_INCOMPLETE},
    {"truncated E0 80 is already overlong", "\xE0\x80", LIGHTWS_ERR_UTF8},
    {"truncated ED A0 is already a surrogate", "\xED\xA0", LIGHTWS_ERR_UTF8},
    {"truncated F0 8F is already overlong", "\xF0\x8F", LIGHTWS_ERR_UTF8},
    {"truncated F4 90 is already too big", "\xF4\x90\x80", LIGHTWS_ERR_UTF8},
};
#define NUM_UTF8_CASES ((int)(sizeof utf8_cases / sizeof utf8_cases[0]))

START_TEST(test_utf8_whole) {
  const struct utf8_case *c = &utf8_cases[_i];
  size_t len = strlen(c->bytes);
  uint8_t *copy = malloc(len + 1); /* exact size: reads past len are caught */
  ck_assert_ptr_nonnull(copy);
  memcpy(copy, c->bytes, len);
  ck_assert_msg(feed_whole(copy, len) == c->result, "%s", c->what);
  ck_assert_msg(reference(copy, len) == c->result, "reference: %s", c->what);
  free(copy);
}
END_TEST

START_TEST(test_utf8_split_at_every_position) {
  const struct utf8_case *c = &utf8_cases[_i];
  const uint8_t *s = (const uint8_t *)c->bytes;
  size_t len = strlen(c->bytes), cut;
  for (cut = 0; cut <= len; cut++)
    ck_assert_msg(feed_checked(s, len, &cut, 1) == c->result, "%s cut %zu",
                  c->what, cut);
}
END_TEST

START_TEST(test_utf8_one_byte_at_a_time) {
  const struct utf8_case *c = &utf8_cases[_i];
  const uint8_t *s = (const uint8_t *)c->bytes;
  size_t len = strlen(c->bytes), cuts[64], i;
  ck_assert_uint_lt(len, 64);
  for (i = 0; i < len; i++) cuts[i] = i;
  ck_assert_msg(feed_checked(s, len, cuts, len) == c->result, "%s", c->what);
}
END_TEST

START_TEST(test_utf8_incomplete_then_complete) {
  struct lightws_utf8 u = {0};
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"ab\xF0", 3),
                   LIGHTWS_UTF8_INCOMPLETE);
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"\x9F", 1),
                   LIGHTWS_UTF8_INCOMPLETE);
  ck_assert_int_eq(lightws_utf8_feed(&u, NULL, 0), LIGHTWS_UTF8_INCOMPLETE);
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"\x98", 1),
                   LIGHTWS_UTF8_INCOMPLETE);
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"\x80z", 2),
                   LIGHTWS_UTF8_VALID);
  ck_assert_uint_eq(u.state, 0);
  /* the constraint on the second byte survives a split after the lead */
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"\xE0", 1),
                   LIGHTWS_UTF8_INCOMPLETE);
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"\x9F", 1), LIGHTWS_ERR_UTF8);
}
END_TEST

START_TEST(test_utf8_error_is_sticky_until_reset) {
  struct lightws_utf8 u = {0};
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"ok\xFF", 3), LIGHTWS_ERR_UTF8);
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"fine", 4), LIGHTWS_ERR_UTF8);
  ck_assert_int_eq(lightws_utf8_feed(&u, NULL, 0), LIGHTWS_ERR_UTF8);
  u.state = 0;
  ck_assert_int_eq(lightws_utf8_feed(&u, (const uint8_t *)"fine", 4), LIGHTWS_UTF8_VALID);
}
END_TEST

START_TEST(test_utf8_empty_feed_keeps_state) {
  struct lightws_utf8 u = {0};
  ck_assert_int_eq(lightws_utf8_feed(&u, NULL, 0), LIGHTWS_UTF8_VALID);
  ck_assert_uint_eq(u.state, 0);
}
END_TEST

/* A bad byte at each position of an ASCII run of each length (the 8-byte
 * fast path must not skip it), and a valid sequence after each run length. */
START_TEST(test_utf8_ascii_runs) {
  uint8_t buf[80];
  size_t len, pos;
  for (len = 1; len < 70; len++) {
    memset(buf, 'a', sizeof buf);
    ck_assert_int_eq(feed_whole(buf, len), LIGHTWS_UTF8_VALID);
    for (pos = 0; pos < len; pos++) {
      buf[pos] = (uint8_t)(0x80 | (pos & 0x3F)); /* a continuation byte */
      CHECK(feed_whole(buf, len) == LIGHTWS_ERR_UTF8, "len %zu pos %zu", len, pos);
      buf[pos] = 'a';
    }
    memcpy(buf + len, "\xE2\x82\xAC", 3);
    ck_assert_int_eq(feed_whole(buf, len + 3), LIGHTWS_UTF8_VALID);
    ck_assert_int_eq(feed_whole(buf, len + 2), LIGHTWS_UTF8_INCOMPLETE);
    ck_assert_int_eq(feed_whole(buf + 1, len + 2), LIGHTWS_UTF8_VALID);
  }
}
END_TEST

/* Every code point U+0000..U+10FFFF encodes to valid UTF-8; every
 * surrogate's encoding is rejected. */
START_TEST(test_utf8_every_code_point) {
  uint32_t cp;
  for (cp = 0; cp <= 0x10FFFF; cp++) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
      b[0] = (uint8_t)cp;
      n = 1;
    } else if (cp < 0x800) {
      b[0] = (uint8_t)(0xC0 | (cp >> 6));
      b[1] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 2;
    } else if (cp < 0x10000) {
      b[0] = (uint8_t)(0xE0 | (cp >> 12));
      b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[2] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 3;
    } else {
      b[0] = (uint8_t)(0xF0 | (cp >> 18));
      b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      b[3] = (uint8_t)(0x80 | (cp & 0x3F));
      n = 4;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
      CHECK(feed_whole(b, n) == LIGHTWS_ERR_UTF8, "U+%04X", (unsigned)cp);
    else
      CHECK(feed_whole(b, n) == LIGHTWS_UTF8_VALID, "U+%04X", (unsigned)cp);
  }
}
END_TEST

/* Every 1-, 2- and 3-byte string (and 4-byte ones starting F0..F4) agrees
 * with the reference, alone (the validator's end-of-input path) and
 * followed by ASCII (its whole-sequence path). */
START_TEST(test_utf8_all_short_strings) {
  uint8_t b[8] = {0, 0, 0, 0, ' ', ' ', ' ', ' '};
  unsigned x, y, z;
  for (x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    CHECK(feed_whole(b, 1) == reference(b, 1), "%02x", x);
    for (y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      CHECK(feed_whole(b, 2) == reference(b, 2), "%02x %02x", x, y);
      for (z = 0; z < 256; z++) {
        b[2] = (uint8_t)z;
        b[3] = ' ';
        CHECK(feed_whole(b, 7) == reference(b, 7), "%02x %02x %02x + ASCII", x, y, z);
        CHECK(feed_whole(b, 3) == reference(b, 3), "%02x %02x %02x", x, y, z);
        if (x >= 0xF0 && x <= 0xF4 && (z & 0xC0) == 0x80 && (y & 0xC0) == 0x80) {
          static const uint8_t last[] = {0x80, 0xBF, 0xC0, 0x41};
          size_t k;
          for (k = 0; k < sizeof last; k++) {
            b[3] = last[k];
            CHECK(feed_whole(b, 4) == reference(b, 4) &&
                      feed_whole(b, 8) == reference(b, 8),
                  "%02x %02x %02x %02x", x, y, z, b[3]);
          }
        }
      }
    }
  }
}
END_TEST

/* xorshift64*, fixed seed: the run is the same every time. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Builds text that is mostly valid: ASCII runs, encoded code points near
 * the interesting boundaries, and now and then one arbitrary byte. */
static size_t random_text(uint8_t *out, size_t size) {
  static const uint32_t edges[] = {0x7F,   0x80,   0x7FF,   0x800,    0xD7FF,
                                   0xD800, 0xDFFF, 0xE000,  0xFFFF,   0x10000,
                                   0x10FFFF, 0x110000, 0x1FFFFF};
  size_t n = 0, want = rnd() % size;
  while (n < want) {
    uint32_t r = rnd() % 16, cp;
    if (r < 6) {
      size_t run = rnd() % 20;
      while (run-- && n < size) out[n++] = (uint8_t)(0x20 + rnd() % 95);
      continue;
    }
    if (r == 15) {
      out[n++] = (uint8_t)rnd();
      continue;
    }
    cp = r < 10 ? rnd() % 0x110000 : edges[rnd() % 13] + (rnd() % 3) - 1;
    if (cp < 0x80) {
      out[n++] = (uint8_t)cp;
    } else if (cp < 0x800 && n + 2 <= size) {
      out[n++] = (uint8_t)(0xC0 | (cp >> 6));
      out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000 && cp >= 0x800 && n + 3 <= size) {
      out[n++] = (uint8_t)(0xE0 | (cp >> 12));
      out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp >= 0x10000 && n + 4 <= size) {
      out[n++] = (uint8_t)(0xF0 | ((cp >> 18) & 7));
      out[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
      out[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
      out[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
      break;
    }
  }
  return n;
}

START_TEST(test_utf8_random_against_reference) {
  enum { SIZE = 64 };
  uint8_t buf[SIZE];
  long cases = getenv("LIGHTWS_TEST_QUICK") ? 10000 : 100000, i;
  int counts[3] = {0, 0, 0};
  rng_state = 0x9E3779B97F4A7C15ull;
  for (i = 0; i < cases; i++) {
    size_t len = random_text(buf, SIZE), cuts[2];
    int want, got;
    if (len > 0 && rnd() % 3 == 0) len -= 1 + rnd() % (len < 3 ? len : 3);
    want = reference(buf, len);
    got = feed_whole(buf, len);
    CHECK(got == want, "case %ld: got %d want %d", i, got, want);
    counts[want == LIGHTWS_UTF8_VALID ? 0 : want == LIGHTWS_UTF8_INCOMPLETE ? 1 : 2]++;
    cuts[0] = len ? rnd() % (len + 1) : 0;
    cuts[1] = cuts[0] + (len - cuts[0] ? rnd() % (len - cuts[0] + 1) : 0);
    CHECK(feed_checked(buf, len, cuts, 2) == want, "case %ld split", i);
  }
  /* the generator reaches every outcome often */
  ck_assert_int_gt(counts[0], cases / 20);
  ck_assert_int_gt(counts[1], cases / 100);
  ck_assert_int_gt(counts[2], cases / 20);
}
END_TEST

Suite *utf8_suite(void) {
  Suite *s = suite_create("utf8");
  TCase *tc = tcase_create("tables");
  tcase_add_loop_test(tc, test_utf8_whole, 0, NUM_UTF8_CASES);
  tcase_add_loop_test(tc, test_utf8_split_at_every_position, 0, NUM_UTF8_CASES);
  tcase_add_loop_test(tc, test_utf8_one_byte_at_a_time, 0, NUM_UTF8_CASES);
  suite_add_tcase(s, tc);

  tc = tcase_create("state");
  tcase_add_test(tc, test_utf8_incomplete_then_complete);
  tcase_add_test(tc, test_utf8_error_is_sticky_until_reset);
  tcase_add_test(tc, test_utf8_empty_feed_keeps_state);
  tcase_add_test(tc, test_utf8_ascii_runs);
  suite_add_tcase(s, tc);

  tc = tcase_create("exhaustive");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_utf8_every_code_point);
  tcase_add_test(tc, test_utf8_all_short_strings);
  tcase_add_test(tc, test_utf8_random_against_reference);
  suite_add_tcase(s, tc);
  return s;
}
