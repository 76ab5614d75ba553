"""Opaque TCP forwarding, and the byte pipe that HTTP/1 upgrades (WebSocket) reuse.

`Pipe` joins two transports: what one side reads the other writes, with backpressure (a
side whose write buffer passes the high-water mark pauses reading on the other side) and
half-close (EOF from one side becomes `write_eof` on the other; the pipe closes when both
directions have ended). A failure on one side resets the other.

An outbound connection to a service goes to the endpoint its balancer chooses (P2C over
peak-EWMA, balance/p2c.py), not to the one discovery's round robin named at accept time:
the connect's latency and outcome feed the balancer, and the open connection stays in the
endpoint's load until it closes. A connect that fails, before any byte has been relayed,
is tried once more on another endpoint when the balancer has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Hashable
from typing import TYPE_CHECKING, cast

from gossamer.proxy import transport as transport_header
from gossamer.proxy.errors import ProxyError
from gossamer.proxy.metrics import TcpStats
from gossamer.proxy.runtime import INBOUND, ConnectionContext, ProxyRuntime

if TYPE_CHECKING:
    from gossamer.proxy.balance import ConnectionLoad, EndpointHandle
    from gossamer.proxy.outbound.service import OutboundService

log = logging.getLogger("gossamer.proxy.tcp")

_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport) -> None:
    """Closes with a TCP RST (linger 0), so the peer sees a reset rather than a clean end."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class PipeEnd(asyncio.Protocol):
    """One side of a pipe; forwards what it reads to its peer's transport."""

    __slots__ = ("_eof", "_pipe", "peer", "stats", "transport")

    def __init__(self, pipe: Pipe, stats: TcpStats) -> None:
        self._pipe = pipe
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.peer: PipeEnd | None = None
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.stats.read_bytes += len(data)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.stats.write_bytes += len(data)
            peer.transport.write(data)

    def eof_received(self) -> bool:
        self._eof = True
        peer = self.peer
        if (
            peer is not None
            and peer.transport is not None
            and not peer.transport.is_closing()
            and peer.transport.can_write_eof()
        ):
            peer.transport.write_eof()
        if peer is not None and peer._eof:
            self._pipe.close()
            return False
        return True  # keep our write side open: the other direction may still be flowing

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class Pipe:
    """Two `PipeEnd`s joined; closes both once either is gone."""

    __slots__ = ("_closed", "a", "b", "error", "lost", "on_close")

    def __init__(self, a_stats: TcpStats, b_stats: TcpStats) -> None:
        self.a = PipeEnd(self, a_stats)
        self.b = PipeEnd(self, b_stats)
        self.a.peer, self.b.peer = self.b, self.a
        self._closed = False
        # The side that went first, and why: its close is labelled with the error; the
        # other side was closed (or reset) by the proxy.
        self.lost: PipeEnd | None = None
        self.error: Exception | None = None
        self.on_close: list[object] = []

    def attach(
        self,
        a: asyncio.Transport,
        b: asyncio.Transport,
        a_pending: bytes = b"",
        b_pending: bytes = b"",
        high_water: int = 256 * 1024,
    ) -> None:
        """Moves two live transports onto the pipe, replaying bytes each side already sent."""
        for end, transport in ((self.a, a), (self.b, b)):
            transport.set_write_buffer_limits(high=high_water)
            transport.set_protocol(end)
            end.connection_made(transport)
        if a_pending:
            self.a.data_received(a_pending)
        if b_pending:
            self.b.data_received(b_pending)
        a.resume_reading()
        b.resume_reading()

    def side_lost(self, end: PipeEnd, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self.lost, self.error = end, exc
        other = end.peer
        if other is not None and other.transport is not None and not other.transport.is_closing():
            if exc is not None:
                reset(other.transport)
            else:
                other.transport.close()
        for callback in self.on_close:
            callback()  # type: ignore[operator]

    def errno_for(self, end: PipeEnd) -> str:
        """The `errno` label for `end`'s close."""
        return errno_label(self.error) if end is self.lost else ""

    def close(self) -> None:
        for end in (self.a, self.b):
            if end.transport is not None and not end.transport.is_closing():
                end.transport.close()

    def abort(self) -> None:
        for end in (self.a, self.b):
            if end.transport is not None:
                reset(end.transport)


class _Connecting(asyncio.Protocol):
    """Placeholder protocol for the upstream socket until the pipe takes it over."""

    def __init__(self) -> None:
        self.buffered = b""
        self.eof = False
        self.lost = False

    def data_received(self, data: bytes) -> None:
        self.buffered += data

    def eof_received(self) -> bool:
        # A half-close that comes before the pipe does is still a half-close, not a close.
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class TcpForwardProtocol(asyncio.Protocol):
    """An accepted connection forwarded as opaque bytes to `ctx.target` (outbound to a
    service: to the endpoint its balancer chooses)."""

    _src: TcpStats  # from connection_made, once the endpoint is chosen
    _dst: TcpStats  # once connected

    def __init__(self, runtime: ProxyRuntime, ctx: ConnectionContext) -> None:
        self._runtime = runtime
        self._ctx = ctx
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._client_eof = False
        self._pipe: Pipe | None = None
        self._task: asyncio.Task[None] | None = None
        # The balancer's endpoint while connecting to it, then the open connection's load.
        self._handle: EndpointHandle | None = None
        self._load: ConnectionLoad | None = None

    # -- while connecting upstream, this protocol holds the client side --------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        ctx = self._ctx
        if ctx.service is not None:
            # With no endpoint available, the target discovery named at accept time stands.
            self._choose(ctx.service)
        self._src = self._runtime.metrics.tcp(ctx.direction, "src", ctx.target, ctx.tls_src)
        self._src.on_open()
        self._runtime.track(self)
        self._task = asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self._runtime.config.buffers.high and self._transport:
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._client_eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pipe is None:
            # Client left before the upstream connection was made.
            self._closed(exc)
            if self._task is not None:
                self._task.cancel()

    async def _connect(self) -> None:
        assert self._transport is not None
        client = self._transport
        connected = await self._connect_upstream(client)
        if connected is None:
            return
        upstream, placeholder, header = connected
        if client.is_closing():
            upstream.close()
            self._release()
            return
        ctx = self._ctx
        tls = ctx.tls_src if ctx.direction == INBOUND else ctx.tls_dst
        self._dst = self._runtime.metrics.tcp(ctx.direction, "dst", ctx.target, tls)
        self._dst.on_open()
        pipe = self._pipe = Pipe(self._src, self._dst)
        pipe.on_close.append(self._on_pipe_closed)
        if header:
            upstream.write(header)
        pending = b"".join(self._pending)
        self._pending.clear()
        pipe.attach(
            client, upstream, pending, placeholder.buffered, self._runtime.config.buffers.high
        )
        if self._client_eof:
            pipe.a.eof_received()
        if placeholder.eof:
            pipe.b.eof_received()
        if placeholder.lost:
            pipe.side_lost(pipe.b, None)

    async def _connect_upstream(
        self, client: asyncio.Transport
    ) -> tuple[asyncio.Transport, _Connecting, bytes] | None:
        """The upstream connection, and the header to send on it first; None when it
        failed (and the client was reset). A service's connection that fails to connect is
        tried once more on another endpoint."""
        ctx = self._ctx
        loop = asyncio.get_running_loop()
        retried = False
        while True:
            target, header = ctx.target, b""
            if ctx.tls_dst.server_id is not None:
                # Opaque bytes over mesh TLS go to the peer proxy's own port, with a header
                # naming the application's port (see transport.py).
                header = transport_header.encode(target[1])
                target = (target[0], self._runtime.config.inbound_listen.port)
            started = loop.time()
            try:
                upstream, placeholder = await self._runtime.connect(
                    target,
                    _Connecting,
                    direction=ctx.direction,
                    server_identity=ctx.tls_dst.server_id,
                )
            except ProxyError as error:
                # A failed connect costs the balancer as much as one that timed out: an
                # endpoint that refuses every connection holds none open, and would otherwise
                # look like the least loaded of all.
                now = loop.time()
                rtt = max(now - started, self._runtime.config.outbound_connect_timeout)
                failed = self._connect_ended(False, rtt, now)
                if (
                    failed is not None
                    and not retried
                    and ctx.service is not None
                    and not client.is_closing()
                    and self._choose(ctx.service, avoid=failed)
                ):
                    log.info("tcp %s: %s; trying %s", ctx.direction, error.detail, ctx.target_addr)
                    retried = True
                    continue
                log.info("tcp %s: %s", ctx.direction, error.detail)
                if not client.is_closing():
                    reset(client)
                return None
            now = loop.time()
            self._connect_ended(True, now - started, now)
            return upstream, placeholder, header

    # -- the balancer's endpoint (outbound to a service) ----------------------------
    def _choose(self, service: OutboundService, avoid: Hashable | None = None) -> bool:
        """Points the connection at the endpoint the service's balancer chooses (another
        than `avoid`, whose connect failed) and starts it; False when it has none."""
        now = asyncio.get_running_loop().time()
        backend = service.default_backend()
        if avoid is None:
            service.routes()  # brings the policy's failure accrual to the balancer
            picked = backend.pick(now)
            if picked is None:
                return False
            handle, meta = picked
            handle.start()
        else:
            # Not `backend.pick(now, avoid)`: its fresh draw may pair two bad endpoints
            # again and hand over the one that has not failed yet. The balancer is as up
            # to date with discovery as the first pick left it, a connect timeout ago.
            other = backend.balancer.pick_other(now, avoid)
            if other is None:
                return False
            handle = other
            handle.start()
            found = backend.watch.endpoints.get(cast(tuple[str, int], handle.addr))
            if found is None:  # gone from discovery since
                handle.cancel()
                return False
            meta = found
        ctx = self._ctx
        ctx.target = cast(tuple[str, int], handle.addr)
        ctx.endpoint = meta
        ctx.tls_dst = service.tls_for(meta)
        self._handle = handle
        return True

    def _connect_ended(self, success: bool, rtt: float, now: float) -> Hashable | None:
        """Reports the connect to the balancer; connected, the connection holds its
        endpoint's load until it closes. Returns the endpoint (None: not balanced)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return None
        if success:
            self._load = handle.hold()  # before finish, so the count never dips
        handle.finish(success, rtt, now)
        return handle.addr

    def _release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()  # the client left while connecting: no outcome to report
        if self._load is not None:
            self._load.release()

    def _on_pipe_closed(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        self._dst.on_close(pipe.errno_for(pipe.b))
        self._src.on_close(pipe.errno_for(pipe.a))
        self._release()
        self._runtime.untrack(self)

    def _closed(self, exc: Exception | None) -> None:
        self._src.on_close(errno_label(exc))
        self._release()
        self._runtime.untrack(self)

    # -- shutdown --------------------------------------------------------------------
    def drain(self) -> None:
        # Opaque streams have no request boundary: they run until the grace period ends.
        pass

    def abort(self) -> None:
        if self._pipe is not None:
            self._pipe.abort()
        elif self._transport is not None:
            reset(self._transport)


def errno_label(exc: BaseException | None) -> str:
    """Linkerd's `errno` label for a closed connection (`ECONNRESET`); empty when clean."""
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, str(code)) if isinstance(code, int) else ""
