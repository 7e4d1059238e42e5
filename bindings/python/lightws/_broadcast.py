# SPDX-License-Identifier: MIT
"""lightws.broadcast(): one message to many connections, as python
websockets' broadcast(), without waiting for any of them.

The frame of an uncompressed server connection over plain TCP is encoded
once (the C frame encoder, lightws_frame_encode) and written to each
socket that can take it whole now; connections whose socket queue is too
full are skipped (slow ones), and one whose socket took only part of the
frame is dropped (close code 1006; no other frame may follow a partial
one). Connections that compress (each has its own deflate context), run
TLS or are clients (frames masked per connection) get the message
through their own send(): a task for asyncio connections, a direct call
for blocking ones.
"""

from __future__ import annotations

import builtins
import fcntl
import logging
import socket
import struct
import termios
from typing import Any, Iterable, List, Optional, Union

from . import _core
from .errors import ConcurrencyError, Opcode, WebSocketError

log = logging.getLogger("lightws.broadcast")

_OUTQ = getattr(termios, "TIOCOUTQ", 0x5411)    # = SIOCOUTQ on Linux
_UINT = struct.Struct("i")

Data = Union[str, bytes, bytearray, memoryview]


def _queued(fd: int) -> int:
    """Bytes in the socket's send queue (not yet acknowledged)."""
    try:
        return int(_UINT.unpack(fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def broadcast(connections: Iterable[Any], message: Data,
              raise_exceptions: bool = False) -> None:
    """Sends ``message`` (str: text, bytes-like: binary) to every open
    connection of ``connections`` without waiting (asyncio or blocking
    lightws connections). Like websockets: connections that are not open
    are skipped silently, one busy sending another message (a fragmented
    one included) is skipped with a warning (one whose own send()s still
    wait in its queue gets the message queued after them, in order);
    ``raise_exceptions=True``
    raises an ExceptionGroup of the failures instead (ConcurrencyError for
    a busy one, the socket's error...). Unlike websockets, there is no
    unbounded write buffer: a connection whose socket cannot take the
    frame now is skipped (the write would block; for a frame over 4 KiB,
    its send queue is over a quarter of its send buffer) or, when the
    socket took only part of it, dropped (1006)."""
    if isinstance(message, str):
        op, payload = int(Opcode.TEXT), message.encode("utf-8")
    elif isinstance(message, (bytes, bytearray, memoryview)):
        op, payload = int(Opcode.BINARY), bytes(message)
    else:
        raise TypeError("data must be str or bytes-like")
    frame: Optional[bytes] = None
    flen = 0
    check_queue = False
    errors: List[BaseException] = []
    sndbuf = 0
    for ws in connections:
        loop = getattr(ws, "_loop", None)
        if loop is not None:                # asyncio: the Python state says it
            if ws._fd_closed or ws._ended or ws._closer is not None \
                    or ws._close_sent is not None:
                continue                    # not open: skipped silently
            busy = ws._send_lock.locked() or ws._frag_opcode
            if not busy and (ws._wq or ws._pending is not None) and ws._wq_ok:
                # its own sends wait in its queue: the message goes after
                # them, in order, with the same write
                ws._wq.append((op, payload))
                ws._wq_bytes += len(payload)
                if not ws._wq_armed:
                    ws._wq_armed = True
                    loop.call_soon(ws._flush_wq)
                continue
        else:
            if ws._fd_closed or not ws._c.is_open():
                continue
            busy = not ws._wlock.acquire(blocking=False)
            if not busy:
                ws._wlock.release()
        if busy or ws._pending is not None or ws._frag_opcode:
            if raise_exceptions:
                errors.append(ConcurrencyError("sending another message"))
            else:
                log.warning("skipped broadcast: sending another message")
            continue
        if ws.client or ws._deflate or ws._tls is not None:
            _send_own(ws, message, errors)
            continue
        if frame is None:
            head = _core.encode_frame_header(_core.Frame(op, len(payload)))
            frame = head + payload
            flen = len(frame)
            # a small frame is taken whole or not at all but for a socket
            # with less room than the frame; a large one is written only
            # well below the send buffer (a partial write drops the
            # connection)
            check_queue = flen > 4096
        if check_queue:
            if not sndbuf:
                try:
                    sndbuf = ws._sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                except (OSError, AttributeError):
                    sndbuf = 1 << 16
            if _queued(ws._fd) + flen > sndbuf // 4:
                _skipped(ws, errors, raise_exceptions)
                continue
        try:
            n = ws._c.send_encoded(frame)
        except OSError as e:
            if raise_exceptions:
                errors.append(e)
            continue
        if n == flen:
            continue
        if n < 0:
            _skipped(ws, errors, raise_exceptions)
        else:
            log.warning("dropped a slow connection: its socket took part of a frame")
            _drop(ws)
            if raise_exceptions:
                errors.append(ConnectionError("dropped: the socket took part of a frame"))
    if errors:
        group = getattr(builtins, "ExceptionGroup", None)     # Python 3.11+
        if group is None:
            raise errors[0]
        raise group("skipped broadcast", errors)


def _skipped(ws: Any, errors: List[BaseException], raise_exceptions: bool) -> None:
    if raise_exceptions:
        errors.append(BlockingIOError("skipped broadcast: the socket cannot take the frame now"))
    else:
        log.debug("skipped broadcast: slow connection %r", ws)


def _drop(ws: Any) -> None:
    unregister = getattr(ws, "_unregister", None)
    if unregister is not None:
        unregister()
    ws._release()


def _send_own(ws: Any, message: Data, errors: List[BaseException]) -> None:
    loop = getattr(ws, "_loop", None)
    if loop is not None:
        task = loop.create_task(ws.send(message))
        task.add_done_callback(_log_failure)
        return
    try:
        ws.send(message)
    except (OSError, WebSocketError) as e:
        errors.append(e)


def _log_failure(task: Any) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("broadcast send failed: %r", task.exception())
