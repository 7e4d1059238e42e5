/* SPDX-License-Identifier: MIT */
/* libFuzzer target: lightws_handshake_parse_request() (RFC 6455 §4.2.1) on
 * arbitrary heads, with the properties a server relies on checked. */
#include <stdint.h>
#include <string.h>

#include "lightws.h"
#include "fuzz_common.h"

static int in_input(const char *p, size_t n, const uint8_t *in, size_t len)
{
  if (!p)
    return n == 0;
  return (const uint8_t *)p >= in && (const uint8_t *)p + n <= in + len;
}

static int is_handshake_error(ssize_t r)
{
  return r <= -60 && r >= -99;
}

static void check(const uint8_t *in, size_t len, size_t max_headers,
                  size_t max_head)
{
  struct lightws_header hdrs[LIGHTWS_HANDSHAKE_HEADERS_MAX];
  struct lightws_request req;
  uint8_t out[1024];
  char accept[LIGHTWS_ACCEPT_LEN + 1];
  size_t i, limit = max_head ? max_head : LIGHTWS_HANDSHAKE_HEAD_MAX;
  ssize_t r, p;

  memset(&req, 0, sizeof req);
  req.headers = max_headers ? hdrs : NULL;
  req.max_headers = max_headers;
  r = lightws_handshake_parse_request(&req, in, len, max_head);
  FUZZ_CHECK(r == LIGHTWS_ERR_INCOMPLETE || r > 0 || is_handshake_error(r));
  FUZZ_CHECK(req.num_headers <= max_headers);
  if (r == LIGHTWS_ERR_INCOMPLETE)
    FUZZ_CHECK(len < limit);
  if (r > 0 || (is_handshake_error(r) && lightws_http_status((int)r) != 0 &&
                r != LIGHTWS_ERR_HTTP_MALFORMED && r != LIGHTWS_ERR_HEAD_TOO_LARGE &&
                r != LIGHTWS_ERR_TOO_MANY_HEADERS)) {
    /* A complete head: parsed views all lie inside it. */
    FUZZ_CHECK(req.head_len >= 4 && req.head_len <= len && req.head_len <= limit);
    /* The head ends with an empty line: CRLF CRLF, or a bare LF form
     * (RFC 7230 §3.5 lets a recipient accept LF as a line end). */
    FUZZ_CHECK(in[req.head_len - 1] == '\n' &&
               (in[req.head_len - 2] == '\n' ||
                (in[req.head_len - 2] == '\r' && in[req.head_len - 3] == '\n')));
    FUZZ_CHECK(in_input(req.method, req.method_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.path, req.path_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.host, req.host_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.key, req.key_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.origin, req.origin_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.protocol, req.protocol_len, in, req.head_len));
    FUZZ_CHECK(in_input(req.extensions, req.extensions_len, in, req.head_len));
    for (i = 0; i < req.num_headers; i++) {
      FUZZ_CHECK(in_input(hdrs[i].name, hdrs[i].name_len, in, req.head_len));
      FUZZ_CHECK(in_input(hdrs[i].value, hdrs[i].value_len, in, req.head_len));
      FUZZ_CHECK(hdrs[i].name_len > 0);
      if (hdrs[i].value_len) {
        char a = hdrs[i].value[0], z = hdrs[i].value[hdrs[i].value_len - 1];
        FUZZ_CHECK(a != ' ' && a != '\t' && z != ' ' && z != '\t');
      }
    }
  }
  if (is_handshake_error(r))
    FUZZ_CHECK(lightws_http_status((int)r) >= 400);
  if (r > 0) {
    FUZZ_CHECK((size_t)r == req.head_len);
    FUZZ_CHECK(req.method_len == 3 && memcmp(req.method, "GET", 3) == 0);
    FUZZ_CHECK(req.http_minor >= 1);
    FUZZ_CHECK(req.host != NULL);
    FUZZ_CHECK(req.version == 13);
    FUZZ_CHECK(req.key_len == LIGHTWS_KEY_LEN);
    if (max_headers) {
      FUZZ_CHECK(lightws_header_has_token(hdrs, req.num_headers, "Upgrade", "websocket"));
      FUZZ_CHECK(lightws_header_has_token(hdrs, req.num_headers, "Connection", "upgrade"));
    }
    /* The server's next steps work on what was parsed. */
    lightws_handshake_accept(req.key, req.key_len, accept);
    FUZZ_CHECK(strlen(accept) == LIGHTWS_ACCEPT_LEN);
    p = lightws_handshake_build_response(out, sizeof out, req.key, req.key_len,
                                         NULL, NULL, 0);
    FUZZ_CHECK(p > 0 && (size_t)p <= sizeof out);
    /* Bytes after the head (a pipelined frame) do not change the verdict. */
    if ((size_t)r < len) {
      struct lightws_request r2;
      memset(&r2, 0, sizeof r2);
      FUZZ_CHECK(lightws_handshake_parse_request(&r2, in, (size_t)r, max_head) == r);
    }
    /* Every prefix of an accepted head is incomplete (bounded work). */
    for (i = 0; i < (size_t)r; i += 1 + (size_t)r / 64) {
      struct lightws_request r3;
      memset(&r3, 0, sizeof r3);
      r3.headers = max_headers ? hdrs : NULL;
      r3.max_headers = max_headers;
      p = lightws_handshake_parse_request(&r3, in, i, max_head);
      FUZZ_CHECK(p == LIGHTWS_ERR_INCOMPLETE);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check(data, size, LIGHTWS_HANDSHAKE_HEADERS_MAX, 0);
  check(data, size, 0, 0);
  check(data, size, 3, 200);
  return 0;
}
