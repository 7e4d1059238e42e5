/* SPDX-License-Identifier: MIT */
/* Error table lookups, close code validity, the version string and ASCII case folding. */
#include <stddef.h>
#include "internal.h"

const char *lightws_version(void) { return LIGHTWS_VERSION_STRING; }

/* One row per LIGHTWS_ERROR_MAP entry; the map is the only source. */
struct err_row {
  int value;
  short close;
  short status;
  const char *name;
  const char *msg;
};

static const struct err_row err_rows[] = {
#define ROW(name, value, close, status, msg) {value, close, status, #name, msg},
    LIGHTWS_ERROR_MAP(ROW)
#undef ROW
};

static const struct err_row *find(int err) {
  size_t i;
  for (i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
    if (err_rows[i].value == err) return &err_rows[i];
  return NULL;
}

const char *lightws_strerror(int err) {
  const struct err_row *r;
  if (err == 0) return "success";
  r = find(err);
  return r ? r->msg : "unknown error";
}

const char *lightws_errname(int err) {
  const struct err_row *r;
  if (err == 0) return "OK";
  r = find(err);
  return r ? r->name : "UNKNOWN";
}

int lightws_close_code(int err) {
  const struct err_row *r = find(err);
  return r ? r->close : 0;
}

int lightws_http_status(int err) {
  const struct err_row *r = find(err);
  return r ? r->status : 0;
}

/*
 * §7.4.1 defines 1000-1011 minus 1004 (reserved), 1005 and 1006 (never sent);
 * IANA's registry (§11.7) adds 1012-1014, while 1015 is never sent either.
 * §7.4.2: 0-999 are unused, 1016-2999 are reserved for future RFCs,
 * 3000-4999 belong to libraries and applications.
 */
int lightws_close_code_valid(unsigned code) {
  if (code >= 3000 && code <= 4999) return 1;
  if (code < 1000 || code > 1014) return 0;
  return code != 1004 && code != 1005 && code != 1006;
}

int lightws__casecmp(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
    if (x != y) return (int)x - (int)y;
  }
  return 0;
}
