# SPDX-License-Identifier: MIT
"""Exceptions raised by lightws, and the RFC 6455 numbers as IntEnums.

Every lightws exception derives from WebSocketError, except two that keep
the standard library's meaning: a would-block condition is BlockingIOError
(a WouldBlock subclass that also says what to wait for) and a system error
is OSError with its errno. Misuse of the API raises InvalidUsage, which is
also a ValueError.
"""

from __future__ import annotations

import enum
import errno
from typing import Any, Optional, Union

__all__ = [
    "Opcode", "CloseCode", "WebSocketError", "ProtocolError",
    "ConnectionClosed", "ConnectionClosedOK", "ConnectionClosedError",
    "HandshakeError", "InvalidUsage", "WouldBlock", "WANT_READ", "WANT_WRITE",
    "HandshakeTimeout", "PingTimeout", "IdleTimeout", "CloseTimeout",
    "Close", "InvalidHandshake", "InvalidStatus", "InvalidMessage", "InvalidURI",
    "SecurityError", "InvalidState", "InvalidOrigin", "WebSocketException",
    "ConcurrencyError", "InvalidUpgrade", "InvalidHeader", "NegotiationError",
    "PayloadTooBig",
]

WANT_READ = 1   #: WouldBlock.want bit: wait until the socket is readable
WANT_WRITE = 2  #: WouldBlock.want bit: wait until the socket is writable


class Opcode(enum.IntEnum):
    """Frame opcodes, RFC 6455 §5.2 (§11.8 registry)."""

    CONTINUATION = 0x0
    """§5.4: continuation of a fragmented message."""
    TEXT = 0x1
    """§5.6: a text frame; the message is UTF-8."""
    BINARY = 0x2
    """§5.6: a binary frame; the application interprets the bytes."""
    CLOSE = 0x8
    """§5.5.1: starts or answers the closing handshake."""
    PING = 0x9
    """§5.5.2: asks the peer for a pong with the same payload."""
    PONG = 0xA
    """§5.5.3: answers a ping (or serves as an unsolicited heartbeat)."""


class CloseCode(enum.IntEnum):
    """Close status codes, RFC 6455 §7.4.1 (registry §11.7)."""

    NORMAL = 1000
    """1000: normal closure; the purpose of the connection is fulfilled."""
    GOING_AWAY = 1001
    """1001: an endpoint is going away (server down, page navigated away)."""
    PROTOCOL_ERROR = 1002
    """1002: the endpoint terminates because of a protocol error."""
    UNSUPPORTED_DATA = 1003
    """1003: a type of data the endpoint cannot accept."""
    NO_STATUS = 1005
    """1005: reserved; the close frame had no status code (never sent)."""
    ABNORMAL = 1006
    """1006: reserved; closed without a close frame (never sent)."""
    INVALID_DATA = 1007
    """1007: data inconsistent with the message type (e.g. non-UTF-8 text)."""
    POLICY_VIOLATION = 1008
    """1008: a message violates the endpoint's policy."""
    MESSAGE_TOO_BIG = 1009
    """1009: a message too big to process."""
    MANDATORY_EXTENSION = 1010
    """1010: the client expected the server to negotiate an extension."""
    INTERNAL_ERROR = 1011
    """1011: the server met an unexpected condition."""
    TLS_HANDSHAKE = 1015
    """1015: reserved; the TLS handshake failed (never sent)."""


class WebSocketError(Exception):
    """Base class of lightws errors.

    ``errname`` is the C error name (``"UTF8"``, ``"BAD_KEY"``...) and
    ``errcode`` the negative LIGHTWS_ERR_* value, when one applies.
    """

    errname: Optional[str] = None
    errcode: int = 0


#: python websockets' name of the base class
WebSocketException = WebSocketError


class InvalidUsage(WebSocketError, ValueError):
    """The API was misused (LIGHTWS_ERR_INVALID, NOSPACE, BUSY...)."""

    def __init__(self, message: str, errname: Optional[str] = None,
                 errcode: int = 0) -> None:
        super().__init__(message)
        self.errname = errname
        self.errcode = errcode


class Close:
    """A close frame: ``code`` and ``reason`` (python websockets' Close)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Close) and other.code == self.code
                and other.reason == self.reason)

    def __hash__(self) -> int:
        return hash((self.code, self.reason))

    def __repr__(self) -> str:
        return f"Close(code={self.code}, reason={self.reason!r})"

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".rstrip()


class ConnectionClosed(WebSocketError):
    """The connection is closed: ``code`` and ``reason`` are those the peer
    sent (1005 if its close had no code, 1006 if the transport ended
    without a close frame).

    As python websockets: ``rcvd`` is the peer's Close (None when none
    came: code 1006), ``sent`` ours (None when lightws sent none), and
    ``rcvd_then_sent`` tells which came first when both did (None
    otherwise). ``ConnectionClosed(rcvd, sent)`` with Close objects also
    works, as in websockets."""

    def __init__(self, code: Union[int, Close, None], reason: Union[str, Close, None] = "",
                 rcvd_then_sent: Optional[bool] = None, *,
                 sent: Optional[Close] = None) -> None:
        if isinstance(code, Close) or code is None:
            # websockets' signature: (rcvd, sent, rcvd_then_sent)
            rcvd: Optional[Close] = code
            if isinstance(reason, Close):
                sent = reason
            c, r = (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")
        else:
            c, r = int(code), reason if isinstance(reason, str) else ""
            rcvd = None if c == 1006 else Close(c, r)
        super().__init__(c, r)
        self.code = c
        self.reason = r
        self.rcvd: Optional[Close] = rcvd
        self.sent: Optional[Close] = sent
        self.rcvd_then_sent: Optional[bool] = rcvd_then_sent

    def __str__(self) -> str:
        if self.reason:
            return f"connection closed: {self.code} {self.reason}"
        return f"connection closed: {self.code}"


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: code 1000, 1001 or 1005 (no status)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a close frame (1006)."""


class ProtocolError(ConnectionClosedError):
    """The peer broke RFC 6455.

    lightws already sent a close frame with ``close_code`` (1002 protocol
    error, 1007 invalid UTF-8, 1009 too big) and the stream is failed.
    Also a ConnectionClosedError, as python websockets reports a protocol
    error of the peer: ``sent`` is our Close(close_code), ``rcvd`` None
    and ``code`` 1006 (no close frame came from the peer)."""

    def __init__(self, message: str, close_code: int, errname: str,
                 errcode: int = 0) -> None:
        super().__init__(1006, "", sent=Close(close_code, message))
        self.args = (message,)
        self.close_code = close_code
        self.errname = errname
        self.errcode = errcode

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.errname}, close code {self.close_code})"


class PayloadTooBig(ProtocolError):
    """A frame or message over ``max_size`` (FRAME_TOO_BIG,
    MESSAGE_TOO_BIG): lightws sent close 1009. python websockets' name."""


class _TimedOut(ConnectionClosedError):
    """Base of the timeouts of an open connection (C: lightws_stream_tick):
    lightws ended the connection itself. ``code`` and ``close_code`` are
    the close code lightws sent (as ProtocolError.close_code), 1006 when
    none was sent; ``errname`` / ``errcode`` name the C error."""

    errname = "UNKNOWN"
    errcode = 0
    close_code = 1006

    def __init__(self, reason: str = "") -> None:
        super().__init__(self.close_code, reason)


class PingTimeout(_TimedOut):
    """A keepalive ping was not answered within ``ping_timeout``
    (PING_TIMEOUT): lightws sent close 1011 "keepalive ping timeout" and
    dropped the connection, as python websockets does."""

    errname, errcode, close_code = "PING_TIMEOUT", -12, 1011


class IdleTimeout(_TimedOut):
    """Nothing was received within the idle timeout (IDLE_TIMEOUT):
    lightws sent close 1001."""

    errname, errcode, close_code = "IDLE_TIMEOUT", -11, 1001


class CloseTimeout(_TimedOut):
    """The close handshake did not end within ``close_timeout``
    (CLOSE_TIMEOUT): the transport was dropped; code 1006."""

    errname, errcode, close_code = "CLOSE_TIMEOUT", -13, 1006


def closed_error(code: int, reason: str = "") -> ConnectionClosed:
    """The ConnectionClosed subclass that fits ``code``."""
    if code in (1000, 1001, 1005):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


class InvalidHandshake(WebSocketError):
    """Base of the opening handshake failures (python websockets' name)."""


class HandshakeError(InvalidHandshake):
    """The opening handshake failed (RFC 6455 §4).

    ``status`` is the HTTP status: on a client, what the server answered
    (``BAD_STATUS``); on a server, what lightws answered the client with
    (400, 405, 426, 431), or 0.
    """

    def __init__(self, message: str, errname: str, errcode: int = 0,
                 status: int = 0) -> None:
        super().__init__(message)
        self.errname = errname
        self.errcode = errcode
        self.status = status

    def __str__(self) -> str:
        s = f"{self.args[0]} ({self.errname})"
        return f"{s}, HTTP status {self.status}" if self.status else s


class InvalidStatus(HandshakeError):
    """The server answered the upgrade with another status than 101
    (BAD_STATUS), as python websockets' InvalidStatus: ``response`` is the
    server's Response (``status_code``, ``reason_phrase``, ``headers``,
    ``body`` as far as it came with the head, cut to its Content-Length:
    a short body is all there; lightws does not wait for more), ``status``
    its code and
    ``location`` its Location header (None without one), for a redirect
    that was not followed."""

    def __init__(self, response: Any, message: str = "", errname: str = "BAD_STATUS",
                 errcode: int = -70) -> None:
        status = int(getattr(response, "status_code", 0))
        super().__init__(message or f"server rejected WebSocket connection: HTTP {status}",
                         errname, errcode, status)
        self.response = response
        headers = getattr(response, "headers", None)
        get = getattr(headers, "get", None)
        self.location: Optional[str] = get("Location") if callable(get) else None

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidMessage(HandshakeError):
    """The peer's handshake message was malformed or never came whole (the
    connection closed during the opening handshake: errname EOF)."""


class SecurityError(HandshakeError):
    """A redirect that lightws refuses to follow: to a non-secure URI from
    a wss:// one, or more than 10 in a row."""

    def __init__(self, message: str, errname: str = "SECURITY", errcode: int = 0,
                 status: int = 0) -> None:
        super().__init__(message, errname, errcode, status)

    def __str__(self) -> str:
        return str(self.args[0])


#: the header each C handshake error is about (websockets' InvalidHeader.name)
_HEADER_OF = {"NO_UPGRADE": "Upgrade", "NO_CONNECTION": "Connection",
              "BAD_KEY": "Sec-WebSocket-Key", "BAD_VERSION": "Sec-WebSocket-Version",
              "NO_HOST": "Host", "BAD_ACCEPT": "Sec-WebSocket-Accept"}


class InvalidHeader(HandshakeError):
    """A handshake header is missing or wrong (BAD_KEY, BAD_VERSION,
    NO_HOST, BAD_ACCEPT), as python websockets' InvalidHeader: ``name``
    is the header's name; ``value`` its value as received, None when it
    was missing or lightws does not keep it (the C parser reports which
    check failed, not the bytes)."""

    value: Optional[str] = None

    @property
    def name(self) -> str:
        return _HEADER_OF.get(self.errname, "")


class InvalidUpgrade(InvalidHeader):
    """The Upgrade or Connection header is missing or wrong (NO_UPGRADE,
    NO_CONNECTION), as python websockets' InvalidUpgrade (an InvalidHeader
    there too)."""


class NegotiationError(HandshakeError):
    """The subprotocol or extension the server chose was not offered or
    is not acceptable (BAD_PROTOCOL, BAD_EXTENSION, BAD_EXTENSION_PARAMS),
    as python websockets' NegotiationError."""


class InvalidOrigin(HandshakeError):
    """Server: the client's Origin is not in ``origins`` (answered 403)."""


class InvalidURI(InvalidUsage):
    """A URI that is not a valid ws:// or wss:// URI (python websockets'
    InvalidURI; also an InvalidUsage, a ValueError): ``uri`` and ``msg``."""

    def __init__(self, uri: str, msg: str) -> None:
        super().__init__(f"{uri} isn't a valid URI: {msg}", "INVALID")
        self.uri = uri
        self.msg = msg


class InvalidState(WebSocketError):
    """An operation the connection's state does not allow."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two operations that cannot overlap did (websockets 14's name): a
    second ping() with the payload of one still waiting for its pong."""


class HandshakeTimeout(HandshakeError, TimeoutError):
    """The opening handshake did not finish within ``open_timeout``
    (HANDSHAKE_TIMEOUT). Also a TimeoutError, which is what python
    websockets raises for its open_timeout. A server answered 408 (one
    attempt) when it could; ``status`` is 408."""

    def __init__(self, message: str, errname: str = "HANDSHAKE_TIMEOUT",
                 errcode: int = -10, status: int = 408) -> None:
        # OSError's own __init__ would read (errno, strerror) out of the
        # arguments: set the fields of both bases explicitly.
        TimeoutError.__init__(self, errno.ETIMEDOUT, message)
        self.args = (message,)
        self.errname = errname
        self.errcode = errcode
        self.status = status

    def __str__(self) -> str:
        return HandshakeError.__str__(self)


class WouldBlock(BlockingIOError):
    """The operation would block (nonblocking mode: ``settimeout(0)``).

    ``want`` is a set of WANT_READ / WANT_WRITE bits: wait for that
    readiness of ``fileno()``, then call again; no progress is lost. For
    ``send()``, ``characters_written`` is how much of the message is out;
    the rest stays queued in the WebSocket and goes out with the next
    send() or flush().
    """

    def __init__(self, want: int = WANT_READ, written: int = 0) -> None:
        super().__init__(errno.EAGAIN, "operation would block")
        self.want = want
        self.characters_written = written
