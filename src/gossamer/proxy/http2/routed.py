"""Outbound HTTP/2 and gRPC streams to a service: endpoint choice, retries, timeouts.

Theory of operation. A `RoutedStream` is a `ProxiedStream` that carries a `RequestPlan`
(outbound/plan.py: the route the request selected, its backend, retry limit and budget,
timeouts). Where a plain stream is bound to one target for good, a routed stream makes one
*attempt* per endpoint the balancer gives it:

    start ──pick──► attempt (endpoint's TargetPool, per-try timer) ──► response headers
      │ none: wait, bounded (fail-fast 503)           │
      │                                               ├─ retryable status ─────────► retry
      │                                               ├─ gRPC and retryable codes: held
      │                                               │    ├─ trailers first, retryable ► retry
      │                                               │    └─ DATA first ─────► commit
      │                                               └─ otherwise ─────────────► commit
      └─ failure before commit (connect, reset, lost, per-try timeout) ─► retry or error

*Commit* is the point of no return: the response headers (with the route's response header
modifiers) go to the client and later outcomes are passed through. A gRPC status normally
arrives in trailers after the messages, so a response is only retried on its gRPC status
when that status comes before any message (a trailers-only response, or trailers right
after the headers): the proxy holds the headers until the first DATA frame or the trailers
arrive, which costs nothing for a successful call and never buffers a message (Linkerd
peeks the same way).

A retry replays the request: the head, and the body as far as it has arrived (kept by the
plan up to 64 KiB; a bigger body makes the request unretryable), and then whatever the
client still sends. The request flow acknowledged the bytes it had already forwarded, so
the replayed copy is not acknowledged a second time (`Flow.rewind`).

Timers: the route's request timeout bounds the whole request, retries included, and ends
it with 504 (DEADLINE_EXCEEDED for gRPC) or a reset when the response has begun; the
per-try timeout (or the response timeout) bounds each attempt until commit, and an attempt
that outlives it is retried when the route allows.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gossamer.proxy.balance import ProbeHandle
from gossamer.proxy.errors import (
    ConnectError,
    ProxyError,
    ResponseTimeout,
    UpstreamProtocolError,
)
from gossamer.proxy.http2.flow import Flow
from gossamer.proxy.http2.frames import ErrorCodes
from gossamer.proxy.http2.headers import (
    Header,
    MalformedHeaders,
    RequestHead,
    sanitize_trailers,
)
from gossamer.proxy.http2.stream import MAX_RETRIES, ProxiedStream
from gossamer.proxy.metrics import HttpStats

if TYPE_CHECKING:
    from gossamer.proxy.balance import EndpointHandle
    from gossamer.proxy.control.destination import EndpointMeta
    from gossamer.proxy.http2.server import Http2ServerProtocol
    from gossamer.proxy.outbound.plan import RequestPlan


# A routed stream's flows become these only while they are needed (`__class__` is switched:
# same slots, so the objects stay as they are), so a stream that keeps no body and peeks at
# no status pays nothing per DATA frame.


class ReplayFlow(Flow):
    """The request flow of a routed stream: it keeps what it receives for a retry."""

    __slots__ = ()

    def receive(self, data: bytes, flow_controlled_length: int, end: bool) -> None:
        stream = self.stream
        if data and stream is not None:
            stream.plan.keep(data)  # type: ignore[attr-defined]  # (a RoutedStream's)
        Flow.receive(self, data, flow_controlled_length, end)


class PeekFlow(Flow):
    """The response flow of a routed stream: while the stream holds the response headers
    to see the gRPC status, the first DATA (or the end) commits the response."""

    __slots__ = ()

    def receive(self, data: bytes, flow_controlled_length: int, end: bool) -> None:
        Flow.receive(self, data, flow_controlled_length, end)
        stream = self.stream
        # (a RoutedStream's: no typing.cast on the hot path, it is a call at run time)
        if stream is not None and (data or end) and stream.held is not None:  # type: ignore[attr-defined]
            stream.commit_held()  # type: ignore[attr-defined]


class RoutedStream(ProxiedStream):
    __slots__ = ("first_byte", "held", "plan", "waiting")

    def __init__(
        self,
        downstream: Http2ServerProtocol,
        d_sid: int,
        head: RequestHead,
        stats: HttpStats,
        started: float,
        plan: RequestPlan,
    ) -> None:
        super().__init__(downstream, d_sid, head, stats, started, None)
        self.plan = plan
        if plan.replay is not None:
            self.request.__class__ = ReplayFlow
        # The response headers while the gRPC status is awaited (see PeekFlow).
        self.held: list[Header] | None = None
        self.first_byte: float | None = None  # the committed attempt's time to headers
        self.waiting: asyncio.Task[None] | None = None
        timeout = plan.route.request_timeout
        if timeout:
            plan.request_timer = downstream._loop.call_later(timeout, self._request_timed_out)

    # -- attempts ----------------------------------------------------------------------------
    def start(self) -> None:
        plan = self.plan
        now = self.downstream._loop.time()
        picked = plan.backend.pick(now, plan.avoid)
        if picked is None:
            self.waiting = self.downstream._loop.create_task(self._wait_for_endpoint())
            return
        self._use_endpoint(picked[0], picked[1], now)

    async def _wait_for_endpoint(self) -> None:
        try:
            picked = await self.plan.backend.pick_waiting(self.downstream._loop)
        except ProxyError as error:
            self.waiting = None
            self.stats.requests += 1
            ProxiedStream.fail(self, error)  # no endpoint to retry on
            return
        self.waiting = None
        if self.done:
            if isinstance(picked[0], ProbeHandle):
                picked[0].cancel()  # its turn to probe goes to another request
            return
        self._use_endpoint(picked[0], picked[1], self.downstream._loop.time())

    def _use_endpoint(self, handle: EndpointHandle, meta: EndpointMeta, now: float) -> None:
        plan = self.plan
        downstream = self.downstream
        plan.handle, plan.meta, plan.attempt_start = handle, meta, now
        handle.start()
        # (no typing.cast on the hot path: it is a call at run time)
        addr: tuple[str, int] = handle.addr  # type: ignore[assignment]
        targets, stats = downstream.endpoint(self.head.authority, addr, plan.service.tls_for(meta))
        self.targets = targets
        self.stats = stats
        stats.requests += 1
        route = plan.route
        timeout = route.retry.per_try_timeout or route.response_timeout
        if timeout:
            plan.response_timer = downstream._loop.call_later(timeout, self._response_timed_out)
        targets.dispatch(self)

    def _end_attempt(self, success: bool | None, now: float) -> None:
        """The attempt is over: a success, a failure, or (None) neither, when the client
        gave up before any response."""
        plan = self.plan
        handle, plan.handle = plan.handle, None
        if handle is not None:
            if success is None:
                handle.cancel()
            else:
                plan.avoid = None if success else handle.addr
                # Latency: the time to the response headers, or what a failure took (the
                # handle never lets a failure make an endpoint look faster).
                first_byte = self.first_byte
                handle.finish(
                    success, first_byte if first_byte is not None else now - plan.attempt_start, now
                )
        if plan.response_timer is not None:
            self._cancel_response_timer()
        targets, self.targets = self.targets, None
        if targets is not None and targets.pending:
            targets.withdraw(self)  # (the client connection holds the pool for its life)

    def _cancel_response_timer(self) -> None:
        plan = self.plan
        timer, plan.response_timer = plan.response_timer, None
        if timer is not None:
            timer.cancel()

    def _may_retry(self) -> bool:
        return not self.headers_sent and self.plan.may_retry(self.downstream.loop_time())

    def _next_attempt(self) -> None:
        """This attempt failed before commit: the request goes again, elsewhere if it can."""
        plan = self.plan
        response = self.response
        response.discard()
        self._reset_upstream(ErrorCodes.CANCEL)
        self._end_attempt(False, self.downstream.loop_time())
        plan.attempts += 1
        plan.route_stats.retry("retried")
        request = self.request
        if plan.replay is not None:
            request.rewind(plan.replay, plan.replay_bytes)
        else:
            request.detach()  # nothing of the body was sent: the flow still holds it all
        response.source = None
        response.source_sid = 0
        response.sink = self.downstream
        response.finished = response.ended = False
        response.trailers = None
        self.status = 0
        self.grpc_status = None
        self.held = None
        self.first_byte = None
        self.start()

    # -- the response ---------------------------------------------------------------------------
    def on_response(self, headers: list[Header], ended: bool) -> None:
        head = self._response_head(headers)
        if head is None:
            return
        status = head.status
        self.status = status
        retry = self.plan.route.retry
        if self.plan.replay is not None:  # the route retries, and the request could replay
            grpc = head.grpc_status if ended else None
            if (
                retry.retryable_status(status) or (grpc is not None and retry.retryable_grpc(grpc))
            ) and self._may_retry():
                self._next_attempt()
                return
            if not ended and retry.grpc_codes and self.head.grpc and status == 200:
                self.held = head.headers
                response = self.response
                response.__class__ = PeekFlow
                response.sink = None  # DATA waits in the flow until commit
                self._cancel_response_timer()
                self.first_byte = self.downstream.loop_time() - self.plan.attempt_start
                return
        if ended:
            self.grpc_status = head.grpc_status
        self._commit(head.headers, ended)

    def _commit(self, headers: list[Header], ended: bool) -> None:
        if self.plan.response_timer is not None:
            self._cancel_response_timer()
        if self.first_byte is None:
            self.first_byte = self.downstream._loop.time() - self.plan.attempt_start
        modifiers = self.plan.route.response_modifiers
        if not modifiers.noop:
            headers = modifiers.apply_h2(headers)
        ProxiedStream._commit(self, headers, ended)

    def commit_held(self) -> None:
        """The first DATA frame (or the end) of a held response arrived: let it through."""
        held, self.held = self.held, None
        if held is None or self.done:
            return
        self._commit(held, False)
        if self.done:
            return
        response = self.response
        response.sink = self.downstream
        response.pump()

    def on_response_trailers(self, headers: list[Header]) -> None:
        held = self.held
        if held is None:
            ProxiedStream.on_response_trailers(self, headers)
            return
        try:
            trailers, grpc = sanitize_trailers(headers)
        except MalformedHeaders:
            self.held = None
            self._reset_upstream(ErrorCodes.PROTOCOL_ERROR)
            self.fail(UpstreamProtocolError("invalid response trailers"))
            return
        if grpc is not None and self.plan.route.retry.retryable_grpc(grpc) and self._may_retry():
            self._next_attempt()
            return
        self.held = None
        self._commit(held, False)
        if self.done:
            return
        self.grpc_status = grpc
        response = self.response
        response.sink = self.downstream
        response.end(trailers)

    # -- failures -----------------------------------------------------------------------------
    def fail(self, error: ProxyError) -> None:
        if self.done:
            return
        if isinstance(error, ConnectError) and self.plan.handle is not None:
            # A failed connect costs the balancer the connect timeout (p2c.py).
            elapsed = self.downstream._loop.time() - self.plan.attempt_start
            timeout = self.downstream.runtime.config.outbound_connect_timeout
            self.first_byte = elapsed if elapsed > timeout else timeout
        if self._may_retry():
            self._next_attempt()
            return
        self.held = None
        self.response.sink = self.downstream
        ProxiedStream.fail(self, error)

    def on_upstream_reset(self, code: int) -> None:
        if self.done:
            return
        if code == ErrorCodes.REFUSED_STREAM and self._retryable():
            self._retry()
        elif self._may_retry():
            self._next_attempt()
        else:
            self.held = None
            ProxiedStream.on_upstream_reset(self, code)

    def on_upstream_refused(self) -> None:
        if self.done:
            return
        if self._retryable():
            self._retry()
        elif self._may_retry():
            self._next_attempt()
        else:
            self.held = None
            ProxiedStream.on_upstream_refused(self)

    def _retryable(self) -> bool:
        # Refused (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream): unprocessed,
        # so it goes again once without spending the budget, as a plain stream does.
        return self.retries < MAX_RETRIES and self.request.sent == 0 and not self.headers_sent

    def _retry(self) -> None:
        self.retries += 1
        self._next_attempt()

    def _response_timed_out(self) -> None:
        plan = self.plan
        plan.response_timer = None
        if self.done or self.headers_sent:
            return
        self.fail(ResponseTimeout("no response within the route's timeout"))

    def _request_timed_out(self) -> None:
        plan = self.plan
        plan.request_timer = None
        if self.done:
            return
        plan.replay = None  # the request's time is up: no more attempts
        self.retries = MAX_RETRIES
        error = ResponseTimeout("the request did not complete within its timeout")
        if self.headers_sent:
            self._abort(ErrorCodes.CANCEL, ErrorCodes.CANCEL, error.reason)
        else:
            self.fail(error)

    # -- completion -----------------------------------------------------------------------------
    def _finish(self) -> None:
        ProxiedStream._finish(self)
        if self.waiting is not None:
            self.waiting.cancel()
            self.waiting = None
        plan = self.plan
        now = self.downstream._loop.time()
        status = self.status
        grpc_status = self.grpc_status
        self._end_attempt((status < 500 and grpc_status in (None, 0)) if status else None, now)
        timer = plan.request_timer
        if timer is not None:
            plan.request_timer = None
            timer.cancel()
        if status:
            plan.route_stats.response(status, now - plan.start, grpc_status)
