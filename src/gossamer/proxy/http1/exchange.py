"""One proxied HTTP/1 request/response pair.

Theory of operation: the client-side protocol parses a request head and creates an
`Exchange`. The exchange borrows an upstream connection (pooled or new), writes the head and
streams the body as it arrives (bytes read before the upstream is ready wait in a bounded
list). The upstream connection reports response events back here; the exchange writes them
to the client, re-framing chunked bodies, and when both the request and the response have
ended it returns the upstream connection to the pool (or closes it) and tells the client
side it is done. Failures before a response has started become a proxy error response;
after that, the only honest signal left is to close the client connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gossamer.proxy.errors import (
    ConnectError,
    ProxyError,
    ResponseTimeout,
    UpstreamClosed,
    UpstreamProtocolError,
    error_response_h1,
)
from gossamer.proxy.http1.client import Http1Pool, UpstreamConnection
from gossamer.proxy.metrics import HttpStats
from gossamer.proxy.outbound.plan import DISCARD, HOLD, PASS, RequestPlan, rewrite_response_head
from gossamer.proxy.tcp import Pipe

if TYPE_CHECKING:
    from gossamer.proxy.balance import EndpointHandle
    from gossamer.proxy.control.destination import EndpointMeta
    from gossamer.proxy.http1.server import Http1ServerProtocol

log = logging.getLogger("gossamer.proxy.http1")

_LAST_CHUNK = b"0\r\n\r\n"
_IDEMPOTENT = (b"GET ", b"HEAD ", b"OPTIONS ", b"TRACE ", b"PUT ", b"DELETE ")


class Exchange:
    __slots__ = (
        "_pending",
        "_pending_bytes",
        "client_keep_alive",
        "close_delimited",
        "forwarded",
        "head",
        "held",
        "hold",
        "http11",
        "is_head",
        "key",
        "plan",
        "request_chunked",
        "request_done",
        "response_done",
        "response_started",
        "server",
        "start",
        "stats",
        "status",
        "upgrade",
        "upstream",
        "upstream_keep_alive",
    )

    def __init__(
        self,
        server: Http1ServerProtocol,
        head: bytes,
        *,
        is_head: bool,
        request_chunked: bool,
        keep_alive: bool,
        http11: bool,
        upgrade: bool,
        stats: HttpStats,
        start: float,
        plan: RequestPlan | None = None,
    ) -> None:
        self.server = server
        self.head: bytes | None = head
        self.is_head = is_head
        self.request_chunked = request_chunked
        self.client_keep_alive = keep_alive
        self.http11 = http11
        self.upgrade = upgrade
        self.stats = stats
        self.start = start
        self.upstream: UpstreamConnection | None = None
        self._pending: list[bytes] = [head]
        self._pending_bytes = len(head)
        self.request_done = False
        self.response_started = False
        # Some bytes of the response reached the client (they pass through unparsed), so
        # it can no longer be answered with an error response or retried.
        self.forwarded = False
        self.response_done = False
        self.upstream_keep_alive = False
        self.close_delimited = False
        self.status = 0
        # Outbound to a service: the route, endpoint choice, retries, timeouts.
        self.plan = plan
        self.key = server.pool_key
        self.hold = PASS
        self.held: list[bytes] = []
        if plan is not None:
            plan.keep(head)
            timeout = plan.route.request_timeout
            if timeout:
                plan.request_timer = server.loop.call_later(timeout, self._request_timed_out)

    # -- request side (called by the client protocol) ----------------------------------
    def begin(self, pool: Http1Pool) -> None:
        """Starts sending: on a pooled connection now, or once a new one is made."""
        plan = self.plan
        if plan is not None:
            picked = plan.backend.pick(self.server.loop.time(), plan.avoid)
            if picked is None:
                self.server.loop.create_task(self._wait_for_endpoint(pool))
                return
            self._use_endpoint(*picked)
        key = self.key
        conn = self.server.take_upstream(key) or pool.checkout(key)
        if conn is not None:
            self._attach(conn)
        else:
            self.server.loop.create_task(self._connect(pool))

    async def _wait_for_endpoint(self, pool: Http1Pool) -> None:
        plan = self.plan
        assert plan is not None
        try:
            picked = await plan.backend.pick_waiting(self.server.loop)
        except ProxyError as error:
            self.fail(error)
            return
        if self.server.closed or self.response_done:
            return
        self._use_endpoint(*picked)
        conn = self.server.take_upstream(self.key) or pool.checkout(self.key)
        if conn is not None:
            self._attach(conn)
        else:
            await self._connect(pool)

    def _use_endpoint(self, handle: EndpointHandle, meta: EndpointMeta) -> None:
        """One attempt goes to this endpoint: pool key, TLS, stats, timers."""
        plan = self.plan
        assert plan is not None
        server = self.server
        now = server.loop.time()
        plan.handle, plan.meta, plan.attempt_start = handle, meta, now
        handle.start()
        tls = plan.service.tls_for(meta)
        addr: tuple[str, int] = handle.addr  # type: ignore[assignment]  # (no cast: a call)
        self.key = (addr, tls.server_id)
        self.stats = server.stats_for(plan.authority, addr, tls)
        self.stats.requests += 1
        self.hold = HOLD if plan.holds_response else PASS
        timeout = plan.route.retry.per_try_timeout or plan.route.response_timeout
        if timeout:
            plan.response_timer = server.loop.call_later(timeout, self._response_timed_out)

    async def _connect(self, pool: Http1Pool) -> None:
        server = self.server
        try:
            conn = await pool.connect(self.key, server.ctx.direction, server.dst_stats)
        except ProxyError as error:
            self.fail(error)
            return
        if server.closed:
            conn.close()
            return
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.exchange = self
        if self.server.write_paused and conn.transport is not None:
            # The client has not taken the previous response yet: read none of this one.
            conn.transport.pause_reading()
        pending = self._pending
        if len(pending) == 1:
            conn.write(pending[0])
        else:
            conn.writelines(pending)
        self._pending = []
        if self._pending_bytes > self.server.high_water:
            self.server.resume_reading_for("pending")
        self._pending_bytes = 0

    def send_body(self, body: bytes) -> None:
        self.head = None  # a request with a body is not replayable
        data = b"%x\r\n%b\r\n" % (len(body), body) if self.request_chunked else body
        if self.plan is not None:
            self.plan.keep(data)
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self.server.high_water:
            self.server.pause_reading_for("pending")

    def end_request(self) -> None:
        self.request_done = True
        if self.request_chunked:
            if self.plan is not None:
                self.plan.keep(_LAST_CHUNK)
            if self.upstream is not None:
                self.upstream.write(_LAST_CHUNK)
            else:
                self._pending.append(_LAST_CHUNK)
        if self.response_done:
            self._finish()

    # -- response side (called by the upstream connection) ------------------------------
    def response_head(self, status: int, keep_alive: bool) -> bool:
        """Notes a final response's head (already forwarded); True if it has no body."""
        self.status = status
        self.response_started = True
        if self.hold == HOLD:
            self._decide(status)
        if status == 101:
            return False  # the upgrade takes both connections over; see response_upgraded
        self.upstream_keep_alive = keep_alive
        if not keep_alive:
            # The upstream closes after this response (`Connection: close`, or a body that
            # ends at EOF); the client was told the same, so its connection closes too.
            self.client_keep_alive = False
            self.close_delimited = True
        return self.is_head and status != 101

    def _decide(self, status: int) -> None:
        """The held response's status is known: retry it, or let it through."""
        plan = self.plan
        assert plan is not None
        now = self.server.loop.time()
        if plan.route.retry.retryable_status(status) and plan.may_retry(now):
            self.hold = DISCARD
            self.held = []
            return
        self.hold = PASS
        held, self.held = b"".join(self.held), []
        if not plan.route.response_modifiers.noop:
            held = rewrite_response_head(held, plan.route.response_modifiers)
        self.server.write(held)
        self.forwarded = True

    def response_end(self) -> None:
        if self.response_done:
            return
        plan = self.plan
        if plan is not None:
            now = self.server.loop.time()
            plan.end_attempt(self.status < 500, now)
            if self.hold == DISCARD:
                self._retry(reuse=self.upstream_keep_alive and not self.close_delimited)
                return
            plan.finish(self.status, now)
        self.response_done = True
        self.stats.response(self.status, self.server.loop.time() - self.start)
        if not self.request_done:
            # The server answered before reading the whole request (e.g. 413): neither
            # connection can be reused, since the rest of the body is still in flight.
            self.upstream_keep_alive = False
            self.client_keep_alive = False
        self._finish()

    def response_upgraded(self) -> None:
        """The upstream accepted an Upgrade (101): both sides become one byte pipe."""
        conn, server = self.upstream, self.server
        if conn is None or conn.transport is None or server.transport is None:
            return
        conn.exchange = None
        self.stats.response(self.status, server.loop.time() - self.start)
        self.response_done = True
        pipe = Pipe(server.src_stats, conn.stats)
        # Neither side's own connection_lost runs once the pipe owns it.
        pipe.on_close.append(lambda: server.tunnel_closed(pipe.errno_for(pipe.a)))
        pipe.on_close.append(lambda: conn.stats.on_close(pipe.errno_for(pipe.b)))
        server.tunnelled = True
        pipe.attach(
            server.transport,
            conn.transport,
            server.take_tunnel_bytes(),
            b"",  # bytes after the 101 head were already forwarded with it
            server.high_water,
        )

    # -- failures ------------------------------------------------------------------------
    def fail(self, error: ProxyError) -> None:
        """No response can come: answer with the proxy's own error response if we still can."""
        server = self.server
        plan = self.plan
        if plan is not None and not self.response_done:
            now = server.loop.time()
            connect = isinstance(error, ConnectError)
            plan.end_attempt(False, now, server.connect_timeout if connect else None)
            committed = self.forwarded or (self.response_started and self.hold != DISCARD)
            if not committed and plan.may_retry(now):
                self._retry(reuse=False)
                return
            plan.finish(error.status, now)
        if self.upstream is not None:
            self.upstream.exchange = None
            self.upstream.close()
        if self.response_done:
            return
        self.response_done = True
        if self.response_started or self.forwarded:
            log.info("%s %s: upstream failed mid-response: %s", server.ctx.direction,
                     server.ctx.target_addr, error.detail)  # fmt: skip
            server.abort()
            return
        log.info("%s %s: %s", server.ctx.direction, server.ctx.target_addr, error.detail)
        self.status = error.status
        self.stats.response(error.status, server.loop.time() - self.start)
        # The rest of an unread request body would be parsed as a new request: close after.
        close = not self.request_done or not self.client_keep_alive or self.upgrade
        server.write(error_response_h1(error, close=close))
        if close:
            self.client_keep_alive = False
        self.upstream_keep_alive = False
        self.upstream = None
        server.exchange_done(self)

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        if self.response_done:
            return
        if self.response_started and self.close_delimited:
            self.response_end()  # the close is how this body ends
            return
        self.upstream = None
        if (
            conn.reused
            and not self.forwarded
            and self.request_done
            and not self.request_chunked
            and self.head is not None
            and self.head.startswith(_IDEMPOTENT)
        ):
            # A pooled connection the server had just closed: the request most likely never
            # reached it. Only idempotent requests without a body are sent again (RFC 9110
            # 9.2.2: a proxy must not retry others; a body is not kept to be replayed).
            self._pending = [self.head]
            self._pending_bytes = len(self.head)
            self.begin(self.server.pool)
            return
        self.fail(UpstreamClosed())

    def _retry(self, *, reuse: bool) -> None:
        """Sends the request again, to the endpoint the balancer picks now."""
        plan = self.plan
        assert plan is not None and plan.replay is not None
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.exchange = None
            if reuse and self.request_done:
                self.server.keep_upstream(conn)
            else:
                conn.close()
        plan.attempts += 1
        plan.route_stats.retry("retried")
        self.status = 0
        self.response_started = False
        self.forwarded = False
        self.upstream_keep_alive = False
        self.close_delimited = False
        self.hold = PASS
        self.held = []
        self._pending = list(plan.replay)
        self._pending_bytes = plan.replay_bytes
        self.begin(self.server.pool)

    def _response_timed_out(self) -> None:
        plan = self.plan
        if plan is None or self.response_done or (self.response_started and self.hold == PASS):
            return
        plan.response_timer = None
        self.fail(ResponseTimeout("no response within the route's timeout"))

    def _request_timed_out(self) -> None:
        plan = self.plan
        if plan is None or self.response_done:
            return
        plan.request_timer = None
        plan.replay = None  # the request's time is up: no more attempts
        self.fail(ResponseTimeout("the request did not complete within its timeout"))

    def upstream_protocol_error(self, detail: str) -> None:
        self.fail(UpstreamProtocolError(f"invalid response from upstream: {detail}"))

    def upstream_write_paused(self) -> None:
        self.server.pause_reading_for("upstream")

    def upstream_write_resumed(self) -> None:
        self.server.resume_reading_for("upstream")

    def pause_response(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_response(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    # -- completion ----------------------------------------------------------------------
    def _finish(self) -> None:
        conn, self.upstream = self.upstream, None
        if conn is not None:
            conn.exchange = None
            if self.upstream_keep_alive and not self.close_delimited and not self.upgrade:
                if self.server.write_paused and conn.transport is not None:
                    # The response's last read filled the client's buffer and paused this
                    # upstream; idle in the pool it must read again (and see its close).
                    conn.transport.resume_reading()
                self.server.keep_upstream(conn)
            else:
                conn.close()
        if self.close_delimited:
            self.client_keep_alive = False
        self.server.exchange_done(self)
