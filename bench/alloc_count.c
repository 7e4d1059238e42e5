/* SPDX-License-Identifier: MIT */
/* LD_PRELOAD heap-allocation counter: prints `ALLOCS count=N` on stderr at exit. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* glibc's own entry points: calling them avoids dlsym, which allocates. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static unsigned long long count;

void *malloc(size_t n) {
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  return __libc_malloc(n);
}

void *calloc(size_t n, size_t m) {
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n) {
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  return __libc_realloc(p, n);
}

void *memalign(size_t al, size_t n) {
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  return __libc_memalign(al, n);
}

void *aligned_alloc(size_t al, size_t n) {
  return memalign(al, n);
}

int posix_memalign(void **out, size_t al, size_t n) {
  void *p = memalign(al, n);
  if (!p) return 12; /* ENOMEM */
  *out = p;
  return 0;
}

__attribute__((destructor)) static void report(void) {
  char line[64];
  int len = snprintf(line, sizeof(line), "ALLOCS count=%llu\n", count);
  if (len > 0) (void)!write(2, line, (size_t)len);
}
