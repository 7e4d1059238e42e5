/* SPDX-License-Identifier: MIT */
/* Raw TCP benchmark, the limit: one write() per frame-sized chunk, no framing. */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/*
 * RAW_BENCH_IO=sendmsg|writev sends each chunk as an (empty) head iovec plus
 * the payload, through sendmsg(MSG_NOSIGNAL) (as lightws does on a socket) or
 * writev; RAW_BENCH_IO=send uses send(MSG_NOSIGNAL) on one buffer. It prices
 * the system call alone against write(). The default and the harness use write().
 */
static int io_mode; /* 0 write, 1 sendmsg, 2 writev, 3 send(MSG_NOSIGNAL) */

static int send_chunk(int fd, const uint8_t *buf, size_t len) {
  static const uint8_t head[2] = {0x82, 0};
  struct iovec iov[2];
  struct msghdr mh;
  ssize_t n;
  if (io_mode == 0) return bench_write_all(fd, buf, len);
  if (io_mode == 3) {
    n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) return -1;
    if ((size_t)n < len) return bench_write_all(fd, buf + n, len - (size_t)n);
    return 0;
  }
  /* an empty head iovec: the same bytes on the wire as write() */
  iov[0].iov_base = (void *)head;
  iov[0].iov_len = 0; /* no extra bytes on the wire: same stream as write() */
  iov[1].iov_base = (void *)buf;
  iov[1].iov_len = len;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  n = io_mode == 1 ? sendmsg(fd, &mh, MSG_NOSIGNAL) : writev(fd, iov, 2);
  if (n < 0) return -1;
  if ((size_t)n < len) return bench_write_all(fd, buf + n, len - (size_t)n);
  return 0;
}

static int server(const struct bench_args *a) {
  size_t rsize = bench_rbuf_size(a->size);
  uint8_t *buf = malloc(rsize > a->size ? rsize : a->size);
  uint64_t bytes = 0, frames = 0;
  int fd = bench_accept(a->port);
  if (fd < 0 || !buf) return 1;
  if (!a->pingpong) {
    /* Bulk: read until the client shuts down its side, then ack with one byte. */
    for (;;) {
      ssize_t n = read(fd, buf, rsize);
      if (n < 0) return 1;
      if (n == 0) break;
      bytes += (uint64_t)n;
    }
    frames = bytes / a->size;
    if (bench_write_all(fd, "k", 1) < 0) return 1;
  } else {
    /* Pingpong: echo SIZE-byte messages until EOF. */
    while (bench_read_exact(fd, buf, a->size) == 0) {
      if (send_chunk(fd, buf, a->size) < 0) return 1;
      bytes += a->size;
      frames++;
    }
  }
  close(fd);
  bench_print_server(bytes, frames);
  free(buf);
  return 0;
}

static int client(const struct bench_args *a) {
  uint8_t *buf = malloc(a->size);
  uint64_t i, seed = 0x9e3779b97f4a7c15ULL;
  double t0;
  char ack;
  int fd = bench_connect(a->port);
  if (fd < 0 || !buf) return 1;
  for (i = 0; i < a->size; i++) buf[i] = (uint8_t)bench_rand(&seed);
  t0 = bench_now();
  if (!a->pingpong) {
    for (i = 0; i < a->frames; i++)
      if (send_chunk(fd, buf, a->size) < 0) return 1;
    shutdown(fd, SHUT_WR);
    if (bench_read_exact(fd, &ack, 1) < 0) return 1;
    bench_print_bulk(bench_now() - t0, a->frames * a->size, a->frames);
  } else {
    for (i = 0; i < a->frames; i++) {
      if (send_chunk(fd, buf, a->size) < 0) return 1;
      if (bench_read_exact(fd, buf, a->size) < 0) return 1;
    }
    bench_print_pingpong(bench_now() - t0, a->frames);
    shutdown(fd, SHUT_WR);
  }
  close(fd);
  free(buf);
  return 0;
}

/* W4: raw TCP has no codec; its figure is the baseline the others' masking
 * is compared with, memcpy of 64 KiB (best of 15 runs of 2000 copies, as
 * lightws-bench measures it). */
static int micro(void) {
  bench_micro_print("memcpy_GBps", bench_memcpy_GBps(15, 2000));
  return 0;
}

int main(int argc, char **argv) {
  struct bench_args a;
  const char *io = getenv("RAW_BENCH_IO");
  if (argc == 2 && strcmp(argv[1], "micro") == 0) return micro();
  io_mode = !io                         ? 0
            : strcmp(io, "sendmsg") == 0 ? 1
            : strcmp(io, "writev") == 0  ? 2
            : strcmp(io, "send") == 0    ? 3
                                         : 0;
  if (bench_parse(argc, argv, &a) < 0) return 2;
  return a.server ? server(&a) : client(&a);
}
