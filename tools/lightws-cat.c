/* SPDX-License-Identifier: MIT */
/* lightws-cat: stdin to websocket messages and received payload to stdout (client or one-shot server). */
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
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_SIZE (64 * 1024)
#define IN_CHUNK (64 * 1024)
#define CLOSE_WAIT_MS 5000   /* how long to wait for the peer's close, from
                                our close frame (one fixed deadline) */
#define TIMEOUT_MS 10000     /* default --timeout: the opening handshake */
#define PMD_MEM (512 * 1024) /* the connection's deflate block */

static const char *prog = "lightws-cat";

struct cat {
  struct lightws_stream s;
  int fd;
  int text;                /* --text: lines <-> text messages */
  int listen_mode;
  /* stdin data not sent yet: [in_start, in_end) of inbuf */
  uint8_t *inbuf;
  size_t in_cap, in_start, in_end;
  int stdin_eof;
  /* the message being sent: a view into inbuf */
  const uint8_t *msg;
  size_t msg_left;
  size_t msg_consume;      /* inbuf bytes it ends at (newline included) */
  int msg_active;
  int close_sent;
  int closed;              /* peer's close arrived */
  int status;              /* exit status once closed */
  struct lightws_tls *tls; /* wss: the TLS layer under s (NULL: plain) */
};

/* What to poll the socket for after a WOULDBLOCK: over TLS the layer's
 * answer (it may need the other direction), else the stream's. */
static int cat_want(const struct cat *c)
{
#ifdef LIGHTWS_TOOLS_TLS
  if (c->tls) return lightws_tls_want(c->tls, &c->s);
#endif
  return lightws_stream_want(&c->s);
}


static void usage(FILE *f)
{
  fprintf(f,
          "usage: %s [--text] [--timeout S] [--no-deflate]\n"
          "          [--cafile F] [--insecure] ws[s]://HOST:PORT/PATH\n"
          "       %s [--text] [--timeout S] [--no-deflate] --listen PORT [--host ADDR]\n"
          "          [--tls-cert F --tls-key F]\n"
          "--timeout: the opening handshake must end within S seconds\n"
          "(default 10; fractions allowed; 0 waits forever).\n"
          "Sends stdin as binary messages (--text: one text message per line)\n"
          "and writes received payload to stdout (--text: one line per\n"
          "message). On stdin EOF sends close 1000 and waits for the peer's.\n"
          "--listen accepts one connection; port 0 picks a free one and prints\n"
          "\"listening on HOST:PORT\" to stderr.\n"
          "permessage-deflate (RFC 7692) is negotiated in both modes (window\n"
          "12 bits, memLevel 5); --no-deflate turns it off.\n"
          "wss:// (TLS; %s): the server certificate is verified against\n"
          "the system CAs, or the PEM CAs of --cafile, and the URL's host;\n"
          "--insecure skips both (tests only). A rejected certificate prints\n"
          "its error (TLS_CERT_EXPIRED, TLS_CERT_HOSTNAME, TLS_CERT_UNTRUSTED,\n"
          "...) and exits 1. --listen with --tls-cert F (PEM chain) and\n"
          "--tls-key F (PEM key; default: in F) serves wss://; the TLS\n"
          "handshake counts in --timeout. close_notify follows a clean close.\n",
          prog, prog, TOOL_HAVE_TLS ? "this build has it" : TOOL_NO_TLS_MSG);
}

static struct cat cat;

static void die_err(const char *what, int err)
{
  const char *name, *msg, *reason;
  tool_err(cat.tls, err, &name, &msg, &reason);
  fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, what, name, msg,
          reason[0] ? ": " : "", reason);
  exit(1);
}

static void write_all(int fd, const void *buf, size_t len)
{
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "%s: write to stdout: %s\n", prog, strerror(errno));
      exit(1);
    }
    p += n;
    len -= (size_t)n;
  }
}

/* Picks the next message out of inbuf; 0 if none is complete yet. */
static int next_message(struct cat *c)
{
  size_t avail = c->in_end - c->in_start;
  const uint8_t *start = c->inbuf + c->in_start;

  if (!c->text) {
    if (avail == 0) return 0;
    c->msg = start;
    c->msg_left = avail;
    c->msg_consume = avail;
  } else {
    const uint8_t *nl = avail ? memchr(start, '\n', avail) : NULL;
    struct lightws_utf8 u;
    if (nl) {
      c->msg_left = (size_t)(nl - start);
      c->msg_consume = c->msg_left + 1;
    } else if (c->stdin_eof && avail > 0) {
      c->msg_left = avail; /* last line without a newline */
      c->msg_consume = avail;
    } else {
      return 0;
    }
    c->msg = start;
    /* §5.6: text must be UTF-8; the library does not check what we send. */
    memset(&u, 0, sizeof(u));
    if (lightws_utf8_feed(&u, c->msg, c->msg_left) != LIGHTWS_UTF8_VALID) {
      /* Stop reading stdin; the connection still closes cleanly. */
      fprintf(stderr, "%s: stdin line is not valid UTF-8 (use binary mode)\n",
              prog);
      c->stdin_eof = 1;
      c->in_start = c->in_end = 0;
      c->status = 1;
      return 0;
    }
  }
  c->msg_active = 1;
  return 1;
}

/* Sends what it can; returns when the socket would block or all is sent. */
static void pump_send(struct cat *c)
{
  for (;;) {
    ssize_t n;
    if (!c->msg_active && !next_message(c)) break;
    n = lightws_stream_send(&c->s, c->text ? LIGHTWS_OPCODE_TEXT
                                            : LIGHTWS_OPCODE_BINARY,
                            c->msg, c->msg_left, 0);
    if (n == LIGHTWS_ERR_WOULDBLOCK) return;
    if (n < 0) die_err("send", (int)n);
    c->msg += n;
    c->msg_left -= (size_t)n;
    if (c->msg_left > 0) continue;
    c->msg_active = 0;
    c->in_start += c->msg_consume;
    if (c->in_start == c->in_end) c->in_start = c->in_end = 0;
  }
  if (c->stdin_eof && !c->msg_active && c->in_start == c->in_end &&
      !c->close_sent && !c->closed) {
    int r = lightws_stream_close(&c->s, LIGHTWS_CLOSE_NORMAL, NULL, 0);
    if (r == 0) c->close_sent = 1;
    else if (r != LIGHTWS_ERR_WOULDBLOCK) die_err("close", r);
  }
  if (c->close_sent) {
    int r = lightws_stream_flush(&c->s);
    if (r < 0 && r != LIGHTWS_ERR_WOULDBLOCK) die_err("flush", r);
  }
}

static void read_stdin(struct cat *c)
{
  ssize_t n;

  if (c->in_start > 0) { /* keep the unsent tail at the front */
    memmove(c->inbuf, c->inbuf + c->in_start, c->in_end - c->in_start);
    c->in_end -= c->in_start;
    c->in_start = 0;
  }
  if (c->in_cap - c->in_end < IN_CHUNK / 2) { /* a long line: grow */
    uint8_t *nb = realloc(c->inbuf, c->in_cap * 2);
    if (!nb) {
      fprintf(stderr, "%s: out of memory\n", prog);
      exit(1);
    }
    c->inbuf = nb;
    c->in_cap *= 2;
  }
  n = read(0, c->inbuf + c->in_end, c->in_cap - c->in_end);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    fprintf(stderr, "%s: read stdin: %s\n", prog, strerror(errno));
    exit(1);
  }
  if (n == 0) c->stdin_eof = 1;
  c->in_end += (size_t)n;
}

/* Reads all that is available; returns 1 once the peer's close arrived. */
static int pump_recv(struct cat *c)
{
  for (;;) {
    struct lightws_chunk ch;
    ssize_t n = lightws_stream_recv(&c->s, &ch);
    if (n >= 0) {
      if (n > 0) write_all(1, ch.data, (size_t)n);
      if (c->text && ch.message_end) write_all(1, "\n", 1);
      continue;
    }
    if (n == LIGHTWS_ERR_WOULDBLOCK) return 0;
    if (n == LIGHTWS_ERR_CLOSED) {
      unsigned code = lightws_stream_close_code(&c->s);
      c->closed = 1;
      if (code != LIGHTWS_CLOSE_NORMAL && code != LIGHTWS_CLOSE_NO_STATUS) {
        size_t rl;
        const char *reason = lightws_stream_close_reason(&c->s, &rl);
        fprintf(stderr, "%s: peer closed with %u %.*s\n", prog, code,
                (int)rl, reason);
      }
      return 1;
    }
    die_err("receive", (int)n);
  }
}

/* After the close handshake: the server closes TCP first (§7.1.1), the
 * client waits for that; both wait a bounded time. */
static void finish(struct cat *c)
{
  uint8_t buf[4096];
  uint64_t until = lightws_now() + 2000; /* fixed: input does not extend it */

  while (lightws_stream_flush(&c->s) == LIGHTWS_ERR_WOULDBLOCK) {
    struct pollfd pf = { c->fd, 0, 0 };
    uint64_t now = lightws_now();
    int want = cat_want(c);
    pf.events = (short)((want & LIGHTWS_WANT_READ ? POLLIN : 0) |
                        (want & LIGHTWS_WANT_WRITE || !want ? POLLOUT : 0));
    if (now >= until || poll(&pf, 1, (int)(until - now)) <= 0) break;
  }
#ifdef LIGHTWS_TOOLS_TLS
  /* close_notify after a clean close handshake (docs/tls.md) */
  if (c->tls && lightws_stream_closing(&c->s) == 2) {
    while (lightws_tls_shutdown(c->tls) == LIGHTWS_ERR_WOULDBLOCK) {
      struct pollfd pf = { c->fd, 0, 0 };
      uint64_t now = lightws_now();
      int want = lightws_tls_want(c->tls, NULL);
      pf.events = (short)((want & LIGHTWS_WANT_READ ? POLLIN : 0) |
                          (want & LIGHTWS_WANT_WRITE || !want ? POLLOUT : 0));
      if (now >= until || poll(&pf, 1, (int)(until - now)) <= 0) break;
    }
  }
#endif
  if (c->listen_mode) shutdown(c->fd, SHUT_WR);
  for (;;) {
    struct pollfd pf = { c->fd, POLLIN, 0 };
    uint64_t now = lightws_now();
    ssize_t n;
    if (now >= until || poll(&pf, 1, (int)(until - now)) <= 0) break;
    n = read(c->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
  }
#ifdef LIGHTWS_TOOLS_TLS
  if (c->tls) lightws_tls_free(c->tls);
#endif
  close(c->fd);
}

#ifdef LIGHTWS_TOOLS_TLS
#endif

int main(int argc, char **argv)
{
  static uint8_t rbuf[RBUF_SIZE];
  static uint8_t pmd_mem[PMD_MEM] __attribute__((aligned(64)));
  static const struct lightws_pmd_config pmd_cfg; /* the defaults */
  struct cat *c = &cat;
  const char *tls_cert = NULL, *tls_key = NULL, *cafile = NULL;
  int insecure = 0;
#ifdef LIGHTWS_TOOLS_TLS
  static struct lightws_tls tls; /* one connection: static, ~37 KiB */
#endif
  struct ssl_ctx_st *ctx = NULL;
  const char *url = NULL, *host = "127.0.0.1";
  long long port = -1, timeout_ms = TIMEOUT_MS;
  uint64_t close_until = 0;
  struct lightws_timeouts to;
  int i, ok, r, deflate = 1;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--text") || !strcmp(a, "-t")) {
      c->text = 1;
    } else if (!strcmp(a, "--no-deflate")) {
      deflate = 0;
    } else if (!strcmp(a, "--listen") && v) {
      port = tool_parse_num(v, 0, 65535, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad port '%s'\n", prog, v);
        return 2;
      }
      c->listen_mode = 1;
      i++;
    } else if (!strcmp(a, "--timeout") && v) {
      timeout_ms = tool_parse_seconds(v, &ok);
      if (!ok) {
        fprintf(stderr, "%s: bad --timeout '%s' (seconds)\n", prog, v);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--host") && v) {
      host = v;
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
    } else if (a[0] != '-' && !url) {
      url = a;
    } else {
      fprintf(stderr, "%s: unknown or incomplete option '%s'\n", prog, a);
      usage(stderr);
      return 2;
    }
  }
  if (!!url == !!c->listen_mode) {
    usage(stderr);
    return 2;
  }
  if (!TOOL_HAVE_TLS && (tls_cert || tls_key || cafile || insecure)) {
    fprintf(stderr, "%s: %s\n", prog, TOOL_NO_TLS_MSG);
    return 2;
  }
  if (url ? (tls_cert || tls_key) : (cafile || insecure)) {
    fprintf(stderr, "%s: %s\n", prog, url
            ? "--tls-cert/--tls-key are for --listen (a wss:// server)"
            : "--cafile/--insecure are for a wss:// client");
    return 2;
  }
  if (tls_key && !tls_cert) {
    fprintf(stderr, "%s: --tls-key needs --tls-cert\n", prog);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  memset(&to, 0, sizeof(to));
  to.handshake = (uint32_t)timeout_ms;
  if (deflate && (!lightws_pmd_available() ||
                  lightws_pmd_mem_size(&pmd_cfg) > sizeof(pmd_mem)))
    deflate = 0; /* a build without zlib */

  if (url) {
    struct tool_url u;
    r = tool_client_target(prog, url, &u, cafile, insecure, &ctx);
    if (r) return r;
    c->fd = tool_tcp_connect(prog, u.host, u.port);
    if (c->fd < 0) return 1;
    struct lightws_client_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.timeouts = &to;
    if (deflate) {
      opt.deflate = &pmd_cfg;
      opt.deflate_mem = pmd_mem;
      opt.deflate_mem_size = sizeof(pmd_mem);
    }
#ifdef LIGHTWS_TOOLS_TLS
    if (ctx) {
      c->tls = &tls;
      r = lightws_tls_connect(c->tls, ctx, &c->s, c->fd, rbuf, sizeof(rbuf),
                              u.authority, u.path, &opt);
    } else
#endif
    r = lightws_connect(&c->s, c->fd, rbuf, sizeof(rbuf), u.authority,
                        u.path, &opt);
    if (r == LIGHTWS_ERR_HANDSHAKE_TIMEOUT) {
      fprintf(stderr, "%s: %s: no websocket handshake within %.3g s (%s)\n",
              prog, url, timeout_ms / 1000.0, lightws_errname(r));
      return 1;
    }
    if (r < 0) die_err("handshake", r);
  } else {
    int bound, lfd;
#ifdef LIGHTWS_TOOLS_TLS
    if (tls_cert) {
      struct lightws_tls_config cfg;
      char why[256] = "";
      int e = 0;
      memset(&cfg, 0, sizeof(cfg));
      cfg.cert_file = tls_cert;
      cfg.key_file = tls_key ? tls_key : tls_cert;
      ctx = lightws_tls_ctx(LIGHTWS_SERVER, &cfg, &e, why, sizeof(why));
      if (!ctx) {
        fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, tls_cert,
                lightws_tls_errname(e), lightws_tls_strerror(e),
                why[0] ? ": " : "", why);
        return 1;
      }
    }
#endif
    lfd = tool_tcp_listen(prog, host, (int)port, &bound);
    if (lfd < 0) return 1;
    fprintf(stderr, strchr(host, ':') ? "listening on [%s]:%d\n"
                                      : "listening on %s:%d\n", host, bound);
    fflush(stderr);
    do {
      c->fd = accept(lfd, NULL, NULL);
    } while (c->fd < 0 && errno == EINTR);
    if (c->fd < 0) {
      fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
      return 1;
    }
    close(lfd);
    tool_set_nodelay(c->fd);
    {
      struct lightws_server_options sopt;
      memset(&sopt, 0, sizeof(sopt));
      sopt.timeouts = &to;
      if (deflate) {
        sopt.deflate = &pmd_cfg;
        sopt.deflate_mem = pmd_mem;
        sopt.deflate_mem_size = sizeof(pmd_mem);
      }
#ifdef LIGHTWS_TOOLS_TLS
      if (ctx) {
        c->tls = &tls;
        /* TLS and websocket handshakes within the one --timeout,
         * permessage-deflate as in plain mode */
        r = lightws_tls_accept(c->tls, ctx, &c->s, c->fd, rbuf, sizeof(rbuf),
                               NULL, &sopt);
      } else
#endif
      r = lightws_accept(&c->s, c->fd, rbuf, sizeof(rbuf), NULL, &sopt);
    }
    if (r < 0) die_err("handshake", r);
  }
  /* From here on nothing blocks: stdin and the socket are polled together
   * so a peer that echoes never deadlocks against our writes. */
  tool_set_nonblock(c->fd, 1);
  /* The loop below keeps its own deadlines (time off in the core, which
   * read the descriptor's blocking mode at set_timeouts). */
  lightws_stream_set_timeouts(&c->s, NULL, 0);
  c->in_cap = IN_CHUNK;
  c->inbuf = malloc(c->in_cap);
  if (!c->inbuf) return 1;

  for (;;) {
    struct pollfd pf[2];
    int nfds = 1, want, timeout = -1;

    /* Frames that came with the handshake, or after a write, may already
     * sit in rbuf: read before sleeping. */
    if (pump_recv(c)) break;
    pump_send(c);
    if (c->closed) break;

    pf[0].fd = c->fd;
    pf[0].events = POLLIN;
    pf[0].revents = 0;
    want = cat_want(c);
    if (c->msg_active || (want & LIGHTWS_WANT_WRITE)) pf[0].events |= POLLOUT;
    /* Read stdin only when no message is waiting to go out. */
    if (!c->stdin_eof && !c->msg_active) {
      pf[1].fd = 0;
      pf[1].events = POLLIN;
      pf[1].revents = 0;
      nfds = 2;
    }
    if (c->close_sent) {
      uint64_t now = lightws_now();
      if (!close_until) close_until = now + CLOSE_WAIT_MS;
      timeout = close_until > now ? (int)(close_until - now) : 0;
    }
    /* Over TLS nothing decrypted waits inside OpenSSL here: pump_recv
     * read until WOULDBLOCK, which the stream says only once SSL_read
     * said WANT_READ (no whole record left: lightws_tls_buffered() 0). */
    r = poll(pf, (nfds_t)nfds, timeout);
    if (r < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
      return 1;
    }
    if (r == 0) {
      fprintf(stderr, "%s: timed out waiting for the peer's close\n", prog);
      return 1;
    }
    if (nfds == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
      read_stdin(c);
  }
  finish(c);
  free(c->inbuf);
#ifdef LIGHTWS_TOOLS_TLS
  lightws_tls_ctx_free(ctx);
#endif
  return c->status;
}
