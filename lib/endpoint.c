/* SPDX-License-Identifier: MIT */
/* The opening handshake (RFC 6455 §4) over an initialized stream: request
 * and response are built and read in rbuf, resumable on nonblocking IO. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include "internal.h"

/* F_WANT_READ | F_WANT_WRITE of stream.c: cleared as each call starts. */
#define WANT_BITS 0x300u

/*
 * s->state during the handshake (0 is open, as in stream.c). While it runs
 * the frame fields are free and hold the handshake's progress:
 *   msg_len  offset in rbuf of the bytes being sent (request/response)
 *   r_left   their length
 *   w_left   how many of them went out
 * Client: the request is sent from rbuf[0..r_left); then the offered
 * protocols (NUL-terminated) move to rbuf[0..ctl_in_off) (ctl_in_off 0:
 * none) and the response is read after them, so rbuf needs room for the
 * response head only. The key (NUL-terminated) is kept in the control slot,
 * free before the stream opens; utf8 (zero when the stream opens) holds
 * the response head limit.
 * Server: r_left is the request head length once read (0 if it was bad).
 *
 * permessage-deflate (both roles): what the stream needs once it opens is
 * kept in the control slot, free until then (struct pmd_keep at
 * PMD_KEEP_OFF, after the client's key): the config (copied, so the
 * caller's may be freed), the caller's memory block, and on the server
 * the agreed parameters.
 */
enum {
  ST_OPEN = LIGHTWS__ST_OPEN,
  ST_C_SEND = LIGHTWS__ST_C_SEND,
  ST_C_RECV = LIGHTWS__ST_C_RECV,
  ST_S_READ = LIGHTWS__ST_S_READ,
  ST_S_HAVE = LIGHTWS__ST_S_HAVE,
  ST_S_ACCEPT = LIGHTWS__ST_S_ACCEPT,
  ST_S_REJECT = LIGHTWS__ST_S_REJECT,
  ST_DONE = LIGHTWS__ST_DONE,
  ST_FAILED = LIGHTWS__ST_FAILED
};

/* Sends rbuf[msg_len + w_left .. msg_len + r_left). 0 when all is out. */
static int send_out(struct lightws_stream *s) {
  while (s->w_left < s->r_left) {
    struct iovec iov;
    ssize_t r;
    iov.iov_base = s->rbuf + s->msg_len + s->w_left;
    iov.iov_len = (size_t)(s->r_left - s->w_left);
    r = lightws__stream_io_writev(s, &iov, 1);
    if (r < 0) return (int)r;
    s->w_left += (uint64_t)r;
  }
  return 0;
}

/* Reads more of an HTTP head into rbuf[rend..rsize). A head that fills
 * rbuf while max_head would allow more is the buffer's fault, not the
 * peer's: BUFFER_TOO_SMALL. */
static int read_more(struct lightws_stream *s) {
  ssize_t r;
  if (s->rend == s->rsize) return LIGHTWS_ERR_BUFFER_TOO_SMALL;
  r = lightws__stream_io_read(s, s->rbuf + s->rend, s->rsize - s->rend);
  if (r == 0) return LIGHTWS_ERR_EOF;
  if (r < 0) return (int)r;
  s->rend += (uint32_t)r;
  return 0;
}

static void hs_reset(struct lightws_stream *s) {
  s->msg_len = s->r_left = s->w_left = 0;
}

struct pmd_keep {
  struct lightws_pmd_config cfg;
  struct lightws_pmd_params agreed; /* server: what the response says */
  void *mem;
  size_t size;
  uint8_t on;                       /* 1: offered (client), agreed (server) */
};
#define PMD_KEEP_OFF 32 /* after the key (LIGHTWS_KEY_LEN + 1 bytes) */
typedef char pmd_keep_fits[PMD_KEEP_OFF + sizeof(struct pmd_keep) <=
                                   sizeof(((struct lightws_stream *)0)->ctl)
                               ? 1
                               : -1];

static void keep_get(const struct lightws_stream *s, struct pmd_keep *k) {
  memcpy(k, s->ctl + PMD_KEEP_OFF, sizeof *k);
}

static void keep_set(struct lightws_stream *s, const struct pmd_keep *k) {
  memcpy(s->ctl + PMD_KEEP_OFF, k, sizeof *k);
}

/* Adds "Sec-WebSocket-Extensions: value" as the last header of the HTTP
 * head of `n` bytes at out[0..size) (it ends in an empty line). Returns
 * the new length or LIGHTWS_ERR_NOSPACE. */
static ssize_t add_ext_header(uint8_t *out, size_t size, size_t n,
                              const char *value) {
  static const char name[] = "Sec-WebSocket-Extensions: ";
  size_t vl = strlen(value), at = n - 2;
  if (n < 4 || size - at < sizeof name - 1 + vl + 4) return LIGHTWS_ERR_NOSPACE;
  memcpy(out + at, name, sizeof name - 1);
  at += sizeof name - 1;
  memcpy(out + at, value, vl);
  at += vl;
  memcpy(out + at, "\r\n\r\n", 4);
  return (ssize_t)(at + 4);
}

/* The stream just opened with permessage-deflate agreed: compression on.
 * A failure (the block cannot serve the agreement) ends the stream with
 * close 1011: the peer would send what we cannot read. */
static int pmd_start(struct lightws_stream *s, const struct pmd_keep *k,
                     const struct lightws_pmd_params *agreed) {
  int r = lightws_stream_set_deflate(s, agreed, &k->cfg, k->mem, k->size);
  if (r < 0) {
    (void)lightws_stream_close(s, LIGHTWS_CLOSE_INTERNAL_ERROR, NULL, 0);
    s->last_err = (uint8_t)-r;
  }
  return r;
}

/* The block and config of options or lightws_server_deflate(): checked as
 * set_deflate will check them. */
static int keep_make(struct pmd_keep *k, const struct lightws_pmd_config *cfg,
                     void *mem, size_t size) {
  int r;
  memset(k, 0, sizeof *k);
  /* INVALID for a bad config, UNSUPPORTED without zlib */
  r = lightws_pmd_accept(NULL, 0, cfg, NULL);
  if (r < 0) return r;
  if (mem == NULL) return LIGHTWS_ERR_INVALID;
  if (size < lightws_pmd_mem_size(cfg)) return LIGHTWS_ERR_NOSPACE;
  if (cfg) k->cfg = *cfg;
  k->mem = mem;
  k->size = size;
  k->on = 1;
  return 0;
}

/* ---- client ----------------------------------------------------------- */

int lightws_client_start(struct lightws_stream *s, const char *host,
                         const char *path,
                         const struct lightws_client_options *opt) {
  char key[LIGHTWS_KEY_LEN + 1];
  struct pmd_keep k;
  ssize_t n;
  int r;
  if (s->role != LIGHTWS_CLIENT || s->state != ST_OPEN || s->rend ||
      s->whead_len || s->ctl_len || s->pmd)
    return LIGHTWS_ERR_INVALID;
  memset(&k, 0, sizeof k);
  if (opt && opt->deflate) {
    r = keep_make(&k, opt->deflate, opt->deflate_mem, opt->deflate_mem_size);
    /* built without zlib nothing is offered: the handshake goes on
     * without, unless the extension is required */
    if (r == LIGHTWS_ERR_UNSUPPORTED && !opt->deflate->required)
      memset(&k, 0, sizeof k);
    else if (r < 0)
      return r;
  }
  r = lightws_handshake_key(key);
  if (r < 0) return r;
  n = lightws_handshake_build_request(
      s->rbuf, s->rsize, host, path, key, opt ? opt->protocols : NULL,
      opt ? opt->origin : NULL, opt ? opt->headers : NULL,
      opt ? opt->num_headers : 0);
  if (n < 0) return (int)n;
  if (k.on) {
    /* RFC 7692 §5: the offer, last of the request's headers */
    char offer[160]; /* the longest offer is 127 bytes */
    ssize_t m = lightws_pmd_offer(offer, sizeof offer, &k.cfg);
    if (m < 0) return (int)m;
    n = add_ext_header(s->rbuf, s->rsize, (size_t)n, offer);
    if (n < 0) return (int)n;
  }
  /* the key is needed to check Sec-WebSocket-Accept (§4.1) */
  memset(s->ctl, 0, sizeof s->ctl);
  memcpy(s->ctl, key, sizeof key);
  keep_set(s, &k);
  s->ctl_in_off = 0;
  s->ctl_in_len = 0;
  s->msg_len = 0;
  s->r_left = (uint64_t)n;
  s->w_left = 0;
  s->utf8 = (opt && opt->max_head) ? (uint32_t)opt->max_head
                                   : LIGHTWS_HANDSHAKE_HEAD_MAX;
  s->state = ST_C_SEND;
  s->flags &= ~WANT_BITS;
  r = send_out(s);
  if (r < 0) return r;
  return 0;
}

/* Once the request is out (it is never sent again): keep only the offered
 * protocols, NUL-terminated at the front of rbuf, and read the response
 * after them. */
static int client_after_send(struct lightws_stream *s) {
  struct lightws_request q;
  ssize_t n;
  uint32_t keep = 0;
  memset(&q, 0, sizeof q);
  n = lightws_handshake_parse_request(&q, s->rbuf, (size_t)s->r_left,
                                      (size_t)s->r_left + 1);
  if (n > 0 && q.protocol && q.protocol_len) {
    memmove(s->rbuf, q.protocol, q.protocol_len);
    s->rbuf[q.protocol_len] = 0;
    keep = (uint32_t)q.protocol_len + 1;
  }
  s->ctl_in_off = keep;
  s->rpos = s->rend = keep;
  s->state = ST_C_RECV;
  return 0;
}

int lightws_client_handshake(struct lightws_stream *s,
                             struct lightws_response *resp) {
  struct lightws_response local;
  int r;
  s->flags &= ~WANT_BITS;
  if (s->last_err) return -(int)s->last_err; /* a timeout failed it */
  if (s->state == ST_C_SEND) {
    r = send_out(s);
    if (r < 0) return r;
    client_after_send(s);
  }
  if (s->state != ST_C_RECV) return LIGHTWS_ERR_INVALID;
  if (!resp) {
    memset(&local, 0, sizeof local);
    resp = &local;
  }
  for (;;) {
    if (s->rend > s->rpos) {
      struct pmd_keep k;
      struct lightws_pmd_params agreed;
      ssize_t n;
      keep_get(s, &k);
      n = lightws_handshake_parse_response_ext(
          resp, s->rbuf + s->rpos, s->rend - s->rpos, s->utf8,
          (const char *)s->ctl, s->ctl_in_off ? (const char *)s->rbuf : NULL,
          k.on ? &k.cfg : NULL, &agreed);
      if (n >= 0) {
        /* open: bytes past the head (a first frame) stay unread */
        s->rpos += (uint32_t)n;
        s->utf8 = 0;
        s->ctl_in_off = 0;
        memset(s->ctl, 0, sizeof s->ctl);
        hs_reset(s);
        s->state = ST_OPEN;
        if (k.on && resp->extensions) return pmd_start(s, &k, &agreed);
        if (k.on && k.cfg.required) {
          /* RFC 6455 §7.4.1: 1010, the extension we need was refused */
          static const char why[] = LIGHTWS_PMD_NAME " required";
          (void)lightws_stream_close(s, LIGHTWS_CLOSE_MANDATORY_EXTENSION, why,
                                     sizeof why - 1);
          s->last_err = (uint8_t)-LIGHTWS_ERR_EXTENSION_DECLINED;
          return LIGHTWS_ERR_EXTENSION_DECLINED;
        }
        return 0;
      }
      if (n != LIGHTWS_ERR_INCOMPLETE) {
        /* a whole head that is not a 101: what follows it is the start of
         * its body (lightws_client_rejected_body) */
        if (n == LIGHTWS_ERR_BAD_STATUS && resp->head_len <= s->rend - s->rpos)
          s->rpos += (uint32_t)resp->head_len;
        s->state = ST_FAILED;
        if (n == LIGHTWS_ERR_BAD_STATUS)
          s->last_err = (uint8_t)-LIGHTWS_ERR_BAD_STATUS;
        return (int)n;
      }
    }
    r = read_more(s);
    if (r == LIGHTWS_ERR_WOULDBLOCK) return r;
    if (r < 0) {
      s->state = ST_FAILED;
      return r;
    }
  }
}

const uint8_t *lightws_client_rejected_body(const struct lightws_stream *s,
                                            size_t *len) {
  if (s->state != ST_FAILED ||
      s->last_err != (uint8_t)-LIGHTWS_ERR_BAD_STATUS) {
    *len = 0;
    return NULL;
  }
  *len = s->rend - s->rpos;
  return s->rbuf + s->rpos;
}

/* Waits until `s` can go on after LIGHTWS_ERR_WOULDBLOCK, in the stream's
 * own wait: poll(2) on its descriptor (over a lightws_io: the one of the
 * io's wait_fd hook), ticking it at each deadline, so its handshake
 * timeout bounds the wait. WOULDBLOCK when there is nothing to wait on
 * (an io without a blocking descriptor): the caller returns it. */
static int hs_wait(struct lightws_stream *s) {
  return lightws__stream_wait(s, lightws_stream_want(s));
}

int lightws_connect_stream(struct lightws_stream *s, const char *host,
                           const char *path,
                           const struct lightws_client_options *opt) {
  int r = lightws_client_start(s, host, path, opt);
  for (;;) {
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      r = hs_wait(s);
      if (r < 0) return r;
    } else if (r < 0) {
      return r;
    }
    r = lightws_client_handshake(s, NULL);
    if (r == 0) return 0;
  }
}

int lightws_connect(struct lightws_stream *s, int fd, uint8_t *rbuf,
                    size_t rsize, const char *host, const char *path,
                    const struct lightws_client_options *opt) {
  int r = lightws_stream_init(s, LIGHTWS_CLIENT, fd, rbuf, rsize, 0);
  if (r < 0) return r;
  if (opt && opt->timeouts)
    lightws_stream_set_timeouts(s, opt->timeouts, lightws_now());
  return lightws_connect_stream(s, host, path, opt);
}

/* ---- server ----------------------------------------------------------- */

int lightws_server_read_request(struct lightws_stream *s,
                                struct lightws_request *req,
                                size_t max_head) {
  struct lightws_request local;
  int r;
  s->flags &= ~WANT_BITS;
  if (s->role != LIGHTWS_SERVER) return LIGHTWS_ERR_INVALID;
  if (s->last_err) return -(int)s->last_err;
  if (s->state == ST_OPEN) {
    /* only before any frame traffic; bytes fed already are the request */
    if (s->rpos || s->whead_len || s->ctl_len || s->msg_opcode || s->pmd)
      return LIGHTWS_ERR_INVALID;
    memset(s->ctl, 0, sizeof s->ctl); /* free until open (struct pmd_keep) */
    s->state = ST_S_READ;
  }
  if (s->state != ST_S_READ) return LIGHTWS_ERR_INVALID;
  if (!req) {
    memset(&local, 0, sizeof local);
    req = &local;
  }
  for (;;) {
    if (s->rend > 0) {
      ssize_t n =
          lightws_handshake_parse_request(req, s->rbuf, s->rend, max_head);
      if (n >= 0) {
        s->r_left = (uint64_t)n;
        s->state = ST_S_HAVE;
        return 0;
      }
      if (n != LIGHTWS_ERR_INCOMPLETE) {
        s->r_left = 0; /* the caller may still reject */
        s->state = ST_S_HAVE;
        return (int)n;
      }
    }
    r = read_more(s);
    if (r == LIGHTWS_ERR_WOULDBLOCK) return r;
    if (r == LIGHTWS_ERR_BUFFER_TOO_SMALL) {
      s->r_left = 0;
      s->state = ST_S_HAVE;
      return r;
    }
    if (r < 0) return r;
  }
}

/* Finishes sending the response; the stream opens (accept) or ends. */
static int server_send(struct lightws_stream *s) {
  struct pmd_keep k;
  int r = send_out(s);
  if (r < 0) return r;
  keep_get(s, &k);
  memset(s->ctl, 0, sizeof s->ctl);
  hs_reset(s);
  if (s->state != ST_S_ACCEPT) {
    s->state = ST_DONE;
    return 0;
  }
  s->state = ST_OPEN;
  return k.on ? pmd_start(s, &k, &k.agreed) : 0;
}

int lightws_server_deflate(struct lightws_stream *s,
                           const struct lightws_request *req,
                           const struct lightws_pmd_config *cfg, void *mem,
                           size_t size) {
  struct pmd_keep k;
  struct lightws_pmd_params a;
  int r, found = 0;
  if (s->role != LIGHTWS_SERVER || s->state != ST_S_HAVE || s->r_left == 0 ||
      req == NULL)
    return LIGHTWS_ERR_INVALID;
  r = keep_make(&k, cfg, mem, size);
  if (r < 0) return r;
  if (req->headers && req->max_headers) {
    /* RFC 7230 §3.2.2: the headers in order are one list of offers */
    size_t i;
    for (i = 0; i < req->num_headers && !found; i++) {
      const struct lightws_header *h = &req->headers[i];
      if (h->name_len != 24 ||
          lightws__casecmp(h->name, "Sec-WebSocket-Extensions", 24) != 0)
        continue;
      r = lightws_pmd_accept(h->value, h->value_len, cfg, &a);
      if (r < 0) return r;
      found = r;
    }
  } else if (req->extensions) {
    r = lightws_pmd_accept(req->extensions, req->extensions_len, cfg, &a);
    if (r < 0) return r;
    found = r;
  }
  if (!found) memset(&k, 0, sizeof k);
  else k.agreed = a;
  keep_set(s, &k);
  return found;
}

int lightws_server_accept(struct lightws_stream *s, const char *protocol,
                          const struct lightws_header *extra,
                          size_t num_extra) {
  s->flags &= ~WANT_BITS;
  if (s->last_err) return -(int)s->last_err;
  if (s->state == ST_S_HAVE && s->r_left > 0) {
    struct lightws_request q;
    char key[LIGHTWS_KEY_LEN];
    size_t head = (size_t)s->r_left, k = s->rend - head;
    ssize_t n;
    memset(&q, 0, sizeof q);
    n = lightws_handshake_parse_request(&q, s->rbuf, head, head + 1);
    if (n < 0 || q.key_len != LIGHTWS_KEY_LEN) return LIGHTWS_ERR_INVALID;
    memcpy(key, q.key, sizeof key);
    /* bytes past the request head are the client's first frames: they
     * become the stream's unread input at rbuf[0..k) */
    memmove(s->rbuf, s->rbuf + head, k);
    s->rpos = 0;
    s->rend = (uint32_t)k;
    n = lightws_handshake_build_response(s->rbuf + k, s->rsize - k, key,
                                         sizeof key, protocol, extra,
                                         num_extra);
    if (n >= 0) {
      struct pmd_keep pk;
      keep_get(s, &pk);
      if (pk.on) {
        /* RFC 7692 §5: the accepted offer's answer, the last header */
        char val[160]; /* the longest answer is 128 bytes */
        ssize_t m = lightws_pmd_response(val, sizeof val, &pk.agreed);
        n = m < 0 ? m
                  : add_ext_header(s->rbuf + k, s->rsize - k, (size_t)n, val);
      }
    }
    if (n < 0) {
      s->state = ST_FAILED;
      return (int)n;
    }
    s->msg_len = k;
    s->r_left = (uint64_t)n;
    s->w_left = 0;
    s->state = ST_S_ACCEPT;
  }
  if (s->state != ST_S_ACCEPT) return LIGHTWS_ERR_INVALID;
  return server_send(s);
}

int lightws_server_reject(struct lightws_stream *s, int status,
                          const struct lightws_header *extra,
                          size_t num_extra) {
  s->flags &= ~WANT_BITS;
  if (s->last_err) return -(int)s->last_err;
  if (s->state == ST_S_HAVE) memset(s->ctl, 0, sizeof s->ctl);
  if (s->state == ST_S_READ || s->state == ST_S_HAVE ||
      (s->state == ST_OPEN && s->role == LIGHTWS_SERVER && !s->rpos &&
       !s->whead_len && !s->ctl_len)) {
    ssize_t n = lightws_handshake_build_error(s->rbuf, s->rsize, status,
                                              extra, num_extra);
    if (n < 0) return (int)n;
    s->rpos = s->rend = 0;
    s->msg_len = 0;
    s->r_left = (uint64_t)n;
    s->w_left = 0;
    s->state = ST_S_REJECT;
  }
  if (s->state != ST_S_REJECT) return LIGHTWS_ERR_INVALID;
  return server_send(s);
}

/* Copies into out[0..size) the first token of `offered` (client order,
 * §4.2.2 /subprotocol/) that also appears in `ours`. 1 if found. */
static int pick_protocol(const char *offered, size_t olen, const char *ours,
                         char *out, size_t size) {
  size_t i = 0;
  while (i < olen) {
    size_t b, e;
    while (i < olen && (offered[i] == ' ' || offered[i] == '\t' ||
                        offered[i] == ','))
      i++;
    b = i;
    while (i < olen && offered[i] != ',') i++;
    e = i;
    while (e > b && (offered[e - 1] == ' ' || offered[e - 1] == '\t')) e--;
    if (e > b && e - b < size) {
      const char *p = ours;
      while (*p) {
        const char *q;
        size_t l;
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        q = p;
        while (*q && *q != ',') q++;
        l = (size_t)(q - p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
        if (l == e - b && memcmp(p, offered + b, l) == 0) {
          memcpy(out, offered + b, l);
          out[l] = 0;
          return 1;
        }
        p = q;
      }
    }
  }
  return 0;
}

/* A client too slow for the handshake timeout: one attempt at a 408
 * (RFC 7231 §6.5.7) that must not block, then the caller closes. Over a
 * lightws_io only through one with a descriptor (wait_fd hook), told first
 * that its callbacks must not block (a TLS layer: the 408 as a record). */
static void answer_408(struct lightws_stream *s) {
  struct iovec iov;
  ssize_t n;
  if (s->io ? !s->io->wait_fd || s->io->wait_fd(s->io->ctx, 1) < 0
            : s->fd < 0)
    return;
  n = lightws_handshake_build_error(s->rbuf, s->rsize, 408, NULL, 0);
  if (n <= 0) return;
  if (s->io) {
    iov.iov_base = s->rbuf;
    iov.iov_len = (size_t)n;
    (void)s->io->writev(s->io->ctx, &iov, 1);
  } else {
    (void)send(s->fd, s->rbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
}

/* Sends an error response with `status` (waiting as hs_wait) and returns
 * `err`, the failure it answers, or the failure of sending it. */
static int reject_with(struct lightws_stream *s, int status, int err) {
  int r;
  while ((r = lightws_server_reject(s, status, NULL, 0)) ==
         LIGHTWS_ERR_WOULDBLOCK) {
    if ((r = hs_wait(s)) < 0) return r;
  }
  return err;
}

int lightws_accept_stream(struct lightws_stream *s,
                          struct lightws_request *req,
                          const struct lightws_server_options *opt) {
  struct lightws_request local;
  struct lightws_header hdrs[LIGHTWS_HANDSHAKE_HEADERS_MAX];
  char chosen[256];
  const char *protocols = opt ? opt->protocols : NULL;
  int r, have;
  if (!req) {
    memset(&local, 0, sizeof local);
    if (opt && opt->deflate) {
      /* every Sec-WebSocket-Extensions header counts, not only the first */
      local.headers = hdrs;
      local.max_headers = LIGHTWS_HANDSHAKE_HEADERS_MAX;
    }
    req = &local;
  }
  while ((r = lightws_server_read_request(s, req, opt ? opt->max_head : 0)) ==
         LIGHTWS_ERR_WOULDBLOCK) {
    if ((r = hs_wait(s)) < 0) break;
  }
  if (r == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) {
    answer_408(s);
    return r;
  }
  if (r < 0) {
    int status = lightws_http_status(r);
    if (!status) return r; /* EOF or SYSTEM: nobody to answer */
    return reject_with(s, status, r);
  }
  if (opt && opt->deflate) {
    r = lightws_server_deflate(s, req, opt->deflate, opt->deflate_mem,
                               opt->deflate_mem_size);
    /* without zlib the offer is declined; a bad config or block is ours */
    if (r < 0 && r != LIGHTWS_ERR_UNSUPPORTED) return reject_with(s, 500, r);
  }
  have = protocols && req->protocol &&
         pick_protocol(req->protocol, req->protocol_len, protocols, chosen,
                       sizeof chosen);
  while ((r = lightws_server_accept(s, have ? chosen : NULL, NULL, 0)) ==
         LIGHTWS_ERR_WOULDBLOCK) {
    if ((r = hs_wait(s)) < 0) return r;
  }
  return r;
}

int lightws_accept(struct lightws_stream *s, int fd, uint8_t *rbuf,
                   size_t rsize, struct lightws_request *req,
                   const struct lightws_server_options *opt) {
  int r = lightws_stream_init(s, LIGHTWS_SERVER, fd, rbuf, rsize, 0);
  if (r < 0) return r;
  if (opt && opt->timeouts)
    lightws_stream_set_timeouts(s, opt->timeouts, lightws_now());
  return lightws_accept_stream(s, req, opt);
}
