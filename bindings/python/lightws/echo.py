# SPDX-License-Identifier: MIT
"""Echo peer, the Python twin of build/lightws-echo.

    python3 -m lightws.echo --host 127.0.0.1 --port 0     # server
    python3 -m lightws.echo --client ws://HOST:PORT/PATH?QUERY

The server prints "listening on HOST:PORT" and echoes every message with
its opcode, streamed chunk by chunk as fragments (one thread per
connection). The client echoes every message the server sends until the
server closes, then exits 0.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from typing import List, Optional

from . import (ConnectionClosed, HandshakeError,
               ProtocolError, WebSocket, WebSocketError, accept, connect)

PROG = "lightws.echo"


def echo_stream(ws: WebSocket, bufsize: int = 65536) -> None:
    """Echoes until the peer closes: each chunk read goes back as a
    fragment of the same message, so memory stays at ``bufsize``."""
    buf = bytearray(bufsize)
    view = memoryview(buf)
    while True:
        ch = ws.recv_chunk_into(buf)
        if ch.nbytes == 0 and not ch.message_end:
            continue
        ws.send(view[:ch.nbytes], ch.opcode, fin=ch.message_end)


def _serve_conn(conn: socket.socket, peer: str, quiet: bool, max_message: int) -> None:
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    try:
        ws = accept(conn, timeout=None, max_size=max_message or None)
    except (HandshakeError, OSError) as e:
        if not quiet:
            print(f"{PROG}: {peer} rejected: {e}", file=sys.stderr)
        return
    code: Optional[int] = None
    with ws:
        try:
            echo_stream(ws)
        except ConnectionClosed as e:
            code = e.code
        except ProtocolError as e:
            if not quiet:
                print(f"{PROG}: {peer} {ws.path}: {e}", file=sys.stderr)
        except (OSError, WebSocketError) as e:
            if not quiet:
                print(f"{PROG}: {peer} {ws.path}: {e}", file=sys.stderr)
    if not quiet:
        print(f"{PROG}: {peer} {ws.path} close {code}", file=sys.stderr)


def run_server(host: str, port: int, quiet: bool = False, max_message: int = 0) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.create_server((host, port), family=family, backlog=128)
    bound = srv.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{bound}", flush=True)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            conn, addr = srv.accept()
            peer = f"{addr[0]}:{addr[1]}"
            threading.Thread(target=_serve_conn, args=(conn, peer, quiet, max_message),
                             daemon=True).start()
    except KeyboardInterrupt:
        return 0
    finally:
        srv.close()


def run_client(url: str) -> int:
    try:
        ws = connect(url)
    except (OSError, WebSocketError) as e:
        print(f"{PROG}: {url}: {e}", file=sys.stderr)
        return 1
    with ws:
        try:
            echo_stream(ws)
        except ConnectionClosed as e:
            if e.code != 1006:      # the server closed with a close frame
                return 0
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
        except (OSError, WebSocketError) as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m lightws.echo",
                                 description="websocket echo server or client")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int)
    ap.add_argument("--client", metavar="URL")
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--max-message", type=int, default=0)
    args = ap.parse_args(argv)
    if args.client:
        return run_client(args.client)
    if args.port is None:
        ap.error("--port or --client is required")
    return run_server(args.host, args.port, args.quiet, args.max_message)


if __name__ == "__main__":
    sys.exit(main())
