# SPDX-License-Identifier: MIT
"""Echo peer, the Python twin of build/lightws-echo.

    python3 -m lightws.echo --host 127.0.0.1 --port 0     # server
        [--handshake-timeout S] [--idle-timeout S] [--ping-interval S] [--ping-timeout S]
    python3 -m lightws.echo [--timeout S] --client ws://HOST:PORT/PATH?QUERY
        [--no-deflate]

The server prints "listening on HOST:PORT" and echoes every message with
its opcode, streamed chunk by chunk as fragments. It runs on
lightws.asyncio.serve(): one thread for every connection at once, so
thousands of idle connections cost memory, not threads, and ending them
(or the server) takes one pass of the event loop; when accept() runs out
of descriptors the server pauses accepting and recovers. Messages over
--max-message bytes (default 64 MiB, as the C and Lua echo) get close
1009. SIGTERM or SIGINT ends the server with close 1001 to every client
(bounded wait). Timeouts as build/lightws-echo's, in seconds (fractions
allowed, 0 turns one off): the opening handshake must end within
--handshake-timeout (default 10); --idle-timeout closes (1001) a
connection that sent nothing for S (default off); a connection quiet for
--ping-interval (default 20) is pinged and closed (1011) when the pong
does not come within --ping-timeout (default: the interval). The client
echoes every message the server sends until the server closes, then
exits 0; it gives up when the handshake is not done within --timeout
(default 10).

Both roles negotiate permessage-deflate (RFC 7692; window 12 bits,
memLevel 5, as build/lightws-echo) and answer a compressed message
compressed, an uncompressed one uncompressed (the C read says which:
chunk->compressed); --no-deflate turns compression off.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, List, Optional

from . import ConnectionClosed, ProtocolError, WebSocket, WebSocketError, connect

if TYPE_CHECKING:
    from . import asyncio as lwa
# The server's modules (asyncio, lightws.asyncio, logging) are imported in
# run_server(): the client, started once per case by test suites, does
# without them (about 30 ms a start).

PROG = "lightws.echo"
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024   #: as build/lightws-echo and examples/echo.lua
CHUNK = 16384                             #: bytes read (and echoed) at a time
SHUTDOWN_GRACE = 1.0                      #: seconds for clients to answer 1001


def echo_stream(ws: WebSocket, bufsize: int = 65536) -> None:
    """Echoes until the peer closes: each chunk read goes back as a
    fragment of the same message, so memory stays at ``bufsize``. With
    compression, a compressed message goes back into the compressor as
    fragments ended by an empty final call (compressed whatever its size)
    and an uncompressed one goes back uncompressed."""
    buf = bytearray(bufsize)
    view = memoryview(buf)
    while True:
        ch = ws.recv_chunk_into(buf)
        if ch.nbytes == 0 and not ch.message_end:
            continue
        if ch.compressed:
            ws.send(view[:ch.nbytes], ch.opcode, fin=False)
            if ch.message_end:
                ws.send(b"", ch.opcode)
        else:
            ws.send(view[:ch.nbytes], ch.opcode, fin=ch.message_end, compress=False)


async def echo_stream_async(ws: lwa.WebSocket, bufsize: int = CHUNK) -> None:
    """echo_stream() over lightws.asyncio."""
    buf = bytearray(bufsize)
    view = memoryview(buf)
    while True:
        ch = await ws.recv_chunk_into(buf)
        if ch.nbytes == 0 and not ch.message_end:
            continue
        if ch.compressed:
            await ws.send(view[:ch.nbytes], ch.opcode, fin=False)
            if ch.message_end:
                await ws.send(b"", ch.opcode)
        else:
            await ws.send(view[:ch.nbytes], ch.opcode, fin=ch.message_end, compress=False)


def _peer(ws: Any) -> str:
    try:
        addr = ws._sock.getpeername()
    except (AttributeError, OSError):
        return "?"
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def _handler(quiet: bool) -> Any:
    async def handle(ws: lwa.WebSocket) -> None:
        peer = _peer(ws)
        code: Any = None
        try:
            await echo_stream_async(ws)
        except ProtocolError as e:      # lightws sent the close (a ConnectionClosed too)
            if not quiet:
                print(f"{PROG}: {peer} {ws.path}: {e}", file=sys.stderr)
        except ConnectionClosed as e:
            code = e.code
            if e.errname:       # a timeout of ours: PING_TIMEOUT, IDLE_TIMEOUT
                code = f"{code} ({e.errname})"
        except (OSError, WebSocketError) as e:      # ProtocolError: lightws sent the close
            if not quiet:
                print(f"{PROG}: {peer} {ws.path}: {e}", file=sys.stderr)
        if not quiet:
            pmd = " permessage-deflate" if ws.compression else ""
            print(f"{PROG}: {peer} {ws.path} close {code}{pmd}", file=sys.stderr)
    return handle


def _secs(value: float) -> Optional[float]:
    return value or None        # 0 turns a timeout off


async def _serve(host: str, port: int, quiet: bool, max_message: int,
                 times: Any, deflate: bool = True) -> int:
    import asyncio
    import signal
    from . import asyncio as lwa
    ping_timeout = times.ping_interval if times.ping_timeout is None else times.ping_timeout
    try:
        server = await lwa.serve(_handler(quiet), host, port, backlog=128,
                                 max_size=max_message, server_header=None,
                                 open_timeout=_secs(times.handshake_timeout),
                                 idle_timeout=_secs(times.idle_timeout),
                                 ping_interval=_secs(times.ping_interval),
                                 ping_timeout=_secs(ping_timeout),
                                 compression="deflate" if deflate else None)
    except OSError as e:
        print(f"{PROG}: cannot listen on {host}:{port}: {e}", file=sys.stderr)
        return 1
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{server.port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Each connection sends 1001 and waits for the answer; the ones that
    # do not answer within the grace are cut (their tasks are cancelled
    # again, which releases their sockets).
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE)
    except asyncio.TimeoutError:
        pass
    return 0


def run_server(host: str, port: int, quiet: bool = False,
               max_message: int = DEFAULT_MAX_MESSAGE, times: Any = None,
               deflate: bool = True) -> int:
    import asyncio
    import logging
    # not quiet: the server's debug lines too (rejected handshakes)
    logging.basicConfig(format=f"{PROG}: %(message)s",
                        level=logging.WARNING if quiet else logging.DEBUG)
    if times is None:
        times = argparse.Namespace(handshake_timeout=10.0, idle_timeout=0.0,
                                   ping_interval=20.0, ping_timeout=None)
    return asyncio.run(_serve(host, port, quiet, max_message, times, deflate))


def run_client(url: str, max_message: int = DEFAULT_MAX_MESSAGE,
               timeout: float = 10.0, deflate: bool = True) -> int:
    try:
        ws = connect(url, max_size=max_message, open_timeout=_secs(timeout),
                     compression="deflate" if deflate else None)
    except (OSError, ValueError, WebSocketError) as e:
        # ValueError: a bad URL (InvalidUsage), a host IDNA cannot encode
        print(f"{PROG}: {url}: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1     # 2: as lightws-echo for a bad URL
    with ws:
        try:
            echo_stream(ws)
        except ProtocolError as e:      # a ConnectionClosed too: the error it is
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
        except ConnectionClosed as e:
            if e.code != 1006:      # the server closed with a close frame
                return 0
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
        except (OSError, WebSocketError) as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 1
    return 0


def _int_in(lo: int, hi: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r} (not {lo}..{hi})")
        return n
    return parse


def _seconds(what: str) -> Any:
    def parse(text: str) -> float:
        try:
            s = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} {text!r}") from None
        if not 0 <= s <= 4294967:       # NaN fails too
            raise argparse.ArgumentTypeError(f"bad {what} {text!r} (seconds, 0-4294967)")
        return s
    return parse


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m lightws.echo",
                                 description="websocket echo server or client")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=_int_in(0, 65535, "port"))
    ap.add_argument("--client", metavar="URL")
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--max-message", type=_int_in(1, 0xFFFFFFFF, "--max-message"),
                    default=DEFAULT_MAX_MESSAGE, metavar="N",
                    help="largest message in bytes; a longer one gets close 1009 "
                         "(default 67108864, 64 MiB)")
    for opt, default, text in (
            ("--handshake-timeout", 10.0, "server: the opening handshake must end "
                                          "within S seconds (default 10; 0: off)"),
            ("--idle-timeout", 0.0, "server: close 1001 a connection silent for S "
                                    "seconds (default 0: off)"),
            ("--ping-interval", 20.0, "server: ping a connection quiet for S seconds "
                                      "(default 20; 0: off)"),
            ("--ping-timeout", None, "server: close 1011 when the pong does not come "
                                     "within S seconds (default: the interval)"),
            ("--timeout", 10.0, "client: give up when the handshake is not done "
                                "within S seconds (default 10)")):
        ap.add_argument(opt, type=_seconds(opt), default=default, metavar="S", help=text)
    ap.add_argument("--no-deflate", action="store_true",
                    help="do not negotiate permessage-deflate (default: offer and accept "
                         "it, window 12 bits, memLevel 5)")
    args = ap.parse_args(argv)
    if args.client:
        return run_client(args.client, args.max_message, args.timeout, not args.no_deflate)
    if args.port is None:
        ap.error("--port or --client is required")
    return run_server(args.host, args.port, args.quiet, args.max_message, args,
                      not args.no_deflate)


if __name__ == "__main__":
    sys.exit(main())
