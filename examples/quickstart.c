/* SPDX-License-Identifier: MIT */
/* The README's C quick start as a program: a blocking client that sends one
 * text message, prints the echo and closes. Usage: quickstart HOST PORT PATH */
#define _POSIX_C_SOURCE 200809L
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <lightws.h>

struct conn {                 /* your connection object */
  struct lightws_stream ws;   /* embedded, 256 bytes */
  uint8_t rbuf[16384];        /* receive buffer lent to the stream */
};

static int dial(const char *host, const char *port) {
  struct addrinfo hints, *ai, *p;
  int fd = -1;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
  for (p = ai; p; p = p->ai_next) {
    fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
    if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) == 0) break;
    if (fd >= 0) close(fd);
    fd = -1;
  }
  freeaddrinfo(ai);
  return fd;
}

int main(int argc, char **argv) {
  static struct conn c;
  struct lightws_chunk ch;
  char host[300];
  ssize_t n;
  int fd, rc;
  if (argc != 4) {
    fprintf(stderr, "usage: %s HOST PORT PATH\n", argv[0]);
    return 2;
  }
  if ((fd = dial(argv[1], argv[2])) < 0) return perror("connect"), 1;
  snprintf(host, sizeof host, "%s:%s", argv[1], argv[2]);
  rc = lightws_connect(&c.ws, fd, c.rbuf, sizeof c.rbuf, host, argv[3], NULL);
  if (rc < 0) {
    fprintf(stderr, "handshake: %s\n", lightws_strerror(rc));
    return 1;
  }
  lightws_stream_send(&c.ws, LIGHTWS_OPCODE_TEXT, "hello", 5, 0);
  /* a view into rbuf, valid until the next read; pings are answered inside */
  while ((n = lightws_stream_recv(&c.ws, &ch)) >= 0) {
    printf("%.*s", (int)ch.len, (const char *)ch.data);
    if (ch.message_end) break;
  }
  printf("\n");
  if (n < 0) {
    fprintf(stderr, "%s (close code %d)\n", lightws_strerror((int)n),
            lightws_close_code((int)n));
    return 1;
  }
  lightws_stream_close(&c.ws, LIGHTWS_CLOSE_NORMAL, "bye", 3);
  /* drain until the peer's close answers ours (§7.1.2) */
  while ((n = lightws_stream_recv(&c.ws, &ch)) >= 0) {}
  close(fd);
  return n == LIGHTWS_ERR_CLOSED ? 0 : 1;
}
