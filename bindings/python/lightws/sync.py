# SPDX-License-Identifier: MIT
"""lightws with python websockets' threading API (websockets.sync):

    from lightws.sync import connect, serve

    with connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=10))

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

The connections are lightws' blocking WebSocket with websockets' names on
top; lightws.connect, lightws.accept and lightws.serve stay as they are.
As websockets.sync, a thread per connection reads in the background, so
pings are answered and keepalive kept while the application does not read
(messages wait in a queue of max_queue, 16).
"""

from __future__ import annotations

import inspect
import queue
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import _compat, _protocols, parse_url
from . import connect as _connect_blocking
from ._conn import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_OPEN_TIMEOUT, DEFAULT_PING_INTERVAL,
                    DEFAULT_PING_TIMEOUT, DEFAULT_RBUF_SIZE, WebSocket, _choose_subprotocol)
from ._core import HeaderList, Request, Response, State, header_list
from .errors import (Close, ConnectionClosed, ConnectionClosedError,
                     HandshakeError,
                     HandshakeTimeout, InvalidHandshake, InvalidOrigin, InvalidStatus, Opcode,
                     WebSocketError, WouldBlock, closed_error)
from .server import Server as _BlockingServer

__all__ = ["connect", "serve", "ClientConnection", "ServerConnection", "Server", "State"]

_TEXT = int(Opcode.TEXT)
_MAX_QUEUE = 16     #: websockets' max_queue default (messages)
_NOT_UPGRADE = frozenset(("NO_UPGRADE", "NO_CONNECTION", "BAD_KEY", "BAD_VERSION"))


class _End:
    """What the reader thread queues last: why reading ended."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _queue_size(max_queue: Any) -> int:
    """websockets' max_queue: a count of messages, a (high, low) pair, or
    None (no bound); queue.Queue's maxsize (0: no bound)."""
    if isinstance(max_queue, tuple):
        max_queue = max_queue[0]
    if max_queue is None:
        return 0
    if not isinstance(max_queue, int) or isinstance(max_queue, bool) or max_queue < 1:
        raise ValueError(f"max_queue must be None or a positive int, not {max_queue!r}")
    return max_queue


class _Connection(WebSocket):
    """websockets.sync's Connection names over lightws.WebSocket.

    As websockets.sync, a background thread per connection reads: it
    waits in the blocking recv() of lightws.WebSocket (so the peer's pings
    are answered, keepalive pings sent and their pongs checked, whether or
    not the application is reading) and queues whole messages, at most
    ``max_queue`` (16) of them; a full queue stops it reading, so the TCP
    window closes on the peer (back-pressure, as websockets). recv(),
    recv_streaming() and iteration take from that queue; the lower-level
    reads of lightws.WebSocket (recv_into, recv_piece...) are not for
    these connections."""

    _q: "queue.Queue[Any]"
    _reader: Optional[threading.Thread] = None
    _end: Optional[_End] = None

    def _adopt(self, logger: Any) -> None:
        self.id: uuid.UUID
        self.logger: Any
        self.remote_address: Any
        self.local_address: Any
        _compat.adopt_identity(self, self.client, logger, self._sock)
        self._pings: Dict[bytes, Tuple[threading.Event, float]] = {}
        self._plock = threading.Lock()
        self._user_latency = (0.0, -1)
        self._close_sent: Optional[Close] = None
        self._c.on_pong = self._on_pong

    def _start_reader(self, max_queue: Any) -> None:
        """Starts the background reader (once the handshake is done)."""
        self._q = queue.Queue(maxsize=_queue_size(max_queue))
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"lightws.sync reader {self.id}")
        self._reader.start()

    def _read_loop(self) -> None:
        while True:
            try:
                # blocking whatever the connection's timeout mode: only
                # this thread reads
                with self._rlock:
                    msg = self._run(self._step_recv, True, None)
            except BaseException as e:  # closed, broken: recv() raises it
                self._q.put(_End(e))
                return
            self._q.put(msg)

    # -- receiving ---------------------------------------------------------
    def recv(self, timeout: Optional[float] = None,    # type: ignore[override]
             decode: Optional[bool] = None) -> Union[str, bytes]:
        """The next message (str for text, bytes for binary), as
        websockets.sync: ``timeout`` in seconds (None: wait; 0: only what
        is there now) then TimeoutError; ``decode`` True returns binary as
        str, False text as bytes. ConnectionClosed once closed."""
        msg = self._next(timeout)
        if decode is None:
            return msg
        if decode and msg.__class__ is not str:
            return bytes(msg).decode("utf-8")
        if not decode and isinstance(msg, str):
            return msg.encode("utf-8")
        return msg

    def _next(self, timeout: Optional[float]) -> Union[str, bytes]:
        """The next queued message; TimeoutError after ``timeout`` s (0:
        only one already queued); ConnectionClosed once reading ended
        (every message queued before comes first)."""
        if self._reader is None:        # not open through connect()/serve()
            raise ConnectionClosedError(1006, "connection not open")
        end = self._end
        if end is None:
            try:
                if timeout is not None and timeout <= 0:
                    item = self._q.get_nowait()
                else:
                    item = self._q.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError("timed out") from None
            if not isinstance(item, _End):
                return item
            self._end = end = item
        exc = end.exc
        if isinstance(exc, (ConnectionClosed, OSError, WebSocketError)):
            raise self._closed(exc) from None
        raise exc

    def recv_streaming(self, decode: Optional[bool] = None) -> Iterator[Union[str, bytes]]:
        """The next message, as websockets.sync's recv_streaming(): an
        iterator of its pieces (str for text, bytes for binary; ``decode``
        as recv()). The reader thread queues whole messages, so the
        message comes as one piece."""
        msg = self.recv(decode=decode)
        yield msg

    # -- sending -----------------------------------------------------------
    def send(self, data: Any, opcode: Optional[int] = None, *,  # type: ignore[override]
             fin: bool = True, mask_in_place: bool = False, compress: bool = True,
             text: Optional[bool] = None) -> None:
        """A message as lightws.WebSocket.send(), plus websockets': an
        iterable of str (or of bytes-like) is one fragmented message;
        ``text=True`` sends bytes as text, ``text=False`` str as binary.
        A socket broken under the send (the peer failed the connection,
        with 1009 say) raises ConnectionClosed with the peer's code."""
        if text is not None and opcode is None:
            opcode = Opcode.TEXT if text else Opcode.BINARY
        try:
            if isinstance(data, (str, bytes, bytearray, memoryview)):
                WebSocket.send(self, data, opcode, fin=fin, mask_in_place=mask_in_place,
                               compress=compress)
                return
            if isinstance(data, dict) or hasattr(data, "keys"):
                raise TypeError("data is a dict-like object")
            if not hasattr(data, "__iter__"):
                WebSocket.send(self, memoryview(data), opcode, fin=fin, compress=compress)
                return
            self._send_iter(iter(data), opcode, compress)
        except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
            raise self._closed(e) from None

    def _send_iter(self, it: Iterator[Any], opcode: Optional[int], compress: bool) -> None:
        end = object()
        cur = next(it, end)
        if cur is end:
            return
        kind = isinstance(cur, str)
        with self._wlock:
            while True:
                nxt = next(it, end)
                if nxt is not end and isinstance(nxt, str) != kind:
                    if self._frag_opcode:
                        self.close(1011, "error in fragmented message")
                    raise TypeError("iterable must contain only str or only bytes-like")
                WebSocket.send(self, cur, opcode, fin=nxt is end, compress=compress)
                if nxt is end:
                    return
                cur = nxt

    def ping(self, data: Union[bytes, str, None] = None  # type: ignore[override]
             ) -> threading.Event:
        """Sends a ping (None: 4 random bytes) and returns a threading.Event
        set once its pong is seen (by the reader thread), as
        websockets.sync. ConcurrencyError while a ping with the same
        payload waits."""
        with self._plock:
            payload = _compat.ping_payload(self._pings, data)
            ev = threading.Event()
            self._pings[payload] = (ev, time.monotonic())
        try:
            WebSocket.ping(self, payload)
        except BaseException as e:
            with self._plock:
                self._pings.pop(payload, None)
            if isinstance(e, (ConnectionClosed, BrokenPipeError, ConnectionResetError)):
                raise self._closed(e) from None
            raise
        return ev

    def _on_pong(self, data: bytes) -> None:
        # under the C lock (CStream): no C call but rtt()
        with self._plock:
            rt = _compat.pong_arrived(self._pings, data, lambda ev, _: ev.set())
        if rt is not None:
            self._user_latency = (rt, self._c.rtt())

    @property
    def latency(self) -> float:
        """Round trip of the last ping answered (keepalive or ping()), in
        seconds, 0.0 before the first."""
        return _compat.latency(self._user_latency, self._c.rtt())

    @property
    def state(self) -> State:
        c = self._c
        if self._fd_closed or c.closing() == 2 or c.error() != 0:
            return State.CLOSED
        if c.closing() or c.close_code() or self._close_sent is not None:
            return State.CLOSING
        return State.OPEN

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._close_sent is None and self._need_close_frame():
            self._close_sent = Close(code, reason)
        WebSocket.close(self, code, reason)

    def _closed(self, err: BaseException) -> ConnectionClosed:
        if isinstance(err, ConnectionClosed):
            e = err
        else:
            self._read_close_now()
            code = self._c.close_code() or 1006
            e = closed_error(code, self._c.close_reason() if code != 1006 else "")
        if e.sent is None:
            if self._close_sent is not None:
                e.sent = self._close_sent
            elif self._c.closing() == 2:
                code = self._c.close_code()
                e.sent = Close(code if code not in (1005, 1006) else 1000, "")
        if e.rcvd is not None and e.sent is not None and e.rcvd_then_sent is None:
            e.rcvd_then_sent = self._close_sent is None
        return e

    def _read_close_now(self) -> None:
        """After a broken send: read the peer's close if it is in the
        socket already (messages before it stay readable)."""
        if not self._rlock.acquire(blocking=False):
            return
        try:
            buf = bytearray(4096)
            for _ in range(64):
                try:
                    self._c.read_bytes_into(buf)
                except (WouldBlock, OSError, WebSocketError):
                    return
        finally:
            self._rlock.release()

    # iteration: lightws.WebSocket's __iter__, over this recv() (the queue)

    def __enter__(self) -> "_Connection":
        return self


class ClientConnection(_Connection):
    """What lightws.sync.connect() returns (websockets.sync's
    ClientConnection): ``request`` is the upgrade request as sent (its key
    left out: the C core makes it), ``response`` the server's 101."""

    def __enter__(self) -> "ClientConnection":
        return self


class ServerConnection(_Connection):
    """What lightws.sync.serve() hands to the handler."""

    _server_header: Optional[str] = None
    _hooks: Optional[Dict[str, Any]] = None
    _extra101: List[Tuple[str, str]] = []

    def __enter__(self) -> "ServerConnection":
        return self

    def respond(self, status: int, text: str) -> Response:
        """A plain-text HTTP response for process_request to return."""
        return _compat.make_response(int(status), text, self._server_header)

    def _reject(self, resp: Any) -> None:
        self.response = resp
        data = memoryview(_compat.serialize(resp))
        if self._tls is not None:
            tls = self._tls
            with self._c.lock:
                tls.obj.write(bytes(data))
            end = time.monotonic() + 5
            while self._tls_output() and time.monotonic() < end:
                self._wait(2, end)
            return
        assert self._sock is not None
        end = time.monotonic() + 5
        while data:
            try:
                n = self._sock.send(data)
                data = data[n:]
            except (BlockingIOError, InterruptedError):
                self._wait(2, end)
            except OSError:
                return

    def _hook(self, hook: Callable[..., Any], *args: Any) -> Any:
        try:
            return hook(*args)
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            self._reject(self.respond(500, "Failed to open a WebSocket connection.\n"
                                           "See server log for more information.\n"))
            raise

    def _server_handshake(self, protocols: Optional[Sequence[str]],  # type: ignore[override]
                          headers: Any, select_subprotocol: Any,
                          open_deadline: Optional[float] = None) -> None:
        h = self._hooks or {}
        self._phase_handshake(None)
        if self._tls is not None:
            self._tls_handshake(open_deadline)
        left = None if open_deadline is None else max(0.001, open_deadline - time.monotonic())
        self._phase_handshake(left)
        t = self._hs_timeout()
        try:
            self.request = self._run(self._c.server_read_request, False, t)
        except HandshakeError as e:
            hook = h.get("process_request")
            req = getattr(e, "request", None)
            if hook is not None and req is not None and e.errname in _NOT_UPGRADE:
                self.request = req
                resp = self._hook(hook, self, req)
                if resp is not None:
                    self._reject(resp)
                    raise InvalidHandshake(f"rejected with HTTP {resp.status_code}") from None
            status = e.status
            if status and not isinstance(e, HandshakeTimeout):
                try:
                    self._run(lambda: self._c.server_reject(status), False, t)
                except (OSError, WebSocketError):
                    pass
            raise
        extra = list(headers or [])
        if self._server_header:
            extra.append(("Server", self._server_header))
        origins = h.get("origins")
        if origins is not None and not _compat.origin_ok(self.request.origin, origins):
            self._reject(self.respond(403, "Failed to open a WebSocket connection: "
                                           "invalid Origin header.\n"))
            raise InvalidOrigin(f"invalid Origin header: {self.request.origin}",
                                "BAD_ORIGIN", 0, 403)
        hook = h.get("process_request")
        if hook is not None:
            resp = self._hook(hook, self, self.request)
            if resp is not None:
                self._reject(resp)
                raise InvalidHandshake(f"rejected with HTTP {resp.status_code}")
        select = _compat.select_adapter(select_subprotocol, self)
        chosen = (self._hook(_choose_subprotocol, self.request, protocols, select)
                  if select is not None else _choose_subprotocol(self.request, protocols, None))
        if self._pmd_cfg is not None:
            self._agreed(self._c.server_deflate(self._pmd_cfg))
        ext = str(self.extensions[0]) if self.extensions else None
        resp101 = _compat.response_101(self.request.key, chosen, ext, extra)
        hook = h.get("process_response")
        if hook is not None:
            out = self._hook(hook, self, self.request, resp101)
            if out is not None and out.status_code != 101:
                self._reject(out)
                raise InvalidHandshake(f"rejected with HTTP {out.status_code}")
            resp101 = out if out is not None else resp101
            extra = _compat.extra_of_101(resp101)
        self._run(lambda: self._c.server_accept(chosen, extra), False, t)
        self.subprotocol = chosen
        self.response = resp101
        self._phase_open()


# -- client ------------------------------------------------------------------

_BLOCKING_CONNECT = frozenset(inspect.signature(_connect_blocking).parameters) - {"target"}


def connect(uri: Optional[str] = None, **kw: Any) -> ClientConnection:
    """Opens a client connection, as websockets.sync.client.connect(): use
    it directly or in a ``with`` block. Keywords with websockets' names
    and defaults (``additional_headers``, ``subprotocols``, ``origin``,
    ``compression``, ``open_timeout`` 10, ``ping_interval`` 20,
    ``ping_timeout`` 20, ``close_timeout`` 10, ``max_size`` 1 MiB,
    ``max_queue``, ``user_agent_header``, ``logger``, ``ssl``,
    ``server_hostname``, ``sock``) and lightws.connect()'s own.
    Redirects (3xx with Location) are followed up to 10 times, never from
    wss:// to ws://; InvalidStatus when not followed."""
    sock = kw.pop("sock", None)
    kw = _compat.normalize(kw)
    max_queue = kw.pop("max_queue", _MAX_QUEUE)
    _queue_size(max_queue)          # a bad value fails before connecting
    kw.pop("write_limit", None)     # blocking sends return once written
    logger = kw.pop("logger", None)
    kw.setdefault("max_size", _compat.WS_MAX_SIZE)
    agent = kw.pop("user_agent_header", _compat.default_agent())
    unknown = set(kw) - _BLOCKING_CONNECT
    if unknown:
        raise TypeError(f"connect() got unexpected keyword arguments {sorted(unknown)}")
    headers = header_list(kw.pop("headers", None))
    if agent:
        headers.append(("User-Agent", agent))
    target: Any = uri
    if sock is not None:
        if isinstance(uri, str):
            _, _, authority, path = parse_url(uri)
            kw.setdefault("host", authority)
            kw.setdefault("path", path)
        target = sock
    if target is None:
        raise TypeError("connect() needs a URI or sock=")
    for _ in range(_compat.MAX_REDIRECTS + 1):
        try:
            ws = _connect_blocking(target, headers=headers, **kw)
        except InvalidStatus as e:
            if not isinstance(target, str):
                raise
            new = _compat.redirect_target(target, e)
            if new is None:
                raise
            target = new
            continue
        ws.__class__ = ClientConnection     # the same object, websockets' names on top
        assert isinstance(ws, ClientConnection)
        ws._adopt(logger)
        host = kw.get("host") or (parse_url(target)[2] if isinstance(target, str) else "")
        path = kw.get("path") or (parse_url(target)[3] if isinstance(target, str) else "/")
        sent = HeaderList([("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                           ("Sec-WebSocket-Version", "13")])
        if kw.get("origin"):
            sent.append(("Origin", kw["origin"]))
        offered = _protocols(kw.get("protocols"))
        if offered:
            sent.append(("Sec-WebSocket-Protocol", offered))
        sent.extend(headers)
        ws.request = Request("GET", path, host, "", kw.get("origin"), offered, None, 13, sent, 0)
        ws._start_reader(max_queue)
        return ws
    raise _compat.too_many_redirects()


# -- server ------------------------------------------------------------------

def accept(sock: Any, *, protocols: Optional[Sequence[str]] = None, headers: Any = None,
           select_subprotocol: Optional[Callable[..., Any]] = None,
           open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
           origins: Optional[Sequence[Any]] = None,
           process_request: Optional[Callable[..., Any]] = None,
           process_response: Optional[Callable[..., Any]] = None,
           server_header: Optional[str] = None, logger: Any = None,
           max_queue: Any = 16, **kw: Any) -> ServerConnection:
    """The server handshake on an accepted socket with websockets' hooks
    (see serve()); lightws.accept()'s keywords otherwise."""
    headers = header_list(headers)
    deadline = None if not open_timeout else time.monotonic() + open_timeout
    ws = ServerConnection(sock, client=False, **kw)
    ws._adopt(logger)
    ws._server_header = server_header
    ws._hooks = {"origins": origins, "process_request": process_request,
                 "process_response": process_response}
    try:
        ws._server_handshake(protocols, headers, select_subprotocol, deadline)
    except BaseException:
        ws._release()
        raise
    ws._start_reader(max_queue)
    return ws


class Server(_BlockingServer):
    """What lightws.sync.serve() returns (websockets.sync's Server):
    ``serve_forever()``, ``shutdown()``, ``fileno()``, ``socket``, and
    lightws.Server's ``port``, ``address``, ``close()``."""

    _accept = staticmethod(accept)

    def __enter__(self) -> "Server":
        return self

    @property
    def port(self) -> int:      # type: ignore[override]
        """The bound TCP port (the one chosen with port=0)."""
        name = self._name
        if not isinstance(name, tuple):
            raise TypeError("an AF_UNIX server has no port: see address")
        return int(name[1])


_ACCEPT_KW = (frozenset(inspect.signature(accept).parameters)
              | frozenset(inspect.signature(WebSocket.__init__).parameters)
              | {"max_size", "rbuf_size", "options", "ssl", "ping_interval", "ping_timeout",
                 "idle_timeout", "compression", "compression_threshold", "mask"}) - {
                     "sock", "self", "client", "kw"}


def serve(handler: Callable[[ServerConnection], Any], host: Optional[str] = "127.0.0.1",
          port: Optional[int] = 0, *, sock: Optional[socket.socket] = None,
          backlog: int = 128, open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
          close_timeout: float = DEFAULT_CLOSE_TIMEOUT, timeout: Optional[float] = None,
          **kw: Any) -> Server:
    """Listens and runs ``handler(connection)`` in a thread per connection,
    as websockets.sync.server.serve(): ``with serve(handler, host, port)
    as server: server.serve_forever()``. websockets' keywords
    (``origins``, ``subprotocols``, ``select_subprotocol``,
    ``process_request``, ``process_response``, ``server_header``,
    ``compression``, ``open_timeout``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``, ``max_size`` 1 MiB,
    ``max_queue``, ``logger``, ``ssl``, ``sock``) and lightws.serve()'s own
    (``headers``, ``timeout``, ``rbuf_size``...)."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    if open_timeout is not None and open_timeout <= 0:
        raise ValueError("open_timeout must be None or > 0")
    kw = _compat.normalize(kw)
    _queue_size(kw.setdefault("max_queue", _MAX_QUEUE))
    kw.pop("write_limit", None)     # blocking sends return once written
    kw.setdefault("max_size", _compat.WS_MAX_SIZE)
    kw.setdefault("server_header", _compat.default_agent())
    kw.setdefault("ping_interval", DEFAULT_PING_INTERVAL)
    kw.setdefault("ping_timeout", DEFAULT_PING_TIMEOUT)
    kw.setdefault("rbuf_size", DEFAULT_RBUF_SIZE)
    kw["close_timeout"] = close_timeout
    unknown = set(kw) - _ACCEPT_KW
    if unknown:
        raise TypeError(f"serve() got unexpected keyword arguments {sorted(unknown)}")
    if "headers" in kw:
        kw["headers"] = header_list(kw["headers"], check=True)
    if sock is None:
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        sock = socket.create_server((host or "", port or 0), family=family, backlog=backlog)
    sock.setblocking(False)
    return Server(sock, handler, kw, open_timeout, timeout, close_timeout)
