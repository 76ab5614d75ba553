"""The client side of HTTP/1 proxying: parse requests, run exchanges in order.

Requests are parsed with httptools as bytes arrive. Each request head becomes an
`Exchange`; one exchange at a time owns the client's write side (HTTP/1 responses must come
back in request order), so a pipelined request waits, buffered and bounded, until the one
before it has been answered. Reading from the client pauses for several independent reasons
(upstream write buffer full, too much buffered for a waiting request, our own write buffer
full); it resumes only when none of them holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from gossamer.proxy.errors import ProxyError, simple_response_h1
from gossamer.proxy.http1.client import Http1Pool, Target, UpstreamConnection
from gossamer.proxy.http1.exchange import Exchange
from gossamer.proxy.http1.headers import HOP_BY_HOP, connection_tokens, request_head
from gossamer.proxy.metrics import HttpStats, TlsLabels
from gossamer.proxy.outbound.plan import RequestPlan
from gossamer.proxy.runtime import INBOUND, ConnectionContext, ProxyRuntime
from gossamer.proxy.tcp import errno_label, reset

if TYPE_CHECKING:
    # Types only: the outbound service brings the control-plane clients (and h2) along.
    from gossamer.proxy.outbound.service import OutboundService

log = logging.getLogger("gossamer.proxy.http1")


# After a last response, how long and how much the proxy keeps reading (and dropping) what
# the client still sends before it closes; see `_Linger`. Generous in bytes: dropping holds
# no memory, and clients that send a whole body before reading (http.client) must get to
# read the response.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024 * 1024


class _HeadTooLarge(Exception):
    pass


class Http1ServerProtocol(asyncio.Protocol):
    def __init__(self, runtime: ProxyRuntime, ctx: ConnectionContext) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        config = runtime.config
        self.high_water = config.buffers.high
        self._max_head = config.http1.max_header_bytes
        self._header_timeout = config.http1.header_read_timeout
        # What a failed connect costs in the balancer's latency estimate (p2c.py).
        self.connect_timeout = config.outbound_connect_timeout
        self.pool = Http1Pool.of(runtime)
        self.pool_key = (ctx.target, ctx.tls_dst.server_id)
        self._tls = ctx.tls_src if ctx.direction == INBOUND else ctx.tls_dst
        self.src_stats = runtime.metrics.tcp(ctx.direction, "src", ctx.target, ctx.tls_src)
        self.dst_stats = runtime.metrics.tcp(ctx.direction, "dst", ctx.target, ctx.tls_dst)
        self._stats: dict[bytes, HttpStats] = {}
        self._endpoint_stats: dict[tuple[bytes, tuple[str, int], str | None], HttpStats] = {}
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.active: Exchange | None = None
        # The upstream connection the last exchange used: the next request of this client
        # takes it straight back (no pool round trip); it returns to the pool when the
        # client connection ends. A balanced request may go to another endpoint than the
        # last: the connection to the endpoint before stays too (`_spare2`), so requests
        # alternating between two endpoints keep their connections.
        self._spare: UpstreamConnection | None = None
        self._spare2: UpstreamConnection | None = None
        self._reading: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._head_read = 0
        self._in_head = False
        self._timer: asyncio.TimerHandle | None = None
        self._paused: set[str] = set()
        self._tunnel_bytes: list[bytes] | None = None
        self.tunnelled = False
        self.draining = False
        self.closed = False
        self.write_paused = False
        self.client_eof = False

    # -- asyncio -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, so no isinstance check.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.high_water)
        self.src_stats.on_open()
        self.runtime.track(self)

    def data_received(self, data: bytes) -> None:
        self.src_stats.read_bytes += len(data)
        if self._tunnel_bytes is not None:
            # After an Upgrade request, bytes belong to the tunnel-to-be, not to HTTP.
            self._tunnel_bytes.append(data)
            if sum(map(len, self._tunnel_bytes)) > self.high_water:
                self.pause_reading_for("tunnel")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._tunnel_bytes = [data[upgrade.args[0] :]]
        except _HeadTooLarge:
            self._reject(431, "request header block exceeds the proxy's limit")
            return
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _HeadTooLarge):
                self._reject(431, "request header block exceeds the proxy's limit")
            else:
                log.exception("http1 callback failed")
                self._reject(500, "proxy failed to handle the request")
            return
        except httptools.HttpParserError as error:
            self._reject(400, f"malformed HTTP/1 request: {error}")
            return
        if self._in_head:
            if self._timer is None:
                # A head begins and spans reads. Count its raw bytes from the next read on
                # (this one may hold a previous message too): httptools holds an unfinished
                # header line whole before any callback sees it, so the callbacks alone
                # cannot keep the limit.
                self._head_read = 0
                self._timer = self.loop.call_later(self._header_timeout, self._header_timed_out)
            else:
                # The same head is still unfinished, so all of this read belongs to it.
                self._head_read += len(data)
                if self._head_read > self._max_head:
                    self._reject(431, "request header block exceeds the proxy's limit")

    def eof_received(self) -> bool:
        self.client_eof = True
        # A half-closed client may still be waiting for its responses (and the connection
        # closes once they are written); a request cut short can never complete.
        return not (
            (self.active is None and not self._queue) or self._reading is not None or self._in_head
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.tunnelled:
            return  # the pipe owns both transports now
        self._closed(exc)
        for exchange in (self.active, *self._queue):
            if exchange is not None and exchange.upstream is not None:
                exchange.upstream.exchange = None
                exchange.upstream.close()
        self.active = None
        self._queue.clear()

    def pause_writing(self) -> None:
        # Remembered, not just passed on: an exchange that starts (or returns its upstream
        # to the pool) while the client lags must pause (or resume) its upstream itself.
        self.write_paused = True
        if self.active is not None:
            self.active.pause_response()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None:
            self.active.resume_response()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_head:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        parser = self.parser
        method = parser.get_method()
        upgrade = parser.should_upgrade()
        host = None
        chunked = False
        hop = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"host":
                host = value
            elif lower in HOP_BY_HOP:
                hop = True
                if lower == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
        headers = self._headers
        if hop:
            named = connection_tokens(headers)
            headers = [
                (n, v)
                for n, v in headers
                if ((lo := n.lower()) not in HOP_BY_HOP and lo not in named)
                or (upgrade and lo == b"upgrade")
            ]
            if upgrade:
                headers.append((b"Connection", b"upgrade"))
        url = self._url
        if host is None:
            host = self._authority_from(url)
            headers.append((b"Host", host))
        extra = ((b"Transfer-Encoding", b"chunked"),) if chunked else ()
        stats = self._stats.get(host)
        if stats is None:
            stats = self._stats[host] = self.runtime.metrics.http(
                self.ctx.direction, host.decode("latin-1"), self.ctx.target, self._tls
            )
        plan: RequestPlan | None = None
        failure: ProxyError | None = None
        service = self.ctx.service
        if service is None:
            stats.requests += 1
        else:
            # Counted per attempt once an endpoint is chosen (exchange._use_endpoint).
            try:
                plan, headers = self._plan(service, method, url, headers, host)
            except ProxyError as error:
                stats.requests += 1
                failure = error
        version = parser.get_http_version()
        exchange = Exchange(
            self,
            request_head(method, url, headers, extra, b"1.0" if version == "1.0" else b"1.1"),
            is_head=method == b"HEAD",
            request_chunked=chunked,
            keep_alive=parser.should_keep_alive() and not self.draining,
            http11=version != "1.0",
            upgrade=upgrade,
            stats=stats,
            start=self.loop.time(),
            plan=plan,
        )
        self._reading = exchange
        if failure is not None:
            if self.active is None:
                self.active = exchange
                exchange.fail(failure)
            else:
                self._queue.append(exchange)
            return
        if self.active is None:
            self.active = exchange
            exchange.begin(self.pool)
        else:
            self._queue.append(exchange)
            self.pause_reading_for("pipeline")

    def _plan(
        self,
        service: OutboundService,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        authority: bytes,
    ) -> tuple[RequestPlan, list[tuple[bytes, bytes]]]:
        """Routes a request to a service: route, backend, retries, timeouts."""
        plan = service.plan(method, url, headers, authority, self.runtime.metrics, self.loop.time())
        return plan, plan.route.request_modifiers.apply(headers)

    def on_body(self, body: bytes) -> None:
        if self._reading is not None:
            self._reading.send_body(body)

    def on_message_complete(self) -> None:
        exchange, self._reading = self._reading, None
        if exchange is not None:
            exchange.end_request()

    # -- called by exchanges ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            self.src_stats.write_bytes += len(data)
            transport.write(data)

    def exchange_done(self, exchange: Exchange) -> None:
        if exchange is not self.active:
            return
        self.active = None
        if (
            not exchange.client_keep_alive
            or self.draining
            or exchange.upgrade
            or (self.client_eof and not self._queue)
        ):
            if exchange.request_done:
                self._close()
            else:
                self._close_lingering()  # the rest of the body is still on its way
            return
        if self._queue:
            self.active = self._queue.popleft()
            self.active.begin(self.pool)
        if not self._queue:
            self.resume_reading_for("pipeline")

    def keep_upstream(self, conn: UpstreamConnection) -> None:
        if self.closed or self.draining:
            self._release_spare()
            self.pool.checkin(conn)
            return
        spare = self._spare
        if spare is not None and spare is not conn:
            if spare.target == conn.target:
                self.pool.checkin(spare)
            else:
                older, self._spare2 = self._spare2, spare
                if older is not None and older is not conn:
                    self.pool.checkin(older)
        self._spare = conn

    def take_upstream(self, key: Target) -> UpstreamConnection | None:
        conn = self._spare
        if conn is not None and conn.target == key:
            self._spare = None
        else:
            conn = self._spare2
            if conn is None or conn.target != key:
                return None
            self._spare2 = None
        if conn.usable:
            conn.reused = True
            return conn
        return None

    def stats_for(self, authority: bytes, addr: tuple[str, int], tls: TlsLabels) -> HttpStats:
        """Stats of requests for `authority` sent to the endpoint `addr` (outbound, balanced)."""
        key = (authority, addr, tls.server_id)
        stats = self._endpoint_stats.get(key)
        if stats is None:
            stats = self._endpoint_stats[key] = self.runtime.metrics.http(
                self.ctx.direction, authority.decode("latin-1"), addr, tls
            )
        return stats

    def take_tunnel_bytes(self) -> bytes:
        data = b"".join(self._tunnel_bytes or ())
        self._tunnel_bytes = None
        self.active = None
        return data

    def tunnel_closed(self, errno: str) -> None:
        self._closed(None, errno)

    def pause_reading_for(self, reason: str) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused.add(reason)

    def resume_reading_for(self, reason: str) -> None:
        if reason in self._paused:
            self._paused.discard(reason)
            if not self._paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- shutdown and errors ----------------------------------------------------------------
    def drain(self) -> None:
        self.draining = True
        self._release_spare()
        if self.active is None and not self._in_head and not self.tunnelled:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            reset(self.transport)

    def _reject(self, status: int, message: str) -> None:
        """Answers a request the proxy will not forward, then closes the connection."""
        log.info("%s http1 from %s:%s: %s", self.ctx.direction, *self.ctx.client, message)
        self._in_head = False
        active = self.active
        if active is not None and active.upstream is not None:
            # Whatever it is sending cannot be completed on a connection that is closing.
            active.upstream.exchange = None
            active.upstream.close()
        if active is None or not active.response_started:
            self.write(simple_response_h1(status, message))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Closes after a last response while the client may still be sending (see `_Linger`)."""
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        transport.set_protocol(_Linger(self, transport))
        transport.resume_reading()

    def _header_timed_out(self) -> None:
        self._timer = None
        if self._in_head:
            self._reject(408, "timed out reading the request header")

    def _authority_from(self, url: bytes) -> bytes:
        """The authority of an absolute-form target (port included), else the target's."""
        if url.startswith((b"http://", b"https://")):
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                parsed = None
            if parsed is not None and parsed.host:
                host = b"[%b]" % parsed.host if b":" in parsed.host else parsed.host
                return host if parsed.port is None else b"%b:%d" % (host, parsed.port)
        return self.ctx.target_addr.encode()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _release_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            self.pool.checkin(spare)
        spare, self._spare2 = self._spare2, None
        if spare is not None:
            self.pool.checkin(spare)

    def _closed(self, exc: Exception | None, errno: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.src_stats.on_close(errno_label(exc) if errno is None else errno)
        self._release_spare()
        self.runtime.untrack(self)


class _Linger(asyncio.Protocol):
    """Closes a client's connection after its last response without destroying it.

    The client may still be sending (the rest of an oversized head, a body): closing with
    unread input makes the kernel send a reset, and a reset can discard the response before
    the client reads it. So the proxy half-closes after the response, reads and drops what
    still comes for a bounded time and amount, and closes at the client's EOF.
    """

    def __init__(self, server: Http1ServerProtocol, transport: asyncio.Transport) -> None:
        self._server = server
        self._transport = transport
        self._left = LINGER_BYTES
        self._timer = server.loop.call_later(LINGER_SECONDS, transport.abort)

    def data_received(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left < 0:
            self._transport.abort()

    def eof_received(self) -> bool:
        return False  # closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._server.connection_lost(exc)
