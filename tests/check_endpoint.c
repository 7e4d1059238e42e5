/* SPDX-License-Identifier: MIT */
/* Endpoint suite: opening handshakes over socketpairs and over a scripted
 * transport that gives one byte at a time or would block. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "check_lightws.h"

/* ---- scripted transport ------------------------------------------------- */

struct fio {
  uint8_t in[16384];
  size_t in_len, in_pos;
  uint8_t out[16384];
  size_t out_len;
  int onebyte, eagain; /* 1-byte reads/writes; EAGAIN every other call */
  unsigned tick;
};

static ssize_t fio_read(void *ctx, void *buf, size_t len) {
  struct fio *f = ctx;
  size_t n = f->in_len - f->in_pos;
  if (f->eagain && (f->tick++ & 1)) {
    errno = EAGAIN;
    return -1;
  }
  if (n == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (f->onebyte) n = 1;
  if (n > len) n = len;
  memcpy(buf, f->in + f->in_pos, n);
  f->in_pos += n;
  return (ssize_t)n;
}

static ssize_t fio_writev(void *ctx, const struct iovec *iov, int cnt) {
  struct fio *f = ctx;
  size_t n = 0;
  int i;
  if (f->eagain && (f->tick++ & 1)) {
    errno = EAGAIN;
    return -1;
  }
  for (i = 0; i < cnt; i++) {
    size_t k = iov[i].iov_len;
    if (f->onebyte && n + k > 1) k = 1 - n;
    ck_assert_uint_le(f->out_len + k, sizeof f->out);
    memcpy(f->out + f->out_len, iov[i].iov_base, k);
    f->out_len += k;
    n += k;
    if (f->onebyte && n == 1) break;
  }
  return (ssize_t)n;
}

static void fio_in(struct fio *f, const void *p, size_t n) {
  ck_assert_uint_le(f->in_len + n, sizeof f->in);
  memcpy(f->in + f->in_len, p, n);
  f->in_len += n;
}

/* A frame as the peer of `role` sends it (clients mask). */
static void fio_frame(struct fio *f, int peer_masks, int op, const char *p) {
  struct lightws_frame fr;
  uint8_t h[14];
  size_t hl, n = strlen(p);
  memset(&fr, 0, sizeof fr);
  fr.fin = 1;
  fr.opcode = (uint8_t)op;
  fr.length = n;
  fr.masked = (uint8_t)peer_masks;
  memcpy(fr.mask, "\x11\x22\x33\x44", 4);
  hl = lightws_frame_encode_unchecked(&fr, h);
  fio_in(f, h, hl);
  fio_in(f, p, n);
  if (peer_masks) lightws_mask(f->in + f->in_len - n, n, fr.mask, 0);
}

static const char REQ[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: server.example.com\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: chat, superchat\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

/* Collects one message through recv (chunks may be 1 byte). */
static size_t recv_message(struct lightws_stream *s, uint8_t *buf,
                           size_t size) {
  size_t got = 0;
  int spins = 0;
  for (;;) {
    struct lightws_chunk c;
    ssize_t n = lightws_stream_recv(s, &c);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      ck_assert_int_lt(++spins, 100000);
      continue;
    }
    ck_assert_int_ge(n, 0);
    ck_assert_uint_le(got + (size_t)n, size);
    memcpy(buf + got, c.data, (size_t)n);
    got += (size_t)n;
    if (c.message_end) return got;
  }
}

static int retry(int r, int *spins) {
  ck_assert_int_lt(++*spins, 100000);
  return r == LIGHTWS_ERR_WOULDBLOCK;
}

/* ---- server steps ------------------------------------------------------- */

static void server_steps(int onebyte, int eagain) {
  static struct fio f;
  struct lightws_io io = {fio_read, fio_writev, &f, NULL, NULL, NULL, NULL};
  struct lightws_stream s;
  struct lightws_request req;
  struct lightws_response resp;
  struct lightws_header hdr[16];
  uint8_t rb[1024];
  struct lightws_chunk c;
  int r, spins = 0;
  ssize_t n;
  memset(&f, 0, sizeof f);
  f.onebyte = onebyte;
  f.eagain = eagain;
  fio_in(&f, REQ, sizeof REQ - 1);
  fio_frame(&f, 1, 1, "pipelined"); /* in the same packet as the request */
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, -1, rb, sizeof rb, 0), 0);
  lightws_stream_set_io(&s, &io);
  memset(&req, 0, sizeof req);
  req.headers = hdr;
  req.max_headers = 16;
  while (retry(r = lightws_server_read_request(&s, &req, 0), &spins)) {
    ck_assert_int_eq(lightws_stream_want(&s) & LIGHTWS_WANT_READ,
                     LIGHTWS_WANT_READ);
  }
  ck_assert_int_eq(r, 0);
  ck_assert_uint_eq(req.path_len, 5);
  ck_assert(memcmp(req.path, "/chat", 5) == 0);
  ck_assert_uint_eq(req.num_headers, 6);
  /* reads before the handshake is done are misuse */
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_INVALID);
  while (retry(r = lightws_server_accept(&s, "chat", NULL, 0), &spins)) {
  }
  ck_assert_int_eq(r, 0);
  /* the 101 on the wire, checked as a client would */
  memset(&resp, 0, sizeof resp);
  n = lightws_handshake_parse_response(&resp, f.out, f.out_len, 0,
                                       "dGhlIHNhbXBsZSBub25jZQ==",
                                       "chat, superchat");
  ck_assert_int_eq(n, (ssize_t)f.out_len);
  ck_assert_int_eq(resp.status, 101);
  ck_assert_uint_eq(resp.protocol_len, 4);
  /* the pipelined frame is delivered, not dropped */
  {
    uint8_t m[32];
    ck_assert_uint_eq(recv_message(&s, m, sizeof m), 9);
    ck_assert(memcmp(m, "pipelined", 9) == 0);
  }
}

START_TEST(test_server_steps_resume_and_keep_pipelined_frame) {
  server_steps(0, 0);
  server_steps(1, 0);
  server_steps(0, 1);
  server_steps(1, 1);
}
END_TEST

/* ---- client steps ------------------------------------------------------- */

/* Runs the client steps against a response built for the key found in the
 * request it wrote; `protocol` is what the server picks. */
static int client_steps(int onebyte, int eagain, const char *protocol,
                        int bad_accept, struct lightws_stream *s,
                        uint8_t *rb, size_t rsize, struct fio *f) {
  struct lightws_io *io = calloc(1, sizeof *io); /* hooks NULL */
  struct lightws_client_options opt;
  struct lightws_request req;
  struct lightws_response resp;
  char key[LIGHTWS_KEY_LEN + 1];
  uint8_t out[1024];
  ssize_t n;
  int r, spins = 0;
  memset(f, 0, sizeof *f);
  f->onebyte = onebyte;
  f->eagain = eagain;
  io->read = fio_read;
  io->writev = fio_writev;
  io->ctx = f;
  memset(&opt, 0, sizeof opt);
  opt.protocols = "chat, superchat";
  opt.origin = "http://example.com";
  ck_assert_int_eq(lightws_stream_init(s, LIGHTWS_CLIENT, -1, rb, rsize, 0),
                   0);
  lightws_stream_set_io(s, io);
  r = lightws_client_start(s, "server.example.com", "/chat", &opt);
  ck_assert(r == 0 || r == LIGHTWS_ERR_WOULDBLOCK);
  /* step until the whole request is out (nothing to read yet) */
  memset(&req, 0, sizeof req);
  while (lightws_handshake_parse_request(&req, f->out, f->out_len, 0) ==
         LIGHTWS_ERR_INCOMPLETE) {
    r = lightws_client_handshake(s, NULL);
    ck_assert_int_eq(r, LIGHTWS_ERR_WOULDBLOCK);
    ck_assert_int_lt(++spins, 100000);
  }
  ck_assert_uint_eq(req.key_len, LIGHTWS_KEY_LEN);
  ck_assert_uint_eq(req.protocol_len, 15);
  memcpy(key, req.key, LIGHTWS_KEY_LEN);
  key[LIGHTWS_KEY_LEN] = 0;
  if (bad_accept) key[0] ^= 1;
  n = lightws_handshake_build_response(out, sizeof out, key, LIGHTWS_KEY_LEN,
                                       protocol, NULL, 0);
  ck_assert_int_gt(n, 0);
  fio_in(f, out, (size_t)n);
  fio_frame(f, 0, 2, "first"); /* right after the 101 */
  memset(&resp, 0, sizeof resp);
  while (retry(r = lightws_client_handshake(s, &resp), &spins)) {
  }
  return r;
}

START_TEST(test_client_steps_resume_and_keep_first_frame) {
  int mode;
  for (mode = 0; mode < 4; mode++) {
    static struct fio f;
    struct lightws_stream s;
    uint8_t rb[2048];
    uint8_t m[32];
    ck_assert_int_eq(client_steps(mode & 1, mode >> 1, "superchat", 0, &s,
                                  rb, sizeof rb, &f),
                     0);
    ck_assert_uint_eq(recv_message(&s, m, sizeof m), 5);
    ck_assert(memcmp(m, "first", 5) == 0);
    free((void *)s.io);
  }
}
END_TEST

START_TEST(test_client_rejects_bad_accept_and_protocol) {
  static struct fio f;
  struct lightws_stream s;
  uint8_t rb[2048];
  ck_assert_int_eq(client_steps(0, 0, NULL, 1, &s, rb, sizeof rb, &f),
                   LIGHTWS_ERR_BAD_ACCEPT);
  free((void *)s.io);
  ck_assert_int_eq(client_steps(0, 0, "other", 0, &s, rb, sizeof rb, &f),
                   LIGHTWS_ERR_BAD_PROTOCOL);
  free((void *)s.io);
  ck_assert_int_eq(client_steps(1, 0, NULL, 0, &s, rb, sizeof rb, &f), 0);
  free((void *)s.io);
}
END_TEST

START_TEST(test_client_bad_status) {
  static struct fio f;
  struct lightws_io io = {fio_read, fio_writev, &f, NULL, NULL, NULL, NULL};
  struct lightws_stream s;
  struct lightws_response resp;
  uint8_t rb[1024];
  const char *ans = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
  memset(&f, 0, sizeof f);
  fio_in(&f, ans, strlen(ans));
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_CLIENT, -1, rb, sizeof rb, 0), 0);
  lightws_stream_set_io(&s, &io);
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", NULL), 0);
  memset(&resp, 0, sizeof resp);
  ck_assert_int_eq(lightws_client_handshake(&s, &resp),
                   LIGHTWS_ERR_BAD_STATUS);
  ck_assert_int_eq(resp.status, 403);
  {
    size_t n = 7;
    ck_assert_ptr_nonnull(lightws_client_rejected_body(&s, &n));
    ck_assert_uint_eq(n, 0); /* Content-Length 0: nothing after the head */
  }
}
END_TEST

/* The body that came with a rejecting head (one byte at a time too). */
START_TEST(test_client_rejected_body) {
  int onebyte;
  for (onebyte = 0; onebyte < 2; onebyte++) {
    static struct fio f;
    struct lightws_io io = {fio_read, fio_writev, &f, NULL, NULL, NULL, NULL};
    struct lightws_stream s;
    struct lightws_response resp;
    uint8_t rb[1024];
    const char *ans = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 9\r\n\r\n"
                      "no token\n";
    const uint8_t *body;
    size_t n = 0;
    int r;
    memset(&f, 0, sizeof f);
    f.onebyte = onebyte;
    fio_in(&f, ans, strlen(ans));
    ck_assert_int_eq(
        lightws_stream_init(&s, LIGHTWS_CLIENT, -1, rb, sizeof rb, 0), 0);
    lightws_stream_set_io(&s, &io);
    /* before the handshake fails there is no body */
    ck_assert_ptr_null(lightws_client_rejected_body(&s, &n));
    ck_assert_uint_eq(n, 0);
    r = lightws_client_start(&s, "h", "/", NULL);
    ck_assert(r == 0 || r == LIGHTWS_ERR_WOULDBLOCK);
    memset(&resp, 0, sizeof resp);
    while ((r = lightws_client_handshake(&s, &resp)) == LIGHTWS_ERR_WOULDBLOCK) {
    }
    ck_assert_int_eq(r, LIGHTWS_ERR_BAD_STATUS);
    ck_assert_int_eq(resp.status, 401);
    ck_assert_int_eq(lightws_stream_error(&s), LIGHTWS_ERR_BAD_STATUS);
    body = lightws_client_rejected_body(&s, &n);
    /* whole reads: all of it came with the head; 1-byte reads: none */
    if (!onebyte) {
      ck_assert_uint_eq(n, 9);
      ck_assert(memcmp(body, "no token\n", 9) == 0);
    } else {
      ck_assert_uint_eq(n, 0);
    }
  }
}
END_TEST

START_TEST(test_server_head_too_large) {
  static struct fio f;
  struct lightws_io io = {fio_read, fio_writev, &f, NULL, NULL, NULL, NULL};
  struct lightws_stream s;
  struct lightws_request req;
  uint8_t rb[256];
  char big[600];
  int r;
  memset(&f, 0, sizeof f);
  memset(big, 'a', sizeof big);
  fio_in(&f, "GET / HTTP/1.1\r\nX-Big: ", 23);
  fio_in(&f, big, sizeof big);
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, -1, rb, sizeof rb, 0), 0);
  lightws_stream_set_io(&s, &io);
  memset(&req, 0, sizeof req);
  r = lightws_server_read_request(&s, &req, 0);
  /* rbuf (256) fills before max_head (8192): the buffer's fault, 431 too */
  ck_assert_int_eq(r, LIGHTWS_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(lightws_server_accept(&s, NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_server_reject(&s, lightws_http_status(r), NULL, 0),
                   0);
  ck_assert(f.out_len > 12 && memcmp(f.out, "HTTP/1.1 431", 12) == 0);
  /* also when max_head is below rbuf */
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, -1, rb, sizeof rb, 0), 0);
  f.in_pos = 0;
  lightws_stream_set_io(&s, &io);
  ck_assert_int_eq(lightws_server_read_request(&s, &req, 64),
                   LIGHTWS_ERR_HEAD_TOO_LARGE);
}
END_TEST

/* ---- blocking wrappers over a socketpair -------------------------------- */

/* Child: connect, send a text, expect its echo, close. Exit code = step. */
static void client_child(int fd, const char *protocols, const char *want) {
  struct lightws_stream s;
  struct lightws_client_options opt;
  struct lightws_response resp;
  uint8_t rb[4096], buf[64];
  struct lightws_chunk c;
  ssize_t n;
  memset(&opt, 0, sizeof opt);
  opt.protocols = protocols;
  if (lightws_connect(&s, fd, rb, sizeof rb, "localhost", "/x", &opt)) _exit(1);
  (void)resp;
  if (lightws_stream_send(&s, 1, "hello", 5, 0) != 5) _exit(2);
  n = lightws_stream_read(&s, buf, sizeof buf, &c);
  if (n != 5 || memcmp(buf, "hello", 5) || !c.message_end) _exit(3);
  if (lightws_stream_close(&s, 1000, NULL, 0)) _exit(4);
  if (lightws_stream_recv(&s, &c) != LIGHTWS_ERR_CLOSED) _exit(5);
  (void)want;
  _exit(0);
}

static void accept_echo(const char *offered, const char *ours,
                        const char *want) {
  int sv[2], st;
  pid_t pid;
  struct lightws_stream s;
  struct lightws_request req;
  struct lightws_server_options so;
  uint8_t rb[4096], buf[64];
  struct lightws_chunk c;
  ssize_t n;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  pid = fork();
  if (pid == 0) {
    close(sv[0]);
    client_child(sv[1], offered, want);
  }
  close(sv[1]);
  memset(&req, 0, sizeof req);
  memset(&so, 0, sizeof so);
  so.protocols = ours;
  ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, &req, &so), 0);
  n = lightws_stream_read(&s, buf, sizeof buf, &c);
  ck_assert_int_eq(n, 5);
  ck_assert_int_eq(c.opcode, LIGHTWS_OPCODE_TEXT);
  ck_assert_int_eq(lightws_stream_send(&s, 1, buf, 5, 0), 5);
  ck_assert_int_eq(lightws_stream_recv(&s, &c), LIGHTWS_ERR_CLOSED);
  ck_assert_int_eq(lightws_stream_closing(&s), 2);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_int_eq(WEXITSTATUS(st), 0);
  close(sv[0]);
}

START_TEST(test_connect_accept_socketpair) {
  accept_echo(NULL, NULL, NULL);
  accept_echo("superchat, chat", "chat, superchat", "superchat");
  accept_echo("a, b", "c", NULL);
}
END_TEST

/* The subprotocol lightws_accept picks: the first the client offered that
 * the server lists (§4.2.2), checked on the wire. */
START_TEST(test_accept_picks_first_offered_protocol) {
  int sv[2];
  struct lightws_stream s;
  struct lightws_request req;
  uint8_t rb[4096];
  char resp[1024];
  ssize_t n;
  const char *r =
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x, beta, alpha\r\n"
      "\r\n";
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(write(sv[1], r, strlen(r)), (ssize_t)strlen(r));
  struct lightws_server_options so;
  memset(&req, 0, sizeof req);
  memset(&so, 0, sizeof so);
  so.protocols = "alpha, beta";
  ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, &req, &so), 0);
  n = read(sv[1], resp, sizeof resp - 1);
  ck_assert_int_gt(n, 0);
  resp[n] = 0;
  ck_assert_ptr_nonnull(strstr(resp, "\r\nSec-WebSocket-Protocol: beta\r\n"));
  ck_assert_ptr_nonnull(strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  close(sv[0]);
  close(sv[1]);
}
END_TEST

struct bad_req {
  const char *req;
  int err;
  const char *status;
};

static const struct bad_req bad_reqs[] = {
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 8\r\n\r\n",
     LIGHTWS_ERR_BAD_VERSION, "HTTP/1.1 426"},
    {"GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     LIGHTWS_ERR_NO_HOST, "HTTP/1.1 400"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     LIGHTWS_ERR_BAD_KEY, "HTTP/1.1 400"},
    {"POST / HTTP/1.1\r\nHost: h\r\n\r\n", LIGHTWS_ERR_HTTP_METHOD,
     "HTTP/1.1 405"},
};

START_TEST(test_accept_rejects_invalid_request_on_wire) {
  const struct bad_req *b = &bad_reqs[_i];
  int sv[2];
  struct lightws_stream s;
  uint8_t rb[4096];
  char resp[1024];
  ssize_t n;
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(write(sv[1], b->req, strlen(b->req)),
                   (ssize_t)strlen(b->req));
  ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, NULL, NULL),
                   b->err);
  n = read(sv[1], resp, sizeof resp - 1);
  ck_assert_int_gt(n, 12);
  resp[n] = 0;
  ck_assert_msg(memcmp(resp, b->status, 12) == 0, "%s", resp);
  if (b->err == LIGHTWS_ERR_BAD_VERSION)
    ck_assert_ptr_nonnull(strstr(resp, "Sec-WebSocket-Version: 13\r\n"));
  /* the stream is unusable after a rejection */
  ck_assert_int_eq(lightws_stream_send(&s, 2, "x", 1, 0), LIGHTWS_ERR_INVALID);
  close(sv[0]);
  close(sv[1]);
}
END_TEST

START_TEST(test_accept_eof_before_request) {
  int sv[2];
  struct lightws_stream s;
  uint8_t rb[512];
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ck_assert_int_eq(write(sv[1], "GET / HT", 8), 8);
  close(sv[1]);
  ck_assert_int_eq(lightws_accept(&s, sv[0], rb, sizeof rb, NULL, NULL),
                   LIGHTWS_ERR_EOF);
  close(sv[0]);
}
END_TEST

START_TEST(test_endpoint_misuse) {
  struct lightws_stream s;
  uint8_t rb[512];
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_CLIENT, -1, rb, sizeof rb, 0), 0);
  ck_assert_int_eq(lightws_server_accept(&s, NULL, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_server_read_request(&s, NULL, 0),
                   LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_client_handshake(&s, NULL), LIGHTWS_ERR_INVALID);
  ck_assert_int_eq(lightws_client_start(&s, "h\r\nX: y", "/", NULL),
                   LIGHTWS_ERR_HEADER_INJECTION);
  ck_assert_int_eq(
      lightws_stream_init(&s, LIGHTWS_SERVER, -1, rb, sizeof rb, 0), 0);
  ck_assert_int_eq(lightws_client_start(&s, "h", "/", NULL),
                   LIGHTWS_ERR_INVALID);
}
END_TEST

Suite *endpoint_suite(void) {
  Suite *s = suite_create("endpoint");
  TCase *t = tcase_create("steps");
  tcase_add_test(t, test_server_steps_resume_and_keep_pipelined_frame);
  tcase_add_test(t, test_client_steps_resume_and_keep_first_frame);
  tcase_add_test(t, test_client_rejects_bad_accept_and_protocol);
  tcase_add_test(t, test_client_bad_status);
  tcase_add_test(t, test_client_rejected_body);
  tcase_add_test(t, test_server_head_too_large);
  tcase_add_test(t, test_endpoint_misuse);
  suite_add_tcase(s, t);
  t = tcase_create("blocking");
  tcase_add_test(t, test_connect_accept_socketpair);
  tcase_add_test(t, test_accept_picks_first_offered_protocol);
  tcase_add_loop_test(t, test_accept_rejects_invalid_request_on_wire, 0,
                      (int)(sizeof bad_reqs / sizeof bad_reqs[0]));
  tcase_add_test(t, test_accept_eof_before_request);
  suite_add_tcase(s, t);
  return s;
}
