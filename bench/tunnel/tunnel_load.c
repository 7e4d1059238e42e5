/* SPDX-License-Identifier: MIT */
/* tunnel_load: the bench's TCP sink and load generator (throughput, idle connections). */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * tunnel_load sink
 *   listens on 127.0.0.1 (port printed); each connection's first byte says
 *   what it wants: 'U' the sink reads and counts until EOF, then answers
 *   the 8-byte count and closes; 'D' the sink writes until the peer
 *   closes; 'I' the sink echoes that byte and then holds the connection.
 * tunnel_load run PORT CONNS SECONDS U|D
 *   CONNS connections; U: each writes for SECONDS, shuts down, reads the
 *   sink's count; D: each reads for SECONDS. Prints "bytes B seconds S".
 * tunnel_load idle PORT CONNS
 *   opens CONNS connections, one 'I' byte through each and back, prints
 *   "idle N" and holds them until stdin closes.
 */
#define CHUNK (64 * 1024)
static uint8_t buf[CHUNK];

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct sconn {
  int fd;
  char mode;
  uint64_t count;
};

static int sink(void)
{
  struct sockaddr_in a;
  socklen_t sl = sizeof(a);
  struct epoll_event evs[256], e;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), ep, one = 1;

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0) {
    perror("sink");
    return 1;
  }
  getsockname(lfd, (struct sockaddr *)&a, &sl);
  printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  e.events = EPOLLIN;
  e.data.ptr = NULL;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
  for (;;) {
    int i, n = epoll_wait(ep, evs, 256, -1);
    for (i = 0; i < n; i++) {
      struct sconn *c = evs[i].data.ptr;
      if (!c) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          c = calloc(1, sizeof(*c));
          c->fd = fd;
          e.events = EPOLLIN;
          e.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
        }
        continue;
      }
      if (!c->mode) {
        char m;
        if (recv(c->fd, &m, 1, 0) != 1) goto done;
        c->mode = m;
        if (m == 'I') {
          if (send(c->fd, &m, 1, MSG_NOSIGNAL) != 1) goto done;
        } else if (m == 'D') {
          e.events = EPOLLOUT;
          e.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
        }
        continue;
      }
      if (c->mode == 'D') {
        for (;;) {
          ssize_t w = send(c->fd, buf, CHUNK, MSG_NOSIGNAL);
          if (w < 0 && errno == EAGAIN) break;
          if (w < 0) goto done;
        }
        continue;
      }
      for (;;) {
        ssize_t r = recv(c->fd, buf, CHUNK, 0);
        if (r > 0) {
          c->count += (uint64_t)r;
          continue;
        }
        if (r < 0 && errno == EAGAIN) break;
        if (r == 0 && c->mode == 'U') {
          /* blocking write of the count: 8 bytes fit any socket buffer */
          ssize_t w = send(c->fd, &c->count, 8, MSG_NOSIGNAL);
          (void)w;
        }
        goto done;
      }
      continue;
done:
      close(c->fd);
      free(c);
    }
  }
}

static int connect_to(int port)
{
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    perror("connect");
    exit(1);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static int run(int port, int nconn, double secs, char mode)
{
  struct pollfd *pf = calloc((size_t)nconn, sizeof(*pf));
  uint64_t total = 0, *counts = calloc((size_t)nconn, 8);
  int *state = calloc((size_t)nconn, sizeof(int)), i, left = nconn;
  double t0, end;

  for (i = 0; i < nconn; i++) {
    pf[i].fd = connect_to(port);
    if (send(pf[i].fd, &mode, 1, 0) != 1) return 1;
    pf[i].events = mode == 'U' ? POLLOUT : POLLIN;
  }
  t0 = now_s();
  end = t0 + secs;
  while (left > 0) {
    double t = now_s();
    int r;
    if (mode == 'D' && t >= end) break;
    if (mode == 'U' && t >= end) {
      for (i = 0; i < nconn; i++)
        if (state[i] == 0) {
          shutdown(pf[i].fd, SHUT_WR);
          state[i] = 1;
          pf[i].events = POLLIN;
        }
    }
    r = poll(pf, (nfds_t)nconn, 100);
    if (r < 0 && errno != EINTR) return 1;
    for (i = 0; i < nconn; i++) {
      if (!pf[i].revents || pf[i].fd < 0) continue;
      if (mode == 'D') {
        ssize_t n = recv(pf[i].fd, buf, CHUNK, MSG_DONTWAIT);
        if (n > 0) total += (uint64_t)n;
        else if (n == 0 || errno != EAGAIN) {
          pf[i].fd = -1;
          left--;
        }
      } else if (state[i] == 0) {
        ssize_t n = send(pf[i].fd, buf, CHUNK, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
          perror("send");
          return 1;
        }
      } else {
        ssize_t n = recv(pf[i].fd, (uint8_t *)&counts[i] + (state[i] - 1),
                         (size_t)(9 - state[i]), MSG_DONTWAIT);
        if (n > 0) state[i] += (int)n;
        if (n == 0 || state[i] == 9) {
          close(pf[i].fd);
          pf[i].fd = -1;
          left--;
          total += counts[i];
        }
      }
    }
  }
  printf("bytes %llu seconds %.4f\n", (unsigned long long)total,
         mode == 'D' ? secs : now_s() - t0);
  return 0;
}

static int idle(int port, int nconn)
{
  int i;
  char m = 'I';
  for (i = 0; i < nconn; i++) {
    int fd = connect_to(port);
    if (send(fd, &m, 1, 0) != 1 || recv(fd, &m, 1, 0) != 1) {
      fprintf(stderr, "idle: connection %d failed\n", i);
      return 1;
    }
  }
  printf("idle %d\n", nconn);
  fflush(stdout);
  while (read(0, buf, sizeof(buf)) > 0) {
  }
  return 0;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  memset(buf, 0x5a, sizeof(buf));
  if (argc == 2 && !strcmp(argv[1], "sink")) return sink();
  if (argc == 6 && !strcmp(argv[1], "run"))
    return run(atoi(argv[2]), atoi(argv[3]), atof(argv[4]), argv[5][0]);
  if (argc == 4 && !strcmp(argv[1], "idle")) return idle(atoi(argv[2]), atoi(argv[3]));
  fprintf(stderr, "usage: tunnel_load sink | run PORT CONNS SECONDS U|D | idle PORT CONNS\n");
  return 2;
}
