"""Accepting connections: find the original destination, detect the protocol, hand off.

`DetectProtocol` is the first protocol on every accepted transport. It reads up to
`detect_max_bytes` (or until `detect_timeout`), asks `detect.detect` for a verdict, then
installs the handler for that protocol on the same transport with `set_protocol` and replays
the bytes it read. Ports in the opaque list skip detection entirely.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from gossamer.proxy import transport as transport_header
from gossamer.proxy.detect import Protocol, detect
from gossamer.proxy.metrics import INBOUND_PLAINTEXT, OUTBOUND_PLAINTEXT, TlsLabels
from gossamer.proxy.origdst import original_dst
from gossamer.proxy.runtime import INBOUND, OUTBOUND, ConnectionContext, ProxyRuntime
from gossamer.proxy.tls.contexts import peer_identity
from gossamer.proxy.tls.hello import MAX_HELLO, NEED_MORE, client_hello_sni, looks_like_tls
from gossamer.proxy.tls.terminate import terminate

if TYPE_CHECKING:
    # Imported for types only: discovery brings h2 along, which a proxy without a
    # control plane never loads.
    from gossamer.proxy.control.destination import DestinationClient, DestinationWatch
    from gossamer.proxy.control.identity import IdentityManager

log = logging.getLogger("gossamer.proxy.server")

HandlerFactory = Callable[[ProxyRuntime, ConnectionContext], asyncio.Protocol]


class Handlers:
    """The protocol handlers a listener hands connections to, chosen by detection."""

    def __init__(self, http1: HandlerFactory, http2: HandlerFactory, opaque: HandlerFactory):
        self.http1 = http1
        self.http2 = http2
        self.opaque = opaque

    def for_protocol(self, protocol: Protocol) -> HandlerFactory:
        if protocol is Protocol.HTTP1:
            return self.http1
        if protocol is Protocol.HTTP2:
            return self.http2
        return self.opaque


class DetectProtocol(asyncio.Protocol):
    __slots__ = (
        "_buf",
        "_ctx",
        "_direction",
        "_eof",
        "_handlers",
        "_inside_tls",
        "_resolving",
        "_runtime",
        "_timer",
        "_transport",
        "_verdict",
    )

    def __init__(
        self,
        runtime: ProxyRuntime,
        direction: str,
        handlers: Handlers,
        inside_tls: ConnectionContext | None = None,
    ) -> None:
        self._runtime = runtime
        self._direction = direction
        self._handlers = handlers
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Given for the plaintext inside terminated mesh TLS: the connection is known.
        self._inside_tls = inside_tls
        self._ctx: ConnectionContext | None = inside_tls
        # While discovery has not answered, a verdict waits here (with the client's EOF).
        self._resolving = False
        self._verdict: Protocol | None = None
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if self._runtime.draining:
            transport.abort()
            return
        config = self._runtime.config
        if self._inside_tls is not None:
            # The handshake succeeded: the client proved an identity that chains to our
            # trust anchors.
            client_id = peer_identity(transport.get_extra_info("peercert"))
            self._inside_tls.tls_src = TlsLabels(
                tls="true", no_tls_reason=None, client_id=client_id
            )
            self._timer = asyncio.get_running_loop().call_later(
                config.detect_timeout, self._detect_timed_out
            )
            return
        orig = original_dst(transport.get_extra_info("socket"))
        client = transport.get_extra_info("peername")[:2]
        if self._direction == INBOUND and (orig is None or orig[1] == config.inbound_listen.port):
            # Dialled the proxy itself: only opaque transport inside mesh TLS may do that.
            local = transport.get_extra_info("sockname")[:2]
            self._ctx = ConnectionContext(
                INBOUND, client, local, local, INBOUND_PLAINTEXT, INBOUND_PLAINTEXT, direct=True
            )
            self._timer = asyncio.get_running_loop().call_later(
                config.detect_timeout, self._detect_timed_out
            )
            return
        if orig is None:
            log.warning(
                "%s connection from %s:%s was not redirected by iptables; closing",
                self._direction, *client,
            )  # fmt: skip
            transport.abort()
            return
        if self._direction == INBOUND:
            target = (config.inbound_forward_ip, orig[1])
            ctx = ConnectionContext(
                INBOUND, client, orig, target, INBOUND_PLAINTEXT, INBOUND_PLAINTEXT
            )
        else:
            own = config.outbound_listen
            if orig[1] == own.port and orig[0] in (own.host, "127.0.0.1"):
                log.warning("outbound connection to the proxy's own listener; closing")
                transport.abort()
                return
            ctx = ConnectionContext(
                OUTBOUND, client, orig, orig, OUTBOUND_PLAINTEXT, OUTBOUND_PLAINTEXT
            )
        self._ctx = ctx
        discovery = self._runtime.discovery
        if ctx.direction == OUTBOUND and discovery is not None:
            watch = discovery.lookup_now(orig)
            policies = self._runtime.policies
            if watch is not None and (policies is None or policies.lookup_now(orig) is not None):
                self._routed(ctx, watch)
            else:
                self._resolving = True
                asyncio.get_running_loop().create_task(self._resolve(discovery, orig))
        if orig[1] in config.opaque_ports or (ctx.endpoint is not None and ctx.endpoint.opaque):
            self._hand_off(Protocol.OPAQUE)
            return
        self._timer = asyncio.get_running_loop().call_later(
            config.detect_timeout, self._detect_timed_out
        )

    def data_received(self, data: bytes) -> None:
        self._buf += data
        ctx = self._ctx
        if ctx is not None and ctx.direct:
            self._direct(ctx)
            return
        if self._verdict is not None:
            # Detected, waiting for discovery: hold what arrives, but not without bound.
            if len(self._buf) > self._runtime.config.buffers.high and self._transport:
                self._transport.pause_reading()
            return
        identity = self._runtime.identity
        if (
            identity is not None
            and self._direction == INBOUND
            and self._inside_tls is None
            and looks_like_tls(self._buf)
        ):
            self._tls_or_opaque(identity)
            return
        verdict = detect(self._buf, self._runtime.config.detect_max_bytes)
        if verdict is not Protocol.NEED_MORE:
            self._hand_off(verdict)

    def eof_received(self) -> bool:
        # The client closed its side before we could tell: whatever it sent is opaque.
        self._hand_off(Protocol.OPAQUE, eof=True)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _detect_timed_out(self) -> None:
        self._timer = None
        if self._ctx is not None and self._ctx.direct:
            self._close_now()
            return
        log.debug("protocol detection timed out; treating the connection as opaque")
        self._hand_off(Protocol.OPAQUE)

    def _direct(self, ctx: ConnectionContext) -> None:
        """A connection to the proxy's own port: mesh TLS, then an opaque transport header."""
        identity = self._runtime.identity
        if self._inside_tls is None:
            if identity is not None and looks_like_tls(self._buf):
                self._tls_or_opaque(identity)
            else:
                log.info("refused a direct connection from %s:%s: not mesh TLS", *ctx.client)
                self._close_now()
            return
        try:
            decoded = transport_header.decode(self._buf)
        except transport_header.TransportHeaderError as error:
            log.info("refused opaque transport from %s: %s", ctx.tls_src.client_id, error)
            self._close_now()
            return
        if decoded is None:
            return
        port, self._buf = decoded
        ctx.direct = False
        ctx.orig_dst = (ctx.orig_dst[0], port)
        ctx.target = (self._runtime.config.inbound_forward_ip, port)
        self._hand_off(Protocol.OPAQUE)

    def _close_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ctx = None
        if self._transport is not None:
            self._transport.abort()

    def _tls_or_opaque(self, identity: IdentityManager) -> None:
        """Mesh TLS (the client asks for our identity) is terminated; other TLS is the
        application's own and passes through as opaque bytes."""
        sni = client_hello_sni(self._buf)
        if sni == NEED_MORE and len(self._buf) < MAX_HELLO:
            return
        ctx, transport = self._ctx, self._transport
        context = identity.server_context
        if ctx is None or transport is None:
            return
        if sni != identity.name or context is None:
            if sni == identity.name:
                log.warning("mesh TLS from %s:%s before this proxy has a certificate", *ctx.client)
            if ctx.direct:
                self._close_now()
            else:
                self._hand_off(Protocol.OPAQUE)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ctx = None
        buffered, self._buf = self._buf, b""
        inner = DetectProtocol(self._runtime, self._direction, self._handlers, inside_tls=ctx)
        terminate(transport, buffered, context, inner, identity.config.handshake_timeout)

    async def _resolve(self, discovery: DestinationClient, orig: tuple[str, int]) -> None:
        policies = self._runtime.policies
        if policies is not None:
            # Routes first answer alongside endpoints; a request never sees a half answer.
            watch, _ = await asyncio.gather(discovery.resolve(orig), policies.resolve(orig))
        else:
            watch = await discovery.resolve(orig)
        self._resolving = False
        ctx = self._ctx
        if ctx is None:
            return
        if watch is not None:
            self._routed(ctx, watch)
        if ctx.endpoint is not None and ctx.endpoint.opaque:
            self._hand_off(Protocol.OPAQUE, self._eof)
        elif self._verdict is not None:
            self._hand_off(self._verdict, self._eof)

    def _routed(self, ctx: ConnectionContext, watch: DestinationWatch) -> None:
        _route(ctx, watch, self._runtime.identity is not None)
        outbound = self._runtime.outbound
        if outbound is not None and watch.exists:
            ctx.service = outbound.get(ctx.orig_dst)

    def _hand_off(self, protocol: Protocol, eof: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._resolving:
            if self._verdict is None:
                self._verdict = protocol
            self._eof = self._eof or eof
            return
        transport, ctx = self._transport, self._ctx
        if transport is None or ctx is None or transport.is_closing():
            return
        self._ctx = None  # hand off once
        handler = self._handlers.for_protocol(protocol)(self._runtime, ctx)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._verdict is not None:
            transport.resume_reading()
        if self._buf:
            buf, self._buf = self._buf, b""
            handler.data_received(buf)
        if eof and not transport.is_closing() and not handler.eof_received():
            transport.close()


def _route(ctx: ConnectionContext, watch: DestinationWatch, mesh_tls: bool) -> None:
    """Points an outbound connection at an endpoint of the service discovery found, with
    mesh TLS when the endpoint is meshed and this proxy has an identity.

    This round-robin choice names the connection (metric labels, the opaque hint) at accept
    time and starts nothing: HTTP balances each request over `ctx.service`, and an opaque
    connection to a service takes its balancer's choice when its handler starts (tcp.py),
    so no balancer handle waits on a detection that may end in HTTP."""
    picked = watch.pick() if watch.exists else None
    if picked is None:
        return
    ctx.target, ctx.endpoint = picked
    if ctx.endpoint.identity is not None:
        if mesh_tls:
            ctx.tls_dst = TlsLabels(tls="true", no_tls_reason=None, server_id=ctx.endpoint.identity)
        else:
            ctx.tls_dst = TlsLabels(no_tls_reason="no_identity")


async def listen(
    runtime: ProxyRuntime, direction: str, host: str, port: int, handlers: Handlers
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: DetectProtocol(runtime, direction, handlers),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )


__all__ = ["INBOUND", "OUTBOUND", "DetectProtocol", "Handlers", "listen"]
