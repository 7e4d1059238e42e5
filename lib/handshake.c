/* SPDX-License-Identifier: MIT */
/* The opening handshake codec (RFC 6455 §4): HTTP/1.1 upgrade request and response, encoded and parsed. */
#include <string.h>

#include "internal.h"

/* §1.3, §4.2.2: appended to the key before hashing. */
static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ------------------------------------------------------------------------
 * Character classes (RFC 7230 §3.2.6, RFC 5234 appendix B.1)
 * ------------------------------------------------------------------------ */

/* tchar: the characters of a token (header names, methods). */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  switch (c) {
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
  case '+': case '-': case '.': case '^': case '_': case '`': case '|':
  case '~':
    return 1;
  default:
    return 0;
  }
}

/* field-vchar (VCHAR / obs-text) plus SP and HT: what a field value,
 * a reason phrase may hold. Everything else is a control character
 * (NUL, CR, LF, DEL, ...). */
static int is_field_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_token(const char *s, size_t n) {
  size_t i;
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i]))
      return 0;
  return 1;
}

/* 1 if `name` (not NUL-terminated, `len` bytes) is the header `lit`,
 * ASCII case-insensitive (RFC 7230 §3.2: field names are). */
static int name_is(const char *name, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && lightws__casecmp(name, lit, n) == 0;
}

/*
 * 1 if the comma-separated `list[0..len)` has an element equal to
 * `tok[0..tok_len)`. Elements are trimmed of OWS and empty ones skipped
 * (RFC 7230 §7: "#rule" lists allow empty elements). `icase` selects an
 * ASCII case-insensitive comparison.
 */
static int list_has(const char *list, size_t len, const char *tok,
                    size_t tok_len, int icase) {
  size_t i = 0;
  while (i < len) {
    size_t start, end;
    while (i < len && (is_ows(list[i]) || list[i] == ','))
      i++;
    start = i;
    while (i < len && list[i] != ',')
      i++;
    end = i;
    while (end > start && is_ows(list[end - 1]))
      end--;
    if (end - start == tok_len && tok_len > 0 &&
        (icase ? lightws__casecmp(list + start, tok, tok_len) == 0
               : memcmp(list + start, tok, tok_len) == 0))
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

int lightws_handshake_key(char *key) {
  uint8_t nonce[16];
  int rc = lightws__random(nonce, sizeof nonce);
  if (rc != 0)
    return rc;
  /* §4.1: a randomly selected 16-byte value, base64-encoded */
  lightws__base64_encode(nonce, sizeof nonce, key);
  key[LIGHTWS_KEY_LEN] = '\0';
  return 0;
}

void lightws_handshake_accept(const char *key, size_t key_len, char *accept) {
  struct lightws__sha1 c;
  uint8_t digest[20];
  lightws__sha1_init(&c);
  lightws__sha1_update(&c, key, key_len);
  lightws__sha1_update(&c, GUID, sizeof GUID - 1);
  lightws__sha1_final(&c, digest);
  lightws__base64_encode(digest, sizeof digest, accept);
  accept[LIGHTWS_ACCEPT_LEN] = '\0';
}

const struct lightws_header *
lightws_header_find(const struct lightws_header *headers, size_t n,
                    const char *name) {
  size_t i;
  if (headers == NULL || name == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (name_is(headers[i].name, headers[i].name_len, name))
      return &headers[i];
  return NULL;
}

int lightws_header_has_token(const struct lightws_header *headers, size_t n,
                             const char *name, const char *token) {
  size_t i, tok_len;
  if (headers == NULL || name == NULL || token == NULL)
    return 0;
  tok_len = strlen(token);
  for (i = 0; i < n; i++)
    if (name_is(headers[i].name, headers[i].name_len, name) &&
        list_has(headers[i].value, headers[i].value_len, token, tok_len, 1))
      return 1;
  return 0;
}

/* ------------------------------------------------------------------------
 * Encoders
 *
 * Every argument is checked before the first byte is written, so a
 * refused value (HEADER_INJECTION, INVALID) leaves `out` untouched.
 * ------------------------------------------------------------------------ */

struct writer {
  uint8_t *out;
  size_t size;
  size_t pos;
  int full;   /* something did not fit */
};

static void put(struct writer *w, const char *s, size_t n) {
  if (w->full || n > w->size - w->pos) {
    w->full = 1;
    return;
  }
  if (n > 0)
    memcpy(w->out + w->pos, s, n);
  w->pos += n;
}

static void puts_(struct writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_header(struct writer *w, const char *name, size_t name_len,
                       const char *value, size_t value_len) {
  put(w, name, name_len);
  put(w, ": ", 2);
  put(w, value, value_len);
  put(w, "\r\n", 2);
}

static ssize_t finish(const struct writer *w) {
  return w->full ? LIGHTWS_ERR_NOSPACE : (ssize_t)w->pos;
}

/* A value may become a header value: no CR, LF, NUL or other control
 * character but HT, which would end the line early or smuggle a header
 * (the seed copied path and host without this check). */
static int value_ok(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!is_field_char((unsigned char)s[i]))
      return 0;
  return 1;
}

static int check_extra(const struct lightws_header *extra, size_t n) {
  size_t i;
  if (n > 0 && extra == NULL)
    return LIGHTWS_ERR_INVALID;
  for (i = 0; i < n; i++) {
    if (extra[i].name == NULL ||
        (extra[i].value == NULL && extra[i].value_len > 0))
      return LIGHTWS_ERR_INVALID;
    if (!is_token(extra[i].name, extra[i].name_len) ||
        !value_ok(extra[i].value, extra[i].value_len))
      return LIGHTWS_ERR_HEADER_INJECTION;
  }
  return 0;
}

static void put_extra(struct writer *w, const struct lightws_header *extra,
                      size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    put_header(w, extra[i].name, extra[i].name_len, extra[i].value,
               extra[i].value_len);
}

ssize_t lightws_handshake_build_request(uint8_t *out, size_t size,
                                        const char *host, const char *path,
                                        const char *key,
                                        const char *protocols,
                                        const char *origin,
                                        const struct lightws_header *extra,
                                        size_t num_extra) {
  struct writer w;
  size_t i, path_len;
  int rc;

  if (host == NULL || key == NULL || strlen(key) != LIGHTWS_KEY_LEN ||
      host[0] == '\0' || (out == NULL && size > 0))
    return LIGHTWS_ERR_INVALID;
  if (path == NULL || path[0] == '\0')
    path = "/";
  path_len = strlen(path);
  /* The request-target sits between two single spaces in the request
   * line (RFC 7230 §3.1.1): a space or control character in it would
   * change the line's meaning. */
  for (i = 0; i < path_len; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c <= 0x20 || c == 0x7f)
      return LIGHTWS_ERR_HEADER_INJECTION;
  }
  if (!value_ok(host, strlen(host)) || !value_ok(key, LIGHTWS_KEY_LEN) ||
      (protocols != NULL && !value_ok(protocols, strlen(protocols))) ||
      (origin != NULL && !value_ok(origin, strlen(origin))))
    return LIGHTWS_ERR_HEADER_INJECTION;
  rc = check_extra(extra, num_extra);
  if (rc != 0)
    return rc;

  w.out = out;
  w.size = size;
  w.pos = 0;
  w.full = 0;
  /* §4.1: a GET request, HTTP/1.1 at least, with these fields. */
  puts_(&w, "GET ");
  put(&w, path, path_len);
  puts_(&w, " HTTP/1.1\r\nHost: ");
  puts_(&w, host);
  puts_(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: ");
  put(&w, key, LIGHTWS_KEY_LEN);
  puts_(&w, "\r\nSec-WebSocket-Version: 13\r\n");
  if (protocols != NULL && protocols[0] != '\0')
    put_header(&w, "Sec-WebSocket-Protocol", 22, protocols,
               strlen(protocols));
  if (origin != NULL && origin[0] != '\0')
    put_header(&w, "Origin", 6, origin, strlen(origin));
  put_extra(&w, extra, num_extra);
  put(&w, "\r\n", 2);
  return finish(&w);
}

ssize_t lightws_handshake_build_response(uint8_t *out, size_t size,
                                         const char *key, size_t key_len,
                                         const char *protocol,
                                         const struct lightws_header *extra,
                                         size_t num_extra) {
  struct writer w;
  char accept[LIGHTWS_ACCEPT_LEN + 1];
  int rc;

  if (key == NULL || key_len != LIGHTWS_KEY_LEN || (out == NULL && size > 0))
    return LIGHTWS_ERR_INVALID;
  if (protocol != NULL && !value_ok(protocol, strlen(protocol)))
    return LIGHTWS_ERR_HEADER_INJECTION;
  rc = check_extra(extra, num_extra);
  if (rc != 0)
    return rc;

  lightws_handshake_accept(key, key_len, accept);
  w.out = out;
  w.size = size;
  w.pos = 0;
  w.full = 0;
  /* §4.2.2 step 5 */
  puts_(&w, "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: ");
  put(&w, accept, LIGHTWS_ACCEPT_LEN);
  put(&w, "\r\n", 2);
  if (protocol != NULL && protocol[0] != '\0')
    put_header(&w, "Sec-WebSocket-Protocol", 22, protocol, strlen(protocol));
  put_extra(&w, extra, num_extra);
  put(&w, "\r\n", 2);
  return finish(&w);
}

/* Reason phrases (RFC 7231 §6.1, RFC 6585) for the statuses a websocket
 * server answers with. */
static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  default: return "Error";
  }
}

ssize_t lightws_handshake_build_error(uint8_t *out, size_t size, int status,
                                      const struct lightws_header *extra,
                                      size_t num_extra) {
  struct writer w;
  char code[4];
  int rc;

  /* 1xx are interim responses (and 101 would announce an upgrade): they
   * cannot be the final answer to a refused handshake. */
  if (status < 200 || status > 599 || (out == NULL && size > 0))
    return LIGHTWS_ERR_INVALID;
  rc = check_extra(extra, num_extra);
  if (rc != 0)
    return rc;

  code[0] = (char)('0' + status / 100);
  code[1] = (char)('0' + status / 10 % 10);
  code[2] = (char)('0' + status % 10);
  code[3] = ' ';
  w.out = out;
  w.size = size;
  w.pos = 0;
  w.full = 0;
  puts_(&w, "HTTP/1.1 ");
  put(&w, code, 4);
  puts_(&w, reason_phrase(status));
  put(&w, "\r\n", 2);
  if (status == 405)
    puts_(&w, "Allow: GET\r\n"); /* RFC 7231 §6.5.5: MUST list methods */
  if (status == 426) {
    /* RFC 7231 §6.5.15: a 426 MUST carry Upgrade; RFC 7230 §6.7: then
     * Connection MUST list "upgrade"; §4.4: the versions we speak. */
    puts_(&w, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
              "Content-Length: 0\r\nConnection: Upgrade, close\r\n");
  } else {
    puts_(&w, "Content-Length: 0\r\nConnection: close\r\n");
  }
  put_extra(&w, extra, num_extra);
  put(&w, "\r\n", 2);
  return finish(&w);
}

/* ------------------------------------------------------------------------
 * HTTP/1.x head parser
 *
 * One pass over whole lines. A line ends at LF; a CR right before the LF
 * is part of the line ending (RFC 7230 §3.5 lets a recipient accept a
 * bare LF too). The head ends at the first empty line. A syntax error in
 * a complete line is reported at once, even before the head is complete,
 * so garbage is refused without waiting for max_head bytes; the semantic
 * checks run only on a complete head.
 * ------------------------------------------------------------------------ */

/* What the parser reports to the request or response code. */
struct head_sink {
  struct lightws_header *headers; /* NULL: do not store */
  size_t max_headers;
  size_t *num_headers;
  int (*start)(void *ctx, const char *line, size_t len);
  int (*field)(void *ctx, const char *name, size_t name_len,
               const char *value, size_t value_len);
  void *ctx;
};

/* Parses `HTTP/D.D` at the start of s[0..n). Returns 0 and sets *major,
 * *minor, or -1. */
static int parse_version(const char *s, size_t n, int *major, int *minor) {
  if (n < 8 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) ||
      s[6] != '.' || !is_digit(s[7]))
    return -1;
  *major = s[5] - '0';
  *minor = s[7] - '0';
  return 0;
}

static int parse_field(const struct head_sink *sink, const char *line,
                       size_t len) {
  size_t i = 0, colon, vstart, vend;
  /* RFC 7230 §3.2.4: obs-fold (a line starting with SP or HT) and
   * whitespace before the colon must be rejected by a server. */
  while (i < len && is_tchar((unsigned char)line[i]))
    i++;
  if (i == 0 || i == len || line[i] != ':')
    return LIGHTWS_ERR_HTTP_MALFORMED;
  colon = i;
  vstart = i + 1;
  while (vstart < len && is_ows(line[vstart]))
    vstart++;
  vend = len;
  while (vend > vstart && is_ows(line[vend - 1]))
    vend--;
  for (i = vstart; i < vend; i++)
    if (!is_field_char((unsigned char)line[i]))
      return LIGHTWS_ERR_HTTP_MALFORMED;
  if (sink->headers != NULL && sink->max_headers > 0) {
    struct lightws_header *h;
    if (*sink->num_headers == sink->max_headers)
      return LIGHTWS_ERR_TOO_MANY_HEADERS;
    h = &sink->headers[(*sink->num_headers)++];
    h->name = line;
    h->name_len = colon;
    h->value = line + vstart;
    h->value_len = vend - vstart;
  }
  return sink->field(sink->ctx, line, colon, line + vstart, vend - vstart);
}

/* Returns the head length, or an error. */
static ssize_t parse_head(const struct head_sink *sink, const uint8_t *in,
                          size_t len, size_t max_head) {
  const char *s = (const char *)in;
  size_t lim = len < max_head ? len : max_head;
  size_t pos = 0;
  int first = 1;

  for (;;) {
    const char *lf = pos < lim ? memchr(s + pos, '\n', lim - pos) : NULL;
    size_t end, next;
    int rc;
    if (lf == NULL) {
      /* No line end yet. A byte that no line may hold (a control
       * character, a CR not followed by LF) fails now: a TLS hello or
       * other binary is refused before max_head bytes arrive. */
      size_t i;
      for (i = pos; i < lim; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t' && !(ch == '\r' && i + 1 == lim)) ||
            ch == 0x7f)
          return LIGHTWS_ERR_HTTP_MALFORMED;
      }
      return len >= max_head ? LIGHTWS_ERR_HEAD_TOO_LARGE
                             : LIGHTWS_ERR_INCOMPLETE;
    }
    end = (size_t)(lf - s);
    next = end + 1;
    if (end > pos && s[end - 1] == '\r')
      end--;
    if (end == pos) {
      if (first) /* no request or status line */
        return LIGHTWS_ERR_HTTP_MALFORMED;
      return (ssize_t)next;
    }
    if (first) {
      rc = sink->start(sink->ctx, s + pos, end - pos);
      first = 0;
    } else {
      rc = parse_field(sink, s + pos, end - pos);
    }
    if (rc != 0)
      return rc;
    pos = next;
  }
}

/* ------------------------------------------------------------------------
 * Request (server side, §4.2.1)
 * ------------------------------------------------------------------------ */

struct req_ctx {
  struct lightws_request *req;
  int major, minor;
  unsigned hosts, keys, versions; /* these may appear once */
  int upgrade, connection;        /* the tokens were found */
};

/* Request-line (RFC 7230 §3.1.1): method SP request-target SP version,
 * single spaces. */
static int req_start(void *ctx, const char *line, size_t len) {
  struct req_ctx *c = ctx;
  struct lightws_request *req = c->req;
  size_t i = 0, target;
  while (i < len && is_tchar((unsigned char)line[i]))
    i++;
  if (i == 0 || i == len || line[i] != ' ')
    return LIGHTWS_ERR_HTTP_MALFORMED;
  req->method = line;
  req->method_len = i;
  target = ++i;
  while (i < len && (unsigned char)line[i] > 0x20 &&
         (unsigned char)line[i] != 0x7f)
    i++;
  if (i == target || i == len || line[i] != ' ')
    return LIGHTWS_ERR_HTTP_MALFORMED;
  req->path = line + target;
  req->path_len = i - target;
  i++;
  if (len - i != 8 || parse_version(line + i, 8, &c->major, &c->minor) != 0)
    return LIGHTWS_ERR_HTTP_MALFORMED;
  req->http_minor = c->major == 1 ? c->minor : -1;
  return 0;
}

/* §4.1, §11.3.5: version = 1*3DIGIT without leading zero, 0..255.
 * Returns the number, or -2 when the value is not one. */
static int parse_ws_version(const char *s, size_t n) {
  int v = 0;
  size_t i;
  if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
    return -2;
  for (i = 0; i < n; i++) {
    if (!is_digit(s[i]))
      return -2;
    v = v * 10 + (s[i] - '0');
  }
  return v <= 255 ? v : -2;
}

static int req_field(void *ctx, const char *name, size_t name_len,
                     const char *value, size_t value_len) {
  struct req_ctx *c = ctx;
  struct lightws_request *req = c->req;
  /* A second Host (RFC 7230 §5.4: "MUST respond with 400") or a second
   * key is ambiguous: which one would the accept answer? */
  if (name_is(name, name_len, "Host")) {
    if (c->hosts++)
      return LIGHTWS_ERR_HTTP_MALFORMED;
    req->host = value;
    req->host_len = value_len;
  } else if (name_is(name, name_len, "Sec-WebSocket-Key")) {
    if (c->keys++)
      return LIGHTWS_ERR_HTTP_MALFORMED;
    req->key = value;
    req->key_len = value_len;
  } else if (name_is(name, name_len, "Sec-WebSocket-Version")) {
    if (c->versions++)
      return LIGHTWS_ERR_HTTP_MALFORMED;
    req->version = parse_ws_version(value, value_len);
  } else if (name_is(name, name_len, "Upgrade")) {
    c->upgrade |= list_has(value, value_len, "websocket", 9, 1);
  } else if (name_is(name, name_len, "Connection")) {
    c->connection |= list_has(value, value_len, "upgrade", 7, 1);
  } else if (name_is(name, name_len, "Origin")) {
    if (req->origin == NULL) {
      req->origin = value;
      req->origin_len = value_len;
    }
  } else if (name_is(name, name_len, "Sec-WebSocket-Protocol")) {
    if (req->protocol == NULL) {
      req->protocol = value;
      req->protocol_len = value_len;
    }
  } else if (name_is(name, name_len, "Sec-WebSocket-Extensions")) {
    if (req->extensions == NULL) {
      req->extensions = value;
      req->extensions_len = value_len;
    }
  }
  return 0;
}

/* §4.1: "a randomly selected 16-byte value that has been base64-encoded".
 * The decoder is strict (canonical padding, zero pad bits), so exactly
 * one 24-character spelling of each 16 bytes passes. */
static int key_ok(const char *k, size_t n) {
  uint8_t raw[18];
  return n == LIGHTWS_KEY_LEN &&
         lightws__base64_decode(k, n, raw, sizeof raw) == 16;
}

ssize_t lightws_handshake_parse_request(struct lightws_request *req,
                                        const uint8_t *in, size_t len,
                                        size_t max_head) {
  struct req_ctx c;
  struct head_sink sink;
  ssize_t n;

  if (req == NULL || (in == NULL && len > 0))
    return LIGHTWS_ERR_INVALID;
  req->num_headers = 0;
  req->method = req->path = req->host = req->key = NULL;
  req->origin = req->protocol = req->extensions = NULL;
  req->method_len = req->path_len = req->host_len = req->key_len = 0;
  req->origin_len = req->protocol_len = req->extensions_len = 0;
  req->http_minor = -1;
  req->version = -1;
  req->head_len = 0;
  memset(&c, 0, sizeof c);
  c.req = req;
  sink.headers = req->headers;
  sink.max_headers = req->max_headers;
  sink.num_headers = &req->num_headers;
  sink.start = req_start;
  sink.field = req_field;
  sink.ctx = &c;

  n = parse_head(&sink, in, len,
                 max_head ? max_head : LIGHTWS_HANDSHAKE_HEAD_MAX);
  if (n < 0)
    return n;
  req->head_len = (size_t)n;

  /* §4.2.1, in the order the contract lists */
  if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
    return LIGHTWS_ERR_HTTP_METHOD; /* methods are case-sensitive */
  if (c.major != 1 || c.minor < 1)
    return LIGHTWS_ERR_HTTP_VERSION;
  if (req->host == NULL || req->host_len == 0)
    return LIGHTWS_ERR_NO_HOST;
  if (!c.upgrade)
    return LIGHTWS_ERR_NO_UPGRADE;
  if (!c.connection)
    return LIGHTWS_ERR_NO_CONNECTION;
  if (req->version != 13)
    return LIGHTWS_ERR_BAD_VERSION;
  if (req->key == NULL || !key_ok(req->key, req->key_len))
    return LIGHTWS_ERR_BAD_KEY;
  return n;
}

/* ------------------------------------------------------------------------
 * Response (client side, §4.1 "the client MUST validate")
 * ------------------------------------------------------------------------ */

struct resp_ctx {
  struct lightws_response *resp;
  int major, minor;
  unsigned accepts, protocols, extensions;
  int upgrade, connection;
  const struct lightws_pmd_config *offered; /* NULL: no extension offered */
  struct lightws_pmd_params *agreed;
  int ext_err;                    /* first extension error, reported last */
};

/* Status-line (RFC 7230 §3.1.2): version SP 3DIGIT SP reason. The SP
 * before an empty reason is optional here, as many servers drop it. */
static int resp_start(void *ctx, const char *line, size_t len) {
  struct resp_ctx *c = ctx;
  struct lightws_response *resp = c->resp;
  size_t i;
  if (len < 12 || parse_version(line, len, &c->major, &c->minor) != 0 ||
      line[8] != ' ' || !is_digit(line[9]) || !is_digit(line[10]) ||
      !is_digit(line[11]))
    return LIGHTWS_ERR_HTTP_MALFORMED;
  resp->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 +
                 (line[11] - '0');
  if (len == 12) {
    resp->reason = line + 12;
    return 0;
  }
  if (line[12] != ' ')
    return LIGHTWS_ERR_HTTP_MALFORMED;
  for (i = 13; i < len; i++)
    if (!is_field_char((unsigned char)line[i]))
      return LIGHTWS_ERR_HTTP_MALFORMED;
  resp->reason = line + 13;
  resp->reason_len = len - 13;
  return 0;
}

static int resp_field(void *ctx, const char *name, size_t name_len,
                      const char *value, size_t value_len) {
  struct resp_ctx *c = ctx;
  struct lightws_response *resp = c->resp;
  if (name_is(name, name_len, "Sec-WebSocket-Accept")) {
    if (c->accepts++)
      return LIGHTWS_ERR_HTTP_MALFORMED;
    resp->accept = value;
    resp->accept_len = value_len;
  } else if (name_is(name, name_len, "Upgrade")) {
    c->upgrade |= list_has(value, value_len, "websocket", 9, 1);
  } else if (name_is(name, name_len, "Connection")) {
    c->connection |= list_has(value, value_len, "upgrade", 7, 1);
  } else if (name_is(name, name_len, "Sec-WebSocket-Protocol")) {
    if (c->protocols++ == 0) {
      resp->protocol = value;
      resp->protocol_len = value_len;
    }
  } else if (name_is(name, name_len, "Sec-WebSocket-Extensions")) {
    if (c->extensions++ == 0) {
      resp->extensions = value;
      resp->extensions_len = value_len;
    }
    /* RFC 7230 §3.2.2: several headers are one list. Each must hold only
     * our extension, and it may be named once in all of them. */
    if (c->offered && !c->ext_err) {
      if (c->extensions > 1)
        c->ext_err = LIGHTWS_ERR_BAD_EXTENSION;
      else
        c->ext_err = lightws_pmd_check_response(value, value_len, c->offered,
                                                c->agreed);
    }
  }
  return 0;
}

ssize_t lightws_handshake_parse_response(struct lightws_response *resp,
                                         const uint8_t *in, size_t len,
                                         size_t max_head, const char *key,
                                         const char *protocols) {
  return lightws_handshake_parse_response_ext(resp, in, len, max_head, key,
                                              protocols, NULL, NULL);
}

static ssize_t parse_response(struct lightws_response *resp,
                              const uint8_t *in, size_t len, size_t max_head,
                              const char *key, const char *protocols,
                              const struct lightws_pmd_config *offered,
                              struct lightws_pmd_params *agreed) {
  struct resp_ctx c;
  struct head_sink sink;
  ssize_t n;

  if (resp == NULL || (in == NULL && len > 0))
    return LIGHTWS_ERR_INVALID;
  resp->num_headers = 0;
  resp->status = 0;
  resp->reason = resp->accept = resp->protocol = resp->extensions = NULL;
  resp->reason_len = resp->accept_len = resp->protocol_len = 0;
  resp->extensions_len = 0;
  resp->head_len = 0;
  memset(&c, 0, sizeof c);
  c.resp = resp;
  c.offered = offered;
  c.agreed = agreed;
  sink.headers = resp->headers;
  sink.max_headers = resp->max_headers;
  sink.num_headers = &resp->num_headers;
  sink.start = resp_start;
  sink.field = resp_field;
  sink.ctx = &c;

  n = parse_head(&sink, in, len,
                 max_head ? max_head : LIGHTWS_HANDSHAKE_HEAD_MAX);
  if (n < 0)
    return n;
  resp->head_len = (size_t)n;

  /* Status first, so that an HTTP/1.0 error page still reports its
   * status; 101 itself exists only from HTTP/1.1 on. */
  if (resp->status != 101)
    return LIGHTWS_ERR_BAD_STATUS;
  if (c.major != 1 || c.minor < 1)
    return LIGHTWS_ERR_HTTP_VERSION;
  if (!c.upgrade)
    return LIGHTWS_ERR_NO_UPGRADE;
  if (!c.connection)
    return LIGHTWS_ERR_NO_CONNECTION;
  if (key != NULL) {
    char want[LIGHTWS_ACCEPT_LEN + 1];
    lightws_handshake_accept(key, strlen(key), want);
    /* base64 is case-sensitive: an exact comparison */
    if (resp->accept == NULL || resp->accept_len != LIGHTWS_ACCEPT_LEN ||
        memcmp(resp->accept, want, LIGHTWS_ACCEPT_LEN) != 0)
      return LIGHTWS_ERR_BAD_ACCEPT;
  }
  /* §4.1: the server picks one of the offered subprotocols, verbatim
   * (§11.3.4: one value, a token; compared exactly, as browsers do). */
  if (c.protocols > 0 &&
      (protocols == NULL || c.protocols > 1 ||
       !list_has(protocols, strlen(protocols), resp->protocol,
                 resp->protocol_len, 0)))
    return LIGHTWS_ERR_BAD_PROTOCOL;
  /* §4.1: only an offered extension may be in use; none means the
   * server declined (RFC 7692 §5) */
  if (c.extensions > 0 && offered == NULL)
    return LIGHTWS_ERR_BAD_EXTENSION;
  if (c.ext_err)
    return c.ext_err;
  return n;
}

ssize_t lightws_handshake_parse_response_ext(
    struct lightws_response *resp, const uint8_t *in, size_t len,
    size_t max_head, const char *key, const char *protocols,
    const struct lightws_pmd_config *offered,
    struct lightws_pmd_params *agreed) {
  struct lightws_pmd_params local;
  ssize_t n;
  if (agreed == NULL)
    agreed = &local;
  memset(agreed, 0, sizeof *agreed);
  n = parse_response(resp, in, len, max_head, key, protocols, offered,
                     agreed);
  if (n < 0) /* filled only for a response that is all good */
    memset(agreed, 0, sizeof *agreed);
  return n;
}
