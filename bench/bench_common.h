/* SPDX-License-Identifier: MIT */
/* Shared command line, sockets, timing and result lines of the C benchmark programs. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* `PROG server|client bulk|pingpong|zbulk PORT TOTAL SIZE` or `PROG micro`.
 * zbulk (W5) is bulk with permessage-deflate: the client sends the text
 * messages of the corpus file $BENCH_CORPUS (SIZE bytes each) in order,
 * cycling, until TOTAL bytes. */
struct bench_args {
  int server;          /* 1: server, 0: client */
  int pingpong;        /* 1: pingpong, 0: bulk or zbulk */
  int deflate;         /* 1: zbulk */
  int echo;            /* 1: `server echo PORT 0 0` (idle connections, W5) */
  int port;
  uint64_t total;      /* bulk: bytes; pingpong: round trips */
  size_t size;         /* frame / message size */
  uint64_t frames;     /* bulk: total / size; pingpong: total */
};

/* Parses argv; prints usage and returns -1 when it does not fit. */
int bench_parse(int argc, char **argv, struct bench_args *a);

/* zbulk: reads $BENCH_CORPUS whole (a multiple of `size` bytes) into a new
 * buffer; *count gets the number of messages. NULL (with a message) on error. */
uint8_t *bench_corpus_load(size_t size, size_t *count);

/* Server: listens on 127.0.0.1:port, accepts one connection (TCP_NODELAY). */
int bench_accept(int port);

/* Client: connects to 127.0.0.1:port, retrying while the server starts. */
int bench_connect(int port);

/* Receive buffer size the servers use, the same for every C program so raw
 * TCP reads with the buffer lightws reads with: 64 KiB for frames of 8 KiB
 * and more, 256 KiB for small frames; BENCH_RBUF overrides. */
size_t bench_rbuf_size(size_t frame_size);

double bench_now(void);
int bench_write_all(int fd, const void *buf, size_t len);
int bench_read_exact(int fd, void *buf, size_t len);

void bench_print_bulk(double secs, uint64_t bytes, uint64_t frames);
void bench_print_pingpong(double secs, uint64_t rtts);
/* Servers print `SERVER bytes=B frames=F` on stdout so the harness can check them. */
void bench_print_server(uint64_t bytes, uint64_t frames);

/* xorshift64* for frame contents and mask keys the program chooses. */
uint64_t bench_rand(uint64_t *state);

/* `PROG micro` (W4) prints one `MICRO name=NAME value=V` line per figure. */
void bench_micro_print(const char *name, double value);

/* memcpy of a 64 KiB buffer into another, GB/s, best of `trials` runs of
 * `reps` copies: the baseline every program's masking figure is compared with. */
double bench_memcpy_GBps(int trials, int reps);

#endif
