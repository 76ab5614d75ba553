"""Upstream HTTP/2 connections, shared per target by every client connection of a proxy.

`upstream_pool(runtime)` gives the runtime's `UpstreamPool`; a client connection acquires
the `TargetPool` for its (direction, target, TLS) once, when it is accepted, and hands it
each new stream with `dispatch`. The hot path is a scan of a short list for a connection
with free stream slots (the upstream's MAX_CONCURRENT_STREAMS less its open streams) and a
synchronous HEADERS send; no task and no await.

Only when no connection has room does a stream wait in the bounded `pending` queue while one
new connection is opened (one at a time per target). When it is ready (its SETTINGS have
arrived) the queue is drained onto it; if streams remain, another is opened. A failed
connect fails every waiting stream with its typed error. Connections that stay without
streams for `pool_idle_timeout` are closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from gossamer.proxy.errors import Overloaded, ProxyError, UpstreamClosed, UpstreamProtocolError
from gossamer.proxy.http2.limits import Http2Limits, http2_limits
from gossamer.proxy.http2.upstream import UpstreamConnection
from gossamer.proxy.metrics import TlsLabels
from gossamer.proxy.runtime import ConnectionContext, ProxyRuntime

if TYPE_CHECKING:
    from gossamer.proxy.http2.stream import ProxiedStream

log = logging.getLogger("gossamer.proxy.http2")

PoolKey = tuple[str, tuple[str, int], TlsLabels]


class UpstreamPool:
    def __init__(self, runtime: ProxyRuntime) -> None:
        self.runtime = runtime
        self.limits = http2_limits(runtime.config)
        self._targets: dict[PoolKey, TargetPool] = {}

    def acquire(self, ctx: ConnectionContext) -> TargetPool:
        """The target pool for a client connection's streams; `release_user` when done."""
        return self.acquire_key((ctx.direction, ctx.target, ctx.tls_dst))

    def acquire_key(self, key: PoolKey) -> TargetPool:
        """The target pool for (direction, endpoint, tls): per stream, for routed traffic."""
        targets = self._targets.get(key)
        if targets is None:
            targets = self._targets[key] = TargetPool(self, key)
        targets.users += 1
        return targets

    def forget(self, targets: TargetPool) -> None:
        if self._targets.get(targets.key) is targets:
            del self._targets[targets.key]

    def close_all(self) -> None:
        """Closes every upstream connection (streams on them fail as upstream-closed)."""
        for targets in list(self._targets.values()):
            targets.close()

    def __len__(self) -> int:
        return len(self._targets)


def upstream_pool(runtime: ProxyRuntime) -> UpstreamPool:
    """The runtime's HTTP/2 upstream pool (`runtime.pools["h2"]`), created on first use."""
    pool = runtime.pools.get("h2")
    if not isinstance(pool, UpstreamPool):
        pool = runtime.pools["h2"] = UpstreamPool(runtime)
    return pool


class TargetPool:
    """The upstream connections to one target, and the streams waiting for one."""

    def __init__(self, pool: UpstreamPool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.direction, self.target, self.tls = key
        host, port = self.target
        self.target_addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.runtime = pool.runtime
        self.limits: Http2Limits = pool.limits
        self.idle_timeout = pool.runtime.config.http1.pool_idle_timeout
        self.users = 0
        self.conns: list[UpstreamConnection] = []
        self.pending: deque[ProxiedStream] = deque()
        self._connecting: UpstreamConnection | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._settings_timer: asyncio.TimerHandle | None = None
        self._draining_pending = False

    def withdraw(self, stream: ProxiedStream) -> None:
        """Takes a stream that is still waiting for a connection out of the queue."""
        if self.pending and stream in self.pending:
            self.pending.remove(stream)

    def release_user(self) -> None:
        self.users -= 1
        self._maybe_forget()

    def dispatch(self, stream: ProxiedStream) -> None:
        """Opens `stream` upstream now if a connection has room, else queues it."""
        if not self.pending:
            for conn in self.conns:
                if conn.capacity > 0 and conn.open_stream(stream):
                    return
        if len(self.pending) >= self.limits.max_pending_per_target:
            stream.fail(Overloaded(f"too many requests waiting for {self.target_addr}"))
            return
        self.pending.append(stream)
        if self._connect_task is None and self._connecting is None:
            self._start_connect()
        elif not self._draining_pending:
            self._drain_pending()

    # -- connection events ------------------------------------------------------------------
    def on_ready(self, conn: UpstreamConnection) -> None:
        if conn is self._connecting:
            self._connecting = None
            if self._settings_timer is not None:
                self._settings_timer.cancel()
                self._settings_timer = None
        self.conns.append(conn)
        self._drain_pending()

    def on_capacity(self, conn: UpstreamConnection) -> None:
        if self.pending and not self._draining_pending:
            self._drain_pending()

    def on_unusable(self, conn: UpstreamConnection) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        if self.pending and not self._draining_pending:
            self._drain_pending()
        self._maybe_forget()

    def on_lost(self, conn: UpstreamConnection, error: ProxyError | None) -> None:
        if conn in self.conns:
            self.conns.remove(conn)
        if conn is self._connecting:
            self._connecting = None
            if self._settings_timer is not None:
                self._settings_timer.cancel()
                self._settings_timer = None
            self._fail_pending(
                error or UpstreamClosed(f"{self.target_addr} closed before HTTP/2 SETTINGS")
            )
        self._maybe_forget()

    def close(self) -> None:
        for conn in [*self.conns, *([self._connecting] if self._connecting else [])]:
            if conn.transport is not None:
                conn.transport.abort()

    # -- internals ----------------------------------------------------------------------------
    def _drain_pending(self) -> None:
        pending = self.pending
        self._draining_pending = True
        try:
            while pending:
                stream = pending[0]
                if stream.done:
                    pending.popleft()
                    continue
                conn = next((c for c in self.conns if c.capacity > 0), None)
                if conn is None:
                    if self._connect_task is None and self._connecting is None:
                        self._start_connect()
                    return
                pending.popleft()
                if not conn.open_stream(stream):
                    # The connection turned out full; its capacity is now zero.
                    pending.appendleft(stream)
        finally:
            self._draining_pending = False

    def _start_connect(self) -> None:
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        runtime = self.runtime
        tcp = runtime.metrics.tcp(self.direction, "dst", self.target, self.tls)

        def new_connection() -> UpstreamConnection:
            # Known as connecting from the start: on some loops its SETTINGS, or its
            # loss, arrive before this coroutine resumes.
            conn = self._connecting = UpstreamConnection(self, tcp)
            return conn

        try:
            _, conn = await runtime.connect(
                self.target,
                new_connection,
                direction=self.direction,
                server_identity=self.tls.server_id,
            )
        except ProxyError as error:
            # Not connecting any more before the waiting streams hear of it: a stream that
            # retries on this same target starts a new connection.
            self._connecting = self._connect_task = None
            self._fail_pending(error)
            return
        except Exception as error:  # a bug, not a network failure: still answer the clients
            log.exception("h2 upstream connect failed")
            self._connecting = self._connect_task = None
            self._fail_pending(ProxyError(f"connect to {self.target_addr} failed: {error}"))
            return
        finally:
            if self._connect_task is asyncio.current_task():
                self._connect_task = None
        if conn is not self._connecting:
            # Already ready (on_ready ran) or already lost (on_lost ran). on_ready could
            # not start the next connection while this task still counted as connecting.
            if conn.ready and self.pending and not self._draining_pending:
                self._drain_pending()
            return
        self._settings_timer = asyncio.get_running_loop().call_later(
            self.limits.upstream_settings_timeout, self._settings_timed_out, conn
        )

    def _settings_timed_out(self, conn: UpstreamConnection) -> None:
        self._settings_timer = None
        if conn is not self._connecting:
            return
        self._connecting = None
        self._fail_pending(
            UpstreamProtocolError(f"{self.target_addr} sent no HTTP/2 SETTINGS; is it h2c?")
        )
        if conn.transport is not None:
            conn.transport.abort()

    def _fail_pending(self, error: ProxyError) -> None:
        pending, self.pending = self.pending, deque()
        for stream in pending:
            stream.fail(error)
        self._maybe_forget()

    def _maybe_forget(self) -> None:
        if (
            self.users <= 0
            and not self.conns
            and not self.pending
            and self._connecting is None
            and self._connect_task is None
        ):
            self.pool.forget(self)
