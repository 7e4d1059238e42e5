# SPDX-License-Identifier: MIT
"""The connection logic shared by the blocking and asyncio APIs.

Every operation is written as a resumable *step*: a function that makes
nonblocking C calls until it is done, or raises WouldBlock with all its
progress kept in the object. The blocking API (WebSocket here) runs a step
and waits with poll() between attempts; lightws.asyncio runs the same steps
and waits on the event loop. The C side holds no message state that Python
must copy: a message is assembled in Python, straight from the socket when
the payload is large (lightws_stream_read reads into our buffer).
"""

from __future__ import annotations

import io
import math
import os
import select
import socket
import threading
import time
from typing import (Any, Callable, Iterator, List, Optional, Sequence, Tuple,
                    TypeVar, Union)

from . import _core
from ._core import CStream, Chunk, Headers, Piece, Request, Response
from .errors import (ConnectionClosed, ConnectionClosedError,
                     ConnectionClosedOK, HandshakeError, HandshakeTimeout,
                     InvalidUsage, Opcode, ProtocolError, WebSocketError,
                     WouldBlock)

T = TypeVar("T")
Data = Union[str, bytes, bytearray, memoryview]

WANT_READ = _core.WANT_READ
WANT_WRITE = _core.WANT_WRITE

DEFAULT_MAX_SIZE = 64 * 1024 * 1024   #: largest message recv() accepts
DEFAULT_RBUF_SIZE = 64 * 1024         #: receive buffer lent to the C stream
DEFAULT_CLOSE_TIMEOUT = 10.0          #: close(): wait this long for the peer
DEFAULT_OPEN_TIMEOUT = 10.0           #: TCP connect + TLS + opening handshake
DEFAULT_PING_INTERVAL = 20.0          #: keepalive ping after this long idle
DEFAULT_PING_TIMEOUT = 20.0           #: its pong must come within this long
_SCRATCH = 64 * 1024                  # first buffer of a message being read

_UNSET: Any = object()


class _SendJob:
    """One message (or fragment) on its way out; ``sent`` survives a
    WouldBlock so the frame continues where it stopped."""

    __slots__ = ("opcode", "data", "flags", "sent", "started")

    def __init__(self, opcode: int, data: Any, flags: int) -> None:
        self.opcode = opcode
        self.data = data
        self.flags = flags
        self.sent = 0
        self.started = False


class _Batch:
    """Several whole messages for lightws_stream_sendv; ``index`` and
    ``offset`` name the first byte not yet written. ``msgs`` holds
    (opcode, bytes-like of unsigned bytes), ``sizes`` their lengths."""

    __slots__ = ("msgs", "sizes", "has_empty", "index", "offset", "started")

    def __init__(self, msgs: List[Tuple[int, Any]]) -> None:
        self.msgs = msgs
        self.sizes = [len(m) for _, m in msgs]
        self.has_empty = 0 in self.sizes
        self.index = 0
        self.offset = 0
        self.started = False


_SENDV_BATCH = 64
_TEXT = int(Opcode.TEXT)
_BINARY = int(Opcode.BINARY)
_PING = int(Opcode.PING)
_SEND_MASK_IN_PLACE = _core.SEND_MASK_IN_PLACE
_SEND_NO_COMPRESS = _core.SEND_NO_COMPRESS


def _timeout_arg(value: Any, name: str = "timeout") -> Optional[float]:
    """``value`` as a timeout in seconds, checked as socket.settimeout()
    checks it: None (no bound) or a number >= 0; NaN and negative numbers
    are ValueError, a str TypeError."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be None or a number, not {type(value).__name__}")
    t = float(value)
    if math.isnan(t):
        raise ValueError(f"{name}: invalid value NaN (not a number)")
    if t < 0:
        raise ValueError(f"{name} value out of range")
    return t


def _ms(seconds: Optional[float]) -> int:
    """A timeout in seconds (None or 0: off) as the C core's milliseconds
    (0: off); a positive value is at least 1 ms."""
    if not seconds:
        return 0
    return min(max(1, math.ceil(seconds * 1000)), 0xFFFFFFFF)


def _open_left(deadline: Optional[float]) -> Optional[float]:
    """Seconds left until ``deadline`` (time.monotonic()), None for none;
    HandshakeTimeout once it passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise HandshakeTimeout("opening handshake not complete within open_timeout")
    return left


def _close_args(code: Any, reason: Any) -> bytes:
    """Checks close(code, reason) before anything is sent; the reason as
    UTF-8. The code must be one a close frame may carry (§7.4.1, §7.4.2:
    1000-1003, 1007-1014, 3000-4999; never 1005, 1006, 1015), or 0 for a
    close frame without a code (then no reason); the reason fits the
    control frame with the code: 123 bytes (§5.5)."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"a close code is an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"a close reason is a str, not {type(reason).__name__}")
    if code != 0 and not (0 < code <= 0xFFFF and _core.close_code_valid(code)):
        raise InvalidUsage(f"close code {code} may not be sent (RFC 6455 §7.4)", "INVALID")
    rb = reason.encode("utf-8")     # UnicodeEncodeError (a ValueError): lone surrogate
    if len(rb) > _core.CONTROL_MAX - 2:
        raise InvalidUsage(f"close reason is {len(rb)} bytes in UTF-8; at most "
                           f"{_core.CONTROL_MAX - 2} fit a close frame", "INVALID")
    if rb and code == 0:
        raise InvalidUsage("a close reason needs a close code", "INVALID")
    return rb


def _control_payload(data: Any) -> bytes:
    """A ping or pong payload: str as UTF-8, or any bytes-like object (an
    int is not one: bytes(5) would be five NUL bytes); at most 125 bytes
    (§5.5)."""
    if isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        try:
            payload = memoryview(data).tobytes()
        except TypeError:
            raise TypeError(f"a ping or pong payload is str or bytes-like, "
                            f"not {type(data).__name__}") from None
    if len(payload) > _core.CONTROL_MAX:
        raise InvalidUsage(f"a ping or pong payload is at most {_core.CONTROL_MAX} "
                           f"bytes, not {len(payload)}", "INVALID")
    return payload


def _as_fd(obj: Any) -> Tuple[Optional[socket.socket], int, Any]:
    """(socket object or None, fd, owner to close) for a socket, anything
    with fileno(), or an int descriptor (a socket: we wrap and own it)."""
    if isinstance(obj, socket.socket):
        return obj, obj.fileno(), obj
    if isinstance(obj, int):
        sock = socket.socket(fileno=obj)
        return sock, obj, sock
    if hasattr(obj, "fileno"):
        return None, obj.fileno(), obj
    raise TypeError(f"expected a socket, an object with fileno() or an int fd, "
                    f"not {type(obj).__name__}")


class BaseWebSocket:
    """State and resumable steps of one websocket connection (no waiting)."""

    def __init__(self, sock: Any, *, client: bool, max_size: Optional[int] = DEFAULT_MAX_SIZE,
                 rbuf_size: int = DEFAULT_RBUF_SIZE, mask: str = "random",
                 options: int = 0, data: bytes = b"", closefd: bool = True,
                 ssl: Any = None, server_hostname: Optional[str] = None,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 compression: Any = "deflate",
                 compression_threshold: Optional[int] = None) -> None:
        # permessage-deflate (RFC 7692) offered (client) or accepted
        # (server) by the opening handshake: the C config, None for off
        self._pmd_cfg = _core.deflate_config(compression, compression_threshold)
        #: the extensions agreed in the opening handshake, as python
        #: websockets' ``ws.extensions``: [PerMessageDeflate(...)] or []
        self.extensions: List[Any] = []
        self._deflate = False
        #: keepalive (seconds, None: off): a ping after ``ping_interval``
        #: without traffic; its pong must come within ``ping_timeout``
        #: (None: pings only), else PingTimeout and close 1011. Read at
        #: the start of the open phase (handshake done).
        self.ping_interval = _timeout_arg(ping_interval, "ping_interval")
        self.ping_timeout = _timeout_arg(ping_timeout, "ping_timeout")
        #: close 1001 and IdleTimeout when nothing at all came for this
        #: long (None: off; not in python websockets; the C core's idle)
        self.idle_timeout = _timeout_arg(idle_timeout, "idle_timeout")
        self._sock, self._fd, self._owner = _as_fd(sock)
        os.set_blocking(self._fd, False)
        if self._sock is not None:
            self._sock.setblocking(False)
        self._closefd = closefd
        self._c = CStream(self._fd, _core.ROLE_CLIENT if client else _core.ROLE_SERVER,
                          rbuf_size, options)
        self.client = client
        self.max_size = max_size if max_size else 0xFFFFFFFF
        limit = min(self.max_size, 0xFFFFFFFF)
        self._c.set_limits(limit, limit)
        if client and mask != "random":
            self._c.set_mask_mode(mask)
        self._tls: Optional[_core.TlsIO] = None
        if ssl is not None:
            if self._sock is None:
                raise InvalidUsage("TLS needs a socket object or an int descriptor")
            self._tls = _core.TlsIO(self._sock, ssl, not client, server_hostname)
            self._tls.attach(self._c)
        if data:
            self._c.feed(data)
        self.request: Optional[Request] = None
        self.response: Optional[Response] = None
        self.subprotocol: Optional[str] = None
        #: with OPT_NO_AUTO_PONG: payload of the last ping recv() skipped
        #: (answer it with pong()); recv_chunk_into() returns pings as
        #: chunks with opcode Opcode.PING
        self.last_ping: Optional[bytes] = None
        # reading: the message being assembled
        self._rmsg: Optional[bytearray] = None
        self._rpos = 0
        self._scratch: Optional[bytearray] = None    # see _scratch_buf()
        # writing: an unfinished message, and the opcode of an open
        # fragmented message (0 if none)
        self._pending: Optional[_SendJob] = None
        self._frag_opcode = 0
        self._fd_closed = False
        # True while a C timeout runs (the stream has a deadline to keep)
        self._timed = False
        self._phase_open()      # open from init; a handshake sets its own

    # -- time: the C core keeps the deadlines ------------------------------
    # One lightws_stream_set_timeouts per phase (its clocks start there):
    # the handshake's open_timeout, then keepalive, then close_timeout.
    def _phase_handshake(self, open_timeout: Optional[float]) -> None:
        ms = _ms(open_timeout)
        self._c.set_timeouts(handshake=ms)
        self._timed = bool(ms)

    def _phase_open(self) -> None:
        interval, idle = _ms(self.ping_interval), _ms(self.idle_timeout)
        self._c.set_timeouts(ping_interval=interval, idle=idle,
                             ping_timeout=_ms(self.ping_timeout) if interval else 0)
        self._timed = bool(interval or idle)

    def _phase_close(self, close_timeout: Optional[float]) -> None:
        ms = _ms(close_timeout)
        self._c.set_timeouts(close=ms)
        self._timed = bool(ms)

    @property
    def compression(self) -> Optional[str]:
        """"deflate" when permessage-deflate was agreed, else None."""
        return "deflate" if self._deflate else None

    def _agreed(self, params: Any) -> None:
        if params is not None:
            self.extensions = [params]
            self._deflate = True

    @property
    def latency(self) -> float:
        """Round trip of the last keepalive ping answered, in seconds (0.0
        before the first), as python websockets' ``latency``."""
        return self._c.rtt() / 1e6

    def _answer_408(self) -> None:
        """A server whose client was too slow for open_timeout: one
        nonblocking attempt at 408 (RFC 7231 §6.5.7), as lightws_accept()
        makes; not over TLS (nothing can be cut into its records)."""
        if (self.client or self.request is not None or self._tls is not None
                or self._sock is None or self._fd_closed):
            return          # (request read: the 101 may be partly out)
        try:
            self._sock.send(_core.build_error(408), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:
            pass

    # -- introspection ---------------------------------------------------
    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return -1 if self._fd_closed else self._fd

    @property
    def path(self) -> Optional[str]:
        """Server side: the request-target of the upgrade request."""
        return self.request.path if self.request else None

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005 none, 1006 no close frame), or None
        while open."""
        code = self._c.close_code()
        return code or None

    @property
    def close_reason(self) -> str:
        return self._c.close_reason()

    @property
    def last_pong(self) -> Optional[bytes]:
        """Payload of the last pong received (recorded by reads), or None."""
        return self._c.last_pong

    @property
    def closed(self) -> bool:
        """True once the close handshake completed, the stream failed, or
        close() released the socket."""
        return self._fd_closed or self._c.closing() == 2 or self._c.error() != 0

    @property
    def want(self) -> int:
        """What the last WouldBlock waited for: WANT_READ | WANT_WRITE bits."""
        return self._c.want()

    @property
    def pending(self) -> bool:
        """True while a message accepted by send() is not fully written
        (or, over TLS, its ciphertext is not all on the socket)."""
        return (self._pending is not None or self._tls_output()
                or (self._deflate and bool(self._c.want() & WANT_WRITE)))

    def _tls_output(self) -> bool:
        if self._tls is None:
            return False
        with self._c.lock:
            return not self._tls.flush()

    def _step_close_notify(self) -> None:
        """Over TLS, after the close handshake: our close_notify (queued
        under the C lock, which orders ciphertext)."""
        assert self._tls is not None
        with self._c.lock:
            self._tls.close_notify()

    def _step_tls(self) -> None:
        """One step of the TLS handshake (before the websocket one)."""
        assert self._tls is not None
        with self._c.lock:
            self._tls.handshake()

    def __repr__(self) -> str:
        role = "client" if self.client else "server"
        state = "closed" if self._fd_closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {role} {state}>"

    # -- steps: reading ----------------------------------------------------
    def _step_recv(self) -> Union[str, bytes]:
        """Assembles one message; resumable after WouldBlock."""
        if self._rmsg is None and self._rpos == 0:
            # Fast path: a message in one piece is copied once, out of the
            # C receive buffer (lightws_stream_recv).
            data, op, _, end, _ = self._c.recv_chunk()
            return self._recv_first(data, op, end)
        buf = self._rmsg if self._rmsg is not None else self._scratch_buf()
        return self._recv_rest(buf, self._rpos)

    def _recv_first(self, data: bytes, op: int, end: bool) -> Union[str, bytes]:
        """A message whose first piece recv_chunk() returned; resumable
        (by _step_recv) after WouldBlock."""
        while op == _PING:           # OPT_NO_AUTO_PONG
            self.last_ping = data
            data, op, _, end, _ = self._c.recv_chunk()
        if end:
            return data.decode("utf-8") if op == _TEXT else data
        if self._deflate:
            # A compressed message that did not end in this chunk (its
            # inflated bytes filled the work buffer, or the transport cut
            # it) often ends in the very next one: try it here rather than
            # through the buffers.
            try:
                more, op2, _, end2, _ = self._c.recv_chunk()
            except WouldBlock:
                pass
            else:
                if op2 == _PING:                 # OPT_NO_AUTO_PONG
                    self.last_ping = more
                else:
                    if more:
                        data += more
                    if end2:
                        return data.decode("utf-8") if op == _TEXT else data
        n = len(data)
        if n < _SCRATCH:
            buf = self._scratch_buf()
        else:
            buf = bytearray(min(max(2 * n, _SCRATCH), self.max_size + 1))
        buf[:n] = data
        return self._recv_rest(buf, n)

    def _scratch_buf(self) -> bytearray:
        """The first buffer of a message that comes in pieces, made on the
        first such message: a connection that never has one (idle, or read
        with recv_chunk_into as the echo tool does) does without it."""
        s = self._scratch
        if s is None:
            s = self._scratch = bytearray(_SCRATCH)
        return s

    def _recv_rest(self, buf: bytearray, pos: int) -> Union[str, bytes]:
        """The rest of a message whose first ``pos`` bytes are in ``buf``,
        read straight into it (lightws_stream_read)."""
        while True:
            if pos == len(buf):
                # Grow: the C limit (max_size) fails the message with 1009
                # before it passes max_size, so max_size + 1 always suffices.
                size = min(max(len(buf) * 2, _SCRATCH), self.max_size + 1)
                bigger = bytearray(size)
                bigger[:pos] = buf
                buf = self._rmsg = bigger
            try:
                ch = self._c.read_into(memoryview(buf)[pos:])
            except WouldBlock:
                if buf is self._scratch and pos:
                    # keep the partial message; the scratch is reused later
                    self._rmsg = bytearray(buf[:pos]) + bytearray(_SCRATCH)
                elif pos:
                    self._rmsg = buf
                self._rpos = pos
                raise
            except BaseException:
                self._rmsg, self._rpos = None, 0
                raise
            if ch.opcode == Opcode.PING:
                # OPT_NO_AUTO_PONG hands pings out instead of answering
                self.last_ping = bytes(memoryview(buf)[pos:pos + ch.nbytes])
                continue
            pos += ch.nbytes
            if ch.message_end:
                self._rmsg, self._rpos = None, 0
                view = memoryview(buf)[:pos]
                if ch.opcode == Opcode.TEXT:
                    return str(view, "utf-8")
                return bytes(view)

    def _step_read_chunk(self, buf: Any) -> Chunk:
        return self._c.read_into(buf)

    def _step_read_bytes(self, buf: Any) -> int:
        return self._c.read_bytes_into(buf)

    # -- steps: writing ----------------------------------------------------
    def _new_job(self, data: Data, opcode: Optional[int], fin: bool,
                 compress: bool = True) -> _SendJob:
        if isinstance(data, str):
            payload: Any = data.encode("utf-8")
            kind = Opcode.TEXT
        else:
            payload = data
            kind = Opcode.BINARY
        if self._frag_opcode:
            op = self._frag_opcode       # a fragmented message continues
        elif opcode is not None:
            op = int(opcode)
            if op not in (Opcode.TEXT, Opcode.BINARY):
                raise InvalidUsage("send() takes Opcode.TEXT or Opcode.BINARY; "
                                   "use ping()/pong()/close() for control frames")
        else:
            op = kind
        flags = 0 if fin else _core.SEND_FRAGMENT
        if not compress:
            flags |= _SEND_NO_COMPRESS
        return _SendJob(op, payload, flags)

    def _step_job(self, job: _SendJob) -> None:
        data = job.data
        total = len(data) if isinstance(data, (bytes, bytearray)) else memoryview(data).nbytes
        while True:
            view = data if job.sent == 0 else memoryview(data).cast("B")[job.sent:]
            n = self._c.send(job.opcode, view, job.flags)
            job.started = True
            job.sent += n
            if job.sent >= total:
                return

    def _take_job(self, job: _SendJob) -> None:
        """Records that send() accepted ``job`` (it continues a fragmented
        message until a final fragment)."""
        self._frag_opcode = job.opcode if job.flags & _core.SEND_FRAGMENT else 0

    def _step_pending(self) -> None:
        if self._pending is not None:
            if isinstance(self._pending, _Batch):
                self._step_batch(self._pending)
            else:
                self._step_job(self._pending)
            self._pending = None

    def _new_batch(self, messages: Any) -> _Batch:
        if self._frag_opcode:
            raise InvalidUsage("a fragmented message is open; finish it with send()")
        msgs = []
        append = msgs.append
        for m in messages:
            cls = m.__class__
            if cls is bytes or cls is bytearray:
                append((_BINARY, m))
            elif cls is str:
                append((_TEXT, m.encode("utf-8")))
            else:
                append((_BINARY, memoryview(m).cast("B")))
        return _Batch(msgs)

    def _step_batch(self, b: _Batch) -> None:
        """Whole messages through lightws_stream_sendv, up to 32 frames per
        writev; resumable at any byte."""
        msgs, sizes = b.msgs, b.sizes
        count = len(msgs)
        sendv = self._c.sendv
        while b.index < count:
            i, off = b.index, b.offset
            if sizes[i]:
                end = min(i + _SENDV_BATCH, count)
                call = msgs[i:end]
                if off:
                    call[0] = (call[0][0], memoryview(call[0][1])[off:])
            else:
                # An empty message goes alone: when sendv sends one and then
                # would block on the next, it reports WOULDBLOCK, so the
                # empty frame could not be told apart from one never sent.
                end = i + 1
                call = msgs[i:end]
            n = sendv(call)
            b.started = True
            if not b.has_empty and n == sum(sizes[i:end]) - off:
                b.index, b.offset = end, 0      # all of the call went out
                continue
            # Advance over what went out. C sends an empty message only as
            # the first of a call, so an empty one later was not sent.
            k, first = i, True
            while k < count:
                size = sizes[k] - off
                if size == 0 and not first:
                    break
                if n < size:
                    off += n
                    break
                n -= size
                k, off, first = k + 1, 0, False
                if n == 0:
                    break
            b.index, b.offset = k, off

    def _keep_batch(self, b: _Batch) -> None:
        # Copy what is left: the caller may reuse its buffers at once.
        rest = [(op, bytes(m)) for op, m in b.msgs[b.index:]]
        if rest and b.offset:
            rest[0] = (rest[0][0], rest[0][1][b.offset:])
        nb = _Batch(rest)
        b.msgs, b.sizes, b.has_empty = nb.msgs, nb.sizes, nb.has_empty
        b.index, b.offset = 0, 0
        self._pending = b if rest else None

    def _keep_pending(self, job: _SendJob) -> None:
        # Copy the unsent rest: the caller may reuse its buffer at once.
        rest = memoryview(job.data).cast("B")[job.sent:].tobytes()
        job.data, job.sent = rest, 0
        self._pending = job
        if not rest:
            self._pending = None

    def _flush_for_reader(self, want: int) -> int:
        """A read that would block may hold a pending control frame (an
        automatic pong, our close): write it. Returns what to wait for,
        without WANT_WRITE once it is out, or 0 after progress (the read
        is retried at once; never 0 without progress, which would spin
        with no deadline).

        A data frame of ours that is half-written holds the control frame
        back (flush: BUSY) until its end. A writer at work carries it: the
        reader waits as before (for writability as well when the read
        cannot go on without the slot). With no writer at work, the reader
        writes the kept rest of the frame itself."""
        try:
            if self._c.flush():
                return want & ~WANT_WRITE
        except WouldBlock:
            return want | WANT_WRITE
        done = self._finish_pending_for_reader()
        if done is None:                    # a writer is at it
            return want & ~WANT_WRITE if want & WANT_READ else WANT_WRITE
        return 0 if done else want | WANT_WRITE

    def _finish_pending_for_reader(self) -> Optional[bool]:
        """None while a writer is sending, else _finish_pending()."""
        raise NotImplementedError

    def _finish_pending(self) -> bool:
        """Writes the kept rest of a half-written data frame: True when it
        is out, False if the socket would block."""
        if self._pending is None:
            raise InvalidUsage("a data frame was cut short and its rest is lost "
                               "(an interrupted send): the stream cannot go on", "BUSY")
        try:
            self._step_pending()
        except WouldBlock:
            return False
        return True

    def _step_flush(self) -> None:
        """Writes the pending message rest and any pending control frame."""
        self._step_pending()
        self._c.flush()
        if self._tls_output():
            raise WouldBlock(WANT_WRITE)

    def _step_control(self, fn: Callable[[], None]) -> None:
        """ping/pong/close: queue into the control slot (WouldBlock while it
        is busy with an earlier control frame)."""
        try:
            fn()
        except WouldBlock:
            if not self._c.flush():
                raise WouldBlock(WANT_WRITE)
            fn()

    # -- close -------------------------------------------------------------
    def _release(self) -> None:
        """Closes the transport (once)."""
        if self._fd_closed:
            return
        self._fd_closed = True
        if not self._closefd:
            return
        self._shutdown()
        self._close_fd()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_fd(self) -> None:
        self._c.detach()
        try:
            close = getattr(self._owner, "close", None)
            if close is not None:
                close()
        except OSError:
            pass

    def _need_close_frame(self) -> bool:
        return (not self._fd_closed and self._c.closing() == 0
                and self._c.error() == 0)


#: how long close() waits for a reader or writer thread to leave a call
#: after the socket was shut down, before leaving the descriptor's close to
#: a helper thread
_RELEASE_WAIT = 1.0


class WebSocket(BaseWebSocket):
    """A blocking websocket stream over a socket (socket-like timeouts).

    The descriptor is made nonblocking: C calls never block and run under
    a lock, while waiting for readiness happens outside it with poll().
    ``settimeout(None)`` (default) blocks, ``settimeout(t)`` raises
    TimeoutError after t seconds, ``settimeout(0)`` raises BlockingIOError
    (a WouldBlock whose ``want`` tells what to wait for) instead of
    waiting; a later call resumes with no byte lost.

    Threads: one reader (recv, recv_into, read, iteration) and one writer
    (send, write, ping, pong) may use the stream at the same time; readers
    are serialized among themselves, and so are writers.

    Time without a thread: the C stream keeps the deadlines of
    ``ping_interval`` / ``ping_timeout`` (keepalive), the opening
    handshake and close(), and they are acted on only while a call runs
    or waits (recv() waiting for a message included, in any timeout
    mode): then a keepalive ping goes out after ``ping_interval`` without
    traffic, its pong is read, a ping of the peer is answered, and a
    missing pong ends the call with PingTimeout (close 1011 sent, socket
    released). Between calls nothing happens: no ping is sent, none is
    answered, and a pong that came is seen by the next read. An
    application that stops calling for longer than the peer's ping
    timeout may be dropped by the peer; one that waits in recv() or uses
    a reader thread is not. In nonblocking mode (settimeout(0)) a call
    ticks the clock once when the deadline has passed, so call something
    (flush() will do) at least as often as ``ping_interval``.
    """

    def __init__(self, sock: Any, *, client: bool, timeout: Optional[float] = _UNSET,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT, **kw: Any) -> None:
        if timeout is _UNSET:
            timeout = sock.gettimeout() if isinstance(sock, socket.socket) else None
        timeout = _timeout_arg(timeout)
        close_timeout = _timeout_arg(close_timeout, "close_timeout")
        if close_timeout is None:
            raise TypeError("close_timeout must be a number")
        super().__init__(sock, client=client, **kw)
        self._timeout: Optional[float] = timeout
        self.close_timeout = close_timeout
        self._rlock = threading.RLock()
        self._wlock = threading.RLock()
        self._rpoll = select.poll()     # the reader's (poll objects are not shared)
        self._rpoll.register(self._fd, select.POLLIN)

    def _release(self) -> None:
        """Closes the transport (once). Another thread may still be inside
        a read or a write on this descriptor (close() gave up waiting for
        its lock after close_timeout): the socket is shut down first, which
        ends that thread's poll and read/write at once, and the descriptor
        is closed only once the thread has left. Closing it under the
        thread would free the number for the next socket the process opens,
        and the thread's next call would read or write someone else's
        connection."""
        if self._fd_closed:
            return
        self._fd_closed = True      # a woken reader or writer stops here
        if not self._closefd:
            return
        self._shutdown()
        held = [lock for lock in (self._rlock, self._wlock)
                if lock.acquire(timeout=_RELEASE_WAIT)]
        try:
            if len(held) == 2:
                self._close_fd()
                return
        finally:
            for lock in held:
                lock.release()
        # still busy (a thread not yet scheduled since the shutdown): close
        # when it has left
        threading.Thread(target=self._close_when_idle, daemon=True,
                         name="lightws-close").start()

    def _finish_pending_for_reader(self) -> Optional[bool]:
        if not self._wlock.acquire(blocking=False):
            return None
        try:
            return self._finish_pending()
        finally:
            self._wlock.release()

    def _close_when_idle(self) -> None:
        with self._rlock, self._wlock:
            self._close_fd()

    # -- timeouts ----------------------------------------------------------
    def settimeout(self, value: Optional[float]) -> None:
        """None: block; 0: never wait (BlockingIOError); t: wait t seconds
        per call, then TimeoutError (socket.timeout). NaN or a negative
        value is a ValueError, as for a socket."""
        self._timeout = _timeout_arg(value)

    def gettimeout(self) -> Optional[float]:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def _read_call(self, call: Callable[[Any], T], step: Callable[[Any], T],
                   buffer: Any) -> T:
        # A read into `buffer` under the read lock: blocking mode without
        # TLS takes the lean path (wait for POLLIN, one C call; no lambda,
        # no deadline); anything else, or WOULDBLOCK after all, goes to the
        # resumable loop with `step`.
        if self._timeout is None and self._tls is None:
            self._wait_readable()
            try:
                return call(buffer)
            except WouldBlock:
                pass
        return self._run(lambda: step(buffer), True)

    def _wait_readable(self) -> None:
        # Blocking lean paths: with nothing buffered a read would start with
        # read(2) on the descriptor, so wait for POLLIN first instead of
        # read (EAGAIN), an exception and a poll (W1 server: user time per
        # GiB about halved). Called under the read lock, outside the C lock.
        if self._c.read_idle():
            if self._fd_closed:
                raise ConnectionClosedError(1006, "socket closed")
            # at a deadline the read would block: the resumable loop ticks
            self._rpoll.poll(self._clock() if self._timed else None)

    def _wait(self, want: int, deadline: Optional[float]) -> None:
        if self._fd_closed:
            raise ConnectionClosedError(1006, "socket closed")
        if self._tls_output():
            want |= WANT_WRITE      # ciphertext waits for the socket
        events = (select.POLLIN if want & WANT_READ else 0) | \
                 (select.POLLOUT if want & WANT_WRITE else 0)
        poller = select.poll()
        poller.register(self._fd, events or select.POLLIN)
        if deadline is None:
            ms = None
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            ms = max(1, math.ceil(left * 1000))
        # The stream's own deadline (keepalive ping, its pong, open and
        # close timeouts) cuts the wait short: the caller retries its
        # step and the next wait ticks the C clock.
        cms = self._clock() if self._timed else -1
        if cms >= 0 and (ms is None or cms < ms):
            poller.poll(cms)
            return
        if not poller.poll(ms):
            raise socket.timeout("timed out")

    def _clock(self) -> int:
        """Ticks the C stream when a deadline is due; milliseconds to the
        next one (-1: none). A timeout that failed the stream (its close
        frame sent as far as the socket allowed) releases the socket and
        raises PingTimeout, HandshakeTimeout..."""
        try:
            return self._c.clock()
        except WebSocketError as e:
            if isinstance(e, HandshakeTimeout):
                self._answer_408()
            self._timed = False
            self._release()
            raise

    def _run(self, step: Callable[[], T], reading: bool,
             timeout: Optional[float] = _UNSET) -> T:
        t = self._timeout if timeout is _UNSET else timeout
        deadline = None if t is None else time.monotonic() + t
        while True:
            try:
                result = step()
            except WouldBlock as e:
                want = e.want
                if reading and want & WANT_WRITE:
                    # an automatic pong or our close waits in the control
                    # slot: write it now, even in nonblocking mode
                    want = self._flush_for_reader(want)
                    if not want:
                        continue
                if t == 0:
                    if self._timed:
                        self._clock()       # nonblocking: tick what is due
                    e.want = want
                    raise
            else:
                if self._tls is not None and not reading and t != 0:
                    # written means on the socket, not in the TLS buffer
                    while self._tls_output():
                        self._wait(WANT_WRITE, deadline)
                return result
            self._wait(want, deadline)

    # -- opening handshake (used by connect() and accept()) -----------------
    def _client_handshake(self, host: str, path: str, protocols: Optional[str],
                          origin: Optional[str], headers: Optional[Headers],
                          open_deadline: Optional[float] = None) -> None:
        self._phase_handshake(None)         # no keepalive during TLS
        if self._tls is not None:
            self._tls_handshake(open_deadline)
        self._phase_handshake(_open_left(open_deadline))
        try:
            self._c.client_start(host, path, protocols, origin, headers,
                                 deflate=self._pmd_cfg)
        except WouldBlock:
            pass
        self.response = self._run(self._c.client_handshake, False, self._hs_timeout())
        self.subprotocol = self.response.protocol
        self._agreed(self._c.client_deflate(self.response))
        self._phase_open()

    def _hs_timeout(self) -> Optional[float]:
        # The opening handshake waits even in nonblocking mode (timeout 0).
        return None if self._timeout == 0 else self._timeout

    def _tls_handshake(self, open_deadline: Optional[float]) -> None:
        # TLS is not a C handshake step: its bound is open_timeout's
        # deadline here (and the WebSocket's timeout).
        t = self._hs_timeout()
        left = _open_left(open_deadline)
        if left is None or (t is not None and t <= left):
            self._run(self._step_tls, False, t)
            return
        try:
            self._run(self._step_tls, False, left)
        except socket.timeout:
            raise HandshakeTimeout("TLS handshake not complete within open_timeout") from None

    def _server_handshake(self, protocols: Optional[Sequence[str]],
                          headers: Optional[Headers],
                          select_subprotocol: Optional[Callable[[Request], Optional[str]]],
                          open_deadline: Optional[float] = None) -> None:
        self._phase_handshake(None)
        if self._tls is not None:
            self._tls_handshake(open_deadline)
        self._phase_handshake(_open_left(open_deadline))
        try:
            self.request = self._run(self._c.server_read_request, False, self._hs_timeout())
        except HandshakeError as e:
            status = e.status
            if status and not isinstance(e, HandshakeTimeout):   # 408: _clock() sent it
                try:
                    self._run(lambda: self._c.server_reject(status), False, self._hs_timeout())
                except (OSError, WebSocketError):
                    pass
            raise
        chosen = _choose_subprotocol(self.request, protocols, select_subprotocol)
        if self._pmd_cfg is not None:
            self._agreed(self._c.server_deflate(self._pmd_cfg))
        self._run(lambda: self._c.server_accept(chosen, headers), False, self._hs_timeout())
        self.subprotocol = chosen
        self._phase_open()

    # -- messages ----------------------------------------------------------
    def recv(self) -> Union[str, bytes]:
        """The next whole message: str for text, bytes for binary.

        Raises ConnectionClosedOK/ConnectionClosedError when the peer
        closed (its close was answered), ProtocolError when it broke the
        RFC (lightws sent the close frame), TimeoutError, BlockingIOError.
        """
        rlock = self._rlock
        rlock.acquire()         # not `with`: measurably cheaper per message
        try:
            if (self._timeout is None and self._rmsg is None and self._rpos == 0
                    and self._tls is None):
                # Lean path (blocking mode, no partial message): when the
                # receive buffer is empty, wait for POLLIN before the read
                # instead of read (EAGAIN) + poll + read (measured: fewer
                # syscalls, +8 % round trips/s in W3). The wait is outside
                # the C lock, so a writer thread never waits behind it.
                # Anything unusual (a partial frame, a pending pong to
                # write) goes to the general resumable loop.
                c = self._c
                if c.read_idle():
                    if self._fd_closed:
                        raise ConnectionClosedError(1006, "socket closed")
                    if not self._rpoll.poll(self._clock() if self._timed else None):
                        return self._run(self._step_recv, True)   # a deadline: tick
                r = c.recv_msg()
                if r is None:
                    return self._run(self._step_recv, True)
                data, op, end = r
                if end and op != _PING:
                    return data.decode("utf-8") if op == _TEXT else data
                try:
                    return self._recv_first(data, op, end)
                except WouldBlock:
                    return self._run(self._step_recv, True)
            return self._run(self._step_recv, True)
        finally:
            rlock.release()

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        """Messages until the peer closes normally (ConnectionClosedOK ends
        the iteration; other errors propagate)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def recv_into(self, buffer: Any) -> int:
        """Zero-copy read of the next piece of a message into ``buffer``
        (bytearray, memoryview, array...): returns the bytes stored. Never
        crosses a message boundary; see recv_chunk_into() for where the
        message ends."""
        return self.recv_chunk_into(buffer).nbytes

    def recv_chunk_into(self, buffer: Any) -> Chunk:
        """Like recv_into(), with the message's opcode and whether this
        piece ends a frame / the message: a Chunk(nbytes, opcode,
        frame_end, message_end)."""
        with self._rlock:
            return self._read_call(self._c.read_into, self._step_read_chunk, buffer)

    def recv_piece(self) -> Piece:
        """The next piece of a message as bytes (one copy out of the C
        buffer): Piece(data, opcode, frame_end, message_end, compressed),
        ``compressed`` True when its message came compressed
        (permessage-deflate). Never crosses a message boundary; a
        compressed message comes in pieces of at most the work buffer
        (4 KiB by default)."""
        with self._rlock:
            return Piece(*self._run(self._c.recv_chunk, True))

    def send(self, data: Data, opcode: Optional[int] = None, *, fin: bool = True,
             mask_in_place: bool = False, compress: bool = True) -> None:
        """Sends one message: str as text, bytes-like as binary (``opcode``
        overrides: Opcode.TEXT for UTF-8 you encoded). ``fin=False`` sends
        a fragment; the following send() calls continue the message (with
        its opcode) until one has fin=True.

        ``mask_in_place=True`` (client; ``data`` a writable buffer such as
        a bytearray) lets lightws mask the payload in ``data`` itself
        instead of copying it through a stack buffer: the bytes that went
        out are left masked, so the caller must not need ``data`` back.

        Nonblocking (settimeout(0)): raises BlockingIOError only when the
        message was not taken (retry later); once send() returns, the
        message is ours and any rest goes out with the next send() or
        flush().

        With permessage-deflate agreed (``ws.compression == "deflate"``) a
        message is compressed unless ``compress=False`` (read on its first
        fragment) or it is sent whole with fewer than
        ``compression_threshold`` bytes (default 32)."""
        if (fin and self._pending is None and not self._frag_opcode
                and self._tls is None):
            # Lean path: one lightws_stream_send under the write lock; the
            # job machinery below only after WOULDBLOCK or a partial send.
            if data.__class__ is str:
                payload: Any = data.encode("utf-8")
                op = _TEXT
            else:
                payload = data
                op = _BINARY
            if opcode is not None:
                op = int(opcode)
                if op != _TEXT and op != _BINARY:
                    raise InvalidUsage("send() takes Opcode.TEXT or Opcode.BINARY; "
                                       "use ping()/pong()/close() for control frames")
            wlock = self._wlock
            wlock.acquire()     # not `with`: measurably cheaper per message
            try:
                if self._pending is None and not self._frag_opcode:
                    flags = _SEND_MASK_IN_PLACE if mask_in_place else 0
                    if not compress:
                        flags |= _SEND_NO_COMPRESS
                    left = self._c.send_fast(op, payload, flags)
                    if left == 0:
                        if self._deflate:
                            self._flush_compressed()
                        return
                    job = _SendJob(op, payload, flags & _SEND_NO_COMPRESS)
                    if left > 0:            # a partial send: the frame is under way
                        job.sent = memoryview(payload).nbytes - left
                        job.started = True
                    self._submit(job)
                    return
            finally:
                wlock.release()
        if mask_in_place and (data.__class__ is str or memoryview(data).readonly):
            raise TypeError("mask_in_place needs a writable buffer (bytearray...)")
        job = self._new_job(data, opcode, fin, compress)
        with self._wlock:
            if self._pending is None:
                try:                       # fast path: it all goes out now
                    self._step_job(job)
                    self._take_job(job)
                    if self._deflate:
                        self._flush_compressed()
                    return
                except WouldBlock:
                    pass                   # _submit continues from job.sent
            self._submit(job)

    def _submit(self, job: _SendJob) -> None:
        self._run(self._step_pending, False)   # raises: job not taken
        try:
            self._run(lambda: self._step_job(job), False)
        except (WouldBlock, socket.timeout):
            if not job.started:
                raise
            # The frame is under way in C: keep the rest so the next write
            # finishes it first.
            self._keep_pending(job)
            self._take_job(job)
            if self._timeout == 0:
                return
            raise
        self._take_job(job)
        if self._deflate:
            self._flush_compressed()

    def _flush_compressed(self) -> None:
        """With compression on, C takes a message's bytes into the
        compressor and keeps what the socket did not take in its work
        buffer (lightws_stream_flush writes it): a blocking send waits
        until it is out, a nonblocking one tries once (the next send() or
        flush() finishes it; ``pending`` says so meanwhile)."""
        try:
            self._c.flush()         # usually all is out: one call
            return
        except WouldBlock:
            if self._timeout == 0:
                return
        self._run(self._c.flush, False)

    def send_many(self, messages: Any) -> None:
        """Sends several whole messages (str: text, bytes-like: binary) in
        as few writev calls as lightws_stream_sendv manages (up to 32
        frames each). Timeouts and nonblocking mode as for send(): once
        any byte went out, the rest is kept and finished first by the next
        send(), send_many() or flush()."""
        b = self._new_batch(messages)
        with self._wlock:
            self._run(self._step_pending, False)
            try:
                self._run(lambda: self._step_batch(b), False)
            except (WouldBlock, socket.timeout):
                if not b.started:
                    raise
                self._keep_batch(b)
                if self._timeout == 0:
                    return
                raise
            if self._deflate:
                self._flush_compressed()

    def send_fragments(self, parts: Any, opcode: Optional[int] = None) -> None:
        """Sends an iterable of str or bytes as one fragmented message."""
        it = iter(parts)
        try:
            cur = next(it)
        except StopIteration:
            self.send(b"" if opcode != Opcode.TEXT else "", opcode)
            return
        with self._wlock:
            for nxt in it:
                self.send(cur, opcode, fin=False)
                cur = nxt
            self.send(cur, opcode, fin=True)

    def flush(self) -> None:
        """Writes what send() kept (nonblocking mode) and any queued control
        frame; BlockingIOError if that would block. Ticks the keepalive
        clock first (a nonblocking application calls it on its timer)."""
        with self._wlock:
            if self._timed:
                self._clock()
            self._run(self._step_flush, False)

    def ping(self, data: Union[bytes, str] = b"") -> None:
        """Sends a ping (payload up to 125 bytes). The pong shows up in
        ``last_pong`` once a read has seen it. ``data``: bytes-like, or str
        (sent as UTF-8); anything else is a TypeError."""
        payload = _control_payload(data)
        self._control(lambda: self._c.ping(payload))

    def pong(self, data: Union[bytes, str] = b"") -> None:
        """Sends an unsolicited pong (pings are answered automatically)."""
        payload = _control_payload(data)
        self._control(lambda: self._c.pong(payload))

    def _control(self, fn: Callable[[], None]) -> None:
        with self._wlock:
            self._run(self._step_pending, False)   # a cut frame blocks the slot
            self._run(lambda: self._step_control(fn), False)
            if self._timeout == 0:
                try:
                    self._c.flush()
                except WouldBlock:
                    pass            # queued; goes out with the next write
                return
            try:
                self._run(self._c.flush, False)
            except InvalidUsage:
                pass

    # -- byte stream -------------------------------------------------------
    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` payload bytes, ignoring message boundaries (the
        byte-stream view); b"" once the peer closed or the transport ended."""
        buf = bytearray(size)
        n = self.readinto(buf)
        return bytes(memoryview(buf)[:n]) if n != len(buf) else bytes(buf)

    def readinto(self, buffer: Any) -> int:
        """Byte-stream read into ``buffer``; 0 at the end of the stream."""
        with self._rlock:
            try:
                return self._read_call(self._c.read_bytes_into, self._step_read_bytes,
                                       buffer)
            except ConnectionClosed as e:
                if isinstance(e, ProtocolError):
                    raise           # a broken stream is no end of stream
                return 0

    def write(self, data: Any) -> int:
        """Sends ``data`` as one binary frame (the byte-stream view);
        returns len(data)."""
        if self._frag_opcode:
            raise InvalidUsage("a fragmented message is open; finish it with send()")
        job = _SendJob(Opcode.BINARY, data, 0)
        with self._wlock:
            self._submit(job)
        return len(memoryview(data).cast("B")) if not isinstance(data, bytes) else len(data)

    def makefile(self, mode: str = "rb", buffering: Optional[int] = None) -> Any:
        """A file object over the byte-stream view: "rb", "wb" or "rwb";
        buffering=0 gives the RawStream itself. Closing the file leaves the
        WebSocket open."""
        raw = RawStream(self, closews=False)
        if buffering == 0:
            return raw
        size = buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE
        if "r" in mode and "w" in mode:
            return io.BufferedRWPair(raw, raw, size)
        if "w" in mode:
            return io.BufferedWriter(raw, size)
        return io.BufferedReader(raw, size)

    # -- closing -----------------------------------------------------------
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Closes the connection: sends a close frame with ``code`` and
        ``reason`` (unless one was sent or the stream failed), waits up to
        ``close_timeout`` for the peer's close, then closes the socket.
        Idempotent. An invalid ``code`` or a ``reason`` over 123 bytes in
        UTF-8 raises ValueError (InvalidUsage) before anything is sent:
        the connection stays as it was."""
        rb = _close_args(code, reason)
        if self._fd_closed:
            return
        deadline = time.monotonic() + self.close_timeout
        # C's close timeout ends the waits below (CloseTimeout); deadline
        # bounds what C does not see (the locks of other threads).
        self._phase_close(self.close_timeout)
        try:
            if self._need_close_frame():
                if self._wlock.acquire(timeout=self.close_timeout):
                    try:
                        left = max(0.0, deadline - time.monotonic())
                        self._run(self._step_pending, False, left)
                        self._run(lambda: self._step_control(
                            lambda: self._c.close(code, rb)), False, left)
                        self._run(self._c.flush, False, max(0.0, deadline - time.monotonic()))
                    finally:
                        self._wlock.release()
            if self._c.closing() != 2 and self._c.error() == 0:
                left = max(0.0, deadline - time.monotonic())
                if self._rlock.acquire(timeout=left):
                    try:
                        self._drain(deadline)
                    finally:
                        self._rlock.release()
            elif self._c.closing() == 2:
                # The close reply may still be queued.
                try:
                    self._run(self._c.flush, False, max(0.0, deadline - time.monotonic()))
                except (OSError, WebSocketError):
                    pass
            if self._tls is not None and self._c.closing() == 2:
                self._run(self._step_close_notify, False,
                          max(0.0, deadline - time.monotonic()))
            if self.client and not self._fd_closed:
                self._wait_server_eof(deadline)
        except (OSError, WebSocketError):
            pass
        finally:
            self._release()

    def _drain(self, deadline: float) -> None:
        buf = bytearray(16384)
        while self._c.closing() != 2:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._run(lambda: self._c.read_bytes_into(buf), True, left)
            except (ConnectionClosed, ProtocolError):
                return

    def _wait_server_eof(self, deadline: float) -> None:
        # §7.1.1: the server closes TCP first; the client waits (bounded).
        try:
            if self._sock is not None:
                self._sock.shutdown(socket.SHUT_WR)
            buf = bytearray(4096)
            while True:
                left = min(deadline - time.monotonic(), 2.0)
                if left <= 0:
                    return
                self._wait(WANT_READ, time.monotonic() + left)
                if os.readv(self._fd, [buf]) <= 0:
                    return
        except (OSError, WebSocketError):
            return

    def __enter__(self) -> "WebSocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RawStream(io.RawIOBase):
    """io.RawIOBase over a WebSocket's byte-stream view (read_bytes /
    write): wrap it in io.BufferedReader or use it with
    shutil.copyfileobj. Closing it closes the WebSocket when ``closews``
    (the default; makefile() passes False, as socket.makefile leaves the
    socket open)."""

    def __init__(self, ws: WebSocket, closews: bool = True) -> None:
        super().__init__()
        self.ws = ws
        self.closews = closews

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.ws.fileno()

    def readinto(self, b: Any) -> Optional[int]:  # type: ignore[override]
        try:
            return self.ws.readinto(b)
        except BlockingIOError:
            return None

    def write(self, b: Any) -> Optional[int]:  # type: ignore[override]
        try:
            return self.ws.write(b)
        except BlockingIOError:
            return None

    def close(self) -> None:
        if not self.closed:
            try:
                if self.closews:
                    self.ws.close()
            finally:
                super().close()


def _choose_subprotocol(req: Request, protocols: Optional[Sequence[str]],
                        select: Optional[Callable[[Request], Optional[str]]]) -> Optional[str]:
    if select is not None:
        return select(req)
    if not protocols:
        return None
    offered = req.protocols
    for p in offered:       # the client's order of preference (§4.2.2)
        if p in protocols:
            return p
    return None
