/* SPDX-License-Identifier: MIT */
/* Runs every C suite; exit status is the number of failures (capped). */
#include <stdlib.h>
#include "check_lightws.h"

int main(void) {
  SRunner *sr = srunner_create(error_suite());
  srunner_add_suite(sr, frame_suite());
  srunner_add_suite(sr, utf8_suite());
  srunner_add_suite(sr, util_suite());
  srunner_add_suite(sr, handshake_suite());
  srunner_add_suite(sr, stream_suite());
  srunner_add_suite(sr, endpoint_suite());
  srunner_add_suite(sr, time_suite());
  srunner_add_suite(sr, deflate_suite());
  srunner_add_suite(sr, pmd_negotiate_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
