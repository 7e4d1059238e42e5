# SPDX-License-Identifier: MIT
"""A deliberately odd echo server for the load generator's own test
(bench/many/smoke.sh), stdlib only, one thread per connection:
    python3 bench/many/odd_echo.py --port N MODE
MODE: split    echo each message in 3 frames (first, continuation, final)
              with a ping before it: loadgen must reassemble and pong
      corrupt  flip one payload byte of the 3rd echo: loadgen must fail
      badkey   a wrong Sec-WebSocket-Accept: loadgen must refuse it
Prints "listening on HOST:PORT"."""
import argparse
import base64
import hashlib
import socket
import struct
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def frame(op, payload, fin=True):
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def serve(conn, mode):
    conn.settimeout(30)  # every wait is bounded
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = conn.recv(4096)
        if not chunk:
            return
        req += chunk
    key = b""
    for line in req.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    if mode == "badkey":
        accept = base64.b64encode(hashlib.sha1(key + b"x").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    count = 0
    while True:
        b0, b1 = recv_exact(conn, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(conn, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(conn, 8))[0]
        mask = recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytearray(recv_exact(conn, n))
        for i in range(n):
            data[i] ^= mask[i & 3]
        op = b0 & 0x0F
        if op == 8:
            conn.sendall(frame(8, bytes(data[:2])))
            return
        if op >= 8:
            continue
        count += 1
        if mode == "corrupt" and count == 3 and data:
            data[len(data) // 2] ^= 0x01
        if mode == "split" and len(data) >= 3:
            a, b = len(data) // 3, 2 * len(data) // 3
            conn.sendall(frame(9, b"are you there") + frame(op, bytes(data[:a]), False) +
                         frame(0, bytes(data[a:b]), False) + frame(0, bytes(data[b:])))
        else:
            conn.sendall(frame(op, bytes(data)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("mode", choices=["split", "corrupt", "badkey"])
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(128)
    print("listening on %s:%d" % ls.getsockname(), flush=True)

    def run(c):
        try:
            serve(c, a.mode)
        except (EOFError, OSError):
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=run, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
