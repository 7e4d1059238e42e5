# SPDX-License-Identifier: MIT
"""Category 13, permessage-deflate (RFC 7692), modelled on the Autobahn
suite's categories 12 and 13 (compressed payloads of many sizes, under
each window size and context takeover setting), plus the negotiation rules
of §7.1 and the framing rules of §6. Both roles: as the client we offer
and the server peer answers; as the server we answer the echo client's
offer. A peer that offers or accepts no permessage-deflate skips the cases
that need it (reported as SKIP, not passed)."""
import os
import time

import cases_hs
import pmd
from cases import case, close_normal, expect_close, expect_events, mk_text
from wsproto_min import BINARY, CONT, PING, PONG, TEXT, Conn, Fail, PeerEOF, Skip

DEFAULT_OFFER = "permessage-deflate; client_max_window_bits"


# -- opening a compressed connection -----------------------------------------

def open_server_pmd(t, offer=DEFAULT_OFFER, need=True):
    """Server peer: we offer `offer`; returns the Conn (t.conn). `need`:
    a declining peer skips the case."""
    req = cases_hs.request(t.host, t.port, path="/case/13?peer=x",
                           extra=[("Sec-WebSocket-Extensions", offer)])
    t.conn = cases_hs.open_ws(t, req)
    if t.conn.pmd is None and need:
        raise Skip("the server declined %r" % offer)
    return t.conn


def answer_for(offer, want):
    """Our answer (server role) to the client's `offer` dict, under our
    wishes `want` (server_bits, client_bits, server_nct, client_nct):
    only what §7.1 lets us say."""
    sb, cb, snct, cnct = want
    parts = [pmd.NAME]
    agreed = {p: None for p in pmd.PARAMS}
    agreed["server_no_context_takeover"] = bool(snct or "server_no_context_takeover" in offer)
    agreed["client_no_context_takeover"] = bool(cnct)
    if agreed["server_no_context_takeover"]:
        parts.append("server_no_context_takeover")
    if cnct:
        parts.append("client_no_context_takeover")
    if "server_max_window_bits" in offer:
        sb = min(sb or 15, offer["server_max_window_bits"])
    if sb:
        parts.append("server_max_window_bits=%d" % sb)  # §7.1.2.1: we may always
        agreed["server_max_window_bits"] = sb
    if cb and "client_max_window_bits" in offer:  # §7.1.2.2: only if offered
        if offer["client_max_window_bits"] is not True:
            cb = min(cb, offer["client_max_window_bits"])
        parts.append("client_max_window_bits=%d" % cb)
        agreed["client_max_window_bits"] = cb
    return "; ".join(parts), agreed


def open_client_pmd(t, want=(None, None, False, False), answer=None):
    """Client peer: we accept its first permessage-deflate offer with our
    wishes `want` (or send `answer` as it is). Returns the Conn."""
    sock, key, rest = cases_hs.accept_client(t)
    offered = ", ".join(v for n, v in t.request_headers if n.lower() == "sec-websocket-extensions")
    offers = pmd.parse_offers(offered) if offered else []
    if not offers:
        sock.sendall(cases_hs.response_101(key))
        t.conn = Conn(sock, False, rest)
        raise Skip("the client offered no permessage-deflate (%r)" % offered)
    value, agreed = answer_for(offers[0], want)
    if answer is not None:
        value = answer
    sock.sendall(cases_hs.response_101(key, "Sec-WebSocket-Extensions: %s\r\n" % value))
    t.conn = Conn(sock, False, rest)
    t.conn.pmd = pmd.Codec("server", agreed)
    return t.conn


def open_pmd(t, **kw):
    if t.role == "server":
        return open_server_pmd(t, **kw.get("server", {}))
    return open_client_pmd(t, **kw.get("client", {}))


def echo_compressed(t, msgs, timeout=20):
    """Sends each (opcode, data) compressed in one frame and expects the
    same message back (compressed or not: the peer chooses)."""
    for op, data in msgs:
        t.conn.send_raw(t.conn.compressed(op, data))
    expect_events(t, [("msg", op, bytes(d)) for op, d in msgs], timeout)


def rnd(n):
    return os.urandom(n)


def words(n, seed=0):
    """Text that compresses with back references both near and far."""
    w = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua %d " % seed).encode()
    return (w * (n // len(w) + 1))[:n]


# == 13.1 Negotiated, compressed echoes ======================================

SIZES = [0, 1, 16, 64, 125, 126, 1000, 4096, 65535, 65536, 262144]


@case("13.1.1", "compressed text of 0..256 KiB (11 sizes) echoed", raw=True, timeout=30)
def _(t):
    open_pmd(t)
    echo_compressed(t, [(TEXT, words(n)) for n in SIZES])
    close_normal(t)


@case("13.1.2", "compressed binary of 0..256 KiB (11 sizes, random) echoed", raw=True, timeout=30)
def _(t):
    open_pmd(t)
    echo_compressed(t, [(BINARY, rnd(n)) for n in SIZES])
    close_normal(t)


@case("13.1.3", "1 MiB compressible and 1 MiB random echoed", raw=True, timeout=40)
def _(t):
    open_pmd(t)
    echo_compressed(t, [(BINARY, words(1 << 20)), (BINARY, rnd(1 << 20))], timeout=30)
    close_normal(t)


@case("13.1.4", "200 compressed messages in a row (context takeover) echoed in order", raw=True,
      timeout=30)
def _(t):
    open_pmd(t)
    echo_compressed(t, [(TEXT, words(100 + i * 13, i % 7)) for i in range(200)])
    close_normal(t)


@case("13.1.5", "uncompressed messages on a compressed connection echoed", raw=True)
def _(t):
    open_pmd(t)
    msgs = [(TEXT, b"plain"), (BINARY, rnd(3000)), (TEXT, b"")]
    for op, d in msgs:
        t.conn.send_frame(op, d)
    expect_events(t, [("msg", op, d) for op, d in msgs])
    echo_compressed(t, [(TEXT, b"then compressed")])
    close_normal(t)


@case("13.1.6", "compressed message in 5 fragments (RSV1 on the first only) echoed", raw=True)
def _(t):
    open_pmd(t)
    data = words(20000)
    payload = t.conn.pmd.compress(data)
    cuts = [0, 1, len(payload) // 3, len(payload) // 2, len(payload) - 1, len(payload)]
    for i in range(5):
        t.conn.send_frame(TEXT if i == 0 else CONT, payload[cuts[i]:cuts[i + 1]], fin=i == 4,
                          rsv=4 if i == 0 else 0)
    expect_events(t, [("msg", TEXT, data)])
    close_normal(t)


@case("13.1.7", "ping between fragments of a compressed message", raw=True)
def _(t):
    open_pmd(t)
    data = words(5000)
    payload = t.conn.pmd.compress(data)
    h = len(payload) // 2
    t.conn.send_frame(BINARY, payload[:h], fin=False, rsv=4)
    t.conn.send_frame(PING, b"mid")
    t.conn.send_frame(CONT, payload[h:])
    expect_events(t, [("pong", b"mid"), ("msg", BINARY, data)])
    close_normal(t)


@case("13.1.8", "compressed message sent 1 byte per segment", raw=True, timeout=30)
def _(t):
    open_pmd(t)
    frames = b"".join(t.conn.compressed(TEXT, words(n)) for n in (10, 300, 2000))
    t.conn.send_chopped(frames, 1, 0.0005)
    expect_events(t, [("msg", TEXT, words(n)) for n in (10, 300, 2000)], 20)
    close_normal(t)


@case("13.1.9", "compressed data ending in BFINAL and a sync-flush empty block", raw=True)
def _(t):
    import zlib
    open_pmd(t)
    # §7.2.3.5/§7.2.3.4: a final block, or a stored empty block, are valid
    # ways to end a message's payload
    c = zlib.compressobj(6, zlib.DEFLATED, -9)
    fin = c.compress(b"final block here") + c.flush(zlib.Z_FINISH)
    t.conn.send_frame(TEXT, fin, rsv=4)
    t.conn.send_raw(t.conn.compressed(TEXT, b"after the final block"))
    expect_events(t, [("msg", TEXT, b"final block here"), ("msg", TEXT, b"after the final block")])
    close_normal(t)


# == 13.2 Window sizes and context takeover (both ways) =======================

def window_case(bits, nct):
    def fn(t):
        if t.role == "server":
            offer = "permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d" % (bits, bits)
            if nct:
                offer += "; server_no_context_takeover; client_no_context_takeover"
            open_server_pmd(t, offer)
            a = t.conn.pmd.agreed
            if a["server_max_window_bits"] is None or a["server_max_window_bits"] > bits:
                raise Fail("server answered window %s to our %d" % (a["server_max_window_bits"], bits))
            if nct and not a["server_no_context_takeover"]:
                raise Fail("server_no_context_takeover not answered")
        else:
            open_client_pmd(t, want=(bits, bits, nct, nct))
        msgs = [(TEXT, words(3000, i)) for i in range(20)] + [(BINARY, words(70000)), (BINARY, rnd(5000))]
        echo_compressed(t, msgs, timeout=30)
        close_normal(t)
    return fn


_n = 0
for _bits in range(8, 16):
    for _nct in (False, True):
        _n += 1
        case("13.2.%d" % _n, "window bits %d both ways, context takeover %s: 22 messages echoed"
             % (_bits, "off" if _nct else "on"), raw=True, timeout=40)(window_case(_bits, _nct))


# == 13.3 Errors on a compressed connection ==================================

@case("13.3.1", "RSV1 on a continuation frame -> 1002", raw=True)
def _(t):
    open_pmd(t)
    p = t.conn.pmd.compress(b"abcdefgh" * 10)
    t.conn.send_frame(TEXT, p[:3], fin=False, rsv=4)
    t.conn.send_frame(CONT, p[3:], rsv=4)
    expect_close(t, {1002}, prefix_ok=True)


@case("13.3.2", "RSV1 on a ping -> 1002", raw=True)
def _(t):
    open_pmd(t)
    t.conn.send_frame(PING, b"x", rsv=4)
    expect_close(t, {1002})


@case("13.3.3", "RSV1 on a close frame -> 1002", raw=True)
def _(t):
    open_pmd(t)
    t.conn.send_raw(t.conn.frame(0x8, b"\x03\xe8", rsv=4))
    expect_close(t, {1002})


@case("13.3.4", "compressed payload that is not deflate data -> 1007", raw=True)
def _(t):
    open_pmd(t)
    t.conn.send_frame(BINARY, b"\xff\xff\xff\xff\xff", rsv=4)
    expect_close(t, {1007})


@case("13.3.5", "compressed text that inflates to invalid UTF-8 -> 1007", raw=True)
def _(t):
    open_pmd(t)
    t.conn.send_raw(t.conn.compressed(TEXT, b"fine"))
    t.conn.send_raw(t.conn.compressed(TEXT, b"bad \xc3\x28 utf-8"))
    expect_close(t, {1007}, before=[("msg", TEXT, b"fine")], prefix_ok=True)


@case("13.3.6", "RSV2 on a compressed connection -> 1002", raw=True)
def _(t):
    open_pmd(t)
    t.conn.send_frame(TEXT, b"x", rsv=2)
    expect_close(t, {1002})


# == 13.4 Negotiation (§7.1) ==================================================

DECLINE = [
    ("unknown parameter", "permessage-deflate; foo"),
    ("duplicate parameter", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
    ("server_max_window_bits without a value", "permessage-deflate; server_max_window_bits"),
    ("server_max_window_bits=7", "permessage-deflate; server_max_window_bits=7"),
    ("client_max_window_bits=16", "permessage-deflate; client_max_window_bits=16"),
    ("window with a leading zero", "permessage-deflate; server_max_window_bits=09"),
    ("flag with a value", "permessage-deflate; client_no_context_takeover=1"),
]
for _i, (_what, _offer) in enumerate(DECLINE):
    def _mk(offer=_offer):
        def fn(t):
            # check_101 refuses any answer to an offer it must decline
            open_server_pmd(t, offer, need=False)
            if t.conn.pmd is not None:
                raise Fail("server accepted %r" % offer)
            t.conn.send_frame(TEXT, b"still works")
            expect_events(t, [("msg", TEXT, b"still works")])
            close_normal(t)
        return fn
    case("13.4.%d" % (_i + 1), "server declines an offer with %s (101 without it)" % _what,
         roles=("server",), raw=True)(_mk())


@case("13.4.8", "first offer invalid, second valid: the second is answered", roles=("server",), raw=True)
def _(t):
    open_server_pmd(t, "permessage-deflate; foo=bar, permessage-deflate; server_no_context_takeover")
    if not t.conn.pmd.agreed["server_no_context_takeover"]:
        raise Fail("the answer is not the second offer's")
    echo_compressed(t, [(TEXT, words(500))])
    close_normal(t)


@case("13.4.9", "other extensions are ignored, permessage-deflate answered", roles=("server",), raw=True)
def _(t):
    open_server_pmd(t, "x-webkit-deflate-frame, foo; bar=\"baz\", " + DEFAULT_OFFER)
    echo_compressed(t, [(TEXT, words(500))])
    close_normal(t)


@case("13.4.10", "quoted parameter values are understood", roles=("server",), raw=True)
def _(t):
    open_server_pmd(t, 'permessage-deflate; server_max_window_bits="10"; client_max_window_bits')
    if (t.conn.pmd.agreed["server_max_window_bits"] or 15) > 10:
        raise Fail("window not honoured")
    echo_compressed(t, [(BINARY, words(40000))])
    close_normal(t)


@case("13.4.11", "the client's offer is valid RFC 7692 (§7.1)", roles=("client",), raw=True)
def _(t):
    open_client_pmd(t)  # parse_offers() took a valid offer
    echo_compressed(t, [(TEXT, b"offer ok")])
    close_normal(t)


# A client must fail the connection on these answers (§7.1): it sends
# nothing and closes (the case 11.x way).
BAD_ANSWERS = [
    ("an unknown parameter", "permessage-deflate; foo"),
    ("a parameter twice", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
    ("client_max_window_bits without a value", "permessage-deflate; client_max_window_bits"),
    ("server_max_window_bits=7", "permessage-deflate; server_max_window_bits=7"),
    ("permessage-deflate twice", "permessage-deflate, permessage-deflate"),
    ("a flag with a value", "permessage-deflate; server_no_context_takeover=yes"),
]
for _i, (_what, _answer) in enumerate(BAD_ANSWERS):
    def _mk(answer=_answer):
        def fn(t):
            sock, key, rest = cases_hs.accept_client(t)
            offered = ", ".join(v for n, v in t.request_headers if n.lower() == "sec-websocket-extensions")
            if not pmd.parse_offers(offered):
                sock.sendall(cases_hs.response_101(key))
                t.conn = Conn(sock, False, rest)
                raise Skip("the client offered no permessage-deflate")
            sock.sendall(cases_hs.response_101(key, "Sec-WebSocket-Extensions: %s\r\n" % answer))
            cases_hs.expect_client_gives_up(t, sock)
            t.expect_exit = "nonzero"
        return fn
    case("13.5.%d" % (_i + 1), "101 answering permessage-deflate with %s -> client fails" % _what,
         roles=("client",), raw=True)(_mk())
