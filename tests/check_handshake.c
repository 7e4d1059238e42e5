/* SPDX-License-Identifier: MIT */
/* Tests of the handshake codec (RFC 6455 §4): key/accept, request and response encode and parse, limits, injection. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check_lightws.h"
#include "internal.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Request pieces for the table tests; each line ends in CRLF. */
#define RL "GET /chat HTTP/1.1\r\n"
#define H_HOST "Host: server.example.com\r\n"
#define H_UP "Upgrade: websocket\r\n"
#define H_CONN "Connection: Upgrade\r\n"
#define H_KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define H_VER "Sec-WebSocket-Version: 13\r\n"
#define GOOD_TAIL H_HOST H_UP H_CONN H_KEY H_VER "\r\n"

/* §1.2 sample handshake */
static const char rfc_request[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Origin: http://example.com\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

static const char rfc_response[] =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: chat\r\n"
    "\r\n";

#define GUARD 0xA5

static struct lightws_header hbuf[LIGHTWS_HANDSHAKE_HEADERS_MAX];

static void req_init(struct lightws_request *r) {
  memset(r, 0x5A, sizeof *r); /* outputs must all be set by the parser */
  r->headers = hbuf;
  r->max_headers = LIGHTWS_HANDSHAKE_HEADERS_MAX;
}

static void resp_init(struct lightws_response *r) {
  memset(r, 0x5A, sizeof *r);
  r->headers = hbuf;
  r->max_headers = LIGHTWS_HANDSHAKE_HEADERS_MAX;
}

static ssize_t parse_req(struct lightws_request *r, const char *s, size_t n) {
  return lightws_handshake_parse_request(r, (const uint8_t *)s, n, 0);
}

/* s[0..n) equals the NUL-terminated `want` */
static int eq(const char *s, size_t n, const char *want) {
  return s != NULL && n == strlen(want) && memcmp(s, want, n) == 0;
}

#define ck_field(ptr, len, want)                                          \
  ck_assert_msg(eq((ptr), (len), (want)), "%s: got \"%.*s\", want \"%s\"", \
                #ptr, (ptr) ? (int)(len) : 6, (ptr) ? (ptr) : "(null)", (want))

static int all_guard(const uint8_t *b, size_t from, size_t to) {
  size_t i;
  for (i = from; i < to; i++)
    if (b[i] != GUARD)
      return 0;
  return 1;
}

/* ------------------------------------------------------------------------
 * accept
 * ------------------------------------------------------------------------ */

START_TEST(test_accept_matches_rfc_example) {
  char acc[LIGHTWS_ACCEPT_LEN + 1];
  memset(acc, 'x', sizeof acc);
  lightws_handshake_accept(RFC_KEY, strlen(RFC_KEY), acc);
  ck_assert_str_eq(acc, RFC_ACCEPT); /* §1.3 */
}
END_TEST

START_TEST(test_key_is_base64_of_16_random_bytes) {
  char k1[LIGHTWS_KEY_LEN + 1], k2[LIGHTWS_KEY_LEN + 1];
  uint8_t raw[18];
  memset(k1, 'x', sizeof k1);
  ck_assert_int_eq(lightws_handshake_key(k1), 0);
  ck_assert_int_eq(lightws_handshake_key(k2), 0);
  ck_assert_uint_eq(strlen(k1), LIGHTWS_KEY_LEN);
  ck_assert_int_eq(lightws__base64_decode(k1, LIGHTWS_KEY_LEN, raw, sizeof raw),
                   16);
  ck_assert_str_ne(k1, k2); /* fresh per call (§4.1) */
}
END_TEST

START_TEST(test_generated_key_passes_the_request_parser) {
  char key[LIGHTWS_KEY_LEN + 1];
  uint8_t out[512];
  struct lightws_request r;
  ssize_t n;
  int i;
  for (i = 0; i < 64; i++) {
    ck_assert_int_eq(lightws_handshake_key(key), 0);
    n = lightws_handshake_build_request(out, sizeof out, "h", "/", key, NULL,
                                        NULL, NULL, 0);
    ck_assert_int_gt(n, 0);
    req_init(&r);
    ck_assert_int_eq(lightws_handshake_parse_request(&r, out, (size_t)n, 0), n);
  }
}
END_TEST

/* ------------------------------------------------------------------------
 * request: parse
 * ------------------------------------------------------------------------ */

START_TEST(test_parse_rfc_sample_request) {
  struct lightws_request r;
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, rfc_request, sizeof rfc_request - 1),
                   (ssize_t)sizeof rfc_request - 1);
  ck_field(r.method, r.method_len, "GET");
  ck_field(r.path, r.path_len, "/chat");
  ck_assert_int_eq(r.http_minor, 1);
  ck_field(r.host, r.host_len, "server.example.com");
  ck_field(r.key, r.key_len, RFC_KEY);
  ck_field(r.origin, r.origin_len, "http://example.com");
  ck_field(r.protocol, r.protocol_len, "chat, superchat");
  ck_assert_ptr_null(r.extensions);
  ck_assert_uint_eq(r.extensions_len, 0);
  ck_assert_int_eq(r.version, 13);
  ck_assert_uint_eq(r.head_len, sizeof rfc_request - 1);
  ck_assert_uint_eq(r.num_headers, 7);
  ck_field(r.headers[0].name, r.headers[0].name_len, "Host");
  ck_field(r.headers[6].name, r.headers[6].name_len, "Sec-WebSocket-Version");
  ck_field(r.headers[6].value, r.headers[6].value_len, "13");
}
END_TEST

/* Request heads as clients send them (their documented header sets and
 * orders; keys are valid 16-byte nonces). */
static const struct client_case {
  const char *client;
  const char *head;
  const char *path, *host, *key, *origin, *protocol, *extensions;
  size_t num_headers;
} clients[] = {
    {"chromium",
     "GET /chat?room=1 HTTP/1.1\r\n"
     "Host: localhost:8080\r\n"
     "Connection: Upgrade\r\n"
     "Pragma: no-cache\r\n"
     "Cache-Control: no-cache\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
     "Upgrade: websocket\r\n"
     "Origin: http://localhost:8080\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Accept-Encoding: gzip, deflate, br\r\n"
     "Accept-Language: en-US,en;q=0.9\r\n"
     "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
     "\r\n",
     "/chat?room=1", "localhost:8080", "x3JJHMbDL1EzLkh9GBhXDw==",
     "http://localhost:8080", NULL,
     "permessage-deflate; client_max_window_bits", 12},
    {"firefox",
     "GET /socket HTTP/1.1\r\n"
     "Host: example.org\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 "
     "Firefox/121.0\r\n"
     "Accept: */*\r\n"
     "Accept-Language: en-US,en;q=0.5\r\n"
     "Accept-Encoding: gzip, deflate, br\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Origin: https://example.org\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate\r\n"
     "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
     "Connection: keep-alive, Upgrade\r\n"
     "Sec-Fetch-Dest: empty\r\n"
     "Sec-Fetch-Mode: websocket\r\n"
     "Sec-Fetch-Site: same-origin\r\n"
     "Pragma: no-cache\r\n"
     "Cache-Control: no-cache\r\n"
     "Upgrade: websocket\r\n"
     "\r\n",
     "/socket", "example.org", "AQIDBAUGBwgJCgsMDQ4PEA==",
     "https://example.org", NULL, "permessage-deflate", 16},
    {"safari",
     "GET /ws HTTP/1.1\r\n"
     "Host: 192.168.1.5:9000\r\n"
     "Origin: http://192.168.1.5:9000\r\n"
     "Pragma: no-cache\r\n"
     "Cache-Control: no-cache\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Upgrade: websocket\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate\r\n"
     "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) "
     "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
     "Safari/605.1.15\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Protocol: mqtt, mqttv3.1\r\n"
     "\r\n",
     "/ws", "192.168.1.5:9000", RFC_KEY, "http://192.168.1.5:9000",
     "mqtt, mqttv3.1", "permessage-deflate", 11},
    {"curl",
     "GET /echo HTTP/1.1\r\n"
     "Host: 127.0.0.1:9001\r\n"
     "User-Agent: curl/8.5.0\r\n"
     "Accept: */*\r\n"
     "Upgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Sec-WebSocket-Key: /////////////////////w==\r\n"
     "Connection: Upgrade\r\n"
     "\r\n",
     "/echo", "127.0.0.1:9001", "/////////////////////w==", NULL, NULL, NULL,
     7},
    {"python-websockets",
     "GET / HTTP/1.1\r\n"
     "Host: localhost:8765\r\n"
     "Upgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; "
     "client_max_window_bits\r\n"
     "User-Agent: Python/3.11 websockets/10.4\r\n"
     "\r\n",
     "/", "localhost:8765", "AAAAAAAAAAAAAAAAAAAAAA==", NULL, NULL,
     "permessage-deflate; client_max_window_bits", 7},
    {"node-ws",
     "GET /?token=abc HTTP/1.1\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
     "Connection: Upgrade\r\n"
     "Upgrade: websocket\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; "
     "client_max_window_bits\r\n"
     "Host: [::1]:8080\r\n"
     "\r\n",
     "/?token=abc", "[::1]:8080", "x3JJHMbDL1EzLkh9GBhXDw==", NULL, NULL,
     "permessage-deflate; client_max_window_bits", 6},
    /* captured on loopback from the clients installed here */
    {"chromium 156 headless (captured)",
     "GET /chrome HTTP/1.1\r\n"
     "Host: 127.0.0.1:35433\r\n"
     "Connection: Upgrade\r\n"
     "Pragma: no-cache\r\n"
     "Cache-Control: no-cache\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
     "like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36\r\n"
     "Upgrade: websocket\r\n"
     "Origin: null\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Accept-Encoding: gzip, deflate, br, zstd\r\n"
     "Accept-Language: en-US,en;q=0.9\r\n"
     "Sec-WebSocket-Key: PUsjP94iK/BINY0i81Vdgw==\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
     "Sec-WebSocket-Protocol: mqtt, v2\r\n"
     "\r\n",
     "/chrome", "127.0.0.1:35433", "PUsjP94iK/BINY0i81Vdgw==", "null",
     "mqtt, v2", "permessage-deflate; client_max_window_bits", 13},
    {"python-websockets 10.4 (captured)",
     "GET /py?x=1 HTTP/1.1\r\n"
     "Host: 127.0.0.1:52457\r\n"
     "Origin: http://o.example\r\n"
     "Upgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: fnkIqyMAj0wcts+ApfOaZA==\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; "
     "client_max_window_bits\r\n"
     "Sec-WebSocket-Protocol: chat\r\n"
     "User-Agent: Python/3.11 websockets/10.4\r\n"
     "\r\n",
     "/py?x=1", "127.0.0.1:52457", "fnkIqyMAj0wcts+ApfOaZA==",
     "http://o.example", "chat", "permessage-deflate; client_max_window_bits",
     9},
    {"node ws 8 (captured)",
     "GET /node HTTP/1.1\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "Sec-WebSocket-Key: 4FcY5nXAYWDA4sBt60gCFA==\r\n"
     "Connection: Upgrade\r\n"
     "Upgrade: websocket\r\n"
     "Sec-WebSocket-Extensions: permessage-deflate; "
     "client_max_window_bits\r\n"
     "Sec-WebSocket-Protocol: a,b\r\n"
     "Host: 127.0.0.1:52457\r\n"
     "\r\n",
     "/node", "127.0.0.1:52457", "4FcY5nXAYWDA4sBt60gCFA==", NULL, "a,b",
     "permessage-deflate; client_max_window_bits", 7},
    {"lowercase names, bare LF, tabs and odd spacing",
     "GET /x HTTP/1.1\n"
     "host:a.example\n"
     "upgrade:\tWebSocket \n"
     "connection: keep-alive,UPGRADE\n"
     "sec-websocket-key:    " RFC_KEY "\t\n"
     "sec-websocket-version:13\n"
     "sec-websocket-protocol:  v2.chat  \n"
     "\n",
     "/x", "a.example", RFC_KEY, NULL, "v2.chat", NULL, 6},
    {"HTTP/1.2, mixed CRLF and LF, absolute-form target",
     "GET ws://a.example/x HTTP/1.2\r\n"
     "Host: a.example\n"
     "Upgrade: websocket\r\n"
     "Connection: Upgrade\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n"
     "Sec-WebSocket-Version: 13\r\n"
     "\n",
     "ws://a.example/x", "a.example", RFC_KEY, NULL, NULL, NULL, 5},
};

START_TEST(test_parse_requests_of_real_clients) {
  const struct client_case *c = &clients[_i];
  struct lightws_request r;
  size_t len = strlen(c->head);
  req_init(&r);
  ck_assert_msg(parse_req(&r, c->head, len) == (ssize_t)len, "%s: %s",
                c->client,
                lightws_errname((int)parse_req(&r, c->head, len)));
  ck_field(r.method, r.method_len, "GET");
  ck_field(r.path, r.path_len, c->path);
  ck_field(r.host, r.host_len, c->host);
  ck_field(r.key, r.key_len, c->key);
  if (c->origin)
    ck_field(r.origin, r.origin_len, c->origin);
  else
    ck_assert_ptr_null(r.origin);
  if (c->protocol)
    ck_field(r.protocol, r.protocol_len, c->protocol);
  else
    ck_assert_ptr_null(r.protocol);
  if (c->extensions)
    ck_field(r.extensions, r.extensions_len, c->extensions);
  else
    ck_assert_ptr_null(r.extensions);
  ck_assert_int_eq(r.version, 13);
  ck_assert_int_eq(r.http_minor, strstr(c->head, "HTTP/1.2") ? 2 : 1);
  ck_assert_uint_eq(r.head_len, len);
  ck_assert_uint_eq(r.num_headers, c->num_headers);
  ck_assert(lightws_header_has_token(r.headers, r.num_headers, "connection",
                                     "Upgrade"));
  ck_assert(lightws_header_has_token(r.headers, r.num_headers, "UPGRADE",
                                     "websocket"));

  /* the struct fields do not depend on header storage */
  memset(&r, 0x5A, sizeof r);
  r.headers = NULL;
  r.max_headers = 0;
  ck_assert_int_eq(parse_req(&r, c->head, len), (ssize_t)len);
  ck_assert_uint_eq(r.num_headers, 0);
  ck_field(r.host, r.host_len, c->host);
  ck_field(r.key, r.key_len, c->key);
  ck_assert_int_eq(r.version, 13);
}
END_TEST

/* Requests that fail: the exact error. `len` 0 means strlen(head). */
static const struct bad_request {
  const char *what;
  const char *head;
  size_t len;
  int err;
} bad_requests[] = {
    {"POST", "POST /chat HTTP/1.1\r\n" GOOD_TAIL, 0, LIGHTWS_ERR_HTTP_METHOD},
    {"lowercase get", "get /chat HTTP/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_METHOD},
    {"HEAD", "HEAD /chat HTTP/1.1\r\n" GOOD_TAIL, 0, LIGHTWS_ERR_HTTP_METHOD},
    {"HTTP/1.0", "GET /chat HTTP/1.0\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_VERSION},
    {"HTTP/0.9", "GET /chat HTTP/0.9\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_VERSION},
    {"HTTP/2.0", "GET /chat HTTP/2.0\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_VERSION},
    {"POST and HTTP/1.0: method first", "POST /chat HTTP/1.0\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_METHOD},
    {"no Host", RL H_UP H_CONN H_KEY H_VER "\r\n", 0, LIGHTWS_ERR_NO_HOST},
    {"empty Host", RL "Host:\r\n" H_UP H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_HOST},
    {"HTTP/1.0 and no Host: version first", "GET / HTTP/1.0\r\n" H_UP H_CONN
     H_KEY H_VER "\r\n", 0, LIGHTWS_ERR_HTTP_VERSION},
    {"no Upgrade", RL H_HOST H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_UPGRADE},
    {"Upgrade: websocket2", RL H_HOST "Upgrade: websocket2\r\n" H_CONN H_KEY
     H_VER "\r\n", 0, LIGHTWS_ERR_NO_UPGRADE},
    {"Upgrade: h2c", RL H_HOST "Upgrade: h2c\r\n" H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_UPGRADE},
    {"Upgrade: web socket", RL H_HOST "Upgrade: web socket\r\n" H_CONN H_KEY
     H_VER "\r\n", 0, LIGHTWS_ERR_NO_UPGRADE},
    {"Upgrade: websocket/13", RL H_HOST "Upgrade: websocket/13\r\n" H_CONN
     H_KEY H_VER "\r\n", 0, LIGHTWS_ERR_NO_UPGRADE},
    {"no Host and no Upgrade: Host first", RL H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_HOST},
    {"no Connection", RL H_HOST H_UP H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_CONNECTION},
    {"Connection: upgraded", RL H_HOST H_UP "Connection: upgraded\r\n" H_KEY
     H_VER "\r\n", 0, LIGHTWS_ERR_NO_CONNECTION},
    {"Connection: keep-alive", RL H_HOST H_UP "Connection: keep-alive\r\n"
     H_KEY H_VER "\r\n", 0, LIGHTWS_ERR_NO_CONNECTION},
    {"Connection: close;upgrade", RL H_HOST H_UP
     "Connection: close;upgrade\r\n" H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_CONNECTION},
    {"Upgrade and Connection swapped", RL H_HOST "Upgrade: Upgrade\r\n"
     "Connection: websocket\r\n" H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_NO_UPGRADE},
    {"no Upgrade and no Connection: Upgrade first", RL H_HOST H_KEY H_VER
     "\r\n", 0, LIGHTWS_ERR_NO_UPGRADE},
    {"no version", RL H_HOST H_UP H_CONN H_KEY "\r\n", 0,
     LIGHTWS_ERR_BAD_VERSION},
    {"version 8", RL H_HOST H_UP H_CONN H_KEY "Sec-WebSocket-Version: 8\r\n"
     "\r\n", 0, LIGHTWS_ERR_BAD_VERSION},
    {"version 013", RL H_HOST H_UP H_CONN H_KEY
     "Sec-WebSocket-Version: 013\r\n\r\n", 0, LIGHTWS_ERR_BAD_VERSION},
    {"version list", RL H_HOST H_UP H_CONN H_KEY
     "Sec-WebSocket-Version: 13, 8\r\n\r\n", 0, LIGHTWS_ERR_BAD_VERSION},
    {"empty version", RL H_HOST H_UP H_CONN H_KEY
     "Sec-WebSocket-Version:\r\n\r\n", 0, LIGHTWS_ERR_BAD_VERSION},
    {"version 8 and no key: version first", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Version: 8\r\n\r\n", 0, LIGHTWS_ERR_BAD_VERSION},
    {"no Connection and version 8: Connection first", RL H_HOST H_UP H_KEY
     "Sec-WebSocket-Version: 8\r\n\r\n", 0, LIGHTWS_ERR_NO_CONNECTION},
    {"no key", RL H_HOST H_UP H_CONN H_VER "\r\n", 0, LIGHTWS_ERR_BAD_KEY},
    {"empty key", RL H_HOST H_UP H_CONN "Sec-WebSocket-Key:\r\n" H_VER "\r\n",
     0, LIGHTWS_ERR_BAD_KEY},
    {"key of 23 chars", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key of 25 chars", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ===\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key of 24 chars with a non-base64 char", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSB*b25jZQ==\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key with stray bits before the padding", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key of 15 bytes", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key of 17 bytes", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key of 18 bytes", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBES\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"key with inner space", RL H_HOST H_UP H_CONN
     "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n" H_VER "\r\n", 0,
     LIGHTWS_ERR_BAD_KEY},
    {"two Host headers", RL H_HOST "Host: evil.example\r\n" H_UP H_CONN H_KEY
     H_VER "\r\n", 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"two keys", RL H_HOST H_UP H_CONN H_KEY H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"two versions", RL H_HOST H_UP H_CONN H_KEY H_VER H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"obs-fold", RL H_HOST H_UP H_CONN " , close\r\n" H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"tab fold", RL H_HOST H_UP H_CONN "\tx\r\n" H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"space before colon", RL "Host : server.example.com\r\n" H_UP H_CONN
     H_KEY H_VER "\r\n", 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"no colon", RL H_HOST "Upgrade websocket\r\n" H_CONN H_KEY H_VER "\r\n",
     0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"empty name", RL H_HOST ": x\r\n" H_UP H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"name not a token", RL H_HOST "X(y): 1\r\n" H_UP H_CONN H_KEY H_VER
     "\r\n", 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"NUL in a value", RL "Host: a\0b\r\n" H_UP H_CONN H_KEY H_VER "\r\n",
     sizeof(RL "Host: a\0b\r\n" H_UP H_CONN H_KEY H_VER "\r\n") - 1,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"NUL in a name", RL "Ho\0st: a\r\n" H_UP H_CONN H_KEY H_VER "\r\n",
     sizeof(RL "Ho\0st: a\r\n" H_UP H_CONN H_KEY H_VER "\r\n") - 1,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"control char in a value", RL "Host: a\x01z\r\n" H_UP H_CONN H_KEY H_VER
     "\r\n", 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"DEL in a value", RL "Host: a\x7fz\r\n" H_UP H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"bare CR in a value", RL "Host: a\rX-Evil: 1\r\n" H_UP H_CONN H_KEY H_VER
     "\r\n", 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"CR CR LF", RL "Host: a\r\r\n" H_UP H_CONN H_KEY H_VER "\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"two spaces in request line", "GET  /chat HTTP/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"space in target", "GET /a b HTTP/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"no target", "GET HTTP/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"trailing space after version", "GET /chat HTTP/1.1 \r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"version with two digits", "GET /chat HTTP/1.10\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"lowercase http", "GET /chat http/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"not HTTP", "GET /chat FOO/1.1\r\n" GOOD_TAIL, 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0,
     LIGHTWS_ERR_HTTP_METHOD},
    {"empty line first", "\r\n" RL GOOD_TAIL, 0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"TLS client hello, no line end yet",
     "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"NUL in an unfinished line", RL "Host: a\0", sizeof(RL "Host: a\0") - 1,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"CR not before LF in an unfinished line", RL "Host: a\rb",
     0, LIGHTWS_ERR_HTTP_MALFORMED},
    {"malformed line before the head ends", RL "Host : x\r\n", 0,
     LIGHTWS_ERR_HTTP_MALFORMED},
};

START_TEST(test_parse_request_rejects_with_exact_error) {
  const struct bad_request *b = &bad_requests[_i];
  struct lightws_request r;
  size_t len = b->len ? b->len : strlen(b->head);
  ssize_t n;
  req_init(&r);
  n = parse_req(&r, b->head, len);
  ck_assert_msg(n == b->err, "%s: got %s (%zd), want %s", b->what,
                lightws_errname((int)n), n, lightws_errname(b->err));
  /* a failed check (not a syntax error) leaves the head measured */
  if (b->err <= LIGHTWS_ERR_NO_HOST || b->err == LIGHTWS_ERR_HTTP_METHOD ||
      b->err == LIGHTWS_ERR_HTTP_VERSION)
    ck_assert_msg(r.head_len > 0 && r.head_len <= len, "%s: head_len %zu",
                  b->what, r.head_len);
}
END_TEST

/* Requests that pass, though they look unusual. */
static const char *const odd_good_requests[] = {
    RL H_HOST "Upgrade: WebSocket\r\n" H_CONN H_KEY H_VER "\r\n",
    RL H_HOST "Upgrade: h2c, websocket\r\n" H_CONN H_KEY H_VER "\r\n",
    RL H_HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" H_CONN H_KEY H_VER
    "\r\n",
    RL H_HOST H_UP "Connection: keep-alive,Upgrade\r\n" H_KEY H_VER "\r\n",
    RL H_HOST H_UP "Connection: , ,upgrade ,,\r\n" H_KEY H_VER "\r\n",
    RL H_HOST H_UP "Connection: keep-alive\r\nConnection: Upgrade\r\n" H_KEY
    H_VER "\r\n",
    RL H_HOST H_UP H_CONN H_KEY "Sec-WebSocket-Version:   13  \r\n\r\n",
    RL H_HOST H_UP H_CONN H_KEY H_VER "X-Empty:\r\nX-Obs-Text: caf\xc3\xa9\r\n"
    "\r\n",
};

START_TEST(test_parse_request_accepts_valid_variants) {
  struct lightws_request r;
  const char *s = odd_good_requests[_i];
  ssize_t n;
  req_init(&r);
  n = parse_req(&r, s, strlen(s));
  ck_assert_msg(n == (ssize_t)strlen(s), "case %d: %s (%zd)", _i,
                lightws_errname((int)n), n);
}
END_TEST

START_TEST(test_failed_check_fills_request) {
  static const char s[] = "GET /old HTTP/1.1\r\nHost: h:81\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                          "Sec-WebSocket-Version: 8\r\n"
                          "Origin: null\r\n\r\n";
  struct lightws_request r;
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, s, sizeof s - 1), LIGHTWS_ERR_BAD_VERSION);
  /* §4.4: the server answers 426 with the versions it speaks */
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_BAD_VERSION), 426);
  ck_assert_int_eq(r.version, 8);
  ck_assert_uint_eq(r.head_len, sizeof s - 1);
  ck_field(r.path, r.path_len, "/old");
  ck_field(r.host, r.host_len, "h:81");
  ck_field(r.key, r.key_len, RFC_KEY);
  ck_field(r.origin, r.origin_len, "null");
  ck_assert_uint_eq(r.num_headers, 6);
}
END_TEST

START_TEST(test_http2_request_line_is_http_version) {
  static const char s[] = "GET /chat HTTP/2.0\r\n" GOOD_TAIL;
  struct lightws_request r;
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, s, sizeof s - 1), LIGHTWS_ERR_HTTP_VERSION);
  ck_assert_int_eq(r.http_minor, -1);
  ck_assert_int_eq(r.version, 13);
  ck_assert_uint_eq(r.head_len, sizeof s - 1);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HTTP_VERSION), 400);
}
END_TEST

START_TEST(test_missing_version_is_bad_version_and_426) {
  static const char s[] = RL H_HOST H_UP H_CONN H_KEY "\r\n";
  struct lightws_request r;
  ssize_t n;
  req_init(&r);
  n = parse_req(&r, s, sizeof s - 1);
  ck_assert_int_eq(n, LIGHTWS_ERR_BAD_VERSION);
  ck_assert_int_eq(r.version, -1);
  ck_assert_int_eq(lightws_http_status((int)n), 426);
}
END_TEST

START_TEST(test_version_that_is_not_a_number_reads_minus_two) {
  static const char s[] = RL H_HOST H_UP H_CONN H_KEY
      "Sec-WebSocket-Version: thirteen\r\n\r\n";
  struct lightws_request r;
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, s, sizeof s - 1), LIGHTWS_ERR_BAD_VERSION);
  ck_assert_int_eq(r.version, -2);
}
END_TEST

START_TEST(test_http_status_of_request_errors) {
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HTTP_METHOD), 405);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HTTP_MALFORMED), 400);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_BAD_KEY), 400);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_HEAD_TOO_LARGE), 431);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_TOO_MANY_HEADERS), 431);
}
END_TEST

START_TEST(test_header_find_and_has_token) {
  static const struct lightws_header h[] = {
      {"Connection", 10, "keep-alive", 10},
      {"connection", 10, " , Upgrade ,", 12},
      {"X-List", 6, "a,b ,  c", 8},
      {"X-Upgraded", 10, "upgraded", 8},
  };
  ck_assert_ptr_eq(lightws_header_find(h, 4, "CONNECTION"), &h[0]);
  ck_assert_ptr_eq(lightws_header_find(h, 4, "x-list"), &h[2]);
  ck_assert_ptr_null(lightws_header_find(h, 4, "X-Lis"));
  ck_assert_ptr_null(lightws_header_find(h, 4, "X-Lists"));
  ck_assert_ptr_null(lightws_header_find(NULL, 4, "X-List"));
  ck_assert_ptr_null(lightws_header_find(h, 2, "X-List"));
  ck_assert_int_eq(lightws_header_has_token(h, 4, "Connection", "upgrade"), 1);
  ck_assert_int_eq(lightws_header_has_token(h, 1, "Connection", "upgrade"), 0);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "Connection", "KEEP-ALIVE"),
                   1);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "Connection", "keep"), 0);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "Connection", ""), 0);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "x-list", "b"), 1);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "x-list", "c"), 1);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "x-list", "a,b"), 0);
  ck_assert_int_eq(lightws_header_has_token(h, 4, "X-Upgraded", "upgrade"), 0);
  ck_assert_int_eq(lightws_header_has_token(NULL, 0, "X-List", "a"), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * request: build
 * ------------------------------------------------------------------------ */

START_TEST(test_build_request_exact_bytes) {
  static const char want[] =
      "GET /chat HTTP/1.1\r\n"
      "Host: server.example.com\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: chat, superchat\r\n"
      "Origin: http://example.com\r\n"
      "Authorization: Bearer x\r\n"
      "X-Empty: \r\n"
      "\r\n";
  static const struct lightws_header extra[] = {
      {"Authorization", 13, "Bearer x", 8},
      {"X-Empty", 7, NULL, 0},
  };
  uint8_t out[512];
  memset(out, GUARD, sizeof out);
  ck_assert_int_eq(lightws_handshake_build_request(
                       out, sizeof out, "server.example.com", "/chat", RFC_KEY,
                       "chat, superchat", "http://example.com", extra, 2),
                   (ssize_t)sizeof want - 1);
  ck_assert_mem_eq(out, want, sizeof want - 1);
  ck_assert(all_guard(out, sizeof want - 1, sizeof out)); /* no NUL */
}
END_TEST

START_TEST(test_build_request_defaults_path_to_slash) {
  static const char want[] = "GET / HTTP/1.1\r\nHost: h:8080\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n";
  uint8_t out[256];
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h:8080",
                                                   NULL, RFC_KEY, NULL, NULL,
                                                   NULL, 0),
                   (ssize_t)sizeof want - 1);
  ck_assert_mem_eq(out, want, sizeof want - 1);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h:8080",
                                                   "", RFC_KEY, "", "", NULL,
                                                   0),
                   (ssize_t)sizeof want - 1);
  ck_assert_mem_eq(out, want, sizeof want - 1);
}
END_TEST

START_TEST(test_build_request_rejects_bad_arguments) {
  uint8_t out[256];
  static const struct lightws_header noname = {NULL, 0, "v", 1};
  static const struct lightws_header nullval = {"X", 1, NULL, 3};
  memset(out, GUARD, sizeof out);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, NULL, "/",
                                                   RFC_KEY, NULL, NULL, NULL,
                                                   0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "", "/",
                                                   RFC_KEY, NULL, NULL, NULL,
                                                   0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h", "/",
                                                   NULL, NULL, NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(
                       out, sizeof out, "h", "/", "dGhlIHNhbXBsZSBub25jZQ=",
                       NULL, NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h", "/",
                                                   RFC_KEY, NULL, NULL, NULL,
                                                   1),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h", "/",
                                                   RFC_KEY, NULL, NULL,
                                                   &noname, 1),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h", "/",
                                                   RFC_KEY, NULL, NULL,
                                                   &nullval, 1),
                   LIGHTWS_ERR_INVALID);
  ck_assert(all_guard(out, 0, sizeof out));
}
END_TEST

/* ------------------------------------------------------------------------
 * response
 * ------------------------------------------------------------------------ */

START_TEST(test_parse_rfc_sample_response) {
  struct lightws_response r;
  resp_init(&r);
  ck_assert_int_eq(lightws_handshake_parse_response(
                       &r, (const uint8_t *)rfc_response,
                       sizeof rfc_response - 1, 0, RFC_KEY, "chat, superchat"),
                   (ssize_t)sizeof rfc_response - 1);
  ck_assert_int_eq(r.status, 101);
  ck_field(r.reason, r.reason_len, "Switching Protocols");
  ck_field(r.accept, r.accept_len, RFC_ACCEPT);
  ck_field(r.protocol, r.protocol_len, "chat");
  ck_assert_ptr_null(r.extensions);
  ck_assert_uint_eq(r.num_headers, 4);
  ck_assert_uint_eq(r.head_len, sizeof rfc_response - 1);
}
END_TEST

START_TEST(test_build_response_matches_rfc_sample) {
  uint8_t out[256];
  memset(out, GUARD, sizeof out);
  ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, RFC_KEY,
                                                    strlen(RFC_KEY), "chat",
                                                    NULL, 0),
                   (ssize_t)sizeof rfc_response - 1);
  ck_assert_mem_eq(out, rfc_response, sizeof rfc_response - 1);
  ck_assert(all_guard(out, sizeof rfc_response - 1, sizeof out));
}
END_TEST

START_TEST(test_build_response_with_extra_headers) {
  static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                             "Server: lightws\r\n"
                             "Set-Cookie: a=b; Path=/\r\n"
                             "\r\n";
  static const struct lightws_header extra[] = {
      {"Server", 6, "lightws", 7},
      {"Set-Cookie", 10, "a=b; Path=/", 11},
  };
  uint8_t out[256];
  ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, RFC_KEY,
                                                    24, NULL, extra, 2),
                   (ssize_t)sizeof want - 1);
  ck_assert_mem_eq(out, want, sizeof want - 1);
  ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, RFC_KEY,
                                                    24, "", extra, 2),
                   (ssize_t)sizeof want - 1);
  ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, NULL, 0,
                                                    NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, RFC_KEY,
                                                    23, NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
}
END_TEST

static const struct error_case {
  int status;
  const char *want;
} error_cases[] = {
    {400, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {403, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {404, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
          "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {426, "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
          "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n"
          "Connection: Upgrade, close\r\n\r\n"},
    {429, "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
          "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {500, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {503, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {418, "HTTP/1.1 418 Error\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
    {599, "HTTP/1.1 599 Error\r\nContent-Length: 0\r\n"
          "Connection: close\r\n\r\n"},
};

START_TEST(test_build_error_exact_bytes) {
  const struct error_case *e = &error_cases[_i];
  uint8_t out[256];
  struct lightws_response r;
  size_t n = strlen(e->want);
  memset(out, GUARD, sizeof out);
  ck_assert_int_eq(lightws_handshake_build_error(out, sizeof out, e->status,
                                                 NULL, 0),
                   (ssize_t)n);
  ck_assert_mem_eq(out, e->want, n);
  ck_assert(all_guard(out, n, sizeof out));
  /* a client reading it sees BAD_STATUS with the status and head_len */
  resp_init(&r);
  ck_assert_int_eq(lightws_handshake_parse_response(&r, out, n, 0, RFC_KEY,
                                                    NULL),
                   LIGHTWS_ERR_BAD_STATUS);
  ck_assert_int_eq(r.status, e->status);
  ck_assert_uint_eq(r.head_len, n);
}
END_TEST

START_TEST(test_build_error_rejects_status_out_of_range) {
  uint8_t out[256];
  static const int bad[] = {-1, 0, 99, 100, 101, 199, 600, 1000};
  size_t i;
  memset(out, GUARD, sizeof out);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(lightws_handshake_build_error(out, sizeof out, bad[i],
                                                   NULL, 0),
                     LIGHTWS_ERR_INVALID);
  ck_assert(all_guard(out, 0, sizeof out));
}
END_TEST

START_TEST(test_build_error_with_extra_headers) {
  static const char want[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                             "Connection: close\r\nX-Reason: origin\r\n\r\n";
  static const struct lightws_header extra = {"X-Reason", 8, "origin", 6};
  uint8_t out[256];
  ck_assert_int_eq(lightws_handshake_build_error(out, sizeof out, 403, &extra,
                                                 1),
                   (ssize_t)sizeof want - 1);
  ck_assert_mem_eq(out, want, sizeof want - 1);
}
END_TEST

#define R101 "HTTP/1.1 101 Switching Protocols\r\n"
#define R_UP "Upgrade: websocket\r\n"
#define R_CONN "Connection: Upgrade\r\n"
#define R_ACC "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"

static const struct resp_case {
  const char *what;
  const char *head;
  const char *key, *protocols;
  int err; /* 0: success */
} resp_cases[] = {
    {"plain 101", R101 R_UP R_CONN R_ACC "\r\n", RFC_KEY, NULL, 0},
    {"no key given: accept not checked", R101 R_UP R_CONN "\r\n", NULL, NULL,
     0},
    {"no reason phrase", "HTTP/1.1 101\r\n" R_UP R_CONN R_ACC "\r\n", RFC_KEY,
     NULL, 0},
    {"empty reason phrase", "HTTP/1.1 101 \r\n" R_UP R_CONN R_ACC "\r\n",
     RFC_KEY, NULL, 0},
    {"token case and lists", R101 "upgrade: WebSocket\r\n"
     "connection: keep-alive, UPGRADE\r\nsec-websocket-accept: " RFC_ACCEPT
     "\r\n\r\n", RFC_KEY, NULL, 0},
    {"bare LF", "HTTP/1.1 101 OK\n" "Upgrade: websocket\n"
     "Connection: Upgrade\n" "Sec-WebSocket-Accept: " RFC_ACCEPT "\n\n",
     RFC_KEY, NULL, 0},
    {"protocol offered second", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: superchat\r\n\r\n", RFC_KEY, "chat,superchat",
     0},
    {"200", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_STATUS},
    {"HTTP/1.0 403: status first", "HTTP/1.0 403 Forbidden\r\n\r\n", RFC_KEY,
     NULL, LIGHTWS_ERR_BAD_STATUS},
    {"101 over HTTP/1.0", "HTTP/1.0 101 Switching Protocols\r\n" R_UP R_CONN
     R_ACC "\r\n", RFC_KEY, NULL, LIGHTWS_ERR_HTTP_VERSION},
    {"wrong accept", R101 R_UP R_CONN
     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOA=\r\n\r\n", RFC_KEY,
     NULL, LIGHTWS_ERR_BAD_ACCEPT},
    {"accept in another case", R101 R_UP R_CONN
     "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n", RFC_KEY,
     NULL, LIGHTWS_ERR_BAD_ACCEPT},
    {"accept with a suffix", R101 R_UP R_CONN
     "Sec-WebSocket-Accept: " RFC_ACCEPT "x\r\n\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_ACCEPT},
    {"no accept", R101 R_UP R_CONN "\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_ACCEPT},
    {"accept of another key", R101 R_UP R_CONN R_ACC "\r\n",
     "x3JJHMbDL1EzLkh9GBhXDw==", NULL, LIGHTWS_ERR_BAD_ACCEPT},
    {"two accepts", R101 R_UP R_CONN R_ACC R_ACC "\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_HTTP_MALFORMED},
    {"no Upgrade", R101 R_CONN R_ACC "\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_NO_UPGRADE},
    {"Upgrade: websocket2", R101 "Upgrade: websocket2\r\n" R_CONN R_ACC
     "\r\n", RFC_KEY, NULL, LIGHTWS_ERR_NO_UPGRADE},
    {"no Connection", R101 R_UP R_ACC "\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_NO_CONNECTION},
    {"Connection: upgraded", R101 R_UP "Connection: upgraded\r\n" R_ACC
     "\r\n", RFC_KEY, NULL, LIGHTWS_ERR_NO_CONNECTION},
    {"no Upgrade and wrong accept: Upgrade first", R101 R_CONN
     "Sec-WebSocket-Accept: x\r\n\r\n", RFC_KEY, NULL, LIGHTWS_ERR_NO_UPGRADE},
    {"protocol not offered", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: mqtt\r\n\r\n", RFC_KEY, "chat, superchat",
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"protocol when none offered", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: chat\r\n\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"protocol in another case", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: Chat\r\n\r\n", RFC_KEY, "chat",
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"protocol prefix of an offer", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: cha\r\n\r\n", RFC_KEY, "chat",
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"two protocols chosen", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n", RFC_KEY,
     "chat, superchat", LIGHTWS_ERR_BAD_PROTOCOL},
    {"two protocol headers", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
     RFC_KEY, "chat", LIGHTWS_ERR_BAD_PROTOCOL},
    {"empty protocol", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Protocol:\r\n\r\n", RFC_KEY, "chat",
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"extension", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_EXTENSION},
    {"bad protocol and extension: protocol first", R101 R_UP R_CONN R_ACC
     "Sec-WebSocket-Extensions: permessage-deflate\r\n"
     "Sec-WebSocket-Protocol: x\r\n\r\n", RFC_KEY, NULL,
     LIGHTWS_ERR_BAD_PROTOCOL},
    {"status of two digits", "HTTP/1.1 10 Switching\r\n" R_UP R_CONN "\r\n",
     NULL, NULL, LIGHTWS_ERR_HTTP_MALFORMED},
    {"no space after version", "HTTP/1.1101 x\r\n" R_UP R_CONN "\r\n", NULL,
     NULL, LIGHTWS_ERR_HTTP_MALFORMED},
    {"not HTTP", "ICY 200 OK\r\n\r\n", NULL, NULL, LIGHTWS_ERR_HTTP_MALFORMED},
    {"status with letters", "HTTP/1.1 1O1 x\r\n" R_UP R_CONN "\r\n", NULL,
     NULL, LIGHTWS_ERR_HTTP_MALFORMED},
    {"control char in reason", "HTTP/1.1 101 a\x01\r\n" R_UP R_CONN "\r\n",
     NULL, NULL, LIGHTWS_ERR_HTTP_MALFORMED},
    {"obs-fold", R101 R_UP R_CONN " x\r\n" R_ACC "\r\n", NULL, NULL,
     LIGHTWS_ERR_HTTP_MALFORMED},
};

START_TEST(test_parse_response_cases) {
  const struct resp_case *c = &resp_cases[_i];
  struct lightws_response r;
  size_t len = strlen(c->head);
  ssize_t n;
  resp_init(&r);
  n = lightws_handshake_parse_response(&r, (const uint8_t *)c->head, len, 0,
                                       c->key, c->protocols);
  ck_assert_msg(n == (c->err ? c->err : (ssize_t)len), "%s: got %s (%zd)",
                c->what, lightws_errname((int)n), n);
  if (c->err != LIGHTWS_ERR_HTTP_MALFORMED)
    ck_assert_uint_eq(r.head_len, len);
}
END_TEST

START_TEST(test_bad_status_fills_response) {
  static const char s[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/html"
                          "\r\nContent-Length: 9\r\n\r\nnot found";
  struct lightws_response r;
  resp_init(&r);
  ck_assert_int_eq(lightws_handshake_parse_response(&r, (const uint8_t *)s,
                                                    sizeof s - 1, 0, RFC_KEY,
                                                    NULL),
                   LIGHTWS_ERR_BAD_STATUS);
  ck_assert_int_eq(r.status, 404);
  ck_field(r.reason, r.reason_len, "Not Found");
  ck_assert_uint_eq(r.head_len, sizeof s - 1 - 9);
  ck_assert_uint_eq(r.num_headers, 2);
  ck_assert_ptr_null(r.accept);
}
END_TEST

START_TEST(test_round_trip_request_and_response) {
  char key[LIGHTWS_KEY_LEN + 1];
  uint8_t req_buf[512], resp_buf[512];
  struct lightws_request rq;
  struct lightws_response rs;
  static const struct lightws_header extra = {"X-Trace", 7, "42", 2};
  ssize_t n, m;

  ck_assert_int_eq(lightws_handshake_key(key), 0);
  n = lightws_handshake_build_request(req_buf, sizeof req_buf,
                                      "example.com:8443", "/live?x=1", key,
                                      "chat, superchat", "https://example.com",
                                      &extra, 1);
  ck_assert_int_gt(n, 0);
  req_init(&rq);
  ck_assert_int_eq(lightws_handshake_parse_request(&rq, req_buf, (size_t)n, 0),
                   n);
  ck_field(rq.path, rq.path_len, "/live?x=1");
  ck_field(rq.host, rq.host_len, "example.com:8443");
  ck_field(rq.key, rq.key_len, key);
  ck_field(rq.origin, rq.origin_len, "https://example.com");
  ck_field(rq.protocol, rq.protocol_len, "chat, superchat");
  ck_assert(lightws_header_find(rq.headers, rq.num_headers, "x-trace") !=
            NULL);

  m = lightws_handshake_build_response(resp_buf, sizeof resp_buf, rq.key,
                                       rq.key_len, "superchat", NULL, 0);
  ck_assert_int_gt(m, 0);
  resp_init(&rs);
  ck_assert_int_eq(lightws_handshake_parse_response(&rs, resp_buf, (size_t)m,
                                                    0, key, "chat, superchat"),
                   m);
  ck_field(rs.protocol, rs.protocol_len, "superchat");
  /* the same response fails against another key */
  resp_init(&rs);
  ck_assert_int_eq(lightws_handshake_parse_response(&rs, resp_buf, (size_t)m,
                                                    0, RFC_KEY,
                                                    "chat, superchat"),
                   LIGHTWS_ERR_BAD_ACCEPT);
}
END_TEST

/* ------------------------------------------------------------------------
 * limits
 * ------------------------------------------------------------------------ */

START_TEST(test_every_prefix_of_a_request_is_incomplete) {
  const char *s = rfc_request;
  size_t len, i;
  struct lightws_request r;
  if (_i == 1) { /* the bare-LF client case */
    for (i = 0; i < sizeof clients / sizeof clients[0]; i++)
      if (strstr(clients[i].client, "bare LF"))
        s = clients[i].head;
    ck_assert_ptr_ne(s, rfc_request);
  }
  len = strlen(s);
  for (i = 0; i < len; i++) {
    ssize_t n;
    req_init(&r);
    n = parse_req(&r, s, i);
    ck_assert_msg(n == LIGHTWS_ERR_INCOMPLETE, "prefix %zu: %s", i,
                  lightws_errname((int)n));
  }
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, s, len), (ssize_t)len);
}
END_TEST

START_TEST(test_every_prefix_of_a_response_is_incomplete) {
  size_t len = sizeof rfc_response - 1, i;
  struct lightws_response r;
  for (i = 0; i < len; i++) {
    resp_init(&r);
    ck_assert_int_eq(lightws_handshake_parse_response(
                         &r, (const uint8_t *)rfc_response, i, 0, RFC_KEY,
                         "chat"),
                     LIGHTWS_ERR_INCOMPLETE);
  }
  resp_init(&r);
  ck_assert_int_eq(lightws_handshake_parse_response(
                       &r, (const uint8_t *)rfc_response, len, 0, RFC_KEY,
                       "chat"),
                   (ssize_t)len);
}
END_TEST

/* The parser must not read past `len`: each prefix is copied to the end
 * of an exact-size buffer so ASan catches any overread. */
START_TEST(test_parse_never_reads_past_len) {
  static uint8_t tmp[sizeof rfc_request];
  size_t len = sizeof rfc_request - 1, i;
  struct lightws_request r;
  for (i = 0; i <= len; i++) {
    uint8_t *p = tmp + sizeof tmp - i;
    memcpy(p, rfc_request, i);
    req_init(&r);
    ck_assert_int_eq(lightws_handshake_parse_request(&r, p, i, 0),
                     (i == len ? (ssize_t)len : LIGHTWS_ERR_INCOMPLETE));
  }
}
END_TEST

/* §5.7 masked "Hello" from a client, sent in the same packet as the
 * request: the head length excludes it, for any amount of it. */
START_TEST(test_pipelined_frame_after_request_is_not_consumed) {
  static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                  0x7f, 0x9f, 0x4d, 0x51, 0x58};
  uint8_t buf[sizeof rfc_request + sizeof frame];
  size_t head = sizeof rfc_request - 1, i;
  struct lightws_request r;
  memcpy(buf, rfc_request, head);
  memcpy(buf + head, frame, sizeof frame);
  for (i = 0; i <= sizeof frame; i++) {
    req_init(&r);
    ck_assert_int_eq(lightws_handshake_parse_request(&r, buf, head + i, 0),
                     (ssize_t)head);
    ck_assert_uint_eq(r.head_len, head);
  }
}
END_TEST

START_TEST(test_pipelined_frame_after_response_is_not_consumed) {
  static const uint8_t frame[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
  uint8_t buf[sizeof rfc_response + sizeof frame];
  size_t head = sizeof rfc_response - 1, i;
  struct lightws_response r;
  memcpy(buf, rfc_response, head);
  memcpy(buf + head, frame, sizeof frame);
  for (i = 0; i <= sizeof frame; i++) {
    resp_init(&r);
    ck_assert_int_eq(lightws_handshake_parse_response(&r, buf, head + i, 0,
                                                      RFC_KEY, "chat"),
                     (ssize_t)head);
    ck_assert_uint_eq(r.head_len, head);
  }
}
END_TEST

/* A request and a first frame written in small pieces through a
 * socketpair: the reader parses after every read; the head is found once
 * complete and the frame bytes stay after it. */
START_TEST(test_request_over_socketpair_in_small_writes) {
  static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                  0x7f, 0x9f, 0x4d, 0x51, 0x58};
  uint8_t wire[sizeof rfc_request + sizeof frame], got[sizeof wire];
  size_t head = sizeof rfc_request - 1, total = head + sizeof frame;
  size_t sent = 0, have = 0, step = (size_t)_i + 1;
  struct lightws_request r;
  ssize_t n = LIGHTWS_ERR_INCOMPLETE;
  int sv[2];
  memcpy(wire, rfc_request, head);
  memcpy(wire + head, frame, sizeof frame);
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  while (have < total) {
    ssize_t k;
    if (sent < total) {
      size_t m = total - sent < step ? total - sent : step;
      ck_assert_int_eq(write(sv[0], wire + sent, m), (ssize_t)m);
      sent += m;
    }
    k = read(sv[1], got + have, sizeof got - have);
    ck_assert_int_gt(k, 0);
    have += (size_t)k;
    req_init(&r);
    n = lightws_handshake_parse_request(&r, got, have, 0);
    if (have < head)
      ck_assert_int_eq(n, LIGHTWS_ERR_INCOMPLETE);
    else
      ck_assert_int_eq(n, (ssize_t)head);
  }
  ck_assert_int_eq(n, (ssize_t)head);
  ck_assert_mem_eq(got + n, frame, sizeof frame);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

START_TEST(test_head_over_max_head_is_too_large) {
  size_t len = sizeof rfc_request - 1;
  struct lightws_request r;
  const uint8_t *in = (const uint8_t *)rfc_request;
  req_init(&r);
  /* the head may end exactly at max_head ... */
  ck_assert_int_eq(lightws_handshake_parse_request(&r, in, len, len),
                   (ssize_t)len);
  /* ... but not one byte later */
  ck_assert_int_eq(lightws_handshake_parse_request(&r, in, len, len - 1),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
  ck_assert_int_eq(lightws_handshake_parse_request(&r, in, len, 40),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
  /* fewer bytes than max_head without an end: wait */
  ck_assert_int_eq(lightws_handshake_parse_request(&r, in, 39, 40),
                   LIGHTWS_ERR_INCOMPLETE);
  ck_assert_int_eq(lightws_handshake_parse_request(&r, in, 40, 40),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
}
END_TEST

START_TEST(test_default_head_limit_is_8192) {
  static char big[LIGHTWS_HANDSHAKE_HEAD_MAX + 512];
  static const char head[] = RL H_HOST H_UP H_CONN H_KEY H_VER "X-Pad: ";
  size_t pad, len;
  struct lightws_request r;
  /* a head of exactly 8192 bytes passes, one of 8193 does not */
  for (pad = 0; pad < 2; pad++) {
    len = LIGHTWS_HANDSHAKE_HEAD_MAX + pad;
    memcpy(big, head, sizeof head - 1);
    memset(big + sizeof head - 1, 'a', len - (sizeof head - 1) - 4);
    memcpy(big + len - 4, "\r\n\r\n", 4);
    req_init(&r);
    ck_assert_int_eq(parse_req(&r, big, len),
                     (pad == 0 ? (ssize_t)len : LIGHTWS_ERR_HEAD_TOO_LARGE));
  }
  /* a stream of header bytes with no end is cut at the limit */
  memset(big, 'a', sizeof big);
  memcpy(big, head, sizeof head - 1);
  req_init(&r);
  ck_assert_int_eq(parse_req(&r, big, LIGHTWS_HANDSHAKE_HEAD_MAX - 1),
                   LIGHTWS_ERR_INCOMPLETE);
  ck_assert_int_eq(parse_req(&r, big, LIGHTWS_HANDSHAKE_HEAD_MAX),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
  ck_assert_int_eq(parse_req(&r, big, sizeof big),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
}
END_TEST

START_TEST(test_too_many_headers) {
  struct lightws_header few[5];
  struct lightws_request r;
  /* rfc_request has 7 headers */
  memset(&r, 0, sizeof r);
  r.headers = few;
  r.max_headers = 5;
  ck_assert_int_eq(parse_req(&r, rfc_request, sizeof rfc_request - 1),
                   LIGHTWS_ERR_TOO_MANY_HEADERS);
  ck_assert_int_eq(lightws_http_status(LIGHTWS_ERR_TOO_MANY_HEADERS), 431);
  r.max_headers = 7;
  memset(hbuf, 0, sizeof hbuf);
  r.headers = hbuf;
  ck_assert_int_eq(parse_req(&r, rfc_request, sizeof rfc_request - 1),
                   (ssize_t)sizeof rfc_request - 1);
  ck_assert_uint_eq(r.num_headers, 7);
  ck_assert_ptr_null(hbuf[7].name); /* nothing stored past max_headers */
  r.max_headers = 6;
  ck_assert_int_eq(parse_req(&r, rfc_request, sizeof rfc_request - 1),
                   LIGHTWS_ERR_TOO_MANY_HEADERS);
}
END_TEST

START_TEST(test_too_many_headers_in_response) {
  struct lightws_header one[1];
  struct lightws_response r;
  memset(&r, 0, sizeof r);
  r.headers = one;
  r.max_headers = 1;
  ck_assert_int_eq(lightws_handshake_parse_response(
                       &r, (const uint8_t *)rfc_response,
                       sizeof rfc_response - 1, 0, RFC_KEY, "chat"),
                   LIGHTWS_ERR_TOO_MANY_HEADERS);
  r.headers = NULL; /* no storage: no limit but max_head */
  ck_assert_int_eq(lightws_handshake_parse_response(
                       &r, (const uint8_t *)rfc_response,
                       sizeof rfc_response - 1, 0, RFC_KEY, "chat"),
                   (ssize_t)sizeof rfc_response - 1);
  ck_assert_uint_eq(r.num_headers, 0);
  ck_field(r.protocol, r.protocol_len, "chat");
}
END_TEST

START_TEST(test_parse_rejects_null_struct) {
  ck_assert_int_eq(lightws_handshake_parse_request(
                       NULL, (const uint8_t *)rfc_request, 10, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_handshake_parse_response(
                       NULL, (const uint8_t *)rfc_response, 10, 0, NULL, NULL),
                   LIGHTWS_ERR_INVALID);
}
END_TEST

/* Every size below what a build needs gives NOSPACE and writes nothing
 * at or after out[size]. `which`: 0 request, 1 response, 2 error. */
static ssize_t build(int which, uint8_t *out, size_t size) {
  static const struct lightws_header extra[] = {{"X-A", 3, "1", 1},
                                                {"X-B", 3, "two", 3}};
  switch (which) {
  case 0:
    return lightws_handshake_build_request(out, size, "example.com", "/p",
                                           RFC_KEY, "chat", "http://o",
                                           extra, 2);
  case 1:
    return lightws_handshake_build_response(out, size, RFC_KEY, 24, "chat",
                                            extra, 2);
  default:
    return lightws_handshake_build_error(out, size, 426, extra, 2);
  }
}

START_TEST(test_build_gives_nospace_for_every_short_size) {
  uint8_t full[512], out[512 + 16];
  ssize_t n = build(_i, full, sizeof full);
  size_t size;
  ck_assert_int_gt(n, 0);
  for (size = 0; size < (size_t)n; size++) {
    memset(out, GUARD, sizeof out);
    ck_assert_int_eq(build(_i, out, size), LIGHTWS_ERR_NOSPACE);
    ck_assert_msg(all_guard(out, size, sizeof out), "wrote past size %zu",
                  size);
  }
  memset(out, GUARD, sizeof out);
  ck_assert_int_eq(build(_i, out, (size_t)n), n);
  ck_assert_mem_eq(out, full, (size_t)n);
  ck_assert(all_guard(out, (size_t)n, sizeof out));
  ck_assert_int_eq(build(_i, NULL, 0), LIGHTWS_ERR_NOSPACE);
}
END_TEST

/* ------------------------------------------------------------------------
 * injection
 * ------------------------------------------------------------------------ */

/* Where the bad byte goes. */
enum spot { HOST, PATH, ORIGIN, PROTOCOLS, XNAME, XVALUE, RPROTOCOL, RXNAME,
            RXVALUE, EXNAME, EXVALUE, NSPOTS };

static const char *const spot_names[NSPOTS] = {
    "host", "path", "origin", "protocols", "extra name", "extra value",
    "response protocol", "response extra name", "response extra value",
    "error extra name", "error extra value"};

static const char bad_bytes[] = {'\r', '\n', '\0', '\x01', '\x7f'};
#define NBAD ((int)sizeof bad_bytes)

START_TEST(test_encoders_refuse_control_bytes_everywhere) {
  int spot = _i / NBAD;
  char bad = bad_bytes[_i % NBAD];
  /* "a<bad>X-Evil: 1" : a value that would smuggle a header */
  char evil[32] = "a?X-Evil: 1";
  size_t evil_len = strlen(evil);
  const char *host = "h", *path = "/", *origin = NULL, *protocols = NULL;
  const char *rprotocol = NULL;
  struct lightws_header x = {"X-Ok", 4, "ok", 2};
  uint8_t out[512];
  ssize_t n;
  evil[1] = bad;

  /* NUL ends a C string: NUL can only reach length-counted headers */
  if (bad == '\0' && spot != XNAME && spot != XVALUE && spot != RXNAME &&
      spot != RXVALUE && spot != EXNAME && spot != EXVALUE)
    return;
  switch (spot) {
  case HOST: host = evil; break;
  case PATH: path = evil; break;
  case ORIGIN: origin = evil; break;
  case PROTOCOLS: protocols = evil; break;
  case XNAME: case RXNAME: case EXNAME:
    x.name = evil; x.name_len = evil_len; break;
  case RPROTOCOL: rprotocol = evil; break;
  default:
    x.value = evil; x.value_len = evil_len; break;
  }
  memset(out, GUARD, sizeof out);
  if (spot <= XVALUE)
    n = lightws_handshake_build_request(out, sizeof out, host, path, RFC_KEY,
                                        protocols, origin, &x, 1);
  else if (spot <= RXVALUE)
    n = lightws_handshake_build_response(out, sizeof out, RFC_KEY, 24,
                                         rprotocol, &x, 1);
  else
    n = lightws_handshake_build_error(out, sizeof out, 400, &x, 1);
  ck_assert_msg(n == LIGHTWS_ERR_HEADER_INJECTION, "%s with 0x%02x: %s",
                spot_names[spot], (unsigned char)bad,
                lightws_errname((int)n));
  ck_assert_msg(all_guard(out, 0, sizeof out), "%s: bytes written",
                spot_names[spot]);
}
END_TEST

START_TEST(test_path_with_space_is_injection) {
  uint8_t out[512];
  static const char *const paths[] = {"/a b", "/a HTTP/1.1\r\n", "/\t",
                                      " /", "/a\x7f"};
  size_t i;
  memset(out, GUARD, sizeof out);
  for (i = 0; i < sizeof paths / sizeof paths[0]; i++)
    ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h",
                                                     paths[i], RFC_KEY, NULL,
                                                     NULL, NULL, 0),
                     LIGHTWS_ERR_HEADER_INJECTION);
  ck_assert(all_guard(out, 0, sizeof out));
}
END_TEST

START_TEST(test_extra_name_must_be_a_token) {
  static const char *const names[] = {"", "X Y", "X:Y", "X-A:", "(x)",
                                      "X\"", "\xc3\xa9"};
  uint8_t out[512];
  size_t i;
  memset(out, GUARD, sizeof out);
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    struct lightws_header x = {names[i], strlen(names[i]), "v", 1};
    ck_assert_int_eq(lightws_handshake_build_request(out, sizeof out, "h", "/",
                                                     RFC_KEY, NULL, NULL, &x,
                                                     1),
                     LIGHTWS_ERR_HEADER_INJECTION);
    ck_assert_int_eq(lightws_handshake_build_response(out, sizeof out, RFC_KEY,
                                                      24, NULL, &x, 1),
                     LIGHTWS_ERR_HEADER_INJECTION);
    ck_assert_int_eq(lightws_handshake_build_error(out, sizeof out, 400, &x,
                                                   1),
                     LIGHTWS_ERR_HEADER_INJECTION);
  }
  ck_assert(all_guard(out, 0, sizeof out));
}
END_TEST

START_TEST(test_injection_checked_before_nospace) {
  /* a bad value is reported as such even when the buffer is too small */
  struct lightws_header x = {"X", 1, "a\r\nb", 4};
  ck_assert_int_eq(lightws_handshake_build_request(NULL, 0, "h", "/", RFC_KEY,
                                                   NULL, NULL, &x, 1),
                   LIGHTWS_ERR_HEADER_INJECTION);
}
END_TEST

Suite *handshake_suite(void) {
  Suite *s = suite_create("handshake");
  TCase *tc;

  tc = tcase_create("accept");
  tcase_add_test(tc, test_accept_matches_rfc_example);
  tcase_add_test(tc, test_key_is_base64_of_16_random_bytes);
  tcase_add_test(tc, test_generated_key_passes_the_request_parser);
  suite_add_tcase(s, tc);

  tc = tcase_create("request");
  tcase_add_test(tc, test_parse_rfc_sample_request);
  tcase_add_loop_test(tc, test_parse_requests_of_real_clients, 0,
                      (int)(sizeof clients / sizeof clients[0]));
  tcase_add_loop_test(tc, test_parse_request_rejects_with_exact_error, 0,
                      (int)(sizeof bad_requests / sizeof bad_requests[0]));
  tcase_add_loop_test(tc, test_parse_request_accepts_valid_variants, 0,
                      (int)(sizeof odd_good_requests /
                            sizeof odd_good_requests[0]));
  tcase_add_test(tc, test_failed_check_fills_request);
  tcase_add_test(tc, test_http2_request_line_is_http_version);
  tcase_add_test(tc, test_missing_version_is_bad_version_and_426);
  tcase_add_test(tc, test_version_that_is_not_a_number_reads_minus_two);
  tcase_add_test(tc, test_http_status_of_request_errors);
  tcase_add_test(tc, test_header_find_and_has_token);
  tcase_add_test(tc, test_build_request_exact_bytes);
  tcase_add_test(tc, test_build_request_defaults_path_to_slash);
  tcase_add_test(tc, test_build_request_rejects_bad_arguments);
  suite_add_tcase(s, tc);

  tc = tcase_create("response");
  tcase_add_test(tc, test_parse_rfc_sample_response);
  tcase_add_test(tc, test_build_response_matches_rfc_sample);
  tcase_add_test(tc, test_build_response_with_extra_headers);
  tcase_add_loop_test(tc, test_build_error_exact_bytes, 0,
                      (int)(sizeof error_cases / sizeof error_cases[0]));
  tcase_add_test(tc, test_build_error_rejects_status_out_of_range);
  tcase_add_test(tc, test_build_error_with_extra_headers);
  tcase_add_loop_test(tc, test_parse_response_cases, 0,
                      (int)(sizeof resp_cases / sizeof resp_cases[0]));
  tcase_add_test(tc, test_bad_status_fills_response);
  tcase_add_test(tc, test_round_trip_request_and_response);
  suite_add_tcase(s, tc);

  tc = tcase_create("limits");
  tcase_add_loop_test(tc, test_every_prefix_of_a_request_is_incomplete, 0, 2);
  tcase_add_test(tc, test_every_prefix_of_a_response_is_incomplete);
  tcase_add_test(tc, test_parse_never_reads_past_len);
  tcase_add_test(tc, test_pipelined_frame_after_request_is_not_consumed);
  tcase_add_test(tc, test_pipelined_frame_after_response_is_not_consumed);
  tcase_add_loop_test(tc, test_request_over_socketpair_in_small_writes, 0, 7);
  tcase_add_test(tc, test_head_over_max_head_is_too_large);
  tcase_add_test(tc, test_default_head_limit_is_8192);
  tcase_add_test(tc, test_too_many_headers);
  tcase_add_test(tc, test_too_many_headers_in_response);
  tcase_add_test(tc, test_parse_rejects_null_struct);
  tcase_add_loop_test(tc, test_build_gives_nospace_for_every_short_size, 0, 3);
  suite_add_tcase(s, tc);

  tc = tcase_create("injection");
  tcase_add_loop_test(tc, test_encoders_refuse_control_bytes_everywhere, 0,
                      NSPOTS * NBAD);
  tcase_add_test(tc, test_path_with_space_is_injection);
  tcase_add_test(tc, test_extra_name_must_be_a_token);
  tcase_add_test(tc, test_injection_checked_before_nospace);
  suite_add_tcase(s, tc);
  return s;
}
