# SPDX-License-Identifier: MIT
"""lightws.codec: RFC 6455 vectors (§5.7 frames, §1.3 accept key), masking
at every offset and split, UTF-8 across every split, handshake codec."""

import unittest

import lightws
from lightws import codec, CloseCode, Opcode
from lightws import _core

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])

# RFC 6455 §5.7 examples: (bytes on the wire, opcode, fin, mask, payload)
RFC_5_7 = [
    (bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]), Opcode.TEXT, True, None, b"Hello"),
    (bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
     Opcode.TEXT, True, KEY, b"Hello"),
    (bytes([0x01, 0x03, 0x48, 0x65, 0x6C]), Opcode.TEXT, False, None, b"Hel"),
    (bytes([0x80, 0x02, 0x6C, 0x6F]), Opcode.CONTINUATION, True, None, b"lo"),
    (bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F]), Opcode.PING, True, None, b"Hello"),
    (bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]),
     Opcode.PONG, True, KEY, b"Hello"),
]


class TestFrameCodec(unittest.TestCase):
    def test_rfc_5_7_encode(self):
        for wire, op, fin, key, payload in RFC_5_7:
            with self.subTest(wire=wire.hex()):
                head = codec.encode_frame_header(codec.Frame(op, len(payload), fin, key))
                body = codec.mask(payload, key) if key else payload
                self.assertEqual(head + body, wire)

    def test_rfc_5_7_decode(self):
        for wire, op, fin, key, payload in RFC_5_7:
            with self.subTest(wire=wire.hex()):
                f, n = codec.decode_frame_header(wire)
                self.assertEqual((f.opcode, f.fin, f.mask, f.length), (op, fin, key, len(payload)))
                self.assertEqual(n, 6 if key else 2)
                body = wire[n:]
                self.assertEqual(codec.mask(body, key) if key else body, payload)

    def test_rfc_5_7_lengths(self):
        # 256 bytes: 16-bit length; 64 KiB: 64-bit length (§5.7 last examples).
        self.assertEqual(codec.encode_frame_header(codec.Frame(Opcode.BINARY, 256)),
                         bytes([0x82, 0x7E, 0x01, 0x00]))
        self.assertEqual(codec.encode_frame_header(codec.Frame(Opcode.BINARY, 65536)),
                         bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]))
        for length, size in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]:
            self.assertEqual(codec.frame_header_size(length), size)
            self.assertEqual(codec.frame_header_size(length, True), size + 4)

    def test_decode_byte_at_a_time(self):
        wire = codec.encode_frame_header(codec.Frame(Opcode.BINARY, 70000, True, KEY))
        self.assertEqual(len(wire), 14)
        for i in range(len(wire)):
            f, need = codec.decode_frame_header(wire[:i])
            self.assertIsNone(f)
            self.assertGreater(need, i)
            self.assertLessEqual(need, 14)
        f, n = codec.decode_frame_header(wire)
        self.assertEqual((f.length, n, f.mask), (70000, 14, KEY))

    def test_decode_errors(self):
        cases = [
            (b"\x83\x00", "RESERVED_OPCODE", 1002),
            (b"\xc1\x00", "RESERVED_BITS", 1002),
            (b"\x09\x00", "FRAGMENTED_CONTROL", 1002),
            (b"\x89\x7e\x00\x7e", "CONTROL_TOO_LONG", 1002),
            (b"\x82\x7e\x00\x05", "NONMINIMAL_LENGTH", 1002),
            (b"\x82\x7f\x80" + bytes(7), "LENGTH_TOP_BIT", 1002),
        ]
        for wire, name, code in cases:
            with self.subTest(name=name):
                with self.assertRaises(lightws.ProtocolError) as cm:
                    codec.decode_frame_header(wire)
                self.assertEqual(cm.exception.errname, name)
                self.assertEqual(cm.exception.close_code, code)

    def test_decode_mask_expectations(self):
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decode_frame_header(b"\x81\x05", codec.DECODE_EXPECT_MASKED)
        self.assertEqual(cm.exception.errname, "MASK_REQUIRED")
        with self.assertRaises(lightws.ProtocolError) as cm:
            codec.decode_frame_header(RFC_5_7[1][0], codec.DECODE_EXPECT_UNMASKED)
        self.assertEqual(cm.exception.errname, "MASK_UNEXPECTED")
        f, _ = codec.decode_frame_header(b"\xc1\x00", codec.DECODE_ALLOW_RSV1)
        self.assertEqual(f.rsv, 0x40)

    def test_encode_refuses_forbidden_frames(self):
        for frame in [codec.Frame(Opcode.PING, 126), codec.Frame(Opcode.CLOSE, 2, fin=False),
                      codec.Frame(3, 0)]:
            with self.subTest(frame=frame):
                with self.assertRaises(lightws.InvalidUsage):
                    codec.encode_frame_header(frame)
        # the unchecked encoder writes what it is given
        self.assertEqual(codec.encode_frame_header_unchecked(codec.Frame(3, 0)), b"\x83\x00")


class TestMask(unittest.TestCase):
    def test_mask_twice_restores(self):
        data = bytes(range(256)) * 3
        self.assertEqual(codec.mask(codec.mask(data, KEY), KEY), data)

    def test_every_offset_and_split(self):
        data = bytes((i * 7 + 3) & 0xFF for i in range(67))
        whole = codec.mask(data, KEY)
        for split in range(len(data) + 1):
            a = codec.mask(data[:split], KEY, 0)
            b = codec.mask(data[split:], KEY, split)
            self.assertEqual(a + b, whole, split)

    def test_mask_into_in_place(self):
        buf = bytearray(b"Hello")
        codec.mask_into(buf, KEY)
        self.assertEqual(bytes(buf), bytes([0x7F, 0x9F, 0x4D, 0x51, 0x58]))
        codec.mask_into(memoryview(buf)[1:], KEY, 1)
        self.assertEqual(bytes(buf[1:]), b"ello")

    def test_bad_key(self):
        with self.assertRaises(ValueError):
            codec.mask(b"x", b"abc")


class TestUtf8(unittest.TestCase):
    VALID = ["", "hello", "héllo wörld", "κόσμε", "\u20ac", "\U0001F600 emoji", "\uffff", "\U0010FFFF"]
    INVALID = [b"\xc0\x80", b"\xc1\xbf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
               b"\x80", b"\xff", b"\xe0\x80\xaf", b"caf\xe9"]

    def test_valid_every_split(self):
        for text in self.VALID:
            data = text.encode()
            self.assertTrue(codec.validate_utf8(data), text)
            for split in range(len(data) + 1):
                v = codec.Utf8Validator()
                first = v.feed(data[:split])
                last = v.feed(data[split:])
                self.assertTrue(last, (text, split))
                # incomplete exactly when the split is inside a sequence
                try:
                    data[:split].decode()
                    inside = False
                except UnicodeDecodeError:
                    inside = True
                self.assertEqual(first, not inside, (text, split))

    def test_invalid(self):
        for data in self.INVALID:
            with self.subTest(data=data):
                self.assertFalse(codec.validate_utf8(data))
                with self.assertRaises(lightws.ProtocolError) as cm:
                    codec.Utf8Validator().feed(data + b"\x00")
                self.assertEqual(cm.exception.close_code, 1007)

    def test_incomplete_at_end(self):
        self.assertFalse(codec.validate_utf8("é".encode()[:1]))


class TestHandshakeCodec(unittest.TestCase):
    def test_rfc_1_3_accept_key(self):
        self.assertEqual(codec.accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
                         "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_new_key(self):
        keys = {codec.new_key() for _ in range(20)}
        self.assertEqual(len(keys), 20)
        for k in keys:
            self.assertEqual(len(k), 24)
            self.assertTrue(k.endswith("=="))

    def test_request_roundtrip(self):
        raw = codec.build_request("example.com:8080", "/chat?x=1", key="dGhlIHNhbXBsZSBub25jZQ==",
                                  protocols="chat, superchat", origin="http://example.com",
                                  headers=[("X-Test", "1")])
        self.assertTrue(raw.startswith(b"GET /chat?x=1 HTTP/1.1\r\n"))
        self.assertTrue(raw.endswith(b"\r\n\r\n"))
        req = codec.parse_request(raw + b"\x81\x00")
        self.assertEqual(req.head_len, len(raw))
        self.assertEqual((req.method, req.path, req.host, req.version),
                         ("GET", "/chat?x=1", "example.com:8080", 13))
        self.assertEqual(req.protocols, ["chat", "superchat"])
        self.assertEqual(req.origin, "http://example.com")
        self.assertEqual(req.header("x-test"), "1")
        for i in range(len(raw)):
            self.assertIsNone(codec.parse_request(raw[:i]), i)

    def test_response_roundtrip(self):
        key = codec.new_key()
        raw = codec.build_response(key, "chat")
        self.assertTrue(raw.startswith(b"HTTP/1.1 101 "))
        resp = codec.parse_response(raw, key=key, protocols="chat, superchat")
        self.assertEqual((resp.status, resp.accept, resp.protocol),
                         (101, codec.accept_key(key), "chat"))
        self.assertIsNone(codec.parse_response(raw[:-1], key=key, protocols="chat"))
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.parse_response(raw, key=codec.new_key(), protocols="chat")
        self.assertEqual(cm.exception.errname, "BAD_ACCEPT")
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.parse_response(raw, key=key)
        self.assertEqual(cm.exception.errname, "BAD_PROTOCOL")

    def test_bad_requests_and_statuses(self):
        good = codec.build_request("h", "/", key="dGhlIHNhbXBsZSBub25jZQ==").decode()
        cases = [
            (good.replace("GET", "POST"), "HTTP_METHOD", 405),
            (good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), "BAD_VERSION", 426),
            (good.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), "BAD_KEY", 400),
            (good.replace("Upgrade: websocket\r\n", ""), "NO_UPGRADE", 400),
        ]
        for raw, name, status in cases:
            with self.subTest(name=name):
                with self.assertRaises(lightws.HandshakeError) as cm:
                    codec.parse_request(raw.encode())
                self.assertEqual((cm.exception.errname, cm.exception.status), (name, status))

    def test_error_response(self):
        raw = codec.build_error(426)
        self.assertTrue(raw.startswith(b"HTTP/1.1 426 "))
        self.assertIn(b"Sec-WebSocket-Version: 13\r\n", raw)
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.parse_response(codec.build_error(404))
        self.assertEqual((cm.exception.errname, cm.exception.status), ("BAD_STATUS", 404))

    def test_header_injection(self):
        with self.assertRaises(lightws.HandshakeError) as cm:
            codec.build_request("h", "/\r\nX: y")
        self.assertEqual(cm.exception.errname, "HEADER_INJECTION")


class TestConstants(unittest.TestCase):
    def test_enums_match_the_c_header(self):
        lib = _core.lib
        for op in Opcode:
            self.assertEqual(op, getattr(lib, "LIGHTWS_OPCODE_" + op.name))
        for code in CloseCode:
            self.assertEqual(code, getattr(lib, "LIGHTWS_CLOSE_" + code.name))
        self.assertEqual(lightws.WANT_READ, lib.LIGHTWS_WANT_READ)
        self.assertEqual(lightws.WANT_WRITE, lib.LIGHTWS_WANT_WRITE)

    def test_error_table(self):
        table = {name: (value, close, status) for value, name, _, close, status in codec.error_table()}
        self.assertEqual(table["UTF8"], (-40, 1007, 0))
        self.assertEqual(table["MESSAGE_TOO_BIG"][1], 1009)
        self.assertEqual(table["BAD_VERSION"][2], 426)
        self.assertEqual(table["EOF"][1], 1006)
        self.assertTrue(codec.close_code_valid(1000))
        self.assertTrue(codec.close_code_valid(4999))
        self.assertFalse(codec.close_code_valid(1005))
        self.assertFalse(codec.close_code_valid(1006))
        self.assertFalse(codec.close_code_valid(999))

    def test_versions(self):
        self.assertEqual(lightws.c_version(), lightws.__version__)


if __name__ == "__main__":
    unittest.main()
