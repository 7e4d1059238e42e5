# SPDX-License-Identifier: MIT
"""A small RFC 6455 frame encoder/decoder and connection wrapper for the
conformance suite: raw sockets, stdlib only, written to be strict where the
RFC says MUST (masking direction, minimal lengths, control frame rules,
close payloads) so that it can judge the peer it talks to."""
import base64
import hashlib
import os
import queue
import socket
import struct
import threading
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# §7.4.1/§7.4.2 plus the IANA registry (1012-1014): codes a peer may send.
VALID_WIRE_CODES = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


class Fail(Exception):
    """The peer did something the case does not allow."""


class PeerEOF(Exception):
    """The TCP connection ended."""


class Skip(Exception):
    """The case needs what the peer does not offer (permessage-deflate)."""


def accept_for(key):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def xor_mask(data, key):
    """Masks/unmasks `data` with the 4-byte `key` (§5.3) in one big-int XOR."""
    n = len(data)
    if n == 0 or key == b"\0\0\0\0":
        return bytes(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=None, length=None):
    """One frame. `mask` is a 4-byte key or None; `length` overrides the
    length field (to build lying or non-minimal heads); `rsv` is 0..7
    for RSV1..3 as bits 4..6 of byte 0 (>> 4)."""
    payload = bytes(payload)
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + xor_mask(payload, mask)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def utf8_ok(b):
    try:
        bytes(b).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload


class Conn:
    """One websocket connection as seen by the test. `we_are_client`: we
    mask what we send and require unmasked frames from the peer; else the
    reverse (§5.1). Sends go through a thread so that reading never waits
    on writing (large echoes would deadlock otherwise)."""

    def __init__(self, sock, we_are_client, leftover=b""):
        self.sock = sock
        self.client = we_are_client
        self.buf = bytearray(leftover)
        self.pos = 0
        self.eof = False
        self.in_msg = None  # (opcode, [parts], compressed) of a fragmented message
        self.pmd = None     # pmd.Codec once permessage-deflate is agreed
        self.last_compressed = False  # the last message came with RSV1
        self.close_sent = False
        self.close_rcvd = None
        self.recv_size = 1 << 20  # a slow reader lowers these
        self.recv_delay = 0
        self.sendq = queue.Queue()
        self.send_err = None
        self.sent_all = threading.Event()
        self.sent_all.set()
        self.pending = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._sender, daemon=True)
        self.thread.start()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # -- sending ---------------------------------------------------------
    def _sender(self):
        while True:
            item = self.sendq.get()
            if item is None:
                return
            kind, data, size, delay = item
            try:
                if self.send_err is None:
                    if kind == "data":
                        self._sendall(data)
                    elif kind == "chop":
                        for i in range(0, len(data), size):
                            self._sendall(data[i:i + size])
                            if delay:
                                time.sleep(delay)
                    elif kind == "sleep":
                        time.sleep(delay)
            except OSError as e:  # the peer may close after failing us
                self.send_err = e
            with self.lock:
                self.pending -= 1
                if self.pending == 0:
                    self.sent_all.set()

    def _sendall(self, data):
        # Not sock.sendall(): the reader's settimeout(deadline - now) is the
        # socket's timeout for both threads, and sendall's timeout bounds the
        # whole call, so a big send (8.1's 16 MiB) started after a short
        # read wait stopped after that many seconds with the frame half
        # sent. The sender keeps going while the peer reads; shutdown()
        # (socket closed) or a connection error ends it.
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except socket.timeout:
                continue
            view = view[n:]

    def _enqueue(self, item):
        with self.lock:
            self.pending += 1
            self.sent_all.clear()
        self.sendq.put(item)

    def send_raw(self, data):
        self._enqueue(("data", bytes(data), 0, 0))

    def send_chopped(self, data, size=1, delay=0.001):
        self._enqueue(("chop", bytes(data), size, delay))

    def pause(self, seconds):
        self._enqueue(("sleep", b"", 0, seconds))

    def wait_sent(self, timeout=30):
        return self.sent_all.wait(timeout)

    def compressed(self, opcode, data):
        """One compressed message as a single frame (RSV1, §7.2.1)."""
        return self.frame(opcode, self.pmd.compress(data), rsv=4)

    def frame(self, opcode, payload=b"", fin=True, rsv=0, length=None):
        mask = os.urandom(4) if self.client else None
        return encode_frame(opcode, payload, fin, rsv, mask, length)

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0, length=None):
        self.send_raw(self.frame(opcode, payload, fin, rsv, length))

    def send_close(self, code=None, reason=b""):
        self.send_frame(CLOSE, close_payload(code, reason))
        self.close_sent = True

    def shutdown(self):
        self.sendq.put(None)
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving -------------------------------------------------------
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail("timeout waiting for the peer")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(self.recv_size)
            if self.recv_delay:
                time.sleep(self.recv_delay)
        except socket.timeout:
            raise Fail("timeout waiting for the peer")
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise PeerEOF()
        if self.pos > (1 << 20) and self.pos > len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def _parse(self):
        b, p = self.buf, self.pos
        avail = len(b) - p
        if avail < 2:
            return None
        b0, b1 = b[p], b[p + 1]
        n = b1 & 0x7F
        hl = 2
        if n == 126:
            hl = 4
        elif n == 127:
            hl = 10
        masked = bool(b1 & 0x80)
        if masked:
            hl += 4
        if avail < hl:
            return None
        if n == 126:
            n = struct.unpack_from("!H", b, p + 2)[0]
            if n < 126:
                raise Fail("peer used a non-minimal 16-bit length (%d)" % n)
        elif n == 127:
            n = struct.unpack_from("!Q", b, p + 2)[0]
            if n >> 63:
                raise Fail("peer set the top bit of a 64-bit length")
            if n < 65536:
                raise Fail("peer used a non-minimal 64-bit length (%d)" % n)
        if avail < hl + n:
            return None
        payload = bytes(b[p + hl:p + hl + n])
        if masked:
            payload = xor_mask(payload, bytes(b[p + hl - 4:p + hl]))
        self.pos = p + hl + n
        return Frame(b0 >> 7, (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def read_frame(self, deadline):
        while True:
            f = self._parse()
            if f is not None:
                break
            self._fill(deadline)
        # §6.1: with permessage-deflate, RSV1 marks the first frame of a
        # compressed message (never a continuation or control frame)
        if f.rsv and not (f.rsv == 4 and self.pmd is not None and f.opcode in (TEXT, BINARY)):
            raise Fail("peer frame has RSV bits %d%s" % (f.rsv, " (opcode %d, permessage-deflate %s)"
                                                           % (f.opcode, "on" if self.pmd else "off")))
        if self.client and f.masked:
            raise Fail("server frame is masked (§5.1)")
        if not self.client and not f.masked:
            raise Fail("client frame is not masked (§5.1)")
        if f.opcode in (3, 4, 5, 6, 7) or f.opcode >= 0xB:
            raise Fail("peer sent reserved opcode %d" % f.opcode)
        if f.opcode >= 8 and (not f.fin or len(f.payload) > 125):
            raise Fail("peer sent a fragmented or long control frame")
        return f

    def next_event(self, deadline):
        """Next message, pong, ping or close from the peer:
        ("msg", opcode, payload) | ("pong", p) | ("ping", p) | ("close", code, reason).
        Raises PeerEOF if TCP ends first."""
        while True:
            f = self.read_frame(deadline)
            if self.close_rcvd is not None:
                raise Fail("peer sent a frame after its close frame")
            if f.opcode == CLOSE:
                p = f.payload
                if len(p) == 1:
                    raise Fail("peer close frame has a 1-byte payload")
                code = None
                reason = b""
                if len(p) >= 2:
                    code = struct.unpack("!H", p[:2])[0]
                    reason = p[2:]
                    if code not in VALID_WIRE_CODES:
                        raise Fail("peer sent invalid close code %d" % code)
                    if not utf8_ok(reason):
                        raise Fail("peer close reason is not UTF-8")
                self.close_rcvd = (code, reason)
                return ("close", code, reason)
            if f.opcode == PING:
                return ("ping", f.payload)
            if f.opcode == PONG:
                return ("pong", f.payload)
            if f.opcode == CONT:
                if self.in_msg is None:
                    raise Fail("peer sent a continuation outside a message")
                self.in_msg[1].append(f.payload)
                if f.fin:
                    op, parts, comp = self.in_msg
                    self.in_msg = None
                    return self._message(op, b"".join(parts), comp)
                continue
            if self.in_msg is not None:
                raise Fail("peer started a message inside a fragmented one")
            if f.fin:
                return self._message(f.opcode, f.payload, f.rsv == 4)
            self.in_msg = (f.opcode, [f.payload], f.rsv == 4)

    def _message(self, op, payload, compressed=False):
        self.last_compressed = compressed
        if compressed:
            payload = self.pmd.decompress(payload)
        if op == TEXT and not utf8_ok(payload):
            raise Fail("peer sent a text message that is not UTF-8")
        return ("msg", op, payload)

    def expect_eof(self, timeout=3.0):
        """After the close handshake the peer (a server) closes TCP."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self._parse()
                if f is not None:
                    raise Fail("peer sent data after the close handshake")
                self._fill(deadline)
            except PeerEOF:
                return
            except Fail as e:
                if "timeout" in str(e):
                    raise Fail("peer did not close TCP within %.0f s after the close handshake" % timeout)
                raise
