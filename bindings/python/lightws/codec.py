# SPDX-License-Identifier: MIT
"""Sans-IO codec: frame heads (RFC 6455 §5.2), masking (§5.3), UTF-8
validation (§8.1) and the opening handshake (§4), as pure functions over
bytes. Nothing here touches a socket.

    >>> from lightws import codec
    >>> codec.accept_key("dGhlIHNhbXBsZSBub25jZQ==")     # §1.3
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    >>> codec.encode_frame_header(codec.Frame(codec.Opcode.TEXT, 5))
    b'\\x81\\x05'
"""

from ._core import (ACCEPT_LEN, CONTROL_MAX, DECODE_ALLOW_NONMINIMAL,
                    DECODE_ALLOW_RSV1, DECODE_ALLOW_RSV2, DECODE_ALLOW_RSV3,
                    DECODE_EXPECT_MASKED, DECODE_EXPECT_UNMASKED,
                    FRAME_HEADER_MAX, HANDSHAKE_HEAD_MAX, KEY_LEN, Frame,
                    Request, Response, Utf8Validator, accept_key,
                    build_error, build_request, build_response,
                    close_code_for, close_code_valid, decode_frame_header,
                    encode_frame_header, encode_frame_header_unchecked,
                    error_table, errname, frame_header_size, http_status_for,
                    mask, mask_into, new_key, parse_request, parse_response,
                    strerror)
from .errors import CloseCode, Opcode

__all__ = [
    "Frame", "Opcode", "CloseCode", "Request", "Response", "Utf8Validator",
    "frame_header_size", "encode_frame_header", "encode_frame_header_unchecked",
    "decode_frame_header", "mask", "mask_into", "validate_utf8", "new_key",
    "accept_key", "build_request", "parse_request", "build_response",
    "build_error", "parse_response", "close_code_for", "close_code_valid",
    "http_status_for", "errname", "strerror", "error_table",
    "FRAME_HEADER_MAX", "CONTROL_MAX", "KEY_LEN", "ACCEPT_LEN",
    "HANDSHAKE_HEAD_MAX", "DECODE_EXPECT_MASKED", "DECODE_EXPECT_UNMASKED",
    "DECODE_ALLOW_RSV1", "DECODE_ALLOW_RSV2", "DECODE_ALLOW_RSV3",
    "DECODE_ALLOW_NONMINIMAL",
]


def validate_utf8(data) -> bool:
    """True if ``data`` is complete, valid UTF-8 as §8.1 defines it (no
    surrogates, no overlong forms, nothing over U+10FFFF)."""
    v = Utf8Validator()
    try:
        return v.feed(data)
    except Exception:
        return False
