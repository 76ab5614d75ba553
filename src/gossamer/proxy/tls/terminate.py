"""Terminating mesh TLS on a connection whose first bytes were already read for detection.

`loop.start_tls` cannot be given bytes that were already read, and detection must read the
ClientHello to see its server name. So the TLS protocol object is built directly (uvloop's
own on uvloop, asyncio's otherwise), put on the transport, and fed the buffered bytes; it
then runs the handshake and hands the plaintext stream to `app_protocol`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any


def _tls_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    try:
        import uvloop

        if isinstance(loop, uvloop.Loop):
            from uvloop.loop import SSLProtocol as UvSSLProtocol  # type: ignore[attr-defined]

            return UvSSLProtocol
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    from asyncio.sslproto import SSLProtocol

    return SSLProtocol


def terminate(
    transport: asyncio.Transport,
    buffered: bytes,
    context: ssl.SSLContext,
    app_protocol: asyncio.Protocol,
    handshake_timeout: float,
) -> None:
    """Moves `transport` under a server-side TLS layer whose plaintext goes to
    `app_protocol` (its `connection_made` runs once the handshake has succeeded)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    # The handshake's outcome reaches app_protocol (connection_made, or the transport
    # closing); the waiter only must not log "exception never retrieved".
    waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
    tls = _tls_protocol_class(loop)(
        loop,
        app_protocol,
        context,
        waiter,
        server_side=True,
        ssl_handshake_timeout=handshake_timeout,
    )
    transport.set_protocol(tls)
    tls.connection_made(transport)
    view = memoryview(buffered)
    while view:
        buffer = tls.get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        tls.buffer_updated(n)
        view = view[n:]
