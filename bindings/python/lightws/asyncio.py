# SPDX-License-Identifier: MIT
"""lightws over asyncio: the same C stream, driven by the event loop's
readiness callbacks (add_reader / add_writer) instead of poll().

    import lightws.asyncio

    async def main():
        async with await lightws.asyncio.connect("ws://127.0.0.1:8080/") as ws:
            await ws.send("hello")
            async for message in ws:
                print(message)

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    server = await lightws.asyncio.serve(echo, "127.0.0.1", 8080)

No transports or protocols are involved: the socket is used directly, and
every C call returns at once (would-block included), so one task may read
while another writes.

Time: the C stream keeps the deadlines (open_timeout, keepalive ping and
pong, close_timeout); one loop timer per connection sits at the next one
and ticks the stream there. While no task is inside a read call, the
connection reads ahead on its own, so pings are answered and keepalive
pongs seen when the application is busy elsewhere: messages read ahead
wait (in order) for recv(), at most about ``rbuf_size`` bytes of them (the
size of the receive buffer the stream reads into). Once that much is
unread, reading stops and the peer is back-pressured by TCP, as python
websockets does at max_queue; the next recv() takes from it and reading
goes on.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import socket
import time
from typing import (Any, AsyncIterator, Awaitable, Callable, Deque, List,
                    Optional, Sequence, Set, Tuple, Union)
from urllib.parse import urlsplit

from . import parse_url, _protocols
from . import _core
from ._conn import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT,
                    DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_RBUF_SIZE,
                    WANT_READ, WANT_WRITE, BaseWebSocket, Data, _choose_subprotocol,
                    _close_args, _control_payload, _open_left, _SendJob, _timeout_arg)
from ._core import Chunk, Headers, Piece, Request, header_list, make_chunk
from .server import _ACCEPT_BACKOFF, _ACCEPT_PAUSE, _ACCEPT_TRANSIENT
from .errors import (ConnectionClosed, ConnectionClosedOK, HandshakeError,
                     HandshakeTimeout, InvalidUsage, Opcode, ProtocolError,
                     WebSocketError, WouldBlock)

__all__ = ["WebSocket", "connect", "accept", "serve", "Server"]

log = logging.getLogger("lightws")


#: read-ahead budget charged per chunk besides its bytes, so a flood of
#: empty frames is bounded too
_AHEAD_ENTRY = 64
_TEXT = int(Opcode.TEXT)


class WebSocket(BaseWebSocket):
    """An asyncio websocket stream. Awaitable methods mirror the blocking
    lightws.WebSocket; use asyncio.wait_for() for timeouts. One task may
    receive while others send (sends are serialized message by message).

    Keepalive (``ping_interval``, ``ping_timeout``) and the close timeout
    run on a loop timer at the C stream's next deadline, whether or not a
    task is inside a call. While no read call runs, the connection reads
    ahead: control frames are handled (pings answered, keepalive pongs
    seen) and data waits for recv(), at most ``read_ahead_limit`` bytes
    (default ``rbuf_size``), beyond which the peer is back-pressured. A
    keepalive timeout ends the connection with close 1011 at once; the
    messages read before it are still returned by recv(), then it raises
    PingTimeout (a ConnectionClosedError, code 1011). Under
    OPT_NO_AUTO_PONG nothing is read ahead: pings are the application's.
    """

    def __init__(self, sock: Any, *, client: bool,
                 loop: Optional[asyncio.AbstractEventLoop] = None,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT, **kw: Any) -> None:
        close_timeout = _timeout_arg(close_timeout, "close_timeout")   # None: no bound
        super().__init__(sock, client=client, **kw)
        self._loop = loop or asyncio.get_running_loop()
        self.close_timeout = close_timeout
        self._rwait: List[asyncio.Future] = []
        self._wwait: List[asyncio.Future] = []
        self._rreg = self._wreg = False
        self._recv_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._released = asyncio.Event()    # set by _release()
        # read-ahead: chunks (data, opcode, frame_end, message_end) read
        # while no read call ran, in order; the read calls take them first
        self._ahead: Deque[Tuple[bytes, int, bool, bool, bool]] = collections.deque()
        self._ahead_bytes = 0
        #: read ahead at most this many bytes (then TCP back-pressures the peer)
        self.read_ahead_limit: int = kw.get("rbuf_size", DEFAULT_RBUF_SIZE)
        self._pump_ok = False           # open, and reading ahead allowed
        self._pump_armed = False        # waiting for writability
        self._pump_read = False         # waiting for readability (no future:
                                        # _on_readable runs the pump)
        self._no_pump = bool(kw.get("options", 0) & _core.OPT_NO_AUTO_PONG)
        self._kick_armed = False        # a control frame waits for writability
        self._timer: Optional[asyncio.TimerHandle] = None
        self._handshaking = False
        # A WebSocket made on an open connection (no handshake) starts its
        # keepalive and read-ahead at once; connect()/accept() after theirs.
        self._loop.call_soon(self._start_if_open)

    # -- readiness ----------------------------------------------------------
    def _ready(self, want: int) -> "asyncio.Future[None]":
        if self._fd_closed:
            raise ConnectionClosed(1006, "socket closed")
        fut = self._loop.create_future()
        if want & WANT_READ:
            self._rwait.append(fut)
            if not self._rreg:
                self._loop.add_reader(self._fd, self._on_readable)
                self._rreg = True
        if want & WANT_WRITE:
            self._wwait.append(fut)
            if not self._wreg:
                self._loop.add_writer(self._fd, self._on_writable)
                self._wreg = True
        return fut

    def _on_readable(self) -> None:
        self._loop.remove_reader(self._fd)
        self._rreg = False
        waiters, self._rwait = self._rwait, []
        for f in waiters:
            if not f.done():
                f.set_result(None)
        if self._pump_read:             # the read-ahead waited for this
            self._pump_read = False
            self._pump()

    def _on_writable(self) -> None:
        self._loop.remove_writer(self._fd)
        self._wreg = False
        waiters, self._wwait = self._wwait, []
        for f in waiters:
            if not f.done():
                f.set_result(None)

    def _unregister(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._rreg:
            self._loop.remove_reader(self._fd)
            self._rreg = False
        if self._wreg:
            self._loop.remove_writer(self._fd)
            self._wreg = False
        for f in self._rwait + self._wwait:
            if not f.done():
                f.set_exception(ConnectionClosed(1006, "socket closed"))
        self._rwait, self._wwait = [], []

    def _finish_pending_for_reader(self) -> Optional[bool]:
        if self._send_lock.locked():        # a send() task finishes the frame
            return None
        return self._finish_pending()

    async def _run(self, step: Callable[[], Any], reading: bool) -> Any:
        while True:
            try:
                result = step()
            except WouldBlock as e:
                want = e.want
            else:
                if self._tls is not None and not reading:
                    while self._tls_output():
                        await self._ready(WANT_WRITE)
                return result
            if reading and want & WANT_WRITE:
                want = self._flush_for_reader(want)
                if not want:
                    continue
            if self._tls_output():
                want |= WANT_WRITE
            await self._ready(want)

    # -- time: one loop timer at the C stream's next deadline ----------------
    def _arm(self) -> None:
        """(Re)sets the timer after the C timeouts changed (a new phase);
        between phases the deadlines only move later, and a timer that
        fires early just ticks nothing and sets itself again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._on_timer()

    def _on_timer(self) -> None:
        self._timer = None
        if self._fd_closed or not self._timed:
            return
        try:
            ms = self._c.clock()        # ticks what is due: ping, or a timeout
        except WebSocketError as e:
            self._timed_out(e)
            return
        if self._c.want() & WANT_WRITE:
            self._kick_write()          # the ping waits in the control slot
        if ms >= 0:
            self._timer = self._loop.call_later((ms + 1) / 1000, self._on_timer)

    def _timed_out(self, err: WebSocketError) -> None:
        """A C timeout failed the stream (its close frame, 1011 for a ping
        timeout, went out as far as the socket took it): every waiting
        call wakes and meets the error; the socket is released now."""
        self._timed = False
        if isinstance(err, HandshakeTimeout):
            self._answer_408()
        waiters, self._rwait, self._wwait = self._rwait + self._wwait, [], []
        for f in waiters:
            if not f.done():
                f.set_result(None)
        log.debug("lightws: %s", err)
        self._unregister()
        self._release()

    def _kick_write(self) -> None:
        """Writes a queued control frame (a keepalive ping, an automatic
        pong) that no call is there to write, when the socket takes it."""
        if self._kick_armed or self._fd_closed:
            return
        try:
            while True:
                try:
                    if self._c.flush():
                        return
                except WouldBlock:
                    break
                # behind a data frame of ours cut short: a send() task
                # finishes it (C sends the slot right after), else we do
                if self._send_lock.locked():
                    return
                if not self._finish_pending():
                    break
        except (OSError, WebSocketError):
            return
        self._kick_armed = True
        fut = self._ready(WANT_WRITE)
        fut.add_done_callback(self._kick_ready)

    def _kick_ready(self, fut: "asyncio.Future[None]") -> None:
        self._kick_armed = False
        if not fut.cancelled() and fut.exception() is None:
            self._kick_write()

    # -- read-ahead ----------------------------------------------------------
    def _start_if_open(self) -> None:
        if not self._handshaking and not self._fd_closed and not self._pump_ok:
            self._opened()

    def _opened(self) -> None:
        """The open phase begins: keepalive clocks and read-ahead."""
        self._handshaking = False
        self._phase_open()
        self._arm()
        self._pump_ok = not self._no_pump
        self._pump_soon()

    def _pump_soon(self) -> None:
        """Reads ahead if no read call runs (after every read call)."""
        if (not self._pump_ok or self._pump_read or self._pump_armed
                or self._fd_closed or self._recv_lock.locked()):
            return
        if self._tls is None and self._c.read_idle():
            self._pump_wait(WANT_READ)      # nothing buffered: wait for the socket
        else:
            self._pump()

    def _pump(self) -> None:
        if not self._pump_ok or self._fd_closed or self._recv_lock.locked():
            return
        c, q = self._c, self._ahead
        while self._ahead_bytes < self.read_ahead_limit:
            try:
                chunk = c.recv_chunk()
            except WouldBlock as e:
                want = e.want
                if want & WANT_WRITE:
                    try:
                        want = self._flush_for_reader(want)
                    except (OSError, WebSocketError):
                        self._pump_ok = False
                        return
                    if not want:
                        continue
                if self._tls_output():
                    want |= WANT_WRITE
                self._pump_wait(want)
                return
            except (OSError, WebSocketError):
                # The peer closed (answered), broke the RFC or vanished:
                # the C stream keeps that state, and the next read call
                # reports it once the chunks read ahead are taken.
                self._pump_ok = False
                return
            if not chunk[0] and not chunk[2]:
                continue            # direct mode: a call without progress
            q.append(chunk)
            self._ahead_bytes += len(chunk[0]) + _AHEAD_ENTRY
        # Full: nothing more is read until a read call takes some, so the
        # socket's buffers fill and TCP holds the peer back.

    def _pump_wait(self, want: int) -> None:
        if self._fd_closed:
            return
        if want == WANT_READ:
            # the common case, after every read call: a flag for
            # _on_readable instead of a future and its callback
            self._pump_read = True
            if not self._rreg:
                self._loop.add_reader(self._fd, self._on_readable)
                self._rreg = True
            return
        fut = self._ready(want)
        self._pump_armed = True
        fut.add_done_callback(self._pump_ready)

    def _pump_ready(self, fut: "asyncio.Future[None]") -> None:
        self._pump_armed = False
        if not fut.cancelled() and fut.exception() is None:
            self._pump()

    def _take(self, n: int) -> None:
        """Drops the first read-ahead chunk (``n``: its length)."""
        self._ahead.popleft()
        self._ahead_bytes -= n + _AHEAD_ENTRY

    def _ahead_message(self) -> Optional[Union[str, bytes]]:
        """The next message out of the read-ahead chunks, or None when
        they hold only its start: that moves to the partial-message buffer
        and _step_recv() reads the rest from the stream."""
        q = self._ahead
        parts = []
        if self._rmsg is not None and self._rpos:
            parts.append(bytes(memoryview(self._rmsg)[:self._rpos]))  # a cancelled recv()'s start
        op, end = _TEXT, False
        while q and not end:
            data, op, _, end, _ = q[0]
            self._take(len(data))
            parts.append(data)
        if not end:
            rest = bytearray(b"".join(parts))
            self._rmsg, self._rpos = rest, len(rest)
            return None
        self._rmsg, self._rpos = None, 0
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data.decode("utf-8") if op == _TEXT else data

    def _ahead_chunk(self, buffer: Any) -> Chunk:
        data, op, frame_end, message_end, comp = self._ahead[0]
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(data))
        view[:n] = data[:n]
        if n < len(data):
            self._ahead[0] = (data[n:], op, frame_end, message_end, comp)
            self._ahead_bytes -= n
            return make_chunk(n, op, False, False, comp)
        self._take(n)
        return make_chunk(n, op, frame_end, message_end, comp)

    def _ahead_bytes_into(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        pos, size, q = 0, len(view), self._ahead
        while q and pos < size:
            data, op, frame_end, message_end, comp = q[0]
            n = min(size - pos, len(data))
            view[pos:pos + n] = data[:n]
            pos += n
            if n < len(data):
                q[0] = (data[n:], op, frame_end, message_end, comp)
                self._ahead_bytes -= n
                break
            self._take(n)
        return pos

    # -- opening handshake ---------------------------------------------------
    async def _tls_handshake(self, open_deadline: Optional[float]) -> None:
        try:
            await asyncio.wait_for(self._run(self._step_tls, False),
                                   _open_left(open_deadline))
        except asyncio.TimeoutError as e:
            if isinstance(e, HandshakeTimeout):
                raise
            raise HandshakeTimeout("TLS handshake not complete within open_timeout") from None

    async def _client_handshake(self, host: str, path: str, protocols: Optional[str],
                                origin: Optional[str], headers: Optional[Headers],
                                open_deadline: Optional[float] = None) -> None:
        self._handshaking = True
        self._phase_handshake(None)         # no keepalive during TLS
        if self._tls is not None:
            await self._tls_handshake(open_deadline)
        self._phase_handshake(_open_left(open_deadline))
        try:
            self._c.client_start(host, path, protocols, origin, headers,
                                 deflate=self._pmd_cfg)
        except WouldBlock:
            pass
        self._arm()                         # the C handshake deadline runs
        self.response = await self._run(self._c.client_handshake, False)
        self.subprotocol = self.response.protocol
        self._agreed(self._c.client_deflate(self.response))
        self._opened()

    async def _server_handshake(self, protocols: Optional[Sequence[str]],
                                headers: Optional[Headers],
                                select_subprotocol: Optional[Callable[[Request], Optional[str]]],
                                open_deadline: Optional[float] = None) -> None:
        self._handshaking = True
        self._phase_handshake(None)
        if self._tls is not None:
            await self._tls_handshake(open_deadline)
        self._phase_handshake(_open_left(open_deadline))
        try:
            try:
                self.request = self._c.server_read_request()
            except WouldBlock:
                self._arm()                 # the deadline runs from the first step
                self.request = await self._run(self._c.server_read_request, False)
        except HandshakeError as e:
            status = e.status
            if status and not isinstance(e, HandshakeTimeout):   # 408: sent at the timeout
                try:
                    await self._run(lambda: self._c.server_reject(status), False)
                except (OSError, WebSocketError):
                    pass
            raise
        chosen = _choose_subprotocol(self.request, protocols, select_subprotocol)
        if self._pmd_cfg is not None:
            self._agreed(self._c.server_deflate(self._pmd_cfg))
        await self._run(lambda: self._c.server_accept(chosen, headers), False)
        self.subprotocol = chosen
        self._opened()

    # -- messages -------------------------------------------------------------
    async def recv(self) -> Union[str, bytes]:
        """The next whole message (str for text, bytes for binary); raises
        ConnectionClosed / ProtocolError as the blocking recv(), and
        PingTimeout once the keepalive failed (after the messages read
        before it)."""
        try:
            async with self._recv_lock:
                if self._ahead:
                    msg = self._ahead_message()
                    if msg is not None:
                        return msg
                return await self._run(self._step_recv, True)
        finally:
            self._pump_soon()

    def __aiter__(self) -> AsyncIterator[Union[str, bytes]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Union[str, bytes]]:
        while True:
            try:
                yield await self.recv()
            except ConnectionClosedOK:
                return

    async def recv_chunk_into(self, buffer: Any) -> Chunk:
        """The next piece of a message, zero-copy into ``buffer`` (a copy
        from the read-ahead when the piece was read ahead)."""
        try:
            async with self._recv_lock:
                if self._ahead:
                    return self._ahead_chunk(buffer)
                return await self._run(lambda: self._step_read_chunk(buffer), True)
        finally:
            self._pump_soon()

    async def recv_into(self, buffer: Any) -> int:
        return (await self.recv_chunk_into(buffer)).nbytes

    async def recv_piece(self) -> Piece:
        """The next piece of a message as bytes, with whether its message
        came compressed: Piece(data, opcode, frame_end, message_end,
        compressed), as the blocking recv_piece()."""
        try:
            async with self._recv_lock:
                if self._ahead:
                    t = self._ahead[0]
                    self._take(len(t[0]))
                    return Piece(*t)
                return Piece(*await self._run(self._c.recv_chunk, True))
        finally:
            self._pump_soon()

    async def send(self, data: Data, opcode: Optional[int] = None, *, fin: bool = True,
                   compress: bool = True) -> None:
        """Sends a message (str: text, bytes-like: binary); ``fin=False``
        sends a fragment, continued by the next send() calls. With
        permessage-deflate agreed, ``compress=False`` sends this message
        uncompressed (read on its first fragment)."""
        job = self._new_job(data, opcode, fin, compress)
        async with self._send_lock:
            await self._submit(job)

    async def _submit(self, job: _SendJob) -> None:
        await self._run(self._step_pending, False)
        try:
            await self._run(lambda: self._step_job(job), False)
        except asyncio.CancelledError:
            if job.started:      # the frame is under way: finish it later
                self._keep_pending(job)
                self._take_job(job)
            raise
        self._take_job(job)
        if self._deflate:
            # what the socket did not take of the compressed frames waits
            # in the C work buffer: out before send() returns
            await self._run(self._c.flush, False)

    async def send_many(self, messages: Any) -> None:
        """Several whole messages in as few writev calls as possible."""
        b = self._new_batch(messages)
        async with self._send_lock:
            await self._run(self._step_pending, False)
            try:
                await self._run(lambda: self._step_batch(b), False)
            except asyncio.CancelledError:
                if b.started:
                    self._keep_batch(b)
                raise
            if self._deflate:
                await self._run(self._c.flush, False)

    async def ping(self, data: Union[bytes, str] = b"") -> None:
        """A ping: bytes-like, or str sent as UTF-8 (TypeError otherwise)."""
        payload = _control_payload(data)
        await self._control(lambda: self._c.ping(payload))

    async def pong(self, data: Union[bytes, str] = b"") -> None:
        payload = _control_payload(data)
        await self._control(lambda: self._c.pong(payload))

    async def _control(self, fn: Callable[[], None]) -> None:
        async with self._send_lock:
            await self._run(self._step_pending, False)
            await self._run(lambda: self._step_control(fn), False)
            try:
                await self._run(self._c.flush, False)
            except InvalidUsage:
                pass

    async def flush(self) -> None:
        async with self._send_lock:
            await self._run(self._step_flush, False)

    # -- byte stream ---------------------------------------------------------
    async def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` payload bytes ignoring message boundaries; b"" at
        the end of the stream."""
        buf = bytearray(size)
        n = await self.readinto(buf)
        return bytes(memoryview(buf)[:n])

    async def readinto(self, buffer: Any) -> int:
        try:
            async with self._recv_lock:
                if self._ahead:
                    n = self._ahead_bytes_into(buffer)
                    if n or len(memoryview(buffer).cast("B")) == 0:
                        return n
                try:
                    return await self._run(lambda: self._step_read_bytes(buffer), True)
                except ConnectionClosed:
                    return 0
        finally:
            self._pump_soon()

    async def write(self, data: Any) -> int:
        """Sends ``data`` as one binary frame."""
        job = _SendJob(Opcode.BINARY, data, 0)
        async with self._send_lock:
            await self._submit(job)
        return len(memoryview(data).cast("B"))

    # -- closing -------------------------------------------------------------
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Sends a close frame, waits up to ``close_timeout`` for the
        peer's (the C stream's close deadline, kept by the loop timer;
        None: no bound), then closes the socket. Idempotent. An invalid
        ``code`` or a ``reason`` over 123 bytes in UTF-8 raises ValueError
        (InvalidUsage) before anything is sent."""
        rb = _close_args(code, reason)
        if self._fd_closed:
            return
        if self._c.error() == 0:
            self._pump_ok = False           # from now on only close() reads
            self._phase_close(self.close_timeout)
            self._arm()
        try:
            await self._close_handshake(code, rb)
        except (OSError, WebSocketError):
            pass
        finally:
            self._unregister()
            self._release()

    async def _close_handshake(self, code: int, rb: bytes) -> None:
        if self._need_close_frame():
            async with self._send_lock:
                await self._run(self._step_pending, False)
                await self._run(lambda: self._step_control(
                    lambda: self._c.close(code, rb)), False)
                self._arm()                 # the close deadline runs from here
                await self._run(self._c.flush, False)
        if self._c.closing() != 2 and self._c.error() == 0:
            buf = bytearray(16384)
            async with self._recv_lock:
                while self._c.closing() != 2:
                    try:
                        await self._run(lambda: self._c.read_bytes_into(buf), True)
                    except (ConnectionClosed, ProtocolError):
                        break
        elif self._c.closing() == 2:
            await self._run(self._c.flush, False)
        if self._tls is not None and self._c.closing() == 2:
            await self._run(self._step_close_notify, False)
        if self.client and self._sock is not None and not self._fd_closed:
            # §7.1.1: the server closes TCP first; we wait for its EOF, at
            # most 2 s (and within the close deadline: the timer releases
            # the socket there, which ends this wait).
            self._sock.shutdown(socket.SHUT_WR)
            buf = bytearray(4096)
            end = time.monotonic() + 2.0
            while True:
                try:
                    if self._sock.recv_into(buf) <= 0:
                        return
                    continue
                except BlockingIOError:
                    pass
                left = end - time.monotonic()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(self._ready(WANT_READ), left)
                except asyncio.TimeoutError:
                    return

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pump_ok = False
        super()._release()
        self._released.set()

    async def wait_closed(self) -> None:
        """Returns once the socket is released."""
        await self._released.wait()

    async def __aenter__(self) -> "WebSocket":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def _open_tcp(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    err: Optional[BaseException] = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            return sock
        except BaseException as e:
            sock.close()
            err = e
            if not isinstance(e, OSError):
                raise
    raise err if err else OSError(f"cannot resolve {host}")


async def connect(target: Any, *, host: Optional[str] = None, path: Optional[str] = None,
                  protocols: Union[None, str, Sequence[str]] = None,
                  origin: Optional[str] = None, headers: Optional[Headers] = None,
                  max_size: Optional[int] = DEFAULT_MAX_SIZE,
                  rbuf_size: int = DEFAULT_RBUF_SIZE, mask: str = "random",
                  options: int = 0,
                  close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                  ssl: Any = None, server_hostname: Optional[str] = None,
                  open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
                  ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                  ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                  idle_timeout: Optional[float] = None,
                  compression: Any = "deflate",
                  compression_threshold: Optional[int] = None) -> WebSocket:
    """Client: a ws:// or wss:// URL, or a connected socket (then
    ``host``/``path``), through the opening handshake (TLS first with
    ``ssl``, an ssl.SSLContext). ``async with await connect(url) as ws``.

    Time, with python websockets' names and defaults (seconds, None: off):
    ``open_timeout`` bounds TCP connect, TLS and handshake together
    (HandshakeTimeout, a TimeoutError); ``ping_interval`` /
    ``ping_timeout`` are keepalive (PingTimeout, code 1011, after close
    1011 went out), run by the loop even while no task awaits the
    WebSocket; ``close_timeout`` bounds close(). ``ws.latency`` is the
    last keepalive round trip. ``idle_timeout`` (None: off; lightws' own)
    closes with 1001 (IdleTimeout) when nothing came for that long.
    ``compression`` ("deflate" default, a lightws.Deflate, None) and
    ``compression_threshold`` as for lightws.connect()."""
    headers = header_list(headers)        # TypeError before any connection
    _core.deflate_config(compression, compression_threshold)   # and bad compression
    _timeout_arg(close_timeout, "close_timeout")
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    open_deadline = None if not open_timeout else time.monotonic() + open_timeout
    if isinstance(target, str):
        url = target
        thost, port, authority, upath = parse_url(url)
        try:
            target = await asyncio.wait_for(_open_tcp(thost, port), open_timeout or None)
        except asyncio.TimeoutError as e:
            if isinstance(e, WebSocketError):
                raise
            raise HandshakeTimeout("TCP connect not complete within open_timeout") from None
        host = host or authority
        path = path or upath
        if url.startswith("wss:"):
            if ssl is None:
                import ssl as _ssl
                ssl = _ssl.create_default_context()
            server_hostname = server_hostname or thost
    if ssl is not None and server_hostname is None and host:
        server_hostname = urlsplit("//" + host).hostname   # Host minus port
    ws = WebSocket(target, client=True, max_size=max_size, rbuf_size=rbuf_size,
                   mask=mask, options=options, close_timeout=close_timeout,
                   ssl=ssl, server_hostname=server_hostname,
                   ping_interval=ping_interval, ping_timeout=ping_timeout,
                   idle_timeout=idle_timeout, compression=compression,
                   compression_threshold=compression_threshold)
    try:
        await ws._client_handshake(host or "localhost", path or "/",
                                   _protocols(protocols), origin, headers, open_deadline)
    except BaseException:
        ws._unregister()
        ws._release()
        raise
    return ws


async def accept(sock: Any, *, protocols: Optional[Sequence[str]] = None,
                 headers: Optional[Headers] = None,
                 select_subprotocol: Optional[Callable[[Request], Optional[str]]] = None,
                 max_size: Optional[int] = DEFAULT_MAX_SIZE,
                 rbuf_size: int = DEFAULT_RBUF_SIZE, options: int = 0,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 ssl: Any = None,
                 open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 compression: Any = "deflate",
                 compression_threshold: Optional[int] = None) -> WebSocket:
    """Server: the opening handshake on an accepted socket (an invalid
    request is answered with its HTTP status; HandshakeError); TLS first
    with ``ssl`` (a server-side ssl.SSLContext). Timeouts as for
    connect(); a client too slow for ``open_timeout`` (a request dribbled
    byte by byte included) gets one attempt at 408 and HandshakeTimeout
    is raised. ``compression`` / ``compression_threshold`` as for
    lightws.accept()."""
    headers = header_list(headers)
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    open_deadline = None if not open_timeout else time.monotonic() + open_timeout
    ws = WebSocket(sock, client=False, max_size=max_size, rbuf_size=rbuf_size,
                   options=options, close_timeout=close_timeout, ssl=ssl,
                   ping_interval=ping_interval, ping_timeout=ping_timeout,
                   idle_timeout=idle_timeout, compression=compression,
                   compression_threshold=compression_threshold)
    try:
        await ws._server_handshake(protocols, headers, select_subprotocol, open_deadline)
    except BaseException:
        ws._unregister()
        ws._release()
        raise
    return ws


class Server:
    """What serve() returns: accepts connections until close()."""

    def __init__(self, sock: socket.socket, handler: Callable[[WebSocket], Awaitable[Any]],
                 accept_kw: dict, open_timeout: Optional[float] = None) -> None:
        self.sockets = [sock]
        self._sock = sock
        self._handler = handler
        self._kw = accept_kw
        self._open_timeout = open_timeout
        self._conns: Set["asyncio.Task[None]"] = set()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return self._sock.getsockname()[1]

    @property
    def connections(self) -> int:
        """How many connections are being served (handshake included)."""
        return len(self._conns)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        paused = False
        while not self._closing:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except asyncio.CancelledError:
                if self._closing:
                    return
                raise
            except OSError as e:
                if self._closing:
                    return
                if e.errno in _ACCEPT_TRANSIENT:
                    continue        # that connection is gone; the next one
                if e.errno not in _ACCEPT_BACKOFF:
                    raise
                # Out of descriptors or memory: the listener stays readable,
                # so retrying at once would spin. Live connections go on
                # (and free descriptors as they end); accept again later.
                if not paused:      # once per episode, not every pause
                    log.error("lightws: accept() failed: %s; pausing", e)
                    paused = True
                await asyncio.sleep(_ACCEPT_PAUSE)
                continue
            if paused:
                log.warning("lightws: accepting again")
                paused = False
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                # as connect() and the threaded server: no Nagle delay on
                # small frames (with several in flight, an echo would wait
                # for the peer's delayed ACK)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._serve_one(conn))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _serve_one(self, conn: socket.socket) -> None:
        try:
            ws = await accept(conn, open_timeout=self._open_timeout, **self._kw)
        except (OSError, WebSocketError) as e:
            log.debug("lightws: handshake failed: %r", e)
            conn.close()            # accept() closed it, unless it failed first
            return
        except BaseException:
            conn.close()
            raise
        try:
            await self._handler(ws)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            await ws.close(1001, "server shutting down")
            raise
        except ProtocolError as e:
            log.debug("lightws: protocol error: %s", e)
        except Exception:
            log.exception("lightws: connection handler failed")
            await ws.close(1011, "internal error")
        finally:
            await ws.close()

    def close(self) -> None:
        """Stops accepting and closes every connection (close code 1001)."""
        if self._closing:
            return
        self._closing = True
        self._task.cancel()
        try:
            self._sock.close()
        except OSError:
            pass
        for t in list(self._conns):
            t.cancel()

    async def wait_closed(self) -> None:
        """Waits until the listener and all connections are done."""
        tasks = [self._task, *self._conns]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


async def serve(handler: Callable[[WebSocket], Awaitable[Any]], host: Optional[str] = "127.0.0.1",
                port: int = 0, *, backlog: int = 128,
                open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
                **accept_kw: Any) -> Server:
    """Listens on (host, port) and runs ``await handler(ws)`` for every
    websocket connection (the socket closes when the handler returns).
    ``accept_kw`` go to accept() (protocols, headers, max_size...) and are
    checked here, as are the headers: a bad one fails serve(), not every
    handshake. ``open_timeout`` bounds each opening handshake (None:
    no bound), so silent clients cannot hold descriptors for good (a
    client dribbling its request gets 408 at the deadline);
    ``ping_interval``, ``ping_timeout`` (keepalive) and ``close_timeout``
    go to accept() with websockets' defaults (20, 20, 10). When
    accept() runs out of descriptors (EMFILE) the server pauses
    accepting briefly instead of failing; live connections go on."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    if open_timeout == 0:
        raise ValueError("open_timeout must be None or > 0")
    if "headers" in accept_kw:
        accept_kw["headers"] = header_list(accept_kw["headers"], check=True)
    # A misspelt option fails here, not later in every connection's task.
    inspect.signature(accept).bind(None, open_timeout=None, **accept_kw)
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    sock = socket.create_server((host or "", port), family=family, backlog=backlog)
    sock.setblocking(False)
    return Server(sock, handler, accept_kw, open_timeout)
