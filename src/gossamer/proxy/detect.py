"""Protocol detection from a connection's first bytes. Pure: bytes in, verdict out.

Theory of operation: HTTP/2 prior knowledge starts with a fixed 24-byte preface; HTTP/1
starts with `METHOD SP target SP HTTP/1.x CRLF`. Anything else is opaque TCP. While the
bytes seen so far are a prefix of one of those, the verdict is NEED_MORE; the caller stops
asking after `max_bytes` or its timeout and treats the connection as opaque.
"""

from __future__ import annotations

import enum
import re


class Protocol(enum.Enum):
    HTTP1 = "http/1"
    HTTP2 = "h2"
    OPAQUE = "opaque"
    NEED_MORE = "need-more"


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9110 token characters for the method; the request target is any visible ASCII.
_METHOD = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Loose on purpose: a line shaped like a request is HTTP/1, and the HTTP/1 parser answers a
# malformed target or version with 400 rather than letting it through as opaque bytes.
_REQUEST_LINE = re.compile(rb"^" + _METHOD + rb" [^\r\n]* HTTP/1\.[0-9]\r?\n")
# A prefix that could still grow into a request line.
_REQUEST_LINE_PREFIX = re.compile(rb"^" + _METHOD + rb"(?: [^\r\n]*)?\r?$")


def detect(data: bytes, max_bytes: int = 1024) -> Protocol:
    """Classify the first bytes of a connection.

    >>> detect(b"GET / HTTP/1.1\\r\\n")
    <Protocol.HTTP1: 'http/1'>
    >>> detect(b"GET /")
    <Protocol.NEED_MORE: 'need-more'>
    """
    if not data:
        return Protocol.NEED_MORE
    if len(data) > max_bytes:
        # Only the window decides, so the verdict does not depend on how the bytes arrived
        # (one large read or many small ones).
        data = data[:max_bytes]
    if data[:1] == b"P" and H2_PREFACE.startswith(data[: len(H2_PREFACE)]):
        if len(data) >= len(H2_PREFACE):
            return Protocol.HTTP2
        return Protocol.NEED_MORE
    line_end = data.find(b"\n")
    if line_end != -1:
        return Protocol.HTTP1 if _REQUEST_LINE.match(data[: line_end + 1]) else Protocol.OPAQUE
    if _REQUEST_LINE_PREFIX.match(data) is None:
        return Protocol.OPAQUE
    # A request line longer than the detection window (a long URL) still reads as HTTP/1.
    return Protocol.HTTP1 if len(data) >= max_bytes else Protocol.NEED_MORE
