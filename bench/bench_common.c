/* SPDX-License-Identifier: MIT */
/* Shared command line, sockets, timing and result lines of the C benchmark programs. */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int bench_parse(int argc, char **argv, struct bench_args *a) {
  memset(a, 0, sizeof(*a));
  if (argc != 6 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")) ||
      (strcmp(argv[2], "bulk") && strcmp(argv[2], "pingpong") && strcmp(argv[2], "zbulk") &&
       strcmp(argv[2], "echo"))) {
    fprintf(stderr, "usage: %s server|client bulk|pingpong|zbulk PORT TOTAL SIZE\n"
                    "       %s micro\n", argv[0], argv[0]);
    return -1;
  }
  a->server = strcmp(argv[1], "server") == 0;
  a->pingpong = strcmp(argv[2], "pingpong") == 0;
  a->deflate = strcmp(argv[2], "zbulk") == 0;
  a->echo = strcmp(argv[2], "echo") == 0;
  a->port = atoi(argv[3]);
  a->total = strtoull(argv[4], NULL, 10);
  a->size = (size_t)strtoull(argv[5], NULL, 10);
  if (a->echo) a->size = 1; /* unused */
  if (a->size == 0 || a->port <= 0) {
    fprintf(stderr, "%s: bad PORT or SIZE\n", argv[0]);
    return -1;
  }
  a->frames = a->pingpong ? a->total : a->total / a->size;
  return 0;
}

uint8_t *bench_corpus_load(size_t size, size_t *count) {
  const char *path = getenv("BENCH_CORPUS");
  FILE *f = path ? fopen(path, "rb") : NULL;
  uint8_t *buf;
  long len;
  if (!f) {
    fprintf(stderr, "bench: zbulk needs BENCH_CORPUS (a corpus file written by run.py)\n");
    return NULL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0 ||
      (size_t)len % size != 0 || !(buf = malloc((size_t)len)) ||
      fread(buf, 1, (size_t)len, f) != (size_t)len) {
    fprintf(stderr, "bench: %s: unreadable or not a multiple of %zu bytes\n", path, size);
    fclose(f);
    return NULL;
  }
  fclose(f);
  *count = (size_t)len / size;
  return buf;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sa;
}

int bench_accept(int port) {
  struct sockaddr_in sa = loopback(port);
  int one = 1, fd, lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) return -1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
    perror("bench: bind/listen");
    close(lfd);
    return -1;
  }
  do fd = accept(lfd, NULL, NULL); while (fd < 0 && errno == EINTR);
  close(lfd);
  if (fd >= 0) nodelay(fd);
  return fd;
}

int bench_connect(int port) {
  struct sockaddr_in sa = loopback(port);
  int i;
  for (i = 0; i < 2000; i++) {  /* up to ~20 s while the server starts */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
      nodelay(fd);
      return fd;
    }
    close(fd);
    {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  fprintf(stderr, "bench: cannot connect to port %d\n", port);
  return -1;
}

size_t bench_rbuf_size(size_t frame_size) {
  const char *env = getenv("BENCH_RBUF");
  if (env && atol(env) > 0) return (size_t)atol(env);
  return frame_size >= 8192 ? 65536 : 262144;
}

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int bench_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int bench_read_exact(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

void bench_print_bulk(double secs, uint64_t bytes, uint64_t frames) {
  printf("RESULT secs=%.6f bytes=%llu frames=%llu MBps=%.1f fps=%.0f\n", secs,
         (unsigned long long)bytes, (unsigned long long)frames,
         (double)bytes / secs / 1e6, (double)frames / secs);
  fflush(stdout);
}

void bench_print_pingpong(double secs, uint64_t rtts) {
  printf("RESULT secs=%.6f rtts=%llu rtps=%.0f\n", secs,
         (unsigned long long)rtts, (double)rtts / secs);
  fflush(stdout);
}

void bench_print_server(uint64_t bytes, uint64_t frames) {
  printf("SERVER bytes=%llu frames=%llu\n", (unsigned long long)bytes,
         (unsigned long long)frames);
  fflush(stdout);
}

uint64_t bench_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void bench_micro_print(const char *name, double value) {
  printf("MICRO name=%s value=%.3f\n", name, value);
  fflush(stdout);
}

double bench_memcpy_GBps(int trials, int reps) {
  enum { LEN = 65536 };
  void *pa = NULL, *pb = NULL;
  double best = 1e9;
  int t, i;
  if (posix_memalign(&pa, 64, LEN) != 0 || posix_memalign(&pb, 64, LEN) != 0) {
    free(pa);
    return 0;
  }
  memset(pa, 0x5a, LEN);
  memset(pb, 0xa5, LEN);
  /* Best of the trials: on a shared machine the least disturbed run is the
   * closest to the copy's own cost. */
  for (t = 0; t < trials; t++) {
    double t0 = bench_now(), dt;
    for (i = 0; i < reps; i++) {
      memcpy(pb, pa, LEN);
      __asm__ __volatile__("" : : "r"(pb) : "memory"); /* keep every copy */
    }
    dt = bench_now() - t0;
    if (dt < best) best = dt;
  }
  free(pa);
  free(pb);
  return (double)LEN * (double)reps / best / 1e9;
}
