"""What every connection handler shares: config, metrics, the upstream connector, drain.

`ConnectionContext` describes one accepted connection (which side, who, where to); the
`ProxyRuntime` holds the per-process pieces. Handlers register with the runtime while they
live so that shutdown can ask each to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from gossamer.proxy import memory
from gossamer.proxy.config import ProxyConfig
from gossamer.proxy.errors import ConnectRefused, ConnectTimeout, ConnectUnreachable, ProxyError
from gossamer.proxy.metrics import ProxyMetrics, TlsLabels

if TYPE_CHECKING:
    from gossamer.proxy.control.destination import DestinationClient, EndpointMeta
    from gossamer.proxy.control.identity import IdentityManager
    from gossamer.proxy.control.policy import PolicyClient
    from gossamer.proxy.outbound.service import OutboundService, OutboundServices

log = logging.getLogger("gossamer.proxy")

INBOUND = "inbound"
OUTBOUND = "outbound"

P = TypeVar("P", bound=asyncio.BaseProtocol)


@dataclass(slots=True)
class ConnectionContext:
    """One accepted connection: which side of the pod, the peer, and where its traffic goes."""

    direction: str
    client: tuple[str, int]
    orig_dst: tuple[str, int]
    # Where the proxy connects: the original destination (outbound) or the app (inbound).
    target: tuple[str, int]
    # How the accepted connection is secured, and how the one to the target will be.
    tls_src: TlsLabels
    tls_dst: TlsLabels
    # What discovery said of the chosen endpoint (outbound, when the target is meshed).
    endpoint: EndpointMeta | None = None
    # Outbound to a service: per-request routing and balancing (outbound/service.py).
    service: OutboundService | None = None
    # Inbound: the client dialled the proxy's own port (opaque transport, see transport.py);
    # the real target port comes in a header inside mesh TLS.
    direct: bool = False

    @property
    def target_addr(self) -> str:
        host, port = self.target
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Drainable(Protocol):
    """A live connection handler, as shutdown sees it."""

    def drain(self) -> None:
        """Stop taking new requests; close once in-flight ones complete."""

    def abort(self) -> None:
        """Close now (the grace period is over)."""


class ProxyRuntime:
    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or ProxyMetrics()
        self.connections: set[Drainable] = set()
        self.draining = False
        self._idle_waiters: list[asyncio.Future[None]] = []
        # Upstream connection pools by protocol ("http1", "h2"), created by their modules.
        self.pools: dict[str, object] = {}
        # Set when the proxy has a destination service to ask (outbound resolution).
        self.discovery: DestinationClient | None = None
        # The outbound policy service's client, when configured.
        self.policies: PolicyClient | None = None
        # Per-service outbound routing and balancing, with discovery.
        self.outbound: OutboundServices | None = None
        # Set when the proxy has an identity (mesh TLS both ways).
        self.identity: IdentityManager | None = None
        # Connections closed: their freed memory goes back to the system soon (memory.py).
        self._trim_timer: asyncio.TimerHandle | None = None

    # -- connection registry, for graceful shutdown ------------------------------------
    def track(self, conn: Drainable) -> None:
        self.connections.add(conn)
        if self.draining:
            conn.drain()

    def untrack(self, conn: Drainable) -> None:
        self.connections.discard(conn)
        if self._trim_timer is None:
            self._trim_timer = asyncio.get_running_loop().call_later(
                memory.TRIM_INTERVAL, self._release_memory
            )
        if not self.connections:
            for waiter in self._idle_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._idle_waiters.clear()

    def _release_memory(self) -> None:
        self._trim_timer = None
        memory.release_free_memory()

    async def drain(self, grace: float) -> bool:
        """Asks every connection to drain; True if all closed within `grace` seconds."""
        self.draining = True
        for conn in list(self.connections):
            conn.drain()
        if self.connections:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, grace)
        left = list(self.connections)
        for conn in left:
            conn.abort()
        return not left

    # -- upstream connections ----------------------------------------------------------
    async def connect(
        self,
        target: tuple[str, int],
        factory: Callable[[], P],
        *,
        direction: str,
        server_identity: str | None = None,
    ) -> tuple[asyncio.Transport, P]:
        """Opens a connection to `target`, turning failures into typed proxy errors.

        With `server_identity`, the connection is mesh TLS: our certificate goes out, and
        the peer must prove exactly that identity."""
        timeout = (
            self.config.outbound_connect_timeout
            if direction == OUTBOUND
            else self.config.inbound_connect_timeout
        )
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        handshake: float | None = None
        if server_identity is not None:
            identity = self.identity
            if identity is None or identity.client_context is None:
                raise ProxyError(f"no certificate yet for mesh TLS to {server_identity}")
            context = identity.client_context
            handshake = identity.config.handshake_timeout
            timeout += handshake
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    factory,
                    target[0],
                    target[1],
                    ssl=context,
                    server_hostname=server_identity,
                    ssl_handshake_timeout=handshake,
                ),
                timeout,
            )
        except ssl.SSLCertVerificationError as error:
            raise ProxyError(
                f"{_fmt(target)} failed to prove identity {server_identity}: {error.verify_message}"
            ) from None
        except ssl.SSLError as error:
            raise ProxyError(f"TLS handshake with {_fmt(target)} failed: {error.reason}") from None
        except TimeoutError:
            raise ConnectTimeout(
                f"connect to {_fmt(target)} timed out after {timeout:g}s"
            ) from None
        except ConnectionRefusedError:
            raise ConnectRefused(f"connection to {_fmt(target)} refused") from None
        except OSError as error:
            if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
                raise ConnectUnreachable(f"{_fmt(target)} unreachable") from None
            raise ProxyError(f"connect to {_fmt(target)} failed: {error.strerror}") from None
        return transport, protocol


def _fmt(target: tuple[str, int]) -> str:
    return f"{target[0]}:{target[1]}"
