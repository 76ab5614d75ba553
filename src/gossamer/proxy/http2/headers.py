"""Header blocks crossing the proxy: validation, hop-by-hop removal, synthesized responses.

Pure functions over h2's header lists (`(name, value)` byte pairs), no I/O. The h2
connections run with inbound validation off because h2 treats every malformed header block
as a connection error; RFC 9113 §8.1.1 makes it a stream error, and a proxy should strip
hop-by-hop fields rather than refuse them. So validation happens here, once per block, in a
single pass that also picks out what the proxy needs (authority, content type, status,
grpc-status). A malformed block raises `MalformedHeaders`; the caller resets that stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from h2.errors import ErrorCodes
from hpack import NeverIndexedHeaderTuple

from gossamer.proxy.errors import ERROR_HEADER, ConnectTimeout, ProxyError, ResponseTimeout

Header = tuple[bytes, bytes]

# RFC 9113 §8.2.2: connection-specific fields never cross an HTTP/2 hop.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# Kept out of the HPACK dynamic table, as h2's outbound normalization would (which the
# proxy turns off: it has validated everything it forwards already). An upstream
# connection's compression context is shared by many clients, so a secret in it could be
# probed through compressed sizes.
_NEVER_INDEXED = frozenset({b"authorization", b"proxy-authorization"})

# RFC 9113 §8.2.1: names are lowercase visible ASCII without ':' (pseudo-headers aside);
# values hold no NUL/CR/LF and do not start or end with whitespace.
_valid_name = re.compile(rb"[^\x00-\x20A-Z\x7f-\xff:]+").fullmatch
_valid_value = re.compile(rb"(?:[^\x00\r\n\t ](?:[^\x00\r\n]*[^\x00\r\n\t ])?)?").fullmatch
_valid_status = re.compile(rb"[1-5][0-9][0-9]").fullmatch

GRPC_CONTENT_TYPE = b"application/grpc"
GRPC_UNAVAILABLE = 14
GRPC_DEADLINE_EXCEEDED = 4


class MalformedHeaders(Exception):
    """A header block RFC 9113 calls malformed; the stream is reset with PROTOCOL_ERROR."""


class RequestHead(NamedTuple):
    headers: list[Header]
    authority: bytes
    grpc: bool


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
            if not _valid_value(value):
                raise MalformedHeaders(f"invalid value for {name!r}")
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
            header = NeverIndexedHeaderTuple(name, value)
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
    return RequestHead(out, authority or host or b"", content_type.startswith(GRPC_CONTENT_TYPE))


def sanitize_response(headers: Sequence[Header]) -> ResponseHead:
    """Validates a response (or informational) header block, dropping hop-by-hop fields."""
    out: list[Header] = []
    status = -1
    grpc_status = None
    hop = False
    for header in headers:
        name, value = header[0], header[1]
        if name[:1] == b":":
            if name != b":status" or status != -1 or out or not _valid_status(value):
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
            header = NeverIndexedHeaderTuple(name, value)
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
            header = NeverIndexedHeaderTuple(name, value)
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
