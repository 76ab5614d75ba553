"""HTTP/1 header handling for a proxy. Pure: header lists in, bytes out.

Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are dropped when a
message is forwarded, together with every header the `Connection` header names. The proxy
frames bodies itself (content-length passes through; chunked is re-chunked), so
`transfer-encoding` is regenerated rather than copied.
"""

from __future__ import annotations

from collections.abc import Iterable

Header = tuple[bytes, bytes]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def connection_tokens(headers: Iterable[Header]) -> frozenset[bytes]:
    """The lower-cased option names listed in every `Connection` header."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def forwardable(headers: list[Header], keep_upgrade: bool = False) -> list[Header]:
    """Headers minus hop-by-hop ones; with `keep_upgrade`, `Upgrade`/`Connection: upgrade` stay.

    The common case (no hop-by-hop header at all) returns the list unchanged, uncopied.
    """
    for name, _ in headers:
        if name.lower() in HOP_BY_HOP:
            break
    else:
        return headers
    named = connection_tokens(headers)
    out: list[Header] = []
    for name, value in headers:
        lower = name.lower()
        if lower in HOP_BY_HOP or lower in named:
            if keep_upgrade and lower == b"upgrade":
                out.append((name, value))
            continue
        out.append((name, value))
    if keep_upgrade:
        out.append((b"Connection", b"upgrade"))
    return out


def request_head(
    method: bytes,
    target: bytes,
    headers: list[Header],
    extra: Iterable[Header] = (),
    version: bytes = b"1.1",
) -> bytes:
    """Serializes a request head. The client's HTTP version is kept, so the upstream's
    response suits the client and can pass through unchanged."""
    parts = [method, b" ", target, b" HTTP/", version, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    for name, value in extra:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def header_value(headers: list[Header], wanted: bytes) -> bytes | None:
    """The first value of header `wanted` (lower-case name)."""
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None
