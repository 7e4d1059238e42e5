#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A deliberately naive echo server (no validation at all) for checking the
conformance suite itself: `run.py --peer naive=/usr/bin/python3
tests/conformance/naive_echo.py --role server` must report failures in the
validation categories (RSV, opcodes, fragmentation, UTF-8, close codes,
handshake checks). Server role only."""
import os
import sys, socket, threading, struct, base64, hashlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsproto_min import xor_mask, encode_frame
def handle(c):
    buf=b''
    while b'\r\n\r\n' not in buf:
        d=c.recv(65536)
        if not d: return
        buf+=d
    head,_,buf=buf.partition(b'\r\n\r\n')
    key=[l.split(b':',1)[1].strip() for l in head.split(b'\r\n') if l.lower().startswith(b'sec-websocket-key')]
    k=key[0] if key else b''
    acc=base64.b64encode(hashlib.sha1(k+b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+acc+b"\r\n\r\n")
    while True:
        while True:
            if len(buf)>=2:
                n=buf[1]&127; hl=2+(2 if n==126 else 8 if n==127 else 0)+4
                if len(buf)>=hl:
                    if n==126: n=struct.unpack('!H',buf[2:4])[0]
                    elif n==127: n=struct.unpack('!Q',buf[2:10])[0]
                    if len(buf)>=hl+n: break
            d=c.recv(1<<20)
            if not d: c.close(); return
            buf+=d
        b0=buf[0]; p=xor_mask(buf[hl:hl+n], buf[hl-4:hl]); buf=buf[hl+n:]
        op=b0&15
        if op==9: c.sendall(encode_frame(10,p))
        elif op==10: pass
        elif op==8: c.sendall(encode_frame(8,p)); c.close(); return
        else: c.sendall(bytes([b0])+encode_frame(op,p)[1:])
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(('127.0.0.1',0)); s.listen(50)
print("listening on 127.0.0.1:%d"%s.getsockname()[1], flush=True)
while True:
    c,_=s.accept(); threading.Thread(target=handle,args=(c,),daemon=True).start()
