/* SPDX-License-Identifier: MIT */
/* permessage-deflate negotiation suite (RFC 7692 §7.1): offers, server answers, client checks, as tables. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check_lightws.h"

/* 1 when the library was built with zlib: offer and accept work. */
static int have_zlib(void) {
  char buf[128];
  return lightws_pmd_offer(buf, sizeof buf, NULL) != LIGHTWS_ERR_UNSUPPORTED;
}

static const struct lightws_pmd_config CFG_DEFAULT = {0};
/* peer limited to 10 bits, both sides without context takeover */
static const struct lightws_pmd_config CFG_SMALL = {
    12, 10, 0, 0, 1, 1, 0, 0, 0, 0};
static const struct lightws_pmd_config CFG_W15 = {15, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const struct lightws_pmd_config CFG_W9 = {9, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const struct lightws_pmd_config CFG_PEER9 = {0, 9, 0, 0, 0, 0, 0, 0, 0, 0};

/* ---- offer ----------------------------------------------------------- */

struct offer_case {
  const char *name;
  const struct lightws_pmd_config *cfg;
  const char *want;
};

static const struct offer_case OFFERS[] = {
    {"defaults", NULL, "permessage-deflate; client_max_window_bits"},
    {"zero config", &CFG_DEFAULT, "permessage-deflate; client_max_window_bits"},
    {"window 15 (our side only)", &CFG_W15,
     "permessage-deflate; client_max_window_bits"},
    {"peer 10, no context takeover both ways", &CFG_SMALL,
     "permessage-deflate; client_max_window_bits; server_max_window_bits=10;"
     " client_no_context_takeover; server_no_context_takeover"},
    {"peer 9", &CFG_PEER9,
     "permessage-deflate; client_max_window_bits; server_max_window_bits=9"},
};

START_TEST(test_pmd_offer_values) {
  const struct offer_case *c = &OFFERS[_i];
  char buf[256];
  ssize_t n;
  if (!have_zlib()) return;
  n = lightws_pmd_offer(buf, sizeof buf, c->cfg);
  ck_assert_msg(n == (ssize_t)strlen(c->want), "%s: %zd", c->name, n);
  ck_assert_msg(strcmp(buf, c->want) == 0, "%s: '%s'", c->name, buf);
  /* exact room: length + NUL; one less is NOSPACE */
  ck_assert_int_eq(lightws_pmd_offer(buf, (size_t)n + 1, c->cfg), n);
  ck_assert_int_eq(lightws_pmd_offer(buf, (size_t)n, c->cfg),
                   LIGHTWS_ERR_NOSPACE);
  /* a server with the same wishes accepts our own offer */
  {
    struct lightws_pmd_params a;
    ck_assert_int_eq(lightws_pmd_accept(buf, (size_t)n, c->cfg, &a), 1);
  }
}
END_TEST

START_TEST(test_pmd_offer_rejects_bad_config) {
  static const struct lightws_pmd_config bad[] = {
      {8, 0, 0, 0, 0, 0, 0, 0, 0, 0},   /* window 8: zlib cannot */
      {16, 0, 0, 0, 0, 0, 0, 0, 0, 0},  /* window 16 */
      {0, 7, 0, 0, 0, 0, 0, 0, 0, 0},   /* peer 7 */
      {0, 16, 0, 0, 0, 0, 0, 0, 0, 0},  /* peer 16 */
      {0, 0, 10, 0, 0, 0, 0, 0, 0, 0},  /* memLevel 10 */
      {0, 0, 0, 10, 0, 0, 0, 0, 0, 0},  /* level 10 */
      {0, 0, 0, -2, 0, 0, 0, 0, 0, 0},  /* level -2 */
      {0, 0, 0, 0, 2, 0, 0, 0, 0, 0},   /* flag 2 */
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 255}, /* work_size 255 */
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 65537},
  };
  char buf[256];
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct lightws_pmd_params a;
    ck_assert_msg(lightws_pmd_offer(buf, sizeof buf, &bad[i]) ==
                      LIGHTWS_ERR_INVALID, "offer %zu", i);
    ck_assert_msg(lightws_pmd_accept("permessage-deflate", 18, &bad[i], &a) ==
                      LIGHTWS_ERR_INVALID, "accept %zu", i);
    ck_assert_msg(lightws_pmd_check_response("permessage-deflate", 18,
                                             &bad[i], &a) ==
                      LIGHTWS_ERR_INVALID, "check %zu", i);
  }
}
END_TEST

START_TEST(test_pmd_without_zlib_is_unsupported) {
  static const struct lightws_pmd_config need = {0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
  static uint8_t rb[4096], block[64];
  char buf[128], req[1024];
  struct lightws_pmd_params a;
  struct lightws_stream s;
  struct lightws_client_options opt;
  int sv[2];
  ssize_t n;
  if (have_zlib()) return;
  ck_assert_int_eq(lightws_pmd_offer(buf, sizeof buf, NULL),
                   LIGHTWS_ERR_UNSUPPORTED);
  ck_assert_int_eq(lightws_pmd_accept("permessage-deflate", 18, NULL, &a),
                   LIGHTWS_ERR_UNSUPPORTED);
  /* a client with deflate options offers nothing and connects without,
   * unless it requires the extension */
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset(&opt, 0, sizeof opt);
  opt.deflate = &need;
  opt.deflate_mem = block;
  opt.deflate_mem_size = sizeof block;
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, 0), 0);
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), LIGHTWS_ERR_UNSUPPORTED);
  opt.deflate = &CFG_DEFAULT;
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), 0);
  n = read(sv[1], req, sizeof req - 1);
  ck_assert_int_gt(n, 0);
  req[n] = 0;
  ck_assert_msg(strstr(req, "\r\n\r\n") != NULL, "%s", req);
  ck_assert_ptr_null(strstr(req, "Sec-WebSocket-Extensions"));
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* ---- server: accept -------------------------------------------------- */

struct accept_case {
  const char *name;
  const char *value;
  const struct lightws_pmd_config *cfg;
  const char *want; /* the response value, NULL: declined */
};

#define PMD "permessage-deflate"
static const struct accept_case ACCEPTS[] = {
    /* plain offers */
    {"bare offer", PMD, NULL, PMD},
    {"Chromium's offer", PMD "; client_max_window_bits", NULL,
     PMD "; client_max_window_bits=15"},
    {"python websockets' offer", PMD "; client_max_window_bits=12", NULL,
     PMD "; client_max_window_bits=12"},
    {"Firefox's offer", PMD, NULL, PMD},
    {"case-insensitive names", "PerMessage-Deflate; Client_Max_Window_Bits",
     NULL, PMD "; client_max_window_bits=15"},
    {"whitespace around ; and =",
     "  " PMD " \t;\tserver_max_window_bits =\t10 ; client_no_context_takeover ",
     NULL, PMD "; client_no_context_takeover; server_max_window_bits=10"},
    {"no whitespace", PMD ";server_max_window_bits=9;client_max_window_bits=8",
     NULL, PMD "; server_max_window_bits=9; client_max_window_bits=8"},
    {"quoted value", PMD "; server_max_window_bits=\"10\"", NULL,
     PMD "; server_max_window_bits=10"},
    {"quoted value with a quoted-pair", PMD "; server_max_window_bits=\"1\\1\"",
     NULL, PMD "; server_max_window_bits=11"},
    {"server_max_window_bits above our window", PMD "; server_max_window_bits=15",
     NULL, PMD "; server_max_window_bits=12"},
    {"server_max_window_bits 8 (Huffman only)", PMD "; server_max_window_bits=8",
     NULL, PMD "; server_max_window_bits=8"},
    {"server_max_window_bits with window 15", PMD "; server_max_window_bits=14",
     &CFG_W15, PMD "; server_max_window_bits=14"},
    {"server_max_window_bits with window 9", PMD "; server_max_window_bits=13",
     &CFG_W9, PMD "; server_max_window_bits=9"},
    {"server_no_context_takeover asked", PMD "; server_no_context_takeover",
     NULL, PMD "; server_no_context_takeover"},
    {"client_no_context_takeover hint echoed", PMD "; client_no_context_takeover",
     NULL, PMD "; client_no_context_takeover"},
    {"all four", PMD "; server_no_context_takeover; client_no_context_takeover;"
     " server_max_window_bits=11; client_max_window_bits=13", NULL,
     PMD "; server_no_context_takeover; client_no_context_takeover;"
     " server_max_window_bits=11; client_max_window_bits=13"},
    {"our config: small peer, no context takeover",
     PMD "; client_max_window_bits", &CFG_SMALL,
     PMD "; server_no_context_takeover; client_no_context_takeover;"
     " client_max_window_bits=10"},
    {"our peer limit below the offered value", PMD "; client_max_window_bits=14",
     &CFG_SMALL, PMD "; server_no_context_takeover; client_no_context_takeover;"
     " client_max_window_bits=10"},
    {"offered client value below our peer limit", PMD "; client_max_window_bits=9",
     &CFG_SMALL, PMD "; server_no_context_takeover; client_no_context_takeover;"
     " client_max_window_bits=9"},
    /* several offers, in preference order */
    {"first acceptable of two",
     PMD "; client_max_window_bits=10, " PMD, NULL,
     PMD "; client_max_window_bits=10"},
    {"first offer invalid, second taken",
     PMD "; server_max_window_bits=7, " PMD "; client_max_window_bits", NULL,
     PMD "; client_max_window_bits=15"},
    {"first offer cannot be limited (peer 10), second can",
     PMD ", " PMD "; client_max_window_bits", &CFG_SMALL,
     PMD "; server_no_context_takeover; client_no_context_takeover;"
     " client_max_window_bits=10"},
    {"other extensions ignored",
     "x-webkit-deflate-frame, foo; bar=\"a b\"; baz, " PMD
     "; server_max_window_bits=10", NULL,
     PMD "; server_max_window_bits=10"},
    {"empty list elements skipped", ", ," PMD ",,", NULL, PMD},
    {"three offers, the third valid",
     PMD "; foo, " PMD "; server_max_window_bits, "
     PMD "; server_no_context_takeover", NULL,
     PMD "; server_no_context_takeover"},
    /* declined offers (each malformed case named) */
    {"unknown parameter", PMD "; foo", NULL, NULL},
    {"unknown parameter with a value", PMD "; max_window_bits=10", NULL, NULL},
    {"duplicate server_no_context_takeover",
     PMD "; server_no_context_takeover; server_no_context_takeover", NULL, NULL},
    {"duplicate client_no_context_takeover",
     PMD "; client_no_context_takeover; Client_No_Context_Takeover", NULL, NULL},
    {"duplicate server_max_window_bits",
     PMD "; server_max_window_bits=10; server_max_window_bits=10", NULL, NULL},
    {"duplicate client_max_window_bits (bare and valued)",
     PMD "; client_max_window_bits; client_max_window_bits=10", NULL, NULL},
    {"server_no_context_takeover with a value",
     PMD "; server_no_context_takeover=1", NULL, NULL},
    {"client_no_context_takeover with a quoted value",
     PMD "; client_no_context_takeover=\"\"", NULL, NULL},
    {"server_max_window_bits bare", PMD "; server_max_window_bits", NULL, NULL},
    {"server_max_window_bits 7", PMD "; server_max_window_bits=7", NULL, NULL},
    {"server_max_window_bits 16", PMD "; server_max_window_bits=16", NULL, NULL},
    {"server_max_window_bits 0", PMD "; server_max_window_bits=0", NULL, NULL},
    {"server_max_window_bits leading zero", PMD "; server_max_window_bits=010",
     NULL, NULL},
    {"server_max_window_bits leading zero (09)", PMD "; server_max_window_bits=09",
     NULL, NULL},
    {"server_max_window_bits sign", PMD "; server_max_window_bits=+9", NULL, NULL},
    {"server_max_window_bits not a number", PMD "; server_max_window_bits=ten",
     NULL, NULL},
    {"server_max_window_bits huge", PMD "; server_max_window_bits=100000000010",
     NULL, NULL},
    {"client_max_window_bits 7", PMD "; client_max_window_bits=7", NULL, NULL},
    {"client_max_window_bits 16", PMD "; client_max_window_bits=16", NULL, NULL},
    {"quoted empty value", PMD "; server_max_window_bits=\"\"", NULL, NULL},
    {"quoted value with a space", PMD "; server_max_window_bits=\"1 0\"", NULL,
     NULL},
    {"quoted value with leading zero", PMD "; server_max_window_bits=\"010\"",
     NULL, NULL},
    {"peer limit, client cannot be limited", PMD, &CFG_SMALL, NULL},
    {"no permessage-deflate at all", "x-webkit-deflate-frame", NULL, NULL},
    {"name only as a prefix", "permessage-deflatex", NULL, NULL},
    {"empty value", "", NULL, NULL},
    /* not a valid list: everything declined */
    {"unterminated quoted string", PMD ", " PMD "; server_max_window_bits=\"10",
     NULL, NULL},
    {"valid offer before broken syntax", PMD ", foo; =1", NULL, NULL},
    {"parameter without a name", PMD ";", NULL, NULL},
    {"value without a token", PMD "; server_max_window_bits=", NULL, NULL},
    {"two tokens without a separator", PMD " " PMD, NULL, NULL},
    {"separator where a token belongs", "; " PMD, NULL, NULL},
    {"equals sign twice", PMD "; server_max_window_bits==10", NULL, NULL},
    {"control character in a quoted value",
     PMD "; server_max_window_bits=\"1\x01\"", NULL, NULL},
    {"quoted-pair at the end", PMD "; server_max_window_bits=\"1\\", NULL, NULL},
};

START_TEST(test_pmd_accept_table) {
  const struct accept_case *c = &ACCEPTS[_i];
  struct lightws_pmd_params a;
  char buf[256];
  int r;
  if (!have_zlib()) return;
  memset(&a, 0xAA, sizeof a);
  r = lightws_pmd_accept(c->value, strlen(c->value), c->cfg, &a);
  if (!c->want) {
    struct lightws_pmd_params zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_msg(r == 0, "%s: accepted (%d)", c->name, r);
    ck_assert_msg(memcmp(&a, &zero, sizeof a) == 0, "%s: agreed not zeroed",
                  c->name);
    return;
  }
  ck_assert_msg(r == 1, "%s: declined (%d)", c->name, r);
  ck_assert_msg(lightws_pmd_response(buf, sizeof buf, &a) > 0, "%s", c->name);
  ck_assert_msg(strcmp(buf, c->want) == 0, "%s: '%s', want '%s'", c->name,
                buf, c->want);
}
END_TEST

START_TEST(test_pmd_accept_reads_only_len_bytes) {
  struct lightws_pmd_params a;
  const char *v = PMD "; server_max_window_bits=10; foo";
  if (!have_zlib()) return;
  /* the unknown parameter lies past `len` */
  ck_assert_int_eq(lightws_pmd_accept(v, strlen(PMD "; server_max_window_bits=10"),
                                      NULL, &a), 1);
  ck_assert_int_eq(a.server_max_window_bits, 10);
  ck_assert_int_eq(lightws_pmd_accept(v, strlen(v), NULL, &a), 0);
  ck_assert_int_eq(lightws_pmd_accept(NULL, 0, NULL, &a), 0);
  ck_assert_int_eq(lightws_pmd_accept(v, strlen(v), NULL, NULL), 0);
  ck_assert_int_eq(lightws_pmd_accept(PMD, 18, NULL, NULL), 1);
}
END_TEST

/* ---- server: response ------------------------------------------------ */

START_TEST(test_pmd_response_values) {
  struct lightws_pmd_params a;
  char buf[256];
  memset(&a, 0, sizeof a);
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, &a), 18);
  ck_assert_str_eq(buf, PMD);
  ck_assert_int_eq(lightws_pmd_response(buf, 18, &a), LIGHTWS_ERR_NOSPACE);
  ck_assert_int_eq(lightws_pmd_response(buf, 0, &a), LIGHTWS_ERR_NOSPACE);
  a.server_max_window_bits = 8;
  a.client_max_window_bits = 15;
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, &a),
                   (ssize_t)strlen(PMD "; server_max_window_bits=8;"
                                   " client_max_window_bits=15"));
  ck_assert_str_eq(buf, PMD "; server_max_window_bits=8; client_max_window_bits=15");
  a.client_max_window_bits = LIGHTWS_PMD_BITS_BARE; /* offers only */
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, &a), LIGHTWS_ERR_INVALID);
  a.client_max_window_bits = 16;
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, &a), LIGHTWS_ERR_INVALID);
  a.client_max_window_bits = 0;
  a.server_max_window_bits = 7;
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, &a), LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_pmd_response(buf, sizeof buf, NULL), LIGHTWS_ERR_INVALID);
}
END_TEST

/* ---- client: check the response -------------------------------------- */

struct check_case {
  const char *name;
  const char *value;
  const struct lightws_pmd_config *cfg; /* what we offered with */
  int want;                             /* 0 or the error */
  struct lightws_pmd_params agreed;     /* on 0 */
};

static const struct check_case CHECKS[] = {
    {"bare response", PMD, NULL, 0, {0, 0, 0, 0}},
    {"case-insensitive", "PERMESSAGE-DEFLATE; SERVER_NO_CONTEXT_TAKEOVER", NULL,
     0, {1, 0, 0, 0}},
    {"all four", PMD "; server_no_context_takeover; client_no_context_takeover;"
     " server_max_window_bits=9; client_max_window_bits=10", NULL, 0,
     {1, 1, 9, 10}},
    {"python websockets' answer", PMD "; client_max_window_bits=12", NULL, 0,
     {0, 0, 0, 12}},
    {"client window 8", PMD "; client_max_window_bits=8", NULL, 0, {0, 0, 0, 8}},
    {"server window unasked (smaller needs no ask)",
     PMD "; server_max_window_bits=10", NULL, 0, {0, 0, 10, 0}},
    {"quoted values, whitespace",
     " " PMD " ;server_max_window_bits = \"11\" ; client_max_window_bits=\"9\" ",
     NULL, 0, {0, 0, 11, 9}},
    {"our limit answered equal", PMD "; server_no_context_takeover;"
     " server_max_window_bits=10", &CFG_SMALL, 0, {1, 1, 10, 0}},
    {"our limit answered smaller", PMD "; server_no_context_takeover;"
     " server_max_window_bits=8", &CFG_SMALL, 0, {1, 1, 8, 0}},
    {"empty list elements", ", " PMD " ,", NULL, 0, {0, 0, 0, 0}},
    /* BAD_EXTENSION: not what we offered */
    {"another extension", "x-webkit-deflate-frame", NULL,
     LIGHTWS_ERR_BAD_EXTENSION, {0, 0, 0, 0}},
    {"another extension after ours", PMD ", foo", NULL,
     LIGHTWS_ERR_BAD_EXTENSION, {0, 0, 0, 0}},
    {"another extension before ours", "foo, " PMD, NULL,
     LIGHTWS_ERR_BAD_EXTENSION, {0, 0, 0, 0}},
    {"permessage-deflate twice", PMD ", " PMD, NULL, LIGHTWS_ERR_BAD_EXTENSION,
     {0, 0, 0, 0}},
    {"empty value", "", NULL, LIGHTWS_ERR_BAD_EXTENSION, {0, 0, 0, 0}},
    {"only commas", " , ", NULL, LIGHTWS_ERR_BAD_EXTENSION, {0, 0, 0, 0}},
    {"list starting with ;", "; " PMD, NULL, LIGHTWS_ERR_BAD_EXTENSION,
     {0, 0, 0, 0}},
    /* BAD_EXTENSION_PARAMS: our extension with parameters we cannot take */
    {"unknown parameter", PMD "; foo", NULL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS,
     {0, 0, 0, 0}},
    {"duplicate parameter", PMD "; client_max_window_bits=10;"
     " client_max_window_bits=10", NULL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS,
     {0, 0, 0, 0}},
    {"duplicate flag", PMD "; client_no_context_takeover;"
     " client_no_context_takeover", NULL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS,
     {0, 0, 0, 0}},
    {"client_max_window_bits bare in a response",
     PMD "; client_max_window_bits", NULL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS,
     {0, 0, 0, 0}},
    {"server_max_window_bits bare", PMD "; server_max_window_bits", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"window 7", PMD "; client_max_window_bits=7", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"window 16", PMD "; server_max_window_bits=16", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"window with leading zero", PMD "; server_max_window_bits=08", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"flag with a value", PMD "; server_no_context_takeover=true", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"our server window limit not answered", PMD "; server_no_context_takeover",
     &CFG_SMALL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"our server window limit answered larger", PMD
     "; server_no_context_takeover; server_max_window_bits=11", &CFG_SMALL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"server_no_context_takeover asked, not answered",
     PMD "; server_max_window_bits=10", &CFG_SMALL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"broken syntax in our element", PMD "; =1", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"unterminated quote", PMD "; server_max_window_bits=\"9", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
    {"quoted non-token", PMD "; server_max_window_bits=\"9 \"", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, {0, 0, 0, 0}},
};

START_TEST(test_pmd_check_response_table) {
  const struct check_case *c = &CHECKS[_i];
  struct lightws_pmd_params a;
  int r;
  memset(&a, 0xAA, sizeof a);
  r = lightws_pmd_check_response(c->value, strlen(c->value), c->cfg, &a);
  ck_assert_msg(r == c->want, "%s: %s, want %s", c->name, lightws_errname(r),
                lightws_errname(c->want));
  if (r == 0) {
    ck_assert_msg(memcmp(&a, &c->agreed, sizeof a) == 0,
                  "%s: agreed %u %u %u %u", c->name,
                  a.server_no_context_takeover, a.client_no_context_takeover,
                  a.server_max_window_bits, a.client_max_window_bits);
  } else {
    struct lightws_pmd_params zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_msg(memcmp(&a, &zero, sizeof a) == 0, "%s: agreed not zeroed",
                  c->name);
  }
}
END_TEST

/* Random edits of valid offers and answers: every result is one the
 * contracts allow, nothing is read past `len` (exact-size heap copies,
 * so ASan and valgrind see an overread), and whatever the server accepts
 * it can answer, and a client that offered the defaults takes it unless a
 * window limit it did not ask for is in it. */
START_TEST(test_pmd_random_edits_stay_in_bounds) {
  static const char *seeds[] = {
      PMD "; client_max_window_bits",
      PMD "; server_no_context_takeover; client_no_context_takeover;"
      " server_max_window_bits=10; client_max_window_bits=\"9\"",
      "x-foo; a=\"b\\\"c\", " PMD "; server_max_window_bits=15, " PMD,
  };
  static const char alphabet[] = "permsagdflt_-;,=\" \t\\0123456789xP";
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  int i, rounds = getenv("LIGHTWS_TEST_QUICK") ? 2000 : 20000;
  for (i = 0; i < rounds; i++) {
    const char *seed = seeds[i % 3];
    size_t n = strlen(seed), k, edits;
    char *v = malloc(n + 8);
    struct lightws_pmd_params a;
    char resp[256];
    int r;
    ck_assert_ptr_nonnull(v);
    memcpy(v, seed, n);
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    edits = 1 + x % 4;
    for (k = 0; k < edits; k++) {
      size_t at;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      at = (size_t)(x >> 8) % (n + 1);
      switch (x % 3) {
      case 0: /* replace */
        if (at < n) v[at] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        break;
      case 1: /* delete */
        if (at < n) memmove(v + at, v + at + 1, n - at - 1), n--;
        break;
      default: /* insert */
        memmove(v + at + 1, v + at, n - at);
        v[at] = alphabet[(x >> 32) % (sizeof alphabet - 1)];
        n++;
        break;
      }
    }
    {
      /* an exact-size copy: one byte past `n` is outside the block */
      char *w = malloc(n ? n : 1);
      ck_assert_ptr_nonnull(w);
      memcpy(w, v, n);
      r = lightws_pmd_check_response(w, n, NULL, &a);
      ck_assert(r == 0 || r == LIGHTWS_ERR_BAD_EXTENSION ||
                r == LIGHTWS_ERR_BAD_EXTENSION_PARAMS);
      if (have_zlib()) {
        r = lightws_pmd_accept(w, n, NULL, &a);
        ck_assert(r == 0 || r == 1);
        if (r == 1) {
          struct lightws_pmd_params c;
          ssize_t m = lightws_pmd_response(resp, sizeof resp, &a);
          ck_assert_int_gt(m, 0);
          ck_assert_int_eq(lightws_pmd_check_response(resp, (size_t)m, NULL, &c), 0);
          ck_assert(memcmp(&a, &c, sizeof a) == 0);
        }
      }
      free(w);
    }
    free(v);
  }
}
END_TEST

/* What one side agrees to, the other side checks and gets the same. */
START_TEST(test_pmd_accept_then_check_agree) {
  static const struct lightws_pmd_config *cfgs[] = {NULL, &CFG_SMALL, &CFG_W15,
                                                    &CFG_W9, &CFG_PEER9};
  size_t i, j;
  if (!have_zlib()) return;
  for (i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
    for (j = 0; j < sizeof cfgs / sizeof cfgs[0]; j++) {
      char offer[256], resp[256];
      struct lightws_pmd_params s, c;
      ssize_t n = lightws_pmd_offer(offer, sizeof offer, cfgs[i]);
      int r;
      ck_assert_int_gt(n, 0);
      r = lightws_pmd_accept(offer, (size_t)n, cfgs[j], &s);
      ck_assert_int_eq(r, 1); /* we always offer client_max_window_bits */
      n = lightws_pmd_response(resp, sizeof resp, &s);
      ck_assert_int_gt(n, 0);
      ck_assert_msg(lightws_pmd_check_response(resp, (size_t)n, cfgs[i], &c) == 0,
                    "client %zu server %zu: '%s' for '%s'", i, j, resp, offer);
      ck_assert_int_eq(c.server_max_window_bits, s.server_max_window_bits);
      ck_assert_int_eq(c.client_max_window_bits, s.client_max_window_bits);
      ck_assert_int_eq(c.server_no_context_takeover, s.server_no_context_takeover);
      ck_assert_int_ge(c.client_no_context_takeover, s.client_no_context_takeover);
    }
  }
}
END_TEST


/* ---- the handshake codec: lightws_handshake_parse_response_ext ------- */

/* A 101 response for the §1.3 key with `ext` header lines. */
static size_t resp101(char *out, size_t size, const char *status,
                      const char *ext) {
  int n = snprintf(out, size,
                   "HTTP/1.1 %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n%s\r\n",
                   status, ext);
  return (size_t)n;
}

#define KEY13 "dGhlIHNhbXBsZSBub25jZQ=="
#define HDR "Sec-WebSocket-Extensions: "

START_TEST(test_parse_response_ext) {
  struct lightws_response r;
  struct lightws_pmd_params a;
  char buf[1024];
  size_t n;
  memset(&r, 0, sizeof r);
  /* accepted */
  n = resp101(buf, sizeof buf, "101 Switching Protocols",
              HDR PMD "; server_max_window_bits=10; client_no_context_takeover\r\n");
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   (ssize_t)n);
  ck_assert_ptr_nonnull(r.extensions);
  ck_assert_int_eq(a.server_max_window_bits, 10);
  ck_assert_int_eq(a.client_no_context_takeover, 1);
  /* without an offer the same response is refused, as before */
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL, NULL, &a),
                   LIGHTWS_ERR_BAD_EXTENSION);
  ck_assert_int_eq(lightws_handshake_parse_response(&r, (const uint8_t *)buf, n,
                                                    0, KEY13, NULL),
                   LIGHTWS_ERR_BAD_EXTENSION);
  /* declined: no header, all zero, extensions NULL */
  n = resp101(buf, sizeof buf, "101 Switching Protocols", "");
  memset(&a, 0xAA, sizeof a);
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   (ssize_t)n);
  ck_assert_ptr_null(r.extensions);
  ck_assert_int_eq(a.server_max_window_bits | a.client_max_window_bits |
                       a.server_no_context_takeover | a.client_no_context_takeover,
                   0);
  /* several headers are one list: ours once, nothing else */
  n = resp101(buf, sizeof buf, "101 Switching Protocols",
              HDR PMD "\r\n" HDR PMD "\r\n");
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   LIGHTWS_ERR_BAD_EXTENSION);
  n = resp101(buf, sizeof buf, "101 Switching Protocols",
              HDR PMD "; foo\r\n");
  memset(&a, 0xAA, sizeof a);
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   LIGHTWS_ERR_BAD_EXTENSION_PARAMS);
  ck_assert_int_eq(a.server_max_window_bits | a.client_max_window_bits |
                       a.server_no_context_takeover | a.client_no_context_takeover,
                   0); /* zeroed on errors */
  /* the checks keep their order: status and accept come first */
  n = resp101(buf, sizeof buf, "400 Bad Request", HDR PMD "; foo\r\n");
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   LIGHTWS_ERR_BAD_STATUS);
  n = resp101(buf, sizeof buf, "101 Switching Protocols", HDR "x-foo\r\n");
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, "AAAAAAAAAAAAAAAAAAAAAA==",
                       NULL, &CFG_DEFAULT, &a),
                   LIGHTWS_ERR_BAD_ACCEPT);
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n, 0, KEY13, NULL,
                       &CFG_DEFAULT, NULL),
                   LIGHTWS_ERR_BAD_EXTENSION);
  /* incomplete stays incomplete */
  ck_assert_int_eq(lightws_handshake_parse_response_ext(
                       &r, (const uint8_t *)buf, n - 1, 0, KEY13, NULL,
                       &CFG_DEFAULT, &a),
                   LIGHTWS_ERR_INCOMPLETE);
}
END_TEST

/* ---- the endpoint: negotiation over socketpairs ---------------------- */

/* Each side's deflate block (a forked child has its own copy). */
static uint8_t pmd_mem[1u << 20] __attribute__((aligned(16)));

static int mem_fits(const struct lightws_pmd_config *cfg) {
  return lightws_pmd_mem_size(cfg) <= sizeof pmd_mem;
}

/* A text that compresses: `n` bytes of a repeated sentence. */
static void fill_text(uint8_t *buf, size_t n) {
  static const char t[] = "permessage-deflate over lightws, RFC 7692. ";
  size_t i;
  for (i = 0; i < n; i++) buf[i] = (uint8_t)t[i % (sizeof t - 1)];
}

/* Reads one whole message into buf; returns its length or the error. */
static ssize_t read_msg(struct lightws_stream *s, uint8_t *buf, size_t size) {
  size_t got = 0;
  for (;;) {
    struct lightws_chunk c;
    ssize_t n = lightws_stream_read(s, buf + got, size - got, &c);
    if (n < 0) return n;
    got += (size_t)n;
    if (c.message_end) return (ssize_t)got;
    if (got == size) return LIGHTWS_ERR_NOSPACE;
  }
}

static int send_all(struct lightws_stream *s, int op, const uint8_t *p,
                    size_t n) {
  do {
    ssize_t w = lightws_stream_send(s, op, p, n, 0);
    if (w < 0) return (int)w;
    p += w;
    n -= (size_t)w;
  } while (n > 0);
  return 0;
}

#define MSG_LEN 3000

/* Child: connect with `cfg`, expect deflate `want_on`, send MSG_LEN bytes
 * of text, expect the echo, close. Exit code = failed step. */
static void pmd_client_child(int fd, const struct lightws_pmd_config *cfg,
                             int want_on, int want_err) {
  struct lightws_stream s;
  struct lightws_client_options opt;
  static uint8_t rb[8192], msg[MSG_LEN], got[MSG_LEN + 16];
  int r;
  memset(&opt, 0, sizeof opt);
  opt.deflate = cfg;
  opt.deflate_mem = pmd_mem;
  opt.deflate_mem_size = sizeof pmd_mem;
  r = lightws_connect(&s, fd, rb, sizeof rb, "localhost", "/pmd", &opt);
  if (r != want_err) _exit(1);
  if (want_err) {
    if (lightws_stream_flush(&s) != 0) _exit(9);
    _exit(0);
  }
  if (lightws_stream_deflate(&s) != want_on) _exit(2);
  fill_text(msg, sizeof msg);
  if (send_all(&s, LIGHTWS_OPCODE_TEXT, msg, sizeof msg)) _exit(3);
  if (read_msg(&s, got, sizeof got) != MSG_LEN || memcmp(got, msg, MSG_LEN))
    _exit(4);
  if (send_all(&s, LIGHTWS_OPCODE_BINARY, msg, 0)) _exit(5);
  if (read_msg(&s, got, sizeof got) != 0) _exit(6);
  if (lightws_stream_close(&s, 1000, NULL, 0)) _exit(7);
  if (lightws_stream_recv(&s, (struct lightws_chunk *)(void *)got) !=
      LIGHTWS_ERR_CLOSED)
    _exit(8);
  _exit(0);
}

struct pair_case {
  const char *name;
  const struct lightws_pmd_config *client, *server; /* NULL server: none */
  int want_on;
  int want_err; /* client's connect result */
};

static const struct lightws_pmd_config CFG_REQUIRED = {
    0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
static const struct lightws_pmd_config CFG_PEER8 = {
    9, 8, 0, 0, 0, 0, 0, 0, 0, 0};

static const struct pair_case PAIRS[] = {
    {"defaults both", &CFG_DEFAULT, &CFG_DEFAULT, 1, 0},
    {"small client, default server", &CFG_SMALL, &CFG_DEFAULT, 1, 0},
    {"default client, small server", &CFG_DEFAULT, &CFG_SMALL, 1, 0},
    {"window 15 client, window 9 server", &CFG_W15, &CFG_W9, 1, 0},
    {"peer 8 both", &CFG_PEER8, &CFG_PEER8, 1, 0},
    {"server without deflate", &CFG_DEFAULT, NULL, 0, 0},
    {"server without deflate, client requires it", &CFG_REQUIRED, NULL, 0,
     LIGHTWS_ERR_EXTENSION_DECLINED},
};

START_TEST(test_endpoint_pmd_connect_accept) {
  const struct pair_case *c = &PAIRS[_i];
  struct lightws_stream s;
  struct lightws_server_options opt;
  static uint8_t rb[8192], buf[MSG_LEN + 16];
  int sv[2], st, r;
  pid_t pid;
  if (!have_zlib() || !mem_fits(c->client) || !mem_fits(c->server)) return;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  {
    /* every wait bounded (10 s) even without check's fork timeout */
    struct timeval tv = {10, 0};
    int i;
    for (i = 0; i < 2; i++) {
      (void)setsockopt(sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      (void)setsockopt(sv[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
  }
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(sv[0]);
    pmd_client_child(sv[1], c->client, c->want_on, c->want_err);
  }
  close(sv[1]);
  memset(&opt, 0, sizeof opt);
  opt.deflate = c->server;
  opt.deflate_mem = c->server ? pmd_mem : NULL;
  opt.deflate_mem_size = c->server ? sizeof pmd_mem : 0;
  r = lightws_accept(&s, sv[0], rb, sizeof rb, NULL, &opt);
  ck_assert_msg(r == 0, "%s: accept %s", c->name, lightws_errname(r));
  ck_assert_msg(lightws_stream_deflate(&s) == c->want_on, "%s: deflate %d",
                c->name, lightws_stream_deflate(&s));
  if (c->want_err) {
    /* §7.4.1: the client closes with 1010 */
    ck_assert_int_eq(read_msg(&s, buf, sizeof buf), LIGHTWS_ERR_CLOSED);
    ck_assert_uint_eq(lightws_stream_close_code(&s), 1010);
  } else {
    ssize_t n;
    int k;
    for (k = 0; k < 2; k++) { /* the text, then an empty binary */
      struct lightws_chunk ch;
      n = lightws_stream_read(&s, buf, sizeof buf, &ch);
      if (n >= 0 && !ch.message_end) {
        ssize_t m = read_msg(&s, buf + n, sizeof buf - (size_t)n);
        n = m < 0 ? m : n + m;
      }
      ck_assert_msg(n == (k ? 0 : MSG_LEN), "%s: message %d: %zd", c->name,
                    k, n);
      ck_assert_int_eq(send_all(&s, k ? LIGHTWS_OPCODE_BINARY
                                      : LIGHTWS_OPCODE_TEXT, buf, (size_t)n),
                       0);
    }
    ck_assert_int_eq(read_msg(&s, buf, sizeof buf), LIGHTWS_ERR_CLOSED);
  }
  close(sv[0]);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: client step %d",
                c->name, WEXITSTATUS(st));
}
END_TEST

/* Reads what the peer wrote to `fd` until an empty line; NUL-terminated.
 * Bounded: a read waits 10 s at most (CK_FORK=no runs have no timeout). */
static size_t read_head(int fd, char *buf, size_t size) {
  struct timeval tv = {10, 0};
  size_t n = 0;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (n + 1 < size) {
    ssize_t r = read(fd, buf + n, 1);
    if (r <= 0) break;
    n++;
    if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[n] = 0;
  return n;
}

struct resp_case {
  const char *name;
  const char *headers; /* extension header lines of the response */
  const struct lightws_pmd_config *cfg;
  int want;            /* client_handshake result */
  int want_on;
};

#define EXT "Sec-WebSocket-Extensions: "
static const struct resp_case RESPS[] = {
    {"accepted", EXT PMD "\r\n", NULL, 0, 1},
    {"accepted with parameters",
     EXT PMD "; server_no_context_takeover; client_max_window_bits=9\r\n", NULL,
     0, 1},
    {"header name in another case", "sec-websocket-extensions: " PMD "\r\n",
     NULL, 0, 1},
    {"declined", "", NULL, 0, 0},
    {"declined, required", "", &CFG_REQUIRED, LIGHTWS_ERR_EXTENSION_DECLINED, 0},
    {"our window limit honoured", EXT PMD "; server_no_context_takeover;"
     " server_max_window_bits=10\r\n", &CFG_SMALL, 0, 1},
    {"our window limit ignored", EXT PMD "; server_no_context_takeover\r\n",
     &CFG_SMALL, LIGHTWS_ERR_BAD_EXTENSION_PARAMS, 0},
    {"unknown parameter", EXT PMD "; foo=1\r\n", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, 0},
    {"client_max_window_bits without a value",
     EXT PMD "; client_max_window_bits\r\n", NULL,
     LIGHTWS_ERR_BAD_EXTENSION_PARAMS, 0},
    {"an extension not offered", EXT "x-webkit-deflate-frame\r\n", NULL,
     LIGHTWS_ERR_BAD_EXTENSION, 0},
    {"two headers, both ours", EXT PMD "\r\n" EXT PMD "\r\n", NULL,
     LIGHTWS_ERR_BAD_EXTENSION, 0},
    {"two headers, the second another extension", EXT PMD "\r\n" EXT "foo\r\n",
     NULL, LIGHTWS_ERR_BAD_EXTENSION, 0},
    {"two headers, the first another extension", EXT "foo\r\n" EXT PMD "\r\n",
     NULL, LIGHTWS_ERR_BAD_EXTENSION, 0},
    {"empty header", EXT "\r\n", NULL, LIGHTWS_ERR_BAD_EXTENSION, 0},
};

/* The client against a scripted server response: the request carries our
 * offer, the response is checked as §7.1 says. */
START_TEST(test_client_checks_pmd_response) {
  const struct resp_case *c = &RESPS[_i];
  struct lightws_stream s;
  struct lightws_client_options opt;
  struct lightws_response resp;
  struct lightws_header hdrs[16];
  static uint8_t rb[8192];
  char req[4096], offer[128], accept[LIGHTWS_ACCEPT_LEN + 1], out[4096];
  const char *key;
  int sv[2], r, spins = 0;
  if (!have_zlib() || !mem_fits(c->cfg)) return;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, 0), 0);
  memset(&opt, 0, sizeof opt);
  opt.deflate = c->cfg ? c->cfg : &CFG_DEFAULT;
  opt.deflate_mem = pmd_mem;
  opt.deflate_mem_size = sizeof pmd_mem;
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), 0);
  read_head(sv[1], req, sizeof req);
  ck_assert_int_gt(lightws_pmd_offer(offer, sizeof offer, opt.deflate), 0);
  {
    char line[200];
    snprintf(line, sizeof line, "\r\n" EXT "%s\r\n\r\n", offer);
    ck_assert_msg(strstr(req, line) != NULL, "offer missing: %s", req);
  }
  key = strstr(req, "Sec-WebSocket-Key: ");
  ck_assert_ptr_nonnull(key);
  key += 19;
  lightws_handshake_accept(key, LIGHTWS_KEY_LEN, accept);
  snprintf(out, sizeof out,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
           accept, c->headers);
  ck_assert_int_eq(write(sv[1], out, strlen(out)), (ssize_t)strlen(out));
  memset(&resp, 0, sizeof resp);
  resp.headers = hdrs;
  resp.max_headers = 16;
  while ((r = lightws_client_handshake(&s, &resp)) == LIGHTWS_ERR_WOULDBLOCK)
    ck_assert_int_lt(++spins, 1000);
  ck_assert_msg(r == c->want, "%s: %s, want %s", c->name, lightws_errname(r),
                lightws_errname(c->want));
  ck_assert_int_eq(lightws_stream_deflate(&s), c->want_on);
  if (r == LIGHTWS_ERR_EXTENSION_DECLINED) {
    /* close 1010 with a reason went out; the stream stays failed */
    uint8_t f[64];
    ssize_t n = read(sv[1], f, sizeof f);
    ck_assert_int_ge(n, 8);
    ck_assert_int_eq(f[0], 0x88);
    ck_assert_int_eq(((f[6] ^ f[2]) << 8) | (f[7] ^ f[3]), 1010);
    ck_assert_int_eq(lightws_stream_error(&s), LIGHTWS_ERR_EXTENSION_DECLINED);
    ck_assert_int_eq(lightws_stream_send(&s, 1, "x", 1, 0),
                     LIGHTWS_ERR_EXTENSION_DECLINED);
  }
  close(sv[0]);
  close(sv[1]);
}
END_TEST

/* Offers spread over several request headers count in order; the answer
 * is the last response header. */
START_TEST(test_server_deflate_reads_every_header) {
  static const char REQ[] =
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      EXT PMD "; foo\r\n"
      EXT "x-bar, " PMD "; server_max_window_bits=10\r\n\r\n";
  struct lightws_stream s;
  struct lightws_request req;
  struct lightws_header hdrs[16];
  static uint8_t rb[4096];
  char out[1024];
  int sv[2], stored;
  for (stored = 0; stored < 2; stored++) {
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_SERVER, sv[0], rb, sizeof rb, 0), 0);
    ck_assert_int_eq(lightws_server_deflate(&s, &req, NULL, pmd_mem, sizeof pmd_mem),
                     LIGHTWS_ERR_INVALID); /* before step 1 */
    ck_assert_int_eq(write(sv[1], REQ, sizeof REQ - 1), (ssize_t)sizeof REQ - 1);
    memset(&req, 0, sizeof req);
    req.headers = stored ? hdrs : NULL;
    req.max_headers = stored ? 16 : 0;
    ck_assert_int_eq(lightws_server_read_request(&s, &req, 0), 0);
    if (!have_zlib()) {
      ck_assert_int_eq(lightws_server_deflate(&s, &req, NULL, pmd_mem, sizeof pmd_mem),
                       LIGHTWS_ERR_UNSUPPORTED);
      close(sv[0]);
      close(sv[1]);
      return;
    }
    ck_assert_int_eq(lightws_server_deflate(&s, &req, NULL, NULL, 0),
                     LIGHTWS_ERR_INVALID);
    if (lightws_pmd_mem_size(NULL) > 0)
      ck_assert_int_eq(lightws_server_deflate(&s, &req, NULL, pmd_mem,
                                              lightws_pmd_mem_size(NULL) - 1),
                       LIGHTWS_ERR_NOSPACE);
    /* stored headers: the second header's offer; only the first header
     * (req.extensions): its one offer is invalid, declined */
    ck_assert_int_eq(lightws_server_deflate(&s, &req, NULL, pmd_mem, sizeof pmd_mem),
                     stored ? 1 : 0);
    ck_assert_int_eq(lightws_server_accept(&s, NULL, NULL, 0), 0);
    read_head(sv[1], out, sizeof out);
    if (stored)
      ck_assert_msg(strstr(out, "\r\n" EXT PMD "; server_max_window_bits=10\r\n\r\n"),
                    "%s", out);
    else
      ck_assert_msg(strstr(out, EXT) == NULL, "%s", out);
    ck_assert_int_eq(lightws_stream_deflate(&s), stored);
    close(sv[0]);
    close(sv[1]);
  }
}
END_TEST

/* lightws_accept() without a request struct still sees every header. */
START_TEST(test_accept_deflate_every_header) {
  static const char REQ[] =
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      EXT "x-foo\r\n" EXT PMD "; client_max_window_bits\r\n\r\n";
  struct lightws_stream s;
  struct lightws_server_options opt;
  static uint8_t rb[4096];
  char out[1024];
  int sv[2];
  if (!have_zlib()) return;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(write(sv[1], REQ, sizeof REQ - 1), (ssize_t)sizeof REQ - 1);
  memset(&opt, 0, sizeof opt);
  opt.deflate = &CFG_DEFAULT;
  opt.deflate_mem = pmd_mem;
  opt.deflate_mem_size = sizeof pmd_mem;
  ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, NULL, &opt), 0);
  read_head(sv[1], out, sizeof out);
  ck_assert_msg(strstr(out, "\r\n" EXT PMD "; client_max_window_bits=15\r\n\r\n"),
                "%s", out);
  ck_assert_int_eq(lightws_stream_deflate(&s), 1);
  /* a block too small is the server's fault: 500, and the error */
  close(sv[0]);
  close(sv[1]);
  if (lightws_pmd_mem_size(NULL) > 0) {
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(write(sv[1], REQ, sizeof REQ - 1), (ssize_t)sizeof REQ - 1);
    opt.deflate_mem_size = lightws_pmd_mem_size(NULL) - 1;
    ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, NULL, &opt),
                     LIGHTWS_ERR_NOSPACE);
    read_head(sv[1], out, sizeof out);
    ck_assert_msg(strncmp(out, "HTTP/1.1 500", 12) == 0, "%s", out);
    close(sv[0]);
    close(sv[1]);
  }
}
END_TEST

/* A client request that does not fit rbuf with the offer added. */
START_TEST(test_client_start_offer_needs_room) {
  struct lightws_stream s;
  struct lightws_client_options opt;
  static uint8_t rb[LIGHTWS_RBUF_MIN];
  struct lightws_header h;
  static char big[200];
  int sv[2];
  if (!have_zlib()) return;
  memset(big, 'a', sizeof big - 1);
  h.name = "X-Big";
  h.name_len = 5;
  h.value = big;
  h.value_len = 80; /* 229 bytes without the offer, 300 with it */
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_CLIENT, sv[0], rb, sizeof rb, 0), 0);
  memset(&opt, 0, sizeof opt);
  opt.headers = &h;
  opt.num_headers = 1;
  opt.deflate = &CFG_DEFAULT;
  opt.deflate_mem = pmd_mem;
  opt.deflate_mem_size = sizeof pmd_mem;
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), LIGHTWS_ERR_NOSPACE);
  opt.deflate_mem = NULL;
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), LIGHTWS_ERR_INVALID);
  opt.deflate = NULL; /* without the offer it fits */
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", &opt), 0);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

Suite *pmd_negotiate_suite(void) {
  Suite *s = suite_create("pmd_negotiate");
  TCase *t = tcase_create("offer");
  tcase_add_loop_test(t, test_pmd_offer_values, 0,
                      (int)(sizeof OFFERS / sizeof OFFERS[0]));
  tcase_add_test(t, test_pmd_offer_rejects_bad_config);
  tcase_add_test(t, test_pmd_without_zlib_is_unsupported);
  suite_add_tcase(s, t);
  t = tcase_create("accept");
  tcase_add_loop_test(t, test_pmd_accept_table, 0,
                      (int)(sizeof ACCEPTS / sizeof ACCEPTS[0]));
  tcase_add_test(t, test_pmd_accept_reads_only_len_bytes);
  tcase_add_test(t, test_pmd_response_values);
  suite_add_tcase(s, t);
  t = tcase_create("check_response");
  tcase_add_loop_test(t, test_pmd_check_response_table, 0,
                      (int)(sizeof CHECKS / sizeof CHECKS[0]));
  tcase_add_test(t, test_pmd_accept_then_check_agree);
  tcase_add_test(t, test_pmd_random_edits_stay_in_bounds);
  suite_add_tcase(s, t);
  t = tcase_create("handshake");
  tcase_add_test(t, test_parse_response_ext);
  suite_add_tcase(s, t);
  t = tcase_create("endpoint");
  tcase_set_timeout(t, 30);
  tcase_add_loop_test(t, test_endpoint_pmd_connect_accept, 0,
                      (int)(sizeof PAIRS / sizeof PAIRS[0]));
  tcase_add_loop_test(t, test_client_checks_pmd_response, 0,
                      (int)(sizeof RESPS / sizeof RESPS[0]));
  tcase_add_test(t, test_server_deflate_reads_every_header);
  tcase_add_test(t, test_accept_deflate_every_header);
  tcase_add_test(t, test_client_start_offer_needs_room);
  suite_add_tcase(s, t);
  return s;
}
