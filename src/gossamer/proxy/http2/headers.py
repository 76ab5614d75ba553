"""Header blocks crossing the proxy: validation, hop-by-hop removal, synthesized responses.

Pure functions over decoded header lists (`(name, value)` byte pairs), no I/O. The
connection core (connection.py) only decodes header blocks; RFC 9113 §8.1.1 makes a
malformed block a stream error, and a proxy should strip hop-by-hop fields rather than
refuse them. So validation happens here, once per block, in a single pass that also picks
out what the proxy needs (authority, content type, status, grpc-status). A malformed
block raises `MalformedHeaders`; the caller resets that stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from gossamer.proxy.errors import ERROR_HEADER, ConnectTimeout, ProxyError, ResponseTimeout
from gossamer.proxy.http2.frames import ErrorCodes
from gossamer.proxy.http2.hpack import Header, NeverIndexed

# RFC 9113 §8.2.2: connection-specific fields never cross an HTTP/2 hop.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# Kept out of the HPACK dynamic table (marked `NeverIndexed`). An upstream connection's
# compression context is shared by many clients, so a secret in it could be probed through
# compressed sizes.
_NEVER_INDEXED = frozenset({b"authorization", b"proxy-authorization"})

# RFC 9113 §8.2.1: names are lowercase visible ASCII without ':' (pseudo-headers aside);
# values hold no NUL/CR/LF and do not start or end with whitespace.
_valid_name = re.compile(rb"[^\x00-\x20A-Z\x7f-\xff:]+").fullmatch
_valid_value = re.compile(rb"(?:[^\x00\r\n\t ](?:[^\x00\r\n]*[^\x00\r\n\t ])?)?").fullmatch

# Fields already validated and needing nothing but copying, per kind of block: most blocks
# repeat the previous ones, so the regular expressions run once per distinct field. Bounded
# (cleared when full) and limited to short fields: about 0.5 MiB at most, all three.
_MEMO_ENTRIES = 512
_MEMO_MAX_FIELD = 192
_ordinary_request: set[Header] = set()
_ordinary_response: set[Header] = set()
_valid_pseudo_values: set[bytes] = set()


def _remember(memo: set[Header], header: Header) -> None:
    if len(header[0]) + len(header[1]) <= _MEMO_MAX_FIELD:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo.add(header)


GRPC_CONTENT_TYPE = b"application/grpc"
GRPC_UNAVAILABLE = 14
GRPC_DEADLINE_EXCEEDED = 4


class MalformedHeaders(Exception):
    """A header block RFC 9113 calls malformed; the stream is reset with PROTOCOL_ERROR."""


class RequestHead(NamedTuple):
    headers: list[Header]
    authority: bytes
    grpc: bool
    method: bytes = b"GET"
    path: bytes = b"/"  # b"" for CONNECT


class ResponseHead(NamedTuple):
    headers: list[Header]
    status: int
    # Set when the block carries grpc-status (trailers, or a trailers-only response).
    grpc_status: int | None


def sanitize_request(headers: Sequence[Header]) -> RequestHead:
    """Validates a request header block and drops its hop-by-hop fields."""
    out: list[Header] = []
    method = scheme = path = authority = host = None
    content_type = b""
    regular = False
    hop = False
    for header in headers:
        if header in _ordinary_request:
            regular = True
            out.append(header)
            continue
        name, value = header[0], header[1]
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO:
                raise MalformedHeaders(f"unexpected pseudo-header {name!r}")
            if name == b":method":
                if method is not None:
                    raise MalformedHeaders("duplicate :method")
                method = value
            elif name == b":path":
                if path is not None or not value:
                    raise MalformedHeaders("duplicate or empty :path")
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    raise MalformedHeaders("duplicate :scheme")
                scheme = value
            else:
                if authority is not None:
                    raise MalformedHeaders("duplicate :authority")
                authority = value
            if value not in _valid_pseudo_values:
                if not _valid_value(value):
                    raise MalformedHeaders(f"invalid value for {name!r}")
                if len(value) <= _MEMO_MAX_FIELD:
                    if len(_valid_pseudo_values) >= _MEMO_ENTRIES:
                        _valid_pseudo_values.clear()
                    _valid_pseudo_values.add(value)
            out.append(header)
            continue
        regular = True
        if name in HOP_BY_HOP:
            hop = True
            continue
        if name == b"te":
            # Only "te: trailers" may cross (gRPC servers insist on it).
            if b"trailers" in value.lower():
                out.append((b"te", b"trailers"))
            continue
        if not _valid_name(name) or not _valid_value(value):
            raise MalformedHeaders(f"invalid header field {name!r}")
        if name == b"content-type":
            content_type = value
        elif name == b"host":
            host = value
        elif name in _NEVER_INDEXED or (name == b"cookie" and len(value) < 20):
            header = NeverIndexed(name, value)
        elif name != b"cookie":
            _remember(_ordinary_request, header)
        out.append(header)
    if method is None:
        raise MalformedHeaders("missing :method")
    if method == b"CONNECT":
        if authority is None or scheme is not None or path is not None:
            raise MalformedHeaders("CONNECT needs :authority and no :scheme or :path")
    elif scheme is None or path is None:
        raise MalformedHeaders("missing :scheme or :path")
    if host is not None and authority is not None and host != authority:
        raise MalformedHeaders("host and :authority differ")
    if hop:
        out = _drop_nominated(headers, out)
    return RequestHead(
        out,
        authority or host or b"",
        content_type.startswith(GRPC_CONTENT_TYPE),
        method,
        path or b"",
    )


def sanitize_response(headers: Sequence[Header]) -> ResponseHead:
    """Validates a response (or informational) header block, dropping hop-by-hop fields."""
    out: list[Header] = []
    status = -1
    grpc_status = None
    hop = False
    for header in headers:
        if header in _ordinary_response:
            out.append(header)
            continue
        name, value = header[0], header[1]
        if name[:1] == b":":
            if (
                name != b":status"
                or status != -1
                or out
                or len(value) != 3
                or not value.isdigit()
                or not 0x31 <= value[0] <= 0x35  # 1xx to 5xx
            ):
                raise MalformedHeaders(f"unexpected pseudo-header {name!r}")
            status = int(value)
            out.append(header)
            continue
        if name in HOP_BY_HOP:
            hop = True
            continue
        if name == b"te":
            continue
        if not _valid_name(name) or not _valid_value(value):
            raise MalformedHeaders(f"invalid header field {name!r}")
        if name == b"grpc-status":
            grpc_status = _grpc_status(value)
        elif name in _NEVER_INDEXED:
            header = NeverIndexed(name, value)
        else:
            _remember(_ordinary_response, header)
        out.append(header)
    if status == -1:
        raise MalformedHeaders("missing :status")
    if hop:
        out = _drop_nominated(headers, out)
    return ResponseHead(out, status, grpc_status)


def sanitize_trailers(headers: Sequence[Header]) -> tuple[list[Header], int | None]:
    """Validates a trailer block (no pseudo-headers); returns it and any grpc-status."""
    out: list[Header] = []
    grpc_status = None
    hop = False
    for header in headers:
        if header in _ordinary_response:
            out.append(header)
            continue
        name, value = header[0], header[1]
        if name in HOP_BY_HOP:
            hop = True
            continue
        if name == b"te":
            continue
        if not _valid_name(name) or not _valid_value(value):
            raise MalformedHeaders(f"invalid trailer field {name!r}")
        if name == b"grpc-status":
            grpc_status = _grpc_status(value)
        elif name in _NEVER_INDEXED:
            header = NeverIndexed(name, value)
        else:
            _remember(_ordinary_response, header)
        out.append(header)
    if hop:
        out = _drop_nominated(headers, out)
    return out, grpc_status


def _grpc_status(value: bytes) -> int | None:
    return int(value) if value.isdigit() and len(value) < 4 else None


def _drop_nominated(original: Sequence[Header], out: list[Header]) -> list[Header]:
    """Also drops the fields a `connection` header names as hop-by-hop (RFC 9110 §7.6.1)."""
    named: set[bytes] = set()
    for name, value in original:
        if name == b"connection":
            named.update(token.strip().lower() for token in value.split(b","))
    if not named:
        return out
    return [h for h in out if h[0] not in named or h[0][:1] == b":"]


# -- responses the proxy answers itself ------------------------------------------------------


class ErrorResponse(NamedTuple):
    headers: list[Header]
    body: bytes
    status: int
    grpc_status: int | None


def error_response(error: ProxyError, grpc: bool) -> ErrorResponse:
    """The response for a request the proxy could not forward.

    gRPC clients get a trailers-only response (HTTP 200 with grpc-status), because a gRPC
    client reads a non-200 HTTP status as a less precise UNKNOWN/UNAVAILABLE.
    """
    reason = _header_safe(error.detail)
    if grpc:
        timeout = isinstance(error, ConnectTimeout | ResponseTimeout)
        code = GRPC_DEADLINE_EXCEEDED if timeout else GRPC_UNAVAILABLE
        headers = [
            (b":status", b"200"),
            (b"content-type", GRPC_CONTENT_TYPE),
            (b"grpc-status", str(code).encode()),
            (b"grpc-message", grpc_message(error.detail)),
            (ERROR_HEADER.encode(), reason),
        ]
        return ErrorResponse(headers, b"", 200, code)
    body = f"{error.status} {error.detail}\n".encode()
    headers = [
        (b":status", str(error.status).encode()),
        (ERROR_HEADER.encode(), reason),
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(body)).encode()),
    ]
    return ErrorResponse(headers, body, error.status, None)


def grpc_message(text: str) -> bytes:
    """Percent-encodes a grpc-message value as the gRPC HTTP/2 spec requires."""
    out = bytearray()
    for byte in text.encode():
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


def _header_safe(text: str) -> bytes:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text).strip().encode()


# -- RST_STREAM codes across the proxy -------------------------------------------------------

# Codes that mean the same thing on the other hop; anything else describes only the hop it
# arrived on (FLOW_CONTROL_ERROR, COMPRESSION_ERROR, ...), which the other side cannot act on.
_PORTABLE = frozenset(
    {
        ErrorCodes.NO_ERROR,
        ErrorCodes.CANCEL,
        ErrorCodes.REFUSED_STREAM,
        ErrorCodes.ENHANCE_YOUR_CALM,
        ErrorCodes.INTERNAL_ERROR,
        ErrorCodes.CONNECT_ERROR,
        ErrorCodes.INADEQUATE_SECURITY,
        ErrorCodes.HTTP_1_1_REQUIRED,
    }
)


def reset_toward_client(code: int) -> int:
    """The code for the client's stream when the upstream resets its own."""
    return code if code in _PORTABLE else ErrorCodes.INTERNAL_ERROR


def reset_toward_upstream(code: int) -> int:
    """The code for the upstream stream when the client resets its own: it no longer
    wants the response, whatever the reason."""
    if code in (ErrorCodes.NO_ERROR, ErrorCodes.ENHANCE_YOUR_CALM):
        return code
    return ErrorCodes.CANCEL
