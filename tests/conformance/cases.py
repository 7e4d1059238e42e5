# SPDX-License-Identifier: MIT
"""The RFC 6455 case matrix, modelled on the Autobahn test suite's
categories. Each case runs against an echo peer in one or both roles:
"server" (the peer is an echo server, we are the client and mask) and
"client" (the peer is an echo client, we are the server and send unmasked
frames). A case raises Fail with a reason; returning means PASS.

Expected close codes follow RFC 6455 §7.4.1: 1002 protocol error, 1007
invalid text, and the peer's close echoed in the close handshake (§5.5.1).
Where the RFC allows a choice the case accepts every allowed behaviour."""
import os
import socket
import struct
import threading
import time

from wsproto_min import (BINARY, CLOSE, CONT, PING, PONG, TEXT, Fail, PeerEOF,
                         accept_for, close_payload, encode_frame)

CASES = []


def case(cid, title, roles=("server", "client"), timeout=10, raw=False):
    """Registers a case. `raw` cases open (or accept) their own connections;
    the others get `t.conn`, an open websocket to the peer."""
    def deco(fn):
        CASES.append((cid, title, tuple(roles), timeout, raw, fn))
        return fn
    return deco


def short(ev):
    """Event for messages: type, opcode and a payload preview."""
    if ev is None:
        return "nothing"
    if ev[0] == "msg":
        p = ev[2]
        return "%s(%d bytes%s)" % ("text" if ev[1] == TEXT else "binary", len(p),
                                   ": %r" % p[:20] if len(p) <= 20 else "")
    if ev[0] == "close":
        return "close(%s)" % (ev[1] if ev[1] is not None else "no code")
    return "%s(%r)" % (ev[0], ev[1][:20])


# -- expectations ---------------------------------------------------------

def expect_events(t, expected, timeout=10):
    """The next events from the peer are exactly `expected`."""
    deadline = time.monotonic() + timeout
    for i, exp in enumerate(expected):
        try:
            ev = t.conn.next_event(deadline)
        except PeerEOF:
            raise Fail("TCP closed after %d of %d expected events (next: %s)" % (i, len(expected), short(exp)))
        if ev != exp:
            raise Fail("event %d: expected %s, got %s" % (i, short(exp), short(ev)))


def expect_close(t, codes, before=(), prefix_ok=False, timeout=5, close_clean=False):
    """Reads until the peer's close frame; events before it must be `before`
    (or a prefix of it if `prefix_ok`: a peer failing the connection may drop
    echoes not yet sent). `codes` holds allowed codes (None: no payload).
    Then completes the close handshake and checks TCP is closed."""
    deadline = time.monotonic() + timeout
    got = []
    while True:
        try:
            ev = t.conn.next_event(deadline)
        except PeerEOF:
            raise Fail("TCP closed without a close frame (expected close %s)" % fmt_codes(codes))
        except Fail as e:
            if "timeout" in str(e):
                raise Fail("no close frame within %.0f s (expected close %s; got %s)"
                           % (timeout, fmt_codes(codes), ", ".join(map(short, got)) or "nothing"))
            raise
        if ev[0] == "close":
            break
        got.append(ev)
    before = list(before)
    if got != before and not (prefix_ok and got == before[:len(got)]):
        raise Fail("before the close expected [%s], got [%s]"
                   % (", ".join(map(short, before)), ", ".join(map(short, got))))
    if ev[1] not in codes:
        raise Fail("close code %s, expected %s" % (ev[1] if ev[1] is not None else "none", fmt_codes(codes)))
    finish(t, ev[1], close_clean)


def fmt_codes(codes):
    return "/".join("none" if c is None else str(c) for c in sorted(codes, key=lambda c: c or 0))


def finish(t, code, clean):
    """After the peer's close: answer it if we have not sent ours, then the
    server closes TCP (we wait for it) or, with a client peer, we close."""
    if not t.conn.close_sent:
        t.conn.send_close(code)
    t.conn.wait_sent(5)
    if t.role == "server":
        t.conn.expect_eof(3)
    t.clean = clean


def close_normal(t, code=1000, reason=b"", accept=None):
    """We start the close handshake; the peer echoes a close (§5.5.1: with
    our code, or any code it may choose: we allow `accept`)."""
    t.conn.send_close(code, reason)
    allowed = {code} if accept is None else set(accept)
    expect_close(t, allowed, close_clean=True)


def fail_case(t, frames, codes, before=(), prefix_ok=True, chop=None, timeout=5):
    """Sends `frames` (bytes) and expects the peer to fail with `codes`."""
    data = b"".join(frames)
    if chop:
        t.conn.send_chopped(data, chop, 0.001)
    else:
        t.conn.send_raw(data)
    expect_close(t, codes, before=before, prefix_ok=prefix_ok, timeout=timeout)


def echo_case(t, msgs, chop=None, delay=0.001, timeout=10):
    """Sends messages (opcode, payload) as single frames and expects them
    echoed, then a normal close."""
    data = b"".join(t.conn.frame(op, p) for op, p in msgs)
    if chop:
        t.conn.send_chopped(data, chop, delay)
    else:
        t.conn.send_raw(data)
    expect_events(t, [("msg", op, bytes(p)) for op, p in msgs], timeout)
    close_normal(t)


def mk_text(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def mk_bin(n):
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


# == 1 Framing ============================================================
for _i, (_op, _n) in enumerate([(TEXT, 0), (TEXT, 125), (TEXT, 126), (TEXT, 127), (TEXT, 65535),
                                (TEXT, 65536), (BINARY, 0), (BINARY, 125), (BINARY, 126),
                                (BINARY, 65535), (BINARY, 65536)]):
    def _mk(op=_op, n=_n):
        def fn(t):
            echo_case(t, [(op, mk_text(n) if op == TEXT else mk_bin(n))])
        return fn
    case("1.%d" % (_i + 1), "%s %d bytes" % ("text" if _op == TEXT else "binary", _n))(_mk())


@case("1.12", "text 200 bytes chopped 1 byte per send")
def _(t):
    echo_case(t, [(TEXT, mk_text(200))], chop=1)


@case("1.13", "binary 65536 bytes chopped 997 bytes per send")
def _(t):
    echo_case(t, [(BINARY, mk_bin(65536))], chop=997, delay=0.0005)


@case("1.14", "ten frames sent 1 byte per send")
def _(t):
    echo_case(t, [(TEXT if i % 2 else BINARY, mk_text(i * 13)) for i in range(10)], chop=1, delay=0.0005)


@case("1.15", "five frames in one packet")
def _(t):
    echo_case(t, [(TEXT, b"one"), (BINARY, b"\x00\x01two"), (TEXT, b""), (BINARY, mk_bin(300)), (TEXT, b"five")])


@case("1.16", "frame head split after its first byte")
def _(t):
    f = t.conn.frame(BINARY, mk_bin(70000))
    t.conn.send_raw(f[:1])
    t.conn.pause(0.05)
    t.conn.send_raw(f[1:5])
    t.conn.pause(0.05)
    t.conn.send_raw(f[5:])
    expect_events(t, [("msg", BINARY, mk_bin(70000))])
    close_normal(t)


@case("1.17", "binary with all 256 byte values")
def _(t):
    echo_case(t, [(BINARY, bytes(range(256)) * 4)])


# == 2 Ping/pong ==========================================================
@case("2.1", "ping without payload")
def _(t):
    t.conn.send_frame(PING)
    expect_events(t, [("pong", b"")])
    close_normal(t)


@case("2.2", "ping with text payload")
def _(t):
    t.conn.send_frame(PING, b"Hello, world!")
    expect_events(t, [("pong", b"Hello, world!")])
    close_normal(t)


@case("2.3", "ping 125 bytes (binary payload)")
def _(t):
    p = bytes(range(125))
    t.conn.send_frame(PING, p)
    expect_events(t, [("pong", p)])
    close_normal(t)


@case("2.4", "ping 126 bytes -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(PING, b"\xfe" * 126)], {1002}, prefix_ok=False)


@case("2.5", "fragmented ping -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(PING, b"frag", fin=False), t.conn.frame(CONT, b"ment")], {1002}, prefix_ok=False)


@case("2.6", "unsolicited pong ignored")
def _(t):
    t.conn.send_frame(PONG)
    t.conn.send_frame(PONG, b"unsolicited" * 10)
    echo_case(t, [(TEXT, b"after pongs")])


@case("2.7", "ping chopped 1 byte per send")
def _(t):
    t.conn.send_chopped(t.conn.frame(PING, b"chopped ping payload"), 1, 0.002)
    expect_events(t, [("pong", b"chopped ping payload")])
    close_normal(t)


@case("2.8", "ten pings in one packet (pongs may be coalesced, §5.5.3)")
def _(t):
    t.conn.send_raw(b"".join(t.conn.frame(PING, b"ping %d" % i) for i in range(10)) +
                    t.conn.frame(TEXT, b"done"))
    deadline = time.monotonic() + 10
    pongs = []
    while True:
        try:
            ev = t.conn.next_event(deadline)
        except PeerEOF:
            raise Fail("TCP closed")
        if ev == ("msg", TEXT, b"done"):
            break
        if ev[0] != "pong":
            raise Fail("unexpected %s" % short(ev))
        pongs.append(ev[1])
    want = [b"ping %d" % i for i in range(10)]
    # §5.5.3: a pong per ping, or only for the most recent ones; in order.
    if not pongs or pongs[-1] != want[-1] or any(p not in want for p in pongs) or \
            [want.index(p) for p in pongs] != sorted(set(want.index(p) for p in pongs)):
        raise Fail("pongs %r do not answer the pings in order ending with the last" % pongs)
    close_normal(t)


@case("2.9", "ping inside a fragmented message")
def _(t):
    t.conn.send_raw(t.conn.frame(TEXT, b"frag1-", fin=False) + t.conn.frame(PING, b"mid") +
                    t.conn.frame(CONT, b"frag2"))
    expect_events(t, [("pong", b"mid"), ("msg", TEXT, b"frag1-frag2")])
    close_normal(t)


@case("2.10", "pong 126 bytes -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(PONG, b"x" * 126)], {1002}, prefix_ok=False)


# == 3 Reserved bits ======================================================
for _i, _rsv in enumerate([4, 2, 1, 7]):
    def _mk(rsv=_rsv):
        def fn(t):
            fail_case(t, [t.conn.frame(TEXT, b"rsv", rsv=rsv)], {1002}, prefix_ok=False)
        return fn
    case("3.%d" % (_i + 1), "text with RSV%s -> 1002" % {4: "1", 2: "2", 1: "3", 7: "1+2+3"}[_rsv])(_mk())


@case("3.5", "valid text, then RSV2 frame, then ping -> echo, 1002")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"Hello"), t.conn.frame(TEXT, b"Hello", rsv=2), t.conn.frame(PING)],
              {1002}, before=[("msg", TEXT, b"Hello")])


@case("3.6", "ping with RSV1 -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(PING, b"x", rsv=4)], {1002}, prefix_ok=False)


@case("3.7", "close with RSV3 -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(CLOSE, close_payload(1000), rsv=1)], {1002}, prefix_ok=False)


@case("3.8", "binary with RSV1 sent 1 byte per send -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(BINARY, b"\x00\xff" * 10, rsv=4)], {1002}, prefix_ok=False, chop=1)


# == 4 Reserved opcodes ===================================================
for _i, _op in enumerate([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]):
    def _mk(op=_op):
        def fn(t):
            fail_case(t, [t.conn.frame(op, b"")], {1002}, prefix_ok=False)
        return fn
    case("4.%d" % (_i + 1), "reserved opcode %d -> 1002" % _op)(_mk())


@case("4.11", "valid text, then opcode 5 with payload, then ping -> echo, 1002")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"Hello"), t.conn.frame(5, b"payload"), t.conn.frame(PING)],
              {1002}, before=[("msg", TEXT, b"Hello")])


@case("4.12", "reserved control opcode 0xB with 125 bytes -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(0xB, b"x" * 125)], {1002}, prefix_ok=False)


# == 5 Fragmentation ======================================================
def frags(t, op, parts):
    out = []
    for i, p in enumerate(parts):
        out.append(t.conn.frame(op if i == 0 else CONT, p, fin=(i == len(parts) - 1)))
    return b"".join(out)


@case("5.1", "text in 2 fragments")
def _(t):
    t.conn.send_raw(frags(t, TEXT, [b"frag", b"ment"]))
    expect_events(t, [("msg", TEXT, b"fragment")])
    close_normal(t)


@case("5.2", "binary in 2 fragments, sent apart")
def _(t):
    t.conn.send_frame(BINARY, b"\x01\x02", fin=False)
    t.conn.pause(0.05)
    t.conn.send_frame(CONT, b"\x03")
    expect_events(t, [("msg", BINARY, b"\x01\x02\x03")])
    close_normal(t)


@case("5.3", "text in 100 fragments of 1 byte")
def _(t):
    p = mk_text(100)
    t.conn.send_raw(frags(t, TEXT, [p[i:i + 1] for i in range(100)]))
    expect_events(t, [("msg", TEXT, p)])
    close_normal(t)


@case("5.4", "binary in 1000 fragments")
def _(t):
    p = mk_bin(10000)
    t.conn.send_raw(frags(t, BINARY, [p[i:i + 10] for i in range(0, 10000, 10)]))
    expect_events(t, [("msg", BINARY, p)])
    close_normal(t)


@case("5.5", "empty fragments around data")
def _(t):
    t.conn.send_raw(frags(t, TEXT, [b"", b"a", b"", b""]))
    expect_events(t, [("msg", TEXT, b"a")])
    close_normal(t)


@case("5.6", "continuation (fin) without a start -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(CONT, b"orphan")], {1002}, prefix_ok=False)


@case("5.7", "continuation (not fin) without a start -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(CONT, b"orphan", fin=False)], {1002}, prefix_ok=False)


@case("5.8", "new text frame inside a fragmented message -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"start", fin=False), t.conn.frame(TEXT, b"again")], {1002}, prefix_ok=False)


@case("5.9", "binary frame inside a fragmented text -> 1002")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"start", fin=False), t.conn.frame(BINARY, b"x", fin=False)],
              {1002}, prefix_ok=False)


@case("5.10", "pings and pongs between fragments")
def _(t):
    t.conn.send_raw(t.conn.frame(TEXT, b"a", fin=False) + t.conn.frame(PING, b"p1") +
                    t.conn.frame(CONT, b"b", fin=False) + t.conn.frame(PONG, b"unsolicited") +
                    t.conn.frame(PING, b"p2") + t.conn.frame(CONT, b"c"))
    expect_events(t, [("pong", b"p1"), ("pong", b"p2"), ("msg", TEXT, b"abc")])
    close_normal(t)


@case("5.11", "fragments and a ping sent 1 byte per send")
def _(t):
    t.conn.send_chopped(t.conn.frame(BINARY, b"xy", fin=False) + t.conn.frame(PING, b"q") +
                        t.conn.frame(CONT, b"z"), 1, 0.001)
    expect_events(t, [("pong", b"q"), ("msg", BINARY, b"xyz")])
    close_normal(t)


@case("5.12", "continuation after a complete message -> echo, 1002")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"whole"), t.conn.frame(CONT, b"late")], {1002},
              before=[("msg", TEXT, b"whole")])


@case("5.13", "two fragmented messages back to back")
def _(t):
    t.conn.send_raw(frags(t, TEXT, [b"one", b"-", b"two"]) + frags(t, BINARY, [b"\x00", b"\x01"]))
    expect_events(t, [("msg", TEXT, b"one-two"), ("msg", BINARY, b"\x00\x01")])
    close_normal(t)


@case("5.14", "close in the middle of a fragmented message")
def _(t):
    t.conn.send_frame(TEXT, b"unfinished", fin=False)
    close_normal(t)


# == 6 UTF-8 ==============================================================
VALID_TEXTS = [
    ("Hello-µ@ßöäüàá-UTF-8!!", "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode()),
    ("kosme", "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()),
    ("boundary code points", "\x00\x7f\x80\u07ff\u0800\ud7ff\ue000\ufffd\ufffe\uffff\U00010000\U0010ffff".encode("utf-8", "surrogatepass")),
    ("4-byte emoji", "\U0001f600\U0001f4a9".encode()),
]
for _i, (_name, _txt) in enumerate(VALID_TEXTS):
    def _mk(txt=_txt):
        def fn(t):
            echo_case(t, [(TEXT, txt)])
        return fn
    case("6.%d" % (_i + 1), "valid UTF-8: %s" % _name)(_mk())


@case("6.5", "4-byte character split across fragments at each position")
def _(t):
    c = "\U0001f600".encode()
    data = b"".join(frags(t, TEXT, [b"<" + c[:k], c[k:] + b">"]) for k in (1, 2, 3))
    t.conn.send_raw(data)
    expect_events(t, [("msg", TEXT, b"<" + c + b">")] * 3)
    close_normal(t)


@case("6.6", "valid text in 1-byte fragments")
def _(t):
    txt = "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001f600".encode()
    t.conn.send_raw(frags(t, TEXT, [txt[i:i + 1] for i in range(len(txt))]))
    expect_events(t, [("msg", TEXT, txt)])
    close_normal(t)


@case("6.7", "valid multi-byte text chopped 1 byte per send")
def _(t):
    echo_case(t, [(TEXT, "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001f600 \u00e9".encode() * 4)], chop=1)


INVALID_UTF8 = [
    ("stray continuation 0x80", b"\x80"),
    ("stray continuation 0xBF", b"\xbf"),
    ("truncated 2-byte at end", b"\xce"),
    ("truncated 3-byte at end", b"\xe1\xbd"),
    ("truncated 4-byte at end", b"\xf0\x9f\x98"),
    ("overlong 2-byte C0", b"\xc0\xaf"),
    ("overlong 2-byte C1", b"\xc1\xbf"),
    ("overlong 3-byte", b"\xe0\x80\xaf"),
    ("overlong 3-byte max", b"\xe0\x9f\xbf"),
    ("overlong 4-byte", b"\xf0\x80\x80\xaf"),
    ("overlong 4-byte max", b"\xf0\x8f\xbf\xbf"),
    ("surrogate D800", b"\xed\xa0\x80"),
    ("surrogate DFFF", b"\xed\xbf\xbf"),
    ("surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above U+10FFFF", b"\xf4\x90\x80\x80"),
    ("lead F5", b"\xf5\x80\x80\x80"),
    ("lead F7", b"\xf7\xbf\xbf\xbf"),
    ("5-byte form", b"\xf8\x88\x80\x80\x80"),
    ("6-byte form", b"\xfc\x84\x80\x80\x80\x80"),
    ("byte FE", b"\xfe"),
    ("byte FF", b"\xff"),
    ("2-byte lead then ASCII", b"\xc2\x41"),
    ("3-byte lead, 1 cont, ASCII", b"\xe2\x82\x41"),
    ("4-byte lead, 2 cont, ASCII", b"\xf0\x9f\x98\x41"),
]
for _i, (_name, _bad) in enumerate(INVALID_UTF8):
    def _mk(bad=_bad):
        def fn(t):
            # The invalid bytes end the message for the truncation classes.
            payload = "\u03ba\u1f79\u03c3\u03bc\u03b5 ".encode() + bad
            if not _name_is_truncated(bad):
                payload += b" edited"
            fail_case(t, [t.conn.frame(TEXT, payload)], {1007}, prefix_ok=False)
        return fn
    case("6.%d" % (_i + 8), "invalid UTF-8: %s -> 1007" % _name)(_mk())


def _name_is_truncated(bad):
    return bad in (b"\xce", b"\xe1\xbd", b"\xf0\x9f\x98")


_N = 8 + len(INVALID_UTF8)


@case("6.%d" % _N, "surrogate split across fragments -> 1007")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"ab\xed", fin=False), t.conn.frame(CONT, b"\xa0\x80cd")], {1007},
              prefix_ok=False)


@case("6.%d" % (_N + 1), "above U+10FFFF split 1|3 across fragments -> 1007")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"\xf4", fin=False), t.conn.frame(CONT, b"\x90\x80\x80")], {1007},
              prefix_ok=False)


@case("6.%d" % (_N + 2), "truncated sequence at the end of a fragmented message -> 1007")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"abc\xce", fin=False), t.conn.frame(CONT, b"")], {1007}, prefix_ok=False)


@case("6.%d" % (_N + 3), "fail fast: invalid fragment closes before the message ends")
def _(t):
    # The message never ends: the close must come from the invalid fragment.
    t.conn.send_raw(t.conn.frame(TEXT, "\u03ba\u1f79".encode(), fin=False) +
                    t.conn.frame(CONT, b"\xce\xbc\xce\xb5\xed\xa0\x80", fin=False))
    expect_close(t, {1007}, timeout=3)


@case("6.%d" % (_N + 4), "invalid UTF-8 text chopped 1 byte per send -> 1007")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"valid then \xf4\x90\x80\x80 invalid")], {1007}, prefix_ok=False, chop=1)


@case("6.%d" % (_N + 5), "valid text, then invalid text -> echo, 1007")
def _(t):
    fail_case(t, [t.conn.frame(TEXT, b"good"), t.conn.frame(TEXT, b"bad\xff")], {1007},
              before=[("msg", TEXT, b"good")])


# == 7 Close handling =====================================================
@case("7.1", "close without payload -> close echoed without code")
def _(t):
    t.conn.send_close(None)
    expect_close(t, {None}, close_clean=True)


@case("7.2", "close with 1-byte payload -> 1002")
def _(t):
    t.conn.close_sent = True
    fail_case(t, [t.conn.frame(CLOSE, b"\x03")], {1002}, prefix_ok=False)


@case("7.3", "close 1000 with a reason")
def _(t):
    close_normal(t, 1000, b"bye now")


@case("7.4", "close with 125-byte payload (code + 123-byte reason)")
def _(t):
    close_normal(t, 1000, b"r" * 123)


@case("7.5", "close with 126-byte payload -> 1002")
def _(t):
    t.conn.close_sent = True
    fail_case(t, [t.conn.frame(CLOSE, close_payload(1000, b"r" * 124))], {1002}, prefix_ok=False)


for _i, _code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]):
    def _mk(code=_code):
        def fn(t):
            # §5.5.1: the reply "typically echos" the code; 1000 is allowed too.
            close_normal(t, code, b"", accept={code, 1000})
        return fn
    case("7.6.%d" % (_i + 1), "valid close code %d echoed" % _code)(_mk())

for _i, _code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]):
    def _mk(code=_code):
        def fn(t):
            t.conn.close_sent = True
            fail_case(t, [t.conn.frame(CLOSE, struct.pack("!H", code))], {1002}, prefix_ok=False)
        return fn
    case("7.7.%d" % (_i + 1), "invalid close code %d -> 1002" % _code)(_mk())


@case("7.8", "close reason with invalid UTF-8 -> 1007")
def _(t):
    t.conn.close_sent = True
    fail_case(t, [t.conn.frame(CLOSE, close_payload(1000, b"bad \xed\xa0\x80 reason"))], {1007}, prefix_ok=False)


@case("7.9", "text after close is ignored")
def _(t):
    t.conn.send_raw(t.conn.frame(CLOSE, close_payload(1000)) + t.conn.frame(TEXT, b"ignored"))
    t.conn.close_sent = True
    expect_close(t, {1000}, close_clean=True)


@case("7.10", "ping after close is not answered")
def _(t):
    t.conn.send_raw(t.conn.frame(CLOSE, close_payload(1000)) + t.conn.frame(PING, b"late"))
    t.conn.close_sent = True
    expect_close(t, {1000}, close_clean=True)


@case("7.11", "close chopped 1 byte per send")
def _(t):
    t.conn.send_chopped(t.conn.frame(CLOSE, close_payload(1000, b"slow")), 1, 0.002)
    t.conn.close_sent = True
    expect_close(t, {1000}, close_clean=True)


@case("7.12", "text then close in one packet: echo (may be dropped), then close")
def _(t):
    # Once the peer has answered our close it may send no more data (§5.5.1),
    # so an echo not yet sent by then is legitimately dropped.
    t.conn.send_raw(t.conn.frame(TEXT, b"last words") + t.conn.frame(CLOSE, close_payload(1000)))
    t.conn.close_sent = True
    expect_close(t, {1000}, before=[("msg", TEXT, b"last words")], prefix_ok=True, close_clean=True)


# == 8 Limits =============================================================
@case("8.1", "binary 16 MiB message echoed", timeout=60)
def _(t):
    p = os.urandom(1 << 20) * 16
    t.conn.send_frame(BINARY, p)
    expect_events(t, [("msg", BINARY, p)], timeout=60)
    close_normal(t)


@case("8.2", "text 4 MiB multi-byte message in 4 fragments echoed", timeout=60)
def _(t):
    txt = ("a\u00e9\u20ac\U0001f600" * (1 << 18)).encode()  # 10 bytes a round
    q = len(txt) // 4 + 1  # cuts land inside characters
    t.conn.send_raw(frags(t, TEXT, [txt[i:i + q] for i in range(0, len(txt), q)]))
    expect_events(t, [("msg", TEXT, txt)], timeout=60)
    close_normal(t)


@case("8.3", "10,000 pipelined small messages echoed in order", timeout=60)
def _(t):
    msgs = [(TEXT if i % 2 else BINARY, b"m%d" % i) for i in range(10000)]
    t.conn.send_raw(b"".join(t.conn.frame(op, p) for op, p in msgs))
    expect_events(t, [("msg", op, p) for op, p in msgs], timeout=60)
    close_normal(t)


@case("8.4", "slow reader: 8 MiB sent while reading slowly", timeout=60)
def _(t):
    msgs = [(BINARY, bytes([i]) * (128 * 1024)) for i in range(64)]
    for op, p in msgs:
        t.conn.send_frame(op, p)
    # Let the peer's writes back up (it must wait, not drop or spin), then
    # read 16 KiB at a time with a pause after each read.
    time.sleep(0.5)
    t.conn.recv_size, t.conn.recv_delay = 16384, 0.0005
    expect_events(t, [("msg", op, p) for op, p in msgs], timeout=60)
    t.conn.recv_size, t.conn.recv_delay = 1 << 20, 0
    close_normal(t)


@case("8.5", "1000 pings pipelined: pongs answer them in order", timeout=30)
def _(t):
    t.conn.send_raw(b"".join(t.conn.frame(PING, b"%d" % i) for i in range(1000)) + t.conn.frame(TEXT, b"end"))
    deadline = time.monotonic() + 30
    last = -1
    while True:
        try:
            ev = t.conn.next_event(deadline)
        except PeerEOF:
            raise Fail("TCP closed")
        if ev == ("msg", TEXT, b"end"):
            break
        if ev[0] != "pong":
            raise Fail("unexpected %s" % short(ev))
        n = int(ev[1])
        if n <= last:
            raise Fail("pong %d after pong %d" % (n, last))
        last = n
    if last != 999:
        raise Fail("last pong answered ping %d, not 999" % last)
    close_normal(t)
