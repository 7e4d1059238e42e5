# SPDX-License-Identifier: MIT
"""Sans-IO codec: frame heads (RFC 6455 §5.2), masking (§5.3), UTF-8
validation (§8.1), the opening handshake (§4) and permessage-deflate
(RFC 7692: negotiation values, Compressor/Decompressor of whole messages
driven by the C core), as functions over bytes. Nothing here touches a
socket.

    >>> from lightws import codec
    >>> codec.accept_key("dGhlIHNhbXBsZSBub25jZQ==")     # §1.3
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    >>> codec.encode_frame_header(codec.Frame(codec.Opcode.TEXT, 5))
    b'\\x81\\x05'
"""

from ._core import (ACCEPT_LEN, Compressor, Decompressor, Deflate, PerMessageDeflate,
                    accept_offer, check_response, deflate_available, offer_value,
                    response_value, CONTROL_MAX, DECODE_ALLOW_NONMINIMAL,
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
    # permessage-deflate (RFC 7692)
    "Compressor", "Decompressor", "Deflate", "PerMessageDeflate", "compress",
    "decompress", "deflate_available", "offer_value", "accept_offer",
    "response_value", "check_response",
]


def compress(data, window_bits=None) -> bytes:
    """One message compressed on its own (no context kept), as
    Compressor(window_bits, no_context_takeover=True).compress(data):
    the payload of its frames, first frame with RSV1 (RFC 7692 §7.2.1)."""
    return Compressor(window_bits, no_context_takeover=True).compress(data)


def decompress(payload, max_size=64 * 1024 * 1024, text=False, window_bits=None) -> bytes:
    """One compressed message inflated on its own (§7.2.2), at most
    ``max_size`` bytes (ProtocolError 1009 beyond, without inflating the
    rest; 1007 for invalid data)."""
    return Decompressor(window_bits, no_context_takeover=True,
                        max_size=max_size).decompress(payload, text)


def validate_utf8(data) -> bool:
    """True if ``data`` is complete, valid UTF-8 as §8.1 defines it (no
    surrogates, no overlong forms, nothing over U+10FFFF)."""
    v = Utf8Validator()
    try:
        return v.feed(data)
    except Exception:
        return False
