/* SPDX-License-Identifier: MIT */
/*
 * wslay_echo: an epoll echo server over Debian's libwslay (the wslay_event
 * API), written for the many-connection benchmark (bench/many). wslay has
 * no opening handshake: it is done here (SHA-1 and base64 from OpenSSL's
 * libcrypto). One wslay_event context per connection; wslay reassembles
 * fragmented messages and answers pings and closes itself.
 *   wslay_echo --port N [--host ADDR]   (port 0: a free one)
 * Prints "listening on HOST:PORT" once it accepts connections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define HS_MAX 4096
#define MAX_MSG (64u << 20)

struct conn {
  int fd;
  int open;                  /* handshake done */
  uint32_t events;
  wslay_event_context_ptr ctx;
  char *hs;                  /* request, then the 101 response, until open */
  size_t hs_len, out_off, out_len;
};

static volatile sig_atomic_t stop_flag;
static int ep;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user)
{
  struct conn *c = user;
  ssize_t n;
  (void)flags;
  do n = recv(c->fd, buf, len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    wslay_event_set_error(ctx, errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
  struct conn *c = user;
  ssize_t n;
  int f = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
  do n = send(c->fd, data, len, f);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    wslay_event_set_error(ctx, errno == EAGAIN ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return n;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
  (void)user;
  if (!wslay_is_ctrl_frame(arg->opcode)) {
    struct wslay_event_msg m;
    m.opcode = arg->opcode;
    m.msg = arg->msg;
    m.msg_length = arg->msg_length;
    wslay_event_queue_msg(ctx, &m); /* copies the message */
  }
}

static const struct wslay_event_callbacks callbacks = {
  recv_cb, send_cb, NULL, NULL, NULL, NULL, on_msg
};

static void conn_free(struct conn *c)
{
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->ctx) wslay_event_context_free(c->ctx);
  free(c->hs);
  free(c);
}

static void set_events(struct conn *c, uint32_t ev)
{
  struct epoll_event e;
  if (ev == c->events) return;
  memset(&e, 0, sizeof(e));
  e.events = ev;
  e.data.ptr = c;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

/* Value of header `name` in the request head (NUL-terminated), or NULL. */
static char *header(char *head, const char *name, size_t *len)
{
  size_t nl = strlen(name);
  char *l = strstr(head, "\r\n");
  while (l && l[2] != '\r' && l[2]) {
    char *s = l + 2, *eol = strstr(s, "\r\n"), *e;
    if (!eol) return NULL;
    if (strncasecmp(s, name, nl) == 0 && s[nl] == ':') {
      s += nl + 1;
      while (*s == ' ' || *s == '\t') s++;
      e = eol;
      while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
      *len = (size_t)(e - s);
      return s;
    }
    l = eol;
  }
  return NULL;
}

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Reads the upgrade request; builds the 101 (or 400) response. -1: drop. */
static int hs_read(struct conn *c)
{
  ssize_t n;
  char *end, *key, buf[128];
  size_t klen;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen;
  char accept[64];

  do n = recv(c->fd, c->hs + c->hs_len, HS_MAX - 1 - c->hs_len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? 0 : -1;
  if (n == 0) return -1;
  c->hs_len += (size_t)n;
  c->hs[c->hs_len] = 0;
  end = strstr(c->hs, "\r\n\r\n");
  if (!end) return c->hs_len >= HS_MAX - 1 ? -1 : 0;
  if (end + 4 != c->hs + c->hs_len) return -1; /* the client waits for the 101 */
  key = header(c->hs, "Sec-WebSocket-Key", &klen);
  if (!key || klen == 0 || klen + sizeof(GUID) > sizeof(buf) || strncmp(c->hs, "GET ", 4) != 0) {
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!send(c->fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL);
    return -1;
  }
  memcpy(buf, key, klen);
  memcpy(buf + klen, GUID, sizeof(GUID) - 1);
  if (!EVP_Digest(buf, klen + sizeof(GUID) - 1, md, &mdlen, EVP_sha1(), NULL)) return -1;
  EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
  c->out_len = (size_t)snprintf(c->hs, HS_MAX,
                                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                                accept);
  c->out_off = 0;
  return 1;
}

/* Sends the rest of the 101; 1 when it is out. */
static int hs_write(struct conn *c)
{
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->hs + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    c->out_off += (size_t)n;
  }
  return 1;
}

static int conn_event(struct conn *c, uint32_t ev)
{
  if (!c->open) {
    int r;
    if (c->out_len == 0) {
      if (!(ev & (EPOLLIN | EPOLLERR | EPOLLHUP))) return 0;
      r = hs_read(c);
      if (r <= 0) return r;
    }
    r = hs_write(c);
    if (r < 0) return -1;
    if (r == 0) {
      set_events(c, EPOLLOUT);
      return 0;
    }
    free(c->hs);
    c->hs = NULL;
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0) return -1;
    wslay_event_config_set_max_recv_msg_length(c->ctx, MAX_MSG);
    c->open = 1;
    set_events(c, EPOLLIN);
    return 0;
  }
  if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && wslay_event_recv(c->ctx) != 0) return -1;
  if (wslay_event_want_write(c->ctx) && wslay_event_send(c->ctx) != 0) return -1;
  if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx)) return -1;
  set_events(c, (wslay_event_want_read(c->ctx) ? EPOLLIN : 0) |
                    (wslay_event_want_write(c->ctx) ? EPOLLOUT : 0));
  return 0;
}

int main(int argc, char **argv)
{
  const char *host = "127.0.0.1", *port = NULL;
  struct addrinfo hints, *ai;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  struct epoll_event e, evs[256];
  struct sigaction sa;
  struct rlimit rl;
  int lfd, one = 1, i;
  char hbuf[64], pbuf[16];

  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = argv[i + 1];
    else break;
  }
  if (!port || i != argc) {
    fprintf(stderr, "usage: wslay_echo --port N [--host ADDR]\n");
    return 2;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host, port, &hints, &ai) != 0) {
    fprintf(stderr, "wslay_echo: cannot resolve %s\n", host);
    return 1;
  }
  lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (lfd < 0 || bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 1024) < 0) {
    perror("wslay_echo: listen");
    return 1;
  }
  freeaddrinfo(ai);
  getsockname(lfd, (struct sockaddr *)&ss, &sl);
  getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
              NI_NUMERICHOST | NI_NUMERICSERV);
  ep = epoll_create1(EPOLL_CLOEXEC);
  memset(&e, 0, sizeof(e));
  e.events = EPOLLIN;
  e.data.ptr = NULL;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
  printf("listening on %s:%s\n", hbuf, pbuf);
  fflush(stdout);

  while (!stop_flag) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) {
      perror("wslay_echo: epoll_wait");
      return 1;
    }
    for (i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          c = calloc(1, sizeof(*c));
          if (c) c->hs = malloc(HS_MAX);
          if (!c || !c->hs) {
            free(c);
            close(fd);
            continue;
          }
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          c->fd = fd;
          c->events = EPOLLIN;
          memset(&e, 0, sizeof(e));
          e.events = EPOLLIN;
          e.data.ptr = c;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) conn_free(c);
        }
        continue;
      }
      if (conn_event(c, evs[i].events) < 0) conn_free(c);
    }
  }
  close(lfd);
  return 0;
}
