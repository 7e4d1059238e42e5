/* SPDX-License-Identifier: MIT */
/* Endpoint suite: opening handshakes over socketpairs and scripted IO. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "check_lightws.h"

START_TEST(test_server_reject_needs_server_state) {
  struct lightws_stream s;
  uint8_t rb[512];
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_CLIENT, -1, rb, sizeof rb, 0), 0);
  ck_assert_int_eq(lightws_server_accept(&s, NULL, NULL, 0), LIGHTWS_ERR_INVALID);
}
END_TEST

Suite *endpoint_suite(void) {
  Suite *s = suite_create("endpoint");
  TCase *t = tcase_create("handshake");
  tcase_add_test(t, test_server_reject_needs_server_state);
  suite_add_tcase(s, t);
  return s;
}
