# SPDX-License-Identifier: MIT
"""permessage-deflate (RFC 7692) for the conformance suite: the extension
list syntax of RFC 6455 §9.1, strict checks of a server's answer (§7.1,
what a client MUST refuse) and of a client's offer, and the compressor /
decompressor pair of one connection (§7.2), stdlib zlib only."""
import re
import zlib

from wsproto_min import Fail

NAME = "permessage-deflate"
PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
          "server_max_window_bits", "client_max_window_bits")
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_list(value):
    """[(name, [(param, value or None)])] of an extension list; Fail if it
    is not RFC 6455 §9.1 syntax (values: token or quoted-string)."""
    out = []
    i, n = 0, len(value)

    def ws():
        nonlocal i
        while i < n and value[i] in " \t":
            i += 1

    def token(what):
        nonlocal i
        m = TOKEN.match(value, i)
        if not m:
            raise Fail("Sec-WebSocket-Extensions %r: %s expected at %d" % (value, what, i))
        i = m.end()
        return m.group(0)

    while True:
        ws()
        while i < n and value[i] == ",":
            i += 1
            ws()
        if i >= n:
            break
        name = token("extension name")
        params = []
        while True:
            ws()
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                raise Fail("Sec-WebSocket-Extensions %r: ';' or ',' expected at %d" % (value, i))
            i += 1
            ws()
            p = token("parameter name")
            ws()
            v = None
            if i < n and value[i] == "=":
                i += 1
                ws()
                if i < n and value[i] == '"':
                    i += 1
                    v = ""
                    while True:
                        if i >= n:
                            raise Fail("Sec-WebSocket-Extensions %r: unterminated quote" % value)
                        c = value[i]
                        i += 1
                        if c == '"':
                            break
                        if c == "\\":
                            if i >= n:
                                raise Fail("Sec-WebSocket-Extensions %r: bad quoted-pair" % value)
                            c = value[i]
                            i += 1
                        v += c
                    if not TOKEN.fullmatch(v):  # §9.1: the unquoted value is a token
                        raise Fail("Sec-WebSocket-Extensions %r: quoted value not a token" % value)
                else:
                    v = token("parameter value")
            params.append((p, v))
        out.append((name, params))
    return out


def window(v):
    """§7.1.2: 1*DIGIT without leading zero, 8..15; None if not."""
    if v is None or not re.fullmatch(r"[1-9][0-9]?", v) or not 8 <= int(v) <= 15:
        return None
    return int(v)


def check_answer(offer, value):
    """The server's answer `value` to our offer (dict: param -> value, True
    for a bare one), checked as §7.1 requires of a client. Returns the
    agreed parameters: dict with the four names (flags bool, windows int
    or None)."""
    exts = parse_list(value)
    if len(exts) != 1 or exts[0][0].lower() != NAME:
        raise Fail("server answered %r; we offered only one %s" % (value, NAME))
    got = {}
    for p, v in exts[0][1]:
        p = p.lower()
        if p not in PARAMS:
            raise Fail("answer %r: unknown parameter %s (§7.1)" % (value, p))
        if p in got:
            raise Fail("answer %r: %s twice (§7.1)" % (value, p))
        if p.endswith("context_takeover"):
            if v is not None:
                raise Fail("answer %r: %s has a value (§7.1.1)" % (value, p))
            got[p] = True
        else:
            w = window(v)
            if w is None:
                raise Fail("answer %r: %s=%r is not 8..15 (§7.1.2)" % (value, p, v))
            got[p] = w
    if "client_max_window_bits" in got and "client_max_window_bits" not in offer:
        raise Fail("answer %r: client_max_window_bits not offered (§7.1.2.2)" % value)
    if "server_max_window_bits" in offer:
        if "server_max_window_bits" not in got or got["server_max_window_bits"] > offer["server_max_window_bits"]:
            raise Fail("answer %r: server_max_window_bits %s asked for (§7.1.2.1)"
                       % (value, offer["server_max_window_bits"]))
    if "server_no_context_takeover" in offer and "server_no_context_takeover" not in got:
        raise Fail("answer %r: server_no_context_takeover asked for (§7.1.1.1)" % value)
    return {p: got.get(p, False if p.endswith("takeover") else None) for p in PARAMS}


def offer_value(offer):
    parts = [NAME]
    for p in PARAMS:
        if p in offer:
            parts.append(p if offer[p] is True else "%s=%d" % (p, offer[p]))
    return "; ".join(parts)


def parse_offers(value):
    """The client's offers of permessage-deflate, in order, as dicts
    (param -> value, True if bare); invalid ones are left out (§7.1)."""
    offers = []
    for name, params in parse_list(value):
        if name.lower() != NAME:
            continue
        o = {}
        ok = True
        for p, v in params:
            p = p.lower()
            if p not in PARAMS or p in o:
                ok = False
            elif p.endswith("takeover"):
                ok = ok and v is None
                o[p] = True
            elif v is None:
                ok = ok and p == "client_max_window_bits"
                o[p] = True
            else:
                w = window(v)
                ok = ok and w is not None
                o[p] = w
        if ok:
            offers.append(o)
    return offers


class Codec:
    """One side's compressor and decompressor (§7.2). `role` is "client"
    or "server" (who we are); `agreed` is check_answer()'s dict."""

    def __init__(self, role, agreed):
        me, peer = ("client", "server") if role == "client" else ("server", "client")
        self.my_bits = agreed["%s_max_window_bits" % me] or 15
        self.my_reset = agreed["%s_no_context_takeover" % me]
        self.peer_bits = agreed["%s_max_window_bits" % peer] or 15
        self.peer_reset = agreed["%s_no_context_takeover" % peer]
        self.agreed = agreed
        self._new_compressor()
        self._new_inflater()

    def _new_inflater(self):
        # (python's zlib inflates raw data with 9..15 bits: 9 reads any
        # 8-bit stream, only without catching a too-far reference)
        self.inflater = zlib.decompressobj(-max(9, self.peer_bits))

    def _new_compressor(self):
        # zlib has no 8-bit raw deflate window: 9 bits with Huffman coding
        # only (no back references) is valid for any window
        if self.my_bits == 8:
            self.deflater = zlib.compressobj(6, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY)
        else:
            self.deflater = zlib.compressobj(6, zlib.DEFLATED, -self.my_bits)

    def compress(self, data):
        """A message's compressed payload (§7.2.1: 00 00 ff ff removed)."""
        out = self.deflater.compress(bytes(data)) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        if not out.endswith(b"\x00\x00\xff\xff"):
            raise AssertionError("zlib sync flush without its empty block")
        if self.my_reset:
            self._new_compressor()
        return out[:-4]

    def decompress(self, payload, limit=64 << 20):
        """A compressed message from the peer (§7.2.2)."""
        try:
            out = self.inflater.decompress(bytes(payload) + b"\x00\x00\xff\xff", limit + 1)
        except zlib.error as e:
            raise Fail("peer's compressed message is not valid deflate data (%s)" % e)
        if len(out) > limit:
            raise Fail("peer's compressed message inflates past %d bytes" % limit)
        if self.inflater.unconsumed_tail:
            raise Fail("peer's compressed message left input unread")
        if self.peer_reset or self.inflater.eof:  # (a BFINAL block ends a stream)
            self._new_inflater()
        return out
