/* SPDX-License-Identifier: MIT */
/* lightws-tls tests (check): echo over TLS in both roles, blocking and
 * nonblocking over a fake IO that cuts every transport call to one byte
 * and says EAGAIN before each, KeyUpdate in the middle of frames,
 * certificate errors, close_notify and truncation. Certificates come from
 * tests/tls/make_certs.sh (LIGHTWS_TLS_CERTS). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include "lightws_tls.h"

static char certdir[512];

static const char *cert(const char *name) {
  static char bufs[8][600];
  static int k;
  char *b = bufs[k++ & 7];
  snprintf(b, 600, "%s/%s", certdir, name);
  return b;
}

static int fcntl_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

static int quick(void) {
  return getenv("LIGHTWS_TEST_QUICK") != NULL;
}

/* ---- fake IO: over a socket, every call cut to one byte, EAGAIN first --- */

struct fake {
  struct lightws_io io;
  int fd;
  int mode;          /* 0 pass through, 1 one byte, 2 EAGAIN then one byte */
  unsigned rtick, wtick;
  int last_block;    /* LIGHTWS_WANT_* of the last EAGAIN */
  int wblock;        /* every write says EAGAIN (a peer not reading) */
  int real;          /* ... and it was the socket's, not ours */
  unsigned long reads, writes;
};

static ssize_t fake_read(void *ctx, void *buf, size_t len) {
  struct fake *f = (struct fake *)ctx;
  ssize_t r;
  f->real = 0;
  if (f->mode == 2 && (f->rtick++ & 1) == 0) {
    f->last_block = LIGHTWS_WANT_READ;
    errno = EAGAIN;
    return -1;
  }
  if (f->mode) len = len ? 1 : 0;
  f->reads++;
  r = recv(f->fd, buf, len, MSG_DONTWAIT);
  if (r < 0 && errno == EAGAIN) {
    f->last_block = LIGHTWS_WANT_READ;
    f->real = 1;
  }
  return r;
}

static ssize_t fake_writev(void *ctx, const struct iovec *iov, int cnt) {
  struct fake *f = (struct fake *)ctx;
  struct msghdr m;
  struct iovec one;
  ssize_t r;
  f->real = 0;
  if (f->wblock) {
    f->last_block = LIGHTWS_WANT_WRITE;
    errno = EAGAIN;
    return -1;
  }
  if (f->mode == 2 && (f->wtick++ & 1) == 0) {
    f->last_block = LIGHTWS_WANT_WRITE;
    errno = EAGAIN;
    return -1;
  }
  f->writes++;
  memset(&m, 0, sizeof m);
  m.msg_iov = (struct iovec *)iov;
  m.msg_iovlen = (size_t)cnt;
  if (f->mode) {
    int i;
    for (i = 0; i < cnt && !iov[i].iov_len; i++)
      continue;
    if (i == cnt) return 0;
    one.iov_base = iov[i].iov_base;
    one.iov_len = 1;
    m.msg_iov = &one;
    m.msg_iovlen = 1;
  }
  r = sendmsg(f->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (r < 0 && errno == EAGAIN) {
    f->last_block = LIGHTWS_WANT_WRITE;
    f->real = 1;
  }
  return r;
}

static void fake_init(struct fake *f, int fd, int mode) {
  memset(f, 0, sizeof *f);
  f->io.read = fake_read;
  f->io.writev = fake_writev;
  f->io.ctx = f;
  f->fd = fd;
  f->mode = mode;
}

/* ---- contexts ---------------------------------------------------------- */

static int max_version; /* of the next contexts, 0: TLS 1.3 */

static SSL_CTX *server_ctx(const char *name) {
  char c[600], k[600];
  int err = 0;
  SSL_CTX *ctx;
  snprintf(c, sizeof c, "%s/%s.pem", certdir, name);
  snprintf(k, sizeof k, "%s/%s.key", certdir, name);
  ctx = lightws_tls_server_ctx(c, k, &err);
  ck_assert_msg(ctx != NULL, "server ctx: %s", lightws_tls_errname(err));
  if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
  return ctx;
}

static SSL_CTX *client_ctx(int insecure) {
  int err = 0;
  SSL_CTX *ctx = lightws_tls_client_ctx(cert("ca.pem"), insecure, &err);
  ck_assert_msg(ctx != NULL, "client ctx: %s", lightws_tls_errname(err));
  if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
  return ctx;
}

/* ---- a blocking echo peer in a thread ------------------------------------ */

struct peer {
  pthread_t th;
  int fd;
  enum lightws_role role;
  SSL_CTX *ctx;
  int key_update;      /* send each echo with a KeyUpdate in its middle */
  int truncate;        /* server: send one message, end without close_notify */
  int nmsg;            /* client: messages to send (sizes[]) */
  const size_t *sizes;
  const struct lightws_server_options *sopt; /* server: lightws_tls_accept's */
  int steps;           /* server: TLS handshake by hand, then
                          lightws_accept_stream() over t->io */
  int result;          /* 0 or an error */
  int tls_eof;
  int deflate;         /* lightws_stream_deflate() once open */
  unsigned close_code;
};

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n ? n : 1);
  size_t i;
  for (i = 0; i < n; i++) p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
  return p;
}

/* One frame written by hand through t->io, with a KeyUpdate after its
 * first half (a server frame: unmasked). */
static int send_split(struct lightws_tls *t, const uint8_t *data, size_t len) {
  struct lightws_frame fr;
  uint8_t head[LIGHTWS_FRAME_HEADER_MAX];
  size_t h, half = len / 2, off = 0;
  struct iovec iov[2];
  memset(&fr, 0, sizeof fr);
  fr.fin = 1;
  fr.opcode = LIGHTWS_OPCODE_BINARY;
  fr.length = len;
  h = lightws_frame_encode_unchecked(&fr, head);
  iov[0].iov_base = head;
  iov[0].iov_len = h;
  iov[1].iov_base = (void *)data;
  iov[1].iov_len = half;
  while (iov[0].iov_len + iov[1].iov_len) {
    ssize_t n = t->io.writev(t->io.ctx, iov, 2);
    if (n < 0) return LIGHTWS_ERR_SYSTEM;
    while (n > 0 && iov[0].iov_len) {
      iov[0].iov_base = (uint8_t *)iov[0].iov_base + 1;
      iov[0].iov_len--;
      n--;
    }
    iov[1].iov_base = (uint8_t *)iov[1].iov_base + n;
    iov[1].iov_len -= (size_t)n;
  }
  if (SSL_key_update(lightws_tls_ssl(t), SSL_KEY_UPDATE_REQUESTED) != 1)
    return LIGHTWS_ERR_TLS_PROTOCOL;
  off = half;
  while (off < len) {
    struct iovec one;
    ssize_t n;
    one.iov_base = (void *)(data + off);
    one.iov_len = len - off;
    n = t->io.writev(t->io.ctx, &one, 1);
    if (n < 0) return LIGHTWS_ERR_SYSTEM;
    off += (size_t)n;
  }
  return 0;
}

static void *peer_main(void *arg) {
  struct peer *p = (struct peer *)arg;
  struct lightws_tls *tp = malloc(sizeof *tp);
  struct lightws_stream s;
  uint8_t *rbuf = malloc(65536);
  size_t cap = 1 << 20, len = 0;
  uint8_t *msg = malloc(cap);
  int r;
  memset(&s, 0, sizeof s);
  memset(tp, 0, sizeof *tp);
  if (p->role == LIGHTWS_SERVER && p->steps) {
    /* what an event loop does, on a blocking descriptor */
    r = lightws_tls_init(tp, p->ctx, p->fd, LIGHTWS_SERVER, NULL);
    if (r == 0) r = lightws_tls_handshake(tp);
    if (r == 0) r = lightws_stream_init(&s, LIGHTWS_SERVER, p->fd, rbuf, 65536, 0);
    if (r == 0) {
      lightws_stream_set_io(&s, &tp->io);
      r = lightws_accept_stream(&s, NULL, p->sopt);
    }
  } else if (p->role == LIGHTWS_SERVER)
    r = lightws_tls_accept(tp, p->ctx, &s, p->fd, rbuf, 65536, NULL, p->sopt);
  else
    r = lightws_tls_connect(tp, p->ctx, &s, p->fd, rbuf, 65536,
                            "localhost", "/", NULL);
  if (r < 0) goto out;
  p->deflate = lightws_stream_deflate(&s);
  if (p->truncate) {
    r = (int)lightws_stream_send(&s, LIGHTWS_OPCODE_TEXT, "bye", 3, 0);
    shutdown(p->fd, SHUT_RDWR);
    r = r == 3 ? 0 : -1;
    goto out;
  }
  if (p->role == LIGHTWS_CLIENT) {
    int i;
    for (i = 0; i < p->nmsg && r >= 0; i++) {
      uint8_t *d = pattern(p->sizes[i], (unsigned)i);
      size_t got = 0;
      struct lightws_chunk ch;
      if (p->key_update && p->sizes[i] > 1) {
        /* client frames are masked: key update between two fragments */
        size_t half = p->sizes[i] / 2;
        r = (int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, d, half,
                                     LIGHTWS_SEND_FRAGMENT);
        SSL_key_update(lightws_tls_ssl(tp), SSL_KEY_UPDATE_REQUESTED);
        if (r >= 0)
          r = (int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, d + half,
                                       p->sizes[i] - half, 0);
      } else {
        r = (int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, d, p->sizes[i], 0);
      }
      for (;;) {
        if (r < 0) break;
        r = (int)lightws_stream_read(&s, msg + got, cap - got, &ch);
        if (r < 0) break;
        got += (size_t)r;
        if (ch.message_end) break;
      }
      if (r >= 0 && (got != p->sizes[i] || memcmp(msg, d, got) != 0)) r = -999;
      free(d);
    }
    if (r >= 0) r = lightws_stream_close(&s, 1000, "done", 4);
    while (r >= 0) r = (int)lightws_stream_read(&s, msg, cap, NULL);
    if (r == LIGHTWS_ERR_CLOSED) r = 0;
  } else {
    for (;;) {
      struct lightws_chunk ch;
      r = (int)lightws_stream_read(&s, msg + len, cap - len, &ch);
      if (r < 0) break;
      len += (size_t)r;
      if (!ch.message_end) continue;
      if (p->key_update && len > 1)
        r = send_split(tp, msg, len);
      else
        r = (int)lightws_stream_send(&s, ch.opcode, msg, len, 0);
      if (r < 0) break;
      len = 0;
    }
    if (r == LIGHTWS_ERR_CLOSED) r = 0;
  }
  p->close_code = lightws_stream_close_code(&s);
  if (r == 0) {
    uint8_t b[16];
    r = lightws_tls_shutdown(tp);
    /* the peer's close_notify: the next TLS read is EOF */
    if (r == 0 && tp->io.read(tp->io.ctx, b, sizeof b) != 0) r = -998;
    p->tls_eof = lightws_tls_eof(tp);
  }
out:
  if (r < 0 && r == LIGHTWS_ERR_SYSTEM && lightws_tls_error(tp))
    r = lightws_tls_error(tp);
  p->result = r;
  lightws_tls_free(tp);
  free(tp);
  free(rbuf);
  free(msg);
  return NULL;
}

static void peer_start(struct peer *p) {
  ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p) {
  pthread_join(p->th, NULL);
}

/* ---- a nonblocking endpoint over the fake IO, driven by retries --------- */

struct nb {
  struct lightws_tls t;
  struct lightws_stream s;
  struct fake f;
  uint8_t rbuf[4096];
  unsigned long blocks;
  unsigned long cross; /* blocked reads for which TLS wanted to write */
  int reading;         /* the blocked call is a read */
};

/* The socket really would block: wait as an event loop would, for what
 * lightws_stream_want() said (a wrong answer stalls the test). */
static void wait_for(int fd, int w) {
  struct pollfd p;
  p.fd = fd;
  p.events = (short)(((w & LIGHTWS_WANT_READ) ? POLLIN : 0) |
                     ((w & LIGHTWS_WANT_WRITE) ? POLLOUT : 0));
  p.revents = 0;
  ck_assert_msg(poll(&p, 1, 10000) == 1, "stalled waiting for %d", w);
}

/* After WOULDBLOCK: what lightws_stream_want() itself says (the layer's
 * want hook) covers what blocked, and the compatibility wrapper
 * lightws_tls_want() agrees with it. */
static void nb_blocked(struct nb *e) {
  int w = lightws_stream_want(&e->s);
  e->blocks++;
  if (e->reading && (w & LIGHTWS_WANT_WRITE)) e->cross++;
  ck_assert_msg(w & e->f.last_block, "stream want %d, blocked on %d", w,
                e->f.last_block);
  ck_assert_int_eq(lightws_tls_want(&e->t, &e->s), w);
  if (e->f.real) wait_for(e->f.fd, w);
}

static int nb_connect(struct nb *e, SSL_CTX *ctx, int fd, int mode,
                      enum lightws_role role, unsigned opts) {
  int r;
  fake_init(&e->f, fd, mode);
  r = lightws_tls_init_io(&e->t, ctx, &e->f.io, role,
                          role == LIGHTWS_CLIENT ? "localhost" : NULL);
  ck_assert_int_eq(r, 0);
  while ((r = lightws_tls_handshake(&e->t)) == LIGHTWS_ERR_WOULDBLOCK) {
    ck_assert(lightws_tls_want(&e->t, NULL) & e->f.last_block);
    e->blocks++;
    if (e->f.real) wait_for(fd, lightws_tls_want(&e->t, NULL));
  }
  if (r < 0) return r;
  ck_assert_int_eq(lightws_stream_init(&e->s, role, -1, e->rbuf,
                                       sizeof e->rbuf, opts), 0);
  lightws_stream_set_io(&e->s, &e->t.io);
  if (role == LIGHTWS_CLIENT) {
    r = lightws_client_start(&e->s, "localhost", "/", NULL);
    while (r == LIGHTWS_ERR_WOULDBLOCK || r == 0) {
      if (r == LIGHTWS_ERR_WOULDBLOCK) nb_blocked(e);
      r = lightws_client_handshake(&e->s, NULL);
      if (r == 0) break;
    }
  } else {
    struct lightws_request req;
    memset(&req, 0, sizeof req);
    while ((r = lightws_server_read_request(&e->s, &req, 0)) ==
           LIGHTWS_ERR_WOULDBLOCK)
      nb_blocked(e);
    if (r < 0) return r;
    while ((r = lightws_server_accept(&e->s, NULL, NULL, 0)) ==
           LIGHTWS_ERR_WOULDBLOCK)
      nb_blocked(e);
  }
  return r;
}

/* Sends one whole message, resuming after every short count. With
 * `own_ku`, a KeyUpdate of our own is asked for in the middle. */
static int nb_send(struct nb *e, const uint8_t *d, size_t len, int own_ku) {
  size_t off = 0;
  int first = 1;
  while (first || off < len) {
    ssize_t n = lightws_stream_send(&e->s, LIGHTWS_OPCODE_BINARY, d + off,
                                    len - off, 0);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      nb_blocked(e);
      continue;
    }
    if (n < 0) return (int)n;
    first = 0;
    if (own_ku && off < len / 2 && off + (size_t)n >= len / 2)
      ck_assert_int_eq(SSL_key_update(lightws_tls_ssl(&e->t),
                                      SSL_KEY_UPDATE_REQUESTED), 1);
    off += (size_t)n;
    if (len == 0) break;
  }
  /* the stream's flush sends what the layer still holds */
  for (;;) {
    int r = lightws_stream_flush(&e->s);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      nb_blocked(e);
      continue;
    }
    if (r < 0) return r;
    break;
  }
  ck_assert_uint_eq(lightws_tls_pending(&e->t), 0);
  ck_assert_int_eq(lightws_stream_want(&e->s) & LIGHTWS_WANT_WRITE, 0);
  return 0;
}

static int nb_recv(struct nb *e, uint8_t *buf, size_t cap, size_t *got) {
  *got = 0;
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_read(&e->s, buf + *got, cap - *got, &ch);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      e->reading = 1;
      nb_blocked(e);
      e->reading = 0;
      continue;
    }
    if (n < 0) return (int)n;
    *got += (size_t)n;
    if (ch.message_end) return 0;
  }
}

/* Close handshake, then close_notify both ways. */
static void nb_close_client(struct nb *e) {
  uint8_t b[64];
  int r;
  ssize_t n;
  while ((r = lightws_stream_close(&e->s, 1000, NULL, 0)) ==
         LIGHTWS_ERR_WOULDBLOCK)
    nb_blocked(e);
  ck_assert_int_eq(r, 0);
  for (;;) {
    n = lightws_stream_read(&e->s, b, sizeof b, NULL);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      nb_blocked(e);
      continue;
    }
    if (n < 0) break;
  }
  ck_assert_int_eq((int)n, LIGHTWS_ERR_CLOSED);
  while (lightws_stream_flush(&e->s) == LIGHTWS_ERR_WOULDBLOCK) nb_blocked(e);
  ck_assert_int_eq(lightws_stream_closing(&e->s), 2);
  while ((r = lightws_tls_shutdown(&e->t)) == LIGHTWS_ERR_WOULDBLOCK)
    if (e->f.real) wait_for(e->f.fd, LIGHTWS_WANT_WRITE);
  ck_assert_int_eq(r, 0);
  /* the peer's close_notify */
  while ((n = e->t.io.read(e->t.io.ctx, b, sizeof b)) < 0 && errno == EAGAIN)
    if (e->f.real) wait_for(e->f.fd, lightws_tls_want(&e->t, NULL));
  ck_assert_int_eq((int)n, 0);
  ck_assert_int_eq(lightws_tls_eof(&e->t), 1);
}

static const size_t sizes[] = {0, 1, 2, 125, 126, 1000, 16370, 16384, 20000,
                               70000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void pair(int sv[2]) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_echo_blocking) {
  /* blocking both ends: records per frame, ALPN, close_notify */
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[65536], in[200000];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t i, alen = 0;
  const char *alpn;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost:443", "/", NULL), 0);
  alpn = lightws_tls_alpn(&t, &alen);
  ck_assert(alpn && alen == 8 && memcmp(alpn, "http/1.1", 8) == 0);
  ck_assert_str_eq(lightws_tls_version(&t), "TLSv1.3");
  for (i = 0; i < NSIZES; i++) {
    uint8_t *d = pattern(sizes[i], (unsigned)i);
    uint64_t before = lightws_tls_records(&t), recs;
    size_t got = 0, head = lightws_frame_header_size(sizes[i], 1);
    struct lightws_chunk ch;
    uint8_t *m = pattern(sizes[i], (unsigned)i);
    /* masked in place: head + payload in one writev, so the fewest
     * records (a const buffer is masked in 16 KiB chunks by the core, one
     * writev each) */
    ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, m,
                                              sizes[i],
                                              LIGHTWS_SEND_MASK_IN_PLACE),
                     (int)sizes[i]);
    free(m);
    recs = lightws_tls_records(&t) - before;
    /* as few records as the size allows */
    ck_assert_uint_eq(recs, (sizes[i] + head + 16383) / 16384);
    for (;;) {
      ssize_t n = lightws_stream_read(&s, in + got, sizeof in - got, &ch);
      ck_assert_int_ge((int)n, 0);
      got += (size_t)n;
      if (ch.message_end) break;
    }
    ck_assert_uint_eq(got, sizes[i]);
    ck_assert(memcmp(in, d, got) == 0);
    free(d);
  }
  ck_assert_int_eq(lightws_stream_close(&s, 1000, "bye", 3), 0);
  ck_assert_int_eq((int)lightws_stream_read(&s, in, sizeof in, NULL),
                   LIGHTWS_ERR_CLOSED);
  {
    uint8_t b[8];
    ck_assert_int_eq(lightws_tls_shutdown(&t), 0);
    ck_assert_int_eq((int)t.io.read(t.io.ctx, b, sizeof b), 0);
    ck_assert_int_eq(lightws_tls_eof(&t), 1);
  }
  lightws_tls_free(&t);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  ck_assert_int_eq(p.tls_eof, 1); /* our close_notify reached the peer */
  ck_assert_uint_eq(p.close_code, 1000);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* Nonblocking client over the fake IO vs a blocking server echo. */
static void nb_client_case(int mode, unsigned opts, int peer_ku, int own_ku) {
  int sv[2];
  struct peer p;
  static struct nb e;
  static uint8_t in[200000];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t i, n = quick() ? 6 : NSIZES;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  p.key_update = peer_ku;
  peer_start(&p);
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(nb_connect(&e, cctx, sv[0], mode, LIGHTWS_CLIENT, opts), 0);
  ck_assert_str_eq(lightws_tls_version(&e.t),
                   max_version == TLS1_2_VERSION ? "TLSv1.2" : "TLSv1.3");
  for (i = 0; i < n; i++) {
    uint8_t *d = pattern(sizes[i], (unsigned)i);
    size_t got;
    ck_assert_int_eq(nb_send(&e, d, sizes[i], own_ku), 0);
    ck_assert_int_eq(nb_recv(&e, in, sizeof in, &got), 0);
    ck_assert_uint_eq(got, sizes[i]);
    ck_assert(memcmp(in, d, got) == 0);
    free(d);
  }
  nb_close_client(&e);
  if (mode == 2) ck_assert(e.blocks > 100);
  /* the KeyUpdate answers: reads that had to write first */
  if (mode == 2 && peer_ku) ck_assert_uint_gt(e.cross, 0);
  lightws_tls_free(&e.t);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  ck_assert_int_eq(p.tls_eof, 1);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

START_TEST(test_nb_client_bytewise) { nb_client_case(2, 0, 0, 0); }
END_TEST
START_TEST(test_nb_client_bytewise_direct) {
  nb_client_case(2, LIGHTWS_OPT_DIRECT, 0, 0);
}
END_TEST
START_TEST(test_nb_client_onebyte_keyupdate) { nb_client_case(1, 0, 1, 0); }
END_TEST
START_TEST(test_nb_client_bytewise_keyupdate) { nb_client_case(2, 0, 1, 1); }
END_TEST
START_TEST(test_nb_client_pass_keyupdate) { nb_client_case(0, 0, 1, 1); }
END_TEST
START_TEST(test_nb_client_bytewise_tls12) {
  /* TLS 1.2 (no KeyUpdate there; explicit-nonce records) */
  max_version = TLS1_2_VERSION;
  nb_client_case(2, 0, 0, 0);
  max_version = 0;
}
END_TEST

/* Keepalive over TLS on a nonblocking socket: lightws_tls_wait() ticks the
 * stream at its deadline, the ping goes out through the layer and the
 * peer's pong comes back. */
START_TEST(test_keepalive_wait) {
  int sv[2], r;
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[4096], in[256];
  struct lightws_timeouts to;
  struct lightws_client_options opt;
  uint64_t end;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&to, 0, sizeof to);
  to.ping_interval = 50;
  to.ping_timeout = 2000;
  memset(&opt, 0, sizeof opt);
  opt.timeouts = &to;
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost", "/", &opt), 0);
  ck_assert_int_eq(fcntl_nonblock(sv[0]), 0);
  end = lightws_now() + 3000;
  while (lightws_stream_rtt(&s) == 0 && lightws_now() < end) {
    ssize_t n = lightws_stream_read(&s, in, sizeof in, NULL);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      r = lightws_tls_wait(&t, &s, 1000);
      ck_assert_msg(r == 0 || r == LIGHTWS_ERR_WOULDBLOCK, "wait: %s",
                    lightws_tls_errname(r));
      continue;
    }
    ck_assert_int_ge((int)n, 0);
  }
  ck_assert_uint_gt(lightws_stream_rtt(&s), 0);
  while ((r = lightws_stream_close(&s, 1000, NULL, 0)) == LIGHTWS_ERR_WOULDBLOCK)
    lightws_tls_wait(&t, &s, 1000);
  for (;;) {
    ssize_t n = lightws_stream_read(&s, in, sizeof in, NULL);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      lightws_tls_wait(&t, &s, 1000);
      continue;
    }
    if (n < 0) {
      ck_assert_int_eq((int)n, LIGHTWS_ERR_CLOSED);
      break;
    }
  }
  ck_assert_int_eq(lightws_tls_close(&t, &s, 2000), 0);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* A client that connects and sends nothing: the server's handshake
 * timeout covers the TLS handshake too. */
START_TEST(test_accept_handshake_timeout) {
  int sv[2], r;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[4096];
  struct lightws_timeouts to;
  struct lightws_server_options opt;
  uint64_t t0;
  SSL_CTX *sctx = server_ctx("server");
  pair(sv);
  memset(&to, 0, sizeof to);
  to.handshake = 200;
  memset(&opt, 0, sizeof opt);
  opt.timeouts = &to;
  memset(&s, 0, sizeof s);
  t0 = lightws_now();
  r = lightws_tls_accept(&t, sctx, &s, sv[0], rbuf, sizeof rbuf, NULL, &opt);
  ck_assert_int_eq(r, LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  ck_assert_uint_ge(lightws_now() - t0, 190);
  ck_assert_uint_lt(lightws_now() - t0, 2000);
  /* the descriptor is blocking again */
  ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
  lightws_tls_free(&t);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
}
END_TEST

/* Nonblocking server over the fake IO vs a blocking client. */
static void nb_server_case(int mode, int peer_ku) {
  int sv[2], r;
  struct peer p;
  static struct nb e;
  static uint8_t in[200000];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t n = quick() ? 6 : NSIZES, got;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_CLIENT;
  p.ctx = cctx;
  p.key_update = peer_ku;
  p.nmsg = (int)n;
  p.sizes = sizes;
  peer_start(&p);
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(nb_connect(&e, sctx, sv[0], mode, LIGHTWS_SERVER, 0), 0);
  for (;;) {
    r = nb_recv(&e, in, sizeof in, &got);
    if (r < 0) break;
    ck_assert_int_eq(nb_send(&e, in, got, 1), 0);
  }
  ck_assert_int_eq(r, LIGHTWS_ERR_CLOSED);
  while (lightws_stream_flush(&e.s) == LIGHTWS_ERR_WOULDBLOCK) nb_blocked(&e);
  while ((r = lightws_tls_shutdown(&e.t)) == LIGHTWS_ERR_WOULDBLOCK)
    if (e.f.real) wait_for(e.f.fd, LIGHTWS_WANT_WRITE);
  ck_assert_int_eq(r, 0);
  {
    uint8_t b[8];
    ssize_t k;
    while ((k = e.t.io.read(e.t.io.ctx, b, sizeof b)) < 0 && errno == EAGAIN)
      if (e.f.real) wait_for(e.f.fd, lightws_tls_want(&e.t, NULL));
    ck_assert_int_eq((int)k, 0);
    ck_assert_int_eq(lightws_tls_eof(&e.t), 1);
  }
  lightws_tls_free(&e.t);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  ck_assert_int_eq(p.tls_eof, 1);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

START_TEST(test_nb_server_bytewise) { nb_server_case(2, 0); }
END_TEST
START_TEST(test_nb_server_bytewise_keyupdate) { nb_server_case(2, 1); }
END_TEST

/* A client over a real nonblocking socket that the peer does not read for
 * a while: ciphertext waits in our buffer, the held-back byte keeps the
 * frame in progress, lightws_tls_wait() drives it. */
START_TEST(test_nb_socket_backpressure) {
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[65536], in[1 << 20];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t len = 900000, off = 0, got = 0;
  uint8_t *d = pattern(len, 3);
  int r, sz = 4096;
  pair(sv);
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "127.0.0.1", "/", NULL), 0);
  ck_assert_int_eq(fcntl_nonblock(sv[0]), 0);
  while (off < len) {
    ssize_t n = lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, d + off,
                                    len - off, 0);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      ck_assert_int_eq(lightws_tls_wait(&t, &s, 5000), 0);
      continue;
    }
    ck_assert_int_ge((int)n, 0);
    off += (size_t)n;
  }
  while ((r = lightws_tls_flush(&t)) == LIGHTWS_ERR_WOULDBLOCK)
    ck_assert_int_eq(lightws_tls_wait(&t, NULL, 5000), 0);
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_read(&s, in + got, sizeof in - got, &ch);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      ck_assert_int_eq(lightws_tls_wait(&t, &s, 5000), 0);
      continue;
    }
    ck_assert_int_ge((int)n, 0);
    got += (size_t)n;
    if (ch.message_end) break;
  }
  ck_assert_uint_eq(got, len);
  ck_assert(memcmp(in, d, len) == 0);
  while ((r = lightws_stream_close(&s, 1000, NULL, 0)) == LIGHTWS_ERR_WOULDBLOCK)
    ck_assert_int_eq(lightws_tls_wait(&t, &s, 5000), 0);
  for (;;) {
    ssize_t n = lightws_stream_read(&s, in, sizeof in, NULL);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      ck_assert_int_eq(lightws_tls_wait(&t, &s, 5000), 0);
      continue;
    }
    ck_assert_int_eq((int)n, LIGHTWS_ERR_CLOSED);
    break;
  }
  ck_assert_int_eq(lightws_tls_close(&t, &s, 5000), 0);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  ck_assert_int_eq(p.tls_eof, 1);
  free(d);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* A certificate the client must refuse, with its named error; insecure
 * accepts it. */
static void bad_cert_case(const char *name, int want, const char *host) {
  int sv[2], r;
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[4096];
  int insecure;
  for (insecure = 0; insecure < 2; insecure++) {
    SSL_CTX *sctx = server_ctx(name), *cctx = client_ctx(insecure);
    pair(sv);
    memset(&p, 0, sizeof p);
    p.fd = sv[1];
    p.role = LIGHTWS_SERVER;
    p.ctx = sctx;
    peer_start(&p);
    memset(&s, 0, sizeof s);
    r = lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf, host, "/",
                            NULL);
    if (insecure) {
      ck_assert_msg(r == 0, "insecure %s: %s", name, lightws_tls_errname(r));
      ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
      ck_assert_int_eq((int)lightws_stream_read(&s, rbuf, 100, NULL),
                       LIGHTWS_ERR_CLOSED);
      ck_assert_int_eq(lightws_tls_close(&t, &s, 5000), 0);
      peer_join(&p);
    } else {
      ck_assert_msg(r == want, "%s: got %s (%s)", name, lightws_tls_errname(r),
                    lightws_tls_reason(&t));
      ck_assert(lightws_tls_reason(&t)[0] != 0);
      lightws_tls_free(&t);
    }
    close(sv[0]);
    if (!insecure) peer_join(&p);
    if (!insecure) ck_assert_int_lt(p.result, 0);
    close(sv[1]);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
  }
}

START_TEST(test_cert_expired) {
  bad_cert_case("expired", LIGHTWS_ERR_TLS_CERT_EXPIRED, "localhost");
}
END_TEST
START_TEST(test_cert_wronghost) {
  bad_cert_case("wronghost", LIGHTWS_ERR_TLS_CERT_HOSTNAME, "localhost");
}
END_TEST
START_TEST(test_cert_wrong_ip) {
  /* the wrong-host certificate names no IP either */
  bad_cert_case("wronghost", LIGHTWS_ERR_TLS_CERT_HOSTNAME, "127.0.0.1");
}
END_TEST
START_TEST(test_cert_unknown_ca) {
  bad_cert_case("unknown", LIGHTWS_ERR_TLS_CERT_UNTRUSTED, "localhost");
}
END_TEST

START_TEST(test_client_cert) {
  int sv[2], r, with;
  for (with = 0; with < 2; with++) {
    struct lightws_tls_config sc, cc;
    struct peer p;
    static struct lightws_tls t;
    struct lightws_stream s;
    static uint8_t rbuf[4096];
    SSL_CTX *sctx, *cctx;
    int err = 0;
    memset(&sc, 0, sizeof sc);
    sc.cert_file = cert("server.pem");
    sc.key_file = cert("server.key");
    sc.cafile = cert("ca.pem");
    sc.verify_client = 1;
    sctx = lightws_tls_ctx(LIGHTWS_SERVER, &sc, &err, NULL, 0);
    ck_assert_ptr_nonnull(sctx);
    memset(&cc, 0, sizeof cc);
    cc.cafile = cert("ca.pem");
    if (with) {
      cc.cert_file = cert("client.pem");
      cc.key_file = cert("client.key");
    }
    cctx = lightws_tls_ctx(LIGHTWS_CLIENT, &cc, &err, NULL, 0);
    ck_assert_ptr_nonnull(cctx);
    pair(sv);
    memset(&p, 0, sizeof p);
    p.fd = sv[1];
    p.role = LIGHTWS_SERVER;
    p.ctx = sctx;
    peer_start(&p);
    memset(&s, 0, sizeof s);
    r = lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                            "localhost", "/", NULL);
    if (with) {
      ck_assert_int_eq(r, 0);
      ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
      ck_assert_int_eq((int)lightws_stream_read(&s, rbuf, 100, NULL),
                       LIGHTWS_ERR_CLOSED);
      ck_assert_int_eq(lightws_tls_close(&t, &s, 5000), 0);
      peer_join(&p);
    } else {
      /* TLS 1.3: the client learns it from the server's alert */
      ck_assert_int_eq(r, LIGHTWS_ERR_TLS_PROTOCOL);
      lightws_tls_free(&t);
    }
    close(sv[0]);
    if (!with) peer_join(&p);
    if (with) ck_assert_int_eq(p.result, 0);
    else ck_assert_int_eq(p.result, LIGHTWS_ERR_TLS_NO_CERT);
    close(sv[1]);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
  }
}
END_TEST

START_TEST(test_truncation_is_eof) {
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[4096], in[64];
  struct lightws_chunk ch;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  p.truncate = 1;
  peer_start(&p);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost", "/", NULL), 0);
  ck_assert_int_eq((int)lightws_stream_read(&s, in, sizeof in, &ch), 3);
  ck_assert_int_eq((int)lightws_stream_read(&s, in, sizeof in, &ch),
                   LIGHTWS_ERR_EOF);
  ck_assert_uint_eq(lightws_stream_close_code(&s), 1006);
  ck_assert_int_eq(lightws_tls_eof(&t), 2);
  /* not a clean close: no close_notify */
  ck_assert_int_eq(lightws_tls_close(&t, &s, 1000), 0);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* The held-back byte: a writev whose ciphertext could not all go out
 * reports one byte less; resuming with another byte is refused. */
START_TEST(test_resume_mismatch) {
  int sv[2];
  struct peer p;
  static struct nb e;
  struct iovec v;
  uint8_t buf[100];
  ssize_t n;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(nb_connect(&e, cctx, sv[0], 0, LIGHTWS_CLIENT, 0), 0);
  e.f.mode = 2; /* one byte per transport call, EAGAIN between */
  memset(buf, 'a', sizeof buf);
  v.iov_base = buf;
  v.iov_len = sizeof buf;
  n = e.t.io.writev(e.t.io.ctx, &v, 1);
  ck_assert_int_eq((int)n, 99);
  ck_assert(lightws_tls_pending(&e.t) > 0);
  ck_assert(lightws_tls_want(&e.t, NULL) & LIGHTWS_WANT_WRITE);
  buf[99] = 'b';
  v.iov_base = buf + 99;
  v.iov_len = 1;
  while ((n = e.t.io.writev(e.t.io.ctx, &v, 1)) < 0 && errno == EAGAIN)
    continue; /* the ciphertext goes first */
  ck_assert_int_eq((int)n, -1);
  ck_assert_int_eq(errno, EPROTO);
  ck_assert_int_eq(lightws_tls_error(&e.t), LIGHTWS_ERR_TLS_MISMATCH);
  lightws_tls_free(&e.t);
  close(sv[0]);
  peer_join(&p);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

START_TEST(test_ctx_errors) {
  int err = 0;
  char reason[128];
  struct lightws_tls_config c;
  ck_assert_ptr_null(lightws_tls_server_ctx("/nonexistent.pem", NULL, &err));
  ck_assert_int_eq(err, LIGHTWS_ERR_TLS_CERT);
  ck_assert_ptr_null(lightws_tls_client_ctx("/nonexistent-ca.pem", 0, &err));
  ck_assert_int_eq(err, LIGHTWS_ERR_TLS_CAFILE);
  memset(&c, 0, sizeof c);
  c.cert_file = cert("server.pem");
  c.key_file = cert("client.key"); /* not its key */
  ck_assert_ptr_null(lightws_tls_ctx(LIGHTWS_SERVER, &c, &err, reason,
                                     sizeof reason));
  ck_assert_int_eq(err, LIGHTWS_ERR_TLS_CERT);
  ck_assert(reason[0] != 0);
  ck_assert_ptr_null(lightws_tls_ctx(LIGHTWS_SERVER, NULL, &err, NULL, 0));
  ck_assert_int_eq(err, LIGHTWS_ERR_TLS_CERT);
  ck_assert_str_eq(lightws_tls_errname(LIGHTWS_ERR_TLS_CERT_EXPIRED),
                   "TLS_CERT_EXPIRED");
  ck_assert_str_eq(lightws_tls_errname(LIGHTWS_ERR_EOF), "EOF");
  ck_assert_str_eq(lightws_tls_strerror(LIGHTWS_ERR_TLS_CERT_HOSTNAME),
                   "peer certificate does not match the host name");
  {
    struct lightws_tls t;
    memset(&t, 0, sizeof t);
    ck_assert_int_eq(lightws_tls_handshake(&t), LIGHTWS_ERR_TLS_STATE);
    ck_assert_int_eq(lightws_tls_shutdown(&t), LIGHTWS_ERR_TLS_STATE);
    lightws_tls_free(&t);
  }
}
END_TEST

/* lightws_stream_buffered() counts the decrypted bytes OpenSSL holds: a
 * 10,000-byte echo is one record, of which one read into a 4 KiB rbuf
 * takes 4096 bytes. */
START_TEST(test_buffered_counts_openssl_bytes) {
  int sv[2];
  struct peer p;
  static struct nb e;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t len = 10000, got = 0;
  uint8_t *d = pattern(len, 5);
  int seen = 0;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(nb_connect(&e, cctx, sv[0], 0, LIGHTWS_CLIENT, 0), 0);
  ck_assert_uint_eq(lightws_stream_buffered(&e.s), 0);
  ck_assert_int_eq(nb_send(&e, d, len, 0), 0);
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_recv(&e.s, &ch);
    size_t held;
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      e.reading = 1;
      nb_blocked(&e);
      e.reading = 0;
      continue;
    }
    ck_assert_int_ge((int)n, 0);
    ck_assert(memcmp(ch.data, d + got, (size_t)n) == 0);
    got += (size_t)n;
    held = (size_t)SSL_pending(lightws_tls_ssl(&e.t));
    if (held) {
      /* rbuf is used up: all of it is OpenSSL's */
      ck_assert_uint_eq(lightws_stream_buffered(&e.s),
                        e.s.rend - e.s.rpos + held);
      ck_assert_uint_gt(lightws_stream_buffered(&e.s), 0);
      ck_assert_int_eq(lightws_tls_buffered(&e.t), 1);
      seen++;
    }
    if (ch.message_end) break;
  }
  ck_assert_uint_eq(got, len);
  ck_assert_int_gt(seen, 0);
  ck_assert_uint_eq(lightws_stream_buffered(&e.s), 0);
  nb_close_client(&e);
  lightws_tls_free(&e.t);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  free(d);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* A lower io that takes at most `allow` bytes from the socket, then says
 * EAGAIN: the test decides how much of a record OpenSSL gets. */
struct budget {
  struct lightws_io io;
  int fd;
  size_t allow;
};

static ssize_t budget_read(void *ctx, void *buf, size_t len) {
  struct budget *b = (struct budget *)ctx;
  ssize_t r;
  if (b->allow == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (len > b->allow) len = b->allow;
  r = recv(b->fd, buf, len, MSG_DONTWAIT);
  if (r > 0) b->allow -= (size_t)r;
  return r;
}

static ssize_t budget_writev(void *ctx, const struct iovec *iov, int cnt) {
  struct budget *b = (struct budget *)ctx;
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = (struct iovec *)iov;
  m.msg_iovlen = (size_t)cnt;
  return sendmsg(b->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Until the socket holds at least `n` bytes (the peer's echoes). */
static void wait_queued(int fd, int n) {
  uint64_t end = lightws_now() + 5000;
  int q = 0;
  while (lightws_now() < end) {
    ck_assert_int_eq(ioctl(fd, FIONREAD, &q), 0);
    if (q >= n) return;
    poll(NULL, 0, 5);
  }
  ck_abort_msg("only %d of %d bytes came", q, n);
}

/* Reads exactly `len` plaintext bytes through t->io (the budget allowing). */
static void io_read_exact(struct lightws_tls *t, uint8_t *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = t->io.read(t->io.ctx, buf + got, len - got);
    ck_assert_int_gt((int)n, 0);
    got += (size_t)n;
  }
}

/* lightws_tls_buffered() and the pending hook are exact: 1 for decrypted
 * bytes and for a whole record read ahead but not decrypted yet, 0 for a
 * partial record (SSL_has_pending() is 1 there: an event loop that
 * trusted it would spin until the rest came). Each echo of a 100-byte
 * message is one record of 5 + 102 + 1 + 16 = 124 bytes (RFC 8446 §5.2). */
START_TEST(test_buffered_exact_partial_record) {
  enum { REC = 124 };
  int sv[2], r;
  struct peer p;
  static struct lightws_tls t;
  static struct budget b;
  struct lightws_stream s;
  static uint8_t rbuf[4096], msg[100], in[256];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  SSL_CTX_set_num_tickets(sctx, 0); /* nothing but the echoes to read */
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&b, 0, sizeof b);
  b.io.read = budget_read;
  b.io.writev = budget_writev;
  b.io.ctx = &b;
  b.fd = sv[0];
  b.allow = (size_t)-1;
  ck_assert_int_eq(lightws_tls_init_io(&t, cctx, &b.io, LIGHTWS_CLIENT,
                                       "localhost"), 0);
  while ((r = lightws_tls_handshake(&t)) == LIGHTWS_ERR_WOULDBLOCK)
    wait_for(sv[0], lightws_tls_want(&t, NULL));
  ck_assert_int_eq(r, 0);
  ck_assert_int_eq(lightws_stream_init(&s, LIGHTWS_CLIENT, -1, rbuf,
                                       sizeof rbuf, 0), 0);
  lightws_stream_set_io(&s, &t.io);
  r = lightws_client_start(&s, "localhost", "/", NULL);
  while (r == LIGHTWS_ERR_WOULDBLOCK || r == 0) {
    if (r == LIGHTWS_ERR_WOULDBLOCK) wait_for(sv[0], lightws_stream_want(&s));
    if ((r = lightws_client_handshake(&s, NULL)) == 0) break;
  }
  ck_assert_int_eq(r, 0);
  ck_assert_uint_eq(lightws_stream_buffered(&s), 0);
  memset(msg, 'a', sizeof msg);
  ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, msg,
                                            sizeof msg, 0), 100);
  ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, msg,
                                            sizeof msg, 0), 100);
  wait_queued(sv[0], 2 * REC);
  /* both records read ahead at once, the first decrypted */
  io_read_exact(&t, in, 10);
  ck_assert_int_eq(SSL_pending(lightws_tls_ssl(&t)), 92);
  ck_assert_int_eq(lightws_tls_buffered(&t), 1);
  ck_assert_uint_eq(t.io.pending(t.io.ctx), 92);
  /* the first one read: the second waits whole, not decrypted */
  io_read_exact(&t, in, 92);
  ck_assert_int_eq(SSL_pending(lightws_tls_ssl(&t)), 0);
  ck_assert_int_eq(lightws_tls_buffered(&t), 1);
  ck_assert_uint_eq(t.io.pending(t.io.ctx), 1);
  io_read_exact(&t, in, 102);
  ck_assert_int_eq(lightws_tls_buffered(&t), 0);
  ck_assert_uint_eq(t.io.pending(t.io.ctx), 0);
  /* a third echo, of which OpenSSL gets the header and 5 bytes */
  ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, msg,
                                            sizeof msg, 0), 100);
  wait_queued(sv[0], REC);
  b.allow = 10;
  ck_assert_int_eq((int)t.io.read(t.io.ctx, in, sizeof in), -1);
  ck_assert_int_eq(errno, EAGAIN);
  ck_assert_int_eq(SSL_has_pending(lightws_tls_ssl(&t)), 1); /* the old answer */
  ck_assert_int_eq(lightws_tls_buffered(&t), 0);
  ck_assert_uint_eq(lightws_stream_buffered(&s), 0);
  /* and the rest but one byte: still partial */
  b.allow = REC - 10 - 1;
  ck_assert_int_eq((int)t.io.read(t.io.ctx, in, sizeof in), -1);
  ck_assert_int_eq(lightws_tls_buffered(&t), 0);
  b.allow = (size_t)-1;
  io_read_exact(&t, in, 102);
  ck_assert_int_eq(in[2], 'a');
  ck_assert_int_eq(lightws_tls_buffered(&t), 0);
  lightws_tls_free(&t);
  shutdown(sv[0], SHUT_RDWR);
  peer_join(&p);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* The peer's KeyUpdate (update requested) comes inside a frame we read
 * while the socket takes no writes: OpenSSL's answer waits in the layer,
 * lightws_stream_want() has WRITE though no call blocked on writing, and
 * lightws_stream_flush() sends it. */
START_TEST(test_flush_pushes_keyupdate_answer) {
  int sv[2];
  struct peer p;
  static struct nb e;
  static uint8_t in[4000];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t len = 3000, got = 0;
  uint8_t *d = pattern(len, 9);
  int round;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  p.key_update = 1;
  peer_start(&p);
  memset(&e, 0, sizeof e);
  ck_assert_int_eq(nb_connect(&e, cctx, sv[0], 0, LIGHTWS_CLIENT, 0), 0);
  for (round = 0; round < 2; round++) {
    ck_assert_int_eq(nb_send(&e, d, len, 0), 0);
    e.f.wblock = 1;
    got = 0;
    for (;;) {
      struct lightws_chunk ch;
      ssize_t n = lightws_stream_read(&e.s, in + got, sizeof in - got, &ch);
      if (n == LIGHTWS_ERR_WOULDBLOCK) {
        int w = lightws_stream_want(&e.s);
        ck_assert(w & LIGHTWS_WANT_READ);
        /* the answer is held once the KeyUpdate was read */
        if (lightws_tls_pending(&e.t)) ck_assert(w & LIGHTWS_WANT_WRITE);
        wait_for(e.f.fd, LIGHTWS_WANT_READ); /* writes are blocked */
        continue;
      }
      ck_assert_int_ge((int)n, 0);
      got += (size_t)n;
      if (ch.message_end) break;
    }
    ck_assert_uint_eq(got, len);
    ck_assert(memcmp(in, d, len) == 0);
    /* nothing of the stream's own is pending: only the answer OpenSSL
     * owes (it would send it only before our next data) */
    ck_assert_int_eq(SSL_get_key_update_type(lightws_tls_ssl(&e.t)),
                     SSL_KEY_UPDATE_NOT_REQUESTED);
    ck_assert_int_eq(lightws_stream_want(&e.s), LIGHTWS_WANT_WRITE);
    ck_assert_int_eq(lightws_stream_flush(&e.s), LIGHTWS_ERR_WOULDBLOCK);
    /* written now, but held by the layer: still WRITE */
    ck_assert_int_eq(SSL_get_key_update_type(lightws_tls_ssl(&e.t)),
                     SSL_KEY_UPDATE_NONE);
    ck_assert_uint_gt(lightws_tls_pending(&e.t), 0);
    ck_assert_int_eq(lightws_stream_want(&e.s), LIGHTWS_WANT_WRITE);
    e.f.wblock = 0;
    ck_assert_int_eq(lightws_stream_flush(&e.s), 0);
    ck_assert_uint_eq(lightws_tls_pending(&e.t), 0);
    ck_assert_int_eq(lightws_stream_want(&e.s), 0);
  }
  nb_close_client(&e);
  lightws_tls_free(&e.t);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  free(d);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* A client frame from a const buffer (masked through the core's 16 KiB
 * chunk) costs no more records than one masked in place: 20,000 bytes are
 * 2 records (head + 16,376 bytes, then the rest), not 3. */
START_TEST(test_client_const_buffer_records) {
  static const size_t lens[] = {20000, 16376, 16377, 40000, 70000};
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[65536], in[100000];
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  size_t i;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost", "/", NULL), 0);
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    const uint8_t *d = pattern(lens[i], (unsigned)i);
    size_t head = lightws_frame_header_size(lens[i], 1), got = 0;
    uint64_t before = lightws_tls_records(&t);
    struct lightws_chunk ch;
    ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, d,
                                              lens[i], 0), (int)lens[i]);
    ck_assert_uint_eq(lightws_tls_records(&t) - before,
                      (lens[i] + head + 16383) / 16384);
    if (lens[i] == 20000) ck_assert_uint_eq(lightws_tls_records(&t) - before, 2);
    for (;;) {
      ssize_t n = lightws_stream_read(&s, in + got, sizeof in - got, &ch);
      ck_assert_int_ge((int)n, 0);
      got += (size_t)n;
      if (ch.message_end) break;
    }
    ck_assert_uint_eq(got, lens[i]);
    ck_assert(memcmp(in, d, got) == 0);
    free((void *)d);
  }
  ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
  ck_assert_int_eq((int)lightws_stream_read(&s, in, sizeof in, NULL),
                   LIGHTWS_ERR_CLOSED);
  ck_assert_int_eq(lightws_tls_close(&t, &s, 5000), 0);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* permessage-deflate (RFC 7692) over TLS: lightws_tls_accept() honours
 * opt->deflate as lightws_accept() does (it used to ignore it), and so
 * does lightws_accept_stream() over t->io after a TLS handshake done by
 * hand. The echo of a compressible message comes back compressed. */
static void deflate_case(int steps) {
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[65536], in[70000], msg[60000];
  struct lightws_pmd_config cfg;
  struct lightws_server_options so;
  struct lightws_client_options co;
  struct lightws_chunk ch;
  size_t i, got = 0, msize;
  void *smem, *cmem;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  memset(&cfg, 0, sizeof cfg);
  msize = lightws_pmd_mem_size(&cfg);
  if (msize == 0) return; /* built without zlib: nothing to negotiate */
  smem = malloc(msize);
  cmem = malloc(msize);
  memset(&so, 0, sizeof so);
  so.deflate = &cfg;
  so.deflate_mem = smem;
  so.deflate_mem_size = msize;
  memset(&co, 0, sizeof co);
  co.deflate = &cfg;
  co.deflate_mem = cmem;
  co.deflate_mem_size = msize;
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  p.sopt = &so;
  p.steps = steps;
  peer_start(&p);
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost", "/", &co), 0);
  ck_assert_int_eq(lightws_stream_deflate(&s), 1);
  for (i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)"websocket "[i % 10];
  ck_assert_int_eq((int)lightws_stream_send(&s, LIGHTWS_OPCODE_BINARY, msg,
                                            sizeof msg, 0),
                   (int)sizeof msg);
  for (;;) {
    ssize_t n = lightws_stream_read(&s, in + got, sizeof in - got, &ch);
    ck_assert_int_ge((int)n, 0);
    ck_assert_int_eq(ch.compressed, 1); /* the server compressed it */
    got += (size_t)n;
    if (ch.message_end) break;
  }
  ck_assert_uint_eq(got, sizeof msg);
  ck_assert(memcmp(in, msg, got) == 0);
  ck_assert_int_eq(lightws_stream_close(&s, 1000, NULL, 0), 0);
  ck_assert_int_eq((int)lightws_stream_read(&s, in, sizeof in, NULL),
                   LIGHTWS_ERR_CLOSED);
  ck_assert_int_eq(lightws_tls_close(&t, &s, 2000), 0);
  peer_join(&p);
  ck_assert_int_eq(p.result, 0);
  ck_assert_int_eq(p.deflate, 1);
  close(sv[0]);
  close(sv[1]);
  free(smem);
  free(cmem);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

START_TEST(test_accept_deflate) { deflate_case(0); }
END_TEST
START_TEST(test_accept_stream_deflate) { deflate_case(1); }
END_TEST

/* A client that does the TLS handshake and then sends no request: the
 * server's handshake timeout fails it with HANDSHAKE_TIMEOUT, and the
 * client gets the 408 (RFC 7231 §6.5.7) as a TLS record, as over a plain
 * descriptor. */
START_TEST(test_accept_408_over_tls) {
  int sv[2], r;
  struct peer p;
  static struct lightws_tls t;
  struct lightws_timeouts to;
  struct lightws_server_options so;
  char head[512];
  size_t got = 0;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  pair(sv);
  memset(&to, 0, sizeof to);
  to.handshake = 300;
  memset(&so, 0, sizeof so);
  so.timeouts = &to;
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  p.sopt = &so;
  peer_start(&p);
  ck_assert_int_eq(lightws_tls_init(&t, cctx, sv[0], LIGHTWS_CLIENT,
                                    "localhost"), 0);
  ck_assert_int_eq(lightws_tls_handshake(&t), 0);
  while (got < sizeof head - 1 && !memchr(head, '\n', got)) {
    ssize_t n = t.io.read(t.io.ctx, head + got, sizeof head - 1 - got);
    ck_assert_int_gt((int)n, 0);
    got += (size_t)n;
  }
  head[got] = 0;
  ck_assert_msg(strncmp(head, "HTTP/1.1 408", 12) == 0, "got %s", head);
  peer_join(&p);
  ck_assert_int_eq(p.result, LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
  r = fcntl(sv[1], F_GETFL);
  ck_assert_int_eq(r & O_NONBLOCK, 0); /* the descriptor's flags restored */
  lightws_tls_free(&t);
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}
END_TEST

/* Timeouts on a blocking descriptor over TLS (the io's wait_fd hook): a
 * blocking read waits in poll(2) up to the idle deadline and fails with
 * IDLE_TIMEOUT (close 1001 sent) instead of blocking forever; the
 * descriptor stays blocking. With a handshake timeout too, the wrapper
 * makes the descriptor nonblocking for the handshakes and applies the
 * timeouts again after. */
static void blocking_idle_case(int hs_timeout) {
  int sv[2];
  struct peer p;
  static struct lightws_tls t;
  struct lightws_stream s;
  static uint8_t rbuf[4096], in[256];
  struct lightws_timeouts to;
  struct lightws_client_options opt;
  uint64_t t0, dt;
  ssize_t n;
  SSL_CTX *sctx = server_ctx("server"), *cctx = client_ctx(0);
  pair(sv);
  memset(&p, 0, sizeof p);
  p.fd = sv[1];
  p.role = LIGHTWS_SERVER;
  p.ctx = sctx;
  peer_start(&p);
  memset(&to, 0, sizeof to);
  to.idle = 300;
  to.handshake = hs_timeout ? 5000 : 0;
  memset(&opt, 0, sizeof opt);
  opt.timeouts = &to;
  memset(&s, 0, sizeof s);
  ck_assert_int_eq(lightws_tls_connect(&t, cctx, &s, sv[0], rbuf, sizeof rbuf,
                                       "localhost", "/", &opt), 0);
  ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
  t0 = lightws_now();
  n = lightws_stream_read(&s, in, sizeof in, NULL);
  dt = lightws_now() - t0;
  ck_assert_int_eq((int)n, LIGHTWS_ERR_IDLE_TIMEOUT);
  ck_assert_uint_ge(dt, 280);
  ck_assert_uint_lt(dt, 3000);
  ck_assert_int_eq(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
  lightws_tls_free(&t);
  shutdown(sv[0], SHUT_RDWR);
  peer_join(&p);
  ck_assert_uint_eq(p.close_code, 1001); /* our failure close arrived */
  close(sv[0]);
  close(sv[1]);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
}

START_TEST(test_blocking_idle_timeout) { blocking_idle_case(0); }
END_TEST
START_TEST(test_blocking_idle_timeout_after_hs_timeout) {
  blocking_idle_case(1);
}
END_TEST

/* One case per test, so CK_RUN_CASE=name runs one. */
static void add(Suite *s, const char *name, const TTest *test) {
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test);
  suite_add_tcase(s, tc);
}

static Suite *tls_suite(void) {
  Suite *s = suite_create("tls");
  add(s, "ctx_errors", test_ctx_errors);
  add(s, "echo_blocking", test_echo_blocking);
  add(s, "nb_client_bytewise", test_nb_client_bytewise);
  add(s, "nb_client_bytewise_direct", test_nb_client_bytewise_direct);
  add(s, "nb_client_onebyte_keyupdate", test_nb_client_onebyte_keyupdate);
  add(s, "nb_client_bytewise_keyupdate", test_nb_client_bytewise_keyupdate);
  add(s, "nb_client_pass_keyupdate", test_nb_client_pass_keyupdate);
  add(s, "nb_server_bytewise", test_nb_server_bytewise);
  add(s, "nb_server_bytewise_keyupdate", test_nb_server_bytewise_keyupdate);
  add(s, "nb_socket_backpressure", test_nb_socket_backpressure);
  add(s, "cert_expired", test_cert_expired);
  add(s, "cert_wronghost", test_cert_wronghost);
  add(s, "cert_wrong_ip", test_cert_wrong_ip);
  add(s, "cert_unknown_ca", test_cert_unknown_ca);
  add(s, "client_cert", test_client_cert);
  add(s, "truncation_is_eof", test_truncation_is_eof);
  add(s, "resume_mismatch", test_resume_mismatch);
  add(s, "nb_client_bytewise_tls12", test_nb_client_bytewise_tls12);
  add(s, "accept_handshake_timeout", test_accept_handshake_timeout);
  add(s, "keepalive_wait", test_keepalive_wait);
  add(s, "buffered_counts_openssl_bytes", test_buffered_counts_openssl_bytes);
  add(s, "buffered_exact_partial_record", test_buffered_exact_partial_record);
  add(s, "flush_pushes_keyupdate_answer", test_flush_pushes_keyupdate_answer);
  add(s, "client_const_buffer_records", test_client_const_buffer_records);
  add(s, "accept_deflate", test_accept_deflate);
  add(s, "accept_stream_deflate", test_accept_stream_deflate);
  add(s, "accept_408_over_tls", test_accept_408_over_tls);
  add(s, "blocking_idle_timeout", test_blocking_idle_timeout);
  add(s, "blocking_idle_timeout_after_hs_timeout",
      test_blocking_idle_timeout_after_hs_timeout);
  return s;
}

int main(void) {
  const char *d = getenv("LIGHTWS_TLS_CERTS");
  SRunner *sr;
  int failed;
  snprintf(certdir, sizeof certdir, "%s", d ? d : "build/tls/certs");
  signal(SIGPIPE, SIG_IGN);
  sr = srunner_create(tls_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
