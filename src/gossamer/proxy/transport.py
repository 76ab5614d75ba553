"""Opaque transport: how mesh TLS carries TCP whose protocol the proxies do not detect.

Between two proxies, an opaque stream (an opaque port, or bytes that are not HTTP) goes to
the peer proxy's inbound port itself rather than to the application's port, inside mesh
TLS, and starts with one header line naming the application port:

    gossamer-transport/1 port=6379\\n

The inbound proxy then forwards to that port without detection, which also serves
protocols where the server speaks first (the header means the client always speaks first
toward the proxy). This is linkerd2-proxy's "opaque transport" idea in a text header.
"""

from __future__ import annotations

import re

PREFIX = b"gossamer-transport/1 "
MAX_HEADER = 64
_HEADER = re.compile(rb"^gossamer-transport/1 port=(\d{1,5})\n")


class TransportHeaderError(ValueError):
    pass


def encode(port: int) -> bytes:
    return PREFIX + b"port=%d\n" % port


def decode(data: bytes) -> tuple[int, bytes] | None:
    """(port, the bytes after the header), or None if more bytes are needed."""
    end = data.find(b"\n")
    if end == -1:
        if len(data) >= MAX_HEADER or not PREFIX.startswith(data[: len(PREFIX)]):
            raise TransportHeaderError("no opaque transport header")
        return None
    match = _HEADER.match(data[: end + 1])
    if match is None:
        raise TransportHeaderError(f"malformed opaque transport header {data[:end]!r}")
    port = int(match.group(1))
    if not 0 < port < 65536:
        raise TransportHeaderError(f"port {port} out of range")
    return port, data[end + 1 :]
