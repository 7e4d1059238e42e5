/* SPDX-License-Identifier: MIT */
/* Replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over files and
 * directories given on the command line, without libFuzzer (for CI). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static long count;

static int run_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  uint8_t *buf;
  long n;
  if (!f) {
    perror(path);
    return 1;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return 1;
  }
  /* Exactly-sized heap copy so ASan catches reads past the input. */
  buf = malloc(n ? (size_t)n : 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return 1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  count++;
  return 0;
}

static int run_path(const char *path)
{
  struct stat st;
  DIR *d;
  struct dirent *e;
  int rc = 0;
  if (stat(path, &st) != 0) {
    perror(path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode))
    return run_file(path);
  d = opendir(path);
  if (!d) {
    perror(path);
    return 1;
  }
  while ((e = readdir(d)) != NULL) {
    char sub[4096];
    if (e->d_name[0] == '.')
      continue;
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    rc |= run_path(sub);
  }
  closedir(d);
  return rc;
}

int main(int argc, char **argv)
{
  int i, rc = 0;
  for (i = 1; i < argc; i++)
    rc |= run_path(argv[i]);
  printf("%s: replayed %ld inputs\n", argc > 0 ? argv[0] : "replay", count);
  return rc;
}
