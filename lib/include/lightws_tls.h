/* SPDX-License-Identifier: MIT */
/*
 * lightws-tls: an optional TLS layer (OpenSSL 3) for lightws streams (wss).
 *
 * Its own library (liblightws-tls, pkg-config `lightws-tls`); the core
 * (liblightws) stays libc-only. The layer is a struct lightws_io: the
 * stream reads and writes plaintext through it as through any transport,
 * and it moves TLS records over a descriptor (recv/send, MSG_NOSIGNAL) or
 * over a lower lightws_io (a test harness, another byte stream).
 *
 * Memory: the caller owns struct lightws_tls (embed it next to the
 * stream; about 37 KiB: a 20 KiB ciphertext buffer and a 16 KiB record
 * gather buffer) and must not move it between lightws_tls_init() and
 * lightws_tls_free(). lightws-tls itself never allocates. OpenSSL does:
 * the SSL_CTX, the SSL object (SSL_new), its read buffer and handshake
 * state, the BIO method (once per process) are OpenSSL's allocations,
 * freed by lightws_tls_free() / lightws_tls_ctx_free().
 *
 * Blocking and nonblocking: on a blocking descriptor every call blocks in
 * recv/send as a plain socket would. On a nonblocking one a call that
 * would block returns LIGHTWS_ERR_WOULDBLOCK (the stream's calls too: the
 * callbacks return -1/EAGAIN); lightws_stream_want() then says whether to
 * wait for readable or writable. TLS may need the other direction (a read
 * stuck behind ciphertext that must go out first, a write that waits for
 * a read, the answer to the peer's KeyUpdate that OpenSSL owes): t->io
 * has the lightws_io hooks (want, flush, pending), so the stream's own
 * lightws_stream_want(), lightws_stream_flush() and
 * lightws_stream_buffered() see the layer. When want() says WRITE, call
 * lightws_stream_flush() (or simply the stream call again) once writable.
 * lightws_tls_want(), lightws_tls_flush() and lightws_tls_buffered() are
 * kept for compatibility (and for the TLS handshake, before a stream).
 *
 * Timeouts on a blocking descriptor: t->io also has the wait_fd hook, so a
 * stream with timeouts (lightws_stream_set_timeouts after set_io, while
 * the descriptor is blocking) waits in poll(2) up to its deadline as a
 * descriptor stream does: a blocking read sends keepalive pings and fails
 * with IDLE_TIMEOUT/PING_TIMEOUT instead of waiting forever. The layer's
 * callbacks (t->io) then use MSG_DONTWAIT; its own calls
 * (lightws_tls_shutdown, lightws_tls_handshake) still block.
 * lightws_tls_connect/accept run the websocket handshake that way (the
 * core's lightws_connect_stream/lightws_accept_stream) and apply the
 * timeouts of their options again for the caller's descriptor flags.
 *
 * Writes: one writev of the stream (a frame's head + payload) becomes as
 * few TLS records as its size allows, ceil(bytes / 16 KiB): up to 16 KiB
 * in one record (the iovecs gathered into one buffer), larger frames as
 * one short record first (the head and the first bytes, gathered) and then
 * full 16 KiB records encrypted in place from the caller's payload. The
 * records of one writev leave in as few send(2) calls as the socket
 * allows (short records wait in the ciphertext buffer and go out in one
 * sendmsg with the next full one). Records the socket
 * does not take stay in the ciphertext buffer; so that the stream keeps
 * calling (a frame still in progress), a writev whose ciphertext did not
 * all go out reports its last plaintext byte as not written. The stream's
 * next writev starts with that byte (the core's resumption contract); the
 * layer checks it is the same byte and counts it without encrypting it
 * again. So SSL_write is never retried with other bytes, and the core may
 * resume at any byte. Renegotiation (TLS 1.2) is refused.
 *
 * End: after a clean close handshake (lightws_stream_closing() == 2, or
 * LIGHTWS_ERR_CLOSED) call lightws_tls_shutdown(): it sends close_notify.
 * A peer's close_notify or a TCP end without it both read as EOF for the
 * stream (LIGHTWS_ERR_EOF, close code 1006 when no close frame came);
 * lightws_tls_eof() tells which.
 *
 * kTLS: not used (the kernels this was built on load no `tls` ULP);
 * everything goes through OpenSSL in user space.
 *
 * OpenSSL's error queue: the stream's reads and writes do not clear the
 * thread's queue before each SSL call (ERR_clear_error costs about as much
 * as a small record); lightws-tls leaves it empty after every failure it
 * handles, and code that uses OpenSSL elsewhere on the same thread must
 * not leave errors queued (ERR_clear_error() after its own failures), as
 * SSL_get_error() requires.
 *
 * Threads: like a stream, a lightws_tls is not thread-safe. An SSL_CTX may
 * be shared by threads (OpenSSL's rules).
 *
 * Errors: the core's LIGHTWS_ERR_* codes plus the table below (-200..-249);
 * lightws_tls_strerror() / lightws_tls_errname() know both.
 * lightws_tls_reason() has OpenSSL's text for the last failure.
 */
#ifndef LIGHTWS_TLS_H
#define LIGHTWS_TLS_H

#include <stddef.h>
#include <stdint.h>
#include "lightws.h"

#ifdef __cplusplus
extern "C" {
#endif

/* OpenSSL's types, so that this header does not need OpenSSL's. */
struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

/* X(NAME, value, message) */
#define LIGHTWS_TLS_ERROR_MAP(X)                                              \
  X(TLS_CTX,          -200, "cannot create the TLS context")                 \
  X(TLS_CERT,         -201, "cannot load the certificate or key file")       \
  X(TLS_CAFILE,       -202, "cannot load the CA file or directory")          \
  X(TLS_HANDSHAKE,    -210, "TLS handshake failed")                          \
  X(TLS_CERT_EXPIRED, -211, "peer certificate expired or not yet valid")     \
  X(TLS_CERT_HOSTNAME,-212, "peer certificate does not match the host name") \
  X(TLS_CERT_UNTRUSTED,-213, "peer certificate not issued by a trusted CA")  \
  X(TLS_CERT_VERIFY,  -214, "peer certificate verification failed")          \
  X(TLS_NO_CERT,      -215, "peer sent no certificate")                      \
  X(TLS_PROTOCOL,     -220, "TLS protocol error")                            \
  X(TLS_STATE,        -221, "TLS layer used out of order (not initialized, " \
                            "handshake not done, or failed)")                \
  X(TLS_MISMATCH,     -222, "stream resumed a write with other bytes")

enum lightws_tls_error {
#define LIGHTWS__TLS_ERR_ENUM(name, value, msg) LIGHTWS_ERR_##name = (value),
  LIGHTWS_TLS_ERROR_MAP(LIGHTWS__TLS_ERR_ENUM)
#undef LIGHTWS__TLS_ERR_ENUM
  LIGHTWS__TLS_ERR_MIN = -250
};

/* Message / name (without prefix) of a TLS error or a core error
 * (lightws_strerror / lightws_errname). Static storage; never NULL. */
const char *lightws_tls_strerror(int err);
const char *lightws_tls_errname(int err);

/* ---- context ------------------------------------------------------------ */

/* Context options; all fields may be NULL/0. */
struct lightws_tls_config {
  const char *cafile;     /* PEM CAs to trust (client: instead of the system
                             store; server: for client certificates) */
  const char *capath;     /* a hashed CA directory, as cafile */
  const char *cert_file;  /* PEM certificate chain: the server's (required
                             for a server) or the client's */
  const char *key_file;   /* its private key (NULL: in cert_file) */
  const char *alpn;       /* protocol offered / accepted; NULL: "http/1.1",
                             "": none */
  int insecure;           /* client: no certificate or host verification */
  int verify_client;      /* server: require a client certificate, verified
                             against cafile/capath */
  int min_version;        /* 0x0303 TLS 1.2 (default when 0), 0x0304 TLS 1.3 */
  int max_version;        /* 0: the highest OpenSSL knows (TLS 1.3) */
  const char *ciphersuites; /* TLS 1.3 suites (OpenSSL syntax); NULL: default */
};

/*
 * A new SSL_CTX for `role` (LIGHTWS_CLIENT: verification of the peer and
 * its name on by default, trusting the system store unless cafile/capath;
 * LIGHTWS_SERVER: cert_file + key_file required, ALPN answered). Returns
 * the context, or NULL with *err (may be NULL) set to TLS_CTX, TLS_CERT,
 * TLS_CAFILE or INVALID; `reason` (may be NULL) gets OpenSSL's text.
 * Free with lightws_tls_ctx_free(). A context serves any number of
 * connections.
 */
struct ssl_ctx_st *lightws_tls_ctx(enum lightws_role role,
                                   const struct lightws_tls_config *cfg,
                                   int *err, char *reason, size_t reason_len);

/* Shorthands: a client context (cafile NULL: the system store; insecure:
 * no verification) and a server context (cert and key files). */
struct ssl_ctx_st *lightws_tls_client_ctx(const char *cafile, int insecure,
                                          int *err);
struct ssl_ctx_st *lightws_tls_server_ctx(const char *cert_file,
                                          const char *key_file, int *err);

void lightws_tls_ctx_free(struct ssl_ctx_st *ctx);

/* ---- connection --------------------------------------------------------- */

#define LIGHTWS_TLS_CBUF (20u * 1024) /* ciphertext not yet sent */
#define LIGHTWS_TLS_RECORD 16384u      /* plaintext per TLS record */

/* The connection. Zero-filled memory plus lightws_tls_init() is the only
 * valid way to start; never copy or move one in use. */
struct lightws_tls {
  struct lightws_io io;        /* hand &t->io to lightws_stream_set_io() */
  /* private: */
  struct ssl_st *ssl;
  struct bio_st *bio;
  const struct lightws_io *lower; /* NULL: fd */
  int fd;
  uint8_t role;                /* enum lightws_role */
  uint8_t rd_need, wr_need;    /* LIGHTWS_WANT_* the last blocked read /
                                  write callback waits for */
  uint8_t hs_want;             /* ... and the last blocked handshake step */
  uint8_t phantom;             /* 1: the last byte of the last writev was
                                  encrypted but reported as not written */
  uint8_t phantom_byte;
  uint8_t eof;                 /* 1 close_notify, 2 truncated */
  uint8_t state;               /* 0 none, 1 handshaking, 2 open, 3 shut,
                                  4 failed */
  uint8_t lower_eof;           /* lower transport read 0 */
  uint8_t lower_err;           /* lower transport failed (errno kept) */
  uint8_t batch;               /* inside a writev: small records wait in
                                  cbuf and leave with the next one */
  uint8_t last_need;           /* LIGHTWS_WANT_* of the last read or writev
                                  callback that blocked, 0 after one that
                                  did not (t->io.want reports it) */
  uint8_t dontwait;            /* 1: the stream waits in poll(2) itself
                                  (t->io.wait_fd); | 2 inside its
                                  callbacks: recv/send do not block */
  int sys_errno;               /* errno of the lower transport failure */
  int err;                     /* last TLS error (LIGHTWS_ERR_TLS_*) */
  long verify;                 /* X509 verify result of the handshake */
  uint32_t wpend;              /* pbuf bytes of an SSL_write to retry */
  uint32_t clen, coff;         /* ciphertext in cbuf[coff, clen) */
  uint64_t records;            /* application records written (stats) */
  uint64_t rec_in;             /* whole TLS records handed to OpenSSL */
  uint64_t rec_seen;           /* record headers OpenSSL has parsed (its
                                  msg callback, SSL3_RT_HEADER) */
  uint32_t rec_left;           /* bytes of the record being handed over
                                  still to come (after its header) */
  uint16_t rec_len;            /* its length field, as far as read */
  uint8_t rec_hdr;             /* bytes of its 5-byte header seen */
  uint8_t rec_lost;            /* 1: not TLS records as parsed (an SSLv2
                                  hello): buffered() falls back */
  char reason[128];            /* OpenSSL's text for the last error */
  uint8_t cbuf[LIGHTWS_TLS_CBUF];
  uint8_t pbuf[LIGHTWS_TLS_RECORD];
};

/*
 * Starts a TLS connection on `fd` (a connected socket, blocking or not;
 * the caller keeps owning and closes it) for `role`. A client sends SNI
 * `server_name` (a DNS name; not sent for an IP literal) and, unless the
 * context is insecure, checks the certificate against it (DNS name or IP
 * address); NULL skips the name check (not recommended). Fills t->io.
 * Returns 0, INVALID, TLS_CTX (SSL_new failed).
 */
int lightws_tls_init(struct lightws_tls *t, struct ssl_ctx_st *ctx, int fd,
                     enum lightws_role role, const char *server_name);

/* As lightws_tls_init(), over `lower` (callbacks as lightws_io says:
 * read/writev like read(2)/writev(2), -1 + EAGAIN for would-block; it must
 * outlive `t`) instead of a descriptor. */
int lightws_tls_init_io(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                        const struct lightws_io *lower,
                        enum lightws_role role, const char *server_name);

/*
 * One step of the TLS handshake (repeat until 0). Returns 0 when done,
 * LIGHTWS_ERR_WOULDBLOCK (lightws_tls_want()), LIGHTWS_ERR_EOF (the peer
 * left), LIGHTWS_ERR_SYSTEM (errno), or a named error: TLS_CERT_EXPIRED,
 * TLS_CERT_HOSTNAME, TLS_CERT_UNTRUSTED, TLS_CERT_VERIFY, TLS_NO_CERT
 * (verification), TLS_HANDSHAKE (any other failure, lightws_tls_reason()).
 * The stream's own calls also run it first if it is not done.
 */
int lightws_tls_handshake(struct lightws_tls *t);

/* LIGHTWS_WANT_* to wait for before the call that returned WOULDBLOCK is
 * retried: what TLS needs for the stream's last would-block (s may be
 * NULL: the handshake's, shutdown's, flush's), plus WRITE while
 * ciphertext waits to go out; never 0 (READ when nothing else). For a
 * stream over t->io this is lightws_stream_want(s) (which asks the layer
 * through t->io.want), kept for compatibility; s over another io that
 * wraps t->io gets the stream's directions mapped through the layer. */
int lightws_tls_want(const struct lightws_tls *t,
                     const struct lightws_stream *s);

/* Sends ciphertext still buffered. 0 when none is left, WOULDBLOCK,
 * SYSTEM. (Kept for compatibility: lightws_stream_flush() does this
 * through t->io.flush, and also sends a KeyUpdate answer OpenSSL owes.) */
int lightws_tls_flush(struct lightws_tls *t);

/* Bytes of ciphertext waiting to go out. */
size_t lightws_tls_pending(const struct lightws_tls *t);

/* 1 if the next read of t->io returns bytes without the transport: the
 * layer holds decrypted bytes not yet read by the stream (SSL_pending), or
 * a whole record that OpenSSL read ahead and has not decrypted yet; 0 for
 * a partial record alone (its rest must come from the transport, so an
 * event loop may wait for readability). Exact: the layer counts the
 * records it hands to OpenSSL against the headers OpenSSL parsed (through
 * the SSL's message callback, which the layer owns: do not replace it with
 * SSL_set_msg_callback on lightws_tls_ssl()). (Kept for compatibility:
 * lightws_stream_buffered() counts the same through t->io.pending.) */
int lightws_tls_buffered(const struct lightws_tls *t);

/*
 * Sends close_notify (once) and flushes it; does not wait for the peer's.
 * Call after the close handshake. Returns 0, WOULDBLOCK (call again when
 * lightws_tls_want() allows), SYSTEM, or TLS_STATE (no open TLS session:
 * nothing to send, e.g. after a TLS error).
 */
int lightws_tls_shutdown(struct lightws_tls *t);

/* Frees OpenSSL's state of `t` (SSL_free); does not close the descriptor.
 * `t` may then be initialized again. Safe on a zero-filled struct. */
void lightws_tls_free(struct lightws_tls *t);

/* How the TLS stream ended: 0 not yet, 1 close_notify received,
 * 2 transport ended without close_notify (truncation). */
int lightws_tls_eof(const struct lightws_tls *t);

/* The last TLS error of `t` (LIGHTWS_ERR_TLS_*, 0 if none): set when the
 * stream's calls fail with LIGHTWS_ERR_SYSTEM because of TLS (errno
 * EPROTO), as well as by the functions above. */
int lightws_tls_error(const struct lightws_tls *t);

/* OpenSSL's text for the last failure ("certificate has expired",
 * "tlsv1 alert unknown ca", ...), "" if none. Valid while `t` is. */
const char *lightws_tls_reason(const struct lightws_tls *t);

/* Negotiated protocol version ("TLSv1.3"), cipher ("TLS_AES_128_GCM_SHA256")
 * and ALPN protocol (NULL if none; *len set), once the handshake is done. */
const char *lightws_tls_version(const struct lightws_tls *t);
const char *lightws_tls_cipher(const struct lightws_tls *t);
const char *lightws_tls_alpn(const struct lightws_tls *t, size_t *len);

/* The SSL object, for what this API does not cover (SSL_key_update...). */
struct ssl_st *lightws_tls_ssl(const struct lightws_tls *t);

/* TLS application records written so far (tests, statistics). */
uint64_t lightws_tls_records(const struct lightws_tls *t);

/*
 * Waits (poll) on the descriptor of `t` for lightws_tls_want(t, s), at most
 * `timeout_ms` (-1: no bound) and no longer than the stream's deadline
 * (lightws_stream_deadline; s may be NULL), ticking the stream when it is
 * due and flushing buffered ciphertext. Returns 0 (retry the call), a
 * timeout error of the stream (lightws_stream_tick), LIGHTWS_ERR_WOULDBLOCK
 * (timeout_ms passed), SYSTEM, or INVALID over a lower lightws_io.
 */
int lightws_tls_wait(struct lightws_tls *t, struct lightws_stream *s,
                     int timeout_ms);

/* ---- blocking wrappers (lightws_connect / lightws_accept over TLS) ------ */

/*
 * Client: TLS handshake on `fd` (host as server name), then the stream is
 * initialized here over t->io (rbuf lent to it; t, s and rbuf stay the
 * caller's) and lightws_connect_stream() runs the websocket handshake
 * with `host`, `path`, `opt` as lightws_connect() (opt->deflate offered).
 * With a handshake timeout in opt->timeouts it bounds both handshakes:
 * the descriptor is made nonblocking for the TLS handshake, the stream
 * gets what is left of the timeout, and the websocket handshake waits in
 * the stream's own poll(2) (t->io's wait_fd hook) on the descriptor made
 * blocking; the caller's descriptor flags are restored at the end and the
 * timeouts of opt applied again for them. Returns 0 or an error of either
 * handshake (a TLS failure by its LIGHTWS_ERR_TLS_* name), or
 * LIGHTWS_ERR_HANDSHAKE_TIMEOUT.
 */
int lightws_tls_connect(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                        struct lightws_stream *s, int fd, uint8_t *rbuf,
                        size_t rsize, const char *host, const char *path,
                        const struct lightws_client_options *opt);

/*
 * Server: TLS handshake on an accepted `fd`, then lightws_accept_stream()
 * over t->io, i.e. exactly lightws_accept()'s work: the request read into
 * `req` (may be NULL), permessage-deflate accepted from opt->deflate (with
 * opt->deflate_mem, lent for the stream's life), the subprotocol chosen
 * from opt->protocols, a bad request rejected with its HTTP status and its
 * error returned, a client too slow for the handshake timeout sent a 408
 * through the TLS layer. Descriptor and timeouts as for
 * lightws_tls_connect().
 */
int lightws_tls_accept(struct lightws_tls *t, struct ssl_ctx_st *ctx,
                       struct lightws_stream *s, int fd, uint8_t *rbuf,
                       size_t rsize, struct lightws_request *req,
                       const struct lightws_server_options *opt);

/*
 * End of a connection over TLS, for blocking code: flushes a queued close
 * frame, then, if the close handshake is complete, sends close_notify
 * (lightws_tls_shutdown, waiting at most `timeout_ms`); frees `t`. Does not
 * close the descriptor. Returns 0 or the first error.
 */
int lightws_tls_close(struct lightws_tls *t, struct lightws_stream *s,
                      int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* LIGHTWS_TLS_H */
