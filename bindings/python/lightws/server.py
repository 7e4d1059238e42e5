# SPDX-License-Identifier: MIT
"""A blocking websocket server, one thread per connection: the
counterpart of lightws.asyncio.serve() for code written against the
blocking WebSocket.

    import lightws

    def echo(ws):
        for message in ws:
            ws.send(message)

    with lightws.serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()

serve_forever() waits on the listening socket and on a wake-up pipe with
poll(), so shutdown() from any thread (a handler, a signal handler, the
main thread) ends it at once without a polling interval. Each accepted
connection gets a daemon thread that runs the opening handshake (RFC 6455
§4.2, through lightws.accept) and then handler(ws). When the handler
returns the server closes the connection with 1000 (§7.4.1); when it
raises, with 1011 after logging the exception on the "lightws.server"
logger.
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import select
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence, Set

from . import accept
from ._conn import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT,
                    DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_RBUF_SIZE,
                    WebSocket)
from ._core import Headers, Request, header_list
from .errors import ConnectionClosed, HandshakeError, ProtocolError, WebSocketError

__all__ = ["serve", "Server", "DEFAULT_OPEN_TIMEOUT"]

log = logging.getLogger("lightws.server")

Handler = Callable[[WebSocket], Any]

# accept() errors that concern one connection only: the listener goes on.
_ACCEPT_TRANSIENT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}
# out of descriptors or memory: back off briefly instead of spinning.
_ACCEPT_BACKOFF = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_PAUSE = 0.1     # seconds between accept() attempts then


class _Conn:
    """One accepted connection: its socket until the handshake is done,
    then its WebSocket. ``lock`` keeps the server's own close() calls on
    it (handler thread, Server.close) from overlapping."""

    __slots__ = ("sock", "ws", "thread", "lock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.ws: Optional[WebSocket] = None
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()


class Server:
    """What serve() returns: a listening socket, and the threads serving
    its connections.

    ``serve_forever()`` accepts connections until ``shutdown()``.
    ``shutdown()`` stops accepting and closes the listening socket; live
    connections go on. ``close()`` (also run on leaving a ``with`` block)
    does shutdown(), closes every live connection with 1001 (going away,
    §7.4.1) and waits up to ``close_timeout`` seconds for the handler
    threads to finish (they are daemon threads: any still running after
    that do not keep the process alive).
    """

    #: the handshake of each connection (lightws.sync.Server: websockets' hooks)
    _accept: Callable[..., WebSocket] = staticmethod(accept)

    def __init__(self, sock: socket.socket, handler: Handler, accept_kw: Dict[str, Any],
                 open_timeout: Optional[float], timeout: Optional[float],
                 close_timeout: float) -> None:
        #: the listening socket
        self.socket = sock
        self._name = sock.getsockname()
        self._handler = handler
        self._kw = accept_kw
        self._open_timeout = open_timeout
        self._timeout = timeout
        self.close_timeout = close_timeout
        # Guards _shut, _closing, _serving, _conns and the listener's
        # close. Reentrant: a signal handler may call shutdown() or close()
        # in the main thread while serve_forever() there holds it.
        self._lock = threading.RLock()
        self._serving_thread: Optional[threading.Thread] = None
        self._shut = False                    # shutdown() ran
        self._closing = False                 # close() ran: new websockets get 1001
        self._serving = False
        self._conns: Set[_Conn] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._done = threading.Event()        # serve_forever has returned
        self._done.set()

    # -- addresses ---------------------------------------------------------
    @property
    def port(self) -> Optional[int]:
        """The bound TCP port (the one chosen with port=0), also after
        shutdown(); None for a socket without one (AF_UNIX)."""
        name = self._name
        return name[1] if isinstance(name, tuple) else None

    @property
    def address(self) -> Any:
        """The listening socket's address: (host, port) for IPv4,
        (host, port, flowinfo, scope_id) for IPv6, a path for AF_UNIX."""
        return self._name

    def fileno(self) -> int:
        """The listening socket's descriptor (-1 once closed)."""
        return self.socket.fileno()

    @property
    def connections(self) -> int:
        """How many connections are being served (handshake included)."""
        with self._lock:
            return len(self._conns)

    # -- accepting -----------------------------------------------------------
    def serve_forever(self) -> None:
        """Accepts connections, one daemon thread each, until shutdown()
        (from any thread). Returns at once if the server is already shut
        down; raises RuntimeError if another thread is serving."""
        with self._lock:
            if self._shut:
                return
            if self._serving:
                raise RuntimeError("serve_forever() is already running")
            self._serving = True
            self._serving_thread = threading.current_thread()
            self._done.clear()
        try:
            poller = select.poll()
            poller.register(self.socket.fileno(), select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            while True:
                # Waiting happens outside the lock; shutdown() closes the
                # listener under it and writes to the pipe, which ends
                # this poll even if the closed descriptor number was
                # reused meanwhile (we never use the number again).
                poller.poll()
                with self._lock:
                    if self._shut:
                        return
                    try:
                        conn, addr = self.socket.accept()
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        if self._shut:      # shutdown() from a signal handler
                            return
                        if e.errno in _ACCEPT_TRANSIENT:
                            continue
                        if e.errno not in _ACCEPT_BACKOFF:
                            raise
                        log.error("accept() failed: %s", e)
                        backoff = True
                    else:
                        backoff = False
                        self._start(conn, addr)
                if backoff:
                    time.sleep(_ACCEPT_PAUSE)
        finally:
            with self._lock:
                self._serving = False
                self._serving_thread = None
                if self._shut:
                    self._close_pipe()
            self._done.set()

    def _start(self, sock: socket.socket, addr: Any) -> None:
        # Called under self._lock, so close() sees every connection.
        c = _Conn(sock)
        t = threading.Thread(target=self._serve_conn, args=(c,),
                             name=f"lightws-conn-{_fmt_addr(addr)}", daemon=True)
        c.thread = t
        self._conns.add(c)
        try:
            t.start()
        except RuntimeError:            # cannot start a thread: drop the connection
            self._conns.discard(c)
            log.error("cannot start a thread for %s", _fmt_addr(addr))
            sock.close()

    def shutdown(self) -> None:
        """Stops accepting: serve_forever() returns and the listening
        socket is closed. Safe from any thread, handlers and signal
        handlers included, and more than once; does not wait and leaves
        live connections open."""
        with self._lock:
            if self._shut:
                return
            self._shut = True
            try:
                self.socket.close()
            except OSError:
                pass
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            if not self._serving:
                self._close_pipe()

    def _close_pipe(self) -> None:
        # Under self._lock, once shut down and no serve_forever() polls it.
        fds = (self._wake_r, self._wake_w)
        self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def close(self, timeout: Optional[float] = None) -> None:
        """shutdown(), then closes every live connection with 1001 (going
        away) and waits until the handler threads have finished, at most
        ``timeout`` seconds (default: close_timeout) in all. Not from a
        handler thread (it would wait for itself): use shutdown() there."""
        self.shutdown()
        if timeout is None:
            timeout = self.close_timeout
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        if self._serving_thread is not me:      # not a signal handler's call
            self._done.wait(timeout)    # serve_forever() in another thread returns
        with self._lock:
            self._closing = True
            conns = list(self._conns)
        # One closing thread per connection: a close waits for the peer's
        # close frame (§7.1.2), so N silent peers cost one close_timeout,
        # not N of them.
        closers = []
        for c in conns:
            t = threading.Thread(target=self._going_away, args=(c,), daemon=True,
                                 name="lightws-close")
            t.start()
            closers.append(t)
        for t in closers + [c.thread for c in conns if c.thread is not None]:
            if t is me:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            t.join(left)

    def _going_away(self, c: _Conn) -> None:
        with c.lock:
            ws = c.ws
            if ws is None:
                # Still in the handshake: end it (the handler thread sees
                # an error, or the closing flag once accept() returns).
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            ws.close(1001, "server shutting down")

    # -- one connection --------------------------------------------------------
    def _serve_conn(self, c: _Conn) -> None:
        try:
            self._handshake_and_handle(c)
        finally:
            with self._lock:
                self._conns.discard(c)

    def _handshake_and_handle(self, c: _Conn) -> None:
        sock = c.sock
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass                        # not TCP (AF_UNIX)
        try:
            ws = self._accept(sock, open_timeout=self._open_timeout, **self._kw)
        except (HandshakeError, ProtocolError) as e:
            # accept() answered the HTTP error (400, 405, 426, 431) and
            # closed the socket.
            log.debug("handshake failed: %s", e)
            return
        except (OSError, WebSocketError) as e:      # peer gone, TLS failure, timeout
            log.debug("handshake failed: %r", e)
            sock.close()
            return
        except Exception:
            log.exception("accept() failed")
            sock.close()
            return
        ws.settimeout(self._timeout)    # the handshake waited without it
        with c.lock:
            c.ws = ws
        with self._lock:
            closing = self._closing
        if closing:
            # close() ran during the handshake; if its snapshot had this
            # connection, its closer found c.ws unset or closes it too
            # (c.lock serializes the two, the second close does nothing).
            with c.lock:
                ws.close(1001, "server shutting down")
            return
        code = 1000
        try:
            self._handler(ws)
        except ProtocolError as e:
            log.debug("protocol error: %s", e)   # lightws sent 1002/1007/1009
        except ConnectionClosed as e:
            log.debug("closed by the client: %s", e)     # its close was answered
        except Exception as e:
            if isinstance(e, OSError) and _connection_lost(ws):
                # The connection itself failed (reset, broken pipe): the
                # client went away, there is nobody to send 1011 to.
                log.debug("connection lost: %r", e)
            else:
                log.exception("connection handler failed")
                code = 1011
        except BaseException:
            code = 1011
            raise
        finally:
            with c.lock:
                if code == 1011:
                    ws.close(1011, "internal error")
                else:
                    ws.close(1000)

    # -- context manager -------------------------------------------------------
    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "shut down" if self._shut else f"port={self.port}"
        return f"<lightws.Server {state} connections={self.connections}>"


def _connection_lost(ws: WebSocket) -> bool:
    """True when the stream failed or the TCP connection is gone (reset,
    or both directions shut): then an OSError from the handler came from
    the client vanishing, not from a bug. A send() that hits ECONNRESET or
    EPIPE leaves the C stream retryable, so ask the socket: poll() reports
    POLLHUP/POLLERR once the connection is dead."""
    if ws.closed:
        return True
    fd = ws.fileno()
    if fd < 0:
        return True
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL)
               for _, ev in p.poll(0))


def _fmt_addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr) or "unix"


def serve(handler: Handler, host: Optional[str] = "127.0.0.1", port: int = 0, *,
          sock: Optional[socket.socket] = None,
          protocols: Optional[Sequence[str]] = None,
          select_subprotocol: Optional[Callable[[Request], Optional[str]]] = None,
          headers: Optional[Headers] = None,
          max_size: Optional[int] = DEFAULT_MAX_SIZE, rbuf_size: int = DEFAULT_RBUF_SIZE,
          options: int = 0, ssl: Any = None, backlog: int = 128,
          open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
          timeout: Optional[float] = None,
          close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
          ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
          ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT, **accept_kw: Any) -> Server:
    """Listens on (host, port) and calls ``handler(ws)`` in a new daemon
    thread for every websocket connection.

    ``sock`` is an already bound and listening socket to use instead of
    host and port (TCP or AF_UNIX). ``protocols``, ``select_subprotocol``,
    ``headers``, ``max_size``, ``rbuf_size``, ``options`` and
    ``close_timeout`` go to lightws.accept() for each connection, as does
    ``ssl`` (a server-side ssl.SSLContext: wss). ``open_timeout`` bounds
    the TLS and opening handshakes of a connection (None: no bound; a
    client dribbling its request gets 408 at the deadline);
    ``timeout`` is the WebSocket's timeout while the handler runs (None:
    blocking). ``ping_interval`` and ``ping_timeout`` (keepalive, None:
    off) go to accept(): pings are sent and pongs checked while the
    handler is inside a call on the WebSocket (recv() waiting included),
    not while it does other work. Other keyword arguments are passed to
    accept() as well, and checked against its signature here.

    A request that is not a valid upgrade gets its HTTP error status from
    accept() and is logged at debug level. When the handler returns the
    connection is closed with 1000 (if still open); when it raises, the
    exception is logged ("lightws.server" logger) and the close code is
    1011. Returns a Server; call serve_forever() on it, usually in a
    ``with`` block.
    """
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    if open_timeout is not None and open_timeout <= 0:
        raise ValueError("open_timeout must be None or > 0")
    kw: Dict[str, Any] = dict(protocols=protocols, select_subprotocol=select_subprotocol,
                              headers=header_list(headers, check=True), max_size=max_size, rbuf_size=rbuf_size,
                              options=options, close_timeout=close_timeout, ssl=ssl,
                              ping_interval=ping_interval, ping_timeout=ping_timeout)
    kw.update(accept_kw)
    # A misspelt option fails here, not later in every connection's thread.
    inspect.signature(accept).bind(None, open_timeout=None, **kw)
    if sock is None:
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        sock = socket.create_server((host or "", port), family=family, backlog=backlog)
    sock.setblocking(False)
    return Server(sock, handler, kw, open_timeout, timeout, close_timeout)
