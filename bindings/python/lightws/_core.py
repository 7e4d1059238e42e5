# SPDX-License-Identifier: MIT
"""The only module that touches the cffi extension (ffi, lib).

It turns C return codes into exceptions (one place: ``error_for``) and wraps
one C stream in ``CStream``: every C call runs under the stream's lock and
never blocks (the descriptor is nonblocking), so another thread can use the
stream while this one waits for readiness outside the lock.
"""

from __future__ import annotations

import enum
import errno
import os
import threading
from typing import (Any, Callable, Iterable, Iterator, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple, Union, overload)

from ._lightws import ffi, lib
from .errors import (WANT_READ, WANT_WRITE, CloseTimeout, ConnectionClosedError,
                     HandshakeError, HandshakeTimeout, IdleTimeout, InvalidHeader,
                     InvalidMessage, InvalidStatus, InvalidUpgrade, InvalidUsage,
                     NegotiationError, PayloadTooBig, PingTimeout, ProtocolError,
                     WebSocketError, WouldBlock, closed_error)

#: extra handshake headers: a mapping, an iterable of (name, value) pairs,
#: or an object with raw_items() / items() (http.client.HTTPMessage)
Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]], Any]

assert WANT_READ == lib.LIGHTWS_WANT_READ and WANT_WRITE == lib.LIGHTWS_WANT_WRITE
ERR_WOULDBLOCK = lib.LIGHTWS_ERR_WOULDBLOCK
ERR_CLOSED = lib.LIGHTWS_ERR_CLOSED
ERR_EOF = lib.LIGHTWS_ERR_EOF
ERR_SYSTEM = lib.LIGHTWS_ERR_SYSTEM
ERR_BUSY = lib.LIGHTWS_ERR_BUSY
ERR_INCOMPLETE = lib.LIGHTWS_ERR_INCOMPLETE
SEND_FRAGMENT = lib.LIGHTWS_SEND_FRAGMENT
SEND_MASK_IN_PLACE = lib.LIGHTWS_SEND_MASK_IN_PLACE
SEND_NO_COMPRESS = lib.LIGHTWS_SEND_NO_COMPRESS
DEFLATE_AVAILABLE = bool(lib.lightws_pmd_available())
DEFAULT_COMPRESSION_THRESHOLD = lib.LIGHTWS_PMD_DEFAULT_THRESHOLD
PMD_NAME = "permessage-deflate"
OPT_DIRECT = lib.LIGHTWS_OPT_DIRECT
OPT_NO_UTF8_CHECK = lib.LIGHTWS_OPT_NO_UTF8_CHECK
OPT_NO_AUTO_PONG = lib.LIGHTWS_OPT_NO_AUTO_PONG
OPT_NO_MASK_CHECK = lib.LIGHTWS_OPT_NO_MASK_CHECK
ROLE_SERVER = lib.LIGHTWS_SERVER
ROLE_CLIENT = lib.LIGHTWS_CLIENT
MASK_MODES = {"random": lib.LIGHTWS_MASK_RANDOM, "fixed": lib.LIGHTWS_MASK_FIXED,
              "zero": lib.LIGHTWS_MASK_ZERO}
DEFAULT_MAX_FRAME = lib.LIGHTWS_DEFAULT_MAX_FRAME
DEFAULT_MAX_MESSAGE = lib.LIGHTWS_DEFAULT_MAX_MESSAGE
RBUF_MIN = lib.LIGHTWS_RBUF_MIN
KEY_LEN = lib.LIGHTWS_KEY_LEN
ACCEPT_LEN = lib.LIGHTWS_ACCEPT_LEN
HANDSHAKE_HEAD_MAX = lib.LIGHTWS_HANDSHAKE_HEAD_MAX
HANDSHAKE_HEADERS_MAX = lib.LIGHTWS_HANDSHAKE_HEADERS_MAX
FRAME_HEADER_MAX = lib.LIGHTWS_FRAME_HEADER_MAX
CONTROL_MAX = lib.LIGHTWS_CONTROL_MAX
DECODE_EXPECT_MASKED = lib.LIGHTWS_DECODE_EXPECT_MASKED
DECODE_EXPECT_UNMASKED = lib.LIGHTWS_DECODE_EXPECT_UNMASKED
DECODE_ALLOW_RSV1 = lib.LIGHTWS_DECODE_ALLOW_RSV1
DECODE_ALLOW_RSV2 = lib.LIGHTWS_DECODE_ALLOW_RSV2
DECODE_ALLOW_RSV3 = lib.LIGHTWS_DECODE_ALLOW_RSV3
DECODE_ALLOW_NONMINIMAL = lib.LIGHTWS_DECODE_ALLOW_NONMINIMAL
UTF8_VALID = lib.LIGHTWS_UTF8_VALID
UTF8_INCOMPLETE = lib.LIGHTWS_UTF8_INCOMPLETE
ERR_HANDSHAKE_TIMEOUT = lib.LIGHTWS_ERR_HANDSHAKE_TIMEOUT
#: the timeouts of an open stream, each with its exception
_TIMED_OUT = {lib.LIGHTWS_ERR_PING_TIMEOUT: PingTimeout,
              lib.LIGHTWS_ERR_IDLE_TIMEOUT: IdleTimeout,
              lib.LIGHTWS_ERR_CLOSE_TIMEOUT: CloseTimeout}
_TIMEOUT_REASONS = {lib.LIGHTWS_ERR_PING_TIMEOUT: "keepalive ping timeout",
                    lib.LIGHTWS_ERR_IDLE_TIMEOUT: "idle timeout"}


def version() -> str:
    """Version string of the C library compiled into the extension."""
    return ffi.string(lib.lightws_version()).decode()


def errname(err: int) -> str:
    return ffi.string(lib.lightws_errname(err)).decode()


def strerror(err: int) -> str:
    return ffi.string(lib.lightws_strerror(err)).decode()


def close_code_for(err: int) -> int:
    return lib.lightws_close_code(err)


def http_status_for(err: int) -> int:
    return lib.lightws_http_status(err)


def close_code_valid(code: int) -> bool:
    return bool(lib.lightws_close_code_valid(code))


def error_table() -> List[Tuple[int, str, str, int, int]]:
    """(value, name, message, close code, HTTP status) of every C error."""
    out = []
    for err in range(-1, -100, -1):
        name = errname(err)
        if name != "UNKNOWN":
            out.append((err, name, strerror(err), close_code_for(err),
                        http_status_for(err)))
    return out


def error_for(rc: int, sys_errno: int = 0, status: int = 0) -> BaseException:
    """The exception for C return code ``rc`` (negative).

    WOULDBLOCK, CLOSED and EOF need the stream's state and are made by
    CStream; here they get neutral values.
    """
    name = errname(rc)
    msg = strerror(rc)
    if rc == ERR_SYSTEM:
        return OSError(sys_errno, os.strerror(sys_errno) if sys_errno else msg)
    if rc == ERR_WOULDBLOCK:
        return WouldBlock()
    if rc == ERR_EOF:
        return ConnectionClosedError(1006, "")
    if rc == ERR_CLOSED:
        return closed_error(1005, "")
    if rc == ERR_HANDSHAKE_TIMEOUT:
        return HandshakeTimeout(msg, name, rc, lib.lightws_http_status(rc))
    timed_out = _TIMED_OUT.get(rc)
    if timed_out is not None:
        # the reason is the one of the close frame C sent ("keepalive ping
        # timeout"), as python websockets reports it
        return timed_out(_TIMEOUT_REASONS.get(rc, msg))
    code = lib.lightws_close_code(rc)
    if code:
        cls = PayloadTooBig if name in ("FRAME_TOO_BIG", "MESSAGE_TOO_BIG") else ProtocolError
        return cls(msg, code, name, rc)
    if rc in (lib.LIGHTWS_ERR_HTTP_MALFORMED, lib.LIGHTWS_ERR_HTTP_VERSION):
        return InvalidMessage(msg, name, rc, status or lib.lightws_http_status(rc))
    kind = _HANDSHAKE_KINDS.get(name)
    if kind is not None:
        return kind(msg, name, rc, status or lib.lightws_http_status(rc))
    if -99 <= rc <= -60 or lib.lightws_http_status(rc):     # BUFFER_TOO_SMALL: 431
        return HandshakeError(msg, name, rc, status or lib.lightws_http_status(rc))
    if rc in (lib.LIGHTWS_ERR_INVALID, lib.LIGHTWS_ERR_NOSPACE, ERR_BUSY,
              lib.LIGHTWS_ERR_INCOMPLETE):
        return InvalidUsage(msg, name, rc)
    err = WebSocketError(msg)
    err.errname, err.errcode = name, rc
    return err


#: websockets' finer handshake error classes, by C error name
_HANDSHAKE_KINDS = {"NO_UPGRADE": InvalidUpgrade, "NO_CONNECTION": InvalidUpgrade,
                    "BAD_KEY": InvalidHeader, "BAD_VERSION": InvalidHeader,
                    "NO_HOST": InvalidHeader, "BAD_ACCEPT": InvalidHeader,
                    "BAD_PROTOCOL": NegotiationError, "BAD_EXTENSION": NegotiationError,
                    "BAD_EXTENSION_PARAMS": NegotiationError}


def _s(ptr, n: int) -> str:
    """A (pointer, length) pair of the C structs as str ('' for NULL)."""
    if ptr == ffi.NULL:
        return ""
    return ffi.unpack(ptr, n).decode("latin-1")


def _opt_s(ptr, n: int) -> Optional[str]:
    if ptr == ffi.NULL:
        return None
    return ffi.unpack(ptr, n).decode("latin-1")


def _cstr(value: Optional[str]):
    if value is None:
        return ffi.NULL
    return ffi.new("char[]", value.encode("utf-8"))


def header_list(headers: Optional[Headers], check: bool = False) -> List[Tuple[str, str]]:
    """The extra handshake headers as a list of (name, value) str pairs.

    Takes None, a mapping ({"Authorization": "..."}), an iterable of
    (name, value) pairs (a list of 2-tuples, repeated names allowed), or
    anything with raw_items() or items() (http.client.HTTPMessage, a
    multidict: raw_items() first, since it keeps repeated names). Anything
    else raises TypeError here, at the call, so a server finds out in
    serve() and not in every handshake. ``check`` (servers) also runs the
    C check of names and values now (a name that is not a token, CR or LF
    in a value, a character outside Latin-1: ValueError), which connect()
    and accept() meet at once anyway."""
    if headers is None:
        return []
    if isinstance(headers, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"headers must be a mapping or (name, value) pairs, "
                        f"not {type(headers).__name__}")
    items = getattr(headers, "raw_items", None)
    if not callable(items):
        items = getattr(headers, "items", None)
    pairs = items() if callable(items) else headers
    try:
        it = iter(pairs)
    except TypeError:
        raise TypeError(f"headers must be a mapping or (name, value) pairs, "
                        f"not {type(headers).__name__}") from None
    out: List[Tuple[str, str]] = []
    for pair in it:
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not isinstance(pair[0], str) or not isinstance(pair[1], str)):
            raise TypeError(f"a header is a (name, value) pair of str, not {pair!r}")
        out.append((pair[0], pair[1]))
    if check and out:
        try:
            build_response(new_key(), None, out)
        except WebSocketError as e:
            raise ValueError(f"headers {out!r}: {e}") from None
    return out


def _header_array(headers: Optional[Headers]):
    """(struct lightws_header[] or NULL, count, keepalive list)."""
    headers = header_list(headers)
    if not headers:
        return ffi.NULL, 0, []
    arr = ffi.new("struct lightws_header[]", len(headers))
    keep = [arr]
    for i, (name, value) in enumerate(headers):
        bn, bv = name.encode("latin-1"), value.encode("latin-1")
        cn, cv = ffi.new("char[]", bn), ffi.new("char[]", bv)
        keep += [cn, cv]
        arr[i].name, arr[i].name_len = cn, len(bn)
        arr[i].value, arr[i].value_len = cv, len(bv)
    return arr, len(headers), keep


class HeaderList(List[Tuple[str, str]]):
    """Handshake headers in wire order: a list of (name, value) pairs of str
    that also answers lookups by name, case-insensitively, as python
    websockets' Headers does: ``headers["Origin"]`` (KeyError when absent,
    KeyError too when the name is repeated: use get_all), ``get(name,
    default)``, ``get_all(name)``, ``"origin" in headers``, ``raw_items()``,
    ``keys()``, ``items()`` (first value per name). Iterating, indexing by
    int and len() are the list's: pairs, as lightws always gave them."""

    @overload  # type: ignore[override]
    def __getitem__(self, key: str) -> str: ...
    @overload
    def __getitem__(self, key: int) -> Tuple[str, str]: ...
    @overload
    def __getitem__(self, key: slice) -> List[Tuple[str, str]]: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            values = self.get_all(key)
            if len(values) != 1:
                raise KeyError(key if not values else f"{key} (repeated: use get_all)")
            return values[0]
        return list.__getitem__(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        """``headers["Location"] = "/x"`` appends a header (websockets'
        Headers adds a value too); an int or slice key is the list's."""
        if isinstance(key, str):
            self.append((key, value))
        else:
            list.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        """``del headers["Server"]`` removes every value of the name."""
        if isinstance(key, str):
            low = key.lower()
            self[:] = [(n, v) for n, v in list.__iter__(self) if n.lower() != low]
        else:
            list.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            low = key.lower()
            return any(n.lower() == low for n, _ in list.__iter__(self))
        return list.__contains__(self, key)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``key``, or ``default``."""
        low = key.lower()
        for n, v in list.__iter__(self):
            if n.lower() == low:
                return v
        return default

    def get_all(self, key: str) -> List[str]:
        """Every value of ``key``, in order (empty when absent)."""
        low = key.lower()
        return [v for n, v in list.__iter__(self) if n.lower() == low]

    def raw_items(self) -> Iterator[Tuple[str, str]]:
        return iter(list(list.__iter__(self)))

    def keys(self) -> List[str]:
        seen: List[str] = []
        for n, _ in list.__iter__(self):
            if n.lower() not in (k.lower() for k in seen):
                seen.append(n)
        return seen

    def items(self) -> List[Tuple[str, str]]:
        return [(k, self.get(k) or "") for k in self.keys()]


def _headers_out(arr, n: int) -> HeaderList:
    return HeaderList((_s(arr[i].name, arr[i].name_len), _s(arr[i].value, arr[i].value_len))
                      for i in range(n))


class State(enum.IntEnum):
    """A connection's state, as python websockets' protocol.State."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class Request(NamedTuple):
    """A client's upgrade request (RFC 6455 §4.2.1), copied out of C."""

    method: str
    path: str
    host: str
    key: str
    origin: Optional[str]
    protocol: Optional[str]       # first Sec-WebSocket-Protocol value
    extensions: Optional[str]
    version: int
    headers: HeaderList
    head_len: int

    @property
    def protocols(self) -> List[str]:
        """The subprotocols the client offered, in its order."""
        out: List[str] = []
        for name, value in self.headers:
            if name.lower() == "sec-websocket-protocol":
                out += [t.strip() for t in value.split(",") if t.strip()]
        return out

    def header(self, name: str) -> Optional[str]:
        """First header named ``name`` (case-insensitive), or None."""
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return None


class Response(NamedTuple):
    """A server's handshake response (RFC 6455 §4.2.2), copied out of C."""

    status: int
    reason: str
    accept: Optional[str]
    protocol: Optional[str]
    extensions: Optional[str]
    headers: HeaderList
    head_len: int
    body: bytes = b""

    @property
    def status_code(self) -> int:
        """python websockets' name of ``status``."""
        return self.status

    @property
    def reason_phrase(self) -> str:
        """python websockets' name of ``reason``."""
        return self.reason

    def header(self, name: str) -> Optional[str]:
        low = name.lower()
        for n, v in self.headers:
            if n.lower() == low:
                return v
        return None


def _request_out(req) -> Request:
    return Request(
        _s(req.method, req.method_len), _s(req.path, req.path_len),
        _s(req.host, req.host_len), _s(req.key, req.key_len),
        _opt_s(req.origin, req.origin_len), _opt_s(req.protocol, req.protocol_len),
        _opt_s(req.extensions, req.extensions_len), req.version,
        _headers_out(req.headers, req.num_headers), req.head_len)


def _body_cut(resp: Response, body: bytes) -> bytes:
    """What came after a rejecting response's head, cut to its
    Content-Length when it has one (later bytes are not its body)."""
    cl = resp.header("Content-Length")
    if cl is not None and cl.strip().isdigit():
        return body[:int(cl)]
    return body


def _response_out(resp) -> Response:
    return Response(
        resp.status, _s(resp.reason, resp.reason_len),
        _opt_s(resp.accept, resp.accept_len), _opt_s(resp.protocol, resp.protocol_len),
        _opt_s(resp.extensions, resp.extensions_len),
        _headers_out(resp.headers, resp.num_headers), resp.head_len)


class _ChunkFields(NamedTuple):
    nbytes: int        # payload bytes stored
    opcode: int        # Opcode.TEXT or Opcode.BINARY (of the message)
    frame_end: bool    # this chunk ends a frame
    message_end: bool  # this chunk ends the message


class Chunk(_ChunkFields):
    """What one message-aware read delivered: (nbytes, opcode, frame_end,
    message_end), plus the attribute ``compressed`` (its message came
    compressed, permessage-deflate), which is not a tuple field: a Chunk
    still unpacks and compares as the 4-tuple it always was."""

    compressed = False      # set on the instance only when True (no dict otherwise)

    def __new__(cls, nbytes: int, opcode: int, frame_end: bool, message_end: bool,
                compressed: bool = False) -> "Chunk":
        self = _ChunkFields.__new__(cls, nbytes, opcode, frame_end, message_end)
        if compressed:
            self.compressed = True
        return self

    def __repr__(self) -> str:
        return (f"Chunk(nbytes={self.nbytes}, opcode={self.opcode}, frame_end={self.frame_end}, "
                f"message_end={self.message_end}, compressed={self.compressed})")


# -- permessage-deflate (RFC 7692) ---------------------------------------------

class Deflate(NamedTuple):
    """permessage-deflate settings of one endpoint (RFC 7692), the C core's
    struct lightws_pmd_config. None keeps the C default, the low-memory
    one python websockets uses: our compressor's window 12 bits, zlib
    memLevel 5, level 6; the peer's compressor may use any window (15),
    context takeover in both directions.

    ``window_bits`` (9..15): our compressor's LZ77 window. ``peer_window_bits``
    (8..15): the largest window the peer may use (what our inflater
    allocates; a server whose client cannot be limited declines an offer
    when this is below 15). ``mem_level`` (1..9), ``level`` (0..9): zlib's.
    ``no_context_takeover``: reset our compressor after each message (and
    say so); ``peer_no_context_takeover``: ask the peer to. ``required``
    (client): a server that declines fails the connection with close 1010
    (ProtocolError, errname EXTENSION_DECLINED). ``work_size`` (256..65536,
    default 4096): each of the two work buffers (compressed frames are at
    most this big)."""

    window_bits: Optional[int] = None
    peer_window_bits: Optional[int] = None
    mem_level: Optional[int] = None
    level: Optional[int] = None
    no_context_takeover: bool = False
    peer_no_context_takeover: bool = False
    required: bool = False
    work_size: Optional[int] = None


class PerMessageDeflate(NamedTuple):
    """The permessage-deflate parameters agreed in the opening handshake
    (RFC 7692 §7.1), as ``ws.extensions`` lists them. ``*_max_window_bits``
    is None when the parameter was not sent (15)."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: Optional[int] = None
    client_max_window_bits: Optional[int] = None

    #: the extension's registered name, as in python websockets
    name = PMD_NAME

    def __str__(self) -> str:
        return response_value(self)


def deflate_available() -> bool:
    """True if the extension was built with zlib (compression possible)."""
    return DEFLATE_AVAILABLE


def _bits(v: int) -> Optional[int]:
    return v if v >= 8 else None


def _params_out(a) -> PerMessageDeflate:
    return PerMessageDeflate(bool(a.server_no_context_takeover),
                             bool(a.client_no_context_takeover),
                             _bits(a.server_max_window_bits), _bits(a.client_max_window_bits))


def _params_in(p: PerMessageDeflate):
    a = ffi.new("struct lightws_pmd_params *")
    a.server_no_context_takeover = int(bool(p.server_no_context_takeover))
    a.client_no_context_takeover = int(bool(p.client_no_context_takeover))
    a.server_max_window_bits = p.server_max_window_bits or 0
    a.client_max_window_bits = p.client_max_window_bits or 0
    return a


def deflate_config(compression: Any, threshold: Optional[int] = None):
    """The struct lightws_pmd_config * for a ``compression`` argument
    ("deflate", a Deflate, or None: no compression, returns None) and a
    ``compression_threshold`` (bytes; messages shorter go uncompressed;
    None: 32, the C default; 0: every message but empty ones compressed).
    ValueError for settings the C core refuses; a build without zlib
    returns None (nothing is offered or accepted)."""
    if compression is None:
        return None
    if isinstance(compression, str):
        if compression != "deflate":
            raise ValueError(f"compression must be 'deflate', a lightws.Deflate or None, "
                             f"not {compression!r}")
        d = Deflate()
    elif isinstance(compression, Deflate):
        d = compression
    else:
        raise TypeError(f"compression must be 'deflate', a lightws.Deflate or None, "
                        f"not {type(compression).__name__}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise TypeError("compression_threshold must be an int (bytes)")
        if not 0 <= threshold <= 0xFFFFFFFF:
            raise ValueError("compression_threshold out of range")
    if not DEFLATE_AVAILABLE:
        return None
    cfg = ffi.new("struct lightws_pmd_config *")
    try:
        cfg.window_bits = d.window_bits or 0
        cfg.peer_window_bits = d.peer_window_bits or 0
        cfg.mem_level = d.mem_level or 0
        cfg.level = -1 if d.level == 0 else (d.level or 0)
        cfg.work_size = d.work_size or 0
    except OverflowError:
        raise ValueError(f"permessage-deflate settings out of range: {d}") from None
    cfg.no_context_takeover = int(bool(d.no_context_takeover))
    cfg.peer_no_context_takeover = int(bool(d.peer_no_context_takeover))
    cfg.required = int(bool(d.required))
    cfg.threshold = 0 if threshold is None else max(1, threshold)
    out = ffi.new("char[]", 256)
    if lib.lightws_pmd_offer(out, 256, cfg) < 0 or not 256 <= (cfg.work_size or 4096) <= 65536:
        raise ValueError(f"permessage-deflate settings out of range: {d}")
    return cfg


def _pmd_block(cfg) -> Tuple[Any, Any, int]:
    """(owner, aligned pointer, size) of a deflate block for ``cfg``: one
    allocation per connection, kept next to the stream for its life (C
    lends it to zlib; nothing is allocated per message)."""
    size = lib.lightws_pmd_mem_size(cfg)
    raw = _alloc_uncleared("uint8_t[]", size + 16)
    off = -int(ffi.cast("uintptr_t", raw)) % 16
    return raw, raw + off, size


def offer_value(config: Any = "deflate") -> str:
    """Client: the Sec-WebSocket-Extensions value offering
    permessage-deflate with ``config`` ("deflate" or a Deflate)."""
    cfg = deflate_config(config)
    if cfg is None:
        raise error_for(lib.LIGHTWS_ERR_UNSUPPORTED)
    out = ffi.new("char[]", 256)
    n = lib.lightws_pmd_offer(out, 256, cfg)
    if n < 0:
        raise error_for(n)
    return ffi.string(out, n).decode("latin-1")


def accept_offer(value: Union[str, Sequence[str]], config: Any = "deflate") -> Optional[PerMessageDeflate]:
    """Server: the parameters to answer for the first acceptable
    permessage-deflate offer in ``value`` (a Sec-WebSocket-Extensions
    value, or a list of them: one list of offers), None to decline."""
    cfg = deflate_config(config)
    if cfg is None:
        raise error_for(lib.LIGHTWS_ERR_UNSUPPORTED)
    a = ffi.new("struct lightws_pmd_params *")
    for v in ([value] if isinstance(value, str) else value):
        b = v.encode("latin-1")
        rc = lib.lightws_pmd_accept(b, len(b), cfg, a)
        if rc < 0:
            raise error_for(rc)
        if rc:
            return _params_out(a)
    return None


def response_value(params: PerMessageDeflate) -> str:
    """Server: the Sec-WebSocket-Extensions value answering ``params``."""
    out = ffi.new("char[]", 256)
    n = lib.lightws_pmd_response(out, 256, _params_in(params))
    if n < 0:
        raise error_for(n)
    return ffi.string(out, n).decode("latin-1")


def check_response(value: Union[str, Sequence[str]], config: Any = "deflate") -> PerMessageDeflate:
    """Client: checks the server's Sec-WebSocket-Extensions value(s)
    against what offer_value(config) offered; the agreed parameters, or
    HandshakeError (BAD_EXTENSION, BAD_EXTENSION_PARAMS)."""
    cfg = deflate_config(config)
    if cfg is None:
        raise error_for(lib.LIGHTWS_ERR_UNSUPPORTED)
    return _check_response(value, cfg)


def _check_response(value: Union[str, Sequence[str]], cfg) -> PerMessageDeflate:
    v = value if isinstance(value, str) else ", ".join(value)
    b = v.encode("latin-1")
    a = ffi.new("struct lightws_pmd_params *")
    rc = lib.lightws_pmd_check_response(b, len(b), cfg, a)
    if rc < 0:
        raise error_for(rc)
    return _params_out(a)


class Piece(NamedTuple):
    """What recv_piece() delivered: a copy of one piece of a message."""

    data: bytes
    opcode: int        # Opcode.TEXT or Opcode.BINARY (of the message)
    frame_end: bool    # this piece ends a frame (a compressed message: only at its end)
    message_end: bool  # this piece ends the message
    compressed: bool   # its message came compressed (RSV1, permessage-deflate)


_new_tuple = tuple.__new__


def make_chunk(n: int, opcode: int, frame_end: Any, message_end: Any, compressed: Any) -> Chunk:
    """Chunk(...) for the read paths, without Python-level __new__."""
    ch = _new_tuple(Chunk, (n, opcode, bool(frame_end), bool(message_end)))
    if compressed:
        ch.compressed = True
    return ch


class CStream:
    """One struct lightws_stream plus its receive buffer, owned by Python.

    Every method makes one nonblocking C call under ``self.lock`` and
    raises WouldBlock (with ``want`` read under the same lock), an
    exception from ``error_for``, or ConnectionClosed built from the
    stream's close code and reason.
    """

    def __init__(self, fd: int, role: int, rbuf_size: int = 65536,
                 options: int = 0) -> None:
        self.lock = threading.Lock()
        self._s = ffi.new("struct lightws_stream *")
        # not cleared: C writes every byte before reading it, and pages of
        # an idle connection's buffer are never touched (resident memory)
        self._rbuf = _alloc_uncleared("uint8_t[]", rbuf_size)
        self._chunk = ffi.new("struct lightws_chunk *")
        self._lenp = ffi.new("size_t *")
        self._info = ffi.new("int *")
        # bound once: the lean paths take the lock without `with`
        self._acquire, self._release = self.lock.acquire, self.lock.release
        self._hdrs = ffi.new("struct lightws_header[]", HANDSHAKE_HEADERS_MAX)
        self._opts = None
        self._timeouts = None
        # permessage-deflate: the config offered or accepted, and the
        # block C lends to zlib (owner kept here for the stream's life)
        self._pmd_cfg = None
        self._pmd_raw: Any = None
        self._pmd_mem: Any = None
        self._pmd_size = 0
        self._req = None        # the parsed request (lightws_server_deflate reads it)
        self.fd = fd
        self.role = role
        self.last_pong: Optional[bytes] = None
        #: called with each pong's payload as a read call records it
        self.on_pong: Optional[Callable[[bytes], None]] = None
        self.tls: Optional["TlsIO"] = None
        rc = lib.lightws_stream_init(self._s, role, fd, self._rbuf, rbuf_size,
                                     options)
        if rc < 0:
            raise error_for(rc, ffi.errno)

    # -- errors ------------------------------------------------------------
    def _fail(self, rc: int) -> BaseException:
        # Called with the lock held, right after the failing call.
        if rc == ERR_WOULDBLOCK:
            return WouldBlock(lib.lightws_stream_want(self._s))
        if rc == ERR_CLOSED:
            return closed_error(lib.lightws_stream_close_code(self._s),
                                self._close_reason())
        return error_for(rc, ffi.errno)

    def _close_reason(self) -> str:
        p = lib.lightws_stream_close_reason(self._s, self._lenp)
        if p == ffi.NULL or self._lenp[0] == 0:
            return ""
        return ffi.unpack(p, self._lenp[0]).decode("utf-8", "replace")

    def _note_pong(self) -> None:
        p = lib.lightws_stream_pong_data(self._s, self._lenp)
        if p != ffi.NULL:
            self.last_pong = ffi.unpack(ffi.cast("char *", p), self._lenp[0])
            if self.on_pong is not None:
                self.on_pong(self.last_pong)    # under the lock: no C call in it

    # -- configuration -----------------------------------------------------
    def set_limits(self, max_frame: int, max_message: int) -> None:
        with self.lock:
            lib.lightws_stream_set_limits(self._s, max_frame, max_message)

    def set_mask_mode(self, mode: str) -> None:
        with self.lock:
            rc = lib.lightws_stream_set_mask_mode(self._s, MASK_MODES[mode])
        if rc < 0:
            raise error_for(rc)

    def feed(self, data: bytes) -> None:
        with self.lock:
            rc = lib.lightws_stream_feed(self._s, ffi.from_buffer("uint8_t[]", data),
                                         len(data))
        if rc < 0:
            raise error_for(rc)

    # -- reading -----------------------------------------------------------
    def read_into(self, buf) -> Chunk:
        """lightws_stream_read: up to len(buf) bytes of one message."""
        with ffi.from_buffer("uint8_t[]", buf, require_writable=True) as p:
            with self.lock:
                n = lib.lightws_stream_read(self._s, p, len(p), self._chunk)
                self._note_pong()
                if n < 0:
                    raise self._fail(n)
                c = self._chunk
                return make_chunk(n, c.opcode, c.frame_end, c.message_end, c.compressed)

    def recv_chunk(self) -> Tuple[bytes, int, bool, bool, bool]:
        """lightws_stream_recv: the next piece, copied out of rbuf (or,
        inflated, out of the deflate block's work buffer), and whether its
        message came compressed (chunk->compressed)."""
        with self.lock:
            n = lib.lightws_stream_recv(self._s, self._chunk)
            self._note_pong()
            if n < 0:
                raise self._fail(n)
            c = self._chunk
            return (ffi.buffer(c.data, n)[:] if n else b"", c.opcode,
                    bool(c.frame_end), bool(c.message_end), bool(c.compressed))

    def recv_msg(self):
        """lightws_stream_recv for WebSocket.recv() through one glue call:
        (data, opcode, message_end), or None when it would block (no
        exception)."""
        c = self._chunk
        info = self._info
        self._acquire()
        try:
            n = lib.lightws_py_recv(self._s, c, info)
            i = info[0]
            if i & 1024:
                self._note_pong()
            if n < 0:
                if n == ERR_WOULDBLOCK:
                    return None
                raise self._fail(n)
            return (ffi.buffer(c.data, n)[:] if n else b"", i & 255, i & 256)
        finally:
            self._release()

    def read_bytes_into(self, buf) -> int:
        """lightws_stream_read_bytes: payload bytes, boundaries ignored."""
        with ffi.from_buffer("uint8_t[]", buf, require_writable=True) as p:
            with self.lock:
                n = lib.lightws_stream_read_bytes(self._s, p, len(p))
                self._note_pong()
                if n < 0:
                    raise self._fail(n)
                return n

    # -- writing -----------------------------------------------------------
    def send(self, opcode: int, data, flags: int = 0) -> int:
        """lightws_stream_send: one (part of a) frame; bytes sent."""
        if flags & SEND_MASK_IN_PLACE:
            cm = ffi.from_buffer("uint8_t[]", data, require_writable=True)
        else:
            cm = ffi.from_buffer("uint8_t[]", data)
        with cm as p:
            with self.lock:
                n = lib.lightws_stream_send(self._s, opcode, p, len(p), flags)
                if n < 0:
                    raise self._fail(n)
                return n

    def send_fast(self, opcode: int, data, flags: int = 0) -> int:
        """The lean lightws_stream_send of WebSocket.send(): bytes go to C
        as they are, other buffers through one ffi.from_buffer. Returns
        the payload bytes NOT sent (0: the whole frame went out), or -1
        when nothing went out (WOULDBLOCK); other errors raise."""
        if flags & SEND_MASK_IN_PLACE:
            try:
                data = ffi.from_buffer("char[]", data, True)     # positional: faster
            except BufferError:
                raise TypeError("mask_in_place needs a writable buffer (bytearray...)") from None
        elif data.__class__ is not bytes:
            data = ffi.from_buffer(data)
        size = len(data)
        self._acquire()
        try:
            n = lib.lightws_stream_send(self._s, opcode, data, size, flags)
            if n >= 0:
                return size - n
            if n == ERR_WOULDBLOCK:
                return -1
            err = self._fail(n)
        finally:
            self._release()
        data = None     # release the buffer before the traceback holds it
        raise err

    def send_encoded(self, frame: bytes) -> int:
        """Writes a whole frame encoded elsewhere (broadcast: one server
        frame for many connections) straight to the descriptor, only
        between frames: lightws_stream_flush() first says the stream has
        no frame partly written. Returns the bytes written (a short count
        leaves the connection mid-frame: the caller drops it), or -1 when
        nothing may be written now (a frame of ours partly out, or would
        block)."""
        self._acquire()
        try:
            rc = lib.lightws_stream_flush(self._s)
            if rc < 0:
                return -1
            try:
                return os.write(self.fd, frame)
            except BlockingIOError:
                return -1
        finally:
            self._release()

    def read_idle(self) -> bool:
        """True when a read would start with read(2) on the descriptor: the
        receive buffer holds no unread byte, no control frame waits to be
        written and the stream is open (glue in _build.py). A blocking
        reader may then wait for POLLIN first, saving the EAGAIN read."""
        self._acquire()     # a writer thread's C call may be changing the state
        try:
            return lib.lightws_py_read_idle(self._s) != 0
        finally:
            self._release()

    def write(self, data) -> int:
        """lightws_stream_write: one binary frame (or its continuation)."""
        with ffi.from_buffer("uint8_t[]", data) as p:
            with self.lock:
                n = lib.lightws_stream_write(self._s, p, len(p))
                if n < 0:
                    raise self._fail(n)
                return n

    def sendv(self, msgs: Sequence[Tuple[int, object]]) -> int:
        """lightws_stream_sendv: several complete frames, one syscall."""
        fb = ffi.from_buffer
        keep = [fb(data) for _, data in msgs]
        try:
            arr = ffi.new("struct lightws_msg[]",
                          [(p, len(p), op) for p, (op, _) in zip(keep, msgs)])
            with self.lock:
                n = lib.lightws_stream_sendv(self._s, arr, len(keep))
                if n < 0:
                    raise self._fail(n)
                return n
        finally:
            keep.clear()        # releases the buffers (bytearrays resize again)

    def _control(self, fn, data: bytes) -> None:
        with self.lock:
            rc = fn(self._s, ffi.from_buffer("uint8_t[]", data), len(data))
            if rc < 0:
                raise self._fail(rc)

    def ping(self, data: bytes = b"") -> None:
        self._control(lib.lightws_stream_ping, data)

    def pong(self, data: bytes = b"") -> None:
        self._control(lib.lightws_stream_pong, data)

    def close(self, code: int, reason: bytes) -> None:
        with self.lock:
            rc = lib.lightws_stream_close(self._s, code, reason, len(reason))
            if rc < 0:
                raise self._fail(rc)

    def flush(self) -> bool:
        """Writes a pending control frame. True when nothing is pending,
        False when a data frame is partly written (it must finish first)."""
        with self.lock:
            rc = lib.lightws_stream_flush(self._s)
            if rc == ERR_BUSY:
                return False
            if rc < 0:
                raise self._fail(rc)
            return True

    # -- time --------------------------------------------------------------
    def set_timeouts(self, handshake: int = 0, idle: int = 0, ping_interval: int = 0,
                     ping_timeout: int = 0, close: int = 0) -> None:
        """lightws_stream_set_timeouts (milliseconds, 0: off; all 0: time
        off), clocks started now."""
        t = self._timeouts
        if t is None:
            t = self._timeouts = ffi.new("struct lightws_timeouts *")
        t.handshake, t.idle, t.close = handshake, idle, close
        t.ping_interval, t.ping_timeout = ping_interval, ping_timeout
        with self.lock:
            lib.lightws_stream_set_timeouts(self._s, t, lib.lightws_now())

    def clock(self) -> int:
        """Ticks the stream if its deadline is due (lightws_stream_tick)
        and returns the milliseconds until the next deadline (>= 1), or -1
        for none. Raises the timeout error (PingTimeout, HandshakeTimeout...)
        of a tick that failed the stream; its close frame, if any, is
        queued and sent as far as the transport allowed."""
        self._acquire()
        try:
            ms = lib.lightws_py_clock(self._s, self._info)
            rc = self._info[0]
        finally:
            self._release()
        if rc < 0:
            raise error_for(rc)
        return ms

    def rtt(self) -> int:
        """lightws_stream_rtt: microseconds, 0 before the first pong."""
        return lib.lightws_stream_rtt(self._s)

    # -- state -------------------------------------------------------------
    def want(self) -> int:
        with self.lock:
            return lib.lightws_stream_want(self._s)

    def close_code(self) -> int:
        with self.lock:
            return lib.lightws_stream_close_code(self._s)

    def close_reason(self) -> str:
        with self.lock:
            return self._close_reason()

    def is_open(self) -> bool:
        """No close frame sent or received and the stream not failed."""
        self._acquire()
        try:
            return (lib.lightws_stream_closing(self._s) == 0
                    and lib.lightws_stream_close_code(self._s) == 0
                    and lib.lightws_stream_error(self._s) == 0)
        finally:
            self._release()

    def closing(self) -> int:
        with self.lock:
            return lib.lightws_stream_closing(self._s)

    def detach(self) -> None:
        """Moves the stream off its descriptor onto a transport whose every
        read and write fails (EBADF): call before closing the descriptor,
        so no later call can reach a socket that reuses its number."""
        with self.lock:
            lib.lightws_py_detach(self._s)

    def error(self) -> int:
        with self.lock:
            return lib.lightws_stream_error(self._s)

    # -- opening handshake -------------------------------------------------
    def client_start(self, host: str, path: str, protocols: Optional[str] = None,
                     origin: Optional[str] = None,
                     headers: Optional[Headers] = None, max_head: int = 0,
                     deflate: Any = None) -> None:
        """lightws_client_start; WouldBlock means: continue with
        client_handshake() when ready. ``deflate`` (a struct
        lightws_pmd_config *, deflate_config()) offers permessage-deflate;
        its block is made here and kept for the stream's life."""
        opt = ffi.new("struct lightws_client_options *")
        keep = [_cstr(protocols), _cstr(origin)]
        arr, n, hkeep = _header_array(headers)
        opt.protocols, opt.origin = keep
        opt.headers, opt.num_headers, opt.max_head = arr, n, max_head
        if deflate is not None:
            self._pmd_cfg = deflate
            self._pmd_raw, self._pmd_mem, self._pmd_size = _pmd_block(deflate)
            opt.deflate = deflate
            opt.deflate_mem, opt.deflate_mem_size = self._pmd_mem, self._pmd_size
        chost, cpath = _cstr(host), _cstr(path)
        with self.lock:
            rc = lib.lightws_client_start(self._s, chost, cpath, opt)
            if rc < 0:
                raise self._handshake_fail(rc)

    def client_handshake(self) -> Response:
        resp = ffi.new("struct lightws_response *")
        resp.headers, resp.max_headers = self._hdrs, HANDSHAKE_HEADERS_MAX
        with self.lock:
            rc = lib.lightws_client_handshake(self._s, resp)
            if rc == lib.LIGHTWS_ERR_BAD_STATUS:      # *resp is filled then
                out = _response_out(resp)
                n = ffi.new("size_t *")
                p = lib.lightws_client_rejected_body(self._s, n)
                body = ffi.unpack(ffi.cast("char *", p), n[0]) if p != ffi.NULL else b""
                raise InvalidStatus(out._replace(body=_body_cut(out, body)))
            if rc < 0:
                raise self._handshake_fail(rc, resp.status)
            return _response_out(resp)

    def server_read_request(self, max_head: int = 0) -> Request:
        """lightws_server_read_request; a HandshakeError carries the HTTP
        status to reject with and, as ``request``, what was parsed."""
        req = ffi.new("struct lightws_request *")
        req.headers, req.max_headers = self._hdrs, HANDSHAKE_HEADERS_MAX
        with self.lock:
            rc = lib.lightws_server_read_request(self._s, req, max_head)
            if rc < 0:
                err = self._handshake_fail(rc)
                if isinstance(err, HandshakeError):
                    try:
                        err.request = _request_out(req)  # type: ignore[attr-defined]
                    except Exception:  # a head too broken to copy out
                        err.request = None  # type: ignore[attr-defined]
                raise err
            self._req = req
            return _request_out(req)

    def server_deflate(self, cfg) -> Optional[PerMessageDeflate]:
        """Between server_read_request() and server_accept(): accepts the
        client's first acceptable permessage-deflate offer under ``cfg``
        (lightws_server_deflate, with a block made only then) and returns
        the agreed parameters, or None (declined: no block)."""
        req = self._req
        if req is None:
            raise InvalidUsage("server_deflate() needs a request read first", "INVALID")
        a = ffi.new("struct lightws_pmd_params *")
        found = False
        for i in range(req.num_headers):
            h = req.headers[i]
            if _s(h.name, h.name_len).lower() != "sec-websocket-extensions":
                continue
            rc = lib.lightws_pmd_accept(h.value, h.value_len, cfg, a)
            if rc < 0:
                raise error_for(rc)
            if rc:
                found = True
                break
        if not found:
            return None
        raw, mem, size = _pmd_block(cfg)
        with self.lock:
            rc = lib.lightws_server_deflate(self._s, req, cfg, mem, size)
        if rc < 0:
            raise error_for(rc)
        if rc == 0:
            return None
        self._pmd_cfg, self._pmd_raw, self._pmd_mem, self._pmd_size = cfg, raw, mem, size
        return _params_out(a)

    def client_deflate(self, resp: Response) -> Optional[PerMessageDeflate]:
        """After client_handshake(): the agreed parameters when the server
        accepted our offer, else None (and the block is dropped)."""
        with self.lock:
            on = lib.lightws_stream_deflate(self._s)
        if not on or self._pmd_cfg is None:
            self._pmd_raw = self._pmd_mem = None
            self._pmd_size = 0
            return None
        values = [v for n, v in resp.headers if n.lower() == "sec-websocket-extensions"]
        return _check_response(values, self._pmd_cfg)

    def deflate_on(self) -> bool:
        with self.lock:
            return bool(lib.lightws_stream_deflate(self._s))

    def server_accept(self, protocol: Optional[str] = None,
                      headers: Optional[Headers] = None) -> None:
        arr, n, keep = _header_array(headers)
        cproto = _cstr(protocol)
        with self.lock:
            rc = lib.lightws_server_accept(self._s, cproto, arr, n)
            if rc < 0:
                raise self._handshake_fail(rc)

    def server_reject(self, status: int, headers: Optional[Headers] = None) -> None:
        arr, n, keep = _header_array(headers)
        with self.lock:
            rc = lib.lightws_server_reject(self._s, status, arr, n)
            if rc < 0:
                raise self._handshake_fail(rc)

    def _handshake_fail(self, rc: int, status: int = 0) -> BaseException:
        if rc == ERR_WOULDBLOCK:
            return WouldBlock(lib.lightws_stream_want(self._s))
        if rc == ERR_EOF:
            return InvalidMessage("connection closed during the opening handshake",
                                  "EOF", rc)
        return error_for(rc, ffi.errno, status)


# -- sans-IO codec (lightws.codec re-exports these) --------------------------

class Frame(NamedTuple):
    """A frame head (RFC 6455 §5.2)."""

    opcode: int
    length: int
    fin: bool = True
    mask: Optional[bytes] = None   # 4-byte masking key, or None
    rsv: int = 0                   # RSV bits as in byte 0: 0x40, 0x20, 0x10
    header_len: int = 0            # decode: bytes of the head


def _frame_struct(frame: Frame):
    f = ffi.new("struct lightws_frame *")
    f.length, f.fin, f.rsv, f.opcode = frame.length, int(frame.fin), frame.rsv, frame.opcode
    if frame.mask is not None:
        if len(frame.mask) != 4:
            raise ValueError("a masking key has 4 bytes")
        f.masked = 1
        f.mask = list(frame.mask)
    return f


def frame_header_size(length: int, masked: bool = False) -> int:
    return lib.lightws_frame_header_size(length, int(masked))


def encode_frame_header(frame: Frame) -> bytes:
    """The head of ``frame`` in its shortest form; InvalidUsage for a
    frame RFC 6455 forbids sending."""
    f = _frame_struct(frame)
    out = ffi.new("uint8_t[]", FRAME_HEADER_MAX)
    n = lib.lightws_frame_encode(f, out, FRAME_HEADER_MAX)
    if n < 0:
        raise error_for(n)
    return ffi.buffer(out, n)[:]


def encode_frame_header_unchecked(frame: Frame) -> bytes:
    f = _frame_struct(frame)
    out = ffi.new("uint8_t[]", FRAME_HEADER_MAX)
    n = lib.lightws_frame_encode_unchecked(f, out)
    return ffi.buffer(out, n)[:]


def decode_frame_header(data, flags: int = 0) -> Tuple[Optional[Frame], int]:
    """(frame, head length), or (None, bytes needed so far) when ``data``
    ends inside the head. ProtocolError for a head the RFC forbids."""
    f = ffi.new("struct lightws_frame *")
    with ffi.from_buffer("uint8_t[]", data) as p:
        n = lib.lightws_frame_decode(f, p, len(p), flags)
    if n == ERR_INCOMPLETE:
        return None, f.header_len
    if n < 0:
        raise error_for(n)
    mask = bytes(f.mask) if f.masked else None
    return Frame(f.opcode, f.length, bool(f.fin), mask, f.rsv, f.header_len), n


_alloc_uncleared = ffi.new_allocator(should_clear_after_alloc=False)


def mask(data, key: bytes, offset: int = 0) -> bytes:
    """``data`` XORed with the 4-byte ``key`` (§5.3), starting at payload
    byte number ``offset``."""
    if len(key) != 4:
        raise ValueError("a masking key has 4 bytes")
    with ffi.from_buffer("uint8_t[]", data) as src:
        n = len(src)
        out = _alloc_uncleared("uint8_t[]", max(n, 1))  # every byte is written
        lib.lightws_mask_copy(out, src, n, ffi.from_buffer("uint8_t[]", key), offset)
    return ffi.buffer(out, n)[:]


def mask_into(buf, key: bytes, offset: int = 0) -> None:
    """Masks a writable buffer (bytearray, memoryview) in place."""
    if len(key) != 4:
        raise ValueError("a masking key has 4 bytes")
    with ffi.from_buffer("uint8_t[]", buf, require_writable=True) as p:
        lib.lightws_mask(p, len(p), ffi.from_buffer("uint8_t[]", key), offset)


class Utf8Validator:
    """Incremental UTF-8 validation (§8.1) across any split of the text."""

    def __init__(self) -> None:
        self._u = ffi.new("struct lightws_utf8 *")

    def feed(self, data) -> bool:
        """True if the text so far is complete valid UTF-8, False if it ends
        inside a sequence; ProtocolError (UTF8, 1007) if it can never be."""
        with ffi.from_buffer("uint8_t[]", data) as p:
            rc = lib.lightws_utf8_feed(self._u, p, len(p))
        if rc < 0:
            raise error_for(rc)
        return rc == UTF8_VALID

    def reset(self) -> None:
        self._u = ffi.new("struct lightws_utf8 *")


def new_key() -> str:
    """A fresh Sec-WebSocket-Key (base64 of 16 random bytes)."""
    key = ffi.new("char[]", KEY_LEN + 1)
    rc = lib.lightws_handshake_key(key)
    if rc < 0:
        raise error_for(rc, ffi.errno)
    return ffi.string(key).decode()


def accept_key(key) -> str:
    """Sec-WebSocket-Accept for ``key`` (§4.2.2)."""
    b = key.encode() if isinstance(key, str) else bytes(key)
    out = ffi.new("char[]", ACCEPT_LEN + 1)
    lib.lightws_handshake_accept(b, len(b), out)
    return ffi.string(out).decode()


def _grow(fn, size: int = 1024) -> bytes:
    while True:
        out = ffi.new("uint8_t[]", size)
        n = fn(out, size)
        if n == lib.LIGHTWS_ERR_NOSPACE and size < (1 << 20):
            size *= 4
            continue
        if n < 0:
            raise error_for(n)
        return ffi.buffer(out, n)[:]


def build_request(host: str, path: str = "/", key: Optional[str] = None,
                  protocols: Optional[str] = None, origin: Optional[str] = None,
                  headers: Optional[Headers] = None) -> bytes:
    """A client upgrade request (§4.1). ``key`` defaults to new_key()."""
    arr, n, keep = _header_array(headers)
    k = _cstr(key if key is not None else new_key())
    h, p, pr, o = _cstr(host), _cstr(path), _cstr(protocols), _cstr(origin)
    return _grow(lambda out, size: lib.lightws_handshake_build_request(
        out, size, h, p, k, pr, o, arr, n))


def parse_request(data, max_head: int = 0) -> Optional[Request]:
    """The upgrade request at the start of ``data``, None if incomplete;
    HandshakeError (with ``status``) for an invalid one."""
    req = ffi.new("struct lightws_request *")
    hdrs = ffi.new("struct lightws_header[]", HANDSHAKE_HEADERS_MAX)
    req.headers, req.max_headers = hdrs, HANDSHAKE_HEADERS_MAX
    with ffi.from_buffer("uint8_t[]", data) as p:
        n = lib.lightws_handshake_parse_request(req, p, len(p), max_head)
        if n == ERR_INCOMPLETE:
            return None
        if n < 0:
            raise error_for(n)
        return _request_out(req)


def build_response(key: str, protocol: Optional[str] = None,
                   headers: Optional[Headers] = None) -> bytes:
    """The 101 response for a request with Sec-WebSocket-Key ``key``."""
    arr, n, keep = _header_array(headers)
    k = key.encode("latin-1")
    pr = _cstr(protocol)
    return _grow(lambda out, size: lib.lightws_handshake_build_response(
        out, size, k, len(k), pr, arr, n))


def build_error(status: int, headers: Optional[Headers] = None) -> bytes:
    """An HTTP error response (400, 426 with Sec-WebSocket-Version...)."""
    arr, n, keep = _header_array(headers)
    return _grow(lambda out, size: lib.lightws_handshake_build_error(
        out, size, status, arr, n))


def parse_response(data, key: Optional[str] = None,
                   protocols: Optional[str] = None,
                   max_head: int = 0, offered: Any = None) -> Optional[Response]:
    """The server's response at the start of ``data``, None if incomplete;
    HandshakeError if it does not accept the upgrade. ``offered`` (the
    "deflate" or Deflate given to offer_value()) lets the response carry
    permessage-deflate, checked against that offer
    (lightws_handshake_parse_response_ext: BAD_EXTENSION,
    BAD_EXTENSION_PARAMS); without it any extension is BAD_EXTENSION. The
    agreed parameters: check_response(resp.extensions, offered)."""
    resp = ffi.new("struct lightws_response *")
    hdrs = ffi.new("struct lightws_header[]", HANDSHAKE_HEADERS_MAX)
    resp.headers, resp.max_headers = hdrs, HANDSHAKE_HEADERS_MAX
    k, pr = _cstr(key), _cstr(protocols)
    cfg = ffi.NULL
    if offered is not None:
        cfg = deflate_config(offered)
        if cfg is None:
            raise error_for(lib.LIGHTWS_ERR_UNSUPPORTED)
    agreed = ffi.new("struct lightws_pmd_params *")
    with ffi.from_buffer("uint8_t[]", data) as p:
        n = lib.lightws_handshake_parse_response_ext(resp, p, len(p), max_head, k, pr,
                                                     cfg, agreed)
        if n == ERR_INCOMPLETE:
            return None
        if n < 0:
            raise error_for(n, 0, resp.status)
        return _response_out(resp)


# -- TLS: a lightws_io transport over ssl.SSLObject (memory BIOs) -------------

class TlsIO:
    """Carries a CStream over TLS: lightws reads and writes plaintext
    through the callbacks below; ciphertext moves between the socket and
    two memory BIOs. The socket is nonblocking: an empty socket is EAGAIN
    for lightws. Ciphertext that the socket did not take stays in
    ``self.out`` until flush() (the WebSocket calls it before waiting)."""

    def __init__(self, sock, context, server_side: bool,
                 server_hostname: Optional[str]) -> None:
        import ssl
        self._ssl = ssl
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.outbio = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.inc, self.outbio, server_side=server_side,
                                    server_hostname=server_hostname)
        self.out = bytearray()      # ciphertext not yet on the socket
        self.eof = False
        self.handle = ffi.new_handle(self)
        self.io = ffi.new("struct lightws_io *")
        self.io.read = lib.lightws_py_read
        self.io.writev = lib.lightws_py_writev
        self.io.ctx = self.handle

    def attach(self, stream: "CStream") -> None:
        with stream.lock:
            lib.lightws_stream_set_io(stream._s, self.io)
        stream.tls = self

    def has_output(self) -> bool:
        return bool(self.out) or self.outbio.pending > 0

    def flush(self) -> bool:
        """Writes buffered ciphertext; True once none is left."""
        if self.outbio.pending:
            self.out += self.outbio.read()
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            del self.out[:n]
        return True

    def _fill(self) -> None:
        """One socket read into the incoming BIO; BlockingIOError if none."""
        data = self.sock.recv(65536)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()
            self.eof = True

    def handshake(self) -> None:
        """One step of the TLS handshake; WouldBlock until it is done."""
        ssl = self._ssl
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                if not self.flush():
                    raise WouldBlock(WANT_WRITE | WANT_READ)
                try:
                    self._fill()
                except BlockingIOError:
                    raise WouldBlock(WANT_READ) from None
                if self.eof and not self.inc.pending:
                    raise ConnectionClosedError(1006, "EOF during the TLS handshake")
                continue
            if not self.flush():
                raise WouldBlock(WANT_WRITE)
            return

    def close_notify(self) -> None:
        """Queues our close_notify alert once the websocket close handshake
        is over (RFC 5246 §7.2.1, RFC 8446 §6.1): without it the peer's TLS
        stack sees a truncation ("unexpected EOF") where the connection in
        fact ended cleanly. The caller flushes it; the peer's own alert is
        not awaited (both RFCs allow closing without it)."""
        ssl = self._ssl
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass        # ours is in the outgoing BIO; the peer's is not needed
        except (ssl.SSLError, ValueError):
            pass        # the session failed or is already shut down

    def read_into(self, buf) -> int:
        ssl = self._ssl
        while True:
            try:
                n = self.obj.read(len(buf), buf)
                self.flush()
                return n
            except ssl.SSLWantReadError:
                self.flush()
                if self.eof:
                    return 0
                self._fill()        # BlockingIOError: EAGAIN for lightws
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0

    def writev(self, iov, cnt: int) -> int:
        # Accept nothing while older ciphertext waits: lightws then sees
        # EAGAIN and waits for writability, which is what we need.
        if not self.flush():
            raise BlockingIOError
        if cnt == 1:
            data = ffi.buffer(iov[0].iov_base, iov[0].iov_len)
        else:
            data = b"".join(ffi.buffer(iov[i].iov_base, iov[i].iov_len)
                            for i in range(cnt))
        n = self.obj.write(data)
        self.flush()
        return n


@ffi.def_extern()
def lightws_py_read(ctx, buf, size):  # type: ignore[no-untyped-def]
    tls = ffi.from_handle(ctx)
    try:
        return tls.read_into(ffi.buffer(buf, size))
    except BlockingIOError:
        ffi.errno = errno.EAGAIN
    except OSError as e:
        ffi.errno = e.errno or errno.EIO
    except Exception:  # noqa: BLE001 - a callback must not raise
        ffi.errno = errno.EIO
    return -1


@ffi.def_extern()
def lightws_py_writev(ctx, iov, cnt):  # type: ignore[no-untyped-def]
    tls = ffi.from_handle(ctx)
    try:
        return tls.writev(iov, cnt)
    except BlockingIOError:
        ffi.errno = errno.EAGAIN
    except OSError as e:
        ffi.errno = e.errno or errno.EIO
    except Exception:  # noqa: BLE001 - a callback must not raise
        ffi.errno = errno.EIO
    return -1


# -- sans-IO permessage-deflate: the C stream over memory ---------------------

_MEM_OUT = 65536


class _MemStream:
    """A C stream over a memory transport (glue in _build.py) with
    permessage-deflate on: what the compressor and decompressor of
    lightws.codec drive, so the RFC 7692 rules (the 00 00 ff ff tail,
    context takeover, limits) stay the C core's."""

    def __init__(self, role: int, agreed: PerMessageDeflate, cfg, out_cap: int) -> None:
        self._s = ffi.new("struct lightws_stream *")
        self._rbuf = ffi.new("uint8_t[]", 4096)
        self._m = ffi.new("struct lightws_py_mem *")
        self._out = _alloc_uncleared("uint8_t[]", max(out_cap, 1))
        self._m.out, self._m.out_cap = self._out, out_cap
        self._chunk = ffi.new("struct lightws_chunk *")
        self._keep_in: Any = None
        self.lock = threading.Lock()
        rc = lib.lightws_stream_init(self._s, role, -1, self._rbuf, 4096, 0)
        if rc < 0:
            raise error_for(rc, ffi.errno)
        lib.lightws_py_mem_attach(self._s, self._m)
        self._cfg = cfg
        self._raw, self._mem, self._size = _pmd_block(cfg)
        rc = lib.lightws_stream_set_deflate(self._s, _params_in(agreed), cfg,
                                            self._mem, self._size)
        if rc < 0:
            raise error_for(rc)

    def _drain(self) -> bytes:
        m = self._m
        data = ffi.buffer(self._out, m.out_len)[:]
        m.out_len = 0
        return data


def _codec_config(window_bits: Optional[int], mem_level: Optional[int],
                  level: Optional[int], work_size: Optional[int],
                  peer_window_bits: Optional[int] = None):
    cfg = deflate_config(Deflate(window_bits=window_bits, mem_level=mem_level, level=level,
                                 work_size=work_size, peer_window_bits=peer_window_bits))
    if cfg is None:
        raise error_for(lib.LIGHTWS_ERR_UNSUPPORTED)
    return cfg


class Compressor(_MemStream):
    """Sans-IO permessage-deflate compression of whole messages (RFC 7692
    §7.2.1), by the C core's compressor: ``compress(data)`` returns the
    payload to send in frames whose first has RSV1, the final 00 00 ff ff
    removed. Context is kept across messages (the LZ77 window of earlier
    messages helps later ones) unless ``no_context_takeover``. The
    parameters are this side's: ``window_bits`` must not exceed what the
    peer allowed (its *_max_window_bits for us). None: the C defaults
    (12, memLevel 5, level 6, work_size 4096)."""

    def __init__(self, window_bits: Optional[int] = None, *, no_context_takeover: bool = False,
                 mem_level: Optional[int] = None, level: Optional[int] = None,
                 work_size: Optional[int] = None) -> None:
        cfg = _codec_config(window_bits, mem_level, level, work_size)
        # a server's stream: its frames are not masked
        agreed = PerMessageDeflate(server_no_context_takeover=no_context_takeover,
                                   server_max_window_bits=window_bits)
        super().__init__(ROLE_SERVER, agreed, cfg, _MEM_OUT)

    def compress(self, data: Any) -> bytes:
        """The compressed payload of one message ``data`` (bytes-like;
        str is UTF-8). Never empty: an empty message is 00 (§7.2.3.6)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self.lock, ffi.from_buffer("uint8_t[]", data) as p:
            out = bytearray()
            s, size = self._s, len(p)
            pos = 0
            # as fragments, then an empty final call: the message is
            # compressed whatever its size (no threshold)
            for last in (False, True):
                flags = 0 if last else SEND_FRAGMENT
                while True:
                    n = lib.lightws_stream_send(s, lib.LIGHTWS_OPCODE_BINARY,
                                                p + pos, size - pos, flags)
                    if n == ERR_WOULDBLOCK:
                        out += self._drain()
                        continue
                    if n < 0:
                        raise error_for(n)
                    pos += n
                    if pos >= size:
                        break
                    out += self._drain()
                if last:
                    break
                size = pos      # the final call passes no byte
            while True:
                rc = lib.lightws_stream_flush(s)
                out += self._drain()
                if rc == ERR_WOULDBLOCK:
                    continue
                if rc < 0:
                    raise error_for(rc)
                break
        return _frames_payload(out)


def _frames_payload(wire: bytearray) -> bytes:
    """The payloads of the frames in ``wire`` (our own, unmasked) joined."""
    parts = []
    f = ffi.new("struct lightws_frame *")
    pos = 0
    with ffi.from_buffer("uint8_t[]", wire) as p:
        while pos < len(wire):
            n = lib.lightws_frame_decode(f, p + pos, len(wire) - pos,
                                         DECODE_ALLOW_RSV1)
            if n < 0:
                raise error_for(n)
            pos += n
            parts.append(bytes(wire[pos:pos + f.length]))
            pos += f.length
    return b"".join(parts)


class Decompressor(_MemStream):
    """Sans-IO permessage-deflate decompression of whole messages (RFC 7692
    §7.2.2), by the C core's inflater: ``decompress(payload)`` appends the
    00 00 ff ff tail and inflates; the output is bounded by ``max_size``
    inside the inflate loop (a bomb is refused with ProtocolError 1009
    after at most max_size + 1 bytes, not inflated whole), invalid
    deflate data is ProtocolError 1007, and ``text=True`` checks UTF-8
    (1007). ``window_bits``: the largest window the peer's compressor
    uses (default 15); ``no_context_takeover``: the peer resets after each
    message. After an error the decompressor is failed (as a stream is):
    make a new one."""

    def __init__(self, window_bits: Optional[int] = None, *, no_context_takeover: bool = False,
                 max_size: Optional[int] = 64 * 1024 * 1024,
                 work_size: Optional[int] = None) -> None:
        cfg = _codec_config(None, None, None, work_size, peer_window_bits=window_bits)
        # a client's stream: it reads the server's (unmasked) frames
        agreed = PerMessageDeflate(server_no_context_takeover=no_context_takeover,
                                   server_max_window_bits=window_bits)
        super().__init__(ROLE_CLIENT, agreed, cfg, 256)
        self.max_size = max_size if max_size else 0xFFFFFFFF
        lim = min(self.max_size, 0xFFFFFFFF)
        lib.lightws_stream_set_limits(self._s, 0xFFFFFFFF, lim)

    def decompress(self, payload: Any, text: bool = False) -> bytes:
        """The message that ``payload`` (one message's compressed frames'
        payloads joined, as received) inflates to."""
        head = encode_frame_header(Frame(lib.LIGHTWS_OPCODE_TEXT if text else
                                         lib.LIGHTWS_OPCODE_BINARY,
                                         len(payload), True, None, 0x40))
        wire = head + bytes(payload)
        with self.lock:
            m = self._m
            keep = ffi.from_buffer("uint8_t[]", wire)
            m.__setattr__("in", keep)
            m.in_len, m.in_pos = len(wire), 0
            try:
                size = min(max(4 * len(wire), 4096), self.max_size + 1)
                buf = bytearray(size)
                pos = 0
                while True:
                    if pos == len(buf):
                        buf += bytearray(min(len(buf), self.max_size + 1 - len(buf)) or 1)
                    with ffi.from_buffer("uint8_t[]", buf, require_writable=True) as p:
                        n = lib.lightws_stream_read(self._s, p + pos, len(buf) - pos,
                                                    self._chunk)
                    if n == ERR_WOULDBLOCK:
                        raise InvalidUsage("the compressed message ended too early", "INCOMPLETE")
                    if n < 0:
                        m.out_len = 0       # the close frame C queued: nobody reads it
                        raise error_for(n)
                    pos += n
                    if self._chunk.message_end:
                        break
                return bytes(memoryview(buf)[:pos])
            finally:
                m.__setattr__("in", ffi.NULL)
                m.in_len = m.in_pos = 0
                ffi.release(keep)
