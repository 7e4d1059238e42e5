/* SPDX-License-Identifier: MIT */
/* The websocket stream (RFC 6455 §5, §7): frames over a descriptor or
 * lightws_io, with fragments, ping/pong, close and limits, never allocating. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include "internal.h"

/* C99 compile-time check: the contract promises at most 512 bytes. */
typedef char lightws__stream_size_check[sizeof(struct lightws_stream) <= 512
                                        ? 1 : -1];

/* Bits of s->flags. The low byte holds the LIGHTWS_OPT_* options. */
#define F_OPTS         0x000000FFu
#define F_WANT_READ    0x00000100u /* last WOULDBLOCK waited to read */
#define F_WANT_WRITE   0x00000200u /* last WOULDBLOCK waited to write */
#define F_NOTSOCK      0x00000400u /* fd is no socket: read/writev, not recv/send */
#define F_IN_FRAME     0x00000800u /* a data frame head is decoded */
#define F_R_FIN        0x00001000u /* ... and it is final */
#define F_PONG_VALID   0x00002000u /* ctl_in_* hold a pong of this call */
#define F_CTL_PONG     0x00004000u /* ctl slot: automatic pong */
#define F_CTL_CLOSE    0x00008000u /* ctl slot: close frame */
#define F_CLOSE_QUEUED 0x00010000u /* a close is queued or sent */
#define F_CLOSE_SENT   0x00020000u /* our close went out completely */
#define F_CLOSE_RCVD   0x00040000u /* the peer's close arrived */
#define F_EOF          0x00080000u /* the transport ended */
#define F_CLOSE_DEFER  0x00100000u /* close (code close_sent) waits for the
                                      slot, busy with a half-sent frame */
#define F_TIMED        0x00200000u /* some timeout is set */
#define F_STAMP        0x00400000u /* idle or keepalive: the transport
                                      stamps t_rx / t_tx */
#define F_FDWAIT       0x00800000u /* blocking descriptor with timeouts:
                                      syscalls do not block, the stream
                                      waits in poll(2) up to its deadline */
#define F_KA_WAIT      0x01000000u /* keepalive ping due, waiting for the
                                      control slot (ctl_flush builds it) */
#define F_SHARED       0x02000000u /* shared-buffer mode: rbuf is the stash
                                      or a buffer the caller lent */

typedef char lightws__want_bits_check[(F_WANT_READ == LIGHTWS_WANT_READ << 8 &&
                                       F_WANT_WRITE == LIGHTWS_WANT_WRITE << 8)
                                      ? 1 : -1];

#define STATE_OPEN LIGHTWS__ST_OPEN

#define CHUNK 16384  /* stack chunk for masking a const buffer */
#define BYPASS_MIN 1024 /* read(): smallest payload read straight into buf */
#define SENDV_MAX 32

/* ---- transport -------------------------------------------------------- */

/* F_WANT_* bits for a would-block of the transport: what the io's `want`
 * hook says (a TLS read may need to write first), else `own`, the
 * direction of the call. Only on the EAGAIN path. */
static uint32_t want_bits(const struct lightws_stream *s, uint32_t own) {
  if (s->io && s->io->want) {
    int w = s->io->want(s->io->ctx) &
            (LIGHTWS_WANT_READ | LIGHTWS_WANT_WRITE);
    if (w) return (uint32_t)w << 8; /* F_WANT_READ/WRITE are WANT_* << 8 */
  }
  return own;
}

/* The io's `flush` hook: output the transport holds. 0 when none is left
 * (or no hook), WOULDBLOCK (want bits set), or the hook's error. */
static int io_flush(struct lightws_stream *s) {
  int r;
  if (!s->io || !s->io->flush) return 0;
  r = s->io->flush(s->io->ctx);
  if (r == LIGHTWS_ERR_WOULDBLOCK) s->flags |= want_bits(s, F_WANT_WRITE);
  return r;
}

/* Like read(2), EINTR retried: bytes read, 0 at EOF, or WOULDBLOCK (want
 * READ set) / SYSTEM. */
ssize_t lightws__stream_io_read(struct lightws_stream *s, void *buf,
                                size_t len) {
  for (;;) {
    ssize_t r;
    if (s->io) {
      r = s->io->read(s->io->ctx, buf, len);
    } else if (!(s->flags & F_NOTSOCK)) {
      /* recv(2) goes to the socket directly, read(2) through the VFS
       * layer first: ~50 ns less per call (a 64-byte echo is two reads) */
      r = recv(s->fd, buf, len, (s->flags & F_FDWAIT) ? MSG_DONTWAIT : 0);
      if (r < 0 && errno == ENOTSOCK) {
        s->flags |= F_NOTSOCK;
        continue;
      }
    } else {
      if (s->flags & F_FDWAIT) { /* no MSG_DONTWAIT off sockets */
        int w = lightws__stream_wait(s, LIGHTWS_WANT_READ);
        if (w < 0) return w;
      }
      r = read(s->fd, buf, len);
    }
    if (r > 0 && (s->flags & F_STAMP)) s->t_rx = lightws_now();
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (s->flags & F_FDWAIT) {
        int w = lightws__stream_wait(
            s, s->io ? (int)(want_bits(s, F_WANT_READ) >> 8)
                     : LIGHTWS_WANT_READ);
        if (w == 0) continue;
        if (w != LIGHTWS_ERR_WOULDBLOCK) return w; /* (io made nonblocking) */
      }
      s->flags |= want_bits(s, F_WANT_READ);
      return LIGHTWS_ERR_WOULDBLOCK;
    }
    return LIGHTWS_ERR_SYSTEM;
  }
}

/* Frames up to this size (head + payload, two iovecs) go to a socket as
 * one send(2) from a stack copy: cheaper for the kernel than walking a
 * 2-entry iovec in sendmsg(2), and the copy costs less than that. */
#define SMALL_SEND 512

/* Like writev(2), EINTR retried; sockets get MSG_NOSIGNAL so a closed peer
 * is EPIPE, not SIGPIPE. Bytes written, or WOULDBLOCK (want WRITE) / SYSTEM. */
ssize_t lightws__stream_io_writev(struct lightws_stream *s,
                                  const struct iovec *iov, int iovcnt) {
  int sflags = MSG_NOSIGNAL | ((s->flags & F_FDWAIT) ? MSG_DONTWAIT : 0);
  for (;;) {
    ssize_t r;
    if (s->io) {
      r = s->io->writev(s->io->ctx, iov, iovcnt);
    } else if (!(s->flags & F_NOTSOCK)) {
      if (iovcnt == 1) {
        r = send(s->fd, iov[0].iov_base, iov[0].iov_len, sflags);
      } else if (iovcnt == 2 &&
                 iov[0].iov_len + iov[1].iov_len <= SMALL_SEND) {
        uint8_t small[SMALL_SEND];
        memcpy(small, iov[0].iov_base, iov[0].iov_len);
        memcpy(small + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
        r = send(s->fd, small, iov[0].iov_len + iov[1].iov_len, sflags);
      } else {
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = (struct iovec *)iov;
        m.msg_iovlen = (size_t)iovcnt;
        r = sendmsg(s->fd, &m, sflags);
      }
      if (r < 0 && errno == ENOTSOCK) {
        s->flags |= F_NOTSOCK;
        continue;
      }
    } else {
      if (s->flags & F_FDWAIT) {
        int w = lightws__stream_wait(s, LIGHTWS_WANT_WRITE);
        if (w < 0) return w;
      }
      r = writev(s->fd, iov, iovcnt);
    }
    if (r > 0 && (s->flags & F_STAMP)) s->t_tx = lightws_now();
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (s->flags & F_FDWAIT) {
        int w = lightws__stream_wait(
            s, s->io ? (int)(want_bits(s, F_WANT_WRITE) >> 8)
                     : LIGHTWS_WANT_WRITE);
        if (w == 0) continue;
        if (w != LIGHTWS_ERR_WOULDBLOCK) return w;
      }
      s->flags |= want_bits(s, F_WANT_WRITE);
      return LIGHTWS_ERR_WOULDBLOCK;
    }
    return LIGHTWS_ERR_SYSTEM;
  }
}

/* ---- mask keys -------------------------------------------------------- */

/* xorshift64* seeded once from the OS at init: a fresh key per frame costs
 * a few instructions and no syscall. §5.3 asks for unpredictable keys so a
 * hostile script cannot steer the bytes on the wire; the seed is secret and
 * only 32 of the 64 state bits of each step are used. */
static void next_key(struct lightws_stream *s, uint8_t key[4]) {
  uint64_t x;
  uint32_t k;
  if (s->mask_mode == LIGHTWS_MASK_ZERO) {
    memset(key, 0, 4);
    return;
  }
  if (s->mask_mode == LIGHTWS_MASK_FIXED) {
    memmove(key, s->w_mask, 4);
    return;
  }
  x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  k = (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
  memcpy(key, &k, 4);
}

static int key_zero(const uint8_t key[4]) {
  return (key[0] | key[1] | key[2] | key[3]) == 0;
}

/* ---- control slot ----------------------------------------------------- */

/* Encodes a control frame into the slot; the client masks it (§5.3). */
static void ctl_build(struct lightws_stream *s, unsigned opcode,
                      const uint8_t *p1, size_t n1, const uint8_t *p2,
                      size_t n2) {
  struct lightws_frame f;
  size_t h;
  memset(&f, 0, sizeof f);
  f.fin = 1;
  f.opcode = (uint8_t)opcode;
  f.length = n1 + n2;
  if (s->role == LIGHTWS_CLIENT) {
    f.masked = 1;
    next_key(s, f.mask);
  }
  h = lightws__frame_encode(&f, s->ctl);
  if (n1) memcpy(s->ctl + h, p1, n1);
  if (n2) memcpy(s->ctl + h + n1, p2, n2);
  if (f.masked) lightws_mask(s->ctl + h, n1 + n2, f.mask, 0);
  s->ctl_len = (uint8_t)(h + n1 + n2);
  s->ctl_sent = 0;
  s->flags &= ~(F_CTL_PONG | F_CTL_CLOSE);
  if (opcode == LIGHTWS_OPCODE_PONG) s->flags |= F_CTL_PONG;
  if (opcode == LIGHTWS_OPCODE_CLOSE) s->flags |= F_CTL_CLOSE;
}

static void close_build(struct lightws_stream *s, unsigned code,
                        const uint8_t *reason, size_t rlen) {
  uint8_t c[2];
  c[0] = (uint8_t)(code >> 8);
  c[1] = (uint8_t)code;
  if (code == 0 || code == LIGHTWS_CLOSE_NO_STATUS)
    ctl_build(s, LIGHTWS_OPCODE_CLOSE, NULL, 0, NULL, 0);
  else
    ctl_build(s, LIGHTWS_OPCODE_CLOSE, c, 2, reason, rlen);
}

/* The close handshake starts (our close queued or the peer's received):
 * the close timeout runs from now. */
static void close_began(struct lightws_stream *s) {
  if (!(s->flags & (F_CLOSE_QUEUED | F_CLOSE_RCVD)) && (s->flags & F_TIMED))
    s->t_phase = lightws_now();
  s->flags &= ~F_KA_WAIT; /* no keepalive ping after a close */
}

/* Queues our close (echo or failure) with an optional reason (ASCII,
 * static): replaces a control frame not yet started; waits behind one
 * partly sent (F_CLOSE_DEFER; the reason is then left out). */
static void close_queue(struct lightws_stream *s, unsigned code,
                        const char *reason) {
  if (s->flags & F_CLOSE_QUEUED) return;
  close_began(s);
  s->flags |= F_CLOSE_QUEUED;
  s->close_sent = (uint16_t)(code ? code : LIGHTWS_CLOSE_NO_STATUS);
  if (s->ctl_len && s->ctl_sent)
    s->flags |= F_CLOSE_DEFER;
  else
    close_build(s, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
}

/* The keepalive ping (§5.5.2): 4 random bytes, answered by a pong with the
 * same payload (§5.5.3). Only into a free slot. */
static void ka_build(struct lightws_stream *s) {
  uint8_t token[4];
  uint8_t mode = s->mask_mode;
  s->mask_mode = LIGHTWS_MASK_RANDOM; /* the generator, whatever the mode */
  next_key(s, token);
  s->mask_mode = mode;
  memcpy(s->ka_token, token, 4);
  s->t_ping_us = lightws__now_us();
  s->flags &= ~F_KA_WAIT;
  ctl_build(s, LIGHTWS_OPCODE_PING, token, 4, NULL, 0);
}

/* Writes the control slot out. 0 when empty, BUSY behind a half-written
 * data frame (§5.4: control frames go between frames, never inside one),
 * WOULDBLOCK or SYSTEM. */
static int ctl_flush(struct lightws_stream *s) {
  while (s->ctl_len) {
    struct iovec iov;
    ssize_t r;
    if (s->whead_len) return LIGHTWS_ERR_BUSY;
    iov.iov_base = s->ctl + s->ctl_sent;
    iov.iov_len = (size_t)(s->ctl_len - s->ctl_sent);
    r = lightws__stream_io_writev(s, &iov, 1);
    if (r < 0) return (int)r;
    s->ctl_sent = (uint8_t)(s->ctl_sent + r);
    if (s->ctl_sent < s->ctl_len) continue;
    s->ctl_len = s->ctl_sent = 0;
    if (s->flags & F_CTL_CLOSE) s->flags |= F_CLOSE_SENT;
    s->flags &= ~(F_CTL_PONG | F_CTL_CLOSE);
    if (s->flags & F_CLOSE_DEFER) {
      s->flags &= ~F_CLOSE_DEFER;
      close_build(s, s->close_sent, NULL, 0);
    } else if (s->flags & F_KA_WAIT) {
      ka_build(s); /* the keepalive ping waited for the slot */
    }
  }
  return 0;
}

/* Flush that only matters as an attempt: what is left stays pending and
 * lightws_stream_want() reports WRITE. */
static void ctl_try(struct lightws_stream *s) {
  if (s->ctl_len && !s->whead_len) (void)ctl_flush(s);
}

/* ---- read side -------------------------------------------------------- */

/* Fails the stream for a peer protocol error (§7.1.7) or a timeout: close
 * with lightws_close_code(err) and `reason` (may be NULL), and the error
 * sticks. */
static ssize_t fail_why(struct lightws_stream *s, int err,
                        const char *reason) {
  s->last_err = (uint8_t)-err;
  if ((s->flags & F_CTL_PONG) && s->ctl_sent == 0) {
    s->ctl_len = 0;
    s->flags &= ~F_CTL_PONG;
  }
  if (s->whead_len && !(s->flags & F_CLOSE_QUEUED)) {
    /* a data frame of ours is half-written and sends now fail: the close
     * could never go out after it, so none is queued (§7.1.7 allows just
     * dropping the connection) */
    s->flags |= F_CLOSE_QUEUED;
    s->close_sent = (uint16_t)lightws_close_code(err);
    return err;
  }
  close_queue(s, (unsigned)lightws_close_code(err), reason);
  ctl_try(s);
  return err;
}

static ssize_t fail(struct lightws_stream *s, int err) {
  return fail_why(s, err, NULL);
}

static unsigned decode_flags(const struct lightws_stream *s) {
  /* RFC 7692 §6: permessage-deflate uses RSV1 */
  unsigned f = s->pmd ? LIGHTWS_DECODE_ALLOW_RSV1 : 0;
  if (s->flags & LIGHTWS_OPT_NO_MASK_CHECK) return f;
  /* §5.1: clients mask, servers do not */
  return f | (s->role == LIGHTWS_SERVER ? LIGHTWS_DECODE_EXPECT_MASKED
                                        : LIGHTWS_DECODE_EXPECT_UNMASKED);
}

/* Moves the unread bytes to the front of rbuf. A pong recorded in this call
 * (at most 125 bytes, already consumed) is kept in front of them so that
 * lightws_stream_pong_data() stays valid; if rbuf is too small for both,
 * the pong is dropped. `need` is the room wanted from rpos. */
static void compact(struct lightws_stream *s, size_t need) {
  uint32_t base = 0, unread = s->rend - s->rpos;
  if (s->flags & F_PONG_VALID) {
    size_t want = need > unread ? need : unread;
    if ((size_t)s->ctl_in_len + want < s->rsize) {
      memmove(s->rbuf, s->rbuf + s->ctl_in_off, s->ctl_in_len);
      s->ctl_in_off = 0;
      base = s->ctl_in_len;
    } else {
      s->flags &= ~F_PONG_VALID;
    }
  }
  if (unread) memmove(s->rbuf + base, s->rbuf + s->rpos, unread);
  s->rpos = base;
  s->rend = base + unread;
}

static ssize_t on_eof(struct lightws_stream *s) {
  s->flags |= F_EOF;
  if (!(s->flags & F_CLOSE_RCVD)) s->close_code = LIGHTWS_CLOSE_ABNORMAL;
  return LIGHTWS_ERR_EOF;
}

/* Reads more input after rend, with room for `need` bytes from rpos.
 * `*reads` is the syscall budget (-1: unlimited); without budget returns
 * INCOMPLETE, meaning "stop here, nothing lost". */
static ssize_t more(struct lightws_stream *s, int *reads, size_t need) {
  ssize_t r;
  if (s->rpos == s->rend && !(s->flags & F_PONG_VALID))
    s->rpos = s->rend = 0; /* compact() with nothing to keep */
  else if (s->rpos == s->rend || s->rend == s->rsize ||
           s->rpos + need > s->rsize)
    compact(s, need);
  if (*reads == 0) return LIGHTWS_ERR_INCOMPLETE;
  if (*reads > 0) (*reads)--;
  r = lightws__stream_io_read(s, s->rbuf + s->rend, s->rsize - s->rend);
  if (r == 0) return on_eof(s);
  if (r < 0) return r;
  s->rend += (uint32_t)r;
  return 0;
}

/* Payload bytes src[0..n) of the current data frame arrived (raw, masked
 * as sent, §5.3): unmask them into dst in one pass (dst == src for a view
 * into rbuf; the caller's buffer for the copy-out reads, so the payload is
 * not unmasked in rbuf and then copied), validate text on the unmasked
 * bytes, account. Returns 0 or a failure. */
static ssize_t take_payload(struct lightws_stream *s, uint8_t *dst,
                            const uint8_t *src, size_t n,
                            struct lightws_chunk *out) {
  int u = LIGHTWS_UTF8_VALID;
  uint32_t key;
  memcpy(&key, s->r_mask, 4);
  if (key || dst != src) /* a client's view of unmasked data: nothing to do */
    lightws_mask_copy(dst, src, n, s->r_mask, s->r_mask_off);
  s->r_mask_off = (uint8_t)((s->r_mask_off + n) & 3);
  s->r_left -= n;
  if (s->msg_opcode == LIGHTWS_OPCODE_TEXT &&
      !(s->flags & LIGHTWS_OPT_NO_UTF8_CHECK)) {
    struct lightws_utf8 st;
    st.state = s->utf8;
    u = lightws_utf8_feed(&st, dst, n);
    s->utf8 = st.state;
    if (u < 0) return fail(s, LIGHTWS_ERR_UTF8);
  }
  out->data = dst;
  out->len = n;
  out->opcode = s->msg_opcode;
  out->frame_end = s->r_left == 0;
  out->message_end = 0;
  out->compressed = 0;
  if (s->r_left == 0) {
    s->flags &= ~F_IN_FRAME;
    if (s->flags & F_R_FIN) {
      /* §8.1: a text message must end on a character boundary */
      if (u == LIGHTWS_UTF8_INCOMPLETE) return fail(s, LIGHTWS_ERR_UTF8);
      out->message_end = 1;
      s->msg_opcode = 0;
      s->msg_len = 0;
      s->utf8 = 0;
    }
  }
  return 0;
}

/* Handles a complete control frame at rpos (head `h` bytes). Returns 0 to
 * go on, 1 when a ping is handed to the caller (NO_AUTO_PONG), or an
 * error; INCOMPLETE/WOULDBLOCK leave the frame unconsumed. */
static ssize_t on_control(struct lightws_stream *s,
                          const struct lightws_frame *f, size_t h,
                          struct lightws_chunk *out, int hold_ping) {
  uint8_t *p = s->rbuf + s->rpos + h;
  size_t len = (size_t)f->length;
  unsigned code;

  if (f->opcode == LIGHTWS_OPCODE_PING) {
    if ((s->flags & LIGHTWS_OPT_NO_AUTO_PONG) && hold_ping >= 0) {
      if (hold_ping) return LIGHTWS_ERR_INCOMPLETE;
      lightws_mask(p, len, f->mask, 0);
      s->rpos += (uint32_t)(h + len);
      out->data = p;
      out->len = len;
      out->opcode = LIGHTWS_OPCODE_PING;
      out->frame_end = out->message_end = 1;
      out->compressed = 0;
      return 1;
    }
    /* After our close no pong is due (§5.5.1: the peer expects only our
     * close now). */
    if (!(s->flags & F_CLOSE_QUEUED)) {
      if (s->ctl_len && !((s->flags & F_CTL_PONG) && s->ctl_sent == 0)) {
        /* the slot holds our own ping/pong: it goes first */
        int r = s->whead_len ? LIGHTWS_ERR_WOULDBLOCK : ctl_flush(s);
        if (r < 0) {
          if (r == LIGHTWS_ERR_WOULDBLOCK) s->flags |= F_WANT_WRITE;
          return r;
        }
      }
      lightws_mask(p, len, f->mask, 0);
      /* §5.5.3: a pong not yet started is replaced: answering only the
       * most recent ping is allowed */
      ctl_build(s, LIGHTWS_OPCODE_PONG, p, len, NULL, 0);
      ctl_try(s);
    }
    s->rpos += (uint32_t)(h + len);
    return 0;
  }

  lightws_mask(p, len, f->mask, 0);
  s->rpos += (uint32_t)(h + len);
  if (f->opcode == LIGHTWS_OPCODE_PONG) {
    s->ctl_in_off = (uint32_t)(p - s->rbuf);
    s->ctl_in_len = (uint8_t)len;
    s->flags |= F_PONG_VALID;
    if (s->t_ping) {
      /* any pong shows the peer alive; only ours measures the round trip */
      if (!(s->flags & F_KA_WAIT) && len == 4 &&
          memcmp(p, s->ka_token, 4) == 0) {
        uint64_t d = lightws__now_us() - s->t_ping_us;
        s->rtt_us = d > UINT32_MAX ? UINT32_MAX : (d ? (uint32_t)d : 1);
      }
      s->t_ping = 0;
      s->flags &= ~F_KA_WAIT;
    }
    return 0;
  }

  /* close, §5.5.1 and §7.4 */
  if (len == 1) return fail(s, LIGHTWS_ERR_CLOSE_PAYLOAD);
  code = LIGHTWS_CLOSE_NO_STATUS;
  if (len >= 2) {
    struct lightws_utf8 u;
    code = ((unsigned)p[0] << 8) | p[1];
    if (!lightws_close_code_valid(code))
      return fail(s, LIGHTWS_ERR_CLOSE_CODE);
    u.state = 0;
    if (lightws_utf8_feed(&u, p + 2, len - 2) != LIGHTWS_UTF8_VALID)
      return fail(s, LIGHTWS_ERR_UTF8);
  }
  s->flags &= ~F_PONG_VALID;
  close_began(s);
  s->flags |= F_CLOSE_RCVD;
  s->close_code = (uint16_t)code;
  s->ctl_in_off = (uint32_t)(p - s->rbuf) + (len >= 2 ? 2 : 0);
  s->ctl_in_len = (uint8_t)(len >= 2 ? len - 2 : 0);
  /* §5.5.1: answer with a close, echoing the code */
  if (!(s->flags & F_CLOSE_QUEUED)) {
    if ((s->flags & F_CTL_PONG) && s->ctl_sent == 0) s->ctl_len = 0;
    close_queue(s, code, NULL);
  }
  ctl_try(s);
  return LIGHTWS_ERR_CLOSED;
}

#if LIGHTWS_HAVE_ZLIB
/* ---- permessage-deflate, read side (RFC 7692 §7.2.2) ------------------ */

#define NEXT_FRAME (-1000) /* inflate_chunk: decode the next frame head */

/* §7.2.2: appended to a compressed message's payload before inflating;
 * §7.2.1: removed from the end of our compressed messages. */
static const uint8_t pmd_tail[4] = {0x00, 0x00, 0xff, 0xff};

static int r_compressed(const struct lightws_stream *s) {
  return s->pmd && s->pmd->r_comp;
}

/* The compressed message ended: its chunk is the last. */
static void inflate_end(struct lightws_stream *s) {
  struct lightws__pmd *p = s->pmd;
  /* the peer starts each message afresh (its no_context_takeover), or
   * ended its deflate stream (BFINAL) inside this one */
  if (p->peer_nct || p->r_reset) (void)p->inflate_reset(&p->zi);
  p->r_comp = p->r_tail = p->r_reset = 0;
  p->r_out = 0;
  s->flags &= ~F_IN_FRAME;
  s->msg_opcode = 0;
  s->msg_len = 0;
  s->utf8 = 0;
}

/*
 * The message being read is compressed: inflates the payload of the
 * current frame (unmasked in place in rbuf as it arrives) into `dst` (the
 * caller's buffer, `max` bytes) or, for a view (dst NULL), the block's
 * inflate work buffer. At the end of the final frame the 4 bytes of §7.2.2
 * follow. zlib's output is bounded by what max_message still allows plus
 * one byte, so a message over the limit fails as soon as it passes it.
 * Returns the chunk length (> 0, or 0 with message_end), an error, or
 * NEXT_FRAME when the frame is used up and the message goes on.
 */
static ssize_t inflate_chunk(struct lightws_stream *s,
                             struct lightws_chunk *out, size_t max,
                             int *reads, uint8_t *dst) {
  struct lightws__pmd *p = s->pmd;
  size_t room = max, got = 0; /* got: output of this call so far */
  if (!dst) {
    dst = p->ibuf;
    if (room > p->work_size) room = p->work_size;
  }
  if (room > UINT_MAX) room = UINT_MAX;
  for (;;) {
    size_t avail = s->rend - s->rpos, in_len = 0, took, made;
    uint64_t allow;
    const uint8_t *in = pmd_tail;
    int tail = 0, zr, end;
    ssize_t r;
    if (s->r_left > 0) {
      size_t n = avail < s->r_left ? avail : (size_t)s->r_left;
      if (n > p->r_unmasked) {
        lightws_mask(s->rbuf + s->rpos + p->r_unmasked, n - p->r_unmasked,
                     s->r_mask, s->r_mask_off);
        s->r_mask_off = (uint8_t)((s->r_mask_off + n - p->r_unmasked) & 3);
        p->r_unmasked = (uint32_t)n;
      }
      in = s->rbuf + s->rpos;
      in_len = p->r_unmasked;
    } else if ((s->flags & F_R_FIN) && p->r_tail < 4) {
      /* a compressed message with no payload at all: nothing to inflate
       * (fed the 4 bytes alone, zlib would wait inside a stored block) */
      if (s->msg_len == 0) p->r_tail = 4;
      in = pmd_tail + p->r_tail;
      in_len = 4u - p->r_tail;
      tail = 1;
    }
    if (in_len == 0 && p->r_drained) {
      if (s->r_left > 0) {
        r = more(s, reads, 0);
        if (r < 0) return r;
        continue;
      }
      if (!(s->flags & F_R_FIN)) {
        s->flags &= ~F_IN_FRAME; /* frames are not visible in the output */
        return NEXT_FRAME;
      }
    }
    allow = (uint64_t)s->max_message - p->r_out + 1;
    p->zi.next_in = (Bytef *)(uintptr_t)in;
    p->zi.avail_in = (uInt)in_len;
    p->zi.next_out = dst + got;
    p->zi.avail_out = (uInt)(allow < room - got ? allow : room - got);
    zr = p->inflate(&p->zi, Z_SYNC_FLUSH);
    took = in_len - p->zi.avail_in;
    made = (size_t)(p->zi.next_out - (dst + got));
    if (tail) {
      p->r_tail = (uint8_t)(p->r_tail + took);
    } else {
      s->rpos += (uint32_t)took;
      s->r_left -= took;
      p->r_unmasked -= (uint32_t)took;
    }
    if (zr == Z_STREAM_END) {
      /* a block with BFINAL (§7.2.3.4): whatever follows starts a new
       * deflate stream (the rest of the message: 00 00 ff ff at least) */
      (void)p->inflate_reset(&p->zi);
      p->r_reset = 1;
      p->r_drained = 1;
    } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
      return fail(s, LIGHTWS_ERR_BAD_DEFLATE);
    } else {
      p->r_drained = p->zi.avail_out > 0;
    }
    p->r_out += made;
    if (p->r_out > s->max_message) return fail(s, LIGHTWS_ERR_MESSAGE_TOO_BIG);
    end = s->r_left == 0 && (s->flags & F_R_FIN) && p->r_tail == 4 &&
          p->r_drained;
    if (s->msg_opcode == LIGHTWS_OPCODE_TEXT &&
        !(s->flags & LIGHTWS_OPT_NO_UTF8_CHECK) && (made || end)) {
      struct lightws_utf8 st;
      int u;
      st.state = s->utf8;
      u = lightws_utf8_feed(&st, dst + got, made);
      s->utf8 = st.state;
      if (u < 0 || (end && u == LIGHTWS_UTF8_INCOMPLETE))
        return fail(s, LIGHTWS_ERR_UTF8);
    }
    got += made;
    if (!end) {
      if (!got) continue;
      /* the final frame's payload is all in: feed the tail in this call,
       * so a message whose frames came whole ends in one read */
      if (made && s->r_left == 0 && (s->flags & F_R_FIN) && p->r_tail < 4 &&
          got < room)
        continue;
    }
    out->data = dst;
    out->len = got;
    out->opcode = s->msg_opcode;
    out->frame_end = out->message_end = (uint8_t)end;
    out->compressed = 1;
    if (end) inflate_end(s);
    return (ssize_t)got;
  }
}
#else
static int r_compressed(const struct lightws_stream *s) {
  (void)s;
  return 0;
}
#endif

/* LIGHTWS_OPT_WHOLE_TEXT applies to the text frame being read: it fits
 * rbuf, so more() can bring all of it (§8.1 is then checked on the whole
 * frame before any byte of it is handed out). */
static int whole_text(const struct lightws_stream *s) {
  return (s->flags & LIGHTWS_OPT_WHOLE_TEXT) &&
         s->msg_opcode == LIGHTWS_OPCODE_TEXT && s->r_left <= s->rsize;
}

/*
 * The read engine: delivers the next piece of data payload, at most `max`
 * bytes, as a view into rbuf. `*reads` is the read(2) budget (-1 unlimited);
 * without budget it returns INCOMPLETE ("nothing more now"). `hold_ping`:
 * 1 stops before a ping under NO_AUTO_PONG (a gathering read that already
 * has bytes), 0 hands it out (returns the chunk with opcode PING), -1
 * answers it anyway (read_bytes). `dst`: where data payload goes, unmasked
 * (NULL: in place in rbuf, out->data a view). A ping handed out stays in
 * rbuf. Returns the chunk length or an error.
 */
static ssize_t engine(struct lightws_stream *s, struct lightws_chunk *out,
                      size_t max, int *reads, int hold_ping, uint8_t *dst) {
  for (;;) {
    struct lightws_frame f;
    ssize_t h, r;
    size_t avail = s->rend - s->rpos;

    if (s->flags & F_IN_FRAME) {
      size_t n = avail;
      uint8_t *src;
#if LIGHTWS_HAVE_ZLIB
      if (r_compressed(s)) {
        r = inflate_chunk(s, out, max, reads, dst);
        if (r == NEXT_FRAME) continue;
        return r;
      }
#endif
      if (s->r_left > 0 && avail == 0) {
        r = more(s, reads, 0);
        if (r < 0) return r;
        continue;
      }
      if (n < s->r_left && whole_text(s)) {
        /* LIGHTWS_OPT_WHOLE_TEXT: the rest of the frame first */
        r = more(s, reads, (size_t)s->r_left);
        if (r < 0) return r;
        continue;
      }
      if (n > s->r_left) n = (size_t)s->r_left;
      if (n > max) n = max;
      if (n == 0 && s->r_left > 0) return LIGHTWS_ERR_INCOMPLETE; /* max 0 */
      src = s->rbuf + s->rpos;
      r = take_payload(s, dst ? dst : src, src, n, out);
      if (r < 0) return r;
      s->rpos += (uint32_t)n;
      return (ssize_t)n;
    }

    if (avail == 0) {
      /* nothing to decode: the decoder would only say INCOMPLETE, 2 */
      r = more(s, reads, 2);
      if (r < 0) return r;
      continue;
    }
    h = lightws_frame_decode(&f, s->rbuf + s->rpos, avail, decode_flags(s));
    if (h == LIGHTWS_ERR_INCOMPLETE) {
      r = more(s, reads, f.header_len);
      if (r < 0) return r;
      continue;
    }
    if (h < 0) return fail(s, (int)h);
    /* RFC 7692 §6.1: RSV1 only on the first frame of a data message (the
     * decoder allowed it only with permessage-deflate on) */
    if ((f.rsv & 0x40) &&
        ((f.opcode & 0x8) || f.opcode == LIGHTWS_OPCODE_CONTINUATION))
      return fail(s, LIGHTWS_ERR_BAD_RSV1);

    if (f.opcode & 0x8) {
      /* §5.5: the whole control frame (<= 139 bytes) must be in rbuf */
      size_t need = (size_t)h + (size_t)f.length;
      if (avail < need) {
        r = more(s, reads, need);
        if (r < 0) return r;
        continue;
      }
      r = on_control(s, &f, (size_t)h, out, hold_ping);
      if (r < 0) return r;
      if (r == 1) return (ssize_t)out->len;
      continue;
    }

    /* data frame, §5.4 */
    if (f.opcode == LIGHTWS_OPCODE_CONTINUATION) {
      if (!s->msg_opcode) return fail(s, LIGHTWS_ERR_UNEXPECTED_CONTINUATION);
    } else if (s->msg_opcode) {
      return fail(s, LIGHTWS_ERR_EXPECTED_CONTINUATION);
    }
    if (f.length > s->max_frame) return fail(s, LIGHTWS_ERR_FRAME_TOO_BIG);
    if (f.opcode != LIGHTWS_OPCODE_CONTINUATION) {
      s->msg_opcode = f.opcode;
      s->msg_len = 0;
      s->utf8 = 0;
#if LIGHTWS_HAVE_ZLIB
      if (s->pmd) {
        struct lightws__pmd *p = s->pmd;
        p->r_comp = (f.rsv & 0x40) != 0;
        p->r_tail = p->r_reset = 0;
        p->r_drained = 1;
        p->r_out = 0;
      }
#endif
    }
    if (s->msg_len + f.length > s->max_message)
      return fail(s, LIGHTWS_ERR_MESSAGE_TOO_BIG);
    s->msg_len += f.length;
    s->r_left = f.length;
    s->r_opcode = f.opcode;
    memcpy(s->r_mask, f.mask, 4); /* all zero when unmasked */
    s->r_mask_off = 0;
    s->flags |= F_IN_FRAME;
    if (f.fin) s->flags |= F_R_FIN; else s->flags &= ~F_R_FIN;
    s->rpos += (uint32_t)h;
#if LIGHTWS_HAVE_ZLIB
    if (r_compressed(s)) {
      s->pmd->r_unmasked = 0;
      continue; /* inflate_chunk reads it, empty or not */
    }
#endif
    if (f.length == 0) {
      /* an empty frame is a chunk of its own (it may end a message) */
      r = take_payload(s, dst ? dst : s->rbuf + s->rpos, s->rbuf + s->rpos, 0,
                       out);
      if (r < 0) return r;
      return 0;
    }
  }
}

/* Common entry of the read calls: sticky states first. */
static ssize_t read_begin(struct lightws_stream *s) {
  uint32_t was = s->flags;
  if (s->state != STATE_OPEN) return LIGHTWS_ERR_INVALID;
  s->flags &= ~(F_WANT_READ | F_WANT_WRITE | F_PONG_VALID);
  /* the last call would block for writing: output the transport holds (a
   * TLS KeyUpdate answer) goes first if it can; a read may go on anyway */
  if ((was & F_WANT_WRITE) && s->io && s->io->flush)
    (void)io_flush(s);
  if (s->last_err) {
    ctl_try(s);
    return -(ssize_t)s->last_err;
  }
  if (s->flags & F_CLOSE_RCVD) {
    ctl_try(s);
    return LIGHTWS_ERR_CLOSED;
  }
  if (s->flags & F_EOF) return LIGHTWS_ERR_EOF;
  /* a pong owed from an earlier call goes out now if it can */
  ctl_try(s);
  return 0;
}

ssize_t lightws_stream_recv(struct lightws_stream *s,
                            struct lightws_chunk *out) {
  int reads = (s->flags & LIGHTWS_OPT_DIRECT) ? 1 : -1;
  ssize_t r = read_begin(s);
  memset(out, 0, sizeof *out);
  if (r < 0) return r;
  r = engine(s, out, (size_t)-1, &reads, 0, NULL);
  if (r == LIGHTWS_ERR_INCOMPLETE) {
    memset(out, 0, sizeof *out); /* direct mode without progress */
    out->opcode = s->msg_opcode;
    return 0;
  }
  return r;
}

/* Payload straight from the transport into the caller's buffer: only when
 * rbuf is empty and the frame still has at least BYPASS_MIN bytes, so the
 * copy through rbuf is skipped for large payloads. Returns bytes or error. */
static ssize_t bypass(struct lightws_stream *s, uint8_t *dst, size_t room,
                      int *reads, struct lightws_chunk *c) {
  size_t n = room;
  ssize_t r;
  if (n > s->r_left) n = (size_t)s->r_left;
  if (*reads > 0) (*reads)--;
  r = lightws__stream_io_read(s, dst, n);
  if (r == 0) return on_eof(s);
  if (r < 0) return r;
  if (take_payload(s, dst, dst, (size_t)r, c) < 0)
    return -(ssize_t)s->last_err;
  return r;
}

/* Copy-out reads. `bytes`: cross message boundaries (read_bytes). */
static ssize_t gather(struct lightws_stream *s, uint8_t *buf, size_t size,
                      struct lightws_chunk *out, int bytes) {
  int reads = (s->flags & LIGHTWS_OPT_DIRECT) ? 1 : -1;
  size_t got = 0;
  struct lightws_chunk c;
  ssize_t r = read_begin(s);
  memset(&c, 0, sizeof c);
  if (out) {
    memset(out, 0, sizeof *out);
    out->data = buf;
  }
  if (r < 0) return r;
  if (size == 0) return 0;
  for (;;) {
    size_t room = size - got;
    if ((s->flags & F_IN_FRAME) && s->rpos == s->rend && reads != 0 &&
        room >= BYPASS_MIN && s->r_left >= BYPASS_MIN && !r_compressed(s) &&
        !whole_text(s)) {
      r = bypass(s, buf + got, room, &reads, &c);
    } else {
      /* data payload is unmasked straight into buf (one pass) */
      r = engine(s, &c, room, &reads, bytes ? -1 : got > 0, buf + got);
      if (r >= 0 && c.opcode == LIGHTWS_OPCODE_PING) {
        /* NO_AUTO_PONG: the ping is the whole result of this call */
        size_t n = c.len < size ? c.len : size;
        memcpy(buf, c.data, n);
        if (out) {
          *out = c;
          out->data = buf;
          out->len = n;
        }
        return (ssize_t)n;
      }
    }
    if (r < 0) {
      if (got > 0 || r == LIGHTWS_ERR_INCOMPLETE) break;
      return r;
    }
    got += (size_t)r;
    if (out) {
      out->opcode = c.opcode;
      out->frame_end = c.frame_end;
      out->message_end = c.message_end;
      out->compressed = c.compressed;
    }
    if (!bytes && c.message_end) break;
    if (got == size) break;
    /* never block once something is in hand (read(2) semantics) */
    if (got > 0) reads = 0;
  }
  if (out) out->len = got;
  return (ssize_t)got;
}

ssize_t lightws_stream_read(struct lightws_stream *s, void *buf, size_t size,
                            struct lightws_chunk *out) {
  return gather(s, (uint8_t *)buf, size, out, 0);
}

ssize_t lightws_stream_read_bytes(struct lightws_stream *s, void *buf,
                                  size_t size) {
  for (;;) {
    ssize_t r = gather(s, (uint8_t *)buf, size, NULL, 1);
    /* empty frames give nothing: go on unless direct mode must return */
    if (r != 0 || size == 0 || (s->flags & LIGHTWS_OPT_DIRECT)) return r;
  }
}

/* ---- write side ------------------------------------------------------- */

/* Writes the rest of the frame head and payload `buf[0..n)` (n <= w_left)
 * of the frame in progress. Client payload is masked in place (`in_place`;
 * whatever did not go out is unmasked again before returning) or through a
 * stack chunk; masked bytes a short write left over are reused, so each
 * byte is masked once however the transport splits the writes. Returns
 * payload bytes written, or an error if none were (head bytes may have gone
 * out: the state says so). */
static ssize_t frame_write(struct lightws_stream *s, const uint8_t *buf,
                           size_t n, int in_place) {
  uint8_t chunk[CHUNK];
  size_t done = 0, cend = 0, cbeg = 0; /* buf[done..cend) is masked: in
                                          place, or at chunk[cbeg..] */
  ssize_t ret = 0;
  int mask = s->role == LIGHTWS_CLIENT && !key_zero(s->w_mask);
  for (;;) {
    struct iovec iov[2];
    int cnt = 0;
    size_t hrest = (size_t)(s->whead_len - s->whead_sent), plen = 0, k;
    uint8_t *p = NULL;
    ssize_t r;
    if (hrest) {
      iov[cnt].iov_base = s->whead + s->whead_sent;
      iov[cnt++].iov_len = hrest;
    }
    if (done < n) {
      if (!mask) {
        p = (uint8_t *)buf + done;
        plen = n - done;
      } else if (in_place) {
        if (cend < n) {
          lightws_mask((uint8_t *)buf + cend, n - cend, s->w_mask,
                       (uint64_t)s->w_mask_off + (cend - done));
          cend = n;
        }
        p = (uint8_t *)buf + done;
        plen = n - done;
      } else {
        if (cend == done) {
          /* head + chunk fill one 16 KiB TLS record: the first chunk of
           * a frame leaves room for the rest of its head */
          size_t room = CHUNK - hrest;
          plen = n - done < room ? n - done : room;
          lightws_mask_copy(chunk, buf + done, plen, s->w_mask,
                            s->w_mask_off);
          cbeg = 0;
          cend = done + plen;
        }
        p = chunk + cbeg;
        plen = cend - done;
      }
      iov[cnt].iov_base = p;
      iov[cnt++].iov_len = plen;
    }
    if (cnt == 0) break;
    r = lightws__stream_io_writev(s, iov, cnt);
    if (r < 0) {
      if (done == 0) ret = r;
      break;
    }
    k = (size_t)r;
    if (k > hrest) {
      s->whead_sent = s->whead_len;
      k -= hrest;
    } else {
      s->whead_sent = (uint8_t)(s->whead_sent + k);
      k = 0;
    }
    s->w_left -= k;
    s->w_mask_off = (uint8_t)((s->w_mask_off + k) & 3);
    done += k;
    cbeg += k;
    if (s->whead_sent == s->whead_len && s->w_left == 0) {
      s->whead_len = s->whead_sent = 0;
      break;
    }
    if (done == n && s->whead_sent == s->whead_len) break;
    if (s->flags & LIGHTWS_OPT_DIRECT) break;
  }
  if (mask && in_place && cend > done)
    lightws_mask((uint8_t *)buf + done, cend - done, s->w_mask,
                 s->w_mask_off);
  if (s->whead_len == 0) ctl_try(s); /* a pong or close waiting behind */
  return ret < 0 ? ret : (ssize_t)done;
}

/* Checks shared by the senders of new frames. */
static int send_begin(struct lightws_stream *s) {
  if (s->state != STATE_OPEN) return LIGHTWS_ERR_INVALID;
  s->flags &= ~(F_WANT_READ | F_WANT_WRITE);
  if (s->last_err) return -(int)s->last_err;
  return 0;
}

/* §5.1/§5.4: heads of new frames; returns 0 or an error. */
static int new_frame_checks(struct lightws_stream *s) {
  int r;
  if (s->flags & F_CLOSE_QUEUED) {
    ctl_try(s);
    return LIGHTWS_ERR_CLOSED; /* §5.5.1: no data after our close */
  }
  /* a pending control frame goes before new data */
  r = s->ctl_len ? ctl_flush(s) : 0;
  return r;
}

static size_t head_encode(struct lightws_stream *s, uint8_t *out,
                          unsigned opcode, uint64_t len, int fin,
                          uint8_t key[4]) {
  struct lightws_frame f;
  memset(&f, 0, sizeof f);
  f.fin = (uint8_t)fin;
  f.opcode = (uint8_t)opcode;
  f.length = len;
  if (s->role == LIGHTWS_CLIENT) {
    f.masked = 1;
    next_key(s, key);
    memcpy(f.mask, key, 4);
  } else {
    memset(key, 0, 4);
  }
  return lightws__frame_encode(&f, out);
}

#if LIGHTWS_HAVE_ZLIB
/* ---- permessage-deflate, write side (RFC 7692 §7.2.1) ----------------- */

/* A compressed frame is going out, or the message's flush goes on: the
 * stream has bytes to write that need no caller input. */
static int w_pending(const struct lightws_stream *s) {
  const struct lightws__pmd *p = s->pmd;
  if (!p) return 0;
  if (p->w_frame) return 1;
  return p->w_comp && p->w_fin && !(s->flags & F_CLOSE_QUEUED);
}

/* Frame head for wbuf[0..flen), the first of the message with RSV1 (§6);
 * a client masks the payload in place (the held-back bytes after it are
 * not part of it). */
static void zframe_build(struct lightws_stream *s, size_t flen, int fin) {
  struct lightws__pmd *p = s->pmd;
  unsigned op = p->w_first ? s->w_opcode : LIGHTWS_OPCODE_CONTINUATION;
  s->whead_len = (uint8_t)head_encode(s, s->whead, op, flen, fin, s->w_mask);
  if (p->w_first) s->whead[0] |= 0x40;
  p->w_first = 0;
  s->whead_sent = 0;
  s->w_left = flen;
  s->w_mask_off = 0;
  if (s->role == LIGHTWS_CLIENT && !key_zero(s->w_mask))
    lightws_mask(p->wbuf, flen, s->w_mask, 0);
  p->w_frame = 1;
  p->w_last = (uint8_t)fin;
  p->w_flen = (uint32_t)flen;
  p->w_sent = 0;
}

/* Writes the compressed frame in progress, head + payload per writev.
 * `*writes` is the syscall budget (-1 unlimited). Returns 0 once it is out
 * (the message ends with its last frame), INCOMPLETE without budget, or
 * WOULDBLOCK / SYSTEM with the progress kept. */
static int zframe_write(struct lightws_stream *s, int *writes) {
  struct lightws__pmd *p = s->pmd;
  while (p->w_frame) {
    struct iovec iov[2];
    int cnt = 0;
    size_t hrest = (size_t)(s->whead_len - s->whead_sent), k;
    ssize_t r;
    if (hrest || p->w_sent < p->w_flen) {
      if (*writes == 0) return LIGHTWS_ERR_INCOMPLETE;
      if (hrest) {
        iov[cnt].iov_base = s->whead + s->whead_sent;
        iov[cnt++].iov_len = hrest;
      }
      if (p->w_sent < p->w_flen) {
        iov[cnt].iov_base = p->wbuf + p->w_sent;
        iov[cnt++].iov_len = p->w_flen - p->w_sent;
      }
      if (*writes > 0) (*writes)--;
      r = lightws__stream_io_writev(s, iov, cnt);
      if (r < 0) return (int)r;
      k = (size_t)r;
      if (k >= hrest) {
        s->whead_sent = s->whead_len;
        k -= hrest;
      } else {
        s->whead_sent = (uint8_t)(s->whead_sent + k);
        k = 0;
      }
      p->w_sent += (uint32_t)k;
      s->w_left -= k;
      if (s->whead_sent < s->whead_len || p->w_sent < p->w_flen) continue;
    }
    /* the frame is out: the held-back bytes move to the front */
    s->whead_len = s->whead_sent = 0;
    p->w_frame = 0;
    p->w_fill -= p->w_flen;
    if (p->w_fill) memmove(p->wbuf, p->wbuf + p->w_flen, p->w_fill);
    if (p->w_last) {
      /* the message is complete; the 00 00 ff ff left is dropped */
      p->w_fill = 0;
      p->w_comp = p->w_fin = p->w_last = 0;
      p->w_first = 1;
      s->w_opcode = 0;
      if (p->our_nct) (void)p->deflate_reset(&p->zd); /* §7.1.1.1 */
    }
    ctl_try(s); /* a pong or close waiting behind */
  }
  return 0;
}

/*
 * The open compressed message takes in[0..len) (`fin`: the end of its
 * input): deflated into the send work buffer, a frame goes out each time
 * the buffer fills (its last 4 bytes held back: they may be the end of the
 * flush) and, once all input is in, the Z_SYNC_FLUSH output makes the last
 * frame without its 00 00 ff ff (§7.2.1). Also finishes what an earlier
 * call left (a frame cut short, the flush). `*writes` is the syscall
 * budget (direct mode: 1, shared by the calls of one API call). Returns
 * input bytes taken; an error only when none were and the end of input was
 * not taken either.
 */
static ssize_t z_pump(struct lightws_stream *s, const uint8_t *in, size_t len,
                      int fin, int *writes) {
  static const uint8_t none[1] = {0};
  struct lightws__pmd *p = s->pmd;
  size_t took = 0;
  int ended = 0;
  if (!in) in = none;
  for (;;) {
    int zr, flush;
    size_t before;
    if (p->w_frame) {
      int r = zframe_write(s, writes);
      if (r == LIGHTWS_ERR_INCOMPLETE) return (ssize_t)took; /* direct */
      if (r < 0) return took || ended ? (ssize_t)took : r;
    }
    if (!p->w_comp) return (ssize_t)took; /* the message went out */
    if (p->w_fin) {
      if (s->flags & F_CLOSE_QUEUED) /* §5.5.1: nothing after our close */
        return took || ended ? (ssize_t)took : LIGHTWS_ERR_CLOSED;
    } else if (took == len && !fin) {
      return (ssize_t)took; /* more input comes with a later call */
    }
    flush = (fin || p->w_fin) ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    before = len - took;
    p->zd.next_in = (Bytef *)(uintptr_t)(in + took);
    p->zd.avail_in = (uInt)(before > UINT_MAX ? UINT_MAX : before);
    before = p->zd.avail_in;
    p->zd.next_out = p->wbuf + p->w_fill;
    p->zd.avail_out = p->work_size - p->w_fill;
    zr = p->deflate(&p->zd, flush);
    if (zr != Z_OK && zr != Z_BUF_ERROR) return LIGHTWS_ERR_INVALID;
    took += before - p->zd.avail_in;
    p->w_fill = p->work_size - p->zd.avail_out;
    if (fin && took == len && !p->w_fin) {
      p->w_fin = 1;
      ended = 1;
    }
    if (p->w_fill == p->work_size) {
      zframe_build(s, p->work_size - 4, 0);
    } else if (p->w_fin && p->zd.avail_in == 0) {
      /* the flush is complete (output room was left) */
      if (p->w_fill == 0) {
        /* no input since the last flush (an empty message): zlib wrote
         * nothing; 00 is an empty stored block once the reader appends
         * 00 00 ff ff (§7.2.3.6), and the stream stays byte-aligned */
        p->wbuf[0] = 0x00;
        p->w_fill = 5;
        memcpy(p->wbuf + 1, pmd_tail, 4);
      }
      if (p->w_fill < 4 || memcmp(p->wbuf + p->w_fill - 4, pmd_tail, 4))
        return LIGHTWS_ERR_INVALID; /* not zlib's sync flush */
      zframe_build(s, p->w_fill - 4, 1);
    }
  }
}
#endif

/* lightws_stream_send() for a frame of flen >= len payload bytes
 * (lightws_stream_send_frame(); flen == len for send). */
static ssize_t send_impl(struct lightws_stream *s, int opcode,
                         const void *buf, size_t len, uint64_t flen,
                         unsigned flags) {
  int r = send_begin(s), fin;
  unsigned op;
  uint8_t saved_opcode;
  ssize_t w;
  int in_place = (flags & LIGHTWS_SEND_MASK_IN_PLACE) != 0;
#if LIGHTWS_HAVE_ZLIB
  int writes = (s->flags & LIGHTWS_OPT_DIRECT) ? 1 : -1;
#endif
  if (r < 0) return r;
#if LIGHTWS_HAVE_ZLIB
  if (s->pmd) {
    struct lightws__pmd *p = s->pmd;
    if (p->w_comp && !p->w_fin) {
      /* the open compressed message goes on with this call's bytes */
      if (opcode != s->w_opcode || (len && !buf) || flen != len ||
          (flags & ~(LIGHTWS_SEND_FRAGMENT | LIGHTWS_SEND_MASK_IN_PLACE |
                     LIGHTWS_SEND_NO_COMPRESS)))
        return LIGHTWS_ERR_INVALID;
      if (!p->w_frame) {
        r = new_frame_checks(s);
        if (r < 0) return r;
      }
      return z_pump(s, (const uint8_t *)buf, len,
                    !(flags & LIGHTWS_SEND_FRAGMENT), &writes);
    }
    if (w_pending(s) || p->w_comp) {
      /* the last compressed message is still going out: first that */
      w = z_pump(s, NULL, 0, 0, &writes);
      if (w < 0) return w;
      if (p->w_comp || writes == 0) {
        /* still going, or direct mode spent its write on it */
        if (!p->w_comp || p->w_frame || !(s->flags & F_CLOSE_QUEUED)) {
          s->flags |= F_WANT_WRITE;
          return LIGHTWS_ERR_WOULDBLOCK;
        }
        return LIGHTWS_ERR_CLOSED;
      }
    }
  }
#endif
  if (s->whead_len) {
    size_t n = len;
    if (s->w_left == 0) {
      /* only the head of an empty frame is left: finish it (in direct mode
       * too: returning here would look like this call's frame was sent),
       * then go on with this call's frame */
      while (s->whead_len) {
        w = frame_write(s, NULL, 0, 0);
        if (w < 0) return w;
      }
    } else {
      if (n > s->w_left) n = (size_t)s->w_left;
      return frame_write(s, (const uint8_t *)buf, n, in_place);
    }
  }
  if (opcode != LIGHTWS_OPCODE_TEXT && opcode != LIGHTWS_OPCODE_BINARY)
    return LIGHTWS_ERR_INVALID;
  if (s->w_opcode && s->w_opcode != opcode) return LIGHTWS_ERR_INVALID;
  if ((len && !buf) || flen < len) return LIGHTWS_ERR_INVALID;
  if (flags & ~(LIGHTWS_SEND_FRAGMENT | LIGHTWS_SEND_MASK_IN_PLACE |
                LIGHTWS_SEND_NO_COMPRESS))
    return LIGHTWS_ERR_INVALID;
  r = new_frame_checks(s);
  if (r < 0) return r;
  fin = !(flags & LIGHTWS_SEND_FRAGMENT);
#if LIGHTWS_HAVE_ZLIB
  /* a new message is compressed unless told not to or short and whole */
  if (s->pmd && !s->w_opcode && !(flags & LIGHTWS_SEND_NO_COMPRESS) &&
      flen == len && (!fin || len >= s->pmd->threshold)) {
    struct lightws__pmd *p = s->pmd;
    p->w_comp = 1;
    p->w_first = 1;
    p->w_fin = 0;
    s->w_opcode = (uint8_t)opcode;
    w = z_pump(s, (const uint8_t *)buf, len, fin, &writes);
    if (w < 0 && !p->w_frame && p->w_fill == 0 && !p->w_fin) {
      p->w_comp = 0; /* nothing was taken: as if never called */
      s->w_opcode = 0;
    }
    return w;
  }
#endif
  /* §5.4: later fragments are continuation frames */
  op = s->w_opcode ? LIGHTWS_OPCODE_CONTINUATION : (unsigned)opcode;
  saved_opcode = s->w_opcode;
  s->whead_len = (uint8_t)head_encode(s, s->whead, op, flen, fin, s->w_mask);
  s->whead_sent = 0;
  s->w_left = flen;
  s->w_mask_off = 0;
  s->w_opcode = fin ? 0 : (uint8_t)opcode;
  w = frame_write(s, (const uint8_t *)buf, len, in_place);
  if (w < 0 && s->whead_sent == 0) {
    /* nothing went out: as if the call never happened */
    s->whead_len = 0;
    s->w_left = 0;
    s->w_opcode = saved_opcode;
  } else if (w < 0 && flen == 0) {
    /* an empty frame whose head went out in part counts as sent: the next
     * call finishes its head first, so a retry cannot duplicate it */
    return 0;
  }
  return w;
}

ssize_t lightws_stream_send(struct lightws_stream *s, int opcode,
                            const void *buf, size_t len, unsigned flags) {
  return send_impl(s, opcode, buf, len, len, flags);
}

ssize_t lightws_stream_send_frame(struct lightws_stream *s, int opcode,
                                  const void *buf, size_t len,
                                  uint64_t frame_len, unsigned flags) {
  if (len > frame_len) return LIGHTWS_ERR_INVALID;
  return send_impl(s, opcode, buf, len, frame_len, flags);
}

ssize_t lightws_stream_write(struct lightws_stream *s, const void *buf,
                             size_t len) {
  return lightws_stream_send(s, LIGHTWS_OPCODE_BINARY, buf, len, 0);
}

#if LIGHTWS_HAVE_ZLIB
/* sendv with permessage-deflate: message by message through send (which
 * compresses or not), counted the same way. */
static ssize_t sendv_each(struct lightws_stream *s,
                          const struct lightws_msg *msgs, size_t n) {
  size_t total = 0, k;
  for (k = 0; k < n; k++) {
    if (msgs[k].opcode != LIGHTWS_OPCODE_TEXT &&
        msgs[k].opcode != LIGHTWS_OPCODE_BINARY)
      return LIGHTWS_ERR_INVALID;
    if (msgs[k].len && !msgs[k].data) return LIGHTWS_ERR_INVALID;
  }
  if (s->w_opcode && !(s->pmd->w_comp && s->pmd->w_fin) &&
      !(s->whead_len && !s->pmd->w_frame))
    return LIGHTWS_ERR_INVALID; /* a message is open */
  for (k = 0; k < n; k++) {
    ssize_t w;
    if (msgs[k].len == 0 && k > 0) break;
    w = lightws_stream_send(s, msgs[k].opcode, msgs[k].data, msgs[k].len, 0);
    if (w < 0) return k ? (ssize_t)total : w;
    total += (size_t)w;
    if ((size_t)w < msgs[k].len || (s->flags & LIGHTWS_OPT_DIRECT)) break;
    if (s->whead_len && !s->pmd->w_frame) break; /* cut short */
  }
  return (ssize_t)total;
}
#endif

/*
 * sendv: heads in a stack array, one writev for up to SENDV_MAX frames.
 * A client masks the payloads into one stack chunk, so a batch holds what
 * fits in CHUNK bytes; a larger message goes alone through send's path.
 */
ssize_t lightws_stream_sendv(struct lightws_stream *s,
                             const struct lightws_msg *msgs, size_t n) {
  uint8_t heads[SENDV_MAX][LIGHTWS_FRAME_HEADER_MAX];
  uint8_t keys[SENDV_MAX][4];
  uint8_t hlen[SENDV_MAX];
  struct iovec iov[2 * SENDV_MAX];
  uint8_t chunk[CHUNK];
  size_t total = 0, i = 0, k;
  int r = send_begin(s), wrote = 0; /* wrote: some byte of this call went
                                       out, so the count (even 0) counts */
  int copymask = s->role == LIGHTWS_CLIENT &&
                 s->mask_mode != LIGHTWS_MASK_ZERO;
  if (r < 0) return r;
  if (n == 0) return 0;
  if (!msgs) return LIGHTWS_ERR_INVALID;
#if LIGHTWS_HAVE_ZLIB
  if (s->pmd) return sendv_each(s, msgs, n);
#endif
  if (s->whead_len) {
    if (s->w_left) /* continue the frame cut short, as send() does */
      return lightws_stream_send(s, msgs[0].opcode, msgs[0].data,
                                 msgs[0].len, 0);
    while (s->whead_len) { /* as in send() */
      ssize_t w = frame_write(s, NULL, 0, 0);
      if (w < 0) return w;
    }
  }
  if (s->w_opcode) return LIGHTWS_ERR_INVALID; /* a message is open */
  for (k = 0; k < n; k++) {
    if (msgs[k].opcode != LIGHTWS_OPCODE_TEXT &&
        msgs[k].opcode != LIGHTWS_OPCODE_BINARY)
      return LIGHTWS_ERR_INVALID;
    if (msgs[k].len && !msgs[k].data) return LIGHTWS_ERR_INVALID;
  }
  r = new_frame_checks(s);
  if (r < 0) return r;

  while (i < n) {
    size_t nf = 0, used = 0, j, left;
    int cnt = 0;
    ssize_t w;
    if (copymask && msgs[i].len > CHUNK) {
      /* alone, through send's chunked path */
      w = lightws_stream_send(s, msgs[i].opcode, msgs[i].data, msgs[i].len,
                              0);
      if (w < 0) return wrote ? (ssize_t)total : w;
      wrote = 1;
      total += (size_t)w;
      if ((size_t)w < msgs[i].len || (s->flags & LIGHTWS_OPT_DIRECT))
        return (ssize_t)total;
      i++;
      continue;
    }
    while (i + nf < n && nf < SENDV_MAX) {
      const struct lightws_msg *m = &msgs[i + nf];
      /* an empty message is sent only as the first of a call, so the byte
       * count always tells whether it went out */
      if (m->len == 0 && i + nf > 0) break;
      if (copymask && used + m->len > CHUNK) break;
      hlen[nf] = (uint8_t)head_encode(s, heads[nf], (unsigned)m->opcode,
                                      m->len, 1, keys[nf]);
      iov[cnt].iov_base = heads[nf];
      iov[cnt++].iov_len = hlen[nf];
      if (m->len) {
        if (copymask) {
          lightws_mask_copy(chunk + used, (const uint8_t *)m->data, m->len,
                            keys[nf], 0);
          iov[cnt].iov_base = chunk + used;
          used += m->len;
        } else {
          iov[cnt].iov_base = (void *)m->data;
        }
        iov[cnt++].iov_len = m->len;
      }
      nf++;
    }
    if (nf == 0) break; /* stopped before an empty message */
    w = lightws__stream_io_writev(s, iov, cnt);
    if (w < 0) return wrote ? (ssize_t)total : w;
    if (w > 0) wrote = 1;
    left = (size_t)w;
    for (j = 0; j < nf; j++) {
      const struct lightws_msg *m = &msgs[i + j];
      size_t hs = left < hlen[j] ? left : hlen[j], ps;
      left -= hs;
      ps = left < m->len ? left : m->len;
      left -= ps;
      total += ps;
      if (hs == hlen[j] && ps == m->len) continue;
      if (hs == 0) break; /* cut at a frame boundary */
      /* cut inside frame j: it is now the frame in progress */
      memcpy(s->whead, heads[j], hlen[j]);
      s->whead_len = hlen[j];
      s->whead_sent = (uint8_t)hs;
      memcpy(s->w_mask, keys[j], 4);
      s->w_left = m->len - ps;
      s->w_mask_off = (uint8_t)(ps & 3);
      if (s->flags & LIGHTWS_OPT_DIRECT) return (ssize_t)total;
      w = frame_write(s, (const uint8_t *)m->data + ps, m->len - ps, 0);
      if (w < 0) /* bytes went out: the count, even 0, tells the caller */
        return (ssize_t)total;
      total += (size_t)w;
      if (s->whead_len) return (ssize_t)total;
      j++;
      break;
    }
    i += j;
    if (s->flags & LIGHTWS_OPT_DIRECT) break;
    if (j < nf) continue; /* cut at a boundary: next writev from there */
  }
  return (ssize_t)total;
}

/* ---- control frames from the application ------------------------------ */

/* Frees the control slot for a new frame: WOULDBLOCK if it stays busy. */
static int ctl_make_room(struct lightws_stream *s) {
  int r;
  if (!s->ctl_len) return 0;
  if (s->whead_len) {
    s->flags |= F_WANT_WRITE;
    return LIGHTWS_ERR_WOULDBLOCK;
  }
  r = ctl_flush(s);
  return r;
}

/* Sends the slot now if possible; queued otherwise (0). */
static int ctl_kick(struct lightws_stream *s) {
  int r;
  if (s->whead_len) return 0;
  r = ctl_flush(s);
  return r == LIGHTWS_ERR_WOULDBLOCK ? 0 : r;
}

static int ping_pong(struct lightws_stream *s, unsigned opcode,
                     const void *data, size_t len) {
  int r = send_begin(s);
  if (r < 0) return r;
  if (len > LIGHTWS_CONTROL_MAX || (len && !data)) return LIGHTWS_ERR_INVALID;
  if (s->flags & F_CLOSE_QUEUED) return LIGHTWS_ERR_CLOSED;
  r = ctl_make_room(s);
  if (r < 0) return r;
  ctl_build(s, opcode, (const uint8_t *)data, len, NULL, 0);
  s->flags &= ~F_CTL_PONG; /* the application's frame is never replaced */
  return ctl_kick(s);
}

int lightws_stream_ping(struct lightws_stream *s, const void *data,
                        size_t len) {
  return ping_pong(s, LIGHTWS_OPCODE_PING, data, len);
}

int lightws_stream_pong(struct lightws_stream *s, const void *data,
                        size_t len) {
  return ping_pong(s, LIGHTWS_OPCODE_PONG, data, len);
}

int lightws_stream_close(struct lightws_stream *s, unsigned code,
                         const char *reason, size_t reason_len) {
  struct lightws_utf8 u;
  int r;
  if (s->state != STATE_OPEN) return LIGHTWS_ERR_INVALID;
  s->flags &= ~(F_WANT_READ | F_WANT_WRITE);
  if (s->flags & F_CLOSE_QUEUED) return ctl_kick(s);
  if (reason_len && (!reason || code == 0)) return LIGHTWS_ERR_INVALID;
  if (code && !lightws_close_code_valid(code)) return LIGHTWS_ERR_INVALID;
  if (reason_len > LIGHTWS_CONTROL_MAX - 2) return LIGHTWS_ERR_INVALID;
  u.state = 0;
  if (reason_len &&
      lightws_utf8_feed(&u, (const uint8_t *)reason, reason_len) !=
          LIGHTWS_UTF8_VALID)
    return LIGHTWS_ERR_INVALID;
  if ((s->flags & F_CTL_PONG) && s->ctl_sent == 0) s->ctl_len = 0;
  r = ctl_make_room(s);
  if (r < 0) return r;
  close_began(s);
  s->flags |= F_CLOSE_QUEUED;
  s->close_sent = (uint16_t)(code ? code : LIGHTWS_CLOSE_NO_STATUS);
  close_build(s, code, (const uint8_t *)reason, reason_len);
  return ctl_kick(s);
}

int lightws_stream_flush(struct lightws_stream *s) {
  if (s->state != STATE_OPEN) return LIGHTWS_ERR_INVALID;
  s->flags &= ~(F_WANT_READ | F_WANT_WRITE);
#if LIGHTWS_HAVE_ZLIB
  if (w_pending(s)) {
    /* compressed frames wait in the work buffer: they need no caller bytes */
    int writes = (s->flags & LIGHTWS_OPT_DIRECT) ? 1 : -1;
    ssize_t w = z_pump(s, NULL, 0, 0, &writes);
    if (w < 0 && w != LIGHTWS_ERR_CLOSED) return (int)w;
    if (w_pending(s)) {
      s->flags |= F_WANT_WRITE;
      return LIGHTWS_ERR_WOULDBLOCK;
    }
  }
#endif
  /* a frame whose payload is all out but whose head is not (an empty frame
   * cut in its head) needs no caller bytes: finish it */
  while (s->whead_len && s->w_left == 0) {
    ssize_t w = frame_write(s, NULL, 0, 0);
    if (w < 0) return (int)w;
  }
  if (s->ctl_len) {
    int r = ctl_flush(s);
    if (r < 0) return r;
  }
  return io_flush(s); /* then what the transport holds */
}

/* ---- setup and queries ------------------------------------------------ */

int lightws_stream_init(struct lightws_stream *s, enum lightws_role role,
                        int fd, uint8_t *rbuf, size_t rsize,
                        unsigned options) {
  uint64_t seed = 0;
  int shared = rbuf == NULL && rsize == 0;
  if (!s || (!shared && (!rbuf || rsize < LIGHTWS_RBUF_MIN)) ||
      rsize > UINT32_MAX ||
      (role != LIGHTWS_SERVER && role != LIGHTWS_CLIENT) ||
      (options & ~(LIGHTWS_OPT_DIRECT | LIGHTWS_OPT_NO_UTF8_CHECK |
                   LIGHTWS_OPT_NO_AUTO_PONG | LIGHTWS_OPT_NO_MASK_CHECK |
                   LIGHTWS_OPT_WHOLE_TEXT)))
    return LIGHTWS_ERR_INVALID;
  memset(s, 0, sizeof *s);
  if (lightws__random(&seed, sizeof seed) < 0) return LIGHTWS_ERR_SYSTEM;
  s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL; /* xorshift needs non-zero */
  s->fd = fd;
  s->rbuf = shared ? s->stash : rbuf;
  s->rsize = shared ? (uint32_t)sizeof s->stash : (uint32_t)rsize;
  s->role = (uint8_t)role;
  s->flags = (options & F_OPTS) | (shared ? F_SHARED : 0);
  s->max_frame = LIGHTWS_DEFAULT_MAX_FRAME;
  s->max_message = LIGHTWS_DEFAULT_MAX_MESSAGE;
  s->mask_mode = LIGHTWS_MASK_RANDOM;
  s->state = STATE_OPEN;
  return 0;
}

void lightws_stream_set_io(struct lightws_stream *s,
                           const struct lightws_io *io) {
  s->io = io;
}

int lightws_stream_set_mask_mode(struct lightws_stream *s,
                                 enum lightws_mask_mode mode) {
  if (s->role != LIGHTWS_CLIENT) return LIGHTWS_ERR_INVALID;
  if (mode != LIGHTWS_MASK_RANDOM && mode != LIGHTWS_MASK_FIXED &&
      mode != LIGHTWS_MASK_ZERO)
    return LIGHTWS_ERR_INVALID;
  if (s->whead_len) return LIGHTWS_ERR_BUSY;
  if (mode == LIGHTWS_MASK_FIXED) {
    s->mask_mode = LIGHTWS_MASK_RANDOM;
    next_key(s, s->w_mask);
  }
  s->mask_mode = (uint8_t)mode;
  return 0;
}

void lightws_stream_set_limits(struct lightws_stream *s, uint32_t max_frame,
                               uint32_t max_message) {
  if (max_frame) s->max_frame = max_frame;
  if (max_message) s->max_message = max_message;
}

int lightws_stream_deflate(const struct lightws_stream *s) {
  return s && s->pmd != NULL;
}

int lightws_stream_feed(struct lightws_stream *s, const uint8_t *in,
                        size_t len) {
  if (len > s->rsize - s->rend) {
    if (len > s->rsize - (s->rend - s->rpos)) return LIGHTWS_ERR_NOSPACE;
    s->flags &= ~F_PONG_VALID;
    compact(s, 0);
  }
  if (len) memcpy(s->rbuf + s->rend, in, len);
  s->rend += (uint32_t)len;
  return 0;
}

/* ---- shared-buffer mode ----------------------------------------------- */

/* Bytes at the front of rbuf the stream needs while a handshake runs: the
 * head read so far, and a request or response being sent from rbuf (see
 * endpoint.c: msg_len + r_left ends it); offsets stay as they are. */
static size_t handshake_used(const struct lightws_stream *s) {
  uint64_t used = s->rend;
  if (s->state == LIGHTWS__ST_C_SEND || s->state == LIGHTWS__ST_S_ACCEPT ||
      s->state == LIGHTWS__ST_S_REJECT) {
    if (s->msg_len + s->r_left > used) used = s->msg_len + s->r_left;
  }
  return used > s->rsize ? s->rsize : (size_t)used;
}

/* Bytes the stream must keep: during a handshake its head area; after the
 * peer's close the reason (reading is over); else the unread input. */
static size_t kept(const struct lightws_stream *s) {
  if (s->state != STATE_OPEN) return handshake_used(s);
  if (s->flags & F_CLOSE_RCVD) return s->ctl_in_len;
  return (size_t)(s->rend - s->rpos);
}

/* Moves what the stream keeps into dst[0..size) and reads there from now
 * on. Returns 0 or LIGHTWS_ERR_NOSPACE (nothing changed). */
static int rbuf_move(struct lightws_stream *s, uint8_t *dst, size_t size) {
  size_t n = kept(s);
  if (n > size) return LIGHTWS_ERR_NOSPACE;
  if (s->state != STATE_OPEN) {
    if (n) memmove(dst, s->rbuf, n); /* offsets into rbuf stay valid */
  } else if (s->flags & F_CLOSE_RCVD) {
    if (n) memmove(dst, s->rbuf + s->ctl_in_off, n);
    s->ctl_in_off = 0;
    s->rpos = s->rend = (uint32_t)n; /* nothing unread: reading is over */
  } else {
    if (n) memmove(dst, s->rbuf + s->rpos, n);
    s->rpos = 0;
    s->rend = (uint32_t)n;
    s->flags &= ~F_PONG_VALID; /* its bytes stay behind */
  }
  s->rbuf = dst;
  s->rsize = (uint32_t)size;
  return 0;
}

int lightws_stream_lend(struct lightws_stream *s, uint8_t *buf,
                        size_t size) {
  if (!(s->flags & F_SHARED) || !buf || size < LIGHTWS_RBUF_MIN ||
      size > UINT32_MAX)
    return LIGHTWS_ERR_INVALID;
  if (buf == s->rbuf) { /* the same buffer again, maybe another size */
    if (size < s->rend || size < kept(s)) return LIGHTWS_ERR_NOSPACE;
    s->rsize = (uint32_t)size;
    return 0;
  }
  return rbuf_move(s, buf, size);
}

ssize_t lightws_stream_release(struct lightws_stream *s) {
  if (!(s->flags & F_SHARED)) return LIGHTWS_ERR_INVALID;
  if (s->rbuf == s->stash) return 0;
  if (rbuf_move(s, s->stash, sizeof s->stash) < 0) return (ssize_t)kept(s);
  return 0;
}

int lightws_stream_frame_rest(const struct lightws_stream *s,
                              uint64_t *left) {
  if (left) *left = 0;
  if (s->state != STATE_OPEN || !(s->flags & F_IN_FRAME) || r_compressed(s))
    return LIGHTWS_ERR_INVALID;
  if (left) *left = s->r_left;
  return (s->flags & F_R_FIN) ? 1 : 0;
}

size_t lightws_stream_buffered(const struct lightws_stream *s) {
  size_t n = s->state == STATE_OPEN ? (size_t)(s->rend - s->rpos) : 0;
  if (s->io && s->io->pending) n += s->io->pending(s->io->ctx);
#if LIGHTWS_HAVE_ZLIB
  /* inflated output held in zlib, or the §7.2.2 tail still to feed: a
   * read has something without reading the transport */
  if (n == 0 && s->state == STATE_OPEN && r_compressed(s) &&
      (s->flags & F_IN_FRAME) &&
      (!s->pmd->r_drained || (s->r_left == 0 && (s->flags & F_R_FIN))))
    n = 1;
#endif
  return n;
}

int lightws_stream_want(const struct lightws_stream *s) {
  int w = 0;
  if (s->flags & F_WANT_READ) w |= LIGHTWS_WANT_READ;
  if ((s->flags & F_WANT_WRITE) || s->ctl_len) w |= LIGHTWS_WANT_WRITE;
#if LIGHTWS_HAVE_ZLIB
  if (w_pending(s)) w |= LIGHTWS_WANT_WRITE;
#endif
  /* output the transport holds (a TLS KeyUpdate answer): flush sends it */
  if (!(w & LIGHTWS_WANT_WRITE) && s->io && s->io->want)
    w |= s->io->want(s->io->ctx) & LIGHTWS_WANT_WRITE;
  return w;
}

unsigned lightws_stream_close_code(const struct lightws_stream *s) {
  return s->close_code;
}

const char *lightws_stream_close_reason(const struct lightws_stream *s,
                                        size_t *len) {
  if (!(s->flags & F_CLOSE_RCVD) || s->ctl_in_len == 0) {
    if (len) *len = 0;
    return "";
  }
  if (len) *len = s->ctl_in_len;
  return (const char *)s->rbuf + s->ctl_in_off;
}

const uint8_t *lightws_stream_pong_data(const struct lightws_stream *s,
                                        size_t *len) {
  if (!(s->flags & F_PONG_VALID)) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = s->ctl_in_len;
  return s->rbuf + s->ctl_in_off;
}

int lightws_stream_closing(const struct lightws_stream *s) {
  if (!(s->flags & F_CLOSE_SENT)) return 0;
  return (s->flags & F_CLOSE_RCVD) ? 2 : 1;
}

int lightws_stream_error(const struct lightws_stream *s) {
  return -(int)s->last_err;
}

/* ---- time ------------------------------------------------------------- */

uint64_t lightws__now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t lightws_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int handshaking(const struct lightws_stream *s) {
  return s->state >= LIGHTWS__ST_C_SEND && s->state <= LIGHTWS__ST_S_REJECT;
}

int lightws_stream_set_timeouts(struct lightws_stream *s,
                                const struct lightws_timeouts *t,
                                uint64_t now) {
  int io_waited;
  if (!s) return LIGHTWS_ERR_INVALID;
  io_waited = s->io && (s->flags & F_FDWAIT);
  s->to_handshake = t ? t->handshake : 0;
  s->to_idle = t ? t->idle : 0;
  s->to_ping = t ? t->ping_interval : 0;
  s->to_pong = t ? t->ping_timeout : 0;
  s->to_close = t ? t->close : 0;
  s->flags &= ~(F_TIMED | F_STAMP | F_FDWAIT | F_KA_WAIT);
  s->t_rx = s->t_tx = s->t_phase = now;
  s->t_ping = 0;
  if (s->to_handshake | s->to_idle | s->to_ping | s->to_close)
    s->flags |= F_TIMED;
  if (s->to_idle | s->to_ping) s->flags |= F_STAMP;
  if ((s->flags & F_TIMED) && !s->io && s->fd >= 0) {
    int fl = fcntl(s->fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) s->flags |= F_FDWAIT;
  } else if ((s->flags & F_TIMED) && s->io && s->io->wait_fd) {
    /* a transport over a descriptor: a blocking one is waited on here,
     * and its callbacks stop blocking */
    int fd = s->io->wait_fd(s->io->ctx, 1);
    int fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fl >= 0 && !(fl & O_NONBLOCK)) s->flags |= F_FDWAIT;
    else if (fd >= 0) (void)s->io->wait_fd(s->io->ctx, 0);
  } else if (io_waited && s->io->wait_fd) {
    (void)s->io->wait_fd(s->io->ctx, 0); /* timeouts off: blocking again */
  }
  return 0;
}

uint64_t lightws_stream_deadline(const struct lightws_stream *s) {
  uint64_t d = LIGHTWS_NO_DEADLINE;
  if (!(s->flags & F_TIMED) || s->last_err) return d;
  if (s->state != STATE_OPEN) {
    if (handshaking(s) && s->to_handshake) d = s->t_phase + s->to_handshake;
    return d;
  }
  if (s->flags & (F_CLOSE_QUEUED | F_CLOSE_RCVD)) {
    if (s->to_close && !(s->flags & F_EOF)) d = s->t_phase + s->to_close;
    return d;
  }
  if (s->flags & F_EOF) return d;
  if (s->to_idle) d = s->t_rx + s->to_idle;
  if (s->to_ping) {
    uint64_t k;
    if (s->t_ping)
      k = s->t_ping + (s->to_pong ? s->to_pong : s->to_ping);
    else
      k = (s->t_rx > s->t_tx ? s->t_rx : s->t_tx) + s->to_ping;
    if (k < d) d = k;
  }
  return d;
}

/* The keepalive ping is due at `now`: into the slot if it is free, else
 * ctl_flush() builds it as soon as the slot empties. */
static void ka_start(struct lightws_stream *s, uint64_t now) {
  s->t_ping = now ? now : 1;
  if (s->ctl_len) {
    s->flags |= F_KA_WAIT;
    ctl_try(s);
    return;
  }
  ka_build(s);
  ctl_try(s); /* queued behind a data frame in progress */
}

int lightws_stream_tick(struct lightws_stream *s, uint64_t now) {
  if (!s) return LIGHTWS_ERR_INVALID;
  if (s->last_err) return -(int)s->last_err;
  if (!(s->flags & F_TIMED)) return 0;
  if (s->state != STATE_OPEN) {
    if (handshaking(s) && s->to_handshake &&
        now >= s->t_phase + s->to_handshake) {
      /* nothing can be sent in the middle of an HTTP head: just fail */
      s->last_err = (uint8_t)-LIGHTWS_ERR_HANDSHAKE_TIMEOUT;
      s->state = LIGHTWS__ST_FAILED;
      return LIGHTWS_ERR_HANDSHAKE_TIMEOUT;
    }
    return 0;
  }
  if (s->flags & (F_CLOSE_QUEUED | F_CLOSE_RCVD)) {
    if (s->to_close && !(s->flags & F_EOF) &&
        now >= s->t_phase + s->to_close) {
      /* the close handshake did not end: the caller drops the transport
       * (§7.1.1: a client waits for the server's TCP close, not forever) */
      s->last_err = (uint8_t)-LIGHTWS_ERR_CLOSE_TIMEOUT;
      return LIGHTWS_ERR_CLOSE_TIMEOUT;
    }
    return 0;
  }
  if (s->flags & F_EOF) return 0;
  if (s->to_idle && now >= s->t_rx + s->to_idle)
    return (int)fail_why(s, LIGHTWS_ERR_IDLE_TIMEOUT, "idle timeout");
  if (s->to_ping) {
    if (s->t_ping) {
      if (s->to_pong) {
        if (now >= s->t_ping + s->to_pong)
          return (int)fail_why(s, LIGHTWS_ERR_PING_TIMEOUT,
                               "keepalive ping timeout");
      } else if (now >= s->t_ping + s->to_ping) {
        ka_start(s, now); /* no pong awaited: the next ping is due */
      }
    } else if (now >= (s->t_rx > s->t_tx ? s->t_rx : s->t_tx) + s->to_ping) {
      ka_start(s, now);
    }
  }
  return 0;
}

uint32_t lightws_stream_rtt(const struct lightws_stream *s) {
  return s->rtt_us;
}

int lightws__stream_wait(struct lightws_stream *s, int want) {
  int fd = s->fd;
  if (s->io) {
    /* only with the io's wait_fd hook, on a descriptor still blocking */
    int fl;
    if (!(s->flags & F_FDWAIT) || !s->io->wait_fd)
      return LIGHTWS_ERR_WOULDBLOCK;
    fd = s->io->wait_fd(s->io->ctx, 1);
    fl = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
    if (fl < 0 || (fl & O_NONBLOCK)) return LIGHTWS_ERR_WOULDBLOCK;
  }
  for (;;) {
    struct pollfd p;
    uint64_t now, d;
    int ms, r;
    if (s->last_err) return -(int)s->last_err;
    d = lightws_stream_deadline(s);
    ms = -1;
    if (d != LIGHTWS_NO_DEADLINE) {
      now = lightws_now();
      if (d <= now) {
        r = lightws_stream_tick(s, now);
        if (r < 0) return r;
        d = lightws_stream_deadline(s);
        if (d <= now) d = now + 1; /* never spin */
      }
      if (d != LIGHTWS_NO_DEADLINE)
        ms = d - now > INT_MAX ? INT_MAX : (int)(d - now);
    }
    p.fd = fd;
    p.events = (short)(((want & LIGHTWS_WANT_READ) ? POLLIN : 0) |
                       ((want & LIGHTWS_WANT_WRITE) ? POLLOUT : 0));
    if (!p.events) p.events = POLLIN | POLLOUT;
    p.revents = 0;
    r = poll(&p, 1, ms);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return LIGHTWS_ERR_SYSTEM;
  }
}
