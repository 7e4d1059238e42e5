/* SPDX-License-Identifier: MIT */
/* lightws-tunnel's configuration: HOST:PORT and kaminari option strings. */
#include "tunnel_opts.h"
#include "common.h"
#include "lightws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tunnel_parse_hostport(const char *s, char *host, size_t hsize, int *port,
                          int allow_zero, char *err, size_t esize)
{
  const char *colon, *h = s;
  size_t n;
  int ok;
  long long v;

  if (*s == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') {
      snprintf(err, esize, "'%s': expected [IPV6]:PORT", s);
      return -1;
    }
    h = s + 1;
    n = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) {
      snprintf(err, esize, "'%s': expected HOST:PORT", s);
      return -1;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
      snprintf(err, esize, "'%s': write IPv6 addresses as [ADDR]:PORT", s);
      return -1;
    }
    n = (size_t)(colon - s);
  }
  if (n == 0 || n >= hsize) {
    snprintf(err, esize, "'%s': bad host", s);
    return -1;
  }
  memcpy(host, h, n);
  host[n] = '\0';
  v = tool_parse_num(colon + 1, allow_zero ? 0 : 1, 65535, &ok);
  if (!ok) {
    snprintf(err, esize, "'%s': bad port", s);
    return -1;
  }
  *port = (int)v;
  return 0;
}

/* Copies the next item of a kaminari option string into key/val,
 * resolving '\' escapes (kaminari README: "semicolons, equal signs and
 * backslashes MUST be escaped with a backslash"). Returns the rest of the
 * string, or NULL at its end. */
static const char *next_item(const char *p, char *key, size_t ksize,
                             char *val, size_t vsize, int *has_val,
                             int *too_long)
{
  size_t kn = 0, vn = 0;
  int in_val = 0;

  *has_val = 0;
  *too_long = 0;
  if (!*p) return NULL;
  for (; *p && *p != ';'; p++) {
    char ch = *p;
    if (ch == '\\' && p[1]) {
      ch = *++p;
    } else if (ch == '=' && !in_val) {
      in_val = 1;
      *has_val = 1;
      continue;
    }
    if (in_val) {
      if (vn + 1 < vsize) val[vn++] = ch;
      else *too_long = 1;
    } else {
      if (kn + 1 < ksize) key[kn++] = ch;
      else *too_long = 1;
    }
  }
  key[kn] = '\0';
  val[vn] = '\0';
  if (*p == ';') p++;
  return p;
}

/* Trims spaces around a value in place (kaminari trims too). */
static char *trim(char *s)
{
  char *e;
  while (*s == ' ' || *s == '\t') s++;
  e = s + strlen(s);
  while (e > s && (e[-1] == ' ' || e[-1] == '\t')) *--e = '\0';
  return s;
}

static int set_str(char *dst, size_t size, const char *v, const char *key,
                   char *err, size_t esize)
{
  if (!*v) {
    snprintf(err, esize, "option '%s' needs a value", key);
    return -1;
  }
  if (strlen(v) >= size) {
    snprintf(err, esize, "option '%s': value too long", key);
    return -1;
  }
  strcpy(dst, v);
  return 0;
}

static int set_seconds(uint32_t *dst, const char *v, const char *key, char *err,
                       size_t esize)
{
  int ok;
  long long ms = tool_parse_seconds(v, &ok);
  if (!ok) {
    snprintf(err, esize, "option '%s': bad duration '%s' (seconds)", key, v);
    return -1;
  }
  *dst = (uint32_t)ms;
  return 0;
}

int tunnel_parse_opts(struct tunnel_config *c, const char *opts, char *err,
                      size_t esize)
{
  /* values that must outlive the call (file names) */
  static char cafile[1024], cert[1024], keyf[1024];
  char kbuf[64], vbuf[1024];
  const char *p = opts;
  int ws = 0;

  while (p && *p) {
    int has_val, too_long;
    char *k, *v;
    p = next_item(p, kbuf, sizeof(kbuf), vbuf, sizeof(vbuf), &has_val,
                  &too_long);
    if (!p) break;
    k = trim(kbuf);
    v = trim(vbuf);
    if (too_long) {
      snprintf(err, esize, "option '%.40s': too long", k);
      return -1;
    }
    if (!*k && !has_val) continue; /* "a;;b", a trailing ';' */
    if (!strcmp(k, "ws")) {
      ws = 1;
    } else if (!strcmp(k, "host")) {
      if (set_str(c->http_host, sizeof(c->http_host), v, k, err, esize)) return -1;
    } else if (!strcmp(k, "path")) {
      if (set_str(c->path, sizeof(c->path), v, k, err, esize)) return -1;
      if (c->path[0] != '/') {
        snprintf(err, esize, "option 'path': must start with '/'");
        return -1;
      }
    } else if (!strcmp(k, "tls")) {
      if (!TOOL_HAVE_TLS) {
        snprintf(err, esize, "option 'tls': %s", TOOL_NO_TLS_MSG);
        return -1;
      }
      c->tls = 1;
    } else if (!strcmp(k, "sni")) {
      if (set_str(c->sni, sizeof(c->sni), v, k, err, esize)) return -1;
    } else if (!strcmp(k, "insecure")) {
      c->insecure = 1;
    } else if (!strcmp(k, "cafile")) {
      if (set_str(cafile, sizeof(cafile), v, k, err, esize)) return -1;
      c->cafile = cafile;
    } else if (!strcmp(k, "cert")) {
      if (set_str(cert, sizeof(cert), v, k, err, esize)) return -1;
      c->tls_cert = cert;
    } else if (!strcmp(k, "key")) {
      if (set_str(keyf, sizeof(keyf), v, k, err, esize)) return -1;
      c->tls_key = keyf;
    } else if (!strcmp(k, "mask")) {
      /* kaminari's names (skip/skipped is its default, the zero key),
       * and ours */
      if (!strcmp(v, "skip") || !strcmp(v, "skipped") || !strcmp(v, "zero"))
        c->mask = LIGHTWS_MASK_ZERO;
      else if (!strcmp(v, "standard") || !strcmp(v, "random") ||
               !strcmp(v, "fresh"))
        c->mask = LIGHTWS_MASK_RANDOM;
      else if (!strcmp(v, "fixed"))
        c->mask = LIGHTWS_MASK_FIXED;
      else {
        snprintf(err, esize, "option 'mask': '%s' is not standard, fixed or skip", v);
        return -1;
      }
    } else if (!strcmp(k, "server")) {
      c->mode = TUNNEL_SERVER;
    } else if (!strcmp(k, "client")) {
      c->mode = TUNNEL_CLIENT;
    } else if (!strcmp(k, "handshake-timeout")) {
      if (set_seconds(&c->handshake_ms, v, k, err, esize)) return -1;
    } else if (!strcmp(k, "idle-timeout")) {
      if (set_seconds(&c->idle_ms, v, k, err, esize)) return -1;
    } else if (!strcmp(k, "ping-interval")) {
      if (set_seconds(&c->ping_ms, v, k, err, esize)) return -1;
    } else if (!strcmp(k, "ping-timeout")) {
      if (set_seconds(&c->pong_ms, v, k, err, esize)) return -1;
      c->pong_set = 1;
    } else if (!strcmp(k, "workers")) {
      int ok;
      long long n = tool_parse_num(v, 1, 256, &ok);
      if (!ok) {
        snprintf(err, esize, "option 'workers': '%s' is not 1..256", v);
        return -1;
      }
      c->workers = (int)n;
    } else if (!strcmp(k, "alpn") || !strcmp(k, "0rtt")) {
      /* kaminari's TLS tuning: the TLS layer offers http/1.1 and has no
       * early data; accepted so that kaminari strings work as they are */
    } else if (!strcmp(k, "servername") || !strcmp(k, "ocsp")) {
      snprintf(err, esize, "option '%s' (kaminari's self-signed certificate / "
               "OCSP stapling) is not supported: give cert= and key=", k);
      return -1;
    } else {
      snprintf(err, esize, "unknown option '%s'", k);
      return -1;
    }
  }
  if (!ws) {
    snprintf(err, esize, "the option string has no 'ws': raw tcp/tls "
             "transports (kaminari without ws) are not supported");
    return -1;
  }
  return 0;
}
