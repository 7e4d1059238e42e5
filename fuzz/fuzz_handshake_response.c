/* SPDX-License-Identifier: MIT */
/* libFuzzer target: lightws_handshake_parse_response() (RFC 6455 §4.1,
 * client side) with and without a key and offered subprotocols. */
#include <stdint.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

static int in_input(const char *p, size_t n, const uint8_t *in, size_t len)
{
  if (!p)
    return n == 0;
  return (const uint8_t *)p >= in && (const uint8_t *)p + n <= in + len;
}

static void check(const uint8_t *in, size_t len, size_t max_headers,
                  size_t max_head, const char *key, const char *protocols)
{
  struct lightws_header hdrs[LIGHTWS_HANDSHAKE_HEADERS_MAX];
  struct lightws_response resp;
  char want[LIGHTWS_ACCEPT_LEN + 1];
  size_t i, limit = max_head ? max_head : LIGHTWS_HANDSHAKE_HEAD_MAX;
  ssize_t r;

  memset(&resp, 0, sizeof resp);
  resp.headers = max_headers ? hdrs : NULL;
  resp.max_headers = max_headers;
  r = lightws_handshake_parse_response(&resp, in, len, max_head, key, protocols);
  FUZZ_CHECK(r == LIGHTWS_ERR_INCOMPLETE || r > 0 || (r <= -60 && r >= -99));
  FUZZ_CHECK(resp.num_headers <= max_headers);
  if (r == LIGHTWS_ERR_INCOMPLETE)
    FUZZ_CHECK(len < limit);
  if (r == LIGHTWS_ERR_BAD_STATUS)
    FUZZ_CHECK(resp.status != 101);
  if (r > 0) {
    FUZZ_CHECK((size_t)r == resp.head_len && (size_t)r <= len && (size_t)r <= limit);
    FUZZ_CHECK(resp.status == 101);
    FUZZ_CHECK(in_input(resp.reason, resp.reason_len, in, (size_t)r));
    FUZZ_CHECK(in_input(resp.accept, resp.accept_len, in, (size_t)r));
    FUZZ_CHECK(in_input(resp.protocol, resp.protocol_len, in, (size_t)r));
    FUZZ_CHECK(resp.extensions == NULL);
    for (i = 0; i < resp.num_headers; i++) {
      FUZZ_CHECK(in_input(hdrs[i].name, hdrs[i].name_len, in, (size_t)r));
      FUZZ_CHECK(in_input(hdrs[i].value, hdrs[i].value_len, in, (size_t)r));
    }
    if (key) {
      lightws_handshake_accept(key, strlen(key), want);
      FUZZ_CHECK(resp.accept_len == LIGHTWS_ACCEPT_LEN &&
                 memcmp(resp.accept, want, LIGHTWS_ACCEPT_LEN) == 0);
    }
    if (!protocols)
      FUZZ_CHECK(resp.protocol == NULL);
    for (i = 0; i < (size_t)r; i += 1 + (size_t)r / 64) {
      struct lightws_response r2;
      memset(&r2, 0, sizeof r2);
      FUZZ_CHECK(lightws_handshake_parse_response(&r2, in, i, max_head, key,
                                                  protocols) == LIGHTWS_ERR_INCOMPLETE);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check(data, size, LIGHTWS_HANDSHAKE_HEADERS_MAX, 0, KEY, NULL);
  check(data, size, LIGHTWS_HANDSHAKE_HEADERS_MAX, 0, KEY, "chat, superchat");
  check(data, size, 0, 0, NULL, NULL);
  check(data, size, 2, 160, KEY, "chat");
  return 0;
}
