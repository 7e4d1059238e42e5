#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python demo client for `make demo`: talks to an echo server.

    PYTHONPATH=bindings/python python3 examples/demo_client.py ws://127.0.0.1:PORT/demo

Sends text, binary, a fragmented message and a ping, then closes with 1000;
prints one line per step and exits 0 when every echo matched.
"""

import sys

import lightws


def main(url: str) -> int:
    with lightws.connect(url, timeout=5) as ws:
        ws.send("hello")
        got = ws.recv()
        assert got == "hello", got
        print("python client: text 'hello' echoed")

        blob = bytes(range(256)) * 4
        ws.send(blob)
        got = ws.recv()
        assert got == blob, len(got)
        print(f"python client: binary {len(blob)} bytes echoed")

        ws.send_fragments(["frag", "mented ", "message"])
        got = ws.recv()
        assert got == "fragmented message", got
        print("python client: fragmented text (3 frames) echoed as 'fragmented message'")

        ws.ping(b"demo-ping")
        ws.send("after ping")       # the pong arrives before this echo
        got = ws.recv()
        assert got == "after ping", got
        assert ws.last_pong == b"demo-ping", ws.last_pong
        print("python client: ping 'demo-ping' answered with pong")

        ws.close(lightws.CloseCode.NORMAL, "demo done")
        print(f"python client: closed with {int(lightws.CloseCode.NORMAL)} "
              f"(server answered {ws.close_code})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: demo_client.py ws://HOST:PORT/PATH", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(main(sys.argv[1]))
    except (OSError, lightws.WebSocketError, AssertionError) as e:
        print(f"python client: FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
