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
import codecs
import collections
import inspect
import logging
import socket
import time
import uuid
from typing import (Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Deque, Dict,
                    Generator, Iterable, List, Optional, Sequence, Set, Tuple, Union)
from urllib.parse import urlsplit

from . import parse_url, _protocols
from . import _core, _compat
from ._conn import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT,
                    DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_RBUF_SIZE,
                    WANT_READ, WANT_WRITE, BaseWebSocket, Data, _Batch, _choose_subprotocol,
                    _close_args, _control_payload, _open_left, _SendJob, _timeout_arg)
from ._core import (Chunk, HeaderList, Headers, Piece, Request, Response, State,
                    header_list, make_chunk)
from .server import _ACCEPT_BACKOFF, _ACCEPT_PAUSE, _ACCEPT_TRANSIENT
from .errors import (Close, ConnectionClosed,
                     ConnectionClosedOK, HandshakeError, HandshakeTimeout,
                     InvalidHandshake, InvalidOrigin, InvalidStatus, InvalidUsage, Opcode,
                     ProtocolError, WebSocketError, WouldBlock, closed_error)

__all__ = ["WebSocket", "ClientConnection", "ServerConnection", "connect", "accept",
           "serve", "Server", "broadcast", "State"]

log = logging.getLogger("lightws")


#: read-ahead budget charged per chunk besides its bytes, so a flood of
#: empty frames is bounded too
_AHEAD_ENTRY = 64
_TEXT = int(Opcode.TEXT)
_PING = int(Opcode.PING)
_END = object()     # end of an iterable sent as fragments
DEFAULT_WRITE_LIMIT = 2 ** 15   # websockets' write_limit default
_BINARY = int(Opcode.BINARY)
#: request errors of a complete GET head that is no upgrade: process_request
#: sees those requests (a health check on the websocket port)
_NOT_UPGRADE = frozenset(("NO_UPGRADE", "NO_CONNECTION", "BAD_KEY", "BAD_VERSION"))


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

    _server_header: Optional[str] = None

    def __init__(self, sock: Any, *, client: bool,
                 loop: Optional[asyncio.AbstractEventLoop] = None,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 logger: Any = None, **kw: Any) -> None:
        close_timeout = _timeout_arg(close_timeout, "close_timeout")   # None: no bound
        super().__init__(sock, client=client, **kw)
        #: websockets' ``id`` (a uuid4 naming the connection in logs),
        #: ``logger``, ``remote_address`` and ``local_address``
        self.id: uuid.UUID
        self.logger: Any
        self.remote_address: Any
        self.local_address: Any
        _compat.adopt_identity(self, client, logger, self._sock)
        # ping() waiters, in sending order: payload -> (future, time sent)
        self._pings: Dict[bytes, Tuple["asyncio.Future[float]", float]] = {}
        self._user_latency = (0.0, -1)      # (seconds, C rtt when measured)
        self._c.on_pong = self._on_pong
        self._close_sent: Optional[Close] = None     # what close() sent
        self._closer: Optional["asyncio.Task[None]"] = None   # ends it after the peer's close
        self._ended = False         # a call met the end of the connection
        # send() of whole messages on a plain, uncompressed connection
        # queues here and returns (websockets' write buffer): one
        # lightws_stream_sendv per loop iteration writes them all
        self._wq: List[Tuple[int, Any]] = []
        self._wq_bytes = 0
        self._wq_armed = False
        self._wq_error: Optional[BaseException] = None
        self.write_limit = DEFAULT_WRITE_LIMIT
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
        self._ahead_msgs = 0            # whole messages among them
        #: read ahead at most this many whole messages (websockets'
        #: max_queue; None: no count, only read_ahead_limit's bytes)
        self.max_queue: Optional[int] = None
        #: read ahead at most this many bytes (then TCP back-pressures the peer)
        self.read_ahead_limit: int = kw.get("rbuf_size", DEFAULT_RBUF_SIZE)
        self._pump_ok = False           # open, and reading ahead allowed
        self._pump_later = False        # a read-ahead waits for the loop's next turn
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
        """Reads ahead if no read call runs (after every read call): at
        the end of this loop iteration, not now, so that a handler that
        calls recv() again at once (an echo) takes its next message
        straight from the receive buffer (recv's fast path)."""
        if (self._pump_later or not self._pump_ok or self._pump_read or self._pump_armed
                or self._fd_closed):
            return
        self._pump_later = True
        self._loop.call_soon(self._pump_deferred)

    def _pump_deferred(self) -> None:
        self._pump_later = False
        self._pump_soon_now()

    def _pump_soon_now(self) -> None:
        if (not self._pump_ok or self._pump_read or self._pump_armed
                or self._fd_closed or self._recv_lock.locked()):
            return
        if self._tls is None and self._c.read_idle():
            self._pump_wait(WANT_READ)
        else:
            self._pump()

    def _pump(self) -> None:
        if not self._pump_ok or self._fd_closed or self._recv_lock.locked():
            return
        c, q = self._c, self._ahead
        mq = self.max_queue
        while self._ahead_bytes < self.read_ahead_limit and (mq is None or self._ahead_msgs < mq):
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
                # reports it once the chunks read ahead are taken. The
                # connection ends itself as in websockets (a server
                # closes TCP now; wait_closed() returns).
                self._pump_ok = False
                if self._closer is None:
                    self._closer = self._loop.create_task(self.close())
                return
            if not chunk[0] and not chunk[2]:
                continue            # direct mode: a call without progress
            q.append(chunk)
            self._ahead_bytes += len(chunk[0]) + _AHEAD_ENTRY
            if chunk[3]:
                self._ahead_msgs += 1
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
        if self._ahead.popleft()[3]:
            self._ahead_msgs -= 1
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
                                select_subprotocol: Optional[Callable[..., Optional[str]]],
                                open_deadline: Optional[float] = None,
                                hooks: Optional[Dict[str, Any]] = None) -> None:
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
            hook = (hooks or {}).get("process_request")
            req = getattr(e, "request", None)
            if hook is not None and req is not None and e.errname in _NOT_UPGRADE:
                # a plain HTTP GET (GET /healthz): process_request may
                # answer it, as in websockets, before the upgrade checks
                self.request = req
                resp = await self._call_hook(hook, self, req)
                if resp is not None:
                    await self._reject(resp)
                    raise _Rejected(resp) from None
            status = e.status
            if status and not isinstance(e, HandshakeTimeout):   # 408: sent at the timeout
                try:
                    await self._run(lambda: self._c.server_reject(status), False)
                except (OSError, WebSocketError):
                    pass
            raise
        h = hooks or {}
        server_header = h.get("server_header")
        extra = list(headers or [])
        if server_header:
            extra.append(("Server", server_header))
        origins = h.get("origins")
        if origins is not None and not _compat.origin_ok(self.request.origin, origins):
            await self._reject(self.respond(403, "Failed to open a WebSocket connection: "
                                                 "invalid Origin header.\n"))
            raise InvalidOrigin(f"invalid Origin header: {self.request.origin}",
                                "BAD_ORIGIN", 0, 403)
        hook = h.get("process_request")
        if hook is not None:
            resp = await self._call_hook(hook, self, self.request)
            if resp is not None:
                await self._reject(resp)
                raise _Rejected(resp)
        select = _compat.select_adapter(select_subprotocol, self)
        if select is not None:
            chosen = await self._call_hook(_choose_subprotocol, self.request, protocols, select)
        else:
            chosen = _choose_subprotocol(self.request, protocols, None)
        if self._pmd_cfg is not None:
            self._agreed(self._c.server_deflate(self._pmd_cfg))
        hook = h.get("process_response")
        if hook is not None:
            resp101 = _compat.response_101(self.request.key, chosen,
                                           str(self.extensions[0]) if self.extensions else None,
                                           extra)
            out = await self._call_hook(hook, self, self.request, resp101)
            if out is not None and out.status_code != 101:
                await self._reject(out)
                raise _Rejected(out)
            self._resp101 = out if out is not None else resp101
            extra = _compat.extra_of_101(self._resp101)
        await self._run(lambda: self._c.server_accept(chosen, extra), False)
        self._extra101 = extra
        self.subprotocol = chosen
        self._opened()

    async def _call_hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        """process_request / process_response, plain or coroutine; one that
        raises gets 500 sent, as in websockets, and the error goes on."""
        try:
            out = hook(*args)
            if inspect.isawaitable(out):
                out = await out
            return out
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            await self._reject(self.respond(500, "Failed to open a WebSocket connection.\n"
                                                 "See server log for more information.\n"))
            raise

    def respond(self, status: int, text: str) -> Response:
        """An HTTP response with a plain text body, for process_request to
        return (websockets' ServerConnection.respond)."""
        return _compat.make_response(int(status), text, self._server_header)

    async def _reject(self, resp: Any) -> None:
        """Writes an HTTP response instead of the 101 (process_request,
        origins), then the caller drops the connection."""
        self.response = resp     # as websockets: the response sent
        data = _compat.serialize(resp)
        if self._tls is not None:
            tls = self._tls

            def step() -> None:
                with self._c.lock:
                    tls.obj.write(data)
            step()
            while self._tls_output():
                await self._ready(WANT_WRITE)
            return
        view = memoryview(data)
        assert self._sock is not None
        while view:
            try:
                n = self._sock.send(view)
                view = view[n:]
            except (BlockingIOError, InterruptedError):
                await self._ready(WANT_WRITE)
            except OSError:
                return

    # -- messages -------------------------------------------------------------
    async def recv(self, decode: Optional[bool] = None) -> Union[str, bytes]:
        """The next whole message (str for text, bytes for binary); raises
        ConnectionClosed / ProtocolError as the blocking recv(), and
        PingTimeout once the keepalive failed (after the messages read
        before it). ``decode`` as websockets: True returns binary
        messages as str (UTF-8), False text ones as bytes."""
        try:
            msg = None
            if (not self._ahead and self._rmsg is None and self._tls is None
                    and not self._recv_lock.locked()):
                # fast path: a whole message already in the receive
                # buffer, taken without the lock or a task switch
                r = self._c.recv_msg()
                if r is not None:
                    data, op, end = r
                    if end and op != _PING:
                        msg = data.decode("utf-8") if op == _TEXT else data
                    else:
                        try:
                            msg = self._recv_first(data, op, end)
                        except WouldBlock:
                            pass
            if msg is None:
                async with self._recv_lock:
                    if self._ahead:
                        msg = self._ahead_message()
                    if msg is None:
                        msg = await self._run(self._step_recv, True)
        except ConnectionClosed as e:      # ProtocolError included (lightws sent the close)
            raise self._closed(e)
        finally:
            if not self._pump_later:
                self._pump_soon()
        if decode is None:
            return msg
        if decode and msg.__class__ is not str:
            return bytes(msg).decode("utf-8")
        if not decode and msg.__class__ is str:
            return msg.encode("utf-8")      # type: ignore[union-attr]
        return msg

    async def recv_streaming(self, decode: Optional[bool] = None
                             ) -> AsyncIterator[Union[str, bytes]]:
        """The next message in pieces as they arrive (websockets'
        recv_streaming): str pieces for text (decoded incrementally, a
        character split across frames waits for its end), bytes for
        binary; ``decode`` as for recv(). The pieces are lightws' chunks
        (one frame or part of one), not always whole frames."""
        dec = None
        first = True
        while True:
            try:
                piece = await self.recv_piece()
            except ConnectionClosed as e:
                raise self._closed(e)
            if first:
                text = piece.opcode == _TEXT
                want_str = text if decode is None else decode
                if want_str:
                    dec = codecs.getincrementaldecoder("utf-8")()
                first = False
            if dec is not None:
                out: Union[str, bytes] = dec.decode(piece.data, piece.message_end)
            else:
                out = piece.data
            if out or piece.message_end:
                yield out
            if piece.message_end:
                return

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

    async def send(self, data: Union[Data, Iterable[Data], AsyncIterable[Data]],
                   opcode: Optional[int] = None, *, fin: bool = True,
                   compress: bool = True, text: Optional[bool] = None) -> None:
        """Sends a message (str: text, bytes-like: binary); ``fin=False``
        sends a fragment, continued by the next send() calls. With
        permessage-deflate agreed, ``compress=False`` sends this message
        uncompressed (read on its first fragment).

        As websockets: an iterable or async iterable of str (or of
        bytes-like) sends one fragmented message, one frame per item (the
        last item's frame ends it; an empty iterable sends nothing);
        ``text=True`` sends bytes as a text frame, ``text=False`` str as
        binary. A dict is TypeError. Sending into a connection the peer
        closed raises ConnectionClosed with the peer's code, also when the
        socket broke under the send (EPIPE, ECONNRESET)."""
        if text is not None and opcode is None:
            opcode = Opcode.TEXT if text else Opcode.BINARY
        cls = data.__class__
        if (cls is bytes or cls is str) and fin and opcode is None and not self._frag_opcode \
                and self._wq_ok:
            # queued, written by one sendv with the others of this loop
            # iteration (websockets' write buffer, up to write_limit)
            if self._wq_error is not None:
                raise self._closed(self._wq_error) from None
            if self._ended or self._closer is not None or self._close_sent is not None:
                code = self._c.close_code() or 1006
                raise self._closed(closed_error(code, self._c.close_reason() if code != 1006 else ""))
            if cls is str:
                self._wq.append((_TEXT, data.encode("utf-8")))  # type: ignore[union-attr]
            else:
                self._wq.append((_BINARY, data))
            self._wq_bytes += len(data)
            if not self._wq_armed:
                self._wq_armed = True
                self._loop.call_soon(self._flush_wq)
            if self._wq_bytes > self._write_limit:
                try:
                    async with self._send_lock:
                        await self._run(self._step_pending, False)
                except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
                    raise self._closed(e) from None
            return
        if isinstance(data, (str, bytes, bytearray, memoryview)):
            job = self._new_job(data, opcode, fin, compress)
            try:
                async with self._send_lock:
                    await self._submit(job)
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
                raise self._closed(e) from None
            return
        if isinstance(data, dict) or hasattr(data, "keys"):
            raise TypeError("data is a dict-like object")
        if hasattr(data, "__aiter__"):
            ait: Any = data.__aiter__()     # type: ignore[union-attr]

            async def nxt() -> Any:
                try:
                    return await ait.__anext__()
                except StopAsyncIteration:
                    return _END
        elif hasattr(data, "__iter__"):
            it = iter(data)                 # type: ignore[arg-type]

            async def nxt() -> Any:
                return next(it, _END)
        else:
            try:
                memoryview(data)            # type: ignore[arg-type]
            except TypeError:
                raise TypeError(f"data must be str, bytes-like or an iterable, "
                                f"not {type(data).__name__}") from None
            return await self.send(memoryview(data), opcode, fin=fin,  # type: ignore[arg-type]
                                   compress=compress)
        await self._send_fragments(nxt, opcode, compress)

    async def _send_fragments(self, nxt: Callable[[], Awaitable[Any]],
                              opcode: Optional[int], compress: bool) -> None:
        cur = await nxt()
        if cur is _END:
            return
        kind = str if isinstance(cur, str) else bytes
        async with self._send_lock:
            started = False
            try:
                while True:
                    following = await nxt()
                    last = following is _END
                    if not last:
                        if isinstance(following, str) != (kind is str):
                            raise TypeError("iterable must contain only str or only bytes-like")
                    await self._submit(self._new_job(cur, opcode, last, compress))
                    started = True
                    if last:
                        return
                    cur = following
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
                raise self._closed(e) from None
            except BaseException:
                if started and self._frag_opcode:
                    # a message cut in the middle cannot be finished:
                    # websockets closes with 1011 too
                    self._loop.create_task(self.close(1011, "error in fragmented message"))
                raise

    @property
    def write_limit(self) -> int:
        """Bytes send() may leave queued before it waits (websockets'
        write_limit; 0: every send() waits until its frame is written)."""
        return self._write_limit

    @write_limit.setter
    def write_limit(self, value: int) -> None:
        self._write_limit = int(value)
        self._wq_ok = self._write_limit > 0 and not self._deflate and self._tls is None

    @property
    def pending(self) -> bool:
        """True while something send() accepted is not fully written: the
        send queue included (flush() writes it)."""
        return bool(self._wq) or BaseWebSocket.pending.fget(self)  # type: ignore[attr-defined]

    def _agreed(self, params: Any) -> None:
        BaseWebSocket._agreed(self, params)
        self.write_limit = self._write_limit       # compressed: no queue

    def _step_pending(self) -> None:
        """Writes the send() queue (in order, before anything else of
        ours), then what an interrupted send left."""
        if self._wq:
            if self._pending is not None:
                BaseWebSocket._step_pending(self)
            q = self._wq
            self._wq, self._wq_bytes = [], 0
            b = _Batch(q)
            try:
                self._step_batch(b)
            except BaseException:
                self._keep_batch(b)     # the rest, in order, before anything else
                raise
            return BaseWebSocket._step_pending(self)
        BaseWebSocket._step_pending(self)

    def _flush_wq(self) -> None:
        """Loop callback: writes what send() queued this iteration."""
        self._wq_armed = False
        if self._send_lock.locked() or self._fd_closed:
            return          # a sending task writes the queue first
        if not self._wq and self._pending is None:
            return
        try:
            self._step_pending()
        except WouldBlock:
            self._wq_armed = True
            fut = self._ready(WANT_WRITE)
            fut.add_done_callback(self._wq_ready)
        except (OSError, WebSocketError) as e:
            self._wq_error = e

    def _wq_ready(self, fut: "asyncio.Future[None]") -> None:
        self._wq_armed = False
        if not fut.cancelled() and fut.exception() is None:
            self._flush_wq()

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

    async def ping(self, data: Union[bytes, str, None] = None) -> "asyncio.Future[float]":
        """Sends a ping: bytes-like, or str sent as UTF-8 (TypeError
        otherwise); None (default) sends 4 random bytes. Returns, as
        websockets, a future that resolves to the latency in seconds
        once the matching pong came (a pong also answers every earlier
        ping); ``await ws.ping()`` sends, ``await (await ws.ping())``
        waits for the pong. ConcurrencyError while a ping with the same
        payload waits; the future fails with ConnectionClosed if the
        connection closes first."""
        payload = _compat.ping_payload(self._pings, data)
        fut: "asyncio.Future[float]" = self._loop.create_future()
        self._pings[payload] = (fut, time.monotonic())
        try:
            await self._control(lambda: self._c.ping(payload))
        except BaseException as e:
            self._pings.pop(payload, None)
            if isinstance(e, (ConnectionClosed, BrokenPipeError, ConnectionResetError)):
                raise self._closed(e) from None
            raise
        return fut

    def _on_pong(self, data: bytes) -> None:
        """A pong came (called by CStream under its lock: no C call here):
        it answers its ping and every one sent before it."""
        def answer(fut: "asyncio.Future[float]", seconds: float) -> None:
            if not fut.done():
                fut.set_result(seconds)

        rt = _compat.pong_arrived(self._pings, data, answer)
        if rt is not None:
            self._user_latency = (rt, self._c.rtt())

    @property
    def latency(self) -> float:
        """Round trip of the last ping answered (a keepalive one or one of
        ping()), in seconds; 0.0 before the first, as websockets'."""
        return _compat.latency(self._user_latency, self._c.rtt())

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED (websockets' State)."""
        if self._handshaking:
            return State.CONNECTING
        c = self._c
        if self._fd_closed or c.closing() == 2 or c.error() != 0:
            return State.CLOSED
        if c.closing() or c.close_code() or self._close_sent is not None:
            return State.CLOSING
        return State.OPEN

    def _closed(self, err: BaseException) -> ConnectionClosed:
        """The ConnectionClosed to raise for ``err`` (a ConnectionClosed,
        or a socket broken under a send), with the peer's close read if it
        was already in the socket, and rcvd/sent filled as websockets."""
        self._ended = True
        if not isinstance(err, ConnectionClosed):
            self._read_close_now()
            code = self._c.close_code() or 1006
            e = closed_error(code, self._c.close_reason() if code != 1006 else "")
        else:
            e = err
        if e.sent is None:
            e.sent = self._close_sent or self._echo_sent()
        if e.rcvd is not None and e.sent is not None and e.rcvd_then_sent is None:
            e.rcvd_then_sent = self._close_sent is None
        return e

    def _echo_sent(self) -> Optional[Close]:
        """The close lightws sent on its own: the echo of the peer's, or
        the code of the error that failed the stream."""
        c = self._c
        err = c.error()
        if err:
            code = _core.close_code_for(err)
            return Close(code, "") if code and code != 1006 else None
        if c.closing() == 2:
            code = c.close_code()
            return Close(code if code not in (1005, 1006) else 1000, "")
        return None

    def _read_close_now(self) -> None:
        """A send met a broken socket: the peer's close (1009 for a message
        too big...) may wait unread in the socket; read it now, keeping
        data for recv()."""
        if self._recv_lock.locked() or self._fd_closed:
            return
        for _ in range(64):
            try:
                chunk = self._c.recv_chunk()
            except (WouldBlock, OSError, WebSocketError):
                return
            if chunk[0] or chunk[2]:
                self._ahead.append(chunk)
                self._ahead_bytes += len(chunk[0]) + _AHEAD_ENTRY
                if chunk[3]:
                    self._ahead_msgs += 1

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
                except ConnectionClosed as e:
                    if isinstance(e, ProtocolError):
                        raise       # a broken stream is no end of stream
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
        if self._close_sent is None and self._need_close_frame():
            self._close_sent = Close(code, reason)
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
        self._ended = True
        super()._release()
        self._released.set()
        if self._pings:
            pings, self._pings = self._pings, {}
            code = self._c.close_code() or 1006
            for fut, _ in pings.values():
                if not fut.done():
                    fut.set_exception(closed_error(code, ""))
                    fut.exception()     # retrieved: no "never retrieved" log

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


class _Rejected(InvalidHandshake):
    """Server: process_request (or process_response) answered with an HTTP
    response instead of the 101; ``response`` is what was sent."""

    def __init__(self, response: Any) -> None:
        super().__init__(f"rejected with HTTP {response.status_code}")
        self.response = response


class ClientConnection(WebSocket):
    """A client connection (websockets' ClientConnection): what connect()
    gives. ``request`` is the upgrade request as sent (without the key,
    which the C core makes), ``response`` the server's 101."""

    _sent_request: Optional[Request] = None

    @property
    def request(self) -> Optional[Request]:      # type: ignore[override]
        return self._sent_request

    @request.setter
    def request(self, value: Optional[Request]) -> None:
        self._sent_request = value


class ServerConnection(WebSocket):
    """A server connection (websockets' ServerConnection): what serve()
    hands to the handler. ``request`` is the client's upgrade request,
    ``response`` the 101 sent (or the rejection process_request chose),
    ``respond(status, text)`` makes a response for process_request."""

    _response: Any = None
    _resp101: Any = None
    _extra101: List[Tuple[str, str]] = []

    @property
    def response(self) -> Any:                   # type: ignore[override]
        if (self._response is None and self._resp101 is None and self.request is not None
                and not self._handshaking and not self._fd_closed):
            self._resp101 = _compat.response_101(
                self.request.key, self.subprotocol,
                str(self.extensions[0]) if self.extensions else None, self._extra101)
        return self._response if self._response is not None else self._resp101

    @response.setter
    def response(self, value: Any) -> None:
        self._response = value


async def _open_client(target: Any, *, cls: Any = None, host: Optional[str] = None,
                       path: Optional[str] = None,
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
                       compression_threshold: Optional[int] = None,
                       user_agent_header: Optional[str] = None,
                       logger: Any = None, max_queue: Optional[int] = None,
                       write_limit: int = DEFAULT_WRITE_LIMIT) -> WebSocket:
    """One connection attempt (connect() adds redirects and reconnects)."""
    headers = header_list(headers)        # TypeError before any connection
    if user_agent_header:
        headers.append(("User-Agent", user_agent_header))
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
    ws = (cls or ClientConnection)(
        target, client=True, max_size=max_size, rbuf_size=rbuf_size,
        mask=mask, options=options, close_timeout=close_timeout,
        ssl=ssl, server_hostname=server_hostname,
        ping_interval=ping_interval, ping_timeout=ping_timeout,
        idle_timeout=idle_timeout, compression=compression,
        compression_threshold=compression_threshold, logger=logger)
    _apply_max_queue(ws, max_queue)
    ws.write_limit = write_limit
    h, p = host or "localhost", path or "/"
    try:
        await ws._client_handshake(h, p, _protocols(protocols), origin, headers, open_deadline)
    except BaseException:
        ws._unregister()
        ws._release()
        raise
    if isinstance(ws, ClientConnection):
        sent = HeaderList([("Host", h), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                           ("Sec-WebSocket-Version", "13")])
        if origin:
            sent.append(("Origin", origin))
        offered = _protocols(protocols)
        if offered:
            sent.append(("Sec-WebSocket-Protocol", offered))
        sent.extend(headers)
        ws.request = Request("GET", p, h, "", origin, offered, None, 13, sent, 0)
    return ws


def _apply_max_queue(ws: WebSocket, max_queue: Optional[int]) -> None:
    """websockets' max_queue: the read-ahead stops at that many whole
    messages; its bytes stay bounded too (read_ahead_limit: the receive
    buffer's size, or max_queue x 4 KiB when more). None: no count, and
    up to max_size bytes."""
    if max_queue is None or max_queue <= 0:
        ws.max_queue = None
        ws.read_ahead_limit = max(ws.read_ahead_limit, min(ws.max_size, 1 << 30))
    else:
        ws.max_queue = max_queue
        ws.read_ahead_limit = max(ws.read_ahead_limit, max_queue * 4096)


_CLIENT_KW = frozenset(inspect.signature(_open_client).parameters) - {"target", "cls"}


class connect:
    """Opens a client connection, as websockets' connect(): ``await
    connect(uri)``, ``async with connect(uri) as ws``, and ``async for ws
    in connect(uri)`` (reconnects with websockets' back-off after a
    connection ends with an error or an attempt fails with a network
    error, a timeout or a 5xx status).

    ``uri`` is a ws:// or wss:// URI, or a connected socket (also as
    ``sock=``; then ``host``/``path`` give the request). Keywords with
    websockets' names and defaults: ``additional_headers`` (also
    ``extra_headers``, lightws' ``headers``), ``subprotocols`` (lightws'
    ``protocols``), ``origin``, ``compression`` ("deflate"),
    ``open_timeout`` (10), ``ping_interval`` (20), ``ping_timeout`` (20),
    ``close_timeout`` (10), ``max_size`` (1 MiB), ``max_queue`` (16),
    ``write_limit`` (accepted), ``user_agent_header`` ("Python/x.y
    lightws/v"; None: none), ``process_exception``, ``logger``, ``ssl``,
    ``server_hostname``; and lightws' own (``rbuf_size``, ``mask``,
    ``options``, ``idle_timeout``, ``compression_threshold``).

    A 3xx answer with a Location is followed (up to 10 times, never from
    wss:// to ws://: SecurityError); one that is not followed raises
    InvalidStatus, whose ``response.headers["Location"]`` (also
    ``location``) tells where it pointed."""

    def __init__(self, uri: Any = None, **kw: Any) -> None:
        if "sock" in kw:
            if uri is not None and not isinstance(uri, str):
                raise TypeError("pass a socket as uri or as sock=, not both")
            sock = kw.pop("sock")
            if isinstance(uri, str) and sock is not None:
                u = urlsplit(uri)
                kw.setdefault("host", u.netloc)
                kw.setdefault("path", (u.path or "/") + (f"?{u.query}" if u.query else ""))
            uri = sock
        if uri is None:
            raise TypeError("connect() needs a URI or a socket")
        kw = _compat.normalize(kw)
        self._process_exception = kw.pop("process_exception", _compat.process_exception)
        kw.setdefault("max_size", _compat.WS_MAX_SIZE)
        kw.setdefault("user_agent_header", _compat.default_agent())
        unknown = set(kw) - _CLIENT_KW
        if unknown:
            raise TypeError(f"connect() got unexpected keyword arguments {sorted(unknown)}")
        header_list(kw.get("headers"))          # TypeError now, not at the await
        self.uri = uri
        self._kw = kw
        self.connection: Optional[ClientConnection] = None

    async def _open(self) -> ClientConnection:
        uri = self.uri
        for _ in range(_compat.MAX_REDIRECTS + 1):
            try:
                ws = await _open_client(uri, **self._kw)
            except InvalidStatus as e:
                if not isinstance(uri, str):
                    raise               # a socket given: nowhere else to go
                new = _compat.redirect_target(uri, e)
                if new is None:
                    raise
                uri = new
                continue
            assert isinstance(ws, ClientConnection)
            self.connection = ws
            return ws
        raise _compat.too_many_redirects()

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self

    async def __aexit__(self, *exc: Any) -> None:
        if self.connection is not None:
            await self.connection.close()

    def __aiter__(self) -> AsyncIterator[ClientConnection]:
        return self._reconnecting()

    async def _reconnecting(self) -> AsyncIterator[ClientConnection]:
        delays: Optional[Any] = None
        while True:
            try:
                ws = await self
            except Exception as e:
                out = self._process_exception(e)
                if out is not None:
                    if out is e:
                        raise
                    raise out from e
                if delays is None:
                    delays = _compat.backoff()
                delay = next(delays)
                log.info("connect failed; reconnecting in %.1f seconds: %s", delay, e)
                await asyncio.sleep(delay)
                continue
            delays = None
            try:
                yield ws
            except GeneratorExit:
                await ws.close()
                raise
            await ws.close()


async def accept(sock: Any, *, protocols: Optional[Sequence[str]] = None,
                 headers: Optional[Headers] = None,
                 select_subprotocol: Optional[Callable[..., Optional[str]]] = None,
                 max_size: Optional[int] = DEFAULT_MAX_SIZE,
                 rbuf_size: int = DEFAULT_RBUF_SIZE, options: int = 0,
                 close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
                 ssl: Any = None,
                 open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
                 ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
                 ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
                 idle_timeout: Optional[float] = None,
                 compression: Any = "deflate",
                 compression_threshold: Optional[int] = None,
                 origins: Optional[Sequence[Any]] = None,
                 process_request: Optional[Callable[..., Any]] = None,
                 process_response: Optional[Callable[..., Any]] = None,
                 server_header: Optional[str] = None,
                 logger: Any = None, max_queue: Optional[int] = 16,
                 write_limit: int = DEFAULT_WRITE_LIMIT, cls: Any = None) -> WebSocket:
    """Server: the opening handshake on an accepted socket (an invalid
    request is answered with its HTTP status; HandshakeError); TLS first
    with ``ssl`` (a server-side ssl.SSLContext). Timeouts as for
    connect(); a client too slow for ``open_timeout`` (a request dribbled
    byte by byte included) gets one attempt at 408 and HandshakeTimeout
    is raised. ``compression`` / ``compression_threshold`` as for
    lightws.accept(). websockets' hooks: ``origins`` (403 for an Origin
    not in it), ``process_request(connection, request)`` (a Response
    returned is sent instead of the 101 and InvalidHandshake raised),
    ``process_response(connection, request, response)``,
    ``select_subprotocol(connection, subprotocols)`` (or lightws'
    ``select_subprotocol(request)``), ``server_header`` (None: none)."""
    headers = header_list(headers)
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    open_deadline = None if not open_timeout else time.monotonic() + open_timeout
    ws = (cls or ServerConnection)(
        sock, client=False, max_size=max_size, rbuf_size=rbuf_size,
        options=options, close_timeout=close_timeout, ssl=ssl,
        ping_interval=ping_interval, ping_timeout=ping_timeout,
        idle_timeout=idle_timeout, compression=compression,
        compression_threshold=compression_threshold, logger=logger)
    _apply_max_queue(ws, max_queue)
    ws.write_limit = write_limit
    ws._server_header = server_header
    hooks = None
    if origins is not None or process_request or process_response or server_header:
        hooks = {"origins": origins, "process_request": process_request,
                 "process_response": process_response, "server_header": server_header}
    try:
        await ws._server_handshake(protocols, headers, select_subprotocol, open_deadline,
                                   hooks)
    except BaseException:
        ws._unregister()
        ws._release()
        raise
    return ws


class Server:
    """What serve() gives (websockets' Server): accepts connections until
    close(). ``connections`` is the set of open ServerConnections
    (len() for how many), ``sockets`` the listening sockets, ``port``
    the bound port."""

    def __init__(self, sock: socket.socket, handler: Callable[[Any], Awaitable[Any]],
                 accept_kw: Dict[str, Any], open_timeout: Optional[float] = None,
                 start: bool = True) -> None:
        self.sockets = [sock]
        self._sock = sock
        self._handler = handler
        self._kw = accept_kw
        self._open_timeout = open_timeout
        self._conns: Set["asyncio.Task[None]"] = set()
        #: the connections being served (handshake done), as websockets'
        self.connections: Set[ServerConnection] = set()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._task: Optional["asyncio.Task[None]"] = None
        self._closed_ev = asyncio.Event()
        self.logger = logging.getLogger("websockets.server")
        if start:
            self._start()

    def _start(self) -> None:
        if self._task is None and not self._closing:
            self._task = self._loop.create_task(self._accept_loop())

    async def start_serving(self) -> None:
        """Starts accepting (serve() already did, unless start_serving=False)."""
        self._start()

    def is_serving(self) -> bool:
        return self._task is not None and not self._closing

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._sock.getsockname()[1])

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
        except Exception as e:      # a hook's error: answered 500 and logged
            log.debug("lightws: handshake failed: %r", e)
            conn.close()
            return
        except BaseException:
            conn.close()
            raise
        assert isinstance(ws, ServerConnection)
        self.connections.add(ws)
        try:
            await self._handler(ws)
        except ProtocolError as e:
            log.debug("lightws: protocol error: %s", e)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            await ws.close(1001, "server shutting down")
            raise
        except Exception:
            ws.logger.error("connection handler failed", exc_info=True)
            await ws.close(1011, "internal error")
        finally:
            self.connections.discard(ws)
            await ws.close()

    def close(self, close_connections: bool = True) -> None:
        """Stops accepting and, unless ``close_connections`` is False,
        closes every connection (close code 1001)."""
        if self._closing:
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()
        try:
            self._sock.close()
        except OSError:
            pass
        if close_connections:
            for t in list(self._conns):
                t.cancel()
        self._closed_ev.set()

    async def wait_closed(self) -> None:
        """Waits until the listener and all connections are done."""
        await self._closed_ev.wait()
        tasks = [t for t in (self._task, *self._conns) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Accepts until close() (or cancellation, which closes)."""
        self._start()
        try:
            await self._closed_ev.wait()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


_ACCEPT_KW = frozenset(inspect.signature(accept).parameters) - {"sock", "open_timeout", "cls"}


class serve:
    """Listens on (host, port) and runs ``await handler(connection)`` for
    each websocket connection, as websockets' serve(): ``server = await
    serve(...)`` or ``async with serve(...) as server: await
    server.serve_forever()``. The connection closes (1000) when the
    handler returns, with 1011 when it raises.

    Keywords with websockets' names and defaults: ``origins``,
    ``subprotocols`` (lightws' ``protocols``), ``select_subprotocol``,
    ``compression`` ("deflate"), ``process_request``, ``process_response``,
    ``server_header`` ("Python/x.y lightws/v"; None: none),
    ``open_timeout`` (10), ``ping_interval`` (20), ``ping_timeout`` (20),
    ``close_timeout`` (10), ``max_size`` (1 MiB), ``max_queue`` (16),
    ``write_limit`` (accepted), ``logger``, ``ssl``, ``sock`` (a
    listening socket), ``backlog``, ``start_serving``; lightws' own
    (``headers``, also websockets' ``additional_headers``, ``rbuf_size``,
    ``options``, ``idle_timeout``, ``compression_threshold``). They are
    checked here: a misspelt one fails serve(), not every handshake.
    When accept() runs out of descriptors (EMFILE) the server pauses
    accepting briefly; live connections go on."""

    def __init__(self, handler: Callable[[Any], Awaitable[Any]],
                 host: Optional[str] = "127.0.0.1", port: Optional[int] = 0, *,
                 sock: Optional[socket.socket] = None, backlog: int = 128,
                 open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
                 start_serving: bool = True, **kw: Any) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        open_timeout = _timeout_arg(open_timeout, "open_timeout")
        if open_timeout == 0:
            raise ValueError("open_timeout must be None or > 0")
        kw = _compat.normalize(kw)
        kw.setdefault("max_size", _compat.WS_MAX_SIZE)
        kw.setdefault("server_header", _compat.default_agent())
        unknown = set(kw) - _ACCEPT_KW
        if unknown:
            raise TypeError(f"serve() got unexpected keyword arguments {sorted(unknown)}")
        if "headers" in kw:
            kw["headers"] = header_list(kw["headers"], check=True)
        self._args = (handler, host, port, sock, backlog, open_timeout, start_serving, kw)
        self.server: Optional[Server] = None

    async def _start(self) -> Server:
        handler, host, port, sock, backlog, open_timeout, start, kw = self._args
        if sock is None:
            family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
            sock = socket.create_server((host or "", port or 0), family=family,
                                        backlog=backlog)
        sock.setblocking(False)
        self.server = Server(sock, handler, kw, open_timeout, start)
        return self.server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self

    async def __aexit__(self, *exc: Any) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


from ._broadcast import broadcast  # noqa: E402  (websockets.asyncio.server.broadcast)
