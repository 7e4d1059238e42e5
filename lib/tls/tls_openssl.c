/* SPDX-License-Identifier: MIT */
/* lightws-tls: TLS (OpenSSL 3) as a struct lightws_io for lightws streams.
 * See lightws_tls.h for the contracts. No allocation here: OpenSSL's own
 * objects are OpenSSL's. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include "lightws_tls.h"

enum { ST_NONE = 0, ST_HS = 1, ST_OPEN = 2, ST_SHUT = 3, ST_FAILED = 4 };

/* ---- errors ---------------------------------------------------------- */

const char *lightws_tls_strerror(int err) {
  switch (err) {
#define X(name, value, msg) case value: return msg;
    LIGHTWS_TLS_ERROR_MAP(X)
#undef X
  default: return lightws_strerror(err);
  }
}

const char *lightws_tls_errname(int err) {
  switch (err) {
#define X(name, value, msg) case value: return #name;
    LIGHTWS_TLS_ERROR_MAP(X)
#undef X
  default: return lightws_errname(err);
  }
}

static void set_reason(char *buf, size_t len, const char *s) {
  size_t n;
  if (!buf || !len) return;
  n = strlen(s);
  if (n >= len) n = len - 1;
  memcpy(buf, s, n);
  buf[n] = 0;
}

/* OpenSSL's last queued error as text (reason only when known). */
static void reason_from_queue(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();
  const char *r;
  if (!buf || !len) return;
  if (!e) {
    buf[0] = 0;
    return;
  }
  r = ERR_reason_error_string(e);
  if (r) set_reason(buf, len, r);
  else ERR_error_string_n(e, buf, len);
}

/* ---- context --------------------------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  const unsigned char *want = (const unsigned char *)arg; /* length-prefixed */
  unsigned i = 0;
  (void)ssl;
  while (i < inlen) {
    unsigned l = in[i];
    if (i + 1 + l > inlen) break;
    if (l == want[0] && memcmp(in + i + 1, want + 1, l) == 0) {
      *out = in + i + 1;
      *outlen = (unsigned char)l;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + l;
  }
  return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
}

/* Length-prefixed ALPN names, static so the server callback can keep a
 * pointer (only the default and one custom name per process). */
static unsigned char alpn_default[] = "\x08http/1.1";

struct ssl_ctx_st *lightws_tls_ctx(enum lightws_role role,
                                   const struct lightws_tls_config *cfg,
                                   int *err, char *reason,
                                   size_t reason_len) {
  static const struct lightws_tls_config none;
  const char *alpn;
  SSL_CTX *ctx;
  int e = 0;
  if (!cfg) cfg = &none;
  if (err) *err = 0;
  set_reason(reason, reason_len, "");
  if (role != LIGHTWS_CLIENT && role != LIGHTWS_SERVER) {
    if (err) *err = LIGHTWS_ERR_INVALID;
    return NULL;
  }
  if (role == LIGHTWS_SERVER && !cfg->cert_file) {
    if (err) *err = LIGHTWS_ERR_TLS_CERT;
    set_reason(reason, reason_len, "a server needs a certificate file");
    return NULL;
  }
  ERR_clear_error();
  ctx = SSL_CTX_new(role == LIGHTWS_CLIENT ? TLS_client_method()
                                           : TLS_server_method());
  if (!ctx) {
    e = LIGHTWS_ERR_TLS_CTX;
    goto fail;
  }
  if (!SSL_CTX_set_min_proto_version(
          ctx, cfg->min_version ? cfg->min_version : TLS1_2_VERSION)) {
    e = LIGHTWS_ERR_TLS_CTX;
    goto fail;
  }
  if (cfg->max_version && !SSL_CTX_set_max_proto_version(ctx, cfg->max_version)) {
    e = LIGHTWS_ERR_TLS_CTX;
    goto fail;
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (cfg->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites)) {
    e = LIGHTWS_ERR_TLS_CTX;
    goto fail;
  }
  if (cfg->cert_file) {
    const char *key = cfg->key_file ? cfg->key_file : cfg->cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      e = LIGHTWS_ERR_TLS_CERT;
      goto fail;
    }
  }
  if (cfg->cafile || cfg->capath) {
    if (SSL_CTX_load_verify_locations(ctx, cfg->cafile, cfg->capath) != 1) {
      e = LIGHTWS_ERR_TLS_CAFILE;
      goto fail;
    }
  } else if (role == LIGHTWS_CLIENT && !cfg->insecure) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      e = LIGHTWS_ERR_TLS_CAFILE;
      goto fail;
    }
  }
  alpn = cfg->alpn ? cfg->alpn : "http/1.1";
  if (role == LIGHTWS_CLIENT) {
    SSL_CTX_set_verify(ctx, cfg->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    if (*alpn) {
      unsigned char p[256];
      size_t l = strlen(alpn);
      if (l > 255) {
        e = LIGHTWS_ERR_INVALID;
        goto fail;
      }
      p[0] = (unsigned char)l;
      memcpy(p + 1, alpn, l);
      if (SSL_CTX_set_alpn_protos(ctx, p, (unsigned)l + 1) != 0) {
        e = LIGHTWS_ERR_TLS_CTX;
        goto fail;
      }
    }
  } else {
    if (cfg->verify_client)
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
                                  SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (*alpn) {
      if (strcmp(alpn, "http/1.1") != 0) {
        /* the callback keeps a pointer: other names are not supported
         * by this shorthand (none needed for websockets) */
        e = LIGHTWS_ERR_INVALID;
        set_reason(reason, reason_len, "server ALPN must be http/1.1");
        SSL_CTX_free(ctx);
        if (err) *err = e;
        return NULL;
      }
      SSL_CTX_set_alpn_select_cb(ctx, alpn_select, alpn_default);
    }
  }
  return ctx;
fail:
  reason_from_queue(reason, reason_len);
  if (ctx) SSL_CTX_free(ctx);
  ERR_clear_error();
  if (err) *err = e;
  return NULL;
}

struct ssl_ctx_st *lightws_tls_client_ctx(const char *cafile, int insecure,
                                          int *err) {
  struct lightws_tls_config c;
  memset(&c, 0, sizeof c);
  c.cafile = cafile;
  c.insecure = insecure;
  return lightws_tls_ctx(LIGHTWS_CLIENT, &c, err, NULL, 0);
}

struct ssl_ctx_st *lightws_tls_server_ctx(const char *cert_file,
                                          const char *key_file, int *err) {
  struct lightws_tls_config c;
  memset(&c, 0, sizeof c);
  c.cert_file = cert_file;
  c.key_file = key_file;
  return lightws_tls_ctx(LIGHTWS_SERVER, &c, err, NULL, 0);
}

void lightws_tls_ctx_free(struct ssl_ctx_st *ctx) {
  SSL_CTX_free(ctx);
}

/* ---- the lower transport --------------------------------------------- */

static ssize_t raw_recv(struct lightws_tls *t, void *buf, size_t len) {
  for (;;) {
    ssize_t r = t->lower ? t->lower->read(t->lower->ctx, buf, len)
                         : recv(t->fd, buf, len,
                                (t->dontwait & 2) ? MSG_DONTWAIT : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == ENOTSOCK && !t->lower) {
      r = read(t->fd, buf, len);
      if (r < 0 && errno == EINTR) continue;
    }
    return r;
  }
}

static ssize_t raw_sendv(struct lightws_tls *t, const struct iovec *v,
                         int cnt) {
  for (;;) {
    ssize_t r;
    if (t->lower) {
      r = t->lower->writev(t->lower->ctx, v, cnt);
    } else {
      struct msghdr m;
      memset(&m, 0, sizeof m);
      m.msg_iov = (struct iovec *)v;
      m.msg_iovlen = (size_t)cnt;
      r = sendmsg(t->fd, &m,
                  MSG_NOSIGNAL | ((t->dontwait & 2) ? MSG_DONTWAIT : 0));
      if (r < 0 && errno == ENOTSOCK) r = writev(t->fd, v, cnt);
    }
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

static ssize_t raw_send(struct lightws_tls *t, const void *buf, size_t len) {
  struct iovec v;
  v.iov_base = (void *)buf;
  v.iov_len = len;
  return raw_sendv(t, &v, 1);
}

static int would_block(void) {
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

static int lower_failed(struct lightws_tls *t) {
  t->lower_err = 1;
  t->sys_errno = errno;
  return LIGHTWS_ERR_SYSTEM;
}

/* Sends cbuf[coff, clen). 0 when empty, WOULDBLOCK, SYSTEM. */
static int flush_c(struct lightws_tls *t) {
  while (t->coff < t->clen) {
    ssize_t r = raw_send(t, t->cbuf + t->coff, t->clen - t->coff);
    if (r < 0) {
      if (would_block()) return LIGHTWS_ERR_WOULDBLOCK;
      return lower_failed(t);
    }
    t->coff += (uint32_t)r;
  }
  t->coff = t->clen = 0;
  return 0;
}

/* Records up to this size wait in cbuf during a writev (batch) and leave
 * with the next record or at the end of the writev. */
#define BATCH_SMALL 4096

static void compact(struct lightws_tls *t) {
  if (t->coff == t->clen) {
    t->coff = t->clen = 0;
  } else if (t->coff > 0) {
    memmove(t->cbuf, t->cbuf + t->coff, t->clen - t->coff);
    t->clen -= t->coff;
    t->coff = 0;
  }
}

/* The BIO: ciphertext goes to the transport together with what waits in
 * cbuf (one sendmsg); what the transport does not take waits in cbuf (the
 * BIO accepts it, so SSL_write completes). */
static int bio_write(BIO *b, const char *data, int len) {
  struct lightws_tls *t = (struct lightws_tls *)BIO_get_data(b);
  struct iovec v[2];
  size_t pend, done, room;
  ssize_t r;
  int k = 0;
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  if (t->batch && len <= BATCH_SMALL) {
    if (sizeof t->cbuf - t->clen < (size_t)len) compact(t);
    if (sizeof t->cbuf - t->clen >= (size_t)len) {
      memcpy(t->cbuf + t->clen, data, (size_t)len);
      t->clen += (uint32_t)len;
      return len;
    }
  }
  pend = t->clen - t->coff;
  if (pend) {
    v[k].iov_base = t->cbuf + t->coff;
    v[k++].iov_len = pend;
  }
  v[k].iov_base = (void *)data;
  v[k++].iov_len = (size_t)len;
  r = raw_sendv(t, v, k);
  if (r < 0) {
    if (!would_block()) {
      lower_failed(t);
      return -1;
    }
    r = 0;
  }
  if ((size_t)r >= pend) {
    done = (size_t)r - pend;
    t->coff = t->clen = 0;
  } else {
    t->coff += (uint32_t)r;
    done = 0;
  }
  if (done == (size_t)len) return len;
  compact(t);
  room = sizeof t->cbuf - t->clen;
  if (room > (size_t)len - done) room = (size_t)len - done;
  if (room == 0) {
    if (done) return (int)done;
    BIO_set_retry_write(b);
    return -1;
  }
  memcpy(t->cbuf + t->clen, data + done, room);
  t->clen += (uint32_t)room;
  return (int)(done + room);
}

/* Walks the TLS record framing (RFC 8446 §5.1: type, legacy version, a
 * 2-byte length, then that many bytes) of what goes to OpenSSL, counting
 * the whole records: with read-ahead OpenSSL may hold records it has not
 * parsed yet, and only this count tells a whole one from a partial one. */
static void count_records(struct lightws_tls *t, const uint8_t *p, size_t n) {
  while (n && !t->rec_lost) {
    if (t->rec_left) {
      size_t k = n < t->rec_left ? n : t->rec_left;
      t->rec_left -= (uint32_t)k;
      p += k;
      n -= k;
      if (!t->rec_left) t->rec_in++;
      continue;
    }
    /* content types 20..24 (§5.1, RFC 6347/9147 use more; not TLS), major
     * version 3: anything else is not a record header (an SSLv2-format
     * hello, which OpenSSL parses otherwise) */
    if ((t->rec_hdr == 0 && (*p < 20 || *p > 24)) ||
        (t->rec_hdr == 1 && *p != 3)) {
      t->rec_lost = 1;
      return;
    }
    if (t->rec_hdr >= 3)
      t->rec_len = (uint16_t)((t->rec_len << 8) | *p);
    p++;
    n--;
    if (++t->rec_hdr == 5) {
      t->rec_hdr = 0;
      t->rec_left = t->rec_len;
      t->rec_len = 0;
      if (!t->rec_left) t->rec_in++;
    }
  }
}

/* OpenSSL parses each record header it reads (RFC 8446 §5.1) before the
 * body, and reports it here once: the records it has started. */
static void msg_seen(int write_p, int version, int content_type,
                     const void *buf, size_t len, SSL *ssl, void *arg) {
  (void)version;
  (void)buf;
  (void)len;
  (void)ssl;
  if (!write_p && content_type == SSL3_RT_HEADER)
    ((struct lightws_tls *)arg)->rec_seen++;
}

static int bio_read(BIO *b, char *buf, int len) {
  struct lightws_tls *t = (struct lightws_tls *)BIO_get_data(b);
  ssize_t r;
  BIO_clear_retry_flags(b);
  if (len <= 0) return 0;
  r = raw_recv(t, buf, (size_t)len);
  if (r > 0) {
    count_records(t, (const uint8_t *)buf, (size_t)r);
    return (int)r;
  }
  if (r == 0) {
    t->lower_eof = 1;
    return 0;
  }
  if (would_block()) {
    BIO_set_retry_read(b);
    return -1;
  }
  lower_failed(t);
  return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  switch (cmd) {
  case BIO_CTRL_FLUSH: return 1;
  case BIO_CTRL_PUSH:
  case BIO_CTRL_POP: return 0;
  default: return 0;
  }
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

static void bio_method_make(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "lightws-tls");
  if (!m) return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

/* ---- errors of SSL calls ------------------------------------------------ */

static int verify_error(long v) {
  switch (v) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
  case X509_V_ERR_CERT_NOT_YET_VALID:
  case X509_V_ERR_CRL_HAS_EXPIRED:
  case X509_V_ERR_CRL_NOT_YET_VALID:
    return LIGHTWS_ERR_TLS_CERT_EXPIRED;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
  case X509_V_ERR_EMAIL_MISMATCH:
    return LIGHTWS_ERR_TLS_CERT_HOSTNAME;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_CERT_UNTRUSTED:
    return LIGHTWS_ERR_TLS_CERT_UNTRUSTED;
  default:
    return LIGHTWS_ERR_TLS_CERT_VERIFY;
  }
}

/* Maps a failed SSL call: WOULDBLOCK (*need set), EOF, SYSTEM, or a TLS
 * error (stored, the connection failed). */
static int ssl_fail(struct lightws_tls *t, int ret, uint8_t *need) {
  int e = SSL_get_error(t->ssl, ret);
  unsigned long q;
  switch (e) {
  case SSL_ERROR_WANT_READ:
    *need = LIGHTWS_WANT_READ;
    return LIGHTWS_ERR_WOULDBLOCK;
  case SSL_ERROR_WANT_WRITE:
    *need = LIGHTWS_WANT_WRITE;
    return LIGHTWS_ERR_WOULDBLOCK;
  case SSL_ERROR_ZERO_RETURN:
    if (!t->eof) t->eof = 1;
    return LIGHTWS_ERR_EOF;
  case SSL_ERROR_SYSCALL:
    if (t->lower_err) {
      errno = t->sys_errno;
      t->state = ST_FAILED;
      return LIGHTWS_ERR_SYSTEM;
    }
    if (!t->eof) t->eof = 2;
    return LIGHTWS_ERR_EOF;
  default:
    break;
  }
  q = ERR_peek_last_error();
  if (ERR_GET_LIB(q) == ERR_LIB_SSL &&
      ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ERR_clear_error();
    if (!t->eof) t->eof = 2;
    return LIGHTWS_ERR_EOF;
  }
  if (t->lower_err && !q) {
    errno = t->sys_errno;
    t->state = ST_FAILED;
    return LIGHTWS_ERR_SYSTEM;
  }
  t->verify = SSL_get_verify_result(t->ssl);
  if (ERR_GET_LIB(q) == ERR_LIB_SSL &&
      ERR_GET_REASON(q) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
      t->verify != X509_V_OK) {
    t->err = verify_error(t->verify);
    set_reason(t->reason, sizeof t->reason,
               X509_verify_cert_error_string(t->verify));
  } else if (ERR_GET_LIB(q) == ERR_LIB_SSL &&
             ERR_GET_REASON(q) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
    t->err = LIGHTWS_ERR_TLS_NO_CERT;
    reason_from_queue(t->reason, sizeof t->reason);
  } else {
    t->err = t->state == ST_OPEN ? LIGHTWS_ERR_TLS_PROTOCOL
                                 : LIGHTWS_ERR_TLS_HANDSHAKE;
    reason_from_queue(t->reason, sizeof t->reason);
  }
  ERR_clear_error();
  t->state = ST_FAILED;
  return t->err;
}

/* ---- connection -------------------------------------------------------- */

static ssize_t cb_read(void *ctx, void *buf, size_t len);
static ssize_t cb_writev(void *ctx, const struct iovec *iov, int iovcnt);
static int cb_want(void *ctx);
static int cb_flush(void *ctx);
static size_t cb_pending(void *ctx);
static int cb_wait_fd(void *ctx, int on);

static int is_ip(const char *name, unsigned char *addr) {
  return inet_pton(AF_INET, name, addr) == 1 ||
         inet_pton(AF_INET6, name, addr) == 1;
}

static int init_common(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                       enum lightws_role role, const char *server_name) {
  unsigned char addr[16];
  if (!ctx || (role != LIGHTWS_CLIENT && role != LIGHTWS_SERVER))
    return LIGHTWS_ERR_INVALID;
  CRYPTO_THREAD_run_once(&bio_once, bio_method_make);
  if (!bio_method) return LIGHTWS_ERR_TLS_CTX;
  ERR_clear_error();
  t->ssl = SSL_new(ctx);
  if (!t->ssl) goto fail;
  t->bio = BIO_new(bio_method);
  if (!t->bio) goto fail;
  BIO_set_data(t->bio, t);
  SSL_set_bio(t->ssl, t->bio, t->bio); /* one reference for both */
  SSL_set_read_ahead(t->ssl, 1);
  SSL_set_msg_callback(t->ssl, msg_seen); /* lightws_tls_buffered() */
  SSL_set_msg_callback_arg(t->ssl, t);
  t->role = (uint8_t)role;
  if (role == LIGHTWS_CLIENT) {
    SSL_set_connect_state(t->ssl);
    if (server_name && *server_name) {
      if (is_ip(server_name, addr)) {
        if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE &&
            !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl),
                                           server_name))
          goto fail;
      } else {
        if (!SSL_set_tlsext_host_name(t->ssl, server_name)) goto fail;
        if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE &&
            !SSL_set1_host(t->ssl, server_name))
          goto fail;
      }
    }
  } else {
    SSL_set_accept_state(t->ssl);
  }
  t->io.read = cb_read;
  t->io.writev = cb_writev;
  t->io.ctx = t;
  t->io.want = cb_want;       /* the stream's want/flush/buffered see TLS */
  t->io.flush = cb_flush;
  t->io.pending = cb_pending;
  t->io.wait_fd = cb_wait_fd;
  t->state = ST_HS;
  return 0;
fail:
  reason_from_queue(t->reason, sizeof t->reason);
  ERR_clear_error();
  if (t->ssl) SSL_free(t->ssl); /* frees the BIO too, once set */
  else if (t->bio) BIO_free(t->bio);
  t->ssl = NULL;
  t->bio = NULL;
  return LIGHTWS_ERR_TLS_CTX;
}

static void zero(struct lightws_tls *t) {
  /* the buffers need no clearing */
  memset(t, 0, offsetof(struct lightws_tls, cbuf));
}

int lightws_tls_init(struct lightws_tls *t, struct ssl_ctx_st *ctx, int fd,
                     enum lightws_role role, const char *server_name) {
  if (!t || fd < 0) return LIGHTWS_ERR_INVALID;
  zero(t);
  t->fd = fd;
  return init_common(t, ctx, role, server_name);
}

int lightws_tls_init_io(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                        const struct lightws_io *lower,
                        enum lightws_role role, const char *server_name) {
  if (!t || !lower || !lower->read || !lower->writev)
    return LIGHTWS_ERR_INVALID;
  zero(t);
  t->fd = -1;
  t->lower = lower;
  return init_common(t, ctx, role, server_name);
}

void lightws_tls_free(struct lightws_tls *t) {
  if (!t) return;
  if (t->ssl) SSL_free(t->ssl);
  t->ssl = NULL;
  t->bio = NULL;
  t->state = ST_NONE;
}

int lightws_tls_handshake(struct lightws_tls *t) {
  int r;
  if (!t || !t->ssl) return LIGHTWS_ERR_TLS_STATE;
  if (t->state == ST_FAILED) return t->err ? t->err : LIGHTWS_ERR_TLS_STATE;
  if (t->state != ST_HS) {
    if (t->state == ST_OPEN || t->state == ST_SHUT) return 0;
    return LIGHTWS_ERR_TLS_STATE;
  }
  if (t->coff < t->clen) {
    r = flush_c(t);
    if (r == LIGHTWS_ERR_WOULDBLOCK) t->hs_want = LIGHTWS_WANT_WRITE;
    if (r < 0) return r;
  }
  if (!SSL_is_init_finished(t->ssl)) {
    ERR_clear_error();
    r = SSL_do_handshake(t->ssl);
    if (r != 1) {
      uint8_t need = 0;
      r = ssl_fail(t, r, &need);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        t->hs_want = need;
        if (t->coff < t->clen) t->hs_want |= LIGHTWS_WANT_WRITE;
      }
      return r;
    }
  }
  /* done once our last flight is on the wire, not only in cbuf */
  r = flush_c(t);
  if (r == LIGHTWS_ERR_WOULDBLOCK) t->hs_want = LIGHTWS_WANT_WRITE;
  if (r < 0) return r;
  t->hs_want = 0;
  t->verify = SSL_get_verify_result(t->ssl);
  t->state = ST_OPEN;
  return 0;
}

static ssize_t read_plain(struct lightws_tls *t, void *buf, size_t len);

/* The stream's read: plaintext, like read(2). While the stream waits in
 * poll(2) itself (wait_fd), its callbacks do not block (dontwait bit 2);
 * the layer's own calls (shutdown, handshake) still do. */
static ssize_t cb_read(void *ctx, void *buf, size_t len) {
  struct lightws_tls *t = (struct lightws_tls *)ctx;
  ssize_t r;
  t->dontwait = (uint8_t)(t->dontwait ? 3 : 0);
  r = read_plain(t, buf, len);
  t->dontwait &= 1;
  return r;
}

static ssize_t read_plain(struct lightws_tls *t, void *buf, size_t len) {
  size_t n = 0;
  int r;
  if (t->state != ST_OPEN && t->state != ST_SHUT) {
    r = lightws_tls_handshake(t);
    if (r < 0) goto fail_hs;
  }
  if (t->coff < t->clen && flush_c(t) == LIGHTWS_ERR_SYSTEM) {
    errno = t->sys_errno;
    return -1;
  }
  r = SSL_read_ex(t->ssl, buf, len, &n);
  if (r == 1) {
    t->rd_need = t->last_need = 0;
    return (ssize_t)n;
  }
  r = ssl_fail(t, r, &t->rd_need);
  if (r == LIGHTWS_ERR_WOULDBLOCK) {
    t->last_need = t->rd_need;
    errno = EAGAIN;
    return -1;
  }
  t->last_need = 0;
  if (r == LIGHTWS_ERR_EOF) return 0;
  if (r == LIGHTWS_ERR_SYSTEM) return -1;
  errno = EPROTO;
  return -1;
fail_hs:
  if (r == LIGHTWS_ERR_WOULDBLOCK) {
    t->rd_need = t->hs_want ? t->hs_want : LIGHTWS_WANT_READ;
    t->last_need = t->rd_need;
    errno = EAGAIN;
    return -1;
  }
  if (r == LIGHTWS_ERR_EOF) return 0;
  if (r != LIGHTWS_ERR_SYSTEM) errno = EPROTO;
  return -1;
}

/* Position in an iovec array. */
struct cursor {
  const struct iovec *iov;
  int cnt, i;
  size_t off;
};

static void cur_skip_empty(struct cursor *c) {
  while (c->i < c->cnt && c->off >= c->iov[c->i].iov_len) {
    c->i++;
    c->off = 0;
  }
}

/* The stream's writev: each call encrypts records while the transport
 * takes them; see the header for the held-back last byte. */
static ssize_t writev_records(struct lightws_tls *t, const struct iovec *iov,
                              int iovcnt);

static ssize_t cb_writev(void *ctx, const struct iovec *iov, int iovcnt) {
  struct lightws_tls *t = (struct lightws_tls *)ctx;
  ssize_t r;
  t->dontwait = (uint8_t)(t->dontwait ? 3 : 0);
  r = writev_records(t, iov, iovcnt);
  t->dontwait &= 1;
  if (r >= 0) t->last_need = 0;
  else if (errno == EAGAIN) t->last_need = t->wr_need ? t->wr_need
                                                      : LIGHTWS_WANT_WRITE;
  else t->last_need = 0;
  return r;
}

/* The stream's want hook: what the last blocked callback needs (a read
 * that must write first says WRITE), plus WRITE while ciphertext waits. */
/* A KeyUpdate OpenSSL owes (the answer to the peer's "update requested",
 * or one asked for with SSL_key_update): OpenSSL 3 sends it only with the
 * next SSL_write or SSL_do_handshake. */
static int key_update_owed(const struct lightws_tls *t) {
  /* only between messages (not inside a post-handshake message being
   * read), where SSL_do_handshake just writes it */
  return t->ssl && t->state == ST_OPEN && !t->wpend &&
         SSL_get_key_update_type(t->ssl) != SSL_KEY_UPDATE_NONE &&
         SSL_get_state(t->ssl) == TLS_ST_OK;
}

static int cb_want(void *ctx) {
  const struct lightws_tls *t = (const struct lightws_tls *)ctx;
  int w = t->last_need;
  if (t->coff < t->clen || t->wpend || key_update_owed(t))
    w |= LIGHTWS_WANT_WRITE;
  return w;
}

/* The stream's flush hook: buffered ciphertext (the rest of an earlier
 * writev), and a KeyUpdate OpenSSL owes, which it would otherwise send
 * only before our next data. */
static int flush_held(struct lightws_tls *t);

static int cb_flush(void *ctx) {
  struct lightws_tls *t = (struct lightws_tls *)ctx;
  int r;
  t->dontwait = (uint8_t)(t->dontwait ? 3 : 0);
  r = flush_held(t);
  t->dontwait &= 1;
  return r;
}

static int flush_held(struct lightws_tls *t) {
  int r = 0;
  if (!t->ssl) return 0;
  if (t->coff < t->clen) r = flush_c(t);
  if (r == 0 && key_update_owed(t)) {
    int type = SSL_get_key_update_type(t->ssl);
    ERR_clear_error();
    /* ours (SSL_key_update) has put OpenSSL in init already; the answer
     * to the peer's is scheduled the same way SSL_write would */
    if (SSL_in_init(t->ssl) || SSL_key_update(t->ssl, type) == 1) {
      r = SSL_do_handshake(t->ssl);
      if (r != 1) {
        uint8_t need = 0;
        r = ssl_fail(t, r, &need);
        if (r == LIGHTWS_ERR_WOULDBLOCK) t->last_need = need;
        else if (r != LIGHTWS_ERR_SYSTEM) errno = EPROTO;
        return r;
      }
    } else {
      ERR_clear_error();
    }
    r = flush_c(t);
  }
  if (r == 0) t->last_need = 0; /* nothing held: no old block stands */
  else if (r == LIGHTWS_ERR_WOULDBLOCK) t->last_need = LIGHTWS_WANT_WRITE;
  else if (r == LIGHTWS_ERR_SYSTEM) errno = t->sys_errno;
  return r;
}

/* A whole record waits in OpenSSL's read-ahead buffer, not parsed yet:
 * the records handed over outnumber the headers OpenSSL parsed (a record
 * it has started but not finished is a partial one, the last handed
 * over: then the two counts are equal or that one is not whole). */
static int record_waits(const struct lightws_tls *t) {
  if (t->rec_lost) return SSL_has_pending(t->ssl);
  return t->rec_in > t->rec_seen;
}

/* The stream's pending hook: decrypted bytes OpenSSL holds (SSL_pending),
 * or 1 for a whole record read ahead and not decrypted yet (its bytes are
 * not known before it is; a partial record counts 0: its rest is the
 * transport's to give). */
static size_t cb_pending(void *ctx) {
  const struct lightws_tls *t = (const struct lightws_tls *)ctx;
  int n;
  if (!t->ssl) return 0;
  n = SSL_pending(t->ssl);
  if (n > 0) return (size_t)n;
  return record_waits(t) ? 1 : 0;
}

/* The stream's wait_fd hook: our descriptor (none over a lower io); while
 * the stream waits in poll(2) itself, recv/send do not block. */
static int cb_wait_fd(void *ctx, int on) {
  struct lightws_tls *t = (struct lightws_tls *)ctx;
  if (t->lower || t->fd < 0) return -1;
  t->dontwait = (uint8_t)(on ? 1 : 0); /* bit 2: inside a callback */
  return t->fd;
}

static ssize_t writev_records(struct lightws_tls *t, const struct iovec *iov,
                              int iovcnt) {
  struct cursor c;
  size_t count = 0, total;
  uint8_t last = 0;
  int r;
  if (t->state != ST_OPEN) {
    if (t->state == ST_SHUT) {
      errno = EPIPE;
      return -1;
    }
    r = lightws_tls_handshake(t);
    if (r < 0) {
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        t->wr_need = t->hs_want ? t->hs_want : LIGHTWS_WANT_WRITE;
        errno = EAGAIN;
      } else if (r == LIGHTWS_ERR_EOF) {
        errno = EPIPE;
      } else if (r != LIGHTWS_ERR_SYSTEM) {
        errno = EPROTO;
      }
      return -1;
    }
  }
  if (t->coff < t->clen) {
    r = flush_c(t);
    if (r == LIGHTWS_ERR_WOULDBLOCK) goto blocked;
    if (r < 0) return -1;
  }
  if (t->wpend) { /* an SSL_write to finish with the same bytes */
    size_t n = 0;
    ERR_clear_error();
    r = SSL_write_ex(t->ssl, t->pbuf, t->wpend, &n);
    if (r != 1) {
      r = ssl_fail(t, r, &t->wr_need);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        errno = EAGAIN;
        return -1;
      }
      if (r == LIGHTWS_ERR_EOF) errno = EPIPE;
      else if (r != LIGHTWS_ERR_SYSTEM) errno = EPROTO;
      return -1;
    }
    t->wpend = 0;
    t->records++;
    if (t->coff < t->clen) {
      r = flush_c(t);
      if (r == LIGHTWS_ERR_WOULDBLOCK) goto blocked;
      if (r < 0) return -1;
    }
  }
  c.iov = iov;
  c.cnt = iovcnt;
  c.i = 0;
  c.off = 0;
  cur_skip_empty(&c);
  if (t->phantom) {
    if (c.i >= c.cnt) return 0;
    if (((const uint8_t *)c.iov[c.i].iov_base)[c.off] != t->phantom_byte) {
      t->err = LIGHTWS_ERR_TLS_MISMATCH;
      t->state = ST_FAILED;
      errno = EPROTO;
      return -1;
    }
    t->phantom = 0;
    c.off++;
    count = 1;
    cur_skip_empty(&c);
  }
  total = 0;
  {
    int i;
    for (i = c.i; i < c.cnt; i++) total += c.iov[i].iov_len;
    total -= c.off;
  }
  t->batch = 1;
  while (total && !t->wpend) {
    const uint8_t *src;
    size_t len, n = 0, rest, nrec;
    int direct;
    struct cursor save;
    /* room for the next record, else send what waits first */
    if (t->clen - t->coff > sizeof t->cbuf - (LIGHTWS_TLS_RECORD + 1024)) {
      r = flush_c(t);
      if (r == LIGHTWS_ERR_SYSTEM && !count) {
        t->batch = 0;
        return -1;
      }
      if (r < 0) break;
    }
    /* ceil(total / RECORD) records, the short one first */
    nrec = (total + LIGHTWS_TLS_RECORD - 1) / LIGHTWS_TLS_RECORD;
    len = total - (nrec - 1) * LIGHTWS_TLS_RECORD;
    rest = c.iov[c.i].iov_len - c.off;
    save = c;
    if (rest >= len) {
      direct = 1;
      src = (const uint8_t *)c.iov[c.i].iov_base + c.off;
      c.off += len;
      cur_skip_empty(&c);
    } else {
      size_t got = 0;
      direct = 0;
      while (got < len) {
        size_t take = c.iov[c.i].iov_len - c.off;
        if (take > len - got) take = len - got;
        memcpy(t->pbuf + got, (const uint8_t *)c.iov[c.i].iov_base + c.off,
               take);
        got += take;
        c.off += take;
        cur_skip_empty(&c);
      }
      src = t->pbuf;
    }
    r = SSL_write_ex(t->ssl, src, len, &n);
    if (r != 1) {
      uint8_t need = 0;
      r = ssl_fail(t, r, &need);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        /* the record is OpenSSL's now: finish it from pbuf later */
        if (direct) memcpy(t->pbuf, src, len);
        t->wpend = (uint32_t)len;
        t->wr_need = need;
        count += len;
        last = src[len - 1];
        break;
      }
      c = save;
      t->batch = 0;
      if (count) break; /* report what went; the error comes next call */
      if (r == LIGHTWS_ERR_EOF) errno = EPIPE;
      else if (r != LIGHTWS_ERR_SYSTEM) errno = EPROTO;
      return -1;
    }
    t->records++;
    count += len;
    total -= len;
    last = src[len - 1];
  }
  t->batch = 0;
  if (t->coff < t->clen && flush_c(t) == LIGHTWS_ERR_SYSTEM && !count)
    return -1;
  if (count && (t->coff < t->clen || t->wpend)) {
    /* not all on the wire: keep the stream calling (see the header) */
    t->phantom = 1;
    t->phantom_byte = last;
    count--;
    if (count == 0) goto blocked;
  }
  if (count) t->wr_need = 0;
  return (ssize_t)count;
blocked:
  t->wr_need = LIGHTWS_WANT_WRITE;
  errno = EAGAIN;
  return -1;
}

int lightws_tls_flush(struct lightws_tls *t) {
  int r;
  if (!t || !t->ssl) return LIGHTWS_ERR_TLS_STATE;
  r = flush_c(t);
  if (r == LIGHTWS_ERR_WOULDBLOCK) t->hs_want = LIGHTWS_WANT_WRITE;
  return r;
}

size_t lightws_tls_pending(const struct lightws_tls *t) {
  return (size_t)(t->clen - t->coff) + t->wpend;
}

int lightws_tls_buffered(const struct lightws_tls *t) {
  return t->ssl && (SSL_pending(t->ssl) > 0 || record_waits(t)) ? 1 : 0;
}

int lightws_tls_want(const struct lightws_tls *t,
                     const struct lightws_stream *s) {
  int w = 0;
  if (s && s->io == &t->io) {
    /* the stream asked the layer itself (t->io.want) at each block */
    w = lightws_stream_want(s);
  } else if (s) {
    /* a stream over another io that wraps t->io: map its directions */
    int sw = lightws_stream_want(s);
    if (sw & LIGHTWS_WANT_READ) w |= t->rd_need ? t->rd_need : LIGHTWS_WANT_READ;
    if (sw & LIGHTWS_WANT_WRITE)
      w |= t->wr_need ? t->wr_need : LIGHTWS_WANT_WRITE;
  } else {
    w = t->hs_want;
  }
  if (t->coff < t->clen || t->wpend) w |= LIGHTWS_WANT_WRITE;
  if (!w) w = LIGHTWS_WANT_READ;
  return w;
}

int lightws_tls_shutdown(struct lightws_tls *t) {
  int r;
  if (!t || !t->ssl) return LIGHTWS_ERR_TLS_STATE;
  if (t->state == ST_OPEN) {
    if (t->coff < t->clen || t->wpend) { /* earlier records first */
      if ((r = flush_c(t)) < 0) goto out;
      if (t->wpend) {
        size_t n = 0;
        ERR_clear_error();
        r = SSL_write_ex(t->ssl, t->pbuf, t->wpend, &n);
        if (r != 1) {
          r = ssl_fail(t, r, &t->hs_want);
          goto out;
        }
        t->wpend = 0;
        t->phantom = 0;
      }
    }
    ERR_clear_error();
    r = SSL_shutdown(t->ssl);
    if (r < 0) {
      r = ssl_fail(t, r, &t->hs_want);
      if (r == LIGHTWS_ERR_EOF) r = 0; /* cannot happen on send */
      if (r < 0) return r;
    }
    t->state = ST_SHUT;
  } else if (t->state != ST_SHUT) {
    return LIGHTWS_ERR_TLS_STATE;
  }
  r = flush_c(t);
out:
  if (r == LIGHTWS_ERR_WOULDBLOCK) t->hs_want = LIGHTWS_WANT_WRITE;
  return r;
}

int lightws_tls_eof(const struct lightws_tls *t) {
  return t->eof;
}

int lightws_tls_error(const struct lightws_tls *t) {
  return t->err;
}

const char *lightws_tls_reason(const struct lightws_tls *t) {
  return t->reason;
}

const char *lightws_tls_version(const struct lightws_tls *t) {
  return t->ssl ? SSL_get_version(t->ssl) : NULL;
}

const char *lightws_tls_cipher(const struct lightws_tls *t) {
  return t->ssl ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *lightws_tls_alpn(const struct lightws_tls *t, size_t *len) {
  const unsigned char *p = NULL;
  unsigned l = 0;
  if (t->ssl) SSL_get0_alpn_selected(t->ssl, &p, &l);
  if (len) *len = l;
  return l ? (const char *)p : NULL;
}

struct ssl_st *lightws_tls_ssl(const struct lightws_tls *t) {
  return t->ssl;
}

uint64_t lightws_tls_records(const struct lightws_tls *t) {
  return t->records;
}

/* ---- waiting and the blocking wrappers ---------------------------------- */

int lightws_tls_wait(struct lightws_tls *t, struct lightws_stream *s,
                     int timeout_ms) {
  uint64_t start = lightws_now(), now, end;
  if (!t || t->lower || t->fd < 0) return LIGHTWS_ERR_INVALID;
  end = timeout_ms < 0 ? LIGHTWS_NO_DEADLINE : start + (uint64_t)timeout_ms;
  for (;;) {
    struct pollfd p;
    uint64_t d = end, sd;
    int w, ms, r;
    if (s) {
      sd = lightws_stream_deadline(s);
      if (sd < d) d = sd;
    }
    now = lightws_now();
    if (s && sd <= now) {
      r = lightws_stream_tick(s, now);
      if (r < 0) return r;
      continue;
    }
    if (end <= now && timeout_ms >= 0) return LIGHTWS_ERR_WOULDBLOCK;
    w = lightws_tls_want(t, s);
    ms = d == LIGHTWS_NO_DEADLINE ? -1
         : (d - now > INT_MAX ? INT_MAX : (int)(d - now));
    p.fd = t->fd;
    p.events = (short)(((w & LIGHTWS_WANT_READ) ? POLLIN : 0) |
                       ((w & LIGHTWS_WANT_WRITE) ? POLLOUT : 0));
    p.revents = 0;
    r = poll(&p, 1, ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return LIGHTWS_ERR_SYSTEM;
    }
    if (r == 0) continue; /* a deadline: tick or time out above */
    if ((p.revents & (POLLOUT | POLLERR | POLLHUP)) && t->coff < t->clen) {
      r = flush_c(t);
      if (r == LIGHTWS_ERR_SYSTEM) return r;
      /* only writable for our ciphertext: the call itself may go on */
    }
    return 0;
  }
}

/* Host header value without its port, for SNI and the name check. */
static void host_name(const char *host, char *out, size_t size) {
  size_t n = 0;
  const char *e;
  out[0] = 0;
  if (!host) return;
  if (host[0] == '[') {
    e = strchr(host, ']');
    host++;
    n = e ? (size_t)(e - host) : strlen(host);
  } else {
    e = strchr(host, ':');
    n = (e && !strchr(e + 1, ':')) ? (size_t)(e - host) : strlen(host);
  }
  if (n >= size) n = size - 1;
  memcpy(out, host, n);
  out[n] = 0;
}

/* The flags of `fd` to set while one phase of the blocking wrappers runs:
 * `nonblock` 1 for the TLS handshake under a handshake timeout (the
 * layer's own calls block on a blocking descriptor), 0 for the websocket
 * handshake (on a blocking descriptor the stream itself waits in poll(2)
 * through the wait_fd hook, bounded by its timeouts). Returns 0, or -1
 * when the flags cannot be read (the descriptor is left as it is). */
static int fd_mode(int fd, int user_fl, int nonblock) {
  int want;
  if (user_fl < 0) return -1;
  want = nonblock ? (user_fl | O_NONBLOCK) : (user_fl & ~O_NONBLOCK);
  return fcntl(fd, F_SETFL, want) < 0 ? -1 : 0;
}

/* TLS handshake within `end` (LIGHTWS_NO_DEADLINE: none). */
static int tls_hs_until(struct lightws_tls *t, uint64_t end) {
  int r;
  while ((r = lightws_tls_handshake(t)) == LIGHTWS_ERR_WOULDBLOCK) {
    int ms = -1;
    if (end != LIGHTWS_NO_DEADLINE) {
      uint64_t now = lightws_now();
      if (now >= end) return LIGHTWS_ERR_HANDSHAKE_TIMEOUT;
      ms = end - now > INT_MAX ? INT_MAX : (int)(end - now);
    }
    r = lightws_tls_wait(t, NULL, ms);
    if (r == LIGHTWS_ERR_WOULDBLOCK) continue;
    if (r < 0) return r;
  }
  return r;
}

static uint64_t hs_end(const struct lightws_timeouts *to) {
  return to && to->handshake ? lightws_now() + to->handshake
                             : LIGHTWS_NO_DEADLINE;
}

/*
 * What lightws_tls_connect and _accept share: TLS on `fd` (t initialized by
 * the caller), then the stream over t->io and the websocket handshake of
 * `role` (lightws_connect_stream / lightws_accept_stream, which wait in the
 * stream's own poll through t->io.wait_fd). One handshake timeout bounds
 * both: the stream gets what is left of it. The descriptor is blocking
 * during the websocket handshake and gets the caller's flags back at the
 * end, with the timeouts applied again for them.
 */
static int tls_open(struct lightws_tls *t, struct lightws_stream *s, int fd,
                    enum lightws_role role, uint8_t *rbuf, size_t rsize,
                    const struct lightws_timeouts *to, const char *host,
                    const char *path, struct lightws_request *req,
                    const struct lightws_client_options *copt,
                    const struct lightws_server_options *sopt) {
  uint64_t end = hs_end(to);
  int fl = fcntl(fd, F_GETFL), r;
  if (end != LIGHTWS_NO_DEADLINE) (void)fd_mode(fd, fl, 1);
  r = tls_hs_until(t, end);
  if (r == 0) {
    (void)fd_mode(fd, fl, 0);
    r = lightws_stream_init(s, role, fd, rbuf, rsize, 0);
  }
  if (r == 0) {
    lightws_stream_set_io(s, &t->io);
    if (to) {
      struct lightws_timeouts left = *to;
      if (end != LIGHTWS_NO_DEADLINE) {
        uint64_t now = lightws_now();
        left.handshake = now >= end ? 1 : (uint32_t)(end - now);
      }
      lightws_stream_set_timeouts(s, &left, lightws_now());
    }
    r = role == LIGHTWS_CLIENT ? lightws_connect_stream(s, host, path, copt)
                               : lightws_accept_stream(s, req, sopt);
  }
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl);
  /* the caller's flags again: the stream waits itself only if blocking */
  if (r == 0 && to) lightws_stream_set_timeouts(s, to, lightws_now());
  if (r == LIGHTWS_ERR_SYSTEM && errno == EPROTO && t->err) r = t->err;
  return r;
}

int lightws_tls_connect(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                        struct lightws_stream *s, int fd, uint8_t *rbuf,
                        size_t rsize, const char *host, const char *path,
                        const struct lightws_client_options *opt) {
  char name[256];
  int r;
  if (!t || !s) return LIGHTWS_ERR_INVALID;
  host_name(host, name, sizeof name);
  r = lightws_tls_init(t, ctx, fd, LIGHTWS_CLIENT, name[0] ? name : NULL);
  if (r < 0) return r;
  return tls_open(t, s, fd, LIGHTWS_CLIENT, rbuf, rsize,
                  opt ? opt->timeouts : NULL, host, path, NULL, opt, NULL);
}

int lightws_tls_accept(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                       struct lightws_stream *s, int fd, uint8_t *rbuf,
                       size_t rsize, struct lightws_request *req,
                       const struct lightws_server_options *opt) {
  int r;
  if (!t || !s) return LIGHTWS_ERR_INVALID;
  r = lightws_tls_init(t, ctx, fd, LIGHTWS_SERVER, NULL);
  if (r < 0) return r;
  return tls_open(t, s, fd, LIGHTWS_SERVER, rbuf, rsize,
                  opt ? opt->timeouts : NULL, NULL, NULL, req, NULL, opt);
}

int lightws_tls_close(struct lightws_tls *t, struct lightws_stream *s,
                      int timeout_ms) {
  int r = 0;
  if (!t) return LIGHTWS_ERR_INVALID;
  if (s && t->state == ST_OPEN) {
    while ((r = lightws_stream_flush(s)) == LIGHTWS_ERR_WOULDBLOCK) {
      if (t->lower || (r = lightws_tls_wait(t, s, timeout_ms)) < 0) break;
    }
  }
  if ((!s || lightws_stream_closing(s) == 2) &&
      (t->state == ST_OPEN || t->state == ST_SHUT)) {
    int e;
    while ((e = lightws_tls_shutdown(t)) == LIGHTWS_ERR_WOULDBLOCK) {
      if (t->lower || (e = lightws_tls_wait(t, NULL, timeout_ms)) < 0) break;
    }
    if (!r) r = e;
  }
  lightws_tls_free(t);
  return r;
}
