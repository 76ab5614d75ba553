"""HTTP/2 wire constants and frame serialization (RFC 9113 §4, §6, §7). Pure, no state.

A frame is a 9-byte header (24-bit length, type, flags, 31-bit stream id) and a payload.
The serializers return bytes ready for the socket; DATA returns its header alone so the
payload is not copied before the write joins it with the rest.
"""

from __future__ import annotations

import enum
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types.
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_FRAME_LIMIT = 2**24 - 1
MAX_WINDOW = 2**31 - 1
MAX_STREAM_ID = 2**31 - 1


class ErrorCodes(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def error_code(value: int) -> int:
    """The `ErrorCodes` member for a wire value; unknown codes stay plain ints."""
    try:
        return ErrorCodes(value)
    except ValueError:
        return value


class SettingCodes(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


# 24-bit length as a byte and a short, then type, flags and stream id.
_HEAD = struct.Struct(">BHBBL")
unpack_head = _HEAD.unpack_from
_U32 = struct.Struct(">L")
_U32X2 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")


def head(length: int, kind: int, flags: int, sid: int) -> bytes:
    return _HEAD.pack(length >> 16, length & 0xFFFF, kind, flags, sid)


def data_head(sid: int, length: int, end_stream: bool) -> bytes:
    return _HEAD.pack(length >> 16, length & 0xFFFF, DATA, END_STREAM if end_stream else 0, sid)


def headers_frames(sid: int, block: bytes, end_stream: bool, max_frame: int) -> list[bytes]:
    """HEADERS, and CONTINUATION frames when the block exceeds the peer's frame size."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return [head(len(block), HEADERS, flags | END_HEADERS, sid), block]
    out = [head(max_frame, HEADERS, flags, sid), block[:max_frame]]
    pos = max_frame
    while pos < len(block):
        chunk = block[pos : pos + max_frame]
        pos += len(chunk)
        last = END_HEADERS if pos >= len(block) else 0
        out += (head(len(chunk), CONTINUATION, last, sid), chunk)
    return out


def rst_stream(sid: int, code: int) -> bytes:
    return head(4, RST_STREAM, 0, sid) + _U32.pack(code)


def window_update(sid: int, increment: int) -> bytes:
    return head(4, WINDOW_UPDATE, 0, sid) + _U32.pack(increment)


def settings(values: dict[int, int]) -> bytes:
    payload = b"".join(_SETTING.pack(code, value) for code, value in values.items())
    return head(len(payload), SETTINGS, 0, 0) + payload


SETTINGS_ACK = head(0, SETTINGS, ACK, 0)


def ping_ack(opaque: bytes) -> bytes:
    return head(8, PING, ACK, 0) + opaque


def goaway(last_sid: int, code: int, debug: bytes = b"") -> bytes:
    return head(8 + len(debug), GOAWAY, 0, 0) + _U32X2.pack(last_sid, code) + debug


def u32(payload: bytes, offset: int = 0) -> int:
    return int(_U32.unpack_from(payload, offset)[0])


def settings_pairs(payload: bytes) -> list[tuple[int, int]]:
    return [_SETTING.unpack_from(payload, pos) for pos in range(0, len(payload), 6)]
