# SPDX-License-Identifier: MIT
"""cffi build script: compiles lib/*.c into the extension lightws._lightws
(API mode, so the compiler checks _cdef.h against lightws.h)."""

import glob
import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))


def _rel(path: str) -> str:
    # setuptools wants paths relative to the project root when it can have them.
    rel = os.path.relpath(path, os.getcwd())
    return path if rel.startswith("..") else rel


def _cdef() -> str:
    with open(os.path.join(_HERE, "_cdef.h"), encoding="utf-8") as f:
        return f.read()


# Glue for the lean paths of lightws.WebSocket: one cffi call instead of
# several (each costs about as much Python as the C work it wraps for a
# small message).
_GLUE = r"""
#include "lightws.h"

/* A transport that is gone: every read and write fails with EBADF. A
 * stream is moved onto it before its descriptor is closed, so a late call
 * can never reach whatever socket reuses the number. */
#include <errno.h>
#include <string.h>
static ssize_t lightws_py_gone_read(void *ctx, void *buf, size_t len) {
  (void)ctx; (void)buf; (void)len;
  errno = EBADF;
  return -1;
}
static ssize_t lightws_py_gone_writev(void *ctx, const struct iovec *iov,
                                      int iovcnt) {
  (void)ctx; (void)iov; (void)iovcnt;
  errno = EBADF;
  return -1;
}
static const struct lightws_io lightws_py_gone = {
    lightws_py_gone_read, lightws_py_gone_writev, NULL, NULL, NULL, NULL,
    NULL};
static void lightws_py_detach(struct lightws_stream *s) {
  lightws_stream_set_io(s, &lightws_py_gone);
}

/* 1 when a read would start with read(2): nothing unread in rbuf, no
 * control frame waiting to be written, the stream open. */
static int lightws_py_read_idle(const struct lightws_stream *s) {
  return lightws_stream_buffered(s) == 0 &&
         !(lightws_stream_want(s) & LIGHTWS_WANT_WRITE) &&
         lightws_stream_close_code(s) == 0 && lightws_stream_error(s) == 0;
}

/* lightws_stream_recv() plus, in *info: opcode | message_end << 8 |
 * frame_end << 9 | (this call received a pong) << 10. */
static ssize_t lightws_py_recv(struct lightws_stream *s,
                               struct lightws_chunk *c, int *info) {
  size_t plen;
  ssize_t n = lightws_stream_recv(s, c);
  int i = n >= 0 ? c->opcode | c->message_end << 8 | c->frame_end << 9 : 0;
  if (lightws_stream_pong_data(s, &plen)) i |= 1 << 10;
  *info = i;
  return n;
}

/* A memory transport for the sans-IO deflate codec (lightws.codec's
 * Compressor and Decompressor run a C stream over it): reads take from
 * in[in_pos..in_len), writes append to out[out_len..out_cap); no input
 * or no room is EAGAIN. */
struct lightws_py_mem {
  struct lightws_io io;
  const uint8_t *in;
  size_t in_len, in_pos;
  uint8_t *out;
  size_t out_cap, out_len;
};
static ssize_t lightws_py_mem_read(void *ctx, void *buf, size_t len) {
  struct lightws_py_mem *m = (struct lightws_py_mem *)ctx;
  size_t n = m->in_len - m->in_pos;
  if (n == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (n > len) n = len;
  memcpy(buf, m->in + m->in_pos, n);
  m->in_pos += n;
  return (ssize_t)n;
}
static ssize_t lightws_py_mem_writev(void *ctx, const struct iovec *iov,
                                     int iovcnt) {
  struct lightws_py_mem *m = (struct lightws_py_mem *)ctx;
  size_t total = 0;
  int i;
  for (i = 0; i < iovcnt; i++) {
    size_t room = m->out_cap - m->out_len, n = iov[i].iov_len;
    if (n > room) n = room;
    memcpy(m->out + m->out_len, iov[i].iov_base, n);
    m->out_len += n;
    total += n;
    if (n < iov[i].iov_len) break;
  }
  if (total == 0) {
    errno = EAGAIN;
    return -1;
  }
  return (ssize_t)total;
}
static void lightws_py_mem_attach(struct lightws_stream *s,
                                  struct lightws_py_mem *m) {
  memset(&m->io, 0, sizeof m->io); /* the optional hooks stay NULL */
  m->io.read = lightws_py_mem_read;
  m->io.writev = lightws_py_mem_writev;
  m->io.ctx = m;
  lightws_stream_set_io(s, &m->io);
}

/* The stream's clock for a caller that waits itself (poll(2), an event
 * loop timer): ticks if the deadline is due (*rc: 0 or the timeout error
 * that failed the stream), then returns the milliseconds until the next
 * deadline (at least 1), or -1 for none. One call instead of
 * deadline + now + tick + deadline. */
static int64_t lightws_py_clock(struct lightws_stream *s, int *rc) {
  uint64_t d = lightws_stream_deadline(s), now;
  *rc = 0;
  if (d == LIGHTWS_NO_DEADLINE) return -1;
  now = lightws_now();
  if (now >= d) {
    *rc = lightws_stream_tick(s, now);
    if (*rc < 0) return -1;
    d = lightws_stream_deadline(s);
    if (d == LIGHTWS_NO_DEADLINE) return -1;
  }
  return d > now ? (int64_t)(d - now) : 1;
}
"""

def _zlib():
    """(define_macros, libraries, include_dirs) for permessage-deflate:
    zlib as the Makefile takes it (pkg-config zlib, else -lz when zlib.h
    is there). LIGHTWS_ZLIB=0 in the environment builds without it, as
    `make ZLIB=0` does: then lightws.deflate_available() is False and
    compression is never negotiated."""
    import shutil
    import subprocess
    if os.environ.get("LIGHTWS_ZLIB", "1") == "0":
        return [("LIGHTWS_HAVE_ZLIB", "0")], [], []
    incs, libs = [], ["z"]
    if shutil.which("pkg-config"):
        try:
            cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "zlib"],
                                    capture_output=True, text=True, check=True).stdout.split()
            incs = [f[2:] for f in cflags if f.startswith("-I")]
            libs = [f[2:] for f in cflags if f.startswith("-l")] or ["z"]
            return [("LIGHTWS_HAVE_ZLIB", "1")], libs, incs
        except (OSError, subprocess.CalledProcessError):
            pass
    if any(os.path.exists(os.path.join(d, "zlib.h"))
           for d in ("/usr/include", "/usr/local/include")):
        return [("LIGHTWS_HAVE_ZLIB", "1")], libs, incs
    import warnings
    warnings.warn("lightws: zlib.h not found, building without permessage-deflate")
    return [("LIGHTWS_HAVE_ZLIB", "0")], [], []


_ZDEFS, _ZLIBS, _ZINCS = _zlib()

ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "lightws._lightws",
    _GLUE,
    sources=[_rel(p) for p in sorted(glob.glob(os.path.join(_ROOT, "lib", "*.c")))],
    include_dirs=[_rel(os.path.join(_ROOT, "lib", "include")),
                  _rel(os.path.join(_ROOT, "lib"))] + _ZINCS,
    define_macros=_ZDEFS,
    libraries=_ZLIBS,
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(_ROOT, "build", "python"), verbose=True)
