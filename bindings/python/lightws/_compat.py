# SPDX-License-Identifier: MIT
"""What python websockets' API needs on top of lightws' own, shared by
lightws.asyncio and lightws.sync: its keyword names (mapped onto lightws'
own, which stay as aliases), HTTP responses of process_request and
origins, redirects, and the reconnect back-off.

Facts from websockets 13/14 (names, defaults, statuses); the code is ours.
"""

from __future__ import annotations

import email.utils
import http
import inspect
import logging
import random
import re
import os
import sys
import time
import uuid
from typing import (Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)
from urllib.parse import urljoin, urlsplit

from ._conn import _control_payload
from ._core import HeaderList, Request, Response
from .errors import ConcurrencyError, InvalidStatus, InvalidURI, SecurityError

#: websockets' max_size default (1 MiB) for lightws.asyncio and lightws.sync
WS_MAX_SIZE = 2 ** 20
#: statuses whose Location websockets follows, and how many times
REDIRECT_STATUSES = (300, 301, 302, 303, 307, 308)
MAX_REDIRECTS = 10
#: websockets' reconnect back-off (seconds): a random first delay up to
#: INITIAL, then MIN growing by FACTOR up to MAX
BACKOFF_INITIAL_DELAY = 5.0
BACKOFF_MIN_DELAY = 3.1
BACKOFF_MAX_DELAY = 90.0
BACKOFF_FACTOR = 1.618
#: statuses a reconnecting client retries (server errors)
RETRY_STATUSES = (500, 502, 503, 504)

_PY = f"Python/{sys.version_info.major}.{sys.version_info.minor}"


def ping_payload(waiting: Dict[bytes, Any], data: Any) -> bytes:
    """The payload of a new ping() as websockets: ``data`` (bytes-like, or
    str as UTF-8) or, for None, 4 random bytes no waiting ping uses;
    ConcurrencyError while a ping with that payload still waits."""
    if data is None:
        payload = os.urandom(4)
        while payload in waiting:
            payload = os.urandom(4)
        return payload
    payload = _control_payload(data)
    if payload in waiting:
        raise ConcurrencyError("already waiting for a pong with the same data")
    return payload


def pong_arrived(waiting: Dict[bytes, Tuple[Any, float]], data: bytes,
                 answer: Callable[[Any, float], None]) -> Optional[float]:
    """A pong with ``data`` came: it answers its ping and every one sent
    before it (websockets' rule), in sending order: each waiter is taken
    out and ``answer(waiter, seconds since its ping)`` called. Returns the
    round trip of the ping it matched, None when it matched none."""
    if data not in waiting:
        return None
    now = time.monotonic()
    for key in list(waiting):
        waiter, sent = waiting.pop(key)
        answer(waiter, now - sent)
        if key == data:
            return now - sent
    return None


def latency(user: Tuple[float, int], rtt_us: int) -> float:
    """websockets' ``latency``: the round trip of the last ping answered,
    ours (``user``: seconds, and the C keepalive rtt when it was measured)
    or, once a keepalive ping has measured since, the C one (``rtt_us``)."""
    value, rtt_then = user
    if rtt_then >= 0 and rtt_us == rtt_then:
        return value
    return rtt_us / 1e6


def adopt_identity(conn: Any, client: bool, logger: Any, sock: Any) -> None:
    """websockets' per-connection names on `conn`: ``id`` (a uuid4 naming
    it in logs), ``logger`` ("websockets.client"/"websockets.server" by
    default, a name or a Logger), ``remote_address`` and
    ``local_address`` (None when the socket cannot tell)."""
    conn.id = uuid.uuid4()
    if logger is None:
        logger = "websockets.client" if client else "websockets.server"
    conn.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
    conn.remote_address = None
    conn.local_address = None
    if sock is not None:
        try:
            conn.remote_address = sock.getpeername()
            conn.local_address = sock.getsockname()
        except OSError:
            pass


def default_agent() -> str:
    """User-Agent and Server value, as websockets': Python/x.y lightws/v."""
    from . import __version__
    return f"{_PY} lightws/{__version__}"


#: python websockets' keyword -> lightws' (both accepted; one at a time)
_ALIASES = {"additional_headers": "headers", "extra_headers": "headers",
            "subprotocols": "protocols"}


def normalize(kw: Dict[str, Any]) -> Dict[str, Any]:
    """Maps websockets' names to lightws' in place (a name given twice under
    both spellings is TypeError) and drops those that have no effect here.
    ``extensions`` other than None/[] and ``create_connection`` are
    TypeError: lightws negotiates permessage-deflate only (compression=)
    and makes its own connections."""
    for ws_name, own in _ALIASES.items():
        if ws_name in kw:
            if own in kw:
                raise TypeError(f"{ws_name}= and {own}= name the same option: pass one")
            kw[own] = kw.pop(ws_name)
    if "write_limit" in kw:
        v = kw["write_limit"]
        if not isinstance(v, (int, tuple)):
            raise TypeError("write_limit must be an int or a (high, low) tuple")
        kw["write_limit"] = int(v[0] if isinstance(v, tuple) else v)
    ext = kw.pop("extensions", None)
    if ext:
        raise TypeError("lightws negotiates permessage-deflate only: use compression=")
    if kw.pop("create_connection", None) is not None:
        raise TypeError("create_connection= is not supported: lightws makes its own "
                        "connection objects")
    mq = kw.pop("max_queue", 16)
    if mq is not None and not isinstance(mq, (int, tuple)):
        raise TypeError("max_queue must be an int, a (high, low) tuple or None")
    kw["max_queue"] = mq[0] if isinstance(mq, tuple) else mq
    return kw


def select_adapter(select: Optional[Callable[..., Any]], conn: Any
                   ) -> Optional[Callable[[Request], Optional[str]]]:
    """lightws' select_subprotocol(request) from either form: websockets'
    select_subprotocol(connection, subprotocols) (two parameters) or
    lightws' own (one)."""
    if select is None:
        return None
    try:
        params = [p for p in inspect.signature(select).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        two = len(params) >= 2
    except (TypeError, ValueError):
        two = False
    if two:
        return lambda req: select(conn, req.protocols)
    return select


def origin_ok(origin: Optional[str], origins: Sequence[Any]) -> bool:
    """websockets' origins check: a str matches exactly, None admits a
    request without Origin, a compiled pattern must fullmatch."""
    for o in origins:
        if o is None:
            if origin is None:
                return True
        elif isinstance(o, re.Pattern):
            if origin is not None and o.fullmatch(origin):
                return True
        elif origin == o:
            return True
    return False


def make_response(status: int, text: str, server_header: Optional[str] = None,
                  headers: Optional[List[Tuple[str, str]]] = None) -> Response:
    """An HTTP response with a text body, as websockets' respond(): Date,
    Connection: close, Content-Length, Content-Type text/plain."""
    body = text.encode("utf-8")
    h = HeaderList([("Date", email.utils.formatdate(usegmt=True)),
                    ("Connection", "close"),
                    ("Content-Length", str(len(body))),
                    ("Content-Type", "text/plain; charset=utf-8")])
    if server_header:
        h.append(("Server", server_header))
    if headers:
        h.extend(headers)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return Response(int(status), phrase, None, None, None, h, 0, body)


def _raw_headers(headers: Any) -> List[Tuple[str, str]]:
    raw = getattr(headers, "raw_items", None)
    if callable(raw):
        return list(raw())
    items = getattr(headers, "items", None)
    return list(items() if callable(items) else headers or [])


def serialize(resp: Any) -> bytes:
    """The bytes of a rejection response: lightws' Response or any object
    with websockets' Response fields (status_code, reason_phrase, headers,
    body). Content-Length is added when missing; CR/LF in a header is
    ValueError (no header injection)."""
    status = int(getattr(resp, "status_code"))
    phrase = str(getattr(resp, "reason_phrase", "") or "")
    body = bytes(getattr(resp, "body", b"") or b"")
    pairs = _raw_headers(getattr(resp, "headers", None))
    out = [f"HTTP/1.1 {status} {phrase}\r\n"]
    have_len = False
    for n, v in pairs:
        if any(c in str(n) + str(v) for c in "\r\n\0"):
            raise ValueError(f"CR, LF or NUL in header {n!r}")
        have_len = have_len or str(n).lower() == "content-length"
        out.append(f"{n}: {v}\r\n")
    if not have_len:
        out.append(f"Content-Length: {len(body)}\r\n")
    out.append("\r\n")
    return "".join(out).encode("latin-1") + body


def is_response(obj: Any) -> bool:
    return obj is not None and hasattr(obj, "status_code")


#: header names of the 101 that lightws' C core writes itself
_OWN_101 = frozenset(("upgrade", "connection", "sec-websocket-accept",
                      "sec-websocket-protocol", "sec-websocket-extensions"))


def response_101(key: str, protocol: Optional[str], extensions: Optional[str],
                 extra: List[Tuple[str, str]]) -> Response:
    """The 101 lightws will send, as a Response (process_response sees it,
    and may add headers to it)."""
    from .codec import accept_key
    acc = accept_key(key)
    h = HeaderList([("Upgrade", "websocket"), ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", acc)])
    if protocol:
        h.append(("Sec-WebSocket-Protocol", protocol))
    if extensions:
        h.append(("Sec-WebSocket-Extensions", extensions))
    h.extend(extra)
    return Response(101, "Switching Protocols", acc, protocol, extensions, h, 0)


def extra_of_101(resp: Any) -> List[Tuple[str, str]]:
    """The headers of a (maybe edited) 101 beyond those C writes itself."""
    return [(n, v) for n, v in _raw_headers(getattr(resp, "headers", None))
            if n.lower() not in _OWN_101]


def redirect_target(uri: str, err: InvalidStatus) -> Optional[str]:
    """Where a redirect response points (an absolute ws:// or wss:// URI),
    or None when ``err`` is no redirect (its status or no Location).
    http/https Locations become ws/wss. Raises SecurityError for a
    downgrade from wss, InvalidURI for another scheme."""
    if err.status not in REDIRECT_STATUSES or not err.location:
        return None
    new = urljoin(uri, err.location)
    u = urlsplit(new)
    scheme = {"http": "ws", "https": "wss"}.get(u.scheme, u.scheme)
    if scheme not in ("ws", "wss"):
        raise InvalidURI(new, "scheme isn't ws or wss")
    new = u._replace(scheme=scheme).geturl()
    if urlsplit(uri).scheme == "wss" and scheme == "ws":
        raise SecurityError(f"cannot follow redirect to non-secure URI {new}")
    return new


def too_many_redirects() -> SecurityError:
    return SecurityError(f"more than {MAX_REDIRECTS} redirects")


def backoff() -> Iterator[float]:
    """Delays between reconnection attempts, as websockets' connect()."""
    yield random.random() * BACKOFF_INITIAL_DELAY
    delay = BACKOFF_MIN_DELAY
    while delay < BACKOFF_MAX_DELAY:
        yield delay
        delay *= BACKOFF_FACTOR
    while True:
        yield BACKOFF_MAX_DELAY


def process_exception(exc: BaseException) -> Optional[BaseException]:
    """websockets' default: None (retry) for network errors, timeouts,
    broken handshake messages and 5xx statuses; the error otherwise."""
    from .errors import InvalidMessage
    if isinstance(exc, (EOFError, OSError, TimeoutError, InvalidMessage)):
        return None
    if isinstance(exc, InvalidStatus) and exc.status in RETRY_STATUSES:
        return None
    return exc


Headers101 = Union[List[Tuple[str, str]], HeaderList]
