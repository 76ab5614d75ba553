"""The client-facing side of the HTTP/2 proxy: `Http2ServerProtocol`.

Installed on an accepted transport once detection has seen the h2 prior-knowledge preface.
It is the server side of an HTTP/2 connection (connection.py) toward the client; each
request becomes a `ProxiedStream` dispatched to the target's shared upstream connections
(see stream.py for how the two sides are joined, flow.py for flow control, pool.py for
connection sharing).

Bounds: the client may open `max_concurrent_streams` streams (advertised, and enforced here
as a stream error, REFUSED_STREAM, even before the client has acknowledged the setting),
header lists are capped by SETTINGS_MAX_HEADER_LIST_SIZE, and each stream buffers at most
the window advertised to the client. When the socket toward the client backs up past the
high-water mark, the proxy stops reading from it too and holds response bytes
unacknowledged until it drains.

A protocol error from the client (bad frames, a broken preface, HPACK errors) ends only
this connection: the proxy sends GOAWAY with the error code and closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from gossamer.proxy.errors import NoRoute, ProxyError
from gossamer.proxy.http2.connection import H2ConnectionError
from gossamer.proxy.http2.endpoint import H2Endpoint, errno_label
from gossamer.proxy.http2.frames import ErrorCodes
from gossamer.proxy.http2.headers import Header, MalformedHeaders, RequestHead, sanitize_request
from gossamer.proxy.http2.limits import http2_limits
from gossamer.proxy.http2.pool import PoolKey, TargetPool, upstream_pool
from gossamer.proxy.http2.routed import RoutedStream
from gossamer.proxy.http2.stream import ProxiedStream
from gossamer.proxy.metrics import HttpStats, TlsLabels
from gossamer.proxy.runtime import OUTBOUND, ConnectionContext, ProxyRuntime

if TYPE_CHECKING:
    from gossamer.proxy.outbound.service import OutboundService

log = logging.getLogger("gossamer.proxy.http2")


class Http2ServerProtocol(H2Endpoint):
    """Proxies one client's HTTP/2 connection to `ctx.target`."""

    def __init__(self, runtime: ProxyRuntime, ctx: ConnectionContext) -> None:
        limits = http2_limits(runtime.config)
        super().__init__(
            client_side=False,
            initial_window=limits.initial_stream_window,
            max_header_list_size=limits.max_header_list_size,
            max_concurrent_streams=limits.max_concurrent_streams,
        )
        self.runtime = runtime
        self.ctx = ctx
        self.limits = limits
        self.tls = ctx.tls_dst if ctx.direction == OUTBOUND else ctx.tls_src
        self.tcp = runtime.metrics.tcp(ctx.direction, "src", ctx.target, self.tls)
        self.streams: dict[int, ProxiedStream] = {}
        self.pool = upstream_pool(runtime)
        self.targets = self.pool.acquire(ctx)
        # Outbound to a service: the endpoints' pools (held until the connection ends) and
        # request stats, by (authority, endpoint, server identity).
        self._endpoints: dict[
            tuple[bytes, tuple[str, int], str | None, str | None], tuple[TargetPool, HttpStats]
        ] = {}
        self._endpoint_pools: dict[PoolKey, TargetPool] = {}
        self.draining = False
        self._goaway_sid: int | None = None  # streams above it are refused once draining
        self._peer_goaway = False
        self._broken = False
        self._stats: dict[bytes, HttpStats] = {}

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        buffers = self.runtime.config.buffers
        transport.set_write_buffer_limits(buffers.high, buffers.low)
        self.tcp.on_open()
        self.initiate(self.limits.initial_connection_window)
        self.flush()
        # After our SETTINGS are out: a runtime already draining calls drain() right away,
        # and its GOAWAY must not precede the server preface.
        self.runtime.track(self)

    def data_received(self, data: bytes) -> None:
        self.tcp.read_bytes += len(data)
        if self._broken:
            return
        try:
            self.receive(data)
            if self.window_opened:
                self.unblock()
        except H2ConnectionError as error:
            log.debug("client %s:%s broke HTTP/2: %s", *self.ctx.client, error)
            self._fail_connection(error.code)
            return
        except Exception:
            log.exception("h2 client connection failed while handling frames")
            self._fail_connection(ErrorCodes.INTERNAL_ERROR)
            return
        self.flush()

    def _fail_connection(self, code: int) -> None:
        self._broken = True
        self.send_goaway(self.highest_inbound_stream_id, code)
        self._close_now()

    def eof_received(self) -> bool | None:
        return None  # the client is gone: close, and reset what it had in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._broken = True
        self.blocked.clear()
        self.states.clear()
        self.out.clear()
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.on_client_lost()
        self.targets.release_user()
        pools, self._endpoint_pools = self._endpoint_pools, {}
        for targets in pools.values():
            targets.release_user()
        self.runtime.untrack(self)
        self.tcp.on_close(errno_label(exc))

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.unblock()

    def endpoint(
        self, authority: bytes, addr: tuple[str, int], tls: TlsLabels
    ) -> tuple[TargetPool, HttpStats]:
        """The pool and the request stats for a routed request to the endpoint `addr`."""
        # Keyed by plain values: hashing the TlsLabels dataclass costs a Python call.
        key = (authority, addr, tls.server_id, tls.no_tls_reason)
        found = self._endpoints.get(key)
        if found is None:
            pool_key = (self.ctx.direction, addr, tls)
            targets = self._endpoint_pools.get(pool_key)
            if targets is None:
                targets = self._endpoint_pools[pool_key] = self.pool.acquire_key(pool_key)
            stats = self.runtime.metrics.http(
                self.ctx.direction, authority.decode("latin-1"), addr, tls
            )
            found = self._endpoints[key] = (targets, stats)
        return found

    # -- shutdown ----------------------------------------------------------------------------
    def drain(self) -> None:
        """GOAWAY now, so the client opens no more streams; close when in-flight ones end."""
        if self.draining or self.transport is None:
            return
        self.draining = True
        self._goaway_sid = self.highest_inbound_stream_id
        self.send_goaway(self._goaway_sid)
        self.flush()
        if not self.streams:
            self._close_now()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def stream_closed(self, d_sid: int) -> None:
        self.streams.pop(d_sid, None)
        if d_sid in self.states:  # never left open behind the proxy's back
            self.reset_stream(d_sid, ErrorCodes.CANCEL)
            self.schedule_flush()
        if not self.streams and (self.draining or self._peer_goaway):
            self._close_now()

    def _close_now(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()

    # -- connection hooks ---------------------------------------------------------------
    def on_request(self, sid: int, headers: list[Header], end_stream: bool) -> None:
        if (self._goaway_sid is not None and sid > self._goaway_sid) or (
            len(self.streams) >= self.limits.max_concurrent_streams
        ):
            # Unprocessed, so the client may safely retry it elsewhere.
            self.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        try:
            head = sanitize_request(headers)
        except MalformedHeaders as error:
            log.debug("malformed request on stream %d: %s", sid, error)
            self.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        stats = self._stats.get(head.authority)
        if stats is None:
            ctx = self.ctx
            authority = head.authority.decode("latin-1")
            stats = self.runtime.metrics.http(ctx.direction, authority, ctx.target, self.tls)
            self._stats[head.authority] = stats
        service = self.ctx.service
        failure: ProxyError | None = None
        if service is not None:
            stream, failure = self._routed_stream(service, sid, head, headers, stats)
        else:
            stats.requests += 1
            stream = ProxiedStream(self, sid, head, stats, self._loop.time(), self.targets)
        self.streams[sid] = stream
        if end_stream:
            # Lets the upstream HEADERS carry END_STREAM instead of an empty DATA frame.
            stream.request.ended = True
        if failure is not None:
            stream.fail(failure)
            return
        stream.start()

    def _routed_stream(
        self,
        service: OutboundService,
        sid: int,
        head: RequestHead,
        headers: list[Header],
        stats: HttpStats,
    ) -> tuple[ProxiedStream, ProxyError | None]:
        """Outbound to a service: the route and weighted backend this request selects; the
        stream picks endpoints, retries and times out per its plan (routed.py)."""
        now = self._loop.time()
        try:
            plan = service.plan(
                head.method,
                head.path,
                head.headers,
                head.authority,
                self.runtime.metrics,
                now,
            )
        except NoRoute as failure:
            stats.requests += 1
            return ProxiedStream(self, sid, head, stats, now, self.targets), failure
        modifiers = plan.route.request_modifiers
        if not modifiers.noop:
            head = head._replace(headers=modifiers.apply_h2(head.headers))
        return RoutedStream(self, sid, head, stats, now, plan), None

    def on_data(self, sid: int, data: bytes, flow_len: int, end_stream: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.request.receive(data, flow_len, end_stream)
        elif flow_len:
            self.ack_data(sid, flow_len)

    def on_trailers(self, sid: int, headers: list[Header]) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_request_trailers(headers)

    def on_reset(self, sid: int, code: int) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            stream.on_client_reset(code)

    def on_goaway(self, last_stream_id: int, code: int) -> None:
        # The client opens no more streams; let those in flight finish, then close.
        self._peer_goaway = True
        if not self.streams:
            self._close_now()
