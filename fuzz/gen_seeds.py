#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the small seed corpora in fuzz/corpus/<target>/ (RFC 6455 frames,
browser upgrade requests, server responses, UTF-8 texts). Deterministic:
rerunning rewrites the same files."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(opcode, payload=b"", fin=True, rsv=0, mask=None):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + bytes(mask) + body


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
M = b"\x37\xfa\x21\x3d"


def main():
    # Frame heads (§5.2, §5.7 examples and each length form).
    heads = {
        "rfc_hello_unmasked": frame(1, b"Hello"),
        "rfc_hello_masked": frame(1, b"Hello", mask=M),
        "rfc_fragment_1": frame(1, b"Hel", fin=False),
        "rfc_fragment_2": frame(0, b"lo"),
        "rfc_ping": frame(9, b"Hello", mask=M),
        "rfc_pong": frame(10, b"Hello"),
        "len16": bytes([0x82, 0x7E, 0x01, 0x00]),
        "len64": bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]),
        "len64_masked": bytes([0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]) + M,
        "len16_nonminimal": bytes([0x82, 0x7E, 0x00, 0x05]),
        "len64_top_bit": bytes([0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        "close_1000": frame(8, b"\x03\xe8"),
        "rsv1": bytes([0xC1, 0x00]),
        "reserved_opcode": bytes([0x83, 0x00]),
        "ping_126": bytes([0x89, 0x7E, 0x00, 0x7E]),
        "ping_not_fin": bytes([0x09, 0x00]),
    }
    for name, data in heads.items():
        write("frame_decode", name, data)

    # UTF-8: two split-pattern bytes, then text.
    texts = {
        "ascii": b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
        "kosme": "\u03ba\u1f79\u03c3\u03bc\u03b5".encode(),
        "four_byte": b"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
        "surrogate": b"\xed\xa0\x80",
        "overlong": b"\xc0\xaf\xe0\x80\xaf",
        "too_big": b"\xf4\x90\x80\x80",
        "truncated": b"\xce\xba\xe1\xbd",
        "stray_cont": b"\x80\xbf",
        "ff": b"\xff\xfe",
        "boundaries": b"\x7f\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\xee\x80\x80\xed\x9f\xbf",
    }
    for i, (name, data) in enumerate(texts.items()):
        write("utf8", name, bytes([i, 7 * i + 1]) + data)

    # Upgrade requests as browsers send them (§4.1).
    reqs = {
        "rfc": b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
               b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n",
        "chromium": b"GET /?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nConnection: Upgrade\r\n"
                    b"Pragma: no-cache\r\nCache-Control: no-cache\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) "
                    b"AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
                    b"Upgrade: websocket\r\nOrigin: http://127.0.0.1:8000\r\nSec-WebSocket-Version: 13\r\n"
                    b"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n"
                    b"Sec-WebSocket-Key: " + KEY + b"\r\n"
                    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        "firefox": b"GET /socket HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) "
                   b"Gecko/20100101 Firefox/121.0\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.5\r\n"
                   b"Accept-Encoding: gzip, deflate, br\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost:8080\r\n"
                   b"Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
                   b"Connection: keep-alive, Upgrade\r\nSec-Fetch-Dest: websocket\r\nSec-Fetch-Mode: websocket\r\n"
                   b"Sec-Fetch-Site: same-origin\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n\r\n",
        "safari": b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nHost: 127.0.0.1:9000\r\n"
                  b"Origin: http://127.0.0.1:9000\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n"
                  b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\nUser-Agent: Mozilla/5.0 (Macintosh; "
                  b"Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15\r\n\r\n",
        "pipelined_frame": b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + frame(1, b"hi", mask=M),
        "version_8": b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 8\r\n\r\n",
        "no_host": b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "post_http10": b"POST / HTTP/1.0\r\nHost: a\r\n\r\n",
        "folded_tabs": b"GET / HTTP/1.1\r\nHost:\t a \t\r\nUpgrade:websocket\r\nConnection: foo,  upgrade ,bar\r\n"
                       b"Sec-WebSocket-Key:   " + KEY + b"  \r\nSec-WebSocket-Version:13\r\n\r\n",
    }
    for name, data in reqs.items():
        write("handshake_request", name, data)

    # 101 responses (§4.2.2); the accept for KEY is the RFC's example.
    acc = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    resps = {
        "rfc": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Accept: " + acc + b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        "plain": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n" + frame(1, b"hi"),
        "lowercase": b"HTTP/1.1 101 Web Socket Protocol Handshake\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n"
                     b"sec-websocket-accept: " + acc + b"\r\nServer: nginx\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
        "bad_accept": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "status_400": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "extension": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + acc + b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    }
    for name, data in resps.items():
        write("handshake_response", name, data)

    # Stream: 6 config bytes (role/options, rbuf size, limits, feed, seed),
    # then the wire. Server role reads masked frames, client role unmasked.
    def cfg(role, opts=0, rb=0, lim=0, feed=0, seed=0):
        return bytes([role | opts, rb, lim, feed, seed >> 8 & 255, seed & 255])

    srv = (frame(1, b"Hello", mask=M) + frame(2, bytes(range(200)), mask=M)
           + frame(1, b"fra", fin=False, mask=M) + frame(9, b"p", mask=M)
           + frame(0, b"g\xc3", fin=False, mask=M) + frame(0, b"\xa9", mask=M)
           + frame(8, b"\x03\xe8bye", mask=M))
    cli = (frame(1, b"Hello") + frame(2, b"x" * 300) + frame(10, b"pong")
           + frame(1, "\u03ba\u1f79".encode()) + frame(8, b"\x03\xe9"))
    stream = {
        "server_session": cfg(0) + srv,
        "server_chopped": cfg(0, 0x02, 3, 0, 0, 77) + srv,
        "client_session": cfg(1) + cli,
        "client_eof": cfg(1, 0, 0, 0, 5, 9) + cli[:-4],
        "server_limits": cfg(0, 0, 0, 0x93, 0, 3) + srv,
        "server_bad_utf8": cfg(0, 0, 1, 0, 0, 4) + frame(1, b"ok\xed\xa0\x80", mask=M),
        "server_unmasked": cfg(0, 0x10, 1, 0, 0, 5) + frame(2, b"raw") + frame(8, b""),
        "server_close_1byte": cfg(0) + frame(8, b"\x03", mask=M),
        "server_close_bad_code": cfg(0) + frame(8, b"\x03\xed", mask=M),
        "client_masked": cfg(1) + frame(1, b"hi", mask=M),
        "client_ping_no_autopong": cfg(1, 0x08) + frame(9, b"abc") + frame(1, b"x") + frame(8, b""),
        "server_big_len": cfg(0, 0, 2) + frame(2, b"y" * 70000, mask=M)[:2000],
    }
    for name, data in stream.items():
        write("stream", name, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
