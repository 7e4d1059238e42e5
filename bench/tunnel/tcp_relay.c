/* SPDX-License-Identifier: MIT */
/* tcp_relay: the bench's plain TCP forwarder (read/write, epoll), the baseline for lightws-tunnel. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The same shape as the tunnel: two sockets per connection registered
 * once, edge-triggered; one 32 KiB buffer per direction, read into it and
 * written from it; a side is not read while its bytes are not all
 * written (back-pressure); FIN passed on after the last byte. Run two in
 * a chain for the two hops. */
#define BUF_SIZE (32 * 1024)

struct side {
  int fd;
  int eof;           /* read 0 */
  uint32_t off, len; /* bytes of buf not yet written to the other side */
  uint8_t buf[BUF_SIZE];
};

struct conn {
  struct side a, b;  /* a: accepted, b: to the target */
  int shut_a, shut_b;
};

static struct sockaddr_in target;
static int ep;

static void conn_free(struct conn *c)
{
  close(c->a.fd);
  close(c->b.fd);
  free(c);
}

/* Moves from `in` to `out`. Returns -1 on an error. */
static int pump(struct side *in, struct side *out, int *shut)
{
  for (;;) {
    if (in->len) {
      ssize_t n = send(out->fd, in->buf + in->off, in->len, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN ? 0 : -1;
      in->off += (uint32_t)n;
      in->len -= (uint32_t)n;
      if (in->len) return 0;
    }
    if (in->eof) {
      if (!*shut) shutdown(out->fd, SHUT_WR);
      *shut = 1;
      return 0;
    }
    {
      ssize_t n = recv(in->fd, in->buf, BUF_SIZE, 0);
      if (n < 0) return errno == EAGAIN ? 0 : -1;
      if (n == 0) in->eof = 1;
      in->off = 0;
      in->len = (uint32_t)n;
    }
  }
}

int main(int argc, char **argv)
{
  struct sockaddr_in la;
  socklen_t sl = sizeof(la);
  struct epoll_event evs[128], e;
  int lfd, one = 1;

  if (argc != 3) {
    fprintf(stderr, "usage: tcp_relay LISTEN_PORT TARGET_PORT (127.0.0.1)\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  memset(&la, 0, sizeof(la));
  la.sin_family = AF_INET;
  la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  la.sin_port = htons((uint16_t)atoi(argv[1]));
  target = la;
  target.sin_port = htons((uint16_t)atoi(argv[2]));
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(lfd, 1024) < 0) {
    perror("tcp_relay: listen");
    return 1;
  }
  getsockname(lfd, (struct sockaddr *)&la, &sl);
  printf("listening on 127.0.0.1:%d\n", ntohs(la.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  e.events = EPOLLIN;
  e.data.u64 = 0;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
  for (;;) {
    int i, n = epoll_wait(ep, evs, 128, -1);
    for (i = 0; i < n; i++) {
      struct conn *c;
      if (evs[i].data.u64 == 2) continue; /* its conn ended in this batch */
      if (!evs[i].data.u64) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          c = calloc(1, sizeof(*c));
          c->a.fd = fd;
          c->b.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          setsockopt(c->b.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          /* a loopback connect completes at once or with EINPROGRESS;
           * the first write waits for EPOLLOUT either way */
          connect(c->b.fd, (struct sockaddr *)&target, sizeof(target));
          /* edge-triggered, both directions, registered once (as the
           * tunnel does): each event runs both pumps until they block */
          e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          e.data.u64 = (uint64_t)(uintptr_t)c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c->a.fd, &e);
          e.data.u64 = (uint64_t)(uintptr_t)c | 1;
          epoll_ctl(ep, EPOLL_CTL_ADD, c->b.fd, &e);
        }
        continue;
      }
      c = (struct conn *)(uintptr_t)(evs[i].data.u64 & ~(uint64_t)1);
      if (pump(&c->a, &c->b, &c->shut_b) < 0 || pump(&c->b, &c->a, &c->shut_a) < 0 ||
          (c->shut_a && c->shut_b)) {
        conn_free(c);
        /* the other socket's event may follow in this batch */
        for (int j = i + 1; j < n; j++)
          if ((evs[j].data.u64 & ~(uint64_t)1) == (uint64_t)(uintptr_t)c)
            evs[j].data.u64 = 2;
        continue;
      }
    }
  }
}
