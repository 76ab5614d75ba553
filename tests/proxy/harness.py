"""Loopback harness: a proxy handler served on an ephemeral port with a fixed target.

Handlers are installed straight on a listener with a hand-made `ConnectionContext`, so
protocol behaviour is tested over real sockets without iptables; the namespace tests
cover the redirect path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.metrics import INBOUND_PLAINTEXT, OUTBOUND_PLAINTEXT
from gossamer.proxy.runtime import OUTBOUND, ConnectionContext, ProxyRuntime

HandlerFactory = Callable[[ProxyRuntime, ConnectionContext], asyncio.Protocol]


@dataclass
class Served:
    runtime: ProxyRuntime
    server: asyncio.Server
    port: int

    async def close(self) -> None:
        self.server.close()
        for pool in self.runtime.pools.values():
            getattr(pool, "close_all", lambda: None)()


async def serve_handler(
    factory: HandlerFactory,
    target: tuple[str, int],
    config: ProxyConfig | None = None,
    direction: str = OUTBOUND,
    runtime: ProxyRuntime | None = None,
) -> Served:
    runtime = runtime or ProxyRuntime(config or ProxyConfig())
    loop = asyncio.get_running_loop()

    def make() -> asyncio.Protocol:
        return _Deferred(factory, runtime, target, direction)

    server = await loop.create_server(make, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return Served(runtime, server, port)


class _Deferred(asyncio.Protocol):
    """Builds the handler at connection time, when the client address is known."""

    def __init__(
        self,
        factory: HandlerFactory,
        runtime: ProxyRuntime,
        target: tuple[str, int],
        direction: str,
    ) -> None:
        self._factory = factory
        self._runtime = runtime
        self._target = target
        self._direction = direction

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        client = transport.get_extra_info("peername")[:2]
        tls = OUTBOUND_PLAINTEXT if self._direction == OUTBOUND else INBOUND_PLAINTEXT
        ctx = ConnectionContext(self._direction, client, self._target, self._target, tls, tls)
        handler = self._factory(self._runtime, ctx)
        transport.set_protocol(handler)
        handler.connection_made(transport)
