/* SPDX-License-Identifier: MIT */
/* lightws-echo: an epoll echo server (and a blocking echo client) over lightws. */
#include "common.h"
#include "lightws.h"
#ifdef LIGHTWS_TOOLS_TLS
#include "lightws_tls.h"
#endif

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHARED_SIZE (64 * 1024) /* the receive buffer all connections share
                                  (lightws.h, shared-buffer mode) */
#define CHUNKS_PER_TURN 64   /* fairness: chunks echoed before yielding */
#define DRAIN_MS 2000        /* how long to wait for the peer's FIN */
#define CLOSE_MS 2000        /* core close timeout: our close, or the peer's,
                                to the end of the transport */
#define HANDSHAKE_MS 10000   /* default --handshake-timeout */
#define CLIENT_TIMEOUT_MS 10000 /* default --timeout of the client */
#define PMD_SLOTS 1024       /* connections that can have permessage-deflate
                                at once (one block each); more are served
                                uncompressed */
#define PMD_CLIENT_MEM (512 * 1024) /* the client's one block */
#define TLS_SLOTS_MAX 65536  /* TLS connections at once: the descriptor
                                limit, at most this (one slot each) */

static const char *prog = "lightws-echo";
static volatile sig_atomic_t stop_flag, stats_flag;

static void on_signal(int sig)
{
  if (sig == SIGUSR1) stats_flag = 1;
  else stop_flag = 1;
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
  sigaction(SIGUSR1, &sa, NULL); /* --stats: a line now */
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: %s --port N [--host ADDR] [--quiet] [--max-message N]\n"
          "          [--handshake-timeout S] [--idle-timeout S]\n"
          "          [--ping-interval S] [--ping-timeout S] [--no-deflate]\n"
          "          [--tls-cert F --tls-key F] [--workers N] [--stats]\n"
          "       %s [--quiet] [--timeout S] [--no-deflate]\n"
          "          [--cafile F] [--insecure]\n"
          "          --client ws[s]://HOST:PORT/PATH?QUERY\n"
          "Server: echoes every message with its opcode (port 0 picks a free\n"
          "port and prints \"listening on HOST:PORT\"). Messages over\n"
          "--max-message bytes (default 67108864, 64 MiB) get close 1009.\n"
          "Timeouts in seconds (fractions allowed, 0 turns one off): the\n"
          "opening handshake must end within --handshake-timeout (default 10);\n"
          "--idle-timeout closes (1001) a connection that sent nothing for S;\n"
          "--ping-interval pings a connection quiet for S and closes it (1011)\n"
          "when the pong does not come within --ping-timeout (default: the\n"
          "interval). Client: connects and echoes every message the server\n"
          "sends until the server closes; gives up when the handshake is not\n"
          "done within --timeout (default 10).\n"
          "Every connection reads into one 64 KiB buffer of the event loop\n"
          "(an idle connection holds no buffer); every frame is echoed as one\n"
          "frame of the same length. --workers N runs N event loops (processes\n"
          "on one port, SO_REUSEPORT); --stats prints connections, messages\n"
          "and bytes on SIGUSR1 and at exit.\n"
          "Both roles negotiate permessage-deflate (RFC 7692; window 12 bits,\n"
          "memLevel 5) and answer a compressed message compressed, an\n"
          "uncompressed one uncompressed; --no-deflate turns it off. The\n"
          "server compresses up to %d connections at once (the others get\n"
          "no compression).\n"
          "TLS (%s): --tls-cert F (PEM chain) and --tls-key F (PEM\n"
          "key; default: in F) make the server wss:// only; the TLS handshake\n"
          "counts in --handshake-timeout, close_notify follows a clean close.\n"
          "The client takes wss:// URLs: the certificate is verified against\n"
          "the system CAs, or --cafile F (PEM), and the URL's host; a rejected\n"
          "one prints its error (TLS_CERT_EXPIRED, TLS_CERT_HOSTNAME,\n"
          "TLS_CERT_UNTRUSTED, ...) and exits 1; --insecure skips verification\n"
          "(tests only).\n",
          prog, prog, PMD_SLOTS,
          TOOL_HAVE_TLS ? "this build has it" : TOOL_NO_TLS_MSG);
}

/* ------------------------------------------------------------------------
 * Server
 * ------------------------------------------------------------------------ */

enum conn_state {
  ST_TLS_HS,       /* wss: TLS handshake (lightws_tls_handshake steps) */
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
  /* The echo being written: a view into rbuf (ch.data of
   * lightws_stream_recv). lightws.h: "The view stays valid until the next
   * call that reads: lightws_stream_recv, _read, _read_bytes, _feed, or a
   * handshake step"; send, flush and tick never touch rbuf. echo_run
   * calls only lightws_stream_send/_flush while pend_active, and
   * lightws_stream_tick (timer) never reads, so the view is never used
   * across a read call: recv is called again only once the echo is out. */
  const uint8_t *pend;
  size_t pend_len;
  uint64_t pend_total;       /* frame length declared with the first call
                                (lightws_stream_send_frame: the incoming
                                frame's, so one frame in, one frame out) */
  int pend_op;
  unsigned pend_flags;
  int pend_active;
  uint8_t *pend_copy;        /* the unsent rest of the echo when it could
                                not go out before the shared buffer went
                                back (malloc'd, freed once out) */
  uint8_t *park;             /* unread input that did not fit the stream's
                                stash (lightws_stream_release() > 0):
                                malloc'd, freed at the next lend */
  int pend_final;            /* an empty final call ends a compressed echo */
  int in_msg;                /* a message is being echoed */
  uint64_t out_left;         /* payload of the echo frame still to come
                                from later chunks of the incoming frame */
  int msg_deflated;          /* ... and it came compressed: so goes the echo */
  int pmd_slot;              /* deflate block in the server's pool, -1: none */
  uint8_t *pmd_mem;          /* that block (NULL: none) */
  size_t pmd_size;
  int reject_status;
  int err;                   /* error that ended the connection, 0 if none */
  unsigned close_code;
  unsigned long long msgs, bytes;
  uint64_t drain_until;      /* ST_DRAIN: lightws_now() deadline */
  struct tool_timer timer;   /* in the server's heap while it has a deadline */
  struct conn *prev, *next;  /* ready list */
  int listed;                /* 0 none, 1 ready */
  int dead;                  /* freed at the end of the loop turn */
  struct conn *dead_next;
  char peer[48];             /* "[v6 address]:port" at most 47 */
  char path[64];             /* for the log line (truncated) */
  struct lightws_tls *tls;   /* wss: a slot of the server's TLS pool */
#ifdef LIGHTWS_TOOLS_TLS
  int tls_slot;              /* -1: none */
  uint64_t tls_until;        /* ST_TLS_HS: handshake deadline (ms) */
  uint64_t accepted;         /* lightws_now() at accept */
#endif
};

struct server {
  int ep, lfd;
  int quiet;
  uint8_t *sbuf;             /* SHARED_SIZE bytes: lent to the connection
                                being run, given back after (conn_enter,
                                conn_leave), so an idle connection holds
                                no buffer (about 0.7 KiB with struct conn) */
  unsigned long long accepted, msgs, bytes; /* --stats */
  uint32_t max_message;
  struct lightws_timeouts to;
  struct conn *ready;        /* conns with input left in rbuf */
  struct conn *dead;         /* freed at the end of the loop turn */
  /* One timer for all connections: a binary min-heap of the connections
   * that have a deadline, keyed by lightws_stream_deadline() (or the drain
   * deadline). After each event on a connection its key is compared with
   * its deadline (no syscall) and moved only when it changed (O(log n), and
   * O(1) on average for the small moves of a busy connection); a
   * connection without timeouts due is not in the heap. epoll_wait sleeps
   * until the top key; a tick that finds nothing due (early or extra
   * wake-up) only reschedules, so an idle connection with keepalive costs
   * one wake-up per ping interval (its pong moves the key to the next
   * ping before the ping timeout is reached). */
  struct tool_heap heap;
  unsigned long nconns;
  unsigned long wakeups, ticks;   /* timer statistics (logged at exit) */
  int paused;                /* listener off: out of descriptors */
  /* permessage-deflate: one mapping made at start holds PMD_SLOTS blocks
   * (pages are touched only by connections that use them); free slots
   * are a stack of indices */
  int deflate;
  struct lightws_pmd_config pmd_cfg;
  uint8_t *pmd_pool;
  size_t pmd_slot_size;
  int *pmd_free;
  int pmd_nfree;
  int tls;                   /* wss: --tls-cert given */
#ifdef LIGHTWS_TOOLS_TLS
  /* wss: the context, and one mapping of tls_slots struct lightws_tls
   * (pages touched only by the connections that use them), free slots a
   * stack as for deflate; OpenSSL's own per-connection state (SSL_new)
   * is OpenSSL's allocation */
  struct ssl_ctx_st *tls_ctx;
  uint8_t *tls_pool;
  size_t tls_slot_size, tls_slots;
  int *tls_free;
  size_t tls_nfree;
#endif
};

/* What the connection's last WOULDBLOCK waits for: over TLS the layer's
 * answer (it can need the other direction; docs/tls.md), else the
 * stream's. */
static int conn_want(const struct conn *c)
{
#ifdef LIGHTWS_TOOLS_TLS
  if (c->tls)
    return lightws_tls_want(c->tls, c->state == ST_TLS_HS ? NULL : &c->s);
#endif
  return lightws_stream_want(&c->s);
}

/* The name of error `err` of `c` (tool_err: over TLS the layer's). */
static const char *conn_errname(const struct conn *c, int err)
{
  const char *name, *msg, *reason;
  tool_err(c->tls, err, &name, &msg, &reason);
  return name;
}

/* ---- timer heap (tools/common.h) ---- */

static struct conn *timer_conn(struct tool_timer *t)
{
  return (struct conn *)(void *)((char *)t - offsetof(struct conn, timer));
}

/* When `c` next needs a tick: the stream's deadline, or in ST_DRAIN the
 * drain deadline. */
static uint64_t conn_deadline(const struct conn *c)
{
  uint64_t d;
#ifdef LIGHTWS_TOOLS_TLS
  /* the stream's timers start when the TLS handshake is done */
  if (c->state == ST_TLS_HS) return c->tls_until;
#endif
  d = lightws_stream_deadline(&c->s);
  if (c->state == ST_DRAIN && c->drain_until < d) d = c->drain_until;
  return d;
}

static void conn_free(struct server *sv, struct conn *c);

/* After an event or a tick on `c`: moves its heap key to its deadline
 * (see struct server); `floor` keeps a key that is still due after a
 * tick out of the current turn (never spin). */
static void conn_schedule(struct server *sv, struct conn *c, uint64_t floor)
{
  uint64_t d = conn_deadline(c);

  if (d < floor) d = floor;
  if (d == c->timer.key) return;
  if (tool_heap_place(&sv->heap, &c->timer, d) < 0) {
    fprintf(stderr, "%s: out of memory (timer heap)\n", prog);
    conn_free(sv, c);
  }
}

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
  struct conn **head = &sv->ready;
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
  int want = conn_want(c);
  uint32_t ev = 0;

  /* Over TLS, bytes buffered inside OpenSSL make no epoll event. None
   * are left when we get here after a read: the stream says WOULDBLOCK
   * only once SSL_read said WANT_READ (no whole record buffered), and a
   * connection that stops reading earlier (CHUNKS_PER_TURN) is on the
   * ready list (lightws_tls_buffered() is 0 then: at most a partial
   * record is held). */
  if (want & LIGHTWS_WANT_READ) ev |= EPOLLIN;
  if (want & LIGHTWS_WANT_WRITE) ev |= EPOLLOUT;
  if (!ev) ev = EPOLLIN;
  set_events(sv, c, ev);
}

/* Ends `c`: closes the descriptor and logs one line now; the memory is
 * freed at the end of the loop turn, so a caller may still look at
 * c->dead after any call that can end the connection. */
static void conn_free(struct server *sv, struct conn *c)
{
  char tls_reason[128] = "";
  char reason[LIGHTWS_CONTROL_MAX * 2] = ""; /* the peer's, printable */

  if (c->dead) return;
  c->dead = 1;
#ifdef LIGHTWS_TOOLS_TLS
  /* OpenSSL's text of a TLS failure, for the log line */
  if (c->tls && c->err && lightws_tls_error(c->tls))
    snprintf(tls_reason, sizeof(tls_reason), "%s", lightws_tls_reason(c->tls));
#endif
  if (c->pmd_slot >= 0) sv->pmd_free[sv->pmd_nfree++] = c->pmd_slot;
  c->pmd_slot = -1;
#ifdef LIGHTWS_TOOLS_TLS
  if (c->tls_slot >= 0) {
    lightws_tls_free(c->tls);
    sv->tls_free[sv->tls_nfree++] = c->tls_slot;
    c->tls_slot = -1;
  }
#endif
  list_del(sv, c);
  tool_heap_remove(&sv->heap, &c->timer);
  epoll_ctl(sv->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  sv->nconns--;
  listener_pause(sv, 0);
  if (!sv->quiet) {
    /* the stream keeps the close reason whatever buffer it is on */
    tool_close_reason(&c->s, reason, sizeof(reason));
    if (c->reject_status)
      fprintf(stderr, "%s: %s %s rejected %d (%s)%s\n", prog, c->peer,
              c->path[0] ? c->path : "-", c->reject_status,
              conn_errname(c, c->err), sv->tls ? " wss" : "");
    else
      fprintf(stderr, "%s: %s %s messages %llu bytes %llu close %u%s%s%s%s%s%s%s%s%s%s\n",
              prog, c->peer, c->path[0] ? c->path : "-", c->msgs, c->bytes,
              c->close_code, c->err ? " (" : "",
              c->err ? conn_errname(c, c->err) : "", c->err ? ")" : "",
              reason[0] ? " '" : "", reason, reason[0] ? "'" : "",
              lightws_stream_deflate(&c->s) ? " permessage-deflate" : "",
              sv->tls ? " wss" : "", tls_reason[0] ? ": " : "", tls_reason);
  }
  c->dead_next = sv->dead;
  sv->dead = c;
}

static void free_dead(struct server *sv)
{
  while (sv->dead) {
    struct conn *c = sv->dead;
    sv->dead = c->dead_next;
    free(c->park);
    free(c->pend_copy);
    free(c);
  }
}

/* Sends our FIN and waits (bounded) for the peer's, so that unread input
 * does not turn our close into a reset that destroys the close frame. */
static void start_drain(struct server *sv, struct conn *c)
{
  shutdown(c->fd, SHUT_WR);
  c->state = ST_DRAIN;
  c->drain_until = lightws_now() + DRAIN_MS;
  list_del(sv, c);
  set_events(sv, c, EPOLLIN);
}

static void drain(struct server *sv, struct conn *c)
{
  for (;;) {
    ssize_t n = read(c->fd, sv->sbuf, SHARED_SIZE); /* discarded */
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
    wait_want(sv, c);
    return;
  }
#ifdef LIGHTWS_TOOLS_TLS
  /* After a clean close handshake: close_notify (sent once; a retry only
   * flushes it), then our FIN. */
  if (c->tls && r == 0 && lightws_stream_closing(&c->s) == 2) {
    r = lightws_tls_shutdown(c->tls);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      int want = lightws_tls_want(c->tls, NULL);
      c->state = ST_CLOSE_FLUSH;
      set_events(sv, c, (want & LIGHTWS_WANT_READ ? EPOLLIN : 0) |
                        (want & LIGHTWS_WANT_WRITE || !want ? EPOLLOUT : 0));
      return;
    }
  }
#endif
  start_drain(sv, c);
}

/* 1 if `ch` holds inflated bytes: lightws.h says a compressed message is
 * handed out from the inflate work buffer, which lies in the connection's
 * deflate block, while other payload is a view into rbuf. */
static int chunk_inflated(const uint8_t *mem, size_t size,
                          const struct lightws_chunk *ch)
{
  uintptr_t p = (uintptr_t)ch->data, b = (uintptr_t)mem;
  return mem && ch->data && p >= b && p < b + size;
}

/* Send flags for the echo of chunk `ch` (pend_* of `c`): an uncompressed
 * message goes back uncompressed; a compressed one goes into the
 * compressor as fragments and ends with an empty final call, so even a
 * message under the threshold (or empty) is answered compressed. */
static void echo_flags(struct conn *c, const struct lightws_chunk *ch)
{
  c->pend_final = 0;
  c->pend_total = ch->len;
  if (c->msg_deflated) {
    c->pend_flags = LIGHTWS_SEND_FRAGMENT;
    c->pend_final = ch->message_end;
  } else if (c->out_left) {
    /* the rest of a frame already declared: a continuation call */
    c->out_left -= ch->len;
    c->pend_flags = 0;
  } else {
    /* A binary chunk that starts a frame without ending it: the echo frame
     * is declared with the incoming frame's whole length and the rest of
     * its payload follows as it arrives (lightws_stream_send_frame), so
     * every binary frame is echoed as one frame, whatever the buffer. Text
     * frames come whole when they fit the shared buffer
     * (LIGHTWS_OPT_WHOLE_TEXT: validated before any byte is echoed, so a
     * 1007 close can always go out); a larger one is echoed as fragments,
     * each a whole frame, for the same reason. */
    uint64_t left = 0;
    int fin = ch->message_end;
    if (!ch->frame_end && ch->opcode == LIGHTWS_OPCODE_BINARY) {
      fin = lightws_stream_frame_rest(&c->s, &left) == 1;
      c->pend_total = ch->len + left;
      c->out_left = left;
    }
    c->pend_flags = fin ? 0 : LIGHTWS_SEND_FRAGMENT;
    if (c->pmd_mem) c->pend_flags |= LIGHTWS_SEND_NO_COMPRESS;
  }
  if (ch->message_end) c->in_msg = 0;
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
      n = c->msg_deflated
              ? lightws_stream_send(&c->s, c->pend_op, c->pend, c->pend_len,
                                    c->pend_flags)
              : lightws_stream_send_frame(&c->s, c->pend_op, c->pend,
                                          c->pend_len, c->pend_total,
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
      if (c->pend_final) {
        /* the compressed echo's last chunk went in as a fragment: an empty
         * final call ends the message, compressed whatever its size */
        c->pend_final = 0;
        c->pend_flags = 0;
        continue;
      }
      /* Done (an empty frame cut inside its head counts as sent: the
       * library finishes it first on the next send or flush). A pong that
       * waited behind this frame goes out now, between frames (§5.4). */
      (void)lightws_stream_flush(&c->s);
      c->pend_active = 0;
      free(c->pend_copy);
      c->pend_copy = NULL;
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
      sv->bytes += (unsigned long long)n;
      if (ch.message_end) {
        c->msgs++;
        sv->msgs++;
      }
      if (!c->in_msg) {
        c->in_msg = 1;
        c->msg_deflated = chunk_inflated(c->pmd_mem, c->pmd_size, &ch);
      }
      if (n == 0 && !ch.message_end) continue; /* empty fragment: nothing to say */
      c->pend = ch.data;
      c->pend_len = (size_t)n;
      c->pend_op = ch.opcode;
      echo_flags(c, &ch);
      c->pend_active = 1;
      continue;
    }
    if (n == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (n == LIGHTWS_ERR_CLOSED) {
      c->close_code = lightws_stream_close_code(&c->s);
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

static void conn_step(struct server *sv, struct conn *c)
{
  struct lightws_header hdrs[LIGHTWS_HANDSHAKE_HEADERS_MAX];
  struct lightws_request req;
  int r;

  switch (c->state) {
  case ST_TLS_HS:
#ifdef LIGHTWS_TOOLS_TLS
    r = lightws_tls_handshake(c->tls);
    if (r == LIGHTWS_ERR_WOULDBLOCK) {
      wait_want(sv, c);
      return;
    }
    if (r < 0) {
      /* a named error (the client's alert: unknown CA ...), EOF, SYSTEM */
      c->err = r;
      c->close_code = 1006;
      conn_free(sv, c);
      return;
    }
    /* The stream's timers from the accept: the websocket handshake gets
     * what the TLS one left of --handshake-timeout; keepalive and idle
     * timers (which must not run during the TLS handshake: a ping then
     * would only time out) start now too. */
    lightws_stream_set_timeouts(&c->s, &sv->to, c->accepted);
#endif
    /* the request may have come with the last flight: read it now */
    c->state = ST_HS_READ;
    /* fall through */
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
      conn_step(sv, c);
      return;
    }
    if (sv->max_message)
      lightws_stream_set_limits(&c->s, sv->max_message < LIGHTWS_DEFAULT_MAX_FRAME
                                           ? sv->max_message : 0,
                                sv->max_message);
    if (sv->deflate && req.extensions && sv->pmd_nfree > 0) {
      int slot = sv->pmd_free[sv->pmd_nfree - 1];
      uint8_t *mem = sv->pmd_pool + (size_t)slot * sv->pmd_slot_size;
      r = lightws_server_deflate(&c->s, &req, &sv->pmd_cfg, mem,
                                 sv->pmd_slot_size);
      if (r == 1) {
        sv->pmd_nfree--;
        c->pmd_slot = slot;
        c->pmd_mem = mem;
        c->pmd_size = sv->pmd_slot_size;
      } else if (r < 0 && !sv->quiet) {
        fprintf(stderr, "%s: permessage-deflate: %s\n", prog,
                lightws_errname(r));
      }
    }
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

/* The shared receive buffer goes to `c` for one run (what it kept moves
 * in from its stash or its parking buffer) ... */
static void conn_enter(struct server *sv, struct conn *c)
{
  if (lightws_stream_lend(&c->s, sv->sbuf, SHARED_SIZE) == 0 && c->park) {
    free(c->park);
    c->park = NULL;
  }
}

/* ... and comes back after it. An idle connection (read until WOULDBLOCK)
 * keeps at most a partial frame head or control frame, in its stash;
 * only a connection stopped earlier (its echo cannot be written, or its
 * turn ended with input left) needs memory of its own: the unsent rest of
 * the echo and the unread input are copied out (malloc), to be lent back
 * at the next run. */
static void conn_leave(struct server *sv, struct conn *c)
{
  ssize_t held;

  if (c->dead) return;
  if (c->pend_active && c->pend >= sv->sbuf && c->pend < sv->sbuf + SHARED_SIZE) {
    uint8_t *copy = malloc(c->pend_len ? c->pend_len : 1);
    if (!copy) goto oom;
    memcpy(copy, c->pend, c->pend_len);
    free(c->pend_copy);
    c->pend = c->pend_copy = copy;
  }
  held = lightws_stream_release(&c->s);
  if (held > 0) {
    size_t size = (size_t)held < LIGHTWS_RBUF_MIN ? LIGHTWS_RBUF_MIN : (size_t)held;
    uint8_t *p = c->park ? NULL : malloc(size);
    if (!c->park && (!p || lightws_stream_lend(&c->s, p, size) < 0)) {
      free(p);
      goto oom;
    }
    if (p) c->park = p;
  }
  return;
oom:
  fprintf(stderr, "%s: %s: out of memory\n", prog, c->peer);
  c->err = LIGHTWS_ERR_SYSTEM;
  c->close_code = 1006;
  conn_free(sv, c);
}

static void conn_run(struct server *sv, struct conn *c)
{
  if (c->state == ST_DRAIN) { /* reads raw into the shared buffer */
    conn_step(sv, c);
    return;
  }
  conn_enter(sv, c);
  conn_step(sv, c);
  conn_leave(sv, c);
}

/* A timeout failed the stream (lightws_stream_tick): send what the core
 * queued (the 1001/1011 close frame) as far as the socket takes it now,
 * and drop the connection; its log line names the error. A request still
 * being read gets a best-effort 408 instead (no close frame before the
 * handshake). */
static void conn_timeout(struct server *sv, struct conn *c, int err)
{
  static const char resp408[] = "HTTP/1.1 408 Request Timeout\r\n"
                                "Connection: close\r\nContent-Length: 0\r\n\r\n";

  c->err = err;
  c->close_code = (unsigned)lightws_close_code(err);
  if (c->state == ST_TLS_HS) {
    /* no TLS session yet: nothing to say */
#ifdef LIGHTWS_TOOLS_TLS
  } else if (c->state == ST_HS_READ && c->tls) {
    /* over TLS the 408 goes through the layer (its transport callback:
     * the failed stream sends nothing more), as far as the socket takes it */
    struct iovec iov;
    iov.iov_base = (void *)resp408;
    iov.iov_len = sizeof(resp408) - 1;
    (void)c->tls->io.writev(c->tls->io.ctx, &iov, 1);
    (void)lightws_tls_flush(c->tls);
#endif
  } else if (c->state == ST_HS_READ) {
    ssize_t n = send(c->fd, resp408, sizeof(resp408) - 1,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
  } else {
    (void)lightws_stream_flush(&c->s);
  }
  conn_free(sv, c);
}

/* The timer reached `c` at `now`. */
static void conn_timer(struct server *sv, struct conn *c, uint64_t now)
{
  int r;

  sv->ticks++;
  if (c->state == ST_DRAIN && now >= c->drain_until) {
    conn_free(sv, c);
    return;
  }
#ifdef LIGHTWS_TOOLS_TLS
  if (c->state == ST_TLS_HS) {
    if (now >= c->tls_until) conn_timeout(sv, c, LIGHTWS_ERR_HANDSHAKE_TIMEOUT);
    else conn_schedule(sv, c, now + 1);
    return;
  }
#endif
  r = lightws_stream_tick(&c->s, now);
  if (r < 0) {
    conn_timeout(sv, c, r);
    return;
  }
  /* A keepalive ping that could not go out at once waits in the control
   * slot: run when writable (echo_run flushes it first). */
  if (c->state == ST_OPEN && (conn_want(c) & LIGHTWS_WANT_WRITE))
    set_events(sv, c, c->events | EPOLLOUT);
  conn_schedule(sv, c, now + 1);
}

/* Runs every connection whose key is due. */
static void run_timers(struct server *sv)
{
  uint64_t now = lightws_now();
  struct tool_timer *top;

  while ((top = tool_heap_top(&sv->heap)) && top->key <= now) {
    struct conn *c = timer_conn(top);
    conn_timer(sv, c, now);
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
    c = calloc(1, sizeof(*c));
    if (!c || tool_set_nonblock(fd, 1) < 0) {
      fprintf(stderr, "%s: out of memory\n", prog);
      free(c);
      close(fd);
      continue;
    }
    tool_set_nodelay(fd);
    c->fd = fd;
    c->pmd_slot = -1;
    tool_peer_name(fd, c->peer, sizeof(c->peer));
    r = lightws_stream_init(&c->s, LIGHTWS_SERVER, fd, NULL, 0,
                            LIGHTWS_OPT_WHOLE_TEXT);
    if (r < 0) {
      fprintf(stderr, "%s: stream init: %s\n", prog, lightws_strerror(r));
      free(c);
      close(fd);
      continue;
    }
#ifdef LIGHTWS_TOOLS_TLS
    c->tls_slot = -1;
    if (sv->tls) {
      if (sv->tls_nfree == 0) {
        /* as many TLS connections as descriptors: only when the limit
         * was raised after start */
        if (!sv->quiet)
          fprintf(stderr, "%s: %s: all %zu TLS slots in use\n", prog, c->peer,
                  sv->tls_slots);
        free(c);
        close(fd);
        continue;
      }
      c->tls_slot = sv->tls_free[sv->tls_nfree - 1];
      c->tls = (struct lightws_tls *)(void *)(sv->tls_pool +
                                              (size_t)c->tls_slot * sv->tls_slot_size);
      /* zero-filled before init (lightws_tls.h); the buffers need not be */
      memset(c->tls, 0, offsetof(struct lightws_tls, cbuf));
      r = lightws_tls_init(c->tls, sv->tls_ctx, fd, LIGHTWS_SERVER, NULL);
      if (r < 0) {
        fprintf(stderr, "%s: TLS init: %s\n", prog, lightws_tls_errname(r));
        lightws_tls_free(c->tls);
        free(c);
        close(fd);
        continue;
      }
      sv->tls_nfree--;
      lightws_stream_set_io(&c->s, &c->tls->io);
    }
#endif
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
    sv->accepted++;
    c->state = ST_HS_READ;
    tool_timer_init(&c->timer);
#ifdef LIGHTWS_TOOLS_TLS
    if (c->tls) {
      /* One --handshake-timeout for both handshakes: the TLS one has its
       * own deadline here; the stream's timers are set from the accept
       * time once it is done (conn_run), so the websocket handshake gets
       * only what is left. */
      c->state = ST_TLS_HS;
      c->accepted = lightws_now();
      c->tls_until = sv->to.handshake ? c->accepted + sv->to.handshake
                                      : LIGHTWS_NO_DEADLINE;
    } else
#endif
    lightws_stream_set_timeouts(&c->s, &sv->to, lightws_now());
    /* Start step 1 now (a read that usually would block): a server stream
     * counts as handshaking only once lightws_server_read_request() ran,
     * and only then does lightws_stream_deadline() report the handshake
     * deadline (from set_timeouts), so a client that never sends a byte
     * is timed out too. */
    conn_run(sv, c);
    if (!c->dead) conn_schedule(sv, c, 0);
  }
}

/* The deflate pool: PMD_SLOTS blocks in one mapping. 0, or -1 when
 * permessage-deflate cannot be offered (then it stays off). */
static int pmd_pool_init(struct server *sv)
{
  size_t need = lightws_pmd_mem_size(&sv->pmd_cfg), i;
  void *p;

  if (!lightws_pmd_available() || need == 0) return -1;
  sv->pmd_slot_size = (need + 4095) & ~(size_t)4095;
  p = mmap(NULL, sv->pmd_slot_size * PMD_SLOTS, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  sv->pmd_free = malloc(PMD_SLOTS * sizeof(*sv->pmd_free));
  if (p == MAP_FAILED || !sv->pmd_free) {
    fprintf(stderr, "%s: no memory for permessage-deflate; serving without\n",
            prog);
    if (p != MAP_FAILED) munmap(p, sv->pmd_slot_size * PMD_SLOTS);
    free(sv->pmd_free);
    sv->pmd_free = NULL;
    return -1;
  }
  sv->pmd_pool = p;
  for (i = 0; i < PMD_SLOTS; i++) sv->pmd_free[i] = (int)(PMD_SLOTS - 1 - i);
  sv->pmd_nfree = PMD_SLOTS;
  return 0;
}

#ifdef LIGHTWS_TOOLS_TLS
/* wss: the server context and the pool of struct lightws_tls, one slot per
 * descriptor the process may open (RLIMIT_NOFILE, at most TLS_SLOTS_MAX),
 * in one MAP_NORESERVE mapping: a slot's pages are touched by the first
 * connection that uses it, and slots are reused most recent first. */
static int tls_init(struct server *sv, const char *cert, const char *key)
{
  struct lightws_tls_config cfg;
  struct rlimit rl;
  char why[256] = "";
  size_t i;
  int err = 0;
  void *p;

  memset(&cfg, 0, sizeof(cfg));
  cfg.cert_file = cert;
  cfg.key_file = key ? key : cert;
  sv->tls_ctx = lightws_tls_ctx(LIGHTWS_SERVER, &cfg, &err, why, sizeof(why));
  if (!sv->tls_ctx) {
    fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, cert, lightws_tls_errname(err),
            lightws_tls_strerror(err), why[0] ? ": " : "", why);
    return -1;
  }
  sv->tls_slots = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    sv->tls_slots = (size_t)rl.rlim_cur;
  if (sv->tls_slots > TLS_SLOTS_MAX) sv->tls_slots = TLS_SLOTS_MAX;
  sv->tls_slot_size = (sizeof(struct lightws_tls) + 63) & ~(size_t)63;
  p = mmap(NULL, sv->tls_slot_size * sv->tls_slots, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  sv->tls_free = malloc(sv->tls_slots * sizeof(*sv->tls_free));
  if (p == MAP_FAILED || !sv->tls_free) {
    fprintf(stderr, "%s: no memory for %zu TLS connections\n", prog,
            sv->tls_slots);
    if (p != MAP_FAILED) munmap(p, sv->tls_slot_size * sv->tls_slots);
    free(sv->tls_free);
    lightws_tls_ctx_free(sv->tls_ctx);
    return -1;
  }
  sv->tls_pool = p;
  for (i = 0; i < sv->tls_slots; i++)
    sv->tls_free[i] = (int)(sv->tls_slots - 1 - i);
  sv->tls_nfree = sv->tls_slots;
  sv->tls = 1;
  return 0;
}

static void tls_done(struct server *sv)
{
  if (!sv->tls) return;
  munmap(sv->tls_pool, sv->tls_slot_size * sv->tls_slots);
  free(sv->tls_free);
  lightws_tls_ctx_free(sv->tls_ctx);
}
#endif

/* The --stats line (SIGUSR1, and at exit): connections open now and
 * accepted so far, messages and payload bytes echoed. */
static void print_stats(const struct server *sv, int workers)
{
  char who[32] = "";

  if (workers > 1) snprintf(who, sizeof(who), " (worker %ld)", (long)getpid());
  fprintf(stderr, "%s: stats%s: connections %lu open, %llu accepted; "
          "messages %llu; bytes %llu\n", prog, who, sv->nconns, sv->accepted,
          sv->msgs, sv->bytes);
}

/* One event loop on listening socket `lfd` until SIGTERM/SIGINT. */
static int run_server(int lfd, int quiet, int stats, int workers,
                      uint32_t max_message, const struct lightws_timeouts *to,
                      int deflate, const char *tls_cert, const char *tls_key)
{
  struct server sv;
  struct epoll_event evs[256], e;

  memset(&sv, 0, sizeof(sv));
  sv.quiet = quiet;
  sv.sbuf = malloc(SHARED_SIZE);
  if (!sv.sbuf) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return 1;
  }
  sv.max_message = max_message;
  sv.to = *to;
#ifdef LIGHTWS_TOOLS_TLS
  if (tls_cert && tls_init(&sv, tls_cert, tls_key) < 0) return 1;
#else
  (void)tls_cert;
  (void)tls_key;
#endif
  /* the defaults: window 12, memLevel 5 (lightws.h; python websockets') */
  sv.deflate = deflate && pmd_pool_init(&sv) == 0;
  sv.lfd = lfd;
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

  while (!stop_flag) {
    int i, n, timeout = -1;

    if (stats_flag) {
      stats_flag = 0;
      print_stats(&sv, workers);
    }
    /* The one timer: sleep until the earliest deadline. */
    if (sv.ready) {
      timeout = 0;
    } else if (tool_heap_top(&sv.heap)) {
      uint64_t now = lightws_now(), top = tool_heap_top(&sv.heap)->key;
      timeout = top <= now ? 0 : top - now > 1000000 ? 1000000 : (int)(top - now);
    }
    if (sv.paused && (timeout < 0 || timeout > 500)) timeout = 500;
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
      if (c->dead) continue;
      if (c->listed == 1) list_del(&sv, c);
      conn_run(&sv, c);
      if (!c->dead) conn_schedule(&sv, c, 0);
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
        if (!c->dead) conn_schedule(&sv, c, 0);
      }
    }
    if (n == 0) sv.wakeups++;
    run_timers(&sv);
    free_dead(&sv);
    if (sv.paused && n == 0) listener_pause(&sv, 0); /* retry accepting */
  }
  if (!quiet)
    fprintf(stderr, "%s: timer: %lu wake-ups, %lu ticks\n", prog, sv.wakeups,
            sv.ticks);
  if (stats) print_stats(&sv, workers);
  /* Connections with a deadline are in the heap: free them (and it) so a
   * leak checker sees a clean exit. */
  sv.quiet = 1;
  while (tool_heap_top(&sv.heap)) conn_free(&sv, timer_conn(tool_heap_top(&sv.heap)));
  free_dead(&sv);
  tool_heap_free(&sv.heap);
  free(sv.sbuf);
  close(sv.lfd);
  close(sv.ep);
  if (sv.pmd_pool) munmap(sv.pmd_pool, sv.pmd_slot_size * PMD_SLOTS);
  free(sv.pmd_free);
#ifdef LIGHTWS_TOOLS_TLS
  tls_done(&sv);
#endif
  return 0;
}

/* --workers N: N listeners on one port (SO_REUSEPORT: the kernel spreads
 * connections over them), one forked event loop each; the parent only
 * waits, passing SIGTERM/SIGINT/SIGUSR1 on. Exit status: 0 when every
 * worker exited 0, else 1. */
static int run_workers(const char *host, int port, int workers, int quiet,
                       int stats, uint32_t max_message,
                       const struct lightws_timeouts *to, int deflate,
                       const char *tls_cert, const char *tls_key)
{
  pid_t pids[64];
  int fds[64], i, bound = port, alive = 0, failed = 0;

  for (i = 0; i < workers; i++) {
    fds[i] = tool_tcp_listen_shared(prog, host, bound, &bound);
    if (fds[i] < 0) {
      while (i-- > 0) close(fds[i]);
      return 1;
    }
  }
  if (strchr(host, ':')) printf("listening on [%s]:%d\n", host, bound);
  else printf("listening on %s:%d\n", host, bound);
  fflush(stdout);
  for (i = 0; i < workers; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      int j, rc;
      for (j = 0; j < workers; j++)
        if (j != i) close(fds[j]);
      rc = run_server(fds[i], quiet, stats, workers, max_message, to, deflate,
                      tls_cert, tls_key);
      fflush(NULL);
      _exit(rc);
    }
    if (pids[i] < 0) {
      fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
      failed = 1;
      stop_flag = 1;
      break;
    }
    alive++;
  }
  for (i = 0; i < workers; i++) close(fds[i]);
  while (alive > 0) {
    int st, k;
    pid_t pid;
    if (stop_flag == 1) {
      for (k = 0; k < workers; k++)
        if (pids[k] > 0) kill(pids[k], SIGTERM);
      stop_flag = 2; /* passed on once */
    }
    if (stats_flag) {
      stats_flag = 0;
      for (k = 0; k < workers; k++)
        if (pids[k] > 0) kill(pids[k], SIGUSR1);
    }
    pid = waitpid(-1, &st, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (k = 0; k < workers; k++) {
      if (pids[k] != pid) continue;
      pids[k] = 0;
      alive--;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        failed = 1;
        if (!stop_flag) {
          fprintf(stderr, "%s: worker %ld ended (%s %d); stopping the others\n",
                  prog, (long)pid, WIFEXITED(st) ? "status" : "signal",
                  WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
          stop_flag = 1;
        }
      }
    }
  }
  return failed;
}

/* ------------------------------------------------------------------------
 * Client: connect and echo until the server closes (how a conformance
 * suite, e.g. a fuzzing server, drives the library in the client role)
 * ------------------------------------------------------------------------ */

/* Ends the client side: our close (the reply, or the error close the
 * library queued) goes out, then we wait, bounded, for the server to close
 * TCP first (§7.1.1) so the close frame is never lost to a reset. */
/* One fixed deadline for all of it: the core's close deadline (CLOSE_MS
 * from the close frame), so a server that keeps sending after the close
 * handshake cannot hold the client (each read does not restart a wait). */
static void client_end(struct lightws_stream *s, int fd, uint8_t *buf,
                       size_t size)
{
  uint64_t until = lightws_stream_deadline(s), now = lightws_now();

  if (until == LIGHTWS_NO_DEADLINE || until > now + CLOSE_MS)
    until = now + CLOSE_MS;
  tool_set_nonblock(fd, 1);
  for (;;) {
    struct pollfd pf = { fd, POLLIN, 0 };
    int r = lightws_stream_flush(s);
    ssize_t n;

    now = lightws_now();
    if (now >= until) break;
    if (r == LIGHTWS_ERR_WOULDBLOCK) pf.events |= POLLOUT;
    r = poll(&pf, 1, (int)(until - now));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (!(pf.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    n = read(fd, buf, size);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
  }
  close(fd);
}

/* The client's TLS layer (one connection: static, ~37 KiB), NULL for ws://. */
static struct lightws_tls *client_tls;

/* A client error line; over TLS the layer's named error and OpenSSL's
 * reason for a TLS failure. */
static void client_error(const char *what, int err)
{
  const char *name, *msg, *reason;
  int saved = errno;
  err = tool_err(client_tls, err, &name, &msg, &reason);
  if (err == LIGHTWS_ERR_SYSTEM) reason = strerror(saved);
  fprintf(stderr, "%s: %s%s%s (%s)%s%s\n", prog, what, what[0] ? ": " : "",
          name, msg, reason[0] ? ": " : "", reason);
}

/* client_end over TLS: the queued close goes out and, once the close
 * handshake is complete, close_notify (lightws_tls_close, bounded); then
 * the TLS layer is freed and we wait for the server's FIN as over TCP. */
static void client_close(struct lightws_stream *s, int fd, uint8_t *buf,
                         size_t size)
{
#ifdef LIGHTWS_TOOLS_TLS
  if (client_tls) {
    uint64_t until = lightws_now() + CLOSE_MS;
    (void)lightws_tls_close(client_tls, s, CLOSE_MS);
    client_tls = NULL;
    tool_set_nonblock(fd, 1);
    for (;;) {
      struct pollfd pf = { fd, POLLIN, 0 };
      uint64_t now = lightws_now();
      ssize_t n;
      int r;
      if (now >= until) break;
      r = poll(&pf, 1, (int)(until - now));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      n = read(fd, buf, size);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) break;
    }
    close(fd);
    return;
  }
#endif
  client_end(s, fd, buf, size);
}

static int run_client(const char *url, int quiet, uint32_t timeout_ms,
                      int deflate, const char *cafile, int insecure)
{
#ifdef LIGHTWS_TOOLS_TLS
  static struct lightws_tls tls;
#endif
  struct ssl_ctx_st *ctx = NULL;
  static const struct lightws_pmd_config pmd_cfg; /* the defaults */
  static uint8_t pmd_mem[PMD_CLIENT_MEM] __attribute__((aligned(64)));
  struct lightws_timeouts to;
  struct lightws_client_options opt;
  static uint8_t rbuf[64 * 1024];
  int in_msg = 0, msg_deflated = 0, final;
  struct lightws_stream s;
  struct tool_url u;
  int fd, r;

  r = tool_client_target(prog, url, &u, cafile, insecure, &ctx);
  if (r) return r;
  fd = tool_tcp_connect(prog, u.host, u.port);
  if (fd < 0) return 1;
  memset(&to, 0, sizeof(to));
  memset(&opt, 0, sizeof(opt));
  to.handshake = timeout_ms;
  to.close = CLOSE_MS;
  opt.timeouts = &to;
  if (deflate && lightws_pmd_available() &&
      lightws_pmd_mem_size(&pmd_cfg) <= sizeof(pmd_mem)) {
    opt.deflate = &pmd_cfg;
    opt.deflate_mem = pmd_mem;
    opt.deflate_mem_size = sizeof(pmd_mem);
  }
#ifdef LIGHTWS_TOOLS_TLS
  if (ctx) {
    client_tls = &tls;
    r = lightws_tls_connect(&tls, ctx, &s, fd, rbuf, sizeof(rbuf), u.authority,
                            u.path, &opt);
  } else
#endif
  r = lightws_connect(&s, fd, rbuf, sizeof(rbuf), u.authority, u.path, &opt);
  if (r == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) {
    fprintf(stderr, "%s: %s: no websocket handshake within %.3g s (%s)\n",
            prog, url, timeout_ms / 1000.0, lightws_errname(r));
    r = 1;
    goto out;
  }
  if (r < 0) {
    client_error("handshake", r);
    r = 1;
    goto out;
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
      client_error("", (int)n);
      if (n == LIGHTWS_ERR_EOF || n == LIGHTWS_ERR_SYSTEM) {
        r = 1;
        goto out;
      }
      client_close(&s, fd, rbuf, sizeof(rbuf));
      fd = -1;
      r = 1;
      goto out;
    }
    if (!in_msg) {
      in_msg = 1;
      msg_deflated = lightws_stream_deflate(&s) &&
                     chunk_inflated(pmd_mem, sizeof(pmd_mem), &ch);
    }
    if (n == 0 && !ch.message_end) continue;
    p = ch.data;
    left = (size_t)n;
    /* as the server's echo_flags(): compressed in, compressed out (then the
     * chunks go in as fragments and an empty final call ends the message) */
    final = ch.message_end && msg_deflated;
    for (;;) {
      unsigned fl = ch.message_end && !msg_deflated ? 0 : LIGHTWS_SEND_FRAGMENT;
      ssize_t w;
      if (!msg_deflated && lightws_stream_deflate(&s))
        fl |= LIGHTWS_SEND_NO_COMPRESS;
      if (left == 0 && final) fl = 0;
      w = lightws_stream_send(&s, ch.opcode, p, left, fl);
      if (w < 0) {
        client_error("send", (int)w);
        r = 1;
        goto out;
      }
      if (left == 0 && fl == 0) break;
      p += w;
      left -= (size_t)w;
      if (left == 0 && !final) break;
    }
    if (ch.message_end) in_msg = 0;
  }
  if (!quiet) {
    size_t rl;
    const char *reason = lightws_stream_close_reason(&s, &rl);
    fprintf(stderr, "%s: server closed with %u '%.*s'%s\n", prog,
            lightws_stream_close_code(&s), (int)rl, reason,
            lightws_stream_deflate(&s) ? " permessage-deflate" : "");
  }
  client_close(&s, fd, rbuf, sizeof(rbuf));
  fd = -1;
  r = 0;
out:
#ifdef LIGHTWS_TOOLS_TLS
  if (client_tls) lightws_tls_free(client_tls);
  client_tls = NULL;
  lightws_tls_ctx_free(ctx);
#endif
  if (fd >= 0) close(fd);
  return r;
}

int main(int argc, char **argv)
{
  const char *host = "127.0.0.1", *client = NULL;
  long long port = -1, maxmsg = LIGHTWS_DEFAULT_MAX_MESSAGE;
  long long hs_ms = HANDSHAKE_MS, idle_ms = 0, ping_ms = 0, pong_ms = -1;
  long long client_ms = CLIENT_TIMEOUT_MS;
  struct lightws_timeouts to;
  const char *tls_cert = NULL, *tls_key = NULL, *cafile = NULL;
  int quiet = 0, deflate = 1, insecure = 0, stats = 0, i, ok;
  long long workers = 1;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = 1;
    } else if (!strcmp(a, "--no-deflate")) {
      deflate = 0;
    } else if (!strcmp(a, "--stats")) {
      stats = 1;
    } else if (!strcmp(a, "--workers") && v) {
      workers = tool_parse_num(v, 1, 64, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad --workers '%s' (1..64)\n", prog, v);
        return 2;
      }
      i++;
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
    } else if ((!strcmp(a, "--handshake-timeout") || !strcmp(a, "--idle-timeout") ||
                !strcmp(a, "--ping-interval") || !strcmp(a, "--ping-timeout") ||
                !strcmp(a, "--timeout")) && v) {
      long long ms = tool_parse_seconds(v, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad %s '%s' (seconds)\n", prog, a, v);
        return 2;
      }
      if (!strcmp(a, "--handshake-timeout")) hs_ms = ms;
      else if (!strcmp(a, "--idle-timeout")) idle_ms = ms;
      else if (!strcmp(a, "--ping-interval")) ping_ms = ms;
      else if (!strcmp(a, "--ping-timeout")) pong_ms = ms;
      else client_ms = ms;
      i++;
    } else if (!strcmp(a, "--client") && v) {
      client = v;
      i++;
    } else if (!strcmp(a, "--tls-cert") && v) {
      tls_cert = v;
      i++;
    } else if (!strcmp(a, "--tls-key") && v) {
      tls_key = v;
      i++;
    } else if (!strcmp(a, "--cafile") && v) {
      cafile = v;
      i++;
    } else if (!strcmp(a, "--insecure") || !strcmp(a, "-k")) {
      insecure = 1;
    } else {
      fprintf(stderr, "%s: unknown or incomplete option '%s'\n", prog, a);
      usage(stderr);
      return 2;
    }
  }
  if (!TOOL_HAVE_TLS && (tls_cert || tls_key || cafile || insecure)) {
    fprintf(stderr, "%s: %s\n", prog, TOOL_NO_TLS_MSG);
    return 2;
  }
  if (client ? (tls_cert || tls_key) : (cafile || insecure)) {
    fprintf(stderr, "%s: %s\n", prog, client
            ? "--tls-cert/--tls-key are for the server"
            : "--cafile/--insecure are for --client wss://");
    return 2;
  }
  if (tls_key && !tls_cert) {
    fprintf(stderr, "%s: --tls-key needs --tls-cert\n", prog);
    return 2;
  }
  if (client) {
    /* The client blocks in the library's reads, which retry EINTR: a
     * handler would only be noted, never acted on, so SIGTERM and SIGINT
     * keep their default action (the client ends at once). */
    signal(SIGPIPE, SIG_IGN);
    return run_client(client, quiet, (uint32_t)client_ms, deflate, cafile,
                      insecure);
  }
  install_signals();
  if (port < 0) {
    fprintf(stderr, "%s: --port is required\n", prog);
    usage(stderr);
    return 2;
  }
  memset(&to, 0, sizeof(to));
  to.handshake = (uint32_t)hs_ms;
  to.idle = (uint32_t)idle_ms;
  to.ping_interval = (uint32_t)ping_ms;
  to.ping_timeout = (uint32_t)(pong_ms < 0 ? ping_ms : pong_ms);
  to.close = CLOSE_MS;
  if (workers > 1)
    return run_workers(host, (int)port, (int)workers, quiet, stats,
                       (uint32_t)maxmsg, &to, deflate, tls_cert, tls_key);
  {
    int bound, lfd = tool_tcp_listen(prog, host, (int)port, &bound);
    if (lfd < 0) return 1;
    if (strchr(host, ':')) printf("listening on [%s]:%d\n", host, bound);
    else printf("listening on %s:%d\n", host, bound);
    fflush(stdout);
    return run_server(lfd, quiet, stats, 1, (uint32_t)maxmsg, &to, deflate,
                      tls_cert, tls_key);
  }
}
