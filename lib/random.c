/* SPDX-License-Identifier: MIT */
/* Bytes from the OS random source, for mask keys (RFC 6455 §5.3) and handshake keys (§4.1). */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "internal.h"
#if defined(__linux__)
#include <sys/random.h>
#define HAVE_GETRANDOM 1
#endif

/* /dev/urandom, for kernels without getrandom(2) (before Linux 3.17). */
static int urandom(uint8_t *p, size_t len) {
  int fd;
  do {
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return LIGHTWS_ERR_SYSTEM;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      close(fd);
      errno = n == 0 ? EIO : saved;
      return LIGHTWS_ERR_SYSTEM;
    }
    p += n;
    len -= (size_t)n;
  }
  close(fd);
  return 0;
}

int lightws__random(void *buf, size_t len) {
  uint8_t *p = buf;
#ifdef HAVE_GETRANDOM
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS) return urandom(p, len);
      return LIGHTWS_ERR_SYSTEM;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
#else
  return urandom(p, len);
#endif
}
