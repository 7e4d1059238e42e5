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

/* ---- client ----------------------------------------------------------- */

int lightws_client_start(struct lightws_stream *s, const char *host,
                         const char *path,
                         const struct lightws_client_options *opt) {
  char key[LIGHTWS_KEY_LEN + 1];
  ssize_t n;
  int r;
  if (s->role != LIGHTWS_CLIENT || s->state != ST_OPEN || s->rend ||
      s->whead_len || s->ctl_len)
    return LIGHTWS_ERR_INVALID;
  r = lightws_handshake_key(key);
  if (r < 0) return r;
  n = lightws_handshake_build_request(
      s->rbuf, s->rsize, host, path, key, opt ? opt->protocols : NULL,
      opt ? opt->origin : NULL, opt ? opt->headers : NULL,
      opt ? opt->num_headers : 0);
  if (n < 0) return (int)n;
  /* the key is needed to check Sec-WebSocket-Accept (§4.1) */
  memcpy(s->ctl, key, sizeof key);
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
      ssize_t n = lightws_handshake_parse_response(
          resp, s->rbuf + s->rpos, s->rend - s->rpos, s->utf8,
          (const char *)s->ctl, s->ctl_in_off ? (const char *)s->rbuf : NULL);
      if (n >= 0) {
        /* open: bytes past the head (a first frame) stay unread */
        s->rpos += (uint32_t)n;
        s->utf8 = 0;
        s->ctl_in_off = 0;
        memset(s->ctl, 0, sizeof s->ctl);
        hs_reset(s);
        s->state = ST_OPEN;
        return 0;
      }
      if (n != LIGHTWS_ERR_INCOMPLETE) {
        s->state = ST_FAILED;
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

/* Waits until `s` can go on after LIGHTWS_ERR_WOULDBLOCK (a nonblocking
 * descriptor given to a blocking wrapper), up to the stream's deadlines. */
static int wait_fd(struct lightws_stream *s) {
  return lightws__stream_wait(s, lightws_stream_want(s));
}

int lightws_connect(struct lightws_stream *s, int fd, uint8_t *rbuf,
                    size_t rsize, const char *host, const char *path,
                    const struct lightws_client_options *opt) {
  int r = lightws_stream_init(s, LIGHTWS_CLIENT, fd, rbuf, rsize, 0);
  if (r < 0) return r;
  if (opt && opt->timeouts)
    lightws_stream_set_timeouts(s, opt->timeouts, lightws_now());
  r = lightws_client_start(s, host, path, opt);
  for (;;) {
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      r = wait_fd(s);
      if (r < 0) return r;
    } else if (r < 0) {
      return r;
    }
    r = lightws_client_handshake(s, NULL);
    if (r == 0) return 0;
  }
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
    if (s->rpos || s->whead_len || s->ctl_len || s->msg_opcode)
      return LIGHTWS_ERR_INVALID;
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
  int r = send_out(s);
  if (r < 0) return r;
  s->state = s->state == ST_S_ACCEPT ? ST_OPEN : ST_DONE;
  hs_reset(s);
  return 0;
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

/* A client too slow for the handshake timeout: one nonblocking attempt at
 * a 408 (RFC 7231 §6.5.7), then the caller closes. */
static void answer_408(struct lightws_stream *s) {
  ssize_t n;
  if (s->io || s->fd < 0) return;
  n = lightws_handshake_build_error(s->rbuf, s->rsize, 408, NULL, 0);
  if (n > 0) (void)send(s->fd, s->rbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int lightws_accept(struct lightws_stream *s, int fd, uint8_t *rbuf,
                   size_t rsize, struct lightws_request *req,
                   const struct lightws_server_options *opt) {
  struct lightws_request local;
  char chosen[256];
  const char *protocols = opt ? opt->protocols : NULL;
  int r = lightws_stream_init(s, LIGHTWS_SERVER, fd, rbuf, rsize, 0), have;
  if (r < 0) return r;
  if (opt && opt->timeouts)
    lightws_stream_set_timeouts(s, opt->timeouts, lightws_now());
  if (!req) {
    memset(&local, 0, sizeof local);
    req = &local;
  }
  while ((r = lightws_server_read_request(s, req, opt ? opt->max_head : 0)) ==
         LIGHTWS_ERR_WOULDBLOCK) {
    if ((r = wait_fd(s)) < 0) break;
  }
  if (r == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) {
    answer_408(s);
    return r;
  }
  if (r < 0) {
    int status = lightws_http_status(r), e = r;
    if (!status) return r; /* EOF or SYSTEM: nobody to answer */
    while ((r = lightws_server_reject(s, status, NULL, 0)) ==
           LIGHTWS_ERR_WOULDBLOCK) {
      if ((r = wait_fd(s)) < 0) return r;
    }
    return e;
  }
  have = protocols && req->protocol &&
         pick_protocol(req->protocol, req->protocol_len, protocols, chosen,
                       sizeof chosen);
  while ((r = lightws_server_accept(s, have ? chosen : NULL, NULL, 0)) ==
         LIGHTWS_ERR_WOULDBLOCK) {
    if ((r = wait_fd(s)) < 0) return r;
  }
  return r;
}
