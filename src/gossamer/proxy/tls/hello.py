"""Reading a TLS ClientHello's server name (SNI). Pure: bytes in, verdict out.

Inbound, the proxy terminates TLS only when the client asks for this proxy's own identity
(mesh TLS); any other TLS is the application's and passes through untouched. A ClientHello
may span several reads, so the answer can be "need more".
"""

from __future__ import annotations

import struct
from typing import Final

NEED_MORE: Final = "need-more"
NOT_TLS: Final = "not-tls"
# Bigger ClientHellos exist (post-quantum key shares) but not from our own proxies.
MAX_HELLO = 16 * 1024


def looks_like_tls(data: bytes) -> bool:
    """A TLS handshake record (content type 22, version 3.x) starts the stream."""
    return len(data) >= 1 and data[0] == 0x16 and (len(data) < 2 or data[1] == 0x03)


def client_hello_sni(data: bytes) -> str | None:
    """The SNI host name, None if the hello has none; NEED_MORE or NOT_TLS otherwise."""
    if len(data) < 5:
        return NEED_MORE if looks_like_tls(data) else NOT_TLS
    if not looks_like_tls(data):
        return NOT_TLS
    record_length = struct.unpack_from("!H", data, 3)[0]
    if record_length > MAX_HELLO:
        return NOT_TLS
    if len(data) < 5 + record_length:
        return NEED_MORE
    try:
        return _parse_hello(data[5 : 5 + record_length])
    except (struct.error, IndexError, UnicodeDecodeError):
        return NOT_TLS


def _parse_hello(body: bytes) -> str | None:
    if body[0] != 1:  # handshake type: client_hello
        raise IndexError
    hello_length = int.from_bytes(body[1:4], "big")
    hello = body[4 : 4 + hello_length]
    if len(hello) < hello_length:
        # A hello split over several records: rare, and never from our proxies.
        raise IndexError
    pos = 2 + 32  # client version, random
    pos += 1 + hello[pos]  # session id
    pos += 2 + struct.unpack_from("!H", hello, pos)[0]  # cipher suites
    pos += 1 + hello[pos]  # compression methods
    if pos == len(hello):
        return None
    end = pos + 2 + struct.unpack_from("!H", hello, pos)[0]
    pos += 2
    while pos + 4 <= end:
        ext_type, ext_length = struct.unpack_from("!HH", hello, pos)
        pos += 4
        if ext_type == 0:  # server_name
            names = hello[pos : pos + ext_length]
            list_end = 2 + struct.unpack_from("!H", names, 0)[0]
            i = 2
            while i + 3 <= list_end:
                name_type, name_length = names[i], struct.unpack_from("!H", names, i + 1)[0]
                if name_type == 0:
                    return names[i + 3 : i + 3 + name_length].decode("ascii")
                i += 3 + name_length
            return None
        pos += ext_length
    return None
