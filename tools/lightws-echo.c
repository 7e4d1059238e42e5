/* SPDX-License-Identifier: MIT */
/* lightws-echo: an epoll echo server (and a blocking echo client) over lightws. */
#include "common.h"
#include "lightws.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (16 * 1024)
#define CHUNKS_PER_TURN 64   /* fairness: chunks echoed before yielding */
#define DRAIN_SECONDS 2      /* how long to wait for the peer's FIN */

static const char *prog = "lightws-echo";
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
}

static void install_signals(void)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
  /* No SA_RESTART: epoll_wait/read must return EINTR so we can exit. */
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: %s --port N [--host ADDR] [--quiet] [--max-message N]\n"
          "       %s [--quiet] --client ws://HOST:PORT/PATH?QUERY\n"
          "Server: echoes every message with its opcode (port 0 picks a free\n"
          "port and prints \"listening on HOST:PORT\"). Client: connects and\n"
          "echoes every message the server sends until the server closes.\n",
          prog, prog);
}

/* ------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------ */

enum conn_state {
  ST_HS_READ,      /* reading the upgrade request */
  ST_HS_ACCEPT,    /* sending 101 */
  ST_HS_REJECT,    /* sending an HTTP error */
  ST_OPEN,         /* echoing */
  ST_CLOSE_FLUSH,  /* our close frame (reply or error close) is pending */
  ST_DRAIN         /* FIN sent; reading until the peer's FIN (§7.1.1) */
};

struct conn {
  struct lightws_stream s;
  int fd;
  enum conn_state state;
  uint32_t events;           /* registered epoll events */
  /* The echo being written: a view into rbuf, valid until the next
   * recv, which we only call once the echo is out. */
  const uint8_t *pend;
  size_t pend_len;
  int pend_op;
  unsigned pend_flags;
  int pend_active;
  int reject_status;
  int err;                   /* error that ended the connection, 0 if none */
  unsigned close_code;
  unsigned long long msgs, bytes;
  time_t deadline;           /* ST_DRAIN */
  struct conn *prev, *next;  /* drain list or ready list */
  int listed;                /* 0 none, 1 ready, 2 drain */
  char peer[64];
  char path[256];
  char reason[LIGHTWS_CONTROL_MAX * 2]; /* peer's close reason, printable */
  uint8_t rbuf[];            /* RBUF_SIZE bytes */
};

struct server {
  int ep, lfd;
  int quiet;
  uint32_t max_message;
  struct conn *ready;        /* conns with input left in rbuf */
  struct conn *drain;        /* conns in ST_DRAIN, for the deadline */
  unsigned long nconns;
  int paused;                /* listener off: out of descriptors */
};

/* Turns accepting on or off. Out of descriptors, a level-triggered
 * listener would wake us forever; we pause it until a connection ends (or
 * a second passes). */
static void listener_pause(struct server *sv, int pause)
{
  struct epoll_event e;

  if (sv->paused == pause) return;
  memset(&e, 0, sizeof(e));
  e.events = pause ? 0 : EPOLLIN;
  e.data.ptr = NULL;
  epoll_ctl(sv->ep, EPOLL_CTL_MOD, sv->lfd, &e);
  sv->paused = pause;
}

static void list_add(struct conn **head, struct conn *c, int which)
{
  c->prev = NULL;
  c->next = *head;
  if (*head) (*head)->prev = c;
  *head = c;
  c->listed = which;
}

static void list_del(struct server *sv, struct conn *c)
{
  struct conn **head = c->listed == 1 ? &sv->ready : &sv->drain;
  if (!c->listed) return;
  if (c->prev) c->prev->next = c->next;
  else *head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  c->listed = 0;
}

static void set_events(struct server *sv, struct conn *c, uint32_t ev)
{
  struct epoll_event e;

  if (ev == c->events) return;
  memset(&e, 0, sizeof(e));
  e.events = ev;
  e.data.ptr = c;
  if (epoll_ctl(sv->ep, EPOLL_CTL_MOD, c->fd, &e) == 0) c->events = ev;
}

/* Registers for what the last WOULDBLOCK of the stream waits for. */
static void wait_want(struct server *sv, struct conn *c)
{
  int want = lightws_stream_want(&c->s);
  uint32_t ev = 0;

  if (want & LIGHTWS_WANT_READ) ev |= EPOLLIN;
  if (want & LIGHTWS_WANT_WRITE) ev |= EPOLLOUT;
  if (!ev) ev = EPOLLIN;
  set_events(sv, c, ev);
}

/* Copies the peer's close reason for a log line: controls become '?'
 * (the reason is UTF-8, §5.5.1, but may hold a newline). */
static void copy_reason(const struct lightws_stream *s, char *out, size_t size)
{
  size_t len, i, n = 0;
  const char *r = lightws_stream_close_reason(s, &len);

  for (i = 0; r && i < len && n + 1 < size; i++)
    out[n++] = (unsigned char)r[i] < 0x20 || r[i] == 0x7f ? '?' : r[i];
  out[n] = '\0';
}

static void conn_free(struct server *sv, struct conn *c)
{
  list_del(sv, c);
  epoll_ctl(sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  sv->nconns--;
  listener_pause(sv, 0);
  if (!sv->quiet) {
    if (c->reject_status)
      fprintf(stderr, "%s: %s %s rejected %d (%s)\n", prog, c->peer,
              c->path[0] ? c->path : "-", c->reject_status,
              lightws_errname(c->err));
    else
      fprintf(stderr, "%s: %s %s messages %llu bytes %llu close %u%s%s%s%s%s%s\n",
              prog, c->peer, c->path[0] ? c->path : "-", c->msgs, c->bytes,
              c->close_code, c->err ? " (" : "",
              c->err ? lightws_errname(c->err) : "", c->err ? ")" : "",
              c->reason[0] ? " '" : "", c->reason, c->reason[0] ? "'" : "");
  }
  free(c);
}

/* Sends our FIN and waits (bounded) for the peer's, so that unread input
 * does not turn our close into a reset that destroys the close frame. */
static void start_drain(struct server *sv, struct conn *c)
{
  shutdown(c->fd, SHUT_WR);
  c->state = ST_DRAIN;
  c->deadline = time(NULL) + DRAIN_SECONDS;
  list_del(sv, c);
  list_add(&sv->drain, c, 2);
  set_events(sv, c, EPOLLIN);
}

static void drain(struct server *sv, struct conn *c)
{
  for (;;) {
    ssize_t n = read(c->fd, c->rbuf, RBUF_SIZE);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    conn_free(sv, c);
    return;
  }
}

/* The stream ended (close handshake, error, EOF): send what is pending. */
static void finish(struct server *sv, struct conn *c)
{
  int r = lightws_stream_flush(&c->s);

  if (r == LIGHTWS_ERR_WOULDBLOCK) {
    c->state = ST_CLOSE_FLUSH;
    set_events(sv, c, EPOLLOUT);
    return;
  }
  start_drain(sv, c);
}

static void echo_run(struct server *sv, struct conn *c)
{
  int turns = 0;

  /* A pending auto-pong goes out first (it may be what we woke for). */
  if (!c->pend_active) {
    int r = lightws_stream_flush(&c->s);
    if (r < 0 && r != LIGHTWS_ERR_WOULDBLOCK && r != LIGHTWS_ERR_BUSY) {
      c->err = r;
      c->close_code = 1006;
      conn_free(sv, c);
      return;
    }
  }
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n;

    if (c->pend_active) {
      /* Echo the chunk as a fragment of the same opcode: a message
       * streams through without being buffered (§5.4 allows any
       * fragmentation by an endpoint). */
      n = lightws_stream_send(&c->s, c->pend_op, c->pend, c->pend_len,
                              c->pend_flags);
      if (n == LIGHTWS_ERR_WOULDBLOCK) {
        wait_want(sv, c);
        return;
      }
      if (n < 0) {
        c->err = (int)n;
        c->close_code = lightws_stream_close_code(&c->s);
        if (!c->close_code) c->close_code = 1006;
        finish(sv, c);
        return;
      }
      c->pend += n;
      c->pend_len -= (size_t)n;
      if (c->pend_len > 0) continue;
      /* Done (an empty frame cut inside its head counts as sent: the
       * library finishes it first on the next send or flush). A pong that
       * waited behind this frame goes out now, between frames (§5.4). */
      (void)lightws_stream_flush(&c->s);
      c->pend_active = 0;
    }
    if (++turns > CHUNKS_PER_TURN) {
      /* Let other connections run; come back without waiting for the
       * socket, since input may already sit in rbuf. */
      if (!c->listed) list_add(&sv->ready, c, 1);
      return;
    }
    n = lightws_stream_recv(&c->s, &ch);
    if (n >= 0) {
      c->bytes += (unsigned long long)n;
      if (ch.message_end) c->msgs++;
      if (n == 0 && !ch.message_end) continue; /* empty fragment: nothing to say */
      c->pend = ch.data;
      c->pend_len = (size_t)n;
      c->pend_op = ch.opcode;
      c->pend_flags = ch.message_end ? 0 : LIGHTWS_SEND_FRAGMENT;
      c->pend_active = 1;
      continue;
    }
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (n == LIGHTWS_ERR_CLOSED) {
      c->close_code = lightws_stream_close_code(&c->s);
      copy_reason(&c->s, c->reason, sizeof(c->reason));
    } else if (n == LIGHTWS_ERR_EOF || n == LIGHTWS_ERR_SYSTEM) {
      c->close_code = 1006;
      if (n == LIGHTWS_ERR_SYSTEM) c->err = (int)n;
      conn_free(sv, c);
      return;
    } else {
      /* Protocol error: the library sent (or queued) lightws_close_code(n). */
      c->err = (int)n;
      c->close_code = (unsigned)lightws_close_code((int)n);
    }
    finish(sv, c);
    return;
  }
}

static void conn_run(struct server *sv, struct conn *c)
{
  struct lightws_header hdrs[LIGHTWS_HANDSHAKE_HEADERS_MAX];
  struct lightws_request req;
  int r;

  switch (c->state) {
  case ST_HS_READ:
    memset(&req, 0, sizeof(req));
    req.headers = hdrs;
    req.max_headers = LIGHTWS_HANDSHAKE_HEADERS_MAX;
    r = lightws_server_read_request(&c->s, &req, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (req.path && req.path_len) {
      size_t n = req.path_len < sizeof(c->path) - 1 ? req.path_len
                                                    : sizeof(c->path) - 1;
      memcpy(c->path, req.path, n);
      c->path[n] = '\0';
    }
    if (r == LIGHTWS_ERR_EOF || r == LIGHTWS_ERR_SYSTEM) {
      c->err = r;
      c->close_code = 1006;
      conn_free(sv, c);
      return;
    }
    if (r < 0) {
      /* §4.2.1: an invalid request gets an HTTP error, not a 101. */
      c->err = r;
      c->reject_status = lightws_http_status(r);
      if (!c->reject_status) c->reject_status = 400;
      c->state = ST_HS_REJECT;
      conn_run(sv, c);
      return;
    }
    if (sv->max_message)
      lightws_stream_set_limits(&c->s, sv->max_message < LIGHTWS_DEFAULT_MAX_FRAME
                                           ? sv->max_message : 0,
                                sv->max_message);
    c->state = ST_HS_ACCEPT;
    /* fall through */
  case ST_HS_ACCEPT:
    r = lightws_server_accept(&c->s, NULL, NULL, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (r < 0) {
      c->err = r;
      c->close_code = 1006;
      conn_free(sv, c);
      return;
    }
    c->state = ST_OPEN;
    /* The first frames may have arrived with the request: run at once. */
    echo_run(sv, c);
    return;
  case ST_HS_REJECT:
    r = lightws_server_reject(&c->s, c->reject_status, NULL, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (r < 0) {
      conn_free(sv, c);
      return;
    }
    start_drain(sv, c);
    return;
  case ST_OPEN:
    echo_run(sv, c);
    return;
  case ST_CLOSE_FLUSH:
    finish(sv, c);
    return;
  case ST_DRAIN:
    drain(sv, c);
    return;
  }
}

static void accept_all(struct server *sv)
{
  for (;;) {
    struct epoll_event e;
    struct conn *c;
    int fd = accept(sv->lfd, NULL, NULL), r;

    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (!sv->quiet)
        fprintf(stderr, "%s: accept: %s (%lu connections)\n", prog,
                strerror(errno), sv->nconns);
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM)
        listener_pause(sv, 1);
      return;
    }
    c = calloc(1, sizeof(*c) + RBUF_SIZE);
    if (!c || tool_set_nonblock(fd, 1) < 0) {
      fprintf(stderr, "%s: out of memory\n", prog);
      free(c);
      close(fd);
      continue;
    }
    tool_set_nodelay(fd);
    c->fd = fd;
    tool_peer_name(fd, c->peer, sizeof(c->peer));
    r = lightws_stream_init(&c->s, LIGHTWS_SERVER, fd, c->rbuf, RBUF_SIZE, 0);
    if (r < 0) {
      fprintf(stderr, "%s: stream init: %s\n", prog, lightws_strerror(r));
      free(c);
      close(fd);
      continue;
    }
    memset(&e, 0, sizeof(e));
    e.events = EPOLLIN;
    e.data.ptr = c;
    if (epoll_ctl(sv->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
      fprintf(stderr, "%s: epoll_ctl: %s\n", prog, strerror(errno));
      free(c);
      close(fd);
      continue;
    }
    c->events = EPOLLIN;
    sv->nconns++;
    c->state = ST_HS_READ;
  }
}

static int run_server(const char *host, int port, int quiet,
                      uint32_t max_message)
{
  struct server sv;
  struct epoll_event evs[256], e;
  int bound;

  memset(&sv, 0, sizeof(sv));
  sv.quiet = quiet;
  sv.max_message = max_message;
  sv.lfd = tool_tcp_listen(prog, host, port, &bound);
  if (sv.lfd < 0) return 1;
  tool_set_nonblock(sv.lfd, 1);
  sv.ep = epoll_create1(0);
  if (sv.ep < 0) {
    fprintf(stderr, "%s: epoll_create1: %s\n", prog, strerror(errno));
    return 1;
  }
  memset(&e, 0, sizeof(e));
  e.events = EPOLLIN;
  e.data.ptr = NULL; /* NULL marks the listener */
  epoll_ctl(sv.ep, EPOLL_CTL_ADD, sv.lfd, &e);
  if (strchr(host, ':')) printf("listening on [%s]:%d\n", host, bound);
  else printf("listening on %s:%d\n", host, bound);
  fflush(stdout);

  while (!stop_flag) {
    int i, n, timeout = sv.ready ? 0 : (sv.drain || sv.paused ? 500 : -1);

    n = epoll_wait(sv.ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: epoll_wait: %s\n", prog, strerror(errno));
      return 1;
    }
    for (i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        accept_all(&sv);
        continue;
      }
      /* A conn on the ready list is run from there (it may be freed by
       * this run, so it must not stay listed). */
      if (c->listed == 1) list_del(&sv, c);
      conn_run(&sv, c);
    }
    /* Connections that yielded with input left in rbuf. Events of this
     * round were handled above, so nothing here has been freed. */
    {
      struct conn *batch = sv.ready, *c;
      sv.ready = NULL;
      for (c = batch; c; c = batch) {
        batch = c->next;
        if (batch) batch->prev = NULL;
        c->listed = 0;
        c->prev = c->next = NULL;
        conn_run(&sv, c);
      }
    }
    if (sv.paused && n == 0) listener_pause(&sv, 0); /* retry accepting */
    if (sv.drain) {
      time_t now = time(NULL);
      struct conn *c = sv.drain, *next;
      for (; c; c = next) {
        next = c->next;
        if (now >= c->deadline) conn_free(&sv, c);
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------
 * Client: connect and echo until the server closes (how a conformance
 * suite, e.g. a fuzzing server, drives the library in the client role)
 * ------------------------------------------------------------------------ */

/* Ends the client side: our close (the reply, or the error close the
 * library queued) goes out, then we wait, bounded, for the server to close
 * TCP first (§7.1.1) so the close frame is never lost to a reset. */
static void client_end(struct lightws_stream *s, int fd, uint8_t *buf,
                       size_t size)
{
  int polls = 0;

  while (lightws_stream_flush(s) == LIGHTWS_ERR_WOULDBLOCK && polls++ < 5) {
    struct pollfd pf = { fd, POLLOUT, 0 };
    if (poll(&pf, 1, 1000) <= 0) break;
  }
  for (;;) {
    struct pollfd pf = { fd, POLLIN, 0 };
    ssize_t n;
    if (poll(&pf, 1, 2000) <= 0) break;
    n = read(fd, buf, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  close(fd);
}

static int run_client(const char *url, int quiet)
{
  static uint8_t rbuf[64 * 1024];
  struct lightws_stream s;
  struct tool_url u;
  char err[128];
  int fd, r;

  if (tool_parse_url(url, &u, err, sizeof(err)) < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, url, err);
    return 2;
  }
  fd = tool_tcp_connect(prog, u.host, u.port);
  if (fd < 0) return 1;
  r = lightws_connect(&s, fd, rbuf, sizeof(rbuf), u.authority, u.path, NULL);
  if (r < 0) {
    fprintf(stderr, "%s: handshake: %s (%s)\n", prog, lightws_errname(r),
            lightws_strerror(r));
    close(fd);
    return 1;
  }
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_recv(&s, &ch);
    const uint8_t *p;
    size_t left;

    if (n == LIGHTWS_ERR_CLOSED) break;
    if (n < 0) {
      /* EOF, a system error, or the server broke the protocol (then the
       * library has queued the close with lightws_close_code(n)). */
      fprintf(stderr, "%s: %s (%s)\n", prog, lightws_errname((int)n),
              lightws_strerror((int)n));
      if (n == LIGHTWS_ERR_EOF) close(fd);
      else client_end(&s, fd, rbuf, sizeof(rbuf));
      return 1;
    }
    if (n == 0 && !ch.message_end) continue;
    p = ch.data;
    left = (size_t)n;
    do {
      ssize_t w = lightws_stream_send(&s, ch.opcode, p, left,
                                      ch.message_end ? 0 : LIGHTWS_SEND_FRAGMENT);
      if (w < 0) {
        fprintf(stderr, "%s: send: %s (%s)\n", prog, lightws_errname((int)w),
                lightws_strerror((int)w));
        close(fd);
        return 1;
      }
      p += w;
      left -= (size_t)w;
    } while (left > 0);
  }
  if (!quiet) {
    size_t rl;
    const char *reason = lightws_stream_close_reason(&s, &rl);
    fprintf(stderr, "%s: server closed with %u '%.*s'\n", prog,
            lightws_stream_close_code(&s), (int)rl, reason);
  }
  client_end(&s, fd, rbuf, sizeof(rbuf));
  return 0;
}

int main(int argc, char **argv)
{
  const char *host = "127.0.0.1", *client = NULL;
  long long port = -1, maxmsg = 0;
  int quiet = 0, i, ok;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = 1;
    } else if (!strcmp(a, "--host") && v) {
      host = v;
      i++;
    } else if (!strcmp(a, "--port") && v) {
      port = tool_parse_num(v, 0, 65535, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad port '%s'\n", prog, v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--max-message") && v) {
      maxmsg = tool_parse_num(v, 1, 0xffffffffLL, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad --max-message '%s'\n", prog, v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--client") && v) {
      client = v;
      i++;
    } else {
      fprintf(stderr, "%s: unknown or incomplete option '%s'\n", prog, a);
      usage(stderr);
      return 2;
    }
  }
  install_signals();
  if (client) return run_client(client, quiet);
  if (port < 0) {
    fprintf(stderr, "%s: --port is required\n", prog);
    usage(stderr);
    return 2;
  }
  return run_server(host, (int)port, quiet, (uint32_t)maxmsg);
}
