# SPDX-License-Identifier: MIT
"""lightws: fast websocket (RFC 6455) streams over a C core that never
allocates per frame.

    import lightws
    with lightws.connect("ws://127.0.0.1:8080/chat") as ws:
        ws.send("hello")
        print(ws.recv())

``connect()`` and ``accept()`` return a blocking ``WebSocket`` (socket-like
timeouts, one reader and one writer thread at a time); ``lightws.asyncio``
has the same over an event loop, and ``lightws.codec`` the sans-IO codec.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from . import _core, codec
from ._conn import (DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_SIZE, DEFAULT_OPEN_TIMEOUT,
                    DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_RBUF_SIZE,
                    RawStream, WebSocket, _UNSET, _timeout_arg)
from ._core import (Chunk, Deflate, HeaderList, Headers, PerMessageDeflate, Piece, Request,
                    Response, State, deflate_available, header_list)
from .errors import (WANT_READ, WANT_WRITE, CloseCode, CloseTimeout,
                     ConnectionClosed, ConnectionClosedError, ConnectionClosedOK,
                     HandshakeError, HandshakeTimeout, IdleTimeout, InvalidUsage,
                     Opcode, PingTimeout, ProtocolError, WebSocketError,
                     WouldBlock, Close, InvalidHandshake, InvalidStatus, InvalidMessage,
                     InvalidURI, SecurityError, InvalidState, InvalidOrigin,
                     WebSocketException, ConcurrencyError, InvalidUpgrade, InvalidHeader,
                     NegotiationError, PayloadTooBig)

__all__ = [
    "connect", "accept", "serve", "Server", "parse_url", "codec", "WebSocket",
    "RawStream", "Chunk",
    "Request", "Response", "Opcode", "CloseCode", "WebSocketError",
    "ProtocolError", "ConnectionClosed", "ConnectionClosedOK",
    "ConnectionClosedError", "HandshakeError", "InvalidUsage", "WouldBlock",
    "WANT_READ", "WANT_WRITE", "OPT_NO_UTF8_CHECK", "OPT_NO_AUTO_PONG",
    "OPT_NO_MASK_CHECK", "__version__", "c_version", "HandshakeTimeout",
    "PingTimeout", "IdleTimeout", "CloseTimeout", "Deflate", "PerMessageDeflate",
    "Piece", "deflate_available", "Close", "InvalidHandshake", "InvalidStatus",
    "InvalidMessage", "InvalidURI", "SecurityError", "InvalidState", "InvalidOrigin",
    "WebSocketException", "HeaderList", "broadcast", "State", "ConcurrencyError",
    "InvalidUpgrade", "InvalidHeader", "NegotiationError", "PayloadTooBig",
]

__version__ = "0.1.0"

OPT_NO_UTF8_CHECK = _core.OPT_NO_UTF8_CHECK   #: do not validate text
OPT_NO_AUTO_PONG = _core.OPT_NO_AUTO_PONG     #: do not answer pings
OPT_NO_MASK_CHECK = _core.OPT_NO_MASK_CHECK   #: accept frames whatever the mask bit



def c_version() -> str:
    """Version of the C library inside the extension."""
    return _core.version()


def parse_url(url: str) -> Tuple[str, int, str, str]:
    """(host to connect to, port, Host header value, request path) of a
    ws:// or wss:// URL (RFC 6455 §3)."""
    if not isinstance(url, str):
        raise TypeError(f"a URL is a str, not {type(url).__name__}")
    try:
        u = urlsplit(url)
        uport = u.port          # ValueError: not a number, or over 65535
    except ValueError as e:
        raise InvalidURI(url, f"bad URL: {e}") from None
    if u.scheme not in ("ws", "wss"):
        raise InvalidURI(url, "scheme isn't ws or wss")
    if not u.hostname:
        raise InvalidURI(url, "no host")
    if uport == 0:
        raise InvalidURI(url, "port 0: nothing listens there")
    host = u.hostname
    default = 443 if u.scheme == "wss" else 80
    port = uport if uport is not None else default
    authority = f"[{host}]" if ":" in host else host
    if uport is not None and uport != default:
        authority += f":{uport}"
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return host, port, authority, path


def _protocols(protocols: Union[None, str, Sequence[str]]) -> Optional[str]:
    if protocols is None or isinstance(protocols, str):
        return protocols
    return ", ".join(protocols) if protocols else None


def connect(target: Any, *, host: Optional[str] = None, path: Optional[str] = None,
            protocols: Union[None, str, Sequence[str]] = None,
            origin: Optional[str] = None, headers: Optional[Headers] = None,
            timeout: Optional[float] = _UNSET, max_size: Optional[int] = DEFAULT_MAX_SIZE,
            rbuf_size: int = DEFAULT_RBUF_SIZE, mask: str = "random",
            options: int = 0, close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
            ssl: Any = None, server_hostname: Optional[str] = None,
            open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
            ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
            ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
            idle_timeout: Optional[float] = None,
            compression: Union[None, str, Deflate] = "deflate",
            compression_threshold: Optional[int] = None) -> WebSocket:
    """Opens a client websocket and runs the opening handshake (§4.1).

    ``target`` is a ws:// URL (a TCP connection is made, TCP_NODELAY set),
    or a connected socket, object with fileno(), or int descriptor; then
    ``host`` (Host header, default "localhost") and ``path`` (default "/")
    describe the request. ``protocols`` offers subprotocols (the chosen one
    is ``ws.subprotocol``); ``timeout`` bounds the connect and the
    handshake and stays the WebSocket's timeout (0: the connect and the
    handshake still wait, then the WebSocket is nonblocking). ``mask`` is "random" (a
    fresh key per frame, §5.3), "fixed" or "zero" (trusted paths only).
    ``ssl`` is an ssl.SSLContext for TLS (a wss:// URL uses
    ssl.create_default_context() unless given one; ``server_hostname``
    defaults to the URL's host). Raises HandshakeError (``status`` for a non-101 answer), OSError,
    TimeoutError.

    Time, with python websockets' names and defaults (seconds; None turns
    each off): ``open_timeout`` (10) bounds the TCP connect, TLS and the
    opening handshake together (HandshakeTimeout, a TimeoutError);
    ``ping_interval`` (20) sends a keepalive ping after that long without
    traffic and ``ping_timeout`` (20) wants its pong within that long,
    else PingTimeout (a ConnectionClosedError, code 1011) after close 1011
    went out; ``close_timeout`` (10) bounds close(). This WebSocket has no
    thread of its own: pings are sent and pongs checked only while a call
    (recv, send, close...) runs or waits, so an application that stops
    calling for a while neither pings nor answers pings then (it is
    answered once the next call reads). ``ws.latency`` is the last round
    trip. ``idle_timeout`` (None: off; lightws' own, not websockets')
    closes with 1001 (IdleTimeout) when nothing came for that long.

    Compression, as python websockets names it: ``compression="deflate"``
    (default) offers permessage-deflate (RFC 7692) with low-memory
    settings (window 12 bits, memLevel 5); a lightws.Deflate tunes them;
    None offers nothing. ``ws.extensions`` lists what was agreed
    ([PerMessageDeflate(...)] or []), ``ws.compression`` is "deflate" or
    None. Messages shorter than ``compression_threshold`` bytes (default
    32; 0: all but empty ones) go uncompressed, and ``send(...,
    compress=False)`` sends one message uncompressed.
    """
    headers = header_list(headers)        # TypeError before any connection
    _core.deflate_config(compression, compression_threshold)   # and bad compression
    if timeout is not _UNSET:
        _timeout_arg(timeout)
    _timeout_arg(close_timeout, "close_timeout")
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    open_deadline = None if not open_timeout else time.monotonic() + open_timeout
    if isinstance(target, str):
        url = target
        thost, port, authority, upath = parse_url(url)
        t = None if timeout is _UNSET or timeout == 0 else timeout
        if open_timeout and (t is None or open_timeout < t):
            t = open_timeout
        try:
            sock = socket.create_connection((thost, port), timeout=t)
        except socket.timeout:
            if t != open_timeout:
                raise
            raise HandshakeTimeout("TCP connect not complete within open_timeout") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        host = host or authority
        path = path or upath
        target = sock
        if timeout is _UNSET:
            timeout = None
        if urlsplit(url).scheme == "wss":
            if ssl is None:
                import ssl as _ssl
                ssl = _ssl.create_default_context()
            server_hostname = server_hostname or thost
    if ssl is not None and server_hostname is None and host:
        server_hostname = urlsplit("//" + host).hostname   # Host minus port
    ws = WebSocket(target, client=True, timeout=timeout, max_size=max_size,
                   rbuf_size=rbuf_size, mask=mask, options=options,
                   close_timeout=close_timeout, ssl=ssl, server_hostname=server_hostname,
                   ping_interval=ping_interval, ping_timeout=ping_timeout,
                   idle_timeout=idle_timeout, compression=compression,
                   compression_threshold=compression_threshold)
    try:
        ws._client_handshake(host or "localhost", path or "/",
                             _protocols(protocols), origin, headers, open_deadline)
    except BaseException:
        ws._release()
        raise
    return ws


def accept(sock: Any, *, protocols: Optional[Sequence[str]] = None,
           headers: Optional[Headers] = None,
           select_subprotocol: Optional[Callable[[Request], Optional[str]]] = None,
           timeout: Optional[float] = _UNSET, max_size: Optional[int] = DEFAULT_MAX_SIZE,
           rbuf_size: int = DEFAULT_RBUF_SIZE, options: int = 0,
           close_timeout: float = DEFAULT_CLOSE_TIMEOUT, ssl: Any = None,
           open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
           ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
           ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
           idle_timeout: Optional[float] = None,
           compression: Union[None, str, Deflate] = "deflate",
           compression_threshold: Optional[int] = None) -> WebSocket:
    """Runs the server side of the opening handshake (§4.2) on an accepted
    connection (socket, object with fileno(), or int descriptor).

    The request is ``ws.request`` (``ws.path`` its target). The subprotocol
    is the first one the client offered that is in ``protocols``, or what
    ``select_subprotocol(request)`` returns. ``headers`` are added to the
    101 response. An invalid request is answered with its HTTP status (400,
    405, 426, 431), the socket is closed and HandshakeError raised.
    ``ssl`` (a server-side ssl.SSLContext) runs TLS first (wss).
    ``open_timeout``, ``ping_interval``, ``ping_timeout``, ``idle_timeout``
    and ``close_timeout`` as for connect(): a client too slow for
    ``open_timeout`` (a request dribbled byte by byte included) gets one
    attempt at a 408 response and HandshakeTimeout is raised.
    ``compression`` ("deflate" by default, a lightws.Deflate, or None)
    accepts the client's first acceptable permessage-deflate offer (the
    deflate block is only allocated then); ``compression_threshold`` as
    for connect().
    """
    headers = header_list(headers)
    open_timeout = _timeout_arg(open_timeout, "open_timeout")
    open_deadline = None if not open_timeout else time.monotonic() + open_timeout
    ws = WebSocket(sock, client=False, timeout=timeout, max_size=max_size,
                   rbuf_size=rbuf_size, options=options, close_timeout=close_timeout,
                   ssl=ssl, ping_interval=ping_interval, ping_timeout=ping_timeout,
                   idle_timeout=idle_timeout, compression=compression,
                   compression_threshold=compression_threshold)
    try:
        ws._server_handshake(protocols, headers, select_subprotocol, open_deadline)
    except BaseException:
        ws._release()
        raise
    return ws


from ._broadcast import broadcast  # noqa: E402

# Last: server.py uses accept() from this module.
from .server import Server, serve  # noqa: E402
