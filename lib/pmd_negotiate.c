/* SPDX-License-Identifier: MIT */
/* permessage-deflate negotiation (RFC 7692 §5, §7.1): offers and responses in Sec-WebSocket-Extensions values (RFC 6455 §9.1). */
#include <string.h>

#include "internal.h"

#if defined(LIGHTWS_HAVE_ZLIB) && LIGHTWS_HAVE_ZLIB
#define HAVE_ZLIB 1
#else
#define HAVE_ZLIB 0
#endif

/* ------------------------------------------------------------------------
 * Extension list syntax (RFC 6455 §9.1, with the implied linear white
 * space of RFC 2616 §2.1 between the parts):
 *   extension-list = 1#extension
 *   extension      = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 * Empty list elements are skipped (RFC 7230 §7).
 * ------------------------------------------------------------------------ */

static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

struct cursor {
  const char *s;
  size_t len, pos;
};

static void skip_ows(struct cursor *c) {
  while (c->pos < c->len && is_ows(c->s[c->pos])) c->pos++;
}

static int peek(const struct cursor *c) {
  return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* A token at the cursor: its start and length (0: none there). */
static size_t take_token(struct cursor *c, const char **start) {
  size_t b = c->pos;
  while (c->pos < c->len && is_tchar((unsigned char)c->s[c->pos])) c->pos++;
  *start = c->s + b;
  return c->pos - b;
}

/* Case-insensitive comparison of s[0..n) with the literal `lit`. */
static int is_name(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && lightws__casecmp(s, lit, l) == 0;
}

/* ------------------------------------------------------------------------
 * One permessage-deflate element, as read
 * ------------------------------------------------------------------------ */

#define P_SNCT 0x1u /* server_no_context_takeover */
#define P_CNCT 0x2u /* client_no_context_takeover */
#define P_SMWB 0x4u /* server_max_window_bits */
#define P_CMWB 0x8u /* client_max_window_bits */

struct elem {
  int is_pmd;          /* the extension token is permessage-deflate */
  int bad;             /* unknown, duplicate or invalid parameter */
  int cmwb_bare;       /* client_max_window_bits without a value */
  unsigned seen;       /* P_* */
  uint8_t smwb, cmwb;  /* values, 8..15 */
};

/* §7.1.2.1, §7.1.2.2: a window-bits value is 1*DIGIT without leading
 * zero, 8..15. `v` is the value after quoted-string unescaping (RFC 6455
 * §9.1: it must then be a token). Returns 8..15, or 0. */
static unsigned window_value(const char *v, size_t n) {
  if (n == 1 && v[0] >= '8' && v[0] <= '9') return (unsigned)(v[0] - '0');
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10u + (unsigned)(v[1] - '0');
  return 0;
}

/* Records parameter `name` (with `val[0..vlen)` when has_val) in `e`. */
static void elem_param(struct elem *e, const char *name, size_t nlen,
                       int has_val, const char *val, size_t vlen) {
  unsigned bit, w = 0;
  if (is_name(name, nlen, "server_no_context_takeover")) bit = P_SNCT;
  else if (is_name(name, nlen, "client_no_context_takeover")) bit = P_CNCT;
  else if (is_name(name, nlen, "server_max_window_bits")) bit = P_SMWB;
  else if (is_name(name, nlen, "client_max_window_bits")) bit = P_CMWB;
  else {
    e->bad = 1; /* §7.1: a parameter not defined for the extension */
    return;
  }
  if (e->seen & bit) e->bad = 1; /* §7.1: the same parameter twice */
  e->seen |= bit;
  if (bit == P_SNCT || bit == P_CNCT) {
    if (has_val) e->bad = 1; /* §7.1.1: these have no value */
    return;
  }
  if (!has_val) {
    /* §7.1.2.2: only client_max_window_bits may come bare (in an offer;
     * the response check refuses it) */
    if (bit == P_CMWB) e->cmwb_bare = 1;
    else e->bad = 1;
    return;
  }
  w = window_value(val, vlen);
  if (w == 0) {
    e->bad = 1;
    return;
  }
  if (bit == P_SMWB) e->smwb = (uint8_t)w;
  else e->cmwb = (uint8_t)w;
}

/* Reads one element at the cursor (after any separators). Returns 1 with
 * `*e` filled and the cursor after the element (at ',' or the end), 0 at
 * the end of the list, -1 when the list is not valid syntax (then
 * `*e` tells whether the broken element was permessage-deflate). */
static int next_elem(struct cursor *c, struct elem *e) {
  const char *tok;
  size_t n;
  memset(e, 0, sizeof *e);
  for (;;) { /* empty elements */
    skip_ows(c);
    if (peek(c) != ',') break;
    c->pos++;
  }
  if (c->pos == c->len) return 0;
  n = take_token(c, &tok);
  if (n == 0) return -1;
  e->is_pmd = is_name(tok, n, LIGHTWS_PMD_NAME);
  for (;;) {
    const char *name, *val = NULL;
    size_t nlen, vlen = 0;
    char unq[3];
    int has_val = 0;
    skip_ows(c);
    if (peek(c) == ',' || peek(c) == -1) return 1;
    if (peek(c) != ';') return -1;
    c->pos++;
    skip_ows(c);
    nlen = take_token(c, &name);
    if (nlen == 0) return -1;
    skip_ows(c);
    if (peek(c) == '=') {
      c->pos++;
      skip_ows(c);
      has_val = 1;
      if (peek(c) == '"') {
        /* quoted-string (RFC 2616 §2.2): qdtext and quoted-pairs; the
         * unescaped value must be a token (RFC 6455 §9.1). Only short
         * values can be window bits, so at most 3 bytes are kept. */
        int token_ok = 1;
        c->pos++;
        vlen = 0;
        for (;;) {
          int ch = peek(c);
          if (ch == -1) return -1;
          c->pos++;
          if (ch == '"') break;
          if (ch == '\\') {
            ch = peek(c);
            if (ch == -1) return -1;
            c->pos++;
          }
          if (ch < 0x20 && ch != '\t') return -1;
          if (ch == 0x7f) return -1;
          if (!is_tchar((unsigned char)ch)) token_ok = 0;
          if (vlen < sizeof unq) unq[vlen] = (char)ch;
          vlen++;
        }
        if (!token_ok || vlen == 0) {
          /* not a token inside the quotes: an invalid value */
          if (e->is_pmd) e->bad = 1;
          continue;
        }
        val = unq; /* window_value() reads it only when vlen <= 2 */
      } else {
        vlen = take_token(c, &val);
        if (vlen == 0) return -1;
      }
    }
    if (e->is_pmd) elem_param(e, name, nlen, has_val, val, vlen);
  }
}

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */

struct norm {
  unsigned wb, pwb; /* our window, the peer's largest */
};

static int cfg_check(const struct lightws_pmd_config *cfg, struct norm *n) {
  static const struct lightws_pmd_config zero;
  if (cfg == NULL) cfg = &zero;
  if ((cfg->window_bits && (cfg->window_bits < 9 || cfg->window_bits > 15)) ||
      (cfg->peer_window_bits &&
       (cfg->peer_window_bits < 8 || cfg->peer_window_bits > 15)) ||
      cfg->mem_level > 9 || cfg->level < -1 || cfg->level > 9 ||
      (cfg->work_size && (cfg->work_size < 256 || cfg->work_size > 65536)) ||
      cfg->no_context_takeover > 1 || cfg->peer_no_context_takeover > 1 ||
      cfg->required > 1)
    return LIGHTWS_ERR_INVALID;
  n->wb = cfg->window_bits ? cfg->window_bits : LIGHTWS_PMD_DEFAULT_WINDOW_BITS;
  n->pwb = cfg->peer_window_bits ? cfg->peer_window_bits : 15;
  return 0;
}

/* ------------------------------------------------------------------------
 * Writing values
 * ------------------------------------------------------------------------ */

struct out {
  char *p;
  size_t size, pos;
  int full;
};

static void put(struct out *o, const char *s) {
  size_t n = strlen(s);
  if (o->full || n >= o->size - o->pos) { /* keep room for the NUL */
    o->full = 1;
    return;
  }
  memcpy(o->p + o->pos, s, n);
  o->pos += n;
}

static void put_bits(struct out *o, const char *name, unsigned v) {
  char num[4];
  num[0] = '=';
  if (v >= 10) {
    num[1] = '1';
    num[2] = (char)('0' + v - 10);
    num[3] = 0;
  } else {
    num[1] = (char)('0' + v);
    num[2] = 0;
  }
  put(o, "; ");
  put(o, name);
  put(o, num);
}

static ssize_t out_end(struct out *o) {
  if (o->full || o->size == 0) return LIGHTWS_ERR_NOSPACE;
  o->p[o->pos] = 0;
  return (ssize_t)o->pos;
}

ssize_t lightws_pmd_offer(char *out, size_t size,
                          const struct lightws_pmd_config *cfg) {
  struct norm n;
  struct out o;
  int r = cfg_check(cfg, &n);
  if (r < 0) return r;
  if (!HAVE_ZLIB) return LIGHTWS_ERR_UNSUPPORTED;
  if (out == NULL && size > 0) return LIGHTWS_ERR_INVALID;
  o.p = out;
  o.size = size;
  o.pos = 0;
  o.full = 0;
  put(&o, LIGHTWS_PMD_NAME);
  /* §7.1.2.2: bare, "we can limit our window to whatever you say" */
  put(&o, "; client_max_window_bits");
  /* §7.1.2.1: what our inflater holds, asked for only when below 15 */
  if (n.pwb < 15) put_bits(&o, "server_max_window_bits", n.pwb);
  /* §7.1.1.2: a hint that we reset our compressor anyway */
  if (cfg && cfg->no_context_takeover) put(&o, "; client_no_context_takeover");
  /* §7.1.1.1: the server must then reset its compressor */
  if (cfg && cfg->peer_no_context_takeover)
    put(&o, "; server_no_context_takeover");
  return out_end(&o);
}

ssize_t lightws_pmd_response(char *out, size_t size,
                             const struct lightws_pmd_params *agreed) {
  struct out o;
  if (agreed == NULL || (out == NULL && size > 0) ||
      agreed->server_no_context_takeover > 1 ||
      agreed->client_no_context_takeover > 1 ||
      (agreed->server_max_window_bits &&
       (agreed->server_max_window_bits < 8 ||
        agreed->server_max_window_bits > 15)) ||
      (agreed->client_max_window_bits &&
       (agreed->client_max_window_bits < 8 ||
        agreed->client_max_window_bits > 15)))
    return LIGHTWS_ERR_INVALID; /* BARE is for offers only (§7.1.2.2) */
  o.p = out;
  o.size = size;
  o.pos = 0;
  o.full = 0;
  put(&o, LIGHTWS_PMD_NAME);
  if (agreed->server_no_context_takeover)
    put(&o, "; server_no_context_takeover");
  if (agreed->client_no_context_takeover)
    put(&o, "; client_no_context_takeover");
  if (agreed->server_max_window_bits)
    put_bits(&o, "server_max_window_bits", agreed->server_max_window_bits);
  if (agreed->client_max_window_bits)
    put_bits(&o, "client_max_window_bits", agreed->client_max_window_bits);
  return out_end(&o);
}

/* ------------------------------------------------------------------------
 * Server: pick an offer
 * ------------------------------------------------------------------------ */

/* The answer to one valid offer `e` under `n`/`cfg`; 0 if we cannot
 * accept it. */
static int answer(const struct elem *e, const struct norm *n,
                  const struct lightws_pmd_config *cfg,
                  struct lightws_pmd_params *a) {
  memset(a, 0, sizeof *a);
  /* §7.1.2.2: without the parameter in the offer we cannot limit the
   * client's window, and our inflater is smaller than 15 bits */
  if (n->pwb < 15 && !(e->seen & P_CMWB)) return 0;
  /* §7.1.1.1: asked for, we must reset; or we choose to (and say so) */
  a->server_no_context_takeover =
      (uint8_t)((e->seen & P_SNCT) || (cfg && cfg->no_context_takeover));
  /* §7.1.1.2: the client's hint echoed, or our request */
  a->client_no_context_takeover =
      (uint8_t)((e->seen & P_CNCT) || (cfg && cfg->peer_no_context_takeover));
  /* §7.1.2.1: the same or a smaller value than asked; unasked, a window
   * smaller than 15 needs no announcement */
  if (e->seen & P_SMWB)
    a->server_max_window_bits = (uint8_t)(n->wb < e->smwb ? n->wb : e->smwb);
  /* §7.1.2.2: only when offered; a value offered is the client's own
   * limit, and we may lower it to what our inflater holds */
  if (e->seen & P_CMWB) {
    unsigned v = n->pwb;
    if (!e->cmwb_bare && e->cmwb < v) v = e->cmwb;
    a->client_max_window_bits = (uint8_t)v;
  }
  return 1;
}

int lightws_pmd_accept(const char *value, size_t len,
                       const struct lightws_pmd_config *cfg,
                       struct lightws_pmd_params *agreed) {
  struct cursor c;
  struct elem e;
  struct norm n;
  struct lightws_pmd_params a;
  int r = cfg_check(cfg, &n), found = 0;
  if (r < 0) return r;
  if (!HAVE_ZLIB) return LIGHTWS_ERR_UNSUPPORTED;
  if (agreed) memset(agreed, 0, sizeof *agreed);
  if (value == NULL) return 0;
  c.s = value;
  c.len = len;
  c.pos = 0;
  /* the whole list must be valid before any offer counts */
  while ((r = next_elem(&c, &e)) == 1) {
    if (found || !e.is_pmd || e.bad) continue; /* §7.1: decline that one */
    if (answer(&e, &n, cfg, &a)) found = 1;
  }
  if (r < 0 || !found) return 0;
  if (agreed) *agreed = a;
  return 1;
}

/* ------------------------------------------------------------------------
 * Client: check the response
 * ------------------------------------------------------------------------ */

int lightws_pmd_check_response(const char *value, size_t len,
                               const struct lightws_pmd_config *cfg,
                               struct lightws_pmd_params *agreed) {
  struct cursor c;
  struct elem e;
  struct norm n;
  struct lightws_pmd_params a;
  int r = cfg_check(cfg, &n), found = 0;
  if (r < 0) return r;
  if (agreed) memset(agreed, 0, sizeof *agreed);
  if (value == NULL && len > 0) return LIGHTWS_ERR_INVALID;
  memset(&a, 0, sizeof a);
  c.s = value;
  c.len = len;
  c.pos = 0;
  while ((r = next_elem(&c, &e)) != 0) {
    /* RFC 6455 §9.1, §4.1: only what we offered, once */
    if (!e.is_pmd || found) return LIGHTWS_ERR_BAD_EXTENSION;
    if (r < 0 || e.bad) return LIGHTWS_ERR_BAD_EXTENSION_PARAMS;
    found = 1;
    /* §7.1.2.2: a response names a value (we always offer the parameter,
     * so any value 8..15 is a limit we accept) */
    if (e.cmwb_bare) return LIGHTWS_ERR_BAD_EXTENSION_PARAMS;
    /* §7.1.2.1: asked for, it must come back, the same or smaller */
    if (n.pwb < 15 && (!(e.seen & P_SMWB) || e.smwb > n.pwb))
      return LIGHTWS_ERR_BAD_EXTENSION_PARAMS;
    /* §7.1.1.1: asked for, it must come back */
    if (cfg && cfg->peer_no_context_takeover && !(e.seen & P_SNCT))
      return LIGHTWS_ERR_BAD_EXTENSION_PARAMS;
    a.server_no_context_takeover = (uint8_t)((e.seen & P_SNCT) != 0);
    a.client_no_context_takeover =
        (uint8_t)((e.seen & P_CNCT) || (cfg && cfg->no_context_takeover));
    a.server_max_window_bits = e.smwb;
    a.client_max_window_bits = e.cmwb;
  }
  if (!found) return LIGHTWS_ERR_BAD_EXTENSION; /* an empty list */
  if (agreed) *agreed = a;
  return 0;
}
