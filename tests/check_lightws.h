/* SPDX-License-Identifier: MIT */
/* Suites of the C test runner; one per layer, joined in check_main.c. */
#ifndef CHECK_LIGHTWS_H
#define CHECK_LIGHTWS_H
#include <check.h>
#include "lightws.h"

Suite *error_suite(void);     /* check_frame.c */
Suite *frame_suite(void);     /* check_frame.c */
Suite *utf8_suite(void);      /* check_utf8.c */
Suite *util_suite(void);      /* check_util.c: sha1, base64, random */
Suite *handshake_suite(void); /* check_handshake.c */
Suite *stream_suite(void);    /* check_stream.c */
Suite *endpoint_suite(void);  /* check_endpoint.c */
Suite *time_suite(void);      /* check_time.c: timeouts, small buffers */
Suite *deflate_suite(void);   /* check_deflate.c: permessage-deflate */
Suite *pmd_negotiate_suite(void); /* check_pmd_negotiate.c */

#endif
