/* SPDX-License-Identifier: MIT */
/*
 * loadgen: many-connection websocket load generator (issue 18).
 *
 * N active connections each send an M-byte masked message and wait for its
 * echo (K messages in flight with --inflight K), checking every echoed
 * byte; an echo split into several frames is reassembled and the frames
 * per echo are counted. --idle N more connections only do the opening
 * handshake and then stay silent (answering pings). After --warmup seconds
 * a window of --duration seconds is measured; one JSON line goes to
 * stdout. With --server-pid the server's CPU time (its process tree:
 * forking servers included) over the window and its memory (PSS, summed
 * over the tree) before the first connection and at the end of the window
 * are measured too.
 *
 * Cheap per message by design: the masked frames are built once (a pool of
 * --pool messages with distinct random mask keys and payloads), sent with
 * writev straight from the pool, one writev per connection per loop turn;
 * echoes are parsed in place from one shared read buffer and compared with
 * memcmp, so a connection holds no buffer of its own. Any mismatch,
 * protocol error or unexpected close exits 1 with {"error": ...}.
 */
#define _GNU_SOURCE
#include "lightws.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 64
#define HS_BUF 2048
#define RBUF (256 * 1024)
#define MAX_EVENTS 512
#define MAX_PIDS 65536

enum { ST_CONNECT, ST_HS_SEND, ST_HS_RECV, ST_OPEN, ST_CLOSING, ST_DONE };

struct conn {
  int fd;
  uint8_t state;
  uint8_t idle;
  uint8_t want_out;           /* EPOLLOUT registered */
  uint8_t dirty;              /* on the flush list */
  /* handshake (buffer freed once open) */
  char *hs;
  uint16_t hs_len, hs_off;
  char accept[LIGHTWS_ACCEPT_LEN + 1];
  /* sending: messages [nw, nq) are queued, soff bytes of nw written */
  uint64_t nq, nw, nrecv, nrecv_win;
  uint32_t soff;
  uint32_t base;              /* first pool index of this connection */
  /* echo parser */
  uint8_t hdr[LIGHTWS_FRAME_HEADER_MAX];
  uint8_t hhave;              /* header bytes collected; 0xff: in payload */
  uint8_t opcode, fin, in_msg;
  uint64_t rem;               /* payload bytes left in the frame */
  uint64_t msg_pos;           /* payload bytes of the echo matched */
  uint32_t msg_frames;
  /* control frames */
  uint8_t ctrl[125];
  uint8_t ctrl_len;
  uint8_t pong[131];
  uint8_t pong_len, pong_off;
  uint8_t got_close, close_sent;
  struct conn *next_dirty;
};

struct msg {
  uint8_t *frame;             /* header + masked payload */
  size_t frame_len;
  uint8_t *payload;           /* plain */
};

static struct {
  const char *host, *port;
  unsigned long conns, idle;
  size_t size;
  unsigned inflight, batch, pool, connect_batch;
  double warmup, duration, connect_timeout, close_timeout;
  int text, quiet;
  long server_pid;
  const char *label;
} opt = {"127.0.0.1", NULL, 100, 0, 20, 1, 1, 64, 64, 1.0, 5.0, 120.0, 5.0, 0, 0, 0, ""};

static struct conn *conns;
static unsigned long nconns_total;
static struct msg *pool;
static uint8_t *rbuf;
static int ep;
static struct addrinfo *addr;
static struct conn *dirty_list;
static int measuring, stopping;
static uint64_t frames_win, echoes_win, frames_max, frames_min = UINT64_MAX;
static uint64_t pings_seen;
static uint64_t rng_state;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void json_str(FILE *f, const char *s)
{
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static void die(const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "loadgen: error: %s\n", msg);
  printf("{\"label\": ");
  json_str(stdout, opt.label);
  printf(", \"error\": ");
  json_str(stdout, msg);
  printf("}\n");
  fflush(stdout);
  exit(1);
}

static void cdie(struct conn *c, const char *fmt, ...)
{
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  die("connection %ld (%s, %llu echoes done): %s", (long)(c - conns),
      c->idle ? "idle" : "active", (unsigned long long)c->nrecv, msg);
}

static uint64_t rng(void)
{
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static void random_bytes(void *buf, size_t n)
{
  uint8_t *p = buf;
  while (n) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("getrandom: %s", strerror(errno));
    }
    p += r;
    n -= (size_t)r;
  }
}

/* ---------------------------------------------------------------------
 * Server process tree: CPU (utime+stime) and PSS
 * --------------------------------------------------------------------- */

static long clk_tck;
static pid_t tree[MAX_PIDS];
static size_t ntree;

static void tree_collect(pid_t pid)
{
  char path[320];
  DIR *d;
  struct dirent *de;

  if (ntree >= MAX_PIDS) return;
  tree[ntree++] = pid;
  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  d = opendir(path);
  if (!d) return;
  while ((de = readdir(d))) {
    FILE *f;
    long child;
    if (de->d_name[0] == '.') continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%s/children", (int)pid, de->d_name);
    f = fopen(path, "r");
    if (!f) continue;
    while (fscanf(f, "%ld", &child) == 1) tree_collect((pid_t)child);
    fclose(f);
  }
  closedir(d);
}

/* CPU seconds of the processes in `tree`: the sum over their threads of
 * /proc/PID/task/TID/schedstat's time on CPU (ns, exact). utime+stime of
 * /proc/PID/stat come from tick samples and read 0 for a forked child that
 * runs 0.5 % of the time (each of 200 Lua processes), so they are only the
 * fallback when schedstat is missing. */
static double tree_cpu(void)
{
  double total = 0;
  size_t i;
  for (i = 0; i < ntree; i++) {
    char path[320], buf[1024], *p;
    unsigned long long ut, st, ns;
    FILE *f;
    size_t n;
    DIR *d;
    struct dirent *de;
    int got = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)tree[i]);
    d = opendir(path);
    if (d) {
      while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)tree[i], de->d_name);
        f = fopen(path, "r");
        if (!f) continue;
        if (fscanf(f, "%llu", &ns) == 1) {
          total += (double)ns * 1e-9;
          got = 1;
        }
        fclose(f);
      }
      closedir(d);
    }
    if (got) continue;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tree[i]);
    f = fopen(path, "r");
    if (!f) continue;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    p = strrchr(buf, ')');
    if (!p) continue;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
      continue;
    total += (double)(ut + st) / (double)clk_tck;
  }
  return total;
}

/* Memory of the tree in KiB: PSS from smaps_rollup (RSS if unavailable). */
static double tree_kib(const char **what)
{
  double total = 0;
  size_t i;
  *what = "pss";
  for (i = 0; i < ntree; i++) {
    char path[64], line[256];
    FILE *f;
    int found = 0;
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)tree[i]);
    f = fopen(path, "r");
    if (f) {
      while (fgets(line, sizeof(line), f)) {
        unsigned long kb;
        if (sscanf(line, "Pss: %lu kB", &kb) == 1) {
          total += (double)kb;
          found = 1;
          break;
        }
      }
      fclose(f);
    }
    if (found) continue;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)tree[i]);
    f = fopen(path, "r");
    if (!f) continue;
    while (fgets(line, sizeof(line), f)) {
      unsigned long kb;
      if (sscanf(line, "VmRSS: %lu kB", &kb) == 1) {
        total += (double)kb;
        *what = "rss";
        break;
      }
    }
    fclose(f);
  }
  return total;
}

static void tree_refresh(void)
{
  ntree = 0;
  if (opt.server_pid > 0) tree_collect((pid_t)opt.server_pid);
}

/* Per-CPU busy and total jiffies from /proc/stat (busy: all but idle and
 * iowait), so the report shows how much of each CPU other work took. */
#define MAX_CPUS 64
static int cpu_stat(unsigned long long busy[MAX_CPUS], unsigned long long total[MAX_CPUS])
{
  char line[512];
  int n = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return 0;
  while (fgets(line, sizeof(line), f) && n < MAX_CPUS) {
    unsigned long long v[10] = {0};
    int cpu, k, got;
    if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9') continue;
    got = sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
                 &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    if (got < 5) continue;
    total[n] = 0;
    for (k = 0; k < 8; k++) total[n] += v[k]; /* guest time is inside user */
    busy[n] = total[n] - v[3] - v[4];
    n++;
  }
  fclose(f);
  return n;
}

static double self_cpu(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---------------------------------------------------------------------
 * Messages
 * --------------------------------------------------------------------- */

static void build_pool(void)
{
  unsigned i;
  pool = calloc(opt.pool, sizeof(*pool));
  if (!pool) die("out of memory");
  for (i = 0; i < opt.pool; i++) {
    struct msg *m = &pool[i];
    size_t hl = lightws_frame_header_size(opt.size, 1), j;
    uint8_t key[4], *h;
    m->payload = malloc(opt.size ? opt.size : 1);
    m->frame = malloc(hl + opt.size);
    if (!m->payload || !m->frame) die("out of memory");
    for (j = 0; j < opt.size; j++) {
      uint64_t r = rng();
      /* text: printable ASCII (valid UTF-8); binary: any byte */
      m->payload[j] = opt.text ? (uint8_t)(' ' + r % 95) : (uint8_t)(r >> 24);
    }
    random_bytes(key, 4);
    h = m->frame;
    h[0] = (uint8_t)(0x80 | (opt.text ? 1 : 2));
    if (opt.size < 126) {
      h[1] = (uint8_t)(0x80 | opt.size);
    } else if (opt.size < 65536) {
      h[1] = 0x80 | 126;
      h[2] = (uint8_t)(opt.size >> 8);
      h[3] = (uint8_t)opt.size;
    } else {
      h[1] = 0x80 | 127;
      for (j = 0; j < 8; j++) h[2 + j] = (uint8_t)((uint64_t)opt.size >> (56 - 8 * j));
    }
    memcpy(h + hl - 4, key, 4);
    lightws_mask_copy(h + hl, m->payload, opt.size, key, 0);
    m->frame_len = hl + opt.size;
  }
}

static struct msg *msg_at(struct conn *c, uint64_t seq)
{
  return &pool[(c->base + seq) % opt.pool];
}

/* ---------------------------------------------------------------------
 * Epoll helpers
 * --------------------------------------------------------------------- */

static void ep_set(struct conn *c, uint32_t events, int op)
{
  struct epoll_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.u64 = (uint64_t)(c - conns);
  if (epoll_ctl(ep, op, c->fd, &ev) < 0) cdie(c, "epoll_ctl: %s", strerror(errno));
}

static void want_out(struct conn *c, int on)
{
  if (c->want_out == on) return;
  c->want_out = (uint8_t)on;
  ep_set(c, EPOLLIN | (on ? EPOLLOUT : 0), EPOLL_CTL_MOD);
}

static void mark_dirty(struct conn *c)
{
  if (c->dirty) return;
  c->dirty = 1;
  c->next_dirty = dirty_list;
  dirty_list = c;
}

/* ---------------------------------------------------------------------
 * Connect and handshake
 * --------------------------------------------------------------------- */

static unsigned long next_to_open, opened, pending_hs;

static void conn_start(struct conn *c)
{
  int one = 1;
  char key[LIGHTWS_KEY_LEN + 1];
  int n;

  c->fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) cdie(c, "socket: %s", strerror(errno));
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (lightws_handshake_key(key) != 0) cdie(c, "lightws_handshake_key failed");
  lightws_handshake_accept(key, LIGHTWS_KEY_LEN, c->accept);
  c->hs = malloc(HS_BUF);
  if (!c->hs) die("out of memory");
  n = snprintf(c->hs, HS_BUF,
               "GET /bench HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n",
               opt.host, opt.port, key);
  c->hs_len = (uint16_t)n;
  c->hs_off = 0;
  c->hhave = 0;
  if (connect(c->fd, addr->ai_addr, addr->ai_addrlen) < 0 && errno != EINPROGRESS)
    cdie(c, "connect: %s", strerror(errno));
  c->state = ST_CONNECT;
  c->want_out = 1;
  ep_set(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
  pending_hs++;
}

static void open_more(void)
{
  while (next_to_open < nconns_total && pending_hs < opt.connect_batch)
    conn_start(&conns[next_to_open++]);
}

/* Case-insensitive: does the header block contain "name: value" (value
 * compared exactly, or as a token inside a comma list when `token`)? */
static int header_has(char *head, const char *name, const char *value, int token)
{
  char *line = strstr(head, "\r\n");
  size_t nl = strlen(name);
  while (line && line[2] != '\r') {
    char *l = line + 2, *eol = strstr(l, "\r\n");
    if (!eol) return 0;
    if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
      char *v = l + nl + 1, *e = eol;
      while (*v == ' ' || *v == '\t') v++;
      while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
      if (!token) {
        if ((size_t)(e - v) == strlen(value) && strncmp(v, value, (size_t)(e - v)) == 0) return 1;
      } else {
        char *p = v;
        while (p < e) {
          char *q = p, *te;
          while (q < e && *q != ',') q++;
          te = q;
          while (p < te && (*p == ' ' || *p == '\t')) p++;
          while (te > p && (te[-1] == ' ' || te[-1] == '\t')) te--;
          if ((size_t)(te - p) == strlen(value) && strncasecmp(p, value, (size_t)(te - p)) == 0) return 1;
          p = q + 1;
        }
      }
    }
    line = eol;
  }
  return 0;
}

static void feed(struct conn *c, const uint8_t *p, size_t n);
static void queue_messages(struct conn *c);

static void conn_opened(struct conn *c)
{
  free(c->hs);
  c->hs = NULL;
  c->state = ST_OPEN;
  want_out(c, 0);
  pending_hs--;
  opened++;
}

static void hs_io(struct conn *c, uint32_t events)
{
  if (c->state == ST_CONNECT) {
    int err = 0;
    socklen_t l = sizeof(err);
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) cdie(c, "connect: %s", strerror(err));
    c->state = ST_HS_SEND;
  }
  if (c->state == ST_HS_SEND) {
    while (c->hs_off < c->hs_len) {
      ssize_t n = send(c->fd, c->hs + c->hs_off, c->hs_len - c->hs_off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        cdie(c, "send (handshake): %s", strerror(errno));
      }
      c->hs_off = (uint16_t)(c->hs_off + n);
    }
    c->state = ST_HS_RECV;
    c->hs_len = 0;
    want_out(c, 0);
    return;
  }
  if (c->state == ST_HS_RECV && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
    ssize_t n;
    char *end;
    size_t head_len, extra;
    do n = recv(c->fd, c->hs + c->hs_len, HS_BUF - 1 - c->hs_len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN) return;
      cdie(c, "recv (handshake): %s", strerror(errno));
    }
    if (n == 0) cdie(c, "server closed during the handshake");
    c->hs_len = (uint16_t)(c->hs_len + n);
    c->hs[c->hs_len] = 0;
    end = strstr(c->hs, "\r\n\r\n");
    if (!end) {
      if (c->hs_len >= HS_BUF - 1) cdie(c, "handshake response over %d bytes", HS_BUF);
      return;
    }
    head_len = (size_t)(end - c->hs) + 4;
    extra = c->hs_len - head_len;
    end[2] = 0; /* keep the last "\r\n" so header_has sees line ends */
    end[3] = 0;
    if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0) {
      char *eol = strstr(c->hs, "\r\n");
      if (eol) *eol = 0;
      cdie(c, "handshake refused: %s", c->hs);
    }
    end[2] = '\r';
    if (!header_has(c->hs, "Upgrade", "websocket", 1)) cdie(c, "response lacks Upgrade: websocket");
    if (!header_has(c->hs, "Connection", "upgrade", 1)) cdie(c, "response lacks Connection: Upgrade");
    if (!header_has(c->hs, "Sec-WebSocket-Accept", c->accept, 0))
      cdie(c, "Sec-WebSocket-Accept missing or wrong (expected %s)", c->accept);
    if (header_has(c->hs, "Sec-WebSocket-Extensions", "permessage-deflate", 1))
      cdie(c, "server accepted an extension that was not offered");
    {
      uint8_t tail[HS_BUF];
      memcpy(tail, c->hs + head_len, extra);
      conn_opened(c);
      if (extra) feed(c, tail, extra);
    }
  }
}

/* ---------------------------------------------------------------------
 * Sending
 * --------------------------------------------------------------------- */

static void queue_messages(struct conn *c)
{
  if (c->idle || stopping || c->state != ST_OPEN) return;
  /* refill only when --batch slots are free: one writev for them all */
  if (opt.inflight - (c->nq - c->nrecv) < opt.batch) return;
  while (c->nq - c->nrecv < opt.inflight) c->nq++;
  if (c->nw < c->nq) mark_dirty(c);
}

static int send_close(struct conn *c);

static void flush(struct conn *c)
{
  /* nothing follows our close frame (RFC 6455 §5.5.1): a ping that came
   * after it goes unanswered, or the server, closing at once, resets */
  if (c->close_sent && c->pong_off == 0) c->pong_len = 0;
  while (c->pong_len && c->soff == 0) {
    ssize_t n = send(c->fd, c->pong + c->pong_off, c->pong_len - c->pong_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { want_out(c, 1); return; }
      if (c->state == ST_CLOSING) { c->state = ST_DONE; return; }
      cdie(c, "send (pong): %s", strerror(errno));
    }
    c->pong_off = (uint8_t)(c->pong_off + n);
    if (c->pong_off == c->pong_len) c->pong_len = c->pong_off = 0;
  }
  while (c->nw < c->nq) {
    struct iovec iov[MAX_INFLIGHT];
    int cnt = 0;
    uint64_t s;
    ssize_t n;
    for (s = c->nw; s < c->nq && cnt < MAX_INFLIGHT; s++, cnt++) {
      struct msg *m = msg_at(c, s);
      size_t off = s == c->nw ? c->soff : 0;
      iov[cnt].iov_base = m->frame + off;
      iov[cnt].iov_len = m->frame_len - off;
    }
    n = writev(c->fd, iov, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) { want_out(c, 1); return; }
      if (c->state == ST_CLOSING) { c->state = ST_DONE; return; }
      cdie(c, "writev: %s", strerror(errno));
    }
    while (n > 0) {
      size_t left = msg_at(c, c->nw)->frame_len - c->soff;
      if ((size_t)n >= left) {
        n -= (ssize_t)left;
        c->nw++;
        c->soff = 0;
      } else {
        c->soff += (uint32_t)n;
        n = 0;
      }
    }
  }
  if (c->state == ST_CLOSING && !c->close_sent && !send_close(c)) {
    want_out(c, 1);
    return;
  }
  want_out(c, 0);
}

/* Our close frame (1000), once the data in flight is out; 0 on EAGAIN. */
static int send_close(struct conn *c)
{
  uint8_t f[8] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
  uint64_t r = rng();
  ssize_t n;
  memcpy(f + 2, &r, 4);
  f[6] ^= f[2];
  f[7] ^= f[3];
  do n = send(c->fd, f, sizeof(f), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return 0;
  if (n != (ssize_t)sizeof(f)) c->state = ST_DONE; /* reset or short: give up on it */
  c->close_sent = 1;
  return 1;
}

/* ---------------------------------------------------------------------
 * Receiving: the echo parser
 * --------------------------------------------------------------------- */

static void echo_done(struct conn *c)
{
  if (c->msg_pos != opt.size)
    cdie(c, "echo of %llu bytes, sent %zu", (unsigned long long)c->msg_pos, opt.size);
  if (c->nrecv >= c->nw) cdie(c, "echo of a message not sent yet");
  c->nrecv++;
  if (measuring) {
    echoes_win++;
    frames_win += c->msg_frames;
    c->nrecv_win++;
  }
  if (c->msg_frames > frames_max) frames_max = c->msg_frames;
  if (c->msg_frames < frames_min) frames_min = c->msg_frames;
  c->in_msg = 0;
  c->msg_pos = 0;
  c->msg_frames = 0;
  queue_messages(c);
}

static void frame_done(struct conn *c)
{
  if (c->opcode >= 8) {
    if (c->opcode == 9) { /* ping: pong with the same payload */
      uint8_t key[4];
      uint64_t r = rng();
      memcpy(key, &r, 4);
      /* a pong not begun yet answers this (latest) ping instead (§5.5.3);
       * one half sent is finished and this ping goes unanswered */
      if (c->pong_off) return;
      c->pong[0] = 0x8a;
      c->pong[1] = (uint8_t)(0x80 | c->ctrl_len);
      memcpy(c->pong + 2, key, 4);
      lightws_mask_copy(c->pong + 6, c->ctrl, c->ctrl_len, key, 0);
      c->pong_len = (uint8_t)(6 + c->ctrl_len);
      c->pong_off = 0;
      pings_seen++;
      mark_dirty(c);
    } else if (c->opcode == 8) {
      if (c->state != ST_CLOSING) {
        unsigned code = c->ctrl_len >= 2 ? (unsigned)(c->ctrl[0] << 8 | c->ctrl[1]) : 0;
        cdie(c, "server sent close %u '%.*s'", code, c->ctrl_len > 2 ? c->ctrl_len - 2 : 0,
             (const char *)c->ctrl + 2);
      }
      c->got_close = 1;
    }
    return;
  }
  if (c->fin) echo_done(c);
}

static void feed(struct conn *c, const uint8_t *p, size_t n)
{
  const uint8_t *end = p + n;
  while (p < end) {
    if (c->hhave != 0xff) {
      size_t need = 2, take;
      if (c->hhave < 2) {
        take = (size_t)(end - p) < 2u - c->hhave ? (size_t)(end - p) : 2u - c->hhave;
        memcpy(c->hdr + c->hhave, p, take);
        c->hhave = (uint8_t)(c->hhave + take);
        p += take;
        if (c->hhave < 2) return;
      }
      if (c->hdr[1] & 0x80) cdie(c, "server frame masked");
      if ((c->hdr[1] & 0x7f) == 126) need = 4;
      else if ((c->hdr[1] & 0x7f) == 127) need = 10;
      if (c->hhave < need) {
        take = (size_t)(end - p) < need - c->hhave ? (size_t)(end - p) : need - c->hhave;
        memcpy(c->hdr + c->hhave, p, take);
        c->hhave = (uint8_t)(c->hhave + take);
        p += take;
        if (c->hhave < need) return;
      }
      /* full header */
      {
        uint8_t op = c->hdr[0] & 0x0f, fin = c->hdr[0] >> 7;
        uint64_t len = c->hdr[1] & 0x7f;
        unsigned i;
        if (c->hdr[0] & 0x70) cdie(c, "RSV bits set (0x%02x)", c->hdr[0]);
        if (need == 4) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
        else if (need == 10)
          for (len = 0, i = 2; i < 10; i++) len = len << 8 | c->hdr[i];
        if (op >= 8) {
          if (op > 10) cdie(c, "reserved control opcode %u", op);
          if (!fin || len > 125) cdie(c, "bad control frame (fin %u, %llu bytes)", fin,
                                      (unsigned long long)len);
          c->ctrl_len = 0;
        } else {
          unsigned want = opt.text ? 1 : 2;
          if (op == 0) {
            if (!c->in_msg) cdie(c, "continuation frame outside a message");
          } else if (op == want) {
            if (c->in_msg) cdie(c, "new data frame inside a fragmented message");
            if (c->idle) cdie(c, "data on an idle connection");
            c->in_msg = 1;
            c->msg_pos = 0;
            c->msg_frames = 0;
          } else {
            cdie(c, "echo opcode %u, sent %u", op, want);
          }
          if (c->msg_pos + len > opt.size)
            cdie(c, "echo longer than the %zu bytes sent", opt.size);
          c->msg_frames++;
        }
        c->opcode = op;
        c->fin = fin;
        c->rem = len;
        c->hhave = 0xff;
      }
    }
    /* payload */
    {
      size_t take = (size_t)(end - p) < c->rem ? (size_t)(end - p) : (size_t)c->rem;
      if (c->opcode >= 8) {
        memcpy(c->ctrl + c->ctrl_len, p, take);
        c->ctrl_len = (uint8_t)(c->ctrl_len + take);
      } else if (take) {
        const uint8_t *want = msg_at(c, c->nrecv)->payload + c->msg_pos;
        if (memcmp(want, p, take) != 0) {
          size_t i = 0;
          while (want[i] == p[i]) i++;
          cdie(c, "echo byte %llu is 0x%02x, sent 0x%02x",
               (unsigned long long)(c->msg_pos + i), p[i], want[i]);
        }
        c->msg_pos += take;
      }
      p += take;
      c->rem -= take;
      if (c->rem == 0) {
        c->hhave = 0;
        frame_done(c);
      }
    }
  }
}

static void conn_read(struct conn *c)
{
  ssize_t n;
  do n = recv(c->fd, rbuf, RBUF, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return;
    if (c->state == ST_CLOSING) { c->state = ST_DONE; return; }
    cdie(c, "recv: %s", strerror(errno));
  }
  if (n == 0) {
    if (c->state == ST_CLOSING) { c->state = ST_DONE; return; }
    cdie(c, "server closed the connection");
  }
  feed(c, rbuf, (size_t)n);
}

/* ---------------------------------------------------------------------
 * Main loop
 * --------------------------------------------------------------------- */

static void turn(double timeout_s)
{
  struct epoll_event evs[MAX_EVENTS];
  int n, i, ms = (int)(timeout_s * 1000.0);
  if (ms < 0) ms = 0;
  n = epoll_wait(ep, evs, MAX_EVENTS, ms);
  if (n < 0) {
    if (errno == EINTR) return;
    die("epoll_wait: %s", strerror(errno));
  }
  for (i = 0; i < n; i++) {
    struct conn *c = &conns[evs[i].data.u64];
    uint32_t e = evs[i].events;
    if (c->state == ST_DONE) continue;
    if (c->state < ST_OPEN) {
      hs_io(c, e);
      continue;
    }
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) conn_read(c);
    if ((e & EPOLLOUT) && (c->state == ST_OPEN || c->state == ST_CLOSING)) mark_dirty(c);
  }
  while (dirty_list) {
    struct conn *c = dirty_list;
    dirty_list = c->next_dirty;
    c->dirty = 0;
    if (c->state == ST_OPEN || c->state == ST_CLOSING) flush(c);
  }
}

static double num_arg(const char *name, const char *v, double lo, double hi)
{
  char *end;
  double d;
  if (!v) die("%s needs a value", name);
  d = strtod(v, &end);
  if (end == v || *end || d < lo || d > hi) die("bad %s '%s' (%g-%g)", name, v, lo, hi);
  return d;
}

static void usage(void)
{
  printf("usage: loadgen --port N [--host ADDR] [--conns N] [--size BYTES]\n"
         "               [--inflight K] [--batch B] [--idle N] [--warmup S] [--duration S]\n"
         "               [--text] [--pool N] [--connect-batch N] [--connect-timeout S]\n"
         "               [--server-pid PID] [--label STR] [--quiet]\n"
         "N active connections (default 100) each send a masked binary (--text:\n"
         "text) message of BYTES bytes (default 20) and wait for its echo, K\n"
         "(default 1, at most %d) in flight per connection, refilled B (default 1)\n"
         "at a time in one writev once B echoes are back; every echoed byte is\n"
         "checked, echoes may come in several frames. --idle N more connections\n"
         "only handshake. Warm-up (default 1 s), then a window (default 5 s) is\n"
         "measured; prints one JSON line. --server-pid: also measure the server's\n"
         "process tree (CPU seconds over the window, PSS before the first\n"
         "connection and at the end of the window). Exits 1 on any error.\n",
         MAX_INFLIGHT);
}

int main(int argc, char **argv)
{
  struct rlimit rl;
  struct addrinfo hints;
  unsigned long i;
  int r;
  double t, t_conn0, t_conn1, t_w0 = 0, t_w1 = 0, deadline;
  double scpu0 = 0, scpu1 = 0, gcpu0 = 0, gcpu1 = 0, kib0 = 0, kib1 = 0;
  const char *memwhat = "none";
  uint64_t min_win = UINT64_MAX, max_win = 0;
  unsigned long long cbusy0[MAX_CPUS], ctotal0[MAX_CPUS], cbusy1[MAX_CPUS], ctotal1[MAX_CPUS];
  int ncpu = 0, k;
  unsigned long done;

  for (r = 1; r < argc; r++) {
    const char *a = argv[r], *v = r + 1 < argc ? argv[r + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
    else if (!strcmp(a, "--text")) { opt.text = 1; continue; }
    else if (!strcmp(a, "--quiet")) { opt.quiet = 1; continue; }
    else if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--port")) opt.port = v;
    else if (!strcmp(a, "--label")) opt.label = v;
    else if (!strcmp(a, "--conns")) opt.conns = (unsigned long)num_arg(a, v, 0, 1e6);
    else if (!strcmp(a, "--idle")) opt.idle = (unsigned long)num_arg(a, v, 0, 1e6);
    else if (!strcmp(a, "--size")) opt.size = (size_t)num_arg(a, v, 0, 64 << 20);
    else if (!strcmp(a, "--inflight")) opt.inflight = (unsigned)num_arg(a, v, 1, MAX_INFLIGHT);
    else if (!strcmp(a, "--batch")) opt.batch = (unsigned)num_arg(a, v, 1, MAX_INFLIGHT);
    else if (!strcmp(a, "--pool")) opt.pool = (unsigned)num_arg(a, v, 1, 4096);
    else if (!strcmp(a, "--connect-batch")) opt.connect_batch = (unsigned)num_arg(a, v, 1, 1e5);
    else if (!strcmp(a, "--warmup")) opt.warmup = num_arg(a, v, 0, 3600);
    else if (!strcmp(a, "--duration")) opt.duration = num_arg(a, v, 0.1, 3600);
    else if (!strcmp(a, "--connect-timeout")) opt.connect_timeout = num_arg(a, v, 0.1, 3600);
    else if (!strcmp(a, "--server-pid")) opt.server_pid = (long)num_arg(a, v, 1, 1e9);
    else { usage(); die("unknown option '%s'", a); }
    if (!v) die("%s needs a value", a);
    r++;
  }
  if (!opt.port) die("--port is required");
  if (opt.conns == 0 && opt.idle == 0) die("no connections");
  if (!opt.label) opt.label = "";
  if (opt.batch > opt.inflight) die("--batch %u is over --inflight %u", opt.batch, opt.inflight);
  signal(SIGPIPE, SIG_IGN);
  clk_tck = sysconf(_SC_CLK_TCK);
  random_bytes(&rng_state, sizeof(rng_state));
  rng_state |= 1;

  nconns_total = opt.conns + opt.idle;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rlim_t need = (rlim_t)nconns_total + 32;
    if (rl.rlim_cur < need) {
      if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        die("%lu connections need %lu descriptors; the hard limit (ulimit -Hn) is %lu",
            nconns_total, (unsigned long)need, (unsigned long)rl.rlim_max);
      rl.rlim_cur = need;
      if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit: %s", strerror(errno));
    }
  }

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  if ((r = getaddrinfo(opt.host, opt.port, &hints, &addr)) != 0)
    die("%s:%s: %s", opt.host, opt.port, gai_strerror(r));

  conns = calloc(nconns_total, sizeof(*conns));
  rbuf = malloc(RBUF);
  if (!conns || !rbuf) die("out of memory");
  /* idle connections first: the active ones then run on an established crowd */
  for (i = 0; i < nconns_total; i++) {
    conns[i].fd = -1;
    conns[i].idle = i < opt.idle;
    conns[i].base = (uint32_t)(rng() % opt.pool);
  }
  build_pool();
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1: %s", strerror(errno));

  if (opt.server_pid) {
    tree_refresh();
    if (ntree == 0) die("no process %ld", opt.server_pid);
    kib0 = tree_kib(&memwhat);
  }

  /* connect everything (a bounded number of handshakes at a time) */
  t_conn0 = now_s();
  deadline = t_conn0 + opt.connect_timeout;
  open_more();
  while (opened < nconns_total) {
    t = now_s();
    if (t > deadline)
      die("only %lu of %lu connections open after %.1f s", opened, nconns_total, opt.connect_timeout);
    turn(deadline - t < 0.1 ? deadline - t : 0.1);
    open_more();
  }
  t_conn1 = now_s();

  /* warm-up, then the window */
  for (i = opt.idle; i < nconns_total; i++) queue_messages(&conns[i]);
  t = now_s();
  deadline = t + opt.warmup;
  while ((t = now_s()) < deadline) turn(deadline - t);
  if (opt.server_pid) {
    tree_refresh();
    scpu0 = tree_cpu();
  }
  ncpu = cpu_stat(cbusy0, ctotal0);
  gcpu0 = self_cpu();
  measuring = 1;
  t_w0 = now_s();
  deadline = t_w0 + opt.duration;
  while ((t = now_s()) < deadline) turn(deadline - t);
  t_w1 = now_s();
  measuring = 0;
  gcpu1 = self_cpu();
  if (cpu_stat(cbusy1, ctotal1) != ncpu) ncpu = 0;
  if (opt.server_pid) {
    scpu1 = tree_cpu();
    kib1 = tree_kib(&memwhat);
  }
  for (i = opt.idle; i < nconns_total; i++) {
    if (conns[i].nrecv_win < min_win) min_win = conns[i].nrecv_win;
    if (conns[i].nrecv_win > max_win) max_win = conns[i].nrecv_win;
  }
  if (opt.conns && echoes_win == 0) die("no echo in the window");

  /* close: our close frame, then wait (bounded) for the server's close and FIN */
  stopping = 1;
  for (i = 0; i < nconns_total; i++) {
    struct conn *c = &conns[i];
    c->nq = c->nw + (c->soff ? 1 : 0); /* finish a frame begun, no new one */
    c->state = ST_CLOSING;
    mark_dirty(c);
  }
  turn(0);
  deadline = now_s() + opt.close_timeout;
  for (;;) {
    for (done = 0, i = 0; i < nconns_total; i++) done += conns[i].state == ST_DONE;
    if (done == nconns_total || (t = now_s()) >= deadline) break;
    turn(deadline - t < 0.1 ? deadline - t : 0.1);
  }
  for (i = 0; i < nconns_total; i++) {
    if (conns[i].state != ST_DONE) {
      /* the server did not close in time: reset (no TIME_WAIT left behind) */
      struct linger lg = {1, 0};
      setsockopt(conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(conns[i].fd);
  }

  {
    double win = t_w1 - t_w0, scpu = scpu1 - scpu0, gcpu = gcpu1 - gcpu0;
    unsigned long all = nconns_total;
    printf("{\"label\": ");
    json_str(stdout, opt.label);
    printf(", \"conns\": %lu, \"idle\": %lu, \"size\": %zu, \"inflight\": %u, \"batch\": %u, \"text\": %s"
           ", \"window_s\": %.3f, \"msgs\": %llu, \"msgs_per_s\": %.1f, \"bytes\": %llu"
           ", \"errors\": 0, \"frames_per_echo\": %.3f, \"frames_per_echo_min\": %llu"
           ", \"frames_per_echo_max\": %llu, \"conn_msgs_min\": %llu, \"conn_msgs_max\": %llu"
           ", \"pings\": %llu, \"connect_s\": %.3f, \"gen_cpu_s\": %.3f, \"gen_cpu_pct\": %.1f",
           opt.conns, opt.idle, opt.size, opt.inflight, opt.batch, opt.text ? "true" : "false", win,
           (unsigned long long)echoes_win, (double)echoes_win / win,
           (unsigned long long)(echoes_win * opt.size * 2),
           echoes_win ? (double)frames_win / (double)echoes_win : 0.0,
           (unsigned long long)(frames_min == UINT64_MAX ? 0 : frames_min),
           (unsigned long long)frames_max,
           (unsigned long long)(opt.conns ? min_win : 0), (unsigned long long)max_win,
           (unsigned long long)pings_seen, t_conn1 - t_conn0, gcpu, 100.0 * gcpu / win);
    if (opt.server_pid)
      printf(", \"server_procs\": %zu, \"server_cpu_s\": %.3f, \"server_cpu_pct\": %.1f"
             ", \"msgs_per_server_cpu_s\": %.1f, \"server_mem\": \"%s\", \"server_kib_before\": %.0f"
             ", \"server_kib_after\": %.0f, \"server_kib_per_conn\": %.3f",
             ntree, scpu, 100.0 * scpu / win, scpu > 0 ? (double)echoes_win / scpu : 0.0, memwhat,
             kib0, kib1, (kib1 - kib0) / (double)all);
    /* how busy each CPU was over the window, every process counted */
    printf(", \"cpu_busy_pct\": [");
    for (k = 0; k < ncpu; k++)
      printf("%s%.1f", k ? ", " : "",
             ctotal1[k] > ctotal0[k]
                 ? 100.0 * (double)(cbusy1[k] - cbusy0[k]) / (double)(ctotal1[k] - ctotal0[k])
                 : 0.0);
    printf("]}\n");
  }
  freeaddrinfo(addr);
  return 0;
}
