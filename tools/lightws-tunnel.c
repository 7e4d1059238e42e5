/* SPDX-License-Identifier: MIT */
/* lightws-tunnel: TCP over websocket (ws/wss) and back, an epoll relay in the kaminari mould. */
#define _GNU_SOURCE /* accept4: nonblocking sockets without a second syscall */
#include "common.h"
#include "lightws.h"
#include "tunnel_opts.h"
#ifdef LIGHTWS_TOOLS_TLS
#include "lightws_tls.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strncasecmp */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Memory per tunnelled connection: the struct below with a 1 KiB receive
 * buffer for frame heads and control frames (payload is read straight into
 * the relay buffers, lightws_stream_read), about 2 KiB in all. Relay
 * buffers come from a pool only while bytes are in flight, so an idle
 * connection holds none (docs/tunnel.md, "Memory"). */
#define RBUF_SIZE 1024
#define BUF_SIZE (32 * 1024)   /* one relay buffer: a TCP read, one frame */
#define TURN_READS 16          /* reads per connection before yielding */
#define CLOSE_MS 2000          /* core close timeout (our close to the end) */
#define DRAIN_MS 2000          /* how long we wait for the peer's FIN */
#define HANDSHAKE_MS 10000     /* default --handshake-timeout */
#define PING_MS 30000          /* default --ping-interval (and timeout) */

static const char *prog = "lightws-tunnel";
static volatile sig_atomic_t stop_flag;
static struct tunnel_config cfg;

/* ------------------------------------------------------------------------
 * Relay buffers: a free list, grown on demand, never shrunk. A buffer is
 * taken for a read and given back as soon as its bytes are all written,
 * so most of the time the same hot buffer serves every connection.
 * ------------------------------------------------------------------------ */
struct buf {
  struct buf *next;
  uint8_t data[BUF_SIZE];
};

static struct buf *buf_free_list;
static unsigned long buf_count, buf_high;

static struct buf *buf_get(void)
{
  struct buf *b = buf_free_list;
  if (b) {
    buf_free_list = b->next;
    return b;
  }
  b = malloc(sizeof(*b));
  if (b && ++buf_count > buf_high) buf_high = buf_count;
  return b;
}

static void buf_put(struct buf *b)
{
  if (!b) return;
  b->next = buf_free_list;
  buf_free_list = b;
}

/* ------------------------------------------------------------------------
 * One tunnelled connection: a TCP socket (client: the accepted local
 * connection; server: the connection to the target) and a websocket
 * (client: to the remote; server: the accepted one).
 * ------------------------------------------------------------------------ */
enum tun_state {
  T_CONNECT,    /* a TCP connect in progress (client: remote; server: target) */
  T_PROXY,      /* client, --proxy: CONNECT out, its response in */
  T_TLS,        /* wss: TLS handshake */
  T_WS_HS,      /* client: request out, response in; server: reading the request */
  T_WS_ACCEPT,  /* server: sending 101 */
  T_WS_REJECT,  /* server: sending an HTTP error */
  T_OPEN,       /* relaying */
  T_CLOSING,    /* close handshake (§7.1.2) after both directions ended */
  T_DRAIN       /* our FIN sent on the websocket's TCP; waiting for the peer's */
};

/* A websocket operation that would block: what it waits for (a set of
 * LIGHTWS_WANT_*), and the event counts of the socket when it blocked.
 * Sockets are edge-triggered; an operation is retried once an event of the
 * direction it waits for came since (TLS may wait for the other
 * direction: lightws_tls.h). */
struct wop {
  uint32_t in_gen, out_gen;
  uint8_t want, blocked;
};

struct tun {
  struct lightws_stream s;
  int wfd, tfd;
  uint8_t st;
  uint8_t s_init;            /* s initialized */
  uint8_t ws_open;           /* handshake done: frames may flow */
  uint8_t t_in, t_out;       /* TCP readiness (cleared on EAGAIN) */
  uint8_t t_eof;             /* TCP sent its FIN: read side done */
  uint8_t t_shut;            /* we sent FIN on the TCP socket */
  uint8_t fin_sent;          /* end-of-data marker sent on the websocket */
  uint8_t w_eof;             /* marker (or the peer's close) received */
  uint8_t peer_closed;       /* the peer's close frame arrived */
  uint8_t listed, dead;
  uint32_t w_in_gen, w_out_gen;
  struct wop wr, ww;         /* websocket read side / write side */
  struct buf *up, *down;     /* TCP -> ws and ws -> TCP bytes in flight */
  uint32_t up_off, up_len, down_off, down_len;
  uint64_t msg_bytes;        /* bytes of the websocket message being read */
  unsigned long long n_up, n_down;
  uint64_t t_start, t_data, until;
  int reject_status;
  uint16_t px_len, px_done;  /* T_PROXY: request length / bytes sent or read */
  struct tool_timer timer;   /* in the heap while it has a deadline */
  struct tun *prev, *next;   /* all tunnels */
  struct tun *rnext;         /* ready list */
  struct tun *dnext;         /* dead list */
  struct lightws_tls *tls;   /* wss: the TLS layer (NULL: plain) */
  char peer[64];
  char why[200];
  uint8_t rbuf[RBUF_SIZE];
};

static int ep = -1, lfd = -1;
static struct sockaddr_storage peer_addr;
static socklen_t peer_addrlen;
static char peer_name[300];          /* for messages: host:port */
static char proxy_name[300];         /* --proxy host:port */
static struct tun *all, *ready, *dead;
static unsigned long ntuns;
/* One timer for all tunnels: a binary min-heap keyed by each tunnel's
 * next deadline (lightws_stream_deadline, its connect/TLS/drain deadline,
 * the idle deadline). After every event the key is compared with the
 * deadline (no syscall) and moved only when it changed; epoll_wait sleeps
 * until the top key. */
static struct tool_heap heap;      /* tools/common.h */
static struct lightws_timeouts stream_to;
static uint8_t scratch[16384];       /* bytes read only to be discarded */
#ifdef LIGHTWS_TOOLS_TLS
static struct ssl_ctx_st *tls_ctx;
#endif

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
  sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

static void set_why(struct tun *t, const char *fmt, ...)
{
  va_list ap;
  if (t->why[0]) return; /* the first cause is the one to tell */
  va_start(ap, fmt);
  vsnprintf(t->why, sizeof(t->why), fmt, ap);
  va_end(ap);
}

static const char *tcp_side(void)
{
  return cfg.mode == TUNNEL_CLIENT ? "local" : "target";
}

/* The name and message of stream error `err` (tool_err: over TLS the
 * layer's named error, and OpenSSL's reason as the message when it has
 * one; a system error's message is errno's). */
static const char *ws_err(const struct tun *t, int err, const char **msg)
{
  const char *name, *reason;
  int saved = errno;
  err = tool_err(t->tls, err, &name, msg, &reason);
  if (err == LIGHTWS_ERR_SYSTEM) *msg = strerror(saved);
  else if (reason[0]) *msg = reason;
  return name;
}

static int ws_want(const struct tun *t)
{
#ifdef LIGHTWS_TOOLS_TLS
  if (t->tls && !t->s_init) return lightws_tls_want(t->tls, NULL);
  if (t->tls && t->st == T_TLS) return lightws_tls_want(t->tls, NULL);
#endif
  return lightws_stream_want(&t->s);
}

static int wop_ready(const struct tun *t, const struct wop *o)
{
  if (!o->blocked) return 1;
  if ((o->want & LIGHTWS_WANT_READ) && t->w_in_gen != o->in_gen) return 1;
  if ((o->want & LIGHTWS_WANT_WRITE) && t->w_out_gen != o->out_gen) return 1;
  if (!o->want && (t->w_in_gen != o->in_gen || t->w_out_gen != o->out_gen))
    return 1;
  return 0;
}

static void wop_block(struct tun *t, struct wop *o, int want)
{
  o->blocked = 1;
  o->want = (uint8_t)want;
  o->in_gen = t->w_in_gen;
  o->out_gen = t->w_out_gen;
}

/* ------------------------------------------------------------------------
 * End of a tunnel
 * ------------------------------------------------------------------------ */

/* Closes a TCP socket with a reset (SO_LINGER 0): an application must
 * never mistake a tunnel that broke for a byte stream that ended. */
static void close_reset(int fd)
{
  struct linger lg;
  lg.l_onoff = 1;
  lg.l_linger = 0;
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
}

static void tun_free(struct tun *t)
{
  if (t->dead) return;
  t->dead = 1;
  if (!cfg.quiet)
    fprintf(stderr, "%s: %s -> %s %s: tcp>ws %llu ws>tcp %llu bytes, %llu ms: %s\n",
            prog, t->peer, cfg.mode == TUNNEL_CLIENT ? "remote" : "target",
            peer_name, t->n_up, t->n_down, (unsigned long long)(lightws_now() - t->t_start),
            t->why[0] ? t->why : "done");
#ifdef LIGHTWS_TOOLS_TLS
  if (t->tls) {
    lightws_tls_free(t->tls);
    free(t->tls);
    t->tls = NULL;
  }
#endif
  if (t->wfd >= 0) close(t->wfd);
  if (t->tfd >= 0) close(t->tfd);
  t->wfd = t->tfd = -1;
  buf_put(t->up);
  buf_put(t->down);
  t->up = t->down = NULL;
  tool_heap_remove(&heap, &t->timer);
  if (t->prev) t->prev->next = t->next;
  else all = t->next;
  if (t->next) t->next->prev = t->prev;
  ntuns--;
  t->dnext = dead;
  dead = t;
}

static void free_dead(void)
{
  while (dead) {
    struct tun *t = dead;
    dead = t->dnext;
    free(t);
  }
}

static void drain(struct tun *t);

/* Sends our FIN on the websocket's TCP and waits (bounded) for the
 * peer's, so that unread input does not turn our close into a reset that
 * destroys the close frame (§7.1.1: the server closes first; the client
 * waits for it). */
static void start_drain(struct tun *t)
{
  if (t->tfd >= 0) {
    close(t->tfd);
    t->tfd = -1;
  }
  shutdown(t->wfd, SHUT_WR);
  t->st = T_DRAIN;
  t->until = lightws_now() + DRAIN_MS;
  /* the peer's FIN may be here already (its edge consumed): look now */
  drain(t);
}

/* The tunnel broke (`why` says how): the TCP side is reset; on an open
 * websocket a close with `code` goes out (unless one is queued or the
 * transport failed), then we drain. */
static void tun_abort(struct tun *t, unsigned code, int ws_dead)
{
  if (t->tfd >= 0) {
    close_reset(t->tfd);
    t->tfd = -1;
  }
  if (!t->ws_open || ws_dead) {
    tun_free(t);
    return;
  }
  if (code && !lightws_stream_error(&t->s) && !t->peer_closed) {
    char reason[124];
    snprintf(reason, sizeof(reason), "%.100s", t->why);
    (void)lightws_stream_close(&t->s, code, reason, strlen(reason));
  }
  (void)lightws_stream_flush(&t->s);
  start_drain(t);
}

/* A stream call failed with `err` (not WOULDBLOCK). */
static void ws_failed(struct tun *t, int err, const char *what)
{
  if (err == LIGHTWS_ERR_EOF) {
    set_why(t, "remote %s: connection closed without close frame (1006)", what);
    tun_abort(t, 0, 1);
  } else {
    const char *msg, *name = ws_err(t, err, &msg);
    if (err == LIGHTWS_ERR_SYSTEM) {
      set_why(t, "remote %s: %s (%s)", what, name, msg);
      tun_abort(t, 0, 1);
    } else {
      /* a protocol error or a timeout: the library queued the close
       * frame with its code (lightws_close_code) */
      set_why(t, "%s: %s (%s), close %d", what, name, msg, lightws_close_code(err));
      tun_abort(t, 0, !t->ws_open);
    }
  }
}

/* ------------------------------------------------------------------------
 * The relay
 * ------------------------------------------------------------------------ */

/* The peer's close arrived (and the library answered it). 1000 (or no
 * code) ends the stream: what came before it is delivered, then our FIN.
 * Any other code means its end broke (a reset, a timeout, an error):
 * the TCP side is reset as for our own failures. Returns 1 if the tunnel
 * was ended here. */
static int peer_close_arrived(struct tun *t)
{
  char reason[128];
  unsigned code = lightws_stream_close_code(&t->s);
  t->peer_closed = 1;
  t->w_eof = 1;
  tool_close_reason(&t->s, reason, sizeof(reason));
  if (code != LIGHTWS_CLOSE_NORMAL && code != LIGHTWS_CLOSE_NO_STATUS) {
    set_why(t, "remote closed %u%s%s%s", code, reason[0] ? " '" : "", reason,
            reason[0] ? "'" : "");
    tun_abort(t, 0, 0);
    return 1;
  }
  if (t->fin_sent)
    set_why(t, "done (close %u)", lightws_stream_close_code(&t->s));
  else
    set_why(t, "remote closed %u%s%s%s%s", lightws_stream_close_code(&t->s),
            reason[0] ? " '" : "", reason, reason[0] ? "'" : "",
            t->up_len || !t->t_eof ? " before our end of data" : "");
  return 0;
}

/* Moves bytes both ways until both would block or the turn is used up.
 * Returns 1 when the turn ended with work left (run again soon). */
static int relay(struct tun *t)
{
  int reads = 0;

  for (;;) {
    int progress = 0;

    /* ---- TCP -> websocket ---- */
    if (t->up_len && wop_ready(t, &t->ww) && !t->peer_closed) {
      /* A frame cut short continues with its first unsent byte
       * (lightws_stream_send); the client masks in place, in the buffer
       * the bytes were read into (§5.3), so the payload is never copied. */
      ssize_t n = lightws_stream_send(&t->s, LIGHTWS_OPCODE_BINARY,
                                      t->up->data + t->up_off, t->up_len,
                                      LIGHTWS_SEND_MASK_IN_PLACE);
      if (n == LIGHTWS_ERR_WOULDBLOCK) {
        wop_block(t, &t->ww, ws_want(t));
      } else if (n == LIGHTWS_ERR_CLOSED) {
        if (peer_close_arrived(t)) return 0;
      } else if (n < 0) {
        ws_failed(t, (int)n, "send");
        return 0;
      } else {
        t->ww.blocked = 0;
        t->up_off += (uint32_t)n;
        t->up_len -= (uint32_t)n;
        t->n_up += (unsigned long long)n;
        if (n) t->t_data = lightws_now();
        if (!t->up_len) {
          buf_put(t->up);
          t->up = NULL;
        }
        progress = 1;
      }
    } else if (!t->up_len && t->t_eof && !t->fin_sent && !t->peer_closed &&
               wop_ready(t, &t->ww)) {
      /* Our end of data: an empty text message (docs/tunnel.md,
       * "Half-close"). The data frames of the tunnel are binary, so this
       * frame cannot be taken for bytes; a cut head counts as sent and
       * the flush below finishes it. */
      ssize_t n = lightws_stream_send(&t->s, LIGHTWS_OPCODE_TEXT, "", 0, 0);
      if (n == LIGHTWS_ERR_WOULDBLOCK) {
        wop_block(t, &t->ww, ws_want(t));
      } else if (n == LIGHTWS_ERR_CLOSED) {
        if (peer_close_arrived(t)) return 0;
      } else if (n < 0) {
        ws_failed(t, (int)n, "send");
        return 0;
      } else {
        t->fin_sent = 1;
        progress = 1;
      }
    } else if (!t->up_len && !t->t_eof && t->t_in && !t->peer_closed &&
               reads < TURN_READS) {
      ssize_t n;
      if (!t->up) t->up = buf_get();
      if (!t->up) {
        set_why(t, "out of memory");
        tun_abort(t, LIGHTWS_CLOSE_INTERNAL_ERROR, 0);
        return 0;
      }
      n = recv(t->tfd, t->up->data, BUF_SIZE, 0);
      reads++;
      if (n > 0) {
        t->up_off = 0;
        t->up_len = (uint32_t)n;
        progress = 1;
      } else if (n == 0) {
        t->t_eof = 1;
        progress = 1;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->t_in = 0;
      } else if (errno != EINTR) {
        set_why(t, "%s read: %s", tcp_side(), strerror(errno));
        tun_abort(t, LIGHTWS_CLOSE_GOING_AWAY, 0);
        return 0;
      }
      if (!t->up_len) {
        buf_put(t->up);
        t->up = NULL;
      }
    }

    /* ---- websocket -> TCP ---- */
    if (t->down_len) {
      if (t->t_out) {
        ssize_t n = send(t->tfd, t->down->data + t->down_off, t->down_len,
                         MSG_NOSIGNAL);
        if (n > 0) {
          t->down_off += (uint32_t)n;
          t->down_len -= (uint32_t)n;
          t->n_down += (unsigned long long)n;
          t->t_data = lightws_now();
          if (!t->down_len) {
            buf_put(t->down);
            t->down = NULL;
          }
          progress = 1;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          t->t_out = 0;
        } else if (n < 0 && errno != EINTR) {
          set_why(t, "%s write: %s", tcp_side(), strerror(errno));
          tun_abort(t, LIGHTWS_CLOSE_GOING_AWAY, 0);
          return 0;
        }
      }
    } else if (t->w_eof) {
      if (!t->t_shut) {
        /* the peer's end of data, after its last byte: our FIN */
        shutdown(t->tfd, SHUT_WR);
        t->t_shut = 1;
        progress = 1;
      }
    } else if ((wop_ready(t, &t->wr) || lightws_stream_buffered(&t->s)) &&
               reads < TURN_READS) {
      struct lightws_chunk ch;
      ssize_t n;
      if (!t->down) t->down = buf_get();
      if (!t->down) {
        set_why(t, "out of memory");
        tun_abort(t, LIGHTWS_CLOSE_INTERNAL_ERROR, 0);
        return 0;
      }
      /* Large payloads are read straight into the buffer we then write
       * to TCP (rbuf only holds heads and what came with them), and the
       * server unmasks there in place. The buffer fills before it is
       * written: the rest of a frame (its start came with the head
       * through rbuf), and further frames already in rbuf, so one TCP
       * write carries what one read(2) of the websocket brought. */
      t->down_off = 0;
      t->down_len = 0;
      for (;;) {
        n = lightws_stream_read(&t->s, t->down->data + t->down_len,
                                BUF_SIZE - t->down_len, &ch);
        reads++;
        if (n >= 0) {
          t->wr.blocked = 0;
          progress = 1;
          if (n == 0 && ch.message_end && ch.opcode == LIGHTWS_OPCODE_TEXT &&
              t->msg_bytes == 0)
            t->w_eof = 1; /* the peer's end-of-data marker */
          t->msg_bytes = ch.message_end ? 0 : t->msg_bytes + (uint64_t)n;
          t->down_len += (uint32_t)n;
          if (t->w_eof || BUF_SIZE - t->down_len < 1024) break;
          if (ch.frame_end && !lightws_stream_buffered(&t->s)) break;
          continue;
        }
        if (n == LIGHTWS_ERR_WOULDBLOCK) {
          wop_block(t, &t->wr, ws_want(t));
        } else if (n == LIGHTWS_ERR_CLOSED) {
          if (peer_close_arrived(t)) {
            if (!t->dead) {
              buf_put(t->down); /* its bytes go nowhere now */
              t->down = NULL;
            }
            return 0;
          }
          progress = 1;
        } else if (!t->down_len) {
          buf_put(t->down);
          t->down = NULL;
          ws_failed(t, (int)n, "read");
          return 0;
        }
        /* an error after some bytes: they go out first, the error comes
         * back on the next read (the stream keeps it) */
        break;
      }
      if (!t->down_len) {
        buf_put(t->down);
        t->down = NULL;
      }
    }

    /* a pending control frame (pong, keepalive ping) or the rest of the
     * marker's head, between frames only */
    if (!t->up_len && !t->peer_closed && wop_ready(t, &t->ww)) {
      int r = lightws_stream_flush(&t->s);
      if (r == LIGHTWS_ERR_WOULDBLOCK) wop_block(t, &t->ww, ws_want(t));
      else if (r < 0 && r != LIGHTWS_ERR_BUSY) {
        ws_failed(t, r, "send");
        return 0;
      }
    }

    /* ---- ends ---- */
    if (t->peer_closed && !t->down_len && t->t_shut) {
      /* The peer closed: all it sent is delivered, our FIN is out. Bytes
       * of ours not yet sent cannot go any more (§5.5.1). */
      if (t->tfd >= 0) {
        close(t->tfd);
        t->tfd = -1;
      }
      t->st = T_CLOSING;
      return 0;
    }
    if (t->fin_sent && t->w_eof && !t->up_len && !t->down_len && t->t_shut) {
      /* Both directions are done, every byte delivered: now the close
       * handshake (§7.1.2), 1000. */
      (void)lightws_stream_close(&t->s, LIGHTWS_CLOSE_NORMAL, NULL, 0);
      if (t->tfd >= 0) {
        close(t->tfd);
        t->tfd = -1;
      }
      t->st = T_CLOSING;
      return 0;
    }
    if (!progress) return 0;
    if (reads >= TURN_READS) return 1;
  }
}

/* T_CLOSING: our close (or the echo of the peer's) goes out, the peer's
 * arrives, then close_notify over TLS and the drain. */
static void closing(struct tun *t)
{
  for (;;) {
    int r = lightws_stream_flush(&t->s);
    ssize_t n;
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wop_block(t, &t->ww, ws_want(t));
      return;
    }
    if (r < 0) {
      tun_free(t);
      return;
    }
    if (lightws_stream_closing(&t->s) == 2) {
#ifdef LIGHTWS_TOOLS_TLS
      if (t->tls) {
        r = lightws_tls_shutdown(t->tls);
        if (r == LIGHTWS_ERR_WOULDBLOCK) {
          wop_block(t, &t->ww, lightws_tls_want(t->tls, NULL));
          return;
        }
      }
#endif
      set_why(t, "done (close %u)", lightws_stream_close_code(&t->s));
      start_drain(t);
      return;
    }
    if (!wop_ready(t, &t->wr) && !lightws_stream_buffered(&t->s)) return;
    n = lightws_stream_read(&t->s, scratch, sizeof(scratch), NULL);
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      wop_block(t, &t->wr, ws_want(t));
      return;
    }
    t->wr.blocked = 0;
    if (n == LIGHTWS_ERR_CLOSED) continue;
    if (n < 0) {
      if (n == LIGHTWS_ERR_EOF) set_why(t, "done (no close frame back)");
      else {
        const char *msg;
        set_why(t, "closing: %s", ws_err(t, (int)n, &msg));
      }
      tun_free(t);
      return;
    }
    /* data after both ends of data: not ours to deliver any more */
  }
}

static void drain(struct tun *t)
{
  for (;;) {
    ssize_t n = recv(t->wfd, scratch, sizeof(scratch), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    tun_free(t);
    return;
  }
}

/* ------------------------------------------------------------------------
 * Setting up: connects, TLS, the opening handshake
 * ------------------------------------------------------------------------ */

static int epoll_add(int fd, struct tun *t, int tcp_side_fd)
{
  struct epoll_event e;
  memset(&e, 0, sizeof(e));
  /* Edge-triggered, both directions, registered once: no epoll_ctl per
   * event; readiness is remembered (t_in/t_out, w_*_gen). */
  e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  e.data.u64 = (uint64_t)(uintptr_t)t | (uint64_t)(tcp_side_fd ? 1 : 0);
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

static int connect_peer(struct tun *t, int *fdp)
{
  int fd = socket(peer_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  tool_set_nodelay(fd);
  if (connect(fd, (struct sockaddr *)&peer_addr, peer_addrlen) < 0 &&
      errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  if (epoll_add(fd, t, cfg.mode == TUNNEL_SERVER) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *fdp = fd;
  return 0;
}

static int stream_setup(struct tun *t, enum lightws_role role)
{
  int r = lightws_stream_init(&t->s, role, t->wfd, t->rbuf, RBUF_SIZE, 0);
  if (r < 0) return r;
  t->s_init = 1;
  if (role == LIGHTWS_CLIENT) (void)lightws_stream_set_mask_mode(&t->s, cfg.mask);
#ifdef LIGHTWS_TOOLS_TLS
  if (t->tls) lightws_stream_set_io(&t->s, &t->tls->io);
#endif
  /* the handshake timeout counts from the accept: connects and the TLS
   * handshake included */
  lightws_stream_set_timeouts(&t->s, &stream_to, t->t_start);
  return 0;
}

static void ws_opened(struct tun *t)
{
  t->ws_open = 1;
  t->st = T_OPEN;
  t->wr.blocked = t->ww.blocked = 0;
  t->t_data = lightws_now();
}

static void tun_run(struct tun *t);

/* Server: the request was good; the target is connected or refused. */
static void server_reject(struct tun *t, int status)
{
  t->reject_status = status;
  t->st = T_WS_REJECT;
  t->wr.blocked = t->ww.blocked = 0;
}

static void tun_step(struct tun *t);
static void proxy_step(struct tun *t);

/* Client: the stream over the connected (and TLS) socket, and the
 * upgrade request on its way. 0, or -1 when the tunnel ended. */
static int client_ws_start(struct tun *t)
{
  int r = stream_setup(t, LIGHTWS_CLIENT);
  if (r < 0) {
    set_why(t, "stream init: %s", lightws_errname(r));
    tun_abort(t, 0, 1);
    return -1;
  }
  t->st = T_WS_HS;
  r = lightws_client_start(&t->s, cfg.http_host, cfg.path, NULL);
  if (r < 0 && r != LIGHTWS_ERR_WOULDBLOCK) {
    ws_failed(t, r, "handshake");
    return -1;
  }
  return 0;
}

/* Client: the TCP connection to the remote (or through the proxy) is up:
 * TLS for wss, then the upgrade request. */
static void client_connected(struct tun *t)
{
#ifdef LIGHTWS_TOOLS_TLS
  if (cfg.tls) {
    int r;
    t->tls = calloc(1, sizeof(*t->tls));
    r = t->tls ? lightws_tls_init(t->tls, tls_ctx, t->wfd, LIGHTWS_CLIENT,
                                  cfg.sni[0] ? cfg.sni : cfg.peer_host)
               : LIGHTWS_ERR_TLS_CTX;
    if (r < 0) {
      set_why(t, "TLS init: %s", lightws_tls_errname(r));
      tun_abort(t, 0, 1);
      return;
    }
    t->st = T_TLS;
    t->ww.blocked = 0;
    tun_step(t);
    return;
  }
#endif
  if (client_ws_start(t) == 0) tun_step(t);
}

/* Client, --proxy: asks the proxy for a tunnel to the remote (RFC 7231
 * §4.3.6, CONNECT host:port). The request is built and the response read
 * in rbuf, which the stream does not use yet. */
static void proxy_start(struct tun *t)
{
  int n = snprintf((char *)t->rbuf, RBUF_SIZE,
                   "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", peer_name, peer_name);
  t->px_len = (uint16_t)n;
  t->px_done = 0;
  t->st = T_PROXY;
  t->ww.blocked = t->wr.blocked = 0;
  proxy_step(t);
}

static void proxy_step(struct tun *t)
{
  for (;;) {
    ssize_t n;
    if (t->px_len) { /* sending the request */
      if (!wop_ready(t, &t->ww)) return;
      n = send(t->wfd, t->rbuf + t->px_done, t->px_len - t->px_done, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wop_block(t, &t->ww, LIGHTWS_WANT_WRITE);
        return;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        set_why(t, "proxy %s: send: %s", proxy_name, strerror(errno));
        tun_abort(t, 0, 1);
        return;
      }
      t->px_done = (uint16_t)(t->px_done + n);
      if (t->px_done == t->px_len) t->px_len = t->px_done = 0;
      continue;
    }
    if (!wop_ready(t, &t->wr)) return;
    n = recv(t->wfd, t->rbuf + t->px_done, RBUF_SIZE - 1 - t->px_done, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wop_block(t, &t->wr, LIGHTWS_WANT_READ);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      set_why(t, "proxy %s: %s before its response", proxy_name,
              n == 0 ? "connection closed" : strerror(errno));
      tun_abort(t, 0, 1);
      return;
    }
    t->px_done = (uint16_t)(t->px_done + n);
    t->rbuf[t->px_done] = '\0';
    {
      char *end = strstr((char *)t->rbuf, "\r\n\r\n");
      int status = 0;
      if (!end) {
        if (t->px_done >= RBUF_SIZE - 1) {
          set_why(t, "proxy %s: response head over %d bytes", proxy_name, RBUF_SIZE - 1);
          tun_abort(t, 0, 1);
          return;
        }
        continue;
      }
      if (sscanf((char *)t->rbuf, "HTTP/1.%*1[01] %3d", &status) != 1 || status < 100) {
        set_why(t, "proxy %s: not an HTTP response", proxy_name);
        tun_abort(t, 0, 1);
        return;
      }
      if (status / 100 != 2) {
        char *eol = strstr((char *)t->rbuf, "\r\n");
        *eol = '\0';
        set_why(t, "proxy %s refused CONNECT %s: %.80s", proxy_name, peer_name,
                (char *)t->rbuf);
        tun_abort(t, 0, 1);
        return;
      }
      /* The remote speaks only after our ClientHello or request, so
       * nothing may follow the head (RFC 7231 §4.3.6: after 2xx the
       * connection is the tunnel). */
      if ((size_t)(end + 4 - (char *)t->rbuf) != t->px_done) {
        set_why(t, "proxy %s: bytes after its 2xx response", proxy_name);
        tun_abort(t, 0, 1);
        return;
      }
      t->ww.blocked = t->wr.blocked = 0;
      client_connected(t);
      return;
    }
  }
}

static void tun_step(struct tun *t)
{
  int r;

  switch (t->st) {
  case T_CONNECT: {
    int err = 0;
    socklen_t el = sizeof(err);
    int fd = cfg.mode == TUNNEL_CLIENT ? t->wfd : t->tfd;
    if (cfg.mode == TUNNEL_CLIENT ? !wop_ready(t, &t->ww) : !t->t_out) return;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
    if (err == 0) {
      /* connected? (an event may come before the connect ends) */
      struct sockaddr_storage ss;
      socklen_t sl = sizeof(ss);
      if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        if (cfg.mode == TUNNEL_CLIENT) wop_block(t, &t->ww, LIGHTWS_WANT_WRITE);
        else t->t_out = 0;
        return;
      }
    }
    if (err) {
      if (cfg.mode == TUNNEL_CLIENT) {
        if (cfg.proxy_port)
          set_why(t, "proxy %s: connect: %s", proxy_name, strerror(err));
        else
          set_why(t, "remote %s: connect: %s", peer_name, strerror(err));
        tun_abort(t, 0, 1);
      } else {
        /* the client learns why from the status: 502 Bad Gateway
         * (RFC 7231 §6.6.3) */
        set_why(t, "target %s: connect: %s (HTTP 502 sent)", peer_name,
                strerror(err));
        close(t->tfd);
        t->tfd = -1;
        server_reject(t, 502);
        tun_step(t);
      }
      return;
    }
    if (cfg.mode == TUNNEL_SERVER) {
      t->st = T_WS_ACCEPT;
      tun_step(t);
      return;
    }
    if (cfg.proxy_port) {
      proxy_start(t);
      return;
    }
    client_connected(t);
    return;
  }
  case T_PROXY:
    proxy_step(t);
    return;
  case T_TLS:
#ifdef LIGHTWS_TOOLS_TLS
    if (!wop_ready(t, &t->ww)) return;
    r = lightws_tls_handshake(t->tls);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wop_block(t, &t->ww, lightws_tls_want(t->tls, NULL));
      return;
    }
    if (r < 0) {
      const char *reason = lightws_tls_reason(t->tls);
      set_why(t, "%s TLS handshake: %s (%s)%s%s",
              cfg.mode == TUNNEL_CLIENT ? "remote" : "client",
              lightws_tls_errname(r),
              r == LIGHTWS_ERR_SYSTEM ? strerror(errno) : lightws_tls_strerror(r),
              reason[0] ? ": " : "", reason);
      tun_abort(t, 0, 1);
      return;
    }
    t->ww.blocked = t->wr.blocked = 0;
    if (cfg.mode == TUNNEL_SERVER) {
      lightws_stream_set_io(&t->s, &t->tls->io);
      lightws_stream_set_timeouts(&t->s, &stream_to, t->t_start);
      t->st = T_WS_HS;
    } else if (client_ws_start(t) < 0) {
      return;
    }
    tun_step(t);
#endif
    return;
  case T_WS_HS:
    if (!wop_ready(t, &t->wr) && !wop_ready(t, &t->ww)) return;
    if (cfg.mode == TUNNEL_CLIENT) {
      struct lightws_response resp;
      memset(&resp, 0, sizeof(resp));
      r = lightws_client_handshake(&t->s, &resp);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        int w = ws_want(t);
        wop_block(t, &t->wr, w);
        wop_block(t, &t->ww, w);
        return;
      }
      if (r == LIGHTWS_ERR_BAD_STATUS) {
        set_why(t, "remote rejected the upgrade: HTTP %d %.*s", resp.status,
                (int)(resp.reason_len > 60 ? 60 : resp.reason_len),
                resp.reason ? resp.reason : "");
        tun_abort(t, 0, 1);
        return;
      }
      if (r < 0) {
        ws_failed(t, r, "handshake");
        return;
      }
      ws_opened(t);
      tun_run(t);
      return;
    } else {
      struct lightws_request req;
      memset(&req, 0, sizeof(req));
      r = lightws_server_read_request(&t->s, &req, 0);
      if (r == LIGHTWS_ERR_WOULDBLOCK) {
        int w = ws_want(t);
        wop_block(t, &t->wr, w);
        wop_block(t, &t->ww, w);
        return;
      }
      if (r == LIGHTWS_ERR_EOF || r == LIGHTWS_ERR_SYSTEM) {
        ws_failed(t, r, "handshake");
        return;
      }
      if (r < 0) {
        int st = lightws_http_status(r);
        set_why(t, "bad upgrade request: %s (HTTP %d sent)", lightws_errname(r),
                st ? st : 400);
        server_reject(t, st ? st : 400);
        tun_step(t);
        return;
      }
      if (cfg.path[0]) {
        /* --path: the request-target's path must match (the query is
         * not compared) */
        size_t plen = strcspn(req.path, "?");
        if (plen > req.path_len) plen = req.path_len;
        if (plen != strlen(cfg.path) || memcmp(req.path, cfg.path, plen)) {
          set_why(t, "path '%.*s' is not %s (HTTP 404 sent)",
                  (int)(req.path_len > 80 ? 80 : req.path_len), req.path,
                  cfg.path);
          server_reject(t, 404);
          tun_step(t);
          return;
        }
      }
      /* Connect to the target before answering, so that a refused
       * target gets a clear 502 instead of a websocket that closes at
       * once. */
      if (connect_peer(t, &t->tfd) < 0) {
        set_why(t, "target %s: connect: %s (HTTP 502 sent)", peer_name,
                strerror(errno));
        server_reject(t, 502);
        tun_step(t);
        return;
      }
      t->st = T_CONNECT;
      tun_step(t);
      return;
    }
  case T_WS_ACCEPT:
    if (!wop_ready(t, &t->ww) && !wop_ready(t, &t->wr)) return;
    r = lightws_server_accept(&t->s, NULL, NULL, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      int w = ws_want(t);
      wop_block(t, &t->wr, w);
      wop_block(t, &t->ww, w);
      return;
    }
    if (r < 0) {
      ws_failed(t, r, "handshake");
      return;
    }
    ws_opened(t);
    tun_run(t);
    return;
  case T_WS_REJECT:
    if (!wop_ready(t, &t->ww) && !wop_ready(t, &t->wr)) return;
    r = lightws_server_reject(&t->s, t->reject_status, NULL, 0);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      int w = ws_want(t);
      wop_block(t, &t->wr, w);
      wop_block(t, &t->ww, w);
      return;
    }
    if (r < 0) {
      tun_free(t);
      return;
    }
    start_drain(t);
    return;
  case T_OPEN:
  case T_CLOSING:
  case T_DRAIN:
    tun_run(t);
    return;
  }
}

static void ready_add(struct tun *t)
{
  if (t->listed) return;
  t->listed = 1;
  t->rnext = ready;
  ready = t;
}

static struct tun *timer_tun(struct tool_timer *t)
{
  return (struct tun *)(void *)((char *)t - offsetof(struct tun, timer));
}

static uint64_t tun_deadline(const struct tun *t)
{
  uint64_t d = LIGHTWS_NO_DEADLINE, s;
  if (t->st == T_DRAIN) return t->until;
  if (!t->s_init || t->st == T_TLS) {
    d = t->until;
  } else {
    s = lightws_stream_deadline(&t->s);
    if (s < d) d = s;
  }
  if (t->st == T_OPEN && cfg.idle_ms && t->t_data + cfg.idle_ms < d)
    d = t->t_data + cfg.idle_ms;
  return d;
}

/* After an event or a tick on `t`: its heap key follows its deadline;
 * `floor` keeps a key that is still due after a tick out of this turn. */
static void note_deadline(struct tun *t, uint64_t floor)
{
  uint64_t d;
  if (t->dead) return;
  d = tun_deadline(t);
  if (d < floor) d = floor;
  if (d != t->timer.key && tool_heap_place(&heap, &t->timer, d) < 0) {
    set_why(t, "out of memory (timer heap)");
    tun_abort(t, LIGHTWS_CLOSE_INTERNAL_ERROR, 0);
  }
}

static void tun_run(struct tun *t)
{
  switch (t->st) {
  case T_OPEN:
    if (relay(t)) ready_add(t);
    if (!t->dead && t->st == T_CLOSING) closing(t);
    break;
  case T_CLOSING:
    closing(t);
    break;
  case T_DRAIN:
    drain(t);
    break;
  default:
    tun_step(t);
    break;
  }
}

/* The timer reached `t` at `now`. */
static void tun_timer(struct tun *t, uint64_t now)
{
  int r;

  if (t->st == T_DRAIN) {
    if (now >= t->until) tun_free(t);
    return;
  }
  if (!t->s_init || t->st == T_TLS) {
    if (now >= t->until) {
      set_why(t, "%s: no connection within %.3g s (HANDSHAKE_TIMEOUT)",
              cfg.mode == TUNNEL_CLIENT ? "remote" : "client",
              cfg.handshake_ms / 1000.0);
      tun_abort(t, 0, 1);
    }
    return;
  }
  if (t->st == T_OPEN && cfg.idle_ms && now >= t->t_data + cfg.idle_ms) {
    set_why(t, "idle timeout: no data for %.3g s", cfg.idle_ms / 1000.0);
    tun_abort(t, LIGHTWS_CLOSE_GOING_AWAY, 0);
    return;
  }
  r = lightws_stream_tick(&t->s, now);
  if (r == LIGHTWS_ERR_HANDSHAKE_TIMEOUT && cfg.mode == TUNNEL_SERVER &&
      t->st == T_CONNECT) {
    /* The target did not answer in time: the client still gets a status
     * (504 Gateway Timeout, RFC 7231 §6.6.5), best effort, written past
     * the failed stream as lightws-echo writes its 408. */
    static const char resp504[] = "HTTP/1.1 504 Gateway Timeout\r\n"
                                  "Connection: close\r\nContent-Length: 0\r\n\r\n";
    struct iovec iov;
    iov.iov_base = (void *)resp504;
    iov.iov_len = sizeof(resp504) - 1;
#ifdef LIGHTWS_TOOLS_TLS
    if (t->tls) {
      (void)t->tls->io.writev(t->tls->io.ctx, &iov, 1);
      (void)lightws_tls_flush(t->tls);
    } else
#endif
    {
      ssize_t n = writev(t->wfd, &iov, 1);
      (void)n;
    }
    set_why(t, "target %s: connect: no answer within %.3g s (HTTP 504 sent)",
            peer_name, cfg.handshake_ms / 1000.0);
    tun_abort(t, 0, 1);
    return;
  }
  if (r < 0) {
    ws_failed(t, r, t->ws_open ? "timer" : "handshake");
    return;
  }
  /* a keepalive ping may wait in the control slot: send it */
  t->ww.blocked = 0;
  tun_run(t);
}

static void run_timers(void)
{
  uint64_t now = lightws_now();
  struct tool_timer *top;

  while ((top = tool_heap_top(&heap)) && top->key <= now) {
    struct tun *t = timer_tun(top);
    tun_timer(t, now);
    note_deadline(t, now + 1); /* never spin on a deadline that stays due */
  }
}

static struct tun *tun_new(int fd)
{
  struct tun *t = calloc(1, sizeof(*t));
  if (!t) return NULL;
  t->wfd = t->tfd = -1;
  t->t_start = lightws_now();
  t->until = cfg.handshake_ms ? t->t_start + cfg.handshake_ms : LIGHTWS_NO_DEADLINE;
  tool_timer_init(&t->timer);
  tool_peer_name(fd, t->peer, sizeof(t->peer));
  t->next = all;
  if (all) all->prev = t;
  all = t;
  ntuns++;
  return t;
}

/* Out of descriptors, a level-triggered listener would wake us forever:
 * it sleeps until a tunnel ends or LISTEN_PAUSE_MS pass. */
#define LISTEN_PAUSE_MS 200
static uint64_t listen_paused_until;

static void listener_pause(int pause)
{
  struct epoll_event e;
  if (!!listen_paused_until == pause) return;
  memset(&e, 0, sizeof(e));
  e.events = pause ? 0 : EPOLLIN;
  e.data.u64 = 0;
  epoll_ctl(ep, EPOLL_CTL_MOD, lfd, &e);
  listen_paused_until = pause ? lightws_now() + LISTEN_PAUSE_MS : 0;
}

static void accept_all(void)
{
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), r;
    struct tun *t;

    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK && !cfg.quiet)
        fprintf(stderr, "%s: accept: %s (%lu connections)\n", prog,
                strerror(errno), ntuns);
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM)
        listener_pause(1);
      return;
    }
    tool_set_nodelay(fd);
    t = tun_new(fd);
    if (!t) {
      fprintf(stderr, "%s: out of memory\n", prog);
      close(fd);
      continue;
    }
    if (cfg.mode == TUNNEL_CLIENT) {
      /* The local connection waits (unread, in the kernel) until the
       * websocket is open. */
      t->tfd = fd;
      if (epoll_add(fd, t, 1) < 0 || connect_peer(t, &t->wfd) < 0) {
        set_why(t, "remote %s: connect: %s", peer_name, strerror(errno));
        tun_abort(t, 0, 1);
        continue;
      }
      t->st = T_CONNECT;
    } else {
      t->wfd = fd;
      if (epoll_add(fd, t, 0) < 0) {
        set_why(t, "epoll: %s", strerror(errno));
        tun_free(t);
        continue;
      }
      r = lightws_stream_init(&t->s, LIGHTWS_SERVER, fd, t->rbuf, RBUF_SIZE, 0);
      if (r < 0) {
        set_why(t, "stream init: %s", lightws_errname(r));
        tun_free(t);
        continue;
      }
      t->s_init = 1;
      t->st = T_WS_HS;
#ifdef LIGHTWS_TOOLS_TLS
      if (cfg.tls) {
        t->tls = calloc(1, sizeof(*t->tls));
        r = t->tls ? lightws_tls_init(t->tls, tls_ctx, fd, LIGHTWS_SERVER, NULL)
                   : LIGHTWS_ERR_TLS_CTX;
        if (r < 0) {
          set_why(t, "TLS init: %s", lightws_tls_errname(r));
          tun_free(t);
          continue;
        }
        /* the stream's timers start after the TLS handshake (set_io
         * first); until then `until` bounds the TLS step */
        t->st = T_TLS;
      }
#endif
      if (t->st == T_WS_HS)
        lightws_stream_set_timeouts(&t->s, &stream_to, t->t_start);
    }
    tun_step(t);
    note_deadline(t, 0);
  }
}

/* ------------------------------------------------------------------------
 * Sockets, the loop, workers
 * ------------------------------------------------------------------------ */

static int resolve(const char *host, int port, struct sockaddr_storage *ss,
                   socklen_t *len, int passive)
{
  struct addrinfo hints, *res;
  char ps[16];
  int rc;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  snprintf(ps, sizeof(ps), "%d", port);
  rc = getaddrinfo(host, ps, &hints, &res);
  if (rc != 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, host, gai_strerror(rc));
    return -1;
  }
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

/* A listening socket on the --listen address; with `reuseport` every
 * worker binds its own (SO_REUSEPORT: the kernel spreads connections).
 * `listening` 0 only binds (the parent's probe for a free port). */
static int open_listener(int port, int reuseport, int listening, int *bound)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd, one = 1;

  if (resolve(cfg.listen_host, port, &ss, &sl, 1) < 0) return -1;
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
    return -1;
  }
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuseport) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
      (listening && listen(fd, 4096) < 0)) {
    fprintf(stderr, "%s: listen on %s port %d: %s\n", prog, cfg.listen_host,
            port, strerror(errno));
    close(fd);
    return -1;
  }
  sl = sizeof(ss);
  *bound = port;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
    *bound = ntohs(ss.ss_family == AF_INET6
                       ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

static int run_loop(void)
{
  struct epoll_event evs[256], e;

  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    fprintf(stderr, "%s: epoll_create1: %s\n", prog, strerror(errno));
    return 1;
  }
  memset(&e, 0, sizeof(e));
  e.events = EPOLLIN;
  e.data.u64 = 0; /* the listener */
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
  while (!stop_flag) {
    int i, n, timeout = -1;
    if (ready) {
      timeout = 0;
    } else if (tool_heap_top(&heap)) {
      uint64_t now = lightws_now(), top = tool_heap_top(&heap)->key;
      timeout = top <= now ? 0 : top - now > 1000000 ? 1000000 : (int)(top - now);
    }
    if (listen_paused_until && (timeout < 0 || timeout > LISTEN_PAUSE_MS))
      timeout = LISTEN_PAUSE_MS;
    n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: epoll_wait: %s\n", prog, strerror(errno));
      return 1;
    }
    for (i = 0; i < n; i++) {
      uint64_t u = evs[i].data.u64;
      uint32_t ev = evs[i].events;
      struct tun *t = (struct tun *)(uintptr_t)(u & ~(uint64_t)1);
      if (!u) {
        accept_all();
        continue;
      }
      if (t->dead) continue;
      if (u & 1) {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t->t_in = 1;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) t->t_out = 1;
      } else {
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) t->w_in_gen++;
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) t->w_out_gen++;
      }
      tun_run(t);
      note_deadline(t, 0);
    }
    /* connections that used up their turn */
    {
      struct tun *batch = ready, *t;
      ready = NULL;
      for (t = batch; t; t = batch) {
        batch = t->rnext;
        t->listed = 0;
        if (t->dead) continue;
        tun_run(t);
        note_deadline(t, 0);
      }
    }
    run_timers();
    if (dead && listen_paused_until) listener_pause(0); /* a descriptor is free */
    free_dead();
    if (listen_paused_until && lightws_now() >= listen_paused_until)
      listener_pause(0);
  }
  /* shutting down: every connection ends here (and its line is logged) */
  while (all) {
    set_why(all, "tunnel shutting down");
    tun_free(all);
  }
  free_dead();
  tool_heap_free(&heap);
  while (buf_free_list) {
    struct buf *b = buf_free_list;
    buf_free_list = b->next;
    free(b);
  }
  close(ep);
  close(lfd);
  return 0;
}

static pid_t children[256];
static int nchildren;

/* Forks the workers; each listens on `port` with SO_REUSEPORT and says
 * so through `ready_fd` (one byte), so "listening on" is printed only once
 * all of them accept. */
static int start_workers(int port)
{
  int i, pfd[2];
  char b;

  if (pipe(pfd) < 0) {
    fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
    return -1;
  }
  for (i = 0; i < cfg.workers; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
      stop_flag = 1;
      break;
    }
    if (pid == 0) {
      int bound;
      close(lfd);
      close(pfd[0]);
      lfd = open_listener(port, 1, 1, &bound);
      if (lfd < 0) _exit(1);
      b = 1;
      if (write(pfd[1], &b, 1) != 1) _exit(1);
      close(pfd[1]);
      _exit(run_loop());
    }
    children[nchildren++] = pid;
  }
  close(pfd[1]);
  for (i = 0; i < nchildren; i++)
    if (read(pfd[0], &b, 1) != 1) break;
  close(pfd[0]);
  close(lfd);
  lfd = -1;
  return i == cfg.workers ? 0 : -1;
}

static int wait_workers(void)
{
  int i, status = 0, rc = 0;
  /* the parent only waits: signals go to every worker */
  while (nchildren > 0) {
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) {
        if (stop_flag)
          for (i = 0; i < nchildren; i++) kill(children[i], SIGTERM);
        continue;
      }
      break;
    }
    for (i = 0; i < nchildren; i++)
      if (children[i] == pid) children[i] = children[--nchildren];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      if (!stop_flag)
        fprintf(stderr, "%s: worker %d ended (%s %d); stopping\n", prog, (int)pid,
                WIFEXITED(status) ? "status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      rc = 1;
      stop_flag = 1;
      for (i = 0; i < nchildren; i++) kill(children[i], SIGTERM);
    }
  }
  return rc;
}

/* ------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
  fprintf(f,
    "usage: %s client --listen ADDR:PORT --remote ws[s]://HOST:PORT/PATH\n"
    "          [--cafile F] [--insecure] [--mask random|fixed|zero] [--opts S]\n"
    "          [--proxy http://HOST:PORT|none]\n"
    "       %s server --listen ADDR:PORT --target HOST:PORT [--path /PATH]\n"
    "          [--tls-cert F [--tls-key F]] [--opts S]\n"
    "       %s client|server LISTEN REMOTE 'OPTIONS'   (kaminari's form)\n"
    "       %s            (no arguments: a SIP003 shadowsocks plugin)\n"
    "common: [--workers N] [--handshake-timeout S] [--idle-timeout S]\n"
    "        [--ping-interval S] [--ping-timeout S] [--quiet]\n"
    "Every TCP connection accepted by the client travels as one websocket\n"
    "(binary frames) to the server, which connects it to the target. A\n"
    "TCP FIN travels as an empty text message; the websocket closes (1000)\n"
    "once both directions ended. Port 0 picks a free port (\"listening on\n"
    "HOST:PORT\" is printed). Timeouts in seconds, 0 turns one off:\n"
    "--handshake-timeout (default 10) bounds connect + TLS + upgrade,\n"
    "--idle-timeout (default off) closes a tunnel with no data either way\n"
    "for S, --ping-interval (default 30) pings a quiet websocket and\n"
    "--ping-timeout (default: the interval) waits for its pong.\n"
    "--mask: random (a fresh key per frame, RFC 6455 §5.3, the default),\n"
    "fixed (one key per connection), zero (no masking work; trusted paths\n"
    "only). --opts takes kaminari's option string, e.g.\n"
    "'ws;host=example.com;path=/ws;tls;sni=example.com;insecure;mask=fixed'.\n"
    "SIP003: SS_LOCAL_HOST/PORT, SS_REMOTE_HOST/PORT and SS_PLUGIN_OPTIONS\n"
    "(client unless the options say 'server'). --proxy: the client reaches\n"
    "the remote through an HTTP CONNECT proxy; without it https_proxy (wss)\n"
    "or http_proxy (ws) is used unless no_proxy names the remote.\n"
    "TLS: %s.\n"
    "Exit status: 0 after SIGTERM/SIGINT, 1 runtime failure, 2 usage.\n",
    prog, prog, prog, prog, TOOL_HAVE_TLS ? "built in" : TOOL_NO_TLS_MSG);
}

static int usage_error(const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (%s --help)\n", prog);
  return 2;
}

static int seconds_opt(const char *a, const char *v, uint32_t *dst)
{
  int ok;
  long long ms = tool_parse_seconds(v, &ok);
  if (!ok) return -1;
  (void)a;
  *dst = (uint32_t)ms;
  return 0;
}

static int takes_value(const char *a)
{
  static const char *const names[] = {
    "--listen", "--remote", "--target", "--proxy", "--path", "--opts", "--cafile",
    "--tls-cert", "--tls-key", "--mask", "--workers", "--handshake-timeout",
    "--idle-timeout", "--ping-interval", "--ping-timeout", NULL
  };
  int i;
  for (i = 0; names[i]; i++)
    if (!strcmp(a, names[i])) return 1;
  return 0;
}

/* SIP003 (shadowsocks plugin): the addresses come from the environment.
 * A client plugin listens on SS_LOCAL (where sslocal sends) and goes to
 * SS_REMOTE (the server); a server plugin listens on SS_REMOTE (the
 * public address) and forwards to SS_LOCAL (ssserver), as kaminari does. */
static int from_sip003(const char **opts)
{
  const char *lh = getenv("SS_LOCAL_HOST"), *lp = getenv("SS_LOCAL_PORT");
  const char *rh = getenv("SS_REMOTE_HOST"), *rp = getenv("SS_REMOTE_PORT");
  const char *o = getenv("SS_PLUGIN_OPTIONS");
  int ok, lport, rport;

  if (!lh || !lp || !rh || !rp) return 0;
  lport = (int)tool_parse_num(lp, 0, 65535, &ok);
  if (!ok) return usage_error("SS_LOCAL_PORT '%s' is not a port", lp);
  rport = (int)tool_parse_num(rp, 0, 65535, &ok);
  if (!ok) return usage_error("SS_REMOTE_PORT '%s' is not a port", rp);
  if (strlen(lh) >= sizeof(cfg.listen_host) || strlen(rh) >= sizeof(cfg.peer_host))
    return usage_error("SS_*_HOST too long");
  *opts = o ? o : "";
  cfg.sip003 = 1;
  /* the mode is known only after the options: keep both, order below */
  strcpy(cfg.listen_host, lh);
  cfg.listen_port = lport;
  strcpy(cfg.peer_host, rh);
  cfg.peer_port = rport;
  cfg.have_peer = 1;
  return -1; /* configured */
}

/* 1 if `host` matches the no_proxy list `list` ("a.example,.b.example,*":
 * an entry matches the name itself and its subdomains; a leading dot or
 * "*." is optional). */
static int no_proxy_match(const char *list, const char *host)
{
  size_t hl = strlen(host);
  while (list && *list) {
    size_t n = strcspn(list, ", ");
    const char *e = list;
    if (n == 1 && *e == '*') return 1;
    if (n >= 2 && e[0] == '*' && e[1] == '.') e++, n--;
    if (n && *e == '.') e++, n--;
    if (n && n <= hl && !strncasecmp(host + hl - n, e, n) &&
        (hl == n || host[hl - n - 1] == '.'))
      return 1;
    list += strcspn(list, ", ");
    list += strspn(list, ", ");
  }
  return 0;
}

/* --proxy http://HOST:PORT (or HOST:PORT; "none" ignores the environment),
 * else https_proxy (wss) / http_proxy (ws), upper case too, unless the
 * remote is in no_proxy. Returns 0 or the exit status. */
static int proxy_config(const char *arg)
{
  const char *v = arg, *np;
  char err[300], hp[300];
  int from_env = 0;

  if (!v) {
    v = cfg.tls ? getenv("https_proxy") : getenv("http_proxy");
    if (!v) v = cfg.tls ? getenv("HTTPS_PROXY") : getenv("HTTP_PROXY");
    if (!v || !*v) return 0;
    np = getenv("no_proxy");
    if (!np) np = getenv("NO_PROXY");
    if (np && no_proxy_match(np, cfg.peer_host)) return 0;
    from_env = 1;
  }
  if (!strcmp(v, "none")) return 0;
  if (!strncmp(v, "http://", 7)) v += 7;
  else if (strstr(v, "://"))
    return usage_error("%s%s: only http:// proxies (CONNECT) are supported",
                       from_env ? "proxy environment " : "--proxy ", v);
  snprintf(hp, sizeof(hp), "%s", v);
  hp[strcspn(hp, "/")] = '\0'; /* "http://proxy:3128/" */
  if (strchr(hp, '@'))
    return usage_error("proxy %s: credentials are not supported", hp);
  if (tunnel_parse_hostport(hp, cfg.proxy_host, sizeof(cfg.proxy_host),
                            &cfg.proxy_port, 0, err, sizeof(err)) < 0)
    return usage_error("%s%s", from_env ? "proxy environment: " : "--proxy ", err);
  if (strchr(cfg.proxy_host, ':'))
    snprintf(proxy_name, sizeof(proxy_name), "[%s]:%d", cfg.proxy_host, cfg.proxy_port);
  else
    snprintf(proxy_name, sizeof(proxy_name), "%s:%d", cfg.proxy_host, cfg.proxy_port);
  return 0;
}

int main(int argc, char **argv)
{
  const char *remote_url = NULL, *target = NULL, *listen_s = NULL;
  const char *opts = NULL, *proxy_s = NULL;
  char err[300];
  int i, r, pos = 0, bound, mask_given = 0;
  const char *posv[3];

  memset(&cfg, 0, sizeof(cfg));
  cfg.handshake_ms = HANDSHAKE_MS;
  cfg.ping_ms = PING_MS;
  cfg.workers = 1;
  cfg.mask = LIGHTWS_MASK_RANDOM;

  if (argc == 1) {
    r = from_sip003(&opts);
    if (r == 0) {
      usage(stderr);
      fprintf(stderr, "%s: no arguments and no SIP003 environment "
              "(SS_LOCAL_HOST, SS_LOCAL_PORT, SS_REMOTE_HOST, SS_REMOTE_PORT)\n",
              prog);
      return 2;
    }
    if (r > 0) return r;
    cfg.mode = TUNNEL_CLIENT;
  } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(stdout);
    return 0;
  } else if (!strcmp(argv[1], "client")) {
    cfg.mode = TUNNEL_CLIENT;
  } else if (!strcmp(argv[1], "server")) {
    cfg.mode = TUNNEL_SERVER;
  } else {
    return usage_error("first argument must be 'client' or 'server', not '%s'",
                       argv[1]);
  }

  for (i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      cfg.quiet = 1;
    } else if (!strcmp(a, "--insecure") || !strcmp(a, "-k")) {
      cfg.insecure = 1;
    } else if (!v && takes_value(a)) {
      return usage_error("option '%s' needs a value", a);
    } else if (!strcmp(a, "--listen")) {
      listen_s = v;
      i++;
    } else if (!strcmp(a, "--remote")) {
      remote_url = v;
      i++;
    } else if (!strcmp(a, "--target")) {
      target = v;
      i++;
    } else if (!strcmp(a, "--path")) {
      if (v[0] != '/' || strlen(v) >= sizeof(cfg.path))
        return usage_error("--path must start with '/' (got '%s')", v);
      strcpy(cfg.path, v);
      i++;
    } else if (!strcmp(a, "--proxy")) {
      proxy_s = v;
      i++;
    } else if (!strcmp(a, "--opts")) {
      opts = v;
      i++;
    } else if (!strcmp(a, "--cafile")) {
      cfg.cafile = v;
      i++;
    } else if (!strcmp(a, "--tls-cert")) {
      cfg.tls_cert = v;
      i++;
    } else if (!strcmp(a, "--tls-key")) {
      cfg.tls_key = v;
      i++;
    } else if (!strcmp(a, "--mask")) {
      if (!strcmp(v, "random") || !strcmp(v, "fresh")) cfg.mask = LIGHTWS_MASK_RANDOM;
      else if (!strcmp(v, "fixed")) cfg.mask = LIGHTWS_MASK_FIXED;
      else if (!strcmp(v, "zero")) cfg.mask = LIGHTWS_MASK_ZERO;
      else return usage_error("--mask must be random, fixed or zero (got '%s')", v);
      mask_given = 1;
      i++;
    } else if (!strcmp(a, "--workers")) {
      int ok;
      cfg.workers = (int)tool_parse_num(v, 1, 256, &ok);
      if (!ok) return usage_error("--workers must be 1..256 (got '%s')", v);
      i++;
    } else if (!strcmp(a, "--handshake-timeout") || !strcmp(a, "--idle-timeout") ||
               !strcmp(a, "--ping-interval") || !strcmp(a, "--ping-timeout")) {
      uint32_t *dst = !strcmp(a, "--handshake-timeout") ? &cfg.handshake_ms
                    : !strcmp(a, "--idle-timeout") ? &cfg.idle_ms
                    : !strcmp(a, "--ping-interval") ? &cfg.ping_ms : &cfg.pong_ms;
      if (seconds_opt(a, v, dst) < 0)
        return usage_error("bad %s '%s' (seconds)", a, v);
      if (dst == &cfg.pong_ms) cfg.pong_set = 1;
      i++;
    } else if (a[0] == '-') {
      return usage_error("unknown option '%s'", a);
    } else if (pos < 3) {
      posv[pos++] = a;
    } else {
      return usage_error("unexpected argument '%s'", a);
    }
  }

  if (pos) {
    /* kaminari's form: LISTEN REMOTE OPTIONS */
    if (pos != 3) return usage_error("kaminari's form takes LISTEN REMOTE 'OPTIONS'");
    if (listen_s || remote_url || target || opts)
      return usage_error("give either LISTEN REMOTE 'OPTIONS' or the --options");
    listen_s = posv[0];
    target = posv[1];
    opts = posv[2];
  }
  if (opts && tunnel_parse_opts(&cfg, opts, err, sizeof(err)) < 0)
    return usage_error("%s: %s", cfg.sip003 ? "SS_PLUGIN_OPTIONS" : "options", err);
  if (cfg.sip003 && cfg.mode == TUNNEL_SERVER) {
    /* swap: listen on SS_REMOTE, forward to SS_LOCAL */
    char h[256];
    int p = cfg.listen_port;
    strcpy(h, cfg.listen_host);
    strcpy(cfg.listen_host, cfg.peer_host);
    cfg.listen_port = cfg.peer_port;
    strcpy(cfg.peer_host, h);
    cfg.peer_port = p;
  }

  if (!cfg.sip003) {
    if (!listen_s) return usage_error("--listen ADDR:PORT is required");
    if (tunnel_parse_hostport(listen_s, cfg.listen_host, sizeof(cfg.listen_host),
                              &cfg.listen_port, 1, err, sizeof(err)) < 0)
      return usage_error("--listen %s", err);
  }
  if (cfg.mode == TUNNEL_CLIENT) {
    if (target && !pos) return usage_error("--target is for the server");
    if (cfg.tls_cert || cfg.tls_key) return usage_error("--tls-cert/--tls-key are for the server");
    if (remote_url) {
      struct tool_url u;
      char http_host[sizeof(cfg.http_host)], path[sizeof(cfg.path)];
      if (tool_parse_url(remote_url, &u, err, sizeof(err)) < 0)
        return usage_error("--remote %s: %s", remote_url, err);
      if (strlen(u.path) >= sizeof(cfg.path))
        return usage_error("--remote: path too long");
      /* --opts may override Host and path; the URL gives the rest */
      strcpy(http_host, cfg.http_host);
      strcpy(path, cfg.path);
      strcpy(cfg.peer_host, u.host);
      cfg.peer_port = u.port;
      cfg.have_peer = 1;
      strcpy(cfg.http_host, http_host[0] ? http_host : u.authority);
      strcpy(cfg.path, path[0] ? path : u.path);
      if (u.tls) cfg.tls = 1;
    } else if (pos) {
      if (tunnel_parse_hostport(target, cfg.peer_host, sizeof(cfg.peer_host),
                                &cfg.peer_port, 0, err, sizeof(err)) < 0)
        return usage_error("remote %s", err);
      cfg.have_peer = 1;
    } else if (!cfg.have_peer) {
      return usage_error("--remote ws[s]://HOST:PORT/PATH is required");
    }
    if (cfg.peer_port == 0) return usage_error("remote port 0");
    if (!cfg.http_host[0]) {
      if (strchr(cfg.peer_host, ':'))
        snprintf(cfg.http_host, sizeof(cfg.http_host), "[%s]:%d", cfg.peer_host, cfg.peer_port);
      else
        snprintf(cfg.http_host, sizeof(cfg.http_host), "%s:%d", cfg.peer_host, cfg.peer_port);
    }
    if (!cfg.path[0]) strcpy(cfg.path, "/");
    if ((cfg.cafile || cfg.insecure || cfg.sni[0]) && !cfg.tls)
      return usage_error("--cafile/--insecure/sni need wss:// (or 'tls')");
  } else {
    if (remote_url) return usage_error("--remote is for the client");
    if (mask_given) return usage_error("--mask is for the client (a server never masks, RFC 6455 §5.1)");
    if (cfg.cafile || cfg.insecure) return usage_error("--cafile/--insecure are for the client");
    if (cfg.tls_key && !cfg.tls_cert) return usage_error("--tls-key needs --tls-cert");
    if (cfg.tls_cert) cfg.tls = 1;
    if (cfg.tls && !cfg.tls_cert)
      return usage_error("a wss server needs --tls-cert F (and --tls-key F), or cert= and key=");
    if (!TOOL_HAVE_TLS && cfg.tls) return usage_error("%s", TOOL_NO_TLS_MSG);
    if (!cfg.have_peer) {
      if (!target) return usage_error("--target HOST:PORT is required");
      if (tunnel_parse_hostport(target, cfg.peer_host, sizeof(cfg.peer_host),
                                &cfg.peer_port, 0, err, sizeof(err)) < 0)
        return usage_error("--target %s", err);
      cfg.have_peer = 1;
    }
  }
  if (cfg.mode == TUNNEL_CLIENT) {
    int r2 = proxy_config(proxy_s);
    if (r2) return r2;
  } else if (proxy_s) {
    return usage_error("--proxy is for the client");
  }
  if (!cfg.pong_set) cfg.pong_ms = cfg.ping_ms;
  if (strchr(cfg.peer_host, ':'))
    snprintf(peer_name, sizeof(peer_name), "[%s]:%d", cfg.peer_host, cfg.peer_port);
  else
    snprintf(peer_name, sizeof(peer_name), "%s:%d", cfg.peer_host, cfg.peer_port);

  /* TLS contexts, once */
#ifdef LIGHTWS_TOOLS_TLS
  if (cfg.tls && cfg.mode == TUNNEL_CLIENT) {
    struct tool_url u;
    char url[sizeof(cfg.http_host) + 16];
    snprintf(url, sizeof(url), "wss://%s/", cfg.http_host);
    r = tool_client_target(prog, url, &u, cfg.cafile, cfg.insecure, &tls_ctx);
    if (r) return r;
  } else if (cfg.tls) {
    struct lightws_tls_config tc;
    char why[256] = "";
    int e = 0;
    memset(&tc, 0, sizeof(tc));
    tc.cert_file = cfg.tls_cert;
    tc.key_file = cfg.tls_key ? cfg.tls_key : cfg.tls_cert;
    tls_ctx = lightws_tls_ctx(LIGHTWS_SERVER, &tc, &e, why, sizeof(why));
    if (!tls_ctx) {
      fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, cfg.tls_cert,
              lightws_tls_errname(e), lightws_tls_strerror(e), why[0] ? ": " : "", why);
      return 1;
    }
  }
#else
  if (cfg.tls) return usage_error("%s", TOOL_NO_TLS_MSG);
#endif

  memset(&stream_to, 0, sizeof(stream_to));
  stream_to.handshake = cfg.handshake_ms;
  stream_to.ping_interval = cfg.ping_ms;
  stream_to.ping_timeout = cfg.pong_ms;
  stream_to.close = CLOSE_MS;

  /* through a proxy, the proxy resolves the remote's name */
  if (cfg.proxy_port
          ? resolve(cfg.proxy_host, cfg.proxy_port, &peer_addr, &peer_addrlen, 0) < 0
          : resolve(cfg.peer_host, cfg.peer_port, &peer_addr, &peer_addrlen, 0) < 0)
    return 1;
  install_signals();
  {
    /* many connections: two descriptors each */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
  }
  lfd = open_listener(cfg.listen_port, cfg.workers > 1, cfg.workers == 1, &bound);
  if (lfd < 0) return 1;
  if (cfg.workers > 1 && start_workers(bound) < 0) {
    stop_flag = 1;
    for (i = 0; i < nchildren; i++) kill(children[i], SIGTERM);
    (void)wait_workers();
    return 1;
  }
  if (strchr(cfg.listen_host, ':'))
    printf("listening on [%s]:%d\n", cfg.listen_host, bound);
  else
    printf("listening on %s:%d\n", cfg.listen_host, bound);
  fflush(stdout);
  if (!cfg.quiet)
    fprintf(stderr, "%s: %s %s%s%s:%d -> %s%s%s%s, mask %s, %d worker%s%s%s\n", prog,
            cfg.mode == TUNNEL_CLIENT ? "client" : "server",
            strchr(cfg.listen_host, ':') ? "[" : "", cfg.listen_host,
            strchr(cfg.listen_host, ':') ? "]" : "", bound, cfg.mode == TUNNEL_CLIENT ? "" : "target ",
            cfg.mode == TUNNEL_CLIENT ? (cfg.tls ? "wss://" : "ws://") : "",
            cfg.mode == TUNNEL_CLIENT ? cfg.http_host : peer_name,
            cfg.mode == TUNNEL_CLIENT ? cfg.path : (cfg.tls ? " (wss)" : " (ws)"),
            cfg.mask == LIGHTWS_MASK_ZERO ? "zero" : cfg.mask == LIGHTWS_MASK_FIXED ? "fixed" : "random",
            cfg.workers, cfg.workers > 1 ? "s" : "",
            cfg.proxy_port ? ", via proxy " : "", cfg.proxy_port ? proxy_name : "");
  if (cfg.workers > 1) r = wait_workers();
  else r = run_loop();
#ifdef LIGHTWS_TOOLS_TLS
  lightws_tls_ctx_free(tls_ctx);
#endif
  return r;
}
