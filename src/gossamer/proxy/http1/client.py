"""Upstream HTTP/1.1 connections and the per-target pool that reuses them.

An `UpstreamConnection` carries one exchange at a time (no upstream pipelining): it feeds
response bytes to httptools and reports each parsing event to the exchange it is lent to.
The pool keeps idle connections per target (LIFO, so the warmest is reused) and closes
those idle longer than the configured timeout with one sweeper task rather than a timer per
request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

import httptools

from gossamer.proxy.metrics import TcpStats
from gossamer.proxy.runtime import ProxyRuntime
from gossamer.proxy.tcp import errno_label

if TYPE_CHECKING:
    from gossamer.proxy.http1.exchange import Exchange

log = logging.getLogger("gossamer.proxy.http1")

# Connections are pooled per (address, identity the peer must prove): a mesh TLS connection
# is never reused for plaintext or for another identity.
Target = tuple[tuple[str, int], str | None]


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_no_body",
        "_reset_parser",
        "exchange",
        "idle_since",
        "parser",
        "pool",
        "reused",
        "stats",
        "target",
        "transport",
    )

    def __init__(self, pool: Http1Pool, target: Target, stats: TcpStats) -> None:
        self.pool = pool
        self.target = target
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.reused = False
        self.idle_since = 0.0
        self._no_body = False
        self._reset_parser = False

    # -- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.pool.high_water)
        self.stats.on_open()

    def data_received(self, data: bytes) -> None:
        self.stats.read_bytes += len(data)
        exchange = self.exchange
        if exchange is None:
            # Bytes on an idle connection: the server broke framing; never reuse it.
            self.close()
            return
        # Responses pass through byte for byte (one write per read, trailers and chunk
        # framing preserved); the parser only finds where each response ends.
        hold = exchange.hold
        if not hold:
            exchange.server.write(data)
            exchange.forwarded = True
        elif hold == 1:
            # Held until the status says whether this attempt is retried (plan.py).
            exchange.held.append(data)
        if self._reset_parser:
            # The body-less response (to HEAD) never completed in the old parser, so no
            # completion is left to skip either.
            self.parser = httptools.HttpResponseParser(self)
            self._reset_parser = False
            self._no_body = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            exchange.response_upgraded()
        except httptools.HttpParserError as error:
            exchange.upstream_protocol_error(str(error))

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.on_close(errno_label(exc))
        self.pool.discard(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.upstream_lost(self, exc)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_paused()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_write_resumed()

    # -- httptools callbacks (only the two that framing needs: fewer callbacks, less cost) --
    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            return  # informational; the final response follows
        no_body = exchange.response_head(status, self.parser.should_keep_alive())
        if no_body:
            # httptools cannot be told a response to HEAD has no body; end it here and
            # start a fresh parser for the next response on this connection.
            self._no_body = True
            self._reset_parser = True
            exchange.response_end()

    def on_message_complete(self) -> None:
        if self._no_body:
            self._no_body = False
            return
        exchange = self.exchange
        if exchange is not None and exchange.response_started and exchange.status != 101:
            exchange.response_end()

    # -- pool use ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.stats.write_bytes += len(data)
        self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        assert self.transport is not None
        self.stats.write_bytes += sum(map(len, chunks))
        self.transport.writelines(chunks)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


class Http1Pool:
    """Idle upstream connections per target, for reuse across client connections."""

    def __init__(self, runtime: ProxyRuntime) -> None:
        self._runtime = runtime
        limits = runtime.config.http1
        self.idle_timeout = limits.pool_idle_timeout
        self.max_idle = limits.pool_max_idle_per_target
        self.high_water = runtime.config.buffers.high
        self._idle: dict[Target, list[UpstreamConnection]] = {}
        # Kept, not looked up per request: asyncio.get_running_loop() costs a getpid()
        # system call on every call (its fork check).
        self._loop = asyncio.get_running_loop()
        self._sweeper: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, runtime: ProxyRuntime) -> Http1Pool:
        pool = runtime.pools.get("http1")
        if pool is None:
            pool = runtime.pools["http1"] = cls(runtime)
        assert isinstance(pool, Http1Pool)
        return pool

    def checkout(self, target: Target) -> UpstreamConnection | None:
        idle = self._idle.get(target)
        while idle:
            conn = idle.pop()
            if conn.usable:
                conn.reused = True
                return conn
        return None

    async def connect(self, target: Target, direction: str, stats: TcpStats) -> UpstreamConnection:
        address, identity = target
        _, conn = await self._runtime.connect(
            address,
            lambda: UpstreamConnection(self, target, stats),
            direction=direction,
            server_identity=identity,
        )
        return conn

    def checkin(self, conn: UpstreamConnection) -> None:
        conn.exchange = None
        if not conn.usable or self._runtime.draining:
            conn.close()
            return
        idle = self._idle.setdefault(conn.target, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        loop = self._loop
        conn.idle_since = loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.target)
        if idle and conn in idle:
            idle.remove(conn)

    def close_all(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _sweep(self) -> None:
        self._sweeper = None
        loop = self._loop
        deadline = loop.time() - self.idle_timeout
        remaining = 0
        for target, idle in list(self._idle.items()):
            keep = [c for c in idle if c.usable and c.idle_since > deadline]
            for conn in idle:
                if conn not in keep:
                    conn.close()
            if keep:
                self._idle[target] = keep
                remaining += len(keep)
            else:
                del self._idle[target]
        if remaining:
            self._sweeper = loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)
