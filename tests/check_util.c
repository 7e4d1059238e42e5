/* SPDX-License-Identifier: MIT */
/* Tests of the internal helpers: SHA-1 (RFC 3174), base64 (RFC 4648), OS randomness, ASCII case folding. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1 /* syscall(2), for the getrandom stand-in */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check_lightws.h"
#include "internal.h"
#if defined(__linux__)
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Hot loops check with this: ck_assert marks a point through a pipe to
 * the parent process on every call, which would dominate the run time. */
#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) ck_abort_msg(__VA_ARGS__); \
  } while (0)

static void hex(const uint8_t *d, size_t n, char *out) {
  size_t i;
  for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_hex(const void *data, size_t len, char out[41]) {
  struct lightws__sha1 c;
  uint8_t d[20];
  lightws__sha1_init(&c);
  lightws__sha1_update(&c, data, len);
  lightws__sha1_final(&c, d);
  hex(d, 20, out);
}

/* RFC 3174 §7.3 TEST1, TEST2, plus FIPS 180 examples at padding edges. */
struct sha1_vector {
  const char *in;
  const char *digest;
};

static const struct sha1_vector sha1_vectors[] = {
    {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
    {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
    {"The quick brown fox jumps over the lazy dog",
     "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"},
    /* RFC 6455 §1.3: key + GUID hashes to the accept value's bytes */
    {"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
     "b37a4f2cc0624f1690f64606cf385945b2bec4ea"},
};
#define NUM_SHA1 ((int)(sizeof sha1_vectors / sizeof sha1_vectors[0]))

START_TEST(test_sha1_vector) {
  char out[41];
  sha1_hex(sha1_vectors[_i].in, strlen(sha1_vectors[_i].in), out);
  ck_assert_str_eq(out, sha1_vectors[_i].digest);
}
END_TEST

START_TEST(test_sha1_empty_updates) {
  struct lightws__sha1 c;
  uint8_t d[20];
  char out[41];
  lightws__sha1_init(&c);
  lightws__sha1_update(&c, NULL, 0);
  lightws__sha1_update(&c, "ab", 2);
  lightws__sha1_update(&c, NULL, 0);
  lightws__sha1_update(&c, "c", 1);
  lightws__sha1_final(&c, d);
  hex(d, 20, out);
  ck_assert_str_eq(out, "a9993e364706816aba3e25717850c26c9cd0d89d");
}
END_TEST

/* RFC 3174 §7.3 TEST3: one million 'a', fed in 1000 updates of 1000. */
START_TEST(test_sha1_million_a) {
  struct lightws__sha1 c;
  uint8_t block[1000], d[20];
  char out[41];
  int i;
  memset(block, 'a', sizeof block);
  lightws__sha1_init(&c);
  for (i = 0; i < 1000; i++) lightws__sha1_update(&c, block, sizeof block);
  lightws__sha1_final(&c, d);
  hex(d, 20, out);
  ck_assert_str_eq(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}
END_TEST

/* RFC 3174 §7.3 TEST4: "01234567" repeated 80 times, in updates of odd
 * sizes; also every length 0..200 whole vs in two pieces split anywhere. */
START_TEST(test_sha1_split_updates) {
  static const size_t sizes[] = {1, 3, 7, 13, 63, 64, 65, 127, 129};
  uint8_t data[640], d[20], ref[20];
  char out[41];
  size_t k, len, cut;
  for (k = 0; k < sizeof data; k++) data[k] = (uint8_t)"01234567"[k % 8];
  for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    struct lightws__sha1 c;
    size_t pos = 0;
    lightws__sha1_init(&c);
    while (pos < sizeof data) {
      size_t n = sizeof data - pos < sizes[k] ? sizeof data - pos : sizes[k];
      lightws__sha1_update(&c, data + pos, n);
      pos += n;
    }
    lightws__sha1_final(&c, d);
    hex(d, 20, out);
    ck_assert_str_eq(out, "dea356a2cddd90c7a7ecedc5ebb563934f460452");
  }
  for (len = 0; len <= 200; len++) {
    struct lightws__sha1 c;
    lightws__sha1_init(&c);
    lightws__sha1_update(&c, data, len);
    lightws__sha1_final(&c, ref);
    for (cut = 0; cut <= len; cut++) {
      lightws__sha1_init(&c);
      lightws__sha1_update(&c, data, cut);
      lightws__sha1_update(&c, data + cut, len - cut);
      lightws__sha1_final(&c, d);
      CHECK(memcmp(d, ref, 20) == 0, "len %zu cut %zu", len, cut);
    }
  }
}
END_TEST

/* RFC 4648 §10. */
static const char *const b64_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const b64_coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                        "Zm9vYmE=", "Zm9vYmFy"};

START_TEST(test_base64_rfc_vector) {
  const char *plain = b64_plain[_i], *coded = b64_coded[_i];
  char out[16];
  uint8_t back[16];
  size_t n;
  memset(out, '#', sizeof out);
  n = lightws__base64_encode((const uint8_t *)plain, strlen(plain), out);
  ck_assert_uint_eq(n, strlen(coded));
  ck_assert_mem_eq(out, coded, n);
  ck_assert_int_eq(out[n], '#'); /* no NUL written */
  ck_assert_int_eq(lightws__base64_decode(coded, strlen(coded), back, sizeof back),
                   (ssize_t)strlen(plain));
  ck_assert_mem_eq(back, plain, strlen(plain));
  /* exactly enough room works, one byte less does not */
  ck_assert_int_eq(lightws__base64_decode(coded, strlen(coded), back, strlen(plain)),
                   (ssize_t)strlen(plain));
  if (strlen(plain) > 0)
    ck_assert_int_eq(lightws__base64_decode(coded, strlen(coded), back, strlen(plain) - 1),
                     -1);
}
END_TEST

START_TEST(test_base64_all_bytes_round_trip) {
  uint8_t in[256], back[256];
  char out[400];
  size_t len, n, i;
  for (i = 0; i < 256; i++) in[i] = (uint8_t)(255 - i);
  for (len = 0; len <= 256; len++) {
    n = lightws__base64_encode(in, len, out);
    ck_assert_uint_eq(n, (len + 2) / 3 * 4);
    ck_assert_int_eq(lightws__base64_decode(out, n, back, sizeof back), (ssize_t)len);
    ck_assert(memcmp(back, in, len) == 0);
  }
  /* the alphabet in order: 0x00, 0x10, 0x83, ... encodes to A..Z a..z 0..9 + / */
  {
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ck_assert_int_eq(lightws__base64_decode(alpha, 64, back, sizeof back), 48);
    n = lightws__base64_encode(back, 48, out);
    ck_assert_mem_eq(out, alpha, 64);
  }
}
END_TEST

static const char *const b64_bad[] = {
    "Zg",       /* not a multiple of 4 */
    "Zg=",      /* not a multiple of 4 */
    "Zm9vY",    /* not a multiple of 4 */
    "Zg=a",     /* '=' before a data character */
    "Z===",     /* three pads */
    "====",     /* only pads */
    "=Zg=",     /* pad first */
    "Zm=v",     /* pad inside */
    "Zg==Zg==", /* pad before the end */
    "Zh==",     /* non-zero pad bits (2 bytes dropped) */
    "Zm9=",     /* non-zero pad bits (1 byte dropped) */
    "Zm9v\n",   /* newline */
    "Zm 9",     /* space */
    "Zm9-",     /* base64url alphabet */
    "Zm9_",     /* base64url alphabet */
    "Zm9\x80",  /* high byte */
};
#define NUM_B64_BAD ((int)(sizeof b64_bad / sizeof b64_bad[0]))

START_TEST(test_base64_rejects_bad_input) {
  uint8_t out[16];
  ck_assert_msg(lightws__base64_decode(b64_bad[_i], strlen(b64_bad[_i]), out, sizeof out) == -1,
                "\"%s\"", b64_bad[_i]);
}
END_TEST

START_TEST(test_base64_rfc6455_key) {
  /* §4.1 example nonce: 16 bytes "the sample nonce" */
  uint8_t out[16];
  char enc[24];
  ck_assert_int_eq(lightws__base64_decode("dGhlIHNhbXBsZSBub25jZQ==", 24, out, 16), 16);
  ck_assert_mem_eq(out, "the sample nonce", 16);
  ck_assert_uint_eq(lightws__base64_encode(out, 16, enc), 24);
  ck_assert_mem_eq(enc, "dGhlIHNhbXBsZSBub25jZQ==", 24);
}
END_TEST

START_TEST(test_random_fills_and_differs) {
  uint8_t a[32], b[32], big[70000];
  size_t i, nonzero = 0;
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  ck_assert_int_eq(lightws__random(a, sizeof a), 0);
  ck_assert_int_eq(lightws__random(b, sizeof b), 0);
  ck_assert(memcmp(a, b, sizeof a) != 0);
  ck_assert_int_eq(lightws__random(a, 0), 0);
  memset(big, 0, sizeof big);
  ck_assert_int_eq(lightws__random(big, sizeof big), 0);
  for (i = 0; i < sizeof big; i++) nonzero += big[i] != 0;
  ck_assert_uint_gt(nonzero, sizeof big * 9 / 10); /* ~255/256 expected */
  /* the tail was filled: its last 8 bytes are all zero with probability
   * 2^-64 (3 bytes made it 1 run in 16.7 million) */
  {
    uint8_t tail = 0;
    for (i = sizeof big - 8; i < sizeof big; i++) tail |= big[i];
    ck_assert_uint_ne(tail, 0);
  }
}
END_TEST

#if defined(__linux__) && defined(SYS_getrandom)
/*
 * The library's getrandom(3) calls land here (a definition in the program
 * wins over libc's), so the tests can make it fail the ways an old kernel
 * (ENOSYS: fall back to /dev/urandom), a signal (EINTR: retry) or a broken
 * source (EIO: LIGHTWS_ERR_SYSTEM) would. Mode 0 passes through.
 */
enum { RND_REAL, RND_ENOSYS, RND_EIO, RND_EINTR_SHORT };
static int rnd_mode;
static int rnd_calls;

ssize_t getrandom(void *buf, size_t len, unsigned flags) {
  rnd_calls++;
  switch (rnd_mode) {
    case RND_ENOSYS:
      errno = ENOSYS;
      return -1;
    case RND_EIO:
      errno = EIO;
      return -1;
    case RND_EINTR_SHORT:
      if (rnd_calls == 1) {
        errno = EINTR;
        return -1;
      }
      if (len > 3) len = 3; /* short reads: the caller must loop */
      break;
    default:
      break;
  }
  return syscall(SYS_getrandom, buf, len, flags);
}

START_TEST(test_random_falls_back_to_urandom_without_getrandom) {
  uint8_t a[64], b[64];
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  rnd_mode = RND_ENOSYS;
  rnd_calls = 0;
  ck_assert_int_eq(lightws__random(a, sizeof a), 0);
  ck_assert_int_eq(lightws__random(b, sizeof b), 0);
  rnd_mode = RND_REAL;
  ck_assert_int_eq(rnd_calls, 2); /* one failed getrandom each, then the file */
  ck_assert(memcmp(a, b, sizeof a) != 0);
}
END_TEST

START_TEST(test_random_retries_eintr_and_short_reads) {
  uint8_t a[64];
  size_t i, nonzero = 0;
  memset(a, 0, sizeof a);
  rnd_mode = RND_EINTR_SHORT;
  rnd_calls = 0;
  ck_assert_int_eq(lightws__random(a, sizeof a), 0);
  rnd_mode = RND_REAL;
  ck_assert_int_eq(rnd_calls, 1 + (64 + 2) / 3); /* EINTR, then 3 bytes a call */
  for (i = 0; i < sizeof a; i++) nonzero += a[i] != 0;
  ck_assert_uint_gt(nonzero, 48); /* the tail was filled too */
}
END_TEST

START_TEST(test_random_reports_a_failing_source) {
  uint8_t a[16];
  rnd_mode = RND_EIO;
  errno = 0;
  ck_assert_int_eq(lightws__random(a, sizeof a), LIGHTWS_ERR_SYSTEM);
  ck_assert_int_eq(errno, EIO);
  rnd_mode = RND_REAL;
}
END_TEST
#endif

START_TEST(test_casecmp_ascii_only) {
  ck_assert_int_eq(lightws__casecmp("WebSocket", "websocket", 9), 0);
  ck_assert_int_eq(lightws__casecmp("UPGRADE", "upgrade", 7), 0);
  ck_assert_int_eq(lightws__casecmp("Sec-WebSocket-Key", "sec-websocket-key", 17), 0);
  ck_assert_int_eq(lightws__casecmp("abc", "abd", 2), 0);
  ck_assert_int_eq(lightws__casecmp("", "", 0), 0);
  ck_assert_int_lt(lightws__casecmp("abc", "abd", 3), 0);
  ck_assert_int_gt(lightws__casecmp("abD", "ABC", 3), 0);
  /* characters next to the letter ranges do not fold: '@'/'`', '['/'{' */
  ck_assert_int_ne(lightws__casecmp("@", "`", 1), 0);
  ck_assert_int_ne(lightws__casecmp("[", "{", 1), 0);
  /* no locale folding of non-ASCII bytes */
  ck_assert_int_ne(lightws__casecmp("\xC9", "\xE9", 1), 0);
  /* comparison stops at n: bytes after it are not read */
  ck_assert_int_eq(lightws__casecmp("Host:x", "hOST:y", 5), 0);
}
END_TEST

Suite *util_suite(void) {
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("sha1");
  tcase_add_loop_test(tc, test_sha1_vector, 0, NUM_SHA1);
  tcase_add_test(tc, test_sha1_million_a);
  tcase_add_test(tc, test_sha1_empty_updates);
  tcase_add_test(tc, test_sha1_split_updates);
  suite_add_tcase(s, tc);

  tc = tcase_create("base64");
  tcase_add_loop_test(tc, test_base64_rfc_vector, 0, 7);
  tcase_add_test(tc, test_base64_all_bytes_round_trip);
  tcase_add_loop_test(tc, test_base64_rejects_bad_input, 0, NUM_B64_BAD);
  tcase_add_test(tc, test_base64_rfc6455_key);
  suite_add_tcase(s, tc);

  tc = tcase_create("random");
  tcase_add_test(tc, test_random_fills_and_differs);
#if defined(__linux__) && defined(SYS_getrandom)
  tcase_add_test(tc, test_random_falls_back_to_urandom_without_getrandom);
  tcase_add_test(tc, test_random_retries_eintr_and_short_reads);
  tcase_add_test(tc, test_random_reports_a_failing_source);
#endif
  suite_add_tcase(s, tc);

  tc = tcase_create("casecmp");
  tcase_add_test(tc, test_casecmp_ascii_only);
  suite_add_tcase(s, tc);
  return s;
}
