/* SPDX-License-Identifier: MIT */
/*
 * lws_echo: an echo server over Debian's libwebsockets (4.1, its own
 * event loop, default settings), written for the many-connection benchmark
 * (bench/many). Each message is gathered from its RECEIVE callbacks (lws
 * hands it over in rx-buffer-sized pieces) and written back whole, with its
 * opcode, on the next WRITEABLE callback.
 *   lws_echo --port N [--host ADDR]   (port 0: a free one)
 * Prints "listening on HOST:PORT" once it accepts connections.
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_MSG (64u << 20)

struct qmsg {
  struct qmsg *next;
  size_t len, cap;
  int binary;
  unsigned char buf[];       /* LWS_PRE headroom, then the message */
};

struct sess {
  struct qmsg *cur;          /* the message being received */
  struct qmsg *head, *tail;  /* complete messages waiting to be echoed */
};

static volatile sig_atomic_t stop_flag;
static struct lws_context *context;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
  if (context) lws_cancel_service(context);
}

static int append(struct sess *s, const void *in, size_t len)
{
  struct qmsg *m = s->cur;
  if (m->len + len > MAX_MSG) return -1;
  if (m->len + len > m->cap) {
    size_t cap = m->cap * 2;
    while (cap < m->len + len) cap *= 2;
    m = realloc(m, sizeof(*m) + LWS_PRE + cap);
    if (!m) return -1;
    m->cap = cap;
    s->cur = m;
  }
  memcpy(m->buf + LWS_PRE + m->len, in, len);
  m->len += len;
  return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
  struct sess *s = user;
  struct qmsg *m;

  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    memset(s, 0, sizeof(*s));
    return 0;
  case LWS_CALLBACK_RECEIVE:
    if (!s->cur) {
      size_t cap = len > 256 ? len : 256;
      s->cur = malloc(sizeof(*s->cur) + LWS_PRE + cap);
      if (!s->cur) return -1;
      s->cur->len = 0;
      s->cur->cap = cap;
      s->cur->next = NULL;
      s->cur->binary = lws_frame_is_binary(wsi);
    }
    if (append(s, in, len) != 0) return -1;
    if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
      m = s->cur;
      s->cur = NULL;
      if (s->tail) s->tail->next = m;
      else s->head = m;
      s->tail = m;
      lws_callback_on_writable(wsi);
    }
    return 0;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    m = s->head;
    if (!m) return 0;
    s->head = m->next;
    if (!s->head) s->tail = NULL;
    if (lws_write(wsi, m->buf + LWS_PRE, m->len, m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
        (int)m->len) {
      free(m);
      return -1;
    }
    free(m);
    if (s->head) lws_callback_on_writable(wsi);
    return 0;
  case LWS_CALLBACK_CLOSED:
    free(s->cur);
    s->cur = NULL;
    while ((m = s->head)) {
      s->head = m->next;
      free(m);
    }
    s->tail = NULL;
    return 0;
  default:
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

static const struct lws_protocols protocols[] = {
  {"echo", callback, sizeof(struct sess), 0, 0, NULL, 0},
  {NULL, NULL, 0, 0, 0, NULL, 0}
};

int main(int argc, char **argv)
{
  struct lws_context_creation_info info;
  const char *host = "127.0.0.1";
  int port = -1, i;
  struct rlimit rl;
  struct lws_vhost *vh;

  for (i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else break;
  }
  if (port < 0 || i != argc) {
    fprintf(stderr, "usage: lws_echo --port N [--host ADDR]\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  lws_set_log_level(LLL_ERR, NULL);
  memset(&info, 0, sizeof(info));
  info.port = port;
  info.iface = host;
  info.protocols = protocols;
  info.gid = -1;
  info.uid = -1;
  context = lws_create_context(&info);
  if (!context) {
    fprintf(stderr, "lws_echo: lws_create_context failed\n");
    return 1;
  }
  vh = lws_get_vhost_by_name(context, "default");
  printf("listening on %s:%d\n", host, vh ? lws_get_vhost_listen_port(vh) : port);
  fflush(stdout);
  while (!stop_flag && lws_service(context, 0) >= 0)
    ;
  lws_context_destroy(context);
  return 0;
}
