/* SPDX-License-Identifier: MIT */
/* Raw TCP benchmark, the limit: one write() per frame-sized chunk, no framing. */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
      if (bench_write_all(fd, buf, a->size) < 0) return 1;
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
      if (bench_write_all(fd, buf, a->size) < 0) return 1;
    shutdown(fd, SHUT_WR);
    if (bench_read_exact(fd, &ack, 1) < 0) return 1;
    bench_print_bulk(bench_now() - t0, a->frames * a->size, a->frames);
  } else {
    for (i = 0; i < a->frames; i++) {
      if (bench_write_all(fd, buf, a->size) < 0) return 1;
      if (bench_read_exact(fd, buf, a->size) < 0) return 1;
    }
    bench_print_pingpong(bench_now() - t0, a->frames);
    shutdown(fd, SHUT_WR);
  }
  close(fd);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_args a;
  if (bench_parse(argc, argv, &a) < 0) return 2;
  return a.server ? server(&a) : client(&a);
}
